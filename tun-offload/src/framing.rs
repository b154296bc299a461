//! What a TUN/TAP fd puts in front of a packet besides the packet, read and
//! written as bytes: the 4-byte packet-information header (`struct tun_pi`,
//! without `IFF_NO_PI`), the plain virtio header of a complete packet, and
//! whether a virtio header asks the kernel to segment.
//!
//! `struct tun_pi` (include/uapi/linux/if_tun.h) is `__u16 flags` in host
//! order, then `__be16 proto`, the EtherType of the packet; its one flag is
//! `TUN_PKT_STRIP` (0x0001), which the kernel sets on a read whose buffer
//! was too small for the packet (drivers/net/tun.c, tun_put_user), the rest
//! of the packet lost.

use core::fmt;

use crate::frame::{ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::virtio::{GsoType, VirtioNetHdr};

/// The virtio header of a packet whose checksums are complete: all zero
/// (no flag, `GSO_NONE`), what a packet written as it is goes with.
pub const PLAIN_HDR: [u8; VirtioNetHdr::LEN] = [0; VirtioNetHdr::LEN];

/// Whether the virtio header at the start of `hdr` asks the kernel to
/// segment: a `gso_type` other than `GSO_NONE`, the ECN bit aside. `false`
/// for fewer than two bytes.
#[inline]
pub fn is_gso_header(hdr: &[u8]) -> bool {
    hdr.get(1).is_some_and(|&t| GsoType(t).is_gso())
}

/// A buffer too short for a packet-information header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInfoError {
    /// Bytes available.
    pub len: usize,
}

impl fmt::Display for PacketInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "packet information header needs {} bytes, buffer has {}",
            PacketInfo::LEN,
            self.len
        )
    }
}

impl core::error::Error for PacketInfoError {}

/// `struct tun_pi`: the 4-byte packet-information header in front of every
/// packet on a TUN/TAP fd opened without `IFF_NO_PI`.
///
/// ```
/// use tun_offload::framing::PacketInfo;
/// let pi = PacketInfo::for_packet(&[0x60, 0, 0, 0]); // an IPv6 packet
/// assert_eq!(pi.proto(), 0x86dd);
/// assert_eq!(PacketInfo::decode(&pi.to_bytes()), Ok(pi));
/// assert!(!pi.is_stripped());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PacketInfo {
    flags: u16,
    proto: u16,
}

impl PacketInfo {
    /// Size of the header on the wire: 4 bytes.
    pub const LEN: usize = 4;

    /// `TUN_PKT_STRIP`: the packet was longer than the reader's buffer and
    /// was cut.
    pub const STRIP: u16 = 0x0001;

    /// A header from its fields (`proto` an EtherType).
    pub const fn new(flags: u16, proto: u16) -> Self {
        Self { flags, proto }
    }

    /// The header to write in front of `packet` on a TUN: the EtherType of
    /// its IP version (IPv4 0x0800, IPv6 0x86DD, from the first byte's high
    /// nibble), 0 for an empty packet or another version.
    pub fn for_packet(packet: &[u8]) -> Self {
        let proto = match packet.first().map(|b| b >> 4) {
            Some(4) => ETHERTYPE_IPV4,
            Some(6) => ETHERTYPE_IPV6,
            _ => 0,
        };
        Self::new(0, proto)
    }

    /// The header to write in front of a frame on a TAP: `proto` 0, since
    /// the kernel reads the EtherType from the frame itself
    /// (`eth_type_trans` in tun_get_user) and ignores this one.
    pub const fn for_frame() -> Self {
        Self::new(0, 0)
    }

