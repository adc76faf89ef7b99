// SPDX-License-Identifier: GPL-2.0

//! The emulated RMP: the hardware's RMP rules applied to a sparse store of raw entries.
//!
//! It behaves like the instructions wherever a test can tell. A 2M page is held, as on
//! the hardware, in the entry of its 2M-aligned page; the other 511 entries stay zero
//! until PSMASH writes them, so a 2M assignment costs one stored entry. The store only
//! holds non-zero entries.
//!
//! Choices where the APM leaves a case open, all documented at the operation:
//! a 4K RMPUPDATE inside an assigned 2M page fails with `FAIL_OVERLAP`; a 2M RMPUPDATE
//! fails with `FAIL_OVERLAP` when any 4K entry of the region is assigned at 4K and with
//! `FAIL_PERMISSION` when any is immutable (permission is checked first); PSMASH of
//! anything but an assigned 2M entry fails with code 7 (not expandable), of an immutable one with
//! `FAIL_PERMISSION`; RMPREAD of a page inside a 2M entry reports the 2M entry with the
//! page's own GPA (the 2M page's GPA plus its offset), which is also what PSMASH leaves
//! behind.
//!
//! Serialisation: see the concurrency section of [`Rmp`]. Every operation reads and writes
//! only entries of the 2M region of its PFN.

use super::entry::{
    Entry,
    PageSize,
    Record,
    State,
    Target,
    PAGE_SHIFT, //
};
use super::error::RmpError;
use super::insn::Rmp;
use super::store::{
    Range,
    Store, //
};

/// An RMP emulated over a sparse [`Store`], covering PFNs `0..end_pfn`.
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::model::{Emulated, PageSize, Rmp, RmpError, State, Store};
/// use snp_host_model::rmp::array_store::ArrayStore;
/// use snp_host_model::rmp::guest::{Guest, Vmpl};
///
/// let mut rmp = Emulated::new(ArrayStore::<4>::new(), 1 << 18);
/// rmp.rmpupdate(0x400, &State::private(0x20_0000, PageSize::Size2M, 5, false))?;
/// assert_eq!(rmp.store().len(), 1); // one entry for a whole 2M page
/// assert_eq!(rmp.pvalidate(5, 0x400, 0x20_0000, PageSize::Size2M, true), Ok(true));
/// assert!(rmp.effective(0x5ff)?.validated());
/// // Making the 2M page shared clears all 512 entries.
/// rmp.rmpupdate(0x400, &State::shared(PageSize::Size2M))?;
/// assert!(rmp.store().is_empty() && !rmp.rmpread(0x5ff)?.assigned());
/// # Ok::<(), RmpError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Emulated<S> {
    store: S,
    end_pfn: u64,
    busy: Option<u64>,
}

impl<S: Store> Emulated<S> {
    /// Emulates a table with entries for PFNs `0..end_pfn`, all hypervisor-owned except
    /// what `store` already holds.
    pub const fn new(store: S, end_pfn: u64) -> Self {
        Self {
            store,
            end_pfn,
            busy: None,
        }
    }

    /// Returns the store.
    #[allow(dead_code, reason = "tests only: KUnit and the host crate")]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Returns one past the highest PFN with an entry.
    pub fn end_pfn(&self) -> u64 {
        self.end_pfn
    }

    /// Pretends that another CPU is in the middle of updating the 2M region containing
    /// `pfn` (or, with `None`, that no CPU is), so that tests can drive the
    /// `FAIL_INUSE` paths of their callers: RMPUPDATE and PSMASH on that region fail
    /// until the region is released.
    #[allow(dead_code, reason = "tests only: KUnit and the host crate")]
    pub fn set_busy(&mut self, pfn: Option<u64>) {
        self.busy = pfn.map(|pfn| PageSize::Size2M.align_down(pfn));
    }

    /// Returns the raw entry stored for `pfn` (zero if none), without resolving 2M pages.
    pub fn entry(&self, pfn: u64) -> Entry {
        self.store.get(pfn).unwrap_or_default()
    }

    /// Returns the entry that governs `pfn` as the page sees it: its own, or the 2M entry
    /// of its region with the GPA of this 4K page.
    ///
    /// # Errors
    ///
    /// [`RmpError::NotCovered`] beyond the table.
    pub fn effective(&self, pfn: u64) -> Result<Entry, RmpError> {
        self.covered(pfn, PageSize::Size4K)?;
        let (at, entry) = self.governing(pfn);
        Ok(entry.with_gpa(entry.gpa() + ((pfn - at) << PAGE_SHIFT)))
    }

    /// Fails unless the table has entries for the whole page of `size` at `pfn`.
    pub(crate) fn covered(&self, pfn: u64, size: PageSize) -> Result<(), RmpError> {
        match pfn.checked_add(size.pages()) {
            Some(end) if end <= self.end_pfn => Ok(()),
            _ => Err(RmpError::NotCovered),
        }
    }

    /// Fails with `FAIL_INUSE` if another CPU holds the 2M region of `pfn`.
    fn claim(&self, pfn: u64) -> Result<(), RmpError> {
        if self.busy == Some(PageSize::Size2M.align_down(pfn)) {
            return Err(RmpError::FailInUse);
        }
        Ok(())
    }

    /// Returns the PFN and raw entry that govern `pfn`: the 2M-aligned entry if it is an
    /// assigned 2M entry, else the page's own.
    pub(crate) fn governing(&self, pfn: u64) -> (u64, Entry) {
        let head = PageSize::Size2M.align_down(pfn);
        let entry = self.entry(head);
        if entry.assigned() && entry.page_size() == PageSize::Size2M {
            (head, entry)
        } else {
            (pfn, self.entry(pfn))
        }
    }

