//! `tun bench`: the relay measured end to end on this machine. Two private
//! network namespaces, each holding a TUN device, the relay running in
//! this process between them, and checked TCP and UDP (`UDP_SEGMENT`)
//! traffic from the test bed crossing it; the kernel's own veth pair
//! between the same namespaces is measured in the same rounds as the
//! ceiling. Every cell is measured `--rounds` times, paths alternating,
//! and reported as the median with the spread.
//!
//! `--mode tunnel` measures the VPN shape beside them: the two devices
//! joined by tun-tunnel over a veth underlay (each device's packets sent
//! as UDP datagrams to the other namespace and written into the other
//! device), with the sockets' GSO/GRO on and off, next to the offload
//! relay and the veth pair in the same rounds.
//!
//! Everything it makes goes with the process: the namespaces are
//! anonymous (nothing names them, so they vanish with their last file
//! descriptor), the devices are not persistent and the veth pair lives in
//! one of the namespaces. Ctrl-C cancels the run in progress, tears down
//! in order and prints what was measured; should that not end within the
//! grace period, the process exits and the kernel removes the rest.
//!
//! A run that fails is reported in its cell and the others go on: one
//! failing run does not throw away the rest.

use std::io::IsTerminal;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tun_device::relay::{Relay, RelayCounters, RelayMode};
use tun_device::{Device, ErrorKind};
use tun_testbed::{Side, Testbed, Traffic};
use tun_tunnel::{Tunnel, TunnelConfig, TunnelCounters};

use crate::cpu;
use crate::error::{CliError, Result};
use crate::stats;
use crate::util;

/// Which relay modes to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchMode {
    /// No offload: one write per packet.
    Plain,
    /// Split super-packets on receive, coalesce on send.
    Offload,
    /// Forward super-packets untouched.
    Passthrough,
    /// All three relay modes.
    All,
    /// The UDP tunnel (socket GSO/GRO on, then off) beside the offload
    /// relay.
    Tunnel,
}

/// What the columns of the table mean (printed under it, and in `--help`).
pub const COLUMNS: &str = "\
Gbit/s: checked payload per second, the median of the rounds (min-max in
  brackets); % veth: that median against the kernel's veth pair for the
  same load; CPU s/GB: CPU seconds the relay's threads used per GB of
  payload (from /proc/self/task/TID/schedstat of the threads named `relay
  ...`; the traffic generator, in the same process, is not counted; veth
  runs in the kernel and has none); super-pkts in: reads that returned a
  TSO/USO super-packet; packets/write: packets received per write
  (coalescing, or super-packets passed through; for a tunnel, the
  packets its devices handed over per sendmsg); dgrams/send and
  dgrams/recv: UDP datagrams per sendmsg (UDP_SEGMENT) and per recvmmsg
  (UDP_GRO and batching), tunnels only. A tunnel's devices have an MTU
  smaller by the underlay's IP and UDP headers. UDP is sent without
  congestion control: loss is expected and reported, not an error.";

/// Arguments of `tun bench`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Needs root (CAP_SYS_ADMIN for the namespaces, CAP_NET_ADMIN for the devices).
Traffic stays inside the two namespaces the command makes.

Columns: Gbit/s of checked payload; CPU s/GB: CPU seconds the relay's
threads used per GB of payload, summed from /proc/self/task/TID/schedstat of
the threads named `relay ...`; super-pkts in; packets/write; dgrams/send and
dgrams/recv (tunnels); % veth (see the notes printed under the table).

`--mode tunnel` runs the kernel veth pair, the offload relay and the UDP
tunnel (tun-tunnel over a second veth pair, socket GSO/GRO on, then off) in
the same rounds.

Exit status: 0 when every byte arrived intact, 1 on damage or an error, 130
when Ctrl-C stopped it (after cleaning up and printing what was measured).")]
pub struct BenchArgs {
    /// Seconds of traffic per run (one run per path, load and round).
    #[arg(long, default_value_t = 3, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Rounds: every cell is measured N times, the paths alternating, and
    /// reported as the median with the spread.
    #[arg(long, default_value_t = 3, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=50))]
    pub rounds: u32,
    /// MTU of the devices and the veth pair.
    #[arg(long, default_value_t = 1500, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1280..=65535))]
    pub mtu: u32,
    /// TCP streams per run.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub streams: u16,
    /// Relay modes to measure.
    #[arg(long, value_enum, default_value_t = BenchMode::All)]
    pub mode: BenchMode,
    /// IPv6 traffic instead of IPv4.
    #[arg(long)]
    pub ipv6: bool,
}

