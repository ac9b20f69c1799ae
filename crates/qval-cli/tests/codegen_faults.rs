//! The code family against a model whose code never returns: the shipped FrozenLake
//! experiment's code methods finish within minutes, and neither a finished run nor one
//! stopped by SIGTERM leaves a sandbox worker or a sandbox folder behind.
//!
//! Each test gives `qval` a private `TMPDIR`, so the folder check is exact, and this test
//! process becomes a child subreaper, so a worker orphaned by `qval` is re-parented here and
//! `pgrep -P <this process>` finds it whatever else runs on the machine.

mod common;

use common::{exit_within, json, oracle, rows, shipped_frozenlake_text, signal, wait_for};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use qval_testkit::{Fault, Rule, Selector, TestServer};

/// One `qval run` at a time: both tests load the 2 cores fully.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The words starting the worker program, which is on every worker's command line
/// (`python3 -c <program>` inside `bwrap`).
const WORKER_MARK: &str = "qval sandbox worker";

/// A loopback model answering every code-generation request with code that never returns.
fn hanging_coder() -> TestServer {
    oracle(
        Duration::ZERO,
        vec![Rule::new(
            Selector::Contains("signal_function".into()),
            Fault::NeverReturningCode,
        )],
    )
}

/// `qval run` of the shipped FrozenLake text experiment's code methods against `server`,
/// with `tmp` as its TMPDIR.
fn run_code_methods(server: &TestServer, out: &Path, tmp: &Path) -> Command {
    let mut c = shipped_frozenlake_text(out, &server.base_url(), &["codegen", "codegen-avg", "eureka"]);
    c.env("TMPDIR", tmp).args(["--allow-failures", "--quiet"]);
    c
}

/// Orphaned descendants of this process come here instead of to init.
fn become_subreaper() {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(
        r,
        0,
        "prctl(PR_SET_CHILD_SUBREAPER): {}",
        std::io::Error::last_os_error()
    );
}

/// Sandbox workers re-parented to this process (left behind by a `qval` that ended),
/// waiting up to 5 s for ones being killed to go.
fn orphaned_workers() -> String {
    let t = Instant::now();
    loop {
        let out = Command::new("pgrep")
            .args(["-l", "-P", &std::process::id().to_string(), "-f", WORKER_MARK])
            .output()
            .expect("pgrep runs (apt-get install procps)");
        let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if found.is_empty() || t.elapsed() > Duration::from_secs(5) {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One test at a time, as the subreaper, against the hanging coder, with a private TMPDIR in
/// `dir`: the turn (held until dropped), the server and the TMPDIR.
fn start_alone(dir: &Path) -> (MutexGuard<'static, ()>, TestServer, PathBuf) {
    let one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    become_subreaper();
    let server = hanging_coder();
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    (one, server, tmp)
}

/// The sandbox folders in `tmp`.
fn sandbox_folders(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("qval-sandbox-"))
        .collect()
}

#[test]
fn the_shipped_code_methods_on_code_that_never_returns_finish_in_five_minutes_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_one, server, tmp) = start_alone(dir.path());
    let run = dir.path().join("run");
    let t = Instant::now();
    let mut child = run_code_methods(&server, &run, &tmp).spawn().expect("qval starts");
    let status = exit_within(&mut child, Duration::from_secs(300));
    let took = t.elapsed();
    eprintln!("codegen, codegen-avg and eureka (q and v) on never-returning code took {took:.1?}");
    assert!(status.is_some(), "the code methods did not finish within five minutes");
    assert!(status.unwrap().success(), "qval run failed: {status:?}");
    assert_eq!(orphaned_workers(), "", "sandbox workers were left behind");
    assert_eq!(
        sandbox_folders(&tmp),
        Vec::<String>::new(),
        "sandbox folders were left behind"
    );

    // Every code method scored its 100 points, all NaN, each sample abandoned after three
    // timeouts: three points say they timed out, the rest why they were not run.
    let predictions = run.join("predictions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&predictions)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "codegen-q-s00",
        "codegen-v-s15",
        "codegen-avg-q",
        "codegen-avg-v",
        "eureka-q",
        "eureka-v",
    ] {
        assert!(names.iter().any(|n| n == want), "no predictions of {want}: {names:?}");
    }
    for f in files.iter().filter(|f| !f.to_string_lossy().contains("codegen-avg")) {
        let rows = rows(f);
        assert_eq!(rows.len(), 100, "{}", f.display());
        assert!(rows.iter().all(|r| r["value"].is_null()), "{}: a number", f.display());
        let reason = |r: &Value| r["error"].as_str().unwrap_or_default().to_string();
        let timed_out = rows.iter().filter(|r| reason(r).contains("time limit")).count();
        let abandoned = rows
            .iter()
            .filter(|r| reason(r).contains("abandoned after 3 calls"))
            .count();
        assert_eq!(
            (timed_out, abandoned),
            (3, 97),
            "{}: {:?}",
            f.display(),
            rows[..4].to_vec()
        );
    }
    // Eureka rejected every candidate as abandoned and stopped after two rounds.
    let eureka = json(&run.join("methods/eureka-q/eureka.json"));
    let rounds = eureka["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{eureka:#}");
    for (_, stats) in rounds[0]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (&c[0], &c[1]))
    {
        assert!(
            stats["invalid"].as_str().unwrap_or_default().contains("abandoned"),
            "{stats}"
        );
    }
}

#[test]
fn sigterm_during_codegen_leaves_no_worker_and_no_sandbox_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (_one, server, tmp) = start_alone(dir.path());
    let mut child = run_code_methods(&server, &dir.path().join("run"), &tmp)
        .spawn()
        .expect("qval starts");
    // Codegen is under way once its samples' workers have their folders.
    wait_for(&mut child, Duration::from_secs(180), "4 sandboxes started", || {
        sandbox_folders(&tmp).len() >= 4
    });
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, libc::SIGTERM);
    let status = exit_within(&mut child, Duration::from_secs(30)).expect("qval ends within 30 s of SIGTERM");
    assert_eq!(
        sandbox_folders(&tmp),
        Vec::<String>::new(),
        "sandbox folders were left behind"
    );
    assert_eq!(orphaned_workers(), "", "sandbox workers were left behind");
    assert_eq!(
        status.code(),
        Some(143),
        "{status:?}: not the interrupted exit of SIGTERM"
    );
}
