//! Readiness as a harsh user meets it, on every runtime (tokio's two
//! flavours, and async-io with its feature): the `ready` + `try_recv` loop
//! (tokio's documented pattern) gets its packet without spinning and sees
//! the interface deleted; held segments and deferred errors are handed out
//! without waiting on an fd that knows nothing of them; a send on a down
//! link fails at once instead of waiting for a writability that never
//! comes; and (tokio, which keeps readiness) a batch that drained the
//! kernel's queue leaves the readiness cleared, so the next call waits
//! instead of reading `EAGAIN` once more. Each test alone in its
//! process's CPU accounting would be ideal; the bounds leave room for the
//! other tests of this binary.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tun_async::{AsyncQueue, Backend};
use tun_device::{ErrorKind, RecvState};

/// CPU the process may use while a loop under test waits a second: a
/// spinning loop takes a whole core.
const IDLE_TICKS: u64 = 30;

/// The `readable` + `try_recv` loop until a packet or an error (or two
/// seconds); returns what ended it and the CPU ticks the process used.
async fn ready_loop<B: Backend>(q: &AsyncQueue<B>) -> (Option<tun_device::Result<Vec<u8>>>, u64) {
    // A loop that spins without yielding starves the timeout below on a
    // current-thread runtime: a watchdog ends the process instead of
    // letting the test hang.
    let (done, watch) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            watch.recv_timeout(Duration::from_secs(10))
        {
            eprintln!("the ready + try_recv loop spun for 10 s without yielding");
            std::process::abort();
        }
    });
    let cpu = process_cpu_ticks();
    let mut buf = vec![0u8; 65536];
    let got = timeout::<B, _>(Duration::from_secs(2), async {
        loop {
            q.readable().await?;
            match q.try_recv(&mut buf) {
                Ok(n) => return Ok(buf[..n].to_vec()),
                Err(e) if e.is_would_block() => continue,
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    drop(done);
    (got, process_cpu_ticks() - cpu)
}

fn ready_try_recv_gets_the_packet<B: Backend>(run: &Runner<'_>) {
    let Some(ns) = quiet_ns() else { return };
    let dev = single(&ns, "rdy0", false, 1);
    let q = AsyncQueue::<B>::register(dev.into_queues().remove(0)).unwrap();
    // The datagram comes 300 ms after the loop starts waiting.
    let sender = {
        let ns = ns.try_clone().unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            udp_send(&ns, B4, 4242, 1, 100, Duration::ZERO);
        })
    };
    run(Box::pin(async {
        let (got, ticks) = ready_loop(&q).await;
        let packet = got.expect("no packet in 2 s").expect("receive failed");
        let (port, payload) = udp4_payload(&packet).expect("not the UDP datagram");
        assert_eq!((port, payload.len()), (4242, 100));
        assert!(ticks <= IDLE_TICKS, "the loop spun: {ticks} ticks");
    }));
    sender.join().unwrap();
}

on_every_runtime!(ready_then_try_recv, ready_try_recv_gets_the_packet);

fn ready_try_recv_sees_the_interface_deleted<B: Backend>(run: &Runner<'_>) {
    let Some(ns) = quiet_ns() else { return };
    let dev = single(&ns, "rdy1", false, 1);
    let iface = dev.interface().clone();
    let q = AsyncQueue::<B>::register(dev.into_queues().remove(0)).unwrap();
    let deleter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        iface.delete().unwrap();
    });
    run(Box::pin(async {
        let (got, ticks) = ready_loop(&q).await;
        let err = got.expect("nothing in 2 s").expect_err("a packet?");
        assert!(err.is_device_gone(), "{err}");
        assert!(ticks <= IDLE_TICKS, "the loop spun: {ticks} ticks");
    }));
    deleter.join().unwrap();
}

on_every_runtime!(
    ready_then_try_recv_deleted,
    ready_try_recv_sees_the_interface_deleted
);

