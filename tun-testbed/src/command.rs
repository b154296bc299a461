//! External programs run inside a namespace of the bed (iproute2,
//! ethtool): the tests' independent readers and writers of the kernel's
//! state, whose output says what the kernel holds without this
//! workspace's own netlink code.

use std::process::Command;

use tun_device::NetNs;

use crate::error::{Error, Result};
use crate::namespaces::run_in;

/// Run `cmd args` inside `ns` and return its standard output; a program
/// that cannot start, or that exits unsuccessfully, is an error naming
/// the command line (and, for the latter, what it printed on stderr).
pub fn output(ns: &NetNs, cmd: &str, args: &[&str]) -> Result<String> {
    let line = std::iter::once(cmd)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    run_in(ns, &format!("run {line}"), || {
        let out = Command::new(cmd)
            .args(args)
            .output()
            .map_err(|e| Error::io(format!("start {line}"), e))?;
        if !out.status.success() {
            return Err(Error::Command {
                command: line.clone(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    })
}
