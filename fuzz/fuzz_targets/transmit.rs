//! cargo-fuzz target `transmit`: see `tun_fuzz::transmit`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tun_fuzz::transmit(data));
