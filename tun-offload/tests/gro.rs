//! Transmit path: the table cases of wireguard-go's `Test_handleGRO`
//! (tun/offload_linux_test.go),
//! candidate classification, and property tests of the coalescing table.

mod common;

use common::{Ip, as_super, tcp, udp, verify};
use proptest::prelude::*;
use tun_offload::Kind;
use tun_offload::gro::{self, Candidate, GroTable, Merge, Refusal, Run};
use tun_offload::{GroError, GsoPacket, GsoType, HdrFlags, VirtioNetHdr, complete_checksum, split};

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const OFF: usize = VirtioNetHdr::LEN;
const CAP: usize = 65535 + OFF + 100;

/// DF set, as a Linux sender with path MTU discovery sends: the IPv4 IDs of
/// these fixtures are all equal, which the kernel merges only with DF.
fn a() -> Ip {
    let mut ip = Ip::v4([192, 0, 2, 1], [192, 0, 2, 2]);
    ip.df = true;
    ip
}
fn a_c() -> Ip {
    let mut ip = Ip::v4([192, 0, 2, 1], [192, 0, 2, 3]);
    ip.df = true;
    ip
}
fn a6() -> Ip {
    Ip::v6("2001:db8::1", "2001:db8::2")
}
fn a6_c() -> Ip {
    Ip::v6("2001:db8::1", "2001:db8::3")
}

fn t(ip: &Ip, seq: u32, flags: u8) -> Vec<u8> {
    tcp(ip, 1, 1, seq, 1, flags, &[], &[seq as u8; 100])
}
fn u(ip: &Ip) -> Vec<u8> {
    udp(ip, 1, 1, &[7u8; 100])
}

/// Buffers with the packet at OFF and spare room behind it.
fn batch(pkts: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<usize>) {
    common::batch_in(pkts, OFF, CAP)
}

/// Written indices, their lengths, and each one's header and completed packet.
type Written = (Vec<usize>, Vec<usize>, Vec<(VirtioNetHdr, Vec<u8>)>);

/// Coalesce and check every written packet: its header is zero or a valid
/// GSO header, and once its checksum is completed it verifies.
fn run(table: &mut GroTable, pkts: &[Vec<u8>]) -> Written {
    let (mut bufs, mut lens) = batch(pkts);
    let idx = table.coalesce(&mut bufs, &mut lens, OFF).unwrap().to_vec();
    let mut out = Vec::new();
    for &i in &idx {
        let hdr = VirtioNetHdr::decode(&bufs[i]).unwrap();
        let mut p = bufs[i][OFF..OFF + lens[i]].to_vec();
        if hdr == VirtioNetHdr::ZERO {
            assert_eq!(p, pkts[i], "a packet written alone is untouched");
        } else {
            assert_eq!(hdr.flags(), HdrFlags::NEEDS_CSUM);
            assert!(p.len() <= 65535);
            let mut done = p.clone();
            complete_checksum(&hdr, &mut done).unwrap();
            verify(&done);
            // The kernel's view: splitting it gives valid segments of gso_size.
            let plan = GsoPacket::parse(&hdr, &p).unwrap();
            let mut segs = vec![vec![0u8; plan.max_segment_len()]; plan.segment_count()];
            let mut sizes = vec![0; plan.segment_count()];
            let n = split(&hdr, &p, &mut segs, &mut sizes, 0).unwrap();
            for k in 0..n {
                verify(&segs[k][..sizes[k]]);
            }
            p = done;
        }
        out.push((hdr, p));
    }
    let lens_out = idx.iter().map(|&i| lens[i]).collect();
    (idx, lens_out, out)
}

fn eleven() -> Vec<Vec<u8>> {
    vec![
        t(&a(), 1, ACK),
        u(&a()),
        u(&a_c()),
        t(&a(), 101, ACK),
        t(&a_c(), 201, ACK),
        t(&a6(), 1, ACK),
        t(&a6(), 101, ACK),
        t(&a6_c(), 201, ACK),
        u(&a()),
        u(&a6()),
        u(&a6()),
    ]
}

#[test]
fn mixed_batch_with_udp_gro() {
    let mut table = GroTable::new(true);
    for _ in 0..2 {
        let (idx, lens, out) = run(&mut table, &eleven());
        assert_eq!(idx, [0, 1, 2, 4, 5, 7, 9]);
        assert_eq!(lens, [240, 228, 128, 140, 260, 160, 248]);
        let types: Vec<GsoType> = out.iter().map(|(h, _)| h.gso_type()).collect();
        use GsoType as G;
        assert_eq!(
            types,
            [
                G::TCPV4,
                G::UDP_L4,
                G::NONE,
                G::NONE,
                G::TCPV6,
                G::NONE,
                G::UDP_L4
            ]
        );
        let (h, _) = out[0];
        assert_eq!(
            (h.hdr_len(), h.gso_size(), h.csum_start(), h.csum_offset()),
            (40, 100, 20, 16)
        );
        let (h, _) = out[6];
        assert_eq!(
            (h.hdr_len(), h.gso_size(), h.csum_start(), h.csum_offset()),
            (48, 100, 40, 6)
        );
        let s = table.stats();
        assert_eq!((s.packets_in, s.packets_out, s.segments_merged), (11, 7, 4));
    }
}

