// SPDX-License-Identifier: GPL-2.0

//! The Reverse Map Table model: entry formats, table geometry, instruction
//! semantics and the emulated RMP (issue 3 fills this in).

/// Number of bytes one RMP entry occupies in the table.
pub const ENTRY_SIZE: u64 = 16;
