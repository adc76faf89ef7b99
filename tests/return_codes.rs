// SPDX-License-Identifier: GPL-2.0

//! Unit tests: every return code of every instruction, each hardware rule of the
//! emulated RMP, the decoders' rejections and the table geometry's bounds.

mod common;

use common::MapStore;
use snp_host_model::rmp::access::{
    check_guest, check_host, AccessKind, GuestAccess, HostFault, MapSize,
};
use snp_host_model::rmp::array_store::ArrayStore;
use snp_host_model::rmp::guest::{
    Adjust, AdjustAttrs, Guest, GuestError, GuestFault, NpfCode, Vmpl,
};
use snp_host_model::rmp::model::{
    Contiguous, DecodeError, Emulated, Entry, GeometryError, Insn, PageSize, Perms, Record, Rmp,
    RmpBase, RmpCfg, RmpEnd, RmpError, RstEntry, SegmentCount, SegmentShifts, Segmented, State,
    Store, Target, GPA_LIMIT,
};

const END: u64 = 4 * 512;
const G1: Guest = Guest {
    asid: 1,
    vmpl: Vmpl::Vmpl0,
};

fn rmp() -> Emulated<MapStore> {
    Emulated::new(MapStore::default(), END)
}

fn private(gpa: u64, size: PageSize) -> State {
    State::private(gpa, size, 1, false)
}

fn npf() -> NpfCode {
    NpfCode::default()
        .with_present(true)
        .with_rmp(true)
        .with_final_access(true)
        .with_encrypted(true)
}

// ---- RMPUPDATE -------------------------------------------------------------------

#[test]
fn rmpupdate_success_assigns_and_clears_validated() {
    let mut r = rmp();
    r.rmpupdate(5, &private(0x9000, PageSize::Size4K)).unwrap();
    assert_eq!(r.pvalidate(1, 5, 0x9000, PageSize::Size4K, true), Ok(true));
    // Re-assigning, even identically, clears validated.
    r.rmpupdate(5, &private(0x9000, PageSize::Size4K)).unwrap();
    let e = r.effective(5).unwrap();
    assert!(e.assigned() && !e.validated() && e.perms(Vmpl::Vmpl0) == Perms::ALL);
    assert_eq!((e.gpa(), e.asid()), (0x9000, 1));
    r.rmpupdate(5, &State::shared(PageSize::Size4K)).unwrap();
    assert!(r.store().is_empty());
}

#[test]
fn rmpupdate_fail_input() {
    let mut r = rmp();
    let cases = [
        (0, State::private(0x1000, PageSize::Size4K, 0, false)), // ASID 0 cannot own
        (0, State::private(0x1000, PageSize::Size4K, 1024, false)), // beyond 10 bits
        (0, State::private(0x1001, PageSize::Size4K, 1, false)), // GPA misaligned
        (512, State::private(0x1000, PageSize::Size2M, 1, false)), // GPA not 2M-aligned
        (0, State::private(GPA_LIMIT, PageSize::Size4K, 1, false)), // GPA too large
        (513, private(0x20_0000, PageSize::Size2M)),             // PFN not 2M-aligned
        (513, State::shared(PageSize::Size2M)),
    ];
    for (pfn, state) in cases {
        assert_eq!(
            r.rmpupdate(pfn, &state),
            Err(RmpError::FailInput),
            "{state:?}"
        );
    }
    let mut bad = State::shared(PageSize::Size4K).to_bytes();
    bad[9] = 2; // page size 2 does not exist
    assert_eq!(
        r.rmpupdate(0, &State::from_bytes(&bad)),
        Err(RmpError::FailInput)
    );
    assert!(r.store().is_empty());
}

#[test]
fn rmpupdate_fail_permission_on_immutable() {
    let mut r = rmp();
    r.rmpupdate(7, &State::private(0x7000, PageSize::Size4K, 1, true))
        .unwrap();
    for state in [
        State::shared(PageSize::Size4K),
        private(0x7000, PageSize::Size4K),
    ] {
        assert_eq!(r.rmpupdate(7, &state), Err(RmpError::FailPermission));
    }
    // A 2M update over a region holding an immutable page is refused too.
    assert_eq!(
        r.rmpupdate(0, &State::shared(PageSize::Size2M)),
        Err(RmpError::FailPermission)
    );
    // So is a 4K update inside an immutable 2M page.
    r.rmpupdate(512, &State::private(0x20_0000, PageSize::Size2M, 1, true))
        .unwrap();
    assert_eq!(
        r.rmpupdate(600, &State::shared(PageSize::Size4K)),
        Err(RmpError::FailPermission)
    );
    // Immutable hypervisor pages only come from the firmware.
    let fixed = Entry::from_qwords(0b100, 0);
    r.seed(1500, fixed).unwrap();
    assert_eq!(
        r.rmpupdate(1500, &private(0x1000, PageSize::Size4K)),
        Err(RmpError::FailPermission)
    );
    assert_eq!(
        check_host(&r, 1500, true, MapSize::Size4K),
        Ok(Some(HostFault::Immutable { pfn: 1500 }))
    );
}

