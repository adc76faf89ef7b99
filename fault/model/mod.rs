// SPDX-License-Identifier: GPL-2.0

//! x86 page-fault error codes, decoded as far as RMP fault handling needs.
//!
//! The CPU pushes an error code with every #PF; on an SEV-SNP host bit 31 says
//! that the access failed the RMP check rather than the page tables. The
//! decisions built on it (split, retry, SIGBUS, report) belong to the fault
//! issue; this file is the one statement of the bit layout.

pub mod decide;

use crate::rmp::model::bits::bitfield;

bitfield! {
    /// A page-fault error code as the CPU reports it.
    ///
    /// # Examples
    ///
    /// ```
    /// use snp_host_model::fault::model::ErrorCode;
    ///
    /// // A user-mode write that failed the RMP check.
    /// let code = ErrorCode::from_raw((1 << 31) | (1 << 2) | (1 << 1) | 1);
    /// assert!(code.rmp() && code.write() && code.user() && code.present());
    /// assert!(!ErrorCode::from_raw(0b10).rmp());
    /// ```
    pub struct ErrorCode {
        /// The page was present: a protection or RMP violation, not a missing page.
        0:0 present, with_present: bool;
        /// The access was a write.
        1:1 write, with_write: bool;
        /// The access came from user mode.
        2:2 user, with_user: bool;
        /// A reserved bit was set in a paging-structure entry.
        3:3 reserved_bit, with_reserved_bit: bool;
        /// The access was an instruction fetch.
        4:4 instruction, with_instruction: bool;
        /// A protection-key check failed.
        5:5 protection_key, with_protection_key: bool;
        /// The access was a shadow-stack access.
        6:6 shadow_stack, with_shadow_stack: bool;
        /// The fault came from an SGX access-control check.
        15:15 sgx, with_sgx: bool;
        /// The access failed the SEV-SNP RMP check (`X86_PF_RMP`).
        31:31 rmp, with_rmp: bool;
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    type Getter = fn(ErrorCode) -> bool;

    #[test]
    fn each_bit_decodes_alone() {
        let bits: [(u32, Getter); 9] = [
            (0, ErrorCode::present),
            (1, ErrorCode::write),
            (2, ErrorCode::user),
            (3, ErrorCode::reserved_bit),
            (4, ErrorCode::instruction),
            (5, ErrorCode::protection_key),
            (6, ErrorCode::shadow_stack),
            (15, ErrorCode::sgx),
            (31, ErrorCode::rmp),
        ];
        for (bit, _) in bits {
            for (other, get) in bits {
                assert_eq!(get(ErrorCode::from_raw(1 << bit)), bit == other);
                assert_eq!(get(ErrorCode::from_raw(!(1 << bit))), bit != other);
            }
        }
        assert_eq!(ErrorCode::from_raw(0x8000_0007).raw(), 0x8000_0007);
    }
}
