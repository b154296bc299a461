//! The tokio relays of `tun_async::relay` between two namespaces through
//! two TUN devices, offload on and off, IPv4 and IPv6: TCP data verified
//! byte for byte, UDP datagrams (UDP_SEGMENT senders) each arriving once.
//! Each case runs with one task per direction (`relay::spawn`) and with
//! one thread and current-thread runtime per direction
//! (`relay::spawn_threads`).

mod common;

use std::time::Duration;

use common::*;

const MIB: usize = 1 << 20;

fn tcp_case(kind: TokioRelay, offload: bool, v6: bool, total: usize) {
    let Some((tb, stop)) = relay_pair(kind, offload) else {
        return;
    };
    let t = tb.tcp_exact(v6, total as u64);
    let stats = stop();
    t.unwrap_or_else(|e| panic!("data arrived changed: {e}"));
    assert!(stats.error().is_none(), "{:?}", stats.error());
    let ab = stats.a_to_b;
    assert_eq!(ab.dropped + stats.b_to_a.dropped, 0, "{stats:?}");
    assert!(ab.packets_in as usize >= total / 1500, "{ab:?}");
    if offload {
        assert!(ab.super_packets_in > 0, "no super-packets read: {ab:?}");
        assert!(ab.writes * 2 < ab.packets_in, "little coalescing: {ab:?}");
    } else {
        assert_eq!(ab.super_packets_in, 0, "{stats:?}");
        assert_eq!(ab.writes, ab.packets_in, "{stats:?}");
    }
}

fn udp_case(kind: TokioRelay, offload: bool, v6: bool) {
    let Some((tb, stop)) = relay_pair(kind, offload) else {
        return;
    };
    let t = tb.udp_lossless(v6, 1200, 16, Duration::from_secs(1));
    let stats = stop();
    let t = t.unwrap_or_else(|e| panic!("datagrams lost, damaged or doubled: {e}"));
    assert!(stats.error().is_none(), "{:?}", stats.error());
    assert!(stats.a_to_b.packets_in >= t.sent, "{stats:?}");
}

/// The cases, once per kind of relay.
macro_rules! cases {
    ($kind:ident, $variant:expr) => {
        mod $kind {
            use super::*;

            #[test]
            fn tcp_v4_offload() {
                tcp_case($variant, true, false, 32 * MIB);
            }

            #[test]
            fn tcp_v6_offload() {
                tcp_case($variant, true, true, 32 * MIB);
            }

            #[test]
            fn tcp_v4_plain() {
                tcp_case($variant, false, false, 8 * MIB);
            }

            #[test]
            fn tcp_v6_plain() {
                tcp_case($variant, false, true, 8 * MIB);
            }

            #[test]
            fn udp_gso_v4_offload() {
                udp_case($variant, true, false);
            }

            #[test]
            fn udp_gso_v6_offload() {
                udp_case($variant, true, true);
            }

            #[test]
            fn udp_gso_v4_plain() {
                udp_case($variant, false, false);
            }
        }
    };
}

cases!(tasks, TokioRelay::Tasks);
cases!(threads, TokioRelay::Threads);
