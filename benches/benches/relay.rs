//! The end-to-end relay benchmark: two private network namespaces joined
//! by two TUN devices and a userspace relay (ours in each mode, tun-rs
//! 2.8.16 in each of its modes), or by a veth pair (the kernel alone),
//! with built-in TCP (1 and 4 streams) and UDP (`UDP_SEGMENT`) traffic
//! whose every byte is checked.
//!
//! Each relay runs in a child process (this binary again, `--child`), so
//! its CPU time and peak RSS come from its own `getrusage`, and cases
//! alternate run by run; medians are reported.
//!
//! - `cargo bench -p tun-benches --bench relay` (as root): the full run,
//!   written as a Markdown table to stdout (and `--out FILE`).
//! - `... -- --quick`: under a minute; `--rounds N`, `--secs S` and
//!   `--only LABEL[,LABEL...]` shape a run.
//! - `... -- --iperf3`: every TCP case also driven by iperf3 (Debian's
//!   `iperf3`, run in the namespaces with util-linux's `nsenter`), in the
//!   same rounds, so the built-in generator is checked against it on every
//!   path. iperf3 does not check its data; the built-in runs beside it do.
//! - `cargo test` runs it once in smoke mode: every case, short traffic,
//!   integrity checked, no speed target.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tun_device::ipnet::IpNet;
use tun_device::relay::{Relay, RelayMode};
use tun_device::{Device, NetNs};
use tun_testbed::{Side, Testbed, Traffic};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Imp {
    Ours(RelayMode, usize),
    TunRs(TunRsMode),
    /// Our relay between TAP devices (Ethernet frames; the kernels do ARP
    /// and neighbour discovery across it).
    OursTap(RelayMode),
    /// tun-async's relay (batched, offload) on a two-worker tokio runtime.
    OursAsync,
    /// tun-async's relay with one thread and current-thread tokio runtime
    /// per direction (`relay::spawn_threads`).
    OursAsyncThreads,
    /// tun-async's `relay::run`, both directions in one task, on one
    /// thread: a current-thread tokio runtime (`false`) or async-io's
    /// `block_on` (`true`, the async-io backend).
    OursAsyncRun(bool),
    /// tun-rs's AsyncDevice with recv_multiple/send_multiple, likewise.
    TunRsAsync,
    /// Two devices joined by tun-tunnel's UDP tunnels over a second veth
    /// pair (the underlay, IPv4, MTU 1528 so that the devices keep 1500):
    /// socket GSO/GRO on (`true`) or off.
    Tunnel(bool),
    /// VXLAN devices in the two namespaces (carrying the bed's addresses,
    /// MTU 1500) over our offload relay between two TUN devices (the
    /// underlay, MTU 1550): the UDP-tunnel offload on (`true`: tunnel
    /// super-packets cross the relay) or off (the kernel segments before
    /// the TUN; every datagram crosses alone).
    Vxlan(bool),
    /// The same over TAP devices, which take the relay's coalesced tunnel
    /// super-packets (the UDP-tunnel offload on).
    VxlanTap,
    Veth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TunRsMode {
    Plain,
    Offload,
    Passthrough,
}

impl Imp {
    fn label(self) -> String {
        match self {
            Imp::Ours(m, 1) => format!("ours {}", m.name()),
            Imp::Ours(m, q) => format!("ours {} {q}q", m.name()),
            Imp::TunRs(TunRsMode::Plain) => "tun-rs plain".into(),
            Imp::TunRs(TunRsMode::Offload) => "tun-rs offload".into(),
            Imp::TunRs(TunRsMode::Passthrough) => "tun-rs passthrough".into(),
            Imp::OursTap(m) => format!("ours tap {}", m.name()),
            Imp::OursAsync => "ours async offload".into(),
            Imp::OursAsyncThreads => "ours async threads".into(),
            Imp::OursAsyncRun(false) => "ours async run, tokio 1 thread".into(),
            Imp::OursAsyncRun(true) => "ours async run, async-io 1 thread".into(),
            Imp::TunRsAsync => "tun-rs async offload".into(),
            Imp::Tunnel(true) => "ours tunnel gso/gro".into(),
            Imp::Tunnel(false) => "ours tunnel no gso/gro".into(),
            Imp::Vxlan(true) => "vxlan over ours offload".into(),
            Imp::Vxlan(false) => "vxlan over ours, no tnl offload".into(),
            Imp::VxlanTap => "vxlan over ours tap offload".into(),
            Imp::Veth => "kernel veth".into(),
        }
    }

    fn arg(self) -> String {
        match self {
            Imp::Ours(m, q) => format!("ours:{}:{q}", m.name()),
            Imp::TunRs(TunRsMode::Plain) => "tunrs:plain".into(),
            Imp::TunRs(TunRsMode::Offload) => "tunrs:offload".into(),
            Imp::TunRs(TunRsMode::Passthrough) => "tunrs:passthrough".into(),
            Imp::OursTap(m) => format!("tap:{}", m.name()),
            Imp::OursAsync => "async:ours".into(),
            Imp::OursAsyncThreads => "async:ours-threads".into(),
            Imp::OursAsyncRun(io) => format!("async-run:{io}"),
            Imp::TunRsAsync => "async:tunrs".into(),
            Imp::Tunnel(on) => format!("tunnel:{on}"),
            Imp::Vxlan(on) => format!("vxlan:{on}"),
            Imp::VxlanTap => "vxlan-tap".into(),
            Imp::Veth => "veth".into(),
        }
    }

    fn parse(s: &str) -> Option<Imp> {
        let mut it = s.split(':');
        Some(match (it.next()?, it.next(), it.next()) {
            ("ours", Some(m), Some(q)) => Imp::Ours(
                match m {
                    "plain" => RelayMode::Plain,
                    "offload" => RelayMode::Offload,
                    "passthrough" => RelayMode::Passthrough,
                    _ => return None,
                },
                q.parse().ok()?,
            ),
            ("tunrs", Some("plain"), None) => Imp::TunRs(TunRsMode::Plain),
            ("tunrs", Some("offload"), None) => Imp::TunRs(TunRsMode::Offload),
            ("tunrs", Some("passthrough"), None) => Imp::TunRs(TunRsMode::Passthrough),
            ("tap", Some(m), None) => Imp::OursTap(match m {
                "plain" => RelayMode::Plain,
                "offload" => RelayMode::Offload,
                "passthrough" => RelayMode::Passthrough,
                _ => return None,
            }),
            ("async", Some("ours"), None) => Imp::OursAsync,
            ("async", Some("ours-threads"), None) => Imp::OursAsyncThreads,
            ("async-run", Some(io), None) => Imp::OursAsyncRun(io.parse().ok()?),
            ("async", Some("tunrs"), None) => Imp::TunRsAsync,
            ("tunnel", Some(on), None) => Imp::Tunnel(on.parse().ok()?),
            ("vxlan", Some(on), None) => Imp::Vxlan(on.parse().ok()?),
            ("vxlan-tap", None, None) => Imp::VxlanTap,
            ("veth", None, None) => Imp::Veth,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Tcp { streams: usize, v6: bool },
    Udp { v6: bool },
}

impl Load {
    fn label(self) -> String {
        match self {
            Load::Tcp { streams, v6 } => {
                format!(
                    "TCP {} {streams} stream{}",
                    ip(v6),
                    if streams > 1 { "s" } else { "" }
                )
            }
            Load::Udp { v6 } => format!("UDP {} GSO", ip(v6)),
        }
    }
}

fn ip(v6: bool) -> &'static str {
    if v6 { "v6" } else { "v4" }
}

/// What drives a case's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    /// The test bed's checked TCP and UDP traffic.
    Builtin,
    /// iperf3, TCP only.
    Iperf3,
}

/// One row of a table: a path and what drives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Case {
    imp: Imp,
    driver: Driver,
}

impl Case {
    fn label(self) -> String {
        match self.driver {
            Driver::Builtin => self.imp.label(),
            Driver::Iperf3 => format!("{} (iperf3)", self.imp.label()),
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    gbits: f64,
    cpu_per_gb: f64,
    rss_kib: u64,
    rss_growth_kib: i64,
    ratio: f64,
    intact: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..]);
        return;
    }
    let full = args.iter().any(|a| a == "--bench");
    let quick = args.iter().any(|a| a == "--quick");
    let with_iperf3 = args.iter().any(|a| a == "--iperf3");
    if with_iperf3 {
        iperf3::check().expect("--iperf3");
    }
    let long = args.iter().any(|a| a == "--long");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1).cloned());
    let tb = match Testbed::new() {
        Ok(tb) => tb,
        Err(e) => {
            if tun_testbed::required() {
                panic!("relay benchmark needs root: {e}");
            }
            eprintln!("relay benchmark skipped: {e} (run as root)");
            return;
        }
    };
    if long {
        return long_run(&tb);
    }
    let (rounds, secs) = if !full {
        (1, 0.3) // smoke: integrity, not speed
    } else if quick {
        (1, 1.0)
    } else {
        (5, 3.0)
    };
    let imps = [
        Imp::Veth,
        Imp::Ours(RelayMode::Passthrough, 1),
        Imp::TunRs(TunRsMode::Passthrough),
        Imp::Ours(RelayMode::Offload, 1),
        Imp::TunRs(TunRsMode::Offload),
        Imp::Ours(RelayMode::Plain, 1),
        Imp::TunRs(TunRsMode::Plain),
        Imp::OursTap(RelayMode::Offload),
        Imp::OursAsync,
        Imp::OursAsyncThreads,
        Imp::OursAsyncRun(false),
        Imp::OursAsyncRun(true),
        Imp::TunRsAsync,
        Imp::Tunnel(true),
        Imp::Tunnel(false),
        Imp::Vxlan(true),
        Imp::Vxlan(false),
        Imp::VxlanTap,
    ];
    let loads: Vec<Load> = if quick || !full {
        vec![
            Load::Tcp {
                streams: 1,
                v6: false,
            },
            Load::Udp { v6: false },
        ]
    } else {
        vec![
            Load::Tcp {
                streams: 1,
                v6: false,
            },
            Load::Tcp {
                streams: 4,
                v6: false,
            },
            Load::Udp { v6: false },
            Load::Tcp {
                streams: 1,
                v6: true,
            },
            Load::Udp { v6: true },
        ]
    };
    // `--only TEXT[,TEXT...]`: just the cases whose label contains one of
    // the TEXTs (and veth).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(rounds);
    let secs = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(secs);
    let mut report = String::new();
    let started = Instant::now();
    for &load in &loads {
        let mut paths: Vec<Imp> = imps.to_vec();
        if load
            == (Load::Tcp {
                streams: 4,
                v6: false,
            })
        {
            // Multi-queue needs multi-queue devices on both sides: ours only.
            paths.push(Imp::Ours(RelayMode::Offload, 2));
        }
        let mut cases: Vec<Case> = Vec::new();
        for imp in paths {
            cases.push(Case {
                imp,
                driver: Driver::Builtin,
            });
            if with_iperf3 && matches!(load, Load::Tcp { .. }) {
                cases.push(Case {
                    imp,
                    driver: Driver::Iperf3,
                });
            }
        }
        if let Some(o) = &only {
            cases.retain(|c| c.imp == Imp::Veth || o.split(',').any(|t| c.label().contains(t)));
        }
        let mut runs: Vec<Vec<Run>> = vec![Vec::new(); cases.len()];
        for round in 0..rounds {
            for (i, &case) in cases.iter().enumerate() {
                let r = run_case(&tb, case, load, Duration::from_secs_f64(secs));
                eprintln!(
                    "[{:>4.0}s] round {} {:<28} {:<30} {:>6.2} Gbit/s {:>5.2} CPU s/GB {:>7} KiB{}",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    load.label(),
                    case.label(),
                    r.gbits,
                    r.cpu_per_gb,
                    r.rss_kib,
                    if r.intact { "" } else { "  DATA DAMAGED" }
                );
                assert!(
                    r.intact,
                    "{} over {}: data did not arrive intact",
                    load.label(),
                    case.label()
                );
                assert!(
                    r.gbits > 0.0,
                    "{} over {}: nothing arrived",
                    load.label(),
                    case.label()
                );
                runs[i].push(r);
            }
        }
        report.push_str(&table(load, &cases, &runs));
    }
    print!("{report}");
    if let Some(path) = out {
        std::fs::write(path, &report).expect("write report");
    }
}

