// SPDX-License-Identifier: GPL-2.0

//! The Reverse Map Table model: entry formats, table geometry, instruction semantics,
//! the emulated RMP and the access checks, in `core` only.
//!
//! The same files build into `snp_host.ko` and into the host crate, so the hardware
//! backend and the emulated one share one vocabulary:
//!
//! - [`entry`]: the in-table [`Entry`], the RMPREAD [`Record`], the RMPUPDATE [`State`],
//!   each declared once with the [`bits`] notation, and their checked decoders.
//! - [`geometry`]: where an entry lives, for contiguous and segmented tables.
//! - [`error`]: [`RmpError`], one variant per hardware return code, and which failures
//!   are transient ([`RmpError::is_transient`]).
//! - [`insn`]: the [`Rmp`] trait both backends implement, and the concurrency contract.
//! - [`store`] and [`emulated`]: the emulated RMP over a sparse [`Store`].
//! - [`guest`] and [`access`]: guest-side operands and outcomes, and the single
//!   statement of when host and guest accesses fault.

pub mod access;
pub mod bits;
pub mod cpuid;
pub mod detect;
pub mod emulated;
pub mod entry;
pub mod error;
pub mod geometry;
pub mod guest;
pub mod insn;
pub mod retry;
pub mod store;

pub use self::access::{
    check_guest,
    check_host,
    AccessKind,
    GuestAccess,
    HostFault,
    MapSize, //
};
pub use self::cpuid::MemEncryptFeatures;
pub use self::detect::{
    decide,
    rmpupdate_without_snp,
    Decision,
    HardwareRmp,
    Reason,
    Request,
    Snapshot,
    Syscfg,
    Table, //
};
pub use self::emulated::Emulated;
pub use self::entry::{
    DecodeError,
    Entry,
    EntryHi,
    EntryLo,
    Ignored,
    PageSize,
    Perms,
    Record,
    RecordAttrs,
    State,
    StateAttrs,
    Target,
    Vmpl,
    GPA_LIMIT,
    MAX_ASID,
    PAGES_PER_2M,
    PAGE_SHIFT, //
};
pub use self::error::{
    Insn,
    RmpError, //
};
pub use self::geometry::{
    Contiguous,
    Geometry,
    GeometryError,
    Location,
    RmpBase,
    RmpCfg,
    RmpEnd,
    RstEntry,
    SegmentCount,
    SegmentShifts,
    Segmented,
    BOOKKEEPING_SIZE,
    ENTRY_SIZE,
    RST_ENTRIES,
    RST_SIZE, //
};
pub use self::guest::{
    Adjust,
    AdjustAttrs,
    Guest,
    GuestError,
    GuestFault,
    NpfCode, //
};
pub use self::insn::{
    Lookup,
    Rmp, //
};
pub use self::retry::{
    Retry,
    Step, //
};
pub use self::store::{
    ArrayStore,
    Store, //
};
