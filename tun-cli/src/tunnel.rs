//! `tun tunnel`: one end of a UDP tunnel (tun-tunnel) between a device
//! and a peer address: each IP packet the device hands over goes to the
//! peer as one datagram, each datagram from the peer into the device,
//! offloaded on both sides where the kernel allows (TUN split and
//! coalescing with `--offload`, UDP GSO and GRO unless turned off). Live
//! rates on stderr, a summary when Ctrl-C stops it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use tun_tunnel::{Tunnel, TunnelConfig, TunnelCounters};

use crate::error::{CliError, Result};
use crate::open::{self, OpenOptions};
use crate::relay::{Direction, line, live, rates};
use crate::util;
use crate::watch::watch;

/// Arguments of `tun tunnel`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Packets cross unencrypted and unauthenticated: the socket is connected to
the peer, so only datagrams from that address are taken, but anyone able to
send from it can write into the device. Use it on a trusted underlay, for
trying the offloads by hand; both ends run `tun tunnel`, each with the
other's address as --peer.

Example (two hosts 192.0.2.1 and 192.0.2.2 on a trusted link):
  host 1: tun create t0 --offload --addr 10.0.0.1/24 --mtu 1400 --up
          tun tunnel t0 --offload --peer 192.0.2.2:5300 --bind 192.0.2.1:5300
  host 2: the same with the addresses swapped")]
pub struct TunnelArgs {
    /// The device: opened if it exists, else created (gone on exit).
    #[arg(value_parser = crate::names::parse_existing)]
    pub device: String,
    /// The peer's UDP address (`IP:PORT`, `[IPv6]:PORT`).
    #[arg(long, value_name = "ADDR:PORT")]
    pub peer: SocketAddr,
    /// The local UDP address to bind (default: any address of the peer's
    /// family, the peer's port).
    #[arg(long, value_name = "ADDR:PORT")]
    pub bind: Option<SocketAddr>,
    /// Split the device's super-packets and coalesce what is written into
    /// it (needs a device with offload; a new device gets it).
    #[arg(long)]
    pub offload: bool,
    /// Do not send runs of datagrams with one `sendmsg` (UDP_SEGMENT).
    #[arg(long)]
    pub no_gso: bool,
    /// Do not receive coalesced datagrams (UDP_GRO).
    #[arg(long)]
    pub no_gro: bool,
    /// Take the transport checksums of the peer's packets as correct:
    /// coalescing them skips reading every payload, but a bad checksum
    /// the peer sent is then merged into one the kernel takes as good.
    /// Only for a peer trusted to send correct packets.
    #[arg(long)]
    pub trust_checksums: bool,
    /// The largest datagram to send, in bytes (default: the route's MTU
    /// to the peer less the IP and UDP headers).
    #[arg(long, value_name = "BYTES",
          value_parser = clap::value_parser!(u16).range(68..=65507))]
    pub max_datagram: Option<u16>,
    /// The network namespace of the device and the socket (a name from
    /// `ip netns` or a path).
    #[arg(long, value_name = "NAME|PATH")]
    pub netns: Option<String>,
}

/// The address to bind when `--bind` is not given.
pub fn default_bind(peer: SocketAddr) -> SocketAddr {
    let any = match peer.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(any, peer.port())
}

/// Check what clap cannot: the two addresses in one family.
pub fn check_args(args: &TunnelArgs) -> Result<SocketAddr> {
    let bind = args.bind.unwrap_or_else(|| default_bind(args.peer));
    if bind.is_ipv4() != args.peer.is_ipv4() {
        return Err(CliError::Usage(format!(
            "tunnel: --bind {bind} and --peer {} are of different address families",
            args.peer
        )));
    }
    if args.peer.port() == 0 || args.peer.ip().is_unspecified() {
        return Err(CliError::Usage(format!(
            "tunnel: --peer {} names no peer (an address and a port other than 0)",
            args.peer
        )));
    }
    Ok(bind)
}

