//! Ranking with ties, fast: radix sorts on order-preserving integer keys, in buffers that
//! ask the kernel for transparent huge pages (page faults, not arithmetic, dominate the cost
//! of ranking millions of values on a small VM).

/// Below this many values a comparison sort is faster than the radix sort.
const RADIX_MIN: usize = 2048;

/// Maps a non-NaN `f64` to a `u64` with the same order; -0.0 and 0.0 map to the same key.
#[inline]
pub(crate) fn order_key(x: f64) -> u64 {
    let b = (x + 0.0).to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

/// An empty vector with room for `n` elements, whose memory the kernel is advised to back
/// with transparent huge pages (Linux; a no-op elsewhere).
pub(crate) fn huge_vec<T>(n: usize) -> Vec<T> {
    let v: Vec<T> = Vec::with_capacity(n);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 1 << 21;
        let bytes = n * std::mem::size_of::<T>();
        if bytes >= 4 * HUGE {
            let p = v.as_ptr() as usize;
            let start = (p + HUGE - 1) & !(HUGE - 1);
            let end = (p + bytes) & !(HUGE - 1);
            if end > start {
                // SAFETY: the range lies inside the vector's own allocation; MADV_HUGEPAGE
                // only changes how the kernel backs it, never its contents.
                unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
                }
            }
        }
    }
    v
}

/// LSD radix sort of `u64` values by the bits in `lo..hi`, 11 bits a pass, skipping the
/// passes whose digit is the same for every value.
fn radix_by_bits(mut v: Vec<u64>, lo: u32, hi: u32) -> Vec<u64> {
    const BITS: u32 = 11;
    const B: usize = 1 << BITS;
    let n = v.len();
    let shifts: Vec<u32> = (lo..hi).step_by(BITS as usize).collect();
    let mut hist = vec![[0usize; B]; shifts.len()];
    for &k in &v {
        for (h, &shift) in hist.iter_mut().zip(&shifts) {
            h[((k >> shift) as usize) & (B - 1)] += 1;
        }
    }
    let mut buf: Vec<u64> = huge_vec(n);
    buf.resize(n, 0);
    for (h, &shift) in hist.iter_mut().zip(&shifts) {
        if h.contains(&n) {
            continue;
        }
        let mut sum = 0;
        for c in h.iter_mut() {
            let t = *c;
            *c = sum;
            sum += t;
        }
        for &k in &v {
            let d = ((k >> shift) as usize) & (B - 1);
            buf[h[d]] = k;
            h[d] += 1;
        }
        std::mem::swap(&mut v, &mut buf);
    }
    v
}

/// The positions of a slice in ascending order of value: each item is the value's order key
/// with its low `idx_bits` bits replaced by the position.
pub(crate) struct Sorted {
    pub(crate) items: Vec<u64>,
    idx_bits: u32,
    /// Whether equal prefixes mean equal values (the replaced low key bits were the same in
    /// every value), so runs need no look-up of the full values.
    exact: bool,
}

impl Sorted {
    #[inline]
    pub(crate) fn pos(&self, item: u64) -> usize {
        (item & ((1u64 << self.idx_bits) - 1)) as usize
    }

    #[inline]
    fn prefix(&self, item: u64) -> u64 {
        item >> self.idx_bits
    }

    /// Calls `f(start, end)` for each run of equal values.
    pub(crate) fn for_each_group(&self, x: &[f64], mut f: impl FnMut(&Self, usize, usize)) {
        let v = &self.items;
        let n = v.len();
        let mut i = 0;
        while i < n {
            let mut j = i + 1;
            let p = self.prefix(v[i]);
            if self.exact {
                while j < n && self.prefix(v[j]) == p {
                    j += 1;
                }
            } else if j < n && self.prefix(v[j]) == p {
                // Look the values up only where prefixes tie.
                let key = order_key(x[self.pos(v[i])]);
                while j < n && self.prefix(v[j]) == p && order_key(x[self.pos(v[j])]) == key {
                    j += 1;
                }
            }
            f(self, i, j);
            i = j;
        }
    }
}

