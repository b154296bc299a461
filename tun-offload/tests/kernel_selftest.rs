//! The cases of the kernel's GRO selftest (tools/testing/selftests/net/lib/gro.c,
//! net/gro.c in older trees), ported to the table: each sends the same
//! packet sequence and expects the same coalescing, or the difference is a
//! deliberate refusal named here and in the `gro` module docs.

mod common;

use common::{Ip, tcp, udp};
use tun_offload::{GroTable, VirtioNetHdr};

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const URG: u8 = 0x20;
const FIN: u8 = 0x01;
const OFF: usize = VirtioNetHdr::LEN;
/// The selftest's payload size.
const PAYLOAD: usize = 1000;

fn ip4() -> Ip {
    let mut ip = Ip::v4([192, 168, 1, 1], [192, 168, 1, 2]);
    ip.df = true;
    ip
}
fn ip6() -> Ip {
    Ip::v6("fdaa::1", "fdaa::2")
}

/// A data segment number `k` of the flow (IPv4 IDs incrementing).
fn data(ip: &Ip, k: u32, len: usize, flags: u8) -> Vec<u8> {
    let mut ip = ip.clone();
    ip.id = ip.id.wrapping_add(k as u16);
    tcp(
        &ip,
        8000,
        8001,
        1 + k * PAYLOAD as u32,
        1,
        flags,
        &[],
        &vec![k as u8; len],
    )
}

/// Coalesce and give the payload length of every written packet.
fn payloads(pkts: &[Vec<u8>]) -> Vec<usize> {
    let mut bufs: Vec<Vec<u8>> = pkts
        .iter()
        .map(|p| {
            let mut b = vec![0u8; OFF + 65_535];
            b[OFF..OFF + p.len()].copy_from_slice(p);
            b
        })
        .collect();
    let mut lens: Vec<usize> = pkts.iter().map(Vec::len).collect();
    let mut table = GroTable::new(true);
    let idx = table.coalesce(&mut bufs, &mut lens, OFF).unwrap().to_vec();
    idx.iter()
        .map(|&i| {
            let p = &bufs[i][OFF..OFF + lens[i]];
            let ip_hl = if p[0] >> 4 == 4 { 20 } else { 40 };
            let l4_hl = if p[if ip_hl == 20 { 9 } else { 6 }] == 6 {
                usize::from(p[ip_hl + 12] >> 4) * 4
            } else {
                8
            };
            p.len() - ip_hl - l4_hl
        })
        .collect()
}

fn both(f: impl Fn(&Ip) -> (Vec<Vec<u8>>, Vec<usize>)) {
    for ip in [ip4(), ip6()] {
        let (pkts, want) = f(&ip);
        assert_eq!(payloads(&pkts), want, "{:?}", ip.src);
    }
}

#[test]
fn data_same_size_coalesces() {
    both(|ip| {
        (
            (0..3).map(|k| data(ip, k, PAYLOAD, ACK)).collect(),
            vec![3 * PAYLOAD],
        )
    });
}

#[test]
fn data_large_then_small_coalesces_small_then_large_does_not() {
    both(|ip| {
        (
            vec![data(ip, 0, PAYLOAD, ACK), data(ip, 1, PAYLOAD / 2, ACK)],
            vec![1500],
        )
    });
    both(|ip| {
        (
            vec![data(ip, 0, PAYLOAD / 2, ACK), {
                let mut q = ip.clone();
                q.id = q.id.wrapping_add(1);
                tcp(&q, 8000, 8001, 1 + 500, 1, ACK, &[], &[1; PAYLOAD])
            }],
            vec![500, PAYLOAD],
        )
    });
}

#[test]
fn pure_ack_is_not_coalesced_and_ends_the_run() {
    both(|ip| {
        let mut q = ip.clone();
        q.id = 1;
        (
            vec![
                data(ip, 0, PAYLOAD, ACK),
                tcp(&q, 8000, 8001, 1 + PAYLOAD as u32, 1, ACK, &[], &[]),
                data(ip, 1, PAYLOAD, ACK),
            ],
            vec![PAYLOAD, 0, PAYLOAD],
        )
    });
}

