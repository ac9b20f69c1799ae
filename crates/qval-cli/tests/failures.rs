//! Failing methods and points, end to end through `qval run`: a method whose every point
//! failed shows its reason under the table and exits 3; points that failed in transport are
//! asked again by a rerun; `--reask-unparsed` asks again what did not parse; a predictions
//! file cut short is resumed, never taken as finished.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{all_text, frozenlake, oracle, oracle_backend, output, qval_run, write_experiment};
use qval_core::Prediction;
use qval_core::io::{Kind, read_jsonl};
use qval_testkit::{Fault, Rule, Selector, TestServer};

/// A small FrozenLake experiment with exact labels, a random baseline and a direct method
/// (40 points) on `server`, one attempt per request (a failure is final for the run).
fn experiment(dir: &Path, server: Option<&TestServer>) -> PathBuf {
    let llm = match server {
        Some(s) => format!(
            r#"{}
[[methods]]
type = "direct"
backend = "oracle"
points = 40
"#,
            oracle_backend(s, "concurrency = 4\nmax_attempts = 1\n")
        ),
        None => String::new(),
    };
    let rest = format!(
        r#"
[[labels]]
method = "exact"

[evaluate]
bootstrap = 200

[[methods]]
type = "random"
{llm}"#
    );
    write_experiment(dir, "failures.toml", &frozenlake("failures", 3, 16, &rest))
}

fn run(file: &Path, out: &Path, extra: &[&str]) -> Output {
    qval_run(file, out).args(extra).output().expect("qval runs")
}

fn predictions(run: &Path, name: &str) -> Vec<Prediction> {
    read_jsonl::<Prediction>(
        &run.join("predictions").join(format!("{name}.jsonl")),
        Kind::Predictions,
    )
    .unwrap()
    .1
}

