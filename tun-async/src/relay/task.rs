//! The relay's directions as tokio tasks: [`spawn`] and the handle that
//! watches and stops them, [`Relay`].

use std::sync::Arc;

use tokio::task::JoinHandle;
use tun_device::relay::{RelayCounters, RelayStats};

use super::stop::Stop;
use super::{Config, End, Stats, pump};
use crate::AsyncQueue;
use crate::backend::Tokio;

/// A running relay: one task per direction on a tokio runtime. Dropping
/// it stops both directions (without waiting for them).
#[derive(Debug)]
pub struct Relay {
    stop: Stop,
    live: [Arc<RelayStats>; 2],
    tasks: Option<[JoinHandle<End>; 2]>,
}

/// Start relaying between `a` and `b` in both directions, one spawned task
/// each (so a multi-threaded runtime runs them in parallel).
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn spawn(a: Arc<AsyncQueue<Tokio>>, b: Arc<AsyncQueue<Tokio>>, config: Config) -> Relay {
    let stop = Stop::default();
    let live = [
        Arc::new(RelayStats::default()),
        Arc::new(RelayStats::default()),
    ];
    let direction =
        |from: Arc<AsyncQueue<Tokio>>, to: Arc<AsyncQueue<Tokio>>, live: Arc<RelayStats>| {
            let listener = stop.listen();
            tokio::spawn(async move { pump(&from, &to, config, listener, &live).await })
        };
    let ab = direction(a.clone(), b.clone(), live[0].clone());
    let ba = direction(b, a, live[1].clone());
    Relay {
        stop,
        live,
        tasks: Some([ab, ba]),
    }
}

impl Relay {
    /// The counters now: (a to b, b to a).
    pub fn counters(&self) -> (RelayCounters, RelayCounters) {
        (self.live[0].snapshot(), self.live[1].snapshot())
    }

    /// Which directions ended (a to b, b to a): each ends by itself when
    /// a device is gone or on a fatal error; [`Self::stop`] says how.
    pub fn finished(&self) -> (bool, bool) {
        match &self.tasks {
            Some([ab, ba]) => (ab.is_finished(), ba.is_finished()),
            None => (true, true),
        }
    }

    /// Whether both directions ended.
    pub fn is_finished(&self) -> bool {
        self.finished() == (true, true)
    }

    /// Stop both directions (each drops what it could not write yet) and
    /// return the counters and how each direction ended. Prompt in every
    /// state: every wait of a direction is raced against the stop.
    pub async fn stop(mut self) -> Stats {
        self.stop.raise();
        let mut ends = [End::Stopped, End::Stopped];
        if let Some(tasks) = self.tasks.take() {
            for (task, end) in tasks.into_iter().zip(&mut ends) {
                match task.await {
                    Ok(e) => *end = e,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    // Cancelled by a runtime shutting down.
                    Err(_) => {}
                }
            }
        }
        Stats::new([&self.live[0], &self.live[1]], ends)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.raise();
    }
}
