//! A relay between two queues, one loop per direction: batched receive
//! (GSO split) on one side, batched send (GRO coalescing) on the other.
//!
//! The async counterpart of tun-device's threaded
//! [`Relay`](tun_device::relay::Relay), with the same error policy
//! ([`Disposition`]: wait, drop and count once, back off, finish, fail)
//! and the same counters ([`RelayCounters`]):
//!
//! - a packet the kernel calls bad is dropped and counted; the direction
//!   goes on at once;
//! - an output that refuses writes (its link down, EIO; ENOBUFS; moved
//!   away) gets the rest of the batch dropped, each packet counted once,
//!   and a [`Backoff`] (1 ms doubling to 100 ms, back to 1 ms after a
//!   write that worked) before the next write: no spinning, and the relay
//!   carries traffic again once the link is up;
//! - a device gone ends the direction ([`End::DeviceGone`]), as does a
//!   missing privilege or a refused configuration ([`End::Failed`]); each
//!   direction says how it ended.
//!
//! Every wait of a direction (for packets, for room, a backoff) is raced
//! against the stop signal, so `Relay::stop` returns promptly in every
//! state. No new batch is read once the stop is raised; a batch already
//! read is still written as far as the output takes it without waiting,
//! and what a full output leaves of it is counted as dropped. Receives
//! are cancel safe, so a stop loses nothing read uncounted.
//!
//! Three ways to run it:
//!
//! - [`run`] drives both directions in the calling task on any runtime
//!   (any [`Backend`]): on a current-thread runtime, or smol's `block_on`,
//!   that is the whole relay on one thread.
//! - `spawn` (feature `tokio`) gives each direction its own task, which a
//!   multi-thread runtime runs in parallel.
//! - `spawn_threads` (feature `tokio`) gives each direction an OS thread
//!   of its own with a current-thread runtime, each queue registered with
//!   the runtime of the direction that reads it: no scheduler shared
//!   between the directions, and no runtime needed from the caller.
//!
//! Which is fastest depends on the machine; the relay benchmark has a case
//! for each. Measured on a 2-core machine (Linux 6.18, BENCHMARKS.md),
//! [`run`] on one thread (a current-thread tokio runtime, or async-io's
//! `block_on`) moved as much as the threaded sync relay of tun-device
//! (1.00x to 1.07x) at 0.80x to 1.06x its CPU per GB, while `spawn` on a
//! two-worker runtime and `spawn_threads` reached 0.87x to 1.03x: there
//! the traffic and the kernel work the writes start need the other core,
//! and wake-ups between threads cost more than they gain.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tun_async::{AsyncQueue, relay};
//! use tun_device::Device;
//!
//! # async fn demo() -> tun_device::Result<()> {
//! let a = Device::builder().name("a%d").offload(true).build()?;
//! let b = Device::builder().name("b%d").offload(true).build()?;
//! let a = Arc::new(AsyncQueue::new(a.into_queues().remove(0))?);
//! let b = Arc::new(AsyncQueue::new(b.into_queues().remove(0))?);
//! // Relay for ten seconds.
//! let stop = tokio::time::sleep(std::time::Duration::from_secs(10));
//! let stats = relay::run(a, b, relay::Config::default(), stop).await;
//! println!("a->b {} packets in {} writes", stats.a_to_b.packets_in, stats.a_to_b.writes);
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use tun_device::offload::VirtioNetHdr;
use tun_device::relay::{self, Backoff, Disposition, RelayStats};
use tun_device::{Error, ErrorKind, RecvState, SendState};

use crate::AsyncQueue;
use crate::backend::Backend;

mod stop;
#[cfg(feature = "tokio")]
mod task;
#[cfg(feature = "tokio")]
mod threads;

pub use tun_device::relay::RelayCounters;

use stop::{Listener, Stop};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use task::{Relay, spawn};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use threads::{ThreadRelay, spawn_threads};

/// Sizes of a relay direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Packets per batch (buffers per direction).
    pub batch: usize,
    /// Bytes of each buffer behind the headroom: room for the largest
    /// packet, and for coalesced packets to grow into.
    pub buf_len: usize,
    /// Headroom in front of each packet; at least the virtio header (10
    /// bytes), so a received buffer is sent without a copy.
    pub offset: usize,
}

