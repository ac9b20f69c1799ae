//! Monte Carlo tree search labels ([`MctsLabeler`]), as the published testbed describes them
//! (bethgelab/qval `mcts_method.py`, "wide expansion"): UCB1 selection, expansion of W
//! actions sampled from the reference policy, a simulation of the same policy from each new
//! child, its root-relative discounted return backed up to the root; the label aggregates
//! (max or mean) every simulation return collected.
//!
//! Where qval departs from the published code, and why:
//! - a new child counts its simulation once (the published back-up starts at the child after
//!   setting its visit, so each new child holds its first return twice; the mean is the same,
//!   the visit counts UCB1 sees are not);
//! - the published prediction pipeline calls MCTS with arguments its signature does not take
//!   (`collect_grouped_gt` passes `v_next_cache` and unpacks a tuple), so the published path
//!   cannot run; qval builds the algorithm as described;
//! - a node at the end of the step budget is a leaf like a terminal one;
//! - the step penalty, when set, is subtracted from every reward, as MVMC does.

use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::env::Environment;
use crate::label::{PointLabeler, play_out, spawned};
use crate::policy::{Policy, PolicyInput};
use crate::rollout::{Rollouts, Start};
use crate::seed::{QRng, rng_for, stable_hash};
use crate::types::{Aggregation, EvaluationPoint, Label, Signal, Task, Turn};
use crate::{CoreError, Labeler, Result};

/// Parameters of the [`MctsLabeler`]. Build with [`MctsConfig::builder`].
///
/// | parameter | default | range |
/// |---|---|---|
/// | `iterations` (simulation returns per value) | 100 | [1, 100,000] |
/// | `width` (actions sampled per expansion) | 5 | [1, 1,000] |
/// | `exploration` (UCB1's c) | 1.41 | finite, >= 0 |
/// | `gamma` | the environment's | (0, 1] |
/// | `step_penalty` | 0.0 | finite |
/// | `aggregation` | [`Aggregation::Max`] | |
/// | `signal` | [`Signal::Q`] | |
/// | `seed` | 0 | any |
/// | `concurrency` | 64 | >= 1 |
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MctsConfig {
    iterations: usize,
    width: usize,
    exploration: f64,
    gamma: Option<f64>,
    step_penalty: f64,
    aggregation: Aggregation,
    signal: Signal,
    seed: u64,
    concurrency: usize,
}

impl MctsConfig {
    /// The most simulation returns per value.
    pub const MAX_ITERATIONS: usize = 100_000;
    /// The widest expansion.
    pub const MAX_WIDTH: usize = 1_000;

    /// Simulation returns per value.
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// Actions sampled per expansion.
    pub fn width(&self) -> usize {
        self.width
    }

    /// UCB1's exploration constant.
    pub fn exploration(&self) -> f64 {
        self.exploration
    }

    /// A builder with the published defaults.
    pub fn builder() -> MctsConfigBuilder {
        MctsConfigBuilder(MctsConfig {
            iterations: 100,
            width: 5,
            exploration: 1.41,
            gamma: None,
            step_penalty: 0.0,
            aggregation: Aggregation::Max,
            signal: Signal::Q,
            seed: 0,
            concurrency: 64,
        })
    }
}

/// Builder of [`MctsConfig`]; [`build`](Self::build) validates.
#[derive(Clone, Debug)]
pub struct MctsConfigBuilder(MctsConfig);

