//! Shared helpers for the Hisn criterion benchmarks (the benchmarks themselves
//! live in `benches/`).
//!
//! Every group is named `<crate>/<measure>` and holds two functions measured in
//! the same run: `hisn`, the SDK's function, and `baseline`, what it is judged
//! against. The ratio is read from `target/criterion/<group>/{hisn,baseline}`.
#![forbid(unsafe_code)]

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

#[cfg(test)]
mod tests {
    #[test]
    fn filler_is_deterministic_and_sized() {
        assert_eq!(super::filler(100).len(), 100);
        assert_eq!(super::filler(30), super::filler(30));
        assert_eq!(&super::filler(4), b"hisn");
    }
}
