//! A test bed for relays (feature `testbed`): two private network
//! namespaces with addresses on either side, devices or a veth pair joining
//! them, and built-in TCP and UDP (`UDP_SEGMENT`) traffic that checks every
//! byte it receives. The relay benchmark, `tun bench` and tests share it.
//!
//! Traffic goes only between the two namespaces, which this module makes
//! and which vanish with the [`Testbed`] value.
//!
//! Data integrity is checked against a known pattern: every stream sends a
//! fixed pseudo-random pattern of a prime length over and over, and the
//! receiver compares each byte it reads with the pattern at its stream
//! offset, so a lost, repeated, reordered or damaged segment is caught at
//! memory-compare speed (a hash of the stream would cost more CPU than the
//! relay being measured).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::netlink::Netlink;
use crate::netns::NetNs;
use crate::{Device, DeviceBuilder};

/// IPv4 address of side A.
pub const A4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// IPv4 address of side B.
pub const B4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// IPv6 address of side A.
pub const A6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1);
/// IPv6 address of side B.
pub const B6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 2);

/// Length of the repeating pattern: a prime, so that no packet or segment
/// size lines up with it.
const PATTERN_LEN: usize = 262_139;

/// Which side of the bed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Namespace A (where traffic is sent from).
    A,
    /// Namespace B (where traffic is received).
    B,
}

/// Two private network namespaces.
#[derive(Debug)]
pub struct Testbed {
    /// Namespace A.
    pub ns_a: NetNs,
    /// Namespace B.
    pub ns_b: NetNs,
}

fn io_error(op: tun_sys::Op, e: &std::io::Error) -> Error {
    Error::Sys(tun_sys::Error::new(
        op,
        e.raw_os_error().unwrap_or(libc::EIO),
    ))
}

impl Testbed {
    /// Two fresh namespaces with loopback up and IPv6 duplicate address
    /// detection off (addresses usable at once). Needs CAP_SYS_ADMIN.
    pub fn new() -> Result<Self> {
        let ns_a = NetNs::new_anonymous()?;
        let ns_b = NetNs::new_anonymous()?;
        for ns in [&ns_a, &ns_b] {
            ns.run(|| {
                for p in [
                    "/proc/sys/net/ipv6/conf/all/accept_dad",
                    "/proc/sys/net/ipv6/conf/default/accept_dad",
                ] {
                    std::fs::write(p, "0").map_err(|e| io_error(tun_sys::Op::SetNetns, &e))?;
                }
                let mut nl = Netlink::open()?;
                let lo = nl.link_by_name("lo")?;
                nl.set_up(lo.index, true)?;
                Ok(())
            })?;
        }
        Ok(Self { ns_a, ns_b })
    }

    /// The namespace of `side`.
    pub fn ns(&self, side: Side) -> &NetNs {
        match side {
            Side::A => &self.ns_a,
            Side::B => &self.ns_b,
        }
    }

    /// The addresses (with prefixes) of `side`.
    pub fn addresses(side: Side) -> [IpNet; 2] {
        let (v4, v6) = match side {
            Side::A => (A4, A6),
            Side::B => (B4, B6),
        };
        [
            IpNet::new(IpAddr::V4(v4), 24).unwrap_or_default(),
            IpNet::new(IpAddr::V6(v6), 64).unwrap_or_default(),
        ]
    }

    /// The address of `side` in the family of `v6`.
    pub fn addr(side: Side, v6: bool) -> IpAddr {
        match (side, v6) {
            (Side::A, false) => IpAddr::V4(A4),
            (Side::B, false) => IpAddr::V4(B4),
            (Side::A, true) => IpAddr::V6(A6),
            (Side::B, true) => IpAddr::V6(B6),
        }
    }

    /// Add `side`'s addresses to `builder` and create the device in that
    /// side's namespace; returns once its addresses are usable.
    pub fn device(&self, side: Side, builder: DeviceBuilder) -> Result<Device> {
        let mut b = builder.netns(self.ns(side).try_clone()?);
        for a in Self::addresses(side) {
            b = b.address(a);
        }
        let dev = b.build()?;
        settle(&dev)?;
        Ok(dev)
    }

