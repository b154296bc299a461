//! TAP frames: the split and the coalescing behind an Ethernet II or
//! 802.1Q-tagged L2 header, with `csum_start` and `hdr_len` counted from the
//! frame start; non-IP frames pass through untouched. Every IP packet is
//! checked by the independent verifier (etherparse and a naive checksum),
//! every L2 header against the one it came from.

mod common;

use common::{Ip, as_super, tcp, udp, verify};
use etherparse::{Ethernet2Header, SingleVlanHeader};
use proptest::prelude::*;
use tun_offload::frame::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN};
use tun_offload::{
    GsoPacket, GsoType, HdrFlags, Layer, PacketError, SplitError, VirtioNetHdr, complete_checksum,
    split, split_frame,
};

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

fn v4() -> Ip {
    Ip::v4([192, 0, 2, 1], [192, 0, 2, 2])
}

fn v6() -> Ip {
    Ip::v6("2001:db8::1", "2001:db8::2")
}

/// An L2 header: Ethernet II, or with an 802.1Q tag (VLAN `vlan`).
fn l2(dst: [u8; 6], src: [u8; 6], vlan: Option<u16>, ether_type: u16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&dst);
    h.extend_from_slice(&src);
    if let Some(id) = vlan {
        h.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        h.extend_from_slice(&(0x2000 | id).to_be_bytes());
    }
    h.extend_from_slice(&ether_type.to_be_bytes());
    h
}

fn ether_type_of(packet: &[u8]) -> u16 {
    if packet[0] >> 4 == 4 {
        ETHERTYPE_IPV4
    } else {
        ETHERTYPE_IPV6
    }
}

/// `packet` behind an L2 header.
fn frame(vlan: Option<u16>, packet: &[u8]) -> Vec<u8> {
    let mut f = l2(MAC_B, MAC_A, vlan, ether_type_of(packet));
    f.extend_from_slice(packet);
    f
}

/// The header of a super-packet moved to a frame: `csum_start` and
/// `hdr_len` count from the frame start.
fn at_frame(hdr: &VirtioNetHdr, l2_len: usize) -> VirtioNetHdr {
    let mut h = *hdr;
    h.set_csum_start(hdr.csum_start() + l2_len as u16);
    h.set_hdr_len(hdr.hdr_len() + l2_len as u16);
    h
}

/// Check an L2 header with etherparse (the independent reader) and return
/// the length of the L2 part.
fn parse_l2(f: &[u8], vlan: Option<u16>) -> usize {
    let (eth, rest) = Ethernet2Header::from_slice(f).expect("Ethernet header parses");
    assert_eq!((eth.destination, eth.source), (MAC_B, MAC_A));
    match vlan {
        None => 14,
        Some(id) => {
            assert_eq!(eth.ether_type.0, ETHERTYPE_VLAN);
            let (tag, _) = SingleVlanHeader::from_slice(rest).expect("802.1Q tag parses");
            assert_eq!(tag.vlan_id.value(), id);
            18
        }
    }
}

fn split_all(hdr: &VirtioNetHdr, f: &[u8], offset: usize) -> Vec<Vec<u8>> {
    let mut bufs = vec![vec![0u8; 70_000]; 64];
    let mut sizes = vec![0; 64];
    let n = split_frame(hdr, f, &mut bufs, &mut sizes, offset).expect("split_frame");
    (0..n)
        .map(|i| bufs[i][offset..offset + sizes[i]].to_vec())
        .collect()
}

