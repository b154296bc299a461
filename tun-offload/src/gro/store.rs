//! Where the batch's packets are and where a merge puts the bytes it
//! merges: the one place the in-place coalescing, the gathered plan and
//! the plan of views differ. The batch loop and the merge rules are written
//! once, over [`Store`], with positions counted from each packet's start;
//! [`InPlace`] copies each merged payload into the buffer of its run (and
//! needs room there), [`Gathered`] only reads it (for its checksum) and
//! leaves it where it lies, and [`Views`] does the same for packets held in
//! two pieces (a head with the headers, a tail with the rest).

use core::ops::Range;

use crate::checksum::Checksum;
use crate::virtio::VirtioNetHdr;

use super::plan::{PacketView, PlanStore, Segment};

/// The batch as the batch loop sees it: packets by index, each read from
/// its start (a frame's start for frames), positions counted from there.
pub(super) trait Store {
    /// Whether merged payloads are copied into the run's buffer, which then
    /// needs the room behind the run.
    const IN_PLACE: bool;
    /// The most packets one run may hold (beyond the protocol's own caps).
    const MAX_RUN_PACKETS: usize;

    /// Packets in the batch.
    fn count(&self) -> usize;

    /// Length of packet `i`.
    fn len(&self, i: usize) -> usize;

    /// The first bytes of packet `i`: all of it, or for a packet held in
    /// two pieces its head (which must hold every header the rules read).
    fn head(&mut self, i: usize) -> &[u8];

    /// The heads of packets `a` and `b` at once (`a < b`).
    fn pair(&mut self, a: usize, b: usize) -> (&[u8], &[u8]);

    /// Bytes from packet `i`'s start to the end of its buffer: room a run
    /// may grow into (only asked of an in-place store).
    fn room(&mut self, i: usize) -> usize;

    /// The virtio header packet `i` carries (read only with partial
    /// checksums): its checksum part, or the all-zero header.
    fn own_hdr(&mut self, i: usize) -> VirtioNetHdr;

    /// The sum of packet `i`'s bytes from `from` to its end.
    fn sum(&mut self, i: usize, from: usize) -> Checksum;

    /// Put packet `i`'s bytes from `from` to its end at `at` of packet `run`
    /// (`run < i`), behind the run's last payload byte; returns their sum.
    /// A store that leaves payloads where they lie only sums them.
    #[inline]
    fn append(&mut self, _run: usize, _at: usize, i: usize, from: usize) -> Checksum {
        self.sum(i, from)
    }

    /// [`Self::append`] without the sum, for a payload already verified
    /// (nothing to do where payloads stay where they lie).
    #[inline]
    fn place(&mut self, _run: usize, _at: usize, _i: usize, _from: usize) {}

    /// Put packet `i`'s bytes from `from` to its end in front of the run's
    /// payload, which is `run_payload` of packet `run` (`run < i`)
    /// (nothing to do where payloads stay where they lie).
    #[inline]
    fn prepend(&mut self, _run: usize, _run_payload: Range<usize>, _i: usize, _from: usize) {}

    /// Record where packet `i`'s bytes from `from` to its end lie in the
    /// run `plan` is recording: at most two segments (a head's rest and a
    /// tail), empty ones left out.
    fn push_segments(&self, i: usize, from: usize, plan: &mut PlanStore);
}

/// The header in front of `buf[offset..]`, as partial checksums read it.
#[inline]
fn hdr_in_front(buf: &[u8], offset: usize) -> VirtioNetHdr {
    buf.get(offset.saturating_sub(VirtioNetHdr::LEN)..offset)
        .map_or(VirtioNetHdr::ZERO, crate::partial::packet_hdr)
}

/// Packet `i` is `bufs[i][offset..offset + lens[i]]`, checked by the
/// caller (`check_batch`).
pub(super) struct Buffers<'a, B> {
    pub(super) bufs: &'a mut [B],
    pub(super) lens: &'a [usize],
    pub(super) offset: usize,
}

