//! Transmit path: coalesce a batch of outgoing IP packets into the fewest,
//! largest packets the kernel accepts through a TUN with `IFF_VNET_HDR`
//! (GRO in userspace), each with its virtio header filled in.
//!
//! # How a batch is handed over
//!
//! Packet `i` lives in `bufs[i][offset..offset + lens[i]]`; the
//! `VirtioNetHdr::LEN` bytes before `offset` are where its header goes, and
//! the bytes after the packet are spare capacity a merge may grow into.
//! [`GroTable::coalesce`] then:
//!
//! - appends (or, for TCP segments that arrive out of order, prepends) the
//!   payloads of later packets into the buffer of the first packet of their
//!   run, so **data moves between buffers, but buffers never change places**:
//!   a run always lives in the buffer of its earliest packet, and a packet
//!   merged into another is simply not written;
//! - updates `lens[i]` of merged packets and writes every written packet's
//!   header (all-zero for a packet written as it is);
//! - returns the indices to write, ascending.
//!
//! # Rules
//!
//! The kernel's GRO is the specification: net/ipv4/tcp_offload.c
//! (tcp_gro_receive), net/ipv4/udp_offload.c (udp_gro_receive_segment),
//! net/ipv4/af_inet.c and include/net/gro.h (inet_gro_receive,
//! inet_gro_flush), net/ipv6/ip6_offload.c (ipv6_gro_receive), and what a
//! write must satisfy, include/linux/virtio_net.h (virtio_net_hdr_to_skb).
//! Where this table merges less than the kernel it says so; it never merges
//! more, except for putting out-of-order TCP segments back in sequence.
//!
//! - **Candidates.** IPv4 without options, whose header checksum verifies
//!   (inet_gro_receive drops a bad one; here it is written as it is, never
//!   rewritten into a valid one) and whose flags/offset word has no bit but DF
//!   set (MF, an offset or the reserved bit: no merge); IPv6 with TCP or UDP
//!   directly behind the fixed header (extension headers: written as they
//!   are, a refusal that only costs speed); IP length fields equal to the
//!   buffer. TCP with ACK and a payload, optionally PSH and ECE, CWR only
//!   when the table was told TSO_ECN was negotiated ([`GroTable::set_tcp_ecn`]);
//!   FIN, SYN, RST and URG are written as they are (the kernel merges a FIN
//!   as a run's last segment; here that costs one merge per connection). UDP
//!   only when the device negotiated USO.
//! - **Flows.** Keyed by family, transport, addresses and ports, as the
//!   kernel's GRO lists are; only a flow's newest run may grow, as the kernel
//!   holds one packet per flow, so a packet that cannot join it starts the
//!   next run and the older one is final.
//! - **IP headers** must agree: IPv4 TOS (ECN bits included), TTL and DF;
//!   IPv6 version, traffic class, flow label and hop limit.
//! - **IPv4 ID continuity** (inet_gro_flush): appended, a segment's ID must be
//!   the run's first ID plus the run's segment count; with DF set, a second
//!   segment with the first one's ID instead makes the run fixed-ID, and every
//!   later segment must repeat it. Without DF, equal IDs never merge, so two
//!   interleaved flows between the same hosts never come out of a
//!   segmentation with repeated (source, destination, protocol, ID). The
//!   merged packet carries the first ID and segmentation (the kernel's
//!   inet_gso_segment, or [`crate::split`]) writes first ID + i: for a
//!   fixed-ID run that rewrites the IDs of atomic datagrams, which RFC 6864
//!   allows and the kernel itself does on a TSO_MANGLEID device; the virtio
//!   header has no way to say "fixed ID". The same rule holds for UDP.
//! - **TCP header** (tcp_gro_receive): the same length, acknowledgment number
//!   and byte-equal options, and the same flag word, bytes 12..16 (data
//!   offset, reserved and AE bits, flags, window) apart from CWR, FIN and PSH:
//!   a segment with another window or another AE/reserved bit starts a new
//!   run, so no value is lost. The urgent pointer must be equal too (the
//!   kernel does not compare it without URG, but a split copies the first
//!   one, so a difference would not survive).
//! - **TCP sequence.** Appended when it continues the run, unless the run
//!   ended with PSH or a shorter segment or the new payload is larger than
//!   the segment size; PSH of the last segment is kept on the merged packet
//!   (and restored only on the last segment by a split). Prepended when it
//!   ends where the run starts (not with PSH, not shorter, not larger after
//!   merges): the one place this table merges where the kernel would not,
//!   putting two adjacent data segments of a flow back in sequence order.
//! - **ECN** (tcp_gro_receive, tcp_gro_complete): a segment with CWR never
//!   joins a run; with TSO_ECN negotiated it starts one, nothing is
//!   prepended to it, and the merged packet says `GsoType::ECN`, so that
//!   segmentation keeps CWR on the first segment only. ECE merges like any
//!   flag that stays equal. Without TSO_ECN a CWR segment is written as it is.
//! - **Segment counts.** A UDP run holds at most [`UDP_MAX_SEGMENTS`] (64)
//!   datagrams: virtio_net_hdr_to_skb refuses a UDP_L4 packet with more
//!   segments than UDP_MAX_SEGMENTS (64 up to 6.9 and in the 5.15/6.1 stable
//!   trees) with EINVAL, and the kernel's own UDP GRO stops at 64. A TCP run
//!   needs no count cap: virtio_net_hdr_to_skb checks none for TCP, gso_segs
//!   is 16 bits wide and 65535 bytes cannot hold more segments, and an egress
//!   device's gso_max_segs makes the kernel segment in software rather than
//!   drop (netif_skb_features). No merged packet exceeds 65535 bytes,
//!   whatever the buffers' capacity.
//! - **Order within a flow.** A packet that is not coalesced (a pure ACK,
//!   SYN/FIN/RST, a fragment, IPv4 options, extension headers, a bad length,
//!   an empty datagram, a bad checksum) ends its flow's held run, so nothing
//!   behind it overtakes it (a pure ACK flushes the flow in tcp_gro_receive
//!   too). A later fragment carries no ports: it ends every run between its
//!   two hosts with its transport.
//! - **Checksums.** Transport checksums of both packets are verified before
//!   merging; a packet with a bad one is written as it is and ends its flow's
//!   run; a run whose first packet is bad is written alone, its header zeroed.
//! - **Output.** NEEDS_CSUM, TCPV4/TCPV6 (with ECN as above) or UDP_L4,
//!   `hdr_len`, `gso_size` of the first segment, `csum_start` at the transport
//!   header, `csum_offset` 16 or 6; IPv4 total length, first ID and header
//!   checksum rewritten, IPv6 payload length, UDP length; the transport
//!   checksum field holds the folded pseudo-header sum.
//!
//! # Cost
//!
//! A table is reused across batches: its flow slots and run records grow to
//! the largest batch seen and are then only reset, so a steady stream of
//! batches allocates nothing. Each packet is classified once, hashed once
//! (a multiply-xor hash, not SipHash), checksummed once and its payload
//! copied at most once.