#[test]
fn mixed_batch_without_udp_gro() {
    let mut table = GroTable::new(false);
    for _ in 0..2 {
        let (idx, lens, _) = run(&mut table, &eleven());
        assert_eq!(idx, [0, 1, 2, 4, 5, 7, 8, 9, 10]);
        assert_eq!(lens, [240, 128, 128, 140, 260, 160, 128, 148, 148]);
        assert_eq!(table.stats().refused(Refusal::UdpDisabled), 5);
    }
}

#[test]
fn psh_interleaved() {
    let pkts = vec![
        t(&a(), 1, ACK),
        t(&a(), 101, ACK | PSH),
        t(&a(), 201, ACK),
        t(&a(), 301, ACK),
        t(&a6(), 1, ACK),
        t(&a6(), 101, ACK | PSH),
        t(&a6(), 201, ACK),
        t(&a6(), 301, ACK),
    ];
    let mut table = GroTable::new(true);
    for _ in 0..2 {
        let (idx, lens, out) = run(&mut table, &pkts);
        assert_eq!(idx, [0, 2, 4, 6]);
        assert_eq!(lens, [240, 240, 260, 260]);
        // The PSH of the appended segment ends up on the merged packet.
        assert_eq!(out[0].1[33], ACK | PSH);
        assert_eq!(out[1].1[33], ACK);
    }
}

#[test]
fn bad_checksum_at_the_head_of_a_run() {
    let mut pkts = vec![
        t(&a(), 1, ACK),
        t(&a(), 101, ACK),
        t(&a(), 201, ACK),
        u(&a()),
        u(&a()),
        u(&a()),
    ];
    pkts[0][36] ^= 0xff; // TCP checksum
    pkts[3][26] ^= 0xff; // UDP checksum
    let mut table = GroTable::new(true);
    for _ in 0..2 {
        let (mut bufs, mut lens) = batch(&pkts);
        // Dirty header room, to prove the removed run's header is zeroed.
        for b in &mut bufs {
            b[..OFF].fill(0x55);
        }
        let idx = table.coalesce(&mut bufs, &mut lens, OFF).unwrap().to_vec();
        assert_eq!(idx, [0, 1, 3, 4]);
        assert_eq!(
            idx.iter().map(|&i| lens[i]).collect::<Vec<_>>(),
            [140, 240, 128, 228]
        );
        assert_eq!(VirtioNetHdr::decode(&bufs[0]).unwrap(), VirtioNetHdr::ZERO);
        assert_eq!(VirtioNetHdr::decode(&bufs[3]).unwrap(), VirtioNetHdr::ZERO);
        assert_eq!(table.stats().bad_checksum, 2);
    }
}

#[test]
fn out_of_order_prepends() {
    let pkts = vec![t(&a(), 101, ACK), t(&a(), 1, ACK), t(&a(), 201, ACK)];
    let mut table = GroTable::new(true);
    for _ in 0..2 {
        let (idx, lens, out) = run(&mut table, &pkts);
        assert_eq!((idx, lens), (vec![0], vec![340]));
        let p = verify(&out[0].1);
        assert_eq!(p.seq, 1);
        let want: Vec<u8> = [1u8, 101, 201].iter().flat_map(|&b| [b; 100]).collect();
        assert_eq!(p.payload, want);
    }
}

#[test]
fn unequal_ip_fields_never_coalesce() {
    type Tweak = fn(&mut Ip);
    let v4: [(&str, Tweak); 4] = [
        ("ttl", |ip| ip.ttl = 63),
        ("tos", |ip| ip.tos = 0x10),
        ("df", |ip| ip.df = false),
        ("mf", |ip| ip.mf = true),
    ];
    let v6: [(&str, Tweak); 3] = [
        ("hop limit", |ip| ip.ttl = 63),
        ("traffic class", |ip| ip.tos = 0x10),
        ("flow label", |ip| ip.flow_label = 0x12345),
    ];
    let mut table = GroTable::new(true);
    let cases = v4
        .iter()
        .map(|c| (a(), *c))
        .chain(v6.iter().map(|c| (a6(), *c)));
    for (base, (name, tweak)) in cases {
        let mut other = base.clone();
        tweak(&mut other);
        for pkts in [
            vec![t(&base, 1, ACK), t(&other, 101, ACK)],
            vec![u(&base), u(&other)],
        ] {
            for _ in 0..2 {
                let (idx, _, out) = run(&mut table, &pkts);
                assert_eq!(idx, [0, 1], "{name}");
                assert!(out.iter().all(|(h, _)| *h == VirtioNetHdr::ZERO), "{name}");
            }
        }
    }
}

