//! The merge rules, as functions of the packets and runs they decide on:
//! which packet may be coalesced at all ([`classify`]), which two headers
//! agree, and where a segment may join a run.

use crate::error::PacketError;
use crate::kind::Kind;
use crate::wire::{
    IPV4_MIN_HEADER_LEN, IpPacket, Ipv4Packet, TcpPacket, UDP_HEADER_LEN, UdpPacket, tcp_flags,
};

use super::Refusal;

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
}

/// Decide whether `packet` (a whole IP packet) can be coalesced at all.
///
/// A TCP segment with CWR is refused here ([`Refusal::TcpFlags`]): a
/// [`GroTable`](super::GroTable) told that TSO_ECN was negotiated ([`GroTable::set_tcp_ecn`](super::GroTable::set_tcp_ecn))
/// lets it start a run instead.
#[inline]
pub fn classify(packet: &[u8], udp_gro: bool) -> Result<Candidate, Refusal> {
    classify_with(packet, packet.len(), udp_gro, true, false)
}

/// TCP flags a candidate may carry besides ACK (CWR only with TSO_ECN).
const TCP_FLAGS_OK: u8 = tcp_flags::PSH | tcp_flags::ECE;

/// [`classify`] of a packet of `len` bytes whose first bytes are `head`
/// (all of it, or at least its IP and transport headers: a packet held in
/// two pieces, whose payload the rules never read). Always inlined: its
/// result read back from the stack after a call stalls on store forwarding
/// (measured in the plan of views).
#[inline(always)]
pub(super) fn classify_with(
    head: &[u8],
    len: usize,
    udp_gro: bool,
    tcp_gro: bool,
    tcp_ecn: bool,
) -> Result<Candidate, Refusal> {
    debug_assert!(head.len() <= len);
    if len == 0 {
        return Err(Refusal::TooShort);
    }
    if len > MAX_MERGED_LEN {
        return Err(Refusal::TooLong);
    }
    let ip = IpPacket::new_checked(head).map_err(|e| match e {
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
    if ip.claimed_len() != len {
        return Err(Refusal::LengthMismatch);
    }
    let Some(kind) = Kind::new(ip.version(), ip.protocol()) else {
        return Err(if ip.version() == 6 {
            Refusal::Ipv6ExtensionHeaders
        } else {
            Refusal::NotTcpOrUdp
        });
    };
    let cand = classify_l4(head, len, kind, ip.header_len(), udp_gro, tcp_gro, tcp_ecn)?;
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
    head: &[u8],
    len: usize,
    kind: Kind,
    ip_hl: usize,
    udp_gro: bool,
    tcp_gro: bool,
    tcp_ecn: bool,
) -> Result<Candidate, Refusal> {
    // The transport header is in `head`; its length is the packet's.
    let l4 = &head[ip_hl..];
    let l4_len = len - ip_hl;
    if kind.is_tcp() {
        if !tcp_gro {
            return Err(Refusal::TcpDisabled);
        }
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
        let payload_len = l4_len - tcp.header_len();
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
        if usize::from(udp.len()) != l4_len {
            return Err(Refusal::LengthMismatch);
        }
        if udp.checksum() == 0 {
            return Err(Refusal::UdpZeroChecksum);
        }
        let payload_len = l4_len - UDP_HEADER_LEN;
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
pub(super) fn tcp_fixed_fields_match(a: &[u8], b: &[u8], hl: usize) -> bool {
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

/// How the IPv4 IDs of a run go (include/net/gro.h, inet_gro_flush).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IdMode {
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
pub(super) fn ipv4_id_merge(
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