use core::fmt;

use alloc::vec::Vec;

use crate::checksum::Checksum;
use crate::error::PacketError;
use crate::kind::Kind;
use crate::virtio::{GsoType, HdrFlags, VirtioNetHdr};
use crate::wire::{
    IPV4_MIN_HEADER_LEN, IPV6_HEADER_LEN, IpPacket, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket,
    UDP_HEADER_LEN, UdpPacket, tcp_flags,
};

/// The largest packet a merge may produce (the IPv4 total-length limit,
/// applied to both families).
pub const MAX_MERGED_LEN: usize = 65535;

/// A packet that may be coalesced, as [`classify`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Transport and family.
    pub kind: Kind,
    /// IP header length (20 or 40).
    pub ip_header_len: usize,
    /// Transport header length (20..=60 for TCP, 8 for UDP).
    pub l4_header_len: usize,
    /// Payload bytes behind the headers (never zero).
    pub payload_len: usize,
    /// TCP sequence number (0 for UDP).
    pub seq: u32,
    /// TCP PSH flag.
    pub psh: bool,
}

impl Candidate {
    /// Both headers.
    pub fn header_len(&self) -> usize {
        self.ip_header_len + self.l4_header_len
    }
    /// The whole packet.
    pub fn len(&self) -> usize {
        self.header_len() + self.payload_len
    }
    /// Always false: candidates carry payload. Present for `len`'s sake.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Why a packet is not a coalescing candidate (it is written as it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Too short for its IP or transport header.
    TooShort,
    /// The version nibble is neither 4 nor 6.
    BadIpVersion,
    /// IPv4 header with options (IHL other than 5).
    Ipv4Options,
    /// IPv6 next header is not TCP or UDP (extension headers or another protocol).
    Ipv6ExtensionHeaders,
    /// IPv4 fragment (MF set or a fragment offset), or the reserved flag bit set:
    /// any bit of the flags/offset word other than DF.
    Fragment,
    /// An IP or UDP length field disagrees with the buffer.
    LengthMismatch,
    /// Longer than 65535 bytes.
    TooLong,
    /// Neither TCP nor UDP.
    NotTcpOrUdp,
    /// TCP data offset outside 20..=60 bytes.
    BadTcpHeader,
    /// TCP flags other than ACK, optionally with PSH and ECE (and CWR when
    /// the table was told TSO_ECN was negotiated): FIN, SYN, RST, URG, or no ACK.
    TcpFlags,
    /// No payload.
    EmptyPayload,
    /// UDP, but the device did not negotiate USO.
    UdpDisabled,
    /// The IPv4 header checksum does not verify (the kernel drops such a
    /// packet; it is written as it is, never rewritten into a valid one).
    BadIpv4Checksum,
}

