//! The test bed's error: the step that failed, and the true cause.

use std::fmt;
use std::io;

use tun_device::netlink::NetlinkError;

/// Why a test-bed step failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A device-layer call (namespace, device) failed.
    Device {
        /// The step (`create the namespace of side A`).
        step: String,
        /// The device layer's error.
        error: tun_device::Error,
    },
    /// An rtnetlink request failed.
    Netlink {
        /// The step (`add the veth pair veth-a/veth-b`).
        step: String,
        /// The request's error.
        error: NetlinkError,
    },
    /// A socket call or a file write failed.
    Io {
        /// The step (`bind the UDP receiver to 10.99.0.2:5202`).
        step: String,
        /// The OS error.
        error: io::Error,
    },
    /// An external program (iproute2, ethtool) exited unsuccessfully.
    Command {
        /// The command line (`ip link set tnl0 up`).
        command: String,
        /// How it exited.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A run that had to arrive whole did not.
    Incomplete {
        /// What was asked for (`8388608 bytes over TCP (IPv6 false)`).
        run: String,
        /// What the run measured.
        traffic: crate::Traffic,
    },
    /// A traffic thread panicked (a bug in the test bed).
    Panicked(&'static str),
    /// The run was cancelled through its [`Cancel`](crate::Cancel) token.
    Cancelled,
}

/// The test bed's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn device(step: impl Into<String>, error: tun_device::Error) -> Self {
        Error::Device {
            step: step.into(),
            error,
        }
    }

    pub(crate) fn netlink(step: impl Into<String>, error: NetlinkError) -> Self {
        Error::Netlink {
            step: step.into(),
            error,
        }
    }

    pub(crate) fn io(step: impl Into<String>, error: io::Error) -> Self {
        Error::Io {
            step: step.into(),
            error,
        }
    }

    /// Whether the run was cancelled rather than failed.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }

    /// The device layer's error, when a device-layer call failed.
    pub fn device_error(&self) -> Option<&tun_device::Error> {
        match self {
            Error::Device { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Device { step, error } => write!(f, "{step}: {error}"),
            Error::Netlink { step, error } => write!(f, "{step}: {error}"),
            Error::Io { step, error } => write!(f, "{step}: {error}"),
            Error::Command {
                command,
                status,
                stderr,
            } => write!(f, "{command}: {status}: {stderr}"),
            Error::Incomplete { run, traffic: t } => write!(
                f,
                "{run}: {} bytes intact (intact {}), {} damaged, {} lost of {} sent",
                t.bytes, t.intact, t.damaged, t.lost, t.sent
            ),
            Error::Panicked(what) => write!(f, "the {what} thread panicked"),
            Error::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Device { error, .. } => Some(error),
            Error::Netlink { error, .. } => Some(error),
            Error::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_step_and_the_cause() {
        let e = Error::io(
            "send UDP datagrams to 10.99.0.2:5202",
            io::Error::from_raw_os_error(90),
        );
        let s = e.to_string();
        assert!(
            s.starts_with("send UDP datagrams to 10.99.0.2:5202: "),
            "{s}"
        );
        assert!(s.contains("os error 90"), "{s}");
        assert!(!s.contains("socket(AF_INET"), "{s}");
        assert!(Error::Cancelled.is_cancelled());
    }
}
