//! Receive path: turn one read from a TUN fd with `IFF_VNET_HDR` (a virtio
//! header plus a packet, possibly a 64 KiB TSO/USO super-packet) into
//! complete, MTU-sized IP packets.
//!
//! # Output layout
//!
//! Segments are written one per caller buffer, each at the same `offset`,
//! with its length stored in `lens`. This shape was chosen over one
//! contiguous region because every segment then sits in a buffer of its own
//! with `offset` bytes of headroom: a VPN writes its own header in front and
//! hands each buffer to its socket (or `sendmmsg`) without another copy, and
//! a relay hands the same buffers to the other device's batched write. Each
//! payload byte is copied exactly once (unavoidable: every segment needs its
//! own headers in front of its share of the payload), its checksum is
//! computed over the freshly written, cache-hot copy, and nothing is
//! allocated. Packets that need no split can be completed in place with
//! [`complete_checksum`](crate::complete_checksum), with no copy at all.
//!
//! A reader that can scatter its read ([`GsoPacket::parse_head`] tells the
//! shape from the first bytes, and the next super-packet of a flow usually
//! has the same) lays out a `readv` so that each segment's payload lands in
//! its own buffer behind room for its headers; [`GsoPacket::split_placed`]
//! then writes the headers and sums each payload where it lies, and no
//! payload byte is copied at all.
//!
//! The kernel's `hdr_len` is never trusted: header lengths are recomputed
//! from the packet, and every offset is bounds-checked before use.
//!
//! # Frames (TAP)
//!
//! A TAP device with `IFF_VNET_HDR` hands over Ethernet frames, and its
//! virtio header counts `csum_start` (and `hdr_len`) from the start of the
//! frame. [`split_frame`] and [`GsoPacket::parse_frame`] take such a frame:
//!
//! - The L2 header is found per frame ([`crate::frame::ip_offset`]):
//!   Ethernet II (14 bytes) or one 802.1Q tag (18 bytes) in front of IPv4 or
//!   IPv6. Each segment gets a copy of the frame's L2 header in front of its
//!   IP packet; segment lengths (`lens`) count the whole frame.
//! - A frame without GSO (GSO_NONE) is copied as it is, IP or not (ARP,
//!   anything else), and a partial checksum completed: `csum_start` counts
//!   from the frame start, so nothing needs to know the L2 header.
//! - A GSO header on a frame that carries no IP packet is
//!   [`PacketError::NotIpFrame`]; a frame too short for its L2 header is
//!   [`PacketError::Truncated`] at [`Layer::Ethernet`]. Offsets in the
//!   errors of a frame count from the frame start.
//!
//! [`split`] and [`GsoPacket::parse`] are the same without an L2 header
//! (TUN): the frame handling costs them nothing.
//!
//! # Rules
//!
//! The kernel's segmentation is the specification: net/ipv4/tcp_offload.c
//! (tcp_gso_segment), net/ipv4/udp_offload.c (__udp_gso_segment),
//! net/ipv4/af_inet.c (inet_gso_segment), net/ipv6/ip6_offload.c, and
//! include/linux/virtio_net.h for what the header may say.
//!
//! - **Types.** TCPV4, TCPV6 and UDP_L4; TCPV4 and TCPV6 also with the ECN
//!   bit (SKB_GSO_TCP_ECN): CWR is kept on the first segment only, which is
//!   what this split does for every TCP super-packet.
//! - **Pseudo header.** With NEEDS_CSUM (always set by the kernel on a
//!   super-packet) the checksum field holds the pseudo-header sum the sender
//!   built, over the final destination of an IPv6 Routing header or an IPv4
//!   source route (RFC 8200 section 8.1). As tcp_gso_segment and
//!   __udp_gso_segment do, each segment's sum is that value with the
//!   super-packet's transport length taken out and the segment's put in; the
//!   addresses of the fixed header are not used. Without NEEDS_CSUM the sum
//!   is built from the source address and the final destination: the last
//!   address of an IPv4 LSRR/SSRR option with hops left, or of an IPv6
//!   Routing header with segments left (type 0: its last address; type 2:
//!   its address; type 4, SRH: segment list entry 0); other routing types are
//!   [`PacketError::UnsupportedRoutingHeader`], malformed IPv4 options
//!   [`PacketError::MalformedIpv4Option`].
//! - **Per segment.** IPv4 ID = first + i (wrapping) with the header checksum
//!   recomputed; IP length fields; TCP sequence = first + i * gso_size in
//!   32-bit arithmetic, FIN and PSH on the last segment only, CWR on the first
//!   only; UDP length; full transport checksum (a UDP zero sent as 0xffff).

use core::fmt;

use crate::checksum::{self, Checksum, WideSum};
use crate::error::{Layer, PacketError};
use crate::kind::Kind;
use crate::partial::complete_checksum;
use crate::route;
use crate::virtio::{GsoType, HdrFlags, VirtioNetHdr};
use crate::wire::{
    IPV4_MIN_HEADER_LEN, IPV6_HEADER_LEN, IpPacket, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket,
    UDP_HEADER_LEN, UdpPacket, tcp_flags,
};

