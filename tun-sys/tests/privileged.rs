//! Device tests against the real kernel. Each runs on a fresh thread in its
//! own network namespace, so it never sees or touches the host's interfaces.
//! Without privileges they skip, unless `TUN_REQUIRE_PRIVILEGED=1`.

use std::os::fd::{AsFd, AsRawFd};

use tun_sys::{ControlSocket, InterfaceFlags, InterfaceName, OffloadFlags, Op, TunFlags};

/// Run `body` on a new thread inside a new network namespace (the
/// workspace's privilege gate, test-support's).
fn in_netns(test: &str, body: impl FnOnce() + Send + 'static) {
    tun_test_support::in_own_netns(
        test,
        tun_sys::unshare_network,
        |e: &tun_sys::Error| e.is_permission_denied(),
        body,
    );
}

fn name(s: &str) -> InterfaceName {
    InterfaceName::new(s).unwrap()
}

fn has_cloexec(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    // SAFETY: F_GETFD reads the descriptor flags of a valid borrowed fd.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    assert!(flags >= 0);
    flags & libc::FD_CLOEXEC != 0
}

#[test]
fn tun_lifecycle() {
    in_netns("tun_lifecycle", || {
        let fd = tun_sys::open_tun(false).expect("open /dev/net/tun");
        assert!(has_cloexec(fd.as_fd()), "the fd must be O_CLOEXEC");

        let features = tun_sys::get_features(fd.as_fd()).expect("TUNGETFEATURES");
        let wanted = TunFlags::TUN
            | TunFlags::TAP
            | TunFlags::NO_PI
            | TunFlags::VNET_HDR
            | TunFlags::MULTI_QUEUE;
        assert!(
            features.contains(wanted),
            "features {features:?} lack some of {wanted:?}"
        );

        let flags = TunFlags::TUN | TunFlags::NO_PI | TunFlags::VNET_HDR;
        let got = tun_sys::set_iff(fd.as_fd(), Some(&name("tsys0")), flags).expect("TUNSETIFF");
        assert_eq!(got, name("tsys0"));

        tun_sys::set_offload(fd.as_fd(), OffloadFlags::TCP).expect("TUNSETOFFLOAD csum|tso4|tso6");
        tun_sys::set_offload(fd.as_fd(), OffloadFlags::TCP_UDP)
            .expect("TUNSETOFFLOAD with uso4|uso6");
        tun_sys::set_offload(fd.as_fd(), OffloadFlags::empty()).expect("TUNSETOFFLOAD 0");
        let bogus = tun_sys::set_offload(fd.as_fd(), OffloadFlags::from_bits_retain(0x8000_0000))
            .unwrap_err();
        assert_eq!(
            (bogus.op(), bogus.errno()),
            (Op::TunSetOffload, libc::EINVAL)
        );

        let (n, f) = tun_sys::get_iff(fd.as_fd()).expect("TUNGETIFF");
        assert_eq!(n, name("tsys0"));
        assert!(f.contains(flags), "{f:?}");
        assert!(!f.contains(TunFlags::PERSIST));

        tun_sys::set_persist(fd.as_fd(), true).expect("persist on");
        assert!(
            tun_sys::get_iff(fd.as_fd())
                .unwrap()
                .1
                .contains(TunFlags::PERSIST)
        );
        tun_sys::set_persist(fd.as_fd(), false).expect("persist off");
        assert!(
            !tun_sys::get_iff(fd.as_fd())
                .unwrap()
                .1
                .contains(TunFlags::PERSIST)
        );

        tun_sys::set_owner(fd.as_fd(), 1000).expect("TUNSETOWNER");
        tun_sys::set_group(fd.as_fd(), 1000).expect("TUNSETGROUP");
        // An id that does not map into the user namespace is refused.
        let bad = tun_sys::set_owner(fd.as_fd(), u32::MAX).unwrap_err();
        assert_eq!((bad.op(), bad.errno()), (Op::TunSetOwner, libc::EINVAL));
        tun_sys::set_owner(fd.as_fd(), 0).expect("TUNSETOWNER root");
        tun_sys::set_group(fd.as_fd(), 0).expect("TUNSETGROUP root");

        assert_eq!(tun_sys::get_vnet_hdr_size(fd.as_fd()).unwrap(), 10);
        tun_sys::set_vnet_hdr_size(fd.as_fd(), 12).expect("TUNSETVNETHDRSZ");
        assert_eq!(tun_sys::get_vnet_hdr_size(fd.as_fd()).unwrap(), 12);
        let small = tun_sys::set_vnet_hdr_size(fd.as_fd(), 4).unwrap_err();
        assert_eq!(small.errno(), libc::EINVAL);

        tun_sys::set_vnet_le(fd.as_fd(), true).expect("TUNSETVNETLE");
        assert!(tun_sys::get_vnet_le(fd.as_fd()).unwrap());
        tun_sys::set_vnet_le(fd.as_fd(), false).unwrap();
        assert!(!tun_sys::get_vnet_le(fd.as_fd()).unwrap());
        // TUNGETVNETBE answers EINVAL on kernels without CONFIG_TUN_VNET_CROSS_LE.
        match tun_sys::get_vnet_be(fd.as_fd()) {
            Ok(be) => assert!(!be),
            Err(e) => assert_eq!((e.op(), e.errno()), (Op::TunGetVnetBe, libc::EINVAL)),
        }

        tun_sys::set_sndbuf(fd.as_fd(), 1 << 20).expect("TUNSETSNDBUF");
        assert_eq!(tun_sys::get_sndbuf(fd.as_fd()).unwrap(), 1 << 20);

        tun_sys::set_carrier(fd.as_fd(), false).expect("TUNSETCARRIER off");
        tun_sys::set_carrier(fd.as_fd(), true).expect("TUNSETCARRIER on");

        // Detaching a non-existent eBPF program is accepted.
        tun_sys::set_steering_ebpf(fd.as_fd(), None).expect("TUNSETSTEERINGEBPF -1");
        tun_sys::set_filter_ebpf(fd.as_fd(), None).expect("TUNSETFILTEREBPF -1");

        let ns = tun_sys::get_dev_netns(fd.as_fd()).expect("TUNGETDEVNETNS");
        assert!(has_cloexec(ns.as_fd()));

        // A second fd for the same name without IFF_MULTI_QUEUE is refused.
        let other = tun_sys::open_tun(false).unwrap();
        let busy = tun_sys::set_iff(other.as_fd(), Some(&name("tsys0")), flags).unwrap_err();
        assert!(busy.is_busy(), "{busy}");
        assert_eq!(busy.op(), Op::TunSetIff);
        assert_eq!(busy.interface(), Some(name("tsys0")));
        assert!(
            busy.to_string()
                .contains("TUNSETIFF on tsys0 failed: EBUSY"),
            "{busy}"
        );
    });
}

