//! The raw Linux TUN/TAP interface: ioctl request numbers, the `IFF_*` and
//! `TUN_F_*` flags, validated interface names, and one safe wrapper per
//! operation. This is the only crate of the workspace that issues raw
//! syscalls for TUN; everything above it is safe code.
//!
//! # Why `libc`
//!
//! The wrappers are built on `libc`: it supplies `struct ifreq` with its
//! union, `struct sock_fprog`, the `ioctl` request type of each C library
//! (`c_ulong` on glibc, `c_int` on musl, exposed as [`ioctl::Request`]), and
//! the `SIOC*` constants. `rustix` has no `ifreq` for TUN and would need one
//! `Ioctl` trait impl per request with the same unsafe contract, so it buys
//! nothing here. Request numbers are still computed by this crate (see
//! [`ioctl`]) from direction, type, number and size, and tested against the
//! kernel's values.
//!
//! # What lives here and what does not
//!
//! - Every ioctl of `include/uapi/linux/if_tun.h`, as functions taking a
//!   [`BorrowedFd`](std::os::fd::BorrowedFd) of an open `/dev/net/tun`
//!   ([`open_tun`], [`set_iff`], [`set_offload`], ...).
//! - Interface configuration that works by name on any socket, through the
//!   classic `SIOC*` ioctls on a [`ControlSocket`]: flags (up/down), MTU,
//!   hardware address, transmit queue length, rename, index; and the
//!   offload features the kernel holds ([`ControlSocket::features`],
//!   `SIOCETHTOOL`, what `ethtool -k` reads).
//! - IP addresses are **not** here: IPv6 has no address ioctl, so
//!   `tun-device` configures addresses of both families through rtnetlink.
//! - [`unshare_network`] / [`enter_network`] for network namespaces.
//! - With the `tokio` feature, `TokioFd`: an owned fd registered with
//!   tokio's reactor, whose `unsafe` registration contract holds by
//!   construction (tun-async waits on its queues through it).
//!
//! Every error is an [`Error`] naming the operation (the ioctl), the
//! interface when known, and the errno.
//!
//! ```no_run
//! use tun_sys::{InterfaceName, OffloadFlags, TunFlags};
//! use std::os::fd::AsFd;
//!
//! let fd = tun_sys::open_tun(false)?;
//! let name = InterfaceName::new("tun%d").expect("valid name");
//! let real = tun_sys::set_iff(fd.as_fd(), Some(&name), TunFlags::TUN | TunFlags::NO_PI | TunFlags::VNET_HDR)?;
//! tun_sys::set_offload(fd.as_fd(), OffloadFlags::TCP)?;
//! println!("created {real}");
//! # Ok::<(), tun_sys::Error>(())
//! ```

#![cfg(target_os = "linux")]

mod error;
mod ethtool;
mod flags;
pub mod ioctl;
mod name;
mod netif;
mod netns;
#[cfg(feature = "tokio")]
mod tokio_fd;
mod tun;

pub use error::{ErrnoText, Error, Op, errno_name};
pub use ethtool::{
    ETH_GSTRING_LEN, ETH_SS_FEATURES, ETHTOOL_GFEATURES, ETHTOOL_GSSET_INFO, ETHTOOL_GSTRINGS,
    Feature, FeatureBlock, Features,
};
pub use flags::{InterfaceFlags, OffloadFlags, TunFlags};
pub use name::{IFNAMSIZ, InterfaceName, NameError};
pub use netif::{ARPHRD_ETHER, ControlSocket};
pub use netns::{enter_network, unshare_network};
#[cfg(feature = "tokio")]
pub use tokio_fd::TokioFd;
pub use tun::{
    DEFAULT_VNET_HDR_SIZE, IFF_NOFILTER, TUN_FLT_ALLMULTI, TUN_PATH, get_dev_netns, get_features,
    get_iff, get_sndbuf, get_vnet_be, get_vnet_hdr_size, get_vnet_le, open_tun, set_carrier,
    set_filter_ebpf, set_group, set_iff, set_ifindex, set_link, set_offload, set_owner,
    set_persist, set_queue, set_sndbuf, set_steering_ebpf, set_tx_filter, set_vnet_be,
    set_vnet_hdr_size, set_vnet_le,
};
