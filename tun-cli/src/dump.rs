//! `tun dump`: read packets from a device (an existing one, or one created for the
//! occasion) and print one line per packet, its virtio-net header decoded
//! (GSO type and size, partial checksum) ahead of an IP/TCP/UDP/ICMP
//! summary, or write them to a pcap file: `LINKTYPE_RAW` for TUN,
//! Ethernet for TAP; super-packets as the kernel handed them over, or
//! their segments with `--split`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use serde::Serialize;
use tun_device::ipnet::IpNet;
use tun_device::offload::{GsoPacket, GsoType, HdrFlags, TunnelGsoPacket, VirtioNetHdr};

use crate::decode;
use crate::error::{CliError, Result};
use crate::open::{self, OpenOptions};
use crate::pcap::{self, PcapWriter};
use crate::util;

/// Arguments of `tun dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The device: opened with its own flags if it exists, else
    /// created (and gone on exit); `tun%d` when omitted.
    #[arg(value_parser = crate::names::parse_name)]
    pub name: Option<String>,
    /// Stop after N packets read (a super-packet counts once).
    #[arg(short = 'c', long, value_name = "N")]
    pub count: Option<u64>,
    /// Write the packets to this pcap file instead of printing them; `-`
    /// writes the pcap stream to standard output (as tcpdump's `-w -`).
    #[arg(short = 'w', long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Packet-buffered: write each packet out as soon as it is read (with
    /// `-w`, so a reader of the file or pipe sees it at once), as
    /// tcpdump's `-U`.
    #[arg(short = 'U', long)]
    pub packet_buffered: bool,
    /// Split super-packets into the segments the wire would carry (with
    /// checksums completed), for the lines and the pcap file.
    #[arg(long)]
    pub split: bool,
    /// A new device: with offload (so super-packets arrive).
    #[arg(long)]
    pub offload: bool,
    /// A new device: TAP instead of TUN (with `--offload`, TAP frames
    /// carry virtio-net headers too).
    #[arg(long)]
    pub tap: bool,
    /// A new device: an address with prefix (repeatable).
    #[arg(long = "addr", value_name = "CIDR")]
    pub addrs: Vec<IpNet>,
    /// A new device: its MTU.
    #[arg(long, value_name = "N")]
    pub mtu: Option<u32>,
    /// Work in this network namespace (a name from `ip netns` or a path).
    #[arg(long, value_name = "NAME|PATH")]
    pub netns: Option<String>,
}

/// One packet in `--json` output.
#[derive(Debug, Serialize)]
struct PacketRecord<'a> {
    /// Seconds since the dump started.
    time: f64,
    /// Bytes read (the whole super-packet, or the segment with `--split`).
    len: usize,
    /// GSO type of the virtio header (`NONE`, `TCPV4`, `TCPV6`, `UDP_L4`).
    #[serde(skip_serializing_if = "Option::is_none")]
    gso: Option<&'a str>,
    /// Payload bytes per segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    gso_size: Option<u16>,
    /// Segments the super-packet carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    segments: Option<usize>,
    /// Whether the checksum was partial (`NEEDS_CSUM`).
    #[serde(skip_serializing_if = "Option::is_none")]
    csum_partial: Option<bool>,
    /// Segment index with `--split`.
    #[serde(skip_serializing_if = "Option::is_none")]
    segment: Option<usize>,
    /// The tcpdump-style summary.
    summary: String,
}

