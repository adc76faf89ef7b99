// SPDX-License-Identifier: GPL-2.0

//! The module as the provider of the kernel's RMP operations: the pages of
//! KVM's SNP guests and the CCP driver's firmware pages, and, on machines
//! without SNP, the guest_memfd pages of software-protected VMs.
//!
//! KVM and the CCP driver change the RMP through `rmp_make_private()`,
//! `rmp_make_shared()`, `psmash()`, `snp_lookup_rmpentry()` and
//! `__snp_leak_pages()` (`arch/x86/virt/svm/sev.c`); with the module
//! registered (`rust/rmp_ops.rs`) these come here and get what the module's
//! own conversions get:
//!
//! - its RMP backend, with its bounded retries of transient failures;
//! - its direct-map policy: a guest page is out of the host's way before the
//!   RMP assigns it, back when it returns, and its 2M region merges back once
//!   empty. Pages no user mapping reaches are made not present (the host has
//!   no reason to read them: to it their contents are ciphertext); the CCP
//!   driver's firmware pages (ASID 0), which the driver may read, are only
//!   write-protected;
//! - its leak rules: a page whose state cannot be restored is leaked, never
//!   freed. The kernel's callers free a page right after asking for it to be
//!   shared, whether that worked or not (7.3's `sev_gmem_make_shared()` only
//!   warns), so every private page holds a reference on its folio
//!   ([`PageRefs`]), which a leaked page keeps for good; it also holds a
//!   reference on the module, so that `rmmod` is refused while any page is
//!   private;
//! - its accounting: the pages are tracked by PFN in the ledger and counted in
//!   `KVM_COUNTERS` (`SNP_HOST_GET_KVM_STATS`, debugfs `status`).
//!
//! Pages assigned before the module loaded (the CCP driver's firmware pages,
//! on an SNP host) are foreign: the module passes the operations on them to
//! the RMP and leaves their direct map as Linux made it.
//!
//! Software-protected VMs (`CONFIG_SNP_HOST_SW_RMP`, emulated RMP only): KVM
//! calls [`RmpOperations::sw_make_private`] on every private fault-in, so a
//! page the module already holds is accepted at once, and
//! [`RmpOperations::sw_reclaim`] for every page guest_memfd frees, naming
//! pages by PFN only, some of which never became private. Their pages are
//! 4K entries of one pseudo-ASID, [`SW_ASID`], for every such VM: reclaim
//! does not say which VM a page belonged to.
//!
//! Lock order: the kernel's pages and the registry (`ledger.rs`), then the
//! direct map's region lock, then the backend's lock. Everything but
//! [`RmpOperations::lookup`] runs in process context and may sleep; the
//! lookup runs under KVM's `mmu_lock` and takes no lock.

use crate::counters::{COUNTERS, KVM_COUNTERS};
use crate::directmap::{self, Reach};
use crate::kernel_ext::{
    page_ref::PageRefs,
    rmp_ops::{Level, PsmashError, RmpOperations},
    task::RateLimit,
};
use crate::ledger::{KernelBooks, KernelSlot};
use crate::rmp::{
    backend::{errno, ErrDisplay},
    model::{PageSize, RmpError, State},
};
use crate::state::Shared;
use core::mem::ManuallyDrop;
use kernel::{alloc::KVVec, prelude::*};

/// The ASID of every software-protected VM's pages in the emulated RMP.
pub(crate) const SW_ASID: u32 = 1;

/// Leak reports are rate-limited; the count (`leaked_pages`) is exact.
static LEAK_LOG: RateLimit = RateLimit::new();

/// Who had a page made private.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `rmp_make_private()`: KVM's SNP guests, the CCP driver.
    Kernel,
    /// A software-protected VM's private fault-in.
    SwVm,
}

/// A page the kernel had the module make private.
///
/// # Invariants
///
/// `refs` hold the `size` page at `pfn`; the page is assigned in the RMP, out of
/// the host's way in the direct map as a `reach` batch of the module's direct map
/// made it, and tracked in the ledger. Only [`KernelPage::into_refs`] gives the
/// references back: dropping the value leaks the page.
pub(crate) struct KernelPage {
    pfn: u64,
    size: PageSize,
    reach: Reach,
    origin: Origin,
    refs: ManuallyDrop<PageRefs>,
}

impl KernelPage {
    /// Returns the first PFN of the page.
    pub(crate) fn pfn(&self) -> u64 {
        self.pfn
    }

