//! Interface configuration through `SIOC*` ioctls on a control socket:
//! flags (up/down), MTU, hardware address, transmit queue length, rename
//! and index.
//!
//! These are the calls every Linux has had for decades and that work on an
//! interface by name from any socket in the interface's network namespace.
//! IP addresses are not here: IPv6 addresses have no ioctl, so tun-device
//! configures addresses of both families through rtnetlink instead.

use core::ffi::c_int;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::ioctl::{self, ifreq_named, ioctl_ptr};
use crate::{Error, InterfaceFlags, InterfaceName, Op};

/// The union inside `struct ifreq`.
type Ifru = libc::__c_anonymous_ifr_ifru;

/// `ARPHRD_ETHER`, the hardware type of a TAP device's address.
pub const ARPHRD_ETHER: u16 = 1;

/// A datagram socket used only as a handle for interface ioctls.
///
/// It lives in the network namespace of the thread that opened it.
#[derive(Debug)]
pub struct ControlSocket {
    fd: OwnedFd,
}

impl ControlSocket {
    /// Open an `AF_INET` datagram socket with `SOCK_CLOEXEC`.
    pub fn new() -> Result<Self, Error> {
        // SAFETY: socket() has no memory preconditions.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(Error::last(Op::ControlSocket));
        }
        // SAFETY: socket() returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// Issue an ifreq ioctl on `name` and return the ifreq the kernel left.
    ///
    /// # Safety
    /// `request` must read and/or write at most one `struct ifreq`, and use
    /// only fields that are plain data (no `ifru_data` pointer).
    unsafe fn ifreq(
        &self,
        op: Op,
        request: u32,
        name: &InterfaceName,
        fill: impl FnOnce(&mut Ifru),
    ) -> Result<libc::ifreq, Error> {
        let mut ifr = ifreq_named(Some(name));
        fill(&mut ifr.ifr_ifru);
        // SAFETY: the caller guarantees the request touches only this ifreq.
        unsafe { ioctl_ptr(self.fd.as_fd(), op, request, &mut ifr) }
            .map_err(|e| e.with_interface(*name))?;
        Ok(ifr)
    }

    /// `SIOCGIFFLAGS`: the interface flags.
    pub fn flags(&self, name: &InterfaceName) -> Result<InterfaceFlags, Error> {
        // SAFETY: SIOCGIFFLAGS writes `ifru_flags` of one ifreq.
        let ifr = unsafe { self.ifreq(Op::SiocGIfFlags, ioctl::SIOCGIFFLAGS, name, |_| {}) }?;
        // SAFETY: the kernel wrote `ifru_flags`; any c_short is valid.
        // `ifru_flags` is a short: its 16 bits, not sign-extended.
        Ok(InterfaceFlags::from_bits_retain(u32::from(
            unsafe { ifr.ifr_ifru.ifru_flags } as u16,
        )))
    }

    /// `SIOCSIFFLAGS`: set the interface flags (all of them: read, modify, write).
    pub fn set_flags(&self, name: &InterfaceName, flags: InterfaceFlags) -> Result<(), Error> {
        // The ioctl carries the low 16 bits; the others are the driver's
        // state (LOWER_UP, DORMANT), not settable here.
        let fill = |u: &mut Ifru| u.ifru_flags = (flags.bits() & 0xffff) as u16 as libc::c_short;
        // SAFETY: SIOCSIFFLAGS reads `ifru_flags` of one ifreq.
        unsafe { self.ifreq(Op::SiocSIfFlags, ioctl::SIOCSIFFLAGS, name, fill) }.map(drop)
    }

    /// Bring the interface up or down (`IFF_UP`), keeping its other flags.
    pub fn set_up(&self, name: &InterfaceName, up: bool) -> Result<(), Error> {
        let mut flags = self.flags(name)?;
        flags.set(InterfaceFlags::UP, up);
        self.set_flags(name, flags)
    }

    /// `SIOCGIFMTU`: the MTU in bytes.
    pub fn mtu(&self, name: &InterfaceName) -> Result<u32, Error> {
        // SAFETY: SIOCGIFMTU writes `ifru_mtu` of one ifreq.
        let ifr = unsafe { self.ifreq(Op::SiocGIfMtu, ioctl::SIOCGIFMTU, name, |_| {}) }?;
        // SAFETY: the kernel wrote `ifru_mtu`; any c_int is valid.
        Ok(unsafe { ifr.ifr_ifru.ifru_mtu } as u32)
    }