fn table(load: Load, cases: &[Case], runs: &[Vec<Run>]) -> String {
    let med = |i: usize, f: fn(&Run) -> f64| median(runs[i].iter().map(f).collect());
    // Ratios compare rows driven the same way.
    let find = |imp: Imp, driver: Driver| cases.iter().position(|&c| c == Case { imp, driver });
    let tunrs_of = |c: Case| match c.imp {
        Imp::Ours(RelayMode::Plain, _) => find(Imp::TunRs(TunRsMode::Plain), c.driver),
        Imp::Ours(RelayMode::Offload, _) | Imp::OursTap(RelayMode::Offload) => {
            find(Imp::TunRs(TunRsMode::Offload), c.driver)
        }
        Imp::Ours(RelayMode::Passthrough, _) => find(Imp::TunRs(TunRsMode::Passthrough), c.driver),
        Imp::OursAsync | Imp::OursAsyncThreads | Imp::OursAsyncRun(_) => {
            find(Imp::TunRsAsync, c.driver)
        }
        _ => None,
    };
    let pass = |c: Case| find(Imp::Ours(RelayMode::Passthrough, 1), c.driver);
    let mut s = format!(
        "\n### {} (medians of {} runs)\n\n| path | Gbit/s | CPU s/GB (relay) | peak RSS KiB | packets/write | vs tun-rs same mode | vs our passthrough |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        load.label(),
        runs.first().map_or(0, Vec::len)
    );
    for (i, &case) in cases.iter().enumerate() {
        let imp = case.imp;
        let g = med(i, |r| r.gbits);
        let vs_tunrs = tunrs_of(case)
            .map(|j| format!("{:.2}x", g / med(j, |r| r.gbits)))
            .unwrap_or_else(|| "-".into());
        let vs_pass = match (imp, pass(case)) {
            (Imp::Veth, _) | (_, None) => "-".into(),
            (_, Some(j)) => format!("{:.0}%", 100.0 * g / med(j, |r| r.gbits)),
        };
        let cpu = med(i, |r| r.cpu_per_gb);
        let rss = med(i, |r| r.rss_kib as f64);
        let ratio = med(i, |r| r.ratio);
        s.push_str(&format!(
            "| {} | {:.2} | {} | {} | {} | {} | {} |\n",
            case.label(),
            g,
            if imp == Imp::Veth {
                "-".into()
            } else {
                format!("{cpu:.2}")
            },
            if imp == Imp::Veth {
                "-".into()
            } else {
                format!("{rss:.0}")
            },
            if ratio > 0.0 {
                format!("{ratio:.1}")
            } else {
                "-".into()
            },
            vs_tunrs,
            vs_pass
        ));
    }
    s
}