/// The summary's socket-side figures.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SocketSide {
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Datagrams per `sendmsg`.
    pub datagrams_per_send: f64,
    /// Datagrams received.
    pub datagrams_received: u64,
    /// Datagrams per `recvmmsg`.
    pub datagrams_per_receive: f64,
    /// Datagrams that were not one whole IP packet.
    pub malformed: u64,
    /// Packets too large for one datagram.
    pub too_large: u64,
    /// GSO sends the kernel refused (sent again one by one).
    pub gso_fallbacks: u64,
    /// Sends that failed otherwise.
    pub send_errors: u64,
}

impl From<&TunnelCounters> for SocketSide {
    fn from(c: &TunnelCounters) -> Self {
        SocketSide {
            datagrams_sent: c.datagrams_sent,
            datagrams_per_send: c.datagrams_per_send(),
            datagrams_received: c.datagrams_received,
            datagrams_per_receive: c.datagrams_per_receive(),
            malformed: c.malformed,
            too_large: c.too_large,
            gso_fallbacks: c.gso_fallbacks,
            send_errors: c.send_errors,
        }
    }
}

/// The socket side in one line.
pub fn socket_line(s: &SocketSide) -> String {
    format!(
        "  socket: {} datagrams sent ({:.1} per send), {} received ({:.1} per receive), \
         {} malformed, {} too large, {} GSO fallbacks, {} send errors",
        s.datagrams_sent,
        s.datagrams_per_send,
        s.datagrams_received,
        s.datagrams_per_receive,
        s.malformed,
        s.too_large,
        s.gso_fallbacks,
        s.send_errors
    )
}

/// Run `tun tunnel`.
pub fn run(args: &TunnelArgs, json: bool) -> Result<()> {
    let bind = check_args(args)?;
    let ns = args.netns.as_deref().map(util::open_netns).transpose()?;
    let opts = OpenOptions {
        offload: args.offload,
        queues: 1,
        ..OpenOptions::default()
    };
    let dev = open::open(Some(&args.device), &opts, ns.as_ref())?;
    let desc = open::describe(&dev);
    let name = dev.name.clone();
    if dev.device.interface().is_tap() {
        return Err(CliError::refused(
            format!("tunnel {name}: a TAP device"),
            "the tunnel carries IP packets: use a TUN device",
        ));
    }
    let sock = util::in_netns(ns.as_ref(), || {
        UdpSocket::bind(bind).map_err(|e| CliError::io(format!("tunnel: bind {bind}"), e))
    })?;
    let mut config = TunnelConfig::new(args.peer)
        .gso(!args.no_gso)
        .gro(!args.no_gro)
        .trust_checksums(args.trust_checksums);
    if let Some(n) = args.max_datagram {
        config = config.max_datagram(usize::from(n));
    }
    let queue = dev.device.into_queues().remove(0);
    let tunnel = Tunnel::start(queue, sock, config).map_err(|e| {
        CliError::refused(
            format!("tunnel {name} <-> {}: {e}", args.peer),
            "check the peer address, the bind address and the device",
        )
    })?;
    let granted = tunnel.offloads();
    eprintln!(
        "tunnel: {desc} <-> udp {bind} -> {}; UDP GSO {}, GRO {}, datagrams up to {} bytes; Ctrl-C stops",
        args.peer,
        if granted.gso { "on" } else { "off" },
        if granted.gro { "on" } else { "off" },
        granted.max_datagram
    );
    // Warn now, not only in the counters, when the device's packets may
    // not fit the underlay.
    if let Err(e) = tunnel.check_mtu() {
        eprintln!("tunnel: warning: {e}");
    }

    let start = Instant::now();
    let failed = watch(
        "tunnel",
        || tunnel.is_running(),
        || tunnel.counters(),
        |c0, c, secs| {
            format!(
                "{name} -> peer: {} | peer -> {name}: {}",
                live(&c.tun_to_udp, rates(&c0.tun_to_udp, &c.tun_to_udp, secs)),
                live(&c.udp_to_tun, rates(&c0.udp_to_tun, &c.udp_to_tun, secs)),
            )
        },
    );
    let secs = start.elapsed().as_secs_f64();
    let c = tunnel.stop().map_err(|e| {
        CliError::refused(
            format!("tunnel {name} <-> {}: {e}", args.peer),
            "the device or the socket failed",
        )
    })?;
    if failed {
        return Err(CliError::refused(
            format!("tunnel {name}: the device went away after {secs:.1} s"),
            "it was deleted or its namespace removed; nothing left to carry",
        ));
    }
    let (out_dir, in_dir) = (Direction::from(c.tun_to_udp), Direction::from(c.udp_to_tun));
    let sock = SocketSide::from(&c);
    if json {
        util::out_json(&serde_json::json!({
            "device": name, "peer": args.peer.to_string(), "bind": bind.to_string(),
            "seconds": secs, "gso": granted.gso, "gro": granted.gro,
            "max_datagram": granted.max_datagram,
            "to_peer": out_dir, "from_peer": in_dir, "socket": sock,
        }));
    } else {
        util::out(format!(
            "tunnel {name} <-> {} ran {secs:.1} s (UDP GSO {}, GRO {})",
            args.peer,
            if tunnel_gso_now(&c, granted.gso) {
                "on"
            } else {
                "off"
            },
            if granted.gro { "on" } else { "off" }
        ));
        util::out(line(&name, "peer", &out_dir, secs));
        util::out(line("peer", &name, &in_dir, secs));
        util::out(socket_line(&sock));
    }
    Ok(())
}