/// One UDP super-packet of ten 1200-byte datagrams from `ns` to
/// B4:`port` (UDP_SEGMENT: with USO granted the device reads it whole).
fn udp_super_packet(ns: &tun_device::NetNs, port: u16) {
    use nix::sys::socket::{setsockopt, sockopt::UdpGsoSegment};
    ns.run(move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        setsockopt(&s, UdpGsoSegment, &1200).unwrap();
        let dst: std::net::SocketAddr = format!("{B4}:{port}").parse().unwrap();
        s.send_to(&[5u8; 12000], dst).unwrap();
        Ok(())
    })
    .unwrap();
}

fn held_segments_are_handed_out_without_waiting<B: Backend>(run: &Runner<'_>) {
    let Some(ns) = quiet_ns() else { return };
    let dev = single(&ns, "held0", true, 1);
    let q = Arc::new(AsyncQueue::<B>::register(dev.into_queues().remove(0)).unwrap());
    run(Box::pin(async {
        udp_super_packet(&ns, 4243);
        let mut buf = vec![0u8; 65536];
        // Single receives: the first splits the super-packet and keeps
        // the other nine segments in the queue.
        let n = timeout::<B, _>(Duration::from_secs(2), q.recv(&mut buf))
            .await
            .expect("no packet")
            .unwrap();
        assert_eq!(n, 1228);
        assert!(
            q.get_ref().has_pending(),
            "no super-packet read (USO not granted?)"
        );
        // Another receive finds the kernel empty: readiness is cleared.
        let mut other = RecvState::new();
        let mut bufs = vec![vec![0u8; 2048]; 4];
        let mut sizes = vec![0; 4];
        let r = timeout::<B, _>(
            Duration::from_millis(100),
            q.recv_batch(&mut other, &mut bufs, &mut sizes, 0),
        )
        .await;
        assert!(r.is_none(), "the kernel had more: {r:?}");
        // The held segments come at once, all nine.
        let t = Instant::now();
        for i in 0..9 {
            let n = timeout::<B, _>(Duration::from_millis(500), q.recv(&mut buf))
                .await
                .unwrap_or_else(|| panic!("segment {i} stranded in the queue"))
                .unwrap();
            assert_eq!(n, 1228);
        }
        assert!(
            t.elapsed() < Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
        assert!(!q.get_ref().has_pending());

        // A batch state holding segments: handed out at once too, after
        // another receive cleared the readiness.
        udp_super_packet(&ns, 4244);
        let mut st = RecvState::new();
        let mut two = vec![vec![0u8; 2048]; 2];
        let mut sizes = vec![0; 2];
        let n = timeout::<B, _>(
            Duration::from_secs(2),
            q.recv_batch(&mut st, &mut two, &mut sizes, 0),
        )
        .await
        .expect("no packet")
        .unwrap();
        assert_eq!(n, 2);
        assert!(st.has_pending());
        assert!(
            timeout::<B, _>(Duration::from_millis(100), q.recv(&mut buf))
                .await
                .is_none(),
            "the kernel had more"
        );
        let mut left = 8;
        while left > 0 {
            let n = timeout::<B, _>(
                Duration::from_millis(500),
                q.recv_batch(&mut st, &mut two, &mut sizes, 0),
            )
            .await
            .expect("segments stranded in the state")
            .unwrap();
            left -= n;
        }
        assert!(st.is_empty());
    }));
}

on_every_runtime!(held_segments, held_segments_are_handed_out_without_waiting);

fn a_deferred_error_is_returned_without_waiting<B: Backend>(run: &Runner<'_>) {
    let Some(ns) = quiet_ns() else { return };
    let dev = single(&ns, "defer0", false, 1);
    let q = AsyncQueue::<B>::register(dev.into_queues().remove(0)).unwrap();
    run(Box::pin(async {
        // A small datagram, then one too long for the buffers: the batch
        // returns the first and defers the error.
        udp_send(&ns, B4, 4245, 1, 100, Duration::ZERO);
        udp_send(&ns, B4, 4245, 1, 1000, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(50));
        let mut st = RecvState::new();
        let mut bufs = vec![vec![0u8; 300]; 4];
        let mut sizes = vec![0; 4];
        let n = timeout::<B, _>(
            Duration::from_secs(2),
            q.recv_batch(&mut st, &mut bufs, &mut sizes, 0),
        )
        .await
        .expect("no packet")
        .unwrap();
        assert_eq!((n, sizes[0]), (1, 128));
        assert!(st.has_deferred());
        // Another receive finds the kernel empty and clears the readiness.
        let mut buf = vec![0u8; 2048];
        assert!(
            timeout::<B, _>(Duration::from_millis(100), q.recv(&mut buf))
                .await
                .is_none()
        );
        let err = timeout::<B, _>(
            Duration::from_millis(500),
            q.recv_batch(&mut st, &mut bufs, &mut sizes, 0),
        )
        .await
        .expect("the deferred error waited on the fd")
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BufferTooSmall, "{err}");
        assert!(st.is_empty());
    }));
}

