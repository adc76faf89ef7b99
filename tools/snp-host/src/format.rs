// SPDX-License-Identifier: GPL-2.0

//! Numbers as a person reads them.

/// Formats a byte count with a binary unit: `12 KiB`, `1.5 GiB`, `0 B`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit = 0;
    while unit + 1 < UNITS.len() && n >> (10 * (unit + 1)) != 0 {
        unit += 1;
    }
    let whole = n >> (10 * unit);
    let rest = n - (whole << (10 * unit));
    if rest == 0 {
        format!("{whole} {}", UNITS[unit])
    } else {
        // One decimal is enough to tell sizes apart; precision loss is intended.
        #[expect(clippy::cast_precision_loss, reason = "a rounded size for display")]
        let v = n as f64 / (1u64 << (10 * unit)) as f64;
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Formats a kB count of `/proc/meminfo` as bytes.
pub(crate) fn kb(n: u64) -> String {
    bytes(n.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(3 << 29), "1.5 GiB");
        assert_eq!(bytes(2 << 20), "2 MiB");
        assert_eq!(bytes(u64::MAX), "16384.0 PiB");
        assert_eq!(kb(14336), "14 MiB");
    }
}