/// Whether GSO was still on at the end: granted and never refused.
fn tunnel_gso_now(c: &TunnelCounters, granted: bool) -> bool {
    granted && c.gso_fallbacks == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        args: TunnelArgs,
    }

    fn parse(argv: &[&str]) -> std::result::Result<TunnelArgs, clap::Error> {
        T::try_parse_from(std::iter::once("t").chain(argv.iter().copied())).map(|t| t.args)
    }

    #[test]
    fn arguments_parse_and_default_the_bind_address() {
        let a = parse(&["t0", "--peer", "192.0.2.2:5300", "--offload", "--no-gro"]).unwrap();
        assert_eq!(a.device, "t0");
        assert!(a.offload && a.no_gro && !a.no_gso && !a.trust_checksums);
        assert_eq!(check_args(&a).unwrap(), "0.0.0.0:5300".parse().unwrap());
        let a = parse(&["t0", "--peer", "[2001:db8::2]:9", "--max-datagram", "1400"]).unwrap();
        assert_eq!(check_args(&a).unwrap(), "[::]:9".parse().unwrap());
        assert_eq!(a.max_datagram, Some(1400));
    }

    #[test]
    fn bad_arguments_are_refused_with_the_reason() {
        assert!(parse(&["t0"]).is_err(), "--peer is required");
        assert!(
            parse(&["t0", "--peer", "192.0.2.2"]).is_err(),
            "a port is required"
        );
        assert!(parse(&["t0", "--peer", "192.0.2.2:1", "--max-datagram", "67"]).is_err());
        let a = parse(&["t0", "--peer", "192.0.2.2:1", "--bind", "[::]:1"]).unwrap();
        let e = check_args(&a).unwrap_err().to_string();
        assert!(e.contains("different address families"), "{e}");
        let a = parse(&["t0", "--peer", "0.0.0.0:1"]).unwrap();
        assert!(
            check_args(&a)
                .unwrap_err()
                .to_string()
                .contains("names no peer")
        );
        let a = parse(&["t0", "--peer", "192.0.2.2:0"]).unwrap();
        assert!(check_args(&a).is_err());
    }

    #[test]
    fn the_socket_line_names_every_counter() {
        let c = TunnelCounters {
            datagrams_sent: 100,
            datagrams_received: 30,
            receives: 3,
            malformed: 2,
            too_large: 1,
            ..TunnelCounters::default()
        };
        let mut c = c;
        c.tun_to_udp.writes = 4;
        let s = socket_line(&SocketSide::from(&c));
        assert_eq!(
            s,
            "  socket: 100 datagrams sent (25.0 per send), 30 received (10.0 per receive), \
             2 malformed, 1 too large, 0 GSO fallbacks, 0 send errors"
        );
        assert!(tunnel_gso_now(&c, true) && !tunnel_gso_now(&c, false));
    }
}
