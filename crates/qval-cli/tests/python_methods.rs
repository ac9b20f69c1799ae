//! Methods written in Python (`[[methods]] type = "python"`), run as a user runs them:
//! the shipped numpy scorer ranks as the built-in heuristic does; a faulty scorer fails
//! exactly the points that raise or hang, with the reason; a killed run resumes without
//! scoring again what it finished and leaves no worker behind; a missing module or package
//! is refused before any work, at its key, naming the path problem or the pip command; the
//! same entry guides the acting experiment as the built-in heuristic does.
//!
//! Needs Python 3 with numpy (`scripts/test.sh` installs it).

mod common;

use common::python::{NUMPY, need};
use common::{exit_within, frozenlake, qval_run, refused_experiment, repo, rho, rows, succeeded, summary, wait_for};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A prediction file's rows by point id: the value (NaN as null) and the error.
fn predictions(run: &Path, method: &str) -> BTreeMap<String, (Option<f64>, Option<String>)> {
    rows(&run.join("predictions").join(format!("{method}.jsonl")))
        .into_iter()
        .map(|v: Value| {
            (
                v["point_id"].as_str().unwrap().to_string(),
                (v["value"].as_f64(), v["error"].as_str().map(str::to_string)),
            )
        })
        .collect()
}

/// A temp folder holding the test scorers (`faulty.py`) beside the experiment files.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("experiments/python/faulty.py"),
        dir.path().join("faulty.py"),
    )
    .unwrap();
    dir
}

/// A small FrozenLake experiment with `methods` after its labels.
fn experiment(dir: &Path, name: &str, trajectories: usize, methods: &str) -> PathBuf {
    let text = frozenlake(
        name,
        3,
        trajectories,
        &format!(
            "sampling = {{ per_trajectory = 4, strategy = \"random\" }}\n\n[[labels]]\nsignal = \"q\"\n\n{methods}"
        ),
    );
    common::write_experiment(dir, &format!("{name}.toml"), &text)
}

#[test]
fn the_numpy_distance_scorer_gives_the_builtin_heuristics_scores_and_rho() {
    need(&NUMPY);
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let stdout = succeeded(qval_run("experiments/python-method.toml", &run).current_dir(repo()));
    assert!(stdout.contains("| py-distance-q |"), "{stdout}");
    let s = summary(&run);
    let (builtin, python) = (rho(&s, "mvmc-q", "distance-q"), rho(&s, "mvmc-q", "py-distance-q"));
    assert!(builtin > 0.99, "{builtin}");
    assert_eq!(builtin.to_bits(), python.to_bits(), "{builtin} vs {python}");
    let (a, b) = (predictions(&run, "distance-q"), predictions(&run, "py-distance-q"));
    assert_eq!(a.len(), 238);
    assert_eq!(a, b, "the Python scorer's values differ from the heuristic's");
}

#[test]
fn a_faulty_scorer_fails_exactly_the_points_that_raise_or_hang_with_the_reason() {
    need(&NUMPY);
    let dir = folder();
    let run = dir.path().join("run");
    // The points first (a run with the random baseline only), to choose the faulty ones.
    let file = experiment(dir.path(), "faulty", 12, "[[methods]]\ntype = \"random\"\n");
    succeeded(qval_run(&file, &run));
    let ids: Vec<String> = rows(&run.join("points.jsonl"))
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.len() > 30, "{}", ids.len());
    let (raise, hang) = (vec![ids[3].clone(), ids[20].clone()], ids[11].clone());
    let methods = format!(
        "[[methods]]\ntype = \"random\"\n\n[[methods]]\ntype = \"python\"\nname = \"faulty\"\nmodule = \"faulty.py:Faulty\"\n\
         batch_size = 8\nworkers = 2\ntimeout_seconds = 1.0\nparams = {{ raise_on = {raise:?}, hang_on = [{hang:?}] }}\n"
    );
    let file = experiment(dir.path(), "faulty", 12, &methods);
    let stdout = succeeded(qval_run(&file, &run));
    assert!(stdout.contains("3 NaN"), "{stdout}");
    let got = predictions(&run, "faulty-q");
    let texts: BTreeMap<String, usize> = rows(&run.join("points.jsonl"))
        .iter()
        .map(|p| {
            let text = p["next_observation"]["text"].as_str().unwrap();
            (p["id"].as_str().unwrap().to_string(), text.chars().count())
        })
        .collect();
    assert_eq!(got.len(), ids.len());
    for (id, (value, error)) in &got {
        if raise.contains(id) {
            let e = error.as_deref().unwrap_or_default();
            assert!(value.is_none(), "{id}: {value:?}");
            assert!(e.contains(&format!("ValueError: cannot score {id}")), "{id}: {e}");
            assert!(e.contains("Traceback") && e.contains("faulty.py"), "{id}: {e}");
        } else if *id == hang {
            let e = error.as_deref().unwrap_or_default();
            assert!(value.is_none(), "{id}: {value:?}");
            assert!(e.contains("did not answer `score` within 1.0 s"), "{id}: {e}");
        } else {
            assert_eq!(error, &None, "{id}");
            // Python counts characters, as `chars()` does.
            assert_eq!(*value, Some(texts[id] as f64), "{id}");
        }
    }
}

