//! `struct virtio_net_hdr`: the offload metadata in front of every packet on
//! a TUN/TAP fd opened with `IFF_VNET_HDR` (include/uapi/linux/virtio_net.h).
//!
//! The 16-bit fields are little-endian: the kernel uses host order unless
//! `TUNSETVNETLE`/`TUNSETVNETBE` says otherwise, and every machine this
//! targets is little-endian (a big-endian host sets `TUNSETVNETLE`).

use core::fmt;

use zerocopy::byteorder::little_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// A buffer too short for a virtio-net header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderError {
    /// Bytes available.
    pub len: usize,
    /// Bytes the header needs.
    pub required: usize,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "virtio-net header needs {} bytes, buffer has {}",
            self.required, self.len
        )
    }
}

impl core::error::Error for HeaderError {}

/// Flags of `virtio_net_hdr.flags`.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(transparent)]
pub struct HdrFlags(pub u8);

impl HdrFlags {
    /// No flags.
    pub const NONE: Self = Self(0);
    /// The L4 checksum is partial: complete it over `csum_start..` into
    /// `csum_start + csum_offset` (`VIRTIO_NET_HDR_F_NEEDS_CSUM`).
    pub const NEEDS_CSUM: Self = Self(1);
    /// The checksum was already validated (`VIRTIO_NET_HDR_F_DATA_VALID`).
    pub const DATA_VALID: Self = Self(2);
    /// `csum_start`/`csum_offset` carry coalescing info (`VIRTIO_NET_HDR_F_RSC_INFO`).
    pub const RSC_INFO: Self = Self(4);
    /// The outer UDP checksum of a UDP-tunnel super-packet is to be
    /// computed too (`VIRTIO_NET_HDR_F_UDP_TUNNEL_CSUM`, Linux 6.17+);
    /// without it the outer UDP checksum is zero.
    pub const UDP_TUNNEL_CSUM: Self = Self(8);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two flag sets.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl fmt::Debug for HdrFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        f.write_str("HdrFlags(")?;
        for (bit, name) in [
            (1, "NEEDS_CSUM"),
            (2, "DATA_VALID"),
            (4, "RSC_INFO"),
            (8, "UDP_TUNNEL_CSUM"),
        ] {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        let rest = self.0 & !0xf;
        if rest != 0 {
            if !first {
                f.write_str(" | ")?;
            }
            write!(f, "{rest:#04x}")?;
        } else if first {
            f.write_str("NONE")?;
        }
        f.write_str(")")
    }
}

/// `virtio_net_hdr.gso_type`: which segmentation the packet still needs.
///
/// Any byte is representable, so decoding never fails on an unknown type;
/// the operations that need a known type say so with an error.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(transparent)]
pub struct GsoType(pub u8);

impl GsoType {
    /// Not a super-packet (`VIRTIO_NET_HDR_GSO_NONE`).
    pub const NONE: Self = Self(0);
    /// TCP over IPv4 (`VIRTIO_NET_HDR_GSO_TCPV4`).
    pub const TCPV4: Self = Self(1);
    /// Legacy UDP fragmentation offload (`VIRTIO_NET_HDR_GSO_UDP`).
    pub const UDP: Self = Self(3);
    /// TCP over IPv6 (`VIRTIO_NET_HDR_GSO_TCPV6`).
    pub const TCPV6: Self = Self(4);
    /// UDP segmentation over either IP version (`VIRTIO_NET_HDR_GSO_UDP_L4`).
    pub const UDP_L4: Self = Self(5);
    /// Bit set with TCP types when the super-packet carries ECN CWR (`VIRTIO_NET_HDR_GSO_ECN`).
    pub const ECN: u8 = 0x80;
    /// Bit set with an inner type (TCPV4, TCPV6, UDP_L4) when the
    /// super-packet is carried in a UDP tunnel over IPv4
    /// (`VIRTIO_NET_HDR_GSO_UDP_TUNNEL_IPV4`, Linux 6.17+).
    pub const UDP_TUNNEL_IPV4: u8 = 0x20;
    /// The same over IPv6 (`VIRTIO_NET_HDR_GSO_UDP_TUNNEL_IPV6`).
    pub const UDP_TUNNEL_IPV6: u8 = 0x40;
    /// Both tunnel bits (`VIRTIO_NET_HDR_GSO_UDP_TUNNEL`); a header with
    /// both set is refused by the kernel.
    pub const UDP_TUNNEL: u8 = Self::UDP_TUNNEL_IPV4 | Self::UDP_TUNNEL_IPV6;

