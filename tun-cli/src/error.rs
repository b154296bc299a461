//! The tool's errors: one typed value per failure, printed as one line
//! that says what failed, on which interface, why, and what to do, and
//! mapped to the exit code (1 for a runtime error, 2 for a usage error,
//! 130 for an interrupted `bench`).

use std::fmt;

use tun_device::ErrorKind;
use tun_device::netlink::NetlinkError;

/// Exit code of a runtime error.
pub const EXIT_RUNTIME: i32 = 1;
/// Exit code of a usage error (the same as clap's).
pub const EXIT_USAGE: i32 = 2;
/// Exit code after Ctrl-C (SIGINT) stopped a command that had not finished
/// (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// A device-layer call failed.
    Device {
        /// What the tool was doing, with the interface (`create tun0`).
        context: String,
        /// The device layer's error (it names the call and the errno).
        error: tun_device::Error,
    },
    /// A step of the bench's test bed failed (it names its own step).
    Testbed {
        /// What the tool was doing.
        context: String,
        /// The test bed's error (boxed: it holds the device layer's and
        /// netlink's errors, and this error travels through every result).
        error: Box<tun_testbed::Error>,
    },
    /// An rtnetlink request failed.
    Netlink {
        /// What the tool was doing, with the interface.
        context: String,
        /// The netlink error (request, errno, kernel message).
        error: NetlinkError,
    },
    /// A file or process operation failed.
    Io {
        /// What the tool was doing (`write capture.pcap`).
        context: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The tool refused: the state is not what the command needs.
    Refused {
        /// The whole message: what and why.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// The arguments do not make sense together (clap checks the rest).
    Usage(String),
    /// Ctrl-C stopped a command before it finished.
    Interrupted(String),
}

/// The result of a command.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl CliError {
    /// A device-layer error while doing `context`.
    pub fn device(context: impl Into<String>, error: tun_device::Error) -> Self {
        CliError::Device {
            context: context.into(),
            error,
        }
    }

    /// A test-bed error while doing `context`.
    pub fn testbed(context: impl Into<String>, error: tun_testbed::Error) -> Self {
        CliError::Testbed {
            context: context.into(),
            error: Box::new(error),
        }
    }

    /// A netlink error while doing `context`.
    pub fn netlink(context: impl Into<String>, error: NetlinkError) -> Self {
        CliError::Netlink {
            context: context.into(),
            error,
        }
    }

    /// An OS error while doing `context`.
    pub fn io(context: impl Into<String>, error: std::io::Error) -> Self {
        CliError::Io {
            context: context.into(),
            error,
        }
    }

    /// A refusal with a hint.
    pub fn refused(message: impl Into<String>, hint: impl Into<String>) -> Self {
        CliError::Refused {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Interrupted(_) => EXIT_INTERRUPTED,
            _ => EXIT_RUNTIME,
        }
    }
}

/// What to do about a device-layer error, unless its text says it already.
fn device_hint(error: &tun_device::Error, text: &str) -> Option<&'static str> {
    if text.contains("CAP_") {
        return None;
    }
    match error.kind() {
        ErrorKind::PermissionDenied => Some("run as root or grant CAP_NET_ADMIN"),
        ErrorKind::Busy => Some(
            "another process holds the device open: `tun show -d NAME` names it; \
             stop it, or use a multi-queue device",
        ),
        ErrorKind::AlreadyExists => Some("pick another name, or `tun delete NAME` first"),
        ErrorKind::NotFound => Some("check the name with `tun show`"),
        ErrorKind::Unsupported => Some("this kernel lacks the feature"),
        ErrorKind::InvalidConfig if matches!(error, tun_device::Error::FlagsMismatch { .. }) => {
            Some("use the flags it was created with (see `tun show NAME`), or recreate it")
        }
        _ => None,
    }
}

fn netlink_hint(error: &NetlinkError, text: &str) -> Option<&'static str> {
    if error.is_permission_denied() && !text.contains("CAP_") {
        Some("run as root or grant CAP_NET_ADMIN")
    } else if error.is_exists() {
        Some("it is configured already")
    } else {
        None
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Device { context, error } => {
                let text = error.to_string();
                write!(f, "{context}: {text}")?;
                if let Some(hint) = device_hint(error, &text) {
                    write!(f, "; {hint}")?;
                }
                Ok(())
            }
            CliError::Testbed { context, error } => {
                let text = error.to_string();
                write!(f, "{context}: {text}")?;
                if let Some(hint) = error.device_error().and_then(|d| device_hint(d, &text)) {
                    write!(f, "; {hint}")?;
                }
                Ok(())
            }
            CliError::Netlink { context, error } => {
                let text = error.to_string();
                write!(f, "{context}: {text}")?;
                if let Some(hint) = netlink_hint(error, &text) {
                    write!(f, "; {hint}")?;
                }
                Ok(())
            }
            CliError::Io { context, error } => {
                write!(f, "{context}: {error}")?;
                if error.kind() == std::io::ErrorKind::PermissionDenied {
                    f.write_str("; check the file's permissions, or run as root")?;
                }
                Ok(())
            }
            CliError::Refused { message, hint } => {
                f.write_str(message)?;
                if let Some(hint) = hint {
                    write!(f, "; {hint}")?;
                }
                Ok(())
            }
            CliError::Usage(message) => write!(f, "{message} (see `tun --help`)"),
            CliError::Interrupted(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for CliError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
        assert_eq!(CliError::refused("x", "y").exit_code(), 1);
        assert_eq!(CliError::Interrupted("x".into()).exit_code(), 130);
    }

    #[test]
    fn one_line_with_hint() {
        let e = CliError::refused("tun0 is a veth device, not TUN/TAP", "use `ip link`");
        let s = e.to_string();
        assert_eq!(s, "tun0 is a veth device, not TUN/TAP; use `ip link`");
        assert!(!s.contains('\n'));
    }
}
