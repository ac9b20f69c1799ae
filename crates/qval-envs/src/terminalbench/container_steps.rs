//! A TerminalBench step and a test run in a container: the state's layer written over a
//! fresh container of the task's image, the command run by the same wrapper as in
//! bubblewrap, and the new layer read back from the container's writable layer.

use super::container::{LAYER_EXCLUDE, Restore, Shell, apply_layer, verifier_reward};
use super::env::{
    RUNNER, START_CWD, ShellFiles, ShellState, TaskEntry, TerminalBench, TestRun, VOLATILE_ENV, WRAPPER, add,
    after_command, base_env,
};
use super::store::io_err;
use crate::EnvsError;
use qval_sandbox::TreeLimit;
use qval_sandbox::container::Container;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The tmux wrapper ([`Shell::Tmux`]).
const WRAPPER_TMUX: &str = include_str!("wrapper_tmux.sh");

/// The entry script of a replayed step ([`Restore::Replay`]).
const REPLAY: &str = include_str!("replay.sh");

/// What a replayed run's whole limit allows beyond its commands' own (replay.sh's `timeout`
/// ends each of them first).
const REPLAY_SLACK: Duration = Duration::from_secs(5);

/// Variables the container engine sets: not part of a state.
const ENGINE_ENV: [&str; 2] = ["container", "HOSTNAME"];

/// Writes a file of qval's inside the container (created, not started): whatever the image
/// or the state has at the path is removed first, so a planted link is never followed.
fn write(root: &Path, rel: &str, body: &str) -> Result<(), EnvsError> {
    let p = super::container::inside(root, rel)?;
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    }
    super::container::remove_any(&p).map_err(|e| io_err("remove", &p, e))?;
    std::fs::write(&p, body).map_err(|e| io_err("write", &p, e))
}

impl TerminalBench {
    fn runtime_or_err(&self) -> Result<&super::container::ContainerRuntime, EnvsError> {
        self.runtime
            .as_ref()
            .ok_or_else(|| EnvsError::Sandbox("a task has an image but no container engine was found".into()))
    }

