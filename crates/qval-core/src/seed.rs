//! Seed derivation: every random choice in qval descends from one root seed.
//!
//! A child seed is a pure function of the root seed and a path of integers (trajectory index,
//! rollout number, ...), so results never depend on scheduling or thread count.

use rand::SeedableRng;

/// The random generator used throughout qval: ChaCha8, portable and reproducible across
/// platforms and versions of this crate.
pub type QRng = rand_chacha::ChaCha8Rng;

/// SplitMix64's finaliser: a bijective mixer with good avalanche.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Derives a child seed from `root` and a path of integers.
///
/// ```
/// use qval_core::seed::derive_seed;
/// assert_eq!(derive_seed(42, &[1, 2]), derive_seed(42, &[1, 2]));
/// assert_ne!(derive_seed(42, &[1, 2]), derive_seed(42, &[2, 1]));
/// ```
pub fn derive_seed(root: u64, path: &[u64]) -> u64 {
    let mut h = mix(root);
    for &p in path {
        h = mix(h ^ mix(p.wrapping_add(0x632B_E59B_D9B4_E019)));
    }
    h
}

/// A 64-bit FNV-1a hash of a string: stable across runs, platforms and Rust versions
/// (unlike `std`'s hasher), used to seed per-point work by point id.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// A generator seeded with [`derive_seed`]`(root, path)`.
pub fn rng_for(root: u64, path: &[u64]) -> QRng {
    QRng::seed_from_u64(derive_seed(root, path))
}
