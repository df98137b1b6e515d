//! Small statistics shared by status pages and benchmarks.

/// The `q` quantile (0 to 1) of `sorted` values: the value at index
/// `round((n - 1) × q)`. `None` when there are no values.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let index = (last as f64 * q.clamp(0.0, 1.0)).round() as usize;
    sorted.get(index.min(last)).copied()
}

/// Sorts `values` and returns their `q` quantile.
pub fn percentile_of(values: &mut [f64], q: f64) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    percentile(values, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_hundred_and_one_values() {
        let values: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), Some(50.0));
        assert_eq!(percentile(&values, 0.99), Some(99.0));
        assert_eq!(percentile(&values, 1.0), Some(100.0));
        assert_eq!(percentile(&values, 0.0), Some(0.0));
    }

    #[test]
    fn no_values_have_no_percentile_and_one_value_is_every_percentile() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile_of(&mut [3.0, 1.0, 2.0], 0.5), Some(2.0));
    }
}
