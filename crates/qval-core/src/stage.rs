//! Stages 1, 3 and 4 as functions users compose: collect, label, predict. Each can write its
//! records to a file, checkpointing as it goes, and resumes from the checkpoint when rerun.

use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::env::Environment;
use crate::io::{Checkpoint, Kind, Metadata, read_jsonl};
use crate::label::Labeler;
use crate::method::{DenseSignalMethod, MethodContext};
use crate::policy::{Policy, PolicyInput};
use crate::sample::{SampleConfig, sample_points};
use crate::seed::{QRng, derive_seed};
use crate::types::{EvaluationPoint, Label, Prediction, Task, Trajectory, Transition, Turn};
use crate::{CoreError, Result};
use rand::SeedableRng as _;

/// Where and how a stage writes its records.
#[derive(Clone, Debug, Default)]
pub struct StageOptions {
    /// The output file; `None` keeps everything in memory (no resumption).
    pub out: Option<PathBuf>,
    /// Records finished between checkpoint writes (0 means 64).
    pub checkpoint_every: usize,
    /// Show a progress bar on standard error (hidden when it is not a terminal).
    pub progress: bool,
    /// The fingerprint of the dataset the points come from, recorded in the file's metadata
    /// so that evaluation refuses labels and predictions made from other points. `None`:
    /// the fingerprint of the points given (set it when a stage runs on a part of a dataset,
    /// such as the first 100 points).
    pub dataset: Option<String>,
    /// A bar to draw on instead of a new one: for example one of the caller's
    /// `indicatif::MultiProgress`, whose message (`{msg}`) the caller keeps current with
    /// requests and tokens. Used only when `progress` is true.
    pub bar: Option<ProgressBar>,
    /// Compute again the stored predictions that are NaN (for example to let an LLM cache
    /// ask again what did not parse). Transport failures are always computed again.
    pub redo_failed: bool,
}

impl StageOptions {
    /// Write to `path`, with a progress bar.
    pub fn to_file(path: impl Into<PathBuf>) -> Self {
        StageOptions {
            out: Some(path.into()),
            checkpoint_every: 0,
            progress: true,
            dataset: None,
            bar: None,
            redo_failed: false,
        }
    }

    /// Sets the fingerprint of the dataset the points come from (see [`StageOptions::dataset`]).
    pub fn with_dataset(mut self, fingerprint: impl Into<String>) -> Self {
        self.dataset = Some(fingerprint.into());
        self
    }

    fn dataset_of(&self, points: &[EvaluationPoint]) -> String {
        self.dataset.clone().unwrap_or_else(|| fingerprint(points))
    }
}

fn progress_bar(opts: &StageOptions, len: usize, what: &str) -> ProgressBar {
    if !opts.progress {
        return ProgressBar::hidden();
    }
    let pb = match &opts.bar {
        Some(b) => {
            b.set_length(len as u64);
            b.set_position(0);
            b.reset_eta();
            b.clone()
        }
        None => ProgressBar::new(len as u64),
    };
    pb.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}

/// How [`checkpointed`] treats records it finds on disk.
pub(crate) struct Resume<'r, T> {
    /// The record's key (the point id).
    pub(crate) key_of: fn(&T) -> String,
    /// Whether a stored record is not final and must be computed again (a transport failure).
    pub(crate) redo: &'r (dyn Fn(&T) -> bool + Sync),
}

