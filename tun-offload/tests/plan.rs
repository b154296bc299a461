//! The coalescing plan (gathered writes): for every batch, each planned
//! run's head followed by its segments is byte for byte what the in-place
//! `coalesce` writes for that run (same runs, same order, same headers),
//! the plan never writes to the batch, and the edge cases one by one.

mod common;

use common::{Ip, tcp, udp, verify};
use proptest::prelude::*;
use tun_offload::gro::{
    GroPlan, MAX_GATHERED_PACKETS, MAX_VIEW_PACKETS, PacketView, Refusal, Segment,
};
use tun_offload::{
    GroError, GroTable, GsoPacket, GsoType, HdrFlags, VirtioNetHdr, complete_checksum,
};

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const SYN: u8 = 0x02;
const CWR: u8 = 0x80;
const ECE: u8 = 0x40;
/// Room in front for the in-place header (and two bytes more, so that
/// nothing depends on the header starting a buffer).
const OFF: usize = VirtioNetHdr::LEN + 2;
const CAP: usize = OFF + 18 + 65_535 + 64;

fn v4(last: u8) -> Ip {
    let mut ip = Ip::v4([192, 0, 2, 1], [192, 0, 2, last]);
    ip.df = true;
    ip
}

fn v6(last: u8) -> Ip {
    Ip::v6("2001:db8::1", &format!("2001:db8::{last:x}"))
}

fn seg(ip: &Ip, port: u16, seq: u32, flags: u8, len: usize) -> Vec<u8> {
    tcp(
        ip,
        port,
        80,
        seq,
        7,
        flags,
        &[],
        &vec![(seq % 251) as u8; len],
    )
}

/// Buffers of `CAP` bytes with packet `i` at `OFF`.
fn batch(pkts: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<usize>) {
    common::batch_in(pkts, OFF, CAP)
}

/// Each run's write, concatenated.
fn writes(plan: GroPlan<'_>, bufs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    plan.iter()
        .map(|run| {
            let w: Vec<u8> = run.slices(bufs).unwrap().flatten().copied().collect();
            assert_eq!(w.len(), VirtioNetHdr::LEN + run.len());
            w
        })
        .collect()
}

/// Plan the batch with `plan_table` and coalesce a copy of it in place
/// with `table`, and check that they agree write for write; returns the
/// writes and the first packet of each.
fn compare(
    table: &mut GroTable,
    plan_table: &mut GroTable,
    pkts: &[Vec<u8>],
) -> Vec<(usize, Vec<u8>)> {
    let (bufs, lens) = batch(pkts);
    let (mut in_place, mut in_place_lens) = (bufs.clone(), lens.clone());
    let out = table
        .coalesce(&mut in_place, &mut in_place_lens, OFF)
        .unwrap()
        .to_vec();
    let plan = plan_table.plan(&bufs, &lens, OFF).unwrap();
    assert_eq!(plan.len(), out.len(), "as many writes");
    assert_eq!(plan.batch_len(), pkts.len());
    let mut got = Vec::new();
    for (run, (&i, w)) in plan.iter().zip(out.iter().zip(writes(plan, &bufs))) {
        assert_eq!(run.first(), i, "the same first packet, in the same order");
        let want = &in_place[i][OFF - VirtioNetHdr::LEN..OFF + in_place_lens[i]];
        assert_eq!(&w[..], want, "run of packet {i}: the same bytes");
        assert_eq!(
            run.hdr(),
            VirtioNetHdr::decode(&want[..VirtioNetHdr::LEN]).unwrap()
        );
        assert_eq!(run.head()[..VirtioNetHdr::LEN], run.hdr().to_bytes());
        assert_eq!(run.is_merged(), run.hdr() != VirtioNetHdr::ZERO);
        for s in run.segments() {
            // Each segment is a part of its own packet, where it lies.
            assert!(s.start >= OFF && s.end == OFF + lens[s.buf], "{s:?}");
        }
        got.push((i, w));
    }
    assert_eq!(table.stats(), plan_table.stats(), "the same counters");
    // The plan stays readable until the next batch.
    assert_eq!(plan_table.planned().len(), out.len());
    got
}

/// The first packet of each written run and the batch indices in it.
fn shape(table: &mut GroTable, pkts: &[Vec<u8>]) -> Vec<Vec<usize>> {
    let (bufs, lens) = batch(pkts);
    let plan = table.plan(&bufs, &lens, OFF).unwrap();
    plan.iter().map(|r| r.packets().collect()).collect()
}

