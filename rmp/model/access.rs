// SPDX-License-Identifier: GPL-2.0

//! The RMP access checks: whether a host or guest access faults, and why.
//!
//! This is the single statement of the rules the fault path and the tests rely on (APM
//! vol. 2, "RMP and VMPL access checks"):
//!
//! - Host reads are never checked: they only ever see ciphertext.
//! - A host write faults (#PF with `X86_PF_RMP`) if its 4K page is assigned or
//!   immutable, or if the host maps it with a page larger than 4K and *any* 4K page
//!   under that mapping is assigned. A 1G mapping is checked as the 2M region that
//!   contains the target. This is why a guest page inside a 2M direct-map or THP mapping
//!   makes writes to its shared neighbours fault.
//! - A private guest access (C-bit set; instruction fetches and guest page-table walks are
//!   always private) needs the page assigned to the guest's ASID at the accessed GPA, an
//!   RMP page size no larger than the nested mapping, the validated bit (else #VC), and
//!   the rights of the vCPU's VMPL. Failures are nested page faults with the RMP bit.
//! - A shared guest access (C-bit clear) is checked like a host access: writes fault on
//!   an assigned or immutable page. The large-mapping rule is not modelled for guests.
//!
//! Where the APM leaves a case open the model chooses, and says so: a nested mapping
//! smaller than a 2M RMP entry faults with the RMP bit but without `SIZEM` (Linux sets no
//! expectation on it and resolves both cases with PSMASH); `SIZEM` is reserved for
//! PVALIDATE and RMPADJUST; a 2M nested mapping over 4K entries is allowed (the TLB
//! splinters the translation).
//!
//! The module does not check accesses yet (the fault path will), so this file is built
//! by `lib.rs` only, outside `rmp::model`; it moves into the model with its first user
//! in the module.

use super::guest::{
    Guest,
    GuestFault,
    NpfCode, //
};
use super::model::{
    Entry,
    PageSize,
    Perms,
    Rmp,
    RmpError,
    PAGE_SHIFT, //
};

/// The size of the page-table leaf that maps an access (host page tables or NPT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MapSize {
    /// A 4K page-table entry.
    Size4K,
    /// A 2M leaf.
    Size2M,
    /// A 1G leaf; RMP checks treat it as the 2M region containing the target.
    Size1G,
}

impl MapSize {
    /// Returns the RMP page size the hardware checks a mapping of this size as.
    pub const fn rmp_size(self) -> PageSize {
        match self {
            Self::Size4K => PageSize::Size4K,
            Self::Size2M | Self::Size1G => PageSize::Size2M,
        }
    }
}

/// Why a host write faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostFault {
    /// The target page is assigned (to a guest or to the firmware).
    Assigned {
        /// The target page.
        pfn: u64,
    },
    /// The target page is immutable.
    Immutable {
        /// The target page.
        pfn: u64,
    },
    /// The target page is shared, but an assigned page shares its large mapping;
    /// splitting the mapping to 4K resolves the fault.
    LargeMapping {
        /// The lowest assigned page under the mapping.
        pfn: u64,
    },
}

/// Answers whether a host access to `pfn`, mapped with a leaf of size `map`, faults.
///
/// Works against any backend. `Ok(None)` means the access proceeds.
///
/// # Errors
///
/// The backend's error if an entry cannot be read (`NotCovered` beyond the table).
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::model::{Emulated, PageSize, Rmp, State};
/// use snp_host_model::rmp::access::{check_host, HostFault, MapSize};
/// use snp_host_model::rmp::array_store::ArrayStore;
///
/// let mut rmp = Emulated::new(ArrayStore::<4>::new(), 1024);
/// rmp.rmpupdate(0x205, &State::private(0x5000, PageSize::Size4K, 1, false))?;
/// // A shared neighbour is writable through a 4K mapping, not through a 2M or 1G one.
/// assert_eq!(check_host(&rmp, 0x206, true, MapSize::Size4K)?, None);
/// assert_eq!(
///     check_host(&rmp, 0x206, true, MapSize::Size1G)?,
///     Some(HostFault::LargeMapping { pfn: 0x205 })
/// );
/// assert_eq!(check_host(&rmp, 0x205, true, MapSize::Size4K)?, Some(HostFault::Assigned { pfn: 0x205 }));
/// // Reads are never checked.
/// assert_eq!(check_host(&rmp, 0x205, false, MapSize::Size2M)?, None);
/// # Ok::<(), snp_host_model::rmp::model::RmpError>(())
/// ```
pub fn check_host<R: Rmp + ?Sized>(
    rmp: &R,
    pfn: u64,
    write: bool,
    map: MapSize,
) -> Result<Option<HostFault>, RmpError> {
    if !write {
        return Ok(None);
    }
    let record = rmp.rmpread(pfn)?;
    if record.assigned() {
        return Ok(Some(HostFault::Assigned { pfn }));
    }
    if record.immutable() {
        return Ok(Some(HostFault::Immutable { pfn }));
    }
    if map == MapSize::Size4K {
        return Ok(None);
    }
    Ok(rmp
        .find_assigned(pfn, map.rmp_size())?
        .map(|pfn| HostFault::LargeMapping { pfn }))
}

