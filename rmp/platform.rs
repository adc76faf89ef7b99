// SPDX-License-Identifier: GPL-2.0

//! What this host reports about SEV-SNP, read once at load, and the choice of backend.
//!
//! [`Platform::detect`] gathers the inputs of `rmp::model::decide` from the kernel: its
//! feature bits and `cc_platform_has()`, the CPUID leaves it keeps no bits for, the
//! `SYSCFG` and RMP MSRs and the RMP segment table. The decision itself is the model's,
//! tested on the host and by this file's KUnit suite with the reference hosts of
//! `rmp::reference`.

use super::model::{
    decide,
    detect::{CPUID_MEM_ENCRYPT, CPUID_RMP_SEGMENTS, MSR_SYSCFG},
    geometry::{MSR_RMP_BASE, MSR_RMP_CFG, MSR_RMP_END},
    Decision,
    MemEncryptFeatures,
    Request,
    RmpBase,
    RmpCfg,
    RmpEnd,
    SegmentCount,
    SegmentShifts,
    Snapshot,
    Syscfg,
    RST_ENTRIES,
    RST_SIZE, //
};
use crate::kernel_ext::{coco, cpu, memory, msr};
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
pub(crate) struct Platform {
    /// The kernel's view of CPUID 0x8000001f EAX.
    pub(crate) features: MemEncryptFeatures,
    /// Whether the CPU implements leaf 0x8000001f at all.
    pub(crate) has_leaf: bool,
    /// Whether the kernel set SNP up at boot (`CC_ATTR_HOST_SEV_SNP`).
    pub(crate) host_snp: bool,
    /// Number of encrypted guests the CPU can run at once (CPUID 0x8000001f ECX).
    pub(crate) guests: u32,
    /// First ASID of plain SEV guests (EDX): SEV-ES and SNP guests use 1 .. this - 1.
    pub(crate) min_sev_asid: u32,
    snapshot: Snapshot<'static>,
    rst: Option<KBox<[u64; RST_ENTRIES]>>,
}

impl Platform {
    /// Reads what the decision needs: always the kernel's feature bits and attribute,
    /// the MSRs only on a CPU that reports SNP, the segment table only when the RMP is
    /// segmented. Whatever cannot be read stays `None`, and the decision says so.
    pub(crate) fn detect() -> Self {
        let max_extended_leaf = cpu::max_extended_leaf();
        let features = MemEncryptFeatures::from_raw(u64::from(cpu::mem_encrypt_features()));
        let leaf = cpu::extended(CPUID_MEM_ENCRYPT).unwrap_or_default();
        let segments = cpu::extended(CPUID_RMP_SEGMENTS).unwrap_or_default();
        let host_snp = coco::host_sev_snp();
        let read = |number| {
            if host_snp && features.snp() {
                msr::read_local(number).ok()
            } else {
                None
            }
        };
        let rmp_cfg = if features.segmented_rmp() {
            read(MSR_RMP_CFG).map(RmpCfg::from_raw)
        } else {
            None
        };
        let snapshot = Snapshot {
            max_extended_leaf,
            features,
            guests: leaf.ecx,
            min_sev_asid: leaf.edx,
            segment_shifts: SegmentShifts::from_raw(segments.eax.into()),
            segment_count: SegmentCount::from_raw(segments.ebx.into()),
            host_snp,
            syscfg: read(MSR_SYSCFG).map(Syscfg::from_raw),
            rmp_base: read(MSR_RMP_BASE).map(RmpBase::from_raw),
            rmp_end: read(MSR_RMP_END).map(RmpEnd::from_raw),
            rmp_cfg,
            end_pfn: memory::ram_end_pfn(),
            ..Snapshot::EMPTY
        };
        let rst = snapshot.rst_address().and_then(read_rst);
        Platform {
            features,
            has_leaf: snapshot.has_leaf(),
            host_snp,
            guests: snapshot.guests,
            min_sev_asid: snapshot.min_sev_asid,
            snapshot,
            rst,
        }
    }

    /// Returns everything the decision depends on.
    pub(crate) fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            rst: self.rst.as_deref().map(|rst| &rst[..]),
            ..self.snapshot
        }
    }

    /// Decides which backend to drive for `request`.
    pub(crate) fn decide(&self, request: Request) -> Decision {
        decide(&self.snapshot(), request)
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
}

/// Reads the RMP segment table at the physical address `address`.
fn read_rst(address: u64) -> Option<KBox<[u64; RST_ENTRIES]>> {
    const _: () = assert!(RST_SIZE == 8 * RST_ENTRIES as u64);
    let map = memory::Reserved::map(address, RST_SIZE / 8).ok()?;
    let mut rst = KBox::new([0u64; RST_ENTRIES], GFP_KERNEL).ok()?;
    for (i, slot) in (0..).zip(rst.iter_mut()) {
        *slot = map.read(i)?;
    }
    Some(rst)
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
    use crate::rmp::model::Reason;
    use crate::rmp::reference::{check, CASES};
    use kernel::bindings;

    #[test]
    fn reference_hosts_decide_as_required() {
        let mut failed = 0;
        for case in CASES {
            if let Err(what) = check(case) {
                pr_err!("{}: {}\n", case.name, what);
                failed += 1;
            }
        }
        assert_eq!(failed, 0);
    }

    #[test]
    fn the_kernel_keeps_the_bits_where_the_model_reads_them() {
        let bit = |feature: u32| MemEncryptFeatures::from_raw(1 << (feature % 32));
        assert!(bit(bindings::X86_FEATURE_SME).sme());
        assert!(bit(bindings::X86_FEATURE_SEV).sev());
        assert!(bit(bindings::X86_FEATURE_SEV_ES).sev_es());
        let snp = bit(bindings::X86_FEATURE_SEV_SNP);
        assert!(snp.snp() && !snp.sev() && !snp.rmpread());
        assert!(bit(bindings::X86_FEATURE_RMPREAD).rmpread());
        assert!(bit(bindings::X86_FEATURE_SEGMENTED_RMP).segmented_rmp());
    }

    #[test]
    fn this_host_decides_consistently() {
        let p = Platform::detect();
        // The kernel only clears bits of what the CPU reports, never adds any.
        let raw = cpu::extended(CPUID_MEM_ENCRYPT).map_or(0, |l| l.eax);
        assert_eq!(cpu::mem_encrypt_features() & !raw, 0);
        // The kernel only sets SNP up on a CPU whose SNP bit it kept.
        assert!(!p.host_snp || p.features.snp());
        let auto = p.decide(Request::Auto);
        let hardware = p.decide(Request::Hardware);
        // backend=auto never refuses.
        assert!(!matches!(auto, Decision::Refused(_)));
        if let Decision::Emulated(reason) = auto {
            assert_eq!(hardware, Decision::Refused(reason));
            assert!(reason != Reason::Enabled && reason != Reason::Requested);
        } else {
            assert_eq!(hardware, auto);
        }
        if !p.has_leaf {
            assert_eq!(auto, Decision::Emulated(Reason::NoLeaf));
        }
        assert_eq!(
            p.decide(Request::Emulated),
            Decision::Emulated(Reason::Requested)
        );
    }
}
