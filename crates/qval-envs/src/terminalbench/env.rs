//! The TerminalBench environment: shell states, actions and sandboxed steps.

use super::container::ContainerRuntime;
use super::store::Store;
use super::task::ShellTask;
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

pub(super) const WRAPPER: &str = include_str!("wrapper.sh");
pub(super) const RUNNER: &str = include_str!("runner.py");

/// Variables every shell starts with.
pub const BASE_ENV: [(&str, &str); 4] = [
    ("HOME", "/app"),
    ("LANG", "C.UTF-8"),
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("TERM", "dumb"),
];

/// [`BASE_ENV`] as a state's variables.
pub(super) fn base_env() -> BTreeMap<String, String> {
    BASE_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The folder a task's shell starts in.
pub(super) const START_CWD: &str = "/app";

/// Variables bash maintains itself; not part of a state.
pub(super) const VOLATILE_ENV: [&str; 4] = ["OLDPWD", "PWD", "SHLVL", "_"];

/// Where the step wrapper left the shell's folder and variables.
pub(super) struct ShellFiles<'a> {
    /// The folder the two paths are under (a host path).
    pub(super) root: &'a Path,
    /// The working folder's file.
    pub(super) cwd: &'a str,
    /// The variables' file (`env -0`).
    pub(super) env: &'a str,
    /// Variables that are not the agent's (the runtime's own).
    pub(super) ignore: &'a [&'a str],
}

/// The state after `command` ran from `state`: the shell's folder and variables as the
/// wrapper wrote them (read without following a link, at most 4 KiB and 1 MiB: the
/// sandbox can write there), the new `tree`, and the screen with the reason it was cut.
pub(super) fn after_command(
    state: &ShellState,
    command: &str,
    files: &ShellFiles<'_>,
    out: &qval_sandbox::Captured,
    timeout: Duration,
    tree: String,
) -> ShellState {
    let mut next = state.clone();
    if let Some(cwd) = super::container::read_inside(files.root, files.cwd, 4096) {
        let cwd = String::from_utf8_lossy(&cwd);
        let cwd = cwd.trim_end_matches('\n');
        if cwd.starts_with('/') {
            next.cwd = cwd.to_string();
        }
    }
    if let Some(bytes) = super::container::read_inside(files.root, files.env, 1 << 20) {
        next.env = bytes
            .split(|b| *b == 0)
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                let (k, v) = kv.split_once('=')?;
                (!k.is_empty() && !VOLATILE_ENV.contains(&k) && !files.ignore.contains(&k))
                    .then(|| (k.to_string(), v.to_string()))
            })
            .collect();
    }
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
    next
}

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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestRun {
    /// Whether they passed (a Harbor verifier: its reward is positive).
    pub passed: bool,
    /// Their output (head and tail).
    pub output: String,
    /// A Harbor verifier's reward (`/logs/verifier/reward.txt` or `reward.json`), which
    /// need not be 0 or 1; `None` for tests whose exit status decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<f64>,
}

/// A TerminalBench state; small (the files live in the [`Store`] under `tree`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
pub(super) struct Counters {
    pub(super) runs: AtomicU64,
    pub(super) restore_ns: AtomicU64,
    pub(super) sandbox_ns: AtomicU64,
    pub(super) snapshot_ns: AtomicU64,
    restored_bytes: AtomicU64,
    restored_entries: AtomicU64,
}

pub(super) struct TaskEntry {
    pub(super) task: ShellTask,
    pub(super) initial: String,
    pub(super) files: Vec<String>,
    pub(super) steps: Vec<String>,
    /// The container image (container runtime only).
    pub(super) image: Option<String>,
    /// How the image was had: built now or found cached.
    pub(super) build: Option<super::container::Built>,
}

/// The TerminalBench environment. Build with [`TerminalBench::builder`].
pub struct TerminalBench {
    pub(super) spec: EnvSpec,
    pub(super) tasks: Vec<TaskEntry>,
    pub(super) index: HashMap<String, usize>,
    pub(super) store: Arc<Store>,
    pub(super) command_timeout: Duration,
    pub(super) screen_cap: usize,
    pub(super) limits: Limits,
    pub(super) max_tree_bytes: u64,
    pub(super) work_dir: PathBuf,
    pub(super) counters: Counters,
    pub(super) runtime: Option<ContainerRuntime>,
    pub(super) unrunnable: Vec<(String, String)>,
}

