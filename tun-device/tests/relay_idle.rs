//! An idle relay sleeps in the kernel (no periodic wake-ups) and stops at
//! once. Alone in its test binary: it counts every relay thread of the
//! process.

mod common;
mod relay_threads;

use std::time::{Duration, Instant};

use common::*;
use relay_threads::{drained, relay_threads};
use tun_device::relay::{Relay, RelayMode};

#[test]
fn idle_relay_sleeps_and_stops_at_once() {
    let Some(p) = pair(true, 1) else {
        return;
    };
    let relay = Relay::start(p.a.into_queues(), p.b.into_queues(), RelayMode::Offload).unwrap();
    drained(&relay);
    let (_, s0) = relay_threads();
    let (ab0, ba0) = relay.counters();
    std::thread::sleep(Duration::from_secs(1));
    let (_, s1) = relay_threads();
    let (ab1, ba1) = relay.counters();
    // The kernels' own packets (IPv6 multicast reports and the like) wake
    // a pump once each at most; a pump that polls its stop flag every
    // 100 ms wakes 20 times here.
    let packets = ab1.packets_in - ab0.packets_in + ba1.packets_in - ba0.packets_in;
    assert!(
        s1 - s0 <= 2 + packets,
        "idle relay threads woke {} times in 1 s for {packets} packets",
        s1 - s0
    );
    let t = Instant::now();
    relay.stop().unwrap();
    // At once on a quiet machine (the pumps wait on the interrupt); the
    // bound only catches a hang: a loaded machine delays threads.
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        t.elapsed()
    );
}
