//! The bridged environment: a Python adapter's states and steps through a worker.

use base64::Engine as _;
use qval_python::Draw;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use qval_python::{Draws, Hold, Launch, Pool};
/// A finish closure of this crate: its errors are [`EnvsError`]s.
type Finish<'a, T> = qval_python::Finish<'a, T, EnvsError>;
use crate::EnvsError;
use qval_core::{EnvProfile, EnvSpec, Environment, Observation, QRng, Result, StepOutcome, Task};

/// How an adapter's states are restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purity {
    /// The adapter snapshots and restores its environment's state as bytes.
    Snapshot,
    /// qval replays the action history (with its random draws) from reset.
    Replay,
}

/// Snapshot bytes, content-addressed: equal snapshots share one buffer in the process.
/// Serialised as `{"sha256": hex, "bytes": base64}`.
#[derive(Clone, Debug)]
pub struct Snapshot {
    sha256: [u8; 32],
    bytes: Arc<Vec<u8>>,
}

/// The in-process snapshot store: sha256 to the shared bytes (weakly held).
type Store = Mutex<HashMap<[u8; 32], Weak<Vec<u8>>>>;

static STORE: LazyLock<Store> = LazyLock::new(|| Mutex::new(HashMap::new()));

impl Snapshot {
    /// Stores `bytes` once per process (by sha256) and returns a handle to them.
    pub fn intern(bytes: Vec<u8>) -> Snapshot {
        let sha256: [u8; 32] = Sha256::digest(&bytes).into();
        let mut store = STORE.lock().expect("snapshot store lock");
        if let Some(shared) = store.get(&sha256).and_then(Weak::upgrade) {
            return Snapshot { sha256, bytes: shared };
        }
        if store.len() > 4096 {
            store.retain(|_, w| w.strong_count() > 0);
        }
        let bytes = Arc::new(bytes);
        store.insert(sha256, Arc::downgrade(&bytes));
        Snapshot { sha256, bytes }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The sha256 of the bytes.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// Whether `self` and `other` share one buffer (equal snapshots always do).
    pub fn shares_with(&self, other: &Snapshot) -> bool {
        Arc::ptr_eq(&self.bytes, &other.bytes)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Serialize for Snapshot {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        json!({
            "sha256": hex(&self.sha256),
            "bytes": base64::engine::general_purpose::STANDARD.encode(self.bytes.as_slice()),
        })
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Snapshot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            sha256: String,
            bytes: String,
        }
        let raw = Raw::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw.bytes.as_bytes())
            .map_err(serde::de::Error::custom)?;
        let snap = Snapshot::intern(bytes);
        if hex(&snap.sha256) != raw.sha256 {
            return Err(serde::de::Error::custom("snapshot bytes do not match their sha256"));
        }
        Ok(snap)
    }
}

/// One replayed step: the action and the random draws its step made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayStep {
    /// The action.
    pub action: Value,
    /// The draws, in order.
    pub draws: Vec<Draw>,
}

/// What restores a replay state: the draws of `reset` and the steps since.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Replay {
    /// The draws `reset` made.
    pub reset_draws: Vec<Draw>,
    /// The steps from reset, in order.
    pub history: Vec<ReplayStep>,
}

/// What restores a state in a worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Restore {
    /// The adapter's snapshot.
    Snapshot(Snapshot),
    /// The history to replay from reset.
    Replay(Arc<Replay>),
}

/// A state of a Python environment: its task, what restores it, and what the adapter said of
/// it (observation text, legal actions), so observing costs no round trip.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PythonState {
    /// The task of the episode.
    pub task: Arc<Task>,
    /// What restores the state in a worker.
    pub restore: Restore,
    /// The observation text.
    pub observation: String,
    /// The legal actions (`None`: an open action set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal: Option<Arc<Vec<Value>>>,
    /// The adapter's own verdict on the episode in this state (its optional `succeeded()`):
    /// `None` when it has none (and in states stored before the bridge reported it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
}

impl PythonState {
    /// A key identifying the state: equal keys, equal states.
    pub fn key(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.task.id.as_bytes());
        h.update([0]);
        match &self.restore {
            Restore::Snapshot(s) => {
                h.update(b"s");
                h.update(s.sha256);
            }
            Restore::Replay(r) => {
                h.update(b"r");
                h.update(serde_json::to_vec(&**r).unwrap_or_default());
            }
        }
        h.finalize().into()
    }

    fn restore_json(&self) -> Value {
        match &self.restore {
            Restore::Snapshot(s) => json!({
                "task": &*self.task,
                "snapshot": base64::engine::general_purpose::STANDARD.encode(s.bytes()),
            }),
            Restore::Replay(r) => json!({
                "task": &*self.task,
                "reset_draws": r.reset_draws,
                "history": r.history,
            }),
        }
    }
}

