//! A coalescing plan ([`GroTable::plan`](super::GroTable::plan)): the runs
//! of a batch for gathered writes, so that no payload byte is copied on the
//! send path.
//!
//! Each run, in write order, is its head (the virtio header, then the
//! rewritten headers of the run's first packet: L2 header of a frame, IP
//! and transport headers), held by the table, followed by its
//! [`Segment`]s: the payload of each packet of the run, in sequence order,
//! where it lies in the caller's buffers. A packet written as it is has the
//! all-zero virtio header as its head and the whole packet as its one
//! segment. One `writev` of the head and the segments writes the run:
//!
//! ```
//! # fn write_all(_: &[&[u8]]) {}
//! # let bufs: Vec<Vec<u8>> = Vec::new();
//! # let lens: Vec<usize> = Vec::new();
//! let mut table = tun_offload::GroTable::new(true);
//! let mut iov: Vec<&[u8]> = Vec::with_capacity(64);
//! for run in table.plan(&bufs, &lens, 0)? {
//!     iov.clear();
//!     iov.extend(run.slices(&bufs)?); // head, then each payload where it lies
//!     write_all(&iov); // e.g. one writev of iov as IoSlices
//! }
//! # Ok::<(), tun_offload::GroError>(())
//! ```
//!
//! The plan never writes to the batch: if the kernel refuses a run, its
//! packets ([`PlannedRun::packets`]) are still intact in their buffers and
//! can be written one by one with the all-zero header.

use alloc::vec::Vec;
use core::iter::FusedIterator;
use core::ops::Range;

use crate::virtio::VirtioNetHdr;

use super::GroError;

/// Bytes of one buffer of the batch: `bufs[buf][start..end]` (of a
/// [`PacketView`]'s sources: `sources[buf][start..end]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Segment {
    /// Index of the buffer in the batch (or of the source).
    pub buf: usize,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Segment {
    /// `start..end`.
    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }

    /// Bytes in the segment.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether the segment holds no byte (only an empty packet written as
    /// it is has one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The segment's bytes in `bufs`, if they are there.
    pub fn get<'a, B: AsRef<[u8]>>(&self, bufs: &'a [B]) -> Option<&'a [u8]> {
        bufs.get(self.buf)?.as_ref().get(self.range())
    }
}

/// A packet held in two pieces of the caller's sources, for
/// [`GroTable::plan_views`](super::GroTable::plan_views): its `head` (at
/// least its IP and transport headers, and for a frame its L2 header in
/// front; it may hold payload too), then its `tail` (the rest, possibly
/// empty). A receiver that splits a super-packet without copying its
/// payload hands segments over so: each segment's rewritten headers in a
/// buffer of headers, its payload where it lies in the super-packet
/// ([`GsoPacket::split_heads`](crate::GsoPacket::split_heads)).
///
/// Each [`Segment`]'s `buf` indexes the sources, not the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PacketView {
    /// The packet's virtio header, read as the header in front of a
    /// packet is with [`GroTable::set_partial_checksums`](super::GroTable::set_partial_checksums)
    /// (ignored otherwise).
    pub hdr: VirtioNetHdr,
    /// The packet's first bytes.
    pub head: Segment,
    /// The bytes behind the head.
    pub tail: Segment,
}

