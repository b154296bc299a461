//! Shared pieces of the privileged async tests: a device on each side of
//! a test bed, or one device alone in a quiet namespace (tun-testbed, which
//! also holds the privilege gate and the checked traffic), hand-made UDP
//! packets (tun-test-support), runtimes, relays under test, and CPU time.

#![allow(dead_code, unused_imports)]

pub use tun_testbed::packet::verify_packet;
pub use tun_testbed::{A4, A6, B4, B6, Side, Testbed, output, private_ns, quiet_ns, testbed};

use std::net::Ipv4Addr;

use tun_device::{Device, NetNs};

/// A TUN device on each side of a fresh test bed (MTU 1500, one queue,
/// offload as asked), holding the bed's addresses; `None` where the
/// privilege gate skips.
pub fn pair(offload: bool) -> Option<(Testbed, Device, Device)> {
    let tb = testbed()?;
    let (a, b) = tb
        .devices(|| Device::builder().name("relay%d").offload(offload).mtu(1500))
        .expect("devices");
    Some((tb, a, b))
}

/// A two-worker runtime, like the machine's two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A complete IPv4/UDP packet (DF set) from `src:sport` to `dst:dport`
/// with checksums computed by the oracle.
pub fn udp4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let ip = tun_test_support::Ip {
        df: true,
        ..tun_test_support::Ip::v4(src.octets(), dst.octets())
    };
    tun_test_support::udp(&ip, sport, dport, payload)
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

/// One device `name` in `ns` with side A's IPv4 address of the test bed,
/// /24 (settled): packets to [`B4`] go out through it.
pub fn single(ns: &NetNs, name: &str, offload: bool, queues: usize) -> Device {
    let [v4, _] = Testbed::addresses(Side::A);
    let dev = Device::builder()
        .name(name)
        .offload(offload)
        .queues(queues)
        .address(v4)
        .netns(ns.try_clone().unwrap())
        .build()
        .expect("device");
    tun_testbed::settle(&dev).expect("settle");
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

/// A current-thread runtime.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// `fut`, or `None` after `d` (on backend `B`'s timer).
pub async fn timeout<B: tun_async::Backend, T>(
    d: std::time::Duration,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    let mut fut = std::pin::pin!(fut);
    let mut sleep = std::pin::pin!(B::sleep(d));
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(v));
        }
        sleep.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// Drives one test body on one runtime: tokio's current-thread and
/// multi-thread runtimes (with their reactor entered, as registration
/// needs), or async-io's `block_on` (whose reactor needs no context).
pub type Runner<'r> =
    dyn for<'f> Fn(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'f>>) + 'r;

/// Instantiate `body::<Backend>(runner, ..)` once per runtime: a test
/// module `$name` with `tokio_current_thread`, `tokio_multi_thread` and,
/// with the `async-io` feature, `async_io`.
#[macro_export]
macro_rules! on_every_runtime {
    ($name:ident, $body:ident) => {
        mod $name {
            #[cfg(feature = "tokio")]
            #[test]
            fn tokio_current_thread() {
                let rt = $crate::common::current_thread();
                let _g = rt.enter();
                super::$body::<tun_async::Tokio>(&|f| rt.block_on(f));
            }

            #[cfg(feature = "tokio")]
            #[test]
            fn tokio_multi_thread() {
                let rt = $crate::common::runtime();
                let _g = rt.enter();
                super::$body::<tun_async::Tokio>(&|f| rt.block_on(f));
            }

            #[cfg(feature = "async-io")]
            #[test]
            fn async_io() {
                super::$body::<tun_async::AsyncIo>(&|f| async_io::block_on(f));
            }
        }
    };
}

/// Send `count` UDP datagrams of `len` bytes from inside `ns` to
/// `dst:port`, `gap` apart, each starting with its sequence number.
pub fn udp_send(
    ns: &NetNs,
    dst: Ipv4Addr,
    port: u16,
    count: u64,
    len: usize,
    gap: std::time::Duration,
) {
    let dst = std::net::SocketAddr::from((dst, port));
    ns.run(move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let mut d = vec![0u8; len];
        for seq in 0..count {
            d[..8].copy_from_slice(&seq.to_le_bytes());
            // A refused send (the route went with a link) is the test's
            // business: it counts what arrives.
            let _ = s.send_to(&d, dst);
            if !gap.is_zero() {
                std::thread::sleep(gap);
            }
        }
        Ok(())
    })
    .unwrap();
}

/// A running relay under test: stopping it returns its stats.
pub type Stopper = Box<dyn FnOnce() -> tun_async::relay::Stats + Send>;

/// Stop a relay and say how long that took; a stop that has not returned
/// after 5 s fails the test instead of hanging it.
pub fn timed_stop(stop: Stopper) -> (tun_async::relay::Stats, std::time::Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let t = std::time::Instant::now();
        let stats = stop();
        let _ = tx.send((stats, t.elapsed()));
    });
    rx.recv_timeout(std::time::Duration::from_secs(5))
        .expect("the relay's stop hung for 5 s")
}

/// The tokio relays: one task per direction on a two-worker runtime
/// (`relay::spawn`), or one thread with a current-thread runtime per
/// direction (`relay::spawn_threads`).
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokioRelay {
    Tasks,
    Threads,
}

/// A [`pair`] and a tokio relay of `kind` between its devices: (the test
/// bed, the relay).
#[cfg(feature = "tokio")]
pub fn relay_pair(kind: TokioRelay, offload: bool) -> Option<(Testbed, Stopper)> {
    let (tb, a, b) = pair(offload)?;
    let stop = start_relay(kind, a.into_queues().remove(0), b.into_queues().remove(0));
    Some((tb, stop))
}

/// Start a tokio relay of `kind` between `a` and `b` (default config).
#[cfg(feature = "tokio")]
pub fn start_relay(kind: TokioRelay, a: tun_device::Queue, b: tun_device::Queue) -> Stopper {
    use std::sync::Arc;
    use tun_async::{AsyncQueue, relay};
    match kind {
        TokioRelay::Tasks => {
            let rt = runtime();
            let relay = {
                // Registration needs the runtime's reactor.
                let _g = rt.enter();
                let a = Arc::new(AsyncQueue::new(a).unwrap());
                let b = Arc::new(AsyncQueue::new(b).unwrap());
                relay::spawn(a, b, relay::Config::default())
            };
            Box::new(move || rt.block_on(relay.stop()))
        }
        TokioRelay::Threads => {
            let relay = relay::spawn_threads(a, b, relay::Config::default()).unwrap();
            Box::new(move || relay.stop())
        }
    }
}