#[test]
fn template_names_and_interface_config() {
    in_netns("template_names_and_interface_config", || {
        let fd = tun_sys::open_tun(true).unwrap();
        let got = tun_sys::set_iff(
            fd.as_fd(),
            Some(&name("tsys%d")),
            TunFlags::TUN | TunFlags::NO_PI,
        )
        .unwrap();
        assert_eq!(got, name("tsys0"));

        let ctl = ControlSocket::new().unwrap();
        assert!(ctl.index(&got).unwrap() > 0);
        let before = ctl.flags(&got).unwrap();
        assert!(
            before.contains(InterfaceFlags::POINTOPOINT) && !before.contains(InterfaceFlags::UP)
        );

        ctl.set_mtu(&got, 1280).unwrap();
        assert_eq!(ctl.mtu(&got).unwrap(), 1280);
        ctl.set_tx_queue_len(&got, 1234).unwrap();
        assert_eq!(ctl.tx_queue_len(&got).unwrap(), 1234);

        let renamed = name("tsys-renamed");
        ctl.rename(&got, &renamed).unwrap();
        assert_eq!(tun_sys::get_iff(fd.as_fd()).unwrap().0, renamed);

        ctl.set_up(&renamed, true).unwrap();
        assert!(ctl.flags(&renamed).unwrap().contains(InterfaceFlags::UP));
        ctl.set_up(&renamed, false).unwrap();
        assert!(!ctl.flags(&renamed).unwrap().contains(InterfaceFlags::UP));

        let gone = ctl.mtu(&name("nosuchif")).unwrap_err();
        assert_eq!((gone.op(), gone.errno()), (Op::SiocGIfMtu, libc::ENODEV));
        assert!(
            gone.to_string()
                .starts_with("SIOCGIFMTU on nosuchif failed: ENODEV"),
            "{gone}"
        );
    });
}

