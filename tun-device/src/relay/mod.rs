//! Forwarding between two devices: what a VPN, a proxy or a tunnel does
//! with its packets, minus the part in between. Each direction of each
//! queue pair runs on its own thread with buffers allocated once.
//!
//! Three modes:
//!
//! - [`RelayMode::Plain`]: devices without offload; batched reads (several
//!   per wake-up), one write per packet.
//! - [`RelayMode::Offload`]: what a VPN that must see every packet does:
//!   super-packets from the kernel are split into MTU-sized packets
//!   ([`Queue::recv_batch`]), and coalesced again before they are written
//!   ([`Queue::send_batch`]).
//! - [`RelayMode::Passthrough`]: super-packets forwarded untouched, header
//!   and all ([`Queue::recv_gso`], [`Queue::send_gso`]): two syscalls per
//!   64 KiB, the ceiling of any userspace relay. Both devices must have
//!   negotiated the same offloads.
//!
//! Both devices may be TAPs: the relay then forwards Ethernet frames (ARP,
//! neighbour discovery and any other EtherType included); in offload mode
//! the split and the coalescing work behind the Ethernet header.
//!
//! ```no_run
//! use tun_device::{Device, relay::{Relay, RelayMode}};
//! let a = Device::builder().name("a%d").offload(true).build()?;
//! let b = Device::builder().name("b%d").offload(true).build()?;
//! let relay = Relay::start(a.into_queues(), b.into_queues(), RelayMode::Offload)?;
//! std::thread::sleep(std::time::Duration::from_secs(1));
//! let (ab, ba) = relay.stop()?;
//! println!("a->b {} packets in {} writes", ab.packets_in, ab.writes);
//! # let _ = ba;
//! # Ok::<(), tun_device::Error>(())
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::batch::{RecvState, SendState};
use crate::error::{ConfigError, Error, ErrorKind, Result};
use crate::queue::Queue;

mod counters;
mod policy;

pub use counters::{RelayCounters, RelayStats};
pub use policy::{Backoff, Disposition};

/// How packets cross the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelayMode {
    /// Offload off: batched reads, one write per packet.
    Plain,
    /// Split on receive, coalesce on send.
    Offload,
    /// Super-packets forwarded as they are.
    Passthrough,
}

impl RelayMode {
    /// A short lower-case name (`plain`, `offload`, `passthrough`).
    pub fn name(self) -> &'static str {
        match self {
            RelayMode::Plain => "plain",
            RelayMode::Offload => "offload",
            RelayMode::Passthrough => "passthrough",
        }
    }
}

/// Packets per batch.
pub const BATCH: usize = 64;
/// Headroom in front of every packet: room for the virtio header.
const OFFSET: usize = 10;
/// How often a waiting pump looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Check that `mode` fits the two queues' devices.
fn check_mode(from: &Queue, to: &Queue, mode: RelayMode) -> Result<()> {
    let (f, t) = (from.interface(), to.interface());
    let refuse = |error| Err(Error::config(Some(f.cached_name()), error));
    match mode {
        RelayMode::Plain => Ok(()),
        RelayMode::Offload if !(f.has_vnet_hdr() && t.has_vnet_hdr()) => {
            refuse(ConfigError::OffloadRequired)
        }
        RelayMode::Passthrough
            if !(f.has_vnet_hdr() && t.has_vnet_hdr()) || f.offloads() != t.offloads() =>
        {
            refuse(ConfigError::OffloadMismatch {
                from: f.offloads(),
                to: t.offloads(),
            })
        }
        _ => Ok(()),
    }
}

/// Whether an error ends the pump (the device is gone or broken) rather
/// than one packet.
fn fatal(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::DeviceGone | ErrorKind::PermissionDenied | ErrorKind::InvalidConfig
    )
}

/// Forward packets from `from` to `to` until `stop` is set or a device
/// goes away (which ends the pump with `Ok`; other fatal errors are
/// returned). Both queues are switched to non-blocking mode: the pump
/// waits itself, so that it sees `stop` while waiting.
pub fn pump(
    from: &Queue,
    to: &Queue,
    mode: RelayMode,
    stop: &AtomicBool,
    stats: &RelayStats,
) -> Result<()> {
    check_mode(from, to, mode)?;
    from.set_nonblocking(true);
    to.set_nonblocking(true);
    let res = match mode {
        RelayMode::Plain | RelayMode::Offload => pump_batches(from, to, mode, stop, stats),
        RelayMode::Passthrough => pump_super_packets(from, to, stop, stats),
    };
    match res {
        Err(e) if e.is_device_gone() => Ok(()),
        other => other,
    }
}

