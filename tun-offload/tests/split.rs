//! Receive path: worked cases from the kernel's rules, every real kernel
//! capture, and generated super-packets, all checked by an independent
//! verifier.

mod common;

use common::{Ip, as_super, tcp, udp, verify};
use proptest::prelude::*;
use tun_offload::{
    GsoPacket, GsoType, HdrFlags, Layer, PacketError, SplitError, VirtioNetHdr, complete_checksum,
    split,
};

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;
const CWR: u8 = 0x80;

fn bufs(n: usize, size: usize) -> (Vec<Vec<u8>>, Vec<usize>) {
    (vec![vec![0u8; size]; n], vec![0; n])
}

/// Split into `n` buffers with `offset` headroom and return the segments.
fn split_all(hdr: &VirtioNetHdr, packet: &[u8], offset: usize) -> Vec<Vec<u8>> {
    let (mut b, mut s) = bufs(64, 70_000);
    let n = split(hdr, packet, &mut b, &mut s, offset).expect("split");
    (0..n)
        .map(|i| b[i][offset..offset + s[i]].to_vec())
        .collect()
}

fn v4() -> Ip {
    Ip::v4([192, 0, 2, 1], [192, 0, 2, 2])
}

fn v6() -> Ip {
    Ip::v6("2001:db8::1", "2001:db8::2")
}

/// The cases of wireguard-go's `Test_handleVirtioRead` (tun/offload_linux_test.go):
/// gso_size 100, NEEDS_CSUM, 200 bytes.
#[test]
fn worked_cases() {
    let payload: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
    let cases = [
        (
            "tcp4",
            tcp(&v4(), 1, 1, 1, 1, ACK | PSH, &[], &payload),
            40,
            140,
        ),
        (
            "tcp6",
            tcp(&v6(), 1, 1, 1, 1, ACK | PSH, &[], &payload),
            60,
            160,
        ),
        ("udp4", udp(&v4(), 1, 1, &payload), 28, 128),
        ("udp6", udp(&v6(), 1, 1, &payload), 48, 148),
    ];
    for (name, pkt, hdr_len, seg_len) in cases {
        let (hdr, pkt) = as_super(pkt, 100);
        assert_eq!(usize::from(hdr.hdr_len()), hdr_len, "{name}");
        let segs = split_all(&hdr, &pkt, 0);
        assert_eq!(
            segs.iter().map(Vec::len).collect::<Vec<_>>(),
            [seg_len, seg_len],
            "{name}"
        );
        let p0 = verify(&segs[0]);
        let p1 = verify(&segs[1]);
        assert_eq!(p0.payload, payload[..100], "{name}");
        assert_eq!(p1.payload, payload[100..], "{name}");
        if p0.proto == 6 {
            assert_eq!((p0.seq, p1.seq), (1, 101), "{name}");
            assert_eq!(
                p0.tcp_flags, ACK,
                "{name}: PSH cleared on the first segment"
            );
            assert_eq!(p1.tcp_flags, ACK | PSH, "{name}: PSH kept on the last");
        }
        if p0.v4 {
            assert_eq!((p0.ip_id, p1.ip_id), (0, 1), "{name}");
        }
    }
}

#[test]
fn fin_only_last_and_cwr_only_first() {
    let payload = vec![7u8; 250];
    let (hdr, pkt) = as_super(
        tcp(&v4(), 5, 6, 1000, 9, ACK | PSH | FIN | CWR, &[], &payload),
        100,
    );
    let segs = split_all(&hdr, &pkt, 0);
    let flags: Vec<u8> = segs.iter().map(|s| verify(s).tcp_flags).collect();
    assert_eq!(flags, [ACK | CWR, ACK, ACK | PSH | FIN]);
}

#[test]
fn sequence_and_ip_id_wrap() {
    let payload = vec![1u8; 300];
    let mut ip = v4();
    ip.id = 0xffff;
    let (hdr, pkt) = as_super(tcp(&ip, 5, 6, u32::MAX - 150, 9, ACK, &[], &payload), 100);
    let segs = split_all(&hdr, &pkt, 0);
    let got: Vec<(u32, u16)> = segs
        .iter()
        .map(|s| verify(s))
        .map(|p| (p.seq, p.ip_id))
        .collect();
    assert_eq!(got, [(u32::MAX - 150, 0xffff), (u32::MAX - 50, 0), (49, 1)]);
}