#[test]
fn tcp_options_must_match() {
    let ts1 = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    let ts2 = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 2];
    let p = |seq: u32, o: &[u8]| tcp(&a(), 1, 1, seq, 1, ACK, o, &[0u8; 100]);
    let mut table = GroTable::new(false);
    assert_eq!(run(&mut table, &[p(1, &ts1), p(101, &ts1)]).0, [0]);
    assert_eq!(run(&mut table, &[p(1, &ts1), p(101, &ts2)]).0, [0, 1]);
    assert_eq!(run(&mut table, &[p(1, &ts1), p(101, &[])]).0, [0, 1]);
}

#[test]
fn merged_length_is_capped_at_65535_whatever_the_capacity() {
    let pkts: Vec<Vec<u8>> = (0..50u32)
        .map(|i| tcp(&a(), 1, 1, 1 + i * 1460, 1, ACK, &[], &[i as u8; 1460]))
        .collect();
    let mut table = GroTable::new(false);
    let (idx, lens, _) = run(&mut table, &pkts);
    assert!(lens.iter().all(|&l| l <= 65535), "{lens:?}");
    assert_eq!(idx.len(), 2);
    assert_eq!(lens[0], 40 + 44 * 1460);
    assert_eq!(table.stats().too_large, 1);
}

#[test]
fn no_room_in_the_buffer_means_no_merge() {
    let pkts = [t(&a(), 1, ACK), t(&a(), 101, ACK), t(&a(), 201, ACK)];
    let mut bufs: Vec<Vec<u8>> = pkts
        .iter()
        .map(|p| {
            let mut b = vec![0u8; OFF + p.len()]; // exactly the packet, no spare capacity
            b[OFF..].copy_from_slice(p);
            b
        })
        .collect();
    let mut lens: Vec<usize> = pkts.iter().map(Vec::len).collect();
    let mut table = GroTable::new(false);
    let idx = table.coalesce(&mut bufs, &mut lens, OFF).unwrap().to_vec();
    // Packet 1 cannot grow into buffer 0; it starts its own run, which
    // cannot grow either.
    assert_eq!(idx, [0, 1, 2]);
    assert_eq!(table.stats().no_room, 2);
}

#[test]
fn batch_shape_errors() {
    let mut table = GroTable::new(true);
    let mut bufs = vec![vec![0u8; 100]; 2];
    assert_eq!(
        table.coalesce(&mut bufs, &mut [10, 10], 9).unwrap_err(),
        GroError::NoHeaderRoom {
            offset: 9,
            required: 10
        }
    );
    assert_eq!(
        table.coalesce(&mut bufs, &mut [10], 10).unwrap_err(),
        GroError::LengthsMismatch { bufs: 2, lens: 1 }
    );
    assert_eq!(
        table.coalesce(&mut bufs, &mut [10, 91], 10).unwrap_err(),
        GroError::PacketOutsideBuffer {
            index: 1,
            end: 101,
            buf_len: 100
        }
    );
    assert_eq!(
        table
            .coalesce(&mut bufs, &mut [usize::MAX, 1], 10)
            .unwrap_err(),
        GroError::PacketOutsideBuffer {
            index: 0,
            end: usize::MAX,
            buf_len: 100
        }
    );
    assert_eq!(
        GroError::PacketOutsideBuffer {
            index: 1,
            end: 101,
            buf_len: 100
        }
        .to_string(),
        "packet 1 ends at byte 101 of a 100-byte buffer"
    );
    assert_eq!(
        GroError::NoHeaderRoom {
            offset: 9,
            required: 10
        }
        .to_string(),
        "offset 9 leaves no room for the 10-byte virtio header"
    );
    assert_eq!(
        GroError::LengthsMismatch { bufs: 2, lens: 1 }.to_string(),
        "2 buffers but 1 lengths"
    );
}

