// SPDX-License-Identifier: GPL-2.0

//! The kernel's RMP hook points (`struct snp_rmp_ops` in `asm/sev.h`, added
//! by the project's patches): registering the module as their provider.
//!
//! The kernel calls the provider from its fault path and from the mm paths
//! that make a read-only mapping writable. Those callbacks run in atomic
//! context (page-table spinlocks held, sometimes interrupts off, or during an
//! oops), so a [`Provider`]'s methods must not sleep or take sleeping locks.
//!
//! There is at most one provider (the kernel refuses a second one), so the
//! callbacks find it through one global pointer, set before the ops are
//! registered and cleared after unregistration returned, which waits for every
//! running callback.

use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::{
    bindings,
    error::to_result,
    ffi::{c_int, c_ulong},
    prelude::*,
    sync::Arc,
    ModuleMetadata, //
};

/// A fault on a user address, as the kernel's fault path describes it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UserFault {
    /// The faulting user address.
    pub(crate) address: usize,
    /// The page-fault error code (`X86_PF_*`).
    pub(crate) error_code: u64,
    /// The PFN of the 4K page at `address`, if it is mapped.
    pub(crate) pfn: Option<u64>,
    /// The size of the user mapping, as a `PG_LEVEL_*`: 1 (4K), 2 (2M) or 3 (1G).
    pub(crate) level: u32,
    /// An anonymous PMD-mapped THP that the kernel can split (never hugetlbfs).
    pub(crate) splittable: bool,
    /// Earlier faults at this address that made no progress.
    pub(crate) repeats: u32,
}

/// What the kernel does next with a [`UserFault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Not an RMP matter: the normal fault handling runs.
    Proceed,
    /// Split the huge mapping, then retry.
    Split,
    /// Retry the access.
    Retry,
    /// SIGBUS (user mode) or `-EFAULT` (a kernel access through the address).
    Sigbus,
}

/// The kernel path that asks whether a page may become writable
/// (`enum mm_write_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteCheck {
    /// A write fault would reuse the page (GUP writes, uaccess fix-ups): refusing
    /// fails the access.
    WpFault,
    /// `mprotect()`, NUMA hinting or uffd would make it writable: it stays read-only.
    Mprotect,
    /// A forced GUP write (ptrace) without a fault: it takes the fault instead.
    GupForce,
    /// The mm maps it writable on its own (a whole THP, a split): it does not.
    Remap,
    /// A kernel write through the kernel's own mapping faulted: a question only.
    Kernel,
    /// A reason this module does not know.
    Other,
}

/// What the kernel's hook points ask the module. Every method runs in atomic
/// context: it must not sleep, allocate with `GFP_KERNEL` or take a mutex.
pub(crate) trait Provider: Send + Sync + 'static {
    /// Decides a fault on a user address.
    fn user_fault(&self, fault: &UserFault) -> Answer;
    /// Returns whether any page of `[pfn, pfn + pages)` must not become writable.
    fn write_refused(&self, pfn: u64, pages: u64, check: WriteCheck) -> bool;
    /// Reports a kernel-mode write fault on the direct-map page `pfn` that the
    /// module says is guest-owned; the kernel oopses or fixes up afterwards.
    fn report_kernel_fault(&self, pfn: u64, address: usize, error_code: u64);
    /// Reports a user fault the kernel gave up on because it repeated without
    /// progress (the access is refused).
    fn report_no_progress(&self, fault: &UserFault);
}

/// The registered provider, as a type-erased `Arc::as_ptr()`.
static PROVIDER: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(core::ptr::null_mut());

/// Returns the registered provider.
///
/// # Safety
///
/// Only the callbacks of a [`Registration<T>`] call this, with `T` the type that
/// registration stored; the kernel calls them only while the ops are registered.
unsafe fn provider<'a, T: Provider>() -> Option<&'a T> {
    let p = PROVIDER.load(Ordering::Acquire).cast::<T>();
    // SAFETY: `p` is null or the `Arc<T>` that the registration holds until after
    // `snp_rmp_unregister()` returned, which waits for every running callback.
    unsafe { p.as_ref() }
}

fn decision(a: Answer) -> bindings::snp_fault_decision {
    match a {
        Answer::Proceed => bindings::snp_fault_decision::SNP_FAULT_PROCEED,
        Answer::Split => bindings::snp_fault_decision::SNP_FAULT_SPLIT,
        Answer::Retry => bindings::snp_fault_decision::SNP_FAULT_RETRY,
        Answer::Sigbus => bindings::snp_fault_decision::SNP_FAULT_SIGBUS,
    }
}

/// `snp_rmp_ops.user_fault`.
///
/// # Safety
///
/// Called by the kernel only, with a valid `info`, while the ops of a
/// `Registration<T>` are registered.
unsafe extern "C" fn user_fault_cb<T: Provider>(
    info: *const bindings::snp_fault_info,
) -> bindings::snp_fault_decision {
    // SAFETY: The kernel passes a valid `info` for the duration of the call.
    let info = unsafe { &*info };
    // SAFETY: A callback of `Registration<T>` (see `provider`).
    let Some(p) = (unsafe { provider::<T>() }) else {
        return decision(Answer::Proceed);
    };
    decision(p.user_fault(&UserFault::from(info)))
}

impl From<&bindings::snp_fault_info> for UserFault {
    fn from(info: &bindings::snp_fault_info) -> Self {
        Self {
            address: info.address,
            // CAST: `unsigned long` is 64 bits on x86-64.
            error_code: info.error_code as u64,
            pfn: (info.pfn != u64::MAX).then_some(info.pfn),
            level: u32::try_from(info.level).unwrap_or(0),
            splittable: info.splittable,
            repeats: info.repeats,
        }
    }
}

