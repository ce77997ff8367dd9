//! Shared helpers for the Hisn criterion benchmarks (the benchmarks themselves
//! live in `benches/`).
//!
//! Every group is named `<crate>/<measure>` and holds two functions measured in
//! the same run: `hisn`, the SDK's function, and `baseline`, what it is judged
//! against. The ratio is read from `target/criterion/<group>/{hisn,baseline}`.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::Instant;

/// Function id of the SDK's implementation in every group.
pub const HISN: &str = "hisn";
/// Function id of the baseline in every group.
pub const BASELINE: &str = "baseline";

/// Deterministic filler bytes for benchmark inputs (no RNG, so every run and
/// both functions of a group see the same input).
pub fn filler(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b"hisn-bench-0123456789abcdef"[i % 26])
        .collect()
}

/// The median ratio `hisn / baseline` over 301 rounds, each timing `chunk` calls
/// of `hisn` and then `chunk` calls of `baseline`.
///
/// On a shared machine criterion's sequential runs of `hisn` then `baseline`
/// see different load; alternating short chunks measures the same work side by
/// side, so this ratio is the steadier one. Groups print it beside criterion's.
pub fn interleaved_ratio<H, B>(
    chunk: usize,
    mut hisn: impl FnMut() -> H,
    mut baseline: impl FnMut() -> B,
) -> f64 {
    const ROUNDS: usize = 301;
    let mut ratios = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for _ in 0..chunk {
            black_box(hisn());
        }
        let h = t.elapsed();
        let t = Instant::now();
        for _ in 0..chunk {
            black_box(baseline());
        }
        let b = t.elapsed();
        ratios.push(h.as_secs_f64() / b.as_secs_f64().max(1e-12));
    }
    ratios.sort_by(f64::total_cmp);
    ratios[ROUNDS / 2]
}

#[cfg(test)]
mod tests {
    #[test]
    fn interleaved_ratio_sees_which_side_is_slower() {
        let spin = |n: u64| (0..n).fold(0u64, |a, x| std::hint::black_box(a ^ x));
        let r = super::interleaved_ratio(5, || spin(20_000), || spin(2_000));
        assert!(r > 2.0, "ratio {r}");
        let r = super::interleaved_ratio(5, || spin(2_000), || spin(20_000));
        assert!(r < 0.5, "ratio {r}");
    }

    #[test]
    fn filler_is_deterministic_and_sized() {
        assert_eq!(super::filler(100).len(), 100);
        assert_eq!(super::filler(30), super::filler(30));
        assert_eq!(&super::filler(4), b"hisn");
    }
}
