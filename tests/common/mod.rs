// SPDX-License-Identifier: GPL-2.0

//! Test support: a `BTreeMap` store and a deliberately plain reference RMP.
//!
//! The reference keeps one fully spelled-out entry per 4K page: a 2M page is 512 equal
//! entries, so it needs none of the emulated RMP's 2M-entry resolution. Agreement between
//! the two on random operation sequences is the evidence that the sparse representation
//! is faithful.

#![allow(dead_code)]

use std::collections::BTreeMap;

use snp_host_model::rmp::access::{HostFault, MapSize};
use snp_host_model::rmp::guest::{Adjust, Guest, GuestError, GuestFault, NpfCode, Vmpl};
use snp_host_model::rmp::model::{Entry, PageSize, Perms, RmpError, State, Store, Target};

/// An unbounded store for host tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MapStore(pub BTreeMap<u64, Entry>);

impl Store for MapStore {
    fn get(&self, pfn: u64) -> Option<Entry> {
        self.0.get(&pfn).copied()
    }

    fn first_in(&self, first: u64, last: u64) -> Option<(u64, Entry)> {
        if first > last {
            return None;
        }
        self.0.range(first..=last).next().map(|(k, v)| (*k, *v))
    }

    fn insert(&mut self, pfn: u64, entry: Entry) -> Result<(), RmpError> {
        assert!(!entry.is_zero(), "the model must not store zero entries");
        self.0.insert(pfn, entry);
        Ok(())
    }

    fn remove(&mut self, pfn: u64) {
        self.0.remove(&pfn);
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// One 4K page's RMP state, every field explicit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Plain {
    pub(crate) assigned: bool,
    pub(crate) size: PageSize,
    pub(crate) immutable: bool,
    pub(crate) gpa: u64,
    pub(crate) asid: u32,
    pub(crate) validated: bool,
    pub(crate) vmsa: bool,
    pub(crate) perms: [Perms; 4],
}

impl Plain {
    /// The state as an in-table entry (for the shared access-check rules).
    pub(crate) fn entry(&self) -> Entry {
        if !self.assigned {
            return Entry::default();
        }
        let mut e = Entry::default()
            .assigned_to(self.gpa, self.size, self.asid as u16, self.immutable)
            .with_validated(self.validated)
            .with_vmsa(self.vmsa);
        for (i, vmpl) in [Vmpl::Vmpl0, Vmpl::Vmpl1, Vmpl::Vmpl2, Vmpl::Vmpl3]
            .into_iter()
            .enumerate()
        {
            e = e.with_perms(vmpl, self.perms[i]);
        }
        e
    }
}

/// What RMPREAD reports, as plain fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Read {
    pub(crate) assigned: bool,
    pub(crate) size: PageSize,
    pub(crate) immutable: bool,
    pub(crate) gpa: u64,
    pub(crate) asid: u32,
    pub(crate) region_4k: bool,
}

/// The reference RMP: a vector with one [`Plain`] per page.
#[derive(Clone, Debug)]
pub(crate) struct Reference {
    pub(crate) pages: Vec<Plain>,
    pub(crate) busy: Option<u64>,
}

const NPF: fn() -> NpfCode = || {
    NpfCode::default()
        .with_present(true)
        .with_rmp(true)
        .with_final_access(true)
        .with_encrypted(true)
};

impl Reference {
    pub(crate) fn new(end_pfn: u64) -> Self {
        Self {
            pages: vec![Plain::default(); end_pfn as usize],
            busy: None,
        }
    }

    fn end(&self) -> u64 {
        self.pages.len() as u64
    }

    fn covered(&self, pfn: u64, size: PageSize) -> Result<(), RmpError> {
        if pfn
            .checked_add(size.pages())
            .is_some_and(|e| e <= self.end())
        {
            Ok(())
        } else {
            Err(RmpError::NotCovered)
        }
    }

    fn range(pfn: u64, size: PageSize) -> std::ops::Range<usize> {
        pfn as usize..(pfn + size.pages()) as usize
    }

    pub(crate) fn set_busy(&mut self, pfn: Option<u64>) {
        self.busy = pfn.map(|p| p & !511);
    }

    fn claim(&self, pfn: u64) -> Result<(), RmpError> {
        if self.busy == Some(pfn & !511) {
            Err(RmpError::FailInUse)
        } else {
            Ok(())
        }
    }

    pub(crate) fn rmpupdate(&mut self, pfn: u64, state: &State) -> Result<(), RmpError> {
        let target = state.decode().map_err(|_| RmpError::FailInput)?;
        let size = target.size();
        if !pfn.is_multiple_of(size.pages()) {
            return Err(RmpError::FailInput);
        }
        self.covered(pfn, size)?;
        self.claim(pfn)?;
        let pages = &mut self.pages[Self::range(pfn, size)];
        if pages.iter().any(|p| p.immutable) {
            return Err(RmpError::FailPermission);
        }
        let conflict = match size {
            PageSize::Size4K => pages[0].assigned && pages[0].size == PageSize::Size2M,
            PageSize::Size2M => pages
                .iter()
                .any(|p| p.assigned && p.size == PageSize::Size4K),
        };
        if conflict {
            return Err(RmpError::FailOverlap);
        }
        for (i, page) in pages.iter_mut().enumerate() {
            *page = match target {
                Target::Shared { .. } => Plain::default(),
                Target::Private {
                    gpa,
                    size,
                    asid,
                    immutable,
                } => Plain {
                    assigned: true,
                    size,
                    immutable,
                    gpa: gpa + ((i as u64) << 12),
                    asid: u32::from(asid),
                    validated: false,
                    vmsa: false,
                    perms: [Perms::ALL, Perms::NONE, Perms::NONE, Perms::NONE],
                },
            };
        }
        Ok(())
    }

