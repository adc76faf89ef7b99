// SPDX-License-Identifier: GPL-2.0

//! The decision for an RMP fault on a user address: proceed, split, retry or
//! refuse with SIGBUS.
//!
//! The kernel's fault path asks the module when the CPU reports an RMP
//! violation (`X86_PF_RMP`), and, where user mappings of guest pages are
//! write-protected (always with the emulated RMP, by default on hardware),
//! when a write hits such a read-only mapping. It describes the fault and the
//! mapping; the module looks at the RMP; this function decides:
//!
//! 1. a write whose own 4K page is guest-owned is refused (SIGBUS for user
//!    mode, `-EFAULT` for a uaccess): the page is the guest's;
//! 2. a write through a huge mapping that covers a guest-owned page is
//!    resolved by splitting it, when it is an anonymous THP; hugetlbfs pages,
//!    PUD leaves and file or shmem PMDs cannot be split (a refault would map
//!    the PMD again), so the write is refused;
//! 3. otherwise an RMP violation raced with a conversion back to shared:
//!    retry; a write-protection fault that is not the RMP's proceeds down the
//!    normal path;
//! 4. whatever the RMP says, a fault that repeats at one address without
//!    progress is refused after [`NO_PROGRESS_LIMIT`] attempts, so no answer
//!    of a buggy or racing provider can make the kernel loop. (The kernel's
//!    fault path enforces its own bound too, for the same reason.)
//!
//! Reads never fail the RMP check; a read reported as one is retried, within
//! the same bound.

use crate::directmap::model::Level;

/// Faults at one address without progress after which the access is refused.
pub const NO_PROGRESS_LIMIT: u32 = 8;

/// What the kernel's fault path knows about a fault on a user address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The access was a write.
    pub write: bool,
    /// The CPU reported an RMP violation (rather than a write to a read-only
    /// mapping that the module protected).
    pub rmp: bool,
    /// The size of the user mapping at the address.
    pub level: Level,
    /// The mapping is an anonymous PMD-mapped THP that can be split.
    pub splittable: bool,
    /// Earlier faults at this address that made no progress.
    pub repeats: u32,
}

/// What the RMP says about the pages under the faulting mapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ownership {
    /// The 4K page at the address is guest-owned (also inside a 2M entry).
    pub target: bool,
    /// Some 4K page under the mapping is guest-owned (implies nothing about
    /// `target`; for a 4K mapping it equals `target`).
    pub range: bool,
}

/// Why a write is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The written page is guest-owned.
    GuestPage,
    /// The mapping covers a guest-owned page and cannot be split.
    Unsplittable,
    /// The fault repeated without progress.
    NoProgress,
}

/// What the fault path does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not an RMP matter: the normal fault handling runs.
    Proceed,
    /// Split the huge mapping, then retry the access.
    Split,
    /// Retry the access: the state changed under the fault.
    Retry,
    /// Refuse the access: SIGBUS (`BUS_ADRERR`) in user mode, `-EFAULT` for a
    /// kernel access through the user address.
    Sigbus(Refusal),
}

