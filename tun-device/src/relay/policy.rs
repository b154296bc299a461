//! What a relay does after an error: one classification for every relay
//! of the workspace (this crate's threads, tun-async's tasks, and any loop
//! a user writes on the public API), so that they agree on which errors end
//! a direction, which drop a packet, and which mean "wait before writing
//! again" rather than retrying at once.

use std::time::Duration;

use super::{RelayCounters, RelayStats};
use crate::error::{Error, ErrorKind, Result};
use crate::interrupt::Interrupt;

/// What to do after an error from a receive or a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Nothing to read or no room to write: wait for readiness, then try
    /// the same call again. Nothing is lost.
    Wait,
    /// One packet was bad or did not fit (a malformed super-packet, a
    /// refused write, a buffer too small): it is dropped, count it once and
    /// go on at once.
    Drop,
    /// The output refuses writes for now (its link is down, it was moved
    /// to another namespace, the kernel is out of buffers): drop what was
    /// being written, count each packet once, and [`Backoff`] before the
    /// next write. Retrying at once would spin.
    Backoff,
    /// The device is gone (or the wait was interrupted to stop the
    /// relay): the direction ends, cleanly.
    Finish,
    /// The direction cannot go on (a missing privilege, a configuration
    /// refused): it ends with this error.
    Fail,
}

impl Disposition {
    /// The disposition of `error`.
    pub fn of(error: &Error) -> Self {
        match error.kind() {
            ErrorKind::WouldBlock => Disposition::Wait,
            ErrorKind::BadPacket | ErrorKind::BufferTooSmall => Disposition::Drop,
            // The device is gone, or the relay was told to stop.
            ErrorKind::DeviceGone | ErrorKind::Interrupted => Disposition::Finish,
            ErrorKind::PermissionDenied | ErrorKind::InvalidConfig | ErrorKind::InvalidInput => {
                Disposition::Fail
            }
            // EIO on a write into a down link; ENOBUFS, ENOMEM, EBUSY and
            // the like are transient too. None of them ends a direction.
            ErrorKind::InterfaceDown
            | ErrorKind::Busy
            | ErrorKind::Other
            | ErrorKind::AlreadyExists
            | ErrorKind::NotFound
            | ErrorKind::Unsupported => Disposition::Backoff,
        }
    }

    /// Whether the direction ends.
    pub fn ends(self) -> bool {
        matches!(self, Disposition::Finish | Disposition::Fail)
    }
}

/// Act on `error` as every relay of the workspace does ([`Disposition::of`]):
/// count a dropped packet ([`Disposition::Drop`]) or the `lost` packets
/// that were being written ([`Disposition::Backoff`], then wait one
/// `backoff` step, cut short by `stop`) in `stats`. `Ok(true)`: go on;
/// `Ok(false)`: end the direction cleanly (the device is gone, or `stop`
/// was raised); `Err`: end it with this error ([`Disposition::Fail`]).
///
/// A user's own loop over [`Queue::recv_batch`](crate::Queue::recv_batch)
/// and [`Queue::send_batch`](crate::Queue::send_batch) calls this after
/// each failed call and behaves as the relay does.
pub fn recover(
    error: Error,
    lost: u64,
    backoff: &mut Backoff,
    stop: &Interrupt,
    stats: &RelayStats,
) -> Result<bool> {
    let count = |n| {
        stats.record(&RelayCounters {
            dropped: n,
            ..RelayCounters::default()
        })
    };
    match Disposition::of(&error) {
        // Blocking mode waits inside the call: not expected, harmless.
        Disposition::Wait => Ok(true),
        Disposition::Drop => {
            count(1);
            Ok(true)
        }
        Disposition::Backoff => {
            count(lost);
            Ok(!stop.sleep(backoff.step()))
        }
        Disposition::Finish => Ok(false),
        Disposition::Fail => Err(error),
    }
}

