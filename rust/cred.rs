// SPDX-License-Identifier: GPL-2.0

//! Capability checks of the current task.

use kernel::bindings;

/// Returns whether the current task has `CAP_SYS_ADMIN` (and records its use for audit).
pub(crate) fn capable_sys_admin() -> bool {
    // SAFETY: `capable()` only inspects the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as i32) }
}

/// Returns whether the current task has `CAP_IPC_LOCK`, which lifts
/// `RLIMIT_MEMLOCK` for pinned memory as it does for locked memory.
pub(crate) fn capable_ipc_lock() -> bool {
    // SAFETY: As in `capable_sys_admin`.
    unsafe { bindings::capable(bindings::CAP_IPC_LOCK as i32) }
}
