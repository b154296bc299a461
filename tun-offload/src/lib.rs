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
//! # Features
//!
//! - `simd` (off by default): run the fused copy-and-checksum at the heart
//!   of the split and the coalescing with the widest vector instructions the
//!   CPU has (AVX-512 or AVX2 on x86-64), chosen at run time through the
//!   `pulp` crate; this crate's code stays safe and portable. It needs `std`
//!   for CPU detection, so it is for std targets; without it the crate is
//!   `no_std` and uses baseline SIMD. On an AVX-512 machine it makes the
//!   split about 30% and the coalescing about 20% faster (see
//!   BENCHMARKS.md). Its AVX-512 path needs Rust 1.89 or newer.
//!
//! UDP-tunnel offload (Linux 6.17+, the 24-byte
//! [`VirtioNetHdrV1HashTunnel`]): [`split_tunnel`] (or [`TunnelGsoPacket`])
//! splits a VXLAN or Geneve super-packet into complete outer datagrams, and
//! [`coalesce_tunnel`] merges consecutive datagrams of one tunnel flow back
//! into one.
//!
//! Receive, in brief: decode the header, then [`split`] into caller buffers.
//!
//! ```
//! use tun_offload::{split, SplitError, VirtioNetHdr};
//! fn on_read(read: &[u8], bufs: &mut [Vec<u8>], lens: &mut [usize]) -> Result<usize, Box<dyn std::error::Error>> {
//!     let (hdr, packet) = VirtioNetHdr::split_prefix(read)?;
//!     match split(&hdr, packet, bufs, lens, 0) {
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
pub mod frame;
pub mod framing;
pub mod gro;
mod kind;
pub mod partial;
mod route;
mod split;
mod tunnel;
mod tunnel_gro;
mod virtio;
pub mod wire;

pub use error::{Layer, PacketError};
pub use gro::{GroError, GroStats, GroTable};
pub use kind::Kind;
pub use partial::{check_partial, complete_checksum, is_transport_partial, packet_hdr};
pub use split::{GsoPacket, MAX_PLACED_HEADER_LEN, SplitError, split, split_frame};
pub use tunnel::{TunnelError, TunnelGsoPacket, TunnelSplitError, split_tunnel};
pub use tunnel_gro::{TunnelCoalesce, TunnelProto, TunnelRefusal, TunnelRun, coalesce_tunnel};
pub use virtio::{
    GsoType, HdrFlags, HeaderError, VirtioNetHdr, VirtioNetHdrMrgRxbuf, VirtioNetHdrV1HashTunnel,
};
