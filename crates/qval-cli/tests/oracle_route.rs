//! The README's offline route (issue 24): `qval serve-oracle`, then `qval run
//! experiments/qval-v1/frozenlake-text.toml --base-url URL --model oracle` from the repository
//! root. The oracle must serve what every method of the shipped experiment needs, the scoring
//! families (vLLM's `/tokenize` and prompt log-probs) included, so the run writes a summary.
//! `scripts/readme_commands.sh` runs the full line in CI; this test runs the scoring families
//! and one prompting method, and checks that their rows rank as the true values do.

mod common;

use common::{ServedOracle, rho, shipped_frozenlake_text, succeeded, summary};

#[test]
fn serve_oracle_runs_the_scoring_families_of_the_shipped_frozenlake_text_experiment() {
    let server = ServedOracle::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let stdout = succeeded(
        shipped_frozenlake_text(&run, &server.url, &["sdpo", "sdpo-gt", "delta-belief", "direct-q"]).arg("-q"),
    );
    let summary = summary(&run);
    // The oracle's log-probs follow the true values: every scoring family orders each
    // state's candidate actions as their labels do (the direct answers are the true values).
    for (labels, method) in [
        ("ranking-qv_mc_max", "sdpo-q"),
        ("ranking-qv_mc_max", "sdpo-gt-q"),
        ("ranking-qv_mc_max", "delta-belief-q"),
        ("qv_mc_max", "direct-q"),
    ] {
        let r = rho(&summary, labels, method);
        assert!(r > 0.9, "{method}: rho {r} against {labels}\n{stdout}");
    }
}