/// A path traffic takes between the namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Veth,
    Relay(RelayMode),
    /// Two tunnels over a veth underlay; socket GSO/GRO on or off.
    Tunnel {
        socket_offload: bool,
    },
}

impl Path {
    fn label(self) -> String {
        match self {
            Path::Veth => "kernel veth".into(),
            Path::Relay(m) => format!("relay {}", m.name()),
            Path::Tunnel {
                socket_offload: true,
            } => "tunnel gso/gro".into(),
            Path::Tunnel {
                socket_offload: false,
            } => "tunnel no gso/gro".into(),
        }
    }

    /// The MTU of the path between the namespaces: a tunnel's devices
    /// carry the underlay's MTU less its IP and UDP headers.
    fn inner_mtu(self, args: &BenchArgs) -> u32 {
        match self {
            Path::Tunnel { .. } => args.mtu - if args.ipv6 { 48 } else { 28 },
            _ => args.mtu,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Tcp,
    Udp,
}

impl Load {
    fn label(self, streams: u16) -> String {
        match self {
            Load::Tcp if streams == 1 => "TCP".into(),
            Load::Tcp => format!("TCP x{streams}"),
            Load::Udp => "UDP GSO".into(),
        }
    }
}

/// One run: what the traffic measured and what the relay counted.
#[derive(Debug, Clone)]
struct Run {
    traffic: Traffic,
    /// CPU seconds of the relay threads and the counters' growth.
    relay: Option<(f64, RelayCounters)>,
    /// A tunnel's datagram counts, their growth over the run.
    dgrams: Option<Dgrams>,
}

/// Datagrams and the calls that carried them (both ends of a tunnel).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Dgrams {
    sent: u64,
    sends: u64,
    received: u64,
    receives: u64,
}

impl Dgrams {
    fn of(c: &TunnelCounters) -> Self {
        Dgrams {
            sent: c.datagrams_sent,
            sends: c.tun_to_udp.writes,
            received: c.datagrams_received,
            receives: c.receives,
        }
    }

    fn add(self, o: Dgrams) -> Self {
        Dgrams {
            sent: self.sent + o.sent,
            sends: self.sends + o.sends,
            received: self.received + o.received,
            receives: self.receives + o.receives,
        }
    }