/// Merged payloads are copied into the buffer of their run's first packet.
pub(super) struct InPlace<'a, B>(pub(super) Buffers<'a, B>);

impl<B: AsMut<[u8]>> Store for InPlace<'_, B> {
    const IN_PLACE: bool = true;
    // One contiguous buffer: nothing but the length caps the run.
    const MAX_RUN_PACKETS: usize = usize::MAX;

    #[inline]
    fn count(&self) -> usize {
        self.0.lens.len()
    }

    #[inline]
    fn len(&self, i: usize) -> usize {
        self.0.lens[i]
    }

    #[inline]
    fn head(&mut self, i: usize) -> &[u8] {
        let (o, n) = (self.0.offset, self.0.lens[i]);
        &self.0.bufs[i].as_mut()[o..o + n]
    }

    #[inline]
    fn pair(&mut self, a: usize, b: usize) -> (&[u8], &[u8]) {
        let o = self.0.offset;
        let (na, nb) = (self.0.lens[a], self.0.lens[b]);
        let (left, right) = self.0.bufs.split_at_mut(b);
        (&left[a].as_mut()[o..o + na], &right[0].as_mut()[o..o + nb])
    }

    #[inline]
    fn room(&mut self, i: usize) -> usize {
        self.0.bufs[i].as_mut().len() - self.0.offset
    }

    #[inline]
    fn own_hdr(&mut self, i: usize) -> VirtioNetHdr {
        let o = self.0.offset;
        hdr_in_front(self.0.bufs[i].as_mut(), o)
    }

    #[inline]
    fn sum(&mut self, i: usize, from: usize) -> Checksum {
        Checksum::of(&self.head(i)[from..])
    }

    #[inline]
    fn append(&mut self, run: usize, at: usize, i: usize, from: usize) -> Checksum {
        let (o, n) = (self.0.offset, self.0.lens[i]);
        let (left, right) = self.0.bufs.split_at_mut(i);
        let src = &right[0].as_mut()[o + from..o + n];
        let dst = &mut left[run].as_mut()[o + at..o + at + src.len()];
        // Copy and sum in one pass over the payload.
        Checksum::copy_from(dst, src)
    }

    #[inline]
    fn place(&mut self, run: usize, at: usize, i: usize, from: usize) {
        let (o, n) = (self.0.offset, self.0.lens[i]);
        let (left, right) = self.0.bufs.split_at_mut(i);
        let src = &right[0].as_mut()[o + from..o + n];
        left[run].as_mut()[o + at..o + at + src.len()].copy_from_slice(src);
    }

    #[inline]
    fn prepend(&mut self, run: usize, run_payload: Range<usize>, i: usize, from: usize) {
        let (o, n) = (self.0.offset, self.0.lens[i]);
        let (left, right) = self.0.bufs.split_at_mut(i);
        let data = left[run].as_mut();
        let src = &right[0].as_mut()[o + from..o + n];
        let k = src.len();
        let start = o + run_payload.start;
        data.copy_within(o + run_payload.start..o + run_payload.end, start + k);
        data[start..start + k].copy_from_slice(src);
    }

    fn push_segments(&self, _: usize, _: usize, _: &mut PlanStore) {
        // An in-place batch is written from its buffers, not planned.
    }
}

/// Merged payloads stay where they are; the plan records where.
pub(super) struct Gathered<'a, B> {
    pub(super) bufs: &'a [B],
    pub(super) lens: &'a [usize],
    pub(super) offset: usize,
}

/// The most packets in one run of a plan: with its head in front, a run
/// fits in one gathered write of at most 1024 slices (`UIO_MAXIOV`,
/// include/uapi/linux/uio.h), which `writev` refuses to exceed.
pub const MAX_GATHERED_PACKETS: usize = 1023;

/// The most packets in one run of a plan of views: each may add two
/// slices (the rest of its head and its tail), and the run's head comes in
/// front, within `UIO_MAXIOV`.
pub const MAX_VIEW_PACKETS: usize = 511;

