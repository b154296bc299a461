//! Traffic through two tunnels over a veth underlay, in private
//! namespaces: 64 MiB of TCP and a UDP_SEGMENT run, every byte checked
//! against the test bed's pattern (a digest in all but name: any changed,
//! lost, repeated or reordered byte fails the run), IPv4 and IPv6 inside
//! and underneath, with the devices' offload and the sockets' GSO/GRO each
//! on and off; the counters show which path was taken.

mod common;

use std::time::Duration;

use common::*;

fn case(inner_v6: bool, c: Case) {
    let Some(mut bed) = bed(c) else {
        return;
    };
    let tcp = bed
        .tb
        .tcp(inner_v6, 1, Duration::from_secs(120), Some(64 * MIB))
        .unwrap();
    assert!(tcp.intact, "{c:?}: TCP damaged: {tcp:?}");
    assert_eq!(tcp.bytes, 64 * MIB, "{c:?}");
    let udp = bed
        .tb
        .udp(
            inner_v6,
            1200,
            20,
            Duration::from_millis(500),
            Some(256 << 10),
        )
        .unwrap();
    assert!(
        udp.intact && udp.lost == 0 && udp.sent > 0,
        "{c:?}: UDP: {udp:?}"
    );
    let a = bed.a.take().unwrap();
    let b = bed.b.take().unwrap();
    let offloads = (a.offloads(), b.offloads());
    // A stops first; what it sent last (a late ACK, a neighbour
    // solicitation) is given until B has read it, then B stops.
    let ca = a.stop().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while b.counters().datagrams_received < ca.datagrams_sent
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let cb = b.stop().unwrap();
    let why = format!("{c:?} {offloads:?}\nA {ca:#?}\nB {cb:#?}");
    for x in [&ca, &cb] {
        assert_eq!(
            x.malformed + x.too_large + x.gso_fallbacks + x.send_errors,
            0,
            "{why}"
        );
        assert_eq!(x.tun_to_udp.dropped + x.udp_to_tun.dropped, 0, "{why}");
    }
    // Everything A's device handed over went out as datagrams, and B wrote
    // every one of them into its device.
    assert_eq!(ca.datagrams_sent, ca.tun_to_udp.packets_in, "{why}");
    assert_eq!(cb.datagrams_received, ca.datagrams_sent, "{why}");
    assert!(ca.tun_to_udp.bytes_in > 64 * MIB, "{why}");
    if c.tun_offload {
        assert!(ca.tun_to_udp.super_packets_in > 0, "{why}");
        assert!(cb.udp_to_tun.coalescing_ratio() > 2.0, "{why}");
    } else {
        assert_eq!(ca.tun_to_udp.super_packets_in, 0, "{why}");
        assert_eq!(cb.udp_to_tun.writes, cb.udp_to_tun.packets_in, "{why}");
    }
    if c.sock_offload {
        assert!(offloads.0.gso && offloads.1.gro, "{why}");
        assert!(ca.datagrams_per_send() > 2.0, "{why}");
        assert!(cb.udp_to_tun.super_packets_in > 0, "{why}");
    } else {
        assert!(!offloads.0.gso && !offloads.1.gro, "{why}");
        assert_eq!(ca.datagrams_sent, ca.tun_to_udp.writes, "{why}");
        assert_eq!(cb.udp_to_tun.super_packets_in, 0, "{why}");
    }
}

#[test]
fn v4_over_v4_all_offloads() {
    case(false, ON);
}

#[test]
fn v6_over_v6_all_offloads() {
    case(
        true,
        Case {
            under_v6: true,
            ..ON
        },
    );
}

#[test]
fn v4_over_v6_all_offloads() {
    case(
        false,
        Case {
            under_v6: true,
            ..ON
        },
    );
}

#[test]
fn v6_over_v4_all_offloads() {
    case(true, ON);
}

#[test]
fn v4_socket_offloads_off() {
    case(
        false,
        Case {
            sock_offload: false,
            ..ON
        },
    );
}

#[test]
fn v6_socket_offloads_off() {
    case(
        true,
        Case {
            under_v6: true,
            sock_offload: false,
            ..ON
        },
    );
}

#[test]
fn v4_tun_offload_off() {
    case(
        false,
        Case {
            tun_offload: false,
            ..ON
        },
    );
}

#[test]
fn v6_tun_offload_off() {
    case(
        true,
        Case {
            under_v6: true,
            tun_offload: false,
            ..ON
        },
    );
}

#[test]
fn v4_no_offload_anywhere() {
    case(
        false,
        Case {
            tun_offload: false,
            sock_offload: false,
            ..ON
        },
    );
}

#[test]
fn v6_no_offload_anywhere() {
    case(
        true,
        Case {
            under_v6: true,
            tun_offload: false,
            sock_offload: false,
            ..ON
        },
    );
}

#[test]
fn v4_trusting_the_peers_checksums() {
    case(
        false,
        Case {
            trust_checksums: true,
            ..ON
        },
    );
}
