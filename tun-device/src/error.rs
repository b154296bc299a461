//! The errors of the device layer: which operation, on which interface,
//! and why, sorted into kinds a caller can act on (a broken device, a bad
//! packet, buffers that are too small, a refused configuration).

use core::fmt;
use std::io;

use tun_offload::{PacketError, TunnelError};
use tun_sys::{InterfaceName, TunFlags};

use crate::netlink::NetlinkError;

/// The I/O operation that failed on a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IoOp {
    /// A read of one packet (`read`/`readv`).
    Recv,
    /// A write of one packet (`write`/`writev`).
    Send,
    /// A batched receive (reads and GSO split).
    RecvBatch,
    /// A batched send (GRO coalescing and writes).
    SendBatch,
    /// Waiting for readiness (`poll`).
    Poll,
}

impl IoOp {
    /// A short name of the operation.
    pub const fn name(self) -> &'static str {
        match self {
            IoOp::Recv => "recv",
            IoOp::Send => "send",
            IoOp::RecvBatch => "recv_batch",
            IoOp::SendBatch => "send_batch",
            IoOp::Poll => "poll",
        }
    }
}

impl fmt::Display for IoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What was done with a network namespace, for [`Error::Namespace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NsAction {
    /// Opening its file (`/run/netns/NAME`, `/proc/PID/ns/net`).
    Open,
    /// Entering it (`setns(fd, CLONE_NEWNET)`).
    Enter,
    /// Duplicating its fd.
    Dup,
}

/// A system call of the device layer that is neither queue I/O nor one of
/// tun-sys's ioctls, for [`Error::Syscall`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Syscall {
    /// `dup` of a queue's fd.
    Dup,
    /// `eventfd`, read or write of an [`Interrupt`](crate::Interrupt).
    Eventfd,
    /// Spawning a thread (a relay pump, a namespace switch).
    SpawnThread,
    /// `fstat` of a namespace file.
    Fstat,
    /// `ioctl(FIONBIO)` making a queue's fd non-blocking.
    Fionbio,
}

impl Syscall {
    /// A short name of the call.
    pub const fn name(self) -> &'static str {
        match self {
            Syscall::Dup => "dup",
            Syscall::Eventfd => "eventfd",
            Syscall::SpawnThread => "spawn thread",
            Syscall::Fstat => "fstat",
            Syscall::Fionbio => "ioctl(FIONBIO)",
        }
    }
}

impl fmt::Display for Syscall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a caller can do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Non-blocking I/O found nothing to read or no room to write: retry
    /// after readiness.
    WouldBlock,
    /// The device is broken or gone (EBADFD, the interface deleted): drop
    /// the queue.
    DeviceGone,
    /// The interface is down: writes fail (EIO) until it is brought up.
    InterfaceDown,
    /// A packet was malformed (ours before any write, or the kernel's
    /// EINVAL on a write); the device stays usable.
    BadPacket,
    /// The caller's buffers cannot hold what the kernel handed over.
    BufferTooSmall,
    /// A privilege is missing (CAP_NET_ADMIN, or ownership of the device).
    PermissionDenied,
    /// The thing to add exists already (an address, a name).
    AlreadyExists,
    /// The interface, address or namespace does not exist.
    NotFound,
    /// The name is held by another device or fd (EBUSY).
    Busy,
    /// The configuration was refused, by this crate before any syscall or
    /// by the kernel (EINVAL on a setting).
    InvalidConfig,
    /// A call's arguments do not fit together (batch buffers and lengths,
    /// headroom): a caller's mistake, refused before any I/O.
    InvalidInput,
    /// This kernel lacks the feature.
    Unsupported,
    /// A wait was cut short through the queue's [`Interrupt`](crate::Interrupt)
    /// (another thread asked the caller to stop).
    Interrupted,
    /// Anything else; the errno says more.
    Other,
}

/// A configuration the builder refuses before issuing any syscall.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The interface name is not one the kernel accepts.
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        error: tun_sys::NameError,
    },
    /// Offload (`IFF_VNET_HDR`) together with packet information: the
    /// kernel would put the virtio header behind the 4-byte `tun_pi`, and
    /// either side would misread the other.
    OffloadWithPacketInfo,
    /// A MAC address was given for a TUN (layer 3) device, which has none.
    MacOnTun,
    /// A peer address of another family than the local address.
    PeerFamilyMismatch {
        /// The local address with its prefix.
        addr: ipnet::IpNet,
        /// The peer.
        peer: std::net::IpAddr,
    },
    /// A prefix longer than the address family allows.
    BadPrefix {
        /// The address.
        addr: std::net::IpAddr,
        /// The prefix given.
        prefix: u8,
        /// The longest prefix of the family (32 or 128).
        max: u8,
    },
    /// Zero queues were asked for.
    NoQueues,
    /// More than one queue without multi-queue.
    QueuesWithoutMultiQueue {
        /// Queues asked for.
        queues: usize,
    },
    /// A template name (`tun%d`) together with `existing`: there is no
    /// existing device of a name the kernel has not picked yet.
    ExistingByTemplate,
    /// Another queue can only be opened on a multi-queue device.
    NotMultiQueue,
    /// The operation needs the interface's netlink socket, which could not
    /// be opened (for example a device opened from an fd without
    /// CAP_NET_ADMIN in its namespace).
    NoControl,
    /// Duplicate address detection found the address in use elsewhere on
    /// the link (`IFA_F_DADFAILED`): the kernel will not use it.
    DadFailed {
        /// The address.
        addr: ipnet::IpNet,
    },
    /// The device's first queue (whose fd the interface finds the device
    /// through) was dropped from a multi-queue device: without it the
    /// interface cannot be told apart from one that took its name or
    /// index, so configuration refuses to guess.
    NoQueue,
    /// The virtio header size of an existing device is not the one its
    /// offloads need: 10 bytes, or 24 with the UDP-tunnel offload.
    VnetHdrSize {
        /// The size the kernel reported.
        size: i32,
        /// The size the offloads given need.
        expected: i32,
    },
    /// The call needs a device with offload (`IFF_VNET_HDR`) and without
    /// packet information.
    OffloadRequired,
    /// A UDP-tunnel super-packet was handed to a device whose UDP-tunnel
    /// offload was not granted (Linux before 6.17, or turned off).
    TunnelOffloadRequired,
    /// Pass-through needs two devices with offload and the same offloads.
    OffloadMismatch {
        /// The offloads of the device read from.
        from: tun_sys::OffloadFlags,
        /// The offloads of the device written to.
        to: tun_sys::OffloadFlags,
    },
    /// A relay needs as many queues on one side as on the other, and at
    /// least one.
    QueuePairs {
        /// Queues of the first device.
        a: usize,
        /// Queues of the second device.
        b: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadName { name, error } => write!(f, "interface name {name:?}: {error}"),
            ConfigError::OffloadWithPacketInfo => f.write_str(
                "offload (IFF_VNET_HDR) cannot be combined with packet information: \
                 turn one of them off",
            ),
            ConfigError::MacOnTun => f.write_str("a TUN (layer 3) device has no MAC address"),
            ConfigError::PeerFamilyMismatch { addr, peer } => {
                write!(f, "peer {peer} is not of the same family as {addr}")
            }
            ConfigError::BadPrefix { addr, prefix, max } => {
                write!(f, "prefix /{prefix} of {addr} is longer than /{max}")
            }
            ConfigError::NoQueues => f.write_str("a device needs at least one queue"),
            ConfigError::QueuesWithoutMultiQueue { queues } => {
                write!(f, "{queues} queues need multi-queue")
            }
            ConfigError::ExistingByTemplate => {
                f.write_str("cannot open an existing device by a template name: name the device")
            }
            ConfigError::NotMultiQueue => {
                f.write_str("another queue needs a multi-queue device (IFF_MULTI_QUEUE)")
            }
            ConfigError::NoControl => f.write_str(
                "no netlink socket in the device's network namespace \
                 (needs CAP_NET_ADMIN there)",
            ),
            ConfigError::DadFailed { addr } => write!(
                f,
                "duplicate address detection failed for {addr}: another host on the link has it"
            ),
            ConfigError::NoQueue => f.write_str(
                "the device's first queue was closed: the interface can no longer be \
                 found through its fd (keep that queue open to configure it)",
            ),
            ConfigError::VnetHdrSize { size, expected } => {
                write!(f, "virtio header size is {size} bytes, expected {expected}")
            }
            ConfigError::OffloadRequired => {
                f.write_str("the call needs offload on (IFF_VNET_HDR) and packet information off")
            }
            ConfigError::TunnelOffloadRequired => f.write_str(
                "a UDP-tunnel super-packet needs the device's UDP-tunnel offload \
                 (TUN_F_UDP_TUNNEL_GSO, Linux 6.17+), which it was not granted",
            ),
            ConfigError::OffloadMismatch { from, to } => write!(
                f,
                "pass-through needs the same offloads on both devices ({from:?} and {to:?})"
            ),
            ConfigError::QueuePairs { a, b } => {
                write!(
                    f,
                    "a relay pairs queues: {a} and {b} queues cannot be paired"
                )
            }
        }
    }
}

/// Arguments of a batched call that do not fit together (a caller's
/// mistake, found before anything was read or written), for
/// [`Error::Batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchError {
    /// `bufs` and `lens` differ in length.
    LengthsMismatch {
        /// Buffers given.
        bufs: usize,
        /// Lengths given.
        lens: usize,
    },
    /// Buffer `index` ends at or before `offset`: no room for a packet
    /// behind the headroom.
    NoRoomBehindOffset {
        /// Index in the batch.
        index: usize,
        /// The offset given.
        offset: usize,
        /// The buffer's length.
        buf_len: usize,
    },
    /// Packet `index` claims more bytes than its buffer holds.
    PacketOutsideBuffer {
        /// Index in the batch.
        index: usize,
        /// `offset + len` (saturated).
        end: usize,
        /// The buffer's length.
        buf_len: usize,
    },
    /// `send_pending` was given another batch (length or offset) than the
    /// one `prepare_batch` planned into the state.
    NotThePreparedBatch {
        /// Buffers of the prepared batch.
        prepared: usize,
        /// Buffers given now.
        given: usize,
    },
    /// Partial checksums are on, and `offset` leaves no room for the
    /// virtio header that each packet carries in front of it.
    NoHeaderRoom {
        /// The offset given.
        offset: usize,
        /// The header's size.
        required: usize,
    },
    /// The coalescing table refused the batch.
    Coalescing(tun_offload::GroError),
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::LengthsMismatch { bufs, lens } => {
                write!(f, "{bufs} buffers but {lens} lengths")
            }
            BatchError::NoRoomBehindOffset {
                index,
                offset,
                buf_len,
            } => write!(
                f,
                "buffer {index} has {buf_len} bytes: no room behind offset {offset}"
            ),
            BatchError::PacketOutsideBuffer {
                index,
                end,
                buf_len,
            } => write!(
                f,
                "packet {index} ends at byte {end} of a {buf_len}-byte buffer"
            ),
            BatchError::NoHeaderRoom { offset, required } => write!(
                f,
                "offset {offset} leaves no room for the {required}-byte virtio header \
                 in front of each packet (partial checksums)"
            ),
            BatchError::NotThePreparedBatch { prepared, given } => write!(
                f,
                "send_pending got another batch ({given} buffers, or another offset) \
                 than was prepared ({prepared} buffers)"
            ),
            BatchError::Coalescing(e) => write!(f, "coalescing: {e}"),
        }
    }
}

