//! The data every stream sends, checked byte for byte on arrival.
//!
//! Every stream sends a fixed pseudo-random pattern of a prime length over
//! and over, and the receiver compares each byte it reads with the pattern
//! at its stream offset, so a lost, repeated, reordered or damaged segment
//! is caught at memory-compare speed (a hash of the stream would cost more
//! CPU than the relay being measured).
//!
//! A datagram is stamped instead ([`stamp`]): its sequence number, then
//! the pattern from a place that number picks, so that each datagram can
//! be checked alone ([`stamped`]), whatever arrives first. Tests that
//! build their own datagrams use the same two functions.

use std::sync::Arc;

/// Length of the repeating pattern: a prime, so that no packet or segment
/// size lines up with it.
pub(crate) const PATTERN_LEN: usize = 262_139;

/// The longest window read or written at once.
pub(crate) const WINDOW: usize = 1 << 17;

/// The pattern, followed by a copy of its start, so that any window of up
/// to 128 KiB starting in the pattern is one slice. Made once per run and
/// handed to [`stamp`] and [`stamped`].
pub fn pattern() -> Arc<Vec<u8>> {
    let mut v = vec![0u8; PATTERN_LEN + WINDOW];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in v[..PATTERN_LEN].iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    let (head, tail) = v.split_at_mut(PATTERN_LEN);
    tail.copy_from_slice(&head[..WINDOW]);
    Arc::new(v)
}

/// Where datagram `seq` starts in the pattern.
fn datagram_offset(seq: u64) -> usize {
    (seq as usize).wrapping_mul(7919) % PATTERN_LEN
}

/// The bytes of `pat` datagram `seq` carries behind its sequence number,
/// `len` of them (as many as `pat` holds from there, for a longer one).
fn payload(pat: &[u8], seq: u64, len: usize) -> &[u8] {
    let from = datagram_offset(seq).min(pat.len());
    &pat[from..pat.len().min(from + len)]
}

/// Stamp `datagram` as number `seq`: the sequence number (8 bytes, little
/// endian), then the pattern `pat` from where `seq` picks. A datagram
/// shorter than 8 bytes gets what fits of the number.
pub fn stamp(datagram: &mut [u8], pat: &[u8], seq: u64) {
    let (head, body) = datagram.split_at_mut(datagram.len().min(8));
    head.copy_from_slice(&seq.to_le_bytes()[..head.len()]);
    let p = payload(pat, seq, body.len());
    body[..p.len()].copy_from_slice(p);
}

/// The sequence number of a datagram [`stamp`]ed with `pat`, if it is
/// intact: at least 8 bytes, and every byte behind the number the pattern's.
pub fn stamped(datagram: &[u8], pat: &[u8]) -> Option<u64> {
    let (head, body) = datagram.split_at_checked(8)?;
    let seq = u64::from_le_bytes(head.try_into().ok()?);
    (body.len() <= WINDOW && body == payload(pat, seq, body.len())).then_some(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_repeats_the_head() {
        let p = pattern();
        assert_eq!(p.len(), PATTERN_LEN + WINDOW);
        assert_eq!(p[PATTERN_LEN..], p[..WINDOW]);
        assert!(datagram_offset(u64::MAX) < PATTERN_LEN);
    }

    #[test]
    fn a_stamped_datagram_checks_and_a_changed_one_does_not() {
        let p = pattern();
        for len in [8, 9, 300, 1200, 65507] {
            let mut d = vec![0u8; len];
            stamp(&mut d, &p, 41);
            assert_eq!(stamped(&d, &p), Some(41), "{len}");
            if len > 8 {
                d[len - 1] ^= 1;
                assert_eq!(stamped(&d, &p), None, "{len}: damaged");
            }
        }
        let mut a = vec![0u8; 100];
        let mut b = vec![0u8; 100];
        stamp(&mut a, &p, 1);
        stamp(&mut b, &p, 2);
        assert_ne!(a[8..], b[8..], "numbers pick different bytes");
        // Too short for a number: never checks, never panics.
        let mut short = [0u8; 5];
        stamp(&mut short, &p, 7);
        assert_eq!(stamped(&short, &p), None);
        assert_eq!(stamped(&[], &p), None);
    }
}
