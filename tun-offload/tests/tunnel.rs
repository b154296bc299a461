//! Receive path for UDP-tunnel super-packets: generated VXLAN and Geneve
//! super-packets (IPv4/IPv6 outside and inside, TCP and UDP inside, with
//! and without the outer UDP checksum, TUN packets and TAP frames) split
//! into datagrams that an independent checker verifies (etherparse for the
//! IP and transport layers, this file's own decoder for the tunnel header),
//! and every malformed header refused with its typed error; and the
//! coalescing of those datagrams back into the super-packet (a round trip),
//! refusing datagrams of other flows or with other headers.

mod common;

use common::tunnel::{Tunnel, ether_type_of, outer_l2, tunnel_super};
use common::{Ip, add16, as_super, naive_pseudo, naive_sum, tcp, udp, verify};
use etherparse::{Ipv4Header, Ipv6Header, UdpHeader};
use proptest::prelude::*;
use tun_offload::{
    GsoType, HdrFlags, Layer, PacketError, SplitError, TunnelCoalesce, TunnelError,
    TunnelGsoPacket, TunnelProto, TunnelRefusal, TunnelSplitError, VirtioNetHdr,
    VirtioNetHdrV1HashTunnel, coalesce_tunnel, split, split_tunnel,
};

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
/// Split and return the datagrams.
fn split_all(hdr: &VirtioNetHdrV1HashTunnel, packet: &[u8], tap: bool) -> Vec<Vec<u8>> {
    let (n, size) = if hdr.hdr.gso_type().udp_tunnel() == 0 {
        (1, packet.len())
    } else {
        let p = if tap {
            TunnelGsoPacket::parse_frame(hdr, packet)
        } else {
            TunnelGsoPacket::parse(hdr, packet)
        }
        .expect("parse");
        (p.segment_count(), p.max_segment_len())
    };
    let (mut b, mut s) = (vec![vec![0u8; size + 4]; n], vec![0usize; n]);
    let got = split_tunnel(hdr, packet, tap, &mut b, &mut s, 4).expect("split");
    (0..got).map(|i| b[i][4..4 + s[i]].to_vec()).collect()
}

/// What the independent checker read from one outer datagram.
struct Outer {
    ip_id: u16,
    udp_checksum: u16,
    vni: u32,
    inner: Vec<u8>,
}

