//! The evaluate stage: run folders, published summaries, reports and plots.

use qval_core::io::{Kind, Metadata, write_jsonl};
use qval_core::{Aggregation, Label, Prediction, Signal};
use qval_metrics::{BootstrapConfig, CorrelationConfig, EvaluateConfig, evaluate_run, recompute_published, spearman};
use serde_json::{Value, json};
use std::path::Path;

fn cfg() -> EvaluateConfig {
    EvaluateConfig {
        correlation: CorrelationConfig::default(),
        bootstrap: Some(BootstrapConfig::builder().resamples(500).seed(1).build().unwrap()),
    }
}

fn write_run(dir: &Path) -> (Vec<f64>, Vec<f64>) {
    let n = 80;
    let labels: Vec<Label> = (0..n)
        .map(|i| Label {
            point_id: format!("t{i}-s1"),
            signal: Signal::Q,
            value: if i == 5 { f64::NAN } else { 0.95f64.powi(i % 13) },
            aggregation: Aggregation::Max,
            returns: vec![],
            baseline_returns: vec![],
            aborted: (i == 5).then(|| "rollout failed".to_string()),
            candidate_of: None,
        })
        .collect();
    write_jsonl(
        &dir.join("labels/mvmc-q.jsonl"),
        &Metadata::new(Kind::Labels, "mvmc-q"),
        &labels,
    )
    .unwrap();
    // A Q method, in shuffled order, with one failure and one missing point.
    let mut preds: Vec<Prediction> = (0..n)
        .filter(|&i| i != 9)
        .map(|i| Prediction {
            point_id: format!("t{i}-s1"),
            value: if i == 3 {
                f64::NAN
            } else {
                -((i % 13) as f64) + (i % 3) as f64 * 0.4
            },
            error: (i == 3).then(|| "timeout".to_string()),
        })
        .collect();
    preds.reverse();
    let meta =
        |name: &str, signal: &str| Metadata::new(Kind::Predictions, name).with_params(json!({ "signal": signal }));
    write_jsonl(
        &dir.join("predictions/heuristic-q.jsonl"),
        &meta("heuristic-q", "q"),
        &preds,
    )
    .unwrap();
    // A V method: not compared with Q labels.
    write_jsonl(&dir.join("predictions/value-v.jsonl"), &meta("value-v", "v"), &preds).unwrap();
    // The expected aligned vectors.
    let lv: Vec<f64> = labels.iter().map(|l| l.value).collect();
    let pv: Vec<f64> = (0..n)
        .map(|i| {
            if i == 9 || i == 3 {
                f64::NAN
            } else {
                -((i % 13) as f64) + (i % 3) as f64 * 0.4
            }
        })
        .collect();
    (lv, pv)
}

#[test]
fn a_run_folder_is_evaluated_by_point_id_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (labels, preds) = write_run(dir.path());
    let s = evaluate_run(dir.path(), &cfg()).unwrap();
    let est = &s.estimations["mvmc-q"];
    assert_eq!(est.aborted, 1);
    assert_eq!(
        est.methods.keys().collect::<Vec<_>>(),
        ["heuristic-q"],
        "the V method is not paired with Q labels"
    );
    let m = &est.methods["heuristic-q"];
    assert_eq!((m.missing, m.failed), (1, 1));
    let direct = spearman(&preds, &labels, &CorrelationConfig::default()).unwrap();
    assert_eq!(m.correlations.spearman.correlation, Some(direct.value));
    assert_eq!(m.correlations.spearman.num_points, 77);
    let [lo, hi] = m.correlations.spearman.ci95.unwrap();
    assert!(lo.unwrap() < direct.value && direct.value < hi.unwrap());
    // The files: published layout with nulls, Markdown, plots.
    let (written, warnings) = s.write(dir.path(), "summary").unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap()).unwrap();
    let fig = &v["estimations"]["mvmc-q"]["methods"]["heuristic-q"]["correlations"]["spearman"];
    assert_eq!(fig["num_points"], 77);
    assert!(fig["correlation"].as_f64().is_some() && fig["p_value"].as_f64().is_some());
    assert!(v["estimations"]["mvmc-q"]["values"][5].is_null(), "NaN as null");
    assert!(v["estimations"]["mvmc-q"]["methods"]["heuristic-q"]["values"][9].is_null());
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(md.contains("| heuristic-q | Q | 77 |"), "{md}");
    assert!(md.contains("1 failed (NaN) and 1 missing"), "{md}");
    let pngs: Vec<_> = written
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    assert_eq!(pngs.len(), 2, "{written:?}");
    for p in pngs {
        let bytes = std::fs::read(p).unwrap();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 5_000, "{}", p.display());
    }
    // Recomputable from the summary alone.
    let (l2, p2) = qval_metrics::report::values_of_method(&s, "mvmc-q", "heuristic-q").unwrap();
    assert_eq!(
        spearman(&p2, &l2, &CorrelationConfig::default()).unwrap().value,
        direct.value
    );
}