#[test]
fn a_method_failing_on_every_point_shows_its_reason_and_exits_3_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let s = oracle(Duration::ZERO, vec![Rule::new(Selector::Any, Fault::BadRequest)]);
    let file = experiment(dir.path(), Some(&s));
    let out_dir = dir.path().join("run");
    let o = run(&file, &out_dir, &[]);
    let all = all_text(&o);
    assert_eq!(o.status.code(), Some(3), "{all}");
    // Under the table: the count, the first reason, how many share it.
    let note = all
        .lines()
        .find(|l| l.starts_with("- `direct-q`:") && l.contains("NaN"))
        .unwrap_or_else(|| panic!("no note for direct-q:\n{all}"));
    assert!(
        note.contains("40 NaN: ") && note.contains("HTTP 400") && note.contains("(first of 40)"),
        "{note}"
    );
    // It was asked for 40 of the labelled points: said as such, not as "missing".
    assert!(
        note.contains("scored 40 of ") && note.contains(" points (points = 40)"),
        "{note}"
    );
    assert!(!all.contains("missing"), "{all}");
    // The exit's line names the method and the reason.
    let last = String::from_utf8_lossy(&o.stderr);
    let last = last.trim().lines().last().unwrap();
    assert!(
        last.starts_with("error: ") && last.contains("`direct-q` failed on all 40 points") && last.contains("HTTP 400"),
        "{last}"
    );
    assert!(
        out_dir.join("summary.json").exists(),
        "the summary is written before the exit status"
    );
    // Allowed: the same run exits 0 (and asks nothing again: a 400 is final).
    let before = s.requests();
    let o = run(&file, &out_dir, &["--allow-failures"]);
    assert_eq!(o.status.code(), Some(0), "{}", all_text(&o));
    assert_eq!(s.requests(), before, "a final failure was asked again");
    // Re-evaluating the folder with no flags uses the run's own [evaluate] and keeps its
    // points limit: the same bytes.
    let summary = std::fs::read(out_dir.join("summary.json")).unwrap();
    let o = output(&["evaluate", out_dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", all_text(&o));
    assert!(all_text(&o).contains("(points = 40)"), "{}", all_text(&o));
    assert_eq!(
        std::fs::read(out_dir.join("summary.json")).unwrap(),
        summary,
        "re-evaluation changed the bytes"
    );
}

#[test]
fn points_failed_in_transport_are_asked_again_by_a_rerun_and_said_so() {
    let dir = tempfile::tempdir().unwrap();
    // The server "goes away" for the first 6 requests (500, one attempt each).
    let s = oracle(
        Duration::ZERO,
        vec![Rule::new(Selector::FirstRequests(6), Fault::ServerError)],
    );
    let file = experiment(dir.path(), Some(&s));
    let out_dir = dir.path().join("run");
    let o = run(&file, &out_dir, &[]);
    let all = all_text(&o);
    assert_eq!(o.status.code(), Some(3), "{all}");
    assert!(all.contains("6 failed in transport: a rerun asks them again"), "{all}");
    let first = predictions(&out_dir, "direct-q");
    assert_eq!(first.iter().filter(|p| p.transient).count(), 6);
    assert!(first.iter().filter(|p| p.transient).all(|p| p.value.is_nan()));
    let sent = s.requests();
    // The rerun asks exactly those again, keeps every other prediction, and succeeds.
    let o = run(&file, &out_dir, &[]);
    let all = all_text(&o);
    assert_eq!(o.status.code(), Some(0), "{all}");
    assert!(
        all.contains("6 points failed in transport"),
        "the rerun says why it runs: {all}"
    );
    // Only failed requests are sent again, each once (a point whose prompt another point
    // had answered meanwhile is answered from the cache).
    let prompts = s.prompts();
    let failed: std::collections::BTreeSet<&String> = prompts[..6].iter().collect();
    let again: std::collections::BTreeSet<&String> = prompts[sent..].iter().collect();
    assert!(
        !again.is_empty() && again.is_subset(&failed),
        "{} prompts asked again, not all failed ones",
        again.len()
    );
    assert_eq!(again.len(), prompts.len() - sent, "a prompt was asked twice");
    let sent = s.requests();
    let second = predictions(&out_dir, "direct-q");
    assert!(second.iter().all(|p| p.value.is_finite() && !p.transient));
    for (a, b) in first.iter().zip(&second) {
        if !a.transient {
            assert_eq!(a, b, "a finished prediction changed");
        }
    }
    // A third run has nothing to do.
    let o = run(&file, &out_dir, &[]);
    assert!(all_text(&o).contains("direct-q (finished earlier)"), "{}", all_text(&o));
    assert_eq!(s.requests(), sent);
}

#[test]
fn reask_unparsed_asks_again_only_what_did_not_parse() {
    let dir = tempfile::tempdir().unwrap();
    let s = oracle(
        Duration::ZERO,
        vec![Rule::new(Selector::FirstRequests(3), Fault::Prose)],
    );
    let file = experiment(dir.path(), Some(&s));
    let out_dir = dir.path().join("run");
    let o = run(&file, &out_dir, &["--allow-failures"]);
    assert_eq!(o.status.code(), Some(0), "{}", all_text(&o));
    assert_eq!(
        predictions(&out_dir, "direct-q")
            .iter()
            .filter(|p| p.value.is_nan())
            .count(),
        3
    );
    let sent = s.requests();
    // A plain rerun: a parse failure is final; nothing is asked.
    let o = run(&file, &out_dir, &[]);
    assert!(all_text(&o).contains("direct-q (finished earlier)"), "{}", all_text(&o));
    assert_eq!(s.requests(), sent);
    // --reask-unparsed: the 3 unparsed replies are asked again, the rest come from the cache.
    let o = run(&file, &out_dir, &["--reask-unparsed"]);
    assert_eq!(o.status.code(), Some(0), "{}", all_text(&o));
    assert_eq!(s.requests(), sent + 3, "{}", all_text(&o));
    assert!(predictions(&out_dir, "direct-q").iter().all(|p| p.value.is_finite()));
}

#[test]
fn a_predictions_file_cut_at_a_line_break_is_resumed_not_taken_as_finished() {
    let dir = tempfile::tempdir().unwrap();
    let file = experiment(dir.path(), None);
    let out_dir = dir.path().join("run");
    let o = run(&file, &out_dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", all_text(&o));
    let path = out_dir.join("predictions").join("random-q.jsonl");
    let whole = std::fs::read_to_string(&path).unwrap();
    let summary = std::fs::read(out_dir.join("summary.json")).unwrap();
    // Cut after the metadata line and 10 records, at a line break.
    let cut: String = whole.lines().take(11).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, &cut).unwrap();
    let err = read_jsonl::<Prediction>(&path, Kind::Predictions)
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds 10 of the") && err.contains("cut short"), "{err}");
    let o = run(&file, &out_dir, &[]);
    let all = all_text(&o);
    assert_eq!(o.status.code(), Some(0), "{all}");
    assert!(!all.contains("random-q (finished earlier)"), "{all}");
    assert!(all.contains("random-q: resuming; an output file holds 10 of"), "{all}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        whole,
        "the resumed file differs"
    );
    assert_eq!(std::fs::read(out_dir.join("summary.json")).unwrap(), summary);
}
