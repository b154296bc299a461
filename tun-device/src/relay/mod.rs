//! Forwarding between two devices: what a VPN, a proxy or a tunnel does
//! with its packets, minus the part in between. Each direction of each
//! queue pair runs on its own thread with buffers allocated once.
//!
//! Three modes:
//!
//! - [`RelayMode::Plain`]: devices without offload; batched reads (several
//!   per wake-up), one write per packet.
//! - [`RelayMode::Offload`]: what a VPN that must see every packet does:
//!   super-packets from the kernel are split into MTU-sized packets, and
//!   coalesced again before they are written. The relay receives them as
//!   views ([`Queue::recv_views`]: each segment's headers apart, its
//!   payload where the read left it) and writes each coalesced run with
//!   its payload as one slice of the read ([`Queue::send_views`]), so that
//!   only the kernel copies payload bytes. Checksums stay partial in between
//!   ([`RecvState::set_partial_checksums`]): the kernel completes them on
//!   the other side, so the relay sums no payload byte (an output device
//!   with an XDP program that sends packets on would not: see there).
//! - [`RelayMode::Passthrough`]: super-packets forwarded untouched, header
//!   and all ([`Queue::recv_gso`], [`Queue::send_gso`]): two syscalls per
//!   64 KiB, the ceiling of any userspace relay. Both devices must have
//!   negotiated the same offloads.
//!
//! The relay is written on the crate's public API only: a user's own loop
//! over [`Queue::recv_views`] and [`Queue::send_views`] (or
//! [`Queue::recv_batch`] and [`Queue::send_batch`], with a packet in a
//! buffer of its own) can do all it does.
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
use std::thread::JoinHandle;

use tun_offload::{SplitError, VirtioNetHdr};
use tun_sys::InterfaceName;

use crate::error::{ConfigError, Error, IoOp, Result, Syscall};
use crate::interface::Interface;
use crate::interrupt::Interrupt;
use crate::queue::Queue;
use crate::rx::{Malformed, RecvState, SuperPacket};
use crate::tx::SendState;
use crate::views::ViewBatch;

mod counters;
mod policy;

pub use counters::{RelayCounters, RelayStats};
pub use policy::{Backoff, Disposition, recover};

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
/// The largest packet a TUN/TAP hands over whatever its MTU (65535, the
/// largest MTU, plus a tagged Ethernet header on a TAP), so an MTU raised
/// under a running relay never makes it drop packets. Buffers are mapped
/// lazily: only the pages packets touch become resident.
const MAX_PACKET: usize = 65535 + tun_offload::frame::MAX_L2_LEN;

/// Whether a relay from `from` to `to` leaves checksums partial from its
/// read to its write ([`RecvState::set_partial_checksums`],
/// [`SendState::set_partial_checksums`]), as both of the workspace's
/// relays decide it: between two devices with the virtio header (the
/// kernel completes on the way out what the relay left partial, or trusts
/// it when it coalesces, and no payload byte is summed in between), when
/// the buffers' headroom `offset` holds each packet's header.
pub fn partial_checksums(from: &Interface, to: &Interface, offset: usize) -> bool {
    from.has_vnet_hdr() && to.has_vnet_hdr() && offset >= VirtioNetHdr::LEN
}

