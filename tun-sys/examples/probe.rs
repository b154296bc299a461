//! Probe what this kernel's TUN driver supports, in a private network
//! namespace so the host's interfaces are never touched.
//!
//! Run as root: `cargo run -p tun-sys --example probe`.

use std::os::fd::AsFd;

use tun_sys::{InterfaceName, OffloadFlags, TunFlags};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tun_sys::unshare_network()?;
    let fd = tun_sys::open_tun(false)?;
    let features = tun_sys::get_features(fd.as_fd())?;
    println!("TUNGETFEATURES: {features:?}");

    let name = InterfaceName::new("probe%d")?;
    let flags = TunFlags::TUN | TunFlags::NO_PI | TunFlags::VNET_HDR;
    let dev = tun_sys::set_iff(fd.as_fd(), Some(&name), flags)?;
    println!("created {dev} (in a private network namespace)");
    println!(
        "virtio-net header size: {}",
        tun_sys::get_vnet_hdr_size(fd.as_fd())?
    );

    let masks = [
        ("csum", OffloadFlags::CSUM),
        ("csum+tso4+tso6", OffloadFlags::TCP),
        (
            "csum+tso4+tso6+tso_ecn",
            OffloadFlags::TCP | OffloadFlags::TSO_ECN,
        ),
        ("csum+tso4+tso6+uso4+uso6", OffloadFlags::TCP_UDP),
    ];
    for (label, mask) in masks {
        match tun_sys::set_offload(fd.as_fd(), mask) {
            Ok(()) => println!("TUNSETOFFLOAD {label:<26} accepted"),
            Err(e) => println!("TUNSETOFFLOAD {label:<26} refused: {e}"),
        }
    }
    let ctl = tun_sys::ControlSocket::new()?;
    println!(
        "ifindex {}, mtu {}, txqueuelen {}",
        ctl.index(&dev)?,
        ctl.mtu(&dev)?,
        ctl.tx_queue_len(&dev)?
    );
    Ok(())
}
