//! Review tests: panics on caller input, packets lost or hidden by the
//! receive state, the send cursor's report, queue and interface lifetime,
//! namespace moves, and `from_fd`. Each runs in private namespaces, with
//! small, deterministic traffic (a few datagrams made by the kernel's own
//! UDP stack, UDP_SEGMENT for super-packets).

mod common;

use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use common::*;
use tun_device::netlink::Netlink;
use tun_device::{
    Device, DeviceBuilder, ErrorKind, InterfaceName, NetNs, OffloadFlags, Queue, RecvState,
    SendState, TunFlags,
};

/// The device's own address; packets to `PEER` go out through the device.
const LOCAL: &str = "10.7.0.1";
const PEER: &str = "10.7.0.2";
/// Where the generated datagrams go (off-link: out through the device).
const SINK_PORT: u16 = 9;
/// EIO on Linux.
const EIO: i32 = 5;

/// A fresh namespace without IPv6 (no router solicitations or MLD reports
/// on the device), and `b` built inside it with `LOCAL/24`.
fn ns_dev(b: DeviceBuilder) -> Option<(NetNs, Device)> {
    let ns = tun_testbed::quiet_ns()?;
    let dev = b
        .address(format!("{LOCAL}/24").parse().unwrap())
        .netns(ns.try_clone().unwrap())
        .build()
        .expect("device");
    Some((ns, dev))
}

/// Payload of datagram `id`: its id, then a pattern of it.
fn payload(id: u64, len: usize) -> Vec<u8> {
    let mut p = vec![(id as u8).wrapping_mul(31); len];
    p[..8].copy_from_slice(&id.to_le_bytes());
    p
}

/// Send, from inside `ns`, one datagram (`gso == 0`) or one UDP_SEGMENT
/// super-datagram of `ids.len()` segments of `seg` bytes, to `PEER`.
fn udp_out(ns: &NetNs, ids: &[u64], seg: usize, gso: bool) {
    let ids = ids.to_vec();
    ns.run(move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        if gso {
            nix::sys::socket::setsockopt(
                &s,
                nix::sys::socket::sockopt::UdpGsoSegment,
                &(seg as i32),
            )
            .expect("UDP_SEGMENT");
        }
        let buf: Vec<u8> = ids.iter().flat_map(|&id| payload(id, seg)).collect();
        s.send_to(&buf, (PEER, SINK_PORT)).expect("send");
        Ok(())
    })
    .unwrap();
}

/// The id of a generated datagram in IPv4 packet `p`, checking its bytes
/// and checksums; `None` for any other packet.
fn datagram_id(p: &[u8]) -> Option<u64> {
    if p.len() < 28 || p[0] >> 4 != 4 || p[9] != 17 {
        return None;
    }
    let hl = usize::from(p[0] & 15) * 4;
    let udp = &p[hl..];
    if u16::from_be_bytes([udp[2], udp[3]]) != SINK_PORT {
        return None;
    }
    verify_packet(p).expect("checksums of a received packet");
    let data = &udp[8..];
    let id = u64::from_le_bytes(data[..8].try_into().unwrap());
    assert_eq!(data, &payload(id, data.len())[..], "payload of {id}");
    Some(id)
}

/// Wait (at most a second) until `q` has something to read.
fn readable(q: &Queue) -> bool {
    q.wait_readable(Some(Duration::from_secs(1))).unwrap()
}