#[test]
fn tap_mac_and_tx_filter() {
    in_netns("tap_mac_and_tx_filter", || {
        let fd = tun_sys::open_tun(false).unwrap();
        let tap = tun_sys::set_iff(
            fd.as_fd(),
            Some(&name("tsystap")),
            TunFlags::TAP | TunFlags::NO_PI,
        )
        .unwrap();
        let ctl = ControlSocket::new().unwrap();
        let mac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
        ctl.set_mac(&tap, mac).unwrap();
        assert_eq!(ctl.hw_addr(&tap).unwrap(), (tun_sys::ARPHRD_ETHER, mac));

        tun_sys::set_tx_filter(fd.as_fd(), false, &[mac, [0x33, 0x33, 0, 0, 0, 1]])
            .expect("TUNSETTXFILTER");
        tun_sys::set_tx_filter(fd.as_fd(), true, &[]).expect("TUNSETTXFILTER allmulti");
        tun_sys::set_tx_filter(fd.as_fd(), false, &[]).expect("TUNSETTXFILTER off");
    });
}

#[test]
fn multi_queue_attach_detach() {
    in_netns("multi_queue_attach_detach", || {
        let flags = TunFlags::TUN | TunFlags::NO_PI | TunFlags::MULTI_QUEUE | TunFlags::VNET_HDR;
        let q0 = tun_sys::open_tun(false).unwrap();
        let q1 = tun_sys::open_tun(false).unwrap();
        tun_sys::set_iff(q0.as_fd(), Some(&name("tsysmq")), flags).unwrap();
        tun_sys::set_iff(q1.as_fd(), Some(&name("tsysmq")), flags).expect("second queue attaches");

        tun_sys::set_queue(q1.as_fd(), false).expect("detach queue");
        tun_sys::set_queue(q1.as_fd(), true).expect("attach queue");

        // A single-queue open of a multi-queue name is refused.
        let single = tun_sys::open_tun(false).unwrap();
        let err = tun_sys::set_iff(
            single.as_fd(),
            Some(&name("tsysmq")),
            TunFlags::TUN | TunFlags::NO_PI,
        )
        .unwrap_err();
        assert_eq!(err.errno(), libc::EINVAL, "{err}");
    });
}

