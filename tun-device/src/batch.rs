//! Batched I/O of a queue: receive reads super-packets and splits them into
//! the caller's buffers (tun-offload's GSO split); send coalesces a batch
//! (tun-offload's GRO table) and writes the few large packets that result.
//!
//! On a TAP the packets are Ethernet frames: the split puts a copy of a
//! super-frame's Ethernet header (802.1Q tag included) in front of every
//! segment, the coalescing merges only frames whose Ethernet headers are
//! equal, and frames that carry no IP packet (ARP and the like) pass
//! through as they are.
//!
//! The state of each direction is a caller-owned value ([`RecvState`],
//! [`SendState`]) that is reused across batches: it holds the scratch
//! buffer, the coalescing table, and whatever a call could not finish
//! (segments of a super-packet that did not fit, packets of a batch not
//! written yet), so nothing is lost between calls and nothing is
//! allocated once it has grown to the largest batch.

use std::io::IoSliceMut;

use std::sync::atomic::Ordering;

use tun_offload::{GsoPacket, GsoType, SplitError, VirtioNetHdr};
use tun_sys::OffloadFlags;

use crate::error::{ConfigError, Error, IoOp, Result};
use crate::queue::{PI_LEN, Queue};
use crate::tx::{Failed, PREFIX_MAX, SendReport, SendState, TxFraming, Written, recycle};

/// Room in front of the overflow area of the scratch buffer: the head of a
/// packet read into a caller's buffer is copied there to make the packet
/// contiguous again.
const FRONT: usize = 1 << 16;
/// The overflow area: the largest packet a TUN hands over (its
/// `gso_max_size`, 64 KiB) and some slack, so a read that fills it is
/// known to be truncated.
const OVERFLOW: usize = (1 << 16) + 256;

#[derive(Debug, Clone, Copy)]
enum Pending {
    None,
    /// A super-packet read but not split yet, at `scratch[start..start + len]`.
    Raw {
        hdr: VirtioNetHdr,
        start: usize,
        len: usize,
    },
    /// Segments split into `segs[next..count]` not handed out yet.
    Segments {
        next: usize,
        count: usize,
    },
}

/// Caller-owned state of [`Queue::recv_batch`]: a scratch buffer for
/// super-packets and the segments a call could not hand over yet. One per
/// reading thread; reuse it for every batch.
pub struct RecvState {
    scratch: Box<[u8]>,
    pending: Pending,
    segs: Vec<Vec<u8>>,
    seg_lens: Vec<usize>,
    deferred: Option<Error>,
    stats: RecvStats,
}

/// Counters of a [`RecvState`] since it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecvStats {
    /// Reads that returned a packet.
    pub reads: u64,
    /// Of those, super-packets (TSO/USO) that were split.
    pub super_packets: u64,
    /// Packets handed to the caller.
    pub packets: u64,
    /// Bytes handed to the caller (IP bytes, or whole Ethernet frames on a
    /// TAP; no virtio header or packet information).
    pub bytes: u64,
}

impl std::fmt::Debug for RecvState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvState")
            .field("pending", &self.pending)
            .field("deferred", &self.deferred)
            .finish()
    }
}

impl Default for RecvState {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvState {
    /// A fresh state (about 130 KiB of scratch space).
    pub fn new() -> Self {
        Self {
            scratch: vec![0u8; FRONT + OVERFLOW].into_boxed_slice(),
            pending: Pending::None,
            segs: Vec::new(),
            seg_lens: Vec::new(),
            deferred: None,
            stats: RecvStats::default(),
        }
    }

    /// Counters since this state was made.
    pub fn stats(&self) -> RecvStats {
        self.stats
    }

    /// Whether packets read from the kernel wait here for the next call.
    pub fn has_pending(&self) -> bool {
        !matches!(self.pending, Pending::None)
    }

    /// Whether an error met after some packets of the last batch waits to
    /// be returned by the next call.
    pub fn has_deferred(&self) -> bool {
        self.deferred.is_some()
    }

    /// Whether the next call has nothing to hand out before reading: no
    /// pending segments and no deferred error.
    pub fn is_empty(&self) -> bool {
        !self.has_pending() && !self.has_deferred()
    }

