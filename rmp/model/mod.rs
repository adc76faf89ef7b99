// SPDX-License-Identifier: GPL-2.0

//! The Reverse Map Table model: entry formats, table geometry, instruction semantics,
//! the emulated RMP and the backend decision, in `core` only.
//!
//! The same files build into `snp_host.ko` and into the host crate, so the hardware
//! backend and the emulated one share one vocabulary:
//!
//! - [`entry`]: the in-table [`Entry`], the RMPREAD [`Record`], the RMPUPDATE [`State`],
//!   each declared once with the [`bits`] notation, and their decoders.
//! - [`geometry`]: where an entry lives, for contiguous and segmented tables.
//! - [`error`]: [`RmpError`], one variant per hardware return code, and which failures
//!   are transient ([`RmpError::is_transient`]); [`retry`]: for how long those are
//!   retried.
//! - [`insn`]: the [`Rmp`] trait both backends implement, and the concurrency contract.
//! - [`store`] and [`emulated`]: the emulated RMP over a sparse [`Store`].
//! - [`cpuid`] and [`detect`]: what the host reports, and which backend that allows.
//!
//! # What is built where
//!
//! This list holds exactly the files the module uses. Files only the host crate needs
//! are built by `lib.rs` alone, next to this module rather than inside it
//! (`rmp::guest`: the guest's and the firmware's side of the emulation; `rmp::access`:
//! the access checks; `rmp::array_store`; `rmp::reference`: the reference hosts, which
//! the module's KUnit build includes too). An item of a file listed here that the module
//! does not use says so with its own `#[allow(dead_code, reason = ...)]`; `allow`, since
//! in the host crate it is public and never dead. Each file's public items are the
//! model's API, re-exported below.

pub mod bits;
pub mod cpuid;
pub mod detect;
pub mod emulated;
pub mod entry;
pub mod error;
pub mod geometry;
pub mod insn;
pub mod retry;
pub mod store;

pub use self::cpuid::*;
pub use self::detect::*;
pub use self::emulated::*;
pub use self::entry::*;
pub use self::error::*;
pub use self::geometry::*;
pub use self::insn::*;
pub use self::retry::*;
pub use self::store::*;
