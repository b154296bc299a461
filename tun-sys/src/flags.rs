//! The `IFF_*` flags of `TUNSETIFF`/`TUNGETFEATURES`, the `TUN_F_*` offload
//! flags of `TUNSETOFFLOAD`, and the interface flags of `SIOCSIFFLAGS`, as
//! typed flag sets.

bitflags::bitflags! {
    /// Flags of `struct ifreq.ifr_flags` for `TUNSETIFF`, `TUNGETIFF`,
    /// `TUNSETQUEUE`, and the feature mask of `TUNGETFEATURES`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct TunFlags: u16 {
        /// Layer-3 device: reads and writes carry IP packets.
        const TUN = 0x0001;
        /// Layer-2 device: reads and writes carry Ethernet frames.
        const TAP = 0x0002;
        /// Receive through NAPI (mostly for testing the stack).
        const NAPI = 0x0010;
        /// With NAPI, writes are fragments of one frame (TAP only).
        const NAPI_FRAGS = 0x0020;
        /// Create the device with its carrier off (Linux 5.17+).
        const NO_CARRIER = 0x0040;
        /// One fd per queue; more fds may attach to the same name.
        const MULTI_QUEUE = 0x0100;
        /// `TUNSETQUEUE`: enable this queue again.
        const ATTACH_QUEUE = 0x0200;
        /// `TUNSETQUEUE`: disable this queue (packets go to the others).
        const DETACH_QUEUE = 0x0400;
        /// Read-only: the device outlives its fds (`TUNSETPERSIST`).
        const PERSIST = 0x0800;
        /// No 4-byte packet-information header in front of packets.
        const NO_PI = 0x1000;
        /// Obsolete: has no effect since Linux 3.8.
        const ONE_QUEUE = 0x2000;
        /// A `virtio_net_hdr` in front of every packet (offload metadata).
        const VNET_HDR = 0x4000;
        /// Fail with EBUSY if the name already exists instead of attaching.
        const TUN_EXCL = 0x8000;
    }
}

bitflags::bitflags! {
    /// The `TUN_F_*` offloads userspace can accept (`TUNSETOFFLOAD`).
    ///
    /// Setting a flag tells the kernel that this reader can handle packets
    /// with that offload still pending (partial checksums, super-packets).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct OffloadFlags: u32 {
        /// Partial checksums (NEEDS_CSUM); required by every other flag.
        const CSUM = 0x01;
        /// TCP segmentation offload over IPv4.
        const TSO4 = 0x02;
        /// TCP segmentation offload over IPv6.
        const TSO6 = 0x04;
        /// TSO with the ECN CWR bit set on the super-packet.
        const TSO_ECN = 0x08;
        /// Legacy UDP fragmentation offload (removed from the kernel's send side).
        const UFO = 0x10;
        /// UDP segmentation offload over IPv4 (Linux 6.2+).
        const USO4 = 0x20;
        /// UDP segmentation offload over IPv6 (Linux 6.2+).
        const USO6 = 0x40;
        /// TSO/USO of UDP-tunnelled (VXLAN, Geneve) super-packets, which
        /// need the 24-byte `virtio_net_hdr_v1_hash_tunnel` header
        /// (`TUNSETVNETHDRSZ`) (Linux 6.17+). drivers/net/tun.c
        /// `set_offload` grants it only together with TSO4/TSO6/USO4/USO6.
        const UDP_TUNNEL_GSO = 0x80;
        /// With [`OffloadFlags::UDP_TUNNEL_GSO`]: the outer UDP checksum of
        /// tunnel super-packets may be left to the other side
        /// (`VIRTIO_NET_HDR_F_UDP_TUNNEL_CSUM`) (Linux 6.17+).
        const UDP_TUNNEL_GSO_CSUM = 0x100;
    }
}

impl OffloadFlags {
    /// Checksum offload with TCP segmentation over both IP versions.
    pub const TCP: Self = Self::CSUM.union(Self::TSO4).union(Self::TSO6);
    /// [`OffloadFlags::TCP`] plus UDP segmentation over both IP versions.
    pub const TCP_UDP: Self = Self::TCP.union(Self::USO4).union(Self::USO6);
    /// Both UDP-tunnel offload flags.
    pub const UDP_TUNNEL: Self = Self::UDP_TUNNEL_GSO.union(Self::UDP_TUNNEL_GSO_CSUM);
    /// The plain segmentation offloads without which the kernel ignores
    /// [`OffloadFlags::UDP_TUNNEL_GSO`] (drivers/net/tun.c `set_offload`:
    /// "Tunnel offload is allowed only if some plain offload is available").
    pub const PLAIN_GSO: Self = Self::TSO4
        .union(Self::TSO6)
        .union(Self::USO4)
        .union(Self::USO6);

    /// Whether the tunnel part of this `TUNSETOFFLOAD` mask is one the
    /// kernel accepts. drivers/net/tun.c `set_offload` consumes
    /// [`OffloadFlags::UDP_TUNNEL_GSO`] (and with it
    /// [`OffloadFlags::UDP_TUNNEL_GSO_CSUM`]) only when CSUM and some plain
    /// TSO/USO flag are granted too; a tunnel bit it does not consume fails
    /// the whole request with EINVAL, as does any bit of a kernel older than
    /// 6.17 (which is how a caller probes for the offload).
    pub const fn tunnel_request_is_valid(self) -> bool {
        if !self.intersects(Self::UDP_TUNNEL) {
            return true;
        }
        self.contains(Self::CSUM)
            && self.intersects(Self::PLAIN_GSO)
            && self.contains(Self::UDP_TUNNEL_GSO)
    }
}

