// SPDX-License-Identifier: GPL-2.0

//! The guest's and the firmware's side of the RMP, for the host crate: the VMPLs and
//! their rights on an entry, the RMPADJUST operand, the nested-page-fault error code,
//! the outcomes of guest accesses and guest RMP instructions, and the guest instructions
//! and firmware writes of the emulated RMP.
//!
//! The host never executes PVALIDATE or RMPADJUST, and only the firmware writes entries
//! directly; the emulated RMP implements both so that tests can drive the validated bit,
//! the VMPL rights and firmware-owned entries the way a guest or the firmware would.
//! The module has no use for any of it, so it is not part of `rmp::model`: `lib.rs`
//! builds this file, the module does not.

use super::access::{
    check_guest,
    GuestAccess, //
};
use super::model::bits::bitfield;
use super::model::{
    DecodeError,
    Emulated,
    Entry,
    PageSize,
    Perms,
    Record,
    RmpError,
    Store,
    PAGE_SHIFT, //
};

bitfield! {
    /// The RDX operand of RMPADJUST.
    pub struct AdjustAttrs {
        /// VMPL whose rights change.
        7:0 target_vmpl, with_target_vmpl: u8;
        /// The new rights of that VMPL.
        15:8 perms, with_perms: Perms;
        /// Mark the page as a VM save area (honoured at VMPL0 only).
        16:16 vmsa, with_vmsa: bool;
        /// Reserved, must be zero.
        63:17 reserved, with_reserved: u64;
    }
}

/// A decoded RMPADJUST request.
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::model::{DecodeError, Perms};
/// use snp_host_model::rmp::guest::{Adjust, AdjustAttrs, Vmpl};
///
/// let raw = AdjustAttrs::default().with_target_vmpl(1).with_perms(Perms::READ);
/// assert_eq!(
///     Adjust::try_from(raw),
///     Ok(Adjust { vmpl: Vmpl::Vmpl1, perms: Perms::READ, vmsa: false })
/// );
/// assert_eq!(Adjust::try_from(raw.with_target_vmpl(4)), Err(DecodeError::Vmpl));
/// assert_eq!(Adjust::try_from(AdjustAttrs::from_raw(1 << 20)), Err(DecodeError::Reserved));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Adjust {
    /// VMPL whose rights change; must be less privileged than the caller's.
    pub vmpl: Vmpl,
    /// The rights to grant.
    pub perms: Perms,
    /// Whether the page becomes a VM save area.
    pub vmsa: bool,
}

impl TryFrom<AdjustAttrs> for Adjust {
    type Error = DecodeError;

    fn try_from(raw: AdjustAttrs) -> Result<Self, DecodeError> {
        if raw.reserved() != 0 {
            return Err(DecodeError::Reserved);
        }
        Ok(Self {
            vmpl: Vmpl::try_from(raw.target_vmpl())?,
            perms: Perms::try_from(raw.perms().bits())?,
            vmsa: raw.vmsa(),
        })
    }
}

/// Who runs a guest instruction or makes a guest access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guest {
    /// The guest's ASID (never 0: that is the hypervisor's).
    pub asid: u32,
    /// The VMPL the vCPU runs at.
    pub vmpl: Vmpl,
}

bitfield! {
    /// The error code of a nested page fault (#NPF, `EXITINFO1`), as far as RMP checks
    /// set it (Linux's `PFERR_*` bits).
    pub struct NpfCode {
        /// The nested page was present: a protection or RMP violation.
        0:0 present, with_present: bool;
        /// The access was a write.
        1:1 write, with_write: bool;
        /// The access was an instruction fetch.
        4:4 fetch, with_fetch: bool;
        /// The access failed the RMP check (`PFERR_GUEST_RMP`).
        31:31 rmp, with_rmp: bool;
        /// The fault hit the final guest physical address (`PFERR_GUEST_FINAL`).
        32:32 final_access, with_final_access: bool;
        /// The fault hit a guest page-table access (`PFERR_GUEST_PAGE`).
        33:33 page_table, with_page_table: bool;
        /// The access was private, encrypted with the guest's key (`PFERR_GUEST_ENC`).
        34:34 encrypted, with_encrypted: bool;
        /// PVALIDATE or RMPADJUST used a smaller page size than the RMP entry
        /// (`PFERR_GUEST_SIZEM`); the host resolves it with PSMASH.
        35:35 size_mismatch, with_size_mismatch: bool;
        /// The VMPL lacked the right for the access (`PFERR_GUEST_VMPL`).
        36:36 vmpl, with_vmpl: bool;
    }
}

