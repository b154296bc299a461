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
use tun_offload::{GsoType, HdrFlags, PacketError, VirtioNetHdr};
use tun_sys::{InterfaceName, TunFlags};

use crate::batch::RecvState;
use crate::error::{ConfigError, Error, IoOp, Result};
use crate::interface::Interface;
use crate::interrupt::Interrupt;

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

/// What a batched receive needs to know about the queue's framing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Framing {
    pub(crate) pi: bool,
    pub(crate) vnet: bool,
    /// A TAP: Ethernet frames, whose virtio header counts `csum_start`
    /// from the frame start.
    pub(crate) l2: bool,
}

impl Framing {
    pub(crate) fn prefix_len(self) -> usize {
        (if self.pi { PI_LEN } else { 0 }) + if self.vnet { VirtioNetHdr::LEN } else { 0 }
    }
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

    /// The interface this queue belongs to.
    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    pub(crate) fn framing(&self) -> Framing {
        let flags = self.iface.tun_flags();
        Framing {
            pi: !flags.contains(TunFlags::NO_PI),
            vnet: flags.contains(TunFlags::VNET_HDR),
            l2: flags.contains(TunFlags::TAP),
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
        loop {
            match rustix::io::readv(self, iov) {
                Ok(n) => return Ok(n),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) if block => self.wait(PollFlags::IN, op)?,
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
        let mut sizes = [0usize; 1];
        let n = self.recv_batch_as(st, &mut [buf], &mut sizes, 0, IoOp::Recv)?;
        debug_assert_eq!(n, 1);
        Ok(sizes[0])
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
        let mut prefix = [0u8; PI_LEN + VirtioNetHdr::LEN];
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
        if framing.vnet {
            // Already zero: no offload requested for this packet.
            p += VirtioNetHdr::LEN;
        }
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
    /// and the header counts `csum_start` from the frame start
    /// ([`tun_offload::split_frame`] takes it).
    pub fn recv_gso(&self, buf: &mut [u8]) -> Result<(VirtioNetHdr, usize)> {
        self.require_vnet()?;
        let mut hdr = [0u8; VirtioNetHdr::LEN];
        let mut overflow = [0u8; 1];
        let cap = buf.len();
        let mut iov = [
            IoSliceMut::new(&mut hdr),
            IoSliceMut::new(buf),
            IoSliceMut::new(&mut overflow),
        ];
        let n = self.readv(&mut iov, IoOp::Recv, !self.is_nonblocking())?;
        let len = n.saturating_sub(VirtioNetHdr::LEN);
        if len > cap {
            return Err(Error::BufferTooSmall {
                op: IoOp::Recv,
                interface: self.name(),
                needed: len,
                available: cap,
            });
        }
        Ok((
            VirtioNetHdr::decode(&hdr).unwrap_or(VirtioNetHdr::ZERO),
            len,
        ))
    }

    /// Send one packet with the virtio header `hdr` (a super-packet the
    /// kernel segments, or a partial checksum it completes). Needs offload
    /// on. The kernel checks the header against the packet and refuses a
    /// mismatch with [`ErrorKind::BadPacket`](crate::ErrorKind::BadPacket).
    pub fn send_gso(&self, hdr: &VirtioNetHdr, packet: &[u8]) -> Result<usize> {
        self.require_vnet()?;
        // The kernel takes a header that does not describe the packet and
        // drops the packet later, silently: check it here.
        if let Err(error) = check_header(hdr, packet, self.framing().l2) {
            return Err(Error::Packet {
                op: IoOp::Send,
                interface: self.name(),
                index: 0,
                error,
            });
        }
        let h = hdr.to_bytes();
        let iov = [IoSlice::new(&h), IoSlice::new(packet)];
        match self.writev(&iov) {
            Ok(_) => Ok(packet.len()),
            Err(e) => Err(self.send_error(IoOp::Send, 0, e)),
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
/// super-packet must parse as one, a partial checksum must lie inside the
/// packet.
pub(crate) fn check_header(
    hdr: &VirtioNetHdr,
    packet: &[u8],
    frame: bool,
) -> Result<(), PacketError> {
    if hdr.gso_type() != GsoType::NONE {
        return if frame {
            tun_offload::GsoPacket::parse_frame(hdr, packet).map(drop)
        } else {
            tun_offload::GsoPacket::parse(hdr, packet).map(drop)
        };
    }
    if hdr.flags().contains(HdrFlags::NEEDS_CSUM) {
        let end = usize::from(hdr.csum_start()) + usize::from(hdr.csum_offset()) + 2;
        if end > packet.len() {
            return Err(PacketError::CsumOutOfRange {
                csum_start: hdr.csum_start(),
                csum_offset: hdr.csum_offset(),
                len: packet.len(),
            });
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
