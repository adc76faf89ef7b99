// SPDX-License-Identifier: GPL-2.0

//! The module's counters: one table that `SNP_HOST_GET_STATS`, debugfs and
//! `make run` all read.
//!
//! Each counter is declared once, below, in the order of `struct
//! snp_host_stats`; the table generates the counters, the ABI snapshot and the
//! `name: value` lines of debugfs `status`, so the three cannot drift apart.
//! The counters are module-wide (there is one RMP and one direct map), hence
//! one static table: a page leaked from a destructor, far from any file or
//! module state, is counted like any other.

use crate::uapi;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::fmt;

macro_rules! counters {
    ($(#[doc = $tdoc:literal])+ $table:ident => $abi:ident {
        $($(#[doc = $doc:literal])+ $name:ident,)+
    }) => {
        $(#[doc = $tdoc])+
        pub(crate) struct $table {
            $($(#[doc = $doc])+ pub(crate) $name: Counter,)+
        }

        impl $table {
            const fn new() -> Self {
                Self {
                    $($name: Counter(AtomicU64::new(0)),)+
                }
            }

            /// Returns the snapshot the ioctl copies out.
            #[allow(
                clippy::needless_update,
                reason = "a struct without reserved words has no field left to default"
            )]
            pub(crate) fn snapshot(&self) -> uapi::$abi {
                uapi::$abi {
                    $($name: self.$name.get(),)+
                    ..uapi::$abi::default()
                }
            }

            /// Writes one `<prefix>name: value` line per counter.
            pub(crate) fn write(
                &self,
                f: &mut fmt::Formatter<'_>,
                prefix: &str,
            ) -> fmt::Result {
                $(writeln!(f, "{}{}: {}", prefix, stringify!($name), self.$name.get())?;)+
                Ok(())
            }
        }
    };
}

counters! {
    /// The module's conversion and direct-map counters, in `struct snp_host_stats` order.
    Counters => Stats {
    /// 4K pages assigned through the module now.
    private_4k,
    /// 2M pages assigned through the module now.
    private_2m,
    /// Pages made private (4K or 2M), ever.
    make_private,
    /// Pages returned to the host (4K or 2M), ever.
    make_shared,
    /// 2M pages split into 512 4K entries, ever.
    psmash,
    /// Transient RMP failures that were retried.
    transient_retries,
    /// RMP operations that failed for good (after retries).
    failures,
    /// 4K pages kept off the allocator because their state could not be restored.
    leaked_pages,
    /// 2M direct-map leaves split.
    dm_splits_2m,
    /// 1G direct-map leaves split.
    dm_splits_1g,
    /// 2M direct-map leaves merged back.
    dm_merges_2m,
    /// 1G direct-map leaves merged back.
    dm_merges_1g,
    /// 4K pages the module keeps out of the direct map's write path now.
    dm_unmapped_pages,
    /// Kernel TLB flushes the module issued for the direct map.
    tlb_flushes,
    /// Changes of the direct map the module asked of the kernel (CPA calls: splits,
    /// protections, restores, merges), each of one page or one batch.
    dm_cpa_calls,
    /// Walks of the kernel's page tables the module made to read the direct map.
    dm_walks,
    }
}

counters! {
    /// RMP faults and the refusals around them, in `struct snp_host_fault_stats` order.
    FaultCounters => FaultStats {
    /// RMP faults (hardware or emulated) on user addresses decided.
    user_faults,
    /// Huge user mappings split to resolve one.
    thp_splits,
    /// SIGBUS sent (guest page, unsplittable mapping, no progress).
    sigbus,
    /// Of those, for a fault that repeated without progress.
    no_progress,
    /// Kernel accesses through a user address refused (`EFAULT`).
    uaccess_refused,
    /// GUP write faults and `mprotect()` upgrades refused.
    gup_refused,
    /// Kernel-mode RMP violations reported (kernel addresses).
    kernel_faults,
    }
}

counters! {
    /// The kernel's RMP operations the module served, in `struct snp_host_kvm_stats`
    /// order; pages in 4K pages.
    KvmCounters => KvmStats {
    /// Pages made private for the kernel (KVM, software-protected VMs, the CCP driver).
    make_private,
    /// Pages returned to the host for it.
    make_shared,
    /// 2M entries split for it.
    psmash,
    /// RMP lookups answered.
    lookups,
    /// Pages kept off the allocator because their state could not be restored.
    leaked_pages,
    /// Pages private for the kernel now.
    private_4k_now,
    /// Operations that returned an error to the kernel.
    failures,
    }
}

/// The module's counters.
pub(crate) static COUNTERS: Counters = Counters::new();

/// The module's fault counters.
pub(crate) static FAULT_COUNTERS: FaultCounters = FaultCounters::new();

/// The counters of the kernel's RMP operations.
pub(crate) static KVM_COUNTERS: KvmCounters = KvmCounters::new();

/// One counter of the table.
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    /// Subtracts `n`.
    pub(crate) fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Relaxed);
    }

    /// Returns the current value.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}
