//! Async frontend for `tun-device`: readiness and nothing else.
//!
//! The device layer does all the work (framing, GSO split, GRO coalescing,
//! the resumable cursor of a batched send); this crate registers each
//! queue's fd with tokio's reactor and runs the device's own non-blocking
//! call inside one `AsyncFd` `try_io` closure once the fd is ready, the
//! shape of quinn's runtime glue.
//!
//! - [`AsyncQueue`]: one queue (fd), `&self` I/O: [`AsyncQueue::recv`],
//!   [`AsyncQueue::send`], batched [`AsyncQueue::recv_batch`] (split) and
//!   [`AsyncQueue::send_batch`] (coalesce) with [`AsyncQueue::send_pending`]
//!   to resume, [`AsyncQueue::readable`]/[`AsyncQueue::writable`] and
//!   `try_*` forms. `Send + Sync`: share it between tasks in an `Arc`.
//! - [`AsyncDevice`]: a device with every queue registered, built from a
//!   tun-device builder, a [`Device`](tun_device::Device) or an fd.
//! - [`relay`]: a two-task batched relay between two queues (the async side
//!   of the sync-versus-async benchmark).
//! - [`PacketStream`]/[`PacketSink`] (feature `futures`): single packets as
//!   futures `Stream` and `Sink`.
//!
//! # Cancel safety
//!
//! Every async method has exactly one await point: the wait for readiness.
//! A round of syscalls (one packet, or all the reads of a batch, or all the
//! writes a batched send can make) runs synchronously inside one `try_io`
//! closure and ends either with a result or with `WouldBlock`, which the
//! device returns only when that round consumed nothing (receive) or with
//! its progress recorded in the caller's [`SendState`](tun_device::SendState)
//! (send). Dropping a future therefore:
//!
//! - loses no packet the kernel handed over: a receive dropped at its wait
//!   read nothing, and segments of a split super-packet not handed out yet
//!   wait in the caller's [`RecvState`](tun_device::RecvState) (or, for
//!   single-packet calls, in the queue);
//! - never writes a packet twice: a batched send's cursor lives in the
//!   caller's `SendState`; [`AsyncQueue::send_pending`] resumes from it;
//! - modifies caller buffers only where documented: a batched send
//!   coalesces the batch in the caller's buffers on its first poll, before
//!   any wait, and says so. (tun-rs's async `send_multiple` coalesces into
//!   the caller's buffers and then awaits once per packet, keeping its
//!   progress in the future: dropped in between, the caller cannot tell
//!   what was written.)
//!
//! `WouldBlock` clears tokio's readiness, so an idle queue sleeps in the
//! reactor and costs no CPU. Waits include the `ERROR` interest: once the
//! interface is deleted the kernel reports only `EPOLLERR` on its fds, and
//! a waiting receive wakes with an error of kind
//! [`ErrorKind::DeviceGone`](tun_device::ErrorKind::DeviceGone).
//!
//! # Features
//!
//! - `tokio` (default): everything above.
//! - `futures` (default): [`PacketStream`] and [`PacketSink`], on
//!   `futures-core` and `futures-sink`.
//!
//! An `async-io` (smol) backend is not provided yet.

#![forbid(unsafe_code)]

pub use tun_device as device;

#[cfg(feature = "tokio")]
mod async_device;
#[cfg(feature = "tokio")]
mod queue;
#[cfg(feature = "tokio")]
pub mod relay;
#[cfg(feature = "futures")]
mod stream;

#[cfg(feature = "tokio")]
pub use async_device::AsyncDevice;
#[cfg(feature = "tokio")]
pub use queue::AsyncQueue;
#[cfg(feature = "futures")]
pub use stream::{PacketSink, PacketStream};
#[cfg(feature = "tokio")]
pub use tokio::io::Interest;

#[cfg(all(test, feature = "tokio"))]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        send_sync::<crate::AsyncQueue>();
        send_sync::<crate::AsyncDevice>();
        send_sync::<crate::relay::Relay>();
        send_sync::<crate::relay::Stats>();
    }

    #[cfg(feature = "futures")]
    #[test]
    fn adapters_are_send() {
        fn send<T: Send>() {}
        send::<crate::PacketStream>();
        send::<crate::PacketSink<Vec<u8>>>();
    }
}
