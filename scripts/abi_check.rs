// SPDX-License-Identifier: GPL-2.0

// The header check of `snp_host/abi.rs`, shared by the build scripts of the
// host crate (`build.rs`) and of `snp-host` (`tools/snp-host/build.rs`), which
// `include!` it: compiles `source` (`snp_host/abi_header.c`) against `header`
// (`include/uapi/linux/snp_host.h`) to assembly with the C compiler (`$CC`,
// else `cc`), keeps the Rust assertions it emits (the strings that start with
// `->`) and writes them to `$OUT_DIR/abi_header.rs`, whose path `abi.rs`
// includes through `SNP_HOST_ABI_HEADER`. kbuild does the same for the module
// (`snp_host/Kbuild`).

/// Returns the assertion an assembly line carries, if it carries one.
fn assertion(line: &str) -> Option<&str> {
    line.trim()
        .strip_prefix(".ascii")?
        .trim()
        .strip_prefix("\"->")?
        .strip_suffix('"')
}

/// Generates the header check; `inputs` are the files whose change reruns it.
fn generate_abi_check(source: &str, header: &str, inputs: &[&str]) {
    use std::{env, fs, path::PathBuf, process::Command};

    for f in inputs {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    let asm = out.join("abi_header.s");
    let status = Command::new(&cc)
        .args(["-S", "-o"])
        .arg(&asm)
        .arg(source)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?}: {e}"));
    assert!(status.success(), "{cc} -S {source} failed ({status})");
    let text = fs::read_to_string(&asm).expect("the compiler wrote no assembly");
    let checks: Vec<&str> = text.lines().filter_map(assertion).collect();
    assert!(
        !checks.is_empty(),
        "{source} gave no assertions in {}",
        asm.display()
    );
    let mut rs = format!("// Generated from {header} by build.rs and {source}. Do not edit.\n");
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