/// Verify one outer datagram independently: the outer L2 header (TAP) as
/// sent, the outer IP lengths and IPv4 header checksum, the outer UDP
/// length and checksum (computed over the pseudo header and everything
/// behind it when `csum`, zero otherwise), the tunnel header and inner
/// Ethernet header; returns the inner IP packet.
fn verify_outer(seg: &[u8], outer: &Ip, csum: bool, l2: &[u8]) -> Outer {
    assert_eq!(&seg[..l2.len()], l2, "outer L2 header copied");
    let ip = &seg[l2.len()..];
    let (ip_hl, ip_id) = if outer.is_v4() {
        let (h, _) = Ipv4Header::from_slice(ip).expect("outer IPv4 parses");
        assert_eq!(
            usize::from(h.total_len),
            ip.len(),
            "outer IPv4 total length"
        );
        assert_eq!(
            h.calc_header_checksum(),
            h.header_checksum,
            "outer IPv4 checksum"
        );
        assert_eq!(h.time_to_live, outer.ttl);
        assert_eq!(h.dont_fragment, outer.df);
        assert_eq!(h.protocol.0, 17);
        (h.header_len(), h.identification)
    } else {
        let (h, _) = Ipv6Header::from_slice(ip).expect("outer IPv6 parses");
        assert_eq!(
            usize::from(h.payload_length) + 40,
            ip.len(),
            "outer IPv6 length"
        );
        assert_eq!(h.flow_label.value(), outer.flow_label);
        assert_eq!(h.next_header.0, 17);
        (40, 0)
    };
    let l4 = &ip[ip_hl..];
    let (u, payload) = UdpHeader::from_slice(l4).expect("outer UDP parses");
    assert_eq!(usize::from(u.length), l4.len(), "outer UDP length");
    if csum {
        let want = match (outer.src, outer.dst) {
            (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => u
                .calc_checksum_ipv4_raw(s.octets(), d.octets(), payload)
                .unwrap(),
            (std::net::IpAddr::V6(s), std::net::IpAddr::V6(d)) => u
                .calc_checksum_ipv6_raw(s.octets(), d.octets(), payload)
                .unwrap(),
            _ => unreachable!(),
        };
        assert_eq!(u.checksum, want, "outer UDP checksum (etherparse)");
        assert_eq!(
            add16(
                naive_pseudo(outer.src, outer.dst, 17, l4.len()),
                naive_sum(l4)
            ),
            0xffff,
            "outer UDP checksum (naive)"
        );
    } else {
        assert_eq!(
            u.checksum, 0,
            "no outer UDP checksum without UDP_TUNNEL_CSUM"
        );
    }
    let (vni, ether_type, inner_at) = Tunnel::decode(u.destination_port, payload);
    let inner = payload[inner_at..].to_vec();
    assert_eq!(ether_type, ether_type_of(&inner), "inner EtherType");
    Outer {
        ip_id,
        udp_checksum: u.checksum,
        vni,
        inner,
    }
}

fn v4(a: u8) -> Ip {
    Ip::v4([192, 0, 2, a], [192, 0, 2, a + 1])
}

fn v6(a: &str, b: &str) -> Ip {
    Ip::v6(a, b)
}

#[test]
fn vxlan_tcp4_over_ipv4_worked_case() {
    let mut outer = v4(1);
    outer.id = 0xfffe;
    outer.df = true;
    let mut inner_ip = Ip::v4([10, 0, 0, 1], [10, 0, 0, 2]);
    inner_ip.id = 7;
    let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let inner = tcp(&inner_ip, 1, 2, 1000, 5, ACK | PSH, &[], &payload);
    let tunnel = Tunnel::Vxlan { vni: 42 };
    let (hdr, pkt) = tunnel_super(&outer, true, &tunnel, inner, 1400, false);
    // outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.
    assert_eq!((hdr.outer_th_offset(), hdr.inner_nh_offset()), (20, 50));
    let p = TunnelGsoPacket::parse(&hdr, &pkt).unwrap();
    assert_eq!(p.segment_count(), 3);
    assert_eq!(p.max_segment_len(), 50 + 40 + 1400);
    let segs = split_all(&hdr, &pkt, false);
    assert_eq!(
        segs.iter().map(Vec::len).collect::<Vec<_>>(),
        [1490, 1490, 50 + 40 + 200]
    );
    let ids: Vec<u16> = segs
        .iter()
        .map(|s| verify_outer(s, &outer, true, &[]).ip_id)
        .collect();
    assert_eq!(ids, [0xfffe, 0xffff, 0], "outer IDs count up, wrapping");
    let inner: Vec<_> = segs
        .iter()
        .map(|s| verify(&verify_outer(s, &outer, true, &[]).inner))
        .collect();
    assert_eq!(
        inner
            .iter()
            .map(|p| (p.seq, p.ip_id, p.tcp_flags))
            .collect::<Vec<_>>(),
        [(1000, 7, ACK), (2400, 8, ACK), (3800, 9, ACK | PSH)]
    );
    assert_eq!(
        inner
            .iter()
            .flat_map(|p| p.payload.clone())
            .collect::<Vec<_>>(),
        payload
    );
}

#[test]
fn an_outer_checksum_of_zero_is_sent_as_ffff() {
    // The sum over a valid inner packet does not depend on its payload (its
    // own checksum compensates), so search the VNI instead: one value of its
    // low 16 bits makes the outer sum zero.
    let outer = v4(1);
    let inner = udp(&Ip::v4([10, 0, 0, 1], [10, 0, 0, 2]), 1, 2, &[1, 2, 3]);
    let (mut b, mut s) = (vec![vec![0u8; 200]; 1], vec![0; 1]);
    let found = (0..=0xffffu32).find(|vni| {
        let tunnel = Tunnel::Vxlan { vni: *vni };
        let (hdr, pkt) = tunnel_super(&outer, true, &tunnel, inner.clone(), 100, false);
        assert_eq!(split_tunnel(&hdr, &pkt, false, &mut b, &mut s, 0), Ok(1));
        verify_outer(&b[0][..s[0]], &outer, true, &[]).udp_checksum == 0xffff
    });
    assert!(
        found.is_some(),
        "some datagram sums to zero and is sent as 0xffff"
    );
}

#[test]
fn split_inner_equals_the_plain_split() {
    let outer = v6("2001:db8::1", "2001:db8::2");
    let inner_ip = v6("fd00::1", "fd00::2");
    let payload = vec![0x5a; 5000];
    let inner = udp(&inner_ip, 7, 8, &payload);
    let (plain_hdr, plain) = as_super(inner.clone(), 1200);
    let (hdr, pkt) = tunnel_super(
        &outer,
        false,
        &Tunnel::Geneve {
            vni: 9,
            options: vec![0, 1, 2, 3, 4, 5, 6, 7],
        },
        inner,
        1200,
        true,
    );
    let segs = split_all(&hdr, &pkt, true);
    let (mut b, mut s) = (vec![vec![0u8; 2000]; 8], vec![0; 8]);
    let n = split(&plain_hdr, &plain, &mut b, &mut s, 0).unwrap();
    assert_eq!(segs.len(), n);
    let inner_nh = usize::from(hdr.inner_nh_offset());
    for (i, seg) in segs.iter().enumerate() {
        assert_eq!(&seg[inner_nh..], &b[i][..s[i]], "segment {i}");
        verify_outer(seg, &outer, false, &outer_l2(&outer));
    }
}

#[test]
fn plain_packets_go_through_the_plain_split() {
    let pkt = udp(&v4(1), 1, 2, &[1, 2, 3]);
    let hdr = VirtioNetHdrV1HashTunnel::plain(VirtioNetHdr::ZERO);
    let segs = split_all(&hdr, &pkt, false);
    assert_eq!(segs, [pkt.as_slice()]);
    assert_eq!(
        TunnelGsoPacket::parse(&hdr, &pkt),
        Err(TunnelError::NotTunnel {
            gso_type: GsoType::NONE
        })
    );
}

fn sample(tap: bool) -> (VirtioNetHdrV1HashTunnel, Vec<u8>) {
    let inner = tcp(
        &Ip::v4([10, 0, 0, 1], [10, 0, 0, 2]),
        1,
        2,
        0,
        0,
        ACK,
        &[],
        &[7u8; 3000],
    );
    tunnel_super(&v4(1), true, &Tunnel::Vxlan { vni: 5 }, inner, 1000, tap)
}

fn with(
    hdr: &VirtioNetHdrV1HashTunnel,
    f: impl FnOnce(&mut VirtioNetHdr),
) -> VirtioNetHdrV1HashTunnel {
    let mut h = *hdr;
    f(&mut h.hdr);
    h
}

#[test]
fn malformed_headers_give_typed_errors() {
    let (hdr, pkt) = sample(false);
    let parse = |h: &VirtioNetHdrV1HashTunnel, p: &[u8]| TunnelGsoPacket::parse(h, p);
    let gso = hdr.hdr.gso_type();

    let both = GsoType(gso.0 | GsoType::UDP_TUNNEL);
    assert_eq!(
        parse(&with(&hdr, |h| h.set_gso_type(both)), &pkt),
        Err(TunnelError::BothTunnelFamilies { gso_type: both })
    );
    assert_eq!(
        parse(
            &with(&hdr, |h| h.set_flags(HdrFlags::UDP_TUNNEL_CSUM)),
            &pkt
        ),
        Err(TunnelError::NeedsCsumMissing {
            flags: HdrFlags::UDP_TUNNEL_CSUM
        })
    );
    let v6_bit = GsoType(gso.inner().0 | GsoType::UDP_TUNNEL_IPV6);
    assert_eq!(
        parse(&with(&hdr, |h| h.set_gso_type(v6_bit)), &pkt),
        Err(TunnelError::OuterVersionMismatch {
            gso_type: v6_bit,
            version: 4
        })
    );
    // Inner UFO and inner NONE are refused, as virtio_net_hdr_tnl_to_skb does.
    for inner in [GsoType::UDP, GsoType::NONE] {
        let t = GsoType(inner.0 | GsoType::UDP_TUNNEL_IPV4);
        assert_eq!(
            parse(&with(&hdr, |h| h.set_gso_type(t)), &pkt),
            Err(TunnelError::Inner {
                inner_nh_offset: 50,
                error: PacketError::UnsupportedGsoType { gso_type: inner }
            })
        );
    }
    let mut h = hdr;
    h.set_outer_th_offset(24);
    assert_eq!(
        parse(&h, &pkt),
        Err(TunnelError::OuterThMismatch {
            outer_th_offset: 24,
            ip_header_end: 20
        })
    );
    for (inner_nh, min) in [(27u16, 28usize), (u16::MAX, 28)] {
        let mut h = hdr;
        h.set_inner_nh_offset(inner_nh);
        assert_eq!(
            parse(&h, &pkt),
            Err(TunnelError::InnerNhOutOfRange {
                inner_nh_offset: inner_nh,
                min,
                len: pkt.len()
            })
        );
    }
    assert_eq!(
        parse(&with(&hdr, |h| h.set_csum_start(40)), &pkt),
        Err(TunnelError::CsumStartBeforeInner {
            csum_start: 40,
            inner_nh_offset: 50
        })
    );
    // csum_start one word off inside the inner packet: the plain error,
    // its offsets counted from the inner network header.
    assert_eq!(
        parse(&with(&hdr, |h| h.set_csum_start(50 + 24)), &pkt),
        Err(TunnelError::Inner {
            inner_nh_offset: 50,
            error: PacketError::CsumStartMismatch {
                csum_start: 24,
                ip_header_len: 20
            }
        })
    );
    let mut not_udp = pkt.clone();
    not_udp[9] = 6;
    assert_eq!(
        parse(&hdr, &not_udp),
        Err(TunnelError::OuterNotUdp { protocol: 6 })
    );
    assert_eq!(
        parse(&hdr, &pkt[..10]),
        Err(TunnelError::Outer(PacketError::Truncated {
            layer: Layer::Ipv4,
            required: 20,
            len: 10
        }))
    );
    // Truncated inside the inner packet.
    assert!(matches!(
        parse(&hdr, &pkt[..60]),
        Err(TunnelError::Inner {
            error: PacketError::Truncated { .. },
            ..
        })
    ));
    // The split refuses a packet of another length than the one parsed.
    let p = parse(&hdr, &pkt).unwrap();
    let (mut b, mut s) = (vec![vec![0u8; 2000]; 4], vec![0; 4]);
    assert!(matches!(
        p.split_into(&pkt[..pkt.len() - 1], &mut b, &mut s, 0),
        Err(SplitError::Invalid(PacketError::IpLengthMismatch { .. }))
    ));
}

#[test]
fn tap_frames_are_parsed_behind_their_l2_header() {
    let (hdr, frame) = sample(true);
    assert_eq!(hdr.outer_th_offset(), 34);
    let p = TunnelGsoPacket::parse_frame(&hdr, &frame).unwrap();
    assert_eq!(p.l2_len(), 14);
    let mut arp = frame.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(
        TunnelGsoPacket::parse_frame(&hdr, &arp),
        Err(TunnelError::NotIpFrame { ether_type: 0x0806 })
    );
    assert_eq!(
        TunnelGsoPacket::parse_frame(&hdr, &frame[..10]),
        Err(TunnelError::Outer(PacketError::Truncated {
            layer: Layer::Ethernet,
            required: 18,
            len: 10
        }))
    );
    assert_eq!(
        TunnelGsoPacket::parse_frame(&hdr, &frame[..20]),
        Err(TunnelError::Outer(PacketError::Truncated {
            layer: Layer::Ipv4,
            required: 34,
            len: 20
        }))
    );
}

#[test]
fn out_of_space_leaves_complete_datagrams() {
    let (hdr, pkt) = sample(false);
    let (mut b, mut s) = (vec![vec![0u8; 2000]; 2], vec![0; 2]);
    assert_eq!(
        split_tunnel(&hdr, &pkt, false, &mut b, &mut s, 0),
        Err(TunnelSplitError::OutOfSpace {
            produced: 2,
            dropped: 1
        })
    );
    for i in 0..2 {
        let o = verify_outer(&b[i][..s[i]], &v4(1), true, &[]);
        verify(&o.inner);
    }
    // A buffer too short for the outer headers in front.
    let (mut b, mut s) = (vec![vec![0u8; 1070]; 4], vec![0; 4]);
    assert!(matches!(
        split_tunnel(&hdr, &pkt, false, &mut b, &mut s, 0),
        Err(TunnelSplitError::OutOfSpace { produced: 0, .. })
    ));
}

fn any_ip(v4: bool) -> impl Strategy<Value = Ip> {
    (
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<u16>(),
        1u8..,
        any::<bool>(),
        0u32..0x100000,
    )
        .prop_map(move |(s4, d4, s6, d6, id, ttl, df, flow)| {
            let mut ip = if v4 {
                Ip::v4(s4, d4)
            } else {
                Ip {
                    src: s6.into(),
                    dst: d6.into(),
                    ..Ip::v6("::1", "::2")
                }
            };
            ip.id = id;
            ip.ttl = ttl;
            ip.df = df;
            ip.flow_label = if v4 { 0 } else { flow };
            ip
        })
}

fn any_tunnel() -> impl Strategy<Value = Tunnel> {
    prop_oneof![
        (0u32..1 << 24).prop_map(|vni| Tunnel::Vxlan { vni }),
        (0u32..1 << 24, proptest::collection::vec(any::<u8>(), 0..=8)).prop_map(|(vni, words)| {
            Tunnel::Geneve {
                vni,
                options: words.iter().flat_map(|w| [*w, 1, 2, 3]).collect(),
            }
        }),
    ]
}

/// One generated tunnel super-packet's parameters.
#[derive(Debug, Clone)]
struct Case {
    outer: Ip,
    inner_ip: Ip,
    tunnel: Tunnel,
    csum: bool,
    tap: bool,
    is_tcp: bool,
    gso_size: u16,
    payload: Vec<u8>,
    seq: u32,
}

impl Case {
    fn inner_packet(&self) -> Vec<u8> {
        if self.is_tcp {
            let flags = ACK | PSH;
            tcp(
                &self.inner_ip,
                1000,
                2000,
                self.seq,
                77,
                flags,
                &[1, 1, 1, 1],
                &self.payload,
            )
        } else {
            udp(&self.inner_ip, 1000, 2000, &self.payload)
        }
    }
}

/// VXLAN or Geneve over IPv4 or IPv6 around TCP or UDP over IPv4 or IPv6,
/// with or without the outer checksum, TUN or TAP, at least one payload
/// byte (a UDP datagram without payload is not coalesced).
fn any_case() -> impl Strategy<Value = Case> {
    (
        (any::<bool>(), any::<bool>()).prop_flat_map(|(o4, i4)| (any_ip(o4), any_ip(i4))),
        any_tunnel(),
        any::<[bool; 3]>(),
        1u16..=1400,
        proptest::collection::vec(any::<u8>(), 1..12_000),
        any::<u32>(),
    )
        .prop_map(
            |((outer, inner_ip), tunnel, [csum, tap, is_tcp], gso_size, payload, seq)| Case {
                outer,
                inner_ip,
                tunnel,
                csum,
                tap,
                is_tcp,
                gso_size,
                payload,
                seq,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Generated tunnel super-packets split into datagrams that verify
    /// independently, whose inner packets are the plain split's and
    /// reassemble the payload exactly.
    #[test]
    fn generated_tunnel_super_packets_split_and_verify(
        c in any_case(),
    ) {
        let Case { outer, tunnel, csum, tap, is_tcp, gso_size, payload, seq, .. } = c.clone();
        let inner = c.inner_packet();
        let (plain_hdr, plain) = as_super(inner.clone(), gso_size);
        let (hdr, pkt) = tunnel_super(&outer, csum, &tunnel, inner, gso_size, tap);
        let p = if tap {
            TunnelGsoPacket::parse_frame(&hdr, &pkt)
        } else {
            TunnelGsoPacket::parse(&hdr, &pkt)
        }.unwrap();
        let n = p.segment_count();
        let (mut b, mut s) = (vec![vec![0u8; p.max_segment_len() + 3]; n], vec![0; n]);
        prop_assert_eq!(p.split_into(&pkt, &mut b, &mut s, 3), Ok(n));
        let (mut pb, mut ps) = (vec![vec![0u8; 2000]; n], vec![0; n]);
        prop_assert_eq!(split(&plain_hdr, &plain, &mut pb, &mut ps, 0), Ok(n));
        let l2 = if tap { outer_l2(&outer) } else { Vec::new() };
        let mut joined = Vec::new();
        for i in 0..n {
            let seg = &b[i][3..3 + s[i]];
            let o = verify_outer(seg, &outer, csum, &l2);
            if outer.is_v4() {
                prop_assert_eq!(o.ip_id, outer.id.wrapping_add(i as u16));
            }
            let vni = match tunnel { Tunnel::Vxlan { vni } | Tunnel::Geneve { vni, .. } => vni };
            prop_assert_eq!(o.vni, vni);
            prop_assert_eq!(&o.inner[..], &pb[i][..ps[i]], "inner = plain split");
            let q = verify(&o.inner);
            if is_tcp {
                prop_assert_eq!(q.seq, seq.wrapping_add(i as u32 * u32::from(gso_size)));
            }
            joined.extend_from_slice(&q.payload);
        }
        prop_assert_eq!(joined, payload);
    }

    /// Split, then coalesced again: runs that give back the super-packet
    /// byte for byte (with its header) when one run takes it all, and that
    /// split again into exactly the datagrams they took.
    #[test]
    fn split_then_coalesce_round_trips(
        c in any_case(),
    ) {
        let Case { outer, tunnel, csum, tap, is_tcp, gso_size, .. } = c.clone();
        let inner = c.inner_packet();
        let (hdr, pkt) = tunnel_super(&outer, csum, &tunnel, inner, gso_size, tap);
        let segs = split_all(&hdr, &pkt, tap);
        let cfg = TunnelCoalesce {
            proto: match tunnel { Tunnel::Vxlan { .. } => TunnelProto::Vxlan, _ => TunnelProto::Geneve },
            frames: tap,
            udp_gro: true,
            outer_csum: csum,
        };
        let mut out = vec![0u8; 70_000];
        let mut k = 0;
        while k < segs.len() {
            let run = coalesce_tunnel(&cfg, &segs[k..], &mut out).unwrap();
            prop_assert!(run.count >= 1);
            if run.count == 1 {
                prop_assert_eq!(&out[..run.len], &segs[k][..]);
            } else {
                let again = split_all(&run.hdr, &out[..run.len], tap);
                prop_assert_eq!(&again[..], &segs[k..k + run.count]);
            }
            if k == 0 && run.count == segs.len() && segs.len() > 1 {
                prop_assert_eq!(run.hdr, hdr);
                prop_assert_eq!(&out[..run.len], &pkt[..]);
            }
            if k == 0 {
                let limit = if is_tcp { segs.len() } else { segs.len().min(64) };
                prop_assert_eq!(run.count, limit, "{:?}", run.ended_by);
            }
            k += run.count;
        }
    }

    /// Any mutation of a valid header or packet parses to a typed error or
    /// to a packet whose split succeeds; nothing panics.
    #[test]
    fn mutated_tunnel_packets_never_panic(
        tap in any::<bool>(),
        hdr_byte in 0usize..24,
        hdr_val in any::<u8>(),
        pkt_byte in any::<prop::sample::Index>(),
        pkt_val in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let (hdr, mut pkt) = sample(tap);
        let mut raw = hdr.to_bytes();
        raw[hdr_byte] = hdr_val;
        let hdr = VirtioNetHdrV1HashTunnel::decode(&raw).unwrap();
        let at = pkt_byte.index(pkt.len());
        pkt[at] = pkt_val;
        pkt.truncate(cut.index(pkt.len() + 1));
        let (mut b, mut s) = (vec![vec![0u8; 1200]; 4], vec![0; 4]);
        let _ = split_tunnel(&hdr, &pkt, tap, &mut b, &mut s, 0);
    }
}

fn cfg(frames: bool, outer_csum: bool) -> TunnelCoalesce {
    TunnelCoalesce {
        proto: TunnelProto::Vxlan,
        frames,
        udp_gro: true,
        outer_csum,
    }
}

/// Datagrams of a VXLAN super-packet, outer checksum on or off.
fn datagrams(outer_csum: bool, vni: u32, dport: u16) -> Vec<Vec<u8>> {
    let inner = tcp(
        &Ip::v4([10, 0, 0, 1], [10, 0, 0, 2]),
        1,
        dport,
        0,
        0,
        ACK,
        &[],
        &[7u8; 3000],
    );
    let (hdr, pkt) = tunnel_super(
        &v4(1),
        outer_csum,
        &Tunnel::Vxlan { vni },
        inner,
        1000,
        false,
    );
    split_all(&hdr, &pkt, false)
}

/// Fix the outer IPv4 header checksum of a TUN datagram after an edit.
fn fix_outer_ipv4(d: &mut [u8]) {
    d[10..12].copy_from_slice(&[0, 0]);
    let c = !naive_sum(&d[..20]);
    d[10..12].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn coalescing_refuses_other_flows_and_headers() {
    let mut out = vec![0u8; 70_000];
    let ended = |pkts: &[Vec<u8>], c: &TunnelCoalesce, out: &mut [u8]| {
        let run = coalesce_tunnel(c, pkts, out).unwrap();
        assert_eq!(run.count, 1);
        run.ended_by
    };
    let segs = datagrams(false, 5, 2);
    assert_eq!(
        coalesce_tunnel(&cfg(false, false), &segs, &mut out)
            .unwrap()
            .count,
        3
    );
    // Another VNI (outer checksum off, so nothing else changes).
    let other_vni = datagrams(false, 6, 2);
    assert_eq!(
        ended(
            &[segs[0].clone(), other_vni[1].clone()],
            &cfg(false, false),
            &mut out
        ),
        Some(TunnelRefusal::HeadersDiffer)
    );
    // Another outer UDP source port.
    let mut sport = segs[1].clone();
    sport[20] ^= 1;
    assert_eq!(
        ended(&[segs[0].clone(), sport], &cfg(false, false), &mut out),
        Some(TunnelRefusal::HeadersDiffer)
    );
    // Another outer TTL (the header checksum fixed).
    let mut ttl = segs[1].clone();
    ttl[8] -= 1;
    fix_outer_ipv4(&mut ttl);
    assert_eq!(
        ended(&[segs[0].clone(), ttl], &cfg(false, false), &mut out),
        Some(TunnelRefusal::HeadersDiffer)
    );
    // An outer ID that skips one.
    let mut id = segs[1].clone();
    id[5] = id[5].wrapping_add(1);
    fix_outer_ipv4(&mut id);
    assert_eq!(
        ended(&[segs[0].clone(), id], &cfg(false, false), &mut out),
        Some(TunnelRefusal::IdNotIncrementing)
    );
    // Another inner flow (destination port), everything else equal.
    let other_flow = datagrams(false, 5, 3);
    assert_eq!(
        ended(
            &[segs[0].clone(), other_flow[1].clone()],
            &cfg(false, false),
            &mut out
        ),
        Some(TunnelRefusal::FlowDiffers)
    );
    // A corrupted inner payload.
    let mut bad = segs[1].clone();
    *bad.last_mut().unwrap() ^= 0xff;
    assert_eq!(
        ended(&[segs[0].clone(), bad], &cfg(false, false), &mut out),
        Some(TunnelRefusal::BadChecksum)
    );
    // Out of order: the third before the second.
    assert_eq!(
        ended(
            &[segs[0].clone(), segs[2].clone()],
            &cfg(false, false),
            &mut out
        ),
        Some(TunnelRefusal::IdNotIncrementing)
    );
    // Outer checksums: present, but not granted; present in one only.
    let with_csum = datagrams(true, 5, 2);
    assert_eq!(
        coalesce_tunnel(&cfg(false, false), &with_csum, &mut out),
        Err(TunnelRefusal::BadChecksum)
    );
    let run = coalesce_tunnel(&cfg(false, true), &with_csum, &mut out).unwrap();
    assert_eq!(run.count, 3);
    assert!(run.hdr.hdr.flags().contains(HdrFlags::UDP_TUNNEL_CSUM));
    let mut zeroed = with_csum[1].clone();
    zeroed[26..28].copy_from_slice(&[0, 0]);
    assert_eq!(
        ended(&[with_csum[0].clone(), zeroed], &cfg(false, true), &mut out),
        Some(TunnelRefusal::OuterChecksumMode)
    );
    let mut wrong = with_csum[1].clone();
    wrong[26] ^= 1;
    assert_eq!(
        ended(&[with_csum[0].clone(), wrong], &cfg(false, true), &mut out),
        Some(TunnelRefusal::BadChecksum)
    );
    // The wrong tunnel protocol, a plain packet, a frame given as a packet.
    let geneve = TunnelCoalesce {
        proto: TunnelProto::Geneve,
        ..cfg(false, false)
    };
    assert_eq!(
        coalesce_tunnel(&geneve, &segs, &mut out),
        Err(TunnelRefusal::TunnelHeader)
    );
    let plain = udp(&v4(1), 1, 2, &[1, 2, 3]);
    assert_eq!(
        coalesce_tunnel(&cfg(false, false), std::slice::from_ref(&plain), &mut out),
        Err(TunnelRefusal::BadChecksum),
        "a UDP checksum without the grant"
    );
    assert_eq!(
        coalesce_tunnel(&cfg(false, true), &[plain], &mut out),
        Err(TunnelRefusal::TunnelHeader)
    );
    assert_eq!(
        coalesce_tunnel(&cfg(true, false), &segs, &mut out),
        Err(TunnelRefusal::OuterHeader)
    );
    // No room for the first datagram; room for two.
    assert_eq!(
        coalesce_tunnel(&cfg(false, false), &segs, &mut out[..100]),
        Err(TunnelRefusal::OutOfSpace)
    );
    let two = segs[0].len() + segs[1].len() - 90;
    let run = coalesce_tunnel(&cfg(false, false), &segs, &mut out[..two]).unwrap();
    assert_eq!(
        (run.count, run.len, run.ended_by),
        (2, two, Some(TunnelRefusal::OutOfSpace))
    );
    assert_eq!(split_all(&run.hdr, &out[..two], false), segs[..2]);
}

#[test]
fn a_super_packet_without_payload_is_one_datagram() {
    let outer = v6("2001:db8::1", "2001:db8::2");
    let inner = tcp(
        &Ip::v4([10, 0, 0, 1], [10, 0, 0, 2]),
        1,
        2,
        9,
        9,
        ACK,
        &[],
        &[],
    );
    let (hdr, pkt) = tunnel_super(&outer, true, &Tunnel::Vxlan { vni: 3 }, inner, 500, false);
    let segs = split_all(&hdr, &pkt, false);
    assert_eq!(segs.len(), 1);
    let o = verify_outer(&segs[0], &outer, true, &[]);
    assert_eq!(verify(&o.inner).payload, Vec::<u8>::new());
}
