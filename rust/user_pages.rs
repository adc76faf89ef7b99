// SPDX-License-Identifier: GPL-2.0

//! Long-term pins of the calling process's own anonymous private pages, and
//! their accounting.
//!
//! A page handed to a guest must not move, be swapped or be freed while the RMP
//! says a guest owns it, so it is pinned with `FOLL_LONGTERM` for as long as it
//! is assigned. Only anonymous private memory qualifies: a file or shared page
//! can be reached, and written, through other mappings and the page cache, and
//! a hugetlbfs page cannot be split when a 4K part of it changes owner.
//!
//! Pinned pages are charged to the address space that pinned them the way
//! other long-term pinners charge them (RDMA, io_uring): `mm->pinned_vm`,
//! which `/proc/PID/status` shows as `VmPin`, limited by `RLIMIT_MEMLOCK`
//! unless the caller has `CAP_IPC_LOCK`.

use crate::kernel_ext::cred;
use core::ptr::NonNull;
use kernel::{
    alloc::{flags::GFP_KERNEL_ACCOUNT, KVVec},
    bindings, current,
    error::to_result,
    mm::Mm,
    prelude::*,
    sync::{aref::ARef, atomic::Atomic, atomic::Relaxed},
};

/// The size of a base page, as a shift.
pub(crate) const PAGE_SHIFT: u32 = 12;
/// The size of a base page in bytes.
pub(crate) const PAGE_SIZE: usize = 1 << PAGE_SHIFT;

/// A page of user memory pinned with `FOLL_PIN | FOLL_LONGTERM`.
///
/// # Invariants
///
/// `page` points to a `struct page` that holds one pin taken by
/// `pin_user_pages()` on behalf of this object, released on drop.
pub(crate) struct PinnedPage {
    page: NonNull<bindings::page>,
}

// SAFETY: A pin is not tied to a thread; `unpin_user_page()` may run anywhere.
unsafe impl Send for PinnedPage {}
// SAFETY: All `&self` methods only read immutable properties of the page.
unsafe impl Sync for PinnedPage {}

impl PinnedPage {
    /// Returns the page frame number of the page.
    pub(crate) fn pfn(&self) -> u64 {
        // SAFETY: By the type invariant the page is valid (pinned) for `self`'s lifetime.
        let pfn = unsafe { bindings::page_to_pfn(self.page.as_ptr()) };
        // CAST: a PFN fits in 64 bits on x86-64 (`c_ulong` is `usize` there).
        pfn as u64
    }

    /// Returns the order of the folio the page belongs to (9 for a 2M THP).
    pub(crate) fn folio_order(&self) -> u32 {
        // SAFETY: The page is pinned, so its folio is stable and valid.
        unsafe { bindings::folio_order(bindings::page_folio(self.page.as_ptr())) }
    }

    /// Returns whether the page is the first page of its folio.
    pub(crate) fn is_folio_head(&self) -> bool {
        // SAFETY: As in `folio_order`.
        let folio = unsafe { bindings::page_folio(self.page.as_ptr()) };
        // CAST: a folio starts with its first `struct page`.
        folio.cast::<bindings::page>() == self.page.as_ptr()
    }
}

impl Drop for PinnedPage {
    fn drop(&mut self) {
        // SAFETY: By the type invariant this object owns one pin of `page`.
        unsafe { bindings::unpin_user_page(self.page.as_ptr()) };
    }
}