/// `snp_rmp_ops.report_no_progress`.
///
/// # Safety
///
/// Called by the kernel only, with a valid `info`, while the ops of a
/// `Registration<T>` are registered.
unsafe extern "C" fn report_no_progress_cb<T: Provider>(info: *const bindings::snp_fault_info) {
    // SAFETY: The kernel passes a valid `info` for the duration of the call.
    let info = unsafe { &*info };
    // SAFETY: A callback of `Registration<T>` (see `provider`).
    if let Some(p) = unsafe { provider::<T>() } {
        p.report_no_progress(&UserFault::from(info));
    }
}

/// `snp_rmp_ops.write_refused`.
///
/// # Safety
///
/// Called by the kernel only, while the ops of a `Registration<T>` are registered.
unsafe extern "C" fn write_refused_cb<T: Provider>(pfn: u64, nr: c_ulong, why: c_int) -> bool {
    // SAFETY: A callback of `Registration<T>` (see `provider`).
    let Some(p) = (unsafe { provider::<T>() }) else {
        return false;
    };
    // CAST: `why` is one of the `MM_WRITE_*` constants (`enum mm_write_reason`), all
    // small and positive.
    let check = match why as u32 {
        bindings::mm_write_reason_MM_WRITE_WP_FAULT => WriteCheck::WpFault,
        bindings::mm_write_reason_MM_WRITE_MPROTECT => WriteCheck::Mprotect,
        bindings::mm_write_reason_MM_WRITE_GUP_FORCE => WriteCheck::GupForce,
        bindings::mm_write_reason_MM_WRITE_REMAP => WriteCheck::Remap,
        bindings::mm_write_reason_MM_WRITE_KERNEL => WriteCheck::Kernel,
        _ => WriteCheck::Other,
    };
    // CAST: `unsigned long` is 64 bits on x86-64.
    p.write_refused(pfn, nr as u64, check)
}

/// `snp_rmp_ops.report_kernel_fault`.
///
/// # Safety
///
/// Called by the kernel only, while the ops of a `Registration<T>` are registered.
unsafe extern "C" fn report_kernel_fault_cb<T: Provider>(
    pfn: u64,
    address: c_ulong,
    error_code: c_ulong,
) {
    // SAFETY: A callback of `Registration<T>` (see `provider`).
    if let Some(p) = unsafe { provider::<T>() } {
        // CAST: `unsigned long` is 64 bits on x86-64.
        p.report_kernel_fault(pfn, address, error_code as u64);
    }
}

/// The ops table the kernel reads while it is registered.
struct Ops(bindings::snp_rmp_ops);

// SAFETY: The table is written once, before it is registered, and only read (by the
// kernel, on any CPU) afterwards; its `owner` pointer is this module's `struct
// module`, valid for as long as the module is loaded.
unsafe impl Send for Ops {}
// SAFETY: As above: shared access is read-only.
unsafe impl Sync for Ops {}

/// The module registered as the provider of the kernel's RMP hooks; dropping it
/// unregisters, after which no callback runs any more.
///
/// # Invariants
///
/// `ops` is registered with the kernel, and `PROVIDER` points to `provider`.
pub(crate) struct Registration<T: Provider> {
    ops: Pin<KBox<Ops>>,
    /// Keeps the provider the callbacks reach through `PROVIDER` alive.
    _provider: Arc<T>,
}

impl<T: Provider> Registration<T> {
    /// Registers `provider`; `user_wp` says that the module write-protects the user
    /// mappings of guest pages, `hardware` that it drives the real RMP.
    ///
    /// # Errors
    ///
    /// `EBUSY` if another provider is registered, `EINVAL` if `hardware` does not
    /// match what the kernel knows of the host.
    pub(crate) fn new(provider: Arc<T>, hardware: bool, user_wp: bool) -> Result<Self> {
        let mut flags = 0;
        if hardware {
            flags |= bindings::SNP_RMP_OPS_HW;
        }
        if user_wp {
            flags |= bindings::SNP_RMP_OPS_USER_WP;
        }
        let ops = KBox::pin(
            Ops(bindings::snp_rmp_ops {
                owner: <crate::LocalModule as ModuleMetadata>::THIS_MODULE.as_ptr(),
                flags,
                user_fault: Some(user_fault_cb::<T>),
                write_refused: Some(write_refused_cb::<T>),
                report_kernel_fault: Some(report_kernel_fault_cb::<T>),
                report_no_progress: Some(report_no_progress_cb::<T>),
            }),
            GFP_KERNEL,
        )?;
        let raw = Arc::as_ptr(&provider)
            .cast_mut()
            .cast::<core::ffi::c_void>();
        if PROVIDER
            .compare_exchange(
                core::ptr::null_mut(),
                raw,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return Err(EBUSY);
        }
        // SAFETY: `ops` is pinned and outlives its registration (unregistered in `drop`).
        if let Err(e) = to_result(unsafe { bindings::snp_rmp_register(&ops.0) }) {
            PROVIDER.store(core::ptr::null_mut(), Ordering::Release);
            return Err(e);
        }
        // INVARIANT: registered just above, with `PROVIDER` set first.
        Ok(Self {
            ops,
            _provider: provider,
        })
    }
}

impl<T: Provider> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: `ops` is registered (type invariant); this waits for running callbacks.
        unsafe { bindings::snp_rmp_unregister(&self.ops.0) };
        PROVIDER.store(core::ptr::null_mut(), Ordering::Release);
    }
}