/// Runs `compute` over the items not yet finished, in chunks, and returns all records in key
/// order. `compute` yields records as they finish (in the chunk's order); they are appended
/// to the checkpoint as they come (at the latest every `chunk` records or every second), so an
/// interruption loses only the records in flight. A complete output file with the same
/// metadata is read back instead of recomputed, except records that `resume.redo` marks; a
/// file cut short ([`CoreError::Truncated`]) becomes the checkpoint and is resumed.
pub(crate) async fn checkpointed<'a, T, F>(
    keys: &[String],
    resume: Resume<'_, T>,
    meta: &Metadata,
    opts: &StageOptions,
    what: &str,
    mut compute: F,
) -> Result<Vec<T>>
where
    T: Serialize + DeserializeOwned + Clone + 'a,
    F: FnMut(Vec<usize>) -> futures::stream::BoxStream<'a, Result<T>>,
{
    use futures::StreamExt as _;
    let chunk = if opts.checkpoint_every == 0 {
        64
    } else {
        opts.checkpoint_every
    };
    let key_of = resume.key_of;
    let pb = progress_bar(opts, keys.len(), what);
    let Some(path) = opts.out.as_deref() else {
        // Records may finish in any order: they are returned in the keys' order.
        let mut by_key: HashMap<String, T> = HashMap::new();
        for c in (0..keys.len()).collect::<Vec<_>>().chunks(chunk) {
            let mut s = compute(c.to_vec());
            while let Some(r) = s.next().await {
                let r = r?;
                by_key.insert(key_of(&r), r);
                pb.inc(1);
            }
        }
        pb.finish_and_clear();
        return keys
            .iter()
            .map(|k| {
                by_key
                    .remove(k)
                    .ok_or_else(|| CoreError::Empty(format!("no record was produced for `{k}`")))
            })
            .collect();
    };
    if path.exists() {
        match read_jsonl::<T>(path, meta.kind) {
            Ok((found, records)) if &found == meta => {
                let by_key: HashMap<String, &T> = records.iter().map(|r| (key_of(r), r)).collect();
                if let Some(all) = keys
                    .iter()
                    .map(|k| by_key.get(k).filter(|r| !(resume.redo)(r)).map(|r| (*r).clone()))
                    .collect::<Option<Vec<T>>>()
                {
                    return Ok(all);
                }
                // Some records are not final: resume from the file.
                adopt_as_checkpoint(path)?;
            }
            Ok((found, _)) => {
                return Err(CoreError::CheckpointMismatch {
                    path: path.to_path_buf(),
                    what: crate::io::describe_difference(&found, meta),
                });
            }
            Err(CoreError::Truncated { .. }) => adopt_as_checkpoint(path)?,
            Err(e) => return Err(e),
        }
    }
    let (mut ckpt, done) = Checkpoint::open::<T>(path, meta)?;
    let mut by_key: HashMap<String, T> = done
        .into_iter()
        .filter(|r| !(resume.redo)(r))
        .map(|r| (key_of(&r), r))
        .collect();
    let pending: Vec<usize> = (0..keys.len()).filter(|&i| !by_key.contains_key(&keys[i])).collect();
    pb.inc((keys.len() - pending.len()) as u64);
    for c in pending.chunks(chunk) {
        let mut s = compute(c.to_vec());
        let mut last = std::time::Instant::now();
        while let Some(r) = s.next().await {
            let r = r?;
            // Written as it finishes (a kill keeps it); synced every second and per chunk.
            ckpt.write(std::slice::from_ref(&r))?;
            by_key.insert(key_of(&r), r);
            pb.inc(1);
            if last.elapsed() >= std::time::Duration::from_secs(1) {
                ckpt.sync()?;
                last = std::time::Instant::now();
            }
        }
        ckpt.sync()?;
    }
    pb.finish_and_clear();
    let all: Vec<T> = keys
        .iter()
        .map(|k| {
            by_key
                .remove(k)
                .ok_or_else(|| CoreError::Empty(format!("no record was produced for `{k}`")))
        })
        .collect::<Result<_>>()?;
    ckpt.finish(path, meta, &all)?;
    Ok(all)
}

/// Turns an output file that is not complete (cut short, or holding records to redo) into
/// the stage's checkpoint, so its finished records are kept and the rest computed. A
/// checkpoint already there wins (it is at least as recent), and the file is removed.
fn adopt_as_checkpoint(path: &Path) -> Result<()> {
    let partial = crate::io::partial_path(path);
    if partial.exists() {
        std::fs::remove_file(path).map_err(|e| CoreError::io("removing", path, e))
    } else {
        std::fs::rename(path, &partial).map_err(|e| CoreError::io("renaming", path, e))
    }
}

/// A fingerprint of points (their ids and contents), stored in label and prediction metadata
/// so that a checkpoint is never resumed against other points.
pub fn fingerprint(points: &[EvaluationPoint]) -> String {
    let mut h: u64 = 0;
    for p in points {
        let text = serde_json::to_string(p).unwrap_or_default();
        h = derive_seed(h, &[crate::seed::stable_hash(&text)]);
    }
    format!("{h:016x}")
}

/// Parameters of [`collect`].
///
/// | parameter | default | range |
/// |---|---|---|
/// | `trajectories` | 50 | [1, [`CollectConfig::MAX_TRAJECTORIES`]] |
/// | `seed` | 42 | any |
/// | `concurrency` | 16 | >= 1 |
#[derive(Clone, Debug, PartialEq)]
pub struct CollectConfig {
    trajectories: usize,
    seed: u64,
    concurrency: usize,
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig {
            trajectories: 50,
            seed: 42,
            concurrency: 16,
        }
    }
}

