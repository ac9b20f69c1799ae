//! Acting (stage 6) on the shipped `experiments/acting-frozenlake.toml`, against the loopback
//! oracle: what must hold of guided choice, records that recompute their figures, the same
//! bytes from a run killed with SIGKILL and resumed, without starting over.

mod common;

use common::*;
use qval_core::acting::Episode;
use qval_core::io::{Kind, read_jsonl};
use qval_metrics::acting::{ActingRow, ActingSummary, wilson};
use qval_testkit::{ServerConfig, TestServer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The shipped acting experiment, pointed at `server`, written into `dir`.
fn experiment(dir: &Path, server: &TestServer) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("experiments/acting-frozenlake.toml")).unwrap();
    assert!(
        text.contains("http://127.0.0.1:8391/v1"),
        "the shipped file names its oracle"
    );
    let text = text.replace("http://127.0.0.1:8391/v1", &server.base_url());
    write_experiment(dir, "acting.toml", &text)
}

/// The oracle, serving vLLM's continuation scoring too (sdpo).
fn oracle_server() -> TestServer {
    TestServer::start(ServerConfig {
        scoring: true,
        ..Default::default()
    })
}

/// `acting.json` of a run.
fn acting(run: &Path) -> ActingSummary {
    serde_json::from_value(json(&run.join("acting.json"))).unwrap()
}

fn rate<'a>(a: &'a ActingSummary, strategy: &str, k: usize) -> &'a ActingRow {
    a.rows
        .iter()
        .find(|r| r.strategy == strategy && r.k == k)
        .unwrap_or_else(|| panic!("no row {strategy} k={k}"))
}

/// Every episode file of a run, by name, read as complete files.
fn episodes(run: &Path) -> BTreeMap<String, Vec<Episode>> {
    let mut out = BTreeMap::new();
    for f in std::fs::read_dir(run.join("acting")).unwrap() {
        let p = f.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(".jsonl"), "a file left behind: {name}");
        let (_, records) = read_jsonl::<Episode>(&p, Kind::Episodes).unwrap();
        out.insert(name, records);
    }
    out
}

/// What must hold of guided choice on these maps.
fn guided_choice_behaves(a: &ActingSummary) {
    let ks = [1, 2, 4, 8];
    let at = |s: &str, k: usize| if k == 1 { rate(a, "baseline", 1) } else { rate(a, s, k) };
    // The exact heuristic: success rises with k.
    let distance: Vec<f64> = ks.iter().map(|&k| at("distance-q", k).success_rate).collect();
    assert!(distance.windows(2).all(|w| w[1] >= w[0]), "{distance:?}");
    assert!(distance[3] > distance[0] + 0.5, "{distance:?}");
    // A uniform draw among more samples stays within the baseline's interval.
    let base = rate(a, "baseline", 1);
    for k in [2, 4, 8] {
        let r = rate(a, "random", k).success_rate;
        assert!(
            r >= base.interval.0 && r <= base.interval.1,
            "random at k={k}: {r} outside {:?}",
            base.interval
        );
    }
    // The oracle's gain falls as its noise grows.
    let gain = |m: &str| at(m, 8).success_rate - base.success_rate;
    let gains = [gain("oracle-q"), gain("oracle-noise-0.1-q"), gain("oracle-noise-1-q")];
    assert!(gains[0] >= gains[1] && gains[1] >= gains[2], "{gains:?}");
    assert!(gains[0] > gains[2] + 0.5, "{gains:?}");
    // Q-guidance with the noiseless oracle is at least as good as V-guidance.
    for k in [2, 4, 8] {
        let (q, v) = (rate(a, "oracle-q", k), rate(a, "oracle-v", k));
        assert!(
            q.success_rate >= v.interval.0,
            "k={k}: Q {} below V's {:?}",
            q.success_rate,
            v.interval
        );
    }
    assert!(rate(a, "oracle-q", 8).success_rate >= rate(a, "oracle-v", 8).success_rate);
    // Ranking-type guidance: the oracle ranking each step's candidates, and sdpo's scores.
    for m in ["ranking-q", "sdpo-q"] {
        assert!(at(m, 8).success_rate > base.success_rate + 0.5, "{m}: {:?}", at(m, 8));
    }
    // Universal self-consistency (the oracle names the most frequent candidate) agrees with the
    // vote.
    for k in [2, 4, 8] {
        let (u, v) = (rate(a, "usc", k), rate(a, "vote", k));
        assert!(
            u.success_rate >= v.interval.0 && u.success_rate <= v.interval.1,
            "k={k}: usc {} outside vote's {:?}",
            u.success_rate,
            v.interval
        );
    }
    // Alignment predicts the gain across the graded series, and the table says so.
    let r = a.rho_predicts_gain.as_ref().expect("an alignment-gain figure");
    assert!(r.methods >= 5 && r.rho > 0.3, "{r:?}");
}

