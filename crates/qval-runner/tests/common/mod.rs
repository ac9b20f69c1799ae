//! Helpers shared by qval-runner's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The Python packages the tests need (one file for every crate's tests).
#[path = "../../../../tests/common/python.rs"]
pub mod python;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
