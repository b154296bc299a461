//! The error of every operation in this crate: which operation, on which
//! interface, and the errno the kernel returned.

use core::fmt;
use std::io;

use crate::InterfaceName;

/// The operation that failed: one per ioctl or syscall this crate issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // each variant is named after the kernel's request
pub enum Op {
    /// `open("/dev/net/tun")`.
    OpenTun,
    /// `socket()` for the interface-configuration control socket (only
    /// that: other sockets' calls are their callers' to name).
    ControlSocket,
    /// `unshare(CLONE_NEWNET)`.
    UnshareNetns,
    /// `setns(fd, CLONE_NEWNET)`.
    SetNetns,
    TunSetIff,
    TunGetIff,
    TunSetPersist,
    TunSetOwner,
    TunSetGroup,
    TunSetLink,
    TunGetFeatures,
    TunSetOffload,
    TunSetTxFilter,
    TunGetSndBuf,
    TunSetSndBuf,
    TunGetVnetHdrSz,
    TunSetVnetHdrSz,
    TunSetQueue,
    TunSetIfIndex,
    TunSetVnetLe,
    TunGetVnetLe,
    TunSetVnetBe,
    TunGetVnetBe,
    TunSetSteeringEbpf,
    TunSetFilterEbpf,
    TunSetCarrier,
    TunGetDevNetns,
    SiocGIfFlags,
    SiocSIfFlags,
    SiocGIfMtu,
    SiocSIfMtu,
    SiocGIfHwAddr,
    SiocSIfHwAddr,
    SiocGIfTxQLen,
    SiocSIfTxQLen,
    SiocSIfName,
    SiocGIfIndex,
    /// `SIOCETHTOOL` with `ETHTOOL_GSSET_INFO`.
    EthtoolGSsetInfo,
    /// `SIOCETHTOOL` with `ETHTOOL_GSTRINGS`.
    EthtoolGStrings,
    /// `SIOCETHTOOL` with `ETHTOOL_GFEATURES`.
    EthtoolGFeatures,
}

impl Op {
    /// The kernel's name for the operation, as in `if_tun.h` or `sockios.h`.
    pub const fn name(self) -> &'static str {
        match self {
            Op::OpenTun => "open /dev/net/tun",
            Op::ControlSocket => "socket(AF_INET, SOCK_DGRAM)",
            Op::UnshareNetns => "unshare(CLONE_NEWNET)",
            Op::SetNetns => "setns(CLONE_NEWNET)",
            Op::TunSetIff => "TUNSETIFF",
            Op::TunGetIff => "TUNGETIFF",
            Op::TunSetPersist => "TUNSETPERSIST",
            Op::TunSetOwner => "TUNSETOWNER",
            Op::TunSetGroup => "TUNSETGROUP",
            Op::TunSetLink => "TUNSETLINK",
            Op::TunGetFeatures => "TUNGETFEATURES",
            Op::TunSetOffload => "TUNSETOFFLOAD",
            Op::TunSetTxFilter => "TUNSETTXFILTER",
            Op::TunGetSndBuf => "TUNGETSNDBUF",
            Op::TunSetSndBuf => "TUNSETSNDBUF",
            Op::TunGetVnetHdrSz => "TUNGETVNETHDRSZ",
            Op::TunSetVnetHdrSz => "TUNSETVNETHDRSZ",
            Op::TunSetQueue => "TUNSETQUEUE",
            Op::TunSetIfIndex => "TUNSETIFINDEX",
            Op::TunSetVnetLe => "TUNSETVNETLE",
            Op::TunGetVnetLe => "TUNGETVNETLE",
            Op::TunSetVnetBe => "TUNSETVNETBE",
            Op::TunGetVnetBe => "TUNGETVNETBE",
            Op::TunSetSteeringEbpf => "TUNSETSTEERINGEBPF",
            Op::TunSetFilterEbpf => "TUNSETFILTEREBPF",
            Op::TunSetCarrier => "TUNSETCARRIER",
            Op::TunGetDevNetns => "TUNGETDEVNETNS",
            Op::SiocGIfFlags => "SIOCGIFFLAGS",
            Op::SiocSIfFlags => "SIOCSIFFLAGS",
            Op::SiocGIfMtu => "SIOCGIFMTU",
            Op::SiocSIfMtu => "SIOCSIFMTU",
            Op::SiocGIfHwAddr => "SIOCGIFHWADDR",
            Op::SiocSIfHwAddr => "SIOCSIFHWADDR",
            Op::SiocGIfTxQLen => "SIOCGIFTXQLEN",
            Op::SiocSIfTxQLen => "SIOCSIFTXQLEN",
            Op::SiocSIfName => "SIOCSIFNAME",
            Op::SiocGIfIndex => "SIOCGIFINDEX",
            Op::EthtoolGSsetInfo => "SIOCETHTOOL(ETHTOOL_GSSET_INFO)",
            Op::EthtoolGStrings => "SIOCETHTOOL(ETHTOOL_GSTRINGS)",
            Op::EthtoolGFeatures => "SIOCETHTOOL(ETHTOOL_GFEATURES)",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed operation: what was tried, on which interface, and the errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    op: Op,
    interface: Option<InterfaceName>,
    errno: i32,
}

impl Error {
    /// An error of `op` with `errno`.
    pub const fn new(op: Op, errno: i32) -> Self {
        Self {
            op,
            interface: None,
            errno,
        }
    }

