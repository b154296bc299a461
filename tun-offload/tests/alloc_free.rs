//! Steady state allocates nothing: a counting global allocator sees no
//! allocation during splits, checksum completions, or coalescing batches on
//! a warmed-up table.

mod common;

use std::alloc::System;

use common::{Ip, as_super, tcp, udp};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tun_offload::{
    GsoType, HdrFlags, VirtioNetHdr, VirtioNetHdrV1HashTunnel, complete_checksum, split,
};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// A plain `main` (no libtest harness): no other thread allocates while a
/// region is measured. Arguments that do not start with `-` filter the tests
/// by name, as libtest's do; the closing line counts the tests that ran.
fn main() {
    let tests: [(&str, fn()); 3] = [
        ("split_allocates_nothing", split_allocates_nothing),
        (
            "coalescing_allocates_nothing_after_warm_up",
            coalescing_allocates_nothing_after_warm_up,
        ),
        (
            "planning_allocates_nothing_after_warm_up",
            planning_allocates_nothing_after_warm_up,
        ),
    ];
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in tests {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        if std::panic::catch_unwind(test).is_ok() {
            println!("test {name} ... ok");
            passed += 1;
        } else {
            println!("test {name} ... FAILED");
            failed += 1;
        }
    }
    println!("alloc_free: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(101);
    }
}

fn split_allocates_nothing() {
    let payload = vec![0x5au8; 65_000];
    let (h4, p4) = as_super(
        tcp(
            &Ip::v4([10, 0, 0, 1], [10, 0, 0, 2]),
            1,
            2,
            3,
            4,
            0x10,
            &[],
            &payload,
        ),
        1448,
    );
    let (h6, p6) = as_super(
        udp(&Ip::v6("fd00::1", "fd00::2"), 1, 2, &payload[..60_000]),
        1200,
    );
    let mut plain = tcp(
        &Ip::v4([10, 0, 0, 1], [10, 0, 0, 2]),
        1,
        2,
        3,
        4,
        0x10,
        &[],
        &payload[..100],
    );
    let none = VirtioNetHdr::ZERO;
    let mut bufs = vec![vec![0u8; 2048]; 64];
    let mut sizes = vec![0usize; 64];
    // The same TCP super-packet as an 802.1Q-tagged frame (TAP).
    let mut f4 = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0, 0, 5, 0x08, 0];
    f4.extend_from_slice(&p4);
    let mut fh4 = h4;
    fh4.set_csum_start(h4.csum_start() + 18);
    // The same TCP super-packet in VXLAN over IPv4 (outer UDP checksum
    // offloaded): 20 + 8 + 8 + 14 bytes in front of the inner packet.
    let udp_len = 8 + 8 + 14 + p4.len();
    let mut t4 = Ip::v4([192, 0, 2, 1], [192, 0, 2, 2]).header(17, udp_len);
    t4.extend_from_slice(&[0xc0, 0, 0x12, 0xb5]);
    t4.extend_from_slice(&(udp_len as u16).to_be_bytes());
    t4.extend_from_slice(&[0, 0, 8, 0, 0, 0, 0, 0, 1, 0]);
    t4.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0]);
    t4.extend_from_slice(&p4);
    let mut th4 = h4;
    th4.set_gso_type(GsoType(h4.gso_type().0 | GsoType::UDP_TUNNEL_IPV4));
    th4.set_flags(HdrFlags(h4.flags().0 | HdrFlags::UDP_TUNNEL_CSUM.0));
    th4.set_csum_start(h4.csum_start() + 50);
    let th4 = VirtioNetHdrV1HashTunnel::new(th4, 20, 50);

    let region = Region::new(GLOBAL);
    for _ in 0..10 {
        assert_eq!(
            tun_offload::split_frame(&fh4, &f4, &mut bufs, &mut sizes, 16),
            Ok(45)
        );
        assert_eq!(split(&h4, &p4, &mut bufs, &mut sizes, 16), Ok(45));
        assert_eq!(
            tun_offload::split_tunnel(&th4, &t4, false, &mut bufs, &mut sizes, 16),
            Ok(45)
        );
        assert_eq!(split(&h6, &p6, &mut bufs, &mut sizes, 16), Ok(50));
        assert_eq!(split(&none, &plain, &mut bufs, &mut sizes, 0), Ok(1));
        complete_checksum(&none, &mut plain).unwrap();
    }
    // Coalescing the tunnel datagrams back: one run of all 45.
    assert_eq!(
        tun_offload::split_tunnel(&th4, &t4, false, &mut bufs, &mut sizes, 16),
        Ok(45)
    );
    let datagrams: [&[u8]; 45] = core::array::from_fn(|i| &bufs[i][16..16 + sizes[i]]);
    let cfg = tun_offload::TunnelCoalesce {
        proto: tun_offload::TunnelProto::Vxlan,
        frames: false,
        udp_gro: true,
        outer_csum: true,
    };
    let mut merged = [0u8; 70_000];
    let run = tun_offload::coalesce_tunnel(&cfg, &datagrams, &mut merged).unwrap();
    assert_eq!((run.count, run.len), (45, t4.len()));
    let stats = region.change();
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "allocations during splits"
    );
}

/// 128 packets of 16 flows: TCP over IPv4 (8 flows) and UDP over IPv6.
fn sixteen_flows() -> Vec<Vec<u8>> {
    let mut a = Ip::v4([10, 0, 0, 1], [10, 0, 0, 2]);
    a.df = true; // equal IPv4 IDs merge only with DF
    let b = Ip::v6("fd00::1", "fd00::2");
    let mut pkts = Vec::new();
    for i in 0..128u32 {
        let flow = (i % 16) as u16;
        let seq = 1 + (i / 16) * 1448;
        pkts.push(if flow % 2 == 0 {
            tcp(&a, 1000 + flow, 80, seq, 1, 0x10, &[], &[flow as u8; 1448])
        } else {
            udp(&b, 1000 + flow, 80, &[flow as u8; 1200])
        });
    }
    pkts
}

