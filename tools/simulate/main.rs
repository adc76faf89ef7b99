// SPDX-License-Identifier: GPL-2.0

//! `make simulate`: the kernel direct map of a large SEV-SNP host over many
//! guest lifetimes, per direct-map policy, driven by the module's own planning
//! code (`directmap/model`).
//!
//! ```text
//! snp-host-simulate [host] [--seed N] [--gib N] [--lifetimes N] [--every N] [--svg FILE]
//! snp-host-simulate replay LOG...
//! ```
//!
//! `host` (the default) simulates a host of `--gib` GiB (1024) over
//! `--lifetimes` guest lifetimes (1000) under `split`, `perpage` and
//! `coalesce` (`host.rs` says how guests come, go and convert) and prints,
//! every `--every` lifetimes (100), DirectMap4k/2M/1G, the splits, merges
//! and TLB flushes so far; `--svg` writes DirectMap4k against time. `replay`
//! replays churn runs of `make bench` (`build/bench/churn-*.log`) and says
//! whether the simulation counts the splits and merges the VM counted.

mod buddy;
mod churn;
mod host;
mod kernel;
mod module;
mod replay;
mod rng;
mod svg;

use snp_host_model::directmap::model::Policy;
use std::process::ExitCode;

const POLICIES: [(Policy, &str, &str); 3] = [
    (Policy::Split, "split", "#d62728"),
    (Policy::PerPage, "perpage", "#ff7f0e"),
    (Policy::Coalesce, "coalesce", "#1f77b4"),
];

const KB_PER_GIB: f64 = (1u64 << 20) as f64;

fn gib(kb: u64) -> f64 {
    kb as f64 / KB_PER_GIB
}

fn usage() -> ExitCode {
    eprintln!("usage: snp-host-simulate [host] [--seed N] [--gib N] [--lifetimes N] [--every N] [--svg FILE]");
    eprintln!("       snp-host-simulate replay LOG...");
    ExitCode::from(2)
}

/// The options of `host`.
struct HostArgs {
    params: host::Params,
    every: u64,
    svg: Option<String>,
}

fn parse_host(args: &[String]) -> Option<HostArgs> {
    let mut a = HostArgs {
        params: host::Params::tib(1),
        every: 100,
        svg: None,
    };
    let mut it = args.iter();
    while let Some(opt) = it.next() {
        let val = it.next()?;
        let n = || val.parse::<u64>().ok();
        match opt.as_str() {
            "--seed" => a.params.seed = n()?,
            // Beyond 4 TiB the model's bitmaps alone take gigabytes.
            "--gib" => a.params.gib = n().filter(|&g| (2..=4096).contains(&g))?,
            "--lifetimes" => a.params.lifetimes = n().filter(|&l| l > 0)?,
            "--every" => a.every = n().filter(|&e| e > 0)?,
            "--svg" => a.svg = Some(val.clone()),
            _ => return None,
        }
    }
    // The smallest guest must fit next to the host's own GiB and its 1% spare.
    (a.params.gib > a.params.guest_gib.0 + 1).then_some(a)
}

fn print_policy(o: &host::Outcome, every: u64) {
    let name = POLICIES
        .iter()
        .find(|p| p.0 == o.policy)
        .map_or("?", |p| p.1);
    println!("== directmap={name} ==");
    println!(
        "  {:>9} {:>6} {:>9} | {:>11} {:>8} {:>8} | {:>9} {:>6} | {:>9} {:>6} | {:>12} | {:>8}",
        "lifetimes",
        "guests",
        "private",
        "DirectMap4k",
        "2M",
        "1G",
        "splits 2M",
        "1G",
        "merges 2M",
        "1G",
        "TLB flushes",
        "regions"
    );
    println!(
        "  {:>9} {:>6} {:>9} | {:>29} | {:>16} | {:>16} | {:>12} | {:>8}",
        "ended", "now", "GiB", "GiB", "so far", "so far", "so far", "listed"
    );
    let row = |label: &str, s: &host::Sample| {
        let c = s.counters;
        println!(
            "  {:>9} {:>6} {:>9.1} | {:>11.2} {:>8.2} {:>8} | {:>9} {:>6} | {:>9} {:>6} | {:>12} | {:>8}",
            label,
            s.running,
            s.private as f64 / 262_144.0,
            gib(s.meminfo.kb_4k),
            gib(s.meminfo.kb_2m),
            s.meminfo.kb_1g >> 20,
            c.splits_2m,
            c.splits_1g,
            c.merges_2m,
            c.merges_1g,
            c.tlb_flushes,
            s.listed
        );
    };
    for s in o.samples.iter().filter(|s| s.ended % every == 0) {
        row(&s.ended.to_string(), s);
    }
    row("all left", &o.drained);
}

