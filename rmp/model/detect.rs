// SPDX-License-Identifier: GPL-2.0

//! Which RMP the module drives, decided from what the host reports: the one statement of
//! when the hardware RMP is usable and, when it is not, of why.
//!
//! The kernel gathers a [`Snapshot`]: the kernel's own CPU feature bits for CPUID
//! 0x8000001f (after it cleared what it does not support), the two CPUID leaves it keeps
//! no bits for, `cc_platform_has(CC_ATTR_HOST_SEV_SNP)`, the `SYSCFG` and RMP MSRs and
//! the RMP segment table. [`decide`] turns it into a [`Decision`]. Host tests and KUnit
//! give it the snapshots of the reference hosts in `rmp::reference` instead, so every
//! branch below is exercised without SNP hardware.
//!
//! `cc_platform_has(CC_ATTR_HOST_SEV_SNP)` is set at boot when the CPU, the BIOS and the
//! RMP table allow SNP. The SNP instructions work only once `SYSCFG.SNPEn` is set, which
//! `snp_prepare()` does when the CCP driver initialises SNP (kvm_amd loading with SNP
//! enabled and firmware that supports it) and an SNP shutdown clears again. With SNPEn
//! clear, RMPUPDATE, PSMASH and RMPREAD raise #UD: [`decide`] refuses the hardware then,
//! and the hardware backend checks the bit again before every instruction
//! ([`Syscfg::snp_enabled`], [`rmpupdate_without_snp`]).

use super::bits::bitfield;
use super::cpuid::MemEncryptFeatures;
use super::entry::{
    State,
    Target,
    PAGE_SHIFT, //
};
use super::error::RmpError;
use super::geometry::{
    Contiguous,
    GeometryError,
    RmpBase,
    RmpCfg,
    RmpEnd,
    SegmentCount,
    SegmentShifts,
    Segmented,
    BOOKKEEPING_SIZE, //
};

/// CPUID leaf of the memory-encryption features.
pub const CPUID_MEM_ENCRYPT: u32 = 0x8000_001f;
/// CPUID leaf of the RMP segment limits (no kernel feature bits describe it).
pub const CPUID_RMP_SEGMENTS: u32 = 0x8000_0025;
/// MSR number of `SYSCFG`.
pub const MSR_SYSCFG: u32 = 0xc001_0010;

bitfield! {
    /// The `SYSCFG` MSR, as far as SNP is concerned.
    pub struct Syscfg {
        /// `MtrrFixDramModEn`: set on every CPU before SNP is enabled, cleared after an
        /// SNP shutdown.
        19:19 mfdm, with_mfdm: bool;
        /// Memory encryption (SME/SEV) is enabled.
        23:23 mem_encrypt, with_mem_encrypt: bool;
        /// `SNPEn`: the RMP is enforced and the SNP instructions work.
        24:24 snp_en, with_snp_en: bool;
        /// `VMPLEn`: VM permission levels are enabled.
        25:25 vmpl_en, with_vmpl_en: bool;
    }
}

impl Syscfg {
    /// Checks that SNP is enabled, so that an SNP instruction would not raise #UD.
    ///
    /// # Errors
    ///
    /// [`RmpError::SnpDisabled`] when `SNPEn` is clear.
    pub fn snp_enabled(self) -> Result<(), RmpError> {
        if self.snp_en() {
            Ok(())
        } else {
            Err(RmpError::SnpDisabled)
        }
    }
}

/// Returns what an RMPUPDATE to `state` amounts to while SNP is not enabled, where the
/// instruction itself cannot be issued.
///
/// Making a page shared succeeds: with `SNPEn` clear the CPU does not check the RMP,
/// so host writes to the page cannot fault, and SNP is enabled again only through
/// `snp_prepare()`, which clears the whole RMP first. A page that was private before an
/// SNP shutdown can therefore go back to the host instead of being leaked. Everything
/// else fails with [`RmpError::SnpDisabled`]; an invalid state fails as RMPUPDATE would.
///
/// # Errors
///
/// [`RmpError::SnpDisabled`] for an assignment, [`RmpError::FailInput`] for an invalid
/// state.
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::model::{rmpupdate_without_snp, PageSize, RmpError, State};
///
/// assert_eq!(rmpupdate_without_snp(&State::shared(PageSize::Size2M)), Ok(()));
/// let private = State::private(0x1000, PageSize::Size4K, 1, false);
/// assert_eq!(rmpupdate_without_snp(&private), Err(RmpError::SnpDisabled));
/// ```
pub fn rmpupdate_without_snp(state: &State) -> Result<(), RmpError> {
    match state.decode() {
        Ok(Target::Shared { .. }) => Ok(()),
        Ok(Target::Private { .. }) => Err(RmpError::SnpDisabled),
        Err(_) => Err(RmpError::FailInput),
    }
}

