//! Helpers shared by the `qval` command's integration tests: running the binary and reading
//! what it says, the loopback oracle and `qval serve-oracle`, experiment files, run folders,
//! child processes, and the Python packages a test needs.

#![allow(dead_code)]

use serde_json::Value;
use std::borrow::BorrowMut;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use qval_testkit::{Rule, ServerConfig, TestServer};

/// The Python packages the tests need (one file for every crate's tests).
#[path = "../../../../tests/common/python.rs"]
pub mod python;

/// The repository's root, where a user runs the shipped experiments from.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// --- Running `qval` -------------------------------------------------------------------------

/// The `qval` binary, with backtraces on (a user error must still be one line).
pub fn qval() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_qval"));
    c.env("RUST_BACKTRACE", "1");
    c
}

/// `qval run FILE --out OUT`, for more arguments, a folder to run in, or a spawn.
pub fn qval_run(file: impl AsRef<Path>, out: impl AsRef<Path>) -> Command {
    let mut c = qval();
    c.arg("run").arg(file.as_ref()).arg("--out").arg(out.as_ref());
    c
}

/// Runs `qval args` to its end.
pub fn output(args: &[&str]) -> Output {
    qval().args(args).output().expect("qval runs")
}

/// Standard output and standard error, as text.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Standard output, then standard error, in one text (to look for a line in either).
pub fn all_text(out: &Output) -> String {
    let (stdout, stderr) = text(out);
    format!("{stdout}\n{stderr}")
}

/// Runs `command` to its end, asserts that it succeeded and returns its standard output.
pub fn succeeded(mut command: impl BorrowMut<Command>) -> String {
    let command = command.borrow_mut();
    let out = command.output().expect("the command runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{command:?} failed:\n{stdout}\n{stderr}");
    stdout
}

/// Runs `qval args`, asserts that it succeeded and returns its standard output.
pub fn run_ok(args: &[&str]) -> String {
    succeeded(qval().args(args))
}

/// Asserts that `out` is a refusal: exit status `code`, one line on standard error and no
/// panic; returns the line. `context` (the command or its input) goes into the messages.
pub fn refusal(out: &Output, code: i32, context: &str) -> String {
    let (stdout, stderr) = text(out);
    assert_eq!(out.status.code(), Some(code), "{context}:\n{stdout}\n{stderr}");
    let line = stderr.trim().to_string();
    assert_eq!(line.lines().count(), 1, "one line: {line}\n{context}");
    assert!(
        !line.contains("panicked") && !line.contains("backtrace"),
        "{line}\n{context}"
    );
    line
}

/// Runs `qval args`, expects exit status `code` and one line on standard error; returns it.
pub fn refused(args: &[&str], code: i32) -> String {
    refusal(&output(args), code, &format!("qval {args:?}"))
}

/// Writes `text` to `dir/name`, runs `qval run` on it and asserts that it is refused with
/// exit status 2 and one line, before any work (no run folder); returns the line and how long
/// the refusal took.
pub fn refused_experiment(dir: &Path, name: &str, text: &str) -> (String, Duration) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let run = dir.join("never");
    let started = Instant::now();
    let out = qval_run(&path, &run).output().expect("qval runs");
    let took = started.elapsed();
    let line = refusal(&out, 2, text);
    assert!(!run.exists(), "work started before the file was checked:\n{text}");
    (line, took)
}

// --- Servers ----------------------------------------------------------------------------------

/// The loopback server as an exact oracle of every family (true values, the code family's
/// example sample, vLLM's continuation scoring), each reply after `latency`, with the fault
/// `rules`.
pub fn oracle(latency: Duration, rules: Vec<Rule>) -> TestServer {
    TestServer::start(ServerConfig {
        rules,
        latency,
        code_samples: vec![qval_methods::code::EXAMPLE_SAMPLE.to_string()],
        scoring: true,
        ..Default::default()
    })
}

/// How many distinct prompts `server` was sent.
pub fn distinct_prompts(server: &TestServer) -> usize {
    let mut prompts = server.prompts();
    prompts.sort();
    prompts.dedup();
    prompts.len()
}

/// A running `qval serve-oracle`, killed when dropped.
pub struct ServedOracle {
    child: Child,
    pub url: String,
    /// Kept open: a closed pipe ends the server.
    stdout: std::io::BufReader<ChildStdout>,
}

