// SPDX-License-Identifier: GPL-2.0

//! Discovery of SEV-SNP on this host and the choice of RMP backend.

use super::model::MemEncryptFeatures;
use crate::kernel_ext::{coco, cpu};
use kernel::prelude::*;

/// Which implementation of the RMP instructions the module drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BackendKind {
    /// The CPU's RMP, through RMPUPDATE/PSMASH/RMPREAD.
    Hardware,
    /// An RMP kept in kernel memory with the hardware's rules.
    Emulated,
}

impl BackendKind {
    /// Returns the name of the backend as the `backend=` parameter spells it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            BackendKind::Hardware => "hardware",
            BackendKind::Emulated => "emulated",
        }
    }
}

/// What this host offers for SEV-SNP, read once at load.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Platform {
    /// CPUID 0x8000001f EAX, or empty when the CPU lacks the leaf.
    pub(crate) features: MemEncryptFeatures,
    /// Whether the CPU implements leaf 0x8000001f at all.
    pub(crate) has_leaf: bool,
    /// Whether the host kernel enabled SNP (`CC_ATTR_HOST_SEV_SNP`).
    pub(crate) host_snp: bool,
    /// Number of encrypted guests the CPU can run at once (CPUID 0x8000001f ECX).
    pub(crate) guests: u32,
    /// First ASID of plain SEV guests (EDX): SEV-ES and SNP guests use 1 .. this - 1.
    pub(crate) min_sev_asid: u32,
}

impl Platform {
    /// Reads CPUID and asks the kernel whether it runs with SNP.
    pub(crate) fn detect() -> Self {
        let leaf = cpu::mem_encrypt();
        Platform {
            features: MemEncryptFeatures::from_raw(leaf.map_or(0, |l| l.eax).into()),
            has_leaf: leaf.is_some(),
            host_snp: coco::host_sev_snp(),
            guests: leaf.map_or(0, |l| l.ecx),
            min_sev_asid: leaf.map_or(0, |l| l.edx),
        }
    }

    /// Returns the backend to use: the hardware exactly when the kernel enabled SNP.
    ///
    /// CPU support alone is not enough: without `SNPEn` the RMP is not checked
    /// and RMPUPDATE faults, and only the kernel may set it (on every CPU, before
    /// any VM runs), never this module.
    pub(crate) fn backend(&self) -> BackendKind {
        if self.host_snp && self.features.snp() {
            BackendKind::Hardware
        } else {
            BackendKind::Emulated
        }
    }

    /// Logs what the CPU offers for SNP, for an operator reading the kernel log.
    pub(crate) fn log_features(&self) {
        if !self.has_leaf {
            return;
        }
        let f = self.features;
        pr_info!(
            "CPU: SEV-SNP {}, RMPREAD {}, segmented RMP {}, {} encrypted guests, SNP ASIDs 1..{}\n",
            yes_no(f.snp()),
            yes_no(f.rmpread()),
            yes_no(f.segmented_rmp()),
            self.guests,
            self.min_sev_asid.saturating_sub(1)
        );
    }

    /// Explains, in words, why [`Platform::backend`] chose what it chose.
    pub(crate) fn reason(&self) -> &'static str {
        match (self.has_leaf, self.features.snp(), self.host_snp) {
            (false, _, _) => "the CPU has no CPUID leaf 0x8000001f (no AMD memory encryption)",
            (true, false, _) => "the CPU does not support SEV-SNP",
            (true, true, false) => "the CPU supports SEV-SNP but the host kernel did not enable it",
            (true, true, true) => "the host kernel runs with SEV-SNP enabled",
        }
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

#[kunit_tests(snp_host_platform)]
mod tests {
    use super::*;

    #[test]
    fn host_snp_implies_cpu_snp() {
        // The kernel only enables SNP on a CPU that reports it.
        let p = Platform::detect();
        assert!(!p.host_snp || (p.has_leaf && p.features.snp()));
    }

    #[test]
    fn backend_is_hardware_exactly_when_snp_is_on() {
        let p = Platform::detect();
        let hardware = p.backend() == BackendKind::Hardware;
        assert_eq!(hardware, p.host_snp);
    }

    #[test]
    fn missing_leaf_reads_as_no_features() {
        let p = Platform::detect();
        if !p.has_leaf {
            assert!(!p.features.sme() && !p.features.sev() && !p.features.snp());
        }
        assert!(!p.features.sev_es() || p.features.sev());
    }
}