    /// The tunnel bits of the type (0 when the super-packet is not in a
    /// UDP tunnel).
    pub const fn udp_tunnel(self) -> u8 {
        self.0 & Self::UDP_TUNNEL
    }

    /// The type of the packet inside the tunnel: the type without its
    /// tunnel bits (the ECN bit kept).
    pub const fn inner(self) -> Self {
        Self(self.0 & !Self::UDP_TUNNEL)
    }

    /// Whether the type asks for segmentation: anything but `GSO_NONE`
    /// once the ECN bit is cleared. The ECN bit alone asks for none (the
    /// kernel's virtio_net_hdr_to_skb refuses it, as it refuses any unknown
    /// type).
    pub const fn is_gso(self) -> bool {
        self.0 & !Self::ECN != Self::NONE.0
    }

    /// The kernel's name of the type, if it is one this crate knows.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "NONE",
            1 => "TCPV4",
            3 => "UDP",
            4 => "TCPV6",
            5 => "UDP_L4",
            _ => return None,
        })
    }
}

impl fmt::Debug for GsoType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "GsoType::{n}"),
            None => write!(f, "GsoType({:#04x})", self.0),
        }
    }
}

impl fmt::Display for GsoType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{:#04x}", self.0),
        }
    }
}

/// The 10-byte `struct virtio_net_hdr`.
///
/// ```
/// use tun_offload::{GsoType, HdrFlags, VirtioNetHdr};
/// let hdr = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::TCPV4, 52, 1448, 20, 16);
/// let mut buf = [0u8; VirtioNetHdr::LEN];
/// hdr.encode(&mut buf).unwrap();
/// assert_eq!(VirtioNetHdr::decode(&buf).unwrap(), hdr);
/// ```
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct VirtioNetHdr {
    flags: HdrFlags,
    gso_type: GsoType,
    hdr_len: U16,
    gso_size: U16,
    csum_start: U16,
    csum_offset: U16,
}

impl VirtioNetHdr {
    /// Size of the header on the wire: 10 bytes.
    pub const LEN: usize = 10;

    /// The all-zero header: a complete packet, nothing left to do.
    pub const ZERO: Self = Self::new(HdrFlags::NONE, GsoType::NONE, 0, 0, 0, 0);

    /// A header from its fields.
    pub const fn new(
        flags: HdrFlags,
        gso_type: GsoType,
        hdr_len: u16,
        gso_size: u16,
        csum_start: u16,
        csum_offset: u16,
    ) -> Self {
        Self {
            flags,
            gso_type,
            hdr_len: U16::new(hdr_len),
            gso_size: U16::new(gso_size),
            csum_start: U16::new(csum_start),
            csum_offset: U16::new(csum_offset),
        }
    }