/// Checks that `[hva, hva + len)` lies in one anonymous private VMA of the current
/// process and pins its pages for writing, long-term.
///
/// # Errors
///
/// `EFAULT` when the range is not mapped (or the caller has no address space),
/// `EINVAL` when it crosses a VMA boundary or is file-backed, shared, hugetlbfs
/// (unless `hugetlb` allows private hugetlbfs pages) or a special mapping, and what
/// `pin_user_pages()` returns (`ENOMEM`, ...).
///
/// `write` pins for writing, which faults the pages in writable (never the zero
/// page) and breaks copy-on-write; without it the pins are taken read-only, for
/// pages already mapped read-only on purpose (a huge mapping that holds a guest
/// page), which a write fault would be refused on, and which are real, exclusive
/// pages (the guest page in them is pinned).
pub(crate) fn pin_anon(
    hva: usize,
    count: usize,
    hugetlb: bool,
    write: bool,
) -> Result<KVVec<PinnedPage>> {
    let len = count.checked_mul(PAGE_SIZE).ok_or(EINVAL)?;
    let end = hva.checked_add(len).ok_or(EINVAL)?;
    let task = current!();
    let mm = task.mm().ok_or(EFAULT)?;

    // A batch is thousands of pages: neither array needs contiguous memory.
    let mut raw: KVVec<*mut bindings::page> = KVVec::with_capacity(count, GFP_KERNEL_ACCOUNT)?;
    raw.resize(count, core::ptr::null_mut(), GFP_KERNEL_ACCOUNT)?;
    // Reserved before pinning, so that wrapping the pins below cannot fail and leak one.
    let mut out: KVVec<PinnedPage> = KVVec::with_capacity(count, GFP_KERNEL_ACCOUNT)?;

    let pinned = {
        let guard = mm.mmap_read_lock();
        let vma = guard.vma_lookup(hva).ok_or(EFAULT)?;
        if end > vma.end() {
            return Err(EINVAL);
        }
        let refused =
            bindings::VM_SHARED | bindings::VM_IO | bindings::VM_PFNMAP | bindings::VM_MIXEDMAP;
        // SAFETY: `vma` is valid while the mmap read lock is held.
        let anonymous = unsafe { bindings::vma_is_anonymous(vma.as_ptr()) };
        // Private hugetlbfs pages cannot be split, but they need not be: where the
        // kernel's fault hooks are in place, a write anywhere in one that holds a
        // guest page is refused (SIGBUS) instead.
        let huge = vma.flags() & bindings::VM_HUGETLB != 0;
        if !(anonymous || hugetlb && huge) || vma.flags() & refused != 0 {
            return Err(EINVAL);
        }
        // A page the process cannot write is no page to give a guest, however it is
        // mapped now (a read-only pin is taken below where the module keeps a
        // writable mapping read-only itself): as GUP answers a write pin of it.
        if vma.flags() & bindings::VM_WRITE == 0 {
            return Err(EFAULT);
        }
        let flags = if write {
            bindings::FOLL_WRITE | bindings::FOLL_LONGTERM
        } else {
            bindings::FOLL_LONGTERM
        };
        // SAFETY: The mmap read lock is held, as `pin_user_pages()` requires, and `raw`
        // has room for `count` pointers.
        unsafe { bindings::pin_user_pages(hva, count, flags, raw.as_mut_ptr()) }
    };
    if pinned < 0 {
        // CAST: a negative errno fits in `i32`.
        return Err(gup_errno(pinned as i32));
    }
    let pinned = usize::try_from(pinned).unwrap_or(0).min(count);
    for &p in raw.iter().take(pinned) {
        if let Some(page) = NonNull::new(p) {
            // INVARIANT: `pin_user_pages()` took one pin of `page` for us.
            // `out` has room for `count` pages, so this cannot fail; if it did, the
            // page would come back in the error and be unpinned when dropped.
            let _ = out.push_within_capacity(PinnedPage { page });
        }
    }
    if out.len() != count {
        return Err(EFAULT);
    }
    Ok(out)
}

/// The errno of a failed pin as the ABI promises it: a range that runs past the end
/// of the address space is memory that is not mapped (`EFAULT`), not GUP's
/// `EOVERFLOW`.
fn gup_errno(e: i32) -> Error {
    let e = Error::from_errno(e);
    if e == EOVERFLOW {
        EFAULT
    } else {
        e
    }
}

