// SPDX-License-Identifier: GPL-2.0

//! Reading model-specific registers (the RMP's are named in `rmp::model::geometry`).

use kernel::{bindings, prelude::*};

/// Reads `msr`, returning an error instead of faulting if the CPU lacks it.
///
/// The RMP MSRs hold the same value on every CPU (the kernel checks that when
/// it enables SNP), so CPU 0 answers for all.
pub(crate) fn read(msr: u32) -> Result<u64> {
    let mut val: u64 = 0;
    // SAFETY: `val` is a valid destination; the call recovers from #GP itself.
    let ret = unsafe { bindings::rdmsrq_safe_on_cpu(0, msr, &mut val) };
    if ret != 0 {
        return Err(Error::from_errno(ret));
    }
    Ok(val)
}
