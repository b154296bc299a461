//! Inputs for the benchmarks of the offload engine, shared by the criterion
//! micro-benchmarks (`benches/offload.rs`) and, later, the end-to-end relay
//! benchmark (a binary under `src/bin/`). Each benchmark runs our code and
//! tun-rs side by side on the same inputs, in the same process.

#![forbid(unsafe_code)]

use tun_offload::checksum::{Checksum, pseudo_header_v4, pseudo_header_v6};
use tun_offload::{GsoType, HdrFlags, VirtioNetHdr};

/// A source and destination for generated packets.
#[derive(Debug, Clone, Copy)]
pub enum Addrs {
    /// IPv4 addresses.
    V4([u8; 4], [u8; 4]),
    /// IPv6 addresses.
    V6([u8; 16], [u8; 16]),
}

impl Addrs {
    /// 10.0.0.1 to 10.0.0.2 (used only in memory, never sent).
    pub const V4_DEFAULT: Addrs = Addrs::V4([10, 0, 0, 1], [10, 0, 0, 2]);
    /// fd00::1 to fd00::2 (used only in memory, never sent).
    pub const V6_DEFAULT: Addrs = Addrs::V6(
        [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
    );

    fn ip_header(&self, proto: u8, l4_len: usize) -> Vec<u8> {
        match self {
            Addrs::V4(s, d) => {
                let mut h = vec![0x45, 0];
                h.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
                h.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
                h.extend_from_slice(s);
                h.extend_from_slice(d);
                let c = Checksum::of(&h).finish();
                h[10..12].copy_from_slice(&c.to_be_bytes());
                h
            }
            Addrs::V6(s, d) => {
                let mut h = vec![0x60, 0, 0, 0];
                h.extend_from_slice(&(l4_len as u16).to_be_bytes());
                h.extend_from_slice(&[proto, 64]);
                h.extend_from_slice(s);
                h.extend_from_slice(d);
                h
            }
        }
    }

    fn pseudo(&self, proto: u8, l4_len: usize) -> Checksum {
        match self {
            Addrs::V4(s, d) => pseudo_header_v4((*s).into(), (*d).into(), proto, l4_len as u16),
            Addrs::V6(s, d) => pseudo_header_v6((*s).into(), (*d).into(), proto, l4_len as u32),
        }
    }
}

/// A TCP packet (ACK, 12 bytes of timestamp option) with a valid checksum.
pub fn tcp_packet(addrs: Addrs, sport: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(32 + payload.len());
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&5201u16.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&[0x80, 0x10, 0x01, 0xf5, 0, 0, 0, 0]);
    t.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    t.extend_from_slice(payload);
    let c = addrs.pseudo(6, t.len()).combine(Checksum::of(&t)).finish();
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let mut p = addrs.ip_header(6, t.len());
    p.extend_from_slice(&t);
    p
}

/// A UDP packet with a valid checksum.
pub fn udp_packet(addrs: Addrs, sport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&4433u16.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let c = addrs
        .pseudo(17, u.len())
        .combine(Checksum::of(&u))
        .finish_udp();
    u[6..8].copy_from_slice(&c.to_be_bytes());
    let mut p = addrs.ip_header(17, u.len());
    p.extend_from_slice(&u);
    p
}

/// Bytes that look like payload (not all one value).
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A super-packet as the kernel hands it over: the header of a TSO/USO
/// read and the packet with the pseudo-header sum in its checksum field.
pub fn super_packet(
    addrs: Addrs,
    tcp: bool,
    total_payload: usize,
    gso_size: u16,
) -> (VirtioNetHdr, Vec<u8>) {
    let data = payload(total_payload, 7);
    let mut p = if tcp {
        tcp_packet(addrs, 40000, 1, &data)
    } else {
        udp_packet(addrs, 40000, &data)
    };
    let ip_hl = if matches!(addrs, Addrs::V4(..)) {
        20
    } else {
        40
    };
    let (l4_hl, off, proto) = if tcp { (32, 16, 6) } else { (8, 6, 17) };
    let gso_type = match (tcp, addrs) {
        (true, Addrs::V4(..)) => GsoType::TCPV4,
        (true, Addrs::V6(..)) => GsoType::TCPV6,
        (false, _) => GsoType::UDP_L4,
    };
    let pseudo = addrs.pseudo(proto, p.len() - ip_hl).fold();
    p[ip_hl + off..ip_hl + off + 2].copy_from_slice(&pseudo.to_be_bytes());
    let hdr = VirtioNetHdr::new(
        HdrFlags::NEEDS_CSUM,
        gso_type,
        (ip_hl + l4_hl) as u16,
        gso_size,
        ip_hl as u16,
        off as u16,
    );
    (hdr, p)
}

/// 128 in-order MSS-sized (1448) TCPv4 segments of one flow.
pub fn tcp4_one_flow() -> Vec<Vec<u8>> {
    (0..128u32)
        .map(|i| {
            tcp_packet(
                Addrs::V4_DEFAULT,
                40000,
                1 + i * 1448,
                &payload(1448, i as u8),
            )
        })
        .collect()
}

/// 128 TCPv4 segments of 16 flows, interleaved round-robin, in order per flow.
pub fn tcp4_sixteen_flows() -> Vec<Vec<u8>> {
    (0..128u32)
        .map(|i| {
            let flow = (i % 16) as u16;
            let seq = 1 + (i / 16) * 1448;
            tcp_packet(
                Addrs::V4_DEFAULT,
                40000 + flow,
                seq,
                &payload(1448, i as u8),
            )
        })
        .collect()
}

/// 128 UDP datagrams of 1200 bytes in 4 flows, interleaved round-robin.
pub fn udp4_four_flows() -> Vec<Vec<u8>> {
    (0..128u32)
        .map(|i| {
            udp_packet(
                Addrs::V4_DEFAULT,
                50000 + (i % 4) as u16,
                &payload(1200, i as u8),
            )
        })
        .collect()
}
