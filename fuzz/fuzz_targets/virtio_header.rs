//! cargo-fuzz target `virtio_header`: see `tun_fuzz::virtio_header`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tun_fuzz::virtio_header(data));
