// SPDX-License-Identifier: GPL-2.0

//! The module's state, shared by the module, every open file and debugfs.

use crate::counters::{COUNTERS, FAULT_COUNTERS, KVM_COUNTERS};
use crate::directmap::{self, DirectMap};
use crate::hooks::Ring;
use crate::ledger::Ledger;
use crate::owned::Owned;
use crate::rmp::{
    backend::Backend,
    model::MAX_ASID,
    platform::{BackendKind, Platform},
};
use crate::uapi;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use kernel::{
    new_spinlock,
    prelude::*,
    sync::{Arc, SpinLock},
};

/// State shared by the module and every open file.
#[pin_data]
pub(crate) struct Shared {
    pub(crate) platform: Platform,
    pub(crate) backend: Arc<Backend>,
    /// Highest ASID a page may be assigned to.
    pub(crate) max_asid: u32,
    /// Every page assigned through this module, and every page leaked.
    #[pin]
    pub(crate) ledger: Ledger,
    /// The direct map around guest-owned pages.
    #[pin]
    pub(crate) directmap: DirectMap,
    /// Every page claimed for a guest, readable from atomic context.
    pub(crate) owned: Owned,
    /// Testing the fault path's bound: answer every fault as if a racing
    /// conversion kept undoing it (debugfs `force_retry`, emulated backend only).
    pub(crate) force_retry: AtomicBool,
    /// Whether the kernel's hooks call this module (it then write-protects the user
    /// mappings of guest pages, on both backends, and serves the kernel's RMP
    /// operations).
    pub(crate) hooks: AtomicBool,
    /// The last fault decisions (debugfs `faults`).
    #[pin]
    pub(crate) faults: SpinLock<Ring>,
}

impl Shared {
    /// Sets up the shared state around `backend`.
    pub(crate) fn new(
        platform: Platform,
        backend: Arc<Backend>,
        policy: directmap::model::Policy,
    ) -> Result<Arc<Self>> {
        // SNP guests use ASIDs 1 .. min_sev_asid - 1; without the CPUID leaf (emulation on
        // a machine without SEV) the entry format's own limit applies.
        let max_asid = match platform.min_sev_asid {
            0 | 1 => MAX_ASID,
            n => (n - 1).min(MAX_ASID),
        };
        let owned = Owned::new(backend.end_pfn())?;
        Arc::pin_init(
            pin_init!(Self {
                platform,
                backend,
                max_asid,
                ledger <- Ledger::new(),
                directmap <- DirectMap::new(policy),
                owned,
                force_retry: AtomicBool::new(false),
                hooks: AtomicBool::new(false),
                faults <- new_spinlock!(Ring::new(), "snp_host_faults"),
            }),
            GFP_KERNEL,
        )
    }

    /// Returns `SNP_HOST_GET_STATUS`.
    pub(crate) fn status(&self) -> uapi::Status {
        let mut s = uapi::Status {
            backend: match self.backend.kind() {
                BackendKind::Hardware => uapi::BACKEND_HARDWARE,
                BackendKind::Emulated => uapi::BACKEND_EMULATED,
            },
            max_pfn: self.backend.end_pfn().saturating_sub(1),
            directmap_policy: self.directmap.policy.abi(),
            ..uapi::Status::default()
        };
        if self.platform.features.rmpread() {
            s.flags |= uapi::FLAG_RMPREAD;
        }
        if self.hooks.load(Relaxed) {
            s.flags |= uapi::FLAG_KERNEL_HOOKS | uapi::FLAG_USER_WP | uapi::FLAG_KVM;
        }
        if let Some(hw) = self.backend.hardware() {
            s.rmp_base = hw.base();
            s.rmp_end = hw.end();
            if hw.segmented() {
                s.flags |= uapi::FLAG_SEGMENTED_RMP;
            }
        }
        s
    }

    /// Returns `SNP_HOST_GET_STATS`.
    pub(crate) fn stats(&self) -> uapi::Stats {
        COUNTERS.snapshot()
    }

    /// Returns `SNP_HOST_GET_FAULT_STATS`.
    pub(crate) fn fault_stats(&self) -> uapi::FaultStats {
        FAULT_COUNTERS.snapshot()
    }

    /// Returns `SNP_HOST_GET_KVM_STATS`.
    pub(crate) fn kvm_stats(&self) -> uapi::KvmStats {
        KVM_COUNTERS.snapshot()
    }
}
