// SPDX-License-Identifier: GPL-2.0

//! `/dev/snp_host`: the caller's own pages, converted between shared and private.
//!
//! Every page a file assigns is pinned long-term and tracked by that file (keyed
//! by its user address), so closing the file returns everything to the host.
//! The module-wide registry records every page any file assigned (and every
//! page leaked); holding its lock makes "is this page free? then assign it"
//! one step across files and processes.
//!
//! Conversions run in batches (one page for the per-page ioctls, a run of pages
//! for `SNP_HOST_CONVERT_RANGE`): every page of a batch is pinned and checked,
//! then removed from the direct map, then the TLB is flushed once, then the
//! RMP changes; returning pages reverses the order and merges emptied
//! direct-map regions once per batch.
//!
//! Lock order: a file's `pages`, then `Shared::registry`, then the direct map's
//! region lock, then the backend's own lock. All are mutexes: every path here
//! may sleep, and none runs in atomic context.

use crate::directmap::{self, DirectMap};
use crate::kernel_ext::{
    cred,
    user_pages::{self, PinnedPage},
};
use crate::rmp::{
    backend::{Backend, ErrDisplay},
    model::{PageSize, RmpError, State, MAX_ASID},
    platform::{BackendKind, Platform},
};
use crate::uapi;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::{
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    new_mutex,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{Arc, Mutex},
    uaccess::{UserPtr, UserSlice},
};

/// Module-wide counters, as `SNP_HOST_GET_STATS` reports them.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) private_4k: AtomicU64,
    pub(crate) private_2m: AtomicU64,
    pub(crate) make_private: AtomicU64,
    pub(crate) make_shared: AtomicU64,
    pub(crate) psmash: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) leaked_pages: AtomicU64,
}

impl Counters {
    fn private(&self, size: PageSize) -> &AtomicU64 {
        match size {
            PageSize::Size4K => &self.private_4k,
            PageSize::Size2M => &self.private_2m,
        }
    }
}

/// State shared by the module and every open file.
#[pin_data]
pub(crate) struct Shared {
    pub(crate) platform: Platform,
    pub(crate) backend: Arc<Backend>,
    pub(crate) counters: Counters,
    /// Highest ASID a page may be assigned to.
    pub(crate) max_asid: u32,
    /// Every page assigned through this module, and every page leaked, by PFN.
    #[pin]
    pub(crate) registry: Mutex<RBTree<u64, PageSize>>,
    /// The direct map around guest-owned pages.
    #[pin]
    pub(crate) directmap: DirectMap,
}

impl Shared {
    /// Sets up the shared state around `backend`.
    pub(crate) fn new(
        platform: Platform,
        backend: Arc<Backend>,
        policy: directmap::model::Policy,
    ) -> Result<Arc<Self>> {
        // SNP guests use ASIDs 1 .. min_sev_asid - 1; without the CPUID leaf (emulation on
        // a machine without SEV) the entry format's own limit applies.
        let max_asid = match platform.min_sev_asid {
            0 | 1 => MAX_ASID,
            n => (n - 1).min(MAX_ASID),
        };
        Arc::pin_init(
            pin_init!(Self {
                platform,
                backend,
                counters: Counters::default(),
                max_asid,
                registry <- new_mutex!(RBTree::new(), "snp_host_registry"),
                directmap <- DirectMap::new(policy),
            }),
            GFP_KERNEL,
        )
    }

    /// Returns `SNP_HOST_GET_STATUS`.
    pub(crate) fn status(&self) -> uapi::Status {
        let mut s = uapi::Status {
            backend: match self.backend.kind() {
                BackendKind::Hardware => uapi::BACKEND_HARDWARE,
                BackendKind::Emulated => uapi::BACKEND_EMULATED,
            },
            max_pfn: self.backend.end_pfn().saturating_sub(1),
            directmap_policy: self.directmap.policy.abi(),
            ..uapi::Status::default()
        };
        if self.platform.features.rmpread() {
            s.flags |= uapi::FLAG_RMPREAD;
        }
        if let Some(hw) = self.backend.hardware() {
            s.rmp_base = hw.base();
            s.rmp_end = hw.end();
            if hw.segmented() {
                s.flags |= uapi::FLAG_SEGMENTED_RMP;
            }
        }
        s
    }

