//! A relay between two queues, one task per direction: batched receive
//! (GSO split) on one side, batched send (GRO coalescing) on the other.
//!
//! The async counterpart of a two-thread relay over tun-device's
//! `recv_batch`/`send_batch`, for the sync-versus-async benchmark and as an
//! example of the cancel-safe shape: each direction races its receive
//! against the stop signal (a dropped receive loses nothing), and a batch
//! once read is always written whole before the stop is looked at again.
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
//! println!("a->b {} packets in {} writes", stats.a_to_b.packets, stats.a_to_b.writes);
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tun_device::{Error, ErrorKind, RecvState, SendState};

use crate::AsyncQueue;

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
            offset: tun_device::offload::VirtioNetHdr::LEN,
        }
    }
}

/// What one direction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectionStats {
    /// Batches received (each at least one packet).
    pub batches: u64,
    /// Packets received and handed to the other side (segments of split
    /// super-packets counted one by one).
    pub packets: u64,
    /// IP bytes of those packets.
    pub bytes: u64,
    /// Reads from the kernel that returned a packet.
    pub reads: u64,
    /// Of those, super-packets that were split.
    pub super_packets: u64,
    /// Writes made to the other side (after coalescing).
    pub writes: u64,
    /// Packets dropped as malformed or too large, on either side.
    pub bad_packets: u64,
}

/// What a relay did, and why a direction stopped early if one did.
#[derive(Debug, Default)]
pub struct Stats {
    /// From the first queue to the second.
    pub a_to_b: DirectionStats,
    /// From the second queue to the first.
    pub b_to_a: DirectionStats,
    /// The error that ended a direction before the stop (a device gone,
    /// an I/O error), if any.
    pub error: Option<Error>,
}

/// A running relay: two tasks on the current tokio runtime.
#[derive(Debug)]
pub struct Relay {
    stop: watch::Sender<bool>,
    tasks: [JoinHandle<(DirectionStats, Option<Error>)>; 2],
}

/// Start relaying between `a` and `b` in both directions, one spawned task
/// each (so a multi-threaded runtime runs them in parallel).
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn spawn(a: Arc<AsyncQueue>, b: Arc<AsyncQueue>, config: Config) -> Relay {
    let (stop, rx) = watch::channel(false);
    let ab = tokio::spawn(pump(a.clone(), b.clone(), config, rx.clone()));
    let ba = tokio::spawn(pump(b, a, config, rx));
    Relay {
        stop,
        tasks: [ab, ba],
    }
}

/// Relay between `a` and `b` until `stop` completes; returns the counters.
pub async fn run(
    a: Arc<AsyncQueue>,
    b: Arc<AsyncQueue>,
    config: Config,
    stop: impl Future<Output = ()>,
) -> Stats {
    let relay = spawn(a, b, config);
    stop.await;
    relay.stop().await
}

impl Relay {
    /// Whether both directions ended (each stops by itself on a fatal
    /// error, such as a device gone).
    pub fn is_finished(&self) -> bool {
        self.tasks.iter().all(JoinHandle::is_finished)
    }

    /// Stop both directions (each finishes the batch it holds) and return
    /// the counters.
    pub async fn stop(self) -> Stats {
        let _ = self.stop.send(true);
        let mut stats = Stats::default();
        let [ab, ba] = self.tasks;
        for (task, slot) in [(ab, &mut stats.a_to_b), (ba, &mut stats.b_to_a)] {
            match task.await {
                Ok((s, err)) => {
                    *slot = s;
                    if stats.error.is_none() {
                        stats.error = err;
                    }
                }
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {}
            }
        }
        stats
    }
}

/// Whether an error costs a packet but leaves the device usable.
fn recoverable(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::BadPacket | ErrorKind::BufferTooSmall)
}

/// One direction: receive batches from `from`, write them to `to`.
async fn pump(
    from: Arc<AsyncQueue>,
    to: Arc<AsyncQueue>,
    cfg: Config,
    mut stop: watch::Receiver<bool>,
) -> (DirectionStats, Option<Error>) {
    let mut rx = RecvState::new();
    let mut tx = SendState::new();
    let batch = cfg.batch.max(1);
    // One zeroed region, split: the allocator maps it lazily, so only the
    // pages packets touch become resident (`vec![buf; n]` would copy every
    // buffer in full).
    let cap = cfg.offset + cfg.buf_len;
    let mut region = vec![0u8; cap * batch];
    let mut bufs: Vec<&mut [u8]> = region.chunks_mut(cap).collect();
    let mut lens = vec![0usize; batch];
    let mut stats = DirectionStats::default();
    let mut error = None;
    'relay: loop {
        let res = tokio::select! {
            biased;
            // A stop, or the relay value dropped.
            _ = stop.changed() => break,
            // Cancel safe: dropped while waiting, it has read nothing;
            // segments not handed out stay in `rx`.
            r = from.recv_batch(&mut rx, &mut bufs, &mut lens, cfg.offset) => r,
        };
        let n = match res {
            Ok(n) => n,
            Err(e) if recoverable(&e) => {
                stats.bad_packets += 1;
                continue;
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        };
        stats.batches += 1;
        stats.packets += n as u64;
        stats.bytes += lens[..n].iter().sum::<usize>() as u64;
        // Not raced against the stop: a batch read is written whole.
        let mut res = to
            .send_batch(&mut tx, &bufs[..n], &lens[..n], cfg.offset)
            .await;
        loop {
            match res {
                Ok(report) => {
                    stats.writes += report.writes as u64;
                    break;
                }
                Err(e) if recoverable(&e) => {
                    // Refused and skipped; go on behind it.
                    stats.bad_packets += 1;
                    res = to
                        .send_pending(&mut tx, &bufs[..n], &lens[..n], cfg.offset)
                        .await;
                }
                Err(e) => {
                    error = Some(e);
                    break 'relay;
                }
            }
        }
    }
    let rs = rx.stats();
    stats.reads = rs.reads;
    stats.super_packets = rs.super_packets;
    (stats, error)
}
