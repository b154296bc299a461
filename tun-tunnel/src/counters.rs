//! The tunnel's counters: tun-device's [`RelayCounters`] for each
//! direction (so a tunnel reads like a relay), and what only a tunnel has:
//! datagrams per send and per receive, malformed datagrams, packets too
//! large for the underlay, GSO sends the kernel refused.

use std::sync::atomic::{AtomicU64, Ordering};

use tun_device::relay::{RelayCounters, RelayStats};

/// A snapshot of a tunnel's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TunnelCounters {
    /// From the device to the peer: packets read (segments of split
    /// super-packets one by one), `writes` = `sendmsg` calls, `dropped` =
    /// packets lost (too large, or refused by the socket).
    pub tun_to_udp: RelayCounters,
    /// From the peer to the device: whole inner packets received,
    /// `super_packets_in` = receive buffers the kernel coalesced (UDP_GRO)
    /// from more than one datagram, `writes` = device writes, `dropped` =
    /// packets lost (malformed, or refused by the device).
    pub udp_to_tun: RelayCounters,
    /// Datagrams sent to the peer.
    pub datagrams_sent: u64,
    /// Datagrams received from the peer, malformed ones included.
    pub datagrams_received: u64,
    /// `recvmmsg` calls that returned datagrams.
    pub receives: u64,
    /// Datagrams that were not one whole IP packet: dropped.
    pub malformed: u64,
    /// Packets from the device larger than one datagram to the peer may
    /// be (an MTU mismatch): dropped.
    pub too_large: u64,
    /// GSO sends the kernel refused (EIO, EINVAL): their datagrams were
    /// sent one by one, and GSO is off from then on.
    pub gso_fallbacks: u64,
    /// Sends that failed for another reason (ENOBUFS, an unreachable
    /// peer): their datagrams were dropped.
    pub send_errors: u64,
}

impl TunnelCounters {
    /// Datagrams per `sendmsg` (what UDP_SEGMENT saved).
    pub fn datagrams_per_send(&self) -> f64 {
        ratio(self.datagrams_sent, self.tun_to_udp.writes)
    }

    /// Datagrams per `recvmmsg` (what UDP_GRO and the batch saved).
    pub fn datagrams_per_receive(&self) -> f64 {
        ratio(self.datagrams_received, self.receives)
    }

    /// Add `other` to these counters.
    pub fn add(&mut self, other: &TunnelCounters) {
        self.tun_to_udp.add(&other.tun_to_udp);
        self.udp_to_tun.add(&other.udp_to_tun);
        self.datagrams_sent += other.datagrams_sent;
        self.datagrams_received += other.datagrams_received;
        self.receives += other.receives;
        self.malformed += other.malformed;
        self.too_large += other.too_large;
        self.gso_fallbacks += other.gso_fallbacks;
        self.send_errors += other.send_errors;
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// The live counters, updated by the pumps once per batch.
#[derive(Debug, Default)]
pub(crate) struct TunnelStats {
    pub(crate) tun_to_udp: RelayStats,
    pub(crate) udp_to_tun: RelayStats,
    datagrams_sent: AtomicU64,
    datagrams_received: AtomicU64,
    receives: AtomicU64,
    malformed: AtomicU64,
    too_large: AtomicU64,
    gso_fallbacks: AtomicU64,
    send_errors: AtomicU64,
}

/// What the socket side did in one batch, added to the live counters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SocketDelta {
    pub(crate) datagrams_sent: u64,
    pub(crate) datagrams_received: u64,
    pub(crate) receives: u64,
    pub(crate) malformed: u64,
    pub(crate) too_large: u64,
    pub(crate) gso_fallbacks: u64,
    pub(crate) send_errors: u64,
}

impl TunnelStats {
    pub(crate) fn record(&self, d: &SocketDelta) {
        for (field, n) in [
            (&self.datagrams_sent, d.datagrams_sent),
            (&self.datagrams_received, d.datagrams_received),
            (&self.receives, d.receives),
            (&self.malformed, d.malformed),
            (&self.too_large, d.too_large),
            (&self.gso_fallbacks, d.gso_fallbacks),
            (&self.send_errors, d.send_errors),
        ] {
            if n != 0 {
                field.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn snapshot(&self) -> TunnelCounters {
        let get = |f: &AtomicU64| f.load(Ordering::Relaxed);
        TunnelCounters {
            tun_to_udp: self.tun_to_udp.snapshot(),
            udp_to_tun: self.udp_to_tun.snapshot(),
            datagrams_sent: get(&self.datagrams_sent),
            datagrams_received: get(&self.datagrams_received),
            receives: get(&self.receives),
            malformed: get(&self.malformed),
            too_large: get(&self.too_large),
            gso_fallbacks: get(&self.gso_fallbacks),
            send_errors: get(&self.send_errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_add_up_and_ratios_divide_safely() {
        let stats = TunnelStats::default();
        let d = SocketDelta {
            datagrams_sent: 40,
            datagrams_received: 30,
            receives: 3,
            malformed: 1,
            too_large: 2,
            gso_fallbacks: 1,
            send_errors: 4,
        };
        stats.record(&d);
        stats.tun_to_udp.record(&RelayCounters {
            writes: 2,
            ..RelayCounters::default()
        });
        let c = stats.snapshot();
        assert_eq!(c.datagrams_per_send(), 20.0);
        assert_eq!(c.datagrams_per_receive(), 10.0);
        assert_eq!(
            (c.malformed, c.too_large, c.gso_fallbacks, c.send_errors),
            (1, 2, 1, 4)
        );
        let mut twice = c;
        twice.add(&c);
        assert_eq!(twice.datagrams_sent, 80);
        assert_eq!(twice.tun_to_udp.writes, 4);
        assert_eq!(TunnelCounters::default().datagrams_per_send(), 0.0);
        assert_eq!(TunnelCounters::default().datagrams_per_receive(), 0.0);
    }
}
