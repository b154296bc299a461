//! Runs that must arrive whole, the shape the tests want: an exact number
//! of TCP bytes, or UDP under a window that loses nothing, and an error
//! that says what arrived unless all of it did intact.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::namespaces::Testbed;
use crate::traffic::Traffic;
use crate::udp::LOSSLESS_WINDOW;

impl Testbed {
    /// Exactly `bytes` over one TCP stream from A to B, every byte
    /// checked; [`Error::Incomplete`] unless all of them arrived intact.
    pub fn tcp_exact(&self, v6: bool, bytes: u64) -> Result<Traffic> {
        let t = self.tcp(v6, 1, Duration::ZERO, Some(bytes))?;
        whole(t, t.intact && t.damaged == 0 && t.bytes == bytes, || {
            format!("{bytes} bytes over TCP (IPv6 {v6})")
        })
    }

    /// [`udp`](Self::udp) for `duration` under [`LOSSLESS_WINDOW`];
    /// [`Error::Incomplete`] unless the run is
    /// [complete](Traffic::is_complete): something arrived, all of it
    /// intact, nothing damaged, no datagram lost.
    pub fn udp_lossless(
        &self,
        v6: bool,
        seg: usize,
        per_send: usize,
        duration: Duration,
    ) -> Result<Traffic> {
        let t = self.udp(v6, seg, per_send, duration, Some(LOSSLESS_WINDOW))?;
        whole(t, t.is_complete(), || {
            format!("{seg}-byte UDP datagrams, {per_send} a send, for {duration:?} (IPv6 {v6})")
        })
    }
}

fn whole(t: Traffic, ok: bool, run: impl FnOnce() -> String) -> Result<Traffic> {
    if ok {
        Ok(t)
    } else {
        Err(Error::Incomplete {
            run: run(),
            traffic: t,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incomplete_run_says_what_arrived() {
        let t = Traffic {
            bytes: 10,
            intact: false,
            damaged: 1,
            lost: 2,
            sent: 5,
            ..Traffic::default()
        };
        let e = whole(t, false, || "a run".into()).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("a run: "), "{s}");
        assert!(
            s.contains("10 bytes intact") && s.contains("1 damaged"),
            "{s}"
        );
        assert!(s.contains("2 lost of 5 sent"), "{s}");
        assert_eq!(whole(t, true, || unreachable!()).unwrap(), t);
    }
}
