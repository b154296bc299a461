//! TCP traffic from side A to side B: `streams` connections, every byte
//! received compared with the pattern.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::namespaces::{Side, Testbed, run_in};
use crate::pattern::{PATTERN_LEN, WINDOW, pattern};
use crate::traffic::{POLL, TCP_PORT, Traffic, bind_retry, join};

/// A stream that receives nothing for this long has failed (the path
/// between the namespaces is broken); the run ends instead of hanging.
const STALL: Duration = Duration::from_secs(15);

fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Receive one stream, checking every byte; `(bytes, intact)`.
fn receive(mut s: TcpStream, pat: &[u8], cancel: &Cancel) -> (u64, bool) {
    if s.set_read_timeout(Some(POLL)).is_err() {
        return (0, false);
    }
    let mut buf = vec![0u8; WINDOW];
    let (mut off, mut n, mut ok) = (0usize, 0u64, true);
    let mut last = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                ok &= buf[..k] == pat[off..off + k];
                off = (off + k) % PATTERN_LEN;
                n += k as u64;
                last = Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if timed_out(&e) && !cancel.is_cancelled() && last.elapsed() < STALL => {}
            Err(_) => return (n, false),
        }
    }
    (n, ok)
}

/// Send one stream for `duration` or `bytes`; `(bytes, clean end)`.
fn send(
    dst: SocketAddr,
    pat: &[u8],
    duration: Duration,
    bytes: Option<u64>,
    cancel: &Cancel,
) -> (u64, bool) {
    let Ok(mut s) = TcpStream::connect_timeout(&dst, Duration::from_secs(10)) else {
        return (0, false);
    };
    if s.set_write_timeout(Some(POLL)).is_err() {
        return (0, false);
    }
    let (mut off, mut n) = (0usize, 0u64);
    let t0 = Instant::now();
    let mut last = Instant::now();
    loop {
        if cancel.is_cancelled() {
            return (n, false);
        }
        let k = match bytes {
            Some(b) if n >= b => break,
            Some(b) => WINDOW.min((b - n) as usize),
            None if t0.elapsed() >= duration => break,
            None => WINDOW,
        };
        match s.write(&pat[off..off + k]) {
            Ok(w) => {
                off = (off + w) % PATTERN_LEN;
                n += w as u64;
                last = Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if timed_out(&e) && last.elapsed() < STALL => {}
            Err(_) => return (n, false),
        }
    }
    (n, s.shutdown(Shutdown::Write).is_ok())
}

impl Testbed {
    /// `streams` TCP connections from A to B (IPv6 with `v6`), each
    /// sending for `duration` (or, with `bytes`, exactly that many bytes
    /// per stream), every received byte checked. Returns
    /// [`Error::Cancelled`] within a fraction of a second of the bed's
    /// token being cancelled.
    pub fn tcp(
        &self,
        v6: bool,
        streams: usize,
        duration: Duration,
        bytes: Option<u64>,
    ) -> Result<Traffic> {
        let dst = SocketAddr::new(Self::addr(Side::B, v6), TCP_PORT);
        let pat = pattern();
        let step = format!("bind the TCP listener to {dst}");
        let listener = run_in(&self.ns_b, &step, || {
            bind_retry(&step, || TcpListener::bind(dst))
        })?;
        // accept() wakes every POLL to look at the token and the deadline.
        nix::sys::socket::setsockopt(
            &listener,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(0, POLL.as_micros() as _),
        )
        .map_err(|e| {
            Error::io(
                format!("set SO_RCVTIMEO on the listener at {dst}"),
                e.into(),
            )
        })?;
        let (pat_rx, cancel_rx) = (pat.clone(), self.cancel.clone());
        let server = self
            .ns_b
            .spawn(move || -> Vec<(u64, bool)> {
                let deadline = Instant::now() + STALL;
                let mut handles = Vec::new();
                while handles.len() < streams {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let (pat, cancel) = (pat_rx.clone(), cancel_rx.clone());
                            handles.push(std::thread::spawn(move || receive(s, &pat, &cancel)));
                        }
                        Err(e)
                            if (timed_out(&e) || e.kind() == ErrorKind::Interrupted)
                                && !cancel_rx.is_cancelled()
                                && Instant::now() < deadline => {}
                        Err(_) => break,
                    }
                }
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or((0, false)))
                    .collect()
            })
            .map_err(|e| Error::device("start the TCP receiver in side B", e))?;
        let start = Instant::now();
        let mut senders = Vec::new();
        for i in 0..streams {
            let (pat, cancel) = (pat.clone(), self.cancel.clone());
            senders.push(
                self.ns_a
                    .spawn(move || send(dst, &pat, duration, bytes, &cancel))
                    .map_err(|e| Error::device(format!("start TCP sender {i} in side A"), e))?,
            );
        }
        let (mut sent, mut ok) = (0, true);
        for s in senders {
            let (n, good) = join(s, "TCP sender")?
                .map_err(|e| Error::device("enter side A for a TCP sender", e))?;
            sent += n;
            ok &= good;
        }
        let results = join(server, "TCP receiver")?
            .map_err(|e| Error::device("enter side B for the TCP receiver", e))?;
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let secs = start.elapsed().as_secs_f64();
        let got: u64 = results.iter().map(|r| r.0).sum();
        let damaged = results.iter().filter(|r| !r.1).count() as u64 + u64::from(!ok);
        Ok(Traffic {
            bytes: got,
            secs,
            intact: ok && damaged == 0 && results.len() == streams && got == sent,
            damaged,
            lost: 0,
            sent: 0,
        })
    }
}