/// Why a GSO split stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitError {
    /// The header or packet is invalid; nothing was produced.
    Invalid(PacketError),
    /// The caller's buffers ran out. The first `produced` segments are
    /// complete and valid in the first `produced` buffers; `dropped` more
    /// would have followed. Not a device error: retry with more or larger
    /// buffers, or count the drop.
    OutOfSpace {
        /// Segments written.
        produced: usize,
        /// Segments that did not fit.
        dropped: usize,
    },
}

impl From<PacketError> for SplitError {
    fn from(e: PacketError) -> Self {
        SplitError::Invalid(e)
    }
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitError::Invalid(e) => write!(f, "invalid GSO packet: {e}"),
            SplitError::OutOfSpace { produced, dropped } => write!(
                f,
                "out of output space: {produced} segments produced, {dropped} dropped"
            ),
        }
    }
}

impl core::error::Error for SplitError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            SplitError::Invalid(e) => Some(e),
            SplitError::OutOfSpace { .. } => None,
        }
    }
}

/// A validated super-packet: what the split will produce, known before any
/// output buffer is touched (size the buffers with [`Self::segment_count`]
/// and [`Self::max_segment_len`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsoPacket {
    kind: Kind,
    /// Bytes of L2 header in front of the IP packet (0 for a TUN packet).
    l2_len: usize,
    /// Where the transport header starts, from the start of the frame.
    csum_start: usize,
    /// L2, IP and transport headers.
    header_len: usize,
    gso_size: usize,
    len: usize,
    /// The pseudo-header sum without its length, folded.
    pseudo: u16,
}

/// Walk IPv6 extension headers from the end of the fixed header up to
/// `csum_start`; returns the protocol found there.
pub(crate) fn ipv6_transport_at(
    ip: &Ipv6Packet<&[u8]>,
    csum_start: usize,
) -> Result<IpProtocol, PacketError> {
    let packet = ip.into_inner();
    let mut next = ip.next_header();
    let mut at = IPV6_HEADER_LEN;
    while at < csum_start {
        match next {
            IpProtocol::HOP_BY_HOP | IpProtocol::ROUTING | IpProtocol::DEST_OPTS => {}
            // A transport header before csum_start: csum_start points past it.
            _ => {
                return Err(PacketError::CsumStartMismatch {
                    csum_start: csum_start as u16,
                    ip_header_len: at,
                });
            }
        }
        let (Some(&nh), Some(&len8)) = (packet.get(at), packet.get(at + 1)) else {
            return Err(PacketError::Truncated {
                layer: Layer::Ipv6,
                required: at + 2,
                len: packet.len(),
            });
        };
        next = IpProtocol(nh);
        at += (usize::from(len8) + 1) * 8;
    }
    if at != csum_start {
        return Err(PacketError::CsumStartMismatch {
            csum_start: csum_start as u16,
            ip_header_len: at,
        });
    }
    Ok(next)
}

impl GsoPacket {
    /// Validate `hdr` (a super-packet: TCPV4, TCPV6 or UDP_L4, the TCP types
    /// also with the ECN bit) against `packet`.
    pub fn parse(hdr: &VirtioNetHdr, packet: &[u8]) -> Result<Self, PacketError> {
        Self::parse_head(hdr, packet, packet.len())
    }

