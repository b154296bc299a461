//! Opening a device: the builder (create, or open an existing
//! persistent device), opening from an fd, and the device value that holds
//! the interface and its queues.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use ipnet::IpNet;
use tun_offload::VirtioNetHdrV1HashTunnel;
use tun_sys::{InterfaceName, OffloadFlags, TunFlags};

use crate::error::{ConfigError, Error, Result, Syscall};
use crate::interface::{Interface, Negotiated};
use crate::netlink::{AddressOptions, LinkChanges, Netlink};
use crate::netns::NetNs;
use crate::queue::Queue;

/// What a device carries: IP packets (TUN) or Ethernet frames (TAP), as
/// iproute2's `ip tuntap add mode tun|tap` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// TUN: IP packets (layer 3).
    #[default]
    Tun,
    /// TAP: Ethernet frames (layer 2).
    Tap,
}

/// The offloads asked for first; USO and TSO_ECN are dropped in turn when
/// the kernel refuses them (USO needs Linux 6.2).
const OFFLOAD_WANTED: [OffloadFlags; 3] = [
    OffloadFlags::TCP_UDP.union(OffloadFlags::TSO_ECN),
    OffloadFlags::TCP_UDP,
    OffloadFlags::TCP,
];

/// The flags `TUNGETIFF` must report back as they were asked. `NO_PI` is
/// not among them: on read its bit means `IFF_NOFILTER`; packet information
/// is checked through rtnetlink's `IFLA_TUN_PI` instead.
const CHECKED_FLAGS: TunFlags = TunFlags::TUN
    .union(TunFlags::TAP)
    .union(TunFlags::VNET_HDR)
    .union(TunFlags::MULTI_QUEUE)
    .union(TunFlags::NAPI)
    .union(TunFlags::NAPI_FRAGS);

#[derive(Debug, Clone, PartialEq, Eq)]
struct AddrSpec {
    addr: IpNet,
    options: AddressOptions,
}

/// Builds a [`Device`]: creates a TUN/TAP interface (or opens an
/// existing persistent one), negotiates offload, and configures it.
///
/// Every setting is checked at [`DeviceBuilder::build`]; combinations the
/// kernel would misread are refused before any syscall.
///
/// ```no_run
/// use tun_device::Device;
/// let dev = Device::builder()
///     .name("tun%d")
///     .offload(true)
///     .mtu(1500)
///     .address("10.0.0.1/24".parse().unwrap())
///     .build()?;
/// let iface = dev.interface();
/// println!("{} offloads {:?}", iface.name()?, iface.offloads());
/// # Ok::<(), tun_device::Error>(())
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct DeviceBuilder {
    name: Option<String>,
    mode: Mode,
    packet_info: bool,
    queues: usize,
    multi_queue: bool,
    offload: bool,
    /// Leave the UDP-tunnel offload out of the negotiation.
    no_tunnel_offload: bool,
    persist: Option<bool>,
    owner: Option<u32>,
    group: Option<u32>,
    mtu: Option<u32>,
    addrs: Vec<AddrSpec>,
    bad: Option<ConfigError>,
    mac: Option<[u8; 6]>,
    tx_queue_len: Option<u32>,
    napi: bool,
    up: Option<bool>,
    existing: bool,
    exclusive: bool,
    netns: Option<NetNs>,
    nonblocking: bool,
}

impl DeviceBuilder {
    /// A builder for one TUN queue, no offload, no packet information,
    /// brought up once configured.
    pub fn new() -> Self {
        Self {
            queues: 1,
            ..Self::default()
        }
    }

    /// The interface name, or a kernel template such as `tun%d` (the
    /// default is the kernel's `tun%d`/`tap%d`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// TUN (IP packets) or TAP (Ethernet frames).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Shorthand for `.mode(Mode::Tap)`.
    pub fn tap(self) -> Self {
        self.mode(Mode::Tap)
    }

    /// Keep the 4-byte packet-information header (`struct tun_pi`) on the
    /// wire (off by default: `IFF_NO_PI`). This crate strips it on receive
    /// and fills it on send.
    pub fn packet_information(mut self, on: bool) -> Self {
        self.packet_info = on;
        self
    }

