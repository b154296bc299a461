//! Offload features as the kernel holds them for an interface, read with
//! the `SIOCETHTOOL` ioctl (what `ethtool -k` asks): `ETHTOOL_GSSET_INFO`
//! for the number of features (the `ETH_SS_FEATURES` string set),
//! `ETHTOOL_GSTRINGS` for their names, `ETHTOOL_GFEATURES` for the
//! bitmaps. Layouts and numbers are those of include/uapi/linux/ethtool.h;
//! the handlers are `ethtool_get_sset_info()`, `ethtool_get_strings()` and
//! `ethtool_get_features()` in net/ethtool/ioctl.c. Any user may read
//! them; no capability is needed.

use std::os::fd::AsFd;

use crate::ioctl::{self, ifreq_named, ioctl_ptr};
use crate::{ControlSocket, Error, InterfaceName, Op};

/// `ETHTOOL_GSTRINGS`: get a string set.
pub const ETHTOOL_GSTRINGS: u32 = 0x1b;
/// `ETHTOOL_GSSET_INFO`: get the sizes of string sets.
pub const ETHTOOL_GSSET_INFO: u32 = 0x37;
/// `ETHTOOL_GFEATURES`: get the feature bitmaps.
pub const ETHTOOL_GFEATURES: u32 = 0x3a;
/// `ETH_SS_FEATURES`: the string set of device feature names.
pub const ETH_SS_FEATURES: u32 = 4;
/// `ETH_GSTRING_LEN`: the size of one NUL-padded name.
pub const ETH_GSTRING_LEN: usize = 32;

/// The most features read: the kernel has about 70 (`NETDEV_FEATURE_COUNT`);
/// a count far above that is not believed.
const MAX_FEATURES: u32 = 4096;

/// `struct ethtool_sset_info` with room for one size (`data[1]`).
#[repr(C)]
#[derive(Debug, Default)]
struct SsetInfo {
    cmd: u32,
    reserved: u32,
    sset_mask: u64,
    data: [u32; 1],
}

/// `struct ethtool_gstrings` (header; `len * ETH_GSTRING_LEN` bytes follow).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct GStrings {
    cmd: u32,
    string_set: u32,
    len: u32,
}

/// `struct ethtool_gfeatures` (header; `size` blocks follow).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct GFeatures {
    cmd: u32,
    size: u32,
}

/// `struct ethtool_get_features_block`: the state of 32 features.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FeatureBlock {
    /// Features the user may change.
    pub available: u32,
    /// Features asked to be on.
    pub requested: u32,
    /// Features on now.
    pub active: u32,
    /// Features no device may change.
    pub never_changed: u32,
}

/// One feature of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    /// The kernel's name (`tx-tcp-segmentation`), as `ethtool -k` prints it.
    pub name: String,
    /// On now.
    pub active: bool,
    /// Asked to be on (by the driver or a user).
    pub requested: bool,
    /// Cannot be changed (`[fixed]` in `ethtool -k`).
    pub fixed: bool,
}

/// The feature set of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Features {
    features: Vec<Feature>,
}

impl Features {
    /// Every feature, in the kernel's order.
    pub fn iter(&self) -> impl Iterator<Item = &Feature> {
        self.features.iter()
    }

    /// The feature called `name`.
    pub fn get(&self, name: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.name == name)
    }

    /// Whether the feature called `name` is on (`false` if unknown).
    pub fn is_active(&self, name: &str) -> bool {
        self.get(name).is_some_and(|f| f.active)
    }

    /// Combine names and blocks as the kernel lays them out: feature `i`
    /// is bit `i % 32` of block `i / 32`.
    fn from_parts(names: Vec<String>, blocks: &[FeatureBlock]) -> Self {
        let features = names
            .into_iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let b = blocks.get(i / 32)?;
                let bit = 1u32 << (i % 32);
                Some(Feature {
                    name,
                    active: b.active & bit != 0,
                    requested: b.requested & bit != 0,
                    fixed: b.available & bit == 0 || b.never_changed & bit != 0,
                })
            })
            .collect();
        Self { features }
    }
}

/// The name in one `ETH_GSTRING_LEN` slot (up to its first NUL).
fn slot_name(slot: &[u8]) -> String {
    let end = slot.iter().position(|&b| b == 0).unwrap_or(slot.len());
    String::from_utf8_lossy(&slot[..end]).into_owned()
}

impl ControlSocket {
    /// `SIOCETHTOOL` on `name` with `ifr_data` pointing at `buf`.
    ///
    /// # Safety
    /// `buf` must hold the whole structure the command in its first four
    /// bytes reads and writes, in the layout the kernel expects, sized for
    /// the counts it carries.
    unsafe fn ethtool<T: ?Sized>(
        &self,
        op: Op,
        name: &InterfaceName,
        buf: &mut T,
    ) -> Result<(), Error> {
        let mut ifr = ifreq_named(Some(name));
        ifr.ifr_ifru.ifru_data = (buf as *mut T).cast();
        // SAFETY: SIOCETHTOOL reads the ifreq (its name and ifr_data) and
        // then only the buffer ifr_data points to, whose size the caller
        // guarantees; `buf` is exclusively borrowed for the call.
        unsafe { ioctl_ptr(self.as_fd(), op, ioctl::SIOCETHTOOL, &mut ifr) }
            .map(drop)
            .map_err(|e| e.with_interface(*name))
    }