/// Returns the PFN currently behind `hva` in the current process, faulting it in
/// for reading like any access would (an untouched anonymous page reads as the zero page).
///
/// # Errors
///
/// `EFAULT` when `hva` is not mapped readable.
pub(crate) fn current_pfn(hva: usize) -> Result<u64> {
    let mut page: *mut bindings::page = core::ptr::null_mut();
    // SAFETY: `page` has room for one pointer; no lock is needed for the fast variant.
    let n = unsafe { bindings::pin_user_pages_fast(hva, 1, 0, &mut page) };
    if n != 1 {
        return Err(if n < 0 { gup_errno(n as i32) } else { EFAULT });
    }
    let page = NonNull::new(page).ok_or(EFAULT)?;
    // INVARIANT: `pin_user_pages_fast()` took one pin of `page`; dropping releases it.
    let pinned = PinnedPage { page };
    Ok(pinned.pfn())
}

/// Returns whether `pred` holds for the PFN behind any of the `count` pages from
/// `hva` in the current process, looking at them as a read would (nothing is
/// faulted in for writing, no copy-on-write is broken).
///
/// # Errors
///
/// `EFAULT` when a page is not mapped readable, and what `pin_user_pages_fast()`
/// returns.
pub(crate) fn any_pfn(hva: usize, count: usize, pred: impl Fn(u64) -> bool) -> Result<bool> {
    let mut raw: KVVec<*mut bindings::page> = KVVec::with_capacity(count, GFP_KERNEL)?;
    raw.resize(count, core::ptr::null_mut(), GFP_KERNEL)?;
    let n = i32::try_from(count).map_err(|_| EINVAL)?;
    // SAFETY: `raw` has room for `count` pointers; the fast variant needs no lock.
    let got = unsafe { bindings::pin_user_pages_fast(hva, n, 0, raw.as_mut_ptr()) };
    let got = usize::try_from(got).map_err(|_| gup_errno(got))?;
    let mut any = false;
    for &p in raw.iter().take(got) {
        if let Some(page) = NonNull::new(p) {
            // INVARIANT: `pin_user_pages_fast()` took one pin of `page`; dropping the
            // `PinnedPage` at the end of this iteration releases it.
            let pinned = PinnedPage { page };
            any |= pred(pinned.pfn());
        }
    }
    if got != count {
        return Err(EFAULT);
    }
    Ok(any)
}

/// Returns the index of the first of the pages from `hva` that no longer maps the
/// PFN `expected` says, looking as a read would; `None` when all still do.
///
/// # Errors
///
/// What `pin_user_pages_fast()` returns, and `ENOMEM`.
pub(crate) fn first_moved(hva: usize, expected: &[u64]) -> Result<Option<usize>> {
    let count = expected.len();
    let mut raw: KVVec<*mut bindings::page> = KVVec::with_capacity(count, GFP_KERNEL)?;
    raw.resize(count, core::ptr::null_mut(), GFP_KERNEL)?;
    let n = i32::try_from(count).map_err(|_| EINVAL)?;
    // SAFETY: `raw` has room for `count` pointers; the fast variant needs no lock.
    let got = unsafe { bindings::pin_user_pages_fast(hva, n, 0, raw.as_mut_ptr()) };
    let got = usize::try_from(got).map_err(|_| gup_errno(got))?;
    let mut first = None;
    for (i, &p) in raw.iter().take(got).enumerate() {
        if let Some(page) = NonNull::new(p) {
            // INVARIANT: `pin_user_pages_fast()` took one pin of `page`; dropping the
            // `PinnedPage` at the end of this iteration releases it.
            let pinned = PinnedPage { page };
            if first.is_none() && expected.get(i) != Some(&pinned.pfn()) {
                first = Some(i);
            }
        }
    }
    if first.is_none() && got < count {
        first = Some(got);
    }
    Ok(first)
}

/// The address space a file of the module belongs to, charged for what it pins.
///
/// Holds an `mmgrab` reference: the `mm_struct` (and its `pinned_vm`) stays valid
/// after the process exits, so pages returned at the last close, by whoever
/// closes, are uncharged from the address space that was charged for them.
pub(crate) struct PinAccount {
    mm: ARef<Mm>,
}

