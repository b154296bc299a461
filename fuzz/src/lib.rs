//! Bodies of the fuzz targets, shared by the cargo-fuzz binaries
//! (`fuzz_targets/`) and by the stable regression test in
//! `tun-offload/tests/fuzz_corpus.rs`, which replays every file under
//! `corpus/` and `regressions/`. Each body panics when a property fails.
//!
//! Only `std`, `tun_offload`, `tun_test_support` (the naive checksum) and
//! `arbitrary` are used, all dependencies of tun-offload's tests too, so the
//! regression test can include this file by path.

use arbitrary::{Arbitrary, Unstructured};
use tun_offload::{
    GroTable, GsoPacket, GsoType, HdrFlags, SplitError, TunnelCoalesce, TunnelGsoPacket,
    TunnelProto, TunnelSplitError, VirtioNetHdr, VirtioNetHdrMrgRxbuf, VirtioNetHdrV1HashTunnel,
    coalesce_tunnel, complete_checksum, split, split_frame, split_tunnel,
};
use tun_test_support::{add16, naive_packet_pseudo, naive_sum};

const HDR: usize = VirtioNetHdr::LEN;

/// Output buffer sizes the receive target picks from, tiny to ample.
const BUF_SIZES: [usize; 10] = [0, 1, 20, 64, 128, 576, 1280, 1500, 2048, 65_600];

/// The pseudo-header sum a segment of `seg_l4_len` transport bytes must
/// verify against: with NEEDS_CSUM, the super-packet's checksum field with
/// its length replaced (tcp_gso_segment's rule, which keeps the final
/// destination of a source route); without, the fixed header's addresses
/// (`None` when a source route or Routing header may name another).
fn expected_pseudo(
    hdr: &VirtioNetHdr,
    packet: &[u8],
    plan: &GsoPacket,
    seg_l4_len: usize,
) -> Option<u16> {
    let ip_hl = plan.ip_header_len();
    if hdr.flags().contains(HdrFlags::NEEDS_CSUM) {
        let at = ip_hl + if plan.kind().is_tcp() { 16 } else { 6 };
        let field = u16::from_be_bytes([packet[at], packet[at + 1]]);
        let old = (packet.len() - ip_hl) as u32;
        let s = add16(add16(field, !((old >> 16) as u16)), !(old as u16));
        Some(add16(s, seg_l4_len as u16))
    } else if (packet[0] >> 4 == 4 && ip_hl == 20) || (packet[0] >> 4 == 6 && ip_hl == 40) {
        let proto = if plan.kind().is_tcp() { 6 } else { 17 };
        let mut img = packet[..ip_hl + seg_l4_len.min(packet.len() - ip_hl)].to_vec();
        img.truncate(ip_hl);
        img.resize(ip_hl + seg_l4_len, 0);
        Some(naive_packet_pseudo(&img, ip_hl, proto))
    } else {
        None
    }
}

/// Check a segment produced by a split: IP length fields equal its length,
/// the IPv4 header checksum and the transport checksum verify (against
/// `want`, the pseudo-header sum, when known).
fn check_segment(seg: &[u8], plan: &GsoPacket, want: Option<u16>) {
    let ip_hl = plan.ip_header_len();
    if seg[0] >> 4 == 4 {
        assert_eq!(
            usize::from(u16::from_be_bytes([seg[2], seg[3]])),
            seg.len(),
            "IPv4 total length"
        );
        assert_eq!(
            naive_sum(&seg[..usize::from(seg[0] & 15) * 4]),
            0xffff,
            "IPv4 header checksum"
        );
    } else {
        assert_eq!(
            usize::from(u16::from_be_bytes([seg[4], seg[5]])) + 40,
            seg.len(),
            "IPv6 payload length"
        );
    }
    let proto = if plan.kind().is_tcp() { 6 } else { 17 };
    if proto == 17 {
        assert_eq!(
            usize::from(u16::from_be_bytes([seg[ip_hl + 4], seg[ip_hl + 5]])),
            seg.len() - ip_hl
        );
    }
    if let Some(ps) = want {
        assert_eq!(
            add16(ps, naive_sum(&seg[ip_hl..])),
            0xffff,
            "transport checksum"
        );
    }
    assert!(seg.len() <= plan.max_segment_len());
}

