// SPDX-License-Identifier: GPL-2.0

//! `/dev/snp_host` and its read-only ioctls.

use crate::abi;
use crate::error::{Error, Result};
use rustix::{
    fd::OwnedFd,
    fs::{Mode, OFlags},
    io::Errno,
    ioctl::{ioctl, Getter, Opcode},
};

/// The module's device node.
pub(crate) const PATH: &str = "/dev/snp_host";

/// An open `/dev/snp_host`.
pub(crate) struct Device(OwnedFd);

/// Asks the module for the `T` that ioctl `OP` reports.
///
/// # Safety
///
/// `OP` is one of the `_IOR` numbers of `include/uapi/linux/snp_host.h` and
/// `T` the struct that number was encoded with (its size is in the number;
/// `abi.rs` and its header check tie the two).
unsafe fn get<const OP: Opcode, T>(dev: &Device) -> std::result::Result<T, Errno> {
    // SAFETY: The caller guarantees that `OP` is a read ioctl whose argument
    // is a `T`; the kernel writes exactly `size_of::<T>()` bytes.
    unsafe { ioctl(&dev.0, Getter::<OP, T>::new()) }
}

impl Device {
    /// Opens the device (root, `CAP_SYS_ADMIN`).
    pub(crate) fn open() -> Result<Self> {
        rustix::fs::open(PATH, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map(Self)
            .map_err(|e| match e {
                Errno::NOENT => Error::msg(format!(
                    "{PATH}: no such device: snp_host.ko is not loaded (insmod snp_host.ko)"
                )),
                Errno::PERM | Errno::ACCESS => Error::msg(format!(
                    "{PATH}: {}: it needs root (CAP_SYS_ADMIN)",
                    std::io::Error::from(e)
                )),
                e => Error::io(PATH, &e.into()),
            })
    }

    /// `SNP_HOST_GET_STATUS`.
    pub(crate) fn status(&self) -> Result<abi::Status> {
        // SAFETY: GET_STATUS is `_IOR(.., struct snp_host_status)`, mirrored by `Status`.
        unsafe { get::<{ abi::GET_STATUS }, abi::Status>(self) }
            .map_err(|e| Error::io("SNP_HOST_GET_STATUS", &e.into()))
    }

    /// `SNP_HOST_GET_STATS`.
    pub(crate) fn stats(&self) -> Result<abi::Stats> {
        // SAFETY: GET_STATS is `_IOR(.., struct snp_host_stats)`, mirrored by `Stats`.
        unsafe { get::<{ abi::GET_STATS }, abi::Stats>(self) }
            .map_err(|e| Error::io("SNP_HOST_GET_STATS", &e.into()))
    }

    /// `SNP_HOST_GET_FAULT_STATS`; `None` from a module without it (`ENOTTY`).
    pub(crate) fn fault_stats(&self) -> Result<Option<abi::FaultStats>> {
        // SAFETY: GET_FAULT_STATS is `_IOR(.., struct snp_host_fault_stats)`,
        // mirrored by `FaultStats`.
        optional(
            unsafe { get::<{ abi::GET_FAULT_STATS }, abi::FaultStats>(self) },
            "SNP_HOST_GET_FAULT_STATS",
        )
    }

    /// `SNP_HOST_GET_KVM_STATS`; `None` from a module without it (`ENOTTY`).
    pub(crate) fn kvm_stats(&self) -> Result<Option<abi::KvmStats>> {
        // SAFETY: GET_KVM_STATS is `_IOR(.., struct snp_host_kvm_stats)`,
        // mirrored by `KvmStats`.
        optional(
            unsafe { get::<{ abi::GET_KVM_STATS }, abi::KvmStats>(self) },
            "SNP_HOST_GET_KVM_STATS",
        )
    }
}

/// An ioctl that an older module may not have: `ENOTTY` is "not there".
fn optional<T>(r: std::result::Result<T, Errno>, what: &str) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Errno::NOTTY) => Ok(None),
        Err(e) => Err(Error::io(what, &e.into())),
    }
}
