//! Synchronous rtnetlink client that configures one interface by index (so
//! renames don't matter): link state including the TUN/TAP driver's attributes
//! (`tun_fill_info()`, drivers/net/tun.c), MTU, name, MAC, queue length, up/down,
//! netns move, delete, and IP addresses. The socket lives in the network
//! namespace of the thread that called [`Netlink::open`].
//!
//! Every request is acknowledged: it carries `NLM_F_REQUEST | NLM_F_ACK` (adds
//! also `NLM_F_CREATE | NLM_F_EXCL`), and replies are read until the
//! `NLMSG_ERROR`/`NLMSG_DONE` with *our* sequence number, skipping stale ones. A
//! negative code becomes a typed [`NetlinkError`] with the kernel's extended-ack
//! text (`NETLINK_EXT_ACK`). Link changes use `RTM_SETLINK` (`rtnl_setlink()`,
//! net/core/rtnetlink.c), which never creates a device. Replies are decoded with
//! bounds-checked readers of only the attributes used: no reply can panic, and
//! an attribute not read here can't fail a query.
//!
//! netconfig-rs is not used: it sends `RTM_NEWADDR` with `NLM_F_DUMP`-like flags
//! (`0x300`), which on a NEW request the kernel reads as `NLM_F_REPLACE |
//! NLM_F_EXCL` (`inet_rtm_newaddr()`, net/ipv4/devinet.c; `inet6_rtm_newaddr()`,
//! net/ipv6/addrconf.c), asks for no acknowledgement and reads no reply, so
//! every failure is lost.

#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use ipnet::IpNet;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL,
    NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
pub use netlink_packet_route::address::AddressFlags;
use netlink_packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags,
    LinkInfo as LinkInfoNla, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use tun_sys::InterfaceName;

// include/uapi/linux/netlink.h
const NLMSG_HDRLEN: usize = 16;
const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff; // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
const NLMSGERR_ATTR_MSG: u16 = 1;

// include/uapi/linux/rtnetlink.h
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;

// include/uapi/linux/if_link.h
const IFINFOMSG_LEN: usize = 16;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_TXQLEN: u16 = 13;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_TUN_OWNER: u16 = 1;
const IFLA_TUN_GROUP: u16 = 2;
const IFLA_TUN_TYPE: u16 = 3;
const IFLA_TUN_PI: u16 = 4;
const IFLA_TUN_VNET_HDR: u16 = 5;
const IFLA_TUN_PERSIST: u16 = 6;
const IFLA_TUN_MULTI_QUEUE: u16 = 7;
const IFLA_TUN_NUM_QUEUES: u16 = 8;
const IFLA_TUN_NUM_DISABLED_QUEUES: u16 = 9;
/// `IFF_TAP` in include/uapi/linux/if_tun.h, the value of `IFLA_TUN_TYPE` for a TAP.
const TUN_TYPE_TAP: u8 = 2;

// include/uapi/linux/if_addr.h
const IFADDRMSG_LEN: usize = 8;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;

/// Longest interface name the kernel accepts, in bytes (`IFNAMSIZ - 1`).
const MAX_IFNAME_LEN: usize = 15;
/// Initial receive buffer: the kernel sizes dump datagrams to at most 32 KiB.
const RECV_BUF_LEN: usize = 32 * 1024;
/// How often a dump that the kernel flags `NLM_F_DUMP_INTR` is restarted.
const DUMP_ATTEMPTS: usize = 5;
const IFF_UP: u32 = libc::IFF_UP as u32;

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
        match errno_name(self.errno) {
            Some(name) => write!(f, " failed: {name}: ")?,
            None => write!(f, " failed: errno {}: ", self.errno)?,
        }
        f.write_str(&errno_description(self.errno))?;
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

/// The symbolic name of the errno values rtnetlink and sockets return.
fn errno_name(errno: i32) -> Option<&'static str> {
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
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::EBADMSG => "EBADMSG",
        libc::EPROTO => "EPROTO",
        libc::EOVERFLOW => "EOVERFLOW",
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

/// `strerror` text without std's " (os error N)" suffix.
fn errno_description(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    let suffix = format!(" (os error {errno})");
    match text.strip_suffix(&suffix) {
        Some(stripped) => stripped.to_owned(),
        None => text,
    }
}

/// Where an error is reported from: the operation, its interface and detail.
struct Ctx {
    op: NlOp,
    index: Option<u32>,
    detail: Option<String>,
}

impl Ctx {
    fn new(op: NlOp, index: Option<u32>, detail: Option<String>) -> Self {
        Self { op, index, detail }
    }

    fn error(&self, errno: i32, message: Option<String>) -> NetlinkError {
        NetlinkError {
            op: self.op,
            interface: None,
            index: self.index,
            detail: self.detail.clone(),
            errno,
            message,
        }
    }

    fn io(&self, err: &io::Error) -> NetlinkError {
        match err.raw_os_error() {
            Some(errno) => self.error(errno, None),
            None => self.error(libc::EIO, Some(err.to_string())),
        }
    }

    fn malformed(&self, what: Malformed) -> NetlinkError {
        self.error(
            libc::EBADMSG,
            Some(format!("malformed kernel reply: {}", what.0)),
        )
    }

    fn with_message(&self, errno: i32, message: String) -> NetlinkError {
        self.error(errno, Some(message))
    }
}

/// Why a kernel reply could not be decoded.
#[derive(Debug)]
struct Malformed(String);

impl Malformed {
    fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

/// One IP address assigned to an interface, from an `RTM_GETADDR` dump.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// The interface's own address with its prefix length: `IFA_LOCAL` when
    /// present, else `IFA_ADDRESS`.
    pub addr: IpNet,
    /// The point-to-point peer: `IFA_ADDRESS` when it differs from `IFA_LOCAL`.
    pub peer: Option<IpAddr>,
    /// The IPv4 broadcast address (`IFA_BROADCAST`), when one is set.
    pub broadcast: Option<Ipv4Addr>,
    /// `IFA_F_*` flags (`IFA_FLAGS` when present, else `ifa_flags`), e.g.
    /// [`AddressFlags::Tentative`] for an IPv6 address still in duplicate
    /// address detection.
    pub flags: AddressFlags,
    /// `RT_SCOPE_*` scope (0 = global, 253 = link, 254 = host).
    pub scope: u8,
}

