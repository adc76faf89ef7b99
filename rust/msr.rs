// SPDX-License-Identifier: GPL-2.0

//! Reading model-specific registers (the RMP's are named in `rmp::model::geometry`,
//! `SYSCFG` in `rmp::model::detect`).

use kernel::{bindings, prelude::*};

/// Reads `msr` on the CPU this runs on, returning an error instead of faulting if the
/// CPU lacks it.
///
/// Cheap enough to precede every RMP instruction (no IPI, and no dependence on any
/// one CPU being online), and usable for state that every CPU holds alike: the RMP
/// MSRs (the kernel checks that they agree when it enables SNP) and `SYSCFG.SNPEn`
/// (set and cleared on all CPUs together), so it does not matter which CPU answers.
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
