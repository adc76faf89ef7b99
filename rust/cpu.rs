// SPDX-License-Identifier: GPL-2.0

//! The CPU as the kernel sees it: its feature bits for AMD memory encryption, the
//! CPUID leaves it keeps no bits for, and the speculation-safe clamp of array indices.

use core::arch::{
    asm,
    x86_64::__cpuid, //
};
use kernel::bindings;

/// The capability word of `boot_cpu_data` that mirrors CPUID 0x8000001f EAX.
const MEM_ENCRYPT_WORD: usize = bindings::cpuid_leafs_CPUID_8000_001F_EAX as usize;

// The model reads SME, SEV, SEV-ES, SEV-SNP, RMPREAD and segmented RMP from one word at
// the bit positions of CPUID 0x8000001f EAX (`rmp::model::MemEncryptFeatures`); the
// kernel must keep them in that word, each at its CPUID bit (the KUnit suite
// `snp_host_platform` checks the positions against the model).
const _: () = {
    let word = MEM_ENCRYPT_WORD as u32;
    assert!(bindings::X86_FEATURE_SME / 32 == word);
    assert!(bindings::X86_FEATURE_SEV / 32 == word);
    assert!(bindings::X86_FEATURE_SEV_ES / 32 == word);
    assert!(bindings::X86_FEATURE_SEV_SNP / 32 == word);
    assert!(bindings::X86_FEATURE_RMPREAD / 32 == word);
    assert!(bindings::X86_FEATURE_SEGMENTED_RMP / 32 == word);
    assert!(MEM_ENCRYPT_WORD < bindings::NCAPINTS as usize);
};

/// Returns the kernel's view of CPUID 0x8000001f EAX: the bits it found, minus those it
/// cleared (no BIOS support, `mem_encrypt=off`, `sev=nosnp`, no usable RMP table) and
/// those the kernel was built without, as `cpu_feature_enabled()` answers for each.
pub(crate) fn mem_encrypt_features() -> u32 {
    // SAFETY: `boot_cpu_data` is the kernel's exported description of the boot CPU. Its
    // capability words are written during boot and afterwards only by the kernel
    // clearing a feature it gives up, one aligned word store at a time; an aligned
    // 32-bit read is what `boot_cpu_has()` does too. The index is in bounds (above).
    let word = unsafe {
        core::ptr::read_volatile(
            &raw const bindings::boot_cpu_data.__bindgen_anon_3.x86_capability[MEM_ENCRYPT_WORD],
        )
    };
    word & !bindings::DISABLED_MASK19
}

// `DISABLED_MASK19` above is the mask of this very word.
const _: () = assert!(MEM_ENCRYPT_WORD == 19);

/// Returns the highest extended CPUID leaf, as the kernel recorded it at boot.
pub(crate) fn max_extended_leaf() -> u32 {
    // SAFETY: As in `mem_encrypt_features`: written at boot, then only read.
    unsafe { core::ptr::read_volatile(&raw const bindings::boot_cpu_data.extended_cpuid_level) }
}

/// Registers of one CPUID leaf.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Leaf {
    /// EAX.
    pub(crate) eax: u32,
    /// EBX.
    pub(crate) ebx: u32,
    /// ECX.
    pub(crate) ecx: u32,
    /// EDX.
    pub(crate) edx: u32,
}

/// Returns extended leaf `leaf` as the CPU reports it, or `None` when the CPU does not
/// implement it.
///
/// Only for what the kernel keeps no feature bits for: CPUID 0x8000001f ECX/EDX (guest
/// and ASID counts) and leaf 0x80000025 (RMP segment limits), which Linux itself reads
/// with `cpuid_eax()`/`cpuid_ebx()`. Feature bits come from [`mem_encrypt_features`].
pub(crate) fn extended(leaf: u32) -> Option<Leaf> {
    if !(0x8000_0000..=max_extended_leaf()).contains(&leaf) {
        return None;
    }
    let r = __cpuid(leaf);
    Some(Leaf {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    })
}

/// Returns `index` if it is below `size`, else 0, without a branch the CPU could
/// speculate past: Linux's `array_index_nospec()`, for an index checked just before.
///
/// After `if index < size`, a mispredicted branch could still load `array[index]` with
/// an out-of-bounds index under speculation. The mask is computed the way x86's
/// `array_index_mask_nospec()` does (`cmp; sbb`: all ones exactly when
/// `index < size`), in assembly so that the compiler cannot turn it back into a branch.
pub(crate) fn array_index_nospec(index: u64, size: u64) -> u64 {
    let mask: u64;
    // SAFETY: Two register-only instructions: `cmp` sets CF when `index < size`,
    // `sbb` turns CF into an all-ones or all-zeros mask. No memory, no stack.
    unsafe {
        asm!(
            "cmp {index}, {size}",
            "sbb {mask}, {mask}",
            index = in(reg) index,
            size = in(reg) size,
            mask = out(reg) mask,
            options(nomem, nostack)
        )
    };
    index & mask
}
