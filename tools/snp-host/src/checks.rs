// SPDX-License-Identifier: GPL-2.0

//! `snp-host ok`: is this host ready for SEV-SNP guests?
//!
//! The facts are gathered first ([`Facts::gather`]), then judged by pure
//! logic ([`evaluate`]), which the host tests drive with made-up hosts.
//! Sources are the CPU (CPUID), what the kernel reports (`/proc/cpuinfo`,
//! `/proc/iomem`, sysfs, kvm_amd's parameters; never the kernel log) and
//! what the module reports (`SNP_HOST_GET_STATUS`, debugfs `status`).

use crate::cpuid::{MemEncrypt, Summary};
use crate::error::Result;
use crate::module::{self, Flags, Module};
use crate::source;
use serde::Serialize;
use std::collections::BTreeMap;

/// A check's verdict.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It holds.
    #[serde(rename = "PASS")]
    Pass,
    /// It does not.
    #[serde(rename = "FAIL")]
    Fail,
    /// It could not be judged, or does not apply.
    #[serde(rename = "SKIP")]
    Skip,
}

/// One line of `snp-host ok`.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    /// Its stable name.
    pub(crate) name: &'static str,
    /// Whether the host is ready only if it passes.
    pub(crate) required: bool,
    /// The verdict.
    pub(crate) result: Verdict,
    /// Why, in words.
    pub(crate) reason: String,
}

/// kvm_amd's SEV parameters (`Y`/`N`), where it is loaded.
#[derive(Debug, Clone, Default)]
pub(crate) struct KvmAmd {
    /// `sev`.
    pub(crate) sev: Option<String>,
    /// `sev_es`.
    pub(crate) sev_es: Option<String>,
    /// `sev_snp`.
    pub(crate) sev_snp: Option<String>,
}

/// The module as `ok` needs it.
#[derive(Debug, Clone)]
pub(crate) struct ModuleFacts {
    /// `SNP_HOST_GET_STATUS.backend`.
    pub(crate) backend: u32,
    /// `SNP_HOST_GET_STATUS.flags`.
    pub(crate) flags: u32,
    /// `SNP_HOST_GET_STATUS.max_pfn`.
    pub(crate) max_pfn: u64,
    /// `SNP_HOST_GET_STATUS.directmap_policy`.
    pub(crate) policy: u32,
    /// debugfs `reason`.
    pub(crate) reason: Option<String>,
    /// debugfs `kvm provider`.
    pub(crate) provider: Option<String>,
    /// Its parameters.
    pub(crate) params: BTreeMap<String, String>,
}

/// Everything `ok` judges.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    /// CPUID 0x8000001f, if the CPU has the leaf.
    pub(crate) cpu: Option<MemEncrypt>,
    /// `/proc/cpuinfo` flags.
    pub(crate) cpu_flags: Vec<String>,
    /// kvm_amd, if its parameters are in sysfs.
    pub(crate) kvm_amd: Option<KvmAmd>,
    /// `/sys/class/iommu` entries.
    pub(crate) iommus: Vec<String>,
    /// The kernel command line.
    pub(crate) cmdline: String,
    /// One past the highest System RAM address, if `/proc/iomem` shows it.
    pub(crate) ram_end: Option<u64>,
    /// The module, if loaded; `Err` with the reason it could not be asked.
    pub(crate) module: Option<std::result::Result<ModuleFacts, String>>,
    /// THP: `enabled`, `defrag`, `shmem_enabled` selections.
    pub(crate) thp: Option<[Option<String>; 3]>,
    /// hugetlbfs: `HugePages_Total`, `HugePages_Free`, `Hugepagesize` (kB).
    pub(crate) hugetlb: Option<(u64, u64, u64)>,
}