    /// The error of `op` from the calling thread's `errno`.
    pub(crate) fn last(op: Op) -> Self {
        let errno = io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        Self::new(op, errno)
    }

    /// The same error, naming the interface it concerned.
    #[must_use]
    pub const fn with_interface(mut self, name: InterfaceName) -> Self {
        self.interface = Some(name);
        self
    }

    /// The operation that failed.
    pub const fn op(&self) -> Op {
        self.op
    }

    /// The interface concerned, when known.
    pub const fn interface(&self) -> Option<InterfaceName> {
        self.interface
    }

    /// The raw errno.
    pub const fn errno(&self) -> i32 {
        self.errno
    }

    /// EBUSY: the name is held by another fd (or the device is not multi-queue).
    pub const fn is_busy(&self) -> bool {
        self.errno == libc::EBUSY
    }

    /// EPERM/EACCES: CAP_NET_ADMIN (or ownership of the device) is missing.
    pub const fn is_permission_denied(&self) -> bool {
        self.errno == libc::EPERM || self.errno == libc::EACCES
    }

    /// The operation is not known to this kernel or device (ENOTTY or
    /// EOPNOTSUPP from any operation, ENOENT/ENODEV when opening
    /// /dev/net/tun). EINVAL is not counted: the kernel also returns it for
    /// a known request with a bad argument.
    pub const fn is_unsupported(&self) -> bool {
        matches!(self.errno, libc::ENOTTY | libc::EOPNOTSUPP)
            || (matches!(self.op, Op::OpenTun) && matches!(self.errno, libc::ENOENT | libc::ENODEV))
    }

    /// The symbolic name of the errno, for the common ones ([`errno_name`]).
    pub const fn errno_name(&self) -> Option<&'static str> {
        errno_name(self.errno)
    }
}

/// The symbolic name of an errno (`"EBUSY"`), for the values TUN ioctls,
/// sockets and rtnetlink return; `None` for the others. The one table of
/// the workspace: every crate's errors name errnos through it.
pub const fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::EUNATCH => "EUNATCH",
        libc::EBADMSG => "EBADMSG",
        libc::EPROTO => "EPROTO",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EBADFD => "EBADFD",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENOBUFS => "ENOBUFS",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        _ => return None,
    })
}

/// An errno as the workspace's errors print it: the symbolic name and the C
/// library's text, `EBUSY: Device or resource busy`; an errno without a
/// name ([`errno_name`]) shows its number instead, `errno 4095: Unknown
/// error 4095`. The number is not repeated after a name (std's
/// " (os error N)"): the name says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrnoText(pub i32);