#[test]
fn large_gso_size_does_not_wrap_the_sequence_in_16_bits() {
    // i * gso_size exceeds 65535 for later segments: 32-bit arithmetic only.
    let payload = vec![3u8; 9000 * 7];
    let (hdr, pkt) = as_super(tcp(&v6(), 5, 6, 10, 9, ACK, &[], &payload), 9000);
    let segs = split_all(&hdr, &pkt, 0);
    let seqs: Vec<u32> = segs.iter().map(|s| verify(s).seq).collect();
    assert_eq!(seqs, (0..7).map(|i| 10 + i * 9000).collect::<Vec<u32>>());
}

#[test]
fn headroom_is_left_alone() {
    let (hdr, pkt) = as_super(udp(&v4(), 1, 2, &[9u8; 250]), 100);
    let (mut b, mut s) = bufs(4, 200);
    for buf in &mut b {
        buf[..16].fill(0xee);
    }
    assert_eq!(split(&hdr, &pkt, &mut b, &mut s, 16), Ok(3));
    for (i, buf) in b.iter().take(3).enumerate() {
        assert!(buf[..16].iter().all(|&x| x == 0xee));
        verify(&buf[16..16 + s[i]]);
    }
}

#[test]
fn out_of_space_is_recoverable_and_counts() {
    let (hdr, pkt) = as_super(tcp(&v4(), 1, 1, 1, 1, ACK, &[], &[0u8; 1000]), 100);
    // Too few buffers.
    let (mut b, mut s) = bufs(4, 200);
    assert_eq!(
        split(&hdr, &pkt, &mut b, &mut s, 0),
        Err(SplitError::OutOfSpace {
            produced: 4,
            dropped: 6
        })
    );
    for i in 0..4 {
        verify(&b[i][..s[i]]);
    }
    // Too few sizes.
    let (mut b, mut s) = bufs(10, 200);
    assert_eq!(
        split(&hdr, &pkt, &mut b, &mut s[..2], 0),
        Err(SplitError::OutOfSpace {
            produced: 2,
            dropped: 8
        })
    );
    // A buffer too short for its segment (the third), and offsets past the end.
    let mut b = vec![vec![0u8; 200]; 10];
    b[2].truncate(139);
    assert_eq!(
        split(&hdr, &pkt, &mut b, &mut s, 0),
        Err(SplitError::OutOfSpace {
            produced: 2,
            dropped: 8
        })
    );
    let (mut b, mut s) = bufs(10, 200);
    assert_eq!(
        split(&hdr, &pkt, &mut b, &mut s, 500),
        Err(SplitError::OutOfSpace {
            produced: 0,
            dropped: 10
        })
    );
    // GSO_NONE into nothing.
    let none: &mut [Vec<u8>] = &mut [];
    assert_eq!(
        split(&VirtioNetHdr::ZERO, &pkt, none, &mut [], 0),
        Err(SplitError::OutOfSpace {
            produced: 0,
            dropped: 1
        })
    );
}

#[test]
fn plan_describes_the_split() {
    let (hdr, pkt) = as_super(tcp(&v4(), 1, 1, 1, 1, ACK, &[1, 1, 1, 1], &[0u8; 250]), 100);
    let plan = GsoPacket::parse(&hdr, &pkt).unwrap();
    assert_eq!(plan.segment_count(), 3);
    assert_eq!(plan.header_len(), 44);
    assert_eq!(plan.max_segment_len(), 144);
    assert_eq!(plan.payload_len(), 250);
    // A header-only super-packet still yields one packet.
    let (hdr, pkt) = as_super(udp(&v6(), 1, 1, &[]), 100);
    assert_eq!(GsoPacket::parse(&hdr, &pkt).unwrap().segment_count(), 1);
    let segs = split_all(&hdr, &pkt, 0);
    assert_eq!(segs.len(), 1);
    verify(&segs[0]);
}

#[test]
fn hdr_len_from_the_kernel_is_not_trusted() {
    let payload = vec![5u8; 300];
    let (mut hdr, pkt) = as_super(tcp(&v4(), 1, 1, 1, 1, ACK, &[], &payload), 100);
    hdr.set_hdr_len(200); // covers much of the payload, as on the forward path
    let segs = split_all(&hdr, &pkt, 0);
    assert_eq!(segs.len(), 3);
    let joined: Vec<u8> = segs.iter().flat_map(|s| verify(s).payload).collect();
    assert_eq!(joined, payload);
}

