//! The primitives every reply decoder is built on, over netlink-packet-core's
//! checked ones: iteration over a buffer of netlink attributes
//! ([`NlasIterator`], which checks each attribute's length against what is
//! left), and readers of fixed header fields and attribute values that check
//! their length ([`netlink_packet_core::parse_u32`] and friends). What goes
//! wrong becomes a [`MalformedReply`] naming the attribute, where it was and
//! the lengths involved; the upstream error text is not kept, it says less.

use std::net::IpAddr;
use std::ops::Range;

use netlink_packet_core::{
    NLA_HEADER_SIZE, NLA_TYPE_MASK, NlasIterator, parse_i32, parse_ip, parse_u8, parse_u16,
    parse_u32,
};

use super::error::MalformedReply;

/// Rounds up to the 4-byte alignment of netlink messages and attributes
/// (`NLMSG_ALIGN`, `NLA_ALIGN`).
pub(super) fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// A `u16` header field at `range` of `buf`, `None` when `buf` is too short.
pub(super) fn field_u16(buf: &[u8], range: Range<usize>) -> Option<u16> {
    buf.get(range).and_then(|b| parse_u16(b).ok())
}

/// A `u32` header field at `range` of `buf`, `None` when `buf` is too short.
pub(super) fn field_u32(buf: &[u8], range: Range<usize>) -> Option<u32> {
    buf.get(range).and_then(|b| parse_u32(b).ok())
}

/// An `i32` header field at `range` of `buf`, `None` when `buf` is too short.
pub(super) fn field_i32(buf: &[u8], range: Range<usize>) -> Option<i32> {
    buf.get(range).and_then(|b| parse_i32(b).ok())
}

/// The attributes in `buf`, a region named `within` (for errors), as
/// `(type, value)` with the `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER` bits
/// stripped from the type.
pub(super) fn nlas<'a>(within: &'static str, buf: &'a [u8]) -> Nlas<'a> {
    Nlas {
        inner: NlasIterator::new(buf),
        buf,
        offset: 0,
        within,
    }
}

/// Iterator of [`nlas`]: upstream's checked iterator, plus the offset of
/// each attribute (for errors) and the kernel's rule for the tail.
pub(super) struct Nlas<'a> {
    inner: NlasIterator<&'a [u8]>,
    buf: &'a [u8],
    /// Where the next attribute starts in `buf`.
    offset: usize,
    within: &'static str,
}

impl<'a> Iterator for Nlas<'a> {
    type Item = Result<(u16, &'a [u8]), MalformedReply>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.offset;
        match self.inner.next()? {
            Ok(nla) => {
                let len = usize::from(nla.length());
                self.offset = at.saturating_add(align4(len));
                let kind = nla.kind();
                // The checked buffer starts at the attribute and holds at
                // least `len` bytes, so the range is always there.
                let value = nla
                    .into_inner()
                    .get(NLA_HEADER_SIZE..len)
                    .unwrap_or_default();
                Some(Ok((kind, value)))
            }
            Err(_) => {
                let rest = self.buf.get(at..).unwrap_or_default();
                // Fewer than a header's worth of bytes is padding, as the
                // kernel's nla_ok() reads it; upstream calls it an error.
                if rest.len() < NLA_HEADER_SIZE {
                    return None;
                }
                let len = field_u16(rest, 0..2).unwrap_or_default();
                let kind = field_u16(rest, 2..4).unwrap_or_default() & NLA_TYPE_MASK;
                Some(Err(MalformedReply::new(format!(
                    "attribute {kind} at byte {at} of {} has length {len} with {} bytes left",
                    self.within,
                    rest.len()
                ))))
            }
        }
    }
}

/// A `u8` attribute value.
pub(super) fn nla_u8(name: &str, value: &[u8]) -> Result<u8, MalformedReply> {
    parse_u8(value).map_err(|_| wrong_length(name, value, 1))
}

/// A `u32` attribute value, in host byte order.
pub(super) fn nla_u32(name: &str, value: &[u8]) -> Result<u32, MalformedReply> {
    parse_u32(value).map_err(|_| wrong_length(name, value, 4))
}

fn wrong_length(name: &str, value: &[u8], expected: usize) -> MalformedReply {
    MalformedReply::new(format!(
        "{name} has {} bytes, expected {expected}",
        value.len()
    ))
}

/// A string attribute, up to its first NUL (or all of it), non-UTF-8 bytes
/// replaced by U+FFFD. Not upstream's `parse_string`: that refuses
/// non-UTF-8 bytes, which interface names may hold (`dev_valid_name()`,
/// net/core/dev.c), and would fail a whole dump over one name.
pub(super) fn nla_string(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(value.get(..end).unwrap_or_default()).into_owned()
}

