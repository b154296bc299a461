//! A pcap writer (the classic libpcap format, microsecond timestamps,
//! native byte order as libpcap writes it): a 24-byte file header and a
//! 16-byte header per record. Forty lines do what `dump` needs, so the
//! tool carries no pcap dependency; tcpdump reads the files back in the
//! tests.

use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// `LINKTYPE_ETHERNET`: TAP frames.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// `LINKTYPE_RAW`: bare IPv4/IPv6 packets, TUN's.
pub const LINKTYPE_RAW: u32 = 101;
/// Largest record kept whole: a 64 KiB super-packet and its link header.
pub const SNAPLEN: u32 = 262_144;

/// Writes packets to a pcap stream.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    w: W,
}

impl<W: Write> PcapWriter<W> {
    /// Write the file header for `linktype` and return the writer.
    pub fn new(mut w: W, linktype: u32) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_ne_bytes());
        h.extend_from_slice(&2u16.to_ne_bytes());
        h.extend_from_slice(&4u16.to_ne_bytes());
        h.extend_from_slice(&0i32.to_ne_bytes()); // thiszone
        h.extend_from_slice(&0u32.to_ne_bytes()); // sigfigs
        h.extend_from_slice(&SNAPLEN.to_ne_bytes());
        h.extend_from_slice(&linktype.to_ne_bytes());
        w.write_all(&h)?;
        Ok(Self { w })
    }

    /// Append one packet stamped `at`.
    pub fn write(&mut self, at: SystemTime, data: &[u8]) -> io::Result<()> {
        let t = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let orig = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let incl = orig.min(SNAPLEN);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&(t.as_secs() as u32).to_ne_bytes());
        h[4..8].copy_from_slice(&t.subsec_micros().to_ne_bytes());
        h[8..12].copy_from_slice(&incl.to_ne_bytes());
        h[12..16].copy_from_slice(&orig.to_ne_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(&data[..incl as usize])
    }

    /// Flush what is buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_record_layout() {
        let mut w = PcapWriter::new(Vec::new(), LINKTYPE_RAW).unwrap();
        w.write(
            UNIX_EPOCH + std::time::Duration::from_micros(1_500_002),
            &[1, 2, 3],
        )
        .unwrap();
        let b = w.w;
        assert_eq!(b.len(), 24 + 16 + 3);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 0xa1b2c3d4);
        assert_eq!(u32::from_ne_bytes(b[20..24].try_into().unwrap()), 101);
        assert_eq!(u32::from_ne_bytes(b[24..28].try_into().unwrap()), 1);
        assert_eq!(u32::from_ne_bytes(b[28..32].try_into().unwrap()), 500_002);
        assert_eq!(u32::from_ne_bytes(b[32..36].try_into().unwrap()), 3);
        assert_eq!(&b[40..], &[1, 2, 3]);
    }
}