/// Which backend the `backend=` parameter asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// The hardware when it is usable, else the emulation.
    Auto,
    /// The hardware, or fail to load.
    Hardware,
    /// The emulation, even on an SNP host.
    Emulated,
}

/// Everything the decision depends on, read once at load (or recorded on a host).
///
/// `None` means that the value could not be read (the MSR faulted) or was not read
/// because an earlier check already failed.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    /// The highest extended CPUID leaf (the kernel's `extended_cpuid_level`).
    pub max_extended_leaf: u32,
    /// The kernel's view of CPUID 0x8000001f EAX: its capability word, with the bits
    /// it cleared (no BIOS support, `mem_encrypt=off`, no RMP table) clear.
    pub features: MemEncryptFeatures,
    /// CPUID 0x8000001f ECX: encrypted guests the CPU can run at once.
    pub guests: u32,
    /// CPUID 0x8000001f EDX: the first ASID of plain SEV guests.
    pub min_sev_asid: u32,
    /// CPUID 0x80000025 EAX (zero without the leaf).
    pub segment_shifts: SegmentShifts,
    /// CPUID 0x80000025 EBX (zero without the leaf).
    pub segment_count: SegmentCount,
    /// `cc_platform_has(CC_ATTR_HOST_SEV_SNP)`.
    pub host_snp: bool,
    /// The `SYSCFG` MSR.
    pub syscfg: Option<Syscfg>,
    /// The `RMP_BASE` MSR.
    pub rmp_base: Option<RmpBase>,
    /// The `RMP_END` MSR.
    pub rmp_end: Option<RmpEnd>,
    /// The `RMP_CFG` MSR (read only when the CPU has segmented RMP support).
    pub rmp_cfg: Option<RmpCfg>,
    /// The quadwords of the RMP segment table, when the RMP is segmented.
    pub rst: Option<&'a [u64]>,
    /// One past the highest PFN of RAM.
    pub end_pfn: u64,
}

impl Snapshot<'_> {
    /// Returns whether the CPU implements leaf 0x8000001f.
    pub fn has_leaf(&self) -> bool {
        self.max_extended_leaf >= CPUID_MEM_ENCRYPT
    }

    /// Returns whether the RMP is segmented (the CPU supports it and `RMP_CFG` enables
    /// it), as Linux decides it.
    pub fn segmented(&self) -> bool {
        self.features.segmented_rmp() && self.rmp_cfg.is_some_and(|cfg| cfg.segmented())
    }

    /// Returns the physical address of the segment table to read into
    /// [`Snapshot::rst`], if the RMP is segmented and has a base.
    pub fn rst_address(&self) -> Option<u64> {
        let base = self.rmp_base?.address();
        (self.segmented() && base != 0).then_some(base + BOOKKEEPING_SIZE)
    }

    /// Checks everything the hardware backend needs and describes its table.
    ///
    /// # Errors
    ///
    /// The [`Reason`] the hardware cannot be used.
    pub fn hardware(&self) -> Result<HardwareRmp, Reason> {
        if !self.has_leaf() {
            return Err(Reason::NoLeaf);
        }
        match (self.features.snp(), self.host_snp) {
            (false, false) => return Err(Reason::NoSnp),
            (false, true) => return Err(Reason::FeatureCleared),
            (true, false) => return Err(Reason::HostOff),
            (true, true) => {}
        }
        let syscfg = self.syscfg.ok_or(Reason::Unreadable("SYSCFG"))?;
        if syscfg.snp_enabled().is_err() {
            return Err(Reason::NotInitialised);
        }
        let base = self.rmp_base.ok_or(Reason::Unreadable("RMP_BASE"))?;
        let rmpread = self.features.rmpread();
        if self.features.segmented_rmp() && self.rmp_cfg.is_none() {
            return Err(Reason::Unreadable("RMP_CFG"));
        }
        let table = if self.segmented() {
            if !rmpread {
                return Err(Reason::SegmentedWithoutRmpread);
            }
            let cfg = self.rmp_cfg.unwrap_or_default();
            let rst = self
                .rst
                .ok_or(Reason::Unreadable("the RMP segment table"))?;
            let t = Segmented::new(
                base,
                cfg,
                self.segment_shifts,
                self.segment_count,
                rst,
                self.end_pfn,
            )
            .map_err(Reason::Table)?;
            Table::Segmented {
                base: t.base(),
                shift: t.shift(),
                segments: t.segments(),
                end_pfn: t.covered_end() >> PAGE_SHIFT,
            }
        } else {
            let end = self.rmp_end.ok_or(Reason::Unreadable("RMP_END"))?;
            let t = Contiguous::new(base, end).map_err(Reason::Table)?;
            t.covers(self.end_pfn).map_err(Reason::Table)?;
            Table::Contiguous(t)
        };
        Ok(HardwareRmp { table, rmpread })
    }
}

