//! Cancellation: a relay whose every receive and send is raced against a
//! short timer (or a single yield) in `select!`, thousands of times while
//! traffic flows. Dropped receives lose nothing; a dropped batched send is
//! finished with `send_pending` from the caller's `SendState`, never
//! writing a packet twice. Checked end to end: a TCP stream byte for byte,
//! and UDP datagrams with sequence numbers arriving exactly once, with the
//! relay's own count of datagrams equal to the sender's.
//!
//! Plus a deterministic case for the send side (TUN writes hardly ever
//! block, so a send raced against a timer rarely stops half-way): a batched
//! send dropped at its readiness wait, then resumed.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::sync::watch;
use tun_async::AsyncQueue;
use tun_device::{RecvState, SendState};
use tun_testbed::UDP_PORT;
use tun_testbed::pattern::{pattern, stamp, stamped};

const OFF: usize = 10;

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Receives dropped while waiting (polled, then dropped).
    recv_cancels: u64,
    /// Receives dropped before their first poll.
    recv_unpolled: u64,
    /// Sends dropped before their first poll (nothing happened).
    send_unpolled: u64,
    /// Sends dropped after preparing (resumed with send_pending).
    send_midway: u64,
    /// Packets received, and packets the batched sends reported written.
    packets_in: u64,
    packets_out: u64,
    /// UDP datagrams to the transfer's port, received.
    udp_in: u64,
}

/// A short wait of one of four kinds: none (the raced operation may not
/// be polled at all), a yield (it is dropped after one poll), a zero timer,
/// or a timer of up to a millisecond.
async fn short_wait(r: u64) {
    match r % 4 {
        0 => {}
        1 => tokio::task::yield_now().await,
        2 => tokio::time::sleep(Duration::ZERO).await,
        _ => tokio::time::sleep(Duration::from_micros(r % 1000)).await,
    }
}

fn next(r: &mut u64) -> u64 {
    *r ^= *r << 13;
    *r ^= *r >> 7;
    *r ^= *r << 17;
    *r
}

async fn pump(
    from: Arc<AsyncQueue>,
    to: Arc<AsyncQueue>,
    stop: watch::Receiver<bool>,
    seed: u64,
) -> Seen {
    let mut r = seed | 1;
    let mut rx = RecvState::new();
    let mut tx = SendState::new();
    let mut bufs = vec![vec![0u8; OFF + 65535]; 64];
    let mut lens = vec![0usize; 64];
    let mut s = Seen::default();
    while !*stop.borrow() {
        let polled = std::sync::atomic::AtomicBool::new(false);
        let recv = async {
            polled.store(true, std::sync::atomic::Ordering::Relaxed);
            from.recv_batch(&mut rx, &mut bufs, &mut lens, OFF).await
        };
        let n = tokio::select! {
            res = recv => res.expect("recv_batch"),
            _ = short_wait(next(&mut r)) => {
                if polled.load(std::sync::atomic::Ordering::Relaxed) {
                    s.recv_cancels += 1;
                } else {
                    s.recv_unpolled += 1;
                }
                continue;
            }
        };
        s.packets_in += n as u64;
        for i in 0..n {
            if let Some((UDP_PORT | PACED_PORT, _)) = udp4_or_6(&bufs[i][OFF..OFF + lens[i]]) {
                s.udp_in += 1;
            }
        }
        let mut prepared = false;
        loop {
            let res = if prepared {
                tokio::select! {
                    res = to.send_pending(&mut tx, &bufs[..n], &lens[..n], OFF) => Some(res),
                    _ = short_wait(next(&mut r)) => None,
                }
            } else {
                tokio::select! {
                    res = to.send_batch(&mut tx, &bufs[..n], &lens[..n], OFF) => Some(res),
                    _ = short_wait(next(&mut r)) => None,
                }
            };
            match res {
                Some(res) => {
                    s.packets_out += res.expect("send").packets as u64;
                    break;
                }
                // Dropped before its first poll: nothing was prepared (the
                // state is still the finished previous batch).
                None if !prepared && tx.is_done() => s.send_unpolled += 1,
                None => {
                    prepared = true;
                    s.send_midway += 1;
                }
            }
        }
    }
    s
}

