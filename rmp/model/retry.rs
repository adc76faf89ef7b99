// SPDX-License-Identifier: GPL-2.0

//! How long a transient RMP failure is retried: a bound in time, not in attempts.
//!
//! `FAIL_INUSE` and `FAIL_OVERLAP` mean that another CPU, or the firmware, holds the 2M
//! region ([`RmpError::is_transient`]). Another CPU's RMPUPDATE releases it within
//! microseconds, but a firmware command working on the region (a launch update of a
//! 2M page, page reclaim) can hold it far longer than any count of back-to-back
//! attempts lasts. So the backend retries for a span of time: first at once, a few
//! times, then sleeping between attempts so that the CPU is free for whoever holds the
//! region; when the span is over it gives up with `EBUSY`, nothing changed.
//!
//! [`RmpError::is_transient`]: super::RmpError::is_transient

/// When to retry an operation that failed transiently, and when to stop.
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::model::{Retry, Step};
///
/// let r = Retry::DEFAULT;
/// assert_eq!(r.after(1, 0), Step::Spin);
/// assert_eq!(r.after(r.spins + 1, 5), Step::Sleep { micros: r.sleep_micros });
/// // Never sleeps past the deadline, and stops at it.
/// assert_eq!(r.after(r.spins + 1, r.limit_micros - 3), Step::Sleep { micros: 3 });
/// assert_eq!(r.after(2, r.limit_micros), Step::GiveUp);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Failures retried at once, with only a pause hint in between.
    pub spins: u32,
    /// The sleep between later attempts, in microseconds.
    pub sleep_micros: u64,
    /// How long after the first attempt the operation gives up, in microseconds.
    pub limit_micros: u64,
}

/// What to do after a transient failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Try again at once.
    Spin,
    /// Sleep this long, then try again.
    Sleep {
        /// Microseconds to sleep.
        micros: u64,
    },
    /// Stop: the operation fails with the transient error.
    GiveUp,
}

impl Retry {
    /// The backends' policy: 64 immediate retries (another CPU's update), then an
    /// attempt every 50 µs for up to one second (the firmware).
    pub const DEFAULT: Retry = Retry {
        spins: 64,
        sleep_micros: 50,
        limit_micros: 1_000_000,
    };

    /// Returns what to do after the `failures`-th transient failure in a row, `elapsed`
    /// microseconds after the first attempt started.
    pub fn after(&self, failures: u32, elapsed: u64) -> Step {
        if elapsed >= self.limit_micros {
            Step::GiveUp
        } else if failures <= self.spins {
            Step::Spin
        } else {
            Step::Sleep {
                micros: self.sleep_micros.min(self.limit_micros - elapsed),
            }
        }
    }
}
