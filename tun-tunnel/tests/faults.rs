//! What the peer or the configuration gets wrong: datagrams that are not
//! one whole IP packet are counted and dropped while the tunnel goes on
//! (the valid packets around them arrive), and packets larger than one
//! datagram to the peer may be are reported up front and counted, not
//! dropped silently.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use tun_testbed::{A4, B4, Side};
use tun_tunnel::{Error, check_mtu};

/// Wait until `f` holds (up to 5 s).
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Side A's device (offload on, MTU `inner_mtu`) and the two underlay
/// sockets (A's, B's) over an underlay of MTU `underlay_mtu`, IPv4.
struct OneEnd {
    tb: tun_testbed::Testbed,
    _underlay: tun_testbed::Veth,
    sock_a: UdpSocket,
    sock_b: UdpSocket,
    queue_a: tun_device::Queue,
}

fn one_end(underlay_mtu: u32, inner_mtu: u32) -> Option<OneEnd> {
    let tb = testbed()?;
    let underlay = tb.underlay(underlay_mtu).unwrap();
    let sock_a = socket(tb.ns(Side::A), Side::A, false);
    let sock_b = socket(tb.ns(Side::B), Side::B, false);
    let queue_a = device(&tb, Side::A, true, inner_mtu)
        .into_queues()
        .remove(0);
    Some(OneEnd {
        tb,
        _underlay: underlay,
        sock_a,
        sock_b,
        queue_a,
    })
}

#[test]
fn a_peer_sending_garbage_is_counted_and_does_not_stop_the_tunnel() {
    let Some(tb) = testbed() else {
        return;
    };
    let _underlay = tb.underlay(1500).unwrap();
    let case = ON;
    // Side B is no tunnel: a plain socket on B's underlay address, the
    // address A's tunnel is connected to, sending what the test chooses.
    let peer = socket(tb.ns(Side::B), Side::B, false);
    let a = tunnel(&tb, Side::A, case);
    let listen = SocketAddr::new(A4.into(), 7000);
    let rx = tb
        .ns(Side::A)
        .run(move || Ok(UdpSocket::bind(listen)))
        .unwrap()
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let to = peer_of(Side::B, false);
    let good = |i: u8| udp4_packet(B4.octets(), A4.octets(), 7000, &[i; 100]);
    let mut truncated = good(0);
    truncated.truncate(60);
    let mut padded = good(0);
    padded.extend_from_slice(&[0; 3]);
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 50],
        vec![0x45; 10],
        truncated,
        padded,
        vec![0x60; 39],
    ];
    let mut received = Vec::new();
    for (i, bad) in garbage.iter().enumerate() {
        peer.send_to(bad, to).unwrap();
        peer.send_to(&good(i as u8), to).unwrap();
        let mut buf = [0u8; 200];
        let n = rx
            .recv(&mut buf)
            .expect("the valid packet after garbage arrives");
        received.push(buf[..n].to_vec());
    }
    assert_eq!(
        received,
        (0..6).map(|i| vec![i as u8; 100]).collect::<Vec<_>>()
    );
    assert!(
        eventually(|| a.counters().malformed == garbage.len() as u64),
        "{:?}",
        a.counters()
    );
    assert!(a.is_running());
    let c = a.stop().unwrap();
    assert_eq!(c.malformed, 6, "{c:?}");
    assert_eq!(c.udp_to_tun.dropped, 6, "{c:?}");
    assert!(c.udp_to_tun.packets_in >= 6, "{c:?}");
    assert!(c.datagrams_received >= 12, "{c:?}");
}

