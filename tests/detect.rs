// SPDX-License-Identifier: GPL-2.0

//! The backend decision on the reference hosts (the same table the KUnit suite
//! `snp_host_platform` checks), the SNP state rules of the hardware backend, and the
//! segment-table reading the kernel side relies on.

use snp_host_model::rmp::model::{
    decide, rmpupdate_without_snp, Decision, PageSize, Reason, Request, RmpError, Snapshot, State,
    Syscfg, Table,
};
use snp_host_model::rmp::reference::{
    check, message_contains, with_syscfg, CASES, GENOA, MILAN, SYSCFG_AFTER_SHUTDOWN,
    SYSCFG_SNP_OFF, SYSCFG_SNP_ON, TURIN, TURIN_RMP_BASE,
};

#[test]
fn every_reference_case_decides_as_required() {
    let mut failed = Vec::new();
    for case in CASES {
        if let Err(what) = check(case) {
            failed.push(format!(
                "{}: {what}: {:?}",
                case.name,
                decide(&case.host, case.request)
            ));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn the_checker_notices_a_wrong_decision() {
    // A check that cannot fail proves nothing: break each kind of expectation once.
    let mut case = CASES[0];
    case.request = Request::Emulated;
    assert_eq!(check(&case), Err("wrong backend"));
    let mut case = CASES[1];
    case.host = MILAN;
    assert_eq!(check(&case), Err("wrong backend"));
    let mut case = CASES[2];
    case.host = with_syscfg(MILAN, SYSCFG_SNP_ON & !(1 << 24) & !(1 << 25));
    assert_eq!(check(&case), Ok(()));
    case.host.host_snp = false;
    assert_eq!(check(&case), Err("the message does not say what it must"));
}

#[test]
fn snp_state_follows_snpen_only() {
    assert!(Syscfg::from_raw(SYSCFG_SNP_ON).snp_enabled().is_ok());
    for raw in [
        SYSCFG_SNP_OFF,
        SYSCFG_AFTER_SHUTDOWN,
        SYSCFG_SNP_ON & !(1 << 24),
    ] {
        assert_eq!(
            Syscfg::from_raw(raw).snp_enabled(),
            Err(RmpError::SnpDisabled),
            "{raw:#x}"
        );
    }
    // VMPLEn and MFDM alone do not make the instructions work.
    let vmpl_only = Syscfg::from_raw(0).with_vmpl_en(true).with_mfdm(true);
    assert_eq!(vmpl_only.snp_enabled(), Err(RmpError::SnpDisabled));
}

#[test]
fn without_snp_only_returning_a_page_succeeds() {
    for size in [PageSize::Size4K, PageSize::Size2M] {
        assert_eq!(rmpupdate_without_snp(&State::shared(size)), Ok(()));
        assert_eq!(
            rmpupdate_without_snp(&State::private(0x20_0000, size, 1, false)),
            Err(RmpError::SnpDisabled)
        );
    }
    let mut bad = State::shared(PageSize::Size4K).to_bytes();
    bad[9] = 2;
    assert_eq!(
        rmpupdate_without_snp(&State::from_bytes(&bad)),
        Err(RmpError::FailInput)
    );
}

#[test]
fn segmented_status_end_is_zero_and_contiguous_is_the_last_byte() {
    let Decision::Hardware(turin) = decide(&TURIN, Request::Hardware) else {
        panic!("Turin must drive the hardware");
    };
    assert_eq!((turin.base(), turin.end()), (TURIN_RMP_BASE, 0));
    assert!(matches!(turin.table, Table::Segmented { shift: 36, .. }));
    assert!(turin.mapped_table().is_none());
    let Decision::Hardware(genoa) = decide(&GENOA, Request::Auto) else {
        panic!("Genoa must drive the hardware");
    };
    assert_eq!(genoa.end() & 0x1fff, 0x1fff);
    assert!(genoa.mapped_table().is_some());
}

#[test]
fn the_segment_table_is_read_only_when_segmented() {
    assert_eq!(TURIN.rst_address(), Some(TURIN_RMP_BASE + 0x4000));
    assert_eq!(MILAN.rst_address(), None);
    let cfg_off = Snapshot {
        rmp_cfg: None,
        ..TURIN
    };
    assert_eq!(cfg_off.rst_address(), None);
    // RMP_CFG unreadable on a CPU that has segments is an error, not "contiguous".
    assert!(message_contains(
        &decide(&cfg_off, Request::Auto).reason(),
        "RMP_CFG cannot be read"
    ));
}

#[test]
fn every_reason_has_a_message() {
    let reasons = CASES
        .iter()
        .map(|c| decide(&c.host, c.request).reason())
        .chain([Reason::FeatureCleared, Reason::Enabled]);
    for reason in reasons {
        assert!(reason.to_string().len() > 10, "{reason:?}");
    }
}
