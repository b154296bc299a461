//! Receive path for UDP-tunnel super-packets (Linux 6.17+): a VXLAN or
//! Geneve datagram whose inner packet is a TSO/USO super-packet, described
//! by the 24-byte [`VirtioNetHdrV1HashTunnel`], split into complete outer
//! datagrams.
//!
//! # Layout
//!
//! ```text
//! [outer L2 (TAP)] outer IPv4/IPv6 | outer UDP | tunnel header ... | inner IP | inner TCP/UDP | payload
//!                                  ^ outer_th_offset                ^ inner_nh_offset ^ csum_start
//! ```
//!
//! Everything between the outer UDP header and `inner_nh_offset` (the
//! VXLAN or Geneve header with its options and the inner Ethernet header)
//! is the tunnel header: copied into every segment unchanged, as
//! net/ipv4/udp_offload.c `__skb_udp_tunnel_segment` copies it (the kernel
//! sets the inner MAC header to the inner network header, so the inner
//! Ethernet header is part of what it copies).
//!
//! # Rules
//!
//! What the header may say is include/linux/virtio_net.h
//! `virtio_net_hdr_tnl_to_skb`; the segmentation is
//! `__skb_udp_tunnel_segment` around the plain split of the inner packet
//! (tcp_gso_segment, __udp_gso_segment, inet_gso_segment):
//!
//! - **Header.** Exactly one of UDP_TUNNEL_IPV4 and UDP_TUNNEL_IPV6 (the
//!   outer family); the inner type TCPV4, TCPV6 (also with ECN) or UDP_L4,
//!   never NONE or UFO; NEEDS_CSUM set, with `csum_start` at the inner
//!   transport header. `outer_th_offset` must be where the outer IP header
//!   (with any IPv6 extension headers) ends and that header must carry UDP;
//!   `inner_nh_offset` at least 8 bytes behind it. (The kernel checks only
//!   minimum distances; this parser checks the headers are really there.)
//! - **Inner packet.** Split exactly as [`crate::split`] splits a plain
//!   super-packet: the same code runs over the bytes from
//!   `inner_nh_offset` on.
//! - **Outer IP, per segment.** IPv4: total length, ID = first + i
//!   (wrapping; virtio headers never carry SKB_GSO_TCP_FIXEDID, so
//!   net/ipv4/af_inet.c `inet_gso_segment` increments the outer ID as it
//!   does a plain one), header checksum recomputed. IPv6: payload length.
//!   Everything else (TTL, DSCP/ECN, DF, flow label, options) is copied.
//! - **Outer UDP, per segment.** Length. Checksum: with
//!   [`HdrFlags::UDP_TUNNEL_CSUM`] (SKB_GSO_UDP_TUNNEL_CSUM) the full
//!   checksum over the outer pseudo header (with the final destination of
//!   a source route or Routing header), the UDP header and everything behind
//!   it, a zero result sent as 0xffff (CSUM_MANGLED_0); without it zero, "no
//!   checksum": the kernel leaves the field as the super-packet has it, and
//!   the senders that leave the outer checksum off (udp_set_csum with
//!   nocheck) write zero there, which this split writes whatever the field
//!   held, since a non-zero value could not be right for every segment.
//!
//! # TUN and TAP
//!
//! [`TunnelGsoPacket::parse`] takes a TUN packet (outer IP header at 0),
//! [`TunnelGsoPacket::parse_frame`] a TAP frame (Ethernet II or one 802.1Q
//! tag in front, see [`crate::frame`]); every offset of the header counts
//! from the start of what was read.
//!
//! Note for writers: `virtio_net_hdr_tnl_to_skb` requires
//! `outer_th_offset >= 14 + 20` (IPv4) or `14 + 40` (IPv6), counting an
//! Ethernet header even on a TUN device, whose packets have none. On Linux
//! 6.18 a TUN device therefore refuses (EINVAL) the write of a tunnel
//! super-packet whose outer IPv4 header is shorter than 36 bytes or whose
//! outer header is IPv6 without 14 bytes of extension headers, which is
//! nearly every real one; a TAP device takes them. Reads are not affected.
//! (Probed by writing this crate's test super-packets to both kinds of
//! device: outer IPv4 headers of 20, 24 and 32 bytes were refused on TUN,
//! 36 bytes accepted; every TAP frame accepted. tests/kernel_tunnel.rs
//! reads the kernel's own super-packets from TUN and TAP, IPv4 and IPv6
//! underlay, and writes their coalesced copies back: TAP takes them, TUN
//! refuses them with EINVAL although it produced them.)

