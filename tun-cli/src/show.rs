//! `tun show`: every TUN/TAP device of a namespace, the way `ip -d link
//! show` and `ip tuntap show` present them, read over rtnetlink
//! (`IFLA_TUN_*` link info, addresses), with the offload features the
//! kernel holds for the device (from `ethtool -k`, when installed) and,
//! with `-d`, the processes holding it open (from /proc/*/fdinfo).

use clap::Args;
use serde::Serialize;
use tun_device::netlink::{Address, LinkInfo, Netlink};

use crate::error::{CliError, Result};
use crate::util::{self, Holder};

/// Arguments of `tun show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Only this device.
    pub name: Option<String>,
    /// Details: also the processes holding each device open.
    #[arg(short = 'd', long = "details")]
    pub details: bool,
    /// Look in this network namespace (a name from `ip netns` or a path).
    #[arg(long, value_name = "NAME|PATH")]
    pub netns: Option<String>,
}

/// One address of a device.
#[derive(Debug, Clone, Serialize)]
pub struct AddrRecord {
    /// `inet` or `inet6`.
    pub family: &'static str,
    /// Address with prefix length.
    pub local: String,
    /// Point-to-point peer, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

/// One TUN/TAP device as `show` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRecord {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// `tun` or `tap`.
    pub kind: &'static str,
    /// Interface flags (`UP`, `POINTOPOINT`, ...), as `ip link` prints them.
    pub flags: Vec<&'static str>,
    /// MTU.
    pub mtu: u32,
    /// Transmit queue length.
    pub qlen: u32,
    /// Operational state (`UP`, `DOWN`, `UNKNOWN`, ...).
    pub state: &'static str,
    /// Ethernet address (TAP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Packet-information header on.
    pub pi: bool,
    /// Virtio-net header on (offload).
    pub vnet_hdr: bool,
    /// Multi-queue.
    pub multi_queue: bool,
    /// Attached queues (reported for multi-queue devices).
    pub numqueues: Option<u32>,
    /// Disabled queues (reported for multi-queue devices).
    pub numdisabled: Option<u32>,
    /// Persistent.
    pub persist: bool,
    /// Owner uid.
    pub user: Option<u32>,
    /// Owner's name.
    pub user_name: Option<String>,
    /// Group gid.
    pub group: Option<u32>,
    /// Group's name.
    pub group_name: Option<String>,
    /// Addresses.
    pub addresses: Vec<AddrRecord>,
    /// Offload features the kernel holds for the device (`csum`, `tso4`,
    /// `tso6`, `tso_ecn`, `uso`), `None` when ethtool is not installed.
    pub offloads: Option<Vec<&'static str>>,
    /// Processes holding it open (with `-d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<Vec<Holder>>,
}

const IFF_FLAGS: [(u32, &str); 10] = [
    (0x2, "BROADCAST"),
    (0x8, "LOOPBACK"),
    (0x10, "POINTOPOINT"),
    (0x1000, "MULTICAST"),
    (0x80, "NOARP"),
    (0x200, "ALLMULTI"),
    (0x100, "PROMISC"),
    (0x1, "UP"),
    (0x10000, "LOWER_UP"),
    (0x20000, "DORMANT"),
];

fn flag_names(flags: u32) -> Vec<&'static str> {
    let mut v = Vec::new();
    // ip link: NO-CARRIER when up but not running.
    if flags & 0x1 != 0 && flags & 0x40 == 0 {
        v.push("NO-CARRIER");
    }
    v.extend(
        IFF_FLAGS
            .iter()
            .filter(|(bit, _)| flags & bit != 0)
            .map(|(_, n)| *n),
    );
    v
}

fn oper_state(s: u8) -> &'static str {
    match s {
        1 => "NOTPRESENT",
        2 => "DOWN",
        3 => "LOWERLAYERDOWN",
        4 => "TESTING",
        5 => "DORMANT",
        6 => "UP",
        _ => "UNKNOWN",
    }
}

/// The offload features of `name` from `ethtool -k` (run in the calling
/// thread's namespace), or `None` without ethtool.
fn ethtool_offloads(name: &str) -> Option<Vec<&'static str>> {
    let out = std::process::Command::new("ethtool")
        .args(["-k", name])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let on = |feature: &str| {
        text.lines().any(|l| {
            l.trim()
                .strip_prefix(feature)
                .and_then(|r| r.strip_prefix(':'))
                .is_some_and(|v| v.trim_start().starts_with("on"))
        })
    };
    let mut v = Vec::new();
    for (feature, label) in [
        ("tx-checksumming", "csum"),
        ("tx-tcp-segmentation", "tso4"),
        ("tx-tcp6-segmentation", "tso6"),
        ("tx-tcp-ecn-segmentation", "tso_ecn"),
        ("tx-udp-segmentation", "uso"),
    ] {
        if on(feature) {
            v.push(label);
        }
    }
    Some(v)
}

fn addr_record(a: &Address) -> AddrRecord {
    AddrRecord {
        family: if a.addr.addr().is_ipv4() {
            "inet"
        } else {
            "inet6"
        },
        local: a.addr.to_string(),
        peer: a.peer.map(|p| p.to_string()),
    }
}