/// An address attribute of the address family `family`: 4 bytes for
/// `AF_INET`, 16 for any other.
pub(super) fn nla_ip(name: &str, family: u8, value: &[u8]) -> Result<IpAddr, MalformedReply> {
    let v4 = i32::from(family) == libc::AF_INET;
    match parse_ip(value) {
        Ok(addr) if addr.is_ipv4() == v4 => Ok(addr),
        _ => Err(MalformedReply::new(format!(
            "{name} has {} bytes for family {family}",
            value.len()
        ))),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// One attribute, padded to 4 bytes, as the kernel lays it out.
    pub(crate) fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = u16::try_from(NLA_HEADER_SIZE + value.len()).expect("small");
        let mut out = Vec::new();
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        out.resize(align4(out.len()), 0);
        out
    }

    /// An attribute holding other attributes, with `NLA_F_NESTED` set as
    /// newer kernels set it.
    pub(crate) fn nested(kind: u16, children: &[Vec<u8>]) -> Vec<u8> {
        nla(kind | netlink_packet_core::NLA_F_NESTED, &children.concat())
    }

    fn all(buf: &[u8]) -> Vec<Result<(u16, &[u8]), MalformedReply>> {
        nlas("test attributes", buf).collect()
    }

    #[test]
    fn nlas_reject_overlong_attribute() {
        let mut buf = nla(1, &[1, 2, 3, 4]);
        buf.extend_from_slice(&[200, 0, 2, 0, 9]);
        let items: Vec<_> = nlas("test attributes", &buf).collect();
        assert_eq!(items.len(), 2);
        assert!(matches!(items[0], Ok((1, [1, 2, 3, 4]))));
        assert!(items[1].is_err());
        // Shorter than a header: padding, ignored.
        assert_eq!(nlas("test attributes", &[1, 0, 0]).count(), 0);
        // Length below the header size is malformed.
        assert!(
            nlas("test attributes", &[2, 0, 1, 0])
                .next()
                .is_some_and(|r| r.is_err())
        );
    }

    #[test]
    fn nla_error_names_region_offset_and_lengths() {
        let mut buf = nla(3, b"tun0\0");
        let at = buf.len();
        // Type 4 with the nested bit, claiming 40 bytes of the 8 left.
        buf.extend_from_slice(&40u16.to_ne_bytes());
        buf.extend_from_slice(&(4u16 | 0x8000).to_ne_bytes());
        buf.extend_from_slice(&[0; 4]);
        let items = all(&buf);
        assert!(matches!(items[0], Ok((3, b"tun0\0"))));
        let err = items[1].as_ref().expect_err("past the end");
        assert_eq!(
            err.to_string(),
            format!("attribute 4 at byte {at} of test attributes has length 40 with 8 bytes left")
        );
        // After an error the iteration ends.
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn nlas_strip_flag_bits_and_skip_padding() {
        let mut buf = nested(18, &[nla(1, b"tun\0")]);
        buf.extend(nla(4 | 0x4000, &1500u32.to_ne_bytes()));
        let items: Vec<_> = all(&buf).into_iter().map(Result::unwrap).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].0, 18);
        assert_eq!(items[1], (4, &1500u32.to_ne_bytes()[..]));
        // The nested value iterates on its own.
        let inner: Vec<_> = all(items[0].1).into_iter().map(Result::unwrap).collect();
        assert_eq!(inner, [(1, &b"tun\0"[..])]);
        // An attribute whose length is not a multiple of 4 at the very end,
        // without its padding: complete, and the last.
        let short = [5u8, 0, 9, 0, 7];
        assert_eq!(
            all(&short)
                .into_iter()
                .map(Result::unwrap)
                .collect::<Vec<_>>(),
            [(9, &[7u8][..])]
        );
    }

    #[test]
    fn values_check_their_length() {
        assert_eq!(nla_u8("X", &[7]).ok(), Some(7));
        assert_eq!(
            nla_u32("IFLA_MTU", &[1, 2]).map_err(|e| e.to_string()),
            Err("IFLA_MTU has 2 bytes, expected 4".to_owned())
        );
        assert_eq!(nla_string(b"a\0b"), "a");
        assert_eq!(nla_string(&[0x74, 0xff]), "t\u{fffd}");
        let v4 = u8::try_from(libc::AF_INET).unwrap();
        let v6 = u8::try_from(libc::AF_INET6).unwrap();
        assert!(nla_ip("IFA_LOCAL", v4, &[10, 0, 0, 1]).is_ok());
        assert!(nla_ip("IFA_LOCAL", v6, &[10, 0, 0, 1]).is_err());
        assert!(nla_ip("IFA_LOCAL", v4, &[0; 16]).is_err());
        assert_eq!(field_u32(&[1, 0, 0], 0..4), None);
    }
}