    fn since(self, before: Dgrams) -> Self {
        Dgrams {
            sent: self.sent - before.sent,
            sends: self.sends - before.sends,
            received: self.received - before.received,
            receives: self.receives - before.receives,
        }
    }
}

/// `n / d`, or `None` when nothing was counted.
fn per(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// A round of one cell: what it measured, or its error naming the step.
type RunOutcome = Result<Run, String>;

/// One cell of the table: a path and a load over every round.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    /// `kernel veth` or `relay MODE`.
    pub path: String,
    /// `TCP`, `TCP xN` or `UDP GSO`.
    pub load: String,
    /// Median checked payload throughput over the rounds that ran.
    pub gbits: f64,
    /// Lowest and highest round.
    pub gbits_min: f64,
    /// Highest round.
    pub gbits_max: f64,
    /// Every round's Gbit/s, in order.
    pub rounds: Vec<f64>,
    /// Payload bytes received intact, all rounds.
    pub bytes: u64,
    /// Seconds of traffic, all rounds.
    pub secs: f64,
    /// CPU seconds of the relay's threads, all rounds (none for veth).
    pub cpu_seconds: Option<f64>,
    /// Median CPU seconds per GB of payload.
    pub cpu_s_per_gb: Option<f64>,
    /// Super-packets read by the relay (both directions, all rounds).
    pub super_packets_in: Option<u64>,
    /// Packets the relay received (both directions, all rounds).
    pub packets_in: Option<u64>,
    /// Writes the relay made (both directions, all rounds).
    pub writes: Option<u64>,
    /// Packets per write.
    pub coalescing_ratio: Option<f64>,
    /// UDP datagrams per `sendmsg` (tunnels), all rounds.
    pub datagrams_per_send: Option<f64>,
    /// UDP datagrams per `recvmmsg` (tunnels), all rounds.
    pub datagrams_per_receive: Option<f64>,
    /// Median throughput against the veth pair's median, in percent.
    pub percent_of_veth: Option<f64>,
    /// Every byte received was intact in every round (TCP: and
    /// everything sent arrived).
    pub intact: bool,
    /// Damaged datagrams (UDP) or failed streams (TCP), all rounds.
    pub damaged: u64,
    /// UDP datagrams lost, all rounds (normal: no congestion control).
    pub lost: u64,
    /// UDP datagrams lost, in percent of those sent.
    pub lost_percent: Option<f64>,
    /// Packets the relay dropped, all rounds.
    pub dropped: Option<u64>,
    /// The errors of rounds that failed, each naming its step.
    pub errors: Vec<String>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Seconds per run.
    pub seconds: u64,
    /// Rounds asked for.
    pub rounds: u32,
    /// MTU.
    pub mtu: u32,
    /// TCP streams.
    pub streams: u16,
    /// IP version.
    pub ip: &'static str,
    /// The namespaces used (`net:[INODE]`), gone when the command exits.
    pub netns: Vec<String>,
    /// How relay CPU was measured.
    pub cpu_source: &'static str,
    /// The cells.
    pub results: Vec<CellResult>,
    /// Why the figures may not be trusted (a busy machine, a relay faster
    /// than the kernel's own path).
    pub warnings: Vec<String>,
    /// Whether Ctrl-C stopped it before every round ran.
    pub interrupted: bool,
}

fn sum(c: (RelayCounters, RelayCounters)) -> RelayCounters {
    let (mut a, b) = c;
    a.add(&b);
    a
}

fn delta(after: &RelayCounters, before: &RelayCounters) -> RelayCounters {
    RelayCounters {
        packets_in: after.packets_in - before.packets_in,
        bytes_in: after.bytes_in - before.bytes_in,
        super_packets_in: after.super_packets_in - before.super_packets_in,
        tunnel_super_packets_in: after.tunnel_super_packets_in - before.tunnel_super_packets_in,
        writes: after.writes - before.writes,
        tunnel_writes: after.tunnel_writes - before.tunnel_writes,
        dropped: after.dropped - before.dropped,
    }
}

/// UDP datagram size for a path of MTU `mtu`: what one packet of that
/// MTU carries, at most 8 KiB (the test bed sizes each send from it).
fn udp_segment(mtu: u32, args: &BenchArgs) -> usize {
    let ip_udp = if args.ipv6 { 48 } else { 28 };
    (mtu as usize).saturating_sub(ip_udp).clamp(8, 8192)
}

fn traffic(tb: &Testbed, path: Path, load: Load, args: &BenchArgs) -> tun_testbed::Result<Traffic> {
    let dur = Duration::from_secs(args.seconds);
    match load {
        Load::Tcp => tb.tcp(args.ipv6, usize::from(args.streams), dur, None),
        Load::Udp => tb.udp(
            args.ipv6,
            udp_segment(path.inner_mtu(args), args),
            32,
            dur,
            None,
        ),
    }
}

/// What joins the namespaces for one path; dropped (and so removed) after it.
enum Joined {
    Veth(#[allow(dead_code)] tun_testbed::Veth),
    Relay(Relay),
    Tunnel {
        // Dropped after the tunnels (fields drop in order).
        a: Tunnel,
        b: Tunnel,
        #[allow(dead_code)]
        underlay: tun_testbed::Veth,
    },
}

/// The tunnels' port on both sides of the underlay.
const TUNNEL_PORT: u16 = 5300;

/// Two devices joined by tunnels over a veth underlay of MTU `args.mtu`.
fn join_tunnel(tb: &Testbed, socket_offload: bool, args: &BenchArgs) -> Result<Joined> {
    let underlay = tb
        .underlay(args.mtu)
        .map_err(|e| CliError::testbed("create the underlay veth pair", e))?;
    let v6 = args.ipv6;
    let at = |side| SocketAddr::new(tun_testbed::underlay_addr(side, v6), TUNNEL_PORT);
    // Both sockets before either device: nothing a device sends at once
    // meets a port not yet bound.
    let mut socks = Vec::new();
    for side in [Side::A, Side::B] {
        let addr = at(side);
        let sock = tb
            .ns(side)
            .run(move || Ok(UdpSocket::bind(addr)))
            .map_err(|e| CliError::device(format!("enter side {side:?}"), e))?
            .map_err(|e| CliError::io(format!("bind the tunnel socket to {addr}"), e))?;
        socks.push(sock);
    }
    let mut tunnels = Vec::new();
    for ((side, peer), sock) in [(Side::A, Side::B), (Side::B, Side::A)]
        .into_iter()
        .zip(socks)
    {
        let b = Device::builder()
            .name("bench%d")
            .offload(true)
            .mtu(Path::Tunnel { socket_offload }.inner_mtu(args));
        let dev = tb
            .device(side, b)
            .map_err(|e| CliError::testbed(format!("create the device of side {side:?}"), e))?;
        let config = TunnelConfig::new(at(peer))
            .gso(socket_offload)
            .gro(socket_offload);
        let t = Tunnel::start(dev.into_queues().remove(0), sock, config).map_err(|e| {
            CliError::refused(
                format!("start the tunnel of side {side:?}: {e}"),
                "see the cause above",
            )
        })?;
        tunnels.push(t);
    }
    let (Some(b), Some(a)) = (tunnels.pop(), tunnels.pop()) else {
        return Err(CliError::refused("start the tunnels: not two", "a bug"));
    };
    Ok(Joined::Tunnel { a, b, underlay })
}

/// What the relay or the tunnels counted so far: the relay's counters
/// (for tunnels, their devices' side: packets read, sendmsg calls), and
/// the tunnels' datagrams.
fn counted(j: &Joined) -> Option<(RelayCounters, Option<Dgrams>)> {
    match j {
        Joined::Veth(_) => None,
        Joined::Relay(r) => Some((sum(r.counters()), None)),
        Joined::Tunnel { a, b, .. } => {
            let (ca, cb) = (a.counters(), b.counters());
            let mut c = ca.tun_to_udp;
            c.add(&cb.tun_to_udp);
            c.dropped += ca.udp_to_tun.dropped + cb.udp_to_tun.dropped;
            Some((c, Some(Dgrams::of(&ca).add(Dgrams::of(&cb)))))
        }
    }
}

fn join(tb: &Testbed, path: Path, args: &BenchArgs) -> Result<Joined> {
    match path {
        Path::Veth => tb
            .veth(args.mtu)
            .map(Joined::Veth)
            .map_err(|e| CliError::testbed("create the veth pair", e)),
        Path::Relay(mode) => {
            let mk = |side| {
                let b = Device::builder()
                    .name("bench%d")
                    .offload(mode != RelayMode::Plain)
                    .mtu(args.mtu);
                tb.device(side, b).map_err(|e| {
                    CliError::testbed(format!("create the device of side {side:?}"), e)
                })
            };
            let (a, b) = (mk(Side::A)?, mk(Side::B)?);
            Relay::start(a.into_queues(), b.into_queues(), mode)
                .map(Joined::Relay)
                .map_err(|e| CliError::device(format!("start the {} relay", mode.name()), e))
        }
        Path::Tunnel { socket_offload } => join_tunnel(tb, socket_offload, args),
    }
}

fn one_run(tb: &Testbed, path: Path, joined: &Joined, load: Load, args: &BenchArgs) -> Result<Run> {
    let before = counted(joined).map(|c| (c, cpu::relay_threads()));
    let t = traffic(tb, path, load, args)
        .map_err(|e| CliError::testbed(format!("{} traffic", load.label(args.streams)), e))?;
    let after = counted(joined).map(|c| (c, cpu::relay_threads()));
    let (relay, dgrams) = match (before, after) {
        (Some(((c0, d0), cpu0)), Some(((c1, d1), cpu1))) => (
            Some(((cpu1 - cpu0).max(0.0), delta(&c1, &c0))),
            d1.zip(d0).map(|(d1, d0)| d1.since(d0)),
        ),
        _ => (None, None),
    };
    Ok(Run {
        traffic: t,
        relay,
        dgrams,
    })
}

/// The load average over the last minute, from /proc/loadavg.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn busy_warning() -> Option<String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = load_average()?;
    (load > cores as f64).then(|| {
        format!(
            "the machine is busy (load average {load:.2} on {cores} core{}): the figures are \
             noisy; run again when it is idle",
            if cores == 1 { "" } else { "s" }
        )
    })
}

/// The paths `mode` measures, the veth pair first.
fn paths(mode: BenchMode) -> Vec<Path> {
    let relay = |m: &[RelayMode]| m.iter().map(|&m| Path::Relay(m)).collect::<Vec<_>>();
    let rest = match mode {
        BenchMode::Plain => relay(&[RelayMode::Plain]),
        BenchMode::Offload => relay(&[RelayMode::Offload]),
        BenchMode::Passthrough => relay(&[RelayMode::Passthrough]),
        BenchMode::All => relay(&[RelayMode::Plain, RelayMode::Offload, RelayMode::Passthrough]),
        BenchMode::Tunnel => {
            let mut p = relay(&[RelayMode::Offload]);
            p.push(Path::Tunnel {
                socket_offload: true,
            });
            p.push(Path::Tunnel {
                socket_offload: false,
            });
            p
        }
    };
    std::iter::once(Path::Veth).chain(rest).collect()
}

/// Run `tun bench`.
pub fn run(args: &BenchArgs, json: bool) -> Result<()> {
    let mut tb = Testbed::new().map_err(|e| {
        if e.device_error()
            .is_some_and(|d| d.kind() == ErrorKind::PermissionDenied)
        {
            CliError::refused(
                "bench: create the test network namespaces: \
                 unshare(CLONE_NEWNET) was refused (EPERM)",
                "run as root (it needs CAP_SYS_ADMIN and CAP_NET_ADMIN)",
            )
        } else {
            CliError::testbed("bench: create the test network namespaces", e)
        }
    })?;
    tb.set_cancel(util::cancel_token());
    let netns: Vec<String> = [&tb.ns_a, &tb.ns_b]
        .iter()
        .map(|ns| {
            let fd = std::os::fd::AsRawFd::as_raw_fd(*ns);
            std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into())
        })
        .collect();
    let paths = paths(args.mode);
    let loads = [Load::Tcp, Load::Udp];
    let ip = if args.ipv6 { "IPv6" } else { "IPv4" };
    let per_round = paths.len() * loads.len();
    let total = per_round * args.rounds as usize;
    eprintln!(
        "bench: two private network namespaces (anonymous, gone on exit); {ip}, MTU {}, {} TCP \
         stream{}, {} s per run, {} round{} of {per_round} runs",
        args.mtu,
        args.streams,
        if args.streams == 1 { "" } else { "s" },
        args.seconds,
        args.rounds,
        if args.rounds == 1 { "" } else { "s" },
    );
    let mut warnings: Vec<String> = busy_warning().into_iter().collect();

