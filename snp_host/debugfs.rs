// SPDX-License-Identifier: GPL-2.0

//! `/sys/kernel/debug/snp_host/`: the module's view, for people and tests.
//!
//! - `status`: backend, RMP geometry and counters, human readable.
//! - `rmp`: one line per RMP entry the module knows of (every page it assigned
//!   or leaked): `0x<pfn> <4K|2M> assigned=.. asid=.. gpa=0x.. immutable=.. validated=..`
//!   (`validated=unknown` on hosts with RMPREAD, whose record does not carry the bit).
//! - `lookup`: write a PFN (decimal or `0x` hex), read its entry in the same format.
//! - `directmap`: one line per 2M region the module touched:
//!   `0x<first pfn> <4K|2M|1G> private=<n>` (its current mapping size, its guest pages).
//! - `faults`: the last 64 RMP fault decisions, oldest first:
//!   `<pid> <comm> 0x<address> pfn=0x<pfn> <4K|2M|1G> <decision>`.
//! - `kwrite` (write only): write a PFN the module holds as a guest page; the
//!   module writes to it through the direct map as a stray kernel write would,
//!   which faults and is reported as an RMP violation (`EFAULT`); any other PFN
//!   is `EINVAL`.
//! - `force_retry` (emulated backend only): `1` answers every fault as a provider
//!   that keeps losing a race would, to exercise the no-progress bound.

use crate::rmp::model::PageSize;
use crate::state::Shared;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::{
    debugfs::{Dir, File},
    fmt,
    prelude::*,
    sync::Arc,
    uaccess::UserSliceReader,
};

/// The validated bit as the `rmp` and `lookup` files show it: `unknown` where the
/// hardware does not report it (hosts with RMPREAD).
struct Validated(Option<bool>);

impl core::fmt::Display for Validated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{}", u8::from(v)),
            None => f.write_str("unknown"),
        }
    }
}

/// Writes one entry line for `pfn`.
fn entry_line(shared: &Shared, pfn: u64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let backend = &shared.backend;
    match backend.rmpread(pfn) {
        Ok(r) => writeln!(
            f,
            "{:#x} {} assigned={} asid={} gpa={:#x} immutable={} validated={}",
            pfn,
            if r.page_size() == PageSize::Size2M {
                "2M"
            } else {
                "4K"
            },
            u8::from(r.assigned()),
            r.asid(),
            r.gpa(),
            u8::from(r.immutable()),
            Validated(backend.validated(pfn)),
        ),
        Err(e) => writeln!(f, "{:#x} unreadable: {}", pfn, e),
    }
}

fn write_status(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let st = s.status();
    writeln!(f, "backend: {}", s.backend.kind().name())?;
    writeln!(f, "reason: {}", s.backend.reason())?;
    writeln!(f, "rmp_base: {:#x}", st.rmp_base)?;
    writeln!(f, "rmp_end: {:#x}", st.rmp_end)?;
    writeln!(f, "max_pfn: {:#x}", st.max_pfn)?;
    writeln!(f, "rmpread: {}", st.flags & crate::uapi::FLAG_RMPREAD != 0)?;
    writeln!(
        f,
        "segmented: {}",
        st.flags & crate::uapi::FLAG_SEGMENTED_RMP != 0
    )?;
    writeln!(f, "max_asid: {}", s.max_asid)?;
    writeln!(f, "directmap: {}", crate::DIRECTMAP.name())?;
    if let Some(hw) = s.backend.hardware() {
        let how = if hw.uses_rmpread() {
            "RMPREAD"
        } else {
            "the mapped table"
        };
        writeln!(f, "entries read with: {}", how)?;
    }
    writeln!(f, "kernel hooks: {}", s.hooks.load(Relaxed))?;
    writeln!(f, "kvm provider: {}", crate::kvm::provider_state(s))?;
    crate::counters::COUNTERS.write(f, "")?;
    crate::counters::FAULT_COUNTERS.write(f, "")?;
    crate::counters::KVM_COUNTERS.write(f, "kvm_")
}

fn write_directmap(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    s.directmap.write_regions(f)
}

fn write_rmp(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    s.ledger.for_each(|pfn, _| entry_line(s, pfn, f))
}

/// The state behind the `lookup` file: the last PFN written to it.
pub(crate) struct Lookup {
    shared: Arc<Shared>,
    pfn: AtomicU64,
}

fn write_lookup(l: &Lookup, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    entry_line(&l.shared, l.pfn.load(Relaxed), f)
}

