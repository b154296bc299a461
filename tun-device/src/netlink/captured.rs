//! The decoders on replies a kernel really sent (Linux 6.18, captured by
//! `captures/capture.py` in a private namespace holding `lo`, a
//! multi-queue TAP `tap0` owned by uid/gid 1000 with three addresses, and a
//! TUN `tun0` with a virtio-net header), and on those replies cut and
//! corrupted: decoding never panics, every failure is a
//! [`MalformedReply`](super::MalformedReply).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CAPPED, NLMSG_DONE, NLMSG_ERROR};

use super::reply::{RTM_NEWADDR, RTM_NEWLINK};
use super::{Address, AddressFlags, LinkInfo, ReplyMessage, decode_reply};

/// `NLM_F_MULTI` (include/uapi/linux/netlink.h): a part of a dump.
const NLM_F_MULTI: u16 = 2;

const LINKS_DUMP: &[u8] = include_bytes!("captures/links-dump-0");
const LINKS_DUMP_DONE: &[u8] = include_bytes!("captures/links-dump-1");
const LINK_TAP: &[u8] = include_bytes!("captures/link-tap-0");
const LINK_TAP_ACK: &[u8] = include_bytes!("captures/link-tap-1");
const LINK_TUN: &[u8] = include_bytes!("captures/link-tun-0");
const ADDRS_DUMP: &[u8] = include_bytes!("captures/addrs-dump-0");
const ADDRS_DUMP_DONE: &[u8] = include_bytes!("captures/addrs-dump-1");
const ERROR_CAPPED: &[u8] = include_bytes!("captures/error-mtu-capped-0");
const ERROR_UNCAPPED: &[u8] = include_bytes!("captures/error-mtu-uncapped-0");
const ACK: &[u8] = include_bytes!("captures/ack-0");
const ERROR_NODEV: &[u8] = include_bytes!("captures/error-nodev-0");

/// Every captured datagram, for the corruption tests.
const ALL: [&[u8]; 11] = [
    LINKS_DUMP,
    LINKS_DUMP_DONE,
    LINK_TAP,
    LINK_TAP_ACK,
    LINK_TUN,
    ADDRS_DUMP,
    ADDRS_DUMP_DONE,
    ERROR_CAPPED,
    ERROR_UNCAPPED,
    ACK,
    ERROR_NODEV,
];

fn messages(datagram: &[u8]) -> Vec<ReplyMessage<'_>> {
    decode_reply(datagram)
        .collect::<Result<_, _>>()
        .expect("a captured datagram frames")
}

fn links(datagram: &[u8]) -> Vec<LinkInfo> {
    messages(datagram)
        .iter()
        .filter_map(|m| m.link().expect("a captured link decodes"))
        .collect()
}

/// Decodes everything the client could ask of every message; returns how
/// many decoders failed.
fn decode_all(datagram: &[u8]) -> usize {
    let mut failures = 0;
    for message in decode_reply(datagram) {
        let Ok(message) = message else {
            failures += 1;
            continue;
        };
        failures += usize::from(message.status().is_err());
        failures += usize::from(message.link().is_err());
        failures += usize::from(message.address().is_err());
    }
    failures
}

