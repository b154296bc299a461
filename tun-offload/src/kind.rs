//! [`Kind`]: the transport and IP family of a packet the offloads act on,
//! with everything that follows from the pair (GSO type, protocol number,
//! checksum field), written once for the split, the
//! coalescing and the partial checksums.

use crate::error::{Layer, PacketError};
use crate::virtio::GsoType;
use crate::wire::{IpProtocol, TcpPacket, UdpPacket};

/// Transport and family of a TCP or UDP packet: what a GSO type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// TCP over IPv4.
    Tcp4,
    /// TCP over IPv6.
    Tcp6,
    /// UDP over IPv4.
    Udp4,
    /// UDP over IPv6.
    Udp6,
}

impl Kind {
    /// The kind of a packet of IP version `ip_version` (4 or 6) carrying
    /// `protocol`; `None` for anything but TCP or UDP over IPv4 or IPv6.
    #[inline]
    pub const fn new(ip_version: u8, protocol: IpProtocol) -> Option<Self> {
        Some(match (ip_version, protocol) {
            (4, IpProtocol::TCP) => Kind::Tcp4,
            (6, IpProtocol::TCP) => Kind::Tcp6,
            (4, IpProtocol::UDP) => Kind::Udp4,
            (6, IpProtocol::UDP) => Kind::Udp6,
            _ => return None,
        })
    }

    /// The kind of a super-packet whose virtio header says `gso_type` and
    /// whose IP version is `ip_version`: TCPV4 needs IPv4, TCPV6 IPv6 (both
    /// also with the ECN bit, which virtio_net_hdr_to_skb maps to
    /// SKB_GSO_TCP_ECN), UDP_L4 takes either. The inverse of
    /// [`Self::gso_type`].
    ///
    /// Errors, in this order: [`PacketError::UnsupportedGsoType`] for any
    /// other type, [`PacketError::UnknownIpVersion`],
    /// [`PacketError::IpVersionMismatch`].
    pub fn from_gso_type(gso_type: GsoType, ip_version: u8) -> Result<Self, PacketError> {
        let ecn = gso_type.0 & GsoType::ECN != 0;
        let fixed = match GsoType(gso_type.0 & !GsoType::ECN) {
            GsoType::TCPV4 => Some(Kind::Tcp4),
            GsoType::TCPV6 => Some(Kind::Tcp6),
            GsoType::UDP_L4 if !ecn => None,
            _ => return Err(PacketError::UnsupportedGsoType { gso_type }),
        };
        if ip_version != 4 && ip_version != 6 {
            return Err(PacketError::UnknownIpVersion {
                version: ip_version,
            });
        }
        match fixed {
            Some(k) if k.ip_version() != ip_version => Err(PacketError::IpVersionMismatch {
                gso_type,
                version: ip_version,
            }),
            Some(k) => Ok(k),
            None if ip_version == 4 => Ok(Kind::Udp4),
            None => Ok(Kind::Udp6),
        }
    }

    /// The GSO type of a super-packet of this kind (without the ECN bit).
    #[inline]
    pub const fn gso_type(self) -> GsoType {
        match self {
            Kind::Tcp4 => GsoType::TCPV4,
            Kind::Tcp6 => GsoType::TCPV6,
            Kind::Udp4 | Kind::Udp6 => GsoType::UDP_L4,
        }
    }

    /// TCP of either family.
    #[inline]
    pub const fn is_tcp(self) -> bool {
        matches!(self, Kind::Tcp4 | Kind::Tcp6)
    }

    /// IPv6 of either transport.
    #[inline]
    pub const fn is_v6(self) -> bool {
        matches!(self, Kind::Tcp6 | Kind::Udp6)
    }

    /// 4 or 6.
    #[inline]
    pub const fn ip_version(self) -> u8 {
        if self.is_v6() { 6 } else { 4 }
    }

    /// The transport's IP protocol number.
    #[inline]
    pub const fn protocol(self) -> IpProtocol {
        if self.is_tcp() {
            IpProtocol::TCP
        } else {
            IpProtocol::UDP
        }
    }

    /// Offset of the checksum field in the transport header (`csum_offset`):
    /// 16 for TCP, 6 for UDP.
    #[inline]
    pub const fn csum_offset(self) -> usize {
        if self.is_tcp() {
            TcpPacket::<&[u8]>::CHECKSUM_OFFSET
        } else {
            UdpPacket::<&[u8]>::CHECKSUM_OFFSET
        }
    }

    /// The layer errors about the IP header name.
    #[inline]
    pub const fn ip_layer(self) -> Layer {
        if self.is_v6() {
            Layer::Ipv6
        } else {
            Layer::Ipv4
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Kind; 4] = [Kind::Tcp4, Kind::Tcp6, Kind::Udp4, Kind::Udp6];

    #[test]
    fn gso_type_mappings_are_inverse() {
        for k in ALL {
            assert_eq!(Kind::from_gso_type(k.gso_type(), k.ip_version()), Ok(k));
            assert_eq!(Kind::new(k.ip_version(), k.protocol()), Some(k));
        }
        let ecn = |t: GsoType| GsoType(t.0 | GsoType::ECN);
        assert_eq!(Kind::from_gso_type(ecn(GsoType::TCPV6), 6), Ok(Kind::Tcp6));
        assert_eq!(
            Kind::from_gso_type(ecn(GsoType::UDP_L4), 4),
            Err(PacketError::UnsupportedGsoType {
                gso_type: ecn(GsoType::UDP_L4)
            })
        );
        assert_eq!(
            Kind::from_gso_type(GsoType::TCPV4, 6),
            Err(PacketError::IpVersionMismatch {
                gso_type: GsoType::TCPV4,
                version: 6
            })
        );
        assert_eq!(
            Kind::from_gso_type(GsoType::UDP_L4, 5),
            Err(PacketError::UnknownIpVersion { version: 5 })
        );
        assert_eq!(Kind::new(4, IpProtocol::ICMPV6), None);
    }
}
