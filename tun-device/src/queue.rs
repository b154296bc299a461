//! One queue of a device (one file descriptor): single-packet, vectored,
//! batched and super-packet I/O, all on `&self`.
//!
//! The fd is always non-blocking inside; a queue in blocking mode waits
//! with `poll(2)` when a read or write would block. That costs nothing
//! while traffic flows, lets a batched receive gather more reads without
//! ever blocking once it holds packets, and lets an async runtime register
//! the same fd.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use tun_offload::framing::PacketInfo;
use tun_offload::{GsoType, HdrFlags, PacketError, VirtioNetHdr, VirtioNetHdrV1HashTunnel};
use tun_sys::{InterfaceName, OffloadFlags, TunFlags};

use crate::error::{BatchError, ConfigError, Error, IoOp, Result};
use crate::interface::Interface;
use crate::interrupt::Interrupt;
use crate::rx::{Framing, Malformed, RecvState, RxFault, Step, SuperPacket};
use crate::tx::{
    Buffers, Failed, PREFIX_MAX, SendReport, SendState, TxBatch, TxFraming, Written, recycle,
};
use crate::views::{Taken, ViewBatch};

/// Length of `struct tun_pi`.
pub(crate) const PI_LEN: usize = PacketInfo::LEN;

/// Most slices a vectored call takes without allocating.
const MAX_IOV: usize = 16;

/// One queue of a TUN/TAP device: an fd attached to the interface.
///
/// Every method takes `&self`, so one queue can be shared between threads
/// (in an `Arc`) without splitting it into halves. Queues are `Send` and
/// `Sync`.
pub struct Queue {
    /// `Some` for as long as the queue lives: only [`Queue::into_fd`],
    /// which consumes the queue, takes it out.
    fd: Option<OwnedFd>,
    iface: Interface,
    nonblocking: AtomicBool,
    /// Whether the interface's control fd is a duplicate of this queue's:
    /// dropping this queue must then detach it, or the kernel keeps
    /// steering flows to a queue nobody reads.
    shares_control: bool,
    /// Receive state of the single-packet calls on an offload device
    /// (segments of a super-packet waiting to be handed out one by one).
    single: Mutex<Option<Box<RecvState>>>,
    /// Polled beside the fd by every wait, when set.
    interrupt: Mutex<Option<Interrupt>>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("fd", &self.as_raw_fd())
            .field("interface", &self.iface.cached_name())
            .field("nonblocking", &self.is_nonblocking())
            .finish()
    }
}

/// Why a poll ended other than by readiness or timeout.
enum PollEnd {
    Interrupted,
    Failed(Errno),
}

impl Queue {
    pub(crate) fn new(fd: OwnedFd, iface: Interface, nonblocking: bool) -> Self {
        Self {
            fd: Some(fd),
            iface,
            nonblocking: AtomicBool::new(nonblocking),
            shares_control: false,
            single: Mutex::new(None),
            interrupt: Mutex::new(None),
        }
    }

    /// The queue whose fd the interface duplicated for its ioctls.
    pub(crate) fn sharing_control(mut self) -> Self {
        self.shares_control = true;
        self
    }

    /// Open one more queue of this queue's (multi-queue) device.
    pub fn open_queue(&self) -> Result<Queue> {
        Self::open(self.interface(), self.is_nonblocking())
    }

    /// Open one more queue of `iface` (a multi-queue device).
    pub(crate) fn open(iface: &Interface, nonblocking: bool) -> Result<Queue> {
        let flags = iface.tun_flags();
        if !flags.contains(TunFlags::MULTI_QUEUE) {
            return Err(Error::config(
                Some(iface.cached_name()),
                ConfigError::NotMultiQueue,
            ));
        }
        let name = iface.name()?;
        let ns = iface.netns()?;
        let fd = ns.run(|| Ok(tun_sys::open_tun(true)?))?;
        tun_sys::set_iff(fd.as_fd(), Some(&name), flags)?;
        Ok(Queue::new(fd, iface.clone(), nonblocking))
    }

    /// The interface this queue belongs to.
    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    pub(crate) fn framing(&self) -> Framing {
        let flags = self.iface.tun_flags();
        Framing {
            pi: !flags.contains(TunFlags::NO_PI),
            vnet: flags.contains(TunFlags::VNET_HDR),
            tunnel: self.iface.vnet_hdr_len() == VirtioNetHdrV1HashTunnel::LEN,
            l2: flags.contains(TunFlags::TAP),
            mtu: self.iface.mtu_hint(),
        }
    }

    pub(crate) fn name(&self) -> InterfaceName {
        self.iface.cached_name()
    }

    /// The interface's name as last seen (no syscall; [`Interface::name`]
    /// asks the kernel), for error messages.
    pub fn interface_name(&self) -> InterfaceName {
        self.iface.cached_name()
    }

