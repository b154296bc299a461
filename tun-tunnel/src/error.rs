//! The tunnel's errors: what failed (the device, a socket call, the
//! configuration), on which interface or towards which peer, and the
//! cause. A condition a caller may want to act on is a variant of its own.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use tun_device::InterfaceName;

/// A socket call the tunnel makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketOp {
    /// Preparing the socket (quinn-udp's options, UDP_GRO, buffer sizes).
    Setup,
    /// `connect` to the peer (which also filters what is received).
    Connect,
    /// Reading the path MTU to the peer (`IP_MTU`, `IPV6_MTU`).
    Mtu,
    /// `sendmsg` (with `UDP_SEGMENT` for a run).
    Send,
    /// `recvmmsg` (with `UDP_GRO`).
    Recv,
    /// `poll` on the socket and the stop signal.
    Poll,
    /// Starting a pump thread.
    SpawnThread,
}

impl SocketOp {
    /// A short name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            SocketOp::Setup => "set up the socket",
            SocketOp::Connect => "connect",
            SocketOp::Mtu => "read the path MTU",
            SocketOp::Send => "sendmsg",
            SocketOp::Recv => "recvmmsg",
            SocketOp::Poll => "poll",
            SocketOp::SpawnThread => "spawn a pump thread",
        }
    }
}

/// An error of the tunnel.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The TUN side failed.
    Device(tun_device::Error),
    /// A socket call failed.
    Socket {
        /// The call.
        op: SocketOp,
        /// The peer of the tunnel.
        peer: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// The device is a TAP: the tunnel carries IP packets, not frames.
    NotTun {
        /// The device.
        interface: InterfaceName,
    },
    /// The socket's family (local address) is not the peer's.
    FamilyMismatch {
        /// The socket's local address.
        local: SocketAddr,
        /// The peer.
        peer: SocketAddr,
    },
    /// Packets the device may hand over do not fit one datagram to the
    /// peer: they would be dropped (and counted as too large). Lower the
    /// device's MTU to `max_datagram` or raise the underlay's.
    MtuMismatch {
        /// The device.
        interface: InterfaceName,
        /// Its MTU: the largest packet it hands over.
        inner_mtu: usize,
        /// The largest UDP payload the underlay carries to the peer.
        max_datagram: usize,
    },
}

impl Error {
    pub(crate) fn socket(op: SocketOp, peer: SocketAddr, source: io::Error) -> Self {
        Error::Socket { op, peer, source }
    }

    /// The errno of a failed system call, if that is what it was.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Device(e) => e.errno(),
            Error::Socket { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Device(e) => write!(f, "tunnel device: {e}"),
            Error::Socket { op, peer, source } => {
                write!(f, "tunnel socket to {peer}: {}: {source}", op.name())
            }
            Error::NotTun { interface } => write!(
                f,
                "{interface}: a TAP device; the tunnel carries IP packets (use a TUN)"
            ),
            Error::FamilyMismatch { local, peer } => write!(
                f,
                "tunnel socket bound to {local} cannot reach peer {peer}: another address family"
            ),
            Error::MtuMismatch {
                interface,
                inner_mtu,
                max_datagram,
            } => write!(
                f,
                "{interface}: MTU {inner_mtu} exceeds the {max_datagram} bytes one datagram to the peer carries; \
                 larger packets are dropped (lower the MTU to {max_datagram} or raise the underlay's)"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Device(e) => Some(e),
            Error::Socket { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<tun_device::Error> for Error {
    fn from(e: tun_device::Error) -> Self {
        Error::Device(e)
    }
}

/// The tunnel's result type.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_call_the_peer_and_the_cause() {
        let peer: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        let e = Error::socket(
            SocketOp::Send,
            peer,
            io::Error::from_raw_os_error(libc_enobufs()),
        );
        let text = e.to_string();
        assert!(
            text.starts_with("tunnel socket to 192.0.2.1:51820: sendmsg: "),
            "{text}"
        );
        assert_eq!(e.errno(), Some(libc_enobufs()));
        let m = Error::MtuMismatch {
            interface: InterfaceName::new("tun0").unwrap(),
            inner_mtu: 1500,
            max_datagram: 1472,
        };
        assert!(
            m.to_string().starts_with(
                "tun0: MTU 1500 exceeds the 1472 bytes one datagram to the peer carries"
            )
        );
        assert_eq!(m.errno(), None);
        let f = Error::FamilyMismatch {
            local: "0.0.0.0:1".parse().unwrap(),
            peer: "[::1]:2".parse().unwrap(),
        };
        assert!(f.to_string().contains("another address family"));
    }

    fn libc_enobufs() -> i32 {
        rustix::io::Errno::NOBUFS.raw_os_error()
    }
}
