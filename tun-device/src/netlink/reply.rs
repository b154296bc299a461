//! Reply framing: a datagram the kernel sent on a `NETLINK_ROUTE` socket,
//! split into netlink messages by [`decode_reply`] over netlink-packet-core's
//! checked [`NetlinkBuffer`], and each message decoded only when asked
//! ([`ReplyMessage::status`], [`ReplyMessage::link`],
//! [`ReplyMessage::address`]): an attribute nobody reads is never decoded,
//! so it cannot fail a query. The status messages (`NLMSG_ERROR`,
//! `NLMSG_DONE`) that end every exchange are decoded here.
//!
//! This is what the client runs on every datagram it receives; it is public
//! so that the same code can be fuzzed (`fuzz/`, target `netlink_reply`) and
//! used on replies read elsewhere.

use netlink_packet_core::{NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer};

use super::address::parse_address;
use super::decode::{align4, field_i32, field_u32, nla_string, nlas};
use super::error::MalformedReply;
use super::link::parse_link;
use super::types::{Address, LinkInfo};

// include/uapi/linux/netlink.h
/// `NLMSG_HDRLEN`, the size of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;
const NLMSGERR_ATTR_MSG: u16 = 1;
// include/uapi/linux/rtnetlink.h
pub(super) const RTM_NEWLINK: u16 = 16;
pub(super) const RTM_NEWADDR: u16 = 20;

/// The messages of one datagram from the kernel, in order.
///
/// Each message's header is checked (at least 16 bytes, a length within the
/// datagram); its payload is not decoded until asked. After the first
/// malformed header the iterator ends: what follows cannot be framed.
///
/// ```
/// use tun_device::netlink::decode_reply;
///
/// // An acknowledgement: NLMSG_ERROR with code 0, capped (the request's
/// // header only), sequence 7.
/// let mut ack = Vec::new();
/// ack.extend_from_slice(&36u32.to_ne_bytes()); // nlmsg_len
/// ack.extend_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
/// ack.extend_from_slice(&0x100u16.to_ne_bytes()); // NLM_F_CAPPED
/// ack.extend_from_slice(&7u32.to_ne_bytes()); // nlmsg_seq
/// ack.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
/// ack.extend_from_slice(&0i32.to_ne_bytes()); // error: 0
/// ack.extend_from_slice(&[0; 16]); // the request's header
/// let message = decode_reply(&ack).next().unwrap().unwrap();
/// assert_eq!(message.sequence_number(), 7);
/// assert_eq!(message.status().unwrap().unwrap().errno(), 0);
/// ```
pub fn decode_reply(datagram: &[u8]) -> ReplyMessages<'_> {
    ReplyMessages {
        datagram,
        offset: 0,
    }
}

/// Iterator returned by [`decode_reply`].
#[derive(Debug, Clone)]
pub struct ReplyMessages<'a> {
    datagram: &'a [u8],
    /// Where the next message starts; past the end once done.
    offset: usize,
}

impl<'a> Iterator for ReplyMessages<'a> {
    type Item = Result<ReplyMessage<'a>, MalformedReply>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.offset;
        let rest = self.datagram.get(at..).filter(|r| !r.is_empty())?;
        match NetlinkBuffer::new_checked(rest) {
            Ok(buffer) => {
                let len = usize::try_from(buffer.length()).unwrap_or(usize::MAX);
                self.offset = at.saturating_add(align4(len));
                Some(Ok(ReplyMessage {
                    offset: at,
                    message_type: buffer.message_type(),
                    flags: buffer.flags(),
                    sequence_number: buffer.sequence_number(),
                    port_number: buffer.port_number(),
                    payload: buffer.payload(),
                }))
            }
            Err(_) => {
                self.offset = usize::MAX;
                Some(Err(match field_u32(rest, 0..4) {
                    Some(len) if rest.len() >= NLMSG_HDRLEN => MalformedReply::new(format!(
                        "message at byte {at} has length {len} with {} bytes left in the datagram",
                        rest.len()
                    )),
                    _ => MalformedReply::new(format!(
                        "{} trailing bytes at byte {at}, shorter than a message header",
                        rest.len()
                    )),
                }))
            }
        }
    }
}

