//! `tun bench`: the relay measured end to end on this machine. Two private
//! network namespaces, each holding a TUN device, the relay running in
//! this process between them, and checked TCP and UDP (`UDP_SEGMENT`)
//! traffic from tun-device's test bed crossing it; the kernel's own veth
//! pair between the same namespaces is measured in the same run as the
//! ceiling.
//!
//! Everything it makes goes with the process: the namespaces are
//! anonymous (nothing names them, so they vanish with their last file
//! descriptor), the devices are not persistent and the veth pair lives in
//! one of the namespaces. Ctrl-C stops between runs and tears down in
//! order; should a run not end within the grace period, the process exits
//! and the kernel removes the rest.

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tun_device::relay::{Relay, RelayCounters, RelayMode};
use tun_device::testbed::{Side, Testbed, Traffic};
use tun_device::{Device, ErrorKind};

use crate::cpu;
use crate::error::{CliError, Result};
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
    /// All three.
    All,
}

/// Arguments of `tun bench`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Needs root (CAP_SYS_ADMIN for the namespaces, CAP_NET_ADMIN for the devices).
Traffic stays inside the two namespaces the command makes.

Columns: Gbit/s of checked payload; CPU s/GB: CPU seconds the relay's
threads used per GB of payload, summed from /proc/self/task/TID/schedstat of
the threads named `relay ...` (the traffic generator, in the same process, is
not counted; the veth path runs in the kernel and has none); super-packets
in: reads that returned a TSO/USO super-packet; packets/write: packets
received per write made (coalescing, or super-packets passed through);
% veth: throughput against the kernel's veth pair in the same run.
UDP is sent as fast as the sender can, without congestion control: loss is
expected and reported, not an error; Gbit/s counts what arrived intact.

Exit status: 0 when every byte arrived intact, 1 on damage or an error, 130
when Ctrl-C stopped it (after cleaning up).")]
pub struct BenchArgs {
    /// Seconds of traffic per run (one run per path and load).
    #[arg(long, default_value_t = 3, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
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
}

