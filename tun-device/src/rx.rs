//! The receive engine of a queue, free of I/O: where one read's bytes go,
//! and what the packets are once the read returned. [`Queue::recv_batch`]
//! (the driver) makes the `readv` this engine lays out and hands it the
//! result; everything between, from a super-packet read scattered into the
//! caller's buffers to segments left over for the next call, is here and
//! unit-tested without a device.
//!
//! # Reading super-packets into place
//!
//! A TSO super-packet of one TCP flow arrives again and again with the same
//! shape: the same header length and segment size. With
//! [`RecvState::set_read_into_place`] on, once the state has seen a shape
//! twice in a row, the next read is laid out as a chain: the first
//! slice is the first buffer (headers and first payload), each further
//! slice the payload place of the next buffer (behind room for that
//! segment's headers), then an overflow area. The kernel's copy then puts
//! every segment's payload where the segment will be handed out, and the
//! split only writes each segment's headers and sums its payload where it
//! lies ([`GsoPacket::split_placed`]): no payload byte is copied in user
//! space. A read that does not match the chain (another shape, a packet
//! that needs no split and is longer than the first slice) is put back
//! together with one copy and handled as any other read. It is off by
//! default: measured in this workspace's relays, the copying split below
//! was faster (see [`RecvState::set_read_into_place`]).
//!
//! Otherwise the read goes into the first buffer (about an MTU, so a packet
//! that needs no split lands in place) and the overflow area; a
//! super-packet's head is copied in front of its tail there, and it is
//! split from that contiguous copy.
//!
//! # Partial checksums
//!
//! The kernel hands over TCP and UDP from its own stack `CHECKSUM_PARTIAL`
//! (NEEDS_CSUM: the pseudo-header sum in the field), and completes or
//! trusts such a sum again when the packet is written back with that
//! header. With [`RecvState::set_partial_checksums`] the engine keeps it so:
//! a split writes each segment's own pseudo-header sum instead of summing
//! its payload ([`GsoPacket::split_into_partial`], and in place
//! [`GsoPacket::split_placed_partial`], which reads no payload byte at
//! all), and every packet gets its virtio header in the 10 bytes in front
//! of it: what the send engine needs to write it, and what any other
//! consumer needs to complete it ([`tun_offload::complete_checksum`]). A
//! sum the kernel left partial elsewhere than at the packet's own transport
//! header (the inner checksum of a tunnel datagram) is completed, as are
//! the outer datagrams of a UDP-tunnel super-packet and, on a device with
//! the UDP-tunnel offload, every UDP datagram (tunnel coalescing verifies
//! outer checksums).
//!
//! [`Queue::recv_batch`]: crate::Queue::recv_batch

use std::ops::Range;

use tun_offload::MAX_PLACED_HEADER_LEN;
use tun_offload::framing::PacketInfo;
use tun_offload::{
    GsoPacket, GsoType, HdrFlags, Layer, PacketError, SplitError, TunnelError, TunnelGsoPacket,
    VirtioNetHdr, VirtioNetHdrV1HashTunnel,
};

use tun_sys::InterfaceName;

use crate::error::{Error, IoOp};

/// Room in front of the overflow area of the scratch buffer, where a read
/// laid out over several buffers is put back together (also the most a
/// chain of slices may hold).
const FRONT: usize = 1 << 17;
/// The overflow area: the largest packet a TUN hands over (its
/// `gso_max_size`, 64 KiB) and some slack, so a read that fills it is
/// known to be truncated.
const OVERFLOW: usize = (1 << 16) + 256;
/// The largest super-packet the chain must hold: 64 KiB of IP packet, and
/// a tagged Ethernet header on a TAP.
const MAX_SUPER: usize = (1 << 16) + tun_offload::frame::MAX_L2_LEN;
/// The most slices of a read laid out as a chain (the prefix and the
/// overflow area come on top): segments of at least 536 payload bytes.
pub(crate) const MAX_CHAIN: usize = 128;

/// Where a UDP header's checksum field is (`csum_offset` of UDP).
const UDP_CSUM_OFFSET: usize = 6;

/// What a queue puts in front of each packet it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Framing {
    /// Packet information (`IFF_NO_PI` off).
    pub(crate) pi: bool,
    /// The virtio header (`IFF_VNET_HDR`): 10 bytes, or 24 with `tunnel`.
    pub(crate) vnet: bool,
    /// The UDP-tunnel offload was granted: the virtio header is the 24-byte
    /// `virtio_net_hdr_v1_hash_tunnel`, and super-packets may be VXLAN or
    /// Geneve datagrams around a TSO/USO super-packet.
    pub(crate) tunnel: bool,
    /// A TAP: packets are Ethernet frames, whose virtio header counts
    /// `csum_start` from the frame start.
    pub(crate) l2: bool,
    /// The interface's MTU as last seen: how long a packet that needs no
    /// split usually is.
    pub(crate) mtu: usize,
}

impl Framing {
    /// Bytes in front of each packet: packet information, virtio header.
    pub(crate) fn prefix_len(self) -> usize {
        (if self.pi { PacketInfo::LEN } else { 0 }) + self.vnet_len()
    }

    /// Bytes of virtio header: 0, 10, or 24 with the tunnel offload.
    pub(crate) fn vnet_len(self) -> usize {
        match (self.vnet, self.tunnel) {
            (false, _) => 0,
            (true, false) => VirtioNetHdr::LEN,
            (true, true) => VirtioNetHdrV1HashTunnel::LEN,
        }
    }
}

/// The shape of a super-packet: what a chain is laid out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    header_len: usize,
    gso_size: usize,
}

#[derive(Debug, Clone, Copy)]
enum Pending {
    None,
    /// A super-packet read but not split yet, at `scratch[start..start + len]`.
    Raw {
        hdr: VirtioNetHdrV1HashTunnel,
        start: usize,
        len: usize,
    },
    /// Segments split into `segs[next..count]` not handed out yet, each
    /// with `hdr` in front of it (partial checksums).
    Segments {
        next: usize,
        count: usize,
        hdr: VirtioNetHdr,
    },
}

/// Why the engine could not hand out a packet; the driver turns it into an
/// [`Error`] that names the queue and the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RxFault {
    /// A packet (or a segment) longer than the room behind `offset`.
    TooSmall { needed: usize, available: usize },
    /// A packet the kernel's header does not describe, at batch position
    /// `index`.
    Bad { index: usize, error: Malformed },
}

/// Why a packet is not what its virtio header says: a plain packet or
/// super-packet, or a UDP-tunnel super-packet against its 24-byte header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Malformed {
    Plain(PacketError),
    Tunnel(TunnelError),
}

impl From<PacketError> for Malformed {
    fn from(e: PacketError) -> Self {
        Malformed::Plain(e)
    }
}

impl Malformed {
    /// The error of `op` on `interface` for the packet at `index`.
    pub(crate) fn into_error(self, op: IoOp, interface: InterfaceName, index: usize) -> Error {
        match self {
            Malformed::Plain(error) => Error::Packet {
                op,
                interface,
                index,
                error,
            },
            Malformed::Tunnel(error) => Error::TunnelPacket {
                op,
                interface,
                index,
                error,
            },
        }
    }
}

