//! One-line packet summaries in tcpdump's style: IPv4/IPv6 (with IPv6
//! extension headers skipped), TCP, UDP, ICMP and ICMPv6, and Ethernet
//! with ARP for TAP devices. Every read is bounds-checked: a truncated or
//! garbled packet gives a summary that says so, never a panic.

use std::net::{Ipv4Addr, Ipv6Addr};

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// Summary of an IP packet (IPv4 or IPv6, by its version nibble).
pub fn ip(pkt: &[u8]) -> String {
    match pkt.first().map(|b| b >> 4) {
        Some(4) => ipv4(pkt),
        Some(6) => ipv6(pkt),
        Some(v) => format!("IP version {v}? {} bytes", pkt.len()),
        None => "empty packet".into(),
    }
}

fn ipv4(p: &[u8]) -> String {
    let ihl = usize::from(p[0] & 0x0f) * 4;
    if p.len() < 20 || ihl < 20 || p.len() < ihl {
        return format!("IP truncated ({} bytes)", p.len());
    }
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let frag = u16_at(p, 6).unwrap_or(0);
    let offset = usize::from(frag & 0x1fff) * 8;
    if offset != 0 {
        return format!("IP {src} > {dst}: fragment at offset {offset}");
    }
    transport("IP", &src.to_string(), &dst.to_string(), p[9], &p[ihl..])
}

fn ipv6(p: &[u8]) -> String {
    if p.len() < 40 {
        return format!("IP6 truncated ({} bytes)", p.len());
    }
    let addr = |i: usize| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&p[i..i + 16]);
        Ipv6Addr::from(a)
    };
    let (src, dst) = (addr(8).to_string(), addr(24).to_string());
    let mut next = p[6];
    let mut at = 40;
    loop {
        let len = match next {
            // hop-by-hop, routing, destination options
            0 | 43 | 60 => p.get(at + 1).map(|l| (usize::from(*l) + 1) * 8),
            // fragment
            44 => {
                if u16_at(p, at + 2).is_some_and(|o| o & 0xfff8 != 0) {
                    return format!("IP6 {src} > {dst}: fragment");
                }
                Some(8)
            }
            // authentication header
            51 => p.get(at + 1).map(|l| (usize::from(*l) + 2) * 4),
            _ => break,
        };
        match (len, p.get(at)) {
            (Some(len), Some(&nh)) if at + len <= p.len() => {
                next = nh;
                at += len;
            }
            _ => return format!("IP6 {src} > {dst}: truncated extension header"),
        }
    }
    transport("IP6", &src, &dst, next, &p[at..])
}

fn tcp_flags(f: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (0x02, 'S'),
        (0x01, 'F'),
        (0x08, 'P'),
        (0x04, 'R'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'W'),
        (0x10, '.'),
    ] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    if s.is_empty() { "none".into() } else { s }
}