/// The ids a scorer's log names, one per line.
fn logged(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let out = std::process::Command::new("pgrep")
        .args(["-af", needle])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_killed_run_resumes_without_scoring_finished_points_again_and_leaves_no_worker() {
    need(&NUMPY);
    let dir = folder();
    let run = dir.path().join("run");
    let methods = "[[methods]]\ntype = \"python\"\nname = \"slow\"\nmodule = \"faulty.py:Faulty\"\nbatch_size = 4\n\
                   params = { delay = 0.02 }\n";
    let file = experiment(dir.path(), "slow", 60, methods);
    let (first_log, second_log) = (dir.path().join("first.log"), dir.path().join("second.log"));
    let preds = run.join("predictions/slow-q.jsonl");
    let partial = run.join("predictions/slow-q.jsonl.partial");
    let mut child = qval_run(&file, &run)
        .env("FAULTY_LOG", &first_log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed (SIGKILL) once predictions are checkpointed, before the end.
    wait_for(
        &mut child,
        Duration::from_secs(120),
        "a checkpoint of predictions",
        || common::line_count(&partial) > 1,
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!preds.exists(), "the run ended before it was killed");
    let finished: BTreeSet<String> = rows(&partial)
        .iter()
        .map(|v| v["point_id"].as_str().unwrap().to_string())
        .collect();
    let total = common::line_count(&run.join("points.jsonl")) - 1;
    assert!(
        !finished.is_empty() && finished.len() < total,
        "{} of {total}",
        finished.len()
    );
    // The workers notice that qval is gone (their stdin closes) and end.
    let needle = dir.path().join("faulty.py");
    let needle = needle.to_str().unwrap();
    let t = std::time::Instant::now();
    while !processes_with(needle).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "workers left: {:?}",
            processes_with(needle)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut again = qval_run(&file, &run);
    again.env("FAULTY_LOG", &second_log);
    let mut child = again.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    assert!(exit_within(&mut child, Duration::from_secs(120)).is_some_and(|s| s.success()));
    let rescored: Vec<String> = logged(&second_log)
        .into_iter()
        .filter(|id| finished.contains(id))
        .collect();
    assert!(rescored.is_empty(), "scored again after the resume: {rescored:?}");
    let done = predictions(&run, "slow-q");
    assert_eq!(done.len(), total);
    assert!(done.values().all(|(v, e)| v.is_some() && e.is_none()));
    assert_eq!(logged(&second_log).len(), total - finished.len());
}

#[test]
fn a_missing_module_or_package_is_refused_before_work_at_its_key() {
    need(&NUMPY);
    let dir = folder();
    std::fs::write(
        dir.path().join("needs_dep.py"),
        "import not_installed_pkg_xyz\nfrom qval_bridge.methods import Method\n\nclass M(Method):\n    pass\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("not_a_method.py"),
        "class M:\n    def score(self, point, context):\n        return 0.0\n",
    )
    .unwrap();
    for (module, says) in [
        ("no_such_pkg.scorer:X", "no module `no_such_pkg` on the path"),
        ("needs_dep.py:M", "install it with `pip install not_installed_pkg_xyz`"),
        ("not_a_method.py:M", "is not a subclass of qval_bridge.methods.Method"),
        ("missing.py:M", "no such file"),
        ("faulty", "give `package.module:Class`"),
    ] {
        let text = frozenlake(
            "refused",
            3,
            4,
            &format!("\n[[labels]]\nsignal = \"q\"\n\n[[methods]]\ntype = \"python\"\nmodule = \"{module}\"\n"),
        );
        let (msg, _) = refused_experiment(dir.path(), "refused.toml", &text);
        // The `module` key's line.
        assert!(msg.contains("refused.toml:17:"), "{module}: {msg}");
        assert!(
            msg.contains("`methods[0].module`") && msg.contains(says),
            "{module}: {msg}"
        );
    }
}

#[test]
fn a_python_method_guides_the_acting_experiment_as_the_builtin_heuristic_does() {
    need(&NUMPY);
    let dir = tempfile::tempdir().unwrap();
    let scorer = repo().join("experiments/python/frozenlake_distance.py");
    let text = std::fs::read_to_string(repo().join("experiments/python-method.toml"))
        .unwrap()
        .replace("python/frozenlake_distance.py", scorer.to_str().unwrap())
        + "\n[acting]\nactor = { type = \"epsilon-greedy\", epsilon = 0.5 }\nk = [1, 4]\n\
           guided = [\"distance\", \"py-distance\"]\nsamples_per_task = 2\n";
    let file = common::write_experiment(dir.path(), "acting.toml", &text);
    let run = dir.path().join("run");
    let stdout = succeeded(qval_run(&file, &run));
    // `| method | k | episodes | success [CI] | ...`: the same success at k = 4 (the episodes
    // differ where tied scores are broken by draws seeded per strategy).
    let row = |name: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {name} | 4 |")))
            .unwrap_or_else(|| panic!("no k = 4 row of {name}:\n{stdout}"));
        line.split('|').skip(2).take(4).map(|c| c.trim().to_string()).collect()
    };
    let (builtin, python) = (row("distance-q"), row("py-distance-q"));
    assert_eq!(builtin, python);
    assert!(
        builtin[2].starts_with("1.000") || builtin[2].starts_with("0.9"),
        "{builtin:?}"
    );
    // Every candidate the Python method saw got a score.
    let episodes = std::fs::read_to_string(run.join("acting/py-distance-q-k4.jsonl")).unwrap();
    let scores: Vec<f64> = episodes
        .lines()
        .skip(1)
        .flat_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["steps"].as_array().unwrap().clone()
        })
        .flat_map(|s| s["candidates"].as_array().unwrap().clone())
        .map(|c| c["score"].as_f64().unwrap_or(f64::NAN))
        .collect();
    assert!(
        scores.len() > 100 && scores.iter().all(|x| x.is_finite()),
        "{}",
        scores.len()
    );
}