impl Address {
    /// Whether the address is still in duplicate address detection (IPv6,
    /// right after it was added or its link came up): the kernel neither
    /// sends from it nor accepts traffic for it until DAD is over.
    pub fn is_tentative(&self) -> bool {
        self.flags.contains(AddressFlags::Tentative)
    }

    /// Whether duplicate address detection failed: the address is unusable.
    pub fn is_dad_failed(&self) -> bool {
        self.flags.contains(AddressFlags::Dadfailed)
    }
}

/// How [`Netlink::add_address_with`] adds an address, beyond the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AddressOptions {
    /// The point-to-point peer (`IFA_ADDRESS`), of the address's family.
    pub peer: Option<IpAddr>,
    /// The IPv4 broadcast address (`IFA_BROADCAST`), as `ip addr add ...
    /// brd ADDR` sets it; see [`AddressOptions::broadcast_of`].
    pub broadcast: Option<Ipv4Addr>,
    /// Skip duplicate address detection (`IFA_F_NODAD`): an IPv6 address is
    /// usable at once instead of staying tentative for a second or more.
    pub nodad: bool,
}

impl AddressOptions {
    /// No peer, no broadcast, duplicate address detection as the kernel
    /// does it.
    pub const fn new() -> Self {
        Self {
            peer: None,
            broadcast: None,
            nodad: false,
        }
    }

    /// With this point-to-point peer.
    pub const fn peer(mut self, peer: IpAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// With this IPv4 broadcast address.
    pub const fn broadcast(mut self, broadcast: Ipv4Addr) -> Self {
        self.broadcast = Some(broadcast);
        self
    }

    /// Without duplicate address detection (or with it).
    pub const fn nodad(mut self, on: bool) -> Self {
        self.nodad = on;
        self
    }

    /// The broadcast address of `net` (every host bit set), what `ip addr
    /// add ... brd +` computes; `None` for IPv6 and for /31 and /32.
    pub fn broadcast_of(net: IpNet) -> Option<Ipv4Addr> {
        match net {
            IpNet::V4(v4) if v4.prefix_len() < 31 => Some(v4.broadcast()),
            _ => None,
        }
    }
}

/// The state of one network interface, from `RTM_GETLINK`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Interface name (`IFLA_IFNAME`); non-UTF-8 bytes are replaced by U+FFFD.
    pub name: String,
    /// MTU in bytes (`IFLA_MTU`).
    pub mtu: u32,
    /// `IFF_*` flags (`ifi_flags`), e.g. `IFF_UP`, `IFF_RUNNING`.
    pub flags: u32,
    /// `ARPHRD_*` link type (`ifi_type`): 1 for a TAP, 65534 (`ARPHRD_NONE`)
    /// for a TUN.
    pub link_type: u16,
    /// Hardware address (`IFLA_ADDRESS`) when it is 6 bytes long; `None` for a
    /// TUN, which has no link-layer address.
    pub mac: Option<[u8; 6]>,
    /// Transmit queue length (`IFLA_TXQLEN`), 0 if not reported.
    pub tx_queue_len: u32,
    /// RFC 2863 operational state (`IFLA_OPERSTATE`, `IF_OPER_*`: 0 unknown,
    /// 2 down, 5 dormant, 6 up), 0 if not reported.
    pub oper_state: u8,
    /// Driver kind (`IFLA_INFO_KIND`), e.g. `"tun"` for TUN and TAP devices.
    pub kind: Option<String>,
    /// The TUN/TAP driver's attributes, when `kind` is `"tun"`.
    pub tun: Option<TunInfo>,
}

impl LinkInfo {
    /// Whether `IFF_UP` is set (administratively up).
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }
}

/// The TUN/TAP driver's `IFLA_INFO_DATA`, as filled by `tun_fill_info()` in
/// drivers/net/tun.c.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TunInfo {
    /// Owning uid (`IFLA_TUN_OWNER`); absent unless an owner was set.
    pub owner: Option<u32>,
    /// Owning gid (`IFLA_TUN_GROUP`); absent unless a group was set.
    pub group: Option<u32>,
    /// A TAP (Ethernet frames) rather than a TUN (IP packets): `IFLA_TUN_TYPE`.
    pub tap: bool,
    /// Packets carry the 4-byte packet-information header (no `IFF_NO_PI`).
    pub pi: bool,
    /// Packets carry a virtio-net header (`IFF_VNET_HDR`).
    pub vnet_hdr: bool,
    /// The device outlives its file descriptors (`IFF_PERSIST`).
    pub persist: bool,
    /// Multi-queue device (`IFF_MULTI_QUEUE`).
    pub multi_queue: bool,
    /// Attached queues; the kernel reports it for multi-queue devices only.
    pub num_queues: Option<u32>,
    /// Disabled queues; the kernel reports it for multi-queue devices only.
    pub num_disabled_queues: Option<u32>,
}

/// An rtnetlink (`NETLINK_ROUTE`) socket whose every request is acknowledged.
///
/// Methods take `&mut self`: one request is in flight at a time, and its
/// reply is read before the method returns. Replies left unread by an earlier
/// call that failed halfway are skipped; a dump it left unfinished, which the
/// kernel would refuse the next dump for (`EBUSY`), is drained first.
pub struct Netlink {
    socket: Socket,
    port: u32,
    seq: u32,
    send_buf: Vec<u8>,
    recv_buf: Vec<u8>,
}

impl fmt::Debug for Netlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netlink")
            .field("fd", &self.socket.as_raw_fd())
            .field("port", &self.port)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// The socket, e.g. to poll it or set socket options. Replies read from it
/// directly are lost to this client, which only ever waits for its own.
impl AsFd for Netlink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Receives each reply message of a request: its type and payload.
type ReplyHandler<'a> = dyn FnMut(u16, &[u8]) -> Result<(), NetlinkError> + 'a;

/// How an exchange ended, when it ended well.
struct Outcome {
    /// A dump part carried `NLM_F_DUMP_INTR`: the result may be inconsistent.
    interrupted: bool,
}