    let tty = std::io::stderr().is_terminal();
    let pb = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} runs  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.enable_steady_tick(Duration::from_millis(120));

    // (path, load) -> the runs of each round, or their errors.
    let mut runs: Vec<(Path, Load, Vec<RunOutcome>)> = paths
        .iter()
        .flat_map(|&p| loads.iter().map(move |&l| (p, l, Vec::new())))
        .collect();
    let mut record = |path: Path, load: Load, r: RunOutcome| {
        if let Some(cell) = runs.iter_mut().find(|c| c.0 == path && c.1 == load) {
            cell.2.push(r);
        }
    };
    let mut done = 0usize;
    'rounds: for round in 1..=args.rounds {
        for &path in &paths {
            if util::interrupted() {
                break 'rounds;
            }
            let joined = join(&tb, path, args);
            for &load in &loads {
                if util::interrupted() {
                    break 'rounds;
                }
                let what = format!(
                    "round {round}, {}, {}",
                    path.label(),
                    load.label(args.streams)
                );
                pb.set_message(what.clone());
                let res = match &joined {
                    Ok(j) => one_run(&tb, path, j, load, args),
                    Err(e) => Err(CliError::refused(e.to_string(), "see the step above")),
                };
                done += 1;
                pb.inc(1);
                if util::interrupted() {
                    break 'rounds;
                }
                let res = res.map_err(|e| match e {
                    CliError::Refused { message, .. } => format!("{what}: {message}"),
                    e => format!("{what}: {e}"),
                });
                if !tty {
                    match &res {
                        Ok(r) => eprintln!(
                            "bench: [{done}/{total}] {what}: {:.2} Gbit/s{}",
                            r.traffic.gbits(),
                            if r.traffic.intact {
                                ""
                            } else {
                                ", DATA NOT INTACT"
                            }
                        ),
                        Err(e) => eprintln!("bench: [{done}/{total}] {e}"),
                    }
                }
                record(path, load, res);
            }
            let stopped = match joined {
                Ok(Joined::Relay(relay)) => relay.stop().err().map(|e| e.to_string()),
                Ok(Joined::Tunnel { a, b, underlay }) => {
                    let res = a.stop().and(b.stop());
                    drop(underlay);
                    res.err().map(|e| e.to_string())
                }
                _ => None,
            };
            if let Some(e) = stopped {
                record(
                    path,
                    loads[loads.len() - 1],
                    Err(format!(
                        "round {round}, {}: the relay failed: {e}",
                        path.label()
                    )),
                );
            }
        }
    }
    pb.finish_and_clear();
    let interrupted = util::interrupted();
    warnings.extend(busy_warning());
    warnings.dedup();

    let mut results: Vec<CellResult> = runs
        .iter()
        .map(|(path, load, rs)| cell(*path, *load, rs, args))
        .collect();
    for load in loads {
        let label = load.label(args.streams);
        let veth = results
            .iter()
            .find(|r| r.path == Path::Veth.label() && r.load == label && !r.rounds.is_empty())
            .map(|r| r.gbits);
        for r in results.iter_mut().filter(|r| r.load == label) {
            r.percent_of_veth = veth.filter(|v| *v > 0.0).map(|v| 100.0 * r.gbits / v);
            if r.path != Path::Veth.label() && r.percent_of_veth.is_some_and(|p| p > 100.0) {
                warnings.push(format!(
                    "{} beat the kernel's veth pair on {label} ({:.0}%): that is noise (the veth \
                     path does strictly less work); run with more --rounds or on an idle machine",
                    r.path,
                    r.percent_of_veth.unwrap_or_default()
                ));
            }
        }
    }
    let report = Report {
        seconds: args.seconds,
        rounds: args.rounds,
        mtu: args.mtu,
        streams: args.streams,
        ip,
        netns,
        cpu_source: "/proc/self/task/TID/schedstat of the relay threads",
        results,
        warnings,
        interrupted,
    };
    let measured = report.results.iter().any(|r| !r.rounds.is_empty());
    if json {
        util::out_json(&report);
    } else if measured {
        util::out(table(&report));
    }
    if !json {
        for w in &report.warnings {
            eprintln!("bench: warning: {w}");
        }
    }
    if interrupted {
        return Err(CliError::Interrupted(
            "bench: interrupted; devices, veth pair and namespaces removed".into(),
        ));
    }
    let errors: Vec<&String> = report.results.iter().flat_map(|r| &r.errors).collect();
    if let Some(first) = errors.first() {
        return Err(CliError::refused(
            format!(
                "bench: {} of {total} runs failed; the first: {first}",
                errors.len()
            ),
            "the table shows the runs that worked",
        ));
    }
    let bad: Vec<String> = report
        .results
        .iter()
        .filter(|r| !r.intact)
        .map(|r| format!("{}, {}", r.path, r.load))
        .collect();
    if !bad.is_empty() {
        return Err(CliError::refused(
            format!("bench: data did not arrive intact over {}", bad.join("; ")),
            "this is a bug in the relay or the kernel: please report it with this output",
        ));
    }
    Ok(())
}