#[test]
fn classification() {
    let ok = gro::classify(&t(&a(), 1, ACK | PSH), true).unwrap();
    assert_eq!(
        ok,
        Candidate {
            kind: Kind::Tcp4,
            ip_header_len: 20,
            l4_header_len: 20,
            payload_len: 100,
            seq: 1,
            psh: true
        }
    );
    assert_eq!(gro::classify(&u(&a6()), true).unwrap().kind, Kind::Udp6);

    let r = |p: &[u8]| gro::classify(p, true).unwrap_err();
    assert_eq!(r(&[]), Refusal::TooShort);
    assert_eq!(r(&t(&a(), 1, ACK)[..19]), Refusal::TooShort);
    assert_eq!(r(&t(&a6(), 1, ACK)[..39]), Refusal::TooShort);
    // Too short for TCP / UDP behind a valid IP header.
    let mut short_tcp = t(&a(), 1, ACK)[..30].to_vec();
    short_tcp[2..4].copy_from_slice(&30u16.to_be_bytes());
    assert_eq!(r(&short_tcp), Refusal::TooShort);
    let mut short_udp = u(&a())[..24].to_vec();
    short_udp[2..4].copy_from_slice(&24u16.to_be_bytes());
    assert_eq!(r(&short_udp), Refusal::TooShort);
    let mut p = t(&a(), 1, ACK);
    p[0] = 0x55;
    assert_eq!(r(&p), Refusal::BadIpVersion);
    let mut p = t(&a(), 1, ACK);
    p[0] = 0x46;
    assert_eq!(r(&p), Refusal::Ipv4Options);
    let mut ip = a();
    ip.mf = true;
    assert_eq!(r(&t(&ip, 1, ACK)), Refusal::Fragment);
    let mut p = t(&a(), 1, ACK);
    p[7] = 8; // fragment offset
    assert_eq!(r(&p), Refusal::Fragment);
    let mut p = t(&a6(), 1, ACK);
    p[6] = 0; // hop-by-hop extension header
    assert_eq!(r(&p), Refusal::Ipv6ExtensionHeaders);
    let mut p = t(&a(), 1, ACK);
    p[9] = 1; // ICMP
    assert_eq!(r(&p), Refusal::NotTcpOrUdp);
    let mut p = t(&a(), 1, ACK);
    p.push(0); // buffer longer than the IP length says
    assert_eq!(r(&p), Refusal::LengthMismatch);
    let mut p = t(&a6(), 1, ACK);
    p.pop();
    assert_eq!(r(&p), Refusal::LengthMismatch);
    let mut p = u(&a());
    p[24..26].copy_from_slice(&50u16.to_be_bytes()); // UDP length
    assert_eq!(r(&p), Refusal::LengthMismatch);
    for flags in [
        0,
        PSH,
        ACK | 0x01,
        ACK | 0x02,
        ACK | 0x04,
        ACK | 0x20,
        // CWR: only a table told that TSO_ECN was negotiated lets it lead a run.
        ACK | 0x80,
    ] {
        assert_eq!(r(&t(&a(), 1, flags)), Refusal::TcpFlags, "flags {flags:#x}");
    }
    let mut p = t(&a(), 1, ACK);
    p[32] = 0x40;
    assert_eq!(r(&p), Refusal::BadTcpHeader);
    assert_eq!(
        r(&tcp(&a(), 1, 1, 1, 1, ACK, &[], &[])),
        Refusal::EmptyPayload
    );
    assert_eq!(r(&udp(&a(), 1, 1, &[])), Refusal::EmptyPayload);
    assert_eq!(
        gro::classify(&u(&a()), false).unwrap_err(),
        Refusal::UdpDisabled
    );
    let big = vec![0x45u8; 65536];
    assert_eq!(r(&big), Refusal::TooLong);
    assert_eq!(
        Refusal::TcpFlags.to_string(),
        "TCP flags other than ACK with PSH, ECE or CWR"
    );
    // ECE merges like any flag that stays equal (tcp_gro_receive).
    assert!(gro::classify(&t(&a(), 1, ACK | 0x40), true).is_ok());
}

