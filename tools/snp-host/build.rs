// SPDX-License-Identifier: GPL-2.0

//! Build script of `snp-host`: the header check of the ABI it uses.
//!
//! The tool compiles the module's own `snp_host/abi.rs` (the structs, ioctl
//! numbers and constants of `include/uapi/linux/snp_host.h`), so nothing of
//! the ABI is typed here a second time. As the host crate's `build.rs` and
//! the module's `Kbuild` do, this compiles `snp_host/abi_header.c` against
//! the header to assembly, keeps the Rust assertions it emits (the strings
//! that start with `->`) and hands them to `abi.rs` through
//! `SNP_HOST_ABI_HEADER`: a struct, number or constant that differs from the
//! header fails the build of the tool too.

const SOURCE: &str = "../../snp_host/abi_header.c";
const HEADER: &str = "../../include/uapi/linux/snp_host.h";
const ABI: &str = "../../snp_host/abi.rs";

include!("../../scripts/abi_check.rs");

fn main() {
    generate_abi_check(
        SOURCE,
        HEADER,
        &[SOURCE, HEADER, ABI, "../../scripts/abi_check.rs"],
    );
}