/// One case: start the relay (a child process) or the veth pair, drive
/// the load, stop, collect.
fn run_case(tb: &Testbed, case: Case, load: Load, dur: Duration) -> Run {
    let imp = case.imp;
    let _veth;
    let mut child = None;
    match imp {
        Imp::Veth => _veth = Some(tb.veth(1500).expect("veth")),
        _ => {
            _veth = None;
            let me = std::env::current_exe().expect("current exe");
            let pid = std::process::id();
            let path =
                |ns: &NetNs| format!("/proc/{pid}/fd/{}", std::os::fd::AsRawFd::as_raw_fd(ns));
            let mut c = Command::new(me)
                .args(["--child", &imp.arg(), &path(&tb.ns_a), &path(&tb.ns_b)])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn relay");
            let mut line = String::new();
            let mut out = BufReader::new(c.stdout.take().expect("stdout"));
            out.read_line(&mut line).expect("relay ready");
            assert_eq!(line.trim(), "ready", "relay child: {line}");
            child = Some((c, out));
        }
    }
    let traffic: Traffic = match (load, case.driver) {
        (Load::Tcp { streams, v6 }, Driver::Builtin) => {
            tb.tcp(v6, streams, dur, None).expect("tcp")
        }
        (Load::Tcp { streams, v6 }, Driver::Iperf3) => {
            iperf3::tcp(tb, v6, streams, dur).expect("iperf3")
        }
        (Load::Udp { v6 }, _) => tb.udp(v6, 1200, 32, dur, None).expect("udp"),
    };
    let mut run = Run {
        gbits: traffic.gbits(),
        intact: traffic.intact,
        ..Run::default()
    };
    if let Some((mut c, mut out)) = child {
        drop(c.stdin.take());
        let mut line = String::new();
        out.read_line(&mut line).expect("relay result");
        c.wait().expect("relay exit");
        let kv = |k: &str| -> f64 {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        let cpu = kv("cpu");
        let gb = traffic.bytes as f64 / 1e9;
        run.cpu_per_gb = if gb > 0.0 { cpu / gb } else { 0.0 };
        run.rss_kib = kv("maxrss") as u64;
        run.rss_growth_kib = kv("rss_growth") as i64;
        let (pin, pout) = (kv("packets_in"), kv("packets_out"));
        run.ratio = if pout > 0.0 { pin / pout } else { 0.0 };
    }
    run
}

/// `--long`: one relay per mode for 60 s, its RSS sampled every second, to
/// show the memory stays flat.
fn long_run(tb: &Testbed) {
    for imp in [
        Imp::Ours(RelayMode::Offload, 1),
        Imp::TunRs(TunRsMode::Offload),
    ] {
        let r = run_case(
            tb,
            Case {
                imp,
                driver: Driver::Builtin,
            },
            Load::Tcp {
                streams: 1,
                v6: false,
            },
            Duration::from_secs(60),
        );
        println!(
            "{}: {:.2} Gbit/s over 60 s, peak RSS {} KiB, RSS growth from 5 s to the end {} KiB",
            imp.label(),
            r.gbits,
            r.rss_kib,
            r.rss_growth_kib
        );
    }
}

// ---------------------------------------------------------------- child --

fn status_kib(field: &str) -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn rss_kib() -> i64 {
    status_kib("VmRSS:")
}

/// The relay process: build the devices in the two namespaces, say
/// `ready`, relay until stdin closes, then print the counters and its own
/// resource use.
fn child(args: &[String]) {
    let imp = Imp::parse(&args[0]).expect("case");
    let ns_a = NetNs::open(&args[1]).expect("ns a");
    let ns_b = NetNs::open(&args[2]).expect("ns b");
    let tb = Testbed::from_namespaces(ns_a, ns_b).expect("test bed");
    let counters: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let start = Instant::now();
    let mut tunnel = None;
    let ours = match imp {
        Imp::Ours(mode, queues) => {
            let offload = mode != RelayMode::Plain;
            let mk = |side| {
                let b = Device::builder()
                    .name("bench%d")
                    .offload(offload)
                    .mtu(1500)
                    .multi_queue(queues > 1)
                    .queues(queues);
                tb.device(side, b).expect("device")
            };
            let (a, b) = (mk(Side::A), mk(Side::B));
            Some(Relay::start(a.into_queues(), b.into_queues(), mode).expect("relay"))
        }
        Imp::OursTap(mode) => {
            let mk = |side| {
                let b = Device::builder()
                    .tap()
                    .name("btap%d")
                    .offload(mode != RelayMode::Plain)
                    .mtu(1500);
                tb.device(side, b).expect("TAP device")
            };
            let (a, b) = (mk(Side::A), mk(Side::B));
            Some(Relay::start(a.into_queues(), b.into_queues(), mode).expect("relay"))
        }
        Imp::TunRs(mode) => {
            tunrs::start(&tb, mode, counters.clone());
            None
        }
        Imp::Tunnel(offload) => {
            tunnel = Some(tunnels::start(&tb, offload));
            None
        }
        Imp::Vxlan(_) | Imp::VxlanTap => {
            let (a, b) = vxlan::start(&tb, imp != Imp::Vxlan(false), imp == Imp::VxlanTap);
            Some(Relay::start(a.into_queues(), b.into_queues(), RelayMode::Offload).expect("relay"))
        }
        Imp::OursAsync | Imp::TunRsAsync => {
            asynch::start(&tb, imp == Imp::OursAsync, counters.clone());
            None
        }
        Imp::OursAsyncThreads => {
            asynch::start_threads(&tb);
            None
        }
        Imp::OursAsyncRun(io) => {
            asynch::start_run(&tb, io);
            None
        }
        Imp::Veth => unreachable!(),
    };
    println!("ready");
    std::io::stdout().flush().ok();
    // Sample RSS while running.
    let rss_at_5s = Arc::new(AtomicU64::new(0));
    {
        let rss_at_5s = rss_at_5s.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(5));
            rss_at_5s.store(rss_kib() as u64, Ordering::Relaxed);
        });
    }
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
    let (pin, pout) = match (ours, tunnel) {
        (Some(r), _) => {
            let (ab, ba) = r.counters();
            drop(r);
            if matches!(imp, Imp::Vxlan(_) | Imp::VxlanTap) {
                vxlan::remove(&tb);
                assert_eq!(
                    ab.tunnel_super_packets_in > 0,
                    imp != Imp::Vxlan(false),
                    "tunnel super-packets across the relay: {ab:?}"
                );
                if imp == Imp::VxlanTap {
                    assert!(ab.tunnel_writes > 0, "coalesced tunnel writes: {ab:?}");
                }
            }
            (ab.packets_in + ba.packets_in, ab.writes + ba.writes)
        }
        // Packets read from the devices per datagram-carrying sendmsg
        // (both ends), the tunnels' batching on the device side.
        (None, Some(t)) => tunnels::stop(t),
        (None, None) => (
            counters[0].load(Ordering::Relaxed),
            counters[1].load(Ordering::Relaxed),
        ),
    };
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let cpu = secs(usage.user_time()) + secs(usage.system_time());
    let at5 = rss_at_5s.load(Ordering::Relaxed) as i64;
    let growth = if at5 > 0 { rss_kib() - at5 } else { 0 };
    println!(
        "cpu={cpu:.4} maxrss={} rss_growth={growth} packets_in={pin} packets_out={pout} secs={:.2}",
        // Not getrusage's ru_maxrss: Linux keeps it across execve, so it
        // would include the orchestrating parent's memory at the fork.
        // VmHWM is this process's own peak, counted from the exec.
        status_kib("VmHWM:"),
        start.elapsed().as_secs_f64()
    );
    std::io::stdout().flush().ok();
    std::process::exit(0);
}

