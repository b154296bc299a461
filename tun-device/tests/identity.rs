//! The fd is the identity: configuration follows the device through moves
//! made by anyone, never acts on an interface that took its old index or
//! name, and says what happened when the device is gone. A failed build
//! leaves nothing behind, even when descriptors run out halfway.

mod common;

use std::os::fd::AsFd;

use common::*;
use tun_device::netlink::Netlink;
use tun_device::{Device, ErrorKind, NetNs};

/// Move `index` from the calling context's view in `from` to `to`, as
/// `ip link set dev X netns TO` run by someone else would.
fn move_link(from: &NetNs, index: u32, to: &NetNs) {
    let to = to.try_clone().unwrap();
    from.run(move || {
        Netlink::open()?.move_to_netns(index, to.as_fd())?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_newcomer_on_the_old_index_is_never_touched() {
    let Some(home) = private_ns() else { return };
    let away = private_ns().unwrap();
    let third = private_ns().unwrap();
    let dev = Device::builder()
        .name("ident0")
        .netns(home.try_clone().unwrap())
        .build()
        .unwrap();
    let old = dev.interface().index();
    // Someone else moves the device away...
    move_link(&home, old, &away);
    // ...and a veth moved in from a third namespace takes its index (a
    // fresh namespace numbers its first link as the home namespace did,
    // and a moved link keeps its index when it is free).
    third
        .run(|| {
            let mut nl = Netlink::open()?;
            nl.add_veth("other", "newcomer", None)?;
            Ok(())
        })
        .unwrap();
    // veth registers the peer first: it has the lower index.
    let veth = ip_link(&third, "newcomer")["ifindex"].as_u64().unwrap() as u32;
    assert_eq!(veth, old);
    move_link(&third, veth, &home);
    let newcomer = ip_link(&home, "newcomer");
    assert_eq!(newcomer["ifindex"], old);
    let newcomer_mtu = newcomer["mtu"].as_u64().unwrap();

    // Every call acts on the device, where it lives now.
    dev.interface().set_mtu(1400).unwrap();
    assert_eq!(dev.interface().mtu().unwrap(), 1400);
    assert_eq!(ip_link(&away, "ident0")["mtu"], 1400);
    dev.interface()
        .add_address("10.77.0.1/24".parse().unwrap())
        .unwrap();
    let addrs = dev.interface().addresses().unwrap();
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    assert_eq!(ip_addrs(&away, "ident0").len(), 1);
    dev.interface().set_up(true).unwrap();
    assert!(dev.interface().is_up().unwrap());
    assert_ne!(dev.interface().index(), 0);

    // The newcomer is untouched.
    let after = ip_link(&home, "newcomer");
    assert_eq!(after["mtu"].as_u64().unwrap(), newcomer_mtu);
    assert!(ip_addrs(&home, "newcomer").is_empty());
    let flags: Vec<&str> = after["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert!(!flags.contains(&"UP"), "newcomer was brought up: {flags:?}");

    // delete() deletes the device, not the newcomer.
    dev.interface().delete().unwrap();
    assert_eq!(ip_link(&home, "newcomer")["ifindex"], old);
    let left = run_in(&away, "ip", &["-j", "link", "show"]);
    assert!(!left.contains("ident0"), "{left}");
}

#[test]
fn a_newcomer_that_took_the_name_is_never_touched() {
    let Some(home) = private_ns() else { return };
    let away = private_ns().unwrap();
    let dev = Device::builder()
        .name("same0")
        .netns(home.try_clone().unwrap())
        .build()
        .unwrap();
    move_link(&home, dev.interface().index(), &away);
    // Another TUN device takes the name where the device was.
    let other = Device::builder()
        .name("same0")
        .netns(home.try_clone().unwrap())
        .build()
        .unwrap();
    dev.interface().set_mtu(1300).unwrap();
    assert_eq!(ip_link(&away, "same0")["mtu"], 1300);
    assert_eq!(ip_link(&home, "same0")["mtu"], 1500);
    assert_eq!(other.interface().mtu().unwrap(), 1500);
}

#[test]
fn configuration_after_deletion_says_the_device_is_gone() {
    let Some(ns) = private_ns() else { return };
    let dev = Device::builder()
        .name("gone0")
        .netns(ns.try_clone().unwrap())
        .build()
        .unwrap();
    dev.interface().delete().unwrap();
    for (what, err) in [
        ("set_mtu", dev.interface().set_mtu(1400).unwrap_err()),
        ("set_up", dev.interface().set_up(true).unwrap_err()),
        ("addresses", dev.interface().addresses().unwrap_err()),
        ("mtu", dev.interface().mtu().unwrap_err()),
        ("delete", dev.interface().delete().unwrap_err()),
    ] {
        assert_eq!(err.kind(), ErrorKind::DeviceGone, "{what}: {err}");
        assert_eq!(
            err.interface().map(|n| n.to_string()).as_deref(),
            Some("gone0"),
            "{what}: {err}"
        );
    }
}

#[test]
fn netlink_errors_name_the_interface() {
    let Some(ns) = private_ns() else { return };
    let dev = Device::builder()
        .name("named0")
        .netns(ns.try_clone().unwrap())
        .build()
        .unwrap();
    let err = dev.interface().set_mtu(10).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    assert_eq!(err.interface().unwrap().to_string(), "named0");
    let text = err.to_string();
    assert!(
        text.contains(&format!("on named0 (ifindex {})", dev.interface().index())),
        "{text}"
    );
    // As root the kernel's EPERM is about the value: no privilege hint.
    let err = dev.interface().set_tx_queue_len(u32::MAX).unwrap_err();
    if rustix::process::geteuid().is_root() {
        assert!(!err.to_string().contains("CAP_NET_ADMIN"), "{err}");
    }
}

/// The child half of the descriptor-limit test: build persistent devices
/// with fewer and fewer descriptors free, and say for each whether it
/// failed and whether it stayed.
fn descriptor_limit_child() {
    let ns = NetNs::new_anonymous().unwrap();
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let full = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    for queues in [1usize, 2] {
        for extra in 0..8u64 {
            let name = format!("lim{queues}x{extra}");
            let limit = rustix::process::Rlimit {
                current: Some(open + extra),
                maximum: full.maximum,
            };
            rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).unwrap();
            let built = Device::builder()
                .name(name.as_str())
                .queues(queues)
                .persist(true)
                .netns(ns.try_clone().unwrap())
                .build();
            rustix::process::setrlimit(rustix::process::Resource::Nofile, full).unwrap();
            let failed = built.as_ref().err().map(|e| e.to_string());
            if let Ok(dev) = built {
                dev.interface().delete().unwrap();
            }
            let stays = ns
                .run(|| Ok(Netlink::open()?.link_by_name(&name).is_ok()))
                .unwrap();
            println!("LIMIT {name} failed={failed:?} stays={stays}");
        }
    }
}

#[test]
fn a_build_that_runs_out_of_descriptors_leaves_no_device() {
    if std::env::var_os("TUN_DESCRIPTOR_CHILD").is_some() {
        descriptor_limit_child();
        return;
    }
    // The limit applies to the whole process: run it in a child.
    if private_ns().is_none() {
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_build_that_runs_out_of_descriptors_leaves_no_device",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TUN_DESCRIPTOR_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.find("LIMIT ").map(|at| &l[at..]))
        .collect();
    assert_eq!(lines.len(), 16, "{stdout}");
    assert!(
        lines.iter().any(|l| l.contains("failed=Some")),
        "no build failed: {stdout}"
    );
    assert!(
        lines.iter().any(|l| l.contains("failed=None")),
        "no build worked: {stdout}"
    );
    for l in &lines {
        assert!(
            l.ends_with("stays=false"),
            "a device outlived its build: {l}"
        );
    }
}

#[test]
fn a_device_converts_into_its_descriptors() {
    let Some(ns) = private_ns() else { return };
    let dev = Device::builder()
        .name("fds0")
        .queues(2)
        .netns(ns.try_clone().unwrap())
        .build()
        .unwrap();
    let fds: Vec<std::os::fd::OwnedFd> = dev.into();
    assert_eq!(fds.len(), 2);
    // Each is still a queue of the device: wrap one again and ask it.
    let again = Device::from_fd(
        fds.into_iter().next().unwrap(),
        tun_device::OffloadFlags::empty(),
    )
    .unwrap();
    assert_eq!(again.interface().name().unwrap().to_string(), "fds0");
}
