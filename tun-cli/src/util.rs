//! What every command shares: network namespaces by name or path, user and
//! group names, the processes that hold a device open, Ctrl-C, and output
//! that survives a closed pipe.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use serde::Serialize;
use tun_device::NetNs;
use tun_device::netlink::Netlink;

use crate::error::{CliError, EXIT_INTERRUPTED, Result};

/// Open the namespace `spec` names: a path (anything with a `/`, such as
/// `/proc/PID/ns/net`) or a name `ip netns add` made (`/run/netns/NAME`).
pub fn open_netns(spec: &str) -> Result<NetNs> {
    let res = if spec.contains('/') {
        NetNs::open(spec)
    } else {
        NetNs::named(spec)
    };
    res.map_err(|e| {
        let what = if spec.contains('/') {
            spec.to_string()
        } else {
            format!("/run/netns/{spec}")
        };
        CliError::refused(
            format!("cannot open network namespace {what}: {e}"),
            "give a name from `ip netns list` or a path such as /proc/PID/ns/net",
        )
    })
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

fn id_db(path: &str, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let mut it = l.split(':');
        let name = it.next()?;
        let _pw = it.next()?;
        (it.next()?.parse::<u32>().ok()? == id).then(|| name.to_string())
    })
}

fn id_by_name(path: &str, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let mut it = l.split(':');
        (it.next()? == name).then_some(())?;
        let _pw = it.next()?;
        it.next()?.parse().ok()
    })
}

/// The name of user `uid` from /etc/passwd.
pub fn user_name(uid: u32) -> Option<String> {
    id_db("/etc/passwd", uid)
}

/// The name of group `gid` from /etc/group.
pub fn group_name(gid: u32) -> Option<String> {
    id_db("/etc/group", gid)
}

/// A uid given as a number or a name.
pub fn parse_user(s: &str) -> Result<u32> {
    s.parse()
        .ok()
        .or_else(|| id_by_name("/etc/passwd", s))
        .ok_or_else(|| CliError::Usage(format!("unknown user {s:?}: give a uid or a user name")))
}

/// A gid given as a number or a name.
pub fn parse_group(s: &str) -> Result<u32> {
    s.parse()
        .ok()
        .or_else(|| id_by_name("/etc/group", s))
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

/// Every process with an fd attached to the device `name`, from the `iff:`
/// line the TUN driver writes into /proc/PID/fdinfo/FD. The line has no
/// namespace: a device of the same name in another namespace is listed too.
pub fn holders(name: &str) -> Vec<Holder> {
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
            if attached {
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

/// Print `value` as one line of JSON.
pub fn out_json<T: Serialize>(value: &T) {
    match serde_json::to_string(value) {
        Ok(s) => out(s),
        Err(e) => eprintln!("tun: cannot encode JSON output: {e}"),
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// 0: stop at the next check; 1: also exit after a grace period.
static GRACE: AtomicU8 = AtomicU8::new(0);

/// Whether Ctrl-C (SIGINT) or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
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
        if INTERRUPTED.swap(true, Ordering::Relaxed) {
            std::process::exit(EXIT_INTERRUPTED);
        }
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