#[test]
fn ipv6_extension_headers_are_kept_and_counted() {
    // Hop-by-hop options (8 bytes) between the IPv6 header and UDP.
    let plain = udp(&v6(), 1, 2, &[4u8; 250]);
    let mut pkt = plain[..40].to_vec();
    pkt[6] = 0; // next header: hop-by-hop
    pkt.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // next UDP, len 0 (8 bytes), PadN
    pkt.extend_from_slice(&plain[40..]);
    let payload_len = (pkt.len() - 40) as u16;
    pkt[4..6].copy_from_slice(&payload_len.to_be_bytes());
    // NEEDS_CSUM: the field holds the pseudo-header sum, as the kernel sends it.
    let (src, dst) = common::addrs(&pkt);
    let ps = common::naive_pseudo(src, dst, 17, pkt.len() - 48);
    pkt[54..56].copy_from_slice(&ps.to_be_bytes());
    let hdr = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::UDP_L4, 56, 100, 48, 6);
    let (mut b, mut s) = bufs(8, 300);
    assert_eq!(split(&hdr, &pkt, &mut b, &mut s, 0), Ok(3));
    for i in 0..3 {
        let seg = &b[i][..s[i]];
        // Payload length counts the extension header: derived from the real header length.
        assert_eq!(
            usize::from(u16::from_be_bytes([seg[4], seg[5]])),
            seg.len() - 40
        );
        assert_eq!(&seg[40..48], &pkt[40..48]);
        let l4 = &seg[48..];
        assert_eq!(usize::from(u16::from_be_bytes([l4[4], l4[5]])), l4.len());
        let (src, dst) = common::addrs(seg);
        let sum =
            common::naive_pseudo(src, dst, 17, l4.len()) as u32 + common::naive_sum(l4) as u32;
        assert_eq!(((sum & 0xffff) + (sum >> 16)) as u16, 0xffff);
    }
    // csum_start that does not land on the transport header is refused.
    let bad = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::UDP_L4, 52, 100, 44, 6);
    assert_eq!(
        GsoPacket::parse(&bad, &pkt),
        Err(PacketError::CsumStartMismatch {
            csum_start: 44,
            ip_header_len: 48
        })
    );
}

#[test]
fn invalid_headers_are_typed_errors() {
    let (hdr, pkt4) = as_super(tcp(&v4(), 1, 1, 1, 1, ACK, &[], &[0u8; 200]), 100);
    let (hdr6, pkt6) = as_super(tcp(&v6(), 1, 1, 1, 1, ACK, &[], &[0u8; 200]), 100);
    let with = |f: &dyn Fn(&mut VirtioNetHdr)| {
        let mut h = hdr;
        f(&mut h);
        h
    };
    let cases: Vec<(VirtioNetHdr, &[u8], PacketError)> = vec![
        (
            with(&|h| h.set_gso_type(GsoType::UDP)),
            &pkt4,
            PacketError::UnsupportedGsoType {
                gso_type: GsoType::UDP,
            },
        ),
        (
            // The ECN bit is for TCP only (TCPV4|ECN, 0x81, is split).
            with(&|h| h.set_gso_type(GsoType(0x85))),
            &pkt4,
            PacketError::UnsupportedGsoType {
                gso_type: GsoType(0x85),
            },
        ),
        (
            with(&|h| h.set_gso_type(GsoType::TCPV6)),
            &pkt4,
            PacketError::IpVersionMismatch {
                gso_type: GsoType::TCPV6,
                version: 4,
            },
        ),
        (
            hdr,
            &pkt6,
            PacketError::IpVersionMismatch {
                gso_type: GsoType::TCPV4,
                version: 6,
            },
        ),
        (
            with(&|h| h.set_gso_size(0)),
            &pkt4,
            PacketError::ZeroGsoSize,
        ),
        (
            hdr,
            &[],
            PacketError::Truncated {
                layer: Layer::Ipv4,
                required: 20,
                len: 0,
            },
        ),
        (
            hdr6,
            &[],
            PacketError::Truncated {
                layer: Layer::Ipv6,
                required: 40,
                len: 0,
            },
        ),
        (
            hdr,
            &pkt4[..19],
            PacketError::Truncated {
                layer: Layer::Ipv4,
                required: 20,
                len: 19,
            },
        ),
        (
            hdr,
            &pkt4[..30],
            PacketError::Truncated {
                layer: Layer::Tcp,
                required: 40,
                len: 30,
            },
        ),
        (
            hdr6,
            &pkt6[..39],
            PacketError::Truncated {
                layer: Layer::Ipv6,
                required: 40,
                len: 39,
            },
        ),
        (
            with(&|h| h.set_csum_start(24)),
            &pkt4,
            PacketError::CsumStartMismatch {
                csum_start: 24,
                ip_header_len: 20,
            },
        ),
        (
            with(&|h| h.set_csum_offset(19)),
            &pkt4,
            PacketError::CsumOffsetOutsideHeader {
                csum_offset: 19,
                l4_header_len: 20,
            },
        ),
        (
            with(&|h| h.set_gso_type(GsoType::UDP_L4)),
            &pkt4,
            PacketError::ProtocolMismatch {
                gso_type: GsoType::UDP_L4,
                protocol: 6,
            },
        ),
        (
            with(&|h| h.set_gso_size(65500)),
            &pkt4,
            PacketError::SegmentTooLong { len: 65540 },
        ),
    ];
    for (h, p, want) in cases {
        assert_eq!(GsoPacket::parse(&h, p), Err(want), "{h:?}");
        let (mut b, mut s) = bufs(4, 2000);
        assert_eq!(
            split(&h, p, &mut b, &mut s, 0),
            Err(SplitError::Invalid(want))
        );
    }
    let mut bad_doff = pkt4.clone();
    bad_doff[32] = 0x40;
    assert_eq!(
        GsoPacket::parse(&hdr, &bad_doff),
        Err(PacketError::BadTcpDataOffset { header_len: 16 })
    );
    let mut bad_ver = pkt4.clone();
    bad_ver[0] = 0x55;
    assert_eq!(
        GsoPacket::parse(&hdr, &bad_ver),
        Err(PacketError::UnknownIpVersion { version: 5 })
    );
}

