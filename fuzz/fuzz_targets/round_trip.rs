//! cargo-fuzz target `round_trip`: see `tun_fuzz::round_trip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tun_fuzz::round_trip(data));