use core::fmt;

use crate::checksum::{self, Checksum};
use crate::error::{Layer, PacketError};
use crate::split::{GsoPacket, SplitError, ipv6_transport_at, shift};
use crate::virtio::{GsoType, HdrFlags, VirtioNetHdr, VirtioNetHdrV1HashTunnel};
use crate::wire::{
    IPV6_HEADER_LEN, IpPacket, IpProtocol, Ipv4Packet, Ipv6Packet, UDP_HEADER_LEN, UdpPacket,
};
use crate::{frame, route};

/// A 24-byte header and packet that do not describe a valid UDP-tunnel
/// super-packet. Offsets count from the start of the packet (TUN) or frame
/// (TAP), except inside [`TunnelError::Inner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TunnelError {
    /// `gso_type` has neither UDP_TUNNEL_IPV4 nor UDP_TUNNEL_IPV6: not a
    /// tunnel super-packet (take the plain split).
    NotTunnel {
        /// The header's `gso_type`.
        gso_type: GsoType,
    },
    /// `gso_type` has both tunnel bits; the kernel refuses it.
    BothTunnelFamilies {
        /// The header's `gso_type`.
        gso_type: GsoType,
    },
    /// NEEDS_CSUM is not set; a tunnel super-packet needs it.
    NeedsCsumMissing {
        /// The header's flags.
        flags: HdrFlags,
    },
    /// The frame carries no IP packet (TAP).
    NotIpFrame {
        /// The frame's EtherType (behind an 802.1Q tag if there is one).
        ether_type: u16,
    },
    /// The outer IP header is invalid or truncated.
    Outer(PacketError),
    /// The outer IP version is not the one the tunnel bit names.
    OuterVersionMismatch {
        /// The header's `gso_type`.
        gso_type: GsoType,
        /// The outer IP version.
        version: u8,
    },
    /// `outer_th_offset` is not where the outer IP header ends.
    OuterThMismatch {
        /// The header's `outer_th_offset`.
        outer_th_offset: u16,
        /// Where the outer IP header (with IPv6 extension headers) ends.
        ip_header_end: usize,
    },
    /// The outer IP header does not carry UDP.
    OuterNotUdp {
        /// The outer protocol or last next header.
        protocol: u8,
    },
    /// `inner_nh_offset` leaves no room for the outer UDP header, or lies
    /// beyond the packet.
    InnerNhOutOfRange {
        /// The header's `inner_nh_offset`.
        inner_nh_offset: u16,
        /// The smallest valid value (`outer_th_offset + 8`).
        min: usize,
        /// Bytes of packet.
        len: usize,
    },
    /// `csum_start` lies before the inner network header.
    CsumStartBeforeInner {
        /// The header's `csum_start`.
        csum_start: u16,
        /// The header's `inner_nh_offset`.
        inner_nh_offset: u16,
    },
    /// The inner super-packet is invalid; `error`'s offsets count from
    /// `inner_nh_offset`.
    Inner {
        /// The header's `inner_nh_offset`.
        inner_nh_offset: u16,
        /// What the plain parser found wrong.
        error: PacketError,
    },
}

impl fmt::Display for TunnelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TunnelError::NotTunnel { gso_type } => {
                write!(f, "gso_type {gso_type} has no UDP tunnel bit")
            }
            TunnelError::BothTunnelFamilies { gso_type } => write!(
                f,
                "gso_type {gso_type} has both UDP_TUNNEL_IPV4 and UDP_TUNNEL_IPV6"
            ),
            TunnelError::NeedsCsumMissing { flags } => write!(
                f,
                "UDP tunnel super-packet without NEEDS_CSUM (flags {flags:?})"
            ),
            TunnelError::NotIpFrame { ether_type } => {
                write!(
                    f,
                    "tunnel super-frame carries EtherType {ether_type:#06x}, not IP"
                )
            }
            TunnelError::Outer(e) => write!(f, "outer header: {e}"),
            TunnelError::OuterVersionMismatch { gso_type, version } => write!(
                f,
                "outer IP version {version} does not fit gso_type {gso_type}"
            ),
            TunnelError::OuterThMismatch {
                outer_th_offset,
                ip_header_end,
            } => write!(
                f,
                "outer_th_offset {outer_th_offset} but the outer IP header ends at {ip_header_end}"
            ),
            TunnelError::OuterNotUdp { protocol } => {
                write!(f, "outer IP header carries protocol {protocol}, not UDP")
            }
            TunnelError::InnerNhOutOfRange {
                inner_nh_offset,
                min,
                len,
            } => write!(
                f,
                "inner_nh_offset {inner_nh_offset} outside {min}..{len} (behind the outer UDP header, inside the packet)"
            ),
            TunnelError::CsumStartBeforeInner {
                csum_start,
                inner_nh_offset,
            } => write!(
                f,
                "csum_start {csum_start} lies before inner_nh_offset {inner_nh_offset}"
            ),
            TunnelError::Inner {
                inner_nh_offset,
                error,
            } => write!(
                f,
                "inner packet at {inner_nh_offset} (offsets from there): {error}"
            ),
        }
    }
}

