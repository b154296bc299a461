//! Transmit path for UDP-tunnel offload: coalesce consecutive outer
//! datagrams of one tunnel flow (VXLAN or Geneve) into one tunnel
//! super-packet with its 24-byte [`VirtioNetHdrV1HashTunnel`], the inverse
//! of [`crate::TunnelGsoPacket`]'s split.
//!
//! # What merges
//!
//! A run starts at `packets[0]` and takes the packets behind it while each
//! one:
//!
//! - is a tunnel datagram: outer IPv4 without options and not a fragment,
//!   or IPv6 without extension headers, carrying UDP; behind it a VXLAN
//!   header (I flag set) or a Geneve header (version 0, no OAM bit,
//!   protocol 0x6558: Ethernet), an untagged inner Ethernet header and an
//!   inner IPv4 or IPv6 packet the plain coalescing would take
//!   ([`crate::gro::classify`]);
//! - has byte for byte the first datagram's headers up to the inner IP
//!   header (outer L2, outer IP, outer UDP ports, the tunnel header with
//!   its VNI and options, the inner Ethernet header), except the outer
//!   lengths, IPv4 ID, and checksums, as the kernel's GRO compares them
//!   (net/ipv4/udp_offload.c udp_gro_receive, drivers/net/vxlan and
//!   geneve_gro_receive compare the tunnel header whole);
//! - has an outer IPv4 ID one more than the datagram before (what a
//!   segmentation that increments IDs, net/ipv4/af_inet.c
//!   `inet_gso_segment`, produces and so what its split restores);
//! - has an outer UDP checksum that verifies, zero in all datagrams or in
//!   none (non-zero only with `outer_csum`, the
//!   `TUN_F_UDP_TUNNEL_GSO_CSUM` grant);
//! - has an inner packet of the same inner flow (addresses, ports, the IP
//!   fields [`crate::gro::ip_headers_match`] compares, TCP headers
//!   [`crate::gro::tcp_headers_match`]) that the plain rules append
//!   ([`crate::gro::tcp_merge`] / [`crate::gro::udp_merge`]), with an inner
//!   IPv4 ID one more than the one before, and an inner transport checksum
//!   that verifies;
//! - keeps the result within 65535 bytes of outer IP and UDP length, and a
//!   UDP run within [`crate::gro::UDP_MAX_SEGMENTS`].
//!
//! Only consecutive datagrams are merged and only by appending: a flow
//! interleaved with another in the batch makes several runs. That is what
//! a relay sees from one tunnel socket; the plain [`crate::GroTable`]
//! handles interleaving for plain packets.
//!
//! # Output
//!
//! The super-packet is what [`crate::TunnelGsoPacket::parse`] accepts and
//! what drivers/net/tun.c takes: the first datagram's headers with the
//! outer and inner lengths, the outer IPv4 and inner IPv4 header checksums
//! recomputed, PSH of the last TCP segment, the inner transport checksum
//! field holding the inner pseudo-header sum (NEEDS_CSUM, `csum_start` at
//! the inner transport header), the outer UDP checksum field the outer
//! pseudo-header sum with UDP_TUNNEL_CSUM or zero without. A run of one is
//! copied as it is with a header that asks for nothing.
//!
//! Write such super-packets to a TAP device: a TUN device refuses most of
//! them (see [`crate::TunnelGsoPacket`] on `virtio_net_hdr_tnl_to_skb`'s
//! outer offset minimum).

use core::fmt;

use crate::checksum::{self, Checksum};
use crate::gro::{self, Merge, Refusal, Run};
use crate::kind::Kind;
use crate::virtio::{GsoType, HdrFlags, VirtioNetHdr, VirtioNetHdrV1HashTunnel};
use crate::wire::{
    IPV4_MIN_HEADER_LEN, IPV6_HEADER_LEN, IpPacket, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket,
    UDP_HEADER_LEN, UdpPacket, tcp_flags,
};

/// The tunnel protocol whose header sits behind the outer UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelProto {
    /// VXLAN (RFC 7348): 8 bytes.
    Vxlan,
    /// Geneve (RFC 8926): 8 bytes plus options.
    Geneve,
}