/// The UDP destination port and payload of an IPv4 or IPv6 packet.
fn udp4_or_6(p: &[u8]) -> Option<(u16, &[u8])> {
    if p.first()? >> 4 == 6 {
        if p.len() < 48 || p[6] != 17 {
            return None;
        }
        return Some((u16::from_be_bytes([p[42], p[43]]), &p[48..]));
    }
    udp4_payload(p)
}

fn relay_case(offload: bool) {
    let Some((tb, a, b)) = pair(offload) else {
        return;
    };
    let rt = runtime();
    let _g = rt.enter();
    let a = Arc::new(AsyncQueue::new(a.into_queues().remove(0)).unwrap());
    let b = Arc::new(AsyncQueue::new(b.into_queues().remove(0)).unwrap());
    let (stop, rx) = watch::channel(false);
    let ab = tokio::spawn(pump(a.clone(), b.clone(), rx.clone(), 0x1234_5678));
    let ba = tokio::spawn(pump(b, a, rx, 0x8765_4321));

    tb.tcp_exact(false, 8 << 20)
        .unwrap_or_else(|e| panic!("TCP data arrived changed: {e}"));
    // Bursts of super-packets over IPv6, then single small datagrams over
    // IPv4 (the relay waits between them, so most cancellations fall on
    // a waiting receive).
    let mut count = 0;
    for (v6, per_send, run) in [(true, 8, 500), (false, 1, 1000)] {
        let run = Duration::from_millis(run);
        let t = tb
            .udp_lossless(v6, 1000, per_send, run)
            .unwrap_or_else(|e| panic!("UDP datagrams (IPv6 {v6}) lost, damaged or doubled: {e}"));
        count += t.sent;
    }
    // Then a paced stream of datagrams: the relay waits for each, and its
    // waiting receive is dropped by the racing timers again and again.
    let paced = 3000;
    let (ok, bad) = paced_udp(&tb.ns_a, &tb.ns_b, paced);
    assert_eq!(
        (ok, bad),
        (paced, 0),
        "paced datagrams lost, damaged or doubled"
    );
    count += paced;

    stop.send(true).unwrap();
    let ab = rt.block_on(ab).unwrap();
    let ba = rt.block_on(ba).unwrap();
    eprintln!("offload {offload}: a->b {ab:?}\n b->a {ba:?}");
    for s in [&ab, &ba] {
        assert_eq!(
            s.packets_in, s.packets_out,
            "a packet read was not written once: {s:?}"
        );
    }
    assert_eq!(ab.udp_in, count, "the relay read each datagram once");
    let waiting = ab.recv_cancels + ba.recv_cancels;
    let cancels = waiting
        + ab.recv_unpolled
        + ba.recv_unpolled
        + ab.send_unpolled
        + ba.send_unpolled
        + ab.send_midway
        + ba.send_midway;
    assert!(cancels >= 2000, "only {cancels} cancellations");
    assert!(
        waiting >= 1000,
        "only {waiting} receives dropped while waiting"
    );
}

/// The port of the paced datagrams.
const PACED_PORT: u16 = 5003;

/// `count` datagrams of 300 bytes from `ns_a` to B4:[`PACED_PORT`], one
/// every ~100 µs, each stamped with its sequence number; returns (arrived
/// intact once, damaged or doubled).
fn paced_udp(ns_a: &tun_device::NetNs, ns_b: &tun_device::NetNs, count: u64) -> (u64, u64) {
    let addr = SocketAddr::new(B4.into(), PACED_PORT);
    let pat = pattern();
    let sent_pat = pat.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = ns_b
        .spawn(move || {
            let s = UdpSocket::bind(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            ready_tx.send(()).unwrap();
            let mut seen = vec![false; count as usize];
            let (mut ok, mut bad) = (0, 0);
            let mut buf = [0u8; 2048];
            while ok < count {
                let Ok(k) = s.recv(&mut buf) else { break };
                let intact = stamped(&buf[..k], &pat).filter(|&q| k == 300 && q < count);
                let Some(seq) = intact.filter(|&q| !seen[q as usize]) else {
                    bad += 1;
                    continue;
                };
                seen[seq as usize] = true;
                ok += 1;
            }
            (ok, bad)
        })
        .unwrap();
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let client = ns_a
        .spawn(move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            let mut d = [0u8; 300];
            for seq in 0..count {
                stamp(&mut d, &sent_pat, seq);
                s.send_to(&d, addr).unwrap();
                std::thread::sleep(Duration::from_micros(100));
            }
        })
        .unwrap();
    client.join().unwrap().unwrap();
    server.join().unwrap().unwrap()
}

