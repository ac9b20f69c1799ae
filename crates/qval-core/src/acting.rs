//! Acting: lets a signal choose an agent's actions (guided test-time scaling, as published).
//!
//! At every step of an episode an actor policy proposes `k` candidate actions (independent
//! samples, not deduplicated); each is stepped from the current state (steps are pure, so no
//! replay is needed), a [`Chooser`] scores them, and the best one is taken: the highest finite
//! score, ties broken by a seeded draw; when every score is NaN a seeded draw picks one and
//! the step records `all_scores_nan`. With `k = 1` the single candidate is taken without
//! asking the chooser: the baseline every strategy is compared with.
//!
//! Seeds: episode `e` starts from `reset` with a generator derived from `(seed, e)`, and
//! candidate `c` of step `t` is drawn with one derived from `(seed, k, e, t, c)`, whatever
//! the strategy. At the same `k`, every strategy thus sees the same first candidates of every
//! episode, and its results pair with the others' episode by episode. Tie-breaking draws have
//! a stream of their own per strategy.

use async_trait::async_trait;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::io::{Kind, Metadata};
use crate::seed::{derive_seed, stable_hash};
use crate::stage::{Resume, Share, StageOptions, checkpointed, to_value};
use crate::{
    CoreError, DenseSignalMethod, Environment, EvaluationPoint, MethodContext, Policy, PolicyInput, QRng, Result, Task,
    Turn,
};

/// Scores the candidates of one decision. The candidates are points stepped from the same
/// state (their `next_state`, `reward` and `terminated` are the step's); a score per
/// candidate, NaN where the chooser cannot say.
///
/// # Example
/// ```
/// use qval_core::acting::Chooser;
/// use qval_core::{EvaluationPoint, MethodContext};
///
/// /// Prefers the candidate with the largest immediate reward.
/// struct Greedy;
///
/// #[async_trait::async_trait]
/// impl Chooser for Greedy {
///     fn name(&self) -> String {
///         "greedy".into()
///     }
///     async fn score(&self, candidates: &[EvaluationPoint], _: &MethodContext) -> Vec<f64> {
///         candidates.iter().map(|c| c.reward).collect()
///     }
/// }
/// assert_eq!(Greedy.name(), "greedy");
/// ```
#[async_trait]
pub trait Chooser: Send + Sync {
    /// The strategy's name, as recorded.
    fn name(&self) -> String;

    /// A score per candidate, in order.
    async fn score(&self, candidates: &[EvaluationPoint], ctx: &MethodContext) -> Vec<f64>;
}

/// Guidance by a dense signal method. A Q (or advantage) method scores each candidate
/// `(s, a)`; a V method scores the state the candidate leads to: `r + gamma V(s')`, with the
/// reward the environment gave and `V(s') = 0` when `s'` ends the episode.
pub struct Guided {
    name: String,
    method: Arc<dyn DenseSignalMethod>,
}

impl Guided {
    /// Guidance by `method`, recorded as `name`.
    pub fn new(name: impl Into<String>, method: Arc<dyn DenseSignalMethod>) -> Self {
        Guided {
            name: name.into(),
            method,
        }
    }
}

#[async_trait]
impl Chooser for Guided {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn score(&self, candidates: &[EvaluationPoint], ctx: &MethodContext) -> Vec<f64> {
        if self.method.signal().has_action() {
            let got = self.method.evaluate_batch(candidates, ctx).await;
            return got.into_iter().map(|r| r.unwrap_or(f64::NAN)).collect();
        }
        // V of each candidate's next state: the point seen from there.
        let ahead: Vec<EvaluationPoint> = candidates.iter().map(state_ahead).collect();
        let values = self.method.evaluate_batch(&ahead, ctx).await;
        candidates
            .iter()
            .zip(values)
            .map(|(c, v)| {
                let future = if c.terminated { 0.0 } else { v.unwrap_or(f64::NAN) };
                c.reward + ctx.gamma * future
            })
            .collect()
    }
}

