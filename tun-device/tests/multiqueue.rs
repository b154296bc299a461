//! Multi-queue: N queues read by N threads while many flows cross the
//! device; every datagram the kernel delivered is seen exactly once.

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use tun_device::{Device, RecvState};

const QUEUES: usize = 4;
const FLOWS: u64 = 16;
const PER_FLOW: u64 = 2_000;

#[test]
fn queues_read_by_threads_lose_and_duplicate_nothing() {
    let Some(ns) = private_ns() else { return };
    for offload in [false, true] {
        let dev = Device::builder()
            .name("mq%d")
            .queues(QUEUES)
            .offload(offload)
            .address("10.5.0.1/24".parse().unwrap())
            .netns(ns.try_clone().unwrap())
            .build()
            .unwrap();
        let total = FLOWS * PER_FLOW;
        let seen: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
        let got = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        for q in dev.into_queues() {
            let (seen, got, stop) = (seen.clone(), got.clone(), stop.clone());
            readers.push(std::thread::spawn(move || {
                let mut st = RecvState::new();
                let mut bufs = vec![vec![0u8; 2048]; 32];
                let mut sizes = vec![0usize; 32];
                let mut mine = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if !q.wait_readable(Some(Duration::from_millis(20))).unwrap() {
                        continue;
                    }
                    let n = q.recv_batch(&mut st, &mut bufs, &mut sizes, 0).unwrap();
                    for i in 0..n {
                        let p = &bufs[i][..sizes[i]];
                        // Only our datagrams: UDP to port 7000, 8-byte sequence.
                        if p[0] >> 4 != 4 || p[9] != 17 || p.len() != 20 + 8 + 64 {
                            continue;
                        }
                        verify_packet(p).unwrap();
                        let seq = u64::from_le_bytes(p[28..36].try_into().unwrap());
                        seen[seq as usize].fetch_add(1, Ordering::Relaxed);
                        got.fetch_add(1, Ordering::Relaxed);
                        mine += 1;
                    }
                }
                mine
            }));
        }
        // Many flows (one socket each), paced so the queues never overflow.
        let got2 = got.clone();
        ns.run(move || {
            let socks: Vec<UdpSocket> = (0..FLOWS)
                .map(|_| UdpSocket::bind("10.5.0.1:0").unwrap())
                .collect();
            let mut payload = [0u8; 64];
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut sent = 0u64;
            for i in 0..PER_FLOW {
                for (f, s) in socks.iter().enumerate() {
                    let seq = f as u64 * PER_FLOW + i;
                    while sent.saturating_sub(got2.load(Ordering::Relaxed)) > 200
                        && Instant::now() < deadline
                    {
                        std::thread::yield_now();
                    }
                    sent += 1;
                    payload[..8].copy_from_slice(&seq.to_le_bytes());
                    s.send_to(&payload, "10.5.0.2:7000").unwrap();
                }
            }
            Ok(())
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.load(Ordering::Relaxed) < total && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        let per_queue: Vec<u64> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        let missing = seen
            .iter()
            .filter(|c| c.load(Ordering::Relaxed) == 0)
            .count();
        let dup = seen
            .iter()
            .filter(|c| c.load(Ordering::Relaxed) > 1)
            .count();
        assert_eq!(
            (missing, dup),
            (0, 0),
            "offload {offload}: per queue {per_queue:?}"
        );
        assert_eq!(per_queue.iter().sum::<u64>(), total);
        let used = per_queue.iter().filter(|&&n| n > 0).count();
        assert!(used > 1, "all flows on one queue: {per_queue:?}");
    }
}
