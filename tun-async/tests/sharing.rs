//! One device shared by many tasks through `Arc`: several readers per
//! queue of a multi-queue device each with its own `RecvState`, several
//! writers on the same queue; every datagram arrives exactly once. And the
//! single-packet `Stream`/`Sink` adapters.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use tun_async::{AsyncDevice, PacketSink, PacketStream};
use tun_device::RecvState;

/// The sequence number a datagram of these tests carries first.
fn seq_of(payload: &[u8]) -> u64 {
    u64::from_le_bytes(payload[..8].try_into().unwrap())
}

#[test]
fn many_readers_share_a_multi_queue_device() {
    let Some(ns) = private_ns() else { return };
    let rt = runtime();
    let dev = single(&ns, "share0", true, 2);
    let _g = rt.enter();
    let dev = Arc::new(AsyncDevice::new(dev).unwrap());
    let count = 4000u64;
    let seen = Arc::new(Mutex::new(vec![0u8; count as usize]));
    let got = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for task in 0..6 {
        let (dev, seen, got) = (dev.clone(), seen.clone(), got.clone());
        readers.push(tokio::spawn(async move {
            let q = dev.queue(task % 2).unwrap();
            let mut st = RecvState::new();
            let mut bufs = vec![vec![0u8; 2048]; 16];
            let mut sizes = vec![0; 16];
            let mut mine = 0u64;
            loop {
                let n = q
                    .recv_batch(&mut st, &mut bufs, &mut sizes, 0)
                    .await
                    .unwrap();
                for i in 0..n {
                    if let Some((7000, payload)) = udp4_payload(&bufs[i][..sizes[i]]) {
                        seen.lock().unwrap()[seq_of(payload) as usize] += 1;
                        got.fetch_add(1, Ordering::Relaxed);
                        mine += 1;
                    }
                }
                if mine > 0 && got.load(Ordering::Relaxed) >= count {
                    return mine;
                }
            }
        }));
    }
    // Datagrams out through the device from 16 flows (so the kernel steers
    // them to both queues), at most 200 in flight: fewer than the device's
    // queue holds.
    let got2 = got.clone();
    ns.run(move || {
        let socks: Vec<UdpSocket> = (0..16)
            .map(|i| UdpSocket::bind(SocketAddr::new(A4.into(), 6100 + i)).unwrap())
            .collect();
        let dst = SocketAddr::new(B4.into(), 7000);
        let deadline = Instant::now() + Duration::from_secs(20);
        for seq in 0..count {
            while seq - got2.load(Ordering::Relaxed) > 200 {
                assert!(Instant::now() < deadline, "readers stalled at {seq}");
                std::thread::yield_now();
            }
            let mut d = [0u8; 100];
            d[..8].copy_from_slice(&seq.to_le_bytes());
            socks[(seq % 16) as usize].send_to(&d, dst).unwrap();
        }
        Ok(())
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.load(Ordering::Relaxed) < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} datagrams",
            got.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(50));
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().all(|&n| n == 1),
        "a datagram missing or read twice"
    );
    for r in readers {
        r.abort();
    }
}

#[test]
fn many_writers_share_one_queue() {
    let Some(ns) = private_ns() else { return };
    let rt = runtime();
    let dev = single(&ns, "share1", true, 1);
    let sock = ns
        .run(|| {
            let s = UdpSocket::bind(SocketAddr::new(A4.into(), 7001)).unwrap();
            let _ = nix::sys::socket::setsockopt(
                &s,
                nix::sys::socket::sockopt::RcvBufForce,
                &(8 << 20),
            );
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            Ok(s)
        })
        .unwrap();
    let (tasks, per_task) = (8u64, 500u64);
    rt.block_on(async {
        let dev = Arc::new(AsyncDevice::new(dev).unwrap());
        let writers: Vec<_> = (0..tasks)
            .map(|t| {
                let dev = dev.clone();
                tokio::spawn(async move {
                    for i in 0..per_task {
                        let seq = t * per_task + i;
                        let mut payload = [0u8; 64];
                        payload[..8].copy_from_slice(&seq.to_le_bytes());
                        let p = udp4(B4, A4, 7100 + t as u16, 7001, &payload);
                        dev.send(&p).await.unwrap();
                        if i % 50 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
    });
    let total = tasks * per_task;
    let mut seen = vec![0u8; total as usize];
    let mut buf = [0u8; 2048];
    while let Ok(k) = sock.recv(&mut buf) {
        assert_eq!(k, 64);
        seen[seq_of(&buf) as usize] += 1;
    }
    assert!(
        seen.iter().all(|&n| n == 1),
        "a datagram missing or doubled"
    );
}

#[test]
fn stream_and_sink_carry_single_packets() {
    let Some(ns) = private_ns() else { return };
    let rt = runtime();
    let dev = single(&ns, "share2", true, 1);
    let sock = ns
        .run(|| {
            let s = UdpSocket::bind(SocketAddr::new(A4.into(), 7002)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            Ok(s)
        })
        .unwrap();
    rt.block_on(async {
        use futures_core::Stream;
        use futures_sink::Sink;
        use std::future::poll_fn;
        let q = Arc::new(AsyncDevice::new(dev).unwrap().into_queues().remove(0));
        // Sink: 100 packets into the device, to the socket.
        let mut sink = PacketSink::<Vec<u8>>::new(q.clone());
        for seq in 0..100u64 {
            poll_fn(|cx| Pin::new(&mut sink).poll_ready(cx))
                .await
                .unwrap();
            let p = udp4(B4, A4, 7200, 7002, &seq.to_le_bytes());
            Pin::new(&mut sink).start_send(p).unwrap();
        }
        poll_fn(|cx| Pin::new(&mut sink).poll_flush(cx))
            .await
            .unwrap();
        // Stream: what the socket sends back out through the device.
        sock.send_to(b"0123456789", SocketAddr::new(B4.into(), 7003))
            .unwrap();
        let mut stream = PacketStream::new(q, 65536);
        loop {
            let p = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx))
                .await
                .unwrap()
                .unwrap();
            // Exact-size packets, not the 64 KiB receive buffer.
            assert_eq!(p.capacity(), p.len());
            if let Some((7003, payload)) = udp4_payload(&p) {
                assert_eq!(payload, b"0123456789");
                verify_packet(&p).unwrap();
                break;
            }
        }
    });
    let mut seen = [0u8; 100];
    let mut buf = [0u8; 2048];
    while let Ok(k) = sock.recv(&mut buf) {
        assert_eq!(k, 8);
        seen[seq_of(&buf) as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n == 1), "a packet missing or doubled");
}