    /// Returns the size of the page.
    pub(crate) fn size(&self) -> PageSize {
        self.size
    }

    fn dm_page(&self) -> directmap::Page {
        directmap::Page {
            pfn: self.pfn,
            size: self.size,
        }
    }

    /// Gives the references back; only a page fully returned to the host gets them.
    fn into_refs(self) -> PageRefs {
        let mut me = ManuallyDrop::new(self);
        // SAFETY: `me` is never used or dropped again, so the references are taken once.
        unsafe { ManuallyDrop::take(&mut me.refs) }
    }
}

impl Drop for KernelPage {
    fn drop(&mut self) {
        let pages = self.size.pages();
        count_leak(pages);
        if LEAK_LOG.allow() {
            pr_err!(
                "pfn {:#x} ({} pages, {:?}) cannot be returned to the host safely; it stays off the allocator for good\n",
                self.pfn,
                pages,
                self.origin
            );
        }
        // `refs` is `ManuallyDrop`: the folio and module references are kept.
    }
}

/// Counts `pages` leaked on this path (and module-wide).
fn count_leak(pages: u64) {
    KVM_COUNTERS.leaked_pages.add(pages);
    COUNTERS.leaked_pages.add(pages);
}

/// Leaks references on pages that were never tracked as a [`KernelPage`].
fn leak_refs(refs: PageRefs) {
    count_leak(refs.pages());
    if LEAK_LOG.allow() {
        pr_err!(
            "pfn {:#x} ({} pages): the direct map cannot be restored; it stays off the allocator for good\n",
            refs.pfn(),
            refs.pages()
        );
    }
    refs.leak();
}

/// Converts an RMP size from the kernel.
fn page_size(level: Level) -> PageSize {
    match level {
        Level::Size4K => PageSize::Size4K,
        Level::Size2M => PageSize::Size2M,
    }
}

/// How a page given to `asid` is kept out of the host's way: firmware pages
/// (ASID 0) may be read by their driver, guest pages by nobody.
fn reach_of(asid: u32) -> Reach {
    if asid == 0 {
        Reach::User
    } else {
        Reach::Kernel
    }
}

/// Returns what debugfs `status` says of the provider.
pub(crate) fn provider_state(s: &Shared) -> &'static str {
    match (
        s.hooks.load(core::sync::atomic::Ordering::Relaxed),
        s.backend.hardware(),
    ) {
        (false, _) => "not registered",
        (true, Some(_)) => "registered: KVM's RMP operations (hardware RMP)",
        (true, None) => {
            "registered: the kernel's RMP operations and software-protected VMs (emulated RMP)"
        }
    }
}

