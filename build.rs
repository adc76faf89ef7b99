// SPDX-License-Identifier: GPL-2.0

//! Build script of the host crate: the header check of `snp_host/abi.rs`.
//!
//! Compiles `snp_host/abi_header.c` against `include/uapi/linux/snp_host.h`
//! to assembly with the C compiler (`$CC`, else `cc`), keeps the Rust
//! assertions it emits (the strings that start with `->`) and writes them to
//! `$OUT_DIR/abi_header.rs`, whose path `snp_host/abi.rs` includes through
//! `SNP_HOST_ABI_HEADER`. kbuild does the same for the module
//! (`snp_host/Kbuild`); here it makes `cargo build` fail on a mismatch.

const SOURCE: &str = "snp_host/abi_header.c";
const HEADER: &str = "include/uapi/linux/snp_host.h";

include!("scripts/abi_check.rs");

fn main() {
    generate_abi_check(SOURCE, HEADER, &[SOURCE, HEADER, "scripts/abi_check.rs"]);
}
