//! Methods written in Python: a subclass of `qval_bridge.methods.Method`, run in long-lived
//! worker processes (`python -m qval_bridge.method_worker --method SPEC`) over the bridge's
//! JSON-lines protocol ([`qval_python`]).
//!
//! [`PythonMethod`] sends batches of points in qval's point format (the objects of
//! `points.jsonl`, each with a `seed` derived from the method's seed and the point's id, so
//! scores do not depend on the batching) and the [`MethodContext`]; a ranking method gets
//! each state's candidates together. A worker that raises fails only the points that raise
//! (the worker scores a failing batch again point by point); one that dies or hangs past its
//! time limit is killed, restarted and the batch retried once, and then its points are scored
//! alone so that only the point that kills or hangs it ends as NaN, with the reason.
//!
//! ```no_run
//! # async fn demo() -> Result<(), qval_methods::MethodsError> {
//! use qval_core::Signal;
//! use qval_methods::python::PythonMethod;
//!
//! let m = PythonMethod::builder("my_scorers:Brevity", Signal::Q)
//!     .params(serde_json::json!({"weight": 2.0}))
//!     .workers(2)
//!     .batch_size(64)
//!     .build()?;
//! # let _ = m; Ok(()) }
//! ```

use async_trait::async_trait;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::MethodsError;
use qval_core::seed::{derive_seed, stable_hash};
use qval_core::{CoreError, DenseSignalMethod, EvaluationPoint, MethodContext, Result, Signal};
use qval_python::{Draws, Hold, Launch, Pool, PyError};

/// The most worker processes a method may start.
pub const MAX_WORKERS: usize = 64;
/// The most points in one request.
pub const MAX_BATCH: usize = 4096;
/// The time [`check_importable`] gives an import.
pub const IMPORT_LIMIT: Duration = Duration::from_secs(120);

/// Builds a [`PythonMethod`]; [`build`](Self::build) checks every setting, starts the
/// workers and says hello.
#[derive(Clone, Debug)]
pub struct PythonMethodBuilder {
    spec: String,
    signal: Signal,
    name: Option<String>,
    params: Value,
    seed: u64,
    python: PathBuf,
    bridge_dir: PathBuf,
    path: Vec<PathBuf>,
    workers: usize,
    batch_size: usize,
    timeout: Duration,
    ranking: bool,
    groups: std::collections::HashMap<String, Vec<EvaluationPoint>>,
}

/// The state a point's candidates share: its `candidate_of`, else its own id.
fn state_key(p: &EvaluationPoint) -> &str {
    p.candidate_of.as_deref().unwrap_or(&p.id)
}

impl PythonMethodBuilder {
    /// Every candidate the method will rank (a ranking method): a state's candidates are
    /// always sent together, however the predict stage splits them over its calls.
    pub fn candidates(mut self, points: &[EvaluationPoint]) -> Self {
        self.groups.clear();
        for p in points {
            self.groups.entry(state_key(p).to_string()).or_default().push(p.clone());
        }
        self
    }