#[test]
fn link_dump_lists_every_link_with_the_tun_attributes() {
    let parts = messages(LINKS_DUMP);
    assert!(parts.iter().all(|m| m.message_type() == RTM_NEWLINK));
    assert!(parts.iter().all(|m| m.flags() & NLM_F_MULTI != 0));
    assert!(parts.iter().all(|m| m.sequence_number() == 1));
    let all = links(LINKS_DUMP);
    let names: Vec<_> = all.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["lo", "tap0", "tun0"]);
    let lo = &all[0];
    assert_eq!((lo.index, lo.mtu, lo.kind.as_deref()), (1, 65536, None));
    assert!(lo.is_up() && lo.tun.is_none());

    let tap = &all[1];
    assert_eq!(tap.mac, Some([0x22, 0x84, 0xee, 0x7b, 0x26, 0x0d]));
    assert_eq!((tap.mtu, tap.tx_queue_len, tap.link_type), (1500, 1000, 1));
    assert_eq!(tap.kind.as_deref(), Some("tun"));
    assert!(tap.is_up());
    let info = tap.tun.expect("IFLA_TUN_* of a tap");
    assert!(info.tap && info.multi_queue && info.persist);
    assert!(!info.pi && !info.vnet_hdr);
    assert_eq!((info.owner, info.group), (Some(1000), Some(1000)));
    assert_eq!(
        (info.num_queues, info.num_disabled_queues),
        (Some(0), Some(0))
    );

    let tun = &all[2];
    assert_eq!(
        (tun.mac, tun.link_type, tun.tx_queue_len),
        (None, 65534, 500)
    );
    assert!(!tun.is_up());
    let info = tun.tun.expect("IFLA_TUN_* of a tun");
    assert!(!info.tap && info.vnet_hdr && info.persist && !info.multi_queue);
    assert_eq!(
        (info.owner, info.group, info.num_queues),
        (None, None, None)
    );

    // The dump ends with NLMSG_DONE, code 0.
    let done = messages(LINKS_DUMP_DONE);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].message_type(), NLMSG_DONE);
    assert_eq!(done[0].status().unwrap().map(|s| s.errno()), Some(0));
}

#[test]
fn single_link_replies_match_the_dump() {
    let dump = links(LINKS_DUMP);
    assert_eq!(links(LINK_TAP), [dump[1].clone()]);
    assert_eq!(links(LINK_TUN), [dump[2].clone()]);
    let ack = messages(LINK_TAP_ACK);
    assert_eq!(ack[0].message_type(), NLMSG_ERROR);
    assert_eq!(ack[0].status().unwrap().map(|s| s.errno()), Some(0));
}

#[test]
fn address_dump_gives_prefixes_peers_broadcast_and_flags() {
    let parts = messages(ADDRS_DUMP);
    assert!(parts.iter().all(|m| m.message_type() == RTM_NEWADDR));
    let all: Vec<(u32, Address)> = parts
        .iter()
        .filter_map(|m| m.address().expect("a captured address decodes"))
        .collect();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|(index, _)| *index == 2));
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    let net = |s: &str| s.parse::<IpNet>().unwrap();
    assert_eq!(all[0].1.addr, net("10.9.0.1/24"));
    assert_eq!(all[0].1.broadcast, Some(Ipv4Addr::new(10, 9, 0, 255)));
    assert_eq!((all[0].1.peer, all[0].1.scope), (None, 0));
    assert_eq!(all[1].1.addr, net("10.9.1.1/32"));
    assert_eq!(all[1].1.peer, Some(v4(10, 9, 1, 2)));
    assert_eq!(all[2].1.addr, net("fd00::1/64"));
    assert_eq!(all[2].1.addr.addr(), "fd00::1".parse::<Ipv6Addr>().unwrap());
    assert!(all[2].1.flags.contains(AddressFlags::Nodad));
    assert!(!all[2].1.is_tentative());
    assert_eq!(
        messages(ADDRS_DUMP_DONE)[0]
            .status()
            .unwrap()
            .map(|s| s.errno()),
        Some(0)
    );
}

#[test]
fn errors_carry_errno_and_extended_ack() {
    let capped = messages(ERROR_CAPPED);
    assert_ne!(capped[0].flags() & NLM_F_CAPPED, 0);
    let status = capped[0].status().unwrap().unwrap();
    assert_eq!(status.errno(), libc::EINVAL);
    assert_eq!(status.message(), Some("mtu less than device minimum"));
    // Without NETLINK_CAP_ACK the request is echoed before the TLVs.
    let uncapped = messages(ERROR_UNCAPPED);
    assert_eq!(uncapped[0].flags() & NLM_F_CAPPED, 0);
    assert_eq!(uncapped[0].status().unwrap(), Some(status));
    let nodev = messages(ERROR_NODEV)[0].status().unwrap().unwrap();
    assert_eq!(nodev.errno(), libc::ENODEV);
    assert_eq!(
        messages(ACK)[0].status().unwrap().map(|s| s.errno()),
        Some(0)
    );
}

