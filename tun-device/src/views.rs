//! Batches of views: packets handed out where they were read, each in one
//! or two pieces, for a relay or any sender with gathered writes.
//!
//! [`Queue::recv_batch`](crate::Queue::recv_batch) hands out every packet
//! whole in a buffer of its own, so each segment of a TSO/USO super-packet
//! is copied there. [`Queue::recv_views`](crate::Queue::recv_views) reads
//! into one arena instead, one read behind the other, and splits a
//! super-packet without moving its payload: each segment is a
//! [`PacketView`] of its rewritten headers (in a buffer of headers) and its
//! payload where the read left it
//! ([`GsoPacket::split_heads`](tun_offload::GsoPacket::split_heads)); a
//! packet that needs no split is one piece, where it was read.
//! [`Queue::send_views`](crate::Queue::send_views) coalesces such a batch by
//! the same rules as [`Queue::send_batch`](crate::Queue::send_batch)
//! ([`GroTable::plan_views`](tun_offload::GroTable::plan_views)): the
//! segments of one super-packet merged again are written with their
//! payload as one slice of the read, so no payload byte is copied in user
//! space on either side and each write hands the kernel a few large
//! slices instead of one per segment.
//!
//! The engine half (where the next read goes, what a read becomes) is
//! here and unit-tested without a device; the queue makes the reads.

use tun_offload::gro::{PacketView, Segment};
use tun_offload::{
    GroError, GroTable, GsoType, SplitError, VirtioNetHdr, VirtioNetHdrV1HashTunnel,
};

use crate::error::BatchError;
use crate::rx::{Framing, Malformed, RxFault, SuperPacket, settle_checksum};
use crate::tx::{BatchId, TxBatch};

/// Room one read needs in the arena: the largest packet a TUN or TAP hands
/// over (64 KiB and a tagged Ethernet header) and some slack, so that a
/// read that fills it is known to be truncated.
pub(crate) const READ_ROOM: usize = (1 << 16) + 256;

/// Where each read starts: a cache line after the last one.
const ALIGN: usize = 64;

/// The source of the plan's segments that holds split segments' headers.
const HEADS: usize = 0;
/// The source that holds the reads.
const READS: usize = 1;

/// Packets received with [`Queue::recv_views`](crate::Queue::recv_views):
/// the reads, one behind the other in an arena, and a [`PacketView`] of
/// each packet (a segment of a split super-packet: its headers in a buffer
/// of headers, its payload in the read). Reuse one for every batch: its
/// buffers grow to what the batches need and stay.
///
/// ```
/// let batch = tun_device::ViewBatch::new();
/// assert!(batch.is_empty());
/// assert_eq!(batch.sources().len(), 2); // headers, reads
/// ```
#[derive(Debug, Clone)]
pub struct ViewBatch {
    /// [`HEADS`] and [`READS`].
    sources: [Vec<u8>; 2],
    /// Bytes of each source in use.
    used: [usize; 2],
    views: Vec<PacketView>,
    /// A batch ends once it holds this many packets.
    max_packets: usize,
    /// Bytes of the packets.
    bytes: usize,
}

impl Default for ViewBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// What one read became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// One packet, whole.
    Packet,
    /// A super-packet split into this many segments (`tunnel`: a UDP
    /// tunnel's, split into complete datagrams in the headers' buffer).
    Split { segments: usize, tunnel: bool },
}

impl ViewBatch {
    /// A batch of up to [`crate::relay::BATCH`] packets per receive (more
    /// when one super-packet has more segments) and room for four reads
    /// of the largest packet.
    pub fn new() -> Self {
        Self::with_capacity(crate::relay::BATCH, 4 * READ_ROOM)
    }

    /// A batch that ends a receive once it holds `max_packets` packets
    /// (at least 1; a super-packet's segments always come together) and
    /// reads into an arena of `arena` bytes (at least one read of the
    /// largest packet, about 64 KiB). The arena is allocated zeroed, so
    /// only the pages reads touch become resident.
    pub fn with_capacity(max_packets: usize, arena: usize) -> Self {
        Self {
            sources: [Vec::new(), vec![0; arena.max(READ_ROOM)]],
            used: [0, 0],
            views: Vec::with_capacity(max_packets.max(1)),
            max_packets: max_packets.max(1),
            bytes: 0,
        }
    }

    /// Packets in the batch.
    pub fn len(&self) -> usize {
        self.views.len()
    }