/// Sorts the positions of `x` by value: a radix sort on the high key bits (the low bits
/// hold the position), then a comparison sort of the rare runs whose prefixes tie but whose
/// values may differ.
pub(crate) fn sorted_positions(x: &[f64]) -> Sorted {
    let n = x.len();
    assert!(n < 1 << 40, "at most 2^40 values");
    let idx_bits = (64 - (n.max(2) as u64 - 1).leading_zeros()).max(1);
    let low = (1u64 << idx_bits) - 1;
    let first_low = x.first().map(|v| order_key(*v) & low).unwrap_or(0);
    let mut varies = 0u64;
    let mut items: Vec<u64> = huge_vec(n);
    items.extend(x.iter().enumerate().map(|(i, &val)| {
        let k = order_key(val);
        varies |= (k & low) ^ first_low;
        (k & !low) | i as u64
    }));
    let mut sorted = Sorted {
        items,
        idx_bits,
        exact: varies == 0,
    };
    if n < RADIX_MIN {
        sorted
            .items
            .sort_unstable_by_key(|&p| (order_key(x[(p & low) as usize]), p & low));
        sorted.exact = false;
        return sorted;
    }
    sorted.items = radix_by_bits(std::mem::take(&mut sorted.items), idx_bits, 64);
    if !sorted.exact {
        let v = &mut sorted.items;
        let mut i = 0;
        while i < n {
            let p = v[i] >> idx_bits;
            let mut j = i + 1;
            while j < n && v[j] >> idx_bits == p {
                j += 1;
            }
            if j - i > 1 {
                v[i..j].sort_unstable_by_key(|&q| order_key(x[(q & low) as usize]));
            }
            i = j;
        }
    }
    sorted
}

/// Twice the average ranks (integers: rank i+1..=j averaged is (i + 1 + j) / 2).
pub(crate) fn doubled_average_ranks(x: &[f64]) -> Vec<u32> {
    assert!(x.len() < (u32::MAX / 2) as usize, "doubled ranks fit in u32");
    let sorted = sorted_positions(x);
    let mut out: Vec<u32> = huge_vec(x.len());
    out.resize(x.len(), 0);
    sorted.for_each_group(x, |s, i, j| {
        let r2 = (i + 1 + j) as u32;
        for &p in &s.items[i..j] {
            out[s.pos(p)] = r2;
        }
    });
    out
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
    let sorted = sorted_positions(x);
    let mut dense: Vec<u32> = huge_vec(x.len());
    dense.resize(x.len(), 0);
    let mut tie_groups = Vec::new();
    let mut rank = 0u32;
    sorted.for_each_group(x, |s, i, j| {
        rank += 1;
        for &p in &s.items[i..j] {
            dense[s.pos(p)] = rank;
        }
        if j - i > 1 {
            tie_groups.push((j - i) as u64);
        }
    });
    Ranked { dense, tie_groups }
}

/// 1-based ranks with ties given the average of the ranks they span (scipy's `rankdata`
/// with `method="average"`). Inputs must not contain NaN.
///
/// ```
/// assert_eq!(qval_metrics::average_ranks(&[10.0, 20.0, 10.0, 5.0]), vec![2.5, 4.0, 2.5, 1.0]);
/// ```
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    doubled_average_ranks(x).into_iter().map(|r| r as f64 / 2.0).collect()
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

/// Counts strict inversions (i < j with v[i] > v[j]). Values below 2^16 are counted with
/// Fenwick trees (cache-resident), larger ones by merge sort; on two threads for large
/// inputs. `v` may be reordered.
pub(crate) fn count_inversions(v: &mut [u32]) -> u64 {
    let n = v.len();
    let max = v.iter().copied().max().unwrap_or(0) as usize;
    if max < 1 << 16 {
        return count_inversions_small(v, max);
    }
    if n >= 100_000 {
        let (left, right) = v.split_at_mut(n / 2);
        let (a, b) = std::thread::scope(|s| {
            let h = s.spawn(|| count_inversions_seq(left));
            let b = count_inversions_seq(right);
            (h.join().expect("inversion thread panicked"), b)
        });
        let mut out: Vec<u32> = huge_vec(n);
        out.resize(n, 0);
        let cross = merge_into(&v[..n / 2], &v[n / 2..], &mut out);
        v.copy_from_slice(&out);
        a + b + cross
    } else {
        count_inversions_seq(v)
    }
}

