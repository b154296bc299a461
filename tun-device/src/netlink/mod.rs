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
//! net/core/rtnetlink.c), which never creates a device.
//!
//! Requests are emitted by netlink-packet-route. Replies are not parsed by
//! it: it decodes every attribute of a message, so one attribute a newer
//! kernel changed fails the whole message (and it has had decode panics).
//! [`decode_reply`] frames a datagram with netlink-packet-core's checked
//! `NetlinkBuffer` and walks attributes with its checked `NlasIterator` and
//! `parse_*` readers, decoding only the attributes [`LinkInfo`],
//! [`TunInfo`] and [`Address`] hold, when they are asked for: no reply can
//! panic, and an attribute not read here can't fail a query. The TUN/TAP
//! driver's `IFLA_TUN_*` attributes, which netlink-packet-route lacks, are
//! decoded here too.
//!
//! netconfig-rs is not used: it sends `RTM_NEWADDR` with `NLM_F_DUMP`-like flags
//! (`0x300`), which on a NEW request the kernel reads as `NLM_F_REPLACE |
//! NLM_F_EXCL` (`inet_rtm_newaddr()`, net/ipv4/devinet.c; `inet6_rtm_newaddr()`,
//! net/ipv6/addrconf.c), asks for no acknowledgement and reads no reply, so
//! every failure is lost.
//!
//! The module is laid out one concept per file: `client` (the socket and
//! its requests), `error` ([`NetlinkError`], [`NlOp`]), `types` (what is
//! read and written), `reply` (message framing and status messages),
//! `decode` (attribute iteration and value readers), and one decoder per
//! reply: `link` (`RTM_NEWLINK`), `tun_info` (the TUN/TAP driver's
//! `IFLA_TUN_*`) and `address` (`RTM_NEWADDR`). `captures/` holds replies
//! a kernel sent, which the unit tests (`captured`) decode whole, cut and
//! corrupted.

#![forbid(unsafe_code)]

mod address;
#[cfg(test)]
mod captured;
mod client;
mod decode;
mod error;
mod link;
mod reply;
mod tun_info;
mod types;

pub use client::Netlink;
pub use error::{MalformedReply, NetlinkError, NlOp};
pub use reply::{ReplyMessage, ReplyMessages, ReplyStatus, decode_reply};
pub use types::{Address, AddressFlags, AddressOptions, LinkChanges, LinkInfo, TunInfo};