#[test]
fn rmpupdate_fail_inuse_while_region_busy() {
    let mut r = rmp();
    r.set_busy(Some(700));
    assert_eq!(
        r.rmpupdate(513, &private(0x1000, PageSize::Size4K)),
        Err(RmpError::FailInUse)
    );
    assert!(RmpError::FailInUse.is_transient());
    // Other regions are unaffected.
    r.rmpupdate(3, &private(0x1000, PageSize::Size4K)).unwrap();
    r.set_busy(None);
    r.rmpupdate(513, &private(0x1000, PageSize::Size4K))
        .unwrap();
}

#[test]
fn rmpupdate_fail_overlap_both_ways() {
    let mut r = rmp();
    // 2M over a region with a 4K-assigned page.
    r.rmpupdate(1023, &private(0x1000, PageSize::Size4K))
        .unwrap();
    for state in [
        private(0x20_0000, PageSize::Size2M),
        State::shared(PageSize::Size2M),
    ] {
        assert_eq!(r.rmpupdate(512, &state), Err(RmpError::FailOverlap));
    }
    // 4K inside a 2M page, including at its first page.
    r.rmpupdate(0, &private(0x40_0000, PageSize::Size2M))
        .unwrap();
    for pfn in [0, 1, 511] {
        assert_eq!(
            r.rmpupdate(pfn, &State::shared(PageSize::Size4K)),
            Err(RmpError::FailOverlap)
        );
    }
    // A 2M entry may be replaced by another 2M entry.
    r.rmpupdate(0, &State::private(0x60_0000, PageSize::Size2M, 2, false))
        .unwrap();
    assert_eq!(r.rmpread(3).unwrap().gpa(), 0x60_3000);
}

#[test]
fn rmpupdate_not_covered() {
    let mut r = rmp();
    assert_eq!(
        r.rmpupdate(END, &private(0x1000, PageSize::Size4K)),
        Err(RmpError::NotCovered)
    );
    let mut short = Emulated::new(MapStore::default(), 700);
    assert_eq!(
        short.rmpupdate(512, &private(0x20_0000, PageSize::Size2M)),
        Err(RmpError::NotCovered)
    );
    assert_eq!(short.rmpread(u64::MAX), Err(RmpError::NotCovered));
}

#[test]
fn two_megabyte_page_is_one_entry_and_shared_clears_all() {
    let mut r = rmp();
    r.rmpupdate(512, &private(0x20_0000, PageSize::Size2M))
        .unwrap();
    assert_eq!(r.store().len(), 1);
    for pfn in [512, 513, 1023] {
        let rec = r.rmpread(pfn).unwrap();
        assert!(rec.assigned() && rec.page_size() == PageSize::Size2M);
        assert_eq!(rec.gpa(), 0x20_0000 + ((pfn - 512) << 12));
    }
    assert_eq!(
        r.pvalidate(1, 512, 0x20_0000, PageSize::Size2M, true),
        Ok(true)
    );
    r.rmpupdate(512, &State::shared(PageSize::Size2M)).unwrap();
    assert!(r.store().is_empty());
    for pfn in 512..1024 {
        assert!(!r.rmpread(pfn).unwrap().assigned());
        assert!(!r.effective(pfn).unwrap().validated());
    }
}

// ---- PSMASH ----------------------------------------------------------------------

#[test]
fn psmash_splits_and_keeps_validated() {
    let mut r = rmp();
    r.rmpupdate(512, &private(0x20_0000, PageSize::Size2M))
        .unwrap();
    r.pvalidate(1, 512, 0x20_0000, PageSize::Size2M, true)
        .unwrap();
    r.rmpadjust(
        G1,
        512,
        0x20_0000,
        PageSize::Size2M,
        Adjust {
            vmpl: Vmpl::Vmpl2,
            perms: Perms::READ,
            vmsa: false,
        },
    )
    .unwrap();
    r.psmash(512).unwrap();
    assert_eq!(r.store().len(), 512);
    for pfn in 512..1024 {
        let e = r.effective(pfn).unwrap();
        assert!(e.assigned() && e.validated() && e.page_size() == PageSize::Size4K);
        assert_eq!((e.gpa(), e.asid()), (0x20_0000 + ((pfn - 512) << 12), 1));
        assert_eq!(e.perms(Vmpl::Vmpl2), Perms::READ);
    }
    // Each 4K page can now change on its own.
    r.rmpupdate(600, &State::shared(PageSize::Size4K)).unwrap();
    assert!(r.effective(601).unwrap().validated());
}

#[test]
fn psmash_error_codes() {
    let mut r = rmp();
    assert_eq!(r.psmash(513), Err(RmpError::FailInput));
    assert_eq!(r.psmash(512), Err(RmpError::FailNotExpandable)); // shared
    r.rmpupdate(512, &private(0x1000, PageSize::Size4K))
        .unwrap();
    assert_eq!(r.psmash(512), Err(RmpError::FailNotExpandable)); // 4K entry
    r.rmpupdate(0, &State::private(0, PageSize::Size2M, 1, true))
        .unwrap();
    assert_eq!(r.psmash(0), Err(RmpError::FailPermission));
    r.rmpupdate(1024, &private(0x20_0000, PageSize::Size2M))
        .unwrap();
    r.set_busy(Some(1024));
    assert_eq!(r.psmash(1024), Err(RmpError::FailInUse));
    r.set_busy(None);
    assert_eq!(r.psmash(END), Err(RmpError::NotCovered));
    r.psmash(1024).unwrap();
    assert_eq!(r.psmash(1024), Err(RmpError::FailNotExpandable)); // already split
}

