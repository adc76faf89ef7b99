// SPDX-License-Identifier: GPL-2.0

//! A fixed-capacity [`Store`] for doctests and small host tests.
//!
//! The module stores entries in a red-black tree (`rmp/emulated.rs`), so `lib.rs` builds
//! this file and the module does not.

use super::model::{
    Entry,
    RmpError,
    Store, //
};

/// A store of at most `N` entries in a sorted array, for tests and small emulations.
///
/// Lookups are binary searches; insertions shift the tail. Its size is `24 * N` bytes,
/// so in the kernel keep `N` small or allocate it on the heap.
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::array_store::ArrayStore;
/// use snp_host_model::rmp::model::{Entry, RmpError, Store};
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