impl core::error::Error for TunnelError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            TunnelError::Outer(e) | TunnelError::Inner { error: e, .. } => Some(e),
            _ => None,
        }
    }
}

/// A validated UDP-tunnel super-packet: the outer headers, the tunnel
/// header, and the inner super-packet as [`GsoPacket`] parses it. Size the
/// output with [`Self::segment_count`] and [`Self::max_segment_len`].
///
/// Rules: include/linux/virtio_net.h `virtio_net_hdr_tnl_to_skb` for the
/// header, net/ipv4/udp_offload.c `__skb_udp_tunnel_segment` and
/// net/ipv4/af_inet.c `inet_gso_segment` for the segments. For writers:
/// `virtio_net_hdr_tnl_to_skb` wants `outer_th_offset` of at least 14 + 20
/// (IPv4) or 14 + 40 (IPv6) even on a TUN device, which has no Ethernet
/// header, so Linux 6.18 refuses (EINVAL) tunnel super-packets with a plain
/// outer header written to TUN; TAP takes them (probed on both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelGsoPacket {
    inner: GsoPacket,
    /// Where the outer IP header starts (the L2 length of a frame).
    outer_nh: usize,
    outer_th: usize,
    inner_nh: usize,
    outer_v6: bool,
    outer_csum: bool,
    len: usize,
}

impl TunnelGsoPacket {
    /// Validate `hdr` against a TUN `packet` (outer IP header at 0).
    pub fn parse(hdr: &VirtioNetHdrV1HashTunnel, packet: &[u8]) -> Result<Self, TunnelError> {
        Self::parse_at(hdr, packet, 0)
    }

    /// Validate `hdr` against a TAP `frame`: the outer IP packet behind an
    /// Ethernet II header or one 802.1Q tag, every offset counted from the
    /// frame start. A frame too short for its L2 header is
    /// [`TunnelError::Outer`] with [`PacketError::Truncated`] at
    /// [`Layer::Ethernet`].
    pub fn parse_frame(hdr: &VirtioNetHdrV1HashTunnel, frame: &[u8]) -> Result<Self, TunnelError> {
        let Some(l2) = frame::ip_offset(frame) else {
            return Err(match frame::ether_type(frame) {
                Some(ether_type) if frame.len() >= frame::MAX_L2_LEN => {
                    TunnelError::NotIpFrame { ether_type }
                }
                _ if frame.len() >= frame::MAX_L2_LEN => TunnelError::NotIpFrame { ether_type: 0 },
                _ => TunnelError::Outer(PacketError::Truncated {
                    layer: Layer::Ethernet,
                    required: frame::MAX_L2_LEN,
                    len: frame.len(),
                }),
            });
        };
        Self::parse_at(hdr, frame, l2)
    }

