//! The test bed on the real kernel (as root): veth pairs made over
//! netlink, UDP at any MTU, and cancellation. Without root these tests are
//! skipped, unless `TUN_REQUIRE_PRIVILEGED=1`, which makes them fail.
//!
//! Traffic goes only between the two namespaces each test makes.

use std::time::{Duration, Instant};

use tun_device::Device;
use tun_device::netlink::Netlink;
use tun_device::relay::{Relay, RelayMode};
use tun_testbed::{Side, Testbed, link_names, testbed as bed};

#[test]
fn veth_over_netlink_at_a_jumbo_mtu_carries_checked_udp_and_goes_on_drop() {
    let Some(tb) = bed() else { return };
    let veth = tb.veth(9000).expect("veth pair");
    let mtu = tb
        .ns(Side::B)
        .run(|| Ok(Netlink::open()?.link_by_name("veth-b")?.mtu))
        .unwrap();
    assert_eq!(mtu, 9000);
    // 8192-byte datagrams, 32 asked per send: 262144 bytes, far over what
    // one send may carry; the bed sends what the kernel takes.
    let t = tb
        .udp(false, 8192, 32, Duration::from_millis(500), Some(1 << 20))
        .expect("UDP over the veth pair");
    assert!(t.intact && t.bytes > 0 && t.sent > 0, "{t:?}");
    let t = tb
        .udp(true, 8000, 32, Duration::from_millis(300), Some(1 << 20))
        .expect("UDP over IPv6");
    assert!(t.intact && t.bytes > 0, "{t:?}");
    let t = tb
        .tcp(false, 2, Duration::ZERO, Some(1 << 20))
        .expect("TCP");
    assert!(t.intact && t.bytes == 2 << 20, "{t:?}");
    drop(veth);
    assert_eq!(link_names(tb.ns(Side::A)).unwrap(), vec!["lo".to_string()]);
    assert_eq!(link_names(tb.ns(Side::B)).unwrap(), vec!["lo".to_string()]);
}

#[test]
fn a_second_veth_is_refused_naming_the_step() {
    let Some(tb) = bed() else { return };
    let _veth = tb.veth(1500).expect("veth pair");
    let err = tb.veth(1500).unwrap_err();
    let s = err.to_string();
    assert!(s.starts_with("add the veth pair veth-a/veth-b: "), "{s}");
    assert!(s.contains("EEXIST"), "{s}");
}

#[test]
fn cancel_ends_tcp_and_udp_runs_promptly() {
    let Some(mut tb) = bed() else { return };
    let mk = |side| {
        tb.device(side, Device::builder().name("tb%d").offload(true))
            .expect("device")
    };
    let (a, b) = (mk(Side::A), mk(Side::B));
    let relay = Relay::start(a.into_queues(), b.into_queues(), RelayMode::Offload).unwrap();
    for udp in [false, true] {
        assert!(!tb.cancel_token().is_cancelled());
        let token = tb.cancel_token();
        let t0 = Instant::now();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            token.cancel();
        });
        let res = if udp {
            tb.udp(false, 1200, 32, Duration::from_secs(60), None)
        } else {
            tb.tcp(false, 2, Duration::from_secs(60), None)
        };
        canceller.join().unwrap();
        let err = res.expect_err("a cancelled run is an error");
        assert!(err.is_cancelled(), "{err}");
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "took {:?}",
            t0.elapsed()
        );
        // The token stays cancelled: a fresh one for the next run.
        tb.set_cancel(tun_testbed::Cancel::new());
    }
    relay.stop().unwrap();
}

#[test]
fn output_runs_in_the_namespace_and_names_a_failing_command() {
    let Some(tb) = bed() else { return };
    let links = tun_testbed::output(tb.ns(Side::A), "ip", &["-o", "link", "show"]).unwrap();
    assert_eq!(
        links.lines().count(),
        1,
        "only lo in a fresh namespace: {links}"
    );
    let err = tun_testbed::output(tb.ns(Side::A), "ip", &["link", "show", "nosuch0"]).unwrap_err();
    let s = err.to_string();
    assert!(s.starts_with("ip link show nosuch0: "), "{s}");
    assert!(s.contains("nosuch0"), "{s}");
}

#[test]
fn devices_make_one_on_each_side_with_the_beds_addresses() {
    let Some(tb) = bed() else { return };
    let (a, b) = tb
        .devices(|| Device::builder().name("tbd%d"))
        .expect("devices");
    for (dev, side) in [(&a, Side::A), (&b, Side::B)] {
        let mut got: Vec<_> = dev
            .interface()
            .addresses()
            .unwrap()
            .iter()
            .map(|a| a.addr)
            .filter(|n| Testbed::addresses(side).contains(n))
            .collect();
        got.sort();
        let mut want = Testbed::addresses(side).to_vec();
        want.sort();
        assert_eq!(got, want, "{side:?}");
    }
}
