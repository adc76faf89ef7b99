// SPDX-License-Identifier: GPL-2.0

//! Confidential-computing platform attributes (`include/linux/cc_platform.h`).

use kernel::bindings;

/// Returns whether the host kernel runs with SEV-SNP enabled.
///
/// Only the kernel knows: it sets `SYSCFG.SNPEn` on every CPU and sets up the
/// RMP (`snp_prepare()`), and it may have declined to (no firmware support,
/// IOMMU not ready, `mem_encrypt=off`).  A CPU that merely supports SNP
/// answers `false` here.
pub(crate) fn host_sev_snp() -> bool {
    // SAFETY: `cc_platform_has()` only reads immutable platform state set up at boot
    // and accepts every `cc_attr` value.
    unsafe { bindings::cc_platform_has(bindings::cc_attr_CC_ATTR_HOST_SEV_SNP) }
}
