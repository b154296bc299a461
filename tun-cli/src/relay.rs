//! `tun relay`: tun-device's relay between two devices, both directions,
//! with live rates (Gbit/s and packets/s, over the last second) and
//! totals on stderr, and a summary when Ctrl-C stops it.

use std::time::Instant;

use clap::Args;
use serde::Serialize;
use tun_device::relay::{Relay, RelayCounters, RelayMode};

use crate::error::{CliError, Result};
use crate::open::{self, OpenOptions};
use crate::util;
use crate::watch::watch;

/// Arguments of `tun relay`.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// First device: opened if it exists, else created (gone on exit).
    #[arg(value_parser = crate::names::parse_existing)]
    pub a: String,
    /// Second device, the same way.
    #[arg(value_parser = crate::names::parse_existing)]
    pub b: String,
    /// Split super-packets on receive and coalesce on send (needs devices
    /// with offload; new devices get it).
    #[arg(long)]
    pub offload: bool,
    /// Forward super-packets untouched, virtio header and all (devices
    /// with offload, the same offloads on both).
    #[arg(long, conflicts_with = "offload")]
    pub passthrough: bool,
    /// Queue pairs, one thread per direction each (multi-queue devices).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub queues: u16,
    /// The network namespace of A (a name from `ip netns` or a path).
    #[arg(long, value_name = "NAME|PATH")]
    pub netns_a: Option<String>,
    /// The network namespace of B.
    #[arg(long, value_name = "NAME|PATH")]
    pub netns_b: Option<String>,
}

/// One direction's counters, for output: tun-device's names.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Direction {
    /// Packets received (segments counted one by one).
    pub packets_in: u64,
    /// IP bytes received.
    pub bytes_in: u64,
    /// Super-packets received.
    pub super_packets_in: u64,
    /// Writes made (a coalesced packet counts once).
    pub writes: u64,
    /// Packets per write.
    pub coalescing_ratio: f64,
    /// Packets dropped, each once.
    pub dropped: u64,
}

impl From<RelayCounters> for Direction {
    fn from(c: RelayCounters) -> Self {
        Direction {
            packets_in: c.packets_in,
            bytes_in: c.bytes_in,
            super_packets_in: c.super_packets_in,
            writes: c.writes,
            coalescing_ratio: c.coalescing_ratio(),
            dropped: c.dropped,
        }
    }
}

/// Rates between two snapshots `secs` apart: `(Gbit/s, packets/s)`.
pub fn rates(before: &RelayCounters, after: &RelayCounters, secs: f64) -> (f64, f64) {
    if secs <= 0.0 {
        return (0.0, 0.0);
    }
    let bytes = after.bytes_in.saturating_sub(before.bytes_in) as f64;
    let packets = after.packets_in.saturating_sub(before.packets_in) as f64;
    (bytes * 8.0 / secs / 1e9, packets / secs)
}

fn human_rate(pps: f64) -> String {
    if pps >= 1e6 {
        format!("{:.2} Mpkt/s", pps / 1e6)
    } else if pps >= 1e3 {
        format!("{:.1} kpkt/s", pps / 1e3)
    } else {
        format!("{pps:.0} pkt/s")
    }
}

fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b} B")
    }
}

pub(crate) fn live(c: &RelayCounters, rate: (f64, f64)) -> String {
    format!(
        "{:.2} Gbit/s {}; {} packets {} ({} super-packets in, {} writes, {} dropped)",
        rate.0,
        human_rate(rate.1),
        c.packets_in,
        human_bytes(c.bytes_in),
        c.super_packets_in,
        c.writes,
        c.dropped
    )
}

pub(crate) fn line(from: &str, to: &str, d: &Direction, secs: f64) -> String {
    let gbits = if secs > 0.0 {
        d.bytes_in as f64 * 8.0 / secs / 1e9
    } else {
        0.0
    };
    format!(
        "  {from} -> {to}: {} packets, {} ({gbits:.2} Gbit/s average), {} super-packets in, {} writes ({:.1} packets per write), {} dropped",
        d.packets_in,
        human_bytes(d.bytes_in),
        d.super_packets_in,
        d.writes,
        d.coalescing_ratio,
        d.dropped
    )
}

