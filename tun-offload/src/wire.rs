//! Typed views of IPv4, IPv6, TCP and UDP headers over any byte buffer, in
//! the smoltcp style: `new_checked` validates the lengths once, after which
//! no accessor can panic. Getters need `T: AsRef<[u8]>`, setters
//! `T: AsMut<[u8]>`. Multi-byte fields are big-endian on the wire.
//!
//! The IP protocol numbers ([`IpProtocol`]) and the header lengths
//! ([`IPV4_MIN_HEADER_LEN`], [`IPV6_HEADER_LEN`], [`TCP_MIN_HEADER_LEN`],
//! [`UDP_HEADER_LEN`], ...) are here too, so that no other module spells
//! them as numbers.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::checksum::{self, Checksum};
use crate::error::{Layer, PacketError};

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Length of an IPv4 header without options (IHL 5).
pub const IPV4_MIN_HEADER_LEN: usize = 20;
/// Length of the longest IPv4 header (IHL 15).
pub const IPV4_MAX_HEADER_LEN: usize = 60;
/// Length of the IPv6 fixed header.
pub const IPV6_HEADER_LEN: usize = 40;
/// Length of a TCP header without options (data offset 5).
pub const TCP_MIN_HEADER_LEN: usize = 20;
/// Length of the longest TCP header (data offset 15).
pub const TCP_MAX_HEADER_LEN: usize = 60;
/// Length of the UDP header.
pub const UDP_HEADER_LEN: usize = 8;

/// An IP protocol number: the IPv4 protocol field, the IPv6 next header
/// (IANA "Assigned Internet Protocol Numbers"). Any byte is representable;
/// the constants are the ones this crate acts on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// IPv6 Hop-by-Hop Options header (RFC 8200).
    pub const HOP_BY_HOP: Self = Self(0);
    /// TCP.
    pub const TCP: Self = Self(6);
    /// UDP.
    pub const UDP: Self = Self(17);
    /// IPv6 Routing header (RFC 8200).
    pub const ROUTING: Self = Self(43);
    /// IPv6 Fragment header (RFC 8200).
    pub const FRAGMENT: Self = Self(44);
    /// ICMPv6.
    pub const ICMPV6: Self = Self(58);
    /// IPv6 Destination Options header (RFC 8200).
    pub const DEST_OPTS: Self = Self(60);

    /// The protocol's name, if it is one of the constants above.
    #[inline]
    pub const fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::HOP_BY_HOP => "HOP_BY_HOP",
            Self::TCP => "TCP",
            Self::UDP => "UDP",
            Self::ROUTING => "ROUTING",
            Self::FRAGMENT => "FRAGMENT",
            Self::ICMPV6 => "ICMPV6",
            Self::DEST_OPTS => "DEST_OPTS",
            _ => return None,
        })
    }
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        Self(v)
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> Self {
        p.0
    }
}

impl fmt::Debug for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "IpProtocol::{n}"),
            None => write!(f, "IpProtocol({})", self.0),
        }
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}", self.0),
        }
    }
}

mod ipv4_field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    pub const MIN_LEN: usize = super::IPV4_MIN_HEADER_LEN;
}