/// Drain `q` (non-blocking) with `recv_batch` into buffers of `sizes`
/// bytes, `offset` headroom; returns the ids seen in order, and the errors.
fn drain_batches(
    q: &Queue,
    st: &mut RecvState,
    sizes: &[usize],
    offset: usize,
) -> (Vec<u64>, Vec<ErrorKind>) {
    let mut ids = Vec::new();
    let mut errors = Vec::new();
    let mut bufs: Vec<Vec<u8>> = sizes.iter().map(|&s| vec![0u8; s]).collect();
    let mut lens = vec![0usize; sizes.len()];
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match q.recv_batch(st, &mut bufs, &mut lens, offset) {
            Ok(n) => {
                for i in 0..n {
                    ids.extend(datagram_id(&bufs[i][offset..offset + lens[i]]));
                }
            }
            Err(e) if e.is_would_block() => {
                if st.has_pending() {
                    continue;
                }
                if !q.wait_readable(Some(Duration::from_millis(100))).unwrap() {
                    break;
                }
            }
            Err(e) => errors.push(e.kind()),
        }
    }
    (ids, errors)
}

fn offload_dev(name: &str) -> Option<(NetNs, Device)> {
    let (ns, dev) = ns_dev(Device::builder().name(name).offload(true).nonblocking(true))?;
    assert!(
        dev.interface().offloads().contains(OffloadFlags::USO4),
        "these tests need USO (Linux 6.2+): {:?}",
        dev.interface().offloads()
    );
    Some((ns, dev))
}

// ---- Panics on caller input ----

/// `recv_batch` with an `offset` larger than the first buffer, on an
/// offload device that hands over a super-packet: the receive once copied the head
/// out of `buf[offset..offset + head]` with `head == 0`, which panics when
/// `offset > buf.len()`. It must return an error (or use the buffers that
/// fit), never panic.
#[test]
fn recv_batch_offset_beyond_first_buffer_does_not_panic() {
    let Some((ns, dev)) = offload_dev("rvoff%d") else {
        return;
    };
    udp_out(&ns, &[1, 2, 3], 1000, true);
    let q = dev.first_queue();
    assert!(readable(q));
    let mut st = RecvState::new();
    let mut bufs = vec![
        vec![0u8; 4],
        vec![0u8; 2048],
        vec![0u8; 2048],
        vec![0u8; 2048],
    ];
    let mut lens = vec![0usize; 4];
    let res = catch_unwind(AssertUnwindSafe(|| {
        q.recv_batch(&mut st, &mut bufs, &mut lens, 10)
            .map_err(|e| e.kind())
    }));
    let res = res.expect("recv_batch panicked on offset > bufs[0].len()");
    // Refused before any read: a caller's mistake, and nothing is lost.
    assert_eq!(res, Err(ErrorKind::InvalidInput));
    lens.fill(0);
    let mut bufs = vec![vec![0u8; 2048]; 4];
    let n = q.recv_batch(&mut st, &mut bufs, &mut lens, 10).unwrap();
    assert!(n >= 3, "the super-packet is still there: {n}");
}

/// `send_pending` takes the buffers and lengths again; handed fewer than
/// the batch `prepare_batch` made (or an offset below the header's size),
/// it indexes out of bounds and panics instead of returning a typed error.
#[test]
fn send_pending_with_other_buffers_is_an_error_not_a_panic() {
    let Some((_ns, dev)) = ns_dev(Device::builder().name("rvsp%d")) else {
        return;
    };
    let q = dev.first_queue();
    let bufs: Vec<Vec<u8>> = (0..3)
        .map(|i| udp_packet(PEER, LOCAL, 7000 + i, 16))
        .collect();
    let lens: Vec<usize> = bufs.iter().map(Vec::len).collect();
    let mut st = SendState::new();
    q.prepare_batch(&mut st, &bufs, &lens, 0).unwrap();
    assert_eq!(st.pending(), &[0, 1, 2]);
    let res = catch_unwind(AssertUnwindSafe(|| {
        q.send_pending(&mut st, &bufs[..1], &lens[..1], 0)
            .map_err(|e| e.kind())
    }));
    let res = res.expect("send_pending panicked on a shorter batch");
    assert_eq!(res, Err(ErrorKind::InvalidInput));
}