    pub(crate) fn psmash(&mut self, pfn: u64) -> Result<(), RmpError> {
        if !pfn.is_multiple_of(512) {
            return Err(RmpError::FailInput);
        }
        self.covered(pfn, PageSize::Size2M)?;
        self.claim(pfn)?;
        let pages = &mut self.pages[Self::range(pfn, PageSize::Size2M)];
        if !pages[0].assigned || pages[0].size != PageSize::Size2M {
            return Err(RmpError::FailNotExpandable);
        }
        if pages[0].immutable {
            return Err(RmpError::FailPermission);
        }
        for page in pages {
            page.size = PageSize::Size4K;
        }
        Ok(())
    }

    pub(crate) fn rmpread(&self, pfn: u64) -> Result<Read, RmpError> {
        self.covered(pfn, PageSize::Size4K)?;
        let p = self.pages[pfn as usize];
        let region_4k = pfn.is_multiple_of(512)
            && p.size == PageSize::Size4K
            && self.pages[pfn as usize..(self.end().min(pfn + 512)) as usize]
                .iter()
                .any(|p| p.assigned);
        Ok(Read {
            assigned: p.assigned,
            size: p.size,
            immutable: p.immutable,
            gpa: p.gpa,
            asid: p.asid,
            region_4k,
        })
    }

    pub(crate) fn page(&self, pfn: u64) -> Plain {
        self.pages[pfn as usize]
    }

    fn guest_checks(
        &self,
        asid: u32,
        pfn: u64,
        gpa: u64,
        size: PageSize,
    ) -> Result<(), GuestError> {
        if !pfn.is_multiple_of(size.pages()) || !gpa.is_multiple_of(size.bytes()) {
            return Err(GuestError::Insn(RmpError::FailInput));
        }
        self.covered(pfn, size)?;
        let p = self.pages[pfn as usize];
        if asid == 0 || !p.assigned || p.asid != asid || p.gpa != gpa || p.immutable {
            return Err(GuestError::Fault(GuestFault::Npf(NPF())));
        }
        match (size, p.size) {
            (PageSize::Size4K, PageSize::Size2M) => Err(GuestError::Fault(GuestFault::Npf(
                NPF().with_size_mismatch(true),
            ))),
            (PageSize::Size2M, PageSize::Size4K) => {
                Err(GuestError::Insn(RmpError::FailSizeMismatch))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn pvalidate(
        &mut self,
        asid: u32,
        pfn: u64,
        gpa: u64,
        size: PageSize,
        validate: bool,
    ) -> Result<bool, GuestError> {
        self.guest_checks(asid, pfn, gpa, size)?;
        if self.pages[pfn as usize].validated == validate {
            return Ok(false);
        }
        for page in &mut self.pages[Self::range(pfn, size)] {
            page.validated = validate;
        }
        Ok(true)
    }

    pub(crate) fn rmpadjust(
        &mut self,
        guest: Guest,
        pfn: u64,
        gpa: u64,
        size: PageSize,
        adjust: Adjust,
    ) -> Result<(), GuestError> {
        if adjust.vmpl <= guest.vmpl {
            self.covered(pfn, size)?;
            return Err(GuestError::Insn(RmpError::FailPermission));
        }
        self.guest_checks(guest.asid, pfn, gpa, size)?;
        let p = self.pages[pfn as usize];
        if !p.validated {
            return Err(GuestError::Fault(GuestFault::NotValidated));
        }
        if !p.perms[guest.vmpl.number() as usize].contains(adjust.perms) {
            return Err(GuestError::Insn(RmpError::FailPermission));
        }
        for page in &mut self.pages[Self::range(pfn, size)] {
            page.perms[adjust.vmpl.number() as usize] = adjust.perms;
            if guest.vmpl == Vmpl::Vmpl0 {
                page.vmsa = adjust.vmsa;
            }
        }
        Ok(())
    }

    pub(crate) fn check_host(
        &self,
        pfn: u64,
        write: bool,
        map: MapSize,
    ) -> Result<Option<HostFault>, RmpError> {
        if !write {
            return Ok(None);
        }
        self.covered(pfn, PageSize::Size4K)?;
        let p = self.pages[pfn as usize];
        if p.assigned {
            return Ok(Some(HostFault::Assigned { pfn }));
        }
        if p.immutable {
            return Ok(Some(HostFault::Immutable { pfn }));
        }
        if map == MapSize::Size4K {
            return Ok(None);
        }
        let head = pfn & !511;
        for at in head..head + 512 {
            if at >= self.end() {
                return Err(RmpError::NotCovered);
            }
            if self.pages[at as usize].assigned {
                return Ok(Some(HostFault::LargeMapping { pfn: at }));
            }
        }
        Ok(None)
    }

    /// Pages whose state differs from the default.
    pub(crate) fn non_default(&self) -> usize {
        self.pages
            .iter()
            .filter(|p| **p != Plain::default())
            .count()
    }
}