    /// [`Self::parse`] for a super-packet of `len` bytes of which only the
    /// first are at hand in `head` (they must reach past the transport
    /// header; the payload is never read): what a scattered read into the
    /// segments' places leaves in the first place ([`Self::split_placed`]).
    /// The result is what [`Self::parse`] returns for the whole packet.
    pub fn parse_head(hdr: &VirtioNetHdr, head: &[u8], len: usize) -> Result<Self, PacketError> {
        let packet = &head[..head.len().min(len)];
        let gso_type = hdr.gso_type();
        // An unsupported type first; then an empty packet is too short for
        // the header the type needs (IPv6 for TCPV6, else IPv4).
        let fits_v4 = Kind::from_gso_type(gso_type, 4);
        if let Err(e @ PacketError::UnsupportedGsoType { .. }) = fits_v4 {
            return Err(e);
        }
        let Some(&first) = packet.first() else {
            let (layer, required) = if fits_v4.is_ok() {
                (Layer::Ipv4, IPV4_MIN_HEADER_LEN)
            } else {
                (Layer::Ipv6, IPV6_HEADER_LEN)
            };
            return Err(PacketError::Truncated {
                layer,
                required,
                len: 0,
            });
        };
        // The ECN bit is accepted with TCP: CWR stays on the first segment,
        // as it does in every TCP split here.
        let kind = Kind::from_gso_type(gso_type, first >> 4)?;
        if hdr.gso_size() == 0 {
            return Err(PacketError::ZeroGsoSize);
        }
        let csum_start = usize::from(hdr.csum_start());
        let proto = match IpPacket::new_checked(packet)? {
            IpPacket::V4(ip) => {
                if csum_start != ip.header_len() {
                    return Err(PacketError::CsumStartMismatch {
                        csum_start: hdr.csum_start(),
                        ip_header_len: ip.header_len(),
                    });
                }
                ip.protocol()
            }
            IpPacket::V6(ip) => {
                if csum_start < IPV6_HEADER_LEN {
                    return Err(PacketError::CsumStartMismatch {
                        csum_start: hdr.csum_start(),
                        ip_header_len: IPV6_HEADER_LEN,
                    });
                }
                ipv6_transport_at(&ip, csum_start)?
            }
        };
        if proto != kind.protocol() {
            return Err(PacketError::ProtocolMismatch {
                gso_type,
                protocol: proto.0,
            });
        }
        // The transport header through its view, lengths counted from the
        // start of the packet (csum_start may lie past an IPv6 packet's end).
        let l4 = packet.get(csum_start..).unwrap_or(&[]);
        let l4_header_len = if kind.is_tcp() {
            TcpPacket::new_checked(l4).map(|t| t.header_len())
        } else {
            UdpPacket::new_checked(l4).map(|_| UDP_HEADER_LEN)
        }
        .map_err(|e| match e {
            PacketError::Truncated {
                layer, required, ..
            } => PacketError::Truncated {
                layer,
                required: csum_start + required,
                len,
            },
            e => e,
        })?;
        let header_len = csum_start + l4_header_len;
        if hdr.flags().contains(HdrFlags::NEEDS_CSUM)
            && usize::from(hdr.csum_offset()) + 2 > l4_header_len
        {
            return Err(PacketError::CsumOffsetOutsideHeader {
                csum_offset: hdr.csum_offset(),
                l4_header_len,
            });
        }
        let gso_size = usize::from(hdr.gso_size());
        let max_seg = header_len + gso_size;
        // IPv4's total length covers its header, IPv6's payload length does not.
        let limit = if kind.is_v6() {
            0xffff + IPV6_HEADER_LEN
        } else {
            0xffff
        };
        if max_seg > limit || max_seg - csum_start > 0xffff {
            return Err(PacketError::SegmentTooLong { len: max_seg });
        }
        let pseudo = if hdr.flags().contains(HdrFlags::NEEDS_CSUM) {
            // The checksum field holds the pseudo-header sum the sender built
            // (with the final destination of a source route or Routing header,
            // or whatever address it had to use): take it and remove the
            // super-packet's length, as tcp_gso_segment and __udp_gso_segment
            // do, instead of rebuilding it from the fixed header.
            let at = csum_start + kind.csum_offset();
            let field = u16::from_be_bytes([packet[at], packet[at + 1]]);
            let l4_len = (len - csum_start) as u32;
            let mut sum = Checksum::from_folded(field);
            sum.add_u16(!((l4_len >> 16) as u16));
            sum.add_u16(!(l4_len as u16));
            sum.fold()
        } else {
            // No pseudo sum to take: build it, with the final destination.
            let proto = kind.protocol().0;
            if kind.is_v6() {
                let ip = Ipv6Packet::new_unchecked(packet);
                let dst = route::ipv6_final_destination(packet, csum_start)?;
                checksum::pseudo_header_v6(ip.src_addr(), dst.into(), proto, 0).fold()
            } else {
                let ip = Ipv4Packet::new_unchecked(packet);
                let dst = route::ipv4_final_destination(packet)?;
                checksum::pseudo_header_v4(ip.src_addr(), dst.into(), proto, 0).fold()
            }
        };
        Ok(Self {
            kind,
            l2_len: 0,
            csum_start,
            header_len,
            gso_size,
            len,
            pseudo,
        })
    }

    /// Validate `hdr` against an Ethernet `frame` from a TAP device: the IP
    /// packet behind the frame's L2 header (Ethernet II or one 802.1Q tag,
    /// see [`crate::frame`]) as [`Self::parse`] does, with `csum_start`
    /// counted from the frame start. [`Self::split_into`] then takes the
    /// whole frame and puts a copy of its L2 header in front of every
    /// segment.
    ///
    /// Errors: those of [`Self::parse`] (their offsets and lengths counted
    /// from the frame start), [`PacketError::Truncated`] at
    /// [`Layer::Ethernet`] for a frame shorter than its L2 header,
    /// [`PacketError::NotIpFrame`] for a frame that carries no IP packet.
    pub fn parse_frame(hdr: &VirtioNetHdr, frame: &[u8]) -> Result<Self, PacketError> {
        Self::parse_frame_head(hdr, frame, frame.len())
    }

