//! Against the real kernel (Linux 6.17+), in a network namespace of the
//! test's own: a VXLAN device whose underlay is a TAP with the UDP-tunnel
//! offload on sends a UDP_SEGMENT burst; the TAP read is a tunnel
//! super-frame that [`TunnelGsoPacket`] parses and splits into datagrams an
//! independent checker (etherparse and a naive sum) verifies, whose inner
//! payload is the burst; [`coalesce_tunnel`] merges the datagrams back into
//! the kernel's super-frame and header, and the TAP accepts its write.
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
use etherparse::{Ipv4Header, UdpHeader};
use tun_offload::{
    GsoType, HdrFlags, TunnelCoalesce, TunnelGsoPacket, TunnelProto, VirtioNetHdrV1HashTunnel,
    coalesce_tunnel,
};
use tun_sys::{InterfaceName, OffloadFlags, TunFlags};

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

fn ip(args: &str) {
    let st = Command::new("ip")
        .args(args.split(' '))
        .status()
        .expect("run ip");
    assert!(st.success(), "ip {args}");
}

const SEG: usize = 1000;
const VNI: u32 = 42;

#[test]
fn kernel_tunnel_super_frames_split_verify_and_coalesce_back() {
    in_netns("kernel_tunnel_super_frames", || {
        let fd = tun_sys::open_tun(true).expect("open /dev/net/tun");
        let name = InterfaceName::new("utap0").unwrap();
        let flags = TunFlags::TAP | TunFlags::NO_PI | TunFlags::VNET_HDR;
        tun_sys::set_iff(fd.as_fd(), Some(&name), flags).expect("TUNSETIFF");
        tun_sys::set_vnet_hdr_size(fd.as_fd(), 24).expect("TUNSETVNETHDRSZ 24");
        let offloads = OffloadFlags::TCP_UDP | OffloadFlags::UDP_TUNNEL;
        if let Err(e) = tun_sys::set_offload(fd.as_fd(), offloads) {
            eprintln!("kernel without UDP-tunnel offload ({e}): nothing to check");
            return;
        }
        ip("link set lo up");
        ip("link set utap0 address 02:00:00:00:00:01 up");
        ip("addr add 192.0.2.1/24 dev utap0");
        ip("neigh add 192.0.2.2 lladdr 02:00:00:00:00:02 dev utap0");
        // udpcsum: the outer UDP checksum left to the TAP's reader.
        ip("link add vx0 type vxlan id 42 remote 192.0.2.2 local 192.0.2.1 dstport 4789 udpcsum");
        ip("link set vx0 address 02:00:00:00:01:01 up");
        ip("addr add 10.9.0.1/24 dev vx0");
        ip("neigh add 10.9.0.2 lladdr 02:00:00:00:01:02 dev vx0");

        let burst: Vec<u8> = (0..SEG * 7 + 680).map(|i| (i * 13 % 251) as u8).collect();
        let s = UdpSocket::bind("10.9.0.1:0").unwrap();
        s.connect("10.9.0.2:9000").unwrap();
        nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::UdpGsoSegment, &(SEG as i32))
            .expect("UDP_SEGMENT");
        assert_eq!(s.send(&burst).unwrap(), burst.len());

        let mut tap = File::from(fd);
        let mut buf = vec![0u8; 70_000];
        let deadline = Instant::now() + Duration::from_secs(5);
        let read = loop {
            match tap.read(&mut buf) {
                Ok(n) => {
                    let hdr = VirtioNetHdrV1HashTunnel::decode(&buf[..n]).unwrap();
                    if hdr.hdr.gso_type().udp_tunnel() != 0 {
                        break buf[..n].to_vec();
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no tunnel super-frame read");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("read utap0: {e}"),
            }
        };
        let (hdr, frame) = VirtioNetHdrV1HashTunnel::split_prefix(&read).unwrap();
        assert_eq!(
            hdr.hdr.gso_type(),
            GsoType(GsoType::UDP_L4.0 | GsoType::UDP_TUNNEL_IPV4)
        );
        assert!(hdr.hdr.flags().contains(HdrFlags::UDP_TUNNEL_CSUM));
        let p = TunnelGsoPacket::parse_frame(&hdr, frame).expect("the kernel's super-frame parses");
        assert_eq!(
            (p.l2_len(), p.outer_th_offset(), p.inner_nh_offset()),
            (14, 34, 64)
        );
        let n = p.segment_count();
        assert_eq!(n, 8);
        let mut bufs = vec![vec![0u8; p.max_segment_len()]; n];
        let mut lens = vec![0usize; n];
        assert_eq!(p.split_into(frame, &mut bufs, &mut lens, 0), Ok(n));

        // Every datagram verified independently; the inner payloads are the burst.
        let mut joined = Vec::new();
        for (i, d) in bufs.iter().zip(&lens).map(|(b, &l)| &b[..l]).enumerate() {
            assert_eq!(&d[..14], &frame[..14], "outer Ethernet header");
            let (h, _) = Ipv4Header::from_slice(&d[14..]).unwrap();
            assert_eq!(usize::from(h.total_len), d.len() - 14, "datagram {i}");
            assert_eq!(h.calc_header_checksum(), h.header_checksum, "datagram {i}");
            let (u, payload) = UdpHeader::from_slice(&d[34..]).unwrap();
            assert_eq!(usize::from(u.length), d.len() - 34);
            let want = u
                .calc_checksum_ipv4_raw(h.source, h.destination, payload)
                .unwrap();
            assert_eq!(u.checksum, want, "outer UDP checksum of datagram {i}");
            assert_eq!(payload[0], 0x08, "VXLAN I flag");
            let vni = u32::from_be_bytes(payload[4..8].try_into().unwrap()) >> 8;
            assert_eq!(vni, VNI);
            joined.extend_from_slice(&verify(&d[64..]).payload);
        }
        assert_eq!(joined, burst);

        // Coalesced back: the kernel's super-frame and header again.
        let cfg = TunnelCoalesce {
            proto: TunnelProto::Vxlan,
            frames: true,
            udp_gro: true,
            outer_csum: true,
        };
        let datagrams: Vec<&[u8]> = bufs.iter().zip(&lens).map(|(b, &l)| &b[..l]).collect();
        let mut out = vec![0u8; 70_000];
        let run = coalesce_tunnel(&cfg, &datagrams, &mut out).expect("coalesce");
        assert_eq!((run.count, run.ended_by), (n, None));
        assert_eq!(run.hdr, hdr, "the kernel's header");
        assert_eq!(&out[..run.len], frame, "the kernel's super-frame");

        // And the kernel takes it.
        let mut write = run.hdr.to_bytes().to_vec();
        write.extend_from_slice(&out[..run.len]);
        assert_eq!(
            tap.write(&write).expect("write the coalesced super-frame"),
            write.len()
        );
    });
}