impl std::error::Error for BatchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BatchError::Coalescing(e) => Some(e),
            _ => None,
        }
    }
}

/// An error of the device layer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An ioctl or syscall of `tun-sys` failed (it names the ioctl, the
    /// interface and the errno).
    Sys(tun_sys::Error),
    /// A netlink request failed (it names the request, the interface
    /// index and the errno, with the kernel's message when it sent one).
    Netlink(NetlinkError),
    /// A batched call's arguments do not fit together; nothing was read
    /// or written.
    Batch {
        /// The call.
        op: IoOp,
        /// The interface.
        interface: InterfaceName,
        /// What does not fit.
        error: BatchError,
    },
    /// A read, write or poll on a queue failed.
    Io {
        /// The operation.
        op: IoOp,
        /// The interface.
        interface: InterfaceName,
        /// The errno.
        errno: i32,
    },
    /// A network namespace could not be opened or entered.
    Namespace {
        /// The file it was opened from, when it was opened from one.
        path: Option<std::path::PathBuf>,
        /// What was done.
        action: NsAction,
        /// The errno.
        errno: i32,
    },
    /// A system call of the device layer failed (see [`Syscall`]).
    Syscall {
        /// The call.
        call: Syscall,
        /// The interface it was made for, when there is one.
        interface: Option<InterfaceName>,
        /// The errno.
        errno: i32,
    },
    /// The builder or a call refused a configuration before any syscall.
    Config {
        /// The interface, when there is one yet.
        interface: Option<InterfaceName>,
        /// What was wrong.
        error: ConfigError,
    },
    /// A packet was malformed: one handed to a send, or one the kernel
    /// handed over whose virtio header does not match it. Nothing was
    /// written for it; the device stays usable.
    Packet {
        /// The operation.
        op: IoOp,
        /// The interface.
        interface: InterfaceName,
        /// The packet's index in the batch (0 for single-packet calls).
        index: usize,
        /// What was wrong.
        error: PacketError,
    },
    /// A UDP-tunnel super-packet (VXLAN, Geneve) the kernel handed over
    /// whose 24-byte virtio header does not match it, or one handed to a
    /// send that is not what its header says. Nothing was handed out or
    /// written for it; the device stays usable.
    TunnelPacket {
        /// The operation.
        op: IoOp,
        /// The interface.
        interface: InterfaceName,
        /// The packet's index in the batch (0 for single-packet calls).
        index: usize,
        /// What was wrong.
        error: TunnelError,
    },
    /// The kernel refused a packet handed to a send (EINVAL, EMSGSIZE): it
    /// was not written; the device stays usable.
    Rejected {
        /// The operation.
        op: IoOp,
        /// The interface.
        interface: InterfaceName,
        /// The packet's index in the batch (0 for single-packet calls).
        index: usize,
        /// The errno.
        errno: i32,
    },
    /// A packet the kernel handed over does not fit the caller's buffer.
    /// The packet is dropped; the device stays usable.
    BufferTooSmall {
        /// The operation.
        op: IoOp,
        /// The interface.
        interface: InterfaceName,
        /// Bytes the packet (or segment) needs, when the kernel said; for a
        /// packet longer than the buffer on a device without offload the
        /// kernel truncates silently and says nothing more, so this is then
        /// the buffer's size plus one (a lower bound).
        needed: usize,
        /// Bytes the buffer had (behind the offset).
        available: usize,
    },
    /// After `TUNSETIFF`, `TUNGETIFF` reported other flags than were asked
    /// for: the device exists with another configuration.
    FlagsMismatch {
        /// The interface.
        interface: InterfaceName,
        /// What was asked.
        requested: TunFlags,
        /// What the kernel holds.
        actual: TunFlags,
    },
    /// A wait of `op` ended because the queue's
    /// [`Interrupt`](crate::Interrupt) was raised. Nothing was lost: what
    /// the call had not done yet is still to do (in its state, for the
    /// batched calls).
    Interrupted {
        /// The operation that was waiting.
        op: IoOp,
        /// The interface.
        interface: InterfaceName,
    },
    /// The device is not a TUN/TAP device of the kind asked (attach to an
    /// existing interface of another kind, or not existing at all).
    NotTun {
        /// The interface.
        interface: InterfaceName,
        /// Its kind as netlink reports it, if it exists.
        kind: Option<String>,
    },
}

