// SPDX-License-Identifier: GPL-2.0

//! The extent of system RAM, from the kernel's resource tree.

use kernel::{bindings, ffi::c_void};

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