/// Complete a merged write's checksum and check it with etherparse.
fn check_merged(write: &[u8]) -> common::Parsed {
    let (hdr, pkt) = VirtioNetHdr::split_prefix(write).unwrap();
    assert_eq!(hdr.flags(), HdrFlags::NEEDS_CSUM);
    let mut done = pkt.to_vec();
    complete_checksum(&hdr, &mut done).unwrap();
    verify(&done)
}

#[test]
fn single_packets_are_runs_of_one_with_the_zero_header() {
    let p = seg(&v4(2), 1, 1, ACK, 100);
    let (bufs, lens) = batch(std::slice::from_ref(&p));
    let mut t = GroTable::new(false);
    let plan = t.plan(&bufs, &lens, OFF).unwrap();
    assert_eq!(plan.len(), 1);
    let run = plan.get(0).unwrap();
    assert!(!run.is_merged());
    assert_eq!(run.hdr(), VirtioNetHdr::ZERO);
    assert_eq!(run.head(), &[0u8; 10]);
    assert!(run.headers().is_empty());
    assert_eq!(
        run.segments(),
        &[Segment {
            buf: 0,
            start: OFF,
            end: OFF + p.len()
        }]
    );
    let s: Vec<&[u8]> = run.slices(&bufs).unwrap().collect();
    assert!(std::ptr::eq(s[1], &bufs[0][OFF..OFF + p.len()]));
    assert_eq!(compare(&mut GroTable::new(false), &mut t, &[p]).len(), 1);
}

#[test]
fn a_merged_run_gathers_the_payloads_where_they_lie() {
    let ip = v6(2);
    let pkts: Vec<Vec<u8>> = (0..3).map(|k| seg(&ip, 1, 1 + k * 500, ACK, 500)).collect();
    let (bufs, lens) = batch(&pkts);
    let mut t = GroTable::new(false);
    let plan = t.plan(&bufs, &lens, OFF).unwrap();
    assert_eq!(plan.len(), 1);
    let run = plan.get(0).unwrap();
    assert_eq!(
        (run.first(), run.len(), run.packets().len()),
        (0, 60 + 1500, 3)
    );
    assert_eq!(run.headers().len(), 60);
    assert_eq!(run.hdr().gso_type(), GsoType::TCPV6);
    assert_eq!((run.hdr().gso_size(), run.hdr().hdr_len()), (500, 60));
    let slices: Vec<&[u8]> = run.slices(&bufs).unwrap().collect();
    assert_eq!(slices.len(), 4);
    for (k, s) in slices[1..].iter().enumerate() {
        // No copy: each payload slice is the packet's own bytes.
        assert!(std::ptr::eq(*s, &bufs[k][OFF + 60..OFF + 560]));
    }
    // The batch is untouched; the rewritten headers are the table's.
    assert_eq!(&bufs[0][OFF..OFF + lens[0]], &pkts[0][..]);
    let w: Vec<u8> = run.slices(&bufs).unwrap().flatten().copied().collect();
    let parsed = check_merged(&w);
    assert_eq!(parsed.payload.len(), 1500);
    compare(&mut GroTable::new(false), &mut t, &pkts);
}

#[test]
fn runs_are_capped_at_65535_bytes() {
    let ip = v4(2);
    let pkts: Vec<Vec<u8>> = (0..60)
        .map(|k| seg(&ip, 1, 1 + k * 1400, ACK, 1400))
        .collect();
    let mut t = GroTable::new(false);
    let w = compare(&mut GroTable::new(false), &mut t, &pkts);
    // (65535 - 40) / 1400 = 46 segments in the first run.
    assert_eq!(w.len(), 2);
    assert_eq!(w[0].1.len() - 10, 40 + 46 * 1400);
    assert_eq!(w[1].0, 46);
    assert_eq!(t.stats().too_large, 1);
    for (_, w) in &w {
        assert!(w.len() - 10 <= 65_535);
        check_merged(w);
    }
}

#[test]
fn psh_ends_a_run_and_stays_on_its_head() {
    let ip = v4(2);
    let pkts = vec![
        seg(&ip, 1, 1, ACK, 100),
        seg(&ip, 1, 101, ACK | PSH, 100),
        seg(&ip, 1, 201, ACK, 100),
        seg(&ip, 1, 301, ACK, 100),
    ];
    let mut t = GroTable::new(false);
    let w = compare(&mut GroTable::new(false), &mut t, &pkts);
    assert_eq!(shape(&mut t, &pkts), [vec![0, 1], vec![2, 3]]);
    assert_eq!(check_merged(&w[0].1).tcp_flags, ACK | PSH);
    assert_eq!(check_merged(&w[1].1).tcp_flags, ACK);
}

