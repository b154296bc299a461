//! TUN ioctl request numbers, computed from direction, type, number and
//! size, and the crate's private helpers that issue an ioctl.
//!
//! The kernel's `_IOC` encoding is generic on most architectures; mips,
//! powerpc and sparc use a different layout (three direction bits, a 13-bit
//! size). Numbers are computed here by `const fn` so that each architecture
//! gets its own, and unit-tested against the kernel's x86-64 values. An
//! architecture in neither list below does not compile: its layout has to
//! be looked up in its `arch/*/include/uapi/asm/ioctl.h` and added first.
//!
//! Every request number in this crate is a `u32` (the kernel's `unsigned
//! int cmd`), converted to the C library's [`Request`] type in one place,
//! when the ioctl is issued.

use core::ffi::{c_int, c_uint, c_ulong, c_void};
use core::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::{Error, InterfaceName, Op};

/// The `ioctl(2)` request type of the C library in use: `c_ulong` on glibc,
/// `c_int` on musl.
pub type Request = libc::Ioctl;

/// The architectures whose `_IOC` layout is the generic one of
/// `include/uapi/asm-generic/ioctl.h` (two direction bits, a 14-bit size).
const GENERIC_LAYOUT: bool = cfg!(any(
    target_arch = "x86",
    target_arch = "x86_64",
    target_arch = "arm",
    target_arch = "aarch64",
    target_arch = "riscv32",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "s390x",
    target_arch = "csky"
));

/// The architectures whose `_IOC` layout has three direction bits and a
/// 13-bit size field (`asm/ioctl.h` of mips, powerpc and sparc).
const ALT_LAYOUT: bool = cfg!(any(
    target_arch = "mips",
    target_arch = "mips32r6",
    target_arch = "mips64",
    target_arch = "mips64r6",
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "sparc",
    target_arch = "sparc64"
));

#[cfg(not(any(
    target_arch = "x86",
    target_arch = "x86_64",
    target_arch = "arm",
    target_arch = "aarch64",
    target_arch = "riscv32",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "s390x",
    target_arch = "csky",
    target_arch = "mips",
    target_arch = "mips32r6",
    target_arch = "mips64",
    target_arch = "mips64r6",
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
compile_error!(
    "tun-sys: the _IOC layout of this architecture is not known; add it to GENERIC_LAYOUT or ALT_LAYOUT in tun-sys/src/ioctl.rs"
);

const _: () = assert!(
    GENERIC_LAYOUT != ALT_LAYOUT,
    "one _IOC layout per architecture"
);

mod layout {
    use super::ALT_LAYOUT;
    pub const NONE: u32 = if ALT_LAYOUT { 1 } else { 0 };
    pub const WRITE: u32 = if ALT_LAYOUT { 4 } else { 1 };
    pub const READ: u32 = 2;
    pub const SIZE_BITS: u32 = if ALT_LAYOUT { 13 } else { 14 };
}

const NR_SHIFT: u32 = 0;
const TYPE_SHIFT: u32 = 8;
const SIZE_SHIFT: u32 = 16;
const DIR_SHIFT: u32 = SIZE_SHIFT + layout::SIZE_BITS;

/// The kernel's `_IOC(dir, type, nr, size)`.
///
/// A size that does not fit the architecture's size field is a compile-time
/// error when used in a `const`.
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    assert!(size < (1 << layout::SIZE_BITS), "ioctl argument too large");
    (dir << DIR_SHIFT)
        | ((size as u32) << SIZE_SHIFT)
        | ((ty as u32) << TYPE_SHIFT)
        | ((nr as u32) << NR_SHIFT)
}

/// `_IO(type, nr)`: no argument.
pub const fn io(ty: u8, nr: u8) -> u32 {
    ioc(layout::NONE, ty, nr, 0)
}

/// `_IOW(type, nr, T)`: userspace writes a `T` to the kernel.
pub const fn iow<T>(ty: u8, nr: u8) -> u32 {
    ioc(layout::WRITE, ty, nr, size_of::<T>())
}

/// `_IOR(type, nr, T)`: the kernel writes a `T` back to userspace.
pub const fn ior<T>(ty: u8, nr: u8) -> u32 {
    ioc(layout::READ, ty, nr, size_of::<T>())
}

const T: u8 = b'T';