/// The cell of `path` and `load` from its rounds.
fn cell(path: Path, load: Load, rs: &[RunOutcome], args: &BenchArgs) -> CellResult {
    let ok: Vec<&Run> = rs.iter().filter_map(|r| r.as_ref().ok()).collect();
    let gbits: Vec<f64> = ok.iter().map(|r| r.traffic.gbits()).collect();
    let relay: Vec<(f64, &RelayCounters, u64)> = ok
        .iter()
        .filter_map(|r| r.relay.as_ref().map(|(c, k)| (*c, k, r.traffic.bytes)))
        .collect();
    let total = |f: fn(&RelayCounters) -> u64| {
        (!relay.is_empty()).then(|| relay.iter().map(|(_, c, _)| f(c)).sum::<u64>())
    };
    let packets_in = total(|c| c.packets_in);
    let writes = total(|c| c.writes);
    let cpu_per_gb: Vec<f64> = relay
        .iter()
        .filter(|(_, _, b)| *b > 0)
        .map(|(cpu, _, b)| cpu / (*b as f64 / 1e9))
        .collect();
    let dgrams = ok.iter().filter_map(|r| r.dgrams).reduce(Dgrams::add);
    let lost: u64 = ok.iter().map(|r| r.traffic.lost).sum();
    let sent: u64 = ok.iter().map(|r| r.traffic.sent).sum();
    CellResult {
        path: path.label(),
        load: load.label(args.streams),
        gbits: stats::median(&gbits).unwrap_or(0.0),
        gbits_min: gbits.iter().copied().fold(f64::NAN, f64::min),
        gbits_max: gbits.iter().copied().fold(f64::NAN, f64::max),
        rounds: gbits.clone(),
        bytes: ok.iter().map(|r| r.traffic.bytes).sum(),
        secs: ok.iter().map(|r| r.traffic.secs).sum(),
        cpu_seconds: (!relay.is_empty()).then(|| relay.iter().map(|r| r.0).sum()),
        cpu_s_per_gb: stats::median(&cpu_per_gb),
        super_packets_in: total(|c| c.super_packets_in),
        packets_in,
        writes,
        coalescing_ratio: match (packets_in, writes) {
            (Some(p), Some(w)) if w > 0 => Some(p as f64 / w as f64),
            _ => None,
        },
        datagrams_per_send: dgrams.and_then(|d| per(d.sent, d.sends)),
        datagrams_per_receive: dgrams.and_then(|d| per(d.received, d.receives)),
        percent_of_veth: None,
        intact: !ok.is_empty() && ok.iter().all(|r| r.traffic.intact && r.traffic.bytes > 0),
        damaged: ok.iter().map(|r| r.traffic.damaged).sum(),
        lost,
        lost_percent: (load == Load::Udp && sent > 0).then(|| 100.0 * lost as f64 / sent as f64),
        dropped: total(|c| c.dropped),
        errors: rs
            .iter()
            .filter_map(|r| r.as_ref().err().cloned())
            .collect(),
    }
}

