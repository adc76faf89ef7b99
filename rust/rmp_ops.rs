// SPDX-License-Identifier: GPL-2.0

//! The kernel's RMP hook points (`struct snp_rmp_ops` in `asm/sev.h`, added
//! by the project's patches): registering the module as their provider.
//!
//! The kernel calls the provider from its fault path and from the mm paths
//! that make a read-only mapping writable. Those callbacks run in atomic
//! context (page-table spinlocks held, sometimes interrupts off, or during an
//! oops), so a [`Provider`]'s methods must not sleep or take sleeping locks.
//! It also serves the kernel's RMP operations, which KVM and the CCP driver
//! call ([`RmpOperations`]): those may sleep, except the lookup.
//!
//! There is at most one provider (the kernel refuses a second one), so the
//! callbacks find it through one global pointer, set before the ops are
//! registered and cleared after unregistration returned, which waits for every
//! running callback.

use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::{
    bindings,
    error::to_result,
    ffi::{c_int, c_uint, c_ulong},
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

/// The size of a page the kernel's RMP operations name (`enum pg_level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    /// `PG_LEVEL_4K`.
    Size4K,
    /// `PG_LEVEL_2M`.
    Size2M,
}

impl Level {
    /// Decodes a `PG_LEVEL_*` from the kernel: only 4K and 2M are RMP page sizes.
    fn from_c(level: c_int) -> Result<Self> {
        // CAST: `enum pg_level` values are small and positive.
        match level as u32 {
            bindings::pg_level_PG_LEVEL_4K => Ok(Self::Size4K),
            bindings::pg_level_PG_LEVEL_2M => Ok(Self::Size2M),
            _ => Err(EINVAL),
        }
    }

    fn to_c(self) -> c_int {
        let l = match self {
            Self::Size4K => bindings::pg_level_PG_LEVEL_4K,
            Self::Size2M => bindings::pg_level_PG_LEVEL_2M,
        };
        // CAST: `enum pg_level` values are small and positive.
        l as c_int
    }
}

/// Why a PSMASH for the kernel did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PsmashError {
    /// The instruction's return code (`PSMASH_FAIL_INUSE`, 3, makes KVM try again).
    Code(u32),
    /// The module refused before any instruction, or the RMP could not be reached.
    Errno(Error),
}

/// The kernel's RMP operations (`rmp_make_private()`, `rmp_make_shared()`,
/// `psmash()`, `snp_lookup_rmpentry()`, `__snp_leak_pages()` in
/// `arch/x86/virt/svm/sev.c`), as KVM and the CCP driver call them, and those of
/// software-protected VMs (`CONFIG_SNP_HOST_SW_RMP`).
///
/// Every method but [`RmpOperations::lookup`] runs in process context and may
/// sleep; `lookup` runs under KVM's `mmu_lock` and must not.
pub(crate) trait RmpOperations: Send + Sync + 'static {
    /// Returns whether `pfn` is assigned, and the size of the RMP entry that decides
    /// it (that of the 2M-aligned page).
    fn lookup(&self, pfn: u64) -> Result<(bool, Level)>;
    /// Assigns the `level` page at `pfn` to `asid` at `gpa`.
    fn make_private(&self, pfn: u64, gpa: u64, level: Level, asid: u32, immutable: bool) -> Result;
    /// Returns the `level` page at `pfn` to the host.
    fn make_shared(&self, pfn: u64, level: Level) -> Result;
    /// Splits the 2M entry at `pfn` into 512 4K entries.
    fn psmash(&self, pfn: u64) -> Result<(), PsmashError>;
    /// The caller gives the `pages` pages from `pfn` up for good.
    fn leak(&self, pfn: u64, pages: u64);
    /// A software-protected VM faults the guest_memfd pages from `pfn` in as private
    /// memory at `gpa`; called on every such fault.
    fn sw_make_private(&self, pfn: u64, gpa: u64, pages: u64) -> Result;
    /// guest_memfd frees the `pages` pages from `pfn`; only those that
    /// [`RmpOperations::sw_make_private`] made private concern the provider.
    fn sw_reclaim(&self, pfn: u64, pages: u64);
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