/// Reads a PFN (decimal or `0x` hex) that the backend covers.
fn read_pfn(shared: &Shared, reader: &mut UserSliceReader) -> Result<u64> {
    let mut buf = [0u8; 32];
    let n = reader.len();
    let text = buf.get_mut(..n).ok_or(EINVAL)?;
    reader.read_slice(text)?;
    let text = core::str::from_utf8(text).map_err(|_| EINVAL)?.trim();
    let pfn = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse::<u64>(),
    }
    .map_err(|_| EINVAL)?;
    if pfn >= shared.backend.end_pfn() {
        return Err(EINVAL);
    }
    Ok(pfn)
}

fn read_lookup(l: &Lookup, reader: &mut UserSliceReader) -> Result {
    l.pfn.store(read_pfn(&l.shared, reader)?, Relaxed);
    Ok(())
}

fn write_faults(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    s.faults.lock().write(f)
}

/// `kwrite`: a stray kernel write to a guest page the module tracks, through the
/// direct map; it must fault (and be reported), never succeed silently.
fn write_kwrite(s: &Arc<Shared>, reader: &mut UserSliceReader) -> Result {
    let pfn = read_pfn(s, reader)?;
    s.ledger.with_held(pfn, || {
        // Still a guest page for the hooks, so still out of the direct map's write
        // path: the write faults (a page on its way back is not probed).
        if !s.owned.page(pfn) {
            return Err(EINVAL);
        }
        // SAFETY: The ledger holds `pfn` as a guest page, and keeps it pinned while
        // this runs: RAM that no host code writes (the byte written is the one read).
        unsafe { crate::kernel_ext::directmap::probe_write(pfn) }
    })
}

fn write_force_retry(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", u8::from(s.force_retry.load(Relaxed)))
}

/// `force_retry` (emulated backend only): `1` makes every fault decision answer
/// as a provider that keeps losing a race would, to test the no-progress bound.
fn read_force_retry(s: &Arc<Shared>, reader: &mut UserSliceReader) -> Result {
    if s.backend.hardware().is_some() {
        return Err(EPERM);
    }
    let mut buf = [0u8; 4];
    let n = reader.len();
    let text = buf.get_mut(..n).ok_or(EINVAL)?;
    reader.read_slice(text)?;
    let on = match core::str::from_utf8(text).map_err(|_| EINVAL)?.trim() {
        "0" => false,
        "1" => true,
        _ => return Err(EINVAL),
    };
    s.force_retry.store(on, Relaxed);
    Ok(())
}

/// The debugfs directory and its files; dropping it removes them.
pub(crate) struct Debugfs {
    _status: Pin<KBox<File<Arc<Shared>>>>,
    _rmp: Pin<KBox<File<Arc<Shared>>>>,
    _directmap: Pin<KBox<File<Arc<Shared>>>>,
    _lookup: Pin<KBox<File<Lookup>>>,
    _faults: Pin<KBox<File<Arc<Shared>>>>,
    _kwrite: Pin<KBox<File<Arc<Shared>>>>,
    _force_retry: Pin<KBox<File<Arc<Shared>>>>,
    _dir: Dir,
}

impl Debugfs {
    /// Creates `/sys/kernel/debug/snp_host/` and its files.
    pub(crate) fn new(shared: &Arc<Shared>) -> Result<Self> {
        let dir = Dir::new(c"snp_host");
        let status = KBox::pin_init(
            dir.read_callback_file(c"status", shared.clone(), &write_status),
            GFP_KERNEL,
        )?;
        let rmp = KBox::pin_init(
            dir.read_callback_file(c"rmp", shared.clone(), &write_rmp),
            GFP_KERNEL,
        )?;
        let directmap = KBox::pin_init(
            dir.read_callback_file(c"directmap", shared.clone(), &write_directmap),
            GFP_KERNEL,
        )?;
        let lookup = Lookup {
            shared: shared.clone(),
            pfn: AtomicU64::new(0),
        };
        let lookup = KBox::pin_init(
            dir.read_write_callback_file(c"lookup", lookup, &write_lookup, &read_lookup),
            GFP_KERNEL,
        )?;
        let faults = KBox::pin_init(
            dir.read_callback_file(c"faults", shared.clone(), &write_faults),
            GFP_KERNEL,
        )?;
        let kwrite = KBox::pin_init(
            dir.write_callback_file(c"kwrite", shared.clone(), &write_kwrite),
            GFP_KERNEL,
        )?;
        let force_retry = KBox::pin_init(
            dir.read_write_callback_file(
                c"force_retry",
                shared.clone(),
                &write_force_retry,
                &read_force_retry,
            ),
            GFP_KERNEL,
        )?;
        Ok(Self {
            _status: status,
            _rmp: rmp,
            _directmap: directmap,
            _lookup: lookup,
            _faults: faults,
            _kwrite: kwrite,
            _force_retry: force_retry,
            _dir: dir,
        })
    }
}
