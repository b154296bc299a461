//! An owned fd registered with tokio's reactor (feature `tokio`), so that
//! crates that forbid `unsafe` can wait on a queue's readiness.
//!
//! tokio's `AsyncFd::register_with_interest` is an `unsafe fn`: the caller
//! vouches that the fd stays open, keeps referring to the same open file
//! description, and is what every `as_raw_fd` returns, for as long as the
//! `AsyncFd` holds it. For an arbitrary `T: AsRawFd` nobody can promise
//! that; for an [`OwnedFd`] that nobody can reach mutably it holds by
//! construction, which is what [`TokioFd`] is.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// An [`OwnedFd`] registered with the current tokio runtime's reactor.
///
/// Only shared access to the `AsyncFd` is given out
/// ([`TokioFd::async_fd`]): every readiness call of tokio takes `&self`,
/// and `&mut` access (`AsyncFd::get_mut`) would let safe code replace or
/// close the fd while it is registered. Dropping it, or
/// [`TokioFd::into_inner`], deregisters the fd first and closes it (or
/// hands it back) after.
///
/// Readiness belongs to the open file description: register a duplicate
/// (`try_clone`) of an fd whose owner cannot be handed over, and the
/// reactor reports the readiness of the original.
pub struct TokioFd(AsyncFd<OwnedFd>);

impl TokioFd {
    /// Register `fd` (which should be non-blocking) for `interest` with the
    /// reactor of the current tokio runtime. On failure the fd is closed
    /// and tokio's error returned.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled (as tokio's own
    /// constructors do).
    pub fn register(fd: OwnedFd, interest: Interest) -> io::Result<TokioFd> {
        // SAFETY: tokio requires the fd returned by `as_raw_fd` to be
        // open, to keep referring to the same file description, and to be
        // what every `as_raw_fd` returns, until the `AsyncFd` is dropped,
        // `into_inner` is called or it is forgotten. `OwnedFd` returns the
        // number it holds from every `as_raw_fd`, owns it (nothing else
        // closes it: closing a number one does not own needs `unsafe`) and
        // closes it only when dropped, which the `AsyncFd` does only after
        // deregistering it (its `Drop` and `into_inner`). Replacing the fd
        // in place (assignment, `dup2` onto it) needs `&mut OwnedFd`, which
        // `TokioFd` never gives out: it keeps the `AsyncFd` private and
        // hands out `&AsyncFd`, through which tokio offers only `&OwnedFd`.
        // Forgetting the `TokioFd` forgets the `OwnedFd` with it, so the
        // fd stays open.
        let res = unsafe { AsyncFd::register_with_interest(fd, interest) };
        match res {
            Ok(fd) => Ok(TokioFd(fd)),
            Err(e) => Err(e.into_parts().1),
        }
    }

    /// The registration: readiness waits, `try_io`, polls.
    pub fn async_fd(&self) -> &AsyncFd<OwnedFd> {
        &self.0
    }

    /// Deregister and give the fd back.
    pub fn into_inner(self) -> OwnedFd {
        self.0.into_inner()
    }
}

impl AsFd for TokioFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.get_ref().as_fd()
    }
}

impl fmt::Debug for TokioFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TokioFd").field(self.0.get_ref()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::path::PathBuf;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .unwrap()
    }

    /// What fd number `fd` of this process refers to (`socket:[inode]`),
    /// if it is open: a number reused by a test running beside this one
    /// refers to something else.
    fn target(fd: i32) -> Option<PathBuf> {
        std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()
    }

    #[test]
    fn a_registered_duplicate_reports_the_originals_readiness() {
        let rt = runtime();
        let (mut here, mut there) = UnixStream::pair().unwrap();
        here.set_nonblocking(true).unwrap();
        let file = target(here.as_raw_fd()).unwrap();
        let dup: OwnedFd = here.as_fd().try_clone_to_owned().unwrap();
        let dup_no = dup.as_raw_fd();
        rt.block_on(async {
            let reg = TokioFd::register(dup, Interest::READABLE).unwrap();
            assert_eq!(reg.as_fd().as_raw_fd(), dup_no);
            assert_eq!(reg.async_fd().get_ref().as_raw_fd(), dup_no);
            let idle = tokio::time::timeout(
                std::time::Duration::from_millis(50),
                reg.async_fd().readable(),
            );
            assert!(idle.await.is_err(), "ready with nothing sent");
            // Data for the original makes the duplicate readable; a read
            // through the original consumes it.
            there.write_all(b"ping").unwrap();
            let mut guard = reg.async_fd().readable().await.unwrap();
            let mut buf = [0u8; 8];
            assert_eq!(here.read(&mut buf).unwrap(), 4);
            guard.clear_ready();
            // Deregistered and handed back: the same fd, still open.
            let back = reg.into_inner();
            assert_eq!(back.as_raw_fd(), dup_no);
            assert_eq!(target(dup_no).as_ref(), Some(&file));
        });
    }

    #[test]
    fn dropping_the_registration_closes_its_fd() {
        let rt = runtime();
        let (here, _there) = UnixStream::pair().unwrap();
        let file = target(here.as_raw_fd()).unwrap();
        let dup: OwnedFd = here.as_fd().try_clone_to_owned().unwrap();
        let no = dup.as_raw_fd();
        rt.block_on(async {
            let reg = TokioFd::register(dup, Interest::READABLE | Interest::WRITABLE).unwrap();
            assert_eq!(target(no).as_ref(), Some(&file));
            drop(reg);
        });
        assert_ne!(target(no).as_ref(), Some(&file), "fd {no} left open");
    }

    #[test]
    fn a_refused_registration_closes_the_fd_and_says_why() {
        let rt = runtime();
        // epoll refuses regular files (EPERM).
        let path = std::env::temp_dir().join(format!("tokio-fd-test-{}", std::process::id()));
        let f = std::fs::File::create(&path).unwrap();
        let file = target(f.as_raw_fd()).unwrap();
        std::fs::remove_file(&path).unwrap();
        let fd = OwnedFd::from(f);
        let no = fd.as_raw_fd();
        let err = rt.block_on(async { TokioFd::register(fd, Interest::READABLE).unwrap_err() });
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        assert_ne!(target(no).as_ref(), Some(&file), "fd {no} left open");
    }
}