/// Run `tun relay`.
pub fn run(args: &RelayArgs, json: bool) -> Result<()> {
    let mode = if args.passthrough {
        RelayMode::Passthrough
    } else if args.offload {
        RelayMode::Offload
    } else {
        RelayMode::Plain
    };
    let opts = OpenOptions {
        offload: mode != RelayMode::Plain,
        queues: usize::from(args.queues),
        ..OpenOptions::default()
    };
    let ns_a = args.netns_a.as_deref().map(util::open_netns).transpose()?;
    let ns_b = args.netns_b.as_deref().map(util::open_netns).transpose()?;
    let here = || util::current_ns_id();
    let id_a = ns_a.as_ref().map_or_else(here, util::netns_id);
    let id_b = ns_b.as_ref().map_or_else(here, util::netns_id);
    if args.a == args.b && id_a == id_b {
        return Err(CliError::Usage(format!(
            "relay {} {}: both sides are the same device in the same network namespace; a \
             relay joins two devices (or the same name in two namespaces, with --netns-a/-b)",
            args.a, args.b
        )));
    }
    let a = open::open(Some(&args.a), &opts, ns_a.as_ref())?;
    let b = open::open(Some(&args.b), &opts, ns_b.as_ref())?;
    let (da, db) = (open::describe(&a), open::describe(&b));
    let (na, nb) = (a.name.clone(), b.name.clone());
    let relay = Relay::start(a.device.into_queues(), b.device.into_queues(), mode)
        .map_err(|e| CliError::device(format!("relay {na} <-> {nb} ({})", mode.name()), e))?;
    eprintln!("relay: {da} <-> {db}, {} mode; Ctrl-C stops", mode.name());

    let start = Instant::now();
    let failed = watch(
        "relay",
        || relay.is_running(),
        || relay.counters(),
        |(ab0, ba0), (ab, ba), secs| {
            format!(
                "{na} -> {nb}: {} | {nb} -> {na}: {}",
                live(ab, rates(ab0, ab, secs)),
                live(ba, rates(ba0, ba, secs))
            )
        },
    );
    let secs = start.elapsed().as_secs_f64();
    let (ab, ba) = match relay.stop() {
        Ok(c) => c,
        Err(e) => return Err(CliError::device(format!("relay {na} <-> {nb}"), e)),
    };
    if failed {
        return Err(CliError::refused(
            format!("relay {na} <-> {nb}: a device went away after {secs:.1} s"),
            "it was deleted or its namespace removed; nothing left to relay",
        ));
    }
    let (ab, ba) = (Direction::from(ab), Direction::from(ba));
    if json {
        util::out_json(&serde_json::json!({
            "a": na, "b": nb, "mode": mode.name(), "queues": args.queues,
            "seconds": secs, "a_to_b": ab, "b_to_a": ba,
        }));
    } else {
        util::out(format!(
            "relay {na} <-> {nb} ({} mode, {} queue pair{}) ran {secs:.1} s",
            mode.name(),
            args.queues,
            if args.queues == 1 { "" } else { "s" }
        ));
        util::out(line(&na, &nb, &ab, secs));
        util::out(line(&nb, &na, &ba, secs));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_over_a_window() {
        let a = RelayCounters::default();
        let b = RelayCounters {
            packets_in: 1000,
            bytes_in: 125_000_000,
            ..RelayCounters::default()
        };
        let (g, p) = rates(&a, &b, 0.5);
        assert!((g - 2.0).abs() < 1e-9, "{g}");
        assert!((p - 2000.0).abs() < 1e-9, "{p}");
        assert_eq!(rates(&a, &b, 0.0), (0.0, 0.0));
        assert_eq!(human_rate(2_500_000.0), "2.50 Mpkt/s");
    }
}