/// Check that `mode` fits the two queues' devices.
fn check_mode(from: &Queue, to: &Queue, mode: RelayMode) -> Result<()> {
    let (f, t) = (from.interface(), to.interface());
    let refuse = |error| Err(Error::config(Some(from.interface_name()), error));
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

/// Forward packets from `from` to `to` until `stop` is raised or a device
/// goes away (both end the pump with `Ok`); an error that ends the
/// direction otherwise ([`Disposition::Fail`]) is returned.
///
/// The pump reads first and waits only when the queue is empty; `stop` is
/// attached to both queues ([`Queue::set_interrupt`]) and both are put in
/// blocking mode, so an idle pump sleeps in the kernel without waking up,
/// and `stop.raise()` ends it at once in every state. Errors are handled
/// as [`Disposition::of`] says: a bad packet is dropped and counted; an
/// output that refuses writes (link down, moved away) has what was being
/// written dropped and counted once, and is retried after a [`Backoff`].
pub fn pump(
    from: &Queue,
    to: &Queue,
    mode: RelayMode,
    stop: &Interrupt,
    stats: &RelayStats,
) -> Result<()> {
    check_mode(from, to, mode)?;
    for q in [from, to] {
        q.set_interrupt(Some(stop.clone()));
        q.set_nonblocking(false);
    }
    let res = match mode {
        RelayMode::Plain => pump_batches(from, to, stop, stats),
        RelayMode::Offload => pump_views(from, to, stop, stats),
        RelayMode::Passthrough => pump_super_packets(from, to, stop, stats),
    };
    match res {
        Err(e) if Disposition::of(&e) == Disposition::Finish => Ok(()),
        other => other,
    }
}

/// The receive and send states of a pump from `from` to `to`.
fn pump_states(from: &Queue, to: &Queue) -> (RecvState, SendState) {
    let mut rx = RecvState::new();
    let mut tx = SendState::new();
    // Every packet comes from the receive, which completed or computed its
    // checksums (or left them partial, its header saying so): coalescing
    // need not read the payloads again.
    tx.set_checksums_verified(true);
    let partial = partial_checksums(from.interface(), to.interface(), OFFSET);
    rx.set_partial_checksums(partial);
    tx.set_partial_checksums(partial);
    (rx, tx)
}

/// The super-packets a pump's receive state had counted at its last batch.
#[derive(Default)]
struct Received {
    supers: u64,
    tunnels: u64,
}

impl Received {
    /// Count a batch of `packets` packets and `bytes` bytes read with `rx`.
    fn record(&mut self, rx: &RecvState, packets: usize, bytes: usize, stats: &RelayStats) {
        let (s, t) = (rx.stats().super_packets, rx.stats().tunnel_super_packets);
        stats.record(&RelayCounters {
            packets_in: packets as u64,
            bytes_in: bytes as u64,
            super_packets_in: s - self.supers,
            tunnel_super_packets_in: t - self.tunnels,
            ..RelayCounters::default()
        });
        (self.supers, self.tunnels) = (s, t);
    }
}

fn pump_batches(from: &Queue, to: &Queue, stop: &Interrupt, stats: &RelayStats) -> Result<()> {
    let (mut rx, mut tx) = pump_states(from, to);
    let mut backoff = Backoff::new();
    // One zeroed region, split: the allocator maps it lazily, so only the
    // pages packets touch become resident (a `vec![buf; n]` would copy
    // every buffer in full). Room for the largest packet, and for a run
    // coalesced up to 64 KiB behind any packet.
    let cap = OFFSET + MAX_PACKET;
    let mut region = vec![0u8; cap * BATCH];
    let mut bufs: Vec<&mut [u8]> = region.chunks_mut(cap).collect();
    let mut lens = vec![0usize; BATCH];
    let mut received = Received::default();
    loop {
        let n = match from.recv_batch(&mut rx, &mut bufs, &mut lens, OFFSET) {
            Ok(n) => n,
            Err(e) => {
                if !recover(e, 0, &mut backoff, stop, stats)? {
                    return Ok(());
                }
                continue;
            }
        };
        received.record(&rx, n, lens[..n].iter().sum(), stats);
        let end = forward(
            to,
            &mut tx,
            &bufs[..n],
            &lens[..n],
            OFFSET,
            &mut backoff,
            stop,
            stats,
        );
        if !end? {
            return Ok(());
        }
    }
}

/// The offload relay: batches of views ([`Queue::recv_views`],
/// [`Queue::send_views`]), so that a super-packet's payload is copied by
/// the kernel only, into the read and out of it, and each coalesced write
/// hands it over as one slice.
fn pump_views(from: &Queue, to: &Queue, stop: &Interrupt, stats: &RelayStats) -> Result<()> {
    let (mut rx, mut tx) = pump_states(from, to);
    let mut backoff = Backoff::new();
    let mut batch = ViewBatch::new();
    let mut received = Received::default();
    loop {
        let n = match from.recv_views(&mut rx, &mut batch) {
            Ok(n) => n,
            Err(e) => {
                if !recover(e, 0, &mut backoff, stop, stats)? {
                    return Ok(());
                }
                continue;
            }
        };
        received.record(&rx, n, batch.bytes(), stats);
        if !forward_views(to, &mut tx, &batch, &mut backoff, stop, stats)? {
            return Ok(());
        }
    }
}

/// [`forward`] for a batch of views: [`Queue::send_views`], then
/// [`Queue::send_pending_views`] after each error [`recover`] goes on
/// with; the batch's writes are counted once, and `tx` is cleared.
pub fn forward_views(
    to: &Queue,
    tx: &mut SendState,
    batch: &ViewBatch,
    backoff: &mut Backoff,
    stop: &Interrupt,
    stats: &RelayStats,
) -> Result<bool> {
    forward_with(tx, backoff, stop, stats, |tx, first| {
        if first {
            to.send_views(tx, batch)
        } else {
            to.send_pending_views(tx, batch)
        }
    })
}

/// Write one received batch to `to` as the relay does: [`Queue::send_batch`],
/// then after each error [`recover`] and, while it says to go on with the
/// batch (one packet dropped, not an output that refuses writes),
/// [`Queue::send_pending`]; the writes the batch made are counted once in
/// `stats`, however it ended, and `tx` is cleared for the next batch.
/// What it returns is [`recover`]'s: `Ok(true)` go on with the next batch,
/// `Ok(false)` end the direction cleanly, `Err` end it with this error.
#[allow(clippy::too_many_arguments)]
pub fn forward<B: AsRef<[u8]>>(
    to: &Queue,
    tx: &mut SendState,
    bufs: &[B],
    lens: &[usize],
    offset: usize,
    backoff: &mut Backoff,
    stop: &Interrupt,
    stats: &RelayStats,
) -> Result<bool> {
    forward_with(tx, backoff, stop, stats, |tx, first| {
        if first {
            to.send_batch(tx, bufs, lens, offset)
        } else {
            to.send_pending(tx, bufs, lens, offset)
        }
    })
}

/// The loop of [`forward`] and [`forward_views`] over `send` (the batch's
/// first send when told `true`, its pending rest after that).
fn forward_with(
    tx: &mut SendState,
    backoff: &mut Backoff,
    stop: &Interrupt,
    stats: &RelayStats,
    mut send: impl FnMut(&mut SendState, bool) -> Result<crate::tx::SendReport>,
) -> Result<bool> {
    let mut res = send(tx, true);
    let end = loop {
        let e = match res {
            Ok(_) => {
                backoff.reset();
                break Ok(true);
            }
            Err(e) => e,
        };
        let refused = Disposition::of(&e) == Disposition::Backoff;
        let unsent = tx.unsent_packets() as u64;
        match recover(e, unsent, backoff, stop, stats) {
            Ok(true) if !refused && !tx.is_done() => {}
            other => break other,
        }
        res = send(tx, false);
    };
    stats.record(&RelayCounters {
        writes: tx.report().writes as u64,
        tunnel_writes: tx.report().tunnel_writes as u64,
        ..RelayCounters::default()
    });
    tx.clear();
    end
}

fn pump_super_packets(
    from: &Queue,
    to: &Queue,
    stop: &Interrupt,
    stats: &RelayStats,
) -> Result<()> {
    let mut buf = vec![0u8; MAX_PACKET + 256];
    let mut backoff = Backoff::new();
    let tap = from.interface().is_tap();
    // Segments of tunnel super-packets the output refused (Linux 6.18's
    // TUN refuses every one, see `Queue::send_gso`): split here once it
    // refused one, and written one by one.
    let mut split = Split {
        from: from.interface_name(),
        refused: false,
        segs: Vec::new(),
        lens: Vec::new(),
    };
    loop {
        let (hdr, len) = match from.recv_gso(&mut buf) {
            Ok(v) => v,
            Err(e) => {
                if !recover(e, 0, &mut backoff, stop, stats)? {
                    return Ok(());
                }
                continue;
            }
        };
        let pkt = &buf[..len];
        let tunnel = hdr.hdr.gso_type().udp_tunnel() != 0;
        let parsed = SuperPacket::parse(tap, &hdr, pkt);
        let segments = parsed.as_ref().ok().map(SuperPacket::segment_count);
        let supers = u64::from(segments.is_some());
        let segments = segments.unwrap_or(1) as u64;
        stats.record(&RelayCounters {
            packets_in: segments,
            bytes_in: len as u64,
            super_packets_in: supers,
            tunnel_super_packets_in: supers * u64::from(tunnel),
            ..RelayCounters::default()
        });
        if tunnel && split.refused {
            if !split.write(to, parsed, pkt, &mut backoff, stop, stats)? {
                return Ok(());
            }
            continue;
        }
        match to.send_gso(&hdr, pkt) {
            Ok(_) => {
                backoff.reset();
                stats.record(&RelayCounters {
                    writes: 1,
                    tunnel_writes: u64::from(tunnel),
                    ..RelayCounters::default()
                });
            }
            Err(Error::Rejected { .. }) if tunnel => {
                split.refused = true;
                if !split.write(to, parsed, pkt, &mut backoff, stop, stats)? {
                    return Ok(());
                }
            }
            Err(e) => {
                if !recover(e, segments, &mut backoff, stop, stats)? {
                    return Ok(());
                }
            }
        }
    }
}

/// The pass-through relay's fallback for tunnel super-packets its output
/// refuses: split in user space, each outer datagram written as it is.
struct Split {
    /// The device read from, named when its packet is bad.
    from: InterfaceName,
    /// The output refused a tunnel super-packet: split every later one.
    refused: bool,
    segs: Vec<Vec<u8>>,
    lens: Vec<usize>,
}

impl Split {
    /// Split `pkt` (parsed as `parsed`, read from `self.from`) and write
    /// its datagrams to `to`; what it returns is [`recover`]'s, as for any
    /// write.
    fn write(
        &mut self,
        to: &Queue,
        parsed: Result<SuperPacket, Malformed>,
        pkt: &[u8],
        backoff: &mut Backoff,
        stop: &Interrupt,
        stats: &RelayStats,
    ) -> Result<bool> {
        let t = match parsed {
            Ok(t) => t,
            Err(m) => {
                let e = m.into_error(IoOp::Recv, self.from, 0);
                return recover(e, 1, backoff, stop, stats);
            }
        };
        let count = t.segment_count();
        crate::rx::ensure_segments(&mut self.segs, &mut self.lens, count, t.max_segment_len());
        let made = match t.split_into(
            pkt,
            &mut self.segs[..count],
            &mut self.lens[..count],
            0,
            false,
        ) {
            Ok(k) => k,
            Err(SplitError::OutOfSpace { produced, .. }) => produced,
            Err(SplitError::Invalid(error)) => {
                let e = Malformed::Plain(error).into_error(IoOp::Recv, self.from, 0);
                return recover(e, count as u64, backoff, stop, stats);
            }
        };
        for i in 0..made {
            match to.send(&self.segs[i][..self.lens[i]]) {
                Ok(_) => {
                    backoff.reset();
                    stats.record(&RelayCounters {
                        writes: 1,
                        ..RelayCounters::default()
                    });
                }
                Err(e) => {
                    let refused = Disposition::of(&e) == Disposition::Backoff;
                    // An output refusing writes drops the rest at once.
                    let lost = if refused { (made - i) as u64 } else { 1 };
                    match recover(e, lost, backoff, stop, stats)? {
                        true if !refused => {}
                        go_on => return Ok(go_on),
                    }
                }
            }
        }
        Ok(true)
    }
}

/// A running relay between two devices: one thread per direction of each
/// queue pair.
#[derive(Debug)]
pub struct Relay {
    stop: Interrupt,
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
                a.first().map(|q| q.interface_name()),
                ConfigError::QueuePairs {
                    a: a.len(),
                    b: b.len(),
                },
            ));
        }
        check_mode(&a[0], &b[0], mode)?;
        check_mode(&b[0], &a[0], mode)?;
        let mut relay = Relay {
            stop: Interrupt::new()?,
            threads: Vec::new(),
            stats: Vec::new(),
        };
        for (qa, qb) in a.into_iter().zip(b) {
            let (qa, qb) = (Arc::new(qa), Arc::new(qb));
            let ab = Arc::new(RelayStats::default());
            let ba = Arc::new(RelayStats::default());
            for (from, to, st) in [
                (qa.clone(), qb.clone(), ab.clone()),
                (qb.clone(), qa.clone(), ba.clone()),
            ] {
                let stop = relay.stop.clone();
                let name = from.interface_name();
                // On failure, dropping `relay` stops and joins the pumps
                // already started.
                let thread = std::thread::Builder::new()
                    .name(format!("relay {name}"))
                    .spawn(move || pump(&from, &to, mode, &stop, &st))
                    .map_err(|e| {
                        Error::syscall_io(Syscall::SpawnThread, Some(name), &e, libc::EAGAIN)
                    })?;
                relay.threads.push(thread);
            }
            relay.stats.push((ab, ba));
        }
        Ok(relay)
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

    /// Stop the pumps (at once, in every state: each waits on the relay's
    /// [`Interrupt`]), wait for them, and return the final counters, or the
    /// first error a pump ended with.
    pub fn stop(mut self) -> Result<(RelayCounters, RelayCounters)> {
        self.halt();
        join(self.threads.drain(..))?;
        Ok(self.counters())
    }
}

/// Wait for every pump thread of a relay (this one's, or another built on
/// [`pump`] and [`forward`], such as tun-tunnel's) and return the first
/// error one ended with (whatever its error type); a pump's panic is
/// raised again here.
pub fn join<E>(
    threads: impl IntoIterator<Item = JoinHandle<std::result::Result<(), E>>>,
) -> std::result::Result<(), E> {
    let mut first = None;
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first.get_or_insert(e);
            }
            Err(p) => std::panic::resume_unwind(p),
        }
    }
    first.map_or(Ok(()), Err)
}

impl Relay {
    /// Raise the stop interrupt.
    fn halt(&self) {
        // A write of 1 to a valid eventfd cannot fail.
        let _ = self.stop.raise();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.halt();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