impl ServedOracle {
    /// Starts `qval serve-oracle` with `args` and reads the URL it prints first.
    pub fn start(args: &[&str]) -> ServedOracle {
        let mut child = qval()
            .arg("serve-oracle")
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("qval serve-oracle starts");
        let stdout = std::io::BufReader::new(child.stdout.take().expect("a piped stdout"));
        let mut server = ServedOracle {
            child,
            url: String::new(),
            stdout,
        };
        server.url = server.next_line().trim().to_string();
        assert!(server.url.starts_with("http://127.0.0.1:"), "{}", server.url);
        server
    }

    /// The next line the server prints.
    pub fn next_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("the server prints a line");
        line
    }
}

impl Drop for ServedOracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- Experiment files ---------------------------------------------------------------------

/// A FrozenLake experiment `name` (4 maps; `trajectories` epsilon-greedy trajectories,
/// epsilon 0.1, seed `seed`), `rest` (labels, backends, methods, evaluation) after it.
pub fn frozenlake(name: &str, seed: u64, trajectories: usize, rest: &str) -> String {
    format!(
        r#"name = "{name}"
seed = {seed}

[environment]
type = "frozenlake"
maps = 4

[dataset]
trajectories = {trajectories}
collector = {{ type = "epsilon-greedy", epsilon = 0.1 }}
{rest}"#
    )
}

/// The `[backends.oracle]` table on `server`, with the `settings` lines after its URL and model.
pub fn oracle_backend(server: &TestServer, settings: &str) -> String {
    format!(
        "\n[backends.oracle]\nbase_url = \"{}\"\nmodel = \"oracle\"\n{settings}",
        server.base_url()
    )
}

/// Writes the experiment `text` to `dir/name` and returns the file's path.
pub fn write_experiment(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `qval run` of the shipped FrozenLake text experiment from the repository root, into `out`,
/// on `base_url` (model `oracle`), its methods `only`; more arguments may follow.
pub fn shipped_frozenlake_text(out: &Path, base_url: &str, only: &[&str]) -> Command {
    let mut c = qval_run("experiments/qval-v1/frozenlake-text.toml", out);
    c.current_dir(repo())
        .args(["--base-url", base_url, "--model", "oracle", "--only"])
        .args(only);
    c
}

// --- Run folders ----------------------------------------------------------------------------

/// A JSON file.
pub fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A run folder's `summary.json`.
pub fn summary(run: &Path) -> Value {
    json(&run.join("summary.json"))
}

/// The rows of a JSON-lines file of a run folder (after its metadata line).
pub fn rows(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The number of lines of a file, 0 while it does not exist.
pub fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

/// A method's entry in the published layout: a method, or a member of a sample group (found
/// by the name qval records in its `qval` key); null when there is none.
pub fn entry<'a>(summary: &'a Value, labels: &str, method: &str) -> &'a Value {
    let methods = &summary["estimations"][labels]["methods"];
    if methods.get(method).is_some() {
        return &methods[method];
    }
    methods
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|g| g["per_sample"].as_array())
        .flatten()
        .find(|m| m["qval"]["name"] == method)
        .unwrap_or(&Value::Null)
}

/// A method's correlation in the published layout: Spearman's rho on a point label set, the
/// mean per-state rho on a ranking one; NaN when there is none.
pub fn rho(summary: &Value, labels: &str, method: &str) -> f64 {
    let c = &entry(summary, labels, method)["correlations"];
    c["spearman"]["correlation"]
        .as_f64()
        .or(c["ranking_spearman"]["mean"].as_f64())
        .unwrap_or(f64::NAN)
}

// --- Child processes ------------------------------------------------------------------------

/// Waits, up to `limit`, until `done()` while `child` runs; fails if it takes longer or the
/// child ends first. `what` says what is waited for.
pub fn wait_for(child: &mut Child, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < limit, "not within {limit:?}: {what}");
        assert!(child.try_wait().unwrap().is_none(), "qval ended before {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits up to `limit` for `child` to end; kills it and returns `None` if it does not.
pub fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Sends `signal` (SIGINT, SIGTERM) to `child`.
pub fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill with the pid of our own child, which has not been waited for.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}
