//! cargo-fuzz target `tunnel`: see `tun_fuzz::tunnel`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tun_fuzz::tunnel(data));
