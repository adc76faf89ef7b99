// SPDX-License-Identifier: GPL-2.0

//! References that keep pages the kernel handed to the module, by PFN, from
//! being freed, and the module from being unloaded, while they are private.
//!
//! The kernel's RMP operations (`rmp_make_private()` and friends, served by
//! the module through `rust/rmp_ops.rs`) name pages by PFN only, and their
//! callers free a page as soon as they asked for it to be shared again,
//! whether that worked or not. A [`PageRefs`] holds one reference on the folio
//! of each 4K page and one reference on this module per 4K page: the pages
//! cannot go back to the allocator and `rmmod` is refused (`EWOULDBLOCK`) for
//! as long as it lives. A page that cannot be returned safely keeps its
//! references for good ([`PageRefs::leak`]).

use crate::LocalModule;
use core::ptr::NonNull;
use kernel::{bindings, prelude::*, ModuleMetadata};

/// Returns this module's `struct module`.
fn this_module() -> *mut bindings::module {
    <LocalModule as ModuleMetadata>::THIS_MODULE.as_ptr()
}

/// Returns the folio that holds `pfn`.
///
/// # Safety
///
/// `pfn_valid(pfn)`, and the caller holds a reference on that folio (or the page
/// cannot be split or freed for another reason) for as long as it uses the result.
unsafe fn folio_of(pfn: u64) -> Option<NonNull<bindings::folio>> {
    // CAST: a PFN of RAM fits in `unsigned long` on x86-64.
    // SAFETY: `pfn_valid(pfn)` (the function's contract): the `struct page` exists.
    let page = unsafe { bindings::pfn_to_page(pfn as usize) };
    // SAFETY: `page` is a valid `struct page` (above).
    NonNull::new(unsafe { bindings::page_folio(page) })
}

/// Returns whether `pfn` has a `struct page` (RAM the kernel manages or reserved).
pub(crate) fn pfn_valid(pfn: u64) -> bool {
    // CAST: `usize` is 64 bits on x86-64.
    // SAFETY: `pfn_valid()` only looks the PFN up in the memory sections.
    unsafe { bindings::pfn_valid(pfn as usize) != 0 }
}

/// One folio reference per 4K page of `[pfn, pfn + pages)`, and one reference on
/// this module per page; dropping it drops them all.
///
/// # Invariants
///
/// Every page of the range passed `pfn_valid()`, this value holds one reference on
/// the folio of each of them (taken with `folio_try_get()`) and `pages` references
/// on this module.
pub(crate) struct PageRefs {
    pfn: u64,
    pages: u64,
}

impl PageRefs {
    /// Takes the references on the `pages` pages from `pfn`.
    ///
    /// # Errors
    ///
    /// `EINVAL` if a page has no `struct page` or is free (its folio has no
    /// reference: nobody owns it, so nobody may give it to a guest); `EBUSY` if the
    /// module is being unloaded. Nothing is held then.
    pub(crate) fn get(pfn: u64, pages: u64) -> Result<Self> {
        if pages == 0 || !(pfn..pfn.saturating_add(pages)).all(pfn_valid) {
            return Err(EINVAL);
        }
        // SAFETY: `this_module()` is this module, which is live while its code runs.
        if !unsafe { bindings::try_module_get(this_module()) } {
            return Err(EBUSY);
        }
        for _ in 1..pages {
            // SAFETY: This module is live and the call above holds a reference on it,
            // so another one cannot fail.
            unsafe { bindings::__module_get(this_module()) };
        }
        let mut taken = 0;
        for p in pfn..pfn + pages {
            // SAFETY: `pfn_valid(p)` was checked above; the folio is only used by
            // `folio_try_get()`, which fails on a folio without references.
            let got = unsafe { folio_of(p) }
                // SAFETY: `f` is the folio of a valid page.
                .is_some_and(|f| unsafe { bindings::folio_try_get(f.as_ptr()) });
            if !got {
                break;
            }
            taken += 1;
        }
        // INVARIANT: references on the first `taken` folios and `pages` on the module.
        let refs = Self { pfn, pages: taken };
        if taken < pages {
            for _ in taken..pages {
                // SAFETY: One of the module references taken above, not held by `refs`.
                unsafe { bindings::module_put(this_module()) };
            }
            drop(refs);
            return Err(EINVAL);
        }
        Ok(refs)
    }

    /// Returns the first PFN.
    pub(crate) fn pfn(&self) -> u64 {
        self.pfn
    }

    /// Returns the number of 4K pages.
    pub(crate) fn pages(&self) -> u64 {
        self.pages
    }

    /// Splits the references into one [`PageRefs`] per 4K page, in order, into
    /// `into`, which must have room for all of them (else nothing is split and the
    /// references come back).
    pub(crate) fn split_into(self, into: &mut KVVec<PageRefs>) -> Result<(), Self> {
        let room = into.capacity() - into.len();
        if u64::try_from(room).map_or(true, |room| room < self.pages) {
            return Err(self);
        }
        let me = core::mem::ManuallyDrop::new(self);
        for p in me.pfn..me.pfn + me.pages {
            // INVARIANT: the references of page `p`, moved out of `me`, which is never
            // dropped.
            // Cannot fail: room was checked above.
            let _ = into.push_within_capacity(PageRefs { pfn: p, pages: 1 });
        }
        Ok(())
    }

    /// Keeps the pages from the allocator, and the module loaded, for good: a page
    /// whose state cannot be restored must never be used again.
    pub(crate) fn leak(self) {
        core::mem::forget(self);
    }
}

impl Drop for PageRefs {
    fn drop(&mut self) {
        for p in self.pfn..self.pfn + self.pages {
            // SAFETY: By the type invariant `p` is valid and this value holds a reference
            // on its folio, which therefore cannot be split or freed before the put.
            if let Some(f) = unsafe { folio_of(p) } {
                // SAFETY: Drops the reference this value holds (type invariant).
                unsafe { bindings::folio_put(f.as_ptr()) };
            }
            // SAFETY: One of the module references this value holds (type invariant).
            unsafe { bindings::module_put(this_module()) };
        }
    }
}