/// How [`coalesce_tunnel`] reads its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelCoalesce {
    /// The tunnel header behind the outer UDP header.
    pub proto: TunnelProto,
    /// Packets are TAP frames (an Ethernet header in front of the outer IP).
    pub frames: bool,
    /// Inner UDP datagrams may merge (USO was granted).
    pub udp_gro: bool,
    /// Outer UDP checksums may be left to the kernel
    /// (`TUN_F_UDP_TUNNEL_GSO_CSUM` granted): datagrams with one merge, and
    /// the super-packet says UDP_TUNNEL_CSUM.
    pub outer_csum: bool,
}

/// Why a datagram does not start or join a tunnel run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TunnelRefusal {
    /// Not outer IPv4 (no options, no fragment) or IPv6 (no extension
    /// headers) carrying UDP, or too short for it.
    OuterHeader,
    /// No valid VXLAN/Geneve header with an untagged inner Ethernet header
    /// of IPv4 or IPv6 behind it.
    TunnelHeader,
    /// The inner packet is not one the plain coalescing takes.
    Inner(Refusal),
    /// A checksum (outer UDP or inner transport) does not verify, or the
    /// outer UDP checksum is non-zero without `outer_csum`.
    BadChecksum,
    /// The headers up to the inner IP header differ from the run's.
    HeadersDiffer,
    /// The inner packet belongs to another flow or its headers differ.
    FlowDiffers,
    /// An outer or inner IPv4 ID does not follow the one before.
    IdNotIncrementing,
    /// The zero/non-zero outer UDP checksum differs from the run's.
    OuterChecksumMode,
    /// The plain rules do not append it (sequence, size, PSH, segments).
    NotAppendable,
    /// The merged packet would exceed 65535 bytes of outer length.
    TooLong,
    /// `out` has no room for the run's first datagram (as an error) or for
    /// the next one's payload (as [`TunnelRun::ended_by`]).
    OutOfSpace,
}

impl fmt::Display for TunnelRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TunnelRefusal::OuterHeader => {
                f.write_str("not an outer IPv4/IPv6 UDP datagram without options")
            }
            TunnelRefusal::TunnelHeader => {
                f.write_str("no valid VXLAN/Geneve header and inner Ethernet IP frame")
            }
            TunnelRefusal::Inner(r) => write!(f, "inner packet refused: {r:?}"),
            TunnelRefusal::BadChecksum => f.write_str("a checksum does not verify"),
            TunnelRefusal::HeadersDiffer => f.write_str("outer or tunnel headers differ"),
            TunnelRefusal::FlowDiffers => f.write_str("inner flow or headers differ"),
            TunnelRefusal::IdNotIncrementing => f.write_str("IPv4 ID does not increment"),
            TunnelRefusal::OuterChecksumMode => {
                f.write_str("outer UDP checksum present in some datagrams only")
            }
            TunnelRefusal::NotAppendable => f.write_str("the plain merge rules refuse it"),
            TunnelRefusal::TooLong => f.write_str("merged packet would exceed 65535 bytes"),
            TunnelRefusal::OutOfSpace => f.write_str("no room in the output buffer"),
        }
    }
}

impl core::error::Error for TunnelRefusal {}

/// One coalesced run: the first `count` packets of the batch, now `len`
/// bytes at the start of `out` behind `hdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelRun {
    /// Packets consumed from the front of the batch (at least one).
    pub count: usize,
    /// Bytes written to `out`.
    pub len: usize,
    /// The 24-byte header to write in front (all zero for a run of one).
    pub hdr: VirtioNetHdrV1HashTunnel,
    /// Why the run stopped before the end of the batch (`None`: it took
    /// every packet; [`TunnelRefusal::OutOfSpace`]: `out` would not hold
    /// the next).
    pub ended_by: Option<TunnelRefusal>,
}

/// A tunnel datagram as the run sees it.
#[derive(Debug, Clone, Copy)]
struct Datagram {
    outer_nh: usize,
    outer_v6: bool,
    outer_th: usize,
    inner_nh: usize,
    outer_id: u16,
    outer_csum: bool,
    cand: gro::Candidate,
}

