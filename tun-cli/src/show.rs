//! `tun show`: every TUN/TAP device of a namespace, the way `ip -d link
//! show` and `ip tuntap show` present them, read over rtnetlink
//! (`IFLA_TUN_*` link info, addresses), with the offload features the
//! kernel holds for the device (asked with `SIOCETHTOOL`, as `ethtool -k`
//! does) and, with `-d`, the processes holding it open in this namespace
//! (from /proc/*/fdinfo). `--json` uses the keys and shapes of `ip -d -j
//! link show` and `ip -j addr show`.

use clap::Args;
use serde::Serialize;
use tun_device::netlink::{Address, LinkInfo, Netlink};

use crate::error::{CliError, Result};
use crate::offloads;
use crate::util::{self, Holder};

/// Arguments of `tun show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Only this device.
    #[arg(value_parser = crate::names::parse_existing)]
    pub name: Option<String>,
    /// Details: also the processes holding each device open.
    #[arg(short = 'd', long = "details")]
    pub details: bool,
    /// Look in this network namespace (a name from `ip netns` or a path).
    #[arg(long, value_name = "NAME|PATH")]
    pub netns: Option<String>,
}

/// One address of a device, as `ip -j addr show` prints it in `addr_info`.
#[derive(Debug, Clone, Serialize)]
pub struct AddrRecord {
    /// `inet` or `inet6`.
    pub family: &'static str,
    /// The address itself.
    pub local: String,
    /// Point-to-point peer, if any (iproute2's `address`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Prefix length.
    pub prefixlen: u8,
}

/// `linkinfo.info_data` as `ip -d -j link show` prints it for TUN/TAP.
#[derive(Debug, Clone, Serialize)]
pub struct TunData {
    /// `tun` or `tap`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Packet-information header on.
    pub pi: bool,
    /// Virtio-net header on (offload).
    pub vnet_hdr: bool,
    /// Multi-queue.
    pub multi_queue: bool,
    /// Attached queues (reported for multi-queue devices).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numqueues: Option<u32>,
    /// Disabled queues (reported for multi-queue devices).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numdisabled: Option<u32>,
    /// Persistent.
    pub persist: bool,
    /// Owner: its name, or the uid when it has none (as iproute2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<serde_json::Value>,
    /// Group: its name, or the gid when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<serde_json::Value>,
}

/// `linkinfo` as `ip -d -j` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct LinkInfoRecord {
    /// Always `tun` (TUN and TAP share the driver).
    pub info_kind: &'static str,
    /// The driver's attributes.
    pub info_data: TunData,
}

/// One TUN/TAP device as `show` reports it: the keys and shapes of
/// `ip -d -j link show` and `ip -j addr show` merged, plus `offloads`
/// and, with `-d`, `processes`.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRecord {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name.
    pub ifname: String,
    /// Interface flags (`UP`, `POINTOPOINT`, ...), as `ip link` prints them.
    pub flags: Vec<&'static str>,
    /// MTU.
    pub mtu: u32,
    /// Operational state (`UP`, `DOWN`, `UNKNOWN`, ...).
    pub operstate: &'static str,
    /// Transmit queue length.
    pub txqlen: u32,
    /// `none` (TUN) or `ether` (TAP).
    pub link_type: &'static str,
    /// Ethernet address (TAP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The TUN/TAP driver's attributes.
    pub linkinfo: LinkInfoRecord,
    /// Addresses.
    pub addr_info: Vec<AddrRecord>,
    /// Offload features the kernel holds for the device (`csum`, `tso4`,
    /// `tso6`, `tso_ecn`, `uso`), read with `SIOCETHTOOL`.
    pub offloads: Vec<&'static str>,
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

fn addr_record(a: &Address) -> AddrRecord {
    AddrRecord {
        family: if a.addr.addr().is_ipv4() {
            "inet"
        } else {
            "inet6"
        },
        local: a.addr.addr().to_string(),
        address: a.peer.map(|p| p.to_string()),
        prefixlen: a.addr.prefix_len(),
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
    let features = offloads::read(&link.name).map_err(|e| {
        CliError::refused(
            format!("show {}: read its offload features: {e}", link.name),
            "the device may have gone away meanwhile",
        )
    })?;
    let id = |id: Option<u32>, name: fn(u32) -> Option<String>| {
        id.map(|i| name(i).map_or_else(|| serde_json::json!(i), serde_json::Value::String))
    };
    Ok(Some(DeviceRecord {
        ifindex: link.index,
        ifname: link.name.clone(),
        flags: flag_names(link.flags),
        mtu: link.mtu,
        operstate: oper_state(link.oper_state),
        txqlen: link.tx_queue_len,
        link_type: if tun.tap { "ether" } else { "none" },
        address: link.mac.map(|m| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        }),
        linkinfo: LinkInfoRecord {
            info_kind: "tun",
            info_data: TunData {
                kind: if tun.tap { "tap" } else { "tun" },
                pi: tun.pi,
                vnet_hdr: tun.vnet_hdr,
                multi_queue: tun.multi_queue,
                numqueues: tun.num_queues,
                numdisabled: tun.num_disabled_queues,
                persist: tun.persist,
                user: id(tun.owner, util::user_name),
                group: id(tun.group, util::group_name),
            },
        },
        addr_info: addresses.iter().map(addr_record).collect(),
        offloads: offloads::names(offloads::flags(&features)),
        processes: details.then(|| util::holders(&link.name)),
    }))
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// A JSON id (a name, or a number) as text; `-` when absent.
fn id_text(v: &Option<serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "-".into(),
    }
}

/// The record as `ip -d link show` would print it, one item per line.
pub fn render(r: &DeviceRecord) -> String {
    let d = &r.linkinfo.info_data;
    let mut s = format!(
        "{}: {}: <{}> mtu {} qlen {} state {}\n",
        r.ifindex,
        r.ifname,
        r.flags.join(","),
        r.mtu,
        r.txqlen,
        r.operstate
    );
    match &r.address {
        Some(mac) => s.push_str(&format!("    link/ether {mac}\n")),
        None => s.push_str("    link/none\n"),
    }
    s.push_str(&format!(
        "    tun type {} pi {} vnet_hdr {} multi_queue {}",
        d.kind,
        on_off(d.pi),
        on_off(d.vnet_hdr),
        on_off(d.multi_queue)
    ));
    if let Some(n) = d.numqueues {
        s.push_str(&format!(" numqueues {n}"));
    }
    if let Some(n) = d.numdisabled {
        s.push_str(&format!(" numdisabled {n}"));
    }
    s.push_str(&format!(
        " persist {} user {} group {}\n",
        on_off(d.persist),
        id_text(&d.user),
        id_text(&d.group)
    ));
    if r.offloads.is_empty() {
        s.push_str("    offloads none\n");
    } else {
        s.push_str(&format!("    offloads {}\n", r.offloads.join(" ")));
    }
    for a in &r.addr_info {
        match &a.address {
            Some(p) => s.push_str(&format!(
                "    {} {} peer {p}/{}\n",
                a.family, a.local, a.prefixlen
            )),
            None => s.push_str(&format!("    {} {}/{}\n", a.family, a.local, a.prefixlen)),
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
