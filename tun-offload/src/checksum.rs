//! The internet checksum (RFC 1071) as composable partial sums.
//!
//! A [`Checksum`] is the ones'-complement sum of a byte sequence together
//! with the parity of its length, so sums of consecutive pieces combine in
//! any grouping, odd-length pieces included (RFC 1071 section 2(B): a sum
//! of bytes starting at an odd offset is the byte-swapped sum). Pseudo
//! headers and RFC 1624 incremental updates of one 16-bit field are here too.
//!
//! ```
//! use tun_offload::checksum::Checksum;
//! let data = [0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x56];
//! let whole = Checksum::of(&data);
//! let parts = Checksum::of(&data[..3]).combine(Checksum::of(&data[3..]));
//! assert_eq!(whole.fold(), parts.fold());
//! ```

use core::net::{Ipv4Addr, Ipv6Addr};

/// Sum `data` as native-endian 16-bit words into a wide accumulator.
///
/// Four independent lanes of 32-bit words widened into `u64` keep the loop
/// free of carries and let LLVM vectorise it; 2^32 additions of values below
/// 2^32 cannot overflow a lane, and no slice is that long.
#[inline]
fn sum_ne(data: &[u8]) -> u64 {
    let mut lanes = [0u64; 4];
    let mut blocks = data.chunks_exact(16);
    for b in &mut blocks {
        lanes[0] += u64::from(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        lanes[1] += u64::from(u32::from_ne_bytes([b[4], b[5], b[6], b[7]]));
        lanes[2] += u64::from(u32::from_ne_bytes([b[8], b[9], b[10], b[11]]));
        lanes[3] += u64::from(u32::from_ne_bytes([b[12], b[13], b[14], b[15]]));
    }
    let mut acc = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    let mut words = blocks.remainder().chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_ne_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        // A trailing byte is the high byte of a big-endian word padded with zero.
        acc += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    acc
}

/// Copy and sum a short piece word by word: inline moves, not a memcpy call.
#[inline]
fn copy_sum_short(dst: &mut [u8], src: &[u8]) -> u64 {
    let mut acc = 0;
    let mut d_words = dst.chunks_exact_mut(4);
    let mut s_words = src.chunks_exact(4);
    for (d, s) in (&mut d_words).zip(&mut s_words) {
        let w = [s[0], s[1], s[2], s[3]];
        d.copy_from_slice(&w);
        acc += u64::from(u32::from_ne_bytes(w));
    }
    let last = s_words.remainder();
    for (d, s) in d_words.into_remainder().iter_mut().zip(last) {
        *d = *s;
    }
    acc + sum_ne(last)
}

/// Copy `src` into `dst` (same length) and sum it as [`sum_ne`] does, in
/// one pass: the bytes are added from the registers they were loaded into
/// for the copy.
///
/// With the `simd` feature, pulp picks the widest instruction set the CPU
/// has at run time (AVX-512, AVX2 or the baseline) and the same portable
/// loop is compiled for each, with blocks and store alignment sized to the
/// vector width. Kept out of line: inlined into a large caller, LLVM spills
/// and falls back to scalar code; on its own the block loop is vectorised.
#[inline(never)]
fn copy_sum_ne(dst: &mut [u8], src: &[u8]) -> u64 {
    #[cfg(feature = "simd")]
    {
        struct CopySum<'a> {
            dst: &'a mut [u8],
            src: &'a [u8],
        }
        impl pulp::WithSimd for CopySum<'_> {
            type Output = u64;
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, _simd: S) -> u64 {
                match core::mem::size_of::<S::u32s>() {
                    64.. => copy_sum_body::<128, 64>(self.dst, self.src),
                    32.. => copy_sum_body::<64, 32>(self.dst, self.src),
                    _ => copy_sum_body::<32, 16>(self.dst, self.src),
                }
            }
        }
        pulp::Arch::new().dispatch(CopySum { dst, src })
    }
    #[cfg(not(feature = "simd"))]
    {
        copy_sum_body::<32, 16>(dst, src)
    }
}