/// virtio header: decode, encode, decode again gives the same header.
pub fn virtio_header(data: &[u8]) {
    match VirtioNetHdr::decode(data) {
        Ok(h) => {
            let bytes = h.to_bytes();
            assert_eq!(&bytes[..], &data[..HDR]);
            assert_eq!(VirtioNetHdr::decode(&bytes), Ok(h));
            let mut out = [0u8; HDR];
            h.encode(&mut out).unwrap();
            assert_eq!(out, bytes);
        }
        Err(e) => assert!(data.len() < HDR && e.len == data.len()),
    }
    if let Ok(h) = VirtioNetHdrMrgRxbuf::decode(data) {
        let mut out = [0u8; VirtioNetHdrMrgRxbuf::LEN];
        h.encode(&mut out).unwrap();
        assert_eq!(&out[..], &data[..VirtioNetHdrMrgRxbuf::LEN]);
        assert_eq!(VirtioNetHdrMrgRxbuf::decode(&out), Ok(h));
    }
    match VirtioNetHdrV1HashTunnel::decode(data) {
        Ok(t) => {
            let n = VirtioNetHdrV1HashTunnel::LEN;
            assert_eq!(&t.to_bytes()[..], &data[..n]);
            let mut out = [0u8; VirtioNetHdrV1HashTunnel::LEN];
            t.encode(&mut out).unwrap();
            assert_eq!(VirtioNetHdrV1HashTunnel::decode(&out), Ok(t));
            // Every form reads the same leading fields.
            assert_eq!(VirtioNetHdr::decode(data), Ok(t.hdr));
            let m = VirtioNetHdrMrgRxbuf::decode(data).unwrap();
            assert_eq!(m.num_buffers(), t.num_buffers());
            let le = |at: usize| u16::from_le_bytes([data[at], data[at + 1]]);
            assert_eq!(t.outer_th_offset(), le(20));
            assert_eq!(t.inner_nh_offset(), le(22));
            assert_eq!(t.hash_value(), u32::from(le(12)) | u32::from(le(14)) << 16);
        }
        Err(e) => assert!(data.len() < VirtioNetHdrV1HashTunnel::LEN && e.len == data.len()),
    }
}

/// An Ethernet header for `packet` (EtherType from its version nibble), with
/// an 802.1Q tag when `vlan`; `mac` varies the source address.
fn l2_header(packet: &[u8], vlan: bool, mac: u8) -> Vec<u8> {
    let mut h = vec![0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, mac, 0x0a];
    if vlan {
        h.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
    }
    let et: u16 = if packet.first().map(|b| b >> 4) == Some(6) {
        0x86dd
    } else {
        0x0800
    };
    h.extend_from_slice(&et.to_be_bytes());
    h
}

/// `hdr` moved to a frame with `l2` bytes of L2 header: `csum_start` and
/// `hdr_len` count from the frame start. `None` when they would not fit.
fn frame_hdr(hdr: &VirtioNetHdr, l2: usize) -> Option<VirtioNetHdr> {
    let mut h = *hdr;
    h.set_csum_start(hdr.csum_start().checked_add(l2 as u16)?);
    h.set_hdr_len(hdr.hdr_len().saturating_add(l2 as u16));
    Some(h)
}

/// The receive path on a frame: the same packet behind an L2 header (VLAN
/// tag when `vlan`) and with `csum_start` moved must split exactly as the
/// bare packet does, each segment behind a copy of the L2 header, or fail
/// with the same kind of error.
fn receive_frame(
    hdr: &VirtioNetHdr,
    packet: &[u8],
    size: usize,
    offset: usize,
    nbufs: usize,
    vlan: bool,
) {
    let l2h = l2_header(packet, vlan, 0);
    let l2 = l2h.len();
    let Some(fh) = frame_hdr(hdr, l2) else {
        return;
    };
    let frame = [&l2h[..], packet].concat();
    let mut bufs = vec![vec![0u8; size]; nbufs];
    let mut sizes = vec![0usize; nbufs];
    let mut fbufs = vec![vec![0u8; size + l2]; nbufs];
    let mut fsizes = vec![0usize; nbufs];
    let bare = split(hdr, packet, &mut bufs, &mut sizes, offset);
    let framed = split_frame(&fh, &frame, &mut fbufs, &mut fsizes, offset);
    match (bare, framed) {
        (Ok(n), Ok(m)) => {
            assert_eq!(n, m, "segment count of a frame");
            for i in 0..n {
                let f = &fbufs[i][offset..offset + fsizes[i]];
                assert_eq!(&f[..l2], &l2h[..], "L2 header copied");
                assert_eq!(&f[l2..], &bufs[i][offset..offset + sizes[i]], "segment {i}");
            }
        }
        (
            Err(SplitError::OutOfSpace { produced, dropped }),
            Err(SplitError::OutOfSpace {
                produced: p2,
                dropped: d2,
            }),
        ) => {
            assert_eq!((produced, dropped), (p2, d2));
        }
        (Err(SplitError::Invalid(a)), Err(SplitError::Invalid(b))) => {
            assert_eq!(
                std::mem::discriminant(&a),
                std::mem::discriminant(&b),
                "{a:?} vs {b:?}"
            );
        }
        (a, b) => panic!("packet {a:?}, frame {b:?}"),
    }
}

