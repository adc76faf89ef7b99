// SPDX-License-Identifier: GPL-2.0

//! Reference hosts for the backend decision: what a Milan, a Genoa and a Turin host
//! report in each SNP state, and what [`decide`] must make of it.
//!
//! The host tests (`tests/detect.rs`) and the KUnit suite `snp_host_platform` run the
//! same table, so the decision the module takes on load is checked against every host
//! below without SNP hardware. This file is test data: the host crate and KUnit builds
//! include it, the module proper does not.
//!
//! No SNP host was at hand to capture these from. They are written from the documented
//! layouts (PPR and APM bit assignments, Linux's probing code) with the sizes such hosts
//! have: CPUID 0x8000001f EAX with the bits the kernel keeps (SME, SEV, SEV-ES, SNP and
//! the Zen 3/4/5 additions; RMPREAD and segmented RMP from Zen 5 on), `SYSCFG` as Linux
//! leaves it (MTRR bits 18-22, memory encryption bit 23, `SNPEn` and `VMPLEn` once
//! `snp_prepare()` ran, `MFDM` from then until an SNP shutdown), and RMP tables that
//! cover all RAM the way the BIOS reserves them. The values the model does not
//! interpret are plausible, not captured.

use super::model::bits::mask;
use super::model::{
    decide,
    Decision,
    MemEncryptFeatures,
    Reason,
    Request,
    RmpBase,
    RmpCfg,
    RmpEnd,
    SegmentCount,
    SegmentShifts,
    Snapshot,
    Syscfg, //
};

/// `SYSCFG` with SNP initialised: MTRR bits, memory encryption, `MFDM`, `SNPEn`, `VMPLEn`.
pub const SYSCFG_SNP_ON: u64 = 0x03fc_0000;
/// `SYSCFG` on an SNP-capable host before SNP is initialised: MTRR bits and memory
/// encryption only.
pub const SYSCFG_SNP_OFF: u64 = 0x00f4_0000;
/// `SYSCFG` after an SNP shutdown: the firmware cleared `SNPEn` and `VMPLEn`, Linux
/// cleared `MFDM`; the same bits as before SNP was initialised.
pub const SYSCFG_AFTER_SHUTDOWN: u64 = SYSCFG_SNP_OFF;

const MILAN_FEATURES: u64 = 0x0001_3c3f;
const GENOA_FEATURES: u64 = 0x0007_ffff;
const TURIN_FEATURES: u64 = GENOA_FEATURES | (1 << 21) | (1 << 23);

/// Milan (EPYC 7003, Zen 3), 257 GiB of RAM, contiguous RMP, no RMPREAD, SNP on.
pub const MILAN: Snapshot<'static> = Snapshot {
    max_extended_leaf: 0x8000_0023,
    features: MemEncryptFeatures::from_raw(MILAN_FEATURES),
    guests: 509,
    min_sev_asid: 100,
    segment_shifts: SegmentShifts::from_raw(0),
    segment_count: SegmentCount::from_raw(0),
    host_snp: true,
    syscfg: Some(Syscfg::from_raw(SYSCFG_SNP_ON)),
    rmp_base: Some(RmpBase::from_raw(MILAN_RMP_BASE)),
    rmp_end: Some(RmpEnd::from_raw(MILAN_RMP_BASE + MILAN_RMP_SIZE - 1)),
    rmp_cfg: None,
    rst: None,
    end_pfn: 0x404_0000,
};
/// Where Milan's BIOS put the RMP.
pub const MILAN_RMP_BASE: u64 = 0x3f_a000_0000;
/// The size of Milan's RMP: bookkeeping and 16 bytes per page, rounded up to 2 MiB.
pub const MILAN_RMP_SIZE: u64 = 0x4060_0000;