#[test]
fn psmash_out_of_memory_leaves_the_2m_page_intact() {
    let mut r = Emulated::new(ArrayStore::<100>::new(), END);
    r.rmpupdate(512, &private(0x20_0000, PageSize::Size2M))
        .unwrap();
    r.pvalidate(1, 512, 0x20_0000, PageSize::Size2M, true)
        .unwrap();
    let before = r.store().clone();
    assert_eq!(r.psmash(512), Err(RmpError::NoMemory));
    assert_eq!(r.store().len(), before.len());
    assert_eq!(r.entry(512), before.get(512).unwrap());
    assert_eq!(r.rmpread(700).unwrap().page_size(), PageSize::Size2M);
    // Out of memory is a backend failure: it has no hardware code.
    assert_eq!(RmpError::NoMemory.code(), None);
}

// ---- RMPREAD and lookup ----------------------------------------------------------

#[test]
fn rmpread_region_status_and_lookup() {
    let mut r = rmp();
    assert!(!r.rmpread(512).unwrap().region_4k());
    r.rmpupdate(700, &private(0x1000, PageSize::Size4K))
        .unwrap();
    assert!(r.rmpread(512).unwrap().region_4k());
    assert!(!r.rmpread(513).unwrap().region_4k()); // only reported at the 2M boundary
    let l = r.lookup(700).unwrap();
    assert!(l.assigned() && l.size == PageSize::Size4K);
    r.rmpupdate(0, &private(0x40_0000, PageSize::Size2M))
        .unwrap();
    assert_eq!(r.lookup(5).unwrap().size, PageSize::Size2M);
    assert_eq!(r.find_assigned(5, PageSize::Size4K), Ok(Some(5)));
    assert_eq!(r.find_assigned(1000, PageSize::Size2M), Ok(Some(700)));
    assert_eq!(r.find_assigned(1500, PageSize::Size2M), Ok(None));
}

// ---- PVALIDATE -------------------------------------------------------------------

#[test]
fn pvalidate_return_codes_and_faults() {
    let mut r = rmp();
    r.rmpupdate(10, &private(0xa000, PageSize::Size4K)).unwrap();
    r.rmpupdate(512, &private(0x20_0000, PageSize::Size2M))
        .unwrap();
    assert_eq!(r.pvalidate(1, 10, 0xa000, PageSize::Size4K, true), Ok(true));
    assert_eq!(
        r.pvalidate(1, 10, 0xa000, PageSize::Size4K, true),
        Ok(false)
    ); // CF=1
    assert_eq!(
        r.pvalidate(1, 513, 0x20_1000, PageSize::Size2M, true),
        Err(GuestError::Insn(RmpError::FailInput))
    );
    // 2M request on a 4K entry: FAIL_SIZEMISMATCH.
    r.rmpupdate(1024, &private(0x40_0000, PageSize::Size4K))
        .unwrap();
    assert_eq!(
        r.pvalidate(1, 1024, 0x40_0000, PageSize::Size2M, true),
        Err(GuestError::Insn(RmpError::FailSizeMismatch))
    );
    // 4K request on a 2M entry: #NPF with SIZEM, resolved by the host's PSMASH.
    assert_eq!(
        r.pvalidate(1, 513, 0x20_1000, PageSize::Size4K, true),
        Err(GuestError::Fault(GuestFault::Npf(
            npf().with_size_mismatch(true)
        )))
    );
    r.psmash(512).unwrap();
    assert_eq!(
        r.pvalidate(1, 513, 0x20_1000, PageSize::Size4K, true),
        Ok(true)
    );
    // Wrong guest, wrong GPA, shared page: RMP #NPF.
    for (asid, pfn, gpa) in [
        (2, 10, 0xa000),
        (1, 10, 0xb000),
        (1, 11, 0xb000),
        (0, 10, 0xa000),
    ] {
        assert_eq!(
            r.pvalidate(asid, pfn, gpa, PageSize::Size4K, false),
            Err(GuestError::Fault(GuestFault::Npf(npf())))
        );
    }
    assert_eq!(
        r.pvalidate(1, END, 0, PageSize::Size4K, true),
        Err(GuestError::Insn(RmpError::NotCovered))
    );
}

// ---- RMPADJUST -------------------------------------------------------------------

