//! The TerminalBench environment: shell states, actions and sandboxed steps.

use super::store::Store;
use super::task::{ShellTask, split_commands};
use qval_core::{CoreError, EnvProfile, EnvSpec, Environment, Observation, QRng, StepOutcome, Task};
use qval_sandbox::{Bwrap, Limits, TreeLimit, run_captured_watched};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::EnvsError;

const WRAPPER: &str = include_str!("wrapper.sh");
const RUNNER: &str = include_str!("runner.py");

/// Variables every shell starts with.
pub const BASE_ENV: [(&str, &str); 4] = [
    ("HOME", "/app"),
    ("LANG", "C.UTF-8"),
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("TERM", "dumb"),
];

/// [`BASE_ENV`] as a state's variables.
fn base_env() -> BTreeMap<String, String> {
    BASE_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Variables bash maintains itself; not part of a state.
const VOLATILE_ENV: [&str; 4] = ["OLDPWD", "PWD", "SHLVL", "_"];

/// An agent's action: one bash command (possibly several lines), or `SUBMIT`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ShellAction {
    /// Run a command.
    Run(String),
    /// End the episode and run the tests.
    Submit,
}

impl From<String> for ShellAction {
    fn from(s: String) -> Self {
        if s.trim().eq_ignore_ascii_case("submit") {
            ShellAction::Submit
        } else {
            ShellAction::Run(s.trim_end().to_string())
        }
    }
}

impl From<ShellAction> for String {
    fn from(a: ShellAction) -> String {
        match a {
            ShellAction::Run(c) => c,
            ShellAction::Submit => "SUBMIT".into(),
        }
    }
}

/// What the last command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// The folder it ran in.
    pub cwd: String,
    /// The command.
    pub command: String,
    /// Its screen output (stdout and stderr, head and tail when long).
    pub screen: String,
    /// The exit status; `None` when it was killed.
    pub exit_code: Option<i32>,
    /// Whether the time limit killed it.
    pub timed_out: bool,
}

/// The tests' verdict at the end of an episode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRun {
    /// Whether they passed.
    pub passed: bool,
    /// Their output (head and tail).
    pub output: String,
}

/// A TerminalBench state; small (the files live in the [`Store`] under `tree`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellState {
    /// The task id.
    pub task: String,
    /// Every action so far, rendered (`SUBMIT` included).
    pub commands: Vec<String>,
    /// The shell's working folder.
    pub cwd: String,
    /// The exported variables.
    pub env: BTreeMap<String, String>,
    /// Hash of the snapshot of `/app`.
    pub tree: String,
    /// The last command's outcome.
    pub last: Option<LastRun>,
    /// The tests' verdict, once the episode ended.
    pub tests: Option<TestRun>,
}

/// Time spent in each part of the steps so far (see [`TerminalBench::timings`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Commands run (tests included).
    pub runs: u64,
    /// Restoring snapshots into fresh folders.
    pub restore: Duration,
    /// Inside the sandbox (bubblewrap start to exit).
    pub sandbox: Duration,
    /// Taking snapshots.
    pub snapshot: Duration,
    /// Bytes of files restored.
    pub restored_bytes: u64,
    /// Files, folders and links restored.
    pub restored_entries: u64,
}

#[derive(Default)]
struct Counters {
    runs: AtomicU64,
    restore_ns: AtomicU64,
    sandbox_ns: AtomicU64,
    snapshot_ns: AtomicU64,
    restored_bytes: AtomicU64,
    restored_entries: AtomicU64,
}

struct TaskEntry {
    task: ShellTask,
    initial: String,
    files: Vec<String>,
    steps: Vec<String>,
}

