// SPDX-License-Identifier: GPL-2.0

//! Where the RMP entry of a page lives: the MSR, CPUID and segment-table formats, and
//! contiguous and segmented table geometry with bounds-checked lookups.
//!
//! Every PFN handed to [`Contiguous::locate`] or [`Segmented::locate`] is treated as
//! untrusted: each index derived from it is checked against the table before it is
//! used, and every address is computed with checked arithmetic. The kernel code that
//! turns a location into a pointer must still clamp the index after the checks
//! (`array_index_nospec()` in C; `kernel_ext::memory::Reserved::read` in the module),
//! since `core` has no speculation barrier.

use super::bits::bitfield;
use super::entry::{
    PageSize,
    PAGE_SHIFT, //
};
use super::error::RmpError;

/// Bytes at the start of the table that the CPU keeps for itself (never touched).
pub const BOOKKEEPING_SIZE: u64 = 16 * 1024;

/// Bytes per RMP entry.
pub const ENTRY_SIZE: u64 = 16;

/// Bytes of the RMP segment table that follows the bookkeeping area of a segmented RMP.
pub const RST_SIZE: u64 = 4096;

/// Entries in the RMP segment table.
pub const RST_ENTRIES: usize = 512;

/// Segment shift Linux gives a contiguous table, which then behaves as one segment
/// covering the whole 52-bit physical address space.
pub const CONTIGUOUS_SHIFT: u32 = 52;

/// MSR number of `RMP_BASE`.
pub const MSR_RMP_BASE: u32 = 0xc001_0132;
/// MSR number of `RMP_END`.
pub const MSR_RMP_END: u32 = 0xc001_0133;
/// MSR number of `RMP_CFG`.
pub const MSR_RMP_CFG: u32 = 0xc001_0136;

bitfield! {
    /// The `RMP_BASE` MSR.
    pub struct RmpBase {
        /// Physical address bits 51:13 of the first byte of the table.
        51:13 address_bits, with_address_bits: u64;
    }
}

bitfield! {
    /// The `RMP_END` MSR (contiguous tables only; zero when the RMP is segmented).
    pub struct RmpEnd {
        /// Physical address bits 51:13 of the last 8 KiB granule of the table.
        51:13 address_bits, with_address_bits: u64;
    }
}

bitfield! {
    /// The `RMP_CFG` MSR.
    pub struct RmpCfg {
        /// The RMP is segmented.
        0:0 segmented, with_segmented: bool;
        /// log2 of the physical memory one segment covers.
        13:8 segment_shift, with_segment_shift: u32;
    }
}

bitfield! {
    /// CPUID 0x80000025 EAX: the segment shifts the processor supports.
    pub struct SegmentShifts {
        /// Smallest supported segment shift.
        5:0 min, with_min: u32;
        /// Largest supported segment shift.
        11:6 max, with_max: u32;
    }
}

bitfield! {
    /// CPUID 0x80000025 EBX: how many segment-table entries the hardware uses.
    pub struct SegmentCount {
        /// Number of segments the processor caches (and, with `limited`, the
        /// number of segment-table entries it uses).
        9:0 count, with_count: u32;
        /// `count` is a hard limit on the segment-table entries.
        10:10 limited, with_limited: bool;
    }
}

bitfield! {
    /// One entry of the RMP segment table.
    pub struct RstEntry {
        /// Physical memory the segment maps, in GiB (0: segment absent).
        19:0 mapped_gib, with_mapped_gib: u64;
        /// Physical address bits 51:20 of the segment's first entry.
        51:20 base_bits, with_base_bits: u64;
    }
}

impl RmpBase {
    /// Returns the physical address of the table (of its bookkeeping area).
    pub fn address(self) -> u64 {
        self.address_bits() << 13
    }
}

impl RmpEnd {
    /// Returns the physical address of the last byte of the table.
    ///
    /// The MSR names an 8 KiB granule; the table is taken to end with it. Linux uses the
    /// raw MSR value instead; the two agree whenever the firmware sets bits 12:0, as it
    /// does (the table size must be a multiple of 1 MiB).
    pub fn last_byte(self) -> u64 {
        (self.address_bits() << 13) | 0x1fff
    }
}

impl RstEntry {
    /// Returns the physical address of the segment's first RMP entry.
    #[allow(dead_code, reason = "used by `Segmented::locate` only, see there")]
    pub fn base(self) -> u64 {
        self.base_bits() << 20
    }