impl Facts {
    /// Gathers the facts of this host.
    pub(crate) fn gather() -> Result<Self> {
        let cpuinfo = source::read(source::CPUINFO)?;
        let kvm_dir = source::KVM_AMD_PARAMS;
        let kvm_amd = source::exists(kvm_dir).then(|| KvmAmd {
            sev: source::attr(&format!("{kvm_dir}/sev")),
            sev_es: source::attr(&format!("{kvm_dir}/sev_es")),
            sev_snp: source::attr(&format!("{kvm_dir}/sev_snp")),
        });
        let module = match Module::load() {
            Ok(None) => None,
            Ok(Some(m)) => Some(Ok(ModuleFacts {
                backend: m.status.backend,
                flags: m.status.flags,
                max_pfn: m.status.max_pfn,
                policy: m.status.directmap_policy,
                reason: m.debugfs("reason").map(str::to_string),
                provider: m.debugfs("kvm provider").map(str::to_string),
                params: m.params.clone(),
            })),
            Err(e) => Some(Err(e.to_string())),
        };
        let thp = source::exists(source::THP).then(|| {
            ["enabled", "defrag", "shmem_enabled"].map(|f| {
                source::attr(&format!("{}/{f}", source::THP))
                    .and_then(|t| source::sysfs_choice(&t).map(str::to_string))
            })
        });
        let meminfo = source::parse_meminfo(&source::read(source::MEMINFO)?);
        let hugetlb = match (
            meminfo.get("HugePages_Total"),
            meminfo.get("HugePages_Free"),
            meminfo.get("Hugepagesize"),
        ) {
            (Some(&t), Some(&f), Some(&s)) => Some((t, f, s)),
            _ => None,
        };
        Ok(Self {
            cpu: MemEncrypt::read(),
            cpu_flags: source::cpuinfo_flags(&cpuinfo),
            kvm_amd,
            iommus: source::list_dir(source::IOMMU_CLASS),
            cmdline: source::attr("/proc/cmdline").unwrap_or_default(),
            ram_end: source::read_opt(source::IOMEM)?
                .as_deref()
                .and_then(source::iomem_ram_end),
            module,
            thp,
            hugetlb,
        })
    }
}

