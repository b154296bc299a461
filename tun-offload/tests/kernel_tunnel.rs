//! Against the real kernel (Linux 6.17+), in a network namespace of the
//! test's own: a VXLAN or Geneve device whose underlay (IPv4 or IPv6) is a TAP or a
//! TUN with the UDP-tunnel offload on sends a UDP_SEGMENT burst; the read
//! is a tunnel super-packet that [`TunnelGsoPacket`] parses and splits into
//! datagrams an independent checker (etherparse) verifies, whose inner
//! payload is the burst; [`coalesce_tunnel`] merges the datagrams back into
//! the kernel's super-packet and header byte for byte, and a TAP accepts
//! its write (a TUN refuses it on 6.18, see [`TunnelGsoPacket`]). Also:
//! what `TUNSETOFFLOAD` grants of the tunnel flags, and that a header
//! shorter than 24 bytes with the offload on fails every read.
//! Traffic goes only to addresses inside the namespace. Without privileges
//! it skips unless `TUN_REQUIRE_PRIVILEGED=1`; on a kernel without the
//! offload it says so and stops.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant};

use common::verify;
use etherparse::{Ipv4Header, Ipv6Header, UdpHeader};
use tun_offload::{
    GsoType, HdrFlags, TunnelCoalesce, TunnelGsoPacket, TunnelProto, VirtioNetHdrV1HashTunnel,
    coalesce_tunnel,
};
use tun_sys::{ControlSocket, InterfaceName, OffloadFlags, Op, TunFlags};

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

fn ip(args: &str) {
    let st = Command::new("ip")
        .args(args.split(' '))
        .status()
        .expect("run ip");
    assert!(st.success(), "ip {args}");
}

const SEG: usize = 1000;
const VNI: u32 = 42;

/// The device and underlay of one case.
#[derive(Debug, Clone, Copy)]
struct Case {
    tap: bool,
    v6: bool,
    geneve: bool,
}

impl Case {
    fn dev(&self) -> &'static str {
        if self.tap { "utap0" } else { "utun0" }
    }
}

#[test]
fn kernel_tunnel_super_frames_on_tap_v4() {
    in_netns("kernel_tunnel_super_frames_on_tap_v4", || {
        run(Case {
            tap: true,
            v6: false,
            geneve: false,
        })
    });
}

#[test]
fn kernel_tunnel_super_frames_on_tap_v6() {
    in_netns("kernel_tunnel_super_frames_on_tap_v6", || {
        run(Case {
            tap: true,
            v6: true,
            geneve: false,
        })
    });
}

#[test]
fn kernel_tunnel_super_packets_on_tun_v4() {
    in_netns("kernel_tunnel_super_packets_on_tun_v4", || {
        run(Case {
            tap: false,
            v6: false,
            geneve: false,
        })
    });
}

#[test]
fn kernel_tunnel_super_packets_on_tun_v6() {
    in_netns("kernel_tunnel_super_packets_on_tun_v6", || {
        run(Case {
            tap: false,
            v6: true,
            geneve: false,
        })
    });
}

#[test]
fn kernel_geneve_super_frames_on_tap_v4() {
    in_netns("kernel_geneve_super_frames_on_tap_v4", || {
        run(Case {
            tap: true,
            v6: false,
            geneve: true,
        })
    });
}

#[test]
fn kernel_geneve_super_packets_on_tun_v6() {
    in_netns("kernel_geneve_super_packets_on_tun_v6", || {
        run(Case {
            tap: false,
            v6: true,
            geneve: true,
        })
    });
}

/// Set up the device and a VXLAN device over it, send the burst, and check
/// the read, its split and the coalescing; see the module docs.
fn run(case: Case) {
    let Some((mut dev_file, burst)) = setup_and_send(case, 24) else {
        return;
    };
    let dev = case.dev();
    check_read(case, &mut dev_file, &burst, dev);
}

