// SPDX-License-Identifier: GPL-2.0

//! The RMP backend the module drives, with bounded retries of transient failures.
//!
//! Both backends implement [`Rmp`]; this is the one place that decides which
//! one runs, retries what the model calls transient, and reports failures.

use super::emulated::EmulatedRmp;
use super::hardware::Hardware;
use super::model::{Lookup, PageSize, Record, Rmp, RmpError, State};
use super::platform::{BackendKind, Platform};
use kernel::{prelude::*, sync::Arc};

/// How often a transient failure (another CPU updating the same 2M region) is
/// retried before the operation fails with `EBUSY` and a log line. Linux retries
/// without bound, and a hang on `FAIL_OVERLAP` has been reported; real contention
/// resolves within a few attempts.
pub(crate) const TRANSIENT_RETRIES: u32 = 1000;

/// Which backend the `backend=` parameter asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// The hardware when the host runs with SNP, else the emulation.
    Auto,
    /// The hardware, or fail to load.
    Hardware,
    /// The emulation, even on an SNP host.
    Emulated,
}

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
}

impl Backend {
    /// Sets up the backend `request` asks for on `platform`.
    ///
    /// # Errors
    ///
    /// `ENODEV` for `Request::Hardware` without SNP (or with an unusable RMP).
    pub(crate) fn new(request: Request, platform: &Platform) -> Result<Arc<Self>> {
        let kind = match request {
            Request::Auto => platform.backend(),
            Request::Hardware => BackendKind::Hardware,
            Request::Emulated => BackendKind::Emulated,
        };
        let inner = match kind {
            BackendKind::Hardware => Inner::Hardware(Hardware::probe(platform)?),
            BackendKind::Emulated => {
                let end_pfn = crate::kernel_ext::memory::ram_end_pfn();
                Inner::Emulated(KBox::pin_init(EmulatedRmp::new(end_pfn), GFP_KERNEL)?)
            }
        };
        Ok(Arc::new(Self { inner }, GFP_KERNEL)?)
    }

    /// Returns which backend this is.
    pub(crate) fn kind(&self) -> BackendKind {
        match self.inner {
            Inner::Hardware(_) => BackendKind::Hardware,
            Inner::Emulated(_) => BackendKind::Emulated,
        }
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

    /// Returns how many transient failures were retried so far.
    pub(crate) fn transient_retries(&self) -> u64 {
        crate::counters::COUNTERS.transient_retries.get()
    }

    /// Runs one writing instruction on the backend.
    fn run(
        &self,
        op: &mut dyn FnMut(&mut dyn Rmp) -> Result<(), RmpError>,
    ) -> Result<(), RmpError> {
        match &self.inner {
            // The hardware handle is stateless: each call gets its own.
            Inner::Hardware(hw) => {
                let mut handle = hw.handle();
                op(&mut handle)
            }
            Inner::Emulated(e) => op(&mut *e.lock()),
        }
    }

    /// Runs `op`, retrying transient failures up to [`TRANSIENT_RETRIES`] times.
    fn retry(
        &self,
        what: &str,
        pfn: u64,
        op: &mut dyn FnMut(&mut dyn Rmp) -> Result<(), RmpError>,
    ) -> Result<(), RmpError> {
        let mut attempt = 0;
        loop {
            match self.run(op) {
                Err(e) if e.is_transient() && attempt < TRANSIENT_RETRIES => {
                    attempt += 1;
                    crate::counters::COUNTERS.transient_retries.add(1);
                    core::hint::spin_loop();
                }
                Err(e) => {
                    self.report(what, pfn, e, attempt);
                    return Err(e);
                }
                Ok(()) => return Ok(()),
            }
        }
    }

    /// Logs a failed instruction with the RMP entry of its page, as an operator needs it.
    fn report(&self, what: &str, pfn: u64, e: RmpError, attempts: u32) {
        let entry = self.rmpread(pfn);
        match entry {
            Ok(r) => pr_warn!(
                "{} of pfn {:#x} failed: {} after {} retries; entry: assigned={} size={:?} asid={} gpa={:#x} immutable={}\n",
                what, pfn, ErrDisplay(e), attempts, r.assigned(), r.page_size(), r.asid(), r.gpa(), r.immutable()
            ),
            Err(_) => pr_warn!(
                "{} of pfn {:#x} failed: {} after {} retries; entry unreadable\n",
                what, pfn, ErrDisplay(e), attempts
            ),
        }
    }

    /// RMPUPDATE with bounded retries.
    pub(crate) fn rmpupdate(&self, pfn: u64, state: &State) -> Result<(), RmpError> {
        self.retry("RMPUPDATE", pfn, &mut |rmp| rmp.rmpupdate(pfn, state))
    }

    /// PSMASH with bounded retries.
    pub(crate) fn psmash(&self, pfn: u64) -> Result<(), RmpError> {
        self.retry("PSMASH", pfn, &mut |rmp| rmp.psmash(pfn))
    }

    /// Reads the record of `pfn`.
    pub(crate) fn rmpread(&self, pfn: u64) -> Result<Record, RmpError> {
        match &self.inner {
            Inner::Hardware(hw) => hw.handle().rmpread(pfn),
            Inner::Emulated(e) => e.lock().rmpread(pfn),
        }
    }

    /// Looks `pfn` up the way Linux's `snp_lookup_rmpentry()` does.
    pub(crate) fn lookup(&self, pfn: u64) -> Result<Lookup, RmpError> {
        match &self.inner {
            Inner::Hardware(hw) => hw.handle().lookup(pfn),
            Inner::Emulated(e) => e.lock().lookup(pfn),
        }
    }
}

impl Backend {
    /// Returns whether any page of the `size` page at `pfn` is assigned, including a
    /// 4K page that lies inside an assigned 2M entry.
    pub(crate) fn any_assigned(&self, pfn: u64, size: PageSize) -> Result<bool, RmpError> {
        let found = match &self.inner {
            Inner::Hardware(hw) => hw.handle().find_assigned(pfn, size)?,
            Inner::Emulated(e) => e.lock().find_assigned(pfn, size)?,
        };
        Ok(found.is_some() || self.lookup(pfn)?.assigned())
    }