/// Build the record of a TUN/TAP link (`None` for other links).
pub fn record(nl: &mut Netlink, link: &LinkInfo, details: bool) -> Result<Option<DeviceRecord>> {
    let Some(tun) = link.tun else {
        return Ok(None);
    };
    let addresses = nl
        .addresses(link.index)
        .map_err(|e| CliError::netlink(format!("list addresses of {}", link.name), e))?;
    Ok(Some(DeviceRecord {
        index: link.index,
        name: link.name.clone(),
        kind: if tun.tap { "tap" } else { "tun" },
        flags: flag_names(link.flags),
        mtu: link.mtu,
        qlen: link.tx_queue_len,
        state: oper_state(link.oper_state),
        mac: link.mac.map(|m| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        }),
        pi: tun.pi,
        vnet_hdr: tun.vnet_hdr,
        multi_queue: tun.multi_queue,
        numqueues: tun.num_queues,
        numdisabled: tun.num_disabled_queues,
        persist: tun.persist,
        user: tun.owner,
        user_name: tun.owner.and_then(util::user_name),
        group: tun.group,
        group_name: tun.group.and_then(util::group_name),
        addresses: addresses.iter().map(addr_record).collect(),
        offloads: ethtool_offloads(&link.name),
        processes: details.then(|| util::holders(&link.name)),
    }))
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// The record as `ip -d link show` would print it, one item per line.
pub fn render(r: &DeviceRecord) -> String {
    let mut s = format!(
        "{}: {}: <{}> mtu {} qlen {} state {}\n",
        r.index,
        r.name,
        r.flags.join(","),
        r.mtu,
        r.qlen,
        r.state
    );
    if let Some(mac) = &r.mac {
        s.push_str(&format!("    link/ether {mac}\n"));
    } else {
        s.push_str("    link/none\n");
    }
    s.push_str(&format!(
        "    tun type {} pi {} vnet_hdr {} multi_queue {}",
        r.kind,
        on_off(r.pi),
        on_off(r.vnet_hdr),
        on_off(r.multi_queue)
    ));
    if let Some(n) = r.numqueues {
        s.push_str(&format!(" numqueues {n}"));
    }
    if let Some(n) = r.numdisabled {
        s.push_str(&format!(" numdisabled {n}"));
    }
    s.push_str(&format!(" persist {}", on_off(r.persist)));
    let who = |id: Option<u32>, name: &Option<String>| match (id, name) {
        (Some(_), Some(n)) => n.clone(),
        (Some(id), None) => id.to_string(),
        (None, _) => "-".into(),
    };
    s.push_str(&format!(
        " user {} group {}\n",
        who(r.user, &r.user_name),
        who(r.group, &r.group_name)
    ));
    match &r.offloads {
        Some(o) if o.is_empty() => s.push_str("    offloads none\n"),
        Some(o) => s.push_str(&format!("    offloads {}\n", o.join(" "))),
        None => s.push_str("    offloads unknown (ethtool is not installed)\n"),
    }
    for a in &r.addresses {
        match &a.peer {
            Some(p) => s.push_str(&format!("    {} {} peer {p}\n", a.family, a.local)),
            None => s.push_str(&format!("    {} {}\n", a.family, a.local)),
        }
    }
    if let Some(ps) = &r.processes {
        if ps.is_empty() {
            s.push_str("    processes none\n");
        }
        for p in ps {
            let fds: Vec<String> = p.fds.iter().map(u32::to_string).collect();
            s.push_str(&format!(
                "    process {} ({}) fd {}\n",
                p.pid,
                p.comm,
                fds.join(",")
            ));
        }
    }
    s.pop();
    s
}

/// Find `name` and check that it is a TUN/TAP device; `action` starts
/// the refusal (`delete tun0: ...`).
pub fn tun_link(nl: &mut Netlink, name: &str, action: &str) -> Result<LinkInfo> {
    let link = nl.link_by_name(name).map_err(|e| {
        if e.is_not_found() {
            CliError::refused(
                format!("{action} {name}: no such interface"),
                "`tun show` lists the TUN/TAP devices",
            )
        } else {
            CliError::netlink(format!("{action} {name}: look it up"), e)
        }
    })?;
    if link.tun.is_none() {
        let kind = match &link.kind {
            Some(k) => format!("a {k} device"),
            None if link.flags & 0x8 != 0 => "the loopback device".into(),
            None => "a device without a driver kind".into(),
        };
        return Err(CliError::refused(
            format!("{action} {name}: it is {kind}, not TUN/TAP"),
            "`ip link` manages it",
        ));
    }
    Ok(link)
}

/// Run `tun show`.
pub fn run(args: &ShowArgs, json: bool) -> Result<()> {
    let ns = args.netns.as_deref().map(util::open_netns).transpose()?;
    let records = util::in_netns(ns.as_ref(), || {
        let mut nl = util::netlink()?;
        let links = match &args.name {
            Some(name) => vec![tun_link(&mut nl, name, "show")?],
            None => nl.links().map_err(|e| CliError::netlink("list links", e))?,
        };
        let mut v = Vec::new();
        for l in &links {
            if let Some(r) = record(&mut nl, l, args.details)? {
                v.push(r);
            }
        }
        Ok(v)
    })?;
    if json {
        util::out_json(&records);
    } else {
        for r in &records {
            util::out(render(r));
        }
    }
    Ok(())
}
