// SPDX-License-Identifier: GPL-2.0

//! The module as the provider of the kernel's RMP hooks: user RMP faults,
//! refused writes, and reports of kernel-mode RMP violations.
//!
//! Everything here runs in atomic context (see `rust/rmp_ops.rs`): it reads
//! the lock-free view of guest pages (`owned.rs`), decides with the pure
//! logic of `fault/model/decide.rs`, counts, and records the decision in a
//! small ring under a spinlock that nothing else holds for long.

use crate::counters::FAULT_COUNTERS;
use crate::directmap::model::Level;
use crate::fault::model::{
    decide::{decide, Decision, Fault, Ownership, Refusal},
    ErrorCode,
};
use crate::kernel_ext::{
    rmp_ops::{Answer, Provider, UserFault, WriteCheck},
    task::RateLimit,
};
use crate::state::Shared;
use core::sync::atomic::Ordering::Relaxed;
use kernel::{fmt, prelude::*};

/// One "no progress" line per interval, whatever a process makes the kernel do.
static NO_PROGRESS_LOG: RateLimit = RateLimit::new();

/// Decisions the debugfs file `faults` shows.
pub(crate) const RING: usize = 64;

/// One decided fault, as debugfs `faults` shows it.
#[derive(Clone, Copy, Default)]
pub(crate) struct Record {
    pid: i32,
    comm: [u8; 16],
    address: usize,
    pfn: u64,
    level: u32,
    decision: &'static str,
}

/// The last [`RING`] decisions, oldest first once it wrapped.
pub(crate) struct Ring {
    records: [Record; RING],
    next: usize,
    total: u64,
}

impl Ring {
    /// An empty ring.
    pub(crate) const fn new() -> Self {
        Self {
            records: [Record {
                pid: 0,
                comm: [0; 16],
                address: 0,
                pfn: 0,
                level: 0,
                decision: "",
            }; RING],
            next: 0,
            total: 0,
        }
    }

    fn push(&mut self, r: Record) {
        if let Some(slot) = self.records.get_mut(self.next) {
            *slot = r;
        }
        self.next = (self.next + 1) % RING;
        self.total += 1;
    }

    /// Writes one line per recorded decision, oldest first:
    /// `<pid> <comm> 0x<address> pfn=0x<pfn> <4K|2M|1G> <decision>`.
    pub(crate) fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = usize::try_from(self.total.min(RING as u64)).unwrap_or(RING);
        let first = (self.next + RING - count) % RING;
        for i in 0..count {
            let Some(r) = self.records.get((first + i) % RING) else {
                continue;
            };
            let end = r.comm.iter().position(|&c| c == 0).unwrap_or(r.comm.len());
            let comm = core::str::from_utf8(r.comm.get(..end).unwrap_or(&[])).unwrap_or("?");
            let level = match r.level {
                2 => "2M",
                3 => "1G",
                _ => "4K",
            };
            writeln!(
                f,
                "{} {} {:#x} pfn={:#x} {} {}",
                r.pid, comm, r.address, r.pfn, level, r.decision
            )?;
        }
        Ok(())
    }
}

fn level_of(l: u32) -> Level {
    match l {
        2 => Level::Size2M,
        3 => Level::Size1G,
        _ => Level::Size4K,
    }
}

/// What the module knows of `pfn`, for a log line written in atomic context: the
/// RMP entry if the backend can be read without sleeping.
struct EntryText<'a>(&'a Shared, u64);

impl fmt::Display for EntryText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let EntryText(shared, pfn) = *self;
        let owned = if shared.owned.page(pfn) {
            "a guest page of this module"
        } else {
            "not a guest page of this module"
        };
        match shared.backend.try_rmpread(pfn) {
            Some(Ok(r)) => write!(
                f,
                "{}; RMP entry assigned={} size={:?} asid={} gpa={:#x} immutable={}",
                owned,
                u8::from(r.assigned()),
                r.page_size(),
                r.asid(),
                r.gpa(),
                u8::from(r.immutable())
            ),
            Some(Err(e)) => write!(f, "{}; RMP entry unreadable: {}", owned, e),
            None => write!(f, "{}; RMP entry busy", owned),
        }
    }
}

impl Shared {
    /// Reports, rate-limited, a fault on `pfn` that repeated without progress and
    /// was refused: the provider's decision and the kernel's bound say it alike.
    fn log_no_progress(&self, uf: &UserFault, pfn: u64) {
        if NO_PROGRESS_LOG.allow() {
            pr_warn!(
                "RMP fault at {:#x} repeated {} times without progress; refused. pfn {:#x}: {}\n",
                uf.address,
                uf.repeats,
                pfn,
                EntryText(self, pfn)
            );
        }
    }

