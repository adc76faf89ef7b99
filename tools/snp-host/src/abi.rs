// SPDX-License-Identifier: GPL-2.0

//! The `/dev/snp_host` ABI: the module's own `snp_host/abi.rs`, checked
//! against `include/uapi/linux/snp_host.h` by `build.rs`.
//!
//! The generated checks name the direct-map policies as
//! `crate::directmap::model::Policy`, which the crate root provides by
//! importing the host crate's `directmap` module.

#[path = "../../../snp_host/abi.rs"]
mod header;

pub(crate) use header::*;
