//! A whole device with its queues registered: built from a tun-device
//! builder, from an open [`Device`], or from an fd.

use std::ops::Deref;
use std::os::fd::OwnedFd;
use std::task::{Context, Poll};

use tun_device::offload::VirtioNetHdrV1HashTunnel;
use tun_device::{
    Device, DeviceBuilder, Interface, OffloadFlags, Queue, RecvState, Result, SendReport, SendState,
};

use crate::AsyncQueue;
use crate::backend::{Backend, DefaultBackend, Interest, Ready};

/// An open TUN/TAP device whose queues are registered with a runtime's
/// reactor (`B`: tokio unless named otherwise): its
/// [`Interface`] (dereferenced to, for configuration) and one
/// [`AsyncQueue`] per fd.
///
/// The I/O methods of the first queue are available on the device
/// directly; other queues through [`AsyncDevice::queue`], or moved to tasks
/// of their own with [`AsyncDevice::into_queues`]. Everything is `&self`;
/// the device is `Send + Sync`, so one `Arc<AsyncDevice>` serves many
/// tasks. Cancel safety of each method is that of the [`AsyncQueue`]
/// method it forwards to.
///
/// ```no_run
/// use tun_async::AsyncDevice;
/// use tun_device::{Device, RecvState, SendState};
///
/// # async fn demo() -> tun_device::Result<()> {
/// let dev = AsyncDevice::build(
///     Device::builder().name("tun%d").offload(true).address("10.0.0.1/24".parse().unwrap()),
/// )?;
/// let (mut rx, mut tx) = (RecvState::new(), SendState::new());
/// let mut bufs = vec![vec![0u8; 10 + 65535]; 64];
/// let mut lens = vec![0usize; 64];
/// let n = dev.recv_batch(&mut rx, &mut bufs, &mut lens, 10).await?;
/// dev.send_batch(&mut tx, &mut bufs[..n], &mut lens[..n], 10).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncDevice<B: Backend = DefaultBackend> {
    iface: Interface,
    queues: Vec<AsyncQueue<B>>,
}

impl AsyncDevice {
    /// Register every queue of an open device with the default backend
    /// (see [`AsyncQueue::new`]).
    ///
    /// # Panics
    ///
    /// With tokio, outside a runtime.
    pub fn new(device: Device) -> Result<Self> {
        Self::register(device)
    }

    /// Build the device (creation, `TUNSETIFF`, offload, configuration:
    /// synchronous, a few syscalls and acknowledged netlink requests), then
    /// register its queues with the default backend.
    ///
    /// # Panics
    ///
    /// With tokio, outside a runtime.
    pub fn build(builder: DeviceBuilder) -> Result<Self> {
        Self::register(builder.build()?)
    }

    /// Open a device from an fd of `/dev/net/tun` already attached to an
    /// interface ([`Device::from_fd`], which checks it with `TUNGETIFF` and
    /// makes it non-blocking), then register it with the default backend.
    ///
    /// # Panics
    ///
    /// With tokio, outside a runtime.
    pub fn from_fd(fd: OwnedFd, offload: OffloadFlags) -> Result<Self> {
        Self::register(Device::from_fd(fd, offload)?)
    }
}

