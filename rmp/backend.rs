// SPDX-License-Identifier: GPL-2.0

//! The RMP backend the module drives, with time-bounded retries of transient failures.
//!
//! Both backends implement [`Rmp`]; this is the one place that decides which one runs
//! (from `rmp::model::decide`), retries what the model calls transient, reports
//! failures and turns them into errnos. Changing the RMP is `unsafe` here, whatever the
//! backend: on the hardware a wrong RMPUPDATE makes memory the kernel uses guest-owned.

use super::emulated::EmulatedRmp;
use super::hardware::Hardware;
use super::model::{
    Decision,
    Lookup,
    PageSize,
    Reason,
    Record,
    Retry,
    Rmp,
    RmpError,
    State,
    Step, //
};
use super::platform::{BackendKind, Platform};
use kernel::{
    pr_warn_once,
    prelude::*,
    sync::Arc,
    task::might_sleep,
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

pub(crate) use super::model::Request;

impl crate::kernel_ext::param::Choice for Request {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("auto", Request::Auto),
        ("hardware", Request::Hardware),
        ("emulated", Request::Emulated),
    ];
}

enum Inner {
    Hardware(Hardware),
    Emulated(Pin<KBox<EmulatedRmp>>),
}

/// The RMP backend in use.
pub(crate) struct Backend {
    inner: Inner,
    reason: Reason,
    /// `allow_immutable=1`: the operator accepts immutable pages on the hardware.
    allow_immutable: bool,
    retry: Retry,
}

impl Backend {
    /// Sets up the backend `request` asks for on `platform`; `allow_immutable` is the
    /// module parameter of that name.
    ///
    /// # Errors
    ///
    /// `ENODEV` for `Request::Hardware` where the hardware RMP cannot be driven (the
    /// log says why), `ENOMEM` if the table or the emulation cannot be set up.
    pub(crate) fn new(
        request: Request,
        platform: &Platform,
        allow_immutable: bool,
    ) -> Result<Arc<Self>> {
        let decision = platform.decide(request);
        let inner = match decision {
            Decision::Hardware(rmp) => Inner::Hardware(Hardware::new(rmp)?),
            Decision::Emulated(_) => {
                let end_pfn = crate::kernel_ext::memory::ram_end_pfn();
                Inner::Emulated(KBox::pin_init(EmulatedRmp::new(end_pfn), GFP_KERNEL)?)
            }
            Decision::Refused(reason) => {
                pr_err!("backend=hardware refused: {}\n", Show(reason));
                return Err(ENODEV);
            }
        };
        Ok(Arc::new(
            Self {
                inner,
                reason: decision.reason(),
                allow_immutable,
                retry: Retry::DEFAULT,
            },
            GFP_KERNEL,
        )?)
    }

    /// Returns which backend this is.
    pub(crate) fn kind(&self) -> BackendKind {
        match self.inner {
            Inner::Hardware(_) => BackendKind::Hardware,
            Inner::Emulated(_) => BackendKind::Emulated,
        }
    }

    /// Returns why this backend was chosen, for the log and debugfs.
    pub(crate) fn reason(&self) -> Reason {
        self.reason
    }

    /// Returns the hardware backend, if that is the one in use.
    pub(crate) fn hardware(&self) -> Option<&Hardware> {
        match &self.inner {
            Inner::Hardware(hw) => Some(hw),
            Inner::Emulated(_) => None,
        }
    }

    /// Returns one past the highest PFN the RMP covers.
    pub(crate) fn end_pfn(&self) -> u64 {
        match &self.inner {
            Inner::Hardware(hw) => hw.end_pfn(),
            Inner::Emulated(e) => e.lock().end_pfn(),
        }
    }

    /// Returns how many transient failures were retried so far (module-wide).
    pub(crate) fn transient_retries(&self) -> u64 {
        crate::counters::COUNTERS.transient_retries.get()
    }

