//! The builder of [`TerminalBench`]: parameters, tasks, and each task's runtime.

use super::container::{ContainerRuntime, DEFAULT_BASE_IMAGE, Restore, RuntimeChoice, Shell, starting_layer};
use super::env::{Counters, TaskEntry, TerminalBench, default_work_dir};
use super::harbor::StartingFiles;
use super::store::Store;
use super::task::{RESERVED, ShellTask, split_commands};
use crate::EnvsError;
use qval_core::EnvSpec;
use qval_sandbox::Limits;
use qval_sandbox::container::EngineKind;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
/// | `runtime` | [`RuntimeChoice::Auto`]: bubblewrap for the tasks it can run, containers for the others |
/// | `engine` | podman, else docker, whichever answers ([`EngineKind`]) |
/// | `base_image` | [`DEFAULT_BASE_IMAGE`] (`QVAL_BASE_IMAGE` in the Dockerfiles) |
/// | `allow_internet` | false: no task gets the network, whatever it asks |
/// | `max_unrunnable` | 0.5: the most tasks (a fraction) that may be left out because they cannot run |
/// | `shell` | [`Shell::Exec`]; [`Shell::Tmux`] types each command into a tmux session |
/// | `restore` | [`Restore::Snapshot`]; [`Restore::Replay`] runs a state's commands again, so its processes run |
/// | `build_logs` | `<store_dir>/builds`, else the system temporary folder |
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
    runtime: RuntimeChoice,
    base_image: String,
    allow_internet: bool,
    max_unrunnable: f64,
    build_logs: Option<PathBuf>,
    shell: Shell,
    restore: Restore,
    engine: Option<EngineKind>,
}

impl TerminalBench {
    /// A builder with the defaults.
    pub fn builder() -> TerminalBenchBuilder {
        TerminalBenchBuilder::new()
    }
}

impl TerminalBenchBuilder {
    pub(super) fn new() -> Self {
        TerminalBenchBuilder {
            tasks_dir: TerminalBench::shipped_tasks_dir(),
            only: None,
            store_dir: None,
            max_steps: 40,
            gamma: 0.95,
            command_timeout: Duration::from_secs(10),
            screen_cap: 4096,
            limits: Limits::default(),
            max_tree_bytes: 64 << 20,
            work_dir: None,
            runtime: RuntimeChoice::Auto,
            base_image: DEFAULT_BASE_IMAGE.to_string(),
            allow_internet: false,
            max_unrunnable: 0.5,
            build_logs: None,
            shell: Shell::Exec,
            restore: Restore::Snapshot,
            engine: None,
        }
    }
    /// The container engine: podman or docker (default: podman, else docker, whichever
    /// answers).
    pub fn engine(mut self, engine: EngineKind) -> Self {
        self.engine = Some(engine);
        self
    }
    /// How container steps restore a state: [`Restore::Snapshot`] (the default) or
    /// [`Restore::Replay`] (needs [`RuntimeChoice::Container`]).
    pub fn restore(mut self, restore: Restore) -> Self {
        self.restore = restore;
        self
    }
    /// How container steps reach bash: [`Shell::Exec`] (the default) or [`Shell::Tmux`].
    pub fn shell(mut self, shell: Shell) -> Self {
        self.shell = shell;
        self
    }
    /// Which runtime runs the commands.
    pub fn runtime(mut self, r: RuntimeChoice) -> Self {
        self.runtime = r;
        self
    }
    /// The image the tasks' Dockerfiles build `FROM` (their `QVAL_BASE_IMAGE`).
    pub fn base_image(mut self, image: impl Into<String>) -> Self {
        self.base_image = image.into();
        self
    }
    /// Whether tasks that ask for the network (`allow_internet`) get it.
    pub fn allow_internet(mut self, yes: bool) -> Self {
        self.allow_internet = yes;
        self
    }
    /// The largest fraction of the tasks that may be left out because they cannot run.
    pub fn max_unrunnable(mut self, fraction: f64) -> Self {
        self.max_unrunnable = fraction;
        self
    }
    /// Where image build logs are kept.
    pub fn build_logs(mut self, dir: impl Into<PathBuf>) -> Self {
        self.build_logs = Some(dir.into());
        self
    }
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