/// receive: `[size selector][offset][buffer count]` + virtio header + packet
/// into the split (and the GSO_NONE completion), with every output shape;
/// then the same packet as a frame behind an Ethernet II or 802.1Q header
/// (the size selector's top bit picks) through [`split_frame`].
pub fn receive(data: &[u8]) {
    let [sel, offset, nbufs, rest @ ..] = data else {
        return;
    };
    let Ok((hdr, packet)) = VirtioNetHdr::split_prefix(rest) else {
        return;
    };
    receive_packet(&hdr, packet, *sel, *offset, *nbufs);
    let size = BUF_SIZES[usize::from(*sel) % BUF_SIZES.len()];
    receive_frame(
        &hdr,
        packet,
        size,
        usize::from(*offset % 64),
        usize::from(*nbufs % 70),
        sel & 0x80 != 0,
    );
}

fn receive_packet(hdr: &VirtioNetHdr, packet: &[u8], sel: u8, offset: u8, nbufs: u8) {
    let hdr = *hdr;
    let size = BUF_SIZES[usize::from(sel) % BUF_SIZES.len()];
    let offset = usize::from(offset % 64);
    let nbufs = usize::from(nbufs % 70);
    let mut bufs = vec![vec![0u8; size]; nbufs];
    let mut sizes = vec![0usize; nbufs];
    let plan = GsoPacket::parse(&hdr, packet);
    match split(&hdr, packet, &mut bufs, &mut sizes, offset) {
        Ok(n) => {
            assert!(n <= nbufs && n >= 1);
            assert!(sizes[..n].iter().all(|&len| offset + len <= size));
            if let Ok(plan) = &plan {
                assert_eq!(n, plan.segment_count());
                for i in 0..n {
                    let seg = &bufs[i][offset..offset + sizes[i]];
                    let want =
                        expected_pseudo(&hdr, packet, plan, seg.len() - plan.ip_header_len());
                    check_segment(seg, plan, want);
                }
            }
        }
        Err(SplitError::OutOfSpace { produced, dropped }) => {
            assert!(produced <= nbufs && dropped >= 1);
            if let Ok(plan) = &plan {
                assert_eq!(produced + dropped, plan.segment_count());
            }
        }
        Err(SplitError::Invalid(e)) => {
            if hdr.gso_type() != GsoType::NONE {
                assert_eq!(plan, Err(e));
            }
        }
    }
    if hdr.gso_type() == GsoType::NONE {
        let mut p = packet.to_vec();
        let done = complete_checksum(&hdr, &mut p);
        let start = usize::from(hdr.csum_start());
        let at = start + usize::from(hdr.csum_offset());
        if hdr.flags().contains(HdrFlags::NEEDS_CSUM) {
            // The kernel completes any offset whose field lies inside the
            // packet (skb_partial_csum_set) and refuses nothing else.
            assert_eq!(
                done.is_ok(),
                at + 2 <= packet.len(),
                "accepted as the kernel does"
            );
        }
        if done.is_ok() && hdr.flags().contains(HdrFlags::NEEDS_CSUM) {
            // What skb_checksum_help stores: the complement of the sum from
            // csum_start (the field's seed included), zero sent as 0xffff.
            let kernel = match !naive_sum(&packet[start..]) {
                0 => 0xffff,
                c => c,
            };
            assert_eq!(
                u16::from_be_bytes([p[at], p[at + 1]]),
                kernel,
                "completed as the kernel completes it"
            );
            if hdr.csum_offset().is_multiple_of(2) {
                // The field held the pseudo-header sum (the seed); completed,
                // the covered bytes plus that seed sum to ones'-complement
                // zero. (An odd offset straddles two words of the sum.)
                let seed = u16::from_be_bytes([packet[at], packet[at + 1]]);
                assert_eq!(
                    add16(naive_sum(&p[start..]), seed),
                    0xffff,
                    "completed checksum verifies"
                );
            }
            let mut untouched = p.clone();
            untouched[at..at + 2].copy_from_slice(&packet[at..at + 2]);
            assert_eq!(untouched, packet, "only the checksum field changes");
        }
    }
}

/// `got` (a segment the split completed, a zero TCP checksum stored as 0,
/// as the kernel's segmentation does) equals `want` (the same packet
/// completed by `complete_checksum`, a zero stored as 0xffff, as the
/// kernel's skb_checksum_help does), but for those two forms of a zero
/// checksum at `hdr`'s field.
fn same_but_zero_form(got: &[u8], want: &[u8], hdr: &VirtioNetHdr, what: &str) {
    let at = usize::from(hdr.csum_start()) + usize::from(hdr.csum_offset());
    if got != want && got.len() == want.len() && at + 2 <= got.len() {
        let mut g = got.to_vec();
        if g[at..at + 2] == [0, 0] && want[at..at + 2] == [0xff, 0xff] {
            g[at..at + 2].copy_from_slice(&[0xff, 0xff]);
        }
        assert_eq!(&g[..], want, "{what}");
    } else {
        assert_eq!(got, want, "{what}");
    }
}

