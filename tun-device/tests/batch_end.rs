//! Where a batched receive ends, on a real queue: a batch whose first read
//! had to wait is that one packet (no second read that finds the queue
//! empty); a batch of packets already queued is read until the queue is
//! empty, which one read finds (`RecvStats::empty_reads`).

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;
use tun_device::{Device, RecvState};

#[test]
fn a_batch_after_a_wait_is_its_packet_and_queued_packets_are_read_to_the_end() {
    let Some(ns) = private_ns() else { return };
    let dev = Device::builder()
        .name("be%d")
        .address("10.6.0.1/24".parse().unwrap())
        .netns(ns.try_clone().unwrap())
        .build()
        .unwrap();
    let q = dev.first_queue();
    let mut st = RecvState::new();
    let mut bufs = vec![vec![0u8; 2048]; 64];
    let mut lens = vec![0usize; 64];
    // Whatever the kernel sent when the link came up.
    q.set_nonblocking(true);
    while q.recv_batch(&mut st, &mut bufs, &mut lens, 0).is_ok() {}
    q.set_nonblocking(false);
    let send = |count: usize, delay: Duration| {
        let ns = ns.try_clone().unwrap();
        std::thread::spawn(move || {
            ns.run(move || {
                std::thread::sleep(delay);
                let s = UdpSocket::bind("10.6.0.1:0").unwrap();
                for _ in 0..count {
                    s.send_to(&[7u8; 64], "10.6.0.2:7000").unwrap();
                }
                Ok(())
            })
            .unwrap()
        })
    };

    // The reader waits; then three datagrams arrive at once. The wake-up
    // brings the first (or a packet of the kernel's own): that is the
    // batch, without a read that finds nothing.
    let sender = send(3, Duration::from_millis(300));
    let before = st.stats();
    let n = q.recv_batch(&mut st, &mut bufs, &mut lens, 0).unwrap();
    sender.join().unwrap();
    assert_eq!(n, 1, "a wait, then one packet");
    assert_eq!(st.stats().empty_reads, before.empty_reads);
    assert_eq!(st.stats().reads, before.reads + 1);
    // What queued behind it comes with the next call, read to the end:
    // the read that finds the queue empty ends the batch.
    std::thread::sleep(Duration::from_millis(50));
    let n = q.recv_batch(&mut st, &mut bufs, &mut lens, 0).unwrap();
    assert!(n >= 2, "{n} packets queued");
    assert_eq!(st.stats().empty_reads, before.empty_reads + 1);

    // Packets queued before the call: all in one batch.
    send(5, Duration::ZERO).join().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let before = st.stats();
    let n = q.recv_batch(&mut st, &mut bufs, &mut lens, 0).unwrap();
    assert!(n >= 5, "{n} of 5 queued datagrams in one batch");
    assert_eq!(st.stats().empty_reads, before.empty_reads + 1);
    for i in 0..n {
        verify_packet(&bufs[i][..lens[i]]).unwrap();
    }
}
