//! What every command shares: network namespaces by name or path, user and
//! group names, the processes that hold a device open, Ctrl-C, and output
//! that survives a closed pipe.

use std::io::Write;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde::Serialize;
use tun_device::NetNs;
use tun_device::netlink::Netlink;
use tun_testbed::Cancel;

use crate::error::{CliError, EXIT_INTERRUPTED, Result};

/// Open the namespace `spec` names: a path (anything with a `/`, such as
/// `/proc/PID/ns/net`) or a name `ip netns add` made (`/run/netns/NAME`).
///
/// What it opens must be a network namespace: the kernel names an nsfs
/// file's link in /proc/self/fd `net:[INODE]`; anything else (a regular
/// file, another kind of namespace) is refused with its path before any
/// `setns` could fail with a bare EINVAL.
pub fn open_netns(spec: &str) -> Result<NetNs> {
    let path = if spec.contains('/') {
        spec.to_string()
    } else {
        format!("/run/netns/{spec}")
    };
    let hint = "give a name from `ip netns list` or a path such as /proc/PID/ns/net";
    let ns = NetNs::open(&path).map_err(|e| {
        // The device layer's text repeats the path: give the cause alone.
        let why = match (e.kind(), e.errno()) {
            (tun_device::ErrorKind::NotFound, _) => "no such file".to_string(),
            (_, Some(errno)) => std::io::Error::from_raw_os_error(errno).to_string(),
            _ => e.to_string(),
        };
        CliError::refused(format!("--netns {path}: cannot open it: {why}"), hint)
    })?;
    let link = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&ns)
    ))
    .map(|p| p.display().to_string())
    .unwrap_or_default();
    if !link.starts_with("net:[") {
        let what = match link.split_once(':') {
            Some((kind, _)) if link.ends_with(']') => format!("a {kind} namespace"),
            _ => "a file".to_string(),
        };
        return Err(CliError::refused(
            format!("--netns {path}: not a network namespace (it is {what})"),
            hint,
        ));
    }
    Ok(ns)
}

/// The identity of a namespace value (to tell whether two are the same).
pub fn netns_id(ns: &NetNs) -> Option<(u64, u64)> {
    ns_id(ns)
}

/// Run `f` inside `ns` (on a short-lived thread), or here without one.
pub fn in_netns<T: Send>(ns: Option<&NetNs>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    match ns {
        None => f(),
        Some(ns) => {
            let mut out = None;
            let res = ns.run(|| {
                out = Some(f());
                Ok(())
            });
            match (res, out) {
                (_, Some(r)) => r,
                (Err(e), None) => Err(CliError::device("enter network namespace", e)),
                (Ok(()), None) => Err(CliError::refused(
                    "enter network namespace: nothing ran",
                    "report this",
                )),
            }
        }
    }
}

/// Open rtnetlink in the calling thread's namespace.
pub fn netlink() -> Result<Netlink> {
    Netlink::open().map_err(|e| CliError::netlink("open rtnetlink", e))
}

/// The name of user `uid`, through the system's name service (NSS:
/// files, LDAP, systemd-userdb, whatever nsswitch.conf says).
pub fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// The name of group `gid`, through the system's name service.
pub fn group_name(gid: u32) -> Option<String> {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
}

/// A uid given as a number or a user name (looked up through NSS).
pub fn parse_user(s: &str) -> Result<u32> {
    s.parse()
        .ok()
        .or_else(|| {
            nix::unistd::User::from_name(s)
                .ok()
                .flatten()
                .map(|u| u.uid.as_raw())
        })
        .ok_or_else(|| CliError::Usage(format!("unknown user {s:?}: give a uid or a user name")))
}

/// A gid given as a number or a group name (looked up through NSS).
pub fn parse_group(s: &str) -> Result<u32> {
    s.parse()
        .ok()
        .or_else(|| {
            nix::unistd::Group::from_name(s)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw())
        })
        .ok_or_else(|| CliError::Usage(format!("unknown group {s:?}: give a gid or a group name")))
}

/// A process holding a TUN/TAP device open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`).
    pub comm: String,
    /// Its file descriptors attached to the device.
    pub fds: Vec<u32>,
}

/// The identity (device and inode of its nsfs file) of a namespace fd.
fn ns_id(fd: impl std::os::fd::AsFd) -> Option<(u64, u64)> {
    let st = rustix::fs::fstat(fd).ok()?;
    Some((st.st_dev as u64, st.st_ino as u64))
}

/// The network namespace of the calling thread, as an identity.
pub fn current_ns_id() -> Option<(u64, u64)> {
    ns_id(std::fs::File::open("/proc/thread-self/ns/net").ok()?)
}