/// Each segment of a frame is the L2 header followed by what the split of
/// the bare packet gives, and verifies on its own.
fn split_case(packet: Vec<u8>, gso: u16, vlan: Option<u16>) {
    let (hdr, sup) = as_super(packet, gso);
    let f = frame(vlan, &sup);
    let l2_len = f.len() - sup.len();
    let fhdr = at_frame(&hdr, l2_len);
    let plan = GsoPacket::parse_frame(&fhdr, &f).expect("parse_frame");
    let bare = GsoPacket::parse(&hdr, &sup).unwrap();
    assert_eq!(plan.l2_len(), l2_len);
    assert_eq!(plan.ip_header_len(), bare.ip_header_len());
    assert_eq!(plan.header_len(), bare.header_len() + l2_len);
    assert_eq!(plan.segment_count(), bare.segment_count());
    assert_eq!(plan.max_segment_len(), bare.max_segment_len() + l2_len);
    let segs = split_all(&fhdr, &f, 7);
    let mut want_b = vec![vec![0u8; 70_000]; 64];
    let mut want_s = vec![0; 64];
    let n = split(&hdr, &sup, &mut want_b, &mut want_s, 0).unwrap();
    assert_eq!(segs.len(), n);
    for (k, s) in segs.iter().enumerate() {
        assert!(s.len() <= plan.max_segment_len());
        assert_eq!(parse_l2(s, vlan), l2_len);
        assert_eq!(&s[..l2_len], &f[..l2_len], "L2 header copied as it is");
        assert_eq!(&s[l2_len..], &want_b[k][..want_s[k]]);
        verify(&s[l2_len..]);
    }
    // The same frame read scattered into the segments' places and split
    // there, its head parsed alone.
    let hl = plan.header_len();
    let head = &f[..(hl + usize::from(gso)).min(f.len())];
    assert_eq!(GsoPacket::parse_frame_head(&fhdr, head, f.len()), Ok(plan));
    let mut placed: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut b = vec![0xeeu8; 7 + plan.max_segment_len()];
            let r = plan.payload_range(i);
            if i == 0 {
                b[7..7 + hl].copy_from_slice(&f[..hl]);
            }
            b[7 + hl..7 + hl + r.len()].copy_from_slice(&f[hl + r.start..hl + r.end]);
            b
        })
        .collect();
    let mut sizes = vec![0; n];
    assert_eq!(plan.split_placed(&mut placed, &mut sizes, 7), Ok(n));
    for (k, s) in segs.iter().enumerate() {
        assert_eq!(&placed[k][7..7 + sizes[k]], &s[..]);
    }
}

#[test]
fn split_behind_ethernet_and_vlan() {
    let payload: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    for vlan in [None, Some(5)] {
        split_case(
            tcp(&v4(), 1000, 80, 7, 9, ACK | PSH | FIN, &[], &payload),
            1448,
            vlan,
        );
        split_case(
            tcp(
                &v6(),
                1000,
                80,
                u32::MAX - 100,
                9,
                ACK,
                &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
                &payload,
            ),
            1428,
            vlan,
        );
        split_case(udp(&v4(), 53, 53, &payload), 1200, vlan);
        split_case(udp(&v6(), 53, 53, &payload[..1201]), 1200, vlan);
        // Odd segment sizes keep the payload at odd frame offsets.
        split_case(udp(&v4(), 53, 53, &payload), 333, vlan);
    }
}

#[test]
fn frames_without_gso_are_copied_and_completed() {
    // An IP frame with a partial checksum: csum_start counts from the frame.
    for vlan in [None, Some(7)] {
        let p = udp(&v4(), 1, 2, &[9u8; 301]);
        let (hdr, sup) = as_super(p.clone(), 1000);
        let f = frame(vlan, &sup);
        let l2_len = f.len() - sup.len();
        let mut h = at_frame(&hdr, l2_len);
        h.set_gso_type(GsoType::NONE);
        h.set_gso_size(0);
        let segs = split_all(&h, &f, 0);
        assert_eq!(segs.len(), 1);
        assert_eq!(&segs[0][..l2_len], &f[..l2_len]);
        assert_eq!(&segs[0][l2_len..], &p[..], "checksum completed");
    }
    // ARP and an unknown EtherType, plain and with a partial checksum at
    // an offset of the frame: copied, completed where asked.
    let mut arp = l2([0xff; 6], MAC_A, None, 0x0806);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&[0x55; 20]);
    assert_eq!(split_all(&VirtioNetHdr::ZERO, &arp, 3), [arp.clone()]);
    let mut tagged_arp = l2([0xff; 6], MAC_A, Some(9), 0x0806);
    tagged_arp.extend_from_slice(&[1u8; 28]);
    assert_eq!(
        split_all(&VirtioNetHdr::ZERO, &tagged_arp, 0),
        [tagged_arp.clone()]
    );
    let mut other = l2(MAC_B, MAC_A, None, 0x88b5);
    other.extend_from_slice(&[3u8; 40]);
    let h = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::NONE, 0, 0, 20, 4);
    let out = split_all(&h, &other, 0);
    let mut want = other.clone();
    complete_checksum(&h, &mut want).unwrap();
    assert_eq!(out, [want.clone()]);
    assert_ne!(want, other);
    // The field held the "pseudo" sum 0x0303: the completed bytes plus it verify.
    assert_eq!(
        common::add16(common::naive_sum(&want[20..]), 0x0303),
        0xffff,
        "verifies from csum_start"
    );
}

