//! cargo-fuzz target `receive`: see `tun_fuzz::receive`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tun_fuzz::receive(data));