impl fmt::Display for ErrnoText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errno = self.0;
        match errno_name(errno) {
            Some(name) => write!(f, "{name}: ")?,
            None => write!(f, "errno {errno}: ")?,
        }
        // std's text is strerror's followed by " (os error N)".
        let text = io::Error::from_raw_os_error(errno).to_string();
        let suffix = format!(" (os error {errno})");
        f.write_str(text.strip_suffix(&suffix).unwrap_or(&text))
    }
}

/// Whether the process runs with effective uid 0.
fn running_as_root() -> bool {
    // SAFETY: geteuid takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op.name())?;
        if let Some(name) = &self.interface {
            write!(f, " on {name}")?;
        }
        write!(f, " failed: {}", ErrnoText(self.errno))?;
        // As root the kernel's EPERM is about the request (a value, a
        // device owned by another user), not a missing privilege.
        if self.is_permission_denied() && !running_as_root() {
            f.write_str(match self.op {
                Op::UnshareNetns | Op::SetNetns => " (needs root or CAP_SYS_ADMIN)",
                _ => " (needs root or CAP_NET_ADMIN)",
            })?;
        } else if self.is_busy() && matches!(self.op, Op::TunSetIff) {
            f.write_str(" (the name is in use by another fd or a device without IFF_MULTI_QUEUE)")?;
        } else if matches!(self.op, Op::OpenTun) && self.errno == libc::ENOENT {
            f.write_str(" (/dev/net/tun is missing: load the tun module or create the node)")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        io::Error::new(io::Error::from_raw_os_error(e.errno).kind(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_op_interface_and_errno() {
        let name = InterfaceName::new("tun0").unwrap();
        let e = Error::new(Op::TunSetIff, libc::EBUSY).with_interface(name);
        let text = e.to_string();
        assert!(
            text.starts_with("TUNSETIFF on tun0 failed: EBUSY: "),
            "{text}"
        );
        assert!(
            text.starts_with("TUNSETIFF on tun0 failed: EBUSY: Device or resource busy"),
            "{text}"
        );
        assert!(text.contains("name is in use"), "{text}");
        assert!(e.is_busy());

        let e = Error::new(Op::TunSetOffload, libc::EPERM);
        assert!(e.to_string().starts_with("TUNSETOFFLOAD failed: EPERM: "));
        // The privilege hint only when the caller is not root.
        assert_eq!(
            e.to_string().ends_with("(needs root or CAP_NET_ADMIN)"),
            !running_as_root(),
            "{e}"
        );
        assert!(e.is_permission_denied());

        let e = Error::new(Op::UnshareNetns, libc::EPERM);
        assert_eq!(
            e.to_string().ends_with("(needs root or CAP_SYS_ADMIN)"),
            !running_as_root(),
            "{e}"
        );

        let e = Error::new(Op::OpenTun, libc::ENOENT);
        assert!(e.is_unsupported());
        assert!(e.to_string().contains("/dev/net/tun is missing"));
    }

    #[test]
    fn errno_text_names_or_numbers_the_errno() {
        assert_eq!(ErrnoText(libc::EEXIST).to_string(), "EEXIST: File exists");
        assert_eq!(errno_name(libc::EBADMSG), Some("EBADMSG"));
        // No name: the number, once, and strerror's text.
        let unnamed = ErrnoText(4095).to_string();
        assert!(unnamed.starts_with("errno 4095: "), "{unnamed}");
        assert!(!unnamed.contains("os error"), "{unnamed}");
        let e = Error::new(Op::TunSetIff, 4095);
        assert_eq!(e.errno_name(), None);
        assert!(
            e.to_string().starts_with("TUNSETIFF failed: errno 4095: "),
            "{e}"
        );
    }

    #[test]
    fn converts_to_io_error_with_the_right_kind() {
        let e: io::Error = Error::new(Op::TunSetIff, libc::EPERM).into();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        let inner = e.get_ref().and_then(|i| i.downcast_ref::<Error>()).unwrap();
        assert_eq!(inner.op(), Op::TunSetIff);
    }
}