#[test]
fn interleaved_flows_make_one_run_each() {
    let (a, b) = (v4(2), v4(3));
    let pkts = vec![
        seg(&a, 1, 1, ACK, 100),
        seg(&b, 1, 1, ACK, 100),
        seg(&a, 1, 101, ACK, 100),
        seg(&b, 1, 101, ACK, 100),
        seg(&a, 2, 1, ACK, 100), // another port: another flow
    ];
    let mut t = GroTable::new(false);
    compare(&mut GroTable::new(false), &mut t, &pkts);
    assert_eq!(shape(&mut t, &pkts), [vec![0, 2], vec![1, 3], vec![4]]);
}

#[test]
fn a_refused_packet_is_written_in_its_place_and_ends_its_flows_run() {
    let ip = v4(2);
    let pkts = vec![
        seg(&ip, 1, 1, ACK, 100),
        seg(&ip, 1, 101, ACK, 100),
        tcp(&ip, 1, 80, 201, 7, ACK, &[], &[]), // a pure ACK
        seg(&ip, 1, 201, ACK, 100),
        seg(&ip, 1, 301, ACK | SYN, 100),
    ];
    let mut t = GroTable::new(false);
    compare(&mut GroTable::new(false), &mut t, &pkts);
    assert_eq!(
        shape(&mut t, &pkts),
        [vec![0, 1], vec![2], vec![3], vec![4]]
    );
    assert_eq!(t.stats().refused(Refusal::EmptyPayload), 1);
    assert_eq!(t.stats().refused(Refusal::TcpFlags), 1);
}

#[test]
fn a_bad_checksum_is_written_as_it_is() {
    let ip = v4(2);
    let mut bad = seg(&ip, 1, 101, ACK, 100);
    bad[70] ^= 1;
    let pkts = vec![seg(&ip, 1, 1, ACK, 100), bad, seg(&ip, 1, 201, ACK, 100)];
    let mut t = GroTable::new(false);
    compare(&mut GroTable::new(false), &mut t, &pkts);
    assert_eq!(shape(&mut t, &pkts), [vec![0], vec![1], vec![2]]);
    assert_eq!(t.stats().bad_checksum, 1);
}

#[test]
fn a_prepended_segment_comes_first_in_the_run() {
    let ip = v4(2);
    let pkts = vec![seg(&ip, 1, 101, ACK, 100), seg(&ip, 1, 1, ACK, 100)];
    let mut t = GroTable::new(false);
    let w = compare(&mut GroTable::new(false), &mut t, &pkts);
    assert_eq!(shape(&mut t, &pkts), [vec![1, 0]]);
    let parsed = check_merged(&w[0].1);
    assert_eq!(parsed.seq, 1);
    assert_eq!(&parsed.payload[..100], &pkts[1][40..]);
    assert_eq!(&parsed.payload[100..], &pkts[0][40..]);
}

#[test]
fn frames_carry_their_l2_header_in_the_head() {
    let l2 = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0, 0, 5, 0x08, 0];
    let ip = v4(2);
    let frames: Vec<Vec<u8>> = (0..2)
        .map(|k| [&l2[..], &seg(&ip, 1, 1 + k * 100, ACK, 100)].concat())
        .collect();
    let mut t = GroTable::new(false).with_frames();
    let w = compare(&mut GroTable::new(false).with_frames(), &mut t, &frames);
    assert_eq!(w.len(), 1);
    let (bufs, lens) = batch(&frames);
    let plan = t.plan(&bufs, &lens, OFF).unwrap();
    let run = plan.get(0).unwrap();
    assert_eq!(&run.headers()[..18], &l2);
    assert_eq!(run.hdr().csum_start(), 18 + 20);
    assert_eq!(run.hdr().hdr_len(), 18 + 40);
    assert_eq!(run.segments()[1].start, OFF + 18 + 40);
}