/// Decides what to do with the user fault `f` on pages whose ownership is `rmp`.
///
/// # Examples
///
/// ```
/// use snp_host_model::directmap::model::Level;
/// use snp_host_model::fault::model::decide::{decide, Decision, Fault, Ownership, Refusal};
///
/// // A store next to a guest page, through the 2M mapping of a THP: split it.
/// let store = Fault { write: true, rmp: true, level: Level::Size2M, splittable: true, repeats: 0 };
/// let near = Ownership { target: false, range: true };
/// assert_eq!(decide(&store, near), Decision::Split);
/// // The same store to the guest page itself: refused.
/// let on = Ownership { target: true, range: true };
/// assert_eq!(decide(&store, on), Decision::Sigbus(Refusal::GuestPage));
/// ```
pub fn decide(f: &Fault, rmp: Ownership) -> Decision {
    if f.repeats >= NO_PROGRESS_LIMIT {
        return Decision::Sigbus(Refusal::NoProgress);
    }
    if !f.write {
        // The RMP does not check host reads: nothing to resolve.
        return if f.rmp {
            Decision::Retry
        } else {
            Decision::Proceed
        };
    }
    if rmp.target {
        return Decision::Sigbus(Refusal::GuestPage);
    }
    if f.level != Level::Size4K && rmp.range {
        return if f.splittable && f.level == Level::Size2M {
            Decision::Split
        } else {
            Decision::Sigbus(Refusal::Unsplittable)
        };
    }
    if f.rmp {
        Decision::Retry
    } else {
        Decision::Proceed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEVELS: [Level; 3] = [Level::Size4K, Level::Size2M, Level::Size1G];

    /// Calls `check` with every fault the kernel can describe, and every ownership.
    fn for_all(mut check: impl FnMut(Fault, Ownership)) {
        for write in [false, true] {
            for rmp in [false, true] {
                for level in LEVELS {
                    for splittable in [false, true] {
                        for repeats in [0, 1, NO_PROGRESS_LIMIT - 1, NO_PROGRESS_LIMIT, 100] {
                            for target in [false, true] {
                                for range in [false, true] {
                                    // A 4K mapping covers only its own page.
                                    if level == Level::Size4K && range != target {
                                        continue;
                                    }
                                    let f = Fault {
                                        write,
                                        rmp,
                                        level,
                                        splittable,
                                        repeats,
                                    };
                                    check(f, Ownership { target, range });
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn no_fault_repeats_past_the_limit() {
        for_all(|f, o| {
            if f.repeats >= NO_PROGRESS_LIMIT {
                assert_eq!(
                    decide(&f, o),
                    Decision::Sigbus(Refusal::NoProgress),
                    "{f:?} {o:?}"
                );
            }
        });
    }

    #[test]
    fn writes_to_guest_pages_are_refused() {
        for_all(|f, o| {
            if f.write && o.target {
                assert!(matches!(decide(&f, o), Decision::Sigbus(_)), "{f:?} {o:?}");
            }
        });
    }

    #[test]
    fn reads_are_never_refused_before_the_limit() {
        for_all(|f, o| {
            if !f.write && f.repeats < NO_PROGRESS_LIMIT {
                let d = decide(&f, o);
                assert!(
                    matches!(d, Decision::Proceed | Decision::Retry),
                    "{f:?} {o:?}"
                );
            }
        });
    }

    #[test]
    fn only_splittable_2m_mappings_are_split() {
        for_all(|f, o| {
            if decide(&f, o) == Decision::Split {
                assert!(f.splittable && f.level == Level::Size2M && o.range && !o.target);
            }
        });
    }

    #[test]
    fn unsplittable_huge_mappings_over_guest_pages_refuse_every_write() {
        for_all(|f, o| {
            let splittable = f.splittable && f.level == Level::Size2M;
            if f.write && f.level != Level::Size4K && o.range && !splittable {
                assert!(matches!(decide(&f, o), Decision::Sigbus(_)), "{f:?} {o:?}");
            }
        });
    }

    #[test]
    fn protection_faults_without_guest_pages_take_the_normal_path() {
        for_all(|f, o| {
            if !f.rmp && !o.range && !o.target && f.repeats < NO_PROGRESS_LIMIT {
                assert_eq!(decide(&f, o), Decision::Proceed, "{f:?} {o:?}");
            }
        });
    }

    /// Whatever the RMP answers from one fault to the next (a racing or buggy
    /// provider), a fault that makes no progress ends in SIGBUS within the limit:
    /// the fault path counts a retry or an ineffective split as no progress.
    #[test]
    fn adversarial_answers_end_within_the_limit() {
        let answers = [
            Ownership {
                target: false,
                range: true,
            },
            Ownership {
                target: false,
                range: false,
            },
        ];
        for level in LEVELS {
            for seed in 0..64u32 {
                let mut f = Fault {
                    write: true,
                    rmp: true,
                    level,
                    splittable: true,
                    repeats: 0,
                };
                let mut steps = 0;
                loop {
                    let o = answers[((seed >> (steps % 6)) & 1) as usize];
                    match decide(&f, o) {
                        Decision::Sigbus(_) => break,
                        // The split did not take (the mapping is still huge), or the
                        // access faulted again: no progress either way.
                        Decision::Split | Decision::Retry => f.repeats += 1,
                        Decision::Proceed => unreachable!("an RMP fault always needs the RMP"),
                    }
                    steps += 1;
                    assert!(steps <= NO_PROGRESS_LIMIT, "{level:?} seed {seed}");
                }
            }
        }
    }
}
