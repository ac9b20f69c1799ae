//! `qval evaluate` and `qval report` on run folders: re-evaluation keeps the run's metadata,
//! `--predictions` refuses what it cannot do, read-only folders are read, recomputed
//! summaries gate CI by their exit status, `--export` writes ranking files, and reports name
//! runs by what tells their paths apart.

mod common;

use common::{
    frozenlake, json, oracle, oracle_backend, output, qval, qval_run, refused, rows, run_ok, s, succeeded, text,
    write_experiment,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// An offline FrozenLake run in `dir/name` (120 points, MVMC Q labels, the random baseline
/// and the distance heuristic).
fn offline_run(dir: &Path, name: &str) -> PathBuf {
    let text = frozenlake(
        "offline",
        3,
        24,
        r#"
[[labels]]
rollouts = 1

[[methods]]
type = "random"

[[methods]]
type = "heuristic"
name = "distance"

[evaluate]
bootstrap = 200
"#,
    );
    let file = write_experiment(dir, "offline.toml", &text);
    let run = dir.join(name);
    succeeded(qval_run(&file, &run).arg("-q"));
    run
}

/// The run's point ids (of its Q labels), in file order.
fn point_ids(run: &Path) -> Vec<String> {
    rows(&run.join("labels/mvmc-q.jsonl"))
        .iter()
        .map(|row| row["point_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn re_evaluating_a_run_keeps_its_metadata_and_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let run = offline_run(dir.path(), "run");
    let before = std::fs::read_to_string(run.join("summary.json")).unwrap();
    let info = &json(&run.join("summary.json"))["experiment_info"];
    assert_eq!(info["env_name"], "frozenlake");
    assert!(info["num_trajectories"].as_u64().unwrap() > 0);
    run_ok(&["evaluate", s(&run), "--bootstrap", "200"]);
    let after = std::fs::read_to_string(run.join("summary.json")).unwrap();
    let (b, a) = (
        serde_json::from_str::<Value>(&before).unwrap(),
        serde_json::from_str::<Value>(&after).unwrap(),
    );
    assert_eq!(a["experiment_info"], b["experiment_info"]);
    for key in ["name", "environment", "seed"] {
        assert_eq!(a["qval"][key], b["qval"][key], "qval.{key}");
    }
    assert_eq!(after, before, "the same settings give the same bytes");
}

#[test]
fn predictions_need_a_new_plain_name_and_labels_of_their_signal() {
    let dir = tempfile::tempdir().unwrap();
    let run = offline_run(dir.path(), "run");
    let csv = dir.path().join("mine.csv");
    let mut body = String::from("point_id,value\n");
    for (i, id) in point_ids(&run).iter().enumerate() {
        body.push_str(&format!("{id},{}\n", i % 7));
    }
    std::fs::write(&csv, body).unwrap();
    let summaries = |run: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(run)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("summary_") && n.ends_with(".json"))
            .collect();
        v.sort();
        v
    };

    // The run's own method is not replaced.
    let before = std::fs::read(run.join("predictions/random-q.jsonl")).unwrap();
    let err = refused(
        &["evaluate", s(&run), "--predictions", s(&csv), "--name", "random-q"],
        2,
    );
    assert!(
        err.contains("random-q") && err.contains("already has a method"),
        "{err}"
    );
    assert_eq!(std::fs::read(run.join("predictions/random-q.jsonl")).unwrap(), before);

    // A name is not a path.
    let err = refused(
        &["evaluate", s(&run), "--predictions", s(&csv), "--name", "../../../x"],
        2,
    );
    assert!(err.contains("`../../../x`") && err.contains("letters, digits"), "{err}");
    assert!(summaries(&run).is_empty(), "nothing written");

    // Predictions of a signal the run has no labels of.
    let err = refused(&["evaluate", s(&run), "--predictions", s(&csv), "--signal", "v"], 2);
    assert!(err.contains("no v labels") && err.contains("mvmc-q (q)"), "{err}");
    assert!(summaries(&run).is_empty(), "nothing written");

    // A new plain name is evaluated beside the run's methods.
    let out = run_ok(&[
        "evaluate",
        s(&run),
        "--predictions",
        s(&csv),
        "--name",
        "mine",
        "--bootstrap",
        "0",
    ]);
    assert!(out.contains("| mine |") && out.contains("| random-q |"), "{out}");
    assert_eq!(summaries(&run)[..1], ["summary_mine.json".to_string()]);
}

#[test]
fn csv_predictions_are_parsed_as_csv_with_a_byte_order_mark_and_quoted_fields() {
    let dir = tempfile::tempdir().unwrap();
    let run = offline_run(dir.path(), "run");
    let ids = point_ids(&run);
    // Excel's "CSV UTF-8": a byte order mark, quoted fields.
    let csv = dir.path().join("excel.csv");
    let mut body = String::from("\u{feff}\"point_id\",\"value\"\n");
    for (i, id) in ids.iter().enumerate() {
        body.push_str(&format!("\"{id}\",\"{}\"\n", (i % 5) as f64 / 4.0));
    }
    std::fs::write(&csv, body).unwrap();
    run_ok(&["evaluate", s(&run), "--predictions", s(&csv), "--bootstrap", "0"]);
    let summary = json(&run.join("summary_excel.json"));
    let m = &summary["estimations"]["mvmc-q"]["methods"]["excel"];
    assert_eq!(m["qval"]["failed"], 0, "{m}");
    assert_eq!(m["qval"]["missing"], 0, "{m}");
    assert_eq!(m["predicted_values"][1], 0.25);

    // A decimal comma in a quoted field is one field, and not a number: refused.
    let bad = dir.path().join("comma.csv");
    std::fs::write(&bad, format!("point_id,value\n{},\"0,75\"\n", ids[0])).unwrap();
    let out = output(&["evaluate", s(&run), "--predictions", s(&bad), "--bootstrap", "0"]);
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("comma.csv") && err.contains("line 2") && err.contains("`0,75` is not a number"),
        "{err}"
    );
    assert!(!run.join("summary_comma.json").exists());
}