impl PacketView {
    /// The packet's length: head and tail.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// Whether the packet holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The all-zero header of a packet written as it is.
static ZERO_HDR: [u8; VirtioNetHdr::LEN] = crate::framing::PLAIN_HDR;

/// The longest head: the virtio header, an 802.1Q-tagged Ethernet header,
/// IPv4 with options or IPv6 (a candidate has at most 60 bytes of IP
/// header), and TCP with 40 bytes of options.
const MAX_HEAD: usize = VirtioNetHdr::LEN + 18 + 60 + 60;

/// One run as the table records it.
#[derive(Debug, Clone, Copy)]
struct RunRecord {
    first: u32,
    hdr: VirtioNetHdr,
    /// Its bytes in `PlanStore::heads`; empty: the all-zero header alone.
    head: (u32, u32),
    /// Its segments in `PlanStore::segments`.
    segs: (u32, u32),
    /// Its packets' batch indices in `PlanStore::packets`.
    pkts: (u32, u32),
    /// Bytes behind the virtio header.
    len: usize,
}

/// The table's storage of its last plan, reused batch after batch.
#[derive(Debug, Clone, Default)]
pub(super) struct PlanStore {
    runs: Vec<RunRecord>,
    heads: Vec<u8>,
    segments: Vec<Segment>,
    packets: Vec<u32>,
    /// Packets in the planned batch.
    batch: usize,
    /// Buffers (or sources of views) the segments index.
    sources: usize,
    /// Where the run being recorded starts in `heads`, `segments` and
    /// `packets`.
    open: (usize, usize, usize),
}

impl PlanStore {
    /// Room for a batch of `batch` packets: at most `batch` runs and
    /// segments, and a head for at most every second packet (a merged run
    /// has two packets or more).
    pub(super) fn reserve(&mut self, batch: usize) {
        self.runs.reserve(batch.saturating_sub(self.runs.len()));
        // A view adds up to two segments.
        self.segments
            .reserve((2 * batch).saturating_sub(self.segments.len()));
        self.packets
            .reserve(batch.saturating_sub(self.packets.len()));
        // (With partial checksums a packet written as it is has a head
        // too: its own virtio header.)
        let heads = batch
            .div_ceil(2)
            .saturating_mul(MAX_HEAD)
            .saturating_add(batch.saturating_mul(VirtioNetHdr::LEN));
        self.heads.reserve(heads.saturating_sub(self.heads.len()));
    }

    pub(super) fn clear(&mut self) {
        self.runs.clear();
        self.heads.clear();
        self.segments.clear();
        self.packets.clear();
        self.batch = 0;
        self.sources = 0;
    }

    /// Start recording packet `i` (`len` bytes) written as it is, behind
    /// `hdr` (the all-zero header, or its own with partial checksums); its
    /// bytes follow as segments ([`Self::push_segment`]), then
    /// [`Self::end_run`].
    pub(super) fn begin_alone(&mut self, i: usize, hdr: VirtioNetHdr) {
        let start = self.heads.len();
        self.open = (start, self.segments.len(), self.packets.len());
        if hdr != VirtioNetHdr::ZERO {
            self.heads.extend_from_slice(&hdr.to_bytes());
        }
        self.packets.push(i as u32);
    }

    /// Start recording a merged run whose first packet's headers are
    /// `headers`: returns its head, room for the virtio header followed by
    /// a copy of `headers`, for the caller to rewrite. Its packets
    /// ([`Self::push_packet`]) and segments follow, then [`Self::end_run`].
    pub(super) fn begin_merged(&mut self, headers: &[u8]) -> &mut [u8] {
        let start = self.heads.len();
        self.open = (start, self.segments.len(), self.packets.len());
        self.heads.extend_from_slice(&ZERO_HDR);
        self.heads.extend_from_slice(headers);
        &mut self.heads[start..]
    }

    /// Packet `i` belongs to the run being recorded (in sequence order).
    #[inline]
    pub(super) fn push_packet(&mut self, i: usize) {
        self.packets.push(i as u32);
    }

    /// The next bytes of the run being recorded: one slice more, or, where
    /// they continue the last one in the same buffer, that slice longer.
    #[inline]
    pub(super) fn push_segment(&mut self, seg: Segment) {
        if self.segments.len() > self.open.1 {
            if let Some(last) = self.segments.last_mut() {
                if last.buf == seg.buf && last.end == seg.start {
                    last.end = seg.end;
                    return;
                }
            }
        }
        self.segments.push(seg);
    }