/// Attach the fd to an interface (create it if needed): `struct ifreq *`.
pub const TUNSETIFF: u32 = iow::<c_int>(T, 202);
/// Keep the interface when the last fd closes: `int` by value.
pub const TUNSETPERSIST: u32 = iow::<c_int>(T, 203);
/// Let a uid open the interface without CAP_NET_ADMIN: `uid_t` by value.
pub const TUNSETOWNER: u32 = iow::<c_int>(T, 204);
/// Set the link type (ARPHRD_*) of a detached device: `int` by value.
pub const TUNSETLINK: u32 = iow::<c_int>(T, 205);
/// Let a gid open the interface without CAP_NET_ADMIN: `gid_t` by value.
pub const TUNSETGROUP: u32 = iow::<c_int>(T, 206);
/// The IFF_* flags this kernel supports: `unsigned int *`.
pub const TUNGETFEATURES: u32 = ior::<c_uint>(T, 207);
/// Which offloads (TUN_F_*) userspace can receive: `unsigned int` by value.
pub const TUNSETOFFLOAD: u32 = iow::<c_uint>(T, 208);
/// TAP multicast/unicast MAC filter: `struct tun_filter *`.
pub const TUNSETTXFILTER: u32 = iow::<c_uint>(T, 209);
/// Name and flags of the attached interface: `struct ifreq *`.
pub const TUNGETIFF: u32 = ior::<c_uint>(T, 210);
/// Socket send buffer size: `int *`.
pub const TUNGETSNDBUF: u32 = ior::<c_int>(T, 211);
/// Socket send buffer size: `int *`.
pub const TUNSETSNDBUF: u32 = iow::<c_int>(T, 212);
/// Attach a classic BPF socket filter to every queue: `struct sock_fprog *`.
pub const TUNATTACHFILTER: u32 = iow::<libc::sock_fprog>(T, 213);
/// Detach the classic BPF filter: `struct sock_fprog *`.
pub const TUNDETACHFILTER: u32 = iow::<libc::sock_fprog>(T, 214);
/// Size of the virtio-net header in front of each packet: `int *`.
pub const TUNGETVNETHDRSZ: u32 = ior::<c_int>(T, 215);
/// Size of the virtio-net header in front of each packet: `int *`.
pub const TUNSETVNETHDRSZ: u32 = iow::<c_int>(T, 216);
/// Attach or detach a multi-queue fd (IFF_ATTACH_QUEUE/IFF_DETACH_QUEUE): `struct ifreq *`.
pub const TUNSETQUEUE: u32 = iow::<c_int>(T, 217);
/// Choose the ifindex of the interface about to be created: `unsigned int *`.
pub const TUNSETIFINDEX: u32 = iow::<c_uint>(T, 218);
/// Read the classic BPF filter back: `struct sock_fprog *`.
pub const TUNGETFILTER: u32 = ior::<libc::sock_fprog>(T, 219);
/// Virtio header fields little-endian regardless of host order: `int *`.
pub const TUNSETVNETLE: u32 = iow::<c_int>(T, 220);
/// Whether virtio header fields are forced little-endian: `int *`.
pub const TUNGETVNETLE: u32 = ior::<c_int>(T, 221);
/// Virtio header fields big-endian (legacy, needs CONFIG_TUN_VNET_CROSS_LE): `int *`.
pub const TUNSETVNETBE: u32 = iow::<c_int>(T, 222);
/// Whether virtio header fields are big-endian: `int *`.
pub const TUNGETVNETBE: u32 = ior::<c_int>(T, 223);
/// eBPF program that picks the queue of each packet (fd, -1 detaches): `int *`.
pub const TUNSETSTEERINGEBPF: u32 = ior::<c_int>(T, 224);
/// eBPF socket filter on the device (fd, -1 detaches): `int *`.
pub const TUNSETFILTEREBPF: u32 = ior::<c_int>(T, 225);
/// Carrier on or off: `int *`.
pub const TUNSETCARRIER: u32 = iow::<c_int>(T, 226);
/// Open the network namespace of the device: no argument, returns an fd.
pub const TUNGETDEVNETNS: u32 = io(T, 227);

/// A `SIOC*` request of `<linux/sockios.h>` (the C library gives them as
/// its own integer type) as a request number of this crate. They are small
/// values without an `_IOC` encoding, the same on every architecture.
const fn sockios(n: c_ulong) -> u32 {
    assert!(n <= u32::MAX as c_ulong, "SIOC* request out of range");
    n as u32
}

