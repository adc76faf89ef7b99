// SPDX-License-Identifier: GPL-2.0

//! Conversions: the one place a page changes state between host and guest.
//!
//! A page goes through these states, each a type, and only forwards along the
//! arrows (or back the way it came when a step is refused):
//!
//! ```text
//! Candidate --protect--> Protected --assign--> GuestPage --unassign--> Unassigned
//!  (pinned)   (direct     (out of the    (RMP:    (RMP: guest-   (RMP:      (RMP: shared,
//!              map)        host's write   private)  owned)        shared)    direct map not
//!                          path)                                             restored yet)
//!
//! Unassigned --restore--> Released --Ledger::forget--> pins dropped (unpinned)
//! ```
//!
//! A [`Candidate`] owns plain pins: dropping it unpins, which is right because
//! nothing changed. From [`Protected`] on, the pins sit in a [`Held`], whose
//! `Drop` never unpins: a page whose state the module changed and did not fully
//! restore is *leaked* (kept pinned, off the allocator, reported and counted).
//! The only way to get the pins back is [`Unassigned::restore`], which exists
//! only after the RMP said shared, and succeeds only when the direct map is
//! restored. A forgotten value, an early return or a `None` where a value was
//! expected therefore leaks a page instead of freeing a guest-owned one.
//!
//! Batches: every page of a batch is protected, then the TLB is flushed once,
//! then the RMP changes; returning pages reverses the order and merges the
//! emptied direct-map regions once per batch (`directmap::Batch`).

use crate::counters::COUNTERS;
use crate::directmap::{self, Batch};
use crate::kernel_ext::{
    sched,
    task::RateLimit,
    user_pages::{self, Charge, PinAccount, PinnedPage},
};
use crate::ledger::{Books, FilePages, Slot, Spare};
use crate::owned::Owned;
use crate::rmp::{
    backend::{Backend, ErrDisplay},
    model::{PageSize, RmpError, State},
};
use crate::state::Shared;
use crate::uapi::PrivateRequest;
use core::mem::ManuallyDrop;
use core::sync::atomic::Ordering::Relaxed;
use kernel::{
    alloc::{flags::GFP_KERNEL_ACCOUNT, KVVec},
    prelude::*,
};

/// The pins of one page: a 4K page, or the 512 pages of a 2M page in order.
pub(crate) enum Pins {
    /// A 4K page.
    // Only ever dropped (which unpins) or forgotten (which leaks): never read.
    One(#[expect(dead_code)] PinnedPage),
    /// The 512 pages of a 2M page, in order.
    Huge(KVec<PinnedPage>),
}

/// Counts an RMP failure and turns it into the errno the ABI promises.
pub(crate) fn errno(e: RmpError) -> Error {
    COUNTERS.failures.add(1);
    crate::rmp::backend::errno(e)
}

/// A page pinned for a conversion and checked, whose state nothing changed yet.
///
/// # Invariants
///
/// `pins` pin exactly the `size` page at `pfn` (one page, or 512 in order from a
/// 2M-aligned `pfn` that form one folio).
pub(crate) struct Candidate {
    pfn: u64,
    size: PageSize,
    pins: Pins,
}

impl Candidate {
    /// A 4K page.
    pub(crate) fn small(pin: PinnedPage) -> Self {
        // INVARIANT: one pin of the page at its own PFN.
        Self {
            pfn: pin.pfn(),
            size: PageSize::Size4K,
            pins: Pins::One(pin),
        }
    }

    /// A 2M page from the 512 pins of a range, if they are one whole 2M folio
    /// (a THP mapped in full): the RMP's 2M entry covers exactly it.
    pub(crate) fn huge(pins: KVec<PinnedPage>) -> Result<Self> {
        let head = pins.first().ok_or(EFAULT)?;
        let pfn = head.pfn();
        let one_folio = pins.len() == 512
            && head.is_folio_head()
            && head.folio_order() == 9
            && PageSize::Size2M.is_aligned(pfn)
            && pins.iter().zip(pfn..).all(|(p, want)| p.pfn() == want);
        if !one_folio {
            return Err(EINVAL);
        }
        // INVARIANT: checked just above.
        Ok(Self {
            pfn,
            size: PageSize::Size2M,
            pins: Pins::Huge(pins),
        })
    }