/// Builder of [`TerminalBench`].
///
/// | parameter | default |
/// |---|---|
/// | `tasks_dir` | [`TerminalBench::shipped_tasks_dir`] |
/// | `only` | all tasks |
/// | `store_dir` | a temporary folder (give one to keep states usable across runs) |
/// | `max_steps` | 40 (the reference) |
/// | `gamma` | 0.95 |
/// | `command_timeout` | 10 s (capped by a task's `max_agent_timeout_sec`) |
/// | `screen_cap` | 4096 bytes |
/// | `limits` | 1 GiB memory, 256 processes, 60 CPU s, 16 MiB files |
/// | `max_tree_bytes` | 64 MiB in `/app` |
/// | `work_dir` | `/dev/shm` when it is writable with 1 GiB free (memory: restoring is several times faster than on disk), else the system temporary folder |
#[derive(Clone, Debug)]
pub struct TerminalBenchBuilder {
    tasks_dir: PathBuf,
    only: Option<Vec<String>>,
    store_dir: Option<PathBuf>,
    max_steps: usize,
    gamma: f64,
    command_timeout: Duration,
    screen_cap: usize,
    limits: Limits,
    max_tree_bytes: u64,
    work_dir: Option<PathBuf>,
}

impl TerminalBenchBuilder {
    /// Where each step's fresh folder is made (restored, bound into the sandbox, removed).
    pub fn work_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.work_dir = Some(dir.into());
        self
    }
    /// The folder of task folders.
    pub fn tasks_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.tasks_dir = dir.into();
        self
    }
    /// Only these task ids (in this order).
    pub fn only<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.only = Some(ids.into_iter().map(Into::into).collect());
        self
    }
    /// Where snapshots are stored; reused across runs (content-addressed).
    pub fn store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store_dir = Some(dir.into());
        self
    }
    /// The step budget of an episode.
    pub fn max_steps(mut self, n: usize) -> Self {
        self.max_steps = n;
        self
    }
    /// The discount.
    pub fn gamma(mut self, g: f64) -> Self {
        self.gamma = g;
        self
    }
    /// The wall-clock limit of one command.
    pub fn command_timeout(mut self, d: Duration) -> Self {
        self.command_timeout = d;
        self
    }
    /// Screen bytes kept per command (head and tail).
    pub fn screen_cap(mut self, bytes: usize) -> Self {
        self.screen_cap = bytes;
        self
    }
    /// Resource limits of sandboxed processes.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// The most bytes `/app` may hold after a command.
    pub fn max_tree_bytes(mut self, bytes: u64) -> Self {
        self.max_tree_bytes = bytes;
        self
    }

    /// Checks bubblewrap, validates, loads the tasks and stores their starting files.
    ///
    /// # Errors
    /// [`EnvsError::Sandbox`] when bubblewrap cannot run (nothing runs unconfined);
    /// [`EnvsError::InvalidParameter`]; [`EnvsError::Task`] for a malformed or unknown task.
    pub fn build(self) -> Result<TerminalBench, EnvsError> {
        let invalid = |name, value: String, reason: &str| EnvsError::InvalidParameter {
            name,
            value,
            reason: reason.into(),
        };
        if self.max_steps < 2 {
            return Err(invalid("max_steps", self.max_steps.to_string(), "at least 2"));
        }
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(invalid("gamma", self.gamma.to_string(), "a discount in (0, 1]"));
        }
        if self.command_timeout.is_zero() {
            return Err(invalid("command_timeout", "0".into(), "a positive duration"));
        }
        if self.screen_cap < 64 {
            return Err(invalid("screen_cap", self.screen_cap.to_string(), "at least 64 bytes"));
        }
        if self.limits.memory < 64 << 20 || self.limits.processes < 4 {
            return Err(invalid(
                "limits",
                format!("{:?}", self.limits),
                "at least 64 MiB of memory and 4 processes",
            ));
        }
        qval_sandbox::bubblewrap_works().map_err(|e| {
            EnvsError::Sandbox(format!(
                "TerminalBench runs commands only inside bubblewrap, which cannot run here: {e}"
            ))
        })?;
        let mut all = ShellTask::load_all(&self.tasks_dir)?;
        if let Some(only) = &self.only {
            let mut picked = Vec::new();
            for id in only {
                let i = all.iter().position(|t| &t.id == id).ok_or_else(|| EnvsError::Task {
                    task: id.clone(),
                    message: format!(
                        "no such task in {} (it has: {})",
                        self.tasks_dir.display(),
                        all.iter().map(|t| t.id.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                })?;
                picked.push(all[i].clone());
            }
            all = picked;
        }
        let store = Arc::new(match &self.store_dir {
            Some(d) => Store::open(d)?,
            None => Store::temporary()?,
        });
        let mut tasks = Vec::with_capacity(all.len());
        for task in all {
            let (initial, _) = store.snapshot(&task.dir, &super::task::RESERVED, self.max_tree_bytes)?;
            let files = store
                .tree(&initial)?
                .into_iter()
                .filter(|e| matches!(e.kind, super::store::EntryKind::File { .. }))
                .map(|e| e.path)
                .collect();
            let steps = split_commands(&task.solution).map_err(|e| EnvsError::Task {
                task: task.id.clone(),
                message: format!("solution.sh: {e}"),
            })?;
            tasks.push(TaskEntry {
                task,
                initial,
                files,
                steps,
            });
        }
        let index = tasks.iter().enumerate().map(|(i, t)| (t.task.id.clone(), i)).collect();
        let spec = EnvSpec {
            name: "terminal-bench".into(),
            max_steps: self.max_steps,
            gamma: self.gamma,
            reward_description: "1.0 when the task's tests pass at the end of the episode (after SUBMIT or \
                                 the last allowed command), 0.0 otherwise; no reward before the end."
                .into(),
            notes: format!(
                "Each action is one bash command, run in a fresh shell that starts in the previous \
                 command's working folder with its exported variables. Files persist only under /app; \
                 /tmp and background processes do not survive a command. There is no network. A command \
                 is killed after {} s and the screen shows at most {} bytes of its output. Reply SUBMIT \
                 when the task is done: the episode ends and the tests run.",
                self.command_timeout.as_secs_f64(),
                self.screen_cap
            ),
        };
        Ok(TerminalBench {
            spec,
            tasks,
            index,
            store,
            command_timeout: self.command_timeout,
            screen_cap: self.screen_cap,
            limits: self.limits,
            max_tree_bytes: self.max_tree_bytes,
            work_dir: match self.work_dir {
                Some(d) => d,
                None => default_work_dir(),
            },
            counters: Counters::default(),
        })
    }
}

