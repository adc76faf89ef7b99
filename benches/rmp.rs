// SPDX-License-Identifier: GPL-2.0

//! Benchmarks of the emulated RMP: RMPUPDATE, PSMASH, lookup and the access checks,
//! over a `BTreeMap` store (the host stand-in for the kernel's XArray) and over the
//! fixed-capacity `ArrayStore`.

#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use snp_host_model::rmp::access::{check_host, AccessKind, GuestAccess, MapSize};
use snp_host_model::rmp::array_store::ArrayStore;
use snp_host_model::rmp::guest::{Guest, Vmpl};
use snp_host_model::rmp::model::{Emulated, Entry, PageSize, Rmp, RmpError, State, Store};

#[derive(Clone, Default)]
struct MapStore(BTreeMap<u64, Entry>);

impl Store for MapStore {
    fn get(&self, pfn: u64) -> Option<Entry> {
        self.0.get(&pfn).copied()
    }

    fn first_in(&self, first: u64, last: u64) -> Option<(u64, Entry)> {
        self.0.range(first..=last).next().map(|(k, v)| (*k, *v))
    }

    fn insert(&mut self, pfn: u64, entry: Entry) -> Result<(), RmpError> {
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

/// 16 GiB of RAM.
const END: u64 = 1 << 22;

/// A table with a realistic mix: 256 2M guest pages, 256 split ones, and 4K pages
/// scattered over 4096 regions.
fn populated() -> Emulated<MapStore> {
    let mut rmp = Emulated::new(MapStore::default(), END);
    for i in 0..512u64 {
        let pfn = i * 512;
        rmp.rmpupdate(pfn, &State::private(pfn << 12, PageSize::Size2M, 1, false))
            .unwrap();
        if i % 2 == 1 {
            rmp.psmash(pfn).unwrap();
        }
    }
    for i in 0..4096u64 {
        let pfn = (1 << 20) + i * 512 + (i % 509);
        rmp.rmpupdate(pfn, &State::private(pfn << 12, PageSize::Size4K, 2, false))
            .unwrap();
    }
    rmp
}

fn rmpupdate(c: &mut Criterion) {
    let mut g = c.benchmark_group("rmpupdate");
    g.throughput(Throughput::Elements(2));
    let mut rmp = populated();
    let pfn = (2 << 20) + 77;
    g.bench_function("4k_private_then_shared", |b| {
        b.iter(|| {
            rmp.rmpupdate(pfn, &State::private(0x1000, PageSize::Size4K, 3, false))
                .unwrap();
            rmp.rmpupdate(pfn, &State::shared(PageSize::Size4K))
                .unwrap();
        })
    });
    let pfn = 3 << 20;
    g.bench_function("2m_private_then_shared", |b| {
        b.iter(|| {
            rmp.rmpupdate(pfn, &State::private(0, PageSize::Size2M, 3, false))
                .unwrap();
            rmp.rmpupdate(pfn, &State::shared(PageSize::Size2M))
                .unwrap();
        })
    });
    g.throughput(Throughput::Elements(1));
    let overlapping = (1 << 20) + 512;
    g.bench_function("2m_refused_overlap", |b| {
        b.iter(|| {
            black_box(rmp.rmpupdate(overlapping, &State::private(0, PageSize::Size2M, 3, false)))
        })
    });
    g.finish();
}

fn psmash(c: &mut Criterion) {
    let mut g = c.benchmark_group("psmash");
    g.throughput(Throughput::Elements(1));
    let base = populated();
    g.bench_function("split_2m", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |rmp| rmp.psmash(0).unwrap(),
            BatchSize::LargeInput,
        )
    });
    let mut small = Emulated::new(ArrayStore::<1024>::new(), END);
    small
        .rmpupdate(0, &State::private(0, PageSize::Size2M, 1, false))
        .unwrap();
    g.bench_function("split_2m_array_store", |b| {
        b.iter_batched_ref(
            || small.clone(),
            |rmp| rmp.psmash(0).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    let rmp = populated();
    g.bench_function("inside_2m", |b| {
        b.iter(|| rmp.lookup(black_box(1000)).unwrap())
    });
    g.bench_function("split_4k", |b| {
        b.iter(|| rmp.lookup(black_box(600)).unwrap())
    });
    g.bench_function("shared_aligned_rmpread", |b| {
        b.iter(|| rmp.rmpread(black_box((1 << 20) + 1024)).unwrap())
    });
    let mut array = Emulated::new(ArrayStore::<1024>::new(), END);
    for i in 0..1000u64 {
        array
            .rmpupdate(i * 7, &State::private(i << 12, PageSize::Size4K, 1, false))
            .unwrap();
    }
    g.bench_function("array_store_4k", |b| {
        b.iter(|| array.lookup(black_box(3500)).unwrap())
    });
    g.finish();
}

fn access(c: &mut Criterion) {
    let mut g = c.benchmark_group("access_check");
    g.throughput(Throughput::Elements(1));
    let rmp = populated();
    let shared_neighbour = (1 << 20) + 1;
    g.bench_function("host_write_2m", |b| {
        b.iter(|| check_host(&rmp, black_box(shared_neighbour), true, MapSize::Size2M).unwrap())
    });
    g.bench_function("host_write_4k", |b| {
        b.iter(|| check_host(&rmp, black_box(shared_neighbour), true, MapSize::Size4K).unwrap())
    });
    let access = GuestAccess {
        guest: Guest {
            asid: 1,
            vmpl: Vmpl::Vmpl0,
        },
        gpa: 1000 << 12,
        pfn: 1000,
        npt: MapSize::Size2M,
        kind: AccessKind::Read,
        encrypted: true,
        page_table: false,
    };
    g.bench_function("guest_read", |b| {
        b.iter(|| rmp.check_guest(black_box(&access)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, rmpupdate, psmash, lookup, access);
criterion_main!(benches);
