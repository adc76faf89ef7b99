// SPDX-License-Identifier: GPL-2.0

//! Fuzzes operation sequences: the emulated RMP and the plain one-entry-per-page
//! reference of the host tests must agree on every result and every page they read.

#![no_main]

#[path = "../../tests/common/mod.rs"]
mod common;

use common::{MapStore, Read, Reference};
use libfuzzer_sys::fuzz_target;
use snp_host_model::rmp::access::{check_guest, check_host, AccessKind, GuestAccess, MapSize};
use snp_host_model::rmp::guest::{Adjust, Guest, Vmpl};
use snp_host_model::rmp::model::{Emulated, PageSize, Perms, Rmp, State, Store};

const END: u64 = 3 * 512 + 100;

fn pfn(a: u8, b: u8) -> u64 {
    // Region start, a few pages in, or anywhere: biased towards 2M boundaries.
    let region = u64::from(a & 3) * 512;
    match a >> 6 {
        0 => region,
        1 => region + u64::from(b & 7),
        _ => (u64::from(a) << 8 | u64::from(b)) % (END + 8),
    }
}

fn size(bit: u8) -> PageSize {
    if bit & 1 == 0 {
        PageSize::Size4K
    } else {
        PageSize::Size2M
    }
}

fn compare(emu: &Emulated<MapStore>, reference: &Reference, pfn: u64) {
    let read = emu.rmpread(pfn).map(|r| Read {
        assigned: r.assigned(),
        size: r.page_size(),
        immutable: r.immutable(),
        gpa: r.gpa(),
        asid: r.asid(),
        region_4k: r.region_4k(),
    });
    assert_eq!(read, reference.rmpread(pfn));
    for map in [MapSize::Size4K, MapSize::Size2M] {
        assert_eq!(
            check_host(emu, pfn, true, map),
            reference.check_host(pfn, true, map)
        );
    }
    if let Ok(effective) = emu.effective(pfn) {
        let plain = reference.page(pfn);
        assert_eq!(effective.validated(), plain.validated);
        let access = GuestAccess {
            guest: Guest {
                asid: 1,
                vmpl: Vmpl::Vmpl1,
            },
            gpa: pfn << 12,
            pfn,
            npt: MapSize::Size4K,
            kind: AccessKind::Read,
            encrypted: true,
            page_table: false,
        };
        assert_eq!(
            emu.check_guest(&access).ok().flatten(),
            check_guest(&plain.entry(), &access)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut emu = Emulated::new(MapStore::default(), END);
    let mut reference = Reference::new(END);
    for op in data.chunks_exact(5) {
        let (kind, a, b, c, d) = (op[0], op[1], op[2], op[3], op[4]);
        let pfn = pfn(a, b);
        let gpa = (pfn + u64::from(c >> 6 & 1) * 0x1000) << 12;
        let asid = u32::from(c & 3);
        match kind % 6 {
            0 => {
                let state = if d & 1 == 0 {
                    State::shared(size(d >> 1))
                } else {
                    State::private(gpa, size(d >> 1), asid, d & 0x80 != 0 && d & 0x40 != 0)
                };
                assert_eq!(emu.rmpupdate(pfn, &state), reference.rmpupdate(pfn, &state));
            }
            1 => assert_eq!(emu.psmash(pfn), reference.psmash(pfn)),
            2 => assert_eq!(
                emu.pvalidate(asid, pfn, gpa, size(d), d & 2 != 0),
                reference.pvalidate(asid, pfn, gpa, size(d), d & 2 != 0)
            ),
            3 => {
                let guest = Guest {
                    asid,
                    vmpl: Vmpl::try_from(d & 3).unwrap(),
                };
                let Ok(target) = Vmpl::try_from(d >> 2 & 7) else {
                    continue;
                };
                let adjust = Adjust {
                    vmpl: target,
                    perms: Perms::try_from(d >> 3 & 0x1f).unwrap(),
                    vmsa: d & 0x80 != 0,
                };
                assert_eq!(
                    emu.rmpadjust(guest, pfn, gpa, size(c >> 7), adjust),
                    reference.rmpadjust(guest, pfn, gpa, size(c >> 7), adjust)
                );
            }
            4 => {
                let busy = (d & 1 != 0).then_some(pfn);
                emu.set_busy(busy);
                reference.set_busy(busy);
            }
            _ => {
                let mut bytes = [0u8; 16];
                bytes[..5].copy_from_slice(op);
                bytes[8] = d & 1;
                bytes[9] = d >> 1 & 1;
                bytes[12] = c & 7;
                let state = State::from_bytes(&bytes);
                assert_eq!(emu.rmpupdate(pfn, &state), reference.rmpupdate(pfn, &state));
            }
        }
        let region = pfn & !511;
        for p in (region..region + 4).chain([region + 300, region + 511, pfn]) {
            compare(&emu, &reference, p);
        }
        assert!(emu.store().len() <= reference.non_default());
    }
});
