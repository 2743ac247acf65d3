//! Percentiles for the benchmarks' reports. Shared with
//! `#[path = "support/stats.rs"] mod stats;`.

/// The `p`th percentile (0–100) of `v`, which it sorts.
pub(crate) fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p / 100.0) as usize]
}