    /// [`Self::parse_frame`] for a super-frame of `len` bytes of which only
    /// the first are at hand in `head`, as [`Self::parse_head`] is for a
    /// packet.
    pub fn parse_frame_head(
        hdr: &VirtioNetHdr,
        head: &[u8],
        len: usize,
    ) -> Result<Self, PacketError> {
        let frame = &head[..head.len().min(len)];
        let Some(l2) = crate::frame::ip_offset(frame) else {
            return Err(match crate::frame::ether_type(frame) {
                Some(ether_type) => PacketError::NotIpFrame { ether_type },
                None => PacketError::Truncated {
                    layer: Layer::Ethernet,
                    required: if frame.get(12..14)
                        == Some(&crate::frame::ETHERTYPE_VLAN.to_be_bytes())
                    {
                        crate::frame::VLAN_ETHERNET_HEADER_LEN
                    } else {
                        crate::frame::ETHERNET_HEADER_LEN
                    },
                    len: frame.len(),
                },
            });
        };
        let csum_start = usize::from(hdr.csum_start());
        if csum_start < l2 {
            return Err(PacketError::CsumStartMismatch {
                csum_start: hdr.csum_start(),
                ip_header_len: l2,
            });
        }
        let mut inner = *hdr;
        inner.set_csum_start((csum_start - l2) as u16);
        inner.set_hdr_len(hdr.hdr_len().saturating_sub(l2 as u16));
        let mut g = Self::parse_head(&inner, &frame[l2..], len.saturating_sub(l2))
            .map_err(|e| shift(e, l2, hdr))?;
        g.l2_len = l2;
        g.csum_start += l2;
        g.header_len += l2;
        g.len += l2;
        Ok(g)
    }

    /// Bytes of L2 header in front of the IP packet: 0 for a packet given to
    /// [`Self::parse`], 14 or 18 for a frame given to [`Self::parse_frame`].
    pub fn l2_len(&self) -> usize {
        self.l2_len
    }

    /// Transport and family.
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// IP version, 4 or 6.
    pub fn ip_version(&self) -> u8 {
        self.kind.ip_version()
    }
    /// Bytes of IP header, IPv6 extension headers included.
    pub fn ip_header_len(&self) -> usize {
        self.csum_start - self.l2_len
    }
    /// Bytes of headers copied in front of each segment: L2 (for a frame),
    /// IP and transport.
    pub fn header_len(&self) -> usize {
        self.header_len
    }
    /// Payload bytes per segment (the last may carry fewer).
    pub fn gso_size(&self) -> usize {
        self.gso_size
    }
    /// Payload bytes of the whole super-packet.
    pub fn payload_len(&self) -> usize {
        self.len - self.header_len
    }
    /// How many segments the split produces (at least one).
    pub fn segment_count(&self) -> usize {
        self.payload_len().div_ceil(self.gso_size).max(1)
    }
    /// The longest segment: headers (the L2 header of a frame included)
    /// plus `gso_size`, or less for short packets.
    pub fn max_segment_len(&self) -> usize {
        self.header_len + self.gso_size.min(self.payload_len())
    }

    /// Write the segments of `packet` (the same bytes given to [`Self::parse`])
    /// into `bufs[i][offset..]`, their lengths into `lens[i]`.
    ///
    /// Returns the number of segments. If `bufs` or `lens` run out, or a
    /// buffer is too short for its segment, the segments written so far are
    /// valid and [`SplitError::OutOfSpace`] says how many were not.
    pub fn split_into<B: AsMut<[u8]>>(
        &self,
        packet: &[u8],
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
    ) -> Result<usize, SplitError> {
        self.split_copying(packet, bufs, lens, offset, Sums::Complete)
    }

    /// [`Self::split_into`], with each segment's transport checksum left
    /// partial: its field holds the segment's own pseudo-header sum (with
    /// its length, folded, not complemented), as the kernel's segmentation
    /// leaves a `CHECKSUM_PARTIAL` segment (tcp_gso_segment,
    /// __udp_gso_segment), and the payload is copied without being summed.
    /// Every segment then needs [`Self::partial_hdr`] in front of it when it
    /// is written (the kernel completes the sum, or trusts it when it
    /// coalesces), or [`complete_checksum`](crate::complete_checksum) with
    /// that header to become [`Self::split_into`]'s segment byte for byte.
    /// IPv4 header checksums are complete either way.
    pub fn split_into_partial<B: AsMut<[u8]>>(
        &self,
        packet: &[u8],
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
    ) -> Result<usize, SplitError> {
        self.split_copying(packet, bufs, lens, offset, Sums::Partial)
    }

    /// The virtio header of each segment of [`Self::split_into_partial`]
    /// and [`Self::split_placed_partial`]: NEEDS_CSUM, `csum_start` at the
    /// transport header (counted from the frame start for a frame), its
    /// checksum field's offset, no GSO.
    pub fn partial_hdr(&self) -> VirtioNetHdr {
        VirtioNetHdr::new(
            HdrFlags::NEEDS_CSUM,
            GsoType::NONE,
            0,
            0,
            self.csum_start as u16,
            self.kind.csum_offset() as u16,
        )
    }

