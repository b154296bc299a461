//! The socket side: a UDP socket connected to the peer, with quinn-udp's
//! state doing the `sendmsg`/`recvmmsg` calls and their control messages
//! (UDP_SEGMENT on send, UDP_GRO's segment size on receive), and the
//! waits, which poll the socket beside the tunnel's stop eventfd so that a
//! stop ends them at once and an idle socket wakes nobody.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use tun_device::Interrupt;

use crate::error::{Error, Result, SocketOp};
use crate::runs::{MAX_SEND_BYTES, UDP_MAX_SEGMENTS};

/// IP and UDP header bytes in front of a datagram's payload.
pub(crate) const fn headers(v6: bool) -> usize {
    if v6 { 40 + 8 } else { 20 + 8 }
}

/// The socket, its quinn-udp state and what was granted.
#[derive(Debug)]
pub(crate) struct Udp {
    sock: UdpSocket,
    state: UdpSocketState,
    peer: SocketAddr,
    gso_wanted: bool,
    gro: bool,
    max_datagram: usize,
    trust_checksums: bool,
}

/// Whether `errno` is what a refused GSO send gives: a device without
/// checksum offload (EIO), a kernel without UDP_SEGMENT or a segment the
/// route cannot take (EINVAL).
pub(crate) fn is_gso_refusal(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(c) if c == Errno::IO.raw_os_error() || c == Errno::INVAL.raw_os_error())
}

/// Whether `e` says the datagram is larger than the route carries.
pub(crate) fn is_too_large(e: &io::Error) -> bool {
    e.raw_os_error() == Some(Errno::MSGSIZE.raw_os_error())
}

/// What sending a run needs of a socket, so that the pump's send logic
/// (waits, the GSO fallback, the sorting of errors) is tested with a
/// scripted socket.
pub(crate) trait RunSocket {
    /// Send `contents` in `seg`-byte datagrams.
    fn send_run(&self, contents: &[u8], seg: usize) -> io::Result<()>;
    /// Wait until a send may go through; false when `stop` was raised.
    fn wait_writable(&self, stop: &Interrupt) -> Result<bool>;
}

impl RunSocket for Udp {
    fn send_run(&self, contents: &[u8], seg: usize) -> io::Result<()> {
        self.send(contents, seg)
    }

    fn wait_writable(&self, stop: &Interrupt) -> Result<bool> {
        self.wait(PollFlags::OUT, stop)
    }
}

