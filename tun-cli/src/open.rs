//! Opening the device `dump` and `relay` work on: open an existing
//! TUN/TAP device with the flags it has (read over rtnetlink) and the
//! offloads it has (read with `SIOCETHTOOL`, and set back with
//! `TUNSETOFFLOAD` if opening changed them: another reader of the
//! device must not start getting super-packets it never asked for), or
//! create a new one that goes away with the process.

use tun_device::ipnet::IpNet;
use tun_device::{Device, Mode, NetNs};

use std::os::fd::AsFd;

use crate::error::{CliError, Result};
use crate::offloads;
use crate::show;
use crate::util;

/// What a device created by `dump` or `relay` gets.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Offload (virtio-net headers) on a new device.
    pub offload: bool,
    /// A TAP on a new device.
    pub tap: bool,
    /// Queues to open (multi-queue when more than one).
    pub queues: usize,
    /// Addresses of a new device.
    pub addrs: Vec<IpNet>,
    /// MTU of a new device.
    pub mtu: Option<u32>,
}

/// An opened device and how it was found.
#[derive(Debug)]
pub struct Opened {
    /// The device, its queues non-blocking.
    pub device: Device,
    /// Its name.
    pub name: String,
    /// Whether it was created here (else an existing one was opened).
    pub created: bool,
    /// The offloads the kernel holds for it now.
    pub offloads: tun_device::OffloadFlags,
}

/// Open `name` if it exists (in `ns`), else create it (a template
/// `tun%d`/`tap%d` when `name` is `None`).
pub fn open(name: Option<&str>, opts: &OpenOptions, ns: Option<&NetNs>) -> Result<Opened> {
    let queues = opts.queues.max(1);
    let existing = match name.filter(|n| !n.contains('%')) {
        Some(n) => util::in_netns(ns, || {
            let mut nl = util::netlink()?;
            match nl.link_by_name(n) {
                Ok(_) => {
                    let link = show::tun_link(&mut nl, n, "open")?;
                    let features = offloads::read(n).map_err(|e| {
                        CliError::refused(
                            format!("open {n}: read its offload features: {e}"),
                            "the device may have gone away meanwhile",
                        )
                    })?;
                    Ok(Some((link, offloads::flags(&features))))
                }
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(CliError::netlink(format!("look up {n}"), e)),
            }
        })?,
        None => None,
    };
    let default_name = if opts.tap { "tap%d" } else { "tun%d" };
    let mut b = Device::builder()
        .name(name.unwrap_or(default_name))
        .nonblocking(true);
    let original = existing.as_ref().map(|(_, o)| *o);
    let created = match existing.as_ref().and_then(|(l, _)| l.tun.map(|t| (l, t))) {
        Some((link, tun)) => {
            if queues > 1 && !tun.multi_queue {
                return Err(CliError::refused(
                    format!(
                        "open {}: {queues} queues need a multi-queue device",
                        link.name
                    ),
                    "recreate it with `tun create --multi-queue`",
                ));
            }
            // The virtio header size is the device's, not this queue's: keep
            // the 24-byte one only for a device that has the tunnel offload,
            // or its other readers would misread every packet.
            let tunnel =
                original.is_some_and(|o| o.contains(tun_device::OffloadFlags::UDP_TUNNEL_GSO));
            b = b
                .existing(true)
                .mode(if tun.tap { Mode::Tap } else { Mode::Tun })
                .packet_information(tun.pi)
                .offload(tun.vnet_hdr)
                .udp_tunnel_offload(tunnel)
                .multi_queue(tun.multi_queue)
                .queues(queues);
            false
        }
        None => {
            b = b
                .mode(if opts.tap { Mode::Tap } else { Mode::Tun })
                .offload(opts.offload)
                .queues(queues)
                .multi_queue(queues > 1)
                .up(true);
            for a in &opts.addrs {
                b = b.address(*a);
            }
            if let Some(mtu) = opts.mtu {
                b = b.mtu(mtu);
            }
            true
        }
    };
    let what = format!(
        "{} {}",
        if created { "create" } else { "open" },
        name.unwrap_or(default_name)
    );
    if let Some(ns) = ns {
        b = b.netns(
            ns.try_clone()
                .map_err(|e| CliError::device(what.clone(), e))?,
        );
    }
    let device = b.build().map_err(|e| CliError::device(what.clone(), e))?;
    let name = device
        .interface()
        .name()
        .map_err(|e| CliError::device(what.clone(), e))?
        .to_string();
    let mut offloads = if device.interface().has_vnet_hdr() {
        device.interface().offloads()
    } else {
        tun_device::OffloadFlags::empty()
    };
    // Opening with a virtio header negotiates offloads afresh; give the
    // device back the ones it had.
    if let Some(orig) = original.filter(|o| device.interface().has_vnet_hdr() && *o != offloads) {
        tun_sys::set_offload(device.first_queue().as_fd(), orig).map_err(|e| {
            CliError::refused(
                format!(
                    "{what}: set its offloads back to {} (opening changed them): {e}",
                    offloads::describe(orig)
                ),
                "check them with `tun show`",
            )
        })?;
        offloads = orig;
    }
    Ok(Opened {
        device,
        name,
        created,
        offloads,
    })
}

/// A short description: `tun0 (tun, offload csum tso4 ..., 1 queue, existing,
/// offloads as the device had them)`.
pub fn describe(o: &Opened) -> String {
    let d = &o.device;
    let offload = if d.interface().has_vnet_hdr() {
        format!("offload {}", offloads::describe(o.offloads))
    } else {
        "no offload".into()
    };
    format!(
        "{} ({}, {}, {} queue{}, {})",
        o.name,
        if d.interface().is_tap() { "tap" } else { "tun" },
        offload,
        d.queues().len(),
        if d.queues().len() == 1 { "" } else { "s" },
        if o.created {
            "created, gone on exit"
        } else {
            "existing, its offloads left as they were"
        }
    )
}