    /// Validates, loads the tasks, checks their runtime (bubblewrap, or a container engine
    /// and each task's image, built now unless cached) and stores their starting states.
    /// Tasks that cannot run are left out and listed ([`TerminalBench::unrunnable`]).
    ///
    /// # Errors
    /// [`EnvsError::Sandbox`] when more than `max_unrunnable` of the tasks cannot run, or a
    /// task named by `only` cannot (nothing runs unconfined);
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
        if !(0.0..=1.0).contains(&self.max_unrunnable) {
            return Err(invalid(
                "max_unrunnable",
                self.max_unrunnable.to_string(),
                "a fraction in [0, 1]",
            ));
        }
        if self.restore == Restore::Replay && self.runtime != RuntimeChoice::Container {
            return Err(invalid(
                "restore",
                "replay".into(),
                "replaying commands needs runtime = \"container\"",
            ));
        }
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
        let prep = Prepare::new(&self, &store, &all)?;
        let mut tasks = Vec::with_capacity(all.len());
        let mut unrunnable = Vec::new();
        for task in all {
            match prep.entry(task) {
                Ok(entry) => tasks.push(entry),
                Err((id, why)) => unrunnable.push((id, why)),
            }
        }
        let runtime = prep.runtime;
        let listed = || {
            unrunnable
                .iter()
                .map(|(id, why)| format!("{id}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let total = tasks.len() + unrunnable.len();
        if self.only.is_some() && !unrunnable.is_empty() || tasks.is_empty() {
            return Err(EnvsError::Sandbox(format!("tasks that cannot run here: {}", listed())));
        }
        if unrunnable.len() as f64 > self.max_unrunnable * total as f64 {
            return Err(EnvsError::Sandbox(format!(
                "{} of {total} tasks cannot run here, more than max_unrunnable = {}: {}",
                unrunnable.len(),
                self.max_unrunnable,
                listed()
            )));
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
        let mut spec = spec;
        if self.restore == Restore::Replay {
            spec.notes.push_str(
                " Tasks run in a container that keeps every file between commands, not only /app, and \
                 each step first runs the earlier commands again, so processes they started (a server) \
                 keep running.",
            );
        } else if tasks.iter().any(|t| t.image.is_some()) {
            spec.notes.push_str(
                " Tasks that run in a container keep every file of the container between commands, \
                 not only /app (background processes still end with the command).",
            );
        }
        if tasks.iter().any(|t| t.task.environment.is_some()) {
            spec.reward_description
                .push_str(" A Harbor task's verifier may give a reward between 0 and 1 (partial credit).");
        }
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
            runtime,
            unrunnable,
        })
    }
}

/// What each task needs to start: the runtimes available and the stores.
struct Prepare<'a> {
    store: &'a Store,
    max_tree_bytes: u64,
    bubblewrap: Result<(), String>,
    runtime: Option<ContainerRuntime>,
    engine_missing: Option<String>,
    all_in_containers: bool,
}

