//! Shared pieces of the privileged device tests: a device on each side
//! of a test bed (tun-testbed, which also holds the privilege gate and
//! the checked traffic), a relay built from this crate that checks every
//! packet it moves with an independent decoder, and iproute2 as an
//! independent reader.

#![allow(dead_code, unused_imports)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tun_device::{Device, NetNs, Queue, RecvState, SendState, ViewBatch};
use tun_offload::{HdrFlags, VirtioNetHdr};
pub use tun_testbed::packet::verify_packet;
pub use tun_testbed::{A4, A6, B4, B6, Side, Testbed, private_ns, testbed};

/// How long a UDP run of the traffic tests lasts (a few thousand
/// datagrams through a relay).
pub const UDP_RUN: Duration = Duration::from_millis(500);

/// A TUN (or TAP) device on each side of a fresh test bed, offload and
/// queues as asked, MTU 1500, holding the bed's addresses.
pub struct Pair {
    pub tb: Testbed,
    pub a: Device,
    pub b: Device,
}

/// [`Pair`] of TUN devices, or `None` where the privilege gate skips.
pub fn pair(offload: bool, queues: usize) -> Option<Pair> {
    pair_of(false, offload, queues)
}

/// [`Pair`] of TAP devices (Ethernet frames; the kernels resolve each
/// other's MAC with ARP and neighbour discovery across the relay).
pub fn tap_pair(offload: bool, queues: usize) -> Option<Pair> {
    pair_of(true, offload, queues)
}

fn pair_of(tap: bool, offload: bool, queues: usize) -> Option<Pair> {
    let tb = testbed()?;
    let (a, b) = tb
        .devices(|| {
            let b = Device::builder();
            let b = if tap {
                b.tap().name("rtap%d")
            } else {
                b.name("relay%d")
            };
            b.offload(offload).queues(queues).mtu(1500)
        })
        .expect("devices");
    Some(Pair { tb, a, b })
}

/// Run `cmd args` inside `ns` and return stdout (panics on failure).
pub fn run_in(ns: &NetNs, cmd: &str, args: &[&str]) -> String {
    tun_testbed::output(ns, cmd, args).unwrap_or_else(|e| panic!("{e}"))
}

