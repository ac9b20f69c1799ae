//! Ranking with ties.

/// 1-based ranks with ties given the average of the ranks they span (scipy's `rankdata`
/// with `method="average"`). Inputs must not contain NaN.
///
/// ```
/// assert_eq!(qval_metrics::average_ranks(&[10.0, 20.0, 10.0, 5.0]), vec![2.5, 4.0, 2.5, 1.0]);
/// ```
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_unstable_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; n];
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        // -0.0 and 0.0 are equal values: compare with ==, not total order.
        while j < n && x[idx[j]] == x[idx[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j averaged; exact in f64 for any realistic n.
        let avg = (i + 1 + j) as f64 / 2.0;
        for &k in &idx[i..j] {
            ranks[k] = avg;
        }
        i = j;
    }
    ranks
}