    /// Decode the header from the first [`Self::LEN`] bytes of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, PacketInfoError> {
        match bytes.get(..Self::LEN) {
            Some(b) => Ok(Self::new(
                u16::from_ne_bytes([b[0], b[1]]),
                u16::from_be_bytes([b[2], b[3]]),
            )),
            None => Err(PacketInfoError { len: bytes.len() }),
        }
    }

    /// The header's bytes: `flags` in host order, `proto` big-endian.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let f = self.flags.to_ne_bytes();
        let p = self.proto.to_be_bytes();
        [f[0], f[1], p[0], p[1]]
    }

    /// Encode the header into the first [`Self::LEN`] bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<(), PacketInfoError> {
        let len = out.len();
        match out.get_mut(..Self::LEN) {
            Some(dst) => {
                dst.copy_from_slice(&self.to_bytes());
                Ok(())
            }
            None => Err(PacketInfoError { len }),
        }
    }

    /// `flags`.
    pub const fn flags(&self) -> u16 {
        self.flags
    }

    /// `proto`: the EtherType (on a TAP's reads, the frame's).
    pub const fn proto(&self) -> u16 {
        self.proto
    }

    /// Whether `TUN_PKT_STRIP` is set: the packet behind was cut to the
    /// reader's buffer.
    pub const fn is_stripped(&self) -> bool {
        self.flags & Self::STRIP != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn proto_follows_the_ip_version() {
        assert_eq!(PacketInfo::for_packet(&[0x45, 0]).proto(), 0x0800);
        assert_eq!(PacketInfo::for_packet(&[0x60]).proto(), 0x86dd);
        assert_eq!(PacketInfo::for_packet(&[0x20]).proto(), 0);
        assert_eq!(PacketInfo::for_packet(&[]).proto(), 0);
        assert_eq!(PacketInfo::for_packet(&[0x45]).flags(), 0);
        assert_eq!(PacketInfo::for_frame(), PacketInfo::new(0, 0));
        assert_eq!(PacketInfo::for_packet(&[0x45]).to_bytes(), [0, 0, 8, 0]);
        assert_eq!(
            PacketInfo::for_packet(&[0x6f]).to_bytes(),
            [0, 0, 0x86, 0xdd]
        );
    }

    #[test]
    fn flags_are_host_order_and_strip_is_bit_zero() {
        let raw = {
            let f = 1u16.to_ne_bytes();
            [f[0], f[1], 0x08, 0x00]
        };
        let pi = PacketInfo::decode(&raw).unwrap();
        assert!(pi.is_stripped());
        assert_eq!((pi.flags(), pi.proto()), (PacketInfo::STRIP, 0x0800));
        let other = {
            let f = 0x0100u16.to_ne_bytes();
            [f[0], f[1], 0, 0]
        };
        assert!(!PacketInfo::decode(&other).unwrap().is_stripped());
        // Round trip of every flag word.
        for flags in [0u16, 1, 2, 0x8001, u16::MAX] {
            let pi = PacketInfo::new(flags, 0x86dd);
            let mut buf = [0u8; 6];
            pi.encode(&mut buf).unwrap();
            assert_eq!(PacketInfo::decode(&buf), Ok(pi));
            assert_eq!(pi.is_stripped(), flags & 1 == 1);
        }
    }

    #[test]
    fn short_buffers_are_errors_with_lengths() {
        assert_eq!(PacketInfo::decode(&[0; 3]), Err(PacketInfoError { len: 3 }));
        assert_eq!(
            PacketInfo::for_frame().encode(&mut [0; 2]),
            Err(PacketInfoError { len: 2 })
        );
        assert_eq!(
            PacketInfoError { len: 3 }.to_string(),
            "packet information header needs 4 bytes, buffer has 3"
        );
    }

    #[test]
    fn gso_is_any_type_but_none_with_or_without_ecn() {
        assert!(!is_gso_header(&PLAIN_HDR));
        assert_eq!(PLAIN_HDR, VirtioNetHdr::ZERO.to_bytes());
        // GSO_NONE with the ECN bit alone asks for nothing.
        assert!(!is_gso_header(&[1, GsoType::ECN]));
        for t in [
            GsoType::TCPV4,
            GsoType::TCPV6,
            GsoType::UDP_L4,
            GsoType::UDP,
        ] {
            assert!(is_gso_header(&[0, t.0]));
            assert!(is_gso_header(&[0, t.0 | GsoType::ECN]));
            let h = VirtioNetHdr::new(crate::HdrFlags::NONE, t, 0, 0, 0, 0);
            assert!(h.is_gso());
            assert!(is_gso_header(&h.to_bytes()));
        }
        // An unknown type still asks for segmentation (the kernel refuses it).
        assert!(is_gso_header(&[0, 0x07]));
        assert!(!is_gso_header(&[0]));
        assert!(!is_gso_header(&[]));
        assert!(!VirtioNetHdr::ZERO.is_gso());
    }
}
