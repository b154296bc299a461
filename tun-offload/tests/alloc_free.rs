//! The receive path allocates nothing: a counting global allocator sees no
//! allocation during splits and checksum completions once buffers exist.

mod common;

use std::alloc::System;

use common::{Ip, as_super, tcp, udp};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tun_offload::{VirtioNetHdr, complete_checksum, split};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn split_allocates_nothing() {
    let payload = vec![0x5au8; 65_000];
    let (h4, p4) = as_super(
        tcp(
            &Ip::v4([10, 0, 0, 1], [10, 0, 0, 2]),
            1,
            2,
            3,
            4,
            0x10,
            &[],
            &payload,
        ),
        1448,
    );
    let (h6, p6) = as_super(
        udp(&Ip::v6("fd00::1", "fd00::2"), 1, 2, &payload[..60_000]),
        1200,
    );
    let mut plain = tcp(
        &Ip::v4([10, 0, 0, 1], [10, 0, 0, 2]),
        1,
        2,
        3,
        4,
        0x10,
        &[],
        &payload[..100],
    );
    let none = VirtioNetHdr::ZERO;
    let mut bufs = vec![vec![0u8; 2048]; 64];
    let mut sizes = vec![0usize; 64];

    let region = Region::new(GLOBAL);
    for _ in 0..10 {
        assert_eq!(split(&h4, &p4, &mut bufs, &mut sizes, 16), Ok(45));
        assert_eq!(split(&h6, &p6, &mut bufs, &mut sizes, 16), Ok(50));
        assert_eq!(split(&none, &plain, &mut bufs, &mut sizes, 0), Ok(1));
        complete_checksum(&none, &mut plain).unwrap();
    }
    let stats = region.change();
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "allocations during splits"
    );
}