    /// The name its predictions are stored under (default: the class's name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Keyword arguments of the class's constructor, a JSON object (default `{}`).
    pub fn params(mut self, params: Value) -> Self {
        self.params = params;
        self
    }
    /// The seed passed to the class and from which each point's seed derives (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// The interpreter (default `$QVAL_PYTHON`, else `python3`).
    pub fn python(mut self, python: impl Into<PathBuf>) -> Self {
        self.python = python.into();
        self
    }
    /// The folder holding `qval_bridge` (default [`qval_python::default_bridge_dir`]).
    pub fn bridge_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bridge_dir = dir.into();
        self
    }
    /// A folder to put on `PYTHONPATH` (the experiment file's folder, say).
    pub fn path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.path.push(dir.into());
        self
    }
    /// Worker processes (1..=[`MAX_WORKERS`], default 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }
    /// Points per request (1..=[`MAX_BATCH`], default 64); a ranking method never splits a
    /// state's candidates.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }
    /// The time a worker has for one request before it is killed (default 60 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// Whether the class ranks each state's candidates as a group (it must say
    /// `ranks = True`).
    pub fn ranking(mut self, ranking: bool) -> Self {
        self.ranking = ranking;
        self
    }

    /// Checks the settings, starts the workers and says hello.
    ///
    /// # Errors
    /// [`CoreError::InvalidParameter`] naming the setting; [`MethodsError::Python`] when a
    /// worker cannot start, the module is missing (naming the pip command or the path
    /// problem) or the class raised in its constructor; [`MethodsError::Unsupported`] when
    /// `ranking` and the class's `ranks` disagree.
    pub fn build(self) -> std::result::Result<PythonMethod, MethodsError> {
        let invalid = |name, value: String, reason: &str| MethodsError::from(CoreError::invalid(name, value, reason));
        if !self.params.is_object() {
            return Err(invalid(
                "params",
                self.params.to_string(),
                "a table of keyword arguments",
            ));
        }
        if self.params.get("seed").is_some() {
            return Err(invalid(
                "params",
                "seed".into(),
                "give `seed` beside `params`, not in it",
            ));
        }
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(invalid("workers", self.workers.to_string(), "between 1 and 64"));
        }
        if !(1..=MAX_BATCH).contains(&self.batch_size) {
            return Err(invalid("batch_size", self.batch_size.to_string(), "between 1 and 4096"));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(86_400) {
            return Err(invalid(
                "timeout",
                format!("{:?}", self.timeout),
                "more than 0 and at most one day",
            ));
        }
        qval_python::check_launch(&self.spec, &self.bridge_dir, &self.python).map_err(|(name, value, reason)| {
            invalid(if name == "adapter" { "module" } else { name }, value, &reason)
        })?;
        let mut args = self.params.clone();
        args["seed"] = json!(self.seed);
        let launch = Launch {
            python: self.python,
            module: "qval_bridge.method_worker".into(),
            flag: "--method".into(),
            adapter: self.spec.clone(),
            bridge_dir: self.bridge_dir,
            path: self.path,
            args,
            timeout: self.timeout,
        };
        let (pool, hello) = Pool::start(launch, self.workers)?;
        if hello["protocol"].as_u64() != Some(1) {
            return Err(PyError::Bridge(format!("the method worker's hello is not protocol 1: {hello}")).into());
        }
        let ranks = hello["ranks"].as_bool().unwrap_or(false);
        if ranks != self.ranking {
            return Err(MethodsError::Unsupported {
                method: self.spec,
                message: if self.ranking {
                    "the entry says `ranking = true` but the class does not set `ranks = True`".into()
                } else {
                    "the class ranks (`ranks = True`): say `ranking = true` in its entry".into()
                },
            });
        }
        Ok(PythonMethod {
            name: self
                .name
                .unwrap_or_else(|| hello["name"].as_str().unwrap_or("python").to_string()),
            signal: self.signal,
            seed: self.seed,
            batch_size: self.batch_size,
            ranking: self.ranking,
            workers: self.workers,
            groups: self.groups,
            ranked: Default::default(),
            pool: Arc::new(pool),
            turn: tokio::sync::Mutex::new(()),
        })
    }
}

/// Whether the class `spec` imports (as the workers will import it, with `path` on
/// `PYTHONPATH`) and is a subclass of `qval_bridge.methods.Method`: a check before any work
/// starts. The error is one line: the path problem, or the pip command of a missing package.
pub fn check_importable(
    spec: &str,
    python: &std::path::Path,
    bridge_dir: &std::path::Path,
    path: &[PathBuf],
) -> std::result::Result<(), String> {
    let pythonpath = qval_python::python_path(bridge_dir, path).map_err(|e| e.to_string())?;
    // The module's own prints go to stderr; the verdict alone to stdout. An exception raised
    // while the module loads names its file and line.
    let script = "import sys, traceback\n\
out = sys.stdout\n\
sys.stdout = sys.stderr\n\
from qval_bridge import MissingPackage\n\
from qval_bridge.methods import Method\n\
from qval_bridge.worker import load_class\n\
try:\n    load_class(sys.argv[1], Method, 'method', friendly=True)\n\
except MissingPackage as e:\n    out.write(f'{e}: install it with `{e.pip}`'); sys.exit(1)\n\
except Exception as e:\n    \
where = traceback.extract_tb(e.__traceback__)[-1]\n    \
out.write(f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else \"\"} ({where.filename}:{where.lineno})'); sys.exit(1)\n";
    let mut child = std::process::Command::new(python)
        .args(["-c", script, spec])
        .env("PYTHONPATH", pythonpath)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", python.display()))?;
    // Read as it comes (a module that prints much must not block on a full pipe).
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    // A module that never finishes importing costs two minutes, not the run.
    let deadline = std::time::Instant::now() + IMPORT_LIMIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "importing `{spec}` did not finish within {} s",
                    IMPORT_LIMIT.as_secs()
                ));
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let out = (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
    let said = out.0.trim().to_string();
    Err(if said.is_empty() {
        out.1.lines().last().unwrap_or("failed").to_string()
    } else {
        said
    })
}

