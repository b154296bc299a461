//! The table: flows, runs, and the batch loop that merges packets into the
//! buffers of their runs and writes the virtio headers.

use alloc::vec::Vec;

use crate::checksum::Checksum;
use crate::kind::Kind;
use crate::virtio::{GsoType, HdrFlags, VirtioNetHdr};
use crate::wire::{
    IPV6_HEADER_LEN, IpPacket, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket, tcp_flags,
};

use super::plan::{GroPlan, PacketView, PlanStore};
use super::rules::{IdMode, classify_with, ipv4_id_merge, tcp_fixed_fields_match};
use super::store::{Buffers, Gathered, InPlace, Store, Views};
use super::{
    Candidate, GroError, GroStats, MAX_MERGED_LEN, Merge, Refusal, Run, UDP_MAX_SEGMENTS,
    ip_headers_match, tcp_merge, udp_merge,
};

const NONE: u32 = u32::MAX;

/// What identifies a flow: family and transport, addresses and ports (the
/// kernel's GRO flow; the TCP acknowledgment number is a merge condition,
/// not part of the key, so a segment with a new one ends the flow's run).
///
/// Addresses are held as words read straight from the packet, so the key
/// lives in registers: built as a byte array on the stack, its wide compare
/// loads stalled on store forwarding.
#[derive(Debug, Clone, Copy, Eq)]
struct FlowKey {
    kind: Kind,
    addrs: [u64; 4],
    ports: u32,
    /// A hash of a frame's L2 header (0 for an IP packet): frames with
    /// other Ethernet headers are other flows. A merge compares the L2
    /// bytes themselves.
    l2: u64,
}

impl PartialEq for FlowKey {
    /// Word by word: a derived compare of the address array uses 16-byte
    /// loads, which stall on the 8-byte stores that spilled the key.
    #[inline]
    fn eq(&self, o: &Self) -> bool {
        self.ports == o.ports
            && self.l2 == o.l2
            && self.kind == o.kind
            && self.addrs[0] == o.addrs[0]
            && self.addrs[1] == o.addrs[1]
            && self.addrs[2] == o.addrs[2]
            && self.addrs[3] == o.addrs[3]
    }
}

#[inline]
fn word(p: &[u8], at: usize) -> u64 {
    match p.get(at..at + 8) {
        Some(c) => u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        None => 0,
    }
}

/// The address words of a packet of either family (IPv4: source and
/// destination in the first word).
#[inline]
fn addr_words(packet: &[u8], v6: bool) -> [u64; 4] {
    if v6 {
        [
            word(packet, 8),
            word(packet, 16),
            word(packet, 24),
            word(packet, 32),
        ]
    } else {
        [word(packet, 12), 0, 0, 0]
    }
}

impl FlowKey {
    #[inline]
    fn of(packet: &[u8], c: &Candidate) -> Self {
        Self::at(packet, c.kind, c.ip_header_len)
    }

    /// The key of a packet of `kind` whose transport header starts at `l4`
    /// (at least four bytes must be there).
    #[inline]
    fn at(packet: &[u8], kind: Kind, l4: usize) -> Self {
        let p = &packet[l4..l4 + 4];
        Self {
            kind,
            addrs: addr_words(packet, kind.is_v6()),
            ports: u32::from_be_bytes([p[0], p[1], p[2], p[3]]),
            l2: 0,
        }
    }

    /// A multiply-xor hash: the words are folded with rotations (so source
    /// and destination do not cancel), then mixed by one multiplication whose
    /// high bits pick the slot.
    #[inline]
    fn hash(&self) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let h = self.addrs[0]
            ^ self.addrs[1].rotate_left(16)
            ^ self.addrs[2].rotate_left(32)
            ^ self.addrs[3].rotate_left(48)
            ^ u64::from(self.ports).rotate_left(40)
            ^ self.l2
            ^ self.kind as u64;
        h.wrapping_mul(K)
    }
}

/// The flow-key word of a frame's L2 header (`l2`: its 14 or 18 bytes):
/// the addresses, and the tag if any, folded (never 0, so a frame's key
/// differs from a packet's).
#[inline]
fn l2_word(l2: &[u8]) -> u64 {
    let w = |at: usize| word(l2, at);
    // Destination and source MAC in two overlapping words, the tag (or the
    // EtherType) in the last.
    let tail = l2
        .get(l2.len().saturating_sub(8)..)
        .map_or(0, |t| word(t, 0));
    (w(0) ^ w(6).rotate_left(24) ^ tail.rotate_left(48)).wrapping_mul(0xff51_afd7_ed55_8ccd) | 1
}

/// Which held runs a packet that is not coalesced must end.
#[derive(Debug, Clone, Copy)]
enum Barrier {
    /// The run of one flow.
    Flow(FlowKey),
    /// Every run between two hosts with one transport: a fragment other than
    /// the first carries no ports.
    Hosts { kind: Kind, addrs: [u64; 4] },
}

/// The flow (or, for a later fragment, the host pair) of a TCP or UDP
/// packet that was not coalesced, read as far as its headers allow: IPv4
/// with or without options, IPv6 through hop-by-hop, routing, destination
/// options and fragment headers. `None` for anything else.
fn barrier_of(pkt: &[u8], l2_key: u64) -> Option<Barrier> {
    let (version, proto, l4, later_fragment) = match IpPacket::new_checked(pkt).ok()? {
        IpPacket::V4(ip) => (4, ip.protocol(), ip.header_len(), ip.frag_offset() != 0),
        IpPacket::V6(ip) => {
            let mut next = ip.next_header();
            let mut at = IPV6_HEADER_LEN;
            let mut later = false;
            // A bounded walk: at most eight extension headers.
            for _ in 0..8 {
                match next {
                    IpProtocol::HOP_BY_HOP | IpProtocol::ROUTING | IpProtocol::DEST_OPTS => {
                        let (&nh, &len8) = (pkt.get(at)?, pkt.get(at + 1)?);
                        next = IpProtocol(nh);
                        at += (usize::from(len8) + 1) * 8;
                    }
                    IpProtocol::FRAGMENT => {
                        let f = pkt.get(at..at + 4)?;
                        later |= u16::from_be_bytes([f[2], f[3]]) & 0xfff8 != 0;
                        next = IpProtocol(f[0]);
                        at += 8;
                    }
                    _ => break,
                }
            }
            (6, next, at, later)
        }
    };
    let k = Kind::new(version, proto)?;
    if later_fragment {
        return Some(Barrier::Hosts {
            kind: k,
            addrs: addr_words(pkt, k.is_v6()),
        });
    }
    pkt.get(l4..l4 + 4)?;
    let mut key = FlowKey::at(pkt, k, l4);
    key.l2 = l2_key;
    Some(Barrier::Flow(key))
}

