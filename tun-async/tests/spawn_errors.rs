//! `relay::spawn_threads` when the process runs out of file descriptors
//! (each runtime needs an epoll fd and an eventfd, each queue a duplicate
//! for its registration): with every number of free fds from none to
//! plenty, called from inside an async context, it either starts (and
//! stops) or fails with a typed error naming the interface, never panics
//! (tokio panics when a runtime is dropped in an async context) and leaves
//! no fd open behind it. Alone in its binary: the fd limit is the
//! process's.

mod common;

use std::fs::File;

use common::*;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tun_async::relay;
use tun_device::ErrorKind;

fn open_fds() -> Vec<i32> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Leave exactly `free` fd numbers available: lower the soft limit to just
/// above the highest open fd plus `free`, fill every hole below it, then
/// give `free` back. Returns the fillers (close them to undo) and the old
/// limits.
fn leave_free(free: usize) -> (Vec<File>, (u64, u64)) {
    let old = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    // read_dir's own fd is counted, and closed again: one above is safe.
    let top = *open_fds().iter().max().unwrap() as u64;
    setrlimit(Resource::RLIMIT_NOFILE, top + 1 + free as u64, old.1).unwrap();
    let mut fillers = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        fillers.push(f);
    }
    fillers.truncate(fillers.len() - free);
    (fillers, old)
}

#[test]
fn out_of_fds_spawn_threads_fails_typed_without_panic_or_leak() {
    let Some(ns) = quiet_ns() else { return };
    let outer = current_thread();
    let mut started = 0;
    for free in 0..12 {
        let before = open_fds().len();
        let a = single(&ns, "spe0", false, 1);
        let b = single(&ns, "spe1", false, 1);
        let (qa, qb) = (a.into_queues().remove(0), b.into_queues().remove(0));
        let (fillers, old) = leave_free(free);
        // Inside an async context, as a user's async main would call it.
        let res = outer.block_on(async { relay::spawn_threads(qa, qb, relay::Config::default()) });
        match res {
            Ok(relay) => {
                started += 1;
                let stats = relay.stop();
                assert!(stats.error().is_none(), "{free} free: {stats:?}");
            }
            Err(e) => {
                let text = e.to_string();
                eprintln!("{free} free: {:?} {text}", e.kind());
                assert!(
                    text.contains("spe0") || text.contains("spe1"),
                    "{free} free: the error names no interface: {text}"
                );
                assert!(
                    text.contains("EMFILE"),
                    "{free} free: not the cause: {text}"
                );
                assert_eq!(e.kind(), ErrorKind::Other, "{free} free: {text}");
            }
        }
        drop(fillers);
        setrlimit(Resource::RLIMIT_NOFILE, old.0, old.1).unwrap();
        // The devices (their queues: each device goes with its last fd),
        // the runtimes and the duplicates are closed either way.
        let now = open_fds().len();
        assert!(
            now <= before,
            "{free} free: {now} fds open after, {before} before the devices were made"
        );
    }
    assert!(started > 0, "never started, even with 11 fds free");
}