    /// Returns `SNP_HOST_GET_STATS`.
    pub(crate) fn stats(&self) -> uapi::Stats {
        let c = &self.counters;
        let dm = &self.directmap.counters;
        uapi::Stats {
            private_4k: c.private_4k.load(Relaxed),
            private_2m: c.private_2m.load(Relaxed),
            make_private: c.make_private.load(Relaxed),
            make_shared: c.make_shared.load(Relaxed),
            psmash: c.psmash.load(Relaxed),
            transient_retries: self.backend.transient_retries(),
            failures: c.failures.load(Relaxed),
            leaked_pages: c.leaked_pages.load(Relaxed),
            dm_splits_2m: dm.splits_2m.load(Relaxed),
            dm_splits_1g: dm.splits_1g.load(Relaxed),
            dm_merges_2m: dm.merges_2m.load(Relaxed),
            dm_merges_1g: dm.merges_1g.load(Relaxed),
            dm_unmapped_pages: dm.unmapped.load(Relaxed),
            tlb_flushes: dm.tlb_flushes.load(Relaxed),
            reserved: [0; 2],
        }
    }

    /// Counts an RMP failure and turns it into the errno the ABI promises.
    fn failed(&self, e: RmpError) -> Error {
        self.counters.failures.fetch_add(1, Relaxed);
        crate::rmp::backend::errno(e)
    }

    /// Keeps `a`'s pages off the allocator for good: their state cannot be restored
    /// (the RMP refused to give them back, or the direct map to take them again), so a
    /// host write to them could fault.
    ///
    /// The caller leaves the PFN in the registry, so nobody assigns it again; the pins
    /// are never released, so the pages are never freed.
    fn leak(&self, a: Assignment, e: RmpError) {
        let pages = a.size.pages();
        pr_err!(
            "pfn {:#x} ({} pages): the RMP refused to return it to the host ({}); leaking it\n",
            a.pfn,
            pages,
            ErrDisplay(e)
        );
        self.counters.leaked_pages.fetch_add(pages, Relaxed);
        a.pins.leak();
    }

    /// Leaks the page a file assigned at `k`: it is no longer that file's, nor
    /// counted as private, and stays in the registry.
    fn leak_tracked(&self, pages: &mut RBTree<u64, Assignment>, k: u64, e: RmpError) {
        if let Some(a) = pages.remove(&k) {
            self.counters.private(a.size).fetch_sub(1, Relaxed);
            self.leak(a, e);
        }
    }
}

/// Returns whether `[pfn, pfn + pages)` overlaps an entry of `tree`, whose values are
/// the sizes of the entries at their keys.
fn overlaps<V>(tree: &RBTree<u64, V>, pfn: u64, pages: u64, size_of: impl Fn(&V) -> u64) -> bool {
    let end = pfn.saturating_add(pages);
    // An entry that overlaps starts at most one 2M page before `pfn`.
    let mut from = PageSize::Size2M.align_down(pfn);
    while let Some(c) = tree.cursor_lower_bound(&from) {
        let (&start, v) = c.current();
        if start >= end {
            return false;
        }
        if start.saturating_add(size_of(v)) > pfn {
            return true;
        }
        from = start.saturating_add(1);
    }
    false
}

/// The pins behind one assignment.
enum Pins {
    /// A 4K page.
    One(PinnedPage),
    /// The 512 pages of a 2M page, in order.
    Huge(KVec<PinnedPage>),
}

impl Pins {
    /// Never unpins the pages.
    fn leak(self) {
        match self {
            Pins::One(p) => core::mem::forget(p),
            Pins::Huge(v) => {
                for p in v {
                    core::mem::forget(p);
                }
            }
        }
    }
}