    fn split_copying<B: AsMut<[u8]>>(
        &self,
        packet: &[u8],
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
        sums: Sums,
    ) -> Result<usize, SplitError> {
        if packet.len() != self.len {
            return Err(self.length_mismatch(packet.len()));
        }
        let n = self.segment_count();
        let hl = self.header_len;
        let headers = &packet[..hl];
        let payload = &packet[hl..];
        let rw = Rewrite::new(self, headers);
        for i in 0..n {
            let seg_payload = &payload[self.payload_range(i)];
            let seg_len = hl + seg_payload.len();
            let Some(out) = out_slot(bufs, lens, i, offset, seg_len) else {
                return Err(SplitError::OutOfSpace {
                    produced: i,
                    dropped: n - i,
                });
            };
            let (out_headers, out_payload) = out.split_at_mut(hl);
            copy_words(out_headers, headers);
            // The payload sits at an even offset of the transport header.
            let mut sum = rw.fixed;
            match sums {
                Sums::Complete => sum.copy_from(out_payload, seg_payload),
                Sums::Partial => out_payload.copy_from_slice(seg_payload),
            }
            rw.finish(i, n, out_headers, seg_len, sum, sums);
        }
        Ok(n)
    }

    /// The payload of segment `i`, as a range of the super-packet's payload
    /// (its bytes behind [`Self::header_len`]).
    pub fn payload_range(&self, i: usize) -> core::ops::Range<usize> {
        let start = (i * self.gso_size).min(self.payload_len());
        start..(start + self.gso_size).min(self.payload_len())
    }

    /// Split a super-packet that was read scattered, straight into the
    /// places of its segments: `bufs[0][offset..]` holds the super-packet's
    /// headers and the first segment's payload, and `bufs[i][offset +
    /// header_len..]` the payload of segment `i` ([`Self::payload_range`]),
    /// as a `readv` into those slices leaves them. Each segment's headers
    /// are written in front of its payload (in `bufs[0]` rewritten where
    /// they are) and its checksum computed from the payload where it lies:
    /// no payload byte is copied. Lengths go to `lens[i]`.
    ///
    /// The result is byte for byte [`Self::split_into`]'s for the same
    /// super-packet. Every buffer and size must be there, with room for its
    /// segment ([`SplitError::OutOfSpace`] otherwise, before anything is
    /// written), and the headers no longer than [`MAX_PLACED_HEADER_LEN`].
    pub fn split_placed<B: AsMut<[u8]>>(
        &self,
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
    ) -> Result<usize, SplitError> {
        self.split_in_place(bufs, lens, offset, Sums::Complete)
    }

    /// [`Self::split_placed`] with partial checksums, as
    /// [`Self::split_into_partial`] leaves them: only the segments'
    /// headers are written, and no payload byte is read.
    pub fn split_placed_partial<B: AsMut<[u8]>>(
        &self,
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
    ) -> Result<usize, SplitError> {
        self.split_in_place(bufs, lens, offset, Sums::Partial)
    }

    /// Split `packet` (the same bytes given to [`Self::parse`]) without
    /// moving its payload: segment `i`'s rewritten headers go to
    /// `heads[i * header_len..(i + 1) * header_len]`, and its payload is
    /// where it lies, `packet[header_len..][Self::payload_range(i)]`, for a
    /// writer that gathers each segment from its two pieces (a
    /// [`PacketView`](crate::gro::PacketView) of the plan of views, a
    /// `sendmsg` of two slices). Each checksum is summed over the payload
    /// where it lies. Returns the number of segments; headers and payload
    /// together are [`Self::split_into`]'s segments byte for byte.
    ///
    /// `heads` must hold every segment's headers
    /// ([`SplitError::OutOfSpace`] otherwise, before anything is written).
    pub fn split_heads(&self, packet: &[u8], heads: &mut [u8]) -> Result<usize, SplitError> {
        self.split_heads_with(packet, heads, Sums::Complete)
    }

    /// [`Self::split_heads`] with partial checksums, as
    /// [`Self::split_into_partial`] leaves them (each segment then needs
    /// [`Self::partial_hdr`] when it is written): no payload byte is read.
    pub fn split_heads_partial(
        &self,
        packet: &[u8],
        heads: &mut [u8],
    ) -> Result<usize, SplitError> {
        self.split_heads_with(packet, heads, Sums::Partial)
    }

    fn split_heads_with(
        &self,
        packet: &[u8],
        heads: &mut [u8],
        sums: Sums,
    ) -> Result<usize, SplitError> {
        if packet.len() != self.len {
            return Err(self.length_mismatch(packet.len()));
        }
        let n = self.segment_count();
        let hl = self.header_len;
        if heads.len() < n.saturating_mul(hl) {
            return Err(SplitError::OutOfSpace {
                produced: 0,
                dropped: n,
            });
        }
        let (headers, payload) = packet.split_at(hl);
        let rw = Rewrite::new(self, headers);
        for (i, out) in heads.chunks_exact_mut(hl).take(n).enumerate() {
            let seg_payload = &payload[self.payload_range(i)];
            copy_words(out, headers);
            let mut sum = rw.fixed;
            if sums == Sums::Complete {
                sum.add_bytes(seg_payload);
            }
            rw.finish(i, n, out, hl + seg_payload.len(), sum, sums);
        }
        Ok(n)
    }

