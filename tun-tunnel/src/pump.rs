//! The two directions of a tunnel, each a loop on its own thread with
//! buffers allocated once. Device to peer: [`Queue::recv_batch`] (split
//! super-packets into MTU-sized packets), then one send per run of
//! equal-size packets ([`crate::runs`]). Peer to device: `recvmmsg` of
//! coalesced datagrams, each cut at its segment size and checked
//! ([`crate::datagram`]), then [`Queue::send_batch`] (coalesced again and
//! written with gathered writes).
//!
//! Errors follow tun-device's relay ([`recover`], [`forward`], [`Backoff`]): a bad
//! packet is dropped and counted, an output that refuses writes is waited
//! for with a backoff, a stop or a vanished device ends the pump cleanly.
//! Every wait is in the kernel beside the stop signal: nothing spins, and
//! an idle tunnel makes no wake-ups.

use std::io::{self, IoSliceMut};

use quinn_udp::RecvMeta;
use rustix::event::PollFlags;
use tun_device::relay::{Backoff, RelayCounters, forward, recover};
use tun_device::{Interrupt, Queue, RecvState, SendState};

use crate::counters::{SocketDelta, TunnelStats};
use crate::datagram::{check_inner, datagrams};
use crate::error::{Error, Result, SocketOp};
use crate::runs::{Limits, Step, plan};
use crate::socket::{RunSocket, Udp, is_gso_refusal, is_too_large};

/// Packets read from the device per batch.
const BATCH: usize = 64;
/// Bytes of one receive buffer: the largest datagram, or what UDP_GRO
/// coalesces into one message (64 KiB at most).
const RECV_BUF: usize = 1 << 16;

/// Empty a list of borrowed slices and end its borrows, keeping its
/// allocation (an empty in-place collect reuses the buffer: every list
/// here holds 16-byte slice references), so a pump allocates nothing
/// per batch once its lists have grown.
fn recycle<A, B>(mut v: Vec<A>) -> Vec<B> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

/// Device to peer, until `stop` or the device goes.
pub(crate) fn tun_to_udp(
    queue: &Queue,
    udp: &Udp,
    stop: &Interrupt,
    stats: &TunnelStats,
) -> Result<()> {
    // Buffers one MTU apart: a run of MTU-sized packets (what a split
    // TCP super-packet gives) then lies contiguous, and is sent in place.
    let stride = queue.interface().mtu().map_or(1500, |m| m as usize).max(68);
    let mut region = vec![0u8; stride * BATCH];
    let mut lens = vec![0usize; BATCH];
    let mut gather = Vec::with_capacity(1 << 16);
    let mut steps = Vec::with_capacity(BATCH);
    let mut rx = RecvState::new();
    let mut backoff = Backoff::new();
    let (mut supers, mut tunnels) = (0, 0);
    let relay = &stats.tun_to_udp;
    let mut spare: Vec<&mut [u8]> = Vec::with_capacity(BATCH);
    loop {
        let res = {
            let mut bufs = recycle(std::mem::take(&mut spare));
            bufs.extend(region.chunks_mut(stride));
            let res = queue.recv_batch(&mut rx, &mut bufs, &mut lens, 0);
            spare = recycle(bufs);
            res
        };
        let n = match res {
            Ok(n) => n,
            Err(e) => {
                if !recover(e, 0, &mut backoff, stop, relay).map_err(Error::Device)? {
                    return Ok(());
                }
                continue;
            }
        };
        let (s, t) = (rx.stats().super_packets, rx.stats().tunnel_super_packets);
        relay.record(&RelayCounters {
            packets_in: n as u64,
            bytes_in: lens[..n].iter().sum::<usize>() as u64,
            super_packets_in: s - supers,
            tunnel_super_packets_in: t - tunnels,
            ..RelayCounters::default()
        });
        (supers, tunnels) = (s, t);
        let limits = Limits {
            segments: udp.gso_segments(),
            datagram: udp.max_datagram(),
        };
        plan(&lens[..n], limits, &mut steps);
        let mut delta = SocketDelta::default();
        let mut writes = 0;
        let mut lost = 0;
        let mut go_on = true;
        for &step in &steps {
            let (start, count, seg, bytes) = match step {
                Step::TooLarge { .. } => {
                    delta.too_large += 1;
                    lost += 1;
                    continue;
                }
                Step::Send {
                    start,
                    count,
                    seg,
                    bytes,
                } => (start, count, seg, bytes),
            };
            let at = start * stride;
            // Contiguous when every packet but the last fills its buffer.
            let contents = if count == 1 || seg == stride {
                &region[at..at + bytes]
            } else {
                gather.clear();
                for i in start..start + count {
                    gather.extend_from_slice(&region[i * stride..i * stride + lens[i]]);
                }
                &gather[..]
            };
            let sent = send_run(udp, contents, seg, stop, &mut backoff, &mut delta)?;
            writes += sent.writes;
            lost += sent.lost;
            if !sent.go_on {
                go_on = false;
                break;
            }
        }
        relay.record(&RelayCounters {
            writes,
            dropped: lost,
            ..RelayCounters::default()
        });
        stats.record(&delta);
        if !go_on {
            return Ok(());
        }
    }
}