    /// `SIOCSIFMTU`: set the MTU (EINVAL outside the device's range).
    pub fn set_mtu(&self, name: &InterfaceName, mtu: u32) -> Result<(), Error> {
        let mtu = c_int::try_from(mtu)
            .map_err(|_| Error::new(Op::SiocSIfMtu, libc::EINVAL).with_interface(*name))?;
        let fill = |u: &mut Ifru| u.ifru_mtu = mtu;
        // SAFETY: SIOCSIFMTU reads `ifru_mtu` of one ifreq.
        unsafe { self.ifreq(Op::SiocSIfMtu, ioctl::SIOCSIFMTU, name, fill) }.map(drop)
    }

    /// `SIOCGIFHWADDR`: the hardware type (`ARPHRD_*`) and the first six
    /// bytes of the hardware address (the MAC of a TAP device; zero for TUN).
    pub fn hw_addr(&self, name: &InterfaceName) -> Result<(u16, [u8; 6]), Error> {
        // SAFETY: SIOCGIFHWADDR writes `ifru_hwaddr` (a sockaddr) of one ifreq.
        let ifr = unsafe { self.ifreq(Op::SiocGIfHwAddr, ioctl::SIOCGIFHWADDR, name, |_| {}) }?;
        // SAFETY: the kernel wrote `ifru_hwaddr`; a sockaddr is plain data.
        let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
        let mut mac = [0u8; 6];
        for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
            *d = *s as u8;
        }
        Ok((sa.sa_family, mac))
    }

    /// `SIOCSIFHWADDR`: set the Ethernet address of a TAP device.
    pub fn set_mac(&self, name: &InterfaceName, mac: [u8; 6]) -> Result<(), Error> {
        let mut sa_data = [0 as libc::c_char; 14];
        for (d, s) in sa_data.iter_mut().zip(mac.iter()) {
            *d = *s as libc::c_char;
        }
        let sa = libc::sockaddr {
            sa_family: ARPHRD_ETHER,
            sa_data,
        };
        let fill = |u: &mut Ifru| u.ifru_hwaddr = sa;
        // SAFETY: SIOCSIFHWADDR reads `ifru_hwaddr` (a sockaddr) of one ifreq.
        unsafe { self.ifreq(Op::SiocSIfHwAddr, ioctl::SIOCSIFHWADDR, name, fill) }.map(drop)
    }

    /// `SIOCGIFTXQLEN`: the transmit queue length in packets.
    pub fn tx_queue_len(&self, name: &InterfaceName) -> Result<u32, Error> {
        // SAFETY: SIOCGIFTXQLEN writes `ifru_metric` (the int member) of one ifreq.
        let ifr = unsafe { self.ifreq(Op::SiocGIfTxQLen, ioctl::SIOCGIFTXQLEN, name, |_| {}) }?;
        // SAFETY: the kernel wrote the int member; any c_int is valid.
        Ok(unsafe { ifr.ifr_ifru.ifru_metric } as u32)
    }

    /// `SIOCSIFTXQLEN`: set the transmit queue length in packets.
    pub fn set_tx_queue_len(&self, name: &InterfaceName, len: u32) -> Result<(), Error> {
        let len = c_int::try_from(len)
            .map_err(|_| Error::new(Op::SiocSIfTxQLen, libc::EINVAL).with_interface(*name))?;
        let fill = |u: &mut Ifru| u.ifru_metric = len;
        // SAFETY: SIOCSIFTXQLEN reads the int member of one ifreq.
        unsafe { self.ifreq(Op::SiocSIfTxQLen, ioctl::SIOCSIFTXQLEN, name, fill) }.map(drop)
    }

    /// `SIOCSIFNAME`: rename a down interface.
    pub fn rename(&self, name: &InterfaceName, new_name: &InterfaceName) -> Result<(), Error> {
        let newname = new_name.to_ifreq_bytes();
        let fill = |u: &mut Ifru| u.ifru_newname = newname;
        // SAFETY: SIOCSIFNAME reads `ifru_newname` of one ifreq.
        unsafe { self.ifreq(Op::SiocSIfName, ioctl::SIOCSIFNAME, name, fill) }.map(drop)
    }

    /// `SIOCGIFINDEX`: the interface index (never 0 on success).
    pub fn index(&self, name: &InterfaceName) -> Result<u32, Error> {
        // SAFETY: SIOCGIFINDEX writes `ifru_ifindex` of one ifreq.
        let ifr = unsafe { self.ifreq(Op::SiocGIfIndex, ioctl::SIOCGIFINDEX, name, |_| {}) }?;
        // SAFETY: the kernel wrote `ifru_ifindex`; any c_int is valid.
        Ok(unsafe { ifr.ifr_ifru.ifru_ifindex } as u32)
    }
}

impl AsFd for ControlSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for ControlSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}