/// Genoa (EPYC 9004, Zen 4), 769 GiB of RAM, contiguous RMP, no RMPREAD, SNP on.
pub const GENOA: Snapshot<'static> = Snapshot {
    max_extended_leaf: 0x8000_0026,
    features: MemEncryptFeatures::from_raw(GENOA_FEATURES),
    guests: 1006,
    min_sev_asid: 256,
    segment_shifts: SegmentShifts::from_raw(0),
    segment_count: SegmentCount::from_raw(0),
    host_snp: true,
    syscfg: Some(Syscfg::from_raw(SYSCFG_SNP_ON)),
    rmp_base: Some(RmpBase::from_raw(GENOA_RMP_BASE)),
    rmp_end: Some(RmpEnd::from_raw(GENOA_RMP_BASE + GENOA_RMP_SIZE - 1)),
    rmp_cfg: None,
    rst: None,
    end_pfn: 0xc04_0000,
};
/// Where Genoa's BIOS put the RMP.
pub const GENOA_RMP_BASE: u64 = 0xbf_0000_0000;
/// The size of Genoa's RMP.
pub const GENOA_RMP_SIZE: u64 = 0xc100_0000;

/// Turin (EPYC 9005, Zen 5), 1.5 TiB of RAM, segmented RMP with 64 GiB segments,
/// RMPREAD, SNP on. Its `RMP_END` is zero, as it is whenever the RMP is segmented.
pub const TURIN: Snapshot<'static> = Snapshot {
    max_extended_leaf: 0x8000_0028,
    features: MemEncryptFeatures::from_raw(TURIN_FEATURES),
    guests: 1006,
    min_sev_asid: 512,
    segment_shifts: SegmentShifts::from_raw(36 | (41 << 6)),
    segment_count: SegmentCount::from_raw(64),
    host_snp: true,
    syscfg: Some(Syscfg::from_raw(SYSCFG_SNP_ON)),
    rmp_base: Some(RmpBase::from_raw(TURIN_RMP_BASE)),
    rmp_end: Some(RmpEnd::from_raw(0)),
    rmp_cfg: Some(RmpCfg::from_raw(1 | (TURIN_SEGMENT_SHIFT << 8))),
    rst: Some(&TURIN_RST),
    end_pfn: TURIN_END_PFN,
};
/// Where Turin's BIOS put the bookkeeping area and the segment table.
pub const TURIN_RMP_BASE: u64 = 0x0f_fff0_0000;
/// Turin's segment shift: 64 GiB per segment.
pub const TURIN_SEGMENT_SHIFT: u64 = 36;
/// One past Turin's highest PFN of RAM (1.5 TiB and the 1 GiB below 4 GiB remapped).
pub const TURIN_END_PFN: u64 = 0x1804_0000;
/// Segments Turin's RAM needs: 24 full ones and one for the last GiB.
pub const TURIN_SEGMENTS: usize = 25;
/// Turin's segment table: segment `i` maps 64 GiB and keeps its entries 32 GiB into
/// the memory it covers; one more segment far above RAM maps trusted-I/O space.
pub static TURIN_RST: [u64; 512] = turin_rst();

const fn turin_rst() -> [u64; 512] {
    let mut rst = [0u64; 512];
    let mut i = 0;
    while i < TURIN_SEGMENTS {
        let entries = ((i as u64) << TURIN_SEGMENT_SHIFT) + 0x8_0000_0000;
        rst[i] = rst_entry(entries, 64);
        i += 1;
    }
    // Trusted I/O, at 32 TiB: above RAM, so it does not count as RAM coverage.
    rst[500] = rst_entry(0x1_0000_0000, 1);
    rst
}

/// Returns the segment-table entry of a segment whose entries start at `base`
/// (1 MiB-aligned) and which maps `gib` GiB (the `RstEntry` layout, in a `const fn`).
const fn rst_entry(base: u64, gib: u64) -> u64 {
    (base & mask(51, 20)) | (gib & mask(19, 0))
}