/// Split `packet` with ample buffers and check every segment.
fn split_and_check(hdr: &VirtioNetHdr, packet: &[u8]) -> Vec<Vec<u8>> {
    let plan = GsoPacket::parse(hdr, packet).expect("a merged packet is a valid super-packet");
    let n = plan.segment_count();
    let mut bufs = vec![vec![0u8; plan.max_segment_len()]; n];
    let mut sizes = vec![0usize; n];
    assert_eq!(split(hdr, packet, &mut bufs, &mut sizes, 0), Ok(n));
    (0..n)
        .map(|i| {
            let seg = bufs[i][..sizes[i]].to_vec();
            let want = expected_pseudo(hdr, packet, &plan, seg.len() - plan.ip_header_len());
            check_segment(&seg, &plan, want);
            seg
        })
        .collect()
}

/// Coalesce `pkts` once, each behind an L2 header, with a frame table;
/// returns the written indices with each one's header and frame.
fn coalesce_frames(
    pkts: &[&[u8]],
    udp_gro: bool,
    vlan: bool,
    macs: bool,
) -> Vec<(usize, VirtioNetHdr, Vec<u8>)> {
    let frames: Vec<Vec<u8>> = pkts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            [
                &l2_header(p, vlan, if macs { (i % 2) as u8 } else { 0 })[..],
                p,
            ]
            .concat()
        })
        .collect();
    let cap = HDR + 18 + pkts.iter().map(|p| p.len()).sum::<usize>().min(65_535) + 64;
    let mut bufs: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| {
            let mut b = vec![0u8; cap.max(HDR + f.len())];
            b[HDR..HDR + f.len()].copy_from_slice(f);
            b
        })
        .collect();
    let mut lens: Vec<usize> = frames.iter().map(Vec::len).collect();
    let mut table = GroTable::new(udp_gro).with_frames();
    let written = table
        .coalesce(&mut bufs, &mut lens, HDR)
        .expect("well-formed batch")
        .to_vec();
    assert!(written.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(table.stats().segments_merged + written.len(), pkts.len());
    written
        .iter()
        .map(|&i| {
            let hdr = VirtioNetHdr::decode(&bufs[i]).unwrap();
            let f = bufs[i][HDR..HDR + lens[i]].to_vec();
            let l2 = frames[i].len() - pkts[i].len();
            if hdr == VirtioNetHdr::ZERO {
                assert_eq!(f, frames[i], "a frame written alone is untouched");
            } else {
                assert_eq!(&f[..l2], &frames[i][..l2], "the run's L2 header");
                let inner = frame_hdr_back(&hdr, l2);
                split_and_check(&inner, &f[l2..]);
                let plan = GsoPacket::parse_frame(&hdr, &f).expect("a merged frame parses");
                assert_eq!(plan.l2_len(), l2);
            }
            (i, hdr, f)
        })
        .collect()
}

/// The header of a frame's IP packet: `csum_start` and `hdr_len` less `l2`.
fn frame_hdr_back(hdr: &VirtioNetHdr, l2: usize) -> VirtioNetHdr {
    let mut h = *hdr;
    h.set_csum_start(hdr.csum_start() - l2 as u16);
    h.set_hdr_len(hdr.hdr_len() - l2 as u16);
    h
}