/// A page (4K or 2M) that a file assigned.
struct Assignment {
    pfn: u64,
    size: PageSize,
    pins: Pins,
}

/// Reservations of tree nodes taken before the locks, so that nothing after an RMP
/// change can fail for lack of memory.
struct Nodes {
    file: KVec<RBTreeNodeReservation<u64, Assignment>>,
    registry: KVec<RBTreeNodeReservation<u64, PageSize>>,
}

impl Nodes {
    fn new(count: usize) -> Result<Self> {
        let mut n = Self {
            file: KVec::with_capacity(count, GFP_KERNEL)?,
            registry: KVec::with_capacity(count, GFP_KERNEL)?,
        };
        for _ in 0..count {
            n.file
                .push(RBTreeNodeReservation::new(GFP_KERNEL)?, GFP_KERNEL)?;
            n.registry
                .push(RBTreeNodeReservation::new(GFP_KERNEL)?, GFP_KERNEL)?;
        }
        Ok(n)
    }
}

/// One open file of `/dev/snp_host`.
#[pin_data(PinnedDrop)]
pub(crate) struct FileState {
    shared: Arc<Shared>,
    /// The pages this file assigned, by user page number (`hva >> 12`).
    #[pin]
    pages: Mutex<RBTree<u64, Assignment>>,
}

/// `hva >> 12`, the key of a page in a file's tree.
fn key(hva: usize) -> u64 {
    // CAST: `usize` is 64 bits on x86-64.
    (hva >> user_pages::PAGE_SHIFT) as u64
}

/// A page about to become private: pinned, checked, not yet changed.
struct Pending {
    key: u64,
    pfn: u64,
    req: uapi::PrivateRequest,
    pins: Pins,
}

impl Pending {
    fn page(&self) -> directmap::Page {
        directmap::Page {
            pfn: self.pfn,
            size: self.req.size,
        }
    }
}

/// How one page's return to the host went.
enum Returned {
    /// Shared, mapped again, unpinned.
    Done,
    /// The RMP is busy past the retry bound: nothing changed.
    Busy(Error),
    /// The page is leaked (already accounted and reported).
    Leaked,
}

/// Pins the page of `req` and checks that it can be assigned at its size.
fn pin_private(req: uapi::PrivateRequest) -> Result<Pending> {
    let count = usize::try_from(req.size.pages()).map_err(|_| EINVAL)?;
    let mut pinned = user_pages::pin_anon(req.hva, count)?;
    let pfn = pinned.first().ok_or(EFAULT)?.pfn();
    if req.size == PageSize::Size2M {
        // One 2M folio (a THP), mapped whole: the RMP's 2M entry covers exactly it.
        let head = pinned.first().ok_or(EFAULT)?;
        let one_folio = head.is_folio_head()
            && head.folio_order() == 9
            && PageSize::Size2M.is_aligned(pfn)
            && pinned.iter().zip(pfn..).all(|(p, want)| p.pfn() == want);
        if !one_folio {
            return Err(EINVAL);
        }
    }
    let pins = if req.size == PageSize::Size2M {
        Pins::Huge(pinned)
    } else {
        Pins::One(pinned.pop().ok_or(EFAULT)?)
    };
    Ok(Pending {
        key: key(req.hva),
        pfn,
        req,
        pins,
    })
}

