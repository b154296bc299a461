//! Stopping the tokio relays (one task per direction, and one thread with a
//! current-thread runtime per direction): prompt while idle and while a
//! flood of datagrams flows through, and a direction that ends by itself
//! (its device deleted) is reported as finished and as `DeviceGone`,
//! and the other ends likewise when it meets the deletion.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use tun_async::relay::End;

/// How long a stop may take on a shared two-core machine.
const PROMPT: Duration = Duration::from_millis(300);

fn stops_promptly(kind: TokioRelay) {
    // Idle.
    let Some((_tb, stop)) = relay_pair(kind, true) else {
        return;
    };
    std::thread::sleep(Duration::from_millis(200));
    let (stats, took) = timed_stop(stop);
    assert!(took < PROMPT, "idle stop took {took:?}");
    assert!(matches!(stats.a_to_b_end, End::Stopped), "{stats:?}");
    assert!(matches!(stats.b_to_a_end, End::Stopped), "{stats:?}");

    // Flooded: datagrams sent back to back for as long as the relay runs.
    let Some((tb, stop)) = relay_pair(kind, true) else {
        return;
    };
    let sending = Arc::new(AtomicBool::new(true));
    let sender = {
        let (ns_a, sending) = (tb.ns_a.try_clone().unwrap(), sending.clone());
        std::thread::spawn(move || {
            while sending.load(Ordering::Relaxed) {
                udp_send(&ns_a, B4, 7200, 2000, 1200, Duration::ZERO);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (stats, took) = timed_stop(stop);
    sending.store(false, Ordering::Relaxed);
    sender.join().unwrap();
    assert!(took < PROMPT, "stop under traffic took {took:?}");
    assert!(matches!(stats.a_to_b_end, End::Stopped), "{stats:?}");
    assert!(
        stats.a_to_b.packets_in > 1000,
        "the flood did not reach the relay: {stats:?}"
    );
}

#[test]
fn tasks_stop_promptly() {
    stops_promptly(TokioRelay::Tasks);
}

#[test]
fn threads_stop_promptly() {
    stops_promptly(TokioRelay::Threads);
}

/// Wait up to 2 s for `done`.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn threads_report_a_direction_whose_device_went() {
    let Some((tb, a, b)) = pair(true) else { return };
    let (ns_a, out) = (tb.ns_a, b.interface().clone());
    let relay = tun_async::relay::spawn_threads(
        a.into_queues().remove(0),
        b.into_queues().remove(0),
        tun_async::relay::Config::default(),
    )
    .unwrap();
    assert_eq!(relay.finished(), (false, false));
    out.delete().unwrap();
    // b to a reads the deleted device: it ends at once (EPOLLERR).
    assert!(eventually(|| relay.finished().1), "{:?}", relay.finished());
    // a to b ends at its next write into the deleted device (ours below,
    // or one of the kernel's own IPv6 packets), served by its own thread
    // while the other direction's thread idles.
    assert!(eventually(|| {
        udp_send(&ns_a, B4, 7201, 1, 100, Duration::ZERO);
        relay.finished().0
    }));
    assert!(relay.is_finished());
    let (stats, took) = timed_stop(Box::new(move || relay.stop()));
    assert!(took < PROMPT, "{took:?}");
    assert!(matches!(stats.a_to_b_end, End::DeviceGone), "{stats:?}");
    assert!(matches!(stats.b_to_a_end, End::DeviceGone), "{stats:?}");
}
