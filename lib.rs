// SPDX-License-Identifier: GPL-2.0

//! Host build of the core-only logic of `snp_host.ko`.
//!
//! The module compiles `rmp/model/`, `directmap/model/`, `fault/model/` and
//! `snp_host/abi.rs` as submodules of its crate; this crate compiles the very
//! same files, under the same paths (`crate::rmp::model`, `crate::uapi::abi`,
//! ...), so that they can be unit-tested, property-tested, fuzzed and
//! benchmarked with an ordinary Cargo toolchain.
//! `no_std` keeps them honest: anything that needs more than `core` does not
//! belong in a model file.
//!
//! Core-only code the module does not use (the guest side of the emulated RMP,
//! test fixtures) is built here alone, as siblings of `model` (`crate::rmp::guest`,
//! ...): a `model/mod.rs` lists only what the module compiles ("What is built
//! where" in `rmp/model/mod.rs`).

#![no_std]

/// Reverse Map Table logic.
pub mod rmp {
    #[path = "model/mod.rs"]
    pub mod model;

    // What only this crate builds: the module does not use these (see "What is built
    // where" in `model/mod.rs`); its KUnit suites include `reference`.
    #[path = "model/access.rs"]
    pub mod access;
    #[path = "model/array_store.rs"]
    pub mod array_store;
    #[path = "model/guest.rs"]
    pub mod guest;
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

/// The `/dev/snp_host` ABI.
///
/// Compiled here for its check against `include/uapi/linux/snp_host.h` (see
/// `build.rs`): `cargo build` fails where the Rust mirror and the header differ.
#[path = "snp_host"]
pub mod uapi {
    mod abi;
}
