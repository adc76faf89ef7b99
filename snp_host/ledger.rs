// SPDX-License-Identifier: GPL-2.0

//! The ledger: which pages the module tracks, and for whom.
//!
//! Three trees record every page the module changed:
//!
//! - each file's own pages ([`FilePages`]), by user page number in the
//!   address space that opened the file (`hva >> 12`), holding the
//!   [`GuestPage`] itself, so closing the file finds everything it must return;
//! - the kernel's pages (KVM's and the CCP driver's, through the kernel's RMP
//!   operations: `snp_host/kvm.rs`), by PFN, holding the [`KernelPage`], since
//!   the kernel names its pages by PFN only;
//! - the module-wide registry, by PFN, of every page assigned through any file
//!   and every page leaked, so that "is this page free? then assign it" is one
//!   step across files and processes, and a leaked page is never assigned again.
//!
//! This file is the only code that adds, moves (PSMASH) or removes entries, and
//! it keeps the two trees in step: a page enters both at once ([`Books::track`],
//! with the [`Slot`] reserved for it before anything changed), leaves its file's
//! tree while it is being returned, and leaves the registry only as a
//! [`Released`] page, that is, once the RMP says shared and the direct map is
//! restored. A page that is never released stays registered: leaked.
//!
//! Lock order: a file's pages or the kernel's pages (never both), then the
//! registry (then, outside this file, the direct map's region lock and the
//! backend's lock). All are mutexes.

use crate::convert::{GuestPage, Pins, Released};
use crate::kvm::KernelPage;
use crate::rmp::model::PageSize;
use kernel::{
    alloc::{flags::GFP_KERNEL_ACCOUNT, KVVec},
    fmt, new_mutex,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{Mutex, MutexGuard},
};

/// What the registry knows of a tracked PFN.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// The size of the page tracked from this PFN.
    pub(crate) size: PageSize,
    /// Whether the page is leaked (no file holds it any more).
    pub(crate) leaked: bool,
}

/// The tree nodes one page needs once it is guest-owned, allocated before its
/// state changes so that tracking it cannot fail afterwards.
pub(crate) struct Slot {
    file: RBTreeNodeReservation<u64, GuestPage>,
    registry: RBTreeNodeReservation<u64, Entry>,
}

impl Slot {
    /// Allocates a slot, charged to the caller's memory cgroup.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            file: RBTreeNodeReservation::new(GFP_KERNEL_ACCOUNT)?,
            registry: RBTreeNodeReservation::new(GFP_KERNEL_ACCOUNT)?,
        })
    }
}

/// A file-tree node reserved for putting a page back (see [`Books::put_back`]).
pub(crate) struct Spare(RBTreeNodeReservation<u64, GuestPage>);

impl Spare {
    /// Allocates a spare node.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self(RBTreeNodeReservation::new(GFP_KERNEL_ACCOUNT)?))
    }
}

/// Returns whether `[first, first + pages)` overlaps an entry of `tree`, whose
/// values are the sizes (in base pages) of the entries at their keys.
fn overlaps<V>(tree: &RBTree<u64, V>, first: u64, pages: u64, size_of: impl Fn(&V) -> u64) -> bool {
    first_overlap(tree, first, pages, size_of).is_some()
}

/// Returns the key of the first entry of `tree` that overlaps `[first, first +
/// pages)`, the values being sized as [`overlaps`] says.
fn first_overlap<V>(
    tree: &RBTree<u64, V>,
    first: u64,
    pages: u64,
    size_of: impl Fn(&V) -> u64,
) -> Option<u64> {
    let end = first.saturating_add(pages);
    // An entry that overlaps starts at most one 2M page before `first`.
    let mut from = PageSize::Size2M.align_down(first);
    while let Some(c) = tree.cursor_lower_bound(&from) {
        let (&start, v) = c.current();
        if start >= end {
            return None;
        }
        if start.saturating_add(size_of(v)) > first {
            return Some(start);
        }
        from = start.saturating_add(1);
    }
    None
}

