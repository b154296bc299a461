//! Replays every file under `fuzz/corpus/netlink_reply/` and
//! `fuzz/regressions/netlink_reply/` (the committed seeds, every crash ever
//! found) through the body the `netlink_reply` fuzzer runs, on the stable
//! toolchain, so fixes stay fixed without nightly. tun-offload's
//! `tests/fuzz_corpus.rs` does the same for the offload targets; this one
//! lives here because its body needs tun-device.

#[path = "../../fuzz/src/netlink_reply.rs"]
#[allow(dead_code, missing_docs, clippy::all)]
mod harness;

use std::path::Path;

#[test]
fn netlink_reply_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join("netlink_reply")) else {
            continue;
        };
        files.extend(entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()));
    }
    files.sort();
    // The eleven kernel captures and two concatenations of them.
    assert!(files.len() >= 13, "only {} inputs committed", files.len());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        if let Err(e) = std::panic::catch_unwind(|| harness::netlink_reply(&data)) {
            std::panic::resume_unwind(Box::new(format!(
                "{}: {:?}",
                file.display(),
                e.downcast_ref::<String>()
            )));
        }
    }
}

/// The body on every cut of every committed input: framing errors appear
/// exactly where the bytes stop, and nothing panics.
#[test]
fn netlink_reply_truncations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/netlink_reply");
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        for cut in 0..data.len() {
            harness::netlink_reply(&data[..cut]);
        }
    }
}
