// SPDX-License-Identifier: GPL-2.0

//! The `/dev/snp_host` ABI as plain data: the structs, ioctl numbers and
//! constants of `include/uapi/linux/snp_host.h`, in `core` only.
//!
//! The module (through `snp_host/uapi.rs`) and the host crate compile this
//! same file. Neither trusts it to match the header: each build compiles
//! `snp_host/abi_header.c` against the header, which turns every size,
//! alignment, field offset, field size, ioctl number and constant the header
//! defines into a Rust assertion about the items below, and includes the
//! result at the end of this file. A mismatch is a compile error of the
//! module (`snp_host/Kbuild`) and of `cargo build` (`build.rs`) alike, naming
//! the item that differs.

/// The ioctl type of `/dev/snp_host`.
pub(crate) const TYPE: u32 = 0xb9;

/// `_IOC_WRITE` of `asm-generic/ioctl.h`: user space writes the argument.
const IOC_WRITE: u32 = 1;
/// `_IOC_READ`: user space reads the argument back.
const IOC_READ: u32 = 2;

/// Encodes an ioctl number of [`TYPE`] as `_IOC()` of `asm-generic/ioctl.h` does.
///
/// `size` is that of one of the structs below (at most 128 bytes, far below
/// the 14 bits the encoding has for it).
const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    // CAST: the structs are a few dozen bytes; the header check below compares
    // every resulting number with the one the C compiler computed.
    (dir << 30) | ((size as u32) << 16) | (TYPE << 8) | nr
}

/// `_IOR(TYPE, nr, T)`.
const fn ior<T>(nr: u32) -> u32 {
    ioc(IOC_READ, nr, core::mem::size_of::<T>())
}

/// `_IOWR(TYPE, nr, T)`.
const fn iowr<T>(nr: u32) -> u32 {
    ioc(IOC_READ | IOC_WRITE, nr, core::mem::size_of::<T>())
}

/// Returns the size of the field that `field` projects to.
///
/// The header check uses it to compare the width of each field with C's
/// `sizeof`; `field` is never called.
const fn field_size<T, F>(_field: fn(&T) -> &F) -> usize {
    core::mem::size_of::<F>()
}

/// `struct snp_host_status`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Status {
    pub(crate) backend: u32,
    pub(crate) flags: u32,
    pub(crate) rmp_base: u64,
    pub(crate) rmp_end: u64,
    pub(crate) max_pfn: u64,
    pub(crate) directmap_policy: u32,
    pub(crate) reserved: u32,
}

/// `struct snp_host_page`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Page {
    pub(crate) hva: u64,
    pub(crate) gpa: u64,
    pub(crate) asid: u32,
    pub(crate) level: u8,
    pub(crate) immutable: u8,
    pub(crate) assigned: u8,
    pub(crate) validated: u8,
    pub(crate) pfn: u64,
    pub(crate) reserved: [u64; 2],
}

/// `struct snp_host_stats`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Stats {
    pub(crate) private_4k: u64,
    pub(crate) private_2m: u64,
    pub(crate) make_private: u64,
    pub(crate) make_shared: u64,
    pub(crate) psmash: u64,
    pub(crate) transient_retries: u64,
    pub(crate) failures: u64,
    pub(crate) leaked_pages: u64,
    pub(crate) dm_splits_2m: u64,
    pub(crate) dm_splits_1g: u64,
    pub(crate) dm_merges_2m: u64,
    pub(crate) dm_merges_1g: u64,
    pub(crate) dm_unmapped_pages: u64,
    pub(crate) tlb_flushes: u64,
    pub(crate) dm_cpa_calls: u64,
    pub(crate) dm_walks: u64,
}

/// `struct snp_host_fault_stats`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct FaultStats {
    pub(crate) user_faults: u64,
    pub(crate) thp_splits: u64,
    pub(crate) sigbus: u64,
    pub(crate) no_progress: u64,
    pub(crate) uaccess_refused: u64,
    pub(crate) gup_refused: u64,
    pub(crate) kernel_faults: u64,
    pub(crate) reserved: [u64; 9],
}

/// `struct snp_host_kvm_stats`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct KvmStats {
    pub(crate) make_private: u64,
    pub(crate) make_shared: u64,
    pub(crate) psmash: u64,
    pub(crate) lookups: u64,
    pub(crate) leaked_pages: u64,
    pub(crate) private_4k_now: u64,
    pub(crate) failures: u64,
    pub(crate) reserved: [u64; 9],
}

/// `struct snp_host_range`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Range {
    pub(crate) hva: u64,
    pub(crate) npages: u64,
    pub(crate) gpa: u64,
    pub(crate) asid: u32,
    pub(crate) level: u8,
    pub(crate) to_private: u8,
    pub(crate) immutable: u8,
    pub(crate) reserved0: u8,
    pub(crate) done: u64,
    pub(crate) reserved: [u64; 2],
}

/// `SNP_HOST_GET_STATUS`.
pub(crate) const GET_STATUS: u32 = ior::<Status>(0x00);
/// `SNP_HOST_LOOKUP`.
pub(crate) const LOOKUP: u32 = iowr::<Page>(0x01);
/// `SNP_HOST_MAKE_PRIVATE`.
pub(crate) const MAKE_PRIVATE: u32 = iowr::<Page>(0x02);
/// `SNP_HOST_MAKE_SHARED`.
pub(crate) const MAKE_SHARED: u32 = iowr::<Page>(0x03);
/// `SNP_HOST_PSMASH`.
pub(crate) const PSMASH: u32 = iowr::<Page>(0x04);
/// `SNP_HOST_CONVERT_RANGE`.
pub(crate) const CONVERT_RANGE: u32 = iowr::<Range>(0x05);
/// `SNP_HOST_GET_STATS`.
pub(crate) const GET_STATS: u32 = ior::<Stats>(0x07);
/// `SNP_HOST_GET_FAULT_STATS`.
pub(crate) const GET_FAULT_STATS: u32 = ior::<FaultStats>(0x08);
/// `SNP_HOST_GET_KVM_STATS`.
pub(crate) const GET_KVM_STATS: u32 = ior::<KvmStats>(0x09);

/// `snp_host_status.backend`: the hardware RMP.
pub(crate) const BACKEND_HARDWARE: u32 = 1;
/// `snp_host_status.backend`: the emulated RMP.
pub(crate) const BACKEND_EMULATED: u32 = 2;
/// `snp_host_status.flags`: the CPU has RMPREAD.
pub(crate) const FLAG_RMPREAD: u32 = 1 << 0;
/// `snp_host_status.flags`: the RMP is segmented.
pub(crate) const FLAG_SEGMENTED_RMP: u32 = 1 << 1;
/// `snp_host_status.flags`: the kernel's fault path calls this module.
pub(crate) const FLAG_KERNEL_HOOKS: u32 = 1 << 2;
/// `snp_host_status.flags`: user mappings of guest pages are write-protected.
pub(crate) const FLAG_USER_WP: u32 = 1 << 3;
/// `snp_host_status.flags`: the module provides the kernel's RMP operations.
pub(crate) const FLAG_KVM: u32 = 1 << 4;
/// `snp_host_page.level` and `snp_host_range.level`: a 4K page.
pub(crate) const LEVEL_4K: u8 = 0;
/// `snp_host_page.level` and `snp_host_range.level`: a 2M page.
pub(crate) const LEVEL_2M: u8 = 1;

// The header check, generated from `include/uapi/linux/snp_host.h`.
include!(env!("SNP_HOST_ABI_HEADER"));