impl Error {
    pub(crate) fn io(op: IoOp, interface: InterfaceName, err: rustix::io::Errno) -> Self {
        Error::Io {
            op,
            interface,
            errno: err.raw_os_error(),
        }
    }

    pub(crate) fn syscall(
        call: Syscall,
        interface: Option<InterfaceName>,
        err: rustix::io::Errno,
    ) -> Self {
        Error::Syscall {
            call,
            interface,
            errno: err.raw_os_error(),
        }
    }

    /// [`Error::Syscall`] from what std reported (`fallback` when it
    /// carries no errno).
    pub(crate) fn syscall_io(
        call: Syscall,
        interface: Option<InterfaceName>,
        err: &io::Error,
        fallback: i32,
    ) -> Self {
        Error::Syscall {
            call,
            interface,
            errno: err.raw_os_error().unwrap_or(fallback),
        }
    }

    pub(crate) fn config(interface: Option<InterfaceName>, error: ConfigError) -> Self {
        Error::Config { interface, error }
    }

    /// The errno behind the error, when the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Sys(e) => Some(e.errno()),
            Error::Netlink(e) => Some(e.errno()),
            Error::Io { errno, .. }
            | Error::Rejected { errno, .. }
            | Error::Syscall { errno, .. }
            | Error::Namespace { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// The interface concerned, when known.
    pub fn interface(&self) -> Option<InterfaceName> {
        match self {
            Error::Sys(e) => e.interface(),
            Error::Netlink(e) => e.interface(),
            Error::Io { interface, .. }
            | Error::Packet { interface, .. }
            | Error::TunnelPacket { interface, .. }
            | Error::Rejected { interface, .. }
            | Error::BufferTooSmall { interface, .. }
            | Error::FlagsMismatch { interface, .. }
            | Error::NotTun { interface, .. }
            | Error::Interrupted { interface, .. }
            | Error::Batch { interface, .. } => Some(*interface),
            Error::Config { interface, .. } | Error::Syscall { interface, .. } => *interface,
            Error::Namespace { .. } => None,
        }
    }

    /// What a caller can do about it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { op, errno, .. } => io_kind(*op, *errno),
            Error::Sys(e) => errno_kind(e.errno()),
            Error::Netlink(e) => errno_kind(e.errno()),
            Error::Syscall { errno, .. } => errno_kind(*errno),
            // EINVAL from setns: the file is not a network namespace.
            Error::Namespace {
                action: NsAction::Enter,
                errno: libc::EINVAL,
                ..
            } => ErrorKind::InvalidConfig,
            Error::Namespace { errno, .. } => errno_kind(*errno),
            Error::Config {
                error: ConfigError::DadFailed { .. },
                ..
            } => ErrorKind::AlreadyExists,
            Error::Config { .. } | Error::FlagsMismatch { .. } => ErrorKind::InvalidConfig,
            Error::Batch { .. } => ErrorKind::InvalidInput,
            Error::Packet { .. } | Error::TunnelPacket { .. } | Error::Rejected { .. } => {
                ErrorKind::BadPacket
            }
            Error::BufferTooSmall { .. } => ErrorKind::BufferTooSmall,
            Error::NotTun { kind: None, .. } => ErrorKind::NotFound,
            Error::Interrupted { .. } => ErrorKind::Interrupted,
            Error::NotTun { .. } => ErrorKind::InvalidConfig,
        }
    }

    /// Non-blocking I/O found nothing to do.
    pub fn is_would_block(&self) -> bool {
        self.kind() == ErrorKind::WouldBlock
    }

    /// The device is broken or gone.
    pub fn is_device_gone(&self) -> bool {
        self.kind() == ErrorKind::DeviceGone
    }
}