/// transmit: `[flags]` then packets as `[len lo][len hi][bytes]`, coalesced
/// by one table in two rounds. Checks the written list (ascending, unique,
/// in range), the 65535 cap, and that every merged packet is a valid
/// super-packet whose segments verify. Then the same packets as frames
/// (flags bit 2: 802.1Q-tagged; bit 3: two alternating source MACs): with
/// one L2 header for all, exactly what the packets gave, behind it; with
/// two, valid frames and no merge across L2 headers.
pub fn transmit(data: &[u8]) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut pkts: Vec<&[u8]> = Vec::new();
    while let [lo, hi, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        pkts.push(&tail[..len]);
        rest = &tail[len..];
        if pkts.len() == 256 {
            break;
        }
    }
    let cap = HDR + pkts.iter().map(|p| p.len()).sum::<usize>().min(65_535) + 64;
    let lens_in: Vec<usize> = pkts.iter().map(|p| p.len()).collect();
    let mut table = GroTable::new(flags & 1 != 0);
    let mut plan_table = GroTable::new(flags & 1 != 0);
    let mut first_round = Vec::new();
    for _ in 0..2 {
        let mut bufs: Vec<Vec<u8>> = pkts
            .iter()
            .map(|p| {
                let mut b = vec![0u8; cap.max(HDR + p.len())];
                b[HDR..HDR + p.len()].copy_from_slice(p);
                b
            })
            .collect();
        let mut lens: Vec<usize> = pkts.iter().map(|p| p.len()).collect();
        let written = table
            .coalesce(&mut bufs, &mut lens, HDR)
            .expect("well-formed batch")
            .to_vec();
        assert!(
            written.windows(2).all(|w| w[0] < w[1]),
            "ascending and unique"
        );
        assert!(written.iter().all(|&i| i < pkts.len()), "in range");
        let stats = *table.stats();
        assert_eq!(stats.packets_in, pkts.len());
        assert_eq!(stats.packets_out, written.len());
        assert_eq!(stats.segments_merged + written.len(), pkts.len());
        // The plan of the same batch (read where it lies, offset 0, no room
        // around it) writes the same runs, byte for byte.
        let plan = plan_table
            .plan(&pkts, &lens_in, 0)
            .expect("well-formed batch");
        assert_eq!(plan.len(), written.len(), "planned runs");
        for (run, &i) in plan.iter().zip(&written) {
            assert_eq!(run.first(), i, "planned run order");
            let w: Vec<u8> = run.slices(&pkts).unwrap().flatten().copied().collect();
            assert_eq!(&w[..], &bufs[i][..HDR + lens[i]], "planned run {i}");
        }
        assert_eq!(*plan_table.stats(), stats, "plan counters");
        first_round.clear();
        for &i in &written {
            let hdr = VirtioNetHdr::decode(&bufs[i]).unwrap();
            let p = &bufs[i][HDR..HDR + lens[i]];
            if hdr == VirtioNetHdr::ZERO {
                assert_eq!(p, pkts[i], "a packet written alone is untouched");
            } else {
                assert!(p.len() <= 65_535, "merged packet of {} bytes", p.len());
                split_and_check(&hdr, p);
            }
            first_round.push((i, hdr, p.to_vec()));
        }
    }
    let (vlan, macs) = (flags & 4 != 0, flags & 8 != 0);
    let framed = coalesce_frames(&pkts, flags & 1 != 0, vlan, macs);
    if !macs {
        assert_eq!(framed.len(), first_round.len(), "frames as packets");
        for ((i, h, p), (j, fh, f)) in first_round.iter().zip(&framed) {
            let l2 = f.len() - p.len();
            assert_eq!(i, j);
            assert_eq!(&f[l2..], &p[..], "frame {i}");
            if *h == VirtioNetHdr::ZERO {
                assert_eq!(*fh, VirtioNetHdr::ZERO);
            } else {
                assert_eq!(frame_hdr_back(fh, l2), *h, "header of frame {i}");
            }
        }
    }
}

/// Parameters of a generated super-packet for the round-trip target.
#[derive(Debug, Arbitrary)]
pub struct RoundTrip {
    v6: bool,
    tcp: bool,
    opt_words: u8,
    gso_size: u16,
    segments: u8,
    last_len: u16,
    seq: u32,
    ip_id: u16,
    ttl: u8,
    psh: bool,
    fill: u8,
    /// IPv4 DF.
    df: bool,
    /// TCP window.
    window: u16,
    /// TCP reserved and AE bits (the low nibble of byte 12).
    reserved: u8,
    /// TCP ECE.
    ece: bool,
    /// TCP CWR (the super-packet then says GSO_ECN; the table is told
    /// TSO_ECN was negotiated).
    cwr: bool,
    /// IPv4 TOS / IPv6 traffic class (ECN bits included).
    tos: u8,
}

