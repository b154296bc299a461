//! Where a merge puts the bytes it merges: the one place the in-place
//! coalescing and the gathered plan differ. The batch loop and the merge
//! rules are written once, over [`Store`]; [`InPlace`] copies each merged
//! payload into the buffer of its run (and needs room there), [`Gathered`]
//! only reads it (for its checksum) and leaves it where it lies.

use core::ops::Range;

use crate::checksum::Checksum;

/// The batch's buffers as the batch loop sees them.
pub(super) trait Store {
    /// Whether merged payloads are copied into the run's buffer, which then
    /// needs the room behind the run.
    const IN_PLACE: bool;
    /// The most packets one run may hold (beyond the protocol's own caps).
    const MAX_RUN_PACKETS: usize;

    /// Buffer `i`.
    fn buf(&mut self, i: usize) -> &[u8];

    /// Buffers `a` and `b` at once (`a < b`).
    fn pair(&mut self, a: usize, b: usize) -> (&[u8], &[u8]);

    /// Put `payload` of buffer `i` at `at` in buffer `run` (`run < i`),
    /// behind the run's last payload byte; returns the payload's sum.
    fn append(&mut self, run: usize, at: usize, i: usize, payload: Range<usize>) -> Checksum;

    /// [`Self::append`] without the sum, for a payload already verified.
    fn place(&mut self, run: usize, at: usize, i: usize, payload: Range<usize>);

    /// Put `payload` of buffer `i` in front of the run's payload, which is
    /// `run_payload` of buffer `run` (`run < i`).
    fn prepend(&mut self, run: usize, run_payload: Range<usize>, i: usize, payload: Range<usize>);
}

/// Merged payloads are copied into the buffer of their run's first packet.
pub(super) struct InPlace<'a, B>(pub(super) &'a mut [B]);

impl<B: AsMut<[u8]>> Store for InPlace<'_, B> {
    const IN_PLACE: bool = true;
    // One contiguous buffer: nothing but the length caps the run.
    const MAX_RUN_PACKETS: usize = usize::MAX;

    #[inline]
    fn buf(&mut self, i: usize) -> &[u8] {
        self.0[i].as_mut()
    }

    #[inline]
    fn pair(&mut self, a: usize, b: usize) -> (&[u8], &[u8]) {
        let (left, right) = self.0.split_at_mut(b);
        (left[a].as_mut(), right[0].as_mut())
    }

    #[inline]
    fn append(&mut self, run: usize, at: usize, i: usize, payload: Range<usize>) -> Checksum {
        let (left, right) = self.0.split_at_mut(i);
        let dst = &mut left[run].as_mut()[at..at + payload.len()];
        // Copy and sum in one pass over the payload.
        Checksum::copy_from(dst, &right[0].as_mut()[payload])
    }

    #[inline]
    fn place(&mut self, run: usize, at: usize, i: usize, payload: Range<usize>) {
        let (left, right) = self.0.split_at_mut(i);
        left[run].as_mut()[at..at + payload.len()].copy_from_slice(&right[0].as_mut()[payload]);
    }

    #[inline]
    fn prepend(&mut self, run: usize, run_payload: Range<usize>, i: usize, payload: Range<usize>) {
        let (left, right) = self.0.split_at_mut(i);
        let data = left[run].as_mut();
        let n = payload.len();
        let start = run_payload.start;
        data.copy_within(run_payload, start + n);
        data[start..start + n].copy_from_slice(&right[0].as_mut()[payload]);
    }
}

/// Merged payloads stay where they are; the plan records where.
pub(super) struct Gathered<'a, B>(pub(super) &'a [B]);

/// The most packets in one run of a plan: with its head in front, a run
/// fits in one gathered write of at most 1024 slices (`UIO_MAXIOV`,
/// include/uapi/linux/uio.h), which `writev` refuses to exceed.
pub const MAX_GATHERED_PACKETS: usize = 1023;

impl<B: AsRef<[u8]>> Store for Gathered<'_, B> {
    const IN_PLACE: bool = false;
    const MAX_RUN_PACKETS: usize = MAX_GATHERED_PACKETS;

    #[inline]
    fn buf(&mut self, i: usize) -> &[u8] {
        self.0[i].as_ref()
    }

    #[inline]
    fn pair(&mut self, a: usize, b: usize) -> (&[u8], &[u8]) {
        (self.0[a].as_ref(), self.0[b].as_ref())
    }

    #[inline]
    fn append(&mut self, _run: usize, _at: usize, i: usize, payload: Range<usize>) -> Checksum {
        Checksum::of(&self.0[i].as_ref()[payload])
    }

    #[inline]
    fn place(&mut self, _run: usize, _at: usize, _i: usize, _payload: Range<usize>) {}

    #[inline]
    fn prepend(&mut self, _: usize, _: Range<usize>, _: usize, _: Range<usize>) {}
}
