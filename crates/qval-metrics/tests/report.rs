//! The evaluate stage: run folders, the published testbed's summaries and prediction files,
//! predictions from anywhere, and the summary's layout read back by a stand-alone reader.

mod common;

use common::fixture;
use common::python::{SCIPY, need};
use qval_core::io::{Kind, Metadata, write_jsonl};
use qval_core::{Aggregation, Label, Prediction, Signal};
use qval_metrics::{
    BootstrapConfig, CorrelationConfig, EvaluateConfig, Granularity, LabelSet, MethodEntry, PredictionSet, evaluate,
    evaluate_run, read_prediction_folder, read_user_predictions, recompute_published, spearman, unmatched_ids,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn cfg() -> EvaluateConfig {
    EvaluateConfig {
        bootstrap: Some(BootstrapConfig::builder().resamples(500).seed(1).build().unwrap()),
        ..Default::default()
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
            expert: None,
            steps: None,
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
            transient: false,
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
fn a_run_folder_is_evaluated_by_point_id_in_the_published_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (labels, preds) = write_run(dir.path());
    let s = evaluate_run(dir.path(), &cfg()).unwrap();
    let est = &s.estimations["mvmc-q"];
    assert_eq!(est.qval.as_ref().unwrap().aborted, 1);
    assert_eq!(
        est.methods.keys().collect::<Vec<_>>(),
        ["heuristic-q"],
        "the V method is not paired with Q labels"
    );
    let m = est.method("heuristic-q").unwrap();
    let x = m.qval.as_ref().unwrap();
    assert_eq!((x.missing, x.failed), (1, 1));
    assert_eq!(x.nan_reasons.len(), 1);
    assert_eq!(x.nan_reasons[0].reason, "timeout");
    let direct = spearman(&preds, &labels, &CorrelationConfig::default()).unwrap();
    let rho = m.correlations.spearman.as_ref().unwrap();
    assert_eq!(rho.correlation, Some(direct.value));
    assert_eq!(rho.num_points, 77);
    let [lo, hi] = m.interval("spearman").unwrap();
    assert!(lo.unwrap() < direct.value && direct.value < hi.unwrap());
    assert!(
        m.correlations.sign_agreement.is_some(),
        "the published default computes sign agreement"
    );
    // The files: the published layout with nulls and 4-space indents, Markdown, plots.
    let (written, warnings) = s.write(dir.path(), "summary").unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let text = std::fs::read_to_string(dir.path().join("summary.json")).unwrap();
    assert!(
        text.starts_with("{\n    \"experiment_info\": {\n        \"dataset_source\""),
        "{}",
        &text[..80]
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    let e = &v["estimations"]["mvmc-q"];
    assert_eq!(e["assumption"], "q_value");
    assert_eq!(e["granularity"], "point");
    let fig = &e["methods"]["heuristic-q"]["correlations"]["spearman"];
    assert_eq!(fig["num_points"], 77);
    assert!(fig["correlation"].as_f64().is_some() && fig["p_value"].as_f64().is_some());
    assert!(e["ground_truth_values"][5].is_null(), "NaN as null");
    assert!(e["methods"]["heuristic-q"]["predicted_values"][9].is_null());
    assert_eq!(e["methods"]["heuristic-q"]["num_dropped_zero"], 0);
    assert_eq!(v["experiment_info"]["min_usable_correlation_points"], 50);
    assert_eq!(
        v["experiment_info"]["comparisons"],
        json!([{"gt": "mvmc-q", "eval": "heuristic-q"}])
    );
    assert!(
        text.contains("\"gt\": \"mvmc-q\",\n                \"eval\""),
        "the published key order"
    );
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(md.contains("| heuristic-q | 77 |"), "{md}");
    assert!(
        md.contains("scored 79 of 80 points; 1 NaN: timeout (first of 1)"),
        "{md}"
    );
    let pngs = written
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .count();
    assert_eq!(pngs, 2, "{written:?}");
    // Read back, recomputed from the file alone: no difference.
    let r = recompute_published(&dir.path().join("summary.json"), &cfg()).unwrap();
    assert!(r.differences.is_empty(), "{:?}", r.differences);
    assert_eq!(r.compared, 12);
}

#[test]
fn every_published_summary_fixture_is_reproduced() {
    let dir = fixture("qval_published");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 5);
    for f in &files {
        let r = recompute_published(f, &cfg()).unwrap();
        assert!(r.differences.is_empty(), "{}: {:?}", f.display(), r.differences);
        assert!(r.compared >= 30, "{}: {} figures", f.display(), r.compared);
    }
    // What they cover.
    let clip = recompute_published(&dir.join("open_apps_clip_vision_summary_20260507_035704.json"), &cfg()).unwrap();
    let thresh = clip.summary.estimations["sv_mc_max"].method("vle-thresh_sv").unwrap();
    let p = thresh.correlations.pearson.as_ref().unwrap();
    assert_eq!(
        (p.correlation, p.p_value, p.num_points),
        (None, None, 94),
        "a constant method"
    );
    let fl = recompute_published(
        &dir.join("frozen_lake_g4-26-or_text_summary_20260504_195904.json"),
        &cfg(),
    )
    .unwrap();
    let few: Vec<usize> = fl.summary.estimations["qv_mc_max"]
        .flat_methods()
        .iter()
        .filter(|(_, m)| m.correlations.spearman.as_ref().unwrap().correlation.is_none())
        .map(|(_, m)| m.correlations.spearman.as_ref().unwrap().num_points)
        .collect();
    assert!(!few.is_empty() && few.iter().all(|n| *n < 50), "{few:?}");
    let tb = recompute_published(
        &dir.join("terminal_bench_g4-26-or_text_summary_20260504_025543_trimmed.json"),
        &cfg(),
    )
    .unwrap();
    let MethodEntry::Group(g) = &tb.summary.estimations["qv_mc_max"].methods["llm_codegen_qv_optimal"] else {
        panic!("a sample group")
    };
    assert_eq!((g.num_samples, g.per_sample.len()), (16, 16));
    assert!(g.aggregate_correlations["spearman"].std.unwrap() > 0.0);
    let ranking = recompute_published(
        &dir.join("open_apps_g4-26-or_vision_summary_20260507_035753.json"),
        &cfg(),
    )
    .unwrap();
    let skipped: Vec<&str> = ranking.not_recomputable.iter().map(|n| n.what.as_str()).collect();
    assert_eq!(skipped, ["estimations.ranking_gt_qv_mc_max"]);
}

#[test]
fn a_changed_stored_figure_is_listed_by_its_path() {
    let src = fixture("qval_published/open_apps_clip_vision_summary_20260507_035704.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&src).unwrap()).unwrap();
    let methods = v["estimations"]["sv_mc_max"]["methods"].as_object_mut().unwrap();
    let first = methods.keys().next().unwrap().clone();
    methods[&first]["correlations"]["kendall_tau"]["correlation"] = json!(0.5);
    methods[&first]["correlations"]["pearson"]["num_points"] = json!(3);
    let dir = tempfile::tempdir().unwrap();
    let tampered = dir.path().join("summary_x.json");
    std::fs::write(&tampered, serde_json::to_string(&v).unwrap()).unwrap();
    let r = recompute_published(&tampered, &cfg()).unwrap();
    let whats: Vec<&str> = r.differences.iter().map(|d| d.what.as_str()).collect();
    assert_eq!(
        whats,
        [
            format!("estimations.sv_mc_max.methods.{first}.correlations.pearson.num_points"),
            format!("estimations.sv_mc_max.methods.{first}.correlations.kendall_tau.correlation"),
        ]
    );
    // Not a summary: the file and the place are named.
    std::fs::write(
        dir.path().join("bad.json"),
        "{\"estimations\": {\"x\": {\"assumption\": 3}}}",
    )
    .unwrap();
    let err = recompute_published(&dir.path().join("bad.json"), &cfg())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.json") && err.contains("estimations.x.assumption"),
        "{err}"
    );
}

#[test]
fn a_published_prediction_folder_gives_the_published_figures() {
    let (labels, preds) = read_prediction_folder(&fixture("qval_predictions")).unwrap();
    assert_eq!(labels.len(), 2);
    assert_eq!(preds.len(), 2, "the newest direct_qv wins, the older is not read");
    let cfg = EvaluateConfig {
        correlation_methods: vec!["pearson".into(), "spearman".into(), "kendall_tau".into()],
        ..cfg()
    };
    let ours = evaluate(&labels, &preds, &cfg).unwrap();
    let published = qval_metrics::Summary::read(&fixture(
        "qval_published/open_apps_g4-26-or_vision_summary_20260507_035753.json",
    ))
    .unwrap();
    let (a, b) = (
        ours.estimations["qv_mc_max"].method("direct_qv").unwrap(),
        published.estimations["qv_mc_max"].method("direct_qv").unwrap(),
    );
    for (name, f) in b.correlations.figures() {
        let g = a.correlations.get(name).unwrap();
        assert!((g.correlation.unwrap() - f.correlation.unwrap()).abs() < 1e-9, "{name}");
        assert!((g.p_value.unwrap() / f.p_value.unwrap() - 1.0).abs() < 1e-6, "{name}");
        assert_eq!(g.num_points, f.num_points);
    }
    let est = &ours.estimations["ranking_gt_qv_mc_max"];
    assert_eq!(est.granularity, Granularity::Ranking);
    assert_eq!(
        est.methods.keys().collect::<Vec<_>>(),
        ["ranking_qv"],
        "point methods are not ranked"
    );
    let (a, b) = (
        est.method("ranking_qv").unwrap(),
        published.estimations["ranking_gt_qv_mc_max"]
            .method("ranking_qv")
            .unwrap(),
    );
    let (ra, rb) = (
        a.correlations.ranking_spearman.as_ref().unwrap(),
        b.correlations.ranking_spearman.as_ref().unwrap(),
    );
    assert_eq!((ra.num_valid, ra.num_skipped, ra.num_points), (91, 3, 94));
    assert!((ra.mean.unwrap() - rb.mean.unwrap()).abs() < 1e-9);
    assert!((ra.std.unwrap() - rb.std.unwrap()).abs() < 1e-9);
    let (pa, pb) = (
        a.per_point_correlations.as_ref().unwrap(),
        b.per_point_correlations.as_ref().unwrap(),
    );
    for (x, y) in pa.iter().zip(pb) {
        assert_eq!(x.is_some(), y.is_some());
        if let (Some(x), Some(y)) = (x, y) {
            assert!((x - y).abs() < 1e-9);
        }
    }
}

fn label_set(name: &str, signal: Signal, values: &[f64], returns: impl Fn(usize) -> Vec<f64>) -> LabelSet {
    LabelSet {
        name: name.into(),
        signal,
        labels: values
            .iter()
            .enumerate()
            .map(|(i, v)| Label {
                point_id: format!("p{i}"),
                signal,
                value: *v,
                aggregation: Aggregation::Max,
                returns: returns(i),
                baseline_returns: vec![],
                aborted: None,
                candidate_of: None,
                expert: None,
                steps: None,
            })
            .collect(),
        dataset: Some("d1".into()),
        source: None,
    }
}

fn prediction_set(name: &str, signal: Signal, values: &[f64]) -> PredictionSet {
    PredictionSet {
        name: name.into(),
        signal,
        predictions: values
            .iter()
            .enumerate()
            .map(|(i, v)| Prediction {
                point_id: format!("p{i}"),
                value: *v,
                error: None,
                transient: false,
            })
            .collect(),
        dataset: Some("d1".into()),
        group: None,
        granularity: None,
        source: None,
    }
}

#[test]
fn paired_comparisons_relabelling_and_label_sets_against_each_other() {
    let n = 300;
    let truth: Vec<f64> = (0..n).map(|i| (i * 37 % 101) as f64 / 101.0).collect();
    let noisy = |amp: f64, k: usize| -> Vec<f64> {
        truth
            .iter()
            .enumerate()
            .map(|(i, t)| t + amp * (((i * k) as f64) * 0.7).sin())
            .collect()
    };
    let q = label_set("mvmc-q", Signal::Q, &truth, |i| {
        vec![truth[i], truth[i] * 0.5, truth[i]]
    });
    let mean_q = label_set("mvmc-mean-q", Signal::Q, &noisy(0.05, 3), |_| vec![]);
    let v = label_set("mvmc-v", Signal::V, &noisy(0.1, 5), |_| vec![]);
    let methods = vec![
        prediction_set("good-q", Signal::Q, &noisy(0.05, 7)),
        prediction_set("also-good-q", Signal::Q, &noisy(0.05, 11)),
        prediction_set("poor-q", Signal::Q, &noisy(1.0, 13)),
        prediction_set("value-v", Signal::V, &noisy(0.2, 17)),
    ];
    let s = evaluate(&[q.clone(), mean_q.clone(), v.clone()], &methods, &cfg()).unwrap();
    let x = s.estimations["mvmc-q"].qval.as_ref().unwrap();
    assert_eq!(x.tiers.len(), 2, "{:?}", x.tiers);
    assert_eq!(x.tiers[1], ["poor-q"]);
    assert!(x.paired.iter().all(|p| p.comparison.zou_interval[0].is_some()));
    // The V method is not paired with Q labels unless relabelling is asked for.
    assert!(s.estimations["mvmc-q"].method("value-v").is_none());
    let relabelled = evaluate(
        &[q.clone(), v.clone()],
        &methods,
        &EvaluateConfig { relabel: true, ..cfg() },
    )
    .unwrap();
    assert!(relabelled.estimations["mvmc-q"].method("value-v").is_some());
    assert_eq!(
        relabelled.estimations["mvmc-v"].qval.as_ref().unwrap().relabelled.len(),
        3
    );
    // Label sets of one signal against each other.
    let g = &s.gt_vs_gt_estimations["mvmc-q"];
    let rho = g.method("mvmc-mean-q").unwrap().correlations.spearman.as_ref().unwrap();
    assert!(rho.correlation.unwrap() > 0.9);
    assert_eq!(
        serde_json::to_value(&s.experiment_info.gt_vs_gt_comparisons).unwrap(),
        json!([{"lhs": "mvmc-q", "rhs": "mvmc-mean-q"}])
    );
    // Label noise where the labels keep their returns.
    let ln = s.estimations["mvmc-q"].method("good-q").unwrap().qval.as_ref().unwrap();
    assert_eq!(ln.label_noise.as_ref().unwrap().rollouts, 3);
    // The same bytes for any thread count.
    let one = EvaluateConfig {
        bootstrap: Some(
            BootstrapConfig::builder()
                .resamples(500)
                .seed(1)
                .threads(1)
                .build()
                .unwrap(),
        ),
        ..Default::default()
    };
    let a = qval_metrics::to_published_json(&evaluate(&[q.clone(), mean_q.clone()], &methods, &one).unwrap()).unwrap();
    let b = qval_metrics::to_published_json(&evaluate(&[q, mean_q], &methods, &cfg()).unwrap()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn predictions_from_anywhere_are_evaluated_and_unknown_ids_listed() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path());
    let csv = dir.path().join("mine.csv");
    let mut text = String::from("point_id,value\n");
    for i in 0..80 {
        text.push_str(&format!(
            "t{i}-s1,{}\n",
            if i == 4 {
                "nan".to_string()
            } else {
                format!("{}", -(i % 13) as f64)
            }
        ));
    }
    text.push_str("t999-s1,1.0\nelsewhere,2.0\n");
    std::fs::write(&csv, text).unwrap();
    let mine = read_user_predictions(&csv, "mine", Signal::Q).unwrap();
    let labels = vec![LabelSet::read(&dir.path().join("labels/mvmc-q.jsonl")).unwrap()];
    assert_eq!(unmatched_ids(&labels, &mine), ["t999-s1", "elsewhere"]);
    let s = evaluate(&labels, &[mine], &cfg()).unwrap();
    let rho = s.estimations["mvmc-q"]
        .method("mine")
        .unwrap()
        .correlations
        .spearman
        .as_ref()
        .unwrap();
    assert_eq!(rho.num_points, 78, "80 labels, one aborted, one NaN prediction");
    // JSON Lines, and a malformed line named.
    let jl = dir.path().join("mine.jsonl");
    std::fs::write(
        &jl,
        "{\"point_id\": \"t1-s1\", \"value\": 0.5}\n{\"point_id\": \"t2-s1\", \"value\": \"x\"}\n",
    )
    .unwrap();
    let err = read_user_predictions(&jl, "mine", Signal::Q).unwrap_err().to_string();
    assert!(err.contains("mine.jsonl") && err.contains("line 2"), "{err}");
    std::fs::write(&csv, "id,score\n").unwrap();
    let err = read_user_predictions(&csv, "mine", Signal::Q).unwrap_err().to_string();
    assert!(err.contains("point_id") && err.contains("line 1"), "{err}");
}

/// CSV as spreadsheets write it: a UTF-8 byte order mark, quoted fields (a quoted comma is
/// part of the field), CRLF line ends; a value that is not a number is refused with file and
/// line, never read as 0 or NaN.
#[test]
fn csv_predictions_are_read_with_a_csv_parser() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("excel.csv");
    std::fs::write(
        &csv,
        "\u{feff}\"point_id\",\"note\",\"value\"\r\n\"t0-s1\",\"a, b\",\"0.75\"\r\nt1-s1,,-2\r\n\r\nt2-s1,\"x\",\r\n",
    )
    .unwrap();
    let got = read_user_predictions(&csv, "mine", Signal::Q).unwrap();
    let pairs: Vec<(&str, f64)> = got.predictions.iter().map(|p| (p.point_id.as_str(), p.value)).collect();
    assert_eq!(pairs[..2], [("t0-s1", 0.75), ("t1-s1", -2.0)]);
    assert_eq!(pairs[2].0, "t2-s1");
    assert!(pairs[2].1.is_nan(), "an empty value is NaN");
    std::fs::write(&csv, "point_id,value\nt0-s1,0.5\nt3-s1,\"0,75\"\n").unwrap();
    let err = read_user_predictions(&csv, "mine", Signal::Q).unwrap_err().to_string();
    assert!(
        err.contains("excel.csv") && err.contains("line 3") && err.contains("`0,75` is not a number"),
        "{err}"
    ); // A qval predictions file as it is: its metadata line is skipped, its records read.
    let jsonl = dir.path().join("mine.jsonl");
    std::fs::write(
        &jsonl,
        "{\"qval_metadata\":{\"kind\":\"predictions\",\"format_version\":1,\"producer\":\"m\",\"qval_version\":\"0.1.0\",\"records\":2}}\n\
         {\"point_id\":\"t0-s1\",\"value\":0.5}\n{\"point_id\":\"t1-s1\",\"value\":null,\"error\":\"x\"}\n",
    )
    .unwrap();
    let got = read_user_predictions(&jsonl, "mine", Signal::Q).unwrap();
    assert_eq!(got.predictions.len(), 2);
    assert_eq!(
        (got.predictions[0].point_id.as_str(), got.predictions[0].value),
        ("t0-s1", 0.5)
    );
    assert!(got.predictions[1].value.is_nan());
}

/// The stand-alone reader (stdlib + scipy, following only the published layout) recomputes
/// every figure of a summary qval wrote.
#[test]
fn a_python_reader_of_the_published_layout_recomputes_qvals_summary() {
    need(&SCIPY);
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path());
    let s = evaluate_run(dir.path(), &cfg()).unwrap();
    s.write(dir.path(), "summary").unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/qval_summary_check.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(dir.path().join("summary.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["num_mismatches"], 0);
    assert!(v["num_recomputed"].as_u64().unwrap() >= 12, "{stdout}");
}
