//! The stop signal of a relay: raised once, seen by every direction.
//!
//! Runtime-neutral (a flag and the wakers of the directions waiting on
//! it), and listened to through one [`Listener`] per direction made once
//! and polled by reference on every loop turn, rather than a new future
//! per turn.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

#[derive(Debug, Default)]
struct Inner {
    raised: AtomicBool,
    /// One slot per listener.
    wakers: Mutex<Vec<Option<Waker>>>,
}

/// A stop signal; clones share it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stop(Arc<Inner>);

impl Stop {
    /// Raise the signal and wake every listener.
    pub(crate) fn raise(&self) {
        self.0.raised.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = self
            .0
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for w in wakers {
            w.wake();
        }
    }

    /// Whether the signal was raised.
    pub(crate) fn is_raised(&self) -> bool {
        self.0.raised.load(Ordering::SeqCst)
    }

    /// A listener for one direction.
    pub(crate) fn listen(&self) -> Listener {
        let mut wakers = self.0.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        wakers.push(None);
        Listener {
            stop: self.clone(),
            slot: wakers.len() - 1,
        }
    }
}

/// One direction's view of a [`Stop`].
#[derive(Debug)]
pub(crate) struct Listener {
    stop: Stop,
    slot: usize,
}

impl Listener {
    /// `Ready` once the signal is raised; otherwise the task is woken
    /// when it is.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.stop.is_raised() {
            return Poll::Ready(());
        }
        {
            let mut wakers = self
                .stop
                .0
                .wakers
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match wakers.get_mut(self.slot) {
                Some(Some(w)) if w.will_wake(cx.waker()) => {}
                Some(slot) => *slot = Some(cx.waker().clone()),
                None => {}
            }
        }
        // Raised between the first look and the registration: `raise`
        // took the wakers before this one was stored.
        if self.stop.is_raised() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_raised_stop_wakes_each_listener_once_and_stays_raised() {
        let stop = Stop::default();
        let counts: Vec<Arc<Count>> = (0..2)
            .map(|_| Arc::new(Count(AtomicUsize::new(0))))
            .collect();
        let mut listeners: Vec<Listener> = (0..2).map(|_| stop.listen()).collect();
        for (l, c) in listeners.iter_mut().zip(&counts) {
            let waker = Waker::from(c.clone());
            let mut cx = Context::from_waker(&waker);
            // Polled twice with the same waker: registered once.
            assert!(l.poll(&mut cx).is_pending());
            assert!(l.poll(&mut cx).is_pending());
        }
        stop.raise();
        for (l, c) in listeners.iter_mut().zip(&counts) {
            assert_eq!(c.0.load(Ordering::SeqCst), 1);
            let waker = Waker::from(c.clone());
            assert!(l.poll(&mut Context::from_waker(&waker)).is_ready());
        }
        // A listener made after the stop sees it at once.
        let waker = Waker::from(counts[0].clone());
        assert!(
            stop.listen()
                .poll(&mut Context::from_waker(&waker))
                .is_ready()
        );
    }
}