/// A Python environment. Build with [`PythonEnv::builder`].
pub struct PythonEnv {
    adapter: String,
    spec: EnvSpec,
    tasks: Vec<Task>,
    purity: Purity,
    has_reference: bool,
    has_exact: bool,
    profile: EnvProfile,
    pool: Pool,
    parsed: Mutex<HashMap<String, Value>>,
    rendered: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for PythonEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonEnv")
            .field("adapter", &self.adapter)
            .field("spec", &self.spec)
            .field("purity", &self.purity)
            .finish_non_exhaustive()
    }
}

/// Builder of [`PythonEnv`].
///
/// | setting | default |
/// |---|---|
/// | `adapter` | (required) `module:Class` or `path/to/file.py:Class` |
/// | `args` | `{}` (keyword arguments of the adapter's constructor) |
/// | `python` | `python3` (or `$QVAL_PYTHON`) |
/// | `workers` | 1, in [1, 64] |
/// | `timeout` | 30 s per request, in (0, 1 day] |
/// | `bridge_dir` | `$QVAL_BRIDGE_DIR`, else this repository's `python/` folder |
#[derive(Clone, Debug)]
pub struct PythonEnvBuilder {
    adapter: String,
    args: Value,
    python: PathBuf,
    workers: usize,
    timeout: Duration,
    bridge_dir: PathBuf,
}

pub use qval_python::default_bridge_dir;

impl PythonEnv {
    /// A builder for the adapter `module:Class` or `path.py:Class`.
    pub fn builder(adapter: impl Into<String>) -> PythonEnvBuilder {
        PythonEnvBuilder {
            adapter: adapter.into(),
            args: json!({}),
            python: qval_python::default_python(),
            workers: 1,
            timeout: Duration::from_secs(30),
            bridge_dir: default_bridge_dir(),
        }
    }

    /// How states are restored.
    pub fn purity(&self) -> Purity {
        self.purity
    }

    /// Whether the adapter has a reference policy.
    pub fn has_reference(&self) -> bool {
        self.has_reference
    }

    /// Whether the adapter computes exact values.
    pub fn has_exact(&self) -> bool {
        self.has_exact
    }

    /// The adapter, as given to the builder.
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// The process ids of every worker started so far (restarted ones included).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.pool.pids()
    }

    /// How many times a worker was replaced.
    pub fn restarts(&self) -> usize {
        self.pool.restarts()
    }

    /// Runs `req` on a worker holding `state` (restoring it if the worker holds another).
    fn at_state<T>(
        &self,
        state: &PythonState,
        req: Value,
        draws: &mut Draws<'_>,
        finish: &mut Finish<'_, T>,
    ) -> std::result::Result<T, EnvsError> {
        let key = state.key();
        let restore = state.restore_json();
        let make = move |holds: Option<[u8; 32]>| {
            let mut r = req.clone();
            r["restore"] = if holds == Some(key) {
                Value::Null
            } else {
                restore.clone()
            };
            r
        };
        self.pool.run(&make, draws, finish)
    }

    /// A request that does not depend on or change a state.
    fn stateless(&self, req: Value) -> std::result::Result<Value, EnvsError> {
        self.pool
            .run(&|_| req.clone(), &mut Draws::new(None), &mut |v, _| Ok((v, Hold::Keep)))
    }

    /// The reference policy's action in `state`.
    ///
    /// # Errors
    /// The adapter has no reference policy, raised, or its worker failed twice.
    pub fn reference_action(&self, state: &PythonState) -> std::result::Result<Value, EnvsError> {
        let key = state.key();
        self.at_state(state, json!({"op": "reference"}), &mut Draws::new(None), &mut |v, _| {
            Ok((v, Hold::Key(key)))
        })
    }

    /// The reference policy's expected discounted return from `state` with `horizon` steps
    /// left, after forcing `action` if given.
    ///
    /// # Errors
    /// The adapter has no exact values, raised, returned a non-number, or its worker failed
    /// twice.
    pub fn exact_value(
        &self,
        state: &PythonState,
        action: Option<&Value>,
        gamma: f64,
        horizon: usize,
    ) -> std::result::Result<f64, EnvsError> {
        let key = state.key();
        let v = self.at_state(
            state,
            json!({"op": "exact", "gamma": gamma, "horizon": horizon, "action": action}),
            &mut Draws::new(None),
            &mut |v, _| Ok((v, Hold::Key(key))),
        )?;
        v.as_f64()
            .ok_or_else(|| EnvsError::bridge(format!("exact_value returned {v}, not a number")))
    }

    fn state_from(&self, task: Arc<Task>, restore: Restore, r: &Value) -> std::result::Result<PythonState, EnvsError> {
        let observation = r["observation"]
            .as_str()
            .ok_or_else(|| EnvsError::bridge(format!("observe() gave no text: {}", r["observation"])))?
            .to_string();
        let legal = match &r["legal"] {
            Value::Null => None,
            Value::Array(a) => Some(Arc::new(a.clone())),
            other => return Err(EnvsError::bridge(format!("legal_actions() gave {other}, not a list"))),
        };
        let success = match &r["success"] {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            other => {
                return Err(EnvsError::bridge(format!(
                    "succeeded() gave {other}, not a bool or None"
                )));
            }
        };
        Ok(PythonState {
            task,
            restore,
            observation,
            legal,
            success,
        })
    }

    fn snapshot_of(&self, r: &Value) -> std::result::Result<Snapshot, EnvsError> {
        let b64 = r["snapshot"]
            .as_str()
            .ok_or_else(|| EnvsError::bridge("a snapshot adapter sent no snapshot"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| EnvsError::bridge(format!("a snapshot is not base64: {e}")))?;
        Ok(Snapshot::intern(bytes))
    }
}

