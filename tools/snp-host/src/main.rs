// SPDX-License-Identifier: GPL-2.0

//! `snp-host`: the operator's tool for an SEV-SNP host running `snp_host.ko`.
//!
//! `ok` says whether the host is ready for SNP guests, `status` and `stats`
//! show what the module reports, `rmp` shows RMP entries and `directmap`
//! how the kernel maps physical memory. Every command prints text for
//! people, or with `--json` one JSON document whose schema is in
//! `tools/snp-host/README.md` (`"version": 1`).
//!
//! The ABI comes from the module's own `snp_host/abi.rs`, checked against
//! `include/uapi/linux/snp_host.h` when this is built (`build.rs`).

mod abi;
mod checks;
mod counters;
mod cpuid;
mod device;
mod directmap;
mod error;
mod format;
mod module;
mod rmp;
mod source;

use clap::{Parser, Subcommand};
use error::{Error, Result};
use serde::Serialize;
use serde_json::{json, Value};
use std::process::ExitCode;

/// Readiness, status, counters, RMP entries and the direct map of an
/// SEV-SNP host running snp_host.ko.
#[derive(Parser, Debug)]
#[command(name = "snp-host", version)]
struct Cli {
    /// Print one JSON document (schema: tools/snp-host/README.md) instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Readiness checks: PASS/FAIL/SKIP with the reason; exit 0 only when every required check passes.
    Ok,
    /// The module's status: backend and why, RMP geometry, flags, policy, parameters.
    Status,
    /// The module's counters: conversions, direct map, RMP faults, KVM's RMP operations.
    Stats,
    /// RMP entries: PFN (decimal or 0x hex), FIRST-LAST or FIRST+COUNT; none: every page the module tracks.
    Rmp {
        /// PFNs or ranges.
        pfns: Vec<String>,
    },
    /// The direct map: DirectMap4k/2M/1G, the module's regions and counters, a picture.
    Directmap {
        /// Regions of the module to list in the text output (all of them with --json).
        #[arg(long, default_value_t = 16)]
        regions: usize,
    },
}

/// Prints a serialisable value as pretty JSON.
fn print_json<T: Serialize>(v: &T) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Error::msg(format!("JSON: {e}")))?;
    println!("{s}");
    Ok(())
}

