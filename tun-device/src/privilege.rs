//! Whether the calling thread holds CAP_NET_ADMIN: an EPERM is blamed on a
//! missing privilege only when it is missing (as root, the kernel's EPERM
//! is about the request, e.g. a value out of range).

use rustix::thread::CapabilitySet;

/// Whether `cap` is in the calling thread's effective set (read with
/// `capget`; `true` when it cannot be read, so no hint is given).
fn has(cap: CapabilitySet) -> bool {
    rustix::thread::capabilities(None)
        .map(|c| c.effective.contains(cap))
        .unwrap_or(true)
}

/// Whether CAP_NET_ADMIN (rtnetlink changes, TUNSETIFF) is held.
pub(crate) fn has_net_admin() -> bool {
    has(CapabilitySet::NET_ADMIN)
}

/// Whether CAP_SYS_ADMIN (`setns`, `unshare`) is held.
pub(crate) fn has_admin() -> bool {
    has(CapabilitySet::SYS_ADMIN)
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_has_net_admin() {
        if rustix::process::geteuid().is_root() {
            assert!(super::has_net_admin());
        }
    }
}
