// SPDX-License-Identifier: GPL-2.0

//! The kernel direct map: look up, write-protect, restore, split, merge and flush
//! (`arch/x86/mm/pat/set_memory.c`, exported to this module by patch 0003).
//!
//! Every function takes PFNs of pages the caller owns (pinned or leaked by this
//! module), so their direct-map addresses are valid and nobody else changes
//! their mapping attributes concurrently; the kernel's CPA code serialises the
//! page-table updates themselves.

use crate::directmap::model::Level;
use kernel::{bindings, error::to_result, ffi::c_ulong, prelude::*};

/// `<asm/tlbflush.h>`, whose flush API is declared for built-in code only
/// (`#ifndef MODULE`); patch 0003 exports this one function to this module.
mod tlbflush {
    use super::c_ulong;

    unsafe extern "C" {
        /// `void flush_tlb_kernel_range(unsigned long start, unsigned long end);`
        pub(super) fn flush_tlb_kernel_range(start: c_ulong, end: c_ulong);
    }
}

/// Returns the direct-map address of `pfn`.
fn address(pfn: u64) -> usize {
    // CAST: a PFN of RAM fits in `c_ulong` (`usize`) on x86-64.
    // SAFETY: `pfn_to_page()` and `page_address()` are plain arithmetic on x86-64
    // (SPARSEMEM_VMEMMAP, no highmem) and the caller's PFNs are RAM.
    unsafe { bindings::page_address(bindings::pfn_to_page(pfn as usize)) as usize }
}

/// Returns the size of the direct-map leaf that maps `pfn`, if it is mapped by one.
pub(crate) fn level_of(pfn: u64) -> Option<Level> {
    let mut level: u32 = 0;
    // SAFETY: `lookup_address()` walks the kernel page tables and writes `level`.
    let pte = unsafe { bindings::lookup_address(address(pfn), &mut level) };
    if pte.is_null() {
        return None;
    }
    match level {
        bindings::pg_level_PG_LEVEL_4K => Some(Level::Size4K),
        bindings::pg_level_PG_LEVEL_2M => Some(Level::Size2M),
        bindings::pg_level_PG_LEVEL_1G => Some(Level::Size1G),
        _ => None,
    }
}

/// Converts a page count for the CPA functions, which take `int`/`unsigned int`.
fn count(pages: u64) -> Result<u32> {
    u32::try_from(pages)
        .ok()
        .filter(|&n| n <= i32::MAX as u32)
        .ok_or(EINVAL)
}

/// Makes `pages` pages from `pfn` read-only in the direct map, without a TLB flush.
///
/// The kernel splits only the mapping that must be split: a 2M-aligned run of
/// 512 pages changes a 2M leaf in place, and a 1G leaf is split to 2M only.
pub(crate) fn wrprotect_noflush(pfn: u64, pages: u64) -> Result {
    let n = count(pages)?;
    // SAFETY: The caller owns the pages (module contract above).
    let page = unsafe { bindings::pfn_to_page(pfn as usize) };
    // SAFETY: As above; the function only changes the pages' direct-map entries.
    to_result(unsafe { bindings::set_direct_map_wrprotect_noflush(page, n) })
}

/// Maps `pages` pages from `pfn` again with the default protection, without a flush.
pub(crate) fn restore_noflush(pfn: u64, pages: u64) -> Result {
    let n = count(pages)?;
    // SAFETY: The caller owns the pages (module contract above).
    let page = unsafe { bindings::pfn_to_page(pfn as usize) };
    // SAFETY: As above.
    to_result(unsafe { bindings::set_direct_map_restore_noflush(page, n) })
}

/// Splits the mapping of `pages` pages from `pfn` to 4K for good, as Linux 7.3
/// does before a 4K RMP assignment (`set_memory_4k()`, which flushes itself).
pub(crate) fn split_4k(pfn: u64, pages: u64) -> Result {
    let n = count(pages)?;
    // CAST: `n` is at most `i32::MAX` (`count`).
    // SAFETY: The caller owns the pages (module contract above).
    to_result(unsafe { bindings::set_memory_4k(address(pfn), n as i32) })
}

/// Merges the 2M blocks containing `pfns` back into large mappings where their
/// PTEs allow it (and then their 1G blocks), with one TLB flush in all.
///
/// Returns the number of large mappings created.
pub(crate) fn collapse(pfns: &[u64]) -> Result<u32> {
    let mut addrs = KVec::with_capacity(pfns.len(), GFP_KERNEL)?;
    for &pfn in pfns {
        addrs.push(address(pfn), GFP_KERNEL)?;
    }
    let n = i32::try_from(addrs.len()).map_err(|_| EINVAL)?;
    // SAFETY: `addrs` holds `n` direct-map addresses of pages the caller owns.
    let made = unsafe { bindings::set_direct_map_collapse(addrs.as_mut_ptr(), n) };
    u32::try_from(made).map_err(|_| Error::from_errno(made))
}

/// Flushes the kernel TLB for `pages` pages from `pfn`; `None` flushes everything.
pub(crate) fn flush(range: Option<(u64, u64)>) {
    let (start, end) = match range {
        Some((pfn, pages)) => {
            let start = address(pfn);
            // CAST: `pages` is a batch size, far below `usize::MAX >> 12`.
            (start, start.saturating_add((pages as usize) << 12))
        }
        // `TLB_FLUSH_ALL` as `flush_tlb_kernel_range()` understands it.
        None => (0, usize::MAX),
    };
    // SAFETY: Flushing TLB entries of kernel addresses is always allowed, from any
    // context that may send IPIs (process context here).
    unsafe { tlbflush::flush_tlb_kernel_range(start, end) };
}