/// Every record recomputes its figures: returns, successes, choices, and the rows.
fn records_recompute(a: &ActingSummary, files: &BTreeMap<String, Vec<Episode>>) {
    for (name, eps) in files {
        let (strategy, k) = name.trim_end_matches(".jsonl").rsplit_once("-k").unwrap();
        let k: usize = k.parse().unwrap();
        for e in eps {
            assert_eq!((e.strategy.as_str(), e.k), (strategy, k), "{name}");
            let total: f64 = e.steps.iter().map(|s| s.candidates[s.chosen].reward).sum();
            assert_eq!(total, e.total, "{name} episode {}", e.index);
            assert_eq!(e.success, e.failure.is_none() && e.total >= 1.0);
            for s in e.steps.iter().filter(|s| s.scored) {
                let best = s.candidates.iter().filter_map(|c| c.score).fold(f64::MIN, f64::max);
                assert_eq!(s.candidates[s.chosen].score, Some(best), "{name} episode {}", e.index);
                assert_eq!(s.candidates.len(), k);
            }
        }
        let refs: Vec<&Episode> = eps.iter().collect();
        assert_eq!(&ActingRow::of(strategy, k, &refs), rate(a, strategy, k), "{name}");
    }
    assert_eq!(files.len(), a.rows.len());
}

#[test]
fn acting_on_the_shipped_experiment_shows_what_must_hold_and_resumes_after_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let server = oracle_server();
    let file = experiment(tmp.path(), &server);
    let clean = tmp.path().join("clean");
    let out = succeeded(qval_run(&file, &clean));
    assert!(out.contains("Does alignment predict the gain?"), "{out}");
    let a = acting(&clean);
    guided_choice_behaves(&a);
    let files = episodes(&clean);
    records_recompute(&a, &files);
    let md = std::fs::read_to_string(clean.join("summary.md")).unwrap();
    assert!(md.contains("## Acting") && md.contains("exact McNemar"), "{md}");
    let wilson_row = rate(&a, "baseline", 1);
    assert_eq!(wilson_row.interval, wilson(wilson_row.successes, wilson_row.episodes));
    killed_and_resumed(tmp.path(), &files, server.requests());
    // The plot draws both intervals; `qval report` relates alignment and gain across runs.
    let svg = std::fs::read_to_string(clean.join("summary_plots/acting_alignment.svg")).unwrap();
    assert!(
        svg.contains("distance-q") && svg.contains("oracle-noise-1-q"),
        "the plot names its methods"
    );
    let report = tmp.path().join("report");
    succeeded(qval().args(["report", s(&clean), s(&tmp.path().join("killed")), "--out", s(&report)]));
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    let section = md
        .split("## Alignment against acting gain")
        .nth(1)
        .expect("the acting section");
    assert_eq!(section.matches("| distance-q |").count(), 2, "{section}");
    assert!(section.contains("all runs together"), "{section}");
}

/// A run killed with SIGKILL in stage 6 and run again writes the same bytes, and does not
/// start over: the requests both runs made exceed one clean run's by at most those in flight.
fn killed_and_resumed(dir: &Path, clean: &BTreeMap<String, Vec<Episode>>, clean_requests: usize) {
    let server = oracle_server();
    std::fs::create_dir_all(dir.join("again")).unwrap();
    let file = experiment(&dir.join("again"), &server);
    let run = dir.join("killed");
    let mut child = qval_run(&file, &run).arg("--quiet").spawn().unwrap();
    let started = Instant::now();
    let acting_dir = run.join("acting");
    while std::fs::read_dir(&acting_dir).map(|d| d.count()).unwrap_or(0) < 8 {
        assert!(started.elapsed() < Duration::from_secs(300), "acting never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = server.requests();
    succeeded(qval_run(&file, &run).arg("--quiet"));
    let resumed = server.requests() - before;
    assert!(
        resumed < clean_requests,
        "resumed {resumed} of {clean_requests}: it started over"
    );
    let in_flight = 16 * 8;
    assert!(
        before + resumed <= clean_requests + in_flight,
        "{before} + {resumed} requests against {clean_requests} for one clean run"
    );
    for (name, eps) in clean {
        let again = std::fs::read(run.join("acting").join(name)).unwrap();
        let first = std::fs::read(dir.join("clean/acting").join(name)).unwrap();
        assert!(
            again == first,
            "{name} differs after the resume ({} episodes)",
            eps.len()
        );
    }
    assert_eq!(episodes(&run).len(), clean.len());
}

#[test]
fn bad_acting_values_are_refused_before_any_work_at_their_key() {
    let tmp = tempfile::tempdir().unwrap();
    let head = frozenlake(
        "bad",
        1,
        4,
        "[[methods]]\ntype = \"heuristic\"\nname = \"distance\"\n[[methods]]\ntype = \"codegen\"\nbackend = \"x\"\n[backends.x]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n[acting]\n",
    );
    for (rest, says) in [
        ("k = [1, 0]\n", "acting.k[1]"),
        ("k = [300]\n", "acting.k[0]"),
        ("guided = [\"distanse\"]\n", "did you mean `distance`"),
        ("guided = [\"codegen\"]\n", "codegen-avg"),
        ("samples_per_task = 0\n", "samples_per_task"),
        ("actor = { type = \"greedy\" }\n", "acting.actor.type"),
        ("usc = { backend = \"y\" }\n", "acting.usc.backend"),
        ("vot = true\n", "did you mean `vote`"),
    ] {
        let (line, _) = refused_experiment(tmp.path(), "bad.toml", &format!("{head}{rest}"));
        assert!(line.contains(says), "{rest}: {line}");
        assert!(line.contains("bad.toml:"), "{line}");
    }
}
