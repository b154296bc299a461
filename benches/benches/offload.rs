//! Criterion micro-benchmarks of the offload engine against tun-rs 2.8.16,
//! on the same inputs in the same run. Before timing, each pair is checked
//! to produce the same output; allocations per operation are counted with
//! an instrumented global allocator and printed beside the times.
//!
//! `cargo bench -p tun-benches --bench offload` runs them; `cargo test`
//! runs each once in test mode (including the equality checks).

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::alloc::System;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tun_benches::{
    Addrs, payload, super_packet, tcp4_one_flow, tcp4_sixteen_flows, udp4_four_flows,
};
use tun_offload::checksum::Checksum;
use tun_offload::{GroTable, GsoPacket, VirtioNetHdr, split};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const HDR: usize = VirtioNetHdr::LEN;

/// Allocations per call of `op`, after one warm-up call.
fn allocs_per_op(mut op: impl FnMut()) -> f64 {
    op();
    let region = Region::new(GLOBAL);
    const N: usize = 16;
    for _ in 0..N {
        op();
    }
    let s = region.change();
    (s.allocations + s.reallocations) as f64 / N as f64
}

/// Time `iters` calls of `op` on `state`, each after an untimed `setup`
/// (restoring the inputs the operation mutates).
fn timed_with_setup<S>(
    iters: u64,
    state: &mut S,
    mut setup: impl FnMut(&mut S),
    mut op: impl FnMut(&mut S),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        setup(state);
        let start = Instant::now();
        op(state);
        total += start.elapsed();
    }
    total
}

fn report_allocs(what: &str, ours: f64, theirs: f64) {
    eprintln!("allocations per op  {what:<28} tun-offload {ours:>6.1}   tun-rs {theirs:>6.1}");
}

fn bench_checksum(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    for size in [64usize, 1500, 65536] {
        let data = payload(size, 3);
        assert_eq!(
            Checksum::of(&data).fold(),
            tun_rs::checksum(&data, 0),
            "both compute the same folded sum of {size} bytes"
        );
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("tun-offload", size), &data, |b, d| {
            b.iter(|| Checksum::of(black_box(d)).fold())
        });
        g.bench_with_input(BenchmarkId::new("tun-rs", size), &data, |b, d| {
            b.iter(|| tun_rs::checksum(black_box(d), 0))
        });
    }
    g.finish();
}

fn tun_rs_hdr(h: &VirtioNetHdr) -> tun_rs::VirtioNetHdr {
    tun_rs::VirtioNetHdr {
        flags: h.flags().0,
        gso_type: h.gso_type().0,
        hdr_len: h.hdr_len(),
        gso_size: h.gso_size(),
        csum_start: h.csum_start(),
        csum_offset: h.csum_offset(),
    }
}

/// The super-packets the split benchmarks take: name, addresses, TCP (or
/// UDP), payload bytes, segment size.
const SUPER_PACKETS: [(&str, Addrs, bool, usize, u16); 3] = [
    (
        "tcp4-64k-mss1448",
        Addrs::V4_DEFAULT,
        true,
        65535 - 52,
        1448,
    ),
    (
        "tcp6-64k-mss1428",
        Addrs::V6_DEFAULT,
        true,
        65535 - 72,
        1428,
    ),
    (
        "udp4-uso-64k-1200",
        Addrs::V4_DEFAULT,
        false,
        65535 - 28,
        1200,
    ),
];

