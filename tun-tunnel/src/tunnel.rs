//! A running tunnel: one TUN queue and one UDP socket, a pump thread per
//! direction, stopped like tun-device's relay (one [`Interrupt`] that every
//! wait watches).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;

use tun_device::{Interrupt, OffloadFlags, Queue};

use crate::counters::{TunnelCounters, TunnelStats};
use crate::error::{Error, Result, SocketOp};
use crate::pump;
use crate::socket::Udp;

/// How a tunnel is set up: the peer, and which socket offloads to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelConfig {
    peer: SocketAddr,
    gso: bool,
    gro: bool,
    max_datagram: Option<usize>,
    trust_checksums: bool,
}

impl TunnelConfig {
    /// A tunnel to `peer` with UDP GSO and GRO where the kernel has them.
    pub fn new(peer: SocketAddr) -> Self {
        Self {
            peer,
            gso: true,
            gro: true,
            max_datagram: None,
            trust_checksums: false,
        }
    }

    /// Send runs of equal-size datagrams with one `sendmsg`
    /// (`UDP_SEGMENT`); on by default.
    pub fn gso(mut self, on: bool) -> Self {
        self.gso = on;
        self
    }

    /// Receive datagrams the kernel coalesced (`UDP_GRO`); on by default.
    pub fn gro(mut self, on: bool) -> Self {
        self.gro = on;
        self
    }

    /// The largest datagram payload to send (by default the route's MTU
    /// to the peer, `IP_MTU`/`IPV6_MTU`, less the IP and UDP headers).
    pub fn max_datagram(mut self, bytes: usize) -> Self {
        self.max_datagram = Some(bytes);
        self
    }

    /// Take the transport checksums of the peer's packets as correct
    /// (off by default): coalescing them into the device then skips the
    /// pass that reads every payload to check them
    /// ([`SendState::set_checksums_verified`](tun_device::SendState::set_checksums_verified)).
    /// The underlay's UDP checksum guards the datagrams in transit, not
    /// what the peer put in them: a packet it sent with a bad checksum is
    /// then merged into a super-packet whose checksum the kernel takes as
    /// good. Only for a peer trusted to send correct packets.
    pub fn trust_checksums(mut self, on: bool) -> Self {
        self.trust_checksums = on;
        self
    }

    /// The peer.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

/// What each side of a tunnel was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelOffloads {
    /// The device's negotiated offloads (empty without a virtio header:
    /// packets are then read and written one by one).
    pub tun: OffloadFlags,
    /// UDP GSO in use now (asked for, granted, and not refused since).
    pub gso: bool,
    /// UDP GRO on.
    pub gro: bool,
    /// The largest datagram payload sent.
    pub max_datagram: usize,
}

/// A running tunnel between a TUN queue and a UDP peer.
///
/// Each inner IP packet travels as one datagram, unencrypted and
/// unauthenticated: the socket is connected to the peer, so the kernel
/// takes datagrams from that address only, but anyone able to send from
/// it can write into the device. For tests, benchmarks and trusted
/// underlays.
#[derive(Debug)]
pub struct Tunnel {
    stop: Interrupt,
    threads: Vec<JoinHandle<Result<()>>>,
    stats: Arc<TunnelStats>,
    udp: Arc<Udp>,
    queue: Arc<Queue>,
    tun: OffloadFlags,
}

impl Tunnel {
    /// Start the two pumps between `queue` (of a TUN device, offload on or
    /// off) and `socket` (bound, in the family of the peer).
    pub fn start(queue: Queue, socket: UdpSocket, config: TunnelConfig) -> Result<Tunnel> {
        if queue.interface().is_tap() {
            return Err(Error::NotTun {
                interface: queue.interface_name(),
            });
        }
        let udp = Arc::new(Udp::new(
            socket,
            config.peer,
            config.gso,
            config.gro,
            config.max_datagram,
            config.trust_checksums,
        )?);
        let stop = Interrupt::new()?;
        queue.set_interrupt(Some(stop.clone()));
        queue.set_nonblocking(false);
        let queue = Arc::new(queue);
        let mut tunnel = Tunnel {
            stop,
            threads: Vec::new(),
            stats: Arc::new(TunnelStats::default()),
            tun: if queue.interface().has_vnet_hdr() {
                queue.interface().offloads()
            } else {
                OffloadFlags::empty()
            },
            udp,
            queue: queue.clone(),
        };
        type PumpFn = fn(&Queue, &Udp, &Interrupt, &TunnelStats) -> Result<()>;
        let pumps: [(&str, PumpFn); 2] = [
            ("relay tun>udp", pump::tun_to_udp),
            ("relay udp>tun", pump::udp_to_tun),
        ];
        for (name, f) in pumps {
            let (q, u, s, st) = (
                queue.clone(),
                tunnel.udp.clone(),
                tunnel.stop.clone(),
                tunnel.stats.clone(),
            );
            // Named `relay ...` so that tools that account for relay
            // threads (`tun bench`) count these; on failure, dropping
            // `tunnel` stops and joins what started.
            let t = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || f(&q, &u, &s, &st))
                .map_err(|e| Error::socket(SocketOp::SpawnThread, config.peer, e))?;
            tunnel.threads.push(t);
        }
        Ok(tunnel)
    }

    /// The counters now.
    pub fn counters(&self) -> TunnelCounters {
        self.stats.snapshot()
    }

    /// What each side was granted (GSO as it is now: a kernel that refused
    /// a GSO send has turned it off).
    pub fn offloads(&self) -> TunnelOffloads {
        TunnelOffloads {
            tun: self.tun,
            gso: self.udp.gso_segments() > 1,
            gro: self.udp.gro(),
            max_datagram: self.udp.max_datagram(),
        }
    }

    /// [`check_mtu`] of this tunnel's device against the datagrams it
    /// sends: [`Error::MtuMismatch`] when the device's MTU is larger.
    pub fn check_mtu(&self) -> Result<()> {
        check_mtu(&self.queue, self.udp.max_datagram())
    }

    /// Whether both pumps still run.
    pub fn is_running(&self) -> bool {
        self.threads.iter().all(|t| !t.is_finished())
    }

    /// Stop both pumps (at once, in every state), wait for them, and
    /// return the final counters, or the first error a pump ended with.
    pub fn stop(mut self) -> Result<TunnelCounters> {
        // A write of 1 to a valid eventfd cannot fail.
        let _ = self.stop.raise();
        tun_device::relay::join(self.threads.drain(..))?;
        Ok(self.counters())
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.stop.raise();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Check that every packet `queue`'s device may hand over fits one
/// datagram of `max_datagram` bytes ([`TunnelOffloads::max_datagram`]);
/// [`Error::MtuMismatch`] otherwise. A tunnel runs either way, and counts
/// each packet too large ([`TunnelCounters::too_large`]).
pub fn check_mtu(queue: &Queue, max_datagram: usize) -> Result<()> {
    let inner_mtu = queue.interface().mtu()? as usize;
    if inner_mtu > max_datagram {
        return Err(Error::MtuMismatch {
            interface: queue.interface_name(),
            inner_mtu,
            max_datagram,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_to_both_offloads() {
        let peer: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        let c = TunnelConfig::new(peer);
        assert_eq!(
            (c.gso, c.gro, c.max_datagram, c.peer()),
            (true, true, None, peer)
        );
        let c = c.gso(false).gro(false).max_datagram(1200);
        assert_eq!((c.gso, c.gro, c.max_datagram), (false, false, Some(1200)));
    }
}
