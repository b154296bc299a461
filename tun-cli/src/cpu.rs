//! CPU time of the relay's threads, read from /proc/self/task/TID: the
//! scheduler's nanosecond counter (`schedstat`, first field), or user plus
//! system time in clock ticks from `stat` where schedstat is missing. Only
//! threads named `relay ...` (what `Relay::start` names its pumps) count,
//! so the traffic generator running in the same process is left out.

use std::fs;

/// Clock ticks per second of `stat`'s times (`USER_HZ`, 100 on every
/// Linux architecture this tool builds for).
const USER_HZ: f64 = 100.0;

fn thread_cpu(task: &std::path::Path) -> Option<f64> {
    if let Some(ns) = fs::read_to_string(task.join("schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
    {
        return Some(ns as f64 / 1e9);
    }
    let stat = fs::read_to_string(task.join("stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the
    // first, utime the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / USER_HZ)
}

/// Seconds of CPU the live relay threads of this process have used.
pub fn relay_threads() -> f64 {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| {
            fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("relay "))
        })
        .filter_map(|t| thread_cpu(&t.path()))
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_busy_relay_thread_is_counted() {
        let before = super::relay_threads();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let t = std::thread::Builder::new()
            .name("relay test".into())
            .spawn(move || {
                let mut x = 0u64;
                while !s.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            })
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let during = super::relay_threads();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        t.join().unwrap();
        assert!(during > before, "{before} -> {during}");
    }
}
