// SPDX-License-Identifier: GPL-2.0

//! The hardware RMP: the table the CPU checks, driven by RMPUPDATE and PSMASH.
//!
//! Only built when the host kernel runs with SNP; the module never enables SNP
//! itself. Entries are read with RMPREAD when the CPU has it (always on CPUs
//! with a segmented RMP), otherwise from a read-only mapping of the contiguous
//! table, decoded with the PPR layout of the model.

use super::model::geometry::{
    MSR_RMP_BASE,
    MSR_RMP_CFG,
    MSR_RMP_END, //
};
use super::model::{
    Contiguous,
    Entry,
    Insn,
    PageSize,
    Record,
    Rmp,
    RmpBase,
    RmpCfg,
    RmpEnd,
    RmpError,
    State,
    BOOKKEEPING_SIZE,
    PAGE_SHIFT, //
};
use super::platform::Platform;
use crate::kernel_ext::{insn, memory, msr};
use core::ptr::NonNull;
use kernel::{bindings, prelude::*};

/// A read-only mapping of a contiguous RMP.
///
/// # Invariants
///
/// `ptr` maps `size` bytes of the table starting at its base, from `memremap()`,
/// released on drop.
struct TableMapping {
    ptr: NonNull<u8>,
    size: usize,
}

// SAFETY: The mapping is only read, and reading it is allowed from any CPU.
unsafe impl Send for TableMapping {}
// SAFETY: As above: shared access only reads.
unsafe impl Sync for TableMapping {}

impl Drop for TableMapping {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `ptr` came from `memremap()`.
        unsafe { bindings::memunmap(self.ptr.as_ptr().cast()) };
    }
}

/// The hardware RMP backend.
pub(crate) struct Hardware {
    base: u64,
    end: u64,
    segmented: bool,
    rmpread: bool,
    end_pfn: u64,
    table: Option<(Contiguous, TableMapping)>,
}

impl Hardware {
    /// Reads the RMP's location from its MSRs and prepares to read its entries.
    ///
    /// # Errors
    ///
    /// `ENODEV` when SNP is not enabled or the table is unusable, with a message saying why.
    pub(crate) fn probe(platform: &Platform) -> Result<Self> {
        if !platform.host_snp {
            pr_err!("backend=hardware needs a host kernel running with SEV-SNP; it is off here\n");
            return Err(ENODEV);
        }
        let base = msr::read(MSR_RMP_BASE)?;
        let end = msr::read(MSR_RMP_END)?;
        let cfg = if platform.features.segmented_rmp() {
            msr::read(MSR_RMP_CFG)?
        } else {
            0
        };
        let segmented = RmpCfg::from_raw(cfg).segmented();
        let rmpread = platform.features.rmpread();
        let mut hw = Self {
            base: RmpBase::from_raw(base).address(),
            end: RmpEnd::from_raw(end).last_byte(),
            segmented,
            rmpread,
            end_pfn: memory::ram_end_pfn(),
            table: None,
        };
        if rmpread {
            return Ok(hw);
        }
        if segmented {
            pr_err!("segmented RMP without RMPREAD: cannot read its entries\n");
            return Err(ENODEV);
        }
        let table =
            Contiguous::new(RmpBase::from_raw(base), RmpEnd::from_raw(end)).map_err(|e| {
                pr_err!("unusable RMP_BASE/RMP_END ({:?})\n", e);
                ENODEV
            })?;
        let size = usize::try_from(table.size()).map_err(|_| ENODEV)?;
        // SAFETY: The range is the RMP the firmware reserved; mapping it write-back
        // read-only-by-use is what the kernel does to read it, too.
        let ptr = unsafe { bindings::memremap(table.base(), size, bindings::MEMREMAP_WB as usize) };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(ENOMEM)?;
        // INVARIANT: `ptr` maps `size` bytes of the table from its base.
        hw.end_pfn = table.entries();
        hw.table = Some((table, TableMapping { ptr, size }));
        Ok(hw)
    }

    /// Returns the first byte of the table.
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Returns the last byte of the table (contiguous tables; 0 when segmented).
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// Returns whether the table is segmented.
    pub(crate) fn segmented(&self) -> bool {
        self.segmented
    }

    /// Returns whether entries are read with RMPREAD.
    pub(crate) fn uses_rmpread(&self) -> bool {
        self.rmpread
    }

    /// Returns one past the highest PFN the table covers.
    pub(crate) fn end_pfn(&self) -> u64 {
        self.end_pfn
    }

    /// Reads the raw entry of `pfn` from the mapped table (contiguous tables without RMPREAD).
    pub(crate) fn raw_entry(&self, pfn: u64) -> Option<Entry> {
        let (table, map) = self.table.as_ref()?;
        let at = table.locate(pfn, PageSize::Size4K).ok()?;
        let offset = at
            .address
            .checked_sub(table.base())
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o >= BOOKKEEPING_SIZE as usize && o + 16 <= map.size)?;
        let mut raw = [0u8; 16];
        for (i, b) in raw.iter_mut().enumerate() {
            // SAFETY: `offset + 16 <= size`, inside the mapping (type invariant). The CPU
            // may update the entry concurrently, so it is read volatile, as Linux does.
            *b = unsafe { core::ptr::read_volatile(map.ptr.as_ptr().add(offset + i)) };
        }
        Some(Entry::from_bytes(&raw))
    }

    fn covered(&self, pfn: u64) -> Result<u64, RmpError> {
        if pfn >= self.end_pfn {
            return Err(RmpError::NotCovered);
        }
        pfn.checked_shl(PAGE_SHIFT).ok_or(RmpError::NotCovered)
    }
}

/// A handle that issues the instructions; the hardware serialises them itself.
pub(crate) struct Handle<'a>(&'a Hardware);

impl Hardware {
    /// Returns a handle for one or more instructions.
    pub(crate) fn handle(&self) -> Handle<'_> {
        Handle(self)
    }
}

impl Rmp for Handle<'_> {
    fn rmpupdate(&mut self, pfn: u64, state: &State) -> Result<(), RmpError> {
        let paddr = self.0.covered(pfn)?;
        // SAFETY: The backend exists only with SNP on (`probe`); the callers own the page
        // and have removed or will restore its host mappings as the RMP requires.
        let code = unsafe { insn::rmpupdate(paddr, &state.to_bytes()) };
        RmpError::check(Insn::Rmpupdate, code)
    }

    fn psmash(&mut self, pfn: u64) -> Result<(), RmpError> {
        let paddr = self.0.covered(pfn)?;
        // SAFETY: As for `rmpupdate`; PSMASH changes no ownership.
        let code = unsafe { insn::psmash(paddr) };
        RmpError::check(Insn::Psmash, code)
    }

    fn rmpread(&self, pfn: u64) -> Result<Record, RmpError> {
        let paddr = self.0.covered(pfn)?;
        if self.0.rmpread {
            let mut out = [0u8; 16];
            // SAFETY: SNP is on and CPUID reported RMPREAD (`probe`).
            let code = unsafe { insn::rmpread(paddr, &mut out) };
            RmpError::check(Insn::Rmpread, code)?;
            return Record::from_bytes(&out).map_err(|_| RmpError::FailInput);
        }
        self.0
            .raw_entry(pfn)
            .ok_or(RmpError::NotCovered)?
            .to_record()
            .map_err(|_| RmpError::FailInput)
    }
}