on_every_runtime!(deferred_error, a_deferred_error_is_returned_without_waiting);

fn send_on_a_down_link_fails_at_once<B: Backend>(run: &Runner<'_>) {
    let Some(ns) = quiet_ns() else { return };
    let dev = single(&ns, "down0", false, 1);
    dev.interface().set_up(false).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // Registered while down: the kernel reports the fd not writable.
    let q = AsyncQueue::<B>::register(dev.into_queues().remove(0)).unwrap();
    let packet = udp4(B4, A4, 7000, 6000, &[1u8; 64]);
    run(Box::pin(async {
        let err = timeout::<B, _>(Duration::from_secs(1), q.send(&packet))
            .await
            .expect("the send on a down link waited")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InterfaceDown, "{err}");
        let err = q.try_send(&packet).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InterfaceDown, "{err}");
        let err = timeout::<B, _>(
            Duration::from_secs(1),
            std::future::poll_fn(|cx| q.poll_send(cx, &packet)),
        )
        .await
        .expect("poll_send on a down link waited")
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InterfaceDown, "{err}");
    }));
}

on_every_runtime!(down_link_send, send_on_a_down_link_fails_at_once);

/// Read syscalls this thread made so far (`syscr` of
/// `/proc/thread-self/io`; `readv` counts, `epoll_wait` does not).
#[cfg(feature = "tokio")]
fn thread_reads() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").expect("io accounting");
    io.lines()
        .find_map(|l| l.strip_prefix("syscr: "))
        .and_then(|n| n.parse().ok())
        .expect("syscr")
}

/// tokio keeps readiness between calls: a batch that ended because the
/// kernel had no more (its last read found `EAGAIN`) must clear it, or the
/// next call reads once more only to find `EAGAIN` again before it waits.
/// Each call here starts before its datagram arrives, so it may read each
/// packet once and the empty kernel once, no more.
#[cfg(feature = "tokio")]
#[test]
fn a_drained_batch_waits_instead_of_reading_eagain_again() {
    let Some(ns) = quiet_ns() else { return };
    let dev = single(&ns, "drain0", false, 1);
    let rt = current_thread();
    let _g = rt.enter();
    let q = AsyncQueue::<tun_async::Tokio>::register(dev.into_queues().remove(0)).unwrap();
    let count = 20;
    let sender = {
        let ns = ns.try_clone().unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            udp_send(&ns, B4, 4246, count, 100, Duration::from_millis(20));
        })
    };
    // What a look at the counter itself costs.
    let cost = {
        let a = thread_reads();
        thread_reads() - a
    };
    rt.block_on(async {
        let mut st = RecvState::new();
        let mut bufs = vec![vec![0u8; 2048]; 8];
        let mut sizes = vec![0; 8];
        let mut got = 0;
        while got < count as usize {
            let before = thread_reads();
            let n = tokio::time::timeout(
                Duration::from_secs(2),
                q.recv_batch(&mut st, &mut bufs, &mut sizes, 0),
            )
            .await
            .expect("a datagram did not arrive")
            .unwrap();
            let reads = thread_reads() - before - cost;
            assert!(
                reads <= n as u64 + 1,
                "{reads} reads for {n} packets: the readiness of the drained batch before was kept"
            );
            got += n;
        }
    });
    sender.join().unwrap();
}