#[test]
fn bad_frames_are_typed_errors() {
    let p = tcp(&v4(), 1, 2, 3, 4, ACK, &[], &[5u8; 3000]);
    let (hdr, sup) = as_super(p, 1000);
    let f = frame(None, &sup);
    let fh = at_frame(&hdr, 14);
    let mut bufs = vec![vec![0u8; 2000]; 8];
    let mut sizes = vec![0; 8];
    // GSO on a non-IP frame.
    let mut arp = f.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(
        split_frame(&fh, &arp, &mut bufs, &mut sizes, 0),
        Err(SplitError::Invalid(PacketError::NotIpFrame {
            ether_type: 0x0806
        }))
    );
    // Too short for the L2 header.
    assert_eq!(
        GsoPacket::parse_frame(&fh, &f[..10]),
        Err(PacketError::Truncated {
            layer: Layer::Ethernet,
            required: 14,
            len: 10
        })
    );
    let mut tagged = frame(Some(1), &sup);
    tagged.truncate(16);
    assert_eq!(
        GsoPacket::parse_frame(&fh, &tagged),
        Err(PacketError::Truncated {
            layer: Layer::Ethernet,
            required: 18,
            len: 16
        })
    );
    // csum_start counted from the IP packet, as on a TUN: refused.
    assert_eq!(
        GsoPacket::parse_frame(&hdr, &f),
        Err(PacketError::CsumStartMismatch {
            csum_start: 20,
            ip_header_len: 34
        })
    );
    let mut low = hdr;
    low.set_csum_start(4);
    assert_eq!(
        GsoPacket::parse_frame(&low, &f),
        Err(PacketError::CsumStartMismatch {
            csum_start: 4,
            ip_header_len: 14
        })
    );
    // A truncated IP packet: lengths count from the frame start.
    assert!(matches!(
        GsoPacket::parse_frame(&fh, &f[..30]),
        Err(PacketError::Truncated {
            layer: Layer::Ipv4,
            required: 34,
            len: 30
        })
    ));
    // Out of space: the segments written are valid frames.
    let mut small = vec![vec![0u8; 2000]; 2];
    let mut s2 = vec![0; 2];
    assert_eq!(
        split_frame(&fh, &f, &mut small, &mut s2, 0),
        Err(SplitError::OutOfSpace {
            produced: 2,
            dropped: 1
        })
    );
    for k in 0..2 {
        assert_eq!(&small[k][..14], &f[..14]);
        verify(&small[k][14..s2[k]]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary headers and frames never panic; what comes out of an IP
    /// frame starts with the frame's L2 header.
    #[test]
    fn arbitrary_frames_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        raw in proptest::array::uniform10(any::<u8>()),
        l2_kind in 0u8..4,
    ) {
        let mut f = bytes;
        if f.len() >= 18 {
            match l2_kind {
                0 => f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes()),
                1 => f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes()),
                2 => {
                    f[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
                    f[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                }
                _ => {}
            }
        }
        let hdr = VirtioNetHdr::decode(&raw).unwrap();
        let mut bufs = vec![vec![0u8; 600]; 8];
        let mut sizes = vec![0; 8];
        if let Ok(n) = split_frame(&hdr, &f, &mut bufs, &mut sizes, 2) {
            if hdr.gso_type() != GsoType::NONE {
                let l2_len = tun_offload::frame::ip_offset(&f).unwrap();
                for b in bufs.iter().take(n) {
                    prop_assert_eq!(&b[2..2 + l2_len], &f[..l2_len]);
                }
            }
        }
    }
}

// ---- coalescing ----

use tun_offload::GroTable;
use tun_offload::gro::Refusal;

const OFF: usize = VirtioNetHdr::LEN + 2;
const CAP: usize = OFF + 18 + 65_535;

/// A TCP segment; IPv4 with DF, as Linux sends (equal IDs merge only with DF).
fn tcp_seg(ip: &Ip, seq: u32, len: usize) -> Vec<u8> {
    let mut ip = ip.clone();
    ip.df = true;
    tcp(
        &ip,
        4000,
        80,
        seq,
        1,
        ACK,
        &[],
        &vec![(seq % 251) as u8; len],
    )
}

/// Coalesce frames; returns (index, header, frame) of each one written,
/// after checking that a merged frame splits back into valid frames behind
/// its own L2 header and that a frame written alone is untouched.
fn coalesce_frames(
    table: &mut GroTable,
    frames: &[Vec<u8>],
) -> Vec<(usize, VirtioNetHdr, Vec<u8>)> {
    let mut bufs: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| {
            let mut b = vec![0xAAu8; CAP];
            b[OFF..OFF + f.len()].copy_from_slice(f);
            b
        })
        .collect();
    let mut lens: Vec<usize> = frames.iter().map(Vec::len).collect();
    let idx = table.coalesce(&mut bufs, &mut lens, OFF).unwrap().to_vec();
    idx.iter()
        .map(|&i| {
            let hdr = VirtioNetHdr::decode(&bufs[i][OFF - VirtioNetHdr::LEN..]).unwrap();
            let f = bufs[i][OFF..OFF + lens[i]].to_vec();
            if hdr == VirtioNetHdr::ZERO {
                assert_eq!(f, frames[i], "a frame written alone is untouched");
            } else {
                let l2_len = tun_offload::frame::ip_offset(&f).unwrap();
                assert_eq!(
                    &f[..l2_len],
                    &frames[i][..l2_len],
                    "first frame's L2 header"
                );
                assert!(f.len() - l2_len <= 65_535);
                assert!(
                    usize::from(hdr.csum_start()) > l2_len,
                    "csum_start from the frame start"
                );
                let mut done = f.clone();
                complete_checksum(&hdr, &mut done).unwrap();
                verify(&done[l2_len..]);
                for s in split_all(&hdr, &f, 0) {
                    assert_eq!(&s[..l2_len], &f[..l2_len]);
                    verify(&s[l2_len..]);
                }
            }
            (i, hdr, f)
        })
        .collect()
}