/// The TerminalBench environment. Build with [`TerminalBench::builder`].
pub struct TerminalBench {
    spec: EnvSpec,
    tasks: Vec<TaskEntry>,
    index: HashMap<String, usize>,
    store: Arc<Store>,
    command_timeout: Duration,
    screen_cap: usize,
    limits: Limits,
    max_tree_bytes: u64,
    work_dir: PathBuf,
    counters: Counters,
}

/// `/dev/shm` when this process can make folders there and it has 1 GiB free (containers
/// often give it 64 MiB), else the temporary folder.
fn default_work_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && qval_sandbox::free_bytes(shm).is_some_and(|b| b >= 1 << 30)
        && tempfile::Builder::new().prefix("qval-probe-").tempdir_in(shm).is_ok()
    {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A fresh folder for one sandbox run: `app/` (bound at `/app`), `ctl/` (at `/.qval`) and
/// `root/`, the sandbox's fixed root (its mount points, dated [`RESTORED_MTIME`](super::store::RESTORED_MTIME)).
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    /// A workspace whose root has `extra` mount points besides [`MOUNT_POINTS`].
    fn new(parent: &Path, extra: &[&str]) -> Result<Workspace, EnvsError> {
        let dir = tempfile::Builder::new()
            .prefix("qval-tb-")
            .tempdir_in(parent)
            .map_err(|e| EnvsError::Sandbox(format!("a working folder: {e}")))?;
        for d in ["app", "ctl"] {
            std::fs::create_dir(dir.path().join(d))
                .map_err(|e| EnvsError::Sandbox(format!("a working folder: {e}")))?;
        }
        let mounts: Vec<&str> = MOUNT_POINTS.iter().chain(extra).copied().collect();
        qval_sandbox::fixed_root(&dir.path().join("root"), &mounts, restored_time())
            .map_err(|e| EnvsError::Sandbox(format!("the sandbox's root: {e}")))?;
        Ok(Workspace { dir })
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    /// Dates `ctl/` and what is in it like a restored tree, so that `ls -la /` does not
    /// show when the step started.
    fn date_ctl(&self) -> Result<(), EnvsError> {
        let ctl = self.ctl();
        let entries =
            std::fs::read_dir(&ctl).map_err(|e| EnvsError::Sandbox(format!("read {}: {e}", ctl.display())))?;
        for p in entries.flatten().map(|e| e.path()).chain(std::iter::once(ctl.clone())) {
            qval_sandbox::set_times(&p, restored_time())
                .map_err(|e| EnvsError::Sandbox(format!("date {}: {e}", p.display())))?;
        }
        Ok(())
    }
    fn app(&self) -> PathBuf {
        self.dir.path().join("app")
    }
    fn ctl(&self) -> PathBuf {
        self.dir.path().join("ctl")
    }
    fn write_ctl(&self, name: &str, body: &str) -> Result<(), EnvsError> {
        let p = self.ctl().join(name);
        std::fs::write(&p, body).map_err(|e| EnvsError::Sandbox(format!("write {}: {e}", p.display())))
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        super::store::remove_tree(self.dir.path());
    }
}

/// The mount points of the sandbox's root besides the system's: the task's folder, the
/// control folder and Debian's alternatives (a test run adds `tests`).
const MOUNT_POINTS: [&str; 3] = ["app", ".qval", "etc/alternatives"];

/// [`RESTORED_MTIME`](super::store::RESTORED_MTIME) as a time.
fn restored_time() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(super::store::RESTORED_MTIME)
}