impl std::iter::FusedIterator for ReplyMessages<'_> {}

/// One netlink message of a reply: its header fields, and its payload
/// decoded on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyMessage<'a> {
    offset: usize,
    message_type: u16,
    flags: u16,
    sequence_number: u32,
    port_number: u32,
    payload: &'a [u8],
}

impl<'a> ReplyMessage<'a> {
    /// `nlmsg_type`: `NLMSG_ERROR` (2), `NLMSG_DONE` (3), `RTM_NEWLINK`
    /// (16), `RTM_NEWADDR` (20), ...
    pub fn message_type(&self) -> u16 {
        self.message_type
    }

    /// `nlmsg_flags`, e.g. `NLM_F_MULTI`, `NLM_F_DUMP_INTR`, `NLM_F_CAPPED`.
    pub fn flags(&self) -> u16 {
        self.flags
    }

    /// `nlmsg_seq`: the sequence number of the request this answers.
    pub fn sequence_number(&self) -> u32 {
        self.sequence_number
    }

    /// `nlmsg_pid`: the sender's port (0 for the kernel).
    pub fn port_number(&self) -> u32 {
        self.port_number
    }

    /// Where the message starts in its datagram.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The bytes after the 16-byte header, up to `nlmsg_len`.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The status of an `NLMSG_ERROR` or `NLMSG_DONE` message; `None` for
    /// any other type.
    pub fn status(&self) -> Result<Option<ReplyStatus>, MalformedReply> {
        if !matches!(self.message_type, NLMSG_ERROR | NLMSG_DONE) {
            return Ok(None);
        }
        parse_status(self.message_type, self.flags, self.payload)
            .map(Some)
            .map_err(|e| e.in_message(self.offset, self.message_type))
    }

    /// The link of an `RTM_NEWLINK` message; `None` for any other type.
    /// Only the attributes [`LinkInfo`] holds are read.
    pub fn link(&self) -> Result<Option<LinkInfo>, MalformedReply> {
        if self.message_type != RTM_NEWLINK {
            return Ok(None);
        }
        parse_link(self.payload)
            .map(Some)
            .map_err(|e| e.in_message(self.offset, self.message_type))
    }

    /// The owning ifindex and the address of an `RTM_NEWADDR` message;
    /// `None` for any other type and for families other than IPv4 and
    /// IPv6. Only the attributes [`Address`] holds are read.
    pub fn address(&self) -> Result<Option<(u32, Address)>, MalformedReply> {
        if self.message_type != RTM_NEWADDR {
            return Ok(None);
        }
        parse_address(self.payload).map_err(|e| e.in_message(self.offset, self.message_type))
    }
}

/// How the kernel ended an exchange: `NLMSG_ERROR` (an acknowledgement when
/// the errno is 0) or `NLMSG_DONE` (the end of a dump).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplyStatus {
    errno: i32,
    message: Option<String>,
}

impl ReplyStatus {
    /// The positive errno the kernel returned, 0 for success.
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The extended-ack text (`NLMSGERR_ATTR_MSG`), when the kernel sent one.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The status's parts: the errno and the message.
    pub fn into_parts(self) -> (i32, Option<String>) {
        (self.errno, self.message)
    }
}

