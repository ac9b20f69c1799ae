//! Ranking with ties, fast: an LSD radix sort on order-preserving integer keys.

/// Below this many values a comparison sort is faster than the radix sort.
const RADIX_MIN: usize = 2048;

/// Maps a non-NaN `f64` to a `u64` with the same order; -0.0 and 0.0 map to the same key.
#[inline]
pub(crate) fn order_key(x: f64) -> u64 {
    let b = (x + 0.0).to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

/// Sorts `(key, payload)` pairs by key (stable), with 11-bit LSD radix passes, skipping the
/// passes whose digit is the same for every key.
pub(crate) fn radix_sort_pairs(mut v: Vec<(u64, u32)>) -> Vec<(u64, u32)> {
    let n = v.len();
    if n < RADIX_MIN {
        v.sort_by_key(|p| p.0);
        return v;
    }
    const BITS: u32 = 11;
    const PASSES: usize = 6;
    const B: usize = 1 << BITS;
    let mut hist = vec![[0usize; B]; PASSES];
    for &(k, _) in &v {
        for (p, h) in hist.iter_mut().enumerate() {
            h[((k >> (p as u32 * BITS)) as usize) & (B - 1)] += 1;
        }
    }
    let mut buf: Vec<(u64, u32)> = vec![(0, 0); n];
    for (p, h) in hist.iter_mut().enumerate() {
        if h.contains(&n) {
            continue;
        }
        let mut sum = 0;
        for c in h.iter_mut() {
            let t = *c;
            *c = sum;
            sum += t;
        }
        let shift = p as u32 * BITS;
        for &item in &v {
            let d = ((item.0 >> shift) as usize) & (B - 1);
            buf[h[d]] = item;
            h[d] += 1;
        }
        std::mem::swap(&mut v, &mut buf);
    }
    v
}

/// Sorts plain `u64` keys whose set bits all lie below `bits`, by LSD radix.
pub(crate) fn radix_sort_u64(mut v: Vec<u64>, bits: u32) -> Vec<u64> {
    let n = v.len();
    if n < RADIX_MIN {
        v.sort_unstable();
        return v;
    }
    const BITS: u32 = 11;
    const B: usize = 1 << BITS;
    let passes = bits.div_ceil(BITS).max(1) as usize;
    let mut hist = vec![[0usize; B]; passes];
    for &k in &v {
        for (p, h) in hist.iter_mut().enumerate() {
            h[((k >> (p as u32 * BITS)) as usize) & (B - 1)] += 1;
        }
    }
    let mut buf = vec![0u64; n];
    for (p, h) in hist.iter_mut().enumerate() {
        if h.contains(&n) {
            continue;
        }
        let mut sum = 0;
        for c in h.iter_mut() {
            let t = *c;
            *c = sum;
            sum += t;
        }
        let shift = p as u32 * BITS;
        for &k in &v {
            let d = ((k >> shift) as usize) & (B - 1);
            buf[h[d]] = k;
            h[d] += 1;
        }
        std::mem::swap(&mut v, &mut buf);
    }
    v
}

/// The values sorted with their original positions.
pub(crate) fn sorted_with_positions(x: &[f64]) -> Vec<(u64, u32)> {
    radix_sort_pairs(x.iter().enumerate().map(|(i, &v)| (order_key(v), i as u32)).collect())
}

/// Ranks and tie statistics of one variable.
pub(crate) struct Ranked {
    /// Dense ranks, 1-based (equal values share a rank, no gaps).
    pub dense: Vec<u32>,
    /// Sizes of the groups of equal values that have more than one member.
    pub tie_groups: Vec<u64>,
}

/// Dense ranks (1-based) and tie groups.
pub(crate) fn dense_ranks(x: &[f64]) -> Ranked {
    let sorted = sorted_with_positions(x);
    let mut dense = vec![0u32; x.len()];
    let mut tie_groups = Vec::new();
    let mut rank = 0u32;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        rank += 1;
        for &(_, pos) in &sorted[i..j] {
            dense[pos as usize] = rank;
        }
        if j - i > 1 {
            tie_groups.push((j - i) as u64);
        }
        i = j;
    }
    Ranked { dense, tie_groups }
}

/// 1-based ranks with ties given the average of the ranks they span (scipy's `rankdata`
/// with `method="average"`). Inputs must not contain NaN.
///
/// ```
/// assert_eq!(qval_metrics::average_ranks(&[10.0, 20.0, 10.0, 5.0]), vec![2.5, 4.0, 2.5, 1.0]);
/// ```
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let sorted = sorted_with_positions(x);
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        // Ranks i+1 ..= j averaged: (i + 1 + j) / 2, exact in f64.
        let avg = (i + 1 + j) as f64 / 2.0;
        for &(_, pos) in &sorted[i..j] {
            ranks[pos as usize] = avg;
        }
        i = j;
    }
    ranks
}

/// Runs two closures, on two threads when the input is large enough to pay for it.
pub(crate) fn join<A: Send, B: Send>(n: usize, a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    if n < 50_000 {
        return (a(), b());
    }
    std::thread::scope(|s| {
        let hb = s.spawn(b);
        let ra = a();
        (ra, hb.join().expect("ranking thread panicked"))
    })
}