/// `/dev/shm` when this process can make folders there and it has 1 GiB free (containers
/// often give it 64 MiB), else the temporary folder.
pub(super) fn default_work_dir() -> PathBuf {
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
        qval_sandbox::fixed_root(&dir.path().join("root"), &mounts, super::store::restored_time())
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
            qval_sandbox::set_times(&p, super::store::restored_time())
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

pub(super) fn add(counter: &AtomicU64, d: Duration) {
    counter.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
}

impl TerminalBench {
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

    /// Tasks of the folder left out because they cannot run here, with the reason (a
    /// build that failed, a missing runtime).
    pub fn unrunnable(&self) -> &[(String, String)] {
        &self.unrunnable
    }

    /// Each task image and how it was had (built now, or found in the engine's cache), in
    /// task order.
    pub fn image_builds(&self) -> Vec<(&str, &super::container::Built)> {
        self.tasks
            .iter()
            .filter_map(|t| t.build.as_ref().map(|b| (t.task.id.as_str(), b)))
            .collect()
    }

    /// The container image task `id` runs in, when it runs in a container.
    pub fn image(&self, id: &str) -> Option<&str> {
        self.index.get(id).and_then(|&i| self.tasks[i].image.as_deref())
    }

    /// The task's solution script split into top-level commands ([`split_commands`]).
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
        if let Some(image) = self.image(&state.task) {
            return self.run_command_in(image, state, command);
        }
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
        let timeout = self.timeout(&state.task);
        let out = run_captured_watched(
            &mut cmd,
            &self.limits,
            timeout,
            self.screen_cap,
            Some(self.tree_limit(&ws)),
        )
        .map_err(|e| EnvsError::Sandbox(e.to_string()))?;
        add(&self.counters.sandbox_ns, t.elapsed());
        let t = Instant::now();
        let (tree, _) = self.store.snapshot(&ws.app(), &[], self.max_tree_bytes)?;
        add(&self.counters.snapshot_ns, t.elapsed());
        let shell = ShellFiles {
            root: &ws.ctl(),
            cwd: "cwd",
            env: "env",
            ignore: &[],
        };
        Ok(after_command(state, command, &shell, &out, timeout, tree))
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
    pub(super) fn timeout(&self, task: &str) -> Duration {
        let agent = self
            .index
            .get(task)
            .and_then(|&i| self.tasks[i].task.agent_timeout)
            .unwrap_or(Duration::MAX);
        self.command_timeout.min(agent)
    }

    /// Runs the task's tests on the snapshot `tree` in a fresh sandbox (the files alone: with
    /// [`Restore::Replay`](super::Restore::Replay) too, no command runs again first).
    ///
    /// # Errors
    /// The sandbox cannot run, or the snapshot is not in the store.
    pub fn run_tests(&self, task_id: &str, tree: &str) -> Result<TestRun, CoreError> {
        self.tests_after(task_id, tree, &[])
    }

    /// [`TerminalBench::run_tests`] after `commands` (replayed first with [`Restore::Replay`](super::Restore::Replay)).
    fn tests_after(&self, task_id: &str, tree: &str, commands: &[String]) -> Result<TestRun, CoreError> {
        let entry = self.entry(task_id)?;
        if let Some(image) = &entry.image {
            return Ok(self.run_tests_in(image, entry, tree, commands)?);
        }
        let task = &entry.task;
        let harbor = task.environment.is_some();
        let extra: &[&str] = match (task.tests_dir.is_some(), harbor) {
            (true, true) => &["tests", "logs"],
            (true, false) => &["tests"],
            _ => &[],
        };
        let ws = Workspace::new(&self.work_dir, extra)?;
        self.restore_into(tree, &ws)?;
        let mut env = base_env();
        env.insert("TEST_DIR".into(), "/tests".into());
        let mut b = self.sandbox(&ws, &env);
        if let Some(dir) = &task.tests_dir {
            b = b.ro_bind(dir, "/tests");
        }
        if harbor {
            // A Harbor verifier writes its reward under /logs/verifier.
            let logs = ws.ctl().join("logs");
            std::fs::create_dir_all(logs.join("verifier"))
                .and_then(|()| qval_sandbox::give_to_sandbox_user(&logs))
                .and_then(|()| qval_sandbox::give_to_sandbox_user(&logs.join("verifier")))
                .map_err(|e| EnvsError::Sandbox(format!("the verifier's logs folder: {e}")))?;
            b = b.bind(logs, "/logs");
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
        if harbor {
            let reward = super::container::verifier_reward(&ws.ctl(), &mut output);
            return Ok(TestRun {
                passed: reward.is_some_and(|r| r > 0.0),
                output,
                reward: Some(reward.unwrap_or(0.0)),
            });
        }
        Ok(TestRun {
            passed: !out.timed_out && out.status.success(),
            output,
            reward: None,
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
            let tests = self.tests_after(&state.task, &next.tree, &next.commands)?;
            let reward = tests.reward.unwrap_or(if tests.passed { 1.0 } else { 0.0 });
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
            cwd: START_CWD.into(),
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