    /// A container of `image` with the state's layer written in and `files` added (control
    /// files, tests), ready to run `argv` with `env`.
    fn prepared(
        &self,
        image: &str,
        task: &str,
        tree: &str,
        argv: &[&str],
        env: &BTreeMap<String, String>,
        files: &[(&str, &str)],
    ) -> Result<Container, EnvsError> {
        let rt = self.runtime_or_err()?;
        let entry = self.index.get(task).map(|&i| &self.tasks[i]);
        let environment = entry.and_then(|e| e.task.environment.as_ref());
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let c = rt.container(image, argv, &env, environment, self.limits.memory)?;
        let t = Instant::now();
        let root = c.root().map_err(|e| EnvsError::Sandbox(e.to_string()))?;
        apply_layer(&self.store, tree, root)?;
        for (rel, body) in files {
            write(root, rel, body)?;
        }
        // The root, the control folder and the start folder (made by the image's `WORKDIR`
        // when it was built) get the fixed time too: `ls -la /` or `ls -la /app` must not show
        // when the step ran or the image was built. The root is 0755 whatever the engine made
        // it (podman's is 0555).
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| io_err("chmod", root, e))?;
        let fixed = super::store::restored_time();
        let start = root.join(START_CWD.trim_start_matches('/'));
        for p in [root.join(".qval"), start, root.to_path_buf()] {
            if p.exists() {
                qval_sandbox::set_times(&p, fixed).map_err(|e| io_err("date", &p, e))?;
            }
        }
        add(&self.counters.restore_ns, t.elapsed());
        self.counters.runs.fetch_add(1, Ordering::Relaxed);
        Ok(c)
    }

    /// A container for a replayed step or verifier ([`Restore::Replay`]): the task's starting
    /// files, the `commands` so far (SUBMIT aside) under `.qval/replay`, `files`, and replay.sh
    /// (with wrapper.sh) to run them and then `last` (a script, or `verify`) with its time
    /// limit, `variables` added to the container's. Returns it with the time its replays may
    /// take on top of that limit.
    fn replaying(
        &self,
        image: &str,
        task: &str,
        commands: &[String],
        last: (&str, Duration),
        files: &[(&str, &str)],
        variables: &[(&str, String)],
    ) -> Result<(Container, Duration), EnvsError> {
        let initial = self
            .index
            .get(task)
            .map(|&i| self.tasks[i].initial.as_str())
            .ok_or_else(|| EnvsError::Task {
                task: task.to_string(),
                message: "not loaded in this environment".into(),
            })?;
        let submit = String::from(super::ShellAction::Submit);
        let history: Vec<&str> = commands.iter().map(String::as_str).filter(|c| *c != submit).collect();
        let names: Vec<String> = (0..history.len()).map(|i| format!(".qval/replay/{i:05}")).collect();
        let mut all: Vec<(&str, &str)> = names.iter().map(String::as_str).zip(history.iter().copied()).collect();
        all.extend_from_slice(files);
        all.push((".qval/wrapper.sh", WRAPPER));
        let mut env = base_env();
        env.insert("QVAL_CWD".into(), START_CWD.into());
        env.insert("QVAL_LIMIT".into(), self.timeout(task).as_secs_f64().to_string());
        env.insert("QVAL_LAST_LIMIT".into(), last.1.as_secs_f64().to_string());
        env.insert("QVAL_LAST".into(), last.0.into());
        env.insert("QVAL_VOLATILE".into(), VOLATILE_ENV.join(" "));
        env.extend(variables.iter().map(|(k, v)| (k.to_string(), v.clone())));
        // The script is an argument, not a file a command could rewrite while bash reads it.
        let argv = ["/bin/bash", "-c", REPLAY, "replay"];
        let c = self.prepared(image, task, initial, &argv, &env, &all)?;
        // Each replay's limit, and the second its `timeout -k 1` may add.
        let each = self.timeout(task) + Duration::from_secs(1);
        Ok((c, each.saturating_mul(history.len() as u32) + REPLAY_SLACK))
    }

    /// The watchdog on the container's writable layer (the storage limit: the smaller of
    /// the task's `storage_mb` and twice `max_tree_bytes` plus 16 MiB).
    fn layer_limit(&self, c: &Container, task: &str) -> Result<TreeLimit, EnvsError> {
        let storage = self
            .index
            .get(task)
            .and_then(|&i| self.tasks[i].task.environment.as_ref())
            .map_or(u64::MAX, |e| e.storage_mb << 20);
        Ok(TreeLimit {
            roots: vec![c.upper().map_err(|e| EnvsError::Sandbox(e.to_string()))?],
            max_bytes: storage.min(self.max_tree_bytes.saturating_mul(2).saturating_add(16 << 20)),
            max_entries: 100_000,
        })
    }

    /// [`TerminalBench::run_command`] in a container of `image`.
    pub(super) fn run_command_in(
        &self,
        image: &str,
        state: &ShellState,
        command: &str,
    ) -> Result<ShellState, EnvsError> {
        let mut env = state.env.clone();
        env.insert("QVAL_CWD".into(), state.cwd.clone());
        let tmux = self.runtime_or_err()?.shell() == Shell::Tmux;
        // The entry script: tmux's, or one making stdout and stderr one stream, as in
        // bubblewrap (podman carries them apart).
        let (script, entry) = if tmux {
            (".qval/tmux.sh", WRAPPER_TMUX)
        } else {
            (".qval/entry.sh", "exec 2>&1\nexec /bin/bash /.qval/wrapper.sh\n")
        };
        let timeout = self.timeout(&state.task);
        let (c, replays) = if self.runtime_or_err()?.restore() == Restore::Replay {
            let step = [(".qval/step", command), (script, entry)];
            let last = format!("/{script}");
            self.replaying(image, &state.task, &state.commands, (&last, timeout), &step, &[])?
        } else {
            let files = [
                (".qval/wrapper.sh", WRAPPER),
                (".qval/command", command),
                (script, entry),
            ];
            let script = format!("/{script}");
            let argv = ["/bin/bash", script.as_str()];
            let c = self.prepared(image, &state.task, &state.tree, &argv, &env, &files)?;
            (c, Duration::ZERO)
        };
        let watch = self.layer_limit(&c, &state.task)?;
        let t = Instant::now();
        let mut out = c
            .run(timeout + replays, self.screen_cap, Some(watch))
            .map_err(|e| EnvsError::Sandbox(e.to_string()))?;
        if !replays.is_zero() {
            // The step's own command's limit (replay.sh's `timeout`), not the whole run's.
            let root = c.root().map_err(|e| EnvsError::Sandbox(e.to_string()))?;
            out.timed_out |= super::container::inside(root, ".qval/timed-out")?.exists();
        }
        add(&self.counters.sandbox_ns, t.elapsed());
        let root = c.root().map_err(|e| EnvsError::Sandbox(e.to_string()))?;
        let t = Instant::now();
        let upper = c.upper().map_err(|e| EnvsError::Sandbox(e.to_string()))?;
        let lower = c.lower().map_err(|e| EnvsError::Sandbox(e.to_string()))?;
        let (tree, _) = self
            .store
            .snapshot_layer(&upper, &lower, &LAYER_EXCLUDE, self.max_tree_bytes)?;
        add(&self.counters.snapshot_ns, t.elapsed());
        let files = ShellFiles {
            root,
            cwd: ".qval/cwd",
            env: ".qval/env",
            ignore: &ENGINE_ENV,
        };
        let mut next = after_command(state, command, &files, &out, timeout, tree);
        if tmux {
            // tmux's own variables are the session's, not the agent's.
            next.env.retain(|k, _| k != "TMUX" && k != "TMUX_PANE" && k != "TERM");
            if let Some(term) = state.env.get("TERM") {
                next.env.insert("TERM".into(), term.clone());
            }
        }
        Ok(next)
    }

    /// [`TerminalBench::run_tests`] in a container of `image`: the tests folder copied to
    /// `/tests` (only now), then `tests/test.sh` (Harbor: the reward is what it writes to
    /// `/logs/verifier/reward.txt` or `reward.json`), `run-tests.sh`, or qval's runner.
    /// With [`Restore::Replay`] and `commands`, those run again first from the task's start
    /// (`tree` is what they leave); without, the tests run on `tree`.
    pub(super) fn run_tests_in(
        &self,
        image: &str,
        entry: &TaskEntry,
        tree: &str,
        commands: &[String],
    ) -> Result<TestRun, EnvsError> {
        let task = &entry.task;
        let mut env = base_env();
        env.insert("TEST_DIR".into(), "/tests".into());
        let mut bodies: Vec<(String, String)> = Vec::new();
        let harbor = task.environment.is_some();
        let argv: Vec<&str> = match (&task.run_tests, harbor) {
            (Some(_), true) => vec!["/bin/bash", "/tests/test.sh"],
            (Some(script), false) => {
                let body = std::fs::read_to_string(script).map_err(|e| io_err("read", script, e))?;
                bodies.push((".qval/run-tests.sh".into(), body));
                vec!["/bin/bash", "/.qval/run-tests.sh"]
            }
            (None, _) => {
                bodies.push((".qval/runner.py".into(), RUNNER.into()));
                vec!["/usr/bin/python3", "-B", "/.qval/runner.py", "/tests"]
            }
        };
        bodies.push(("logs/verifier/.keep".into(), String::new()));
        let files: Vec<(&str, &str)> = bodies.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        // stdout and stderr as one stream, as in bubblewrap.
        let argv: Vec<&str> = ["/bin/bash", "-c", "exec 2>&1; exec \"$0\" \"$@\""]
            .into_iter()
            .chain(argv)
            .collect();
        let replay = self.runtime_or_err()?.restore() == Restore::Replay && !commands.is_empty();
        let (c, replays) = if replay {
            // In the container's variables, which no command can change, a line each.
            let venv: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let verify = [
                ("QVAL_VERIFY_ARGV", argv.join("\n")),
                ("QVAL_VERIFY_ENV", venv.join("\n")),
            ];
            let last = ("verify", task.test_timeout);
            self.replaying(image, &task.id, commands, last, &files, &verify)?
        } else {
            (
                self.prepared(image, &task.id, tree, &argv, &env, &files)?,
                Duration::ZERO,
            )
        };
        let root = c.root().map_err(|e| EnvsError::Sandbox(e.to_string()))?;
        if let Some(dir) = &task.tests_dir {
            // A fresh folder: whatever the agent left at /tests (a link, a conftest.py) goes.
            let to = super::container::inside(root, "tests")?;
            super::container::remove_any(&to).map_err(|e| io_err("remove", &to, e))?;
            super::harbor::copy_tree(dir, &to).map_err(|e| io_err("copy", dir, e))?;
        }
        let watch = self.layer_limit(&c, &task.id)?;
        let t = Instant::now();
        let out = c
            .run(task.test_timeout + replays, self.screen_cap, Some(watch))
            .map_err(|e| EnvsError::Sandbox(e.to_string()))?;
        add(&self.counters.sandbox_ns, t.elapsed());
        let mut output = out.screen.text();
        if out.timed_out {
            output.push_str(&format!("\n[the tests were killed after {:?}]", task.test_timeout));
        }
        if !harbor {
            return Ok(TestRun {
                passed: !out.timed_out && out.status.success(),
                output,
                reward: None,
            });
        }
        let reward = verifier_reward(root, &mut output);
        Ok(TestRun {
            passed: reward.is_some_and(|r| r > 0.0),
            output,
            reward: Some(reward.unwrap_or(0.0)),
        })
    }
}