impl<B: Backend> AsyncDevice<B> {
    /// Register every queue of an open device with backend `B` (see
    /// [`AsyncQueue::register`]): `AsyncDevice::<AsyncIo>::register(dev)`.
    ///
    /// # Panics
    ///
    /// With tokio, outside a runtime.
    pub fn register(device: Device) -> Result<Self> {
        let iface = device.interface().clone();
        let queues = device
            .into_queues()
            .into_iter()
            .map(AsyncQueue::register)
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { iface, queues })
    }

    /// The interface (also reachable through `Deref`).
    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    /// The first queue.
    pub fn first_queue(&self) -> &AsyncQueue<B> {
        &self.queues[0]
    }

    /// Queue `i`, if open.
    pub fn queue(&self, i: usize) -> Option<&AsyncQueue<B>> {
        self.queues.get(i)
    }

    /// All queues of this value.
    pub fn queues(&self) -> &[AsyncQueue<B>] {
        &self.queues
    }

    /// The queues, each to move to a task of its own.
    pub fn into_queues(self) -> Vec<AsyncQueue<B>> {
        self.queues
    }

    /// Open one more queue of a multi-queue device, registered.
    pub fn open_queue(&self) -> Result<AsyncQueue<B>> {
        self.queues[0].open_queue()
    }

    /// Open one more queue and keep it in this device.
    pub fn add_queue(&mut self) -> Result<&AsyncQueue<B>> {
        let q = self.open_queue()?;
        self.queues.push(q);
        Ok(&self.queues[self.queues.len() - 1])
    }

    /// [`AsyncQueue::ready`] on the first queue.
    pub async fn ready(&self, interest: Interest) -> Result<Ready> {
        self.queues[0].ready(interest).await
    }

    /// [`AsyncQueue::try_io`] on the first queue.
    pub fn try_io<R>(&self, interest: Interest, f: impl FnOnce(&Queue) -> Result<R>) -> Result<R> {
        self.queues[0].try_io(interest, f)
    }

    /// [`AsyncQueue::try_recv`] on the first queue.
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.queues[0].try_recv(buf)
    }

    /// [`AsyncQueue::try_recv_batch`] on the first queue.
    pub fn try_recv_batch<T: AsMut<[u8]>>(
        &self,
        state: &mut RecvState,
        bufs: &mut [T],
        lens: &mut [usize],
        offset: usize,
    ) -> Result<usize> {
        self.queues[0].try_recv_batch(state, bufs, lens, offset)
    }

    /// [`AsyncQueue::try_send`] on the first queue.
    pub fn try_send(&self, packet: &[u8]) -> Result<usize> {
        self.queues[0].try_send(packet)
    }

    /// [`AsyncQueue::poll_recv`] on the first queue.
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize>> {
        self.queues[0].poll_recv(cx, buf)
    }

    /// [`AsyncQueue::poll_send`] on the first queue.
    pub fn poll_send(&self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<Result<usize>> {
        self.queues[0].poll_send(cx, packet)
    }

    /// [`AsyncQueue::readable`] on the first queue.
    pub async fn readable(&self) -> Result<()> {
        self.queues[0].readable().await
    }

    /// [`AsyncQueue::writable`] on the first queue.
    pub async fn writable(&self) -> Result<()> {
        self.queues[0].writable().await
    }

    /// [`AsyncQueue::recv`] on the first queue.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.queues[0].recv(buf).await
    }

    /// [`AsyncQueue::send`] on the first queue.
    pub async fn send(&self, packet: &[u8]) -> Result<usize> {
        self.queues[0].send(packet).await
    }

    /// [`AsyncQueue::recv_vectored`] on the first queue.
    pub async fn recv_vectored(&self, bufs: &mut [std::io::IoSliceMut<'_>]) -> Result<usize> {
        self.queues[0].recv_vectored(bufs).await
    }

    /// [`AsyncQueue::send_vectored`] on the first queue.
    pub async fn send_vectored(&self, bufs: &[std::io::IoSlice<'_>]) -> Result<usize> {
        self.queues[0].send_vectored(bufs).await
    }

    /// [`AsyncQueue::recv_batch`] on the first queue.
    pub async fn recv_batch<T: AsMut<[u8]>>(
        &self,
        state: &mut RecvState,
        bufs: &mut [T],
        lens: &mut [usize],
        offset: usize,
    ) -> Result<usize> {
        self.queues[0].recv_batch(state, bufs, lens, offset).await
    }

    /// [`AsyncQueue::send_batch`] on the first queue.
    pub async fn send_batch<T: AsRef<[u8]>>(
        &self,
        state: &mut SendState,
        bufs: &[T],
        lens: &[usize],
        offset: usize,
    ) -> Result<SendReport> {
        self.queues[0].send_batch(state, bufs, lens, offset).await
    }

    /// [`AsyncQueue::send_pending`] on the first queue.
    pub async fn send_pending<T: AsRef<[u8]>>(
        &self,
        state: &mut SendState,
        bufs: &[T],
        lens: &[usize],
        offset: usize,
    ) -> Result<SendReport> {
        self.queues[0].send_pending(state, bufs, lens, offset).await
    }

    /// [`AsyncQueue::recv_gso`] on the first queue.
    pub async fn recv_gso(&self, buf: &mut [u8]) -> Result<(VirtioNetHdrV1HashTunnel, usize)> {
        self.queues[0].recv_gso(buf).await
    }

    /// [`AsyncQueue::send_gso`] on the first queue.
    pub async fn send_gso(&self, hdr: &VirtioNetHdrV1HashTunnel, packet: &[u8]) -> Result<usize> {
        self.queues[0].send_gso(hdr, packet).await
    }
}

impl<B: Backend> Deref for AsyncDevice<B> {
    type Target = Interface;
    fn deref(&self) -> &Interface {
        &self.iface
    }
}

impl<B: Backend> TryFrom<Device> for AsyncDevice<B> {
    type Error = tun_device::Error;
    /// [`AsyncDevice::register`].
    fn try_from(d: Device) -> Result<Self> {
        AsyncDevice::register(d)
    }
}