impl PinAccount {
    /// Returns the account of the current task's address space.
    ///
    /// # Errors
    ///
    /// `EFAULT` when the current task has no address space (a kernel thread).
    pub(crate) fn of_current() -> Result<Self> {
        let task = current!();
        let mm: &Mm = task.mm().ok_or(EFAULT)?;
        Ok(Self { mm: mm.into() })
    }

    /// Returns whether the current task runs in this address space.
    pub(crate) fn is_current(&self) -> bool {
        let task = current!();
        task.mm().is_some_and(|mm| mm.as_raw() == self.mm.as_raw())
    }

    fn pinned_vm(&self) -> &Atomic<i64> {
        // SAFETY: `self.mm` holds an `mmgrab` reference, so the `mm_struct` is valid for
        // `self`'s lifetime; `pinned_vm` is an `atomic64_t`, which every C user
        // accesses with atomic operations only, so there is no data race.
        unsafe { Atomic::from_ptr(&raw mut (*self.mm.as_raw()).__bindgen_anon_1.pinned_vm.counter) }
    }

    /// Charges `pages` base pages about to be pinned; the charge is dropped again
    /// unless [`Charge::keep`] says which part stays pinned.
    ///
    /// # Errors
    ///
    /// `ENOMEM` when the address space would pin more than `RLIMIT_MEMLOCK` of the
    /// current task allows and the task lacks `CAP_IPC_LOCK`; nothing is charged then.
    pub(crate) fn charge(&self, pages: u64) -> Result<Charge<'_>> {
        let n = i64::try_from(pages).map_err(|_| ENOMEM)?;
        // SAFETY: `rlimit()` reads the current task's own limits.
        let limit = unsafe { bindings::rlimit(bindings::RLIMIT_MEMLOCK) } >> PAGE_SHIFT;
        let now = self.pinned_vm().fetch_add(n, Relaxed).saturating_add(n);
        // CAST: `RLIM_INFINITY >> PAGE_SHIFT` and any real limit fit in `i64`.
        if u64::try_from(now).unwrap_or(0) > limit as u64 && !cred::capable_ipc_lock() {
            self.pinned_vm().fetch_sub(n, Relaxed);
            return Err(ENOMEM);
        }
        Ok(Charge {
            account: self,
            pages,
        })
    }

    /// Write-protects the user mappings of `[hva, hva + len)` in this address space,
    /// a huge mapping whole (without splitting it), so that any write to them
    /// faults and reaches the module's fault hook.
    ///
    /// # Errors
    ///
    /// What the kernel returns (`ENOMEM` when page tables cannot be allocated).
    pub(crate) fn wrprotect(&self, hva: usize, len: usize) -> Result {
        // SAFETY: `self.mm` is a valid `mm_struct` (mmgrab); making user mappings
        // read-only is always memory-safe, and the kernel takes the mmap lock itself.
        to_result(unsafe { bindings::snp_user_wrprotect(self.mm.as_raw(), hva, len) })
    }

    /// Drops the charge of `pages` base pages that are no longer pinned.
    pub(crate) fn uncharge(&self, pages: u64) {
        // CAST: callers uncharge what they charged, which fitted in `i64`.
        self.pinned_vm().fetch_sub(pages as i64, Relaxed);
    }
}

/// Pages charged to a [`PinAccount`] for one batch; dropping it uncharges the
/// pages that did not stay pinned.
pub(crate) struct Charge<'a> {
    account: &'a PinAccount,
    pages: u64,
}

impl Charge<'_> {
    /// Keeps the charge of `pages` base pages that stay pinned beyond the batch:
    /// they are uncharged with [`PinAccount::uncharge`] when they are unpinned.
    pub(crate) fn keep(&mut self, pages: u64) {
        self.pages = self.pages.saturating_sub(pages);
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        self.account.uncharge(self.pages);
    }
}
