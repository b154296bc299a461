//! UDP-tunnel offload (Linux 6.17+) through the relay: a VXLAN or Geneve
//! device in each of two private namespaces, their underlay two TUN (or
//! TAP) devices of this crate joined by a relay. The tunnel devices hand
//! their TCP and UDP_SEGMENT super-packets to the underlay device as tunnel
//! super-packets; the relay splits them (offload mode) or passes them on
//! (pass-through), and on a TAP coalesces the datagrams again into tunnel
//! super-packets the kernel takes. Every transfer is checked byte for
//! byte (tun-testbed's traffic), the relay's counters say what it saw, and a checking relay verifies
//! every outer datagram it reads, outer and inner checksums, with the test
//! helpers' own decoder.

mod common;

use common::*;
use tun_device::relay::{Relay as LibRelay, RelayCounters, RelayMode};
use tun_device::{Device, NetNs, OffloadFlags};

const MIB: usize = 1 << 20;
const VNI: &str = "42";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tunnel {
    Vxlan,
    Geneve,
}

#[derive(Debug, Clone, Copy)]
struct Case {
    tunnel: Tunnel,
    tap: bool,
    /// IPv6 underlay.
    v6: bool,
    /// Outer UDP checksums (`udpcsum`; IPv6 underlays always have them).
    udpcsum: bool,
    /// Offer the UDP-tunnel offload.
    offload: bool,
}

impl Case {
    const fn new(tunnel: Tunnel, tap: bool, v6: bool) -> Self {
        Case {
            tunnel,
            tap,
            v6,
            udpcsum: v6,
            offload: true,
        }
    }
}

/// The test bed's two namespaces, each with an underlay device of this
/// crate and a tunnel device over it holding the bed's addresses
/// (`Testbed::addresses`), so that the bed's traffic crosses the tunnel.
struct Underlay {
    tb: Testbed,
}

/// Whether the kernel has Geneve devices. This crate's tests run on
/// kernels built without CONFIG_GENEVE too: there the refusal must be the
/// kernel's "Unknown device type", and its own configuration must say it
/// has none; anything else fails the test.
fn geneve_available(ns: &NetNs) -> bool {
    let out = ns
        .run(|| {
            let add = [
                "link",
                "add",
                "gnvprobe",
                "type",
                "geneve",
                "id",
                "1",
                "remote",
                "192.0.2.9",
            ];
            Ok(std::process::Command::new("ip")
                .args(add)
                .output()
                .expect("spawn ip"))
        })
        .unwrap();
    if out.status.success() {
        run_in(ns, "ip", &["link", "del", "gnvprobe"]);
        return true;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Unknown device type"),
        "ip link add type geneve: {err}"
    );
    let config = std::process::Command::new("zcat")
        .arg("/proc/config.gz")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        !config.contains("CONFIG_GENEVE=y") && !config.contains("CONFIG_GENEVE=m"),
        "the kernel has Geneve but refuses the device: {err}"
    );
    eprintln!(
        "kernel {} has no Geneve devices (CONFIG_GENEVE not set): Geneve through the \
         relay is not run here; tun-offload's tests cover its split and coalescing",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    false
}

