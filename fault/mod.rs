// SPDX-License-Identifier: GPL-2.0

//! RMP page faults: THP split and retry, SIGBUS, reports of kernel faults.

// Shared with the host crate; why `unreachable_pub` is expected: `rmp/mod.rs`.
#[expect(
    unreachable_pub,
    reason = "public for the host crate, crate-private here; see rmp/mod.rs"
)]
pub(crate) mod model;

use kernel::prelude::*;

#[kunit_tests(snp_host_model)]
mod tests {
    use crate::directmap::model::Level;
    use crate::fault::model::ErrorCode;

    // The host crate tests these files with std; this runs them as the module
    // compiles them (kernel target, kernel flags).
    #[test]
    fn error_code_rmp_bit() {
        let code = ErrorCode::from_raw(0x8000_0003);
        assert!(code.rmp() && code.write() && code.present() && !code.user());
    }

    #[test]
    fn direct_map_regions() {
        assert_eq!(Level::Size2M.region_start(0x12345), 0x12200);
        assert_eq!(Level::Size1G.pages(), 1 << 18);
    }
}
