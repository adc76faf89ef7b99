// SPDX-License-Identifier: GPL-2.0

//! x86 page-fault error codes, decoded as far as RMP fault handling needs.
//!
//! The CPU pushes an error code with every #PF; on an SEV-SNP host bit 31 says
//! that the access failed the RMP check rather than the page tables. The
//! decisions built on it (split, retry, SIGBUS, report) belong to the fault
//! issue; this file is the one statement of the bit layout.

/// Declares the single-bit flags of [`ErrorCode`], once, with their bit numbers.
macro_rules! error_code_bits {
    ($($(#[$doc:meta])* $name:ident = $bit:literal;)*) => {
        impl ErrorCode {
            $(
                $(#[$doc])*
                pub const fn $name(self) -> bool {
                    self.0 & (1 << $bit) != 0
                }
            )*
        }
    };
}

/// A page-fault error code as the CPU reports it.
///
/// # Examples
///
/// ```
/// use snp_host_model::fault::model::ErrorCode;
///
/// // A user-mode write that failed the RMP check.
/// let code = ErrorCode::new((1 << 31) | (1 << 2) | (1 << 1) | 1);
/// assert!(code.rmp() && code.write() && code.user() && code.present());
/// assert!(!ErrorCode::new(0b10).rmp());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode(u64);

impl ErrorCode {
    /// Wraps the raw error code of a page fault.
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }

    /// Returns the raw error code.
    pub const fn raw(self) -> u64 {
        self.0
    }
}

error_code_bits! {
    /// The page was present: a protection or RMP violation, not a missing page.
    present = 0;
    /// The access was a write.
    write = 1;
    /// The access came from user mode.
    user = 2;
    /// A reserved bit was set in a paging-structure entry.
    reserved_bit = 3;
    /// The access was an instruction fetch.
    instruction = 4;
    /// A protection-key check failed.
    protection_key = 5;
    /// The access was a shadow-stack access.
    shadow_stack = 6;
    /// The fault came from an SGX access-control check.
    sgx = 15;
    /// The access failed the SEV-SNP RMP check (`X86_PF_RMP`).
    rmp = 31;
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
                assert_eq!(get(ErrorCode::new(1 << bit)), bit == other);
                assert_eq!(get(ErrorCode::new(!(1 << bit))), bit != other);
            }
        }
        assert_eq!(ErrorCode::new(0x8000_0007).raw(), 0x8000_0007);
    }
}
