//! Test helpers shared by the integration tests: the naive packet builder
//! and checksum of the `tun-test-support` crate, and an independent
//! verifier (etherparse plus that naive checksum), so the code under test
//! never checks itself.
#![allow(dead_code)]

use std::net::IpAddr;

pub mod tunnel;

use etherparse::{Ipv4Header, Ipv6Header, TcpHeader, UdpHeader};
use tun_offload::{GsoType, HdrFlags, VirtioNetHdr};

#[allow(unused_imports)]
pub use tun_test_support::{Ip, add16, addrs, naive_pseudo, naive_sum, tcp, udp};

/// Turn a complete packet into what the kernel hands over for a
/// super-packet: the transport checksum field holds the folded
/// pseudo-header sum, the header says NEEDS_CSUM with the GSO type.
pub fn as_super(mut packet: Vec<u8>, gso_size: u16) -> (VirtioNetHdr, Vec<u8>) {
    let h = tun_test_support::as_super_parts(&mut packet);
    let hdr = VirtioNetHdr::new(
        HdrFlags::NEEDS_CSUM,
        GsoType(h.gso_type),
        h.hdr_len,
        gso_size,
        h.csum_start,
        h.csum_offset,
    );
    (hdr, packet)
}

/// A batch for the coalescing table: buffers of `cap` bytes (filled with
/// 0xAA, so that stray reads show), packet `i` at `offset` in buffer `i`,
/// and the packets' lengths.
pub fn batch_in(pkts: &[Vec<u8>], offset: usize, cap: usize) -> (Vec<Vec<u8>>, Vec<usize>) {
    let bufs = pkts
        .iter()
        .map(|p| {
            let mut b = vec![0xAAu8; cap];
            b[offset..offset + p.len()].copy_from_slice(p);
            b
        })
        .collect();
    (bufs, pkts.iter().map(Vec::len).collect())
}

/// What the verifier read from a packet whose checksums all verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub v4: bool,
    pub ip_id: u16,
    pub ttl: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub seq: u32,
    pub tcp_flags: u8,
    pub tcp_header_len: usize,
    pub payload: Vec<u8>,
}

/// Parse a complete IP packet with etherparse and check, independently of
/// the crate under test: the IP length field equals the buffer, the IPv4
/// header checksum, and the TCP/UDP checksum (etherparse's own code).
pub fn verify(packet: &[u8]) -> Parsed {
    let v4 = packet[0] >> 4 == 4;
    let (ip_hl, proto, ip_id, ttl) = if v4 {
        let (h, _) = Ipv4Header::from_slice(packet).expect("IPv4 header parses");
        assert_eq!(usize::from(h.total_len), packet.len(), "IPv4 total length");
        assert_eq!(
            h.calc_header_checksum(),
            h.header_checksum,
            "IPv4 header checksum"
        );
        (
            h.header_len(),
            h.protocol.0,
            h.identification,
            h.time_to_live,
        )
    } else {
        let (h, _) = Ipv6Header::from_slice(packet).expect("IPv6 header parses");
        assert_eq!(
            usize::from(h.payload_length) + 40,
            packet.len(),
            "IPv6 payload length"
        );
        (40, h.next_header.0, 0, h.hop_limit)
    };
    let (src, dst) = addrs(packet);
    let l4 = &packet[ip_hl..];
    match proto {
        6 => {
            let (h, payload) = TcpHeader::from_slice(l4).expect("TCP header parses");
            let want = match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => h
                    .calc_checksum_ipv4_raw(s.octets(), d.octets(), payload)
                    .unwrap(),
                (IpAddr::V6(s), IpAddr::V6(d)) => h
                    .calc_checksum_ipv6_raw(s.octets(), d.octets(), payload)
                    .unwrap(),
                _ => unreachable!(),
            };
            // A zero checksum may also be sent as 0xffff, its other
            // ones'-complement form: the kernel's skb_checksum_help stores
            // it so (CSUM_MANGLED_0), as complete_checksum does.
            let got = if want == 0 && h.checksum == 0xffff {
                0
            } else {
                h.checksum
            };
            assert_eq!(got, want, "TCP checksum (etherparse)");
            assert_eq!(
                add16(naive_pseudo(src, dst, 6, l4.len()), naive_sum(l4)),
                0xffff,
                "TCP checksum (naive)"
            );
            Parsed {
                v4,
                ip_id,
                ttl,
                src,
                dst,
                proto,
                seq: h.sequence_number,
                tcp_flags: l4[13],
                tcp_header_len: h.header_len(),
                payload: payload.to_vec(),
            }
        }
        17 => {
            let (h, payload) = UdpHeader::from_slice(l4).expect("UDP header parses");
            assert_eq!(usize::from(h.length), l4.len(), "UDP length");
            let want = match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => h
                    .calc_checksum_ipv4_raw(s.octets(), d.octets(), payload)
                    .unwrap(),
                (IpAddr::V6(s), IpAddr::V6(d)) => h
                    .calc_checksum_ipv6_raw(s.octets(), d.octets(), payload)
                    .unwrap(),
                _ => unreachable!(),
            };
            assert_eq!(h.checksum, want, "UDP checksum (etherparse)");
            assert_ne!(h.checksum, 0, "UDP checksum must not be 0");
            Parsed {
                v4,
                ip_id,
                ttl,
                src,
                dst,
                proto,
                seq: 0,
                tcp_flags: 0,
                tcp_header_len: 0,
                payload: payload.to_vec(),
            }
        }
        other => panic!("unexpected protocol {other}"),
    }
}