impl PythonEnvBuilder {
    /// Keyword arguments of the adapter's constructor, a JSON object (default `{}`).
    pub fn args(mut self, args: Value) -> Self {
        self.args = args;
        self
    }

    /// The Python interpreter (default `python3`, or `$QVAL_PYTHON`).
    pub fn python(mut self, python: impl Into<PathBuf>) -> Self {
        self.python = python.into();
        self
    }

    /// The number of worker processes (default 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// The time a worker has to answer one request before it is killed (default 30 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// The folder holding the `qval_bridge` package (default [`default_bridge_dir`]).
    pub fn bridge_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bridge_dir = dir.into();
        self
    }

    /// Validates the settings, starts the workers and asks the adapter for its spec and tasks.
    ///
    /// # Errors
    /// [`EnvsError::InvalidParameter`] naming the setting (adapter, args, workers, timeout,
    /// bridge_dir, python); [`EnvsError::Python`] with [`qval_python::PyError::MissingPackage`]
    /// (the pip command), [`qval_python::PyError::Python`] if the adapter raised, or
    /// [`qval_python::PyError::Bridge`] if a worker cannot start or its hello is malformed.
    pub fn build(self) -> std::result::Result<PythonEnv, EnvsError> {
        let invalid = |name, value: String, reason: &str| EnvsError::InvalidParameter {
            name,
            value,
            reason: reason.into(),
        };
        if !self.args.is_object() {
            return Err(invalid(
                "args",
                self.args.to_string(),
                "a table of the adapter's arguments",
            ));
        }
        if !(1..=64).contains(&self.workers) {
            return Err(invalid("workers", self.workers.to_string(), "between 1 and 64"));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(86_400) {
            return Err(invalid(
                "timeout",
                format!("{:?}", self.timeout),
                "more than 0 and at most one day",
            ));
        }
        qval_python::check_launch(&self.adapter, &self.bridge_dir, &self.python)
            .map_err(|(name, value, reason)| invalid(name, value, &reason))?;
        let launch = Launch {
            python: self.python,
            module: "qval_bridge.worker".into(),
            flag: "--adapter".into(),
            adapter: self.adapter.clone(),
            bridge_dir: self.bridge_dir,
            path: Vec::new(),
            args: self.args,
            timeout: self.timeout,
        };
        let (pool, hello) = Pool::start(launch, self.workers)?;
        let bad = |what: &str| EnvsError::bridge(format!("the adapter's hello has no valid `{what}`: {hello}"));
        if hello["protocol"].as_u64() != Some(1) {
            return Err(bad("protocol (1)"));
        }
        let text = |k: &str| hello[k].as_str().map(str::to_string);
        let spec = EnvSpec {
            name: text("name").ok_or_else(|| bad("name"))?,
            max_steps: hello["max_steps"].as_u64().ok_or_else(|| bad("max_steps"))? as usize,
            gamma: hello["gamma"].as_f64().ok_or_else(|| bad("gamma"))?,
            reward_description: text("reward_description").unwrap_or_default(),
            notes: text("notes").unwrap_or_default(),
        };
        let purity: Purity = serde_json::from_value(hello["purity"].clone()).map_err(|_| bad("purity"))?;
        let profile = match &hello["profile"] {
            Value::Null => EnvProfile::default(),
            p => serde_json::from_value(p.clone())
                .map_err(|e| EnvsError::bridge(format!("the adapter's profile() is not a valid profile: {e}")))?,
        };
        let tasks = pool.run::<_, EnvsError>(&|_| json!({"op": "tasks"}), &mut Draws::new(None), &mut |v, _| {
            Ok((v, Hold::Keep))
        })?;
        let tasks: Vec<Task> = serde_json::from_value(tasks)
            .map_err(|e| EnvsError::bridge(format!("tasks() is not a list of tasks: {e}")))?;
        Ok(PythonEnv {
            adapter: self.adapter,
            spec,
            tasks,
            purity,
            has_reference: hello["reference"].as_bool().unwrap_or(false),
            has_exact: hello["exact"].as_bool().unwrap_or(false),
            profile,
            pool,
            parsed: Mutex::new(HashMap::new()),
            rendered: Mutex::new(HashMap::new()),
        })
    }
}

