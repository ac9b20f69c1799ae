//! Reference labels: the [`Labeler`] trait and the Max-Value Monte Carlo labeler.

use async_trait::async_trait;
use futures::StreamExt as _;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::env::Environment;
use crate::policy::{Policy, PolicyInput};
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
        if c.concurrency == 0 {
            return Err(CoreError::invalid("concurrency", 0, "at least 1"));
        }
        if let Some(g) = c.gamma
            && !(g > 0.0 && g <= 1.0)
        {
            return Err(CoreError::invalid("gamma", g, "a discount in (0, 1]"));
        }
        if !c.step_penalty.is_finite() {
            return Err(CoreError::invalid("step_penalty", c.step_penalty, "a finite number"));
        }
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
}

/// A point's state (and forced action) turned back into the environment's types.
struct Restored<E: Environment> {
    state: E::State,
    action: Option<E::Action>,
}

/// Which value a rollout estimates.
#[derive(Clone, Copy)]
enum Start {
    /// From the state, forcing the action.
    Forced,
    /// From the state, no forced action (V(s)).
    State,
    /// From the next state, no forced action (V(s')).
    Next,
}

impl<E, P> MvmcLabeler<E, P>
where
    E: Environment + 'static,
    P: Policy<E> + 'static,
{
    /// A labeler rolling out `policy` in `env`.
    pub fn new(env: Arc<E>, policy: Arc<P>, config: MvmcConfig) -> Self {
        let gamma = config.gamma.unwrap_or(env.spec().gamma);
        MvmcLabeler {
            inner: Arc::new(Inner {
                env,
                policy,
                config,
                gamma,
            }),
        }
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
    /// One rollout's discounted return, and what it did.
    async fn rollout(
        &self,
        point: &EvaluationPoint,
        start: Start,
        restored: &Restored<E>,
        r: usize,
    ) -> Result<(f64, ExpertRollout)> {
        let env = &*self.env;
        let spec = env.spec();
        let kind = match start {
            Start::Forced => 0,
            Start::State => 1,
            Start::Next => 2,
        };
        let mut rng = rng_for(self.config.seed, &[stable_hash(&point.id), kind, r as u64]);
        let mut history: Vec<Turn> = Vec::new();
        let track = self.policy.uses_history();
        if track {
            history.extend(point.history.iter().cloned());
        }
        let mut state = restored.state.clone();
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
        let mut ret = 0.0;
        let mut discount = 1.0;
        let mut trace = ExpertRollout {
            next_action: None,
            steps: 0,
            success_step: None,
            final_reward: 0.0,
        };
        let record = |trace: &mut ExpertRollout, reward: f64| {
            if reward > 0.0 && trace.success_step.is_none() {
                trace.success_step = Some(trace.steps);
            }
            trace.steps += 1;
            trace.final_reward = reward;
        };
        if let Some(action) = &restored.action {
            let out = env.step(&state, action, &mut rng)?;
            ret += out.reward - self.config.step_penalty;
            discount *= self.gamma;
            record(&mut trace, out.reward);
            if out.terminated {
                return Ok((ret, trace));
            }
            if track {
                history.push(Turn {
                    step,
                    observation: point.observation.text.clone(),
                    action: point.action_text.clone(),
                    reward: out.reward,
                });
            }
            state = out.state;
            step += 1;
        }
        while step < spec.max_steps {
            let input = PolicyInput {
                task: &point.task,
                state: &state,
                step,
                max_steps: spec.max_steps,
                history: &history,
            };
            let action = self.policy.act(env, input, &mut rng).await?;
            let out = env.step(&state, &action, &mut rng)?;
            ret += discount * (out.reward - self.config.step_penalty);
            discount *= self.gamma;
            if trace.steps == 1 && restored.action.is_some() {
                trace.next_action = Some(env.render_action(&action));
            }
            record(&mut trace, out.reward);
            if out.terminated {
                break;
            }
            if track {
                history.push(Turn {
                    step,
                    observation: env.observe(&state).text,
                    action: env.render_action(&action),
                    reward: out.reward,
                });
            }
            state = out.state;
            step += 1;
        }
        Ok((ret, trace))
    }

    /// The returns of the point's rollouts, and the summary of the best one (the first of the
    /// highest return).
    async fn returns(&self, point: &EvaluationPoint, start: Start) -> Result<(Vec<f64>, Option<ExpertRollout>)> {
        // Restore once per point, not once per rollout.
        let restored = Restored {
            state: match start {
                Start::Next => point.next_state_as::<E::State>()?,
                _ => point.state_as::<E::State>()?,
            },
            action: match start {
                Start::Forced => Some(point.action_as::<E::Action>()?),
                _ => None,
            },
        };
        // Grows with the rollouts done, not with the count asked for.
        let mut out = Vec::new();
        let mut best: Option<ExpertRollout> = None;
        let mut best_return = f64::NEG_INFINITY;
        for r in 0..self.config.rollouts {
            let (ret, trace) = self.rollout(point, start, &restored, r).await?;
            if best.is_none() || ret > best_return {
                best_return = ret;
                best = Some(trace);
            }
            out.push(ret);
        }
        Ok((out, best))
    }

    async fn label_point(&self, point: &EvaluationPoint) -> Label {
        let c = &self.config;
        let result: Result<Label> = async {
            let mut label = Label {
                point_id: point.id.clone(),
                signal: c.signal,
                value: f64::NAN,
                aggregation: c.aggregation,
                returns: Vec::new(),
                baseline_returns: Vec::new(),
                aborted: None,
                candidate_of: None,
                expert: None,
            };
            match c.signal {
                Signal::Q => {
                    (label.returns, label.expert) = self.returns(point, Start::Forced).await?;
                    label.value = c.aggregation.apply(&label.returns);
                }
                Signal::V => {
                    label.returns = self.returns(point, Start::State).await?.0;
                    label.value = c.aggregation.apply(&label.returns);
                }
                Signal::Advantage => {
                    // A terminal or budget-exhausting transition leaves nothing to earn.
                    let next_v = if point.terminated || point.step_index + 1 >= self.env.spec().max_steps {
                        0.0
                    } else {
                        label.returns = self.returns(point, Start::Next).await?.0;
                        c.aggregation.apply(&label.returns)
                    };
                    label.baseline_returns = self.returns(point, Start::State).await?.0;
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

    fn concurrency(&self) -> usize {
        self.inner.config.concurrency
    }

    /// Labels the points as tasks on the runtime (all cores on a multi-threaded runtime),
    /// at most `concurrency` at once; the result is in input order and independent of the
    /// concurrency.
    async fn label_batch(&self, points: &[EvaluationPoint]) -> Vec<Label> {
        let c = &self.inner.config;
        futures::stream::iter(points.iter().cloned())
            .map(|p| {
                let inner = self.inner.clone();
                let id = p.id.clone();
                let handle = tokio::spawn(async move { inner.label_point(&p).await });
                async move {
                    handle.await.unwrap_or_else(|e| {
                        Label::aborted(id, c.signal, c.aggregation, format!("labelling task failed: {e}"))
                    })
                }
            })
            .buffered(c.concurrency)
            .collect()
            .await
    }
}