impl Refusal {
    const ALL: [Refusal; 13] = [
        Refusal::TooShort,
        Refusal::BadIpVersion,
        Refusal::Ipv4Options,
        Refusal::Ipv6ExtensionHeaders,
        Refusal::Fragment,
        Refusal::LengthMismatch,
        Refusal::TooLong,
        Refusal::NotTcpOrUdp,
        Refusal::BadTcpHeader,
        Refusal::TcpFlags,
        Refusal::EmptyPayload,
        Refusal::UdpDisabled,
        Refusal::BadIpv4Checksum,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::TooShort => "too short for its headers",
            Refusal::BadIpVersion => "not IPv4 or IPv6",
            Refusal::Ipv4Options => "IPv4 header has options",
            Refusal::Ipv6ExtensionHeaders => {
                "IPv6 extension headers or a protocol other than TCP/UDP"
            }
            Refusal::Fragment => "IPv4 fragment or a flag bit other than DF",
            Refusal::LengthMismatch => "length field disagrees with the buffer",
            Refusal::TooLong => "longer than 65535 bytes",
            Refusal::NotTcpOrUdp => "neither TCP nor UDP",
            Refusal::BadTcpHeader => "TCP data offset out of range",
            Refusal::TcpFlags => "TCP flags other than ACK with PSH, ECE or CWR",
            Refusal::EmptyPayload => "no payload",
            Refusal::UdpDisabled => "UDP coalescing not enabled",
            Refusal::BadIpv4Checksum => "IPv4 header checksum does not verify",
        })
    }
}

/// Decide whether `packet` (a whole IP packet) can be coalesced at all.
///
/// A TCP segment with CWR is refused here ([`Refusal::TcpFlags`]): a
/// [`GroTable`] told that TSO_ECN was negotiated ([`GroTable::set_tcp_ecn`])
/// lets it start a run instead.
#[inline]
pub fn classify(packet: &[u8], udp_gro: bool) -> Result<Candidate, Refusal> {
    classify_with(packet, udp_gro, false)
}

/// TCP flags a candidate may carry besides ACK (CWR only with TSO_ECN).
const TCP_FLAGS_OK: u8 = tcp_flags::PSH | tcp_flags::ECE;

#[inline]
fn classify_with(packet: &[u8], udp_gro: bool, tcp_ecn: bool) -> Result<Candidate, Refusal> {
    if packet.is_empty() {
        return Err(Refusal::TooShort);
    }
    if packet.len() > MAX_MERGED_LEN {
        return Err(Refusal::TooLong);
    }
    let ip = IpPacket::new_checked(packet).map_err(|e| match e {
        PacketError::UnknownIpVersion { .. } => Refusal::BadIpVersion,
        _ => Refusal::TooShort,
    })?;
    match ip {
        IpPacket::V4(ip) => {
            if ip.header_len() != IPV4_MIN_HEADER_LEN {
                return Err(Refusal::Ipv4Options);
            }
            // Any bit but DF: MF, an offset, or the reserved bit.
            if ip.flags_frag() & !Ipv4Packet::<&[u8]>::DF != 0 {
                return Err(Refusal::Fragment);
            }
        }
        IpPacket::V6(_) => {}
    }
    ip.check_claimed_len()
        .map_err(|_| Refusal::LengthMismatch)?;
    let Some(kind) = Kind::new(ip.version(), ip.protocol()) else {
        return Err(if ip.version() == 6 {
            Refusal::Ipv6ExtensionHeaders
        } else {
            Refusal::NotTcpOrUdp
        });
    };
    let cand = classify_l4(packet, kind, ip.header_len(), udp_gro, tcp_ecn)?;
    // Last, so that a packet refused for its shape says why.
    if let IpPacket::V4(ip) = ip {
        if !ip.verify_checksum() {
            return Err(Refusal::BadIpv4Checksum);
        }
    }
    Ok(cand)
}