mod tunnels {
    //! The VPN shape: each device joined to a UDP socket by tun-tunnel, the
    //! sockets talking over an underlay veth pair between the namespaces.

    use super::*;
    use std::net::{SocketAddr, UdpSocket};
    use tun_tunnel::{Tunnel, TunnelConfig};

    const PORT: u16 = 4789;

    /// The two tunnels and their underlay (dropped after them).
    pub struct Tunnels {
        a: Tunnel,
        b: Tunnel,
        _underlay: tun_testbed::Veth,
    }

    pub fn start(tb: &Testbed, offload: bool) -> Tunnels {
        // IPv4 underlay: 20 + 8 bytes of headers on top of a 1500-byte
        // inner packet.
        let underlay = tb.underlay(1528).expect("underlay veth");
        let at = |side| SocketAddr::new(tun_testbed::underlay_addr(side, false), PORT);
        let socks: Vec<UdpSocket> = [Side::A, Side::B]
            .into_iter()
            .map(|side| {
                let addr = at(side);
                tb.ns(side)
                    .run(move || Ok(UdpSocket::bind(addr)))
                    .expect("enter namespace")
                    .expect("bind tunnel socket")
            })
            .collect();
        let mut t = Vec::new();
        for ((side, peer), sock) in [(Side::A, Side::B), (Side::B, Side::A)]
            .into_iter()
            .zip(socks)
        {
            let b = Device::builder().name("bench%d").offload(true).mtu(1500);
            let dev = tb.device(side, b).expect("device");
            let config = TunnelConfig::new(at(peer)).gso(offload).gro(offload);
            t.push(Tunnel::start(dev.into_queues().remove(0), sock, config).expect("tunnel"));
        }
        let b = t.pop().expect("two tunnels");
        let a = t.pop().expect("two tunnels");
        Tunnels {
            a,
            b,
            _underlay: underlay,
        }
    }

