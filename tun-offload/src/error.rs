//! The error shared by the packet views, the split and the checksum
//! helpers: [`PacketError`], with the [`Layer`] it is about.
//!
//! Where errors live: an error that one module's operations return is
//! defined in that module, next to them ([`crate::HeaderError`] in virtio.rs,
//! [`crate::SplitError`] in split.rs, [`crate::GroError`] and
//! [`crate::gro::Refusal`] in gro/); this file holds the one several modules
//! return. Each error says what was wrong and carries the lengths and values
//! involved.

use core::fmt;

use crate::virtio::GsoType;

/// The protocol layer an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The IPv4 header.
    Ipv4,
    /// The IPv6 header.
    Ipv6,
    /// The TCP header.
    Tcp,
    /// The UDP header.
    Udp,
    /// Whatever lies at `csum_start` (GSO_NONE packets of any protocol).
    L4,
    /// The Ethernet header of a TAP frame (with its 802.1Q tag, if any).
    Ethernet,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Ipv4 => "IPv4",
            Layer::Ipv6 => "IPv6",
            Layer::Tcp => "TCP",
            Layer::Udp => "UDP",
            Layer::L4 => "L4",
            Layer::Ethernet => "Ethernet",
        })
    }
}

/// A virtio-net header and packet that do not describe a valid packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PacketError {
    /// `gso_type` is not TCPV4, TCPV6 or UDP_L4 (the ECN bit is accepted with
    /// TCPV4 and TCPV6 only).
    UnsupportedGsoType {
        /// The header's `gso_type`.
        gso_type: GsoType,
    },
    /// The first nibble of the packet is neither 4 nor 6.
    UnknownIpVersion {
        /// The version nibble.
        version: u8,
    },
    /// The IP version does not fit the GSO type (IPv6 with TCPV4, IPv4 with TCPV6).
    IpVersionMismatch {
        /// The header's `gso_type`.
        gso_type: GsoType,
        /// The packet's IP version.
        version: u8,
    },
    /// `gso_size` is zero on a super-packet.
    ZeroGsoSize,
    /// The packet is shorter than a header it must contain.
    Truncated {
        /// Which header.
        layer: Layer,
        /// Bytes that header needs from the start of the packet.
        required: usize,
        /// Bytes the packet has.
        len: usize,
    },
    /// The IPv4 IHL field gives a header shorter than 20 bytes.
    BadIpv4HeaderLen {
        /// IHL * 4.
        header_len: usize,
    },
    /// A length field of the IP header disagrees with the buffer.
    IpLengthMismatch {
        /// Which header.
        layer: Layer,
        /// Total packet length the header claims.
        claimed: usize,
        /// Bytes the buffer has.
        len: usize,
    },
    /// The IP header's protocol is not the one the GSO type needs.
    ProtocolMismatch {
        /// The header's `gso_type`.
        gso_type: GsoType,
        /// The IPv4 protocol or IPv6 next header.
        protocol: u8,
    },
    /// `csum_start` is not where the transport header starts.
    CsumStartMismatch {
        /// The header's `csum_start`.
        csum_start: u16,
        /// Length of the IP header (with any IPv6 extension headers up to `csum_start`).
        ip_header_len: usize,
    },
    /// `csum_start + csum_offset + 2` lies beyond the packet.
    CsumOutOfRange {
        /// The header's `csum_start`.
        csum_start: u16,
        /// The header's `csum_offset`.
        csum_offset: u16,
        /// Bytes the packet has.
        len: usize,
    },
    /// The checksum field is not inside the transport header.
    CsumOffsetOutsideHeader {
        /// The header's `csum_offset`.
        csum_offset: u16,
        /// Length of the transport header.
        l4_header_len: usize,
    },
    /// The TCP data offset gives a header outside 20..=60 bytes.
    BadTcpDataOffset {
        /// Data offset * 4.
        header_len: usize,
    },
    /// A segment (headers + `gso_size`) would not fit an IP length field.
    SegmentTooLong {
        /// Headers plus `gso_size`.
        len: usize,
    },
    /// An IPv4 option overruns the header or has an impossible length (only
    /// looked at when the final destination must be found).
    MalformedIpv4Option {
        /// Offset of the option in the IPv4 header.
        at: usize,
    },
    /// An IPv6 Routing header with segments left whose type does not say
    /// where its final destination is in a form this crate reads (RPL, type
    /// 3, compresses its addresses), so no pseudo header can be built.
    UnsupportedRoutingHeader {
        /// The routing type.
        routing_type: u8,
    },
    /// A GSO header on an Ethernet frame that carries neither IPv4 nor
    /// IPv6 (directly or behind one 802.1Q tag): there is nothing to split.
    NotIpFrame {
        /// The frame's EtherType (behind the tag, if tagged).
        ether_type: u16,
    },
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PacketError::UnsupportedGsoType { gso_type } => {
                write!(f, "unsupported GSO type {gso_type}")
            }
            PacketError::UnknownIpVersion { version } => write!(f, "unknown IP version {version}"),
            PacketError::IpVersionMismatch { gso_type, version } => {
                write!(f, "GSO type {gso_type} does not fit an IPv{version} packet")
            }
            PacketError::ZeroGsoSize => f.write_str("gso_size is zero on a GSO packet"),
            PacketError::Truncated {
                layer,
                required,
                len,
            } => {
                write!(
                    f,
                    "packet of {len} bytes is too short for its {layer} header (needs {required})"
                )
            }
            PacketError::BadIpv4HeaderLen { header_len } => {
                write!(
                    f,
                    "IPv4 header length {header_len} is below the minimum of 20"
                )
            }
            PacketError::IpLengthMismatch {
                layer,
                claimed,
                len,
            } => {
                write!(
                    f,
                    "{layer} length field claims {claimed} bytes, buffer has {len}"
                )
            }
            PacketError::ProtocolMismatch { gso_type, protocol } => {
                write!(f, "GSO type {gso_type} does not fit IP protocol {protocol}")
            }
            PacketError::CsumStartMismatch {
                csum_start,
                ip_header_len,
            } => {
                write!(
                    f,
                    "csum_start {csum_start} is not the end of the {ip_header_len}-byte IP header"
                )
            }
            PacketError::CsumOutOfRange {
                csum_start,
                csum_offset,
                len,
            } => write!(
                f,
                "checksum field at csum_start {csum_start} + csum_offset {csum_offset} lies outside the {len}-byte packet"
            ),
            PacketError::CsumOffsetOutsideHeader {
                csum_offset,
                l4_header_len,
            } => write!(
                f,
                "csum_offset {csum_offset} is outside the {l4_header_len}-byte transport header"
            ),
            PacketError::BadTcpDataOffset { header_len } => {
                write!(f, "TCP header length {header_len} is outside 20..=60")
            }
            PacketError::SegmentTooLong { len } => {
                write!(f, "segment of {len} bytes exceeds the 65535-byte IP limit")
            }
            PacketError::MalformedIpv4Option { at } => {
                write!(f, "IPv4 option at header byte {at} is malformed")
            }
            PacketError::UnsupportedRoutingHeader { routing_type } => {
                write!(
                    f,
                    "IPv6 routing header of type {routing_type} with segments left: final destination unknown"
                )
            }
            PacketError::NotIpFrame { ether_type } => {
                write!(
                    f,
                    "GSO header on a frame of EtherType {ether_type:#06x}, which is not IPv4 or IPv6"
                )
            }
        }
    }
}