#[inline]
fn classify_l4(
    packet: &[u8],
    kind: Kind,
    ip_hl: usize,
    udp_gro: bool,
    tcp_ecn: bool,
) -> Result<Candidate, Refusal> {
    let l4 = &packet[ip_hl..];
    if kind.is_tcp() {
        let tcp = TcpPacket::new_checked(l4).map_err(|e| match e {
            PacketError::BadTcpDataOffset { .. } => Refusal::BadTcpHeader,
            _ => Refusal::TooShort,
        })?;
        let flags = tcp.flags();
        let ok = if tcp_ecn {
            TCP_FLAGS_OK | tcp_flags::CWR
        } else {
            TCP_FLAGS_OK
        };
        if flags & tcp_flags::ACK == 0 || flags & !(ok | tcp_flags::ACK) != 0 {
            return Err(Refusal::TcpFlags);
        }
        let payload_len = l4.len() - tcp.header_len();
        if payload_len == 0 {
            return Err(Refusal::EmptyPayload);
        }
        Ok(Candidate {
            kind,
            ip_header_len: ip_hl,
            l4_header_len: tcp.header_len(),
            payload_len,
            seq: tcp.seq_number(),
            psh: flags & tcp_flags::PSH != 0,
        })
    } else {
        if !udp_gro {
            return Err(Refusal::UdpDisabled);
        }
        let udp = UdpPacket::new_checked(l4).map_err(|_| Refusal::TooShort)?;
        if usize::from(udp.len()) != l4.len() {
            return Err(Refusal::LengthMismatch);
        }
        let payload_len = l4.len() - UDP_HEADER_LEN;
        if payload_len == 0 {
            return Err(Refusal::EmptyPayload);
        }
        Ok(Candidate {
            kind,
            ip_header_len: ip_hl,
            l4_header_len: UDP_HEADER_LEN,
            payload_len,
            seq: 0,
            psh: false,
        })
    }
}

/// Whether the IP headers of two candidates of the same flow agree on
/// everything a merge must keep: IPv4 TOS, TTL and DF/MF bits; IPv6
/// traffic class, flow label and hop limit.
#[inline]
pub fn ip_headers_match(a: &[u8], b: &[u8], v6: bool) -> bool {
    if v6 {
        // Version, traffic class and flow label are the first four bytes.
        a.get(..4) == b.get(..4) && a.get(7) == b.get(7)
    } else {
        let flags = |p: &[u8]| p.get(6).map(|x| x & 0x60);
        a.get(1) == b.get(1) && a.get(8) == b.get(8) && flags(a) == flags(b)
    }
}

/// Whether two TCP headers (at the start of `a` and `b`) may belong to one
/// run: the same length, acknowledgment number, urgent pointer and
/// byte-equal options, and the same flag word (bytes 12..16: data offset,
/// reserved and AE bits, flags, window) apart from CWR, FIN and PSH, as
/// tcp_gro_receive requires. Sequence numbers and checksums are not compared.
pub fn tcp_headers_match(a: &[u8], b: &[u8]) -> bool {
    let (Ok(ta), Ok(tb)) = (TcpPacket::new_checked(a), TcpPacket::new_checked(b)) else {
        return false;
    };
    ta.header_len() == tb.header_len() && tcp_fixed_fields_match(a, b, ta.header_len())
}

/// The flag bits a run's segments may differ in (tcp_gro_receive's mask).
const FLAG_WORD_FREE: u8 = tcp_flags::CWR | tcp_flags::FIN | tcp_flags::PSH;

/// The comparison of [`tcp_headers_match`] on two TCP headers of `hl` bytes
/// each (both slices at least `hl` long).
#[inline]
fn tcp_fixed_fields_match(a: &[u8], b: &[u8], hl: usize) -> bool {
    a[8..13] == b[8..13]
        && (a[13] ^ b[13]) & !FLAG_WORD_FREE == 0
        && a[14..16] == b[14..16]
        && a[18..hl] == b[18..hl]
}

/// The largest number of segments of a UDP_L4 super-packet: the kernel's
/// UDP_MAX_SEGMENTS (64 in the 5.15 and 6.1 stable trees and 6.6 to 6.9, 128
/// later). virtio_net_hdr_to_skb refuses a larger one with EINVAL, so a UDP
/// run never holds more.
pub const UDP_MAX_SEGMENTS: usize = 64;