/// The kind of a guest access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch at CPL3.
    ExecUser,
    /// An instruction fetch at CPL0 to CPL2.
    ExecSupervisor,
}

impl AccessKind {
    /// Returns the VMPL right the access needs.
    pub const fn perms(self) -> Perms {
        match self {
            Self::Read => Perms::READ,
            Self::Write => Perms::WRITE,
            Self::ExecUser => Perms::EXEC_USER,
            Self::ExecSupervisor => Perms::EXEC_SUPERVISOR,
        }
    }

    /// Returns whether the access is an instruction fetch.
    pub const fn is_fetch(self) -> bool {
        matches!(self, Self::ExecUser | Self::ExecSupervisor)
    }
}

/// One guest access, after the nested page walk found its system page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestAccess {
    /// Who accesses.
    pub guest: Guest,
    /// The guest physical address accessed.
    pub gpa: u64,
    /// The system page the nested page tables map `gpa` to.
    pub pfn: u64,
    /// The size of the nested page-table leaf that maps `gpa`.
    pub npt: MapSize,
    /// What the access does.
    pub kind: AccessKind,
    /// The guest's page tables mark the access private (C-bit set).
    pub encrypted: bool,
    /// The access is part of the guest's own page-table walk.
    pub page_table: bool,
}

impl GuestAccess {
    /// Returns whether the hardware treats the access as private.
    pub const fn private(&self) -> bool {
        self.encrypted || self.page_table || self.kind.is_fetch()
    }

    /// Returns the nested page fault an RMP violation of this access raises.
    fn npf(&self) -> NpfCode {
        NpfCode::default()
            .with_present(true)
            .with_rmp(true)
            .with_write(self.kind == AccessKind::Write)
            .with_fetch(self.kind.is_fetch())
            .with_final_access(!self.page_table)
            .with_page_table(self.page_table)
            .with_encrypted(self.private())
    }
}

/// Answers whether a guest access faults, given the entry that governs its page.
///
/// `entry` is the page's effective entry: its own, or for a page inside a 2M entry the
/// 2M entry with the GPA of this 4K page (what [`Emulated::effective`] returns, and what
/// the hardware backend builds from raw table entries). `None` means the access proceeds.
///
/// [`Emulated::effective`]: super::Emulated::effective
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::model::{Entry, PageSize};
/// use snp_host_model::rmp::access::{check_guest, AccessKind, GuestAccess, MapSize};
/// use snp_host_model::rmp::guest::{Guest, GuestFault, Vmpl};
///
/// let page = Entry::default().assigned_to(0x7000, PageSize::Size4K, 9, false);
/// let mut access = GuestAccess {
///     guest: Guest { asid: 9, vmpl: Vmpl::Vmpl0 },
///     gpa: 0x7123,
///     pfn: 0x42,
///     npt: MapSize::Size4K,
///     kind: AccessKind::Read,
///     encrypted: true,
///     page_table: false,
/// };
/// assert_eq!(check_guest(&page, &access), Some(GuestFault::NotValidated));
/// assert_eq!(check_guest(&page.with_validated(true), &access), None);
/// access.guest.asid = 8;
/// let Some(GuestFault::Npf(code)) = check_guest(&page.with_validated(true), &access) else {
///     panic!("another guest's page must fault");
/// };
/// assert!(code.rmp() && code.final_access() && code.encrypted() && !code.vmpl());
/// ```
pub fn check_guest(entry: &Entry, access: &GuestAccess) -> Option<GuestFault> {
    let npf = access.npf();
    if !access.private() {
        let blocked = entry.assigned() || entry.immutable();
        return (access.kind == AccessKind::Write && blocked).then_some(GuestFault::Npf(npf));
    }
    let owner = access.guest.asid != 0 && entry.assigned() && entry.asid() == access.guest.asid;
    let gpa = access.gpa >> PAGE_SHIFT << PAGE_SHIFT;
    let too_small = entry.page_size() == PageSize::Size2M && access.npt == MapSize::Size4K;
    if !owner || entry.gpa() != gpa || too_small {
        return Some(GuestFault::Npf(npf));
    }
    if !entry.validated() {
        return Some(GuestFault::NotValidated);
    }
    if !entry.perms(access.guest.vmpl).contains(access.kind.perms()) {
        return Some(GuestFault::Npf(npf.with_vmpl(true)));
    }
    None
}
