//! What the client reads and writes: the state of a link ([`LinkInfo`],
//! with the TUN/TAP driver's [`TunInfo`]), an assigned [`Address`], and
//! the [`AddressOptions`] an address is added with.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
pub use netlink_packet_route::address::AddressFlags;

const IFF_UP: u32 = libc::IFF_UP as u32;

/// One IP address assigned to an interface, from an `RTM_GETADDR` dump.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// The interface's own address with its prefix length: `IFA_LOCAL` when
    /// present, else `IFA_ADDRESS`.
    pub addr: IpNet,
    /// The point-to-point peer: `IFA_ADDRESS` when it differs from `IFA_LOCAL`.
    pub peer: Option<IpAddr>,
    /// The IPv4 broadcast address (`IFA_BROADCAST`), when one is set.
    pub broadcast: Option<Ipv4Addr>,
    /// `IFA_F_*` flags (`IFA_FLAGS` when present, else `ifa_flags`), e.g.
    /// [`AddressFlags::Tentative`] for an IPv6 address still in duplicate
    /// address detection.
    pub flags: AddressFlags,
    /// `RT_SCOPE_*` scope (0 = global, 253 = link, 254 = host).
    pub scope: u8,
}

impl Address {
    /// Whether the address is still in duplicate address detection (IPv6,
    /// right after it was added or its link came up): the kernel neither
    /// sends from it nor accepts traffic for it until DAD is over.
    pub fn is_tentative(&self) -> bool {
        self.flags.contains(AddressFlags::Tentative)
    }

    /// Whether duplicate address detection failed: the address is unusable.
    pub fn is_dad_failed(&self) -> bool {
        self.flags.contains(AddressFlags::Dadfailed)
    }
}

/// How [`Netlink::add_address_with`](super::Netlink::add_address_with) adds an address, beyond the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AddressOptions {
    /// The point-to-point peer (`IFA_ADDRESS`), of the address's family.
    pub peer: Option<IpAddr>,
    /// The IPv4 broadcast address (`IFA_BROADCAST`), as `ip addr add ...
    /// brd ADDR` sets it; see [`AddressOptions::broadcast_of`].
    pub broadcast: Option<Ipv4Addr>,
    /// Skip duplicate address detection (`IFA_F_NODAD`): an IPv6 address is
    /// usable at once instead of staying tentative for a second or more.
    pub nodad: bool,
}

impl AddressOptions {
    /// No peer, no broadcast, duplicate address detection as the kernel
    /// does it.
    pub const fn new() -> Self {
        Self {
            peer: None,
            broadcast: None,
            nodad: false,
        }
    }

    /// With this point-to-point peer.
    pub const fn peer(mut self, peer: IpAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// With this IPv4 broadcast address.
    pub const fn broadcast(mut self, broadcast: Ipv4Addr) -> Self {
        self.broadcast = Some(broadcast);
        self
    }

    /// Without duplicate address detection (or with it).
    pub const fn nodad(mut self, on: bool) -> Self {
        self.nodad = on;
        self
    }

    /// The broadcast address of `net` (every host bit set), what `ip addr
    /// add ... brd +` computes; `None` for IPv6 and for /31 and /32.
    pub fn broadcast_of(net: IpNet) -> Option<Ipv4Addr> {
        match net {
            IpNet::V4(v4) if v4.prefix_len() < 31 => Some(v4.broadcast()),
            _ => None,
        }
    }
}

/// Link settings changed together by one `RTM_SETLINK`
/// ([`Netlink::change_link`](super::Netlink::change_link)); `None` leaves
/// a setting as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LinkChanges {
    /// The MTU (`IFLA_MTU`).
    pub mtu: Option<u32>,
    /// The Ethernet address (`IFLA_ADDRESS`; a TAP's).
    pub mac: Option<[u8; 6]>,
    /// The transmit queue length (`IFLA_TXQLEN`).
    pub tx_queue_len: Option<u32>,
    /// Up or down (`IFF_UP` in `ifi_flags`, `ifi_change = IFF_UP`).
    pub up: Option<bool>,
}

impl LinkChanges {
    /// Nothing changed.
    pub const fn new() -> Self {
        Self {
            mtu: None,
            mac: None,
            tx_queue_len: None,
            up: None,
        }
    }

    /// With this MTU.
    pub const fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// With this Ethernet address.
    pub const fn mac(mut self, mac: [u8; 6]) -> Self {
        self.mac = Some(mac);
        self
    }

    /// With this transmit queue length.
    pub const fn tx_queue_len(mut self, len: u32) -> Self {
        self.tx_queue_len = Some(len);
        self
    }