/// A view of an IPv4 header at the start of a buffer.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// IPv4 "don't fragment" flag bit of the flags/offset word.
    pub const DF: u16 = 0x4000;
    /// IPv4 "more fragments" flag bit of the flags/offset word.
    pub const MF: u16 = 0x2000;

    /// Wrap without checking; accessors may panic until [`Self::check_len`] passes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap and check: version 4, at least 20 bytes, IHL >= 5, the whole
    /// header (options included) present.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, PacketError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The checks of [`Self::new_checked`].
    #[inline]
    pub fn check_len(&self) -> Result<(), PacketError> {
        let b = self.buffer.as_ref();
        let len = b.len();
        if len < ipv4_field::MIN_LEN {
            return Err(PacketError::Truncated {
                layer: Layer::Ipv4,
                required: ipv4_field::MIN_LEN,
                len,
            });
        }
        if b[0] >> 4 != 4 {
            return Err(PacketError::UnknownIpVersion { version: b[0] >> 4 });
        }
        let hl = usize::from(b[0] & 0x0f) * 4;
        if hl < ipv4_field::MIN_LEN {
            return Err(PacketError::BadIpv4HeaderLen { header_len: hl });
        }
        if len < hl {
            return Err(PacketError::Truncated {
                layer: Layer::Ipv4,
                required: hl,
                len,
            });
        }
        Ok(())
    }

    /// The buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length in bytes (IHL * 4), 20..=60.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[ipv4_field::VER_IHL] & 0x0f) * 4
    }
    /// Type of service / DSCP + ECN byte.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[ipv4_field::TOS]
    }
    /// Total length field.
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), ipv4_field::LENGTH)
    }
    /// Identification field.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), ipv4_field::IDENT)
    }
    /// Flags and fragment offset word.
    #[inline]
    pub fn flags_frag(&self) -> u16 {
        be16(self.buffer.as_ref(), ipv4_field::FLG_OFF)
    }
    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_frag() & Self::DF != 0
    }
    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_frag() & Self::MF != 0
    }
    /// Part of a fragmented datagram: MF set or a fragment offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }
    /// Fragment offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        self.flags_frag() & 0x1fff
    }
    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[ipv4_field::TTL]
    }
    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[ipv4_field::PROTOCOL])
    }
    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), ipv4_field::CHECKSUM)
    }
    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be32(self.buffer.as_ref(), ipv4_field::SRC))
    }
    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be32(self.buffer.as_ref(), ipv4_field::DST))
    }
    /// Whether the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let header = &self.buffer.as_ref()[..self.header_len()];
        // The common header without options, once per packet on the GRO
        // path: five words summed inline, no loop.
        if let Ok(h) = <&[u8; IPV4_MIN_HEADER_LEN]>::try_from(header) {
            let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
            let sum = w(0) + w(4) + w(8) + w(12) + w(16);
            return checksum::fold_ne(sum) == 0xffff;
        }
        Checksum::of(header).fold() == 0xffff
    }
    /// The pseudo-header sum for an L4 segment of `l4_len` bytes.
    #[inline]
    pub fn pseudo_header(&self, l4_len: u16) -> Checksum {
        checksum::pseudo_header_v4(
            self.src_addr(),
            self.dst_addr(),
            self.protocol().into(),
            l4_len,
        )
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Set the total length field.
    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), ipv4_field::LENGTH, v);
    }
    /// Set the identification field.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), ipv4_field::IDENT, v);
    }
    /// Set the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), ipv4_field::CHECKSUM, v);
    }
    /// Recompute the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::ipv4_header(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }
}

mod ipv6_field {
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
    pub const LEN: usize = super::IPV6_HEADER_LEN;
}

/// A view of an IPv6 fixed header at the start of a buffer.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Length of the fixed header.
    pub const HEADER_LEN: usize = ipv6_field::LEN;

    /// Wrap without checking.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap and check: version 6 and the 40-byte fixed header present.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, PacketError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The checks of [`Self::new_checked`].
    #[inline]
    pub fn check_len(&self) -> Result<(), PacketError> {
        let b = self.buffer.as_ref();
        if b.len() < ipv6_field::LEN {
            return Err(PacketError::Truncated {
                layer: Layer::Ipv6,
                required: ipv6_field::LEN,
                len: b.len(),
            });
        }
        if b[0] >> 4 != 6 {
            return Err(PacketError::UnknownIpVersion { version: b[0] >> 4 });
        }
        Ok(())
    }

    /// The buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Traffic class.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }
    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), 0) & 0x000f_ffff
    }
    /// Payload length field.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), ipv6_field::PAYLOAD_LEN)
    }
    /// Next header.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[ipv6_field::NEXT_HEADER])
    }
    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[ipv6_field::HOP_LIMIT]
    }
    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[ipv6_field::SRC..ipv6_field::SRC + 16]);
        Ipv6Addr::from(a)
    }
    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[ipv6_field::DST..ipv6_field::DST + 16]);
        Ipv6Addr::from(a)
    }
    /// The pseudo-header sum for an upper-layer packet of `l4_len` bytes with `next_header`.
    #[inline]
    pub fn pseudo_header(&self, next_header: IpProtocol, l4_len: u32) -> Checksum {
        checksum::pseudo_header_v6(self.src_addr(), self.dst_addr(), next_header.0, l4_len)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Set the payload length field.
    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), ipv6_field::PAYLOAD_LEN, v);
    }
}