/// A run of coalesced segments, as far as the merge rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Run {
    /// Sequence number of the first byte (TCP).
    pub seq: u32,
    /// Payload bytes merged so far.
    pub payload_len: usize,
    /// Segment size: payload bytes of the first segment.
    pub gso_size: usize,
    /// Segments merged into the first one.
    pub merged: usize,
    /// The last segment has PSH (TCP): nothing may follow.
    pub psh: bool,
    /// The last segment is shorter than `gso_size`: nothing may follow.
    pub closed: bool,
}

/// Where a new segment goes relative to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Behind the run's last segment.
    Append,
    /// In front of the run's first segment.
    Prepend,
}

/// The TCP rule: may a segment (`seq`, `payload_len`, `psh`) join `run`?
pub fn tcp_merge(run: &Run, seq: u32, payload_len: usize, psh: bool) -> Option<Merge> {
    if seq == run.seq.wrapping_add(run.payload_len as u32) {
        if run.psh || run.closed || payload_len > run.gso_size {
            return None;
        }
        return Some(Merge::Append);
    }
    if seq.wrapping_add(payload_len as u32) == run.seq {
        if psh || payload_len < run.gso_size || (payload_len > run.gso_size && run.merged > 0) {
            return None;
        }
        return Some(Merge::Prepend);
    }
    None
}

/// The UDP rule: may a datagram of `payload_len` bytes be appended to `run`
/// (the newest run of its flow)?
pub fn udp_merge(run: &Run, payload_len: usize) -> bool {
    !run.closed && payload_len <= run.gso_size
}

/// Per-batch counters of a [`GroTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroStats {
    /// Packets handed in.
    pub packets_in: usize,
    /// Packets to write.
    pub packets_out: usize,
    /// Packets merged into another.
    pub segments_merged: usize,
    /// Packets (or runs) written as they are because a checksum did not verify.
    pub bad_checksum: usize,
    /// Merges not done because the run's buffer had no spare capacity.
    pub no_room: usize,
    /// Merges not done because the result would exceed 65535 bytes.
    pub too_large: usize,
    /// Merges not done because the UDP run already held
    /// [`UDP_MAX_SEGMENTS`] datagrams.
    pub segment_limit: usize,
    /// Packets that could not be coalesced and ended the run of their flow
    /// (a pure ACK, a fragment, a refused datagram, a bad checksum), so that
    /// nothing behind them overtakes them.
    pub flow_barriers: usize,
    refused: [usize; 13],
}

impl GroStats {
    /// Packets that were not candidates for `reason`.
    pub fn refused(&self, reason: Refusal) -> usize {
        self.refused[reason.index()]
    }
    /// Packets that were not candidates, for any reason.
    pub fn refused_total(&self) -> usize {
        self.refused.iter().sum()
    }
    /// Every refusal reason with its count.
    pub fn refusals(&self) -> impl Iterator<Item = (Refusal, usize)> + '_ {
        Refusal::ALL.iter().map(|&r| (r, self.refused[r.index()]))
    }
}

/// A batch the table cannot work on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroError {
    /// `offset` leaves no room for the virtio header in front of the packets.
    NoHeaderRoom {
        /// The offset given.
        offset: usize,
        /// The header's size.
        required: usize,
    },
    /// `bufs` and `lens` differ in length.
    LengthsMismatch {
        /// Buffers given.
        bufs: usize,
        /// Lengths given.
        lens: usize,
    },
    /// Packet `index` claims more bytes than its buffer holds behind `offset`.
    PacketOutsideBuffer {
        /// Index in the batch.
        index: usize,
        /// `offset + lens[index]`.
        end: usize,
        /// The buffer's length.
        buf_len: usize,
    },
}

impl fmt::Display for GroError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GroError::NoHeaderRoom { offset, required } => {
                write!(
                    f,
                    "offset {offset} leaves no room for the {required}-byte virtio header"
                )
            }
            GroError::LengthsMismatch { bufs, lens } => {
                write!(f, "{bufs} buffers but {lens} lengths")
            }
            GroError::PacketOutsideBuffer {
                index,
                end,
                buf_len,
            } => {
                write!(
                    f,
                    "packet {index} ends at byte {end} of a {buf_len}-byte buffer"
                )
            }
        }
    }
}

impl core::error::Error for GroError {}

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
}

