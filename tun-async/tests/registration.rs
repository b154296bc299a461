//! The tokio registration: a queue is registered through a duplicate of
//! its fd (tun-sys's `TokioFd`), and that duplicate lives exactly as long
//! as the registration. `into_inner` closes it and hands back a working
//! queue; dropping the registered queue closes both fds, so that the
//! kernel deletes a non-persistent device as it would without tokio.

mod common;

use std::time::Duration;

use common::*;
use tun_async::AsyncQueue;
use tun_device::NetNs;

/// Open fds of this process on `/dev/net/tun` (one test in this binary,
/// so no other test opens or closes any meanwhile).
fn tun_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.as_os_str() == "/dev/net/tun")
        .count()
}

fn link_exists(ns: &NetNs, name: &str) -> bool {
    // One line a link: "INDEX: NAME: <FLAGS> ...".
    let out = output(ns, "ip", &["-o", "link", "show"]).unwrap();
    out.lines().any(|l| l.split(": ").nth(1) == Some(name))
}

#[test]
fn the_registered_duplicate_lives_as_long_as_the_registration() {
    let Some(ns) = quiet_ns() else { return };
    let rt = current_thread();
    let _g = rt.enter();
    let before = tun_fds();
    let dev = single(&ns, "reg0", false, 1);
    // The queue's fd, and any the device keeps for itself.
    let device = tun_fds();
    assert!(device > before);
    let q = AsyncQueue::new(dev.into_queues().remove(0)).unwrap();
    assert_eq!(tun_fds(), device + 1, "one duplicate for the reactor");

    // The registration reports the queue's readiness: a datagram sent to
    // the device wakes a receive.
    rt.block_on(async {
        udp_send(&ns, B4, 4300, 1, 100, Duration::ZERO);
        let mut buf = vec![0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(2), q.recv(&mut buf))
            .await
            .expect("the registration did not see the packet")
            .unwrap();
        assert_eq!(
            udp4_payload(&buf[..n]).map(|(p, d)| (p, d.len())),
            Some((4300, 100))
        );
    });

    // Deregistered: the duplicate is closed, the queue itself works.
    let queue = q.into_inner().unwrap();
    assert_eq!(tun_fds(), device, "into_inner left the duplicate open");
    let packet = udp4(B4, A4, 7000, 6000, &[1u8; 64]);
    assert_eq!(queue.send(&packet).unwrap(), packet.len());

    // Registered again, then dropped: both fds close and the kernel
    // deletes the device.
    let q = AsyncQueue::new(queue).unwrap();
    assert_eq!(tun_fds(), device + 1);
    assert!(link_exists(&ns, "reg0"));
    drop(q);
    assert_eq!(
        tun_fds(),
        before,
        "an fd of the device outlived its last queue"
    );
    assert!(!link_exists(&ns, "reg0"), "the device outlived its queue");
}