#[test]
fn a_plan_needs_no_room_around_the_packets() {
    let ip = v4(2);
    let pkts: Vec<Vec<u8>> = (0..3).map(|k| seg(&ip, 1, 1 + k * 100, ACK, 100)).collect();
    let lens: Vec<usize> = pkts.iter().map(Vec::len).collect();
    let mut t = GroTable::new(false);
    // Offset 0 and buffers of exactly the packet: nothing to grow into.
    let plan = t.plan(&pkts, &lens, 0).unwrap();
    assert_eq!(plan.len(), 1);
    assert_eq!(plan.get(0).unwrap().len(), 340);
    assert_eq!(t.stats().no_room, 0);
    let mut exact = pkts.clone();
    let mut l = lens.clone();
    assert_eq!(
        t.coalesce(&mut exact, &mut l, 0),
        Err(GroError::NoHeaderRoom {
            offset: 0,
            required: 10
        })
    );
    // A coalesce cleared the plan.
    assert!(t.planned().is_empty());
}

#[test]
fn slices_of_other_buffers_are_typed_errors() {
    let ip = v4(2);
    let pkts: Vec<Vec<u8>> = (0..2).map(|k| seg(&ip, 1, 1 + k * 100, ACK, 100)).collect();
    let (bufs, lens) = batch(&pkts);
    let mut t = GroTable::new(false);
    let plan = t.plan(&bufs, &lens, OFF).unwrap();
    let run = plan.get(0).unwrap();
    assert_eq!(
        run.slices(&bufs[..1]).err(),
        Some(GroError::LengthsMismatch { bufs: 1, lens: 2 })
    );
    let short = vec![bufs[0].clone(), vec![0u8; 50]];
    assert_eq!(
        run.slices(&short).err(),
        Some(GroError::PacketOutsideBuffer {
            index: 1,
            end: OFF + 140,
            buf_len: 50
        })
    );
    assert_eq!(
        t.plan(&bufs, &lens[..1], OFF).err(),
        Some(GroError::LengthsMismatch { bufs: 2, lens: 1 })
    );
    assert_eq!(
        t.plan(&bufs, &[140, CAP], OFF).err(),
        Some(GroError::PacketOutsideBuffer {
            index: 1,
            end: OFF + CAP,
            buf_len: CAP
        })
    );
    assert!(t.planned().is_empty(), "a refused batch leaves no plan");
}

#[test]
fn a_gathered_run_fits_one_writev() {
    // 1100 segments of 10 bytes: one run in place, two in a plan.
    let ip = v4(2);
    let pkts: Vec<Vec<u8>> = (0..1100)
        .map(|k| seg(&ip, 1, 1 + k * 10, ACK, 10))
        .collect();
    let (bufs, lens) = batch(&pkts);
    let mut t = GroTable::new(false);
    let plan = t.plan(&bufs, &lens, OFF).unwrap();
    let sizes: Vec<usize> = plan.iter().map(|r| r.segments().len()).collect();
    assert_eq!(sizes, [MAX_GATHERED_PACKETS, 1100 - MAX_GATHERED_PACKETS]);
    assert!(plan.iter().all(|r| r.slices(&bufs).unwrap().len() <= 1024));
    assert_eq!(t.stats().segment_limit, 1);
    let (mut b, mut l) = (bufs.clone(), lens.clone());
    assert_eq!(t.coalesce(&mut b, &mut l, OFF).unwrap(), [0]);
}

#[test]
fn tcp_and_udp_coalescing_switch_off_independently() {
    let ip = v4(2);
    let pkts = vec![
        seg(&ip, 1, 1, ACK, 100),
        udp(&ip, 5, 6, &[1; 100]),
        seg(&ip, 1, 101, ACK, 100),
        udp(&ip, 5, 6, &[2; 100]),
    ];
    for (tcp_on, udp_on, want) in [
        (true, true, vec![vec![0, 2], vec![1, 3]]),
        (true, false, vec![vec![0, 2], vec![1], vec![3]]),
        (false, true, vec![vec![0], vec![1, 3], vec![2]]),
        (false, false, vec![vec![0], vec![1], vec![2], vec![3]]),
    ] {
        let mut t = GroTable::new(udp_on);
        t.set_tcp_gro(tcp_on);
        assert_eq!((t.tcp_gro(), t.udp_gro()), (tcp_on, udp_on));
        let mut t2 = t.clone();
        compare(&mut t2, &mut t, &pkts);
        assert_eq!(shape(&mut t, &pkts), want, "tcp {tcp_on} udp {udp_on}");
        let s = t.stats();
        assert_eq!(s.refused(Refusal::TcpDisabled), if tcp_on { 0 } else { 2 });
        assert_eq!(s.refused(Refusal::UdpDisabled), if udp_on { 0 } else { 2 });
    }
    // Turned back on, TCP merges again.
    let mut t = GroTable::new(false);
    t.set_tcp_gro(false);
    t.set_tcp_gro(true);
    assert_eq!(shape(&mut t, &pkts[..3])[0], [0, 2]);
}

