// SPDX-License-Identifier: GPL-2.0

//! What a long loop in process context owes the scheduler and a dying caller.

use kernel::bindings;

/// Returns whether the current task has been sent a fatal signal (`SIGKILL`, or
/// one whose default action kills it): long operations stop at the next batch.
pub(crate) fn fatal_signal_pending() -> bool {
    // SAFETY: `get_current()` is the running task, valid while it runs this code;
    // `fatal_signal_pending()` only reads its pending signals.
    unsafe { bindings::fatal_signal_pending(bindings::get_current()) != 0 }
}

/// Gives the CPU up if another task should run, between batches of a long loop.
///
/// Must be called from process context, with no spinlock held.
pub(crate) fn cond_resched() {
    // SAFETY: Callers run in process context and hold no spinlock (documented above);
    // `cond_resched()` may sleep there.
    unsafe { bindings::cond_resched() };
}