/// The judgement: every check, in order.
pub(crate) fn evaluate(f: &Facts) -> Vec<Check> {
    let mut out = Vec::new();
    let mut add = |name, required, result, reason: String| {
        out.push(Check {
            name,
            required,
            result,
            reason,
        })
    };
    use Verdict::*;

    // The CPU.
    let cpu: Option<Summary> = f.cpu.map(|c| c.summary());
    let snp_cpu = cpu.as_ref().is_some_and(|c| c.sev_snp);
    match &cpu {
        None => add(
            "cpu.sev_snp",
            true,
            Fail,
            "the CPU has no CPUID leaf 0x8000001f: no AMD memory encryption".into(),
        ),
        Some(c) => {
            let mut have = Vec::new();
            for (b, n) in [
                (c.sme, "SME"),
                (c.sev, "SEV"),
                (c.sev_es, "SEV-ES"),
                (c.sev_snp, "SEV-SNP"),
            ] {
                if b {
                    have.push(n);
                }
            }
            let have = if have.is_empty() {
                "nothing".to_string()
            } else {
                have.join(" ")
            };
            if c.sev_snp {
                add(
                    "cpu.sev_snp",
                    true,
                    Pass,
                    format!("CPUID 0x8000001f EAX={:#x}: {have}", c.eax),
                );
            } else {
                add(
                    "cpu.sev_snp",
                    true,
                    Fail,
                    format!(
                        "CPUID 0x8000001f EAX={:#x}: {have}; no SEV-SNP (bit 4)",
                        c.eax
                    ),
                );
            }
        }
    }
    match &cpu {
        Some(c) if c.sev_snp && c.snp_asids > 0 => add(
            "cpu.snp_asids",
            true,
            Pass,
            format!(
                "ASIDs 1..={} for SEV-ES/SNP guests, {} encrypted guests at once",
                c.snp_asids, c.encrypted_guests
            ),
        ),
        Some(c) if c.sev_snp => add(
            "cpu.snp_asids",
            true,
            Fail,
            "no ASID for SEV-ES/SNP guests (CPUID 0x8000001f EDX <= 1): \
             raise the SEV-ES ASID space limit in the BIOS"
                .into(),
        ),
        _ => add("cpu.snp_asids", true, Skip, "no SEV-SNP CPU".into()),
    }
    match &cpu {
        Some(c) if c.sev_snp && c.rmpread => add(
            "cpu.rmpread",
            false,
            Pass,
            "RMPREAD: RMP entries in their architectural form".into(),
        ),
        Some(c) if c.sev_snp => add(
            "cpu.rmpread",
            false,
            Skip,
            "no RMPREAD: the module reads the RMP table itself".into(),
        ),
        _ => add("cpu.rmpread", false, Skip, "no SEV-SNP CPU".into()),
    }
    match &cpu {
        Some(c) if c.sev_snp && c.segmented_rmp => add(
            "cpu.segmented_rmp",
            false,
            Pass,
            "the CPU supports a segmented RMP".into(),
        ),
        Some(c) if c.sev_snp => add(
            "cpu.segmented_rmp",
            false,
            Skip,
            "the CPU has a contiguous RMP only".into(),
        ),
        _ => add("cpu.segmented_rmp", false, Skip, "no SEV-SNP CPU".into()),
    }

    // The kernel.
    let has = |flag: &str| f.cpu_flags.iter().any(|x| x == flag);
    if has("sev_snp") {
        add(
            "kernel.sev_snp",
            true,
            Pass,
            "/proc/cpuinfo has sev_snp: the kernel found the RMP and kept SNP".into(),
        );
    } else {
        let mut why = String::from("/proc/cpuinfo has no sev_snp");
        let hint = ["mem_encrypt=off", "sev=nosnp", "amd_iommu=off", "iommu=off"]
            .into_iter()
            .find(|w| f.cmdline.split_whitespace().any(|x| x == *w));
        if let Some(h) = hint {
            why.push_str(&format!(": the command line has {h}"));
        } else if snp_cpu {
            why.push_str(
                ": the kernel cleared it (no RMP from the BIOS, or SNP not enabled there)",
            );
        } else {
            why.push_str(": the CPU offers none");
        }
        add("kernel.sev_snp", true, Fail, why);
    }
    match &f.kvm_amd {
        None => add(
            "kvm_amd.sev_snp",
            true,
            Fail,
            format!("kvm_amd is not loaded (no {})", source::KVM_AMD_PARAMS),
        ),
        Some(k) => {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "absent".into());
            let params = format!(
                "sev={} sev_es={} sev_snp={}",
                show(&k.sev),
                show(&k.sev_es),
                show(&k.sev_snp)
            );
            match k.sev_snp.as_deref() {
                Some("Y" | "1") => add("kvm_amd.sev_snp", true, Pass, format!("kvm_amd: {params}")),
                Some(_) => add(
                    "kvm_amd.sev_snp",
                    true,
                    Fail,
                    format!("kvm_amd: {params}: KVM will not run SNP guests"),
                ),
                None => add(
                    "kvm_amd.sev_snp",
                    true,
                    Fail,
                    format!("kvm_amd: {params}: built without SEV (CONFIG_KVM_AMD_SEV)"),
                ),
            }
        }
    }
    if f.iommus.is_empty() {
        add(
            "iommu",
            true,
            Fail,
            format!(
                "no IOMMU registered ({} is empty): SNP needs the AMD IOMMU on",
                source::IOMMU_CLASS
            ),
        );
    } else {
        add(
            "iommu",
            true,
            Pass,
            format!("IOMMU on: {}", f.iommus.join(" ")),
        );
    }

    // The module.
    let m = match &f.module {
        None => {
            add(
                "module.loaded",
                true,
                Fail,
                "snp_host.ko is not loaded (insmod snp_host.ko)".into(),
            );
            None
        }
        Some(Err(e)) => {
            add(
                "module.loaded",
                true,
                Fail,
                format!("snp_host is loaded but cannot be asked: {e}"),
            );
            None
        }
        Some(Ok(m)) => {
            let params: Vec<String> = m.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            add(
                "module.loaded",
                true,
                Pass,
                format!(
                    "snp_host: {} backend, directmap={}; parameters {}",
                    module::backend_name(m.backend),
                    module::policy_name(m.policy),
                    params.join(" ")
                ),
            );
            Some(m)
        }
    };
    let emulated = m.is_some_and(|m| m.backend == crate::abi::BACKEND_EMULATED);
    match m {
        None => {
            for n in [
                "rmp.covers_memory",
                "module.backend",
                "module.hooks",
                "module.kvm",
            ] {
                add(n, true, Skip, "the module is not loaded".into());
            }
        }
        Some(m) => {
            let covered = m.max_pfn.saturating_add(1).saturating_mul(4096);
            let which = if emulated {
                "the emulated RMP"
            } else {
                "the RMP"
            };
            match f.ram_end {
                None => add(
                    "rmp.covers_memory",
                    true,
                    Skip,
                    "/proc/iomem shows no System RAM addresses (run as root)".into(),
                ),
                Some(end) if end <= covered => add(
                    "rmp.covers_memory",
                    true,
                    Pass,
                    format!(
                        "{which} covers {} (max_pfn {:#x}); System RAM ends at {:#x}",
                        crate::format::bytes(covered),
                        m.max_pfn,
                        end
                    ),
                ),
                Some(end) => add(
                    "rmp.covers_memory",
                    true,
                    Fail,
                    format!(
                        "{which} covers up to {covered:#x} (max_pfn {:#x}) but System RAM ends at \
                         {end:#x}: pages above have no RMP entry",
                        m.max_pfn
                    ),
                ),
            }
            let reason = m.reason.as_deref().unwrap_or("no reason in debugfs");
            if emulated {
                add(
                    "module.backend",
                    true,
                    Fail,
                    format!("only the emulated RMP is available: {reason}"),
                );
            } else if m.backend == crate::abi::BACKEND_HARDWARE {
                add(
                    "module.backend",
                    true,
                    Pass,
                    format!("the hardware RMP: {reason}"),
                );
            } else {
                add(
                    "module.backend",
                    true,
                    Fail,
                    format!("unknown backend {}", m.backend),
                );
            }
            let fl = Flags::of(m.flags);
            if fl.kernel_hooks && fl.user_wp {
                add(
                    "module.hooks",
                    true,
                    Pass,
                    "the kernel's fault path and mm hooks call the module; user mappings of \
                     guest pages are write-protected"
                        .into(),
                );
            } else {
                add(
                    "module.hooks",
                    true,
                    Fail,
                    format!(
                        "status flags {:#x}: kernel hooks {}, user write-protect {} \
                         (a kernel without patches/ ?)",
                        fl.raw, fl.kernel_hooks, fl.user_wp
                    ),
                );
            }
            let provider = m
                .provider
                .as_deref()
                .unwrap_or("no provider line in debugfs");
            if fl.kvm {
                add("module.kvm", true, Pass, format!("KVM provider {provider}"));
            } else {
                add(
                    "module.kvm",
                    true,
                    Fail,
                    format!("KVM provider {provider} (flag clear)"),
                );
            }
        }
    }

    // Settings that matter to guests' memory; they do not decide readiness.
    match &f.thp {
        None => add(
            "thp",
            false,
            Skip,
            "the kernel has no transparent huge pages".into(),
        ),
        Some([enabled, defrag, shmem]) => {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
            add(
                "thp",
                false,
                Pass,
                format!(
                    "enabled={} defrag={} shmem_enabled={}: guest memory in THPs is split \
                     on demand by the module's fault path",
                    show(enabled),
                    show(defrag),
                    show(shmem)
                ),
            );
        }
    }
    match f.hugetlb {
        None => add(
            "hugetlbfs",
            false,
            Skip,
            "the kernel has no hugetlbfs".into(),
        ),
        Some((total, free, size)) => add(
            "hugetlbfs",
            false,
            Pass,
            format!(
                "{total} huge pages of {} ({free} free): stores next to a guest page in one \
                 get SIGBUS (a hugetlbfs page cannot be split)",
                crate::format::kb(size)
            ),
        ),
    }
    out
}

