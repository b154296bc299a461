//! The UDP-tunnel offload flags against the real kernel (Linux 6.17+), in a
//! network namespace of the test's own: what `TUNSETOFFLOAD` grants, what it
//! refuses (matching `OffloadFlags::tunnel_request_is_valid`), the netdev
//! features it turns on, and the 24-byte header size. On an older kernel
//! every tunnel bit is refused, which is checked instead. Without
//! privileges it skips, unless `TUN_REQUIRE_PRIVILEGED=1`.

use std::os::fd::AsFd;

use tun_sys::{ControlSocket, InterfaceName, OffloadFlags, Op, TunFlags};

fn in_netns(test: &str, body: impl FnOnce() + Send + 'static) {
    let required = std::env::var_os("TUN_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1");
    let handle = std::thread::spawn(move || {
        tun_sys::unshare_network()?;
        body();
        Ok::<(), tun_sys::Error>(())
    });
    match handle.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) if !required && e.is_permission_denied() => {
            eprintln!(
                "skipping {test}: {e}; run as root (TUN_REQUIRE_PRIVILEGED=1 to fail instead)"
            );
        }
        Ok(Err(e)) => panic!("{test}: cannot make a network namespace: {e}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[test]
fn udp_tunnel_offload_is_granted_as_set_offload_rules() {
    in_netns("udp_tunnel_offload_is_granted_as_set_offload_rules", || {
        for (dev, kind) in [("tnlo0", TunFlags::TUN), ("tnlo1", TunFlags::TAP)] {
            let fd = tun_sys::open_tun(false).expect("open /dev/net/tun");
            let name = InterfaceName::new(dev).unwrap();
            let flags = kind | TunFlags::NO_PI | TunFlags::VNET_HDR;
            tun_sys::set_iff(fd.as_fd(), Some(&name), flags).expect("TUNSETIFF");
            tun_sys::set_vnet_hdr_size(fd.as_fd(), 24).expect("TUNSETVNETHDRSZ 24");
            assert_eq!(tun_sys::get_vnet_hdr_size(fd.as_fd()).unwrap(), 24);

            let full = OffloadFlags::TCP_UDP | OffloadFlags::UDP_TUNNEL;
            let supported = tun_sys::set_offload(fd.as_fd(), full).is_ok();
            eprintln!("{dev}: UDP-tunnel offload supported: {supported}");
            let sock = ControlSocket::new().expect("control socket");
            let masks = [
                OffloadFlags::TCP | OffloadFlags::UDP_TUNNEL_GSO,
                OffloadFlags::CSUM
                    | OffloadFlags::USO4
                    | OffloadFlags::USO6
                    | OffloadFlags::UDP_TUNNEL,
                full,
                // Refused: no plain segmentation offload, the checksum flag
                // alone, no CSUM.
                OffloadFlags::CSUM | OffloadFlags::UDP_TUNNEL,
                OffloadFlags::TCP | OffloadFlags::UDP_TUNNEL_GSO_CSUM,
                OffloadFlags::TSO4 | OffloadFlags::UDP_TUNNEL_GSO,
            ];
            for mask in masks {
                let got = tun_sys::set_offload(fd.as_fd(), mask);
                let want = supported && mask.tunnel_request_is_valid();
                match &got {
                    Ok(()) => assert!(want, "{dev}: {mask:?} granted"),
                    Err(e) => {
                        assert!(!want, "{dev}: {mask:?} refused: {e}");
                        assert_eq!((e.op(), e.errno()), (Op::TunSetOffload, libc::EINVAL));
                    }
                }
                if got.is_ok() {
                    let f = sock.features(&name).expect("SIOCETHTOOL");
                    assert!(f.is_active("tx-udp_tnl-segmentation"), "{dev}: {mask:?}");
                    assert_eq!(
                        f.is_active("tx-udp_tnl-csum-segmentation"),
                        mask.contains(OffloadFlags::UDP_TUNNEL_GSO_CSUM),
                        "{dev}: {mask:?}"
                    );
                }
            }
            // Plain offloads turn the tunnel features off again.
            tun_sys::set_offload(fd.as_fd(), OffloadFlags::TCP).expect("TUNSETOFFLOAD tcp");
            let f = sock.features(&name).expect("SIOCETHTOOL");
            assert!(!f.is_active("tx-udp_tnl-segmentation"), "{dev}");
        }
    });
}