impl Default for Config {
    /// 64 buffers of 64 KiB with 10 bytes of headroom.
    fn default() -> Self {
        Self {
            batch: 64,
            buf_len: 65535,
            offset: VirtioNetHdr::LEN,
        }
    }
}

/// How a direction ended.
#[derive(Debug)]
pub enum End {
    /// Told to stop (or the relay was dropped).
    Stopped,
    /// A device of this direction is gone (deleted, or its queue
    /// detached): the direction cannot go on, and nothing is wrong with
    /// the relay.
    DeviceGone,
    /// An error that leaves the direction unable to go on
    /// ([`Disposition::Fail`]: a missing privilege, a refused
    /// configuration).
    Failed(Error),
}

/// What a relay did, and how each direction ended.
#[derive(Debug)]
pub struct Stats {
    /// From the first queue to the second.
    pub a_to_b: RelayCounters,
    /// From the second queue to the first.
    pub b_to_a: RelayCounters,
    /// How the first direction ended.
    pub a_to_b_end: End,
    /// How the second direction ended.
    pub b_to_a_end: End,
}

impl Stats {
    /// The counters of each direction now, with how each ended.
    fn new(live: [&RelayStats; 2], [a_to_b_end, b_to_a_end]: [End; 2]) -> Stats {
        Stats {
            a_to_b: live[0].snapshot(),
            b_to_a: live[1].snapshot(),
            a_to_b_end,
            b_to_a_end,
        }
    }

    /// The error a direction failed with, if one did (the first
    /// direction's first).
    pub fn error(&self) -> Option<&Error> {
        [&self.a_to_b_end, &self.b_to_a_end]
            .into_iter()
            .find_map(|e| match e {
                End::Failed(e) => Some(e),
                _ => None,
            })
    }
}

/// Relay between `a` and `b` in both directions until `stop` completes
/// (or both directions ended), driving both in the calling task: any
/// executor, any backend. Returns the counters and how each direction
/// ended.
pub async fn run<B: Backend>(
    a: Arc<AsyncQueue<B>>,
    b: Arc<AsyncQueue<B>>,
    config: Config,
    stop: impl Future<Output = ()>,
) -> Stats {
    let signal = Stop::default();
    let live = [RelayStats::default(), RelayStats::default()];
    let mut ab = pin!(pump(&a, &b, config, signal.listen(), &live[0]));
    let mut ba = pin!(pump(&b, &a, config, signal.listen(), &live[1]));
    let mut stop = pin!(stop);
    let (mut end_ab, mut end_ba) = (None, None);
    std::future::poll_fn(|cx| {
        if !signal.is_raised() && stop.as_mut().poll(cx).is_ready() {
            signal.raise();
        }
        if end_ab.is_none() {
            if let Poll::Ready(e) = ab.as_mut().poll(cx) {
                end_ab = Some(e);
            }
        }
        if end_ba.is_none() {
            if let Poll::Ready(e) = ba.as_mut().poll(cx) {
                end_ba = Some(e);
            }
        }
        if end_ab.is_some() && end_ba.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    let ends = [end_ab, end_ba].map(|e| e.unwrap_or(End::Stopped));
    Stats::new([&live[0], &live[1]], ends)
}

/// Which wins when the stop is raised and the work could be done at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precedence {
    /// The stop: nothing more is started (a read of new packets).
    Stop,
    /// The work, polled first: only a wait is cut short by the stop (the
    /// write of a batch already read, which a TUN takes without waiting).
    Work,
}

/// `fut`, unless the stop ends it: `None` then, and `fut` is dropped
/// (every wait of a direction is cancel safe). `first` says which is
/// looked at first when both are ready.
async fn or_stop<T>(
    stop: &mut Listener,
    fut: impl Future<Output = T>,
    first: Precedence,
) -> Option<T> {
    let mut fut = pin!(fut);
    // Each is polled once per wake-up: a second poll of a send that just
    // found no room would only try the write again.
    std::future::poll_fn(|cx| match first {
        Precedence::Work => match fut.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending => stop.poll(cx).map(|()| None),
        },
        Precedence::Stop => match stop.poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => fut.as_mut().poll(cx).map(Some),
        },
    })
    .await
}