/// The device (its header `hdr_size` bytes) with the UDP-tunnel offload on
/// and a tunnel device over it, the burst sent; `None` when the kernel
/// lacks the offload or the tunnel device type.
fn setup_and_send(case: Case, hdr_size: i32) -> Option<(File, Vec<u8>)> {
    let fd = tun_sys::open_tun(true).expect("open /dev/net/tun");
    let name = InterfaceName::new(case.dev()).unwrap();
    let kind = if case.tap {
        TunFlags::TAP
    } else {
        TunFlags::TUN
    };
    tun_sys::set_iff(
        fd.as_fd(),
        Some(&name),
        kind | TunFlags::NO_PI | TunFlags::VNET_HDR,
    )
    .expect("TUNSETIFF");
    tun_sys::set_vnet_hdr_size(fd.as_fd(), hdr_size).expect("TUNSETVNETHDRSZ");
    let offloads = OffloadFlags::TCP_UDP | OffloadFlags::UDP_TUNNEL;
    if let Err(e) = tun_sys::set_offload(fd.as_fd(), offloads) {
        eprintln!("kernel without UDP-tunnel offload ({e}): nothing to check");
        return None;
    }
    let dev = case.dev();
    ip("link set lo up");
    if case.tap {
        ip(&format!("link set {dev} address 02:00:00:00:00:01"));
    }
    ip(&format!("link set {dev} up"));
    let (local, remote) = if case.v6 {
        ip(&format!("addr add 2001:db8::1/64 dev {dev} nodad"));
        ("2001:db8::1", "2001:db8::2")
    } else {
        ip(&format!("addr add 192.0.2.1/24 dev {dev}"));
        ("192.0.2.1", "192.0.2.2")
    };
    if case.tap {
        ip(&format!(
            "neigh add {remote} lladdr 02:00:00:00:00:02 dev {dev}"
        ));
    }
    // udpcsum (for IPv6 the default): the outer UDP checksum left to the reader.
    if case.geneve {
        // Geneve has no local address; its remote is enough to route it. A
        // kernel built without CONFIG_GENEVE has no such device type.
        let vni = VNI.to_string();
        let args = [
            "link", "add", "vx0", "type", "geneve", "id", &vni, "remote", remote, "udpcsum",
        ];
        if !Command::new("ip")
            .args(args)
            .status()
            .expect("run ip")
            .success()
        {
            eprintln!("{case:?}: kernel without Geneve devices: nothing to check");
            return None;
        }
    } else {
        ip(&format!(
            "link add vx0 type vxlan id {VNI} remote {remote} local {local} dstport 4789 udpcsum"
        ));
    }
    ip("link set vx0 address 02:00:00:00:01:01 up");
    ip("addr add 10.9.0.1/24 dev vx0");
    ip("neigh add 10.9.0.2 lladdr 02:00:00:00:01:02 dev vx0");

    let burst: Vec<u8> = (0..SEG * 7 + 680).map(|i| (i * 13 % 251) as u8).collect();
    let s = UdpSocket::bind("10.9.0.1:0").unwrap();
    s.connect("10.9.0.2:9000").unwrap();
    nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::UdpGsoSegment, &(SEG as i32))
        .expect("UDP_SEGMENT");
    assert_eq!(s.send(&burst).unwrap(), burst.len());
    Some((File::from(fd), burst))
}