/// The body of [`copy_sum_ne`], inlined into whichever instruction-set
/// variant runs it: `BLOCK` bytes per iteration, stores aligned to `ALIGN`.
#[inline(always)]
fn copy_sum_body<const BLOCK: usize, const ALIGN: usize>(dst: &mut [u8], src: &[u8]) -> u64 {
    // Align the stores: a store that straddles a cache line costs two. Only
    // an even head keeps the rest at an even offset of the sum.
    let misalign = dst.as_ptr().addr() % ALIGN;
    let head = if misalign % 2 == 0 {
        (ALIGN - misalign) % ALIGN
    } else {
        0
    };
    let head = head.min(dst.len()).min(src.len());
    let (dst_head, dst) = dst.split_at_mut(head);
    let (src_head, src) = src.split_at(head);
    let mut acc = copy_sum_short(dst_head, src_head);

    let (sum, done) = copy_sum_blocks::<BLOCK>(dst, src);
    acc += sum;
    let (dst, src) = (&mut dst[done..], &src[done..]);
    // What is left of a wide block: 32-byte blocks first, then words.
    let (sum, done) = copy_sum_blocks::<32>(dst, src);
    acc += sum;
    acc + copy_sum_short(&mut dst[done..], &src[done..])
}

/// Copy and sum whole `BLOCK`-byte blocks; returns the sum and the bytes done.
#[inline(always)]
fn copy_sum_blocks<const BLOCK: usize>(dst: &mut [u8], src: &[u8]) -> (u64, usize) {
    let mut lanes = [0u64; 4];
    let mut done = 0;
    for (d, s) in dst.chunks_exact_mut(BLOCK).zip(src.chunks_exact(BLOCK)) {
        // Fixed-size arrays let LLVM see one block and vectorise the copy
        // and the sum together; the conversion cannot fail.
        let Ok(s) = <&[u8; BLOCK]>::try_from(s) else {
            continue;
        };
        d.copy_from_slice(s);
        for k in 0..BLOCK / 4 {
            let w = u32::from_ne_bytes([s[4 * k], s[4 * k + 1], s[4 * k + 2], s[4 * k + 3]]);
            lanes[k % 4] += u64::from(w);
        }
        done += BLOCK;
    }
    (lanes[0] + lanes[1] + lanes[2] + lanes[3], done)
}

/// Fold a wide ones'-complement sum to 16 bits with end-around carries.
#[inline]
const fn fold64(mut s: u64) -> u16 {
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The folded big-endian ones'-complement sum of `data`.
#[inline]
fn sum_be(data: &[u8]) -> u16 {
    // Summing native-endian words and swapping at the end equals summing
    // big-endian words (RFC 1071 byte-order independence).
    u16::from_be(fold64(sum_ne(data)))
}

/// Add two folded sums with an end-around carry.
#[inline]
const fn add16(a: u16, b: u16) -> u16 {
    let s = a as u32 + b as u32;
    ((s & 0xffff) + (s >> 16)) as u16
}

/// A partial internet checksum: the folded ones'-complement sum of some
/// bytes, and whether their count was odd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Checksum {
    sum: u16,
    odd: bool,
}

impl Checksum {
    /// The sum of no bytes.
    pub const ZERO: Self = Self { sum: 0, odd: false };

    /// The sum of `data`.
    #[inline]
    pub fn of(data: &[u8]) -> Self {
        Self {
            sum: sum_be(data),
            odd: data.len() % 2 == 1,
        }
    }

    /// A sum given as a folded big-endian value over an even number of
    /// bytes (such as a pseudo-header sum read back from a checksum field).
    #[inline]
    pub const fn from_folded(sum: u16) -> Self {
        Self { sum, odd: false }
    }