fn bench_split(c: &mut Criterion) {
    let mut g = c.benchmark_group("split");
    for (name, addrs, tcp, total, gso) in SUPER_PACKETS {
        let (hdr, pkt) = super_packet(addrs, tcp, total, gso);
        let is_v6 = matches!(addrs, Addrs::V6(..));
        let n = 64;
        let mut ours_bufs = vec![vec![0u8; 2048]; n];
        let mut ours_sizes = vec![0usize; n];
        let mut theirs_bufs = vec![vec![0u8; 2048]; n];
        let mut theirs_sizes = vec![0usize; n];
        let mut theirs_in = pkt.clone();
        let th = tun_rs_hdr(&hdr);
        let run_theirs = |input: &mut [u8], bufs: &mut [Vec<u8>], sizes: &mut [usize]| {
            tun_rs::gso_split(input, th, bufs, sizes, 0, is_v6).unwrap()
        };

        let segs = split(&hdr, &pkt, &mut ours_bufs, &mut ours_sizes, 0).unwrap();
        let theirs = run_theirs(&mut theirs_in, &mut theirs_bufs, &mut theirs_sizes);
        assert_eq!(segs, theirs, "{name}: segment count");
        for i in 0..segs {
            assert_eq!(
                ours_bufs[i][..ours_sizes[i]],
                theirs_bufs[i][..theirs_sizes[i]],
                "{name}: segment {i} differs"
            );
        }
        report_allocs(
            &format!("split {name}"),
            allocs_per_op(|| {
                split(&hdr, &pkt, &mut ours_bufs, &mut ours_sizes, 0).unwrap();
            }),
            allocs_per_op(|| {
                theirs_in.copy_from_slice(&pkt);
                run_theirs(&mut theirs_in, &mut theirs_bufs, &mut theirs_sizes);
            }),
        );

        g.throughput(Throughput::Bytes(pkt.len() as u64));
        g.bench_function(BenchmarkId::new("tun-offload", name), |b| {
            b.iter(|| {
                split(
                    black_box(&hdr),
                    black_box(&pkt),
                    &mut ours_bufs,
                    &mut ours_sizes,
                    0,
                )
                .unwrap()
            })
        });
        // The same super-packet read scattered into its segments' places (a
        // `readv` of a chain, as `Queue::recv_batch` lays it out once a
        // shape repeats): only the headers are written, the payloads summed
        // where they lie. Each iteration puts the first segment's original
        // headers back (timed: 52 to 72 bytes).
        let plan = GsoPacket::parse(&hdr, &pkt).unwrap();
        let hl = plan.header_len();
        let mut placed: Vec<Vec<u8>> = (0..plan.segment_count())
            .map(|i| {
                let mut b = vec![0u8; 2048];
                let r = plan.payload_range(i);
                b[hl..hl + r.len()].copy_from_slice(&pkt[hl + r.start..hl + r.end]);
                b
            })
            .collect();
        let mut placed_sizes = vec![0usize; placed.len()];
        let head = pkt[..hl].to_vec();
        placed[0][..hl].copy_from_slice(&head);
        plan.split_placed(&mut placed, &mut placed_sizes, 0)
            .unwrap();
        for i in 0..segs {
            assert_eq!(
                placed[i][..placed_sizes[i]],
                ours_bufs[i][..ours_sizes[i]],
                "{name}: placed segment {i} differs"
            );
        }
        g.bench_function(BenchmarkId::new("tun-offload placed", name), |b| {
            b.iter(|| {
                placed[0][..hl].copy_from_slice(&head);
                plan.split_placed(&mut placed, &mut placed_sizes, 0)
                    .unwrap()
            })
        });
        g.bench_function(BenchmarkId::new("tun-rs", name), |b| {
            // gso_split takes the input mutably: restore it, untimed, each time.
            b.iter_custom(|iters| {
                timed_with_setup(
                    iters,
                    &mut (&mut theirs_in, &mut theirs_bufs, &mut theirs_sizes),
                    |(input, _, _)| input.copy_from_slice(&pkt),
                    |(input, bufs, sizes)| {
                        black_box(run_theirs(input, bufs, sizes));
                    },
                )
            })
        });
    }
    g.finish();
}

/// Our batch: fixed-size buffers with the packet at HDR and room to grow.
struct OursBatch {
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
}

impl OursBatch {
    fn new(n: usize) -> Self {
        Self {
            bufs: vec![vec![0u8; HDR + 65535]; n],
            lens: vec![0; n],
        }
    }
    fn fill(&mut self, pkts: &[Vec<u8>]) {
        for (i, p) in pkts.iter().enumerate() {
            self.bufs[i][HDR..HDR + p.len()].copy_from_slice(p);
            self.lens[i] = p.len();
        }
    }
}