#[test]
fn published_summaries_are_recomputed_and_compared() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/published_summary.json");
    let (s, diffs) = recompute_published(Path::new(fixture), &cfg()).unwrap();
    assert!(diffs.is_empty(), "scipy's figures under the published rules: {diffs:?}");
    let methods = &s.estimations["mvmc"].methods;
    assert_eq!(
        methods["good"].correlations.spearman.num_points, 118,
        "truncated to 120, two NaN pairs dropped"
    );
    assert_eq!(methods["few"].correlations.spearman.correlation, None, "under 50 pairs");
    assert!(methods["good"].correlations.spearman.correlation.unwrap() > 0.5);
    // A tampered stored figure is reported.
    let dir = tempfile::tempdir().unwrap();
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    v["estimations"]["mvmc"]["methods"]["weak"]["correlations"]["kendall_tau"]["correlation"] = json!(0.5);
    v["estimations"]["mvmc"]["methods"]["good"]["correlations"]["pearson"]["num_points"] = json!(3);
    let tampered = dir.path().join("summary_x.json");
    std::fs::write(&tampered, serde_json::to_string(&v).unwrap()).unwrap();
    let (_, diffs) = recompute_published(&tampered, &cfg()).unwrap();
    let whats: Vec<&str> = diffs.iter().map(|d| d.what.as_str()).collect();
    assert_eq!(
        whats,
        [
            "mvmc / good / pearson / num_points",
            "mvmc / weak / kendall_tau / correlation"
        ]
    );
}

#[test]
fn published_value_files_pair_by_position_and_bad_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let labels: Vec<Value> = (0..70)
        .map(|i| if i == 2 { Value::Null } else { json!(i as f64 / 70.0) })
        .collect();
    let preds: Vec<Value> = (0..75)
        .map(|i| json!((i as f64 * 0.37).sin() + i as f64 / 30.0))
        .collect();
    std::fs::create_dir_all(dir.path().join("labels")).unwrap();
    std::fs::create_dir_all(dir.path().join("predictions")).unwrap();
    std::fs::write(
        dir.path().join("labels/mc.json"),
        json!({ "values": labels, "assumption": "q_value" }).to_string(),
    )
    .unwrap();
    // A file without a signal is refused (never taken as Q silently), naming it.
    std::fs::write(
        dir.path().join("predictions/llm.json"),
        json!({ "values": preds }).to_string(),
    )
    .unwrap();
    let err = evaluate_run(dir.path(), &cfg()).unwrap_err().to_string();
    assert!(err.contains("llm.json") && err.contains("no signal"), "{err}");
    std::fs::write(
        dir.path().join("predictions/llm.json"),
        json!({ "values": preds, "config": { "signal_type": "q_value" } }).to_string(),
    )
    .unwrap();
    let s = evaluate_run(dir.path(), &cfg()).unwrap();
    assert_eq!(s.estimations["mc"].methods["llm"].correlations.spearman.num_points, 69);
    // A malformed value names the file and the entry.
    std::fs::write(
        dir.path().join("predictions/bad.json"),
        r#"{"values": [1.0, "high"], "signal": "q"}"#,
    )
    .unwrap();
    let err = evaluate_run(dir.path(), &cfg()).unwrap_err().to_string();
    assert!(err.contains("bad.json") && err.contains("values[1]"), "{err}");
    std::fs::write(dir.path().join("predictions/bad.json"), "{\n\"values\": [1.0,\n").unwrap();
    let err = evaluate_run(dir.path(), &cfg()).unwrap_err().to_string();
    assert!(err.contains("bad.json") && err.contains("line 3"), "{err}");
    let err = recompute_published(&dir.path().join("labels/mc.json"), &cfg())
        .unwrap_err()
        .to_string();
    assert!(err.contains("mc.json") && err.contains("estimations"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    assert!(
        evaluate_run(empty.path(), &cfg())
            .unwrap_err()
            .to_string()
            .contains("no label files")
    );
}