    /// Stores `entry` for `pfn`, or forgets the PFN if the entry is all zero.
    pub(crate) fn put(&mut self, pfn: u64, entry: Entry) -> Result<(), RmpError> {
        if entry.is_zero() {
            self.store.remove(pfn);
            Ok(())
        } else {
            self.store.insert(pfn, entry)
        }
    }

    /// Returns the stored entries of the 2M region starting at `head`.
    fn region(&self, head: u64) -> Range<'_, S> {
        Range::new(&self.store, head, head + (PageSize::Size2M.pages() - 1))
    }

    /// Checks a 2M RMPUPDATE against the 512 entries it replaces.
    fn check_region(&self, head: u64) -> Result<(), RmpError> {
        let mut overlap = false;
        for (_, entry) in self.region(head) {
            if entry.immutable() {
                return Err(RmpError::FailPermission);
            }
            overlap |= entry.assigned() && entry.page_size() == PageSize::Size4K;
        }
        if overlap {
            return Err(RmpError::FailOverlap);
        }
        Ok(())
    }
}

impl<S: Store> Rmp for Emulated<S> {
    /// RMPUPDATE, with the hardware's checks in this order: the new state
    /// (`FAIL_INPUT`, including a 2M update at an unaligned PFN), coverage, a concurrent
    /// update of the region (`FAIL_INUSE`), immutable entries (`FAIL_PERMISSION`), 4K/2M
    /// conflicts (`FAIL_OVERLAP`). Both assigning and un-assigning clear the validated
    /// and VMSA bits and reset the VMPL rights.
    fn rmpupdate(&mut self, pfn: u64, state: &State) -> Result<(), RmpError> {
        let target = state.decode().map_err(|_| RmpError::FailInput)?;
        let size = target.size();
        if !size.is_aligned(pfn) {
            return Err(RmpError::FailInput);
        }
        self.covered(pfn, size)?;
        self.claim(pfn)?;
        match size {
            PageSize::Size4K => {
                let (_, entry) = self.governing(pfn);
                if entry.immutable() {
                    return Err(RmpError::FailPermission);
                }
                if entry.assigned() && entry.page_size() == PageSize::Size2M {
                    return Err(RmpError::FailOverlap);
                }
            }
            PageSize::Size2M => self.check_region(pfn)?,
        }
        let old = self.entry(pfn);
        let new = match target {
            Target::Shared { .. } => old.cleared(),
            Target::Private {
                gpa,
                size,
                asid,
                immutable,
            } => old.assigned_to(gpa, size, asid, immutable),
        };
        self.put(pfn, new)
    }

    /// PSMASH. Writes the 511 new entries first and the 2M entry last; if the store runs
    /// out of memory part way, the new entries are cleared again and the 2M page is left
    /// as it was.
    fn psmash(&mut self, pfn: u64) -> Result<(), RmpError> {
        if !PageSize::Size2M.is_aligned(pfn) {
            return Err(RmpError::FailInput);
        }
        self.covered(pfn, PageSize::Size2M)?;
        self.claim(pfn)?;
        let head = self.entry(pfn);
        if !head.assigned() || head.page_size() != PageSize::Size2M {
            return Err(RmpError::FailNotExpandable);
        }
        if head.immutable() {
            return Err(RmpError::FailPermission);
        }
        let small = head.with_page_size(PageSize::Size4K);
        for offset in 1..PageSize::Size2M.pages() {
            let at = pfn + offset;
            let new = self
                .entry(at)
                .with_attributes_of(small)
                .with_gpa(small.gpa() + (offset << PAGE_SHIFT));
            if let Err(err) = self.put(at, new) {
                // The 511 entries of an assigned 2M page are all clear (RMPUPDATE checked
                // them, nothing writes them while the 2M entry exists), so clearing
                // restores them. Clearing never needs memory.
                for undo in pfn + 1..at {
                    let _ = self.put(undo, self.entry(undo).cleared());
                }
                return Err(err);
            }
        }
        self.put(pfn, small)
    }

    /// RMPREAD. A page inside a 2M entry reads as that entry with its own GPA; a
    /// 2M-aligned page described at 4K reports, in the 2M region status bit, whether any
    /// page of its region is assigned.
    fn rmpread(&self, pfn: u64) -> Result<Record, RmpError> {
        let entry = self.effective(pfn)?;
        let record = entry.as_record();
        if entry.page_size() == PageSize::Size4K && PageSize::Size2M.is_aligned(pfn) {
            let region_4k = self.region(pfn).any(|(_, entry)| entry.assigned());
            return Ok(record.with_region_4k(region_4k));
        }
        Ok(record)
    }

    fn find_assigned(&self, pfn: u64, size: PageSize) -> Result<Option<u64>, RmpError> {
        let first = size.align_down(pfn);
        // An assigned governing entry makes `first` itself assigned, whether it is a
        // 4K entry or the page lies in a 2M one.
        let (_, entry) = self.governing(first);
        let found = if entry.assigned() {
            Some(first)
        } else {
            let last = first.saturating_add(size.pages() - 1);
            Range::new(&self.store, first, last)
                .find(|(_, entry)| entry.assigned())
                .map(|(pfn, _)| pfn)
        };
        match found {
            // Every stored PFN is covered, and so is every PFN below it.
            Some(pfn) if pfn < self.end_pfn => Ok(Some(pfn)),
            _ => {
                self.covered(first, size)?;
                Ok(None)
            }
        }
    }
}