impl Datagram {
    fn parse(p: &[u8], cfg: &TunnelCoalesce) -> Result<Self, TunnelRefusal> {
        let outer_nh = if cfg.frames {
            crate::frame::ip_offset(p).ok_or(TunnelRefusal::OuterHeader)?
        } else {
            0
        };
        let ip_bytes = &p[outer_nh..];
        let ip = IpPacket::new_checked(ip_bytes).map_err(|_| TunnelRefusal::OuterHeader)?;
        let (outer_v6, ip_hl, outer_id) = match ip {
            IpPacket::V4(ip) => {
                if ip.header_len() != IPV4_MIN_HEADER_LEN
                    || ip.protocol() != IpProtocol::UDP
                    || ip.flags_frag() & !Ipv4Packet::<&[u8]>::DF != 0
                    || usize::from(ip.total_len()) != ip_bytes.len()
                    || checksum::ipv4_header(&ip_bytes[..IPV4_MIN_HEADER_LEN]) != 0
                {
                    return Err(TunnelRefusal::OuterHeader);
                }
                (false, IPV4_MIN_HEADER_LEN, ip.ident())
            }
            IpPacket::V6(ip) => {
                if ip.next_header() != IpProtocol::UDP
                    || usize::from(ip.payload_len()) + IPV6_HEADER_LEN != ip_bytes.len()
                {
                    return Err(TunnelRefusal::OuterHeader);
                }
                (true, IPV6_HEADER_LEN, 0)
            }
        };
        let outer_th = outer_nh + ip_hl;
        let udp = UdpPacket::new_checked(&p[outer_th..]).map_err(|_| TunnelRefusal::OuterHeader)?;
        if usize::from(udp.len()) != p.len() - outer_th {
            return Err(TunnelRefusal::OuterHeader);
        }
        let outer_csum = udp.checksum() != 0;
        if outer_csum {
            if !cfg.outer_csum {
                return Err(TunnelRefusal::BadChecksum);
            }
            if transport_sum(&p[outer_nh..], outer_v6, IpProtocol::UDP, ip_hl) != 0xffff {
                return Err(TunnelRefusal::BadChecksum);
            }
        }
        let tnl = outer_th + UDP_HEADER_LEN;
        let tunnel_len = match cfg.proto {
            TunnelProto::Vxlan => match p.get(tnl) {
                Some(f) if f & 0x08 != 0 => 8,
                _ => return Err(TunnelRefusal::TunnelHeader),
            },
            TunnelProto::Geneve => match p.get(tnl..tnl + 4) {
                Some(&[ver_opt, flags, 0x65, 0x58]) if ver_opt >> 6 == 0 && flags & 0x80 == 0 => {
                    8 + usize::from(ver_opt & 0x3f) * 4
                }
                _ => return Err(TunnelRefusal::TunnelHeader),
            },
        };
        let inner_nh = tnl + tunnel_len + crate::frame::ETHERNET_HEADER_LEN;
        let ether_type = p
            .get(inner_nh - 2..inner_nh)
            .map(|b| u16::from_be_bytes([b[0], b[1]]));
        let inner_v6 = match ether_type {
            Some(crate::frame::ETHERTYPE_IPV4) => false,
            Some(crate::frame::ETHERTYPE_IPV6) => true,
            _ => return Err(TunnelRefusal::TunnelHeader),
        };
        let inner = &p[inner_nh..];
        let cand = gro::classify(inner, cfg.udp_gro).map_err(TunnelRefusal::Inner)?;
        if cand.kind.is_v6() != inner_v6 {
            return Err(TunnelRefusal::TunnelHeader);
        }
        if transport_sum(inner, inner_v6, cand.kind.protocol(), cand.ip_header_len) != 0xffff {
            return Err(TunnelRefusal::BadChecksum);
        }
        Ok(Self {
            outer_nh,
            outer_v6,
            outer_th,
            inner_nh,
            outer_id,
            outer_csum,
            cand,
        })
    }

    fn headers_len(&self) -> usize {
        self.inner_nh + self.cand.header_len()
    }
}

