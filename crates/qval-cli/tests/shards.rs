//! Sharded runs: shards merge into the bytes one process writes, merges refuse what does not
//! belong, killed shards resume, and a real single-node SLURM cluster runs the job arrays.

mod common;

use common::{
    line_count, oracle, oracle_backend, output, qval, qval_run, repo, run_ok, s, succeeded, wait_for, write_experiment,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use qval_testkit::TestServer;

/// Slippery FrozenLake, k > 1 labels, an offline method, an LLM method and ranking, and
/// acting guided by them.
fn experiment(dir: &Path, server: &TestServer, concurrency: usize, epsilon: f64) -> PathBuf {
    write_experiment(
        dir,
        "exp.toml",
        &format!(
            r#"name = "sharded"
seed = 5
[environment]
type = "frozenlake"
maps = 3
slippery = true
[dataset]
trajectories = 21
collector = {{ type = "epsilon-greedy", epsilon = {epsilon} }}
[[labels]]
rollouts = 4
[[labels]]
signal = "v"
rollouts = 3
{backend}[evaluate]
bootstrap = 300
min_points = 10
[[methods]]
type = "heuristic"
signal = ["q", "v"]
[[methods]]
type = "direct"
backend = "oracle"
points = 40
[[methods]]
type = "ranking"
backend = "oracle"
points = 9
[acting]
k = [1, 3]
guided = ["heuristic", "direct", "ranking"]
vote = true
samples_per_task = 2
"#,
            backend = oracle_backend(server, &format!("concurrency = {concurrency}\n"))
        ),
    )
}

/// The files one process writes, relative to the run folder.
fn result_files(run: &Path) -> Vec<PathBuf> {
    let mut out = vec![
        PathBuf::from("trajectories.jsonl"),
        PathBuf::from("points.jsonl"),
        PathBuf::from("candidates.jsonl"),
        PathBuf::from("summary.json"),
        PathBuf::from("summary.md"),
        PathBuf::from("acting.json"),
    ];
    for sub in ["labels", "predictions", "acting"] {
        let mut names: Vec<PathBuf> = std::fs::read_dir(run.join(sub))
            .unwrap()
            .map(|e| PathBuf::from(sub).join(e.unwrap().file_name()))
            .collect();
        names.sort();
        out.extend(names);
    }
    out
}

fn assert_same_run(reference: &Path, other: &Path) {
    let files = result_files(reference);
    assert!(files.len() >= 20, "{files:?}");
    for f in files {
        let a = std::fs::read(reference.join(&f)).unwrap();
        let b = std::fs::read(other.join(&f)).unwrap_or_else(|e| panic!("{}: {e}", other.join(&f).display()));
        assert!(a == b, "{} differs from the unsharded run", f.display());
    }
}

fn run_shards(file: &Path, run: &Path, n: usize) {
    for round in 0..2 {
        for i in 0..n {
            succeeded(qval_run(file, run).args(["--shard", &format!("{i}/{n}"), "-q"]));
        }
        let said = run_ok(&["merge", run.to_str().unwrap(), "-q"]);
        let expected = if round == 0 {
            "merged the collection"
        } else {
            "merged the labels"
        };
        assert!(said.contains(expected), "{said}");
    }
}

#[test]
fn sharded_runs_merge_into_the_bytes_of_one_process() {
    let server = oracle(Duration::ZERO, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let file = experiment(dir.path(), &server, 8, 0.2);
    let reference = dir.path().join("one");
    succeeded(qval_run(&file, &reference).arg("-q"));
    for n in [1, 2, 3, 7] {
        let run = dir.path().join(format!("n{n}"));
        run_shards(&file, &run, n);
        assert_same_run(&reference, &run);
        let status = run_ok(&["status", run.to_str().unwrap()]);
        assert!(status.contains("merged and evaluated"));
    }
}

#[test]
fn merges_refuse_missing_unfinished_and_foreign_shards() {
    let server = oracle(Duration::ZERO, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let file = experiment(dir.path(), &server, 8, 0.2);
    let run = dir.path().join("run");
    let r = run.to_str().unwrap();
    succeeded(qval_run(&file, r).args(["--shard", "0/3", "-q"]));
    succeeded(qval_run(&file, r).args(["--shard", "2/3", "-q"]));
    let status = String::from_utf8_lossy(&output(&["status", r]).stderr).to_string();
    assert!(status.contains("1-of-3"), "{status}");
    let out = output(&["merge", r]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("1-of-3") && err.contains("missing"),
        "{err}"
    );
    // A shard made from another experiment file.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let foreign = experiment(&other, &server, 8, 0.3);
    succeeded(qval_run(&foreign, r).args(["--shard", "1/3", "-q"]));
    let out = output(&["merge", r]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("1-of-3") && err.contains("another experiment"),
        "{err}"
    );
    assert!(!run.join("trajectories.jsonl").exists(), "nothing was merged");
    // Put right, the merge goes on; a second round not run yet is named.
    succeeded(qval_run(&file, r).args(["--shard", "1/3", "--redo", "collect", "-q"]));
    run_ok(&["merge", r, "-q"]);
    let out = output(&["merge", r]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("0-of-3") && err.contains("has not finished"),
        "{err}"
    );
    let status = run_ok(&["status", r]);
    assert!(status.contains("the merge waits for"), "{:?}", status);
}

#[test]
fn shards_killed_once_each_resume_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let reference_server = oracle(Duration::from_millis(10), vec![]);
    let file = experiment(dir.path(), &reference_server, 1, 0.2);
    let reference = dir.path().join("one");
    succeeded(qval_run(&file, &reference).arg("-q"));

    let server = oracle(Duration::from_millis(10), vec![]);
    let file = experiment(dir.path(), &server, 1, 0.2);
    let run = dir.path().join("killed");
    let r = run.to_str().unwrap();
    let n = 2;
    for i in 0..n {
        succeeded(qval_run(&file, r).args(["--shard", &format!("{i}/{n}"), "-q"]));
    }
    run_ok(&["merge", r, "-q"]);
    for i in 0..n {
        let shard = format!("{i}/{n}");
        let log = run.join(format!("shards/{i}-of-{n}/llm-requests.jsonl"));
        let mut child = qval_run(&file, r).args(["--shard", &shard, "-q"]).spawn().unwrap();
        wait_for(
            &mut child,
            Duration::from_secs(60),
            &format!("shard {shard} logged 5 requests"),
            || line_count(&log) >= 5,
        );
        child.kill().unwrap();
        child.wait().unwrap();
        succeeded(qval_run(&file, r).args(["--shard", &shard, "-q"]));
    }
    run_ok(&["merge", r, "-q"]);
    assert_same_run(&reference, &run);
    // Against shards that were not killed: only the requests in flight at the kills (one per
    // shard) may have been sent twice. (Shards keep their own caches, so a prompt two shards
    // share is asked by each.)
    let unkilled_server = oracle(Duration::ZERO, vec![]);
    let plain = dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let file = experiment(&plain, &unkilled_server, 1, 0.2);
    run_shards(&file, &plain.join("run"), n);
    assert!(
        server.requests() <= unkilled_server.requests() + n,
        "{} requests, {} without kills",
        server.requests(),
        unkilled_server.requests()
    );
}

/// Runs `scripts/slurm_local.sh` (it installs Debian's slurmctld, slurmd, slurm-client and
/// munge when they are missing).
fn slurm(cmd: &str, dir: &Path) -> Output {
    let script = repo().join("scripts/slurm_local.sh");
    Command::new("bash").arg(script).arg(cmd).arg(dir).output().unwrap()
}

/// The SLURM jobs' output files of `run`, each under its path.
fn job_logs(run: &Path) -> String {
    let logs: Vec<String> = std::fs::read_dir(run.join("slurm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "out"))
        .map(|p| format!("{}:\n{}", p.display(), std::fs::read_to_string(&p).unwrap_or_default()))
        .collect();
    logs.join("\n")
}

#[test]
fn a_single_node_slurm_cluster_runs_the_job_arrays_and_the_merges() {
    let dir = tempfile::Builder::new()
        .prefix("qval-slurm")
        .tempdir_in("/tmp")
        .unwrap();
    let cluster = dir.path().join("cluster");
    let up = slurm("up", &cluster);
    assert!(
        up.status.success(),
        "a single-node SLURM cluster did not start (scripts/slurm_local.sh up; it needs root or sudo \
         and Debian's slurmctld, slurmd, slurm-client and munge, which `apt-get install` gives):\n{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let conf = cluster.join("slurm.conf");
    let result = std::panic::catch_unwind(|| {
        let server = oracle(Duration::ZERO, vec![]);
        let file = experiment(dir.path(), &server, 8, 0.2);
        let reference = dir.path().join("one");
        succeeded(qval_run(&file, &reference).arg("-q"));
        let run = dir.path().join("slurm-run");
        let submit = ["slurm", s(&file), "--shards", "4", "--out", s(&run), "--submit"];
        let said = succeeded(qval().env("SLURM_CONF", &conf).args(submit));
        assert!(said.contains("submitted"));
        let t = Instant::now();
        loop {
            let q = Command::new("squeue")
                .env("SLURM_CONF", &conf)
                .arg("-h")
                .output()
                .unwrap();
            let queue = String::from_utf8_lossy(&q.stdout).to_string();
            if queue.trim().is_empty() {
                break;
            }
            if queue.contains("DependencyNeverSatisfied") {
                let _ = Command::new("scancel")
                    .env("SLURM_CONF", &conf)
                    .arg("--user=root")
                    .output();
                panic!("a job failed:\n{queue}\n{}", job_logs(&run));
            }
            assert!(t.elapsed() < Duration::from_secs(300), "the jobs did not finish");
            std::thread::sleep(Duration::from_millis(500));
        }
        assert!(
            run.join("summary.json").exists(),
            "no summary; job logs:\n{}",
            job_logs(&run)
        );
        assert_same_run(&reference, &run);
    });
    let down = slurm("down", &cluster);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
