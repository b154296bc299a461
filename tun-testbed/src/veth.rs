//! The kernel-only path: a veth pair between the two namespaces, made over
//! tun-device's rtnetlink client (`RTM_NEWLINK` of kind veth with the peer
//! in the other namespace), so no `ip` binary is needed. The same pair,
//! with addresses of its own, is the underlay of a UDP tunnel between
//! devices that hold the bed's usual addresses ([`Testbed::underlay`]).

use std::os::fd::AsFd;

use tun_device::NetNs;
use tun_device::netlink::Netlink;

use crate::error::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tun_device::ipnet::IpNet;

use crate::namespaces::{Side, Testbed, run_in, wait_not_tentative};

/// Underlay IPv4 address of side A (the veth of [`Testbed::underlay`]).
pub const UNDERLAY_A4: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 1);
/// Underlay IPv4 address of side B.
pub const UNDERLAY_B4: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 2);
/// Underlay IPv6 address of side A.
pub const UNDERLAY_A6: Ipv6Addr = Ipv6Addr::new(0xfd98, 0, 0, 0, 0, 0, 0, 1);
/// Underlay IPv6 address of side B.
pub const UNDERLAY_B6: Ipv6Addr = Ipv6Addr::new(0xfd98, 0, 0, 0, 0, 0, 0, 2);

/// The underlay addresses (with prefixes) of `side`.
fn underlay_addresses(side: Side) -> [IpNet; 2] {
    [false, true]
        .map(|v6| IpNet::new(underlay_addr(side, v6), if v6 { 64 } else { 24 }).unwrap_or_default())
}

/// The underlay address of `side` in the family of `v6`.
pub fn underlay_addr(side: Side, v6: bool) -> IpAddr {
    match (side, v6) {
        (Side::A, false) => IpAddr::V4(UNDERLAY_A4),
        (Side::B, false) => IpAddr::V4(UNDERLAY_B4),
        (Side::A, true) => IpAddr::V6(UNDERLAY_A6),
        (Side::B, true) => IpAddr::V6(UNDERLAY_B6),
    }
}

/// The names of the two ends.
const NAME_A: &str = "veth-a";
const NAME_B: &str = "veth-b";
/// The names of the underlay's ends.
const UNDERLAY_NAME_A: &str = "under-a";
const UNDERLAY_NAME_B: &str = "under-b";

/// A veth pair between the namespaces of a [`Testbed`], deleted on drop.
#[derive(Debug)]
pub struct Veth {
    ns_a: NetNs,
    index: u32,
}

impl Drop for Veth {
    fn drop(&mut self) {
        let index = self.index;
        // Deleting one end deletes the pair; the namespaces going away
        // would too, so a failure here leaves nothing behind for long.
        let _ = run_in(&self.ns_a, "delete the veth pair", || {
            Netlink::open()
                .and_then(|mut nl| nl.delete_link(index))
                .map_err(|e| Error::netlink("delete the veth pair", e))
        });
    }
}

/// Set `name`'s MTU, give it `addrs`, bring it up and wait until the
/// addresses are usable.
fn configure(nl: &mut Netlink, name: &str, side: Side, mtu: u32, addrs: [IpNet; 2]) -> Result<u32> {
    let step = |what: &str| format!("veth {name} (side {side:?}): {what}");
    let index = nl
        .link_by_name(name)
        .map_err(|e| Error::netlink(step("look it up"), e))?
        .index;
    nl.set_mtu(index, mtu)
        .map_err(|e| Error::netlink(step(&format!("set MTU {mtu}")), e))?;
    for addr in addrs {
        nl.add_address(index, addr, None)
            .map_err(|e| Error::netlink(step(&format!("add address {addr}")), e))?;
    }
    nl.set_up(index, true)
        .map_err(|e| Error::netlink(step("bring it up"), e))?;
    wait_not_tentative(|| nl.addresses(index))
        .map_err(|e| Error::netlink(step("wait for its addresses"), e))?;
    Ok(index)
}

impl Testbed {
    /// Join the namespaces with a veth pair (the kernel-only path), MTU
    /// `mtu`, addressed like the devices. The pair goes with the value.
    pub fn veth(&self, mtu: u32) -> Result<Veth> {
        self.pair(NAME_A, NAME_B, mtu, Testbed::addresses)
    }

    /// Join the namespaces with a second veth pair (`under-a`/`under-b`),
    /// MTU `mtu`, addressed apart from the devices ([`UNDERLAY_A4`] and the
    /// like): the underlay a UDP tunnel between the devices runs over.
    pub fn underlay(&self, mtu: u32) -> Result<Veth> {
        self.pair(UNDERLAY_NAME_A, UNDERLAY_NAME_B, mtu, underlay_addresses)
    }

    fn pair(
        &self,
        name_a: &str,
        name_b: &str,
        mtu: u32,
        addrs: fn(Side) -> [IpNet; 2],
    ) -> Result<Veth> {
        let add = format!("add the veth pair {name_a}/{name_b}");
        let index = run_in(&self.ns_a, &add, || {
            let mut nl = Netlink::open().map_err(|e| Error::netlink(&add, e))?;
            nl.add_veth(name_a, name_b, Some(self.ns_b.as_fd()))
                .map_err(|e| Error::netlink(&add, e))?;
            configure(&mut nl, name_a, Side::A, mtu, addrs(Side::A))
        })?;
        // From here the pair exists: the guard removes it on any failure.
        let veth = Veth {
            ns_a: self
                .ns_a
                .try_clone()
                .map_err(|e| Error::device("keep side A's namespace", e))?,
            index,
        };
        let step = format!("configure {name_b}");
        run_in(&self.ns_b, &step, || {
            let mut nl = Netlink::open().map_err(|e| Error::netlink(format!("{step}: open"), e))?;
            configure(&mut nl, name_b, Side::B, mtu, addrs(Side::B))
        })?;
        Ok(veth)
    }
}