impl PartialEq for FlowKey {
    /// Word by word: a derived compare of the address array uses 16-byte
    /// loads, which stall on the 8-byte stores that spilled the key.
    #[inline]
    fn eq(&self, o: &Self) -> bool {
        self.ports == o.ports
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
            ^ self.kind as u64;
        h.wrapping_mul(K)
    }
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
fn barrier_of(pkt: &[u8]) -> Option<Barrier> {
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
    Some(Barrier::Flow(FlowKey::at(pkt, k, l4)))
}

/// How the IPv4 IDs of a run go (include/net/gro.h, inet_gro_flush).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdMode {
    /// One segment so far: decided by the second.
    Open,
    /// Segment `i` has the first segment's ID plus `i`.
    Incrementing,
    /// DF set and every ID equal to the first.
    Fixed,
}

/// Whether a segment with IPv4 ID `new` may join a run whose first segment
/// has ID `first`, holding `merged + 1` segments in `mode`; `df` is the DF
/// bit (equal in every segment of a run). Returns the run's mode after the
/// merge.
///
/// Appended, the new ID must be `first + merged + 1`; prepended, `first - 1`.
/// With DF set, an ID equal to the first is also accepted if the run is
/// fixed or still open (it then becomes fixed). IPv6 has no ID: pass
/// `first == new`, `df == true`.
fn ipv4_id_merge(
    mode: IdMode,
    first: u16,
    merged: usize,
    new: u16,
    df: bool,
    how: Merge,
) -> Option<IdMode> {
    let (offset, step) = match how {
        Merge::Append => (new.wrapping_sub(first), (merged as u16).wrapping_add(1)),
        Merge::Prepend => (first.wrapping_sub(new), 1),
    };
    match mode {
        IdMode::Fixed if offset == 0 => Some(IdMode::Fixed),
        IdMode::Open if offset == 0 && df => Some(IdMode::Fixed),
        IdMode::Open | IdMode::Incrementing if offset == step => Some(IdMode::Incrementing),
        _ => None,
    }
}

/// One run in the table: where it lives and what the merge rules need.
#[derive(Debug, Clone, Copy)]
struct Item {
    key: FlowKey,
    cand: Candidate,
    buf: u32,
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
    tcp_ecn: bool,
    items: Vec<Item>,
    slots: Vec<u32>,
    role: Vec<Role>,
    out: Vec<usize>,
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
            tcp_ecn: false,
            items: Vec::new(),
            slots: Vec::new(),
            role: Vec::new(),
            out: Vec::new(),
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

    /// Counters of the last batch.
    pub fn stats(&self) -> &GroStats {
        &self.stats
    }

    fn reserve(&mut self, batch: usize) {
        self.items.reserve(batch.saturating_sub(self.items.len()));
        self.role.reserve(batch.saturating_sub(self.role.len()));
        self.out.reserve(batch.saturating_sub(self.out.len()));
        let want = (batch * 2).next_power_of_two().max(16);
        if self.slots.len() < want {
            self.slots.resize(want, NONE);
        }
    }