    /// Returns the first PFN of the page.
    pub(crate) fn pfn(&self) -> u64 {
        self.pfn
    }

    /// Returns the size of the page.
    pub(crate) fn size(&self) -> PageSize {
        self.size
    }

    fn page(&self) -> directmap::Page {
        directmap::Page {
            pfn: self.pfn,
            size: self.size,
        }
    }

    /// Takes the page out of the host's write path in the direct map, as the policy
    /// says. `_claimed` is the ledger, open, in which the caller found the page free:
    /// while it is held no other path of the module changes the page's direct map.
    ///
    /// On error nothing changed and the candidate comes back.
    pub(crate) fn protect(
        self,
        _claimed: &Books<'_>,
        batch: &mut Batch<'_>,
    ) -> Result<Protected, (Self, Error)> {
        // SAFETY: The page is pinned (`pins`) and claimed in the ledger, so only this
        // path changes its direct map; it stays pinned until it is released or leaked.
        match unsafe { batch.make_private(&self.page()) } {
            // INVARIANT: the page is pinned and now protected as the policy says.
            Ok(()) => Ok(Protected(Held::new(self))),
            Err(e) => Err((self, e)),
        }
    }
}

/// The pins of a page whose state the module changed: dropping it leaks the page.
///
/// # Invariants
///
/// As for [`Candidate`]; `pins` are released only through [`Held::into_pins`].
struct Held {
    pfn: u64,
    size: PageSize,
    pins: ManuallyDrop<Pins>,
}

impl Held {
    fn new(c: Candidate) -> Self {
        Self {
            pfn: c.pfn,
            size: c.size,
            pins: ManuallyDrop::new(c.pins),
        }
    }

    fn page(&self) -> directmap::Page {
        directmap::Page {
            pfn: self.pfn,
            size: self.size,
        }
    }

    /// Gives the pins back; only the restoring transitions call it.
    fn into_pins(self) -> Pins {
        let mut me = ManuallyDrop::new(self);
        // SAFETY: `me` is never used or dropped again, so the pins are taken once.
        unsafe { ManuallyDrop::take(&mut me.pins) }
    }
}

/// Leak reports are rate-limited: the count (`leaked_pages`) is exact, the log is
/// not, so that a process cannot flood it.
static LEAK_LOG: RateLimit = RateLimit::new();

impl Drop for Held {
    fn drop(&mut self) {
        let pages = self.size.pages();
        COUNTERS.leaked_pages.add(pages);
        if !LEAK_LOG.allow() {
            return;
        }
        pr_err!(
            "pfn {:#x} ({} pages) cannot be returned to the host safely; it stays pinned and off the allocator for good\n",
            self.pfn,
            pages
        );
        // `pins` is `ManuallyDrop`: the pages are never unpinned, so never freed.
    }
}

/// A page out of the host's write path in the direct map, not yet assigned.
pub(crate) struct Protected(Held);

impl Protected {
    /// Assigns the page in the RMP (retrying transient failures as the backend does).
    ///
    /// The caller flushed the TLB after protecting it (`_flushed`). On error the RMP
    /// did not change and the protected page comes back.
    pub(crate) fn assign(
        self,
        backend: &Backend,
        state: &State,
        _flushed: &Flushed,
    ) -> Result<GuestPage, (Self, RmpError)> {
        // SAFETY: The page is pinned by the module (`Held` invariant) and claimed in the
        // ledger, so nothing else assigns or frees it; it is out of the host's write path
        // in the direct map and no stale writable translation survives (`_flushed`).
        match unsafe { backend.rmpupdate(self.0.pfn, state) } {
            Ok(()) => Ok(GuestPage(self.0)),
            Err(e) => Err((self, e)),
        }
    }