impl<'a> Prepare<'a> {
    fn new(b: &TerminalBenchBuilder, store: &'a Store, tasks: &[ShellTask]) -> Result<Self, EnvsError> {
        let needs_container = |t: &ShellTask| {
            t.environment
                .as_ref()
                .is_some_and(|e| matches!(e.starting, StartingFiles::NeedsContainer(_)))
        };
        let want_engine = match b.runtime {
            RuntimeChoice::Bubblewrap => false,
            RuntimeChoice::Container => true,
            RuntimeChoice::Auto => tasks.iter().any(needs_container),
        };
        let (runtime, engine_missing) = if want_engine {
            match qval_sandbox::container::Engine::detect(b.engine) {
                Ok(engine) => {
                    let logs = b.build_logs.clone().unwrap_or_else(|| match &b.store_dir {
                        Some(d) => d.join("builds"),
                        None => std::env::temp_dir().join("qval-builds"),
                    });
                    let rt = ContainerRuntime::new(engine, b.base_image.clone(), b.allow_internet, logs, b.shell)
                        .with_restore(b.restore);
                    (Some(rt), None)
                }
                Err(e) if b.runtime == RuntimeChoice::Container => {
                    return Err(EnvsError::Sandbox(format!("runtime = \"container\": {e}")));
                }
                Err(e) => (None, Some(e.to_string())),
            }
        } else {
            (None, None)
        };
        let all_in_containers = b.runtime == RuntimeChoice::Container;
        let bubblewrap = if all_in_containers || tasks.iter().all(needs_container) {
            Ok(())
        } else {
            qval_sandbox::bubblewrap_works().map_err(|e| {
                format!("TerminalBench runs commands only inside bubblewrap or a container, and bubblewrap cannot run here: {e}")
            })
        };
        if let Err(e) = &bubblewrap
            && runtime.is_none()
        {
            return Err(EnvsError::Sandbox(e.clone()));
        }
        Ok(Prepare {
            store,
            max_tree_bytes: b.max_tree_bytes,
            bubblewrap,
            runtime,
            engine_missing,
            all_in_containers,
        })
    }

    /// The task ready to run, or its id and why it cannot.
    fn entry(&self, task: ShellTask) -> Result<TaskEntry, (String, String)> {
        let id = task.id.clone();
        let fail = |e: EnvsError| (id.clone(), e.to_string());
        let steps = split_commands(&task.solution).map_err(|e| (id.clone(), format!("its solution: {e}")))?;
        let in_container = self.all_in_containers
            || task
                .environment
                .as_ref()
                .is_some_and(|e| matches!(e.starting, StartingFiles::NeedsContainer(_)))
            || self.bubblewrap.is_err();
        let (initial, image) = if in_container {
            let Some(rt) = &self.runtime else {
                let line = match task.environment.as_ref().map(|e| &e.starting) {
                    Some(StartingFiles::NeedsContainer(l)) => l.clone(),
                    _ => String::new(),
                };
                let why = self
                    .engine_missing
                    .clone()
                    .unwrap_or_else(|| "runtime = \"bubblewrap\"".into());
                return Err((id, format!("needs a container ({line}), and {why}")));
            };
            let built = rt.image(&id, task.environment.as_ref()).map_err(fail)?;
            let initial = match &task.environment {
                None => starting_layer(self.store, &task.dir, &RESERVED, self.max_tree_bytes).map_err(fail)?,
                Some(_) => {
                    let empty = tempfile::tempdir().map_err(|e| (id.clone(), e.to_string()))?;
                    self.store.snapshot_layer(empty.path(), &[], &[], 0).map_err(fail)?.0
                }
            };
            (initial, Some(built))
        } else {
            let initial = match task.environment.as_ref().map(|e| (&e.starting, &e.context)) {
                Some((StartingFiles::Copies(copies), context)) => {
                    let tmp = tempfile::tempdir().map_err(|e| (id.clone(), e.to_string()))?;
                    super::harbor::materialize(&id, context, copies, tmp.path()).map_err(fail)?;
                    self.store
                        .snapshot_checkout(tmp.path(), &[], self.max_tree_bytes)
                        .map_err(fail)?
                        .0
                }
                _ => {
                    self.store
                        .snapshot_checkout(&task.dir, &RESERVED, self.max_tree_bytes)
                        .map_err(fail)?
                        .0
                }
            };
            (initial, None)
        };
        // Starting files relative to /app (a layer holds them under app/).
        let files = self
            .store
            .tree(&initial)
            .map_err(fail)?
            .into_iter()
            .filter(|e| matches!(e.kind, super::store::EntryKind::File { .. }))
            .filter_map(|e| match &image {
                Some(_) => e.path.strip_prefix("app/").map(str::to_string),
                None => Some(e.path),
            })
            .collect();
        let own_image = task.environment.is_some();
        Ok(TaskEntry {
            task,
            initial,
            files,
            steps,
            image: image.as_ref().map(|b| b.tag.clone()),
            // Only a task's own Dockerfile is a build (the others run on the base image).
            build: image.filter(|_| own_image),
        })
    }
}
