//! The tokio relay of `tun_async::relay` between two namespaces through
//! two TUN devices, offload on and off, IPv4 and IPv6: TCP data verified
//! by digest, UDP datagrams (UDP_SEGMENT senders) counted exactly once.

mod common;

use std::net::IpAddr;
use std::sync::Arc;

use common::*;
use tun_async::{AsyncQueue, relay};

const MIB: usize = 1 << 20;

fn start(p: common::Pair, rt: &tokio::runtime::Runtime) -> (NsPair, relay::Relay) {
    let _g = rt.enter();
    let a = Arc::new(AsyncQueue::new(p.a.into_queues().remove(0)).unwrap());
    let b = Arc::new(AsyncQueue::new(p.b.into_queues().remove(0)).unwrap());
    let relay = relay::spawn(a, b, relay::Config::default());
    (
        NsPair {
            a: p.ns_a,
            b: p.ns_b,
        },
        relay,
    )
}

struct NsPair {
    a: tun_device::NetNs,
    b: tun_device::NetNs,
}

fn tcp_case(offload: bool, v6: bool, total: usize) {
    let Some(p) = pair(offload, 1, 1500) else {
        return;
    };
    let rt = runtime();
    let (ns, relay) = start(p, &rt);
    let dst: IpAddr = if v6 { B6 } else { B4 }.parse().unwrap();
    let (sent, dsent, got, dgot) = tcp_transfer(&ns.a, &ns.b, dst, total);
    let stats = rt.block_on(relay.stop());
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

#[test]
fn tcp_v4_offload() {
    tcp_case(true, false, 32 * MIB);
}

#[test]
fn tcp_v6_offload() {
    tcp_case(true, true, 32 * MIB);
}

#[test]
fn tcp_v4_plain() {
    tcp_case(false, false, 8 * MIB);
}

#[test]
fn tcp_v6_plain() {
    tcp_case(false, true, 8 * MIB);
}

fn udp_case(offload: bool, v6: bool) {
    let Some(p) = pair(offload, 1, 1500) else {
        return;
    };
    let rt = runtime();
    let (ns, relay) = start(p, &rt);
    let dst: IpAddr = if v6 { B6 } else { B4 }.parse().unwrap();
    let count = 20_000;
    let (ok, bad) = udp_gso_transfer(&ns.a, &ns.b, dst, count, 1200, 16);
    let stats = rt.block_on(relay.stop());
    assert_eq!((ok, bad), (count, 0), "datagrams lost, damaged or doubled");
    assert!(stats.error().is_none(), "{:?}", stats.error());
    assert!(stats.a_to_b.packets_in >= count, "{stats:?}");
}

#[test]
fn udp_gso_v4_offload() {
    udp_case(true, false);
}

#[test]
fn udp_gso_v6_offload() {
    udp_case(true, true);
}

#[test]
fn udp_gso_v4_plain() {
    udp_case(false, false);
}
