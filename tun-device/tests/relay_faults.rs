//! The library relay under faults: an output link set down under load (and
//! one that starts down), an MTU raised under a running relay, and an idle
//! relay. Each bounds the relay threads' CPU time, read from
//! /proc/self/task, and how long `stop()` takes.

mod common;
mod relay_threads;

use relay_threads::{drained, relay_threads};

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use tun_device::relay::{Relay, RelayMode};

/// Send small datagrams from `ns_a` to B4 at about `rate` per second until
/// `stop`; returns how many were sent.
fn trickle(
    ns_a: &tun_device::NetNs,
    rate: u64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let h = ns_a
        .spawn(move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            let to = SocketAddr::from((B4, 5009));
            let mut n = 0;
            let gap = Duration::from_micros(1_000_000 / rate);
            while !stop.load(Ordering::Relaxed) {
                // Refused sends (ICMP errors coming back) do not matter.
                let _ = s.send_to(&[0u8; 200], to);
                n += 1;
                std::thread::sleep(gap);
            }
            n
        })
        .unwrap();
    std::thread::spawn(move || h.join().unwrap().unwrap())
}

fn down_output(mode: RelayMode, down_from_start: bool) {
    let offload = mode != RelayMode::Plain;
    let Some(p) = pair(offload, 1) else {
        return;
    };
    let b_iface = p.b.interface().clone();
    if down_from_start {
        b_iface.set_up(false).unwrap();
    }
    let Pair { tb, a, b } = p;
    let relay = Relay::start(a.into_queues(), b.into_queues(), mode).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = trickle(&tb.ns_a, 2000, stop.clone());
    std::thread::sleep(Duration::from_millis(200));
    if !down_from_start {
        b_iface.set_up(false).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let (cpu0, _) = relay_threads();
    let (_, dropped0) = relay.counters();
    std::thread::sleep(Duration::from_secs(2));
    let (cpu1, _) = relay_threads();
    let (ab, _) = relay.counters();
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    // 2,000 small packets a second cost the relay a few ms; a pump that
    // retries a refused write at once burns a core.
    assert!(
        cpu1 - cpu0 < 0.4,
        "{mode:?}: relay CPU {:.2} s in 2 s with its output down",
        cpu1 - cpu0
    );
    let dropped = ab.dropped - dropped0.dropped;
    assert!(dropped > 0, "{mode:?}: nothing counted as dropped: {ab:?}");
    assert!(
        dropped <= sent,
        "{mode:?}: {dropped} drops counted for {sent} packets sent"
    );
    // Up again: traffic flows through the same relay.
    b_iface.set_up(true).unwrap();
    // What queued up in `a` while the output was down drains first (the
    // transfer below tolerates no loss, and a full queue drops).
    drained(&relay);
    tb.udp_lossless(false, 1000, 1, Duration::from_millis(300))
        .unwrap_or_else(|e| panic!("{mode:?}: after the link came back: {e}"));
    b_iface.set_up(false).unwrap();
    let t = Instant::now();
    relay.stop().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        t.elapsed()
    );
}

#[test]
fn offload_relay_output_set_down_under_load() {
    down_output(RelayMode::Offload, false);
}

#[test]
fn plain_relay_output_set_down_under_load() {
    down_output(RelayMode::Plain, false);
}

#[test]
fn passthrough_relay_output_set_down_under_load() {
    down_output(RelayMode::Passthrough, false);
}

#[test]
fn offload_relay_output_down_from_the_start() {
    down_output(RelayMode::Offload, true);
}

#[test]
fn plain_relay_follows_an_mtu_raise() {
    let Some(p) = pair(false, 1) else {
        return;
    };
    let (ia, ib) = (p.a.interface().clone(), p.b.interface().clone());
    let Pair { tb, a, b } = p;
    let relay = Relay::start(a.into_queues(), b.into_queues(), RelayMode::Plain).unwrap();
    for mtu in [9000, 65535] {
        ia.set_mtu(mtu).unwrap();
        ib.set_mtu(mtu).unwrap();
        tb.tcp_exact(false, 4 << 20)
            .unwrap_or_else(|e| panic!("MTU {mtu}: {e}"));
        tb.udp_lossless(false, 8000, 1, Duration::from_millis(300))
            .unwrap_or_else(|e| panic!("MTU {mtu}: 8000-byte datagrams: {e}"));
    }
    let (ab, ba) = relay.stop().unwrap();
    assert_eq!(ab.dropped + ba.dropped, 0, "{ab:?} {ba:?}");
}