/// `snp_rmp_ops.lookup`.
///
/// # Safety
///
/// Called by the kernel only, with valid `assigned` and `level`, while the ops of a
/// `Registration<T>` are registered.
unsafe extern "C" fn lookup_cb<T: Provider + RmpOperations>(
    pfn: u64,
    assigned: *mut bool,
    level: *mut c_int,
) -> c_int {
    // SAFETY: A callback of `Registration<T>` (see `provider`).
    let Some(p) = (unsafe { provider::<T>() }) else {
        return ENODEV.to_errno();
    };
    match p.lookup(pfn) {
        Ok((a, l)) => {
            // SAFETY: The kernel passes valid pointers for the duration of the call.
            unsafe {
                *assigned = a;
                *level = l.to_c();
            }
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `snp_rmp_ops.make_private`.
///
/// # Safety
///
/// Called by the kernel only, while the ops of a `Registration<T>` are registered.
unsafe extern "C" fn make_private_cb<T: Provider + RmpOperations>(
    pfn: u64,
    gpa: u64,
    level: c_int,
    asid: u32,
    immutable: bool,
) -> c_int {
    // SAFETY: A callback of `Registration<T>` (see `provider`).
    let Some(p) = (unsafe { provider::<T>() }) else {
        return ENODEV.to_errno();
    };
    match Level::from_c(level).and_then(|l| p.make_private(pfn, gpa, l, asid, immutable)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `snp_rmp_ops.make_shared`.
///
/// # Safety
///
/// Called by the kernel only, while the ops of a `Registration<T>` are registered.
unsafe extern "C" fn make_shared_cb<T: Provider + RmpOperations>(pfn: u64, level: c_int) -> c_int {
    // SAFETY: A callback of `Registration<T>` (see `provider`).
    let Some(p) = (unsafe { provider::<T>() }) else {
        return ENODEV.to_errno();
    };
    match Level::from_c(level).and_then(|l| p.make_shared(pfn, l)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `snp_rmp_ops.psmash`.
///
/// # Safety
///
/// Called by the kernel only, while the ops of a `Registration<T>` are registered.
unsafe extern "C" fn psmash_cb<T: Provider + RmpOperations>(pfn: u64) -> c_int {
    // SAFETY: A callback of `Registration<T>` (see `provider`).
    let Some(p) = (unsafe { provider::<T>() }) else {
        return ENODEV.to_errno();
    };
    match p.psmash(pfn) {
        Ok(()) => 0,
        Err(PsmashError::Code(code)) => c_int::try_from(code).unwrap_or(c_int::MAX),
        Err(PsmashError::Errno(e)) => e.to_errno(),
    }
}

/// `snp_rmp_ops.leak`.
///
/// # Safety
///
/// Called by the kernel only, while the ops of a `Registration<T>` are registered.
unsafe extern "C" fn leak_cb<T: Provider + RmpOperations>(pfn: u64, npages: c_uint) {
    // SAFETY: A callback of `Registration<T>` (see `provider`).
    if let Some(p) = unsafe { provider::<T>() } {
        p.leak(pfn, u64::from(npages));
    }
}

/// `snp_rmp_ops.sw_make_private`.
///
/// # Safety
///
/// Called by the kernel only, while the ops of a `Registration<T>` are registered.
unsafe extern "C" fn sw_make_private_cb<T: Provider + RmpOperations>(
    pfn: u64,
    gpa: u64,
    npages: c_ulong,
) -> c_int {
    // SAFETY: A callback of `Registration<T>` (see `provider`).
    let Some(p) = (unsafe { provider::<T>() }) else {
        return ENODEV.to_errno();
    };
    // CAST: `unsigned long` is 64 bits on x86-64.
    match p.sw_make_private(pfn, gpa, npages as u64) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `snp_rmp_ops.sw_reclaim`.
///
/// # Safety
///
/// Called by the kernel only, while the ops of a `Registration<T>` are registered.
unsafe extern "C" fn sw_reclaim_cb<T: Provider + RmpOperations>(pfn: u64, npages: c_ulong) {
    // SAFETY: A callback of `Registration<T>` (see `provider`).
    if let Some(p) = unsafe { provider::<T>() } {
        // CAST: `unsigned long` is 64 bits on x86-64.
        p.sw_reclaim(pfn, npages as u64);
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
pub(crate) struct Registration<T: Provider + RmpOperations> {
    ops: Pin<KBox<Ops>>,
    /// Keeps the provider the callbacks reach through `PROVIDER` alive.
    _provider: Arc<T>,
}

impl<T: Provider + RmpOperations> Registration<T> {
    /// Registers `provider`; `user_wp` says that the module write-protects the user
    /// mappings of guest pages, `hardware` that it drives the real RMP.
    ///
    /// The provider serves the kernel's RMP operations from then on, and, without
    /// `hardware`, the guest_memfd conversions of software-protected VMs.
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
                lookup: Some(lookup_cb::<T>),
                make_private: Some(make_private_cb::<T>),
                make_shared: Some(make_shared_cb::<T>),
                psmash: Some(psmash_cb::<T>),
                leak: Some(leak_cb::<T>),
                // The kernel refuses them next to the real RMP: a real RMPUPDATE of
                // a page no SNP guest owns would break its VM.
                sw_make_private: if hardware {
                    None
                } else {
                    Some(sw_make_private_cb::<T>)
                },
                sw_reclaim: if hardware {
                    None
                } else {
                    Some(sw_reclaim_cb::<T>)
                },
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

impl<T: Provider + RmpOperations> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: `ops` is registered (type invariant); this waits for running callbacks.
        unsafe { bindings::snp_rmp_unregister(&self.ops.0) };
        PROVIDER.store(core::ptr::null_mut(), Ordering::Release);
    }
}

/// The kernel's RMP operations as KVM calls them (`asm/sev.h`, which bindgen
/// cannot digest), for the in-kernel tests that check they reach the module.
#[cfg(CONFIG_KUNIT = "y")]
pub(crate) mod sev {
    use kernel::{
        bindings,
        ffi::{c_int, c_ulong},
    };

    // The prototypes of `arch/x86/include/asm/sev.h`.
    extern "C" {
        pub(crate) fn snp_lookup_rmpentry(
            pfn: u64,
            assigned: *mut bool,
            level: *mut c_int,
        ) -> c_int;
        pub(crate) fn psmash(pfn: u64) -> c_int;
        pub(crate) fn rmp_make_private(
            pfn: u64,
            gpa: u64,
            level: bindings::pg_level,
            asid: u32,
            immutable: bool,
        ) -> c_int;
        pub(crate) fn rmp_make_shared(pfn: u64, level: bindings::pg_level) -> c_int;
        pub(crate) fn snp_rmp_sw_make_private(pfn: u64, gpa: u64, npages: c_ulong) -> c_int;
        pub(crate) fn snp_rmp_sw_reclaim(pfn: u64, npages: c_ulong);
    }

    /// `PG_LEVEL_4K`.
    pub(crate) const LEVEL_4K: bindings::pg_level = bindings::pg_level_PG_LEVEL_4K;

    /// Calls `snp_lookup_rmpentry()`: whether `pfn` is assigned, and its level.
    pub(crate) fn lookup(pfn: u64) -> Result<(bool, c_int), c_int> {
        let (mut assigned, mut level) = (false, 0);
        // SAFETY: Reads the RMP; both out-pointers are valid for the call.
        match unsafe { snp_lookup_rmpentry(pfn, &mut assigned, &mut level) } {
            0 => Ok((assigned, level)),
            e => Err(e),
        }
    }
}