    /// Whether the batch holds no packet.
    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    /// Bytes of the batch's packets (IP packets, or frames on a TAP).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The packets, in the order they were read; each view's segments
    /// index [`Self::sources`].
    pub fn views(&self) -> &[PacketView] {
        &self.views
    }

    /// What the views' segments index: the headers of split segments,
    /// then the reads.
    pub fn sources(&self) -> &[Vec<u8>] {
        &self.sources
    }

    /// Packet `i`: its head (all of it, for a packet that needed no split)
    /// and its tail (a split segment's payload, where it was read), and
    /// the virtio header it carries (its checksum part, with partial
    /// checksums; else all zero).
    pub fn packet(&self, i: usize) -> Option<(&[u8], &[u8], VirtioNetHdr)> {
        let v = self.views.get(i)?;
        Some((self.bytes_of(v.head), self.bytes_of(v.tail), v.hdr))
    }

    /// The head of packet `i`, to rewrite headers in place (addresses,
    /// ports, TTL: a NAT, a router). Its length stays; a rewrite must
    /// leave the packet valid (checksums included, or partial as its
    /// header says).
    pub fn head_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let s = self.views.get(i)?.head;
        self.sources[s.buf].get_mut(s.range())
    }

    /// Empty the batch (its buffers stay).
    pub fn clear(&mut self) {
        self.views.clear();
        self.used = [0, 0];
        self.bytes = 0;
    }

    /// Whether the batch ends here: it holds `max_packets` packets.
    pub(crate) fn is_full(&self) -> bool {
        self.views.len() >= self.max_packets
    }

    fn bytes_of(&self, s: Segment) -> &[u8] {
        self.sources
            .get(s.buf)
            .and_then(|b| b.get(s.range()))
            .unwrap_or_default()
    }

    /// Where the next read goes: room for the largest packet behind the
    /// reads so far, or `None` when the arena has no such room left.
    pub(crate) fn read_area(&mut self) -> Option<&mut [u8]> {
        let at = self.used[READS];
        self.sources[READS].get_mut(at..at + READ_ROOM)
    }

    /// Take the read of `len` bytes just made into [`Self::read_area`],
    /// `hdr` its virtio header (all zero without one): a packet, or a
    /// super-packet split into views. `partial`: leave checksums partial
    /// (each view carries its header), as
    /// [`RecvState::set_partial_checksums`](crate::RecvState::set_partial_checksums)
    /// says. Nothing is kept of a read that faults.
    pub(crate) fn take(
        &mut self,
        framing: Framing,
        hdr: VirtioNetHdrV1HashTunnel,
        len: usize,
        partial: bool,
    ) -> Result<Taken, RxFault> {
        let at = self.used[READS];
        let index = self.views.len();
        if len >= READ_ROOM || at + len > self.sources[READS].len() {
            return Err(RxFault::TooSmall {
                needed: len,
                available: READ_ROOM - 1,
            });
        }
        let read = at..at + len;
        let taken = if hdr.hdr.gso_type() != GsoType::NONE {
            self.split(framing, &hdr, read.clone(), partial)
                .map_err(|error| RxFault::Bad { index, error })?
        } else {
            let pkt = &mut self.sources[READS][read.clone()];
            let carries =
                settle_checksum(framing, partial, &hdr.hdr, pkt).map_err(|e| RxFault::Bad {
                    index,
                    error: e.into(),
                })?;
            self.views.push(PacketView {
                hdr: carries,
                head: Segment {
                    buf: READS,
                    start: read.start,
                    end: read.end,
                },
                tail: Segment {
                    buf: READS,
                    start: read.end,
                    end: read.end,
                },
            });
            self.bytes += len;
            Taken::Packet
        };
        self.used[READS] = (at + len).next_multiple_of(ALIGN);
        Ok(taken)
    }

    /// Split the super-packet at `read` of the arena into views.
    fn split(
        &mut self,
        framing: Framing,
        hdr: &VirtioNetHdrV1HashTunnel,
        read: core::ops::Range<usize>,
        partial: bool,
    ) -> Result<Taken, Malformed> {
        let [heads, reads] = &mut self.sources;
        let pkt = &reads[read.clone()];
        let gso = SuperPacket::parse(framing.l2, hdr, pkt)?;
        let n = gso.segment_count();
        let h0 = self.used[HEADS];
        match &gso {
            SuperPacket::Plain(g) => {
                let hl = g.header_len();
                let end = h0 + n * hl;
                if heads.len() < end {
                    heads.resize(end, 0);
                }
                let out = &mut heads[h0..end];
                let split = if partial {
                    g.split_heads_partial(pkt, out)
                } else {
                    g.split_heads(pkt, out)
                };
                // The room was made above: all segments or none.
                let n = produced(split)?;
                let vhdr = if partial {
                    g.partial_hdr()
                } else {
                    VirtioNetHdr::ZERO
                };
                let payload = read.start + hl;
                self.views.extend((0..n).map(|k| {
                    let p = g.payload_range(k);
                    PacketView {
                        hdr: vhdr,
                        head: Segment {
                            buf: HEADS,
                            start: h0 + k * hl,
                            end: h0 + (k + 1) * hl,
                        },
                        tail: Segment {
                            buf: READS,
                            start: payload + p.start,
                            end: payload + p.end,
                        },
                    }
                }));
                self.used[HEADS] = end;
                self.bytes += n * hl + (read.len() - hl);
                Ok(Taken::Split {
                    segments: n,
                    tunnel: false,
                })
            }
            SuperPacket::Tunnel(_) => {
                // Outer datagrams are complete packets of their own: split
                // into the headers' buffer (a copy, as recv_batch makes),
                // each one piece. (The two small lists are this rare
                // path's only allocations.)
                let max = gso.max_segment_len();
                let end = h0 + n * max;
                if heads.len() < end {
                    heads.resize(end, 0);
                }
                let mut lens = vec![0usize; n];
                let mut outs: Vec<&mut [u8]> = heads[h0..end].chunks_mut(max).collect();
                let k = produced(gso.split_into(pkt, &mut outs, &mut lens, 0, false))?;
                for (s, &l) in lens[..k].iter().enumerate() {
                    let start = h0 + s * max;
                    self.views.push(PacketView {
                        hdr: VirtioNetHdr::ZERO,
                        head: Segment {
                            buf: HEADS,
                            start,
                            end: start + l,
                        },
                        tail: Segment {
                            buf: HEADS,
                            start: start + l,
                            end: start + l,
                        },
                    });
                    self.bytes += l;
                }
                self.used[HEADS] = end;
                Ok(Taken::Split {
                    segments: k,
                    tunnel: true,
                })
            }
        }
    }
}

