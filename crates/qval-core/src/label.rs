//! Reference labels: the [`Labeler`] trait and the Max-Value Monte Carlo labeler.

use async_trait::async_trait;
use futures::StreamExt as _;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::env::Environment;
use crate::policy::{Policy, PolicyInput};
use crate::rollout::{Produced, Rollout, RolloutKey, Rollouts, Start};
use crate::seed::{rng_for, stable_hash};
use crate::types::{Aggregation, EvaluationPoint, ExpertRollout, Label, Signal, Turn};
use crate::{CoreError, Result};

/// Gives evaluation points reference values.
///
/// A labeler never fails a whole batch: a point it cannot label comes back as an aborted
/// [`Label`] (NaN with the reason), and the label stage decides whether too many were.
///
/// Required: [`name`](Self::name), [`signal`](Self::signal) and [`label`](Self::label);
/// [`label_batch`](Self::label_batch) defaults to `label` on every point, concurrently on
/// the current task.
///
/// # Example
/// A labeler that reads the value off the reward (a one-step environment):
/// ```
/// use qval_core::{Aggregation, EvaluationPoint, Label, Labeler, Signal};
///
/// struct Immediate;
///
/// #[async_trait::async_trait]
/// impl Labeler for Immediate {
///     fn name(&self) -> String { "immediate".into() }
///     fn signal(&self) -> Signal { Signal::Q }
///     async fn label(&self, p: &EvaluationPoint) -> Label {
///         Label { aggregation: Aggregation::Max, returns: vec![p.reward],
///                 ..Label::exact(p.id.clone(), Signal::Q, p.reward) }
///     }
/// }
/// ```
#[async_trait]
pub trait Labeler: Send + Sync {
    /// The name under which labels are stored (e.g. `mvmc-q`).
    fn name(&self) -> String;

    /// The signal the labels give.
    fn signal(&self) -> Signal;

    /// The parameters that determine the labels, stored in the file's metadata. A resumed run
    /// must have the same ones.
    fn params(&self) -> Value {
        Value::Null
    }

    /// The root seed, if the labels are random.
    fn seed(&self) -> Option<u64> {
        None
    }

    /// Labels one point.
    async fn label(&self, point: &EvaluationPoint) -> Label;

    /// Labels several points; one label per point, in order.
    async fn label_batch(&self, points: &[EvaluationPoint]) -> Vec<Label> {
        futures::future::join_all(points.iter().map(|p| self.label(p))).await
    }

    /// The rollouts behind `point`'s label as raw rewards (what pass@k from the label stage
    /// reads), read back where the labeler keeps them, run again where it does not. Default:
    /// `None`, labels not made from rollouts.
    async fn rollouts_of(&self, point: &EvaluationPoint) -> Result<Option<Vec<Rollout>>> {
        let _ = point;
        Ok(None)
    }

    /// How many points the label stage may label at once (it labels them one by one, so
    /// each label is checkpointed as it finishes). Default: no limit of the labeler's own.
    fn concurrency(&self) -> usize {
        usize::MAX
    }
}

/// Parameters of the [`MvmcLabeler`]. Build with [`MvmcConfig::builder`].
///
/// | parameter | default | range |
/// |---|---|---|
/// | `rollouts` (k) | 16 | [1, [`MvmcConfig::MAX_ROLLOUTS`]] |
/// | `gamma` | the environment's ([`crate::EnvSpec::gamma`]; 0.95 for FrozenLake) | (0, 1] |
/// | `step_penalty` | 0.0 | finite |
/// | `aggregation` | [`Aggregation::Max`] | |
/// | `signal` | [`Signal::Q`] | |
/// | `seed` | 0 | any |
/// | `concurrency` | 64 | >= 1 |
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MvmcConfig {
    rollouts: usize,
    gamma: Option<f64>,
    step_penalty: f64,
    aggregation: Aggregation,
    signal: Signal,
    seed: u64,
    concurrency: usize,
}

impl MvmcConfig {
    /// The most rollouts per point (100,000): a point's k returns are kept in memory and
    /// stored in its label.
    pub const MAX_ROLLOUTS: usize = 100_000;

