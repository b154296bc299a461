//! `tun`: create, delete, show, dump, relay and bench Linux TUN/TAP
//! devices, built on tun-device.
//!
//! Output reads like iproute2's by default; `--json` gives one JSON
//! document (or one object per packet for `dump`) for scripts. Exit
//! status: 0 on success, 1 on a runtime error, 2 on a usage error, 130
//! when Ctrl-C stopped `bench`. Errors are one line on stderr saying what
//! failed, on which interface, why, and what to do.

#![forbid(unsafe_code)]

mod bench;
mod cpu;
mod decode;
mod dump;
mod error;
mod manage;
mod open;
mod pcap;
mod relay;
mod show;
mod util;

use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::error::{CliError, EXIT_RUNTIME};

/// Linux TUN/TAP devices: create, inspect, capture, relay and benchmark.
#[derive(Debug, Parser)]
#[command(
    name = "tun",
    version,
    propagate_version = true,
    after_help = "Exit status: 0 success, 1 runtime error, 2 usage error (130: bench stopped by Ctrl-C)."
)]
struct Cli {
    /// JSON output for scripts (show, create, delete, dump, relay's summary, bench).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a persistent TUN/TAP device.
    Create(manage::CreateArgs),
    /// Delete a persistent TUN/TAP device.
    Delete(manage::DeleteArgs),
    /// Show TUN/TAP devices (like `ip -d link show` and `ip tuntap show`).
    Show(show::ShowArgs),
    /// Print the packets a device reads, or write them to a pcap file.
    Dump(dump::DumpArgs),
    /// Relay packets between two devices, both directions, until Ctrl-C.
    Relay(relay::RelayArgs),
    /// Measure the relay end to end between two private namespaces (as root).
    Bench(bench::BenchArgs),
}

fn run(cli: &Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Create(a) => manage::create(a, cli.json),
        Command::Delete(a) => manage::delete(a, cli.json),
        Command::Show(a) => show::run(a, cli.json),
        Command::Dump(a) => {
            util::catch_interrupt(None);
            dump::run(a, cli.json)
        }
        Command::Relay(a) => {
            util::catch_interrupt(None);
            relay::run(a, cli.json)
        }
        Command::Bench(a) => {
            util::catch_interrupt(Some(Duration::from_secs(3)));
            bench::run(a, cli.json)
        }
    }
}

fn main() {
    // A bug must not print a backtrace at the user: one line, exit 1.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("tun: internal error: {what}{at}; please report it");
        std::process::exit(EXIT_RUNTIME);
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let code = e.exit_code();
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if let Err(e) = run(&cli) {
        eprintln!("tun: {e}");
        std::process::exit(e.exit_code());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