// ---- the property: plan == in-place coalesce, write for write ----

/// One flow of a generated batch.
#[derive(Debug, Clone)]
struct Flow {
    v6: bool,
    tcp: bool,
    option_words: usize,
    size: usize,
    /// A frame on a TAP: which of two MAC pairs, and an optional VLAN.
    mac: u8,
    vlan: Option<u16>,
}

fn flow() -> impl Strategy<Value = Flow> {
    (
        any::<bool>(),
        any::<bool>(),
        0usize..=3,
        prop_oneof![1usize..200, 200usize..1500, 1500usize..9000],
        0u8..2,
        proptest::option::of(0u16..3),
    )
        .prop_map(|(v6, tcp, option_words, size, mac, vlan)| Flow {
            v6,
            tcp,
            option_words,
            size,
            mac,
            vlan,
        })
}

/// What a pick does to its flow's next packet.
#[derive(Debug, Clone, Copy)]
enum Act {
    Next,
    Psh,
    Short,
    Drop,
    Swap,
    PureAck,
    Syn,
    BadChecksum,
    Fragment,
    OtherTtl,
    Cwr,
    Ece,
    Garbage,
    Arp,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        12 => Just(Act::Next),
        1 => Just(Act::Psh),
        1 => Just(Act::Short),
        1 => Just(Act::Drop),
        2 => Just(Act::Swap),
        1 => Just(Act::PureAck),
        1 => Just(Act::Syn),
        1 => Just(Act::BadChecksum),
        1 => Just(Act::Fragment),
        1 => Just(Act::OtherTtl),
        1 => Just(Act::Cwr),
        1 => Just(Act::Ece),
        1 => Just(Act::Garbage),
        1 => Just(Act::Arp),
    ]
}

fn l2_of(f: &Flow, ether_type: u16) -> Vec<u8> {
    let mut h = vec![2, 0, 0, 0, 0, 0xb0 + f.mac, 2, 0, 0, 0, 0, 0xa0];
    if let Some(id) = f.vlan {
        h.extend_from_slice(&[0x81, 0, 0x20, id as u8]);
    }
    h.extend_from_slice(&ether_type.to_be_bytes());
    h
}

fn generate(flows: &[Flow], picks: &[(prop::sample::Index, Act)], frames: bool) -> Vec<Vec<u8>> {
    let mut seq = vec![1u32; flows.len()];
    let mut id = vec![0u16; flows.len()];
    let mut pkts: Vec<Vec<u8>> = Vec::new();
    for (k, (which, act)) in picks.iter().enumerate() {
        let fi = which.index(flows.len());
        let f = &flows[fi];
        let mut ip = if f.v6 { v6(2) } else { v4(2) };
        ip.id = id[fi];
        id[fi] = id[fi].wrapping_add(1);
        let mut size = f.size;
        let mut flags = ACK;
        match act {
            Act::Psh => flags |= PSH,
            Act::Short => size = size.div_ceil(2),
            Act::Drop => seq[fi] = seq[fi].wrapping_add(size as u32),
            Act::PureAck => size = 0,
            Act::Syn => flags |= SYN,
            Act::Fragment if !f.v6 => ip.mf = true,
            Act::OtherTtl => ip.ttl = 3,
            Act::Cwr => flags |= CWR,
            Act::Ece => flags |= ECE,
            _ => {}
        }
        // The packet's number in its payload, so that runs are checkable.
        let payload: Vec<u8> = (0..size).map(|b| (b as u8) ^ (k as u8)).collect();
        let mut p = if f.tcp {
            let options = vec![1u8; f.option_words * 4];
            let p = tcp(
                &ip,
                1000 + fi as u16,
                80,
                seq[fi],
                9,
                flags,
                &options,
                &payload,
            );
            seq[fi] = seq[fi].wrapping_add(size as u32);
            p
        } else {
            udp(&ip, 1000 + fi as u16, 80, &payload)
        };
        if p.len() > 65_535 {
            continue;
        }
        match act {
            Act::BadChecksum if p.len() > 60 => {
                let last = p.len() - 1;
                p[last] ^= 0x5a;
            }
            Act::Garbage => p = vec![0x45, 0, 0, 7, (k * 31) as u8, 1, 2],
            _ => {}
        }
        let ether_type = if p[0] >> 4 == 6 { 0x86dd } else { 0x0800 };
        if frames {
            p = if let Act::Arp = act {
                [&l2_of(f, 0x0806)[..], &[0u8; 28]].concat()
            } else {
                [&l2_of(f, ether_type)[..], &p].concat()
            };
        }
        pkts.push(p);
        if let Act::Swap = act {
            let n = pkts.len();
            if n >= 2 {
                pkts.swap(n - 1, n - 2);
            }
        }
    }
    pkts
}