/// What one run's send did.
#[derive(Debug, PartialEq, Eq)]
struct Sent {
    writes: u64,
    lost: u64,
    /// False: stopped while waiting.
    go_on: bool,
}

/// Send one run (`contents` in `seg`-byte datagrams), waiting while the
/// socket is full; a refused GSO send goes again datagram by datagram.
fn send_run(
    udp: &impl RunSocket,
    contents: &[u8],
    seg: usize,
    stop: &Interrupt,
    backoff: &mut Backoff,
    delta: &mut SocketDelta,
) -> Result<Sent> {
    let count = contents.len().div_ceil(seg.max(1)).max(1) as u64;
    loop {
        let e = match udp.send_run(contents, seg) {
            Ok(()) => {
                backoff.reset();
                delta.datagrams_sent += count;
                return Ok(Sent {
                    writes: 1,
                    lost: 0,
                    go_on: true,
                });
            }
            Err(e) => e,
        };
        if e.kind() == io::ErrorKind::WouldBlock {
            if !udp.wait_writable(stop)? {
                return Ok(Sent {
                    writes: 0,
                    lost: count,
                    go_on: false,
                });
            }
            continue;
        }
        if count > 1 && is_gso_refusal(&e) {
            // quinn-udp has turned GSO off for the socket: the run goes
            // again one datagram per send, and nothing is lost to it.
            delta.gso_fallbacks += 1;
            let mut all = Sent {
                writes: 0,
                lost: 0,
                go_on: true,
            };
            for d in contents.chunks(seg) {
                let one = send_run(udp, d, d.len(), stop, backoff, delta)?;
                all.writes += one.writes;
                all.lost += one.lost;
                if !one.go_on {
                    all.go_on = false;
                    break;
                }
            }
            return Ok(all);
        }
        if is_too_large(&e) {
            delta.too_large += count;
            return Ok(Sent {
                writes: 0,
                lost: count,
                go_on: true,
            });
        }
        // ENOBUFS, an unreachable peer (ICMP reported on the connected
        // socket), a route gone: the run is dropped, and the next send
        // waits a little, so a socket that refuses everything is not
        // retried in a spin.
        delta.send_errors += 1;
        let stopped = stop.sleep(backoff.step());
        return Ok(Sent {
            writes: 0,
            lost: count,
            go_on: !stopped,
        });
    }
}

/// What to do after a failed `recvmmsg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterRecv {
    /// Nothing to read: poll.
    Wait,
    /// Read again at once: a signal, or an ICMP error for an earlier send
    /// reported once on the connected socket (the next read does not
    /// repeat it, so this cannot spin).
    Again,
    /// The kernel is short of memory: wait a little, then read again.
    Backoff,
    /// The socket cannot be read (a bug, or the fd taken away): end.
    Fail,
}

fn after_recv_error(e: &io::Error) -> AfterRecv {
    use io::ErrorKind as K;
    match e.kind() {
        K::WouldBlock => AfterRecv::Wait,
        K::Interrupted | K::ConnectionRefused | K::HostUnreachable | K::NetworkUnreachable => {
            AfterRecv::Again
        }
        K::OutOfMemory => AfterRecv::Backoff,
        _ if e.raw_os_error() == Some(rustix::io::Errno::NOBUFS.raw_os_error()) => {
            AfterRecv::Backoff
        }
        _ => AfterRecv::Fail,
    }
}

