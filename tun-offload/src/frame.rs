//! Ethernet framing for a TAP device with `IFF_VNET_HDR`: where the IP
//! packet of a frame starts.
//!
//! A TAP hands over (and takes) Ethernet frames; the virtio header in front
//! of a frame counts `csum_start` and `hdr_len` from the start of the
//! frame, not of the IP packet. The split ([`crate::split_frame`],
//! [`crate::GsoPacket::parse_frame`]) and the coalescing
//! ([`crate::GroTable::set_frames`]) take the L2 header found here in front
//! of the IP packet:
//!
//! - Ethernet II with EtherType 0x0800 (IPv4) or 0x86DD (IPv6): 14 bytes;
//! - one 802.1Q tag (TPID 0x8100) in front of either: 18 bytes, detected
//!   per frame;
//! - anything else (ARP, LLDP, 802.1ad or stacked tags, an IP EtherType
//!   behind another TPID, a frame shorter than its L2 header) is not an IP
//!   frame: the split and the coalescing pass it through untouched.

/// Bytes of an Ethernet II header: destination, source, EtherType.
pub const ETHERNET_HEADER_LEN: usize = 14;
/// Bytes of an Ethernet header with one 802.1Q tag.
pub const VLAN_ETHERNET_HEADER_LEN: usize = 18;
/// The longest L2 header an IP frame may have here.
pub const MAX_L2_LEN: usize = VLAN_ETHERNET_HEADER_LEN;

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Tag protocol identifier of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;

/// The EtherType that says what the frame carries: behind one 802.1Q tag
/// if there is one. `None` for a frame too short to tell.
#[inline]
pub fn ether_type(frame: &[u8]) -> Option<u16> {
    let outer = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if outer == ETHERTYPE_VLAN {
        Some(u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]))
    } else {
        Some(outer)
    }
}

/// Where the IP packet of an Ethernet frame starts: 14 (Ethernet II) or 18
/// (one 802.1Q tag) when the frame carries IPv4 or IPv6 and is at least
/// that long; `None` for any other frame, which is passed through as it is.
///
/// ```
/// use tun_offload::frame::ip_offset;
/// let mut f = [0u8; 60];
/// f[12..14].copy_from_slice(&[0x08, 0x00]);
/// assert_eq!(ip_offset(&f), Some(14));
/// f[12..18].copy_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x86, 0xdd]);
/// assert_eq!(ip_offset(&f), Some(18));
/// f[16..18].copy_from_slice(&[0x08, 0x06]); // ARP behind a tag
/// assert_eq!(ip_offset(&f), None);
/// ```
#[inline]
pub fn ip_offset(frame: &[u8]) -> Option<usize> {
    let outer = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let (inner, l2) = if outer == ETHERTYPE_VLAN {
        (
            u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]),
            VLAN_ETHERNET_HEADER_LEN,
        )
    } else {
        (outer, ETHERNET_HEADER_LEN)
    };
    match inner {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 if frame.len() >= l2 => Some(l2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_lengths() {
        let mut f = [0u8; 18];
        assert_eq!(ip_offset(&f[..13]), None);
        assert_eq!(ether_type(&f[..13]), None);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        assert_eq!(ip_offset(&f[..14]), Some(14));
        f[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        assert_eq!(ip_offset(&f[..17]), None);
        f[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        assert_eq!(ip_offset(&f), Some(18));
        assert_eq!(ether_type(&f), Some(ETHERTYPE_IPV4));
        f[16..18].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        assert_eq!(ip_offset(&f), None, "stacked tags are not IP frames");
        f[12..14].copy_from_slice(&0x88a8u16.to_be_bytes());
        assert_eq!(ip_offset(&f), None, "802.1ad is not taken apart");
    }
}
