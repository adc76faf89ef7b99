// SPDX-License-Identifier: GPL-2.0

//! Confidential-computing platform attributes (`include/linux/cc_platform.h`).

use kernel::bindings;

/// Returns whether the host kernel set up SEV-SNP at boot (`CC_ATTR_HOST_SEV_SNP`).
///
/// The kernel sets the attribute early, when the CPU, the BIOS and the RMP table allow
/// SNP, and clears it again when it gives up on SNP (no IOMMU support, `sev=nosnp`).
/// It says that the host *can* run SNP guests, not that SNP is on: `SYSCFG.SNPEn` is
/// set only later, by `snp_prepare()` when the CCP driver initialises SNP, and cleared
/// again by an SNP shutdown (`rmp::model::detect` checks both).
pub(crate) fn host_sev_snp() -> bool {
    // SAFETY: `cc_platform_has()` only reads platform state set up at boot and accepts
    // every `cc_attr` value.
    unsafe { bindings::cc_platform_has(bindings::cc_attr_CC_ATTR_HOST_SEV_SNP) }
}