/// `ip -j -d link show dev NAME` in `ns`, parsed: the independent reader.
pub fn ip_link(ns: &NetNs, name: &str) -> serde_json::Value {
    let out = run_in(ns, "ip", &["-j", "-d", "link", "show", "dev", name]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip json");
    v[0].clone()
}

/// `ip -j addr show dev NAME` in `ns`: (address, prefix, peer) of each.
pub fn ip_addrs(ns: &NetNs, name: &str) -> Vec<(String, u64, Option<String>)> {
    let out = run_in(ns, "ip", &["-j", "addr", "show", "dev", name]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip json");
    v[0]["addr_info"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|i| i["scope"] != "link")
                .map(|i| {
                    (
                        i["local"].as_str().unwrap_or_default().to_string(),
                        i["prefixlen"].as_u64().unwrap_or(0),
                        i["address"].as_str().map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Where the IP packet of an Ethernet frame starts (14, or 18 behind one
/// 802.1Q tag) and its EtherType, read without tun-offload.
pub fn frame_l2(f: &[u8]) -> Option<(usize, u16)> {
    let et = |at: usize| Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]));
    match et(12)? {
        0x8100 => Some((18, et(16)?)),
        t => Some((14, t)),
    }
}

/// What a relay direction saw.
#[derive(Debug, Default)]
pub struct Counts {
    /// Frames that carry ARP or IPv6 neighbour discovery (TAP only).
    pub neighbour: AtomicU64,
    /// Frames of another EtherType than IPv4, IPv6 or ARP (TAP only).
    pub other_l2: AtomicU64,
    pub packets: AtomicU64,
    pub super_packets: AtomicU64,
    /// Super-packets read into their segments' places (no payload copy).
    pub placed: AtomicU64,
    pub writes: AtomicU64,
    pub merged: AtomicU64,
    /// Packets handed out with a partial checksum (a NEEDS_CSUM header in
    /// front), checked after completing a copy ([`Mode::Partial`]).
    pub partial: AtomicU64,
    pub oversize: AtomicU64,
    pub bad: AtomicU64,
    pub errors: AtomicU64,
}

impl Counts {
    /// Fail unless the direction `dir` saw no packet failing the checks,
    /// none over the MTU (plus its Ethernet header on a TAP) and no error.
    pub fn assert_clean(&self, dir: &str) {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!(
            load(&self.bad),
            0,
            "{dir}: packets failing checks: {self:?}"
        );
        assert_eq!(
            load(&self.oversize),
            0,
            "{dir}: packets over the MTU: {self:?}"
        );
        assert_eq!(load(&self.errors), 0, "{dir}: relay errors: {self:?}");
    }
}

/// How a relay direction moves packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `recv_batch` (split) and `send_batch` (coalesce).
    Batch,
    /// [`Mode::Batch`] with partial checksums on both sides, as the
    /// library's relay runs: each packet is checked after a copy of it is
    /// completed under the header in front of it, as the kernel would.
    Partial,
    /// `recv` and `send`, one packet each.
    Single,
    /// `recv_vectored` and `send_vectored` over two slices.
    Vectored,
    /// `recv_views` and `send_views`: each packet checked from its two
    /// pieces, put together.
    Views,
    /// [`Mode::Views`] with partial checksums, each packet checked after a
    /// copy of it is completed under its view's header.
    ViewsPartial,
}

impl Mode {
    /// Whether checksums are left partial between receive and send.
    pub fn partial(self) -> bool {
        matches!(self, Mode::Partial | Mode::ViewsPartial)
    }
}

/// Check a frame from a TAP: IP frames fit the MTU plus their Ethernet
/// header and verify; ARP and neighbour discovery are counted.
fn check_frame(f: &[u8], mtu: usize, counts: &Counts) {
    let Some((l2, et)) = frame_l2(f) else {
        eprintln!("frame of {} bytes: no Ethernet header", f.len());
        counts.bad.fetch_add(1, Ordering::Relaxed);
        return;
    };
    match et {
        0x0806 => {
            counts.neighbour.fetch_add(1, Ordering::Relaxed);
        }
        0x0800 | 0x86dd => {
            let p = &f[l2..];
            // ICMPv6 (no extension headers) neighbour solicitation/advertisement.
            if et == 0x86dd && p.get(6) == Some(&58) && matches!(p.get(40), Some(135 | 136)) {
                counts.neighbour.fetch_add(1, Ordering::Relaxed);
            }
            if et == 0x0800 && p.first().map(|b| b >> 4) != Some(4)
                || et == 0x86dd && p.first().map(|b| b >> 4) != Some(6)
            {
                eprintln!(
                    "frame of EtherType {et:#x} carries IP version {:?}",
                    p.first()
                );
                counts.bad.fetch_add(1, Ordering::Relaxed);
            }
            check(p, mtu, counts);
            if f.len() > mtu + l2 {
                counts.oversize.fetch_add(1, Ordering::Relaxed);
            }
        }
        _ => {
            counts.other_l2.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn check(p: &[u8], mtu: usize, counts: &Counts) {
    if p.len() > mtu {
        counts.oversize.fetch_add(1, Ordering::Relaxed);
    }
    if let Err(why) = verify_packet(p).and_then(|()| verify_tunnel_inner(p)) {
        eprintln!("packet of {} bytes: {why}", p.len());
        counts.bad.fetch_add(1, Ordering::Relaxed);
    }
}

/// The UDP destination ports of VXLAN (IANA) and Geneve.
pub const VXLAN_PORT: u16 = 4789;
pub const GENEVE_PORT: u16 = 6081;

/// The inner IP packet of a VXLAN or Geneve datagram (an IP packet to
/// [`VXLAN_PORT`] or [`GENEVE_PORT`]) behind its inner Ethernet header,
/// read without tun-offload; `None` for any other packet, and for a
/// datagram that carries no IP (ARP).
pub fn tunnel_inner(p: &[u8]) -> Option<Result<&[u8], String>> {
    let udp = match p.first()? >> 4 {
        4 if p.get(9) == Some(&17) => usize::from(p[0] & 15) * 4,
        6 if p.get(6) == Some(&17) => 40,
        _ => return None,
    };
    let port = u16::from_be_bytes([*p.get(udp + 2)?, *p.get(udp + 3)?]);
    let tnl = udp + 8;
    let eth = match port {
        VXLAN_PORT => tnl + 8,
        // Version and option length (in 4-byte words), then 8 bytes.
        GENEVE_PORT => tnl + 8 + usize::from(p.get(tnl)? & 0x3f) * 4,
        _ => return None,
    };
    match frame_l2(p.get(eth..)?) {
        Some((l2, 0x0800 | 0x86dd)) => Some(Ok(&p[eth + l2..])),
        // ARP and the like: nothing to verify.
        Some(_) => None,
        None => Some(Err("tunnel datagram without inner Ethernet header".into())),
    }
}

/// Whether the inner packet of a tunnel datagram verifies (other packets
/// pass): its IPv4 header and transport checksums.
pub fn verify_tunnel_inner(p: &[u8]) -> Result<(), String> {
    match tunnel_inner(p) {
        None => Ok(()),
        Some(inner) => verify_packet(inner?).map_err(|why| format!("inner packet: {why}")),
    }
}

/// One direction: receive from `from`, check every packet, send to `to`.
pub fn pump(from: &Queue, to: &Queue, stop: &AtomicBool, counts: &Counts, mtu: usize, mode: Mode) {
    const OFF: usize = 10;
    let check = |p: &[u8], mtu: usize, counts: &Counts| {
        if from.interface().is_tap() {
            check_frame(p, mtu, counts)
        } else {
            check(p, mtu, counts)
        }
    };
    let mut rx = RecvState::new();
    // The library's relay covers the default (copying) receive; this one
    // reads super-packets into place, so real traffic checks that path.
    rx.set_read_into_place(true);
    let mut tx = SendState::new();
    rx.set_partial_checksums(mode.partial());
    tx.set_partial_checksums(mode.partial());
    let mut views = ViewBatch::new();
    // A partial packet, checked after a copy is completed as the kernel
    // would complete it.
    let check_partial = |hdr: &VirtioNetHdr, pkt: &[u8], counts: &Counts| {
        if hdr.flags().contains(HdrFlags::NEEDS_CSUM) {
            counts.partial.fetch_add(1, Ordering::Relaxed);
        }
        let mut done = pkt.to_vec();
        match tun_offload::complete_checksum(hdr, &mut done) {
            Ok(()) => check(&done, mtu, counts),
            Err(e) => {
                eprintln!("packet of {} bytes behind {hdr:?}: {e}", pkt.len());
                counts.bad.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    // Room for a run coalesced up to 64 KiB of IP behind a tagged Ethernet header.
    let mut bufs = vec![vec![0u8; OFF + 18 + 65535]; 64];
    let mut lens = vec![0usize; 64];
    while !stop.load(Ordering::Relaxed) {
        match from.wait_readable(Some(Duration::from_millis(50))) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => break,
        }
        let res = match mode {
            Mode::Batch | Mode::Partial => from.recv_batch(&mut rx, &mut bufs, &mut lens, OFF),
            Mode::Views | Mode::ViewsPartial => from.recv_views(&mut rx, &mut views),
            Mode::Single => from.recv(&mut bufs[0]).map(|n| {
                lens[0] = n;
                1
            }),
            Mode::Vectored => {
                let (x, y) = bufs[0].split_at_mut(700);
                let mut iov = [std::io::IoSliceMut::new(x), std::io::IoSliceMut::new(y)];
                from.recv_vectored(&mut iov).map(|n| {
                    lens[0] = n;
                    1
                })
            }
        };
        let n = match res {
            Ok(n) => n,
            Err(e) if e.is_would_block() => continue,
            Err(e) if e.is_device_gone() => break,
            Err(e) => {
                eprintln!("recv: {e}");
                counts.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        counts.packets.fetch_add(n as u64, Ordering::Relaxed);
        let sent = match mode {
            Mode::Batch | Mode::Partial => {
                for i in 0..n {
                    let pkt = &bufs[i][OFF..OFF + lens[i]];
                    if mode == Mode::Batch {
                        check(pkt, mtu, counts);
                        continue;
                    }
                    let hdr = VirtioNetHdr::decode(&bufs[i][..OFF]).expect("header in front");
                    check_partial(&hdr, pkt, counts);
                }
                to.send_batch(&mut tx, &bufs[..n], &lens[..n], OFF)
                    .map(|r| {
                        counts.writes.fetch_add(r.writes as u64, Ordering::Relaxed);
                        counts
                            .merged
                            .fetch_add(tx.gro_stats().segments_merged as u64, Ordering::Relaxed);
                    })
            }
            Mode::Views | Mode::ViewsPartial => {
                for i in 0..n {
                    let (head, tail, hdr) = views.packet(i).expect("a view per packet");
                    let pkt = [head, tail].concat();
                    if mode == Mode::Views {
                        if hdr != VirtioNetHdr::ZERO {
                            eprintln!("view {i} carries {hdr:?} with complete checksums");
                            counts.bad.fetch_add(1, Ordering::Relaxed);
                        }
                        check(&pkt, mtu, counts);
                    } else {
                        check_partial(&hdr, &pkt, counts);
                    }
                }
                to.send_views(&mut tx, &views).map(|r| {
                    counts.writes.fetch_add(r.writes as u64, Ordering::Relaxed);
                    counts
                        .merged
                        .fetch_add(tx.gro_stats().segments_merged as u64, Ordering::Relaxed);
                })
            }
            Mode::Single => {
                check(&bufs[0][..lens[0]], mtu, counts);
                counts.writes.fetch_add(1, Ordering::Relaxed);
                to.send(&bufs[0][..lens[0]]).map(drop)
            }
            Mode::Vectored => {
                check(&bufs[0][..lens[0]], mtu, counts);
                counts.writes.fetch_add(1, Ordering::Relaxed);
                let (x, y) = bufs[0][..lens[0]].split_at(lens[0].min(33));
                to.send_vectored(&[std::io::IoSlice::new(x), std::io::IoSlice::new(y)])
                    .map(drop)
            }
        };
        match sent {
            Ok(()) => {}
            Err(e) if e.is_device_gone() => break,
            Err(e) => {
                eprintln!("send: {e}");
                counts.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    counts
        .super_packets
        .fetch_add(rx.stats().super_packets, Ordering::Relaxed);
    counts
        .placed
        .fetch_add(rx.stats().placed, Ordering::Relaxed);
}

/// A relay between the first queues of a pair, both directions.
pub struct Relay {
    pub stop: Arc<AtomicBool>,
    pub ab: Arc<Counts>,
    pub ba: Arc<Counts>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    pub fn start(a: Queue, b: Queue, mtu: usize) -> Relay {
        Self::start_with(a, b, mtu, Mode::Batch)
    }

    pub fn start_with(a: Queue, b: Queue, mtu: usize, mode: Mode) -> Relay {
        let stop = Arc::new(AtomicBool::new(false));
        let ab = Arc::new(Counts::default());
        let ba = Arc::new(Counts::default());
        let a = Arc::new(a);
        let b = Arc::new(b);
        let mut threads = Vec::new();
        for (from, to, c) in [(a.clone(), b.clone(), ab.clone()), (b, a, ba.clone())] {
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                pump(&from, &to, &stop, &c, mtu, mode)
            }));
        }
        Relay {
            stop,
            ab,
            ba,
            threads,
        }
    }

    pub fn finish(mut self) -> (Arc<Counts>, Arc<Counts>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        (self.ab.clone(), self.ba.clone())
    }
}
