//! TAP with offload, end to end: two private namespaces, each with a TAP
//! device with addresses (so the kernels resolve each other with ARP and
//! neighbour discovery across the relay), joined by a relay built from
//! this crate that works on frames: batched receive (split behind the
//! Ethernet header) and batched send (coalescing of frames with equal
//! Ethernet headers). Every frame the receive side yields is checked (its
//! IP packet at most the MTU, checksums verified by an independent oracle);
//! the data must arrive intact, so the kernel accepted the coalesced frames.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use tun_device::OffloadFlags;
use tun_device::relay::{Relay as LibRelay, RelayMode};

const MIB: usize = 1 << 20;

fn tcp_case(v6: bool, total: usize, mode: Mode) {
    let Some(p) = tap_pair(true, 1) else {
        return;
    };
    assert!(p.a.interface().is_tap() && p.b.interface().is_tap());
    assert!(
        p.a.interface().offloads().contains(OffloadFlags::TCP),
        "{:?}",
        p.a.interface().offloads()
    );
    let relay = Relay::start_with(
        p.a.into_queues().remove(0),
        p.b.into_queues().remove(0),
        1500,
        mode,
    );
    let t = p.tb.tcp_exact(v6, total as u64);
    let (ab, ba) = relay.finish();
    t.unwrap_or_else(|e| panic!("data arrived changed: {e}"));
    ab.assert_clean("a->b");
    ba.assert_clean("b->a");
    // The kernels found each other over the relay: ARP (v4) or neighbour
    // discovery (v6) frames crossed it both ways.
    assert!(ab.neighbour.load(Ordering::Relaxed) > 0, "no ARP/ND a->b");
    assert!(ba.neighbour.load(Ordering::Relaxed) > 0, "no ARP/ND b->a");
    let packets = ab.packets.load(Ordering::Relaxed);
    assert!(packets as usize >= total / 1500, "{packets} frames");
    assert!(
        ab.super_packets.load(Ordering::Relaxed) > 0,
        "no TSO super-frames read"
    );
    // Coalesced frames (far fewer writes than frames) were accepted: the
    // data arrived.
    let writes = ab.writes.load(Ordering::Relaxed);
    eprintln!(
        "a->b: {packets} frames ({} super-frames read), {writes} writes, {} ARP/ND",
        ab.super_packets.load(Ordering::Relaxed),
        ab.neighbour.load(Ordering::Relaxed)
    );
    assert!(ab.merged.load(Ordering::Relaxed) > 0, "nothing coalesced");
    assert!(writes * 2 < packets, "{writes} writes for {packets} frames");
    if mode.partial() {
        let partial = ab.partial.load(Ordering::Relaxed);
        assert!(
            partial * 2 > packets,
            "{partial} of {packets} frames partial"
        );
    }
}

#[test]
fn tap_tcp_v4_offload_64_mib() {
    tcp_case(false, 64 * MIB, Mode::Batch);
}

#[test]
fn tap_tcp_v6_offload_64_mib() {
    tcp_case(true, 64 * MIB, Mode::Batch);
}

#[test]
fn tap_tcp_v6_offload_partial_checksums_64_mib() {
    tcp_case(true, 64 * MIB, Mode::Partial);
}

#[test]
fn tap_tcp_v4_offload_views_64_mib() {
    tcp_case(false, 64 * MIB, Mode::Views);
}

fn udp_case(v6: bool) {
    let Some(p) = tap_pair(true, 1) else {
        return;
    };
    let uso =
        p.a.interface()
            .offloads()
            .contains(OffloadFlags::USO4 | OffloadFlags::USO6);
    let relay = Relay::start(
        p.a.into_queues().remove(0),
        p.b.into_queues().remove(0),
        1500,
    );
    // Resolve the neighbours first (a short TCP exchange): while ARP or ND
    // is pending, the kernel queues only about 200 KiB per neighbour
    // (unres_qlen_bytes) and drops the rest of a burst of datagrams.
    p.tb.tcp_exact(v6, 64 << 10).unwrap();
    let t = p.tb.udp_lossless(v6, 1200, 40, Duration::from_secs(1));
    let (ab, ba) = relay.finish();
    t.unwrap_or_else(|e| panic!("datagrams damaged, doubled or lost: {e}"));
    ab.assert_clean("a->b");
    ba.assert_clean("b->a");
    if uso {
        assert!(
            ab.super_packets.load(Ordering::Relaxed) > 0,
            "no USO super-frames read"
        );
        assert!(ab.merged.load(Ordering::Relaxed) > 0, "no UDP coalescing");
    }
}

