//! Linux TUN/TAP devices built from `tun-sys` (the raw interface) and
//! `tun-offload` (the packet engine): creation and attach, multi-queue,
//! offload negotiation, batched receive (GSO split) and send (GRO
//! coalescing), and interface configuration over acknowledged rtnetlink,
//! in any network namespace.
//!
//! ```no_run
//! use tun_device::{Device, RecvState, SendState};
//!
//! // Two devices with offload, relaying one batch from `a` to `b`.
//! let a = Device::builder().name("a%d").offload(true).build()?;
//! let b = Device::builder().name("b%d").offload(true).build()?;
//! let (mut rx, mut tx) = (RecvState::new(), SendState::new());
//! let mut bufs = vec![vec![0u8; 65536]; 64];
//! let mut lens = vec![0usize; 64];
//! let (qa, qb) = (a.first_queue(), b.first_queue());
//! let n = qa.recv_batch(&mut rx, &mut bufs, &mut lens, 10)?; // split, 10 bytes headroom
//! let report = qb.send_batch(&mut tx, &bufs[..n], &lens[..n], 10)?; // coalesce, gathered writes
//! println!("{n} packets in, {} writes out", report.writes);
//! # Ok::<(), tun_device::Error>(())
//! ```
//!
//! # Shape
//!
//! - [`DeviceBuilder`] opens a [`Device`]: an [`Interface`] (configuration
//!   and negotiated state, shared) and one [`Queue`] per fd. All I/O is
//!   `&self`; every public type is `Send + Sync`.
//! - With offload on, no call hands out bytes whose virtio header the
//!   caller could misread: packets come out complete (split, checksums
//!   finished), and go in complete. [`Queue::recv_gso`] and
//!   [`Queue::send_gso`] expose the header, decoded, for callers that pass
//!   super-packets through.
//! - Errors ([`Error`]) name the operation and the interface, carry the
//!   errno, and sort into [`ErrorKind`]s: a broken device, a bad packet,
//!   buffers too small, a refused configuration.
//! - **The fd is the identity.** Configuration reads the interface's name
//!   (`TUNGETIFF`) and namespace (`TUNGETDEVNETNS`) from the queue's fd
//!   before every request, so it follows the device through renames and
//!   moves by anyone and never touches an interface that took its old
//!   index or name.
//! - **Copies and syscalls.** A receive reads first and waits only after
//!   EAGAIN. Each byte of a super-packet is copied once, fused with its
//!   checksum, by the split (its first MTU twice). On request
//!   ([`RecvState::set_read_into_place`]) super-packets that keep one shape
//!   are read with one `readv` straight into the places of their segments
//!   across the caller's buffers, and the split only writes headers and
//!   sums payloads where they lie; measured in the relays here, that was
//!   slower than the fused copy, so it is off by default. A batched send writes
//!   each coalesced run with one gathered `writev` (virtio header, the
//!   first packet's rewritten headers, then every payload where it lies)
//!   and never writes into the caller's buffers. Both halves are I/O-free
//!   state machines under the queue (the receive engine and the send
//!   engine), unit-tested without a device.
//! - **Waking a waiter.** An [`Interrupt`] attached to queues
//!   ([`Queue::set_interrupt`]) ends their waits with
//!   [`ErrorKind::Interrupted`]: how the [`relay`] stops without periodic
//!   wake-ups.
//!
//! # Features
//!
//! - `simd` (on by default): tun-offload's run-time dispatch of the fused
//!   copy-and-checksum to AVX-512 or AVX2 (the split and the coalescing);
//!   off gives tun-offload's portable build.
//!
//! # Layout
//!
//! One concept per module: `device` (the builder and the [`Device`] that
//! holds an interface and its queues), `interface` (configuration by the
//! fd's identity), [`netlink`] (the acknowledged rtnetlink client: client,
//! request types, reply framing and decoding on netlink-packet-core's
//! checked primitives, errors), `queue` (the fd, the syscalls and the
//! short drivers of every I/O call: the only `impl Queue`), `rx` and `tx`
//! (the receive and send engines, free of I/O), `interrupt` (the eventfd
//! that ends waits), [`relay`] (the pumps, their error policy and
//! counters), `netns`, `privilege` and `error`.
//!
//! # Offload negotiation
//!
//! With [`DeviceBuilder::offload`] the device is opened with
//! `IFF_VNET_HDR`, and `TUNSETOFFLOAD` is offered `CSUM|TSO4|TSO6|USO4|USO6|
//! TSO_ECN`, then without TSO_ECN, then without USO (Linux before 6.2
//! refuses USO with EINVAL); [`Interface::offloads`] reports what was
//! granted, and UDP is coalesced only with USO. With offload off, the mask
//! is cleared (`TUNSETOFFLOAD 0`), so a persistent device that had offload
//! on does not keep handing over super-packets.
//!
//! # UDP-tunnel offload (Linux 6.17+)
//!
//! Then `TUN_F_UDP_TUNNEL_GSO|TUN_F_UDP_TUNNEL_GSO_CSUM` is offered on top
//! of what was granted, after the virtio header was set to the 24 bytes of
//! `struct virtio_net_hdr_v1_hash_tunnel` (`TUNSETVNETHDRSZ`: with the
//! offload on and a shorter header the kernel fails every read of a tunnel
//! super-packet). A kernel that refuses it keeps the plain mask and the
//! header goes back to 10 bytes; [`Interface::offloads`] and
//! [`Interface::vnet_hdr_len`] say which. [`DeviceBuilder::udp_tunnel_offload`]
//! leaves it out. Granted, a VXLAN or Geneve device routed over this one
//! hands its TSO and UDP_SEGMENT output over as tunnel super-packets (outer
//! IP, UDP, tunnel header, inner Ethernet, inner super-packet), and:
//!
//! - [`Queue::recv_batch`] and [`Queue::recv`] split them into complete
//!   outer datagrams (`tun_offload::TunnelGsoPacket`: outer and inner
//!   lengths, IDs and checksums per segment; [`RecvStats::tunnel_super_packets`]
//!   counts them);
//! - [`Queue::send_batch`] on a TAP coalesces consecutive datagrams of one
//!   tunnel flow back into a tunnel super-packet
//!   ([`Interface::tunnel_coalescing`], `tun_offload::coalesce_tunnel`,
//!   [`SendReport::tunnel_writes`]). A TUN does not: Linux 6.18's TUN
//!   refuses every tunnel super-packet with a plain outer header
//!   (`virtio_net_hdr_tnl_to_skb` in include/linux/virtio_net.h counts an
//!   Ethernet header in its minimum outer offset), so there the datagrams
//!   go out as they are, or merged as plain UDP (USO) when they carry outer
//!   UDP checksums (the kernel's rule: no UDP GRO without one);
//! - [`Queue::recv_gso`] and [`Queue::send_gso`] take and give the 24-byte
//!   header; the pass-through [`relay`] splits a tunnel super-packet its
//!   output refused, and every later one, in user space.
//!
//! # TAP with offload
//!
//! A TAP (`DeviceBuilder::tap`) takes offload like a TUN: the kernel then
//! hands over Ethernet frames whose virtio header counts `csum_start` and
//! `hdr_len` from the start of the frame. Batched and single-packet I/O
//! work on frames: [`Queue::recv_batch`] and [`Queue::recv`] split a
//! super-frame into frames, each with a copy of its Ethernet header
//! (802.1Q tag included), at most MTU plus that header long;
//! [`Queue::send_batch`] coalesces only frames with equal Ethernet headers;
//! frames that carry no IP packet (ARP and the like) pass through untouched
//! both ways. MAC and up/down are configured as for any TAP, and the
//! [`relay`] works on TAP pairs in every mode. [`Queue::recv_gso`] and
//! [`Queue::send_gso`] hand over and take frames with the header as the
//! kernel has it (`tun_offload::split_frame` splits them).
//!
//! # Why not netconfig-rs
//!
//! Addresses and link settings go through [`netlink`], a small synchronous
//! rtnetlink client: every request asks for an acknowledgement and its
//! answer is read and matched by sequence number, so every failure (EEXIST,
//! EPERM, a bad MTU) comes back as a typed error. netconfig-rs, the usual
//! choice, sends `RTM_NEWADDR` with flags the kernel reads as
//! `NLM_F_REPLACE|NLM_F_EXCL`, asks for no acknowledgement and reads no
//! reply: its errors are lost.