/// The point whose state is `c`'s next state (for a V method, which reads `state`).
fn state_ahead(c: &EvaluationPoint) -> EvaluationPoint {
    let mut p = c.clone();
    p.state = c.next_state.clone();
    p.observation = c.next_observation.clone();
    p.step_index = c.step_index + 1;
    p.id = format!("{}>", c.id);
    p
}

/// Self-consistency by majority vote (as published): each candidate scores the number of
/// candidates proposing the same action (the action the environment resolved, compared as
/// its JSON; failing that its text).
pub struct Vote;

#[async_trait]
impl Chooser for Vote {
    fn name(&self) -> String {
        "vote".into()
    }

    async fn score(&self, candidates: &[EvaluationPoint], _: &MethodContext) -> Vec<f64> {
        let key = |c: &EvaluationPoint| match &c.action {
            Value::Null => c.action_text.clone(),
            a => a.to_string(),
        };
        let keys: Vec<String> = candidates.iter().map(key).collect();
        keys.iter()
            .map(|k| keys.iter().filter(|o| *o == k).count() as f64)
            .collect()
    }
}

/// A uniform draw among the candidates: the control for "more samples" alone.
pub struct Uniform;

#[async_trait]
impl Chooser for Uniform {
    fn name(&self) -> String {
        "random".into()
    }

    async fn score(&self, candidates: &[EvaluationPoint], _: &MethodContext) -> Vec<f64> {
        vec![0.0; candidates.len()]
    }
}

/// How an acting experiment runs (checked by [`ActingConfig::new`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActingConfig {
    k: usize,
    samples_per_task: usize,
    success_threshold: f64,
    seed: u64,
    concurrency: usize,
}

impl ActingConfig {
    /// `k` candidates per step (1 to 256), `samples_per_task` episodes per task (1 to
    /// 10,000), success when the undiscounted return reaches `success_threshold` (finite),
    /// `concurrency` episodes at once (1 to 1,024).
    ///
    /// # Errors
    /// [`CoreError::InvalidParameter`] naming the value out of range.
    pub fn new(
        k: usize,
        samples_per_task: usize,
        success_threshold: f64,
        seed: u64,
        concurrency: usize,
    ) -> Result<Self> {
        if !(1..=256).contains(&k) {
            return Err(CoreError::invalid("k", k, "1..=256"));
        }
        if !(1..=10_000).contains(&samples_per_task) {
            return Err(CoreError::invalid("samples_per_task", samples_per_task, "1..=10000"));
        }
        if !success_threshold.is_finite() {
            return Err(CoreError::invalid(
                "success_threshold",
                success_threshold,
                "a finite number",
            ));
        }
        if !(1..=1_024).contains(&concurrency) {
            return Err(CoreError::invalid("concurrency", concurrency, "1..=1024"));
        }
        Ok(ActingConfig {
            k,
            samples_per_task,
            success_threshold,
            seed,
            concurrency,
        })
    }

    /// Candidates per step.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Episodes per task.
    pub fn samples_per_task(&self) -> usize {
        self.samples_per_task
    }

    /// The undiscounted return that counts as a success.
    pub fn success_threshold(&self) -> f64 {
        self.success_threshold
    }

    /// The root seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

/// One candidate of a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The action, as text.
    pub text: String,
    /// The reward of its step.
    pub reward: f64,
    /// Whether its step ends the episode.
    pub terminated: bool,
    /// Its score (`null`: NaN, or not asked).
    pub score: Option<f64>,
    /// Why it has no score of its own: its step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One decision of an episode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActStep {
    /// The 0-based step.
    pub step: usize,
    /// The candidates proposed (failed samples left out), in the order drawn.
    pub candidates: Vec<Candidate>,
    /// Samples the actor failed to give, with the first reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_samples: Option<(usize, String)>,
    /// The candidate taken.
    pub chosen: usize,
    /// Whether the chooser's scores decided (false with one candidate, all scores NaN, or all
    /// equal).
    pub scored: bool,
    /// Why the choice fell back to a draw (`all_scores_nan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// One episode of one strategy at one `k`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// The strategy.
    pub strategy: String,
    /// Candidates per step.
    pub k: usize,
    /// The episode's index (task-major: task `i`'s samples are `i * samples_per_task ..`).
    pub index: usize,
    /// The task.
    pub task: String,
    /// Which sample of the task.
    pub sample: usize,
    /// The undiscounted return.
    #[serde(rename = "return")]
    pub total: f64,
    /// Whether the return reached the threshold.
    pub success: bool,
    /// Why the episode stopped early (no candidate left, a failed step), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Its decisions.
    pub steps: Vec<ActStep>,
}