/// Pins pages `first..first + count` of a range for `convert_private`.
///
/// 4K pages are pinned with one call for the whole run, which is what makes a
/// range cheaper than page-by-page ioctls; if that fails, pages are pinned one by
/// one so that the error is reported at the page that caused it. Returns the pages
/// pinned, in order, and the error that stopped pinning, if any.
fn pin_range(req: &uapi::RangeRequest, first: u64, count: u64) -> Result<(KVec<Pending>, Result)> {
    let n = usize::try_from(count).map_err(|_| EINVAL)?;
    let mut pending = KVec::with_capacity(n, GFP_KERNEL)?;
    if req.size == PageSize::Size4K {
        if let Ok(pins) = user_pages::pin_anon(req.hva_of(first), n) {
            for (i, pin) in (first..).zip(pins) {
                let page = req.private_page(i);
                let pfn = pin.pfn();
                // Cannot fail: the capacity is `n`, and there are `n` pins.
                let _ = pending.push_within_capacity(Pending {
                    key: key(page.hva),
                    pfn,
                    req: page,
                    pins: Pins::One(pin),
                });
            }
            return Ok((pending, Ok(())));
        }
    }
    for i in first..first + count {
        match pin_private(req.private_page(i)) {
            Ok(p) => pending.push(p, GFP_KERNEL)?,
            Err(e) => return Ok((pending, Err(e))),
        }
    }
    Ok((pending, Ok(())))
}

/// Base pages per batch of a range conversion: bounds the memory a batch pins
/// and tracks before it takes effect; each batch costs one TLB flush.
const BATCH_PAGES: u64 = 4096;

impl FileState {
    /// Makes `pending` private in order: direct map first (one flush for all), then
    /// the RMP. Returns how many were converted and the error that stopped it.
    fn convert_private(&self, pending: KVec<Pending>) -> (u64, Result) {
        let shared = &self.shared;
        let nodes = match Nodes::new(pending.len()) {
            Ok(n) => n,
            Err(e) => return (0, Err(e)),
        };
        let mut pages = self.pages.lock();
        let mut registry = shared.registry.lock();
        let mut result = Ok(());

        // Stop at the first page someone already assigned.
        let mut n = pending.len();
        for (i, p) in pending.iter().enumerate() {
            let size = p.req.size;
            let busy = overlaps(&pages, p.key, size.pages(), |a| a.size.pages())
                || overlaps(&registry, p.pfn, size.pages(), |s| s.pages())
                || match shared.backend.any_assigned(p.pfn, size) {
                    Ok(assigned) => assigned,
                    Err(e) => {
                        result = Err(shared.failed(e));
                        n = i;
                        break;
                    }
                };
            if busy {
                result = Err(EBUSY);
                n = i;
                break;
            }
        }

        let mut batch = shared.directmap.batch();
        for (i, p) in pending.iter().take(n).enumerate() {
            if let Err(e) = batch.make_private(&p.page()) {
                result = Err(e);
                n = i;
                break;
            }
        }
        // No stale translation of these pages may survive their assignment.
        batch.flush();

        let mut done = 0;
        for p in pending.iter().take(n) {
            let state = State::private(p.req.gpa, p.req.size, p.req.asid, p.req.immutable);
            // SAFETY: `p`'s pages are pinned and not yet tracked by anyone (`registry` is
            // locked and said they are free); the batch took them out of the direct map
            // and flushed; on success they are tracked below, on failure given back.
            if let Err(e) = unsafe { shared.backend.rmpupdate(p.pfn, &state) } {
                result = Err(shared.failed(e));
                break;
            }
            done += 1;
        }

        let (mut file, mut reg) = (nodes.file, nodes.registry);
        for (i, p) in pending.into_iter().enumerate() {
            let size = p.req.size;
            if i >= n {
                // Never touched: dropping unpins.
                continue;
            }
            if i >= done {
                // Refused by the RMP: the direct map goes back; a page that cannot
                // be mapped again must not be freed.
                if batch.make_shared(&p.page()).is_err() {
                    if let Some(r) = reg.pop() {
                        registry.insert(r.into_node(p.pfn, size));
                    }
                    let a = Assignment {
                        pfn: p.pfn,
                        size,
                        pins: p.pins,
                    };
                    shared.leak(a, RmpError::NoMemory);
                }
                continue;
            }
            if let (Some(f), Some(r)) = (file.pop(), reg.pop()) {
                registry.insert(r.into_node(p.pfn, size));
                pages.insert(f.into_node(
                    p.key,
                    Assignment {
                        pfn: p.pfn,
                        size,
                        pins: p.pins,
                    },
                ));
            }
            shared.counters.private(size).fetch_add(1, Relaxed);
            shared.counters.make_private.fetch_add(1, Relaxed);
        }
        // CAST: `done` counts entries of a `KVec`.
        (done as u64, result)
    }