#[test]
fn merge_rules() {
    let run = Run {
        seq: 1000,
        payload_len: 300,
        gso_size: 100,
        merged: 2,
        psh: false,
        closed: false,
    };
    assert_eq!(gro::tcp_merge(&run, 1300, 100, false), Some(Merge::Append));
    assert_eq!(gro::tcp_merge(&run, 1300, 50, true), Some(Merge::Append));
    assert_eq!(
        gro::tcp_merge(&run, 1300, 101, false),
        None,
        "larger than the segment size"
    );
    assert_eq!(
        gro::tcp_merge(&Run { psh: true, ..run }, 1300, 100, false),
        None,
        "after PSH"
    );
    assert_eq!(
        gro::tcp_merge(
            &Run {
                closed: true,
                ..run
            },
            1300,
            100,
            false
        ),
        None,
        "after a short one"
    );
    assert_eq!(gro::tcp_merge(&run, 900, 100, false), Some(Merge::Prepend));
    assert_eq!(
        gro::tcp_merge(&run, 900, 100, true),
        None,
        "PSH cannot lead"
    );
    assert_eq!(
        gro::tcp_merge(&run, 950, 50, false),
        None,
        "shorter cannot lead"
    );
    assert_eq!(
        gro::tcp_merge(&run, 880, 120, false),
        None,
        "larger after merges"
    );
    let single = Run { merged: 0, ..run };
    assert_eq!(
        gro::tcp_merge(&single, 880, 120, false),
        Some(Merge::Prepend)
    );
    assert_eq!(gro::tcp_merge(&run, 1301, 100, false), None, "gap");
    let wrap = Run {
        seq: u32::MAX - 99,
        payload_len: 100,
        ..run
    };
    assert_eq!(gro::tcp_merge(&wrap, 0, 100, false), Some(Merge::Append));
    assert!(gro::udp_merge(&run, 100) && gro::udp_merge(&run, 1));
    assert!(
        !gro::udp_merge(&run, 101)
            && !gro::udp_merge(
                &Run {
                    closed: true,
                    ..run
                },
                10
            )
    );

    let (x, y) = (t(&a(), 1, ACK), t(&a(), 101, ACK));
    assert!(gro::ip_headers_match(&x, &y, false));
    let mut ip = a();
    ip.ttl = 1;
    assert!(!gro::ip_headers_match(&x, &t(&ip, 101, ACK), false));
    assert!(gro::tcp_headers_match(&x[20..], &y[20..]));
    assert!(!gro::tcp_headers_match(&x[20..], &[0u8; 10]));
}

#[test]
fn udp_never_overtakes_a_refused_datagram() {
    let mut bad = u(&a());
    bad[26] ^= 1;
    let pkts = vec![u(&a()), bad, u(&a()), udp(&a(), 1, 1, &[]), u(&a())];
    let mut table = GroTable::new(true);
    let (idx, _, _) = run(&mut table, &pkts);
    // 0 cannot absorb 2 (1 would be overtaken), 2 cannot absorb 4 (3 would be).
    assert_eq!(idx, [0, 1, 2, 3, 4]);
}

/// Split a generated super-packet with the receive path, coalesce the
/// segments, and get the original back.
fn round_trip(
    ip: Ip,
    is_tcp: bool,
    options: Vec<u8>,
    gso: u16,
    payload: Vec<u8>,
    seq: u32,
    psh: bool,
) {
    let orig = if is_tcp {
        tcp(
            &ip,
            4000,
            5000,
            seq,
            99,
            ACK | if psh { PSH } else { 0 },
            &options,
            &payload,
        )
    } else {
        udp(&ip, 4000, 5000, &payload)
    };
    let (hdr, sup) = as_super(orig, gso);
    let mut segs = vec![vec![0u8; CAP]; 64];
    let mut sizes = vec![0; 64];
    let n = split(&hdr, &sup, &mut segs, &mut sizes, OFF).unwrap();
    segs.truncate(n);
    sizes.truncate(n);
    let mut table = GroTable::new(true);
    let idx = table.coalesce(&mut segs, &mut sizes, OFF).unwrap().to_vec();
    assert_eq!(idx, [0]);
    let got_hdr = VirtioNetHdr::decode(&segs[0]).unwrap();
    let got = &segs[0][OFF..OFF + sizes[0]];
    if n == 1 {
        // One segment is written as a complete packet.
        assert_eq!(got_hdr, VirtioNetHdr::ZERO);
        let mut done = sup.clone();
        complete_checksum(&hdr, &mut done).unwrap();
        // The split stores a zero TCP checksum as 0 (as the kernel's
        // segmentation does), complete_checksum as 0xffff (as its
        // skb_checksum_help does): both forms of zero, nothing else apart.
        let at = usize::from(hdr.csum_start() + hdr.csum_offset());
        if got[at..at + 2] == [0, 0] && done[at..at + 2] == [0xff, 0xff] {
            done[at..at + 2].copy_from_slice(&[0, 0]);
        }
        assert_eq!(got, &done[..]);
    } else {
        assert_eq!(got_hdr, hdr);
        assert_eq!(got, &sup[..]);
    }
}