/// One run in the table: where it lives and what the merge rules need.
#[derive(Debug, Clone, Copy)]
struct Item {
    key: FlowKey,
    cand: Candidate,
    buf: u32,
    /// The run's packets in payload order, first and last (`buf` unless a
    /// segment was prepended or appended); [`GroTable::next`] links them.
    head: u32,
    tail: u32,
    run: Run,
    /// None: not checked yet.
    csum_ok: Option<bool>,
    /// Removed from merging (bad checksum); written as it is.
    dead: bool,
    /// Ended by a packet of its flow that was not coalesced: nothing may
    /// join it any more, in front or behind.
    sealed: bool,
    /// IPv4 identification of the first segment (changes on prepend).
    ip_id: u16,
    /// How the run's IPv4 IDs go.
    id_mode: IdMode,
    /// The first segment has CWR: nothing may be prepended, and a merged
    /// run says GSO_ECN.
    cwr: bool,
    /// The flow's pseudo-header sum without the length (the same for every
    /// packet of the flow: addresses and protocol are part of the key).
    pseudo: Checksum,
    /// Bytes of L2 header in front of the IP packet (a frame's; else 0).
    l2: u8,
}

/// A reusable GRO table: one per sending thread, used batch after batch.
///
/// ```
/// use tun_offload::checksum::{pseudo_header_v4, Checksum};
/// use tun_offload::{GroTable, GsoType, VirtioNetHdr};
///
/// // Two in-order TCP segments of one flow, 100 payload bytes each.
/// fn segment(seq: u32) -> Vec<u8> {
///     let mut p = vec![0u8; 140];
///     // DF set, ID 0 in both: the kernel's GRO merges equal IDs only with DF.
///     p[..20].copy_from_slice(&[0x45, 0, 0, 140, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
///     let c = Checksum::of(&p[..20]).finish();
///     p[10..12].copy_from_slice(&c.to_be_bytes());
///     p[20..22].copy_from_slice(&4000u16.to_be_bytes());
///     p[22..24].copy_from_slice(&80u16.to_be_bytes());
///     p[24..28].copy_from_slice(&seq.to_be_bytes());
///     p[32] = 5 << 4; // data offset: 20 bytes
///     p[33] = 0x10; // ACK
///     let l4 = pseudo_header_v4([10, 0, 0, 1].into(), [10, 0, 0, 2].into(), 6, 120);
///     let c = l4.combine(Checksum::of(&p[20..])).finish();
///     p[36..38].copy_from_slice(&c.to_be_bytes());
///     p
/// }
///
/// const OFF: usize = VirtioNetHdr::LEN; // room for the header in front
/// let mut bufs: Vec<Vec<u8>> = [segment(1), segment(101)]
///     .iter()
///     .map(|p| {
///         let mut b = vec![0u8; OFF + 65535]; // spare room to grow into
///         b[OFF..OFF + p.len()].copy_from_slice(p);
///         b
///     })
///     .collect();
/// let mut lens = vec![140, 140];
///
/// let mut table = GroTable::new(false);
/// let written = table.coalesce(&mut bufs, &mut lens, OFF).unwrap();
/// assert_eq!(written, [0]); // write bufs[0][..OFF + lens[0]] only
/// assert_eq!(lens[0], 240);
/// let hdr = VirtioNetHdr::decode(&bufs[0]).unwrap();
/// assert_eq!((hdr.gso_type(), hdr.gso_size()), (GsoType::TCPV4, 100));
/// assert_eq!(table.stats().segments_merged, 1);
/// ```
#[derive(Debug, Clone)]
pub struct GroTable {
    udp_gro: bool,
    tcp_gro: bool,
    tcp_ecn: bool,
    frames: bool,
    checksums_verified: bool,
    partial_checksums: bool,
    items: Vec<Item>,
    slots: Vec<u32>,
    role: Vec<Role>,
    /// The packet behind each one in its run's payload order (NONE: last).
    next: Vec<u32>,
    out: Vec<usize>,
    plan: PlanStore,
    stats: GroStats,
}

impl GroTable {
    /// A table; `udp_gro` when the device negotiated USO (TUN_F_USO4|USO6).
    pub fn new(udp_gro: bool) -> Self {
        Self::with_capacity(udp_gro, 0)
    }

    /// A table sized for batches of `batch` packets up front.
    pub fn with_capacity(udp_gro: bool, batch: usize) -> Self {
        let mut t = Self {
            udp_gro,
            tcp_gro: true,
            tcp_ecn: false,
            frames: false,
            checksums_verified: false,
            partial_checksums: false,
            items: Vec::new(),
            slots: Vec::new(),
            role: Vec::new(),
            next: Vec::new(),
            out: Vec::new(),
            plan: PlanStore::default(),
            stats: GroStats::default(),
        };
        t.reserve(batch);
        t
    }

    /// Whether UDP datagrams are coalesced.
    pub fn udp_gro(&self) -> bool {
        self.udp_gro
    }

    /// Turn UDP coalescing on or off (after a USO renegotiation).
    pub fn set_udp_gro(&mut self, on: bool) {
        self.udp_gro = on;
    }

    /// Whether TCP segments are coalesced (on unless turned off).
    pub fn tcp_gro(&self) -> bool {
        self.tcp_gro
    }

    /// Turn TCP coalescing on or off, independently of UDP's: off, every
    /// TCP segment is written as it is ([`Refusal::TcpDisabled`]), in its
    /// place in the batch. For a user who must keep one protocol out of
    /// GSO, for instance UDP GRO into VXLAN or Geneve, which kernels up to
    /// 6.8 drop, while the other keeps its offload.
    pub fn set_tcp_gro(&mut self, on: bool) {
        self.tcp_gro = on;
    }

