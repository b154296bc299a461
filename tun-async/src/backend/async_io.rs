//! The async-io backend (smol, async-std and anything else on async-io's
//! reactor): the queue in an `Async`.
//!
//! async-io keeps no readiness between waits (its epoll registrations are
//! one-shot, re-armed by each wait), so every call is tried first and a
//! wait follows only a `WouldBlock`; its poller counts `EPOLLERR` as both
//! readable and writable, so a deleted interface ends every wait.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_io::{Async, Timer};
use tun_device::{IoOp, Queue, Result};

use super::{Backend, Direction, Interest, Ready, ReadyGuard, Sealed};

/// async-io's reactor (`Async`), behind the `async-io` feature: for smol
/// and async-std users. Name it as the type parameter:
/// `AsyncQueue::<AsyncIo>::register(queue)`.
#[derive(Debug)]
pub struct AsyncIo {
    fd: Async<Queue>,
}

impl Sealed for AsyncIo {}

/// What one async-io wait found; there is nothing to clear.
#[derive(Debug)]
pub struct AsyncIoGuard(Ready);

impl ReadyGuard for AsyncIoGuard {
    fn ready(&self) -> Ready {
        self.0
    }

    fn clear(&mut self) {}
}

impl Backend for AsyncIo {
    type Guard<'a> = AsyncIoGuard;

    fn register(queue: Queue) -> Result<Self> {
        // The queue's fd is non-blocking already. Registration borrows the
        // fd through `AsFd`: I/O safe, no `unsafe` here or in the caller.
        // A failed registration drops the queue: name it first.
        let name = queue.interface_name();
        match Async::new_nonblocking(queue) {
            Ok(fd) => Ok(Self { fd }),
            Err(e) => Err(crate::queue::reactor_error(name, IoOp::Poll, &e)),
        }
    }

    fn queue(&self) -> &Queue {
        self.fd.get_ref()
    }

    fn into_queue(self) -> Result<Queue> {
        let name = self.fd.get_ref().interface_name();
        self.fd
            .into_inner()
            .map_err(|e| crate::queue::reactor_error(name, IoOp::Poll, &e))
    }

    fn try_first(_: Direction) -> bool {
        true
    }

    async fn wait(&self, interest: Interest) -> io::Result<AsyncIoGuard> {
        {
            let (r, w) = (interest.is_readable(), interest.is_writable());
            let mut readable = pin!(self.fd.readable());
            let mut writable = pin!(self.fd.writable());
            std::future::poll_fn(|cx| {
                let mut ready = Ready::default();
                if r {
                    if let Poll::Ready(res) = readable.as_mut().poll(cx) {
                        res?;
                        ready.readable = true;
                    }
                }
                if w {
                    if let Poll::Ready(res) = writable.as_mut().poll(cx) {
                        res?;
                        ready.writable = true;
                    }
                }
                if ready.readable || ready.writable {
                    Poll::Ready(Ok(AsyncIoGuard(ready)))
                } else {
                    Poll::Pending
                }
            })
            .await
        }
    }

    fn try_ready<R, F: FnOnce(&Queue) -> Result<R>>(
        &self,
        _: Direction,
        f: F,
    ) -> std::result::Result<Result<R>, F> {
        Ok(f(self.fd.get_ref()))
    }

    fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<io::Result<()>> {
        match dir {
            Direction::Read => self.fd.poll_readable(cx),
            Direction::Write => self.fd.poll_writable(cx),
        }
    }

    async fn sleep(d: Duration) {
        Timer::after(d).await;
    }
}
