//! The readiness a queue waits on, behind one small trait with an
//! implementation per runtime (tokio's `AsyncFd`, async-io's `Async`), so
//! that the queue, the device, the relay and the adapters are written once.
//!
//! A backend answers three questions about a registered queue: is it ready
//! now (a non-blocking attempt gated on the reactor's state), wait until it
//! is (a future, cancel safe), and wake this task when it is (a poll). It
//! also sleeps, for the relay's backoff.

use std::fmt;
use std::future::Future;
use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use tun_device::{Queue, Result};

#[cfg(feature = "async-io")]
mod async_io;
#[cfg(feature = "tokio")]
mod tokio;

#[cfg(feature = "async-io")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-io")))]
pub use self::async_io::{AsyncIo, AsyncIoGuard};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use self::tokio::{Tokio, TokioGuard};

/// The backend of [`AsyncQueue`](crate::AsyncQueue) when none is named:
/// tokio when the `tokio` feature is on, async-io otherwise.
#[cfg(feature = "tokio")]
pub type DefaultBackend = Tokio;
/// The backend of [`AsyncQueue`](crate::AsyncQueue) when none is named:
/// tokio when the `tokio` feature is on, async-io otherwise.
#[cfg(all(feature = "async-io", not(feature = "tokio")))]
pub type DefaultBackend = AsyncIo;

/// What a wait is for: packets to read, room to write, or either. An
/// error on the fd (the interface was deleted) ends every wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

impl Interest {
    /// A packet to read.
    pub const READABLE: Interest = Interest(1);
    /// Room to write a packet.
    pub const WRITABLE: Interest = Interest(2);

    /// Both interests.
    pub const fn add(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// Whether this includes [`Self::READABLE`].
    pub const fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }

    /// Whether this includes [`Self::WRITABLE`].
    pub const fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, other: Interest) -> Interest {
        self.add(other)
    }
}

/// What a finished wait found ([`AsyncQueue::ready`](crate::AsyncQueue::ready)).
/// A hint: the next call may still find nothing, and then clears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ready {
    /// A read may find a packet.
    pub readable: bool,
    /// A write may find room.
    pub writable: bool,
    /// The fd reported an error (the kernel does so for a deleted
    /// interface or a detached queue): the next call returns it.
    pub error: bool,
}

/// One direction of I/O, as the backends see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Receiving.
    Read,
    /// Sending.
    Write,
}

impl Direction {
    /// The interest a wait of this direction has.
    pub fn interest(self) -> Interest {
        match self {
            Direction::Read => Interest::READABLE,
            Direction::Write => Interest::WRITABLE,
        }
    }
}

mod sealed {
    pub trait Sealed {}
}
pub(crate) use sealed::Sealed;

/// The readiness one wait found, held until the call it allowed has run:
/// [`ReadyGuard::clear`] tells the reactor that the call found nothing (or
/// drained the queue), so that the next wait sleeps until the kernel
/// reports the fd again.
pub trait ReadyGuard {
    /// What the wait found.
    fn ready(&self) -> Ready;
    /// The call found nothing to do: forget the readiness.
    fn clear(&mut self);
}

/// A runtime's reactor for queues: implemented by `Tokio` and
/// `AsyncIo` (sealed). Everything in this crate is generic over it, with
/// [`DefaultBackend`] as the default.
pub trait Backend: Sealed + Sized + Send + Sync + fmt::Debug + 'static {
    /// The readiness one wait found.
    type Guard<'a>: ReadyGuard + Send
    where
        Self: 'a;

    /// Register `queue` (already non-blocking) with the current reactor.
    fn register(queue: Queue) -> Result<Self>;

    /// The registered queue.
    fn queue(&self) -> &Queue;

    /// Deregister and give the queue back (async-io can fail to
    /// deregister, and then drops the queue).
    fn into_queue(self) -> Result<Queue>;

    /// Whether a call in `dir` is made before any wait. Writes always are
    /// (a down TUN polls as not writable, and its write must fail at once
    /// with `InterfaceDown`, not wait forever); reads are where the
    /// reactor keeps no readiness of its own to consult first.
    fn try_first(dir: Direction) -> bool;

    /// Wait until the queue is ready for `interest`, or reports an error.
    /// Cancel safe: nothing but the wait is dropped.
    fn wait(
        &self,
        interest: Interest,
    ) -> impl Future<Output = io::Result<Self::Guard<'_>>> + Send + '_;

    /// Run `f` once if the reactor holds the queue ready for `dir` (or
    /// holds an error for it); a `WouldBlock` from `f` clears that
    /// readiness. `Err(f)` when not ready (and `f` was not run).
    fn try_ready<R, F: FnOnce(&Queue) -> Result<R>>(
        &self,
        dir: Direction,
        f: F,
    ) -> std::result::Result<Result<R>, F>;

    /// Poll for readiness in `dir` (or an error), registering the task's
    /// waker when not ready. Only the latest waker of each direction is
    /// kept: one task per direction should poll.
    fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<io::Result<()>>;

    /// Sleep for `d` (the relay's backoff).
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interests_combine_and_directions_map_to_one() {
        let both = Interest::READABLE | Interest::WRITABLE;
        assert!(both.is_readable() && both.is_writable());
        assert!(Interest::READABLE.is_readable() && !Interest::READABLE.is_writable());
        assert!(!Interest::WRITABLE.is_readable() && Interest::WRITABLE.is_writable());
        assert_eq!(Direction::Read.interest(), Interest::READABLE);
        assert_eq!(Direction::Write.interest(), Interest::WRITABLE);
    }
}