/// The same on an offload device, with an offset below the virtio header's
/// 10 bytes: `offset - prefix` underflows.
#[test]
fn send_pending_with_smaller_offset_is_an_error_not_a_panic() {
    let Some((_ns, dev)) = ns_dev(Device::builder().name("rvso%d").offload(true)) else {
        return;
    };
    let q = dev.first_queue();
    let bufs: Vec<Vec<u8>> = (0..2)
        .map(|i| {
            let mut b = vec![0u8; 10];
            b.extend(udp_packet(PEER, LOCAL, 7100 + i, 16));
            b
        })
        .collect();
    let lens: Vec<usize> = bufs.iter().map(|b| b.len() - 10).collect();
    let mut st = SendState::new();
    q.prepare_batch(&mut st, &bufs, &lens, 10).unwrap();
    let res = catch_unwind(AssertUnwindSafe(|| {
        q.send_pending(&mut st, &bufs, &lens, 4)
            .map_err(|e| e.kind())
    }));
    let res = res.expect("send_pending panicked on an offset below the header");
    assert_eq!(res, Err(ErrorKind::InvalidInput));
}

// ---- Receive state: nothing lost, duplicated or hidden ----

/// `Queue::recv` on an offload device keeps the other segments of a
/// super-packet in the queue's private state. The fd is then no longer
/// readable, so a caller that waits with `wait_readable` (or an async
/// runtime on the fd) never learns they are there: they wait forever.
#[test]
fn single_recv_leftover_segments_are_visible_to_wait_readable() {
    let Some((ns, dev)) = offload_dev("rvsr%d") else {
        return;
    };
    udp_out(&ns, &[10, 11, 12], 1000, true);
    let q = dev.first_queue();
    assert!(readable(q));
    let mut buf = vec![0u8; 2048];
    let n = q.recv(&mut buf).unwrap();
    assert_eq!(datagram_id(&buf[..n]), Some(10));
    // Two segments wait inside the queue.
    let ready = q.wait_readable(Some(Duration::from_millis(300))).unwrap();
    // Prove they are really there.
    let mut rest = Vec::new();
    while let Ok(n) = q.recv(&mut buf) {
        rest.extend(datagram_id(&buf[..n]));
    }
    assert_eq!(rest, [11, 12]);
    assert!(
        ready,
        "wait_readable said nothing to read while two segments were pending"
    );
}

/// A plain packet, then a super-packet of 5 segments, received into 4
/// buffers: the super-packet is deferred, then handed out over two calls.
/// Every datagram once, in order.
#[test]
fn recv_batch_defers_a_super_packet_without_loss_or_duplication() {
    let Some((ns, dev)) = offload_dev("rvdf%d") else {
        return;
    };
    udp_out(&ns, &[1], 200, false);
    udp_out(&ns, &[2, 3, 4, 5, 6], 1000, true);
    udp_out(&ns, &[7], 200, false);
    let q = dev.first_queue();
    assert!(readable(q));
    let mut st = RecvState::new();
    let (ids, errors) = drain_batches(q, &mut st, &[2048; 4], 10);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7]);
    assert!(st.stats().super_packets >= 1);
}

/// Buffers of mixed sizes: a buffer too small for a segment costs that
/// segment (reported as BufferTooSmall, after the packets before it), the
/// others still arrive, once each and in order. Pins the documented loss.
#[test]
fn recv_batch_mixed_buffer_sizes_report_every_loss() {
    let Some((ns, dev)) = offload_dev("rvmx%d") else {
        return;
    };
    udp_out(&ns, &[1, 2, 3], 1000, true);
    let q = dev.first_queue();
    assert!(readable(q));
    let mut st = RecvState::new();
    let (ids, errors) = drain_batches(q, &mut st, &[2048, 64, 2048, 2048], 0);
    let mut sorted = ids.clone();
    sorted.dedup();
    assert_eq!(sorted, ids, "a segment came out twice: {ids:?}");
    assert_eq!(
        ids.len() + errors.len(),
        3,
        "segments neither delivered nor reported: {ids:?} {errors:?}"
    );
    assert!(errors.iter().all(|k| *k == ErrorKind::BufferTooSmall));
}

