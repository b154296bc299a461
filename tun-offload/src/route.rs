//! The final destination of a source-routed packet: the address the
//! transport checksum's pseudo header uses (RFC 8200 section 8.1 for an IPv6
//! Routing header; for an IPv4 loose or strict source route (RFC 791), the
//! last address of the route, which is what a sender such as Linux's TCP
//! puts in its pseudo header).

use crate::error::{Layer, PacketError};
use crate::wire::{IPV4_MIN_HEADER_LEN, IPV6_HEADER_LEN, IpProtocol};

/// IPv4 option kinds.
const IPOPT_END: u8 = 0;
const IPOPT_NOOP: u8 = 1;
const IPOPT_LSRR: u8 = 131;
const IPOPT_SSRR: u8 = 137;

/// The final destination of an IPv4 packet (`header`: the whole header,
/// options included): the last address of a loose or strict source route
/// that still has hops to go (pointer not past its end), else the
/// destination field.
pub(crate) fn ipv4_final_destination(header: &[u8]) -> Result<[u8; 4], PacketError> {
    let hl = header
        .first()
        .map_or(0, |b| usize::from(b & 0x0f) * 4)
        .max(IPV4_MIN_HEADER_LEN);
    let Some(h) = header.get(..hl) else {
        return Err(PacketError::Truncated {
            layer: Layer::Ipv4,
            required: hl,
            len: header.len(),
        });
    };
    let mut dst = [h[16], h[17], h[18], h[19]];
    let mut at = IPV4_MIN_HEADER_LEN;
    while at < hl {
        match h[at] {
            IPOPT_END => break,
            IPOPT_NOOP => at += 1,
            kind => {
                let len = h.get(at + 1).map_or(0, |&l| usize::from(l));
                if len < 2 || at + len > hl {
                    return Err(PacketError::MalformedIpv4Option { at });
                }
                if kind == IPOPT_LSRR || kind == IPOPT_SSRR {
                    // type, length, pointer, then 4-byte addresses.
                    if len < 3 || (len - 3) % 4 != 0 {
                        return Err(PacketError::MalformedIpv4Option { at });
                    }
                    let pointer = usize::from(h[at + 2]);
                    if len >= 7 && pointer <= len {
                        let last = &h[at + len - 4..at + len];
                        dst = [last[0], last[1], last[2], last[3]];
                    }
                }
                at += len;
            }
        }
    }
    Ok(dst)
}

/// The final destination of an IPv6 packet whose extension headers end at
/// `l4_start`: the destination field, unless a Routing header with segments
/// left names the last hop (type 0: the last address; type 2: its one
/// address; type 4, the segment routing header: segment list entry 0).
/// Other routing types with segments left are refused.
pub(crate) fn ipv6_final_destination(
    packet: &[u8],
    l4_start: usize,
) -> Result<[u8; 16], PacketError> {
    let truncated = |required: usize| PacketError::Truncated {
        layer: Layer::Ipv6,
        required,
        len: packet.len(),
    };
    let addr = |at: usize| -> Result<[u8; 16], PacketError> {
        let mut a = [0u8; 16];
        a.copy_from_slice(packet.get(at..at + 16).ok_or(truncated(at + 16))?);
        Ok(a)
    };
    let mut dst = addr(24)?;
    let mut next = IpProtocol(*packet.get(6).ok_or(truncated(IPV6_HEADER_LEN))?);
    let mut at = IPV6_HEADER_LEN;
    while at < l4_start {
        let (nh, len8) = match (packet.get(at), packet.get(at + 1)) {
            (Some(&nh), Some(&len8)) => (nh, len8),
            _ => return Err(truncated(at + 2)),
        };
        let len = match next {
            IpProtocol::HOP_BY_HOP | IpProtocol::DEST_OPTS => (usize::from(len8) + 1) * 8,
            IpProtocol::FRAGMENT => 8,
            IpProtocol::ROUTING => {
                let len = (usize::from(len8) + 1) * 8;
                let h = packet.get(at..at + len).ok_or(truncated(at + len))?;
                let (routing_type, segments_left) = (h[2], h[3]);
                if segments_left != 0 {
                    dst = match routing_type {
                        // RFC 2460 type 0: addresses from offset 8, the last is final.
                        0 if len >= 24 => addr(at + len - 16)?,
                        // RFC 6275 type 2 (one address), RFC 8754 SRH: entry 0.
                        2 | 4 if len >= 24 => addr(at + 8)?,
                        _ => return Err(PacketError::UnsupportedRoutingHeader { routing_type }),
                    };
                }
                len
            }
            _ => break,
        };
        next = IpProtocol(nh);
        at += len;
    }
    Ok(dst)
}