/// Wait (in slices of [`STOP_POLL`], so `stop` is seen) until `ready`
/// says yes; `false` when told to stop.
fn wait_until(stop: &AtomicBool, ready: impl Fn(Duration) -> Result<bool>) -> Result<bool> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        if ready(STOP_POLL)? {
            return Ok(true);
        }
    }
}

/// Wait for the next packet; `false` when told to stop.
fn wait(from: &Queue, stop: &AtomicBool) -> Result<bool> {
    wait_until(stop, |t| from.wait_readable(Some(t)))
}

/// Wait until `to` takes writes again; `false` when told to stop.
fn wait_writable(to: &Queue, stop: &AtomicBool) -> Result<bool> {
    wait_until(stop, |t| to.wait_writable(Some(t)))
}

fn pump_batches(
    from: &Queue,
    to: &Queue,
    mode: RelayMode,
    stop: &AtomicBool,
    stats: &RelayStats,
) -> Result<()> {
    let mut rx = RecvState::new();
    let mut tx = SendState::new();
    // One zeroed region, split: the allocator maps it lazily, so only the
    // pages packets touch become resident (a `vec![buf; n]` would copy
    // every buffer in full).
    let cap = match mode {
        // Room for a run coalesced up to 64 KiB behind any packet (and
        // behind a tagged Ethernet header on a TAP).
        RelayMode::Offload => OFFSET + tun_offload::frame::MAX_L2_LEN + 65535,
        // Nothing grows: the largest packet a read can yield.
        _ => OFFSET + from.interface().mtu_hint().max(1500) + 64,
    };
    let mut region = vec![0u8; cap * BATCH];
    let mut bufs: Vec<&mut [u8]> = region.chunks_mut(cap).collect();
    let mut lens = vec![0usize; BATCH];
    let mut supers = 0;
    loop {
        // Poll first: when packets wait it returns at once, and when none
        // do it saves a read that would only say EAGAIN. Segments the state
        // holds need no poll (the fd may be empty meanwhile).
        if stop.load(Ordering::Relaxed) || (rx.is_empty() && !wait(from, stop)?) {
            break;
        }
        let n = match from.recv_batch(&mut rx, &mut bufs, &mut lens, OFFSET) {
            Ok(n) => n,
            Err(e) if e.is_would_block() => continue,
            Err(e) if fatal(&e) => return Err(e),
            Err(_) => {
                stats.record(&RelayCounters {
                    dropped: 1,
                    ..RelayCounters::default()
                });
                continue;
            }
        };
        let s = rx.stats().super_packets;
        stats.record(&RelayCounters {
            super_packets_in: s - supers,
            ..RelayCounters::default()
        });
        supers = s;
        stats.record(&RelayCounters {
            packets_in: n as u64,
            ..RelayCounters::default()
        });
        stats.record(&RelayCounters {
            bytes_in: lens[..n].iter().sum::<usize>() as u64,
            ..RelayCounters::default()
        });
        let mut res = to.send_batch(&mut tx, &mut bufs[..n], &mut lens[..n], OFFSET);
        loop {
            match res {
                Ok(r) => {
                    stats.record(&RelayCounters {
                        writes: r.writes as u64,
                        ..RelayCounters::default()
                    });
                    break;
                }
                // The state keeps what is left; wait until it fits.
                Err(e) if e.is_would_block() => {
                    if !wait_writable(to, stop)? {
                        return Ok(());
                    }
                }
                Err(e) if fatal(&e) => return Err(e),
                // One packet refused: count it, write the rest.
                Err(_) => stats.record(&RelayCounters {
                    dropped: 1,
                    ..RelayCounters::default()
                }),
            }
            if tx.is_done() {
                stats.record(&RelayCounters {
                    writes: tx.report().writes as u64,
                    ..RelayCounters::default()
                });
                break;
            }
            res = to.send_pending(&mut tx, &mut bufs[..n], &lens[..n], OFFSET);
        }
    }
    Ok(())
}