impl Shared {
    /// Makes the `size` page at `pfn` private for the kernel.
    fn kernel_make_private(
        &self,
        pfn: u64,
        state: &State,
        size: PageSize,
        asid: u32,
        origin: Origin,
    ) -> Result {
        let pages = size.pages();
        let end = pfn.checked_add(pages).ok_or(EINVAL)?;
        if !size.is_aligned(pfn) || end > self.backend.end_pfn() || asid > self.max_asid {
            return Err(EINVAL);
        }
        let mut books = self.ledger.kernel();
        if let Some(page) = books.get(pfn) {
            if page.size != size {
                return Err(EINVAL);
            }
            // KVM asks again on every private fault-in of a software-protected VM.
            if origin == Origin::SwVm {
                return Ok(());
            }
            // An SNP guest's page assigned again: the RMP takes the new attributes, as
            // 7.3's RMPUPDATE would give them.
            // SAFETY: The module holds the page (`KernelPage` invariant): pinned by its
            // references, tracked, out of the host's way and flushed when it was
            // assigned first.
            return unsafe { self.backend.rmpupdate(pfn, state) }.map_err(errno);
        }
        // A page of `/dev/snp_host`, part of a page of the kernel's, or leaked.
        if !books.is_free(pfn, size) {
            return Err(EBUSY);
        }
        // Only a software-protected VM's pages need no look at the RMP: they exist
        // on the emulated backend alone, whose entries only this module assigns, and
        // every page it assigned is in the books until it is shared again. A KVM
        // fault-in pays for each look (two locks and two tree walks).
        if origin != Origin::SwVm && self.backend.any_assigned(pfn, size).map_err(errno)? {
            // Assigned before the module loaded: the RMP decides, and the direct map
            // stays as Linux made it. The emulated RMP has no such page. Only the
            // very entry, at its size, is assigned again: anything else (a 4K entry
            // inside the 2M page asked for, a 2M entry around the 4K one) would be
            // an RMPUPDATE over pages nobody took out of the host's way.
            let found = self.backend.lookup(pfn).map_err(errno)?;
            if !found.assigned() || found.record.page_size() != size {
                return Err(EBUSY);
            }
            // SAFETY: The caller owns the page, which is a guest's or the firmware's
            // already: assigning it again hands the host's memory to nobody new.
            return unsafe { self.backend.rmpupdate(pfn, state) }
                .map(|()| KVM_COUNTERS.make_private.add(pages))
                .map_err(errno);
        }
        // Allocated only now: most calls (every private fault-in of a software-protected
        // VM) find the page above. Sleeping here, under the ledger, is allowed.
        let slot = KernelSlot::new()?;
        let refs = PageRefs::get(pfn, pages)?;
        let reach = reach_of(asid);
        let dm_page = directmap::Page { pfn, size };
        // For the hooks a guest page from now on, as in `convert.rs`.
        self.owned.claim(pfn, size);
        let mut batch = self.directmap.batch_for(reach);
        // SAFETY: The module holds references on the page (`refs`) and claims it in the
        // ledger (`books`, in which it is free), so that no other path of the module
        // changes its direct map, until it is released or leaked.
        if let Err(e) = unsafe { batch.make_private(&dm_page) } {
            self.owned.release(pfn, size);
            return Err(e);
        }
        // No large translation over the page may survive the assignment (the
        // splits flush every TLB); other CPUs' 4K entries of the page itself may,
        // until the kernel's lazy flush (`directmap::Batch::flush`). A failed flush
        // protected nothing; the page goes back below.
        let assigned = match batch.flush() {
            // SAFETY: As for `make_private`; the page is out of the host's way: not
            // present, and no TLB maps it at a size that covers other pages.
            Ok(()) => unsafe { self.backend.rmpupdate(pfn, state) }.map_err(errno),
            Err(e) => Err(e),
        };
        match assigned {
            Ok(()) => {
                books.track(
                    slot,
                    // INVARIANT: assigned just now, protected by `batch`, held by `refs`.
                    KernelPage {
                        pfn,
                        size,
                        reach,
                        origin,
                        refs: ManuallyDrop::new(refs),
                    },
                );
                KVM_COUNTERS.make_private.add(pages);
                KVM_COUNTERS.private_4k_now.add(pages);
                Ok(())
            }
            Err(e) => {
                self.owned.release(pfn, size);
                // SAFETY: As for `make_private`; `batch` made the page private.
                match unsafe { batch.make_shared(&dm_page) } {
                    Ok(()) => drop(refs),
                    // Still out of the direct map: it must never be freed.
                    Err(_) => {
                        books.track_leaked(slot, pfn, size);
                        leak_refs(refs);
                    }
                }
                Err(e)
            }
        }
    }

    /// Returns the `size` page at `pfn` to the host for the kernel.
    fn kernel_make_shared(&self, pfn: u64, size: PageSize) -> Result {
        let mut books = self.ledger.kernel();
        match books.get(pfn).map(KernelPage::size) {
            Some(s) if s == size => {}
            Some(_) => return Err(EINVAL),
            // A page of `/dev/snp_host`, part of a page of the kernel's, or leaked.
            None if !books.is_free(pfn, size) => return Err(EINVAL),
            None => {
                if pfn
                    .checked_add(size.pages())
                    .is_none_or(|end| end > self.backend.end_pfn())
                {
                    return Err(EINVAL);
                }
                // Not the module's: assigned before it loaded, or not at all.
                // SAFETY: The caller owns the page; making it shared hands nothing to
                // a guest, and the module never changed its direct map.
                return unsafe { self.backend.rmpupdate(pfn, &State::shared(size)) }
                    .map(|()| KVM_COUNTERS.make_shared.add(size.pages()))
                    .map_err(errno);
            }
        }
        let page = books.take(pfn).ok_or(EINVAL)?;
        self.release(&mut books, page)
    }