/// The direction's end for an error of disposition `Finish`: a stop
/// (an interrupted wait) or a device gone.
fn finish(e: &Error) -> End {
    if e.kind() == ErrorKind::Interrupted {
        End::Stopped
    } else {
        End::DeviceGone
    }
}

/// Drop what is left of the batch in `tx`: its writes so far and its
/// unwritten packets (each once) go into `live`.
fn give_up(tx: &mut SendState, live: &RelayStats) {
    live.record(&RelayCounters {
        writes: tx.report().writes as u64,
        tunnel_writes: tx.report().tunnel_writes as u64,
        dropped: tx.unsent_packets() as u64,
        ..RelayCounters::default()
    });
    tx.clear();
}

fn dropped(n: u64) -> RelayCounters {
    RelayCounters {
        dropped: n,
        ..RelayCounters::default()
    }
}

/// One direction: receive batches from `from`, write them to `to`, until
/// the stop or an end. Counts into `live` once per batch.
async fn pump<B: Backend>(
    from: &AsyncQueue<B>,
    to: &AsyncQueue<B>,
    cfg: Config,
    mut stop: Listener,
    live: &RelayStats,
) -> End {
    let mut rx = RecvState::new();
    let mut tx = SendState::new();
    // Every packet comes from recv_batch, which completed or computed its
    // checksums: coalescing need not read the payloads again.
    tx.set_checksums_verified(true);
    let partial = relay::partial_checksums(from.interface(), to.interface(), cfg.offset);
    rx.set_partial_checksums(partial);
    tx.set_partial_checksums(partial);
    let mut backoff = Backoff::new();
    let batch = cfg.batch.max(1);
    // One zeroed region, split: the allocator maps it lazily, so only the
    // pages packets touch become resident (`vec![buf; n]` would copy every
    // buffer in full).
    let cap = cfg.offset + cfg.buf_len;
    let mut region = vec![0u8; cap * batch];
    let mut bufs: Vec<&mut [u8]> = region.chunks_mut(cap).collect();
    let mut lens = vec![0usize; batch];
    let (mut supers, mut tunnels) = (0, 0);
    loop {
        // Cancel safe: dropped while waiting, it has read nothing;
        // segments not handed out stay in `rx`.
        let recv = from.recv_batch(&mut rx, &mut bufs, &mut lens, cfg.offset);
        let Some(res) = or_stop(&mut stop, recv, Precedence::Stop).await else {
            return End::Stopped;
        };
        let n = match res {
            Ok(n) => n,
            Err(e) => match Disposition::of(&e) {
                Disposition::Wait => continue,
                Disposition::Drop => {
                    live.record(&dropped(1));
                    continue;
                }
                Disposition::Backoff => {
                    if or_stop(&mut stop, B::sleep(backoff.step()), Precedence::Stop)
                        .await
                        .is_none()
                    {
                        return End::Stopped;
                    }
                    continue;
                }
                Disposition::Finish => return finish(&e),
                Disposition::Fail => return End::Failed(e),
            },
        };
        let (s, t) = (rx.stats().super_packets, rx.stats().tunnel_super_packets);
        live.record(&RelayCounters {
            packets_in: n as u64,
            bytes_in: lens[..n].iter().sum::<usize>() as u64,
            super_packets_in: s - supers,
            tunnel_super_packets_in: t - tunnels,
            ..RelayCounters::default()
        });
        (supers, tunnels) = (s, t);
        let (bufs, lens) = (&mut bufs[..n], &mut lens[..n]);
        if let Some(end) = write_batch(
            to,
            &mut tx,
            bufs,
            lens,
            cfg.offset,
            &mut stop,
            &mut backoff,
            live,
        )
        .await
        {
            return end;
        }
    }
}