fn add(counter: &AtomicU64, d: Duration) {
    counter.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
}

impl TerminalBench {
    /// A builder with the defaults.
    pub fn builder() -> TerminalBenchBuilder {
        TerminalBenchBuilder {
            tasks_dir: Self::shipped_tasks_dir(),
            only: None,
            store_dir: None,
            max_steps: 40,
            gamma: 0.95,
            command_timeout: Duration::from_secs(10),
            screen_cap: 4096,
            limits: Limits::default(),
            max_tree_bytes: 64 << 20,
            work_dir: None,
        }
    }

    /// The tasks shipped with qval.
    pub fn shipped_tasks_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tasks")
            .join("terminal-bench")
    }

    /// The loaded task `id`.
    pub fn task(&self, id: &str) -> Option<&ShellTask> {
        self.index.get(id).map(|&i| &self.tasks[i].task)
    }

    fn entry(&self, id: &str) -> Result<&TaskEntry, CoreError> {
        self.index.get(id).map(|&i| &self.tasks[i]).ok_or_else(|| {
            CoreError::from(EnvsError::Task {
                task: id.to_string(),
                message: "not loaded in this environment".into(),
            })
        })
    }

    /// The task's `solution.sh` split into top-level commands ([`split_commands`]).
    pub fn solution_steps(&self, id: &str) -> Option<&[String]> {
        self.index.get(id).map(|&i| self.tasks[i].steps.as_slice())
    }

    /// The task's starting files (paths relative to `/app`).
    pub fn starting_files(&self, id: &str) -> Option<&[String]> {
        self.index.get(id).map(|&i| self.tasks[i].files.as_slice())
    }

    /// Where each step's fresh folder is made.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// The snapshot store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Time spent so far in restoring, running and snapshotting.
    pub fn timings(&self) -> Timings {
        let c = &self.counters;
        let d = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
        Timings {
            runs: c.runs.load(Ordering::Relaxed),
            restore: d(&c.restore_ns),
            sandbox: d(&c.sandbox_ns),
            snapshot: d(&c.snapshot_ns),
            restored_bytes: c.restored_bytes.load(Ordering::Relaxed),
            restored_entries: c.restored_entries.load(Ordering::Relaxed),
        }
    }

    fn restore_into(&self, tree: &str, ws: &Workspace) -> Result<(), EnvsError> {
        let t = Instant::now();
        let stats = self.store.restore(tree, &ws.app())?;
        qval_sandbox::give_to_sandbox_user(&ws.ctl()).map_err(|e| EnvsError::Sandbox(format!("chown: {e}")))?;
        let c = &self.counters;
        add(&c.restore_ns, t.elapsed());
        c.restored_bytes.fetch_add(stats.bytes, Ordering::Relaxed);
        c.restored_entries.fetch_add(stats.entries as u64, Ordering::Relaxed);
        c.runs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn sandbox(&self, ws: &Workspace, env: &BTreeMap<String, String>) -> Bwrap {
        let mut b = Bwrap::on_root(ws.root())
            .bind(ws.app(), "/app")
            .bind(ws.ctl(), "/.qval")
            // Debian's /usr/bin/awk, editor, pager... are links through /etc/alternatives.
            .ro_bind_try("/etc/alternatives", "/etc/alternatives")
            .chdir("/app")
            .unset("PATH");
        for (k, v) in env {
            b = b.env(k, v);
        }
        b
    }

    /// Runs `command` from `state` in a fresh sandbox: the new working folder, variables,
    /// snapshot and screen.
    fn run_command(&self, state: &ShellState, command: &str) -> Result<ShellState, EnvsError> {
        let ws = Workspace::new(&self.work_dir, &[])?;
        self.restore_into(&state.tree, &ws)?;
        ws.write_ctl("wrapper.sh", WRAPPER)?;
        ws.write_ctl("command", command)?;
        ws.date_ctl()?;
        let mut cmd = self
            .sandbox(&ws, &state.env)
            .env("QVAL_CWD", &state.cwd)
            .command(["/usr/bin/bash", "/.qval/wrapper.sh"]);
        let t = Instant::now();
        let timeout = self.timeout(state);
        let out = run_captured_watched(
            &mut cmd,
            &self.limits,
            timeout,
            self.screen_cap,
            Some(self.tree_limit(&ws)),
        )
        .map_err(|e| EnvsError::Sandbox(e.to_string()))?;
        add(&self.counters.sandbox_ns, t.elapsed());
        let mut next = state.clone();
        if let Ok(cwd) = std::fs::read_to_string(ws.ctl().join("cwd")) {
            let cwd = cwd.trim_end_matches('\n');
            if cwd.starts_with('/') {
                next.cwd = cwd.to_string();
            }
        }
        if let Ok(bytes) = std::fs::read(ws.ctl().join("env")) {
            next.env = bytes
                .split(|b| *b == 0)
                .filter_map(|kv| {
                    let kv = String::from_utf8_lossy(kv);
                    let (k, v) = kv.split_once('=')?;
                    (!k.is_empty() && !VOLATILE_ENV.contains(&k)).then(|| (k.to_string(), v.to_string()))
                })
                .collect();
        }
        let t = Instant::now();
        let (tree, _) = self.store.snapshot(&ws.app(), &[], self.max_tree_bytes)?;
        add(&self.counters.snapshot_ns, t.elapsed());
        next.tree = tree;
        let mut screen = out.screen.text();
        if out.timed_out {
            screen.push_str(&format!(
                "\n[the command was killed after {:.0} s]",
                timeout.as_secs_f64()
            ));
        }
        if let Some(why) = &out.over_size {
            screen.push_str(&format!("\n[the command was killed: {why}]"));
        }
        next.last = Some(LastRun {
            cwd: state.cwd.clone(),
            command: command.to_string(),
            screen,
            exit_code: if out.timed_out { None } else { out.status.code() },
            timed_out: out.timed_out,
        });
        Ok(next)
    }

    /// The watchdog on the host folders bound writable (`/app`, `/.qval`), which bubblewrap
    /// cannot size: twice `max_tree_bytes` plus 16 MiB of disk blocks (block rounding;
    /// the snapshot then holds the tree to `max_tree_bytes` exactly), 100,000 entries.
    fn tree_limit(&self, ws: &Workspace) -> TreeLimit {
        TreeLimit {
            roots: vec![ws.app(), ws.ctl()],
            max_bytes: self.max_tree_bytes.saturating_mul(2).saturating_add(16 << 20),
            max_entries: 100_000,
        }
    }

    /// The command time limit: the builder's, capped by the task's `max_agent_timeout_sec`.
    fn timeout(&self, state: &ShellState) -> Duration {
        let agent = self
            .index
            .get(&state.task)
            .and_then(|&i| self.tasks[i].task.agent_timeout)
            .unwrap_or(Duration::MAX);
        self.command_timeout.min(agent)
    }

    /// Runs the task's tests on the snapshot `tree` in a fresh sandbox.
    ///
    /// # Errors
    /// The sandbox cannot run, or the snapshot is not in the store.
    pub fn run_tests(&self, task_id: &str, tree: &str) -> Result<TestRun, CoreError> {
        let entry = self.entry(task_id)?;
        let task = &entry.task;
        let extra: &[&str] = if task.tests_dir.is_some() { &["tests"] } else { &[] };
        let ws = Workspace::new(&self.work_dir, extra)?;
        self.restore_into(tree, &ws)?;
        let mut env = base_env();
        env.insert("TEST_DIR".into(), "/tests".into());
        let mut b = self.sandbox(&ws, &env);
        if let Some(dir) = &task.tests_dir {
            b = b.ro_bind(dir, "/tests");
        }
        let argv: Vec<&str> = match &task.run_tests {
            Some(script) => {
                let body = std::fs::read_to_string(script).map_err(|e| EnvsError::Task {
                    task: task.id.clone(),
                    message: format!("cannot read {}: {e}", script.display()),
                })?;
                ws.write_ctl("run-tests.sh", &body)?;
                vec!["/usr/bin/bash", "/.qval/run-tests.sh"]
            }
            None => {
                ws.write_ctl("runner.py", RUNNER)?;
                vec!["/usr/bin/python3", "-B", "/.qval/runner.py", "/tests"]
            }
        };
        ws.date_ctl()?;
        let mut cmd = b.command(argv);
        let t = Instant::now();
        let out = run_captured_watched(
            &mut cmd,
            &self.limits,
            task.test_timeout,
            self.screen_cap,
            Some(self.tree_limit(&ws)),
        )
        .map_err(|e| EnvsError::Sandbox(e.to_string()))?;
        add(&self.counters.sandbox_ns, t.elapsed());
        let mut output = out.screen.text();
        if out.timed_out {
            output.push_str(&format!("\n[the tests were killed after {:?}]", task.test_timeout));
        }
        Ok(TestRun {
            passed: !out.timed_out && out.status.success(),
            output,
        })
    }
}

