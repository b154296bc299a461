//! What a datagram from the peer must be to reach the TUN: exactly one
//! whole IPv4 or IPv6 packet (its length field equal to the datagram's
//! length). Anything else (empty, another version, a header cut short, a
//! packet truncated or padded) is malformed: counted and dropped, never
//! written into the device. Pure, so every case is tested without a
//! kernel.

use std::fmt;

/// Why a datagram is not an inner packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The datagram is empty.
    Empty,
    /// The version nibble is neither 4 nor 6.
    Version(u8),
    /// Shorter than the IP header it starts with (`needed` bytes).
    ShortHeader {
        /// Bytes the header needs.
        needed: usize,
        /// Bytes the datagram has.
        len: usize,
    },
    /// The IP length field says `ip_len` bytes, the datagram has `len`.
    Length {
        /// The packet length the IP header gives.
        ip_len: usize,
        /// The datagram's length.
        len: usize,
    },
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Malformed::Empty => write!(f, "empty datagram"),
            Malformed::Version(v) => write!(f, "IP version {v} (neither 4 nor 6)"),
            Malformed::ShortHeader { needed, len } => {
                write!(
                    f,
                    "{len}-byte datagram, shorter than its {needed}-byte IP header"
                )
            }
            Malformed::Length { ip_len, len } => write!(
                f,
                "{len}-byte datagram whose IP header gives a {ip_len}-byte packet"
            ),
        }
    }
}

impl std::error::Error for Malformed {}

/// Check that `datagram` is one whole IP packet.
pub fn check_inner(datagram: &[u8]) -> Result<(), Malformed> {
    let len = datagram.len();
    let first = *datagram.first().ok_or(Malformed::Empty)?;
    let (needed, ip_len) = match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0f) * 4;
            let needed = ihl.max(20);
            if len < needed {
                return Err(Malformed::ShortHeader { needed, len });
            }
            let total = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
            // A total length shorter than the header is as wrong as a
            // length that differs.
            (needed, if total < ihl.max(20) { 0 } else { total })
        }
        6 => {
            if len < 40 {
                return Err(Malformed::ShortHeader { needed: 40, len });
            }
            // Payload length 0 is a jumbogram's: not carried here.
            let payload = usize::from(u16::from_be_bytes([datagram[4], datagram[5]]));
            (40, if payload == 0 { 0 } else { 40 + payload })
        }
        v => return Err(Malformed::Version(v)),
    };
    debug_assert!(needed <= len);
    if ip_len != len {
        return Err(Malformed::Length { ip_len, len });
    }
    Ok(())
}

/// The datagrams of one receive buffer: `stride`-byte pieces of what the
/// kernel coalesced (UDP_GRO), the last possibly shorter; a `stride` of 0
/// (no segment size reported) gives the buffer whole. An empty buffer is
/// one empty datagram (a peer may send those): it must be counted too.
pub(crate) fn datagrams(buf: &[u8], stride: usize) -> impl Iterator<Item = &[u8]> {
    let stride = if stride == 0 {
        buf.len().max(1)
    } else {
        stride
    };
    let empty = buf.is_empty().then_some(buf);
    buf.chunks(stride).chain(empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p
    }

    fn v6(len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        p
    }

    #[test]
    fn whole_packets_pass() {
        assert_eq!(check_inner(&v4(20)), Ok(()));
        assert_eq!(check_inner(&v4(1400)), Ok(()));
        assert_eq!(check_inner(&v6(41)), Ok(()));
        assert_eq!(check_inner(&v6(1400)), Ok(()));
    }

    #[test]
    fn every_kind_of_damage_is_named() {
        assert_eq!(check_inner(&[]), Err(Malformed::Empty));
        assert_eq!(check_inner(&[0x15; 30]), Err(Malformed::Version(1)));
        assert_eq!(
            check_inner(&v4(100)[..19]),
            Err(Malformed::ShortHeader {
                needed: 20,
                len: 19
            })
        );
        let mut opts = v4(100);
        opts[0] = 0x4f; // a 60-byte header
        assert_eq!(
            check_inner(&opts[..40]),
            Err(Malformed::ShortHeader {
                needed: 60,
                len: 40
            })
        );
        assert_eq!(
            check_inner(&v4(1400)[..1000]),
            Err(Malformed::Length {
                ip_len: 1400,
                len: 1000
            })
        );
        let mut padded = v4(100);
        padded.extend_from_slice(&[0; 4]);
        assert_eq!(
            check_inner(&padded),
            Err(Malformed::Length {
                ip_len: 100,
                len: 104
            })
        );
        assert_eq!(
            check_inner(&v6(100)[..39]),
            Err(Malformed::ShortHeader {
                needed: 40,
                len: 39
            })
        );
        assert_eq!(
            check_inner(&v6(100)[..90]),
            Err(Malformed::Length {
                ip_len: 100,
                len: 90
            })
        );
        let mut jumbo = v6(100);
        jumbo[4..6].copy_from_slice(&[0, 0]);
        assert_eq!(
            check_inner(&jumbo),
            Err(Malformed::Length {
                ip_len: 0,
                len: 100
            })
        );
        let mut short_total = v4(100);
        short_total[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(
            check_inner(&short_total),
            Err(Malformed::Length {
                ip_len: 0,
                len: 100
            })
        );
    }

    #[test]
    fn damage_reads_as_a_sentence() {
        assert_eq!(
            Malformed::Length {
                ip_len: 1400,
                len: 1000
            }
            .to_string(),
            "1000-byte datagram whose IP header gives a 1400-byte packet"
        );
        assert_eq!(Malformed::Empty.to_string(), "empty datagram");
        assert_eq!(
            Malformed::Version(1).to_string(),
            "IP version 1 (neither 4 nor 6)"
        );
        assert_eq!(
            Malformed::ShortHeader { needed: 40, len: 3 }.to_string(),
            "3-byte datagram, shorter than its 40-byte IP header"
        );
    }

    #[test]
    fn coalesced_buffers_split_at_the_stride() {
        let buf: Vec<u8> = (0..250u8).collect();
        let parts: Vec<usize> = datagrams(&buf, 100).map(<[u8]>::len).collect();
        assert_eq!(parts, [100, 100, 50]);
        assert_eq!(datagrams(&buf, 0).count(), 1);
        assert_eq!(datagrams(&buf, 250).count(), 1);
        let empty: Vec<&[u8]> = datagrams(&[], 0).collect();
        assert_eq!(empty, [&[] as &[u8]], "an empty datagram is one datagram");
        assert_eq!(datagrams(&[], 1200).count(), 1);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x = 0x1234_5678u32;
        for len in 0..200 {
            let d: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = check_inner(&d);
        }
    }
}
