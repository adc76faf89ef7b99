// SPDX-License-Identifier: GPL-2.0

//! What the fault hooks record about the current task.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use kernel::bindings;

/// Copies the current task's command name (`comm`, NUL-padded) into `out`.
pub(crate) fn comm(out: &mut [u8; 16]) {
    // SAFETY: `get_current()` is the running task, valid while it runs this code.
    // Its `comm` may be rewritten concurrently (prctl), which can tear the name
    // but never reads out of bounds: the array has a fixed size, as in
    // `get_task_comm()`.
    let comm = unsafe { core::ptr::read_volatile(&raw const (*bindings::get_current()).comm) };
    // `c_char` is `u8` in `kernel::ffi`.
    *out = comm;
}

/// A gate for log lines on paths a user can trigger in a loop: at most
/// [`RateLimit::BURST`] lines per interval, like the kernel's default ratelimit.
pub(crate) struct RateLimit {
    window: AtomicU64,
    printed: AtomicU32,
}

impl RateLimit {
    /// The length of an interval.
    const INTERVAL_NS: u64 = 5_000_000_000;
    /// Lines allowed per interval.
    const BURST: u32 = 10;

    /// A gate whose first interval starts with the first line.
    pub(crate) const fn new() -> Self {
        Self {
            window: AtomicU64::new(0),
            printed: AtomicU32::new(0),
        }
    }

    /// Returns whether a line may be printed now; callable from any context.
    /// Racing callers may let a line or two more through, never fewer.
    pub(crate) fn allow(&self) -> bool {
        // SAFETY: `ktime_get_mono_fast_ns()` is safe from any context, NMI included.
        let now = unsafe { bindings::ktime_get_mono_fast_ns() };
        let start = self.window.load(Relaxed);
        if start == 0 || now.wrapping_sub(start) >= Self::INTERVAL_NS {
            self.window.store(now.max(1), Relaxed);
            self.printed.store(0, Relaxed);
        }
        self.printed.fetch_add(1, Relaxed) < Self::BURST
    }
}