/// The folded sum of the pseudo header and the transport part of the IP
/// packet `ip` (0xffff when its checksum verifies).
fn transport_sum(ip: &[u8], v6: bool, proto: IpProtocol, ip_hl: usize) -> u16 {
    let l4 = &ip[ip_hl..];
    let pseudo = if v6 {
        let h = Ipv6Packet::new_unchecked(ip);
        checksum::pseudo_header_v6(h.src_addr(), h.dst_addr(), proto.0, l4.len() as u32)
    } else {
        let h = Ipv4Packet::new_unchecked(ip);
        checksum::pseudo_header_v4(h.src_addr(), h.dst_addr(), proto.0, l4.len() as u16)
    };
    pseudo.combine(Checksum::of(l4)).fold()
}

/// Whether two datagrams' bytes up to the inner IP header agree but for
/// the outer lengths, IPv4 ID and checksums.
fn outer_headers_match(a: &[u8], b: &[u8], d: &Datagram) -> bool {
    let (nh, th, end) = (d.outer_nh, d.outer_th, d.inner_nh);
    let (Some(a), Some(b)) = (a.get(..end), b.get(..end)) else {
        return false;
    };
    let ip_ok = if d.outer_v6 {
        // Bytes 4..6: payload length.
        a[nh..nh + 4] == b[nh..nh + 4] && a[nh + 6..th] == b[nh + 6..th]
    } else {
        // Bytes 2..6: total length and ID; 10..12: checksum.
        a[nh..nh + 2] == b[nh..nh + 2]
            && a[nh + 6..nh + 10] == b[nh + 6..nh + 10]
            && a[nh + 12..th] == b[nh + 12..th]
    };
    // UDP: ports compared, length and checksum not.
    a[..nh] == b[..nh] && ip_ok && a[th..th + 4] == b[th..th + 4] && a[th + 8..] == b[th + 8..]
}

/// Whether two inner packets (`a`, `b`: the IP packets) are of one flow
/// whose headers a merge keeps: addresses, ports, the IP fields the plain
/// rules compare and, for TCP, the TCP header but for sequence, flags
/// CWR/FIN/PSH and checksum.
fn inner_flow_matches(a: &[u8], b: &[u8], c: &gro::Candidate) -> bool {
    let v6 = c.kind.is_v6();
    let addrs = if v6 { 8..40 } else { 12..20 };
    let hl = c.ip_header_len;
    if a.get(addrs.clone()) != b.get(addrs) || !gro::ip_headers_match(a, b, v6) {
        return false;
    }
    if c.kind.is_tcp() {
        gro::tcp_headers_match(&a[hl..], &b[hl..]) && a[hl..hl + 4] == b[hl..hl + 4]
    } else {
        a[hl..hl + 4] == b[hl..hl + 4]
    }
}

/// Coalesce the tunnel datagrams at the front of `packets` into `out`:
/// see the module docs for what merges. `Err` when `packets[0]` cannot
/// start a run (write it as it is) or `out` cannot hold it; otherwise the
/// run, of at least one packet. Nothing is allocated.
pub fn coalesce_tunnel<P: AsRef<[u8]>>(
    cfg: &TunnelCoalesce,
    packets: &[P],
    out: &mut [u8],
) -> Result<TunnelRun, TunnelRefusal> {
    let Some(first) = packets.first().map(AsRef::as_ref) else {
        return Err(TunnelRefusal::OuterHeader);
    };
    let d = Datagram::parse(first, cfg)?;
    let Some(dst) = out.get_mut(..first.len()) else {
        return Err(TunnelRefusal::OutOfSpace);
    };
    dst.copy_from_slice(first);
    let hl = d.headers_len();
    let mut run = Run {
        seq: d.cand.seq,
        payload_len: d.cand.payload_len,
        gso_size: d.cand.payload_len,
        merged: 0,
        psh: d.cand.psh,
        closed: false,
    };
    let mut len = first.len();
    let mut ended_by = None;
    let (mut outer_id, mut inner_id) = (d.outer_id, inner_ipv4_id(first, &d));
    let mut last_flags = tcp_flag_byte(first, &d);
    for p in packets[1..].iter().map(AsRef::as_ref) {
        let joined = Datagram::parse(p, cfg).and_then(|n| {
            joins(
                first,
                p,
                &d,
                &n,
                &run,
                &Tail {
                    len,
                    outer_id,
                    inner_id,
                },
            )
            .map(|()| n)
        });
        let n = match joined {
            Ok(n) => n,
            Err(e) => {
                ended_by = Some(e);
                break;
            }
        };
        let payload = &p[n.headers_len()..];
        let Some(dst) = out.get_mut(len..len + payload.len()) else {
            ended_by = Some(TunnelRefusal::OutOfSpace);
            break;
        };
        dst.copy_from_slice(payload);
        len += payload.len();
        if payload.len() < run.gso_size {
            run.closed = true;
        }
        run.psh |= n.cand.psh;
        run.payload_len += payload.len();
        run.merged += 1;
        outer_id = n.outer_id;
        inner_id = inner_ipv4_id(p, &n);
        last_flags = tcp_flag_byte(p, &n);
    }
    let count = run.merged + 1;
    if count == 1 {
        return Ok(TunnelRun {
            count,
            len,
            hdr: VirtioNetHdrV1HashTunnel::plain(VirtioNetHdr::ZERO),
            ended_by,
        });
    }
    Ok(TunnelRun {
        count,
        len,
        hdr: finish_merged(&mut out[..len], &d, hl, run.gso_size, last_flags),
        ended_by,
    })
}

