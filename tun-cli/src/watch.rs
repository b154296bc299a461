//! The live display `relay` and `tunnel` share: every 100 ms a snapshot
//! of the counters, rates over the last second, on a spinner line when
//! stderr is a terminal, else a line every 5 s; until Ctrl-C or until the
//! work stops by itself.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::util;

/// Show `message(oldest, now, seconds between)` until Ctrl-C (returns
/// false) or until `running` says no (returns true). `tag` starts each
/// line written without a terminal.
pub fn watch<T: Copy>(
    tag: &str,
    running: impl Fn() -> bool,
    snapshot: impl Fn() -> T,
    message: impl Fn(&T, &T, f64) -> String,
) -> bool {
    let tty = std::io::stderr().is_terminal();
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut last_line = Instant::now();
    // A snapshot per tick, the oldest kept at most a second back.
    let mut window: VecDeque<(Instant, T)> = VecDeque::new();
    let mut stopped_by_itself = false;
    while !util::interrupted() {
        std::thread::sleep(Duration::from_millis(100));
        if !running() {
            stopped_by_itself = true;
            break;
        }
        let c = snapshot();
        let now = Instant::now();
        window.push_back((now, c));
        while window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(1))
        {
            window.pop_front();
        }
        let (t0, c0) = window.front().copied().unwrap_or((now, c));
        let msg = message(&c0, &c, now.duration_since(t0).as_secs_f64());
        if tty {
            pb.set_message(msg);
            pb.tick();
        } else if last_line.elapsed() >= Duration::from_secs(5) {
            eprintln!("{tag}: {msg}");
            last_line = Instant::now();
        }
    }
    pb.finish_and_clear();
    stopped_by_itself
}
