//! An idle device costs no CPU: after traffic (so tokio holds the queue
//! ready until a read would block), tasks waiting in `recv`, `recv_batch`
//! and a `readable` + `try_recv` loop (the loop that spins in tun-rs and
//! tokio-tun when `WouldBlock` does not clear readiness) use no measurable
//! CPU time over an idle second. Alone in its test binary, so the process's
//! CPU time is that of these tasks.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use tun_async::AsyncQueue;
use tun_device::RecvState;

#[test]
fn idle_device_costs_no_cpu() {
    let Some(ns) = private_ns() else { return };
    let rt = runtime();
    let dev = single(&ns, "idle0", true, 2);
    let _g = rt.enter();
    let mut queues = dev.into_queues().into_iter();
    let q = Arc::new(AsyncQueue::new(queues.next().unwrap()).unwrap());
    let q2 = Arc::new(AsyncQueue::new(queues.next().unwrap()).unwrap());
    let seen = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    {
        let (q, seen) = (q.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while q.recv(&mut buf).await.is_ok() {
                seen.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    {
        let (q, seen) = (q2.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let mut st = RecvState::new();
            let mut bufs = vec![vec![0u8; 2048]; 8];
            let mut sizes = vec![0; 8];
            while let Ok(n) = q.recv_batch(&mut st, &mut bufs, &mut sizes, 0).await {
                seen.fetch_add(n as u64, Ordering::Relaxed);
            }
        }));
    }
    {
        let (q, seen) = (q.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                if q.readable().await.is_err() {
                    return;
                }
                match q.try_recv(&mut buf) {
                    Ok(_) => {
                        seen.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if e.is_would_block() => continue,
                    Err(_) => return,
                }
            }
        }));
    }
    // Traffic first, over several flows so both queues get some.
    ns.run(|| {
        for port in 0..8u16 {
            let s = UdpSocket::bind(SocketAddr::new(A4.into(), 6000 + port)).unwrap();
            for _ in 0..16 {
                s.send_to(&[7u8; 200], SocketAddr::new(B4.into(), 9))
                    .unwrap();
            }
        }
        Ok(())
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.load(Ordering::Relaxed) < 128 {
        assert!(
            Instant::now() < deadline,
            "{} of 128 packets",
            seen.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    let before = process_cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = process_cpu_ticks() - before;
    // A spinning task burns 100 ticks a second; allow a few for timer
    // noise and the kernel's own stray packets.
    assert!(used <= 5, "{used} ticks of CPU in an idle second");
    assert!(tasks.iter().all(|t| !t.is_finished()), "a reader stopped");
    for t in tasks {
        t.abort();
    }
}
