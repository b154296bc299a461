//! Internal crate (not published): the test bed that `tun bench`, the
//! relay benchmark and the tests share. Two private network namespaces
//! with addresses on either side ([`Testbed`]), TUN devices or a kernel
//! veth pair joining them ([`Veth`], made over tun-device's own netlink
//! client), and built-in TCP and UDP (`UDP_SEGMENT`) traffic that checks
//! every byte it receives ([`Traffic`]), cancellable at any point
//! ([`Cancel`]).
//!
//! For the tests of every crate it also holds what two test trees would
//! otherwise each write: the privilege gate ([`privilege`]), external
//! programs run inside a namespace ([`output`]), the stamped payloads of
//! checked datagrams ([`pattern`]), and an independent check of the
//! packets a test sees on their way ([`packet`]).
//!
//! Traffic goes only between the two namespaces, which this crate makes
//! and which vanish with the [`Testbed`] value.
//!
//! Every error is an [`Error`] that names the step that failed (which
//! socket call, which netlink request, on which side).

#![forbid(unsafe_code)]

mod cancel;
mod checked;
mod command;
mod error;
mod namespaces;
pub mod packet;
pub mod pattern;
pub mod privilege;
mod tcp;
mod traffic;
mod udp;
mod veth;

pub use cancel::Cancel;
pub use command::output;
pub use error::{Error, Result};
pub use namespaces::{A4, A6, B4, B6, Side, Testbed, link_names, settle};
pub use privilege::{private_ns, quiet_ns, required, testbed};
pub use traffic::{TCP_PORT, Traffic, UDP_PORT};
pub use udp::{LOSSLESS_WINDOW, UDP_MAX_SEGMENTS, datagrams_per_send, max_udp_payload};
pub use veth::{UNDERLAY_A4, UNDERLAY_A6, UNDERLAY_B4, UNDERLAY_B6, Veth, underlay_addr};

/// README.md's code, compiled as a doctest so that its example keeps
/// building as pasted (only under `cargo test --doc`; no item of the crate).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