impl Netlink {
    /// Opens an rtnetlink socket in the calling thread's network namespace.
    ///
    /// Enables `NETLINK_EXT_ACK` (kernel error text), `NETLINK_CAP_ACK` (errors
    /// don't echo the request) and `NETLINK_GET_STRICT_CHK` (the kernel filters
    /// address dumps by index); each is skipped on kernels that lack it.
    pub fn open() -> Result<Self, NetlinkError> {
        let ctx = Ctx::new(NlOp::Open, None, None);
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| ctx.io(&e))?;
        let addr = socket.bind_auto().map_err(|e| ctx.io(&e))?;
        let optional = |result: io::Result<()>| match result {
            Err(e) if e.raw_os_error() != Some(libc::ENOPROTOOPT) => Err(ctx.io(&e)),
            _ => Ok(()),
        };
        optional(socket.set_ext_ack(true))?;
        optional(socket.set_cap_ack(true))?;
        optional(socket.set_netlink_get_strict_chk(true))?;
        Ok(Self {
            socket,
            port: addr.port_number(),
            seq: 0,
            send_buf: Vec::new(),
            recv_buf: Vec::with_capacity(RECV_BUF_LEN),
        })
    }

    /// Reads the link with this index (`RTM_GETLINK`).
    pub fn link(&mut self, index: u32) -> Result<LinkInfo, NetlinkError> {
        let ctx = Ctx::new(NlOp::GetLink, Some(index), None);
        check_index(&ctx, index)?;
        let info = self.get_link(&ctx, index, None)?;
        if info.index != index {
            return Err(ctx.malformed(Malformed(format!(
                "asked for ifindex {index}, got {}",
                info.index
            ))));
        }
        Ok(info)
    }

    /// Reads the link with this name (`RTM_GETLINK` with `IFLA_IFNAME`); the
    /// kernel also matches alternative names, so the returned name may differ.
    pub fn link_by_name(&mut self, name: &str) -> Result<LinkInfo, NetlinkError> {
        let ctx = Ctx::new(NlOp::GetLink, None, Some(name.to_owned()));
        check_name(&ctx, name)?;
        self.get_link(&ctx, 0, Some(name))
    }

    /// Lists every link in the namespace (`RTM_GETLINK` dump).
    pub fn links(&mut self) -> Result<Vec<LinkInfo>, NetlinkError> {
        let ctx = Ctx::new(NlOp::ListLinks, None, None);
        let request = RouteNetlinkMessage::GetLink(link_message(0, vec![skip_stats()]));
        self.dump(&ctx, &request, |kind, payload, out| {
            if kind == RTM_NEWLINK {
                out.push(parse_link(payload)?);
            }
            Ok(())
        })
    }

    /// Sets the MTU (`IFLA_MTU`). The kernel refuses values outside the
    /// device's `min_mtu..=max_mtu` with `EINVAL`.
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), NetlinkError> {
        let ctx = Ctx::new(NlOp::SetMtu, Some(index), Some(mtu.to_string()));
        self.set_link(&ctx, index, vec![LinkAttribute::Mtu(mtu)], None)
    }

    /// Renames the link (`IFLA_IFNAME`). The kernel refuses a name in use
    /// (`EEXIST`); kernels before 6.2 also refuse to rename a link that is up
    /// (`EBUSY`, `dev_change_name()` in net/core/dev.c).
    pub fn set_name(&mut self, index: u32, name: &str) -> Result<(), NetlinkError> {
        let ctx = Ctx::new(NlOp::SetName, Some(index), Some(name.to_owned()));
        check_name(&ctx, name)?;
        let attrs = vec![LinkAttribute::IfName(name.to_owned())];
        self.set_link(&ctx, index, attrs, None)
    }

    /// Sets the Ethernet address (`IFLA_ADDRESS`), e.g. of a TAP. A TUN has
    /// no link-layer address (`EOPNOTSUPP`); a multicast or all-zero address
    /// is refused with `EADDRNOTAVAIL`.
    pub fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<(), NetlinkError> {
        let text = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let ctx = Ctx::new(NlOp::SetMac, Some(index), Some(text));
        let attrs = vec![LinkAttribute::Address(mac.to_vec())];
        self.set_link(&ctx, index, attrs, None)
    }

    /// Sets the transmit queue length (`IFLA_TXQLEN`).
    pub fn set_tx_queue_len(&mut self, index: u32, len: u32) -> Result<(), NetlinkError> {
        let ctx = Ctx::new(NlOp::SetTxQueueLen, Some(index), Some(len.to_string()));
        self.set_link(&ctx, index, vec![LinkAttribute::TxQueueLen(len)], None)
    }

    /// Brings the link up or down (`ifi_flags` with `ifi_change = IFF_UP`, so
    /// no other flag is touched).
    pub fn set_up(&mut self, index: u32, up: bool) -> Result<(), NetlinkError> {
        let detail = if up { "up" } else { "down" };
        let ctx = Ctx::new(NlOp::SetUp, Some(index), Some(detail.to_owned()));
        self.set_link(&ctx, index, Vec::new(), Some(up))
    }

    /// Moves the link into the network namespace `netns` refers to (an open
    /// `/proc/.../ns/net` or `/run/netns/NAME`), via `IFLA_NET_NS_FD`. The
    /// link disappears from this socket's namespace.
    pub fn move_to_netns(&mut self, index: u32, netns: BorrowedFd<'_>) -> Result<(), NetlinkError> {
        let fd = netns.as_raw_fd();
        let ctx = Ctx::new(NlOp::MoveNetns, Some(index), Some(format!("fd {fd}")));
        self.set_link(&ctx, index, vec![LinkAttribute::NetNsFd(fd)], None)
    }

    /// Deletes the link (`RTM_DELLINK`); a persistent TUN/TAP is destroyed.
    pub fn delete_link(&mut self, index: u32) -> Result<(), NetlinkError> {
        let ctx = Ctx::new(NlOp::DeleteLink, Some(index), None);
        check_index(&ctx, index)?;
        let request = RouteNetlinkMessage::DelLink(link_message(index, Vec::new()));
        self.exchange(
            &ctx,
            &request,
            NLM_F_REQUEST | NLM_F_ACK,
            &mut |_, _| Ok(()),
        )?;
        Ok(())
    }

    /// Creates a veth pair (`RTM_NEWLINK` with `IFLA_INFO_KIND` "veth" and
    /// the peer in `VETH_INFO_PEER`, `NLM_F_CREATE | NLM_F_EXCL`), as
    /// `ip link add NAME type veth peer name PEER [netns NS]` does: `name`
    /// in this socket's namespace, `peer` in the namespace `peer_netns`
    /// refers to (this one with `None`). Both ends are down. A name in use
    /// fails with `EEXIST`.
    pub fn add_veth(
        &mut self,
        name: &str,
        peer: &str,
        peer_netns: Option<BorrowedFd<'_>>,
    ) -> Result<(), NetlinkError> {
        let ctx = Ctx::new(NlOp::AddVeth, None, Some(format!("{name} peer {peer}")));
        check_name(&ctx, name)?;
        check_name(&ctx, peer)?;
        let mut peer_attrs = vec![LinkAttribute::IfName(peer.to_owned())];
        if let Some(ns) = peer_netns {
            peer_attrs.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        }
        let info = vec![
            LinkInfoNla::Kind(InfoKind::Veth),
            LinkInfoNla::Data(InfoData::Veth(InfoVeth::Peer(link_message(0, peer_attrs)))),
        ];
        let attrs = vec![
            LinkAttribute::IfName(name.to_owned()),
            LinkAttribute::LinkInfo(info),
        ];
        let request = RouteNetlinkMessage::NewLink(link_message(0, attrs));
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        self.exchange(&ctx, &request, flags, &mut |_, _| Ok(()))?;
        Ok(())
    }

    /// Assigns an address (`RTM_NEWADDR` with `NLM_F_CREATE | NLM_F_EXCL`),
    /// like plain `ip addr add`: `IFA_LOCAL` = `addr`, `IFA_ADDRESS` = `peer`
    /// or `addr`, prefix length from `addr` (with a peer it is the peer's
    /// prefix), no broadcast. An address already assigned fails with `EEXIST`
    /// ([`NetlinkError::is_exists`]). A `peer` of the other family is refused
    /// with `EINVAL` before anything is sent.
    pub fn add_address(
        &mut self,
        index: u32,
        addr: IpNet,
        peer: Option<IpAddr>,
    ) -> Result<(), NetlinkError> {
        let options = AddressOptions {
            peer,
            ..AddressOptions::new()
        };
        self.add_address_with(index, addr, &options)
    }

    /// [`Self::add_address`] with a peer, an IPv4 broadcast address and
    /// `IFA_F_NODAD` as `options` say. A broadcast address for an IPv6
    /// address is refused with `EINVAL` before anything is sent.
    pub fn add_address_with(
        &mut self,
        index: u32,
        addr: IpNet,
        options: &AddressOptions,
    ) -> Result<(), NetlinkError> {
        let ctx = Ctx::new(
            NlOp::AddAddress,
            Some(index),
            Some(address_text(addr, options.peer)),
        );
        let mut message = address_message(&ctx, index, addr, options.peer)?;
        if let Some(brd) = options.broadcast {
            if !addr.addr().is_ipv4() {
                return Err(ctx.with_message(
                    libc::EINVAL,
                    format!("broadcast {brd} for the IPv6 address {addr}"),
                ));
            }
            message.attributes.push(AddressAttribute::Broadcast(brd));
        }
        if options.nodad {
            message.header.flags |= AddressHeaderFlags::Nodad;
        }
        let request = RouteNetlinkMessage::NewAddress(message);
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        self.exchange(&ctx, &request, flags, &mut |_, _| Ok(()))?;
        Ok(())
    }

    /// Removes an address assigned without a peer (`RTM_DELADDR`), like
    /// `ip addr del ADDR/PREFIX`: address and prefix length must both match.
    /// A missing address fails with `EADDRNOTAVAIL`
    /// ([`NetlinkError::is_not_found`]). An IPv4 address with a peer is only
    /// found by [`Netlink::remove_address_with_peer`].
    pub fn remove_address(&mut self, index: u32, addr: IpNet) -> Result<(), NetlinkError> {
        self.remove_address_with_peer(index, addr, None)
    }

    /// Removes an address as it was added by [`Netlink::add_address`], so
    /// `nl.remove_address_with_peer(i, a.addr, a.peer)` removes any [`Address`]
    /// listed by [`Netlink::addresses`].
    pub fn remove_address_with_peer(
        &mut self,
        index: u32,
        addr: IpNet,
        peer: Option<IpAddr>,
    ) -> Result<(), NetlinkError> {
        let ctx = Ctx::new(
            NlOp::RemoveAddress,
            Some(index),
            Some(address_text(addr, peer)),
        );
        let request = RouteNetlinkMessage::DelAddress(address_message(&ctx, index, addr, peer)?);
        self.exchange(
            &ctx,
            &request,
            NLM_F_REQUEST | NLM_F_ACK,
            &mut |_, _| Ok(()),
        )?;
        Ok(())
    }

    /// Lists the IPv4 and IPv6 addresses of the link (`RTM_GETADDR` dump).
    /// With strict checking the kernel filters by index and answers `ENODEV`
    /// for an unknown one; on older kernels the dump is filtered here and an
    /// unknown index gives an empty list.
    pub fn addresses(&mut self, index: u32) -> Result<Vec<Address>, NetlinkError> {
        let ctx = Ctx::new(NlOp::ListAddresses, Some(index), None);
        check_index(&ctx, index)?;
        let mut message = AddressMessage::default();
        message.header.index = index;
        let request = RouteNetlinkMessage::GetAddress(message);
        self.dump(&ctx, &request, |kind, payload, out| {
            if kind == RTM_NEWADDR {
                if let Some((owner, address)) = parse_address(payload)? {
                    if owner == index {
                        out.push(address);
                    }
                }
            }
            Ok(())
        })
    }

    /// Sends `RTM_SETLINK` for `index` with `attrs`, and with `up` set also
    /// `IFF_UP` in `ifi_flags`/`ifi_change`. Without `up`, both are 0, which
    /// `do_setlink()` takes as "leave the flags alone".
    fn set_link(
        &mut self,
        ctx: &Ctx,
        index: u32,
        attrs: Vec<LinkAttribute>,
        up: Option<bool>,
    ) -> Result<(), NetlinkError> {
        check_index(ctx, index)?;
        let mut message = link_message(index, attrs);
        if let Some(up) = up {
            message.header.flags = if up {
                LinkFlags::Up
            } else {
                LinkFlags::empty()
            };
            message.header.change_mask = LinkFlags::Up;
        }
        let request = RouteNetlinkMessage::SetLink(message);
        self.exchange(ctx, &request, NLM_F_REQUEST | NLM_F_ACK, &mut |_, _| Ok(()))?;
        Ok(())
    }

    fn get_link(
        &mut self,
        ctx: &Ctx,
        index: u32,
        name: Option<&str>,
    ) -> Result<LinkInfo, NetlinkError> {
        let mut attrs = Vec::with_capacity(2);
        if let Some(name) = name {
            attrs.push(LinkAttribute::IfName(name.to_owned()));
        }
        attrs.push(skip_stats());
        let request = RouteNetlinkMessage::GetLink(link_message(index, attrs));
        let mut found = None;
        self.exchange(
            ctx,
            &request,
            NLM_F_REQUEST | NLM_F_ACK,
            &mut |kind, payload| {
                if kind == RTM_NEWLINK && found.is_none() {
                    found = Some(parse_link(payload).map_err(|m| ctx.malformed(m))?);
                }
                Ok(())
            },
        )?;
        found.ok_or_else(|| ctx.malformed(Malformed::new("acknowledged without RTM_NEWLINK")))
    }

    /// Runs a dump, restarting it when the kernel flags it interrupted by a
    /// concurrent change (`NLM_F_DUMP_INTR`).
    fn dump<T>(
        &mut self,
        ctx: &Ctx,
        request: &RouteNetlinkMessage,
        mut parse: impl FnMut(u16, &[u8], &mut Vec<T>) -> Result<(), Malformed>,
    ) -> Result<Vec<T>, NetlinkError> {
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP;
        for _ in 0..DUMP_ATTEMPTS {
            let mut out = Vec::new();
            let result = self.exchange(ctx, request, flags, &mut |kind, payload| {
                parse(kind, payload, &mut out).map_err(|m| ctx.malformed(m))
            });
            match result {
                Ok(outcome) if !outcome.interrupted => return Ok(out),
                Ok(_) => {}
                // One dump runs per socket at a time (`__netlink_dump_start()`
                // in net/netlink/af_netlink.c): a dump whose reply was not read
                // to the end is still running. Reading drives it to its end.
                Err(err) if err.errno() == libc::EBUSY => self.drain(ctx)?,
                Err(err) => return Err(err),
            }
        }
        Err(ctx.with_message(
            libc::EINTR,
            format!("dump interrupted by concurrent changes {DUMP_ATTEMPTS} times"),
        ))
    }

    /// Sends `request` and reads replies until the acknowledgement, error or
    /// end of dump carrying its sequence number, handing every other message
    /// of that sequence to `on_reply`. Messages of other sequences (replies
    /// to earlier requests that were not read to the end) are skipped.
    fn exchange(
        &mut self,
        ctx: &Ctx,
        request: &RouteNetlinkMessage,
        flags: u16,
        on_reply: &mut ReplyHandler<'_>,
    ) -> Result<Outcome, NetlinkError> {
        let seq = self.send(ctx, request, flags)?;
        let mut buf = std::mem::take(&mut self.recv_buf);
        let result = self.read_replies(ctx, seq, &mut buf, on_reply);
        self.recv_buf = buf;
        result
    }

    fn send(
        &mut self,
        ctx: &Ctx,
        request: &RouteNetlinkMessage,
        flags: u16,
    ) -> Result<u32, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            // Sequence 0 is what kernel notifications carry; never wait on it.
            self.seq = 1;
        }
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(request.clone()));
        packet.finalize();
        self.send_buf.clear();
        self.send_buf.resize(packet.buffer_len(), 0);
        packet.serialize(&mut self.send_buf);

        let kernel = SocketAddr::new(0, 0);
        let sent = retry_eintr(|| self.socket.send_to(&self.send_buf, &kernel, 0))
            .map_err(|e| ctx.io(&e))?;
        if sent != self.send_buf.len() {
            return Err(ctx.with_message(
                libc::EMSGSIZE,
                format!("sent {sent} of {} bytes", self.send_buf.len()),
            ));
        }
        Ok(self.seq)
    }

    fn read_replies(
        &self,
        ctx: &Ctx,
        seq: u32,
        buf: &mut Vec<u8>,
        on_reply: &mut ReplyHandler<'_>,
    ) -> Result<Outcome, NetlinkError> {
        let mut interrupted = false;
        loop {
            self.recv_datagram(ctx, buf)?;
            let mut rest: &[u8] = buf;
            while !rest.is_empty() {
                let (header, payload, next) = split_message(rest).map_err(|m| ctx.malformed(m))?;
                rest = next;
                if header.seq != seq {
                    continue;
                }
                if header.flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match header.kind {
                    NLMSG_NOOP => {}
                    NLMSG_ERROR | NLMSG_DONE => {
                        let (errno, message) = parse_status(header.kind, header.flags, payload)
                            .map_err(|m| ctx.malformed(m))?;
                        return match errno {
                            0 => Ok(Outcome { interrupted }),
                            errno => Err(ctx.error(errno, message)),
                        };
                    }
                    NLMSG_OVERRUN => {
                        return Err(ctx.malformed(Malformed::new("NLMSG_OVERRUN")));
                    }
                    kind => on_reply(kind, payload)?,
                }
            }
        }
    }

    /// Reads and drops every queued datagram without blocking. Each read lets
    /// the kernel queue the next part of a dump left unfinished, so this ends
    /// only once that dump is done.
    fn drain(&mut self, ctx: &Ctx) -> Result<(), NetlinkError> {
        let flags = libc::MSG_DONTWAIT | libc::MSG_TRUNC;
        loop {
            self.recv_buf.clear();
            self.recv_buf.reserve(RECV_BUF_LEN);
            match retry_eintr(|| self.socket.recv_from(&mut self.recv_buf, flags)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(ctx.io(&e)),
            }
        }
    }

    /// Receives one whole datagram from the kernel into `buf`, growing it to
    /// the datagram's size first; datagrams from other senders are dropped.
    fn recv_datagram(&self, ctx: &Ctx, buf: &mut Vec<u8>) -> Result<(), NetlinkError> {
        loop {
            buf.clear();
            buf.reserve(RECV_BUF_LEN);
            let peek = libc::MSG_PEEK | libc::MSG_TRUNC;
            let (size, _) =
                retry_eintr(|| self.socket.recv_from(buf, peek)).map_err(|e| ctx.io(&e))?;
            buf.clear();
            buf.reserve(size);
            let (len, from) =
                retry_eintr(|| self.socket.recv_from(buf, 0)).map_err(|e| ctx.io(&e))?;
            if len > buf.len() {
                return Err(ctx.malformed(Malformed(format!(
                    "datagram of {len} bytes truncated to {}",
                    buf.len()
                ))));
            }
            if from.port_number() == 0 {
                return Ok(());
            }
        }
    }
}

