//! Helpers for tests, benchmarks and fuzz targets of the workspace: a naive
//! packet builder and a deliberately naive internet checksum, written
//! independently of `tun-offload` so that the code under test never checks
//! itself. Slow on purpose; not for production use. Also the privilege
//! gate every privileged test of the workspace shares
//! ([`privileged_required`], [`in_own_netns`]).

use std::net::IpAddr;

mod privilege;
pub use privilege::{in_own_netns, privileged_required};

/// The transport checksum's offset in a TCP header.
pub const TCP_CSUM_OFFSET: usize = 16;
/// The transport checksum's offset in a UDP header.
pub const UDP_CSUM_OFFSET: usize = 6;

/// RFC 1071 the slow way: big-endian words, carry folded after each add.
pub fn naive_sum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for pair in data.chunks(2) {
        s += (u32::from(pair[0]) << 8) | u32::from(*pair.get(1).unwrap_or(&0));
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Ones'-complement addition of two 16-bit words.
pub fn add16(a: u16, b: u16) -> u16 {
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
    /// Source address.
    pub src: IpAddr,
    /// Destination address (of the same family).
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
    /// IPv4 from `src` to `dst`, TTL 64, everything else zero.
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
    /// IPv6 from `src` to `dst` (textual addresses), hop limit 64.
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
    /// Whether the addresses are IPv4.
    pub fn is_v4(&self) -> bool {
        self.src.is_ipv4()
    }
    /// The IP header for `l4_len` transport bytes of `proto`, with a valid
    /// IPv4 header checksum.
    pub fn header(&self, proto: u8, l4_len: usize) -> Vec<u8> {
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

/// A complete TCP packet with valid checksums (window 3000, no urgent
/// pointer; `options` a multiple of four bytes, at most 40).
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

/// The naive pseudo-header sum of a whole IPv4 or IPv6 `packet` for its
/// transport part behind `ip_hl` bytes of IP header, with protocol `proto`
/// and the fixed header's addresses.
pub fn naive_packet_pseudo(packet: &[u8], ip_hl: usize, proto: u8) -> u16 {
    let (src, dst) = addrs(packet);
    naive_pseudo(src, dst, proto, packet.len() - ip_hl)
}

/// The source and destination of an IPv4 or IPv6 packet.
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

/// What a super-packet's virtio header says, as the kernel fills it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuperHeader {
    /// `gso_type`: 1 (TCPV4), 4 (TCPV6) or 5 (UDP_L4).
    pub gso_type: u8,
    /// `hdr_len`: IP plus transport header.
    pub hdr_len: u16,
    /// `csum_start`: the IP header's length.
    pub csum_start: u16,
    /// `csum_offset`: 16 (TCP) or 6 (UDP).
    pub csum_offset: u16,
}

/// Turn a complete TCP or UDP packet (IPv4 with any header length, IPv6
/// without extension headers) into what the kernel hands over for a
/// super-packet: the transport checksum field holds the folded
/// pseudo-header sum; returns what the virtio header says (with
/// NEEDS_CSUM and the caller's `gso_size`).
pub fn as_super_parts(packet: &mut [u8]) -> SuperHeader {
    let v4 = packet[0] >> 4 == 4;
    let ip_hl = if v4 {
        usize::from(packet[0] & 15) * 4
    } else {
        40
    };
    let proto = if v4 { packet[9] } else { packet[6] };
    let (l4_hl, off, gso_type) = match proto {
        6 => (
            usize::from(packet[ip_hl + 12] >> 4) * 4,
            TCP_CSUM_OFFSET,
            if v4 { 1 } else { 4 },
        ),
        17 => (8, UDP_CSUM_OFFSET, 5),
        _ => panic!("not TCP/UDP"),
    };
    let pseudo = naive_packet_pseudo(packet, ip_hl, proto);
    packet[ip_hl + off..ip_hl + off + 2].copy_from_slice(&pseudo.to_be_bytes());
    SuperHeader {
        gso_type,
        hdr_len: (ip_hl + l4_hl) as u16,
        csum_start: ip_hl as u16,
        csum_offset: off as u16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_sum_of_rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        assert_eq!(
            naive_sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn built_packets_verify() {
        for ip in [
            Ip::v4([10, 0, 0, 1], [10, 0, 0, 2]),
            Ip::v6("fd00::1", "fd00::2"),
        ] {
            let t = tcp(&ip, 1, 2, 3, 4, 0x10, &[], b"data");
            let u = udp(&ip, 1, 2, b"data");
            for (p, proto) in [(t, 6), (u, 17)] {
                let ip_hl = if ip.is_v4() { 20 } else { 40 };
                if ip.is_v4() {
                    assert_eq!(naive_sum(&p[..20]), 0xffff);
                }
                let sum = add16(
                    naive_packet_pseudo(&p, ip_hl, proto),
                    naive_sum(&p[ip_hl..]),
                );
                assert_eq!(sum, 0xffff);
            }
        }
    }
}
