// SPDX-License-Identifier: GPL-2.0

//! The module's counters in words and units: one table per stats struct.
//!
//! Each row names an ABI field (the compiler checks the accessor), its unit
//! and what it counts. A test checks that every table covers every field
//! of its struct but `reserved`, so a counter added to the header cannot be
//! missed here.

use crate::abi::{FaultStats, KvmStats, Stats};
use crate::format;
use serde_json::{Map, Value};

/// What one counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    /// 4 KiB pages (a 2M page counts 512).
    Pages4K,
    /// 2 MiB pages.
    Pages2M,
    /// Events, named by the word (`operations`, `faults`, ...).
    Events(&'static str),
}

/// One counter of a stats struct.
pub(crate) struct Counter<T> {
    /// The field name in the header, also the JSON key.
    pub(crate) name: &'static str,
    /// Its unit.
    pub(crate) unit: Unit,
    /// What it counts, in words.
    pub(crate) what: &'static str,
    /// Reads it.
    pub(crate) get: fn(&T) -> u64,
}

macro_rules! table {
    ($name:ident: $ty:ty { $($field:ident: $unit:expr, $what:literal;)+ }) => {
        /// The counters of this struct, in the header's order.
        pub(crate) const $name: &[Counter<$ty>] = &[
            $(Counter { name: stringify!($field), unit: $unit, what: $what, get: |s| s.$field },)+
        ];
    };
}

use Unit::*;

table!(MODULE: Stats {
    private_4k: Pages4K, "guest pages assigned at 4K now";
    private_2m: Pages2M, "guest pages assigned at 2M now";
    make_private: Events("pages"), "pages made private (4K or 2M), ever";
    make_shared: Events("pages"), "pages returned to the host, ever";
    psmash: Events("2M pages"), "2M pages split into 512 4K entries (PSMASH)";
    transient_retries: Events("retries"), "RMP busy (OVERLAP/INUSE), retried";
    failures: Events("operations"), "RMP operations that failed for good";
    leaked_pages: Pages4K, "pages kept off the allocator: RMP state unknown";
    dm_splits_2m: Events("2M leaves"), "direct-map 2M leaves split to 4K";
    dm_splits_1g: Events("1G leaves"), "direct-map 1G leaves split";
    dm_merges_2m: Events("2M leaves"), "direct-map 2M leaves merged back";
    dm_merges_1g: Events("1G leaves"), "direct-map 1G leaves merged back";
    dm_unmapped_pages: Pages4K, "pages out of the direct map's write path now";
    tlb_flushes: Events("flushes"), "kernel TLB flushes issued for the direct map";
    dm_cpa_calls: Events("calls"), "direct-map changes asked of the kernel (CPA calls)";
    dm_walks: Events("walks"), "direct-map page-table walks made";
});

table!(FAULTS: FaultStats {
    user_faults: Events("faults"), "RMP faults on user addresses decided";
    thp_splits: Events("splits"), "huge user mappings split to resolve one";
    sigbus: Events("signals"), "SIGBUS sent (guest page, unsplittable, no progress)";
    no_progress: Events("signals"), "of those, for a fault that repeated without progress";
    uaccess_refused: Events("accesses"), "kernel accesses through a user address refused (EFAULT)";
    gup_refused: Events("requests"), "GUP write faults and mprotect() upgrades refused";
    kernel_faults: Events("faults"), "kernel-mode RMP violations reported";
});

table!(KVM: KvmStats {
    make_private: Pages4K, "pages made private for KVM and the kernel";
    make_shared: Pages4K, "pages returned to the host for them";
    psmash: Events("2M entries"), "2M entries split for them (PSMASH)";
    lookups: Events("lookups"), "RMP lookups answered";
    leaked_pages: Pages4K, "pages leaked on this path";
    private_4k_now: Pages4K, "pages private through this path now";
    failures: Events("operations"), "operations that returned an error";
});

/// The counters as a JSON object, in the header's order.
pub(crate) fn to_json<T>(table: &[Counter<T>], s: &T) -> Value {
    let map: Map<String, Value> = table
        .iter()
        .map(|c| (c.name.to_string(), Value::from((c.get)(s))))
        .collect();
    Value::Object(map)
}

/// Writes one line per counter: name, value with its unit, what it counts.
pub(crate) fn write_text<T>(out: &mut String, table: &[Counter<T>], s: &T) {
    for c in table {
        let v = (c.get)(s);
        let amount = match c.unit {
            Pages4K => format!("{v} x 4K ({})", format::bytes(v.saturating_mul(4096))),
            Pages2M => format!("{v} x 2M ({})", format::bytes(v.saturating_mul(2 << 20))),
            Events(word) => format!("{v} {word}"),
        };
        out.push_str(&format!("  {:<18} {:<24} {}\n", c.name, amount, c.what));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{size_of, size_of_val};

    /// Every field but `reserved` is in the table, once.
    fn covers<T: Default>(table: &[Counter<T>], reserved: usize) {
        assert_eq!(table.len() * 8 + reserved, size_of::<T>());
        let mut names: Vec<_> = table.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), table.len());
    }

    #[test]
    fn tables_cover_the_structs() {
        covers(MODULE, 0);
        covers(FAULTS, size_of_val(&FaultStats::default().reserved));
        covers(KVM, size_of_val(&KvmStats::default().reserved));
    }

    #[test]
    fn text_and_json() {
        let s = Stats {
            private_4k: 3,
            private_2m: 1,
            tlb_flushes: 9,
            ..Stats::default()
        };
        let j = to_json(MODULE, &s);
        assert_eq!(j["private_4k"], 3);
        assert_eq!(j["tlb_flushes"], 9);
        let keys: Vec<_> = j.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys[0], "private_4k");
        assert_eq!(keys[13], "tlb_flushes");
        let mut t = String::new();
        write_text(&mut t, MODULE, &s);
        assert!(t.contains("private_4k         3 x 4K (12 KiB)"), "{t}");
        assert!(t.contains("private_2m         1 x 2M (2 MiB)"), "{t}");
        assert!(t.contains("tlb_flushes        9 flushes"), "{t}");
        assert_eq!(t.lines().count(), 16);
    }
}