/// Inversions of values in `0..=max` with a Fenwick tree over the values: each half on its
/// own thread, and the pairs across the halves from the left half's histogram.
fn count_inversions_small(v: &[u32], max: usize) -> u64 {
    let fenwick = |part: &[u32]| -> (u64, Vec<u64>) {
        let size = max + 2;
        let mut tree = vec![0u32; size];
        let mut inv = 0u64;
        for (seen, &x) in part.iter().enumerate() {
            // Elements so far that are <= x.
            let mut i = x as usize + 1;
            let mut le = 0u64;
            while i > 0 {
                le += tree[i] as u64;
                i &= i - 1;
            }
            inv += seen as u64 - le;
            let mut i = x as usize + 1;
            while i < size {
                tree[i] += 1;
                i += i & i.wrapping_neg();
            }
        }
        let mut hist = vec![0u64; max + 1];
        for &x in part {
            hist[x as usize] += 1;
        }
        (inv, hist)
    };
    let n = v.len();
    let (left, right) = v.split_at(n / 2);
    let ((a, hist_left), (b, _)) = join(n * 2, || fenwick(left), || fenwick(right));
    // Pairs (l in left, r in right) with l > r: for each r, the left elements above it.
    let mut greater = vec![0u64; max + 2];
    for value in (0..=max).rev() {
        greater[value] = greater[value + 1] + hist_left[value];
    }
    let cross: u64 = right.iter().map(|&r| greater[r as usize + 1]).sum();
    a + b + cross
}

fn count_inversions_seq(v: &mut [u32]) -> u64 {
    let n = v.len();
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
    if n <= RUN {
        return inv;
    }
    let mut buf: Vec<u32> = huge_vec(n);
    buf.resize(n, 0);
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
        // Branch-free: the comparison is unpredictable on real data.
        let (l, r) = (left[i], right[j]);
        let take_right = r < l;
        dst[k] = if take_right { r } else { l };
        inv += (take_right as u64) * (left.len() - i) as u64;
        j += take_right as usize;
        i += (!take_right) as usize;
        k += 1;
    }
    dst[k..k + left.len() - i].copy_from_slice(&left[i..]);
    let k = k + left.len() - i;
    dst[k..].copy_from_slice(&right[j..]);
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn ranks_agree_with_a_comparison_sort() {
        let mut next = xorshift(12345);
        for n in [0usize, 1, 7, 3000, 60_000] {
            // Mixed: heavy ties, tiny differences in low bits, signed zeros, wide range.
            let x: Vec<f64> = (0..n)
                .map(|i| match i % 4 {
                    0 => (next() % 50) as f64 - 25.0,
                    1 => 1.0 + (next() % 1000) as f64 * f64::EPSILON,
                    2 => {
                        if next().is_multiple_of(2) {
                            0.0
                        } else {
                            -0.0
                        }
                    }
                    _ => (next() as f64) * 1e-10 - 1e9,
                })
                .collect();
            let ranks = average_ranks(&x);
            // Brute force: rank = (number below) + (number equal + 1) / 2.
            if n <= 3000 {
                for i in 0..n {
                    let below = x.iter().filter(|v| **v < x[i]).count() as f64;
                    let equal = x.iter().filter(|v| **v == x[i]).count() as f64;
                    assert_eq!(ranks[i], below + (equal + 1.0) / 2.0, "n {n} i {i}");
                }
            }
            let mut sorted = x.clone();
            sorted.sort_by(f64::total_cmp);
            let sp = sorted_positions(&x);
            let got: Vec<f64> = sp.items.iter().map(|&p| x[sp.pos(p)]).collect();
            assert!(got.iter().zip(&sorted).all(|(a, b)| a == b), "n {n}");
            let d = dense_ranks(&x);
            let distinct = {
                let mut s = sorted.clone();
                s.dedup_by(|a, b| a == b);
                s.len()
            };
            assert_eq!(d.dense.iter().copied().max().unwrap_or(0) as usize, distinct);
        }
    }

    #[test]
    fn inversions_match_a_direct_count() {
        let mut next = xorshift(7);
        for n in [0usize, 1, 5, 33, 100, 1000, 150_000] {
            let v: Vec<u32> = (0..n).map(|_| (next() % 97) as u32).collect();
            let mut seen = [0u64; 97];
            let expected: u64 = v
                .iter()
                .map(|&x| {
                    let c: u64 = seen[x as usize + 1..].iter().sum();
                    seen[x as usize] += 1;
                    c
                })
                .sum();
            let mut w = v.clone();
            assert_eq!(count_inversions(&mut w), expected, "n = {n}");
            // The merge-sort path (values of 2^16 and more), which also sorts.
            let mut big: Vec<u32> = v.iter().map(|x| x + 70_000).collect();
            assert_eq!(count_inversions(&mut big), expected, "n = {n}, large values");
            let mut s: Vec<u32> = v.iter().map(|x| x + 70_000).collect();
            s.sort_unstable();
            assert_eq!(big, s);
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
