//! futures `Stream` and `Sink` adapters for single packets.
//!
//! Each adapter holds an `Arc<AsyncQueue>` and at most one boxed
//! [`AsyncQueue::recv`] or [`AsyncQueue::send`] future; nothing else. A
//! boxed future (rather than a `poll_*` method on the queue) keeps the
//! `ERROR` interest of the async methods: tokio's `poll_read_ready` waits
//! for readability only, and a deleted interface reports nothing else but
//! an error.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use tun_device::Result;

use crate::AsyncQueue;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The packets of a queue as a [`Stream`]: each item is one complete
/// packet ([`AsyncQueue::recv`]) in a fresh `Vec`.
///
/// An error is yielded as an item and the stream goes on, except when the
/// device is gone: that error is the last item.
///
/// Cancel safety: dropping the stream (or not polling it again) drops at
/// most a receive waiting for readiness, which has read nothing.
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
pub struct PacketStream {
    queue: Arc<AsyncQueue>,
    max_len: usize,
    pending: Option<BoxFuture<Result<Vec<u8>>>>,
    done: bool,
}

impl std::fmt::Debug for PacketStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketStream")
            .field("queue", &self.queue)
            .field("max_len", &self.max_len)
            .field("receiving", &self.pending.is_some())
            .field("done", &self.done)
            .finish()
    }
}

impl PacketStream {
    /// Packets of `queue`, each received into a buffer of `max_len` bytes
    /// (a longer packet is dropped with `ErrorKind::BufferTooSmall`).
    pub fn new(queue: Arc<AsyncQueue>, max_len: usize) -> Self {
        Self {
            queue,
            max_len,
            pending: None,
            done: false,
        }
    }
}

impl Stream for PacketStream {
    type Item = Result<Vec<u8>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let (queue, max_len) = (self.queue.clone(), self.max_len);
        let fut = self.pending.get_or_insert_with(|| {
            Box::pin(async move {
                let mut buf = vec![0u8; max_len];
                let n = queue.recv(&mut buf).await?;
                buf.truncate(n);
                Ok(buf)
            })
        });
        let res = std::task::ready!(fut.as_mut().poll(cx));
        self.pending = None;
        if matches!(&res, Err(e) if e.is_device_gone()) {
            self.done = true;
        }
        Poll::Ready(Some(res))
    }
}

/// A [`Sink`] of packets into a queue: each item is one complete packet
/// ([`AsyncQueue::send`]). One packet is in flight at a time; `poll_ready`
/// and `poll_flush` finish it.
///
/// Cancel safety: an item accepted by `start_send` is written once
/// `poll_flush` (or the next `poll_ready`) returns `Ready(Ok)`; dropping the
/// sink before then drops that one packet unwritten, never half-written.
pub struct PacketSink<B> {
    queue: Arc<AsyncQueue>,
    pending: Option<BoxFuture<Result<usize>>>,
    _item: std::marker::PhantomData<fn(B)>,
}

impl<B> std::fmt::Debug for PacketSink<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketSink")
            .field("queue", &self.queue)
            .field("sending", &self.pending.is_some())
            .finish()
    }
}

impl<B> PacketSink<B> {
    /// A sink writing into `queue`.
    pub fn new(queue: Arc<AsyncQueue>) -> Self {
        Self {
            queue,
            pending: None,
            _item: std::marker::PhantomData,
        }
    }

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if let Some(fut) = self.pending.as_mut() {
            let res = std::task::ready!(fut.as_mut().poll(cx));
            self.pending = None;
            res?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<B: AsRef<[u8]> + Send + 'static> Sink<B> for PacketSink<B> {
    type Error = tun_device::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_pending(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: B) -> Result<()> {
        let this = self.get_mut();
        debug_assert!(this.pending.is_none(), "start_send without poll_ready");
        let queue = this.queue.clone();
        this.pending = Some(Box::pin(async move { queue.send(item.as_ref()).await }));
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_pending(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_pending(cx)
    }
}