/// A view of the IP header at the start of a buffer: IPv4 or IPv6, as its
/// version nibble says. The one way into a packet's IP layer.
#[derive(Debug, Clone, Copy)]
pub enum IpPacket<T> {
    /// An IPv4 header.
    V4(Ipv4Packet<T>),
    /// An IPv6 fixed header.
    V6(Ipv6Packet<T>),
}

impl<T: AsRef<[u8]>> IpPacket<T> {
    /// Wrap and check: a version nibble of 4 or 6
    /// ([`PacketError::UnknownIpVersion`] otherwise), then the checks of
    /// [`Ipv4Packet::new_checked`] or [`Ipv6Packet::new_checked`]. An empty
    /// buffer is too short for an IPv4 header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, PacketError> {
        match buffer.as_ref().first().map(|b| b >> 4) {
            None => Err(PacketError::Truncated {
                layer: Layer::Ipv4,
                required: IPV4_MIN_HEADER_LEN,
                len: 0,
            }),
            Some(4) => Ipv4Packet::new_checked(buffer).map(Self::V4),
            Some(6) => Ipv6Packet::new_checked(buffer).map(Self::V6),
            Some(version) => Err(PacketError::UnknownIpVersion { version }),
        }
    }

    /// 4 or 6.
    #[inline]
    pub fn version(&self) -> u8 {
        match self {
            Self::V4(_) => 4,
            Self::V6(_) => 6,
        }
    }

    /// The layer errors about this header name.
    #[inline]
    pub fn layer(&self) -> Layer {
        match self {
            Self::V4(_) => Layer::Ipv4,
            Self::V6(_) => Layer::Ipv6,
        }
    }

    /// Header length: IHL * 4 for IPv4, the fixed header for IPv6 (its
    /// extension headers are payload as far as this view goes).
    #[inline]
    pub fn header_len(&self) -> usize {
        match self {
            Self::V4(ip) => ip.header_len(),
            Self::V6(_) => IPV6_HEADER_LEN,
        }
    }

    /// The IPv4 protocol or the IPv6 next header.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        match self {
            Self::V4(ip) => ip.protocol(),
            Self::V6(ip) => ip.next_header(),
        }
    }

    /// The packet length the header claims: IPv4 total length, or IPv6
    /// payload length plus the fixed header.
    #[inline]
    pub fn claimed_len(&self) -> usize {
        match self {
            Self::V4(ip) => usize::from(ip.total_len()),
            Self::V6(ip) => usize::from(ip.payload_len()) + IPV6_HEADER_LEN,
        }
    }

    /// Whether the header's length field is the buffer's length
    /// ([`PacketError::IpLengthMismatch`] otherwise).
    #[inline]
    pub fn check_claimed_len(&self) -> Result<(), PacketError> {
        let len = self.buffer_len();
        let claimed = self.claimed_len();
        if claimed == len {
            Ok(())
        } else {
            Err(PacketError::IpLengthMismatch {
                layer: self.layer(),
                claimed,
                len,
            })
        }
    }

    fn buffer_len(&self) -> usize {
        match self {
            Self::V4(ip) => ip.buffer.as_ref().len(),
            Self::V6(ip) => ip.buffer.as_ref().len(),
        }
    }
}

mod tcp_field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const MIN_LEN: usize = super::TCP_MIN_HEADER_LEN;
    pub const MAX_LEN: usize = super::TCP_MAX_HEADER_LEN;
}

/// A view of a TCP header at the start of a buffer.
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T> {
    buffer: T,
}