/// Whether datagram `n` (bytes `p`) appends to the run that `first` (parsed
/// as `d`) began, `len` bytes so far; `outer_id` and `inner_id` are those
/// of the run's last datagram.
fn joins(
    first: &[u8],
    p: &[u8],
    d: &Datagram,
    n: &Datagram,
    run: &Run,
    tail: &Tail,
) -> Result<(), TunnelRefusal> {
    let Tail {
        len,
        outer_id,
        inner_id,
    } = *tail;
    if n.outer_nh != d.outer_nh
        || n.outer_v6 != d.outer_v6
        || n.inner_nh != d.inner_nh
        || !outer_headers_match(first, p, d)
    {
        return Err(TunnelRefusal::HeadersDiffer);
    }
    if n.outer_csum != d.outer_csum {
        return Err(TunnelRefusal::OuterChecksumMode);
    }
    if n.cand.kind != d.cand.kind
        || n.cand.header_len() != d.cand.header_len()
        || !inner_flow_matches(&first[d.inner_nh..], &p[n.inner_nh..], &d.cand)
    {
        return Err(TunnelRefusal::FlowDiffers);
    }
    if (!d.outer_v6 && n.outer_id != outer_id.wrapping_add(1))
        || (!d.cand.kind.is_v6() && inner_ipv4_id(p, n) != inner_id.wrapping_add(1))
    {
        return Err(TunnelRefusal::IdNotIncrementing);
    }
    let ok = if d.cand.kind.is_tcp() {
        gro::tcp_merge(run, n.cand.seq, n.cand.payload_len, n.cand.psh) == Some(Merge::Append)
    } else {
        gro::udp_merge(run, n.cand.payload_len) && run.merged + 1 < gro::UDP_MAX_SEGMENTS
    };
    if !ok {
        return Err(TunnelRefusal::NotAppendable);
    }
    let merged_len = len + n.cand.payload_len;
    let outer_ip_len = merged_len - d.outer_nh - if d.outer_v6 { IPV6_HEADER_LEN } else { 0 };
    if outer_ip_len > 0xffff || merged_len - d.outer_th > 0xffff {
        return Err(TunnelRefusal::TooLong);
    }
    Ok(())
}

/// What a run's next datagram is compared with: the bytes so far and the
/// IPv4 IDs of its last datagram.
#[derive(Clone, Copy)]
struct Tail {
    len: usize,
    outer_id: u16,
    inner_id: u16,
}

fn inner_ipv4_id(p: &[u8], d: &Datagram) -> u16 {
    if d.cand.kind.is_v6() {
        0
    } else {
        Ipv4Packet::new_unchecked(&p[d.inner_nh..]).ident()
    }
}

fn tcp_flag_byte(p: &[u8], d: &Datagram) -> u8 {
    if d.cand.kind.is_tcp() {
        TcpPacket::new_unchecked(&p[d.inner_nh + d.cand.ip_header_len..]).flags()
    } else {
        0
    }
}