    /// Decode the header from the first [`Self::LEN`] bytes of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        read_prefix(bytes).map(|(hdr, _)| hdr)
    }

    /// Split `bytes` into the decoded header and the packet behind it.
    pub fn split_prefix(bytes: &[u8]) -> Result<(Self, &[u8]), HeaderError> {
        read_prefix(bytes)
    }

    /// Encode the header into the first [`Self::LEN`] bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<(), HeaderError> {
        write_prefix(self, out)
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        out.copy_from_slice(self.as_bytes());
        out
    }

    /// `flags`.
    pub const fn flags(&self) -> HdrFlags {
        self.flags
    }
    /// `gso_type`, ECN bit included.
    pub const fn gso_type(&self) -> GsoType {
        self.gso_type
    }
    /// Whether the header asks the kernel to segment ([`GsoType::is_gso`]).
    pub const fn is_gso(&self) -> bool {
        self.gso_type.is_gso()
    }
    /// `hdr_len`: the kernel's idea of the headers' length (not to be trusted on receive).
    pub const fn hdr_len(&self) -> u16 {
        self.hdr_len.get()
    }
    /// `gso_size`: payload bytes per segment.
    pub const fn gso_size(&self) -> u16 {
        self.gso_size.get()
    }
    /// `csum_start`: where the L4 checksum coverage starts.
    pub const fn csum_start(&self) -> u16 {
        self.csum_start.get()
    }
    /// `csum_offset`: where the checksum field is, from `csum_start`.
    pub const fn csum_offset(&self) -> u16 {
        self.csum_offset.get()
    }

    /// The checksum part of the header, every GSO field zero: NEEDS_CSUM
    /// (with `csum_start` and `csum_offset`) or DATA_VALID as set here,
    /// the all-zero header when neither is. What a packet of a super-packet
    /// split with partial checksums, or a packet written as it is, carries.
    pub const fn checksum_part(&self) -> Self {
        let flags = self.flags().0 & (HdrFlags::NEEDS_CSUM.0 | HdrFlags::DATA_VALID.0);
        if flags == 0 {
            return Self::ZERO;
        }
        Self::new(
            HdrFlags(flags),
            GsoType::NONE,
            0,
            0,
            self.csum_start(),
            self.csum_offset(),
        )
    }

    /// What this header vouches for in front of one packet: its
    /// [`Self::checksum_part`], or the all-zero header when it asks for
    /// segmentation (a GSO header in front of one packet is not what a
    /// receiver that left checksums partial writes). The header
    /// [`packet_hdr`](crate::packet_hdr) reads from bytes.
    pub const fn packet_part(&self) -> Self {
        if self.gso_type().0 == GsoType::NONE.0 {
            self.checksum_part()
        } else {
            Self::ZERO
        }
    }

    /// Set `flags`.
    pub fn set_flags(&mut self, v: HdrFlags) {
        self.flags = v;
    }
    /// Set `gso_type`.
    pub fn set_gso_type(&mut self, v: GsoType) {
        self.gso_type = v;
    }
    /// Set `hdr_len`.
    pub fn set_hdr_len(&mut self, v: u16) {
        self.hdr_len = U16::new(v);
    }
    /// Set `gso_size`.
    pub fn set_gso_size(&mut self, v: u16) {
        self.gso_size = U16::new(v);
    }
    /// Set `csum_start`.
    pub fn set_csum_start(&mut self, v: u16) {
        self.csum_start = U16::new(v);
    }
    /// Set `csum_offset`.
    pub fn set_csum_offset(&mut self, v: u16) {
        self.csum_offset = U16::new(v);
    }
}

impl fmt::Debug for VirtioNetHdr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtioNetHdr")
            .field("flags", &self.flags)
            .field("gso_type", &self.gso_type)
            .field("hdr_len", &self.hdr_len())
            .field("gso_size", &self.gso_size())
            .field("csum_start", &self.csum_start())
            .field("csum_offset", &self.csum_offset())
            .finish()
    }
}

/// The 12-byte `struct virtio_net_hdr_mrg_rxbuf`: the header plus
/// `num_buffers`, used by devices configured with `TUNSETVNETHDRSZ` 12.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Debug,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct VirtioNetHdrMrgRxbuf {
    /// The 10-byte header.
    pub hdr: VirtioNetHdr,
    num_buffers: U16,
}

impl VirtioNetHdrMrgRxbuf {
    /// Size of the header on the wire: 12 bytes.
    pub const LEN: usize = 12;

    /// The header with `num_buffers`.
    pub const fn new(hdr: VirtioNetHdr, num_buffers: u16) -> Self {
        Self {
            hdr,
            num_buffers: U16::new(num_buffers),
        }
    }

