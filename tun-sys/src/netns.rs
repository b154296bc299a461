//! Network namespaces: move the calling thread into a fresh one, or into
//! one given by an fd. Tests and tools use this to keep their devices away
//! from the host's interfaces.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::{Error, Op};

/// `unshare(CLONE_NEWNET)`: move the calling thread (only it) into a new,
/// empty network namespace. Devices created afterwards by this thread live
/// there and vanish with it once nothing refers to it any more.
///
/// Needs CAP_SYS_ADMIN. Other threads of the process are not affected.
pub fn unshare_network() -> Result<(), Error> {
    // SAFETY: unshare has no memory preconditions; CLONE_NEWNET only changes
    // which namespace the calling thread's future sockets and devices use.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc < 0 {
        Err(Error::last(Op::UnshareNetns))
    } else {
        Ok(())
    }
}

/// `setns(fd, CLONE_NEWNET)`: move the calling thread into the network
/// namespace `ns` refers to (for example one from [`crate::get_dev_netns`]
/// or `/run/netns/NAME`).
pub fn enter_network(ns: BorrowedFd<'_>) -> Result<(), Error> {
    // SAFETY: setns only reads the fd number; the kernel checks its type.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        Err(Error::last(Op::SetNetns))
    } else {
        Ok(())
    }
}
