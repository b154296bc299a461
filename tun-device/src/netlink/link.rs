//! The `RTM_NEWLINK` decoder: `struct ifinfomsg` and the link attributes
//! [`LinkInfo`] holds, the driver's `IFLA_INFO_DATA` handed to
//! [`parse_tun`] for a `tun` link.

use netlink_packet_core::parse_mac;

use super::decode::{field_u16, field_u32, nla_string, nla_u8, nla_u32, nlas};
use super::error::MalformedReply;
use super::tun_info::parse_tun;
use super::types::LinkInfo;

// include/uapi/linux/if_link.h
const IFINFOMSG_LEN: usize = 16;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_TXQLEN: u16 = 13;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;

/// Decodes an `RTM_NEWLINK` payload: `struct ifinfomsg` then attributes.
pub(super) fn parse_link(payload: &[u8]) -> Result<LinkInfo, MalformedReply> {
    let (Some(link_type), Some(index), Some(flags)) = (
        field_u16(payload, 2..4),
        field_u32(payload, 4..8),
        field_u32(payload, 8..12),
    ) else {
        return Err(MalformedReply::new(format!(
            "ifinfomsg of {} bytes",
            payload.len()
        )));
    };
    let mut name = None;
    let mut mtu = None;
    let mut mac = None;
    let mut tx_queue_len = 0;
    let mut oper_state = 0;
    let mut kind = None;
    let mut info_data = None;
    for nla in nlas(
        "the link attributes",
        payload.get(IFINFOMSG_LEN..).unwrap_or_default(),
    ) {
        let (attr, value) = nla?;
        match attr {
            IFLA_IFNAME => name = Some(nla_string(value)),
            IFLA_MTU => mtu = Some(nla_u32("IFLA_MTU", value)?),
            // A TUN has none; other lengths (IPoIB, tunnels) are not a MAC.
            IFLA_ADDRESS => mac = parse_mac(value).ok(),
            IFLA_TXQLEN => tx_queue_len = nla_u32("IFLA_TXQLEN", value)?,
            IFLA_OPERSTATE => oper_state = nla_u8("IFLA_OPERSTATE", value)?,
            IFLA_LINKINFO => {
                for nla in nlas("IFLA_LINKINFO", value) {
                    match nla? {
                        (IFLA_INFO_KIND, value) => kind = Some(nla_string(value)),
                        (IFLA_INFO_DATA, value) => info_data = Some(value),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let tun = match (kind.as_deref(), info_data) {
        (Some("tun"), Some(data)) => Some(parse_tun(data)?),
        _ => None,
    };
    Ok(LinkInfo {
        index,
        name: name
            .ok_or_else(|| MalformedReply::new(format!("ifindex {index} without IFLA_IFNAME")))?,
        mtu: mtu.ok_or_else(|| MalformedReply::new(format!("ifindex {index} without IFLA_MTU")))?,
        flags,
        link_type,
        mac,
        tx_queue_len,
        oper_state,
        kind,
        tun,
    })
}