// ---- Send cursor ----

/// An IPv4/UDP packet from `src:sport` to `dst:7` with `len` payload
/// bytes, checksums complete.
fn udp_packet(src: &str, dst: &str, sport: u16, len: usize) -> Vec<u8> {
    udp_packet_to(src, dst, sport, 7, &payload(u64::from(sport), len.max(8)))
}

fn udp_packet_to(src: &str, dst: &str, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let ip = tun_test_support::Ip {
        df: true,
        ..tun_test_support::Ip::v4(
            src.parse::<std::net::Ipv4Addr>().unwrap().octets(),
            dst.parse::<std::net::Ipv4Addr>().unwrap().octets(),
        )
    };
    tun_test_support::udp(&ip, sport, dport, data)
}

/// A batch whose middle packet the kernel refuses (a TUN without packet
/// information takes only IPv4/IPv6: EINVAL). The cursor skips it, but the
/// report of the batch says all three were written.
#[test]
fn send_report_does_not_count_rejected_packets() {
    let Some((_ns, dev)) = ns_dev(Device::builder().name("rvrj%d")) else {
        return;
    };
    let q = dev.first_queue();
    let bufs = vec![
        udp_packet(PEER, LOCAL, 7200, 16),
        vec![0u8; 40], // IP version 0
        udp_packet(PEER, LOCAL, 7201, 16),
    ];
    let lens: Vec<usize> = bufs.iter().map(Vec::len).collect();
    let mut st = SendState::new();
    let err = q.send_batch(&mut st, &bufs, &lens, 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadPacket, "{err}");
    assert_eq!(st.rejected(), &[1]);
    let report = q.send_pending(&mut st, &bufs, &lens, 0).unwrap();
    assert_eq!(st.written().collect::<Vec<_>>(), [0, 2]);
    assert_eq!(report.writes, 2);
    assert_eq!(
        report.packets, 2,
        "SendReport::packets counts the rejected packet as written"
    );
}

// The EINVAL fallback (a refused coalesced write written again packet by
// packet) is tested through the send engine, without a kernel: see the
// unit tests of src/tx.rs.

// ---- Queue and interface lifetime ----

