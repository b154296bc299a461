//! Async frontend for `tun-device`: readiness and nothing else.
//!
//! The device layer does all the work (framing, GSO split, GRO coalescing,
//! the resumable cursor of a batched send); this crate registers each
//! queue's fd with a runtime's reactor and makes the device's own
//! non-blocking calls between waits for readiness, the shape of quinn's
//! runtime glue. Two reactors: tokio's (default) and async-io's (smol,
//! async-std), behind one small [`Backend`] trait, so that everything
//! below is written once.
//!
//! - [`AsyncQueue`]: one queue (fd), `&self` I/O: [`AsyncQueue::recv`],
//!   [`AsyncQueue::send`], batched [`AsyncQueue::recv_batch`] (split) and
//!   [`AsyncQueue::send_batch`] (coalesce), [`AsyncQueue::ready`],
//!   `try_*` and `poll_*` forms. `Send + Sync`: share it between tasks in
//!   an `Arc`.
//! - [`AsyncDevice`]: a device with every queue registered, built from a
//!   tun-device builder, a [`Device`](tun_device::Device) or an fd.
//! - [`relay`]: a batched relay between two queues with the error policy
//!   and counters of tun-device's threaded relay.
//! - [`PacketStream`]/[`PacketSink`] (feature `futures`): single packets as
//!   futures `Stream` and `Sink`, on the queue's poll methods.
//!
//! ```no_run
//! use tun_async::AsyncDevice;
//! use tun_device::{Device, RecvState, SendState};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> tun_device::Result<()> {
//!     // Needs CAP_NET_ADMIN.
//!     let dev = AsyncDevice::build(
//!         Device::builder()
//!             .name("tun%d")
//!             .offload(true)
//!             .address("10.0.0.1/24".parse().unwrap()),
//!     )?;
//!     let (mut rx, mut tx) = (RecvState::new(), SendState::new());
//!     let mut bufs = vec![vec![0u8; 10 + 65535]; 64];
//!     let mut lens = vec![0usize; 64];
//!     loop {
//!         // Split super-packets into MTU-sized packets...
//!         let n = dev.recv_batch(&mut rx, &mut bufs, &mut lens, 10).await?;
//!         // ...and hand them back, coalesced again.
//!         dev.send_batch(&mut tx, &mut bufs[..n], &mut lens[..n], 10).await?;
//!     }
//! }
//! ```
//!
//! # Cancel safety
//!
//! Every async method has exactly one await point: the wait for readiness.
//! A round of syscalls (one packet, or all the reads of a batch, or all the
//! writes a batched send can make) runs synchronously between waits and
//! ends either with a result or with `WouldBlock`, which the device returns
//! only when that round consumed nothing (receive) or with its progress
//! recorded in the caller's [`SendState`](tun_device::SendState) (send).
//! Dropping a future therefore:
//!
//! - loses no packet the kernel handed over: a receive dropped at its wait
//!   read nothing in that round, and segments of a split super-packet not
//!   handed out yet wait in the caller's [`RecvState`](tun_device::RecvState)
//!   (or, for single-packet calls, in the queue), handed out by the next
//!   receive before any wait;
//! - never writes a packet twice: a batched send's cursor lives in the
//!   caller's `SendState`, and calling [`AsyncQueue::send_batch`] again
//!   with the same batch resumes it;
//! - modifies caller buffers only where documented: a batched send
//!   coalesces the batch in the caller's buffers on its first poll, before
//!   any wait, and says so. (tun-rs's async `send_multiple` coalesces into
//!   the caller's buffers and then awaits once per packet, keeping its
//!   progress in the future: dropped in between, the caller cannot tell
//!   what was written.)
//!
//! `WouldBlock` clears the reactor's readiness, so an idle queue sleeps in
//! the reactor and costs no CPU. Waits include errors: once the interface
//! is deleted the kernel reports only `EPOLLERR` on its fds, and a waiting
//! receive (or a `ready` + `try_recv` loop) wakes with an error of kind
//! [`ErrorKind::DeviceGone`](tun_device::ErrorKind::DeviceGone). Sends are
//! tried before any wait: a down link fails at once with `InterfaceDown`.
//!
//! # Features
//!
//! - `tokio` (default): the tokio backend (`Tokio`, the default type
//!   parameter), `relay::spawn` / `relay::Relay` (one task per
//!   direction) and `relay::spawn_threads` / `relay::ThreadRelay` (one
//!   thread with a current-thread runtime per direction).
//! - `async-io`: the async-io backend (`AsyncIo`) for smol and async-std
//!   users: `AsyncQueue::<AsyncIo>::register(queue)`. The default backend
//!   when `tokio` is off.
//! - `futures` (default): [`PacketStream`] and [`PacketSink`], on
//!   `futures-core` and `futures-sink`.
//!
//! Without a backend feature the crate holds only the [`device`]
//! re-export.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use tun_device as device;

#[cfg(any(feature = "tokio", feature = "async-io"))]
mod async_device;
#[cfg(any(feature = "tokio", feature = "async-io"))]
pub mod backend;
#[cfg(any(feature = "tokio", feature = "async-io"))]
mod queue;
#[cfg(any(feature = "tokio", feature = "async-io"))]
pub mod relay;
#[cfg(all(feature = "futures", any(feature = "tokio", feature = "async-io")))]
mod stream;

#[cfg(any(feature = "tokio", feature = "async-io"))]
pub use async_device::AsyncDevice;
#[cfg(feature = "async-io")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-io")))]
pub use backend::AsyncIo;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use backend::Tokio;
#[cfg(any(feature = "tokio", feature = "async-io"))]
pub use backend::{Backend, Interest, Ready};
#[cfg(any(feature = "tokio", feature = "async-io"))]
pub use queue::AsyncQueue;
#[cfg(all(feature = "futures", any(feature = "tokio", feature = "async-io")))]
#[cfg_attr(docsrs, doc(cfg(feature = "futures")))]
pub use stream::{PacketSink, PacketStream};

#[cfg(all(test, any(feature = "tokio", feature = "async-io")))]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        send_sync::<crate::AsyncQueue>();
        send_sync::<crate::AsyncDevice>();
        send_sync::<crate::relay::Stats>();
        #[cfg(feature = "tokio")]
        send_sync::<crate::relay::Relay>();
        #[cfg(feature = "tokio")]
        send_sync::<crate::relay::ThreadRelay>();
        #[cfg(feature = "async-io")]
        send_sync::<crate::AsyncQueue<crate::AsyncIo>>();
    }

    #[cfg(feature = "futures")]
    #[test]
    fn adapters_are_send() {
        fn send<T: Send>() {}
        send::<crate::PacketStream>();
        send::<crate::PacketSink<Vec<u8>>>();
    }
}
