//! Worker processes and the pool: spawning, one request at a time per worker, random draws
//! served from qval's generator, time limits, restarts, and kill + wait on drop.

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::PyError;
use qval_core::QRng;

/// One random draw a worker asked for: an integer in `[0, n)` or a float in `[0, 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Draw {
    /// `rng.integers(n)`.
    #[serde(rename = "i")]
    Int(u64),
    /// `rng.random()`.
    #[serde(rename = "f")]
    Float(f64),
}

/// Serves a request's draws: first the ones recorded by an earlier attempt (so a retried
/// request sees the same randomness), then fresh ones from the generator.
pub struct Draws<'a> {
    rng: Option<&'a mut QRng>,
    /// The draws made so far, in order.
    pub recorded: Vec<Draw>,
    cursor: usize,
}

impl<'a> Draws<'a> {
    /// Draws from `rng`; `None` refuses every draw (requests that must not be random).
    pub fn new(rng: Option<&'a mut QRng>) -> Self {
        Draws {
            rng,
            recorded: Vec::new(),
            cursor: 0,
        }
    }

    fn rewind(&mut self) {
        self.cursor = 0;
    }

    fn next(&mut self, kind: &str, n: u64) -> Result<Draw, String> {
        if let Some(d) = self.recorded.get(self.cursor).copied() {
            self.cursor += 1;
            return Ok(d);
        }
        let rng = self
            .rng
            .as_deref_mut()
            .ok_or_else(|| format!("the adapter asked for a random draw ({kind}) where none is allowed"))?;
        let d = match kind {
            // Sampled as `usize`, as native environments index their choices, so the same
            // generator gives both the same outcome.
            "int" if n >= 1 && usize::try_from(n).is_ok() => Draw::Int(rng.random_range(0..n as usize) as u64),
            "int" => return Err("rng.integers(n) needs n >= 1".into()),
            "float" => Draw::Float(rng.random::<f64>()),
            other => return Err(format!("unknown draw kind `{other}`")),
        };
        self.recorded.push(d);
        self.cursor += 1;
        Ok(d)
    }
}

/// How to start a worker: `PYTHON -u -m MODULE FLAG SPEC` with the bridge's folder on
/// `PYTHONPATH`, then `{"op": "hello", "args": ARGS}`.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The interpreter.
    pub python: PathBuf,
    /// The worker module (`qval_bridge.worker`, `qval_bridge.method_worker`).
    pub module: String,
    /// The flag naming what it serves (`--adapter`, `--method`).
    pub flag: String,
    /// What it serves: `module:Class` or `path.py:Class` (also the name in messages).
    pub adapter: String,
    /// The folder holding the `qval_bridge` package.
    pub bridge_dir: PathBuf,
    /// More folders for `PYTHONPATH`, after `bridge_dir` and before the inherited ones.
    pub path: Vec<PathBuf>,
    /// The keyword arguments sent with hello.
    pub args: Value,
    /// The time a worker has for one request before it is killed.
    pub timeout: Duration,
}

/// Why a request failed.
#[derive(Debug)]
pub enum Failure {
    /// The adapter raised: the reply carries the error (no retry).
    Raised(PyError),
    /// The worker died, hung or broke the protocol (restart and retry once).
    Broken(String),
}

/// One worker process, serving one request at a time.
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    next_id: u64,
    /// The key of the state the worker holds after its last reset or step.
    pub holds: Option<[u8; 32]>,
}

const STDERR_LINES: usize = 40;

