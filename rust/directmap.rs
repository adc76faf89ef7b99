// SPDX-License-Identifier: GPL-2.0

//! The kernel direct map: look up, protect, restore, split and merge
//! (`arch/x86/mm/pat/set_memory.c`, exported to this module by the patches).
//!
//! Every function that changes the direct map is `unsafe`: it changes the
//! mapping of whatever PFN it is given, and write-protecting or unmapping a
//! page the kernel itself uses breaks the kernel. Their callers own the pages
//! (pinned or leaked by this module), so that nobody else changes those pages'
//! direct-map attributes concurrently. The kernel's CPA code serialises the
//! page-table updates themselves, and flushes the TLB itself: nothing here
//! flushes anything, because the kernel's flush API is not for modules.

use crate::directmap::model::{Level, Protection};
use kernel::{bindings, error::to_result, prelude::*};

/// Returns the `struct page` of `pfn`.
fn page_of(pfn: u64) -> *mut bindings::page {
    // CAST: a PFN of RAM fits in `c_ulong` (`usize`) on x86-64.
    // SAFETY: `pfn_to_page()` is arithmetic on the vmemmap (SPARSEMEM_VMEMMAP);
    // it dereferences nothing.
    unsafe { bindings::pfn_to_page(pfn as usize) }
}

/// Returns the PFN of `page`.
#[cfg(CONFIG_KUNIT = "y")]
pub(crate) fn pfn_of(page: &kernel::page::Page) -> u64 {
    // SAFETY: `page.as_ptr()` is a valid page while `page` lives.
    let pfn = unsafe { bindings::page_to_pfn(page.as_ptr()) };
    // CAST: `usize` is 64 bits on x86-64.
    pfn as u64
}

/// The direct-map entry that maps a page, as the kernel's page tables say now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The size of the leaf.
    pub(crate) level: Level,
    /// Whether the entry is present.
    pub(crate) present: bool,
    /// Whether the entry is writable.
    pub(crate) writable: bool,
    /// Whether `set_memory_4k()` marked the entry to stay 4K (`_PAGE_KERNEL_4K`).
    pub(crate) kept_4k: bool,
}

/// Returns the direct-map entry that maps `pfn`, if a 4K, 2M or 1G leaf does.
///
/// The kernel walks its page tables under the locks that freeing them takes
/// (`lookup_direct_map()`), so a concurrent merge cannot free them under the
/// walk; the answer is stable as long as nobody changes the page's mapping,
/// which holds for the pages the caller owns.
pub(crate) fn lookup(pfn: u64) -> Option<Entry> {
    let mut level: u32 = 0;
    // SAFETY: `page_of()` returns the page of `pfn`; the function only reads the
    // page tables, under their locks, and writes `level`.
    let flags = unsafe { bindings::lookup_direct_map(page_of(pfn), &mut level) };
    let level = match level {
        bindings::pg_level_PG_LEVEL_4K => Level::Size4K,
        bindings::pg_level_PG_LEVEL_2M => Level::Size2M,
        bindings::pg_level_PG_LEVEL_1G => Level::Size1G,
        _ => return None,
    };
    Some(Entry {
        level,
        present: flags & (1 << bindings::_PAGE_BIT_PRESENT) != 0,
        writable: flags & (1 << bindings::_PAGE_BIT_RW) != 0,
        kept_4k: flags & (1 << bindings::_PAGE_BIT_KERNEL_4K) != 0,
    })
}

/// Returns the size of the direct-map leaf that maps `pfn`, if it is mapped by one.
pub(crate) fn level_of(pfn: u64) -> Option<Level> {
    lookup(pfn).map(|e| e.level)
}

/// Converts a page count for the CPA functions, which take `int`/`unsigned int`.
fn count(pages: u64) -> Result<u32> {
    u32::try_from(pages)
        .ok()
        .filter(|&n| n <= i32::MAX as u32)
        .ok_or(EINVAL)
}