fn retry_eintr<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Refuses indexes the kernel can't hold in `ifi_index` (a positive `int`):
/// 0 would make it look the link up by name instead.
fn check_index(ctx: &Ctx, index: u32) -> Result<(), NetlinkError> {
    if index == 0 || i32::try_from(index).is_err() {
        return Err(ctx.with_message(libc::ENODEV, format!("{index} is not a valid ifindex")));
    }
    Ok(())
}

/// Refuses names the kernel would silently cut (at a NUL) or reject for length.
fn check_name(ctx: &Ctx, name: &str) -> Result<(), NetlinkError> {
    let problem = if name.is_empty() {
        "interface name is empty"
    } else if name.len() > MAX_IFNAME_LEN {
        "interface name is longer than 15 bytes"
    } else if name.contains('\0') {
        "interface name contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(ctx.with_message(libc::EINVAL, problem.to_owned()))
}

fn link_message(index: u32, attributes: Vec<LinkAttribute>) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.attributes = attributes;
    message
}

/// `IFLA_EXT_MASK` = `RTEXT_FILTER_SKIP_STATS`: leave out counters not read here.
fn skip_stats() -> LinkAttribute {
    LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])
}

fn address_text(addr: IpNet, peer: Option<IpAddr>) -> String {
    match peer {
        Some(peer) => format!("{addr} peer {peer}"),
        None => addr.to_string(),
    }
}

