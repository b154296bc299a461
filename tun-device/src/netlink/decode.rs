//! The primitives every reply decoder is built on: the [`Malformed`] error,
//! iteration over a buffer of netlink attributes, and readers of attribute
//! values that check their length.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

// include/uapi/linux/netlink.h
pub(super) const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff; // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER

/// Why a kernel reply could not be decoded.
#[derive(Debug)]
pub(super) struct Malformed(pub(super) String);

impl Malformed {
    pub(super) fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

pub(super) fn read_array<const N: usize>(buf: &[u8], offset: usize) -> Option<[u8; N]> {
    buf.get(offset..offset.checked_add(N)?)?.try_into().ok()
}

pub(super) fn read_u16(buf: &[u8], offset: usize) -> Option<u16> {
    read_array(buf, offset).map(u16::from_ne_bytes)
}

pub(super) fn read_u32(buf: &[u8], offset: usize) -> Option<u32> {
    read_array(buf, offset).map(u32::from_ne_bytes)
}

pub(super) fn read_i32(buf: &[u8], offset: usize) -> Option<i32> {
    read_array(buf, offset).map(i32::from_ne_bytes)
}

/// Rounds up to the 4-byte alignment of netlink messages and attributes.
pub(super) fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// Iterates over the netlink attributes in `buf`: `(type, value)`.
pub(super) struct Nlas<'a> {
    rest: &'a [u8],
}

pub(super) fn nlas(buf: &[u8]) -> Nlas<'_> {
    Nlas { rest: buf }
}

impl<'a> Iterator for Nlas<'a> {
    type Item = Result<(u16, &'a [u8]), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        // Fewer than a header's worth of bytes is padding (the kernel's nla_ok).
        let (Some(len), Some(kind)) = (read_u16(self.rest, 0), read_u16(self.rest, 2)) else {
            self.rest = &[];
            return None;
        };
        let len = usize::from(len);
        let Some(value) = self.rest.get(NLA_HDRLEN..len) else {
            let left = self.rest.len();
            self.rest = &[];
            return Some(Err(Malformed(format!(
                "attribute {} has length {len} with {left} bytes left",
                kind & NLA_TYPE_MASK
            ))));
        };
        self.rest = self.rest.get(align4(len)..).unwrap_or_default();
        Some(Ok((kind & NLA_TYPE_MASK, value)))
    }
}

pub(super) fn nla_u8(name: &str, value: &[u8]) -> Result<u8, Malformed> {
    match value {
        [byte] => Ok(*byte),
        _ => Err(Malformed(format!(
            "{name} has {} bytes, expected 1",
            value.len()
        ))),
    }
}

pub(super) fn nla_u32(name: &str, value: &[u8]) -> Result<u32, Malformed> {
    <[u8; 4]>::try_from(value)
        .map(u32::from_ne_bytes)
        .map_err(|_| Malformed(format!("{name} has {} bytes, expected 4", value.len())))
}

/// A NUL-terminated (or not) attribute string.
pub(super) fn nla_string(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(value.get(..end).unwrap_or_default()).into_owned()
}

pub(super) fn nla_ip(name: &str, family: u8, value: &[u8]) -> Result<IpAddr, Malformed> {
    let addr = match i32::from(family) {
        libc::AF_INET => <[u8; 4]>::try_from(value).map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        _ => <[u8; 16]>::try_from(value).map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    };
    addr.map_err(|_| {
        Malformed(format!(
            "{name} has {} bytes for family {family}",
            value.len()
        ))
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// One attribute, padded to 4 bytes, as the kernel lays it out.
    pub(crate) fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = u16::try_from(NLA_HDRLEN + value.len()).expect("small");
        let mut out = Vec::new();
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        out.resize(align4(out.len()), 0);
        out
    }

    #[test]
    fn nlas_reject_overlong_attribute() {
        let mut buf = nla(1, &[1, 2, 3, 4]);
        buf.extend_from_slice(&[200, 0, 2, 0, 9]);
        let items: Vec<_> = nlas(&buf).collect();
        assert_eq!(items.len(), 2);
        assert!(matches!(items[0], Ok((1, [1, 2, 3, 4]))));
        assert!(items[1].is_err());
        // Shorter than a header: padding, ignored.
        assert_eq!(nlas(&[1, 0, 0]).count(), 0);
        // Length below the header size is malformed.
        assert!(nlas(&[2, 0, 1, 0]).next().is_some_and(|r| r.is_err()));
    }
}
