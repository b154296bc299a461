//! The rtnetlink client: [`Netlink`], one socket, one acknowledged request
//! in flight at a time, and the request messages it builds
//! (netlink-packet-route emits them; replies are decoded by
//! [`decode_reply`]).

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use ipnet::IpNet;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REQUEST, NLMSG_DONE,
    NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags,
    LinkInfo as LinkInfoNla, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::error::{Ctx, MalformedReply, NetlinkError, NlOp};
use super::reply::{ReplyMessage, decode_reply};
use super::types::{Address, AddressOptions, LinkChanges, LinkInfo};

/// Longest interface name the kernel accepts, in bytes (`IFNAMSIZ - 1`).
const MAX_IFNAME_LEN: usize = 15;
/// Initial receive buffer: the kernel sizes dump datagrams to at most 32 KiB.
const RECV_BUF_LEN: usize = 32 * 1024;
/// How often a dump that the kernel flags `NLM_F_DUMP_INTR` is restarted.
const DUMP_ATTEMPTS: usize = 5;

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

/// Receives each reply message of a request but the one that ends it.
type ReplyHandler<'a> = dyn FnMut(&ReplyMessage<'_>) -> Result<(), NetlinkError> + 'a;

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
            return Err(ctx.malformed(MalformedReply::new(format!(
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
        self.dump(&ctx, &request, |message, out| {
            out.extend(message.link()?);
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

    /// Changes several settings of the link with one acknowledged
    /// `RTM_SETLINK`, as iproute2's `ip link set` does: the kernel applies
    /// them in `do_setlink()`'s order (net/core/rtnetlink.c) and stops at
    /// the first it refuses, whose extended ack the error carries (for
    /// example "mtu less than device minimum"). Nothing to change sends
    /// nothing.
    pub fn change_link(&mut self, index: u32, changes: &LinkChanges) -> Result<(), NetlinkError> {
        if changes.is_empty() {
            return Ok(());
        }
        let ctx = Ctx::new(NlOp::ChangeLink, Some(index), Some(changes.to_string()));
        let mut attrs = Vec::with_capacity(3);
        if let Some(mtu) = changes.mtu {
            attrs.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = changes.mac {
            attrs.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(len) = changes.tx_queue_len {
            attrs.push(LinkAttribute::TxQueueLen(len));
        }
        self.set_link(&ctx, index, attrs, changes.up)
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
        self.exchange(&ctx, &request, NLM_F_REQUEST | NLM_F_ACK, &mut |_| Ok(()))?;
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
        self.exchange(&ctx, &request, flags, &mut |_| Ok(()))?;
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
        self.exchange(&ctx, &request, flags, &mut |_| Ok(()))?;
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
        self.exchange(&ctx, &request, NLM_F_REQUEST | NLM_F_ACK, &mut |_| Ok(()))?;
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
        self.dump(&ctx, &request, |message, out| {
            if let Some((owner, address)) = message.address()? {
                if owner == index {
                    out.push(address);
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
        self.exchange(ctx, &request, NLM_F_REQUEST | NLM_F_ACK, &mut |_| Ok(()))?;
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
        self.exchange(ctx, &request, NLM_F_REQUEST | NLM_F_ACK, &mut |message| {
            if found.is_none() {
                found = message.link().map_err(|m| ctx.malformed(m))?;
            }
            Ok(())
        })?;
        found.ok_or_else(|| ctx.malformed(MalformedReply::new("acknowledged without RTM_NEWLINK")))
    }

    /// Runs a dump, restarting it when the kernel flags it interrupted by a
    /// concurrent change (`NLM_F_DUMP_INTR`).
    fn dump<T>(
        &mut self,
        ctx: &Ctx,
        request: &RouteNetlinkMessage,
        mut parse: impl FnMut(&ReplyMessage<'_>, &mut Vec<T>) -> Result<(), MalformedReply>,
    ) -> Result<Vec<T>, NetlinkError> {
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP;
        for _ in 0..DUMP_ATTEMPTS {
            let mut out = Vec::new();
            let result = self.exchange(ctx, request, flags, &mut |message| {
                parse(message, &mut out).map_err(|m| ctx.malformed(m))
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
            for message in decode_reply(buf) {
                let message = message.map_err(|m| ctx.malformed(m))?;
                if message.sequence_number() != seq {
                    continue;
                }
                if message.flags() & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match message.message_type() {
                    NLMSG_NOOP => {}
                    NLMSG_ERROR | NLMSG_DONE => {
                        let status = message.status().map_err(|m| ctx.malformed(m))?;
                        let (errno, text) = status.map(|s| s.into_parts()).unwrap_or_default();
                        return match errno {
                            0 => Ok(Outcome { interrupted }),
                            errno => Err(ctx.error(errno, text)),
                        };
                    }
                    NLMSG_OVERRUN => {
                        return Err(ctx.malformed(MalformedReply::new("NLMSG_OVERRUN")));
                    }
                    _ => on_reply(&message)?,
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
                return Err(ctx.malformed(MalformedReply::new(format!(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_error_are_send() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Netlink>();
        assert_send_sync::<NetlinkError>();
    }
}