    /// Copy `src` into the start of `dst` and return the sum of the copied
    /// bytes, reading each byte once. Copies `min(dst.len(), src.len())`
    /// bytes (the sum covers exactly those).
    ///
    /// ```
    /// use tun_offload::checksum::Checksum;
    /// let src = [1u8, 2, 3, 4, 5];
    /// let mut dst = [0u8; 8];
    /// let sum = Checksum::copy_from(&mut dst, &src);
    /// assert_eq!(&dst[..5], &src);
    /// assert_eq!(sum, Checksum::of(&src));
    /// ```
    #[inline]
    pub fn copy_from(dst: &mut [u8], src: &[u8]) -> Self {
        let n = dst.len().min(src.len());
        let (dst, src) = (&mut dst[..n], &src[..n]);
        Self {
            sum: u16::from_be(fold64(copy_sum_ne(dst, src))),
            odd: n % 2 == 1,
        }
    }

    /// Add `data`, which follows the bytes summed so far.
    #[inline]
    pub fn add(&mut self, data: &[u8]) {
        *self = self.combine(Self::of(data));
    }

    /// Add one big-endian 16-bit word (at an even position).
    #[inline]
    pub fn add_u16(&mut self, word: u16) {
        *self = self.combine(Self::from_folded(word));
    }

    /// The sum of the bytes of `self` followed by the bytes of `next`.
    #[inline]
    #[must_use]
    pub const fn combine(self, next: Self) -> Self {
        // After an odd count, `next`'s words straddle word boundaries: its
        // sum contributes byte-swapped.
        let n = if self.odd {
            next.sum.swap_bytes()
        } else {
            next.sum
        };
        Self {
            sum: add16(self.sum, n),
            odd: self.odd ^ next.odd,
        }
    }

    /// Whether the summed byte count is odd.
    pub const fn is_odd(&self) -> bool {
        self.odd
    }

    /// The folded sum, not complemented: what a NEEDS_CSUM checksum field
    /// holds for the kernel to complete.
    #[inline]
    pub const fn fold(self) -> u16 {
        self.sum
    }

    /// The checksum to store: the complement of the folded sum.
    #[inline]
    pub const fn finish(self) -> u16 {
        !self.sum
    }

    /// The checksum to store in a UDP header: as [`Self::finish`], but a
    /// zero result is sent as `0xffff` (zero means "no checksum").
    #[inline]
    pub const fn finish_udp(self) -> u16 {
        match !self.sum {
            0 => 0xffff,
            c => c,
        }
    }
}

/// A ones'-complement sum kept wide and unfolded, in the host's byte order,
/// for hot loops that add many pieces at even offsets: no fold, swap or
/// parity check per addition, one fold at the end.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WideSum(u64);

impl WideSum {
    /// Start from a partial sum over an even number of bytes.
    #[inline]
    pub(crate) fn from_even(c: Checksum) -> Self {
        // A big-endian word's value as the host reads its two bytes.
        Self(u64::from(c.fold().to_be()))
    }

    /// Add a big-endian 16-bit word.
    #[inline]
    pub(crate) fn add_be16(&mut self, w: u16) {
        self.0 += u64::from(w.to_be());
    }

    /// Add a big-endian 32-bit word (two 16-bit words).
    #[inline]
    pub(crate) fn add_be32(&mut self, w: u32) {
        self.add_be16((w >> 16) as u16);
        self.add_be16(w as u16);
    }

    /// Copy `src` into `dst` (same length) and add its bytes, which follow
    /// an even number of bytes summed so far.
    #[inline]
    pub(crate) fn copy_from(&mut self, dst: &mut [u8], src: &[u8]) {
        let n = dst.len().min(src.len());
        self.0 += copy_sum_ne(&mut dst[..n], &src[..n]);
    }

    /// Add the bytes of `data`, which follow an even number of bytes
    /// summed so far (read only: the in-place split's pass).
    #[inline]
    pub(crate) fn add_bytes(&mut self, data: &[u8]) {
        self.0 += sum_ne(data);
    }

    /// The folded sum as a [`Checksum`] over an even count.
    #[inline]
    pub(crate) fn checksum(self) -> Checksum {
        Checksum::from_folded(u16::from_be(fold64(self.0)))
    }
}

/// Fold a sum of native-endian words (as [`sum_ne`] makes them) to the
/// big-endian 16-bit value [`Checksum::fold`] gives for the same bytes.
#[inline]
pub(crate) fn fold_ne(sum: u64) -> u16 {
    u16::from_be(fold64(sum))
}

