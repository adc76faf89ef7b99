// SPDX-License-Identifier: GPL-2.0

//! The hardware RMP: the table the CPU checks, driven by RMPUPDATE and PSMASH.
//!
//! Only set up when `rmp::model::decide` accepted the host: the kernel set SNP up at
//! boot, `SYSCFG.SNPEn` is set (SNP initialised by the CCP driver) and the table the
//! MSRs describe covers all RAM. The module never enables SNP itself. Entries are read
//! with RMPREAD when the kernel reports it (always the case for a segmented RMP), and
//! otherwise from a read-only mapping of the contiguous table, decoded with the PPR
//! layout of the model, as Linux does on Milan and Genoa.
//!
//! # SNP can go away
//!
//! An SNP shutdown (unloading kvm_amd or ccp, with firmware that supports it) clears
//! `SNPEn` on every CPU and wipes the RMP, and RMPUPDATE, PSMASH and RMPREAD then raise
//! #UD, which nothing fixes up. So every instruction is preceded by a check of `SNPEn`
//! on the CPU that runs it ([`Hardware::snp_enabled`]); without it, assignments and
//! PSMASH fail with [`RmpError::SnpDisabled`], and returning a page to the host succeeds
//! without an instruction (`rmpupdate_without_snp` says why that is true).
//!
//! That check narrows the window but cannot close it: a shutdown that runs on another
//! CPU between the check and the instruction still ends in #UD, and nothing exported
//! lets a module hold SNP on. An operator must keep SNP initialised while `snp_host`
//! is loaded with the hardware backend: keep kvm_amd and ccp loaded and do not shut SNP
//! down through `/dev/sev`.

use super::model::detect::MSR_SYSCFG;
use super::model::{
    rmpupdate_without_snp,
    Entry,
    HardwareRmp,
    Insn,
    Record,
    Rmp,
    RmpError,
    State,
    Syscfg,
    ENTRY_SIZE,
    PAGE_SHIFT, //
};
use crate::kernel_ext::{insn, memory::Reserved, msr};
use kernel::{pr_err_once, pr_warn_once, prelude::*};

/// The hardware RMP backend.
pub(crate) struct Hardware {
    rmp: HardwareRmp,
    /// The entries of a contiguous table, for CPUs without RMPREAD.
    table: Option<Reserved>,
}

impl Hardware {
    /// Prepares to drive the table `rmp` describes, mapping it when its entries have to
    /// be read from memory.
    ///
    /// # Errors
    ///
    /// `ENOMEM` if the table cannot be mapped.
    pub(crate) fn new(rmp: HardwareRmp) -> Result<Self> {
        let table = match rmp.mapped_table() {
            Some(t) => {
                // The entries only: the bookkeeping area belongs to the CPU.
                let qwords = t.entries().checked_mul(ENTRY_SIZE / 8).ok_or(EINVAL)?;
                let first = t
                    .locate(0, super::model::PageSize::Size4K)
                    .map_err(|_| EINVAL)?;
                Some(Reserved::map(first.address, qwords).inspect_err(|_| {
                    pr_err!("cannot map the RMP table at {:#x}\n", first.address);
                })?)
            }
            None => None,
        };
        Ok(Self { rmp, table })
    }

    /// Returns the first byte of the table.
    pub(crate) fn base(&self) -> u64 {
        self.rmp.base()
    }

    /// Returns the last byte of a contiguous table, and 0 for a segmented one.
    pub(crate) fn end(&self) -> u64 {
        self.rmp.end()
    }

    /// Returns whether the table is segmented.
    pub(crate) fn segmented(&self) -> bool {
        self.rmp.segmented()
    }

    /// Returns whether entries are read with RMPREAD.
    pub(crate) fn uses_rmpread(&self) -> bool {
        self.rmp.rmpread
    }

    /// Returns one past the highest PFN the table covers.
    pub(crate) fn end_pfn(&self) -> u64 {
        self.rmp.end_pfn()
    }

    /// Reads the raw entry of `pfn` from the mapped table (contiguous tables without
    /// RMPREAD), `None` elsewhere or beyond the table.
    ///
    /// The entry is read as its two aligned quadwords, as Linux reads it: each is read
    /// in one load, so no field is torn, but the two may come from either side of a
    /// concurrent RMPUPDATE. Every field the module decodes lives in the low quadword;
    /// the high one (VMPL rights) is only carried along.
    pub(crate) fn raw_entry(&self, pfn: u64) -> Option<Entry> {
        let table = self.table.as_ref()?;
        let lo = pfn.checked_mul(2)?;
        Some(Entry::from_qwords(
            table.read(lo)?,
            table.read(lo.checked_add(1)?)?,
        ))
    }