impl core::error::Error for PacketError {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn display_of_every_error() {
        let cases: [(PacketError, &str); 16] = [
            (
                PacketError::MalformedIpv4Option { at: 21 },
                "IPv4 option at header byte 21 is malformed",
            ),
            (
                PacketError::UnsupportedRoutingHeader { routing_type: 3 },
                "IPv6 routing header of type 3 with segments left: final destination unknown",
            ),
            (
                PacketError::UnsupportedGsoType {
                    gso_type: GsoType(0x81),
                },
                "unsupported GSO type 0x81",
            ),
            (
                PacketError::UnknownIpVersion { version: 5 },
                "unknown IP version 5",
            ),
            (
                PacketError::IpVersionMismatch {
                    gso_type: GsoType::TCPV6,
                    version: 4,
                },
                "GSO type TCPV6 does not fit an IPv4 packet",
            ),
            (PacketError::ZeroGsoSize, "gso_size is zero on a GSO packet"),
            (
                PacketError::Truncated {
                    layer: Layer::Tcp,
                    required: 40,
                    len: 30,
                },
                "packet of 30 bytes is too short for its TCP header (needs 40)",
            ),
            (
                PacketError::BadIpv4HeaderLen { header_len: 16 },
                "IPv4 header length 16 is below the minimum of 20",
            ),
            (
                PacketError::IpLengthMismatch {
                    layer: Layer::Ipv6,
                    claimed: 100,
                    len: 90,
                },
                "IPv6 length field claims 100 bytes, buffer has 90",
            ),
            (
                PacketError::ProtocolMismatch {
                    gso_type: GsoType::UDP_L4,
                    protocol: 6,
                },
                "GSO type UDP_L4 does not fit IP protocol 6",
            ),
            (
                PacketError::CsumStartMismatch {
                    csum_start: 24,
                    ip_header_len: 20,
                },
                "csum_start 24 is not the end of the 20-byte IP header",
            ),
            (
                PacketError::CsumOutOfRange {
                    csum_start: 40,
                    csum_offset: 16,
                    len: 50,
                },
                "checksum field at csum_start 40 + csum_offset 16 lies outside the 50-byte packet",
            ),
            (
                PacketError::CsumOffsetOutsideHeader {
                    csum_offset: 19,
                    l4_header_len: 20,
                },
                "csum_offset 19 is outside the 20-byte transport header",
            ),
            (
                PacketError::BadTcpDataOffset { header_len: 16 },
                "TCP header length 16 is outside 20..=60",
            ),
            (
                PacketError::SegmentTooLong { len: 65540 },
                "segment of 65540 bytes exceeds the 65535-byte IP limit",
            ),
            (
                PacketError::Truncated {
                    layer: Layer::L4,
                    required: 8,
                    len: 2,
                },
                "packet of 2 bytes is too short for its L4 header (needs 8)",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
        }
        for (l, t) in [
            (Layer::Ipv4, "IPv4"),
            (Layer::Ipv6, "IPv6"),
            (Layer::Udp, "UDP"),
        ] {
            assert_eq!(l.to_string(), t);
        }
    }
}
