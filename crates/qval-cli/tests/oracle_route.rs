//! The README's offline route (issue 24): `qval serve-oracle`, then `qval run
//! experiments/qval-v1/frozenlake-text.toml --base-url URL --model oracle` from the repository
//! root. The oracle must serve what every method of the shipped experiment needs, the scoring
//! families (vLLM's `/tokenize` and prompt log-probs) included, so the run writes a summary.
//! `scripts/readme_commands.sh` runs the full line in CI; this test runs the scoring families
//! and one prompting method, and checks that their rows rank as the true values do.

use serde_json::Value;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn qval() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_qval"));
    c.env("RUST_BACKTRACE", "1");
    c
}

/// A running `qval serve-oracle`, killed when dropped.
struct ServedOracle {
    child: Child,
    url: String,
    /// Kept open: a closed pipe ends the server.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl ServedOracle {
    /// Starts `qval serve-oracle` with `args` and reads the URL it prints first.
    fn start(args: &[&str]) -> ServedOracle {
        let mut child = qval()
            .arg("serve-oracle")
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("qval serve-oracle starts");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("a piped stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("the server prints its URL");
        let url = first.trim().to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        ServedOracle {
            child,
            url,
            _stdout: stdout,
        }
    }
}

impl Drop for ServedOracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A method's correlation in the published layout: Spearman's rho on a point label set, the
/// mean per-state rho on a ranking one.
fn rho(summary: &Value, labels: &str, method: &str) -> f64 {
    let c = &summary["estimations"][labels]["methods"][method]["correlations"];
    c["spearman"]["correlation"]
        .as_f64()
        .or(c["ranking_spearman"]["mean"].as_f64())
        .unwrap_or(f64::NAN)
}

#[test]
fn serve_oracle_runs_the_scoring_families_of_the_shipped_frozenlake_text_experiment() {
    let server = ServedOracle::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = qval()
        .current_dir(repo())
        .args(["run", "experiments/qval-v1/frozenlake-text.toml", "--out"])
        .arg(&run)
        .args(["--base-url", &server.url, "--model", "oracle", "-q"])
        .args(["--only", "sdpo", "sdpo-gt", "delta-belief", "direct-q"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "qval run failed:\n{stdout}\n{stderr}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).expect("a summary")).unwrap();
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
