//! Replays every file under `fuzz/corpus/TARGET/` and
//! `fuzz/regressions/TARGET/` (the committed seeds and every crash ever
//! found, plus anything a local fuzzing run put there) through the same
//! target bodies the fuzzers run, on the stable toolchain, so fixes stay
//! fixed without nightly.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code, missing_docs, clippy::all)]
mod harness;

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(rd) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        files.extend(rd.map(|e| e.unwrap().path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
}

fn replay(target: &str, body: fn(&[u8]), at_least: usize) {
    let files = inputs(target);
    assert!(
        files.len() >= at_least,
        "{target}: only {} inputs committed",
        files.len()
    );
    for f in files {
        let data = std::fs::read(&f).unwrap();
        if let Err(e) = std::panic::catch_unwind(|| body(&data)) {
            std::panic::resume_unwind(Box::new(format!(
                "{}: {:?}",
                f.display(),
                e.downcast_ref::<String>()
            )));
        }
    }
}

#[test]
fn virtio_header_corpus() {
    replay("virtio_header", harness::virtio_header, 10);
}

#[test]
fn receive_corpus() {
    replay("receive", harness::receive, 48);
}

#[test]
fn transmit_corpus() {
    replay("transmit", harness::transmit, 10);
}

#[test]
fn round_trip_corpus() {
    replay("round_trip", harness::round_trip, 4);
}

#[test]
fn tunnel_corpus() {
    replay("tunnel", harness::tunnel, 12);
}

mod common;

/// Writes the seed corpora (kept in git): run with
/// `cargo test -p tun-offload --test fuzz_corpus -- --ignored write_seeds`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand when the seeds change"]
fn write_seeds() {
    use common::{Ip, tcp, udp};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    };
    // Kernel captures: whole reads for the receive target (2048-byte
    // buffers, no headroom, 64 of them), headers for the virtio target.
    let captures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut names: Vec<_> = std::fs::read_dir(&captures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        let raw = std::fs::read(&p).unwrap();
        let mut seed = vec![8u8, 0, 64];
        seed.extend_from_slice(&raw);
        write("receive", &stem, &seed);
        write("virtio_header", &stem, &raw[..12]);
    }

    // The table cases of wireguard-go's Test_handleGRO (tun/offload_linux_test.go),
    // as [flags][len lo][len hi][bytes]...
    let a = Ip::v4([192, 0, 2, 1], [192, 0, 2, 2]);
    let c = Ip::v4([192, 0, 2, 1], [192, 0, 2, 3]);
    let a6 = Ip::v6("2001:db8::1", "2001:db8::2");
    let c6 = Ip::v6("2001:db8::1", "2001:db8::3");
    let t = |ip: &Ip, seq: u32, flags: u8| tcp(ip, 1, 1, seq, 1, flags, &[], &[seq as u8; 100]);
    let u = |ip: &Ip| udp(ip, 1, 1, &[7u8; 100]);
    let batch = |flags: u8, pkts: &[Vec<u8>]| {
        let mut out = vec![flags];
        for p in pkts {
            out.extend_from_slice(&(p.len() as u16).to_le_bytes());
            out.extend_from_slice(p);
        }
        out
    };
    let eleven = vec![
        t(&a, 1, 0x10),
        u(&a),
        u(&c),
        t(&a, 101, 0x10),
        t(&c, 201, 0x10),
        t(&a6, 1, 0x10),
        t(&a6, 101, 0x10),
        t(&c6, 201, 0x10),
        u(&a),
        u(&a6),
        u(&a6),
    ];
    write("transmit", "mixed-udp-gro", &batch(1, &eleven));
    write("transmit", "mixed-no-udp-gro", &batch(0, &eleven));
    let psh = vec![
        t(&a, 1, 0x10),
        t(&a, 101, 0x18),
        t(&a, 201, 0x10),
        t(&a, 301, 0x10),
        t(&a6, 1, 0x10),
        t(&a6, 101, 0x18),
        t(&a6, 201, 0x10),
        t(&a6, 301, 0x10),
    ];
    write("transmit", "psh-interleaved", &batch(1, &psh));
    let mut bad = vec![
        t(&a, 1, 0x10),
        t(&a, 101, 0x10),
        t(&a, 201, 0x10),
        u(&a),
        u(&a),
        u(&a),
    ];
    bad[0][36] ^= 0xff;
    bad[3][26] ^= 0xff;
    write("transmit", "bad-checksum-head", &batch(1, &bad));
    write(
        "transmit",
        "out-of-order",
        &batch(1, &[t(&a, 101, 0x10), t(&a, 1, 0x10), t(&a, 201, 0x10)]),
    );
    type Tweak = fn(&mut Ip);
    let tweaks: [(&str, Tweak); 7] = [
        ("ttl", |ip| ip.ttl = 63),
        ("tos", |ip| ip.tos = 0x10),
        ("df", |ip| ip.df = true),
        ("mf", |ip| ip.mf = true),
        ("hop-limit", |ip| ip.ttl = 63),
        ("traffic-class", |ip| ip.tos = 0x10),
        ("flow-label", |ip| ip.flow_label = 0x12345),
    ];
    for (k, (name, tweak)) in tweaks.iter().enumerate() {
        let base = if k < 4 { a.clone() } else { a6.clone() };
        let mut other = base.clone();
        tweak(&mut other);
        write(
            "transmit",
            &format!("unequal-{name}"),
            &batch(
                1,
                &[t(&base, 1, 0x10), t(&other, 101, 0x10), u(&base), u(&other)],
            ),
        );
    }
    let long: Vec<Vec<u8>> = (0..50u32)
        .map(|i| tcp(&a, 1, 1, 1 + i * 1400, 1, 0x10, &[], &[i as u8; 1400]))
        .collect();
    write("transmit", "cap-65535", &batch(0, &long));

    // Round trip: byte strings that decode to a variety of parameters.
    for (k, seed) in [
        &[0u8; 32][..],
        &[
            1, 1, 3, 0xa8, 0x05, 45, 0, 0, 0xff, 0xff, 0xff, 0xf0, 0x12, 0x34, 64, 1, 9,
        ][..],
        &[0, 0, 0, 0xb0, 0x04, 55, 0x10, 0, 1, 2, 3, 4, 5, 6, 7, 0, 3][..],
        &[
            1, 0, 10, 100, 0, 3, 50, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 1, 0,
        ][..],
    ]
    .iter()
    .enumerate()
    {
        write("round_trip", &format!("seed-{k}"), seed);
    }

    // Tunnel super-packets: [size selector][offset][buffer count][mode] +
    // 24-byte header + packet; VXLAN and Geneve, v4 and v6 outside and
    // inside, TCP and UDP, with and without the outer checksum, TUN and TAP.
    use common::tunnel::{Tunnel, tunnel_super};
    let v4o = Ip::v4([192, 0, 2, 1], [192, 0, 2, 2]);
    let v6o = Ip::v6("2001:db8::1", "2001:db8::2");
    let v4i = Ip::v4([10, 0, 0, 1], [10, 0, 0, 2]);
    let v6i = Ip::v6("fd00::1", "fd00::2");
    let payload: Vec<u8> = (0..4000u32).map(|i| (i * 7) as u8).collect();
    for (k, (outer, inner_ip, is_tcp, csum, tap, geneve)) in [
        (&v4o, &v4i, true, true, false, false),
        (&v4o, &v6i, false, false, false, false),
        (&v6o, &v4i, false, true, true, false),
        (&v6o, &v6i, true, false, true, false),
        (&v4o, &v4i, false, true, false, true),
        (&v6o, &v6i, true, true, false, true),
        (&v4o, &v6i, true, false, true, true),
        (&v6o, &v4i, false, false, true, true),
    ]
    .into_iter()
    .enumerate()
    {
        let inner = if is_tcp {
            tcp(inner_ip, 1000, 2000, 0xffff_f000, 1, 0x18, &[], &payload)
        } else {
            udp(inner_ip, 1000, 2000, &payload)
        };
        let tunnel = if geneve {
            Tunnel::Geneve {
                vni: 77,
                options: vec![1, 2, 3, 4, 5, 6, 7, 8],
            }
        } else {
            Tunnel::Vxlan { vni: 77 }
        };
        let (hdr, pkt) = tunnel_super(outer, csum, &tunnel, inner, 1200, tap);
        let parsed = if tap {
            tun_offload::TunnelGsoPacket::parse_frame(&hdr, &pkt)
        } else {
            tun_offload::TunnelGsoPacket::parse(&hdr, &pkt)
        };
        assert_eq!(parsed.map(|p| p.segment_count()), Ok(4), "seed {k}");
        let mode = u8::from(tap) | u8::from(geneve) << 1 | (k as u8 * 29) << 2;
        let mut seed = vec![8u8, 3, 64, mode];
        seed.extend_from_slice(&hdr.to_bytes());
        seed.extend_from_slice(&pkt);
        write("tunnel", &format!("tunnel-{k}"), &seed);
        // Too few buffers, then an inner csum_start one word off.
        if k < 2 {
            seed[2] = 2;
            write("tunnel", &format!("tunnel-{k}-short"), &seed);
            let mut bad = hdr;
            bad.hdr.set_csum_start(hdr.hdr.csum_start() + 4);
            seed[4..28].copy_from_slice(&bad.to_bytes());
            write("tunnel", &format!("tunnel-{k}-bad-csum-start"), &seed);
        }
    }
}

/// The round-trip body on generated inputs, beyond the committed corpus:
/// every field the kernel's rules look at (window, AE/reserved bits,
/// ECE/CWR, TOS, DF, IPv4 ID) is drawn, so a split and a coalescing that
/// disagree on one show up without a fuzzer.
#[test]
fn round_trip_generated() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        let mut data = [0u8; 64];
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        harness::round_trip(&data);
    }
}
