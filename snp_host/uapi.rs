// SPDX-License-Identifier: GPL-2.0

//! The `/dev/snp_host` ABI (`include/uapi/linux/snp_host.h`) and request checks.
//!
//! The structs, ioctl numbers and constants live in the core-only
//! `snp_host/abi.rs`, which the build checks against the C header; this file
//! lets the kernel copy them from and to user space and checks requests.
//! Checking a request is pure: it decides the errno before anything is pinned
//! or changed.

use crate::rmp::model::{PageSize, GPA_LIMIT};
use kernel::{
    prelude::*,
    transmute::{AsBytes, FromBytes},
};

#[path = "abi.rs"]
mod abi;

pub(crate) use abi::{
    FaultStats, //
    KvmStats,
    Page,
    Range,
    Stats,
    Status,
    BACKEND_EMULATED,
    BACKEND_HARDWARE,
    CONVERT_RANGE,
    FLAG_KERNEL_HOOKS,
    FLAG_KVM,
    FLAG_RMPREAD,
    FLAG_SEGMENTED_RMP,
    FLAG_USER_WP,
    GET_FAULT_STATS,
    GET_KVM_STATS,
    GET_STATS,
    GET_STATUS,
    LOOKUP,
    MAKE_PRIVATE,
    MAKE_SHARED,
    PSMASH,
};

// SAFETY: `repr(C)` integers only, and the header check (`abi.rs`) shows that
// each field sits where the C struct has it with no padding left between the
// fields or at the end, so every byte pattern is a valid value and every byte
// of a value is initialised.
unsafe impl FromBytes for Status {}
// SAFETY: As above.
unsafe impl AsBytes for Status {}
// SAFETY: As above.
unsafe impl FromBytes for Page {}
// SAFETY: As above.
unsafe impl AsBytes for Page {}
// SAFETY: As above.
unsafe impl FromBytes for Stats {}
// SAFETY: As above.
unsafe impl AsBytes for Stats {}
// SAFETY: As above.
unsafe impl AsBytes for FaultStats {}
// SAFETY: As above.
unsafe impl AsBytes for KvmStats {}
// SAFETY: As above.
unsafe impl FromBytes for Range {}
// SAFETY: As above.
unsafe impl AsBytes for Range {}

/// A checked MAKE_PRIVATE request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PrivateRequest {
    pub(crate) hva: usize,
    pub(crate) size: PageSize,
    pub(crate) gpa: u64,
    pub(crate) asid: u32,
    pub(crate) immutable: bool,
}

/// Decodes `level` (0 = 4K, 1 = 2M).
pub(crate) fn page_size(level: u8) -> Result<PageSize> {
    match level {
        abi::LEVEL_4K => Ok(PageSize::Size4K),
        abi::LEVEL_2M => Ok(PageSize::Size2M),
        _ => Err(EINVAL),
    }
}

/// Returns `hva` if it is aligned to `size`.
fn aligned_hva(hva: u64, size: PageSize) -> Result<usize> {
    if hva % size.bytes() != 0 {
        return Err(EINVAL);
    }
    usize::try_from(hva).map_err(|_| EFAULT)
}

/// A checked CONVERT_RANGE request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RangeRequest {
    pub(crate) hva: usize,
    pub(crate) npages: u64,
    pub(crate) size: PageSize,
    pub(crate) to_private: bool,
    pub(crate) gpa: u64,
    pub(crate) asid: u32,
    pub(crate) immutable: bool,
}

impl RangeRequest {
    /// Returns the MAKE_PRIVATE request of page `i` of the range.
    pub(crate) fn private_page(&self, i: u64) -> PrivateRequest {
        // `Range::request` checked that the whole range fits.
        let offset = i * self.size.bytes();
        PrivateRequest {
            // CAST: the range fits in the address space (`Range::request`).
            hva: self.hva + offset as usize,
            size: self.size,
            gpa: self.gpa + offset,
            asid: self.asid,
            immutable: self.immutable,
        }
    }

    /// Returns the user address of page `i` of the range.
    pub(crate) fn hva_of(&self, i: u64) -> usize {
        // CAST: as in `private_page`.
        self.hva + (i * self.size.bytes()) as usize
    }
}