#[test]
fn relay_raced_against_timers_offload() {
    relay_case(true);
}

#[test]
fn relay_raced_against_timers_plain() {
    relay_case(false);
}

/// A batched send interrupted half-way (here by a packet the kernel
/// refuses, as by a future dropped at a wait for room, which a TUN hardly
/// ever makes a write wait for) is finished by calling `send_batch` again
/// with the same batch: it resumes, never preparing the batch twice (that
/// coalesced packets already coalesced: datagrams went out with a partial
/// checksum, or twice), and its report covers the whole batch. Two flows,
/// with the refused packet between them: each datagram arrives once.
#[test]
fn a_repeated_send_batch_resumes_the_unfinished_batch() {
    let Some(ns) = private_ns() else { return };
    for offload in [false, true] {
        let dev = single(&ns, &format!("resume{}", offload as u8), offload, 1);
        let socks: Vec<UdpSocket> = (0..2u16)
            .map(|i| {
                ns.run(move || {
                    let s = UdpSocket::bind(SocketAddr::new(A4.into(), 6000 + i)).unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(300)))
                        .unwrap();
                    Ok(s)
                })
                .unwrap()
            })
            .collect();
        let per_flow = 8u64;
        let pat = pattern();
        let datagram = |flow: u16, seq: u64| {
            let mut payload = vec![0u8; 600];
            stamp(&mut payload, &pat, seq);
            udp4(B4, A4, 7000, 6000 + flow, &payload)
        };
        let mut packets: Vec<Vec<u8>> = (0..per_flow).map(|s| datagram(0, s)).collect();
        // Not IPv4 or IPv6: the kernel refuses it with EINVAL.
        packets.push(vec![0u8; 100]);
        packets.extend((0..per_flow).map(|s| datagram(1, s)));
        let lens: Vec<usize> = packets.iter().map(Vec::len).collect();
        let bufs: Vec<Vec<u8>> = packets
            .iter()
            .map(|p| {
                let mut b = vec![0u8; OFF + 65535];
                b[OFF..OFF + p.len()].copy_from_slice(p);
                b
            })
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let q = AsyncQueue::new(dev.into_queues().remove(0)).unwrap();
            let mut tx = SendState::new();
            let err = q.send_batch(&mut tx, &bufs, &lens, OFF).await.unwrap_err();
            assert_eq!(err.kind(), tun_device::ErrorKind::BadPacket, "{err}");
            assert!(!tx.is_done(), "the refused packet was the last write");
            let written = tx.written().count();
            // The same call again: goes on behind the refused packet.
            let report = q.send_batch(&mut tx, &bufs, &lens, OFF).await.unwrap();
            assert!(tx.is_done());
            assert_eq!(tx.rejected(), &[per_flow as usize]);
            assert_eq!(report.packets, 2 * per_flow as usize);
            assert!(report.writes > written, "{report:?}");
        });
        for (flow, sock) in socks.iter().enumerate() {
            let mut seen = vec![false; per_flow as usize];
            let mut buf = vec![0u8; 65536];
            while let Ok(k) = sock.recv(&mut buf) {
                assert_eq!(k, 600);
                let seq = stamped(&buf[..k], &pat).unwrap_or_else(|| {
                    let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
                    panic!("datagram {seq} damaged")
                });
                assert!(
                    !std::mem::replace(&mut seen[seq as usize], true),
                    "flow {flow}: {seq} twice"
                );
            }
            assert!(
                seen.iter().all(|&s| s),
                "flow {flow} missing datagrams ({seen:?}): offload {offload}"
            );
        }
    }
}
