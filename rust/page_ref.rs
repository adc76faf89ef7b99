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

/// One folio reference per 4K page of `[pfn, pfn + pages)` that has one to share,
/// and one reference on this module per page; dropping it drops them all.
///
/// A page whose folio has no reference is not free if the kernel hands it over:
/// the CCP driver's firmware buffers are `alloc_pages()` of order > 0 without
/// `__GFP_COMP`, whose pages after the first keep a count of 0 while allocated.
/// Those are held by the module reference only, and their caller keeps them from
/// the allocator as 7.3 requires (`snp_leak_pages()` when they cannot be
/// returned, which the module then records).
///
/// # Invariants
///
/// Every page of the range passed `pfn_valid()`, this value holds one reference on
/// the folio of each page `unreferenced` does not name (taken with
/// `folio_try_get()`) and `pages` references on this module; the range holds at
/// most 512 pages.
pub(crate) struct PageRefs {
    pfn: u64,
    pages: u64,
    unreferenced: Unreferenced,
}

/// Which pages of a [`PageRefs`] hold no folio reference.
enum Unreferenced {
    /// None: each page holds one.
    None,
    /// Every page of the range.
    All,
    /// Page `i` of the range where bit `i` is set.
    Some(KBox<[u64; 8]>),
}

impl PageRefs {
    /// Takes the references on the `pages` pages (at most 512) from `pfn`.
    ///
    /// # Errors
    ///
    /// `EINVAL` if a page has no `struct page`, or the range is empty or larger than
    /// 2M; `ENOMEM` if the record of pages without a folio reference cannot be
    /// allocated; `EBUSY` if the module is being unloaded. Nothing is held then.
    pub(crate) fn get(pfn: u64, pages: u64) -> Result<Self> {
        if pages == 0 || pages > 512 || !(pfn..pfn.saturating_add(pages)).all(pfn_valid) {
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
        // INVARIANT: no folio reference yet, all of them recorded as missing below
        // until taken; `pages` references on the module.
        let mut refs = Self {
            pfn,
            pages,
            unreferenced: Unreferenced::None,
        };
        for (i, p) in (pfn..pfn + pages).enumerate() {
            // SAFETY: `pfn_valid(p)` was checked above; the folio is only used by
            // `folio_try_get()`, which fails on a folio without references.
            let got = unsafe { folio_of(p) }
                // SAFETY: `f` is the folio of a valid page.
                .is_some_and(|f| unsafe { bindings::folio_try_get(f.as_ptr()) });
            if !got {
                if matches!(refs.unreferenced, Unreferenced::None) {
                    let bits = KBox::new([0u64; 8], GFP_KERNEL).inspect_err(|_| {
                        // Give back what was taken: the folios of the pages before
                        // `i`, and the module references of the others.
                        refs.pages = i as u64;
                        for _ in i as u64..pages {
                            // SAFETY: Module references taken above that `refs`,
                            // shortened to the pages before `i`, no longer holds.
                            unsafe { bindings::module_put(this_module()) };
                        }
                    })?;
                    refs.unreferenced = Unreferenced::Some(bits);
                }
                if let Unreferenced::Some(bits) = &mut refs.unreferenced {
                    bits[i / 64] |= 1 << (i % 64);
                }
            }
        }
        Ok(refs)
    }

    /// Whether this value holds a folio reference on page `i` of its range.
    fn referenced(&self, i: u64) -> bool {
        // CAST: `i` < 512 (type invariant).
        let i = i as usize;
        match &self.unreferenced {
            Unreferenced::None => true,
            Unreferenced::All => false,
            Unreferenced::Some(bits) => bits[i / 64] & (1 << (i % 64)) == 0,
        }
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
        let mut me = self;
        for (i, p) in (me.pfn..me.pfn + me.pages).enumerate() {
            let unreferenced = if me.referenced(i as u64) {
                Unreferenced::None
            } else {
                Unreferenced::All
            };
            // INVARIANT: the references of page `p`, moved out of `me`, which holds
            // none once the loop is done (below); a page without a folio reference
            // says so.
            // Cannot fail: room was checked above.
            let _ = into.push_within_capacity(PageRefs {
                pfn: p,
                pages: 1,
                unreferenced,
            });
        }
        // INVARIANT: every reference moved to the pages above: `me` holds none, and
        // dropping it puts none.
        me.pages = 0;
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
        for (i, p) in (self.pfn..self.pfn + self.pages).enumerate() {
            if self.referenced(i as u64) {
                // SAFETY: By the type invariant `p` is valid and this value holds a
                // reference on its folio, which cannot be split or freed before the put.
                if let Some(f) = unsafe { folio_of(p) } {
                    // SAFETY: Drops the reference this value holds (type invariant).
                    unsafe { bindings::folio_put(f.as_ptr()) };
                }
            }
            // SAFETY: One of the module references this value holds (type invariant).
            unsafe { bindings::module_put(this_module()) };
        }
    }
}
