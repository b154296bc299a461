//! Tunnel super-packets as the kernel hands them over (VXLAN, Geneve), and
//! the tests' own decoder of the tunnel header, for the tunnel tests and
//! the fuzz seeds.
#![allow(dead_code)]

use super::{Ip, as_super, naive_pseudo};
use tun_offload::{GsoType, HdrFlags, VirtioNetHdr, VirtioNetHdrV1HashTunnel};

pub const VXLAN_PORT: u16 = 4789;
pub const GENEVE_PORT: u16 = 6081;
pub const INNER_SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
pub const INNER_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

/// The tunnel header in front of the inner Ethernet frame.
#[derive(Debug, Clone)]
pub enum Tunnel {
    /// RFC 7348: flags (I bit), reserved, 24-bit VNI, reserved.
    Vxlan {
        /// The 24-bit VNI.
        vni: u32,
    },
    /// RFC 8926: version 0, option length in 4-byte words, protocol
    /// 0x6558 (Ethernet), 24-bit VNI, then the options.
    Geneve {
        /// The 24-bit VNI.
        vni: u32,
        /// Option bytes (a multiple of 4, under 256).
        options: Vec<u8>,
    },
}

impl Tunnel {
    pub fn port(&self) -> u16 {
        match self {
            Tunnel::Vxlan { .. } => VXLAN_PORT,
            Tunnel::Geneve { .. } => GENEVE_PORT,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Tunnel::Vxlan { vni } => {
                let mut h = vec![0x08, 0, 0, 0];
                h.extend_from_slice(&(vni << 8).to_be_bytes());
                h
            }
            Tunnel::Geneve { vni, options } => {
                assert!(options.len() % 4 == 0 && options.len() / 4 < 64);
                let mut h = vec![(options.len() / 4) as u8, 0, 0x65, 0x58];
                h.extend_from_slice(&(vni << 8).to_be_bytes());
                h.extend_from_slice(options);
                h
            }
        }
    }

    /// The tests' own decoder: the tunnel header at the start of `udp_payload`
    /// (VXLAN if `port` says so, else Geneve) and the inner Ethernet
    /// header behind it; returns the VNI, the inner EtherType and where
    /// the inner IP packet starts.
    pub fn decode(port: u16, udp_payload: &[u8]) -> (u32, u16, usize) {
        let (vni, tunnel_len) = if port == VXLAN_PORT {
            assert_eq!(udp_payload[0], 0x08, "VXLAN I flag");
            let w = u32::from_be_bytes(udp_payload[4..8].try_into().unwrap());
            (w >> 8, 8)
        } else {
            assert_eq!(udp_payload[0] >> 6, 0, "Geneve version");
            assert_eq!(
                &udp_payload[2..4],
                &[0x65, 0x58],
                "Geneve protocol: Ethernet"
            );
            let w = u32::from_be_bytes(udp_payload[4..8].try_into().unwrap());
            (w >> 8, 8 + usize::from(udp_payload[0] & 0x3f) * 4)
        };
        let eth = &udp_payload[tunnel_len..tunnel_len + 14];
        assert_eq!(&eth[..6], &INNER_DST_MAC, "inner destination MAC");
        assert_eq!(&eth[6..12], &INNER_SRC_MAC, "inner source MAC");
        let ether_type = u16::from_be_bytes([eth[12], eth[13]]);
        (vni, ether_type, tunnel_len + 14)
    }
}

pub fn ether_type_of(ip_packet: &[u8]) -> u16 {
    if ip_packet[0] >> 4 == 4 {
        0x0800
    } else {
        0x86dd
    }
}

pub fn outer_l2(outer: &Ip) -> Vec<u8> {
    let mut l2 = vec![0x02, 0, 0, 0, 0, 0xb, 0x02, 0, 0, 0, 0, 0xa];
    l2.extend_from_slice(&(if outer.is_v4() { 0x0800u16 } else { 0x86dd }).to_be_bytes());
    l2
}

/// What the kernel hands over for a tunnel super-packet: the inner packet as
/// a plain super-packet (its checksum field the pseudo-header sum), the
/// tunnel and inner Ethernet header, outer UDP (its checksum field the outer
/// pseudo-header sum with `csum`, zero without) and outer IP, and the
/// 24-byte header with both offsets. `tap`: an outer Ethernet header too.
pub fn tunnel_super(
    outer: &Ip,
    csum: bool,
    tunnel: &Tunnel,
    inner_packet: Vec<u8>,
    gso_size: u16,
    tap: bool,
) -> (VirtioNetHdrV1HashTunnel, Vec<u8>) {
    let (inner_hdr, inner) = as_super(inner_packet, gso_size);
    let mut udp_payload = tunnel.encode();
    udp_payload.extend_from_slice(&INNER_DST_MAC);
    udp_payload.extend_from_slice(&INNER_SRC_MAC);
    udp_payload.extend_from_slice(&ether_type_of(&inner).to_be_bytes());
    let tnl_len = udp_payload.len();
    udp_payload.extend_from_slice(&inner);
    let udp_len = 8 + udp_payload.len();
    let mut u = Vec::new();
    u.extend_from_slice(&49152u16.to_be_bytes());
    u.extend_from_slice(&tunnel.port().to_be_bytes());
    u.extend_from_slice(&(udp_len as u16).to_be_bytes());
    let check = if csum {
        naive_pseudo(outer.src, outer.dst, 17, udp_len)
    } else {
        0
    };
    u.extend_from_slice(&check.to_be_bytes());
    let mut packet = if tap { outer_l2(outer) } else { Vec::new() };
    packet.extend_from_slice(&outer.header(17, udp_len));
    let outer_th = packet.len();
    packet.extend_from_slice(&u);
    packet.extend_from_slice(&udp_payload);
    let inner_nh = outer_th + 8 + tnl_len;
    let mut flags = HdrFlags::NEEDS_CSUM;
    if csum {
        flags = HdrFlags(flags.0 | HdrFlags::UDP_TUNNEL_CSUM.0);
    }
    let tunnel_bit = if outer.is_v4() {
        GsoType::UDP_TUNNEL_IPV4
    } else {
        GsoType::UDP_TUNNEL_IPV6
    };
    let hdr = VirtioNetHdr::new(
        flags,
        GsoType(inner_hdr.gso_type().0 | tunnel_bit),
        inner_hdr.hdr_len() + inner_nh as u16,
        gso_size,
        inner_hdr.csum_start() + inner_nh as u16,
        inner_hdr.csum_offset(),
    );
    (
        VirtioNetHdrV1HashTunnel::new(hdr, outer_th as u16, inner_nh as u16),
        packet,
    )
}
