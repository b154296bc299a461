//! Shared pieces of the privileged async tests (after tun-device's own
//! test helpers): the privilege gate, private namespaces joined by two
//! devices, traffic generators with integrity checks, an independent
//! checksum oracle, hand-made UDP packets, a runtime, and CPU time.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tun_device::{Device, NetNs};

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
    let ns_a = private_ns()?;
    let ns_b = private_ns()?;
    no_dad(&ns_a);
    no_dad(&ns_b);
    let make = |ns: &NetNs, v4: &str, v6: &str| {
        Device::builder()
            .name("relay%d")
            .offload(offload)
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
    const IFA_F_TENTATIVE: u32 = 0x40;
    let deadline = Instant::now() + Duration::from_secs(5);
    while dev
        .addresses()
        .unwrap()
        .iter()
        .any(|a| a.flags & IFA_F_TENTATIVE != 0)
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
