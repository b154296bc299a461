//! The pure virtio-net offload engine: `virtio_net_hdr` encode/decode,
//! internet checksums, typed packet views, GSO split of kernel
//! super-packets (receive path) and GRO coalescing of outgoing batches
//! (transmit path).
//!
//! No I/O, no unsafe code, `no_std` + `alloc`, and no panic on any input:
//! nothing here knows about file descriptors or devices, so an AF_PACKET
//! reader, a pcap tool or a userspace TCP stack can use it as well as a TUN
//! device can. The kernel's rules (include/uapi/linux/virtio_net.h,
//! drivers/net/tun.c) are the specification.
//!
//! Receive, in brief: decode the header, then [`split`] into caller buffers.
//!
//! ```
//! use tun_offload::{split, SplitError, VirtioNetHdr};
//! fn on_read(read: &[u8], bufs: &mut [Vec<u8>], sizes: &mut [usize]) -> Result<usize, Box<dyn std::error::Error>> {
//!     let (hdr, packet) = VirtioNetHdr::split_prefix(read)?;
//!     match split(&hdr, packet, bufs, sizes, 0) {
//!         Ok(n) => Ok(n),
//!         // Recoverable: the first `produced` segments are valid.
//!         Err(SplitError::OutOfSpace { produced, .. }) => Ok(produced),
//!         Err(e) => Err(e.into()),
//!     }
//! }
//! ```

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod checksum;
mod error;
pub mod gro;
pub mod partial;
mod split;
mod virtio;
pub mod wire;

pub use error::{HeaderError, Layer, PacketError, SplitError};
pub use gro::{GroError, GroStats, GroTable};
pub use split::{GsoPacket, Transport, complete_checksum, split};
pub use virtio::{GsoType, HdrFlags, VirtioNetHdr, VirtioNetHdrMrgRxbuf};