    /// `num_buffers` (TUN always writes 1 or leaves it 0).
    pub const fn num_buffers(&self) -> u16 {
        self.num_buffers.get()
    }

    /// Decode from the first [`Self::LEN`] bytes of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        read_prefix(bytes).map(|(hdr, _)| hdr)
    }

    /// Encode into the first [`Self::LEN`] bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<(), HeaderError> {
        write_prefix(self, out)
    }
}

/// The 24-byte `struct virtio_net_hdr_v1_hash_tunnel` (Linux 6.17+): what a
/// TUN/TAP whose UDP-tunnel offload is on (TUN_F_UDP_TUNNEL_GSO) reads and
/// writes when its header size is set to 24 with `TUNSETVNETHDRSZ`
/// (drivers/net/tun_vnet.h, TUN_VNET_TNL_SIZE).
///
/// Layout (include/uapi/linux/virtio_net.h): the 10-byte header, then
/// `num_buffers` at 10 (the 12 bytes of `struct virtio_net_hdr_v1`), the
/// hash report fields `hash_value_lo` at 12, `hash_value_hi` at 14,
/// `hash_report` at 16 and `padding` at 18 (`struct virtio_net_hdr_v1_hash`,
/// which TUN leaves zero), then `outer_th_offset` at 20 and
/// `inner_nh_offset` at 22: the offsets from the packet start of the outer
/// transport (UDP) header and the inner network header of a tunnel
/// super-packet, whose `csum_start` is the inner transport header's. All
/// little-endian.
///
/// ```
/// use tun_offload::{GsoType, HdrFlags, VirtioNetHdr, VirtioNetHdrV1HashTunnel};
/// // TCP over IPv4 inside VXLAN over IPv4, from a TAP: outer Ethernet (14)
/// // + IPv4 (20), UDP (8) + VXLAN (8) + inner Ethernet (14), inner IPv4.
/// let hdr = VirtioNetHdr::new(
///     HdrFlags::NEEDS_CSUM,
///     GsoType(GsoType::TCPV4.0 | GsoType::UDP_TUNNEL_IPV4),
///     104, 1398, 84, 16,
/// );
/// let t = VirtioNetHdrV1HashTunnel::new(hdr, 34, 64);
/// let mut buf = [0u8; VirtioNetHdrV1HashTunnel::LEN];
/// t.encode(&mut buf).unwrap();
/// assert_eq!(&buf[20..], &[34, 0, 64, 0]);
/// let back = VirtioNetHdrV1HashTunnel::decode(&buf).unwrap();
/// assert_eq!(back, t);
/// assert_eq!(back.hdr.gso_type().inner(), GsoType::TCPV4);
/// ```
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Debug,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct VirtioNetHdrV1HashTunnel {
    /// The 10-byte header.
    pub hdr: VirtioNetHdr,
    num_buffers: U16,
    hash_value_lo: U16,
    hash_value_hi: U16,
    hash_report: U16,
    padding: U16,
    outer_th_offset: U16,
    inner_nh_offset: U16,
}

impl VirtioNetHdrV1HashTunnel {
    /// Size of the header on the wire: 24 bytes.
    pub const LEN: usize = 24;

    /// The header with the tunnel offsets, everything else zero (as TUN
    /// writes it: no buffer count, no hash report).
    pub const fn new(hdr: VirtioNetHdr, outer_th_offset: u16, inner_nh_offset: u16) -> Self {
        Self {
            hdr,
            num_buffers: U16::new(0),
            hash_value_lo: U16::new(0),
            hash_value_hi: U16::new(0),
            hash_report: U16::new(0),
            padding: U16::new(0),
            outer_th_offset: U16::new(outer_th_offset),
            inner_nh_offset: U16::new(inner_nh_offset),
        }
    }

    /// The 24-byte form of a header of a packet outside any tunnel: the
    /// tunnel offsets zero.
    pub const fn plain(hdr: VirtioNetHdr) -> Self {
        Self::new(hdr, 0, 0)
    }

