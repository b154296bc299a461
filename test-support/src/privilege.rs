//! The privilege gate of the workspace's privileged tests: with
//! `TUN_REQUIRE_PRIVILEGED=1` (set by `.ci/run` and `scripts/test`) a test
//! that cannot get the privilege it needs fails; without it, it says why
//! and skips. Nothing passes by skipping in CI.

use std::fmt::Display;

/// Whether privileged tests must run rather than skip.
pub fn privileged_required() -> bool {
    std::env::var_os("TUN_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1")
}

/// Run `body` on a thread of its own, after `enter` moved that thread
/// into a network namespace of its own (for example tun-sys's
/// `unshare_network`), so the test never sees or touches the host's
/// interfaces. When `enter` fails for want of privilege (`denied` says
/// which errors those are) and privileges are not required, the test
/// prints why and returns; any other failure of `enter` fails it, and a
/// panic of `body` is the test's.
pub fn in_own_netns<E: Display + Send + 'static>(
    test: &str,
    enter: impl FnOnce() -> Result<(), E> + Send + 'static,
    denied: impl FnOnce(&E) -> bool,
    body: impl FnOnce() + Send + 'static,
) {
    let handle = std::thread::spawn(move || {
        enter()?;
        body();
        Ok::<(), E>(())
    });
    match handle.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) if !privileged_required() && denied(&e) => {
            eprintln!(
                "skipping {test}: {e}; run as root (TUN_REQUIRE_PRIVILEGED=1 to fail instead)"
            );
        }
        Ok(Err(e)) => panic!("{test}: cannot make a network namespace: {e}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
