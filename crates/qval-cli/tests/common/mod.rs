//! Helpers shared by the `qval` command's integration tests.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The `qval` binary, with backtraces on (a user error must still be one line).
pub fn qval() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_qval"));
    c.env("RUST_BACKTRACE", "1");
    c
}

/// Writes `text` to `dir/bad.toml`, runs `qval run` on it and asserts that it is refused
/// with exit code 2 and one line, before any work (no run folder); returns the line and how
/// long the refusal took.
pub fn refused(dir: &Path, text: &str) -> (String, Duration) {
    let path = dir.join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let run = dir.join("never");
    let started = Instant::now();
    let out = qval()
        .args(["run", path.to_str().unwrap(), "--out", run.to_str().unwrap()])
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(out.status.code(), Some(2), "{text}\n{err}");
    assert!(!run.exists(), "work started before the file was checked:\n{text}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    (err, took)
}