    /// Open `n` queues (multi-queue when `n > 1`).
    pub fn queues(mut self, n: usize) -> Self {
        self.queues = n;
        if n > 1 {
            self.multi_queue = true;
        }
        self
    }

    /// Multi-queue (`IFF_MULTI_QUEUE`) even with one queue, so more can be
    /// opened later.
    pub fn multi_queue(mut self, on: bool) -> Self {
        self.multi_queue = on;
        self
    }

    /// Offload: virtio-net headers (`IFF_VNET_HDR`), checksum offload and
    /// TSO, with USO and TSO_ECN when the kernel grants them. Batched I/O
    /// then splits super-packets on receive and coalesces on send.
    ///
    /// On Linux 6.17+ the UDP-tunnel offload is offered too (VXLAN and
    /// Geneve super-packets, [`OffloadFlags::UDP_TUNNEL_GSO`] with
    /// [`OffloadFlags::UDP_TUNNEL_GSO_CSUM`]): when granted, the virtio
    /// header grows to 24 bytes ([`Interface::vnet_hdr_len`]) and batched
    /// receive splits tunnel super-packets into complete outer datagrams.
    /// Older kernels refuse it and nothing changes;
    /// [`Interface::offloads`] says what was granted.
    pub fn offload(mut self, on: bool) -> Self {
        self.offload = on;
        self
    }

    /// Offer the UDP-tunnel offload with [`Self::offload`] (on by
    /// default). Off: the device keeps the 10-byte header and the kernel
    /// segments VXLAN and Geneve super-packets before they reach it, as on
    /// kernels before 6.17.
    pub fn udp_tunnel_offload(mut self, on: bool) -> Self {
        self.no_tunnel_offload = !on;
        self
    }

    /// Make the device persistent (it outlives its queues), or clear
    /// persistence of an existing one.
    pub fn persist(mut self, on: bool) -> Self {
        self.persist = Some(on);
        self
    }

    /// The uid that may open the device without CAP_NET_ADMIN.
    pub fn owner(mut self, uid: u32) -> Self {
        self.owner = Some(uid);
        self
    }