#[test]
fn gso_none_checksum_completion_is_bounds_checked() {
    let orig = tcp(&v4(), 1, 1, 1, 1, ACK, &[], &[1, 2, 3]);
    let cases = [
        (20u16, 16u16),
        (41, 0),
        (40, 1),
        (20, 17),
        (u16::MAX, u16::MAX),
        (0, u16::MAX),
    ];
    for (start, off) in cases {
        let mut pkt = orig.clone();
        let h = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::NONE, 0, 0, start, off);
        let r = complete_checksum(&h, &mut pkt);
        let (start, at) = (usize::from(start), usize::from(start) + usize::from(off));
        if at + 2 > pkt.len() {
            assert_eq!(
                r,
                Err(PacketError::CsumOutOfRange {
                    csum_start: start as u16,
                    csum_offset: off,
                    len: pkt.len()
                })
            );
            assert_eq!(pkt, orig, "a refused packet is untouched");
        } else {
            // Odd offsets too: the kernel asks only that the field lie
            // inside the packet (skb_partial_csum_set).
            assert_eq!(r, Ok(()), "start {start} offset {off}");
            assert_eq!(
                u16::from_be_bytes([pkt[at], pkt[at + 1]]),
                kernel_completion(&orig[start..]),
                "start {start} offset {off}"
            );
        }
    }
}

/// What the kernel's skb_checksum_help stores: the complement of the sum
/// of the covered bytes (the field's seed among them), zero as 0xffff.
fn kernel_completion(covered: &[u8]) -> u16 {
    match !common::naive_sum(covered) {
        0 => 0xffff,
        c => c,
    }
}

#[test]
fn a_zero_checksum_is_stored_as_ffff_whatever_the_offset() {
    // Covered bytes that sum to 0xffff: the complement is zero, which the
    // kernel stores as 0xffff (CSUM_MANGLED_0) for TCP as for UDP.
    for off in [0u16, 2, 6, 16] {
        let mut pkt = vec![0u8; 40];
        pkt[20..22].copy_from_slice(&[0xff, 0xff]);
        let h = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::NONE, 0, 0, 20, off);
        complete_checksum(&h, &mut pkt).unwrap();
        let at = 20 + usize::from(off);
        assert_eq!(&pkt[at..at + 2], &[0xff, 0xff], "offset {off}");
    }
}

#[test]
fn an_odd_offset_is_completed_as_the_kernel_does() {
    // A UDP packet whose sender put the partial sum one byte off: the
    // kernel completes it there (the result does not verify as UDP; that is
    // the sender's business), so this crate does too.
    let orig = udp(&v4(), 7, 9, &[5u8; 33]);
    let mut pkt = orig.clone();
    let h = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::NONE, 0, 0, 20, 7);
    complete_checksum(&h, &mut pkt).unwrap();
    assert_eq!(
        u16::from_be_bytes([pkt[27], pkt[28]]),
        kernel_completion(&orig[20..])
    );
    assert_eq!(pkt[..27], orig[..27]);
    assert_eq!(pkt[29..], orig[29..]);
}