    /// Returns the bytes of physical memory the segment maps, before clamping to the
    /// segment size.
    pub fn mapped_bytes(self) -> u64 {
        self.mapped_gib() << 30
    }
}

/// Why a table description is unusable, or a page has no entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeometryError {
    /// `RMP_BASE` (or `RMP_END` for a contiguous table) is zero: the firmware reserved
    /// no table.
    NotReserved,
    /// `RMP_BASE` lies above `RMP_END`, or the table is too small to hold its
    /// bookkeeping area.
    BadRange,
    /// `RMP_CFG` says the table is not segmented, but a segmented geometry was asked for.
    NotSegmented,
    /// The segment shift lies outside what CPUID 0x80000025 allows, or outside 12..=52.
    BadShift,
    /// The segment table is shorter than the number of entries the hardware uses.
    ShortRst,
    /// The table does not cover all RAM: it needs `need` bytes (or must cover up to
    /// `need` for a segmented table) and has `have`.
    TooSmall {
        /// Bytes the table needs (contiguous) or the physical address its segments must
        /// reach (segmented).
        need: u64,
        /// Bytes the table has, or the physical address its segments reach.
        have: u64,
    },
    /// The page has no RMP entry.
    NotCovered,
}

impl core::fmt::Display for GeometryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotReserved => {
                f.write_str("the firmware reserved no table (RMP_BASE/RMP_END zero)")
            }
            Self::BadRange => f.write_str("RMP_BASE and RMP_END do not delimit a table"),
            Self::NotSegmented => f.write_str("RMP_CFG does not enable segments"),
            Self::BadShift => {
                f.write_str("the segment size is outside what CPUID 0x80000025 allows")
            }
            Self::ShortRst => f.write_str("the segment table is shorter than the entries in use"),
            Self::TooSmall { need, have } => {
                write!(
                    f,
                    "it does not cover all RAM (needs {need:#x}, has {have:#x})"
                )
            }
            Self::NotCovered => f.write_str("the page has no RMP entry"),
        }
    }
}

impl From<GeometryError> for RmpError {
    fn from(_: GeometryError) -> Self {
        RmpError::NotCovered
    }
}

/// Where one page's RMP entry lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Physical address of the 16-byte entry.
    pub address: u64,
    /// Segment holding the entry (0 for a contiguous table).
    pub segment: usize,
    /// Index of the entry within its segment.
    pub index: u64,
}

/// A contiguous RMP: bookkeeping, then one entry per 4K page from PFN 0 on.
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::model::{Contiguous, PageSize, RmpBase, RmpEnd};
///
/// // 16 KiB of bookkeeping and 1 MiB of entries: 65536 pages covered.
/// let base = 0x80_0000u64;
/// let t = Contiguous::new(RmpBase::from_raw(base), RmpEnd::from_raw(base + 0x10_3fff))?;
/// assert_eq!(t.entries(), 0x1_0000);
/// assert!(t.covers(0x1_0000).is_ok() && t.covers(0x1_0001).is_err());
/// assert_eq!(t.locate(1, PageSize::Size4K)?.address, base + 0x4000 + 16);
/// // A 2M lookup resolves to the entry of the 2M-aligned page.
/// assert_eq!(t.locate(0x3ff, PageSize::Size2M)?.address, base + 0x4000 + 0x200 * 16);
/// assert!(t.locate(0x1_0000, PageSize::Size4K).is_err());
/// # Ok::<(), snp_host_model::rmp::model::GeometryError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contiguous {
    base: u64,
    last: u64,
}

impl Contiguous {
    /// Describes the table the `RMP_BASE` and `RMP_END` MSRs delimit.
    ///
    /// # Errors
    ///
    /// [`GeometryError::NotReserved`] if either MSR is zero, [`GeometryError::BadRange`]
    /// if the range is inverted or cannot hold the bookkeeping area.
    pub fn new(base: RmpBase, end: RmpEnd) -> Result<Self, GeometryError> {
        if base.address() == 0 || end.address_bits() == 0 {
            return Err(GeometryError::NotReserved);
        }
        let (base, last) = (base.address(), end.last_byte());
        if last < base || last - base < BOOKKEEPING_SIZE {
            return Err(GeometryError::BadRange);
        }
        Ok(Self { base, last })
    }