impl CollectConfig {
    /// The most trajectories (1,000,000): every trajectory is kept in memory, and its key in
    /// the checkpoint's index, until the collection ends.
    pub const MAX_TRAJECTORIES: usize = 1_000_000;

    /// `trajectories` trajectories (trajectory i runs task i mod the number of tasks, from a
    /// generator derived from (`seed`, i)), `concurrency` episodes at once (for LLM policies;
    /// it does not change the result).
    ///
    /// # Errors
    /// [`CoreError::InvalidParameter`] for zero trajectories or concurrency, or more
    /// trajectories than [`CollectConfig::MAX_TRAJECTORIES`].
    pub fn new(trajectories: usize, seed: u64, concurrency: usize) -> Result<CollectConfig> {
        if trajectories == 0 {
            return Err(CoreError::invalid("trajectories", 0, "at least one"));
        }
        if trajectories > Self::MAX_TRAJECTORIES {
            return Err(CoreError::invalid(
                "trajectories",
                trajectories,
                format!(
                    "at most {} (every trajectory is kept in memory until the collection ends)",
                    Self::MAX_TRAJECTORIES
                ),
            ));
        }
        if concurrency == 0 {
            return Err(CoreError::invalid("concurrency", 0, "at least 1"));
        }
        Ok(CollectConfig {
            trajectories,
            seed,
            concurrency,
        })
    }

    /// How many trajectories.
    pub fn trajectories(&self) -> usize {
        self.trajectories
    }

    /// The root seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Episodes run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }
}

/// Runs one episode of `policy` on `task` from a generator seeded with `seed`.
pub async fn run_episode<E: Environment, P: Policy<E> + ?Sized>(
    env: &E,
    policy: &P,
    task: &Task,
    index: usize,
    seed: u64,
) -> Result<Trajectory> {
    let spec = env.spec();
    let mut rng = QRng::seed_from_u64(seed);
    let mut state = env.reset(task, &mut rng)?;
    let mut transitions = Vec::new();
    let mut history: Vec<Turn> = Vec::new();
    for step in 0..spec.max_steps {
        let input = PolicyInput {
            task,
            state: &state,
            step,
            max_steps: spec.max_steps,
            history: if policy.uses_history() { &history } else { &[] },
        };
        let (action, thought) = policy.act_explained(env, input, &mut rng).await?;
        let out = env.step(&state, &action, &mut rng)?;
        let observation = env.observe(&state);
        let action_text = env.render_action(&action);
        if policy.uses_history() {
            history.push(Turn {
                step,
                observation: observation.text.clone(),
                action: action_text.clone(),
                reward: out.reward,
                thought: thought.clone(),
            });
        }
        let truncated = !out.terminated && step + 1 == spec.max_steps;
        transitions.push(Transition {
            step,
            state: to_value(&state)?,
            observation,
            action: to_value(&action)?,
            action_text,
            reward: out.reward,
            next_state: to_value(&out.state)?,
            next_observation: env.observe(&out.state),
            terminated: out.terminated,
            truncated,
            thought,
        });
        state = out.state;
        if out.terminated {
            break;
        }
    }
    Ok(Trajectory {
        index,
        task: task.clone(),
        seed,
        policy: policy.name(),
        transitions,
    })
}

pub(crate) fn to_value<T: Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| CoreError::Empty(format!("cannot serialise a state or action: {e}")))
}

// Kept here rather than in types.rs, beside `run_episode` which records transitions the same
// way, so that the data types do not depend on the Environment trait or on the stages.
impl EvaluationPoint {
    /// The point of forcing `action` in `state` (of `task`, at step `step` of trajectory
    /// `trajectory`, with no history), stepped by `env` with `rng`: a point made by hand, for
    /// tests and examples, without collecting a trajectory.
    ///
    /// # Errors
    /// The environment's error from the step, or a state or action that cannot be serialised.
    pub fn from_step<E: Environment>(
        env: &E,
        task: &Task,
        trajectory: usize,
        step: usize,
        state: &E::State,
        action: &E::Action,
        rng: &mut QRng,
    ) -> Result<Self> {
        let next = env.step(state, action, rng)?;
        Ok(EvaluationPoint {
            id: Self::make_id(trajectory, step),
            trajectory_index: trajectory,
            step_index: step,
            task: task.clone(),
            history: Vec::new(),
            state: to_value(state)?,
            observation: env.observe(state),
            action: to_value(action)?,
            action_text: env.render_action(action),
            reward: next.reward,
            next_state: to_value(&next.state)?,
            next_observation: env.observe(&next.state),
            terminated: next.terminated,
            candidate_of: None,
            thought: None,
        })
    }
}