    /// Returns the validated bit of `pfn`'s entry, or `false` where the backend cannot
    /// read it (RMPREAD does not report it).
    pub(crate) fn validated(&self, pfn: u64) -> bool {
        match &self.inner {
            Inner::Hardware(hw) => hw.raw_entry(pfn).is_some_and(|e| e.validated()),
            Inner::Emulated(e) => e.lock().effective(pfn).is_ok_and(|e| e.validated()),
        }
    }
}

#[kunit_tests(snp_host_backend)]
mod tests {
    use super::*;
    use crate::rmp::model::PageSize;

    #[test]
    fn busy_region_is_retried_a_bounded_number_of_times() -> Result {
        let backend = Backend::new(Request::Emulated, &Platform::detect())?;
        let Inner::Emulated(table) = &backend.inner else {
            return Err(EINVAL);
        };
        let state = State::private(0x20_0000, PageSize::Size4K, 1, false);
        table.lock().set_busy(Some(0x400));
        let before = backend.transient_retries();
        // Another CPU "holds" the region forever: the loop must give up, not hang.
        assert_eq!(backend.rmpupdate(0x401, &state), Err(RmpError::FailInUse));
        let retried = backend.transient_retries() - before;
        assert_eq!(retried, u64::from(TRANSIENT_RETRIES));
        // Released: the same update goes through, and is visible to lookups.
        table.lock().set_busy(None);
        assert_eq!(backend.rmpupdate(0x401, &state), Ok(()));
        assert!(backend.any_assigned(0x401, PageSize::Size4K) == Ok(true));
        assert!(backend.any_assigned(0x400, PageSize::Size2M) == Ok(true));
        assert!(backend.any_assigned(0x402, PageSize::Size4K) == Ok(false));
        assert_eq!(
            backend.rmpupdate(0x401, &State::shared(PageSize::Size4K)),
            Ok(())
        );
        Ok(())
    }
}

/// Formats an [`RmpError`] for the kernel log.
pub(crate) struct ErrDisplay(pub(crate) RmpError);

impl kernel::fmt::Display for ErrDisplay {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}
