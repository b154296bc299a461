//! The interface behind a device's queues: its configuration (addresses,
//! MTU, MAC, up/down, name, transmit queue length, owner, group, persist)
//! and what was negotiated when it was opened (flags, offloads).
//!
//! Configuration goes over rtnetlink by interface **index**, from a socket
//! opened in the device's own network namespace (found with
//! `TUNGETDEVNETNS`), so it keeps working after a rename and, once
//! [`Interface::move_to_netns`] reopened the socket, after a move. Every
//! request is acknowledged; see [`crate::netlink`].

use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ipnet::IpNet;
use tun_sys::{InterfaceFlags, InterfaceName, OffloadFlags, TunFlags};

use crate::error::{ConfigError, Error, Result, Syscall};
use crate::netlink::{Address, AddressOptions, LinkInfo, Netlink, TunInfo};
use crate::netns::NetNs;

/// Counters of a device, shared by its queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceStats {
    /// Coalesced writes the kernel refused with EINVAL and that were
    /// written again as their segments.
    pub gso_write_fallbacks: u64,
    /// Whether coalescing is still on (it is switched off by the first
    /// refused coalesced write, or by [`Interface::set_coalescing`]).
    pub coalescing: bool,
    /// Packets the kernel handed over that did not match their virtio
    /// header and were dropped.
    pub rx_invalid: u64,
}

pub(crate) struct Control {
    nl: Option<Netlink>,
    /// The namespace `nl` was opened in (`st_dev`, `st_ino` of its nsfs
    /// file), to see that the device moved.
    ns: Option<(u64, u64)>,
    index: u32,
}

pub(crate) struct Shared {
    control: Mutex<Control>,
    /// A duplicate of the first queue's fd: the TUN ioctls of the device
    /// (persist, owner, group, TUNGETIFF) go through it.
    tun_fd: OwnedFd,
    name: Mutex<InterfaceName>,
    flags: TunFlags,
    offload: OffloadFlags,
    /// Bytes of virtio header on the wire (0, 10, 24), as the kernel
    /// was set (`TUNSETVNETHDRSZ`) or reported it.
    vnet_len: usize,
    pub(crate) coalesce_tcp: AtomicBool,
    pub(crate) coalesce_udp: AtomicBool,
    pub(crate) coalesce_tunnel: AtomicBool,
    pub(crate) gso_fallbacks: AtomicU64,
    pub(crate) rx_invalid: AtomicU64,
    /// The MTU as last set or read; sizes the zero-copy part of a read.
    pub(crate) mtu_hint: AtomicU32,
    /// The queue whose fd `tun_fd` duplicates was dropped and detached
    /// (multi-queue): the fd no longer names the device.
    pub(crate) detached: AtomicBool,
}

/// What the offload negotiation settled: the offloads granted and the
/// virtio header size they need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Negotiated {
    pub(crate) offload: OffloadFlags,
    /// Bytes of virtio header (10, or 24 with the UDP-tunnel offload).
    pub(crate) vnet_len: usize,
}