/// TUNGETIFF reports IFF_NOFILTER in the bit of IFF_NO_PI: a device opened
/// with packet information still reads back that bit, and a detached queue
/// reads back IFF_DETACH_QUEUE.
#[test]
fn tungetiff_bit_0x1000_is_nofilter() {
    in_netns("tungetiff_bit_0x1000_is_nofilter", || {
        let fd = tun_sys::open_tun(false).expect("open");
        tun_sys::set_iff(fd.as_fd(), Some(&name("pi0")), TunFlags::TUN).expect("TUNSETIFF with pi");
        let (_, f) = tun_sys::get_iff(fd.as_fd()).unwrap();
        assert_eq!(
            f.bits() & tun_sys::IFF_NOFILTER,
            tun_sys::IFF_NOFILTER,
            "{f:?}"
        );

        let mq = TunFlags::TUN | TunFlags::NO_PI | TunFlags::MULTI_QUEUE;
        let a = tun_sys::open_tun(false).unwrap();
        let b = tun_sys::open_tun(false).unwrap();
        tun_sys::set_iff(a.as_fd(), Some(&name("mqd0")), mq).unwrap();
        tun_sys::set_iff(b.as_fd(), Some(&name("mqd0")), mq).unwrap();
        tun_sys::set_queue(b.as_fd(), false).unwrap();
        assert!(
            tun_sys::get_iff(b.as_fd())
                .unwrap()
                .1
                .contains(TunFlags::DETACH_QUEUE)
        );
        assert!(
            !tun_sys::get_iff(a.as_fd())
                .unwrap()
                .1
                .contains(TunFlags::DETACH_QUEUE)
        );
    });
}

/// `ethtool -k NAME` as (feature, on, fixed), read by ethtool itself: the
/// independent reader of what `ControlSocket::features` reads.
fn ethtool_k(name: &str) -> Vec<(String, bool, bool)> {
    let out = std::process::Command::new("ethtool")
        .args(["-k", name])
        .output()
        .expect("ethtool is installed (Debian package ethtool; scripts/test installs it)");
    assert!(out.status.success(), "ethtool -k {name}: {:?}", out);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (feature, value) = l.trim().split_once(": ")?;
            Some((
                feature.to_string(),
                value.starts_with("on"),
                value.contains("[fixed]"),
            ))
        })
        .collect()
}

#[test]
fn features_read_through_the_kernel_match_ethtool() {
    in_netns("features_read_through_the_kernel_match_ethtool", || {
        let fd = tun_sys::open_tun(false).expect("open /dev/net/tun");
        let flags = TunFlags::TUN | TunFlags::NO_PI | TunFlags::VNET_HDR;
        tun_sys::set_iff(fd.as_fd(), Some(&name("tfeat0")), flags).expect("TUNSETIFF");
        let sock = ControlSocket::new().expect("control socket");
        for offloads in [
            OffloadFlags::empty(),
            OffloadFlags::CSUM | OffloadFlags::TSO4,
            OffloadFlags::CSUM | OffloadFlags::TSO4 | OffloadFlags::TSO6 | OffloadFlags::TSO_ECN,
        ] {
            tun_sys::set_offload(fd.as_fd(), offloads).expect("TUNSETOFFLOAD");
            let ours = sock.features(&name("tfeat0")).expect("SIOCETHTOOL");
            assert!(ours.iter().count() > 30, "{ours:?}");
            let theirs = ethtool_k("tfeat0");
            let mut compared = 0;
            for (feature, on, fixed) in &theirs {
                // ethtool also prints aggregates of its own (tx-checksumming,
                // tcp-segmentation-offload) that are no kernel feature.
                if let Some(f) = ours.get(feature) {
                    assert_eq!(f.active, *on, "{feature} with {offloads:?}");
                    assert_eq!(f.fixed, *fixed, "{feature} [fixed] with {offloads:?}");
                    compared += 1;
                }
            }
            assert!(
                compared > 30,
                "only {compared} features in common: {theirs:?}"
            );
            assert_eq!(
                ours.is_active("tx-tcp-segmentation"),
                offloads.contains(OffloadFlags::TSO4)
            );
            assert_eq!(
                ours.is_active("tx-tcp6-segmentation"),
                offloads.contains(OffloadFlags::TSO6)
            );
        }
        let err = sock.features(&name("nosuch0")).unwrap_err();
        assert_eq!(err.op(), Op::EthtoolGSsetInfo);
        assert!(
            err.to_string()
                .starts_with("SIOCETHTOOL(ETHTOOL_GSSET_INFO) on nosuch0 failed: ENODEV"),
            "{err}"
        );
    });
}