/// How a guest access or guest instruction faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestFault {
    /// A nested page fault, handled by the host.
    Npf(NpfCode),
    /// The page is not validated: the guest gets a #VC (`PAGE_NOT_VALIDATED`).
    NotValidated,
}

/// Why a guest RMP instruction did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestError {
    /// The instruction completed with a failure code in EAX.
    Insn(RmpError),
    /// The instruction faulted before it could complete.
    Fault(GuestFault),
}

impl From<RmpError> for GuestError {
    fn from(err: RmpError) -> Self {
        Self::Insn(err)
    }
}

/// A Virtual Machine Privilege Level of an SNP guest; VMPL0 is the most privileged.
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::guest::Vmpl;
///
/// assert_eq!(Vmpl::try_from(3u8), Ok(Vmpl::Vmpl3));
/// assert!(Vmpl::try_from(4u8).is_err());
/// assert!(Vmpl::Vmpl0 < Vmpl::Vmpl1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Vmpl {
    /// VMPL0, which holds every permission on the guest's pages.
    Vmpl0,
    /// VMPL1.
    Vmpl1,
    /// VMPL2.
    Vmpl2,
    /// VMPL3.
    Vmpl3,
}

impl Vmpl {
    /// Returns the VMPL number, 0 to 3.
    pub const fn number(self) -> u8 {
        match self {
            Self::Vmpl0 => 0,
            Self::Vmpl1 => 1,
            Self::Vmpl2 => 2,
            Self::Vmpl3 => 3,
        }
    }
}

impl TryFrom<u8> for Vmpl {
    type Error = DecodeError;

    fn try_from(value: u8) -> Result<Self, DecodeError> {
        match value {
            0 => Ok(Self::Vmpl0),
            1 => Ok(Self::Vmpl1),
            2 => Ok(Self::Vmpl2),
            3 => Ok(Self::Vmpl3),
            _ => Err(DecodeError::Vmpl),
        }
    }
}

/// The guest side of an entry: its VMSA bit, its validated bit, and the rights of each
/// VMPL.
impl Entry {
    /// Returns whether the page is a VM save area.
    pub fn vmsa(&self) -> bool {
        self.lo().vmsa()
    }

    /// Returns the rights of `vmpl` on the page.
    pub fn perms(&self, vmpl: Vmpl) -> Perms {
        let hi = self.hi();
        match vmpl {
            Vmpl::Vmpl0 => hi.vmpl0(),
            Vmpl::Vmpl1 => hi.vmpl1(),
            Vmpl::Vmpl2 => hi.vmpl2(),
            Vmpl::Vmpl3 => hi.vmpl3(),
        }
    }

    /// Returns a copy with the validated bit set to `validated`.
    #[must_use]
    pub fn with_validated(self, validated: bool) -> Self {
        Self::from_qwords(self.lo().with_validated(validated).raw(), self.hi().raw())
    }

    /// Returns a copy with the VMSA bit set to `vmsa`.
    #[must_use]
    pub fn with_vmsa(self, vmsa: bool) -> Self {
        Self::from_qwords(self.lo().with_vmsa(vmsa).raw(), self.hi().raw())
    }

    /// Returns a copy with the rights of `vmpl` set to `perms`.
    #[must_use]
    pub fn with_perms(self, vmpl: Vmpl, perms: Perms) -> Self {
        let hi = self.hi();
        let hi = match vmpl {
            Vmpl::Vmpl0 => hi.with_vmpl0(perms),
            Vmpl::Vmpl1 => hi.with_vmpl1(perms),
            Vmpl::Vmpl2 => hi.with_vmpl2(perms),
            Vmpl::Vmpl3 => hi.with_vmpl3(perms),
        };
        Self::from_qwords(self.lo().raw(), hi.raw())
    }

    /// Decodes the entry into the architectural RMPREAD format, checking it first: the
    /// strict counterpart of [`Entry::as_record`], for entries the tests make up.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Inconsistent`] for an unassigned page that is marked validated or
    /// as a VMSA, a state neither the CPU nor the firmware produce.
    pub fn to_record(self) -> Result<Record, DecodeError> {
        if !self.assigned() && (self.validated() || self.vmsa()) {
            return Err(DecodeError::Inconsistent);
        }
        Ok(self.as_record())
    }
}

/// The guest instructions and the firmware's writes, on the emulated RMP.
impl<S: Store> Emulated<S> {
    /// Writes a raw entry as the firmware would (firmware pages, immutable hypervisor
    /// pages, pre-validated launch pages), bypassing every instruction rule.
    ///
    /// # Errors
    ///
    /// [`RmpError::FailInput`] for an entry that does not decode
    /// ([`Entry::to_record`]), [`RmpError::NotCovered`] beyond the table,
    /// [`RmpError::NoMemory`] if the store is full.
    pub fn seed(&mut self, pfn: u64, entry: Entry) -> Result<(), RmpError> {
        self.covered(pfn, PageSize::Size4K)?;
        entry.to_record().map_err(|_| RmpError::FailInput)?;
        self.put(pfn, entry)
    }

