//! An independent check of the IP packets a test sees on its way: header
//! and transport checksums recomputed with tun-test-support's naive sum,
//! never with the code under test.

use tun_test_support::naive_sum;

/// Whether an IP packet's lengths, IPv4 header checksum and TCP/UDP
/// checksum verify (packets of other transports pass; an IPv4 UDP
/// datagram without a checksum passes). Returns a reason when not.
pub fn verify_packet(p: &[u8]) -> Result<(), String> {
    let version = p.first().ok_or("empty")? >> 4;
    let (src, dst, proto, l4): (&[u8], &[u8], u8, &[u8]) = match version {
        4 => {
            let hl = usize::from(p[0] & 15) * 4;
            let total = p
                .get(2..4)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
            if hl < 20 || p.len() < hl || total != Some(p.len()) {
                return Err(format!(
                    "ipv4: header of {hl} bytes, total length {total:?}, in {} bytes",
                    p.len()
                ));
            }
            if naive_sum(&p[..hl]) != 0xffff {
                return Err("ipv4 header checksum".into());
            }
            (&p[12..16], &p[16..20], p[9], &p[hl..])
        }
        6 => {
            if p.len() < 40 || usize::from(u16::from_be_bytes([p[4], p[5]])) + 40 != p.len() {
                return Err("ipv6 length".into());
            }
            (&p[8..24], &p[24..40], p[6], &p[40..])
        }
        v => return Err(format!("ip version {v}")),
    };
    if proto != 6 && proto != 17 {
        return Ok(());
    }
    let len = (l4.len() as u32).to_be_bytes();
    let pseudo: Vec<u8> = if version == 4 {
        [src, dst, &[0, proto], &len[2..]].concat()
    } else {
        [src, dst, &len[..], &[0, 0, 0, proto]].concat()
    };
    if proto == 17 && l4.len() >= 8 && l4[6..8] == [0, 0] && version == 4 {
        return Ok(()); // no checksum
    }
    if naive_sum(&[&pseudo[..], l4].concat()) != 0xffff {
        return Err(format!(
            "transport checksum (proto {proto}, {} bytes)",
            l4.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tun_test_support::{Ip, udp};

    #[test]
    fn a_built_packet_verifies_and_a_changed_one_does_not() {
        let good = udp(&Ip::v4([10, 0, 0, 1], [10, 0, 0, 2]), 1, 2, b"payload");
        assert_eq!(verify_packet(&good), Ok(()));
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(
            verify_packet(&bad)
                .unwrap_err()
                .contains("transport checksum")
        );
        let mut hdr = good.clone();
        hdr[8] ^= 1; // TTL: the header checksum no longer holds
        assert_eq!(verify_packet(&hdr), Err("ipv4 header checksum".into()));
        let v6 = udp(&Ip::v6("fd00::1", "fd00::2"), 1, 2, b"payload");
        assert_eq!(verify_packet(&v6), Ok(()));
        assert!(verify_packet(&v6[..50]).is_err(), "cut short");
        assert!(verify_packet(&[]).is_err());
        assert!(verify_packet(&[0x45]).is_err(), "no panic on a stub");
    }
}