    /// Undoes [`Candidate::protect`] for a page the RMP refused. If the direct map
    /// cannot be restored, the page comes back and must be leaked.
    pub(crate) fn unprotect(self, owned: &Owned, batch: &mut Batch<'_>) -> Result<Candidate, Self> {
        // SAFETY: The page is pinned and claimed (`Held`), and `batch` made it private.
        match unsafe { batch.make_shared(&self.0.page()) } {
            Ok(()) => {
                // Never assigned, and writable in the direct map again: only now may the
                // hooks let writes to it through.
                owned.release(self.0.pfn, self.0.size);
                let (pfn, size) = (self.0.pfn, self.0.size);
                Ok(Candidate {
                    pfn,
                    size,
                    pins: self.0.into_pins(),
                })
            }
            Err(_) => Err(self),
        }
    }
}

/// Proof that a batch flushed the TLB after protecting its pages.
pub(crate) struct Flushed(());

/// Flushes the TLB once for every page `batch` protected so far. On error none of
/// them is protected (`Batch::flush`): none may be assigned, each is unprotected.
pub(crate) fn flush(batch: &mut Batch<'_>) -> Result<Flushed> {
    batch.flush()?;
    Ok(Flushed(()))
}

/// A guest-owned page (4K or 2M): the RMP assigned it, the module holds its pins.
pub(crate) struct GuestPage(Held);

impl GuestPage {
    /// Returns the first PFN of the page.
    pub(crate) fn pfn(&self) -> u64 {
        self.0.pfn
    }

    /// Returns the size of the page.
    pub(crate) fn size(&self) -> PageSize {
        self.0.size
    }

    /// Returns the page to the host in the RMP. On error the page is still guest-owned
    /// and comes back: the caller tracks it again (transient) or leaks it.
    pub(crate) fn unassign(self, backend: &Backend) -> Result<Unassigned, (Self, RmpError)> {
        // SAFETY: The page is pinned by the module and was assigned by it (type
        // invariant); making it shared hands nothing to a guest.
        match unsafe { backend.rmpupdate(self.0.pfn, &State::shared(self.0.size)) } {
            Ok(()) => Ok(Unassigned(self.0)),
            Err(e) => Err((self, e)),
        }
    }

    /// Splits a 2M guest page into its 512 4K guest pages (PSMASH), which `into`
    /// receives in order; `into` must have room for 512 more.
    ///
    /// On error nothing changed and the 2M page comes back.
    pub(crate) fn psmash(
        self,
        backend: &Backend,
        into: &mut KVVec<GuestPage>,
    ) -> Result<(), (Self, RmpError)> {
        if self.0.size != PageSize::Size2M
            || !matches!(&*self.0.pins, Pins::Huge(p) if p.len() == 512)
            || into.capacity() - into.len() < 512
        {
            return Err((self, RmpError::FailInput));
        }
        // SAFETY: The page is a 2M page pinned and assigned by the module (type
        // invariant); PSMASH changes no ownership.
        if let Err(e) = unsafe { backend.psmash(self.0.pfn) } {
            return Err((self, e));
        }
        let pfn = self.0.pfn;
        let pins = match self.0.into_pins() {
            Pins::Huge(pins) => pins,
            // Checked above, so this cannot happen; should it, the pins of a page that
            // is still guest-owned are kept, never dropped.
            other => {
                core::mem::forget(other);
                COUNTERS.leaked_pages.add(512);
                return Ok(());
            }
        };
        for (p, pin) in (pfn..).zip(pins) {
            // INVARIANT: PSMASH made every 4K page of the 2M page a guest page with
            // the same attributes, and `pin` pins page `p`.
            let page = GuestPage(Held {
                pfn: p,
                size: PageSize::Size4K,
                pins: ManuallyDrop::new(Pins::One(pin)),
            });
            // Cannot fail: room for 512 was checked above.
            let _ = into.push_within_capacity(page);
        }
        Ok(())
    }
}

/// A page the RMP gave back to the host whose direct map is not restored yet.
pub(crate) struct Unassigned(Held);

impl Unassigned {
    /// Makes the page writable in the direct map again. If that fails the page comes
    /// back and must be leaked: a host write to it could still fault.
    pub(crate) fn restore(self, owned: &Owned, batch: &mut Batch<'_>) -> Result<Released, Self> {
        // SAFETY: The page is pinned by the module (`Held`) and was made private by a
        // batch of the same direct map.
        match unsafe { batch.make_shared(&self.0.page()) } {
            Ok(()) => Ok(self.released(owned)),
            Err(_) => Err(self),
        }
    }