    /// Whether a TCP segment with CWR may start a run (written with
    /// `GsoType::ECN` set in its virtio header).
    pub fn tcp_ecn(&self) -> bool {
        self.tcp_ecn
    }

    /// Let a TCP segment with CWR start a run, as the kernel's GRO does,
    /// when the device negotiated TSO_ECN (TUN_F_TSO_ECN): the merged packet
    /// then carries `GsoType::ECN` in its virtio header, so that a
    /// segmentation keeps CWR on the first segment only. Off by default:
    /// such segments are written as they are.
    pub fn set_tcp_ecn(&mut self, on: bool) {
        self.tcp_ecn = on;
    }

    /// Whether the caller vouches that every packet's transport checksum
    /// is correct (off unless turned on).
    pub fn checksums_verified(&self) -> bool {
        self.checksums_verified
    }

    /// Vouch that every packet's transport checksum is correct, so that
    /// merging does not read the payloads to verify them: what the
    /// kernel's GRO does for a packet marked CHECKSUM_UNNECESSARY
    /// (`tcp4_gro_receive` in net/ipv4/tcp_offload.c skips the check).
    /// For packets whose checksums were just computed, such as the segments
    /// [`split`](crate::split) wrote; a packet with a wrong checksum is
    /// then merged and leaves with a valid one. IPv4 header checksums are
    /// still checked.
    pub fn set_checksums_verified(&mut self, on: bool) {
        self.checksums_verified = on;
    }

    /// Whether each packet's virtio header in front of it is read
    /// ([`Self::set_partial_checksums`]).
    pub fn partial_checksums(&self) -> bool {
        self.partial_checksums
    }

    /// Read each packet's own virtio header at `bufs[i][offset - 10..offset]`
    /// (so `offset` must be at least [`VirtioNetHdr::LEN`],
    /// [`GroError::NoHeaderRoom`] otherwise), as a receiver that left
    /// checksums partial hands packets over (tun-device's receive engine,
    /// [`GsoPacket::split_into_partial`](crate::GsoPacket::split_into_partial),
    /// AF_PACKET with `PACKET_VNET_HDR`):
    ///
    /// - a packet whose header says NEEDS_CSUM (its checksum field holds
    ///   the pseudo-header sum, for the kernel to complete) or DATA_VALID
    ///   is merged without its checksum being verified, as the kernel's
    ///   GRO takes a `CHECKSUM_PARTIAL` or `CHECKSUM_UNNECESSARY` skb
    ///   (skb_csum_unnecessary, include/linux/skbuff.h); a merged run is
    ///   NEEDS_CSUM as always;
    /// - a packet written as it is keeps its header's checksum part
    ///   (NEEDS_CSUM or DATA_VALID, `csum_start`, `csum_offset`; GSO
    ///   fields zeroed): [`PlannedRun::hdr`](crate::gro::PlannedRun::hdr)
    ///   and its head are that header, and [`Self::coalesce`] leaves it in
    ///   front of the packet, so the kernel completes a partial sum.
    ///
    /// A header that does not decode or says GSO counts as the all-zero
    /// header ([`packet_hdr`](crate::packet_hdr)): that packet's checksum
    /// is verified as any other's. Off by default.
    pub fn set_partial_checksums(&mut self, on: bool) {
        self.partial_checksums = on;
    }

    /// The header a packet keeps in front of it with partial checksums:
    /// the checksum part of the header at `buf[offset - 10..offset]`.
    fn own_hdr_in_front(&self, buf: &[u8], offset: usize) -> VirtioNetHdr {
        if !self.partial_checksums {
            return VirtioNetHdr::ZERO;
        }
        buf.get(offset.saturating_sub(VirtioNetHdr::LEN)..offset)
            .map_or(VirtioNetHdr::ZERO, crate::partial::packet_hdr)
    }

    /// Whether each buffer holds an Ethernet frame (a TAP's) rather than an
    /// IP packet.
    pub fn frames(&self) -> bool {
        self.frames
    }

    /// Treat each buffer as an Ethernet frame, as a TAP with
    /// `IFF_VNET_HDR` takes them (see the module docs): the IP packet sits
    /// behind an Ethernet II or 802.1Q header found per frame, only frames
    /// with equal L2 headers merge, the virtio header still goes at
    /// `offset - 10` and counts `csum_start` and `hdr_len` from the frame
    /// start, and `lens` are frame lengths. Frames that carry no IP packet
    /// are written as they are. Off by default (IP packets, a TUN's).
    pub fn set_frames(&mut self, on: bool) {
        self.frames = on;
    }

    /// [`Self::set_frames`] on, by value: `GroTable::new(uso).with_frames()`.
    pub fn with_frames(mut self) -> Self {
        self.frames = true;
        self
    }

    /// Counters of the last batch.
    pub fn stats(&self) -> &GroStats {
        &self.stats
    }

    fn reserve(&mut self, batch: usize) {
        self.items.reserve(batch.saturating_sub(self.items.len()));
        self.role.reserve(batch.saturating_sub(self.role.len()));
        self.out.reserve(batch.saturating_sub(self.out.len()));
        self.next.reserve(batch.saturating_sub(self.next.len()));
        self.plan.reserve(batch);
        let want = (batch * 2).next_power_of_two().max(16);
        if self.slots.len() < want {
            self.slots.resize(want, NONE);
        }
    }