/// Where the headers of `pkt` end (a frame's L2 header included), or its
/// length where it has no TCP or UDP header behind a plain IP header: the
/// shortest head a view of it may have.
fn headers_end(pkt: &[u8], frames: bool) -> usize {
    let l2 = if frames {
        tun_offload::frame::ip_offset(pkt).unwrap_or(pkt.len())
    } else {
        0
    };
    let ip = &pkt[l2..];
    let (ip_hl, proto) = match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 => (usize::from(ip[0] & 15) * 4, ip[9]),
        Some(6) if ip.len() >= 40 => (40, ip[6]),
        _ => return pkt.len(),
    };
    let l4 = match proto {
        6 => ip.get(ip_hl + 12).map_or(60, |b| usize::from(b >> 4) * 4),
        17 => 8,
        _ => return pkt.len(),
    };
    (l2 + ip_hl + l4).min(pkt.len())
}

/// The packets as views: packet `i`'s first `cut(i)` bytes (at least its
/// headers) in source 0, one after another with a byte between, the rest
/// in source 1, back to back (so that tails of consecutive packets are
/// adjacent there).
fn views_of(
    pkts: &[Vec<u8>],
    frames: bool,
    cut: impl Fn(usize, usize) -> usize,
) -> (Vec<Vec<u8>>, Vec<PacketView>) {
    let (mut heads, mut tails, mut views) = (vec![7u8], Vec::new(), Vec::new());
    for (i, p) in pkts.iter().enumerate() {
        let min = headers_end(p, frames);
        let c = (min + cut(i, p.len() - min + 1)).min(p.len());
        let h = heads.len();
        heads.extend_from_slice(&p[..c]);
        heads.push(7);
        let t = tails.len();
        tails.extend_from_slice(&p[c..]);
        views.push(PacketView {
            hdr: VirtioNetHdr::ZERO,
            head: Segment {
                buf: 0,
                start: h,
                end: h + c,
            },
            tail: Segment {
                buf: 1,
                start: t,
                end: tails.len(),
            },
        });
    }
    (vec![heads, tails], views)
}

/// Plan the batch whole with `table` and as views with `view_table`, and
/// check that they agree run for run: first packet, packets, header, bytes
/// and counters.
fn compare_views(
    table: &mut GroTable,
    view_table: &mut GroTable,
    pkts: &[Vec<u8>],
    frames: bool,
    cut: impl Fn(usize, usize) -> usize,
) {
    let (bufs, lens) = batch(pkts);
    let (sources, views) = views_of(pkts, frames, cut);
    let plan = table.plan(&bufs, &lens, OFF).unwrap();
    let want = writes(plan, &bufs);
    let vplan = view_table.plan_views(&sources, &views).unwrap();
    assert_eq!(vplan.len(), plan.len(), "as many writes");
    assert_eq!(vplan.batch_len(), pkts.len());
    for ((r, v), w) in plan.iter().zip(vplan.iter()).zip(&want) {
        assert_eq!(v.first(), r.first());
        assert_eq!(
            v.packets().collect::<Vec<_>>(),
            r.packets().collect::<Vec<_>>()
        );
        assert_eq!(v.hdr(), r.hdr());
        assert_eq!(v.is_merged(), r.is_merged());
        assert!(v.segments().len() <= 2 * v.packets().len());
        let got: Vec<u8> = v.slices(&sources).unwrap().flatten().copied().collect();
        assert_eq!(&got, w, "run of packet {}", r.first());
    }
    assert_eq!(table.stats(), view_table.stats(), "the same counters");
}