/// Inserts the registry entry of a page of `size` at `pfn` into `registry`.
fn register(
    registry: &mut RBTree<u64, Entry>,
    node: RBTreeNodeReservation<u64, Entry>,
    pfn: u64,
    size: PageSize,
    leaked: bool,
) {
    registry.insert(node.into_node(pfn, Entry { size, leaked }));
}

/// The module-wide registry, and the kernel's pages.
#[pin_data]
pub(crate) struct Ledger {
    #[pin]
    registry: Mutex<RBTree<u64, Entry>>,
    #[pin]
    kernel: Mutex<RBTree<u64, KernelPage>>,
}

/// The tree nodes a page of the kernel needs once it is private, allocated before
/// its state changes so that tracking it cannot fail afterwards.
pub(crate) struct KernelSlot {
    kernel: RBTreeNodeReservation<u64, KernelPage>,
    registry: RBTreeNodeReservation<u64, Entry>,
}

impl KernelSlot {
    /// Allocates a slot. The memory is the module's, not charged to a caller: the
    /// kernel's RMP operations run on behalf of KVM or a driver.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            kernel: RBTreeNodeReservation::new(GFP_KERNEL)?,
            registry: RBTreeNodeReservation::new(GFP_KERNEL)?,
        })
    }
}

/// The kernel's pages and the registry, locked together in the lock order.
pub(crate) struct KernelBooks<'a> {
    kernel: MutexGuard<'a, RBTree<u64, KernelPage>>,
    registry: MutexGuard<'a, RBTree<u64, Entry>>,
}

impl KernelBooks<'_> {
    /// Returns the kernel's page that starts at `pfn`.
    pub(crate) fn get(&self, pfn: u64) -> Option<&KernelPage> {
        self.kernel.get(&pfn)
    }

    /// Returns whether nobody tracks any page of the `size` page at `pfn`.
    pub(crate) fn is_free(&self, pfn: u64, size: PageSize) -> bool {
        !overlaps(&self.registry, pfn, size.pages(), |e| e.size.pages())
    }

    /// Returns the first PFN of the kernel's page that holds `pfn`, if any.
    pub(crate) fn holding(&self, pfn: u64) -> Option<u64> {
        first_overlap(&self.kernel, pfn, 1, |p| p.size().pages())
    }

    /// Tracks `page`, now private.
    pub(crate) fn track(&mut self, slot: KernelSlot, page: KernelPage) {
        let (pfn, size) = (page.pfn(), page.size());
        register(&mut self.registry, slot.registry, pfn, size, false);
        self.kernel.insert(slot.kernel.into_node(pfn, page));
    }

    /// Registers a page leaked before it was tracked, so that nobody assigns it again.
    pub(crate) fn track_leaked(&mut self, slot: KernelSlot, pfn: u64, size: PageSize) {
        register(&mut self.registry, slot.registry, pfn, size, true);
    }

    /// Takes the kernel's page at `pfn` off its tree; its registry entry stays until
    /// [`KernelBooks::forget`] or [`KernelBooks::mark_leaked`].
    pub(crate) fn take(&mut self, pfn: u64) -> Option<KernelPage> {
        self.kernel.remove(&pfn)
    }

    /// Stops tracking the page at `pfn`, returned to the host.
    pub(crate) fn forget(&mut self, pfn: u64) {
        self.registry.remove(&pfn);
    }

    /// Records that the page at `pfn`, taken off the tree, is leaked for good.
    pub(crate) fn mark_leaked(&mut self, pfn: u64) {
        if let Some(e) = self.registry.get_mut(&pfn) {
            e.leaked = true;
        }
    }

    /// Replaces the tracking of the 2M page at `pfn`, taken off the tree, by its 512
    /// 4K pages after a PSMASH, each in its own slot.
    pub(crate) fn split(&mut self, pfn: u64, pages: KVVec<KernelPage>, slots: KVVec<KernelSlot>) {
        self.registry.remove(&pfn);
        for (page, slot) in pages.into_iter().zip(slots) {
            self.track(slot, page);
        }
    }
}

