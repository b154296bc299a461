//! Packets for the engines' unit tests, built byte by byte: TCP
//! super-packets and UDP datagrams as a TUN hands them over, and a VXLAN
//! super-packet as one with the UDP-tunnel offload does.

use tun_offload::checksum::{Checksum, ipv4_header, pseudo_header_v4};
use tun_offload::{GsoType, HdrFlags, VirtioNetHdr, VirtioNetHdrV1HashTunnel};

/// Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
pub(crate) const VXLAN_OUTER: usize = 50;

/// A VXLAN-over-IPv4 datagram (outer UDP checksum zero, as Linux sends
/// VXLAN over IPv4 by default) around an IPv4/TCP super-packet of
/// `payload` bytes in segments of `gso`: NEEDS_CSUM with the inner
/// pseudo-header sum in the TCP checksum field, the 24-byte header's
/// offsets at the outer UDP and the inner IP header.
pub(crate) fn vxlan_super(
    payload: usize,
    gso: u16,
    seq: u32,
) -> (VirtioNetHdrV1HashTunnel, Vec<u8>) {
    let inner_len = 40 + payload;
    let len = VXLAN_OUTER + inner_len;
    let mut p = vec![0u8; len];
    // Outer IPv4: 192.0.2.1 -> 192.0.2.2, UDP.
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[192, 0, 2, 1]);
    p[16..20].copy_from_slice(&[192, 0, 2, 2]);
    let c = ipv4_header(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    // Outer UDP to 4789, no checksum.
    p[20..22].copy_from_slice(&50_000u16.to_be_bytes());
    p[22..24].copy_from_slice(&4789u16.to_be_bytes());
    p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    // VXLAN: I flag, VNI 42.
    p[28] = 0x08;
    p[32..35].copy_from_slice(&[0, 0, 42]);
    // Inner Ethernet.
    p[36..42].copy_from_slice(&[2, 0, 0, 0, 1, 2]);
    p[42..48].copy_from_slice(&[2, 0, 0, 0, 1, 1]);
    p[48..50].copy_from_slice(&0x0800u16.to_be_bytes());
    // Inner IPv4/TCP: 10.9.0.1:4000 -> 10.9.0.2:80.
    let q = &mut p[VXLAN_OUTER..];
    q[0] = 0x45;
    q[2..4].copy_from_slice(&(inner_len as u16).to_be_bytes());
    q[6] = 0x40;
    q[8] = 64;
    q[9] = 6;
    q[12..16].copy_from_slice(&[10, 9, 0, 1]);
    q[16..20].copy_from_slice(&[10, 9, 0, 2]);
    let c = ipv4_header(&q[..20]);
    q[10..12].copy_from_slice(&c.to_be_bytes());
    q[20..22].copy_from_slice(&4000u16.to_be_bytes());
    q[22..24].copy_from_slice(&80u16.to_be_bytes());
    q[24..28].copy_from_slice(&seq.to_be_bytes());
    q[32] = 5 << 4;
    q[33] = 0x18; // ACK | PSH
    q[34..36].copy_from_slice(&1000u16.to_be_bytes());
    for (k, b) in q[40..].iter_mut().enumerate() {
        *b = (k * 7 + seq as usize) as u8;
    }
    let pseudo = pseudo_header_v4(
        [10, 9, 0, 1].into(),
        [10, 9, 0, 2].into(),
        6,
        (inner_len - 20) as u16,
    );
    q[36..38].copy_from_slice(&pseudo.fold().to_be_bytes());
    let hdr = VirtioNetHdr::new(
        HdrFlags::NEEDS_CSUM,
        GsoType(GsoType::TCPV4.0 | GsoType::UDP_TUNNEL_IPV4),
        (VXLAN_OUTER + 40) as u16,
        gso,
        (VXLAN_OUTER + 20) as u16,
        16,
    );
    (
        VirtioNetHdrV1HashTunnel::new(hdr, 20, VXLAN_OUTER as u16),
        p,
    )
}

/// The outer datagrams tun-offload's split makes of a tunnel super-packet.
pub(crate) fn tunnel_reference(
    hdr: &VirtioNetHdrV1HashTunnel,
    pkt: &[u8],
    frame: bool,
) -> Vec<Vec<u8>> {
    let mut b = vec![vec![0u8; 70_000]; 128];
    let mut s = vec![0usize; 128];
    let n = tun_offload::split_tunnel(hdr, pkt, frame, &mut b, &mut s, 0).unwrap();
    (0..n).map(|i| b[i][..s[i]].to_vec()).collect()
}

/// An IPv4/TCP super-packet of `payload` bytes (`hl` = 20 + 20 +
/// `opts` bytes of headers) as a TUN hands it over: NEEDS_CSUM with the
/// pseudo-header sum in the checksum field, `gso` bytes per segment.
pub(crate) fn super_tcp(
    payload: usize,
    gso: u16,
    seq: u32,
    opts: usize,
) -> (VirtioNetHdr, Vec<u8>) {
    let hl = 40 + opts;
    let len = hl + payload;
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len.min(0xffff) as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 0, 2]);
    let ip = ipv4_header(&p[..20]);
    p[10..12].copy_from_slice(&ip.to_be_bytes());
    p[20..22].copy_from_slice(&4000u16.to_be_bytes());
    p[22..24].copy_from_slice(&80u16.to_be_bytes());
    p[24..28].copy_from_slice(&seq.to_be_bytes());
    p[32] = ((5 + opts / 4) as u8) << 4;
    p[33] = 0x18; // ACK | PSH
    p[34..36].copy_from_slice(&1000u16.to_be_bytes());
    p[40..hl].fill(1); // NOP options
    for (k, b) in p[hl..].iter_mut().enumerate() {
        *b = (k * 7 + seq as usize) as u8;
    }
    let l4 = (len - 20) as u16;
    let pseudo = pseudo_header_v4([10, 0, 0, 1].into(), [10, 0, 0, 2].into(), 6, l4);
    p[36..38].copy_from_slice(&pseudo.fold().to_be_bytes());
    let hdr = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::TCPV4, hl as u16, gso, 20, 16);
    (hdr, p)
}

/// A plain IPv4/UDP packet with a complete checksum.
pub(crate) fn plain_udp(payload: usize) -> Vec<u8> {
    let len = 28 + payload;
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 0, 2]);
    let ip = ipv4_header(&p[..20]);
    p[10..12].copy_from_slice(&ip.to_be_bytes());
    p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    for (k, b) in p[28..].iter_mut().enumerate() {
        *b = k as u8;
    }
    let pseudo = pseudo_header_v4(
        [10, 0, 0, 1].into(),
        [10, 0, 0, 2].into(),
        17,
        (len - 20) as u16,
    );
    let c = pseudo.combine(Checksum::of(&p[20..])).finish_udp();
    p[26..28].copy_from_slice(&c.to_be_bytes());
    p
}

/// The segments tun-offload's copying split makes of a super-packet.
pub(crate) fn reference(hdr: &VirtioNetHdr, pkt: &[u8]) -> Vec<Vec<u8>> {
    let mut b = vec![vec![0u8; 70_000]; 128];
    let mut s = vec![0usize; 128];
    let n = tun_offload::split(hdr, pkt, &mut b, &mut s, 0).unwrap();
    (0..n).map(|i| b[i][..s[i]].to_vec()).collect()
}
