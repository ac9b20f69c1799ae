//! A sandbox for generated Python: one long-lived worker process per sample, fed points as
//! JSON lines.
//!
//! Containment, outermost first:
//! - **bubblewrap** (`bwrap`, Debian package `bubblewrap`): new user, PID, network, IPC and
//!   UTS namespaces (no network at all), the system mounted read-only (`/usr` only: no
//!   `/etc`, `/home`, `/root`), a private working folder (a [`WORK_BYTES`] tmpfs), a
//!   fresh `/tmp` and `/dev/shm` of limited size, the rest of `/dev` read-only, and the
//!   whole tree killed with the worker;
//! - **an unprivileged user**: when qval runs as root the worker drops to uid/gid 65534, so
//!   resource limits on processes apply (the kernel exempts root from `RLIMIT_NPROC`);
//! - **resource limits** (setrlimit): address space (memory), processes, CPU seconds, file
//!   size, no core dumps;
//! - **inside Python**: only the allowed modules importable, dangerous builtins (`open`,
//!   `exec`, `eval`, `compile`, `input`, ...) removed;
//! - **output**: the sample's prints and anything written to descriptors 1 and 2 (even
//!   through the real `posix` module) are measured after each call and dropped; more than
//!   the output cap makes that point NaN with the reason;
//! - **a reply channel the sample cannot forge**: replies travel on a descriptor apart
//!   from the sample's output and carry the nonce of the message they answer, fresh and
//!   random per call, so a line written by the sample is skipped, never taken as the
//!   answer of another point;
//! - **from the host**: a per-call time limit (a stuck worker is killed and restarted), a
//!   total time limit per sample, more than the output cap on the reply channel kills the
//!   worker; a sample whose calls time out [`SandboxConfig::abandon_after`] times in a row
//!   (default 3) is abandoned: its worker is stopped and its remaining points are NaN with
//!   the reason, so code that never returns costs a few call limits, not one per point.
//!
//! Where bubblewrap is missing or cannot create namespaces, [`Sandbox::new`] fails with an
//! error naming the package to install: qval never runs generated code without it unless
//! [`Isolation::LimitsOnly`] is chosen explicitly, which keeps the resource limits and the
//! Python-level restrictions but gives no network or filesystem isolation.

use qval_sandbox::{Bwrap, Limits, give_to_sandbox_user, limits_hook};
pub use qval_sandbox::{SandboxError, bubblewrap_works};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The worker program.
const WORKER: &str = include_str!("worker.py");

/// Size of the sample's private working folder `/work` under bubblewrap (a tmpfs: the
/// total of everything written there, the sample's output file included).
pub const WORK_BYTES: u64 = 64 << 20;

/// The modules generated code may import (the published allowlist).
pub const ALLOWED_MODULES: [&str; 7] = ["collections", "itertools", "json", "math", "re", "statistics", "string"];

/// How the worker is isolated from the host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// bubblewrap namespaces + limits (default; required unless stated otherwise).
    #[default]
    Bubblewrap,
    /// Resource limits and Python-level restrictions only: no network or filesystem
    /// isolation. For machines without user namespaces, chosen knowingly.
    LimitsOnly,
}

/// Limits of a sandbox. Build with [`SandboxConfig::builder`].
///
/// | parameter | default |
/// |---|---|
/// | `call_limit` | 1 s per call |
/// | `total_limit` | 600 s per sample (calls and worker restarts) |
/// | `abandon_after` | 3 calls in a row that time out abandon the sample |
/// | `memory` | 1 GiB address space |
/// | `processes` | 256 for the sandbox user (shared by all samples running at once) |
/// | `output_cap` | 64 KiB of output per call (prints and writes), and per reply |
/// | `python` | `/usr/bin/python3` (must live under `/usr`, which the sandbox mounts) |
/// | `isolation` | bubblewrap |
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxConfig {
    /// Wall-clock limit of one call.
    pub call_limit: Duration,
    /// Wall-clock limit of all calls of one sample.
    pub total_limit: Duration,
    /// Calls in a row that time out (the worker's alarm or the host's limit) after which
    /// the sample is abandoned: its later calls fail at once with the reason.
    pub abandon_after: usize,
    /// Address-space limit in bytes.
    pub memory: u64,
    /// Process limit of the sandbox user.
    pub processes: u64,
    /// Most output per call (and longest reply) in bytes; past it the point is NaN.
    pub output_cap: usize,
    /// The Python interpreter.
    pub python: PathBuf,
    /// The isolation.
    pub isolation: Isolation,
}