/// Runs `args` as a user who cannot write `dir` (`nobody` through setpriv when the tests run
/// as root, whom permissions do not stop; else the folder is made read-only).
fn as_reader(dir: &Path, args: &[&str]) -> Output {
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if root {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_qval"),
            ])
            .args(args)
            .output()
            .expect("setpriv (util-linux) runs the command as nobody")
    } else {
        let st = Command::new("chmod").args(["-R", "a-w", s(dir)]).status().unwrap();
        assert!(st.success());
        let out = qval().args(args).output().unwrap();
        Command::new("chmod").args(["-R", "u+w", s(dir)]).status().unwrap();
        out
    }
}

#[test]
fn read_only_run_folders_are_evaluated_reported_and_inspected() {
    let dir = tempfile::tempdir().unwrap();
    let run = offline_run(dir.path(), "run");
    // Readable by everyone, writable by its owner only.
    let st = Command::new("chmod")
        .args(["-R", "go+rX", s(dir.path())])
        .status()
        .unwrap();
    assert!(st.success());
    let before = std::fs::read(run.join("summary.json")).unwrap();

    let out = as_reader(&run, &["evaluate", s(&run), "--bootstrap", "0"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("| distance-q |"), "the table: {stdout}");
    assert!(stdout.contains("cannot be written"), "{stdout}");
    assert_eq!(std::fs::read(run.join("summary.json")).unwrap(), before);

    let report = dir.path().join("shared");
    std::fs::create_dir(&report).unwrap();
    Command::new("chmod").args(["777", s(&report)]).status().unwrap();
    let out = as_reader(&run, &["report", s(&run), "--out", s(&report.join("r"))]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = as_reader(&run, &["status", s(&run)]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = as_reader(&run, &["preview", s(&run), "--method", "random-q"]);
    assert!(out.status.success(), "{:?}", text(&out));
}

#[test]
fn recomputed_summaries_exit_4_on_a_difference_or_nothing_compared() {
    let dir = tempfile::tempdir().unwrap();
    let run = offline_run(dir.path(), "run");
    let good = dir.path().join("good.json");
    std::fs::copy(run.join("summary.json"), &good).unwrap();
    let out = run_ok(&["evaluate", s(&good), "--bootstrap", "0"]);
    assert!(out.contains("agrees with the recomputed one"), "{out}");

    let mut v = json(&good);
    v["estimations"]["mvmc-q"]["methods"]["distance-q"]["correlations"]["spearman"]["correlation"] = 0.5.into();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_string(&v).unwrap()).unwrap();
    let err = refused(&["evaluate", s(&bad), "--bootstrap", "0"], 4);
    assert!(err.contains("bad.json") && err.contains("1 of"), "{err}");
    let out = output(&["evaluate", s(&bad), "--bootstrap", "0"]);
    assert!(
        text(&out)
            .0
            .contains("distance-q.correlations.spearman.correlation: stored 0.5")
    );

    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, r#"{"experiment_info":{},"estimations":{}}"#).unwrap();
    let err = refused(&["evaluate", s(&empty), "--bootstrap", "0"], 4);
    assert!(err.contains("nothing to compare"), "{err}");
}

#[test]
fn export_writes_ranking_labels_and_methods_in_the_published_ranking_layout() {
    let server = oracle(Duration::ZERO, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let rest = format!(
        r#"
[[labels]]
rollouts = 1

[[methods]]
type = "random"

[[methods]]
type = "ranking"
backend = "oracle"
points = 20
{}
[evaluate]
bootstrap = 0
"#,
        oracle_backend(&server, "concurrency = 8\n")
    );
    let file = write_experiment(dir.path(), "ranked.toml", &frozenlake("ranked", 5, 24, &rest));
    let run = dir.path().join("run");
    succeeded(qval_run(&file, &run).arg("-q"));
    let exported = dir.path().join("exported");
    let out = run_ok(&["evaluate", s(&run), "--export", s(&exported), "--bootstrap", "0"]);
    assert!(out.contains("4 prediction files written"), "{out}");
    assert!(!out.contains("left out"), "{out}");

    let only = |sub: &str, prefix: &str| -> Value {
        let files: Vec<PathBuf> = std::fs::read_dir(exported.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .collect();
        assert_eq!(files.len(), 1, "{sub}/{prefix}*: {files:?}");
        json(&files[0])
    };
    let gt = only("gt", "ranking-mvmc-q_");
    assert_eq!(gt["config"]["prediction_format"], "ranking_q_values");
    let counts = gt["config"]["candidate_counts"].as_array().unwrap();
    assert_eq!(counts.len(), 20, "one count per ranked state");
    let eval = only("eval", "ranking-q_");
    assert_eq!(eval["config"]["prediction_format"], "ranking_scores");
    assert_eq!(eval["config"]["candidate_counts"], gt["config"]["candidate_counts"]);

    // The published layout, read back, gives the run's per-state ranking figure.
    run_ok(&["evaluate", s(&exported), "--bootstrap", "0"]);
    let summary = std::fs::read_dir(&exported)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let ours = &json(&run.join("summary.json"))["estimations"]["ranking-mvmc-q"]["methods"]["ranking-q"];
    let theirs = &json(&summary)["estimations"]["ranking-mvmc-q"]["methods"]["ranking-q"];
    for k in ["mean", "num_valid"] {
        assert_eq!(
            theirs["correlations"]["ranking_spearman"][k], ours["correlations"]["ranking_spearman"][k],
            "{k}"
        );
    }
}

#[test]
fn reports_name_runs_by_what_tells_their_paths_apart_and_say_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let a = offline_run(dir.path(), "a/run");
    let b = offline_run(dir.path(), "b/run");
    let rep = dir.path().join("rep");
    let out = run_ok(&["report", s(&a), s(&b), "--out", s(&rep)]);
    assert!(out.contains(s(&rep)) && out.contains("--out"), "{out}");
    let md = std::fs::read_to_string(rep.join("report.md")).unwrap();
    assert!(md.contains("| method | a/run | b/run |"), "{md}");

    let err = refused(&["report", s(&a), &format!("{}/../run", s(&a)), "--out", s(&rep)], 2);
    assert!(err.contains("given twice"), "{err}");

    // Without --out, `report/` in the current folder, and the command says so.
    let out = qval().current_dir(dir.path()).args(["report", s(&a)]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("is in report/"), "{stdout}");
    assert!(dir.path().join("report/report.html").exists());
}