fn underlay(case: Case) -> Option<(Underlay, Device, Device)> {
    let tb = testbed()?;
    if case.tunnel == Tunnel::Geneve && !geneve_available(&tb.ns_a) {
        return None;
    }
    let (ul_a, ul_b, prefix) = if case.v6 {
        ("2001:db8::1", "2001:db8::2", 64)
    } else {
        ("192.0.2.1", "192.0.2.2", 24)
    };
    let make = |ns: &NetNs, local: &str| {
        let b = Device::builder();
        let b = if case.tap {
            b.tap().name("ultap%d")
        } else {
            b.name("ul%d")
        };
        b.offload(true)
            .udp_tunnel_offload(case.offload)
            .address(format!("{local}/{prefix}").parse().unwrap())
            .netns(ns.try_clone().unwrap())
            .build()
            .expect("underlay device")
    };
    let a = make(&tb.ns_a, ul_a);
    let b = make(&tb.ns_b, ul_b);
    tun_testbed::settle(&a).unwrap();
    tun_testbed::settle(&b).unwrap();
    for (side, local, remote) in [(Side::A, ul_a, ul_b), (Side::B, ul_b, ul_a)] {
        let ns = tb.ns(side);
        let [v4, v6] = Testbed::addresses(side).map(|a| a.to_string());
        let mut args = vec!["link", "add", "tnl0", "type"];
        match case.tunnel {
            Tunnel::Vxlan => args.extend(["vxlan", "id", VNI, "local", local, "dstport", "4789"]),
            Tunnel::Geneve => args.extend(["geneve", "id", VNI]),
        }
        args.extend(["remote", remote]);
        if case.udpcsum {
            args.push("udpcsum");
        } else if case.v6 {
            args.extend(["udp6zerocsumtx", "udp6zerocsumrx"]);
        } else {
            args.push("noudpcsum");
        }
        run_in(ns, "ip", &args);
        // Below the underlay's 1500 less the largest encapsulation (IPv6,
        // UDP, tunnel header, Ethernet: 70 bytes), so that nothing is
        // fragmented (a tunnel device without `dev` keeps 1500).
        run_in(ns, "ip", &["link", "set", "tnl0", "mtu", "1400", "up"]);
        run_in(ns, "ip", &["addr", "add", &v4, "dev", "tnl0"]);
        run_in(ns, "ip", &["addr", "add", &v6, "dev", "tnl0", "nodad"]);
    }
    Some((Underlay { tb }, a, b))
}

/// Whether this kernel granted the UDP-tunnel offload to `dev`, checked
/// against what the device says of its header.
fn granted(dev: &Device) -> bool {
    let iface = dev.interface();
    let on = iface.offloads().contains(OffloadFlags::UDP_TUNNEL_GSO);
    assert_eq!(
        iface.vnet_hdr_len(),
        if on { 24 } else { 10 },
        "{:?}",
        iface.offloads()
    );
    on
}

/// The transfers every case makes: 64 MiB of TCP, then UDP_SEGMENT
/// datagrams, from `a` to `b` across the tunnel, every byte checked and
/// nothing lost; the inner destination is IPv4 or IPv6 as `inner_v6` says.
fn transfers(u: &Underlay, inner_v6: bool, what: &str) {
    u.tb.tcp_exact(inner_v6, 64 * MIB as u64)
        .unwrap_or_else(|e| panic!("{what}: TCP: {e}"));
    u.tb.udp_lossless(inner_v6, 1200, 20, UDP_RUN)
        .unwrap_or_else(|e| panic!("{what}: datagrams lost or damaged: {e}"));
}

/// The library relay in `mode` over the case's underlay.
fn relay_case(case: Case, mode: RelayMode) {
    let Some((u, a, b)) = underlay(case) else {
        return;
    };
    let on = granted(&a) && granted(&b);
    assert!(
        on || !case.offload,
        "{case:?}: Linux 6.17+ grants the tunnel offload"
    );
    assert!(!on || case.offload, "{case:?}: offered though turned off");
    let out = b.interface().clone();
    let relay = LibRelay::start(a.into_queues(), b.into_queues(), mode).unwrap();
    transfers(&u, false, &format!("{case:?} {mode:?}"));
    transfers(&u, true, &format!("{case:?} {mode:?}, inner IPv6"));
    let (ab, ba) = relay.stop().unwrap();
    check_counters(case, mode, on, &out, &ab, &ba);
}

