//! The kernel-only path: a veth pair between the two namespaces, made over
//! tun-device's rtnetlink client (`RTM_NEWLINK` of kind veth with the peer
//! in the other namespace), so no `ip` binary is needed.

use std::os::fd::AsFd;

use tun_device::NetNs;
use tun_device::netlink::Netlink;

use crate::error::{Error, Result};
use crate::namespaces::{Side, Testbed, run_in, wait_not_tentative};

/// The names of the two ends.
const NAME_A: &str = "veth-a";
const NAME_B: &str = "veth-b";

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

/// Set `name`'s MTU, give it `side`'s addresses, bring it up and wait
/// until the addresses are usable.
fn configure(nl: &mut Netlink, name: &str, side: Side, mtu: u32) -> Result<u32> {
    let step = |what: &str| format!("veth {name} (side {side:?}): {what}");
    let index = nl
        .link_by_name(name)
        .map_err(|e| Error::netlink(step("look it up"), e))?
        .index;
    nl.set_mtu(index, mtu)
        .map_err(|e| Error::netlink(step(&format!("set MTU {mtu}")), e))?;
    for addr in Testbed::addresses(side) {
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
        let add = format!("add the veth pair {NAME_A}/{NAME_B}");
        let index = run_in(&self.ns_a, &add, || {
            let mut nl = Netlink::open().map_err(|e| Error::netlink(&add, e))?;
            nl.add_veth(NAME_A, NAME_B, Some(self.ns_b.as_fd()))
                .map_err(|e| Error::netlink(&add, e))?;
            configure(&mut nl, NAME_A, Side::A, mtu)
        })?;
        // From here the pair exists: the guard removes it on any failure.
        let veth = Veth {
            ns_a: self
                .ns_a
                .try_clone()
                .map_err(|e| Error::device("keep side A's namespace", e))?,
            index,
        };
        run_in(&self.ns_b, "configure veth-b", || {
            let mut nl =
                Netlink::open().map_err(|e| Error::netlink("configure veth-b: open", e))?;
            configure(&mut nl, NAME_B, Side::B, mtu)
        })?;
        Ok(veth)
    }
}
