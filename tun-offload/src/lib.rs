//! The pure virtio-net offload engine: `virtio_net_hdr` encode/decode,
//! internet checksums, GSO split of kernel super-packets and GRO coalescing
//! of outgoing batches. No I/O, no unsafe code, `no_std` + `alloc`.

#![no_std]
#![forbid(unsafe_code)]