#[test]
fn rmpadjust_return_codes() {
    let mut r = rmp();
    let adjust = |vmpl, perms| Adjust {
        vmpl,
        perms,
        vmsa: false,
    };
    r.rmpupdate(10, &private(0xa000, PageSize::Size4K)).unwrap();
    assert_eq!(
        r.rmpadjust(
            G1,
            10,
            0xa000,
            PageSize::Size4K,
            adjust(Vmpl::Vmpl1, Perms::READ)
        ),
        Err(GuestError::Fault(GuestFault::NotValidated))
    );
    r.pvalidate(1, 10, 0xa000, PageSize::Size4K, true).unwrap();
    r.rmpadjust(
        G1,
        10,
        0xa000,
        PageSize::Size4K,
        adjust(Vmpl::Vmpl1, Perms::READ),
    )
    .unwrap();
    let vmpl1 = Guest {
        asid: 1,
        vmpl: Vmpl::Vmpl1,
    };
    // A VMPL can only adjust less privileged VMPLs, and only with rights it holds.
    assert_eq!(
        r.rmpadjust(
            vmpl1,
            10,
            0xa000,
            PageSize::Size4K,
            adjust(Vmpl::Vmpl1, Perms::READ)
        ),
        Err(GuestError::Insn(RmpError::FailPermission))
    );
    assert_eq!(
        r.rmpadjust(
            vmpl1,
            10,
            0xa000,
            PageSize::Size4K,
            adjust(Vmpl::Vmpl2, Perms::WRITE)
        ),
        Err(GuestError::Insn(RmpError::FailPermission))
    );
    r.rmpadjust(
        vmpl1,
        10,
        0xa000,
        PageSize::Size4K,
        adjust(Vmpl::Vmpl2, Perms::READ),
    )
    .unwrap();
    assert_eq!(r.effective(10).unwrap().perms(Vmpl::Vmpl2), Perms::READ);
    // VMSA is honoured at VMPL0 only.
    let vmsa = Adjust {
        vmpl: Vmpl::Vmpl3,
        perms: Perms::NONE,
        vmsa: true,
    };
    r.rmpadjust(vmpl1, 10, 0xa000, PageSize::Size4K, vmsa)
        .unwrap();
    assert!(!r.effective(10).unwrap().vmsa());
    r.rmpadjust(G1, 10, 0xa000, PageSize::Size4K, vmsa).unwrap();
    assert!(r.effective(10).unwrap().vmsa());
    r.rmpupdate(1024, &private(0x40_0000, PageSize::Size4K))
        .unwrap();
    assert_eq!(
        r.rmpadjust(
            G1,
            1024,
            0x40_0000,
            PageSize::Size2M,
            adjust(Vmpl::Vmpl1, Perms::READ)
        ),
        Err(GuestError::Insn(RmpError::FailSizeMismatch))
    );
    assert_eq!(
        r.rmpadjust(
            G1,
            1025,
            0x40_1000,
            PageSize::Size2M,
            adjust(Vmpl::Vmpl1, Perms::READ)
        ),
        Err(GuestError::Insn(RmpError::FailInput))
    );
    assert_eq!(
        Adjust::try_from(AdjustAttrs::default().with_target_vmpl(9)),
        Err(DecodeError::Vmpl)
    );
}

// ---- Access checks ---------------------------------------------------------------

#[test]
fn host_access_rules() {
    let mut r = rmp();
    r.rmpupdate(520, &private(0x1000, PageSize::Size4K))
        .unwrap();
    assert_eq!(check_host(&r, 521, true, MapSize::Size4K), Ok(None));
    for map in [MapSize::Size2M, MapSize::Size1G] {
        assert_eq!(
            check_host(&r, 1000, true, map),
            Ok(Some(HostFault::LargeMapping { pfn: 520 }))
        );
    }
    // A 1G mapping is checked as the 2M region of the target, not the whole 1G.
    assert_eq!(check_host(&r, 100, true, MapSize::Size1G), Ok(None));
    assert_eq!(
        check_host(&r, 520, true, MapSize::Size4K),
        Ok(Some(HostFault::Assigned { pfn: 520 }))
    );
    assert_eq!(check_host(&r, 520, false, MapSize::Size1G), Ok(None));
    assert_eq!(
        check_host(&r, END, true, MapSize::Size4K),
        Err(RmpError::NotCovered)
    );
}

#[test]
fn guest_access_rules() {
    let mut r = rmp();
    r.rmpupdate(512, &private(0x20_0000, PageSize::Size2M))
        .unwrap();
    r.pvalidate(1, 512, 0x20_0000, PageSize::Size2M, true)
        .unwrap();
    let base = GuestAccess {
        guest: G1,
        gpa: 0x20_5000,
        pfn: 517,
        npt: MapSize::Size2M,
        kind: AccessKind::Write,
        encrypted: true,
        page_table: false,
    };
    assert_eq!(r.check_guest(&base), Ok(None));
    let fault = |a: GuestAccess| match r.check_guest(&a).unwrap() {
        Some(GuestFault::Npf(code)) => code,
        other => panic!("expected an NPF, got {other:?}"),
    };
    // NPT smaller than the 2M RMP entry: RMP fault, to be fixed by PSMASH.
    let code = fault(GuestAccess {
        npt: MapSize::Size4K,
        ..base
    });
    assert!(code.rmp() && code.encrypted() && code.write() && !code.size_mismatch());
    // Wrong GPA.
    assert!(fault(GuestAccess {
        gpa: 0x30_5000,
        ..base
    })
    .rmp());
    // A page-table walk is private even without the C-bit.
    let code = fault(GuestAccess {
        guest: Guest { asid: 2, ..G1 },
        page_table: true,
        encrypted: false,
        kind: AccessKind::Read,
        ..base
    });
    assert!(code.page_table() && !code.final_access() && code.encrypted());
    // VMPL1 has no rights yet.
    let code = fault(GuestAccess {
        guest: Guest {
            vmpl: Vmpl::Vmpl1,
            ..G1
        },
        ..base
    });
    assert!(code.vmpl() && code.rmp());
    // A shared write to a private page faults without the encrypted bit; a shared read
    // does not.
    let code = fault(GuestAccess {
        encrypted: false,
        ..base
    });
    assert!(code.rmp() && !code.encrypted());
    assert_eq!(
        r.check_guest(&GuestAccess {
            encrypted: false,
            kind: AccessKind::Read,
            ..base
        }),
        Ok(None)
    );
    // Instruction fetches are private.
    let fetch = GuestAccess {
        encrypted: false,
        kind: AccessKind::ExecUser,
        ..base
    };
    assert_eq!(r.check_guest(&fetch), Ok(None));
    assert!(fetch.private());
    r.pvalidate(1, 512, 0x20_0000, PageSize::Size2M, false)
        .unwrap();
    assert_eq!(r.check_guest(&base), Ok(Some(GuestFault::NotValidated)));
    assert!(check_guest(&Entry::default(), &base).is_some());
}