/// Stage 1: rolls `policy` out `config.trajectories` times, cycling through `tasks`.
///
/// Trajectory i runs `tasks[i % tasks.len()]` with a generator derived from `(seed, i)`, so
/// the result does not depend on the concurrency. With `opts.out` set, finished trajectories
/// are checkpointed and a rerun resumes.
pub async fn collect<E: Environment, P: Policy<E> + ?Sized>(
    env: &E,
    policy: &P,
    tasks: &[Task],
    config: &CollectConfig,
    opts: &StageOptions,
) -> Result<Vec<Trajectory>> {
    collect_share(env, policy, tasks, config, Share::ALL, opts).await
}

/// A part of the work of a run split over several processes: item `i` belongs to shard
/// `i mod count`. Items keep their own seeds, so the union of the shards' records is exactly
/// what one process would produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(try_from = "ShareFields")]
pub struct Share {
    index: usize,
    count: usize,
}

/// A [`Share`] as written, checked by [`Share::new`] when read.
#[derive(serde::Deserialize)]
struct ShareFields {
    index: usize,
    count: usize,
}

impl TryFrom<ShareFields> for Share {
    type Error = CoreError;

    fn try_from(f: ShareFields) -> Result<Share> {
        Share::new(f.index, f.count)
    }
}

impl Share {
    /// Everything (one shard).
    pub const ALL: Share = Share { index: 0, count: 1 };

    /// This shard, `0..count`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many shards.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Shard `index` of `count`.
    ///
    /// # Errors
    /// [`CoreError::InvalidParameter`] for `count` 0 or `index >= count`.
    pub fn new(index: usize, count: usize) -> Result<Share> {
        if count == 0 || index >= count {
            return Err(CoreError::invalid(
                "shard",
                format!("{index}/{count}"),
                "I/N with N >= 1 and 0 <= I < N",
            ));
        }
        Ok(Share { index, count })
    }

    /// Whether item `i` is this shard's.
    pub fn contains(&self, i: usize) -> bool {
        i % self.count == self.index
    }

    /// This shard's items of `items`, in order.
    pub fn of<T: Clone>(&self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .enumerate()
            .filter(|(i, _)| self.contains(*i))
            .map(|(_, t)| t.clone())
            .collect()
    }
}

/// Stage 1 for one [`Share`] of the trajectories: trajectory `i` is collected when
/// `share.contains(i)`, exactly as [`collect`] would collect it. The file's metadata is the
/// one the whole collection has, so the shards' records merge into the very file one process
/// writes.
pub async fn collect_share<E: Environment, P: Policy<E> + ?Sized>(
    env: &E,
    policy: &P,
    tasks: &[Task],
    config: &CollectConfig,
    share: Share,
    opts: &StageOptions,
) -> Result<Vec<Trajectory>> {
    if tasks.is_empty() {
        return Err(CoreError::Empty("no tasks to collect trajectories on".into()));
    }
    let meta = Metadata::new(Kind::Trajectories, policy.name())
        .with_seed(config.seed)
        .with_params(json!({
            "env": env.spec().name,
            "trajectories": config.trajectories,
            "tasks": tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        }));
    let mine: Vec<usize> = (0..config.trajectories).filter(|i| share.contains(*i)).collect();
    let keys: Vec<String> = mine.iter().map(|i| i.to_string()).collect();
    let mine = &mine;
    checkpointed(
        &keys,
        Resume {
            key_of: |t: &Trajectory| t.index.to_string(),
            redo: &|_| false,
        },
        &meta,
        opts,
        "collect",
        |idx| {
            futures::stream::iter(idx)
                .map(move |k| {
                    let i = mine[k];
                    run_episode(
                        env,
                        policy,
                        &tasks[i % tasks.len()],
                        i,
                        derive_seed(config.seed, &[i as u64]),
                    )
                })
                .buffered(config.concurrency)
                .boxed()
        },
    )
    .await
}

/// Parameters of [`label`] beyond the labeler's own.
///
/// | parameter | default | range |
/// |---|---|---|
/// | `max_aborted_share` | 0.3 (the published catalog's `max_aborted_points`) | [0, 1] |
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(try_from = "LabelConfigFields")]
pub struct LabelConfig {
    max_aborted_share: f64,
}