    /// Decode from the first [`Self::LEN`] bytes of `bytes`. Any bytes
    /// decode; whether they describe a packet is for the split to say.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        read_prefix(bytes).map(|(hdr, _)| hdr)
    }

    /// Split `bytes` into the decoded header and the packet behind it.
    pub fn split_prefix(bytes: &[u8]) -> Result<(Self, &[u8]), HeaderError> {
        read_prefix(bytes)
    }

    /// Encode into the first [`Self::LEN`] bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<(), HeaderError> {
        write_prefix(self, out)
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        out.copy_from_slice(self.as_bytes());
        out
    }

    /// `num_buffers` (`struct virtio_net_hdr_v1`; TUN writes 0).
    pub const fn num_buffers(&self) -> u16 {
        self.num_buffers.get()
    }

    /// `hash_value`, from `hash_value_lo` and `hash_value_hi` (TUN reports
    /// no hash and writes 0).
    pub const fn hash_value(&self) -> u32 {
        (self.hash_value_hi.get() as u32) << 16 | self.hash_value_lo.get() as u32
    }

    /// `hash_report`: the `VIRTIO_NET_HASH_REPORT_*` type of the hash
    /// (0, NONE, from TUN).
    pub const fn hash_report(&self) -> u16 {
        self.hash_report.get()
    }

    /// `outer_th_offset`: where the outer transport (UDP) header starts,
    /// from the packet start.
    pub const fn outer_th_offset(&self) -> u16 {
        self.outer_th_offset.get()
    }

    /// `inner_nh_offset`: where the inner network header starts, from the
    /// packet start.
    pub const fn inner_nh_offset(&self) -> u16 {
        self.inner_nh_offset.get()
    }

    /// Set `num_buffers`.
    pub fn set_num_buffers(&mut self, v: u16) {
        self.num_buffers = U16::new(v);
    }

    /// Set `hash_value` (both halves).
    pub fn set_hash_value(&mut self, v: u32) {
        self.hash_value_lo = U16::new(v as u16);
        self.hash_value_hi = U16::new((v >> 16) as u16);
    }

    /// Set `hash_report`.
    pub fn set_hash_report(&mut self, v: u16) {
        self.hash_report = U16::new(v);
    }

    /// Set `outer_th_offset`.
    pub fn set_outer_th_offset(&mut self, v: u16) {
        self.outer_th_offset = U16::new(v);
    }

    /// Set `inner_nh_offset`.
    pub fn set_inner_nh_offset(&mut self, v: u16) {
        self.inner_nh_offset = U16::new(v);
    }
}

/// Decode a header of type `T` from the start of `bytes`, the rest behind
/// it: the one decoder of every header form.
fn read_prefix<T: FromBytes + KnownLayout + Immutable>(
    bytes: &[u8],
) -> Result<(T, &[u8]), HeaderError> {
    T::read_from_prefix(bytes).map_err(|_| HeaderError {
        len: bytes.len(),
        required: core::mem::size_of::<T>(),
    })
}

/// Encode `hdr` into the start of `out`: the one encoder of every form.
fn write_prefix<T: IntoBytes + Immutable>(hdr: &T, out: &mut [u8]) -> Result<(), HeaderError> {
    let bytes = hdr.as_bytes();
    let len = out.len();
    match out.get_mut(..bytes.len()) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            Ok(())
        }
        None => Err(HeaderError {
            len,
            required: bytes.len(),
        }),
    }
}

const _: () = assert!(core::mem::size_of::<VirtioNetHdr>() == VirtioNetHdr::LEN);
const _: () =
    assert!(core::mem::size_of::<VirtioNetHdrV1HashTunnel>() == VirtioNetHdrV1HashTunnel::LEN);