// ---- Error codes -----------------------------------------------------------------

#[test]
fn every_hardware_code_decodes_and_encodes() {
    let table = [
        (Insn::Rmpupdate, 1, RmpError::FailInput),
        (Insn::Rmpupdate, 2, RmpError::FailPermission),
        (Insn::Rmpupdate, 3, RmpError::FailInUse),
        (Insn::Rmpupdate, 4, RmpError::FailOverlap),
        (Insn::Psmash, 1, RmpError::FailInput),
        (Insn::Psmash, 2, RmpError::FailPermission),
        (Insn::Psmash, 3, RmpError::FailInUse),
        (Insn::Psmash, 4, RmpError::FailBadAddr),
        (Insn::Psmash, 7, RmpError::FailNotExpandable),
        (Insn::Rmpread, 1, RmpError::FailInput),
        (Insn::Rmpread, 2, RmpError::FailPermission),
        (Insn::Pvalidate, 1, RmpError::FailInput),
        (Insn::Pvalidate, 6, RmpError::FailSizeMismatch),
        (Insn::Rmpadjust, 1, RmpError::FailInput),
        (Insn::Rmpadjust, 2, RmpError::FailPermission),
        (Insn::Rmpadjust, 6, RmpError::FailSizeMismatch),
    ];
    for (insn, code, err) in table {
        assert_eq!(RmpError::check(insn, code), Err(err), "{insn:?} {code}");
        assert_eq!(err.code(), Some(code));
        assert!(!err.to_string().is_empty());
    }
    for insn in [
        Insn::Rmpupdate,
        Insn::Psmash,
        Insn::Rmpread,
        Insn::Pvalidate,
        Insn::Rmpadjust,
    ] {
        assert_eq!(RmpError::check(insn, 0), Ok(()));
        assert_eq!(RmpError::check(insn, 9), Err(RmpError::Unexpected(9)));
        if insn != Insn::Psmash {
            assert_eq!(RmpError::check(insn, 7), Err(RmpError::Unexpected(7)));
        }
    }
    assert_eq!(
        RmpError::check(Insn::Pvalidate, 2),
        Err(RmpError::Unexpected(2))
    );
    assert_eq!(
        RmpError::check(Insn::Rmpread, 3),
        Err(RmpError::Unexpected(3))
    );
    assert_eq!(
        RmpError::check(Insn::Rmpupdate, 6),
        Err(RmpError::Unexpected(6))
    );
    let transient: Vec<_> = [
        RmpError::FailInput,
        RmpError::FailPermission,
        RmpError::FailInUse,
        RmpError::FailOverlap,
        RmpError::FailBadAddr,
        RmpError::FailNotExpandable,
        RmpError::FailSizeMismatch,
        RmpError::Unexpected(3),
        RmpError::NotCovered,
        RmpError::NoMemory,
        RmpError::SnpDisabled,
        RmpError::SnpUnknown,
    ]
    .into_iter()
    .filter(|e| e.is_transient())
    .collect();
    assert_eq!(transient, [RmpError::FailInUse, RmpError::FailOverlap]);
    assert_eq!(RmpError::Unexpected(9).code(), Some(9));
    assert_eq!(RmpError::NotCovered.code(), None);
    assert_eq!(RmpError::SnpDisabled.code(), None);
    assert_eq!(RmpError::SnpUnknown.code(), None);
}

// ---- Decoders --------------------------------------------------------------------

