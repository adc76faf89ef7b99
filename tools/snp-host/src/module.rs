// SPDX-License-Identifier: GPL-2.0

//! The loaded module as it describes itself: `SNP_HOST_GET_STATUS`, debugfs
//! `status` (for what the ioctl has no field for: the reason for the
//! backend, the ASID limit, the KVM provider) and its parameters.

use crate::abi;
use crate::device::Device;
use crate::directmap::model::Policy;
use crate::error::Result;
use crate::rmp::DEBUGFS;
use crate::source;
use serde::Serialize;
use std::collections::BTreeMap;

/// What the module reports about itself.
pub(crate) struct Module {
    /// `SNP_HOST_GET_STATUS`.
    pub(crate) status: abi::Status,
    /// debugfs `status`, `key: value` in order; empty if debugfs is not readable.
    pub(crate) debugfs: Vec<(String, String)>,
    /// `/sys/module/snp_host/parameters/*`.
    pub(crate) params: BTreeMap<String, String>,
}

/// The name of a `directmap_policy` number (the module parameter's word).
pub(crate) fn policy_name(raw: u32) -> &'static str {
    [Policy::Coalesce, Policy::Split, Policy::PerPage]
        .into_iter()
        .find(|p| p.abi() == raw)
        .map_or("unknown", |p| match p {
            Policy::Coalesce => "coalesce",
            Policy::Split => "split",
            Policy::PerPage => "perpage",
        })
}

/// The name of a `backend` number.
pub(crate) fn backend_name(raw: u32) -> &'static str {
    match raw {
        abi::BACKEND_HARDWARE => "hardware",
        abi::BACKEND_EMULATED => "emulated",
        _ => "unknown",
    }
}

/// `snp_host_status.flags`, one boolean per bit of the header.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub(crate) struct Flags {
    /// The raw value.
    pub(crate) raw: u32,
    /// `SNP_HOST_FLAG_RMPREAD`.
    pub(crate) rmpread: bool,
    /// `SNP_HOST_FLAG_SEGMENTED_RMP`.
    pub(crate) segmented_rmp: bool,
    /// `SNP_HOST_FLAG_KERNEL_HOOKS`.
    pub(crate) kernel_hooks: bool,
    /// `SNP_HOST_FLAG_USER_WP`.
    pub(crate) user_wp: bool,
    /// `SNP_HOST_FLAG_KVM`.
    pub(crate) kvm: bool,
}

impl Flags {
    /// Decodes the flags.
    pub(crate) fn of(raw: u32) -> Self {
        Self {
            raw,
            rmpread: raw & abi::FLAG_RMPREAD != 0,
            segmented_rmp: raw & abi::FLAG_SEGMENTED_RMP != 0,
            kernel_hooks: raw & abi::FLAG_KERNEL_HOOKS != 0,
            user_wp: raw & abi::FLAG_USER_WP != 0,
            kvm: raw & abi::FLAG_KVM != 0,
        }
    }
}

/// `snp-host status --json`.
#[derive(Serialize, Debug)]
pub(crate) struct StatusJson {
    /// The schema version.
    pub(crate) version: u32,
    /// `"hardware"` or `"emulated"`.
    pub(crate) backend: &'static str,
    /// Why the module chose it (debugfs), if readable.
    pub(crate) reason: Option<String>,
    /// The flags.
    pub(crate) flags: Flags,
    /// RMP base (0 when emulated).
    pub(crate) rmp_base: u64,
    /// RMP end (0 when emulated or segmented).
    pub(crate) rmp_end: u64,
    /// The highest PFN the RMP covers.
    pub(crate) max_pfn: u64,
    /// Bytes of physical memory the RMP covers: `(max_pfn + 1) * 4096`.
    pub(crate) covers_bytes: u64,
    /// `"coalesce"`, `"split"` or `"perpage"`.
    pub(crate) directmap_policy: &'static str,
    /// The highest guest ASID the module accepts (debugfs).
    pub(crate) max_asid: Option<u64>,
    /// How the module serves the kernel's RMP operations (debugfs).
    pub(crate) kvm_provider: Option<String>,
    /// The module's parameters.
    pub(crate) parameters: BTreeMap<String, String>,
}

