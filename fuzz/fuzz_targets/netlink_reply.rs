//! cargo-fuzz target `netlink_reply`: see `fuzz/src/netlink_reply.rs`.
#![no_main]

#[path = "../src/netlink_reply.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::netlink_reply(data));