impl MctsConfigBuilder {
    /// Simulation returns per value (default 100).
    pub fn iterations(mut self, n: usize) -> Self {
        self.0.iterations = n;
        self
    }
    /// Actions sampled per expansion (default 5).
    pub fn width(mut self, w: usize) -> Self {
        self.0.width = w;
        self
    }
    /// UCB1's exploration constant (default 1.41).
    pub fn exploration(mut self, c: f64) -> Self {
        self.0.exploration = c;
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
    /// Max (default) or mean of the simulation returns.
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
    /// Points searched at once (default 64). Does not change the labels.
    pub fn concurrency(mut self, c: usize) -> Self {
        self.0.concurrency = c;
        self
    }

    /// Validates and returns the configuration.
    ///
    /// # Errors
    /// [`CoreError::InvalidParameter`] for a count out of its range, a negative or
    /// non-finite exploration constant, a gamma outside (0, 1] or a non-finite penalty.
    pub fn build(self) -> Result<MctsConfig> {
        let c = self.0;
        if c.signal == Signal::ShapedReward {
            return Err(crate::label::shaped_reward_not_per_point());
        }
        if !(1..=MctsConfig::MAX_ITERATIONS).contains(&c.iterations) {
            return Err(CoreError::invalid(
                "mcts_iterations",
                c.iterations,
                format!("1..={} simulation returns", MctsConfig::MAX_ITERATIONS),
            ));
        }
        if !(1..=MctsConfig::MAX_WIDTH).contains(&c.width) {
            return Err(CoreError::invalid(
                "mcts_expansion_width",
                c.width,
                format!("1..={} actions per expansion", MctsConfig::MAX_WIDTH),
            ));
        }
        if !(c.exploration.is_finite() && c.exploration >= 0.0) {
            return Err(CoreError::invalid(
                "mcts_exploration_constant",
                c.exploration,
                "a finite number >= 0",
            ));
        }
        crate::label::check_shared(c.concurrency, c.gamma, c.step_penalty)?;
        Ok(c)
    }
}

/// Labels by Monte Carlo tree search over the reference policy (see the [module](self)).
/// Each search draws from one generator derived from the root seed, the point's id and what
/// it estimates, so labels do not depend on concurrency or resumption.
pub struct MctsLabeler<E, P> {
    inner: Arc<Inner<E, P>>,
}

struct Inner<E, P> {
    env: Arc<E>,
    policy: Arc<P>,
    config: MctsConfig,
    gamma: f64,
    counts: Arc<Rollouts>,
}

/// One node of a search tree.
struct Node<S> {
    state: S,
    step: usize,
    depth: i32,
    /// The discounted reward from the root to here.
    cumulative: f64,
    leaf: bool,
    expanded: bool,
    children: Vec<usize>,
    parent: Option<usize>,
    visits: u64,
    total: f64,
    history: Vec<Turn>,
}

impl<E, P> MctsLabeler<E, P>
where
    E: Environment + 'static,
    P: Policy<E> + 'static,
{
    /// A labeler searching with `policy` in `env`.
    pub fn new(env: Arc<E>, policy: Arc<P>, config: MctsConfig) -> Self {
        let gamma = config.gamma.unwrap_or(env.spec().gamma);
        MctsLabeler {
            inner: Arc::new(Inner {
                env,
                policy,
                config,
                gamma,
                counts: Arc::new(Rollouts::in_memory()),
            }),
        }
    }

    /// Counts its simulations and steps in `counts` (shared with the run's other sets).
    pub fn with_counts(self, counts: Arc<Rollouts>) -> Self {
        let i = &self.inner;
        MctsLabeler {
            inner: Arc::new(Inner {
                env: i.env.clone(),
                policy: i.policy.clone(),
                config: i.config.clone(),
                gamma: i.gamma,
                counts,
            }),
        }
    }
}

impl<E: Environment, P: Policy<E>> Inner<E, P> {
    /// The simulation returns of a search from `state` at `step` (with `history` before it).
    async fn search(
        &self,
        task: &Task,
        state: E::State,
        step: usize,
        history: Vec<Turn>,
        rng: &mut QRng,
    ) -> Result<(Vec<f64>, u64)> {
        let c = &self.config;
        let max_steps = self.env.spec().max_steps;
        let mut nodes = vec![Node {
            state,
            step,
            depth: 0,
            cumulative: 0.0,
            leaf: step >= max_steps,
            expanded: false,
            children: Vec::new(),
            parent: None,
            visits: 0,
            total: 0.0,
            history,
        }];
        let mut returns = Vec::with_capacity(c.iterations);
        let mut env_steps = 0u64;
        let mut simulations = 0u64;
        while returns.len() < c.iterations {
            let at = self.select(&nodes);
            if nodes[at].leaf {
                let ret = nodes[at].cumulative;
                returns.push(ret);
                back_up(&mut nodes, Some(at), ret);
                continue;
            }
            let width = c.width.min(c.iterations - returns.len());
            let first = nodes.len();
            self.expand(&mut nodes, at, width, task, rng).await?;
            env_steps += width as u64;
            for child in first..nodes.len() {
                let n = &nodes[child];
                let ret = if n.leaf {
                    n.cumulative
                } else {
                    let (rewards, _) = play_out(
                        &*self.env,
                        &*self.policy,
                        task,
                        n.state.clone(),
                        n.step,
                        n.history.clone(),
                        rng,
                    )
                    .await?;
                    simulations += 1;
                    env_steps += rewards.len() as u64;
                    n.cumulative + self.gamma.powi(n.depth) * self.discounted(&rewards)
                };
                nodes[child].visits = 1;
                nodes[child].total = ret;
                let parent = nodes[child].parent;
                back_up(&mut nodes, parent, ret);
                returns.push(ret);
            }
        }
        self.counts.note_run(simulations, env_steps);
        Ok((returns, env_steps))
    }