/// Split with partial checksums, each segment behind its own NEEDS_CSUM
/// header (as tun-device's receive engine hands them over), then coalesced
/// with `set_partial_checksums`: in place and planned, the original
/// super-packet comes back without a checksum being verified; a single
/// segment is written alone behind its own header, for the kernel to
/// complete. Without the mode the same segments fail the checksum check.
fn partial_round_trip(ip: Ip, is_tcp: bool, gso: u16, payload: Vec<u8>, seq: u32) {
    let orig = if is_tcp {
        tcp(&ip, 4000, 5000, seq, 99, ACK, &[], &payload)
    } else {
        udp(&ip, 4000, 5000, &payload)
    };
    let (hdr, sup) = as_super(orig, gso);
    let plan = GsoPacket::parse(&hdr, &sup).unwrap();
    let n = plan.segment_count();
    let mut segs = vec![vec![0u8; CAP]; n];
    let mut sizes = vec![0; n];
    assert_eq!(
        plan.split_into_partial(&sup, &mut segs, &mut sizes, OFF),
        Ok(n)
    );
    for s in &mut segs {
        s[..OFF].copy_from_slice(&plan.partial_hdr().to_bytes());
    }
    let mut table = GroTable::new(true);
    table.set_partial_checksums(true);
    let runs: Vec<(VirtioNetHdr, Vec<u8>)> = table
        .plan(&segs, &sizes, OFF)
        .unwrap()
        .iter()
        .map(|r| {
            let bytes: Vec<u8> = r.slices(&segs).unwrap().flatten().copied().collect();
            (r.hdr(), bytes)
        })
        .collect();
    assert_eq!(table.stats().bad_checksum, 0);
    assert_eq!(runs.len(), 1);
    let (got_hdr, bytes) = &runs[0];
    assert_eq!(&bytes[..OFF], &got_hdr.to_bytes()[..]);
    let got = &bytes[OFF..];
    if n == 1 {
        assert_eq!(*got_hdr, plan.partial_hdr());
        let mut done = got.to_vec();
        complete_checksum(got_hdr, &mut done).unwrap();
        verify(&done);
    } else {
        assert_eq!(*got_hdr, hdr);
        assert_eq!(got, &sup[..]);
    }
    let mut inplace = segs.clone();
    let mut lens = sizes.clone();
    assert_eq!(table.coalesce(&mut inplace, &mut lens, OFF).unwrap(), [0]);
    assert_eq!(&inplace[0][..OFF + lens[0]], &bytes[..]);
    if n > 1 {
        let mut strict = GroTable::new(true);
        strict.plan(&segs, &sizes, OFF).unwrap();
        assert!(
            strict.stats().bad_checksum > 0,
            "partial sums verified as complete ones"
        );
    }
}

#[test]
fn partial_segments_coalesce_without_verification() {
    let payload: Vec<u8> = (0..5000u32).map(|i| (i * 13) as u8).collect();
    for ip in [a(), a6()] {
        for is_tcp in [true, false] {
            partial_round_trip(ip.clone(), is_tcp, 1200, payload.clone(), 7);
            partial_round_trip(ip.clone(), is_tcp, 1200, payload[..900].to_vec(), 7);
        }
    }
}

/// A packet whose own header is all zero is verified as ever with partial
/// checksums on; a bad one is written alone and ends its flow's run; a
/// header that says GSO vouches for nothing and is not written.
#[test]
fn partial_checksums_verify_packets_without_a_header_or_behind_a_gso_one() {
    let ip = a();
    let mut pkts = [t(&ip, 1, ACK), t(&ip, 101, ACK), t(&ip, 201, ACK)];
    let bad = pkts[1].len() - 1;
    pkts[1][bad] ^= 0xff;
    let (mut bufs, lens) = batch(&pkts);
    // The all-zero header in front of each (batch() leaves filler there).
    bufs.iter_mut().for_each(|b| b[..OFF].fill(0));
    // Packet 1's own header says GSO besides NEEDS_CSUM: not what a
    // receiver leaving checksums partial writes, so it vouches for nothing
    // and its bad checksum is found.
    let gso = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::TCPV4, 40, 100, 20, 16);
    bufs[1][..OFF].copy_from_slice(&gso.to_bytes());
    let mut table = GroTable::new(true);
    table.set_partial_checksums(true);
    let plan = table.plan(&bufs, &lens, OFF).unwrap();
    let hdrs: Vec<VirtioNetHdr> = plan.iter().map(|r| r.hdr()).collect();
    assert_eq!(plan.len(), 3, "the bad packet ends the run: nothing merges");
    assert_eq!(hdrs, [VirtioNetHdr::ZERO; 3]);
    assert_eq!(table.stats().bad_checksum, 1);
    // A DATA_VALID header without GSO vouches: the bad packet merges.
    let valid = VirtioNetHdr::new(HdrFlags::DATA_VALID, GsoType::NONE, 0, 0, 0, 0);
    bufs[1][..OFF].copy_from_slice(&valid.to_bytes());
    assert_eq!(table.plan(&bufs, &lens, OFF).unwrap().len(), 1);
    assert_eq!(
        table.plan(&bufs, &lens, 4).unwrap_err(),
        GroError::NoHeaderRoom {
            offset: 4,
            required: OFF
        }
    );
}

