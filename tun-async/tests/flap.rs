//! The relay across a link flap: its output link set down under traffic,
//! then up again. While down the relay drops what it reads (each packet
//! counted once) and backs off instead of spinning; once up, datagrams
//! pass again, 500 of 500; and a stop while the link is down returns at
//! once. With tokio's tasks (`relay::spawn`), tokio's thread per
//! direction (`relay::spawn_threads`) and, with the `async-io` feature,
//! `relay::run` on async-io's `block_on`.

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use tun_async::relay::End;
use tun_device::Queue;

/// Count the datagrams of `count` sent from `ns_a` to B4:`port` (one
/// every 300 µs) that arrive in `ns_b`, each sequence number once.
fn pass(ns_a: &tun_device::NetNs, ns_b: &tun_device::NetNs, port: u16, count: u64) -> u64 {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = ns_b
        .spawn(move || {
            let s = UdpSocket::bind(format!("{B4}:{port}")).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut seen = vec![false; count as usize];
            let mut buf = [0u8; 2048];
            while let Ok(k) = s.recv(&mut buf) {
                let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
                if k == 200 && seq < count {
                    seen[seq as usize] = true;
                }
            }
            seen.iter().filter(|&&s| s).count() as u64
        })
        .unwrap();
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    udp_send(ns_a, B4, port, count, 200, Duration::from_micros(300));
    server.join().unwrap().unwrap()
}

fn link_flap(start: impl FnOnce(Queue, Queue) -> Stopper) {
    let Some((tb, a, b)) = pair(true) else { return };
    let Testbed { ns_a, ns_b, .. } = tb;
    let out = b.interface().clone();
    let stop = start(a.into_queues().remove(0), b.into_queues().remove(0));

    assert_eq!(pass(&ns_a, &ns_b, 7100, 500), 500, "before the flap");

    // Down under traffic: a second of datagrams, one a millisecond.
    out.set_up(false).unwrap();
    let cpu = process_cpu_ticks();
    udp_send(&ns_a, B4, 7101, 1000, 200, Duration::from_millis(1));
    let ticks = process_cpu_ticks() - cpu;
    assert!(
        ticks <= 30,
        "the relay spun while its output was down: {ticks} ticks in 1 s"
    );

    out.set_up(true).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(pass(&ns_a, &ns_b, 7102, 500), 500, "after the flap");

    // Down again, traffic flowing: the stop returns at once.
    out.set_up(false).unwrap();
    let sending = Arc::new(AtomicBool::new(true));
    let sender = {
        let (ns_a, sending) = (ns_a.try_clone().unwrap(), sending.clone());
        std::thread::spawn(move || {
            while sending.load(Ordering::Relaxed) {
                udp_send(&ns_a, B4, 7103, 10, 200, Duration::from_millis(1));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (stats, took) = timed_stop(stop);
    sending.store(false, Ordering::Relaxed);
    sender.join().unwrap();
    assert!(took < Duration::from_millis(300), "stop took {took:?}");
    assert!(matches!(stats.a_to_b_end, End::Stopped), "{stats:?}");
    assert!(matches!(stats.b_to_a_end, End::Stopped), "{stats:?}");
    let ab = stats.a_to_b;
    // Each dropped packet once: no more than were sent while down (1000,
    // and at most ~300 more before the stop), and some were.
    assert!(ab.dropped > 0 && ab.dropped <= 1400, "{ab:?}");
    assert!(ab.packets_in >= 1000 + ab.dropped.min(1000), "{ab:?}");
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_relay_survives_a_link_flap() {
    link_flap(|a, b| start_relay(TokioRelay::Tasks, a, b));
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_thread_relay_survives_a_link_flap() {
    link_flap(|a, b| start_relay(TokioRelay::Threads, a, b));
}

#[cfg(feature = "async-io")]
#[test]
fn async_io_relay_survives_a_link_flap() {
    use tun_async::{AsyncIo, AsyncQueue, relay};
    link_flap(|a, b| {
        let a = Arc::new(AsyncQueue::<AsyncIo>::register(a).unwrap());
        let b = Arc::new(AsyncQueue::<AsyncIo>::register(b).unwrap());
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let thread = std::thread::spawn(move || {
            let stop = async move {
                while !flag.load(Ordering::Relaxed) {
                    async_io::Timer::after(Duration::from_millis(5)).await;
                }
            };
            async_io::block_on(relay::run(a, b, relay::Config::default(), stop))
        });
        Box::new(move || {
            stopping.store(true, Ordering::Relaxed);
            thread.join().unwrap()
        })
    });
}