/// The wait between writes into an output that refuses them
/// ([`Disposition::Backoff`]): 1 ms, doubling up to 100 ms, back to the
/// start after a write that worked. The kernel gives no readiness for a
/// link coming back up (a down TUN polls as not writable, and stays so),
/// so a relay waits this long, watching its stop signal, and tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// The first wait.
    pub const MIN: Duration = Duration::from_millis(1);
    /// The longest wait: how late a relay notices that the link is back.
    pub const MAX: Duration = Duration::from_millis(100);

    /// A backoff at its start.
    pub const fn new() -> Self {
        Self { next: Self::MIN }
    }

    /// The wait to make now; the one after it is twice as long (at most
    /// [`Self::MAX`]).
    pub fn step(&mut self) -> Duration {
        let now = self.next;
        self.next = (now * 2).min(Self::MAX);
        now
    }

    /// A write worked: the next refusal waits [`Self::MIN`] again.
    pub fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::IoOp;
    use tun_sys::InterfaceName;

    fn io(op: IoOp, errno: i32) -> Error {
        Error::Io {
            op,
            interface: InterfaceName::new("t0").unwrap(),
            errno,
        }
    }

    #[test]
    fn errors_sort_into_dispositions() {
        assert_eq!(
            Disposition::of(&io(IoOp::Recv, libc::EAGAIN)),
            Disposition::Wait
        );
        assert_eq!(
            Disposition::of(&io(IoOp::SendBatch, libc::EIO)),
            Disposition::Backoff
        );
        assert_eq!(
            Disposition::of(&io(IoOp::Send, libc::ENOBUFS)),
            Disposition::Backoff
        );
        assert_eq!(
            Disposition::of(&io(IoOp::SendBatch, libc::EINVAL)),
            Disposition::Drop
        );
        // A read that finds the queue shut down: the device is gone.
        assert_eq!(
            Disposition::of(&io(IoOp::RecvBatch, libc::EFAULT)),
            Disposition::Finish
        );
        assert_eq!(
            Disposition::of(&io(IoOp::RecvBatch, libc::EBADFD)),
            Disposition::Finish
        );
        assert_eq!(
            Disposition::of(&io(IoOp::Recv, libc::EPERM)),
            Disposition::Fail
        );
        assert!(Disposition::Finish.ends() && Disposition::Fail.ends());
        assert!(!Disposition::Backoff.ends() && !Disposition::Drop.ends());
    }

    #[test]
    fn recover_counts_waits_and_ends_as_the_relay_does() {
        let stats = RelayStats::default();
        let stop = Interrupt::new().unwrap();
        let mut b = Backoff::new();
        // A bad packet: one drop, go on at once.
        assert!(recover(io(IoOp::SendBatch, libc::EINVAL), 9, &mut b, &stop, &stats).unwrap());
        assert_eq!(stats.snapshot().dropped, 1);
        // A down link: what was being written is dropped, one backoff step
        // is slept (1 ms), and the next step is longer.
        let t = std::time::Instant::now();
        assert!(recover(io(IoOp::SendBatch, libc::EIO), 5, &mut b, &stop, &stats).unwrap());
        assert!(t.elapsed() >= Backoff::MIN);
        assert_eq!(stats.snapshot().dropped, 6);
        assert_eq!(b.step(), Duration::from_millis(2));
        // Raised while backing off: the direction ends cleanly, at once.
        stop.raise().unwrap();
        let t = std::time::Instant::now();
        assert!(!recover(io(IoOp::SendBatch, libc::EIO), 1, &mut b, &stop, &stats).unwrap());
        assert!(t.elapsed() < Duration::from_millis(50));
        // The device gone: clean end; a missing privilege: the error.
        assert!(!recover(io(IoOp::Recv, libc::EBADFD), 0, &mut b, &stop, &stats).unwrap());
        let e = recover(io(IoOp::Recv, libc::EPERM), 0, &mut b, &stop, &stats).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert_eq!(stats.snapshot().dropped, 7);
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..10).map(|_| b.step().as_millis() as u64).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 100, 100, 100]);
        b.reset();
        assert_eq!(b.step(), Backoff::MIN);
    }
}