/// `ifaddrmsg` + `IFA_LOCAL` + `IFA_ADDRESS`, as iproute2's `ip addr add/del`.
fn address_message(
    ctx: &Ctx,
    index: u32,
    addr: IpNet,
    peer: Option<IpAddr>,
) -> Result<AddressMessage, NetlinkError> {
    check_index(ctx, index)?;
    let local = addr.addr();
    if let Some(peer) = peer {
        if peer.is_ipv4() != local.is_ipv4() {
            return Err(ctx.with_message(
                libc::EINVAL,
                format!("peer {peer} is not of the same family as {local}"),
            ));
        }
    }
    let mut message = AddressMessage::default();
    message.header.family = match local {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    message.header.prefix_len = addr.prefix_len();
    message.header.index = index;
    // iproute2 gives 127.0.0.0/8 host scope; the kernel derives IPv6 scopes.
    message.header.scope = match local {
        IpAddr::V4(v4) if v4.is_loopback() => AddressScope::Host,
        _ => AddressScope::Universe,
    };
    message.attributes = vec![
        AddressAttribute::Local(local),
        AddressAttribute::Address(peer.unwrap_or(local)),
    ];
    Ok(message)
}

// ---- Reply decoding: every read is bounds-checked, nothing can panic. ----

struct MsgHeader {
    kind: u16,
    flags: u16,
    seq: u32,
}

fn read_array<const N: usize>(buf: &[u8], offset: usize) -> Option<[u8; N]> {
    buf.get(offset..offset.checked_add(N)?)?.try_into().ok()
}

fn read_u16(buf: &[u8], offset: usize) -> Option<u16> {
    read_array(buf, offset).map(u16::from_ne_bytes)
}

fn read_u32(buf: &[u8], offset: usize) -> Option<u32> {
    read_array(buf, offset).map(u32::from_ne_bytes)
}

fn read_i32(buf: &[u8], offset: usize) -> Option<i32> {
    read_array(buf, offset).map(i32::from_ne_bytes)
}

/// Rounds up to the 4-byte alignment of netlink messages and attributes.
fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// Splits the first netlink message off `buf`: its header, its payload and
/// what follows it.
fn split_message(buf: &[u8]) -> Result<(MsgHeader, &[u8], &[u8]), Malformed> {
    let fields = (
        read_u32(buf, 0),
        read_u16(buf, 4),
        read_u16(buf, 6),
        read_u32(buf, 8),
    );
    let (Some(len), Some(kind), Some(flags), Some(seq)) = fields else {
        return Err(Malformed(format!("{} trailing bytes", buf.len())));
    };
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len < NLMSG_HDRLEN || len > buf.len() {
        return Err(Malformed(format!(
            "message length {len} with {} bytes left in the datagram",
            buf.len()
        )));
    }
    let payload = buf.get(NLMSG_HDRLEN..len).unwrap_or_default();
    let next = buf.get(align4(len)..).unwrap_or_default();
    Ok((MsgHeader { kind, flags, seq }, payload, next))
}

/// Iterates over the netlink attributes in `buf`: `(type, value)`.
struct Nlas<'a> {
    rest: &'a [u8],
}

