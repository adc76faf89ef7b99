// SPDX-License-Identifier: GPL-2.0

//! The SEV-SNP host instructions RMPUPDATE, PSMASH and RMPREAD.
//!
//! Each is emitted as bytes (assemblers older than the instructions do not know
//! them) and returns the instruction's status in EAX, which the caller turns
//! into an [`RmpError`](crate::rmp::model::RmpError). All three raise #UD unless
//! the CPU runs with `SYSCFG.SNPEn` set, which only the kernel sets (on every
//! CPU, at boot); hence they are `unsafe` and only the hardware backend, which
//! exists only when `cc_platform_has(CC_ATTR_HOST_SEV_SNP)` holds, calls them.

use core::arch::asm;

/// RMPUPDATE: writes the RMP entry of the page at `paddr` from `state`, the
/// 16-byte new-state record (`struct rmp_state`).
///
/// Returns 0 or FAIL_INPUT (1), FAIL_PERMISSION (2), FAIL_INUSE (3), FAIL_OVERLAP (4).
///
/// # Safety
///
/// SNP must be enabled on this CPU. `paddr` must be the system physical address of
/// a page the caller owns and whose host mappings it has dealt with (a page made
/// guest-owned must not be written by the host afterwards).
pub(crate) unsafe fn rmpupdate(paddr: u64, state: &[u8; 16]) -> u32 {
    let ret: u64;
    // SAFETY: By the function's contract SNP is on, so the instruction exists; it reads
    // 16 bytes at RCX, which `state` provides, and only writes the RMP and RAX.
    unsafe {
        asm!(
            ".byte 0xf2, 0x0f, 0x01, 0xfe",
            inout("rax") paddr => ret,
            in("rcx") state.as_ptr(),
            options(nostack)
        )
    };
    // CAST: the status is in EAX.
    ret as u32
}

/// PSMASH: splits the 2M RMP entry at the 2M-aligned `paddr` into 512 4K entries.
///
/// Returns 0 or FAIL_INPUT (1), FAIL_PERMISSION (2), FAIL_INUSE (3), FAIL_BADADDR (4).
///
/// # Safety
///
/// SNP must be enabled on this CPU and the caller must own the 2M page at `paddr`.
pub(crate) unsafe fn psmash(paddr: u64) -> u32 {
    let ret: u64;
    // SAFETY: By the function's contract SNP is on; PSMASH only writes the RMP and RAX.
    unsafe {
        asm!(
            ".byte 0xf3, 0x0f, 0x01, 0xff",
            inout("rax") paddr => ret,
            options(nostack)
        )
    };
    // CAST: the status is in EAX.
    ret as u32
}

/// RMPREAD: stores the architectural 16-byte record of the RMP entry of `paddr` in `out`.
///
/// Returns 0 on success, else the instruction's error code.
///
/// # Safety
///
/// SNP must be enabled on this CPU and CPUID 0x8000001f EAX bit 21 (RMPREAD) set.
pub(crate) unsafe fn rmpread(paddr: u64, out: &mut [u8; 16]) -> u32 {
    let ret: u64;
    // SAFETY: By the function's contract the instruction exists; it writes 16 bytes at
    // RCX, which `out` provides, and RAX.
    unsafe {
        asm!(
            ".byte 0xf2, 0x0f, 0x01, 0xfd",
            inout("rax") paddr => ret,
            in("rcx") out.as_mut_ptr(),
            options(nostack)
        )
    };
    // CAST: the status is in EAX.
    ret as u32
}