/// Write one received batch whole (or drop what the output refuses);
/// `Some` when the direction ends.
#[allow(clippy::too_many_arguments)]
async fn write_batch<B: Backend>(
    to: &AsyncQueue<B>,
    tx: &mut SendState,
    bufs: &mut [&mut [u8]],
    lens: &mut [usize],
    offset: usize,
    stop: &mut Listener,
    backoff: &mut Backoff,
    live: &RelayStats,
) -> Option<End> {
    loop {
        // A repeated `send_batch` of an unfinished batch resumes it.
        let send = to.send_batch(tx, bufs, lens, offset);
        // The batch was read and counted: written, even after the stop,
        // as far as the output takes it without waiting. The first poll
        // also starts the batch in `tx`, so `give_up` counts this batch
        // (a stop looked at first left the previous batch's report in
        // `tx`, counted its writes again and lost this batch uncounted).
        let Some(res) = or_stop(stop, send, Precedence::Work).await else {
            // Stopped while waiting for room: the rest is dropped.
            give_up(tx, live);
            return Some(End::Stopped);
        };
        let e = match res {
            Ok(report) => {
                live.record(&RelayCounters {
                    writes: report.writes as u64,
                    tunnel_writes: report.tunnel_writes as u64,
                    ..RelayCounters::default()
                });
                backoff.reset();
                return None;
            }
            Err(e) => e,
        };
        match Disposition::of(&e) {
            // The async send waits itself; go on.
            Disposition::Wait => {}
            // One packet refused and skipped: counted once, the rest
            // written by the next round.
            Disposition::Drop => live.record(&dropped(1)),
            Disposition::Backoff => {
                give_up(tx, live);
                let wait = backoff.step();
                return match or_stop(stop, B::sleep(wait), Precedence::Stop).await {
                    Some(()) => None,
                    None => Some(End::Stopped),
                };
            }
            Disposition::Finish => return Some(finish(&e)),
            Disposition::Fail => return Some(End::Failed(e)),
        }
        if tx.is_done() {
            live.record(&RelayCounters {
                writes: tx.report().writes as u64,
                tunnel_writes: tx.report().tunnel_writes as u64,
                ..RelayCounters::default()
            });
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Context, Waker};

    fn poll_once<T>(fut: impl Future<Output = T>) -> Poll<T> {
        let mut fut = pin!(fut);
        fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_raised_stop_cuts_a_wait_short_but_not_work_that_is_ready() {
        let stop = Stop::default();
        stop.raise();
        let mut l = stop.listen();
        let ready = || std::future::ready(7u8);
        let waiting = std::future::pending::<u8>;
        // A batch in hand that the output takes at once is written.
        assert_eq!(
            poll_once(or_stop(&mut l, ready(), Precedence::Work)),
            Poll::Ready(Some(7))
        );
        // Nothing new is read after the stop.
        assert_eq!(
            poll_once(or_stop(&mut l, ready(), Precedence::Stop)),
            Poll::Ready(None)
        );
        // A wait ends with the stop, whichever comes first.
        for first in [Precedence::Work, Precedence::Stop] {
            assert_eq!(
                poll_once(or_stop(&mut l, waiting(), first)),
                Poll::Ready(None)
            );
        }
        // Without a stop, the work alone decides.
        let idle = Stop::default();
        let mut l = idle.listen();
        for first in [Precedence::Work, Precedence::Stop] {
            assert_eq!(poll_once(or_stop(&mut l, waiting(), first)), Poll::Pending);
            assert_eq!(
                poll_once(or_stop(&mut l, ready(), first)),
                Poll::Ready(Some(7))
            );
        }
        // The work is polled once per poll (a second try of a write that
        // found no room would be a wasted syscall).
        for first in [Precedence::Work, Precedence::Stop] {
            let polls = std::cell::Cell::new(0);
            let counted = std::future::poll_fn(|_| {
                polls.set(polls.get() + 1);
                Poll::<u8>::Pending
            });
            assert_eq!(poll_once(or_stop(&mut l, counted, first)), Poll::Pending);
            assert_eq!(polls.get(), 1, "{first:?}");
        }
    }
}