/// `SIOCGIFFLAGS`: read the interface flags (`ifru_flags`).
pub(crate) const SIOCGIFFLAGS: u32 = sockios(libc::SIOCGIFFLAGS);
/// `SIOCSIFFLAGS`: write the interface flags (`ifru_flags`).
pub(crate) const SIOCSIFFLAGS: u32 = sockios(libc::SIOCSIFFLAGS);
/// `SIOCGIFMTU`: read the MTU (`ifru_mtu`).
pub(crate) const SIOCGIFMTU: u32 = sockios(libc::SIOCGIFMTU);
/// `SIOCSIFMTU`: write the MTU (`ifru_mtu`).
pub(crate) const SIOCSIFMTU: u32 = sockios(libc::SIOCSIFMTU);
/// `SIOCGIFHWADDR`: read the hardware address (`ifru_hwaddr`).
pub(crate) const SIOCGIFHWADDR: u32 = sockios(libc::SIOCGIFHWADDR);
/// `SIOCSIFHWADDR`: write the hardware address (`ifru_hwaddr`).
pub(crate) const SIOCSIFHWADDR: u32 = sockios(libc::SIOCSIFHWADDR);
/// `SIOCGIFTXQLEN`: read the transmit queue length (the int member).
pub(crate) const SIOCGIFTXQLEN: u32 = sockios(libc::SIOCGIFTXQLEN);
/// `SIOCSIFTXQLEN`: write the transmit queue length (the int member).
pub(crate) const SIOCSIFTXQLEN: u32 = sockios(libc::SIOCSIFTXQLEN);
/// `SIOCSIFNAME`: rename (`ifru_newname`).
pub(crate) const SIOCSIFNAME: u32 = sockios(libc::SIOCSIFNAME);
/// `SIOCGIFINDEX`: read the interface index (`ifru_ifindex`).
pub(crate) const SIOCGIFINDEX: u32 = sockios(libc::SIOCGIFINDEX);
/// `SIOCETHTOOL`: an ethtool command in the buffer `ifru_data` points to.
pub(crate) const SIOCETHTOOL: u32 = sockios(libc::SIOCETHTOOL);

/// Convert a request number of this crate to the C library's request type.
///
/// On glibc the type is `c_ulong` (a plain widening); on musl it is `c_int`
/// and the kernel reads the same 32 bits, so the bit pattern is kept.
#[inline]
pub(crate) const fn req(n: u32) -> Request {
    n as Request
}

/// An `ifreq` with the name (if any) and nothing else set.
pub(crate) fn ifreq_named(name: Option<&InterfaceName>) -> libc::ifreq {
    // SAFETY: ifreq is plain data (arrays, integers, a raw pointer in a union);
    // all-zero bytes are a valid value of every field.
    let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
    if let Some(name) = name {
        ifr.ifr_name = name.to_ifreq_bytes();
    }
    ifr
}

/// The result of `ioctl(2)`: the return value, or the error of `op`.
fn check(op: Op, rc: c_int) -> Result<c_int, Error> {
    if rc < 0 { Err(Error::last(op)) } else { Ok(rc) }
}

/// Issue an ioctl whose argument points to `arg` (a `T`, or the bytes of a
/// slice, whose address alone is passed).
///
/// # Safety
/// `request` must be one whose kernel handler, given this address, reads
/// and/or writes only bytes of `arg` (at most `size_of_val(arg)` of them),
/// with a layout `arg` matches; it must not keep the address after the call.
pub(crate) unsafe fn ioctl_ptr<T: ?Sized>(
    fd: BorrowedFd<'_>,
    op: Op,
    request: u32,
    arg: &mut T,
) -> Result<c_int, Error> {
    let arg: *mut c_void = (arg as *mut T).cast();
    // SAFETY: the caller guarantees `request` accesses only the bytes of
    // `arg`, a live, exclusive borrow for the duration of the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req(request), arg) };
    check(op, rc)
}

/// Issue an ioctl whose argument is an integer passed by value.
///
/// # Safety
/// `request` must be one whose kernel handler takes its argument as an
/// integer and dereferences nothing: the same value as a pointer would let
/// the kernel touch arbitrary memory of the process.
pub(crate) unsafe fn ioctl_val(
    fd: BorrowedFd<'_>,
    op: Op,
    request: u32,
    value: c_ulong,
) -> Result<c_int, Error> {
    // SAFETY: the caller guarantees `request` takes an integer by value.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req(request), value) };
    check(op, rc)
}

