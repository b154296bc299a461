//! One test per kernel rule of the coalescing and the split (issue 10), on
//! concrete packets: each builds the bytes, changes the one field the rule
//! is about, and checks what is written.

mod common;

use common::{Ip, naive_pseudo, naive_sum, tcp, udp, verify};
use tun_offload::gro::{GroTable, Refusal, UDP_MAX_SEGMENTS};
use tun_offload::partial::prepare_partial_checksum;
use tun_offload::{
    GsoPacket, GsoType, HdrFlags, PacketError, VirtioNetHdr, complete_checksum, split,
};

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const ECE: u8 = 0x40;
const CWR: u8 = 0x80;
const OFF: usize = VirtioNetHdr::LEN;

fn v4(df: bool) -> Ip {
    let mut ip = Ip::v4([10, 1, 0, 1], [10, 1, 0, 2]);
    ip.df = df;
    ip
}

fn with_id(mut ip: Ip, id: u16) -> Ip {
    ip.id = id;
    ip
}

/// A 100-byte segment whose IPv4 ID goes up with its sequence number (the
/// run's IDs then continue, so the split gives every packet back exactly).
fn seg(ip: &Ip, seq: u32, flags: u8) -> Vec<u8> {
    let ip = with_id(ip.clone(), ip.id.wrapping_add((seq / 100) as u16));
    tcp(&ip, 7, 8, seq, 1, flags, &[], &[seq as u8; 100])
}