/// A method written in Python (see the module docs).
pub struct PythonMethod {
    name: String,
    signal: Signal,
    seed: u64,
    batch_size: usize,
    ranking: bool,
    workers: usize,
    /// Every candidate of each state (a ranking method given them).
    groups: std::collections::HashMap<String, Vec<EvaluationPoint>>,
    /// A ranking method's scores of the states it has ranked, by point id (a state split
    /// over two calls is ranked once).
    ranked: std::sync::Mutex<std::collections::HashMap<String, std::result::Result<f64, String>>>,
    pool: Arc<Pool>,
    /// One call of [`DenseSignalMethod::evaluate_batch`] at a time (a fair lock: first
    /// come, first served), its requests spread over the workers, so that the predict
    /// stage's batches finish in turn and are checkpointed as they do, instead of all
    /// finishing together at the end.
    turn: tokio::sync::Mutex<()>,
}

impl PythonMethod {
    /// A builder for the class `module:Class` or `path.py:Class`, estimating `signal`.
    pub fn builder(spec: impl Into<String>, signal: Signal) -> PythonMethodBuilder {
        PythonMethodBuilder {
            spec: spec.into(),
            signal,
            name: None,
            params: json!({}),
            seed: 0,
            python: qval_python::default_python(),
            bridge_dir: qval_python::default_bridge_dir(),
            path: Vec::new(),
            workers: 1,
            batch_size: 64,
            timeout: Duration::from_secs(60),
            ranking: false,
            groups: Default::default(),
        }
    }

    /// The worker processes started so far (for tests: none may outlive the method).
    pub fn pids(&self) -> Vec<u32> {
        self.pool.pids()
    }

    /// How many workers were replaced after dying or hanging.
    pub fn restarts(&self) -> usize {
        self.pool.restarts()
    }

    /// A point as the worker gets it: its `points.jsonl` object and its seed.
    fn wire(&self, p: &EvaluationPoint) -> Value {
        let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
        v["seed"] = json!(derive_seed(self.seed, &[stable_hash(&p.id)]));
        v
    }

    /// The batches of one call: index ranges, never splitting a state's candidates when
    /// ranking.
    fn batches(&self, points: &[EvaluationPoint]) -> Vec<Vec<Vec<usize>>> {
        let groups: Vec<Vec<usize>> = if self.ranking {
            let mut order: Vec<&str> = Vec::new();
            let mut by: std::collections::HashMap<&str, Vec<usize>> = Default::default();
            for (i, p) in points.iter().enumerate() {
                let key = state_key(p);
                by.entry(key).or_insert_with(|| {
                    order.push(key);
                    Vec::new()
                });
                by.get_mut(key).expect("inserted").push(i);
            }
            order.into_iter().map(|k| by.remove(k).expect("a group")).collect()
        } else {
            (0..points.len()).map(|i| vec![i]).collect()
        };
        // At most `batch_size` points a request, and enough requests to keep every worker busy.
        let per_worker = points.len().div_ceil(self.workers.max(1)).max(1);
        let limit = self.batch_size.min(per_worker);
        let mut out: Vec<Vec<Vec<usize>>> = Vec::new();
        let mut size = 0;
        for g in groups {
            if out.is_empty() || size + g.len() > limit {
                out.push(Vec::new());
                size = 0;
            }
            size += g.len();
            out.last_mut().expect("a batch").push(g);
        }
        out
    }

    /// Sends one request (blocking; run on a blocking thread) and reads one outcome per
    /// point.
    fn request(pool: &Pool, req: Value, n: usize) -> std::result::Result<Vec<Result<f64>>, PyError> {
        let ranking = req["op"] == "rank";
        let reply = pool.run::<_, PyError>(&|_| req.clone(), &mut Draws::new(None), &mut |v, _| Ok((v, Hold::Keep)))?;
        let flat: Vec<Value> = match (ranking, reply) {
            (true, Value::Array(groups)) => groups
                .into_iter()
                .flat_map(|g| match g {
                    Value::Array(a) => a,
                    other => vec![other],
                })
                .collect(),
            (false, Value::Array(a)) => a,
            (_, other) => return Err(PyError::Bridge(format!("a reply that is not a list: {other:.200}"))),
        };
        if flat.len() != n {
            return Err(PyError::Bridge(format!("{} results for {n} points", flat.len())));
        }
        Ok(flat.into_iter().map(outcome).collect())
    }

