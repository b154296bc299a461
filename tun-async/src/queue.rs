//! One queue (one fd) of a device, registered with tokio's reactor.
//!
//! [`AsyncQueue`] owns a [`Queue`] in non-blocking mode inside an
//! [`AsyncFd`]. Every operation is the device's own call, run inside one
//! [`AsyncFdReadyGuard::try_io`](tokio::io::unix::AsyncFdReadyGuard::try_io)
//! closure after readiness was awaited; the only await point of every method
//! is that readiness wait. So:
//!
//! - dropping a future at its await point drops nothing but the wait: no
//!   syscall of that round has run yet, and an earlier round ended in
//!   `WouldBlock`, which the device returns only when it consumed nothing;
//! - `WouldBlock` clears tokio's readiness (through `try_io`), so the next
//!   wait sleeps until the kernel reports the fd again: no spinning;
//! - the reactor waits for `READABLE | ERROR` (or `WRITABLE | ERROR`): a
//!   removed interface makes the kernel's `tun_chr_poll` return `EPOLLERR`
//!   only, which tokio does not count as readable, so without the `ERROR`
//!   interest a reader would sleep forever.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tun_device::offload::VirtioNetHdr;
use tun_device::{
    Error, Interface, InterfaceName, IoOp, Queue, RecvState, Result, SendReport, SendState,
};

/// What a reader waits for: data, or an error (the interface is gone).
const READ: Interest = Interest::READABLE.add(Interest::ERROR);
/// What a writer waits for: room, or an error (the interface is gone).
const WRITE: Interest = Interest::WRITABLE.add(Interest::ERROR);

/// One queue of a TUN/TAP device, driven by tokio.
///
/// All I/O takes `&self`: share one queue between tasks in an
/// [`Arc`](std::sync::Arc). It is `Send + Sync`. Several tasks may wait on
/// the same queue; each wakes when the fd is reported ready, and those that
/// find nothing go back to sleep.
///
/// # Cancel safety
///
/// Every method is cancel safe in the sense of `tokio::select!`: its only
/// await point is the wait for readiness, and it is dropped there only
/// before any syscall of the current round. What each method leaves behind
/// when dropped is stated on it; in short, receives lose nothing the kernel
/// handed over (segments not handed out yet stay in the caller's
/// [`RecvState`] or in the queue), and a batched send keeps its progress in
/// the caller's [`SendState`], so it is finished with
/// [`AsyncQueue::send_pending`] and never writes a packet twice.
///
/// ```no_run
/// use tun_async::AsyncQueue;
/// use tun_device::Device;
///
/// # async fn demo() -> tun_device::Result<()> {
/// let dev = Device::builder().name("tun%d").offload(true).build()?;
/// let q = AsyncQueue::new(dev.into_queues().remove(0))?;
/// let mut buf = vec![0u8; 65536];
/// let n = q.recv(&mut buf).await?;
/// q.send(&buf[..n]).await?; // back to the kernel
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncQueue {
    fd: AsyncFd<Queue>,
}

/// Carry a device result through `try_io`: `WouldBlock` goes to tokio
/// (which clears the readiness), anything else comes back as it is.
fn lift<T>(r: Result<T>) -> io::Result<Result<T>> {
    match r {
        Err(e) if e.is_would_block() => Err(io::ErrorKind::WouldBlock.into()),
        r => Ok(r),
    }
}

/// The name for an error message, as last seen (no syscall: the kernel
/// may not know the interface any more).
fn name_of(q: &Queue) -> InterfaceName {
    q.interface_name()
}

/// An error of the reactor (registration refused, runtime shutting down)
/// as a device error of operation `op`.
fn reactor_error(q: &Queue, op: IoOp, e: &io::Error) -> Error {
    Error::Io {
        op,
        interface: name_of(q),
        // Tokio gives no errno when its runtime is shutting down.
        errno: e.raw_os_error().unwrap_or(libc::ESHUTDOWN),
    }
}

impl AsyncQueue {
    /// Register `queue` with the current tokio runtime's reactor.
    ///
    /// The queue is switched to non-blocking mode (its fd already is; the
    /// device layer then returns `WouldBlock` instead of calling
    /// `poll(2)`). A queue exists only after `TUNSETIFF`, so the fd is
    /// registered attached, as it must be: the kernel's poll of an
    /// unattached TUN fd reports an error.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (with I/O enabled).
    pub fn new(queue: Queue) -> Result<Self> {
        queue.set_nonblocking(true);
        // `AsyncFd::try_with_interest` is deprecated because an arbitrary
        // `AsRawFd` could hand out a different or closed fd. `Queue` owns its
        // fd (an `OwnedFd`), returns that same fd from every `as_raw_fd`, and
        // keeps it open until it is dropped or moved out by `into_inner`,
        // which is the contract of the unsafe replacement: the safe call is
        // sound here, and this crate stays free of `unsafe`.
        #[allow(deprecated)]
        match AsyncFd::try_with_interest(queue, READ.add(Interest::WRITABLE)) {
            Ok(fd) => Ok(Self { fd }),
            Err(e) => {
                let (q, cause) = e.into_parts();
                Err(reactor_error(&q, IoOp::Poll, &cause))
            }
        }
    }