impl Range {
    /// Checks a CONVERT_RANGE request against the ABI and an ASID limit of `max_asid`.
    pub(crate) fn request(&self, max_asid: u32) -> Result<RangeRequest> {
        if self.reserved0 != 0 || self.reserved.iter().any(|&r| r != 0) || self.to_private > 1 {
            return Err(EINVAL);
        }
        let size = page_size(self.level)?;
        let hva = aligned_hva(self.hva, size)?;
        let bytes = self.npages.checked_mul(size.bytes()).ok_or(EINVAL)?;
        if self.npages == 0 || self.hva.checked_add(bytes).is_none() {
            return Err(EINVAL);
        }
        let to_private = self.to_private == 1;
        if to_private {
            // The first and the last page must both be valid MAKE_PRIVATE requests.
            let end = self.gpa.checked_add(bytes - size.bytes()).ok_or(EINVAL)?;
            let page = Page {
                hva: self.hva,
                gpa: self.gpa,
                asid: self.asid,
                level: self.level,
                immutable: self.immutable,
                ..Page::default()
            };
            page.private_request(max_asid)?;
            Page { gpa: end, ..page }.private_request(max_asid)?;
        }
        Ok(RangeRequest {
            hva,
            npages: self.npages,
            size,
            to_private,
            gpa: self.gpa,
            asid: self.asid,
            immutable: self.immutable == 1,
        })
    }
}

impl Page {
    /// Checks the reserved fields.
    fn check_reserved(&self) -> Result {
        if self.reserved.iter().any(|&r| r != 0) {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Checks a MAKE_PRIVATE request against the ABI and an ASID limit of `max_asid`.
    pub(crate) fn private_request(&self, max_asid: u32) -> Result<PrivateRequest> {
        self.check_reserved()?;
        let size = page_size(self.level)?;
        let hva = aligned_hva(self.hva, size)?;
        if self.gpa % size.bytes() != 0 || self.gpa >= GPA_LIMIT {
            return Err(EINVAL);
        }
        if self.asid == 0 || self.asid > max_asid || self.immutable > 1 {
            return Err(EINVAL);
        }
        Ok(PrivateRequest {
            hva,
            size,
            gpa: self.gpa,
            asid: self.asid,
            immutable: self.immutable == 1,
        })
    }

    /// Checks a MAKE_SHARED request: the page at `hva`, assigned at `level`.
    pub(crate) fn shared_request(&self) -> Result<(usize, PageSize)> {
        self.check_reserved()?;
        let size = page_size(self.level)?;
        Ok((aligned_hva(self.hva, size)?, size))
    }

    /// Checks a PSMASH request: a 2M-aligned `hva`.
    pub(crate) fn psmash_request(&self) -> Result<usize> {
        self.check_reserved()?;
        aligned_hva(self.hva, PageSize::Size2M)
    }

    /// Checks a LOOKUP request: any `hva` of the caller.
    pub(crate) fn lookup_request(&self) -> Result<usize> {
        self.check_reserved()?;
        usize::try_from(self.hva).map_err(|_| EFAULT)
    }
}

#[kunit_tests(snp_host_uapi)]
mod tests {
    use super::*;

    fn page(hva: u64, gpa: u64, asid: u32, level: u8) -> Page {
        Page {
            hva,
            gpa,
            asid,
            level,
            ..Page::default()
        }
    }

    #[test]
    fn private_requests_are_checked() {
        let ok = page(0x20_0000, 0x40_0000, 1, 1);
        assert!(ok.private_request(509).is_ok());
        let bad = [
            page(0x20_1000, 0x40_0000, 1, 1),   // hva not 2M-aligned
            page(0x20_0000, 0x40_1000, 1, 1),   // gpa not 2M-aligned
            page(0x20_0000, 0x40_0000, 0, 1),   // ASID 0
            page(0x20_0000, 0x40_0000, 510, 1), // beyond the limit
            page(0x20_0000, 0x40_0000, 1, 2),   // no such level
            page(0x20_0800, 0x40_0000, 1, 0),   // hva not 4K-aligned
            page(0x1000, GPA_LIMIT, 1, 0),      // GPA beyond the RMP's field
        ];
        for p in bad {
            assert_eq!(p.private_request(509).err(), Some(EINVAL));
        }
        let mut reserved = ok;
        reserved.reserved[1] = 1;
        assert_eq!(reserved.private_request(509).err(), Some(EINVAL));
        let mut immutable = ok;
        immutable.immutable = 2;
        assert_eq!(immutable.private_request(509).err(), Some(EINVAL));
    }
}
