//! The send half of a queue as an I/O-free state machine: a batch is
//! planned once ([`SendState::prepare`]: coalesced by tun-offload's
//! [`GroTable::plan`], or framed packet by packet), then the engine says
//! which frame to write next as a list of slices ([`SendState::frame`]) and
//! is told how the write went ([`SendState::complete`]).
//!
//! A coalesced run is one gathered write: the virtio header and the first
//! packet's rewritten headers (held by the table), then every packet's
//! payload where it lies in the caller's buffer. Nothing is copied and the
//! caller's buffers are never written, so a batch can be sent again, or
//! resumed, without being coalesced twice. A run the kernel refuses with
//! EINVAL (GSO write regressions of some kernels) is written again packet by
//! packet, each as it is with a plain header. The queue
//! ([`Queue::send_batch`](crate::Queue::send_batch)) drives this with
//! `writev`; the unit tests below drive it with a scripted writer.

use std::io::IoSlice;

use rustix::io::Errno;
use tun_offload::framing::PacketInfo;
use tun_offload::gro::GroStats;
use tun_offload::{
    GroError, GroTable, TunnelCoalesce, TunnelProto, VirtioNetHdr, VirtioNetHdrV1HashTunnel,
    coalesce_tunnel,
};

use crate::error::BatchError;
use crate::rx::Framing;

/// Empty a slice list and end its borrows, keeping its allocation (the
/// list is empty, so the collect converts nothing and reuses the buffer).
pub(crate) fn recycle(mut iov: Vec<IoSlice<'_>>) -> Vec<IoSlice<'static>> {
    iov.clear();
    iov.into_iter().map(|_| IoSlice::new(&[])).collect()
}

/// The packet information to write in front of `packet` (its first bytes
/// suffice): the EtherType of an IP packet's version on a TUN, 0 for a
/// TAP's frames (`tun_get_user` ignores it there).
pub(crate) fn packet_info(l2: bool, packet: &[u8]) -> PacketInfo {
    if l2 {
        PacketInfo::for_frame()
    } else {
        PacketInfo::for_packet(packet)
    }
}

/// The longest prefix a queue puts in front of a packet: packet
/// information, then the virtio header.
pub(crate) const PREFIX_MAX: usize = PacketInfo::LEN + VirtioNetHdrV1HashTunnel::LEN;

/// Room for one coalesced tunnel run: the largest outer IP packet and a
/// tagged Ethernet header.
const TUNNEL_RUN_ROOM: usize = 0xffff + tun_offload::frame::MAX_L2_LEN;

/// What a queue puts in front of each packet and whether it coalesces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TxFraming {
    /// The queue's wire format, as its receive engine reads it.
    pub(crate) wire: Framing,
    /// Coalesce TCP runs (needs `vnet` without `pi`).
    pub(crate) tcp: bool,
    /// Coalesce UDP runs (needs USO as well).
    pub(crate) udp: bool,
    /// TSO_ECN granted: a CWR segment may start a run.
    pub(crate) ecn: bool,
    /// Coalesce the VXLAN/Geneve datagrams of a tunnel flow into tunnel
    /// super-packets (needs `tunnel`).
    pub(crate) tunnel_gro: bool,
    /// `TUN_F_UDP_TUNNEL_GSO_CSUM` granted: datagrams with an outer UDP
    /// checksum may merge, the kernel computing it per segment.
    pub(crate) outer_csum: bool,
}

impl TxFraming {
    fn coalesces(self) -> bool {
        self.wire.vnet && !self.wire.pi && (self.tcp || self.udp || self.tunnel_gro)
    }
}

/// Which batch a state was prepared for: [`SendState::check_batch`]
/// compares it with the one `send_pending` is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum BatchId {
    /// None yet.
    #[default]
    None,
    /// `count` buffers, packets at `offset`.
    Buffers { count: usize, offset: usize },
    /// A batch of `count` views.
    Views { count: usize },
}

impl BatchId {
    fn count(self) -> usize {
        match self {
            BatchId::None => 0,
            BatchId::Buffers { count, .. } | BatchId::Views { count } => count,
        }
    }
}

/// A batch as the send engine reads it: packets by index, each in one or
/// two pieces (the caller's buffers, or a [`ViewBatch`](crate::ViewBatch)),
/// and how the coalescing table plans it. `'a` is how long its bytes live.
pub(crate) trait TxBatch<'a>: Copy {
    /// What the plan's segments index.
    type Source: AsRef<[u8]> + 'a;

    fn count(self) -> usize;

    fn id(self) -> BatchId;

    /// Packet `j`: its bytes in one or two pieces (the second may be empty).
    fn pieces(self, j: usize) -> Result<[&'a [u8]; 2], BatchError>;

    /// The virtio header packet `j` carries (read with partial checksums).
    fn own_hdr(self, j: usize) -> VirtioNetHdr;

    /// Plan the batch with `table` (read back with `GroTable::planned`).
    fn plan(self, table: &mut GroTable) -> Result<(), GroError>;

    /// What the plan's segments index.
    fn sources(self) -> &'a [Self::Source];
}

/// The caller's buffers: packet `i` is `bufs[i][offset..offset + lens[i]]`.
pub(crate) struct Buffers<'a, B> {
    pub(crate) bufs: &'a [B],
    pub(crate) lens: &'a [usize],
    pub(crate) offset: usize,
}

impl<B> Clone for Buffers<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B> Copy for Buffers<'_, B> {}

impl<'a, B: AsRef<[u8]>> TxBatch<'a> for Buffers<'a, B> {
    type Source = B;

    fn count(self) -> usize {
        self.bufs.len()
    }

    fn id(self) -> BatchId {
        BatchId::Buffers {
            count: self.bufs.len(),
            offset: self.offset,
        }
    }

    fn pieces(self, j: usize) -> Result<[&'a [u8]; 2], BatchError> {
        let buf = self.bufs.get(j).map(|b| b.as_ref()).unwrap_or_default();
        let len = self.lens.get(j).copied().unwrap_or(usize::MAX);
        self.offset
            .checked_add(len)
            .and_then(|end| buf.get(self.offset..end))
            .map(|p| [p, &[][..]])
            .ok_or(BatchError::PacketOutsideBuffer {
                index: j,
                end: self.offset.saturating_add(len),
                buf_len: buf.len(),
            })
    }

    fn own_hdr(self, j: usize) -> VirtioNetHdr {
        let offset = self.offset;
        if offset < VirtioNetHdr::LEN {
            return VirtioNetHdr::ZERO;
        }
        self.bufs
            .get(j)
            .and_then(|b| b.as_ref().get(offset - VirtioNetHdr::LEN..offset))
            .map_or(VirtioNetHdr::ZERO, tun_offload::packet_hdr)
    }

    fn plan(self, table: &mut GroTable) -> Result<(), GroError> {
        table.plan(self.bufs, self.lens, self.offset).map(drop)
    }

    fn sources(self) -> &'a [B] {
        self.bufs
    }
}

