//! Whether the calling thread holds CAP_NET_ADMIN: an EPERM is blamed on a
//! missing privilege only when it is missing (as root, the kernel's EPERM
//! is about the request, e.g. a value out of range).

/// Whether CAP_NET_ADMIN is in the calling thread's effective set (read
/// with `capget`; `true` when it cannot be read, so no hint is given).
pub(crate) fn has_net_admin() -> bool {
    rustix::thread::capabilities(None)
        .map(|c| {
            c.effective
                .contains(rustix::thread::CapabilitySet::NET_ADMIN)
        })
        .unwrap_or(true)
}

/// Whether CAP_SYS_ADMIN (needed by `setns` and `unshare`) is in the
/// calling thread's effective set (`true` when it cannot be read).
pub(crate) fn has_admin() -> bool {
    rustix::thread::capabilities(None)
        .map(|c| {
            c.effective
                .contains(rustix::thread::CapabilitySet::SYS_ADMIN)
        })
        .unwrap_or(true)
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