    /// Checks a request for an immutable page (`immutable = 1`) against the backend.
    ///
    /// On the hardware only the firmware can make an immutable page shared again, so
    /// the module could never return it to the host: it is refused unless the module
    /// was loaded with `allow_immutable=1`. The emulated RMP has no firmware to lose the
    /// page to and accepts it.
    ///
    /// # Errors
    ///
    /// `EINVAL` when refused.
    pub(crate) fn check_immutable(&self, immutable: bool) -> Result {
        if refuses_immutable(self.kind(), self.allow_immutable, immutable) {
            pr_warn_once!(
                "immutable=1 refused on the hardware RMP: only the firmware could reclaim the page; load with allow_immutable=1 to allow it\n"
            );
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Runs one writing instruction on the backend.
    ///
    /// # Safety
    ///
    /// Every RMPUPDATE and PSMASH `op` issues meets the contract of
    /// [`Backend::rmpupdate`] and [`Backend::psmash`].
    unsafe fn run(
        &self,
        op: &mut dyn FnMut(&mut dyn Rmp) -> Result<(), RmpError>,
    ) -> Result<(), RmpError> {
        match &self.inner {
            Inner::Hardware(hw) => {
                // SAFETY: The function's contract is the handle's.
                let mut handle = unsafe { hw.handle() };
                op(&mut handle)
            }
            Inner::Emulated(e) => op(&mut *e.lock()),
        }
    }

    /// Runs `op`, retrying transient failures as [`Retry`] says: at once a few times,
    /// then with sleeps, for up to a second; then the failure stands and nothing changed.
    ///
    /// # Safety
    ///
    /// As [`Backend::run`].
    unsafe fn retry(
        &self,
        what: &str,
        pfn: u64,
        op: &mut dyn FnMut(&mut dyn Rmp) -> Result<(), RmpError>,
    ) -> Result<(), RmpError> {
        might_sleep();
        let start = Instant::<Monotonic>::now();
        let mut failures: u32 = 0;
        loop {
            // SAFETY: The function's contract is `run`'s.
            let e = match unsafe { self.run(op) } {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if !e.is_transient() {
                self.report(what, pfn, e, failures);
                return Err(e);
            }
            failures = failures.saturating_add(1);
            let elapsed = u64::try_from(start.elapsed().as_micros_ceil()).unwrap_or(0);
            match self.retry.after(failures, elapsed) {
                Step::Spin => core::hint::spin_loop(),
                Step::Sleep { micros } => fsleep(Delta::from_micros(
                    i64::try_from(micros).unwrap_or(i64::MAX),
                )),
                Step::GiveUp => {
                    self.report(what, pfn, e, failures - 1);
                    return Err(e);
                }
            }
            crate::counters::COUNTERS.transient_retries.add(1);
        }
    }

    /// Logs a failed instruction with the RMP entry of its page, as an operator needs it.
    fn report(&self, what: &str, pfn: u64, e: RmpError, retries: u32) {
        match self.rmpread(pfn) {
            Ok(r) => pr_warn!(
                "{} of pfn {:#x} failed: {} after {} retries; entry: assigned={} size={:?} asid={} gpa={:#x} immutable={}\n",
                what, pfn, Show(e), retries, r.assigned(), r.page_size(), r.asid(), r.gpa(), r.immutable()
            ),
            Err(read) => pr_warn!(
                "{} of pfn {:#x} failed: {} after {} retries; entry unreadable: {}\n",
                what, pfn, Show(e), retries, Show(read)
            ),
        }
        // The raw entry too where it can be read, as Linux's dump_rmpentry() prints it:
        // it has what the record lacks (validated, VMSA, the firmware's bits).
        if let Some(raw) = self.hardware().and_then(|hw| hw.raw_entry(pfn)) {
            pr_warn!(
                "pfn {:#x}: raw RMP entry [{:#018x} - {:#018x}]\n",
                pfn,
                raw.lo().raw(),
                raw.hi().raw()
            );
        }
    }

    /// RMPUPDATE of `pfn` to `state`, retrying transient failures for up to a second.
    ///
    /// May sleep.
    ///
    /// # Safety
    ///
    /// The caller owns the page at `pfn`, and for a 2M `state` all 512 pages from it:
    ///
    /// - they are pinned and tracked by the caller, or leaked by this module, so that
    ///   nobody frees, migrates or reuses them while they are assigned, and they stay so
    ///   until a later call made them shared again (or they are leaked for good);
    /// - before `state` assigns them, the caller has taken them out of the host's write
    ///   path as the direct-map policy requires (`directmap::Batch::make_private` and its
    ///   TLB flush), so that no kernel write through the direct map reaches them (for
    ///   pages only the kernel holds, other CPUs may keep a 4K entry of the page itself
    ///   until the kernel's lazy flush: nothing writes through it);
    /// - when `state` makes them shared, they are pages this module assigned, and the
    ///   caller gives them back to the direct map only after this returned `Ok`.
    ///
    /// On the emulated backend breaking the contract cannot harm the kernel, but callers
    /// must not depend on which backend runs, so it holds for both.
    pub(crate) unsafe fn rmpupdate(&self, pfn: u64, state: &State) -> Result<(), RmpError> {
        let emulated = self.kind() == BackendKind::Emulated;
        let assigned = state.assigns();
        // SAFETY: The function's contract is `retry`'s for this one RMPUPDATE.
        unsafe {
            self.retry("RMPUPDATE", pfn, &mut |rmp| {
                // Injected failures (`inject.rs`) stand in for the emulated RMP's only.
                match emulated
                    .then(|| crate::inject::rmpupdate(assigned))
                    .flatten()
                {
                    Some(e) => Err(e),
                    None => rmp.rmpupdate(pfn, state),
                }
            })
        }
    }

    /// PSMASH of the 2M page at `pfn`, retrying transient failures for up to a second.
    ///
    /// May sleep.
    ///
    /// # Safety
    ///
    /// `pfn` is the first page of a 2M page the caller assigned as one 2M page and owns
    /// as [`Backend::rmpupdate`] requires; once this returned `Ok`, the caller tracks the
    /// 512 pages as 4K assignments (returning them needs 4K RMPUPDATEs).
    pub(crate) unsafe fn psmash(&self, pfn: u64) -> Result<(), RmpError> {
        let emulated = self.kind() == BackendKind::Emulated;
        // SAFETY: The function's contract is `retry`'s for this one PSMASH.
        unsafe {
            self.retry("PSMASH", pfn, &mut |rmp| match emulated
                .then(crate::inject::psmash)
                .flatten()
            {
                Some(e) => Err(e),
                None => rmp.psmash(pfn),
            })
        }
    }

    /// Reads the record of `pfn`.
    pub(crate) fn rmpread(&self, pfn: u64) -> Result<Record, RmpError> {
        match &self.inner {
            // SAFETY: Only a read is issued through the handle.
            Inner::Hardware(hw) => unsafe { hw.handle() }.rmpread(pfn),
            Inner::Emulated(e) => e.lock().rmpread(pfn),
        }
    }

    /// Reads the record of `pfn` without sleeping, for atomic context (an oops, a
    /// fault report): `None` when the emulated RMP is busy.
    pub(crate) fn try_rmpread(&self, pfn: u64) -> Option<Result<Record, RmpError>> {
        match &self.inner {
            // SAFETY: Only a read is issued through the handle; RMPREAD and the mapped
            // table need no lock.
            Inner::Hardware(hw) => Some(unsafe { hw.handle() }.rmpread(pfn)),
            Inner::Emulated(e) => e.try_lock().map(|rmp| rmp.rmpread(pfn)),
        }
    }

    /// Looks `pfn` up the way Linux's `snp_lookup_rmpentry()` does.
    pub(crate) fn lookup(&self, pfn: u64) -> Result<Lookup, RmpError> {
        match &self.inner {
            // SAFETY: Only reads are issued through the handle.
            Inner::Hardware(hw) => unsafe { hw.handle() }.lookup(pfn),
            Inner::Emulated(e) => e.lock().lookup(pfn),
        }
    }

    /// Returns whether any page of the `size` page at `pfn` is assigned, including a
    /// 4K page that lies inside an assigned 2M entry.
    pub(crate) fn any_assigned(&self, pfn: u64, size: PageSize) -> Result<bool, RmpError> {
        let found = match &self.inner {
            // SAFETY: Only reads are issued through the handle.
            Inner::Hardware(hw) => unsafe { hw.handle() }.find_assigned(pfn, size)?,
            Inner::Emulated(e) => e.lock().find_assigned(pfn, size)?,
        };
        Ok(found.is_some() || self.lookup(pfn)?.assigned())
    }

    /// Returns the validated bit of `pfn`'s entry, or `None` where it is unknown: on
    /// hosts with RMPREAD, whose record does not carry it.
    pub(crate) fn validated(&self, pfn: u64) -> Option<bool> {
        match &self.inner {
            Inner::Hardware(hw) => hw.validated(pfn),
            Inner::Emulated(e) => e.lock().effective(pfn).ok().map(|e| e.validated()),
        }
    }
}

/// Returns whether a request with `immutable` set is refused on a `kind` backend.
fn refuses_immutable(kind: BackendKind, allowed: bool, immutable: bool) -> bool {
    immutable && kind == BackendKind::Hardware && !allowed
}

/// Turns an RMP failure into the errno the ABI promises (`Documentation/snp_host.rst`).
pub(crate) fn errno(e: RmpError) -> Error {
    match e {
        // Still busy when the retries ran out; nothing changed, the caller may try again.
        RmpError::FailInUse | RmpError::FailOverlap => EBUSY,
        // The request does not fit the page's RMP state or the table.
        RmpError::FailInput
        | RmpError::FailBadAddr
        | RmpError::FailNotExpandable
        | RmpError::FailSizeMismatch
        | RmpError::NotCovered => EINVAL,
        // The entry is immutable: only the firmware may change it.
        RmpError::FailPermission => EPERM,
        RmpError::NoMemory => ENOMEM,
        // SNP was shut down under the module.
        RmpError::SnpDisabled => ENODEV,
        RmpError::Unexpected(_) | RmpError::SnpUnknown => EIO,
    }
}

/// Formats a `core::fmt::Display` value (an [`RmpError`], a [`Reason`]) for the
/// kernel log.
pub(crate) struct Show<T>(pub(crate) T);

impl<T: core::fmt::Display> kernel::fmt::Display for Show<T> {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}

/// Formats an [`RmpError`] for the kernel log.
pub(crate) struct ErrDisplay(pub(crate) RmpError);

impl kernel::fmt::Display for ErrDisplay {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}

#[kunit_tests(snp_host_backend)]
mod tests {
    use super::*;
    use crate::rmp::model::Request;

    /// An emulated backend that gives up on a busy region after `limit_micros`.
    fn emulated(limit_micros: u64) -> Result<Backend> {
        Ok(Backend {
            inner: Inner::Emulated(KBox::pin_init(EmulatedRmp::new(1 << 20), GFP_KERNEL)?),
            reason: Reason::Requested,
            allow_immutable: false,
            retry: Retry {
                spins: 8,
                sleep_micros: 200,
                limit_micros,
            },
        })
    }

    #[test]
    fn busy_region_is_retried_for_a_bounded_time() -> Result {
        let backend = emulated(20_000)?;
        let Inner::Emulated(table) = &backend.inner else {
            return Err(EINVAL);
        };
        let state = State::private(0x20_0000, PageSize::Size4K, 1, false);
        table.lock().set_busy(Some(0x400));
        let before = backend.transient_retries();
        let start = Instant::<Monotonic>::now();
        // Another CPU "holds" the region forever: the loop must give up, not hang, and
        // only once its time is up.
        // SAFETY: The emulated backend; PFN 0x401 is nobody's page in it.
        let busy = unsafe { backend.rmpupdate(0x401, &state) };
        assert_eq!(busy, Err(RmpError::FailInUse));
        assert!(start.elapsed().as_micros_ceil() >= 20_000);
        // It spun, then slept: more retries than spins, far fewer than a busy loop.
        let retried = backend.transient_retries() - before;
        assert!(retried > 8 && retried < 200);
        // Nothing changed.
        assert!(backend.any_assigned(0x401, PageSize::Size4K) == Ok(false));
        // Released: the same update goes through, and is visible to lookups.
        table.lock().set_busy(None);
        // SAFETY: As above.
        assert_eq!(unsafe { backend.rmpupdate(0x401, &state) }, Ok(()));
        assert!(backend.any_assigned(0x401, PageSize::Size4K) == Ok(true));
        assert!(backend.any_assigned(0x400, PageSize::Size2M) == Ok(true));
        assert!(backend.any_assigned(0x402, PageSize::Size4K) == Ok(false));
        assert_eq!(backend.validated(0x401), Some(false));
        // SAFETY: As above; the page is the one this test assigned.
        let shared = unsafe { backend.rmpupdate(0x401, &State::shared(PageSize::Size4K)) };
        assert_eq!(shared, Ok(()));
        Ok(())
    }

    #[test]
    fn a_permanent_failure_is_not_retried() -> Result {
        let backend = emulated(1_000_000)?;
        let before = backend.transient_retries();
        // SAFETY: The emulated backend; a 2M PSMASH of a page nobody assigned.
        let smashed = unsafe { backend.psmash(0x200) };
        assert_eq!(smashed, Err(RmpError::FailNotExpandable));
        assert_eq!(backend.transient_retries(), before);
        Ok(())
    }

    #[test]
    fn every_rmp_failure_has_its_errno() {
        let table = [
            (RmpError::FailInUse, EBUSY),
            (RmpError::FailOverlap, EBUSY),
            (RmpError::FailInput, EINVAL),
            (RmpError::FailBadAddr, EINVAL),
            (RmpError::FailNotExpandable, EINVAL),
            (RmpError::NotCovered, EINVAL),
            (RmpError::FailPermission, EPERM),
            (RmpError::NoMemory, ENOMEM),
            (RmpError::SnpDisabled, ENODEV),
            (RmpError::Unexpected(9), EIO),
            (RmpError::SnpUnknown, EIO),
        ];
        for (e, want) in table {
            assert_eq!(errno(e), want);
        }
    }

    #[test]
    fn immutable_pages_need_the_parameter_on_the_hardware_only() -> Result {
        assert!(refuses_immutable(BackendKind::Hardware, false, true));
        assert!(!refuses_immutable(BackendKind::Hardware, true, true));
        assert!(!refuses_immutable(BackendKind::Hardware, false, false));
        assert!(!refuses_immutable(BackendKind::Emulated, false, true));
        let backend = Backend::new(Request::Emulated, &Platform::detect(), false)?;
        assert_eq!(backend.check_immutable(true), Ok(()));
        Ok(())
    }
}