/// Decides which backend to drive for `request` on the host `snapshot` describes.
///
/// `backend=auto` takes the hardware when [`Snapshot::hardware`] accepts it and the
/// emulation otherwise, saying why; `backend=hardware` is refused for the same reasons.
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::model::{decide, Decision, Reason, Request, Snapshot};
///
/// // A machine without AMD memory encryption (QEMU's EPYC model stops at 0x8000001e).
/// let s = Snapshot {
///     max_extended_leaf: 0x8000_001e,
///     ..Snapshot::EMPTY
/// };
/// assert_eq!(decide(&s, Request::Auto), Decision::Emulated(Reason::NoLeaf));
/// assert_eq!(decide(&s, Request::Hardware), Decision::Refused(Reason::NoLeaf));
/// assert_eq!(decide(&s, Request::Emulated), Decision::Emulated(Reason::Requested));
/// ```
pub fn decide(snapshot: &Snapshot<'_>, request: Request) -> Decision {
    if request == Request::Emulated {
        return Decision::Emulated(Reason::Requested);
    }
    match snapshot.hardware() {
        Ok(hw) => Decision::Hardware(hw),
        Err(reason) if request == Request::Hardware => Decision::Refused(reason),
        Err(reason) => Decision::Emulated(reason),
    }
}

impl Snapshot<'_> {
    /// A machine without any of it: no leaf, no SNP, nothing readable, no RAM.
    pub const EMPTY: Snapshot<'static> = Snapshot {
        max_extended_leaf: 0,
        features: MemEncryptFeatures::from_raw(0),
        guests: 0,
        min_sev_asid: 0,
        segment_shifts: SegmentShifts::from_raw(0),
        segment_count: SegmentCount::from_raw(0),
        host_snp: false,
        syscfg: None,
        rmp_base: None,
        rmp_end: None,
        rmp_cfg: None,
        rst: None,
        end_pfn: 0,
    };
}

/// What the module does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Drive the hardware RMP, laid out as described.
    Hardware(HardwareRmp),
    /// Drive the emulated RMP, for this reason.
    Emulated(Reason),
    /// Fail to load (`backend=hardware`), for this reason.
    Refused(Reason),
}

impl Decision {
    /// Returns why this decision was taken, for the log and debugfs.
    pub fn reason(&self) -> Reason {
        match *self {
            Self::Hardware(_) => Reason::Enabled,
            Self::Emulated(reason) | Self::Refused(reason) => reason,
        }
    }
}

/// How the hardware RMP is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// One array of entries from PFN 0 on, between `RMP_BASE` and `RMP_END`.
    Contiguous(Contiguous),
    /// Entries spread over segments; only RMPREAD reads them.
    Segmented {
        /// Physical address of the bookkeeping area (`RMP_BASE`).
        base: u64,
        /// log2 of the memory one segment covers.
        shift: u32,
        /// Segment-table entries in use.
        segments: usize,
        /// One past the highest PFN the segments that start in RAM cover.
        end_pfn: u64,
    },
}

