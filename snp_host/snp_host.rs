// SPDX-License-Identifier: GPL-2.0

//! AMD SEV-SNP host memory management.
//!
//! This is the crate root of `snp_host.ko` and holds its only `module!`. The
//! rest of the crate lives in the top-level folders of the project:
//! `rmp/` (the Reverse Map Table), `directmap/` (the kernel direct map),
//! `fault/` (RMP page faults) and `rust/` (abstractions over C).

use kernel::prelude::*;

#[path = "../directmap/mod.rs"]
mod directmap;
#[path = "../fault/mod.rs"]
mod fault;
#[path = "../rust/mod.rs"]
mod kernel_ext;
#[path = "../rmp/mod.rs"]
mod rmp;

use rmp::platform::Platform;

module! {
    type: SnpHost,
    name: "snp_host",
    authors: ["snp-host developers"],
    description: "AMD SEV-SNP host memory management (RMP, direct map, RMP faults)",
    license: "GPL",
}

/// The loaded module.
struct SnpHost {
    platform: Platform,
}

impl kernel::Module for SnpHost {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let platform = Platform::detect();
        pr_info!(
            "using the {} RMP backend: {}\n",
            platform.backend().name(),
            platform.reason()
        );
        platform.log_features();
        Ok(SnpHost { platform })
    }
}

impl Drop for SnpHost {
    fn drop(&mut self) {
        pr_info!("unloaded ({} backend)\n", self.platform.backend().name());
    }
}