/// tun-rs's batch: Vecs whose length is header + packet, with spare
/// capacity for coalescing (without it tun-rs never merges).
fn fill_theirs(bufs: &mut [Vec<u8>], pkts: &[Vec<u8>]) {
    for (b, p) in bufs.iter_mut().zip(pkts) {
        b.clear();
        b.resize(HDR, 0);
        b.extend_from_slice(p);
    }
}

fn bench_coalesce(c: &mut Criterion) {
    let mut g = c.benchmark_group("coalesce");
    let cases = [
        ("tcp4-1flow-128", tcp4_one_flow(), false),
        ("tcp4-16flows-128", tcp4_sixteen_flows(), false),
        ("udp4-4flows-128", udp4_four_flows(), true),
    ];
    for (name, pkts, udp) in cases {
        let n = pkts.len();
        let mut ours = OursBatch::new(n);
        let mut table = GroTable::with_capacity(udp, n);
        let mut theirs: Vec<Vec<u8>> = (0..n).map(|_| Vec::with_capacity(HDR + 65535)).collect();
        let mut theirs_table = tun_rs::GROTable::new();

        // Both must write the same packets with the same headers.
        ours.fill(&pkts);
        let written = table
            .coalesce(&mut ours.bufs, &mut ours.lens, HDR)
            .unwrap()
            .to_vec();
        fill_theirs(&mut theirs, &pkts);
        let mut to_write = Vec::new();
        tun_rs::handle_gro(
            &mut theirs,
            HDR,
            &mut Default::default(),
            &mut Default::default(),
            udp,
            &mut to_write,
        )
        .unwrap();
        assert_eq!(written, to_write, "{name}: written indices");
        assert!(written.len() < n, "{name}: something coalesced");
        for &i in &written {
            assert_eq!(
                ours.bufs[i][..HDR + ours.lens[i]],
                theirs[i][..],
                "{name}: packet {i} differs"
            );
        }

        // The plan for gathered writes finds the same runs, and each run's
        // slices are the bytes both in-place tables write for it.
        let lens: Vec<usize> = pkts.iter().map(Vec::len).collect();
        let mut plan_table = GroTable::with_capacity(udp, n);
        let plan = plan_table.plan(&pkts, &lens, 0).unwrap();
        assert_eq!(plan.len(), written.len(), "{name}: planned runs");
        for (run, &i) in plan.iter().zip(&written) {
            assert_eq!(run.first(), i, "{name}: planned run order");
            let bytes: Vec<u8> = run.slices(&pkts).unwrap().flatten().copied().collect();
            assert_eq!(bytes, theirs[i], "{name}: planned run {i} differs");
        }
        let plan_allocs = allocs_per_op(|| {
            black_box(plan_table.plan(&pkts, &lens, 0).unwrap().len());
        });
        eprintln!(
            "allocations per op  {:<28} tun-offload {plan_allocs:>6.1}",
            format!("plan {name}")
        );

        report_allocs(
            &format!("coalesce {name}"),
            allocs_per_op(|| {
                ours.fill(&pkts);
                table.coalesce(&mut ours.bufs, &mut ours.lens, HDR).unwrap();
            }),
            allocs_per_op(|| {
                fill_theirs(&mut theirs, &pkts);
                theirs_table.apply_gro(&mut theirs, HDR, udp).unwrap();
            }),
        );

        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("tun-offload", name), |b| {
            b.iter_custom(|iters| {
                timed_with_setup(
                    iters,
                    &mut (&mut ours, &mut table),
                    |(ours, _)| ours.fill(&pkts),
                    |(ours, table)| {
                        black_box(table.coalesce(&mut ours.bufs, &mut ours.lens, HDR).unwrap());
                    },
                )
            })
        });
        // Planning reads the batch and writes nothing to it: no setup.
        g.bench_function(BenchmarkId::new("tun-offload-plan", name), |b| {
            b.iter(|| black_box(plan_table.plan(&pkts, &lens, 0).unwrap().len()))
        });
        g.bench_function(BenchmarkId::new("tun-rs", name), |b| {
            b.iter_custom(|iters| {
                timed_with_setup(
                    iters,
                    &mut (&mut theirs, &mut theirs_table),
                    |(theirs, _)| fill_theirs(theirs, &pkts),
                    |(theirs, table)| table.apply_gro(&mut theirs[..], HDR, udp).unwrap(),
                )
            })
        });
    }
    g.finish();
}