impl SandboxConfig {
    /// A builder with the defaults.
    pub fn builder() -> SandboxConfigBuilder {
        SandboxConfigBuilder(SandboxConfig {
            call_limit: Duration::from_secs(1),
            total_limit: Duration::from_secs(600),
            abandon_after: 3,
            memory: 1 << 30,
            processes: 256,
            output_cap: 64 * 1024,
            python: PathBuf::from("/usr/bin/python3"),
            isolation: Isolation::Bubblewrap,
        })
    }
}

/// Builder of [`SandboxConfig`].
#[derive(Clone, Debug)]
pub struct SandboxConfigBuilder(SandboxConfig);

impl SandboxConfigBuilder {
    /// Per-call limit (default 1 s).
    pub fn call_limit(mut self, d: Duration) -> Self {
        self.0.call_limit = d;
        self
    }
    /// Per-sample limit (default 600 s).
    pub fn total_limit(mut self, d: Duration) -> Self {
        self.0.total_limit = d;
        self
    }
    /// Calls in a row that time out before the sample is abandoned (default 3).
    pub fn abandon_after(mut self, n: usize) -> Self {
        self.0.abandon_after = n;
        self
    }
    /// Memory in bytes (default 1 GiB).
    pub fn memory(mut self, bytes: u64) -> Self {
        self.0.memory = bytes;
        self
    }
    /// Processes (default 256).
    pub fn processes(mut self, n: u64) -> Self {
        self.0.processes = n;
        self
    }
    /// Reply cap in bytes (default 64 KiB).
    pub fn output_cap(mut self, bytes: usize) -> Self {
        self.0.output_cap = bytes;
        self
    }
    /// The interpreter (default `/usr/bin/python3`).
    pub fn python(mut self, p: impl Into<PathBuf>) -> Self {
        self.0.python = p.into();
        self
    }
    /// The isolation (default bubblewrap).
    pub fn isolation(mut self, i: Isolation) -> Self {
        self.0.isolation = i;
        self
    }
    /// Validates.
    ///
    /// # Errors
    /// A zero limit (`abandon_after` included), less than 64 MiB of memory, or a Python outside `/usr` under bubblewrap.
    pub fn build(self) -> Result<SandboxConfig, SandboxError> {
        let c = self.0;
        if c.call_limit.is_zero() || c.total_limit.is_zero() {
            return Err(SandboxError::Config("time limits must be positive".into()));
        }
        if c.abandon_after == 0 {
            return Err(SandboxError::Config("abandon_after = 0: give at least 1 call".into()));
        }
        if c.memory < 64 << 20 {
            return Err(SandboxError::Config(format!(
                "memory = {} bytes: at least 64 MiB",
                c.memory
            )));
        }
        if c.processes == 0 || c.output_cap < 256 {
            return Err(SandboxError::Config("processes >= 1 and output_cap >= 256".into()));
        }
        if c.isolation == Isolation::Bubblewrap && !c.python.starts_with("/usr") {
            return Err(SandboxError::Config(format!(
                "python = {}: under bubblewrap only /usr is mounted; use e.g. /usr/bin/python3 (apt-get install python3)",
                c.python.display()
            )));
        }
        Ok(c)
    }
}

/// The outcome of one call: a value, or why there is none.
pub type CallResult = Result<f64, String>;

/// Why an exchange with the worker failed, and whether it was the time limit.
struct Failed {
    reason: String,
    timed_out: bool,
}

impl Failed {
    fn other(reason: impl Into<String>) -> Self {
        Failed {
            reason: reason.into(),
            timed_out: false,
        }
    }
}

/// Reads one line of at most `cap` bytes; `Ok(None)` at end of stream, `Err` when too long.
async fn read_line_capped<R: AsyncBufRead + Unpin>(r: &mut R, cap: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() { None } else { Some(line) });
        }
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            line.extend_from_slice(&buf[..i]);
            r.consume(i + 1);
            return Ok(Some(line));
        }
        let n = buf.len();
        line.extend_from_slice(buf);
        r.consume(n);
        if line.len() > cap {
            return Err(std::io::Error::other(format!(
                "a reply longer than the output cap of {cap} bytes"
            )));
        }
    }
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    _dir: tempfile::TempDir,
}