impl Episode {
    /// The key a rerun finds it by.
    pub fn key(&self) -> String {
        format!("{}:{}", self.k, self.index)
    }
}

/// The seeded choice among `scores`: the highest finite score (ties broken by a draw), or a
/// draw among all when none is finite (`Some("all_scores_nan")`).
pub fn choose(scores: &[f64], rng: &mut QRng) -> (usize, Option<&'static str>) {
    let finite: Vec<(usize, f64)> = scores
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| s.is_finite())
        .collect();
    let Some(best) = finite.iter().map(|(_, s)| *s).reduce(f64::max) else {
        return (rng.random_range(0..scores.len().max(1)), Some("all_scores_nan"));
    };
    let tied: Vec<usize> = finite.iter().filter(|(_, s)| *s == best).map(|(i, _)| *i).collect();
    let pick = if tied.len() == 1 {
        0
    } else {
        rng.random_range(0..tied.len())
    };
    (tied[pick], None)
}

/// Whether every score is the same finite number (the scores single nothing out).
fn all_tied(scores: &[f64]) -> bool {
    scores.iter().all(|s| s.is_finite() && *s == scores[0])
}

/// Runs `chooser` with `actor` proposing candidates on every task of `tasks`,
/// `samples_per_task` episodes each, at the configured `k`: the episodes of `share`
/// (episode `i` when `share.contains(i)`), checkpointed as [`crate::stage::collect`] does.
/// The file's metadata is the whole run's, so shards' records merge into the file one
/// process writes.
///
/// # Errors
/// No tasks; a checkpoint that cannot be written. An episode's own failure (no candidate,
/// a failed step) is recorded in it, not returned.
#[allow(clippy::too_many_arguments)]
pub async fn act<E: Environment, P: Policy<E> + ?Sized>(
    env: &E,
    actor: &P,
    chooser: &dyn Chooser,
    tasks: &[Task],
    ctx: &MethodContext,
    config: &ActingConfig,
    share: Share,
    opts: &StageOptions,
) -> Result<Vec<Episode>> {
    use futures::StreamExt as _;
    if tasks.is_empty() {
        return Err(CoreError::Empty("no tasks to act on".into()));
    }
    let meta = Metadata::new(Kind::Episodes, chooser.name())
        .with_seed(config.seed)
        .with_params(json!({
            "env": env.spec().name,
            "actor": actor.name(),
            "config": config,
            "tasks": tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        }));
    let n = tasks.len() * config.samples_per_task;
    let mine: Vec<usize> = (0..n).filter(|i| share.contains(*i)).collect();
    let keys: Vec<String> = mine.iter().map(|i| format!("{}:{i}", config.k)).collect();
    let mine = &mine;
    checkpointed(
        &keys,
        Resume {
            key_of: |e: &Episode| e.key(),
            redo: &|_| false,
        },
        &meta,
        opts,
        &format!("act {} k={}", chooser.name(), config.k),
        |idx| {
            futures::stream::iter(idx)
                .map(move |j| {
                    let i = mine[j];
                    let task = &tasks[i / config.samples_per_task];
                    episode(env, actor, chooser, task, i, ctx, config)
                })
                .buffered(config.concurrency)
                .boxed()
        },
    )
    .await
}

