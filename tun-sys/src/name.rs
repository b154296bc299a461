//! Interface names, validated before any `struct ifreq` is filled.

use core::fmt;

/// `IFNAMSIZ`: the size of the name field in `struct ifreq`, NUL included.
pub const IFNAMSIZ: usize = libc::IFNAMSIZ;

/// Why a string is not a valid interface name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is `len` bytes; at most `max` fit in `IFNAMSIZ` with the NUL.
    TooLong {
        /// Length of the name in bytes.
        len: usize,
        /// The longest name the kernel accepts.
        max: usize,
    },
    /// A NUL byte at byte offset `at`.
    Nul {
        /// Byte offset of the NUL.
        at: usize,
    },
    /// A `/` at byte offset `at` (names become sysfs paths).
    Slash {
        /// Byte offset of the slash.
        at: usize,
    },
    /// A `:` at byte offset `at` (reserved for legacy address aliases).
    Colon {
        /// Byte offset of the colon.
        at: usize,
    },
    /// A whitespace character at byte offset `at`.
    Whitespace {
        /// Byte offset of the whitespace.
        at: usize,
    },
    /// The name is `.` or `..`.
    Dots,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NameError::Empty => f.write_str("interface name is empty"),
            NameError::TooLong { len, max } => {
                write!(
                    f,
                    "interface name is {len} bytes long, at most {max} are allowed"
                )
            }
            NameError::Nul { at } => write!(f, "interface name has a NUL byte at offset {at}"),
            NameError::Slash { at } => write!(f, "interface name has a '/' at offset {at}"),
            NameError::Colon { at } => write!(f, "interface name has a ':' at offset {at}"),
            NameError::Whitespace { at } => {
                write!(f, "interface name has whitespace at offset {at}")
            }
            NameError::Dots => f.write_str("interface name cannot be \".\" or \"..\""),
        }
    }
}

impl std::error::Error for NameError {}

/// A valid Linux interface name, stored NUL-padded as `ifreq` wants it.
///
/// Rules are the kernel's `dev_valid_name`: non-empty, shorter than
/// [`IFNAMSIZ`], not `.` or `..`, and no NUL, `/`, `:` or whitespace. A
/// template such as `tun%d` is valid: the kernel replaces `%d` with the
/// first free number.
///
/// ```
/// use tun_sys::InterfaceName;
/// let name = InterfaceName::new("tun%d")?;
/// assert!(name.is_template());
/// assert!(InterfaceName::new("a/b").is_err());
/// # Ok::<(), tun_sys::NameError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InterfaceName {
    bytes: [u8; IFNAMSIZ],
    len: u8,
}

impl InterfaceName {
    /// Validate `name`.
    pub fn new(name: &str) -> Result<Self, NameError> {
        Self::from_bytes(name.as_bytes())
    }

    /// Validate a name given as bytes. The rules are the same as for
    /// [`Self::new`]; the bytes need not be UTF-8 (the kernel does not ask
    /// for it), so [`Self::as_str`] is `None` for such a name.
    pub fn from_bytes(name: &[u8]) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() >= IFNAMSIZ {
            return Err(NameError::TooLong {
                len: name.len(),
                max: IFNAMSIZ - 1,
            });
        }
        if name == b"." || name == b".." {
            return Err(NameError::Dots);
        }
        for (at, &b) in name.iter().enumerate() {
            match b {
                0 => return Err(NameError::Nul { at }),
                b'/' => return Err(NameError::Slash { at }),
                b':' => return Err(NameError::Colon { at }),
                // The kernel's isspace(): space, \t \n \v \f \r.
                b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' => {
                    return Err(NameError::Whitespace { at });
                }
                _ => {}
            }
        }
        let mut bytes = [0u8; IFNAMSIZ];
        bytes[..name.len()].copy_from_slice(name);
        Ok(Self {
            bytes,
            len: name.len() as u8,
        })
    }

    /// Read a name the kernel wrote into an `ifreq` (up to the first NUL).
    ///
    /// Returns `None` if the kernel's bytes are not a valid name (which a
    /// correct kernel never produces).
    pub fn from_ifreq_bytes(raw: &[libc::c_char; IFNAMSIZ]) -> Option<Self> {
        let mut bytes = [0u8; IFNAMSIZ];
        for (d, s) in bytes.iter_mut().zip(raw.iter()) {
            *d = *s as u8;
        }
        let len = bytes.iter().position(|&b| b == 0)?;
        Self::from_bytes(&bytes[..len]).ok()
    }

    /// The name as bytes, without the NUL padding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The name as a string, if it is UTF-8 (names given as `&str` always are).
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(self.as_bytes()).ok()
    }

    /// Whether the kernel will number the name (it contains `%`).
    pub fn is_template(&self) -> bool {
        self.as_bytes().contains(&b'%')
    }

    /// The NUL-padded bytes for `ifr_name`.
    pub(crate) fn to_ifreq_bytes(self) -> [libc::c_char; IFNAMSIZ] {
        let mut out = [0 as libc::c_char; IFNAMSIZ];
        for (d, s) in out.iter_mut().zip(self.bytes.iter()) {
            *d = *s as libc::c_char;
        }
        out
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

impl fmt::Debug for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "InterfaceName({:?})",
            String::from_utf8_lossy(self.as_bytes())
        )
    }
}