    /// The device queue (for calls without I/O, such as
    /// [`Queue::prepare_batch`], or a synchronous non-blocking attempt).
    pub fn get_ref(&self) -> &Queue {
        self.fd.get_ref()
    }

    /// The interface this queue belongs to.
    pub fn interface(&self) -> &Interface {
        self.fd.get_ref().interface()
    }

    /// Deregister from the reactor and give the queue back (still in
    /// non-blocking mode).
    pub fn into_inner(self) -> Queue {
        self.fd.into_inner()
    }

    /// Open one more queue of this queue's (multi-queue) device, registered.
    pub fn open_queue(&self) -> Result<AsyncQueue> {
        AsyncQueue::new(self.get_ref().open_queue()?)
    }

    /// Await `interest`, then run `f` inside one `try_io`; again while it
    /// would block. The only await point of every I/O method.
    async fn io<R>(
        &self,
        interest: Interest,
        op: IoOp,
        mut f: impl FnMut(&Queue) -> Result<R>,
    ) -> Result<R> {
        loop {
            let mut guard = self
                .fd
                .ready(interest)
                .await
                .map_err(|e| reactor_error(self.get_ref(), op, &e))?;
            match guard.try_io(|fd| lift(f(fd.get_ref()))) {
                Ok(Ok(r)) => return r,
                // `lift` turns only WouldBlock into an io::Error, and
                // `try_io` keeps that one.
                Ok(Err(e)) => return Err(reactor_error(self.get_ref(), op, &e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Wait until the queue may be readable, or reports an error (the
    /// interface was removed). Readiness is a hint: a following
    /// [`Self::try_recv`] may still find nothing (and then clears it).
    ///
    /// Cancel safety: only a wait; nothing is consumed.
    pub async fn readable(&self) -> Result<()> {
        self.fd
            .ready(READ)
            .await
            .map(drop)
            .map_err(|e| reactor_error(self.get_ref(), IoOp::Poll, &e))
    }

    /// Wait until the queue may be writable, or reports an error.
    ///
    /// Cancel safety: only a wait; nothing is written.
    pub async fn writable(&self) -> Result<()> {
        self.fd
            .ready(WRITE)
            .await
            .map(drop)
            .map_err(|e| reactor_error(self.get_ref(), IoOp::Poll, &e))
    }

    /// Run `f` (non-blocking device calls) once if tokio holds the queue
    /// ready for `interest`; a `WouldBlock` from `f` clears that readiness,
    /// so a loop of [`Self::readable`] and `try_io` sleeps when idle.
    /// Returns a `WouldBlock` error when not ready.
    ///
    /// `f` must only return `WouldBlock` after a syscall found nothing to
    /// do (every call of [`Queue`] does).
    pub fn try_io<R>(&self, interest: Interest, f: impl FnOnce(&Queue) -> Result<R>) -> Result<R> {
        match self.fd.try_io(interest, |q| lift(f(q))) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(Error::Io {
                op: IoOp::Poll,
                interface: name_of(self.get_ref()),
                errno: e.raw_os_error().unwrap_or(libc::EAGAIN),
            }),
            Err(e) => Err(reactor_error(self.get_ref(), IoOp::Poll, &e)),
        }
    }

    /// [`Queue::recv`] once, if ready (see [`Self::try_io`]).
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.try_io(READ, |q| q.recv(buf))
    }

    /// [`Queue::send`] once, if ready (see [`Self::try_io`]).
    pub fn try_send(&self, packet: &[u8]) -> Result<usize> {
        self.try_io(WRITE, |q| q.send(packet))
    }

    /// Receive one complete packet into `buf`; returns its length
    /// ([`Queue::recv`]: with offload on, a super-packet is split and its
    /// segments handed out by this and the following calls).
    ///
    /// Cancel safety: safe. Dropped at the readiness wait, no packet was
    /// read; segments of a split super-packet wait in the queue for the
    /// next call (on any task), and readiness is not cleared while any are
    /// left.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.io(READ, IoOp::Recv, |q| q.recv(buf)).await
    }

    /// Receive one packet into the slices of `bufs` ([`Queue::recv_vectored`]).
    ///
    /// Cancel safety: as [`Self::recv`].
    pub async fn recv_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> Result<usize> {
        self.io(READ, IoOp::Recv, |q| q.recv_vectored(bufs)).await
    }

    /// Receive a batch ([`Queue::recv_batch`]): packets and super-packets
    /// the kernel has, split into `bufs[i][offset..]`, lengths in
    /// `sizes[i]`; returns how many (at least one). Every read of the batch
    /// runs inside one `try_io`: once the first packet is in, the call
    /// completes without awaiting again.
    ///
    /// Segments that did not fit stay in `state` and come first next time;
    /// when `state` holds some, they are handed out at once without waiting
    /// for the kernel.
    ///
    /// Cancel safety: safe. Dropped at the readiness wait, nothing was
    /// read in that round and `bufs`/`sizes` hold nothing new; whatever the
    /// kernel handed over earlier is in `state`. Reuse the same `state`.
    pub async fn recv_batch<B: AsMut<[u8]>>(
        &self,
        state: &mut RecvState,
        bufs: &mut [B],
        sizes: &mut [usize],
        offset: usize,
    ) -> Result<usize> {
        if state.has_pending() {
            // Another task's WouldBlock may have cleared the readiness while
            // this state holds segments: hand them out now.
            match self.get_ref().recv_batch(state, bufs, sizes, offset) {
                Err(e) if e.is_would_block() => {}
                r => return r,
            }
        }
        self.io(READ, IoOp::RecvBatch, |q| {
            q.recv_batch(state, bufs, sizes, offset)
        })
        .await
    }

    /// Receive one packet as the kernel hands it over, super-packets whole,
    /// with its decoded virtio header ([`Queue::recv_gso`]).
    ///
    /// Cancel safety: as [`Self::recv`].
    pub async fn recv_gso(&self, buf: &mut [u8]) -> Result<(VirtioNetHdr, usize)> {
        self.io(READ, IoOp::Recv, |q| q.recv_gso(buf)).await
    }

    /// Send one complete packet ([`Queue::send`]); returns its length.
    ///
    /// Cancel safety: safe. The kernel takes a packet whole or not at all:
    /// a future dropped at its wait has written nothing, one that completed
    /// wrote the packet once. `packet` is never modified.
    pub async fn send(&self, packet: &[u8]) -> Result<usize> {
        self.io(WRITE, IoOp::Send, |q| q.send(packet)).await
    }

    /// Send one packet gathered from `bufs` ([`Queue::send_vectored`]).
    ///
    /// Cancel safety: as [`Self::send`].
    pub async fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> Result<usize> {
        self.io(WRITE, IoOp::Send, |q| q.send_vectored(bufs)).await
    }

    /// Send one packet with its virtio header ([`Queue::send_gso`]), a
    /// super-packet for the kernel to segment.
    ///
    /// Cancel safety: as [`Self::send`].
    pub async fn send_gso(&self, hdr: &VirtioNetHdr, packet: &[u8]) -> Result<usize> {
        self.io(WRITE, IoOp::Send, |q| q.send_gso(hdr, packet))
            .await
    }

    /// Send a batch ([`Queue::send_batch`]): packet `i` is
    /// `bufs[i][offset..offset + lens[i]]`; with offload on the batch is
    /// coalesced first.
    ///
    /// This is [`Queue::prepare_batch`] (coalescing, no syscall), run
    /// synchronously on the first poll, then [`Self::send_pending`]. If
    /// `state` still holds an unfinished batch, that batch is dropped:
    /// finish it first with [`Self::send_pending`] (and its own buffers).
    ///
    /// Cancel safety: safe, with the progress in `state`.
    /// - Dropped before its first poll: nothing happened.
    /// - Dropped later (at a wait for writability): the batch was
    ///   prepared, which **modified the caller's buffers** (payloads of
    ///   merged packets appended to the first of their run, `lens` updated,
    ///   headers written in the `offset` bytes in front); `state.pending()`
    ///   lists the packets not written yet. Call [`Self::send_pending`]
    ///   with the same `bufs`, `lens` and `offset` to write exactly those
    ///   (none twice), or [`SendState::clear`] to drop them.
    ///
    /// An error stops the writes and is returned with the same state: a
    /// packet the kernel refused (`ErrorKind::BadPacket`) is skipped and
    /// [`Self::send_pending`] continues behind it.
    pub async fn send_batch<B: AsRef<[u8]>>(
        &self,
        state: &mut SendState,
        bufs: &[B],
        lens: &[usize],
        offset: usize,
    ) -> Result<SendReport> {
        self.get_ref().prepare_batch(state, bufs, lens, offset)?;
        self.send_pending(state, bufs, lens, offset).await
    }

    /// Write what `state` holds of the current batch ([`Queue::send_pending`]),
    /// resuming exactly where an earlier call (or a dropped future) stopped;
    /// returns the report of the whole batch. Each round of writes runs
    /// inside one `try_io`; a write that would block ends the round, the
    /// cursor in `state` unchanged past it.
    ///
    /// Cancel safety: safe. `state` always says what was written
    /// ([`SendState::written`]) and what is left ([`SendState::pending`]);
    /// buffers are not modified (except the header area in front of a
    /// packet, which the prepared batch already filled).
    pub async fn send_pending<B: AsRef<[u8]>>(
        &self,
        state: &mut SendState,
        bufs: &[B],
        lens: &[usize],
        offset: usize,
    ) -> Result<SendReport> {
        self.io(WRITE, IoOp::SendBatch, |q| {
            q.send_pending(state, bufs, lens, offset)
        })
        .await
    }
}

impl AsFd for AsyncQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl AsRawFd for AsyncQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_raw_fd()
    }
}

impl TryFrom<Queue> for AsyncQueue {
    type Error = Error;
    /// [`AsyncQueue::new`].
    fn try_from(q: Queue) -> Result<Self> {
        AsyncQueue::new(q)
    }
}
