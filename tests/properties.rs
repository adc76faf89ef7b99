// SPDX-License-Identifier: GPL-2.0

//! Property tests: random operation sequences on the emulated RMP and on the plain
//! reference must agree on every return code, every RMPREAD, every effective entry and
//! every access-check answer; the store must stay proportional to the pages that
//! changed; and each operation must only touch its own 2M region.

mod common;

use common::{MapStore, Reference};
use proptest::prelude::*;
use snp_host_model::rmp::access::{check_guest, check_host, AccessKind, GuestAccess, MapSize};
use snp_host_model::rmp::guest::{Adjust, Guest, Vmpl};
use snp_host_model::rmp::model::{Emulated, PageSize, Perms, Rmp, State, Store};

/// Pages in the emulated table: four 2M regions, the last one cut short so that
/// coverage errors show up too.
const END_PFN: u64 = 3 * 512 + 300;

#[derive(Clone, Debug)]
enum Op {
    Update {
        pfn: u64,
        private: bool,
        size: PageSize,
        asid: u32,
        delta: u64,
        immutable: bool,
    },
    RawUpdate {
        pfn: u64,
        bytes: [u8; 16],
    },
    Psmash {
        pfn: u64,
    },
    Pvalidate {
        asid: u32,
        pfn: u64,
        delta: u64,
        size: PageSize,
        validate: bool,
    },
    Adjust {
        asid: u32,
        vmpl: u8,
        pfn: u64,
        delta: u64,
        size: PageSize,
        target: u8,
        perms: u8,
        vmsa: bool,
    },
    Busy(Option<u64>),
}

/// PFNs biased towards the interesting ones: region starts, their neighbours and the
/// end of the table.
fn pfn() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => (0u64..4).prop_map(|r| r * 512),
        3 => (0u64..4, 0u64..4).prop_map(|(r, o)| r * 512 + o),
        2 => 0u64..END_PFN + 10,
        1 => Just(END_PFN - 1),
    ]
}

fn size() -> impl Strategy<Value = PageSize> {
    prop_oneof![Just(PageSize::Size4K), Just(PageSize::Size2M)]
}

/// GPA of `pfn` for a guest: the page's own address, shifted by `delta` pages.
fn gpa(pfn: u64, delta: u64) -> u64 {
    (pfn + delta) << 12
}

fn op() -> impl Strategy<Value = Op> {
    let delta = prop_oneof![3 => Just(0u64), 1 => Just(0x1000u64), 1 => 0u64..3];
    prop_oneof![
        6 => (pfn(), any::<bool>(), size(), 0u32..4, delta.clone(), prop::bool::weighted(0.1))
            .prop_map(|(pfn, private, size, asid, delta, immutable)| Op::Update {
                pfn, private, size, asid, delta, immutable
            }),
        1 => (pfn(), any::<[u8; 16]>()).prop_map(|(pfn, bytes)| Op::RawUpdate { pfn, bytes }),
        3 => pfn().prop_map(|pfn| Op::Psmash { pfn }),
        4 => (0u32..4, pfn(), delta.clone(), size(), any::<bool>()).prop_map(
            |(asid, pfn, delta, size, validate)| Op::Pvalidate { asid, pfn, delta, size, validate }
        ),
        2 => (0u32..4, 0u8..4, pfn(), delta, size(), 0u8..5, 0u8..0x20, any::<bool>()).prop_map(
            |(asid, vmpl, pfn, delta, size, target, perms, vmsa)| Op::Adjust {
                asid, vmpl, pfn, delta, size, target, perms, vmsa
            }
        ),
        1 => prop::option::of(pfn()).prop_map(Op::Busy),
    ]
}

/// The 2M region an operation may touch.
fn region(op: &Op) -> Option<u64> {
    match *op {
        Op::Update { pfn, .. }
        | Op::RawUpdate { pfn, .. }
        | Op::Psmash { pfn }
        | Op::Pvalidate { pfn, .. }
        | Op::Adjust { pfn, .. } => Some(pfn & !511),
        Op::Busy(_) => None,
    }
}

