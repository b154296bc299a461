//! The privileged tests' bed: two private namespaces (tun-testbed), a TUN
//! device in each holding the bed's addresses, a veth underlay between
//! them with addresses of its own, and a tunnel at either end (or only at
//! A, the other end being a plain socket the test drives).

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};

use tun_device::{Device, NetNs};
pub use tun_testbed::testbed;
use tun_testbed::{Side, Testbed, Veth, underlay_addr};
use tun_tunnel::{Tunnel, TunnelConfig};

/// The tunnel's port on both sides.
pub const PORT: u16 = 5300;
pub const MIB: u64 = 1 << 20;

/// How one case is set up.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// IPv6 underlay (the inner family is the traffic's own).
    pub under_v6: bool,
    /// Offload on the TUN devices.
    pub tun_offload: bool,
    /// UDP GSO and GRO on the sockets.
    pub sock_offload: bool,
    /// The devices' MTU.
    pub inner_mtu: u32,
    /// Take the peer's inner checksums as correct.
    pub trust_checksums: bool,
}

/// IPv4 underlay, offload on everywhere, devices of MTU 1400.
pub const ON: Case = Case {
    under_v6: false,
    tun_offload: true,
    sock_offload: true,
    inner_mtu: 1400,
    trust_checksums: false,
};

pub struct Bed {
    pub tb: Testbed,
    pub underlay: Veth,
    pub a: Option<Tunnel>,
    pub b: Option<Tunnel>,
}

pub fn device(tb: &Testbed, side: Side, offload: bool, mtu: u32) -> Device {
    tb.device(
        side,
        Device::builder()
            .name("tt%d")
            .offload(offload)
            .mtu(mtu)
            .up(true),
    )
    .unwrap()
}

/// A UDP socket on `side`'s underlay address.
pub fn socket(ns: &NetNs, side: Side, v6: bool) -> UdpSocket {
    let at = SocketAddr::new(underlay_addr(side, v6), PORT);
    ns.run(move || Ok(UdpSocket::bind(at)))
        .unwrap()
        .unwrap_or_else(|e| panic!("bind {at}: {e}"))
}

pub fn peer_of(side: Side, v6: bool) -> SocketAddr {
    let other = match side {
        Side::A => Side::B,
        Side::B => Side::A,
    };
    SocketAddr::new(underlay_addr(other, v6), PORT)
}

pub fn tunnel(tb: &Testbed, side: Side, case: Case) -> Tunnel {
    let sock = socket(tb.ns(side), side, case.under_v6);
    start(tb, side, sock, case)
}

/// Start `side`'s tunnel on `sock` (bound already).
pub fn start(tb: &Testbed, side: Side, sock: UdpSocket, case: Case) -> Tunnel {
    let dev = device(tb, side, case.tun_offload, case.inner_mtu);
    let config = TunnelConfig::new(peer_of(side, case.under_v6))
        .gso(case.sock_offload)
        .gro(case.sock_offload)
        .trust_checksums(case.trust_checksums);
    Tunnel::start(dev.into_queues().remove(0), sock, config).unwrap()
}

/// Both ends tunnelled over an underlay of MTU 1500.
pub fn bed(case: Case) -> Option<Bed> {
    let tb = testbed()?;
    let underlay = tb.underlay(1500).unwrap();
    // Both sockets first: nothing either device sends early (neighbour
    // discovery, MLD) meets a port not yet bound.
    let sa = socket(tb.ns(Side::A), Side::A, case.under_v6);
    let sb = socket(tb.ns(Side::B), Side::B, case.under_v6);
    let a = start(&tb, Side::A, sa, case);
    let b = start(&tb, Side::B, sb, case);
    Some(Bed {
        tb,
        underlay,
        a: Some(a),
        b: Some(b),
    })
}

/// An IPv4 UDP packet from `src`:40000 to `dst`:`dport`, checksums
/// complete.
pub fn udp4_packet(src: [u8; 4], dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    tun_test_support::udp(&tun_test_support::Ip::v4(src, dst), 40000, dport, payload)
}