#[test]
fn a_super_packet_split_into_views_merges_into_one_slice_of_its_payload() {
    // 40 segments of 1000 bytes from one TSO super-packet: split with the
    // headers apart and the payloads in place, they are planned as one
    // run whose payload is the super-packet's, one slice, not a copy.
    for partial in [false, true] {
        let ip = v4(2);
        let whole = seg(&ip, 1, 1, ACK | PSH, 40_000);
        let (hdr, sp) = common::as_super(whole.clone(), 1000);
        let gso = GsoPacket::parse(&hdr, &sp).unwrap();
        let n = gso.segment_count();
        assert_eq!(n, 40);
        let mut heads = vec![0u8; n * 40];
        if partial {
            gso.split_heads_partial(&sp, &mut heads).unwrap();
        } else {
            gso.split_heads(&sp, &mut heads).unwrap();
        }
        let views: Vec<PacketView> = (0..n)
            .map(|i| {
                let p = gso.payload_range(i);
                PacketView {
                    hdr: if partial {
                        gso.partial_hdr()
                    } else {
                        VirtioNetHdr::ZERO
                    },
                    head: Segment {
                        buf: 0,
                        start: 40 * i,
                        end: 40 * (i + 1),
                    },
                    tail: Segment {
                        buf: 1,
                        start: 40 + p.start,
                        end: 40 + p.end,
                    },
                }
            })
            .collect();
        let sources = [&heads[..], &sp[..]];
        let mut t = GroTable::new(false);
        t.set_partial_checksums(partial);
        let plan = t.plan_views(&sources, &views).unwrap();
        assert_eq!(plan.len(), 1, "partial {partial}: {:?}", t.stats());
        let run = plan.get(0).unwrap();
        assert_eq!(
            run.packets().collect::<Vec<_>>(),
            (0..n).collect::<Vec<_>>()
        );
        assert_eq!(
            run.segments(),
            &[Segment {
                buf: 1,
                start: 40,
                end: sp.len()
            }]
        );
        assert_eq!(
            (run.hdr().gso_type(), run.hdr().gso_size()),
            (GsoType::TCPV4, 1000)
        );
        let w: Vec<u8> = run.slices(&sources).unwrap().flatten().copied().collect();
        let parsed = check_merged(&w);
        assert_eq!(parsed.payload, whole[40..]);
        // Not verified with partial checksums, verified (each head and its
        // payload summed) without.
        assert_eq!(t.stats().bad_checksum, 0);
    }
}

#[test]
fn a_view_with_a_bad_checksum_is_written_as_it_is_from_its_two_pieces() {
    let ip = v4(2);
    let mut pkts: Vec<Vec<u8>> = (0..3).map(|k| seg(&ip, 1, 1 + k * 100, ACK, 100)).collect();
    let last = pkts[1].len() - 1;
    pkts[1][last] ^= 1;
    let (sources, views) = views_of(&pkts, false, |i, _| i * 7);
    let mut t = GroTable::new(false);
    let plan = t.plan_views(&sources, &views).unwrap();
    let shape: Vec<Vec<usize>> = plan.iter().map(|r| r.packets().collect()).collect();
    assert_eq!(shape, [vec![0], vec![1], vec![2]]);
    let alone = plan.get(1).unwrap();
    assert_eq!(alone.hdr(), VirtioNetHdr::ZERO);
    let got: Vec<u8> = alone
        .slices(&sources)
        .unwrap()
        .skip(1)
        .flatten()
        .copied()
        .collect();
    assert_eq!(got, pkts[1]);
    assert_eq!(t.stats().bad_checksum, 1);
}

#[test]
fn a_view_run_fits_one_writev() {
    // 600 segments of 10 bytes, each with a byte of payload in its head
    // (two slices per packet): runs of at most MAX_VIEW_PACKETS.
    let ip = v4(2);
    let pkts: Vec<Vec<u8>> = (0..600).map(|k| seg(&ip, 1, 1 + k * 10, ACK, 10)).collect();
    let (sources, views) = views_of(&pkts, false, |_, _| 1);
    let mut t = GroTable::new(false);
    let plan = t.plan_views(&sources, &views).unwrap();
    let sizes: Vec<usize> = plan.iter().map(|r| r.packets().len()).collect();
    assert_eq!(sizes, [MAX_VIEW_PACKETS, 600 - MAX_VIEW_PACKETS]);
    assert!(
        plan.iter()
            .all(|r| r.slices(&sources).unwrap().len() <= 1024)
    );
    assert_eq!(t.stats().segment_limit, 1);
}

