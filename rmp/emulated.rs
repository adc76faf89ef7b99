// SPDX-License-Identifier: GPL-2.0

//! The emulated RMP in kernel memory: the model over a red-black tree of entries.
//!
//! Memory grows with the number of pages whose entry differs from the default
//! (hypervisor-owned, all zero), never with the size of RAM. One mutex
//! serialises every operation, which is what the model's concurrency contract
//! asks of a backend that takes `&mut self`; entries are allocated with
//! `GFP_KERNEL` under it, so it is never taken in atomic context.

use super::model::{Emulated, Entry, RmpError, Store};
use kernel::{
    new_mutex,
    prelude::*,
    rbtree::RBTree,
    sync::{Mutex, MutexGuard}, //
};

/// A [`Store`] in a red-black tree keyed by PFN.
pub(crate) struct TreeStore {
    tree: RBTree<u64, Entry>,
    len: usize,
}

impl TreeStore {
    fn new() -> Self {
        Self {
            tree: RBTree::new(),
            len: 0,
        }
    }
}

impl Store for TreeStore {
    fn get(&self, pfn: u64) -> Option<Entry> {
        self.tree.get(&pfn).copied()
    }

    fn first_in(&self, first: u64, last: u64) -> Option<(u64, Entry)> {
        let cursor = self.tree.cursor_lower_bound(&first)?;
        let (&pfn, &entry) = cursor.current();
        (pfn <= last).then_some((pfn, entry))
    }

    fn insert(&mut self, pfn: u64, entry: Entry) -> Result<(), RmpError> {
        if let Some(slot) = self.tree.get_mut(&pfn) {
            *slot = entry;
            return Ok(());
        }
        self.tree
            .try_create_and_insert(pfn, entry, GFP_KERNEL)
            .map_err(|_| RmpError::NoMemory)?;
        self.len += 1;
        Ok(())
    }

    fn remove(&mut self, pfn: u64) {
        if self.tree.remove(&pfn).is_some() {
            self.len -= 1;
        }
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// The emulated RMP, safe to share between CPUs.
#[pin_data]
pub(crate) struct EmulatedRmp {
    #[pin]
    inner: Mutex<Emulated<TreeStore>>,
}

impl EmulatedRmp {
    /// Creates an emulated RMP covering PFNs `0..end_pfn`, every page hypervisor-owned.
    pub(crate) fn new(end_pfn: u64) -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_mutex!(Emulated::new(TreeStore::new(), end_pfn), "snp_host_emulated_rmp"),
        })
    }

    /// Locks the table for one operation.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Emulated<TreeStore>> {
        self.inner.lock()
    }

    /// Locks the emulated RMP if nobody holds it, without sleeping.
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, Emulated<TreeStore>>> {
        self.inner.try_lock()
    }
}

#[kunit_tests(snp_host_emulated)]
mod tests {
    use super::*;
    use crate::rmp::model::{PageSize, Rmp, State};

    #[test]
    fn tree_store_follows_the_model() -> Result {
        let rmp = KBox::pin_init(EmulatedRmp::new(1 << 20), GFP_KERNEL)?;
        let mut t = rmp.lock();
        let private = State::private(0x4000_0000, PageSize::Size2M, 1, false);
        assert_eq!(t.rmpupdate(0x200, &private), Ok(()));
        assert_eq!(t.store().len(), 1);
        assert_eq!(t.psmash(0x200), Ok(()));
        assert_eq!(t.store().len(), 512);
        assert!(t.rmpread(0x3ff).map(|r| r.assigned()).unwrap_or(false));
        assert_eq!(
            t.store().first_in(0x201, 0x3ff).map(|(p, _)| p),
            Some(0x201)
        );
        for pfn in 0x200..0x400 {
            assert_eq!(t.rmpupdate(pfn, &State::shared(PageSize::Size4K)), Ok(()));
        }
        assert!(t.store().is_empty());
        assert_eq!(t.rmpupdate(1 << 20, &private), Err(RmpError::NotCovered));
        Ok(())
    }
}