    /// Returns the validated bit of `pfn`: from its raw entry on CPUs without RMPREAD,
    /// and `None` (unknown) on CPUs with it, whose record does not carry the bit.
    pub(crate) fn validated(&self, pfn: u64) -> Option<bool> {
        self.raw_entry(pfn).map(|e| e.validated())
    }

    /// Checks that SNP is enabled on this CPU, so that an instruction would not #UD.
    ///
    /// `SNPEn` is set and cleared on all CPUs together, so the CPU this runs on answers
    /// for the one the instruction runs on even if the task migrates in between.
    ///
    /// # Errors
    ///
    /// [`RmpError::SnpDisabled`] only when `SNPEn` is definitely clear;
    /// [`RmpError::SnpUnknown`] when `SYSCFG` cannot be read, which callers must not
    /// take for "the RMP is not enforced".
    fn snp_enabled(&self) -> Result<(), RmpError> {
        let Ok(raw) = msr::read_local(MSR_SYSCFG) else {
            pr_err_once!("SYSCFG unreadable: no RMP instruction is issued, no page is returned\n");
            return Err(RmpError::SnpUnknown);
        };
        let enabled = Syscfg::from_raw(raw).snp_enabled();
        if enabled.is_err() {
            pr_err_once!(
                "SEV-SNP is no longer initialised (SYSCFG.SNPEn clear, after an SNP shutdown?): RMP instructions are not issued; pages return to the host, nothing is assigned\n"
            );
        }
        enabled
    }

    fn covered(&self, pfn: u64) -> Result<u64, RmpError> {
        if pfn >= self.end_pfn() {
            return Err(RmpError::NotCovered);
        }
        pfn.checked_shl(PAGE_SHIFT).ok_or(RmpError::NotCovered)
    }

    /// Returns a handle for one or more instructions.
    ///
    /// # Safety
    ///
    /// Every `rmpupdate` and `psmash` issued through the handle must meet the contract
    /// of `Backend::rmpupdate` and `Backend::psmash` (`rmp/backend.rs`). Reads
    /// (`rmpread`, `lookup`, `find_assigned`) have no requirement.
    pub(crate) unsafe fn handle(&self) -> Handle<'_> {
        Handle(self)
    }
}

/// A handle that issues the instructions; the hardware serialises them itself.
///
/// Only [`Hardware::handle`] creates one, so the safe methods of [`Rmp`] are reachable
/// for the hardware only under that function's contract.
pub(crate) struct Handle<'a>(&'a Hardware);

impl Rmp for Handle<'_> {
    fn rmpupdate(&mut self, pfn: u64, state: &State) -> Result<(), RmpError> {
        let paddr = self.0.covered(pfn)?;
        match self.0.snp_enabled() {
            Ok(()) => {}
            // Only a definite "SNP is off" may skip the instruction: the RMP is not
            // enforced then, and is wiped before SNP comes back.
            Err(RmpError::SnpDisabled) => return rmpupdate_without_snp(state),
            Err(e) => return Err(e),
        }
        // SAFETY: SNPEn was set just now (see the module documentation for the window
        // left); the caller meets `Backend::rmpupdate`'s contract (`Hardware::handle`).
        let code = unsafe { insn::rmpupdate(paddr, state) };
        RmpError::check(Insn::Rmpupdate, code)
    }

    fn psmash(&mut self, pfn: u64) -> Result<(), RmpError> {
        let paddr = self.0.covered(pfn)?;
        self.0.snp_enabled()?;
        // SAFETY: As for `rmpupdate`; PSMASH changes no ownership.
        let code = unsafe { insn::psmash(paddr) };
        RmpError::check(Insn::Psmash, code)
    }

    fn rmpread(&self, pfn: u64) -> Result<Record, RmpError> {
        let paddr = self.0.covered(pfn)?;
        if !self.0.rmp.rmpread {
            // Reading memory needs no SNPEn: after a shutdown the table reads as wiped.
            return Ok(self
                .0
                .raw_entry(pfn)
                .ok_or(RmpError::NotCovered)?
                .as_record());
        }
        self.0.snp_enabled()?;
        let mut out = [0u64; 2];
        // SAFETY: SNPEn was set just now and the kernel reports RMPREAD (`decide`).
        let code = unsafe { insn::rmpread(paddr, &mut out) };
        RmpError::check(Insn::Rmpread, code)?;
        let (record, ignored) = Record::from_rmpread(out);
        if ignored.any() {
            pr_warn_once!(
                "RMPREAD set bits this module does not know (gpa {:#x}, attributes {:#x}); ignoring them\n",
                ignored.gpa,
                ignored.attrs
            );
        }
        Ok(record)
    }
}
