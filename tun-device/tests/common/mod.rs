//! Shared pieces of the privileged device tests: the privilege gate,
//! private namespaces joined by two devices and a relay built from this
//! crate, traffic generators with integrity checks, an independent checksum
//! oracle, and iproute2 as an independent reader.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tun_device::{Device, NetNs, Queue, RecvState, SendState};

/// Whether privileged tests must run (CI) rather than skip.
pub fn required() -> bool {
    std::env::var_os("TUN_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1")
}

/// A fresh private namespace, or `None` (with a printed reason) when the
/// privilege is missing and not required.
pub fn private_ns() -> Option<NetNs> {
    match NetNs::new_anonymous() {
        Ok(ns) => Some(ns),
        Err(e) if !required() => {
            eprintln!("skipped: cannot make a network namespace ({e}); run as root");
            None
        }
        Err(e) => panic!("TUN_REQUIRE_PRIVILEGED=1 but no namespace: {e}"),
    }
}

/// Run `cmd args` inside `ns` and return stdout (panics on failure).
pub fn run_in(ns: &NetNs, cmd: &str, args: &[&str]) -> String {
    let cmd = cmd.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    ns.run(move || {
        let out = std::process::Command::new(&cmd)
            .args(&args)
            .output()
            .expect("spawn");
        assert!(
            out.status.success(),
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .unwrap()
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

/// Turn off IPv6 duplicate address detection in `ns`, so addresses are
/// usable at once.
pub fn no_dad(ns: &NetNs) {
    ns.run(|| {
        for p in [
            "/proc/sys/net/ipv6/conf/all/accept_dad",
            "/proc/sys/net/ipv6/conf/default/accept_dad",
        ] {
            std::fs::write(p, "0").expect("sysctl");
        }
        Ok(())
    })
    .unwrap();
}

/// Two private namespaces, each with a device, addresses 10.9.0.1/24 and
/// fd09::1/64 in `a`, 10.9.0.2/24 and fd09::2/64 in `b`.
pub struct Pair {
    pub ns_a: NetNs,
    pub ns_b: NetNs,
    pub a: Device,
    pub b: Device,
}

pub const A4: &str = "10.9.0.1";
pub const B4: &str = "10.9.0.2";
pub const A6: &str = "fd09::1";
pub const B6: &str = "fd09::2";

pub fn pair(offload: bool, queues: usize, mtu: u32) -> Option<Pair> {
    pair_of(false, offload, queues, mtu)
}

/// [`pair`] with TAP devices (Ethernet frames; the kernels resolve each
/// other's MAC with ARP and neighbour discovery across the relay).
pub fn tap_pair(offload: bool, queues: usize, mtu: u32) -> Option<Pair> {
    pair_of(true, offload, queues, mtu)
}

fn pair_of(tap: bool, offload: bool, queues: usize, mtu: u32) -> Option<Pair> {
    let ns_a = private_ns()?;
    let ns_b = private_ns()?;
    no_dad(&ns_a);
    no_dad(&ns_b);
    let make = |ns: &NetNs, v4: &str, v6: &str| {
        let b = Device::builder();
        let b = if tap {
            b.tap().name("rtap%d")
        } else {
            b.name("relay%d")
        };
        b.offload(offload)
            .queues(queues)
            .mtu(mtu)
            .address(format!("{v4}/24").parse().unwrap())
            .address(format!("{v6}/64").parse().unwrap())
            .netns(ns.try_clone().unwrap())
            .build()
            .expect("device")
    };
    let a = make(&ns_a, A4, A6);
    let b = make(&ns_b, B4, B6);
    settle(&a);
    settle(&b);
    Some(Pair { ns_a, ns_b, a, b })
}

/// Wait until no address of `dev` is tentative (IPv6 finishes setting up
/// an address in a work queue after the link comes up).
pub fn settle(dev: &Device) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while dev
        .interface()
        .addresses()
        .unwrap()
        .iter()
        .any(|a| a.is_tentative())
    {
        assert!(Instant::now() < deadline, "addresses still tentative");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// RFC 1071 sum, written without tun-offload: the independent oracle.
pub fn naive_sum(chunks: &[&[u8]]) -> u16 {
    let mut bytes = Vec::new();
    for c in chunks {
        bytes.extend_from_slice(c);
    }
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut sum: u64 = 0;
    for w in bytes.chunks(2) {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether an IP packet's IPv4 header and TCP/UDP checksums verify
/// (packets of other protocols pass). Returns a reason when not.
pub fn verify_packet(p: &[u8]) -> Result<(), String> {
    let version = p.first().ok_or("empty")? >> 4;
    let (src, dst, proto, l4): (&[u8], &[u8], u8, &[u8]) = match version {
        4 => {
            let hl = usize::from(p[0] & 15) * 4;
            if p.len() < hl || usize::from(u16::from_be_bytes([p[2], p[3]])) != p.len() {
                return Err(format!(
                    "ipv4 length {} vs {}",
                    u16::from_be_bytes([p[2], p[3]]),
                    p.len()
                ));
            }
            if naive_sum(&[&p[..hl]]) != 0 {
                return Err("ipv4 header checksum".into());
            }
            (&p[12..16], &p[16..20], p[9], &p[hl..])
        }
        6 => {
            if p.len() < 40 || usize::from(u16::from_be_bytes([p[4], p[5]])) + 40 != p.len() {
                return Err("ipv6 length".into());
            }
            (&p[8..24], &p[24..40], p[6], &p[40..])
        }
        v => return Err(format!("ip version {v}")),
    };
    if proto != 6 && proto != 17 {
        return Ok(());
    }
    let len = (l4.len() as u32).to_be_bytes();
    let pseudo: Vec<u8> = if version == 4 {
        [src, dst, &[0, proto], &len[2..]].concat()
    } else {
        [src, dst, &len[..], &[0, 0, 0, proto]].concat()
    };
    if proto == 17 && l4.len() >= 8 && l4[6..8] == [0, 0] && version == 4 {
        return Ok(()); // no checksum
    }
    if naive_sum(&[&pseudo, l4]) != 0 {
        return Err(format!(
            "transport checksum (proto {proto}, {} bytes)",
            l4.len()
        ));
    }
    Ok(())
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
    pub oversize: AtomicU64,
    pub bad: AtomicU64,
    pub errors: AtomicU64,
}

/// How a relay direction moves packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `recv_batch` (split) and `send_batch` (coalesce).
    Batch,
    /// `recv` and `send`, one packet each.
    Single,
    /// `recv_vectored` and `send_vectored` over two slices.
    Vectored,
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
            Mode::Batch => from.recv_batch(&mut rx, &mut bufs, &mut lens, OFF),
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
            Mode::Batch => {
                for i in 0..n {
                    check(&bufs[i][OFF..OFF + lens[i]], mtu, counts);
                }
                to.send_batch(&mut tx, &bufs[..n], &lens[..n], OFF)
                    .map(|r| {
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

/// A deterministic byte stream (xorshift64*), the same on both ends.
pub struct Stream(u64);

impl Stream {
    pub fn new(seed: u64) -> Self {
        Stream(seed | 1)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// FNV-1a over a byte stream, whatever the chunking.
#[derive(Clone, Copy)]
pub struct Digest(u64);

impl Digest {
    pub fn new() -> Self {
        Digest(0xcbf2_9ce4_8422_2325)
    }
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    pub fn value(self) -> u64 {
        self.0
    }
}

/// Bind, waiting out the moment an IPv6 address stays tentative after the
/// link came up (the kernel finishes address setup in a work queue).
fn bind_retry<T>(mut f: impl FnMut() -> std::io::Result<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e)
                if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("bind: {e}"),
        }
    }
}

/// Send `total` bytes over TCP from `ns_a` to `dst:port` (a listener in
/// `ns_b`); returns (bytes sent, digest sent, bytes received, digest received).
pub fn tcp_transfer(ns_a: &NetNs, ns_b: &NetNs, dst: IpAddr, total: usize) -> (u64, u64, u64, u64) {
    let addr = SocketAddr::new(dst, 5001);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = ns_b
        .spawn(move || {
            let l = bind_retry(|| TcpListener::bind(addr));
            ready_tx.send(()).unwrap();
            let (mut s, _) = l.accept().expect("accept");
            let mut d = Digest::new();
            let mut n = 0u64;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let k = s.read(&mut buf).expect("read");
                if k == 0 {
                    break;
                }
                d.update(&buf[..k]);
                n += k as u64;
            }
            (n, d.value())
        })
        .unwrap();
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server up");
    let client = ns_a
        .spawn(move || {
            let mut s =
                TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
            s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut g = Stream::new(7);
            let mut d = Digest::new();
            let mut buf = vec![0u8; 1 << 18];
            let mut left = total;
            while left > 0 {
                let k = left.min(buf.len());
                g.fill(&mut buf[..k]);
                d.update(&buf[..k]);
                s.write_all(&buf[..k]).expect("write");
                left -= k;
            }
            s.shutdown(std::net::Shutdown::Write).unwrap();
            (total as u64, d.value())
        })
        .unwrap();
    let (sent, dsent) = client.join().unwrap().unwrap();
    let (got, dgot) = server.join().unwrap().unwrap();
    (sent, dsent, got, dgot)
}

/// Send `count` datagrams of `seg` bytes with UDP_SEGMENT (`per_send`
/// segments per send call) from `ns_a` to `dst` in `ns_b`; returns how many
/// arrived intact, and how many arrived damaged or twice.
pub fn udp_gso_transfer(
    ns_a: &NetNs,
    ns_b: &NetNs,
    dst: IpAddr,
    count: u64,
    seg: usize,
    per_send: usize,
) -> (u64, u64) {
    let addr = SocketAddr::new(dst, 5002);
    let got = Arc::new(AtomicU64::new(0));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let got2 = got.clone();
    let server = ns_b
        .spawn(move || {
            let s = bind_retry(|| UdpSocket::bind(addr));
            let _ = nix::sys::socket::setsockopt(
                &s,
                nix::sys::socket::sockopt::RcvBufForce,
                &(8 << 20),
            );
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            ready_tx.send(()).unwrap();
            let mut seen = vec![false; count as usize];
            let mut bad = 0u64;
            let mut ok = 0u64;
            let mut buf = vec![0u8; 65536];
            let mut expect = vec![0u8; seg];
            while ok < count {
                let Ok(k) = s.recv(&mut buf) else { break };
                if k != seg || k < 8 {
                    bad += 1;
                    continue;
                }
                let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
                Stream::new(seq + 1).fill(&mut expect[8..]);
                if seq >= count || buf[8..k] != expect[8..] || seen[seq as usize] {
                    bad += 1;
                    continue;
                }
                seen[seq as usize] = true;
                ok += 1;
                got2.store(ok, Ordering::Relaxed);
            }
            (ok, bad)
        })
        .unwrap();
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server up");
    let got3 = got.clone();
    let client = ns_a
        .spawn(move || {
            let s = UdpSocket::bind(SocketAddr::new(
                if dst.is_ipv4() {
                    "0.0.0.0".parse().unwrap()
                } else {
                    "::".parse().unwrap()
                },
                0,
            ))
            .unwrap();
            s.connect(addr).unwrap();
            nix::sys::socket::setsockopt(
                &s,
                nix::sys::socket::sockopt::UdpGsoSegment,
                &(seg as i32),
            )
            .expect("UDP_SEGMENT");
            let mut buf = vec![0u8; seg * per_send];
            let mut seq = 0u64;
            let deadline = Instant::now() + Duration::from_secs(60);
            while seq < count && Instant::now() < deadline {
                // Keep at most 256 KiB in flight: fewer packets than the
                // device's queue (txqueuelen 500) and the receiving socket
                // hold, so nothing is dropped on the way.
                if (seq - got3.load(Ordering::Relaxed)) as usize * seg > (256 << 10) {
                    std::thread::yield_now();
                    continue;
                }
                let k = (per_send as u64).min(count - seq) as usize;
                for j in 0..k {
                    let d = &mut buf[j * seg..(j + 1) * seg];
                    d[..8].copy_from_slice(&(seq + j as u64).to_le_bytes());
                    Stream::new(seq + j as u64 + 1).fill(&mut d[8..]);
                }
                s.send(&buf[..k * seg]).expect("send");
                seq += k as u64;
            }
        })
        .unwrap();
    client.join().unwrap().unwrap();
    server.join().unwrap().unwrap()
}
