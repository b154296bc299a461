//! The relay's directions on threads of their own: [`spawn_threads`] and
//! its handle, [`ThreadRelay`]. Each direction runs on one OS thread with a
//! current-thread tokio runtime, so the two never share a scheduler, a
//! reactor or a lock, and each runtime's reactor serves the queue its
//! direction reads from.
//!
//! Each queue is registered with the runtime of the direction that reads
//! from it; the other direction writes to it, trying first and waiting on
//! that reactor (a tokio waker works across runtimes) only when the kernel
//! has no room. So a thread whose direction ended keeps its runtime
//! turning, without work of its own, until the other direction has ended
//! too: a waiting write of the other direction still gets its wakeup.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tun_device::relay::{RelayCounters, RelayStats};
use tun_device::{Error, IoOp, Queue, Result, Syscall};

use super::stop::Stop;
use super::{Config, End, Stats, pump};
use crate::AsyncQueue;
use crate::backend::Tokio;

/// Which directions ended, and the signal raised once both did.
#[derive(Debug, Default)]
struct Ended {
    /// Per direction: (a to b, b to a).
    each: [AtomicBool; 2],
    count: AtomicUsize,
    both: Stop,
}

impl Ended {
    /// Direction `dir` ended (again is a no-op); the second raises `both`.
    fn mark(&self, dir: usize) {
        if !self.each[dir].swap(true, Ordering::SeqCst)
            && self.count.fetch_add(1, Ordering::SeqCst) == 1
        {
            self.both.raise();
        }
    }
}

/// A direction's current-thread runtime, droppable anywhere. tokio panics
/// when a runtime is dropped inside an async context (its drop waits for
/// blocking tasks), which an error path of [`spawn_threads`] called from
/// async code would do; these runtimes run no blocking tasks, so shutting
/// them down in the background waits for nothing and loses nothing.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    /// A current-thread runtime with I/O and time, for the direction
    /// reading `q` (named in the error).
    fn new(q: &Queue) -> Result<Runtime> {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map(|rt| Runtime(Some(rt)))
            .map_err(|e| crate::queue::reactor_error(q.interface_name(), IoOp::Poll, &e))
    }

    fn get(&self) -> &tokio::runtime::Runtime {
        // Taken only by `drop`.
        self.0.as_ref().expect("runtime present until dropped")
    }

    /// `queue` registered with this runtime's reactor.
    fn register(&self, queue: Queue) -> Result<AsyncQueue<Tokio>> {
        let _entered = self.get().enter();
        AsyncQueue::register(queue)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Marks its direction ended when dropped: after the loop returned, and
/// also while a panic unwinds through it, so the other thread is never left
/// waiting for a direction that is gone.
struct MarkOnDrop<'a>(&'a Ended, usize);

impl Drop for MarkOnDrop<'_> {
    fn drop(&mut self) {
        self.0.mark(self.1);
    }
}

/// A running relay with one OS thread per direction, each running a
/// current-thread tokio runtime: [`spawn_threads`]. Dropping it stops both
/// directions and joins their threads.
#[derive(Debug)]
pub struct ThreadRelay {
    stop: Stop,
    live: [Arc<RelayStats>; 2],
    ended: Arc<Ended>,
    threads: Vec<JoinHandle<End>>,
}

