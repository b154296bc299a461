//! Safe wrappers for the TUN character device: open it, then one function
//! per ioctl of `if_tun.h`. Each takes a borrowed fd and plain values, is
//! sound for any argument, and returns an [`Error`] naming the ioctl.

use core::ffi::{c_int, c_uint, c_ulong};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::ioctl::{self, get_int, ifreq_named, ioctl_ptr, ioctl_val, set_int};
use crate::{Error, InterfaceName, OffloadFlags, Op, TunFlags};

/// Path of the TUN clone device.
pub const TUN_PATH: &core::ffi::CStr = c"/dev/net/tun";

/// `TUNGETIFF` read-only flag: no socket filter is attached to the queue.
/// The same bit as [`TunFlags::NO_PI`], which it shadows on read.
pub const IFF_NOFILTER: u16 = 0x1000;

/// `struct tun_filter` flag: accept all multicast frames.
pub const TUN_FLT_ALLMULTI: u16 = 0x0001;

/// Open `/dev/net/tun` read-write with `O_CLOEXEC` (and `O_NONBLOCK` if asked).
pub fn open_tun(nonblocking: bool) -> Result<OwnedFd, Error> {
    let mut flags = libc::O_RDWR | libc::O_CLOEXEC;
    if nonblocking {
        flags |= libc::O_NONBLOCK;
    }
    // SAFETY: TUN_PATH is a valid NUL-terminated string; open has no other preconditions.
    let fd = unsafe { libc::open(TUN_PATH.as_ptr(), flags) };
    if fd < 0 {
        return Err(Error::last(Op::OpenTun));
    }
    // SAFETY: open returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `TUNSETIFF`: create (or attach to) the interface `name` with `flags`.
///
/// With `name` `None` the kernel picks `tunN`/`tapN`. Returns the name the
/// device really got (a template such as `tun%d` is resolved).
pub fn set_iff(
    fd: BorrowedFd<'_>,
    name: Option<&InterfaceName>,
    flags: TunFlags,
) -> Result<InterfaceName, Error> {
    let mut ifr = ifreq_named(name);
    ifr.ifr_ifru.ifru_flags = flags.bits() as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes back one `struct ifreq`.
    let res = unsafe { ioctl_ptr(fd, Op::TunSetIff, ioctl::TUNSETIFF, &mut ifr) };
    if let Err(e) = res {
        return Err(match name {
            Some(n) => e.with_interface(*n),
            None => e,
        });
    }
    InterfaceName::from_ifreq_bytes(&ifr.ifr_name).ok_or(Error::new(Op::TunSetIff, libc::EINVAL))
}

/// `TUNGETIFF`: the name and flags of the interface this fd is attached to.
///
/// The flags include [`TunFlags::PERSIST`] when the device is persistent,
/// and [`TunFlags::DETACH_QUEUE`] when this queue is detached. Bit `0x1000`
/// does **not** say whether packet information is off: on read the kernel
/// uses it for `IFF_NOFILTER` ([`IFF_NOFILTER`], no socket filter attached
/// to this queue; drivers/net/tun.c, `TUNGETIFF`), so [`TunFlags::NO_PI`]
/// shows up on most queues whatever they were opened with. Read packet
/// information from rtnetlink's `IFLA_TUN_PI` instead.
pub fn get_iff(fd: BorrowedFd<'_>) -> Result<(InterfaceName, TunFlags), Error> {
    let mut ifr = ifreq_named(None);
    // SAFETY: TUNGETIFF writes one `struct ifreq`.
    unsafe { ioctl_ptr(fd, Op::TunGetIff, ioctl::TUNGETIFF, &mut ifr) }?;
    let name = InterfaceName::from_ifreq_bytes(&ifr.ifr_name)
        .ok_or(Error::new(Op::TunGetIff, libc::EINVAL))?;
    // SAFETY: the kernel filled `ifru_flags`; every bit pattern of c_short is valid.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags } as u16;
    Ok((name, TunFlags::from_bits_retain(flags)))
}

/// `TUNSETPERSIST`: keep the device after its last fd closes (or stop keeping it).
pub fn set_persist(fd: BorrowedFd<'_>, persist: bool) -> Result<(), Error> {
    // SAFETY: TUNSETPERSIST takes an integer by value.
    unsafe {
        ioctl_val(
            fd,
            Op::TunSetPersist,
            ioctl::TUNSETPERSIST,
            c_ulong::from(persist),
        )
    }
    .map(drop)
}

/// `TUNSETOWNER`: the uid that may attach without CAP_NET_ADMIN.
///
/// The kernel has no way to clear an owner once set; an id that does not map
/// into the caller's user namespace (such as `u32::MAX`) is EINVAL.
pub fn set_owner(fd: BorrowedFd<'_>, uid: u32) -> Result<(), Error> {
    // SAFETY: TUNSETOWNER takes a uid by value.
    unsafe { ioctl_val(fd, Op::TunSetOwner, ioctl::TUNSETOWNER, c_ulong::from(uid)) }.map(drop)
}

/// `TUNSETGROUP`: the gid that may attach without CAP_NET_ADMIN.
///
/// As with [`set_owner`], an unmapped id is EINVAL and a group cannot be cleared.
pub fn set_group(fd: BorrowedFd<'_>, gid: u32) -> Result<(), Error> {
    // SAFETY: TUNSETGROUP takes a gid by value.
    unsafe { ioctl_val(fd, Op::TunSetGroup, ioctl::TUNSETGROUP, c_ulong::from(gid)) }.map(drop)
}

/// `TUNSETLINK`: the link type (an `ARPHRD_*` value) of a device that is down.
pub fn set_link(fd: BorrowedFd<'_>, arphrd: u16) -> Result<(), Error> {
    // SAFETY: TUNSETLINK takes the link type by value.
    unsafe { ioctl_val(fd, Op::TunSetLink, ioctl::TUNSETLINK, c_ulong::from(arphrd)) }.map(drop)
}

/// `TUNGETFEATURES`: the `IFF_*` flags this kernel's TUN driver supports.
pub fn get_features(fd: BorrowedFd<'_>) -> Result<TunFlags, Error> {
    let mut features: c_uint = 0;
    // SAFETY: TUNGETFEATURES writes one `unsigned int`.
    unsafe { ioctl_ptr(fd, Op::TunGetFeatures, ioctl::TUNGETFEATURES, &mut features) }?;
    Ok(TunFlags::from_bits_retain(features as u16))
}

/// `TUNSETOFFLOAD`: the offloads this reader accepts (EINVAL for unknown bits
/// or USO on a kernel older than 6.2).
pub fn set_offload(fd: BorrowedFd<'_>, offloads: OffloadFlags) -> Result<(), Error> {
    // SAFETY: TUNSETOFFLOAD takes the offload mask by value.
    unsafe {
        ioctl_val(
            fd,
            Op::TunSetOffload,
            ioctl::TUNSETOFFLOAD,
            c_ulong::from(offloads.bits()),
        )
    }
    .map(drop)
}

/// `TUNSETTXFILTER`: accept only frames to `addrs` (TAP only), or all
/// multicast frames too when `all_multicast`. An empty list with
/// `all_multicast` false disables filtering.
pub fn set_tx_filter(
    fd: BorrowedFd<'_>,
    all_multicast: bool,
    addrs: &[[u8; 6]],
) -> Result<(), Error> {
    let count =
        u16::try_from(addrs.len()).map_err(|_| Error::new(Op::TunSetTxFilter, libc::EINVAL))?;
    // struct tun_filter { __u16 flags; __u16 count; __u8 addr[][ETH_ALEN]; }
    let mut buf = Vec::with_capacity(4 + 6 * addrs.len());
    buf.extend_from_slice(&(if all_multicast { TUN_FLT_ALLMULTI } else { 0 }).to_ne_bytes());
    buf.extend_from_slice(&count.to_ne_bytes());
    for a in addrs {
        buf.extend_from_slice(a);
    }
    // SAFETY: TUNSETTXFILTER reads the 4-byte header, then `count` 6-byte
    // addresses; `buf` holds exactly that many bytes.
    unsafe {
        ioctl_ptr(
            fd,
            Op::TunSetTxFilter,
            ioctl::TUNSETTXFILTER,
            buf.as_mut_slice(),
        )
    }
    .map(drop)
}

/// `TUNGETSNDBUF`: the socket send buffer of this queue, in bytes.
pub fn get_sndbuf(fd: BorrowedFd<'_>) -> Result<i32, Error> {
    // SAFETY: TUNGETSNDBUF writes one `int`.
    unsafe { get_int(fd, Op::TunGetSndBuf, ioctl::TUNGETSNDBUF) }
}

/// `TUNSETSNDBUF`: the socket send buffer of this queue, in bytes (> 0).
pub fn set_sndbuf(fd: BorrowedFd<'_>, bytes: i32) -> Result<(), Error> {
    // SAFETY: TUNSETSNDBUF reads one `int`.
    unsafe { set_int(fd, Op::TunSetSndBuf, ioctl::TUNSETSNDBUF, bytes) }
}

/// `TUNGETVNETHDRSZ`: the size of the virtio-net header (10 by default).
pub fn get_vnet_hdr_size(fd: BorrowedFd<'_>) -> Result<i32, Error> {
    // SAFETY: TUNGETVNETHDRSZ writes one `int`.
    unsafe { get_int(fd, Op::TunGetVnetHdrSz, ioctl::TUNGETVNETHDRSZ) }
}

/// `TUNSETVNETHDRSZ`: the size of the virtio-net header (at least 10; 12
/// adds `num_buffers`).
pub fn set_vnet_hdr_size(fd: BorrowedFd<'_>, size: i32) -> Result<(), Error> {
    // SAFETY: TUNSETVNETHDRSZ reads one `int`.
    unsafe { set_int(fd, Op::TunSetVnetHdrSz, ioctl::TUNSETVNETHDRSZ, size) }
}

/// `TUNSETQUEUE`: enable (`attach`) or disable this queue of a multi-queue device.
pub fn set_queue(fd: BorrowedFd<'_>, attach: bool) -> Result<(), Error> {
    let mut ifr = ifreq_named(None);
    let flags = if attach {
        TunFlags::ATTACH_QUEUE
    } else {
        TunFlags::DETACH_QUEUE
    };
    ifr.ifr_ifru.ifru_flags = flags.bits() as libc::c_short;
    // SAFETY: TUNSETQUEUE reads one `struct ifreq`.
    unsafe { ioctl_ptr(fd, Op::TunSetQueue, ioctl::TUNSETQUEUE, &mut ifr) }.map(drop)
}

/// `TUNSETIFINDEX`: the ifindex the next `TUNSETIFF` on this fd creates the device with.
pub fn set_ifindex(fd: BorrowedFd<'_>, index: u32) -> Result<(), Error> {
    let mut v: c_uint = index;
    // SAFETY: TUNSETIFINDEX reads one `unsigned int`.
    unsafe { ioctl_ptr(fd, Op::TunSetIfIndex, ioctl::TUNSETIFINDEX, &mut v) }.map(drop)
}

/// `TUNSETVNETLE`: force little-endian virtio header fields.
pub fn set_vnet_le(fd: BorrowedFd<'_>, on: bool) -> Result<(), Error> {
    // SAFETY: TUNSETVNETLE reads one `int`.
    unsafe { set_int(fd, Op::TunSetVnetLe, ioctl::TUNSETVNETLE, c_int::from(on)) }
}

/// `TUNGETVNETLE`: whether virtio header fields are forced little-endian.
pub fn get_vnet_le(fd: BorrowedFd<'_>) -> Result<bool, Error> {
    // SAFETY: TUNGETVNETLE writes one `int`.
    unsafe { get_int(fd, Op::TunGetVnetLe, ioctl::TUNGETVNETLE) }.map(|v| v != 0)
}

/// `TUNSETVNETBE`: big-endian virtio header fields (kernels built with
/// `CONFIG_TUN_VNET_CROSS_LE` only; EINVAL elsewhere).
pub fn set_vnet_be(fd: BorrowedFd<'_>, on: bool) -> Result<(), Error> {
    // SAFETY: TUNSETVNETBE reads one `int`.
    unsafe { set_int(fd, Op::TunSetVnetBe, ioctl::TUNSETVNETBE, c_int::from(on)) }
}

/// `TUNGETVNETBE`: whether virtio header fields are big-endian.
pub fn get_vnet_be(fd: BorrowedFd<'_>) -> Result<bool, Error> {
    // SAFETY: TUNGETVNETBE writes one `int`.
    unsafe { get_int(fd, Op::TunGetVnetBe, ioctl::TUNGETVNETBE) }.map(|v| v != 0)
}

/// `TUNSETSTEERINGEBPF`: the eBPF program choosing each packet's queue, or `None` to detach.
pub fn set_steering_ebpf(fd: BorrowedFd<'_>, prog: Option<BorrowedFd<'_>>) -> Result<(), Error> {
    let prog = prog.map_or(-1, |p| p.as_raw_fd());
    // SAFETY: TUNSETSTEERINGEBPF reads one `int`.
    unsafe { set_int(fd, Op::TunSetSteeringEbpf, ioctl::TUNSETSTEERINGEBPF, prog) }
}

/// `TUNSETFILTEREBPF`: an eBPF socket filter for the device, or `None` to detach.
pub fn set_filter_ebpf(fd: BorrowedFd<'_>, prog: Option<BorrowedFd<'_>>) -> Result<(), Error> {
    let prog = prog.map_or(-1, |p| p.as_raw_fd());
    // SAFETY: TUNSETFILTEREBPF reads one `int`.
    unsafe { set_int(fd, Op::TunSetFilterEbpf, ioctl::TUNSETFILTEREBPF, prog) }
}

/// `TUNSETCARRIER`: carrier on or off (the link shows NO-CARRIER when off).
pub fn set_carrier(fd: BorrowedFd<'_>, on: bool) -> Result<(), Error> {
    // SAFETY: TUNSETCARRIER reads one `int`.
    unsafe { set_int(fd, Op::TunSetCarrier, ioctl::TUNSETCARRIER, c_int::from(on)) }
}

/// `TUNGETDEVNETNS`: an fd for the network namespace the device lives in
/// (needs CAP_NET_ADMIN in that namespace).
pub fn get_dev_netns(fd: BorrowedFd<'_>) -> Result<OwnedFd, Error> {
    // SAFETY: TUNGETDEVNETNS takes no argument; the zero is not read.
    let nsfd = unsafe { ioctl_val(fd, Op::TunGetDevNetns, ioctl::TUNGETDEVNETNS, 0) }?;
    // SAFETY: on success TUNGETDEVNETNS returns a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(nsfd) })
}

/// The virtio-net header size the kernel uses until `TUNSETVNETHDRSZ` changes it.
pub const DEFAULT_VNET_HDR_SIZE: i32 = 10;