    /// Coalesce the batch (see the module docs for the buffer layout) and
    /// return the indices of the packets to write, ascending. Each written
    /// packet has its virtio header at `bufs[i][offset - 10..offset]` and its
    /// length (header excluded) in `lens[i]`.
    pub fn coalesce<B: AsMut<[u8]>>(
        &mut self,
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
    ) -> Result<&[usize], GroError> {
        if offset < VirtioNetHdr::LEN {
            return Err(GroError::NoHeaderRoom {
                offset,
                required: VirtioNetHdr::LEN,
            });
        }
        if bufs.len() != lens.len() {
            return Err(GroError::LengthsMismatch {
                bufs: bufs.len(),
                lens: lens.len(),
            });
        }
        for (index, (b, &len)) in bufs.iter_mut().zip(lens.iter()).enumerate() {
            let buf_len = b.as_mut().len();
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
        let n = bufs.len();
        self.reserve(n);
        self.items.clear();
        self.slots.fill(NONE);
        self.role.clear();
        self.role.resize(n, Role::Alone);
        self.out.clear();
        self.stats = GroStats {
            packets_in: n,
            ..GroStats::default()
        };

        for i in 0..n {
            self.insert(bufs, lens, offset, i);
        }
        for it in 0..self.items.len() {
            let item = self.items[it];
            let buf = bufs[item.buf as usize].as_mut();
            let (hdr, pkt) = buf[offset - VirtioNetHdr::LEN..].split_at_mut(VirtioNetHdr::LEN);
            if item.run.merged == 0 || item.dead {
                hdr.copy_from_slice(&VirtioNetHdr::ZERO.to_bytes());
                continue;
            }
            let len = item.cand.header_len() + item.run.payload_len;
            lens[item.buf as usize] = len;
            let v = finish_run(&item, &mut pkt[..len]);
            hdr.copy_from_slice(&v.to_bytes());
        }
        for (i, role) in self.role.iter().enumerate() {
            match role {
                Role::Absorbed => continue,
                Role::Run => {}
                // Refused or bad packets are written as they are.
                Role::Alone => bufs[i].as_mut()[offset - VirtioNetHdr::LEN..offset]
                    .copy_from_slice(&VirtioNetHdr::ZERO.to_bytes()),
            }
            self.out.push(i);
        }
        self.stats.packets_out = self.out.len();
        Ok(&self.out)
    }

    fn insert<B: AsMut<[u8]>>(&mut self, bufs: &mut [B], lens: &[usize], offset: usize, i: usize) {
        let pkt_len = lens[i];
        let cand = {
            let pkt = &bufs[i].as_mut()[offset..offset + pkt_len];
            match classify_with(pkt, self.udp_gro, self.tcp_ecn) {
                Ok(c) => c,
                Err(r) => {
                    self.stats.refused[r.index()] += 1;
                    // Written as it is, at its place: the run its flow holds
                    // ends here, so that nothing behind it overtakes it.
                    if let Some(b) = barrier_of(pkt) {
                        self.barrier(b);
                    }
                    return;
                }
            }
        };
        let key = FlowKey::of(&bufs[i].as_mut()[offset..offset + pkt_len], &cand);
        let slot = self.slot_of(&key);
        let head = self.slots[slot];
        let mut pkt_csum: Option<bool> = None;
        // Only the flow's newest run may grow, as the kernel holds one
        // packet per flow: a packet that cannot join it starts the next one.
        if head != NONE && !self.items[head as usize].dead && !self.items[head as usize].sealed {
            let idx = head as usize;
            match self.try_merge(bufs, offset, idx, i, pkt_len, &cand, &mut pkt_csum) {
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
        let p = &bufs[i].as_mut()[offset..offset + pkt_len];
        let (ip_id, cwr) = match cand.kind {
            Kind::Tcp4 => (
                u16::from_be_bytes([p[4], p[5]]),
                p[33] & tcp_flags::CWR != 0,
            ),
            Kind::Tcp6 => (0, p[53] & tcp_flags::CWR != 0),
            Kind::Udp4 => (u16::from_be_bytes([p[4], p[5]]), false),
            Kind::Udp6 => (0, false),
        };
        let pseudo = pseudo_header(p, &cand, 0);
        self.slots[slot] = self.items.len() as u32;
        self.role[i] = Role::Run;
        self.items.push(Item {
            key,
            cand,
            buf: i as u32,
            run: Run {
                seq: cand.seq,
                payload_len: cand.payload_len,
                gso_size: cand.payload_len,
                merged: 0,
                psh: cand.psh,
                closed: false,
            },
            csum_ok: pkt_csum,
            dead: false,
            sealed: false,
            ip_id,
            id_mode: IdMode::Open,
            cwr,
            pseudo,
        });
    }

    /// The slot of `key`'s flow: where its newest run is, or the empty slot
    /// where it will be.
    #[inline]
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

    #[allow(clippy::too_many_arguments)]
    fn try_merge<B: AsMut<[u8]>>(
        &mut self,
        bufs: &mut [B],
        offset: usize,
        idx: usize,
        i: usize,
        pkt_len: usize,
        cand: &Candidate,
        pkt_csum: &mut Option<bool>,
    ) -> Attempt {
        // Only the fields the checks need, not a copy of the whole record.
        let item = {
            let it = &self.items[idx];
            ItemView {
                buf: it.buf,
                run: it.run,
                csum_ok: it.csum_ok,
                pseudo: it.pseudo,
                hl: it.cand.header_len(),
                ip_id: it.ip_id,
                id_mode: it.id_mode,
                cwr: it.cwr,
            }
        };
        let ib = item.buf as usize;
        if item.hl != cand.header_len() {
            return Attempt::No;
        }
        let hl = cand.header_len();
        let ip_hl = cand.ip_header_len;
        let tcp = cand.kind.is_tcp();
        // Borrow the item's and the packet's buffers at once (ib < i).
        let (left, right) = bufs.split_at_mut(i);
        let item_buf = left[ib].as_mut();
        let pkt = &right[0].as_mut()[offset..offset + pkt_len];
        let item_len = hl + item.run.payload_len;
        {
            let item_pkt = &item_buf[offset..offset + item_len];
            if !ip_headers_match(item_pkt, pkt, cand.kind.is_v6()) {
                return Attempt::No;
            }
            // Same header length (checked above): acknowledgment, flag word
            // but CWR/FIN/PSH, urgent pointer and options must be equal.
            if tcp
                && (!tcp_fixed_fields_match(&item_pkt[ip_hl..], &pkt[ip_hl..], hl - ip_hl)
                    || pkt[ip_hl + 13] & tcp_flags::CWR != 0)
            {
                return Attempt::No;
            }
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
        let id_mode = if cand.kind.is_v6() {
            IdMode::Fixed
        } else {
            let new_id = u16::from_be_bytes([pkt[4], pkt[5]]);
            let df = pkt[6] & 0x40 != 0;
            match ipv4_id_merge(item.id_mode, item.ip_id, item.run.merged, new_id, df, how) {
                Some(m) => m,
                None => return Attempt::No,
            }
        };
        let new_len = item_len + cand.payload_len;
        if new_len > MAX_MERGED_LEN {
            self.stats.too_large += 1;
            return Attempt::No;
        }
        if offset + new_len > item_buf.len() {
            self.stats.no_room += 1;
            return Attempt::No;
        }
        // Verify both checksums, each at most once.
        if item.csum_ok.is_none() {
            // Same flow and header length: the run's first packet has the
            // candidate's shape.
            let ok = l4_checksum_ok(&item_buf[offset..offset + item_len], cand, item.pseudo);
            self.items[idx].csum_ok = Some(ok);
        }
        if self.items[idx].csum_ok == Some(false) {
            return Attempt::ItemBad;
        }
        let payload = &pkt[hl..];
        let data = &mut item_buf[offset..offset + new_len];
        match how {
            Merge::Append => {
                // Copy first and verify from the same pass: the bytes land
                // behind the run's end, which stays where it is if the
                // checksum turns out bad.
                let payload_sum = Checksum::copy_from(&mut data[item_len..], payload);
                let ok = match *pkt_csum {
                    Some(ok) => ok,
                    None => {
                        let mut sum = item.pseudo;
                        sum.add_u16((pkt.len() - ip_hl) as u16);
                        let ok = sum
                            .combine(Checksum::of(&pkt[ip_hl..hl]))
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
            }
            Merge::Prepend => {
                if !*pkt_csum.get_or_insert_with(|| l4_checksum_ok(pkt, cand, item.pseudo)) {
                    return Attempt::PacketBad;
                }
                data.copy_within(hl..item_len, hl + cand.payload_len);
                data[hl..hl + cand.payload_len].copy_from_slice(payload);
                let it = &mut self.items[idx];
                if it.run.merged == 0 && cand.payload_len > it.run.gso_size {
                    // The old first segment is now a shorter last one.
                    it.run.closed = true;
                }
                it.run.gso_size = it.run.gso_size.max(cand.payload_len);
                it.run.seq = cand.seq;
                if !cand.kind.is_v6() {
                    it.ip_id = u16::from_be_bytes([pkt[4], pkt[5]]);
                }
            }
        }
        let it = &mut self.items[idx];
        it.run.payload_len += cand.payload_len;
        it.run.merged += 1;
        it.id_mode = id_mode;
        Attempt::Merged
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
    ip_id: u16,
    id_mode: IdMode,
    cwr: bool,
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

/// Whether the transport checksum of a candidate verifies.
/// `pseudo` is the flow's pseudo-header sum without the length.
fn l4_checksum_ok(pkt: &[u8], c: &Candidate, mut pseudo: Checksum) -> bool {
    let l4 = &pkt[c.ip_header_len..];
    pseudo.add_u16(l4.len() as u16);
    pseudo.combine(Checksum::of(l4)).fold() == 0xffff
}

fn pseudo_header(pkt: &[u8], c: &Candidate, l4_len: usize) -> Checksum {
    if c.kind.is_v6() {
        Ipv6Packet::new_unchecked(pkt).pseudo_header(c.kind.protocol(), l4_len as u32)
    } else {
        Ipv4Packet::new_unchecked(pkt).pseudo_header(l4_len as u16)
    }
}

/// Rewrite the headers of a merged run in `pkt` (exactly its bytes) and
/// return its virtio header.
fn finish_run(item: &Item, pkt: &mut [u8]) -> VirtioNetHdr {
    let c = &item.cand;
    let len = pkt.len();
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
    VirtioNetHdr::new(
        HdrFlags::NEEDS_CSUM,
        gso_type,
        c.header_len() as u16,
        item.run.gso_size as u16,
        ip_hl as u16,
        c.kind.csum_offset() as u16,
    )
}