#[test]
fn flags() {
    // PSH: merged as the last segment; the next one starts anew.
    both(|ip| {
        (
            vec![
                data(ip, 0, PAYLOAD, ACK),
                data(ip, 1, PAYLOAD, ACK | PSH),
                data(ip, 2, PAYLOAD, ACK),
            ],
            vec![2 * PAYLOAD, PAYLOAD],
        )
    });
    // SYN, RST, URG: never coalesced. FIN: the kernel merges a FIN segment as
    // the last one; here it is written alone (a deliberate refusal).
    for f in [SYN, RST, URG, FIN] {
        both(|ip| {
            (
                vec![
                    data(ip, 0, PAYLOAD, ACK),
                    data(ip, 1, PAYLOAD, ACK | f),
                    data(ip, 2, PAYLOAD, ACK),
                ],
                vec![PAYLOAD, PAYLOAD, PAYLOAD],
            )
        });
    }
}

#[test]
fn tcp_checksum_sequence_and_options() {
    // Bad checksum in the middle: nothing merges across it.
    both(|ip| {
        let mut bad = data(ip, 1, PAYLOAD, ACK);
        let at = if ip.is_v4() { 36 } else { 56 };
        bad[at] ^= 0xff;
        (
            vec![data(ip, 0, PAYLOAD, ACK), bad, data(ip, 2, PAYLOAD, ACK)],
            vec![PAYLOAD; 3],
        )
    });
    // A sequence gap: not coalesced.
    both(|ip| {
        (
            vec![data(ip, 0, PAYLOAD, ACK), data(ip, 2, PAYLOAD, ACK)],
            vec![PAYLOAD; 2],
        )
    });
    // Timestamps: equal ones coalesce, a changed one does not.
    let ts = |v: u8| [1, 1, 8, 10, 0, 0, 0, v, 0, 0, 0, 1];
    both(|ip| {
        let seg = |k: u32, v: u8| {
            let mut q = ip.clone();
            q.id = k as u16;
            tcp(&q, 8000, 8001, 1 + k * 1000, 1, ACK, &ts(v), &[0; PAYLOAD])
        };
        (
            vec![seg(0, 1), seg(1, 1), seg(2, 2)],
            vec![2 * PAYLOAD, PAYLOAD],
        )
    });
}

#[test]
fn ip_fields() {
    type Tweak = fn(&mut Ip);
    let tweaks: [Tweak; 3] = [
        |ip| ip.tos = 1, /* ECN ECT(1) */
        |ip| ip.tos = 0x10,
        |ip| ip.ttl = 1,
    ];
    for tweak in tweaks {
        both(|ip| {
            let mut q = ip.clone();
            q.id = 1;
            tweak(&mut q);
            let other = tcp(
                &q,
                8000,
                8001,
                1 + PAYLOAD as u32,
                1,
                ACK,
                &[],
                &[1; PAYLOAD],
            );
            (vec![data(ip, 0, PAYLOAD, ACK), other], vec![PAYLOAD; 2])
        });
    }
}

#[test]
fn ipv4_options_and_fragments_are_not_coalesced() {
    let ip = ip4();
    // IPv4 header with a 4-byte NOP option.
    let mut opt = data(&ip, 1, PAYLOAD, ACK);
    opt.splice(20..20, [1, 1, 1, 1]);
    opt[0] = 0x46;
    let total = opt.len() as u16;
    opt[2..4].copy_from_slice(&total.to_be_bytes());
    opt[10..12].fill(0);
    let c = !common::naive_sum(&opt[..24]);
    opt[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        payloads(&[
            data(&ip, 0, PAYLOAD, ACK),
            opt.clone(),
            data(&ip, 2, PAYLOAD, ACK)
        ])
        .len(),
        3
    );
    // A fragment (MF).
    let mut q = ip.clone();
    q.df = false;
    q.mf = true;
    q.id = 1;
    let frag = tcp(
        &q,
        8000,
        8001,
        1 + PAYLOAD as u32,
        1,
        ACK,
        &[],
        &[1; PAYLOAD],
    );
    assert_eq!(
        payloads(&[data(&ip, 0, PAYLOAD, ACK), frag, data(&ip, 2, PAYLOAD, ACK)]).len(),
        3
    );
}