/// Returns `host` with `SYSCFG` set to `syscfg`.
pub const fn with_syscfg(host: Snapshot<'static>, syscfg: u64) -> Snapshot<'static> {
    Snapshot {
        syscfg: Some(Syscfg::from_raw(syscfg)),
        ..host
    }
}

/// What [`decide`] must answer for one reference host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// The hardware, with this geometry.
    Hardware {
        /// `RMP_BASE`.
        base: u64,
        /// What `snp_host_status.rmp_end` reports.
        end: u64,
        /// One past the highest PFN with an entry.
        end_pfn: u64,
        /// The table is segmented.
        segmented: bool,
        /// Entries are read with RMPREAD (else from the mapped table).
        rmpread: bool,
    },
    /// The emulation, for a reason whose message contains the text.
    Emulated(&'static str),
    /// A refusal to load, with a message containing the text.
    Refused(&'static str),
}

/// One case: a host in one state, a `backend=` request and the required decision.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    /// What the case shows.
    pub name: &'static str,
    /// The host.
    pub host: Snapshot<'static>,
    /// The `backend=` value.
    pub request: Request,
    /// The decision required.
    pub expected: Expected,
}

const NOT_INITIALISED: &str = "SYSCFG.SNPEn is clear";

/// Every case both test suites check.
pub const CASES: &[Case] = &[
    Case {
        name: "Milan, SNP on",
        host: MILAN,
        request: Request::Auto,
        expected: Expected::Hardware {
            base: MILAN_RMP_BASE,
            end: MILAN_RMP_BASE + MILAN_RMP_SIZE - 1,
            end_pfn: (MILAN_RMP_SIZE - 0x4000) / 16,
            segmented: false,
            rmpread: false,
        },
    },
    Case {
        name: "Milan, SNP supported but not initialised, backend=auto",
        host: with_syscfg(MILAN, SYSCFG_SNP_OFF),
        request: Request::Auto,
        expected: Expected::Emulated(NOT_INITIALISED),
    },
    Case {
        name: "Milan, SNP supported but not initialised, backend=hardware",
        host: with_syscfg(MILAN, SYSCFG_SNP_OFF),
        request: Request::Hardware,
        expected: Expected::Refused("when kvm_amd loads with sev_snp=1"),
    },
    Case {
        name: "Milan, RMP smaller than RAM",
        host: Snapshot {
            rmp_end: Some(RmpEnd::from_raw(MILAN_RMP_BASE + 0x3fff_ffff)),
            ..MILAN
        },
        request: Request::Hardware,
        expected: Expected::Refused("does not cover all RAM (needs 0x40404000, has 0x40000000)"),
    },
    Case {
        name: "Milan, SYSCFG unreadable",
        host: Snapshot {
            syscfg: None,
            ..MILAN
        },
        request: Request::Hardware,
        expected: Expected::Refused("SYSCFG cannot be read"),
    },
    Case {
        name: "Milan, SNP disabled in the BIOS (the kernel cleared its bit)",
        host: Snapshot {
            features: MemEncryptFeatures::from_raw(MILAN_FEATURES & !(1 << 4)),
            host_snp: false,
            ..MILAN
        },
        request: Request::Auto,
        expected: Expected::Emulated("reports no SEV-SNP"),
    },
    Case {
        name: "Genoa, SNP on",
        host: GENOA,
        request: Request::Hardware,
        expected: Expected::Hardware {
            base: GENOA_RMP_BASE,
            end: GENOA_RMP_BASE + GENOA_RMP_SIZE - 1,
            end_pfn: (GENOA_RMP_SIZE - 0x4000) / 16,
            segmented: false,
            rmpread: false,
        },
    },
    Case {
        name: "Genoa, after an SNP shutdown",
        host: with_syscfg(GENOA, SYSCFG_AFTER_SHUTDOWN),
        request: Request::Auto,
        expected: Expected::Emulated(NOT_INITIALISED),
    },
    Case {
        name: "Genoa, CPU supports SNP, kernel did not enable it",
        host: Snapshot {
            host_snp: false,
            ..GENOA
        },
        request: Request::Hardware,
        expected: Expected::Refused("did not enable it at boot"),
    },
    Case {
        name: "Turin, segmented with RMPREAD, SNP on",
        host: TURIN,
        request: Request::Auto,
        expected: Expected::Hardware {
            base: TURIN_RMP_BASE,
            end: 0,
            end_pfn: (TURIN_SEGMENTS as u64) << (TURIN_SEGMENT_SHIFT - 12),
            segmented: true,
            rmpread: true,
        },
    },
    Case {
        name: "Turin, segmented, SNP not initialised",
        host: with_syscfg(TURIN, SYSCFG_SNP_OFF),
        request: Request::Hardware,
        expected: Expected::Refused(NOT_INITIALISED),
    },
    Case {
        name: "Turin, segmented without RMPREAD",
        host: Snapshot {
            features: MemEncryptFeatures::from_raw(TURIN_FEATURES & !(1 << 21)),
            ..TURIN
        },
        request: Request::Hardware,
        expected: Expected::Refused("segmented but the CPU has no RMPREAD"),
    },
    Case {
        name: "Turin, contiguous RMP (RMP_CFG off) with RMPREAD",
        host: Snapshot {
            rmp_end: Some(RmpEnd::from_raw(TURIN_RMP_BASE + TURIN_CONTIGUOUS_SIZE - 1)),
            rmp_cfg: Some(RmpCfg::from_raw(0)),
            rst: None,
            ..TURIN
        },
        request: Request::Auto,
        expected: Expected::Hardware {
            base: TURIN_RMP_BASE,
            end: TURIN_RMP_BASE + TURIN_CONTIGUOUS_SIZE - 1,
            end_pfn: (TURIN_CONTIGUOUS_SIZE - 0x4000) / 16,
            segmented: false,
            rmpread: true,
        },
    },
    Case {
        name: "Turin, segment table stops short of RAM",
        host: Snapshot {
            end_pfn: TURIN_END_PFN + (64 << 18),
            ..TURIN
        },
        request: Request::Hardware,
        expected: Expected::Refused("does not cover all RAM"),
    },
    Case {
        name: "Turin, segment size outside CPUID 0x80000025",
        host: Snapshot {
            segment_shifts: SegmentShifts::from_raw(37 | (41 << 6)),
            ..TURIN
        },
        request: Request::Hardware,
        expected: Expected::Refused("outside what CPUID 0x80000025 allows"),
    },
    Case {
        name: "QEMU -cpu EPYC: no leaf 0x8000001f",
        host: Snapshot {
            max_extended_leaf: 0x8000_001e,
            ..Snapshot::EMPTY
        },
        request: Request::Auto,
        expected: Expected::Emulated("no CPUID leaf 0x8000001f"),
    },
    Case {
        name: "Milan, backend=emulated",
        host: MILAN,
        request: Request::Emulated,
        expected: Expected::Emulated("backend=emulated"),
    },
];

/// The size of the contiguous RMP of the Turin variant that does not use segments.
pub const TURIN_CONTIGUOUS_SIZE: u64 = 0x1_8080_0000;

/// Checks one case, returning what differs.
///
/// # Errors
///
/// A description of the first difference between the decision and [`Case::expected`].
pub fn check(case: &Case) -> Result<(), &'static str> {
    let decision = decide(&case.host, case.request);
    match (case.expected, decision) {
        (
            Expected::Hardware {
                base,
                end,
                end_pfn,
                segmented,
                rmpread,
            },
            Decision::Hardware(hw),
        ) => {
            if hw.base() != base {
                return Err("wrong RMP base");
            }
            if hw.end() != end {
                return Err("wrong RMP end");
            }
            if hw.end_pfn() != end_pfn {
                return Err("wrong end PFN");
            }
            if hw.segmented() != segmented {
                return Err("wrong segmentation");
            }
            if hw.rmpread != rmpread || hw.mapped_table().is_some() == rmpread {
                return Err("wrong way of reading entries");
            }
            Ok(())
        }
        (Expected::Emulated(text), Decision::Emulated(reason))
        | (Expected::Refused(text), Decision::Refused(reason)) => {
            if message_contains(&reason, text) {
                Ok(())
            } else {
                Err("the message does not say what it must")
            }
        }
        _ => Err("wrong backend"),
    }
}

/// Returns whether the message of `reason` contains `text`.
pub fn message_contains(reason: &Reason, text: &str) -> bool {
    let mut buf = Buffer {
        bytes: [0; 512],
        len: 0,
    };
    if core::fmt::write(&mut buf, format_args!("{reason}")).is_err() {
        return false;
    }
    let written = buf.bytes.get(..buf.len).unwrap_or(&[]);
    written
        .windows(text.len().max(1))
        .any(|w| w == text.as_bytes())
}

/// A fixed buffer to format a message into without allocating.
struct Buffer {
    bytes: [u8; 512],
    len: usize,
}

impl core::fmt::Write for Buffer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        let dst = self.bytes.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