fn ok(json: bool) -> Result<ExitCode> {
    let r = checks::report(&checks::Facts::gather()?);
    if json {
        print_json(&r)?;
    } else {
        print!("{}", checks::text(&r));
    }
    Ok(if r.ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn loaded() -> Result<module::Module> {
    module::Module::load()?.ok_or_else(|| {
        Error::msg(format!(
            "snp_host.ko is not loaded (no {}): insmod snp_host.ko",
            source::MODULE_SYSFS
        ))
    })
}

fn status(json: bool) -> Result<ExitCode> {
    let j = loaded()?.json();
    if json {
        print_json(&j)?;
    } else {
        print!("{}", module::status_text(&j));
    }
    Ok(ExitCode::SUCCESS)
}

fn stats(json: bool) -> Result<ExitCode> {
    let dev = device::Device::open()?;
    let s = dev.stats()?;
    let fs = dev.fault_stats()?;
    let ks = dev.kvm_stats()?;
    if json {
        print_json(&json!({
            "version": 1,
            "module": counters::to_json(counters::MODULE, &s),
            "faults": fs.as_ref().map(|f| counters::to_json(counters::FAULTS, f)),
            "kvm": ks.as_ref().map(|k| counters::to_json(counters::KVM, k)),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::from("Conversions and the direct map (SNP_HOST_GET_STATS):\n");
    counters::write_text(&mut out, counters::MODULE, &s);
    out.push_str("\nRMP faults (SNP_HOST_GET_FAULT_STATS):\n");
    match &fs {
        Some(f) => counters::write_text(&mut out, counters::FAULTS, f),
        None => out.push_str("  not available: this module has no fault counters\n"),
    }
    out.push_str("\nThe kernel's RMP operations: KVM, CCP (SNP_HOST_GET_KVM_STATS):\n");
    match &ks {
        Some(k) => counters::write_text(&mut out, counters::KVM, k),
        None => out.push_str("  not available: this module has no KVM counters\n"),
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn rmp_cmd(pfns: &[String], json: bool) -> Result<ExitCode> {
    let (source, entries) = if pfns.is_empty() {
        ("debugfs rmp", rmp::known()?)
    } else {
        let list = rmp::expand(pfns)?;
        let entries = list
            .into_iter()
            .map(rmp::lookup)
            .collect::<Result<Vec<_>>>()?;
        ("debugfs lookup", entries)
    };
    if json {
        print_json(&json!({ "version": 1, "source": source, "entries": entries }))?;
    } else if entries.is_empty() {
        println!(
            "The module holds no guest page: every RMP entry it knows of is the hypervisor's."
        );
    } else {
        print!("{}", rmp::text(&entries));
    }
    Ok(ExitCode::SUCCESS)
}

fn directmap_cmd(max_regions: usize, json: bool) -> Result<ExitCode> {
    let meminfo = source::parse_meminfo(&source::read(source::MEMINFO)?);
    let vmstat = source::parse_vmstat(&source::read(source::VMSTAT)?);
    let sizes: serde_json::Map<String, Value> = ["DirectMap4k", "DirectMap2M", "DirectMap1G"]
        .iter()
        .filter_map(|k| Some((k.to_string(), Value::from(*meminfo.get(*k)?))))
        .collect();
    let splits: serde_json::Map<String, Value> = vmstat
        .iter()
        .filter(|(k, _)| k.starts_with("direct_map_"))
        .map(|(k, v)| (k.clone(), Value::from(*v)))
        .collect();
    // The module's side, when it is loaded.
    let module = module::Module::load()?;
    let stats = match &module {
        Some(_) => Some(device::Device::open()?.stats()?),
        None => None,
    };
    let regions = match &module {
        Some(_) => {
            let path = format!("{}/directmap", rmp::DEBUGFS);
            let text = std::fs::read_to_string(&path).map_err(|e| rmp::debugfs_error(&path, &e))?;
            Some(directmap::parse_regions(&text)?)
        }
        None => None,
    };
    let ptdump = match source::read_opt(directmap::PTDUMP) {
        Ok(Some(t)) => Some(directmap::parse_ptdump(&t)?),
        // Without CONFIG_PTDUMP_DEBUGFS (or debugfs) the regions are drawn alone.
        Ok(None) | Err(_) => None,
    };
    let (map, picture_source, totals) = match ptdump {
        Some((m, t)) => (m, directmap::PTDUMP, Some(t)),
        None => (
            directmap::Map::from_regions(regions.as_deref().unwrap_or(&[])),
            "the module's regions (no page-table dump)",
            None,
        ),
    };
    let dm_counters: Option<Value> = stats.as_ref().map(|s| {
        let all = counters::to_json(counters::MODULE, s);
        let mut m: serde_json::Map<String, Value> = all
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with("dm_") || *k == "tlb_flushes")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(md) = &module {
            m.insert(
                "policy".into(),
                Value::from(module::policy_name(md.status.directmap_policy)),
            );
        }
        Value::Object(m)
    });
    if json {
        let legend: serde_json::Map<String, Value> = directmap::Class::ALL
            .iter()
            .map(|c| (c.letter().to_string(), Value::from(c.what())))
            .collect();
        return print_json(&json!({
            "version": 1,
            "meminfo_kb": sizes,
            "vmstat": splits,
            "module": dm_counters,
            "regions": regions,
            "ptdump_totals": totals,
            "picture": {
                "source": picture_source,
                "cell_bytes": directmap::CELL,
                "cells": map.cells(),
                "cells_per_char": map.cells_per_char(),
                "columns": directmap::COLUMNS,
                "rows": map.rows(),
                "runs": map.runs(),
                "legend": legend,
            },
        }))
        .map(|()| ExitCode::SUCCESS);
    }
    let mut out = String::from("The kernel's direct map (/proc/meminfo):\n");
    for (k, v) in &sizes {
        let kb = v.as_u64().unwrap_or(0);
        out.push_str(&format!("  {k:<12} {kb:>10} kB  {}\n", format::kb(kb)));
    }
    for (k, v) in &splits {
        out.push_str(&format!("  {k:<30} {v}  (/proc/vmstat)\n"));
    }
    match (&module, &stats) {
        (Some(md), Some(s)) => {
            out.push_str(&format!(
                "\nThe module (directmap={}):\n",
                module::policy_name(md.status.directmap_policy)
            ));
            let dm: Vec<_> = counters::MODULE
                .iter()
                .filter(|c| c.name.starts_with("dm_") || c.name == "tlb_flushes")
                .collect();
            for c in dm {
                out.push_str(&format!(
                    "  {:<18} {:>10}  {}\n",
                    c.name,
                    (c.get)(s),
                    c.what
                ));
            }
        }
        _ => out.push_str("\nThe module is not loaded.\n"),
    }
    if let Some(r) = &regions {
        let private: u64 = r.iter().map(|x| x.private).sum();
        out.push_str(&format!(
            "  {} regions of 2M it touched, {} guest pages in them\n",
            r.len(),
            private
        ));
        for x in r.iter().take(max_regions) {
            out.push_str(&format!(
                "    pfn {:#x} ({}) mapped {} with {} guest pages\n",
                x.pfn,
                format::bytes(x.pfn.saturating_mul(4096)),
                x.size,
                x.private
            ));
        }
        if r.len() > max_regions {
            out.push_str(&format!(
                "    ... and {} more (--regions N)\n",
                r.len() - max_regions
            ));
        }
    }
    out.push_str(&format!(
        "\nPhysical memory by mapping size, from {picture_source}:\n"
    ));
    out.push_str(&map.text());
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match &cli.command {
        Command::Ok => ok(cli.json),
        Command::Status => status(cli.json),
        Command::Stats => stats(cli.json),
        Command::Rmp { pfns } => rmp_cmd(pfns, cli.json),
        Command::Directmap { regions } => directmap_cmd(*regions, cli.json),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("snp-host: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn arguments() {
        let c = Cli::try_parse_from(["snp-host", "rmp", "0x10-0x12", "7", "--json"]).unwrap();
        assert!(c.json);
        assert!(matches!(c.command, Command::Rmp { ref pfns } if pfns.len() == 2));
        let c = Cli::try_parse_from(["snp-host", "--json", "ok"]).unwrap();
        assert!(c.json && matches!(c.command, Command::Ok));
        assert!(Cli::try_parse_from(["snp-host"]).is_err());
        assert!(Cli::try_parse_from(["snp-host", "bogus"]).is_err());
        assert!(Cli::try_parse_from(["snp-host", "directmap", "--regions", "x"]).is_err());
    }
}
