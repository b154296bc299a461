//! The library relay in every mode: a few MiB of TCP (v4 and v6) and UDP
//! sent with UDP_SEGMENT through two devices in private namespaces, every
//! byte checked, nothing lost, the counters checked.

mod common;

use common::*;
use tun_device::relay::{Relay, RelayMode};

const MIB: usize = 1 << 20;

fn case(mode: RelayMode, queues: usize, v6: bool) {
    let offload = mode != RelayMode::Plain;
    let Some(p) = pair(offload, queues) else {
        return;
    };
    let relay = Relay::start(p.a.into_queues(), p.b.into_queues(), mode).unwrap();
    p.tb.tcp_exact(v6, 8 * MIB as u64)
        .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
    p.tb.udp_lossless(v6, 1200, 20, UDP_RUN)
        .unwrap_or_else(|e| panic!("{mode:?}: datagrams lost or damaged: {e}"));
    assert!(relay.is_running());
    let (ab, ba) = relay.stop().unwrap();
    assert_eq!(ab.dropped + ba.dropped, 0, "{ab:?} {ba:?}");
    assert!(ab.bytes_in >= 8 * MIB as u64, "{ab:?}");
    assert!(ab.packets_in >= (8 * MIB / 1500) as u64, "{ab:?}");
    match mode {
        RelayMode::Plain => {
            assert_eq!(ab.super_packets_in, 0);
            assert_eq!(ab.writes, ab.packets_in);
        }
        RelayMode::Offload | RelayMode::Passthrough => {
            assert!(ab.super_packets_in > 0, "{ab:?}");
            assert!(ab.coalescing_ratio() > 2.0, "{ab:?}");
        }
    }
}

#[test]
fn plain_v4() {
    case(RelayMode::Plain, 1, false);
}

#[test]
fn plain_v6() {
    case(RelayMode::Plain, 1, true);
}

#[test]
fn offload_v4() {
    case(RelayMode::Offload, 1, false);
}

#[test]
fn offload_v6() {
    case(RelayMode::Offload, 1, true);
}

#[test]
fn passthrough_v4() {
    case(RelayMode::Passthrough, 1, false);
}

#[test]
fn passthrough_v6() {
    case(RelayMode::Passthrough, 1, true);
}

#[test]
fn offload_two_queue_pairs() {
    case(RelayMode::Offload, 2, false);
}

#[test]
fn modes_that_do_not_fit_are_refused() {
    let Some(p) = pair(false, 1) else {
        return;
    };
    let err = Relay::start(p.a.into_queues(), p.b.into_queues(), RelayMode::Offload).unwrap_err();
    assert_eq!(err.kind(), tun_device::ErrorKind::InvalidConfig, "{err}");
    let Some(p) = pair(true, 2) else { return };
    let mut b = p.b.into_queues();
    b.pop();
    let err = Relay::start(p.a.into_queues(), b, RelayMode::Offload).unwrap_err();
    assert!(err.to_string().contains("2 and 1"), "{err}");
}