    /// Records a decision for debugfs `faults`.
    fn record(&self, uf: &UserFault, decision: &'static str) {
        let task = kernel::current!();
        let mut record = Record {
            pid: task.pid(),
            address: uf.address,
            pfn: uf.pfn.unwrap_or(u64::MAX),
            level: uf.level,
            decision,
            ..Record::default()
        };
        crate::kernel_ext::task::comm(&mut record.comm);
        self.faults.lock().push(record);
    }
}

impl Provider for Shared {
    fn user_fault(&self, uf: &UserFault) -> Answer {
        let code = ErrorCode::from_raw(uf.error_code);
        let level = level_of(uf.level);
        let pfn = uf.pfn.unwrap_or(u64::MAX);
        let owned = Ownership {
            target: uf.pfn.is_some_and(|p| self.owned.page(p)),
            range: uf.pfn.is_some_and(|p| {
                let first = level.region_start(p);
                self.owned.any(first, level.pages())
            }),
        };
        // Testing the bound: for faults on mappings over guest pages (and only
        // those: other processes' copy-on-write faults are none of its business),
        // answer as a provider that keeps losing a race would.
        let forced = self.force_retry.load(Relaxed) && (owned.target || owned.range);
        let ownership = if forced { Ownership::default() } else { owned };
        let fault = Fault {
            write: code.write(),
            // The kernel marks every fault it asks about with X86_PF_RMP, the
            // write-protection ones too, so the bit says nothing here. A write that
            // finds no guest page proceeds: to the normal write fault (a read-only
            // PTE left from before the page returned), or, for a real RMP fault that
            // raced with a conversion, to a refault the kernel counts against its
            // bound. Only `force_retry` plays a provider that keeps saying "retry".
            rmp: forced,
            level,
            splittable: uf.splittable,
            repeats: uf.repeats,
        };
        let d = decide(&fault, ownership);
        // With user mappings write-protected the kernel asks about every write to a
        // read-only mapping (copy-on-write after fork() too). Only those that touch a
        // guest page are RMP faults: the others take the normal path, uncounted.
        let guest = ownership.target || ownership.range || fault.rmp;
        if d == Decision::Proceed && !guest {
            return Answer::Proceed;
        }
        let c = &FAULT_COUNTERS;
        c.user_faults.add(1);
        let (answer, what) = match d {
            Decision::Proceed => (Answer::Proceed, "proceed"),
            Decision::Split => {
                c.thp_splits.add(1);
                (Answer::Split, "split")
            }
            Decision::Retry => (Answer::Retry, "retry"),
            Decision::Sigbus(why) => {
                if code.user() {
                    c.sigbus.add(1);
                } else {
                    c.uaccess_refused.add(1);
                }
                match why {
                    Refusal::GuestPage => (Answer::Sigbus, "sigbus:guest-page"),
                    Refusal::Unsplittable => (Answer::Sigbus, "sigbus:unsplittable"),
                    Refusal::NoProgress => {
                        c.no_progress.add(1);
                        self.log_no_progress(uf, pfn);
                        (Answer::Sigbus, "sigbus:no-progress")
                    }
                }
            }
        };
        self.record(uf, what);
        answer
    }

    fn write_refused(&self, pfn: u64, pages: u64, check: WriteCheck) -> bool {
        let refused = self.owned.any(pfn, pages);
        // Count the refusals a caller sees fail; the others are questions. (A forced
        // GUP write that is refused goes on to a write fault, asked again as
        // `WpFault`: it is counted there, once.)
        if refused && matches!(check, WriteCheck::WpFault | WriteCheck::Mprotect) {
            FAULT_COUNTERS.gup_refused.add(1);
        }
        refused
    }

    fn report_no_progress(&self, uf: &UserFault) {
        let code = ErrorCode::from_raw(uf.error_code);
        FAULT_COUNTERS.no_progress.add(1);
        if code.user() {
            FAULT_COUNTERS.sigbus.add(1);
        } else {
            FAULT_COUNTERS.uaccess_refused.add(1);
        }
        let pfn = uf.pfn.unwrap_or(u64::MAX);
        self.record(uf, "sigbus:no-progress");
        self.log_no_progress(uf, pfn);
    }

    fn report_kernel_fault(&self, pfn: u64, address: usize, error_code: u64) {
        FAULT_COUNTERS.kernel_faults.add(1);
        pr_err!(
            "RMP violation: kernel write to pfn {:#x} at {:#x} (error code {:#x}): {}\n",
            pfn,
            address,
            error_code,
            EntryText(self, pfn)
        );
    }
}
