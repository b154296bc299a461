//! Every builder option and device method, checked against what the kernel
//! reports: our own read-back (ioctl and netlink) and iproute2's
//! `ip -j -d link/addr show` as an independent reader. Each test works in a
//! private network namespace of its own.

mod common;

use std::net::IpAddr;
use std::os::fd::OwnedFd;

use common::*;
use tun_device::{ConfigError, Device, Error, ErrorKind, Mode, NetNs, OffloadFlags, TunFlags};

fn build_in(ns: &NetNs, b: tun_device::DeviceBuilder) -> tun_device::Result<Device> {
    b.netns(ns.try_clone().unwrap()).build()
}

fn ethtool_feature(ns: &NetNs, name: &str, feature: &str) -> String {
    let out = run_in(ns, "ethtool", &["-k", name]);
    out.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{feature}: ")))
        .unwrap_or_else(|| panic!("{feature} not in ethtool -k: {out}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn template_name_defaults_and_link_info() {
    let Some(ns) = private_ns() else { return };
    let dev = build_in(&ns, Device::builder().name("tpl%d")).unwrap();
    let name = dev.interface().name().unwrap().to_string();
    assert_eq!(name, "tpl0");
    let ip = ip_link(&ns, &name);
    assert_eq!(
        ip["ifindex"].as_u64().unwrap(),
        u64::from(dev.interface().index())
    );
    assert_eq!(ip["linkinfo"]["info_kind"], "tun");
    let data = &ip["linkinfo"]["info_data"];
    assert_eq!(data["type"], "tun");
    assert_eq!(data["pi"], false);
    assert_eq!(data["vnet_hdr"], false);
    assert_eq!(data["multi_queue"], false);
    assert_eq!(data["persist"], false);
    // A new device is brought up by default.
    assert!(ip["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    assert!(dev.interface().is_up().unwrap());
    assert!(dev.interface().is_running().unwrap());
    let info = dev.interface().tun_info().unwrap();
    assert!(!info.tap && !info.pi && !info.vnet_hdr && !info.persist && !info.multi_queue);
    assert_eq!(info.num_queues, None);
    assert_eq!(dev.interface().tun_flags(), TunFlags::TUN | TunFlags::NO_PI);
    assert!(dev.interface().offloads().is_empty());
}

#[test]
fn every_builder_option_read_back() {
    let Some(ns) = private_ns() else { return };
    let dev = build_in(
        &ns,
        Device::builder()
            .name("opts0")
            .queues(2)
            .offload(true)
            .persist(true)
            .owner(1234)
            .group(4321)
            .mtu(1400)
            .tx_queue_len(77)
            .address("10.1.2.3/24".parse().unwrap())
            .address_with_peer("10.7.0.1/32".parse().unwrap(), "10.7.0.2".parse().unwrap())
            .ipv4("10.8.0.1".parse().unwrap(), 16, None)
            .ipv6("fd00:1::1".parse().unwrap(), 64)
            .address("fd00:2::5/120".parse().unwrap())
            .up(false),
    )
    .unwrap();
    assert_eq!(dev.queues().len(), 2);
    let ip = ip_link(&ns, "opts0");
    assert_eq!(ip["mtu"], 1400);
    assert_eq!(ip["txqlen"], 77);
    assert!(!ip["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    let data = &ip["linkinfo"]["info_data"];
    assert_eq!(data["vnet_hdr"], true);
    assert_eq!(data["multi_queue"], true);
    assert_eq!(data["persist"], true);
    assert_eq!(data["user"], 1234);
    assert_eq!(data["group"], 4321);
    assert_eq!(data["numqueues"], 2);

    assert_eq!(dev.interface().mtu().unwrap(), 1400);
    assert_eq!(dev.interface().tx_queue_len().unwrap(), 77);
    assert!(!dev.interface().is_up().unwrap());
    assert!(dev.interface().is_persistent().unwrap());
    assert_eq!(dev.interface().owner().unwrap(), Some(1234));
    assert_eq!(dev.interface().group().unwrap(), Some(4321));
    let info = dev.interface().tun_info().unwrap();
    assert!(info.vnet_hdr && info.multi_queue && info.persist);
    assert_eq!(info.num_queues, Some(2));
    assert!(dev.interface().offloads().contains(OffloadFlags::TCP));

    let mut ours: Vec<(String, u8, Option<IpAddr>)> = dev
        .interface()
        .addresses()
        .unwrap()
        .into_iter()
        .filter(|a| {
            !(a.addr.addr().is_ipv6()
                && a.addr.prefix_len() == 64
                && a.addr.addr().to_string().starts_with("fe80"))
        })
        .map(|a| (a.addr.addr().to_string(), a.addr.prefix_len(), a.peer))
        .collect();
    ours.sort();
    let mut theirs: Vec<(String, u8, Option<IpAddr>)> = ip_addrs(&ns, "opts0")
        .into_iter()
        .map(|(a, p, peer)| (a, p as u8, peer.map(|x| x.parse().unwrap())))
        .collect();
    theirs.sort();
    let want: Vec<(String, u8, Option<IpAddr>)> = vec![
        ("10.1.2.3".into(), 24, None),
        ("10.7.0.1".into(), 32, Some("10.7.0.2".parse().unwrap())),
        ("10.8.0.1".into(), 16, None),
        ("fd00:1::1".into(), 64, None),
        ("fd00:2::5".into(), 120, None),
    ];
    assert_eq!(ours, want);
    assert_eq!(theirs, want);

    // Persistence off again: the device goes with its queues.
    dev.interface().set_persist(false).unwrap();
    assert!(!dev.interface().is_persistent().unwrap());
    assert_eq!(
        ip_link(&ns, "opts0")["linkinfo"]["info_data"]["persist"],
        false
    );
    drop(dev);
    let out = ns
        .run(|| {
            Ok(std::process::Command::new("ip")
                .args(["link", "show", "opts0"])
                .output()
                .unwrap())
        })
        .unwrap();
    assert!(!out.status.success(), "device left behind");
}

#[test]
fn offload_negotiation_is_reported_and_visible_to_the_kernel() {
    let Some(ns) = private_ns() else { return };
    let dev = build_in(&ns, Device::builder().name("off0").offload(true)).unwrap();
    let granted = dev.interface().offloads();
    assert!(granted.contains(OffloadFlags::TCP), "{granted:?}");
    let features = tun_sys_features(&ns);
    if features.uso {
        assert!(
            granted.contains(OffloadFlags::USO4 | OffloadFlags::USO6),
            "{granted:?}"
        );
    }
    assert_eq!(
        ethtool_feature(&ns, "off0", "tcp-segmentation-offload"),
        "on"
    );
    assert_eq!(ethtool_feature(&ns, "off0", "tx-checksumming"), "on");
    assert!(dev.interface().has_vnet_hdr());
    assert!(dev.interface().coalescing());
}

struct Features {
    uso: bool,
}

/// Whether this kernel takes USO, probed on a throwaway device.
fn tun_sys_features(ns: &NetNs) -> Features {
    ns.run(|| {
        let fd = tun_device::sys::open_tun(false)?;
        tun_device::sys::set_iff(
            std::os::fd::AsFd::as_fd(&fd),
            None,
            TunFlags::TUN | TunFlags::NO_PI | TunFlags::VNET_HDR,
        )?;
        let uso =
            tun_device::sys::set_offload(std::os::fd::AsFd::as_fd(&fd), OffloadFlags::TCP_UDP)
                .is_ok();
        Ok(Features { uso })
    })
    .unwrap()
}

#[test]
fn stale_offload_mask_is_cleared_when_offload_is_off() {
    let Some(ns) = private_ns() else { return };
    let dev = build_in(
        &ns,
        Device::builder().name("stale0").offload(true).persist(true),
    )
    .unwrap();
    assert_eq!(
        ethtool_feature(&ns, "stale0", "tcp-segmentation-offload"),
        "on"
    );
    drop(dev);
    let dev = build_in(&ns, Device::builder().name("stale0")).unwrap();
    assert!(dev.interface().offloads().is_empty());
    assert_eq!(
        ethtool_feature(&ns, "stale0", "tcp-segmentation-offload"),
        "off"
    );
    dev.interface().set_persist(false).unwrap();
}

#[test]
fn tap_with_mac() {
    let Some(ns) = private_ns() else { return };
    let mac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    let dev = build_in(&ns, Device::builder().name("tap7").mode(Mode::Tap).mac(mac)).unwrap();
    assert!(dev.interface().is_tap());
    let ip = ip_link(&ns, "tap7");
    assert_eq!(ip["link_type"], "ether");
    assert_eq!(ip["address"], "02:11:22:33:44:55");
    assert_eq!(ip["linkinfo"]["info_data"]["type"], "tap");
    assert_eq!(dev.interface().mac().unwrap(), Some(mac));
    let other = [0x02, 0, 0, 0, 0, 9];
    dev.interface().set_mac(other).unwrap();
    assert_eq!(dev.interface().mac().unwrap(), Some(other));
    assert_eq!(ip_link(&ns, "tap7")["address"], "02:00:00:00:00:09");
}

#[test]
fn device_methods_change_what_the_kernel_holds() {
    let Some(ns) = private_ns() else { return };
    let dev = build_in(&ns, Device::builder().name("meth0")).unwrap();
    let index = dev.interface().index();

    dev.interface().set_mtu(1280).unwrap();
    assert_eq!(dev.interface().mtu().unwrap(), 1280);
    assert_eq!(ip_link(&ns, "meth0")["mtu"], 1280);

    dev.interface().set_tx_queue_len(33).unwrap();
    assert_eq!(dev.interface().tx_queue_len().unwrap(), 33);
    assert_eq!(ip_link(&ns, "meth0")["txqlen"], 33);

    dev.interface().set_up(false).unwrap();
    assert!(!dev.interface().is_up().unwrap());
    assert!(!dev.interface().is_running().unwrap());

    // Rename (down), then everything keeps working by index.
    let new = "renamed0".parse().unwrap();
    dev.interface().set_name(&new).unwrap();
    assert_eq!(dev.interface().name().unwrap(), new);
    assert_eq!(dev.interface().index(), index);
    assert_eq!(
        ip_link(&ns, "renamed0")["ifindex"].as_u64().unwrap(),
        u64::from(index)
    );
    dev.interface().set_up(true).unwrap();
    assert!(dev.interface().is_up().unwrap());
    dev.interface().set_mtu(1300).unwrap();
    assert_eq!(ip_link(&ns, "renamed0")["mtu"], 1300);

    // A rename by someone else is seen too.
    run_in(&ns, "ip", &["link", "set", "renamed0", "down"]);
    run_in(&ns, "ip", &["link", "set", "renamed0", "name", "other0"]);
    assert_eq!(dev.interface().name().unwrap().to_string(), "other0");
    dev.interface().set_mtu(1320).unwrap();
    assert_eq!(ip_link(&ns, "other0")["mtu"], 1320);

    // Addresses: add, list, remove; twice is a typed EEXIST.
    let a4 = "192.0.2.1/24".parse().unwrap();
    let a6 = "2001:db8::1/64".parse().unwrap();
    dev.interface().add_address(a4).unwrap();
    dev.interface().add_address(a6).unwrap();
    let err = dev.interface().add_address(a4).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert_eq!(err.errno(), Some(libc::EEXIST));
    let text = err.to_string();
    assert!(text.contains("192.0.2.1/24"), "{text}");
    let addrs = dev.interface().addresses().unwrap();
    assert!(addrs.iter().any(|a| a.addr == a4));
    assert!(addrs.iter().any(|a| a.addr == a6));
    assert_eq!(ip_addrs(&ns, "other0").len(), 2);
    dev.interface().remove_address(a4).unwrap();
    assert!(
        !dev.interface()
            .addresses()
            .unwrap()
            .iter()
            .any(|a| a.addr == a4)
    );
    let err = dev.interface().remove_address(a4).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let ip = ip_addrs(&ns, "other0");
    assert_eq!(ip, vec![("2001:db8::1".to_string(), 64, None)]);

    // A bad MTU comes back from the kernel as a typed error.
    let err = dev.interface().set_mtu(20).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL), "{err}");
    assert_eq!(ip_link(&ns, "other0")["mtu"], 1320);
}

#[test]
fn refused_before_any_syscall() {
    // No privilege needed: these never reach the kernel.
    type Case = (tun_device::DeviceBuilder, fn(&ConfigError) -> bool);
    let cases: Vec<Case> = vec![
        (
            Device::builder().offload(true).packet_information(true),
            |e| matches!(e, ConfigError::OffloadWithPacketInfo),
        ),
        (Device::builder().mac([2, 0, 0, 0, 0, 1]), |e| {
            matches!(e, ConfigError::MacOnTun)
        }),
        (Device::builder().queues(2).multi_queue(false), |e| {
            matches!(e, ConfigError::QueuesWithoutMultiQueue { queues: 2 })
        }),
        (Device::builder().queues(0), |e| {
            matches!(e, ConfigError::NoQueues)
        }),
        (
            Device::builder().ipv4("10.0.0.1".parse().unwrap(), 33, None),
            |e| {
                matches!(
                    e,
                    ConfigError::BadPrefix {
                        prefix: 33,
                        max: 32,
                        ..
                    }
                )
            },
        ),
        (
            Device::builder().ipv6("fd00::1".parse().unwrap(), 129),
            |e| {
                matches!(
                    e,
                    ConfigError::BadPrefix {
                        prefix: 129,
                        max: 128,
                        ..
                    }
                )
            },
        ),
        (
            Device::builder()
                .address_with_peer("10.0.0.1/32".parse().unwrap(), "fd00::2".parse().unwrap()),
            |e| matches!(e, ConfigError::PeerFamilyMismatch { .. }),
        ),
        (Device::builder().name("bad name"), |e| {
            matches!(e, ConfigError::BadName { .. })
        }),
        (Device::builder().name("x%d").existing(true), |e| {
            matches!(e, ConfigError::ExistingByTemplate)
        }),
    ];
    for (b, check) in cases {
        let dbg = format!("{b:?}");
        match b.build() {
            Err(Error::Config { error, .. }) => {
                assert!(check(&error), "{dbg}: {error}");
                assert!(!error.to_string().is_empty());
            }
            other => panic!("{dbg}: {other:?}"),
        }
    }
    let text = Device::builder()
        .offload(true)
        .packet_information(true)
        .build()
        .unwrap_err()
        .to_string();
    assert!(text.contains("packet information"), "{text}");
}

#[test]
fn opening_an_existing_device_checks_the_flags() {
    let Some(ns) = private_ns() else { return };
    let first = build_in(
        &ns,
        Device::builder().name("att0").offload(true).persist(true),
    )
    .unwrap();
    drop(first);
    // Same flags: opens it, keeps the state.
    let dev = build_in(
        &ns,
        Device::builder().name("att0").offload(true).existing(true),
    )
    .unwrap();
    assert!(dev.interface().offloads().contains(OffloadFlags::TCP));
    drop(dev);
    // Other flags (TAP instead of TUN): refused by the kernel or by our check.
    let err = build_in(&ns, Device::builder().name("att0").tap().existing(true)).unwrap_err();
    assert!(
        matches!(err, Error::FlagsMismatch { .. }) || err.errno() == Some(libc::EINVAL),
        "{err:?}"
    );
    // Multi-queue on a single-queue device: the kernel refuses it.
    let err = build_in(&ns, Device::builder().name("att0").queues(2).existing(true)).unwrap_err();
    assert!(
        matches!(err, Error::FlagsMismatch { .. }) || err.errno() == Some(libc::EINVAL),
        "{err:?}"
    );
    // Packet information on a device without it: refused before TUNSETIFF,
    // which would otherwise rewrite the single-queue device's flags.
    let err = build_in(
        &ns,
        Device::builder()
            .name("att0")
            .offload(true)
            .existing(true)
            .packet_information(true),
    );
    assert!(err.is_err());
    let err = build_in(&ns, Device::builder().name("att0").existing(true)).unwrap_err();
    assert!(matches!(err, Error::FlagsMismatch { .. }), "{err:?}");
    let data = ip_link(&ns, "att0")["linkinfo"]["info_data"].clone();
    assert_eq!(
        (data["pi"].clone(), data["vnet_hdr"].clone()),
        (false.into(), true.into())
    );
    // Nothing there.
    let err = build_in(&ns, Device::builder().name("nothere0").existing(true)).unwrap_err();
    assert!(matches!(err, Error::NotTun { kind: None, .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // Something there that is not TUN.
    run_in(&ns, "ip", &["link", "add", "br0", "type", "bridge"]);
    let err = build_in(&ns, Device::builder().name("br0").existing(true)).unwrap_err();
    assert!(
        matches!(&err, Error::NotTun { kind: Some(k), .. } if k == "bridge"),
        "{err:?}"
    );
    // Exclusive on an existing name: EBUSY.
    let err = build_in(
        &ns,
        Device::builder().name("att0").offload(true).exclusive(true),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    let dev = build_in(
        &ns,
        Device::builder().name("att0").offload(true).existing(true),
    )
    .unwrap();
    dev.interface().set_persist(false).unwrap();
}

#[test]
fn open_from_an_fd() {
    let Some(ns) = private_ns() else { return };
    let dev = build_in(&ns, Device::builder().name("fd0").offload(true).mtu(1420)).unwrap();
    let granted = dev.interface().offloads();
    let fd: OwnedFd = dev.into_queues().remove(0).into();
    let dev = Device::from_fd(fd, granted).unwrap();
    assert_eq!(dev.interface().name().unwrap().to_string(), "fd0");
    assert!(
        dev.interface()
            .tun_flags()
            .contains(TunFlags::VNET_HDR | TunFlags::NO_PI | TunFlags::TUN)
    );
    assert_eq!(dev.interface().offloads(), granted);
    assert_eq!(dev.interface().mtu().unwrap(), 1420);
    // The fd works: the kernel takes a packet.
    let pkt = udp4_packet();
    assert_eq!(dev.first_queue().send(&pkt).unwrap(), pkt.len());
    let fd: OwnedFd = dev.into_queues().remove(0).into();
    let dev = Device::try_from(fd).unwrap();
    assert!(dev.interface().offloads().is_empty());
    assert!(!dev.interface().has_packet_info());

    // Packet information is learnt from the kernel too.
    let dev = build_in(
        &ns,
        Device::builder().name("fdpi0").packet_information(true),
    )
    .unwrap();
    let fd: OwnedFd = dev.into_queues().remove(0).into();
    let dev = Device::try_from(fd).unwrap();
    assert!(dev.interface().has_packet_info());
    assert!(!dev.interface().has_vnet_hdr());
    assert_eq!(dev.first_queue().send(&pkt).unwrap(), pkt.len());
}

/// A valid IPv4/UDP packet from 10.1.0.2 to 10.1.0.1.
pub fn udp4_packet() -> Vec<u8> {
    udp4_packet_to([10, 1, 0, 2], [10, 1, 0, 1], 9, &[0; 8])
}

#[test]
fn move_to_another_namespace() {
    let Some(ns1) = private_ns() else { return };
    let Some(ns2) = private_ns() else { return };
    let dev = build_in(&ns1, Device::builder().name("mv0")).unwrap();
    dev.interface().move_to_netns(&ns2).unwrap();
    let out = ns1
        .run(|| {
            Ok(std::process::Command::new("ip")
                .args(["link", "show", "mv0"])
                .output()
                .unwrap())
        })
        .unwrap();
    assert!(!out.status.success(), "still in the first namespace");
    let ip = ip_link(&ns2, "mv0");
    assert_eq!(
        ip["ifindex"].as_u64().unwrap(),
        u64::from(dev.interface().index())
    );
    // Configuration follows it.
    dev.interface().set_mtu(1234).unwrap();
    assert_eq!(ip_link(&ns2, "mv0")["mtu"], 1234);
    dev.interface()
        .add_address("10.44.0.1/24".parse().unwrap())
        .unwrap();
    assert_eq!(
        ip_addrs(&ns2, "mv0"),
        vec![("10.44.0.1".to_string(), 24, None)]
    );
    assert!(dev.interface().netns().unwrap().as_fd_is(&ns2));
    // A new queue of a moved multi-queue device opens where it lives.
}

trait SameNs {
    fn as_fd_is(&self, other: &NetNs) -> bool;
}

impl SameNs for NetNs {
    fn as_fd_is(&self, other: &NetNs) -> bool {
        let a = rustix_stat(self);
        let b = rustix_stat(other);
        a == b
    }
}

fn rustix_stat(ns: &NetNs) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(ns));
    let m = std::fs::metadata(path).unwrap();
    (m.dev(), m.ino())
}

#[test]
fn multi_queue_open_detach_attach() {
    let Some(ns) = private_ns() else { return };
    let mut dev = build_in(&ns, Device::builder().name("mq0").queues(2)).unwrap();
    assert_eq!(ip_link(&ns, "mq0")["linkinfo"]["info_data"]["numqueues"], 2);
    dev.add_queue().unwrap();
    let q = dev.open_queue().unwrap();
    assert_eq!(dev.interface().tun_info().unwrap().num_queues, Some(4));
    q.detach().unwrap();
    let data = ip_link(&ns, "mq0")["linkinfo"]["info_data"].clone();
    assert_eq!(data["numqueues"], 3);
    assert_eq!(data["numdisabled"], 1);
    assert_eq!(
        dev.interface().tun_info().unwrap().num_disabled_queues,
        Some(1)
    );
    q.attach().unwrap();
    assert_eq!(dev.interface().tun_info().unwrap().num_queues, Some(4));
    // Each queue moves to its own thread.
    let queues = dev.into_queues();
    std::thread::scope(|s| {
        for q in &queues {
            s.spawn(move || q.interface().index());
        }
    });
    // A single-queue device has no second queue.
    let single = build_in(&ns, Device::builder().name("sq0")).unwrap();
    let err = single.open_queue().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Config {
                error: ConfigError::NotMultiQueue,
                ..
            }
        ),
        "{err}"
    );
}

/// Not run by itself: the body of `missing_privilege_names_cap_net_admin`,
/// run as `nobody` in a child process.
#[test]
#[ignore = "run as a child process by missing_privilege_names_cap_net_admin"]
fn child_without_privilege() {
    let err = Device::builder().name("np0").build().unwrap_err();
    println!("ERROR: {err}");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("CAP_NET_ADMIN"), "{err}");
}

#[test]
fn missing_privilege_names_cap_net_admin() {
    if private_ns().is_none() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(exe)
        .args([
            "--ignored",
            "--exact",
            "child_without_privilege",
            "--nocapture",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert!(stdout.contains("needs root or CAP_NET_ADMIN"), "{stdout}");
}

#[test]
fn napi_and_nonblocking() {
    let Some(ns) = private_ns() else { return };
    let dev = build_in(
        &ns,
        Device::builder()
            .name("napi0")
            .napi(true)
            .nonblocking(true)
            .up(false),
    )
    .unwrap();
    assert!(dev.interface().tun_flags().contains(TunFlags::NAPI));
    assert!(dev.first_queue().is_nonblocking());
    let mut buf = [0u8; 2048];
    let err = dev.first_queue().recv(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    assert!(err.is_would_block());
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::WouldBlock);
    assert!(
        !dev.first_queue()
            .wait_readable(Some(std::time::Duration::ZERO))
            .unwrap()
    );
    dev.set_nonblocking(false);
    assert!(!dev.first_queue().is_nonblocking());
}

/// Packets go both ways between the device and a local socket, with
/// packet information, offload, or neither: what is read is a bare IP
/// packet, what is written reaches the socket.
#[test]
fn packets_reach_sockets_in_every_framing() {
    let Some(ns) = private_ns() else { return };
    // A fresh name each time: a closed device may linger while a forked
    // child (another test's `ip`) still holds a copy of its fd.
    for (k, (pi, offload)) in [(false, false), (true, false), (false, true)]
        .into_iter()
        .enumerate()
    {
        let dev = build_in(
            &ns,
            Device::builder()
                .name(format!("frm{k}"))
                .packet_information(pi)
                .offload(offload)
                .address("10.6.0.1/24".parse().unwrap()),
        )
        .unwrap();
        assert_eq!(dev.interface().has_packet_info(), pi);
        // A port of its own too: the last one's socket may linger in a
        // forked child for a moment, like the device.
        let port = 9000 + k as u16;
        let sock = ns
            .run(move || {
                let s = std::net::UdpSocket::bind(("10.6.0.1", port)).unwrap();
                s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                    .unwrap();
                Ok(s)
            })
            .unwrap();
        // Device to socket.
        let pkt = udp4_packet_to([10, 6, 0, 2], [10, 6, 0, 1], port, b"hello device");
        assert_eq!(dev.first_queue().send(&pkt).unwrap(), pkt.len());
        let mut buf = [0u8; 64];
        let (n, from) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello device");
        assert_eq!(from.to_string(), "10.6.0.2:4000");
        // Socket to device.
        sock.send_to(b"hello kernel", "10.6.0.2:4000").unwrap();
        let mut buf = [0u8; 2048];
        let n = loop {
            let n = dev.first_queue().recv(&mut buf).unwrap();
            if buf[0] >> 4 == 4 && buf[9] == 17 {
                break n;
            }
        };
        assert_eq!(&buf[28..n], b"hello kernel");
        verify_packet(&buf[..n]).unwrap();
        drop(sock);
        drop(dev);
    }
}

/// An IPv4/UDP packet from `src`:4000 to `dst`:`port` with checksums.
pub fn udp4_packet_to(src: [u8; 4], dst: [u8; 4], port: u16, payload: &[u8]) -> Vec<u8> {
    tun_test_support::udp(&tun_test_support::Ip::v4(src, dst), 4000, port, payload)
}

#[test]
fn veth_pair_over_netlink_lands_in_both_namespaces() {
    let Some(a) = private_ns() else { return };
    let b = private_ns().unwrap();
    let peer_ns = b.try_clone().unwrap();
    a.run(move || {
        let mut nl = tun_device::netlink::Netlink::open().unwrap();
        nl.add_veth("va", "vb", Some(std::os::fd::AsFd::as_fd(&peer_ns)))
            .unwrap();
        // The same names again: the kernel says EEXIST, and we say so.
        let err = nl.add_veth("va", "vb2", None).unwrap_err();
        assert!(err.is_exists(), "{err}");
        assert!(err.to_string().contains("add veth pair"), "{err}");
        Ok(())
    })
    .unwrap();
    let va = ip_link(&a, "va");
    let vb = ip_link(&b, "vb");
    assert_eq!(va["linkinfo"]["info_kind"], "veth");
    assert_eq!(vb["linkinfo"]["info_kind"], "veth");
    // Each end names the other's index as its link.
    assert_eq!(va["link_index"], vb["ifindex"]);
    assert_eq!(vb["link_index"], va["ifindex"]);
}
