//! Test helpers shared by the integration tests: a naive packet builder
//! and an independent verifier (etherparse plus a deliberately naive
//! checksum), so the code under test never checks itself.
#![allow(dead_code)]

use std::net::IpAddr;

use etherparse::{Ipv4Header, Ipv6Header, TcpHeader, UdpHeader};
use tun_offload::{GsoType, HdrFlags, VirtioNetHdr};

/// RFC 1071 the slow way: big-endian words, carry folded after each add.
pub fn naive_sum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for pair in data.chunks(2) {
        s += (u32::from(pair[0]) << 8) | u32::from(*pair.get(1).unwrap_or(&0));
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn add16(a: u16, b: u16) -> u16 {
    let s = u32::from(a) + u32::from(b);
    ((s & 0xffff) + (s >> 16)) as u16
}

/// The naive pseudo-header sum.
pub fn naive_pseudo(src: IpAddr, dst: IpAddr, proto: u8, l4_len: usize) -> u16 {
    let mut img = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            img.extend_from_slice(&s.octets());
            img.extend_from_slice(&d.octets());
            img.extend_from_slice(&[0, proto]);
            img.extend_from_slice(&(l4_len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            img.extend_from_slice(&s.octets());
            img.extend_from_slice(&d.octets());
            img.extend_from_slice(&(l4_len as u32).to_be_bytes());
            img.extend_from_slice(&[0, 0, 0, proto]);
        }
        _ => panic!("mixed families"),
    }
    naive_sum(&img)
}

/// IP-level fields of a generated packet.
#[derive(Debug, Clone)]
pub struct Ip {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 TOS or IPv6 traffic class.
    pub tos: u8,
    /// IPv4 identification.
    pub id: u16,
    /// IPv4 DF flag.
    pub df: bool,
    /// IPv4 MF flag.
    pub mf: bool,
    /// IPv6 flow label.
    pub flow_label: u32,
}

impl Ip {
    pub fn v4(src: [u8; 4], dst: [u8; 4]) -> Self {
        Ip {
            src: IpAddr::from(src),
            dst: IpAddr::from(dst),
            ttl: 64,
            tos: 0,
            id: 0,
            df: false,
            mf: false,
            flow_label: 0,
        }
    }
    pub fn v6(src: &str, dst: &str) -> Self {
        Ip {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ttl: 64,
            tos: 0,
            id: 0,
            df: false,
            mf: false,
            flow_label: 0,
        }
    }
    pub fn is_v4(&self) -> bool {
        self.src.is_ipv4()
    }
    fn header(&self, proto: u8, l4_len: usize) -> Vec<u8> {
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let total = 20 + l4_len;
                let mut h = vec![0x45, self.tos];
                h.extend_from_slice(&(total as u16).to_be_bytes());
                h.extend_from_slice(&self.id.to_be_bytes());
                let flags: u16 =
                    if self.df { 0x4000 } else { 0 } | if self.mf { 0x2000 } else { 0 };
                h.extend_from_slice(&flags.to_be_bytes());
                h.extend_from_slice(&[self.ttl, proto, 0, 0]);
                h.extend_from_slice(&s.octets());
                h.extend_from_slice(&d.octets());
                let c = !naive_sum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                h
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let first =
                    (6u32 << 28) | (u32::from(self.tos) << 20) | (self.flow_label & 0xfffff);
                let mut h = first.to_be_bytes().to_vec();
                h.extend_from_slice(&(l4_len as u16).to_be_bytes());
                h.extend_from_slice(&[proto, self.ttl]);
                h.extend_from_slice(&s.octets());
                h.extend_from_slice(&d.octets());
                h
            }
            _ => panic!("mixed families"),
        }
    }
}

/// A complete TCP packet with valid checksums.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    ip: &Ip,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert!(options.len() % 4 == 0 && options.len() <= 40);
    let hl = 20 + options.len();
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[((hl / 4) as u8) << 4, flags]);
    t.extend_from_slice(&3000u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(options);
    t.extend_from_slice(payload);
    let c = !add16(naive_pseudo(ip.src, ip.dst, 6, t.len()), naive_sum(&t));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let mut p = ip.header(6, t.len());
    p.extend_from_slice(&t);
    p
}

/// A complete UDP packet with a valid checksum.
pub fn udp(ip: &Ip, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let mut c = !add16(naive_pseudo(ip.src, ip.dst, 17, u.len()), naive_sum(&u));
    if c == 0 {
        c = 0xffff;
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
    let mut p = ip.header(17, u.len());
    p.extend_from_slice(&u);
    p
}

/// Turn a complete packet into what the kernel hands over for a
/// super-packet: the transport checksum field holds the folded
/// pseudo-header sum, the header says NEEDS_CSUM with the GSO type.
pub fn as_super(mut packet: Vec<u8>, gso_size: u16) -> (VirtioNetHdr, Vec<u8>) {
    let v4 = packet[0] >> 4 == 4;
    let ip_hl = if v4 {
        usize::from(packet[0] & 15) * 4
    } else {
        40
    };
    let proto = if v4 { packet[9] } else { packet[6] };
    let (src, dst) = addrs(&packet);
    let l4_len = packet.len() - ip_hl;
    let (l4_hl, off, gso_type) = match proto {
        6 => (
            usize::from(packet[ip_hl + 12] >> 4) * 4,
            16,
            if v4 { GsoType::TCPV4 } else { GsoType::TCPV6 },
        ),
        17 => (8, 6, GsoType::UDP_L4),
        _ => panic!("not TCP/UDP"),
    };
    let pseudo = naive_pseudo(src, dst, proto, l4_len);
    packet[ip_hl + off..ip_hl + off + 2].copy_from_slice(&pseudo.to_be_bytes());
    let hdr = VirtioNetHdr::new(
        HdrFlags::NEEDS_CSUM,
        gso_type,
        (ip_hl + l4_hl) as u16,
        gso_size,
        ip_hl as u16,
        off as u16,
    );
    (hdr, packet)
}

pub fn addrs(packet: &[u8]) -> (IpAddr, IpAddr) {
    if packet[0] >> 4 == 4 {
        let s: [u8; 4] = packet[12..16].try_into().unwrap();
        let d: [u8; 4] = packet[16..20].try_into().unwrap();
        (IpAddr::from(s), IpAddr::from(d))
    } else {
        let s: [u8; 16] = packet[8..24].try_into().unwrap();
        let d: [u8; 16] = packet[24..40].try_into().unwrap();
        (IpAddr::from(s), IpAddr::from(d))
    }
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
            assert_eq!(h.checksum, want, "TCP checksum (etherparse)");
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