/// One file's guest pages, by user page number.
#[pin_data]
pub(crate) struct FilePages {
    #[pin]
    tree: Mutex<RBTree<u64, GuestPage>>,
}

impl FilePages {
    /// Creates an empty set.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            tree <- new_mutex!(RBTree::new(), "snp_host_file_pages"),
        })
    }

    /// Takes guest pages off the file, in address order, for returning them, up to
    /// `max_pages` base pages' worth and no more than `out` has room for (nothing
    /// is allocated: a page is only taken when it has a place). Their registry
    /// entries stay until they are released.
    pub(crate) fn drain_into<T>(
        &self,
        out: &mut KVVec<T>,
        max_pages: u64,
        wrap: impl Fn(GuestPage) -> T,
    ) {
        let mut tree = self.tree.lock();
        let mut taken = 0;
        while taken < max_pages && out.len() < out.capacity() {
            let Some(key) = tree.cursor_front().map(|c| *c.current().0) else {
                break;
            };
            let Some(page) = tree.remove(&key) else {
                break;
            };
            taken += page.size().pages();
            // Cannot fail: there is room (checked above).
            let _ = out.push_within_capacity(wrap(page));
        }
    }

    /// Takes the first guest page off the file, without allocating anything.
    pub(crate) fn take_first(&self) -> Option<GuestPage> {
        let mut tree = self.tree.lock();
        let key = tree.cursor_front().map(|c| *c.current().0)?;
        tree.remove(&key)
    }
}

/// The registry, locked, for settling the pages of a closing file.
pub(crate) struct Registry<'a>(MutexGuard<'a, RBTree<u64, Entry>>);

impl Registry<'_> {
    /// Stops tracking a page returned to the host; dropping the result unpins it.
    pub(crate) fn forget(&mut self, released: Released) -> Pins {
        self.0.remove(&released.pfn());
        released.into_pins()
    }

    /// Records that the page at `pfn`, taken off its file, is leaked; returns its size.
    pub(crate) fn mark_leaked(&mut self, pfn: u64) -> Option<PageSize> {
        let e = self.0.get_mut(&pfn)?;
        e.leaked = true;
        Some(e.size)
    }
}

/// A file's pages and the registry, locked together in the lock order.
pub(crate) struct Books<'a> {
    file: MutexGuard<'a, RBTree<u64, GuestPage>>,
    registry: MutexGuard<'a, RBTree<u64, Entry>>,
}

impl Ledger {
    /// Creates an empty registry.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            registry <- new_mutex!(RBTree::new(), "snp_host_registry"),
            kernel <- new_mutex!(RBTree::new(), "snp_host_kernel_pages"),
        })
    }

    /// Locks the kernel's pages and the registry.
    pub(crate) fn kernel(&self) -> KernelBooks<'_> {
        let kernel = self.kernel.lock();
        KernelBooks {
            kernel,
            registry: self.registry.lock(),
        }
    }

    /// Locks `file`'s pages and the registry.
    pub(crate) fn open<'a>(&'a self, file: &'a FilePages) -> Books<'a> {
        let file = file.tree.lock();
        Books {
            file,
            registry: self.registry.lock(),
        }
    }

    /// Locks the registry for settling the pages of a closing file.
    pub(crate) fn registry(&self) -> Registry<'_> {
        Registry(self.registry.lock())
    }

    /// Runs `f` if a file holds `pfn` as part of a guest page (not leaked), with the
    /// registry locked, so that the page stays pinned while `f` runs (a release
    /// drops its entry, and its pins, under this lock); `EINVAL` otherwise, and for
    /// the kernel's pages (KVM's), which the registry tracks too.
    pub(crate) fn with_held(&self, pfn: u64, f: impl FnOnce() -> Result) -> Result {
        // The kernel's tree first, as everywhere (lock order).
        let books = self.kernel();
        let kernel_page = first_overlap(&books.kernel, pfn, 1, |p| p.size().pages()).is_some();
        if !kernel_page && Self::holds(&books.registry, pfn) {
            f()
        } else {
            Err(EINVAL)
        }
    }

    fn holds(registry: &RBTree<u64, Entry>, pfn: u64) -> bool {
        first_overlap(registry, pfn, 1, |e| e.size.pages())
            .and_then(|start| registry.get(&start))
            .is_some_and(|e| !e.leaked)
    }

    /// Calls `f` for every tracked PFN, in order.
    pub(crate) fn for_each(&self, mut f: impl FnMut(u64, Entry) -> fmt::Result) -> fmt::Result {
        let registry = self.registry.lock();
        for (&pfn, &e) in registry.iter() {
            f(pfn, e)?;
        }
        Ok(())
    }
}