fn errno_kind(errno: i32) -> ErrorKind {
    match errno {
        libc::EAGAIN => ErrorKind::WouldBlock,
        libc::EPERM | libc::EACCES => ErrorKind::PermissionDenied,
        libc::EEXIST => ErrorKind::AlreadyExists,
        libc::ENODEV | libc::ENOENT | libc::EADDRNOTAVAIL | libc::ENXIO => ErrorKind::NotFound,
        libc::EBUSY => ErrorKind::Busy,
        libc::EINVAL | libc::ERANGE => ErrorKind::InvalidConfig,
        libc::ENOTTY | libc::EOPNOTSUPP => ErrorKind::Unsupported,
        libc::EBADFD | libc::EBADF | libc::EIO => ErrorKind::DeviceGone,
        _ => ErrorKind::Other,
    }
}

fn io_kind(op: IoOp, errno: i32) -> ErrorKind {
    match errno {
        libc::EAGAIN => ErrorKind::WouldBlock,
        // A reader woken by the interface's removal gets EFAULT from the
        // kernel's shutdown of the queue (drivers/net/tun.c, tun_ring_recv),
        // later calls EBADFD; our buffers are always valid.
        // tun_get_user refuses writes while the interface is down with EIO.
        libc::EIO if matches!(op, IoOp::Send | IoOp::SendBatch) => ErrorKind::InterfaceDown,
        libc::EBADFD | libc::EBADF | libc::EIO | libc::EFAULT | libc::ENXIO | libc::EPIPE => {
            ErrorKind::DeviceGone
        }
        libc::EINVAL | libc::EMSGSIZE if matches!(op, IoOp::Send | IoOp::SendBatch) => {
            ErrorKind::BadPacket
        }
        libc::EPERM | libc::EACCES => ErrorKind::PermissionDenied,
        _ => ErrorKind::Other,
    }
}