    /// Returns `page`, taken off the kernel's tree, to the host: the RMP, then the
    /// direct map, then the references. A page that cannot be returned is leaked:
    /// every caller of the kernel's operations gives up on it then.
    fn release(&self, books: &mut KernelBooks<'_>, page: KernelPage) -> Result {
        let (pfn, size) = (page.pfn, page.size);
        let pages = size.pages();
        // SAFETY: The module assigned the page and holds it (`KernelPage` invariant);
        // making it shared hands nothing to a guest.
        if let Err(e) = unsafe { self.backend.rmpupdate(pfn, &State::shared(size)) } {
            report_leak(pfn, e);
            books.mark_leaked(pfn);
            KVM_COUNTERS.private_4k_now.sub(pages);
            drop(page);
            return Err(errno(e));
        }
        // The host's again: writes to it may proceed from now on.
        self.owned.release(pfn, size);
        {
            let mut batch = self.directmap.batch_for(page.reach);
            // SAFETY: The module holds the page, and a batch of the same direct map and
            // reach made it private (`KernelPage` invariant).
            if unsafe { batch.make_shared(&page.dm_page()) }.is_err() {
                books.mark_leaked(pfn);
                KVM_COUNTERS.private_4k_now.sub(pages);
                drop(page);
                return Err(EIO);
            }
            // Dropping the batch merges the region back if this emptied it.
        }
        books.forget(pfn);
        KVM_COUNTERS.private_4k_now.sub(pages);
        KVM_COUNTERS.make_shared.add(pages);
        drop(page.into_refs());
        Ok(())
    }

    /// PSMASH of the 2M page at `pfn` for the kernel.
    fn kernel_psmash(&self, pfn: u64) -> Result<(), PsmashError> {
        let fail = |e: RmpError| {
            e.code()
                .map_or(PsmashError::Errno(errno(e)), PsmashError::Code)
        };
        let mut books = self.ledger.kernel();
        if books.get(pfn).map(KernelPage::size) != Some(PageSize::Size2M) {
            // A 2M page of `/dev/snp_host`: not the kernel's to split.
            if books.holding(pfn).is_none() && !books.is_free(pfn, PageSize::Size4K) {
                return Err(PsmashError::Errno(EINVAL));
            }
            // Not the module's 2M page: the RMP answers (PSMASH changes no ownership).
            // SAFETY: PSMASH of a page the module does not hold as a 2M page changes
            // nobody's ownership; the caller owns the page.
            return unsafe { self.backend.psmash(pfn) }.map_err(fail);
        }
        let mut slots =
            KVVec::with_capacity(512, GFP_KERNEL).map_err(|_| PsmashError::Errno(ENOMEM))?;
        for _ in 0..512 {
            let slot = KernelSlot::new().map_err(PsmashError::Errno)?;
            slots
                .push(slot, GFP_KERNEL)
                .map_err(|_| PsmashError::Errno(ENOMEM))?;
        }
        let mut split =
            KVVec::with_capacity(512, GFP_KERNEL).map_err(|_| PsmashError::Errno(ENOMEM))?;
        let mut pages =
            KVVec::with_capacity(512, GFP_KERNEL).map_err(|_| PsmashError::Errno(ENOMEM))?;
        // SAFETY: The module assigned the 2M page and holds it (`KernelPage`
        // invariant); once this succeeded it tracks the 512 pages as 4K pages.
        unsafe { self.backend.psmash(pfn) }.map_err(fail)?;
        let Some(page) = books.take(pfn) else {
            return Err(PsmashError::Errno(EINVAL));
        };
        let (reach, origin) = (page.reach, page.origin);
        let refs = page.into_refs();
        if let Err(refs) = refs.split_into(&mut split) {
            // Cannot happen (room for 512 was made above); should it, the page stays
            // guest-owned and its references are kept.
            leak_refs(refs);
            return Ok(());
        }
        for refs in split.drain_all() {
            // INVARIANT: PSMASH made each 4K page a guest page with the 2M page's
            // attributes; the direct map's accounting is per 4K page; `refs` hold it.
            let p = KernelPage {
                pfn: refs.pfn(),
                size: PageSize::Size4K,
                reach,
                origin,
                refs: ManuallyDrop::new(refs),
            };
            // Cannot fail: room for 512 was made above.
            let _ = pages.push_within_capacity(p);
        }
        books.split(pfn, pages, slots);
        KVM_COUNTERS.psmash.add(1);
        Ok(())
    }