/// Rewrite the first datagram's headers at the front of `pkt` (the whole
/// merged packet) for the super-packet and build its header.
fn finish_merged(
    pkt: &mut [u8],
    d: &Datagram,
    hl: usize,
    gso_size: usize,
    last_flags: u8,
) -> VirtioNetHdrV1HashTunnel {
    let (nh, th, inh) = (d.outer_nh, d.outer_th, d.inner_nh);
    let len = pkt.len();
    // Outer IP and UDP.
    if d.outer_v6 {
        Ipv6Packet::new_unchecked(&mut pkt[nh..]).set_payload_len((len - th) as u16);
    } else {
        let mut ip = Ipv4Packet::new_unchecked(&mut pkt[nh..th]);
        ip.set_total_len((len - nh) as u16);
        ip.set_checksum(0);
        let c = checksum::ipv4_header(&pkt[nh..th]);
        Ipv4Packet::new_unchecked(&mut pkt[nh..th]).set_checksum(c);
    }
    let udp_len = len - th;
    let outer_pseudo = if d.outer_csum {
        pseudo_of(&pkt[nh..], d.outer_v6, IpProtocol::UDP, udp_len)
    } else {
        0
    };
    let mut u = UdpPacket::new_unchecked(&mut pkt[th..]);
    u.set_len(udp_len as u16);
    u.set_checksum(outer_pseudo);
    // Inner IP and transport.
    let kind: Kind = d.cand.kind;
    let ihl = d.cand.ip_header_len;
    let inner_len = len - inh;
    if kind.is_v6() {
        Ipv6Packet::new_unchecked(&mut pkt[inh..]).set_payload_len((inner_len - ihl) as u16);
    } else {
        let mut ip = Ipv4Packet::new_unchecked(&mut pkt[inh..inh + ihl]);
        ip.set_total_len(inner_len as u16);
        ip.set_checksum(0);
        let c = checksum::ipv4_header(&pkt[inh..inh + ihl]);
        Ipv4Packet::new_unchecked(&mut pkt[inh..inh + ihl]).set_checksum(c);
    }
    let l4_len = inner_len - ihl;
    let inner_pseudo = pseudo_of(&pkt[inh..], kind.is_v6(), kind.protocol(), l4_len);
    let l4 = &mut pkt[inh + ihl..];
    if kind.is_tcp() {
        let mut t = TcpPacket::new_unchecked(&mut *l4);
        let first_flags = t.flags();
        let keep = tcp_flags::PSH | tcp_flags::FIN;
        t.set_flags((first_flags & !keep) | (last_flags & keep));
        t.set_checksum(inner_pseudo);
    } else {
        let mut u = UdpPacket::new_unchecked(&mut *l4);
        u.set_len(l4_len as u16);
        u.set_checksum(inner_pseudo);
    }
    let tunnel_bit = if d.outer_v6 {
        GsoType::UDP_TUNNEL_IPV6
    } else {
        GsoType::UDP_TUNNEL_IPV4
    };
    let mut flags = HdrFlags::NEEDS_CSUM.0;
    if d.outer_csum {
        flags |= HdrFlags::UDP_TUNNEL_CSUM.0;
    }
    let hdr = VirtioNetHdr::new(
        HdrFlags(flags),
        GsoType(kind.gso_type().0 | tunnel_bit),
        hl as u16,
        gso_size as u16,
        (inh + ihl) as u16,
        kind.csum_offset() as u16,
    );
    VirtioNetHdrV1HashTunnel::new(hdr, th as u16, inh as u16)
}

/// The folded pseudo-header sum (not complemented: what a NEEDS_CSUM field
/// holds) of the IP packet `ip` for `l4_len` bytes of `proto`.
fn pseudo_of(ip: &[u8], v6: bool, proto: IpProtocol, l4_len: usize) -> u16 {
    if v6 {
        let h = Ipv6Packet::new_unchecked(ip);
        checksum::pseudo_header_v6(h.src_addr(), h.dst_addr(), proto.0, l4_len as u32).fold()
    } else {
        let h = Ipv4Packet::new_unchecked(ip);
        checksum::pseudo_header_v4(h.src_addr(), h.dst_addr(), proto.0, l4_len as u16).fold()
    }
}