/// Dropping the first queue must close it: the kernel then stops steering
/// flows to it. The interface keeps a duplicate of queue 0's fd for its
/// ioctls, so the kernel queue stays attached and every flow hashed to it
/// is queued where nobody reads: lost.
#[test]
fn dropping_the_first_queue_loses_no_flow() {
    let Some((ns, dev)) = ns_dev(Device::builder().name("rvmq%d").queues(2).nonblocking(true))
    else {
        return;
    };
    let mut queues = dev.into_queues();
    let q1 = queues.pop().unwrap();
    drop(queues); // queue 0 closed by its owner
    // 32 flows: each to its own source port.
    ns.run(|| {
        for _ in 0..32 {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.send_to(&payload(1, 64), (PEER, SINK_PORT)).unwrap();
        }
        Ok(())
    })
    .unwrap();
    let mut got = 0;
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(1);
    while got < 32 && Instant::now() < deadline {
        match q1.recv(&mut buf) {
            Ok(n) => got += usize::from(datagram_id(&buf[..n]).is_some()),
            Err(e) if e.is_would_block() => {
                q1.wait_readable(Some(Duration::from_millis(100))).unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    }
    let info = q1.interface().tun_info().unwrap();
    assert_eq!(
        got, 32,
        "flows steered to the dropped queue 0 were lost; the kernel still counts {:?} queues",
        info.num_queues
    );
}

/// Pins: the interface's ioctls (name, persist, owner, netns, and so
/// `open_queue`) go through a duplicate of queue 0's fd. A detached queue
/// keeps its `tfile->tun` (it moves to the disabled list), so TUNGETIFF and
/// friends keep working on it; this must stay true if the fd changes.
#[test]
fn interface_survives_a_detached_first_queue() {
    let Some((_ns, dev)) = ns_dev(Device::builder().name("rvdt%d").queues(2)) else {
        return;
    };
    dev.queue(0).unwrap().detach().unwrap();
    let name = dev.interface().name();
    assert!(name.is_ok(), "name(): {}", name.unwrap_err());
    let persist = dev.interface().is_persistent();
    assert!(persist.is_ok(), "is_persistent(): {}", persist.unwrap_err());
    let more = dev.open_queue();
    assert!(more.is_ok(), "open_queue(): {}", more.unwrap_err());
}

// ---- Namespaces ----

/// The issue: configuration "keeps working after the device moved to
/// another namespace". Moved by anyone but `move_to_netns` (here another
/// netlink client, as `ip link set netns` or a container runtime would),
/// the interface keeps its socket and index in the old namespace.
#[test]
fn configuration_follows_a_move_made_by_someone_else() {
    let Some((ns, dev)) = ns_dev(Device::builder().name("rvmv0")) else {
        return;
    };
    let Some(other) = private_ns() else { return };
    let mut nl = ns.run(|| Ok(Netlink::open()?)).unwrap();
    nl.move_to_netns(dev.interface().index(), other.as_fd())
        .unwrap();
    let set = dev.interface().set_mtu(1400);
    assert!(set.is_ok(), "set_mtu after a move: {}", set.unwrap_err());
    assert_eq!(ip_link(&other, "rvmv0")["mtu"], 1400);
    assert_eq!(dev.interface().mtu().unwrap(), 1400);
}

// ---- from_fd ----

/// Offload on a TAP is taken, by the builder and by `from_fd` alike: the
/// split and the coalescing work on frames (Ethernet header in front,
/// `csum_start` counted from the frame start).
#[test]
fn from_fd_takes_offload_on_tap_like_the_builder() {
    let Some(ns) = private_ns() else { return };
    let fd = ns
        .run(|| {
            let fd = tun_device::sys::open_tun(true)?;
            let name = InterfaceName::new("rvtap0").unwrap();
            tun_device::sys::set_iff(
                fd.as_fd(),
                Some(&name),
                TunFlags::TAP | TunFlags::NO_PI | TunFlags::VNET_HDR,
            )?;
            tun_device::sys::set_offload(fd.as_fd(), OffloadFlags::TCP)?;
            Ok(fd)
        })
        .unwrap();
    let dev = Device::from_fd(fd, OffloadFlags::TCP).expect("from_fd with offload on TAP");
    assert!(dev.interface().is_tap());
    assert!(dev.interface().has_vnet_hdr());
    assert_eq!(dev.interface().offloads(), OffloadFlags::TCP);
    assert!(dev.interface().stats().coalescing);
    drop(dev);
    let Some((_ns, dev)) = ns_dev(Device::builder().name("rvtapb%d").tap().offload(true)) else {
        return;
    };
    assert!(dev.interface().is_tap() && dev.interface().offloads().contains(OffloadFlags::TCP));
}

// ---- Error kinds ----

/// A write to an interface that is administratively down fails with EIO
/// (tun_get_user), which io_kind files under DeviceGone, "the device is
/// gone or broken": a relay that stops on DeviceGone dies on
/// `ip link set down`. The device is fine and works again once up.
#[test]
fn send_on_a_down_interface_is_not_device_gone() {
    let Some((_ns, dev)) = ns_dev(Device::builder().name("rvdn%d").up(false)) else {
        return;
    };
    let pkt = udp_packet(PEER, LOCAL, 7000, 16);
    let err = dev.first_queue().send(&pkt).unwrap_err();
    assert_eq!(err.errno(), Some(EIO));
    dev.interface().set_up(true).unwrap();
    dev.first_queue().send(&pkt).expect("usable once up");
    assert_ne!(
        err.kind(),
        ErrorKind::DeviceGone,
        "a down interface is reported as gone: {err}"
    );
}