/// The IPv4 pseudo-header sum (RFC 793/768): addresses, protocol, L4 length.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, l4_len: u16) -> Checksum {
    let s = src.octets();
    let d = dst.octets();
    let words = [
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        u16::from(protocol),
        l4_len,
    ];
    let total: u64 = words.iter().map(|&w| u64::from(w)).sum();
    Checksum::from_folded(fold64(total))
}

/// The IPv6 pseudo-header sum (RFC 8200 section 8.1): addresses, upper-layer
/// length, next header.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, l4_len: u32) -> Checksum {
    let mut total: u64 = 0;
    for w in src.segments().iter().chain(dst.segments().iter()) {
        total += u64::from(*w);
    }
    total += u64::from(l4_len >> 16) + u64::from(l4_len & 0xffff) + u64::from(next_header);
    Checksum::from_folded(fold64(total))
}

/// RFC 1624 eqn. 3: the checksum after one 16-bit word covered by it
/// changed from `old` to `new`: `HC' = ~(~HC + ~m + m')`.
#[inline]
pub const fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    !add16(add16(!checksum, !old), new)
}

/// RFC 1624 for a 32-bit field (two words).
#[inline]
pub const fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    let c = update_u16(checksum, (old >> 16) as u16, (new >> 16) as u16);
    update_u16(c, old as u16, new as u16)
}