fn run_host(args: &[String]) -> ExitCode {
    let Some(a) = parse_host(args) else {
        return usage();
    };
    let p = a.params;
    let t0 = std::time::Instant::now();
    // A thread that panicked (a bug of the simulation) gives None.
    let outcomes: Vec<Option<Result<host::Outcome, module::Refused>>> = std::thread::scope(|s| {
        let handles: Vec<_> = POLICIES
            .iter()
            .map(|&(policy, _, _)| s.spawn(move || host::run(&p, policy)))
            .collect();
        handles.into_iter().map(|h| h.join().ok()).collect()
    });
    let mut ok = Vec::new();
    for (o, (_, name, _)) in outcomes.into_iter().zip(POLICIES) {
        match o {
            Some(Ok(o)) => ok.push(o),
            Some(Err(e)) => {
                eprintln!("directmap={name}: the simulated module refused a conversion: {e:?}");
                return ExitCode::FAILURE;
            }
            None => {
                eprintln!("directmap={name}: the simulation panicked");
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "snp_host simulation (make simulate): a {} GiB host, {} guest lifetimes, guests of {}-{} GiB (powers of 2), seed {}",
        p.gib, p.lifetimes, p.guest_gib.0, p.guest_gib.1, p.seed
    );
    println!(
        "  guests arrive while they fit, a random one leaves when the next does not; memory from a buddy allocator"
    );
    println!(
        "  (2M blocks, 4K where none is free; 0.2% more as host pages); private memory: 4K runs in {:.0}% of a guest's",
        p.runs_part * 100.0
    );
    println!(
        "  2M blocks on arrival (lazy acceptance), later {:.0}% of the untouched blocks as 2M pages; all back when it leaves.",
        p.huge_part * 100.0
    );
    println!("  Counts are the module's (its directmap/model planning code, on a model of the kernel's CPA).");
    for o in &ok {
        println!();
        print_policy(o, a.every);
    }
    println!();
    println!("== after {} lifetimes ==", p.lifetimes);
    let start = ok[0].start;
    for o in &ok {
        let name = POLICIES
            .iter()
            .find(|x| x.0 == o.policy)
            .map_or("?", |x| x.1);
        let end = o.samples.last().map_or(start, |s| s.meminfo);
        let back = o.drained.meminfo == start;
        println!(
            "  {:<9} DirectMap4k {:>8.2} GiB at the end ({:.2} GiB at the start), {:>8.2} GiB after the last guests left; {}",
            name,
            gib(end.kb_4k),
            gib(start.kb_4k),
            gib(o.drained.meminfo.kb_4k),
            if back { "back to the start" } else { "not back to the start" }
        );
    }
    let coalesce_back = ok
        .iter()
        .any(|o| o.policy == Policy::Coalesce && o.drained.meminfo == start);
    println!(
        "  [{}] coalesce: the direct map is back to its starting sizes once the guests have left",
        if coalesce_back { "MET" } else { "NOT MET" }
    );
    println!("  simulated in {:.1} s", t0.elapsed().as_secs_f64());
    if let Some(path) = &a.svg {
        let series: Vec<svg::Series> = ok
            .iter()
            .map(|o| {
                let &(_, name, colour) = POLICIES
                    .iter()
                    .find(|x| x.0 == o.policy)
                    .unwrap_or(&POLICIES[0]);
                svg::Series {
                    name: format!("directmap={name}"),
                    colour,
                    points: o
                        .samples
                        .iter()
                        .map(|s| (s.ended as f64, gib(s.meminfo.kb_4k)))
                        .collect(),
                }
            })
            .collect();
        let title = format!(
            "snp_host simulation: DirectMap4k of a {} GiB SNP host over {} guest lifetimes",
            p.gib, p.lifetimes
        );
        let doc = svg::chart(
            &title,
            "guest lifetimes ended",
            "DirectMap4k (GiB)",
            &series,
        );
        if let Err(e) = std::fs::write(path, doc) {
            eprintln!("cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
        println!("  picture: {path}");
    }
    if coalesce_back {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_replay(paths: &[String]) -> ExitCode {
    if paths.is_empty() {
        return usage();
    }
    let mut all_agree = true;
    for path in paths {
        let log = match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| replay::Log::parse(&t))
        {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match replay::replay(&log) {
            Ok(lts) => {
                print!("{}", replay::report(&log, &lts));
                let agree = lts.iter().filter(|l| l.counts_agree()).count();
                let same = lts.len() as u64 == log.lifetimes && agree == lts.len() && agree > 0;
                all_agree &= same;
                println!(
                    "agreement directmap={}: the simulation replaying the VM's placement counts the same splits and merges \
                     (vmstat and the module) in {agree} of {} lifetimes{}",
                    log.policy,
                    log.lifetimes,
                    if same { "" } else { ": they DIFFER" }
                );
            }
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if all_agree {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("replay") => run_replay(&args[1..]),
        Some("host") => run_host(&args[1..]),
        Some(a) if a.starts_with("--") => run_host(&args),
        None => run_host(&[]),
        Some(_) => usage(),
    }
}
