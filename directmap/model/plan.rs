// SPDX-License-Identifier: GPL-2.0

//! The direct-map decisions: what to split, protect, restore and merge.
//!
//! The module keeps one [`Region`] per 2M region of the direct map that holds
//! (or held) a guest-owned page, and asks it what each conversion must do to
//! the mapping. The kernel calls that carry the answers out live in
//! `directmap/mod.rs`; everything decided here is tested on the host.
//!
//! Three policies exist so that a benchmark compares like with like:
//!
//! - [`Policy::Split`] is Linux 7.3: before a 4K page becomes guest-owned its
//!   2M/1G mapping is split to 4K (and marked to stay so); pages stay mapped;
//!   nothing is ever merged. A 2M page splits nothing.
//! - [`Policy::PerPage`] is the RFC of seed 001: each guest page is taken out of
//!   the direct map on its own, with a TLB flush per page, and put back
//!   later; nothing is merged.
//! - [`Policy::Coalesce`] takes guest pages out too, but only splits what that
//!   needs (the kernel's CPA does so when asked for exactly the page's range),
//!   flushes once per batch, and merges a region back into one large mapping
//!   when its last guest page has returned, if it was one before.
//!
//! "Taken out" depends on who else can reach the page ([`Policy::protection`]).
//! A page that user space maps (every `/dev/snp_host` page) is write-protected,
//! not unmapped: the hardware does not check host reads, and the kernel reads
//! such pages through the direct map on behalf of user space (fork() copies
//! pinned pages, `/proc/PID/mem`, `process_vm_readv()`), which a not-present
//! direct map would turn into oopses that any process could trigger. Every
//! host write through the direct map still faults cleanly. A page that only
//! the kernel holds (KVM's guest_memfd) is made not present, as in seed 001:
//! nothing has a reason to read it.

use super::Level;

/// How the module treats the direct map around guest-owned pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Split to 4K and keep mapped; never merge (Linux 7.3).
    Split,
    /// Protect and restore with a flush per page; never merge (seed 001).
    PerPage,
    /// Protect and restore with one flush per batch; merge back when empty.
    Coalesce,
}

/// How a guest-owned page is kept out of the host's write path in the direct map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Read-only: host reads work (and see ciphertext), host writes fault.
    ReadOnly,
    /// Not present: every host access through the direct map faults.
    NotPresent,
}

impl Policy {
    /// Returns the value of `snp_host_status.directmap_policy`.
    pub const fn abi(self) -> u32 {
        match self {
            Policy::Split => 1,
            Policy::PerPage => 2,
            Policy::Coalesce => 3,
        }
    }

    /// Returns whether guest-owned pages are taken out of the direct map's write path.
    pub const fn protects(self) -> bool {
        !matches!(self, Policy::Split)
    }

    /// Returns how a guest-owned page is protected in the direct map, if at all;
    /// `user_mapped` says whether user space can map it.
    ///
    /// The kernel reads user-mapped pages through the direct map for their
    /// process (fork(), `/proc/PID/mem`), so those stay readable: making them
    /// not present would let user space oops the kernel.
    ///
    /// # Examples
    ///
    /// ```
    /// use snp_host_model::directmap::model::{Policy, Protection};
    ///
    /// assert_eq!(Policy::PerPage.protection(true), Some(Protection::ReadOnly));
    /// assert_eq!(Policy::PerPage.protection(false), Some(Protection::NotPresent));
    /// assert_eq!(Policy::Split.protection(false), None);
    /// ```
    pub const fn protection(self, user_mapped: bool) -> Option<Protection> {
        match (self.protects(), user_mapped) {
            (false, _) => None,
            (true, true) => Some(Protection::ReadOnly),
            (true, false) => Some(Protection::NotPresent),
        }
    }
}

/// Why the accounting refused an operation: each means a caller bug, not a user error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// More private pages than a 2M region holds, or a 2M page over private 4K pages.
    Overflow,
    /// A page returned that the region did not count as private.
    Underflow,
}

/// What to do to the direct map before pages become guest-owned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prepare {
    /// Split the mapping to 4K and mark it to stay so (`set_memory_4k()`).
    pub split_4k: bool,
    /// Take the pages out of the direct map's write path ([`Policy::protection`]).
    pub protect: bool,
    /// Protect (and flush for) these pages now rather than with the batch.
    pub flush_now: bool,
}

/// What to do to the direct map after pages returned to the host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Release {
    /// Give the pages their default direct-map protection back (without a flush:
    /// the CPU caches no not-present entry, and a write through a stale read-only
    /// one takes a spurious fault, which the kernel resolves).
    pub restore: bool,
    /// The region holds no guest page any more: merge it back into a large mapping.
    pub merge: bool,
    /// Split the mapping of a returning 4K page to 4K first, as Linux does before
    /// every 4K RMPUPDATE: after a PSMASH its 511 neighbours are still guest-owned,
    /// so a large mapping over it would make every host write to it an RMP fault.
    /// Only under the policy that never protects (the others restore the page,
    /// which splits a protected large mapping by itself).
    pub split_4k: bool,
}