impl TerminalBench {
    fn step_blocking(&self, state: &ShellState, action: &ShellAction) -> qval_core::Result<StepOutcome<ShellState>> {
        if state.tests.is_some() {
            return Err(EnvsError::Task {
                task: state.task.clone(),
                message: "the episode has ended (its tests ran); no step can follow".into(),
            }
            .into());
        }
        let mut next = match action {
            ShellAction::Submit => state.clone(),
            ShellAction::Run(command) => self.run_command(state, command)?,
        };
        next.commands.push(self.render_action(action));
        let last_step = next.commands.len() >= self.spec.max_steps;
        if *action == ShellAction::Submit || last_step {
            let tests = self.run_tests(&state.task, &next.tree)?;
            let reward = if tests.passed { 1.0 } else { 0.0 };
            next.tests = Some(tests);
            return Ok(StepOutcome {
                state: next,
                reward,
                terminated: true,
            });
        }
        Ok(StepOutcome {
            state: next,
            reward: 0.0,
            terminated: false,
        })
    }
}

impl Environment for TerminalBench {
    type State = ShellState;
    type Action = ShellAction;

    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn tasks(&self) -> Vec<Task> {
        self.tasks
            .iter()
            .map(|e| Task {
                id: e.task.id.clone(),
                instruction: e.task.instruction.clone(),
                params: json!({
                    "difficulty": e.task.difficulty,
                    "category": e.task.category,
                    "tags": e.task.tags,
                }),
            })
            .collect()
    }

