//! Waking a thread that waits on a queue, from another thread: an eventfd
//! polled beside the queue's fd. Raising it makes every wait of every queue
//! it is attached to return [`Error::Interrupted`] (until it is cleared),
//! which is how a relay stops without waking up periodically.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFd, PollFlags};
use rustix::io::Errno;

use crate::error::{Error, Result, Syscall};

/// A raise-once, sticky interrupt for waits on queues
/// ([`Queue::set_interrupt`](crate::Queue::set_interrupt)). Clones share
/// one eventfd.
///
/// ```no_run
/// use tun_device::{Device, ErrorKind, Interrupt, RecvState};
/// let dev = Device::builder().name("t%d").offload(true).build()?;
/// let queue = dev.into_queues().remove(0);
/// let stop = Interrupt::new()?;
/// queue.set_interrupt(Some(stop.clone()));
/// let reader = std::thread::spawn(move || {
///     let (mut st, mut bufs, mut lens) = (RecvState::new(), vec![vec![0u8; 65536]; 8], [0; 8]);
///     loop {
///         match queue.recv_batch(&mut st, &mut bufs, &mut lens, 0) {
///             Ok(n) => println!("{n} packets"),
///             Err(e) if e.kind() == ErrorKind::Interrupted => return,
///             Err(e) => panic!("{e}"),
///         }
///     }
/// });
/// stop.raise()?;
/// reader.join().unwrap();
/// # Ok::<(), tun_device::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Interrupt {
    fd: Arc<OwnedFd>,
}

impl Interrupt {
    /// A new interrupt, not raised.
    pub fn new() -> Result<Self> {
        let fd = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| Error::syscall(Syscall::Eventfd, None, e))?;
        Ok(Self { fd: Arc::new(fd) })
    }

    /// Raise it: every wait on a queue it is attached to returns
    /// [`Error::Interrupted`] now and until [`Self::clear`].
    pub fn raise(&self) -> Result<()> {
        loop {
            match rustix::io::write(&*self.fd, &1u64.to_ne_bytes()) {
                // A counter at its maximum is raised already.
                Ok(_) | Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(Error::syscall(Syscall::Eventfd, None, e)),
            }
        }
    }

    /// Lower it again: waits wait again.
    pub fn clear(&self) {
        let mut count = [0u8; 8];
        // EAGAIN: not raised. Nothing else can fail on an eventfd read of
        // 8 bytes.
        while let Err(Errno::INTR) = rustix::io::read(&*self.fd, &mut count) {}
    }

    /// Whether it is raised.
    pub fn is_raised(&self) -> bool {
        self.sleep(Duration::ZERO)
    }

    /// Sleep up to `timeout` (a backoff that a raise cuts short); returns
    /// whether it is raised.
    pub fn sleep(&self, timeout: Duration) -> bool {
        let ts = rustix::event::Timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&*self.fd, PollFlags::IN)];
        loop {
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(n) => return n > 0,
                Err(Errno::INTR) => continue,
                // poll on one valid fd fails only for lack of memory: treat
                // it as not raised, the caller's loop looks again.
                Err(_) => return false,
            }
        }
    }
}

impl AsFd for Interrupt {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_is_sticky_until_cleared() {
        let i = Interrupt::new().unwrap();
        assert!(!i.is_raised());
        let other = i.clone();
        other.raise().unwrap();
        other.raise().unwrap();
        assert!(i.is_raised());
        assert!(i.is_raised(), "a look does not lower it");
        assert!(
            i.sleep(Duration::from_secs(10)),
            "a raised interrupt does not sleep"
        );
        i.clear();
        assert!(!other.is_raised());
    }

    #[test]
    fn a_raise_from_another_thread_ends_a_sleep() {
        let i = Interrupt::new().unwrap();
        let j = i.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            j.raise().unwrap();
        });
        let start = std::time::Instant::now();
        assert!(i.sleep(Duration::from_secs(10)));
        assert!(start.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
    }
}