#[test]
fn state_decoder_rejects_every_invalid_field() {
    let ok = State::private(0x20_0000, PageSize::Size2M, 1, false).to_bytes();
    let with = |i: usize, v: u8| {
        let mut b = ok;
        b[i] = v;
        State::from_bytes(&b).decode()
    };
    assert_eq!(with(8, 2), Err(DecodeError::Flag));
    assert_eq!(with(9, 2), Err(DecodeError::PageSize));
    assert_eq!(with(10, 2), Err(DecodeError::Flag));
    assert_eq!(with(11, 1), Err(DecodeError::Reserved));
    assert_eq!(with(0, 1), Err(DecodeError::Unaligned));
    assert_eq!(with(14, 1), Err(DecodeError::Range)); // ASID 0x10001
    assert_eq!(with(13, 4), Err(DecodeError::Range)); // ASID 0x401
    let mut shared = State::shared(PageSize::Size4K).to_bytes();
    shared[10] = 1;
    assert_eq!(
        State::from_bytes(&shared).decode(),
        Err(DecodeError::Inconsistent)
    );
    shared[10] = 0;
    shared[12] = 5;
    assert_eq!(
        State::from_bytes(&shared).decode(),
        Err(DecodeError::Inconsistent)
    );
    // A shared request ignores its GPA.
    shared[12] = 0;
    shared[0] = 0x55;
    assert_eq!(
        State::from_bytes(&shared).decode(),
        Ok(Target::Shared {
            size: PageSize::Size4K
        })
    );
    assert_eq!(
        State::private(MAX_GPA_OK, PageSize::Size4K, 1023, true)
            .decode()
            .map(|t| t.size()),
        Ok(PageSize::Size4K)
    );
}

const MAX_GPA_OK: u64 = GPA_LIMIT - 0x1000;

#[test]
fn record_and_entry_decoders() {
    let mut b = [0u8; 16];
    for (i, bit) in [(8, 0x02), (9, 0x04), (10, 0x02), (11, 0x01)] {
        b[i] = bit;
        assert_eq!(
            Record::from_bytes(&b),
            Err(DecodeError::Reserved),
            "byte {i}"
        );
        b[i] = 0;
    }
    b[0] = 0x10;
    assert_eq!(Record::from_bytes(&b), Err(DecodeError::Unaligned));
    b[0] = 0;
    b[9] = 0x03;
    let r = Record::from_bytes(&b).unwrap();
    assert!(r.region_4k() && r.page_size() == PageSize::Size2M);
    b[10] = 1;
    assert!(Record::from_bytes(&b).unwrap().immutable());
    // Raw entries that no CPU produces.
    assert_eq!(
        Entry::from_qwords(1 << 62, 0).to_record(),
        Err(DecodeError::Inconsistent)
    );
    assert_eq!(
        Entry::from_qwords(1 << 61, 0).to_record(),
        Err(DecodeError::Inconsistent)
    );
    let mut r = rmp();
    assert_eq!(
        r.seed(3, Entry::from_qwords(1 << 62, 0)),
        Err(RmpError::FailInput)
    );
    assert_eq!(
        r.seed(END, Entry::from_qwords(1, 0)),
        Err(RmpError::NotCovered)
    );
    // Firmware bits survive an RMPUPDATE round trip.
    let fw = Entry::from_qwords(0x1f << 3 | 1 << 63, 0xdead_0000_0000);
    r.seed(3, fw).unwrap();
    r.rmpupdate(3, &private(0x3000, PageSize::Size4K)).unwrap();
    r.rmpupdate(3, &State::shared(PageSize::Size4K)).unwrap();
    assert_eq!(r.entry(3), fw);
    assert!(Perms::try_from(0xe0).is_err() && Vmpl::try_from(7).is_err());
    assert_eq!(DecodeError::Range.to_string(), "value out of range");
}

// ---- Geometry --------------------------------------------------------------------

#[test]
fn contiguous_geometry_errors_and_bounds() {
    let base = RmpBase::from_raw(0x100_0000);
    assert_eq!(
        Contiguous::new(RmpBase::from_raw(0), RmpEnd::from_raw(0x200_0000)),
        Err(GeometryError::NotReserved)
    );
    assert_eq!(
        Contiguous::new(base, RmpEnd::from_raw(0)),
        Err(GeometryError::NotReserved)
    );
    assert_eq!(
        Contiguous::new(base, RmpEnd::from_raw(0xff_0000)),
        Err(GeometryError::BadRange)
    );
    assert_eq!(
        Contiguous::new(base, RmpEnd::from_raw(0x100_1fff)),
        Err(GeometryError::BadRange)
    );
    let t = Contiguous::new(base, RmpEnd::from_raw(0x110_3fff)).unwrap();
    assert_eq!(
        (t.base(), t.size(), t.entries()),
        (0x100_0000, 0x10_4000, 0x1_0000)
    );
    assert!(matches!(
        t.covers(0x2_0000),
        Err(GeometryError::TooSmall {
            have: 0x10_4000,
            ..
        })
    ));
    assert!(t.covers(u64::MAX).is_err());
    for pfn in [0x1_0000, u64::MAX, u64::MAX / 16] {
        assert_eq!(
            t.locate(pfn, PageSize::Size4K),
            Err(GeometryError::NotCovered)
        );
    }
    assert_eq!(
        t.locate(0xffff, PageSize::Size4K).unwrap().address,
        0x110_3ff0
    );
    assert_eq!(
        RmpError::from(GeometryError::BadShift),
        RmpError::NotCovered
    );
}