    /// Like [`Unassigned::restore`], but the restore may wait for
    /// [`Batch::restore_pending`], which restores neighbouring pages with one
    /// kernel call: then the page comes back as [`Restoring`].
    pub(crate) fn restore_later(
        self,
        owned: &Owned,
        batch: &mut Batch<'_>,
    ) -> Result<Result<Released, Restoring>, Self> {
        // SAFETY: As in `restore`; a page left waiting stays in `Restoring`, which
        // nobody frees before `Restoring::finish` (or leaks, dropped).
        match unsafe { batch.make_shared_later(&self.0.page()) } {
            Ok(false) => Ok(Ok(self.released(owned))),
            Ok(true) => Ok(Err(Restoring(self.0))),
            Err(_) => Err(self),
        }
    }

    /// The page, shared in the RMP and writable in the direct map again.
    fn released(self, owned: &Owned) -> Released {
        // The host's again in the RMP and writable in the direct map: only now may
        // the hooks let writes to it through (a GUP write before this point would
        // hit the read-only direct map).
        owned.release(self.0.pfn, self.0.size);
        let (pfn, size) = (self.0.pfn, self.0.size);
        Released {
            pfn,
            size,
            pins: self.0.into_pins(),
        }
    }
}

/// A page shared in the RMP whose direct map waits for [`Batch::restore_pending`].
/// Dropped unfinished, it is leaked ([`Held`]).
pub(crate) struct Restoring(Held);

impl Restoring {
    /// Finishes the page after [`Batch::restore_pending`] returned `restored`, the
    /// pages it restored (sorted): a page not among them comes back and must be
    /// leaked.
    pub(crate) fn finish(self, owned: &Owned, restored: &[u64]) -> Result<Released, Unassigned> {
        let page = Unassigned(self.0);
        if restored.binary_search(&page.0.pfn).is_ok() {
            Ok(page.released(owned))
        } else {
            Err(page)
        }
    }
}

/// A page fully returned to the host: shared in the RMP and mapped again. Only
/// the ledger consumes it (`Ledger::forget`), which drops its tracking entry and
/// hands the pins back to be dropped.
pub(crate) struct Released {
    pfn: u64,
    size: PageSize,
    pins: Pins,
}

impl Released {
    /// Returns the first PFN of the page.
    pub(crate) fn pfn(&self) -> u64 {
        self.pfn
    }

    /// Returns the size of the page.
    pub(crate) fn size(&self) -> PageSize {
        self.size
    }

    /// Returns the pins; dropping them unpins the page.
    pub(crate) fn into_pins(self) -> Pins {
        self.pins
    }
}

/// Logs why a guest page is about to be leaked; dropping it does the rest.
pub(crate) fn report_leak(pfn: u64, e: RmpError) {
    if !LEAK_LOG.allow() {
        return;
    }
    pr_err!(
        "pfn {:#x}: the RMP refused to return it to the host ({}); leaking it\n",
        pfn,
        ErrDisplay(e)
    );
}

/// Counts one more page of `size` made private through the module.
fn count_private(size: PageSize) {
    private_count(size).add(1);
    COUNTERS.make_private.add(1);
}

fn private_count(size: PageSize) -> &'static crate::counters::Counter {
    match size {
        PageSize::Size4K => &COUNTERS.private_4k,
        PageSize::Size2M => &COUNTERS.private_2m,
    }
}

/// Where a page of a batch is on its way to the guest.
enum Stage {
    Pinned(Candidate),
    Protected(Protected),
    Guest(GuestPage),
    /// Moved out (transiently, while a transition runs).
    Moved,
}

/// A page about to become private: its request, its pins and the slot it will be
/// tracked in, which travel together so that tracking it cannot fail.
pub(crate) struct Pending {
    key: u64,
    req: PrivateRequest,
    slot: Option<Slot>,
    stage: Stage,
}

impl Pending {
    /// Pairs `page`, pinned at the address of `req` (user page `key`), with its slot.
    pub(crate) fn new(key: u64, req: PrivateRequest, page: Candidate) -> Result<Self> {
        Ok(Self {
            key,
            req,
            slot: Some(Slot::new()?),
            stage: Stage::Pinned(page),
        })
    }

    /// Returns the first PFN of the page.
    pub(crate) fn pfn(&self) -> u64 {
        match &self.stage {
            Stage::Pinned(c) => c.pfn,
            Stage::Protected(p) => p.0.pfn,
            Stage::Guest(g) => g.0.pfn,
            Stage::Moved => 0,
        }
    }

    fn take(&mut self) -> Stage {
        core::mem::replace(&mut self.stage, Stage::Moved)
    }
}