    /// The gid whose members may open the device without CAP_NET_ADMIN.
    pub fn group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }

    /// The MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// An address with its prefix (any number, both families).
    pub fn address(self, addr: IpNet) -> Self {
        self.address_with(addr, AddressOptions::new())
    }

    /// An address with a peer, an IPv4 broadcast address, or without
    /// duplicate address detection ([`AddressOptions`]). An IPv6 address
    /// added without `nodad` stays tentative for a second or more after
    /// [`Self::build`] returns (packets from or to it are dropped until
    /// then): pass `nodad`, or wait with [`Interface::wait_for_dad`].
    pub fn address_with(mut self, addr: IpNet, options: AddressOptions) -> Self {
        if let Some(peer) = options.peer {
            if addr.addr().is_ipv4() != peer.is_ipv4() {
                self.bad
                    .get_or_insert(ConfigError::PeerFamilyMismatch { addr, peer });
            }
        }
        self.addrs.push(AddrSpec { addr, options });
        self
    }

    /// A point-to-point address: local address with prefix, and the peer.
    pub fn address_with_peer(self, addr: IpNet, peer: IpAddr) -> Self {
        self.address_with(addr, AddressOptions::new().peer(peer))
    }

    /// An IPv4 address, prefix length and optional peer (tun-rs's shape).
    pub fn ipv4(
        self,
        addr: std::net::Ipv4Addr,
        prefix: u8,
        peer: Option<std::net::Ipv4Addr>,
    ) -> Self {
        self.ip(IpAddr::V4(addr), prefix, peer.map(IpAddr::V4))
    }

    /// An IPv6 address and prefix length.
    pub fn ipv6(self, addr: std::net::Ipv6Addr, prefix: u8) -> Self {
        self.ip(IpAddr::V6(addr), prefix, None)
    }

    fn ip(mut self, addr: IpAddr, prefix: u8, peer: Option<IpAddr>) -> Self {
        match IpNet::new(addr, prefix) {
            Ok(net) => match peer {
                Some(p) => self.address_with_peer(net, p),
                None => self.address(net),
            },
            Err(_) => {
                let max = if addr.is_ipv4() { 32 } else { 128 };
                self.bad
                    .get_or_insert(ConfigError::BadPrefix { addr, prefix, max });
                self
            }
        }
    }

    /// The Ethernet address of a TAP device.
    pub fn mac(mut self, mac: [u8; 6]) -> Self {
        self.mac = Some(mac);
        self
    }

    /// The transmit queue length in packets.
    pub fn tx_queue_len(mut self, len: u32) -> Self {
        self.tx_queue_len = Some(len);
        self
    }

    /// Receive writes through NAPI (`IFF_NAPI`).
    pub fn napi(mut self, on: bool) -> Self {
        self.napi = on;
        self
    }

    /// Bring the interface up (the default for a new device) or down.
    /// An existing device keeps its state unless this is set.
    pub fn up(mut self, up: bool) -> Self {
        self.up = Some(up);
        self
    }

    /// Open an existing device of this name (persistent, or multi-queue)
    /// and only that: fail if there is none, and fail if its flags differ
    /// from what this builder asks for. Without it, an existing persistent
    /// device is reopened with this builder's flags (the kernel rewrites
    /// packet information and virtio header on a single-queue device).
    /// (Attaching is what [`Queue::attach`] does: a queue rejoining its
    /// device, `TUNSETQUEUE`.)
    pub fn existing(mut self, on: bool) -> Self {
        self.existing = on;
        self
    }

    /// Fail with EBUSY if a device of this name exists (`IFF_TUN_EXCL`)
    /// instead of opening it.
    pub fn exclusive(mut self, on: bool) -> Self {
        self.exclusive = on;
        self
    }

    /// Create the device inside network namespace `ns` (the caller's
    /// thread stays where it is).
    pub fn netns(mut self, ns: NetNs) -> Self {
        self.netns = Some(ns);
        self
    }

    /// Queues return [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock)
    /// instead of waiting.
    pub fn nonblocking(mut self, on: bool) -> Self {
        self.nonblocking = on;
        self
    }

    fn flags(&self) -> TunFlags {
        let mut f = match self.mode {
            Mode::Tun => TunFlags::TUN,
            Mode::Tap => TunFlags::TAP,
        };
        if !self.packet_info {
            f |= TunFlags::NO_PI;
        }
        if self.offload {
            f |= TunFlags::VNET_HDR;
        }
        if self.multi_queue {
            f |= TunFlags::MULTI_QUEUE;
        }
        if self.napi {
            f |= TunFlags::NAPI;
        }
        f
    }

    /// Everything that can be refused without asking the kernel.
    fn check(&self) -> Result<Option<InterfaceName>> {
        let fail = |e| Err(Error::config(None, e));
        let name = match &self.name {
            Some(n) => Some(InterfaceName::new(n).map_err(|error| {
                Error::config(
                    None,
                    ConfigError::BadName {
                        name: n.clone(),
                        error,
                    },
                )
            })?),
            None => None,
        };
        if let Some(e) = &self.bad {
            return fail(e.clone());
        }
        if self.offload && self.packet_info {
            return fail(ConfigError::OffloadWithPacketInfo);
        }
        if self.mac.is_some() && self.mode == Mode::Tun {
            return fail(ConfigError::MacOnTun);
        }
        if self.queues == 0 {
            return fail(ConfigError::NoQueues);
        }
        if self.queues > 1 && !self.multi_queue {
            return fail(ConfigError::QueuesWithoutMultiQueue {
                queues: self.queues,
            });
        }
        if self.existing && name.is_none_or(|n| n.is_template()) {
            return fail(ConfigError::ExistingByTemplate);
        }
        Ok(name)
    }

    /// Open the device.
    pub fn build(self) -> Result<Device> {
        let name = self.check()?;
        let flags = self.flags();
        let mut setiff_flags = flags;
        if self.exclusive {
            setiff_flags |= TunFlags::TUN_EXCL;
        }
        // The fds (and the netlink socket) are opened inside the target
        // namespace: a TUN device is created in the namespace its fd was
        // opened in (drivers/net/tun.c, tun_chr_open).
        let queues = self.queues;
        let open = || -> Result<(Vec<OwnedFd>, Netlink)> {
            let mut fds = Vec::with_capacity(queues);
            for _ in 0..queues {
                let fd = tun_sys::open_tun(true).map_err(|e| match name {
                    Some(n) => e.with_interface(n),
                    None => e,
                })?;
                fds.push(fd);
            }
            Ok((fds, Netlink::open()?))
        };
        let (fds, mut nl) = match &self.netns {
            Some(ns) => ns.run(open)?,
            None => open()?,
        };

        // Did the device exist before? Needed to check `existing` and to
        // undo only what this call created when a later step fails.
        let existing = match name.filter(|n| !n.is_template()) {
            Some(n) => match nl.link_by_name(&n.to_string()) {
                Ok(info) => Some(info),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        if let (true, Some(n)) = (self.existing, name) {
            match &existing {
                None => {
                    return Err(Error::NotTun {
                        interface: n,
                        kind: None,
                    });
                }
                Some(info) if info.tun.is_none() => {
                    return Err(Error::NotTun {
                        interface: n,
                        kind: Some(info.kind.clone().unwrap_or_else(|| "non-TUN".into())),
                    });
                }
                Some(_) => {}
            }
        }

        // TUNSETIFF on an existing single-queue device rewrites its
        // NO_PI/VNET_HDR flags silently (drivers/net/tun.c, tun_set_iff).
        // Without `existing` that is the point (a persistent device reopened
        // with this builder's flags, its stale offload mask cleared below);
        // `existing` must find the device as it was asked for.
        if let (true, Some(n), Some(info)) = (self.existing, name, &existing) {
            if let Some(t) = &info.tun {
                let mut held = if t.tap { TunFlags::TAP } else { TunFlags::TUN };
                if !t.pi {
                    held |= TunFlags::NO_PI;
                }
                if t.vnet_hdr {
                    held |= TunFlags::VNET_HDR;
                }
                if t.multi_queue {
                    held |= TunFlags::MULTI_QUEUE;
                }
                let mask = TunFlags::TUN
                    | TunFlags::TAP
                    | TunFlags::NO_PI
                    | TunFlags::VNET_HDR
                    | TunFlags::MULTI_QUEUE;
                if held != flags & mask && !self.exclusive {
                    return Err(Error::FlagsMismatch {
                        interface: n,
                        requested: flags & mask,
                        actual: held,
                    });
                }
            }
        }
        let real = tun_sys::set_iff(fds[0].as_fd(), name.as_ref(), setiff_flags)?;
        let (_, got) = tun_sys::get_iff(fds[0].as_fd())?;
        let info = nl.link_by_name(&real.to_string())?;
        let mut actual = got & CHECKED_FLAGS;
        if info.tun.as_ref().is_some_and(|t| !t.pi) {
            actual |= TunFlags::NO_PI;
        }
        let requested = flags & (CHECKED_FLAGS | TunFlags::NO_PI);
        if actual != requested {
            return Err(Error::FlagsMismatch {
                interface: real,
                requested,
                actual,
            });
        }
        let created = existing.is_none();
        let guard = CreatedGuard {
            fd: &fds[0],
            armed: created,
        };
        for fd in &fds[1..] {
            tun_sys::set_iff(fd.as_fd(), Some(&real), flags)?;
        }
        let offload = negotiate_offload(fds[0].as_fd(), self.offload, !self.no_tunnel_offload)
            .map_err(|e| Error::Sys(e.with_interface(real)))?;

        let fd0 = fds[0].as_fd();
        let with_name = |e: tun_sys::Error| Error::Sys(e.with_interface(real));
        if let Some(uid) = self.owner {
            tun_sys::set_owner(fd0, uid).map_err(with_name)?;
        }
        if let Some(gid) = self.group {
            tun_sys::set_group(fd0, gid).map_err(with_name)?;
        }

        let index = info.index;
        let named = |e: crate::netlink::NetlinkError| Error::Netlink(e.with_interface(real));
        // The link settings in one acknowledged RTM_SETLINK (the kernel's
        // extended ack names the one it refuses), then the addresses: an
        // IPv6 address needs the MTU it will live with (1280 or more).
        let changes = LinkChanges {
            mtu: self.mtu,
            mac: self.mac,
            tx_queue_len: self.tx_queue_len,
            up: self.up.or(if created { Some(true) } else { None }),
        };
        nl.change_link(index, &changes).map_err(named)?;
        for a in &self.addrs {
            nl.add_address_with(index, a.addr, &a.options)
                .map_err(named)?;
        }
        let mtu = self.mtu.unwrap_or(info.mtu);
        // Everything that can fail comes before the guard is disarmed: a
        // failed build leaves nothing it created behind.
        let tun_fd = fds[0]
            .try_clone()
            .map_err(|e| Error::syscall_io(Syscall::Dup, Some(real), &e, libc::EMFILE))?;
        if let Some(p) = self.persist {
            tun_sys::set_persist(fd0, p).map_err(with_name)?;
        }
        drop(guard.disarm());

        let vnet_len = if offload.contains(OffloadFlags::UDP_TUNNEL_GSO) {
            VirtioNetHdrV1HashTunnel::LEN
        } else {
            tun_offload::VirtioNetHdr::LEN
        };
        let negotiated = Negotiated { offload, vnet_len };
        let iface = Interface::new(tun_fd, real, index, Some(nl), flags, negotiated, mtu);
        let queues = fds
            .into_iter()
            .enumerate()
            .map(|(i, fd)| {
                let q = Queue::new(fd, iface.clone(), self.nonblocking);
                if i == 0 { q.sharing_control() } else { q }
            })
            .collect();
        Ok(Device { iface, queues })
    }
}

/// Clears persistence of a device this call created if a later step fails,
/// so the device disappears with its fds instead of lingering.
struct CreatedGuard<'a> {
    fd: &'a OwnedFd,
    armed: bool,
}