#[test]
fn segmented_geometry_checks_every_index() {
    let base = RmpBase::from_raw(0x100_0000);
    let cfg = RmpCfg::default()
        .with_segmented(true)
        .with_segment_shift(32);
    let mut rst = [0u64; 512];
    // 4 GiB segments; segment 0 maps 2 GiB, segment 1 maps "9 GiB", clamped to 4.
    rst[0] = RstEntry::default()
        .with_mapped_gib(2)
        .with_base_bits(0x10)
        .raw();
    rst[1] = RstEntry::default()
        .with_mapped_gib(9)
        .with_base_bits(0x20)
        .raw();
    let all = SegmentCount::default();
    fn new(
        cfg: RmpCfg,
        count: SegmentCount,
        rst: &[u64],
        end: u64,
    ) -> Result<Segmented<'_>, GeometryError> {
        let base = RmpBase::from_raw(0x100_0000);
        let shifts = SegmentShifts::default().with_min(30).with_max(36);
        Segmented::new(base, cfg, shifts, count, rst, end)
    }
    let t = new(cfg, all, &rst, 1 << 19).unwrap();
    assert_eq!(
        (t.base(), t.rst_address(), t.shift(), t.segments()),
        (0x100_0000, 0x100_4000, 32, 512)
    );
    assert_eq!(
        t.locate((2 << 30) >> 12, PageSize::Size4K),
        Err(GeometryError::NotCovered)
    ); // past segment 0's 2 GiB
    let loc = t
        .locate(((4u64 << 30) >> 12) + 0x3ff, PageSize::Size2M)
        .unwrap();
    assert_eq!(
        (loc.segment, loc.index, loc.address),
        (1, 0x200, (0x20 << 20) + 0x2000)
    );
    assert!(t.locate(((8u64 << 30) >> 12) - 1, PageSize::Size4K).is_ok()); // clamped to 4 GiB
    assert!(t.locate(u64::MAX >> 12, PageSize::Size4K).is_err());
    assert!(t.locate(u64::MAX, PageSize::Size4K).is_err());
    // RAM beyond the segments.
    assert!(matches!(
        new(cfg, all, &rst, 3 << 18),
        Err(GeometryError::TooSmall { .. })
    ));
    // Configuration errors.
    assert_eq!(
        new(cfg.with_segmented(false), all, &rst, 1).unwrap_err(),
        GeometryError::NotSegmented
    );
    assert_eq!(
        new(cfg.with_segment_shift(29), all, &rst, 1).unwrap_err(),
        GeometryError::BadShift
    );
    assert_eq!(
        new(cfg.with_segment_shift(37), all, &rst, 1).unwrap_err(),
        GeometryError::BadShift
    );
    assert_eq!(
        new(cfg, all, &rst[..100], 1).unwrap_err(),
        GeometryError::ShortRst
    );
    let shifts = SegmentShifts::default().with_min(30).with_max(36);
    assert_eq!(
        Segmented::new(RmpBase::from_raw(0), cfg, shifts, all, &rst, 1).unwrap_err(),
        GeometryError::NotReserved
    );
    // A hardware limit on the segment table: only the first entry is used.
    let one = SegmentCount::default().with_limited(true).with_count(1);
    let t = new(cfg, one, &rst[..1], 1 << 18).unwrap();
    assert_eq!(t.segments(), 1);
    assert!(t.locate((4u64 << 30) >> 12, PageSize::Size4K).is_err());
    assert_eq!(
        t.locate(1, PageSize::Size4K).unwrap().address,
        (0x10 << 20) + 16
    );
    let wild = SegmentShifts::default().with_min(0).with_max(63);
    assert_eq!(
        Segmented::new(base, cfg.with_segment_shift(60), wild, all, &rst, 1).unwrap_err(),
        GeometryError::BadShift
    );
}

#[test]
fn array_store_keeps_order() {
    let mut s = ArrayStore::<8>::new();
    for pfn in [5, 1, 9, 3, 7] {
        s.insert(pfn, Entry::from_qwords(pfn, 0)).unwrap();
    }
    assert_eq!(s.first_in(2, 8), Some((3, Entry::from_qwords(3, 0))));
    assert_eq!(s.first_in(10, 20), None);
    assert_eq!(s.first_in(8, 8), None);
    // Both ends of the range are inclusive.
    assert_eq!(s.first_in(3, 3).map(|(k, _)| k), Some(3));
    assert_eq!(s.first_in(4, 5).map(|(k, _)| k), Some(5));
    assert_eq!(s.get(7), Some(Entry::from_qwords(7, 0)));
    assert_eq!(s.get(8), None);
    s.remove(3);
    s.remove(4);
    assert_eq!(s.first_in(2, 8).map(|(k, _)| k), Some(5));
    assert_eq!(s.len(), 4);
    assert!(!s.is_empty() && ArrayStore::<1>::default().is_empty());
}

