//! One queue (one fd) of a device, registered with a runtime's reactor.
//!
//! [`AsyncQueue`] owns a [`Queue`] in non-blocking mode inside a
//! [`Backend`] (tokio by default, async-io behind a feature). Every
//! operation is the device's own non-blocking call, run synchronously
//! between waits for readiness; the only await point of every method is
//! that wait. So:
//!
//! - dropping a future at its await point drops nothing but the wait: no
//!   syscall of that round has run yet, and an earlier round ended in
//!   `WouldBlock`, which the device returns only when it consumed nothing;
//! - `WouldBlock` clears the reactor's readiness, so the next wait sleeps
//!   until the kernel reports the fd again: no spinning;
//! - what the queue or the caller's [`RecvState`] holds (segments of a
//!   split super-packet, an error deferred behind packets) is handed out
//!   before any wait: the fd does not know about it;
//! - a send is tried before any wait, and waits only after `WouldBlock`:
//!   the kernel reports a down TUN as not writable, and its write fails at
//!   once with `InterfaceDown`, as the sync send does;
//! - every wait includes errors: a removed interface makes the kernel's
//!   `tun_chr_poll` report `EPOLLERR` only, and the call made after the
//!   wait returns [`ErrorKind::DeviceGone`](tun_device::ErrorKind::DeviceGone).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::task::{Context, Poll};

use tun_device::offload::VirtioNetHdrV1HashTunnel;
use tun_device::{
    Error, Interface, InterfaceName, IoOp, Queue, RecvState, Result, SendReport, SendState,
};

use crate::backend::{Backend, DefaultBackend, Direction, Interest, Ready, ReadyGuard};

/// One queue of a TUN/TAP device, driven by a runtime's reactor (`B`:
/// tokio unless named otherwise).
///
/// All I/O takes `&self`: share one queue between tasks in an
/// [`Arc`](std::sync::Arc). It is `Send + Sync`. Several tasks may wait on
/// the same queue; each wakes when the fd is reported ready, and those that
/// find nothing go back to sleep.
///
/// # Cancel safety
///
/// Every `async` method is cancel safe in the sense of `tokio::select!`:
/// its only await point is the wait for readiness, and it is dropped there
/// only before any syscall of the current round. What each method leaves
/// behind when dropped is stated on it; in short, receives lose nothing
/// the kernel handed over (segments not handed out yet stay in the
/// caller's [`RecvState`] or in the queue), and a batched send keeps its
/// progress in the caller's [`SendState`], so calling
/// [`AsyncQueue::send_batch`] again with the same batch finishes it, never
/// writing a packet twice.
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
pub struct AsyncQueue<B: Backend = DefaultBackend> {
    fd: B,
}

/// An error of the reactor (registration refused, runtime shutting down)
/// as a device error of operation `op` on `interface`.
pub(crate) fn reactor_error(interface: InterfaceName, op: IoOp, e: &io::Error) -> Error {
    Error::Io {
        op,
        interface,
        // Tokio gives no errno when its runtime is shutting down.
        errno: e.raw_os_error().unwrap_or(libc::ESHUTDOWN),
    }
}

/// The error a `try_*` call returns when the queue is not ready.
pub(crate) fn not_ready(q: &Queue) -> Error {
    Error::Io {
        op: IoOp::Poll,
        interface: q.interface_name(),
        errno: libc::EAGAIN,
    }
}

fn would_block<R>(r: &Result<R>) -> bool {
    matches!(r, Err(e) if e.is_would_block())
}

/// The direction a single interest stands for (a combined one reads).
fn direction_of(interest: Interest) -> Direction {
    if interest.is_writable() && !interest.is_readable() {
        Direction::Write
    } else {
        Direction::Read
    }
}

#[cfg(any(feature = "tokio", feature = "async-io"))]
impl AsyncQueue {
    /// Register `queue` with the default backend's reactor (the current
    /// tokio runtime's, with the `tokio` feature); see [`Self::register`].
    ///
    /// # Panics
    ///
    /// With tokio, outside a runtime with I/O enabled.
    pub fn new(queue: Queue) -> Result<Self> {
        Self::register(queue)
    }
}