    /// End the run begun last: its first packet in the batch is `first`,
    /// its header `hdr`, its length behind that header `len`.
    pub(super) fn end_run(&mut self, first: usize, hdr: VirtioNetHdr, len: usize) {
        let (h, s, p) = self.open;
        self.runs.push(RunRecord {
            first: first as u32,
            hdr,
            head: (h as u32, self.heads.len() as u32),
            segs: (s as u32, self.segments.len() as u32),
            pkts: (p as u32, self.packets.len() as u32),
            len,
        });
    }

    pub(super) fn set_batch(&mut self, packets: usize, sources: usize) {
        self.batch = packets;
        self.sources = sources;
    }

    pub(super) fn runs(&self) -> usize {
        self.runs.len()
    }

    pub(super) fn view(&self) -> GroPlan<'_> {
        GroPlan {
            runs: &self.runs,
            heads: &self.heads,
            segments: &self.segments,
            packets: &self.packets,
            batch: self.batch,
            sources: self.sources,
        }
    }
}

/// The runs of a planned batch, in write order (the order of their first
/// packets in the batch, as [`GroTable::coalesce`](super::GroTable::coalesce)
/// returns them).
#[derive(Debug, Clone, Copy)]
pub struct GroPlan<'t> {
    runs: &'t [RunRecord],
    heads: &'t [u8],
    segments: &'t [Segment],
    packets: &'t [u32],
    batch: usize,
    sources: usize,
}

impl<'t> GroPlan<'t> {
    /// Runs to write (packets written as they are count as runs of one).
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Packets in the batch the plan was made for.
    pub fn batch_len(&self) -> usize {
        self.batch
    }

    /// Run `k` in write order.
    pub fn get(&self, k: usize) -> Option<PlannedRun<'t>> {
        self.runs.get(k).map(|r| self.run(r))
    }

    /// The runs in write order.
    pub fn iter(&self) -> Runs<'t> {
        Runs {
            plan: *self,
            at: 0..self.runs.len(),
        }
    }

    fn run(&self, r: &RunRecord) -> PlannedRun<'t> {
        let head = if r.head.0 == r.head.1 {
            &ZERO_HDR[..]
        } else {
            &self.heads[r.head.0 as usize..r.head.1 as usize]
        };
        PlannedRun {
            first: r.first as usize,
            hdr: r.hdr,
            head,
            segments: &self.segments[r.segs.0 as usize..r.segs.1 as usize],
            packets: &self.packets[r.pkts.0 as usize..r.pkts.1 as usize],
            len: r.len,
            sources: self.sources,
        }
    }
}

impl<'t> IntoIterator for GroPlan<'t> {
    type Item = PlannedRun<'t>;
    type IntoIter = Runs<'t>;
    fn into_iter(self) -> Runs<'t> {
        self.iter()
    }
}

/// The runs of a [`GroPlan`], in write order.
#[derive(Debug, Clone)]
pub struct Runs<'t> {
    plan: GroPlan<'t>,
    at: Range<usize>,
}

impl<'t> Iterator for Runs<'t> {
    type Item = PlannedRun<'t>;
    fn next(&mut self) -> Option<PlannedRun<'t>> {
        let k = self.at.next()?;
        self.plan.get(k)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.at.size_hint()
    }
}

impl DoubleEndedIterator for Runs<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let k = self.at.next_back()?;
        self.plan.get(k)
    }
}

impl ExactSizeIterator for Runs<'_> {}
impl FusedIterator for Runs<'_> {}

/// One write of a plan: a merged run, or a packet written as it is.
#[derive(Debug, Clone, Copy)]
pub struct PlannedRun<'t> {
    first: usize,
    hdr: VirtioNetHdr,
    head: &'t [u8],
    segments: &'t [Segment],
    packets: &'t [u32],
    len: usize,
    sources: usize,
}

impl<'t> PlannedRun<'t> {
    /// Index in the batch of the run's earliest packet (whose headers the
    /// run's head carries).
    pub fn first(&self) -> usize {
        self.first
    }