    /// Returns the physical address of the table.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Returns the size of the table in bytes, bookkeeping included.
    pub fn size(&self) -> u64 {
        // `new` guarantees last - base >= BOOKKEEPING_SIZE, and the MSR fields keep both
        // below 2^52: neither step can wrap.
        self.last - self.base + 1
    }

    /// Returns how many pages the table has entries for (PFN 0 up to this, exclusive).
    pub fn entries(&self) -> u64 {
        (self.size() - BOOKKEEPING_SIZE) / ENTRY_SIZE
    }

    /// Checks that the table has an entry for every page below `end_pfn` (one past the
    /// highest PFN of RAM) and for the pages of the table itself, as Linux requires.
    ///
    /// # Errors
    ///
    /// [`GeometryError::TooSmall`] with the sizes needed and available.
    pub fn covers(&self, end_pfn: u64) -> Result<(), GeometryError> {
        let table_end_pfn = (self.last >> PAGE_SHIFT) + 1;
        let pages = end_pfn.max(table_end_pfn);
        let need = pages
            .checked_mul(ENTRY_SIZE)
            .and_then(|entries| entries.checked_add(BOOKKEEPING_SIZE))
            .unwrap_or(u64::MAX);
        if need > self.size() {
            return Err(GeometryError::TooSmall {
                need,
                have: self.size(),
            });
        }
        Ok(())
    }

    /// Returns where the entry governing `pfn` at `size` lives.
    ///
    /// # Errors
    ///
    /// [`GeometryError::NotCovered`] if the table has no entry for the page.
    pub fn locate(&self, pfn: u64, size: PageSize) -> Result<Location, GeometryError> {
        let index = size.align_down(pfn);
        if index >= self.entries() {
            return Err(GeometryError::NotCovered);
        }
        // index < entries, so the offset stays inside the table and cannot wrap.
        Ok(Location {
            address: self.base + BOOKKEEPING_SIZE + index * ENTRY_SIZE,
            segment: 0,
            index,
        })
    }
}

/// A segmented RMP: bookkeeping, a segment table, and per-segment entry arrays.
///
/// The segment table is borrowed as the raw quadwords the firmware wrote (the kernel maps
/// it once at setup); nothing in it is trusted until [`Segmented::new`] checked it.
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::model::{
///     PageSize, RmpBase, RmpCfg, RstEntry, SegmentCount, SegmentShifts, Segmented,
/// };
///
/// // 1 GiB segments (shift 30); segment 0 maps 1 GiB, segment 1 is absent, segment 2
/// // maps 1 GiB.
/// let cfg = RmpCfg::default().with_segmented(true).with_segment_shift(30);
/// let shifts = SegmentShifts::default().with_min(30).with_max(40);
/// let mut rst = [0u64; 512];
/// rst[0] = RstEntry::default().with_mapped_gib(1).with_base_bits(0x100).raw();
/// rst[2] = RstEntry::default().with_mapped_gib(1).with_base_bits(0x200).raw();
/// let t = Segmented::new(
///     RmpBase::from_raw(0x800_0000), cfg, shifts, SegmentCount::default(), &rst, 0x4_0000,
/// )?;
/// let loc = t.locate(0x8_0001, PageSize::Size4K)?; // 2 GiB + 4 KiB
/// assert_eq!((loc.segment, loc.index, loc.address), (2, 1, (0x200 << 20) + 16));
/// assert!(t.locate(0x4_0000, PageSize::Size4K).is_err()); // in the absent segment
/// # Ok::<(), snp_host_model::rmp::model::GeometryError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Segmented<'a> {
    base: u64,
    shift: u32,
    rst: &'a [u64],
    ram_end: u64,
}