/// A super-packet as its header describes it: plain (TSO/USO), or a UDP
/// tunnel datagram around one. The one place that tells the two kinds and
/// TUN packets from TAP frames apart: the receive engine, `send_gso`'s
/// check and the pass-through relay parse with it.
pub(crate) enum SuperPacket {
    Plain(GsoPacket),
    Tunnel(TunnelGsoPacket),
}

impl SuperPacket {
    /// Parse `pkt` (a TAP frame with `l2`) as `hdr` says.
    pub(crate) fn parse(
        l2: bool,
        hdr: &VirtioNetHdrV1HashTunnel,
        pkt: &[u8],
    ) -> Result<Self, Malformed> {
        if hdr.hdr.gso_type().udp_tunnel() != 0 {
            let parsed = if l2 {
                TunnelGsoPacket::parse_frame(hdr, pkt)
            } else {
                TunnelGsoPacket::parse(hdr, pkt)
            };
            return parsed.map(SuperPacket::Tunnel).map_err(Malformed::Tunnel);
        }
        let parsed = if l2 {
            GsoPacket::parse_frame(&hdr.hdr, pkt)
        } else {
            GsoPacket::parse(&hdr.hdr, pkt)
        };
        parsed.map(SuperPacket::Plain).map_err(Malformed::Plain)
    }

    /// The shape a chain could be laid out for (plain super-packets only:
    /// a tunnel's are always put together and split from the scratch).
    fn shape(&self) -> Option<Shape> {
        match self {
            SuperPacket::Plain(g) => Some(Shape {
                header_len: g.header_len(),
                gso_size: g.gso_size(),
            }),
            SuperPacket::Tunnel(_) => None,
        }
    }

    pub(crate) fn segment_count(&self) -> usize {
        match self {
            SuperPacket::Plain(g) => g.segment_count(),
            SuperPacket::Tunnel(t) => t.segment_count(),
        }
    }

    pub(crate) fn max_segment_len(&self) -> usize {
        match self {
            SuperPacket::Plain(g) => g.max_segment_len(),
            SuperPacket::Tunnel(t) => t.max_segment_len(),
        }
    }

    /// Split into `bufs` at `offset`; with `partial`, a plain super-packet's
    /// segments keep partial checksums (a tunnel's are always complete).
    /// Returns the segments and the virtio header each carries.
    pub(crate) fn split_into<B: AsMut<[u8]>>(
        &self,
        pkt: &[u8],
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
        partial: bool,
    ) -> Result<usize, SplitError> {
        match self {
            SuperPacket::Plain(g) if partial => g.split_into_partial(pkt, bufs, lens, offset),
            SuperPacket::Plain(g) => g.split_into(pkt, bufs, lens, offset),
            SuperPacket::Tunnel(t) => t.split_into(pkt, bufs, lens, offset),
        }
    }

    /// The virtio header in front of each segment of [`Self::split_into`].
    fn segment_hdr(&self, partial: bool) -> VirtioNetHdr {
        match self {
            SuperPacket::Plain(g) if partial => g.partial_hdr(),
            _ => VirtioNetHdr::ZERO,
        }
    }
}

/// What one step of the engine handed out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Step {
    /// Packets written into the buffers, from the position given.
    pub(crate) count: usize,
    /// A fault met after those packets.
    pub(crate) fault: Option<RxFault>,
}

impl Step {
    fn ok(count: usize) -> Self {
        Self { count, fault: None }
    }

    fn fault(count: usize, fault: RxFault) -> Self {
        Self {
            count,
            fault: Some(fault),
        }
    }
}

/// How one read is laid out: the prefix, then `slots` (a range of each of
/// the buffers from `first` on, in order), then the overflow area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadLayout {
    /// Bytes of packet information and virtio header in front.
    pub(crate) prefix_len: usize,
    /// The batch position of the first buffer.
    pub(crate) first: usize,
    /// The range of buffer `first + k` that slice `k` is.
    pub(crate) slots: Vec<Range<usize>>,
    /// The shape the chain was laid out for (None: one slot).
    shape: Option<Shape>,
}

impl ReadLayout {
    /// Bytes the slots hold.
    fn slots_len(&self) -> usize {
        self.slots.iter().map(|r| r.len()).sum()
    }
}

/// Caller-owned state of [`Queue::recv_batch`](crate::Queue::recv_batch):
/// a scratch buffer for super-packets, the segments a call could not hand
/// over yet, and the shape of the last super-packets (to read the next
/// into place). One per reading thread; reuse it for every batch.
pub struct RecvState {
    scratch: Box<[u8]>,
    pending: Pending,
    segs: Vec<Vec<u8>>,
    seg_lens: Vec<usize>,
    pub(crate) deferred: Option<Error>,
    pub(crate) stats: RecvStats,
    /// The last super-packet's shape, and whether the one before had it too.
    shape: Option<(Shape, bool)>,
    layout: ReadLayout,
    /// Where a read's packet information and virtio header go.
    prefix: [u8; PacketInfo::LEN + VirtioNetHdrV1HashTunnel::LEN],
    /// Lay out reads as chains once a shape repeats.
    into_place: bool,
    /// Leave checksums partial, each packet's virtio header in front of it.
    partial: bool,
    /// The header of the packets the current step hands out.
    step_hdr: VirtioNetHdr,
}

/// Counters of a [`RecvState`] since it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecvStats {
    /// Reads that returned a packet.
    pub reads: u64,
    /// Of those, super-packets (TSO/USO) that were split.
    pub super_packets: u64,
    /// Of those, UDP-tunnel super-packets (VXLAN or Geneve datagrams
    /// around a TSO/USO super-packet; Linux 6.17+ with the tunnel offload
    /// granted), split into complete outer datagrams.
    pub tunnel_super_packets: u64,
    /// Of those, super-packets read into the places of their segments
    /// (split without a copy of their payload).
    pub placed: u64,
    /// Reads of a batch after its first that found the queue empty (the
    /// syscall that ends a batch of small packets read without a wait).
    pub empty_reads: u64,
    /// Packets handed to the caller.
    pub packets: u64,
    /// Bytes handed to the caller (IP bytes, or whole Ethernet frames on a
    /// TAP; no virtio header or packet information).
    pub bytes: u64,
}

