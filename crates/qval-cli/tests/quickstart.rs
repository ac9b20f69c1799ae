//! The quickstart as a new user first sees it: a graded series of offline signals whose
//! paired comparisons tell them apart, and a note where the published sign-agreement column
//! would mislead.

mod common;

use std::path::Path;

fn rho(table: &str, method: &str) -> f64 {
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("| {method} |")))
        .unwrap_or_else(|| panic!("no row for {method}:\n{table}"));
    row.split('|')
        .nth(3)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn the_quickstart_table_shows_a_graded_series_and_explains_sign_agreement() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let out = common::qval()
        .current_dir(&root)
        .args([
            "run",
            "experiments/quickstart.toml",
            "--out",
            dir.path().join("run").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (exact, manhattan, random) = (
        rho(&table, "distance-q"),
        rho(&table, "manhattan-q"),
        rho(&table, "random-q"),
    );
    assert!(
        exact > manhattan && manhattan < 1.0 && manhattan > 0.5 && random.abs() < 0.2,
        "{table}"
    );
    // The paired comparison separates the two heuristics.
    let pair = table
        .lines()
        .find(|l| l.starts_with("- `distance-q` - `manhattan-q`:"))
        .unwrap_or_else(|| panic!("no paired comparison:\n{table}"));
    assert!(pair.contains('['), "{pair}");
    // Where sign agreement reads 0.000 beside a rho near 1, a note says why.
    let note = table
        .lines()
        .find(|l| l.starts_with("- sign agr."))
        .unwrap_or_else(|| panic!("no note on sign agreement:\n{table}"));
    assert!(note.contains("`distance-q`") && note.contains("not ranks"), "{note}");
}