impl<'a> Segmented<'a> {
    /// Checks the configuration and the segment table and describes the table.
    ///
    /// `rst` holds the segment table's quadwords; `end_pfn` is one past the highest PFN
    /// of RAM, which the segments must cover.
    ///
    /// # Errors
    ///
    /// [`GeometryError::NotReserved`] without `RMP_BASE`, [`GeometryError::NotSegmented`]
    /// if `RMP_CFG` disagrees, [`GeometryError::BadShift`] for an unsupported segment
    /// size, [`GeometryError::ShortRst`] if `rst` is shorter than the entries in use, and
    /// [`GeometryError::TooSmall`] if the segments stop short of `end_pfn`.
    pub fn new(
        base: RmpBase,
        cfg: RmpCfg,
        shifts: SegmentShifts,
        count: SegmentCount,
        rst: &'a [u64],
        end_pfn: u64,
    ) -> Result<Self, GeometryError> {
        if base.address() == 0 {
            return Err(GeometryError::NotReserved);
        }
        if !cfg.segmented() {
            return Err(GeometryError::NotSegmented);
        }
        let shift = cfg.segment_shift();
        if shift < shifts.min()
            || shift > shifts.max()
            || !(PAGE_SHIFT..=CONTIGUOUS_SHIFT).contains(&shift)
        {
            return Err(GeometryError::BadShift);
        }
        let used = if count.limited() {
            usize::try_from(count.count())
                .unwrap_or(usize::MAX)
                .min(RST_ENTRIES)
        } else {
            RST_ENTRIES
        };
        let rst = rst.get(..used).ok_or(GeometryError::ShortRst)?;
        let ram_end = end_pfn.saturating_mul(1 << PAGE_SHIFT);
        let table = Self {
            base: base.address(),
            shift,
            rst,
            ram_end,
        };
        let covered = table.covered_below(ram_end);
        if covered < ram_end {
            return Err(GeometryError::TooSmall {
                need: ram_end,
                have: covered,
            });
        }
        Ok(table)
    }

    /// Returns the physical address of the table (of its bookkeeping area).
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Returns the physical address of the segment table.
    #[allow(
        dead_code,
        reason = "host tests; the module locates the table in `detect`"
    )]
    pub fn rst_address(&self) -> u64 {
        self.base + BOOKKEEPING_SIZE
    }

    /// Returns the segment shift.
    pub fn shift(&self) -> u32 {
        self.shift
    }

    /// Returns the number of segment-table entries in use.
    pub fn segments(&self) -> usize {
        self.rst.len()
    }

    /// Returns where the memory the table covers ends, counting, like Linux, up to the
    /// end of the last segment that starts below `ram_end`: segments above RAM (trusted
    /// I/O) do not count.
    fn covered_below(&self, ram_end: u64) -> u64 {
        let mut covered = 0;
        for index in 0..self.rst.len() {
            let start = self.segment_start(index);
            let mapped = self.segment_mapped(index);
            if mapped != 0 && start < ram_end {
                covered = start + mapped;
            }
        }
        covered
    }

    /// Returns the physical address where the memory the segments cover ends (the end of
    /// the last present segment that starts in RAM, as [`Segmented::new`] checked it).
    pub fn covered_end(&self) -> u64 {
        self.covered_below(self.ram_end)
    }

    /// Returns the first physical address segment `index` covers.
    fn segment_start(&self, index: usize) -> u64 {
        // index < RST_ENTRIES = 2^9 and shift <= 52: at most 2^61, no wrap.
        (index as u64) << self.shift
    }

    /// Returns the bytes segment `index` maps, clamped to the segment size (0: absent).
    fn segment_mapped(&self, index: usize) -> u64 {
        let entry = RstEntry::from_raw(self.rst.get(index).copied().unwrap_or(0));
        entry.mapped_bytes().min(1 << self.shift)
    }

    /// Returns where the entry governing `pfn` at `size` lives.
    ///
    /// # Errors
    ///
    /// [`GeometryError::NotCovered`] if the page lies beyond the segments in use, in an
    /// absent segment, or past the part of its segment that is mapped.
    #[allow(
        dead_code,
        reason = "the module reads segmented tables with RMPREAD; host tests and fuzzing check this"
    )]
    pub fn locate(&self, pfn: u64, size: PageSize) -> Result<Location, GeometryError> {
        let address = size
            .align_down(pfn)
            .checked_mul(1 << PAGE_SHIFT)
            .ok_or(GeometryError::NotCovered)?;
        let segment =
            usize::try_from(address >> self.shift).map_err(|_| GeometryError::NotCovered)?;
        let entry = RstEntry::from_raw(*self.rst.get(segment).ok_or(GeometryError::NotCovered)?);
        let offset = address & ((1 << self.shift) - 1);
        if offset >= self.segment_mapped(segment) {
            return Err(GeometryError::NotCovered);
        }
        let index = offset >> PAGE_SHIFT;
        let address = index
            .checked_mul(ENTRY_SIZE)
            .and_then(|bytes| bytes.checked_add(entry.base()))
            .ok_or(GeometryError::NotCovered)?;
        Ok(Location {
            address,
            segment,
            index,
        })
    }
}
