// SPDX-License-Identifier: GPL-2.0

//! The sparse store behind the emulated RMP: only entries that differ from zero are kept.
//!
//! The kernel backs [`Store`] with an XArray keyed by PFN; [`ArrayStore`] is a small
//! fixed-capacity implementation for doctests and KUnit, and host tests add a `BTreeMap`
//! one. The emulated RMP never stores an all-zero entry, so memory grows with the number
//! of pages whose RMP state was ever changed, not with the size of RAM.

use super::entry::Entry;
use super::error::RmpError;

/// A map from PFN to non-zero RMP entry.
///
/// # Contract
///
/// - [`Store::insert`] on a PFN already present replaces the entry and must not fail,
///   so that the emulated RMP can always undo a partly applied operation.
/// - [`Store::insert`] on an absent PFN may fail with [`RmpError::NoMemory`] and then
///   leaves the store unchanged.
/// - The emulated RMP never inserts an all-zero entry; it calls [`Store::remove`] instead.
pub trait Store {
    /// Returns the entry stored for `pfn`.
    fn get(&self, pfn: u64) -> Option<Entry>;

    /// Returns the stored entry with the lowest PFN in `first..=last`.
    fn first_in(&self, first: u64, last: u64) -> Option<(u64, Entry)>;

    /// Stores `entry` for `pfn`.
    ///
    /// # Errors
    ///
    /// [`RmpError::NoMemory`] if `pfn` is absent and there is no room for it.
    fn insert(&mut self, pfn: u64, entry: Entry) -> Result<(), RmpError>;

    /// Forgets the entry of `pfn`, if any.
    fn remove(&mut self, pfn: u64);

    /// Returns the number of stored entries.
    fn len(&self) -> usize;

    /// Returns whether no entry is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Iterates over the stored entries with PFNs in `first..=last`, in PFN order.
pub(super) struct Range<'a, S: ?Sized> {
    store: &'a S,
    next: Option<u64>,
    last: u64,
}

impl<'a, S: Store + ?Sized> Range<'a, S> {
    /// Starts an iteration over `first..=last`.
    pub(super) fn new(store: &'a S, first: u64, last: u64) -> Self {
        Self {
            store,
            next: Some(first),
            last,
        }
    }
}

impl<S: Store + ?Sized> Iterator for Range<'_, S> {
    type Item = (u64, Entry);

    fn next(&mut self) -> Option<(u64, Entry)> {
        let (pfn, entry) = self.store.first_in(self.next?, self.last)?;
        self.next = pfn.checked_add(1);
        Some((pfn, entry))
    }
}

/// A store of at most `N` entries in a sorted array, for tests and small emulations.
///
/// Lookups are binary searches; insertions shift the tail. Its size is `24 * N` bytes,
/// so in the kernel keep `N` small or allocate it on the heap.
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::model::{ArrayStore, Entry, RmpError, Store};
///
/// let mut s = ArrayStore::<2>::new();
/// let e = Entry::from_qwords(1, 0);
/// s.insert(9, e)?;
/// s.insert(3, e)?;
/// assert_eq!(s.first_in(4, 100), Some((9, e)));
/// assert_eq!(s.insert(5, e), Err(RmpError::NoMemory)); // full
/// s.insert(3, Entry::from_qwords(3, 0))?; // replacing never needs room
/// s.remove(9);
/// assert_eq!((s.len(), s.get(9)), (1, None));
/// # Ok::<(), RmpError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ArrayStore<const N: usize> {
    pfns: [u64; N],
    entries: [Entry; N],
    len: usize,
}

impl<const N: usize> Default for ArrayStore<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ArrayStore<N> {
    /// Returns an empty store.
    pub const fn new() -> Self {
        Self {
            pfns: [0; N],
            entries: [Entry::from_qwords(0, 0); N],
            len: 0,
        }
    }

    /// Returns the stored PFNs, in order.
    fn keys(&self) -> &[u64] {
        self.pfns.get(..self.len).unwrap_or(&[])
    }
}

impl<const N: usize> Store for ArrayStore<N> {
    fn get(&self, pfn: u64) -> Option<Entry> {
        let at = self.keys().binary_search(&pfn).ok()?;
        self.entries.get(at).copied()
    }

    fn first_in(&self, first: u64, last: u64) -> Option<(u64, Entry)> {
        let at = self.keys().partition_point(|&pfn| pfn < first);
        let pfn = *self.keys().get(at)?;
        if pfn > last {
            return None;
        }
        Some((pfn, *self.entries.get(at)?))
    }

    fn insert(&mut self, pfn: u64, entry: Entry) -> Result<(), RmpError> {
        match self.keys().binary_search(&pfn) {
            Ok(at) => {
                if let Some(slot) = self.entries.get_mut(at) {
                    *slot = entry;
                }
                Ok(())
            }
            Err(at) => {
                let len = self.len;
                // Open a hole at `at` by rotating the free slot at `len` down to it.
                let (Some(pfns), Some(entries)) =
                    (self.pfns.get_mut(at..=len), self.entries.get_mut(at..=len))
                else {
                    return Err(RmpError::NoMemory);
                };
                pfns.rotate_right(1);
                entries.rotate_right(1);
                if let (Some(p), Some(e)) = (pfns.first_mut(), entries.first_mut()) {
                    *p = pfn;
                    *e = entry;
                }
                self.len = len + 1;
                Ok(())
            }
        }
    }

    fn remove(&mut self, pfn: u64) {
        if let Ok(at) = self.keys().binary_search(&pfn) {
            let last = self.len - 1;
            if let (Some(pfns), Some(entries)) = (
                self.pfns.get_mut(at..=last),
                self.entries.get_mut(at..=last),
            ) {
                pfns.rotate_left(1);
                entries.rotate_left(1);
            }
            self.len = last;
        }
    }

    fn len(&self) -> usize {
        self.len
    }
}