fn nlas(buf: &[u8]) -> Nlas<'_> {
    Nlas { rest: buf }
}

impl<'a> Iterator for Nlas<'a> {
    type Item = Result<(u16, &'a [u8]), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        // Fewer than a header's worth of bytes is padding (the kernel's nla_ok).
        let (Some(len), Some(kind)) = (read_u16(self.rest, 0), read_u16(self.rest, 2)) else {
            self.rest = &[];
            return None;
        };
        let len = usize::from(len);
        let Some(value) = self.rest.get(NLA_HDRLEN..len) else {
            let left = self.rest.len();
            self.rest = &[];
            return Some(Err(Malformed(format!(
                "attribute {} has length {len} with {left} bytes left",
                kind & NLA_TYPE_MASK
            ))));
        };
        self.rest = self.rest.get(align4(len)..).unwrap_or_default();
        Some(Ok((kind & NLA_TYPE_MASK, value)))
    }
}

fn nla_u8(name: &str, value: &[u8]) -> Result<u8, Malformed> {
    match value {
        [byte] => Ok(*byte),
        _ => Err(Malformed(format!(
            "{name} has {} bytes, expected 1",
            value.len()
        ))),
    }
}

fn nla_u32(name: &str, value: &[u8]) -> Result<u32, Malformed> {
    <[u8; 4]>::try_from(value)
        .map(u32::from_ne_bytes)
        .map_err(|_| Malformed(format!("{name} has {} bytes, expected 4", value.len())))
}

/// A NUL-terminated (or not) attribute string.
fn nla_string(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(value.get(..end).unwrap_or_default()).into_owned()
}

fn nla_ip(name: &str, family: u8, value: &[u8]) -> Result<IpAddr, Malformed> {
    let addr = match i32::from(family) {
        libc::AF_INET => <[u8; 4]>::try_from(value).map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        _ => <[u8; 16]>::try_from(value).map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    };
    addr.map_err(|_| {
        Malformed(format!(
            "{name} has {} bytes for family {family}",
            value.len()
        ))
    })
}

/// Decodes an `NLMSG_ERROR` or `NLMSG_DONE` payload into a positive errno
/// (0 for success) and the extended-ack message, if any.
///
/// `NLMSG_ERROR` is `struct nlmsgerr` (error code, then the request's header,
/// followed by the rest of the request unless `NLM_F_CAPPED`), then TLVs when
/// `NLM_F_ACK_TLVS`; `NLMSG_DONE` is the code then TLVs (`netlink_ack()` and
/// `netlink_dump_done()` in net/netlink/af_netlink.c).
fn parse_status(kind: u16, flags: u16, payload: &[u8]) -> Result<(i32, Option<String>), Malformed> {
    let code = if kind == NLMSG_DONE && payload.is_empty() {
        0
    } else {
        read_i32(payload, 0).ok_or_else(|| {
            Malformed(format!(
                "status message with {} byte payload",
                payload.len()
            ))
        })?
    };
    let errno = match code {
        0 => return Ok((0, None)),
        c if c > 0 => return Err(Malformed(format!("positive error code {c}"))),
        c => c
            .checked_neg()
            .ok_or_else(|| Malformed(format!("error code {c}")))?,
    };
    if flags & NLM_F_ACK_TLVS == 0 {
        return Ok((errno, None));
    }
    let tlv_offset = if kind == NLMSG_DONE {
        Some(4)
    } else if flags & NLM_F_CAPPED != 0 {
        Some(4 + NLMSG_HDRLEN)
    } else {
        read_u32(payload, 4)
            .and_then(|len| usize::try_from(len).ok())
            .filter(|&len| len >= NLMSG_HDRLEN)
            .map(|len| align4(len.saturating_add(4)))
    };
    // The code is what matters: unreadable extended-ack data is just left out.
    let message = tlv_offset
        .and_then(|offset| payload.get(offset..))
        .and_then(|tlvs| {
            nlas(tlvs)
                .map_while(Result::ok)
                .find(|&(kind, _)| kind == NLMSGERR_ATTR_MSG)
        })
        .map(|(_, value)| nla_string(value))
        .filter(|text| !text.is_empty());
    Ok((errno, message))
}

/// Decodes an `RTM_NEWLINK` payload: `struct ifinfomsg` then attributes.
fn parse_link(payload: &[u8]) -> Result<LinkInfo, Malformed> {
    let (Some(link_type), Some(index), Some(flags)) = (
        read_u16(payload, 2),
        read_u32(payload, 4),
        read_u32(payload, 8),
    ) else {
        return Err(Malformed(format!("ifinfomsg of {} bytes", payload.len())));
    };
    let mut name = None;
    let mut mtu = None;
    let mut mac = None;
    let mut tx_queue_len = 0;
    let mut oper_state = 0;
    let mut kind = None;
    let mut info_data = None;
    for nla in nlas(payload.get(IFINFOMSG_LEN..).unwrap_or_default()) {
        let (attr, value) = nla?;
        match attr {
            IFLA_IFNAME => name = Some(nla_string(value)),
            IFLA_MTU => mtu = Some(nla_u32("IFLA_MTU", value)?),
            IFLA_ADDRESS => mac = <[u8; 6]>::try_from(value).ok(),
            IFLA_TXQLEN => tx_queue_len = nla_u32("IFLA_TXQLEN", value)?,
            IFLA_OPERSTATE => oper_state = nla_u8("IFLA_OPERSTATE", value)?,
            IFLA_LINKINFO => {
                for nla in nlas(value) {
                    match nla? {
                        (IFLA_INFO_KIND, value) => kind = Some(nla_string(value)),
                        (IFLA_INFO_DATA, value) => info_data = Some(value),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let tun = match (kind.as_deref(), info_data) {
        (Some("tun"), Some(data)) => Some(parse_tun(data)?),
        _ => None,
    };
    Ok(LinkInfo {
        index,
        name: name.ok_or_else(|| Malformed(format!("ifindex {index} without IFLA_IFNAME")))?,
        mtu: mtu.ok_or_else(|| Malformed(format!("ifindex {index} without IFLA_MTU")))?,
        flags,
        link_type,
        mac,
        tx_queue_len,
        oper_state,
        kind,
        tun,
    })
}

/// Decodes the `IFLA_INFO_DATA` of a `tun` link (`tun_fill_info()`).
fn parse_tun(data: &[u8]) -> Result<TunInfo, Malformed> {
    let mut tun = TunInfo::default();
    for nla in nlas(data) {
        let (attr, value) = nla?;
        match attr {
            IFLA_TUN_OWNER => tun.owner = Some(nla_u32("IFLA_TUN_OWNER", value)?),
            IFLA_TUN_GROUP => tun.group = Some(nla_u32("IFLA_TUN_GROUP", value)?),
            IFLA_TUN_TYPE => tun.tap = nla_u8("IFLA_TUN_TYPE", value)? == TUN_TYPE_TAP,
            IFLA_TUN_PI => tun.pi = nla_u8("IFLA_TUN_PI", value)? != 0,
            IFLA_TUN_VNET_HDR => tun.vnet_hdr = nla_u8("IFLA_TUN_VNET_HDR", value)? != 0,
            IFLA_TUN_PERSIST => tun.persist = nla_u8("IFLA_TUN_PERSIST", value)? != 0,
            IFLA_TUN_MULTI_QUEUE => {
                tun.multi_queue = nla_u8("IFLA_TUN_MULTI_QUEUE", value)? != 0;
            }
            IFLA_TUN_NUM_QUEUES => {
                tun.num_queues = Some(nla_u32("IFLA_TUN_NUM_QUEUES", value)?);
            }
            IFLA_TUN_NUM_DISABLED_QUEUES => {
                tun.num_disabled_queues = Some(nla_u32("IFLA_TUN_NUM_DISABLED_QUEUES", value)?);
            }
            _ => {}
        }
    }
    Ok(tun)
}

/// Decodes an `RTM_NEWADDR` payload (`struct ifaddrmsg` then attributes) into
/// the owning ifindex and the address; families other than IPv4 and IPv6
/// give `None`.
fn parse_address(payload: &[u8]) -> Result<Option<(u32, Address)>, Malformed> {
    let header = payload.get(..IFADDRMSG_LEN);
    let (Some(&[family, prefix_len, header_flags, scope]), Some(index)) =
        (header.and_then(|h| h.get(..4)), read_u32(payload, 4))
    else {
        return Err(Malformed(format!("ifaddrmsg of {} bytes", payload.len())));
    };
    if !matches!(i32::from(family), libc::AF_INET | libc::AF_INET6) {
        return Ok(None);
    }
    let mut address = None;
    let mut local = None;
    let mut broadcast = None;
    let mut flags = u32::from(header_flags);
    for nla in nlas(payload.get(IFADDRMSG_LEN..).unwrap_or_default()) {
        match nla? {
            (IFA_ADDRESS, value) => address = Some(nla_ip("IFA_ADDRESS", family, value)?),
            (IFA_LOCAL, value) => local = Some(nla_ip("IFA_LOCAL", family, value)?),
            (IFA_FLAGS, value) => flags = nla_u32("IFA_FLAGS", value)?,
            (IFA_BROADCAST, value) => match nla_ip("IFA_BROADCAST", family, value)? {
                IpAddr::V4(v4) => broadcast = Some(v4),
                IpAddr::V6(_) => return Err(Malformed::new("IFA_BROADCAST on an IPv6 address")),
            },
            _ => {}
        }
    }
    let Some(own) = local.or(address) else {
        return Err(Malformed(format!(
            "address on ifindex {index} without IFA_LOCAL or IFA_ADDRESS"
        )));
    };
    let addr = IpNet::new(own, prefix_len)
        .map_err(|_| Malformed(format!("prefix length {prefix_len} for {own}")))?;
    let peer = match (local, address) {
        (Some(local), Some(address)) if local != address => Some(address),
        _ => None,
    };
    Ok(Some((
        index,
        Address {
            addr,
            peer,
            broadcast,
            flags: AddressFlags::from_bits_retain(flags),
            scope,
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = u16::try_from(NLA_HDRLEN + value.len()).expect("small");
        let mut out = Vec::new();
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        out.resize(align4(out.len()), 0);
        out
    }

    #[test]
    fn nlas_reject_overlong_attribute() {
        let mut buf = nla(1, &[1, 2, 3, 4]);
        buf.extend_from_slice(&[200, 0, 2, 0, 9]);
        let items: Vec<_> = nlas(&buf).collect();
        assert_eq!(items.len(), 2);
        assert!(matches!(items[0], Ok((1, [1, 2, 3, 4]))));
        assert!(items[1].is_err());
        // Shorter than a header: padding, ignored.
        assert_eq!(nlas(&[1, 0, 0]).count(), 0);
        // Length below the header size is malformed.
        assert!(nlas(&[2, 0, 1, 0]).next().is_some_and(|r| r.is_err()));
    }

    #[test]
    fn split_message_never_panics_on_garbage() {
        for len in 0..64usize {
            let buf: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = split_message(&buf);
            let _ = parse_link(&buf);
            let _ = parse_address(&buf);
            let _ = parse_tun(&buf);
            let _ = parse_status(NLMSG_ERROR, NLM_F_ACK_TLVS, &buf);
            let _ = parse_status(NLMSG_DONE, NLM_F_ACK_TLVS | NLM_F_CAPPED, &buf);
        }
        let mut huge = vec![0u8; 20];
        huge[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(split_message(&huge).is_err());
    }

    #[test]
    fn error_extack_capped_and_uncapped() {
        let code = (-libc::EINVAL).to_ne_bytes();
        let msg = nla(NLMSGERR_ATTR_MSG, b"mtu less than device minimum\0");
        // Capped: code, request header (16 bytes), TLVs.
        let mut capped = code.to_vec();
        capped.extend_from_slice(&[0; NLMSG_HDRLEN]);
        capped.extend_from_slice(&msg);
        let parsed = parse_status(NLMSG_ERROR, NLM_F_ACK_TLVS | NLM_F_CAPPED, &capped);
        assert_eq!(
            parsed.ok(),
            Some((libc::EINVAL, Some("mtu less than device minimum".into())))
        );
        // Uncapped: the whole 22-byte request is echoed, padded to 4.
        let mut uncapped = code.to_vec();
        let mut request = vec![0u8; 22];
        request[..4].copy_from_slice(&22u32.to_ne_bytes());
        uncapped.extend_from_slice(&request);
        uncapped.resize(align4(uncapped.len()), 0);
        uncapped.extend_from_slice(&msg);
        let parsed = parse_status(NLMSG_ERROR, NLM_F_ACK_TLVS, &uncapped);
        assert_eq!(
            parsed.ok().and_then(|p| p.1).as_deref(),
            Some("mtu less than device minimum")
        );
        // Echoed length pointing past the payload: code kept, no message.
        uncapped[4..8].copy_from_slice(&4000u32.to_ne_bytes());
        assert_eq!(
            parse_status(NLMSG_ERROR, NLM_F_ACK_TLVS, &uncapped).ok(),
            Some((libc::EINVAL, None))
        );
        // i32::MIN cannot be negated.
        assert!(parse_status(NLMSG_ERROR, 0, &i32::MIN.to_ne_bytes()).is_err());
    }

    #[test]
    fn tun_info_decoding() {
        let mut data = nla(IFLA_TUN_TYPE, &[2]);
        data.extend(nla(IFLA_TUN_PI, &[0]));
        data.extend(nla(IFLA_TUN_MULTI_QUEUE, &[1]));
        data.extend(nla(IFLA_TUN_NUM_QUEUES, &3u32.to_ne_bytes()));
        let tun = parse_tun(&data).expect("well formed");
        assert!(tun.tap && tun.multi_queue && !tun.pi);
        assert_eq!((tun.owner, tun.num_queues), (None, Some(3)));
        assert!(parse_tun(&nla(IFLA_TUN_OWNER, &[1, 2])).is_err());
    }

    #[test]
    fn client_and_error_are_send() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Netlink>();
        assert_send_sync::<NetlinkError>();
    }

    #[test]
    fn done_error_code() {
        let mut payload = (-libc::ENODEV).to_ne_bytes().to_vec();
        assert_eq!(
            parse_status(NLMSG_DONE, 0, &payload).ok(),
            Some((libc::ENODEV, None))
        );
        payload.extend(nla(NLMSGERR_ATTR_MSG, b"no such device\0"));
        assert_eq!(
            parse_status(NLMSG_DONE, NLM_F_ACK_TLVS, &payload).ok(),
            Some((libc::ENODEV, Some("no such device".into())))
        );
        assert_eq!(parse_status(NLMSG_DONE, 0, &[]).ok(), Some((0, None)));
        assert!(parse_status(NLMSG_DONE, 0, &[1, 2]).is_err());
        assert!(parse_status(NLMSG_ERROR, 0, &5i32.to_ne_bytes()).is_err());
    }

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
