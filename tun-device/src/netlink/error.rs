//! The error of every rtnetlink operation: [`NlOp`] names the request,
//! [`NetlinkError`] carries it with the interface, the errno and the
//! kernel's extended-ack text; [`MalformedReply`] says why a reply could not
//! be decoded; `Ctx` is how the client builds a [`NetlinkError`].

use std::fmt;
use std::io;

use tun_sys::{ErrnoText, InterfaceName};

/// The operation a [`NetlinkError`] comes from.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NlOp {
    /// Opening and configuring the netlink socket.
    Open,
    /// `RTM_GETLINK` for one link, by index or by name.
    GetLink,
    /// `RTM_GETLINK` dump of every link.
    ListLinks,
    /// `RTM_SETLINK` with `IFLA_MTU`.
    SetMtu,
    /// `RTM_SETLINK` with `IFLA_IFNAME`.
    SetName,
    /// `RTM_SETLINK` with `IFLA_ADDRESS`.
    SetMac,
    /// `RTM_SETLINK` with `IFLA_TXQLEN`.
    SetTxQueueLen,
    /// `RTM_SETLINK` changing `IFF_UP`.
    SetUp,
    /// `RTM_SETLINK` with several settings at once ([`LinkChanges`](super::LinkChanges)).
    ChangeLink,
    /// `RTM_SETLINK` with `IFLA_NET_NS_FD`.
    MoveNetns,
    /// `RTM_DELLINK`.
    DeleteLink,
    /// `RTM_NEWLINK` creating a veth pair.
    AddVeth,
    /// `RTM_NEWADDR`.
    AddAddress,
    /// `RTM_DELADDR`.
    RemoveAddress,
    /// `RTM_GETADDR` dump.
    ListAddresses,
}

impl NlOp {
    /// The rtnetlink message type sent for this operation.
    fn message_type(self) -> &'static str {
        match self {
            Self::Open => "socket",
            Self::GetLink | Self::ListLinks => "RTM_GETLINK",
            Self::SetMtu
            | Self::SetName
            | Self::SetMac
            | Self::SetTxQueueLen
            | Self::SetUp
            | Self::ChangeLink
            | Self::MoveNetns => "RTM_SETLINK",
            Self::DeleteLink => "RTM_DELLINK",
            Self::AddVeth => "RTM_NEWLINK",
            Self::AddAddress => "RTM_NEWADDR",
            Self::RemoveAddress => "RTM_DELADDR",
            Self::ListAddresses => "RTM_GETADDR",
        }
    }

    /// A short human description of the operation.
    fn action(self) -> &'static str {
        match self {
            Self::Open => "open netlink socket",
            Self::GetLink => "get link",
            Self::ListLinks => "dump links",
            Self::SetMtu => "set mtu",
            Self::SetName => "set name",
            Self::SetMac => "set mac",
            Self::SetTxQueueLen => "set txqueuelen",
            Self::SetUp => "set link",
            Self::ChangeLink => "change link",
            Self::MoveNetns => "move to netns",
            Self::DeleteLink => "delete link",
            Self::AddVeth => "add veth pair",
            Self::AddAddress => "add address",
            Self::RemoveAddress => "remove address",
            Self::ListAddresses => "dump addresses",
        }
    }
}

/// A failed rtnetlink operation: which operation, on which interface, the errno
/// and, when available, the kernel's extended-ack message (or a description of
/// what was malformed or invalid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetlinkError {
    op: NlOp,
    interface: Option<InterfaceName>,
    index: Option<u32>,
    detail: Option<String>,
    errno: i32,
    message: Option<String>,
}

impl NetlinkError {
    /// The same error, naming the interface it concerns.
    pub fn with_interface(mut self, name: InterfaceName) -> Self {
        self.interface = Some(name);
        self
    }

    /// The interface the request was about, when the caller named it
    /// ([`Self::with_interface`]; the device layer always does).
    pub fn interface(&self) -> Option<InterfaceName> {
        self.interface
    }

    /// The operation that failed.
    pub fn op(&self) -> NlOp {
        self.op
    }

    /// The interface index the operation acted on, if it had one.
    pub fn index(&self) -> Option<u32> {
        self.index
    }

    /// The positive errno: the kernel's code, the socket call's, `EBADMSG` for
    /// a malformed reply, or `EINVAL`/`ENODEV` for arguments refused before any
    /// request was sent.
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The kernel's extended-ack message (`NLMSGERR_ATTR_MSG`), or what was
    /// malformed or invalid.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// What the operation was about, e.g. the address, name or MTU.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The object already exists (`EEXIST`), e.g. the address is assigned.
    pub fn is_exists(&self) -> bool {
        self.errno == libc::EEXIST
    }

