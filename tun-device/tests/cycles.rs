//! 10,000 open/close cycles leave no fd and no interface behind. Alone in
//! its test binary, so no other test's fds are counted.

mod common;

use tun_device::Device;

const CYCLES: usize = 10_000;
/// Parallel openers: tearing a device down waits for RCU grace periods,
/// which concurrent teardowns share.
const THREADS: usize = 16;

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn ten_thousand_open_close_cycles_leave_nothing_behind() {
    let Some(ns) = common::private_ns() else {
        return;
    };
    let before = fd_count();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let ns = &ns;
            s.spawn(move || {
                for i in 0..CYCLES / THREADS {
                    let dev = Device::builder()
                        .name(format!("cyc{t}"))
                        .offload(i % 2 == 0)
                        .netns(ns.try_clone().unwrap())
                        .build()
                        .unwrap_or_else(|e| panic!("thread {t} cycle {i}: {e}"));
                    drop(dev);
                }
            });
        }
    });
    assert_eq!(fd_count(), before, "fds leaked");
    let links = common::run_in(&ns, "ip", &["-j", "link", "show"]);
    let v: serde_json::Value = serde_json::from_str(&links).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["ifname"].as_str())
        .collect();
    assert_eq!(names, ["lo"], "interfaces left behind");
}