/// What an offload relay does in user space with one super-packet, both
/// ways this workspace offers: split into buffers (the payload copied) and
/// planned from them, or split into views (headers apart, payload where it
/// lies) and planned from those. Partial checksums, as the relay runs;
/// both plans are checked to write the same bytes first.
fn bench_views(c: &mut Criterion) {
    use tun_offload::gro::{PacketView, Segment};
    let mut g = c.benchmark_group("split-and-plan");
    for (name, addrs, tcp, total, gso) in SUPER_PACKETS {
        let (hdr, pkt) = super_packet(addrs, tcp, total, gso);
        let sp = GsoPacket::parse(&hdr, &pkt).unwrap();
        let n = sp.segment_count();
        let hl = sp.header_len();
        let ph = sp.partial_hdr().to_bytes();
        let mut table = GroTable::new(!tcp);
        table.set_partial_checksums(true);
        let mut view_table = table.clone();

        let mut bufs = vec![vec![0u8; 2048]; n];
        let mut lens = vec![0usize; n];
        let buffers = |bufs: &mut Vec<Vec<u8>>, lens: &mut Vec<usize>, t: &mut GroTable| {
            sp.split_into_partial(&pkt, bufs, lens, HDR).unwrap();
            for b in bufs.iter_mut() {
                b[..HDR].copy_from_slice(&ph);
            }
            t.plan(bufs, lens, HDR).unwrap().len()
        };
        let mut heads = vec![0u8; n * hl];
        let mut views = vec![PacketView::default(); n];
        let viewed = |heads: &mut Vec<u8>, views: &mut Vec<PacketView>, t: &mut GroTable| {
            sp.split_heads_partial(&pkt, heads).unwrap();
            for (k, v) in views.iter_mut().enumerate() {
                let r = sp.payload_range(k);
                *v = PacketView {
                    hdr: sp.partial_hdr(),
                    head: Segment {
                        buf: 0,
                        start: k * hl,
                        end: (k + 1) * hl,
                    },
                    tail: Segment {
                        buf: 1,
                        start: hl + r.start,
                        end: hl + r.end,
                    },
                };
            }
            t.plan_views(&[&heads[..], &pkt[..]], views).unwrap().len()
        };
        assert_eq!(buffers(&mut bufs, &mut lens, &mut table), 1, "{name}");
        assert_eq!(viewed(&mut heads, &mut views, &mut view_table), 1, "{name}");
        let one: Vec<u8> = table
            .planned()
            .get(0)
            .unwrap()
            .slices(&bufs)
            .unwrap()
            .flatten()
            .copied()
            .collect();
        let sources = [&heads[..], &pkt[..]];
        let other: Vec<u8> = view_table
            .planned()
            .get(0)
            .unwrap()
            .slices(&sources)
            .unwrap()
            .flatten()
            .copied()
            .collect();
        assert_eq!(one, other, "{name}: the same write");
        eprintln!(
            "allocations per op  {:<28} buffers {:>6.1} views {:>6.1}",
            format!("split-and-plan {name}"),
            allocs_per_op(|| {
                buffers(&mut bufs, &mut lens, &mut table);
            }),
            allocs_per_op(|| {
                viewed(&mut heads, &mut views, &mut view_table);
            }),
        );
        g.throughput(Throughput::Bytes(pkt.len() as u64));
        g.bench_function(BenchmarkId::new("buffers", name), |b| {
            b.iter(|| black_box(buffers(&mut bufs, &mut lens, &mut table)))
        });
        g.bench_function(BenchmarkId::new("views", name), |b| {
            b.iter(|| black_box(viewed(&mut heads, &mut views, &mut view_table)))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_checksum,
    bench_split,
    bench_coalesce,
    bench_views
);
criterion_main!(benches);