impl Worker {
    async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// One generated sample, loaded in its worker. Calls are sequential; a worker that crashes
/// or hangs is restarted and the sample goes on.
pub struct Sandbox {
    config: SandboxConfig,
    code: String,
    params: Vec<String>,
    worker: Option<Worker>,
    used: Duration,
    restarts: usize,
    timeouts_in_a_row: usize,
    abandoned: Option<String>,
}

impl Sandbox {
    /// Starts a worker and loads `code`, which must define `signal_function(params...)`.
    ///
    /// # Errors
    /// `Err(Err(SandboxError))` if the sandbox cannot run at all; `Err(Ok(reason))` if the
    /// code does not load (syntax error, forbidden import at top level, wrong signature).
    pub async fn new(
        config: &SandboxConfig,
        code: &str,
        params: &[&str],
    ) -> Result<Sandbox, Result<String, SandboxError>> {
        if config.isolation == Isolation::Bubblewrap {
            bubblewrap_works().map_err(Err)?;
        }
        let mut sb = Sandbox {
            config: config.clone(),
            code: code.to_string(),
            params: params.iter().map(|s| s.to_string()).collect(),
            worker: None,
            used: Duration::ZERO,
            restarts: 0,
            timeouts_in_a_row: 0,
            abandoned: None,
        };
        sb.start().await?;
        Ok(sb)
    }

    /// Times a crashed or stuck worker was restarted.
    pub fn restarts(&self) -> usize {
        self.restarts
    }

    /// Why the sample was abandoned (its calls kept timing out), if it was.
    pub fn abandoned(&self) -> Option<&str> {
        self.abandoned.as_deref()
    }