/// TCP flag bits (the byte at offset 13).
pub mod tcp_flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer significant.
    pub const URG: u8 = 0x20;
    /// ECN echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Offset of the checksum field in the header.
    pub const CHECKSUM_OFFSET: usize = tcp_field::CHECKSUM;

    /// Wrap without checking.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap and check: 20 bytes, a data offset of 20..=60 bytes, and the
    /// whole header present.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, PacketError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The checks of [`Self::new_checked`].
    #[inline]
    pub fn check_len(&self) -> Result<(), PacketError> {
        let b = self.buffer.as_ref();
        let len = b.len();
        if len < tcp_field::MIN_LEN {
            return Err(PacketError::Truncated {
                layer: Layer::Tcp,
                required: tcp_field::MIN_LEN,
                len,
            });
        }
        let hl = usize::from(b[tcp_field::DATA_OFF] >> 4) * 4;
        if !(tcp_field::MIN_LEN..=tcp_field::MAX_LEN).contains(&hl) {
            return Err(PacketError::BadTcpDataOffset { header_len: hl });
        }
        if len < hl {
            return Err(PacketError::Truncated {
                layer: Layer::Tcp,
                required: hl,
                len,
            });
        }
        Ok(())
    }

    /// The buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), tcp_field::SRC_PORT)
    }
    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), tcp_field::DST_PORT)
    }
    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), tcp_field::SEQ)
    }
    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), tcp_field::ACK)
    }
    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[tcp_field::DATA_OFF] >> 4) * 4
    }
    /// Flag byte (see [`tcp_flags`]).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[tcp_field::FLAGS]
    }
    /// Window size.
    #[inline]
    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), tcp_field::WINDOW)
    }
    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), tcp_field::CHECKSUM)
    }
    /// Urgent pointer.
    #[inline]
    pub fn urgent(&self) -> u16 {
        be16(self.buffer.as_ref(), tcp_field::URGENT)
    }
    /// Option bytes.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[tcp_field::MIN_LEN..self.header_len()]
    }
    /// Payload behind the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Set the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        put32(self.buffer.as_mut(), tcp_field::SEQ, v);
    }
    /// Set the flag byte.
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[tcp_field::FLAGS] = v;
    }
    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), tcp_field::CHECKSUM, v);
    }
}

mod udp_field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const LEN: usize = super::UDP_HEADER_LEN;
}

