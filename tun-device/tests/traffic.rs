//! Real traffic between two private namespaces joined by two devices and a
//! relay built from this crate's batched receive (split) and batched send
//! (coalesce): every packet the receive side yields is checked (length at
//! most the MTU, checksums verified by an independent oracle) and the data
//! must arrive intact.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use tun_device::OffloadFlags;

const MIB: usize = 1 << 20;

fn tcp_case(offload: bool, v6: bool, total: usize, mode: Mode) {
    let Some(p) = pair(offload, 1) else {
        return;
    };
    if offload {
        assert!(
            p.a.interface().offloads().contains(OffloadFlags::TCP),
            "{:?}",
            p.a.interface().offloads()
        );
    } else {
        assert!(p.a.interface().offloads().is_empty());
    }
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
    let packets = ab.packets.load(Ordering::Relaxed);
    assert!(
        packets as usize >= total / 1500,
        "{packets} packets for {total} bytes"
    );
    if offload {
        // The kernel handed over super-packets, and the coalesced writes
        // (far fewer than packets) were accepted: the data arrived.
        assert!(
            ab.super_packets.load(Ordering::Relaxed) > 0,
            "no TSO super-packets read"
        );
        // A bulk transfer keeps one shape: most super-packets were read
        // into their segments' places, and those segments, checked one by
        // one above, are as valid as the copied ones.
        let (supers, placed) = (
            ab.super_packets.load(Ordering::Relaxed),
            ab.placed.load(Ordering::Relaxed),
        );
        let batched = matches!(mode, Mode::Batch | Mode::Partial);
        assert!(
            !batched || total < 16 * MIB || placed * 2 > supers,
            "{placed} of {supers} super-packets read into place"
        );
        let writes = ab.writes.load(Ordering::Relaxed);
        assert!(ab.merged.load(Ordering::Relaxed) > 0, "nothing coalesced");
        if mode.partial() {
            // Every data segment of a split super-packet came partial.
            let partial = ab.partial.load(Ordering::Relaxed);
            assert!(partial * 2 > packets, "{partial} of {packets} partial");
        }
        assert!(
            writes * 2 < packets,
            "{writes} writes for {packets} packets"
        );
    } else {
        assert_eq!(ab.super_packets.load(Ordering::Relaxed), 0);
        assert_eq!(ab.writes.load(Ordering::Relaxed), packets);
    }
}

/// One packet per call: `recv` hands out a super-packet's segments one by
/// one (complete, at most the MTU), `send` writes plain packets.
fn single_case(offload: bool, mode: Mode) {
    let Some(p) = pair(offload, 1) else {
        return;
    };
    let relay = Relay::start_with(
        p.a.into_queues().remove(0),
        p.b.into_queues().remove(0),
        1500,
        mode,
    );
    let t = p.tb.tcp_exact(false, 8 * MIB as u64);
    let (ab, ba) = relay.finish();
    t.unwrap_or_else(|e| panic!("data arrived changed: {e}"));
    ab.assert_clean("a->b");
    ba.assert_clean("b->a");
}

#[test]
fn tcp_single_packet_io_with_offload() {
    single_case(true, Mode::Single);
}

#[test]
fn tcp_single_packet_io_plain() {
    single_case(false, Mode::Single);
}

#[test]
fn tcp_vectored_io_with_offload() {
    single_case(true, Mode::Vectored);
}

#[test]
fn tcp_vectored_io_plain() {
    single_case(false, Mode::Vectored);
}

#[test]
fn tcp_v4_offload_64_mib() {
    tcp_case(true, false, 64 * MIB, Mode::Batch);
}

#[test]
fn tcp_v6_offload_64_mib() {
    tcp_case(true, true, 64 * MIB, Mode::Batch);
}

#[test]
fn tcp_v4_offload_partial_checksums_64_mib() {
    tcp_case(true, false, 64 * MIB, Mode::Partial);
}

#[test]
fn tcp_v6_offload_partial_checksums_64_mib() {
    tcp_case(true, true, 64 * MIB, Mode::Partial);
}

#[test]
fn tcp_v4_offload_views_64_mib() {
    tcp_case(true, false, 64 * MIB, Mode::Views);
}

#[test]
fn tcp_v6_offload_views_partial_checksums_64_mib() {
    tcp_case(true, true, 64 * MIB, Mode::ViewsPartial);
}

#[test]
fn tcp_v4_plain_views() {
    tcp_case(false, false, 8 * MIB, Mode::Views);
}

#[test]
fn tcp_v4_plain() {
    tcp_case(false, false, 16 * MIB, Mode::Batch);
}

#[test]
fn tcp_v6_plain() {
    tcp_case(false, true, 8 * MIB, Mode::Batch);
}

fn udp_case(offload: bool, v6: bool, mode: Mode) {
    let Some(p) = pair(offload, 1) else {
        return;
    };
    let uso =
        p.a.interface()
            .offloads()
            .contains(OffloadFlags::USO4 | OffloadFlags::USO6);
    let relay = Relay::start_with(
        p.a.into_queues().remove(0),
        p.b.into_queues().remove(0),
        1500,
        mode,
    );
    let t = p.tb.udp_lossless(v6, 1200, 40, Duration::from_secs(1));
    let (ab, _) = relay.finish();
    t.unwrap_or_else(|e| panic!("datagrams damaged, doubled or lost: {e}"));
    ab.assert_clean("a->b");
    if uso {
        assert!(
            ab.super_packets.load(Ordering::Relaxed) > 0,
            "no USO super-packets read"
        );
        assert!(ab.merged.load(Ordering::Relaxed) > 0, "no UDP coalescing");
        if mode == Mode::Partial {
            assert!(ab.partial.load(Ordering::Relaxed) > 0, "nothing partial");
        }
    }
}

#[test]
fn udp_segment_v4_offload() {
    udp_case(true, false, Mode::Batch);
}

#[test]
fn udp_segment_v6_offload() {
    udp_case(true, true, Mode::Batch);
}

#[test]
fn udp_segment_v4_offload_partial_checksums() {
    udp_case(true, false, Mode::Partial);
}

#[test]
fn udp_segment_v4_plain() {
    udp_case(false, false, Mode::Batch);
}
