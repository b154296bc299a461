//! `tun`: create, delete, show, dump, relay and bench Linux TUN/TAP
//! devices, built on tun-device.
//!
//! Output reads like iproute2's by default; `-j`/`--json` gives one JSON
//! document (or one object per packet for `dump`) with iproute2's key
//! names where `ip -j` shows the same thing, `-p`/`--pretty` indents it.
//! `ip tuntap`'s verbs work as aliases (`add`, `del`, `list`). Shell
//! completions and the man page come from the same clap definitions
//! (`tun completions SHELL`, `tun man`). Exit
//! status: 0 on success, 1 on a runtime error, 2 on a usage error, 130
//! when Ctrl-C stopped `bench` (or it was interrupted during set-up). Errors are one line on stderr saying what
//! failed, on which interface, why, and what to do.

#![forbid(unsafe_code)]

mod bench;
mod cpu;
mod decode;
mod dump;
mod error;
mod manage;
mod names;
mod offloads;
mod open;
mod pcap;
mod relay;
mod show;
mod stats;
mod tunnel;
mod util;
mod watch;

use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

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
    /// JSON output for scripts (show, create, delete, dump, relay's and tunnel's
    /// summary, bench), with iproute2's key names where `ip -j` shows the
    /// same thing.
    #[arg(short = 'j', long, global = true)]
    json: bool,
    /// Pretty-print JSON output (indented, as `ip -j -p`).
    #[arg(short = 'p', long, global = true)]
    pretty: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a persistent TUN/TAP device (`ip tuntap add`).
    #[command(visible_alias = "add")]
    Create(manage::CreateArgs),
    /// Delete a persistent TUN/TAP device (`ip tuntap del`).
    #[command(visible_alias = "del")]
    Delete(manage::DeleteArgs),
    /// Show TUN/TAP devices (like `ip -d link show` and `ip tuntap list`).
    #[command(visible_alias = "list")]
    Show(show::ShowArgs),
    /// Print the packets a device reads, or write them to a pcap file.
    Dump(dump::DumpArgs),
    /// Relay packets between two devices, both directions, until Ctrl-C.
    Relay(relay::RelayArgs),
    /// One end of a UDP tunnel: a device's packets to a peer as datagrams and back, until Ctrl-C.
    Tunnel(tunnel::TunnelArgs),
    /// Measure the relay end to end between two private namespaces (as root).
    Bench(bench::BenchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), made from the same definitions as `--help`.
    Man,
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
        Command::Tunnel(a) => {
            util::catch_interrupt(None);
            tunnel::run(a, cli.json)
        }
        Command::Bench(a) => {
            util::catch_interrupt(Some(Duration::from_secs(3)));
            bench::run(a, cli.json)
        }
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "tun", &mut out);
            util::out(String::from_utf8_lossy(&out).trim_end());
            Ok(())
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .map_err(|e| error::CliError::io("render the man page", e))?;
            util::out(String::from_utf8_lossy(&out).trim_end());
            Ok(())
        }
    }
}

/// Print a clap error as clap would, with a rejected value's control
/// characters escaped (a newline in a name must not split the line).
fn print_clap_error(e: &clap::Error) {
    use clap::error::{ContextKind, ContextValue};
    let mut text = e.render().to_string();
    if let Some(ContextValue::String(v)) = e.get(ContextKind::InvalidValue) {
        if v.chars().any(char::is_control) {
            text = text.replace(v.as_str(), &names::one_line(v));
        }
    }
    if e.use_stderr() {
        eprint!("{text}");
    } else {
        util::out(text.trim_end());
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
            print_clap_error(&e);
            std::process::exit(code);
        }
    };
    util::set_pretty(cli.pretty);
    if let Err(e) = run(&cli) {
        // After Ctrl-C, whatever failed failed because of it.
        let e = match e {
            e @ (error::CliError::Usage(_) | error::CliError::Interrupted(_)) => e,
            e if util::interrupted() => {
                error::CliError::Interrupted(format!("interrupted ({})", e))
            }
            e => e,
        };
        eprintln!("tun: {}", names::one_line(&e.to_string()));
        std::process::exit(e.exit_code());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