#![forbid(unsafe_code)]

mod device;
mod error;
mod interface;
mod interrupt;
pub mod netlink;
mod netns;
mod privilege;
mod queue;
pub mod relay;
mod rx;
#[cfg(test)]
mod test_packets;
mod tx;
mod views;

pub use device::{Device, DeviceBuilder, Mode};
pub use error::{ConfigError, Error, ErrorKind, IoOp, NsAction, Result, Syscall};
pub use interface::{DeviceStats, Interface};
pub use interrupt::Interrupt;
pub use netlink::{Address, AddressFlags, AddressOptions, LinkInfo, TunInfo};
pub use netns::NetNs;
pub use queue::Queue;
pub use rx::{RecvState, RecvStats};
pub use tx::{SendReport, SendState};
pub use views::ViewBatch;

pub use ipnet;
pub use tun_offload as offload;
pub use tun_sys as sys;
pub use tun_sys::{InterfaceFlags, InterfaceName, OffloadFlags, TunFlags};

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn every_public_type_is_send_and_sync() {
        send_sync::<crate::Device>();
        send_sync::<crate::Queue>();
        send_sync::<crate::Interface>();
        send_sync::<crate::DeviceBuilder>();
        send_sync::<crate::RecvState>();
        send_sync::<crate::SendState>();
        send_sync::<crate::Error>();
        send_sync::<crate::NetNs>();
        send_sync::<crate::Interrupt>();
        send_sync::<crate::netlink::Netlink>();
    }
}
