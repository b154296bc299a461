//! The data every stream sends, checked byte for byte on arrival.
//!
//! Every stream sends a fixed pseudo-random pattern of a prime length over
//! and over, and the receiver compares each byte it reads with the pattern
//! at its stream offset, so a lost, repeated, reordered or damaged segment
//! is caught at memory-compare speed (a hash of the stream would cost more
//! CPU than the relay being measured).

use std::sync::Arc;

/// Length of the repeating pattern: a prime, so that no packet or segment
/// size lines up with it.
pub(crate) const PATTERN_LEN: usize = 262_139;

/// The longest window read or written at once.
pub(crate) const WINDOW: usize = 1 << 17;

/// The pattern, followed by a copy of its start, so that any window of up
/// to [`WINDOW`] bytes starting in the pattern is one slice.
pub(crate) fn pattern() -> Arc<Vec<u8>> {
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
pub(crate) fn datagram_offset(seq: u64) -> usize {
    (seq as usize).wrapping_mul(7919) % PATTERN_LEN
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
}