/// The decoded virtio header in words: `gso TCPV4 size 1448 segs 12 csum 20+16`.
fn describe_hdr(hdr: &VirtioNetHdr, segments: Option<usize>) -> String {
    let mut parts = Vec::new();
    if hdr.gso_type() != GsoType::NONE {
        let ecn = if hdr.gso_type().0 & GsoType::ECN != 0 {
            "+ECN"
        } else {
            ""
        };
        let name = GsoType(hdr.gso_type().0 & !GsoType::ECN).to_string();
        parts.push(format!("gso {name}{ecn} size {}", hdr.gso_size()));
        if let Some(n) = segments {
            parts.push(format!("segs {n}"));
        }
    }
    if hdr.flags().contains(HdrFlags::NEEDS_CSUM) {
        parts.push(format!("csum {}+{}", hdr.csum_start(), hdr.csum_offset()));
    }
    if hdr.flags().contains(HdrFlags::DATA_VALID) {
        parts.push("csum valid".into());
    }
    parts.join(" ")
}

/// Run `tun dump`.
pub fn run(args: &DumpArgs, json: bool) -> Result<()> {
    crate::manage::check_ipv6_mtu(&args.addrs, args.mtu)?;
    let ns = args.netns.as_deref().map(util::open_netns).transpose()?;
    let opts = OpenOptions {
        offload: args.offload,
        tap: args.tap,
        queues: 1,
        addrs: args.addrs.clone(),
        mtu: args.mtu,
    };
    let opened = open::open(args.name.as_deref(), &opts, ns.as_ref())?;
    let name = opened.name.clone();
    let dev = &opened.device;
    let q = dev.first_queue();
    let (vnet, tap) = (dev.interface().has_vnet_hdr(), dev.interface().is_tap());
    let to_stdout = args.pcap.as_deref() == Some(std::path::Path::new("-"));
    let mut writer = match &args.pcap {
        Some(path) => {
            let out: Box<dyn Write> = if to_stdout {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(File::create(path).map_err(|e| {
                    CliError::io(format!("dump {name}: create {}", path.display()), e)
                })?)
            };
            let linktype = if tap {
                pcap::LINKTYPE_ETHERNET
            } else {
                pcap::LINKTYPE_RAW
            };
            let mut w = PcapWriter::new(BufWriter::new(out), linktype)
                .map_err(|e| CliError::io(format!("dump {name}: write {}", path.display()), e))?;
            if args.packet_buffered {
                w.flush().map_err(|e| {
                    CliError::io(format!("dump {name}: write {}", path.display()), e)
                })?;
            }
            Some(w)
        }
        None => None,
    };
    eprintln!(
        "dump: reading {}{}; Ctrl-C stops",
        open::describe(&opened),
        match &args.pcap {
            Some(_) if to_stdout => ", writing pcap to standard output".to_string(),
            Some(p) => format!(", writing {}", p.display()),
            None => String::new(),
        }
    );

    let mut buf = vec![0u8; 65536 + 256];
    let mut segs: Vec<Vec<u8>> = Vec::new();
    let mut sizes: Vec<usize> = Vec::new();
    let start = Instant::now();
    let (mut packets, mut supers, mut records) = (0u64, 0u64, 0u64);
    let write_err = |e| CliError::io(format!("dump {name}: write pcap file"), e);
    while args.count.is_none_or(|c| packets < c) && !util::interrupted() {
        let res = if vnet {
            q.recv_gso(&mut buf).map(|(h, l)| (Some(h), l))
        } else {
            q.recv(&mut buf).map(|l| (None, l))
        };
        let (hdr, len) = match res {
            Ok(v) => v,
            Err(e) if e.is_would_block() => {
                q.wait_readable(Some(Duration::from_millis(100)))
                    .map_err(|e| CliError::device(format!("dump {name}"), e))?;
                continue;
            }
            Err(e) if e.is_device_gone() => {
                return Err(CliError::refused(
                    format!("dump {name}: the device went away after {packets} packets ({e})"),
                    "it was deleted; nothing more to read",
                ));
            }
            Err(e) => match e.kind() {
                tun_device::ErrorKind::BadPacket | tun_device::ErrorKind::BufferTooSmall => {
                    eprintln!("dump: {e} (skipped)");
                    continue;
                }
                _ => return Err(CliError::device(format!("dump {name}"), e)),
            },
        };
        let now = SystemTime::now();
        let t = start.elapsed().as_secs_f64();
        packets += 1;
        let pkt = &buf[..len];
        let full = hdr.unwrap_or_default();
        let hdr = full.hdr;
        // (segments, longest segment) of a super-packet the header
        // describes, plain or inside a UDP tunnel.
        let gso = if hdr.gso_type().udp_tunnel() != 0 {
            let t = if tap {
                TunnelGsoPacket::parse_frame(&full, pkt)
            } else {
                TunnelGsoPacket::parse(&full, pkt)
            };
            t.ok().map(|t| (t.segment_count(), t.max_segment_len()))
        } else if hdr.gso_type() != GsoType::NONE {
            let g = if tap {
                GsoPacket::parse_frame(&hdr, pkt)
            } else {
                GsoPacket::parse(&hdr, pkt)
            };
            g.ok().map(|g| (g.segment_count(), g.max_segment_len()))
        } else {
            None
        };
        if gso.is_some() {
            supers += 1;
        }
        let segments = gso.map(|(count, _)| count);

        // The packets to show or store: the one read, or its segments.
        let mut parts: Vec<&[u8]> = vec![pkt];
        if args.split && vnet {
            let (count, seg_len) = gso.unwrap_or((1, len));
            if segs.len() < count {
                segs.resize_with(count, Vec::new);
                sizes.resize(count, 0);
            }
            for s in &mut segs[..count] {
                s.resize(seg_len.max(s.len()), 0);
            }
            let split = tun_device::offload::split_tunnel(
                &full,
                pkt,
                tap,
                &mut segs[..count],
                &mut sizes[..count],
                0,
            );
            match split {
                Ok(n) => {
                    parts = segs[..n]
                        .iter()
                        .zip(&sizes[..n])
                        .map(|(s, &l)| &s[..l])
                        .collect();
                }
                Err(e) => eprintln!("dump: cannot split packet {packets}: {e} (kept whole)"),
            }
        }
        let split = parts.len() > 1 || (args.split && vnet);
        for (i, part) in parts.iter().enumerate() {
            if let Some(w) = writer.as_mut() {
                w.write(now, part).map_err(write_err)?;
                if args.packet_buffered {
                    w.flush().map_err(write_err)?;
                }
                records += 1;
                continue;
            }
            let summary = if tap {
                decode::ether(part)
            } else {
                decode::ip(part)
            };
            if json {
                let gso_name = hdr.gso_type().name();
                util::out_json(&PacketRecord {
                    time: t,
                    len: part.len(),
                    gso: if vnet { gso_name } else { None },
                    gso_size: (vnet && hdr.gso_type() != GsoType::NONE).then(|| hdr.gso_size()),
                    segments: if split { None } else { segments },
                    csum_partial: vnet.then(|| hdr.flags().contains(HdrFlags::NEEDS_CSUM)),
                    segment: split.then_some(i),
                    summary,
                });
            } else {
                let vh = if vnet && !split {
                    describe_hdr(&hdr, segments)
                } else if split && gso.is_some() {
                    format!("segment {}/{}", i + 1, parts.len())
                } else {
                    String::new()
                };
                let sep = if vh.is_empty() { "" } else { " " };
                util::out(format!("{t:>11.6} {vh}{sep}len {}: {summary}", part.len()));
            }
        }
    }
    if let Some(mut w) = writer {
        match w.flush() {
            // A reader that went away (`tun dump -w - | head -c 100`) is
            // the end of the dump, not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            r => r.map_err(write_err)?,
        }
    }
    let stopped = if util::interrupted() {
        " (stopped by Ctrl-C)"
    } else {
        ""
    };
    match &args.pcap {
        Some(p) => eprintln!(
            "dump: {packets} packets read ({supers} super-packets), {records} records written to {}{stopped}",
            p.display()
        ),
        None => eprintln!("dump: {packets} packets read ({supers} super-packets){stopped}"),
    }
    Ok(())
}
