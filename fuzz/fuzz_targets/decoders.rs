// SPDX-License-Identifier: GPL-2.0

//! Fuzzes every decoder of untrusted RMP input: raw table entries (with their reserved
//! bits set), RMPREAD records (likewise), RMPUPDATE states, RMPADJUST operands, the RMP
//! MSRs and the segment table. None may panic, and whatever decodes must re-encode to
//! the same meaning.

#![no_main]

use libfuzzer_sys::fuzz_target;
use snp_host_model::rmp::guest::{Adjust, AdjustAttrs};
use snp_host_model::rmp::model::{
    Contiguous, Entry, PageSize, Record, RmpBase, RmpCfg, RmpEnd, SegmentCount, SegmentShifts,
    Segmented, State, Target,
};

fn qword(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let mut sixteen = [0u8; 16];
    for (i, byte) in sixteen.iter_mut().enumerate() {
        *byte = data.get(i).copied().unwrap_or(0);
    }

    let entry = Entry::from_bytes(&sixteen);
    assert_eq!(entry.to_bytes(), sixteen);
    let cleared = entry.cleared();
    assert!(!cleared.assigned() && cleared.asid() == 0 && !cleared.validated());
    if let Ok(record) = entry.to_record() {
        assert_eq!(Record::from_bytes(&record.to_bytes()), Ok(record));
    }

    if let Ok(record) = Record::from_bytes(&sixteen) {
        assert_eq!(record.to_bytes(), sixteen);
        assert_eq!(record.gpa() & 0xfff, 0);
    }

    // The live-table decoder, with the bits it does not interpret set and cleared
    // (reserved and firmware bits: a later CPU or firmware may set them).
    let undefined = (0x1ff << 3) | (1 << 63);
    let lo = qword(data, 0);
    let noisy = Entry::from_qwords(lo | undefined, qword(data, 8)).as_record();
    assert_eq!(noisy, Entry::from_qwords(lo & !undefined, 0).as_record());
    if let Ok(strict) = entry.to_record() {
        assert_eq!(strict, entry.as_record());
    }

    // RMPREAD output with arbitrary reserved bits: never rejected, and what is kept plus
    // what is ignored is exactly the input.
    let (read, ignored) = Record::from_rmpread([qword(data, 0), qword(data, 8)]);
    let kept = read.to_bytes();
    assert_eq!(Record::from_bytes(&kept), Ok(read));
    assert_eq!(read.gpa() | ignored.gpa, qword(data, 0));
    assert_eq!(qword(&kept, 8) | ignored.attrs, qword(data, 8));
    assert_eq!(ignored.any(), Record::from_bytes(&sixteen).is_err());

    let state = State::from_bytes(&sixteen);
    assert_eq!(state.to_bytes(), sixteen);
    if let Ok(target) = state.decode() {
        if let Target::Private {
            gpa, size, asid, ..
        } = target
        {
            assert!(asid != 0 && gpa % size.bytes() == 0);
        }
    }

    let adjust = AdjustAttrs::from_raw(qword(data, 16));
    if let Ok(decoded) = Adjust::try_from(adjust) {
        assert_eq!(decoded.perms.bits(), adjust.perms().bits());
    }

    // Table geometry from arbitrary MSRs, CPUID and segment table.
    let pfn = qword(data, 24);
    if let Ok(table) = Contiguous::new(
        RmpBase::from_raw(qword(data, 32)),
        RmpEnd::from_raw(qword(data, 40)),
    ) {
        let _ = table.covers(qword(data, 48));
        for size in [PageSize::Size4K, PageSize::Size2M] {
            if let Ok(loc) = table.locate(pfn, size) {
                assert!(loc.address >= table.base() && loc.address < table.base() + table.size());
                assert_eq!(loc.index, size.align_down(pfn));
            }
        }
    }
    let rst: Vec<u64> = data
        .get(64..)
        .unwrap_or(&[])
        .chunks(8)
        .map(|c| qword(c, 0))
        .collect();
    let segmented = Segmented::new(
        RmpBase::from_raw(qword(data, 32)),
        RmpCfg::from_raw(qword(data, 48)),
        SegmentShifts::from_raw(qword(data, 56)),
        SegmentCount::from_raw(qword(data, 40)),
        &rst,
        qword(data, 24) >> 40,
    );
    if let Ok(table) = segmented {
        for size in [PageSize::Size4K, PageSize::Size2M] {
            if let Ok(loc) = table.locate(pfn, size) {
                assert!(loc.segment < table.segments());
            }
        }
    }
});
