//! UDP traffic from side A to side B, sent with `UDP_SEGMENT` (many
//! datagrams per send call), every datagram checked on arrival: its
//! sequence number says where in the pattern its payload starts.
//!
//! One send carries at most what one IP packet may (the UDP payload limit
//! of the family) and at most `UDP_MAX_SEGMENTS` datagrams: the kernel
//! refuses more with `EMSGSIZE`/`EINVAL` (`udp_send_skb()` in
//! net/ipv4/udp.c, `udp_v6_send_skb()` in net/ipv6/udp.c), so the number
//! per send is sized from the datagram size ([`datagrams_per_send`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::namespaces::{Side, Testbed, run_in};
use crate::pattern::{pattern, stamp, stamped};
use crate::traffic::{POLL, Traffic, UDP_PORT, bind_retry, join};

/// `UDP_MAX_SEGMENTS` of include/linux/udp.h: the most datagrams one
/// `UDP_SEGMENT` send may carry (64 on every kernel with the option;
/// newer kernels allow 128, so 64 is safe everywhere).
pub const UDP_MAX_SEGMENTS: usize = 64;

/// A window for [`Testbed::udp`] under which nothing is lost between two
/// devices: 256 KiB in flight is fewer packets than a device's queue
/// (txqueuelen 500) and the receiving socket hold.
pub const LOSSLESS_WINDOW: u64 = 256 << 10;

/// The largest UDP payload one send may carry: 65535 minus the IPv4 and
/// UDP headers (65507), or for IPv6, whose length field excludes its own
/// header, 65535 minus the UDP header (65527).
pub const fn max_udp_payload(v6: bool) -> usize {
    if v6 { 65535 - 8 } else { 65535 - 20 - 8 }
}

/// How many `seg`-byte datagrams one send carries when `wanted` are asked
/// for: never more than the kernel accepts in one call, never fewer than 1.
pub fn datagrams_per_send(v6: bool, seg: usize, wanted: usize) -> usize {
    // Both bounds are at least 1, so clamp cannot panic.
    let most = (max_udp_payload(v6) / seg.max(1)).clamp(1, UDP_MAX_SEGMENTS);
    wanted.clamp(1, most)
}

/// Fill `buf` with `per_send` datagrams of `seg` bytes, numbered from `seq`.
fn fill(buf: &mut [u8], pat: &[u8], seg: usize, seq: u64) {
    for (j, d) in buf.chunks_exact_mut(seg).enumerate() {
        stamp(d, pat, seq + j as u64);
    }
}

/// What the receiver counted: intact datagrams, bad ones, intact bytes.
#[derive(Debug, Default)]
struct Received {
    good: u64,
    bad: u64,
    bytes: u64,
}

/// Check one datagram of `k` bytes against the pattern and the sequence
/// numbers seen so far (a repeat is damage).
fn check(buf: &[u8], seg: usize, pat: &[u8], seen: &mut Vec<u64>) -> bool {
    if buf.len() != seg {
        return false;
    }
    let Some(seq) = stamped(buf, pat) else {
        return false;
    };
    let word = (seq / 64) as usize;
    if word > 1 << 26 {
        return false; // a garbled sequence number; do not grow without bound
    }
    if seen.len() <= word {
        seen.resize(word + 1, 0);
    }
    let fresh = seen[word] & (1 << (seq % 64)) == 0;
    seen[word] |= 1 << (seq % 64);
    fresh
}