    /// Up or down.
    pub const fn up(mut self, up: bool) -> Self {
        self.up = Some(up);
        self
    }

    /// Whether nothing would change.
    pub const fn is_empty(&self) -> bool {
        self.mtu.is_none() && self.mac.is_none() && self.tx_queue_len.is_none() && self.up.is_none()
    }
}

impl std::fmt::Display for LinkChanges {
    /// As `ip link set` takes them: `mtu 1400 address 02:00:00:00:00:01
    /// txqueuelen 100 up`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut sep = "";
        let mut word = |f: &mut std::fmt::Formatter<'_>, w: std::fmt::Arguments<'_>| {
            let r = write!(f, "{sep}{w}");
            sep = " ";
            r
        };
        if let Some(mtu) = self.mtu {
            word(f, format_args!("mtu {mtu}"))?;
        }
        if let Some(m) = self.mac {
            word(
                f,
                format_args!(
                    "address {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    m[0], m[1], m[2], m[3], m[4], m[5]
                ),
            )?;
        }
        if let Some(len) = self.tx_queue_len {
            word(f, format_args!("txqueuelen {len}"))?;
        }
        if let Some(up) = self.up {
            word(f, format_args!("{}", if up { "up" } else { "down" }))?;
        }
        Ok(())
    }
}

/// The state of one network interface, from `RTM_GETLINK`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Interface name (`IFLA_IFNAME`); non-UTF-8 bytes are replaced by U+FFFD.
    pub name: String,
    /// MTU in bytes (`IFLA_MTU`).
    pub mtu: u32,
    /// `IFF_*` flags (`ifi_flags`), e.g. `IFF_UP`, `IFF_RUNNING`.
    pub flags: u32,
    /// `ARPHRD_*` link type (`ifi_type`): 1 for a TAP, 65534 (`ARPHRD_NONE`)
    /// for a TUN.
    pub link_type: u16,
    /// Hardware address (`IFLA_ADDRESS`) when it is 6 bytes long; `None` for a
    /// TUN, which has no link-layer address.
    pub mac: Option<[u8; 6]>,
    /// Transmit queue length (`IFLA_TXQLEN`), 0 if not reported.
    pub tx_queue_len: u32,
    /// RFC 2863 operational state (`IFLA_OPERSTATE`, `IF_OPER_*`: 0 unknown,
    /// 2 down, 5 dormant, 6 up), 0 if not reported.
    pub oper_state: u8,
    /// Driver kind (`IFLA_INFO_KIND`), e.g. `"tun"` for TUN and TAP devices.
    pub kind: Option<String>,
    /// The TUN/TAP driver's attributes, when `kind` is `"tun"`.
    pub tun: Option<TunInfo>,
}

impl LinkInfo {
    /// Whether `IFF_UP` is set (administratively up).
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }
}

/// The TUN/TAP driver's `IFLA_INFO_DATA`, as filled by `tun_fill_info()` in
/// drivers/net/tun.c.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TunInfo {
    /// Owning uid (`IFLA_TUN_OWNER`); absent unless an owner was set.
    pub owner: Option<u32>,
    /// Owning gid (`IFLA_TUN_GROUP`); absent unless a group was set.
    pub group: Option<u32>,
    /// A TAP (Ethernet frames) rather than a TUN (IP packets): `IFLA_TUN_TYPE`.
    pub tap: bool,
    /// Packets carry the 4-byte packet-information header (no `IFF_NO_PI`).
    pub pi: bool,
    /// Packets carry a virtio-net header (`IFF_VNET_HDR`).
    pub vnet_hdr: bool,
    /// The device outlives its file descriptors (`IFF_PERSIST`).
    pub persist: bool,
    /// Multi-queue device (`IFF_MULTI_QUEUE`).
    pub multi_queue: bool,
    /// Attached queues; the kernel reports it for multi-queue devices only.
    pub num_queues: Option<u32>,
    /// Disabled queues; the kernel reports it for multi-queue devices only.
    pub num_disabled_queues: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_changes_read_as_ip_link_set_takes_them() {
        assert!(LinkChanges::new().is_empty());
        assert_eq!(LinkChanges::new().to_string(), "");
        let c = LinkChanges::new()
            .mtu(1400)
            .mac([2, 0, 0, 0, 0, 0xab])
            .tx_queue_len(100)
            .up(true);
        assert!(!c.is_empty());
        assert_eq!(
            c.to_string(),
            "mtu 1400 address 02:00:00:00:00:ab txqueuelen 100 up"
        );
        assert_eq!(LinkChanges::new().up(false).to_string(), "down");
    }
}
