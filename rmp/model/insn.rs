// SPDX-License-Identifier: GPL-2.0

//! The host-side RMP instructions as a trait, implemented by the hardware backend (the
//! instructions themselves) and by the emulated RMP.
//!
//! # Concurrency
//!
//! Each operation touches the entries of exactly one 2M region: the one containing its
//! PFN. Operations on different 2M regions never interact.
//!
//! | on one 2M region                    | may run concurrently with                    |
//! |-------------------------------------|----------------------------------------------|
//! | `rmpread`, `lookup`, `find_assigned`, access checks | each other, always                |
//! | `rmpupdate`, `psmash`               | nothing that writes the same region          |
//!
//! The hardware enforces the second row itself: a CPU that finds the region busy returns
//! `FAIL_INUSE` (or `FAIL_OVERLAP` from RMPUPDATE), which is transient
//! ([`RmpError::is_transient`]). Readers racing with a writer see the entry before or
//! after the update, never a torn one, but what they read may be stale by the time they
//! act on it, so a caller that decides from a lookup (PSMASH because the entry is 2M,
//! say) must tolerate the instruction failing and look again.
//!
//! The trait's writers take `&mut self`, so the emulated backend is serialised by
//! whoever owns it: the kernel wraps it in one lock per table (a spinlock, since access
//! checks run in the page-fault path; entry allocation then must not sleep). A lock per
//! 2M region would also be correct, because of the first paragraph, provided the store
//! allows concurrent updates at distinct PFNs; the pure model does not need it. The
//! hardware backend is a stateless handle that each caller may create for itself.

use super::entry::{
    PageSize,
    Record,
    State, //
};
use super::error::RmpError;

/// What the kernel needs to know about a page (Linux's `snp_lookup_rmpentry()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The page's own record.
    pub record: Record,
    /// Page size of the entry of the 2M-aligned page, which is authoritative for the
    /// whole 2M region when it is a 2M entry.
    pub size: PageSize,
}

impl Lookup {
    /// Returns whether the page is assigned.
    pub fn assigned(&self) -> bool {
        self.record.assigned()
    }
}

/// The host's RMP instructions.
///
/// PFNs are system page frame numbers; the hardware backend shifts them into the
/// physical addresses the instructions take.
///
/// # Examples
///
/// Converting a page the way KVM does, against the emulated backend:
///
/// ```
/// use snp_host_model::rmp::model::{Emulated, PageSize, Rmp, RmpError, State};
/// use snp_host_model::rmp::array_store::ArrayStore;
///
/// let mut rmp = Emulated::new(ArrayStore::<512>::new(), 1 << 20);
/// rmp.rmpupdate(0x200, &State::private(0x4000_0000, PageSize::Size2M, 1, false))?;
/// assert_eq!(rmp.lookup(0x234)?.size, PageSize::Size2M);
/// // A 4K conversion inside a 2M page needs a PSMASH first.
/// assert_eq!(rmp.rmpupdate(0x234, &State::shared(PageSize::Size4K)), Err(RmpError::FailOverlap));
/// rmp.psmash(0x200)?;
/// rmp.rmpupdate(0x234, &State::shared(PageSize::Size4K))?;
/// assert!(!rmp.lookup(0x234)?.assigned() && rmp.lookup(0x235)?.assigned());
/// # Ok::<(), RmpError>(())
/// ```
pub trait Rmp {
    /// RMPUPDATE: writes the entry of `pfn` (of the 2M region starting at `pfn` for a 2M
    /// state), clearing the validated bit.
    ///
    /// # Errors
    ///
    /// `FailInput` for an invalid state or a misaligned 2M `pfn`, `FailPermission` for an
    /// immutable entry, `FailInUse` if another CPU updates the region, `FailOverlap` for
    /// a 4K/2M conflict, `NotCovered` beyond the table.
    fn rmpupdate(&mut self, pfn: u64, state: &State) -> Result<(), RmpError>;

    /// PSMASH: splits the 2M entry at the 2M-aligned `pfn` into 512 4K entries with the
    /// same attributes, each keeping the validated bit.
    ///
    /// # Errors
    ///
    /// `FailInput` for a misaligned `pfn`, `FailNotExpandable` if there is no assigned 2M entry
    /// there, `FailPermission` for an immutable entry, `FailInUse` if another CPU updates
    /// the region, `NotCovered` beyond the table.
    fn psmash(&mut self, pfn: u64) -> Result<(), RmpError>;

    /// RMPREAD: returns the architectural record of `pfn`.
    ///
    /// # Errors
    ///
    /// `NotCovered` beyond the table; the hardware backend may also return the codes of
    /// RMPREAD itself.
    fn rmpread(&self, pfn: u64) -> Result<Record, RmpError>;

    /// Looks a page up the way Linux does: its own record, and the page size of the entry
    /// of its 2M-aligned page.
    ///
    /// # Errors
    ///
    /// As [`Rmp::rmpread`].
    fn lookup(&self, pfn: u64) -> Result<Lookup, RmpError> {
        let record = self.rmpread(pfn)?;
        let head = PageSize::Size2M.align_down(pfn);
        let size = if head == pfn {
            record.page_size()
        } else {
            self.rmpread(head)?.page_size()
        };
        Ok(Lookup { record, size })
    }

    /// Returns the lowest assigned PFN of the page of `size` that contains `pfn`, if any.
    ///
    /// The default reads every entry; the emulated backend answers from its store.
    ///
    /// # Errors
    ///
    /// As [`Rmp::rmpread`].
    fn find_assigned(&self, pfn: u64, size: PageSize) -> Result<Option<u64>, RmpError> {
        let first = size.align_down(pfn);
        for page in first..first.saturating_add(size.pages()) {
            if self.rmpread(page)?.assigned() {
                return Ok(Some(page));
            }
        }
        Ok(None)
    }
}