fn build(rt: &RoundTrip) -> Option<(VirtioNetHdr, Vec<u8>)> {
    let ip_hl = if rt.v6 { 40 } else { 20 };
    let opt = usize::from(rt.opt_words % 11) * 4;
    let l4_hl = if rt.tcp { 20 + opt } else { 8 };
    let hl = ip_hl + l4_hl;
    let gso = usize::from(rt.gso_size % 9000).max(1);
    let segs = usize::from(rt.segments % 64).max(1);
    let last = usize::from(rt.last_len) % gso + 1;
    let payload_len = (segs - 1) * gso + last;
    if hl + payload_len > 65_535 {
        return None;
    }
    let mut p = vec![0u8; hl + payload_len];
    let total = p.len();
    let proto = if rt.tcp { 6 } else { 17 };
    if rt.v6 {
        p[0] = 0x60 | (rt.tos >> 4);
        p[1] = rt.tos << 4;
        p[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
        p[6] = proto;
        p[7] = rt.ttl;
        p[8..24].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p[24..40].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    } else {
        p[0] = 0x45;
        p[1] = rt.tos;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[4..6].copy_from_slice(&rt.ip_id.to_be_bytes());
        p[6] = if rt.df { 0x40 } else { 0 };
        p[8] = rt.ttl;
        p[9] = proto;
        p[12..20].copy_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
        let c = !naive_sum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let l4 = ip_hl;
    p[l4..l4 + 4].copy_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
    if rt.tcp {
        p[l4 + 4..l4 + 8].copy_from_slice(&rt.seq.to_be_bytes());
        p[l4 + 8..l4 + 12].copy_from_slice(&7u32.to_be_bytes());
        p[l4 + 12] = ((l4_hl / 4) as u8) << 4 | (rt.reserved & 0x0f);
        p[l4 + 13] = 0x10
            | if rt.psh { 0x08 } else { 0 }
            | if rt.ece { 0x40 } else { 0 }
            | if rt.cwr { 0x80 } else { 0 };
        p[l4 + 14..l4 + 16].copy_from_slice(&rt.window.to_be_bytes());
        p[l4 + 20..l4 + 20 + opt].fill(1);
    } else {
        p[l4 + 4..l4 + 6].copy_from_slice(&((total - ip_hl) as u16).to_be_bytes());
    }
    for (k, b) in p[hl..].iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(13).wrapping_add(rt.fill);
    }
    let off = if rt.tcp { 16 } else { 6 };
    let ps = naive_packet_pseudo(&p, ip_hl, proto);
    p[l4 + off..l4 + off + 2].copy_from_slice(&ps.to_be_bytes());
    let mut gso_type = match (rt.tcp, rt.v6) {
        (true, false) => GsoType::TCPV4,
        (true, true) => GsoType::TCPV6,
        (false, _) => GsoType::UDP_L4,
    };
    if rt.tcp && rt.cwr {
        gso_type = GsoType(gso_type.0 | GsoType::ECN);
    }
    let hdr = VirtioNetHdr::new(
        HdrFlags::NEEDS_CSUM,
        gso_type,
        hl as u16,
        gso as u16,
        ip_hl as u16,
        off as u16,
    );
    Some((hdr, p))
}

/// round trip: a generated valid super-packet, split by the receive path and
/// coalesced by the transmit path, gives back exactly the original, whatever
/// its window, reserved/AE bits, ECE/CWR, TOS, DF and IPv4 ID.
pub fn round_trip(data: &[u8]) {
    let Ok(rt) = RoundTrip::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let Some((hdr, original)) = build(&rt) else {
        return;
    };
    let segs = split_and_check(&hdr, &original);
    round_trip_frame(&rt, &hdr, &original, segs.len());
    let mut bufs: Vec<Vec<u8>> = segs
        .iter()
        .map(|s| {
            let mut b = vec![0u8; HDR + 65_535];
            b[HDR..HDR + s.len()].copy_from_slice(s);
            b
        })
        .collect();
    let mut lens: Vec<usize> = segs.iter().map(Vec::len).collect();
    let mut table = GroTable::new(true);
    table.set_tcp_ecn(true);
    let written = table.coalesce(&mut bufs, &mut lens, HDR).unwrap().to_vec();
    assert_eq!(written, [0], "one packet comes back ({rt:?})");
    let got_hdr = VirtioNetHdr::decode(&bufs[0]).unwrap();
    let got = &bufs[0][HDR..HDR + lens[0]];
    if segs.len() == 1 {
        let mut done = original.clone();
        complete_checksum(&hdr, &mut done).unwrap();
        assert_eq!(got_hdr, VirtioNetHdr::ZERO);
        same_but_zero_form(got, &done, &hdr, &format!("single segment ({rt:?})"));
    } else {
        assert_eq!(got_hdr, hdr, "header ({rt:?})");
        assert_eq!(got, &original[..], "packet ({rt:?})");
    }
    round_trip_partial(&rt, &hdr, &original, &segs);
}

/// The round trip with partial checksums: the split leaves each segment's
/// pseudo-header sum (completed, it is the complete split's segment), each
/// behind its own header; a table told to read those headers plans and
/// coalesces them back into the original, without verifying a checksum;
/// a single segment comes back alone behind its NEEDS_CSUM header.
fn round_trip_partial(rt: &RoundTrip, hdr: &VirtioNetHdr, original: &[u8], segs: &[Vec<u8>]) {
    let plan = GsoPacket::parse(hdr, original).expect("a super-packet");
    let n = segs.len();
    let mut bufs = vec![vec![0u8; HDR + 65_535]; n];
    let mut lens = vec![0usize; n];
    assert_eq!(
        plan.split_into_partial(original, &mut bufs, &mut lens, HDR),
        Ok(n)
    );
    let ph = plan.partial_hdr();
    for (k, (b, seg)) in bufs.iter_mut().zip(segs).enumerate() {
        b[..HDR].copy_from_slice(&ph.to_bytes());
        let mut done = b[HDR..HDR + lens[k]].to_vec();
        complete_checksum(&ph, &mut done).unwrap();
        same_but_zero_form(seg, &done, &ph, &format!("partial segment {k} ({rt:?})"));
    }
    let mut table = GroTable::new(true);
    table.set_tcp_ecn(true);
    table.set_partial_checksums(true);
    let planned: Vec<Vec<u8>> = table
        .plan(&bufs, &lens, HDR)
        .unwrap()
        .iter()
        .map(|r| r.slices(&bufs).unwrap().flatten().copied().collect())
        .collect();
    assert_eq!(table.stats().bad_checksum, 0, "nothing verified ({rt:?})");
    assert_eq!(planned.len(), 1, "one packet comes back ({rt:?})");
    let written = table.coalesce(&mut bufs, &mut lens, HDR).unwrap().to_vec();
    assert_eq!(written, [0]);
    assert_eq!(
        &bufs[0][..HDR + lens[0]],
        &planned[0][..],
        "plan and coalesce agree"
    );
    let got_hdr = VirtioNetHdr::decode(&bufs[0]).unwrap();
    if n == 1 {
        assert_eq!(got_hdr, ph, "alone behind its own header ({rt:?})");
    } else {
        assert_eq!(got_hdr, *hdr, "header ({rt:?})");
        assert_eq!(&bufs[0][HDR..HDR + lens[0]], original, "packet ({rt:?})");
    }
}

/// The round trip on a frame (802.1Q-tagged when `fill` is odd): split the
/// super-frame with [`split_frame`], coalesce the frames with a frame table,
/// get the frame and its header back.
fn round_trip_frame(rt: &RoundTrip, hdr: &VirtioNetHdr, original: &[u8], count: usize) {
    let l2h = l2_header(original, rt.fill & 1 == 1, 0);
    let l2 = l2h.len();
    let Some(fh) = frame_hdr(hdr, l2) else {
        return;
    };
    let frame = [&l2h[..], original].concat();
    let plan = GsoPacket::parse_frame(&fh, &frame).expect("a super-frame");
    assert_eq!(plan.segment_count(), count);
    let mut bufs = vec![vec![0u8; HDR + l2 + 65_535]; count];
    let mut lens = vec![0usize; count];
    assert_eq!(
        split_frame(&fh, &frame, &mut bufs, &mut lens, HDR),
        Ok(count)
    );
    for (b, &len) in bufs.iter().zip(&lens) {
        assert_eq!(&b[HDR..HDR + l2], &l2h[..], "L2 header of a segment");
        assert!(len <= plan.max_segment_len());
    }
    let mut table = GroTable::new(true).with_frames();
    table.set_tcp_ecn(true);
    let written = table.coalesce(&mut bufs, &mut lens, HDR).unwrap().to_vec();
    assert_eq!(written, [0], "one frame comes back ({rt:?})");
    let got_hdr = VirtioNetHdr::decode(&bufs[0]).unwrap();
    let got = &bufs[0][HDR..HDR + lens[0]];
    if count == 1 {
        let mut done = frame.clone();
        complete_checksum(&fh, &mut done).unwrap();
        assert_eq!(got_hdr, VirtioNetHdr::ZERO);
        same_but_zero_form(got, &done, &fh, &format!("single segment frame ({rt:?})"));
    } else {
        assert_eq!(got_hdr, fh, "frame header ({rt:?})");
        assert_eq!(got, &frame[..], "frame ({rt:?})");
    }
}

/// tunnel: `[size selector][offset][buffer count][mode]` + 24-byte header +
/// packet (mode bit 0: a TAP frame; bit 1: Geneve, else VXLAN; bits 2..:
/// which byte of the second datagram to flip for the coalescing).
///
/// The split must agree with the parse (datagram count, lengths within
/// the buffers, `OutOfSpace` counts), every datagram must carry the
/// parsed headers with outer lengths that fit, an outer UDP checksum that
/// verifies with UDP_TUNNEL_CSUM (zero without), and the plain split's
/// inner packet; the datagrams must coalesce back into runs that split into
/// exactly them; a datagram with a flipped byte must not panic the
/// coalescing.
pub fn tunnel(data: &[u8]) {
    let [sel, offset, nbufs, mode, rest @ ..] = data else {
        return;
    };
    let Ok((hdr, packet)) = VirtioNetHdrV1HashTunnel::split_prefix(rest) else {
        return;
    };
    let frame = mode & 1 != 0;
    let size = BUF_SIZES[usize::from(*sel) % BUF_SIZES.len()];
    let offset = usize::from(offset % 64);
    let nbufs = usize::from(nbufs % 70);
    let mut bufs = vec![vec![0u8; size]; nbufs];
    let mut lens = vec![0usize; nbufs];
    let got = split_tunnel(&hdr, packet, frame, &mut bufs, &mut lens, offset);
    if hdr.hdr.gso_type().udp_tunnel() == 0 {
        return;
    }
    let plan = if frame {
        TunnelGsoPacket::parse_frame(&hdr, packet)
    } else {
        TunnelGsoPacket::parse(&hdr, packet)
    };
    let plan = match (plan, got) {
        (Err(e), Err(TunnelSplitError::Tunnel(f))) => {
            assert_eq!(e, f);
            return;
        }
        (Ok(plan), Ok(n)) => {
            assert_eq!(n, plan.segment_count());
            plan
        }
        (Ok(plan), Err(TunnelSplitError::OutOfSpace { produced, dropped })) => {
            assert_eq!(produced + dropped, plan.segment_count());
            // Retry with room for everything.
            let n = plan.segment_count();
            bufs = vec![vec![0u8; plan.max_segment_len()]; n];
            lens = vec![0; n];
            assert_eq!(plan.split_into(packet, &mut bufs, &mut lens, 0), Ok(n));
            check_tunnel_datagrams(&plan, packet, &bufs, &lens, 0, frame, *mode);
            return;
        }
        (p, g) => panic!("parse {p:?} but split {g:?}"),
    };
    check_tunnel_datagrams(&plan, packet, &bufs, &lens, offset, frame, *mode);
}

fn check_tunnel_datagrams(
    plan: &TunnelGsoPacket,
    packet: &[u8],
    bufs: &[Vec<u8>],
    lens: &[usize],
    offset: usize,
    frame: bool,
    mode: u8,
) {
    let n = plan.segment_count();
    let (nh, th, inh) = (
        plan.l2_len(),
        plan.outer_th_offset(),
        plan.inner_nh_offset(),
    );
    // The inner packets: the plain split of the inner super-packet.
    let inner = plan.inner();
    let mut pb = vec![vec![0u8; inner.max_segment_len()]; n];
    let mut pl = vec![0usize; n];
    let inner_packet = &packet[inh..];
    let datagrams: Vec<&[u8]> = (0..n).map(|i| &bufs[i][offset..offset + lens[i]]).collect();
    for (i, d) in datagrams.iter().enumerate() {
        assert!(d.len() <= plan.max_segment_len());
        // Headers up to the inner packet: as sent, but lengths, ID, checksums.
        assert_eq!(&d[..nh], &packet[..nh]);
        assert_eq!(&d[th..th + 4], &packet[th..th + 4], "outer UDP ports");
        assert_eq!(&d[th + 8..inh], &packet[th + 8..inh], "tunnel header");
        let udp_len = u16::from_be_bytes([d[th + 4], d[th + 5]]);
        assert_eq!(usize::from(udp_len), d.len() - th);
        let check = u16::from_be_bytes([d[th + 6], d[th + 7]]);
        // The fixed header's addresses are the pseudo header's unless
        // options or extension headers may name another destination.
        let plain_outer = th - nh == if plan.outer_is_v6() { 40 } else { 20 };
        if plan.outer_checksum() {
            assert_ne!(check, 0);
            let ip = &d[nh..];
            assert!(
                !plain_outer
                    || add16(naive_packet_pseudo(ip, th - nh, 17), naive_sum(&d[th..])) == 0xffff,
                "outer UDP checksum of datagram {i}"
            );
        } else {
            assert_eq!(check, 0);
        }
        if plan.outer_is_v6() {
            let pl6 = u16::from_be_bytes([d[nh + 4], d[nh + 5]]);
            assert_eq!(usize::from(pl6) + 40, d.len() - nh);
        } else {
            let tl = u16::from_be_bytes([d[nh + 2], d[nh + 3]]);
            assert_eq!(usize::from(tl), d.len() - nh);
            assert_eq!(naive_sum(&d[nh..th]), 0xffff, "outer IPv4 header checksum");
        }
    }
    assert_eq!(inner.split_into(inner_packet, &mut pb, &mut pl, 0), Ok(n));
    for i in 0..n {
        assert_eq!(&datagrams[i][inh..], &pb[i][..pl[i]], "inner packet {i}");
    }
    // Coalescing them back: runs that split into exactly the datagrams.
    let cfg = TunnelCoalesce {
        proto: if mode & 2 != 0 {
            TunnelProto::Geneve
        } else {
            TunnelProto::Vxlan
        },
        frames: frame,
        udp_gro: true,
        outer_csum: plan.outer_checksum(),
    };
    let mut out = vec![0u8; 70_000];
    let mut k = 0;
    while k < n {
        let Ok(run) = coalesce_tunnel(&cfg, &datagrams[k..], &mut out) else {
            k += 1;
            continue;
        };
        assert!(run.count >= 1 && k + run.count <= n);
        if run.count > 1 {
            let again = if frame {
                TunnelGsoPacket::parse_frame(&run.hdr, &out[..run.len])
            } else {
                TunnelGsoPacket::parse(&run.hdr, &out[..run.len])
            }
            .expect("a coalesced run parses");
            let m = again.segment_count();
            assert_eq!(m, run.count);
            let mut rb = vec![vec![0u8; again.max_segment_len()]; m];
            let mut rl = vec![0usize; m];
            assert_eq!(
                again.split_into(&out[..run.len], &mut rb, &mut rl, 0),
                Ok(m)
            );
            for j in 0..m {
                assert_eq!(
                    &rb[j][..rl[j]],
                    datagrams[k + j],
                    "run at {k}, datagram {j}"
                );
            }
        } else {
            assert_eq!(&out[..run.len], datagrams[k]);
        }
        k += run.count;
    }
    // A flipped byte in the second datagram: any outcome but a panic.
    if n >= 2 {
        let mut flipped: Vec<Vec<u8>> = datagrams.iter().map(|d| d.to_vec()).collect();
        let at = usize::from(mode >> 2) * flipped[1].len() / 64;
        if let Some(b) = flipped[1].get_mut(at) {
            *b ^= 0x5a;
        }
        if let Ok(run) = coalesce_tunnel(&cfg, &flipped, &mut out) {
            assert!(run.count >= 1 && run.count <= n);
        }
    }
}