    fn split_in_place<B: AsMut<[u8]>>(
        &self,
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
        sums: Sums,
    ) -> Result<usize, SplitError> {
        let n = self.segment_count();
        let hl = self.header_len;
        let fits = |i: usize, b: &mut B| {
            b.as_mut().len().saturating_sub(offset) >= hl + self.payload_range(i).len()
        };
        if bufs.len() < n
            || lens.len() < n
            || hl > MAX_PLACED_HEADER_LEN
            || !bufs[..n].iter_mut().enumerate().all(|(i, b)| fits(i, b))
        {
            return Err(SplitError::OutOfSpace {
                produced: 0,
                dropped: n,
            });
        }
        // The original headers, kept while the first segment's are rewritten.
        let mut headers = [0u8; MAX_PLACED_HEADER_LEN];
        let headers = &mut headers[..hl];
        headers.copy_from_slice(&bufs[0].as_mut()[offset..offset + hl]);
        let rw = Rewrite::new(self, headers);
        for (i, (buf, size)) in bufs[..n].iter_mut().zip(&mut lens[..n]).enumerate() {
            let seg_len = hl + self.payload_range(i).len();
            let out = &mut buf.as_mut()[offset..offset + seg_len];
            let (out_headers, out_payload) = out.split_at_mut(hl);
            if i != 0 {
                copy_words(out_headers, headers);
            }
            let mut sum = rw.fixed;
            if sums == Sums::Complete {
                sum.add_bytes(out_payload);
            }
            rw.finish(i, n, out_headers, seg_len, sum, sums);
            *size = seg_len;
        }
        Ok(n)
    }

    fn length_mismatch(&self, len: usize) -> SplitError {
        SplitError::Invalid(PacketError::IpLengthMismatch {
            layer: self.kind.ip_layer(),
            claimed: self.len,
            len,
        })
    }
}

/// The longest headers (L2, IP and transport) [`GsoPacket::split_placed`]
/// takes: a tagged Ethernet header, IPv6 with 200 bytes of extension
/// headers, and TCP with the most options.
pub const MAX_PLACED_HEADER_LEN: usize = 18 + IPV6_HEADER_LEN + 200 + 60;

/// Copy headers word by word: inline moves, where a memcpy call per segment
/// costs more than the copy itself (header lengths of packets are multiples
/// of 4, so the byte tail is empty but for an Ethernet header's two bytes).
#[inline]
fn copy_words(dst: &mut [u8], src: &[u8]) {
    let mut d_words = dst.chunks_exact_mut(4);
    let mut s_words = src.chunks_exact(4);
    for (d, s) in (&mut d_words).zip(&mut s_words) {
        d.copy_from_slice(s);
    }
    for (d, s) in d_words.into_remainder().iter_mut().zip(s_words.remainder()) {
        *d = *s;
    }
}

/// What every segment of one super-packet shares, summed once: the pseudo
/// header without its length, the IPv4 header without length, ID and
/// checksum, the transport header without sequence number, flags, length
/// and checksum. Per segment only those words are added.
struct Rewrite {
    kind: Kind,
    l2: usize,
    csum_start: usize,
    gso_size: usize,
    first_id: u16,
    first_seq: u32,
    orig_flags: u8,
    data_offset: u8,
    /// Pseudo header and transport header: where each segment's sum starts.
    fixed: WideSum,
    /// The pseudo header alone (without length): a partial sum's start.
    pseudo: WideSum,
    ip_base: WideSum,
}

/// What a split leaves in each segment's transport checksum field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sums {
    /// The complete checksum, summed over the payload.
    Complete,
    /// The segment's pseudo-header sum (NEEDS_CSUM left to the writer).
    Partial,
}

