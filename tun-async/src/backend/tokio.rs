//! The tokio backend: the queue beside a duplicate of its fd registered
//! in an `AsyncFd` (tun-sys's `TokioFd`).
//!
//! tokio's supported registration is an `unsafe fn`, and this crate
//! forbids `unsafe`: tun-sys registers an `OwnedFd`, for which the
//! contract holds by construction, and the queue keeps its own fd. The
//! kernel's poll (`tun_chr_poll`) belongs to the open file description,
//! which a duplicate shares, so the registration reports the queue's
//! readiness, `EPOLLERR` of a deleted interface included; the calls run on
//! the queue. The price is one more fd per registered queue.
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
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::Interest as TokioInterest;
use tokio::io::unix::AsyncFdReadyGuard;
use tun_device::{Error, IoOp, Queue, Result, Syscall};
use tun_sys::TokioFd;

use super::{Backend, Direction, Interest, Ready, ReadyGuard, Sealed};

type ErrorWait = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// tokio's reactor (`AsyncFd`), the default backend (feature `tokio`).
pub struct Tokio {
    // Fields drop in order: the registration goes (deregistered, the
    // duplicate closed) before the queue's own fd.
    /// The `ERROR` wait of a polled read, while one is pending (it holds
    /// the other reference to `fd`).
    error_wait: Mutex<Option<ErrorWait>>,
    /// A duplicate of the queue's fd, registered.
    fd: Arc<TokioFd>,
    queue: Queue,
}

impl fmt::Debug for Tokio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokio").field("queue", &self.queue).finish()
    }
}

impl Sealed for Tokio {}

/// The readiness of one tokio wait.
#[derive(Debug)]
pub struct TokioGuard<'a>(AsyncFdReadyGuard<'a, OwnedFd>);

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
        let name = queue.interface_name();
        let dup = queue
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::Syscall {
                call: Syscall::Dup,
                interface: Some(name),
                errno: e.raw_os_error().unwrap_or(libc::EMFILE),
            })?;
        match TokioFd::register(dup, all) {
            Ok(fd) => Ok(Self {
                fd: Arc::new(fd),
                queue,
                error_wait: Mutex::new(None),
            }),
            Err(e) => Err(crate::queue::reactor_error(name, IoOp::Poll, &e)),
        }
    }

    fn queue(&self) -> &Queue {
        &self.queue
    }

    fn into_queue(self) -> Result<Queue> {
        // The pending error wait holds the only other reference to the
        // registration; dropping it with its last reference deregisters
        // the duplicate and closes it.
        drop(self.error_wait);
        drop(self.fd);
        Ok(self.queue)
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
        async move { self.fd.async_fd().ready(i).await.map(TokioGuard) }
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
            let _ = self.fd.async_fd().try_io(interest, |_| {
                let Some(f) = f.take() else { return Ok(()) };
                let r = f(&self.queue);
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
            (None, None) => Ok(Err(crate::queue::not_ready(&self.queue))),
        }
    }

    fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<io::Result<()>> {
        match dir {
            // Dropping the guard keeps the readiness for the call to use.
            // Writability covers an error: tokio counts `EPOLLERR` alone as
            // write-closed.
            Direction::Write => self.fd.async_fd().poll_write_ready(cx).map_ok(drop),
            Direction::Read => {
                if let Poll::Ready(r) = self.fd.async_fd().poll_read_ready(cx) {
                    return Poll::Ready(r.map(drop));
                }
                let mut slot = self
                    .error_wait
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let wait = slot.get_or_insert_with(|| {
                    let fd = self.fd.clone();
                    Box::pin(
                        async move { fd.async_fd().ready(TokioInterest::ERROR).await.map(drop) },
                    )
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
