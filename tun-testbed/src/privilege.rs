//! The privilege gate of the workspace's privileged tests: a test that
//! cannot make its namespaces skips with a printed reason, unless
//! `TUN_REQUIRE_PRIVILEGED=1` (set by CI), where a missing privilege fails
//! the test, so that CI can never pass by skipping.
//!
//! These functions panic on purpose where the gate says "fail": that is
//! how a test fails. Everything else in this crate returns errors.

use std::fmt::Display;

use tun_device::NetNs;

use crate::namespaces::Testbed;

/// Whether privileged tests must run (`TUN_REQUIRE_PRIVILEGED=1`) rather
/// than skip: test-support's gate, which the tests of the crates below the
/// device (tun-sys, tun-offload) use too.
pub fn required() -> bool {
    tun_test_support::privileged_required()
}

/// `made`, or `None` with a printed reason when it failed and privileged
/// tests are not required; panics (fails the test) when they are.
pub fn gate<T, E: Display>(what: &str, made: Result<T, E>) -> Option<T> {
    match made {
        Ok(v) => Some(v),
        Err(e) if !required() => {
            eprintln!("skipped: cannot {what} ({e}); run as root");
            None
        }
        Err(e) => panic!("TUN_REQUIRE_PRIVILEGED=1 but cannot {what}: {e}"),
    }
}

/// A fresh private network namespace, through the [`gate`].
pub fn private_ns() -> Option<NetNs> {
    gate("make a network namespace", NetNs::new_anonymous())
}

/// A fresh private namespace without IPv6, through the [`gate`], so
/// that a device made in it receives nothing but what a test sends (no
/// router solicitations, no MLD reports). On a kernel without IPv6 there
/// is nothing to turn off; any other failure to turn it off panics.
pub fn quiet_ns() -> Option<NetNs> {
    let ns = private_ns()?;
    let quieted = ns.run(|| {
        Ok(["all", "default"].into_iter().try_for_each(|conf| {
            let p = format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6");
            match std::fs::write(&p, "1") {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("{p}: {e}")),
                _ => Ok(()),
            }
        }))
    });
    match quieted {
        Ok(Ok(())) => Some(ns),
        Ok(Err(e)) => panic!("turn IPv6 off in a fresh namespace: {e}"),
        Err(e) => panic!("enter a fresh namespace to turn IPv6 off: {e}"),
    }
}

/// A [`Testbed`] (two fresh namespaces), through the [`gate`].
pub fn testbed() -> Option<Testbed> {
    gate("make the test bed's namespaces", Testbed::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_passes_the_gate() {
        assert_eq!(gate::<_, String>("do it", Ok(3)), Some(3));
    }

    #[test]
    fn a_failure_skips_or_fails_as_the_environment_says() {
        let failed = std::panic::catch_unwind(|| gate::<(), _>("do it", Err("EPERM")));
        if required() {
            let e = failed.expect_err("a required privilege that is missing fails");
            let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(msg.contains("cannot do it: EPERM"), "{msg}");
        } else {
            assert_eq!(failed.ok(), Some(None));
        }
    }
}
