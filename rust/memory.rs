// SPDX-License-Identifier: GPL-2.0

//! System RAM as the kernel describes it, and read-only mappings of memory the
//! firmware reserved (the RMP).

use super::cpu::array_index_nospec;
use core::ptr::NonNull;
use kernel::{bindings, ffi::c_void, prelude::*};

/// Returns one past the highest PFN of System RAM.
///
/// The emulated RMP covers exactly this much, as the hardware RMP must cover
/// every page of RAM. (`max_pfn` is not exported to modules; the resource tree
/// that `/proc/iomem` shows is.)
pub(crate) fn ram_end_pfn() -> u64 {
    /// Raises `*arg` to the end PFN of one System RAM resource.
    ///
    /// # Safety
    ///
    /// `res` is a valid resource and `arg` points to a `u64` owned by the caller.
    unsafe extern "C" fn raise(res: *mut bindings::resource, arg: *mut c_void) -> i32 {
        // SAFETY: By the function's contract `res` is valid.
        let end = unsafe { (*res).end };
        // SAFETY: By the function's contract `arg` is the caller's `u64`.
        let max = unsafe { &mut *arg.cast::<u64>() };
        *max = (*max).max((end >> 12).saturating_add(1));
        0
    }

    let mut end_pfn: u64 = 0;
    // CAST: the flag constants are small and fit in `c_ulong`.
    let flags = (bindings::IORESOURCE_SYSTEM_RAM | bindings::IORESOURCE_BUSY) as usize;
    // SAFETY: `raise` matches the callback's contract; `end_pfn` outlives the walk.
    unsafe {
        bindings::walk_iomem_res_desc(
            bindings::IORES_DESC_NONE as usize,
            flags,
            0,
            u64::MAX,
            (&raw mut end_pfn).cast(),
            Some(raise),
        )
    };
    end_pfn
}

/// A write-back mapping of firmware-reserved memory that this module only reads, in
/// quadwords.
///
/// # Invariants
///
/// `ptr` is 8-byte aligned and maps `len` quadwords from `memremap()`, released on drop.
pub(crate) struct Reserved {
    ptr: NonNull<u64>,
    len: u64,
}

// SAFETY: The mapping is only ever read, and reading it is allowed from any CPU.
unsafe impl Send for Reserved {}
// SAFETY: As above: shared access only reads.
unsafe impl Sync for Reserved {}

impl Reserved {
    /// Maps `len` quadwords of reserved memory at the physical address `phys`, which
    /// must be 8-byte aligned.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a misaligned or empty range, `ENOMEM` if it cannot be mapped.
    pub(crate) fn map(phys: u64, len: u64) -> Result<Self> {
        let bytes = len
            .checked_mul(8)
            .and_then(|b| usize::try_from(b).ok())
            .filter(|&b| b > 0 && phys % 8 == 0)
            .ok_or(EINVAL)?;
        // SAFETY: `memremap()` accepts any range and fails cleanly on one it cannot map;
        // this mapping of the firmware's reserved memory is only ever read, as Linux
        // reads the RMP through its own `memremap()` of it.
        let ptr = unsafe { bindings::memremap(phys, bytes, bindings::MEMREMAP_WB as usize) };
        // INVARIANT: `memremap()` returns NULL or the address of `phys` in a mapping of
        // `bytes` bytes, which keeps the 8-byte alignment of `phys`.
        let ptr = NonNull::new(ptr.cast::<u64>()).ok_or(ENOMEM)?;
        Ok(Self { ptr, len })
    }

    /// Reads quadword `index`, or `None` beyond the mapping.
    ///
    /// The read is one aligned 64-bit load, so it is single-copy atomic: a concurrent
    /// writer (the CPU updating an RMP entry) is seen before or after its store to this
    /// quadword, never half of it; two reads of adjacent quadwords are not atomic
    /// together. `index` may come from user input: after the bounds check it is clamped
    /// with [`array_index_nospec`], so that no speculative load leaves the mapping.
    pub(crate) fn read(&self, index: u64) -> Option<u64> {
        if index >= self.len {
            return None;
        }
        let index = array_index_nospec(index, self.len);
        // CAST: `index < len`, and `len * 8` fits in `usize` (`map`).
        let at = index as usize;
        // SAFETY: `at < len`, inside the mapping, aligned (type invariant). The memory
        // may change under us (the CPU writes the RMP), hence a volatile read.
        Some(unsafe { core::ptr::read_volatile(self.ptr.as_ptr().add(at)) })
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `ptr` came from `memremap()`.
        unsafe { bindings::memunmap(self.ptr.as_ptr().cast()) };
    }
}