impl core::str::FromStr for InterfaceName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for InterfaceName {
    type Error = NameError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names_and_templates() {
        for ok in ["tun0", "t", "tun%d", "a-b_c.d", "123456789012345", "wg-ü"] {
            let n = InterfaceName::new(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(n.as_str(), Some(ok));
        }
        assert!(InterfaceName::new("tun%d").unwrap().is_template());
        assert!(!InterfaceName::new("tun0").unwrap().is_template());
    }

    #[test]
    fn bytes_need_not_be_utf8() {
        let n = InterfaceName::from_bytes(b"tun\xff").unwrap();
        assert_eq!(n.as_bytes(), b"tun\xff");
        assert_eq!(n.as_str(), None);
    }

    #[test]
    fn rejects_bad_names_with_the_reason() {
        assert_eq!(InterfaceName::new(""), Err(NameError::Empty));
        assert_eq!(
            InterfaceName::new("1234567890123456"),
            Err(NameError::TooLong { len: 16, max: 15 })
        );
        assert_eq!(InterfaceName::new("tu\0n"), Err(NameError::Nul { at: 2 }));
        assert_eq!(InterfaceName::new("a/b"), Err(NameError::Slash { at: 1 }));
        assert_eq!(
            InterfaceName::new("eth0:1"),
            Err(NameError::Colon { at: 4 })
        );
        assert_eq!(
            InterfaceName::new("tun 0"),
            Err(NameError::Whitespace { at: 3 })
        );
        assert_eq!(
            InterfaceName::new("\ttun"),
            Err(NameError::Whitespace { at: 0 })
        );
        assert_eq!(InterfaceName::new("."), Err(NameError::Dots));
        assert_eq!(InterfaceName::new(".."), Err(NameError::Dots));
    }

    #[test]
    fn error_texts() {
        assert_eq!(NameError::Empty.to_string(), "interface name is empty");
        assert_eq!(
            NameError::TooLong { len: 16, max: 15 }.to_string(),
            "interface name is 16 bytes long, at most 15 are allowed"
        );
        assert_eq!(
            NameError::Nul { at: 2 }.to_string(),
            "interface name has a NUL byte at offset 2"
        );
        assert_eq!(
            NameError::Slash { at: 1 }.to_string(),
            "interface name has a '/' at offset 1"
        );
        assert_eq!(
            NameError::Colon { at: 4 }.to_string(),
            "interface name has a ':' at offset 4"
        );
        assert_eq!(
            NameError::Whitespace { at: 3 }.to_string(),
            "interface name has whitespace at offset 3"
        );
        assert_eq!(
            NameError::Dots.to_string(),
            "interface name cannot be \".\" or \"..\""
        );
    }

    #[test]
    fn ifreq_round_trip() {
        let n = InterfaceName::new("tun7").unwrap();
        let raw = n.to_ifreq_bytes();
        assert_eq!(raw[4], 0);
        assert_eq!(InterfaceName::from_ifreq_bytes(&raw), Some(n));
        let unterminated = [b'a' as libc::c_char; IFNAMSIZ];
        assert_eq!(InterfaceName::from_ifreq_bytes(&unterminated), None);
    }
}
