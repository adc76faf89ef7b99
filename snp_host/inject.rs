// SPDX-License-Identifier: GPL-2.0

//! The module's own failure points (`should_fail()` of the kernel's
//! fault-injection framework), so that tests reach the paths that real
//! failures take: `/sys/kernel/debug/snp_host/<point>/`.
//!
//! - `fail_rmpupdate_busy`: an RMPUPDATE (either way) finds its 2M region in
//!   use (`FAIL_INUSE`): retried for up to a second, then `EBUSY` with nothing
//!   changed on the way to a guest; on the way back the page is leaked, as any
//!   page that cannot be returned.
//! - `fail_rmpupdate_shared`: an RMPUPDATE that returns a page to the host
//!   fails for good: `EIO`, and the page is leaked (pinned, out of the write
//!   path, listed in `rmp`, counted, never freed).
//! - `fail_psmash_busy`: a PSMASH finds its region in use: retried, then `EBUSY`
//!   with nothing changed.
//! - `fail_directmap_restore`: giving a page back to the direct map fails
//!   (`ENOMEM`, as a split that found no memory would): the page is leaked,
//!   never freed while protected.
//!
//! Allocation failures come from the kernel's own `failslab` and
//! `fail_page_alloc` (with `task-filter` and `/proc/<pid>/make-it-fail`).
//!
//! Only with the emulated backend: a hardware RMP is never faked, so on an SNP
//! host the points are not created and never fail. Their `verbose` starts at 0,
//! not the framework's 2, so that an injected failure leaves no stack trace in
//! the kernel log that the tests' log scan would take for a splat; write 1 or 2
//! to `verbose` to see them.

use crate::kernel_ext::fault_inject::FaultAttr;
use crate::rmp::model::RmpError;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{prelude::*, str::CStr};

/// Whether the points were published (emulated backend): until then, and on an SNP
/// host always, nothing fails, not even a task's `fail-nth`, which the framework
/// applies to every attribute, a never-initialised one included.
static ARMED: AtomicBool = AtomicBool::new(false);

/// Whether the operation `attr` guards must fail now.
pub(crate) fn fails(attr: &'static FaultAttr) -> bool {
    ARMED.load(Ordering::Acquire) && attr.should_fail()
}

/// `fail_rmpupdate_busy`.
pub(crate) static RMPUPDATE_BUSY: FaultAttr = FaultAttr::new();
/// `fail_rmpupdate_shared`.
pub(crate) static RMPUPDATE_SHARED: FaultAttr = FaultAttr::new();
/// `fail_psmash_busy`.
pub(crate) static PSMASH_BUSY: FaultAttr = FaultAttr::new();
/// `fail_directmap_restore`.
pub(crate) static DIRECTMAP_RESTORE: FaultAttr = FaultAttr::new();

/// The return code an injected permanent failure reports: none the hardware gives
/// (the log says `unexpected return code 0xfa11`), so it is told apart from a real one.
pub(crate) const INJECTED: u32 = 0xfa11;

/// Creates the failure points in `/sys/kernel/debug/<dir>/`, which must exist.
///
/// # Errors
///
/// As [`FaultAttr::publish`]; `ENODEV` in a kernel without fault injection in
/// debugfs, which the caller may ignore.
pub(crate) fn publish(dir: &CStr) -> Result {
    let points: [(&'static FaultAttr, &CStr); 4] = [
        (&RMPUPDATE_BUSY, c"fail_rmpupdate_busy"),
        (&RMPUPDATE_SHARED, c"fail_rmpupdate_shared"),
        (&PSMASH_BUSY, c"fail_psmash_busy"),
        (&DIRECTMAP_RESTORE, c"fail_directmap_restore"),
    ];
    if ARMED.load(Ordering::Acquire) {
        return Err(EBUSY);
    }
    for (attr, _) in points {
        // SAFETY: Not armed yet (checked above; only this function arms, once, at
        // load): nothing calls `should_fail()` on the attributes.
        unsafe { attr.init() };
    }
    for (attr, name) in points {
        attr.publish(dir, name)?;
    }
    ARMED.store(true, Ordering::Release);
    Ok(())
}

/// The failure an RMPUPDATE to a state `assigned` (or to the host's) must report
/// now, if any.
pub(crate) fn rmpupdate(assigned: bool) -> Option<RmpError> {
    if fails(&RMPUPDATE_BUSY) {
        return Some(RmpError::FailInUse);
    }
    (!assigned && fails(&RMPUPDATE_SHARED)).then_some(RmpError::Unexpected(INJECTED))
}

/// The failure a PSMASH must report now, if any.
pub(crate) fn psmash() -> Option<RmpError> {
    fails(&PSMASH_BUSY).then_some(RmpError::FailInUse)
}
