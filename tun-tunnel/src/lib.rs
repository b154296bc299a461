//! The VPN shape without the VPN: a TUN queue joined to a UDP socket, both
//! directions, one inner IP packet per datagram (no encryption, no
//! framing), batched and offloaded on both sides.
//!
//! - **Device to peer**: [`Queue::recv_batch`](tun_device::Queue::recv_batch)
//!   splits the kernel's TSO/USO super-packets into MTU-sized packets;
//!   runs of equal-size packets (the last may be shorter) go out with one
//!   `sendmsg` each, cut into datagrams by the kernel (`UDP_SEGMENT`).
//!   Packets lie one MTU apart, so a run of full-size segments is sent in
//!   place; other runs are gathered with one copy.
//! - **Peer to device**: `recvmmsg` of datagrams the kernel coalesced
//!   (`UDP_GRO`, with their segment size), each checked to be one whole IP
//!   packet, then [`Queue::send_batch`](tun_device::Queue::send_batch)
//!   coalesces them again into super-packets and writes them with gathered
//!   writes.
//!
//! The socket calls and their control messages are quinn-udp's. Every
//! side degrades: a device without offload is read and written packet by
//! packet; a socket without GSO sends a datagram per call, one without GRO
//! receives one per message; a GSO send the kernel refuses (EIO, EINVAL)
//! is sent again datagram by datagram and turns GSO off, counted in
//! [`TunnelCounters::gso_fallbacks`]. Datagrams from the peer that are not
//! one whole IP packet are counted ([`TunnelCounters::malformed`]) and
//! dropped; packets larger than one datagram to the peer may be are
//! counted ([`TunnelCounters::too_large`]), and [`Tunnel::check_mtu`]
//! says so up front as a typed error.
//!
//! Stopping is tun-device's relay's: both pumps wait in the kernel beside
//! one [`Interrupt`](tun_device::Interrupt) (the device's reads with
//! [`Queue::set_interrupt`](tun_device::Queue::set_interrupt), the
//! socket's in `poll` beside the eventfd), errors are sorted by
//! [`Disposition`](tun_device::relay::Disposition) and waits for an output
//! that refuses writes use [`Backoff`](tun_device::relay::Backoff). An
//! idle tunnel makes no wake-ups.
//!
//! What one 64 KiB TCP super-packet costs, device to peer: one read, the
//! split (each byte copied once, its checksum computed in the same pass),
//! one `sendmsg` for its run of datagrams, sent in place. Peer to device:
//! one `recvmmsg` per up to [`quinn_udp::BATCH_SIZE`] coalesced buffers
//! (the kernel's copy into them is the only one), the checksum check of
//! the coalescing (a read of every payload: the peer's packets are not
//! trusted), and one gathered write per coalesced super-packet. Runs of
//! datagrams smaller than the device's MTU are copied once more to be
//! contiguous: quinn-udp's `Transmit` takes one slice.
//!
//! ```no_run
//! use std::net::UdpSocket;
//! use tun_device::Device;
//! use tun_tunnel::{Tunnel, TunnelConfig};
//!
//! let dev = Device::builder().name("vpn%d").offload(true).mtu(1400).up(true).build()?;
//! let socket = UdpSocket::bind("192.0.2.1:51820")?;
//! let config = TunnelConfig::new("192.0.2.2:51820".parse()?);
//! let tunnel = Tunnel::start(dev.into_queues().remove(0), socket, config)?;
//! println!("granted: {:?}", tunnel.offloads());
//! if let Err(e) = tunnel.check_mtu() {
//!     eprintln!("warning: {e}"); // the device's MTU exceeds a datagram
//! }
//! std::thread::sleep(std::time::Duration::from_secs(10));
//! let c = tunnel.stop()?;
//! println!(
//!     "{} datagrams sent, {:.1} per send; {} malformed received",
//!     c.datagrams_sent,
//!     c.datagrams_per_send(),
//!     c.malformed
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod counters;
mod datagram;
mod error;
mod pump;
mod runs;
mod socket;
mod tunnel;

pub use counters::TunnelCounters;
pub use datagram::{Malformed, check_inner};
pub use error::{Error, Result, SocketOp};
pub use runs::{MAX_SEND_BYTES, UDP_MAX_SEGMENTS};
pub use tunnel::{Tunnel, TunnelConfig, TunnelOffloads, check_mtu};
