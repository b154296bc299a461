//! Reply framing: splitting a datagram into netlink messages, and the
//! status messages (`NLMSG_ERROR`, `NLMSG_DONE`) that end every exchange.

use netlink_packet_core::{NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSG_DONE};

use super::decode::{Malformed, align4, nla_string, nlas, read_i32, read_u16, read_u32};

// include/uapi/linux/netlink.h
pub(super) const NLMSG_HDRLEN: usize = 16;
const NLMSGERR_ATTR_MSG: u16 = 1;

pub(super) struct MsgHeader {
    pub(super) kind: u16,
    pub(super) flags: u16,
    pub(super) seq: u32,
}

/// Splits the first netlink message off `buf`: its header, its payload and
/// what follows it.
pub(super) fn split_message(buf: &[u8]) -> Result<(MsgHeader, &[u8], &[u8]), Malformed> {
    let fields = (
        read_u32(buf, 0),
        read_u16(buf, 4),
        read_u16(buf, 6),
        read_u32(buf, 8),
    );
    let (Some(len), Some(kind), Some(flags), Some(seq)) = fields else {
        return Err(Malformed(format!("{} trailing bytes", buf.len())));
    };
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len < NLMSG_HDRLEN || len > buf.len() {
        return Err(Malformed(format!(
            "message length {len} with {} bytes left in the datagram",
            buf.len()
        )));
    }
    let payload = buf.get(NLMSG_HDRLEN..len).unwrap_or_default();
    let next = buf.get(align4(len)..).unwrap_or_default();
    Ok((MsgHeader { kind, flags, seq }, payload, next))
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
) -> Result<(i32, Option<String>), Malformed> {
    let code = if kind == NLMSG_DONE && payload.is_empty() {
        0
    } else {
        read_i32(payload, 0).ok_or_else(|| {
            Malformed(format!(
                "status message with {} byte payload",
                payload.len()
            ))
        })?
    };
    let errno = match code {
        0 => return Ok((0, None)),
        c if c > 0 => return Err(Malformed(format!("positive error code {c}"))),
        c => c
            .checked_neg()
            .ok_or_else(|| Malformed(format!("error code {c}")))?,
    };
    if flags & NLM_F_ACK_TLVS == 0 {
        return Ok((errno, None));
    }
    let tlv_offset = if kind == NLMSG_DONE {
        Some(4)
    } else if flags & NLM_F_CAPPED != 0 {
        Some(4 + NLMSG_HDRLEN)
    } else {
        read_u32(payload, 4)
            .and_then(|len| usize::try_from(len).ok())
            .filter(|&len| len >= NLMSG_HDRLEN)
            .map(|len| align4(len.saturating_add(4)))
    };
    // The code is what matters: unreadable extended-ack data is just left out.
    let message = tlv_offset
        .and_then(|offset| payload.get(offset..))
        .and_then(|tlvs| {
            nlas(tlvs)
                .map_while(Result::ok)
                .find(|&(kind, _)| kind == NLMSGERR_ATTR_MSG)
        })
        .map(|(_, value)| nla_string(value))
        .filter(|text| !text.is_empty());
    Ok((errno, message))
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::NLMSG_ERROR;

    use super::*;
    use crate::netlink::address::parse_address;
    use crate::netlink::decode::tests::nla;
    use crate::netlink::link::parse_link;
    use crate::netlink::tun_info::parse_tun;

    #[test]
    fn split_message_never_panics_on_garbage() {
        for len in 0..64usize {
            let buf: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = split_message(&buf);
            let _ = parse_link(&buf);
            let _ = parse_address(&buf);
            let _ = parse_tun(&buf);
            let _ = parse_status(NLMSG_ERROR, NLM_F_ACK_TLVS, &buf);
            let _ = parse_status(NLMSG_DONE, NLM_F_ACK_TLVS | NLM_F_CAPPED, &buf);
        }
        let mut huge = vec![0u8; 20];
        huge[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(split_message(&huge).is_err());
    }

    #[test]
    fn error_extack_capped_and_uncapped() {
        let code = (-libc::EINVAL).to_ne_bytes();
        let msg = nla(NLMSGERR_ATTR_MSG, b"mtu less than device minimum\0");
        // Capped: code, request header (16 bytes), TLVs.
        let mut capped = code.to_vec();
        capped.extend_from_slice(&[0; NLMSG_HDRLEN]);
        capped.extend_from_slice(&msg);
        let parsed = parse_status(NLMSG_ERROR, NLM_F_ACK_TLVS | NLM_F_CAPPED, &capped);
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
        let parsed = parse_status(NLMSG_ERROR, NLM_F_ACK_TLVS, &uncapped);
        assert_eq!(
            parsed.ok().and_then(|p| p.1).as_deref(),
            Some("mtu less than device minimum")
        );
        // Echoed length pointing past the payload: code kept, no message.
        uncapped[4..8].copy_from_slice(&4000u32.to_ne_bytes());
        assert_eq!(
            parse_status(NLMSG_ERROR, NLM_F_ACK_TLVS, &uncapped).ok(),
            Some((libc::EINVAL, None))
        );
        // i32::MIN cannot be negated.
        assert!(parse_status(NLMSG_ERROR, 0, &i32::MIN.to_ne_bytes()).is_err());
    }

    #[test]
    fn done_error_code() {
        let mut payload = (-libc::ENODEV).to_ne_bytes().to_vec();
        assert_eq!(
            parse_status(NLMSG_DONE, 0, &payload).ok(),
            Some((libc::ENODEV, None))
        );
        payload.extend(nla(NLMSGERR_ATTR_MSG, b"no such device\0"));
        assert_eq!(
            parse_status(NLMSG_DONE, NLM_F_ACK_TLVS, &payload).ok(),
            Some((libc::ENODEV, Some("no such device".into())))
        );
        assert_eq!(parse_status(NLMSG_DONE, 0, &[]).ok(), Some((0, None)));
        assert!(parse_status(NLMSG_DONE, 0, &[1, 2]).is_err());
        assert!(parse_status(NLMSG_ERROR, 0, &5i32.to_ne_bytes()).is_err());
    }
}
