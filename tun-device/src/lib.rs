//! Linux TUN/TAP devices built from `tun-sys` (the raw interface) and
//! `tun-offload` (the packet engine): creation, multi-queue, offload
//! negotiation, batched receive and send, and interface configuration.
//!
//! The device layer arrives with its own issue; today this crate only
//! re-exports the raw layer it builds on.

#![deny(unsafe_code)]

pub use tun_sys as sys;