    /// Drop what waits here (segments not handed out, a deferred error).
    pub fn clear(&mut self) {
        self.pending = Pending::None;
        self.deferred = None;
    }

    fn ensure_segs(&mut self, count: usize, len: usize) {
        ensure_segments(&mut self.segs, &mut self.seg_lens, count, len);
    }
}

/// Grow `segs` (and `lens`) to at least `count` buffers of at least `len`
/// bytes each: the segment storage of a split the caller's buffers could
/// not take, reused from call to call.
fn ensure_segments(segs: &mut Vec<Vec<u8>>, lens: &mut Vec<usize>, count: usize, len: usize) {
    if segs.len() < count {
        segs.resize_with(count, Vec::new);
        lens.resize(count, 0);
    }
    for s in &mut segs[..count] {
        if s.len() < len {
            s.resize(len, 0);
        }
    }
}

/// The room behind `offset` in `buf`.
fn room(buf: &mut [u8], offset: usize) -> usize {
    buf.len().saturating_sub(offset)
}

impl Queue {
    /// Receive a batch: read packets and super-packets from the kernel and
    /// write complete, MTU-sized packets into `bufs[i][offset..]`, their
    /// lengths into `sizes[i]`; returns how many.
    ///
    /// - A super-packet is split into as many buffers as it has segments;
    ///   a packet that needs no split is read straight into its buffer
    ///   (no copy of its payload) and its partial checksum completed.
    /// - The first read waits (in blocking mode); further reads are made
    ///   while the kernel has more and buffers remain, never waiting, until
    ///   a super-packet arrives (it fills a batch by itself).
    /// - A super-packet that does not fit the buffers left is kept in
    ///   `state` and comes first in the next call; one that does not fit
    ///   even an empty batch is handed out over several calls. Nothing the
    ///   kernel handed over is lost, except a single packet longer than a
    ///   buffer ([`ErrorKind::BufferTooSmall`](crate::ErrorKind::BufferTooSmall))
    ///   and a super-packet whose header does not match it
    ///   ([`ErrorKind::BadPacket`](crate::ErrorKind::BadPacket)). Such an
    ///   error met after some packets were received is returned by the
    ///   next call, so the packets come first.
    ///
    /// `offset` bytes of headroom are left in front of every packet (use 10
    /// and the same buffers for [`Self::send_batch`] to relay without a copy).
    pub fn recv_batch<B: AsMut<[u8]>>(
        &self,
        state: &mut RecvState,
        bufs: &mut [B],
        sizes: &mut [usize],
        offset: usize,
    ) -> Result<usize> {
        self.recv_batch_as(state, bufs, sizes, offset, IoOp::RecvBatch)
    }

    pub(crate) fn recv_batch_as<B: AsMut<[u8]>>(
        &self,
        st: &mut RecvState,
        bufs: &mut [B],
        sizes: &mut [usize],
        offset: usize,
        op: IoOp,
    ) -> Result<usize> {
        if bufs.len() != sizes.len() {
            return Err(Error::config(
                Some(self.name()),
                ConfigError::LengthsMismatch {
                    bufs: bufs.len(),
                    lens: sizes.len(),
                },
            ));
        }
        if bufs.is_empty() {
            return Ok(0);
        }
        for (index, b) in bufs.iter_mut().enumerate() {
            let buf_len = b.as_mut().len();
            if buf_len <= offset {
                return Err(Error::config(
                    Some(self.name()),
                    ConfigError::NoRoomBehindOffset {
                        index,
                        offset,
                        buf_len,
                    },
                ));
            }
        }
        if let Some(e) = st.deferred.take() {
            return Err(e);
        }
        let n = self.recv_into(st, bufs, sizes, offset, op)?;
        st.stats.packets += n as u64;
        st.stats.bytes += sizes[..n].iter().sum::<usize>() as u64;
        Ok(n)
    }