#[test]
fn every_truncation_is_a_typed_error_or_a_shorter_reply() {
    for datagram in ALL {
        assert_eq!(decode_all(datagram), 0);
        for cut in 0..datagram.len() {
            // A cut inside a message fails its framing; one at a message
            // boundary is a shorter, well-formed reply. Never a panic.
            let _ = decode_all(&datagram[..cut]);
        }
    }
    // A cut inside the first message is always reported.
    let cut = &LINK_TAP[..LINK_TAP.len() - 1];
    assert!(decode_reply(cut).next().is_some_and(|m| m.is_err()));
}

/// The attribute headers in `LINK_TAP[start..end]`, walked by hand:
/// `(offset in the datagram, attribute type)`.
fn walk(start: usize, end: usize) -> Vec<(usize, u16)> {
    let mut out = Vec::new();
    let mut at = start;
    while at + 4 <= end {
        let len = usize::from(u16::from_ne_bytes([LINK_TAP[at], LINK_TAP[at + 1]]));
        let kind = u16::from_ne_bytes([LINK_TAP[at + 2], LINK_TAP[at + 3]]) & 0x3fff;
        out.push((at, kind));
        at += (len + 3) & !3;
    }
    out
}

/// The top-level attributes of the link in the tap's reply.
fn tap_attributes() -> Vec<(usize, u16)> {
    let message_len =
        usize::try_from(u32::from_ne_bytes(LINK_TAP[..4].try_into().unwrap())).unwrap();
    walk(16 + 16, message_len) // after nlmsghdr and ifinfomsg
}

/// The tap's reply with the `u16` at byte `at` set to `value`, decoded:
/// the error text of its link.
fn link_error_with(at: usize, value: u16) -> String {
    let mut bad = LINK_TAP.to_vec();
    bad[at..at + 2].copy_from_slice(&value.to_ne_bytes());
    let link = messages(&bad)[0].link();
    link.expect_err("the corrupted link is refused").to_string()
}

#[test]
fn attribute_lengths_past_the_end_are_typed_errors() {
    for (at, kind) in tap_attributes() {
        for len in [0u16, 1, 3, 0x7fff, 0xffff] {
            // Lengths below the header and past the message both fail, at
            // this attribute and nowhere else.
            let text = link_error_with(at, len);
            assert!(
                text.contains(&format!("attribute {kind} at byte {}", at - 32)),
                "{text}"
            );
            assert!(text.contains(&format!("has length {len}")), "{text}");
        }
    }
}

#[test]
fn nested_attribute_errors_name_their_container() {
    const IFLA_LINKINFO: u16 = 18;
    let (at, _) = tap_attributes()
        .into_iter()
        .find(|&(_, kind)| kind == IFLA_LINKINFO)
        .expect("the tap has IFLA_LINKINFO");
    // IFLA_INFO_KIND is the first nested attribute: claim it runs past
    // IFLA_LINKINFO's end.
    let err = link_error_with(at + 4, 0x0800);
    assert!(err.contains("of IFLA_LINKINFO has length 2048"), "{err}");
    // Then IFLA_INFO_DATA's first IFLA_TUN_* attribute.
    let linkinfo_len = usize::from(u16::from_ne_bytes([LINK_TAP[at], LINK_TAP[at + 1]]));
    let (data, _) = walk(at + 4, at + linkinfo_len)
        .into_iter()
        .find(|&(_, kind)| kind == 2) // IFLA_INFO_DATA
        .expect("the tap has IFLA_INFO_DATA");
    let err = link_error_with(data + 4, 0x0400);
    assert!(err.contains("of IFLA_INFO_DATA has length 1024"), "{err}");
    // A wrong-sized IFLA_TUN_* value is refused by name.
    let err = link_error_with(data + 4, 6);
    assert!(err.contains("IFLA_TUN_"), "{err}");
}

#[test]
fn unread_attributes_cannot_fail_a_query() {
    // Replace a value the decoder does not read (IFLA_QDISC, 6) with
    // garbage of the same length: the link still decodes, the same.
    let (at, _) = tap_attributes()
        .into_iter()
        .find(|&(_, kind)| kind == 6)
        .expect("the tap has IFLA_QDISC");
    let len = usize::from(u16::from_ne_bytes([LINK_TAP[at], LINK_TAP[at + 1]]));
    let mut odd = LINK_TAP.to_vec();
    odd[at + 4..at + len].fill(0xff);
    assert_eq!(links(&odd), links(LINK_TAP));
}
