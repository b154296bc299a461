//! `tun create` and `tun delete`: persistent devices, made with
//! tun-device's builder (`TUNSETIFF` with `IFF_TUN_EXCL`, then
//! `TUNSETPERSIST`) and removed over rtnetlink (`RTM_DELLINK`).

use clap::Args;
use tun_device::ipnet::IpNet;
use tun_device::{Device, Mode};

use crate::error::{CliError, Result};
use crate::show;
use crate::util;

/// Arguments of `tun create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Interface name, or a template such as `tun%d`.
    #[arg(value_parser = crate::names::parse_name)]
    pub name: String,
    /// A TAP device (Ethernet frames) instead of TUN (IP packets); with
    /// `--offload` it carries virtio-net headers too.
    #[arg(long, conflicts_with = "mode")]
    pub tap: bool,
    /// `tun` or `tap`, as `ip tuntap add ... mode MODE` takes it.
    #[arg(long, value_parser = ["tun", "tap"])]
    pub mode: Option<String>,
    /// Multi-queue (IFF_MULTI_QUEUE): several processes or threads can open it.
    #[arg(long, alias = "multi_queue")]
    pub multi_queue: bool,
    /// Packets carry the 4-byte packet-information header (no IFF_NO_PI),
    /// as `ip tuntap add ... pi`.
    #[arg(long)]
    pub pi: bool,
    /// Accepted for `ip tuntap add ... one_queue`: the kernel keeps
    /// IFF_ONE_QUEUE only for compatibility and ignores it (drivers/net/tun.c).
    #[arg(long, alias = "one_queue")]
    pub one_queue: bool,
    /// Offload: virtio-net headers, checksum offload, TSO and (Linux 6.2+)
    /// USO, so readers get super-packets of up to 64 KiB.
    #[arg(long)]
    pub offload: bool,
    /// The user (name or uid) that may open the device without CAP_NET_ADMIN.
    #[arg(long, visible_alias = "user", value_name = "USER")]
    pub owner: Option<String>,
    /// The group (name or gid) whose members may open the device without CAP_NET_ADMIN.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// MTU in bytes.
    #[arg(long, value_name = "N")]
    pub mtu: Option<u32>,
    /// An address with its prefix, such as 10.0.0.1/24 or fd00::1/64 (repeatable).
    #[arg(long = "addr", value_name = "CIDR")]
    pub addrs: Vec<IpNet>,
    /// Transmit queue length in packets.
    #[arg(long, value_name = "N")]
    pub txqueuelen: Option<u32>,
    /// Bring the interface up (it is left down otherwise, as `ip tuntap add` does).
    #[arg(long)]
    pub up: bool,
    /// Create it in this network namespace (a name from `ip netns` or a path).
    #[arg(long, value_name = "NAME|PATH")]
    pub netns: Option<String>,
}

/// Arguments of `tun delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The persistent TUN/TAP device to remove.
    #[arg(value_parser = crate::names::parse_existing)]
    pub name: String,
    /// Look in this network namespace (a name from `ip netns` or a path).
    #[arg(long, value_name = "NAME|PATH")]
    pub netns: Option<String>,
}