    fn recv_into<B: AsMut<[u8]>>(
        &self,
        st: &mut RecvState,
        bufs: &mut [B],
        sizes: &mut [usize],
        offset: usize,
        op: IoOp,
    ) -> Result<usize> {
        let mut n = self.deliver_pending(st, bufs, sizes, offset, 0, op)?;
        if st.has_pending() {
            return Ok(n);
        }
        while n < bufs.len() {
            let block = n == 0 && !self.is_nonblocking();
            let supers = st.stats.super_packets;
            match self.read_one(st, bufs, sizes, offset, n, block, op) {
                Ok(k) => {
                    n += k;
                    // A super-packet is a full batch by itself: another
                    // read would most often find the queue empty (a wasted
                    // syscall), or bring one that no longer fits.
                    if st.has_pending() || st.stats.super_packets != supers {
                        break;
                    }
                }
                Err(e) if n > 0 => {
                    if !e.is_would_block() {
                        st.deferred = Some(e);
                    }
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Hand out what `st` holds into `bufs[n..]`; returns how many buffers
    /// were filled.
    fn deliver_pending<B: AsMut<[u8]>>(
        &self,
        st: &mut RecvState,
        bufs: &mut [B],
        sizes: &mut [usize],
        offset: usize,
        n: usize,
        op: IoOp,
    ) -> Result<usize> {
        match st.pending {
            Pending::None => Ok(0),
            Pending::Raw { hdr, start, len } => {
                self.deliver_raw(st, bufs, sizes, offset, n, hdr, start, len, op)
            }
            Pending::Segments { .. } => self.deliver_segments(st, bufs, sizes, offset, n, op),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn read_one<B: AsMut<[u8]>>(
        &self,
        st: &mut RecvState,
        bufs: &mut [B],
        sizes: &mut [usize],
        offset: usize,
        n: usize,
        block: bool,
        op: IoOp,
    ) -> Result<usize> {
        let framing = self.framing();
        let prefix_len = framing.prefix_len();
        let buf = bufs[n].as_mut();
        let cap = room(buf, offset);
        // Only what may arrive without a split goes to the caller's buffer
        // directly; a super-packet's head is copied out again, so keep it
        // short: about the MTU (and a tagged Ethernet header on a TAP).
        let first = if framing.vnet {
            let l2 = if framing.l2 {
                tun_offload::frame::MAX_L2_LEN
            } else {
                0
            };
            cap.min((self.interface().mtu_hint() + l2).clamp(576, FRONT))
        } else {
            cap.min(FRONT)
        };
        let mut prefix = [0u8; PI_LEN + VirtioNetHdr::LEN];
        let (front, overflow) = st.scratch.split_at_mut(FRONT);
        let total = {
            // `recv_batch_as` checked that every buffer reaches past `offset`.
            let head = &mut buf[offset..offset + first];
            let mut iov = [
                IoSliceMut::new(&mut prefix[..prefix_len]),
                IoSliceMut::new(head),
                IoSliceMut::new(overflow),
            ];
            self.readv(&mut iov, op, block)?
        };
        let len = total.saturating_sub(prefix_len);
        st.stats.reads += 1;
        if total < prefix_len || len >= first + OVERFLOW {
            return Err(Error::BufferTooSmall {
                op,
                interface: self.name(),
                needed: len,
                available: cap,
            });
        }
        let hdr = if framing.vnet {
            let at = if framing.pi { PI_LEN } else { 0 };
            match VirtioNetHdr::decode(&prefix[at..at + VirtioNetHdr::LEN]) {
                Ok(h) => h,
                Err(e) => {
                    let error = tun_offload::PacketError::Truncated {
                        layer: tun_offload::Layer::Ipv4,
                        required: e.required,
                        len: e.len,
                    };
                    return Err(self.bad_packet(op, n, error));
                }
            }
        } else {
            VirtioNetHdr::ZERO
        };
        let head = len.min(first);
        if hdr.gso_type() == GsoType::NONE {
            if len > first {
                if len > cap {
                    return Err(Error::BufferTooSmall {
                        op,
                        interface: self.name(),
                        needed: len,
                        available: cap,
                    });
                }
                // The tail went to the overflow area: bring it over.
                buf[offset + first..offset + len].copy_from_slice(&overflow[..len - first]);
            }
            let pkt = &mut buf[offset..offset + len];
            if let Err(error) = tun_offload::complete_checksum(&hdr, pkt) {
                return Err(self.bad_packet(op, n, error));
            }
            sizes[n] = len;
            return Ok(1);
        }
        // A super-packet: make it contiguous in the scratch buffer (its
        // head in front of the overflow area), then split from there.
        let start = FRONT - head;
        front[start..].copy_from_slice(&buf[offset..offset + head]);
        st.pending = Pending::Raw { hdr, start, len };
        st.stats.super_packets += 1;
        self.deliver_raw(st, bufs, sizes, offset, n, hdr, start, len, op)
    }

    /// The super-packet (a super-frame on a TAP, `csum_start` counted from
    /// the frame start) `hdr` describes.
    pub(crate) fn parse_gso(
        &self,
        hdr: &VirtioNetHdr,
        pkt: &[u8],
    ) -> std::result::Result<GsoPacket, tun_offload::PacketError> {
        if self.framing().l2 {
            GsoPacket::parse_frame(hdr, pkt)
        } else {
            GsoPacket::parse(hdr, pkt)
        }
    }

    fn bad_packet(&self, op: IoOp, index: usize, error: tun_offload::PacketError) -> Error {
        self.interface()
            .shared
            .rx_invalid
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Error::Packet {
            op,
            interface: self.name(),
            index,
            error,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver_raw<B: AsMut<[u8]>>(
        &self,
        st: &mut RecvState,
        bufs: &mut [B],
        sizes: &mut [usize],
        offset: usize,
        n: usize,
        hdr: VirtioNetHdr,
        start: usize,
        len: usize,
        op: IoOp,
    ) -> Result<usize> {
        let pkt = &st.scratch[start..start + len];
        let gso = match self.parse_gso(&hdr, pkt) {
            Ok(g) => g,
            Err(error) => {
                st.pending = Pending::None;
                return Err(self.bad_packet(op, n, error));
            }
        };
        let count = gso.segment_count();
        let need = offset + gso.max_segment_len();
        let left = &mut bufs[n..];
        if count <= left.len() && left[..count].iter_mut().all(|b| b.as_mut().len() >= need) {
            st.pending = Pending::None;
            return match gso.split_into(pkt, &mut left[..count], &mut sizes[n..n + count], offset) {
                Ok(k) => Ok(k),
                Err(SplitError::OutOfSpace { produced, .. }) => Ok(produced),
                Err(SplitError::Invalid(error)) => Err(self.bad_packet(op, n, error)),
            };
        }
        if n > 0 {
            // Keep it for the next call, which starts with empty buffers.
            return Ok(0);
        }
        // Not even an empty batch holds it: split into our own segments
        // and hand them out over as many calls as it takes.
        st.ensure_segs(count, gso.max_segment_len());
        let RecvState {
            scratch,
            segs,
            seg_lens,
            ..
        } = st;
        let pkt = &scratch[start..start + len];
        match gso.split_into(pkt, &mut segs[..count], &mut seg_lens[..count], 0) {
            Ok(k) => st.pending = Pending::Segments { next: 0, count: k },
            Err(SplitError::OutOfSpace { produced, .. }) => {
                st.pending = Pending::Segments {
                    next: 0,
                    count: produced,
                }
            }
            Err(SplitError::Invalid(error)) => {
                st.pending = Pending::None;
                return Err(self.bad_packet(op, n, error));
            }
        }
        self.deliver_segments(st, bufs, sizes, offset, n, op)
    }

    fn deliver_segments<B: AsMut<[u8]>>(
        &self,
        st: &mut RecvState,
        bufs: &mut [B],
        sizes: &mut [usize],
        offset: usize,
        mut n: usize,
        op: IoOp,
    ) -> Result<usize> {
        let Pending::Segments { mut next, count } = st.pending else {
            return Ok(0);
        };
        let start = n;
        while next < count && n < bufs.len() {
            let len = st.seg_lens[next];
            let buf = bufs[n].as_mut();
            if room(buf, offset) < len {
                next += 1;
                st.pending = if next < count {
                    Pending::Segments { next, count }
                } else {
                    Pending::None
                };
                let e = Error::BufferTooSmall {
                    op,
                    interface: self.name(),
                    needed: len,
                    available: room(buf, offset),
                };
                if n > start {
                    st.deferred = Some(e);
                    return Ok(n - start);
                }
                return Err(e);
            }
            buf[offset..offset + len].copy_from_slice(&st.segs[next][..len]);
            sizes[n] = len;
            n += 1;
            next += 1;
        }
        st.pending = if next < count {
            Pending::Segments { next, count }
        } else {
            Pending::None
        };
        Ok(n - start)
    }
}

impl Queue {
    /// Send a batch: packet `i` is `bufs[i][offset..offset + lens[i]]`.
    ///
    /// With offload on, the batch is coalesced first (TCP segments of a
    /// flow into one super-packet, UDP datagrams too when USO was granted)
    /// and each run is written with one gathered `writev`: the virtio
    /// header and the first packet's rewritten headers, then every
    /// packet's payload where it lies. Nothing is copied, and neither the
    /// buffers nor `lens` are written: sending the same batch again sends
    /// the same packets again. Packet information and the virtio header of
    /// uncoalesced packets go in front as slices of their own, so `offset`
    /// needs no room for them.
    ///
    /// Writes stop at the first error, which is returned; `state` then
    /// says what was written and what is pending, and
    /// [`Self::send_pending`] goes on from there. A packet the kernel
    /// refuses ([`ErrorKind::BadPacket`](crate::ErrorKind::BadPacket)) is
    /// skipped: it is reported, and `send_pending` continues behind it.
    ///
    /// If the kernel refuses a coalesced write with EINVAL (GSO write
    /// regressions of some kernels do), that run's packets are written one
    /// by one as they were handed in, coalescing is turned off for the
    /// device, and [`Interface::stats`](crate::Interface::stats) counts it:
    /// no data is lost to it.
    pub fn send_batch<B: AsRef<[u8]>>(
        &self,
        state: &mut SendState,
        bufs: &[B],
        lens: &[usize],
        offset: usize,
    ) -> Result<SendReport> {
        self.prepare_batch(state, bufs, lens, offset)?;
        self.send_pending(state, bufs, lens, offset)
    }

    /// Plan a batch into `state` (coalescing decided, nothing written);
    /// the first half of [`Self::send_batch`].
    pub fn prepare_batch<B: AsRef<[u8]>>(
        &self,
        st: &mut SendState,
        bufs: &[B],
        lens: &[usize],
        offset: usize,
    ) -> Result<()> {
        let framing = self.framing();
        let iface = self.interface();
        let offloads = iface.offloads();
        let tx = TxFraming {
            pi: framing.pi,
            vnet: framing.vnet,
            l2: framing.l2,
            tcp: iface.tcp_coalescing(),
            udp: iface.udp_coalescing()
                && offloads.contains(OffloadFlags::USO4 | OffloadFlags::USO6),
            ecn: offloads.contains(OffloadFlags::TSO_ECN),
        };
        st.prepare(bufs, lens, offset, tx)
            .map_err(|e| Error::config(Some(self.name()), e))
    }

    /// Write what `state` holds of the current batch (after an error or
    /// [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock)); the second
    /// half of [`Self::send_batch`]. Returns the report of the whole batch.
    /// `bufs`, `lens` and `offset` must be the prepared batch's.
    pub fn send_pending<B: AsRef<[u8]>>(
        &self,
        st: &mut SendState,
        bufs: &[B],
        lens: &[usize],
        offset: usize,
    ) -> Result<SendReport> {
        st.check_batch(bufs.len(), offset)
            .map_err(|e| Error::config(Some(self.name()), e))?;
        loop {
            let mut prefix = [0u8; PREFIX_MAX];
            let mut iov = st.take_iov();
            let framed = st.frame(bufs, lens, &mut prefix, &mut iov);
            let res = match framed {
                Ok(Some(_)) => Some(self.writev(&iov).map(drop)),
                Ok(None) => None,
                Err(e) => {
                    st.put_iov(recycle(iov));
                    return Err(Error::config(Some(self.name()), e));
                }
            };
            st.put_iov(recycle(iov));
            let Some(res) = res else {
                return Ok(st.report());
            };
            match st.complete(res) {
                Ok(Written::Frame) => {}
                Ok(Written::Refallback) => {
                    let shared = &self.interface().shared;
                    shared.coalesce_tcp.store(false, Ordering::Relaxed);
                    shared.coalesce_udp.store(false, Ordering::Relaxed);
                    shared.gso_fallbacks.fetch_add(1, Ordering::Relaxed);
                }
                Err(Failed::Rejected { index, errno }) | Err(Failed::Io { index, errno }) => {
                    return Err(self.send_error(IoOp::SendBatch, index, errno));
                }
            }
        }
    }
}