/// `snp-host ok --json`.
#[derive(Serialize, Debug)]
pub(crate) struct Report {
    /// The schema version.
    pub(crate) version: u32,
    /// Every required check passed.
    pub(crate) ready: bool,
    /// No hardware RMP to drive: only the emulated one.
    pub(crate) emulated_only: bool,
    /// CPUID 0x8000001f decoded; `null` without the leaf.
    pub(crate) cpuid: Option<Summary>,
    /// Every check, in order.
    pub(crate) checks: Vec<Check>,
    /// The last line of the text output.
    pub(crate) summary: String,
}

/// Judges the facts into the report.
pub(crate) fn report(f: &Facts) -> Report {
    let checks = evaluate(f);
    let required = checks.iter().filter(|c| c.required).count();
    let failed = checks
        .iter()
        .filter(|c| c.required && c.result != Verdict::Pass)
        .count();
    let snp_cpu = f.cpu.is_some_and(|c| c.summary().sev_snp);
    let hw_backend = matches!(&f.module, Some(Ok(m)) if m.backend == crate::abi::BACKEND_HARDWARE);
    let snp_kernel = snp_cpu && f.cpu_flags.iter().any(|x| x == "sev_snp");
    let emulated_only = !(snp_kernel || hw_backend);
    let mut summary = if failed == 0 {
        format!("READY: all {required} required checks passed")
    } else {
        format!("NOT READY: {failed} of {required} required checks did not pass")
    };
    if emulated_only {
        summary.push_str(
            "; this host cannot run SEV-SNP guests: only the emulated RMP is available \
             (snp_host backend=emulated, for development and tests)",
        );
    }
    Report {
        version: 1,
        ready: failed == 0,
        emulated_only,
        cpuid: f.cpu.map(|c| c.summary()),
        checks,
        summary,
    }
}