    fn reset(&self, task: &Task, _rng: &mut QRng) -> qval_core::Result<ShellState> {
        let entry = self.entry(&task.id)?;
        Ok(ShellState {
            task: task.id.clone(),
            commands: Vec::new(),
            cwd: "/app".into(),
            env: base_env(),
            tree: entry.initial.clone(),
            last: None,
            tests: None,
        })
    }

    /// Blocks on the sandbox. Inside a multi-threaded tokio runtime (the labeler's points
    /// are tasks there) it tells the runtime first (`block_in_place`), so the other points
    /// keep running: sandboxes then run as many at a time as the labeler's `concurrency`
    /// (a few per core is best: a sandbox spends part of its time waiting on the kernel).
    fn step(
        &self,
        state: &ShellState,
        action: &ShellAction,
        _rng: &mut QRng,
    ) -> qval_core::Result<StepOutcome<ShellState>> {
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.step_blocking(state, action))
            }
            _ => self.step_blocking(state, action),
        }
    }

    fn observe(&self, state: &ShellState) -> Observation {
        let prompt = |cwd: &str| format!("agent@sandbox:{cwd}$ ");
        let mut text = String::new();
        if let Some(last) = &state.last {
            let mut cmd_lines = last.command.lines();
            text.push_str(&prompt(&last.cwd));
            text.push_str(cmd_lines.next().unwrap_or(""));
            for l in cmd_lines {
                text.push_str("\n> ");
                text.push_str(l);
            }
            text.push('\n');
            text.push_str(&last.screen);
            if !last.screen.is_empty() && !last.screen.ends_with('\n') {
                text.push('\n');
            }
            match (last.timed_out, last.exit_code) {
                (true, _) => {}
                (false, Some(0)) => {}
                (false, Some(c)) => text.push_str(&format!("[exit status {c}]\n")),
                (false, None) => text.push_str("[killed by a signal]\n"),
            }
        }
        if let Some(t) = &state.tests {
            text.push_str(if t.passed {
                "[submitted: the tests passed]\n"
            } else {
                "[submitted: the tests failed]\n"
            });
        } else {
            text.push_str(&prompt(&state.cwd));
        }
        Observation::text(text)
    }

    fn parse_action(&self, text: &str) -> ShellAction {
        ShellAction::from(text.to_string())
    }

    fn render_action(&self, action: &ShellAction) -> String {
        String::from(action.clone())
    }

    /// The task's tests passed at the end of the episode (read from the last state).
    fn succeeded(&self, trajectory: &qval_core::Trajectory) -> bool {
        trajectory
            .transitions
            .last()
            .and_then(|t| t.next_state.get("tests")?.get("passed")?.as_bool())
            .unwrap_or(false)
    }

    /// The scoring family's wording for shell sessions and the published context's prompt
    /// minimums.
    fn profile(&self) -> EnvProfile {
        super::profile::profile()
    }
}