/// The hardware RMP the module may drive: every check of [`Snapshot::hardware`] passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HardwareRmp {
    /// The table's layout.
    pub table: Table,
    /// Whether entries are read with RMPREAD (else from a mapping of the table).
    pub rmpread: bool,
}

impl HardwareRmp {
    /// Returns the physical address of the table (`RMP_BASE`).
    pub fn base(&self) -> u64 {
        match self.table {
            Table::Contiguous(t) => t.base(),
            Table::Segmented { base, .. } => base,
        }
    }

    /// Returns the last byte of a contiguous table, and 0 for a segmented one, whose
    /// `RMP_END` is unused (what `snp_host_status.rmp_end` reports).
    pub fn end(&self) -> u64 {
        match self.table {
            Table::Contiguous(t) => t.base() + (t.size() - 1),
            Table::Segmented { .. } => 0,
        }
    }

    /// Returns one past the highest PFN the table has entries for.
    pub fn end_pfn(&self) -> u64 {
        match self.table {
            Table::Contiguous(t) => t.entries(),
            Table::Segmented { end_pfn, .. } => end_pfn,
        }
    }

    /// Returns whether the table is segmented.
    pub fn segmented(&self) -> bool {
        matches!(self.table, Table::Segmented { .. })
    }

    /// Returns the contiguous table whose entries the backend reads from memory, when
    /// the CPU has no RMPREAD.
    pub fn mapped_table(&self) -> Option<Contiguous> {
        match self.table {
            Table::Contiguous(t) if !self.rmpread => Some(t),
            _ => None,
        }
    }
}

/// Why the module drives the RMP it drives, in words an operator can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// SNP is initialised and the table is usable.
    Enabled,
    /// `backend=emulated` asked for the emulation.
    Requested,
    /// The CPU has no CPUID leaf 0x8000001f.
    NoLeaf,
    /// The kernel reports no SEV-SNP on this CPU.
    NoSnp,
    /// The kernel enabled SNP but cleared its SNP feature bit, which it never does.
    FeatureCleared,
    /// The CPU supports SNP but the kernel did not enable it at boot.
    HostOff,
    /// SNP is supported and the RMP set up, but SNP is not initialised (`SNPEn` clear).
    NotInitialised,
    /// An MSR or the segment table could not be read.
    Unreadable(&'static str),
    /// A segmented RMP on a CPU without RMPREAD.
    SegmentedWithoutRmpread,
    /// The table the MSRs describe is unusable.
    Table(GeometryError),
}

impl core::fmt::Display for Reason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Enabled => f.write_str("the host kernel runs with SEV-SNP initialised"),
            Self::Requested => f.write_str("backend=emulated asks for it"),
            Self::NoLeaf => {
                f.write_str("the CPU has no CPUID leaf 0x8000001f (no AMD memory encryption)")
            }
            Self::NoSnp => f.write_str(
                "the kernel reports no SEV-SNP on this CPU (CPU, BIOS or kernel command line)",
            ),
            Self::FeatureCleared => f.write_str(
                "the kernel enabled SEV-SNP but cleared its sev_snp CPU feature; not using it",
            ),
            Self::HostOff => f.write_str(
                "the CPU supports SEV-SNP but the host kernel did not enable it at boot \
                 (see its SEV-SNP messages)",
            ),
            Self::NotInitialised => f.write_str(
                "SEV-SNP is supported but not initialised (SYSCFG.SNPEn is clear): the CCP \
                 driver initialises it when kvm_amd loads with sev_snp=1 and the SEV firmware \
                 supports SNP; an SNP shutdown (unloading kvm_amd or ccp) clears it again",
            ),
            Self::Unreadable(what) => write!(f, "{what} cannot be read"),
            Self::SegmentedWithoutRmpread => f.write_str(
                "the RMP is segmented but the CPU has no RMPREAD, so its entries cannot be read",
            ),
            Self::Table(e) => write!(f, "the RMP table is unusable: {e}"),
        }
    }
}