/// The module's accounting of one 2M region of the direct map.
///
/// # Examples
///
/// ```
/// use snp_host_model::directmap::model::{Level, Policy, Region};
///
/// let mut r = Region::new(Level::Size2M);
/// let prep = r.make_private(Policy::Coalesce, 1)?;
/// assert!(prep.protect && !prep.split_4k && !prep.flush_now);
/// r.make_private(Policy::Coalesce, 1)?;
/// assert!(!r.make_shared(Policy::Coalesce, 1)?.merge); // one page still private
/// assert!(r.make_shared(Policy::Coalesce, 1)?.merge); // the last one: merge back
/// # Ok::<(), snp_host_model::directmap::model::plan::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    origin: Level,
    private: u32,
}

impl Region {
    /// Starts accounting a region whose mapping was `origin` when the module first touched it.
    pub const fn new(origin: Level) -> Self {
        Self { origin, private: 0 }
    }

    /// Returns the mapping size the region had before the module touched it.
    pub const fn origin(&self) -> Level {
        self.origin
    }

    /// Returns the number of guest-owned 4K pages in the region (512 for a 2M page).
    pub const fn private(&self) -> u32 {
        self.private
    }

    /// Accounts `pages` pages (1, or 512 for a 2M page) becoming guest-owned and
    /// returns what to do to the direct map first.
    ///
    /// # Errors
    ///
    /// [`Error::Overflow`] if the region would hold more than 512 private pages.
    pub fn make_private(&mut self, policy: Policy, pages: u32) -> Result<Prepare, Error> {
        let total = self.private.checked_add(pages).ok_or(Error::Overflow)?;
        if total > Level::Size2M.pages() as u32 || pages == 0 {
            return Err(Error::Overflow);
        }
        self.private = total;
        let four_k = pages == 1;
        Ok(match policy {
            // Linux splits to 4K only for 4K pages: a 2M RMP entry matches a 2M mapping.
            Policy::Split => Prepare {
                split_4k: four_k,
                ..Prepare::default()
            },
            Policy::PerPage => Prepare {
                protect: true,
                flush_now: true,
                ..Prepare::default()
            },
            Policy::Coalesce => Prepare {
                protect: true,
                ..Prepare::default()
            },
        })
    }

    /// Accounts `pages` pages returning to the host and returns what to do to the
    /// direct map after the RMP says they are shared.
    ///
    /// # Errors
    ///
    /// [`Error::Underflow`] if the region did not hold that many private pages.
    pub fn make_shared(&mut self, policy: Policy, pages: u32) -> Result<Release, Error> {
        self.private = self.private.checked_sub(pages).ok_or(Error::Underflow)?;
        Ok(Release {
            split_4k: !policy.protects() && pages == 1,
            restore: policy.protects(),
            // Only what was a large mapping before the module came is merged: a region
            // the kernel had split for its own reasons stays as the kernel left it.
            merge: policy == Policy::Coalesce && self.private == 0 && self.origin > Level::Size4K,
        })
    }

    /// Returns whether the module can forget the region: nothing private in it, and
    /// (under a merging policy) nothing left to merge.
    pub const fn idle(&self) -> bool {
        self.private == 0
    }
}

/// What a look at the direct map before and after a change says the change did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transitions {
    /// 2M mappings split to 4K.
    pub splits_2m: u64,
    /// 1G mappings split (to 2M, or further).
    pub splits_1g: u64,
    /// 4K mappings merged into 2M.
    pub merges_2m: u64,
    /// Mappings merged into 1G.
    pub merges_1g: u64,
}