    fn parse_at(
        hdr: &VirtioNetHdrV1HashTunnel,
        packet: &[u8],
        outer_nh: usize,
    ) -> Result<Self, TunnelError> {
        let h = hdr.hdr;
        let gso_type = h.gso_type();
        let outer_v6 = match gso_type.udp_tunnel() {
            0 => return Err(TunnelError::NotTunnel { gso_type }),
            GsoType::UDP_TUNNEL => return Err(TunnelError::BothTunnelFamilies { gso_type }),
            bits => bits == GsoType::UDP_TUNNEL_IPV6,
        };
        if !h.flags().contains(HdrFlags::NEEDS_CSUM) {
            return Err(TunnelError::NeedsCsumMissing { flags: h.flags() });
        }
        let len = packet.len();
        let shift_outer = |e: PacketError| TunnelError::Outer(shift(e, outer_nh, &h));
        let outer = &packet[outer_nh.min(len)..];
        let ip = IpPacket::new_checked(outer).map_err(shift_outer)?;
        let version = if outer_v6 { 6 } else { 4 };
        if ip.version() != version {
            return Err(TunnelError::OuterVersionMismatch {
                gso_type,
                version: ip.version(),
            });
        }
        let outer_th = usize::from(hdr.outer_th_offset());
        let (ip_header_end, protocol) = match ip {
            IpPacket::V4(ip) => (outer_nh + ip.header_len(), ip.protocol()),
            IpPacket::V6(ip) => {
                if outer_th < outer_nh + IPV6_HEADER_LEN {
                    return Err(TunnelError::OuterThMismatch {
                        outer_th_offset: hdr.outer_th_offset(),
                        ip_header_end: outer_nh + IPV6_HEADER_LEN,
                    });
                }
                let next = ipv6_transport_at(&ip, outer_th - outer_nh).map_err(|e| match e {
                    PacketError::CsumStartMismatch { ip_header_len, .. } => {
                        TunnelError::OuterThMismatch {
                            outer_th_offset: hdr.outer_th_offset(),
                            ip_header_end: outer_nh + ip_header_len,
                        }
                    }
                    e => shift_outer(e),
                })?;
                (outer_th, next)
            }
        };
        if outer_th != ip_header_end {
            return Err(TunnelError::OuterThMismatch {
                outer_th_offset: hdr.outer_th_offset(),
                ip_header_end,
            });
        }
        if protocol != IpProtocol::UDP {
            return Err(TunnelError::OuterNotUdp {
                protocol: protocol.0,
            });
        }
        let inner_nh = usize::from(hdr.inner_nh_offset());
        let min = outer_th + UDP_HEADER_LEN;
        if inner_nh < min || inner_nh >= len {
            return Err(TunnelError::InnerNhOutOfRange {
                inner_nh_offset: hdr.inner_nh_offset(),
                min,
                len,
            });
        }
        let csum_start = usize::from(h.csum_start());
        if csum_start < inner_nh {
            return Err(TunnelError::CsumStartBeforeInner {
                csum_start: h.csum_start(),
                inner_nh_offset: hdr.inner_nh_offset(),
            });
        }
        // The inner super-packet as a plain one: the tunnel bits off, the
        // offsets counted from the inner network header.
        let mut inner_hdr: VirtioNetHdr = h;
        inner_hdr.set_gso_type(gso_type.inner());
        inner_hdr.set_flags(HdrFlags(h.flags().0 & !HdrFlags::UDP_TUNNEL_CSUM.0));
        inner_hdr.set_csum_start((csum_start - inner_nh) as u16);
        inner_hdr.set_hdr_len(h.hdr_len().saturating_sub(inner_nh as u16));
        let inner_error = |error| TunnelError::Inner {
            inner_nh_offset: hdr.inner_nh_offset(),
            error,
        };
        let inner = GsoPacket::parse(&inner_hdr, &packet[inner_nh..]).map_err(inner_error)?;
        // Every outer segment must fit its length fields too.
        let max_outer = inner_nh + inner.max_segment_len();
        let outer_limit = if outer_v6 {
            outer_nh + IPV6_HEADER_LEN + 0xffff
        } else {
            outer_nh + 0xffff
        };
        if max_outer > outer_limit || max_outer - outer_th > 0xffff {
            return Err(TunnelError::Outer(PacketError::SegmentTooLong {
                len: max_outer,
            }));
        }
        Ok(Self {
            inner,
            outer_nh,
            outer_th,
            inner_nh,
            outer_v6,
            outer_csum: h.flags().contains(HdrFlags::UDP_TUNNEL_CSUM),
            len,
        })
    }

    /// The inner super-packet, as [`GsoPacket::parse`] sees the bytes from
    /// [`Self::inner_nh_offset`] on.
    pub fn inner(&self) -> &GsoPacket {
        &self.inner
    }
    /// Bytes of L2 header in front of the outer IP header (0 for TUN).
    pub fn l2_len(&self) -> usize {
        self.outer_nh
    }
    /// Where the outer UDP header starts.
    pub fn outer_th_offset(&self) -> usize {
        self.outer_th
    }
    /// Where the inner network header starts: the bytes copied in front of
    /// every inner segment.
    pub fn inner_nh_offset(&self) -> usize {
        self.inner_nh
    }
    /// Whether the outer IP header is IPv6.
    pub fn outer_is_v6(&self) -> bool {
        self.outer_v6
    }
    /// Whether each segment gets an outer UDP checksum
    /// ([`HdrFlags::UDP_TUNNEL_CSUM`]); zero otherwise.
    pub fn outer_checksum(&self) -> bool {
        self.outer_csum
    }
    /// How many outer datagrams the split produces.
    pub fn segment_count(&self) -> usize {
        self.inner.segment_count()
    }
    /// The longest outer datagram (the L2 header of a frame included).
    pub fn max_segment_len(&self) -> usize {
        self.inner_nh + self.inner.max_segment_len()
    }