    /// Join the namespaces with a veth pair (the kernel-only path), MTU
    /// `mtu`, addressed like the devices. The pair goes with the value.
    pub fn veth(&self, mtu: u32) -> Result<Veth> {
        let ns_b = self.ns_b.try_clone()?;
        let (a_index, _) = self.ns_a.run(|| {
            let mut nl = Netlink::open()?;
            let out = std::process::Command::new("ip")
                .args([
                    "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b",
                ])
                .output()
                .map_err(|e| io_error(tun_sys::Op::OpenTun, &e))?;
            if !out.status.success() {
                return Err(Error::Sys(tun_sys::Error::new(
                    tun_sys::Op::OpenTun,
                    libc::EINVAL,
                )));
            }
            let a = nl.link_by_name("veth-a")?;
            let b = nl.link_by_name("veth-b")?;
            nl.move_to_netns(b.index, ns_b.as_fd())?;
            nl.set_mtu(a.index, mtu)?;
            for addr in Self::addresses(Side::A) {
                nl.add_address(a.index, addr, None)?;
            }
            nl.set_up(a.index, true)?;
            Ok((a.index, b.index))
        })?;
        self.ns_b.run(|| {
            let mut nl = Netlink::open()?;
            let b = nl.link_by_name("veth-b")?;
            nl.set_mtu(b.index, mtu)?;
            for addr in Self::addresses(Side::B) {
                nl.add_address(b.index, addr, None)?;
            }
            nl.set_up(b.index, true)?;
            Ok(())
        })?;
        let ns_a = self.ns_a.try_clone()?;
        // Wait until both ends can use their addresses.
        for (ns, name) in [(&self.ns_a, "veth-a"), (&self.ns_b, "veth-b")] {
            ns.run(|| {
                let mut nl = Netlink::open()?;
                let index = nl.link_by_name(name)?.index;
                wait_settled(&mut nl, index)
            })?;
        }
        Ok(Veth {
            ns_a,
            index: a_index,
        })
    }
}

/// A veth pair between the namespaces of a [`Testbed`], deleted on drop.
#[derive(Debug)]
pub struct Veth {
    ns_a: NetNs,
    index: u32,
}

impl Drop for Veth {
    fn drop(&mut self) {
        let index = self.index;
        let _ = self.ns_a.run(|| Ok(Netlink::open()?.delete_link(index)?));
    }
}

fn wait_settled(nl: &mut Netlink, index: u32) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while nl.addresses(index)?.iter().any(|a| a.is_tentative()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Wait until no address of `dev` is tentative (IPv6 finishes an address
/// in a work queue after the link comes up).
pub fn settle(dev: &Device) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while dev.addresses()?.iter().any(|a| a.is_tentative()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// The pattern every stream sends.
fn pattern() -> Arc<Vec<u8>> {
    let mut v = vec![0u8; PATTERN_LEN + (1 << 17)];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in v[..PATTERN_LEN].iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    // A copy of the start behind the end, so that any window of up to
    // 128 KiB starting in the pattern is one slice.
    let (head, tail) = v.split_at_mut(PATTERN_LEN);
    tail.copy_from_slice(&head[..1 << 17]);
    Arc::new(v)
}

/// What a traffic run measured.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Traffic {
    /// Payload bytes received intact.
    pub bytes: u64,
    /// Seconds from the first send to the last byte received.
    pub secs: f64,
    /// Whether everything received was intact (and, for TCP, everything
    /// sent was received).
    pub intact: bool,
    /// Datagrams received damaged or twice (UDP), or streams that failed (TCP).
    pub damaged: u64,
    /// Datagrams sent but not received (UDP; loss is normal without
    /// congestion control).
    pub lost: u64,
}

impl Traffic {
    /// Throughput in Gbit/s.
    pub fn gbits(&self) -> f64 {
        if self.secs > 0.0 {
            self.bytes as f64 * 8.0 / self.secs / 1e9
        } else {
            0.0
        }
    }
}

const TCP_PORT: u16 = 5201;
const UDP_PORT: u16 = 5202;

fn bind_retry<T>(mut f: impl FnMut() -> std::io::Result<T>) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e)
                if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(io_error(tun_sys::Op::ControlSocket, &e)),
        }
    }
}