    /// The run's virtio header: GSO and NEEDS_CSUM for a merged run
    /// (`csum_start` and `hdr_len` counted from the frame start for a
    /// frame), all zero for a packet written as it is. Its bytes start
    /// [`Self::head`].
    pub fn hdr(&self) -> VirtioNetHdr {
        self.hdr
    }

    /// What the write starts with: the virtio header's
    /// [`VirtioNetHdr::LEN`] bytes, then, for a merged run, the rewritten
    /// headers of its first packet (frame's L2 header, IP header with the
    /// run's length, ID and checksum, transport header with the run's
    /// sequence number, PSH of its last segment, UDP length, and the
    /// pseudo-header sum in the checksum field).
    pub fn head(&self) -> &'t [u8] {
        self.head
    }

    /// [`Self::head`] without the virtio header (empty for a packet written
    /// as it is), for a writer whose virtio header has another size.
    pub fn headers(&self) -> &'t [u8] {
        &self.head[VirtioNetHdr::LEN..]
    }

    /// The bytes behind the head, in write order. For a merged run, the
    /// payload of each of its packets in sequence order (the first
    /// segment's buffer is not always [`Self::first`]: a segment may have
    /// been put in front); for a packet written as it is, the whole packet.
    /// Of a plan of views, segments index the sources, and bytes that
    /// continue the segment before them in the same source lengthen it
    /// (a run of one super-packet's segments is one slice of payload).
    pub fn segments(&self) -> &'t [Segment] {
        self.segments
    }

    /// The batch indices of the run's packets, in sequence order; each is
    /// still intact in its buffer (a plan writes to none).
    pub fn packets(&self) -> impl ExactSizeIterator<Item = usize> + 't {
        self.packets.iter().map(|&i| i as usize)
    }

    /// Whether the run merges two packets or more.
    pub fn is_merged(&self) -> bool {
        self.packets.len() > 1
    }

    /// Bytes of the (super-)packet behind the virtio header: the headers
    /// and every segment.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the packet behind the virtio header is empty (an empty
    /// packet written as it is).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slices of the write, in order: [`Self::head`], then each
    /// segment's bytes in `bufs`, which must be the planned batch's
    /// buffers (a plan of views: its sources).
    ///
    /// Errors: [`GroError::LengthsMismatch`] if `bufs` has another number
    /// of buffers than the plan was made with,
    /// [`GroError::PacketOutsideBuffer`] if a segment lies outside its
    /// buffer (`index` then names the buffer).
    pub fn slices<'a, B: AsRef<[u8]>>(&self, bufs: &'a [B]) -> Result<Slices<'a, B>, GroError>
    where
        't: 'a,
    {
        if bufs.len() != self.sources {
            return Err(GroError::LengthsMismatch {
                bufs: bufs.len(),
                lens: self.sources,
            });
        }
        for s in self.segments {
            let buf_len = bufs[s.buf].as_ref().len();
            if s.end > buf_len {
                return Err(GroError::PacketOutsideBuffer {
                    index: s.buf,
                    end: s.end,
                    buf_len,
                });
            }
        }
        Ok(Slices {
            head: Some(self.head),
            segments: self.segments.iter(),
            bufs,
        })
    }
}

/// The slices of one [`PlannedRun`]'s write, from [`PlannedRun::slices`].
#[derive(Debug, Clone)]
pub struct Slices<'a, B> {
    head: Option<&'a [u8]>,
    segments: core::slice::Iter<'a, Segment>,
    bufs: &'a [B],
}

impl<'a, B: AsRef<[u8]>> Iterator for Slices<'a, B> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if let Some(h) = self.head.take() {
            return Some(h);
        }
        // Checked against these buffers when the iterator was made.
        self.segments
            .next()
            .map(|s| s.get(self.bufs).unwrap_or(&[]))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.segments.len() + usize::from(self.head.is_some());
        (n, Some(n))
    }
}

impl<B: AsRef<[u8]>> ExactSizeIterator for Slices<'_, B> {}
impl<B: AsRef<[u8]>> FusedIterator for Slices<'_, B> {}