    fn discounted(&self, rewards: &[f64]) -> f64 {
        crate::rollout::Rollout {
            rewards: rewards.to_vec(),
            next_action: None,
        }
        .discounted(self.gamma, self.config.step_penalty)
    }

    /// From the root, the child of highest UCB1 (the first of equals; an unvisited one
    /// first) while the node is expanded and has children.
    fn select(&self, nodes: &[Node<E::State>]) -> usize {
        let mut at = 0;
        while nodes[at].expanded && !nodes[at].leaf && !nodes[at].children.is_empty() {
            let parent_visits = nodes[at].visits.max(1) as f64;
            let score = |i: usize| {
                let n = &nodes[i];
                if n.visits == 0 {
                    return f64::INFINITY;
                }
                let v = n.visits as f64;
                n.total / v + self.config.exploration * (parent_visits.ln() / v).sqrt()
            };
            let mut best = nodes[at].children[0];
            let mut best_score = score(best);
            for &ch in &nodes[at].children[1..] {
                let s = score(ch);
                if s > best_score {
                    best = ch;
                    best_score = s;
                }
            }
            at = best;
        }
        at
    }

    /// Adds `width` children to `at`: each an action sampled from the policy, stepped once.
    async fn expand(
        &self,
        nodes: &mut Vec<Node<E::State>>,
        at: usize,
        width: usize,
        task: &Task,
        rng: &mut QRng,
    ) -> Result<()> {
        let env = &*self.env;
        let max_steps = env.spec().max_steps;
        let track = self.policy.uses_history();
        for _ in 0..width {
            let n = &nodes[at];
            let input = PolicyInput {
                task,
                state: &n.state,
                step: n.step,
                max_steps,
                history: &n.history,
            };
            let action = self.policy.act(env, input, rng).await?;
            let o = env.step(&n.state, &action, rng)?;
            let mut history = Vec::new();
            if track {
                history.clone_from(&n.history);
                history.push(Turn {
                    step: n.step,
                    observation: env.observe(&n.state).text,
                    action: env.render_action(&action),
                    reward: o.reward,
                    thought: None,
                });
            }
            let child = Node {
                step: n.step + 1,
                depth: n.depth + 1,
                cumulative: n.cumulative + self.gamma.powi(n.depth) * (o.reward - self.config.step_penalty),
                leaf: o.terminated || n.step + 1 >= max_steps,
                expanded: false,
                children: Vec::new(),
                parent: Some(at),
                visits: 0,
                total: 0.0,
                history,
                state: o.state,
            };
            nodes.push(child);
            let id = nodes.len() - 1;
            nodes[at].children.push(id);
        }
        nodes[at].expanded = true;
        Ok(())
    }