#[test]
fn views_outside_their_sources_are_typed_errors() {
    let ip = v4(2);
    let pkts = [seg(&ip, 1, 1, ACK, 100)];
    let (sources, views) = views_of(&pkts, false, |_, _| 0);
    let mut t = GroTable::new(false);
    let mut bad = views.clone();
    bad[0].tail.buf = 2;
    assert_eq!(
        t.plan_views(&sources, &bad).unwrap_err(),
        GroError::NoSuchSource {
            index: 0,
            source: 2,
            sources: 2
        }
    );
    let mut bad = views.clone();
    bad[0].head.end = sources[0].len() + 1;
    let err = t.plan_views(&sources, &bad).unwrap_err();
    assert_eq!(
        err,
        GroError::ViewOutsideSource {
            index: 0,
            start: 1,
            end: sources[0].len() + 1,
            source_len: sources[0].len()
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "view 0 has bytes 1..{} of a {}-byte source",
            sources[0].len() + 1,
            sources[0].len()
        )
    );
    let mut bad = views.clone();
    bad[0].tail = Segment {
        buf: 1,
        start: 5,
        end: 4,
    };
    assert!(matches!(
        t.plan_views(&sources, &bad),
        Err(GroError::ViewOutsideSource {
            start: 5,
            end: 4,
            ..
        })
    ));
    assert_eq!(
        GroError::NoSuchSource {
            index: 3,
            source: 9,
            sources: 2
        }
        .to_string(),
        "view 3 names source 9 of 2"
    );
    // A head without the whole transport header: written as it is.
    let p = &pkts[0];
    let split = vec![p[..30].to_vec(), p[30..].to_vec()];
    let short = [PacketView {
        hdr: VirtioNetHdr::ZERO,
        head: Segment {
            buf: 0,
            start: 0,
            end: 30,
        },
        tail: Segment {
            buf: 1,
            start: 0,
            end: p.len() - 30,
        },
    }];
    let plan = t.plan_views(&split, &short).unwrap();
    assert_eq!(plan.len(), 1);
    let got: Vec<u8> = plan
        .get(0)
        .unwrap()
        .slices(&split)
        .unwrap()
        .skip(1)
        .flatten()
        .copied()
        .collect();
    assert_eq!(&got, p);
    assert_eq!(t.stats().refused(Refusal::TooShort), 1);
    // The slices of another number of sources.
    let plan = t.plan_views(&sources, &views).unwrap();
    assert_eq!(
        plan.get(0).unwrap().slices(&sources[..1]).err(),
        Some(GroError::LengthsMismatch { bufs: 1, lens: 2 })
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// TCP over IPv4 and IPv6 in several flows, UDP with USO on or off,
    /// frames on a TAP, refused and bad packets among them: the plan's
    /// writes are the in-place writes, and every merged one is a valid
    /// super-packet to an independent parser.
    #[test]
    fn the_plan_writes_what_coalesce_writes(
        flows in proptest::collection::vec(flow(), 1..6),
        picks in proptest::collection::vec((any::<prop::sample::Index>(), act()), 1..80),
        udp_gro in any::<bool>(),
        tcp_gro in prop_oneof![4 => Just(true), 1 => Just(false)],
        tcp_ecn in any::<bool>(),
        frames in any::<bool>(),
    ) {
        let pkts = generate(&flows, &picks, frames);
        let mut table = GroTable::new(udp_gro);
        table.set_tcp_gro(tcp_gro);
        table.set_tcp_ecn(tcp_ecn);
        table.set_frames(frames);
        let mut plan_table = table.clone();
        // Twice: the second batch on reused tables.
        for _ in 0..2 {
            for (_, w) in compare(&mut table, &mut plan_table, &pkts) {
                let (hdr, _) = VirtioNetHdr::split_prefix(&w).unwrap();
                if hdr != VirtioNetHdr::ZERO {
                    let l2 = if frames { tun_offload::frame::ip_offset(&w[10..]).unwrap() } else { 0 };
                    let mut done = w[10..].to_vec();
                    complete_checksum(&hdr, &mut done).unwrap();
                    verify(&done[l2..]);
                }
            }
        }
    }

    /// The same batches as views, each packet cut after its headers at a
    /// random point into a head and a tail in other sources: the plan of
    /// views writes what the plan writes, run for run, from the pieces
    /// (checksums verified across the cut).
    #[test]
    fn the_plan_of_views_writes_what_the_plan_writes(
        flows in proptest::collection::vec(flow(), 1..6),
        picks in proptest::collection::vec((any::<prop::sample::Index>(), act()), 1..80),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 80),
        udp_gro in any::<bool>(),
        tcp_ecn in any::<bool>(),
        frames in any::<bool>(),
    ) {
        let pkts = generate(&flows, &picks, frames);
        let mut table = GroTable::new(udp_gro);
        table.set_tcp_ecn(tcp_ecn);
        table.set_frames(frames);
        let mut view_table = table.clone();
        for _ in 0..2 {
            compare_views(&mut table, &mut view_table, &pkts, frames, |i, room| cuts[i % cuts.len()].index(room));
        }
    }
}