#[test]
fn frames_with_equal_headers_merge() {
    for vlan in [None, Some(12)] {
        let frames: Vec<Vec<u8>> = (0..4)
            .map(|k| frame(vlan, &tcp_seg(&v4(), 1 + 1000 * k, 1000)))
            .collect();
        let mut t = GroTable::new(false).with_frames();
        assert!(t.frames());
        let out = coalesce_frames(&mut t, &frames);
        assert_eq!(out.len(), 1, "{vlan:?}");
        let (_, hdr, f) = &out[0];
        let l2_len = if vlan.is_some() { 18 } else { 14 };
        assert_eq!(f.len(), l2_len + 40 + 4000);
        assert_eq!(hdr.gso_type(), GsoType::TCPV4);
        assert_eq!(hdr.gso_size(), 1000);
        assert_eq!(usize::from(hdr.csum_start()), l2_len + 20);
        assert_eq!(usize::from(hdr.hdr_len()), l2_len + 40);
        assert_eq!(t.stats().segments_merged, 3);
    }
    // UDP over IPv6, with USO.
    let frames: Vec<Vec<u8>> = (0..3)
        .map(|_| frame(Some(3), &udp(&v6(), 5, 6, &[1u8; 900])))
        .collect();
    let mut t = GroTable::new(true);
    t.set_frames(true);
    let out = coalesce_frames(&mut t, &frames);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.gso_type(), GsoType::UDP_L4);
    assert_eq!(usize::from(out[0].1.csum_start()), 18 + 40);
}

#[test]
fn frames_with_other_l2_headers_never_merge() {
    let seg = |k: u32| tcp_seg(&v4(), 1 + 1000 * k, 1000);
    let plain = |k| frame(None, &seg(k));
    let mut other_mac = plain(1);
    other_mac[5] ^= 1; // another destination
    let mut other_src = plain(1);
    other_src[11] ^= 1;
    let tagged = frame(Some(5), &seg(1)); // same IP flow, tagged
    let other_vlan_first = frame(Some(5), &seg(0));
    let other_vlan = frame(Some(6), &seg(1));
    let cases: [(&str, Vec<Vec<u8>>); 4] = [
        ("destination MAC", vec![plain(0), other_mac]),
        ("source MAC", vec![plain(0), other_src]),
        ("tag vs untagged", vec![plain(0), tagged]),
        ("VLAN id", vec![other_vlan_first, other_vlan]),
    ];
    for (what, frames) in cases {
        let mut t = GroTable::new(false).with_frames();
        let out = coalesce_frames(&mut t, &frames);
        assert_eq!(out.len(), 2, "{what}: merged");
        assert_eq!(t.stats().segments_merged, 0, "{what}");
    }
    // Two MAC flows interleaved: each merges with its own kind only.
    let b = |k: u32| {
        let mut f = plain(k);
        f[5] = 0x0c;
        f
    };
    let frames = vec![plain(0), b(0), plain(1), b(1), plain(2), b(2)];
    let mut t = GroTable::new(false).with_frames();
    let out = coalesce_frames(&mut t, &frames);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].2[5], frames[0][5]);
    assert_eq!(out[1].2[5], 0x0c);
    assert_eq!(t.stats().segments_merged, 4);
}