/// Whether `pkt` (a TUN packet, or a TAP frame with `l2`) may be a VXLAN or
/// Geneve datagram: UDP behind an outer IP header without options or
/// extension headers, then a VXLAN header (flags exactly I, every reserved
/// field zero; RFC 7348) or a Geneve header (version 0, protocol
/// Ethernet; RFC 8926), then an inner Ethernet header carrying IPv4 or
/// IPv6. A plain UDP payload passes all of that by chance once in about
/// 2^50 (VXLAN) or 2^36 (Geneve); [`coalesce_tunnel`] checks the rest.
/// A false positive costs only the plain UDP coalescing of that batch.
fn maybe_tunnel(pkt: &[u8], l2: bool) -> bool {
    let ip = if l2 {
        match tun_offload::frame::ip_offset(pkt) {
            Some(at) => &pkt[at..],
            None => return false,
        }
    } else {
        pkt
    };
    let udp = match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 && ip[0] == 0x45 && ip[9] == 17 => 20,
        Some(6) if ip.len() >= 40 && ip[6] == 17 => 40,
        _ => return false,
    };
    let Some(tnl) = ip.get(udp + 8..) else {
        return false;
    };
    // Where the inner Ethernet header starts behind the UDP header.
    let eth = match tnl.get(..8) {
        Some([0x08, 0, 0, 0, _, _, _, 0]) => 8,
        Some(&[v, _, 0x65, 0x58, ..]) if v >> 6 == 0 => 8 + usize::from(v & 0x3f) * 4,
        _ => return false,
    };
    matches!(
        tnl.get(eth + 12..eth + 14),
        Some([0x08, 0x00] | [0x86, 0xdd])
    )
}

/// Packet `j` of `batch` if it is in one piece.
fn whole<'a, T: TxBatch<'a>>(batch: T, j: usize) -> Option<&'a [u8]> {
    match batch.pieces(j) {
        Ok([p, []]) => Some(p),
        _ => None,
    }
}

/// The writes of a coalesced batch, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlannedWrite {
    /// Run `k` of the table's plan.
    Run(usize),
    /// Tunnel run `k` of [`SendState::tunnel_runs`].
    Tunnel(usize),
}

/// A tunnel run, coalesced into the state's arena.
#[derive(Debug, Clone, Copy)]
struct TunnelWrite {
    /// The batch index of its first datagram.
    first: usize,
    /// Datagrams it carries (at least two).
    count: usize,
    /// Where the super-packet lies in the arena.
    start: usize,
    len: usize,
    hdr: [u8; VirtioNetHdrV1HashTunnel::LEN],
}

/// What a batched send did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendReport {
    /// Packets of the batch written (merged ones included; a packet the
    /// kernel refused is not).
    pub packets: usize,
    /// Writes made (one per coalesced packet, plus the packets of refused
    /// coalesced writes written one by one).
    pub writes: usize,
    /// Of those, UDP-tunnel super-packets (VXLAN or Geneve datagrams
    /// coalesced, [`Interface::tunnel_coalescing`](crate::Interface::tunnel_coalescing))
    /// the kernel took.
    pub tunnel_writes: usize,
    /// IP bytes handed in (Ethernet frames on a TAP), headers of the queue
    /// excluded.
    pub bytes: usize,
}

/// What [`SendState::complete`] made of a write's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// The frame was written; the engine moved on.
    Frame,
    /// The kernel refused a coalesced write: its packets come one by one
    /// next, and coalescing should be switched off for the device.
    Refallback,
    /// The same for a coalesced tunnel write: tunnel coalescing should be
    /// switched off (the plain kind goes on).
    TunnelRefallback,
}

/// A write that did not work, as [`SendState::complete`] sorts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failed {
    /// The kernel refused packet `index` (EINVAL, EMSGSIZE): it is skipped.
    Rejected { index: usize, errno: Errno },
    /// Anything else (EAGAIN, EIO, ...): nothing moved, the same frame is
    /// next.
    Io { index: usize, errno: Errno },
}

/// Caller-owned state of [`Queue::send_batch`](crate::Queue::send_batch):
/// the coalescing table and plan of the current batch, and how far its
/// writes got (a cursor). Reuse it for every batch; a batch interrupted by
/// an error (or by [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock))
/// is finished with [`Queue::send_pending`](crate::Queue::send_pending) or
/// dropped with [`SendState::clear`].
pub struct SendState {
    table: GroTable,
    /// The caller vouches for the packets' transport checksums.
    verified: bool,
    /// Each packet's virtio header lies in front of it.
    partial: bool,
    /// How the current batch is framed; it was planned by the table when
    /// this coalesces ([`Self::coalesced`]).
    framing: TxFraming,
    /// The batch the plan refers to.
    batch: BatchId,
    /// The first packet of each frame of the batch, in write order.
    heads: Vec<usize>,
    /// What each write is, when the batch was coalesced.
    plan: Vec<PlannedWrite>,
    /// The tunnel runs of the batch, and the arena holding them.
    tunnel_runs: Vec<TunnelWrite>,
    arena: Vec<u8>,
    /// The next frame to write.
    next: usize,
    /// Inside a refused coalesced run: the next of its packets to write
    /// alone.
    fallback: Option<usize>,
    rejected: Vec<usize>,
    /// Packets of the batch written so far.
    written: usize,
    report: SendReport,
    /// The slice list of a gathered write, kept for its capacity.
    iov: Vec<IoSlice<'static>>,
}

impl std::fmt::Debug for SendState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendState")
            .field("pending", &self.pending())
            .field("fallback", &self.fallback)
            .field("report", &self.report)
            .finish()
    }
}

impl Default for SendState {
    fn default() -> Self {
        Self::new()
    }
}

impl SendState {
    /// A fresh state.
    pub fn new() -> Self {
        Self {
            table: GroTable::new(false),
            verified: false,
            partial: false,
            framing: TxFraming::default(),
            batch: BatchId::None,
            heads: Vec::new(),
            plan: Vec::new(),
            tunnel_runs: Vec::new(),
            arena: Vec::new(),
            next: 0,
            fallback: None,
            rejected: Vec::new(),
            written: 0,
            report: SendReport::default(),
            iov: Vec::new(),
        }
    }

    /// Indices (into the batch's buffers) of the first packets of the
    /// writes still to make, in order (a coalesced write carries the
    /// packets merged into it).
    pub fn pending(&self) -> &[usize] {
        &self.heads[self.next.min(self.heads.len())..]
    }