    /// Coalesce the batch (see the module docs for the buffer layout) and
    /// return the indices of the packets to write, ascending. Each written
    /// packet has its virtio header at `bufs[i][offset - 10..offset]` and its
    /// length (header excluded) in `lens[i]`.
    ///
    /// The runs are those [`Self::plan`] finds for the same batch (as long
    /// as each run's buffer has room for it and no run would hold more
    /// than [`MAX_GATHERED_PACKETS`](super::MAX_GATHERED_PACKETS)
    /// packets), and each written packet is byte for byte its run's
    /// [`PlannedRun::slices`](crate::gro::PlannedRun::slices).
    pub fn coalesce<B: AsMut<[u8]>>(
        &mut self,
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
    ) -> Result<&[usize], GroError> {
        self.plan.clear();
        if offset < VirtioNetHdr::LEN {
            return Err(GroError::NoHeaderRoom {
                offset,
                required: VirtioNetHdr::LEN,
            });
        }
        check_batch(bufs.iter_mut().map(|b| b.as_mut().len()), lens, offset)?;
        self.run_batch(&mut InPlace(Buffers {
            bufs: &mut *bufs,
            lens,
            offset,
        }));
        for it in 0..self.items.len() {
            let item = self.items[it];
            let buf = bufs[item.buf as usize].as_mut();
            // A dead run never merged: its first packet's checksum is
            // verified at its first merge, and a bad one makes it dead.
            debug_assert!(!item.dead || item.run.merged == 0);
            if item.run.merged == 0 {
                let own = self.own_hdr_in_front(buf, offset);
                buf[offset - VirtioNetHdr::LEN..offset].copy_from_slice(&own.to_bytes());
                continue;
            }
            let (hdr, pkt) = buf[offset - VirtioNetHdr::LEN..].split_at_mut(VirtioNetHdr::LEN);
            let l2 = usize::from(item.l2);
            let len = item.cand.header_len() + item.run.payload_len;
            lens[item.buf as usize] = l2 + len;
            let v = finish_run(&item, &mut pkt[l2..l2 + item.cand.header_len()], len);
            hdr.copy_from_slice(&v.to_bytes());
        }
        for (i, role) in self.role.iter().enumerate() {
            match role {
                Role::Absorbed => continue,
                Role::Run => {}
                // Refused or bad packets are written as they are.
                Role::Alone => {
                    let buf = bufs[i].as_mut();
                    let own = self.own_hdr_in_front(buf, offset);
                    buf[offset - VirtioNetHdr::LEN..offset].copy_from_slice(&own.to_bytes());
                }
            }
            self.out.push(i);
        }
        self.stats.packets_out = self.out.len();
        Ok(&self.out)
    }