/// Base pages per batch of a range conversion or of a close: bounds the memory a
/// batch pins and tracks before it takes effect, how long the locks are held,
/// and how often a long operation looks at fatal signals; each batch costs one
/// TLB flush.
pub(crate) const BATCH_PAGES: u64 = 4096;

/// Makes `pending` private in order: direct map first (one flush for all), then
/// the RMP; tracks every page that became guest-owned in `file`. `charge` covers
/// the pages; it keeps the charge of those that stay pinned.
///
/// Stops at the first page that is not free or that a step refuses. Returns how
/// many pages became private and the error that stopped it.
pub(crate) fn make_private(
    shared: &Shared,
    file: &FilePages,
    account: &PinAccount,
    mut pending: KVVec<Pending>,
    charge: &mut Charge<'_>,
) -> (u64, Result) {
    let backend = &*shared.backend;
    let mut books = shared.ledger.open(file);
    let mut result = Ok(());

    // Stop at the first page someone already assigned. The pages of one batch are
    // distinct (long-term pins of private anonymous pages, in distinct pages of
    // one range), so checking each against the ledger suffices.
    let mut n = pending.len();
    for (i, p) in pending.iter().enumerate() {
        let Stage::Pinned(page) = &p.stage else {
            continue;
        };
        let (pfn, size) = (page.pfn(), page.size());
        let busy = !books.is_free(p.key, pfn, size)
            || match backend.any_assigned(pfn, size) {
                Ok(assigned) => assigned,
                Err(e) => {
                    result = Err(errno(e));
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

    // The user side first: published as guest pages, user mappings read-only, so
    // that from here on no write through the user mapping (a store, or a GUP write
    // through the direct map on the process's behalf) can reach these pages.
    let claimed = n;
    if let Err((i, e)) = protect_user(shared, account, pending.get(..n).unwrap_or(&[])) {
        result = Err(e);
        n = i;
    }

    let mut batch = shared.directmap.batch();
    for (i, p) in pending.iter_mut().enumerate().take(n) {
        if let Stage::Pinned(page) = p.take() {
            match page.protect(&books, &mut batch) {
                Ok(protected) => p.stage = Stage::Protected(protected),
                Err((page, e)) => {
                    p.stage = Stage::Pinned(page);
                    result = Err(e);
                    n = i;
                    break;
                }
            }
        }
    }
    // No stale writable translation of these pages may survive their assignment.
    // If the flush failed, no page is assigned and all are unprotected below.
    let flushed = flush(&mut batch).inspect_err(|&e| result = Err(e));

    for p in pending.iter_mut().take(n) {
        let Ok(flushed) = &flushed else {
            break;
        };
        if let Stage::Protected(page) = p.take() {
            let req = &p.req;
            let state = State::private(req.gpa, req.size, req.asid, req.immutable);
            match page.assign(backend, &state, flushed) {
                Ok(guest) => p.stage = Stage::Guest(guest),
                Err((page, e)) => {
                    p.stage = Stage::Protected(page);
                    result = Err(errno(e));
                    break;
                }
            }
        }
    }

    let mut done = 0;
    for (i, p) in pending.iter_mut().enumerate() {
        let slot = p.slot.take();
        match (p.take(), slot) {
            (Stage::Guest(guest), Some(slot)) => {
                let size = guest.size();
                charge.keep(size.pages());
                books.track(slot, p.key, guest);
                count_private(size);
                done += 1;
            }
            // Refused by the RMP: the direct map goes back and the page is unpinned;
            // a page whose direct map cannot be restored must not be freed.
            (Stage::Protected(page), slot) => match page.unprotect(&shared.owned, &mut batch) {
                Ok(candidate) => drop(candidate),
                Err(page) => {
                    if let Some(slot) = slot {
                        books.track_leaked(slot, page.0.pfn, page.0.size);
                    }
                    charge.keep(page.0.size.pages());
                    drop(page);
                }
            },
            // Never protected in the direct map: no longer a guest page for the
            // hooks if it was published, and dropping unpins it. (A guest page
            // without a slot cannot happen: every `Pending` has one; dropping it
            // would leak it.)
            (Stage::Pinned(page), _) => {
                if i < claimed {
                    shared.owned.release(page.pfn, page.size);
                }
                drop(page);
            }
            (stage, _) => drop(stage),
        }
    }
    (done, result)
}

/// Publishes the pages of `pending` (pinned, not yet changed) as guest pages in
/// the lock-free view the kernel's hooks read and, where the hooks are in place,
/// write-protects their user mappings, so that every write to them faults and is
/// judged. The view comes first: a write landing between the two steps is still
/// refused. The pages are pinned, but their mappings could have moved (mremap())
/// between the pin and the write-protection: each address is checked to map its
/// page still, afterwards, when a move keeps the new PTE read-only.
///
/// On error, returns the index of the first page that must not be assigned (all of
/// `pending` is published either way; the caller withdraws what it does not assign).
fn protect_user(
    shared: &Shared,
    account: &PinAccount,
    pending: &[Pending],
) -> Result<(), (usize, Error)> {
    for p in pending {
        if let Stage::Pinned(page) = &p.stage {
            shared.owned.claim(page.pfn, page.size);
        }
    }
    if !shared.hooks.load(Relaxed) {
        return Ok(());
    }
    // One call per run of contiguous addresses (a range is one run).
    let mut i = 0;
    while let Some(first) = pending.get(i) {
        let start = first.req.hva;
        let mut end = start;
        let mut j = i;
        while let Some(p) = pending.get(j).filter(|p| p.req.hva == end) {
            // CAST: a page is at most 2M.
            end += p.req.size.bytes() as usize;
            j += 1;
        }
        account.wrprotect(start, end - start).map_err(|e| (i, e))?;
        let run = pending.get(i..j).unwrap_or(&[]);
        let mut expected = KVVec::new();
        for p in run {
            if let Stage::Pinned(page) = &p.stage {
                for pfn in page.pfn..page.pfn + page.size.pages() {
                    expected.push(pfn, GFP_KERNEL).map_err(|e| (i, e.into()))?;
                }
            }
        }
        if let Some(bad) = user_pages::first_moved(start, &expected).map_err(|e| (i, e))? {
            // The page of base page `bad` of the run is no longer where it was pinned.
            let mut at = 0u64;
            // CAST: an index into a batch of at most `BATCH_PAGES` pages.
            let bad = bad as u64;
            for (k, p) in run.iter().enumerate() {
                at += p.req.size.pages();
                if bad < at {
                    return Err((i + k, EAGAIN));
                }
            }
            return Err((i, EAGAIN));
        }
        i = j;
    }
    Ok(())
}

/// Returns `count` pages of `size` that `file` holds, at user pages `key_of(0..count)`,
/// to the host in order, merging the direct map once at the end. Returns how many
/// were returned and the error that stopped it.
pub(crate) fn make_shared(
    shared: &Shared,
    file: &FilePages,
    account: &PinAccount,
    key_of: &dyn Fn(u64) -> u64,
    count: u64,
    size: PageSize,
) -> (u64, Result) {
    let backend = &*shared.backend;
    // A page the RMP is too busy to take back goes back where it was, in this node.
    let spare = match Spare::new() {
        Ok(s) => s,
        Err(e) => return (0, Err(e)),
    };
    // Pages whose direct map waits for the batch's one restore per run of
    // neighbours, with their places in the request. Without room for the list,
    // every page is restored on its own.
    let mut waiting = KVVec::new();
    let later = waiting
        .reserve(count.min(BATCH_PAGES) as usize, GFP_KERNEL)
        .is_ok();
    let mut books = shared.ledger.open(file);
    let mut batch = shared.directmap.batch();
    let mut stop = (count, Ok(()));
    for i in 0..count {
        let key = key_of(i);
        let Some(guest) = books.take(key, size) else {
            stop = (i, Err(ENOENT));
            break;
        };
        let pfn = guest.pfn();
        match guest.unassign(backend) {
            Ok(unassigned) => {
                let restored = if later && waiting.len() < waiting.capacity() {
                    unassigned.restore_later(&shared.owned, &mut batch)
                } else {
                    unassigned.restore(&shared.owned, &mut batch).map(Ok)
                };
                match restored {
                    Ok(Ok(released)) => {
                        drop(books.forget(released));
                        returned(account, size);
                    }
                    Ok(Err(restoring)) => {
                        // Cannot fail: below the capacity, checked above.
                        let _ = waiting.push_within_capacity((i, restoring));
                    }
                    Err(unassigned) => {
                        leaked(&mut books, pfn, size);
                        drop(unassigned);
                        stop = (i, Err(EIO));
                        break;
                    }
                }
            }
            // Busy past the retry bound: nothing changed, the caller may try again.
            Err((guest, e)) if e.is_transient() => {
                books.put_back(spare, key, guest);
                stop = (i, Err(errno(e)));
                break;
            }
            // Still guest-owned: it stays out of the direct map and off the allocator.
            Err((guest, e)) => {
                report_leak(pfn, e);
                let _ = errno(e);
                leaked(&mut books, pfn, size);
                drop(guest);
                stop = (i, Err(EIO));
                break;
            }
        }
    }
    // Before any waiting page is let go.
    let restored = batch.restore_pending();
    for (i, restoring) in waiting.drain_all() {
        let pfn = restoring.0.pfn;
        match restoring.finish(&shared.owned, &restored) {
            Ok(released) => {
                drop(books.forget(released));
                returned(account, size);
            }
            // A restore at a 4K leaf needs no memory and so cannot fail (injected
            // failures strike before, at the page); should it, the page is leaked
            // and `done` names the first such page, though pages after it in this
            // batch went back already (Documentation/snp_host.rst,
            // SNP_HOST_CONVERT_RANGE).
            Err(unassigned) => {
                leaked(&mut books, pfn, size);
                drop(unassigned);
                if i < stop.0 {
                    stop = (i, Err(EIO));
                }
            }
        }
    }
    stop
}

/// Marks the page at `pfn`, which cannot be returned, leaked in `books`: it no
/// longer counts as private.
fn leaked(books: &mut Books<'_>, pfn: u64, size: PageSize) {
    books.mark_leaked(pfn);
    private_count(size).sub(1);
}

/// Counts a page of `size` returned to the host and uncharges its pins.
fn returned(account: &PinAccount, size: PageSize) {
    account.uncharge(size.pages());
    private_count(size).sub(1);
    COUNTERS.make_shared.add(1);
}

/// Splits the 2M page `file` holds at user page `key` into 512 4K guest pages.
/// Returns its first PFN.
pub(crate) fn psmash(shared: &Shared, file: &FilePages, key: u64) -> Result<u64> {
    let mut pages = KVVec::with_capacity(512, GFP_KERNEL_ACCOUNT)?;
    let mut slots = KVVec::with_capacity(512, GFP_KERNEL_ACCOUNT)?;
    for _ in 0..512 {
        slots.push(Slot::new()?, GFP_KERNEL_ACCOUNT)?;
    }
    let spare = Spare::new()?;
    let mut books = shared.ledger.open(file);
    let guest = books.take(key, PageSize::Size2M).ok_or(ENOENT)?;
    let pfn = guest.pfn();
    match guest.psmash(&shared.backend, &mut pages) {
        Ok(()) => {
            books.split(key, pfn, pages, slots);
            COUNTERS.private_2m.sub(1);
            COUNTERS.private_4k.add(512);
            COUNTERS.psmash.add(1);
            Ok(pfn)
        }
        Err((guest, e)) => {
            books.put_back(spare, key, guest);
            Err(errno(e))
        }
    }
}

/// Rounds of trying a busy page again when a file is closed, before it is leaked;
/// each attempt is itself retried by the backend for up to a second.
const CLOSE_ROUNDS: u32 = 4;

/// A page of a closing file on its way back to the host.
enum Returning {
    Guest(GuestPage),
    Unassigned(Unassigned),
    /// Shared in the RMP, its direct map waiting for the batch's restore.
    Restoring(Restoring),
    Released(Released),
    /// Leaked (reported and counted already); its registry entry is marked.
    Leaked(u64),
    /// Moved out (transiently, while a transition runs).
    Moved,
}

impl Returning {
    fn take(&mut self) -> Self {
        core::mem::replace(self, Returning::Moved)
    }

    /// Takes the page out if it still waits for the RMP, leaving any other entry
    /// as it is: a `let ... = take() else` would drop a leaked page's entry (its
    /// registry entry then never marked) or an unassigned page (leaked unseen).
    fn take_guest(&mut self) -> Option<GuestPage> {
        match self.take() {
            Returning::Guest(g) => Some(g),
            other => {
                *self = other;
                None
            }
        }
    }

    /// Takes the page out if the RMP gave it back and its direct map is next.
    fn take_unassigned(&mut self) -> Option<Unassigned> {
        match self.take() {
            Returning::Unassigned(u) => Some(u),
            other => {
                *self = other;
                None
            }
        }
    }

    /// Takes the page out if its direct map waits for the batch's restore.
    fn take_restoring(&mut self) -> Option<Restoring> {
        match self.take() {
            Returning::Restoring(r) => Some(r),
            other => {
                *self = other;
                None
            }
        }
    }
}

/// Returns every page `file` holds to the host, a batch at a time, holding the
/// registry only to settle each batch and no lock at all while the RMP is busy;
/// a page that cannot be returned is leaked (nobody is left to try again). Pages
/// are uncharged from `account`. Needs no memory: without it, pages go back one
/// at a time.
pub(crate) fn release_all(shared: &Shared, file: &FilePages, account: &PinAccount) {
    loop {
        let mut pages = KVVec::new();
        if pages.reserve(BATCH_PAGES as usize, GFP_KERNEL).is_ok() {
            file.drain_into(&mut pages, BATCH_PAGES, Returning::Guest);
            if pages.is_empty() {
                return;
            }
            release(shared, account, &mut pages);
        } else {
            let Some(guest) = file.take_first() else {
                return;
            };
            release(shared, account, &mut [Returning::Guest(guest)]);
        }
        sched::cond_resched();
    }
}

/// Returns `pages`, taken off a closing file: the RMP first (busy pages are tried
/// again a few rounds, rescheduling in between, with no lock held), then the
/// direct map in one batch, then the ledger under one lock.
fn release(shared: &Shared, account: &PinAccount, pages: &mut [Returning]) {
    let backend = &*shared.backend;
    for round in 1..=CLOSE_ROUNDS {
        let mut busy = false;
        for r in pages.iter_mut() {
            let Some(guest) = r.take_guest() else {
                continue;
            };
            let pfn = guest.pfn();
            *r = match guest.unassign(backend) {
                Ok(unassigned) => Returning::Unassigned(unassigned),
                Err((guest, e)) if e.is_transient() && round < CLOSE_ROUNDS => {
                    busy = true;
                    Returning::Guest(guest)
                }
                Err((guest, e)) => {
                    report_leak(pfn, e);
                    let _ = errno(e);
                    drop(guest);
                    Returning::Leaked(pfn)
                }
            };
        }
        if !busy {
            break;
        }
        sched::cond_resched();
    }
    {
        let mut batch = shared.directmap.batch();
        for r in pages.iter_mut() {
            let Some(unassigned) = r.take_unassigned() else {
                continue;
            };
            let pfn = unassigned.0.pfn;
            *r = match unassigned.restore_later(&shared.owned, &mut batch) {
                Ok(Ok(released)) => Returning::Released(released),
                Ok(Err(restoring)) => Returning::Restoring(restoring),
                Err(unassigned) => {
                    drop(unassigned);
                    Returning::Leaked(pfn)
                }
            };
        }
        // One kernel call per run of neighbours, before any page is let go.
        let restored = batch.restore_pending();
        for r in pages.iter_mut() {
            let Some(restoring) = r.take_restoring() else {
                continue;
            };
            let pfn = restoring.0.pfn;
            *r = match restoring.finish(&shared.owned, &restored) {
                Ok(released) => Returning::Released(released),
                Err(unassigned) => {
                    drop(unassigned);
                    Returning::Leaked(pfn)
                }
            };
        }
    }
    let mut registry = shared.ledger.registry();
    for r in pages.iter_mut() {
        match r.take() {
            Returning::Released(released) => {
                let size = released.size();
                drop(registry.forget(released));
                private_count(size).sub(1);
                COUNTERS.make_shared.add(1);
                account.uncharge(size.pages());
            }
            Returning::Leaked(pfn) => {
                if let Some(size) = registry.mark_leaked(pfn) {
                    private_count(size).sub(1);
                }
            }
            _ => {}
        }
    }
}

/// Returns whether the caller of a long operation is being killed: it then stops
/// between batches. Gives the CPU up otherwise.
pub(crate) fn should_stop() -> bool {
    if sched::fatal_signal_pending() {
        return true;
    }
    sched::cond_resched();
    false
}