    /// Stop both; (packets read from the devices, sendmsg calls).
    pub fn stop(t: Tunnels) -> (u64, u64) {
        let (ca, cb) = (t.a.stop().expect("tunnel a"), t.b.stop().expect("tunnel b"));
        (
            ca.tun_to_udp.packets_in + cb.tun_to_udp.packets_in,
            ca.tun_to_udp.writes + cb.tun_to_udp.writes,
        )
    }
}

mod vxlan {
    //! VXLAN over the relay: our TUN devices carry the underlay between
    //! the namespaces, a VXLAN device in each carries the bed's addresses.

    use super::*;

    const NAME: &str = "bvx0";

    /// The underlay devices (not yet relayed; TAP devices with `tap`) and
    /// the VXLAN devices over them, `offload`: the UDP-tunnel offload
    /// offered.
    pub fn start(tb: &Testbed, offload: bool, tap: bool) -> (Device, Device) {
        remove(tb);
        let mk = |side| {
            let ul = tun_testbed::underlay_addr(side, false);
            let ns = tb.ns(side).try_clone().expect("namespace");
            let b = if tap {
                Device::builder().tap().name("bultap%d")
            } else {
                Device::builder().name("bul%d")
            };
            let dev = b
                .offload(true)
                .udp_tunnel_offload(offload)
                .mtu(1550)
                .address(IpNet::new(ul, 24).expect("prefix"))
                .netns(ns)
                .build()
                .expect("underlay device");
            let granted = dev
                .interface()
                .offloads()
                .contains(tun_device::OffloadFlags::UDP_TUNNEL_GSO);
            assert!(
                !offload || granted,
                "the UDP-tunnel offload needs Linux 6.17+"
            );
            dev
        };
        let (a, b) = (mk(Side::A), mk(Side::B));
        for (side, peer) in [(Side::A, Side::B), (Side::B, Side::A)] {
            let local = tun_testbed::underlay_addr(side, false).to_string();
            let remote = tun_testbed::underlay_addr(peer, false).to_string();
            let mut cmds = vec![
                vec![
                    "link", "add", NAME, "type", "vxlan", "id", "42", "local", &local, "remote",
                    &remote, "dstport", "4789",
                ],
                vec!["link", "set", NAME, "mtu", "1500", "up"],
            ];
            let addrs = Testbed::addresses(side).map(|a| a.to_string());
            for a in &addrs {
                cmds.push(vec!["addr", "add", a, "dev", NAME, "nodad"]);
            }
            for args in cmds {
                let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
                let out = tb
                    .ns(side)
                    .run(move || Ok(Command::new("ip").args(&args).output()))
                    .expect("enter namespace")
                    .expect("run ip");
                assert!(
                    out.status.success(),
                    "ip: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        (a, b)
    }

    /// Delete the VXLAN devices (also what a failed run left behind).
    pub fn remove(tb: &Testbed) {
        for side in [Side::A, Side::B] {
            let _ = tb.ns(side).run(|| {
                Ok(Command::new("ip")
                    .args(["link", "del", NAME])
                    .stderr(Stdio::null())
                    .status())
            });
        }
    }
}

mod iperf3 {
    //! iperf3 as the traffic of a TCP case: a one-off server in namespace
    //! B, a client in namespace A (both through `nsenter`), the client's
    //! JSON report read for what the server received.

    use super::*;

    /// Fail early, naming the tools, when iperf3 or nsenter is missing.
    pub fn check() -> Result<(), String> {
        for (tool, package) in [("iperf3", "iperf3"), ("nsenter", "util-linux")] {
            let found = Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok();
            if !found {
                return Err(format!(
                    "{tool} is not installed (Debian package {package})"
                ));
            }
        }
        Ok(())
    }

    fn in_ns(ns: &NetNs) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!(
            "--net=/proc/{}/fd/{}",
            std::process::id(),
            std::os::fd::AsRawFd::as_raw_fd(ns)
        ));
        c
    }

    /// `streams` TCP streams from A to B for `dur`, as iperf3 measures
    /// them (bytes and seconds at the receiver). `intact` is true: iperf3
    /// does not check the data it moves.
    pub fn tcp(tb: &Testbed, v6: bool, streams: usize, dur: Duration) -> Result<Traffic, String> {
        let dst = Testbed::addr(Side::B, v6).to_string();
        let port = "5299";
        let mut server = in_ns(&tb.ns_b)
            .args(["iperf3", "-s", "-1", "-B", &dst, "-p", port])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start the iperf3 server: {e}"))?;
        // The client tries again while the server is not listening yet
        // (iperf3 reports that in its JSON, with or without a failed exit).
        let deadline = Instant::now() + Duration::from_secs(5);
        let report: serde_json::Value = loop {
            let out = in_ns(&tb.ns_a)
                .args(["iperf3", "-c", &dst, "-p", port, "-J"])
                .args(["-t", &format!("{:.1}", dur.as_secs_f64().max(0.5))])
                .args(["-P", &streams.to_string()])
                .output()
                .map_err(|e| format!("run the iperf3 client: {e}"))?;
            let report: serde_json::Value = serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("iperf3 client report is not JSON: {e}"))?;
            let refused = report
                .get("error")
                .and_then(|e| e.as_str())
                .is_some_and(|e| e.contains("Connection refused"));
            if !refused || Instant::now() > deadline {
                break report;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = server.kill();
        let _ = server.wait();
        if let Some(err) = report.get("error") {
            return Err(format!("iperf3 client: {err}"));
        }
        let received = &report["end"]["sum_received"];
        let (Some(bytes), Some(secs)) = (received["bytes"].as_u64(), received["seconds"].as_f64())
        else {
            return Err(format!(
                "iperf3 report without end.sum_received: {received}"
            ));
        };
        Ok(Traffic {
            bytes,
            secs,
            intact: true,
            ..Traffic::default()
        })
    }
}

mod tunrs {
    //! tun-rs 2.8.16 relays, the way its documentation shows them.

    use super::*;
    use tun_rs::{DeviceBuilder, GROTable, IDEAL_BATCH_SIZE, SyncDevice, VIRTIO_NET_HDR_LEN};

    /// A tun-rs device with `side`'s addresses, made by `make` from a
    /// configured builder. tun-rs has no namespace support: it is built on
    /// a thread that entered the namespace (its fd and netlink socket stay
    /// there).
    pub fn build_in<T: Send + 'static>(
        tb: &Testbed,
        side: Side,
        offload: bool,
        make: impl FnOnce(DeviceBuilder) -> T + Send + 'static,
    ) -> T {
        let ns = tb.ns(side).try_clone().expect("ns");
        let (v4, v6) = match side {
            Side::A => (tun_testbed::A4, tun_testbed::A6),
            Side::B => (tun_testbed::B4, tun_testbed::B6),
        };
        std::thread::spawn(move || {
            tun_device::sys::enter_network(std::os::fd::AsFd::as_fd(&ns)).expect("setns");
            let dev = make(
                DeviceBuilder::new()
                    .mtu(1500)
                    .ipv4(v4, 24, None)
                    .ipv6(v6, 64)
                    .offload(offload),
            );
            std::thread::sleep(Duration::from_millis(200)); // IPv6 settles
            dev
        })
        .join()
        .expect("build thread")
    }

    fn build(tb: &Testbed, side: Side, offload: bool) -> SyncDevice {
        build_in(tb, side, offload, |b| {
            b.build_sync().expect("tun-rs device")
        })
    }

    /// The buffers of a tun-rs offload relay, as its documentation sets
    /// them up, with 64 KiB of capacity so its GRO can coalesce.
    pub struct Batch {
        pub original: Vec<u8>,
        pub bufs: Vec<Vec<u8>>,
        pub sizes: Vec<usize>,
        pub gro: GROTable,
    }

    /// Headroom of each buffer: tun-rs's virtio header.
    pub const OFF: usize = VIRTIO_NET_HDR_LEN;

    impl Batch {
        pub fn new() -> Self {
            Batch {
                original: vec![0u8; VIRTIO_NET_HDR_LEN + 65535],
                bufs: (0..IDEAL_BATCH_SIZE)
                    .map(|_| {
                        let mut v = Vec::with_capacity(OFF + 65535);
                        v.resize(OFF + 1500, 0);
                        v
                    })
                    .collect(),
                sizes: vec![0usize; IDEAL_BATCH_SIZE],
                gro: GROTable::default(),
            }
        }

        /// Room for an MTU-sized segment in every buffer again.
        pub fn reset(&mut self) {
            for b in self.bufs.iter_mut() {
                b.resize(OFF + 1500, 0);
            }
        }

        /// The first `n` buffers hold exactly their packets.
        pub fn trim(&mut self, n: usize) {
            for i in 0..n {
                self.bufs[i].truncate(OFF + self.sizes[i]);
            }
        }
    }

    pub fn start(tb: &Testbed, mode: TunRsMode, counters: Arc<[AtomicU64; 2]>) {
        let offload = mode != TunRsMode::Plain;
        let a = Arc::new(build(tb, Side::A, offload));
        let b = Arc::new(build(tb, Side::B, offload));
        for (from, to) in [(a.clone(), b.clone()), (b, a)] {
            let counters = counters.clone();
            std::thread::spawn(move || match mode {
                TunRsMode::Plain | TunRsMode::Passthrough => {
                    // Passthrough: tun-rs's recv on an offload device hands
                    // over the virtio header with the packet; send takes it.
                    let mut buf = vec![0u8; VIRTIO_NET_HDR_LEN + 65535];
                    loop {
                        let Ok(n) = from.recv(&mut buf) else { return };
                        counters[0].fetch_add(1, Ordering::Relaxed);
                        if to.send(&buf[..n]).is_ok() {
                            counters[1].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                TunRsMode::Offload => {
                    let mut b = Batch::new();
                    loop {
                        b.reset();
                        let Ok(n) =
                            from.recv_multiple(&mut b.original, &mut b.bufs, &mut b.sizes, OFF)
                        else {
                            return;
                        };
                        b.trim(n);
                        counters[0].fetch_add(n as u64, Ordering::Relaxed);
                        // tun-rs reports bytes, not writes: its packets
                        // per write stay unknown ("-").
                        let _ = to.send_multiple(&mut b.gro, &mut b.bufs[..n], OFF);
                    }
                }
            });
        }
    }
}

mod asynch {
    //! The async offload relays: tun-async's, and tun-rs's AsyncDevice,
    //! each on its own two-worker tokio runtime; tun-async's with a
    //! thread and current-thread runtime per direction; and tun-async's
    //! `relay::run` on one thread, tokio or async-io.

    use super::*;
    use tun_async::AsyncQueue;

    fn our_devices(tb: &Testbed) -> (Device, Device) {
        let mk = |side| {
            let b = Device::builder().name("bench%d").offload(true).mtu(1500);
            tb.device(side, b).expect("device")
        };
        (mk(Side::A), mk(Side::B))
    }

    /// `relay::spawn_threads`: it makes its own runtimes.
    pub fn start_threads(tb: &Testbed) {
        let (a, b) = our_devices(tb);
        let relay = tun_async::relay::spawn_threads(
            a.into_queues().remove(0),
            b.into_queues().remove(0),
            tun_async::relay::Config::default(),
        )
        .expect("thread relay");
        std::mem::forget(relay); // runs until the process exits
    }

    /// `relay::run` on one thread: a current-thread tokio runtime, or
    /// async-io's `block_on` with the async-io backend (`io`).
    pub fn start_run(tb: &Testbed, io: bool) {
        let (a, b) = our_devices(tb);
        let (a, b) = (a.into_queues().remove(0), b.into_queues().remove(0));
        let config = tun_async::relay::Config::default();
        // Runs until the process exits.
        let forever = std::future::pending::<()>();
        if io {
            std::thread::spawn(move || {
                type Q = AsyncQueue<tun_async::AsyncIo>;
                let qa = Arc::new(Q::register(a).expect("async-io a"));
                let qb = Arc::new(Q::register(b).expect("async-io b"));
                async_io::block_on(tun_async::relay::run(qa, qb, config, forever));
            });
        } else {
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    let qa = Arc::new(AsyncQueue::new(a).expect("async a"));
                    let qb = Arc::new(AsyncQueue::new(b).expect("async b"));
                    tun_async::relay::run(qa, qb, config, forever).await
                });
            });
        }
    }

