// SPDX-License-Identifier: GPL-2.0

//! Geometry of the kernel direct map: mapping levels and the regions they cover.
//!
//! The direct map maps all RAM at 4K, 2M or 1G granularity. Which region a
//! page belongs to at each level is what the split and merge planning in
//! [`plan`] reasons about; this file states that arithmetic once.

pub mod plan;

// The names the module uses; the rest is reached as `plan::...`.
pub use self::plan::{Policy, Protection, Region, Transitions};

/// The size of one direct-map leaf.
///
/// # Examples
///
/// ```
/// use snp_host_model::directmap::model::Level;
///
/// assert_eq!(Level::Size2M.pages(), 512);
/// assert_eq!(Level::Size1G.region_start(0x4_0123), 0x4_0000);
/// assert_eq!(Level::Size2M.region_start(0x4_0123), 0x4_0000);
/// assert_eq!(Level::Size2M.region_start(0x4_0223), 0x4_0200);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A 4 KiB page-table entry.
    Size4K,
    /// A 2 MiB page-middle-directory leaf.
    Size2M,
    /// A 1 GiB page-upper-directory leaf.
    Size1G,
}

impl Level {
    /// Returns log2 of the number of 4K pages one leaf of this level maps.
    pub const fn order(self) -> u32 {
        match self {
            Level::Size4K => 0,
            Level::Size2M => 9,
            Level::Size1G => 18,
        }
    }

    /// Returns the number of 4K pages one leaf of this level maps.
    pub const fn pages(self) -> u64 {
        1 << self.order()
    }

    /// Returns the first PFN of the leaf of this level that maps `pfn`.
    pub const fn region_start(self, pfn: u64) -> u64 {
        pfn & !(self.pages() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::Level;

    #[test]
    fn regions_nest() {
        for pfn in [0u64, 1, 511, 512, 0x3_ffff, 0x4_0000, u64::MAX >> 12] {
            let (s4k, s2m, s1g) = (
                Level::Size4K.region_start(pfn),
                Level::Size2M.region_start(pfn),
                Level::Size1G.region_start(pfn),
            );
            assert_eq!(s4k, pfn);
            assert!(s1g <= s2m && s2m <= pfn && pfn - s2m < 512 && pfn - s1g < 1 << 18);
        }
        assert!(Level::Size4K < Level::Size2M && Level::Size2M < Level::Size1G);
        assert_eq!(Level::Size1G.pages(), 262_144);
    }
}