    /// Returns the page this file assigned at `k` (of `size`) to the host.
    fn return_one(
        &self,
        pages: &mut RBTree<u64, Assignment>,
        registry: &mut RBTree<u64, PageSize>,
        batch: &mut directmap::Batch<'_>,
        k: u64,
        size: PageSize,
    ) -> Result<Returned> {
        let shared = &self.shared;
        let pfn = match pages.get(&k) {
            Some(a) if a.size == size => a.pfn,
            _ => return Err(ENOENT),
        };
        let page = directmap::Page { pfn, size };
        // SAFETY: The page is this file's assignment at `k` (pinned, tracked); its direct
        // map is restored only after the RMP said shared.
        match unsafe { shared.backend.rmpupdate(pfn, &State::shared(size)) } {
            // Busy past the retry bound: nothing changed, the caller may try again.
            Err(e) if e.is_transient() => Ok(Returned::Busy(shared.failed(e))),
            Err(e) => {
                // Still guest-owned: it stays out of the direct map and off the allocator.
                let _ = shared.failed(e);
                shared.leak_tracked(pages, k, e);
                Ok(Returned::Leaked)
            }
            Ok(()) => {
                if batch.make_shared(&page).is_err() {
                    shared.leak_tracked(pages, k, RmpError::NoMemory);
                    return Ok(Returned::Leaked);
                }
                registry.remove(&pfn);
                // Mapped again: dropping the assignment unpins its pages.
                drop(pages.remove(&k));
                shared.counters.private(size).fetch_sub(1, Relaxed);
                shared.counters.make_shared.fetch_add(1, Relaxed);
                Ok(Returned::Done)
            }
        }
    }

    /// Returns `count` pages of `size` from `hva` to the host, in order, merging the
    /// direct map once at the end. Returns how many were returned and the error that
    /// stopped it.
    fn convert_shared(
        &self,
        hva_of: &dyn Fn(u64) -> usize,
        count: u64,
        size: PageSize,
    ) -> (u64, Result) {
        let mut pages = self.pages.lock();
        let mut registry = self.shared.registry.lock();
        let mut batch = self.shared.directmap.batch();
        for i in 0..count {
            let k = key(hva_of(i));
            match self.return_one(&mut pages, &mut registry, &mut batch, k, size) {
                Ok(Returned::Done) => {}
                Ok(Returned::Busy(e)) => return (i, Err(e)),
                // The RMP did change nothing it could be trusted with: the page is
                // counted as not converted.
                Ok(Returned::Leaked) => return (i, Err(EIO)),
                Err(e) => return (i, Err(e)),
            }
        }
        (count, Ok(()))
    }

    fn lookup(&self, p: &mut uapi::Page) -> Result {
        let hva = p.lookup_request()?;
        let pfn = user_pages::current_pfn(hva)?;
        let backend = &self.shared.backend;
        let found = backend.lookup(pfn).map_err(|e| self.shared.failed(e))?;
        // A page inside a 2M entry reports that entry.
        let at = if found.size == PageSize::Size2M && found.assigned() {
            PageSize::Size2M.align_down(pfn)
        } else {
            pfn
        };
        let r = backend.rmpread(at).map_err(|e| self.shared.failed(e))?;
        p.pfn = pfn;
        p.assigned = u8::from(r.assigned());
        p.asid = r.asid();
        p.gpa = r.gpa();
        p.level = u8::from(r.assigned() && r.page_size() == PageSize::Size2M);
        p.immutable = u8::from(r.immutable());
        // 0 where the hardware does not report it (RMPREAD hosts), as the ABI says.
        p.validated = u8::from(backend.validated(pfn).unwrap_or(false));
        Ok(())
    }