/// The report as a table, with the columns explained under it.
pub fn table(r: &Report) -> String {
    let mut s = format!(
        "{} traffic, MTU {}, {} s per run, {} round{}; relay in this process, CPU from its threads\n\n",
        r.ip,
        r.mtu,
        r.seconds,
        r.rounds,
        if r.rounds == 1 { "" } else { "s" }
    );
    s.push_str(&format!(
        "{:<18} {:<8} {:>8} {:>15} {:>7} {:>9} {:>14} {:>14} {:>11} {:>11}  {}\n",
        "path",
        "load",
        "Gbit/s",
        "(min-max)",
        "% veth",
        "CPU s/GB",
        "super-pkts in",
        "packets/write",
        "dgrams/send",
        "dgrams/recv",
        "check"
    ));
    let opt = |v: Option<f64>, prec: usize| match v {
        Some(v) => format!("{v:.prec$}"),
        None => "-".into(),
    };
    let mut loads: Vec<&str> = Vec::new();
    for x in &r.results {
        if !loads.contains(&x.load.as_str()) {
            loads.push(&x.load);
        }
    }
    for load in loads {
        for x in r.results.iter().filter(|x| x.load == load) {
            if x.rounds.is_empty() {
                let why = x.errors.first().map_or("not run", |_| "FAILED (see below)");
                s.push_str(&format!("{:<18} {:<8} {:>8}  {why}\n", x.path, x.load, "-"));
                continue;
            }
            let mut check = if x.intact {
                "intact".to_string()
            } else {
                "DAMAGED".into()
            };
            if let Some(p) = x.lost_percent {
                check.push_str(&format!(", {p:.1}% of datagrams lost"));
            }
            if !x.errors.is_empty() {
                check.push_str(&format!(", {} round(s) FAILED", x.errors.len()));
            }
            s.push_str(&format!(
                "{:<18} {:<8} {:>8.2} {:>15} {:>7} {:>9} {:>14} {:>14} {:>11} {:>11}  {}\n",
                x.path,
                x.load,
                x.gbits,
                format!("({:.2}-{:.2})", x.gbits_min, x.gbits_max),
                opt(x.percent_of_veth, 0),
                opt(x.cpu_s_per_gb, 2),
                x.super_packets_in.map_or("-".into(), |v| v.to_string()),
                opt(x.coalescing_ratio, 1),
                opt(x.datagrams_per_send, 1),
                opt(x.datagrams_per_receive, 1),
                check
            ));
        }
    }
    s.push('\n');
    s.push_str(COLUMNS);
    for x in &r.results {
        for e in &x.errors {
            s.push_str(&format!("\nfailed: {e}"));
        }
    }
    for w in &r.warnings {
        s.push_str(&format!("\nwarning: {w}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> BenchArgs {
        BenchArgs {
            seconds: 1,
            rounds: 3,
            mtu: 1500,
            streams: 1,
            mode: BenchMode::Plain,
            ipv6: false,
        }
    }

    /// A report of `results` (1 s, 3 rounds, IPv4, MTU 1500).
    fn report(results: Vec<CellResult>) -> Report {
        Report {
            seconds: 1,
            rounds: 3,
            mtu: 1500,
            streams: 1,
            ip: "IPv4",
            netns: vec![],
            cpu_source: "",
            results,
            warnings: vec![],
            interrupted: false,
        }
    }

    fn run(gbits: f64) -> RunOutcome {
        Ok(Run {
            traffic: Traffic {
                bytes: (gbits * 1e9 / 8.0) as u64,
                secs: 1.0,
                intact: true,
                ..Traffic::default()
            },
            relay: None,
            dgrams: None,
        })
    }

    #[test]
    fn a_failed_round_keeps_the_others_and_is_reported() {
        let a = args();
        let c = cell(
            Path::Veth,
            Load::Udp,
            &[
                run(3.0),
                Err("round 2, kernel veth, UDP GSO: boom".into()),
                run(1.0),
            ],
            &a,
        );
        assert_eq!(c.rounds.len(), 2);
        assert!((c.gbits - 2.0).abs() < 1e-6, "{c:?}");
        assert!((c.gbits_min - 1.0).abs() < 1e-6 && (c.gbits_max - 3.0).abs() < 1e-6);
        assert_eq!(
            c.errors,
            vec!["round 2, kernel veth, UDP GSO: boom".to_string()]
        );
        let failed = cell(
            Path::Relay(RelayMode::Plain),
            Load::Udp,
            &[Err("x: y".into())],
            &a,
        );
        let mut report = report(vec![c, failed]);
        report.warnings = vec!["the machine is busy".into()];
        let t = table(&report);
        assert!(t.contains("kernel veth        UDP GSO      2.00"), "{t}");
        assert!(t.contains("1 round(s) FAILED"), "{t}");
        assert!(
            t.contains("relay plain        UDP GSO         -  FAILED"),
            "{t}"
        );
        assert!(
            t.contains("failed: round 2, kernel veth, UDP GSO: boom"),
            "{t}"
        );
        assert!(t.contains("warning: the machine is busy"), "{t}");
        assert!(
            t.contains("CPU s/GB: CPU seconds"),
            "the columns are explained: {t}"
        );
    }

    #[test]
    fn tunnel_mode_measures_veth_the_offload_relay_and_both_tunnels() {
        assert_eq!(
            paths(BenchMode::Tunnel),
            [
                Path::Veth,
                Path::Relay(RelayMode::Offload),
                Path::Tunnel {
                    socket_offload: true
                },
                Path::Tunnel {
                    socket_offload: false
                }
            ]
        );
        assert_eq!(paths(BenchMode::All).len(), 4, "all relay modes, no tunnel");
        let mut a = args();
        let t = Path::Tunnel {
            socket_offload: false,
        };
        assert_eq!(t.label(), "tunnel no gso/gro");
        assert_eq!((t.inner_mtu(&a), Path::Veth.inner_mtu(&a)), (1472, 1500));
        assert_eq!(udp_segment(t.inner_mtu(&a), &a), 1444);
        a.ipv6 = true;
        assert_eq!(t.inner_mtu(&a), 1452);
        assert_eq!(udp_segment(t.inner_mtu(&a), &a), 1404);
    }

    #[test]
    fn a_tunnel_cell_shows_datagrams_per_call() {
        let a = args();
        let mut r = run(2.0).unwrap();
        r.dgrams = Some(Dgrams {
            sent: 600,
            sends: 20,
            received: 600,
            receives: 60,
        });
        let path = Path::Tunnel {
            socket_offload: true,
        };
        let c = cell(path, Load::Tcp, &[Ok(r.clone()), Ok(r), run(1.0)], &a);
        assert_eq!(c.datagrams_per_send, Some(30.0));
        assert_eq!(c.datagrams_per_receive, Some(10.0));
        let veth = cell(Path::Veth, Load::Tcp, &[run(3.0)], &a);
        assert_eq!(
            (veth.datagrams_per_send, veth.datagrams_per_receive),
            (None, None)
        );
        let report = report(vec![veth, c]);
        let t = table(&report);
        assert!(t.contains("dgrams/send dgrams/recv  check"), "{t}");
        let row = t.lines().find(|l| l.starts_with("tunnel gso/gro")).unwrap();
        assert!(row.ends_with("30.0        10.0  intact"), "{row}");
        assert_eq!(
            Dgrams::default().since(Dgrams::default()),
            Dgrams::default()
        );
        assert_eq!(per(1, 0), None);
    }
}
