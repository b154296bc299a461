//! futures `Stream` and `Sink` adapters for single packets.
//!
//! Both are thin shells over the queue's poll methods
//! ([`AsyncQueue::poll_recv`], [`AsyncQueue::poll_send`]): no future is
//! boxed per packet. The stream receives into one buffer it keeps and
//! yields each packet as a `Vec` of the packet's own length; the sink
//! holds at most the one item it was given.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use tun_device::Result;

use crate::AsyncQueue;
use crate::backend::{Backend, DefaultBackend};

/// The packets of a queue as a [`Stream`]: each item is one complete
/// packet ([`AsyncQueue::recv`]) in a `Vec` of its own length, copied out
/// of a receive buffer the stream keeps.
///
/// An error is yielded as an item and the stream goes on, except when the
/// device is gone: that error is the last item.
///
/// Cancel safety: dropping the stream (or not polling it again) drops at
/// most a registered wake-up; no packet was read for it.
///
/// ```no_run
/// use std::sync::Arc;
/// use futures_core::Stream;
/// use tun_async::{AsyncQueue, PacketStream};
///
/// fn packets(q: Arc<AsyncQueue>) -> impl Stream<Item = tun_device::Result<Vec<u8>>> {
///     PacketStream::new(q, 65536)
/// }
/// ```
pub struct PacketStream<B: Backend = DefaultBackend> {
    queue: Arc<AsyncQueue<B>>,
    buf: Box<[u8]>,
    done: bool,
}

impl<B: Backend> std::fmt::Debug for PacketStream<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketStream")
            .field("queue", &self.queue)
            .field("max_len", &self.buf.len())
            .field("done", &self.done)
            .finish()
    }
}

impl<B: Backend> PacketStream<B> {
    /// Packets of `queue`, each received into the stream's buffer of
    /// `max_len` bytes (a longer packet is dropped with
    /// `ErrorKind::BufferTooSmall`).
    pub fn new(queue: Arc<AsyncQueue<B>>, max_len: usize) -> Self {
        Self {
            queue,
            buf: vec![0u8; max_len].into_boxed_slice(),
            done: false,
        }
    }
}

impl<B: Backend> Stream for PacketStream<B> {
    type Item = Result<Vec<u8>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let res = std::task::ready!(this.queue.poll_recv(cx, &mut this.buf));
        if matches!(&res, Err(e) if e.is_device_gone()) {
            this.done = true;
        }
        Poll::Ready(Some(res.map(|n| this.buf[..n].to_vec())))
    }
}

/// A [`Sink`] of packets into a queue: each item is one complete packet
/// ([`AsyncQueue::send`]). One packet is in flight at a time; `poll_ready`
/// and `poll_flush` finish it.
///
/// Cancel safety: an item accepted by `start_send` is written once
/// `poll_flush` (or the next `poll_ready`) returns `Ready(Ok)`; dropping the
/// sink before then drops that one packet unwritten, never half-written.
pub struct PacketSink<T, B: Backend = DefaultBackend> {
    queue: Arc<AsyncQueue<B>>,
    pending: Option<T>,
}

impl<T, B: Backend> std::fmt::Debug for PacketSink<T, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketSink")
            .field("queue", &self.queue)
            .field("sending", &self.pending.is_some())
            .finish()
    }
}

impl<T, B: Backend> PacketSink<T, B> {
    /// A sink writing into `queue`.
    pub fn new(queue: Arc<AsyncQueue<B>>) -> Self {
        Self {
            queue,
            pending: None,
        }
    }
}

impl<T: AsRef<[u8]>, B: Backend> PacketSink<T, B> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if let Some(item) = &self.pending {
            let res = std::task::ready!(self.queue.poll_send(cx, item.as_ref()));
            self.pending = None;
            res?;
        }
        Poll::Ready(Ok(()))
    }
}

// `Unpin` whatever `T` is: the item is never pinned.
impl<T, B: Backend> Unpin for PacketSink<T, B> {}

impl<T: AsRef<[u8]>, B: Backend> Sink<T> for PacketSink<T, B> {
    type Error = tun_device::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_pending(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: T) -> Result<()> {
        let this = self.get_mut();
        // `start_send` without `poll_ready` (a misuse of `Sink`) replaces
        // the unsent item; it never writes two at once.
        this.pending = Some(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_pending(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_pending(cx)
    }
}