impl<B: Backend> AsyncQueue<B> {
    /// Register `queue` with backend `B`'s reactor:
    /// `AsyncQueue::<AsyncIo>::register(queue)` for async-io.
    ///
    /// The queue is switched to non-blocking mode (its fd already is; the
    /// device layer then returns `WouldBlock` instead of calling
    /// `poll(2)`). A queue exists only after `TUNSETIFF`, so the fd is
    /// registered attached, as it must be: the kernel's poll of an
    /// unattached TUN fd reports an error.
    ///
    /// # Panics
    ///
    /// With tokio, outside a runtime with I/O enabled.
    pub fn register(queue: Queue) -> Result<Self> {
        queue.set_nonblocking(true);
        Ok(Self {
            fd: B::register(queue)?,
        })
    }

    /// The device queue (for calls without I/O, such as
    /// [`Queue::prepare_batch`], or a synchronous non-blocking attempt).
    pub fn get_ref(&self) -> &Queue {
        self.fd.queue()
    }

    /// The interface this queue belongs to.
    pub fn interface(&self) -> &Interface {
        self.get_ref().interface()
    }

    /// Deregister from the reactor and give the queue back (still in
    /// non-blocking mode). async-io may fail to deregister, and then
    /// closes the queue.
    pub fn into_inner(self) -> Result<Queue> {
        self.fd.into_queue()
    }

    /// Open one more queue of this queue's (multi-queue) device, registered.
    pub fn open_queue(&self) -> Result<AsyncQueue<B>> {
        AsyncQueue::register(self.get_ref().open_queue()?)
    }

    fn name(&self) -> InterfaceName {
        self.get_ref().interface_name()
    }