/// A [`LabelConfig`] as written, checked by [`LabelConfig::new`] when read.
#[derive(serde::Deserialize)]
struct LabelConfigFields {
    max_aborted_share: f64,
}

impl TryFrom<LabelConfigFields> for LabelConfig {
    type Error = CoreError;

    fn try_from(f: LabelConfigFields) -> Result<LabelConfig> {
        LabelConfig::new(f.max_aborted_share)
    }
}

impl Default for LabelConfig {
    fn default() -> Self {
        LabelConfig { max_aborted_share: 0.3 }
    }
}

impl LabelConfig {
    /// The largest share of points that may be aborted (NaN) before the stage fails.
    ///
    /// # Errors
    /// [`CoreError::InvalidParameter`] for a share outside [0, 1].
    pub fn new(max_aborted_share: f64) -> Result<LabelConfig> {
        if !(0.0..=1.0).contains(&max_aborted_share) {
            return Err(CoreError::invalid(
                "max_aborted_share",
                max_aborted_share,
                "a share in [0, 1]",
            ));
        }
        Ok(LabelConfig { max_aborted_share })
    }

    /// The largest share of points that may be aborted (NaN) before the stage fails.
    pub fn max_aborted_share(&self) -> f64 {
        self.max_aborted_share
    }
}

