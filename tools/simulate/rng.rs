// SPDX-License-Identifier: GPL-2.0

//! The seeded generator of `vm/bench.c`: splitmix64, the same sequence in C and here.
//!
//! The churn workload's placement is drawn in the VM and again here from the
//! same seed, so both must produce the very same numbers.

/// A splitmix64 generator.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// Starts the sequence `vm/bench.c` starts with `rng_state = seed`.
    pub(crate) const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Returns the next number, as `rng()` in `vm/bench.c` does.
    pub(crate) fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a number below `n` (`n > 0`), as `below()` in `vm/bench.c` does.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Returns a number in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        // CAST: 53 bits convert to f64 exactly.
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::SplitMix64;

    #[test]
    fn same_sequence_as_the_c_generator() {
        // The first three numbers rng() of vm/bench.c returns after rng_state = 1.
        let mut r = SplitMix64::new(1);
        assert_eq!(r.next(), 0x910a_2dec_8902_5cc1);
        assert_eq!(r.next(), 0xbeeb_8da1_658e_ec67);
        assert_eq!(r.next(), 0xf893_a2ee_fb32_555e);
        let mut r = SplitMix64::new(1);
        assert_eq!(r.below(1000), 0x910a_2dec_8902_5cc1 % 1000);
        for _ in 0..1000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