/// A view of a UDP header at the start of a buffer.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Length of the UDP header.
    pub const HEADER_LEN: usize = udp_field::LEN;
    /// Offset of the checksum field in the header.
    pub const CHECKSUM_OFFSET: usize = udp_field::CHECKSUM;

    /// Wrap without checking.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap and check that the 8-byte header is present.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, PacketError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The checks of [`Self::new_checked`].
    #[inline]
    pub fn check_len(&self) -> Result<(), PacketError> {
        let len = self.buffer.as_ref().len();
        if len < udp_field::LEN {
            return Err(PacketError::Truncated {
                layer: Layer::Udp,
                required: udp_field::LEN,
                len,
            });
        }
        Ok(())
    }

    /// The buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), udp_field::SRC_PORT)
    }
    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), udp_field::DST_PORT)
    }
    /// Length field (header + payload).
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), udp_field::LENGTH)
    }
    /// Whether the length field says there is no payload.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= udp_field::LEN
    }
    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), udp_field::CHECKSUM)
    }
    /// Payload behind the header (to the end of the buffer).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[udp_field::LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Set the length field.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), udp_field::LENGTH, v);
    }
    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), udp_field::CHECKSUM, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4_TCP: [u8; 40] = [
        0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 192, 0, 2, 1, 192,
        0, 2, 2, //
        0x00, 0x50, 0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x18, 0x0b, 0xb8, 0, 0, 0, 0,
    ];

    #[test]
    fn ipv4_header_checksum_verifies_with_and_without_options() {
        // Every single-bit corruption of a good header fails, with the
        // 20-byte fast path and with options (the general sum).
        for options in [0usize, 4, 40] {
            let hl = 20 + options;
            let mut h = alloc::vec![0u8; hl];
            h[..20].copy_from_slice(&V4_TCP[..20]);
            h[0] = 0x40 | (hl / 4) as u8;
            for (k, b) in h[20..].iter_mut().enumerate() {
                *b = (k * 37 + 1) as u8;
            }
            Ipv4Packet::new_checked(&mut h[..]).unwrap().fill_checksum();
            assert!(Ipv4Packet::new_checked(&h[..]).unwrap().verify_checksum());
            for bit in 0..hl * 8 {
                let mut bad = h.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                let Ok(ip) = Ipv4Packet::new_checked(&bad[..]) else {
                    continue; // the header length itself changed
                };
                if ip.header_len() == hl {
                    assert!(!ip.verify_checksum(), "options {options}, bit {bit}");
                }
            }
        }
    }

    #[test]
    fn ipv4_and_tcp_fields() {
        let mut buf = V4_TCP;
        let mut ip = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        assert_eq!(
            (
                ip.header_len(),
                ip.total_len(),
                ip.ident(),
                ip.ttl(),
                ip.protocol()
            ),
            (20, 40, 0x1234, 64, IpProtocol::TCP)
        );
        assert!(ip.dont_frag() && !ip.more_frags() && ip.frag_offset() == 0);
        assert_eq!(ip.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        ip.fill_checksum();
        assert!(ip.verify_checksum());
        let tcp = TcpPacket::new_checked(&buf[20..]).unwrap();
        assert_eq!(
            (
                tcp.src_port(),
                tcp.dst_port(),
                tcp.seq_number(),
                tcp.ack_number()
            ),
            (80, 8080, 1, 2)
        );
        assert_eq!(
            (tcp.header_len(), tcp.flags(), tcp.window()),
            (20, tcp_flags::ACK | tcp_flags::PSH, 3000)
        );
        assert!(tcp.options().is_empty() && tcp.payload().is_empty());
    }

    #[test]
    fn checked_constructors_reject_bad_lengths() {
        assert_eq!(
            Ipv4Packet::new_checked(&V4_TCP[..19]).unwrap_err(),
            PacketError::Truncated {
                layer: Layer::Ipv4,
                required: 20,
                len: 19
            }
        );
        let mut b = V4_TCP;
        b[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            PacketError::BadIpv4HeaderLen { header_len: 16 }
        );
        b[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            PacketError::Truncated {
                layer: Layer::Ipv4,
                required: 60,
                len: 40
            }
        );
        b[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            PacketError::UnknownIpVersion { version: 6 }
        );
        let mut t = [0u8; 24];
        t[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&t[..]).unwrap_err(),
            PacketError::BadTcpDataOffset { header_len: 16 }
        );
        t[12] = 0x60;
        assert_eq!(TcpPacket::new_checked(&t[..]).unwrap().header_len(), 24);
        t[12] = 0x70;
        assert_eq!(
            TcpPacket::new_checked(&t[..]).unwrap_err(),
            PacketError::Truncated {
                layer: Layer::Tcp,
                required: 28,
                len: 24
            }
        );
        assert_eq!(
            UdpPacket::new_checked(&t[..7]).unwrap_err(),
            PacketError::Truncated {
                layer: Layer::Udp,
                required: 8,
                len: 7
            }
        );
        assert_eq!(
            Ipv6Packet::new_checked(&[0x60; 39][..]).unwrap_err(),
            PacketError::Truncated {
                layer: Layer::Ipv6,
                required: 40,
                len: 39
            }
        );
    }

    #[test]
    fn ipv6_fields() {
        let mut b = [0u8; 40];
        b[0] = 0x6a;
        b[1] = 0xbc;
        b[2] = 0xde;
        b[3] = 0xf0;
        b[4..6].copy_from_slice(&100u16.to_be_bytes());
        b[6] = 17;
        b[7] = 64;
        b[8] = 0x20;
        b[9] = 0x01;
        let mut p = Ipv6Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(
            (p.traffic_class(), p.flow_label(), p.payload_len()),
            (0xab, 0xcdef0, 100)
        );
        assert_eq!((p.next_header(), p.hop_limit()), (IpProtocol::UDP, 64));
        assert_eq!(p.src_addr().segments()[0], 0x2001);
        p.set_payload_len(7);
        assert_eq!(p.payload_len(), 7);
    }
}