    /// Plan the batch for gathered writes: the same runs as
    /// [`Self::coalesce`], by the same rules, but no byte of `bufs` is
    /// written or moved. Each run of the plan, in write order, holds its
    /// virtio header and its first packet's rewritten headers (in the
    /// table), and the byte ranges of its packets' payloads where they lie
    /// in `bufs`, in sequence order: written as one gathered write, they
    /// are what `coalesce` would have written for that run.
    ///
    /// Packet `i` is `bufs[i][offset..offset + lens[i]]` (a frame with
    /// [`Self::set_frames`]); no room is needed in front of `offset` or
    /// behind the packet. A run holds at most
    /// [`MAX_GATHERED_PACKETS`](super::MAX_GATHERED_PACKETS) packets. The
    /// plan stays readable through [`Self::planned`] until the next batch.
    ///
    /// ```
    /// # use tun_offload::checksum::{pseudo_header_v4, Checksum};
    /// # fn segment(seq: u32) -> Vec<u8> {
    /// #     let mut p = vec![0u8; 140];
    /// #     p[..20].copy_from_slice(&[0x45, 0, 0, 140, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    /// #     let c = Checksum::of(&p[..20]).finish();
    /// #     p[10..12].copy_from_slice(&c.to_be_bytes());
    /// #     p[20..22].copy_from_slice(&4000u16.to_be_bytes());
    /// #     p[22..24].copy_from_slice(&80u16.to_be_bytes());
    /// #     p[24..28].copy_from_slice(&seq.to_be_bytes());
    /// #     p[32] = 5 << 4;
    /// #     p[33] = 0x10;
    /// #     let l4 = pseudo_header_v4([10, 0, 0, 1].into(), [10, 0, 0, 2].into(), 6, 120);
    /// #     let c = l4.combine(Checksum::of(&p[20..])).finish();
    /// #     p[36..38].copy_from_slice(&c.to_be_bytes());
    /// #     p
    /// # }
    /// use tun_offload::{GroTable, GsoType};
    ///
    /// // Two in-order TCP segments of one flow (100 payload bytes each, 40
    /// // bytes of headers), as in the example of `GroTable`.
    /// let bufs = [segment(1), segment(101)];
    /// let lens = [140, 140];
    /// let mut table = GroTable::new(false);
    /// let plan = table.plan(&bufs, &lens, 0).unwrap();
    /// assert_eq!(plan.len(), 1);
    /// let run = plan.get(0).unwrap();
    /// assert_eq!((run.hdr().gso_type(), run.hdr().gso_size()), (GsoType::TCPV4, 100));
    /// assert_eq!(run.len(), 240);
    /// // What one writev would take: the head, then each payload in place.
    /// let iov: Vec<&[u8]> = run.slices(&bufs).unwrap().collect();
    /// assert_eq!(iov.len(), 3);
    /// assert_eq!(iov[0].len(), 10 + 40); // virtio header + rewritten headers
    /// assert!(core::ptr::eq(iov[2], &bufs[1][40..140])); // not a copy
    /// ```
    pub fn plan<B: AsRef<[u8]>>(
        &mut self,
        bufs: &[B],
        lens: &[usize],
        offset: usize,
    ) -> Result<GroPlan<'_>, GroError> {
        self.plan.clear();
        if self.partial_checksums && offset < VirtioNetHdr::LEN {
            return Err(GroError::NoHeaderRoom {
                offset,
                required: VirtioNetHdr::LEN,
            });
        }
        check_batch(bufs.iter().map(|b| b.as_ref().len()), lens, offset)?;
        let mut store = Gathered { bufs, lens, offset };
        self.run_batch(&mut store);
        self.record_plan(&mut store, bufs.len());
        Ok(self.planned())
    }

    /// Plan a batch of packets held in two pieces each ([`PacketView`]):
    /// the same runs, by the same rules, as [`Self::plan`] finds for the
    /// same packets laid out whole. Packet `i` is `views[i]`, its bytes in
    /// `sources`; the rules read only its head (which must hold its
    /// headers: a packet whose head does not is written as it is, refused
    /// as too short), and its tail only to verify a checksum nobody
    /// vouched for. With partial checksums each view's `hdr` is its own
    /// header.
    ///
    /// The plan's segments index `sources`, and a packet's bytes that
    /// continue the run's previous segment in the same source lengthen it:
    /// the segments of one super-packet split with
    /// [`GsoPacket::split_heads`](crate::GsoPacket::split_heads) and merged
    /// again are one slice of its payload. A packet written as it is has
    /// its head and its tail as its segments. A run holds at most
    /// [`MAX_VIEW_PACKETS`](super::MAX_VIEW_PACKETS) packets.
    /// [`PlannedRun::slices`](crate::gro::PlannedRun::slices) takes
    /// `sources`.
    ///
    /// ```
    /// use tun_offload::gro::{PacketView, Segment};
    /// use tun_offload::{GroTable, GsoPacket, GsoType, HdrFlags, VirtioNetHdr};
    /// # use tun_offload::checksum::{pseudo_header_v4, Checksum};
    /// // A TCP super-packet of 3 segments of 100 bytes, as a TSO device
    /// // hands it over (the checksum field holds the pseudo-header sum).
    /// let mut sp = vec![0u8; 40 + 300];
    /// sp[..20].copy_from_slice(&[0x45, 0, 0x01, 0x54, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    /// let c = Checksum::of(&sp[..20]).finish();
    /// sp[10..12].copy_from_slice(&c.to_be_bytes());
    /// sp[20..22].copy_from_slice(&4000u16.to_be_bytes());
    /// sp[22..24].copy_from_slice(&80u16.to_be_bytes());
    /// sp[32] = 5 << 4;
    /// sp[33] = 0x10; // ACK
    /// let ps = pseudo_header_v4([10, 0, 0, 1].into(), [10, 0, 0, 2].into(), 6, 320).fold();
    /// sp[36..38].copy_from_slice(&ps.to_be_bytes());
    /// let hdr = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::TCPV4, 40, 100, 20, 16);
    /// let gso = GsoPacket::parse(&hdr, &sp).unwrap();
    ///
    /// // Split: headers into `heads`, payloads stay in `sp`.
    /// let mut heads = vec![0u8; 3 * 40];
    /// let n = gso.split_heads_partial(&sp, &mut heads).unwrap();
    /// let views: Vec<PacketView> = (0..n)
    ///     .map(|i| {
    ///         let p = gso.payload_range(i);
    ///         PacketView {
    ///             hdr: gso.partial_hdr(),
    ///             head: Segment { buf: 0, start: 40 * i, end: 40 * (i + 1) },
    ///             tail: Segment { buf: 1, start: 40 + p.start, end: 40 + p.end },
    ///         }
    ///     })
    ///     .collect();
    ///
    /// // Merged again: one run, its payload one slice of `sp`.
    /// let mut table = GroTable::new(false);
    /// table.set_partial_checksums(true);
    /// let sources = [&heads[..], &sp[..]];
    /// let plan = table.plan_views(&sources, &views).unwrap();
    /// let run = plan.get(0).unwrap();
    /// assert_eq!((plan.len(), run.hdr().gso_type(), run.hdr().gso_size()), (1, GsoType::TCPV4, 100));
    /// assert_eq!(run.segments(), &[Segment { buf: 1, start: 40, end: 340 }]);
    /// let iov: Vec<&[u8]> = run.slices(&sources).unwrap().collect();
    /// assert_eq!(&iov[0][10..], &sp[..40]); // the super-packet's headers
    /// assert!(core::ptr::eq(iov[1], &sp[40..])); // not a copy
    /// ```
    pub fn plan_views<B: AsRef<[u8]>>(
        &mut self,
        sources: &[B],
        views: &[PacketView],
    ) -> Result<GroPlan<'_>, GroError> {
        self.plan.clear();
        check_views(sources, views)?;
        let mut store = Views { sources, views };
        self.run_batch(&mut store);
        self.record_plan(&mut store, sources.len());
        Ok(self.planned())
    }

    /// Record the runs of the batch just run as the plan: each in batch
    /// order, its head and its segments where `store` says they lie.
    fn record_plan<S: Store>(&mut self, store: &mut S, sources: usize) {
        let mut items = self.items.iter();
        for (i, role) in self.role.iter().enumerate() {
            let item = match role {
                Role::Absorbed => continue,
                Role::Alone => None,
                // Runs were recorded in batch order: the next item is this one.
                Role::Run => items.next().filter(|it| it.run.merged > 0),
            };
            match item {
                None => {
                    let own = if self.partial_checksums {
                        store.own_hdr(i)
                    } else {
                        VirtioNetHdr::ZERO
                    };
                    self.plan.begin_alone(i, own);
                    store.push_segments(i, 0, &mut self.plan);
                    self.plan.end_run(i, own, store.len(i));
                }
                Some(item) => {
                    let l2 = usize::from(item.l2);
                    let hl = item.cand.header_len();
                    let head = self.plan.begin_merged(&store.head(i)[..l2 + hl]);
                    let len = hl + item.run.payload_len;
                    let v = finish_run(item, &mut head[VirtioNetHdr::LEN + l2..], len);
                    head[..VirtioNetHdr::LEN].copy_from_slice(&v.to_bytes());
                    // The payloads in sequence order, each where it lies.
                    let mut j = item.head;
                    for _ in 0..=item.run.merged {
                        if j as usize >= store.count() {
                            break;
                        }
                        self.plan.push_packet(j as usize);
                        store.push_segments(j as usize, l2 + hl, &mut self.plan);
                        j = self.next[j as usize];
                    }
                    self.plan.end_run(i, v, l2 + len);
                }
            }
        }
        self.plan.set_batch(store.count(), sources);
        self.stats.packets_out = self.plan.runs();
    }

    /// The runs of the last [`Self::plan`] (empty after a [`Self::coalesce`]).
    pub fn planned(&self) -> GroPlan<'_> {
        self.plan.view()
    }

    /// The batch loop both ways share: reset the table, then classify and
    /// merge every packet in batch order.
    fn run_batch<S: Store>(&mut self, store: &mut S) {
        let n = store.count();
        self.reserve(n);
        self.items.clear();
        self.slots.fill(NONE);
        self.role.clear();
        self.role.resize(n, Role::Alone);
        self.next.clear();
        self.next.resize(n, NONE);
        self.out.clear();
        self.stats = GroStats {
            packets_in: n,
            ..GroStats::default()
        };
        for i in 0..n {
            self.insert(store, i);
        }
    }

    fn insert<S: Store>(&mut self, store: &mut S, i: usize) {
        // Vouched for by the caller, as CHECKSUM_UNNECESSARY is in the
        // kernel's GRO, or by the packet's own header: nothing to verify.
        let own = if self.partial_checksums {
            store.own_hdr(i)
        } else {
            VirtioNetHdr::ZERO
        };
        let vouched = self.checksums_verified || own != VirtioNetHdr::ZERO;
        // A frame: the IP packet behind its L2 header, the rest as for a
        // packet at `offset + l2`.
        let (l2, l2_key) = if self.frames {
            let frame = store.head(i);
            match crate::frame::ip_offset(frame) {
                Some(l2) => (l2, l2_word(&frame[..l2])),
                None => {
                    // Not IP: written as it is, a barrier for no flow.
                    self.stats.refused[Refusal::NotIpFrame.index()] += 1;
                    return;
                }
            }
        } else {
            (0, 0)
        };
        let pkt_len = store.len(i) - l2;
        let cand = {
            let pkt = &store.head(i)[l2..];
            match classify_with(pkt, pkt_len, self.udp_gro, self.tcp_gro, self.tcp_ecn) {
                Ok(c) => c,
                Err(r) => {
                    self.stats.refused[r.index()] += 1;
                    // Written as it is, at its place: the run its flow holds
                    // ends here, so that nothing behind it overtakes it.
                    if let Some(b) = barrier_of(pkt, l2_key) {
                        self.barrier(b);
                    }
                    return;
                }
            }
        };
        if self.partial_checksums
            && own.flags().contains(HdrFlags::NEEDS_CSUM)
            && (usize::from(own.csum_start()) != l2 + cand.ip_header_len
                || usize::from(own.csum_offset()) != cand.kind.csum_offset())
        {
            // Partial elsewhere (an inner checksum): as any refused packet.
            let r = Refusal::PartialChecksumElsewhere;
            self.stats.refused[r.index()] += 1;
            let pkt = &store.head(i)[l2..];
            if let Some(b) = barrier_of(pkt, l2_key) {
                self.barrier(b);
            }
            return;
        }
        let mut key = FlowKey::of(&store.head(i)[l2..], &cand);
        key.l2 = l2_key;
        let slot = self.slot_of(&key);
        let head = self.slots[slot];
        let mut incoming = Incoming {
            index: i,
            len: pkt_len,
            l2: l2 as u8,
            cand,
            csum_ok: vouched.then_some(true),
        };
        // Only the flow's newest run may grow, as the kernel holds one
        // packet per flow: a packet that cannot join it starts the next one.
        if head != NONE && !self.items[head as usize].dead && !self.items[head as usize].sealed {
            let idx = head as usize;
            match self.try_merge(store, idx, &mut incoming) {
                Attempt::Merged => {
                    self.role[i] = Role::Absorbed;
                    self.stats.segments_merged += 1;
                    return;
                }
                Attempt::PacketBad => {
                    // Written as it is, behind the run: the run ends.
                    self.stats.bad_checksum += 1;
                    self.stats.flow_barriers += 1;
                    self.items[idx].sealed = true;
                    return;
                }
                Attempt::ItemBad => {
                    self.stats.bad_checksum += 1;
                    self.items[idx].dead = true;
                }
                Attempt::No => {}
            }
        }
        let p = &store.head(i)[l2..];
        let ip_id = ipv4_ident(p, cand.kind);
        let cwr = cand.kind.is_tcp()
            && TcpPacket::new_unchecked(&p[cand.ip_header_len..]).flags() & tcp_flags::CWR != 0;
        let pseudo = pseudo_header(p, &cand, 0);
        self.slots[slot] = self.items.len() as u32;
        self.role[i] = Role::Run;
        self.items.push(Item {
            key,
            cand,
            buf: i as u32,
            head: i as u32,
            tail: i as u32,
            run: Run {
                seq: cand.seq,
                payload_len: cand.payload_len,
                gso_size: cand.payload_len,
                merged: 0,
                psh: cand.psh,
                closed: false,
            },
            csum_ok: incoming.csum_ok,
            dead: false,
            sealed: false,
            ip_id,
            id_mode: IdMode::Open,
            cwr,
            pseudo,
            l2: l2 as u8,
        });
    }

    /// The slot of `key`'s flow: where its newest run is, or the empty slot
    /// where it will be.
    #[inline(always)]
    fn slot_of(&self, key: &FlowKey) -> usize {
        let mask = self.slots.len() - 1;
        // The slot count is a power of two: take the hash's top bits.
        let bits = self.slots.len().trailing_zeros();
        let mut slot = (key.hash() >> (64 - bits)) as usize & mask;
        loop {
            let head = self.slots[slot];
            if head == NONE || self.items[head as usize].key == *key {
                return slot;
            }
            slot = (slot + 1) & mask;
        }
    }

    /// End the held run(s) a packet that was not coalesced is a barrier for.
    fn barrier(&mut self, b: Barrier) {
        match b {
            Barrier::Flow(key) => {
                let head = self.slots[self.slot_of(&key)];
                if head != NONE {
                    self.items[head as usize].sealed = true;
                    self.stats.flow_barriers += 1;
                }
            }
            Barrier::Hosts { kind, addrs } => {
                let mut any = false;
                for it in self.items.iter_mut() {
                    if it.key.kind == kind && it.key.addrs == addrs && !it.sealed {
                        it.sealed = true;
                        any = true;
                    }
                }
                self.stats.flow_barriers += usize::from(any);
            }
        }
    }

    /// Try to merge the `incoming` packet into the run `idx` of its flow (an
    /// earlier packet's buffer); records what it learns about the packet's
    /// checksum in `incoming.csum_ok`. First every check, reading only;
    /// then the store puts the payload where its way of merging wants it.
    fn try_merge<S: Store>(
        &mut self,
        store: &mut S,
        idx: usize,
        incoming: &mut Incoming,
    ) -> Attempt {
        let Incoming {
            index: i,
            len: pkt_len,
            l2,
            ref cand,
            csum_ok: ref mut pkt_csum,
        } = *incoming;
        // Only the fields the checks need, not a copy of the whole record.
        let item = {
            let it = &self.items[idx];
            ItemView {
                buf: it.buf,
                run: it.run,
                csum_ok: it.csum_ok,
                pseudo: it.pseudo,
                hl: it.cand.header_len(),
                first_len: it.cand.header_len() + it.cand.payload_len,
                ip_id: it.ip_id,
                id_mode: it.id_mode,
                cwr: it.cwr,
                l2: it.l2,
            }
        };
        let ib = item.buf as usize;
        if item.hl != cand.header_len() || item.l2 != l2 {
            return Attempt::No;
        }
        let hl = cand.header_len();
        let ip_hl = cand.ip_header_len;
        let tcp = cand.kind.is_tcp();
        let item_len = hl + item.run.payload_len;
        let new_len = item_len + cand.payload_len;
        let (how, id_mode, new_id, l4_hdr_sum) = {
            // The run's first packet (ib < i) and the incoming one, read
            // only: their heads, from the frame start for frames.
            let (item_head, frame) = store.pair(ib, i);
            // Frames merge only behind equal L2 headers.
            let l2 = usize::from(l2);
            if l2 != 0 && item_head[..l2] != frame[..l2] {
                return Attempt::No;
            }
            let pkt = &frame[l2..];
            // The run's headers are its first packet's, not yet rewritten.
            let item_hdr = &item_head[l2..l2 + hl];
            if !ip_headers_match(item_hdr, pkt, cand.kind.is_v6()) {
                return Attempt::No;
            }
            // Same header length (checked above): acknowledgment, flag word
            // but CWR/FIN/PSH, urgent pointer and options must be equal.
            if tcp
                && (!tcp_fixed_fields_match(&item_hdr[ip_hl..], &pkt[ip_hl..], hl - ip_hl)
                    || TcpPacket::new_unchecked(&pkt[ip_hl..]).flags() & tcp_flags::CWR != 0)
            {
                return Attempt::No;
            }
            let how = if tcp {
                match tcp_merge(&item.run, cand.seq, cand.payload_len, cand.psh) {
                    // CWR stays on the first segment.
                    Some(Merge::Prepend) if item.cwr => return Attempt::No,
                    Some(m) => m,
                    None => return Attempt::No,
                }
            } else if udp_merge(&item.run, cand.payload_len) {
                if item.run.merged + 1 >= UDP_MAX_SEGMENTS {
                    self.stats.segment_limit += 1;
                    return Attempt::No;
                }
                Merge::Append
            } else {
                return Attempt::No;
            };
            if item.run.merged + 1 >= S::MAX_RUN_PACKETS {
                self.stats.segment_limit += 1;
                return Attempt::No;
            }
            let new_id = ipv4_ident(pkt, cand.kind);
            let id_mode = if cand.kind.is_v6() {
                IdMode::Fixed
            } else {
                let df = Ipv4Packet::new_unchecked(pkt).dont_frag();
                match ipv4_id_merge(item.id_mode, item.ip_id, item.run.merged, new_id, df, how) {
                    Some(m) => m,
                    None => return Attempt::No,
                }
            };
            // The transport header's part of an appended packet's sum, its
            // payload's comes with the store's pass over it.
            let l4_hdr_sum = match (how, *pkt_csum) {
                (Merge::Append, None) => Some(Checksum::of(&pkt[ip_hl..hl])),
                _ => None,
            };
            (how, id_mode, new_id, l4_hdr_sum)
        };
        let l2 = usize::from(l2);
        if new_len > MAX_MERGED_LEN {
            self.stats.too_large += 1;
            return Attempt::No;
        }
        if S::IN_PLACE && l2 + new_len > store.room(ib) {
            self.stats.no_room += 1;
            return Attempt::No;
        }
        // Verify both checksums, each at most once.
        if item.csum_ok.is_none() {
            // Not checked yet: nothing has joined the run, which is its
            // first packet alone, of the candidate's shape (same flow and
            // header length).
            let ok = l4_checksum_ok(store, ib, l2, ip_hl, item.first_len - ip_hl, item.pseudo);
            self.items[idx].csum_ok = Some(ok);
        }
        if self.items[idx].csum_ok == Some(false) {
            return Attempt::ItemBad;
        }
        if how == Merge::Prepend
            && !*pkt_csum.get_or_insert_with(|| {
                l4_checksum_ok(store, i, l2, ip_hl, pkt_len - ip_hl, item.pseudo)
            })
        {
            return Attempt::PacketBad;
        }
        // Packet-relative: the payload from its start to the end.
        let payload = l2 + hl;
        match how {
            Merge::Append => {
                // In place, copy first and verify from the same pass: the
                // bytes land behind the run's end, which stays where it is
                // if the checksum turns out bad.
                let payload_sum = if pkt_csum.is_some() {
                    // Verified already (or vouched for): move it, no sum.
                    store.place(ib, l2 + item_len, i, payload);
                    Checksum::default()
                } else {
                    store.append(ib, l2 + item_len, i, payload)
                };
                let ok = match (*pkt_csum, l4_hdr_sum) {
                    (Some(ok), _) => ok,
                    // Not verified yet: the read phase summed its header
                    // (always, for an append; were it missing, the zero sum
                    // would fail the check and refuse the merge).
                    (None, hdr_sum) => {
                        let mut sum = item.pseudo;
                        sum.add_u16((pkt_len - ip_hl) as u16);
                        let ok = sum
                            .combine(hdr_sum.unwrap_or_default())
                            .combine(payload_sum)
                            .fold()
                            == 0xffff;
                        *pkt_csum = Some(ok);
                        ok
                    }
                };
                if !ok {
                    return Attempt::PacketBad;
                }
                let it = &mut self.items[idx];
                if cand.payload_len < it.run.gso_size {
                    it.run.closed = true;
                }
                it.run.psh |= cand.psh;
                self.next[it.tail as usize] = i as u32;
                it.tail = i as u32;
            }
            Merge::Prepend => {
                store.prepend(ib, l2 + hl..l2 + item_len, i, payload);
                let it = &mut self.items[idx];
                if it.run.merged == 0 && cand.payload_len > it.run.gso_size {
                    // The old first segment is now a shorter last one.
                    it.run.closed = true;
                }
                it.run.gso_size = it.run.gso_size.max(cand.payload_len);
                it.run.seq = cand.seq;
                it.ip_id = new_id;
                self.next[i] = it.head;
                it.head = i as u32;
            }
        }
        let it = &mut self.items[idx];
        it.run.payload_len += cand.payload_len;
        it.run.merged += 1;
        it.id_mode = id_mode;
        Attempt::Merged
    }
}