    /// The kernel gives the `pages` pages from `pfn` up for good.
    fn kernel_leak(&self, pfn: u64, pages: u64) {
        if !self.owned.any(pfn, pages) {
            return;
        }
        let mut books = self.ledger.kernel();
        let end = pfn.saturating_add(pages);
        let mut p = pfn;
        while p < end {
            let Some(start) = books.holding(p) else {
                p += 1;
                continue;
            };
            let Some(page) = books.take(start) else {
                p += 1;
                continue;
            };
            p = start.saturating_add(page.size.pages());
            books.mark_leaked(start);
            KVM_COUNTERS.private_4k_now.sub(page.size.pages());
            // Dropping it keeps its references: leaked, counted and reported.
            drop(page);
        }
    }
}

/// Logs why a page of the kernel's is about to be leaked.
fn report_leak(pfn: u64, e: RmpError) {
    if LEAK_LOG.allow() {
        pr_err!(
            "pfn {:#x}: the RMP refused to return it to the host ({}); leaking it\n",
            pfn,
            ErrDisplay(e)
        );
    }
}

/// Counts an operation that failed for its caller.
fn counted<T, E>(r: core::result::Result<T, E>) -> core::result::Result<T, E> {
    if r.is_err() {
        KVM_COUNTERS.failures.add(1);
    }
    r
}

impl RmpOperations for Shared {
    fn lookup(&self, pfn: u64) -> Result<(bool, Level)> {
        KVM_COUNTERS.lookups.add(1);
        let level = |s: PageSize| match s {
            PageSize::Size4K => Level::Size4K,
            PageSize::Size2M => Level::Size2M,
        };
        // As Linux: outside the table is EFAULT.
        let err = |e: RmpError| match e {
            RmpError::NotCovered => EFAULT,
            e => errno(e),
        };
        if self.backend.hardware().is_some() {
            // The hardware's entries are read without a lock.
            let l = counted(self.backend.lookup(pfn).map_err(err))?;
            return Ok((l.assigned(), level(l.size)));
        }
        // The emulated table is behind a mutex, which this context may not wait for.
        let head = PageSize::Size2M.align_down(pfn);
        match (
            self.backend.try_rmpread(pfn),
            self.backend.try_rmpread(head),
        ) {
            (Some(r), Some(h)) => {
                let r = counted(r.map_err(err))?;
                let h = counted(h.map_err(err))?;
                Ok((r.assigned(), level(h.page_size())))
            }
            _ => counted(Err(EBUSY)),
        }
    }

    fn make_private(&self, pfn: u64, gpa: u64, level: Level, asid: u32, immutable: bool) -> Result {
        let size = page_size(level);
        let state = State::private(gpa, size, asid, immutable);
        counted(self.kernel_make_private(pfn, &state, size, asid, Origin::Kernel))
    }

    fn make_shared(&self, pfn: u64, level: Level) -> Result {
        counted(self.kernel_make_shared(pfn, page_size(level)))
    }

    fn psmash(&self, pfn: u64) -> Result<(), PsmashError> {
        counted(self.kernel_psmash(pfn))
    }

    fn leak(&self, pfn: u64, pages: u64) {
        self.kernel_leak(pfn, pages);
    }

    fn sw_make_private(&self, pfn: u64, gpa: u64, pages: u64) -> Result {
        // KVM asks on every private fault-in, under the folio's lock, which also
        // keeps guest_memfd from freeing (and reclaiming) the page meanwhile: a page
        // the module holds already is answered without a lock. No page of
        // `/dev/snp_host` is a guest_memfd page, so a claimed one is the module's.
        if (pfn..pfn.saturating_add(pages)).all(|p| self.owned.page(p)) {
            return Ok(());
        }
        for i in 0..pages {
            let state = State::private(gpa + i * 4096, PageSize::Size4K, SW_ASID, false);
            counted(self.kernel_make_private(
                pfn + i,
                &state,
                PageSize::Size4K,
                SW_ASID,
                Origin::SwVm,
            ))?;
        }
        Ok(())
    }

    fn sw_reclaim(&self, pfn: u64, pages: u64) {
        // Most freed pages never became private: answer them without a lock.
        if !self.owned.any(pfn, pages) {
            return;
        }
        let mut books = self.ledger.kernel();
        let end = pfn.saturating_add(pages);
        let mut p = pfn;
        while p < end {
            let Some(page) = books.take(p) else {
                p += 1;
                continue;
            };
            p = p.saturating_add(page.size.pages());
            // Nobody is left to try again: a page that cannot be returned is leaked,
            // counted and reported by `release`.
            let _ = self.release(&mut books, page);
        }
    }
}