impl Udp {
    /// Prepare `sock` for the tunnel to `peer`: connected (only the peer's
    /// datagrams are received, and the route's MTU is known), non-blocking,
    /// GRO as asked and as granted, large buffers where allowed.
    pub(crate) fn new(
        sock: UdpSocket,
        peer: SocketAddr,
        gso: bool,
        gro: bool,
        max_datagram: Option<usize>,
        trust_checksums: bool,
    ) -> Result<Self> {
        let fail = |op| move |e: io::Error| Error::socket(op, peer, e);
        let local = sock.local_addr().map_err(fail(SocketOp::Setup))?;
        if local.is_ipv4() != peer.is_ipv4() {
            return Err(Error::FamilyMismatch { local, peer });
        }
        sock.connect(peer).map_err(fail(SocketOp::Connect))?;
        let state = UdpSocketState::new((&sock).into()).map_err(fail(SocketOp::Setup))?;
        // quinn-udp turns GRO on where the kernel has it; turn it off when
        // asked, and read back what holds (a kernel without it says no).
        if !gro {
            nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::UdpGroSegment, &false)
                .map_err(|e| fail(SocketOp::Setup)(e.into()))?;
        }
        let gro = gro
            && nix::sys::socket::getsockopt(&sock, nix::sys::socket::sockopt::UdpGroSegment)
                .unwrap_or(false);
        // Room for bursts (a coalesced run from the device is 64 KiB at
        // once); forced where the caller may, as asked otherwise. A
        // refusal only means the defaults stay.
        for force in [true, false] {
            let size = 8 << 20;
            let ok = if force {
                rustix::net::sockopt::set_socket_recv_buffer_size_force(&sock, size).is_ok()
                    && rustix::net::sockopt::set_socket_send_buffer_size_force(&sock, size).is_ok()
            } else {
                let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&sock, size);
                let _ = rustix::net::sockopt::set_socket_send_buffer_size(&sock, size);
                true
            };
            if ok {
                break;
            }
        }
        let v6 = peer.is_ipv6();
        let max_datagram = match max_datagram {
            Some(n) => n,
            None => {
                let mtu = if v6 {
                    rustix::net::sockopt::ipv6_mtu(&sock)
                } else {
                    rustix::net::sockopt::ip_mtu(&sock)
                }
                .map_err(|e| fail(SocketOp::Mtu)(e.into()))?;
                (mtu as usize).saturating_sub(headers(v6))
            }
        }
        .min(MAX_SEND_BYTES);
        Ok(Self {
            sock,
            state,
            peer,
            gso_wanted: gso,
            gro,
            max_datagram,
            trust_checksums,
        })
    }

    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The largest datagram payload the underlay carries to the peer.
    pub(crate) fn max_datagram(&self) -> usize {
        self.max_datagram
    }

    /// Datagrams one send may carry now: 1 without GSO, or once a kernel
    /// refused a GSO send (quinn-udp then lowers its limit to 1).
    pub(crate) fn gso_segments(&self) -> usize {
        if self.gso_wanted {
            self.state.max_gso_segments().clamp(1, UDP_MAX_SEGMENTS)
        } else {
            1
        }
    }

    /// Whether the inner packets' transport checksums are taken as the
    /// peer sent them (not checked again before coalescing).
    pub(crate) fn trust_checksums(&self) -> bool {
        self.trust_checksums
    }

    /// Whether UDP_GRO is on.
    pub(crate) fn gro(&self) -> bool {
        self.gro
    }

    /// Send `contents`, cut into `seg`-byte datagrams when it holds more
    /// than one; every error is returned (quinn-udp's `try_send`).
    pub(crate) fn send(&self, contents: &[u8], seg: usize) -> io::Result<()> {
        let t = Transmit {
            destination: self.peer,
            ecn: None,
            contents,
            segment_size: (contents.len() > seg).then_some(seg),
            src_ip: None,
        };
        self.state.try_send((&self.sock).into(), &t)
    }

    /// Receive into `bufs`, one buffer per `recvmmsg` message.
    pub(crate) fn recv(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        self.state.recv((&self.sock).into(), bufs, meta)
    }

    /// Wait until the socket is ready for `flags` or `stop` is raised;
    /// returns false when stopped.
    pub(crate) fn wait(&self, flags: PollFlags, stop: &Interrupt) -> Result<bool> {
        let mut fds = [
            PollFd::new(&self.sock, flags),
            PollFd::new(stop, PollFlags::IN),
        ];
        loop {
            match rustix::event::poll(&mut fds, None) {
                Ok(_) if !fds[1].revents().is_empty() => return Ok(false),
                Ok(_) => return Ok(true),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(Error::socket(SocketOp::Poll, self.peer, e.into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_sort_into_refusals_and_sizes() {
        let e = |c: Errno| io::Error::from_raw_os_error(c.raw_os_error());
        assert!(is_gso_refusal(&e(Errno::IO)) && is_gso_refusal(&e(Errno::INVAL)));
        assert!(!is_gso_refusal(&e(Errno::NOBUFS)));
        assert!(is_too_large(&e(Errno::MSGSIZE)) && !is_too_large(&e(Errno::INVAL)));
        assert_eq!((headers(false), headers(true)), (28, 48));
    }

    /// On loopback (no namespace needed): a socket pair shows what was
    /// granted, and a run sent with GSO arrives as its datagrams.
    #[test]
    fn loopback_pair_sends_a_run_and_receives_it() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (pa, pb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let ua = Udp::new(a, pb, true, true, None, false).unwrap();
        let ub = Udp::new(b, pa, true, false, None, false).unwrap();
        assert!(!ub.gro(), "GRO off as asked");
        // Loopback's MTU is 65536: the limit is one send's payload.
        assert_eq!(ua.max_datagram(), MAX_SEND_BYTES);
        let run: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        ua.send(&run, 1000).unwrap();
        let stop = Interrupt::new().unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        let mut meta = [RecvMeta::default()];
        while got.len() < 3 {
            match ub.recv(&mut [IoSliceMut::new(&mut buf)], &mut meta) {
                Ok(n) => {
                    assert_eq!(n, 1, "GRO is off: one datagram per message");
                    got.push(buf[..meta[0].len].to_vec());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(ub.wait(PollFlags::IN, &stop).unwrap());
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got.concat(), run);
        assert!(got.iter().all(|d| d.len() == 1000));
        stop.raise().unwrap();
        assert!(
            !ub.wait(PollFlags::IN, &stop).unwrap(),
            "a stop ends the wait"
        );
    }

    #[test]
    fn a_peer_of_another_family_is_refused() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = Udp::new(a, "[::1]:9".parse().unwrap(), true, true, None, false).unwrap_err();
        assert!(matches!(e, Error::FamilyMismatch { .. }), "{e}");
    }
}
