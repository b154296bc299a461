//! An idle tunnel sleeps in the kernel (no periodic wake-ups) and stops
//! at once. Alone in its test binary: it counts every `relay ...` thread
//! of the process.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Voluntary context switches of this process's `relay ...` threads.
fn wakeups() -> u64 {
    let mut n = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with("relay ") {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        n += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .map_or(0, |v| v.trim().parse::<u64>().unwrap());
    }
    n
}

#[test]
fn idle_tunnel_sleeps_and_stops_at_once() {
    let Some(mut bed) = bed(Case {
        under_v6: true,
        ..ON
    }) else {
        return;
    };
    let (a, b) = (bed.a.take().unwrap(), bed.b.take().unwrap());
    // Let the devices' own start-up packets (neighbour discovery, MLD) pass.
    let mut last = (a.counters(), b.counters());
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = (a.counters(), b.counters());
        if now == last {
            break;
        }
        last = now;
    }
    let packets = |c: &tun_tunnel::TunnelCounters| c.tun_to_udp.packets_in + c.datagrams_received;
    let (w0, p0) = (wakeups(), packets(&last.0) + packets(&last.1));
    std::thread::sleep(Duration::from_secs(1));
    let (w1, p1) = (wakeups(), packets(&a.counters()) + packets(&b.counters()));
    // Each packet the kernels still send wakes a pump once; a pump that
    // polled its stop flag every 100 ms would wake 40 times here.
    assert!(
        w1 - w0 <= 2 + 2 * (p1 - p0),
        "idle tunnel threads woke {} times in 1 s for {} packets",
        w1 - w0,
        p1 - p0
    );
    let t = Instant::now();
    a.stop().unwrap();
    b.stop().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        t.elapsed()
    );
}
