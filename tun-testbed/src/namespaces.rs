//! The two private network namespaces, their addresses, and devices built
//! inside them with those addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use tun_device::ipnet::IpNet;
use tun_device::netlink::Netlink;
use tun_device::{Device, DeviceBuilder, NetNs};

use crate::cancel::Cancel;
use crate::error::{Error, Result};

/// IPv4 address of side A.
pub const A4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// IPv4 address of side B.
pub const B4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// IPv6 address of side A.
pub const A6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1);
/// IPv6 address of side B.
pub const B6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 2);

/// Which side of the bed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Namespace A (where traffic is sent from).
    A,
    /// Namespace B (where traffic is received).
    B,
}

/// Two private network namespaces, and the token that cancels the
/// traffic runs between them.
#[derive(Debug)]
pub struct Testbed {
    /// Namespace A.
    pub ns_a: NetNs,
    /// Namespace B.
    pub ns_b: NetNs,
    pub(crate) cancel: Cancel,
}

/// Run `f` in `ns`, carrying the test bed's own error out of the
/// device layer's `run`.
pub(crate) fn run_in<T: Send>(
    ns: &NetNs,
    step: &str,
    f: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    ns.run(|| Ok(f()))
        .map_err(|e| Error::device(format!("{step}: enter the namespace"), e))?
}

impl Testbed {
    /// Two fresh namespaces with loopback up and IPv6 duplicate address
    /// detection off (addresses usable at once). Needs CAP_SYS_ADMIN.
    pub fn new() -> Result<Self> {
        let ns_a = NetNs::new_anonymous()
            .map_err(|e| Error::device("create the namespace of side A", e))?;
        let ns_b = NetNs::new_anonymous()
            .map_err(|e| Error::device("create the namespace of side B", e))?;
        Self::from_namespaces(ns_a, ns_b)
    }

    /// A bed on two namespaces made elsewhere (a child process handed
    /// them over), prepared like [`new`](Self::new)'s.
    pub fn from_namespaces(ns_a: NetNs, ns_b: NetNs) -> Result<Self> {
        for (ns, side) in [(&ns_a, "A"), (&ns_b, "B")] {
            run_in(ns, &format!("prepare side {side}"), || {
                for p in [
                    "/proc/sys/net/ipv6/conf/all/accept_dad",
                    "/proc/sys/net/ipv6/conf/default/accept_dad",
                ] {
                    std::fs::write(p, "0")
                        .map_err(|e| Error::io(format!("side {side}: write 0 to {p}"), e))?;
                }
                let step = format!("side {side}: bring lo up");
                let mut nl = Netlink::open().map_err(|e| Error::netlink(&step, e))?;
                let lo = nl
                    .link_by_name("lo")
                    .map_err(|e| Error::netlink(&step, e))?;
                nl.set_up(lo.index, true)
                    .map_err(|e| Error::netlink(&step, e))?;
                Ok(())
            })?;
        }
        Ok(Self {
            ns_a,
            ns_b,
            cancel: Cancel::new(),
        })
    }

    /// Cancel traffic runs through `cancel` (a clone of a token the caller
    /// keeps, for example the one its Ctrl-C handler sets).
    pub fn set_cancel(&mut self, cancel: Cancel) {
        self.cancel = cancel;
    }

    /// The token that cancels this bed's traffic runs.
    pub fn cancel_token(&self) -> Cancel {
        self.cancel.clone()
    }

    /// The namespace of `side`.
    pub fn ns(&self, side: Side) -> &NetNs {
        match side {
            Side::A => &self.ns_a,
            Side::B => &self.ns_b,
        }
    }

    /// The addresses (with prefixes) of `side`.
    pub fn addresses(side: Side) -> [IpNet; 2] {
        let (v4, v6) = match side {
            Side::A => (A4, A6),
            Side::B => (B4, B6),
        };
        [
            IpNet::new(IpAddr::V4(v4), 24).unwrap_or_default(),
            IpNet::new(IpAddr::V6(v6), 64).unwrap_or_default(),
        ]
    }

    /// The address of `side` in the family of `v6`.
    pub fn addr(side: Side, v6: bool) -> IpAddr {
        match (side, v6) {
            (Side::A, false) => IpAddr::V4(A4),
            (Side::B, false) => IpAddr::V4(B4),
            (Side::A, true) => IpAddr::V6(A6),
            (Side::B, true) => IpAddr::V6(B6),
        }
    }

    /// Add `side`'s addresses to `builder` and create the device in that
    /// side's namespace; returns once its addresses are usable.
    pub fn device(&self, side: Side, builder: DeviceBuilder) -> Result<Device> {
        let step = format!("create the device of side {side:?}");
        let ns = self
            .ns(side)
            .try_clone()
            .map_err(|e| Error::device(&step, e))?;
        let mut b = builder.netns(ns);
        for a in Self::addresses(side) {
            b = b.address(a);
        }
        let dev = b.build().map_err(|e| Error::device(&step, e))?;
        settle(&dev)?;
        Ok(dev)
    }

    /// A device on each side, both from `make` (called once per side), as
    /// [`device`](Self::device) makes them: the usual shape of a test that
    /// joins the two namespaces with a relay between the devices.
    pub fn devices(&self, make: impl Fn() -> DeviceBuilder) -> Result<(Device, Device)> {
        Ok((self.device(Side::A, make())?, self.device(Side::B, make())?))
    }
}

/// The names of the links in `ns` (a fresh namespace has only `lo`; a
/// test that made links checks with this that it left none behind).
pub fn link_names(ns: &NetNs) -> Result<Vec<String>> {
    run_in(ns, "list the links", || {
        let links = Netlink::open()
            .and_then(|mut nl| nl.links())
            .map_err(|e| Error::netlink("list the links", e))?;
        Ok(links.into_iter().map(|l| l.name).collect())
    })
}

/// Wait (up to 5 s) until no address `addresses` lists is tentative.
pub(crate) fn wait_not_tentative<E>(
    mut addresses: impl FnMut() -> std::result::Result<Vec<tun_device::Address>, E>,
) -> std::result::Result<(), E> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while addresses()?.iter().any(|a| a.is_tentative()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Wait until no address of `dev` is tentative (IPv6 finishes an address
/// in a work queue after the link comes up).
pub fn settle(dev: &Device) -> Result<()> {
    wait_not_tentative(|| dev.interface().addresses())
        .map_err(|e| Error::device("wait for the device's addresses", e))
}