#[kunit_tests(snp_host_kvm)]
mod tests {
    use super::*;
    use crate::kernel_ext::{directmap as dm, rmp_ops::sev};

    /// A page this test allocated, made private and shared again through the C
    /// entry points KVM calls; KUnit runs once the module is live, so they reach
    /// it. Only on the emulated backend: on an SNP host this would give a real
    /// page to ASID 1.
    #[test]
    fn kernel_entry_points_reach_the_module() -> Result {
        if crate::kernel_ext::coco::host_sev_snp() {
            return Ok(());
        }
        let c = &KVM_COUNTERS;
        let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
        let pfn = dm::pfn_of(&page);
        let (made, returned, now) = (
            c.make_private.get(),
            c.make_shared.get(),
            c.private_4k_now.get(),
        );
        // SAFETY: The test owns the page, which nothing else uses; it gets it back.
        let made_private = unsafe { sev::rmp_make_private(pfn, 0x1000, sev::LEVEL_4K, 1, false) };
        assert_eq!(made_private, 0);
        assert_eq!(c.make_private.get(), made + 1);
        assert_eq!(c.private_4k_now.get(), now + 1);
        // A kernel-only page: out of the direct map, where the policy protects pages
        // (`split` only splits the mapping around it).
        let protects = crate::DIRECTMAP.get().protects();
        assert!(dm::lookup(pfn).is_some_and(|e| e.present != protects));
        assert_eq!(sev::lookup(pfn), Ok((true, 1)));
        // Assigned again with other attributes: the RMP takes them, nothing is counted.
        // SAFETY: As above.
        let again = unsafe { sev::rmp_make_private(pfn, 0x2000, sev::LEVEL_4K, 2, false) };
        assert_eq!(again, 0);
        assert_eq!(c.make_private.get(), made + 1);
        // A 4K entry cannot be smashed: the RMP's return code comes back.
        // SAFETY: PSMASH changes no ownership.
        assert!(unsafe { sev::psmash(PageSize::Size2M.align_down(pfn)) } > 0);
        // SAFETY: As above.
        assert_eq!(unsafe { sev::rmp_make_shared(pfn, sev::LEVEL_4K) }, 0);
        assert_eq!(c.make_shared.get(), returned + 1);
        assert_eq!(c.private_4k_now.get(), now);
        assert!(dm::lookup(pfn).is_some_and(|e| e.present && e.writable));
        assert_eq!(sev::lookup(pfn), Ok((false, 1)));
        Ok(())
    }

    /// The software-protected VMs' path: every fault-in asks again, reclaim names
    /// pages by PFN, some of which never became private.
    #[test]
    fn sw_protected_pages_are_idempotent_and_reclaimed_by_pfn() -> Result {
        if crate::kernel_ext::coco::host_sev_snp() {
            return Ok(());
        }
        let c = &KVM_COUNTERS;
        let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
        let other = kernel::page::Page::alloc_page(GFP_KERNEL)?;
        let (pfn, stranger) = (dm::pfn_of(&page), dm::pfn_of(&other));
        let (made, returned, now) = (
            c.make_private.get(),
            c.make_shared.get(),
            c.private_4k_now.get(),
        );
        for _ in 0..3 {
            // SAFETY: The test owns the page; reclaim below gives it back.
            assert_eq!(unsafe { sev::snp_rmp_sw_make_private(pfn, 0x4000, 1) }, 0);
        }
        assert_eq!(c.make_private.get(), made + 1);
        assert_eq!(c.private_4k_now.get(), now + 1);
        // SAFETY: A page the module never made private: it is left alone.
        unsafe { sev::snp_rmp_sw_reclaim(stranger, 1) };
        assert_eq!(c.make_shared.get(), returned);
        // SAFETY: The page the module made private above.
        unsafe { sev::snp_rmp_sw_reclaim(pfn, 1) };
        assert_eq!(c.make_shared.get(), returned + 1);
        assert_eq!(c.private_4k_now.get(), now);
        assert!(dm::lookup(pfn).is_some_and(|e| e.present && e.writable));
        // SAFETY: Reclaimed already: nothing happens.
        unsafe { sev::snp_rmp_sw_reclaim(pfn, 1) };
        assert_eq!(c.make_shared.get(), returned + 1);
        Ok(())
    }
}