    /// The returns of a value from `start` (see [`Start`]), and the environment steps of
    /// the search.
    async fn returns(&self, point: &EvaluationPoint, start: Start) -> Result<(Vec<f64>, u64)> {
        let spec = self.env.spec();
        let mut rng = rng_for(self.config.seed, &[stable_hash(&point.id), 3 + start.seed_key()]);
        let track = self.policy.uses_history();
        let history = if track { point.history.clone() } else { Vec::new() };
        match start {
            Start::State => {
                let s = point.state_as::<E::State>()?;
                self.search(&point.task, s, point.step_index, history, &mut rng).await
            }
            Start::Next => {
                let s = point.next_state_as::<E::State>()?;
                let mut history = history;
                if track {
                    history.push(point_turn(point));
                }
                self.search(&point.task, s, point.step_index + 1, history, &mut rng)
                    .await
            }
            Start::Forced => {
                let s = point.state_as::<E::State>()?;
                let a = point.action_as::<E::Action>()?;
                let o = self.env.step(&s, &a, &mut rng)?;
                let r0 = o.reward - self.config.step_penalty;
                self.counts.note_run(0, 1);
                if o.terminated || point.step_index + 1 >= spec.max_steps {
                    return Ok((vec![r0; self.config.iterations], 1));
                }
                let mut history = history;
                if track {
                    history.push(point_turn(point));
                }
                let (inner, steps) = self
                    .search(&point.task, o.state, point.step_index + 1, history, &mut rng)
                    .await?;
                Ok((inner.into_iter().map(|r| r0 + self.gamma * r).collect(), steps + 1))
            }
        }
    }
}

#[async_trait]
impl<E: Environment + 'static, P: Policy<E> + 'static> PointLabeler for Inner<E, P> {
    async fn label_point(&self, point: &EvaluationPoint) -> Label {
        let c = &self.config;
        let result: Result<Label> = async {
            let mut label = Label::unlabelled(point.id.clone(), c.signal, c.aggregation);
            let steps;
            match c.signal {
                Signal::Q => (label.returns, steps) = self.returns(point, Start::Forced).await?,
                Signal::V | Signal::Potential => (label.returns, steps) = self.returns(point, Start::State).await?,
                Signal::ShapedReward => return Err(crate::label::shaped_reward_not_per_point()),
                Signal::Advantage => {
                    let done = point.terminated || point.step_index + 1 >= self.env.spec().max_steps;
                    let mut next = 0;
                    if !done {
                        (label.returns, next) = self.returns(point, Start::Next).await?;
                    }
                    let here;
                    (label.baseline_returns, here) = self.returns(point, Start::State).await?;
                    label.steps = Some(next + here);
                    let next = if done { 0.0 } else { c.aggregation.apply(&label.returns) };
                    label.value = next - c.aggregation.apply(&label.baseline_returns);
                    return Ok(label);
                }
            }
            label.value = c.aggregation.apply(&label.returns);
            label.steps = Some(steps);
            Ok(label)
        }
        .await;
        result.unwrap_or_else(|e| Label::aborted(point.id.clone(), c.signal, c.aggregation, e.to_string()))
    }
}

/// The point's own step, as a history turn.
fn point_turn(point: &EvaluationPoint) -> Turn {
    Turn {
        step: point.step_index,
        observation: point.observation.text.clone(),
        action: point.action_text.clone(),
        reward: point.reward,
        thought: point.thought.clone(),
    }
}

/// Adds one visit and `ret` to `from` and every node above it.
fn back_up<S>(nodes: &mut [Node<S>], from: Option<usize>, ret: f64) {
    let mut at = from;
    while let Some(i) = at {
        nodes[i].visits += 1;
        nodes[i].total += ret;
        at = nodes[i].parent;
    }
}

#[async_trait]
impl<E, P> Labeler for MctsLabeler<E, P>
where
    E: Environment + 'static,
    P: Policy<E> + 'static,
{
    fn name(&self) -> String {
        format!("mcts-{}", self.inner.config.signal.key())
    }

    fn signal(&self) -> Signal {
        self.inner.config.signal
    }

    fn params(&self) -> Value {
        let c = &self.inner.config;
        json!({
            "method": "mcts",
            "env": self.inner.env.spec().name,
            "policy": self.inner.policy.name(),
            "mcts_iterations": c.iterations,
            "mcts_expansion_width": c.width,
            "mcts_exploration_constant": c.exploration,
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

    /// Searches the points as tasks on the runtime, at most `concurrency` at once, in input
    /// order whatever the concurrency.
    async fn label_batch(&self, points: &[EvaluationPoint]) -> Vec<Label> {
        let c = &self.inner.config;
        spawned(&self.inner, points, c.concurrency, c.signal, c.aggregation).await
    }
}
