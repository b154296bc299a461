//! Address options against iproute2's reading of them: IPv4 broadcast,
//! duplicate address detection (tentative right after build, or skipped
//! with nodad), and the namespace errors that name their path.

mod common;

use std::time::Duration;

use common::*;
use tun_device::{AddressOptions, Device, ErrorKind, NetNs};

#[test]
fn broadcast_is_set_and_read_back() {
    let Some(ns) = private_ns() else { return };
    let net = "10.44.0.1/24".parse().unwrap();
    let brd = AddressOptions::broadcast_of(net).unwrap();
    assert_eq!(brd.to_string(), "10.44.0.255");
    let dev = Device::builder()
        .name("brd0")
        .address_with(net, AddressOptions::new().broadcast(brd))
        .netns(ns.try_clone().unwrap())
        .build()
        .unwrap();
    let addrs: Vec<_> = dev
        .interface()
        .addresses()
        .unwrap()
        .into_iter()
        .filter(|a| a.addr.addr().is_ipv4())
        .collect();
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    assert_eq!(addrs[0].broadcast, Some(brd));
    let out = run_in(&ns, "ip", &["-j", "addr", "show", "dev", "brd0"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["addr_info"][0]["broadcast"], "10.44.0.255");
    // Added later through the interface, too; IPv6 takes no broadcast.
    let second = "10.45.0.1/16".parse().unwrap();
    dev.interface()
        .add_address_with(
            second,
            AddressOptions::new().broadcast("10.45.255.255".parse().unwrap()),
        )
        .unwrap();
    assert!(
        dev.interface()
            .addresses()
            .unwrap()
            .iter()
            .any(|a| a.addr == second && a.broadcast == Some("10.45.255.255".parse().unwrap()))
    );
    let err = dev
        .interface()
        .add_address_with(
            "fd44::1/64".parse().unwrap(),
            AddressOptions::new().broadcast(brd),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    assert!(AddressOptions::broadcast_of("10.0.0.1/31".parse().unwrap()).is_none());
}

#[test]
fn ipv6_is_tentative_until_dad_ends_unless_nodad() {
    let Some(ns) = private_ns() else { return };
    // A fresh namespace does duplicate address detection (accept_dad 1)
    // on links that resolve neighbours: a TAP (a TUN is NOARP, and the
    // kernel ends DAD there as soon as its work queue runs).
    let dev = Device::builder()
        .tap()
        .name("dad0")
        .address("fd45::1/64".parse().unwrap())
        .address_with(
            "fd46::1/64".parse().unwrap(),
            AddressOptions::new().nodad(true),
        )
        .netns(ns.try_clone().unwrap())
        .build()
        .unwrap();
    let addrs = dev.interface().addresses().unwrap();
    let by = |p: &str| {
        addrs
            .iter()
            .find(|a| a.addr.to_string() == p)
            .unwrap()
            .clone()
    };
    assert!(by("fd45::1/64").is_tentative(), "{addrs:?}");
    assert!(!by("fd46::1/64").is_tentative(), "{addrs:?}");
    let out = run_in(&ns, "ip", &["-j", "addr", "show", "dev", "dad0"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let info = v[0]["addr_info"].as_array().unwrap();
    let tentative = |local: &str| {
        info.iter()
            .find(|a| a["local"] == local)
            .map(|a| a["tentative"] == true)
            .unwrap()
    };
    assert!(tentative("fd45::1"), "{out}");
    assert!(!tentative("fd46::1"));
    assert!(
        dev.interface()
            .wait_for_dad(Duration::from_secs(10))
            .unwrap()
    );
    assert!(
        !dev.interface()
            .addresses()
            .unwrap()
            .iter()
            .any(|a| a.is_tentative())
    );
}

#[test]
fn namespace_errors_name_the_path() {
    if private_ns().is_none() {
        return;
    }
    let err = NetNs::named("tun-test-no-such-ns").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.to_string().contains("/run/netns/tun-test-no-such-ns"),
        "{err}"
    );
    let not_ns = NetNs::open("/proc/self/status").unwrap();
    let err = not_ns.run(|| Ok(())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("/proc/self/status") && text.contains("not a network namespace"),
        "{text}"
    );
}

#[test]
fn interface_flags_keep_all_32_bits() {
    let Some(ns) = private_ns() else { return };
    let dev = Device::builder()
        .name("flags0")
        .netns(ns.try_clone().unwrap())
        .build()
        .unwrap();
    let flags = dev.interface().flags().unwrap();
    // An up TUN with a queue attached has its carrier: IFF_LOWER_UP is
    // bit 16, beyond what SIOCGIFFLAGS carries.
    assert!(flags.contains(tun_device::InterfaceFlags::UP), "{flags:?}");
    assert!(
        flags.contains(tun_device::InterfaceFlags::LOWER_UP),
        "{flags:?}"
    );
    let ip = ip_link(&ns, "flags0");
    assert!(
        ip["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "LOWER_UP")
    );
}