impl Path {
    fn label(self) -> String {
        match self {
            Path::Veth => "kernel veth".into(),
            Path::Relay(m) => format!("relay {}", m.name()),
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

/// One run's measurement.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// `kernel veth` or `relay MODE`.
    pub path: String,
    /// `TCP`, `TCP xN` or `UDP GSO`.
    pub load: String,
    /// Checked payload throughput.
    pub gbits: f64,
    /// Payload bytes received intact.
    pub bytes: u64,
    /// Seconds of traffic.
    pub secs: f64,
    /// CPU seconds of the relay's threads (none for veth).
    pub cpu_seconds: Option<f64>,
    /// CPU seconds per GB of payload.
    pub cpu_s_per_gb: Option<f64>,
    /// Super-packets read by the relay (both directions).
    pub super_packets_in: Option<u64>,
    /// Packets the relay received (both directions).
    pub packets_in: Option<u64>,
    /// Writes the relay made (both directions).
    pub writes_out: Option<u64>,
    /// Packets per write.
    pub coalescing_ratio: Option<f64>,
    /// Throughput against the veth pair of the same load, in percent.
    pub percent_of_veth: Option<f64>,
    /// Every byte received was intact (TCP: and everything sent arrived).
    pub intact: bool,
    /// Damaged datagrams (UDP) or failed streams (TCP).
    pub damaged: u64,
    /// UDP datagrams lost (normal: UDP has no congestion control).
    pub lost: u64,
    /// UDP datagrams lost, in percent of those sent.
    pub lost_percent: Option<f64>,
    /// Packets the relay dropped for an error.
    pub relay_errors: Option<u64>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Seconds per run.
    pub seconds: u64,
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
    /// The runs.
    pub results: Vec<RunResult>,
}

fn sum(c: (RelayCounters, RelayCounters)) -> RelayCounters {
    let (mut a, b) = c;
    a.add(&b);
    a
}

fn check_interrupt() -> Result<()> {
    if util::interrupted() {
        Err(CliError::Interrupted(
            "bench: interrupted; devices, veth pair and namespaces removed".into(),
        ))
    } else {
        Ok(())
    }
}

/// UDP datagram size for `mtu`.
fn udp_segment(args: &BenchArgs) -> usize {
    let ip_udp = if args.ipv6 { 48 } else { 28 };
    (args.mtu as usize - ip_udp).min(8192)
}

fn traffic(tb: &Testbed, load: Load, args: &BenchArgs) -> Result<Traffic> {
    let dur = Duration::from_secs(args.seconds);
    let res = match load {
        Load::Tcp => tb.tcp(args.ipv6, usize::from(args.streams), dur, None),
        Load::Udp => tb.udp(args.ipv6, udp_segment(args), 32, dur, None),
    };
    res.map_err(|e| CliError::device(format!("bench: {} traffic", load.label(args.streams)), e))
}

/// Run `tun bench`.
pub fn run(args: &BenchArgs, json: bool) -> Result<()> {
    let tb = Testbed::new().map_err(|e| {
        if e.kind() == ErrorKind::PermissionDenied {
            CliError::refused(
                "bench: cannot create the test network namespaces: \
                 unshare(CLONE_NEWNET) was refused (EPERM)",
                "run as root (it needs CAP_SYS_ADMIN and CAP_NET_ADMIN)",
            )
        } else {
            CliError::device("bench: create the test network namespaces", e)
        }
    })?;
    let netns: Vec<String> = [&tb.ns_a, &tb.ns_b]
        .iter()
        .map(|ns| {
            let fd = std::os::fd::AsRawFd::as_raw_fd(*ns);
            std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into())
        })
        .collect();
    let modes: Vec<RelayMode> = match args.mode {
        BenchMode::Plain => vec![RelayMode::Plain],
        BenchMode::Offload => vec![RelayMode::Offload],
        BenchMode::Passthrough => vec![RelayMode::Passthrough],
        BenchMode::All => vec![RelayMode::Plain, RelayMode::Offload, RelayMode::Passthrough],
    };
    let paths: Vec<Path> = std::iter::once(Path::Veth)
        .chain(modes.iter().map(|&m| Path::Relay(m)))
        .collect();
    let loads = [Load::Tcp, Load::Udp];
    let ip = if args.ipv6 { "IPv6" } else { "IPv4" };
    eprintln!(
        "bench: namespaces {} (anonymous, gone on exit); {ip}, MTU {}, {} TCP stream{}, {} s per run, {} runs",
        netns.join(" "),
        args.mtu,
        args.streams,
        if args.streams == 1 { "" } else { "s" },
        args.seconds,
        paths.len() * loads.len()
    );

    let tty = std::io::stderr().is_terminal();
    let pb = ProgressBar::with_draw_target(
        Some((paths.len() * loads.len()) as u64),
        ProgressDrawTarget::stderr(),
    );
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} runs  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.enable_steady_tick(Duration::from_millis(120));

