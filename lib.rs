// SPDX-License-Identifier: GPL-2.0

//! Host build of the core-only logic of `snp_host.ko`.
//!
//! The module compiles `rmp/model/`, `directmap/model/` and `fault/model/` as
//! submodules of its crate; this crate compiles the very same files, under the
//! same paths (`crate::rmp::model`, ...), so that they can be unit-tested,
//! property-tested, fuzzed and benchmarked with an ordinary Cargo toolchain.
//! `no_std` keeps them honest: anything that needs more than `core` does not
//! belong in a model file.

#![no_std]

/// Reverse Map Table logic.
pub mod rmp {
    #[path = "model/mod.rs"]
    pub mod model;

    // Test data, not compiled into the module (its KUnit suites include it).
    #[path = "model/reference.rs"]
    pub mod reference;
}

/// Kernel direct-map logic.
pub mod directmap {
    #[path = "model/mod.rs"]
    pub mod model;
}

/// RMP page-fault logic.
pub mod fault {
    #[path = "model/mod.rs"]
    pub mod model;
}
