//! Faults: the interface deleted under a blocked reader, many open/close
//! cycles, bad packets handed to send, buffers too small; the device stays
//! usable after every recoverable one.

mod common;

use std::net::UdpSocket;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use tun_device::{Device, ErrorKind, NetNs, RecvState, SendState};

fn build_in(ns: &NetNs, b: tun_device::DeviceBuilder) -> Device {
    b.netns(ns.try_clone().unwrap()).build().expect("device")
}

#[test]
fn deleting_the_interface_wakes_blocked_readers() {
    let Some(ns) = private_ns() else { return };
    for batched in [false, true] {
        let dev = build_in(
            &ns,
            Device::builder()
                .name(format!("gone{}", batched as u8))
                .offload(batched),
        );
        let iface = dev.interface().clone();
        let q = dev.into_queues().remove(0);
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            // The kernel may send a few packets of its own (IPv6 router
            // solicitations) before the interface goes: read past them.
            let mut buf = vec![0u8; 65536];
            let mut st = RecvState::new();
            let mut bufs = vec![vec![0u8; 2048]; 8];
            let mut sizes = vec![0; 8];
            let err = loop {
                let res = if batched {
                    q.recv_batch(&mut st, &mut bufs, &mut sizes, 0).map(|_| ())
                } else {
                    q.recv(&mut buf).map(|_| ())
                };
                if let Err(e) = res {
                    break e;
                }
            };
            tx.send(err).unwrap();
        });
        std::thread::sleep(Duration::from_millis(200));
        iface.delete().unwrap();
        let err = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("reader still blocked");
        assert_eq!(err.kind(), ErrorKind::DeviceGone, "{err}");
        assert!(err.to_string().contains("gone"), "{err}");
        reader.join().unwrap();
    }
}

#[test]
fn bad_packets_get_typed_errors_and_the_device_stays_usable() {
    let Some(ns) = private_ns() else { return };
    for offload in [false, true] {
        let dev = build_in(
            &ns,
            Device::builder()
                .name(format!("bad{}", offload as u8))
                .offload(offload)
                .address("10.3.0.1/24".parse().unwrap()),
        );
        // Not an IP packet: the kernel refuses it.
        let err = dev.first_queue().send(&[0x99; 40]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadPacket, "{err}");
        assert_eq!(err.errno(), Some(libc::EINVAL));
        assert!(err.to_string().contains("bad"), "{err}");
        // A good one still goes.
        let good = udp4_to(&[10, 3, 0, 1], 9999);
        assert_eq!(dev.first_queue().send(&good).unwrap(), good.len());

        // In a batch: the bad packet is skipped and reported, the rest
        // written by send_pending.
        let mut st = SendState::new();
        let off = 10;
        let bufs: Vec<Vec<u8>> = [good.clone(), vec![0x99; 40], good.clone()]
            .iter()
            .map(|p| {
                let mut b = vec![0u8; off + p.len()];
                b[off..].copy_from_slice(p);
                b
            })
            .collect();
        let lens: Vec<usize> = vec![good.len(), 40, good.len()];
        let err = dev
            .first_queue()
            .send_batch(&mut st, &bufs, &lens, off)
            .unwrap_err();
        assert!(
            matches!(err, tun_device::Error::Rejected { index: 1, .. }),
            "{err:?}"
        );
        assert_eq!(st.written().collect::<Vec<_>>(), [0]);
        assert_eq!(st.rejected(), &[1]);
        assert_eq!(st.pending(), &[2]);
        let report = dev
            .first_queue()
            .send_pending(&mut st, &bufs, &lens, off)
            .unwrap();
        assert!(st.is_done());
        assert_eq!(report.writes, 2);

        if offload {
            // A header that does not match the packet: refused, typed.
            let hdr = tun_device::offload::VirtioNetHdr::new(
                tun_device::offload::HdrFlags::NEEDS_CSUM,
                tun_device::offload::GsoType::TCPV4,
                40,
                100,
                20,
                16,
            );
            let hdr = tun_device::offload::VirtioNetHdrV1HashTunnel::plain(hdr);
            let err = dev.first_queue().send_gso(&hdr, &good).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadPacket, "{err}");
            assert_eq!(dev.first_queue().send(&good).unwrap(), good.len());
        } else {
            let err = dev
                .first_queue()
                .send_gso(&Default::default(), &good)
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
        }
        drop(dev);
    }
}

/// An IPv4/UDP packet to `dst` from 10.3.0.2 (checksums complete).
fn udp4_to(dst: &[u8; 4], port: u16) -> Vec<u8> {
    tun_test_support::udp(
        &tun_test_support::Ip::v4([10, 3, 0, 2], *dst),
        4000,
        port,
        &[0; 100],
    )
}

#[test]
fn buffer_too_small_is_typed_and_recoverable() {
    let Some(ns) = private_ns() else { return };
    for offload in [false, true] {
        let dev = build_in(
            &ns,
            Device::builder()
                .name(format!("small{}", offload as u8))
                .offload(offload)
                .address("10.4.0.1/24".parse().unwrap()),
        );
        let send = |len: usize| {
            ns.run(move || {
                let s = UdpSocket::bind("10.4.0.1:0").unwrap();
                s.send_to(&vec![7u8; len], "10.4.0.2:9").unwrap();
                Ok(())
            })
            .unwrap()
        };
        // Skip what the kernel sends on its own (router solicitations...)
        // by reading until our datagram, which is the only UDP.
        send(1000);
        let mut small = [0u8; 100];
        let err = loop {
            match dev.first_queue().recv(&mut small) {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), ErrorKind::BufferTooSmall, "{err}");
        assert!(err.to_string().contains("small"), "{err}");
        send(200);
        let mut buf = [0u8; 1500];
        let n = loop {
            let n = dev.first_queue().recv(&mut buf).unwrap();
            if n > 20 && buf[9] == 17 {
                break n;
            }
        };
        assert_eq!(n, 20 + 8 + 200);
        verify_packet(&buf[..n]).unwrap();
        drop(dev);
    }
}