const _: () = assert!(core::mem::size_of::<VirtioNetHdrMrgRxbuf>() == VirtioNetHdrMrgRxbuf::LEN);

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    #[test]
    fn decodes_a_kernel_header() {
        // The first bytes of a real TSO read (tcp4-gso-00.bin).
        let raw = [
            0x01, 0x01, 0x34, 0x00, 0xa8, 0x05, 0x14, 0x00, 0x10, 0x00, 0x45,
        ];
        let (hdr, rest) = VirtioNetHdr::split_prefix(&raw).unwrap();
        assert_eq!(hdr.flags(), HdrFlags::NEEDS_CSUM);
        assert_eq!(hdr.gso_type(), GsoType::TCPV4);
        assert_eq!(
            (
                hdr.hdr_len(),
                hdr.gso_size(),
                hdr.csum_start(),
                hdr.csum_offset()
            ),
            (52, 1448, 20, 16)
        );
        assert_eq!(rest, &[0x45]);
        assert_eq!(hdr.to_bytes(), raw[..10]);
    }

    #[test]
    fn short_input_is_an_error_with_lengths() {
        let e = VirtioNetHdr::decode(&[0; 9]).unwrap_err();
        assert_eq!(
            e,
            HeaderError {
                len: 9,
                required: 10
            }
        );
        assert_eq!(
            VirtioNetHdr::ZERO.encode(&mut [0; 3]).unwrap_err(),
            HeaderError {
                len: 3,
                required: 10
            }
        );
        assert_eq!(
            VirtioNetHdrMrgRxbuf::decode(&[0; 11]).unwrap_err(),
            HeaderError {
                len: 11,
                required: 12
            }
        );
    }

    #[test]
    fn display_of_header_error() {
        assert_eq!(
            HeaderError {
                len: 9,
                required: 10
            }
            .to_string(),
            "virtio-net header needs 10 bytes, buffer has 9"
        );
    }

    #[test]
    fn mrg_rxbuf_round_trip() {
        let h = VirtioNetHdrMrgRxbuf::new(
            VirtioNetHdr::new(HdrFlags::DATA_VALID, GsoType::UDP_L4, 28, 1200, 20, 6),
            1,
        );
        let mut buf = [0u8; 12];
        h.encode(&mut buf).unwrap();
        assert_eq!(&buf[10..], &[1, 0]);
        assert_eq!(VirtioNetHdrMrgRxbuf::decode(&buf).unwrap(), h);
        assert_eq!(h.num_buffers(), 1);
    }

    /// Every field at the offset include/uapi/linux/virtio_net.h gives it
    /// (struct virtio_net_hdr_v1_hash_tunnel), little-endian.
    #[test]
    fn tunnel_header_layout() {
        let raw: [u8; 24] = [
            0x09, 0x21, // flags NEEDS_CSUM | UDP_TUNNEL_CSUM, TCPV4 | UDP_TUNNEL_IPV4
            0x68, 0x00, // hdr_len 104
            0x76, 0x05, // gso_size 1398
            0x54, 0x00, // csum_start 84
            0x10, 0x00, // csum_offset 16
            0x01, 0x00, // num_buffers 1
            0x44, 0x33, // hash_value_lo
            0x22, 0x11, // hash_value_hi
            0x02, 0x00, // hash_report TCPv4
            0x00, 0x00, // padding
            0x22, 0x00, // outer_th_offset 34
            0x40, 0x00, // inner_nh_offset 64
        ];
        let (t, rest) = VirtioNetHdrV1HashTunnel::split_prefix(&raw).unwrap();
        assert!(rest.is_empty());
        assert_eq!(
            t.hdr.flags(),
            HdrFlags::NEEDS_CSUM.union(HdrFlags::UDP_TUNNEL_CSUM)
        );
        assert_eq!(t.hdr.gso_type().udp_tunnel(), GsoType::UDP_TUNNEL_IPV4);
        assert_eq!(t.hdr.gso_type().inner(), GsoType::TCPV4);
        assert!(t.hdr.is_gso());
        assert_eq!(
            (
                t.hdr.hdr_len(),
                t.hdr.gso_size(),
                t.hdr.csum_start(),
                t.hdr.csum_offset()
            ),
            (104, 1398, 84, 16)
        );
        assert_eq!(t.num_buffers(), 1);
        assert_eq!(t.hash_value(), 0x1122_3344);
        assert_eq!(t.hash_report(), 2);
        assert_eq!((t.outer_th_offset(), t.inner_nh_offset()), (34, 64));
        assert_eq!(t.to_bytes(), raw);
        // The 10- and 12-byte forms read the same leading fields.
        assert_eq!(VirtioNetHdr::decode(&raw).unwrap(), t.hdr);
        assert_eq!(VirtioNetHdrMrgRxbuf::decode(&raw).unwrap().num_buffers(), 1);

        // Built field by field, the same bytes.
        let mut b = VirtioNetHdrV1HashTunnel::new(t.hdr, 34, 64);
        b.set_num_buffers(1);
        b.set_hash_value(0x1122_3344);
        b.set_hash_report(2);
        assert_eq!(b.to_bytes(), raw);
        b.set_outer_th_offset(0x0102);
        b.set_inner_nh_offset(0x0304);
        assert_eq!(&b.to_bytes()[20..], &[2, 1, 4, 3]);
        let p = VirtioNetHdrV1HashTunnel::plain(VirtioNetHdr::ZERO);
        assert_eq!(p.to_bytes(), [0; 24]);
    }

    #[test]
    fn tunnel_constants_are_the_kernels() {
        // include/uapi/linux/virtio_net.h (Linux 6.17+).
        assert_eq!(HdrFlags::UDP_TUNNEL_CSUM.0, 8);
        assert_eq!(GsoType::UDP_TUNNEL_IPV4, 0x20);
        assert_eq!(GsoType::UDP_TUNNEL_IPV6, 0x40);
        assert_eq!(GsoType::UDP_TUNNEL, 0x60);
        assert_eq!(VirtioNetHdrV1HashTunnel::LEN, 24);
        let t = GsoType(GsoType::UDP_L4.0 | GsoType::UDP_TUNNEL_IPV6);
        assert_eq!((t.udp_tunnel(), t.inner()), (0x40, GsoType::UDP_L4));
        let e = GsoType(GsoType::TCPV6.0 | GsoType::ECN | GsoType::UDP_TUNNEL_IPV4);
        assert_eq!(e.inner(), GsoType(GsoType::TCPV6.0 | GsoType::ECN));
        assert_eq!(GsoType::TCPV4.udp_tunnel(), 0);
        assert_eq!(
            format!("{:?}", HdrFlags(9)),
            "HdrFlags(NEEDS_CSUM | UDP_TUNNEL_CSUM)"
        );
        assert_eq!(
            format!("{:?}", HdrFlags(0x18)),
            "HdrFlags(UDP_TUNNEL_CSUM | 0x10)"
        );
    }

    #[test]
    fn short_input_for_the_tunnel_header() {
        assert_eq!(
            VirtioNetHdrV1HashTunnel::decode(&[0; 23]),
            Err(HeaderError {
                len: 23,
                required: 24
            })
        );
        assert_eq!(
            VirtioNetHdrV1HashTunnel::plain(VirtioNetHdr::ZERO).encode(&mut [0; 12]),
            Err(HeaderError {
                len: 12,
                required: 24
            })
        );
        assert!(VirtioNetHdrV1HashTunnel::split_prefix(&[0; 5]).is_err());
    }

    #[test]
    fn debug_texts() {
        assert_eq!(
            format!("{:?}", HdrFlags(3)),
            "HdrFlags(NEEDS_CSUM | DATA_VALID)"
        );
        assert_eq!(format!("{:?}", HdrFlags(0)), "HdrFlags(NONE)");
        assert_eq!(
            format!("{:?}", HdrFlags(0x41)),
            "HdrFlags(NEEDS_CSUM | 0x40)"
        );
        assert_eq!(format!("{:?}", GsoType::TCPV6), "GsoType::TCPV6");
        assert_eq!(format!("{:?}", GsoType(0x81)), "GsoType(0x81)");
        assert_eq!(format!("{}", GsoType(0x81)), "0x81");
    }
}
