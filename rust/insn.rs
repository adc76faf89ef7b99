// SPDX-License-Identifier: GPL-2.0

//! The SEV-SNP host instructions RMPUPDATE, PSMASH and RMPREAD.
//!
//! Each is emitted as bytes (assemblers older than the instructions do not know
//! them) and returns the instruction's status in EAX, which the caller turns
//! into an [`RmpError`](crate::rmp::model::RmpError). All three raise #UD, with no
//! fixup, unless the CPU runs with `SYSCFG.SNPEn` set, which the kernel sets on every
//! CPU when the CCP driver initialises SNP and the firmware clears again on an SNP
//! shutdown. Hence they are `unsafe`, and only the hardware backend calls them, right
//! after checking `SNPEn` (`rmp/hardware.rs`).
//!
//! The memory operands are the records themselves, naturally aligned (8 bytes): the
//! new-state record RMPUPDATE reads and the two quadwords RMPREAD writes.

use crate::rmp::model::State;
use core::arch::asm;

/// RMPUPDATE: writes the RMP entry of the page at `paddr` from `state` (Linux's
/// `struct rmp_state`).
///
/// Returns 0 or FAIL_INPUT (1), FAIL_PERMISSION (2), FAIL_INUSE (3), FAIL_OVERLAP (4).
///
/// # Safety
///
/// `SYSCFG.SNPEn` must be set on this CPU. `paddr` must be the system physical address
/// of a page (of the 2M page, for a 2M state) the caller owns, with the obligations of
/// `Backend::rmpupdate` (`rmp/backend.rs`): when `state` assigns it, the page is pinned
/// or leaked by this module and out of the host's write path; when `state` makes it
/// shared, the module assigned it before.
pub(crate) unsafe fn rmpupdate(paddr: u64, state: &State) -> u32 {
    let ret: u64;
    // SAFETY: By the function's contract SNP is on, so the instruction exists; it reads
    // the 16 bytes at RCX, which `state` provides (`State` is the 16-byte, 8-aligned
    // record), and writes only the RMP and RAX.
    unsafe {
        asm!(
            ".byte 0xf2, 0x0f, 0x01, 0xfe",
            inout("rax") paddr => ret,
            in("rcx") core::ptr::from_ref(state),
            options(nostack)
        )
    };
    // CAST: the status is in EAX.
    ret as u32
}

/// PSMASH: splits the 2M RMP entry at the 2M-aligned `paddr` into 512 4K entries.
///
/// Returns 0 or FAIL_INPUT (1), FAIL_PERMISSION (2), FAIL_INUSE (3), and, from vendor
/// documentation, 7 for an entry that cannot be expanded; 4 (FAIL_BADADDR) is decoded
/// too (`RmpError::check`).
///
/// # Safety
///
/// `SYSCFG.SNPEn` must be set on this CPU and the caller must own the 2M page at
/// `paddr`, as `Backend::psmash` requires.
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

/// RMPREAD: stores the architectural 16-byte record of the RMP entry of `paddr` in
/// `out`, as two little-endian quadwords (GPA, then the attributes).
///
/// Returns 0 on success, else the instruction's error code. It changes nothing, so its
/// only requirement is that it exists.
///
/// # Safety
///
/// `SYSCFG.SNPEn` must be set on this CPU and the kernel must report RMPREAD
/// (`X86_FEATURE_RMPREAD`).
pub(crate) unsafe fn rmpread(paddr: u64, out: &mut [u64; 2]) -> u32 {
    let ret: u64;
    // SAFETY: By the function's contract the instruction exists; it writes the 16 bytes
    // at RCX, which `out` provides (8-aligned), and RAX.
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
