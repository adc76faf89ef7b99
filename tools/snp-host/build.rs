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

use std::{env, fs, path::PathBuf, process::Command};

const SOURCE: &str = "../../snp_host/abi_header.c";
const HEADER: &str = "../../include/uapi/linux/snp_host.h";
const ABI: &str = "../../snp_host/abi.rs";

/// Returns the assertion an assembly line carries, if it carries one.
fn assertion(line: &str) -> Option<&str> {
    line.trim()
        .strip_prefix(".ascii")?
        .trim()
        .strip_prefix("\"->")?
        .strip_suffix('"')
}

fn main() {
    for f in [SOURCE, HEADER, ABI] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    let asm = out.join("abi_header.s");
    let status = Command::new(&cc)
        .args(["-S", "-o"])
        .arg(&asm)
        .arg(SOURCE)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?}: {e}"));
    assert!(status.success(), "{cc} -S {SOURCE} failed ({status})");
    let text = fs::read_to_string(&asm).expect("the compiler wrote no assembly");
    let checks: Vec<&str> = text.lines().filter_map(assertion).collect();
    assert!(
        !checks.is_empty(),
        "{SOURCE} gave no assertions in {}",
        asm.display()
    );
    let mut rs = format!("// Generated from {HEADER} by build.rs and {SOURCE}. Do not edit.\n");
    for check in checks {
        rs.push_str(check);
        rs.push('\n');
    }
    let generated = out.join("abi_header.rs");
    fs::write(&generated, rs).expect("cannot write the header check");
    println!(
        "cargo:rustc-env=SNP_HOST_ABI_HEADER={}",
        generated.display()
    );
}
