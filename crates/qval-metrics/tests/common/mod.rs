//! Helpers shared by qval-metrics' integration tests: the committed fixtures, the Python
//! packages a test needs, and the deterministic inputs of `scripts/gen_inputs.py`, built bit
//! for bit the same.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The Python packages the tests need (one file for every crate's tests).
#[path = "../../../../tests/common/python.rs"]
pub mod python;

/// The committed fixture `name` (a file or folder under `tests/fixtures`).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

const SCALE: f64 = 1.0 / 9_007_199_254_740_992.0; // 2^-53

pub fn uniforms(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 * SCALE
        })
        .collect()
}

pub fn make(kind: &str, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let u1 = uniforms(seed * 8 + 1, n);
    let u2 = uniforms(seed * 8 + 2, n);
    let zip = |f: &dyn Fn(f64, f64) -> f64| u1.iter().zip(&u2).map(|(a, b)| f(*a, *b)).collect::<Vec<f64>>();
    match kind {
        "cont" => (u1.clone(), zip(&|a, b| a * 0.8 + b)),
        "cont_weak" => (u1.clone(), zip(&|a, b| a * 0.05 + b)),
        "cont_neg" => (u1.clone(), zip(&|a, b| b - a * 0.5)),
        "ties" => (
            u1.iter().map(|a| (a * 5.0).floor()).collect(),
            zip(&|a, b| ((a + b) * 3.0).floor()),
        ),
        "ties_x" => (u1.iter().map(|a| (a * 50.0).floor()).collect(), zip(&|a, b| a + b)),
        "nan" => {
            let u3 = uniforms(seed * 8 + 3, n);
            let u4 = uniforms(seed * 8 + 4, n);
            let x = u1
                .iter()
                .zip(&u3)
                .map(|(a, c)| if *c >= 0.2 { *a } else { f64::NAN })
                .collect();
            let y = u1
                .iter()
                .zip(&u2)
                .zip(&u4)
                .map(|((a, b), d)| if *d >= 0.1 { a * 0.3 + b } else { f64::NAN })
                .collect();
            (x, y)
        }
        "const" => (vec![1.5; n], u2.clone()),
        "perfect" => (u1.clone(), u1.iter().map(|a| a * 2.0 + 1.0).collect()),
        "binary" => (
            u1.iter().map(|a| (a * 2.0).floor()).collect(),
            zip(&|a, b| ((a + b) * 1.5).floor()),
        ),
        other => panic!("unknown kind {other}"),
    }
}
