// SPDX-License-Identifier: GPL-2.0

//! Guest-side formats: the RMPADJUST operand, the nested-page-fault error code, and the
//! outcomes of guest accesses and guest RMP instructions.
//!
//! The host never executes PVALIDATE or RMPADJUST; the emulated RMP implements them so
//! that tests can drive the validated bit and the VMPL rights the way a guest would.

use super::bits::bitfield;
use super::entry::{
    DecodeError,
    Perms,
    Vmpl, //
};
use super::error::RmpError;

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
/// use snp_host_model::rmp::model::{Adjust, AdjustAttrs, DecodeError, Perms, Vmpl};
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