/// Decodes an `NLMSG_ERROR` or `NLMSG_DONE` payload into a positive errno
/// (0 for success) and the extended-ack message, if any.
///
/// `NLMSG_ERROR` is `struct nlmsgerr` (error code, then the request's header,
/// followed by the rest of the request unless `NLM_F_CAPPED`), then TLVs when
/// `NLM_F_ACK_TLVS`; `NLMSG_DONE` is the code then TLVs (`netlink_ack()` and
/// `netlink_dump_done()` in net/netlink/af_netlink.c).
pub(super) fn parse_status(
    kind: u16,
    flags: u16,
    payload: &[u8],
) -> Result<ReplyStatus, MalformedReply> {
    let code = if kind == NLMSG_DONE && payload.is_empty() {
        0
    } else {
        field_i32(payload, 0..4).ok_or_else(|| {
            MalformedReply::new(format!(
                "status message with {} byte payload",
                payload.len()
            ))
        })?
    };
    let errno = match code {
        0 => 0,
        c if c > 0 => return Err(MalformedReply::new(format!("positive error code {c}"))),
        c => c
            .checked_neg()
            .ok_or_else(|| MalformedReply::new(format!("error code {c}")))?,
    };
    if errno == 0 || flags & NLM_F_ACK_TLVS == 0 {
        return Ok(ReplyStatus {
            errno,
            message: None,
        });
    }
    let tlv_offset = if kind == NLMSG_DONE {
        Some(4)
    } else if flags & NLM_F_CAPPED != 0 {
        Some(4 + NLMSG_HDRLEN)
    } else {
        // The echoed request, checked as a message of its own: its length
        // says where the TLVs start.
        payload
            .get(4..)
            .and_then(|echo| NetlinkBuffer::new_checked(echo).ok())
            .and_then(|echo| usize::try_from(echo.length()).ok())
            .map(|len| 4 + align4(len))
    };
    // The code is what matters: unreadable extended-ack data is just left out.
    let message = tlv_offset
        .and_then(|offset| payload.get(offset..))
        .and_then(|tlvs| {
            nlas("the extended ack", tlvs)
                .map_while(Result::ok)
                .find(|&(kind, _)| kind == NLMSGERR_ATTR_MSG)
        })
        .map(|(_, value)| nla_string(value))
        .filter(|text| !text.is_empty());
    Ok(ReplyStatus { errno, message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::address::parse_address;
    use crate::netlink::decode::tests::nla;
    use crate::netlink::link::parse_link;
    use crate::netlink::tun_info::parse_tun;

    fn parts(
        kind: u16,
        flags: u16,
        payload: &[u8],
    ) -> Result<(i32, Option<String>), MalformedReply> {
        parse_status(kind, flags, payload).map(ReplyStatus::into_parts)
    }

    /// A whole message: the 16-byte header, then `payload`.
    fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(NLMSG_HDRLEN + payload.len()).expect("small");
        let mut out = Vec::new();
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(payload);
        out.resize(align4(out.len()), 0);
        out
    }

    #[test]
    fn split_message_never_panics_on_garbage() {
        for len in 0..64usize {
            let buf: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = decode_reply(&buf).count();
            let _ = parse_link(&buf);
            let _ = parse_address(&buf);
            let _ = parse_tun(&buf);
            let _ = parse_status(NLMSG_ERROR, NLM_F_ACK_TLVS, &buf);
            let _ = parse_status(NLMSG_DONE, NLM_F_ACK_TLVS | NLM_F_CAPPED, &buf);
        }
        let mut huge = vec![0u8; 20];
        huge[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(decode_reply(&huge).next().is_some_and(|m| m.is_err()));
    }

    #[test]
    fn datagram_splits_into_aligned_messages() {
        // A 21-byte message (padded to 24) then a 16-byte NLMSG_DONE.
        let mut datagram = message(RTM_NEWLINK, 2, 9, &[1, 2, 3, 4, 5]);
        assert_eq!(datagram.len(), 24);
        datagram.extend(message(NLMSG_DONE, 2, 9, &[]));
        let messages: Vec<_> = decode_reply(&datagram).map(Result::unwrap).collect();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].payload(), [1, 2, 3, 4, 5]);
        assert_eq!((messages[0].offset(), messages[1].offset()), (0, 24));
        assert_eq!(messages[1].message_type(), NLMSG_DONE);
        assert_eq!(messages[1].flags(), 2);
        assert_eq!(messages[1].status().unwrap().map(|s| s.errno()), Some(0));
        // Not a status, not an address: nothing decoded, nothing fails.
        assert_eq!(messages[0].status(), Ok(None));
        assert_eq!(messages[0].address(), Ok(None));
        // But asked for its link, the 5-byte ifinfomsg is refused.
        let err = messages[0].link().expect_err("short ifinfomsg");
        assert_eq!(
            err.to_string(),
            "message type 16 at byte 0: ifinfomsg of 5 bytes"
        );
    }

    #[test]
    fn truncated_headers_are_typed_errors() {
        let ack = message(NLMSG_ERROR, 0, 1, &0i32.to_ne_bytes());
        // Every cut of a well-formed message fails, never panics.
        for cut in 1..ack.len() {
            let first = decode_reply(&ack[..cut]).next().expect("one item");
            let err = first.expect_err("truncated");
            let text = err.to_string();
            if cut < NLMSG_HDRLEN {
                assert_eq!(
                    text,
                    format!("{cut} trailing bytes at byte 0, shorter than a message header")
                );
            } else {
                assert_eq!(
                    text,
                    format!(
                        "message at byte 0 has length 20 with {cut} bytes left in the datagram"
                    )
                );
            }
        }
        // A good message followed by a short tail: the message, then the
        // error naming where the tail starts, then nothing.
        let mut datagram = ack.clone();
        datagram.extend_from_slice(&[1, 2, 3]);
        let items: Vec<_> = decode_reply(&datagram).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert_eq!(
            items[1].as_ref().unwrap_err().to_string(),
            "3 trailing bytes at byte 20, shorter than a message header"
        );
        // A length below the header size cannot be framed either.
        let mut tiny = ack;
        tiny[..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(decode_reply(&tiny).next().is_some_and(|m| m.is_err()));
        assert!(decode_reply(&[]).next().is_none());
    }

    #[test]
    fn error_extack_capped_and_uncapped() {
        let code = (-libc::EINVAL).to_ne_bytes();
        let msg = nla(NLMSGERR_ATTR_MSG, b"mtu less than device minimum\0");
        // Capped: code, request header (16 bytes), TLVs.
        let mut capped = code.to_vec();
        capped.extend_from_slice(&[0; NLMSG_HDRLEN]);
        capped.extend_from_slice(&msg);
        let parsed = parts(NLMSG_ERROR, NLM_F_ACK_TLVS | NLM_F_CAPPED, &capped);
        assert_eq!(
            parsed.ok(),
            Some((libc::EINVAL, Some("mtu less than device minimum".into())))
        );
        // Uncapped: the whole 22-byte request is echoed, padded to 4.
        let mut uncapped = code.to_vec();
        let mut request = vec![0u8; 22];
        request[..4].copy_from_slice(&22u32.to_ne_bytes());
        uncapped.extend_from_slice(&request);
        uncapped.resize(align4(uncapped.len()), 0);
        uncapped.extend_from_slice(&msg);
        let parsed = parts(NLMSG_ERROR, NLM_F_ACK_TLVS, &uncapped);
        assert_eq!(
            parsed.ok().and_then(|p| p.1).as_deref(),
            Some("mtu less than device minimum")
        );
        // Echoed length pointing past the payload: code kept, no message.
        uncapped[4..8].copy_from_slice(&4000u32.to_ne_bytes());
        assert_eq!(
            parts(NLMSG_ERROR, NLM_F_ACK_TLVS, &uncapped).ok(),
            Some((libc::EINVAL, None))
        );
        // i32::MIN cannot be negated.
        assert!(parts(NLMSG_ERROR, 0, &i32::MIN.to_ne_bytes()).is_err());
    }

    #[test]
    fn done_error_code() {
        let mut payload = (-libc::ENODEV).to_ne_bytes().to_vec();
        assert_eq!(
            parts(NLMSG_DONE, 0, &payload).ok(),
            Some((libc::ENODEV, None))
        );
        payload.extend(nla(NLMSGERR_ATTR_MSG, b"no such device\0"));
        assert_eq!(
            parts(NLMSG_DONE, NLM_F_ACK_TLVS, &payload).ok(),
            Some((libc::ENODEV, Some("no such device".into())))
        );
        assert_eq!(parts(NLMSG_DONE, 0, &[]).ok(), Some((0, None)));
        assert!(parts(NLMSG_DONE, 0, &[1, 2]).is_err());
        assert!(parts(NLMSG_ERROR, 0, &5i32.to_ne_bytes()).is_err());
    }

    #[test]
    fn status_errors_say_which_message() {
        let mut datagram = message(NLMSG_DONE, 0, 3, &[]);
        datagram.extend(message(NLMSG_ERROR, 0, 3, &[9, 9]));
        let second = decode_reply(&datagram).nth(1).unwrap().unwrap();
        assert_eq!(
            second.status().unwrap_err().to_string(),
            "message type 2 at byte 16: status message with 2 byte payload"
        );
    }
}