#[test]
fn packets_larger_than_the_underlay_carries_are_reported() {
    // Devices of MTU 1500 over an IPv4 underlay of MTU 1500: a datagram
    // carries 1472 bytes, the devices hand over up to 1500.
    let Some(OneEnd {
        tb,
        _underlay,
        sock_a: sock,
        sock_b: peer,
        queue_a: queue,
    }) = one_end(1500, 1500)
    else {
        return;
    };
    match check_mtu(&queue, 1472) {
        Err(Error::MtuMismatch {
            inner_mtu,
            max_datagram,
            ..
        }) => assert_eq!((inner_mtu, max_datagram), (1500, 1472)),
        other => panic!("expected an MTU mismatch, got {other:?}"),
    }
    assert!(check_mtu(&queue, 1500).is_ok());
    let a = tun_tunnel::Tunnel::start(
        queue,
        sock,
        tun_tunnel::TunnelConfig::new(peer_of(Side::A, false)),
    )
    .unwrap();
    assert_eq!(a.offloads().max_datagram, 1472, "read from the route's MTU");
    assert!(matches!(
        a.check_mtu(),
        Err(Error::MtuMismatch {
            inner_mtu: 1500,
            ..
        })
    ));
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // From A's inner address to B's: 1428 bytes fits, 1488 does not.
    let sender = tb
        .ns(Side::A)
        .run(|| Ok(UdpSocket::bind(SocketAddr::new(A4.into(), 0))))
        .unwrap()
        .unwrap();
    let dst = SocketAddr::new(B4.into(), 7001);
    sender.send_to(&[1; 1460], dst).unwrap();
    sender.send_to(&[2; 1400], dst).unwrap();
    let mut buf = [0u8; 2000];
    // The fitting packet arrives at B's plain socket as one datagram.
    let n = loop {
        let n = peer.recv(&mut buf).expect("the packet that fits arrives");
        if n == 1428 {
            break n;
        }
    };
    assert_eq!(buf[28..n], [2; 1400]);
    assert!(
        eventually(|| a.counters().too_large == 1),
        "{:?}",
        a.counters()
    );
    let c = a.stop().unwrap();
    assert_eq!((c.too_large, c.tun_to_udp.dropped), (1, 1), "{c:?}");
}

#[test]
fn gso_segments_larger_than_the_route_are_reported_and_what_fits_crosses() {
    // An underlay of MTU 1300 (1272 bytes per datagram), but the tunnel
    // told 1372 fit: a run of 1400-byte packets is a GSO send whose
    // segments exceed the route. Kernels refuse it with EMSGSIZE (6.x
    // here) or EINVAL (udp_send_skb() in net/ipv4/udp.c of older ones,
    // which the tunnel takes for a GSO refusal: it falls back, and each
    // datagram alone then gets EMSGSIZE). Either way every packet is
    // reported too large.
    let Some(OneEnd {
        tb,
        _underlay,
        sock_a,
        sock_b: sb,
        queue_a,
    }) = one_end(1300, 1400)
    else {
        return;
    };
    let case = ON;
    let a = tun_tunnel::Tunnel::start(
        queue_a,
        sock_a,
        tun_tunnel::TunnelConfig::new(peer_of(Side::A, false)).max_datagram(1372),
    )
    .unwrap();
    let b = start(&tb, Side::B, sb, case);
    assert!(a.offloads().gso, "GSO granted before the first send");
    // 1372-byte payloads: 1400-byte packets, sent 20 per UDP_SEGMENT call.
    let big = tb
        .udp(false, 1372, 20, Duration::from_millis(200), None)
        .unwrap();
    assert_eq!(big.bytes, 0, "nothing that large crosses: {big:?}");
    assert!(
        eventually(|| a.counters().too_large > 0),
        "{:?}",
        a.counters()
    );
    let c = a.counters();
    assert_eq!(
        a.offloads().gso,
        c.gso_fallbacks == 0,
        "GSO off exactly when a send fell back: {c:?}"
    );
    // What fits still crosses, nothing lost.
    let fits = tb
        .udp(false, 1200, 20, Duration::from_millis(300), Some(256 << 10))
        .unwrap();
    assert!(fits.intact && fits.lost == 0 && fits.sent > 0, "{fits:?}");
    let c = a.stop().unwrap();
    drop(b);
    assert!(c.too_large > 0, "{c:?}");
    assert_eq!(c.tun_to_udp.dropped, c.too_large, "{c:?}");
    assert_eq!(c.send_errors, 0, "{c:?}");
    assert_eq!(
        c.datagrams_sent + c.too_large,
        c.tun_to_udp.packets_in,
        "every packet sent or reported: {c:?}"
    );
}