bitflags::bitflags! {
    /// Interface flags (`IFF_UP` and friends, include/uapi/linux/if.h; the
    /// same bits as `ip link` shows). rtnetlink's `ifi_flags` carries all 32
    /// bits; `SIOCGIFFLAGS`/`SIOCSIFFLAGS` only the low 16, so
    /// [`ControlSocket::flags`](crate::ControlSocket::flags) never reports
    /// `LOWER_UP`, `DORMANT` or `ECHO`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct InterfaceFlags: u32 {
        /// Administratively up.
        const UP = 0x0001;
        /// Broadcast address valid.
        const BROADCAST = 0x0002;
        /// Loopback device.
        const LOOPBACK = 0x0008;
        /// Point-to-point link (a TUN device is one).
        const POINTOPOINT = 0x0010;
        /// Operationally running (carrier and up).
        const RUNNING = 0x0040;
        /// No ARP.
        const NOARP = 0x0080;
        /// Receive all packets.
        const PROMISC = 0x0100;
        /// Receive all multicast packets.
        const ALLMULTI = 0x0200;
        /// Supports multicast.
        const MULTICAST = 0x1000;
        /// The driver signals the lower layer up (carrier).
        const LOWER_UP = 0x1_0000;
        /// The driver signals dormant.
        const DORMANT = 0x2_0000;
        /// Echoes sent packets.
        const ECHO = 0x4_0000;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tun_flags_match_the_kernel() {
        let cases: &[(TunFlags, i32)] = &[
            (TunFlags::TUN, libc::IFF_TUN),
            (TunFlags::TAP, libc::IFF_TAP),
            (TunFlags::NAPI, libc::IFF_NAPI),
            (TunFlags::NAPI_FRAGS, libc::IFF_NAPI_FRAGS),
            (TunFlags::NO_CARRIER, libc::IFF_NO_CARRIER),
            (TunFlags::MULTI_QUEUE, libc::IFF_MULTI_QUEUE),
            (TunFlags::ATTACH_QUEUE, libc::IFF_ATTACH_QUEUE),
            (TunFlags::DETACH_QUEUE, libc::IFF_DETACH_QUEUE),
            (TunFlags::PERSIST, libc::IFF_PERSIST),
            (TunFlags::NO_PI, libc::IFF_NO_PI),
            (TunFlags::ONE_QUEUE, libc::IFF_ONE_QUEUE),
            (TunFlags::VNET_HDR, libc::IFF_VNET_HDR),
            (TunFlags::TUN_EXCL, libc::IFF_TUN_EXCL),
        ];
        for &(ours, theirs) in cases {
            assert_eq!(i32::from(ours.bits()), theirs, "{ours:?}");
        }
        // The values written in if_tun.h, independent of libc.
        assert_eq!(
            TunFlags::all().bits(),
            0x0001 | 0x0002 | 0x0010 | 0x0020 | 0x0040 | 0xff00
        );
    }

    #[test]
    fn offload_flags_match_the_kernel() {
        assert_eq!(OffloadFlags::CSUM.bits(), libc::TUN_F_CSUM);
        assert_eq!(OffloadFlags::TSO4.bits(), libc::TUN_F_TSO4);
        assert_eq!(OffloadFlags::TSO6.bits(), libc::TUN_F_TSO6);
        assert_eq!(OffloadFlags::TSO_ECN.bits(), libc::TUN_F_TSO_ECN);
        assert_eq!(OffloadFlags::UFO.bits(), libc::TUN_F_UFO);
        assert_eq!(OffloadFlags::USO4.bits(), libc::TUN_F_USO4);
        assert_eq!(OffloadFlags::USO6.bits(), libc::TUN_F_USO6);
        assert_eq!(OffloadFlags::TCP.bits(), 0x07);
        assert_eq!(OffloadFlags::TCP_UDP.bits(), 0x67);
        // include/uapi/linux/if_tun.h (Linux 6.17+); libc may not have them yet.
        assert_eq!(OffloadFlags::UDP_TUNNEL_GSO.bits(), 0x080);
        assert_eq!(OffloadFlags::UDP_TUNNEL_GSO_CSUM.bits(), 0x100);
        assert_eq!(OffloadFlags::all().bits(), 0x1ff);
    }

    #[test]
    fn tunnel_offload_needs_csum_and_plain_gso() {
        let tnl = OffloadFlags::UDP_TUNNEL;
        assert!(OffloadFlags::TCP.tunnel_request_is_valid());
        assert!((OffloadFlags::TCP | tnl).tunnel_request_is_valid());
        assert!(
            (OffloadFlags::CSUM
                | OffloadFlags::USO4
                | OffloadFlags::USO6
                | OffloadFlags::UDP_TUNNEL_GSO)
                .tunnel_request_is_valid()
        );
        // No plain segmentation offload.
        assert!(!(OffloadFlags::CSUM | tnl).tunnel_request_is_valid());
        // The checksum flag without the tunnel flag.
        assert!(!(OffloadFlags::TCP | OffloadFlags::UDP_TUNNEL_GSO_CSUM).tunnel_request_is_valid());
        // No CSUM.
        assert!(!(OffloadFlags::TSO4 | tnl).tunnel_request_is_valid());
    }

    #[test]
    fn interface_flags_match_the_kernel() {
        assert_eq!(InterfaceFlags::UP.bits() as i32, libc::IFF_UP);
        assert_eq!(InterfaceFlags::RUNNING.bits() as i32, libc::IFF_RUNNING);
        assert_eq!(
            InterfaceFlags::POINTOPOINT.bits() as i32,
            libc::IFF_POINTOPOINT
        );
        assert_eq!(InterfaceFlags::NOARP.bits() as i32, libc::IFF_NOARP);
        assert_eq!(InterfaceFlags::MULTICAST.bits() as i32, libc::IFF_MULTICAST);
    }
}