/// Read the tunnel super-packet and check it, its split and its coalescing.
fn check_read(case: Case, dev_file: &mut File, burst: &[u8], dev: &str) {
    let mut buf = vec![0u8; 70_000];
    let deadline = Instant::now() + Duration::from_secs(5);
    let read = loop {
        match dev_file.read(&mut buf) {
            Ok(n) => {
                let hdr = VirtioNetHdrV1HashTunnel::decode(&buf[..n]).unwrap();
                if hdr.hdr.gso_type().udp_tunnel() != 0 {
                    break buf[..n].to_vec();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "{case:?}: no tunnel super-packet read"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("read {dev}: {e}"),
        }
    };
    let (hdr, frame) = VirtioNetHdrV1HashTunnel::split_prefix(&read).unwrap();
    let tunnel_bit = if case.v6 {
        GsoType::UDP_TUNNEL_IPV6
    } else {
        GsoType::UDP_TUNNEL_IPV4
    };
    assert_eq!(hdr.hdr.gso_type(), GsoType(GsoType::UDP_L4.0 | tunnel_bit));
    assert!(hdr.hdr.flags().contains(HdrFlags::UDP_TUNNEL_CSUM));
    let p = if case.tap {
        TunnelGsoPacket::parse_frame(&hdr, frame)
    } else {
        TunnelGsoPacket::parse(&hdr, frame)
    }
    .expect("the kernel's super-packet parses");
    let l2 = if case.tap { 14 } else { 0 };
    let th = l2 + if case.v6 { 40 } else { 20 };
    assert_eq!(
        (p.l2_len(), p.outer_th_offset(), p.inner_nh_offset()),
        (l2, th, th + 30)
    );
    let n = p.segment_count();
    assert_eq!(n, 8);
    let mut bufs = vec![vec![0u8; p.max_segment_len()]; n];
    let mut lens = vec![0usize; n];
    assert_eq!(p.split_into(frame, &mut bufs, &mut lens, 0), Ok(n));

    // Every datagram verified independently; the inner payloads are the burst.
    let mut joined = Vec::new();
    for (i, d) in bufs.iter().zip(&lens).map(|(b, &l)| &b[..l]).enumerate() {
        assert_eq!(&d[..l2], &frame[..l2], "outer Ethernet header");
        let (u, payload) = UdpHeader::from_slice(&d[th..]).unwrap();
        assert_eq!(usize::from(u.length), d.len() - th);
        let want = if case.v6 {
            let (h, _) = Ipv6Header::from_slice(&d[l2..]).unwrap();
            assert_eq!(usize::from(h.payload_length), d.len() - th, "datagram {i}");
            u.calc_checksum_ipv6_raw(h.source, h.destination, payload)
        } else {
            let (h, _) = Ipv4Header::from_slice(&d[l2..]).unwrap();
            assert_eq!(usize::from(h.total_len), d.len() - l2, "datagram {i}");
            assert_eq!(h.calc_header_checksum(), h.header_checksum, "datagram {i}");
            u.calc_checksum_ipv4_raw(h.source, h.destination, payload)
        }
        .unwrap();
        assert_eq!(u.checksum, want, "outer UDP checksum of datagram {i}");
        if case.geneve {
            assert_eq!(
                payload[..4],
                [0, 0, 0x65, 0x58],
                "Geneve v0, no options, Ethernet"
            );
        } else {
            assert_eq!(payload[0], 0x08, "VXLAN I flag");
        }
        let vni = u32::from_be_bytes(payload[4..8].try_into().unwrap()) >> 8;
        assert_eq!(vni, VNI);
        joined.extend_from_slice(&verify(&d[th + 30..]).payload);
    }
    assert_eq!(joined, burst);

    // Coalesced back: the kernel's super-packet and header again.
    let cfg = TunnelCoalesce {
        proto: if case.geneve {
            TunnelProto::Geneve
        } else {
            TunnelProto::Vxlan
        },
        frames: case.tap,
        udp_gro: true,
        outer_csum: true,
    };
    let datagrams: Vec<&[u8]> = bufs.iter().zip(&lens).map(|(b, &l)| &b[..l]).collect();
    let mut out = vec![0u8; 70_000];
    let run = coalesce_tunnel(&cfg, &datagrams, &mut out).expect("coalesce");
    assert_eq!((run.count, run.ended_by), (n, None));
    assert_eq!(run.hdr, hdr, "the kernel's header");
    assert_eq!(&out[..run.len], frame, "the kernel's super-packet");

    // A TAP takes it back. A TUN refuses it on Linux 6.18 (the outer
    // offset minimum of virtio_net_hdr_tnl_to_skb counts an Ethernet
    // header); whichever it does is reported, anything else fails.
    let mut write = run.hdr.to_bytes().to_vec();
    write.extend_from_slice(&out[..run.len]);
    match dev_file.write(&write) {
        Ok(k) => {
            assert_eq!(k, write.len());
            eprintln!("{case:?}: coalesced super-packet accepted");
        }
        Err(e) if !case.tap && e.raw_os_error() == Some(libc_einval()) => {
            eprintln!("{case:?}: TUN refused the coalesced super-packet: {e}");
        }
        Err(e) => panic!("{case:?}: write of the coalesced super-packet: {e}"),
    }
}

/// EINVAL, without a libc dependency.
fn libc_einval() -> i32 {
    nix::errno::Errno::EINVAL as i32
}

/// With the tunnel offload on, the kernel writes the 24-byte header whatever
/// `TUNSETVNETHDRSZ` says; with a smaller size every read fails with EFAULT
/// (drivers/net/tun_vnet.h `__tun_vnet_hdr_put` zero-fills `sz -
/// parsed_size`, negative here) and the packet is lost. A reader must set
/// the 24-byte size before it turns the offload on.
#[test]
fn a_short_header_with_the_tunnel_offload_fails_every_read() {
    in_netns(
        "a_short_header_with_the_tunnel_offload_fails_every_read",
        || {
            let case = Case {
                tap: true,
                v6: false,
                geneve: false,
            };
            let Some((mut dev_file, _)) = setup_and_send(case, 12) else {
                return;
            };
            let mut buf = vec![0u8; 70_000];
            let (mut ok, mut efault) = (0, 0);
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                match dev_file.read(&mut buf) {
                    Ok(_) => ok += 1,
                    Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EFAULT as i32) => {
                        efault += 1
                    }
                    // Read for the whole time: link-up ICMPv6 packets, not
                    // super-packets, fail as well.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => panic!("read: {e}"),
                }
            }
            eprintln!("12-byte header, tunnel offload on: {ok} reads, {efault} EFAULT");
            assert!(efault > 0, "the burst's super-frame failed to read");
            assert_eq!(ok, 0, "no read succeeds");
        },
    );
}

/// What `TUNSETOFFLOAD` grants of the tunnel flags (matching
/// `OffloadFlags::tunnel_request_is_valid`, EINVAL otherwise), the netdev
/// features it turns on, the 24-byte header size read back; on an older
/// kernel every tunnel mask must be refused.
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
                        assert_eq!((e.op(), e.errno()), (Op::TunSetOffload, libc_einval()));
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