/// The IPv4 header checksum of `header` (with its checksum field included
/// as it is: zero it first, or verify by checking for zero).
pub fn ipv4_header(header: &[u8]) -> u16 {
    Checksum::of(header).finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A deliberately naive RFC 1071 reference: big-endian 16-bit words,
    /// end-around carry after every addition.
    pub(crate) fn naive(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for pair in data.chunks(2) {
            let w = u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
            s += w;
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    fn bytes(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(Checksum::of(&d).fold(), 0xddf2);
        assert_eq!(Checksum::of(&d).finish(), !0xddf2);
    }

    #[test]
    fn matches_naive_for_every_length_and_start() {
        let data = bytes(9001 + 3, 7);
        for len in 0..=9001usize {
            for start in [0usize, 1, 3] {
                let slice = &data[start..start + len];
                assert_eq!(
                    Checksum::of(slice).fold(),
                    naive(slice),
                    "len {len} start {start}"
                );
            }
        }
    }

    #[test]
    fn copy_from_copies_and_sums() {
        let data = bytes(3000, 11);
        for len in 0..200usize {
            for start in [0usize, 1] {
                let src = &data[start..start + len];
                let mut dst = alloc::vec![0xeeu8; len + 3];
                let sum = Checksum::copy_from(&mut dst, src);
                assert_eq!(&dst[..len], src);
                assert!(dst[len..].iter().all(|&b| b == 0xee));
                assert_eq!(sum.fold(), naive(src), "len {len}");
                assert_eq!(sum.is_odd(), len % 2 == 1);
            }
        }
        // Copy `src` to `big[skew..]` with `copy` and check the bytes, the
        // untouched surroundings and the folded sum.
        let mut big = alloc::vec![0u8; 4096];
        let mut check = |skew: usize, src: &[u8], copy: &dyn Fn(&mut [u8], &[u8]) -> u16| {
            let len = src.len();
            big.fill(0xee);
            let sum = copy(&mut big[skew..skew + len], src);
            assert_eq!(&big[skew..skew + len], src);
            assert!(
                big[..skew]
                    .iter()
                    .chain(&big[skew + len..])
                    .all(|&b| b == 0xee)
            );
            assert_eq!(sum, naive(src), "skew {skew} len {len}");
        };
        // Every destination alignment, so the aligning head is exercised.
        for skew in 0..16usize {
            for len in [0usize, 1, 2, 15, 16, 17, 33, 100, 1447, 1448, 2995] {
                check(skew, &data[skew % 3..skew % 3 + len], &|d, s| {
                    Checksum::copy_from(d, s).fold()
                });
            }
        }
        // Each block/alignment variant the dispatch can pick, directly.
        type Body = fn(&mut [u8], &[u8]) -> u64;
        let bodies: [Body; 3] = [
            copy_sum_body::<32, 16>,
            copy_sum_body::<64, 32>,
            copy_sum_body::<128, 64>,
        ];
        for skew in 0..64usize {
            for len in [0usize, 5, 63, 64, 127, 128, 129, 1448, 2995] {
                for body in bodies {
                    check(skew, &data[skew % 5..skew % 5 + len], &|d, s| {
                        u16::from_be(fold64(body(d, s)))
                    });
                }
            }
        }
        let mut short = [0u8; 3];
        assert_eq!(
            Checksum::copy_from(&mut short, &data[..10]),
            Checksum::of(&data[..3])
        );
    }

    #[test]
    fn all_ones_and_zero() {
        assert_eq!(Checksum::of(&[]).fold(), 0);
        assert_eq!(Checksum::of(&[0; 100]).fold(), 0);
        assert_eq!(Checksum::of(&[0xff; 100]).fold(), 0xffff);
        assert_eq!(Checksum::of(&[0xff; 100]).finish_udp(), 0xffff);
        assert_eq!(
            naive(&[0xff; 1_000_000]),
            Checksum::of(&[0xff; 1_000_000]).fold()
        );
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut hdr = bytes(20, 3);
        hdr[10] = 0;
        hdr[11] = 0;
        let c = ipv4_header(&hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(Checksum::of(&hdr).fold(), 0xffff);
        let old = u16::from_be_bytes([hdr[4], hdr[5]]);
        let new = old.wrapping_add(12345);
        hdr[4..6].copy_from_slice(&new.to_be_bytes());
        let updated = update_u16(c, old, new);
        hdr[10..12].copy_from_slice(&updated.to_be_bytes());
        assert_eq!(Checksum::of(&hdr).finish(), 0);
        let old32 = u32::from_be_bytes([hdr[12], hdr[13], hdr[14], hdr[15]]);
        let new32 = old32 ^ 0xdead_beef;
        hdr[12..16].copy_from_slice(&new32.to_be_bytes());
        let updated = update_u32(updated, old32, new32);
        hdr[10..12].copy_from_slice(&updated.to_be_bytes());
        assert_eq!(Checksum::of(&hdr).finish(), 0);
    }

    #[test]
    fn pseudo_headers_match_a_byte_image() {
        let (s4, d4) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 7));
        let mut img = Vec::new();
        img.extend_from_slice(&s4.octets());
        img.extend_from_slice(&d4.octets());
        img.extend_from_slice(&[0, 6, 0x05, 0xdc]);
        assert_eq!(pseudo_header_v4(s4, d4, 6, 1500), Checksum::of(&img));

        let (s6, d6): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8:ffff::2".parse().unwrap(),
        );
        let mut img = Vec::new();
        img.extend_from_slice(&s6.octets());
        img.extend_from_slice(&d6.octets());
        img.extend_from_slice(&70000u32.to_be_bytes());
        img.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(pseudo_header_v6(s6, d6, 17, 70000), Checksum::of(&img));
    }

    proptest::proptest! {
        #[test]
        fn combines_in_any_grouping(data in proptest::collection::vec(proptest::num::u8::ANY, 0..3000),
                                    cuts in proptest::collection::vec(0usize..3000, 0..6)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut acc = Checksum::ZERO;
            let mut prev = 0;
            for &c in cuts.iter().chain(core::iter::once(&data.len())) {
                acc.add(&data[prev..c]);
                prev = c;
            }
            proptest::prop_assert_eq!(acc.fold(), naive(&data));
            // Right-to-left grouping too: (a + (b + c)).
            if cuts.len() >= 2 {
                let (a, b, c) = (&data[..cuts[0]], &data[cuts[0]..cuts[1]], &data[cuts[1]..]);
                let right = Checksum::of(a).combine(Checksum::of(b).combine(Checksum::of(c)));
                proptest::prop_assert_eq!(right.fold(), naive(&data));
            }
        }
    }
}
