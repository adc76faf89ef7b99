// SPDX-License-Identifier: GPL-2.0

//! The one error type of the RMP instructions and backends, and the one statement of
//! which failures are transient.

/// An RMP instruction, for decoding its return code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insn {
    /// RMPUPDATE (host): write an RMP entry.
    Rmpupdate,
    /// PSMASH (host): split a 2M entry into 512 4K entries.
    Psmash,
    /// RMPREAD (host): read an entry in the architectural format.
    Rmpread,
    /// PVALIDATE (guest): set or clear the validated bit.
    #[allow(
        dead_code,
        reason = "guest instruction, issued by the host crate's emulation only"
    )]
    Pvalidate,
    /// RMPADJUST (guest): change the rights of a less privileged VMPL.
    #[allow(
        dead_code,
        reason = "guest instruction, issued by the host crate's emulation only"
    )]
    Rmpadjust,
}

/// Why an RMP operation failed.
///
/// The `Fail*` variants are the hardware's return codes, one variant each, with the
/// value the instruction leaves in EAX ([`RmpError::code`]). Value 4 means `FAIL_OVERLAP`
/// for RMPUPDATE and `FAIL_BADADDR` for PSMASH, hence two variants. The remaining
/// variants are failures of a backend rather than of an instruction; they have no
/// hardware code. Conversion to an errno happens once, at the kernel boundary
/// (`rmp::backend::errno` in the module).
///
/// PSMASH's codes: vendor documentation of the instruction (the reference of
/// Microsoft's `__psmash` intrinsic, which points to the APM) lists 0, 1 (invalid
/// input), 2 (not at ASID 0), 3 (another processor updates the entry) and 7 (the page
/// does not meet the requirements for expansion: it is not an assigned 2M entry). That
/// code is [`RmpError::FailNotExpandable`]. Code 4 (`FAIL_BADADDR`) is not in that list;
/// it is decoded all the same, so that it never reaches the log as "unexpected".
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::model::{Insn, RmpError};
///
/// assert_eq!(RmpError::check(Insn::Rmpupdate, 0), Ok(()));
/// assert_eq!(RmpError::check(Insn::Rmpupdate, 4), Err(RmpError::FailOverlap));
/// assert_eq!(RmpError::check(Insn::Psmash, 4), Err(RmpError::FailBadAddr));
/// assert_eq!(RmpError::check(Insn::Psmash, 7), Err(RmpError::FailNotExpandable));
/// assert_eq!(RmpError::check(Insn::Rmpupdate, 7), Err(RmpError::Unexpected(7)));
/// assert_eq!(RmpError::check(Insn::Pvalidate, 4), Err(RmpError::Unexpected(4)));
/// assert_eq!(RmpError::FailBadAddr.code(), Some(4));
/// assert!(RmpError::FailInUse.is_transient() && !RmpError::FailPermission.is_transient());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmpError {
    /// `FAIL_INPUT` (1): an operand is invalid (misaligned address, bad new-state record,
    /// page size the instruction does not accept).
    FailInput,
    /// `FAIL_PERMISSION` (2): the entry is immutable, or (guest side) the VMPL lacks the
    /// rights it tries to grant.
    FailPermission,
    /// `FAIL_INUSE` (3): another processor is updating the same 2M region.
    FailInUse,
    /// `FAIL_OVERLAP` (4, RMPUPDATE): a 4K update inside a 2M page, or a 2M update over a
    /// region with 4K-assigned pages.
    FailOverlap,
    /// `FAIL_BADADDR` (4, PSMASH): the address is not one PSMASH accepts.
    FailBadAddr,
    /// Code 7 (PSMASH): the entry does not meet the requirements for expansion; it is not
    /// an assigned 2M entry. (Our name: the APM's could not be checked here.)
    FailNotExpandable,
    /// `FAIL_SIZEMISMATCH` (6, PVALIDATE/RMPADJUST): a 2M request on a 4K entry.
    FailSizeMismatch,
    /// A return code this model does not know for the instruction; kept for the log.
    Unexpected(u32),
    /// The page has no RMP entry (beyond the table, or in a hole of a segmented table).
    NotCovered,
    /// The backend could not allocate memory for an entry (emulated backend only).
    NoMemory,
    /// SNP is not enabled on this CPU (`SYSCFG.SNPEn` clear): the host instructions would
    /// raise #UD, so none was issued (hardware backend only).
    SnpDisabled,
    /// `SYSCFG` could not be read, so whether SNP is enabled is unknown and no
    /// instruction was issued; the page's state is unknown too (hardware backend only).
    SnpUnknown,
}

