//! Network namespaces as values: open one by path or name, make a fresh
//! one, and run code inside one on a short-lived thread, so a device can be
//! created in (or moved to) a namespace without moving the caller's
//! threads.
//!
//! A namespace is entered with `setns(2)` on a new thread only: the
//! caller's thread never changes namespace. Sockets and `/dev/net/tun`
//! file descriptors keep the namespace they were opened in, which is what
//! lets a device be configured from anywhere once created.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::error::{Error, NsAction, Result, Syscall};

/// An open network namespace (an fd of `/proc/.../ns/net` or
/// `/run/netns/NAME`). The namespace lives at least as long as this value.
#[derive(Debug)]
pub struct NetNs {
    fd: OwnedFd,
    /// Where it was opened from, for error messages.
    path: Option<PathBuf>,
}

impl NetNs {
    fn error(&self, action: NsAction, errno: i32) -> Error {
        Error::Namespace {
            path: self.path.clone(),
            action,
            errno,
        }
    }

    /// Enter this namespace on the calling thread.
    fn enter(&self) -> Result<()> {
        tun_sys::enter_network(self.fd.as_fd()).map_err(|e| self.error(NsAction::Enter, e.errno()))
    }
}

impl NetNs {
    /// The namespace at `path` (`/proc/PID/ns/net`, `/run/netns/NAME`, a
    /// bind mount).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::Namespace {
            path: Some(path.to_owned()),
            action: NsAction::Open,
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        })?;
        Ok(Self {
            fd: file.into(),
            path: Some(path.to_owned()),
        })
    }

    /// The namespace `ip netns add NAME` made (`/run/netns/NAME`).
    pub fn named(name: &str) -> Result<Self> {
        Self::open(PathBuf::from("/run/netns").join(name))
    }

    /// The calling thread's namespace.
    pub fn current() -> Result<Self> {
        Self::open("/proc/thread-self/ns/net")
    }

    /// A new, empty namespace (only a loopback interface, down), anonymous:
    /// it disappears when this value and everything opened inside it are
    /// gone. Needs CAP_SYS_ADMIN.
    pub fn new_anonymous() -> Result<Self> {
        std::thread::scope(|s| {
            s.spawn(|| {
                tun_sys::unshare_network()?;
                Self::current()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
            .map(|mut ns| {
                ns.path = None;
                ns
            })
        })
    }

    /// Wrap an fd that refers to a network namespace.
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self { fd, path: None }
    }

    /// A second handle to the same namespace.
    pub fn try_clone(&self) -> Result<Self> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| self.error(NsAction::Dup, e.raw_os_error().unwrap_or(libc::EMFILE)))?;
        Ok(Self {
            fd,
            path: self.path.clone(),
        })
    }

    /// Whether the calling thread is in this namespace already.
    pub fn is_current(&self) -> bool {
        let here = std::fs::metadata("/proc/thread-self/ns/net");
        let this = rustix::fs::fstat(&self.fd);
        match (here, this) {
            (Ok(h), Ok(t)) => {
                use std::os::unix::fs::MetadataExt;
                h.dev() == t.st_dev && h.ino() == t.st_ino
            }
            _ => false,
        }
    }

    /// Run `f` on a new thread inside this namespace and return its result
    /// (on the calling thread directly when it is in this namespace
    /// already). Sockets and devices `f` opens stay in this namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        if self.is_current() {
            return f();
        }
        std::thread::scope(|s| {
            let thread = std::thread::Builder::new()
                .name("netns".into())
                .spawn_scoped(s, move || {
                    self.enter()?;
                    f()
                })
                .map_err(|e| Error::syscall_io(Syscall::SpawnThread, None, &e, libc::EAGAIN))?;
            thread
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Spawn a thread that lives in this namespace and runs `f` (for
    /// servers and traffic generators in tests and tools).
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<Result<T>>> {
        let ns = self.try_clone()?;
        std::thread::Builder::new()
            .spawn(move || {
                ns.enter()?;
                Ok(f())
            })
            .map_err(|e| Error::syscall_io(Syscall::SpawnThread, None, &e, libc::EAGAIN))
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for NetNs {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<OwnedFd> for NetNs {
    fn from(fd: OwnedFd) -> Self {
        Self::from_fd(fd)
    }
}