/// One episode (its failure recorded in it).
async fn episode<E: Environment, P: Policy<E> + ?Sized>(
    env: &E,
    actor: &P,
    chooser: &dyn Chooser,
    task: &Task,
    index: usize,
    ctx: &MethodContext,
    config: &ActingConfig,
) -> Result<Episode> {
    let mut ep = Episode {
        strategy: chooser.name(),
        k: config.k,
        index,
        task: task.id.clone(),
        sample: index % config.samples_per_task,
        total: 0.0,
        success: false,
        failure: None,
        steps: Vec::new(),
    };
    let mut rng = QRng::seed_from_u64(derive_seed(config.seed, &[index as u64]));
    let mut state = match env.reset(task, &mut rng) {
        Ok(s) => s,
        Err(e) => {
            ep.failure = Some(format!("reset: {e}"));
            return Ok(ep);
        }
    };
    let mut walk = Walk {
        env,
        actor,
        chooser,
        task,
        index,
        ctx,
        config,
        history: Vec::new(),
    };
    let tie_seed = derive_seed(
        config.seed,
        &[stable_hash(&chooser.name()), config.k as u64, index as u64],
    );
    for step in 0..env.spec().max_steps {
        let mut tie = QRng::seed_from_u64(derive_seed(tie_seed, &[step as u64]));
        match walk.decide(&state, step, &mut tie).await {
            Ok((record, next, reward, done)) => {
                ep.steps.push(record);
                ep.total += reward;
                state = next;
                if done {
                    break;
                }
            }
            Err(reason) => {
                ep.failure = Some(reason);
                break;
            }
        }
    }
    ep.success = ep.failure.is_none() && ep.total >= config.success_threshold;
    Ok(ep)
}

/// What a decision needs of its episode.
struct Walk<'a, E: Environment, P: Policy<E> + ?Sized> {
    env: &'a E,
    actor: &'a P,
    chooser: &'a dyn Chooser,
    task: &'a Task,
    index: usize,
    ctx: &'a MethodContext,
    config: &'a ActingConfig,
    history: Vec<Turn>,
}

/// A stepped candidate: its point and its outcome.
type Stepped<S> = (EvaluationPoint, S);