    /// Write the outer datagrams of `packet` (the bytes given to the parse)
    /// into `bufs[i][offset..]`, their lengths into `lens[i]`, as
    /// [`GsoPacket::split_into`] does for a plain super-packet (and with its
    /// [`SplitError::OutOfSpace`]: the first `produced` datagrams are
    /// complete).
    pub fn split_into<B: AsMut<[u8]>>(
        &self,
        packet: &[u8],
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
    ) -> Result<usize, SplitError> {
        if packet.len() != self.len {
            return Err(SplitError::Invalid(PacketError::IpLengthMismatch {
                layer: if self.outer_v6 {
                    Layer::Ipv6
                } else {
                    Layer::Ipv4
                },
                claimed: self.len,
                len: packet.len(),
            }));
        }
        let outer = &packet[..self.inner_nh];
        // The inner segments land behind room for the outer headers.
        let Some(inner_offset) = offset.checked_add(self.inner_nh) else {
            return Err(SplitError::OutOfSpace {
                produced: 0,
                dropped: self.segment_count(),
            });
        };
        let result = self
            .inner
            .split_into(&packet[self.inner_nh..], bufs, lens, inner_offset);
        let produced = match result {
            Ok(n) => n,
            Err(SplitError::OutOfSpace { produced, .. }) => produced,
            Err(e) => return Err(e),
        };
        let first_id = if self.outer_v6 {
            0
        } else {
            Ipv4Packet::new_unchecked(&outer[self.outer_nh..]).ident()
        };
        let pseudo = self.outer_pseudo(outer);
        for (i, (buf, len)) in bufs
            .iter_mut()
            .zip(lens.iter_mut())
            .take(produced)
            .enumerate()
        {
            let seg_len = self.inner_nh + *len;
            let seg = &mut buf.as_mut()[offset..offset + seg_len];
            seg[..self.inner_nh].copy_from_slice(outer);
            self.finish_outer(seg, first_id.wrapping_add(i as u16), pseudo);
            *len = seg_len;
        }
        result
    }

    /// The outer pseudo-header sum without its length (only used with
    /// [`Self::outer_checksum`]).
    fn outer_pseudo(&self, outer: &[u8]) -> Checksum {
        if !self.outer_csum {
            return Checksum::ZERO;
        }
        let ip = &outer[self.outer_nh..];
        let proto = IpProtocol::UDP.0;
        // The addresses were validated by the parse; a routing header the
        // parse accepted names its final destination, or the fixed one.
        if self.outer_v6 {
            let v6 = Ipv6Packet::new_unchecked(ip);
            let dst = route::ipv6_final_destination(ip, self.outer_th - self.outer_nh)
                .map_or(v6.dst_addr(), Into::into);
            checksum::pseudo_header_v6(v6.src_addr(), dst, proto, 0)
        } else {
            let v4 = Ipv4Packet::new_unchecked(ip);
            let dst = route::ipv4_final_destination(ip).map_or(v4.dst_addr(), Into::into);
            checksum::pseudo_header_v4(v4.src_addr(), dst, proto, 0)
        }
    }

    /// Set one outer datagram's IP length (and IPv4 ID and checksum), UDP
    /// length and UDP checksum.
    fn finish_outer(&self, seg: &mut [u8], id: u16, pseudo: Checksum) {
        let (nh, th) = (self.outer_nh, self.outer_th);
        let ip_len = seg.len() - nh;
        if self.outer_v6 {
            Ipv6Packet::new_unchecked(&mut seg[nh..])
                .set_payload_len((ip_len - IPV6_HEADER_LEN) as u16);
        } else {
            let mut ip = Ipv4Packet::new_unchecked(&mut seg[nh..th]);
            ip.set_total_len(ip_len as u16);
            ip.set_ident(id);
            ip.set_checksum(0);
            let c = checksum::ipv4_header(&seg[nh..th]);
            Ipv4Packet::new_unchecked(&mut seg[nh..th]).set_checksum(c);
        }
        let udp_len = seg.len() - th;
        let mut udp = UdpPacket::new_unchecked(&mut seg[th..]);
        udp.set_len(udp_len as u16);
        udp.set_checksum(0);
        if self.outer_csum {
            let mut sum = pseudo;
            sum.add_u16(udp_len as u16);
            sum.add(&seg[th..]);
            UdpPacket::new_unchecked(&mut seg[th..]).set_checksum(sum.finish_udp());
        }
    }
}

