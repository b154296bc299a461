//! The tokio backend: the queue in an `AsyncFd`.
//!
//! tokio's rules shape it: `AsyncFd::try_io` takes a single interest (a
//! combined one maps to no readiness at all and never runs the call), and
//! `poll_read_ready` watches readability only, while a deleted interface
//! makes the kernel's `tun_chr_poll` report `EPOLLERR` and nothing else.
//! So every gated attempt tries its own direction and then `ERROR`, every
//! wait includes `ERROR`, and a polled read keeps one `ERROR` wait beside
//! `poll_read_ready` (allocated once, kept until an error comes).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::Interest as TokioInterest;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use tun_device::{IoOp, Queue, Result};

use super::{Backend, Direction, Interest, Ready, ReadyGuard, Sealed};

type ErrorWait = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// tokio's reactor (`AsyncFd`), the default backend (feature `tokio`).
pub struct Tokio {
    fd: Arc<AsyncFd<Queue>>,
    /// The `ERROR` wait of a polled read, while one is pending.
    error_wait: Mutex<Option<ErrorWait>>,
}

impl fmt::Debug for Tokio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokio")
            .field("queue", self.fd.get_ref())
            .finish()
    }
}

impl Sealed for Tokio {}

/// The readiness of one tokio wait.
#[derive(Debug)]
pub struct TokioGuard<'a>(AsyncFdReadyGuard<'a, Queue>);

impl ReadyGuard for TokioGuard<'_> {
    fn ready(&self) -> Ready {
        let r = self.0.ready();
        Ready {
            readable: r.is_readable(),
            writable: r.is_writable(),
            error: r.is_error(),
        }
    }

    fn clear(&mut self) {
        self.0.clear_ready();
    }
}

fn single(dir: Direction) -> TokioInterest {
    match dir {
        Direction::Read => TokioInterest::READABLE,
        Direction::Write => TokioInterest::WRITABLE,
    }
}

impl Backend for Tokio {
    type Guard<'a> = TokioGuard<'a>;

    fn register(queue: Queue) -> Result<Self> {
        let all = TokioInterest::READABLE
            .add(TokioInterest::WRITABLE)
            .add(TokioInterest::ERROR);
        // tokio's supported registration, `AsyncFd::register_with_interest`,
        // is an `unsafe fn` (the caller vouches that the fd stays open and
        // the same), and this crate forbids `unsafe`. The deprecated safe
        // form is that same call. Its contract holds: `Queue` owns its fd
        // (an `OwnedFd`), returns that fd from every `as_raw_fd`, and keeps
        // it open until it is dropped, which the `AsyncFd` owning it
        // outlives only after deregistering (`into_inner`, `drop`).
        #[allow(deprecated)]
        match AsyncFd::try_with_interest(queue, all) {
            Ok(fd) => Ok(Self {
                fd: Arc::new(fd),
                error_wait: Mutex::new(None),
            }),
            Err(e) => {
                let (q, cause) = e.into_parts();
                Err(crate::queue::reactor_error(
                    q.interface_name(),
                    IoOp::Poll,
                    &cause,
                ))
            }
        }
    }

    fn queue(&self) -> &Queue {
        self.fd.get_ref()
    }

    fn into_queue(self) -> Result<Queue> {
        // A pending error wait holds the only other reference.
        drop(self.error_wait);
        match Arc::try_unwrap(self.fd) {
            Ok(fd) => Ok(fd.into_inner()),
            Err(fd) => Err(crate::queue::reactor_error(
                fd.get_ref().interface_name(),
                IoOp::Poll,
                &io::Error::from_raw_os_error(libc::EBUSY),
            )),
        }
    }

    fn try_first(dir: Direction) -> bool {
        // tokio keeps readiness: a read without it would be a wasted
        // EAGAIN. A write is tried first (see the trait).
        dir == Direction::Write
    }

    fn wait(&self, interest: Interest) -> impl Future<Output = io::Result<TokioGuard<'_>>> + Send {
        let mut i = TokioInterest::ERROR;
        if interest.is_readable() {
            i = i.add(TokioInterest::READABLE);
        }
        if interest.is_writable() {
            i = i.add(TokioInterest::WRITABLE);
        }
        async move { self.fd.ready(i).await.map(TokioGuard) }
    }

    fn try_ready<R, F: FnOnce(&Queue) -> Result<R>>(
        &self,
        dir: Direction,
        f: F,
    ) -> std::result::Result<Result<R>, F> {
        let mut f = Some(f);
        let mut res = None;
        // One interest per try_io, as tokio requires: the direction's own,
        // then ERROR (a deleted interface reports nothing else).
        for interest in [single(dir), TokioInterest::ERROR] {
            let _ = self.fd.try_io(interest, |q| {
                let Some(f) = f.take() else { return Ok(()) };
                let r = f(q);
                let would_block = matches!(&r, Err(e) if e.is_would_block());
                res = Some(r);
                if would_block {
                    // Clears the readiness that let the call run.
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(())
                }
            });
            if res.is_some() {
                break;
            }
        }
        match (res, f) {
            (Some(r), _) => Ok(r),
            (None, Some(f)) => Err(f),
            // Not reached: `res` is set whenever `f` was taken.
            (None, None) => Ok(Err(crate::queue::not_ready(self.fd.get_ref()))),
        }
    }

    fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<io::Result<()>> {
        match dir {
            // Dropping the guard keeps the readiness for the call to use.
            // Writability covers an error: tokio counts `EPOLLERR` alone as
            // write-closed.
            Direction::Write => self.fd.poll_write_ready(cx).map_ok(drop),
            Direction::Read => {
                if let Poll::Ready(r) = self.fd.poll_read_ready(cx) {
                    return Poll::Ready(r.map(drop));
                }
                let mut slot = self
                    .error_wait
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let wait = slot.get_or_insert_with(|| {
                    let fd = self.fd.clone();
                    Box::pin(async move { fd.ready(TokioInterest::ERROR).await.map(drop) })
                });
                let r = wait.as_mut().poll(cx);
                if r.is_ready() {
                    *slot = None;
                }
                r
            }
        }
    }

    fn sleep(d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }
}