#[test]
fn ipv4_ids() {
    let seg = |df: bool, id: u16, k: u32| {
        let mut q = ip4();
        q.df = df;
        q.id = id;
        tcp(
            &q,
            8000,
            8001,
            1 + k * PAYLOAD as u32,
            1,
            ACK,
            &[],
            &[k as u8; PAYLOAD],
        )
    };
    // DF set: incrementing or fixed IDs coalesce; mixing them does not.
    assert_eq!(
        payloads(&[seg(true, 5, 0), seg(true, 6, 1), seg(true, 7, 2)]),
        [3000]
    );
    assert_eq!(
        payloads(&[seg(true, 5, 0), seg(true, 5, 1), seg(true, 5, 2)]),
        [3000]
    );
    assert_eq!(
        payloads(&[seg(true, 5, 0), seg(true, 6, 1), seg(true, 6, 2)]),
        [2000, 1000]
    );
    // DF clear: only incrementing IDs coalesce.
    assert_eq!(payloads(&[seg(false, 5, 0), seg(false, 6, 1)]), [2000]);
    assert_eq!(
        payloads(&[seg(false, 5, 0), seg(false, 5, 1)]),
        [1000, 1000]
    );
}

#[test]
fn ipv6_extension_headers_are_not_coalesced() {
    let ip = ip6();
    let mut ext = data(&ip, 1, PAYLOAD, ACK);
    ext.splice(40..40, [6, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop, PadN
    ext[6] = 0;
    let plen = (ext.len() - 40) as u16;
    ext[4..6].copy_from_slice(&plen.to_be_bytes());
    assert_eq!(
        payloads(&[data(&ip, 0, PAYLOAD, ACK), ext, data(&ip, 2, PAYLOAD, ACK)]).len(),
        3
    );
}

#[test]
fn large_packets_stop_below_65536() {
    // The selftest sends enough MSS segments to pass 65535 bytes: the first
    // packet stays within the IP length limit, the rest start anew.
    both(|ip| {
        let n = 70;
        let pkts: Vec<Vec<u8>> = (0..n).map(|k| data(ip, k, PAYLOAD, ACK)).collect();
        let hl = if ip.is_v4() { 40 } else { 60 };
        let first = (65_535 - hl) / PAYLOAD;
        (pkts, vec![first * PAYLOAD, (n as usize - first) * PAYLOAD])
    });
}

#[test]
fn many_flows_coalesce_each() {
    both(|ip| {
        let mut pkts = Vec::new();
        for k in 0..4u32 {
            for f in 0..8u16 {
                let mut q = ip.clone();
                q.id = k as u16;
                pkts.push(tcp(
                    &q,
                    9000 + f,
                    8001,
                    1 + k * 1000,
                    1,
                    ACK,
                    &[],
                    &[f as u8; PAYLOAD],
                ));
            }
        }
        (pkts, vec![4 * PAYLOAD; 8])
    });
}

#[test]
fn udp_datagrams() {
    // Same size: coalesced; a shorter one ends the run; 100 of them: 64 + 36.
    let ip = ip4();
    let u = |id: u16, len: usize| {
        let mut q = ip.clone();
        q.id = id;
        udp(&q, 1, 2, &vec![3u8; len])
    };
    assert_eq!(
        payloads(&[u(0, 500), u(1, 500), u(2, 200), u(3, 500)]),
        [1200, 500]
    );
    let many: Vec<Vec<u8>> = (0..100).map(|k| u(k, 10)).collect();
    assert_eq!(payloads(&many), [640, 360]);
}