/// Check the batch's shape: as many lengths as buffers (`buf_lens`), each
/// packet inside its buffer behind `offset`.
fn check_batch(
    buf_lens: impl ExactSizeIterator<Item = usize>,
    lens: &[usize],
    offset: usize,
) -> Result<(), GroError> {
    if buf_lens.len() != lens.len() {
        return Err(GroError::LengthsMismatch {
            bufs: buf_lens.len(),
            lens: lens.len(),
        });
    }
    for (index, (buf_len, &len)) in buf_lens.zip(lens.iter()).enumerate() {
        match offset.checked_add(len) {
            Some(end) if end <= buf_len => {}
            end => {
                return Err(GroError::PacketOutsideBuffer {
                    index,
                    end: end.unwrap_or(usize::MAX),
                    buf_len,
                });
            }
        }
    }
    Ok(())
}

/// Check a batch of views: each piece in a source and in order
/// (`start <= end`).
fn check_views<B: AsRef<[u8]>>(sources: &[B], views: &[PacketView]) -> Result<(), GroError> {
    for (index, v) in views.iter().enumerate() {
        for seg in [v.head, v.tail] {
            let Some(src) = sources.get(seg.buf) else {
                return Err(GroError::NoSuchSource {
                    index,
                    source: seg.buf,
                    sources: sources.len(),
                });
            };
            let source_len = src.as_ref().len();
            if seg.start > seg.end || seg.end > source_len {
                return Err(GroError::ViewOutsideSource {
                    index,
                    start: seg.start,
                    end: seg.end,
                    source_len,
                });
            }
        }
    }
    Ok(())
}