impl Testbed {
    /// UDP from A to B sent with `UDP_SEGMENT`: `seg`-byte datagrams, up
    /// to `per_send` per call (fewer when that many would exceed what one
    /// send may carry, see [`datagrams_per_send`]), for `duration`, every
    /// datagram checked. With `window`, at most that many bytes are in
    /// flight (no loss); without, the sender goes as fast as it can and
    /// loss is counted. Returns [`Error::Cancelled`] within a fraction of
    /// a second of the bed's token being cancelled.
    pub fn udp(
        &self,
        v6: bool,
        seg: usize,
        per_send: usize,
        duration: Duration,
        window: Option<u64>,
    ) -> Result<Traffic> {
        let dst = SocketAddr::new(Self::addr(Side::B, v6), UDP_PORT);
        if !(8..=max_udp_payload(v6)).contains(&seg) {
            return Err(Error::io(
                format!("send {seg}-byte UDP datagrams to {dst}"),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "a datagram carries 8 to {} bytes (its sequence number and the limit of one packet)",
                        max_udp_payload(v6)
                    ),
                ),
            ));
        }
        let per_send = datagrams_per_send(v6, seg, per_send);
        let pat = pattern();
        let step = format!("bind the UDP receiver to {dst}");
        let sock = run_in(&self.ns_b, &step, || {
            bind_retry(&step, || UdpSocket::bind(dst))
        })?;
        // A larger receive buffer than the default, where root may force
        // it: without it, loss measures the buffer, not the path.
        let _ = nix::sys::socket::setsockopt(
            &sock,
            nix::sys::socket::sockopt::RcvBufForce,
            &(16 << 20),
        );
        sock.set_read_timeout(Some(POLL))
            .map_err(|e| Error::io(format!("set a read timeout on the receiver at {dst}"), e))?;
        let done = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let last_rx = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let server = {
            let (done, received, last_rx, pat) =
                (done.clone(), received.clone(), last_rx.clone(), pat.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut seen: Vec<u64> = Vec::new();
                let mut r = Received::default();
                loop {
                    match sock.recv(&mut buf) {
                        Ok(k) if check(&buf[..k], seg, &pat, &mut seen) => {
                            r.good += 1;
                            r.bytes += k as u64;
                            received.store(r.bytes, Ordering::Relaxed);
                            last_rx.store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        }
                        Ok(_) => r.bad += 1,
                        Err(_) if done.load(Ordering::Relaxed) => break,
                        Err(_) => {}
                    }
                }
                r
            })
        };
        let sender = {
            let (received, cancel) = (received.clone(), self.cancel.clone());
            self.ns_a
                .spawn(move || -> Result<u64> {
                    let any: IpAddr = if v6 {
                        Ipv6Addr::UNSPECIFIED.into()
                    } else {
                        Ipv4Addr::UNSPECIFIED.into()
                    };
                    let s = UdpSocket::bind(SocketAddr::new(any, 0))
                        .map_err(|e| Error::io("bind the UDP sender in side A", e))?;
                    s.connect(dst)
                        .map_err(|e| Error::io(format!("connect the UDP sender to {dst}"), e))?;
                    nix::sys::socket::setsockopt(
                        &s,
                        nix::sys::socket::sockopt::UdpGsoSegment,
                        &(seg as i32),
                    )
                    .map_err(|e| Error::io(format!("set UDP_SEGMENT {seg}"), e.into()))?;
                    let mut buf = vec![0u8; seg * per_send];
                    let mut seq = 0u64;
                    let t0 = Instant::now();
                    while t0.elapsed() < duration {
                        if cancel.is_cancelled() {
                            return Err(Error::Cancelled);
                        }
                        if let Some(w) = window {
                            if seq * seg as u64 > received.load(Ordering::Relaxed) + w {
                                std::thread::yield_now();
                                continue;
                            }
                        }
                        fill(&mut buf, &pat, seg, seq);
                        match s.send(&buf) {
                            Ok(_) => seq += per_send as u64,
                            // A full queue somewhere on the way: try again.
                            Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => {}
                            Err(e) => {
                                return Err(Error::io(
                                    format!(
                                        "send {per_send} datagrams of {seg} bytes (UDP_SEGMENT) to {dst}"
                                    ),
                                    e,
                                ));
                            }
                        }
                    }
                    Ok(seq)
                })
                .map_err(|e| Error::device("start the UDP sender in side A", e))?
        };
        let sent = join(sender, "UDP sender")
            .and_then(|r| r.map_err(|e| Error::device("enter side A for the UDP sender", e)))
            .and_then(|r| r);
        // Let the last datagrams arrive (or stop at once on failure), then
        // stop the receiver.
        if sent.is_ok() {
            let mut last = received.load(Ordering::Relaxed);
            loop {
                std::thread::sleep(Duration::from_millis(100));
                let now = received.load(Ordering::Relaxed);
                if now == last || self.cancel.is_cancelled() {
                    break;
                }
                last = now;
            }
        }
        done.store(true, Ordering::Relaxed);
        let r = join(server, "UDP receiver")?;
        let sent = sent?;
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let secs = last_rx.load(Ordering::Relaxed) as f64 / 1e9;
        Ok(Traffic {
            bytes: r.bytes,
            secs,
            intact: r.bad == 0 && (window.is_none() || r.good == sent),
            damaged: r.bad,
            lost: sent.saturating_sub(r.good),
            sent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_send_never_exceeds_what_the_kernel_takes() {
        for v6 in [false, true] {
            for seg in [
                8,
                100,
                1472,
                2047,
                2048,
                4000,
                8192,
                65000,
                max_udp_payload(v6),
            ] {
                let n = datagrams_per_send(v6, seg, 32);
                assert!((1..=32).contains(&n) && n <= UDP_MAX_SEGMENTS, "{seg}: {n}");
                assert!(n * seg <= max_udp_payload(v6), "v6 {v6}, {seg} x {n}");
            }
        }
        // The MTU 1500 case keeps its 32 datagrams per send.
        assert_eq!(datagrams_per_send(false, 1472, 32), 32);
        // MTU 2076 (IPv4): 2048-byte datagrams, 31 per send (32 is 65536 bytes).
        assert_eq!(datagrams_per_send(false, 2048, 32), 31);
        assert_eq!(datagrams_per_send(true, 2048, 32), 31);
        assert_eq!(datagrams_per_send(false, 100, 1000), UDP_MAX_SEGMENTS);
    }

    #[test]
    fn check_catches_damage_repeats_and_bad_lengths() {
        let pat = pattern();
        let seg = 100;
        let mut buf = vec![0u8; seg * 2];
        fill(&mut buf, &pat, seg, 5);
        let mut seen = Vec::new();
        assert!(check(&buf[..seg], seg, &pat, &mut seen));
        assert!(!check(&buf[..seg], seg, &pat, &mut seen), "a repeat");
        assert!(!check(&buf[seg..seg + 50], seg, &pat, &mut seen), "short");
        let mut bad = buf[seg..].to_vec();
        bad[50] ^= 1;
        assert!(!check(&bad, seg, &pat, &mut seen), "damaged");
        let mut huge = buf[seg..].to_vec();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(!check(&huge, seg, &pat, &mut seen), "garbled sequence");
    }
}