fn apply(emu: &mut Emulated<MapStore>, reference: &mut Reference, op: &Op) {
    match *op {
        Op::Update {
            pfn,
            private,
            size,
            asid,
            delta,
            immutable,
        } => {
            let state = if private {
                State::private(gpa(pfn, delta), size, asid, immutable)
            } else {
                State::shared(size)
            };
            assert_eq!(emu.rmpupdate(pfn, &state), reference.rmpupdate(pfn, &state));
        }
        Op::RawUpdate { pfn, bytes } => {
            let state = State::from_bytes(&bytes);
            assert_eq!(emu.rmpupdate(pfn, &state), reference.rmpupdate(pfn, &state));
        }
        Op::Psmash { pfn } => assert_eq!(emu.psmash(pfn), reference.psmash(pfn)),
        Op::Pvalidate {
            asid,
            pfn,
            delta,
            size,
            validate,
        } => {
            let gpa = gpa(pfn, delta);
            assert_eq!(
                emu.pvalidate(asid, pfn, gpa, size, validate),
                reference.pvalidate(asid, pfn, gpa, size, validate)
            );
        }
        Op::Adjust {
            asid,
            vmpl,
            pfn,
            delta,
            size,
            target,
            perms,
            vmsa,
        } => {
            let guest = Guest {
                asid,
                vmpl: Vmpl::try_from(vmpl).unwrap(),
            };
            let Ok(target) = Vmpl::try_from(target) else {
                return;
            };
            let adjust = Adjust {
                vmpl: target,
                perms: Perms::try_from(perms).unwrap(),
                vmsa,
            };
            let gpa = gpa(pfn, delta);
            assert_eq!(
                emu.rmpadjust(guest, pfn, gpa, size, adjust),
                reference.rmpadjust(guest, pfn, gpa, size, adjust)
            );
        }
        Op::Busy(pfn) => {
            emu.set_busy(pfn);
            reference.set_busy(pfn);
        }
    }
}

/// Compares everything observable about one page.
fn compare_page(emu: &Emulated<MapStore>, reference: &Reference, pfn: u64) {
    let read = emu.rmpread(pfn).map(|r| common::Read {
        assigned: r.assigned(),
        size: r.page_size(),
        immutable: r.immutable(),
        gpa: r.gpa(),
        asid: r.asid(),
        region_4k: r.region_4k(),
    });
    assert_eq!(read, reference.rmpread(pfn), "rmpread({pfn:#x})");
    let Ok(effective) = emu.effective(pfn) else {
        return;
    };
    let plain = reference.page(pfn);
    assert_eq!(
        effective.validated(),
        plain.validated,
        "validated({pfn:#x})"
    );
    assert_eq!(effective.vmsa(), plain.vmsa, "vmsa({pfn:#x})");
    for vmpl in [Vmpl::Vmpl0, Vmpl::Vmpl1, Vmpl::Vmpl2, Vmpl::Vmpl3] {
        assert_eq!(
            effective.perms(vmpl),
            plain.perms[vmpl.number() as usize],
            "perms({pfn:#x}, {vmpl:?})"
        );
    }
    let lookup = emu.lookup(pfn).unwrap();
    let head = reference.page(pfn & !511);
    assert_eq!(lookup.size, head.size, "lookup({pfn:#x}).size");
    for map in [MapSize::Size4K, MapSize::Size2M, MapSize::Size1G] {
        assert_eq!(
            check_host(emu, pfn, true, map),
            reference.check_host(pfn, true, map),
            "check_host({pfn:#x}, {map:?})"
        );
    }
    for (asid, vmpl, kind, npt) in [
        (1, Vmpl::Vmpl0, AccessKind::Write, MapSize::Size4K),
        (1, Vmpl::Vmpl1, AccessKind::Read, MapSize::Size2M),
        (2, Vmpl::Vmpl2, AccessKind::ExecSupervisor, MapSize::Size4K),
    ] {
        let access = GuestAccess {
            guest: Guest { asid, vmpl },
            gpa: gpa(pfn, 0),
            pfn,
            npt,
            kind,
            encrypted: true,
            page_table: false,
        };
        assert_eq!(
            emu.check_guest(&access).unwrap(),
            check_guest(&plain.entry(), &access),
            "check_guest({pfn:#x}, {asid}, {vmpl:?})"
        );
    }
}

