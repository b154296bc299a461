//! Inputs for the benchmarks of the offload engine, shared by the criterion
//! micro-benchmarks (`benches/offload.rs`) and, later, the end-to-end relay
//! benchmark (a binary under `src/bin/`). Each benchmark runs our code and
//! tun-rs side by side on the same inputs, in the same process.

#![forbid(unsafe_code)]

use std::net::IpAddr;

use tun_offload::{GsoType, HdrFlags, VirtioNetHdr};
use tun_test_support::{Ip, as_super_parts, tcp, udp};

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

    /// The IP fields of every generated packet: TTL 64, IPv4 ID 0 with DF.
    fn ip(&self) -> Ip {
        let (src, dst) = match *self {
            Addrs::V4(s, d) => (IpAddr::from(s), IpAddr::from(d)),
            Addrs::V6(s, d) => (IpAddr::from(s), IpAddr::from(d)),
        };
        Ip {
            src,
            dst,
            df: true,
            ..Ip::v4([0; 4], [0; 4])
        }
    }
}

/// The TCP timestamp option (NOP, NOP, TS) of every generated segment.
const TIMESTAMP_OPTION: [u8; 12] = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];

/// TCP ACK.
const ACK: u8 = 0x10;

/// A TCP packet (ACK, 12 bytes of timestamp option) with a valid checksum.
pub fn tcp_packet(addrs: Addrs, sport: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    tcp(
        &addrs.ip(),
        sport,
        5201,
        seq,
        1,
        ACK,
        &TIMESTAMP_OPTION,
        payload,
    )
}

/// A UDP packet with a valid checksum.
pub fn udp_packet(addrs: Addrs, sport: u16, payload: &[u8]) -> Vec<u8> {
    udp(&addrs.ip(), sport, 4433, payload)
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
    let h = as_super_parts(&mut p);
    let hdr = VirtioNetHdr::new(
        HdrFlags::NEEDS_CSUM,
        GsoType(h.gso_type),
        h.hdr_len,
        gso_size,
        h.csum_start,
        h.csum_offset,
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