    /// The loop of every `async` I/O method: `f` (one round of
    /// non-blocking calls) before any wait when the direction is tried
    /// first, then after each wait. `f` also says whether its round
    /// drained the kernel's queue, which clears the readiness as a
    /// `WouldBlock` does (the round saw one; the next round would only
    /// meet it again).
    async fn io<R>(
        &self,
        dir: Direction,
        op: IoOp,
        mut f: impl FnMut(&Queue) -> Result<(R, bool)>,
    ) -> Result<R> {
        if B::try_first(dir) {
            match f(self.get_ref()) {
                Err(e) if e.is_would_block() => {}
                r => return r.map(|(r, _)| r),
            }
        }
        loop {
            let mut guard = self
                .fd
                .wait(dir.interest())
                .await
                .map_err(|e| reactor_error(self.name(), op, &e))?;
            match f(self.get_ref()) {
                Err(e) if e.is_would_block() => guard.clear(),
                Ok((r, drained)) => {
                    if drained {
                        guard.clear();
                    }
                    return Ok(r);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The poll form of [`Self::io`]: `Pending` with the task's waker
    /// registered for `dir` (only the latest task's, per direction).
    fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        op: IoOp,
        mut f: impl FnMut(&Queue) -> Result<R>,
    ) -> Poll<Result<R>> {
        if B::try_first(dir) {
            let r = f(self.get_ref());
            if !would_block(&r) {
                return Poll::Ready(r);
            }
        }
        loop {
            match self.fd.poll_ready(cx, dir) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(reactor_error(self.name(), op, &e))),
                Poll::Ready(Ok(())) => {}
            }
            match self.fd.try_ready(dir, &mut f) {
                // The readiness was cleared: poll again (and sleep).
                Ok(r) if would_block(&r) => {}
                Ok(r) => return Poll::Ready(r),
                // Taken by another task meanwhile: poll again.
                Err(_) => {}
            }
        }
    }

    /// Wait until the queue may be ready for `interest` (or reports an
    /// error: the interface was removed); returns what was found.
    /// Readiness is a hint: a following `try_*` call may still find
    /// nothing (and then clears it). Segments the queue holds for
    /// [`Self::recv`] count as readable.
    ///
    /// Cancel safety: only a wait; nothing is consumed.
    pub async fn ready(&self, interest: Interest) -> Result<Ready> {
        if interest.is_readable() && self.get_ref().has_pending() {
            return Ok(Ready {
                readable: true,
                ..Ready::default()
            });
        }
        let guard = self
            .fd
            .wait(interest)
            .await
            .map_err(|e| reactor_error(self.name(), IoOp::Poll, &e))?;
        // Dropped without clearing: the readiness stays for the next call.
        Ok(guard.ready())
    }

    /// [`Self::ready`] for reading.
    ///
    /// Cancel safety: only a wait; nothing is consumed.
    pub async fn readable(&self) -> Result<()> {
        self.ready(Interest::READABLE).await.map(drop)
    }

    /// [`Self::ready`] for writing.
    ///
    /// Cancel safety: only a wait; nothing is written.
    pub async fn writable(&self) -> Result<()> {
        self.ready(Interest::WRITABLE).await.map(drop)
    }

    /// Poll for a packet to read (or an error), registering the task's
    /// waker when there is none: the readiness half of
    /// [`Self::poll_recv`], for callers that make their own calls. Only
    /// the latest task polling is woken.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.get_ref().has_pending() {
            return Poll::Ready(Ok(()));
        }
        self.fd
            .poll_ready(cx, Direction::Read)
            .map_err(|e| reactor_error(self.name(), IoOp::Poll, &e))
    }

    /// Poll for room to write (or an error); as [`Self::poll_readable`].
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.fd
            .poll_ready(cx, Direction::Write)
            .map_err(|e| reactor_error(self.name(), IoOp::Poll, &e))
    }

    /// Run `f` (non-blocking device calls) once if the reactor holds the
    /// queue ready for `interest` (`READABLE` or `WRITABLE`; a combined
    /// interest is taken as `READABLE`), or holds an error for it. A
    /// `WouldBlock` from `f` clears that readiness, so a loop of
    /// [`Self::ready`] and `try_io` sleeps when idle. Returns a
    /// `WouldBlock` error when not ready.
    ///
    /// Writes are made even when the reactor does not hold the queue
    /// writable (a down TUN never polls writable, and its write fails at
    /// once with `InterfaceDown`).
    ///
    /// `f` must only return `WouldBlock` after a syscall found nothing to
    /// do (every call of [`Queue`] does).
    pub fn try_io<R>(&self, interest: Interest, f: impl FnOnce(&Queue) -> Result<R>) -> Result<R> {
        let dir = direction_of(interest);
        match self.fd.try_ready(dir, f) {
            Ok(r) => r,
            Err(f) if B::try_first(dir) => f(self.get_ref()),
            Err(_) => Err(not_ready(self.get_ref())),
        }
    }

    /// [`Queue::recv`] once: a segment the queue holds at once, else a
    /// read if ready (see [`Self::try_io`]).
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
        let q = self.get_ref();
        if q.has_pending() {
            return q.recv(buf);
        }
        self.try_io(Interest::READABLE, |q| q.recv(buf))
    }

    /// [`Queue::recv_batch`] once: what `state` holds at once, else reads
    /// if ready (see [`Self::try_io`]).
    pub fn try_recv_batch<T: AsMut<[u8]>>(
        &self,
        state: &mut RecvState,
        bufs: &mut [T],
        lens: &mut [usize],
        offset: usize,
    ) -> Result<usize> {
        if !state.is_empty() {
            return self.get_ref().recv_batch(state, bufs, lens, offset);
        }
        self.try_io(Interest::READABLE, |q| {
            q.recv_batch(state, bufs, lens, offset)
        })
    }

    /// [`Queue::send`] once (see [`Self::try_io`]).
    pub fn try_send(&self, packet: &[u8]) -> Result<usize> {
        self.try_io(Interest::WRITABLE, |q| q.send(packet))
    }

    /// Receive one complete packet into `buf`, or wake the task when one
    /// may be there: [`Self::recv`] as a poll. A segment the queue holds is
    /// handed out at once.
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize>> {
        let q = self.get_ref();
        if q.has_pending() {
            return Poll::Ready(q.recv(buf));
        }
        self.poll_io(cx, Direction::Read, IoOp::Recv, |q| q.recv(buf))
    }

    /// Send one complete packet, or wake the task when there may be room:
    /// [`Self::send`] as a poll (tried first, so a down link fails at
    /// once).
    pub fn poll_send(&self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<Result<usize>> {
        self.poll_io(cx, Direction::Write, IoOp::Send, |q| q.send(packet))
    }

    /// Receive one complete packet into `buf`; returns its length
    /// ([`Queue::recv`]: with offload on, a super-packet is split and its
    /// segments handed out by this and the following calls, on any task).
    ///
    /// Cancel safety: safe. Dropped at the readiness wait, no packet was
    /// read; segments of a split super-packet wait in the queue and are
    /// handed out by the next call before any wait.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_single(|q| q.recv(buf)).await
    }

    /// Receive one packet into the slices of `bufs` ([`Queue::recv_vectored`]).
    ///
    /// Cancel safety: as [`Self::recv`].
    pub async fn recv_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> Result<usize> {
        self.recv_single(|q| q.recv_vectored(bufs)).await
    }

    /// A single-packet receive: a segment the queue holds at once (the fd
    /// knows nothing of it), else `f` between waits.
    async fn recv_single(&self, mut f: impl FnMut(&Queue) -> Result<usize>) -> Result<usize> {
        let q = self.get_ref();
        if q.has_pending() {
            return f(q);
        }
        self.io(Direction::Read, IoOp::Recv, |q| f(q).map(|n| (n, false)))
            .await
    }

    /// Receive a batch ([`Queue::recv_batch`]): packets and super-packets
    /// the kernel has, split into `bufs[i][offset..]`, lengths in
    /// `lens[i]`; returns how many (at least one). Every read of the batch
    /// is made in one round: once the first packet is in, the call
    /// completes without waiting again.
    ///
    /// Segments that did not fit stay in `state` and come first next time;
    /// when `state` holds some (or an error deferred behind the packets of
    /// the last batch), they are handed out at once, without waiting for
    /// the kernel. A batch that ended because the kernel had no more
    /// (fewer packets than buffers, no super-packet, nothing left over:
    /// [`Queue::recv_batch`] reads until then) clears the readiness, so
    /// the next call waits instead of reading only to find `EAGAIN`.
    ///
    /// Cancel safety: safe. Dropped at the readiness wait, nothing was
    /// read in that round and `bufs`/`lens` hold nothing new; whatever the
    /// kernel handed over earlier is in `state`. Reuse the same `state`.
    pub async fn recv_batch<T: AsMut<[u8]>>(
        &self,
        state: &mut RecvState,
        bufs: &mut [T],
        lens: &mut [usize],
        offset: usize,
    ) -> Result<usize> {
        if !state.is_empty() {
            // The fd knows nothing of what the state holds (and another
            // task's WouldBlock may have cleared the readiness).
            match self.get_ref().recv_batch(state, bufs, lens, offset) {
                Err(e) if e.is_would_block() => {}
                r => return r,
            }
        }
        let len = bufs.len();
        self.io(Direction::Read, IoOp::RecvBatch, |q| {
            let supers = state.stats().super_packets;
            let n = q.recv_batch(state, bufs, lens, offset)?;
            let drained = n < len && state.is_empty() && state.stats().super_packets == supers;
            Ok((n, drained))
        })
        .await
    }

    /// Receive one packet as the kernel hands it over, super-packets whole,
    /// with its decoded virtio header ([`Queue::recv_gso`]).
    ///
    /// Cancel safety: as [`Self::recv`].
    pub async fn recv_gso(&self, buf: &mut [u8]) -> Result<(VirtioNetHdrV1HashTunnel, usize)> {
        self.io(Direction::Read, IoOp::Recv, |q| {
            q.recv_gso(buf).map(|r| (r, false))
        })
        .await
    }

    /// Send one complete packet ([`Queue::send`]); returns its length. The
    /// write is tried at once; the call waits only when the kernel says it
    /// would block.
    ///
    /// Cancel safety: safe. The kernel takes a packet whole or not at all:
    /// a future dropped at its wait has written nothing, one that completed
    /// wrote the packet once. `packet` is never modified.
    pub async fn send(&self, packet: &[u8]) -> Result<usize> {
        self.io(Direction::Write, IoOp::Send, |q| {
            q.send(packet).map(|n| (n, false))
        })
        .await
    }

    /// Send one packet gathered from `bufs` ([`Queue::send_vectored`]).
    ///
    /// Cancel safety: as [`Self::send`].
    pub async fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> Result<usize> {
        self.io(Direction::Write, IoOp::Send, |q| {
            q.send_vectored(bufs).map(|n| (n, false))
        })
        .await
    }

    /// Send one packet with its virtio header ([`Queue::send_gso`]), a
    /// super-packet for the kernel to segment.
    ///
    /// Cancel safety: as [`Self::send`].
    pub async fn send_gso(&self, hdr: &VirtioNetHdrV1HashTunnel, packet: &[u8]) -> Result<usize> {
        self.io(Direction::Write, IoOp::Send, |q| {
            q.send_gso(hdr, packet).map(|n| (n, false))
        })
        .await
    }

    /// Send a batch ([`Queue::send_batch`]): packet `i` is
    /// `bufs[i][offset..offset + lens[i]]`; with offload on the batch is
    /// coalesced first. Returns the report of the whole batch.
    ///
    /// A `state` that holds no unfinished batch gets this one prepared
    /// ([`Queue::prepare_batch`]: coalescing in the caller's buffers, no
    /// syscall), then written ([`Self::send_pending`]). A `state` that
    /// still holds an unfinished batch (an earlier call of this batch was
    /// dropped, or returned an error) goes on with it instead, without
    /// preparing again, so **call it again with the same `bufs`, `lens` and
    /// `offset`**; the report then covers the whole batch. Preparing a
    /// batch twice would coalesce packets already coalesced. To give up an
    /// unfinished batch instead, [`SendState::clear`] it. A call with
    /// another number of buffers or another offset than the unfinished
    /// batch fails with `ConfigError::NotThePreparedBatch`.
    ///
    /// The loop to write, whatever interrupts it:
    ///
    /// ```no_run
    /// # use tun_device::{ErrorKind, SendState};
    /// # async fn demo(q: &tun_async::AsyncQueue, bufs: &mut [Vec<u8>], lens: &mut [usize])
    /// # -> tun_device::Result<()> {
    /// let mut state = SendState::new();
    /// loop {
    ///     // This future may also be dropped (a `select!` that took
    ///     // another branch): the next call with the same batch resumes.
    ///     match q.send_batch(&mut state, bufs, lens, 10).await {
    ///         Ok(report) => break, // every packet written once, or refused
    ///         // One packet refused and skipped: the next call goes on
    ///         // behind it.
    ///         Err(e) if e.kind() == ErrorKind::BadPacket => continue,
    ///         // Anything else: give up the rest of this batch.
    ///         Err(e) => {
    ///             state.clear();
    ///             return Err(e);
    ///         }
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Cancel safety: safe, with the progress in `state`. Dropped before
    /// its first poll, nothing happened. Dropped later (at a wait for
    /// writability), the batch was prepared (planned: the caller's buffers
    /// and `lens` are never written); `state.pending()` lists the writes
    /// not made yet, and the next `send_batch` (or [`Self::send_pending`])
    /// of the same batch makes exactly those, none twice.
    pub async fn send_batch<T: AsRef<[u8]>>(
        &self,
        state: &mut SendState,
        bufs: &[T],
        lens: &[usize],
        offset: usize,
    ) -> Result<SendReport> {
        if state.is_done() {
            self.get_ref().prepare_batch(state, bufs, lens, offset)?;
        }
        self.send_pending(state, bufs, lens, offset).await
    }

    /// Write what `state` holds of the current batch ([`Queue::send_pending`]),
    /// resuming exactly where an earlier call (or a dropped future) stopped;
    /// returns the report of the whole batch. Each round of writes is made
    /// at once; a write that would block ends the round, the cursor in
    /// `state` unchanged past it, and the call waits for room.
    ///
    /// Cancel safety: safe. `state` always says what was written
    /// ([`SendState::written`]) and what is left ([`SendState::pending`]);
    /// buffers are never modified.
    pub async fn send_pending<T: AsRef<[u8]>>(
        &self,
        state: &mut SendState,
        bufs: &[T],
        lens: &[usize],
        offset: usize,
    ) -> Result<SendReport> {
        self.io(Direction::Write, IoOp::SendBatch, |q| {
            q.send_pending(state, bufs, lens, offset)
                .map(|r| (r, false))
        })
        .await
    }
}

impl<B: Backend> AsFd for AsyncQueue<B> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<B: Backend> AsRawFd for AsyncQueue<B> {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_raw_fd()
    }
}

impl<B: Backend> TryFrom<Queue> for AsyncQueue<B> {
    type Error = Error;
    /// [`AsyncQueue::register`].
    fn try_from(q: Queue) -> Result<Self> {
        AsyncQueue::register(q)
    }
}