#[test]
fn non_ip_frames_are_written_as_they_are() {
    let mut arp = l2([0xff; 6], MAC_A, None, 0x0806);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&[7u8; 20]);
    let mut tagged_arp = l2([0xff; 6], MAC_A, Some(2), 0x0806);
    tagged_arp.extend_from_slice(&[8u8; 28]);
    let mut lldp = l2(MAC_B, MAC_A, None, 0x88cc);
    lldp.extend_from_slice(&[9u8; 30]);
    let short = vec![1u8; 9];
    let seg = |k: u32| frame(None, &tcp_seg(&v4(), 1 + 1000 * k, 1000));
    let frames = vec![seg(0), arp, seg(1), tagged_arp, lldp, short, seg(2)];
    let mut t = GroTable::new(false).with_frames();
    let out = coalesce_frames(&mut t, &frames);
    let idx: Vec<usize> = out.iter().map(|o| o.0).collect();
    // Non-IP frames are no barrier: the TCP run goes on around them.
    assert_eq!(idx, [0, 1, 3, 4, 5]);
    assert_eq!(t.stats().refused(Refusal::NotIpFrame), 4);
    assert_eq!(t.stats().segments_merged, 2);
}

#[test]
fn ip_packets_without_frames_mode_are_unchanged() {
    // The same table used for frames, then for packets again: the frame
    // setting is all that differs.
    let mut t = GroTable::new(false).with_frames();
    let frames: Vec<Vec<u8>> = (0..2)
        .map(|k| frame(None, &tcp_seg(&v4(), 1 + 100 * k, 100)))
        .collect();
    assert_eq!(coalesce_frames(&mut t, &frames).len(), 1);
    t.set_frames(false);
    let pkts: Vec<Vec<u8>> = (0..2).map(|k| tcp_seg(&v4(), 1 + 100 * k, 100)).collect();
    let mut bufs: Vec<Vec<u8>> = pkts
        .iter()
        .map(|p| {
            let mut b = vec![0u8; CAP];
            b[OFF..OFF + p.len()].copy_from_slice(p);
            b
        })
        .collect();
    let mut lens: Vec<usize> = pkts.iter().map(Vec::len).collect();
    assert_eq!(t.coalesce(&mut bufs, &mut lens, OFF).unwrap(), [0]);
    let hdr = VirtioNetHdr::decode(&bufs[0][OFF - VirtioNetHdr::LEN..]).unwrap();
    assert_eq!(hdr.csum_start(), 20);
    // A frame read as a packet is no candidate.
    let mut lens: Vec<usize> = frames.iter().map(Vec::len).collect();
    let mut bufs: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| {
            let mut b = vec![0u8; CAP];
            b[OFF..OFF + f.len()].copy_from_slice(f);
            b
        })
        .collect();
    assert_eq!(t.coalesce(&mut bufs, &mut lens, OFF).unwrap(), [0, 1]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Split a super-frame, coalesce the frames: the original frame and its
    /// header come back, behind Ethernet II or an 802.1Q tag.
    #[test]
    fn split_then_coalesce_gives_back_the_frame(
        is_v6 in any::<bool>(),
        tcp_ in any::<bool>(),
        vlan in proptest::option::of(1u16..4095),
        gso in 200u16..1500,
        segs in 2usize..30,
        last in 1usize..200,
    ) {
        let ip = if is_v6 { v6() } else { v4() };
        let payload_len = (segs - 1) * usize::from(gso) + last.min(usize::from(gso));
        let payload: Vec<u8> = (0..payload_len).map(|i| (i * 31) as u8).collect();
        let p = if tcp_ {
            tcp(&ip, 4000, 80, 77, 1, ACK, &[], &payload)
        } else {
            udp(&ip, 4000, 80, &payload)
        };
        let (hdr, sup) = as_super(p, gso);
        let f = frame(vlan, &sup);
        let fh = at_frame(&hdr, f.len() - sup.len());
        let segments = split_all(&fh, &f, 0);
        prop_assert_eq!(segments.len(), segs);
        let mut t = GroTable::new(true).with_frames();
        let out = coalesce_frames(&mut t, &segments);
        prop_assert_eq!(out.len(), 1);
        prop_assert_eq!(&out[0].2, &f);
        prop_assert_eq!(out[0].1, fh);
    }
}