    fn make_private(&self, p: &mut uapi::Page) -> Result {
        let req = p.private_request(self.shared.max_asid)?;
        self.shared.backend.check_immutable(req.immutable)?;
        let pending = pin_private(req)?;
        let pfn = pending.pfn;
        let mut one = KVec::with_capacity(1, GFP_KERNEL)?;
        one.push(pending, GFP_KERNEL)?;
        self.convert_private(one).1?;
        p.pfn = pfn;
        p.assigned = 1;
        p.validated = 0;
        Ok(())
    }

    fn make_shared(&self, p: &mut uapi::Page) -> Result {
        let (hva, size) = p.shared_request()?;
        let pfn = self
            .pages
            .lock()
            .get(&key(hva))
            .filter(|a| a.size == size)
            .map(|a| a.pfn)
            .ok_or(ENOENT)?;
        self.convert_shared(&|_| hva, 1, size).1?;
        p.pfn = pfn;
        p.assigned = 0;
        p.validated = 0;
        Ok(())
    }

    /// `SNP_HOST_CONVERT_RANGE`: converts in batches of [`BATCH_PAGES`] base pages.
    fn convert_range(&self, r: &mut uapi::Range) -> Result {
        let req = r.request(self.shared.max_asid)?;
        self.shared
            .backend
            .check_immutable(req.to_private && req.immutable)?;
        let per_batch = (BATCH_PAGES / req.size.pages()).max(1);
        let mut done = 0;
        while done < req.npages {
            let count = per_batch.min(req.npages - done);
            let (converted, result) = if req.to_private {
                let (pending, pinned) = pin_range(&req, done, count)?;
                let (n, result) = self.convert_private(pending);
                (n, result.and(pinned))
            } else {
                self.convert_shared(&|i| req.hva_of(done + i), count, req.size)
            };
            done += converted;
            r.done = done;
            result?;
        }
        Ok(())
    }

    fn psmash(&self, p: &mut uapi::Page) -> Result {
        let hva = p.psmash_request()?;
        let k = key(hva);
        let nodes = Nodes::new(512)?;
        let shared = &self.shared;
        let mut pages = self.pages.lock();
        let pfn = match pages.get(&k) {
            Some(a) if a.size == PageSize::Size2M => a.pfn,
            _ => return Err(ENOENT),
        };
        let mut registry = shared.registry.lock();
        // SAFETY: `pfn` is this file's 2M assignment at `k` (pinned, tracked); below, its
        // 512 pages become 4K assignments of this file.
        unsafe { shared.backend.psmash(pfn) }.map_err(|e| shared.failed(e))?;

        let Some(Assignment {
            pins: Pins::Huge(pins),
            ..
        }) = pages.remove(&k)
        else {
            return Err(ENOENT);
        };
        registry.remove(&pfn);
        let (mut file, mut reg) = (nodes.file, nodes.registry);
        for (i, pin) in (0u64..).zip(pins) {
            if let (Some(f), Some(r)) = (file.pop(), reg.pop()) {
                registry.insert(r.into_node(pfn + i, PageSize::Size4K));
                pages.insert(f.into_node(
                    k + i,
                    Assignment {
                        pfn: pfn + i,
                        size: PageSize::Size4K,
                        pins: Pins::One(pin),
                    },
                ));
            }
        }
        shared.counters.private_2m.fetch_sub(1, Relaxed);
        shared.counters.private_4k.fetch_add(512, Relaxed);
        shared.counters.psmash.fetch_add(1, Relaxed);
        p.pfn = pfn;
        Ok(())
    }

    fn page_ioctl(&self, cmd: u32, arg: usize) -> Result {
        let user = UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<uapi::Page>());
        let (mut reader, mut writer) = user.reader_writer();
        let mut page: uapi::Page = reader.read()?;
        match cmd {
            uapi::LOOKUP => self.lookup(&mut page)?,
            uapi::MAKE_PRIVATE => self.make_private(&mut page)?,
            uapi::MAKE_SHARED => self.make_shared(&mut page)?,
            uapi::PSMASH => self.psmash(&mut page)?,
            _ => return Err(ENOTTY),
        }
        writer.write(&page)
    }
}