/// Ranges of one size to take out of the direct map's write path with one
/// kernel call, and so with one TLB flush.
pub(crate) struct Ranges {
    /// The first page of each range.
    pages: KVVec<*mut bindings::page>,
    /// log2 of the number of 4K pages per range, once one was added.
    order: Option<u32>,
}

impl Ranges {
    /// Returns an empty list.
    pub(crate) const fn new() -> Self {
        Self {
            pages: KVVec::new(),
            order: None,
        }
    }

    /// Returns whether the list is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Adds the `1 << order` pages from `pfn` to the list.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the list holds ranges of another order (one call takes one
    /// size), `ENOMEM` if the list cannot grow.
    ///
    /// # Safety
    ///
    /// The caller owns the pages: it pinned them, or leaked them, and nobody else
    /// changes their direct-map attributes, from now until it has given them
    /// their protection back with [`restore`] or leaked them for good.
    pub(crate) unsafe fn push(&mut self, pfn: u64, order: u32) -> Result {
        if self.order.is_some_and(|o| o != order) {
            return Err(EINVAL);
        }
        self.pages.push(page_of(pfn), GFP_KERNEL)?;
        self.order = Some(order);
        Ok(())
    }

    /// Takes the range starting at `pfn` off the list; returns whether it was there.
    pub(crate) fn remove(&mut self, pfn: u64) -> bool {
        let page = page_of(pfn);
        let before = self.pages.len();
        self.pages.retain(|p| *p != page);
        if self.pages.is_empty() {
            self.order = None;
        }
        self.pages.len() != before
    }

    /// Protects every range of the list as `how` says, with one TLB flush for all,
    /// and empties the list.
    ///
    /// # Errors
    ///
    /// `ENOMEM` if a large mapping had to be split and could not be: then none of
    /// the ranges changed (the kernel undoes what it did).
    pub(crate) fn protect(&mut self, how: Protection) -> Result {
        self.change(|ptr, order, n| {
            // SAFETY: `ptr` points to `n` pages the caller owns (`push()`'s
            // contract); the kernel changes only their direct-map entries and
            // flushes the TLB.
            unsafe {
                match how {
                    Protection::ReadOnly => bindings::set_direct_map_wrprotect_pages(ptr, order, n),
                    Protection::NotPresent => bindings::set_direct_map_invalid_pages(ptr, order, n),
                }
            }
        })
        .map(|_| ())
    }

    /// Makes every range of the list not present and empties it, flushing this
    /// CPU's TLB for them at once and leaving the other CPUs' to the kernel's
    /// next flush of every TLB, which comes within a few hundred pages: only for
    /// pages nothing in the kernel touches while they are not present (guest
    /// pages only KVM holds). Returns whether this call flushed every TLB.
    ///
    /// # Errors
    ///
    /// As [`Ranges::protect`].
    pub(crate) fn invalidate_lazy(&mut self) -> Result<bool> {
        self.change(|ptr, order, n| {
            // SAFETY: As in `protect`.
            unsafe { bindings::set_direct_map_invalid_pages_lazy(ptr, order, n) }
        })
        .map(|flushed| flushed > 0)
    }

    /// Hands the list to `kernel`, a function of the `set_direct_map_*_pages()`
    /// family, and empties it; returns what the function returned.
    fn change(
        &mut self,
        kernel: impl FnOnce(*mut *mut bindings::page, u32, i32) -> i32,
    ) -> Result<i32> {
        let order = self.order.take().unwrap_or(0);
        let mut pages = core::mem::take(&mut self.pages);
        if pages.is_empty() {
            return Ok(0);
        }
        let n = i32::try_from(pages.len()).map_err(|_| EINVAL)?;
        let ret = kernel(pages.as_mut_ptr(), order, n);
        to_result(ret).map(|()| ret)
    }
}