impl<B: AsRef<[u8]>> Store for Gathered<'_, B> {
    const IN_PLACE: bool = false;
    const MAX_RUN_PACKETS: usize = MAX_GATHERED_PACKETS;

    #[inline]
    fn count(&self) -> usize {
        self.lens.len()
    }

    #[inline]
    fn len(&self, i: usize) -> usize {
        self.lens[i]
    }

    #[inline]
    fn head(&mut self, i: usize) -> &[u8] {
        &self.bufs[i].as_ref()[self.offset..self.offset + self.lens[i]]
    }

    #[inline]
    fn pair(&mut self, a: usize, b: usize) -> (&[u8], &[u8]) {
        let o = self.offset;
        (
            &self.bufs[a].as_ref()[o..o + self.lens[a]],
            &self.bufs[b].as_ref()[o..o + self.lens[b]],
        )
    }

    #[inline]
    fn room(&mut self, i: usize) -> usize {
        self.bufs[i].as_ref().len() - self.offset
    }

    #[inline]
    fn own_hdr(&mut self, i: usize) -> VirtioNetHdr {
        hdr_in_front(self.bufs[i].as_ref(), self.offset)
    }

    #[inline]
    fn sum(&mut self, i: usize, from: usize) -> Checksum {
        Checksum::of(&self.head(i)[from..])
    }

    #[inline]
    fn push_segments(&self, i: usize, from: usize, plan: &mut PlanStore) {
        let o = self.offset;
        plan.push_segment(Segment {
            buf: i,
            start: o + from,
            end: o + self.lens[i],
        });
    }
}

/// Packets held in two pieces of the caller's sources ([`PacketView`]),
/// checked by the caller (`check_views`).
pub(super) struct Views<'a, B> {
    pub(super) sources: &'a [B],
    pub(super) views: &'a [PacketView],
}

impl<B: AsRef<[u8]>> Views<'_, B> {
    #[inline(always)]
    fn bytes(&self, s: Segment) -> &[u8] {
        &self.sources[s.buf].as_ref()[s.start..s.end]
    }
}

impl<B: AsRef<[u8]>> Store for Views<'_, B> {
    const IN_PLACE: bool = false;
    const MAX_RUN_PACKETS: usize = MAX_VIEW_PACKETS;

    #[inline]
    fn count(&self) -> usize {
        self.views.len()
    }

    #[inline]
    fn len(&self, i: usize) -> usize {
        self.views[i].len()
    }

    #[inline]
    fn head(&mut self, i: usize) -> &[u8] {
        self.bytes(self.views[i].head)
    }

    #[inline]
    fn pair(&mut self, a: usize, b: usize) -> (&[u8], &[u8]) {
        (
            self.bytes(self.views[a].head),
            self.bytes(self.views[b].head),
        )
    }

    fn room(&mut self, i: usize) -> usize {
        self.views[i].len()
    }

    #[inline]
    fn own_hdr(&mut self, i: usize) -> VirtioNetHdr {
        self.views[i].hdr.packet_part()
    }

    #[inline]
    fn sum(&mut self, i: usize, from: usize) -> Checksum {
        let v = self.views[i];
        let (head, tail) = (self.bytes(v.head), self.bytes(v.tail));
        match head.get(from..) {
            Some(rest) => Checksum::of(rest).combine(Checksum::of(tail)),
            None => Checksum::of(&tail[from - head.len()..]),
        }
    }

    #[inline]
    fn push_segments(&self, i: usize, from: usize, plan: &mut PlanStore) {
        let PacketView { head, tail, .. } = self.views[i];
        let rest = head.start.saturating_add(from);
        if rest < head.end {
            plan.push_segment(Segment {
                buf: head.buf,
                start: rest,
                end: head.end,
            });
        }
        let tail_from = tail.start + from.saturating_sub(head.len());
        if tail_from < tail.end {
            plan.push_segment(Segment {
                buf: tail.buf,
                start: tail_from,
                end: tail.end,
            });
        }
    }
}