/// A datagram whose own header leaves another checksum partial (the inner
/// one of a tunnel datagram, local checksum offload) never merges: it is
/// written as it is behind that header, a barrier for its flow.
#[test]
fn a_partial_checksum_elsewhere_is_written_alone_behind_its_header() {
    let ip = a();
    let (mut bufs, lens) = batch(&[u(&ip), u(&ip), u(&ip)]);
    bufs.iter_mut().for_each(|b| b[..OFF].fill(0));
    let inner = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::NONE, 0, 0, 28 + 36, 16);
    for b in &mut bufs[..2] {
        b[..OFF].copy_from_slice(&inner.to_bytes());
    }
    let mut table = GroTable::new(true);
    table.set_partial_checksums(true);
    table.set_checksums_verified(true);
    let hdrs: Vec<VirtioNetHdr> = table
        .plan(&bufs, &lens, OFF)
        .unwrap()
        .iter()
        .map(|r| r.hdr())
        .collect();
    assert_eq!(hdrs, [inner, inner, VirtioNetHdr::ZERO]);
    assert_eq!(table.stats().refused(Refusal::PartialChecksumElsewhere), 2);
    // The same datagrams with their checksum partial at the UDP header merge.
    let own = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::NONE, 0, 0, 20, 6);
    for b in &mut bufs {
        b[..OFF].copy_from_slice(&own.to_bytes());
    }
    assert_eq!(table.plan(&bufs, &lens, OFF).unwrap().len(), 1);
}

/// A single-segment round trip of a TCP packet whose checksum is zero: the
/// split stores it as 0, complete_checksum as 0xffff, and both verify.
#[test]
fn round_trip_of_a_zero_tcp_checksum() {
    let ip = a();
    let mut payload = vec![0u8; 100];
    // The word that makes the sum of everything but the field 0xffff is
    // the packet's current checksum.
    let p = tcp(&ip, 4000, 5000, 1, 99, ACK, &[], &payload);
    payload[..2].copy_from_slice(&p[36..38]);
    let p = tcp(&ip, 4000, 5000, 1, 99, ACK, &[], &payload);
    assert_eq!(&p[36..38], &[0, 0], "the fixture's checksum is zero");
    verify(&p);
    let (hdr, mut sup) = as_super(p.clone(), 1400);
    complete_checksum(&hdr, &mut sup).unwrap();
    assert_eq!(&sup[36..38], &[0xff, 0xff], "CSUM_MANGLED_0");
    verify(&sup);
    round_trip(ip, true, Vec::new(), 1400, payload, 1, false);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn split_then_coalesce_gives_back_the_original(
        v6 in any::<bool>(),
        is_tcp in any::<bool>(),
        opt_words in 0usize..=10,
        gso in 1u16..=1400,
        segments in 1usize..=40,
        short_last in 0usize..1400,
        seq in prop_oneof![any::<u32>(), (u32::MAX - 60_000)..=u32::MAX],
        id in any::<u16>(),
        psh in any::<bool>(),
    ) {
        let mut ip = if v6 { a6() } else { a() };
        ip.id = id;
        let gso_usize = usize::from(gso);
        let last = short_last % gso_usize + 1;
        let hl = if v6 { 40 } else { 20 } + if is_tcp { 20 + opt_words * 4 } else { 8 };
        let max_payload = 65535 - hl;
        let len = ((segments - 1) * gso_usize + last).min(max_payload / gso_usize * gso_usize);
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let options = vec![1u8; opt_words * 4];
        prop_assume!(!payload.is_empty());
        if options.is_empty() && !psh {
            partial_round_trip(ip.clone(), is_tcp, gso, payload.clone(), seq);
        }
        round_trip(ip, is_tcp, options, gso, payload, seq, psh);
    }

    /// Many flows, interleaved, dropped and reordered: never merges across
    /// flows or differing headers, never reorders UDP, never exceeds 65535.
    #[test]
    fn mixed_traffic(
        flows in proptest::collection::vec((any::<bool>(), any::<bool>(), 0u8..3, 100usize..1400), 1..8),
        picks in proptest::collection::vec((any::<prop::sample::Index>(), any::<bool>(), 0u8..10), 1..128),
    ) {
        // Each flow: (v6, tcp, TTL variant, segment size). Each pick sends the
        // flow's next segment (its payload filled with a unique packet id),
        // sometimes after a dropped one, sometimes swapped with the previous
        // packet, sometimes with a different TTL.
        let mut next_seq = vec![1u32; flows.len()];
        let mut pkts: Vec<Vec<u8>> = Vec::new();
        let mut by_id = Vec::new(); // id -> (flow, ttl)
        for (which, ttl_flip, action) in picks {
            let f = which.index(flows.len());
            let (v6, is_tcp, ttl_v, size) = flows[f];
            let mut ip = if v6 { a6() } else { a() };
            ip.ttl = 64 - if ttl_flip { ttl_v } else { 0 };
            let id = by_id.len() as u8;
            by_id.push((f, ip.ttl));
            let payload = vec![id; size];
            if action == 0 {
                next_seq[f] = next_seq[f].wrapping_add(size as u32); // a drop
            }
            let p = if is_tcp {
                let p = tcp(&ip, 1000 + f as u16, 80, next_seq[f], 1, ACK, &[], &payload);
                next_seq[f] = next_seq[f].wrapping_add(size as u32);
                p
            } else {
                udp(&ip, 1000 + f as u16, 80, &payload)
            };
            pkts.push(p);
            if action == 1 && pkts.len() >= 2 {
                let k = pkts.len() - 1;
                pkts.swap(k, k - 1);
            }
        }
        let id_of = |p: &[u8]| p[p.len() - 1];
        let mut table = GroTable::new(true);
        for _ in 0..2 {
            let (idx, lens, out) = run(&mut table, &pkts);
            prop_assert!(lens.iter().all(|&l| l <= 65535));
            let total_in: usize = pkts.iter().map(|p| verify(p).payload.len()).sum();
            let mut total_out = 0;
            for (k, &i) in idx.iter().enumerate() {
                let parsed = verify(&out[k].1);
                total_out += parsed.payload.len();
                let (f, ttl) = by_id[usize::from(id_of(&pkts[i]))];
                let (_, is_tcp, _, size) = flows[f];
                let ids: Vec<u8> = parsed.payload.chunks(size).map(|c| c[0]).collect();
                for (c, &id) in parsed.payload.chunks(size).zip(&ids) {
                    prop_assert!(c.iter().all(|&b| b == id), "a segment is whole");
                    // Never across flows, never across differing headers.
                    prop_assert_eq!(by_id[usize::from(id)], (f, ttl));
                }
                if !is_tcp {
                    // UDP: a run of the flow's datagrams in batch order.
                    let order: Vec<u8> = pkts
                        .iter()
                        .filter(|p| by_id[usize::from(id_of(p))].0 == f && p[if p[0] >> 4 == 4 { 9 } else { 6 }] == 17)
                        .map(|p| id_of(p))
                        .collect();
                    let at = order.iter().position(|&x| x == ids[0]).unwrap();
                    prop_assert_eq!(&order[at..at + ids.len()], &ids[..]);
                }
            }
            prop_assert_eq!(total_in, total_out);
        }
    }

    /// Arbitrary batches of arbitrary bytes never panic, and the written
    /// list is ascending, unique and in range.
    #[test]
    fn arbitrary_batches_never_panic(
        pkts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..32),
        udp in any::<bool>(),
    ) {
        let mut table = GroTable::new(udp);
        for _ in 0..2 {
            let (mut bufs, mut lens) = batch(&pkts);
            let idx = table.coalesce(&mut bufs, &mut lens, OFF).unwrap().to_vec();
            prop_assert!(idx.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(idx.iter().all(|&i| i < pkts.len() && lens[i] <= 65535));
        }
    }
}