/// The same packets as Ethernet frames (TAP).
fn as_frames(pkts: &[Vec<u8>]) -> Vec<Vec<u8>> {
    pkts.iter()
        .map(|p| {
            let et: &[u8] = if p[0] >> 4 == 4 {
                &[8, 0]
            } else {
                &[0x86, 0xdd]
            };
            [&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1][..], et, p].concat()
        })
        .collect()
}

fn coalescing_allocates_nothing_after_warm_up() {
    use tun_offload::GroTable;
    const OFF: usize = VirtioNetHdr::LEN;
    let pkts = sixteen_flows();
    let mut bufs: Vec<Vec<u8>> = pkts.iter().map(|_| vec![0u8; 65535 + OFF]).collect();
    let mut lens = vec![0usize; pkts.len()];
    let fill = |bufs: &mut Vec<Vec<u8>>, lens: &mut Vec<usize>| {
        for (i, p) in pkts.iter().enumerate() {
            bufs[i][OFF..OFF + p.len()].copy_from_slice(p);
            lens[i] = p.len();
        }
    };
    let mut table = GroTable::new(true);
    fill(&mut bufs, &mut lens);
    assert_eq!(table.coalesce(&mut bufs, &mut lens, OFF).unwrap().len(), 16); // warm-up

    let region = Region::new(GLOBAL);
    for _ in 0..10 {
        fill(&mut bufs, &mut lens);
        assert_eq!(table.coalesce(&mut bufs, &mut lens, OFF).unwrap().len(), 16);
    }
    let stats = region.change();
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "allocations during coalescing"
    );

    // The same batch as Ethernet frames (TAP), in a frame table.
    let frames = as_frames(&pkts);
    let fill_frames = |bufs: &mut Vec<Vec<u8>>, lens: &mut Vec<usize>| {
        for (i, f) in frames.iter().enumerate() {
            bufs[i][OFF..OFF + f.len()].copy_from_slice(f);
            lens[i] = f.len();
        }
    };
    let mut table = GroTable::new(true).with_frames();
    fill_frames(&mut bufs, &mut lens);
    assert_eq!(table.coalesce(&mut bufs, &mut lens, OFF).unwrap().len(), 16); // warm-up
    let region = Region::new(GLOBAL);
    for _ in 0..10 {
        fill_frames(&mut bufs, &mut lens);
        assert_eq!(table.coalesce(&mut bufs, &mut lens, OFF).unwrap().len(), 16);
    }
    let stats = region.change();
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "allocations while coalescing frames"
    );
}

fn planning_allocates_nothing_after_warm_up() {
    use tun_offload::GroTable;
    let pkts = sixteen_flows();
    let frames = as_frames(&pkts);
    let lens: Vec<usize> = pkts.iter().map(Vec::len).collect();
    let frame_lens: Vec<usize> = frames.iter().map(Vec::len).collect();
    let mut table = GroTable::new(true);
    let mut frame_table = GroTable::new(true).with_frames();
    // What a writer does with each run: walk its slices.
    let walk = |plan: tun_offload::gro::GroPlan<'_>, bufs: &[Vec<u8>]| -> usize {
        plan.iter()
            .map(|r| r.slices(bufs).unwrap().map(<[u8]>::len).sum::<usize>())
            .sum()
    };
    let want = walk(table.plan(&pkts, &lens, 0).unwrap(), &pkts); // warm-up
    let want_frames = walk(frame_table.plan(&frames, &frame_lens, 0).unwrap(), &frames);
    assert_eq!(table.planned().len(), 16);

    let region = Region::new(GLOBAL);
    for _ in 0..10 {
        assert_eq!(walk(table.plan(&pkts, &lens, 0).unwrap(), &pkts), want);
        let got = walk(frame_table.plan(&frames, &frame_lens, 0).unwrap(), &frames);
        assert_eq!(got, want_frames);
    }
    let stats = region.change();
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "allocations while planning"
    );
    // A first batch of its size allocates nothing either once the table
    // was made for it (a head for every second packet is reserved).
    let mut fresh = GroTable::with_capacity(true, pkts.len());
    let region = Region::new(GLOBAL);
    assert_eq!(fresh.plan(&pkts, &lens, 0).unwrap().len(), 16);
    let stats = region.change();
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "allocations in a first plan of a table made for the batch"
    );
    // With partial checksums every packet has a head of its own (its
    // header) when it is written alone: reserved too. Here every packet is
    // alone (each its own flow's only segment, NEEDS_CSUM behind it).
    let alone: Vec<Vec<u8>> = pkts
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let mut b = vec![0u8; 10 + p.len()];
            b[10..].copy_from_slice(p);
            // Another source port per packet: no two share a flow.
            b[10 + 20..10 + 22].copy_from_slice(&(7000 + k as u16).to_be_bytes());
            let hdr = tun_offload::partial::prepare_partial_checksum(&mut b[10..]);
            b[..10].copy_from_slice(&hdr.to_bytes());
            b
        })
        .collect();
    let mut partial = GroTable::with_capacity(true, alone.len());
    partial.set_partial_checksums(true);
    let region = Region::new(GLOBAL);
    assert_eq!(partial.plan(&alone, &lens, 10).unwrap().len(), alone.len());
    let stats = region.change();
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "allocations in a first plan with partial checksums"
    );
}