    /// Answers whether a guest access faults ([`check_guest`] on the effective entry).
    ///
    /// # Errors
    ///
    /// [`RmpError::NotCovered`] beyond the table.
    pub fn check_guest(&self, access: &GuestAccess) -> Result<Option<GuestFault>, RmpError> {
        Ok(check_guest(&self.effective(access.pfn)?, access))
    }

    /// PVALIDATE as executed by guest `asid` at VMPL0: sets the validated bit of the page
    /// at `pfn`, which the guest addresses as `gpa`, to `validate`.
    ///
    /// Returns whether the bit changed (the hardware clears CF then).
    ///
    /// # Errors
    ///
    /// `Insn(FailInput)` for a misaligned 2M request, `Insn(FailSizeMismatch)` for a 2M
    /// request on a 4K entry, an RMP nested page fault if the page is not the guest's at
    /// `gpa` or is immutable, with `SIZEM` for a 4K request on a 2M entry.
    pub fn pvalidate(
        &mut self,
        asid: u32,
        pfn: u64,
        gpa: u64,
        size: PageSize,
        validate: bool,
    ) -> Result<bool, GuestError> {
        let (at, entry) = self.guest_entry(asid, pfn, gpa, size)?;
        if entry.validated() == validate {
            return Ok(false);
        }
        self.put(at, entry.with_validated(validate))?;
        Ok(true)
    }

    /// RMPADJUST as executed by `guest`: grants `adjust.vmpl` the rights `adjust.perms`
    /// on the page at `pfn`, which the guest addresses as `gpa`.
    ///
    /// # Errors
    ///
    /// As [`Emulated::pvalidate`], plus `Insn(FailPermission)` if the target VMPL is not
    /// less privileged than the caller's or the rights exceed the caller's own, and
    /// `Fault(NotValidated)` on a page the guest has not validated.
    pub fn rmpadjust(
        &mut self,
        guest: Guest,
        pfn: u64,
        gpa: u64,
        size: PageSize,
        adjust: Adjust,
    ) -> Result<(), GuestError> {
        if adjust.vmpl <= guest.vmpl {
            // Checked before the entry: it depends on the operands alone.
            self.covered(pfn, size)?;
            return Err(GuestError::Insn(RmpError::FailPermission));
        }
        let (at, entry) = self.guest_entry(guest.asid, pfn, gpa, size)?;
        if !entry.validated() {
            return Err(GuestError::Fault(GuestFault::NotValidated));
        }
        if !entry.perms(guest.vmpl).contains(adjust.perms) {
            return Err(GuestError::Insn(RmpError::FailPermission));
        }
        let mut new = entry.with_perms(adjust.vmpl, adjust.perms);
        if guest.vmpl == Vmpl::Vmpl0 {
            new = new.with_vmsa(adjust.vmsa);
        }
        self.put(at, new)?;
        Ok(())
    }

    /// Runs the checks PVALIDATE and RMPADJUST share and returns the entry to change.
    fn guest_entry(
        &self,
        asid: u32,
        pfn: u64,
        gpa: u64,
        size: PageSize,
    ) -> Result<(u64, Entry), GuestError> {
        if !size.is_aligned(pfn) || gpa & (size.bytes() - 1) != 0 {
            return Err(GuestError::Insn(RmpError::FailInput));
        }
        self.covered(pfn, size)?;
        let (at, entry) = self.governing(pfn);
        let npf = NpfCode::default()
            .with_present(true)
            .with_rmp(true)
            .with_final_access(true)
            .with_encrypted(true);
        let own_gpa = entry.gpa() + ((pfn - at) << PAGE_SHIFT);
        let owner = asid != 0 && entry.assigned() && entry.asid() == asid;
        if !owner || own_gpa != gpa || entry.immutable() {
            return Err(GuestError::Fault(GuestFault::Npf(npf)));
        }
        match (size, entry.page_size()) {
            (PageSize::Size4K, PageSize::Size2M) => Err(GuestError::Fault(GuestFault::Npf(
                npf.with_size_mismatch(true),
            ))),
            (PageSize::Size2M, PageSize::Size4K) => {
                Err(GuestError::Insn(RmpError::FailSizeMismatch))
            }
            _ => Ok((at, entry)),
        }
    }
}