impl<E: Environment, P: Policy<E> + ?Sized> Walk<'_, E, P> {
    /// One step: `k` candidates, stepped, scored, one taken. The record, the next state, the
    /// reward and whether the episode ended; `Err` with the reason the episode cannot go on.
    async fn decide(
        &mut self,
        state: &E::State,
        step: usize,
        tie: &mut QRng,
    ) -> std::result::Result<(ActStep, E::State, f64, bool), String> {
        let k = self.config.k;
        let (actions, failed) = self.propose(state, step).await;
        if actions.is_empty() {
            let why = failed.map(|(_, e)| e).unwrap_or_default();
            return Err(format!("step {step}: no candidate left ({why})"));
        }
        let mut stepped: Vec<std::result::Result<Stepped<E::State>, String>> = Vec::new();
        for (c, a) in actions.iter().enumerate() {
            let seed = derive_seed(
                self.config.seed,
                &[k as u64, self.index as u64, step as u64, c as u64, 1],
            );
            stepped.push(self.stepped(state, a, step, c, seed));
        }
        let points: Vec<EvaluationPoint> = stepped
            .iter()
            .filter_map(|s| s.as_ref().ok().map(|s| s.0.clone()))
            .collect();
        let scores: Vec<f64> = if actions.len() > 1 && !points.is_empty() {
            let got = self.chooser.score(&points, self.ctx).await;
            let mut it = got.into_iter();
            stepped
                .iter()
                .map(|s| {
                    if s.is_ok() {
                        it.next().unwrap_or(f64::NAN)
                    } else {
                        f64::NAN
                    }
                })
                .collect()
        } else {
            vec![f64::NAN; actions.len()]
        };
        let (chosen, fallback) = if actions.len() == 1 {
            (0, None)
        } else {
            choose(&scores, tie)
        };
        let candidates = stepped
            .iter()
            .zip(&actions)
            .zip(&scores)
            .map(|((s, a), score)| match s {
                Ok((p, _)) => Candidate {
                    text: p.action_text.clone(),
                    reward: p.reward,
                    terminated: p.terminated,
                    score: score.is_finite().then_some(*score),
                    error: None,
                },
                Err(e) => Candidate {
                    text: self.env.render_action(a),
                    reward: 0.0,
                    terminated: false,
                    score: None,
                    error: Some(e.clone()),
                },
            })
            .collect();
        let record = ActStep {
            step,
            candidates,
            failed_samples: failed,
            chosen,
            scored: actions.len() > 1 && fallback.is_none() && !all_tied(&scores),
            fallback: fallback.map(str::to_string),
        };
        let (point, next) = stepped
            .into_iter()
            .nth(chosen)
            .expect("the chosen candidate exists")
            .map_err(|e| format!("step {step}: the chosen action failed: {e}"))?;
        if self.actor.uses_history() {
            self.history.push(Turn {
                step,
                observation: point.observation.text.clone(),
                action: point.action_text.clone(),
                reward: point.reward,
                thought: None,
            });
        }
        Ok((record, next, point.reward, point.terminated))
    }

    /// `k` samples of the actor, each with its own generator; the failures counted, with the
    /// first reason.
    async fn propose(&self, state: &E::State, step: usize) -> (Vec<E::Action>, Option<(usize, String)>) {
        let k = self.config.k;
        let max_steps = self.env.spec().max_steps;
        let draws = (0..k).map(|c| {
            let seed = derive_seed(self.config.seed, &[k as u64, self.index as u64, step as u64, c as u64]);
            async move {
                let mut rng = QRng::seed_from_u64(seed);
                let input = PolicyInput {
                    task: self.task,
                    state,
                    step,
                    max_steps,
                    history: if self.actor.uses_history() { &self.history } else { &[] },
                };
                self.actor.act(self.env, input, &mut rng).await
            }
        });
        let mut actions = Vec::new();
        let mut failed: Option<(usize, String)> = None;
        for r in futures::future::join_all(draws).await {
            match r {
                Ok(a) => actions.push(a),
                Err(e) => {
                    let f = failed.get_or_insert_with(|| (0, e.to_string()));
                    f.0 += 1;
                }
            }
        }
        (actions, failed)
    }

    /// Candidate `c` stepped from `state`, as a point with the episode's history.
    fn stepped(
        &self,
        state: &E::State,
        action: &E::Action,
        step: usize,
        c: usize,
        seed: u64,
    ) -> std::result::Result<Stepped<E::State>, String> {
        let mut rng = QRng::seed_from_u64(seed);
        let out = self.env.step(state, action, &mut rng).map_err(|e| e.to_string())?;
        let value = |v: std::result::Result<Value, CoreError>| v.map_err(|e| e.to_string());
        let point = EvaluationPoint {
            id: format!("a{}-{step}-{c}", self.index),
            trajectory_index: self.index,
            step_index: step,
            task: self.task.clone(),
            history: self.history.clone(),
            state: value(to_value(state))?,
            observation: self.env.observe(state),
            action: value(to_value(action))?,
            action_text: self.env.render_action(action),
            reward: out.reward,
            next_state: value(to_value(&out.state))?,
            next_observation: self.env.observe(&out.state),
            terminated: out.terminated,
            candidate_of: None,
            thought: None,
        };
        Ok((point, out.state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_finite_score_wins_and_ties_are_drawn() {
        let mut rng = QRng::seed_from_u64(1);
        assert_eq!(choose(&[0.1, f64::NAN, 0.9, 0.3], &mut rng), (2, None));
        let mut seen = [false; 2];
        for s in 0..64 {
            let (i, why) = choose(&[1.0, f64::NAN, 1.0], &mut QRng::seed_from_u64(s));
            assert!(why.is_none() && (i == 0 || i == 2));
            seen[i / 2] = true;
        }
        assert!(seen[0] && seen[1], "both tied candidates are drawn");
        let (i, why) = choose(&[f64::NAN, f64::INFINITY.min(f64::NAN)], &mut rng);
        assert!(i < 2);
        assert_eq!(why, Some("all_scores_nan"));
    }

    #[test]
    fn a_config_out_of_range_is_refused() {
        assert!(ActingConfig::new(0, 1, 1.0, 0, 1).is_err());
        assert!(ActingConfig::new(1, 0, 1.0, 0, 1).is_err());
        assert!(ActingConfig::new(1, 1, f64::NAN, 0, 1).is_err());
        assert!(ActingConfig::new(1, 1, 1.0, 0, 0).is_err());
        assert!(ActingConfig::new(8, 1, 1.0, 0, 16).is_ok());
    }
}
