//! The `RTM_NEWADDR` decoder: `struct ifaddrmsg` and the address
//! attributes an [`Address`] holds.

use std::net::IpAddr;

use ipnet::IpNet;

use super::decode::{field_u32, nla_ip, nla_u32, nlas};
use super::error::MalformedReply;
use super::types::{Address, AddressFlags};

// include/uapi/linux/if_addr.h
const IFADDRMSG_LEN: usize = 8;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;

/// Decodes an `RTM_NEWADDR` payload (`struct ifaddrmsg` then attributes) into
/// the owning ifindex and the address; families other than IPv4 and IPv6
/// give `None`.
pub(super) fn parse_address(payload: &[u8]) -> Result<Option<(u32, Address)>, MalformedReply> {
    let header = payload.get(..IFADDRMSG_LEN);
    let (Some(&[family, prefix_len, header_flags, scope]), Some(index)) =
        (header.and_then(|h| h.get(..4)), field_u32(payload, 4..8))
    else {
        return Err(MalformedReply::new(format!(
            "ifaddrmsg of {} bytes",
            payload.len()
        )));
    };
    if !matches!(i32::from(family), libc::AF_INET | libc::AF_INET6) {
        return Ok(None);
    }
    let mut address = None;
    let mut local = None;
    let mut broadcast = None;
    let mut flags = u32::from(header_flags);
    for nla in nlas(
        "the address attributes",
        payload.get(IFADDRMSG_LEN..).unwrap_or_default(),
    ) {
        match nla? {
            (IFA_ADDRESS, value) => address = Some(nla_ip("IFA_ADDRESS", family, value)?),
            (IFA_LOCAL, value) => local = Some(nla_ip("IFA_LOCAL", family, value)?),
            (IFA_FLAGS, value) => flags = nla_u32("IFA_FLAGS", value)?,
            (IFA_BROADCAST, value) => match nla_ip("IFA_BROADCAST", family, value)? {
                IpAddr::V4(v4) => broadcast = Some(v4),
                IpAddr::V6(_) => {
                    return Err(MalformedReply::new("IFA_BROADCAST on an IPv6 address"));
                }
            },
            _ => {}
        }
    }
    let Some(own) = local.or(address) else {
        return Err(MalformedReply::new(format!(
            "address on ifindex {index} without IFA_LOCAL or IFA_ADDRESS"
        )));
    };
    let addr = IpNet::new(own, prefix_len)
        .map_err(|_| MalformedReply::new(format!("prefix length {prefix_len} for {own}")))?;
    let peer = match (local, address) {
        (Some(local), Some(address)) if local != address => Some(address),
        _ => None,
    };
    Ok(Some((
        index,
        Address {
            addr,
            peer,
            broadcast,
            flags: AddressFlags::from_bits_retain(flags),
            scope,
        },
    )))
}