/// Gives `pages` pages from `pfn` their default direct-map protection back
/// (present, writable), without a TLB flush, which this change does not need.
///
/// # Errors
///
/// `ENOMEM` if a large mapping had to be split and could not be: the pages are
/// then still protected.
///
/// # Safety
///
/// The caller owns the pages (see [`Ranges::push`]) and protected them itself.
pub(crate) unsafe fn restore(pfn: u64, pages: u64) -> Result {
    let n = count(pages)?;
    // SAFETY: The caller owns the pages; the function only changes their
    // direct-map entries.
    to_result(unsafe { bindings::set_direct_map_restore_noflush(page_of(pfn), n) })
}

/// Splits the mapping of `pages` pages from `pfn` to 4K for good, as Linux 7.3
/// does before a 4K RMP assignment (`set_memory_4k()`, which flushes itself).
///
/// # Safety
///
/// The caller owns the pages (see [`Ranges::push`]).
pub(crate) unsafe fn split_4k(pfn: u64, pages: u64) -> Result {
    let n = count(pages)?;
    // CAST: `n` is at most `i32::MAX` (`count`).
    // SAFETY: `page_of()` returns the page of `pfn`, which the caller owns; its
    // direct-map address is what `page_address()` computes.
    let addr = unsafe { bindings::page_address(page_of(pfn)) } as usize;
    // SAFETY: `addr` is the direct-map address of the caller's pages.
    to_result(unsafe { bindings::set_memory_4k(addr, n as i32) })
}

/// Merges the 2M blocks containing `pfns` back into large mappings where their
/// PTEs allow it (and then their 1G blocks). Flushes no TLB: the new mappings
/// translate as the old ones did, and the kernel frees the page tables they
/// replace after its next flush of every TLB (patches/0033), within about 10 ms.
///
/// Returns the number of large mappings created (0: nothing changed).
///
/// # Safety
///
/// Every 2M block named was mapped by a 2M or 1G leaf before the caller changed
/// pages in it, so that merging it gives the kernel back its own mapping and
/// does not undo a split the kernel made for its own reasons.
pub(crate) unsafe fn collapse(pfns: &[u64]) -> Result<u32> {
    let mut pages = KVVec::with_capacity(pfns.len(), GFP_KERNEL)?;
    for &pfn in pfns {
        pages.push(page_of(pfn), GFP_KERNEL)?;
    }
    let n = i32::try_from(pages.len()).map_err(|_| EINVAL)?;
    // SAFETY: `pages` holds `n` pages, whose blocks the caller may merge.
    let made = unsafe { bindings::set_direct_map_collapse(pages.as_mut_ptr(), n) };
    u32::try_from(made).map_err(|_| Error::from_errno(made))
}

/// Writes the first byte of `pfn` back to itself through the direct map with a
/// fault-tolerant kernel access, as a stray kernel write would, and returns
/// whether the write went through (`Ok`) or faulted (`EFAULT`).
///
/// The byte written is the one read just before, so the page is left as it was
/// if the write succeeds; under the module's policies a guest page is
/// write-protected (or not present) in the direct map, so the write faults,
/// and the kernel's fault path reports it as an RMP violation first.
///
/// # Safety
///
/// `pfn` is RAM that the caller tracks (a guest page pinned by the module), so
/// its direct-map address is valid and no other writer changes the byte
/// between the read and the write back.
pub(crate) unsafe fn probe_write(pfn: u64) -> Result {
    // SAFETY: `page_of(pfn)` is the page of RAM `pfn` (the caller's contract);
    // `page_address()` is arithmetic on the direct map (no highmem on x86-64).
    let addr = unsafe { bindings::page_address(page_of(pfn)) };
    let mut byte = 0u8;
    // SAFETY: Both calls handle faults themselves and touch one byte: `byte` is a
    // valid local, `addr` a direct-map address.
    unsafe {
        to_result(bindings::copy_from_kernel_nofault((&raw mut byte).cast(), addr, 1) as i32)?;
        to_result(bindings::copy_to_kernel_nofault(addr, (&raw const byte).cast(), 1) as i32)
    }
}