/// With the checksums vouched for, good packets coalesce exactly as when
/// they are verified (in place and in a plan), and a bad checksum is no
/// longer looked at: the packet merges (the caller said it was right).
#[test]
fn vouched_checksums_coalesce_as_verified_ones_without_reading_them() {
    let pkts = eleven();
    let mut checked = GroTable::new(true);
    let mut vouched = GroTable::new(true);
    vouched.set_checksums_verified(true);
    assert!(vouched.checksums_verified() && !checked.checksums_verified());
    for _ in 0..2 {
        assert_eq!(run(&mut checked, &pkts), run(&mut vouched, &pkts));
        let (bufs, lens) = batch(&pkts);
        let a: Vec<Vec<u8>> = checked
            .plan(&bufs, &lens, OFF)
            .unwrap()
            .iter()
            .map(|r| r.slices(&bufs).unwrap().flatten().copied().collect())
            .collect();
        let b: Vec<Vec<u8>> = vouched
            .plan(&bufs, &lens, OFF)
            .unwrap()
            .iter()
            .map(|r| r.slices(&bufs).unwrap().flatten().copied().collect())
            .collect();
        assert_eq!(a, b);
    }
    let mut bad = vec![t(&a(), 1, ACK), t(&a(), 101, ACK), t(&a(), 201, ACK)];
    bad[1][36] ^= 0xff;
    let (mut bufs, mut lens) = batch(&bad);
    let idx = vouched
        .coalesce(&mut bufs, &mut lens, OFF)
        .unwrap()
        .to_vec();
    assert_eq!(idx, [0], "vouched for, the bad one merges");
    assert_eq!(vouched.stats().bad_checksum, 0);
    let (mut bufs, mut lens) = batch(&bad);
    let idx = checked
        .coalesce(&mut bufs, &mut lens, OFF)
        .unwrap()
        .to_vec();
    assert_ne!(idx, [0], "verified, it does not");
}