impl std::fmt::Debug for RecvState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvState")
            .field("pending", &self.pending)
            .field("deferred", &self.deferred)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Default for RecvState {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvState {
    /// A fresh state (about 200 KiB of scratch space, mapped as it is
    /// touched).
    pub fn new() -> Self {
        Self {
            scratch: vec![0u8; FRONT + OVERFLOW].into_boxed_slice(),
            pending: Pending::None,
            segs: Vec::new(),
            seg_lens: Vec::new(),
            deferred: None,
            stats: RecvStats::default(),
            shape: None,
            layout: ReadLayout {
                prefix_len: 0,
                first: 0,
                slots: Vec::with_capacity(MAX_CHAIN),
                shape: None,
            },
            prefix: [0; PacketInfo::LEN + VirtioNetHdrV1HashTunnel::LEN],
            into_place: false,
            partial: false,
            step_hdr: VirtioNetHdr::ZERO,
        }
    }

    /// Read super-packets straight into the places of their segments once
    /// their shape repeats (off by default; see the module docs of
    /// [`Queue::recv_batch`](crate::Queue::recv_batch)): the split then
    /// copies no payload, but each read is scattered over as many buffers
    /// as the super-packet has segments. Measured on a 2-core Xeon (Linux
    /// 6.18, BENCHMARKS.md), both relays of this workspace moved 6 to 10%
    /// less with it than with the copying split (whose fused AVX-512 copy
    /// and checksum reads one contiguous, cache-hot super-packet), and
    /// the offload relay with partial checksums (where neither way sums
    /// the payload) 9 to 15% less at 1.1x the CPU: the kernel's copy into
    /// some 45 slices costs more than the one into a contiguous buffer and
    /// a user-space copy together. Measure before turning it on.
    pub fn set_read_into_place(&mut self, on: bool) {
        self.into_place = on;
    }

    /// Whether reads go into place ([`Self::set_read_into_place`]).
    pub fn reads_into_place(&self) -> bool {
        self.into_place
    }

    /// Leave transport checksums partial, as the kernel hands them over,
    /// and put each packet's virtio header in the 10 bytes in front of it
    /// (`bufs[i][offset - 10..offset]`, so `offset` must be at least 10).
    /// The segments of a TSO/USO super-packet then get their own pseudo-header
    /// sum in the checksum field instead of a complete checksum, with a
    /// NEEDS_CSUM header ([`GsoPacket::partial_hdr`]), as the kernel's own
    /// segmentation leaves `CHECKSUM_PARTIAL` segments; a packet the kernel
    /// sent with NEEDS_CSUM is handed out as it came, with that header;
    /// every other packet (and every outer datagram of a UDP-tunnel
    /// super-packet) is complete, behind the header's checksum part
    /// (DATA_VALID as the kernel said it, or all zero).
    ///
    /// No payload byte is summed on receive, and with
    /// [`Self::set_read_into_place`] none is copied either. What the
    /// packets are for decides: [`SendState::set_partial_checksums`](crate::SendState::set_partial_checksums)
    /// writes them with their headers (the kernel completes the sums, or
    /// trusts them when it coalesces, as its GRO trusts a partial skb), as
    /// the relay does; a consumer that needs complete checksums (one that
    /// sends the packets anywhere but a NEEDS_CSUM-capable device) completes
    /// them with [`tun_offload::complete_checksum`] and the header, or keeps
    /// this off (the default). One kernel path does not complete them: an
    /// XDP program on the device written to that sends the packet on
    /// (XDP_TX, XDP_REDIRECT) carries no checksum state, so a packet that
    /// takes it leaves with the pseudo-header sum as its checksum; keep
    /// this off for such a device.
    pub fn set_partial_checksums(&mut self, on: bool) {
        self.partial = on;
    }

    /// Whether checksums are left partial ([`Self::set_partial_checksums`]).
    pub fn partial_checksums(&self) -> bool {
        self.partial
    }

    /// Write the current step's header in front of its `count` packets
    /// from `bufs[first]` on (partial checksums only).
    fn mark<B: AsMut<[u8]>>(&self, bufs: &mut [B], first: usize, count: usize, offset: usize) {
        if !self.partial || offset < VirtioNetHdr::LEN {
            return;
        }
        let bytes = self.step_hdr.to_bytes();
        for b in bufs.iter_mut().skip(first).take(count) {
            b.as_mut()[offset - VirtioNetHdr::LEN..offset].copy_from_slice(&bytes);
        }
    }

    /// Counters since this state was made.
    pub fn stats(&self) -> RecvStats {
        self.stats
    }

    /// Whether packets read from the kernel wait here for the next call.
    pub fn has_pending(&self) -> bool {
        !matches!(self.pending, Pending::None)
    }

    /// Whether an error met after some packets of the last batch waits to
    /// be returned by the next call.
    pub fn has_deferred(&self) -> bool {
        self.deferred.is_some()
    }

    /// Whether the next call has nothing to hand out before reading: no
    /// pending segments and no deferred error.
    pub fn is_empty(&self) -> bool {
        !self.has_pending() && !self.has_deferred()
    }

    /// Drop what waits here (segments not handed out, a deferred error).
    pub fn clear(&mut self) {
        self.pending = Pending::None;
        self.deferred = None;
    }

    /// Lay out the next read into `bufs[first..]` (each of which has room
    /// behind `offset`): a chain over as many buffers as a super-packet of
    /// the expected shape needs, when there are that many with room for a
    /// segment each, else the first buffer alone. The layout stays in the
    /// state for [`Self::complete`].
    pub(crate) fn lay_out(
        &mut self,
        framing: Framing,
        buf_lens: impl ExactSizeIterator<Item = usize>,
        first: usize,
        offset: usize,
    ) -> &ReadLayout {
        let left = buf_lens.len();
        let l = &mut self.layout;
        l.prefix_len = framing.prefix_len();
        l.first = first;
        l.slots.clear();
        l.shape = None;
        let mut lens = buf_lens;
        let Some(cap0) = lens.next().map(|b| b.saturating_sub(offset)) else {
            return &self.layout;
        };
        if let Some((shape, true)) = self.shape.filter(|_| framing.vnet && self.into_place) {
            let Shape {
                header_len: hl,
                gso_size: gso,
            } = shape;
            let count = (MAX_SUPER - hl).div_ceil(gso);
            let seg = hl + gso;
            if count <= left
                && count <= MAX_CHAIN
                && hl + count * gso <= FRONT
                && cap0 >= seg
                && lens
                    .take(count - 1)
                    .all(|b| b.saturating_sub(offset) >= seg)
            {
                l.slots.push(offset..offset + seg);
                for _ in 1..count {
                    l.slots.push(offset + hl..offset + seg);
                }
                l.shape = Some(shape);
                return &self.layout;
            }
        }
        // Only what may arrive without a split goes to the caller's buffer
        // directly; a super-packet's head is copied out again, so keep it
        // short: about the MTU (and a tagged Ethernet header on a TAP).
        let len = if framing.vnet {
            let l2 = if framing.l2 {
                tun_offload::frame::MAX_L2_LEN
            } else {
                0
            };
            cap0.min((framing.mtu + l2).clamp(576, 1 << 16))
        } else {
            cap0.min(1 << 16)
        };
        l.slots.push(offset..offset + len);
        &self.layout
    }

    /// The parts of the read just laid out, other than the caller's
    /// buffers: the prefix, the slots (ranges of `bufs[first..]`), the
    /// overflow area.
    pub(crate) fn read_parts(&mut self) -> (&mut [u8], &[Range<usize>], &mut [u8]) {
        let prefix_len = self.layout.prefix_len;
        (
            &mut self.prefix[..prefix_len],
            &self.layout.slots,
            &mut self.scratch[FRONT..],
        )
    }

    /// Hand out what one read laid out by [`Self::lay_out`] returned:
    /// `total` bytes, from the prefix on. Packets go to `bufs[first..]` at
    /// `offset`, their lengths to `lens`.
    pub(crate) fn complete<B: AsMut<[u8]>>(
        &mut self,
        framing: Framing,
        total: usize,
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
    ) -> Step {
        self.step_hdr = VirtioNetHdr::ZERO;
        let step = self.complete_read(framing, total, bufs, lens, offset);
        self.mark(bufs, self.layout.first, step.count, offset);
        step
    }

    fn complete_read<B: AsMut<[u8]>>(
        &mut self,
        framing: Framing,
        total: usize,
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
    ) -> Step {
        let n = self.layout.first;
        let prefix_len = self.layout.prefix_len;
        let slots_len = self.layout.slots_len();
        let cap = bufs[n].as_mut().len().saturating_sub(offset);
        let len = total.saturating_sub(prefix_len);
        self.stats.reads += 1;
        if total < prefix_len || len >= slots_len + OVERFLOW {
            return Step::fault(
                0,
                RxFault::TooSmall {
                    needed: len,
                    available: cap,
                },
            );
        }
        let full = match decode_hdr(framing, &self.prefix) {
            Ok(h) => h,
            Err(error) => return Step::fault(0, RxFault::Bad { index: n, error }),
        };
        let hdr = full.hdr;
        let first_len = self.layout.slots[0].len();
        if hdr.gso_type() == GsoType::NONE {
            if len > first_len {
                if len > cap {
                    return Step::fault(
                        0,
                        RxFault::TooSmall {
                            needed: len,
                            available: cap,
                        },
                    );
                }
                self.gather_into_first(bufs, offset, len);
            }
            let pkt = &mut bufs[n].as_mut()[offset..offset + len];
            match settle_checksum(framing, self.partial, &hdr, pkt) {
                Ok(carries) => self.step_hdr = carries,
                Err(error) => {
                    return Step::fault(
                        0,
                        RxFault::Bad {
                            index: n,
                            error: error.into(),
                        },
                    );
                }
            }
            lens[n] = len;
            return Step::ok(1);
        }
        self.stats.super_packets += 1;
        let tunnel = hdr.gso_type().udp_tunnel() != 0;
        if tunnel {
            self.stats.tunnel_super_packets += 1;
        }
        if let Some(shape) = self.layout.shape.filter(|_| len <= slots_len && !tunnel) {
            let head = &bufs[n].as_mut()[offset..offset + first_len.min(len)];
            let parsed = if framing.l2 {
                GsoPacket::parse_frame_head(&hdr, head, len)
            } else {
                GsoPacket::parse_head(&hdr, head, len)
            };
            if let Ok(g) = parsed {
                let seen = Shape {
                    header_len: g.header_len(),
                    gso_size: g.gso_size(),
                };
                let count = g.segment_count();
                if seen == shape
                    && g.header_len() <= MAX_PLACED_HEADER_LEN
                    && count <= self.layout.slots.len()
                {
                    self.learn(seen);
                    let end = n + count;
                    let (bufs, lens) = (&mut bufs[n..end], &mut lens[n..end]);
                    let placed = if self.partial {
                        self.step_hdr = g.partial_hdr();
                        g.split_placed_partial(bufs, lens, offset)
                    } else {
                        g.split_placed(bufs, lens, offset)
                    };
                    if let Ok(k) = placed {
                        self.stats.placed += 1;
                        return Step::ok(k);
                    }
                }
            }
        }
        // Put the read back together in the scratch buffer, its slots in
        // front of the overflow area, then split from there.
        let start = self.gather_into_scratch(bufs, len);
        self.pending = Pending::Raw {
            hdr: full,
            start,
            len,
        };
        self.deliver_raw(framing, bufs, lens, offset, n, true)
    }

    /// A packet that needs no split but spilled from the first slot into
    /// the next ones (and the overflow area): bring it together in the
    /// first buffer, which has room for `len` bytes behind `offset`.
    fn gather_into_first<B: AsMut<[u8]>>(&mut self, bufs: &mut [B], offset: usize, len: usize) {
        let n = self.layout.first;
        let (head, rest) = bufs[n..].split_at_mut(1);
        let dst = &mut head[0].as_mut()[offset..offset + len];
        let mut at = self.layout.slots[0].len();
        for (k, slot) in self.layout.slots.iter().enumerate().skip(1) {
            if at >= len {
                return;
            }
            let take = slot.len().min(len - at);
            let src = &rest[k - 1].as_mut()[slot.start..slot.start + take];
            dst[at..at + take].copy_from_slice(src);
            at += take;
        }
        if at < len {
            dst[at..].copy_from_slice(&self.scratch[FRONT..FRONT + len - at]);
        }
    }

    /// Copy the slots' share of a `len`-byte read in front of the overflow
    /// area, making the read contiguous; returns where it starts.
    fn gather_into_scratch<B: AsMut<[u8]>>(&mut self, bufs: &mut [B], len: usize) -> usize {
        let n = self.layout.first;
        let in_slots = len.min(self.layout.slots_len());
        let start = FRONT - in_slots;
        let mut at = start;
        let mut left = in_slots;
        for (k, slot) in self.layout.slots.iter().enumerate() {
            if left == 0 {
                break;
            }
            let take = slot.len().min(left);
            let src = &bufs[n + k].as_mut()[slot.start..slot.start + take];
            self.scratch[at..at + take].copy_from_slice(src);
            at += take;
            left -= take;
        }
        start
    }

    /// Remember a super-packet's shape: the second time in a row, the next
    /// read is laid out as a chain for it.
    fn learn(&mut self, seen: Shape) {
        self.shape = Some(match self.shape {
            Some((last, _)) if last == seen => (seen, true),
            _ => (seen, false),
        });
    }

    /// Hand out what the state holds into `bufs[n..]`.
    pub(crate) fn deliver_pending<B: AsMut<[u8]>>(
        &mut self,
        framing: Framing,
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
        n: usize,
    ) -> Step {
        self.step_hdr = VirtioNetHdr::ZERO;
        let step = self.deliver_held(framing, bufs, lens, offset, n);
        self.mark(bufs, n, step.count, offset);
        step
    }

    fn deliver_held<B: AsMut<[u8]>>(
        &mut self,
        framing: Framing,
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
        n: usize,
    ) -> Step {
        match self.pending {
            Pending::None => Step::ok(0),
            Pending::Raw { .. } => self.deliver_raw(framing, bufs, lens, offset, n, false),
            Pending::Segments { .. } => self.deliver_segments(bufs, lens, offset, n),
        }
    }

    /// Split the super-packet held as [`Pending::Raw`] into `bufs[n..]`,
    /// or keep it; `fresh`: it was just read (its shape is news).
    fn deliver_raw<B: AsMut<[u8]>>(
        &mut self,
        framing: Framing,
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
        n: usize,
        fresh: bool,
    ) -> Step {
        let Pending::Raw { hdr, start, len } = self.pending else {
            return Step::ok(0);
        };
        let pkt = &self.scratch[start..start + len];
        let gso = match SuperPacket::parse(framing.l2, &hdr, pkt) {
            Ok(g) => g,
            Err(error) => {
                self.pending = Pending::None;
                return Step::fault(0, RxFault::Bad { index: n, error });
            }
        };
        if fresh {
            if let Some(shape) = gso.shape() {
                self.learn(shape);
            }
        }
        let count = gso.segment_count();
        let need = offset + gso.max_segment_len();
        let left = &mut bufs[n..];
        let partial = self.partial;
        self.step_hdr = gso.segment_hdr(partial);
        if count <= left.len() && left[..count].iter_mut().all(|b| b.as_mut().len() >= need) {
            self.pending = Pending::None;
            let pkt = &self.scratch[start..start + len];
            let (left, lens) = (&mut left[..count], &mut lens[n..n + count]);
            return match gso.split_into(pkt, left, lens, offset, partial) {
                Ok(k) => Step::ok(k),
                Err(SplitError::OutOfSpace { produced, .. }) => Step::ok(produced),
                Err(SplitError::Invalid(error)) => Step::fault(
                    0,
                    RxFault::Bad {
                        index: n,
                        error: error.into(),
                    },
                ),
            };
        }
        if n > 0 {
            // Keep it for the next call, which starts with empty buffers.
            return Step::ok(0);
        }
        // Not even an empty batch holds it: split into our own segments
        // and hand them out over as many calls as it takes.
        ensure_segments(
            &mut self.segs,
            &mut self.seg_lens,
            count,
            gso.max_segment_len(),
        );
        let pkt = &self.scratch[start..start + len];
        let (segs, seg_lens) = (&mut self.segs[..count], &mut self.seg_lens[..count]);
        let count = match gso.split_into(pkt, segs, seg_lens, 0, partial) {
            Ok(k) => k,
            Err(SplitError::OutOfSpace { produced, .. }) => produced,
            Err(SplitError::Invalid(error)) => {
                self.pending = Pending::None;
                return Step::fault(
                    0,
                    RxFault::Bad {
                        index: n,
                        error: error.into(),
                    },
                );
            }
        };
        self.pending = Pending::Segments {
            next: 0,
            count,
            hdr: self.step_hdr,
        };
        self.deliver_segments(bufs, lens, offset, n)
    }

    fn deliver_segments<B: AsMut<[u8]>>(
        &mut self,
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
        mut n: usize,
    ) -> Step {
        let Pending::Segments {
            mut next,
            count,
            hdr,
        } = self.pending
        else {
            return Step::ok(0);
        };
        self.step_hdr = hdr;
        let start = n;
        while next < count && n < bufs.len() {
            let len = self.seg_lens[next];
            let buf = bufs[n].as_mut();
            let available = buf.len().saturating_sub(offset);
            if available < len {
                // This segment is dropped; the ones behind it stay.
                next += 1;
                self.pending = if next < count {
                    Pending::Segments { next, count, hdr }
                } else {
                    Pending::None
                };
                return Step::fault(
                    n - start,
                    RxFault::TooSmall {
                        needed: len,
                        available,
                    },
                );
            }
            buf[offset..offset + len].copy_from_slice(&self.segs[next][..len]);
            lens[n] = len;
            n += 1;
            next += 1;
        }
        self.pending = if next < count {
            Pending::Segments { next, count, hdr }
        } else {
            Pending::None
        };
        Step::ok(n - start)
    }
}

/// The virtio header at the end of a read's `prefix` (packet information
/// first, if any), in its 24-byte form; all zero without one.
pub(crate) fn decode_hdr(
    framing: Framing,
    prefix: &[u8],
) -> Result<VirtioNetHdrV1HashTunnel, Malformed> {
    if !framing.vnet {
        return Ok(VirtioNetHdrV1HashTunnel::plain(VirtioNetHdr::ZERO));
    }
    let at = if framing.pi { PacketInfo::LEN } else { 0 };
    let bytes = prefix.get(at..at + framing.vnet_len()).unwrap_or_default();
    let decoded = if framing.tunnel {
        VirtioNetHdrV1HashTunnel::decode(bytes)
    } else {
        VirtioNetHdr::decode(bytes).map(VirtioNetHdrV1HashTunnel::plain)
    };
    decoded.map_err(|e| {
        Malformed::Plain(PacketError::Truncated {
            layer: Layer::Ipv4,
            required: e.required,
            len: e.len,
        })
    })
}

/// Settle the checksum of a packet the kernel handed over whole (`hdr`
/// says no GSO), in place, and return the virtio header it carries on.
///
/// With `partial`, a sum the kernel left at the packet's own transport
/// header is handed out as it came (only its place checked), and the
/// packet carries its header's checksum part. Any other partial sum is
/// completed: one elsewhere (an inner checksum of a tunnel datagram), so
/// that the outer packets can still be coalesced, and with the UDP-tunnel
/// offload a UDP datagram's (maybe a VXLAN or Geneve one, whose tunnel
/// coalescing verifies the outer checksum); the packet then carries at most
/// DATA_VALID.
pub(crate) fn settle_checksum(
    framing: Framing,
    partial: bool,
    hdr: &VirtioNetHdr,
    pkt: &mut [u8],
) -> Result<VirtioNetHdr, PacketError> {
    let keep = partial
        && tun_offload::is_transport_partial(hdr, pkt, framing.l2)
        && !(framing.tunnel && usize::from(hdr.csum_offset()) == UDP_CSUM_OFFSET);
    if keep {
        tun_offload::check_partial(hdr, pkt)?;
    } else {
        tun_offload::complete_checksum(hdr, pkt)?;
    }
    Ok(if keep || !hdr.flags().contains(HdrFlags::NEEDS_CSUM) {
        hdr.checksum_part()
    } else {
        VirtioNetHdr::ZERO
    })
}

/// Grow `segs` (and `lens`) to at least `count` buffers of at least `len`
/// bytes each: the segment storage of a split the caller's buffers could
/// not take, reused from call to call.
pub(crate) fn ensure_segments(
    segs: &mut Vec<Vec<u8>>,
    lens: &mut Vec<usize>,
    count: usize,
    len: usize,
) {
    if segs.len() < count {
        segs.resize_with(count, Vec::new);
        lens.resize(count, 0);
    }
    for s in &mut segs[..count] {
        if s.len() < len {
            s.resize(len, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_packets::{plain_udp, reference, super_tcp};
    use tun_offload::HdrFlags;

    const OFF: usize = 10;

    fn vnet() -> Framing {
        Framing {
            pi: false,
            vnet: true,
            tunnel: false,
            l2: false,
            mtu: 1500,
        }
    }

    /// What the kernel's `readv` does with `wire` (prefix and packet) for
    /// the layout the state chose: fill the prefix, the slots, the
    /// overflow area in order, and return how much it put there.
    fn read(st: &mut RecvState, f: Framing, bufs: &mut [Vec<u8>], n: usize, wire: &[u8]) -> usize {
        st.lay_out(f, bufs[n..].iter().map(Vec::len), n, OFF);
        let (prefix, slots, overflow) = st.read_parts();
        let slots = slots.to_vec();
        let mut rest = wire;
        let mut put = |dst: &mut [u8]| {
            let k = dst.len().min(rest.len());
            dst[..k].copy_from_slice(&rest[..k]);
            rest = &rest[k..];
            k
        };
        let mut total = put(prefix);
        for (k, r) in slots.iter().enumerate() {
            total += put(&mut bufs[n + k][r.clone()]);
        }
        total + put(overflow)
    }

    fn wire(hdr: &VirtioNetHdr, pkt: &[u8]) -> Vec<u8> {
        [&hdr.to_bytes()[..], pkt].concat()
    }

    fn batch(count: usize, len: usize) -> (Vec<Vec<u8>>, Vec<usize>) {
        (vec![vec![0xccu8; len]; count], vec![0; count])
    }

    /// Read `wire` at batch position `n` and complete it.
    fn recv(
        st: &mut RecvState,
        bufs: &mut [Vec<u8>],
        lens: &mut [usize],
        n: usize,
        w: &[u8],
    ) -> Step {
        let total = read(st, vnet(), bufs, n, w);
        st.complete(vnet(), total, bufs, lens, OFF)
    }

    fn out(bufs: &[Vec<u8>], lens: &[usize], range: Range<usize>) -> Vec<Vec<u8>> {
        range
            .map(|i| bufs[i][OFF..OFF + lens[i]].to_vec())
            .collect()
    }

    #[test]
    fn reads_go_into_place_only_when_asked() {
        let mut st = RecvState::new();
        assert!(!st.reads_into_place());
        let (mut bufs, mut lens) = batch(64, 65_600);
        for _ in 0..3 {
            let (hdr, pkt) = super_tcp(60_000, 1448, 1, 12);
            let step = recv(&mut st, &mut bufs, &mut lens, 0, &wire(&hdr, &pkt));
            assert_eq!(step, Step::ok(reference(&hdr, &pkt).len()));
            assert_eq!(
                st.lay_out(vnet(), bufs.iter().map(Vec::len), 0, OFF)
                    .slots
                    .len(),
                1
            );
        }
        assert_eq!(st.stats().placed, 0);
    }

    #[test]
    fn a_repeated_shape_is_read_into_place_and_split_without_a_copy() {
        let mut st = RecvState::new();
        st.set_read_into_place(true);
        let (mut bufs, mut lens) = batch(64, 65_600);
        for round in 0..4u32 {
            let (hdr, pkt) = super_tcp(60_000, 1448, round * 100_000, 12);
            // The first two learn the shape; from the third on, the read
            // is a chain of 42 slots and lands in place.
            let chained = st
                .lay_out(vnet(), bufs.iter().map(Vec::len), 0, OFF)
                .slots
                .len();
            assert_eq!(
                chained,
                if round < 2 {
                    1
                } else {
                    (MAX_SUPER - 52).div_ceil(1448)
                }
            );
            let step = recv(&mut st, &mut bufs, &mut lens, 0, &wire(&hdr, &pkt));
            let want = reference(&hdr, &pkt);
            assert_eq!(step, Step::ok(want.len()), "round {round}");
            assert_eq!(out(&bufs, &lens, 0..want.len()), want, "round {round}");
            assert_eq!(st.stats().placed, u64::from(round.saturating_sub(1)));
        }
        assert_eq!(st.stats().super_packets, 4);
        assert!(!st.has_pending());
    }

    /// What `bufs[i]` holds with partial checksums: the header in front of
    /// the packet, and the packet completed under it as the kernel would.
    fn completed(bufs: &[Vec<u8>], lens: &[usize], i: usize) -> (VirtioNetHdr, Vec<u8>) {
        let hdr = VirtioNetHdr::decode(&bufs[i][OFF - VirtioNetHdr::LEN..OFF]).unwrap();
        let mut pkt = bufs[i][OFF..OFF + lens[i]].to_vec();
        tun_offload::complete_checksum(&hdr, &mut pkt).unwrap();
        (hdr, pkt)
    }

    /// With partial checksums, every way a super-packet is handed out (the
    /// copying split, the read into place, segments held over several
    /// calls) puts each segment's NEEDS_CSUM header in front of it, and
    /// completed they are the complete split's; a packet the kernel sent
    /// partial comes as it was, behind its header; a complete one behind
    /// the zero header.
    #[test]
    fn partial_checksums_hand_out_each_packet_behind_its_header() {
        for into_place in [false, true] {
            let mut st = RecvState::new();
            st.set_partial_checksums(true);
            st.set_read_into_place(into_place);
            let (mut bufs, mut lens) = batch(64, 65_600);
            for round in 0..4u32 {
                let (hdr, pkt) = super_tcp(60_000, 1448, round * 100_000, 12);
                let want = reference(&hdr, &pkt);
                let step = recv(&mut st, &mut bufs, &mut lens, 0, &wire(&hdr, &pkt));
                assert_eq!(step, Step::ok(want.len()));
                let g = GsoPacket::parse(&hdr, &pkt).unwrap();
                for (i, w) in want.iter().enumerate() {
                    let (h, done) = completed(&bufs, &lens, i);
                    assert_eq!(h, g.partial_hdr(), "round {round}, segment {i}");
                    let field = 20 + 16;
                    let at = OFF + field;
                    assert_ne!(bufs[i][at..at + 2], w[field..field + 2], "left partial");
                    assert_eq!(&done, w, "round {round}, segment {i}");
                }
            }
            assert_eq!(st.stats().placed, if into_place { 2 } else { 0 });
        }
        // Held over several calls: a batch of 10 buffers for 42 segments.
        let mut st = RecvState::new();
        st.set_partial_checksums(true);
        let (mut bufs, mut lens) = batch(10, 65_600);
        let (hdr, pkt) = super_tcp(60_000, 1448, 5, 0);
        let want = reference(&hdr, &pkt);
        let mut got = Vec::new();
        let first = recv(
            &mut st,
            &mut bufs[..1],
            &mut lens[..1],
            0,
            &wire(&hdr, &pkt),
        );
        got.extend((0..first.count).map(|i| completed(&bufs, &lens, i).1));
        while st.has_pending() {
            let step = st.deliver_pending(vnet(), &mut bufs, &mut lens, OFF, 0);
            for i in 0..step.count {
                let (h, done) = completed(&bufs, &lens, i);
                assert_eq!(h.flags(), HdrFlags::NEEDS_CSUM);
                got.push(done);
            }
        }
        assert_eq!(got, want);
        // A packet the kernel left partial, and a complete one.
        let (mut bufs, mut lens) = batch(2, 2000);
        let (hdr, pkt) = super_tcp(1000, 1448, 9, 0);
        let none = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::NONE, 0, 0, 20, 16);
        let step = recv(&mut st, &mut bufs, &mut lens, 0, &wire(&none, &pkt));
        assert_eq!(step, Step::ok(1));
        assert_eq!(&bufs[0][OFF..OFF + lens[0]], &pkt[..], "as it came");
        assert_eq!(
            completed(&bufs, &lens, 0),
            (none, reference(&hdr, &pkt)[0].clone())
        );
        let udp = plain_udp(300);
        let valid = VirtioNetHdr::new(HdrFlags::DATA_VALID, GsoType::NONE, 0, 0, 0, 0);
        let step = recv(&mut st, &mut bufs, &mut lens, 1, &wire(&valid, &udp));
        assert_eq!(step, Step::ok(1));
        assert_eq!(completed(&bufs, &lens, 1), (valid, udp.clone()));
        let step = recv(
            &mut st,
            &mut bufs,
            &mut lens,
            1,
            &wire(&VirtioNetHdr::ZERO, &udp),
        );
        assert_eq!(step, Step::ok(1));
        assert_eq!(
            completed(&bufs, &lens, 1),
            (VirtioNetHdr::ZERO, udp.clone())
        );
        // Partial elsewhere than at its own transport header (the inner
        // checksum of a tunnel datagram): completed, behind the zero header.
        let inner = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::NONE, 0, 0, 28 + 50, 16);
        let step = recv(&mut st, &mut bufs, &mut lens, 1, &wire(&inner, &udp));
        assert_eq!(step, Step::ok(1));
        let mut want = udp.clone();
        tun_offload::complete_checksum(&inner, &mut want).unwrap();
        assert_ne!(want, udp);
        assert_eq!(completed(&bufs, &lens, 1), (VirtioNetHdr::ZERO, want));
        // With the UDP-tunnel offload a partial UDP datagram (maybe a
        // VXLAN one, whose coalescing verifies its outer checksum) is
        // completed.
        let mut partial_udp = udp.clone();
        let own = tun_offload::partial::prepare_partial_checksum(&mut partial_udp);
        assert_eq!(own.csum_offset(), 6);
        let tf = Framing {
            tunnel: true,
            ..vnet()
        };
        let mut w = VirtioNetHdrV1HashTunnel::plain(own).to_bytes().to_vec();
        w.extend_from_slice(&partial_udp);
        let total = read(&mut st, tf, &mut bufs, 1, &w);
        let step = st.complete(tf, total, &mut bufs, &mut lens, OFF);
        assert_eq!(step, Step::ok(1));
        assert_eq!(
            completed(&bufs, &lens, 1),
            (VirtioNetHdr::ZERO, udp.clone())
        );
        // Without it, the same datagram is handed out partial.
        let step = recv(&mut st, &mut bufs, &mut lens, 1, &wire(&own, &partial_udp));
        assert_eq!(step, Step::ok(1));
        assert_eq!(&bufs[1][OFF..OFF + lens[1]], &partial_udp[..]);
        assert_eq!(completed(&bufs, &lens, 1).0, own.checksum_part());
        // A partial header whose field lies outside the packet is a fault.
        let bad = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::NONE, 0, 0, 20, 2000);
        let step = recv(&mut st, &mut bufs, &mut lens, 0, &wire(&bad, &pkt));
        assert!(
            matches!(step.fault, Some(RxFault::Bad { index: 0, .. })),
            "{step:?}"
        );
    }

    #[test]
    fn a_chain_meets_another_shape_a_plain_packet_and_a_long_one() {
        let mut st = RecvState::new();
        st.set_read_into_place(true);
        let (mut bufs, mut lens) = batch(64, 65_600);
        for _ in 0..2 {
            let (hdr, pkt) = super_tcp(20_000, 1448, 1, 12);
            recv(&mut st, &mut bufs, &mut lens, 0, &wire(&hdr, &pkt));
        }
        // Another header length under a chain laid out for 52 bytes: put
        // back together and split by copy, every byte right.
        let (hdr, pkt) = super_tcp(30_000, 1448, 9, 0);
        let step = recv(&mut st, &mut bufs, &mut lens, 0, &wire(&hdr, &pkt));
        let want = reference(&hdr, &pkt);
        assert_eq!(step, Step::ok(want.len()));
        assert_eq!(out(&bufs, &lens, 0..want.len()), want);
        assert_eq!(st.stats().placed, 0);
        // The shape changed: no chain until it repeats.
        assert_eq!(
            st.lay_out(vnet(), bufs.iter().map(Vec::len), 0, OFF)
                .slots
                .len(),
            1
        );
        for _ in 0..2 {
            let (hdr, pkt) = super_tcp(3000, 1448, 1, 12);
            recv(&mut st, &mut bufs, &mut lens, 0, &wire(&hdr, &pkt));
        }
        assert!(
            st.lay_out(vnet(), bufs.iter().map(Vec::len), 0, OFF)
                .slots
                .len()
                > 1
        );
        // A packet that needs no split lands in the first slot.
        let small = plain_udp(100);
        let step = recv(
            &mut st,
            &mut bufs,
            &mut lens,
            0,
            &wire(&VirtioNetHdr::ZERO, &small),
        );
        assert_eq!(step, Step::ok(1));
        assert_eq!(out(&bufs, &lens, 0..1), [small]);
        // One longer than the first slot (a 9000-byte MTU) spills into the
        // next ones and comes out whole in the first buffer.
        let long = plain_udp(8972);
        let step = recv(
            &mut st,
            &mut bufs,
            &mut lens,
            3,
            &wire(&VirtioNetHdr::ZERO, &long),
        );
        assert_eq!(step, Step::ok(1));
        assert_eq!(out(&bufs, &lens, 3..4), [long]);
    }

    #[test]
    fn a_super_packet_that_does_not_fit_the_batch_left_waits_for_the_next_call() {
        let mut st = RecvState::new();
        let (mut bufs, mut lens) = batch(8, 2000);
        let (hdr, pkt) = super_tcp(5000, 1000, 7, 0);
        // Five segments, three buffers left behind position 5: kept.
        let step = recv(&mut st, &mut bufs, &mut lens, 5, &wire(&hdr, &pkt));
        assert_eq!(step, Step::ok(0));
        assert!(st.has_pending());
        let step = st.deliver_pending(vnet(), &mut bufs, &mut lens, OFF, 0);
        let want = reference(&hdr, &pkt);
        assert_eq!(step, Step::ok(5));
        assert_eq!(out(&bufs, &lens, 0..5), want);
        assert!(!st.has_pending());
    }

    #[test]
    fn a_super_packet_larger_than_any_batch_is_handed_out_over_several_calls() {
        let mut st = RecvState::new();
        let (mut bufs, mut lens) = batch(4, 1600);
        let (hdr, pkt) = super_tcp(10_000, 1000, 3, 0);
        let want = reference(&hdr, &pkt);
        let mut got = Vec::new();
        let step = recv(&mut st, &mut bufs, &mut lens, 0, &wire(&hdr, &pkt));
        assert_eq!(step, Step::ok(4));
        got.extend(out(&bufs, &lens, 0..4));
        while st.has_pending() {
            let step = st.deliver_pending(vnet(), &mut bufs, &mut lens, OFF, 0);
            assert!(step.fault.is_none());
            got.extend(out(&bufs, &lens, 0..step.count));
        }
        assert_eq!(got, want);
    }

    #[test]
    fn a_segment_too_long_for_its_buffer_is_a_fault_after_the_ones_before() {
        let mut st = RecvState::new();
        let (hdr, pkt) = super_tcp(5000, 1000, 3, 0);
        // Two buffers: the split goes to the state's segments.
        let (mut bufs, mut lens) = batch(2, 1100);
        let step = recv(&mut st, &mut bufs, &mut lens, 0, &wire(&hdr, &pkt));
        assert_eq!(step, Step::ok(2));
        // Then a buffer too short for the third: a fault before any packet,
        // and the fourth and fifth still come.
        let mut short = vec![vec![0u8; OFF + 500], vec![0u8; 1100], vec![0u8; 1100]];
        let mut s = [0usize; 3];
        let step = st.deliver_pending(vnet(), &mut short, &mut s, OFF, 0);
        assert_eq!(
            step,
            Step::fault(
                0,
                RxFault::TooSmall {
                    needed: 1040,
                    available: 500
                }
            )
        );
        let step = st.deliver_pending(vnet(), &mut short, &mut s, OFF, 1);
        assert_eq!(step, Step::ok(2));
        assert_eq!(out(&short, &s, 1..3), reference(&hdr, &pkt)[3..]);
    }

    #[test]
    fn truncated_reads_and_bad_headers_are_faults() {
        let mut st = RecvState::new();
        let (mut bufs, mut lens) = batch(4, 2000);
        // A read that fills the first slot and the whole overflow area may
        // have lost bytes.
        let huge = vec![0u8; 200_000];
        let step = recv(&mut st, &mut bufs, &mut lens, 0, &huge);
        assert!(
            matches!(step.fault, Some(RxFault::TooSmall { .. })),
            "{step:?}"
        );
        // Shorter than its virtio header.
        let step = recv(&mut st, &mut bufs, &mut lens, 0, &[0u8; 4]);
        assert!(
            matches!(step.fault, Some(RxFault::TooSmall { .. })),
            "{step:?}"
        );
        // A GSO header over a packet too short for its TCP header.
        let (hdr, pkt) = super_tcp(5000, 1000, 3, 0);
        let step = recv(&mut st, &mut bufs, &mut lens, 2, &wire(&hdr, &pkt[..30]));
        assert!(
            matches!(step.fault, Some(RxFault::Bad { index: 2, .. })),
            "{step:?}"
        );
        assert!(!st.has_pending());
        // A plain packet longer than its buffer.
        let long = plain_udp(3000);
        let step = recv(
            &mut st,
            &mut bufs,
            &mut lens,
            0,
            &wire(&VirtioNetHdr::ZERO, &long),
        );
        assert_eq!(
            step,
            Step::fault(
                0,
                RxFault::TooSmall {
                    needed: 3028,
                    available: 2000 - OFF
                }
            )
        );
    }

    #[test]
    fn lengths_near_the_limits_never_panic() {
        let mut st = RecvState::new();
        let (mut bufs, mut lens) = batch(3, 64);
        // A layout for buffers with no room behind the offset, and a total
        // the layout cannot have held.
        st.lay_out(vnet(), [OFF, 0, usize::MAX].into_iter(), 0, OFF);
        let step = st.complete(vnet(), usize::MAX, &mut bufs, &mut lens, OFF);
        assert!(matches!(step.fault, Some(RxFault::TooSmall { .. })));
        st.lay_out(vnet(), bufs.iter().map(Vec::len), 0, OFF);
        let step = st.complete(vnet(), 0, &mut bufs, &mut lens, OFF);
        assert!(matches!(step.fault, Some(RxFault::TooSmall { .. })));
    }

    fn tunnel_framing() -> Framing {
        Framing {
            tunnel: true,
            ..vnet()
        }
    }

    #[test]
    fn a_tunnel_super_packet_is_split_into_outer_datagrams() {
        use crate::test_packets::{tunnel_reference, vxlan_super};
        for into_place in [false, true] {
            let mut st = RecvState::new();
            st.set_read_into_place(into_place);
            let (mut bufs, mut lens) = batch(64, 65_600);
            for round in 0..3u32 {
                let (hdr, pkt) = vxlan_super(20_000, 1398, round * 50_000);
                let wire = [&hdr.to_bytes()[..], &pkt].concat();
                let total = read(&mut st, tunnel_framing(), &mut bufs, 0, &wire);
                let step = st.complete(tunnel_framing(), total, &mut bufs, &mut lens, OFF);
                let want = tunnel_reference(&hdr, &pkt, false);
                assert_eq!(want.len(), 20_000usize.div_ceil(1398));
                assert_eq!(step, Step::ok(want.len()), "round {round}");
                assert_eq!(out(&bufs, &lens, 0..want.len()), want, "round {round}");
            }
            // Never read into place: a tunnel's shape is not learnt.
            assert_eq!(st.stats().placed, 0);
            assert_eq!(st.stats().tunnel_super_packets, 3);
            assert_eq!(st.stats().super_packets, 3);
        }
    }

    #[test]
    fn a_plain_packet_behind_a_24_byte_header_is_handed_out_whole() {
        let mut st = RecvState::new();
        let (mut bufs, mut lens) = batch(4, 2000);
        let (hdr, pkt) = super_tcp(1000, 1448, 5, 0);
        let plain = VirtioNetHdrV1HashTunnel::plain(hdr);
        let wire = [&plain.to_bytes()[..], &pkt].concat();
        let total = read(&mut st, tunnel_framing(), &mut bufs, 0, &wire);
        let step = st.complete(tunnel_framing(), total, &mut bufs, &mut lens, OFF);
        // One segment: handed out as one packet, every byte the split's.
        assert_eq!(step, Step::ok(1));
        assert_eq!(out(&bufs, &lens, 0..1), reference(&hdr, &pkt));
        assert_eq!(st.stats().tunnel_super_packets, 0);
    }

    #[test]
    fn a_tunnel_header_that_does_not_match_is_a_tunnel_fault() {
        use crate::test_packets::vxlan_super;
        let mut st = RecvState::new();
        let (mut bufs, mut lens) = batch(64, 65_600);
        let (hdr, pkt) = vxlan_super(10_000, 1398, 1);
        // The outer transport header is not where the header says.
        let bad = VirtioNetHdrV1HashTunnel::new(hdr.hdr, 24, hdr.inner_nh_offset());
        let wire = [&bad.to_bytes()[..], &pkt].concat();
        let total = read(&mut st, tunnel_framing(), &mut bufs, 0, &wire);
        let step = st.complete(tunnel_framing(), total, &mut bufs, &mut lens, OFF);
        assert_eq!(step.count, 0);
        assert!(
            matches!(
                step.fault,
                Some(RxFault::Bad {
                    index: 0,
                    error: Malformed::Tunnel(TunnelError::OuterThMismatch { .. })
                })
            ),
            "{step:?}"
        );
        assert!(!st.has_pending());
        // A 10-byte framing reads the same bytes as a header and a packet
        // that starts 14 bytes early: a fault, never a panic.
        let total = read(&mut st, vnet(), &mut bufs, 0, &wire);
        let step = st.complete(vnet(), total, &mut bufs, &mut lens, OFF);
        assert!(step.fault.is_some(), "{step:?}");
    }

    #[test]
    fn a_tunnel_super_packet_larger_than_the_batch_is_handed_out_over_several_calls() {
        use crate::test_packets::{tunnel_reference, vxlan_super};
        let mut st = RecvState::new();
        // One buffer, as the single-packet receive has.
        let (mut bufs, mut lens) = batch(1, 1600);
        let (hdr, pkt) = vxlan_super(12_000, 1398, 9);
        let want = tunnel_reference(&hdr, &pkt, false);
        let wire = [&hdr.to_bytes()[..], &pkt].concat();
        let total = read(&mut st, tunnel_framing(), &mut bufs, 0, &wire);
        let step = st.complete(tunnel_framing(), total, &mut bufs, &mut lens, OFF);
        assert_eq!(step, Step::ok(1));
        let mut got = out(&bufs, &lens, 0..1);
        while st.has_pending() {
            let step = st.deliver_pending(tunnel_framing(), &mut bufs, &mut lens, OFF, 0);
            assert_eq!(step, Step::ok(1));
            got.extend(out(&bufs, &lens, 0..1));
        }
        assert_eq!(got, want);
    }
}