#[pinned_drop]
impl PinnedDrop for FileState {
    /// Closing the file returns every page it assigned to the host.
    fn drop(self: Pin<&mut Self>) {
        let shared = self.shared.clone();
        let mut pages = self.pages.lock();
        let mut registry = shared.registry.lock();
        let mut batch = shared.directmap.batch();
        while let Some((k, size)) = pages.cursor_front().map(|c| {
            let (&k, a) = c.current();
            (k, a.size)
        }) {
            match self.return_one(&mut pages, &mut registry, &mut batch, k, size) {
                Ok(Returned::Done | Returned::Leaked) => {}
                // Nobody is left to try again: the page stays private, so it is leaked.
                Ok(Returned::Busy(_)) | Err(_) => {
                    shared.leak_tracked(&mut pages, k, RmpError::FailInUse)
                }
            }
        }
    }
}

#[vtable]
impl MiscDevice for FileState {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        if !cred::capable_sys_admin() {
            return Err(EPERM);
        }
        let shared = crate::shared_of(misc);
        KBox::try_pin_init(
            try_pin_init!(Self {
                shared,
                pages <- new_mutex!(RBTree::new(), "snp_host_file_pages"),
            }),
            GFP_KERNEL,
        )
    }

    fn ioctl(me: Pin<&FileState>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            uapi::GET_STATUS => {
                let size = core::mem::size_of::<uapi::Status>();
                UserSlice::new(UserPtr::from_addr(arg), size)
                    .writer()
                    .write(&me.shared.status())?;
            }
            uapi::GET_STATS => {
                let size = core::mem::size_of::<uapi::Stats>();
                UserSlice::new(UserPtr::from_addr(arg), size)
                    .writer()
                    .write(&me.shared.stats())?;
            }
            uapi::LOOKUP | uapi::MAKE_PRIVATE | uapi::MAKE_SHARED | uapi::PSMASH => {
                me.page_ioctl(cmd, arg)?
            }
            uapi::CONVERT_RANGE => {
                let size = core::mem::size_of::<uapi::Range>();
                let (mut reader, mut writer) =
                    UserSlice::new(UserPtr::from_addr(arg), size).reader_writer();
                let mut range: uapi::Range = reader.read()?;
                range.done = 0;
                let result = me.convert_range(&mut range);
                // `done` goes back on failure too: it says what changed.
                writer.write(&range)?;
                result?;
            }
            _ => return Err(ENOTTY),
        }
        Ok(0)
    }
}

#[kunit_tests(snp_host_tracking)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_sees_4k_and_2m_entries() -> Result {
        let mut tree: RBTree<u64, PageSize> = RBTree::new();
        tree.try_create_and_insert(0x1000, PageSize::Size4K, GFP_KERNEL)?;
        tree.try_create_and_insert(0x2200, PageSize::Size2M, GFP_KERNEL)?;
        let pages = |s: &PageSize| s.pages();
        // The 4K entry: only its own page, or a 2M range that contains it.
        assert!(overlaps(&tree, 0x1000, 1, pages));
        assert!(!overlaps(&tree, 0x1001, 1, pages));
        assert!(!overlaps(&tree, 0x0fff, 1, pages));
        assert!(overlaps(&tree, 0x1000, 512, pages));
        // The 2M range just below ends where the 4K entry begins: no overlap.
        assert!(!overlaps(&tree, 0x0e00, 512, pages));
        // The 2M entry: every page inside it, from its first to its last.
        assert!(overlaps(&tree, 0x2200, 1, pages));
        assert!(overlaps(&tree, 0x23ff, 1, pages));
        assert!(!overlaps(&tree, 0x2400, 1, pages));
        assert!(!overlaps(&tree, 0x2000, 512, pages));
        assert!(overlaps(&tree, 0x2200, 512, pages));
        Ok(())
    }
}