#[test]
fn perms_encoding_matches_the_firmware_layout() {
    let named = [
        (Perms::READ, 0x01),
        (Perms::WRITE, 0x02),
        (Perms::EXEC_USER, 0x04),
        (Perms::EXEC_SUPERVISOR, 0x08),
        (Perms::SHADOW_STACK, 0x10),
        (Perms::ALL, 0x1f),
        (Perms::NONE, 0x00),
    ];
    for (perms, bits) in named {
        assert_eq!(perms.bits(), bits);
        assert_eq!(Perms::try_from(bits), Ok(perms));
    }
    let rx = Perms::READ.union(Perms::EXEC_USER);
    assert_eq!(rx.bits(), 0x05);
    assert_eq!(rx.union(rx), rx);
    // The masks sit in bytes 0..4 of the high quadword, one per VMPL.
    let e = Entry::default()
        .with_perms(Vmpl::Vmpl1, Perms::READ)
        .with_perms(Vmpl::Vmpl3, Perms::WRITE);
    assert_eq!(e.hi().raw(), 0x0200_0100);
    // A VMPL holding only READ cannot write.
    let page = Entry::default()
        .assigned_to(0x1000, PageSize::Size4K, 1, false)
        .with_validated(true)
        .with_perms(Vmpl::Vmpl1, Perms::READ);
    let access = |kind| GuestAccess {
        guest: Guest {
            asid: 1,
            vmpl: Vmpl::Vmpl1,
        },
        gpa: 0x1000,
        pfn: 1,
        npt: MapSize::Size4K,
        kind,
        encrypted: true,
        page_table: false,
    };
    assert_eq!(check_guest(&page, &access(AccessKind::Read)), None);
    for kind in [
        AccessKind::Write,
        AccessKind::ExecUser,
        AccessKind::ExecSupervisor,
    ] {
        assert!(
            matches!(check_guest(&page, &access(kind)), Some(GuestFault::Npf(c)) if c.vmpl()),
            "{kind:?}"
        );
    }
}

#[test]
fn find_assigned_never_reports_pages_beyond_the_table() {
    // A store handed over with an entry at the first uncovered PFN (the model itself
    // never writes one there).
    let mut store = MapStore::default();
    store.insert(700, Entry::from_qwords(1, 0)).unwrap();
    let r = Emulated::new(store, 700);
    assert_eq!(r.end_pfn(), 700);
    assert_eq!(
        r.find_assigned(600, PageSize::Size2M),
        Err(RmpError::NotCovered)
    );
    assert_eq!(r.find_assigned(600, PageSize::Size4K), Ok(None));
    assert_eq!(
        r.find_assigned(700, PageSize::Size4K),
        Err(RmpError::NotCovered)
    );
}

#[test]
fn contiguous_coverage_counts_the_table_itself() {
    // The table sits at 256 MiB (PFN 0x10000) and has entries for PFNs below 0x10000
    // only: it cannot describe its own pages, whatever the RAM size.
    let t = Contiguous::new(
        RmpBase::from_raw(0x1000_0000),
        RmpEnd::from_raw(0x1010_3fff),
    )
    .unwrap();
    assert_eq!(
        t.covers(0),
        Err(GeometryError::TooSmall {
            need: 0x10104 * 16 + 0x4000,
            have: 0x10_4000
        })
    );
    // Placed low, the same size covers exactly 0x10000 pages: the boundary is inclusive.
    let t = Contiguous::new(RmpBase::from_raw(0x100_0000), RmpEnd::from_raw(0x110_3fff)).unwrap();
    assert_eq!(t.covers(0x1_0000), Ok(()));
    assert!(t.covers(0x1_0001).is_err());
}

/// A backend that implements only the required methods, to exercise the trait's
/// default `lookup` and `find_assigned` against the emulated RMP's answers.
struct Defaults<'a>(&'a mut Emulated<MapStore>);

impl Rmp for Defaults<'_> {
    fn rmpupdate(&mut self, pfn: u64, state: &State) -> Result<(), RmpError> {
        self.0.rmpupdate(pfn, state)
    }

    fn psmash(&mut self, pfn: u64) -> Result<(), RmpError> {
        self.0.psmash(pfn)
    }

    fn rmpread(&self, pfn: u64) -> Result<snp_host_model::rmp::model::Record, RmpError> {
        self.0.rmpread(pfn)
    }
}

#[test]
fn trait_defaults_agree_with_the_emulated_backend() {
    let mut r = Emulated::new(MapStore::default(), 3 * 512 + 100);
    r.rmpupdate(0, &private(0, PageSize::Size2M)).unwrap();
    r.rmpupdate(700, &private(0x1000, PageSize::Size4K))
        .unwrap();
    r.rmpupdate(1030, &private(0x1000, PageSize::Size4K))
        .unwrap();
    // An unassigned entry the firmware left with the 2M size bit: Linux reports the level
    // from the 2M-aligned entry regardless of its assigned bit.
    r.seed(512, Entry::from_qwords(0b10, 0)).unwrap();
    let d = Defaults(&mut r);
    for pfn in [
        0, 5, 511, 512, 513, 699, 700, 701, 1024, 1030, 1535, 1536, 1600, 1700,
    ] {
        for size in [PageSize::Size4K, PageSize::Size2M] {
            assert_eq!(
                d.find_assigned(pfn, size),
                d.0.find_assigned(pfn, size),
                "{pfn} {size:?}"
            );
        }
        assert_eq!(d.lookup(pfn), d.0.lookup(pfn), "{pfn}");
    }
    let l = d.lookup(513).unwrap();
    assert_eq!((l.size, l.assigned()), (PageSize::Size2M, false));
    assert_eq!(d.lookup(5).unwrap().size, PageSize::Size2M);
    assert!(d.lookup(5).unwrap().assigned());
    assert_eq!(d.find_assigned(900, PageSize::Size2M), Ok(Some(700)));
    assert_eq!(
        d.find_assigned(1600, PageSize::Size2M),
        Err(RmpError::NotCovered)
    );
    assert_eq!(d.find_assigned(1100, PageSize::Size2M), Ok(Some(1030)));
}