#[test]
fn a_ranking_python_method_gets_every_candidate_of_a_state_together() {
    need(&NUMPY);
    let dir = folder();
    std::fs::copy(
        repo().join("experiments/python/frozenlake_distance.py"),
        dir.path().join("frozenlake_distance.py"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ranker.py"),
        "import os\nfrom frozenlake_distance import Distance\n\n\
         class Ranker(Distance):\n    ranks = True\n\n    def rank(self, candidates, context):\n        \
         with open(os.environ['RANK_LOG'], 'a') as f:\n            \
         f.write(f\"{len(candidates)} {len({c['candidate_of'] for c in candidates})}\\n\")\n        \
         return [self.value(c['next_state']) for c in candidates]\n",
    )
    .unwrap();
    // 60 states of 4 candidates each: 240 candidates, which the predict stage hands over 64
    // at a time, so states would be cut if the method did not gather them.
    let methods = "[[methods]]\ntype = \"python\"\nname = \"ranker\"\nmodule = \"ranker.py:Ranker\"\nranking = true\n\
                   points = 60\nbatch_size = 64\n";
    let file = experiment(dir.path(), "ranker", 30, methods);
    let run = dir.path().join("run");
    let log = dir.path().join("rank.log");
    let stdout = succeeded(qval_run(&file, &run).env("RANK_LOG", &log));
    let calls = std::fs::read_to_string(&log).unwrap();
    let sizes: Vec<(usize, usize)> = calls
        .lines()
        .map(|l| {
            let (a, b) = l.split_once(' ').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    assert_eq!(sizes.len(), 60, "each state ranked once:\n{calls}");
    assert!(sizes.iter().all(|&(n, states)| n == 4 && states == 1), "{calls}");
    let s = summary(&run);
    let r = rho(&s, "ranking-mvmc-q", "ranker-q");
    assert!(r > 0.8, "per-state rho {r}\n{stdout}");
}
