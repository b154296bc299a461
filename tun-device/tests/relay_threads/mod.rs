//! What the relay tests read about the relay's threads: their CPU time
//! and wake-ups from /proc/self/task, and when the relay went quiet.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use tun_device::relay::Relay;

/// (CPU seconds, voluntary context switches) of this process's threads
/// whose name starts with "relay ".
pub fn relay_threads() -> (f64, u64) {
    let ticks = 100.0; // USER_HZ on every Linux architecture we build for
    let (mut cpu, mut switches) = (0.0, 0);
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if !comm.starts_with("relay ") {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name: state is field 3, utime 14.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        cpu += (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / ticks;
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        switches += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .map_or(0, |v| v.trim().parse().unwrap());
    }
    (cpu, switches)
}

/// Wait until the relay has moved nothing for 200 ms.
pub fn drained(relay: &Relay) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = relay.counters();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = relay.counters();
        if now == last {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the relay never went quiet: {now:?}"
        );
        last = now;
    }
}