/// The packet a merge attempt is about.
struct Incoming {
    /// Its index in the batch (later than any run's).
    index: usize,
    /// Its length behind the offset (of its IP packet, for a frame).
    len: usize,
    /// Bytes of L2 header in front of it (a frame's; else 0).
    l2: u8,
    /// What [`classify`](super::classify) found.
    cand: Candidate,
    /// Whether its transport checksum verifies; `None`: not checked yet.
    csum_ok: Option<bool>,
}

/// The IPv4 identification of a packet of `kind` (0 for IPv6, which has none).
#[inline]
fn ipv4_ident(pkt: &[u8], kind: Kind) -> u16 {
    if kind.is_v6() {
        0
    } else {
        Ipv4Packet::new_unchecked(pkt).ident()
    }
}

/// The parts of an [`Item`] a merge attempt reads.
#[derive(Clone, Copy)]
struct ItemView {
    buf: u32,
    run: Run,
    csum_ok: Option<bool>,
    pseudo: Checksum,
    hl: usize,
    /// Length of the run's first packet alone (its IP packet).
    first_len: usize,
    ip_id: u16,
    id_mode: IdMode,
    cwr: bool,
    l2: u8,
}

/// What became of a packet of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Written as it is, with a zero header.
    Alone,
    /// The first packet of a run (merged or not).
    Run,
    /// Merged into an earlier packet's buffer; not written.
    Absorbed,
}

