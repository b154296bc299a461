//! What a traffic run measured, and what the TCP and UDP runs share:
//! binding while an address is still settling, and the ports.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// TCP port of the receiver in side B (a test that watches the traffic
/// on its way tells the bed's from the kernels' own by it).
pub const TCP_PORT: u16 = 5201;
/// UDP port of the receiver in side B.
pub const UDP_PORT: u16 = 5202;

/// How often blocked socket calls wake to look at the cancel token.
pub(crate) const POLL: Duration = Duration::from_millis(200);

/// What a traffic run measured.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Traffic {
    /// Payload bytes received intact.
    pub bytes: u64,
    /// Seconds from the first send to the last byte received.
    pub secs: f64,
    /// Whether everything received was intact (and, for TCP, everything
    /// sent was received).
    pub intact: bool,
    /// Datagrams received damaged or twice (UDP), or streams that failed (TCP).
    pub damaged: u64,
    /// Datagrams sent but not received (UDP; loss is normal without
    /// congestion control).
    pub lost: u64,
    /// Datagrams sent (UDP; 0 for TCP).
    pub sent: u64,
}

impl Traffic {
    /// Whether the run moved something and lost nothing: bytes arrived,
    /// all of them intact, nothing damaged, no datagram lost. (A UDP run
    /// without a window may lose datagrams and still be intact; this says
    /// it did not.)
    pub fn is_complete(&self) -> bool {
        self.bytes > 0 && self.intact && self.damaged == 0 && self.lost == 0
    }

    /// Throughput in Gbit/s.
    pub fn gbits(&self) -> f64 {
        if self.secs > 0.0 {
            self.bytes as f64 * 8.0 / self.secs / 1e9
        } else {
            0.0
        }
    }
}

/// Bind with `f`, retrying for up to 5 s while the address is not yet
/// usable (`EADDRNOTAVAIL` right after it was added).
pub(crate) fn bind_retry<T>(step: &str, mut f: impl FnMut() -> std::io::Result<T>) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e)
                if e.raw_os_error() == Some(nix::libc::EADDRNOTAVAIL)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(Error::io(step, e)),
        }
    }
}

/// Join a traffic thread, turning a panic into an error.
pub(crate) fn join<T>(h: std::thread::JoinHandle<T>, what: &'static str) -> Result<T> {
    h.join().map_err(|_| Error::Panicked(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbits_of_nothing_is_zero() {
        assert_eq!(Traffic::default().gbits(), 0.0);
        let t = Traffic {
            bytes: 125_000_000,
            secs: 1.0,
            ..Traffic::default()
        };
        assert!((t.gbits() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn complete_means_something_arrived_and_nothing_was_lost() {
        let good = Traffic {
            bytes: 1200,
            intact: true,
            sent: 1,
            ..Traffic::default()
        };
        assert!(good.is_complete());
        assert!(!Traffic::default().is_complete(), "nothing arrived");
        assert!(!Traffic { lost: 1, ..good }.is_complete());
        assert!(!Traffic { damaged: 1, ..good }.is_complete());
        assert!(
            !Traffic {
                intact: false,
                ..good
            }
            .is_complete()
        );
    }

    #[test]
    fn bind_retry_names_the_step() {
        let e = bind_retry("bind the TCP listener", || -> std::io::Result<()> {
            Err(std::io::Error::from_raw_os_error(nix::libc::EACCES))
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("bind the TCP listener: "), "{e}");
    }
}
