// SPDX-License-Identifier: GPL-2.0

//! The Reverse Map Table: platform discovery, the model, and the backends.

// The model's items are `pub`: they are the public API of the host crate (`lib.rs`), used
// by its tests, doctests, fuzz targets and benchmarks. Here the model is private to the
// crate, so `pub` means `pub(crate)` and `-Wunreachable_pub` fires on each item. The lint
// and `dead_code` exclude each other (an item reachable from the crate root is never
// dead), and dead-code checking is the one worth keeping: it is what keeps out of the
// module what the module does not use ("What is built where" in `model/mod.rs`).
#[expect(
    unreachable_pub,
    reason = "public for the host crate, crate-private here; see above"
)]
pub(crate) mod model;

// The reference hosts the KUnit suite `snp_host_platform` checks: test data, built with
// KUnit only.
#[cfg(CONFIG_KUNIT = "y")]
#[path = "model/reference.rs"]
#[expect(
    unreachable_pub,
    reason = "public for the host crate, crate-private here; see above"
)]
mod reference;

pub(crate) mod backend;
pub(crate) mod emulated;
pub(crate) mod hardware;
pub(crate) mod platform;
