//! Body of the cargo-fuzz target `netlink_reply`: the decoder tun-device's
//! rtnetlink client runs on every datagram the kernel sends
//! (`tun_device::netlink::decode_reply`), on arbitrary bytes.
//!
//! Kept out of `lib.rs`: tun-offload's stable corpus test includes that
//! file by path and cannot depend on tun-device. The cargo-fuzz binary and
//! tun-device's stable test `tests/fuzz_corpus.rs` include this file by
//! path instead. It panics when a property fails.

use tun_device::netlink::{ReplyMessage, decode_reply};

/// `NLMSG_HDRLEN` (include/uapi/linux/netlink.h).
const HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;

fn u16_at(data: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([data[at], data[at + 1]])
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// The messages a naive reading of `data` frames, by `nlmsg_len`, as
/// `(offset, length)`, and whether bytes that cannot be framed are left.
fn naive_framing(data: &[u8]) -> (Vec<(usize, usize)>, bool) {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let left = data.len() - at;
        if left < HDR {
            return (out, true);
        }
        let len = u32_at(data, at) as usize;
        if len < HDR || len > left {
            return (out, true);
        }
        out.push((at, len));
        at += (len + 3) & !3;
    }
    (out, false)
}

/// Every decoder of one message: each returns, twice the same, and what it
/// returns holds together.
fn check_message(data: &[u8], message: &ReplyMessage<'_>) {
    let at = message.offset();
    assert_eq!(message.message_type(), u16_at(data, at + 4), "nlmsg_type");
    assert_eq!(message.flags(), u16_at(data, at + 6), "nlmsg_flags");
    assert_eq!(message.sequence_number(), u32_at(data, at + 8), "nlmsg_seq");
    assert_eq!(message.port_number(), u32_at(data, at + 12), "nlmsg_pid");
    let kind = message.message_type();

    let status = message.status();
    assert_eq!(status, message.status(), "status decodes the same twice");
    if !matches!(kind, NLMSG_ERROR | NLMSG_DONE) {
        assert_eq!(status, Ok(None), "only NLMSG_ERROR/DONE have a status");
    }
    if let Ok(Some(status)) = &status {
        assert!(status.errno() >= 0, "errno {}", status.errno());
        if status.errno() == 0 {
            assert_eq!(status.message(), None, "an ack carries no error text");
        }
        assert_ne!(status.message(), Some(""), "an empty text is left out");
    }

    let link = message.link();
    assert_eq!(link, message.link(), "link decodes the same twice");
    if kind != RTM_NEWLINK {
        assert_eq!(link, Ok(None), "only RTM_NEWLINK has a link");
    }
    if let Ok(Some(link)) = &link {
        assert!(!link.name.contains('\0'), "name cut at its NUL");
        if link.tun.is_some() {
            assert_eq!(link.kind.as_deref(), Some("tun"), "IFLA_TUN_* of a tun");
        }
        if let Some(kind) = &link.kind {
            assert!(!kind.contains('\0'));
        }
    }

    let address = message.address();
    assert_eq!(address, message.address(), "address decodes the same twice");
    if kind != RTM_NEWADDR {
        assert_eq!(address, Ok(None), "only RTM_NEWADDR has an address");
    }
    if let Ok(Some((_, address))) = &address {
        let v4 = address.addr.addr().is_ipv4();
        if let Some(peer) = address.peer {
            assert_eq!(peer.is_ipv4(), v4, "peer of the address's family");
            assert_ne!(
                peer,
                address.addr.addr(),
                "a peer differs from the local address"
            );
        }
        if address.broadcast.is_some() {
            assert!(v4, "broadcast only on IPv4");
        }
    }
    for err in [status.err(), link.err(), address.err()]
        .into_iter()
        .flatten()
    {
        assert!(!err.to_string().is_empty(), "an error says what was wrong");
    }
}

/// netlink_reply: any datagram is framed exactly as a naive reading of
/// `nlmsg_len` frames it (same messages, same offsets and payloads, an
/// error exactly when bytes are left that cannot be framed, nothing after
/// it), and every decoder of every message returns without panicking, the
/// same result twice, with consistent contents.
pub fn netlink_reply(data: &[u8]) {
    let (expected, leftover) = naive_framing(data);
    let items: Vec<_> = decode_reply(data).collect();
    let framed: Vec<_> = items.iter().filter_map(|i| i.as_ref().ok()).collect();
    assert_eq!(framed.len(), expected.len(), "message count");
    for (message, &(at, len)) in framed.iter().zip(&expected) {
        assert_eq!(message.offset(), at, "message offset");
        assert_eq!(message.payload(), &data[at + HDR..at + len], "payload");
        check_message(data, message);
    }
    let errors = items.iter().filter(|i| i.is_err()).count();
    assert_eq!(
        errors,
        usize::from(leftover),
        "an error exactly for unframed bytes"
    );
    if leftover {
        assert!(
            items.last().is_some_and(|i| i.is_err()),
            "the error is last"
        );
    }
}