fn check_counters(
    case: Case,
    mode: RelayMode,
    on: bool,
    out: &tun_device::Interface,
    ab: &RelayCounters,
    ba: &RelayCounters,
) {
    assert_eq!(
        ab.dropped + ba.dropped,
        0,
        "{case:?} {mode:?}: {ab:?} {ba:?}"
    );
    assert!(ab.bytes_in >= 128 * MIB as u64, "{ab:?}");
    if !on {
        assert_eq!(ab.tunnel_super_packets_in, 0, "{ab:?}");
        assert_eq!(ab.tunnel_writes, 0, "{ab:?}");
        return;
    }
    // The kernel hands the tunnel's TSO and UDP_SEGMENT output over whole.
    assert!(
        ab.tunnel_super_packets_in > 100,
        "{case:?} {mode:?}: {ab:?}"
    );
    assert!(
        ab.packets_in > 2 * ab.super_packets_in,
        "{case:?} {mode:?}: super-packets of one segment only? {ab:?}"
    );
    let fallbacks = out.stats().gso_write_fallbacks;
    match (case.tap, mode) {
        // TAP takes tunnel super-packets: coalesced or passed on, and
        // never refused.
        (true, _) => {
            assert!(ab.tunnel_writes > 100, "{case:?} {mode:?}: {ab:?}");
            assert!(ab.coalescing_ratio() > 2.0, "{case:?} {mode:?}: {ab:?}");
            assert_eq!(fallbacks, 0, "{case:?} {mode:?}");
            assert!(out.tunnel_coalescing());
        }
        // Linux 6.18's TUN refuses them: the relay does not coalesce tunnel
        // datagrams on a TUN, and pass-through splits what it refused.
        (false, _) => {
            assert!(!out.tunnel_coalescing());
            assert_eq!(ab.tunnel_writes, 0, "{case:?} {mode:?}: {ab:?}");
        }
    }
}

#[test]
fn vxlan_over_tun_v4() {
    relay_case(Case::new(Tunnel::Vxlan, false, false), RelayMode::Offload);
}

#[test]
fn vxlan_over_tun_v6() {
    relay_case(Case::new(Tunnel::Vxlan, false, true), RelayMode::Offload);
}

#[test]
fn vxlan_over_tap_v4() {
    relay_case(Case::new(Tunnel::Vxlan, true, false), RelayMode::Offload);
}

#[test]
fn vxlan_over_tap_v4_outer_checksums() {
    let case = Case {
        udpcsum: true,
        ..Case::new(Tunnel::Vxlan, true, false)
    };
    relay_case(case, RelayMode::Offload);
}

#[test]
fn vxlan_over_tap_v6() {
    relay_case(Case::new(Tunnel::Vxlan, true, true), RelayMode::Offload);
}

#[test]
fn geneve_over_tun_v4() {
    relay_case(Case::new(Tunnel::Geneve, false, false), RelayMode::Offload);
}

#[test]
fn geneve_over_tap_v6() {
    relay_case(Case::new(Tunnel::Geneve, true, true), RelayMode::Offload);
}

#[test]
fn geneve_over_tap_v4() {
    relay_case(Case::new(Tunnel::Geneve, true, false), RelayMode::Offload);
}

#[test]
fn vxlan_passthrough_tun_v4() {
    relay_case(
        Case::new(Tunnel::Vxlan, false, false),
        RelayMode::Passthrough,
    );
}

#[test]
fn vxlan_passthrough_tap_v6() {
    relay_case(Case::new(Tunnel::Vxlan, true, true), RelayMode::Passthrough);
}

#[test]
fn vxlan_with_the_tunnel_offload_refused() {
    let case = Case {
        offload: false,
        ..Case::new(Tunnel::Vxlan, true, false)
    };
    relay_case(case, RelayMode::Offload);
}

/// The test helpers' checking relay (batched receive and send, every
/// packet verified by the helpers' own decoder, reads into place on):
/// every outer datagram the receive side yields verifies, outer and inner.
fn checked_case(case: Case) {
    let Some((u, a, b)) = underlay(case) else {
        return;
    };
    assert!(granted(&a) && granted(&b));
    let relay = Relay::start(a.into_queues().remove(0), b.into_queues().remove(0), 1500);
    transfers(&u, false, &format!("{case:?}"));
    let (ab, ba) = relay.finish();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    for c in [&ab, &ba] {
        c.assert_clean(&format!("{case:?}"));
    }
    assert!(load(&ab.super_packets) > 100, "{case:?}: {ab:?}");
    assert!(load(&ab.packets) > 2 * load(&ab.super_packets), "{ab:?}");
}

#[test]
fn every_split_datagram_verifies_vxlan_tun_v4() {
    checked_case(Case::new(Tunnel::Vxlan, false, false));
}

#[test]
fn every_split_datagram_verifies_geneve_tap_v6() {
    checked_case(Case::new(Tunnel::Geneve, true, true));
}

#[test]
fn every_split_datagram_verifies_vxlan_tap_outer_checksums() {
    checked_case(Case {
        udpcsum: true,
        ..Case::new(Tunnel::Vxlan, true, false)
    });
}