    /// Indices of the first packets of the writes made so far in this
    /// batch.
    pub fn written(&self) -> impl Iterator<Item = usize> + '_ {
        self.heads[..self.next.min(self.heads.len())]
            .iter()
            .copied()
            .filter(|i| !self.rejected.contains(i))
    }

    /// Indices of the packets of this batch the kernel refused (skipped).
    pub fn rejected(&self) -> &[usize] {
        &self.rejected
    }

    /// Packets of the batch neither written nor refused yet.
    pub fn unsent_packets(&self) -> usize {
        self.batch
            .count()
            .saturating_sub(self.written + self.rejected.len())
    }

    /// Whether the batch is fully written.
    pub fn is_done(&self) -> bool {
        self.next >= self.heads.len()
    }

    /// Drop what is left of the batch.
    pub fn clear(&mut self) {
        self.heads.clear();
        self.plan.clear();
        self.tunnel_runs.clear();
        self.rejected.clear();
        self.fallback = None;
        self.next = 0;
        self.written = 0;
        self.batch = BatchId::None;
    }

    /// What the current batch did so far.
    pub fn report(&self) -> SendReport {
        let mut r = self.report;
        r.packets = self.written;
        r
    }

    /// Vouch that the transport checksum of every packet of the batches
    /// sent with this state is correct (off by default), so coalescing
    /// does not read the payloads to verify them, as the kernel's GRO
    /// skips packets marked CHECKSUM_UNNECESSARY
    /// ([`GroTable::set_checksums_verified`]). Right for batches straight
    /// from [`Queue::recv_batch`](crate::Queue::recv_batch), whose packets'
    /// checksums it completed or computed (a relay); wrong for packets
    /// from anywhere else, whose bad checksums would be merged into a
    /// valid one.
    pub fn set_checksums_verified(&mut self, on: bool) {
        self.verified = on;
    }

    /// Whether [`Self::set_checksums_verified`] is on.
    pub fn checksums_verified(&self) -> bool {
        self.verified
    }

    /// Take each packet's virtio header from the 10 bytes in front of it
    /// (`bufs[i][offset - 10..offset]`, so `offset` must be at least 10), as
    /// [`RecvState::set_partial_checksums`](crate::RecvState::set_partial_checksums)
    /// leaves them: a packet whose header says NEEDS_CSUM (its checksum
    /// field holds the pseudo-header sum) coalesces without its checksum
    /// being verified ([`GroTable::set_partial_checksums`]), and a packet
    /// written as it is (alone, or one by one after a refused run) is
    /// written behind its header's checksum part, for the kernel to
    /// complete. Merged runs are NEEDS_CSUM as always. Off by default:
    /// every packet's checksum must then be complete. On a queue without
    /// the virtio header (offload off) a partial checksum cannot be
    /// completed by anyone: such packets must not be sent there.
    pub fn set_partial_checksums(&mut self, on: bool) {
        self.partial = on;
    }

    /// Whether [`Self::set_partial_checksums`] is on.
    pub fn partial_checksums(&self) -> bool {
        self.partial
    }

    /// The header to write in front of packet `j` of `batch`, written as
    /// it is: its own header's checksum part with partial checksums, else
    /// all zero (the header that asks for nothing).
    fn own_hdr<'a, T: TxBatch<'a>>(&self, batch: T, j: usize) -> VirtioNetHdr {
        if self.partial {
            batch.own_hdr(j)
        } else {
            VirtioNetHdr::ZERO
        }
    }

    /// The coalescing counters of the last batch.
    pub fn gro_stats(&self) -> &GroStats {
        self.table.stats()
    }

    /// Plan a batch: packet `i` is `bufs[i][offset..offset + lens[i]]`.
    /// Nothing is written into the buffers.
    pub(crate) fn prepare<B: AsRef<[u8]>>(
        &mut self,
        bufs: &[B],
        lens: &[usize],
        offset: usize,
        framing: TxFraming,
    ) -> Result<(), BatchError> {
        if bufs.len() != lens.len() {
            return Err(BatchError::LengthsMismatch {
                bufs: bufs.len(),
                lens: lens.len(),
            });
        }
        if self.partial && offset < VirtioNetHdr::LEN {
            return Err(BatchError::NoHeaderRoom {
                offset,
                required: VirtioNetHdr::LEN,
            });
        }
        self.clear();
        self.framing = framing;
        let mut bytes = 0usize;
        for (index, (b, &len)) in bufs.iter().zip(lens).enumerate() {
            let buf_len = b.as_ref().len();
            match offset.checked_add(len) {
                Some(end) if end <= buf_len => bytes = bytes.saturating_add(len),
                end => {
                    return Err(BatchError::PacketOutsideBuffer {
                        index,
                        end: end.unwrap_or(usize::MAX),
                        buf_len,
                    });
                }
            }
        }
        self.prepare_batch(Buffers { bufs, lens, offset }, bytes, framing)
    }

    /// Plan a batch of views (their lengths checked when it was filled).
    pub(crate) fn prepare_views(
        &mut self,
        views: &crate::ViewBatch,
        framing: TxFraming,
    ) -> Result<(), BatchError> {
        self.clear();
        let bytes = views.bytes();
        self.prepare_batch(views, bytes, framing)
    }

    /// Plan `batch` of `bytes` bytes (checked by the caller).
    fn prepare_batch<'a, T: TxBatch<'a>>(
        &mut self,
        batch: T,
        bytes: usize,
        framing: TxFraming,
    ) -> Result<(), BatchError> {
        self.framing = framing;
        self.report = SendReport {
            packets: 0,
            writes: 0,
            tunnel_writes: 0,
            bytes,
        };
        let n = batch.count();
        if framing.coalesces() {
            // Tunnel datagrams are UDP: left to the plain rules they would
            // merge as plain UDP. In a batch that has some, the table
            // merges TCP alone and the tunnel runs are made below. (A
            // datagram in two pieces is a split UDP segment, not one.)
            let tunnel = framing.tunnel_gro
                && (0..n)
                    .any(|j| whole(batch, j).is_some_and(|p| maybe_tunnel(p, framing.wire.l2)));
            self.table.set_tcp_gro(framing.tcp);
            self.table.set_udp_gro(framing.udp && !tunnel);
            self.table.set_frames(framing.wire.l2);
            self.table.set_tcp_ecn(framing.ecn);
            self.table.set_checksums_verified(self.verified);
            self.table.set_partial_checksums(self.partial);
            batch
                .plan(&mut self.table)
                .map_err(BatchError::Coalescing)?;
            if tunnel {
                self.plan_tunnel_runs(batch, framing);
            } else {
                let plan = self.table.planned();
                self.heads.extend(plan.iter().map(|run| run.first()));
                self.plan.extend((0..plan.len()).map(PlannedWrite::Run));
            }
        } else {
            self.heads.extend(0..n);
        }
        self.batch = batch.id();
        Ok(())
    }

    /// The frames of a batch with tunnel datagrams: the table's runs, and
    /// each stretch of consecutive datagrams it left alone that coalesces
    /// into a tunnel super-packet of two or more.
    fn plan_tunnel_runs<'a, T: TxBatch<'a>>(&mut self, batch: T, framing: TxFraming) {
        let plan = self.table.planned();
        let packet = |i: usize| whole(batch, i).unwrap_or_default();
        let alone = |k: usize| plan.get(k).filter(|r| !r.is_merged()).map(|r| r.first());
        let mut cfg = TunnelCoalesce {
            proto: TunnelProto::Vxlan,
            frames: framing.wire.l2,
            udp_gro: framing.udp,
            outer_csum: framing.outer_csum,
        };
        let mut k = 0;
        while k < plan.len() {
            let first = alone(k)
                .filter(|&i| whole(batch, i).is_some_and(|p| maybe_tunnel(p, framing.wire.l2)));
            let Some(first) = first else {
                self.heads.push(plan.get(k).map_or(0, |r| r.first()));
                self.plan.push(PlannedWrite::Run(k));
                k += 1;
                continue;
            };
            // The datagrams behind it, each alone in the plan and next in
            // the batch.
            let mut count = 1;
            while alone(k + count) == Some(first + count) && whole(batch, first + count).is_some() {
                count += 1;
            }
            let pkts: Vec<&[u8]> = (first..first + count).map(packet).collect();
            let at = self.tunnel_runs.last().map_or(0, |t| t.start + t.len);
            if self.arena.len() < at + TUNNEL_RUN_ROOM {
                self.arena.resize(at + TUNNEL_RUN_ROOM, 0);
            }
            let out = &mut self.arena[at..at + TUNNEL_RUN_ROOM];
            let run = [TunnelProto::Vxlan, TunnelProto::Geneve]
                .into_iter()
                .find_map(|proto| {
                    cfg.proto = proto;
                    coalesce_tunnel(&cfg, &pkts, out).ok()
                })
                .filter(|run| run.count > 1);
            match run {
                Some(run) => {
                    self.heads.push(first);
                    self.plan.push(PlannedWrite::Tunnel(self.tunnel_runs.len()));
                    self.tunnel_runs.push(TunnelWrite {
                        first,
                        count: run.count,
                        start: at,
                        len: run.len,
                        hdr: run.hdr.to_bytes(),
                    });
                    k += run.count;
                }
                None => {
                    self.heads.push(first);
                    self.plan.push(PlannedWrite::Run(k));
                    k += 1;
                }
            }
        }
    }

    /// The plan's run behind frame `k` (None for a tunnel frame).
    fn planned_run(&self, k: usize) -> Option<tun_offload::gro::PlannedRun<'_>> {
        match self.plan.get(k)? {
            PlannedWrite::Run(r) => self.table.planned().get(*r),
            PlannedWrite::Tunnel(_) => None,
        }
    }

    /// The tunnel run behind frame `k`.
    fn tunnel_run(&self, k: usize) -> Option<&TunnelWrite> {
        match self.plan.get(k)? {
            PlannedWrite::Tunnel(t) => self.tunnel_runs.get(*t),
            PlannedWrite::Run(_) => None,
        }
    }

    /// Check that `given` is the batch [`Self::prepare`] saw.
    pub(crate) fn check_batch(&self, given: BatchId) -> Result<(), BatchError> {
        if self.is_done() || given == self.batch {
            Ok(())
        } else {
            Err(BatchError::NotThePreparedBatch {
                prepared: self.batch.count(),
                given: given.count(),
            })
        }
    }

    /// The slice list to fill for [`Self::frame`], empty, with the
    /// capacity earlier batches grew it to.
    pub(crate) fn take_iov<'a>(&mut self) -> Vec<IoSlice<'a>> {
        std::mem::take(&mut self.iov)
    }

    /// Give the slice list back for the next frame ([`recycle`]d).
    pub(crate) fn put_iov(&mut self, iov: Vec<IoSlice<'static>>) {
        self.iov = iov;
    }

    /// The next frame to write, as slices into `iov` (the queue's prefix
    /// written into `prefix` first); `None` when the batch is done.
    #[cfg(test)]
    pub(crate) fn frame<'a, B: AsRef<[u8]>>(
        &'a self,
        bufs: &'a [B],
        lens: &'a [usize],
        prefix: &'a mut [u8; PREFIX_MAX],
        iov: &mut Vec<IoSlice<'a>>,
    ) -> Result<Option<usize>, BatchError> {
        let offset = match self.batch {
            BatchId::Buffers { offset, .. } => offset,
            _ => 0,
        };
        self.frame_of(Buffers { bufs, lens, offset }, prefix, iov)
    }

    /// [`Self::frame`] of any batch: the one prepared.
    pub(crate) fn frame_of<'s, 'a: 's, T: TxBatch<'a>>(
        &'s self,
        batch: T,
        prefix: &'s mut [u8; PREFIX_MAX],
        iov: &mut Vec<IoSlice<'s>>,
    ) -> Result<Option<usize>, BatchError> {
        iov.clear();
        let Some(&head) = self.heads.get(self.next) else {
            return Ok(None);
        };
        let push = |iov: &mut Vec<IoSlice<'s>>, pieces: [&'s [u8]; 2]| {
            iov.push(IoSlice::new(pieces[0]));
            if !pieces[1].is_empty() {
                iov.push(IoSlice::new(pieces[1]));
            }
        };
        if !self.coalesced() {
            let pieces = batch.pieces(head)?;
            let mut p = 0;
            if self.framing.wire.pi {
                let pi = packet_info(self.framing.wire.l2, pieces[0]);
                prefix[..PacketInfo::LEN].copy_from_slice(&pi.to_bytes());
                p += PacketInfo::LEN;
            }
            if self.framing.wire.vnet {
                p += self.put_own_hdr(batch, head, &mut prefix[p..]);
            }
            if p > 0 {
                iov.push(IoSlice::new(&prefix[..p]));
            }
            push(iov, pieces);
            return Ok(Some(head));
        }
        let not_prepared = BatchError::NotThePreparedBatch {
            prepared: self.heads.len(),
            given: batch.count(),
        };
        if let Some(t) = self.tunnel_run(self.next) {
            return match self.fallback {
                None => {
                    iov.push(IoSlice::new(&t.hdr));
                    iov.push(IoSlice::new(&self.arena[t.start..t.start + t.len]));
                    Ok(Some(head))
                }
                Some(pos) if pos < t.count => {
                    let j = t.first + pos;
                    iov.push(IoSlice::new(self.alone_hdr(batch, j, prefix)));
                    push(iov, batch.pieces(j)?);
                    Ok(Some(j))
                }
                Some(_) => Ok(None),
            };
        }
        let run = self.planned_run(self.next).ok_or(not_prepared)?;
        match self.fallback {
            None => {
                let mut slices = run
                    .slices(batch.sources())
                    .map_err(BatchError::Coalescing)?;
                if self.framing.wire.tunnel {
                    // The table's head starts with the 10-byte header: the
                    // 24-byte one has the same fields in front and zero
                    // tunnel offsets behind.
                    let lead = slices.next().unwrap_or_default();
                    let (hdr, rest) = lead.split_at(VirtioNetHdr::LEN.min(lead.len()));
                    prefix[..VirtioNetHdrV1HashTunnel::LEN].fill(0);
                    prefix[..hdr.len()].copy_from_slice(hdr);
                    iov.push(IoSlice::new(&prefix[..VirtioNetHdrV1HashTunnel::LEN]));
                    if !rest.is_empty() {
                        iov.push(IoSlice::new(rest));
                    }
                }
                iov.extend(slices.map(IoSlice::new));
                Ok(Some(head))
            }
            Some(pos) => {
                let Some(j) = run.packets().nth(pos) else {
                    return Ok(None);
                };
                iov.push(IoSlice::new(self.alone_hdr(batch, j, prefix)));
                push(iov, batch.pieces(j)?);
                Ok(Some(j))
            }
        }
    }

    /// Write the virtio header of packet `j`, written as it is, into the
    /// front of `out` ([`Self::own_hdr`], then zero tunnel fields for a
    /// 24-byte header); returns its length.
    fn put_own_hdr<'a, T: TxBatch<'a>>(&self, batch: T, j: usize, out: &mut [u8]) -> usize {
        let len = self.framing.wire.vnet_len();
        out[..len].fill(0);
        out[..VirtioNetHdr::LEN].copy_from_slice(&self.own_hdr(batch, j).to_bytes());
        len
    }

    /// The virtio header of packet `j` written alone from a coalesced
    /// batch (no packet information there), written into `prefix`.
    fn alone_hdr<'p, 'a, T: TxBatch<'a>>(
        &self,
        batch: T,
        j: usize,
        prefix: &'p mut [u8; PREFIX_MAX],
    ) -> &'p [u8] {
        let len = self.put_own_hdr(batch, j, &mut prefix[..]);
        &prefix[..len]
    }

    /// Whether the current batch was planned by the table (its frames are
    /// the plan's runs) rather than framed packet by packet.
    fn coalesced(&self) -> bool {
        self.framing.coalesces()
    }

    /// Whether the next frame is a coalesced (GSO) write.
    fn next_is_merged(&self) -> bool {
        self.coalesced()
            && self.fallback.is_none()
            && (self.tunnel_run(self.next).is_some()
                || self
                    .planned_run(self.next)
                    .is_some_and(|run| run.is_merged()))
    }

    /// Packets of frame `k` (its run's, or its tunnel run's).
    fn frame_packets(&self, k: usize) -> usize {
        match (self.tunnel_run(k), self.planned_run(k)) {
            (Some(t), _) => t.count,
            (None, Some(run)) => run.packets().len(),
            (None, None) => 0,
        }
    }

    /// The batch index of packet `pos` of frame `k`.
    fn frame_packet(&self, k: usize, pos: usize) -> Option<usize> {
        match (self.tunnel_run(k), self.planned_run(k)) {
            (Some(t), _) => (pos < t.count).then_some(t.first + pos),
            (None, Some(run)) => run.packets().nth(pos),
            (None, None) => None,
        }
    }

    /// Packets the next frame carries, and the batch index named in errors.
    fn next_packets(&self) -> (usize, usize) {
        let head = self.heads.get(self.next).copied().unwrap_or(0);
        if !self.coalesced() || self.frame_packets(self.next) == 0 {
            return (1, head);
        }
        match self.fallback {
            None => (self.frame_packets(self.next), head),
            Some(pos) => (1, self.frame_packet(self.next, pos).unwrap_or(head)),
        }
    }

    /// Move past the next frame.
    fn advance(&mut self) {
        if let (true, Some(pos)) = (self.coalesced(), self.fallback) {
            let count = self.frame_packets(self.next);
            if pos + 1 < count {
                self.fallback = Some(pos + 1);
                return;
            }
            self.fallback = None;
        }
        self.next += 1;
    }

    /// How the write of the frame [`Self::frame`] gave went.
    pub(crate) fn complete(&mut self, result: Result<(), Errno>) -> Result<Written, Failed> {
        let (packets, index) = self.next_packets();
        match result {
            Ok(()) => {
                self.report.writes += 1;
                if self.fallback.is_none() && self.tunnel_run(self.next).is_some() {
                    self.report.tunnel_writes += 1;
                }
                self.written += packets;
                self.advance();
                Ok(Written::Frame)
            }
            Err(Errno::INVAL) if self.next_is_merged() => {
                self.fallback = Some(0);
                if self.tunnel_run(self.next).is_some() {
                    Ok(Written::TunnelRefallback)
                } else {
                    Ok(Written::Refallback)
                }
            }
            Err(errno @ (Errno::INVAL | Errno::MSGSIZE)) => {
                self.rejected.push(index);
                self.advance();
                Err(Failed::Rejected { index, errno })
            }
            Err(errno) => Err(Failed::Io { index, errno }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tun_offload::framing::PLAIN_HDR;

    /// An IPv4/TCP segment of flow `port` with sequence number `seq` and
    /// `payload` bytes, checksums complete, at `offset` in a 64 KiB buffer.
    fn tcp(offset: usize, port: u16, seq: u32, payload: usize) -> (Vec<u8>, usize) {
        let len = 40 + payload;
        let mut b = vec![0u8; offset + 65535];
        let p = &mut b[offset..offset + len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[6] = 0x40; // DF
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let ip = tun_offload::checksum::ipv4_header(&p[..20]);
        p[10..12].copy_from_slice(&ip.to_be_bytes());
        p[20..22].copy_from_slice(&port.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        p[24..28].copy_from_slice(&seq.to_be_bytes());
        p[32] = 5 << 4;
        p[33] = 0x10; // ACK
        p[34..36].copy_from_slice(&1000u16.to_be_bytes());
        for (k, byte) in p[40..].iter_mut().enumerate() {
            *byte = (seq as usize + k) as u8;
        }
        let pseudo = tun_offload::checksum::pseudo_header_v4(
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            6,
            (len - 20) as u16,
        );
        let c = pseudo
            .combine(tun_offload::checksum::Checksum::of(&p[20..]))
            .finish();
        p[36..38].copy_from_slice(&c.to_be_bytes());
        (b, len)
    }

    pub(crate) fn offload() -> TxFraming {
        TxFraming {
            wire: Framing {
                vnet: true,
                ..Framing::default()
            },
            tcp: true,
            udp: true,
            ..TxFraming::default()
        }
    }

    /// Drive `st` over the prepared `batch` with a writer that answers
    /// from `script` (then Ok); returns the slices of every frame written
    /// and the results of `complete`.
    #[allow(clippy::type_complexity)]
    pub(crate) fn drive_batch<'a, T: TxBatch<'a>>(
        st: &mut SendState,
        batch: T,
        script: &mut Vec<Result<(), Errno>>,
    ) -> (Vec<Vec<Vec<u8>>>, Vec<Result<Written, Failed>>) {
        let (mut frames, mut results) = (Vec::new(), Vec::new());
        for _ in 0..10_000 {
            let mut prefix = [0u8; PREFIX_MAX];
            let mut iov = st.take_iov();
            let Some(_) = st.frame_of(batch, &mut prefix, &mut iov).unwrap() else {
                st.put_iov(recycle(iov));
                return (frames, results);
            };
            let slices: Vec<Vec<u8>> = iov.iter().map(|s| s.to_vec()).collect();
            st.put_iov(recycle(iov));
            let r = if script.is_empty() {
                Ok(())
            } else {
                script.remove(0)
            };
            if r.is_ok() {
                frames.push(slices);
            }
            let c = st.complete(r);
            let stuck = matches!(c, Err(Failed::Io { .. }));
            results.push(c);
            if stuck && script.is_empty() && results.len() > 1000 {
                break;
            }
        }
        panic!("the engine never finished");
    }

    /// [`drive_batch`] over buffers, each frame's slices put together.
    #[allow(clippy::type_complexity)]
    fn drive(
        st: &mut SendState,
        bufs: &[Vec<u8>],
        lens: &[usize],
        script: &mut Vec<Result<(), Errno>>,
    ) -> (Vec<Vec<u8>>, Vec<Result<Written, Failed>>) {
        let offset = match st.batch {
            BatchId::Buffers { offset, .. } => offset,
            _ => 0,
        };
        let (frames, results) = drive_batch(st, Buffers { bufs, lens, offset }, script);
        (frames.into_iter().map(|f| f.concat()).collect(), results)
    }

    fn flow(n: usize, seg: usize) -> (Vec<Vec<u8>>, Vec<usize>) {
        (0..n)
            .map(|k| tcp(10, 5000, 1000 + (k * seg) as u32, seg))
            .unzip()
    }

    #[test]
    fn a_run_is_one_gathered_write_and_buffers_stay_untouched() {
        let (bufs, lens) = flow(8, 1000);
        let before = bufs.clone();
        let mut st = SendState::new();
        st.prepare(&bufs, &lens, 10, offload()).unwrap();
        assert_eq!(st.pending(), &[0]);
        let (frames, results) = drive(&mut st, &bufs, &lens, &mut vec![]);
        assert_eq!(frames.len(), 1);
        assert_eq!(results, [Ok(Written::Frame)]);
        let (hdr, pkt) = VirtioNetHdr::split_prefix(&frames[0]).unwrap();
        assert_eq!(hdr.gso_size(), 1000);
        assert_eq!(pkt.len(), 40 + 8 * 1000);
        // The payloads follow each other in sequence order.
        assert_eq!(&pkt[40..1040], &bufs[0][50..1050]);
        assert_eq!(&pkt[40 + 7000..], &bufs[7][50..1050]);
        assert_eq!(
            bufs, before,
            "a send never writes into the caller's buffers"
        );
        assert_eq!(
            st.report(),
            SendReport {
                packets: 8,
                writes: 1,
                tunnel_writes: 0,
                bytes: 8 * 1040
            }
        );
        assert_eq!(st.unsent_packets(), 0);
        // The same batch again: planned again from untouched buffers.
        st.prepare(&bufs, &lens, 10, offload()).unwrap();
        let (again, _) = drive(&mut st, &bufs, &lens, &mut vec![]);
        assert_eq!(again, frames);
    }

    /// `flow(n, seg)` with partial checksums, as the receive engine hands
    /// them out: each checksum field the pseudo-header sum, each packet's
    /// NEEDS_CSUM header in the 10 bytes in front of it.
    fn partial_flow(n: usize, seg: usize) -> (Vec<Vec<u8>>, Vec<usize>, VirtioNetHdr) {
        let (mut bufs, lens) = flow(n, seg);
        let mut hdr = VirtioNetHdr::ZERO;
        for (b, &len) in bufs.iter_mut().zip(&lens) {
            hdr = tun_offload::partial::prepare_partial_checksum(&mut b[10..10 + len]);
            b[..10].copy_from_slice(&hdr.to_bytes());
        }
        assert_eq!(hdr.flags(), tun_offload::HdrFlags::NEEDS_CSUM);
        // Written alone, a packet keeps the header's checksum part.
        (bufs, lens, hdr.checksum_part())
    }

    /// Complete `frame` (a virtio header and a packet) as the kernel would
    /// and check its TCP checksum against an independent sum.
    fn assert_completes(frame: &[u8]) {
        let (hdr, pkt) = VirtioNetHdr::split_prefix(frame).unwrap();
        assert_eq!(hdr.flags(), tun_offload::HdrFlags::NEEDS_CSUM, "{hdr:?}");
        let mut pkt = pkt.to_vec();
        if hdr.is_gso() {
            let mut b = vec![vec![0u8; 65535]; 64];
            let mut l = vec![0; 64];
            let n = tun_offload::split(&hdr, &pkt, &mut b, &mut l, 0).unwrap();
            pkt = b[n - 1][..l[n - 1]].to_vec();
        } else {
            tun_offload::complete_checksum(&hdr, &mut pkt).unwrap();
        }
        let pseudo = tun_offload::checksum::pseudo_header_v4(
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            6,
            (pkt.len() - 20) as u16,
        );
        let sum = pseudo.combine(tun_offload::checksum::Checksum::of(&pkt[20..]));
        assert_eq!(sum.fold(), 0xffff, "the completed TCP checksum verifies");
    }

    #[test]
    fn partial_packets_merge_unverified_and_alone_keep_their_header() {
        let (bufs, lens, hdr) = partial_flow(4, 1000);
        // Without the mode a partial sum is no checksum: nothing merges.
        let mut strict = SendState::new();
        strict.prepare(&bufs, &lens, 10, offload()).unwrap();
        assert_eq!(strict.pending().len(), 4);
        let mut st = SendState::new();
        st.set_partial_checksums(true);
        st.prepare(&bufs, &lens, 10, offload()).unwrap();
        assert_eq!(st.pending(), &[0]);
        let (frames, _) = drive(&mut st, &bufs, &lens, &mut vec![]);
        assert_eq!(frames.len(), 1);
        assert_completes(&frames[0]);
        // One packet alone: written behind its own header.
        st.prepare(&bufs[..1], &lens[..1], 10, offload()).unwrap();
        let (frames, _) = drive(&mut st, &bufs[..1], &lens[..1], &mut vec![]);
        assert_eq!(&frames[0][..10], &hdr.to_bytes());
        assert_eq!(&frames[0][10..], &bufs[0][10..10 + lens[0]]);
        assert_completes(&frames[0]);
        // A refused run: each packet again behind its own header.
        st.prepare(&bufs, &lens, 10, offload()).unwrap();
        let (frames, results) = drive(&mut st, &bufs, &lens, &mut vec![Err(Errno::INVAL)]);
        assert_eq!(results[0], Ok(Written::Refallback));
        assert_eq!(frames.len(), 4);
        for f in &frames {
            assert_eq!(&f[..10], &hdr.to_bytes());
            assert_completes(f);
        }
        // No coalescing at all (TCP off): still each behind its header.
        let plain = TxFraming {
            tcp: false,
            udp: false,
            ..offload()
        };
        st.prepare(&bufs, &lens, 10, plain).unwrap();
        let (frames, _) = drive(&mut st, &bufs, &lens, &mut vec![]);
        assert_eq!(frames.len(), 4);
        frames.iter().for_each(|f| assert_completes(f));
        // With packet information in front (no coalescing on such a queue).
        let pi = TxFraming {
            wire: Framing {
                pi: true,
                vnet: true,
                ..Framing::default()
            },
            ..offload()
        };
        st.prepare(&bufs[..1], &lens[..1], 10, pi).unwrap();
        let (frames, _) = drive(&mut st, &bufs[..1], &lens[..1], &mut vec![]);
        assert_completes(&frames[0][PacketInfo::LEN..]);
        // A 24-byte header: the 10 bytes of the packet's own, then zeros.
        let tunnel = TxFraming {
            wire: Framing {
                vnet: true,
                tunnel: true,
                ..Framing::default()
            },
            ..offload()
        };
        st.prepare(&bufs[..1], &lens[..1], 10, tunnel).unwrap();
        let (frames, _) = drive(&mut st, &bufs[..1], &lens[..1], &mut vec![]);
        assert_eq!(&frames[0][..10], &hdr.to_bytes());
        assert_eq!(&frames[0][10..24], &[0; 14]);
        // The header needs its room.
        assert_eq!(
            st.prepare(&bufs, &lens, 4, offload()),
            Err(BatchError::NoHeaderRoom {
                offset: 4,
                required: 10
            })
        );
    }

    #[test]
    fn a_refused_coalesced_write_is_written_again_packet_by_packet() {
        let (bufs, lens) = flow(5, 1200);
        let mut st = SendState::new();
        st.prepare(&bufs, &lens, 10, offload()).unwrap();
        let (frames, results) = drive(&mut st, &bufs, &lens, &mut vec![Err(Errno::INVAL)]);
        assert_eq!(results[0], Ok(Written::Refallback));
        assert_eq!(frames.len(), 5);
        for (k, f) in frames.iter().enumerate() {
            assert_eq!(&f[..10], &PLAIN_HDR);
            assert_eq!(
                &f[10..],
                &bufs[k][10..10 + lens[k]],
                "packet {k} as it was handed in"
            );
        }
        assert_eq!(st.report().packets, 5);
        assert_eq!(st.report().writes, 5);
        assert!(st.is_done());
    }

    #[test]
    fn eagain_in_the_middle_resumes_without_writing_twice() {
        // Three flows interleaved: three runs.
        let (mut bufs, mut lens) = (Vec::new(), Vec::new());
        for k in 0..9 {
            let (b, l) = tcp(10, 5000 + (k % 3) as u16, 1000 + (k / 3 * 500) as u32, 500);
            bufs.push(b);
            lens.push(l);
        }
        let mut st = SendState::new();
        st.prepare(&bufs, &lens, 10, offload()).unwrap();
        assert_eq!(st.pending().len(), 3);
        let mut script = vec![Ok(()), Err(Errno::AGAIN), Err(Errno::AGAIN), Ok(()), Ok(())];
        let (frames, results) = drive(&mut st, &bufs, &lens, &mut script);
        assert_eq!(frames.len(), 3, "each run written once");
        assert_eq!(
            results[1],
            Err(Failed::Io {
                index: 1,
                errno: Errno::AGAIN
            })
        );
        assert_eq!(st.report().packets, 9);
        assert_eq!(st.report().writes, 3);
    }

    #[test]
    fn a_refused_single_packet_is_skipped_and_counted() {
        let (a, la) = tcp(10, 1, 1, 100);
        let (b, lb) = tcp(10, 2, 1, 100);
        let (c, lc) = tcp(10, 3, 1, 100);
        let (bufs, lens) = (vec![a, b, c], vec![la, lb, lc]);
        let mut st = SendState::new();
        st.prepare(&bufs, &lens, 10, offload()).unwrap();
        let mut script = vec![Ok(()), Err(Errno::MSGSIZE)];
        let (frames, results) = drive(&mut st, &bufs, &lens, &mut script);
        assert_eq!(frames.len(), 2);
        assert_eq!(
            results[1],
            Err(Failed::Rejected {
                index: 1,
                errno: Errno::MSGSIZE
            })
        );
        assert_eq!(st.rejected(), &[1]);
        assert_eq!(st.written().collect::<Vec<_>>(), [0, 2]);
        assert_eq!(st.report().packets, 2);
        assert_eq!(st.unsent_packets(), 0);
    }

    #[test]
    fn an_error_after_some_packets_leaves_the_rest_pending() {
        let (bufs, lens): (Vec<_>, Vec<_>) = (0..4).map(|k| tcp(10, k, 1, 100)).unzip();
        let mut st = SendState::new();
        st.prepare(&bufs, &lens, 10, offload()).unwrap();
        let mut prefix = [0u8; PREFIX_MAX];
        let mut iov = st.take_iov();
        st.frame(&bufs, &lens, &mut prefix, &mut iov)
            .unwrap()
            .unwrap();
        st.put_iov(recycle(iov));
        st.complete(Ok(())).unwrap();
        let mut iov = st.take_iov();
        st.frame(&bufs, &lens, &mut prefix, &mut iov)
            .unwrap()
            .unwrap();
        st.put_iov(recycle(iov));
        assert_eq!(
            st.complete(Err(Errno::IO)),
            Err(Failed::Io {
                index: 1,
                errno: Errno::IO
            })
        );
        assert_eq!(st.pending(), &[1, 2, 3]);
        assert_eq!(st.unsent_packets(), 3);
        assert_eq!(st.report().packets, 1);
    }

    #[test]
    fn plain_frames_get_packet_information_and_plain_headers() {
        let (b4, l4) = tcp(14, 1, 1, 10);
        let mut b6 = vec![0u8; 14 + 60];
        b6[14] = 0x60;
        let bufs = vec![b4, b6];
        let lens = vec![l4, 40];
        let mut st = SendState::new();
        let framing = TxFraming {
            wire: Framing {
                pi: true,
                vnet: true,
                ..Framing::default()
            },
            ..TxFraming::default()
        };
        st.prepare(&bufs, &lens, 14, framing).unwrap();
        let (frames, _) = drive(&mut st, &bufs, &lens, &mut vec![]);
        assert_eq!(&frames[0][..4], &[0, 0, 0x08, 0x00]);
        assert_eq!(&frames[1][..4], &[0, 0, 0x86, 0xdd]);
        assert_eq!(&frames[0][4..14], &PLAIN_HDR);
        assert_eq!(&frames[1][14..], &bufs[1][14..54]);
        // Without any prefix: the packet alone.
        st.prepare(&bufs, &lens, 14, TxFraming::default()).unwrap();
        let (frames, _) = drive(&mut st, &bufs, &lens, &mut vec![]);
        assert_eq!(frames[0], bufs[0][14..14 + l4]);
    }

    #[test]
    fn lengths_that_overflow_or_leave_the_buffer_are_errors() {
        let bufs = vec![vec![0u8; 100]];
        let mut st = SendState::new();
        for (lens, offset) in [
            (vec![usize::MAX], 10),
            (vec![91], 10),
            (vec![1], usize::MAX),
        ] {
            let err = st.prepare(&bufs, &lens, offset, offload()).unwrap_err();
            assert!(
                matches!(err, BatchError::PacketOutsideBuffer { index: 0, .. }),
                "{err:?}"
            );
        }
        let err = st.prepare(&bufs, &[1, 2], 0, offload()).unwrap_err();
        assert_eq!(err, BatchError::LengthsMismatch { bufs: 1, lens: 2 });
    }

    #[test]
    fn another_batch_than_the_prepared_one_is_refused() {
        let (bufs, lens) = flow(3, 100);
        let mut st = SendState::new();
        st.prepare(&bufs, &lens, 10, offload()).unwrap();
        assert!(
            st.check_batch(BatchId::Buffers {
                count: 3,
                offset: 10
            })
            .is_ok()
        );
        assert_eq!(
            st.check_batch(BatchId::Buffers {
                count: 1,
                offset: 10
            }),
            Err(BatchError::NotThePreparedBatch {
                prepared: 3,
                given: 1
            })
        );
        assert!(
            st.check_batch(BatchId::Buffers {
                count: 3,
                offset: 4
            })
            .is_err()
        );
        // A shorter lens array than planned: an error, not a panic.
        let mut prefix = [0u8; PREFIX_MAX];
        let mut iov = st.take_iov();
        assert!(
            st.frame(&bufs[..1], &lens[..1], &mut prefix, &mut iov)
                .is_err()
        );
    }

    #[test]
    fn tcp_coalescing_can_be_off_alone() {
        let (bufs, lens) = flow(4, 500);
        let mut st = SendState::new();
        let framing = TxFraming {
            tcp: false,
            ..offload()
        };
        st.prepare(&bufs, &lens, 10, framing).unwrap();
        assert_eq!(st.pending(), &[0, 1, 2, 3]);
    }

    /// The outer datagrams of a VXLAN super-packet, each at `OFF` in its
    /// buffer, as a batch.
    fn vxlan_batch(payload: usize) -> (Vec<Vec<u8>>, Vec<usize>, Vec<Vec<u8>>) {
        let (hdr, pkt) = crate::test_packets::vxlan_super(payload, 1398, 7);
        let datagrams = crate::test_packets::tunnel_reference(&hdr, &pkt, false);
        let bufs: Vec<Vec<u8>> = datagrams
            .iter()
            .map(|d| {
                let mut b = vec![0u8; 10 + 65_535];
                b[10..10 + d.len()].copy_from_slice(d);
                b
            })
            .collect();
        let lens = datagrams.iter().map(Vec::len).collect();
        (bufs, lens, datagrams)
    }

    fn tunnel_offload() -> TxFraming {
        let mut f = TxFraming {
            tunnel_gro: true,
            ..offload()
        };
        f.wire.tunnel = true;
        f
    }

    #[test]
    fn tunnel_datagrams_are_one_tunnel_write_that_splits_back() {
        let (bufs, lens, datagrams) = vxlan_batch(20_000);
        assert_eq!(datagrams.len(), 15);
        let mut st = SendState::new();
        st.prepare(&bufs, &lens, 10, tunnel_offload()).unwrap();
        let (frames, results) = drive(&mut st, &bufs, &lens, &mut vec![]);
        assert_eq!(frames.len(), 1, "{results:?}");
        assert_eq!(st.report().tunnel_writes, 1);
        assert_eq!(st.report().packets, datagrams.len());
        let (hdr, pkt) = VirtioNetHdrV1HashTunnel::split_prefix(&frames[0]).unwrap();
        assert_ne!(hdr.hdr.gso_type().udp_tunnel(), 0, "{hdr:?}");
        // Split again (as the kernel will segment it): the same datagrams.
        let again = crate::test_packets::tunnel_reference(&hdr, pkt, false);
        assert_eq!(again, datagrams);
    }

    #[test]
    fn a_refused_tunnel_write_is_written_again_datagram_by_datagram() {
        let (bufs, lens, datagrams) = vxlan_batch(8_000);
        let mut st = SendState::new();
        st.prepare(&bufs, &lens, 10, tunnel_offload()).unwrap();
        let (frames, results) = drive(&mut st, &bufs, &lens, &mut vec![Err(Errno::INVAL)]);
        assert_eq!(results[0], Ok(Written::TunnelRefallback));
        assert_eq!(frames.len(), datagrams.len());
        for (f, d) in frames.iter().zip(&datagrams) {
            // Each as it was, behind a 24-byte header that asks for nothing.
            assert_eq!(&f[..24], &[0u8; 24]);
            assert_eq!(&f[24..], &d[..]);
        }
        assert_eq!(st.report().tunnel_writes, 0);
        assert_eq!(st.report().packets, datagrams.len());
    }

    #[test]
    fn without_tunnel_coalescing_tunnel_datagrams_are_plain_udp_behind_24_bytes() {
        let (mut bufs, lens, mut datagrams) = vxlan_batch(8_000);
        let mut framing = offload();
        framing.wire.tunnel = true;
        // Without outer UDP checksums (VXLAN over IPv4's default) they never
        // merge as plain UDP, vouched for or not (the kernel's
        // udp_gro_receive_segment merges only datagrams with a checksum):
        // each goes out as it is behind 24 bytes.
        for verified in [false, true] {
            let mut st = SendState::new();
            st.set_checksums_verified(verified);
            st.prepare(&bufs, &lens, 10, framing).unwrap();
            let (frames, _) = drive(&mut st, &bufs, &lens, &mut vec![]);
            assert_eq!(frames.len(), datagrams.len());
            for (f, d) in frames.iter().zip(&datagrams) {
                assert_eq!((&f[..24], &f[24..]), (&[0u8; 24][..], &d[..]));
            }
        }
        // With outer checksums: one USO super-packet of the outer datagrams,
        // its header in the 24-byte form, that splits back byte for byte.
        for (b, d) in bufs.iter_mut().zip(datagrams.iter_mut()) {
            let sum = tun_offload::checksum::Checksum::of(&d[20..])
                .combine(tun_offload::checksum::pseudo_header_v4(
                    [192, 0, 2, 1].into(),
                    [192, 0, 2, 2].into(),
                    17,
                    (d.len() - 20) as u16,
                ))
                .finish_udp();
            d[26..28].copy_from_slice(&sum.to_be_bytes());
            b[10 + 26..10 + 28].copy_from_slice(&sum.to_be_bytes());
        }
        let mut st = SendState::new();
        st.prepare(&bufs, &lens, 10, framing).unwrap();
        let (frames, _) = drive(&mut st, &bufs, &lens, &mut vec![]);
        assert_eq!(frames.len(), 1);
        assert_eq!(st.report().tunnel_writes, 0);
        let (hdr, pkt) = VirtioNetHdrV1HashTunnel::split_prefix(&frames[0]).unwrap();
        assert_eq!(hdr.hdr.gso_type(), tun_offload::GsoType::UDP_L4);
        assert_eq!((hdr.outer_th_offset(), hdr.inner_nh_offset()), (0, 0));
        let again = crate::test_packets::tunnel_reference(&hdr, pkt, false);
        assert!(again == datagrams, "the datagrams changed");
    }

    #[test]
    fn a_batch_mixing_tcp_and_tunnel_datagrams_keeps_both_kinds() {
        let (mut bufs, mut lens, datagrams) = vxlan_batch(8_000);
        let mut tcp_lens = Vec::new();
        for k in 0..4u32 {
            let (b, len) = tcp(10, 4000, 1 + k * 1000, 1000);
            bufs.insert(0, b);
            lens.insert(0, len);
            tcp_lens.push(len);
        }
        // TCP segments were inserted in front in reverse: put them in order.
        bufs[..4].reverse();
        let mut st = SendState::new();
        st.prepare(&bufs, &lens, 10, tunnel_offload()).unwrap();
        let (frames, _) = drive(&mut st, &bufs, &lens, &mut vec![]);
        assert_eq!(frames.len(), 2, "one TCP run, one tunnel run");
        assert_eq!(st.report().tunnel_writes, 1);
        assert_eq!(st.report().packets, 4 + datagrams.len());
        let (hdr, _) = VirtioNetHdrV1HashTunnel::split_prefix(&frames[0]).unwrap();
        assert_eq!(hdr.hdr.gso_type(), tun_offload::GsoType::TCPV4);
    }

    #[test]
    fn plain_udp_whose_payload_starts_like_vxlan_still_merges_as_udp() {
        // A UDP_SEGMENT sender's datagrams: the same flow and size, each
        // payload starting with a byte that has VXLAN's I bit (0x08).
        let (bufs, lens, _) = vxlan_batch(8_000);
        let mut bufs = bufs;
        for b in &mut bufs {
            // Not VXLAN: a reserved VXLAN byte set, and an outer checksum.
            b[10 + 29] = 0x77;
            let len = u16::from_be_bytes([b[10 + 2], b[10 + 3]]) as usize;
            b[10 + 26..10 + 28].fill(0);
            let sum = tun_offload::checksum::Checksum::of(&b[10 + 20..10 + len])
                .combine(tun_offload::checksum::pseudo_header_v4(
                    [192, 0, 2, 1].into(),
                    [192, 0, 2, 2].into(),
                    17,
                    (len - 20) as u16,
                ))
                .finish_udp();
            b[10 + 26..10 + 28].copy_from_slice(&sum.to_be_bytes());
        }
        assert!(
            bufs.iter()
                .zip(&lens)
                .all(|(b, &l)| !maybe_tunnel(&b[10..10 + l], false))
        );
        let mut st = SendState::new();
        st.prepare(&bufs, &lens, 10, tunnel_offload()).unwrap();
        let (frames, _) = drive(&mut st, &bufs, &lens, &mut vec![]);
        assert_eq!(frames.len(), 1, "one USO super-packet");
        assert_eq!(st.report().tunnel_writes, 0);
        // The real thing is recognised.
        let (bufs, lens, _) = vxlan_batch(8_000);
        assert!(
            bufs.iter()
                .zip(&lens)
                .all(|(b, &l)| maybe_tunnel(&b[10..10 + l], false))
        );
    }
}