/// Recompute the IPv4 header checksum and the TCP/UDP checksum after a
/// field was changed by hand.
fn fix(p: &mut [u8]) {
    let v4 = p[0] >> 4 == 4;
    let ip_hl = if v4 { usize::from(p[0] & 15) * 4 } else { 40 };
    if v4 {
        p[10..12].fill(0);
        let c = !naive_sum(&p[..ip_hl]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let proto = if v4 { p[9] } else { p[6] };
    let at = ip_hl + if proto == 6 { 16 } else { 6 };
    p[at..at + 2].fill(0);
    let (s, d) = common::addrs(p);
    let sum =
        u32::from(naive_pseudo(s, d, proto, p.len() - ip_hl)) + u32::from(naive_sum(&p[ip_hl..]));
    let c = !(((sum & 0xffff) + (sum >> 16)) as u16);
    p[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

struct Out {
    idx: Vec<usize>,
    hdrs: Vec<VirtioNetHdr>,
    /// Each written packet split back into complete packets.
    segs: Vec<Vec<Vec<u8>>>,
}

fn coalesce(table: &mut GroTable, pkts: &[Vec<u8>]) -> Out {
    let mut bufs: Vec<Vec<u8>> = pkts
        .iter()
        .map(|p| {
            let mut b = vec![0u8; OFF + 65_535];
            b[OFF..OFF + p.len()].copy_from_slice(p);
            b
        })
        .collect();
    let mut lens: Vec<usize> = pkts.iter().map(Vec::len).collect();
    let idx = table.coalesce(&mut bufs, &mut lens, OFF).unwrap().to_vec();
    let mut hdrs = Vec::new();
    let mut segs = Vec::new();
    for &i in &idx {
        let hdr = VirtioNetHdr::decode(&bufs[i]).unwrap();
        let p = &bufs[i][OFF..OFF + lens[i]];
        if hdr == VirtioNetHdr::ZERO {
            segs.push(vec![p.to_vec()]);
        } else {
            let plan = GsoPacket::parse(&hdr, p).unwrap();
            let mut out = vec![vec![0u8; plan.max_segment_len()]; plan.segment_count()];
            let mut sizes = vec![0; plan.segment_count()];
            let n = split(&hdr, p, &mut out, &mut sizes, 0).unwrap();
            segs.push((0..n).map(|k| out[k][..sizes[k]].to_vec()).collect());
        }
        hdrs.push(hdr);
    }
    Out { idx, hdrs, segs }
}

/// What comes out, split back, in write order.
fn flat(o: &Out) -> Vec<Vec<u8>> {
    o.segs.iter().flatten().cloned().collect()
}

#[test]
fn uso_runs_stop_at_64_segments() {
    let mut table = GroTable::new(true);
    // 100 datagrams of one flow, IDs incrementing (DF clear).
    let pkts: Vec<Vec<u8>> = (0..100u16)
        .map(|i| udp(&with_id(v4(false), 500 + i), 1, 2, &[i as u8; 40]))
        .collect();
    let o = coalesce(&mut table, &pkts);
    assert_eq!(o.idx, [0, UDP_MAX_SEGMENTS]);
    assert_eq!(o.segs[0].len(), 64);
    assert_eq!(o.segs[1].len(), 36);
    assert_eq!(table.stats().segment_limit, 1);
    assert_eq!(
        flat(&o),
        pkts,
        "split gives the datagrams back, IDs included"
    );
    // The kernel's check: payload <= gso_size * UDP_MAX_SEGMENTS.
    assert!(usize::from(o.hdrs[0].gso_size()) * 64 >= 64 * 40);
}

#[test]
fn tcp_runs_have_no_segment_cap_below_the_length_limit() {
    // 200 one-byte segments (DF, equal IDs): one run, as tcp_gro_receive
    // and virtio_net_hdr_to_skb allow.
    let pkts: Vec<Vec<u8>> = (0..200u32)
        .map(|i| tcp(&v4(true), 7, 8, 1 + i, 1, ACK, &[], &[i as u8]))
        .collect();
    let o = coalesce(&mut GroTable::new(false), &pkts);
    assert_eq!(o.idx, [0]);
    assert_eq!(o.segs[0].len(), 200);
}

#[test]
fn tcp_flag_word_must_be_equal() {
    let base = || [seg(&v4(true), 1, ACK), seg(&v4(true), 101, ACK)];
    let mut table = GroTable::new(false);
    assert_eq!(coalesce(&mut table, &base()).idx, [0]);
    type Tweak = fn(&mut Vec<u8>);
    let cases: [(&str, Tweak); 5] = [
        ("window", |p| {
            p[34..36].copy_from_slice(&2999u16.to_be_bytes())
        }),
        ("AE bit", |p| p[32] |= 0x01),
        ("reserved bit", |p| p[32] |= 0x02),
        ("ECE on one only", |p| p[33] |= ECE),
        ("ack number", |p| {
            p[28..32].copy_from_slice(&2u32.to_be_bytes())
        }),
    ];
    for (name, tweak) in cases {
        let mut pkts = base();
        tweak(&mut pkts[1]);
        fix(&mut pkts[1]);
        let o = coalesce(&mut table, &pkts);
        assert_eq!(o.idx, [0, 1], "{name}");
        assert_eq!(flat(&o), pkts, "{name}: both written as they are");
    }
    // ECE on both, PSH on the last: merged, flags kept.
    let pkts = [
        seg(&v4(true), 1, ACK | ECE),
        seg(&v4(true), 101, ACK | ECE | PSH),
    ];
    let o = coalesce(&mut table, &pkts);
    assert_eq!(o.idx, [0]);
    assert_eq!(flat(&o), pkts);
    // Urgent pointer (without URG) differs: not merged, so split gives it back.
    let mut pkts = base();
    pkts[1][38..40].copy_from_slice(&5u16.to_be_bytes());
    fix(&mut pkts[1]);
    assert_eq!(coalesce(&mut table, &pkts).idx, [0, 1]);
}

#[test]
fn ipv4_ids_must_continue_the_run() {
    let mut table = GroTable::new(true);
    let ids = |df: bool, ids: &[u16]| -> Vec<Vec<u8>> {
        ids.iter()
            .enumerate()
            .map(|(k, &id)| {
                let seq = 1 + 100 * k as u32;
                tcp(
                    &with_id(v4(df), id),
                    7,
                    8,
                    seq,
                    1,
                    ACK,
                    &[],
                    &[k as u8; 100],
                )
            })
            .collect()
    };
    // Incrementing: merged, and the split writes first + i.
    let p = ids(false, &[7, 8, 9]);
    let o = coalesce(&mut table, &p);
    assert_eq!(o.idx, [0]);
    assert_eq!(flat(&o), p);
    // Equal IDs without DF: never merged (a reassembler would confuse them).
    let p = ids(false, &[7, 7, 7]);
    assert_eq!(coalesce(&mut table, &p).idx, [0, 1, 2]);
    // Two flows between the same hosts sharing one ID counter: gaps.
    let mut p = Vec::new();
    for k in 0..4u16 {
        let ip = with_id(v4(false), 100 + k);
        let flow = k % 2;
        p.push(tcp(
            &ip,
            7 + flow,
            8,
            1 + 100 * u32::from(k / 2),
            1,
            ACK,
            &[],
            &[1; 100],
        ));
    }
    let o = coalesce(&mut table, &p);
    assert_eq!(o.idx, [0, 1, 2, 3]);
    // Equal IDs with DF: merged as a fixed-ID run; the kernel's (and this
    // crate's) segmentation then writes first + i, which RFC 6864 allows for
    // atomic datagrams.
    let p = ids(true, &[7, 7, 7]);
    let o = coalesce(&mut table, &p);
    assert_eq!(o.idx, [0]);
    let got: Vec<u16> = flat(&o).iter().map(|s| verify(s).ip_id).collect();
    assert_eq!(got, [7, 8, 9]);
    // Mixed: 7, 8 decide "incrementing"; a third 8 starts a new run.
    let p = ids(true, &[7, 8, 8]);
    assert_eq!(coalesce(&mut table, &p).idx, [0, 2]);
    // Wrapping: 65535, 0, 1.
    let p = ids(false, &[65535, 0, 1]);
    let o = coalesce(&mut table, &p);
    assert_eq!(o.idx, [0]);
    assert_eq!(flat(&o), p);
    // Prepended out of order: 8 then 7 (seq 101 then 1).
    let p = vec![seg(&v4(false), 101, ACK), seg(&v4(false), 1, ACK)];
    let o = coalesce(&mut table, &p);
    assert_eq!(o.idx, [0]);
    assert_eq!(flat(&o), [p[1].clone(), p[0].clone()]);
    // UDP follows the same rule.
    let u = |id| udp(&with_id(v4(false), id), 1, 2, &[3; 50]);
    assert_eq!(coalesce(&mut table, &[u(1), u(2), u(2)]).idx, [0, 2]);
}

#[test]
fn bad_ipv4_header_checksum_is_written_as_it_is() {
    let mut table = GroTable::new(true);
    let mut p = vec![
        seg(&v4(true), 1, ACK),
        seg(&v4(true), 101, ACK),
        seg(&v4(true), 201, ACK),
    ];
    p[1][10] ^= 0x01;
    let o = coalesce(&mut table, &p);
    // Not laundered: written byte for byte, and nothing overtakes it.
    assert_eq!(o.idx, [0, 1, 2]);
    assert_eq!(o.segs[1], [p[1].clone()]);
    assert_eq!(table.stats().refused(Refusal::BadIpv4Checksum), 1);
    assert_eq!(
        gro_refusal(&p[1]),
        Some(Refusal::BadIpv4Checksum),
        "refused by classify"
    );
}

fn gro_refusal(p: &[u8]) -> Option<Refusal> {
    tun_offload::gro::classify(p, true).err()
}

#[test]
fn any_frag_bit_but_df_refuses() {
    let mut table = GroTable::new(true);
    for (name, bits) in [("reserved", 0x8000u16), ("MF", 0x2000), ("offset", 0x0001)] {
        let mut p = vec![seg(&v4(true), 1, ACK), seg(&v4(true), 101, ACK)];
        let w = u16::from_be_bytes([p[1][6], p[1][7]]) | bits;
        p[1][6..8].copy_from_slice(&w.to_be_bytes());
        fix(&mut p[1]);
        assert_eq!(gro_refusal(&p[1]), Some(Refusal::Fragment), "{name}");
        let o = coalesce(&mut table, &p);
        assert_eq!(o.idx, [0, 1], "{name}");
        assert_eq!(flat(&o), p, "{name}");
    }
}

#[test]
fn a_pure_ack_is_never_overtaken() {
    let ip = v4(true);
    let pure_ack = tcp(&ip, 7, 8, 101, 1, ACK, &[], &[]);
    let p = vec![
        seg(&ip, 1, ACK),
        pure_ack,
        seg(&ip, 101, ACK),
        seg(&ip, 201, ACK),
    ];
    let mut table = GroTable::new(false);
    let o = coalesce(&mut table, &p);
    assert_eq!(o.idx, [0, 1, 2]);
    assert_eq!(flat(&o), p, "same order");
    assert_eq!(table.stats().flow_barriers, 1);
    // Another flow's pure ACK changes nothing.
    let other = tcp(&ip, 9, 8, 1, 1, ACK, &[], &[]);
    let p = vec![seg(&ip, 1, ACK), other, seg(&ip, 101, ACK)];
    assert_eq!(coalesce(&mut table, &p).idx, [0, 1]);
    // A bad transport checksum in the middle: written as it is, in place.
    let mut bad = seg(&ip, 101, ACK);
    bad[37] ^= 1;
    let p = vec![seg(&ip, 1, ACK), bad, seg(&ip, 101, ACK)];
    let o = coalesce(&mut table, &p);
    assert_eq!(o.idx, [0, 1, 2]);
    assert_eq!(flat(&o), p);
}

#[test]
fn a_refused_datagram_ends_the_udp_run() {
    let ip = v4(true);
    let u = |n: u8| udp(&with_id(ip.clone(), n.into()), 1, 2, &[n; 60]);
    let mut first_fragment = u(9);
    first_fragment[6] |= 0x20; // MF, offset 0: the ports are there
    fix(&mut first_fragment);
    let mut later_fragment = u(9);
    later_fragment[7] = 0x10; // offset 16 * 8: no ports, the host pair ends
    fix(&mut later_fragment);
    let mut table = GroTable::new(true);
    for refused in [first_fragment, later_fragment, udp(&ip, 1, 2, &[])] {
        let p = vec![u(1), u(2), refused, u(3), u(4)];
        let o = coalesce(&mut table, &p);
        assert_eq!(o.idx, [0, 2, 3]);
        assert_eq!(flat(&o), p);
    }
}

#[test]
fn cwr_leads_a_run_only_with_tso_ecn() {
    let ip = v4(true);
    let p = vec![
        seg(&ip, 1, ACK | CWR | ECE),
        seg(&ip, 101, ACK | ECE),
        seg(&ip, 201, ACK | ECE),
    ];
    let mut table = GroTable::new(false);
    // Without TSO_ECN: the CWR segment is written as it is, the rest merge.
    let o = coalesce(&mut table, &p);
    assert_eq!(o.idx, [0, 1]);
    assert_eq!(flat(&o), p);
    table.set_tcp_ecn(true);
    assert!(table.tcp_ecn());
    let o = coalesce(&mut table, &p);
    assert_eq!(o.idx, [0]);
    assert_eq!(
        o.hdrs[0].gso_type(),
        GsoType(GsoType::TCPV4.0 | GsoType::ECN)
    );
    assert_eq!(flat(&o), p, "CWR comes back on the first segment only");
    // CWR never joins a run (it starts the next one), never lands behind.
    let q = vec![
        seg(&ip, 1, ACK),
        seg(&ip, 101, ACK | CWR),
        seg(&ip, 201, ACK),
    ];
    let o = coalesce(&mut table, &q);
    assert_eq!(o.idx, [0, 1]);
    assert_eq!(flat(&o), q);
    // Nothing is prepended in front of a CWR segment.
    let r = vec![seg(&ip, 101, ACK | CWR), seg(&ip, 1, ACK)];
    assert_eq!(coalesce(&mut table, &r).idx, [0, 1]);
}

/// An IPv6 UDP packet with a segment routing header (one segment left)
/// whose final destination differs from the fixed header's destination.
fn srh_packet(payload: &[u8], with_routing_type: u8) -> (Vec<u8>, [u8; 16]) {
    let src: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    let hop: std::net::Ipv6Addr = "2001:db8::99".parse().unwrap();
    let fin: std::net::Ipv6Addr = "2001:db8::2".parse().unwrap();
    let mut p = vec![0x60, 0, 0, 0, 0, 0, 43, 64];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&hop.octets());
    // Routing header: next UDP, length 2 (24 bytes), type, segments left 1,
    // then (SRH) last entry, flags, tag; segment list[0] = final.
    p.extend_from_slice(&[17, 2, with_routing_type, 1, 0, 0, 0, 0]);
    p.extend_from_slice(&fin.octets());
    let l4_len = 8 + payload.len();
    p.extend_from_slice(&[0, 1, 0, 2]);
    p.extend_from_slice(&(l4_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let plen = (p.len() - 40) as u16;
    p[4..6].copy_from_slice(&plen.to_be_bytes());
    (p, fin.octets())
}

#[test]
fn split_keeps_the_final_destination_of_a_routing_header() {
    let payload: Vec<u8> = (0..250u32).map(|i| i as u8).collect();
    let (mut p, fin) = srh_packet(&payload, 4);
    let src: std::net::IpAddr = "2001:db8::1".parse().unwrap();
    let fin_ip = std::net::IpAddr::from(fin);
    // The kernel's NEEDS_CSUM field: the pseudo sum over the final destination.
    let ps = naive_pseudo(src, fin_ip, 17, p.len() - 64);
    p[70..72].copy_from_slice(&ps.to_be_bytes());
    let hdr = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::UDP_L4, 72, 100, 64, 6);
    let check = |hdr: &VirtioNetHdr, p: &[u8]| {
        let mut bufs = vec![vec![0u8; 200]; 3];
        let mut sizes = vec![0; 3];
        assert_eq!(split(hdr, p, &mut bufs, &mut sizes, 0), Ok(3));
        for k in 0..3 {
            let s = &bufs[k][..sizes[k]];
            let l4 = &s[64..];
            let sum = u32::from(naive_pseudo(src, fin_ip, 17, l4.len())) + u32::from(naive_sum(l4));
            assert_eq!(((sum & 0xffff) + (sum >> 16)) as u16, 0xffff, "segment {k}");
        }
    };
    check(&hdr, &p);
    // Without NEEDS_CSUM the final destination is read from the header.
    let plain = VirtioNetHdr::new(HdrFlags::NONE, GsoType::UDP_L4, 72, 100, 64, 6);
    check(&plain, &p);
    // Type 0 (last address) and type 2 (its one address) too.
    for t in [0, 2] {
        let (q, _) = srh_packet(&payload, t);
        check(&plain, &q);
    }
    // RPL (type 3) compresses its addresses: a typed refusal.
    let (q, _) = srh_packet(&payload, 3);
    assert_eq!(
        GsoPacket::parse(&plain, &q),
        Err(PacketError::UnsupportedRoutingHeader { routing_type: 3 })
    );
    // With NEEDS_CSUM it needs no parsing, so it splits.
    assert!(GsoPacket::parse(&hdr, &q).is_ok());
}

/// An IPv4 TCP packet with a loose source route (one hop to go), its
/// checksum over the final destination.
fn lsrr_packet(payload: &[u8]) -> (Vec<u8>, std::net::IpAddr) {
    let fin = [10, 9, 9, 9];
    let mut p = vec![
        0x47, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 1, 0, 1, 10, 5, 5, 5,
    ];
    // NOP, LSRR len 7 pointer 4 (route not done), final address.
    p.extend_from_slice(&[1, 131, 7, 4, fin[0], fin[1], fin[2], fin[3]]);
    let mut t = vec![
        0, 7, 0, 8, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, ACK, 0x0b, 0xb8, 0, 0, 0, 0,
    ];
    t.extend_from_slice(payload);
    p.extend_from_slice(&t);
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    let c = !naive_sum(&p[..28]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let src = std::net::IpAddr::from([10, 1, 0, 1]);
    let fin = std::net::IpAddr::from(fin);
    let sum = u32::from(naive_pseudo(src, fin, 6, t.len())) + u32::from(naive_sum(&t));
    let ck = !(((sum & 0xffff) + (sum >> 16)) as u16);
    p[28 + 16..28 + 18].copy_from_slice(&ck.to_be_bytes());
    (p, fin)
}

#[test]
fn ipv4_source_routes_use_the_final_destination() {
    let payload = [0x33u8; 300];
    let (orig, fin) = lsrr_packet(&payload);
    let src = std::net::IpAddr::from([10, 1, 0, 1]);
    // The sender's helper: the partial sum uses the final destination.
    let mut p = orig.clone();
    let hdr = prepare_partial_checksum(&mut p);
    assert_eq!(hdr.csum_start(), 28);
    complete_checksum(&hdr, &mut p).unwrap();
    assert_eq!(p, orig);
    // The split without NEEDS_CSUM finds it as well.
    let plain = VirtioNetHdr::new(HdrFlags::NONE, GsoType::TCPV4, 48, 100, 28, 16);
    let mut bufs = vec![vec![0u8; 200]; 3];
    let mut sizes = vec![0; 3];
    assert_eq!(split(&plain, &orig, &mut bufs, &mut sizes, 0), Ok(3));
    for k in 0..3 {
        let l4 = &bufs[k][28..sizes[k]];
        let sum = u32::from(naive_pseudo(src, fin, 6, l4.len())) + u32::from(naive_sum(l4));
        assert_eq!(((sum & 0xffff) + (sum >> 16)) as u16, 0xffff, "segment {k}");
    }
    // A malformed option: a typed error for the split, untouched for the helper.
    let mut bad = orig.clone();
    bad[22] = 60; // LSRR length runs past the header
    assert_eq!(
        GsoPacket::parse(&plain, &bad),
        Err(PacketError::MalformedIpv4Option { at: 21 })
    );
    let before = bad.clone();
    assert_eq!(prepare_partial_checksum(&mut bad), VirtioNetHdr::ZERO);
    assert_eq!(bad, before);
}

/// What a packet of a generated flow does.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// A full-size data segment or datagram.
    Full,
    /// A shorter one.
    Short(u16),
    /// TCP: a pure ACK. UDP: an empty datagram.
    Empty,
    /// The window changes from here on (TCP).
    Window(u16),
    /// The AE bit flips from here on (TCP).
    Ae,
    /// A bad IPv4 header checksum (IPv6: a bad transport checksum).
    BadIpCsum,
    /// A bad transport checksum.
    BadL4Csum,
    /// MF set (IPv4; IPv6: like Full).
    Fragment,
    /// CWR on this segment (TCP).
    Cwr,
}

fn act() -> impl proptest::strategy::Strategy<Value = Act> {
    use proptest::prelude::*;
    prop_oneof![
        12 => Just(Act::Full),
        2 => (1u16..200).prop_map(Act::Short),
        2 => Just(Act::Empty),
        1 => (1000u16..1003).prop_map(Act::Window),
        1 => Just(Act::Ae),
        1 => Just(Act::BadIpCsum),
        1 => Just(Act::BadL4Csum),
        1 => Just(Act::Fragment),
        1 => Just(Act::Cwr),
    ]
}

/// Flow `f`'s packets as a sender would emit them for `acts`: TCP
/// sequence numbers in order, IPv4 IDs incrementing or (`fixed_id`, with DF)
/// all equal.
#[allow(clippy::too_many_arguments)]
fn flow_packet(
    f: usize,
    v6: bool,
    is_tcp: bool,
    df: bool,
    fixed_id: bool,
    size: usize,
    state: &mut (u32, u16, u16, bool),
    a: Act,
) -> Vec<u8> {
    let (seq, id, window, ae) = state;
    let mut ip = if v6 {
        Ip::v6("2001:db8::1", "2001:db8::2")
    } else {
        Ip::v4([10, 1, 0, 1], [10, 1, 0, 2])
    };
    ip.df = df;
    ip.id = *id;
    if !fixed_id {
        *id = id.wrapping_add(1);
    }
    let len = match a {
        Act::Short(n) => usize::from(n).min(size),
        Act::Empty => 0,
        _ => size,
    };
    let payload: Vec<u8> = (0..len)
        .map(|k| (k as u8).wrapping_add(f as u8 * 31))
        .collect();
    let sport = 1000 + f as u16;
    if let Act::Window(w) = a {
        *window = w;
    }
    if let Act::Ae = a {
        *ae = !*ae;
    }
    let mut p = if is_tcp {
        let flags = ACK | if matches!(a, Act::Cwr) { CWR } else { 0 };
        let p = tcp(&ip, sport, 80, *seq, 1, flags, &[], &payload);
        *seq = seq.wrapping_add(len as u32);
        p
    } else {
        udp(&ip, sport, 80, &payload)
    };
    let ip_hl = if v6 { 40 } else { 20 };
    if is_tcp {
        p[ip_hl + 14..ip_hl + 16].copy_from_slice(&window.to_be_bytes());
        if *ae {
            p[ip_hl + 12] |= 1;
        }
    }
    if matches!(a, Act::Fragment) && !v6 {
        p[6] |= 0x20;
    }
    fix(&mut p);
    match a {
        Act::BadIpCsum if !v6 => p[10] ^= 0x5a,
        Act::BadIpCsum | Act::BadL4Csum => {
            let at = ip_hl + if is_tcp { 16 } else { 6 };
            p[at] ^= 0x5a;
        }
        _ => {}
    }
    p
}

/// A packet as compared after the round trip: the IPv4 ID and header
/// checksum of a DF packet are left out, since a fixed-ID run comes back with
/// IDs first + i (RFC 6864: the ID of an atomic datagram means nothing).
fn normalized(p: &[u8]) -> Vec<u8> {
    let mut q = p.to_vec();
    if q[0] >> 4 == 4 && q[6] & 0x40 != 0 {
        q[4..6].fill(0);
        q[10..12].fill(0);
    }
    q
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

    /// split(coalesce(batch)) gives back exactly the batch's packets, per
    /// flow in the same order, for batches mixing windows, AE bits, IPv4 IDs
    /// with DF set and clear, bad header and transport checksums, pure ACKs,
    /// fragments, CWR, and more than 64 small datagrams per UDP flow.
    #[test]
    fn split_of_coalesce_gives_back_the_batch(
        flows in proptest::collection::vec(
            (proptest::bool::ANY, proptest::bool::ANY, proptest::bool::ANY, proptest::bool::ANY, 1usize..600),
            1..4,
        ),
        picks in proptest::collection::vec((proptest::sample::select(vec![0usize, 1, 2]), act()), 1..200),
        tcp_ecn in proptest::bool::ANY,
    ) {
        let mut state: Vec<(u32, u16, u16, bool)> =
            (0..flows.len()).map(|f| (1 + 7 * f as u32, 100 * f as u16, 3000, false)).collect();
        let mut pkts = Vec::new();
        let mut flow_of = Vec::new();
        for (f, a) in picks {
            let f = f % flows.len();
            let (v6, is_tcp, df, fixed_id, size) = flows[f];
            // Fixed IDs only with DF, as a sender may do.
            let fixed = fixed_id && df && !v6;
            let size = if is_tcp { size } else { size / 8 + 1 }; // small datagrams
            pkts.push(flow_packet(f, v6, is_tcp, df || v6, fixed, size, &mut state[f], a));
            flow_of.push(f);
        }
        let mut table = GroTable::new(true);
        table.set_tcp_ecn(tcp_ecn);
        let o = coalesce(&mut table, &pkts);
        for (k, hdr) in o.hdrs.iter().enumerate() {
            if hdr.gso_type() == GsoType::UDP_L4 {
                proptest::prop_assert!(o.segs[k].len() <= UDP_MAX_SEGMENTS);
            }
        }
        for f in 0..flows.len() {
            let sport = (1000 + f as u16).to_be_bytes();
            let port_at = |p: &[u8]| if p[0] >> 4 == 4 { 20 } else { 40 };
            let want: Vec<Vec<u8>> = pkts
                .iter()
                .zip(&flow_of)
                .filter(|(_, g)| **g == f)
                .map(|(p, _)| normalized(p))
                .collect();
            let got: Vec<Vec<u8>> = flat(&o)
                .iter()
                .filter(|p| p[port_at(p)..port_at(p) + 2] == sport)
                .map(|p| normalized(p))
                .collect();
            proptest::prop_assert_eq!(got, want, "flow {}", f);
        }
    }
}

#[test]
fn udp_without_a_checksum_never_merges_even_vouched_for() {
    // net/ipv4/udp_offload.c udp_gro_receive_segment: "requires non zero
    // csum, for symmetry with GSO".
    let ip = v4(true);
    let u = |n: u8, zero: bool| {
        let mut d = udp(&with_id(ip.clone(), n.into()), 1, 2, &[n; 60]);
        if zero {
            d[26..28].fill(0);
        }
        d
    };
    for verified in [false, true] {
        let mut table = GroTable::new(true);
        table.set_checksums_verified(verified);
        let p = vec![u(1, true), u(2, true), u(3, true)];
        let o = coalesce(&mut table, &p);
        assert_eq!(o.idx, [0, 1, 2], "verified {verified}");
        assert_eq!(flat(&o), p);
        assert_eq!(table.stats().refused(Refusal::UdpZeroChecksum), 3);
        // Behind one without a checksum, the flow's checksummed datagrams
        // still merge.
        let p = vec![u(1, false), u(2, true), u(3, false), u(4, false)];
        let o = coalesce(&mut table, &p);
        assert_eq!(o.idx, [0, 1, 2], "verified {verified}");
        assert_eq!(flat(&o), p);
    }
}