/// Run `tun create`.
pub fn create(args: &CreateArgs, json: bool) -> Result<()> {
    check_ipv6_mtu(&args.addrs, args.mtu)?;
    let owner = args.owner.as_deref().map(util::parse_user).transpose()?;
    let group = args.group.as_deref().map(util::parse_group).transpose()?;
    let ns = args.netns.as_deref().map(util::open_netns).transpose()?;
    let template = args.name.contains('%');
    let context = format!("create {}", args.name);

    // A clear message for a name in use (IFF_TUN_EXCL below closes the race).
    if !template {
        util::in_netns(ns.as_ref(), || {
            let mut nl = util::netlink()?;
            match nl.link_by_name(&args.name) {
                Ok(link) => Err(CliError::refused(
                    format!(
                        "create {}: an interface of that name exists ({})",
                        args.name,
                        match (&link.tun, &link.kind) {
                            (Some(t), _) if t.persist => "a persistent TUN/TAP device".to_string(),
                            (Some(_), _) => "a TUN/TAP device held open by a process".to_string(),
                            (None, Some(k)) => format!("a {k} device"),
                            (None, None) => "a kernel device".to_string(),
                        }
                    ),
                    "pick another name, or `tun delete` it first",
                )),
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(CliError::netlink(format!("look up {}", args.name), e)),
            }
        })?;
    }

    let mut b = Device::builder()
        .name(args.name.clone())
        .mode(if args.tap || args.mode.as_deref() == Some("tap") {
            Mode::Tap
        } else {
            Mode::Tun
        })
        .multi_queue(args.multi_queue)
        .packet_information(args.pi)
        .offload(args.offload)
        .persist(true)
        .exclusive(true)
        .up(args.up);
    if let Some(uid) = owner {
        b = b.owner(uid);
    }
    if let Some(gid) = group {
        b = b.group(gid);
    }
    if let Some(mtu) = args.mtu {
        b = b.mtu(mtu);
    }
    if let Some(len) = args.txqueuelen {
        b = b.tx_queue_len(len);
    }
    for a in &args.addrs {
        b = b.address(*a);
    }
    if let Some(ns) = &ns {
        b = b.netns(
            ns.try_clone()
                .map_err(|e| CliError::device(context.clone(), e))?,
        );
    }
    let dev = b
        .build()
        .map_err(|e| CliError::device(context.clone(), e))?;
    let name = dev
        .interface()
        .name()
        .map_err(|e| CliError::device(context.clone(), e))?
        .to_string();
    drop(dev); // persistent: the device stays

    let record = util::in_netns(ns.as_ref(), || {
        let mut nl = util::netlink()?;
        let link = show::tun_link(&mut nl, &name, "create")?;
        show::record(&mut nl, &link, false)
    })?;
    match record {
        Some(r) if json => util::out_json(&r),
        Some(r) => {
            util::out(format!("created {} {name}", r.linkinfo.info_data.kind));
            util::out(show::render(&r));
        }
        None => util::out(format!("created {name}")),
    }
    Ok(())
}

/// IPv6 needs an MTU of at least 1280 (RFC 8200, section 5): on a
/// device with less the kernel turns IPv6 off and refuses its addresses
/// with a bare EINVAL. Say so before anything is made.
pub fn check_ipv6_mtu(addrs: &[IpNet], mtu: Option<u32>) -> Result<()> {
    match (mtu, addrs.iter().find(|a| a.addr().is_ipv6())) {
        (Some(m), Some(a)) if m < 1280 => Err(CliError::Usage(format!(
            "--addr {a} with --mtu {m}: IPv6 needs an MTU of at least 1280 (RFC 8200), and \
             the kernel turns IPv6 off on a device with less; raise the MTU or give only \
             IPv4 addresses"
        ))),
        _ => Ok(()),
    }
}

/// Run `tun delete`.
pub fn delete(args: &DeleteArgs, json: bool) -> Result<()> {
    let ns = args.netns.as_deref().map(util::open_netns).transpose()?;
    let name = args.name.as_str();
    let holders = util::in_netns(ns.as_ref(), || {
        let mut nl = util::netlink()?;
        let link = show::tun_link(&mut nl, name, "delete")?;
        let holders = util::holders(name);
        if link.tun.is_some_and(|t| !t.persist) {
            let who = holders
                .iter()
                .map(|h| format!("{} ({})", h.pid, h.comm))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(CliError::refused(
                format!(
                    "delete {name}: not a persistent device: it belongs to the process that \
                     opened it{}",
                    if who.is_empty() {
                        String::new()
                    } else {
                        format!(" ({who})")
                    }
                ),
                "it goes away when that process closes it; stop the process instead",
            ));
        }
        nl.delete_link(link.index)
            .map_err(|e| CliError::netlink(format!("delete {name}"), e))?;
        Ok(holders)
    })?;
    if json {
        util::out_json(&serde_json::json!({
            "deleted": name,
            "processes": holders,
        }));
    } else if holders.is_empty() {
        util::out(format!("deleted {name}"));
    } else {
        util::out(format!(
            "deleted {name} (it was open in {}; their queues now report the device gone)",
            holders
                .iter()
                .map(|h| format!("{} ({})", h.pid, h.comm))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}