/// Counts strict inversions (i < j with v[i] > v[j]) by merge sort, on two threads for
/// large inputs.
pub(crate) fn count_inversions(v: &mut [u32]) -> u64 {
    let n = v.len();
    if n >= 100_000 {
        let (left, right) = v.split_at_mut(n / 2);
        let (a, b) = std::thread::scope(|s| {
            let h = s.spawn(|| count_inversions_seq(left));
            let b = count_inversions_seq(right);
            (h.join().expect("inversion thread panicked"), b)
        });
        a + b + merge_count(v, n / 2)
    } else {
        count_inversions_seq(v)
    }
}

fn count_inversions_seq(v: &mut [u32]) -> u64 {
    let n = v.len();
    let mut buf = vec![0u32; n];
    let mut inv = 0u64;
    // Insertion sort small runs first.
    const RUN: usize = 32;
    for chunk in v.chunks_mut(RUN) {
        for i in 1..chunk.len() {
            let x = chunk[i];
            let mut j = i;
            while j > 0 && chunk[j - 1] > x {
                chunk[j] = chunk[j - 1];
                j -= 1;
            }
            inv += (i - j) as u64;
            chunk[j] = x;
        }
    }
    let mut width = RUN;
    let mut src_is_v = true;
    while width < n {
        {
            let (src, dst): (&[u32], &mut [u32]) = if src_is_v {
                (&*v, &mut buf[..])
            } else {
                (&buf[..], &mut *v)
            };
            let mut start = 0;
            while start < n {
                let mid = (start + width).min(n);
                let end = (start + 2 * width).min(n);
                inv += merge_into(&src[start..mid], &src[mid..end], &mut dst[start..end]);
                start = end;
            }
        }
        src_is_v = !src_is_v;
        width *= 2;
    }
    if !src_is_v {
        v.copy_from_slice(&buf);
    }
    inv
}

/// Merges two sorted runs into `dst`, counting pairs (a in left, b in right) with a > b.
fn merge_into(left: &[u32], right: &[u32], dst: &mut [u32]) -> u64 {
    let (mut i, mut j, mut k) = (0, 0, 0);
    let mut inv = 0u64;
    while i < left.len() && j < right.len() {
        if right[j] < left[i] {
            dst[k] = right[j];
            inv += (left.len() - i) as u64;
            j += 1;
        } else {
            dst[k] = left[i];
            i += 1;
        }
        k += 1;
    }
    dst[k..k + left.len() - i].copy_from_slice(&left[i..]);
    let k = k + left.len() - i;
    dst[k..].copy_from_slice(&right[j..]);
    inv
}

/// Merges the sorted halves `v[..mid]` and `v[mid..]`, counting cross inversions.
fn merge_count(v: &mut [u32], mid: usize) -> u64 {
    let mut out = vec![0u32; v.len()];
    let inv = merge_into(&v[..mid], &v[mid..], &mut out);
    v.copy_from_slice(&out);
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_sort_agrees_with_a_comparison_sort() {
        let mut state = 12345u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let x: Vec<f64> = (0..20_000)
            .map(|i| {
                if i % 3 == 0 {
                    (next() % 50) as f64 - 25.0
                } else {
                    (next() as f64) * 1e-19 - 0.9e0
                }
            })
            .collect();
        let sorted = sorted_with_positions(&x);
        let mut expected: Vec<f64> = x.clone();
        expected.sort_by(f64::total_cmp);
        assert!(
            sorted
                .iter()
                .map(|&(_, i)| x[i as usize])
                .zip(&expected)
                .all(|(a, b)| a == *b)
        );
        // Stable: equal keys keep their input order.
        assert!(sorted.windows(2).all(|w| w[0].0 < w[1].0 || w[0].1 < w[1].1));
        let keys: Vec<u64> = (0..10_000).map(|_| next() >> 20).collect();
        let mut e = keys.clone();
        e.sort_unstable();
        assert_eq!(radix_sort_u64(keys, 44), e);
    }

    #[test]
    fn inversions_match_a_quadratic_count() {
        let mut state = 7u64;
        for n in [0usize, 1, 5, 33, 100, 1000, 150_000] {
            let v: Vec<u32> = (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 33) % 97) as u32
                })
                .collect();
            let expected: u64 = if n <= 1000 {
                (0..n).map(|i| (i + 1..n).filter(|&j| v[i] > v[j]).count() as u64).sum()
            } else {
                // Count by value buckets: for each element, the number of earlier larger ones.
                let mut seen = [0u64; 97];
                v.iter()
                    .map(|&x| {
                        let c: u64 = seen[x as usize + 1..].iter().sum();
                        seen[x as usize] += 1;
                        c
                    })
                    .sum()
            };
            let mut w = v.clone();
            assert_eq!(count_inversions(&mut w), expected, "n = {n}");
            let mut s = v.clone();
            s.sort_unstable();
            assert_eq!(w, s);
        }
    }

    #[test]
    fn keys_preserve_order() {
        let vals = [
            f64::NEG_INFINITY,
            -1e300,
            -1.0,
            -1e-300,
            -0.0,
            0.0,
            1e-300,
            1.0,
            1e300,
            f64::INFINITY,
        ];
        for w in vals.windows(2) {
            assert!(order_key(w[0]) <= order_key(w[1]));
        }
        assert_eq!(order_key(-0.0), order_key(0.0));
    }
}