    fn command(&self, dir: &Path) -> Command {
        let c = &self.config;
        let mut cmd = match c.isolation {
            Isolation::Bubblewrap => Bwrap::new()
                .tmpfs("/work", WORK_BYTES)
                .chdir("/work")
                .env("PATH", "/usr/bin")
                .env("HOME", "/work")
                .command([c.python.as_os_str()]),
            Isolation::LimitsOnly => {
                let mut cmd = std::process::Command::new(&c.python);
                cmd.current_dir(dir)
                    .env_clear()
                    .env("PATH", "/usr/bin")
                    .env("HOME", dir);
                cmd
            }
        };
        cmd.args(["-I", "-S", "-B", "-c", WORKER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let limits = Limits {
            memory: c.memory,
            processes: c.processes,
            cpu_seconds: c.total_limit.as_secs().max(1) + 5,
            file_size: 16 << 20,
        };
        // SAFETY: the hook only makes async-signal-safe calls.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, limits_hook(limits));
        }
        let mut cmd = Command::from(cmd);
        cmd.kill_on_drop(true);
        cmd
    }

    async fn start(&mut self) -> Result<(), Result<String, SandboxError>> {
        let dir = tempfile::Builder::new()
            .prefix("qval-sandbox-")
            .tempdir()
            .map_err(|e| Err(SandboxError::Unavailable(format!("a working folder: {e}"))))?;
        // Failure only means the unprivileged worker cannot write there, which the sample
        // then reports.
        let _ = give_to_sandbox_user(dir.path());
        let mut cmd = self.command(dir.path());
        let mut pauses = qval_sandbox::SPAWN_BACKOFF.iter();
        let mut child = loop {
            match cmd.spawn() {
                Ok(c) => break c,
                Err(e) if qval_sandbox::spawn_is_transient(&e) && pauses.len() > 0 => {
                    tokio::time::sleep(*pauses.next().expect("a pause left")).await;
                }
                Err(e) => {
                    let install = "install bubblewrap and python3 (apt-get install bubblewrap python3)";
                    let program = cmd.as_std().get_program();
                    let why = qval_sandbox::spawn_failure(program, &e, install);
                    return Err(Err(SandboxError::Unavailable(why)));
                }
            }
        };
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        self.worker = Some(Worker {
            child,
            stdin,
            stdout,
            _dir: dir,
        });
        let load = json!({
            "load": self.code,
            "params": self.params,
            "allowed": ALLOWED_MODULES,
            "call_limit": self.config.call_limit.as_secs_f64(),
            "output_cap": self.config.output_cap,
        });
        match self
            .exchange(&load, self.config.call_limit + Duration::from_secs(10))
            .await
        {
            Ok(v) if v["ok"] == true => Ok(()),
            Ok(v) => Err(Ok(format!(
                "the sample does not load: {}",
                v["error"].as_str().unwrap_or("no reason given")
            ))),
            Err(e) => Err(Ok(format!("the sample does not load: {}", e.reason))),
        }
    }

    /// Sends one message with a fresh random nonce and reads the reply carrying that nonce
    /// within `limit`; on any failure the worker is killed (the next call restarts it).
    ///
    /// The sample runs in the worker's process and can find the reply channel, but it
    /// cannot know the nonce of a message not yet sent: lines without the current nonce
    /// (forged, or left over from an earlier call) are skipped, so nothing a sample writes
    /// can become the answer of another point. More than the output cap of such lines in
    /// one exchange kills the worker.
    async fn exchange(&mut self, msg: &Value, limit: Duration) -> Result<Value, Failed> {
        let cap = self.config.output_cap;
        let w = self.worker.as_mut().ok_or_else(|| Failed::other("no worker"))?;
        let nonce = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
        let mut msg = msg.clone();
        msg["nonce"] = Value::from(nonce.clone());
        let line = msg.to_string() + "\n";
        let result = tokio::time::timeout(limit, async {
            w.stdin
                .write_all(line.as_bytes())
                .await
                .map_err(|e| format!("the worker is gone ({e})"))?;
            w.stdin.flush().await.map_err(|e| format!("the worker is gone ({e})"))?;
            let mut read = 0usize;
            loop {
                let l = match read_line_capped(&mut w.stdout, cap).await {
                    Ok(Some(l)) => l,
                    Ok(None) => return Err("the worker crashed".to_string()),
                    Err(e) => return Err(e.to_string()),
                };
                read += l.len() + 1;
                if let Ok(v) = serde_json::from_slice::<Value>(&l)
                    && v.get("nonce").and_then(Value::as_str) == Some(nonce.as_str())
                {
                    return Ok(v);
                }
                if read > cap {
                    return Err(format!(
                        "more than the output cap of {cap} bytes on the worker's reply channel"
                    ));
                }
            }
        })
        .await
        .map(|r| r.map_err(Failed::other))
        .unwrap_or_else(|_| {
            Err(Failed {
                reason: format!("timed out after {:.1}s", limit.as_secs_f64()),
                timed_out: true,
            })
        });
        if result.is_err()
            && let Some(w) = self.worker.take()
        {
            w.kill().await;
        }
        result
    }

    /// Calls `signal_function(*args)`. Never fails as a whole: a non-numeric or non-finite
    /// return, an exception, a timeout or a crash is `Err(reason)` for this call, and a dead
    /// worker is restarted for the next one.
    pub async fn call(&mut self, args: &[Value]) -> CallResult {
        if let Some(reason) = &self.abandoned {
            return Err(reason.clone());
        }
        if self.used >= self.config.total_limit {
            return Err(format!(
                "the sample used up its total time limit of {:?}",
                self.config.total_limit
            ));
        }
        // Restarts count against the sample's total too, so a sample that crashes (or
        // loads slowly) on every point cannot run past its limit.
        let t = Instant::now();
        if self.worker.is_none() {
            self.restarts += 1;
            let started = self.start().await;
            self.used += t.elapsed();
            started.map_err(|e| match e {
                Ok(reason) => reason,
                Err(e) => e.to_string(),
            })?;
        }
        let t = Instant::now();
        // The worker interrupts a slow call itself; the host waits a little longer before
        // killing it (code stuck in C does not see the alarm).
        let r = self
            .exchange(
                &json!({ "args": args }),
                self.config.call_limit + Duration::from_millis(500),
            )
            .await;
        self.used += t.elapsed();
        let (result, timed_out) = match r {
            Err(f) => (Err(f.reason), f.timed_out),
            Ok(v) => match v.get("value").and_then(|x| x.as_f64()) {
                Some(x) => (Ok(x), false),
                None => (
                    Err(v["error"].as_str().unwrap_or("no value").to_string()),
                    v["timeout"] == true,
                ),
            },
        };
        self.timeouts_in_a_row = if timed_out { self.timeouts_in_a_row + 1 } else { 0 };
        if self.timeouts_in_a_row >= self.config.abandon_after {
            self.abandoned = Some(format!(
                "not run: the sample was abandoned after {} calls in a row timed out (limit {:.1} s per call)",
                self.timeouts_in_a_row,
                self.config.call_limit.as_secs_f64()
            ));
            if let Some(w) = self.worker.take() {
                w.kill().await;
            }
        }
        result
    }

    /// Stops the worker.
    pub async fn close(mut self) {
        if let Some(w) = self.worker.take() {
            w.kill().await;
        }
    }
}
