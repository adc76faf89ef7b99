// SPDX-License-Identifier: GPL-2.0

//! CPUID leaves that describe AMD memory encryption.

use core::arch::x86_64::__cpuid;

/// The leaf that reports the highest extended leaf the CPU implements.
const EXTENDED_MAX: u32 = 0x8000_0000;
/// AMD's encrypted-memory capabilities leaf.
const MEM_ENCRYPT: u32 = 0x8000_001f;

/// Registers of one CPUID leaf (EBX is not needed by anyone yet).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Leaf {
    /// EAX.
    pub(crate) eax: u32,
    /// ECX.
    pub(crate) ecx: u32,
    /// EDX.
    pub(crate) edx: u32,
}

/// Returns extended leaf `leaf`, or `None` when the CPU does not implement it.
///
/// An AMD CPU returns zeros for a leaf above its maximum, an Intel CPU the
/// highest basic leaf; neither must be mistaken for a real answer, so the
/// maximum is checked first.  (QEMU's `-cpu EPYC` stops at 0x8000001e.)
pub(crate) fn extended(leaf: u32) -> Option<Leaf> {
    if !(EXTENDED_MAX..=__cpuid(EXTENDED_MAX).eax).contains(&leaf) {
        return None;
    }
    let r = __cpuid(leaf);
    Some(Leaf {
        eax: r.eax,
        ecx: r.ecx,
        edx: r.edx,
    })
}

/// Returns CPUID 0x8000001f (SME/SEV/SNP capabilities), if the CPU has it.
pub(crate) fn mem_encrypt() -> Option<Leaf> {
    extended(MEM_ENCRYPT)
}
