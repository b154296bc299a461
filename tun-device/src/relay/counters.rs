//! The counters of one relay direction: one type for every relay of the
//! workspace ([`Relay`](super::Relay), tun-async's relay, the `tun` tool),
//! live as atomics ([`RelayStats`]) and as a snapshot ([`RelayCounters`]).

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one direction, shared between the pump that updates
/// them (once per batch) and whoever reads them.
#[derive(Debug, Default)]
pub struct RelayStats {
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    super_packets_in: AtomicU64,
    tunnel_super_packets_in: AtomicU64,
    writes: AtomicU64,
    tunnel_writes: AtomicU64,
    dropped: AtomicU64,
}

/// A snapshot of [`RelayStats`], or the counters a relay keeps itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayCounters {
    /// IP packets received (segments of a split super-packet counted one
    /// by one; in pass-through, the segments a super-packet carries).
    pub packets_in: u64,
    /// IP bytes received (Ethernet frames on a TAP).
    pub bytes_in: u64,
    /// Reads that returned a super-packet.
    pub super_packets_in: u64,
    /// Of those, UDP-tunnel super-packets (VXLAN or Geneve datagrams
    /// around a TSO/USO super-packet).
    pub tunnel_super_packets_in: u64,
    /// Writes into the other side (a coalesced packet counts once).
    pub writes: u64,
    /// Of those, UDP-tunnel super-packets (coalesced, or passed through)
    /// the output took.
    pub tunnel_writes: u64,
    /// Packets dropped, each counted once: bad or too large on receive,
    /// refused on send, or written into an output that refused writes for
    /// a while (its link down).
    pub dropped: u64,
}

impl RelayCounters {
    /// Packets per write: how much the coalescing (or the kernel's
    /// super-packets, in pass-through) saved.
    pub fn coalescing_ratio(&self) -> f64 {
        if self.writes == 0 {
            0.0
        } else {
            self.packets_in as f64 / self.writes as f64
        }
    }

    /// Add `other` to these counters.
    pub fn add(&mut self, other: &RelayCounters) {
        self.packets_in += other.packets_in;
        self.bytes_in += other.bytes_in;
        self.super_packets_in += other.super_packets_in;
        self.tunnel_super_packets_in += other.tunnel_super_packets_in;
        self.writes += other.writes;
        self.tunnel_writes += other.tunnel_writes;
        self.dropped += other.dropped;
    }
}

impl RelayStats {
    /// The counters now.
    pub fn snapshot(&self) -> RelayCounters {
        RelayCounters {
            packets_in: self.packets_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            super_packets_in: self.super_packets_in.load(Ordering::Relaxed),
            tunnel_super_packets_in: self.tunnel_super_packets_in.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            tunnel_writes: self.tunnel_writes.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    /// Add `delta` (what one batch did).
    pub fn record(&self, delta: &RelayCounters) {
        let add = |field: &AtomicU64, n: u64| {
            if n != 0 {
                field.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.packets_in, delta.packets_in);
        add(&self.bytes_in, delta.bytes_in);
        add(&self.super_packets_in, delta.super_packets_in);
        add(&self.tunnel_super_packets_in, delta.tunnel_super_packets_in);
        add(&self.writes, delta.writes);
        add(&self.tunnel_writes, delta.tunnel_writes);
        add(&self.dropped, delta.dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_deltas_add_up_in_the_snapshot() {
        let stats = RelayStats::default();
        let batch = RelayCounters {
            packets_in: 44,
            bytes_in: 44 * 1400,
            super_packets_in: 1,
            tunnel_super_packets_in: 1,
            writes: 2,
            tunnel_writes: 1,
            dropped: 1,
        };
        stats.record(&batch);
        stats.record(&batch);
        let mut twice = batch;
        twice.add(&batch);
        assert_eq!(stats.snapshot(), twice);
        assert_eq!(twice.coalescing_ratio(), 22.0);
        assert_eq!(RelayCounters::default().coalescing_ratio(), 0.0);
    }
}