/// The report for people: one line per check, then the summary.
pub(crate) fn text(r: &Report) -> String {
    let mut out = String::new();
    for c in &r.checks {
        let v = match c.result {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        };
        let tag = if c.required { "" } else { " (advisory)" };
        out.push_str(&format!("{v}  {:<18} {}{tag}\n", c.name, c.reason));
    }
    out.push_str(&r.summary);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi;

    /// A Genoa host with SNP on and the module loaded on the hardware.
    fn snp_host() -> Facts {
        Facts {
            cpu: Some(MemEncrypt {
                eax: 0b1_1011 | (1 << 21),
                ebx: 51,
                ecx: 1006,
                edx: 100,
            }),
            cpu_flags: ["fpu", "sev", "sev_es", "sev_snp"]
                .map(String::from)
                .to_vec(),
            kvm_amd: Some(KvmAmd {
                sev: Some("Y".into()),
                sev_es: Some("Y".into()),
                sev_snp: Some("Y".into()),
            }),
            iommus: vec!["ivhd0".into()],
            cmdline: "root=/dev/sda1".into(),
            ram_end: Some(1 << 40),
            module: Some(Ok(ModuleFacts {
                backend: abi::BACKEND_HARDWARE,
                flags: abi::FLAG_RMPREAD
                    | abi::FLAG_KERNEL_HOOKS
                    | abi::FLAG_USER_WP
                    | abi::FLAG_KVM,
                max_pfn: (1 << 28) - 1,
                policy: 3,
                reason: Some("the host runs SEV-SNP".into()),
                provider: Some("registered: KVM's RMP operations (hardware RMP)".into()),
                params: BTreeMap::from([("backend".into(), "auto".into())]),
            })),
            thp: Some([
                Some("madvise".into()),
                Some("madvise".into()),
                Some("never".into()),
            ]),
            hugetlb: Some((0, 0, 2048)),
        }
    }

    fn verdict(r: &Report, name: &str) -> Verdict {
        r.checks.iter().find(|c| c.name == name).unwrap().result
    }

    #[test]
    fn ready_host() {
        let r = report(&snp_host());
        assert!(r.ready, "{}", text(&r));
        assert!(!r.emulated_only);
        assert!(r
            .summary
            .starts_with("READY: all 10 required checks passed"));
        assert_eq!(verdict(&r, "cpu.segmented_rmp"), Verdict::Skip);
        assert_eq!(verdict(&r, "cpu.rmpread"), Verdict::Pass);
        let t = text(&r);
        assert!(t.contains("PASS  cpu.snp_asids      ASIDs 1..=99"), "{t}");
        assert!(t.contains("(advisory)"));
    }

    #[test]
    fn rmp_too_small_and_no_iommu() {
        let mut f = snp_host();
        f.ram_end = Some((1 << 40) + 4096);
        f.iommus.clear();
        let r = report(&f);
        assert!(!r.ready);
        assert_eq!(verdict(&r, "rmp.covers_memory"), Verdict::Fail);
        assert_eq!(verdict(&r, "iommu"), Verdict::Fail);
        assert!(r.summary.starts_with("NOT READY: 2 of 10"));
    }

    #[test]
    fn no_asids() {
        let mut f = snp_host();
        f.cpu.as_mut().unwrap().edx = 1;
        assert_eq!(verdict(&report(&f), "cpu.snp_asids"), Verdict::Fail);
    }

    /// The test VM: QEMU/TCG, no SNP, the module on the emulated RMP.
    #[test]
    fn emulated_vm() {
        let mut f = snp_host();
        f.cpu = None;
        f.cpu_flags = vec!["fpu".into()];
        f.kvm_amd.as_mut().unwrap().sev_snp = Some("N".into());
        f.iommus.clear();
        if let Some(Ok(m)) = &mut f.module {
            m.backend = abi::BACKEND_EMULATED;
            m.reason = Some("the CPU does not report SEV-SNP".into());
        }
        let r = report(&f);
        assert!(!r.ready && r.emulated_only);
        assert!(r.summary.contains("only the emulated RMP is available"));
        let t = text(&r);
        assert!(t.contains("FAIL  module.backend     only the emulated RMP is available: the CPU"));
        assert!(t.contains("SKIP  cpu.snp_asids"));
        assert!(t.contains("FAIL  kvm_amd.sev_snp    kvm_amd: sev=Y sev_es=Y sev_snp=N"));
        assert_eq!(verdict(&r, "module.hooks"), Verdict::Pass);
    }

    #[test]
    fn not_loaded() {
        let mut f = snp_host();
        f.module = None;
        f.cmdline = "quiet sev=nosnp".into();
        f.cpu_flags.retain(|x| x != "sev_snp");
        let r = report(&f);
        assert_eq!(verdict(&r, "module.loaded"), Verdict::Fail);
        assert_eq!(verdict(&r, "module.kvm"), Verdict::Skip);
        let t = text(&r);
        assert!(t.contains("the command line has sev=nosnp"), "{t}");
        // Skips of required checks keep the host from being ready.
        assert!(!r.ready);
    }
}
