//! The quickstart as a new user first sees it: a graded series of offline signals whose
//! paired comparisons tell them apart, and a note where the published sign-agreement column
//! would mislead.

mod common;

use common::{qval_run, repo, succeeded};

/// A method's rho in the printed table.
fn table_rho(table: &str, method: &str) -> f64 {
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
    let dir = tempfile::tempdir().unwrap();
    let table = succeeded(qval_run("experiments/quickstart.toml", dir.path().join("run")).current_dir(repo()));
    let (exact, manhattan, random) = (
        table_rho(&table, "distance-q"),
        table_rho(&table, "manhattan-q"),
        table_rho(&table, "random-q"),
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