impl Worker {
    /// Starts the process (no hello yet).
    ///
    /// # Errors
    /// [`PyError::Bridge`] if the interpreter cannot start.
    pub fn spawn(launch: &Launch) -> Result<Worker, PyError> {
        let path = python_path(&launch.bridge_dir, &launch.path)?;
        let mut child = Command::new(&launch.python)
            .arg("-u")
            .arg("-m")
            .arg(&launch.module)
            .arg(&launch.flag)
            .arg(&launch.adapter)
            .env("PYTHONPATH", path)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| PyError::Bridge(format!("cannot start `{}`: {e}", launch.python.display())))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let tail = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                let mut t = tail.lock().expect("stderr lock");
                if t.len() == STDERR_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
        Ok(Worker {
            child,
            stdin,
            lines,
            stderr,
            next_id: 0,
            holds: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr_tail(&mut self) -> String {
        // Give the reader a moment to drain what a dying process wrote.
        std::thread::sleep(Duration::from_millis(20));
        let t = self.stderr.lock().expect("stderr lock");
        t.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Sends `request` (an object without `id`) and waits for the final reply, serving draws.
    pub fn call(
        &mut self,
        mut request: Value,
        draws: &mut Draws<'_>,
        timeout: Duration,
        adapter: &str,
    ) -> Result<Value, Failure> {
        self.next_id += 1;
        let id = self.next_id;
        request["id"] = json!(id);
        let op = request["op"].as_str().unwrap_or("?").to_string();
        draws.rewind();
        self.write(&request).map_err(Failure::Broken)?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    return Err(Failure::Broken(format!(
                        "did not answer `{op}` within {:.1} s and was killed",
                        timeout.as_secs_f64()
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    let tail = self.stderr_tail();
                    return Err(Failure::Broken(format!(
                        "exited ({status}) during `{op}`; its stderr:\n{tail}"
                    )));
                }
            };
            let reply: Value = serde_json::from_str(&line)
                .map_err(|e| Failure::Broken(format!("wrote a line that is not protocol JSON ({e}): {line:.200}")))?;
            if reply["id"].as_u64() != Some(id) {
                return Err(Failure::Broken(format!("answered another request: {line:.200}")));
            }
            if let Some(kind) = reply.get("rng").and_then(Value::as_str) {
                let n = reply["n"].as_u64().unwrap_or(0);
                let value = match draws.next(kind, n) {
                    Ok(Draw::Int(k)) => json!(k),
                    Ok(Draw::Float(x)) => json!(x),
                    Err(m) => return Err(Failure::Broken(m)),
                };
                self.write(&json!({"id": id, "value": value}))
                    .map_err(Failure::Broken)?;
                continue;
            }
            return match reply["ok"].as_bool() {
                Some(true) => Ok(reply["result"].clone()),
                Some(false) => {
                    let e = &reply["error"];
                    let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                    Err(Failure::Raised(if text("kind") == "missing_package" {
                        PyError::MissingPackage {
                            message: text("message"),
                            pip: text("pip"),
                        }
                    } else {
                        PyError::Python {
                            adapter: adapter.to_string(),
                            op,
                            message: format!("{}: {}", text("kind"), text("message")),
                            traceback: text("traceback"),
                        }
                    }))
                }
                None => Err(Failure::Broken(format!("sent a reply without `ok`: {line:.200}"))),
            };
        }
    }

    fn write(&mut self, v: &Value) -> Result<(), String> {
        let mut line = serde_json::to_vec(v).map_err(|e| e.to_string())?;
        line.push(b'\n');
        self.stdin
            .write_all(&line)
            .and_then(|_| self.stdin.flush())
            .map_err(|e| format!("cannot write to the worker: {e}"))
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Turns a worker's result (and the draws the request made) into a value and what the
/// worker holds afterwards (its error type is the caller's own).
pub type Finish<'a, T, E = PyError> = dyn FnMut(Value, &[Draw]) -> Result<(T, Hold), E> + 'a;

/// What a worker holds after a request.
pub enum Hold {
    /// What it held before (the request did not change the environment).
    Keep,
    /// The state with this key.
    Key([u8; 32]),
}

/// A fixed number of workers, each serving one request at a time.
pub struct Pool {
    launch: Launch,
    /// The idle workers and how many workers the pool has (idle or busy).
    idle: Mutex<(Vec<Worker>, usize)>,
    ready: Condvar,
    /// Every worker ever started (for tests: none may outlive the pool).
    pids: Mutex<Vec<u32>>,
    restarts: Mutex<usize>,
}

impl Pool {
    /// Starts `n` workers and says hello to each; returns the pool and the first hello.
    pub fn start(launch: Launch, n: usize) -> Result<(Pool, Value), PyError> {
        let pool = Pool {
            launch,
            idle: Mutex::new((Vec::new(), 0)),
            ready: Condvar::new(),
            pids: Mutex::new(Vec::new()),
            restarts: Mutex::new(0),
        };
        let mut hello = Value::Null;
        for _ in 0..n {
            let (w, h) = pool.fresh()?;
            hello = h;
            let mut idle = pool.idle.lock().expect("pool lock");
            idle.0.push(w);
            idle.1 += 1;
        }
        Ok((pool, hello))
    }

    fn fresh(&self) -> Result<(Worker, Value), PyError> {
        let mut w = Worker::spawn(&self.launch)?;
        self.pids.lock().expect("pids lock").push(w.pid());
        let req = json!({"op": "hello", "adapter": self.launch.adapter, "args": self.launch.args});
        // Importing gymnasium and building environments can take a few seconds.
        let timeout = self.launch.timeout.max(Duration::from_secs(60));
        match w.call(req, &mut Draws::new(None), timeout, &self.launch.adapter) {
            Ok(hello) => Ok((w, hello)),
            Err(Failure::Raised(e)) => Err(e),
            Err(Failure::Broken(m)) => Err(PyError::Bridge(format!(
                "the worker for `{}` failed to start: {m}",
                self.launch.adapter
            ))),
        }
    }

    /// Every worker process the pool has started (none may outlive it).
    pub fn pids(&self) -> Vec<u32> {
        self.pids.lock().expect("pids lock").clone()
    }

    /// How many workers were replaced after failing.
    pub fn restarts(&self) -> usize {
        *self.restarts.lock().expect("restarts lock")
    }

    /// Runs a request on an idle worker. `make` builds the request for a worker (it may
    /// include the state to restore, depending on what the worker holds); `finish` turns the
    /// result into a value and says what the worker holds afterwards. A worker that dies,
    /// hangs or breaks the protocol is replaced and the request retried once on the new
    /// worker, with the same draws.
    pub fn run<T, E: From<PyError>>(
        &self,
        make: &dyn Fn(Option<[u8; 32]>) -> Value,
        draws: &mut Draws<'_>,
        finish: &mut Finish<'_, T, E>,
    ) -> Result<T, E> {
        let mut worker = {
            let mut idle = self.idle.lock().expect("pool lock");
            loop {
                if let Some(w) = idle.0.pop() {
                    break w;
                }
                if idle.1 == 0 {
                    return Err(PyError::Bridge(format!(
                        "no worker left for `{}`: restarting failed",
                        self.launch.adapter
                    ))
                    .into());
                }
                idle = self.ready.wait(idle).expect("pool lock");
            }
        };
        let mut first_failure = None;
        let mut result: Result<T, E> = Err(PyError::Bridge("no attempt".into()).into());
        for attempt in 0..2 {
            let req = make(worker.holds);
            let op = req["op"].as_str().unwrap_or("?").to_string();
            match worker.call(req, draws, self.launch.timeout, &self.launch.adapter) {
                Ok(v) => {
                    result = match finish(v, &draws.recorded) {
                        Ok((t, hold)) => {
                            match hold {
                                Hold::Keep => {}
                                Hold::Key(k) => worker.holds = Some(k),
                            }
                            Ok(t)
                        }
                        Err(e) => {
                            worker.holds = None;
                            Err(e)
                        }
                    };
                    break;
                }
                Err(Failure::Raised(e)) => {
                    worker.holds = None;
                    result = Err(e.into());
                    break;
                }
                Err(Failure::Broken(m)) => {
                    *self.restarts.lock().expect("restarts lock") += 1;
                    drop(worker);
                    let reason = if attempt == 0 {
                        first_failure = Some(m);
                        None
                    } else {
                        Some(m)
                    };
                    match self.fresh() {
                        Ok((w, _)) => worker = w,
                        Err(e) => {
                            self.idle.lock().expect("pool lock").1 -= 1;
                            self.ready.notify_all();
                            return Err(e.into());
                        }
                    }
                    if let Some(second) = reason {
                        result = Err(PyError::Worker {
                            adapter: self.launch.adapter.clone(),
                            op,
                            first: first_failure.take().unwrap_or_default(),
                            second,
                        }
                        .into());
                    }
                }
            }
        }
        self.idle.lock().expect("pool lock").0.push(worker);
        self.ready.notify_one();
        result
    }
}

/// `PYTHONPATH` for a worker: `bridge_dir`, then `extra`, then the inherited entries.
///
/// # Errors
/// A folder whose name cannot be part of a path list.
pub fn python_path(bridge_dir: &Path, extra: &[PathBuf]) -> Result<std::ffi::OsString, PyError> {
    let inherited = std::env::var_os("PYTHONPATH");
    let dirs = std::iter::once(bridge_dir.to_path_buf())
        .chain(extra.iter().cloned())
        .chain(inherited.iter().flat_map(std::env::split_paths));
    std::env::join_paths(dirs).map_err(|e| PyError::Bridge(format!("PYTHONPATH: {e}")))
}