impl RmpError {
    /// Decodes the value an instruction left in EAX: `Ok` for 0, the error otherwise.
    ///
    /// # Errors
    ///
    /// The variant for a non-zero `code`, [`RmpError::Unexpected`] for a code the
    /// instruction does not define.
    pub fn check(insn: Insn, code: u32) -> Result<(), RmpError> {
        let err = match (insn, code) {
            (_, 0) => return Ok(()),
            (_, 1) => Self::FailInput,
            (Insn::Rmpupdate | Insn::Psmash | Insn::Rmpread | Insn::Rmpadjust, 2) => {
                Self::FailPermission
            }
            (Insn::Rmpupdate | Insn::Psmash, 3) => Self::FailInUse,
            (Insn::Rmpupdate, 4) => Self::FailOverlap,
            (Insn::Psmash, 4) => Self::FailBadAddr,
            (Insn::Psmash, 7) => Self::FailNotExpandable,
            (Insn::Pvalidate | Insn::Rmpadjust, 6) => Self::FailSizeMismatch,
            (_, other) => Self::Unexpected(other),
        };
        Err(err)
    }

    /// Returns the hardware return code, or `None` for a backend failure.
    #[allow(
        dead_code,
        reason = "host tests check it against `check`; the log uses Display"
    )]
    pub fn code(self) -> Option<u32> {
        match self {
            Self::FailInput => Some(1),
            Self::FailPermission => Some(2),
            Self::FailInUse => Some(3),
            Self::FailOverlap | Self::FailBadAddr => Some(4),
            Self::FailSizeMismatch => Some(6),
            Self::FailNotExpandable => Some(7),
            Self::Unexpected(code) => Some(code),
            Self::NotCovered | Self::NoMemory | Self::SnpDisabled | Self::SnpUnknown => None,
        }
    }

    /// Returns whether retrying the same operation may succeed without any other change.
    ///
    /// This is the single statement of the rule, for every caller:
    ///
    /// - `FAIL_INUSE` is transient: another CPU holds the 2M region for an update and
    ///   releases it within that instruction.
    /// - `FAIL_OVERLAP` is treated as transient because the hardware also reports it
    ///   while another CPU updates an overlapping 2M range, and Linux retries it. It is
    ///   *also* the answer to a real 4K/2M conflict in the table, which no retry fixes
    ///   (the emulated backend only ever produces that kind). So every retry loop must
    ///   be bounded and must report loudly when it gives up: Linux's unbounded loop is
    ///   the reported hang.
    /// - Everything else is permanent for the current table state.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::FailInUse | Self::FailOverlap)
    }
}

impl core::fmt::Display for RmpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::FailInput => f.write_str("FAIL_INPUT (1)"),
            Self::FailPermission => f.write_str("FAIL_PERMISSION (2)"),
            Self::FailInUse => f.write_str("FAIL_INUSE (3)"),
            Self::FailOverlap => f.write_str("FAIL_OVERLAP (4)"),
            Self::FailBadAddr => f.write_str("FAIL_BADADDR (4)"),
            Self::FailSizeMismatch => f.write_str("FAIL_SIZEMISMATCH (6)"),
            Self::FailNotExpandable => f.write_str("page cannot be expanded (7)"),
            Self::Unexpected(code) => write!(f, "unexpected return code {code}"),
            Self::NotCovered => f.write_str("page not covered by the RMP"),
            Self::NoMemory => f.write_str("out of memory for RMP entries"),
            Self::SnpDisabled => f.write_str("SNP is not enabled (SYSCFG.SNPEn clear)"),
            Self::SnpUnknown => f.write_str("SYSCFG unreadable: whether SNP is enabled is unknown"),
        }
    }
}