impl Testbed {
    /// `streams` TCP connections from A to B (IPv6 with `v6`), each
    /// sending for `duration` (or, with `bytes`, exactly that many bytes
    /// per stream), every received byte checked.
    pub fn tcp(
        &self,
        v6: bool,
        streams: usize,
        duration: Duration,
        bytes: Option<u64>,
    ) -> Result<Traffic> {
        let dst = SocketAddr::new(Self::addr(Side::B, v6), TCP_PORT);
        let pat = pattern();
        let listener = self
            .ns_b
            .run(move || bind_retry(|| TcpListener::bind(dst)))?;
        // A sender that never connects must not leave accept() waiting.
        let _ = nix::sys::socket::setsockopt(
            &listener,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(15, 0),
        );
        let pat_rx = pat.clone();
        let server = self.ns_b.spawn(move || -> Vec<(u64, bool)> {
            let mut handles = Vec::new();
            for _ in 0..streams {
                let Ok((mut s, _)) = listener.accept() else {
                    break;
                };
                let pat = pat_rx.clone();
                handles.push(std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 17];
                    let mut off = 0usize;
                    let mut n = 0u64;
                    let mut ok = true;
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) => break,
                            Ok(k) => {
                                if buf[..k] != pat[off..off + k] {
                                    ok = false;
                                }
                                off = (off + k) % PATTERN_LEN;
                                n += k as u64;
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(_) => {
                                ok = false;
                                break;
                            }
                        }
                    }
                    (n, ok)
                }));
            }
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or((0, false)))
                .collect()
        })?;
        let start = Instant::now();
        let mut senders = Vec::new();
        for _ in 0..streams {
            let pat = pat.clone();
            senders.push(self.ns_a.spawn(move || -> (u64, bool) {
                let Ok(mut s) = TcpStream::connect_timeout(&dst, Duration::from_secs(10)) else {
                    return (0, false);
                };
                let chunk = 1 << 17;
                let mut off = 0usize;
                let mut n = 0u64;
                let t0 = Instant::now();
                loop {
                    let k = match bytes {
                        Some(b) if n >= b => break,
                        Some(b) => chunk.min((b - n) as usize),
                        None if t0.elapsed() >= duration => break,
                        None => chunk,
                    };
                    if s.write_all(&pat[off..off + k]).is_err() {
                        return (n, false);
                    }
                    off = (off + k) % PATTERN_LEN;
                    n += k as u64;
                }
                (n, s.shutdown(std::net::Shutdown::Write).is_ok())
            })?);
        }
        let mut sent = 0;
        let mut ok = true;
        for s in senders {
            let (n, good) = s.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            sent += n;
            ok &= good;
        }
        let results = server
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        let secs = start.elapsed().as_secs_f64();
        let got: u64 = results.iter().map(|r| r.0).sum();
        let damaged = results.iter().filter(|r| !r.1).count() as u64 + u64::from(!ok);
        Ok(Traffic {
            bytes: got,
            secs,
            intact: ok && damaged == 0 && results.len() == streams && got == sent,
            damaged,
            lost: 0,
        })
    }

    /// UDP from A to B sent with `UDP_SEGMENT` (`seg`-byte datagrams,
    /// `per_send` per call) for `duration`, every datagram checked. With
    /// `window`, at most that many bytes are in flight (no loss); without,
    /// the sender goes as fast as it can and loss is counted.
    pub fn udp(
        &self,
        v6: bool,
        seg: usize,
        per_send: usize,
        duration: Duration,
        window: Option<u64>,
    ) -> Result<Traffic> {
        let dst = SocketAddr::new(Self::addr(Side::B, v6), UDP_PORT);
        let pat = pattern();
        let sock = self.ns_b.run(move || bind_retry(|| UdpSocket::bind(dst)))?;
        let _ = nix::sys::socket::setsockopt(
            &sock,
            nix::sys::socket::sockopt::RcvBufForce,
            &(16 << 20),
        );
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .map_err(|e| io_error(tun_sys::Op::ControlSocket, &e))?;
        let done = Arc::new(AtomicBool::new(false));
        let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (done2, rec2, pat_rx) = (done.clone(), received.clone(), pat.clone());
        let start = Instant::now();
        let last_rx = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let last_rx2 = last_rx.clone();
        let server = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut seen: Vec<u64> = Vec::new();
            let (mut good, mut bad, mut bytes) = (0u64, 0u64, 0u64);
            loop {
                match sock.recv(&mut buf) {
                    Ok(k) => {
                        let intact = k == seg && k >= 8 && {
                            let seq = u64::from_le_bytes(buf[..8].try_into().unwrap_or_default());
                            let off = (seq as usize).wrapping_mul(7919) % PATTERN_LEN;
                            let word = (seq / 64) as usize;
                            if seen.len() <= word {
                                seen.resize(word + 1, 0);
                            }
                            let fresh = seen[word] & (1 << (seq % 64)) == 0;
                            seen[word] |= 1 << (seq % 64);
                            fresh && buf[8..k] == pat_rx[off..off + k - 8]
                        };
                        if intact {
                            good += 1;
                            bytes += k as u64;
                            rec2.store(bytes, Ordering::Relaxed);
                            last_rx2.store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        } else {
                            bad += 1;
                        }
                    }
                    Err(_) if done2.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
            (good, bad, bytes)
        });
        let rec3 = received.clone();
        let sender = self.ns_a.spawn(move || -> std::io::Result<u64> {
            let any: IpAddr = if v6 {
                Ipv6Addr::UNSPECIFIED.into()
            } else {
                Ipv4Addr::UNSPECIFIED.into()
            };
            let s = UdpSocket::bind(SocketAddr::new(any, 0))?;
            s.connect(dst)?;
            nix::sys::socket::setsockopt(
                &s,
                nix::sys::socket::sockopt::UdpGsoSegment,
                &(seg as i32),
            )?;
            let mut buf = vec![0u8; seg * per_send];
            let mut seq = 0u64;
            let t0 = Instant::now();
            while t0.elapsed() < duration {
                if let Some(w) = window {
                    if seq * seg as u64 > rec3.load(Ordering::Relaxed) + w {
                        std::thread::yield_now();
                        continue;
                    }
                }
                for j in 0..per_send {
                    let d = &mut buf[j * seg..(j + 1) * seg];
                    let q = seq + j as u64;
                    d[..8].copy_from_slice(&q.to_le_bytes());
                    let off = (q as usize).wrapping_mul(7919) % PATTERN_LEN;
                    d[8..].copy_from_slice(&pat[off..off + seg - 8]);
                }
                match s.send(&buf) {
                    Ok(_) => seq += per_send as u64,
                    // A full queue somewhere on the way: try again.
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(seq)
        })?;
        let sent = sender
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))?
            .map_err(|e| io_error(tun_sys::Op::ControlSocket, &e))?;
        // Let the last datagrams arrive, then stop the receiver.
        let mut last = received.load(Ordering::Relaxed);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = received.load(Ordering::Relaxed);
            if now == last {
                break;
            }
            last = now;
        }
        let secs = last_rx.load(Ordering::Relaxed) as f64 / 1e9;
        done.store(true, Ordering::Relaxed);
        let (good, bad, bytes) = server
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        Ok(Traffic {
            bytes,
            secs,
            intact: bad == 0 && (window.is_none() || good == sent),
            damaged: bad,
            lost: sent.saturating_sub(good),
        })
    }
}