impl Module {
    /// Reads what the loaded module reports; `Ok(None)` when it is not loaded.
    pub(crate) fn load() -> Result<Option<Self>> {
        if !source::exists(source::MODULE_SYSFS) {
            return Ok(None);
        }
        let dev = Device::open()?;
        let status = dev.status()?;
        let debugfs = source::read_opt(&format!("{DEBUGFS}/status"))
            .ok()
            .flatten()
            .map(|t| source::parse_status(&t))
            .unwrap_or_default();
        let dir = format!("{}/parameters", source::MODULE_SYSFS);
        let params = source::list_dir(&dir)
            .into_iter()
            .filter_map(|p| Some((p.clone(), source::attr(&format!("{dir}/{p}"))?)))
            .collect();
        Ok(Some(Self {
            status,
            debugfs,
            params,
        }))
    }

    /// A value of debugfs `status`.
    pub(crate) fn debugfs(&self, key: &str) -> Option<&str> {
        self.debugfs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The status as `snp-host status --json` shows it.
    pub(crate) fn json(&self) -> StatusJson {
        let s = &self.status;
        StatusJson {
            version: 1,
            backend: backend_name(s.backend),
            reason: self.debugfs("reason").map(str::to_string),
            flags: Flags::of(s.flags),
            rmp_base: s.rmp_base,
            rmp_end: s.rmp_end,
            max_pfn: s.max_pfn,
            covers_bytes: s.max_pfn.saturating_add(1).saturating_mul(4096),
            directmap_policy: policy_name(s.directmap_policy),
            max_asid: self.debugfs("max_asid").and_then(|v| v.parse().ok()),
            kvm_provider: self.debugfs("kvm provider").map(str::to_string),
            parameters: self.params.clone(),
        }
    }
}

/// `snp-host status` for people.
pub(crate) fn status_text(j: &StatusJson) -> String {
    let f = &j.flags;
    let mut on = Vec::new();
    for (set, what) in [
        (f.rmpread, "RMPREAD"),
        (f.segmented_rmp, "segmented RMP"),
        (f.kernel_hooks, "kernel hooks"),
        (f.user_wp, "user mappings of guest pages write-protected"),
        (f.kvm, "KVM's RMP operations served"),
    ] {
        if set {
            on.push(what);
        }
    }
    let mut out = String::from("snp_host is loaded\n");
    let mut row = |k: &str, v: String| out.push_str(&format!("  {k:<16} {v}\n"));
    row(
        "backend",
        match &j.reason {
            Some(r) => format!("{} ({r})", j.backend),
            None => j.backend.to_string(),
        },
    );
    if j.backend == "hardware" {
        row("RMP table", format!("{:#x}..{:#x}", j.rmp_base, j.rmp_end));
    }
    row(
        "RMP covers",
        format!(
            "PFNs 0..={:#x}: {} of physical memory",
            j.max_pfn,
            crate::format::bytes(j.covers_bytes)
        ),
    );
    row(
        "flags",
        format!(
            "{:#x}: {}",
            f.raw,
            if on.is_empty() {
                "none".to_string()
            } else {
                on.join(", ")
            }
        ),
    );
    row("directmap", format!("{} (policy)", j.directmap_policy));
    if let Some(a) = j.max_asid {
        row("guest ASIDs", format!("1..={a}"));
    }
    if let Some(p) = &j.kvm_provider {
        row("KVM provider", p.clone());
    }
    let params: Vec<String> = j
        .parameters
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    row("parameters", params.join(" "));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(policy_name(3), "coalesce");
        assert_eq!(policy_name(1), "split");
        assert_eq!(policy_name(2), "perpage");
        assert_eq!(policy_name(9), "unknown");
        assert_eq!(backend_name(abi::BACKEND_EMULATED), "emulated");
        let f = Flags::of(abi::FLAG_KERNEL_HOOKS | abi::FLAG_KVM);
        assert!(f.kernel_hooks && f.kvm && !f.user_wp && !f.rmpread);
    }
}