impl CreatedGuard<'_> {
    fn disarm(mut self) -> Self {
        self.armed = false;
        self
    }
}

impl Drop for CreatedGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = tun_sys::set_persist(self.fd.as_fd(), false);
        }
    }
}

/// The header size with the UDP-tunnel offload
/// (`struct virtio_net_hdr_v1_hash_tunnel`, drivers/net/tun_vnet.h
/// TUN_VNET_TNL_SIZE).
const TUNNEL_VNET_HDR_SIZE: i32 = VirtioNetHdrV1HashTunnel::LEN as i32;

/// Offer the offloads, dropping USO and TSO_ECN in turn when refused, then
/// (with `tunnel`) the UDP-tunnel offload on top; with offload off, clear
/// any mask and header size a persistent device kept.
fn negotiate_offload(
    fd: BorrowedFd<'_>,
    offload: bool,
    tunnel: bool,
) -> core::result::Result<OffloadFlags, tun_sys::Error> {
    if !offload {
        tun_sys::set_offload(fd, OffloadFlags::empty())?;
        tun_sys::set_vnet_hdr_size(fd, tun_sys::DEFAULT_VNET_HDR_SIZE)?;
        return Ok(OffloadFlags::empty());
    }
    // The header layout this crate reads and writes.
    tun_sys::set_vnet_hdr_size(fd, tun_sys::DEFAULT_VNET_HDR_SIZE)?;
    #[cfg(target_endian = "big")]
    tun_sys::set_vnet_le(fd, true)?;
    let mut last = None;
    let mut plain = None;
    for want in OFFLOAD_WANTED {
        match tun_sys::set_offload(fd, want) {
            Ok(()) => {
                plain = Some(want);
                break;
            }
            Err(e) if e.errno() == libc::EINVAL => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    let Some(plain) = plain else {
        return Err(last.unwrap_or(tun_sys::Error::new(
            tun_sys::Op::TunSetOffload,
            libc::EINVAL,
        )));
    };
    if !tunnel {
        return Ok(plain);
    }
    // The header grows first: with the tunnel offload on and a 10-byte
    // header, every read of a tunnel super-packet fails (EFAULT on 6.18).
    // Kernels before 6.17 refuse the unknown bits with EINVAL and keep the
    // plain mask; the header goes back to 10 bytes then.
    let with_tunnel = plain | OffloadFlags::UDP_TUNNEL;
    tun_sys::set_vnet_hdr_size(fd, TUNNEL_VNET_HDR_SIZE)?;
    match tun_sys::set_offload(fd, with_tunnel) {
        Ok(()) => Ok(with_tunnel),
        Err(e) if e.errno() == libc::EINVAL => {
            tun_sys::set_vnet_hdr_size(fd, tun_sys::DEFAULT_VNET_HDR_SIZE)?;
            tun_sys::set_offload(fd, plain)?;
            Ok(plain)
        }
        Err(e) => Err(e),
    }
}

/// An open TUN/TAP device: its [`Interface`] (configuration and state:
/// [`Device::interface`]) and its queues (the I/O: [`Device::first_queue`],
/// [`Device::queue`]). The device is neither: it holds them and hands them
/// out, so every call says which it is for (`dev.interface().set_mtu(..)`,
/// `dev.first_queue().recv(..)`). Everything is `&self`: share a device
/// between threads in an `Arc`, or move each queue to its own thread with
/// [`Device::into_queues`].
#[derive(Debug)]
pub struct Device {
    iface: Interface,
    queues: Vec<Queue>,
}

impl Device {
    /// A builder.
    pub fn builder() -> DeviceBuilder {
        DeviceBuilder::new()
    }

    /// Open a device from an fd of `/dev/net/tun` already attached to an
    /// interface (passed by another process, or Android's VpnService).
    ///
    /// Its flags are learnt with `TUNGETIFF`, packet information with
    /// rtnetlink (assumed off when netlink is out of reach). The kernel
    /// cannot report the
    /// offload mask, so a device with `IFF_VNET_HDR` takes it from
    /// `offload` (what the fd's owner set with `TUNSETOFFLOAD`). The netlink
    /// socket for configuration is opened in the device's namespace when
    /// the caller may (`TUNGETDEVNETNS` needs CAP_NET_ADMIN there);
    /// without it, I/O works and configuration calls report
    /// [`ConfigError::NoControl`] (the MTU still answers, by ioctl).
    ///
    /// The fd is made non-blocking (`FIONBIO`), which the process that
    /// shares its open file sees too; a queue in blocking mode waits with
    /// `poll(2)` instead.
    pub fn from_fd(fd: OwnedFd, offload: OffloadFlags) -> Result<Self> {
        let (name, got) = tun_sys::get_iff(fd.as_fd())?;
        // Packet information is read from netlink below (TUNGETIFF's bit
        // for it means IFF_NOFILTER); persistence and a detached queue are
        // states, not flags to open with.
        let mut flags = got & CHECKED_FLAGS;
        let (offload, vnet_len) = if flags.contains(TunFlags::VNET_HDR) {
            let size = tun_sys::get_vnet_hdr_size(fd.as_fd())
                .map_err(|e| Error::Sys(e.with_interface(name)))?;
            // Without the tunnel offload named, either size this crate
            // reads and writes will do (the mask given may be unknown).
            let expected =
                if offload.contains(OffloadFlags::UDP_TUNNEL_GSO) || size == TUNNEL_VNET_HDR_SIZE {
                    TUNNEL_VNET_HDR_SIZE
                } else {
                    tun_sys::DEFAULT_VNET_HDR_SIZE
                };
            if size != expected {
                return Err(Error::config(
                    Some(name),
                    ConfigError::VnetHdrSize { size, expected },
                ));
            }
            (offload, expected as usize)
        } else {
            (OffloadFlags::empty(), 0)
        };
        rustix::io::ioctl_fionbio(&fd, true)
            .map_err(|e| Error::syscall(Syscall::Fionbio, Some(name), e))?;
        let text = name.to_string();
        let control = tun_sys::get_dev_netns(fd.as_fd()).ok().and_then(|ns| {
            NetNs::from_fd(ns)
                .run(|| {
                    let mut nl = Netlink::open()?;
                    let info = nl.link_by_name(&text)?;
                    Ok((nl, info))
                })
                .ok()
        });
        let (nl, index, mtu) = match control {
            Some((nl, info)) => {
                if info.tun.as_ref().is_none_or(|t| !t.pi) {
                    flags |= TunFlags::NO_PI;
                }
                (Some(nl), info.index, info.mtu)
            }
            None => {
                // Without netlink, packet information cannot be learnt:
                // assume it off, as every VPN framework opens its devices.
                flags |= TunFlags::NO_PI;
                let sock = tun_sys::ControlSocket::new()?;
                let index = sock.index(&name).unwrap_or(0);
                let mtu = sock.mtu(&name).unwrap_or(1500);
                (None, index, mtu)
            }
        };
        let tun_fd = fd
            .try_clone()
            .map_err(|e| Error::syscall_io(Syscall::Dup, Some(name), &e, libc::EMFILE))?;
        let negotiated = Negotiated { offload, vnet_len };
        let iface = Interface::new(tun_fd, name, index, nl, flags, negotiated, mtu);
        let queue = Queue::new(fd, iface.clone(), false).sharing_control();
        Ok(Device {
            iface,
            queues: vec![queue],
        })
    }

    /// The interface: configuration and negotiated state.
    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    /// The first queue.
    pub fn first_queue(&self) -> &Queue {
        &self.queues[0]
    }

    /// Queue `i`, if open.
    pub fn queue(&self, i: usize) -> Option<&Queue> {
        self.queues.get(i)
    }

    /// All queues opened so far by this value.
    pub fn queues(&self) -> &[Queue] {
        &self.queues
    }

    /// The queues, each to move to its own thread (they keep the interface
    /// alive; reach it through [`Queue::interface`]).
    pub fn into_queues(self) -> Vec<Queue> {
        self.queues
    }

    /// Open one more queue of a multi-queue device (in the device's
    /// namespace, wherever the caller is).
    pub fn open_queue(&self) -> Result<Queue> {
        Queue::open(&self.iface, self.queues[0].is_nonblocking())
    }

    /// Open one more queue and keep it in this device.
    pub fn add_queue(&mut self) -> Result<&Queue> {
        let q = self.open_queue()?;
        self.queues.push(q);
        Ok(&self.queues[self.queues.len() - 1])
    }
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.queues[0].as_fd()
    }
}

impl AsRawFd for Device {
    fn as_raw_fd(&self) -> RawFd {
        self.queues[0].as_raw_fd()
    }
}

impl Device {
    /// Move the queues' fds out, in order (the device stays as long as
    /// they are open, or forever when persistent). The fds are
    /// non-blocking.
    pub fn into_fds(self) -> Vec<OwnedFd> {
        self.queues.into_iter().map(Queue::into_fd).collect()
    }
}

impl From<Device> for Vec<OwnedFd> {
    fn from(d: Device) -> Self {
        d.into_fds()
    }
}

impl std::os::fd::IntoRawFd for Device {
    /// The first queue's fd; other queues of this value are closed.
    fn into_raw_fd(self) -> RawFd {
        let mut queues = self.queues;
        let first = queues.swap_remove(0);
        drop(queues);
        first.into_raw_fd()
    }
}

impl TryFrom<OwnedFd> for Device {
    type Error = Error;
    /// [`Device::from_fd`] with no offloads known (a device without
    /// `IFF_VNET_HDR`, or one whose mask the caller did not set).
    fn try_from(fd: OwnedFd) -> Result<Self> {
        Device::from_fd(fd, OffloadFlags::empty())
    }
}

impl Device {
    /// [`Queue::set_nonblocking`] on every queue of this value.
    pub fn set_nonblocking(&self, on: bool) {
        for q in &self.queues {
            q.set_nonblocking(on);
        }
    }
}