/// Every real kernel read in tests/data (copied from shared/captures).
#[test]
fn kernel_captures() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names {
        if path.extension().is_none_or(|e| e != "bin") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let prefix = name.rsplit_once('-').unwrap().0.to_string();
        let raw = std::fs::read(&path).unwrap();
        let (hdr, packet) = VirtioNetHdr::split_prefix(&raw).unwrap();
        *seen.entry(prefix.clone()).or_default() += 1;
        if hdr.gso_type() == GsoType::NONE {
            let mut copy = packet.to_vec();
            complete_checksum(&hdr, &mut copy).unwrap();
            assert_eq!(split_all(&hdr, packet, 4)[0], copy, "{name}");
            if copy[0] >> 4 == 6 && copy[6] == 58 {
                // ICMPv6: no offload was asked for; the packet passes through untouched.
                assert_eq!(copy, packet, "{name}");
            } else {
                let p = verify(&copy);
                assert_eq!(p.proto, 6, "{name}");
                if !hdr.flags().contains(HdrFlags::NEEDS_CSUM) {
                    assert_eq!(copy, packet, "{name}: complete packets stay as they are");
                }
            }
            continue;
        }
        let plan = GsoPacket::parse(&hdr, packet).unwrap_or_else(|e| panic!("{name}: {e}"));
        let segs = split_all(&hdr, packet, 32);
        assert_eq!(segs.len(), plan.segment_count(), "{name}");
        assert!(segs.len() > 1, "{name}: a super-packet splits");
        let first = verify(&segs[0]);
        let mut joined = Vec::new();
        for (i, seg) in segs.iter().enumerate() {
            assert!(
                seg.len() <= 1500,
                "{name}: segment {i} of {} bytes exceeds the MTU",
                seg.len()
            );
            let p = verify(seg);
            let last = i + 1 == segs.len();
            if !last {
                assert_eq!(p.payload.len(), usize::from(hdr.gso_size()), "{name}");
            }
            if p.v4 {
                assert_eq!(p.ip_id, first.ip_id.wrapping_add(i as u16), "{name}");
            }
            if p.proto == 6 {
                let expected = first.seq.wrapping_add(joined.len() as u32);
                assert_eq!(p.seq, expected, "{name}: contiguous sequence numbers");
                let orig_flags = packet[usize::from(hdr.csum_start()) + 13];
                let want = if last {
                    orig_flags
                } else {
                    orig_flags & !(PSH | FIN)
                };
                assert_eq!(p.tcp_flags & !CWR, want & !CWR, "{name}");
            }
            joined.extend_from_slice(&p.payload);
        }
        let total: usize = segs.iter().map(|s| s.len() - plan.header_len()).sum();
        assert_eq!(
            total + plan.header_len(),
            packet.len(),
            "{name}: lengths add up"
        );
        assert_eq!(
            joined,
            packet[plan.header_len()..],
            "{name}: payloads reassemble"
        );
    }
    for prefix in [
        "tcp4-gso",
        "tcp6-gso",
        "udp4-uso",
        "udp6-uso",
        "tcp4-csum",
        "tcp6-csum",
        "tcp4",
        "icmp6",
    ] {
        assert_eq!(seen.get(prefix), Some(&6), "captures of {prefix}: {seen:?}");
    }
}