/// Split one read of a device whose UDP-tunnel offload is on: a tunnel
/// super-packet with [`TunnelGsoPacket`], anything else (the tunnel offsets
/// zero, no tunnel bit) with the plain [`crate::split`] (`frame`: whether
/// `packet` is a TAP frame).
///
/// ```
/// use tun_offload::{split_tunnel, TunnelSplitError, VirtioNetHdrV1HashTunnel};
/// fn on_read(
///     read: &[u8],
///     tap: bool,
///     bufs: &mut [Vec<u8>],
///     lens: &mut [usize],
/// ) -> Result<usize, TunnelSplitError> {
///     let (hdr, packet) = VirtioNetHdrV1HashTunnel::split_prefix(read).expect("24 bytes");
///     match split_tunnel(&hdr, packet, tap, bufs, lens, 0) {
///         // Recoverable: the first `produced` datagrams are complete.
///         Err(TunnelSplitError::OutOfSpace { produced, .. }) => Ok(produced),
///         r => r,
///     }
/// }
/// // A read of a plain 20-byte IPv4 packet behind an all-zero header.
/// let mut read = [0u8; 24 + 20];
/// read[24] = 0x45;
/// read[27] = 20;
/// let (mut bufs, mut lens) = (vec![vec![0u8; 64]; 2], [0usize; 2]);
/// assert_eq!(on_read(&read, false, &mut bufs, &mut lens), Ok(1));
/// assert_eq!(&bufs[0][..lens[0]], &read[24..]);
/// ```
pub fn split_tunnel<B: AsMut<[u8]>>(
    hdr: &VirtioNetHdrV1HashTunnel,
    packet: &[u8],
    frame: bool,
    bufs: &mut [B],
    lens: &mut [usize],
    offset: usize,
) -> Result<usize, TunnelSplitError> {
    if hdr.hdr.gso_type().udp_tunnel() == 0 {
        let r = if frame {
            crate::split_frame(&hdr.hdr, packet, bufs, lens, offset)
        } else {
            crate::split(&hdr.hdr, packet, bufs, lens, offset)
        };
        return r.map_err(TunnelSplitError::from);
    }
    let p = if frame {
        TunnelGsoPacket::parse_frame(hdr, packet)
    } else {
        TunnelGsoPacket::parse(hdr, packet)
    }
    .map_err(TunnelSplitError::Tunnel)?;
    p.split_into(packet, bufs, lens, offset)
        .map_err(TunnelSplitError::from)
}

/// Why [`split_tunnel`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelSplitError {
    /// A tunnel super-packet's header or packet is invalid.
    Tunnel(TunnelError),
    /// A plain packet's header or packet is invalid.
    Invalid(PacketError),
    /// As [`SplitError::OutOfSpace`]: the first `produced` are complete.
    OutOfSpace {
        /// Datagrams written.
        produced: usize,
        /// Datagrams that did not fit.
        dropped: usize,
    },
}

impl From<SplitError> for TunnelSplitError {
    fn from(e: SplitError) -> Self {
        match e {
            SplitError::Invalid(e) => TunnelSplitError::Invalid(e),
            SplitError::OutOfSpace { produced, dropped } => {
                TunnelSplitError::OutOfSpace { produced, dropped }
            }
        }
    }
}

impl fmt::Display for TunnelSplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TunnelSplitError::Tunnel(e) => write!(f, "invalid UDP tunnel super-packet: {e}"),
            TunnelSplitError::Invalid(e) => SplitError::Invalid(*e).fmt(f),
            TunnelSplitError::OutOfSpace { produced, dropped } => SplitError::OutOfSpace {
                produced: *produced,
                dropped: *dropped,
            }
            .fmt(f),
        }
    }
}

impl core::error::Error for TunnelSplitError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            TunnelSplitError::Tunnel(e) => Some(e),
            TunnelSplitError::Invalid(e) => Some(e),
            TunnelSplitError::OutOfSpace { .. } => None,
        }
    }
}