    /// The offload features of `name` (`ethtool -k NAME`), through
    /// `SIOCETHTOOL`.
    pub fn features(&self, name: &InterfaceName) -> Result<Features, Error> {
        let mut info = SsetInfo {
            cmd: ETHTOOL_GSSET_INFO,
            sset_mask: 1 << ETH_SS_FEATURES,
            ..SsetInfo::default()
        };
        // SAFETY: ETHTOOL_GSSET_INFO reads the 16-byte header and writes one
        // u32 per bit set in sset_mask (one here) into `data`, which has one.
        unsafe { self.ethtool(Op::EthtoolGSsetInfo, name, &mut info) }?;
        let count = if info.sset_mask & (1 << ETH_SS_FEATURES) != 0 {
            info.data[0]
        } else {
            0
        };
        if count == 0 || count > MAX_FEATURES {
            return Err(Error::new(Op::EthtoolGSsetInfo, libc::EOPNOTSUPP).with_interface(*name));
        }
        let count = count as usize;

        // Header then names, in u32 words so the header is aligned.
        let header = size_of::<GStrings>();
        let mut words = vec![0u32; (header + count * ETH_GSTRING_LEN).div_ceil(4)];
        let head = GStrings {
            cmd: ETHTOOL_GSTRINGS,
            string_set: ETH_SS_FEATURES,
            len: 0,
        };
        words[0] = head.cmd;
        words[1] = head.string_set;
        // SAFETY: ETHTOOL_GSTRINGS reads the 12-byte header and writes `len`
        // and the set's strings, `count * ETH_GSTRING_LEN` bytes for the
        // count GSSET_INFO gave (the set's size is fixed by the kernel
        // build), which the buffer holds behind the header.
        unsafe { self.ethtool(Op::EthtoolGStrings, name, words.as_mut_slice()) }?;
        let got = (words[2] as usize).min(count);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let names: Vec<String> = bytes[header..header + got * ETH_GSTRING_LEN]
            .chunks_exact(ETH_GSTRING_LEN)
            .map(slot_name)
            .collect();

        let blocks = got.div_ceil(32);
        let head = GFeatures {
            cmd: ETHTOOL_GFEATURES,
            size: blocks as u32,
        };
        let mut words = vec![0u32; size_of::<GFeatures>() / 4 + 4 * blocks];
        words[0] = head.cmd;
        words[1] = head.size;
        // SAFETY: ETHTOOL_GFEATURES reads the 8-byte header, writes `size`
        // back and at most `size` (here `blocks`) 16-byte blocks behind it,
        // which the buffer holds.
        unsafe { self.ethtool(Op::EthtoolGFeatures, name, words.as_mut_slice()) }?;
        let blocks: Vec<FeatureBlock> = words[size_of::<GFeatures>() / 4..]
            .chunks_exact(4)
            .map(|w| FeatureBlock {
                available: w[0],
                requested: w[1],
                active: w[2],
                never_changed: w[3],
            })
            .collect();
        Ok(Features::from_parts(names, &blocks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    /// The layouts of include/uapi/linux/ethtool.h.
    #[test]
    fn layouts_match_the_kernel() {
        assert_eq!(size_of::<SsetInfo>(), 24); // 16-byte header, data[1], padding
        assert_eq!(offset_of!(SsetInfo, sset_mask), 8);
        assert_eq!(offset_of!(SsetInfo, data), 16);
        assert_eq!(size_of::<GStrings>(), 12);
        assert_eq!(offset_of!(GStrings, len), 8);
        assert_eq!(size_of::<GFeatures>(), 8);
        assert_eq!(size_of::<FeatureBlock>(), 16);
        assert_eq!(offset_of!(FeatureBlock, active), 8);
    }

    #[test]
    fn numbers_match_the_kernel() {
        assert_eq!(ioctl::SIOCETHTOOL, 0x8946);
        assert_eq!(libc::c_ulong::from(ioctl::SIOCETHTOOL), libc::SIOCETHTOOL);
        // libc has none of these: the values of include/uapi/linux/ethtool.h.
        assert_eq!(ETHTOOL_GSTRINGS, 0x0000_001b);
        assert_eq!(ETHTOOL_GSSET_INFO, 0x0000_0037);
        assert_eq!(ETHTOOL_GFEATURES, 0x0000_003a);
        assert_eq!(ETH_SS_FEATURES, 4); // ETH_SS_TEST 0, STATS, PRIV_FLAGS, NTUPLE_FILTERS, FEATURES
        assert_eq!(ETH_GSTRING_LEN, 32);
    }

    #[test]
    fn bits_map_to_names_across_blocks() {
        let names: Vec<String> = (0..40).map(|i| format!("f{i}")).collect();
        let blocks = [
            FeatureBlock {
                available: !0,
                requested: 1,
                active: 1 | 1 << 31,
                never_changed: 1 << 31,
            },
            FeatureBlock {
                available: 0,
                requested: 0,
                active: 1 << 7,
                never_changed: 0,
            },
        ];
        let f = Features::from_parts(names, &blocks);
        assert!(f.is_active("f0") && f.get("f0").is_some_and(|x| x.requested && !x.fixed));
        assert!(f.is_active("f31") && f.get("f31").is_some_and(|x| x.fixed));
        assert!(!f.is_active("f1"));
        assert!(f.is_active("f39") && f.get("f39").is_some_and(|x| x.fixed));
        assert!(!f.is_active("nope"));
        assert_eq!(slot_name(b"tx-csum\0\0\0"), "tx-csum");
    }
}