    /// A builder with the defaults of the table above.
    pub fn builder() -> MvmcConfigBuilder {
        MvmcConfigBuilder(MvmcConfig {
            rollouts: 16,
            gamma: None,
            step_penalty: 0.0,
            aggregation: Aggregation::Max,
            signal: Signal::Q,
            seed: 0,
            concurrency: 64,
        })
    }
}

/// Builder of [`MvmcConfig`]; [`build`](Self::build) validates.
#[derive(Clone, Debug)]
pub struct MvmcConfigBuilder(MvmcConfig);

impl MvmcConfigBuilder {
    /// Rollouts per point (default 16).
    pub fn rollouts(mut self, k: usize) -> Self {
        self.0.rollouts = k;
        self
    }
    /// The discount (default: the environment's).
    pub fn gamma(mut self, gamma: f64) -> Self {
        self.0.gamma = Some(gamma);
        self
    }
    /// A cost subtracted from every reward (default 0).
    pub fn step_penalty(mut self, p: f64) -> Self {
        self.0.step_penalty = p;
        self
    }
    /// Max (default) or mean.
    pub fn aggregation(mut self, a: Aggregation) -> Self {
        self.0.aggregation = a;
        self
    }
    /// Q (default), V or advantage.
    pub fn signal(mut self, s: Signal) -> Self {
        self.0.signal = s;
        self
    }
    /// The root seed (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }
    /// Points labelled at once (default 64). Does not change the labels.
    pub fn concurrency(mut self, c: usize) -> Self {
        self.0.concurrency = c;
        self
    }

    /// Validates and returns the configuration.
    ///
    /// # Errors
    /// [`CoreError::InvalidParameter`] for zero rollouts or concurrency, more rollouts than
    /// [`MvmcConfig::MAX_ROLLOUTS`], a gamma outside
    /// (0, 1], or a non-finite step penalty.
    pub fn build(self) -> Result<MvmcConfig> {
        let c = self.0;
        if c.signal == Signal::ShapedReward {
            return Err(shaped_reward_not_per_point());
        }
        if c.rollouts == 0 {
            return Err(CoreError::invalid("rollouts", 0, "at least one rollout per point"));
        }
        if c.rollouts > MvmcConfig::MAX_ROLLOUTS {
            return Err(CoreError::invalid(
                "rollouts",
                c.rollouts,
                format!(
                    "at most {} (a point's k returns are kept in memory and in its label)",
                    MvmcConfig::MAX_ROLLOUTS
                ),
            ));
        }
        check_shared(c.concurrency, c.gamma, c.step_penalty)?;
        Ok(c)
    }
}

/// Max-Value Monte Carlo: restore the point's state, force its action (for Q), roll out the
/// reference policy `k` times within the remaining step budget, and aggregate the discounted
/// returns G = sum_t gamma^t (r_t - step_penalty), t = 0 being the forced step.
///
/// Each rollout draws from its own generator, derived from the root seed, the point's id and
/// the rollout number, so labels do not depend on concurrency, batching or resumption.
/// Points run as tasks on the tokio runtime, so a multi-threaded runtime labels on all cores.
pub struct MvmcLabeler<E, P> {
    inner: Arc<Inner<E, P>>,
}

