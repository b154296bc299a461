//! Async frontend for `tun-device`: readiness-based wrappers (tokio's
//! `AsyncFd`) that add no behaviour the device itself lacks.
//!
//! The frontend arrives with its own issue; today this crate only names the
//! device layer it wraps.

#![forbid(unsafe_code)]

pub use tun_device as device;