/// Whether fd `fd` of process `pid` (a TUN/TAP queue) belongs to a device
/// in namespace `ns`: a copy of the fd (`pidfd_getfd`, Linux 5.6+, as
/// root) asked with `TUNGETDEVNETNS`. Where that cannot be had (an older
/// kernel, no ptrace right), the process's own namespace stands in.
fn fd_in_ns(pid: u32, fd: u32, ns: (u64, u64)) -> bool {
    let exact = (|| {
        let pidfd = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?,
            rustix::process::PidfdFlags::empty(),
        )
        .ok()?;
        let copy = rustix::process::pidfd_getfd(
            &pidfd,
            i32::try_from(fd).ok()?,
            rustix::process::PidfdGetfdFlags::empty(),
        )
        .ok()?;
        let dev_ns = tun_sys::get_dev_netns(std::os::fd::AsFd::as_fd(&copy)).ok()?;
        ns_id(&dev_ns)
    })();
    match exact {
        Some(id) => id == ns,
        None => {
            std::fs::File::open(format!("/proc/{pid}/ns/net"))
                .ok()
                .and_then(ns_id)
                == Some(ns)
        }
    }
}

/// Every process with an fd attached to the device `name` of the calling
/// thread's network namespace, from the `iff:` line the TUN driver writes
/// into /proc/PID/fdinfo/FD. That line has no namespace, so each match is
/// checked against the device's namespace ([`fd_in_ns`]): a device of the
/// same name in another namespace is not this one.
pub fn holders(name: &str) -> Vec<Holder> {
    let here = current_ns_id();
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fdinfo")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Some(n) = fd.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(info) = std::fs::read_to_string(fd.path()) else {
                continue;
            };
            let attached = info
                .lines()
                .any(|l| l.strip_prefix("iff:").is_some_and(|v| v.trim() == name));
            if attached && here.is_some_and(|ns| fd_in_ns(pid, n, ns)) {
                let comm = std::fs::read_to_string(p.path().join("comm"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default();
                match out.iter_mut().find(|h: &&mut Holder| h.pid == pid) {
                    Some(h) => h.fds.push(n),
                    None => out.push(Holder {
                        pid,
                        comm,
                        fds: vec![n],
                    }),
                }
            }
        }
    }
    out
}

/// Print `text` to stdout; a closed pipe (`tun show | head`) ends the
/// process quietly with success instead of a panic.
pub fn out(text: impl AsRef<str>) {
    let mut o = std::io::stdout().lock();
    let res = o
        .write_all(text.as_ref().as_bytes())
        .and_then(|()| o.write_all(b"\n"))
        .and_then(|()| o.flush());
    if let Err(e) = res {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

static PRETTY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Indent JSON output from now on (`-p`).
pub fn set_pretty(on: bool) {
    PRETTY.store(on, Ordering::Relaxed);
}

/// Print `value` as one line of JSON (indented with `-p`).
pub fn out_json<T: Serialize>(value: &T) {
    let text = if PRETTY.load(Ordering::Relaxed) {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    match text {
        Ok(s) => out(s),
        Err(e) => eprintln!("tun: cannot encode JSON output: {e}"),
    }
}

/// Set by the first Ctrl-C; the bench's test bed watches it too.
static INTERRUPTED: LazyLock<Cancel> = LazyLock::new(Cancel::new);
/// 0: stop at the next check; 1: also exit after a grace period.
static GRACE: AtomicU8 = AtomicU8::new(0);

/// Whether Ctrl-C (SIGINT) or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.is_cancelled()
}

/// The token Ctrl-C cancels (for the test bed's traffic runs).
pub fn cancel_token() -> Cancel {
    INTERRUPTED.clone()
}

/// Catch Ctrl-C and SIGTERM: the first sets the flag [`interrupted`]
/// reports, a second exits at once. With `grace`, the process also exits
/// on its own that long after the first, should the command be inside a
/// call it cannot leave early (everything the commands create goes with
/// the process: non-persistent devices, anonymous namespaces).
pub fn catch_interrupt(grace: Option<Duration>) {
    if grace.is_some() {
        GRACE.store(1, Ordering::Relaxed);
    }
    let res = ctrlc::set_handler(move || {
        if INTERRUPTED.is_cancelled() {
            std::process::exit(EXIT_INTERRUPTED);
        }
        INTERRUPTED.cancel();
        if let (Some(g), 1) = (grace, GRACE.load(Ordering::Relaxed)) {
            std::thread::spawn(move || {
                std::thread::sleep(g);
                eprintln!("tun: interrupted; exiting (the kernel removes what was left)");
                std::process::exit(EXIT_INTERRUPTED);
            });
        }
    });
    if let Err(e) = res {
        eprintln!("tun: warning: cannot catch Ctrl-C: {e}");
    }
}
