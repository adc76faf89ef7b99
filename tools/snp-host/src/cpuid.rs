// SPDX-License-Identifier: GPL-2.0

//! CPUID 0x8000001f, the leaf of AMD memory encryption, as this CPU answers.
//!
//! EAX is decoded by the module's own `MemEncryptFeatures`; EBX, ECX and EDX
//! carry the C-bit position, the number of encrypted guests and the first
//! ASID of plain SEV guests (SEV-ES and SNP guests use the ASIDs below it).

use serde::Serialize;
use snp_host_model::rmp::model::MemEncryptFeatures;

/// The memory-encryption leaf.
pub(crate) const LEAF: u32 = 0x8000_001f;

/// What the CPU reports for memory encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MemEncrypt {
    /// EAX.
    pub(crate) eax: u32,
    /// EBX.
    pub(crate) ebx: u32,
    /// ECX: encrypted guests supported at once.
    pub(crate) ecx: u32,
    /// EDX: the minimum ASID of a plain SEV guest.
    pub(crate) edx: u32,
}

/// The leaf in the words and numbers of `snp-host ok --json`.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    /// The raw EAX.
    pub(crate) eax: u32,
    /// SME.
    pub(crate) sme: bool,
    /// SEV.
    pub(crate) sev: bool,
    /// SEV-ES.
    pub(crate) sev_es: bool,
    /// SEV-SNP.
    pub(crate) sev_snp: bool,
    /// RMPREAD.
    pub(crate) rmpread: bool,
    /// Segmented RMP.
    pub(crate) segmented_rmp: bool,
    /// The C-bit position (EBX 5:0).
    pub(crate) c_bit: u32,
    /// Encrypted guests at once (ECX).
    pub(crate) encrypted_guests: u32,
    /// ASIDs for SEV-ES and SNP guests: 1 .. EDX-1.
    pub(crate) snp_asids: u32,
}

impl MemEncrypt {
    /// Reads the leaf; `None` when the CPU does not implement it.
    pub(crate) fn read() -> Option<Self> {
        use core::arch::x86_64::__cpuid;
        // CPUID exists on every x86-64 CPU and only reads identification registers.
        let max = __cpuid(0x8000_0000).eax;
        if max < LEAF {
            return None;
        }
        let r = __cpuid(LEAF);
        Some(Self {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        })
    }

    /// Decodes the leaf.
    pub(crate) fn summary(&self) -> Summary {
        let f = MemEncryptFeatures::from_raw(u64::from(self.eax));
        Summary {
            eax: self.eax,
            sme: f.sme(),
            sev: f.sev(),
            sev_es: f.sev_es(),
            sev_snp: f.snp(),
            rmpread: f.rmpread(),
            segmented_rmp: f.segmented_rmp(),
            c_bit: self.ebx & 0x3f,
            encrypted_guests: self.ecx,
            snp_asids: self.edx.saturating_sub(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genoa_like() {
        // SME, SEV, SEV-ES, SNP, RMPREAD; C-bit 51; 1006 guests; ASIDs 1..99 for SNP.
        let m = MemEncrypt {
            eax: 0b1_1011 | (1 << 21),
            ebx: 0x0000_0173,
            ecx: 1006,
            edx: 100,
        };
        let s = m.summary();
        assert!(s.sme && s.sev && s.sev_es && s.sev_snp && s.rmpread);
        assert!(!s.segmented_rmp);
        assert_eq!(s.c_bit, 51);
        assert_eq!(s.snp_asids, 99);
        assert_eq!(s.encrypted_guests, 1006);
    }

    #[test]
    fn no_asids() {
        let m = MemEncrypt {
            eax: 0b1_1011,
            ebx: 0,
            ecx: 0,
            edx: 0,
        };
        assert_eq!(m.summary().snp_asids, 0);
    }
}