/// Issue an ioctl that writes one `int` at its argument, and return it.
///
/// # Safety
/// `request` must be one whose kernel handler writes (or reads) at most one
/// `int` at its argument.
pub(crate) unsafe fn get_int(fd: BorrowedFd<'_>, op: Op, request: u32) -> Result<c_int, Error> {
    let mut v: c_int = 0;
    // SAFETY: the caller guarantees `request` touches one `int` at most.
    unsafe { ioctl_ptr(fd, op, request, &mut v) }?;
    Ok(v)
}

/// Issue an ioctl that reads one `int` at its argument.
///
/// # Safety
/// `request` must be one whose kernel handler reads (or writes) at most one
/// `int` at its argument.
pub(crate) unsafe fn set_int(
    fd: BorrowedFd<'_>,
    op: Op,
    request: u32,
    mut v: c_int,
) -> Result<(), Error> {
    // SAFETY: the caller guarantees `request` touches one `int` at most.
    unsafe { ioctl_ptr(fd, op, request, &mut v) }.map(drop)
}

#[cfg(test)]
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "x86"))]
mod tests {
    use super::*;

    /// The kernel's values from include/uapi/linux/if_tun.h on the generic layout.
    #[test]
    fn request_numbers_match_the_kernel() {
        let cases: &[(&str, u32, u32)] = &[
            ("TUNSETIFF", TUNSETIFF, 0x400454ca),
            ("TUNSETPERSIST", TUNSETPERSIST, 0x400454cb),
            ("TUNSETOWNER", TUNSETOWNER, 0x400454cc),
            ("TUNSETLINK", TUNSETLINK, 0x400454cd),
            ("TUNSETGROUP", TUNSETGROUP, 0x400454ce),
            ("TUNGETFEATURES", TUNGETFEATURES, 0x800454cf),
            ("TUNSETOFFLOAD", TUNSETOFFLOAD, 0x400454d0),
            ("TUNSETTXFILTER", TUNSETTXFILTER, 0x400454d1),
            ("TUNGETIFF", TUNGETIFF, 0x800454d2),
            ("TUNGETSNDBUF", TUNGETSNDBUF, 0x800454d3),
            ("TUNSETSNDBUF", TUNSETSNDBUF, 0x400454d4),
            ("TUNGETVNETHDRSZ", TUNGETVNETHDRSZ, 0x800454d7),
            ("TUNSETVNETHDRSZ", TUNSETVNETHDRSZ, 0x400454d8),
            ("TUNSETQUEUE", TUNSETQUEUE, 0x400454d9),
            ("TUNSETIFINDEX", TUNSETIFINDEX, 0x400454da),
            ("TUNSETVNETLE", TUNSETVNETLE, 0x400454dc),
            ("TUNGETVNETLE", TUNGETVNETLE, 0x800454dd),
            ("TUNSETVNETBE", TUNSETVNETBE, 0x400454de),
            ("TUNGETVNETBE", TUNGETVNETBE, 0x800454df),
            ("TUNSETSTEERINGEBPF", TUNSETSTEERINGEBPF, 0x800454e0),
            ("TUNSETFILTEREBPF", TUNSETFILTEREBPF, 0x800454e1),
            ("TUNSETCARRIER", TUNSETCARRIER, 0x400454e2),
            ("TUNGETDEVNETNS", TUNGETDEVNETNS, 0x54e3),
        ];
        for &(name, ours, kernel) in cases {
            assert_eq!(
                ours, kernel,
                "{name}: computed {ours:#x}, kernel {kernel:#x}"
            );
        }
    }

    /// The classic-BPF ioctls carry `struct sock_fprog` (16 bytes on 64-bit).
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn sock_fprog_ioctls_match_the_kernel() {
        assert_eq!(TUNATTACHFILTER, 0x401054d5);
        assert_eq!(TUNDETACHFILTER, 0x401054d6);
        assert_eq!(TUNGETFILTER, 0x801054db);
    }

    #[test]
    fn libc_agrees_where_it_has_the_constant() {
        assert_eq!(req(TUNSETIFF), libc::TUNSETIFF);
        assert_eq!(req(TUNGETFEATURES), libc::TUNGETFEATURES);
        assert_eq!(req(TUNSETOFFLOAD), libc::TUNSETOFFLOAD);
        assert_eq!(req(TUNSETSTEERINGEBPF), libc::TUNSETSTEERINGEBPF);
        assert_eq!(libc::c_ulong::from(SIOCGIFFLAGS), libc::SIOCGIFFLAGS);
        assert_eq!(libc::c_ulong::from(SIOCGIFINDEX), libc::SIOCGIFINDEX);
    }
}