/// The segments a split produced; one that does not match its header is
/// malformed.
fn produced(split: Result<usize, SplitError>) -> Result<usize, Malformed> {
    match split {
        Ok(k) | Err(SplitError::OutOfSpace { produced: k, .. }) => Ok(k),
        Err(SplitError::Invalid(e)) => Err(e.into()),
    }
}

impl<'a> TxBatch<'a> for &'a ViewBatch {
    type Source = Vec<u8>;

    fn count(self) -> usize {
        self.views.len()
    }

    fn id(self) -> BatchId {
        BatchId::Views {
            count: self.views.len(),
        }
    }

    fn pieces(self, j: usize) -> Result<[&'a [u8]; 2], BatchError> {
        let v = self.views.get(j).ok_or(BatchError::NotThePreparedBatch {
            prepared: j + 1,
            given: self.views.len(),
        })?;
        Ok([self.bytes_of(v.head), self.bytes_of(v.tail)])
    }

    fn own_hdr(self, j: usize) -> VirtioNetHdr {
        self.views
            .get(j)
            .map_or(VirtioNetHdr::ZERO, |v| v.hdr.packet_part())
    }

    fn plan(self, table: &mut GroTable) -> Result<(), GroError> {
        table.plan_views(&self.sources, &self.views).map(drop)
    }

    fn sources(self) -> &'a [Vec<u8>] {
        &self.sources
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_packets::{plain_udp, reference, super_tcp, vxlan_super};
    use crate::tx::tests::{drive_batch, offload};
    use crate::tx::{Failed, SendState, TxFraming, Written};
    use rustix::io::Errno;
    use tun_offload::HdrFlags;

    fn vnet() -> Framing {
        Framing {
            vnet: true,
            mtu: 1500,
            ..Framing::default()
        }
    }

    /// What a read of `pkt` behind `hdr` leaves: its bytes in the read
    /// area; then the batch takes it.
    fn read(
        b: &mut ViewBatch,
        f: Framing,
        hdr: VirtioNetHdrV1HashTunnel,
        pkt: &[u8],
        partial: bool,
    ) -> Result<Taken, RxFault> {
        let area = b.read_area().expect("room for a read");
        area[..pkt.len()].copy_from_slice(pkt);
        b.take(f, hdr, pkt.len(), partial)
    }

    fn plain(hdr: VirtioNetHdr) -> VirtioNetHdrV1HashTunnel {
        VirtioNetHdrV1HashTunnel::plain(hdr)
    }

    /// Packet `i` of the batch, whole.
    fn whole(b: &ViewBatch, i: usize) -> Vec<u8> {
        let (head, tail, _) = b.packet(i).unwrap();
        [head, tail].concat()
    }

    #[test]
    fn a_super_packet_becomes_views_of_its_read_without_a_copy() {
        let (hdr, sp) = super_tcp(10_000, 1400, 7, 12);
        let want = reference(&hdr, &sp);
        let mut b = ViewBatch::new();
        let taken = read(&mut b, vnet(), plain(hdr), &sp, false).unwrap();
        assert_eq!(
            taken,
            Taken::Split {
                segments: want.len(),
                tunnel: false
            }
        );
        assert_eq!(b.len(), want.len());
        assert_eq!(b.bytes(), want.iter().map(Vec::len).sum::<usize>());
        for (i, w) in want.iter().enumerate() {
            assert_eq!(&whole(&b, i), w, "segment {i}");
            let v = b.views()[i];
            // Headers apart, payload where it was read.
            assert_eq!((v.head.buf, v.head.len()), (HEADS, 52));
            assert_eq!(v.tail.buf, READS);
            assert_eq!(v.hdr, VirtioNetHdr::ZERO);
        }
        // The tails are the read's payload, back to back.
        let tails: Vec<Segment> = b.views().iter().map(|v| v.tail).collect();
        assert!(tails.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!((tails[0].start, tails.last().unwrap().end), (52, sp.len()));
    }

    #[test]
    fn partial_checksums_stay_partial_with_their_header() {
        let (hdr, sp) = super_tcp(3000, 1000, 1, 0);
        let mut b = ViewBatch::new();
        read(&mut b, vnet(), plain(hdr), &sp, true).unwrap();
        let want = reference(&hdr, &sp);
        for (i, w) in want.iter().enumerate() {
            let (_, _, h) = b.packet(i).unwrap();
            assert_eq!(h.flags(), HdrFlags::NEEDS_CSUM);
            let mut got = whole(&b, i);
            tun_offload::complete_checksum(&h, &mut got).unwrap();
            assert_eq!(&got, w);
        }
    }

    #[test]
    fn packets_that_need_no_split_are_views_of_themselves_one_behind_the_other() {
        // Room for the largest read, and 300 bytes: three reads of 128.
        let mut b = ViewBatch::with_capacity(3, READ_ROOM + 300);
        let udp = plain_udp(100);
        for k in 0..3 {
            assert_eq!(
                read(&mut b, vnet(), plain(VirtioNetHdr::ZERO), &udp, false),
                Ok(Taken::Packet)
            );
            assert_eq!(b.is_full(), k == 2);
        }
        for i in 0..3 {
            let v = b.views()[i];
            assert_eq!(
                (v.head.buf, v.head.start % ALIGN, v.tail.len()),
                (READS, 0, 0)
            );
            assert_eq!(whole(&b, i), udp);
        }
        assert!(b.read_area().is_none(), "no room for another 64 KiB read");
        b.clear();
        assert!(b.is_empty() && b.read_area().is_some());
    }

    #[test]
    fn a_partial_packet_is_completed_unless_partial_checksums_are_on() {
        let (hdr, sp) = super_tcp(500, 1000, 1, 0);
        // One segment's worth: no GSO, checksum partial.
        let single = VirtioNetHdr::new(HdrFlags::NEEDS_CSUM, GsoType::NONE, 0, 0, 20, 16);
        let want = reference(&hdr, &sp);
        let mut b = ViewBatch::new();
        read(&mut b, vnet(), plain(single), &sp, false).unwrap();
        assert_eq!(whole(&b, 0), want[0]);
        assert_eq!(b.packet(0).unwrap().2, VirtioNetHdr::ZERO);
        read(&mut b, vnet(), plain(single), &sp, true).unwrap();
        assert_eq!(whole(&b, 1), sp, "left as it came");
        assert_eq!(b.packet(1).unwrap().2, single.checksum_part());
    }

    #[test]
    fn a_malformed_read_leaves_nothing_behind() {
        let (hdr, sp) = super_tcp(3000, 1000, 1, 0);
        let mut b = ViewBatch::new();
        read(&mut b, vnet(), plain(hdr), &sp, false).unwrap();
        let (n, heads) = (b.len(), b.used);
        let mut bad = hdr;
        bad.set_csum_start(30);
        let r = read(&mut b, vnet(), plain(bad), &sp, false);
        assert!(
            matches!(r, Err(RxFault::Bad { index, .. }) if index == n),
            "{r:?}"
        );
        assert_eq!((b.len(), b.used), (n, heads));
        // Too long for the read area: truncated, reported.
        assert_eq!(
            b.take(vnet(), plain(VirtioNetHdr::ZERO), READ_ROOM, false),
            Err(RxFault::TooSmall {
                needed: READ_ROOM,
                available: READ_ROOM - 1
            })
        );
    }

    #[test]
    fn a_tunnel_super_packet_is_split_into_whole_datagrams() {
        let (hdr, sp) = vxlan_super(5000, 1400, 3);
        let want = crate::test_packets::tunnel_reference(&hdr, &sp, false);
        let f = Framing {
            tunnel: true,
            ..vnet()
        };
        let mut b = ViewBatch::new();
        let taken = read(&mut b, f, hdr, &sp, false).unwrap();
        assert_eq!(
            taken,
            Taken::Split {
                segments: want.len(),
                tunnel: true
            }
        );
        for (i, w) in want.iter().enumerate() {
            let (head, tail, _) = b.packet(i).unwrap();
            assert_eq!((head, tail.len()), (&w[..], 0));
        }
    }

    #[test]
    fn a_split_super_packet_is_written_again_with_its_payload_as_one_slice() {
        for partial in [false, true] {
            let (hdr, sp) = super_tcp(20_000, 1448, 9, 12);
            let mut b = ViewBatch::new();
            read(&mut b, vnet(), plain(hdr), &sp, partial).unwrap();
            let mut st = SendState::new();
            st.set_checksums_verified(!partial);
            st.set_partial_checksums(partial);
            st.prepare_views(&b, offload()).unwrap();
            let (frames, results) = drive_batch(&mut st, &b, &mut vec![]);
            assert_eq!(results, [Ok(Written::Frame)]);
            // The header with the headers, then the read's payload.
            let slices = &frames[0];
            assert_eq!(slices.len(), 2, "partial {partial}");
            assert_eq!(slices[1], sp[52..]);
            let (h, headers) = VirtioNetHdr::split_prefix(&slices[0]).unwrap();
            assert_eq!(
                (h.gso_type(), h.gso_size(), h.hdr_len()),
                (GsoType::TCPV4, 1448, 52)
            );
            // The merged headers are the super-packet's (its checksum field
            // holds the same pseudo-header sum).
            assert_eq!(headers, &sp[..52]);
            assert_eq!(st.report().packets, b.len());
        }
    }

    #[test]
    fn a_refused_run_of_views_is_written_again_packet_by_packet_from_its_pieces() {
        let (hdr, sp) = super_tcp(4000, 1000, 5, 0);
        let want = reference(&hdr, &sp);
        let mut b = ViewBatch::new();
        read(&mut b, vnet(), plain(hdr), &sp, false).unwrap();
        let mut st = SendState::new();
        st.set_checksums_verified(true);
        st.prepare_views(&b, offload()).unwrap();
        let (frames, results) = drive_batch(&mut st, &b, &mut vec![Err(Errno::INVAL)]);
        assert_eq!(results[0], Ok(Written::Refallback));
        assert_eq!(frames.len(), want.len());
        for (f, w) in frames.iter().zip(&want) {
            // The all-zero header, the segment's headers, its payload.
            assert_eq!(f.len(), 3);
            assert_eq!(f[0], [0u8; VirtioNetHdr::LEN]);
            assert_eq!(&[f[1].clone(), f[2].clone()].concat(), w);
        }
        assert_eq!(st.report().packets, want.len());
    }

    #[test]
    fn eagain_in_the_middle_of_views_resumes_without_writing_twice() {
        let udp = plain_udp(200);
        let mut b = ViewBatch::new();
        for _ in 0..3 {
            read(&mut b, vnet(), plain(VirtioNetHdr::ZERO), &udp, false).unwrap();
        }
        let mut st = SendState::new();
        // UDP without USO: three packets written as they are.
        let f = TxFraming {
            udp: false,
            ..offload()
        };
        st.prepare_views(&b, f).unwrap();
        let (frames, results) = drive_batch(&mut st, &b, &mut vec![Ok(()), Err(Errno::AGAIN)]);
        assert_eq!(frames.len(), 3);
        assert!(matches!(results[1], Err(Failed::Io { index: 1, .. })));
        assert_eq!(st.report().packets, 3);
    }
}