impl Transitions {
    /// Classifies the change of one region's mapping from `before` to `after`.
    ///
    /// # Examples
    ///
    /// ```
    /// use snp_host_model::directmap::model::{Level, Transitions};
    ///
    /// let t = Transitions::between(Level::Size1G, Level::Size4K);
    /// assert_eq!((t.splits_1g, t.splits_2m), (1, 1));
    /// let t = Transitions::between(Level::Size4K, Level::Size1G);
    /// assert_eq!((t.merges_2m, t.merges_1g), (1, 1));
    /// ```
    pub fn between(before: Level, after: Level) -> Self {
        let mut t = Self::default();
        if before == Level::Size1G && after < Level::Size1G {
            t.splits_1g = 1;
        }
        if before >= Level::Size2M && after == Level::Size4K {
            t.splits_2m = 1;
        }
        if before == Level::Size4K && after >= Level::Size2M {
            t.merges_2m = 1;
        }
        if before < Level::Size1G && after == Level::Size1G {
            t.merges_1g = 1;
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_prepare_as_documented() {
        let mut r = Region::new(Level::Size2M);
        assert_eq!(
            r.make_private(Policy::Split, 1),
            Ok(Prepare {
                split_4k: true,
                protect: false,
                flush_now: false
            })
        );
        let mut r = Region::new(Level::Size2M);
        assert_eq!(
            r.make_private(Policy::Split, 512),
            Ok(Prepare::default()),
            "Linux does not split for a 2M page"
        );
        let mut r = Region::new(Level::Size2M);
        assert_eq!(
            r.make_private(Policy::PerPage, 1),
            Ok(Prepare {
                split_4k: false,
                protect: true,
                flush_now: true
            })
        );
        let mut r = Region::new(Level::Size2M);
        assert_eq!(
            r.make_private(Policy::Coalesce, 512),
            Ok(Prepare {
                split_4k: false,
                protect: true,
                flush_now: false
            })
        );
        for user_mapped in [true, false] {
            assert_eq!(Policy::Split.protection(user_mapped), None);
        }
        for policy in [Policy::PerPage, Policy::Coalesce] {
            // No user input may reach a not-present page through the kernel.
            assert_eq!(policy.protection(true), Some(Protection::ReadOnly));
            assert_eq!(policy.protection(false), Some(Protection::NotPresent));
        }
        assert_eq!(Policy::Split.abi(), 1);
        assert_eq!(Policy::PerPage.abi(), 2);
        assert_eq!(Policy::Coalesce.abi(), 3);
    }

    #[test]
    fn only_the_last_page_of_a_once_large_region_merges() {
        for origin in [Level::Size2M, Level::Size1G] {
            let mut r = Region::new(origin);
            for _ in 0..3 {
                r.make_private(Policy::Coalesce, 1).unwrap();
            }
            assert!(!r.make_shared(Policy::Coalesce, 1).unwrap().merge);
            assert!(!r.make_shared(Policy::Coalesce, 1).unwrap().merge);
            let last = r.make_shared(Policy::Coalesce, 1).unwrap();
            assert!(last.merge && last.restore && r.idle());
        }
        // Split by the kernel before we came: left alone.
        let mut r = Region::new(Level::Size4K);
        r.make_private(Policy::Coalesce, 1).unwrap();
        assert_eq!(
            r.make_shared(Policy::Coalesce, 1),
            Ok(Release {
                restore: true,
                merge: false,
                split_4k: false,
            })
        );
        // The other policies never merge; split never unmapped, so never restores, but
        // splits the mapping of a returning 4K page as Linux does (after a PSMASH its
        // neighbours may still be guest-owned).
        for (policy, restore) in [(Policy::Split, false), (Policy::PerPage, true)] {
            let mut r = Region::new(Level::Size2M);
            r.make_private(policy, 1).unwrap();
            assert_eq!(
                r.make_shared(policy, 1),
                Ok(Release {
                    restore,
                    merge: false,
                    split_4k: !restore,
                })
            );
        }
        // A 2M page returned whole needs no split.
        let mut r = Region::new(Level::Size2M);
        r.make_private(Policy::Split, 512).unwrap();
        assert!(!r.make_shared(Policy::Split, 512).unwrap().split_4k);
    }

    #[test]
    fn accounting_refuses_impossible_counts() {
        let mut r = Region::new(Level::Size2M);
        assert_eq!(r.make_shared(Policy::Coalesce, 1), Err(Error::Underflow));
        r.make_private(Policy::Coalesce, 1).unwrap();
        assert_eq!(r.make_private(Policy::Coalesce, 512), Err(Error::Overflow));
        assert_eq!(r.make_private(Policy::Coalesce, 0), Err(Error::Overflow));
        assert_eq!(r.private(), 1, "a refused operation changes nothing");
        for _ in 1..512 {
            r.make_private(Policy::Coalesce, 1).unwrap();
        }
        assert_eq!(r.make_private(Policy::Coalesce, 1), Err(Error::Overflow));
        assert_eq!(r.private(), 512);
        assert_eq!(r.origin(), Level::Size2M);
    }

    #[test]
    fn transitions_count_each_level_once() {
        use Level::*;
        let none = Transitions::default();
        for l in [Size4K, Size2M, Size1G] {
            assert_eq!(Transitions::between(l, l), none);
        }
        assert_eq!(Transitions::between(Size2M, Size4K).splits_2m, 1);
        assert_eq!(
            Transitions::between(Size1G, Size2M),
            Transitions {
                splits_1g: 1,
                ..none
            }
        );
        assert_eq!(
            Transitions::between(Size2M, Size1G),
            Transitions {
                merges_1g: 1,
                ..none
            }
        );
        assert_eq!(
            Transitions::between(Size4K, Size2M),
            Transitions {
                merges_2m: 1,
                ..none
            }
        );
    }
}