fn pump_super_packets(
    from: &Queue,
    to: &Queue,
    stop: &AtomicBool,
    stats: &RelayStats,
) -> Result<()> {
    let mut buf = vec![0u8; 65536 + 256];
    loop {
        if !wait(from, stop)? {
            break;
        }
        let (hdr, len) = match from.recv_gso(&mut buf) {
            Ok(v) => v,
            Err(e) if e.is_would_block() => continue,
            Err(e) if fatal(&e) => return Err(e),
            Err(_) => {
                stats.record(&RelayCounters {
                    dropped: 1,
                    ..RelayCounters::default()
                });
                continue;
            }
        };
        let pkt = &buf[..len];
        let segments = match from.parse_gso(&hdr, pkt) {
            Ok(g) => {
                stats.record(&RelayCounters {
                    super_packets_in: 1,
                    ..RelayCounters::default()
                });
                g.segment_count() as u64
            }
            Err(_) => 1,
        };
        stats.record(&RelayCounters {
            packets_in: segments,
            ..RelayCounters::default()
        });
        stats.record(&RelayCounters {
            bytes_in: len as u64,
            ..RelayCounters::default()
        });
        loop {
            match to.send_gso(&hdr, pkt) {
                Ok(_) => stats.record(&RelayCounters {
                    writes: 1,
                    ..RelayCounters::default()
                }),
                Err(e) if e.is_would_block() => {
                    if !wait_writable(to, stop)? {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) if fatal(&e) => return Err(e),
                Err(_) => stats.record(&RelayCounters {
                    dropped: 1,
                    ..RelayCounters::default()
                }),
            }
            break;
        }
    }
    Ok(())
}

/// A running relay between two devices: one thread per direction of each
/// queue pair.
#[derive(Debug)]
pub struct Relay {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<()>>>,
    /// Per pair: (a to b, b to a).
    stats: Vec<(Arc<RelayStats>, Arc<RelayStats>)>,
}

impl Relay {
    /// Relay between the queues of `a` and `b`, paired in order (queue `i`
    /// of `a` with queue `i` of `b`); both lists must be equally long.
    pub fn start(a: Vec<Queue>, b: Vec<Queue>, mode: RelayMode) -> Result<Relay> {
        if a.len() != b.len() || a.is_empty() {
            return Err(Error::config(
                a.first().map(|q| q.name()),
                ConfigError::QueuePairs {
                    a: a.len(),
                    b: b.len(),
                },
            ));
        }
        check_mode(&a[0], &b[0], mode)?;
        check_mode(&b[0], &a[0], mode)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut stats = Vec::new();
        for (qa, qb) in a.into_iter().zip(b) {
            let (qa, qb) = (Arc::new(qa), Arc::new(qb));
            let ab = Arc::new(RelayStats::default());
            let ba = Arc::new(RelayStats::default());
            for (from, to, st) in [
                (qa.clone(), qb.clone(), ab.clone()),
                (qb.clone(), qa.clone(), ba.clone()),
            ] {
                let stop = stop.clone();
                threads.push(
                    std::thread::Builder::new()
                        .name(format!("relay {}", from.name()))
                        .spawn(move || pump(&from, &to, mode, &stop, &st))
                        .map_err(|e| {
                            Error::Sys(tun_sys::Error::new(
                                tun_sys::Op::OpenTun,
                                e.raw_os_error().unwrap_or(libc::EAGAIN),
                            ))
                        })?,
                );
            }
            stats.push((ab, ba));
        }
        Ok(Relay {
            stop,
            threads,
            stats,
        })
    }

    /// The counters now, summed over the queue pairs: (a to b, b to a).
    pub fn counters(&self) -> (RelayCounters, RelayCounters) {
        let mut ab = RelayCounters::default();
        let mut ba = RelayCounters::default();
        for (x, y) in &self.stats {
            ab.add(&x.snapshot());
            ba.add(&y.snapshot());
        }
        (ab, ba)
    }

    /// Whether every pump is still running.
    pub fn is_running(&self) -> bool {
        self.threads.iter().all(|t| !t.is_finished())
    }

    /// Stop the pumps (within about 100 ms), wait for them, and return the
    /// final counters, or the first error a pump ended with.
    pub fn stop(mut self) -> Result<(RelayCounters, RelayCounters)> {
        self.stop.store(true, Ordering::Relaxed);
        let mut first = None;
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first.get_or_insert(e);
                }
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(self.counters()),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