/// Peer to device, until `stop` or the device goes.
pub(crate) fn udp_to_tun(
    queue: &Queue,
    udp: &Udp,
    stop: &Interrupt,
    stats: &TunnelStats,
) -> Result<()> {
    let batch = quinn_udp::BATCH_SIZE.max(1);
    // One zeroed region: only the pages datagrams touch become resident.
    let mut region = vec![0u8; RECV_BUF * batch];
    let mut meta = vec![RecvMeta::default(); batch];
    let mut tx = SendState::new();
    // Packets from the peer are not vouched for unless the caller says
    // so: coalescing checks their checksums, so that a damaged one is not
    // merged into a valid super-packet.
    tx.set_checksums_verified(udp.trust_checksums());
    let mut backoff = Backoff::new();
    let relay = &stats.udp_to_tun;
    let mut spare_iov: Vec<IoSliceMut<'_>> = Vec::with_capacity(batch);
    let mut spare_packets: Vec<&[u8]> = Vec::new();
    let mut lens: Vec<usize> = Vec::new();
    loop {
        let res = {
            let mut iov = recycle(std::mem::take(&mut spare_iov));
            iov.extend(region.chunks_mut(RECV_BUF).map(IoSliceMut::new));
            let res = udp.recv(&mut iov, &mut meta);
            spare_iov = recycle(iov);
            res
        };
        let n = match res {
            Ok(n) => n,
            Err(e) => match after_recv_error(&e) {
                AfterRecv::Wait => {
                    if !udp.wait(PollFlags::IN, stop)? {
                        return Ok(());
                    }
                    continue;
                }
                AfterRecv::Again => continue,
                AfterRecv::Backoff => {
                    if stop.sleep(backoff.step()) {
                        return Ok(());
                    }
                    continue;
                }
                AfterRecv::Fail => return Err(Error::socket(SocketOp::Recv, udp.peer(), e)),
            },
        };
        let mut delta = SocketDelta {
            receives: 1,
            ..SocketDelta::default()
        };
        let mut packets: Vec<&[u8]> = recycle(std::mem::take(&mut spare_packets));
        let mut supers = 0;
        for (m, buf) in meta[..n].iter().zip(region.chunks(RECV_BUF)) {
            let data = &buf[..m.len.min(buf.len())];
            if m.stride > 0 && m.len > m.stride {
                supers += 1;
            }
            for d in datagrams(data, m.stride) {
                delta.datagrams_received += 1;
                match check_inner(d) {
                    Ok(()) => packets.push(d),
                    Err(_) => delta.malformed += 1,
                }
            }
        }
        lens.clear();
        lens.extend(packets.iter().map(|p| p.len()));
        relay.record(&RelayCounters {
            packets_in: packets.len() as u64,
            bytes_in: lens.iter().sum::<usize>() as u64,
            super_packets_in: supers,
            dropped: delta.malformed,
            ..RelayCounters::default()
        });
        stats.record(&delta);
        if packets.is_empty() {
            spare_packets = recycle(packets);
            continue;
        }
        let end = forward(
            queue,
            &mut tx,
            &packets,
            &lens,
            0,
            &mut backoff,
            stop,
            relay,
        )
        .map_err(Error::Device);
        spare_packets = recycle(packets);
        if !end? {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// A socket that answers sends from a script (errno, or 0 for
    /// success; past its end every send works) and records what it was
    /// asked to send: (bytes, segment size).
    #[derive(Default)]
    struct Scripted {
        script: RefCell<Vec<i32>>,
        sent: RefCell<Vec<(usize, usize)>>,
        waits: RefCell<usize>,
    }

    impl Scripted {
        fn new(script: &[i32]) -> Self {
            let mut s = script.to_vec();
            s.reverse();
            Self {
                script: RefCell::new(s),
                ..Self::default()
            }
        }
    }

    impl RunSocket for Scripted {
        fn send_run(&self, contents: &[u8], seg: usize) -> io::Result<()> {
            match self.script.borrow_mut().pop() {
                Some(0) | None => {
                    self.sent.borrow_mut().push((contents.len(), seg));
                    Ok(())
                }
                Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            }
        }

        fn wait_writable(&self, stop: &Interrupt) -> Result<bool> {
            *self.waits.borrow_mut() += 1;
            Ok(!stop.is_raised())
        }
    }

    use rustix::io::Errno;
    const EAGAIN: i32 = Errno::AGAIN.raw_os_error();
    const EIO: i32 = Errno::IO.raw_os_error();
    const EINVAL: i32 = Errno::INVAL.raw_os_error();
    const EMSGSIZE: i32 = Errno::MSGSIZE.raw_os_error();
    const ENOBUFS: i32 = Errno::NOBUFS.raw_os_error();

    fn did(writes: u64, lost: u64, go_on: bool) -> Sent {
        Sent {
            writes,
            lost,
            go_on,
        }
    }

    fn run(sock: &Scripted, len: usize, seg: usize, stop: &Interrupt) -> (Sent, SocketDelta) {
        let mut delta = SocketDelta::default();
        let sent = send_run(
            sock,
            &vec![7u8; len],
            seg,
            stop,
            &mut Backoff::new(),
            &mut delta,
        )
        .unwrap();
        (sent, delta)
    }

    #[test]
    fn receive_errors_wait_retry_back_off_or_end() {
        let e = |c: i32| io::Error::from_raw_os_error(c);
        assert_eq!(after_recv_error(&e(EAGAIN)), AfterRecv::Wait);
        for c in [
            Errno::INTR,
            Errno::CONNREFUSED,
            Errno::HOSTUNREACH,
            Errno::NETUNREACH,
        ] {
            assert_eq!(after_recv_error(&e(c.raw_os_error())), AfterRecv::Again);
        }
        assert_eq!(after_recv_error(&e(ENOBUFS)), AfterRecv::Backoff);
        assert_eq!(
            after_recv_error(&e(Errno::NOMEM.raw_os_error())),
            AfterRecv::Backoff
        );
        assert_eq!(
            after_recv_error(&e(Errno::BADF.raw_os_error())),
            AfterRecv::Fail
        );
    }

    #[test]
    fn recycled_lists_keep_their_allocation() {
        let region = [0u8; 64];
        let mut v: Vec<&[u8]> = Vec::with_capacity(8);
        v.extend(region.chunks(8));
        let (cap, at) = (v.capacity(), v.as_ptr() as usize);
        let w: Vec<&[u8]> = recycle(v);
        assert!(w.is_empty());
        assert_eq!((w.capacity(), w.as_ptr() as usize), (cap, at));
        let m: Vec<IoSliceMut<'_>> = recycle(w);
        assert_eq!(m.capacity(), cap);
    }

    #[test]
    fn a_run_is_one_send_of_its_datagrams() {
        let sock = Scripted::new(&[]);
        let (sent, delta) = run(&sock, 3500, 1400, &Interrupt::new().unwrap());
        assert_eq!(sent, did(1, 0, true));
        assert_eq!(delta.datagrams_sent, 3);
        assert_eq!(*sock.sent.borrow(), [(3500, 1400)]);
    }

    #[test]
    fn a_full_socket_is_waited_for_and_the_same_run_sent_again() {
        let sock = Scripted::new(&[EAGAIN, EAGAIN]);
        let (sent, delta) = run(&sock, 2800, 1400, &Interrupt::new().unwrap());
        assert_eq!(sent, did(1, 0, true));
        assert_eq!((*sock.waits.borrow(), delta.datagrams_sent), (2, 2));
    }

    #[test]
    fn a_stop_while_waiting_ends_the_run_counted_as_lost() {
        let stop = Interrupt::new().unwrap();
        stop.raise().unwrap();
        let sock = Scripted::new(&[EAGAIN]);
        let (sent, delta) = run(&sock, 2800, 1400, &stop);
        assert_eq!(sent, did(0, 2, false));
        assert_eq!(delta.datagrams_sent, 0);
    }

    #[test]
    fn a_refused_gso_send_goes_again_datagram_by_datagram() {
        for errno in [EIO, EINVAL] {
            let sock = Scripted::new(&[errno]);
            let (sent, delta) = run(&sock, 3500, 1400, &Interrupt::new().unwrap());
            assert_eq!(sent, did(3, 0, true));
            assert_eq!((delta.gso_fallbacks, delta.datagrams_sent), (1, 3));
            assert_eq!(
                *sock.sent.borrow(),
                [(1400, 1400), (1400, 1400), (700, 700)]
            );
        }
    }

    #[test]
    fn a_single_datagram_refused_is_an_error_not_a_fallback() {
        let sock = Scripted::new(&[EIO]);
        let (sent, delta) = run(&sock, 1000, 1000, &Interrupt::new().unwrap());
        assert_eq!(sent, did(0, 1, true));
        assert_eq!((delta.gso_fallbacks, delta.send_errors), (0, 1));
    }

    #[test]
    fn too_large_datagrams_are_counted_as_such() {
        // GSO refused (the segment exceeds the route), then each datagram
        // alone too: reported as too large, not lost silently.
        let sock = Scripted::new(&[EINVAL, EMSGSIZE, EMSGSIZE]);
        let (sent, delta) = run(&sock, 3000, 1500, &Interrupt::new().unwrap());
        assert_eq!(sent, did(0, 2, true));
        assert_eq!((delta.gso_fallbacks, delta.too_large), (1, 2));
    }

    #[test]
    fn other_errors_drop_the_run_and_back_off() {
        let sock = Scripted::new(&[ENOBUFS]);
        let mut delta = SocketDelta::default();
        let mut backoff = Backoff::new();
        let stop = Interrupt::new().unwrap();
        let sent = send_run(&sock, &[1; 2000], 1000, &stop, &mut backoff, &mut delta).unwrap();
        assert_eq!(sent, did(0, 2, true));
        assert_eq!(delta.send_errors, 1);
        // The backoff was used: its next wait is the second step.
        assert_eq!(backoff.step(), Backoff::MIN * 2);
    }
}