impl Environment for PythonEnv {
    type State = PythonState;
    type Action = Value;

    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// The adapter's `profile()`, else the generic profile.
    fn profile(&self) -> EnvProfile {
        self.profile.clone()
    }

    fn tasks(&self) -> Vec<Task> {
        self.tasks.clone()
    }

    fn reset(&self, task: &Task, rng: &mut QRng) -> Result<PythonState> {
        let req = json!({"op": "reset", "task": task});
        let task = Arc::new(task.clone());
        let state = self
            .pool
            .run::<_, EnvsError>(&|_| req.clone(), &mut Draws::new(Some(rng)), &mut |r, draws| {
                let restore = match self.purity {
                    Purity::Snapshot => Restore::Snapshot(self.snapshot_of(&r)?),
                    Purity::Replay => Restore::Replay(Arc::new(Replay {
                        reset_draws: draws.to_vec(),
                        history: Vec::new(),
                    })),
                };
                let s = self.state_from(task.clone(), restore, &r)?;
                let key = s.key();
                Ok((s, Hold::Key(key)))
            })
            .map_err(|e| e.in_env(&self.spec.name))?;
        Ok(state)
    }

    fn step(&self, state: &PythonState, action: &Value, rng: &mut QRng) -> Result<StepOutcome<PythonState>> {
        let req = json!({"op": "step", "action": action});
        let out = self
            .at_state(state, req, &mut Draws::new(Some(rng)), &mut |r, draws| {
                let restore = match &state.restore {
                    Restore::Snapshot(_) => Restore::Snapshot(self.snapshot_of(&r)?),
                    Restore::Replay(old) => {
                        let mut next = (**old).clone();
                        next.history.push(ReplayStep {
                            action: action.clone(),
                            draws: draws.to_vec(),
                        });
                        Restore::Replay(Arc::new(next))
                    }
                };
                let next = self.state_from(state.task.clone(), restore, &r)?;
                let reward = r["reward"].as_f64().ok_or_else(|| {
                    EnvsError::bridge(format!("step() gave a reward that is not a number: {}", r["reward"]))
                })?;
                let terminated = r["terminated"].as_bool().unwrap_or(false);
                let key = next.key();
                Ok((
                    StepOutcome {
                        state: next,
                        reward,
                        terminated,
                    },
                    Hold::Key(key),
                ))
            })
            .map_err(|e| e.in_env(&self.spec.name))?;
        Ok(out)
    }

    fn observe(&self, state: &PythonState) -> Observation {
        Observation::text(state.observation.clone())
    }

    fn legal_actions(&self, state: &PythonState) -> Option<Vec<Value>> {
        state.legal.as_ref().map(|l| l.to_vec())
    }

    /// The adapter's `succeeded()` in the last state, where it defines one (CliffWalking:
    /// the goal cell; TextWorld: won); else the default (a positive final reward).
    fn succeeded(&self, trajectory: &qval_core::Trajectory) -> bool {
        match trajectory.transitions.last().map(|t| t.next_state.get("success")) {
            Some(Some(Value::Bool(b))) => *b,
            _ => trajectory.succeeded(),
        }
    }

    fn parse_action(&self, text: &str) -> Value {
        if let Some(a) = self.parsed.lock().expect("parse cache").get(text) {
            return a.clone();
        }
        match self.stateless(json!({"op": "parse", "text": text})) {
            Ok(a) => {
                self.parsed
                    .lock()
                    .expect("parse cache")
                    .insert(text.to_string(), a.clone());
                a
            }
            Err(_) => json!({"invalid": text}),
        }
    }

    fn render_action(&self, action: &Value) -> String {
        let key = action.to_string();
        if let Some(t) = self.rendered.lock().expect("render cache").get(&key) {
            return t.clone();
        }
        match self.stateless(json!({"op": "render", "action": action})) {
            Ok(Value::String(t)) => {
                self.rendered.lock().expect("render cache").insert(key, t.clone());
                t
            }
            _ => key,
        }
    }
}
