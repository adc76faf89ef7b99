// SPDX-License-Identifier: GPL-2.0

//! The sparse store behind the emulated RMP: only entries that differ from zero are kept.
//!
//! The kernel backs [`Store`] with a red-black tree keyed by PFN; the host crate has a
//! small fixed-capacity one for doctests (`rmp::array_store`), and host tests add a
//! `BTreeMap` one. The emulated RMP never stores an all-zero entry, so memory grows with the number
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