enum Attempt {
    Merged,
    No,
    PacketBad,
    ItemBad,
}

/// Whether the transport checksum of packet `i` of `store` verifies: its
/// `l4_len` bytes of transport header and payload at `l2 + ip_hl`.
/// `pseudo` is the flow's pseudo-header sum without the length.
fn l4_checksum_ok<S: Store>(
    store: &mut S,
    i: usize,
    l2: usize,
    ip_hl: usize,
    l4_len: usize,
    mut pseudo: Checksum,
) -> bool {
    pseudo.add_u16(l4_len as u16);
    pseudo.combine(store.sum(i, l2 + ip_hl)).fold() == 0xffff
}

fn pseudo_header(pkt: &[u8], c: &Candidate, l4_len: usize) -> Checksum {
    if c.kind.is_v6() {
        Ipv6Packet::new_unchecked(pkt).pseudo_header(c.kind.protocol(), l4_len as u32)
    } else {
        Ipv4Packet::new_unchecked(pkt).pseudo_header(l4_len as u16)
    }
}

/// Rewrite the IP and transport headers of a merged run, `pkt` (at least
/// the headers of the run's first packet), for the run's `len` bytes of IP
/// packet, and return its virtio header (counted from the frame start for a
/// frame).
fn finish_run(item: &Item, pkt: &mut [u8], len: usize) -> VirtioNetHdr {
    let c = &item.cand;
    let ip_hl = c.ip_header_len;
    let l4_len = len - ip_hl;
    if c.kind.is_v6() {
        Ipv6Packet::new_unchecked(&mut *pkt).set_payload_len(l4_len as u16);
    } else {
        let mut ip = Ipv4Packet::new_unchecked(&mut pkt[..ip_hl]);
        ip.set_total_len(len as u16);
        ip.set_ident(item.ip_id);
        ip.fill_checksum();
    }
    let mut pseudo = item.pseudo;
    pseudo.add_u16(l4_len as u16);
    let pseudo = pseudo.fold();
    let l4 = &mut pkt[ip_hl..];
    let mut gso_type = c.kind.gso_type();
    if c.kind.is_tcp() {
        let mut tcp = TcpPacket::new_unchecked(&mut *l4);
        tcp.set_seq_number(item.run.seq);
        // The first segment's flags (CWR, ECE), PSH from the last.
        let mut flags = tcp.flags() & !tcp_flags::PSH;
        if item.run.psh {
            flags |= tcp_flags::PSH;
        }
        tcp.set_flags(flags);
        tcp.set_checksum(pseudo);
        if item.cwr {
            gso_type = GsoType(gso_type.0 | GsoType::ECN);
        }
    } else {
        let mut udp = UdpPacket::new_unchecked(&mut *l4);
        udp.set_len(l4_len as u16);
        udp.set_checksum(pseudo);
    }
    // A frame's header counts from the frame start.
    let l2 = u16::from(item.l2);
    VirtioNetHdr::new(
        HdrFlags::NEEDS_CSUM,
        gso_type,
        l2 + c.header_len() as u16,
        item.run.gso_size as u16,
        l2 + ip_hl as u16,
        c.kind.csum_offset() as u16,
    )
}
