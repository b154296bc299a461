//! The TUN/TAP driver's link attributes (`IFLA_TUN_*`, filled by
//! `tun_fill_info()` in drivers/net/tun.c), which netlink-packet-route does
//! not decode: the `IFLA_INFO_DATA` of a link whose kind is `tun`.

use super::decode::{nla_u8, nla_u32, nlas};
use super::error::MalformedReply;
use super::types::TunInfo;

// include/uapi/linux/if_link.h
const IFLA_TUN_OWNER: u16 = 1;
const IFLA_TUN_GROUP: u16 = 2;
const IFLA_TUN_TYPE: u16 = 3;
const IFLA_TUN_PI: u16 = 4;
const IFLA_TUN_VNET_HDR: u16 = 5;
const IFLA_TUN_PERSIST: u16 = 6;
const IFLA_TUN_MULTI_QUEUE: u16 = 7;
const IFLA_TUN_NUM_QUEUES: u16 = 8;
const IFLA_TUN_NUM_DISABLED_QUEUES: u16 = 9;
/// `IFF_TAP` in include/uapi/linux/if_tun.h, the value of `IFLA_TUN_TYPE` for a TAP.
const TUN_TYPE_TAP: u8 = 2;

/// Decodes the `IFLA_INFO_DATA` of a `tun` link (`tun_fill_info()`).
pub(super) fn parse_tun(data: &[u8]) -> Result<TunInfo, MalformedReply> {
    let mut tun = TunInfo::default();
    for nla in nlas("IFLA_INFO_DATA", data) {
        let (attr, value) = nla?;
        match attr {
            IFLA_TUN_OWNER => tun.owner = Some(nla_u32("IFLA_TUN_OWNER", value)?),
            IFLA_TUN_GROUP => tun.group = Some(nla_u32("IFLA_TUN_GROUP", value)?),
            IFLA_TUN_TYPE => tun.tap = nla_u8("IFLA_TUN_TYPE", value)? == TUN_TYPE_TAP,
            IFLA_TUN_PI => tun.pi = nla_u8("IFLA_TUN_PI", value)? != 0,
            IFLA_TUN_VNET_HDR => tun.vnet_hdr = nla_u8("IFLA_TUN_VNET_HDR", value)? != 0,
            IFLA_TUN_PERSIST => tun.persist = nla_u8("IFLA_TUN_PERSIST", value)? != 0,
            IFLA_TUN_MULTI_QUEUE => {
                tun.multi_queue = nla_u8("IFLA_TUN_MULTI_QUEUE", value)? != 0;
            }
            IFLA_TUN_NUM_QUEUES => {
                tun.num_queues = Some(nla_u32("IFLA_TUN_NUM_QUEUES", value)?);
            }
            IFLA_TUN_NUM_DISABLED_QUEUES => {
                tun.num_disabled_queues = Some(nla_u32("IFLA_TUN_NUM_DISABLED_QUEUES", value)?);
            }
            _ => {}
        }
    }
    Ok(tun)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::decode::tests::nla;

    #[test]
    fn tun_info_decoding() {
        let mut data = nla(IFLA_TUN_TYPE, &[2]);
        data.extend(nla(IFLA_TUN_PI, &[0]));
        data.extend(nla(IFLA_TUN_MULTI_QUEUE, &[1]));
        data.extend(nla(IFLA_TUN_NUM_QUEUES, &3u32.to_ne_bytes()));
        let tun = parse_tun(&data).expect("well formed");
        assert!(tun.tap && tun.multi_queue && !tun.pi);
        assert_eq!((tun.owner, tun.num_queues), (None, Some(3)));
        assert!(parse_tun(&nla(IFLA_TUN_OWNER, &[1, 2])).is_err());
    }
}