fn transport(fam: &str, src: &str, dst: &str, proto: u8, l4: &[u8]) -> String {
    // tcpdump joins address and port with a dot.
    let ports = |l4: &[u8]| Some((u16_at(l4, 0)?, u16_at(l4, 2)?));
    match proto {
        6 => {
            let (Some((sp, dp)), Some(seq), Some(ack), Some(&off), Some(&flags), Some(win)) = (
                ports(l4),
                u32_at(l4, 4),
                u32_at(l4, 8),
                l4.get(12),
                l4.get(13),
                u16_at(l4, 14),
            ) else {
                return format!("{fam} {src} > {dst}: TCP truncated");
            };
            let doff = usize::from(off >> 4) * 4;
            let len = l4.len().saturating_sub(doff);
            let mut s = format!(
                "{fam} {src}.{sp} > {dst}.{dp}: Flags [{}], seq {seq}",
                tcp_flags(flags)
            );
            if flags & 0x10 != 0 {
                s.push_str(&format!(", ack {ack}"));
            }
            s.push_str(&format!(", win {win}, length {len}"));
            s
        }
        17 => match ports(l4) {
            Some((sp, dp)) if l4.len() >= 8 => {
                format!(
                    "{fam} {src}.{sp} > {dst}.{dp}: UDP, length {}",
                    l4.len() - 8
                )
            }
            _ => format!("{fam} {src} > {dst}: UDP truncated"),
        },
        1 => {
            let (Some(&t), Some(&c)) = (l4.first(), l4.get(1)) else {
                return format!("{fam} {src} > {dst}: ICMP truncated");
            };
            let echo = |what: &str| {
                format!(
                    "{fam} {src} > {dst}: ICMP {what}, id {}, seq {}, length {}",
                    u16_at(l4, 4).unwrap_or(0),
                    u16_at(l4, 6).unwrap_or(0),
                    l4.len()
                )
            };
            match t {
                8 => echo("echo request"),
                0 => echo("echo reply"),
                3 => format!("{fam} {src} > {dst}: ICMP destination unreachable, code {c}"),
                11 => format!("{fam} {src} > {dst}: ICMP time exceeded, code {c}"),
                _ => format!("{fam} {src} > {dst}: ICMP type {t}, code {c}"),
            }
        }
        58 => {
            let (Some(&t), Some(&c)) = (l4.first(), l4.get(1)) else {
                return format!("{fam} {src} > {dst}: ICMP6 truncated");
            };
            let what = match t {
                128 => "echo request".to_string(),
                129 => "echo reply".to_string(),
                1 => format!("destination unreachable, code {c}"),
                3 => format!("time exceeded, code {c}"),
                133 => "router solicitation".to_string(),
                134 => "router advertisement".to_string(),
                135 => "neighbor solicitation".to_string(),
                136 => "neighbor advertisement".to_string(),
                143 => "multicast listener report v2".to_string(),
                _ => format!("type {t}, code {c}"),
            };
            format!("{fam} {src} > {dst}: ICMP6, {what}, length {}", l4.len())
        }
        p => format!("{fam} {src} > {dst}: protocol {p}, length {}", l4.len()),
    }
}

fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Summary of an Ethernet frame (TAP devices).
pub fn ether(f: &[u8]) -> String {
    if f.len() < 14 {
        return format!("Ethernet truncated ({} bytes)", f.len());
    }
    let (dst, src) = (mac(&f[0..6]), mac(&f[6..12]));
    let mut ty = u16_at(f, 12).unwrap_or(0);
    let mut at = 14;
    if ty == 0x8100 {
        ty = u16_at(f, 16).unwrap_or(0);
        at = 18;
    }
    let rest = f.get(at..).unwrap_or_default();
    let inner = match ty {
        0x0800 | 0x86dd => ip(rest),
        0x0806 => arp(rest),
        t => format!("ethertype {t:#06x}, length {}", f.len()),
    };
    format!("{src} > {dst}, {inner}")
}

fn arp(a: &[u8]) -> String {
    if a.len() < 28 {
        return "ARP truncated".into();
    }
    let ip = |i: usize| Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]);
    match u16_at(a, 6) {
        Some(1) => format!("ARP, Request who-has {} tell {}", ip(24), ip(14)),
        Some(2) => format!("ARP, Reply {} is-at {}", ip(14), mac(&a[8..14])),
        _ => "ARP".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp4(payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; 28 + payload];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((28 + payload) as u16).to_be_bytes());
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p[20..22].copy_from_slice(&1234u16.to_be_bytes());
        p[22..24].copy_from_slice(&53u16.to_be_bytes());
        p
    }

    #[test]
    fn udp_v4() {
        assert_eq!(
            ip(&udp4(100)),
            "IP 10.0.0.1.1234 > 10.0.0.2.53: UDP, length 100"
        );
    }

    #[test]
    fn tcp_syn_v6() {
        let mut p = vec![0u8; 60];
        p[0] = 0x60;
        p[6] = 6;
        p[23] = 1;
        p[39] = 2;
        p[40..42].copy_from_slice(&80u16.to_be_bytes());
        p[42..44].copy_from_slice(&81u16.to_be_bytes());
        p[44..48].copy_from_slice(&7u32.to_be_bytes());
        p[52] = 5 << 4;
        p[53] = 0x12;
        p[54..56].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(
            ip(&p),
            "IP6 ::1.80 > ::2.81: Flags [S.], seq 7, ack 0, win 100, length 0"
        );
    }

    #[test]
    fn never_panics_on_truncation() {
        let full = udp4(10);
        for n in 0..full.len() {
            let _ = ip(&full[..n]);
            let _ = ether(&full[..n]);
        }
        let mut v6 = vec![0u8; 48];
        v6[0] = 0x60;
        v6[6] = 0; // hop-by-hop pointing past the end
        v6[41] = 200;
        assert!(ip(&v6).contains("truncated"));
    }
}