    let mut results: Vec<RunResult> = Vec::new();
    let outcome = (|| -> Result<()> {
        for &path in &paths {
            check_interrupt()?;
            // What joins the namespaces; dropped (and so removed) at the end of the path.
            let mut relay = None;
            let _veth = match path {
                Path::Veth => Some(
                    tb.veth(args.mtu)
                        .map_err(|e| CliError::device("bench: create the veth pair", e))?,
                ),
                Path::Relay(mode) => {
                    let mk = |side| {
                        let b = Device::builder()
                            .name("bench%d")
                            .offload(mode != RelayMode::Plain)
                            .mtu(args.mtu);
                        tb.device(side, b).map_err(|e| {
                            CliError::device(
                                format!("bench: create the device of side {side:?}"),
                                e,
                            )
                        })
                    };
                    let (a, b) = (mk(Side::A)?, mk(Side::B)?);
                    relay = Some(
                        Relay::start(a.into_queues(), b.into_queues(), mode).map_err(|e| {
                            CliError::device(format!("bench: start the {} relay", mode.name()), e)
                        })?,
                    );
                    None
                }
            };
            for &load in &loads {
                check_interrupt()?;
                let what = format!("{}, {}", path.label(), load.label(args.streams));
                pb.set_message(what.clone());
                let before = relay
                    .as_ref()
                    .map(|r| (sum(r.counters()), cpu::relay_threads()));
                let t = traffic(&tb, load, args)?;
                let after = relay
                    .as_ref()
                    .map(|r| (sum(r.counters()), cpu::relay_threads()));
                let gb = t.bytes as f64 / 1e9;
                let mut r = RunResult {
                    path: path.label(),
                    load: load.label(args.streams),
                    gbits: t.gbits(),
                    bytes: t.bytes,
                    secs: t.secs,
                    cpu_seconds: None,
                    cpu_s_per_gb: None,
                    super_packets_in: None,
                    packets_in: None,
                    writes_out: None,
                    coalescing_ratio: None,
                    percent_of_veth: None,
                    intact: t.intact && t.bytes > 0,
                    damaged: t.damaged,
                    lost: t.lost,
                    lost_percent: (load == Load::Udp).then(|| {
                        let got = t.bytes / udp_segment(args) as u64;
                        100.0 * t.lost as f64 / (got + t.lost).max(1) as f64
                    }),
                    relay_errors: None,
                };
                if let (Some((c0, cpu0)), Some((c1, cpu1))) = (before, after) {
                    let cpu = (cpu1 - cpu0).max(0.0);
                    let pin = c1.packets_in - c0.packets_in;
                    let pout = c1.writes - c0.writes;
                    r.cpu_seconds = Some(cpu);
                    r.cpu_s_per_gb = (gb > 0.0).then(|| cpu / gb);
                    r.super_packets_in = Some(c1.super_packets_in - c0.super_packets_in);
                    r.packets_in = Some(pin);
                    r.writes_out = Some(pout);
                    r.coalescing_ratio = (pout > 0).then(|| pin as f64 / pout as f64);
                    r.relay_errors = Some(c1.dropped - c0.dropped);
                }
                pb.inc(1);
                if !tty {
                    eprintln!(
                        "bench: [{}/{}] {what}: {:.2} Gbit/s{}",
                        pb.position(),
                        paths.len() * loads.len(),
                        r.gbits,
                        if r.intact { "" } else { ", DATA NOT INTACT" }
                    );
                }
                results.push(r);
            }
            if let Some(relay) = relay.take() {
                relay.stop().map_err(|e| {
                    CliError::device(format!("bench: the {} relay failed", path.label()), e)
                })?;
            }
        }
        Ok(())
    })();
    pb.finish_and_clear();
    outcome?;

    for load in loads {
        let label = load.label(args.streams);
        let veth = results
            .iter()
            .find(|r| r.path == Path::Veth.label() && r.load == label)
            .map(|r| r.gbits);
        for r in results.iter_mut().filter(|r| r.load == label) {
            r.percent_of_veth = veth.filter(|v| *v > 0.0).map(|v| 100.0 * r.gbits / v);
        }
    }
    let report = Report {
        seconds: args.seconds,
        mtu: args.mtu,
        streams: args.streams,
        ip,
        netns,
        cpu_source: "/proc/self/task/TID/schedstat of the relay threads",
        results,
    };
    if json {
        util::out_json(&report);
    } else {
        util::out(table(&report));
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

/// The report as a table.
pub fn table(r: &Report) -> String {
    let mut s = format!(
        "{} traffic, MTU {}, {} s per run; relay in this process, CPU from its threads\n\n",
        r.ip, r.mtu, r.seconds
    );
    s.push_str(&format!(
        "{:<18} {:<8} {:>8} {:>7} {:>9} {:>14} {:>14}  {}\n",
        "path", "load", "Gbit/s", "% veth", "CPU s/GB", "super-pkts in", "packets/write", "check"
    ));
    let mut loads: Vec<&str> = Vec::new();
    for x in &r.results {
        if !loads.contains(&x.load.as_str()) {
            loads.push(&x.load);
        }
    }
    let opt = |v: Option<f64>, prec: usize| match v {
        Some(v) => format!("{v:.prec$}"),
        None => "-".into(),
    };
    for load in loads {
        for x in r.results.iter().filter(|x| x.load == load) {
            let mut check = if x.intact {
                "intact".to_string()
            } else {
                "DAMAGED".into()
            };
            if let Some(p) = x.lost_percent {
                check.push_str(&format!(", {p:.1}% of datagrams lost"));
            }
            s.push_str(&format!(
                "{:<18} {:<8} {:>8.2} {:>7} {:>9} {:>14} {:>14}  {}\n",
                x.path,
                x.load,
                x.gbits,
                opt(x.percent_of_veth, 0),
                opt(x.cpu_s_per_gb, 2),
                x.super_packets_in.map_or("-".into(), |v| v.to_string()),
                opt(x.coalescing_ratio, 1),
                check
            ));
        }
    }
    s.pop();
    s
}