fn pages_of(region: u64) -> impl Iterator<Item = u64> {
    // Every page of the region, sampled densely at its start where 2M effects show.
    (region..region + 8).chain((region + 8..region + 512).step_by(37))
}

/// Outcome counts of one kind of operation, to show that the random sequences reach
/// every return code rather than failing early in the same way every time.
fn outcome(counts: &mut std::collections::BTreeMap<String, usize>, what: String) {
    *counts.entry(what).or_default() += 1;
}

#[test]
fn random_sequences_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..300 {
        let ops = prop::collection::vec(op(), 1..40)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut emu = Emulated::new(MapStore::default(), END_PFN);
        for op in &ops {
            let name = format!("{op:?}");
            let kind = name.split([' ', '(']).next().unwrap_or_default().to_owned();
            let result = match *op {
                Op::Update {
                    pfn,
                    private,
                    size,
                    asid,
                    delta,
                    immutable,
                } => {
                    let state = if private {
                        State::private(gpa(pfn, delta), size, asid, immutable)
                    } else {
                        State::shared(size)
                    };
                    format!("{:?}", emu.rmpupdate(pfn, &state))
                }
                Op::Psmash { pfn } => format!("{:?}", emu.psmash(pfn)),
                Op::Pvalidate {
                    asid,
                    pfn,
                    delta,
                    size,
                    validate,
                } => {
                    format!(
                        "{:?}",
                        emu.pvalidate(asid, pfn, gpa(pfn, delta), size, validate)
                    )
                }
                _ => continue,
            };
            let short = result
                .split(['(', ' '])
                .take(2)
                .collect::<Vec<_>>()
                .join("(");
            outcome(&mut counts, format!("{kind}: {short}"));
        }
    }
    for expected in [
        "Update: Ok",
        "Update: Err(FailInput",
        "Update: Err(FailPermission",
        "Update: Err(FailOverlap",
        "Update: Err(NotCovered",
        "Psmash: Ok",
        "Psmash: Err(FailNotExpandable",
        "Psmash: Err(FailInput",
        "Pvalidate: Ok(true",
        "Pvalidate: Ok(false",
        "Pvalidate: Err(Fault",
        "Pvalidate: Err(Insn",
    ] {
        assert!(
            counts.keys().any(|k| k.starts_with(expected)),
            "no {expected} in {counts:#?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn emulated_matches_reference(ops in prop::collection::vec(op(), 1..40)) {
        let mut emu = Emulated::new(MapStore::default(), END_PFN);
        let mut reference = Reference::new(END_PFN);
        for op in &ops {
            let before = emu.store().clone();
            apply(&mut emu, &mut reference, op);
            if let Some(region) = region(op) {
                // Only the op's own region may change: the basis of per-region locking.
                for pfn in before.0.keys().chain(emu.store().0.keys()) {
                    if pfn & !511 != region {
                        prop_assert_eq!(before.get(*pfn), emu.store().get(*pfn));
                    }
                }
                for pfn in pages_of(region).filter(|p| *p < END_PFN + 2) {
                    compare_page(&emu, &reference, pfn);
                }
            }
            prop_assert!(emu.store().len() <= reference.non_default());
        }
        for pfn in (0..END_PFN).step_by(97) {
            compare_page(&emu, &reference, pfn);
        }
    }

    #[test]
    fn state_bytes_round_trip(bytes in any::<[u8; 16]>()) {
        let state = State::from_bytes(&bytes);
        prop_assert_eq!(state.to_bytes(), bytes);
        if let Ok(target) = state.decode() {
            // A valid request re-encodes to the same bytes (up to the ignored GPA of a
            // shared request).
            let again = match target {
                snp_host_model::rmp::model::Target::Shared { size } => State::shared(size),
                snp_host_model::rmp::model::Target::Private { gpa, size, asid, immutable } => {
                    State::private(gpa, size, u32::from(asid), immutable)
                }
            };
            prop_assert_eq!(again.decode(), Ok(target));
        }
    }

    #[test]
    fn entry_bytes_round_trip(bytes in any::<[u8; 16]>()) {
        use snp_host_model::rmp::model::Entry;
        let e = Entry::from_bytes(&bytes);
        prop_assert_eq!(e.to_bytes(), bytes);
        // Clearing keeps exactly the firmware's bits.
        let cleared = e.cleared();
        prop_assert!(!cleared.assigned() && !cleared.validated() && cleared.asid() == 0);
        prop_assert_eq!(cleared.lo().subpage_count(), e.lo().subpage_count());
        prop_assert_eq!(cleared.hi().raw() >> 32, e.hi().raw() >> 32);
        if let Ok(record) = e.to_record() {
            prop_assert_eq!(record.assigned(), e.assigned());
            prop_assert_eq!(record.gpa(), e.gpa());
            prop_assert_eq!(
                snp_host_model::rmp::model::Record::from_bytes(&record.to_bytes()),
                Ok(record)
            );
        }
    }

    #[test]
    fn live_entries_decode_whatever_their_undefined_bits(lo in any::<u64>(), hi in any::<u64>()) {
        use snp_host_model::rmp::model::Entry;
        // The firmware's bits 11:3 and 63 and the whole high quadword are not part of
        // the record: any value of them reads the same (reserved bits set, as a later
        // CPU or firmware may set them).
        let undefined = (0x1ff << 3) | (1 << 63);
        let plain = Entry::from_qwords(lo & !undefined, 0).as_record();
        let noisy = Entry::from_qwords(lo | undefined, hi).as_record();
        prop_assert_eq!(plain, noisy);
        let e = Entry::from_qwords(lo, hi);
        let r = e.as_record();
        prop_assert_eq!((r.assigned(), r.immutable()), (e.assigned(), e.immutable()));
        prop_assert_eq!((r.gpa(), r.asid(), r.page_size()), (e.gpa(), e.asid(), e.page_size()));
        // Where the strict decoder accepts the entry, both agree.
        if let Ok(strict) = e.to_record() {
            prop_assert_eq!(strict, r);
        }
    }

    #[test]
    fn rmpread_results_decode_whatever_their_reserved_bits(gpa in any::<u64>(), attrs in any::<u64>()) {
        use snp_host_model::rmp::model::Record;
        let (record, ignored) = Record::from_rmpread([gpa, attrs]);
        let bytes = record.to_bytes();
        // What is kept is a valid record, and kept and ignored bits add up to the input.
        prop_assert_eq!(Record::from_bytes(&bytes), Ok(record));
        let kept_attrs = u64::from_le_bytes(bytes[8..].try_into().unwrap());
        prop_assert_eq!(record.gpa() | ignored.gpa, gpa);
        prop_assert_eq!(kept_attrs | ignored.attrs, attrs);
        prop_assert_eq!(kept_attrs & ignored.attrs, 0);
        prop_assert_eq!(ignored.any(), Record::from_bytes(&{
            let mut raw = [0u8; 16];
            raw[..8].copy_from_slice(&gpa.to_le_bytes());
            raw[8..].copy_from_slice(&attrs.to_le_bytes());
            raw
        }).is_err());
    }
}