impl Books<'_> {
    /// Returns whether the `size` page at user page `key` and PFN `pfn` is free:
    /// the file has nothing at those addresses and nobody tracks those PFNs.
    pub(crate) fn is_free(&self, key: u64, pfn: u64, size: PageSize) -> bool {
        let pages = size.pages();
        !overlaps(&self.file, key, pages, |p| p.size().pages())
            && !overlaps(&self.registry, pfn, pages, |e| e.size.pages())
    }

    /// Tracks `page`, now guest-owned, at user page `key`.
    pub(crate) fn track(&mut self, slot: Slot, key: u64, page: GuestPage) {
        let (pfn, size) = (page.pfn(), page.size());
        register(&mut self.registry, slot.registry, pfn, size, false);
        self.file.insert(slot.file.into_node(key, page));
    }

    /// Registers a page that is leaked before a file tracked it (the RMP refused it
    /// and the direct map could not be restored), so that nobody assigns it again.
    pub(crate) fn track_leaked(&mut self, slot: Slot, pfn: u64, size: PageSize) {
        register(&mut self.registry, slot.registry, pfn, size, true);
    }

    /// Returns the PFN of the `size` page the file holds at `key`.
    pub(crate) fn get(&self, key: u64, size: PageSize) -> Option<u64> {
        self.file
            .get(&key)
            .filter(|p| p.size() == size)
            .map(GuestPage::pfn)
    }

    /// Takes the `size` page at `key` off the file for returning it. Its registry
    /// entry stays until it is released.
    pub(crate) fn take(&mut self, key: u64, size: PageSize) -> Option<GuestPage> {
        self.get(key, size)?;
        self.file.remove(&key)
    }

    /// Puts a page that could not be returned (the RMP is busy) back at `key`, in
    /// `spare`, a node the caller reserved before taking it.
    pub(crate) fn put_back(&mut self, spare: Spare, key: u64, page: GuestPage) {
        self.file.insert(spare.0.into_node(key, page));
    }

    /// Records that the page at `pfn`, taken off the file, is leaked: it stays
    /// registered for good (the caller drops the page value, which reports it).
    pub(crate) fn mark_leaked(&mut self, pfn: u64) {
        if let Some(e) = self.registry.get_mut(&pfn) {
            e.leaked = true;
        }
    }

    /// Replaces the tracking of the 2M page at `key`, taken off the file, by its 512
    /// 4K pages after a PSMASH, each in its own slot.
    pub(crate) fn split(
        &mut self,
        key: u64,
        pfn: u64,
        pages: KVVec<GuestPage>,
        slots: KVVec<Slot>,
    ) {
        self.registry.remove(&pfn);
        for ((k, page), slot) in (key..).zip(pages).zip(slots) {
            self.track(slot, k, page);
        }
    }

    /// Stops tracking a page returned to the host; dropping the result unpins it.
    pub(crate) fn forget(&mut self, released: Released) -> Pins {
        self.registry.remove(&released.pfn());
        released.into_pins()
    }
}

#[kunit_tests(snp_host_ledger)]
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