    /// Whether calls return [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock)
    /// instead of waiting.
    pub fn is_nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    /// Make calls return [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock)
    /// instead of waiting (the fd itself is always non-blocking).
    pub fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }

    /// Attach `interrupt` to this queue (or detach it with `None`): while
    /// it is raised, every call that would wait on this queue (a blocking
    /// receive or send, [`Self::wait_readable`], [`Self::wait_writable`])
    /// returns [`Error::Interrupted`] instead, at once. Calls that need no
    /// wait are not affected. One interrupt may serve many queues.
    pub fn set_interrupt(&self, interrupt: Option<Interrupt>) {
        *self
            .interrupt
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = interrupt;
    }

    /// The interrupt attached with [`Self::set_interrupt`].
    pub fn interrupt(&self) -> Option<Interrupt> {
        self.interrupt
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Enable this queue again after [`Self::detach`] (`TUNSETQUEUE`).
    pub fn attach(&self) -> Result<()> {
        tun_sys::set_queue(self.as_fd(), true)
            .map_err(|e| Error::Sys(e.with_interface(self.name())))
    }

    /// Disable this queue of a multi-queue device: the kernel stops
    /// steering packets to it until [`Self::attach`] (`TUNSETQUEUE`).
    pub fn detach(&self) -> Result<()> {
        tun_sys::set_queue(self.as_fd(), false)
            .map_err(|e| Error::Sys(e.with_interface(self.name())))
    }

    /// Wait until the fd is ready for `events` (readable or writable), or
    /// reports an error (a removed interface wakes the waiter).
    pub(crate) fn wait(&self, events: PollFlags, op: IoOp) -> Result<()> {
        self.wait_for(events, None, op).map(drop)
    }

    /// `readv` with retry on EINTR, and on EAGAIN a wait when `block`.
    pub(crate) fn readv(&self, iov: &mut [IoSliceMut<'_>], op: IoOp, block: bool) -> Result<usize> {
        self.readv_waiting(iov, op, block).map(|(n, _)| n)
    }

    /// [`Self::readv`], and whether it had to wait for the packet (the
    /// queue was empty when it was called).
    fn readv_waiting(
        &self,
        iov: &mut [IoSliceMut<'_>],
        op: IoOp,
        block: bool,
    ) -> Result<(usize, bool)> {
        let mut waited = false;
        loop {
            match rustix::io::readv(self, iov) {
                Ok(n) => return Ok((n, waited)),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) if block => {
                    self.wait(PollFlags::IN, op)?;
                    waited = true;
                }
                Err(e) => return Err(Error::io(op, self.name(), e)),
            }
        }
    }

    /// Write one frame (prefix included), retrying on EINTR and waiting on
    /// EAGAIN in blocking mode (EINTR returned: the interrupt ended the
    /// wait). The kernel takes a frame whole or not at all.
    pub(crate) fn write_frame(&self, frame: &[u8]) -> Result<usize, Errno> {
        self.writev(&[IoSlice::new(frame)])
    }

    /// `writev` with the same retries as [`Self::write_frame`].
    pub(crate) fn writev(&self, iov: &[IoSlice<'_>]) -> Result<usize, Errno> {
        loop {
            match rustix::io::writev(self, iov) {
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) if !self.is_nonblocking() => {
                    match self.poll(PollFlags::OUT, None) {
                        Ok(_) => continue,
                        Err(PollEnd::Interrupted) => return Err(Errno::INTR),
                        Err(PollEnd::Failed(e)) => return Err(e),
                    }
                }
                other => return other,
            }
        }
    }

    pub(crate) fn send_error(&self, op: IoOp, index: usize, errno: Errno) -> Error {
        match errno {
            // `writev` retries a real EINTR itself; it returns one only
            // when the interrupt ended its wait.
            Errno::INTR => Error::Interrupted {
                op,
                interface: self.name(),
            },
            Errno::INVAL | Errno::MSGSIZE => Error::Rejected {
                op,
                interface: self.name(),
                index,
                errno: errno.raw_os_error(),
            },
            e => Error::io(op, self.name(), e),
        }
    }

    /// Receive one complete packet into `buf`; returns its length.
    ///
    /// With offload on, a super-packet from the kernel is split and its
    /// segments are handed out by this and the following calls; a partial
    /// checksum is completed. Packet information, if on, is removed. A
    /// packet longer than `buf` is dropped with
    /// [`ErrorKind::BufferTooSmall`](crate::ErrorKind::BufferTooSmall).
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        let framing = self.framing();
        if framing.vnet {
            return self.recv_single_offload(buf);
        }
        let mut pi = [0u8; PI_LEN];
        let mut overflow = [0u8; 1];
        let cap = buf.len();
        let (n, prefix) = if framing.pi {
            let mut iov = [
                IoSliceMut::new(&mut pi),
                IoSliceMut::new(buf),
                IoSliceMut::new(&mut overflow),
            ];
            (
                self.readv(&mut iov, IoOp::Recv, !self.is_nonblocking())?,
                PI_LEN,
            )
        } else {
            let mut iov = [IoSliceMut::new(buf), IoSliceMut::new(&mut overflow)];
            (self.readv(&mut iov, IoOp::Recv, !self.is_nonblocking())?, 0)
        };
        let len = n.saturating_sub(prefix);
        let stripped = framing.pi && PacketInfo::decode(&pi).is_ok_and(|p| p.is_stripped());
        if len > cap || stripped {
            return Err(Error::BufferTooSmall {
                op: IoOp::Recv,
                interface: self.name(),
                needed: len.max(cap + 1),
                available: cap,
            });
        }
        Ok(len)
    }

    fn recv_single_offload(&self, buf: &mut [u8]) -> Result<usize> {
        let mut guard = self.single.lock().unwrap_or_else(PoisonError::into_inner);
        let st = guard.get_or_insert_with(|| Box::new(RecvState::new()));
        let mut lens = [0usize; 1];
        let n = self.recv_batch_as(st, &mut [buf], &mut lens, 0, IoOp::Recv)?;
        debug_assert_eq!(n, 1);
        Ok(lens[0])
    }

    /// Receive one packet into the slices of `bufs` (`readv`); returns its
    /// length. As [`Self::recv`] otherwise.
    pub fn recv_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> Result<usize> {
        let framing = self.framing();
        let cap: usize = bufs.iter().map(|b| b.len()).sum();
        if framing.vnet || bufs.len() + 2 > MAX_IOV {
            // Whole packet first, then scattered: the offload path needs
            // it contiguous, and long slice lists would need an allocation
            // for the iovec anyway.
            let mut tmp = vec![0u8; cap];
            let n = self.recv(&mut tmp)?;
            let mut rest = &tmp[..n];
            for b in bufs.iter_mut() {
                let k = rest.len().min(b.len());
                b[..k].copy_from_slice(&rest[..k]);
                rest = &rest[k..];
            }
            return Ok(n);
        }
        let mut pi = [0u8; PI_LEN];
        let mut overflow = [0u8; 1];
        let mut iov: [IoSliceMut<'_>; MAX_IOV] = std::array::from_fn(|_| IoSliceMut::new(&mut []));
        let mut k = 0;
        if framing.pi {
            iov[k] = IoSliceMut::new(&mut pi);
            k += 1;
        }
        for b in bufs.iter_mut() {
            iov[k] = IoSliceMut::new(&mut b[..]);
            k += 1;
        }
        iov[k] = IoSliceMut::new(&mut overflow);
        k += 1;
        let n = self.readv(&mut iov[..k], IoOp::Recv, !self.is_nonblocking())?;
        let len = n.saturating_sub(if framing.pi { PI_LEN } else { 0 });
        if len > cap {
            return Err(Error::BufferTooSmall {
                op: IoOp::Recv,
                interface: self.name(),
                needed: len,
                available: cap,
            });
        }
        Ok(len)
    }

    /// Send one complete IP packet (an Ethernet frame on TAP, any EtherType);
    /// returns its length. With offload on it goes out with an all-zero virtio header
    /// (its checksums must be complete); with packet information on, the
    /// header is filled from the IP version.
    pub fn send(&self, packet: &[u8]) -> Result<usize> {
        self.send_vectored(&[IoSlice::new(packet)])
    }

    /// Send one packet gathered from the slices of `bufs` (`writev`).
    pub fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> Result<usize> {
        let framing = self.framing();
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        let mut prefix = [0u8; PREFIX_MAX];
        let mut p = 0;
        if framing.pi {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            let pi = crate::tx::packet_info(self.iface.is_tap(), first);
            prefix[..PI_LEN].copy_from_slice(&pi.to_bytes());
            p += PI_LEN;
        }
        // Already zero: no offload requested for this packet.
        p += framing.vnet_len();
        let res = if bufs.len() + 1 > MAX_IOV {
            let mut frame = Vec::with_capacity(p + len);
            frame.extend_from_slice(&prefix[..p]);
            for b in bufs {
                frame.extend_from_slice(b);
            }
            self.write_frame(&frame)
        } else if p == 0 {
            self.writev(bufs)
        } else {
            let mut iov: [IoSlice<'_>; MAX_IOV] = [IoSlice::new(&[]); MAX_IOV];
            iov[0] = IoSlice::new(&prefix[..p]);
            iov[1..=bufs.len()].copy_from_slice(bufs);
            self.writev(&iov[..=bufs.len()])
        };
        match res {
            Ok(_) => Ok(len),
            Err(e) => Err(self.send_error(IoOp::Send, 0, e)),
        }
    }

    /// Receive one packet as the kernel handed it over: its virtio header
    /// (decoded) and the packet, possibly a super-packet, untouched (for a
    /// relay that passes super-packets through, or a caller that runs the
    /// split itself). Needs offload on. On a TAP it is an Ethernet frame,
    /// and the header counts `csum_start` from the frame start.
    ///
    /// The header comes in its 24-byte form whatever the device's size
    /// ([`Interface::vnet_hdr_len`]): its `hdr` field is the 10-byte
    /// header, and the tunnel offsets are non-zero only for a UDP-tunnel
    /// super-packet of a device with that offload.
    /// [`tun_offload::split_tunnel`] splits either kind.
    pub fn recv_gso(&self, buf: &mut [u8]) -> Result<(VirtioNetHdrV1HashTunnel, usize)> {
        self.require_vnet()?;
        let hl = self.framing().vnet_len();
        let mut hdr = [0u8; VirtioNetHdrV1HashTunnel::LEN];
        let mut overflow = [0u8; 1];
        let cap = buf.len();
        let mut iov = [
            IoSliceMut::new(&mut hdr[..hl]),
            IoSliceMut::new(buf),
            IoSliceMut::new(&mut overflow),
        ];
        let n = self.readv(&mut iov, IoOp::Recv, !self.is_nonblocking())?;
        let len = n.saturating_sub(hl);
        if len > cap {
            return Err(Error::BufferTooSmall {
                op: IoOp::Recv,
                interface: self.name(),
                needed: len,
                available: cap,
            });
        }
        // The tunnel offsets of a 10-byte header stay zero.
        Ok((
            VirtioNetHdrV1HashTunnel::decode(&hdr).unwrap_or_default(),
            len,
        ))
    }

    /// Send one packet with the virtio header `hdr` (a super-packet the
    /// kernel segments, or a partial checksum it completes). Needs offload
    /// on. The kernel checks the header against the packet and refuses a
    /// mismatch with [`ErrorKind::BadPacket`](crate::ErrorKind::BadPacket).
    ///
    /// The header is the 24-byte form [`Self::recv_gso`] returns
    /// ([`VirtioNetHdrV1HashTunnel::plain`] makes one from a 10-byte
    /// header); a device without the UDP-tunnel offload gets its first 10
    /// bytes, and refuses a tunnel super-packet
    /// ([`ConfigError::TunnelOffloadRequired`]). Linux 6.18's TUN devices
    /// refuse tunnel super-packets with a plain outer header
    /// ([`ErrorKind::BadPacket`](crate::ErrorKind::BadPacket), EINVAL;
    /// see [`tun_offload::TunnelGsoPacket`]); TAP devices take them.
    pub fn send_gso(&self, hdr: &VirtioNetHdrV1HashTunnel, packet: &[u8]) -> Result<usize> {
        self.require_vnet()?;
        let framing = self.framing();
        if hdr.hdr.gso_type().udp_tunnel() != 0 && !framing.tunnel {
            return Err(Error::config(
                Some(self.name()),
                ConfigError::TunnelOffloadRequired,
            ));
        }
        // The kernel takes a header that does not describe the packet and
        // drops the packet later, silently: check it here.
        check_header(hdr, packet, framing.l2)
            .map_err(|m| m.into_error(IoOp::Send, self.name(), 0))?;
        let bytes = hdr.to_bytes();
        let h = &bytes[..framing.vnet_len()];
        let iov = [IoSlice::new(h), IoSlice::new(packet)];
        match self.writev(&iov) {
            Ok(_) => Ok(packet.len()),
            Err(e) => Err(self.send_error(IoOp::Send, 0, e)),
        }
    }

    /// Receive a batch: read packets and super-packets from the kernel and
    /// write complete, MTU-sized packets into `bufs[i][offset..]`, their
    /// lengths into `lens[i]`; returns how many.
    ///
    /// - A super-packet is split into as many buffers as it has segments;
    ///   a packet that needs no split is read straight into its buffer
    ///   (no copy of its payload) and its partial checksum completed.
    /// - With [`RecvState::set_read_into_place`] on, once super-packets
    ///   keep one shape (a TCP flow's header length and segment size), each
    ///   is read straight into the places of its segments across the
    ///   buffers, and the split only writes headers: no payload byte is
    ///   copied in user space ([`RecvStats::placed`](crate::RecvStats::placed)
    ///   counts them). Off by default: the copying split measured faster.
    /// - With [`RecvState::set_partial_checksums`] on, checksums are not
    ///   completed but left partial as the kernel hands them over, and each
    ///   packet's virtio header is written into the 10 bytes in front of it
    ///   (`offset` must be at least 10): for a [`Self::send_batch`] with
    ///   [`SendState::set_partial_checksums`], which needs no complete sum.
    /// - The first read waits (in blocking mode); further reads are made
    ///   while the kernel has more and buffers remain, never waiting, until
    ///   a super-packet arrives (it fills a batch by itself). When the first
    ///   read had to wait, its packet is the batch: a wake-up seldom finds a
    ///   second one queued, and a read that finds none is a wasted syscall
    ///   (packets that did queue behind it come with the next call, whose
    ///   first read does not wait). [`RecvStats::empty_reads`](crate::RecvStats::empty_reads)
    ///   counts the reads that found the queue empty.
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
        lens: &mut [usize],
        offset: usize,
    ) -> Result<usize> {
        self.recv_batch_as(state, bufs, lens, offset, IoOp::RecvBatch)
    }

    fn recv_batch_as<B: AsMut<[u8]>>(
        &self,
        st: &mut RecvState,
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
        op: IoOp,
    ) -> Result<usize> {
        if bufs.len() != lens.len() {
            return Err(self.batch_error(
                op,
                BatchError::LengthsMismatch {
                    bufs: bufs.len(),
                    lens: lens.len(),
                },
            ));
        }
        if st.partial_checksums() && offset < VirtioNetHdr::LEN {
            return Err(self.batch_error(
                op,
                BatchError::NoHeaderRoom {
                    offset,
                    required: VirtioNetHdr::LEN,
                },
            ));
        }
        if bufs.is_empty() {
            return Ok(0);
        }
        for (index, b) in bufs.iter_mut().enumerate() {
            let buf_len = b.as_mut().len();
            if buf_len <= offset {
                return Err(self.batch_error(
                    op,
                    BatchError::NoRoomBehindOffset {
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
        let n = self.recv_into(st, bufs, lens, offset, op)?;
        st.stats.packets += n as u64;
        st.stats.bytes += lens[..n].iter().sum::<usize>() as u64;
        Ok(n)
    }

    fn recv_into<B: AsMut<[u8]>>(
        &self,
        st: &mut RecvState,
        bufs: &mut [B],
        lens: &mut [usize],
        offset: usize,
        op: IoOp,
    ) -> Result<usize> {
        let framing = self.framing();
        let mut n = 0;
        let step = st.deliver_pending(framing, bufs, lens, offset, 0);
        if self.take_step(st, step, &mut n, op)? || st.has_pending() {
            return Ok(n);
        }
        while n < bufs.len() {
            let block = n == 0 && !self.is_nonblocking();
            let supers = st.stats.super_packets;
            let read = self.read_laid_out(st, framing, bufs, n, offset, op, block);
            let (total, waited) = match read {
                Ok(t) => t,
                Err(e) if n > 0 => {
                    if e.is_would_block() {
                        st.stats.empty_reads += 1;
                    } else {
                        st.deferred = Some(e);
                    }
                    break;
                }
                Err(e) => return Err(e),
            };
            let step = st.complete(framing, total, bufs, lens, offset);
            // A super-packet is a full batch by itself: another read would
            // most often find the queue empty (a wasted syscall), or bring
            // one that no longer fits. So would a read right after a wait
            // that one packet ended (an ACK, say): the kernel woke us for
            // it, and more behind it are read by the next call without a
            // wait.
            if self.take_step(st, step, &mut n, op)?
                || st.has_pending()
                || st.stats.super_packets != supers
                || waited
            {
                break;
            }
        }
        Ok(n)
    }

    /// Count what a step handed out into `n`; a fault after some packets is
    /// kept for the next call (`Ok(true)`: the batch ends here), a fault
    /// before any is returned.
    fn take_step(&self, st: &mut RecvState, step: Step, n: &mut usize, op: IoOp) -> Result<bool> {
        *n += step.count;
        let Some(fault) = step.fault else {
            return Ok(false);
        };
        let e = self.rx_fault_error(fault, op);
        if *n > 0 {
            st.deferred = Some(e);
            Ok(true)
        } else {
            Err(e)
        }
    }

    /// The error of `op` for what the receive engine could not hand out (a
    /// malformed packet is counted on the interface).
    fn rx_fault_error(&self, fault: RxFault, op: IoOp) -> Error {
        match fault {
            RxFault::TooSmall { needed, available } => Error::BufferTooSmall {
                op,
                interface: self.name(),
                needed,
                available,
            },
            RxFault::Bad { index, error } => {
                self.interface()
                    .shared
                    .rx_invalid
                    .fetch_add(1, Ordering::Relaxed);
                error.into_error(op, self.name(), index)
            }
        }
    }

    /// Receive a batch of views ([`ViewBatch`]): packets read one behind
    /// the other into the batch's arena, each super-packet split without
    /// moving its payload (each segment's rewritten headers apart, its
    /// payload where it was read), each packet that needs no split where
    /// it was read; returns how many packets. For [`Self::send_views`],
    /// which writes coalesced runs with their payload as one slice of the
    /// read: no payload byte is copied in user space (a UDP-tunnel
    /// super-packet's outer datagrams excepted, which are split into the
    /// batch as [`Self::recv_batch`] splits them).
    ///
    /// The batch is emptied first. Reads go as [`Self::recv_batch`]'s do:
    /// the first waits (in blocking mode), further ones are made while the
    /// kernel has more, never waiting, until a super-packet arrives, the
    /// batch holds its `max_packets`, or the arena has no room for another
    /// read of the largest packet. Checksums are completed, or left partial
    /// with [`RecvState::set_partial_checksums`] (each view then carries
    /// its header), and `state` counts what was read. A malformed packet
    /// met after some packets is returned by the next call; nothing is
    /// pending between calls otherwise (segments a [`Self::recv_batch`]
    /// left in `state` stay there for it).
    pub fn recv_views(&self, state: &mut RecvState, batch: &mut ViewBatch) -> Result<usize> {
        let op = IoOp::RecvBatch;
        batch.clear();
        if let Some(e) = state.deferred.take() {
            return Err(e);
        }
        let framing = self.framing();
        let prefix_len = framing.prefix_len();
        loop {
            let first = batch.is_empty();
            let block = first && !self.is_nonblocking();
            let mut prefix = [0u8; PREFIX_MAX];
            let Some(area) = batch.read_area() else {
                break;
            };
            let mut iov = [
                IoSliceMut::new(&mut prefix[..prefix_len]),
                IoSliceMut::new(area),
            ];
            let (total, waited) = match self.readv_waiting(&mut iov, op, block) {
                Ok(t) => t,
                Err(e) if !first => {
                    if e.is_would_block() {
                        state.stats.empty_reads += 1;
                    } else {
                        state.deferred = Some(e);
                    }
                    break;
                }
                Err(e) => return Err(e),
            };
            state.stats.reads += 1;
            let taken = if total < prefix_len {
                Err(RxFault::TooSmall {
                    needed: total,
                    available: prefix_len,
                })
            } else {
                crate::rx::decode_hdr(framing, &prefix)
                    .map_err(|error| RxFault::Bad {
                        index: batch.len(),
                        error,
                    })
                    .and_then(|hdr| {
                        batch.take(framing, hdr, total - prefix_len, state.partial_checksums())
                    })
            };
            let taken = match taken {
                Ok(t) => t,
                Err(fault) => {
                    let e = self.rx_fault_error(fault, op);
                    if first {
                        return Err(e);
                    }
                    state.deferred = Some(e);
                    break;
                }
            };
            // As in recv_batch: a super-packet is a full batch by itself,
            // and a read right after a wait seldom finds another.
            if let Taken::Split { tunnel, .. } = taken {
                state.stats.super_packets += 1;
                state.stats.tunnel_super_packets += u64::from(tunnel);
                break;
            }
            if waited || batch.is_full() {
                break;
            }
        }
        state.stats.packets += batch.len() as u64;
        state.stats.bytes += batch.bytes() as u64;
        Ok(batch.len())
    }

    /// Send a batch of views ([`Self::recv_views`]'s): coalesced by the
    /// rules of [`Self::send_batch`], each run written with one gathered
    /// `writev` whose payload slices are where the packets were read (one
    /// slice for the segments of one super-packet merged again); a packet
    /// written as it is goes out from its head and tail. Errors, the EINVAL
    /// fallback and [`SendState::set_partial_checksums`] (each view's own
    /// header) work as there; [`Self::send_pending_views`] goes on after
    /// an error. The batch is not written to.
    pub fn send_views(&self, state: &mut SendState, batch: &ViewBatch) -> Result<SendReport> {
        state
            .prepare_views(batch, self.tx_framing())
            .map_err(|e| self.batch_error(IoOp::SendBatch, e))?;
        self.send_pending_views(state, batch)
    }

    /// [`Self::send_pending`] for a batch of views: write what `state`
    /// holds of it. `batch` must be the one [`Self::send_views`] was given.
    pub fn send_pending_views(
        &self,
        state: &mut SendState,
        batch: &ViewBatch,
    ) -> Result<SendReport> {
        self.send_frames(state, batch)
    }

    /// One `readv` laid out by the receive engine: the prefix, the slices
    /// of the caller's buffers it chose, the overflow area. Returns the
    /// bytes read and whether the read had to wait.
    #[allow(clippy::too_many_arguments)]
    fn read_laid_out<B: AsMut<[u8]>>(
        &self,
        st: &mut RecvState,
        framing: Framing,
        bufs: &mut [B],
        n: usize,
        offset: usize,
        op: IoOp,
        block: bool,
    ) -> Result<(usize, bool)> {
        let (prefix, slots, overflow) = {
            let lens = bufs[n..].iter_mut().map(|b| b.as_mut().len());
            st.lay_out(framing, lens, n, offset);
            st.read_parts()
        };
        if let ([slot], Some(b)) = (slots, bufs.get_mut(n)) {
            // The default layout, one slot: three slices, not a chain's
            // array filled on every read.
            let mut iov = [
                IoSliceMut::new(&mut prefix[..]),
                IoSliceMut::new(&mut b.as_mut()[slot.clone()]),
                IoSliceMut::new(overflow),
            ];
            return self.readv_waiting(&mut iov, op, block);
        }
        let mut iov: [IoSliceMut<'_>; crate::rx::MAX_CHAIN + 2] =
            std::array::from_fn(|_| IoSliceMut::new(&mut []));
        iov[0] = IoSliceMut::new(&mut prefix[..]);
        let mut k = 1;
        for (b, slot) in bufs[n..].iter_mut().zip(slots) {
            iov[k] = IoSliceMut::new(&mut b.as_mut()[slot.clone()]);
            k += 1;
        }
        iov[k] = IoSliceMut::new(overflow);
        self.readv_waiting(&mut iov[..=k], op, block)
    }

    fn batch_error(&self, op: IoOp, error: BatchError) -> Error {
        Error::Batch {
            op,
            interface: self.name(),
            error,
        }
    }

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
    ///
    /// With [`SendState::set_partial_checksums`] on, each packet's own
    /// virtio header is read from the 10 bytes in front of it (`offset`
    /// must be at least 10), as a [`Self::recv_batch`] with partial
    /// checksums leaves it: packets left partial coalesce without being
    /// verified, and one written as it is goes out behind its header, for
    /// the kernel to complete.
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
        st.prepare(bufs, lens, offset, self.tx_framing())
            .map_err(|e| self.batch_error(IoOp::SendBatch, e))
    }

    /// How the send engine frames and coalesces for this queue now.
    fn tx_framing(&self) -> TxFraming {
        let iface = self.interface();
        let offloads = iface.offloads();
        TxFraming {
            wire: self.framing(),
            tcp: iface.tcp_coalescing(),
            udp: iface.udp_coalescing()
                && offloads.contains(OffloadFlags::USO4 | OffloadFlags::USO6),
            ecn: offloads.contains(OffloadFlags::TSO_ECN),
            tunnel_gro: iface.tunnel_coalescing(),
            outer_csum: offloads.contains(OffloadFlags::UDP_TUNNEL_GSO_CSUM),
        }
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
        self.send_frames(st, Buffers { bufs, lens, offset })
    }

    /// The write loop of a prepared batch: frames from the engine, each
    /// written with one `writev`, until done or an error.
    fn send_frames<'a, T: TxBatch<'a>>(&self, st: &mut SendState, batch: T) -> Result<SendReport> {
        st.check_batch(batch.id())
            .map_err(|e| self.batch_error(IoOp::SendBatch, e))?;
        loop {
            let mut prefix = [0u8; PREFIX_MAX];
            let mut iov = st.take_iov();
            let framed = st.frame_of(batch, &mut prefix, &mut iov);
            let res = match framed {
                Ok(Some(_)) => Some(self.writev(&iov).map(drop)),
                Ok(None) => None,
                Err(e) => {
                    st.put_iov(recycle(iov));
                    return Err(self.batch_error(IoOp::SendBatch, e));
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
                Ok(Written::TunnelRefallback) => {
                    let shared = &self.interface().shared;
                    shared.coalesce_tunnel.store(false, Ordering::Relaxed);
                    shared.gso_fallbacks.fetch_add(1, Ordering::Relaxed);
                }
                Err(Failed::Rejected { index, errno }) | Err(Failed::Io { index, errno }) => {
                    return Err(self.send_error(IoOp::SendBatch, index, errno));
                }
            }
        }
    }

    fn require_vnet(&self) -> Result<()> {
        if self.framing().vnet && !self.framing().pi {
            Ok(())
        } else {
            Err(Error::config(
                Some(self.name()),
                ConfigError::OffloadRequired,
            ))
        }
    }

    /// Wait up to `timeout` (forever with `None`) until a packet can be
    /// read or the queue reports an error (the interface was deleted);
    /// returns whether it is ready. A zero timeout only checks.
    ///
    /// Segments of a super-packet that [`Self::recv`] split and has not
    /// handed out yet count as readable: an offload queue's fd alone does
    /// not tell (see [`Self::has_pending`]).
    pub fn wait_readable(&self, timeout: Option<std::time::Duration>) -> Result<bool> {
        if self.has_pending() {
            return Ok(true);
        }
        self.wait_for(PollFlags::IN, timeout, IoOp::Poll)
    }

    /// Whether single-packet receives ([`Self::recv`], [`Self::recv_vectored`])
    /// hold segments of a super-packet already read from the kernel: the
    /// next call returns one without a syscall, even though the fd is not
    /// readable. Callers that wait on the fd themselves (an event loop)
    /// must check this first.
    pub fn has_pending(&self) -> bool {
        self.single
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|st| st.has_pending())
    }

    /// Wait up to `timeout` until a write would not block (or the queue
    /// reports an error); returns whether it is ready.
    pub fn wait_writable(&self, timeout: Option<std::time::Duration>) -> Result<bool> {
        self.wait_for(PollFlags::OUT, timeout, IoOp::Poll)
    }

    /// Poll for `events` up to `timeout` (forever with `None`), retrying on
    /// EINTR; an error names `op`. The interrupt, when raised, ends it
    /// with [`Error::Interrupted`].
    fn wait_for(
        &self,
        events: PollFlags,
        timeout: Option<std::time::Duration>,
        op: IoOp,
    ) -> Result<bool> {
        match self.poll(events, timeout) {
            Ok(ready) => Ok(ready),
            Err(PollEnd::Interrupted) => Err(Error::Interrupted {
                op,
                interface: self.name(),
            }),
            Err(PollEnd::Failed(e)) => Err(Error::io(op, self.name(), e)),
        }
    }

    /// `poll` on the fd and the interrupt (if any); `Ok(false)` on timeout.
    fn poll(
        &self,
        events: PollFlags,
        timeout: Option<std::time::Duration>,
    ) -> std::result::Result<bool, PollEnd> {
        let interrupt = self.interrupt();
        let ts = timeout.map(|t| rustix::event::Timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        loop {
            let mut fds = [
                PollFd::new(self, events),
                PollFd::new(self, PollFlags::empty()),
            ];
            let count = match &interrupt {
                Some(i) => {
                    fds[1] = PollFd::new(i, PollFlags::IN);
                    2
                }
                None => 1,
            };
            match rustix::event::poll(&mut fds[..count], ts.as_ref()) {
                Ok(_) if count == 2 && !fds[1].revents().is_empty() => {
                    return Err(PollEnd::Interrupted);
                }
                Ok(n) => return Ok(n > 0),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(PollEnd::Failed(e)),
            }
        }
    }

    /// Move this queue's fd out (the queue stays attached to the device).
    /// The fd is non-blocking; segments [`Self::recv`] still held are
    /// dropped.
    pub fn into_fd(mut self) -> OwnedFd {
        match self.fd.take() {
            Some(fd) => fd,
            None => unreachable!("a live queue holds its fd"),
        }
    }
}

/// Whether `hdr` describes `packet` (an Ethernet frame when `frame`): a
/// super-packet (plain or UDP tunnel) must parse as one, a partial
/// checksum must lie inside the packet.
pub(crate) fn check_header(
    hdr: &VirtioNetHdrV1HashTunnel,
    packet: &[u8],
    frame: bool,
) -> Result<(), Malformed> {
    if hdr.hdr.gso_type() != GsoType::NONE {
        return SuperPacket::parse(frame, hdr, packet).map(drop);
    }
    let hdr = &hdr.hdr;
    if hdr.flags().contains(HdrFlags::NEEDS_CSUM) {
        let end = usize::from(hdr.csum_start()) + usize::from(hdr.csum_offset()) + 2;
        if end > packet.len() {
            return Err(Malformed::Plain(PacketError::CsumOutOfRange {
                csum_start: hdr.csum_start(),
                csum_offset: hdr.csum_offset(),
                len: packet.len(),
            }));
        }
    }
    Ok(())
}

impl Drop for Queue {
    fn drop(&mut self) {
        // The interface keeps a duplicate of this queue's fd for its
        // ioctls, which keeps the kernel's queue attached: detach it, so
        // the kernel stops steering flows to a queue nobody reads.
        if let Some(fd) = &self.fd {
            if self.shares_control && self.iface.tun_flags().contains(TunFlags::MULTI_QUEUE) {
                let _ = tun_sys::set_queue(fd.as_fd(), false);
                self.iface
                    .shared
                    .detached
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

impl AsFd for Queue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.fd {
            Some(fd) => fd.as_fd(),
            None => unreachable!("a live queue holds its fd"),
        }
    }
}

impl AsRawFd for Queue {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl IntoRawFd for Queue {
    fn into_raw_fd(self) -> RawFd {
        self.into_fd().into_raw_fd()
    }
}

impl From<Queue> for OwnedFd {
    fn from(q: Queue) -> Self {
        q.into_fd()
    }
}
