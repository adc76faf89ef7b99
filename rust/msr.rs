// SPDX-License-Identifier: GPL-2.0

//! Reading model-specific registers (the RMP's are named in `rmp::model::geometry`,
//! `SYSCFG` in `rmp::model::detect`).

use kernel::{bindings, prelude::*};

/// Reads `msr` on CPU 0, returning an error instead of faulting if the CPU lacks it.
///
/// The RMP MSRs hold the same value on every CPU (the kernel checks that when it
/// enables SNP), so CPU 0 answers for all. This sends an IPI and waits for it: process
/// context only.
pub(crate) fn read(msr: u32) -> Result<u64> {
    let mut val: u64 = 0;
    // SAFETY: `val` is a valid destination; the call recovers from #GP itself.
    let ret = unsafe { bindings::rdmsrq_safe_on_cpu(0, msr, &mut val) };
    if ret != 0 {
        return Err(Error::from_errno(ret));
    }
    Ok(val)
}

/// Reads `msr` on the CPU this runs on, returning an error instead of faulting if the
/// CPU lacks it.
///
/// Cheap enough to precede every RMP instruction (no IPI), and usable for state that
/// every CPU holds alike (`SYSCFG.SNPEn` is set and cleared on all CPUs together), so
/// that it does not matter which CPU answers.
pub(crate) fn read_local(msr: u32) -> Result<u64> {
    // The layout `rdmsr_safe_regs()` takes: EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI.
    let mut regs: [u32; 8] = [0, msr, 0, 0, 0, 0, 0, 0];
    // SAFETY: `regs` is the 8-register array the function reads and writes; it recovers
    // from #GP itself and touches nothing else.
    let ret = unsafe { bindings::rdmsr_safe_regs(regs.as_mut_ptr()) };
    if ret != 0 {
        return Err(Error::from_errno(ret));
    }
    let [eax, _, edx, ..] = regs;
    Ok((u64::from(edx) << 32) | u64::from(eax))
}