impl Rewrite {
    fn new(p: &GsoPacket, headers: &[u8]) -> Self {
        let (l2, csum_start, hl) = (p.l2_len, p.csum_start, p.header_len);
        let (first_id, ip_base) = if !p.kind.is_v6() {
            let ip_headers = &headers[l2..csum_start];
            let ip = Ipv4Packet::new_unchecked(ip_headers);
            // Bytes 2..4 (length), 4..6 (ID) and 10..12 (checksum) excluded.
            // The pieces have even lengths, so they combine as if adjacent.
            let base = Checksum::of(&ip_headers[..2])
                .combine(Checksum::of(&ip_headers[6..10]))
                .combine(Checksum::of(&ip_headers[12..]));
            (ip.ident(), base)
        } else {
            (0, Checksum::ZERO)
        };
        let l4_headers = &headers[csum_start..hl];
        let (first_seq, orig_flags, l4_base) = if p.kind.is_tcp() {
            let t = TcpPacket::new_unchecked(l4_headers);
            // Bytes 4..8 (sequence), 12..14 (offset and flags) and 16..18
            // (checksum) excluded.
            let base = Checksum::of(&l4_headers[..4])
                .combine(Checksum::of(&l4_headers[8..12]))
                .combine(Checksum::of(&l4_headers[14..16]))
                .combine(Checksum::of(&l4_headers[18..]));
            (t.seq_number(), t.flags(), base)
        } else {
            // Ports only: length and checksum are per segment.
            (0, 0, Checksum::of(&l4_headers[..4]))
        };
        Self {
            kind: p.kind,
            l2,
            csum_start,
            gso_size: p.gso_size,
            first_id,
            first_seq,
            orig_flags,
            data_offset: l4_headers.get(12).copied().unwrap_or(0),
            fixed: WideSum::from_even(Checksum::from_folded(p.pseudo).combine(l4_base)),
            pseudo: WideSum::from_even(Checksum::from_folded(p.pseudo)),
            ip_base: WideSum::from_even(ip_base),
        }
    }

    /// Write segment `i`'s own fields (of `n`) into its copy of the headers
    /// (`seg_len` bytes of segment in all), `sum` being its payload's sum
    /// on top of [`Self::fixed`] (unused with [`Sums::Partial`], whose
    /// field gets the segment's pseudo-header sum).
    #[inline]
    fn finish(
        &self,
        i: usize,
        n: usize,
        out_headers: &mut [u8],
        seg_len: usize,
        mut sum: WideSum,
        sums: Sums,
    ) {
        let (l2, csum_start) = (self.l2, self.csum_start);
        let ip_len = seg_len - l2;
        if !self.kind.is_v6() {
            let id = self.first_id.wrapping_add(i as u16);
            let mut c = self.ip_base;
            c.add_be16(ip_len as u16);
            c.add_be16(id);
            let mut ip = Ipv4Packet::new_unchecked(&mut out_headers[l2..csum_start]);
            ip.set_total_len(ip_len as u16);
            ip.set_ident(id);
            ip.set_checksum(c.checksum().finish());
        } else {
            Ipv6Packet::new_unchecked(&mut out_headers[l2..])
                .set_payload_len((ip_len - IPV6_HEADER_LEN) as u16);
        }
        let l4_len = (seg_len - csum_start) as u16;
        sum.add_be16(l4_len);
        let mut partial = self.pseudo;
        partial.add_be16(l4_len);
        let partial = partial.checksum().fold();
        let l4 = &mut out_headers[csum_start..];
        if self.kind.is_tcp() {
            // sequence = first + i * gso_size, in 32-bit wrapping arithmetic.
            let seq = self
                .first_seq
                .wrapping_add((i as u32).wrapping_mul(self.gso_size as u32));
            let mut flags = self.orig_flags;
            if i + 1 != n {
                flags &= !(tcp_flags::FIN | tcp_flags::PSH);
            }
            if i != 0 {
                flags &= !tcp_flags::CWR;
            }
            let mut t = TcpPacket::new_unchecked(&mut *l4);
            t.set_seq_number(seq);
            t.set_flags(flags);
            if sums == Sums::Partial {
                t.set_checksum(partial);
                return;
            }
            sum.add_be32(seq);
            sum.add_be16(u16::from_be_bytes([self.data_offset, flags]));
            t.set_checksum(sum.checksum().finish());
        } else {
            let mut u = UdpPacket::new_unchecked(&mut *l4);
            u.set_len(l4_len);
            if sums == Sums::Partial {
                u.set_checksum(partial);
                return;
            }
            sum.add_be16(l4_len);
            u.set_checksum(sum.checksum().finish_udp());
        }
    }
}

/// The output region for segment `i`: `len` bytes at `offset` of `bufs[i]`,
/// with `lens[i]` set; `None` when the buffers, the lens or the buffer's
/// length run out.
fn out_slot<'a, B: AsMut<[u8]>>(
    bufs: &'a mut [B],
    lens: &mut [usize],
    i: usize,
    offset: usize,
    len: usize,
) -> Option<&'a mut [u8]> {
    let out = bufs
        .get_mut(i)?
        .as_mut()
        .get_mut(offset..)?
        .get_mut(..len)?;
    *lens.get_mut(i)? = len;
    Some(out)
}

