// SPDX-License-Identifier: GPL-2.0

//! The CPUID leaf that describes AMD memory encryption (0x8000001f).

use super::bits::bitfield;

bitfield! {
    /// CPUID 0x8000001f EAX: which memory-encryption features the CPU has.
    ///
    /// # Examples
    ///
    /// ```
    /// use snp_host_model::rmp::model::MemEncryptFeatures;
    ///
    /// // An EPYC with SEV-SNP and RMPREAD.
    /// let f = MemEncryptFeatures::from_raw((1 << 21) | (1 << 4) | 0b1011);
    /// assert!(f.sme() && f.sev() && f.sev_es() && f.snp() && f.rmpread());
    /// assert!(!f.segmented_rmp());
    /// ```
    pub struct MemEncryptFeatures {
        /// Secure Memory Encryption.
        0:0 sme, with_sme: bool;
        /// Secure Encrypted Virtualization.
        1:1 sev, with_sev: bool;
        /// SEV with encrypted register state.
        3:3 sev_es, with_sev_es: bool;
        /// SEV Secure Nested Paging: the CPU has an RMP.
        4:4 snp, with_snp: bool;
        /// The RMPREAD instruction returns an architectural view of an RMP entry.
        21:21 rmpread, with_rmpread: bool;
        /// The RMP may be split into segments (`RMP_CFG`).
        23:23 segmented_rmp, with_segmented_rmp: bool;
    }
}