    /// The caller lacks privilege (`EPERM` or `EACCES`): rtnetlink changes
    /// need `CAP_NET_ADMIN` in the namespace's owning user namespace.
    pub fn is_permission_denied(&self) -> bool {
        self.errno == libc::EPERM || self.errno == libc::EACCES
    }

    /// The interface or address does not exist (`ENODEV`, `ENOENT` or
    /// `EADDRNOTAVAIL`).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno,
            libc::ENODEV | libc::ENOENT | libc::EADDRNOTAVAIL
        )
    }
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op == NlOp::Open {
            f.write_str("netlink socket open")?;
        } else {
            write!(f, "{} ({}", self.op.message_type(), self.op.action())?;
            if let Some(detail) = &self.detail {
                write!(f, " {detail}")?;
            }
            f.write_str(")")?;
        }
        match (self.interface, self.index) {
            (Some(name), Some(index)) => write!(f, " on {name} (ifindex {index})")?,
            (Some(name), None) => write!(f, " on {name}")?,
            (None, Some(index)) => write!(f, " on ifindex {index}")?,
            (None, None) => {}
        }
        write!(f, " failed: {}", ErrnoText(self.errno))?;
        // As root the kernel's EPERM is about the value, not the caller.
        if self.is_permission_denied() && !crate::privilege::has_net_admin() {
            f.write_str(" (needs root or CAP_NET_ADMIN)")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for NetlinkError {}

impl From<NetlinkError> for io::Error {
    fn from(err: NetlinkError) -> Self {
        let kind = io::Error::from_raw_os_error(err.errno).kind();
        io::Error::new(kind, err)
    }
}

/// Why a reply from the kernel could not be decoded: what was wrong, where
/// (the message's offset in the datagram, the attribute and the region it
/// was in) and the lengths involved. The client reports it as a
/// [`NetlinkError`] with `EBADMSG` and this text after "malformed kernel
/// reply: ".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedReply {
    what: String,
}

impl MalformedReply {
    pub(super) fn new(what: impl Into<String>) -> Self {
        Self { what: what.into() }
    }

    /// The same error, saying which message of the datagram it was in.
    pub(super) fn in_message(self, offset: usize, kind: u16) -> Self {
        Self::new(format!(
            "message type {kind} at byte {offset}: {}",
            self.what
        ))
    }
}

impl fmt::Display for MalformedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for MalformedReply {}

/// Where an error is reported from: the operation, its interface and detail.
pub(super) struct Ctx {
    op: NlOp,
    index: Option<u32>,
    detail: Option<String>,
}

impl Ctx {
    pub(super) fn new(op: NlOp, index: Option<u32>, detail: Option<String>) -> Self {
        Self { op, index, detail }
    }

    pub(super) fn error(&self, errno: i32, message: Option<String>) -> NetlinkError {
        NetlinkError {
            op: self.op,
            interface: None,
            index: self.index,
            detail: self.detail.clone(),
            errno,
            message,
        }
    }

    pub(super) fn io(&self, err: &io::Error) -> NetlinkError {
        match err.raw_os_error() {
            Some(errno) => self.error(errno, None),
            None => self.error(libc::EIO, Some(err.to_string())),
        }
    }

    pub(super) fn malformed(&self, what: MalformedReply) -> NetlinkError {
        self.error(
            libc::EBADMSG,
            Some(format!("malformed kernel reply: {what}")),
        )
    }

    pub(super) fn with_message(&self, errno: i32, message: String) -> NetlinkError {
        self.error(errno, Some(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_format() {
        let ctx = Ctx::new(NlOp::AddAddress, Some(5), Some("10.0.0.1/24".into()));
        assert_eq!(
            ctx.error(libc::EEXIST, None).to_string(),
            "RTM_NEWADDR (add address 10.0.0.1/24) on ifindex 5 failed: EEXIST: File exists"
        );
        let ctx = Ctx::new(NlOp::SetMtu, Some(2), Some("9000".into()));
        // The privilege hint only when the caller lacks CAP_NET_ADMIN.
        let hint = if crate::privilege::has_net_admin() {
            ""
        } else {
            " (needs root or CAP_NET_ADMIN)"
        };
        assert_eq!(
            ctx.error(libc::EPERM, None).to_string(),
            format!(
                "RTM_SETLINK (set mtu 9000) on ifindex 2 failed: EPERM: Operation not permitted{hint}"
            )
        );
        let named = ctx
            .error(libc::EINVAL, None)
            .with_interface(InterfaceName::new("tun0").unwrap());
        assert_eq!(
            named.to_string(),
            "RTM_SETLINK (set mtu 9000) on tun0 (ifindex 2) failed: EINVAL: Invalid argument"
        );
        assert_eq!(named.interface().unwrap().to_string(), "tun0");
    }
}
