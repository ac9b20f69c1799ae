//! `qval run` end to end: every method type against the loopback oracle, SIGKILL and
//! resume, growing an experiment, refusing changed settings, and bad experiment files.

mod common;

use common::{
    ServedOracle, distinct_prompts, entry, frozenlake, json, line_count, oracle, oracle_backend, output, qval_run,
    refused, refused_experiment, rho, rows, run_ok, s, succeeded, summary, wait_for, write_experiment,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use qval_testkit::{ServerConfig, TestServer};

/// A small FrozenLake experiment: 24 trajectories, 5 points each, Q and V labels, the oracle
/// backend on `server`, then `methods`.
fn experiment(dir: &Path, name: &str, methods: &str, server: &TestServer) -> PathBuf {
    let rest = format!(
        r#"
[[labels]]
rollouts = 1

[[labels]]
signal = "v"
rollouts = 1
{backend}
[evaluate]
bootstrap = 200
{methods}
"#,
        backend = oracle_backend(
            server,
            "logprobs = true\nscoring = true\nconcurrency = 8\nmax_attempts = 2\n"
        )
    );
    write_experiment(dir, &format!("{name}.toml"), &frozenlake(name, 7, 24, &rest))
}

#[test]
fn every_method_type_runs_through_qval_run_against_the_oracle() {
    let server = oracle(Duration::ZERO, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let methods = r#"
[[methods]]
type = "random"
signal = ["q", "v"]

[[methods]]
type = "heuristic"

[[methods]]
type = "direct"
backend = "oracle"
points = 60

[[methods]]
type = "direct"
name = "direct-preset"
prompt_preset = ["v0", "v1"]
backend = "oracle"
points = 60

[[methods]]
type = "direct"
name = "direct-multi"
mode = "multi"
n = 2
backend = "oracle"
points = 60

[[methods]]
type = "direct"
name = "direct-batched"
mode = "batched"
n = 4
backend = "oracle"
points = 60

[[methods]]
type = "direct"
name = "direct-sequential"
mode = "sequential"
n = 4
backend = "oracle"
points = 60

[[methods]]
type = "gvl"
backend = "oracle"
points = 60

[[methods]]
type = "verifier"
backend = "oracle"
points = 60

[[methods]]
type = "ranking"
backend = "oracle"
points = 30

[[methods]]
type = "sdpo"
backend = "oracle"
points = 30

[[methods]]
type = "sdpo-gt"
backend = "oracle"
points = 30

[[methods]]
type = "delta-belief"
backend = "oracle"
points = 30

[[methods]]
type = "codegen"
samples = 2
signal = ["q", "v"]
backend = "oracle"
points = 60

[[methods]]
type = "codegen-avg"
samples = 2
backend = "oracle"
points = 60

[[methods]]
type = "eureka"
iterations = 1
candidates = 2
backend = "oracle"
points = 60
"#;
    let file = experiment(dir.path(), "all", methods, &server);
    let run = dir.path().join("run");
    let stdout = succeeded(qval_run(&file, &run));
    let s = summary(&run);
    // The oracle answers true values: the families it answers exactly rank as the labels do.
    for (m, floor) in [
        ("heuristic-q", 0.9),
        ("direct-q", 0.95),
        ("direct-multi-q", 0.95),
        ("direct-preset-q-v0", 0.95),
        ("direct-preset-q-v1", 0.95),
        ("direct-batched-q", 0.95),
        ("direct-sequential-q", 0.95),
        ("gvl-q", 0.95),
        ("verifier-q", 0.9),
        ("codegen-q-s00", 0.9),
        ("codegen-avg-q", 0.9),
        ("eureka-q", 0.9),
    ] {
        let r = rho(&s, "mvmc-q", m);
        assert!(r >= floor, "{m}: rho {r} < {floor}\n{stdout}");
    }
    let v = rho(&s, "mvmc-v", "codegen-v-s00");
    assert!(v >= 0.5, "codegen-v: rho {v}");
    // The published sample group: aggregates and the samples' entries.
    let group = &s["estimations"]["mvmc-q"]["methods"]["codegen-q"];
    assert_eq!(group["num_samples"], 2, "{group}");
    assert_eq!(group["per_sample"].as_array().unwrap().len(), 2, "{group}");
    assert_eq!(group["aggregate_correlations"]["spearman"]["num_samples"], 2, "{group}");
    let random = rho(&s, "mvmc-q", "random-q");
    assert!(random.is_finite() && random.abs() < 0.4, "random-q rho {random}");
    assert!(
        s["estimations"]["mvmc-q"]["methods"].get("random-v").is_none(),
        "a V method is not compared with Q labels"
    );
    ranking_methods_rank_states_as_the_labels_do(&s, &stdout);
    // The table shows every method, and the run folder holds the manifest and the code.
    for m in ["random-q", "direct-batched-q", "ranking-q", "codegen-q-s01", "eureka-q"] {
        assert!(stdout.contains(&format!("| {m} |")), "no row for {m}:\n{stdout}");
    }
    let manifest = json(&run.join("run.json"));
    assert_eq!(manifest["stages"]["predict:gvl-q"]["finished"], true);
    assert!(manifest["stages"]["predict:gvl-q"]["requests"].as_u64().unwrap() >= 60);
    assert!(run.join("methods/codegen-q/sample-00.py").exists());
    assert!(run.join("methods/eureka-q/eureka.json").exists());
}

/// The ranking label set of the oracle run: 30 states, ranked by the ranking method and the
/// scoring families as the labels rank them.
fn ranking_methods_rank_states_as_the_labels_do(s: &serde_json::Value, stdout: &str) {
    let ranking = &s["estimations"]["ranking-mvmc-q"];
    assert_eq!(ranking["granularity"], "ranking");
    let mean = rho(s, "ranking-mvmc-q", "ranking-q");
    assert!(mean >= 0.9, "ranking per-state rho {mean}");
    assert_eq!(ranking["candidate_counts"].as_array().unwrap().len(), 30);
    for m in ["sdpo-q", "sdpo-gt-q", "delta-belief-q"] {
        let mean = rho(s, "ranking-mvmc-q", m);
        assert!(mean >= 0.8, "{m}: per-state rho {mean}\n{stdout}");
    }
}

#[test]
fn a_run_killed_during_prediction_resumes_to_the_same_summary_without_asking_twice() {
    let dir = tempfile::tempdir().unwrap();
    let methods = r#"
[[methods]]
type = "random"

[[methods]]
type = "direct"
backend = "oracle"
points = 100
"#;
    // The reference: an uninterrupted run against its own server.
    let reference_server = oracle(Duration::from_millis(15), vec![]);
    let one_at_a_time = |file: &Path| {
        let text = std::fs::read_to_string(file).unwrap();
        std::fs::write(file, text.replace("concurrency = 8", "concurrency = 1")).unwrap();
    };
    let file = experiment(dir.path(), "kill", methods, &reference_server);
    one_at_a_time(&file);
    let reference = dir.path().join("reference");
    succeeded(qval_run(&file, &reference).arg("-q"));

    // The same experiment against a fresh server, one request at a time, killed mid-stage.
    let server = oracle(Duration::from_millis(15), vec![]);
    let file = experiment(dir.path(), "kill", methods, &server);
    one_at_a_time(&file);
    let run = dir.path().join("killed");
    let mut child = qval_run(&file, &run).arg("-q").spawn().unwrap();
    let log = run.join("llm-requests.jsonl");
    wait_for(&mut child, Duration::from_secs(60), "30 requests were logged", || {
        line_count(&log) >= 30
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let answered = line_count(&log);
    assert!(answered < 100, "killed too late: {answered} requests answered");
    assert!(!run.join("summary.json").exists());
    let before = server.requests();
    succeeded(qval_run(&file, &run).arg("-q"));
    assert_eq!(
        std::fs::read(run.join("summary.json")).unwrap(),
        std::fs::read(reference.join("summary.json")).unwrap(),
        "the resumed summary differs from the uninterrupted one"
    );
    // Every answer received before the kill came from the cache; only the one request in
    // flight at the kill (concurrency 1) may have been sent again. (Identical prompts, the
    // same state and action on the same map, are asked once: the reference run's count.)
    let expected = distinct_prompts(&reference_server);
    assert_eq!(reference_server.requests(), expected, "one request per distinct prompt");
    assert_eq!(distinct_prompts(&server), expected);
    assert!(
        server.requests() <= reference_server.requests() + 1,
        "{} requests, {} uninterrupted ({before} before the kill, {answered} answered)",
        server.requests(),
        reference_server.requests()
    );
}

#[test]
fn a_new_method_runs_alone_and_a_changed_finished_stage_is_refused() {
    let server = oracle(Duration::ZERO, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let base = r#"
[[methods]]
type = "random"

[[methods]]
type = "direct"
backend = "oracle"
points = 60
"#;
    let file = experiment(dir.path(), "grow", base, &server);
    let run = dir.path().join("run");
    let r = run.to_str().unwrap();
    succeeded(qval_run(&file, r));
    let first = server.requests();
    assert_eq!(first, distinct_prompts(&server), "one request per distinct prompt");
    assert!(first > 40, "{first}");
    let manifest = |run: &Path| json(&run.join("run.json"));
    let m1 = manifest(&run);

    // Add a method: only it runs.
    let grown = base.to_string() + "\n[[methods]]\ntype = \"gvl\"\nbackend = \"oracle\"\npoints = 50\n";
    let file = experiment(dir.path(), "grow", &grown, &server);
    let stdout = succeeded(qval_run(&file, r));
    let gvl = server.requests() - first;
    assert!(gvl > 40 && gvl <= 50, "only gvl's requests: {gvl}");
    assert_eq!(server.requests(), distinct_prompts(&server));
    let m2 = manifest(&run);
    for stage in [
        "collect",
        "sample",
        "label:mvmc-q",
        "predict:direct-q",
        "predict:random-q",
    ] {
        assert_eq!(m1["stages"][stage], m2["stages"][stage], "{stage} was redone");
    }
    assert!(stdout.contains("4. predict   gvl-q"), "{stdout}");
    assert!(stdout.contains("4. predict   direct-q (finished earlier)"), "{stdout}");
    assert!(summary(&run)["estimations"]["mvmc-q"]["methods"].get("gvl-q").is_some());

    // Change a finished stage's setting: refused, naming the stage and the setting.
    let changed = std::fs::read_to_string(&file)
        .unwrap()
        .replace("epsilon = 0.1", "epsilon = 0.2");
    std::fs::write(&file, changed).unwrap();
    let err = refused(&["run", file.to_str().unwrap(), "--out", r], 2);
    assert!(
        err.contains("stage `collect`") && err.contains("collector.epsilon"),
        "{err}"
    );
    assert!(err.contains("--redo collect"), "{err}");
    // ... and redone on request: everything after collection runs again.
    succeeded(qval_run(&file, r).args(["--redo", "collect", "-q"]));
    let m3 = manifest(&run);
    assert_ne!(m3["stages"]["collect"]["settings"], m1["stages"]["collect"]["settings"]);
    assert_eq!(m3["stages"]["predict:gvl-q"]["finished"], true);
}

#[test]
fn bad_experiment_files_are_refused_before_any_work_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let head = "name = \"bad\"\n[environment]\ntype = \"frozenlake\"\n";
    let cases = [
        (
            format!("{head}[[methods]]\ntype = \"diret\"\n"),
            "bad.toml:5:1",
            vec!["unknown method type `diret`", "did you mean `direct`?", "`gvl`"],
        ),
        (
            format!(
                "{head}[[methods]]\ntype = \"codegen\"\nsampels = 3\nbackend = \"x\"\n[backends.x]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n"
            ),
            "bad.toml:6:1",
            vec!["unknown key `sampels`", "did you mean `samples`?"],
        ),
        (
            format!("{head}[[labels]]\nrollouts = 0\n"),
            "bad.toml:5:1",
            vec!["`labels[0].rollouts`", "give at least 1"],
        ),
        (
            format!("{head}[[labels]]\ngamma = 1.5\n"),
            "bad.toml:5:1",
            vec!["gamma", "(0, 1]"],
        ),
        (
            format!(
                "{head}[[methods]]\ntype = \"direct\"\nbackend = \"vllm\"\n[backends.vlm]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n"
            ),
            "bad.toml:6:1",
            vec!["unknown backend `vllm`", "did you mean `vlm`?"],
        ),
        (
            format!("{head}[[methods]]\ntype = \"direct\"\n"),
            "bad.toml:4:",
            vec!["needs an LLM backend"],
        ),
        (
            format!("backends_file = \"missing.toml\"\n{head}"),
            "bad.toml:1:1",
            vec!["no such file", "missing.toml"],
        ),
        (
            format!("{head}slipery = true\n"),
            "bad.toml:4:1",
            vec!["unknown key `slipery`", "did you mean `slippery`?"],
        ),
        (
            format!("{head}[dataset]\nsampling = {{ strategy = \"uniformly\" }}\n"),
            "bad.toml:5:",
            vec!["unknown strategy `uniformly`", "did you mean `uniform`?"],
        ),
        (
            format!("nam = \"x\"\n{head}"),
            "bad.toml:1:1",
            vec!["unknown key `nam`", "did you mean `name`?"],
        ),
    ];
    refused_with(dir.path(), &cases);
}

/// Each text refused with its position and every wanted part of the message.
fn refused_with(d: &Path, cases: &[(String, &str, Vec<&str>)]) {
    for (text, at, wanted) in cases {
        let (err, _) = refused_experiment(d, "bad.toml", text);
        assert!(
            err.starts_with("error: ") && err.contains(at),
            "expected {at}: {err}\n{text}"
        );
        for w in wanted {
            assert!(err.contains(w), "expected `{w}` in: {err}\n{text}");
        }
    }
}

#[test]
fn bad_method_and_environment_entries_are_refused_before_any_work_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let head = "name = \"bad\"\n[environment]\ntype = \"frozenlake\"\n";
    let cases = [
        (
            format!(
                "{head}[[methods]]\ntype = \"verifier\"\nsignal = \"v\"\nbackend = \"x\"\n[backends.x]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\nlogprobs = true\n"
            ),
            "bad.toml:6:1",
            vec!["does not estimate v"],
        ),
        (
            format!(
                "{head}[[methods]]\ntype = \"verifier\"\nbackend = \"x\"\n[backends.x]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n"
            ),
            "bad.toml:6:1",
            vec!["`verifier` reads log-probabilities", "`logprobs = true`"],
        ),
        (
            format!(
                "{head}[[methods]]\ntype = \"direct\"\nmode = \"batch\"\nbackend = \"x\"\n[backends.x]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n"
            ),
            "bad.toml:6:1",
            vec!["unknown mode `batch`", "`batched`"],
        ),
        (
            format!(
                "{head}[[methods]]\ntype = \"verifier\"\nbackend = \"x\"\ncriteria = [\"frozen_lake_correctness\", \"frozen_lake_hazard_avodance\"]\n[backends.x]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\nlogprobs = true\n"
            ),
            "bad.toml:7:",
            vec![
                "unknown verifier criterion `frozen_lake_hazard_avodance`",
                "did you mean `frozen_lake_hazard_avoidance`?",
            ],
        ),
        (
            format!(
                "{head}[[methods]]\ntype = \"verifier\"\nbackend = \"x\"\nnum_verifications = 0\n[backends.x]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\nlogprobs = true\n"
            ),
            "bad.toml:7:",
            vec!["`num_verifications` must be at least 1"],
        ),
        (
            "name = \"bad\"\n[environment]\ntype = \"frozen\"\n".to_string(),
            "bad.toml:3:1",
            vec!["unknown environment type `frozen`", "did you mean `frozenlake`?"],
        ),
        (
            format!(
                "{head}[[methods]]\ntype = \"sdpo\"\nbackend = \"x\"\n[backends.x]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n"
            ),
            "bad.toml:6:1",
            vec![
                "`sdpo` scores given continuations",
                "backend `x` lacks the capability `scoring`",
                "vLLM",
            ],
        ),
        (
            format!(
                "{head}[[methods]]\ntype = \"direct\"\nprompt_preset = \"v3\"\nbackend = \"x\"\n[backends.x]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n"
            ),
            "bad.toml:6:1",
            vec!["`v3` is not a prompt preset", "v0, v1 or v2"],
        ),
        (
            format!("{head}[[methods]]\ntype = \"random\"\nprompt_preset = \"v0\"\n"),
            "bad.toml:6:1",
            vec!["`random` sends no prompts"],
        ),
        (
            format!("{head}[[methods]]\ntype = \"heuristic\"\ninclude_next_state = false\n"),
            "bad.toml:6:1",
            vec!["`heuristic` sends no prompts"],
        ),
        (
            "name = \"bad\"\n[environment]\ntype = \"frozenlake\"\ntasks = \"published\"\n".to_string(),
            "bad.toml:4:1",
            vec!["the published tasks play the published maps", "maps = \"published\""],
        ),
        (
            "name = \"bad\"\n[environment]\ntype = \"frozenlake\"\nmaps = \"published\"\nmap_seed = 7\n".to_string(),
            "bad.toml:5:1",
            vec!["`map_seed` is for qval's own random maps"],
        ),
        (
            "name = \"bad\"\n[environment]\ntype = \"frozenlake\"\nmaps = \"published\"\ntasks = \"publish\"\n"
                .to_string(),
            "bad.toml:5:1",
            vec!["unknown tasks `publish`", "did you mean `published`?"],
        ),
        (
            "name = \"bad\"\n[environment\n".to_string(),
            "bad.toml:2:",
            vec!["unclosed table"],
        ),
    ];
    refused_with(dir.path(), &cases);
}

#[test]
fn base_url_and_model_keep_the_backend_settings_of_the_file() {
    let server = oracle(Duration::ZERO, vec![]);
    let dir = tempfile::tempdir().unwrap();
    // The file's backend gives log-probabilities but points nowhere; the command line moves it.
    let methods = "\n[[methods]]\ntype = \"verifier\"\nbackend = \"oracle\"\npoints = 60\n";
    let file = experiment(dir.path(), "moved", methods, &server);
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(&server.base_url(), "http://127.0.0.1:9/v1");
    std::fs::write(&file, text).unwrap();
    let run = dir.path().join("run");
    succeeded(qval_run(&file, &run).args(["--base-url", &server.base_url(), "--model", "oracle", "-q"]));
    let r = rho(&summary(&run), "mvmc-q", "verifier-q");
    assert!(r >= 0.9, "verifier-q rho {r}");
    assert_eq!(
        server.requests(),
        distinct_prompts(&server),
        "one request per distinct prompt"
    );
    // --only takes an entry's name, and suggests one.
    let out = qval_run(&file, &run).args(["--only", "verifer"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean `verifier`?"), "{err}");
}

#[test]
fn listing_into_a_closed_pipe_and_unknown_paths_end_quietly_with_one_line() {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("'{}' methods | head -1", env!("CARGO_BIN_EXE_qval")))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{:?}", out);
    // A server that is not there: one line, before any point is scored.
    let dir = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let file = write_experiment(
        dir.path(),
        "gone.toml",
        &format!(
            "name = \"gone\"\n[environment]\ntype = \"frozenlake\"\nmaps = 2\n[dataset]\ntrajectories = 12\n[[labels]]\nrollouts = 1\n[[methods]]\ntype = \"direct\"\nbackend = \"x\"\n[backends.x]\nbase_url = \"http://{free}/v1\"\nmodel = \"m\"\n"
        ),
    );
    let err = refused(&["run", s(&file), "--out", s(&dir.path().join("run"))], 2);
    assert!(err.contains("unreachable") && err.contains(&free.to_string()), "{err}");
    let err = refused(&["evaluate", "/nonexistent/run"], 2);
    assert!(err.contains("/nonexistent/run"), "{err}");
}

#[test]
fn the_shipped_experiments_are_valid() {
    // Every shipped experiment file passes the checks (the plan is built, no work is done).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
    let mut files = vec![root.join("quickstart.toml")];
    for e in std::fs::read_dir(root.join("qval-v1")).unwrap() {
        files.push(e.unwrap().path());
    }
    assert!(files.len() >= 4);
    let registry = qval_runner::Registry::builtin();
    for f in files {
        let (exp, source) = qval_runner::spec::load(&f).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let plan = qval_runner::Plan::new(
            exp,
            &source,
            &registry,
            qval_runner::RunOptions {
                out: Some(dir.path().to_path_buf()),
                ..Default::default()
            },
        );
        match plan {
            Ok(p) => assert!(!p.methods.is_empty(), "{}", f.display()),
            // The embedding family needs the minilm feature; nothing else may fail.
            Err(e) if !cfg!(feature = "minilm") && e.to_string().contains("--features minilm") => {}
            Err(e) => panic!("{}: {e}", f.display()),
        }
    }
}

#[test]
fn report_preview_and_evaluate_work_on_run_folders() {
    let server = oracle(Duration::ZERO, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let methods = "\n[[methods]]\ntype = \"random\"\n\n[[methods]]\ntype = \"direct\"\nbackend = \"oracle\"\npoints = 60\n\n[[methods]]\ntype = \"ranking\"\nbackend = \"oracle\"\npoints = 5\n";
    let file = experiment(dir.path(), "rep", methods, &server);
    let (a, b) = (dir.path().join("run-a"), dir.path().join("run-b"));
    succeeded(qval_run(&file, &a).arg("-q"));
    let text = std::fs::read_to_string(&file).unwrap().replace("seed = 7", "seed = 8");
    std::fs::write(&file, text).unwrap();
    succeeded(qval_run(&file, &b).arg("-q"));

    // One table across runs.
    let rep = dir.path().join("rep");
    run_ok(&[
        "report",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        rep.to_str().unwrap(),
    ]);
    let md = std::fs::read_to_string(rep.join("report.md")).unwrap();
    assert!(
        md.contains("run-a") && md.contains("run-b") && md.contains("direct-q"),
        "{md}"
    );
    for f in ["report.csv", "report.html", "heatmap.png"] {
        assert!(rep.join(f).metadata().unwrap().len() > 100, "{f}");
    }

    // The exact prompts, no request sent.
    let before = server.requests();
    let text = run_ok(&["preview", a.to_str().unwrap(), "--method", "ranking-q", "--points", "1"]);
    assert!(
        text.contains("##### ranking-q request 1 of 1") && text.contains("## Actions to rank"),
        "{text}"
    );
    assert_eq!(server.requests(), before, "a preview sends nothing");

    // Re-evaluating the folder gives the same figures as the run did.
    let stored = summary(&a);
    run_ok(&["evaluate", a.to_str().unwrap(), "--bootstrap", "200"]);
    let again = summary(&a);
    assert_eq!(stored["estimations"], again["estimations"]);

    // Labels copied from another run are refused, naming both files (the first method in
    // the experiment's order).
    std::fs::copy(b.join("labels/mvmc-q.jsonl"), a.join("labels/mvmc-q.jsonl")).unwrap();
    let out = output(&["evaluate", a.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("other points") && err.contains("mvmc-q.jsonl") && err.contains("random-q.jsonl"),
        "{err}"
    );
}

#[test]
fn exact_labels_are_a_label_set_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_experiment(
        dir.path(),
        "exact.toml",
        "name = \"exact\"\n[environment]\ntype = \"frozenlake\"\nmaps = 4\n[dataset]\ntrajectories = 30\n\
         [[labels]]\nmethod = \"exact\"\n[[labels]]\nrollouts = 1\n[evaluate]\nbootstrap = 0\n\
         [[methods]]\ntype = \"heuristic\"\n[[methods]]\ntype = \"random\"\n",
    );
    let run = dir.path().join("run");
    let text = succeeded(qval_run(&file, &run));
    assert!(
        text.contains("3. label     exact-q:") && text.contains("(exact)"),
        "{text}"
    );
    // On deterministic maps one MVMC rollout is exact: the two label sets agree point by point.
    let s = summary(&run);
    assert_eq!(
        s["estimations"]["exact-q"]["ground_truth_values"],
        s["estimations"]["mvmc-q"]["ground_truth_values"]
    );
    assert_eq!(
        s["estimations"]["exact-q"]["qval"]["point_ids"],
        s["estimations"]["mvmc-q"]["qval"]["point_ids"]
    );
    // The two label sets compared with each other: identical, rho 1.
    let gg = &s["gt_vs_gt_estimations"];
    let pair = if gg.get("exact-q").is_some() {
        &gg["exact-q"]["methods"]["mvmc-q"]
    } else {
        &gg["mvmc-q"]["methods"]["exact-q"]
    };
    let g = &pair["correlations"]["spearman"];
    assert!((g["correlation"].as_f64().unwrap() - 1.0).abs() < 1e-12, "{g}");
    let r = rho(&s, "exact-q", "heuristic-q");
    assert!(r > 0.9, "heuristic rho {r}");

    // Exported as the published testbed's prediction files and evaluated from them (by
    // position): the same figure.
    let files = dir.path().join("qval_files");
    run_ok(&[
        "evaluate",
        run.to_str().unwrap(),
        "--bootstrap",
        "0",
        "--export",
        files.to_str().unwrap(),
    ]);
    let (labels, preds) = qval_metrics::read_prediction_folder(&files).unwrap();
    assert_eq!(labels.len(), 2);
    assert_eq!(preds.len(), 2);
    let cfg = qval_metrics::EvaluateConfig {
        bootstrap: None,
        ..Default::default()
    };
    let again = qval_metrics::evaluate(&labels, &preds, &cfg).unwrap();
    let f = again.estimations["exact-q"].method("heuristic-q").unwrap();
    assert!((f.correlations.spearman.as_ref().unwrap().correlation.unwrap() - r).abs() < 1e-12);
}

#[test]
fn serve_oracle_and_check_backend_talk_to_each_other() {
    // The server keeps its output open: a closed pipe ends it (as `| head` should).
    let mut server = ServedOracle::start(&["--seconds", "30"]);
    let second = server.next_line();
    assert!(second.contains("serving the FrozenLake oracle"), "{second}");
    let out = output(&["check-backend", "--base-url", &server.url, "--model", "oracle"]);
    drop(server);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("model    oracle") && text.contains("answer   "), "{text}");
    assert!(!text.contains("unparseable"), "{text}");
}

/// On slippery 4x4 FrozenLake with k = 4 rollouts the labels are noisy: the two-level bootstrap
/// (points, then each point's returns) gives a wider interval than resampling points alone.
#[test]
fn label_noise_widens_the_interval_on_slippery_frozenlake() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_experiment(
        dir.path(),
        "slippery.toml",
        "name = \"slippery\"\nseed = 3\n[environment]\ntype = \"frozenlake\"\nmaps = 8\nsize = 4\nslippery = true\n\
         [dataset]\ntrajectories = 60\n[[labels]]\nrollouts = 4\n[evaluate]\nbootstrap = 1000\n\
         [[methods]]\ntype = \"heuristic\"\n",
    );
    let run = dir.path().join("run");
    succeeded(qval_run(&file, &run).arg("-q"));
    let s = summary(&run);
    let ln = &entry(&s, "mvmc-q", "heuristic-q")["qval"]["label_noise"];
    assert_eq!(ln["rollouts"], 4, "{ln}");
    let width = |k: &str| ln[k][1].as_f64().unwrap() - ln[k][0].as_f64().unwrap();
    assert!(
        width("two_level") > width("points_only"),
        "two-level {} vs points only {}: {ln}",
        width("two_level"),
        width("points_only")
    );
    assert!(ln["label_share"].as_f64().unwrap() > 0.0, "{ln}");
    assert!(ln["rollouts_needed"].as_u64().unwrap() >= 1, "{ln}");
}

#[test]
fn a_scoring_method_on_a_server_that_cannot_score_stops_before_any_point() {
    // Declared `scoring = true`, but the server has no /tokenize (as a hosted API).
    let server = TestServer::start(ServerConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let file = experiment(
        dir.path(),
        "noscore",
        "\n[[methods]]\ntype = \"sdpo\"\nbackend = \"oracle\"\npoints = 5\n",
        &server,
    );
    let run = dir.path().join("run");
    let err = refused(
        &["run", file.to_str().unwrap(), "--out", run.to_str().unwrap(), "-q"],
        2,
    );
    assert!(
        err.contains("`sdpo-q`") && err.contains("`scoring`") && err.contains("/tokenize"),
        "{err}"
    );
    assert!(!run.join("predictions/sdpo-q.jsonl").exists());
    assert_eq!(server.requests(), 0, "no point was sent");
}

#[test]
fn only_makes_the_candidates_of_ranking_methods_it_runs() {
    let server = oracle(Duration::ZERO, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let file = experiment(
        dir.path(),
        "only",
        "\n[[methods]]\ntype = \"random\"\n\n[[methods]]\ntype = \"sdpo\"\nbackend = \"oracle\"\npoints = 5\n",
        &server,
    );
    let run = dir.path().join("run");
    let r = run.to_str().unwrap();
    succeeded(qval_run(&file, r).args(["--only", "random", "-q"]));
    assert!(!run.join("candidates.jsonl").exists(), "no ranking method ran");
    assert_eq!(server.requests(), 0);
    // Run in full later: the candidates are made then, and the method ranks them.
    succeeded(qval_run(&file, r).arg("-q"));
    assert!(run.join("candidates.jsonl").exists());
    let mean = rho(&summary(&run), "ranking-mvmc-q", "sdpo-q");
    assert!(mean >= 0.8, "sdpo-q per-state rho {mean}");
}

#[test]
fn on_terminalbench_sampled_candidates_feed_the_ranking_and_scoring_methods() {
    // TerminalBench has no closed action set: candidates are the state's own command and
    // alternatives from a sampler (here the noisy agent's mistakes, offline).
    let server = oracle(Duration::ZERO, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"name = "tb-candidates"
seed = 3

[environment]
type = "terminalbench"
only = ["hello-file", "make-archive"]
max_steps = 12

[dataset]
trajectories = 4
concurrency = 2
collector = {{ type = "noisy", epsilon = 0.25 }}
sampling = {{ per_trajectory = 2, discard_first = 0, discard_last = 0 }}
candidates = {{ k = 3, sampler = {{ type = "noisy", epsilon = 1.0 }} }}

[[labels]]
rollouts = 1
concurrency = 2
{backend}
[[methods]]
type = "sdpo"
backend = "oracle"

[[methods]]
type = "delta-belief"
backend = "oracle"
"#,
        backend = oracle_backend(&server, "scoring = true\nmax_attempts = 2\n")
    );
    let file = write_experiment(dir.path(), "tb.toml", &text);
    let run = dir.path().join("run");
    succeeded(qval_run(&file, &run).arg("-q"));
    let read = |p: &str| rows(&run.join(p));
    let candidates = read("candidates.jsonl");
    let states: std::collections::HashSet<&str> =
        candidates.iter().map(|c| c["candidate_of"].as_str().unwrap()).collect();
    assert!(!states.is_empty() && candidates.len() >= 2 * states.len());
    assert!(candidates.len() <= 3 * states.len());
    // Every candidate is labelled and scored by both methods.
    let labels = read("labels/ranking-mvmc-q.jsonl");
    assert_eq!(labels.len(), candidates.len());
    assert!(labels.iter().filter(|l| l["value"].is_f64()).count() >= candidates.len() * 3 / 4);
    for m in ["sdpo-q", "delta-belief-q"] {
        let preds = read(&format!("predictions/{m}.jsonl"));
        assert_eq!(preds.len(), candidates.len(), "{m}");
        assert!(preds.iter().all(|p| p["value"].is_f64()), "{m}: {preds:?}");
    }
    let s = summary(&run);
    assert_eq!(s["estimations"]["ranking-mvmc-q"]["granularity"], "ranking");
}

#[test]
fn an_entry_sets_what_its_prompts_disclose_as_the_published_method_config_does() {
    let server = oracle(Duration::ZERO, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let methods = r#"
[[methods]]
type = "direct"
name = "told"
disclose_discount_factor = true
max_history_turns = 0
backend = "oracle"
points = 60

[[methods]]
type = "codegen"
samples = 1
include_next_state = false
backend = "oracle"
points = 20
"#;
    let file = experiment(dir.path(), "context", methods, &server);
    let run = dir.path().join("run");
    succeeded(qval_run(&file, &run).arg("-q"));
    let text = run_ok(&["preview", run.to_str().unwrap(), "--method", "told-q", "--points", "3"]);
    assert!(
        text.contains("(discount factor γ=0.95)") && !text.contains("fewer steps is preferable"),
        "{text}"
    );
    assert!(
        !text.contains("State-Action History") && !text.contains("history (if any)"),
        "{text}"
    );
    // The code is asked for, and called with, the state and the action only.
    let prompts = server.prompts();
    assert!(
        prompts
            .iter()
            .any(|p| p.contains("def signal_function(state: str, action: str) -> float:"))
    );
    let preds = std::fs::read_to_string(run.join("predictions/codegen-q-s00.jsonl")).unwrap();
    assert!(preds.lines().skip(1).all(|l| !l.contains("\"value\":null")), "{preds}");
    let s = summary(&run);
    let r = rho(&s, "mvmc-q", "told-q");
    assert!(r >= 0.9, "told-q: rho {r}");
}