fn any_ip() -> impl Strategy<Value = Ip> {
    (
        any::<bool>(),
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<u16>(),
        1u8..,
    )
        .prop_map(|(is4, s4, d4, s6, d6, id, ttl)| {
            let mut ip = if is4 {
                Ip {
                    src: s4.into(),
                    dst: d4.into(),
                    ..Ip::v4([0; 4], [0; 4])
                }
            } else {
                Ip {
                    src: s6.into(),
                    dst: d6.into(),
                    ..Ip::v6("::", "::")
                }
            };
            ip.id = id;
            ip.ttl = ttl;
            ip
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Generated valid super-packets split into valid segments that reassemble exactly.
    #[test]
    fn generated_super_packets_split_and_reassemble(
        ip in any_ip(),
        is_tcp in any::<bool>(),
        opt_words in 0usize..=10,
        gso_size in 1u16..=1500,
        payload in proptest::collection::vec(any::<u8>(), 0..20_000),
        seq in prop_oneof![any::<u32>(), (u32::MAX - 70_000)..=u32::MAX],
        psh in any::<bool>(),
    ) {
        let options = vec![1u8; opt_words * 4]; // NOPs
        let pkt = if is_tcp {
            tcp(&ip, 1000, 2000, seq, 77, ACK | if psh { PSH } else { 0 }, &options, &payload)
        } else {
            udp(&ip, 1000, 2000, &payload)
        };
        let (hdr, pkt) = as_super(pkt, gso_size);
        let plan = GsoPacket::parse(&hdr, &pkt).unwrap();
        let n = plan.segment_count();
        let (mut b, mut s) = bufs(n, plan.max_segment_len() + 8);
        prop_assert_eq!(split(&hdr, &pkt, &mut b, &mut s, 8), Ok(n));
        let mut joined = Vec::new();
        for i in 0..n {
            let p = verify(&b[i][8..8 + s[i]]);
            prop_assert!(p.payload.len() <= usize::from(gso_size));
            if i + 1 < n { prop_assert_eq!(p.payload.len(), usize::from(gso_size)); }
            if p.v4 { prop_assert_eq!(p.ip_id, ip.id.wrapping_add(i as u16)); }
            prop_assert_eq!(p.ttl, ip.ttl);
            if is_tcp {
                prop_assert_eq!(p.seq, seq.wrapping_add(joined.len() as u32));
                let want = if psh && i + 1 == n { ACK | PSH } else { ACK };
                prop_assert_eq!(p.tcp_flags, want);
                prop_assert_eq!(p.tcp_header_len, 20 + options.len());
            }
            joined.extend_from_slice(&p.payload);
        }
        prop_assert_eq!(joined, payload);
    }

    /// Arbitrary header bytes and packet bytes never panic, for any output shape.
    #[test]
    fn arbitrary_input_never_panics(
        hdr in any::<[u8; 10]>(),
        packet in proptest::collection::vec(any::<u8>(), 0..3000),
        nbufs in 0usize..8,
        buf_len in 0usize..2000,
        offset in 0usize..64,
    ) {
        let hdr = VirtioNetHdr::decode(&hdr).unwrap();
        let (mut b, mut s) = bufs(nbufs, buf_len);
        let _ = split(&hdr, &packet, &mut b, &mut s, offset);
        let _ = GsoPacket::parse(&hdr, &packet);
        let mut p = packet.clone();
        let _ = complete_checksum(&hdr, &mut p);
    }

    /// Valid packets with one header field randomised never panic either
    /// (reaches deeper than fully random bytes).
    #[test]
    fn mutated_headers_never_panic(
        ip in any_ip(),
        is_tcp in any::<bool>(),
        payload_len in 0usize..3000,
        field in 0usize..6,
        value in any::<u16>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let payload = vec![0xa5u8; payload_len];
        let pkt = if is_tcp { tcp(&ip, 1, 2, 3, 4, ACK, &[], &payload) } else { udp(&ip, 1, 2, &payload) };
        let (mut hdr, mut pkt) = as_super(pkt, 500);
        match field {
            0 => hdr.set_gso_type(GsoType(value as u8)),
            1 => hdr.set_gso_size(value),
            2 => hdr.set_csum_start(value),
            3 => hdr.set_csum_offset(value),
            4 => hdr.set_hdr_len(value),
            _ => pkt.truncate(cut.index(pkt.len() + 1)),
        }
        let (mut b, mut s) = bufs(8, 1600);
        match split(&hdr, &pkt, &mut b, &mut s, 0) {
            Ok(n) => for &len in &s[..n] { prop_assert!(len <= 1600); },
            Err(SplitError::OutOfSpace { produced, dropped }) => prop_assert!(produced <= 8 && dropped > 0),
            Err(SplitError::Invalid(_)) => {}
        }
    }
}

#[test]
fn prepared_partial_checksums_complete_to_the_original() {
    use tun_offload::partial::prepare_partial_checksum;
    let payload: Vec<u8> = (0..333u32).map(|i| (i * 7) as u8).collect();
    for original in [
        tcp(&v4(), 1000, 80, 5, 6, ACK | PSH, &[1, 1, 1, 1], &payload),
        tcp(&v6(), 1000, 80, 5, 6, ACK, &[], &payload),
        udp(&v4(), 53, 5353, &payload),
        udp(&v6(), 53, 5353, &payload[..1]),
    ] {
        let mut p = original.clone();
        let hdr = prepare_partial_checksum(&mut p);
        assert_eq!(hdr.flags(), HdrFlags::NEEDS_CSUM);
        assert_eq!(hdr.gso_type(), GsoType::NONE);
        let ip_hl = if original[0] >> 4 == 4 { 20 } else { 40 };
        assert_eq!(usize::from(hdr.csum_start()), ip_hl);
        assert_ne!(
            p, original,
            "the checksum field now holds the pseudo-header sum"
        );
        // What the kernel does with it: complete from csum_start.
        complete_checksum(&hdr, &mut p).unwrap();
        assert_eq!(p, original);
        verify(&p);
    }
    // Not TCP/UDP, a fragment, or lengths that disagree: left alone, zero header.
    let mut icmp = tcp(&v4(), 1, 1, 1, 1, ACK, &[], &payload);
    icmp[9] = 1;
    let mut frag = tcp(&v4(), 1, 1, 1, 1, ACK, &[], &payload);
    frag[6] |= 0x20;
    let mut short = udp(&v4(), 1, 1, &payload);
    short.pop();
    for mut p in [icmp, frag, short, vec![], vec![0x45; 10]] {
        let before = p.clone();
        assert_eq!(prepare_partial_checksum(&mut p), VirtioNetHdr::ZERO);
        assert_eq!(p, before);
    }
}

/// A UDP-tunnel super-packet (Linux 6.17+) is not split as if it were a
/// plain one: its type is refused, with the tunnel bits in the error.
#[test]
fn udp_tunnel_types_are_refused_by_the_plain_split() {
    let (hdr, pkt) = as_super(tcp(&v4(), 1, 2, 3, 4, ACK, &[], &[9u8; 3000]), 1000);
    for bit in [GsoType::UDP_TUNNEL_IPV4, GsoType::UDP_TUNNEL_IPV6] {
        let mut h = hdr;
        let t = GsoType(hdr.gso_type().0 | bit);
        h.set_gso_type(t);
        assert_eq!(
            GsoPacket::parse(&h, &pkt).err(),
            Some(PacketError::UnsupportedGsoType { gso_type: t })
        );
        let mut bufs = vec![vec![0u8; 2000]; 4];
        let mut sizes = vec![0; 4];
        assert!(split(&h, &pkt, &mut bufs, &mut sizes, 0).is_err());
    }
}

/// Lay `packet` out as a `readv` into the segments' places leaves it: the
/// headers and the first payload in `bufs[0][offset..]`, payload `i` in
/// `bufs[i][offset + header_len..]`.
fn scatter(plan: &GsoPacket, packet: &[u8], offset: usize, cap: usize) -> Vec<Vec<u8>> {
    let hl = plan.header_len();
    let payload = &packet[hl..];
    (0..plan.segment_count())
        .map(|i| {
            // Garbage where the headers go: the split must write all of them.
            let mut b = vec![0x5au8; cap];
            let r = plan.payload_range(i);
            if i == 0 {
                b[offset..offset + hl].copy_from_slice(&packet[..hl]);
            }
            b[offset + hl..offset + hl + r.len()].copy_from_slice(&payload[r]);
            b
        })
        .collect()
}

#[test]
fn placed_split_refuses_missing_room_before_writing() {
    let payload = vec![7u8; 3000];
    let (hdr, pkt) = as_super(tcp(&v4(), 1, 2, 3, 4, ACK, &[], &payload), 1000);
    let plan = GsoPacket::parse(&hdr, &pkt).unwrap();
    let mut b = scatter(&plan, &pkt, 4, 1100);
    let before = b.clone();
    let mut s = [0usize; 3];
    // One buffer short, then one buffer too small: nothing is written.
    assert_eq!(
        plan.split_placed(&mut b[..2], &mut s, 4),
        Err(SplitError::OutOfSpace {
            produced: 0,
            dropped: 3
        })
    );
    b[2].truncate(4 + 40 + 999);
    let mut short = before.clone();
    short[2].truncate(4 + 40 + 999);
    assert_eq!(
        plan.split_placed(&mut b, &mut s, 4),
        Err(SplitError::OutOfSpace {
            produced: 0,
            dropped: 3
        })
    );
    assert_eq!(b, short);
    assert_eq!(s, [0; 3]);
}

/// The super-packet of the generated cases: TCP (`opt_words` words of
/// options, `flags`) or UDP, `payload` in `gso_size`-byte segments.
fn generated(
    ip: &Ip,
    is_tcp: bool,
    opt_words: usize,
    gso_size: u16,
    payload: &[u8],
    seq: u32,
    flags: u8,
) -> (VirtioNetHdr, Vec<u8>) {
    let options = vec![1u8; opt_words * 4];
    let pkt = if is_tcp {
        tcp(ip, 1000, 2000, seq, 77, flags, &options, payload)
    } else {
        udp(ip, 1000, 2000, payload)
    };
    as_super(pkt, gso_size)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A super-packet read scattered into its segments' places and split
    /// there is byte for byte the split into fresh buffers, and its head
    /// alone parses to the same plan; split with partial checksums (either
    /// way), it completes to the same segments.
    #[test]
    fn placed_and_partial_splits_equal_the_copying_split(
        ip in any_ip(),
        is_tcp in any::<bool>(),
        opt_words in 0usize..=10,
        gso_size in 1u16..=1500,
        payload in proptest::collection::vec(any::<u8>(), 0..20_000),
        seq in any::<u32>(),
        flags in prop_oneof![Just(ACK), Just(ACK | PSH), Just(ACK | FIN | PSH), Just(ACK | CWR)],
        offset in 0usize..16,
    ) {
        let (hdr, pkt) = generated(&ip, is_tcp, opt_words, gso_size, &payload, seq, flags);
        let plan = GsoPacket::parse(&hdr, &pkt).unwrap();
        let head = &pkt[..(plan.header_len() + usize::from(gso_size)).min(pkt.len())];
        prop_assert_eq!(GsoPacket::parse_head(&hdr, head, pkt.len()), Ok(plan));
        let n = plan.segment_count();
        let cap = offset + plan.max_segment_len();
        let (mut want, mut want_sizes) = bufs(n, cap);
        prop_assert_eq!(plan.split_into(&pkt, &mut want, &mut want_sizes, offset), Ok(n));
        let mut got = scatter(&plan, &pkt, offset, cap);
        let mut sizes = vec![0; n];
        prop_assert_eq!(plan.split_placed(&mut got, &mut sizes, offset), Ok(n));
        prop_assert_eq!(&sizes, &want_sizes);
        for i in 0..n {
            prop_assert_eq!(&got[i][offset..offset + sizes[i]], &want[i][offset..offset + sizes[i]]);
        }
        // With partial checksums, copying or in place: the kernel's
        // completion under `partial_hdr` turns each segment into the
        // complete split's, byte for byte (only the checksum field
        // differs before).
        let (mut copied, mut copied_sizes) = bufs(n, cap);
        prop_assert_eq!(plan.split_into_partial(&pkt, &mut copied, &mut copied_sizes, offset), Ok(n));
        let mut placed = scatter(&plan, &pkt, offset, cap);
        let mut placed_sizes = vec![0; n];
        prop_assert_eq!(plan.split_placed_partial(&mut placed, &mut placed_sizes, offset), Ok(n));
        prop_assert_eq!(&copied_sizes, &want_sizes);
        prop_assert_eq!(&placed_sizes, &want_sizes);
        // Headers apart, payload where it lies: the same segments, the
        // complete ones and the partial ones.
        let hl = plan.header_len();
        let mut heads = vec![0u8; n * hl];
        let mut partial_heads = vec![0u8; n * hl];
        prop_assert_eq!(plan.split_heads(&pkt, &mut heads), Ok(n));
        prop_assert_eq!(plan.split_heads_partial(&pkt, &mut partial_heads), Ok(n));
        for i in 0..n {
            let payload = &pkt[hl..][plan.payload_range(i)];
            for (h, whole) in [(&heads, &want[i]), (&partial_heads, &copied[i])] {
                let got: Vec<u8> = [&h[i * hl..(i + 1) * hl], payload].concat();
                prop_assert_eq!(&got[..], &whole[offset..offset + want_sizes[i]]);
            }
        }
        if n > 0 {
            prop_assert_eq!(
                plan.split_heads(&pkt, &mut heads[..n * hl - 1]),
                Err(SplitError::OutOfSpace { produced: 0, dropped: n })
            );
        }
        let ph = plan.partial_hdr();
        prop_assert_eq!(ph.flags(), HdrFlags::NEEDS_CSUM);
        prop_assert_eq!(ph.gso_type(), GsoType::NONE);
        let field = usize::from(ph.csum_start() + ph.csum_offset());
        for i in 0..n {
            let w = &want[i][offset..offset + want_sizes[i]];
            let c = &copied[i][offset..offset + want_sizes[i]];
            prop_assert_eq!(c, &placed[i][offset..offset + want_sizes[i]]);
            // Only the checksum field differs before completion.
            prop_assert_eq!(&c[..field], &w[..field]);
            prop_assert_eq!(&c[field + 2..], &w[field + 2..]);
            let mut done = c.to_vec();
            complete_checksum(&ph, &mut done).unwrap();
            // Zero is 0 from the split, 0xffff from the completion (as the
            // kernel's skb_checksum_help stores it): both forms of zero.
            if w[field..field + 2] == [0, 0] && done[field..field + 2] == [0xff, 0xff] {
                done[field..field + 2].copy_from_slice(&[0, 0]);
            }
            prop_assert_eq!(&done[..], w);
            verify(&done);
        }
    }
}
