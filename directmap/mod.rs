// SPDX-License-Identifier: GPL-2.0

//! The kernel direct map around guest-owned pages: split, unmap, restore, merge.

// Shared with the host crate, see `rmp/mod.rs`.
#[allow(unreachable_pub, dead_code, unused_imports)]
pub(crate) mod model;