    async fn run_batch(&self, points: &[EvaluationPoint], groups: &[Vec<usize>], ctx: &Value) -> Vec<Result<f64>> {
        let n: usize = groups.iter().map(Vec::len).sum();
        let req = if self.ranking {
            let gs: Vec<Vec<Value>> = groups
                .iter()
                .map(|g| g.iter().map(|&i| self.wire(&points[i])).collect())
                .collect();
            json!({"op": "rank", "groups": gs, "context": ctx})
        } else {
            let ps: Vec<Value> = groups.iter().flatten().map(|&i| self.wire(&points[i])).collect();
            json!({"op": "score", "points": ps, "context": ctx})
        };
        let pool = self.pool.clone();
        let got = tokio::task::spawn_blocking(move || Self::request(&pool, req, n)).await;
        match got {
            Ok(Ok(v)) => v,
            // A worker that died or hung twice on the batch: score its points (its groups,
            // when ranking) alone, so only those that kill or hang it fail.
            Ok(Err(PyError::Worker { .. })) if groups.len() > 1 => {
                let mut out = Vec::with_capacity(n);
                for g in groups {
                    out.extend(Box::pin(self.run_batch(points, std::slice::from_ref(g), ctx)).await);
                }
                out
            }
            Ok(Err(e)) => {
                let why = e.to_string();
                (0..n).map(|_| Err(CoreError::Method(why.clone().into()))).collect()
            }
            Err(e) => (0..n)
                .map(|_| Err(CoreError::Method(format!("the bridge's thread failed: {e}").into())))
                .collect(),
        }
    }
}

/// One point's outcome as the worker sent it.
fn outcome(v: Value) -> Result<f64> {
    match (v["value"].as_f64(), v["error"].as_str()) {
        (Some(x), _) => Ok(x),
        (None, Some(why)) => {
            let tb = v["traceback"].as_str().unwrap_or_default();
            let why = if tb.is_empty() {
                why.to_string()
            } else {
                format!("{why}\n{tb}")
            };
            Err(CoreError::Method(why.into()))
        }
        (None, None) => Err(CoreError::Method(format!("the worker sent {v:.200}").into())),
    }
}

#[async_trait]
impl DenseSignalMethod for PythonMethod {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn signal(&self) -> Signal {
        self.signal
    }
    fn params(&self) -> Value {
        json!({"seed": self.seed, "ranking": self.ranking})
    }
    async fn evaluate(&self, point: &EvaluationPoint, ctx: &MethodContext) -> Result<f64> {
        let mut r = self.evaluate_batch(std::slice::from_ref(point), ctx).await;
        r.pop().unwrap_or_else(|| Err(CoreError::Method("no result".into())))
    }
    async fn evaluate_batch(&self, points: &[EvaluationPoint], ctx: &MethodContext) -> Vec<Result<f64>> {
        let mut ctx = serde_json::to_value(ctx).unwrap_or(Value::Null);
        ctx["signal"] = json!(self.signal.key());
        let _turn = self.turn.lock().await;
        if self.ranking {
            return self.rank_all(points, &ctx).await;
        }
        self.score_all(points, &ctx).await
    }
}

impl PythonMethod {
    /// A ranking method's scores: each state's candidates ranked together, once.
    async fn rank_all(&self, points: &[EvaluationPoint], ctx: &Value) -> Vec<Result<f64>> {
        let known = |id: &str| self.ranked.lock().expect("ranked lock").contains_key(id);
        let mut todo: Vec<EvaluationPoint> = Vec::new();
        let mut states: std::collections::HashSet<&str> = Default::default();
        for p in points.iter().filter(|p| !known(&p.id)) {
            let key = state_key(p);
            if states.insert(key) {
                match self.groups.get(key) {
                    Some(all) => todo.extend(all.iter().cloned()),
                    None => todo.extend(points.iter().filter(|q| state_key(q) == key).cloned()),
                }
            }
        }
        let scores = self.score_all(&todo, ctx).await;
        {
            let mut ranked = self.ranked.lock().expect("ranked lock");
            for (p, r) in todo.iter().zip(scores) {
                ranked.insert(p.id.clone(), r.map_err(|e| e.to_string()));
            }
        }
        let ranked = self.ranked.lock().expect("ranked lock");
        points
            .iter()
            .map(|p| match ranked.get(&p.id) {
                Some(Ok(v)) => Ok(*v),
                Some(Err(why)) => Err(CoreError::Method(why.clone().into())),
                None => Err(CoreError::Method("no result".into())),
            })
            .collect()
    }

    /// Scores `points` in requests spread over the workers, in the order given.
    async fn score_all(&self, points: &[EvaluationPoint], ctx: &Value) -> Vec<Result<f64>> {
        let batches = self.batches(points);
        let runs = batches.iter().map(|b| self.run_batch(points, b, ctx));
        let results: Vec<Vec<Result<f64>>> = futures::future::join_all(runs).await;
        // Back to the order of `points`.
        let mut out: Vec<Option<Result<f64>>> = (0..points.len()).map(|_| None).collect();
        for (b, rs) in batches.iter().zip(results) {
            for (&i, r) in b.iter().flatten().zip(rs) {
                out[i] = Some(r);
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(CoreError::Method("no result".into()))))
            .collect()
    }
}