    pub fn start(tb: &Testbed, ours: bool, counters: Arc<[AtomicU64; 2]>) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        if ours {
            let (a, b) = our_devices(tb);
            rt.block_on(async {
                let qa = Arc::new(AsyncQueue::new(a.into_queues().remove(0)).expect("async a"));
                let qb = Arc::new(AsyncQueue::new(b.into_queues().remove(0)).expect("async b"));
                let relay = tun_async::relay::spawn(qa, qb, tun_async::relay::Config::default());
                std::mem::forget(relay); // runs until the process exits
            });
        } else {
            let build = |side: Side| {
                let handle = rt.handle().clone();
                tunrs::build_in(tb, side, true, move |b| {
                    let _guard = handle.enter();
                    b.build_async().expect("tun-rs async device")
                })
            };
            let a = Arc::new(build(Side::A));
            let b = Arc::new(build(Side::B));
            for (from, to) in [(a.clone(), b.clone()), (b, a)] {
                let counters = counters.clone();
                rt.spawn(async move {
                    let mut b = tunrs::Batch::new();
                    loop {
                        b.reset();
                        let Ok(n) = from
                            .recv_multiple(&mut b.original, &mut b.bufs, &mut b.sizes, tunrs::OFF)
                            .await
                        else {
                            return;
                        };
                        b.trim(n);
                        counters[0].fetch_add(n as u64, Ordering::Relaxed);
                        let _ = to
                            .send_multiple(&mut b.gro, &mut b.bufs[..n], tunrs::OFF)
                            .await;
                    }
                });
            }
        }
        // The runtime runs until the process exits.
        std::mem::forget(rt);
    }
}
