//! Offload names, the same in every command: what `show` reads from the
//! kernel (`SIOCETHTOOL` feature bits, through tun-sys) and what `dump`
//! and `relay` say a device has (`TUN_F_*` flags) map to one vocabulary:
//! `csum`, `tso4`, `tso6`, `tso_ecn`, `uso`, `udp_tnl`, `udp_tnl_csum`.
//!
//! The TUN driver turns `TUN_F_*` into features in `tun_set_offload()`
//! (drivers/net/tun.c): `TUN_F_CSUM` gives `tx-checksum-ip-generic`, TSO4
//! `tx-tcp-segmentation`, TSO6 `tx-tcp6-segmentation`, TSO_ECN
//! `tx-tcp-ecn-segmentation`, and USO4 with USO6 together
//! `tx-udp-segmentation`; the others need CSUM. Since Linux 6.17
//! `TUN_F_UDP_TUNNEL_GSO` gives `tx-udp_tnl-segmentation` and
//! `TUN_F_UDP_TUNNEL_GSO_CSUM` `tx-udp_tnl-csum-segmentation`.

use tun_device::OffloadFlags;
use tun_sys::{ControlSocket, Features, InterfaceName};

/// Each name with its `TUN_F_*` flags and the kernel feature it becomes.
const TABLE: [(&str, OffloadFlags, &str); 7] = [
    ("csum", OffloadFlags::CSUM, "tx-checksum-ip-generic"),
    ("tso4", OffloadFlags::TSO4, "tx-tcp-segmentation"),
    ("tso6", OffloadFlags::TSO6, "tx-tcp6-segmentation"),
    ("tso_ecn", OffloadFlags::TSO_ECN, "tx-tcp-ecn-segmentation"),
    (
        "uso",
        OffloadFlags::USO4.union(OffloadFlags::USO6),
        "tx-udp-segmentation",
    ),
    (
        "udp_tnl",
        OffloadFlags::UDP_TUNNEL_GSO,
        "tx-udp_tnl-segmentation",
    ),
    (
        "udp_tnl_csum",
        OffloadFlags::UDP_TUNNEL_GSO_CSUM,
        "tx-udp_tnl-csum-segmentation",
    ),
];

/// The names of the offloads in `flags` (`uso` needs both USO flags, as
/// the kernel does).
pub fn names(flags: OffloadFlags) -> Vec<&'static str> {
    TABLE
        .iter()
        .filter(|(_, f, _)| flags.contains(*f))
        .map(|(n, _, _)| *n)
        .collect()
}

/// The `TUN_F_*` flags whose features are on.
pub fn flags(features: &Features) -> OffloadFlags {
    TABLE
        .iter()
        .filter(|(_, _, k)| features.is_active(k))
        .fold(OffloadFlags::empty(), |acc, (_, f, _)| acc | *f)
}

/// The offload features the kernel holds for `name` in the calling
/// thread's namespace.
pub fn read(name: &str) -> Result<Features, tun_sys::Error> {
    let ifname = InterfaceName::new(name).map_err(|_| {
        tun_sys::Error::new(
            tun_sys::Op::EthtoolGSsetInfo,
            rustix::io::Errno::INVAL.raw_os_error(),
        )
    })?;
    ControlSocket::new()?.features(&ifname)
}

/// The offloads as one word list: `none` when empty.
pub fn describe(flags: OffloadFlags) -> String {
    let n = names(flags);
    if n.is_empty() {
        "none".into()
    } else {
        n.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_vocabulary_both_ways() {
        assert_eq!(names(OffloadFlags::empty()), Vec::<&str>::new());
        assert_eq!(
            names(OffloadFlags::CSUM | OffloadFlags::TSO4 | OffloadFlags::USO4),
            vec!["csum", "tso4"],
            "uso needs both USO flags"
        );
        assert_eq!(
            describe(OffloadFlags::CSUM | OffloadFlags::USO4 | OffloadFlags::USO6),
            "csum uso"
        );
        assert_eq!(describe(OffloadFlags::empty()), "none");
    }
}