#[test]
fn tap_udp_segment_v4_offload() {
    udp_case(false);
}

#[test]
fn tap_udp_segment_v6_offload() {
    udp_case(true);
}

/// One frame per call on a TAP with offload: `recv` hands out the frames
/// of a split super-frame one by one, `send` writes them with a zero header.
#[test]
fn tap_single_frame_io_with_offload() {
    let Some(p) = tap_pair(true, 1) else {
        return;
    };
    let relay = Relay::start_with(
        p.a.into_queues().remove(0),
        p.b.into_queues().remove(0),
        1500,
        Mode::Single,
    );
    let t = p.tb.tcp_exact(false, 8 * MIB as u64);
    let (ab, ba) = relay.finish();
    t.unwrap_or_else(|e| panic!("data arrived changed: {e}"));
    ab.assert_clean("a->b");
    ba.assert_clean("b->a");
}

/// The library relay on TAP pairs, offload and pass-through: data intact,
/// no errors, super-frames read and coalesced.
fn lib_case(mode: RelayMode, v6: bool) {
    let Some(p) = tap_pair(true, 1) else {
        return;
    };
    let relay = LibRelay::start(p.a.into_queues(), p.b.into_queues(), mode).unwrap();
    p.tb.tcp_exact(v6, 8 * MIB as u64)
        .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
    // The TCP run's frames were coalesced (the UDP run below, as long as
    // its duration lets it be, is not counted in).
    let (tcp, _) = relay.counters();
    assert!(tcp.super_packets_in > 0, "{tcp:?}");
    assert!(tcp.coalescing_ratio() > 2.0, "{tcp:?}");
    p.tb.udp_lossless(v6, 1200, 20, UDP_RUN)
        .unwrap_or_else(|e| panic!("{mode:?}: datagrams lost or damaged: {e}"));
    let (ab, ba) = relay.stop().unwrap();
    assert_eq!(ab.dropped + ba.dropped, 0, "{ab:?} {ba:?}");
}

#[test]
fn tap_library_relay_offload_v4() {
    lib_case(RelayMode::Offload, false);
}

#[test]
fn tap_library_relay_offload_v6() {
    lib_case(RelayMode::Offload, true);
}

#[test]
fn tap_library_relay_passthrough() {
    lib_case(RelayMode::Passthrough, false);
}

/// A TAP with offload keeps the TAP configuration: MAC and up/down.
#[test]
fn tap_offload_mac_and_link_state() {
    let Some(ns) = private_ns() else { return };
    let mac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    let dev = tun_device::Device::builder()
        .tap()
        .name("tapcfg%d")
        .offload(true)
        .mac(mac)
        .up(false)
        .netns(ns.try_clone().unwrap())
        .build()
        .expect("TAP with offload");
    assert_eq!(dev.interface().mac().unwrap(), Some(mac));
    assert!(!dev.interface().is_up().unwrap());
    let name = dev.interface().name().unwrap().to_string();
    assert_eq!(ip_link(&ns, &name)["address"], "02:11:22:33:44:55");
    dev.interface().set_up(true).unwrap();
    assert!(dev.interface().is_up().unwrap());
    let other = [0x02, 0, 0, 0, 0, 0x77];
    dev.interface().set_mac(other).unwrap();
    assert_eq!(dev.interface().mac().unwrap(), Some(other));
    assert!(dev.interface().has_vnet_hdr());
}
