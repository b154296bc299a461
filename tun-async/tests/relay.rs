//! The tokio relays of `tun_async::relay` between two namespaces through
//! two TUN devices, offload on and off, IPv4 and IPv6: TCP data verified
//! by digest, UDP datagrams (UDP_SEGMENT senders) counted exactly once.
//! Each case runs with one task per direction (`relay::spawn`) and with
//! one thread and current-thread runtime per direction
//! (`relay::spawn_threads`).

mod common;

use std::net::IpAddr;

use common::*;

const MIB: usize = 1 << 20;

fn tcp_case(kind: TokioRelay, offload: bool, v6: bool, total: usize) {
    let Some((ns_a, ns_b, stop)) = relay_pair(kind, offload) else {
        return;
    };
    let dst: IpAddr = if v6 { B6 } else { B4 }.parse().unwrap();
    let (sent, dsent, got, dgot) = tcp_transfer(&ns_a, &ns_b, dst, total);
    let stats = stop();
    assert_eq!((got, dgot), (sent, dsent), "data arrived changed");
    assert!(stats.error().is_none(), "{:?}", stats.error());
    let ab = stats.a_to_b;
    assert_eq!(ab.dropped + stats.b_to_a.dropped, 0, "{stats:?}");
    assert!(ab.packets_in as usize >= total / 1500, "{ab:?}");
    if offload {
        assert!(ab.super_packets_in > 0, "no super-packets read: {ab:?}");
        assert!(ab.writes * 2 < ab.packets_in, "little coalescing: {ab:?}");
    } else {
        assert_eq!(ab.super_packets_in, 0);
        assert_eq!(ab.writes, ab.packets_in);
    }
}

fn udp_case(kind: TokioRelay, offload: bool, v6: bool) {
    let Some((ns_a, ns_b, stop)) = relay_pair(kind, offload) else {
        return;
    };
    let dst: IpAddr = if v6 { B6 } else { B4 }.parse().unwrap();
    let count = 20_000;
    let (ok, bad) = udp_gso_transfer(&ns_a, &ns_b, dst, count, 1200, 16);
    let stats = stop();
    assert_eq!((ok, bad), (count, 0), "datagrams lost, damaged or doubled");
    assert!(stats.error().is_none(), "{:?}", stats.error());
    assert!(stats.a_to_b.packets_in >= count, "{stats:?}");
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