/// Stage 2: samples the evaluation points of `trajectories`, writing them to `opts.out` if
/// set. A complete file made from the same trajectories with the same settings is read back
/// instead of resampled; one made otherwise is an error naming the file.
///
/// # Errors
/// A file that cannot be read or written, or one made with other settings.
pub fn sample(trajectories: &[Trajectory], config: &SampleConfig, opts: &StageOptions) -> Result<Vec<EvaluationPoint>> {
    let meta = Metadata::new(Kind::Points, "sample_points")
        .with_seed(config.seed)
        .with_params(json!({
            "sampling": config,
            "trajectories": trajectories_fingerprint(trajectories),
        }));
    if let Some(path) = opts.out.as_deref()
        && path.exists()
    {
        match read_jsonl::<EvaluationPoint>(path, Kind::Points) {
            Ok((found, points)) if found == meta => return Ok(points),
            Ok(_) => {
                return Err(CoreError::CheckpointMismatch {
                    path: path.to_path_buf(),
                    what: "points sampled from other trajectories or with other settings".into(),
                });
            }
            // Cut short: sampled again below (sampling is a seeded function of the
            // trajectories, so the same points come back).
            Err(CoreError::Truncated { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let points = sample_points(trajectories, config);
    if let Some(path) = opts.out.as_deref() {
        crate::io::write_jsonl(path, &meta, &points)?;
    }
    Ok(points)
}

/// A fingerprint of trajectories (their contents), as [`fingerprint`] is of points.
pub fn trajectories_fingerprint(trajectories: &[Trajectory]) -> String {
    let mut h: u64 = 0;
    for t in trajectories {
        let text = serde_json::to_string(t).unwrap_or_default();
        h = derive_seed(h, &[crate::seed::stable_hash(&text)]);
    }
    format!("{h:016x}")
}

/// Stage 3: labels every point, writing the labels to `opts.out` if set (resumable). A
/// ranking candidate's label carries the point it belongs to ([`Label::candidate_of`]).
///
/// # Errors
/// [`CoreError::TooManyAborted`] when more than `config.max_aborted_share` of the points could
/// not be labelled; the labels are written first, so nothing is lost.
pub async fn label<L: Labeler + ?Sized>(
    labeler: &L,
    points: &[EvaluationPoint],
    config: &LabelConfig,
    opts: &StageOptions,
) -> Result<Vec<Label>> {
    let max_aborted_share = config.max_aborted_share;
    let mut meta = Metadata::new(Kind::Labels, labeler.name()).with_params(json!({
        "labeler": labeler.params(),
        "points": fingerprint(points),
        "dataset": opts.dataset_of(points),
    }));
    meta.seed = labeler.seed();
    let keys: Vec<String> = points.iter().map(|p| p.id.clone()).collect();
    // Labels are checkpointed one by one as they finish, in the order they finish (each
    // point a batch of one, the chunk's points labelled at once), so an interruption keeps
    // every finished label; the output is in the points' order whatever the finishing order.
    let labels = checkpointed(
        &keys,
        Resume {
            key_of: |l: &Label| l.point_id.clone(),
            redo: &|_| false,
        },
        &meta,
        opts,
        "label",
        |idx| {
            use futures::StreamExt as _;
            let n = idx.len();
            futures::stream::iter(idx)
                .map(move |i| async move {
                    let p = &points[i];
                    let mut l = labeler
                        .label_batch(std::slice::from_ref(p))
                        .await
                        .pop()
                        .ok_or_else(|| CoreError::Empty(format!("labeler gave no label for `{}`", p.id)))?;
                    l.candidate_of.clone_from(&p.candidate_of);
                    Ok(l)
                })
                .buffer_unordered(n.min(labeler.concurrency()).max(1))
                .boxed()
        },
    )
    .await?;
    let aborted: Vec<&Label> = labels.iter().filter(|l| l.aborted.is_some()).collect();
    let share = if labels.is_empty() {
        0.0
    } else {
        aborted.len() as f64 / labels.len() as f64
    };
    if share > max_aborted_share {
        return Err(CoreError::TooManyAborted {
            aborted: aborted.len(),
            total: labels.len(),
            share: 100.0 * share,
            max: 100.0 * max_aborted_share,
            first_reason: aborted[0].aborted.clone().unwrap_or_default(),
        });
    }
    Ok(labels)
}

/// Turns a method's result into a prediction record: errors and non-finite scores become NaN
/// with the reason.
pub fn to_prediction(point_id: &str, result: Result<f64>) -> Prediction {
    match result {
        Ok(v) if v.is_finite() => Prediction {
            point_id: point_id.to_string(),
            value: v,
            error: None,
            transient: false,
        },
        Ok(v) => Prediction {
            point_id: point_id.to_string(),
            value: f64::NAN,
            error: Some(format!("non-finite score {v}")),
            transient: false,
        },
        Err(e) => Prediction {
            point_id: point_id.to_string(),
            value: f64::NAN,
            transient: matches!(e, CoreError::Transient(_)),
            error: Some(e.to_string()),
        },
    }
}

/// Stage 4: runs `method` on every point, writing predictions to `opts.out` if set
/// (resumable). A failure on a point is a NaN prediction with the reason, never an error.
pub async fn predict<M: DenseSignalMethod + ?Sized>(
    method: &M,
    points: &[EvaluationPoint],
    ctx: &MethodContext,
    opts: &StageOptions,
) -> Result<Vec<Prediction>> {
    let mut params = json!({
        "signal": method.signal(),
        "context": ctx,
        "points": fingerprint(points),
        "dataset": opts.dataset_of(points),
    });
    let method_params = method.params();
    if !method_params.is_null() {
        params["method"] = method_params;
    }
    let meta = Metadata::new(Kind::Predictions, method.name()).with_params(params);
    let keys: Vec<String> = points.iter().map(|p| p.id.clone()).collect();
    checkpointed(
        &keys,
        Resume {
            key_of: |p: &Prediction| p.point_id.clone(),
            redo: &|p: &Prediction| p.transient || (opts.redo_failed && p.value.is_nan()),
        },
        &meta,
        opts,
        "predict",
        |idx| {
            use futures::{FutureExt as _, StreamExt as _};
            async move {
                let batch: Vec<EvaluationPoint> = idx.iter().map(|&i| points[i].clone()).collect();
                let results = method.evaluate_batch(&batch, ctx).await;
                if results.len() != batch.len() {
                    return vec![Err(CoreError::Method(
                        format!(
                            "method `{}` returned {} results for {} points",
                            method.name(),
                            results.len(),
                            batch.len()
                        )
                        .into(),
                    ))];
                }
                batch
                    .iter()
                    .zip(results)
                    .map(|(p, r)| Ok(to_prediction(&p.id, r)))
                    .collect()
            }
            .map(futures::stream::iter)
            .flatten_stream()
            .boxed()
        },
    )
    .await
}

/// The default file layout of a run folder.
pub mod layout {
    use super::*;

    /// `trajectories.jsonl`
    pub fn trajectories(run: &Path) -> PathBuf {
        run.join("trajectories.jsonl")
    }
    /// `points.jsonl`
    pub fn points(run: &Path) -> PathBuf {
        run.join("points.jsonl")
    }
    /// `labels/<labeler>.jsonl`
    pub fn labels(run: &Path, labeler: &str) -> PathBuf {
        run.join("labels").join(format!("{labeler}.jsonl"))
    }
    /// `predictions/<method>.jsonl`
    pub fn predictions(run: &Path, method: &str) -> PathBuf {
        run.join("predictions").join(format!("{method}.jsonl"))
    }
}