/// The interface of a device: configuration and negotiated state, shared by
/// every queue of the device (cheap to clone).
///
/// The interface exists as long as any of its queues or `Interface` values
/// is alive (or forever, when persistent).
#[derive(Clone)]
pub struct Interface {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interface")
            .field("name", &self.cached_name())
            .field("index", &self.index())
            .field("flags", &self.shared.flags)
            .field("offload", &self.shared.offload)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values stay consistent whatever a panicking holder did.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Interface {
    pub(crate) fn new(
        tun_fd: OwnedFd,
        name: InterfaceName,
        index: u32,
        nl: Option<Netlink>,
        flags: TunFlags,
        Negotiated { offload, vnet_len }: Negotiated,
        mtu: u32,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                control: Mutex::new(Control {
                    nl,
                    ns: None,
                    index,
                }),
                tun_fd,
                name: Mutex::new(name),
                flags,
                offload,
                vnet_len: if flags.contains(TunFlags::VNET_HDR) {
                    vnet_len
                } else {
                    0
                },
                coalesce_tcp: AtomicBool::new(!offload.is_empty()),
                coalesce_udp: AtomicBool::new(!offload.is_empty()),
                // TUN refuses coalesced tunnel writes (see
                // `set_tunnel_coalescing`): on for TAP alone.
                coalesce_tunnel: AtomicBool::new(
                    offload.contains(OffloadFlags::UDP_TUNNEL_GSO) && flags.contains(TunFlags::TAP),
                ),
                gso_fallbacks: AtomicU64::new(0),
                rx_invalid: AtomicU64::new(0),
                mtu_hint: AtomicU32::new(mtu),
                detached: AtomicBool::new(false),
            }),
        }
    }

    /// The name as last known (for error messages; no syscall).
    pub(crate) fn cached_name(&self) -> InterfaceName {
        *lock(&self.shared.name)
    }

    /// Run a netlink request on the interface the queue's fd belongs to.
    ///
    /// The fd is the identity: its name (`TUNGETIFF`) and namespace
    /// (`TUNGETDEVNETNS`) are read from it before every request, and the
    /// index is looked up by that name in that namespace, so a request
    /// never reaches another interface that took the device's old name or
    /// index after a move or rename (by anyone).
    fn with_nl<T>(
        &self,
        mut f: impl FnMut(&mut Netlink, u32) -> Result<T, crate::netlink::NetlinkError>,
    ) -> Result<T> {
        let mut c = lock(&self.shared.control);
        let mut attempts = 0;
        loop {
            let (name, index) = self.locate(&mut c)?;
            let Some(nl) = c.nl.as_mut() else {
                return Err(Error::config(Some(name), ConfigError::NoControl));
            };
            match f(nl, index) {
                // Renamed or moved between the look-up and the request:
                // look again.
                Err(e) if e.errno() == libc::ENODEV && attempts == 0 => attempts += 1,
                other => return other.map_err(|e| Error::Netlink(e.with_interface(name))),
            }
        }
    }

    /// Find the interface through the fd: its name and namespace now, a
    /// netlink socket there (reopened after a move), and its index.
    fn locate(&self, c: &mut Control) -> Result<(InterfaceName, u32)> {
        let fd = self.shared.tun_fd.as_fd();
        let cached = self.cached_name();
        let name = match tun_sys::get_iff(fd) {
            Ok((name, _)) => name,
            // A detached queue's fd answers EBADFD as a deleted device's
            // does: tell them apart.
            Err(_) if self.shared.detached.load(Ordering::Relaxed) => {
                return Err(Error::config(Some(cached), ConfigError::NoQueue));
            }
            Err(e) => return Err(Error::Sys(e.with_interface(cached))),
        };
        *lock(&self.shared.name) = name;
        let ns = match tun_sys::get_dev_netns(fd) {
            Ok(ns) => ns,
            // TUNGETDEVNETNS needs CAP_NET_ADMIN in the device's namespace.
            Err(e) if e.errno() == libc::EPERM => {
                return Err(Error::config(Some(name), ConfigError::NoControl));
            }
            Err(e) => return Err(Error::Sys(e.with_interface(name))),
        };
        // `st_dev` and `st_ino` are narrower than u64 on some architectures.
        #[allow(clippy::unnecessary_cast)]
        let id = rustix::fs::fstat(&ns)
            .map(|st| (st.st_dev as u64, st.st_ino as u64))
            .map_err(|e| Error::syscall(Syscall::Fstat, Some(name), e))?;
        if c.nl.is_none() || c.ns != Some(id) {
            let nl = NetNs::from_fd(ns).run(|| Ok(Netlink::open()?))?;
            c.nl = Some(nl);
            c.ns = Some(id);
        }
        let text = name.to_string();
        let Some(nl) = c.nl.as_mut() else {
            return Err(Error::config(Some(name), ConfigError::NoControl));
        };
        let info = nl
            .link_by_name(&text)
            .map_err(|e| Error::Netlink(e.with_interface(name)))?;
        // The kernel also matches alternative names: the link must carry
        // this name as its own, and be a TUN/TAP.
        if info.name != text || info.tun.is_none() {
            return Err(Error::NotTun {
                interface: name,
                kind: info.kind,
            });
        }
        c.index = info.index;
        Ok((name, info.index))
    }

    /// The interface's current name, from the kernel (`TUNGETIFF`): right
    /// after a rename by anyone.
    pub fn name(&self) -> Result<InterfaceName> {
        let (name, _) = tun_sys::get_iff(self.shared.tun_fd.as_fd())?;
        *lock(&self.shared.name) = name;
        Ok(name)
    }

    /// The interface index inside the device's network namespace.
    pub fn index(&self) -> u32 {
        lock(&self.shared.control).index
    }

    /// The flags the device was opened with (`TUN`/`TAP`, `NO_PI`,
    /// `VNET_HDR`, `MULTI_QUEUE`, `NAPI`).
    pub fn tun_flags(&self) -> TunFlags {
        self.shared.flags
    }

    /// Whether this is a TAP (layer 2) device.
    pub fn is_tap(&self) -> bool {
        self.shared.flags.contains(TunFlags::TAP)
    }

    /// The offloads the kernel granted (`TUNSETOFFLOAD`); empty when
    /// offload is off. USO is absent on kernels before 6.2, the UDP-tunnel
    /// offload ([`OffloadFlags::UDP_TUNNEL_GSO`] and
    /// [`OffloadFlags::UDP_TUNNEL_GSO_CSUM`]) before 6.17 or when the
    /// builder turned it off.
    pub fn offloads(&self) -> OffloadFlags {
        self.shared.offload
    }

    /// Bytes of virtio header in front of every packet on the wire: 0
    /// without offload, 10 (`struct virtio_net_hdr`), or 24
    /// (`struct virtio_net_hdr_v1_hash_tunnel`) with the UDP-tunnel
    /// offload, whose super-packets need the tunnel offsets.
    pub fn vnet_hdr_len(&self) -> usize {
        self.shared.vnet_len
    }

    /// Whether packets carry a virtio-net header on the wire.
    pub fn has_vnet_hdr(&self) -> bool {
        self.shared.flags.contains(TunFlags::VNET_HDR)
    }

    /// Whether packets carry the 4-byte packet-information header.
    pub fn has_packet_info(&self) -> bool {
        !self.shared.flags.contains(TunFlags::NO_PI)
    }

    /// Whether batched sends coalesce TCP or UDP (offload on, and no
    /// coalesced write refused so far).
    pub fn coalescing(&self) -> bool {
        self.tcp_coalescing() || self.udp_coalescing()
    }

    /// Whether batched sends coalesce TCP segments.
    pub fn tcp_coalescing(&self) -> bool {
        self.shared.coalesce_tcp.load(Ordering::Relaxed)
    }

    /// Whether batched sends coalesce UDP datagrams (also needs USO).
    pub fn udp_coalescing(&self) -> bool {
        self.shared.coalesce_udp.load(Ordering::Relaxed)
    }

    /// Turn coalescing of batched sends on or off, TCP and UDP alike (on
    /// needs offload).
    pub fn set_coalescing(&self, on: bool) {
        self.set_tcp_coalescing(on);
        self.set_udp_coalescing(on);
    }

    /// Turn coalescing of TCP segments on or off (on needs offload).
    pub fn set_tcp_coalescing(&self, on: bool) {
        let on = on && !self.shared.offload.is_empty();
        self.shared.coalesce_tcp.store(on, Ordering::Relaxed);
    }

    /// Turn coalescing of UDP datagrams on or off (on needs offload and
    /// USO). Kernels up to 6.8 silently drop UDP GRO packets that enter a
    /// VXLAN or Geneve device: turn UDP coalescing off alone there.
    pub fn set_udp_coalescing(&self, on: bool) {
        let on = on && !self.shared.offload.is_empty();
        self.shared.coalesce_udp.store(on, Ordering::Relaxed);
    }

    /// Whether batched sends coalesce the VXLAN and Geneve datagrams of a
    /// tunnel flow into UDP-tunnel super-packets
    /// ([`tun_offload::coalesce_tunnel`]). On by default on a TAP whose
    /// tunnel offload was granted; off on a TUN, which refuses them.
    pub fn tunnel_coalescing(&self) -> bool {
        self.shared.coalesce_tunnel.load(Ordering::Relaxed)
    }

    /// Turn coalescing of tunnel datagrams on or off (on needs the
    /// UDP-tunnel offload). Linux 6.18's TUN devices refuse every such
    /// write with EINVAL (`virtio_net_hdr_tnl_to_skb` counts an Ethernet
    /// header in the outer offset even on a TUN): turned on there, the
    /// first refused write turns it off again and its datagrams are
    /// written one by one (counted in
    /// [`DeviceStats::gso_write_fallbacks`]), nothing lost.
    pub fn set_tunnel_coalescing(&self, on: bool) {
        let on = on && self.shared.offload.contains(OffloadFlags::UDP_TUNNEL_GSO);
        self.shared.coalesce_tunnel.store(on, Ordering::Relaxed);
    }

    /// The device's counters.
    pub fn stats(&self) -> DeviceStats {
        DeviceStats {
            gso_write_fallbacks: self.shared.gso_fallbacks.load(Ordering::Relaxed),
            coalescing: self.coalescing(),
            rx_invalid: self.shared.rx_invalid.load(Ordering::Relaxed),
        }
    }

    /// Everything netlink reports about the link (`RTM_GETLINK`), the tun
    /// link info included.
    pub fn link_info(&self) -> Result<LinkInfo> {
        self.with_nl(|nl, index| nl.link(index))
    }

    /// The tun driver's view: type, pi, vnet_hdr, multi-queue, queue
    /// counts, persist, owner, group (`IFLA_TUN_*`).
    pub fn tun_info(&self) -> Result<TunInfo> {
        let info = self.link_info()?;
        info.tun.ok_or_else(|| Error::NotTun {
            interface: self.cached_name(),
            kind: info.kind,
        })
    }

    /// The MTU.
    pub fn mtu(&self) -> Result<u32> {
        let mtu = match self.link_info() {
            Ok(info) => info.mtu,
            // Without a netlink socket (a device from an fd of a less
            // privileged process) the classic ioctl still answers.
            Err(Error::Config {
                error: ConfigError::NoControl,
                ..
            }) => {
                let name = self.name()?;
                tun_sys::ControlSocket::new()?.mtu(&name)?
            }
            Err(e) => return Err(e),
        };
        self.shared.mtu_hint.store(mtu, Ordering::Relaxed);
        Ok(mtu)
    }

    /// Set the MTU.
    pub fn set_mtu(&self, mtu: u32) -> Result<()> {
        self.with_nl(|nl, index| nl.set_mtu(index, mtu))?;
        self.shared.mtu_hint.store(mtu, Ordering::Relaxed);
        Ok(())
    }

    /// The interface flags (`IFF_UP`, `IFF_RUNNING`, `IFF_LOWER_UP`, ...),
    /// all 32 bits of rtnetlink's `ifi_flags`.
    pub fn flags(&self) -> Result<InterfaceFlags> {
        let info = self.link_info()?;
        Ok(InterfaceFlags::from_bits_retain(info.flags))
    }

    /// Administratively up.
    pub fn is_up(&self) -> Result<bool> {
        Ok(self.flags()?.contains(InterfaceFlags::UP))
    }

    /// Up with a carrier (`IFF_RUNNING`): the kernel turns the carrier of a
    /// TUN/TAP on while any of its queues is attached, and an [`Interface`]
    /// value (which holds a duplicate of the first queue's fd) keeps it on
    /// after the queues themselves were dropped.
    pub fn is_running(&self) -> Result<bool> {
        Ok(self.flags()?.contains(InterfaceFlags::RUNNING))
    }

    /// Bring the interface up or down.
    pub fn set_up(&self, up: bool) -> Result<()> {
        self.with_nl(|nl, index| nl.set_up(index, up))
    }

    /// The Ethernet address (TAP); `None` for TUN.
    pub fn mac(&self) -> Result<Option<[u8; 6]>> {
        Ok(self.link_info()?.mac)
    }

    /// Set the Ethernet address of a TAP device.
    pub fn set_mac(&self, mac: [u8; 6]) -> Result<()> {
        if !self.is_tap() {
            return Err(Error::config(
                Some(self.cached_name()),
                ConfigError::MacOnTun,
            ));
        }
        self.with_nl(|nl, index| nl.set_mac(index, mac))
    }

    /// The transmit queue length in packets.
    pub fn tx_queue_len(&self) -> Result<u32> {
        Ok(self.link_info()?.tx_queue_len)
    }

    /// Set the transmit queue length in packets.
    pub fn set_tx_queue_len(&self, len: u32) -> Result<()> {
        self.with_nl(|nl, index| nl.set_tx_queue_len(index, len))
    }

    /// Rename the interface. Kernels before 6.2 refuse while it is up
    /// (EBUSY); later ones rename an up interface (`dev_change_name()`,
    /// net/core/dev.c). A name in use is EEXIST.
    pub fn set_name(&self, name: &InterfaceName) -> Result<()> {
        let text = name.to_string();
        self.with_nl(|nl, index| nl.set_name(index, &text))?;
        *lock(&self.shared.name) = *name;
        Ok(())
    }

    /// The addresses with their prefixes (and IPv4 peers).
    pub fn addresses(&self) -> Result<Vec<Address>> {
        self.with_nl(|nl, index| nl.addresses(index))
    }

    /// Add an address with its prefix; adding one that exists is
    /// [`ErrorKind::AlreadyExists`](crate::ErrorKind::AlreadyExists).
    pub fn add_address(&self, addr: IpNet) -> Result<()> {
        self.add_address_with(addr, AddressOptions::new())
    }

    /// Add an address with a peer, an IPv4 broadcast address or without
    /// duplicate address detection, as `options` say.
    pub fn add_address_with(&self, addr: IpNet, options: AddressOptions) -> Result<()> {
        if let Some(peer) = options.peer {
            if addr.addr().is_ipv4() != peer.is_ipv4() {
                return Err(Error::config(
                    Some(self.cached_name()),
                    ConfigError::PeerFamilyMismatch { addr, peer },
                ));
            }
        }
        self.with_nl(|nl, index| nl.add_address_with(index, addr, &options))
    }

    /// Wait up to `timeout` until no address of the interface is tentative
    /// (IPv6 duplicate address detection, a second or more after an address
    /// was added or the link came up, during which packets to and from it
    /// are dropped); returns whether that happened in time. An address
    /// whose detection failed is [`ErrorKind::AlreadyExists`](crate::ErrorKind::AlreadyExists).
    pub fn wait_for_dad(&self, timeout: std::time::Duration) -> Result<bool> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let addrs = self.addresses()?;
            if let Some(a) = addrs.iter().find(|a| a.is_dad_failed()) {
                return Err(Error::config(
                    Some(self.cached_name()),
                    ConfigError::DadFailed { addr: a.addr },
                ));
            }
            if !addrs.iter().any(Address::is_tentative) {
                return Ok(true);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Add a point-to-point address: local `addr` with its prefix, and the
    /// `peer` at the other end.
    pub fn add_address_with_peer(&self, addr: IpNet, peer: IpAddr) -> Result<()> {
        self.add_address_with(addr, AddressOptions::new().peer(peer))
    }

    /// Remove an address.
    pub fn remove_address(&self, addr: IpNet) -> Result<()> {
        self.with_nl(|nl, index| nl.remove_address(index, addr))
    }

    /// Whether the device outlives its queues (`TUNGETIFF`).
    pub fn is_persistent(&self) -> Result<bool> {
        let (_, flags) = tun_sys::get_iff(self.shared.tun_fd.as_fd())?;
        Ok(flags.contains(TunFlags::PERSIST))
    }

    /// Keep the device after its last queue closes, or stop keeping it.
    pub fn set_persist(&self, persist: bool) -> Result<()> {
        tun_sys::set_persist(self.shared.tun_fd.as_fd(), persist)
            .map_err(|e| Error::Sys(e.with_interface(self.cached_name())))
    }

    /// Let `uid` attach without CAP_NET_ADMIN.
    pub fn set_owner(&self, uid: u32) -> Result<()> {
        tun_sys::set_owner(self.shared.tun_fd.as_fd(), uid)
            .map_err(|e| Error::Sys(e.with_interface(self.cached_name())))
    }

    /// Let members of `gid` attach without CAP_NET_ADMIN.
    pub fn set_group(&self, gid: u32) -> Result<()> {
        tun_sys::set_group(self.shared.tun_fd.as_fd(), gid)
            .map_err(|e| Error::Sys(e.with_interface(self.cached_name())))
    }

    /// The owner uid, if one is set.
    pub fn owner(&self) -> Result<Option<u32>> {
        Ok(self.tun_info()?.owner)
    }

    /// The owner gid, if one is set.
    pub fn group(&self) -> Result<Option<u32>> {
        Ok(self.tun_info()?.group)
    }

    /// The network namespace the device lives in (`TUNGETDEVNETNS`).
    pub fn netns(&self) -> Result<NetNs> {
        let fd = tun_sys::get_dev_netns(self.shared.tun_fd.as_fd())
            .map_err(|e| e.with_interface(self.cached_name()))?;
        Ok(NetNs::from_fd(fd))
    }

    /// Move the interface into `ns`. Its queues keep working; its index
    /// may change (read it again with [`Self::index`]); configuration
    /// follows it there. Addresses are flushed by the kernel on a move.
    pub fn move_to_netns(&self, ns: &NetNs) -> Result<()> {
        self.with_nl(|nl, index| nl.move_to_netns(index, ns.as_fd()))?;
        // The next request finds the device where it went (and opens a
        // socket there); the index too, now.
        let mut c = lock(&self.shared.control);
        self.locate(&mut c).map(drop)
    }

    /// Delete the interface now (`RTM_DELLINK`), persistent or not. Queues
    /// still open see [`ErrorKind::DeviceGone`](crate::ErrorKind::DeviceGone).
    pub fn delete(&self) -> Result<()> {
        self.with_nl(|nl, index| nl.delete_link(index))
    }

    pub(crate) fn mtu_hint(&self) -> usize {
        self.shared.mtu_hint.load(Ordering::Relaxed) as usize
    }
}