/// The workspace's one errno text: `EBUSY: Device or resource busy`.
fn errno_text(errno: i32) -> tun_sys::ErrnoText {
    tun_sys::ErrnoText(errno)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sys(e) => fmt::Display::fmt(e, f),
            Error::Netlink(e) => fmt::Display::fmt(e, f),
            Error::Io {
                op,
                interface,
                errno,
            } => {
                write!(f, "{op} on {interface} failed: {}", errno_text(*errno))?;
                match io_kind(*op, *errno) {
                    ErrorKind::DeviceGone => f.write_str(" (the device is gone or broken)"),
                    ErrorKind::InterfaceDown => {
                        f.write_str(" (the interface is down: bring it up)")
                    }
                    ErrorKind::BadPacket => f.write_str(" (the kernel refused the packet)"),
                    _ => Ok(()),
                }
            }
            Error::Syscall {
                call,
                interface,
                errno,
            } => {
                if let Some(name) = interface {
                    write!(f, "{name}: ")?;
                }
                write!(f, "{call} failed: {}", errno_text(*errno))
            }
            Error::Namespace {
                path,
                action,
                errno,
            } => {
                let what = match path {
                    Some(p) => format!("network namespace {}", p.display()),
                    None => "network namespace".to_owned(),
                };
                match (action, *errno) {
                    (NsAction::Enter, libc::EINVAL) => {
                        write!(f, "setns: {what} is not a network namespace")
                    }
                    (NsAction::Enter, e) => {
                        write!(f, "setns into {what} failed: {}", errno_text(e))?;
                        if e == libc::EPERM && !crate::privilege::has_admin() {
                            f.write_str(" (needs CAP_SYS_ADMIN)")?;
                        }
                        Ok(())
                    }
                    (NsAction::Open, e) => write!(f, "open {what} failed: {}", errno_text(e)),
                    (NsAction::Dup, e) => write!(f, "dup of {what} failed: {}", errno_text(e)),
                }
            }
            Error::Batch {
                op,
                interface,
                error,
            } => write!(f, "{interface}: {op}: invalid arguments: {error}"),
            Error::Config { interface, error } => {
                if let Some(name) = interface {
                    write!(f, "{name}: ")?;
                }
                write!(f, "invalid configuration: {error}")
            }
            Error::Packet {
                op,
                interface,
                index,
                error,
            } => write!(
                f,
                "{op} on {interface}: packet {index} is malformed: {error}"
            ),
            Error::TunnelPacket {
                op,
                interface,
                index,
                error,
            } => write!(
                f,
                "{op} on {interface}: tunnel super-packet {index} is malformed: {error}"
            ),
            Error::Rejected {
                op,
                interface,
                index,
                errno,
            } => write!(
                f,
                "{op} on {interface}: the kernel refused packet {index}: {}",
                errno_text(*errno)
            ),
            Error::BufferTooSmall {
                op,
                interface,
                needed,
                available,
            } => write!(
                f,
                "{op} on {interface}: a {needed}-byte packet does not fit a {available}-byte buffer \
                 (packet dropped)"
            ),
            Error::FlagsMismatch {
                interface,
                requested,
                actual,
            } => write!(
                f,
                "{interface} exists with flags {actual:?}, not the requested {requested:?}"
            ),
            Error::NotTun {
                interface,
                kind: Some(kind),
            } => write!(f, "{interface} is a {kind} device, not TUN/TAP"),
            Error::NotTun {
                interface,
                kind: None,
            } => write!(f, "{interface} does not exist"),
            Error::Interrupted { op, interface } => {
                write!(f, "{op} on {interface}: interrupted")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Sys(e) => Some(e),
            Error::Netlink(e) => Some(e),
            Error::Packet { error, .. } => Some(error),
            Error::TunnelPacket { error, .. } => Some(error),
            Error::Config { error, .. } => Some(error),
            Error::Batch { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<tun_sys::Error> for Error {
    fn from(e: tun_sys::Error) -> Self {
        Error::Sys(e)
    }
}

impl From<NetlinkError> for Error {
    fn from(e: NetlinkError) -> Self {
        Error::Netlink(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match e.kind() {
            ErrorKind::WouldBlock => io::ErrorKind::WouldBlock,
            ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            ErrorKind::AlreadyExists => io::ErrorKind::AlreadyExists,
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            ErrorKind::BadPacket | ErrorKind::InvalidConfig | ErrorKind::InvalidInput => {
                io::ErrorKind::InvalidInput
            }
            ErrorKind::BufferTooSmall => io::ErrorKind::InvalidData,
            ErrorKind::Unsupported => io::ErrorKind::Unsupported,
            ErrorKind::Busy => io::ErrorKind::ResourceBusy,
            ErrorKind::DeviceGone => io::ErrorKind::BrokenPipe,
            ErrorKind::InterfaceDown => io::ErrorKind::NetworkDown,
            ErrorKind::Interrupted => io::ErrorKind::Interrupted,
            ErrorKind::Other => match e.errno() {
                Some(errno) => io::Error::from_raw_os_error(errno).kind(),
                None => io::ErrorKind::Other,
            },
        };
        io::Error::new(kind, e)
    }
}

/// The result of the device layer.
pub type Result<T, E = Error> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> InterfaceName {
        InterfaceName::new(s).unwrap()
    }

    #[test]
    fn syscall_errors_name_the_call_and_interface() {
        let e = Error::syscall(Syscall::Dup, Some(name("tun3")), rustix::io::Errno::MFILE);
        assert_eq!(
            e.to_string(),
            "tun3: dup failed: EMFILE: Too many open files"
        );
        assert_eq!(e.interface(), Some(name("tun3")));
        assert_eq!(e.errno(), Some(libc::EMFILE));
        let e = Error::syscall(Syscall::SpawnThread, None, rustix::io::Errno::AGAIN);
        assert!(e.to_string().starts_with("spawn thread failed: "), "{e}");
        assert!(!e.to_string().contains("/dev/net/tun"), "{e}");
    }

    #[test]
    fn namespace_errors_say_what_and_where() {
        let e = Error::Namespace {
            path: Some("/tmp/x".into()),
            action: NsAction::Enter,
            errno: libc::EINVAL,
        };
        assert_eq!(
            e.to_string(),
            "setns: network namespace /tmp/x is not a network namespace"
        );
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        let e = Error::Namespace {
            path: Some("/run/netns/a".into()),
            action: NsAction::Open,
            errno: libc::ENOENT,
        };
        assert!(
            e.to_string()
                .starts_with("open network namespace /run/netns/a failed"),
            "{e}"
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn interrupted_and_dad_errors() {
        let e = Error::Interrupted {
            op: IoOp::RecvBatch,
            interface: name("t0"),
        };
        assert_eq!(e.to_string(), "recv_batch on t0: interrupted");
        assert_eq!(e.kind(), ErrorKind::Interrupted);
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::Interrupted);
        let e = Error::config(
            Some(name("t0")),
            ConfigError::DadFailed {
                addr: "fd00::1/64".parse().unwrap(),
            },
        );
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("fd00::1/64"), "{e}");
        let e = Error::config(Some(name("t0")), ConfigError::NoQueue);
        assert!(e.to_string().contains("first queue"), "{e}");
    }
}