/// Start relaying between `a` and `b` in both directions, each direction
/// on an OS thread of its own running a current-thread tokio runtime (made
/// here, with I/O and time). Needs no runtime of the caller's: call it from
/// anywhere, async code included, and [`ThreadRelay::stop`] it from
/// anywhere (it blocks the calling thread while the two threads end,
/// which they do promptly).
///
/// Each queue is registered with the runtime of the direction that reads
/// from it. The error policy, counters and stop are those of [`spawn`]
/// and [`run`](super::run).
///
/// Errors: a runtime that cannot be built or a queue that cannot be
/// registered (an error of operation `Poll` on that interface), a thread
/// that cannot be started (`Syscall::SpawnThread`). Nothing is left
/// running after an error.
///
/// ```no_run
/// use tun_async::relay;
/// use tun_device::Device;
///
/// # fn demo() -> tun_device::Result<()> {
/// let a = Device::builder().name("a%d").offload(true).build()?;
/// let b = Device::builder().name("b%d").offload(true).build()?;
/// let relay = relay::spawn_threads(
///     a.into_queues().remove(0),
///     b.into_queues().remove(0),
///     relay::Config::default(),
/// )?;
/// std::thread::sleep(std::time::Duration::from_secs(10));
/// let stats = relay.stop();
/// println!("a->b {} packets, ended: {:?}", stats.a_to_b.packets_in, stats.a_to_b_end);
/// # Ok(())
/// # }
/// ```
///
/// [`spawn`]: super::spawn
pub fn spawn_threads(a: Queue, b: Queue, config: Config) -> Result<ThreadRelay> {
    let rt_ab = Runtime::new(&a)?;
    let rt_ba = Runtime::new(&b)?;
    let a = Arc::new(rt_ab.register(a)?);
    let b = Arc::new(rt_ba.register(b)?);
    let mut relay = ThreadRelay {
        stop: Stop::default(),
        live: [
            Arc::new(RelayStats::default()),
            Arc::new(RelayStats::default()),
        ],
        ended: Arc::new(Ended::default()),
        threads: Vec::with_capacity(2),
    };
    for (dir, rt, from, to) in [(0, rt_ab, a.clone(), b.clone()), (1, rt_ba, b, a)] {
        let name = from.get_ref().interface_name();
        let (listener, done) = (relay.stop.listen(), relay.ended.both.listen());
        let (ended, live) = (relay.ended.clone(), relay.live[dir].clone());
        let thread = std::thread::Builder::new()
            .name(format!("relay {name}"))
            .spawn(move || {
                rt.get().block_on(async move {
                    let mark = MarkOnDrop(&ended, dir);
                    let end = pump(&from, &to, config, listener, &live).await;
                    drop(mark);
                    // Serve this runtime's queue until the other direction
                    // ended too.
                    let mut done = done;
                    std::future::poll_fn(|cx| done.poll(cx)).await;
                    end
                })
            });
        match thread {
            Ok(t) => relay.threads.push(t),
            Err(e) => {
                // No thread for this direction: it never ran. Dropping
                // `relay` stops and joins the one already started.
                relay.ended.mark(dir);
                return Err(Error::Syscall {
                    call: Syscall::SpawnThread,
                    interface: Some(name),
                    errno: e.raw_os_error().unwrap_or(libc::EAGAIN),
                });
            }
        }
    }
    Ok(relay)
}

impl ThreadRelay {
    /// The counters now: (a to b, b to a).
    pub fn counters(&self) -> (RelayCounters, RelayCounters) {
        (self.live[0].snapshot(), self.live[1].snapshot())
    }

    /// Which directions ended (a to b, b to a): each ends by itself when
    /// a device is gone or on a fatal error; [`Self::stop`] says how.
    pub fn finished(&self) -> (bool, bool) {
        let each = &self.ended.each;
        (
            each[0].load(Ordering::SeqCst),
            each[1].load(Ordering::SeqCst),
        )
    }

    /// Whether both directions ended.
    pub fn is_finished(&self) -> bool {
        self.finished() == (true, true)
    }

    /// Stop both directions (each drops what it could not write yet), join
    /// their threads, and return the counters and how each direction
    /// ended. Prompt in every state: every wait of a direction is raced
    /// against the stop. A panic of a direction's thread is resumed here.
    pub fn stop(mut self) -> Stats {
        self.stop.raise();
        let mut ends = [End::Stopped, End::Stopped];
        for (thread, end) in self.threads.drain(..).zip(&mut ends) {
            match thread.join() {
                Ok(e) => *end = e,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Stats::new([&self.live[0], &self.live[1]], ends)
    }
}

impl Drop for ThreadRelay {
    fn drop(&mut self) {
        self.stop.raise();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_raise_the_signal_once_each_direction_counted_once() {
        let ended = Ended::default();
        let mut done = ended.both.listen();
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        ended.mark(0);
        ended.mark(0);
        assert!(
            done.poll(&mut cx).is_pending(),
            "one direction counted twice"
        );
        {
            // A direction unwinding marks itself too.
            let _mark = MarkOnDrop(&ended, 1);
        }
        assert!(done.poll(&mut cx).is_ready());
        assert_eq!(ended.count.load(Ordering::SeqCst), 2);
    }
}
