//! Partial checksums (`NEEDS_CSUM`), both ways: a receiver completes the
//! transport checksum of a packet the kernel left partial
//! ([`complete_checksum`]); a sender leaves it partial for the kernel to
//! complete ([`prepare_partial_checksum`]).

use crate::checksum::{self, Checksum};
use crate::error::PacketError;
use crate::kind::Kind;
use crate::route;
use crate::virtio::{GsoType, HdrFlags, VirtioNetHdr};
use crate::wire::{IpPacket, TcpPacket, UDP_HEADER_LEN, UdpPacket};

/// Complete a partial checksum in place (GSO_NONE with NEEDS_CSUM) as the
/// kernel does: the 16 bits at `csum_start + csum_offset` hold the
/// pseudo-header sum; sum from `csum_start` to the end, fold, and store the
/// complement, a zero result as `0xffff` (`csum_fold(csum) ?:
/// CSUM_MANGLED_0` in skb_checksum_help, net/core/dev.c). A header without
/// NEEDS_CSUM leaves the packet as it is.
///
/// Any `csum_offset` with `csum_start + csum_offset + 2` within the packet
/// is completed, as the kernel accepts it (skb_partial_csum_set,
/// net/core/skbuff.c, asks nothing else of it): an even offset, as TCP's
/// (16), UDP's (6) and ICMPv6's (2) are, makes the covered bytes sum to
/// zero; an odd one straddles two 16-bit words of the sum, so the field
/// gets the value the kernel would store there, which does not make them.
/// A zero result is stored as `0xffff` whatever the protocol: both verify
/// for TCP and ICMPv6, and for UDP zero would mean "no checksum".
pub fn complete_checksum(hdr: &VirtioNetHdr, packet: &mut [u8]) -> Result<(), PacketError> {
    if !hdr.flags().contains(HdrFlags::NEEDS_CSUM) {
        return Ok(());
    }
    check_partial(hdr, packet)?;
    let start = usize::from(hdr.csum_start());
    let field = start + usize::from(hdr.csum_offset());
    // CSUM_MANGLED_0 is the UDP rule for a zero result, applied to all.
    let c = Checksum::of(&packet[start..]).finish_udp();
    packet[field..field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Check, without completing it, that a partial checksum can be completed:
/// with NEEDS_CSUM in `hdr`, the 16-bit field at `csum_start + csum_offset`
/// must lie within `packet`, as [`complete_checksum`] and the kernel
/// (skb_partial_csum_set, net/core/skbuff.c) require; a header without it
/// passes. For a receiver that hands the packet on partial.
pub fn check_partial(hdr: &VirtioNetHdr, packet: &[u8]) -> Result<(), PacketError> {
    if !hdr.flags().contains(HdrFlags::NEEDS_CSUM) {
        return Ok(());
    }
    let field = usize::from(hdr.csum_start()) + usize::from(hdr.csum_offset());
    if field + 2 > packet.len() {
        return Err(PacketError::CsumOutOfRange {
            csum_start: hdr.csum_start(),
            csum_offset: hdr.csum_offset(),
            len: packet.len(),
        });
    }
    Ok(())
}

/// The virtio header a packet carries in front of it with partial
/// checksums, from its 10 `bytes`: their checksum part
/// ([`VirtioNetHdr::checksum_part`]), or the all-zero header when they do
/// not decode or ask for segmentation (a GSO header in front of one packet
/// is not what a receiver that left checksums partial writes, so it
/// vouches for nothing).
pub fn packet_hdr(bytes: &[u8]) -> VirtioNetHdr {
    VirtioNetHdr::decode(bytes).map_or(VirtioNetHdr::ZERO, |h| h.packet_part())
}

/// Whether `hdr` leaves `packet`'s own transport checksum partial: NEEDS_CSUM
/// with `csum_start` at the TCP or UDP header right behind the IP header
/// (IPv4 with or without options, IPv6 without extension headers; behind
/// the L2 header of a frame with `frame`, counted from the frame start)
/// and `csum_offset` that protocol's. False for a partial sum elsewhere,
/// such as the inner checksum of a VXLAN or Geneve datagram sent with
/// local checksum offload, which a coalescer of the outer packets would
/// lose ([`Refusal::PartialChecksumElsewhere`](crate::gro::Refusal::PartialChecksumElsewhere)).
pub fn is_transport_partial(hdr: &VirtioNetHdr, packet: &[u8], frame: bool) -> bool {
    if !hdr.flags().contains(HdrFlags::NEEDS_CSUM) {
        return false;
    }
    let l2 = if frame {
        match crate::frame::ip_offset(packet) {
            Some(l2) => l2,
            None => return false,
        }
    } else {
        0
    };
    let ip = &packet[l2..];
    let (ip_len, proto) = match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 => (usize::from(ip[0] & 15) * 4, ip[9]),
        Some(6) if ip.len() >= 40 => (40, ip[6]),
        _ => return false,
    };
    let field = match proto {
        6 => 16,
        17 => 6,
        _ => return false,
    };
    usize::from(hdr.csum_start()) == l2 + ip_len && usize::from(hdr.csum_offset()) == field
}

/// Prepare `packet` (one complete IPv4 or IPv6 packet) for a write with a
/// NEEDS_CSUM header, and return that header.
///
/// For TCP or UDP directly behind the IP header (IPv4 options are fine, and
/// with a loose or strict source route the pseudo header gets the route's
/// final destination, as the receiver will verify it; malformed options
/// leave the packet alone;
/// no IPv6 extension headers; not a fragment; IP length fields equal to
/// the buffer), the transport checksum field is
/// overwritten with the folded pseudo-header sum and the header says
/// `NEEDS_CSUM` with `csum_start` at the transport header and `csum_offset`
/// 16 (TCP) or 6 (UDP): the kernel completes the checksum, or hands the
/// packet up its stack as already verified. Anything else is left untouched
/// and gets [`VirtioNetHdr::ZERO`], so its own checksum must be complete.
///
/// ```
/// use tun_offload::{partial::prepare_partial_checksum, HdrFlags};
/// let mut pkt = [0u8; 28];
/// pkt[..12].copy_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
/// pkt[12..20].copy_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
/// pkt[24..26].copy_from_slice(&8u16.to_be_bytes()); // UDP length
/// let hdr = prepare_partial_checksum(&mut pkt);
/// assert_eq!(hdr.flags(), HdrFlags::NEEDS_CSUM);
/// assert_eq!((hdr.csum_start(), hdr.csum_offset()), (20, 6));
/// ```
pub fn prepare_partial_checksum(packet: &mut [u8]) -> VirtioNetHdr {
    let Some((ip_hl, kind, pseudo)) = locate(packet) else {
        return VirtioNetHdr::ZERO;
    };
    let l4 = &packet[ip_hl..];
    let l4_hl = if kind.is_tcp() {
        match TcpPacket::new_checked(l4) {
            Ok(t) => t.header_len(),
            Err(_) => return VirtioNetHdr::ZERO,
        }
    } else {
        match UdpPacket::new_checked(l4) {
            Ok(u) if usize::from(u.len()) == l4.len() => UDP_HEADER_LEN,
            _ => return VirtioNetHdr::ZERO,
        }
    };
    let field = kind.csum_offset();
    let at = ip_hl + field;
    packet[at..at + 2].copy_from_slice(&pseudo.to_be_bytes());
    VirtioNetHdr::new(
        HdrFlags::NEEDS_CSUM,
        GsoType::NONE,
        (ip_hl + l4_hl) as u16,
        0,
        ip_hl as u16,
        field as u16,
    )
}

/// IP header length, kind and folded pseudo-header sum of a TCP or UDP
/// packet whose IP layer allows checksum offload: length field equal to the
/// buffer, not an IPv4 fragment, no IPv6 extension headers.
fn locate(packet: &[u8]) -> Option<(usize, Kind, u16)> {
    let ip = IpPacket::new_checked(packet).ok()?;
    ip.check_claimed_len().ok()?;
    let kind = Kind::new(ip.version(), ip.protocol())?;
    let hl = ip.header_len();
    let pseudo = match ip {
        IpPacket::V4(ip) => {
            if ip.is_fragment() {
                return None;
            }
            let l4_len = u16::try_from(packet.len() - hl).ok()?;
            // A loose or strict source route: the pseudo header has the
            // route's last address, the final destination. Malformed
            // options: left alone.
            let dst = route::ipv4_final_destination(packet).ok()?;
            checksum::pseudo_header_v4(ip.src_addr(), dst.into(), kind.protocol().0, l4_len)
        }
        IpPacket::V6(ip) => ip.pseudo_header(kind.protocol(), (packet.len() - hl) as u32),
    };
    Some((hl, kind, pseudo.fold()))
}