/// Turn one TUN read (header decoded, `packet` behind it) into complete IP
/// packets in `bufs[i][offset..]`, lengths in `lens[i]`.
///
/// - GSO_NONE: the packet is copied into `bufs[0]` and a partial checksum
///   completed (use [`complete_checksum`](crate::complete_checksum) instead to do it in place).
/// - TCPV4, TCPV6, UDP_L4: split into segments of `gso_size` payload bytes
///   with their own IP lengths, IPv4 IDs and header checksums, TCP sequence
///   numbers (FIN/PSH only on the last segment, CWR only on the first), UDP
///   lengths, and full transport checksums.
///
/// ```
/// use tun_offload::{split, VirtioNetHdr};
/// // A plain 20-byte IPv4 packet with nothing pending.
/// let mut pkt = [0u8; 20];
/// pkt[0] = 0x45;
/// pkt[3] = 20;
/// let mut bufs = [[0u8; 64]; 4];
/// let mut lens = [0usize; 4];
/// let n = split(&VirtioNetHdr::ZERO, &pkt, &mut bufs, &mut lens, 8).unwrap();
/// assert_eq!((n, lens[0]), (1, 20));
/// assert_eq!(&bufs[0][8..28], &pkt);
/// ```
pub fn split<B: AsMut<[u8]>>(
    hdr: &VirtioNetHdr,
    packet: &[u8],
    bufs: &mut [B],
    lens: &mut [usize],
    offset: usize,
) -> Result<usize, SplitError> {
    if hdr.gso_type() == GsoType::NONE {
        return copy_one(hdr, packet, bufs, lens, offset);
    }
    GsoPacket::parse(hdr, packet)?.split_into(packet, bufs, lens, offset)
}

/// [`split`] for one read from a TAP device: an Ethernet `frame` whose
/// virtio header counts `csum_start` from the frame start (see the module
/// docs). Each segment is a frame: a copy of the frame's L2 header
/// (Ethernet II or 802.1Q-tagged) in front of its IP packet, its length in
/// `lens[i]`. A frame without GSO, IP or not (ARP and the like), is copied
/// as it is and a partial checksum completed.
///
/// ```
/// use tun_offload::{split_frame, VirtioNetHdr};
/// // An ARP frame: passed through as it is.
/// let mut arp = [0u8; 42];
/// arp[12..14].copy_from_slice(&[0x08, 0x06]);
/// let mut bufs = [[0u8; 64]; 2];
/// let mut lens = [0usize; 2];
/// let n = split_frame(&VirtioNetHdr::ZERO, &arp, &mut bufs, &mut lens, 0).unwrap();
/// assert_eq!((n, &bufs[0][..lens[0]]), (1, &arp[..]));
/// ```
pub fn split_frame<B: AsMut<[u8]>>(
    hdr: &VirtioNetHdr,
    frame: &[u8],
    bufs: &mut [B],
    lens: &mut [usize],
    offset: usize,
) -> Result<usize, SplitError> {
    if hdr.gso_type() == GsoType::NONE {
        return copy_one(hdr, frame, bufs, lens, offset);
    }
    GsoPacket::parse_frame(hdr, frame)?.split_into(frame, bufs, lens, offset)
}

/// A packet (or frame) without GSO: copied into `bufs[0]`, its partial
/// checksum completed there.
fn copy_one<B: AsMut<[u8]>>(
    hdr: &VirtioNetHdr,
    packet: &[u8],
    bufs: &mut [B],
    lens: &mut [usize],
    offset: usize,
) -> Result<usize, SplitError> {
    let Some(out) = out_slot(bufs, lens, 0, offset, packet.len()) else {
        return Err(SplitError::OutOfSpace {
            produced: 0,
            dropped: 1,
        });
    };
    out.copy_from_slice(packet);
    complete_checksum(hdr, out)?;
    Ok(1)
}

/// An error of the IP packet behind an `l2`-byte L2 header, its offsets
/// and lengths counted from the frame start again (`hdr`: the frame's
/// header, as given).
pub(crate) fn shift(e: PacketError, l2: usize, hdr: &VirtioNetHdr) -> PacketError {
    match e {
        PacketError::Truncated {
            layer,
            required,
            len,
        } => PacketError::Truncated {
            layer,
            required: required + l2,
            len: len + l2,
        },
        PacketError::IpLengthMismatch {
            layer,
            claimed,
            len,
        } => PacketError::IpLengthMismatch {
            layer,
            claimed: claimed + l2,
            len: len + l2,
        },
        PacketError::CsumStartMismatch { ip_header_len, .. } => PacketError::CsumStartMismatch {
            csum_start: hdr.csum_start(),
            ip_header_len: ip_header_len + l2,
        },
        PacketError::CsumOutOfRange {
            csum_offset, len, ..
        } => PacketError::CsumOutOfRange {
            csum_start: hdr.csum_start(),
            csum_offset,
            len: len + l2,
        },
        PacketError::SegmentTooLong { len } => PacketError::SegmentTooLong { len: len + l2 },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn display_of_split_errors() {
        assert_eq!(
            SplitError::Invalid(PacketError::ZeroGsoSize).to_string(),
            "invalid GSO packet: gso_size is zero on a GSO packet"
        );
        assert_eq!(
            SplitError::OutOfSpace {
                produced: 4,
                dropped: 6
            }
            .to_string(),
            "out of output space: 4 segments produced, 6 dropped"
        );
    }
}
