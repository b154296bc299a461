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
//! [`GroTable::plan`] finds the same runs by the same rules (the batch loop
//! is one, over where the merged bytes go) without writing a byte of the
//! batch: each run is a head the table holds (the virtio header and the
//! first packet's rewritten headers) and the [`Segment`]s of its packets'
//! payloads where they lie, for one gathered write ([`plan`] says how).
//! Written that way, a run is byte for byte what `coalesce` writes for it.
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
//!   only when the device negotiated USO ([`GroTable::set_udp_gro`]); TCP
//!   unless it was turned off ([`GroTable::set_tcp_gro`]), each on its own.
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
//!   A packet the caller vouches for ([`GroTable::set_checksums_verified`]),
//!   or whose own header says NEEDS_CSUM or DATA_VALID
//!   ([`GroTable::set_partial_checksums`]), is not verified, as the kernel
//!   takes a `CHECKSUM_UNNECESSARY` or `CHECKSUM_PARTIAL` skb
//!   (skb_csum_unnecessary); one partial at another place than its
//!   transport header never merges ([`Refusal::PartialChecksumElsewhere`]).
//! - **Output.** NEEDS_CSUM, TCPV4/TCPV6 (with ECN as above) or UDP_L4,
//!   `hdr_len`, `gso_size` of the first segment, `csum_start` at the transport
//!   header, `csum_offset` 16 or 6; IPv4 total length, first ID and header
//!   checksum rewritten, IPv6 payload length, UDP length; the transport
//!   checksum field holds the folded pseudo-header sum.
//!
//! # Frames (TAP)
//!
//! With [`GroTable::set_frames`] each buffer holds an Ethernet frame, as a
//! TAP with `IFF_VNET_HDR` takes them; `offset` and the header in front of
//! it stay where they are, `lens` are frame lengths.
//!
//! - The L2 header is found per frame ([`crate::frame::ip_offset`]):
//!   Ethernet II (14 bytes) or one 802.1Q tag (18 bytes) in front of IPv4
//!   or IPv6. Everything above applies to the IP packet behind it.
//! - Frames are one flow only if their L2 headers are byte-equal (same
//!   length, addresses, tag and EtherType): a frame with another Ethernet
//!   header never joins a run, and starts its own.
//! - A merged frame keeps its first frame's L2 header; its virtio header
//!   counts `csum_start` and `hdr_len` from the frame start.
//! - A frame that carries no IP packet (ARP, LLDP, anything not 0x0800 or
//!   0x86DD, also behind a tag) is written as it is
//!   ([`Refusal::NotIpFrame`]) and is a barrier for no flow.
//!
//! # Cost
//!
//! A table is reused across batches: its flow slots and run records grow to
//! the largest batch seen and are then only reset, so a steady stream of
//! batches allocates nothing. Each packet is classified once, hashed once
//! (a multiply-xor hash, not SipHash), checksummed once and its payload
//! copied at most once.

pub mod plan;
mod rules;
mod store;
mod table;

use core::fmt;

pub use plan::{GroPlan, PacketView, PlannedRun, Runs, Segment, Slices};
pub use rules::{
    Candidate, MAX_MERGED_LEN, Merge, Run, UDP_MAX_SEGMENTS, classify, ip_headers_match,
    tcp_headers_match, tcp_merge, udp_merge,
};
pub use store::{MAX_GATHERED_PACKETS, MAX_VIEW_PACKETS};
pub use table::GroTable;

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
    /// A frame (with [`GroTable::set_frames`]) that carries neither IPv4
    /// nor IPv6 behind an Ethernet II or 802.1Q header: ARP and the like.
    NotIpFrame,
    /// TCP, but TCP coalescing is off ([`GroTable::set_tcp_gro`]).
    TcpDisabled,
    /// UDP without a checksum (the field zero, "none" over IPv4): the
    /// kernel's `udp_gro_receive_segment` (net/ipv4/udp_offload.c) merges
    /// only datagrams with one, for symmetry with GSO, which would write
    /// checksums into every segment.
    UdpZeroChecksum,
    /// With [`GroTable::set_partial_checksums`], the packet's own header
    /// says NEEDS_CSUM for another checksum than its transport header's:
    /// the inner checksum of a VXLAN or Geneve datagram sent with local
    /// checksum offload (Documentation/networking/checksum-offloads.rst).
    /// A merge would lose where that sum is to be completed, so the packet
    /// is written as it is, behind its header.
    PartialChecksumElsewhere,
}

impl Refusal {
    /// Every reason, in declaration order: `ALL[r as usize] == r`.
    const ALL: &'static [Refusal] = &[
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
        Refusal::NotIpFrame,
        Refusal::TcpDisabled,
        Refusal::UdpZeroChecksum,
        Refusal::PartialChecksumElsewhere,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

// The counters are indexed by `Refusal as usize` and sized by ALL, which
// must list every reason once, in declaration order: checked here up to the
// last reason (a reason added after it must be added to ALL and here).
const _: () = {
    let mut i = 0;
    while i < Refusal::ALL.len() {
        assert!(Refusal::ALL[i] as usize == i);
        i += 1;
    }
    assert!(Refusal::PartialChecksumElsewhere as usize + 1 == Refusal::ALL.len());
};

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
            Refusal::NotIpFrame => "frame carries no IPv4 or IPv6 packet",
            Refusal::TcpDisabled => "TCP coalescing not enabled",
            Refusal::UdpZeroChecksum => "UDP without a checksum",
            Refusal::PartialChecksumElsewhere => {
                "partial checksum at another place than the transport header's"
            }
        })
    }
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
    /// Merges not done because the run already held the most packets it
    /// may: [`UDP_MAX_SEGMENTS`] datagrams for UDP, and for a plan
    /// [`MAX_GATHERED_PACKETS`] packets.
    pub segment_limit: usize,
    /// Packets that could not be coalesced and ended the run of their flow
    /// (a pure ACK, a fragment, a refused datagram, a bad checksum), so that
    /// nothing behind them overtakes them.
    pub flow_barriers: usize,
    refused: [usize; Refusal::ALL.len()],
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
    /// View `index` of [`GroTable::plan_views`] names a source that is
    /// not there.
    NoSuchSource {
        /// Index of the view in the batch.
        index: usize,
        /// The source it names.
        source: usize,
        /// Sources given.
        sources: usize,
    },
    /// A piece of view `index` is not a range of its source.
    ViewOutsideSource {
        /// Index of the view in the batch.
        index: usize,
        /// The piece's first byte.
        start: usize,
        /// One past its last byte.
        end: usize,
        /// The source's length.
        source_len: usize,
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
            GroError::NoSuchSource {
                index,
                source,
                sources,
            } => write!(f, "view {index} names source {source} of {sources}"),
            GroError::ViewOutsideSource {
                index,
                start,
                end,
                source_len,
            } => write!(
                f,
                "view {index} has bytes {start}..{end} of a {source_len}-byte source"
            ),
        }
    }
}

impl core::error::Error for GroError {}