impl<E, P> Clone for MvmcLabeler<E, P> {
    fn clone(&self) -> Self {
        MvmcLabeler {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<E, P> {
    env: Arc<E>,
    policy: Arc<P>,
    config: MvmcConfig,
    gamma: f64,
    rollouts: Arc<Rollouts>,
    /// The environment's part of every rollout key.
    env_key: Value,
    /// The policy's fingerprint.
    policy_key: String,
}

/// A point's state (and forced action) turned back into the environment's types.
struct Restored<E: Environment> {
    state: E::State,
    action: Option<E::Action>,
}

impl<E, P> MvmcLabeler<E, P>
where
    E: Environment + 'static,
    P: Policy<E> + 'static,
{
    /// A labeler rolling out `policy` in `env`.
    pub fn new(env: Arc<E>, policy: Arc<P>, config: MvmcConfig) -> Self {
        let gamma = config.gamma.unwrap_or(env.spec().gamma);
        let env_key = serde_json::to_value(env.spec()).unwrap_or(Value::Null);
        let policy_key = policy.fingerprint();
        MvmcLabeler {
            inner: Arc::new(Inner {
                env,
                policy,
                config,
                gamma,
                rollouts: Arc::new(Rollouts::in_memory()),
                env_key,
                policy_key,
            }),
        }
    }

    /// Shares `rollouts` (with other label sets of the run, or a store across runs) instead
    /// of keeping its own in memory.
    pub fn with_rollouts(self, rollouts: Arc<Rollouts>) -> Self {
        let i = &self.inner;
        MvmcLabeler {
            inner: Arc::new(Inner {
                env: i.env.clone(),
                policy: i.policy.clone(),
                config: i.config.clone(),
                gamma: i.gamma,
                rollouts,
                env_key: i.env_key.clone(),
                policy_key: i.policy_key.clone(),
            }),
        }
    }

    /// The rollouts it reads and keeps (with their counts).
    pub fn rollouts(&self) -> &Arc<Rollouts> {
        &self.inner.rollouts
    }

    /// The configuration.
    pub fn config(&self) -> &MvmcConfig {
        &self.inner.config
    }

    /// The discount in use.
    pub fn gamma(&self) -> f64 {
        self.inner.gamma
    }
}

impl<E: Environment, P: Policy<E>> Inner<E, P> {
    /// The first `k` rollouts of `point` from `start`: those already known (to this run, or
    /// in its store) read back, the rest run and kept.
    async fn rollouts(&self, point: &EvaluationPoint, start: Start) -> Result<Vec<Rollout>> {
        let k = self.config.rollouts;
        let key = RolloutKey::new(&self.env_key, &self.policy_key, self.config.seed, start, point);
        let mut all = self.rollouts.known(&key);
        let reused = all.len().min(k);
        self.rollouts.note_reused(reused);
        if all.len() >= k {
            all.truncate(k);
            return Ok(all);
        }
        let known = all.len();
        let restored = restore::<E>(point, start)?;
        for r in known..k {
            all.push(rollout(&*self.env, &*self.policy, self.config.seed, point, start, &restored, r).await?);
        }
        let produced = Produced {
            env: self.env.spec().name.clone(),
            policy: self.policy_key.clone(),
        };
        self.rollouts.keep(&key, &produced, all.clone(), &all[known..])?;
        Ok(all)
    }

    /// The discounted returns of the point's rollouts, the summary of the best one (the
    /// first of the highest return), and their environment steps.
    async fn returns(&self, point: &EvaluationPoint, start: Start) -> Result<(Vec<f64>, Option<ExpertRollout>, u64)> {
        let rollouts = self.rollouts(point, start).await?;
        let steps = rollouts.iter().map(|r| r.rewards.len() as u64).sum();
        let mut out = Vec::with_capacity(rollouts.len());
        let mut best: Option<&Rollout> = None;
        let mut best_return = f64::NEG_INFINITY;
        for r in &rollouts {
            let ret = r.discounted(self.gamma, self.config.step_penalty);
            if best.is_none() || ret > best_return {
                best_return = ret;
                best = Some(r);
            }
            out.push(ret);
        }
        Ok((out, best.map(Rollout::expert), steps))
    }
}

#[async_trait]
impl<E: Environment + 'static, P: Policy<E> + 'static> PointLabeler for Inner<E, P> {
    async fn label_point(&self, point: &EvaluationPoint) -> Label {
        let c = &self.config;
        let result: Result<Label> = async {
            let mut label = Label::unlabelled(point.id.clone(), c.signal, c.aggregation);
            match c.signal {
                Signal::Q => {
                    let steps;
                    (label.returns, label.expert, steps) = self.returns(point, Start::Forced).await?;
                    label.value = c.aggregation.apply(&label.returns);
                    label.steps = Some(steps);
                }
                Signal::ShapedReward => return Err(shaped_reward_not_per_point()),
                Signal::V | Signal::Potential => {
                    let (returns, _, steps) = self.returns(point, Start::State).await?;
                    label.returns = returns;
                    label.value = c.aggregation.apply(&label.returns);
                    label.steps = Some(steps);
                }
                Signal::Advantage => {
                    // A terminal or budget-exhausting transition leaves nothing to earn.
                    let mut steps = 0;
                    let next_v = if point.terminated || point.step_index + 1 >= self.env.spec().max_steps {
                        0.0
                    } else {
                        let next;
                        (label.returns, _, next) = self.returns(point, Start::Next).await?;
                        steps += next;
                        c.aggregation.apply(&label.returns)
                    };
                    let (baseline, _, here) = self.returns(point, Start::State).await?;
                    label.baseline_returns = baseline;
                    label.steps = Some(steps + here);
                    label.value = next_v - c.aggregation.apply(&label.baseline_returns);
                }
            }
            Ok(label)
        }
        .await;
        result.unwrap_or_else(|e| Label::aborted(point.id.clone(), c.signal, c.aggregation, e.to_string()))
    }
}

#[async_trait]
impl<E, P> Labeler for MvmcLabeler<E, P>
where
    E: Environment + 'static,
    P: Policy<E> + 'static,
{
    fn name(&self) -> String {
        format!("mvmc-{}", self.inner.config.signal.key())
    }

    fn signal(&self) -> Signal {
        self.inner.config.signal
    }

    fn params(&self) -> Value {
        let c = &self.inner.config;
        json!({
            "method": "mvmc",
            "env": self.inner.env.spec().name,
            "policy": self.inner.policy.name(),
            "rollouts": c.rollouts,
            "gamma": self.inner.gamma,
            "step_penalty": c.step_penalty,
            "aggregation": c.aggregation,
            "signal": c.signal,
        })
    }

    fn seed(&self) -> Option<u64> {
        Some(self.inner.config.seed)
    }

    async fn label(&self, point: &EvaluationPoint) -> Label {
        self.inner.label_point(point).await
    }

    /// Q labels: the forced rollouts; V and advantage: those from the state.
    async fn rollouts_of(&self, point: &EvaluationPoint) -> Result<Option<Vec<Rollout>>> {
        let start = match self.inner.config.signal {
            Signal::Q => Start::Forced,
            Signal::V | Signal::Potential | Signal::Advantage => Start::State,
            Signal::ShapedReward => return Ok(None),
        };
        self.inner.rollouts(point, start).await.map(Some)
    }

    fn concurrency(&self) -> usize {
        self.inner.config.concurrency
    }

    /// Labels the points as tasks on the runtime (all cores on a multi-threaded runtime),
    /// at most `concurrency` at once; the result is in input order and independent of the
    /// concurrency.
    async fn label_batch(&self, points: &[EvaluationPoint]) -> Vec<Label> {
        let c = &self.inner.config;
        spawned(&self.inner, points, c.concurrency, c.signal, c.aggregation).await
    }
}

/// The checks of the settings MVMC and MCTS share: concurrency at least 1, a gamma in
/// (0, 1] when given, a finite step penalty.
pub(crate) fn check_shared(concurrency: usize, gamma: Option<f64>, step_penalty: f64) -> Result<()> {
    if concurrency == 0 {
        return Err(CoreError::invalid("concurrency", 0, "at least 1"));
    }
    if let Some(g) = gamma
        && !(g > 0.0 && g <= 1.0)
    {
        return Err(CoreError::invalid("gamma", g, "a discount in (0, 1]"));
    }
    if !step_penalty.is_finite() {
        return Err(CoreError::invalid("step_penalty", step_penalty, "a finite number"));
    }
    Ok(())
}

/// The error of a labeler of points (rollouts or exact values) asked for shaped-reward
/// labels, which are the trajectories' returns.
pub fn shaped_reward_not_per_point() -> CoreError {
    CoreError::invalid(
        "signal",
        "shaped-reward",
        "q, v, advantage or potential (shaped-reward labels are the trajectories' returns)",
    )
}

/// A point's state (and forced action) for rollouts from `start`.
fn restore<E: Environment>(point: &EvaluationPoint, start: Start) -> Result<Restored<E>> {
    Ok(Restored {
        state: match start {
            Start::Next => point.next_state_as::<E::State>()?,
            _ => point.state_as::<E::State>()?,
        },
        action: match start {
            Start::Forced => Some(point.action_as::<E::Action>()?),
            _ => None,
        },
    })
}

/// Rollout `r` of `point` from `start`: the forced step (if any), then `policy` until the
/// episode ends or the step budget does. Its generator is derived from the root seed, the
/// point's id, the start and `r` alone.
async fn rollout<E: Environment, P: Policy<E> + ?Sized>(
    env: &E,
    policy: &P,
    seed: u64,
    point: &EvaluationPoint,
    start: Start,
    restored: &Restored<E>,
    r: usize,
) -> Result<Rollout> {
    let spec = env.spec();
    let mut rng = rng_for(seed, &[stable_hash(&point.id), start.seed_key(), r as u64]);
    let mut history: Vec<Turn> = Vec::new();
    let track = policy.uses_history();
    if track {
        history.extend(point.history.iter().cloned());
    }
    let mut step = match start {
        Start::Next => point.step_index + 1,
        _ => point.step_index,
    };
    if step >= spec.max_steps {
        return Err(CoreError::Empty(format!(
            "no steps left: step {step} of a {}-step budget",
            spec.max_steps
        )));
    }
    let Some(action) = &restored.action else {
        let (rewards, _) = play_out(
            env,
            policy,
            &point.task,
            restored.state.clone(),
            step,
            history,
            &mut rng,
        )
        .await?;
        return Ok(Rollout {
            rewards,
            next_action: None,
        });
    };
    let o = env.step(&restored.state, action, &mut rng)?;
    if o.terminated {
        return Ok(Rollout {
            rewards: vec![o.reward],
            next_action: None,
        });
    }
    if track {
        history.push(Turn {
            step,
            observation: point.observation.text.clone(),
            action: point.action_text.clone(),
            reward: o.reward,
            thought: None,
        });
    }
    step += 1;
    let (mut rest, next_action) = play_out(env, policy, &point.task, o.state, step, history, &mut rng).await?;
    rest.insert(0, o.reward);
    Ok(Rollout {
        rewards: rest,
        next_action,
    })
}

/// `policy` acting from `state` at `step` until the episode ends or the step budget does:
/// each transition's reward, and its first action rendered. `history` is filled as the
/// policy goes when it [uses it](Policy::uses_history).
pub(crate) async fn play_out<E: Environment, P: Policy<E> + ?Sized>(
    env: &E,
    policy: &P,
    task: &crate::types::Task,
    mut state: E::State,
    mut step: usize,
    mut history: Vec<Turn>,
    rng: &mut crate::seed::QRng,
) -> Result<(Vec<f64>, Option<String>)> {
    let max_steps = env.spec().max_steps;
    let track = policy.uses_history();
    let mut rewards = Vec::new();
    let mut first = None;
    while step < max_steps {
        let input = PolicyInput {
            task,
            state: &state,
            step,
            max_steps,
            history: &history,
        };
        let action = policy.act(env, input, rng).await?;
        let o = env.step(&state, &action, rng)?;
        if first.is_none() {
            first = Some(env.render_action(&action));
        }
        rewards.push(o.reward);
        if o.terminated {
            break;
        }
        if track {
            history.push(Turn {
                step,
                observation: env.observe(&state).text,
                action: env.render_action(&action),
                reward: o.reward,
                thought: None,
            });
        }
        state = o.state;
        step += 1;
    }
    Ok((rewards, first))
}

/// Labels one point at a time (what [`spawned`] runs as tasks).
#[async_trait]
pub(crate) trait PointLabeler: Send + Sync + 'static {
    /// The point's label (aborted with the reason if it cannot be labelled).
    async fn label_point(&self, point: &EvaluationPoint) -> Label;
}

/// Labels `points` as tasks on the runtime (all cores on a multi-threaded runtime), at most
/// `concurrency` at once, in input order whatever the concurrency; a task that panics
/// gives an aborted label.
pub(crate) async fn spawned<T: PointLabeler>(
    inner: &Arc<T>,
    points: &[EvaluationPoint],
    concurrency: usize,
    signal: Signal,
    aggregation: Aggregation,
) -> Vec<Label> {
    futures::stream::iter(points.iter().cloned())
        .map(|p| {
            let inner = inner.clone();
            let id = p.id.clone();
            let handle = tokio::spawn(async move { inner.label_point(&p).await });
            async move {
                handle
                    .await
                    .unwrap_or_else(|e| Label::aborted(id, signal, aggregation, format!("labelling task failed: {e}")))
            }
        })
        .buffered(concurrency)
        .collect()
        .await
}
