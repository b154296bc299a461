//! Shared pieces of the privileged async tests: tun-device's own test
//! helpers (the privilege gate, private namespaces joined by two devices,
//! traffic generators with integrity checks, an independent checksum
//! oracle), plus hand-made UDP packets, a runtime, and CPU time.

#![allow(dead_code, unused_imports)]

#[path = "../../../tun-device/tests/common/mod.rs"]
mod device;

pub use device::*;

use tun_device::{Device, NetNs};

/// A two-worker runtime, like the machine's two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A complete IPv4/UDP packet from `src:sport` to `dst:dport` with
/// checksums computed by the oracle.
pub fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    let c = naive_sum(&[&p[..20]]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let ulen = (8 + payload.len()) as u16;
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&ulen.to_be_bytes());
    p[28..].copy_from_slice(payload);
    let pseudo = [&src[..], &dst[..], &[0, 17], &ulen.to_be_bytes()].concat();
    let mut c = naive_sum(&[&pseudo, &p[20..]]);
    if c == 0 {
        c = 0xffff;
    }
    p[26..28].copy_from_slice(&c.to_be_bytes());
    p
}

/// CPU time (user + system) of the whole process so far, from
/// `/proc/self/stat`, in clock ticks (1/100 s on Linux).
pub fn process_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
    // Fields after the command name (which is in parentheses): state is
    // field 3, utime field 14, stime field 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// One device `name` in `ns` with 10.9.0.1/24 (addresses settled).
pub fn single(ns: &NetNs, name: &str, offload: bool, queues: usize) -> Device {
    let dev = Device::builder()
        .name(name)
        .offload(offload)
        .queues(queues)
        .address(format!("{A4}/24").parse().unwrap())
        .netns(ns.try_clone().unwrap())
        .build()
        .expect("device");
    settle(&dev);
    dev
}

/// The UDP destination port and payload of an IPv4/UDP packet.
pub fn udp4_payload(p: &[u8]) -> Option<(u16, &[u8])> {
    if p.len() < 28 || p[0] >> 4 != 4 || p[9] != 17 {
        return None;
    }
    let hl = usize::from(p[0] & 15) * 4;
    let dport = u16::from_be_bytes([p[hl + 2], p[hl + 3]]);
    Some((dport, &p[hl + 8..]))
}
