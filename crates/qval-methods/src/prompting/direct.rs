//! Direct prompting, GVL and the verifier.

use async_trait::async_trait;
use rand::seq::SliceRandom as _;
use std::collections::HashMap;
use std::sync::Arc;

use super::criteria::VerifierCriterion;
use super::{Base, ReportsUsage};
use crate::llm::prompt::{direct_messages, fitted_point_parts, merge_text, single_answer, system_prompt, value_symbol};
use crate::llm::{Backend, Message, Part, PromptOptions, Role, Sampling, extract_list, extract_number};
use qval_core::seed::rng_for;
use qval_core::{CoreError, DenseSignalMethod, EvaluationPoint, MethodContext, Result, Signal, Trajectory};

/// How many points a direct prompt covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectMode {
    /// One point per prompt.
    Single,
    /// N independent passes per point (seeds 0..N), the mean of those that parse.
    Multi(usize),
    /// K points packed in one prompt, answered as a list of exactly K numbers (else all NaN).
    Batched(usize),
    /// K points as successive user turns of one conversation, earlier answers kept; a
    /// failure makes that point and the rest of the group NaN.
    Sequential(usize),
}

/// Direct prompting: the model is told what the value means and asked for a number.
#[derive(Clone)]
pub struct Direct {
    base: Base,
    mode: DirectMode,
}

impl Direct {
    /// A direct method over `backend` for `signal`.
    ///
    /// # Panics
    /// If a mode's count is 0.
    pub fn new(backend: Arc<dyn Backend>, signal: Signal, mode: DirectMode, options: PromptOptions) -> Self {
        match mode {
            DirectMode::Multi(n) | DirectMode::Batched(n) | DirectMode::Sequential(n) => {
                assert!(n > 0, "a count of at least 1")
            }
            DirectMode::Single => {}
        }
        Direct {
            base: Base::new(backend, signal, options),
            mode,
        }
    }

    /// Overrides the sampling parameters of every request (the backend's defaults otherwise).
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.base.sampling = sampling;
        self
    }

    async fn single(&self, point: &EvaluationPoint, ctx: &MethodContext, seed: Option<u64>) -> Result<f64> {
        let msgs = direct_messages(point, ctx, self.base.signal, &self.base.options);
        let sampling = Sampling {
            seed: seed.or(self.base.sampling.seed),
            ..self.base.sampling.clone()
        };
        Ok(self.base.ask_parsed(msgs, sampling, extract_number).await?.0)
    }

    async fn batched(&self, points: &[EvaluationPoint], ctx: &MethodContext) -> Vec<Result<f64>> {
        let k = points.len();
        let signal = self.base.signal;
        let format = format!(
            "You will be given {k} independent steps, each marked ### Point i. Estimate {} for each. Think as much \
             as you need, then answer with exactly {k} numbers, comma-separated in point order, inside answer tags, \
             for example <answer>{}</answer>.",
            value_symbol(signal),
            (0..k).map(|i| format!("0.{}", i + 1)).collect::<Vec<_>>().join(", ")
        );
        let system = system_prompt(ctx, signal, &format);
        let mut parts = Vec::new();
        for (i, p) in points.iter().enumerate() {
            parts.push(Part::Text {
                text: format!("### Point {}", i + 1),
            });
            parts.extend(fitted_point_parts(p, ctx, signal, &self.base.options, system.len() / k));
        }
        parts.push(Part::Text {
            text: format!("Give the {k} values in <answer></answer> tags."),
        });
        let msgs = vec![
            Message::text(Role::System, system),
            Message {
                role: Role::User,
                parts: merge_text(parts),
            },
        ];
        match self
            .base
            .ask_parsed(msgs, self.base.sampling.clone(), |t| extract_list(t, k))
            .await
        {
            Ok((values, _)) => values.into_iter().map(Ok).collect(),
            Err(e) => (0..k).map(|_| Err(CoreError::Method(e.to_string()))).collect(),
        }
    }

    async fn sequential(&self, points: &[EvaluationPoint], ctx: &MethodContext) -> Vec<Result<f64>> {
        let signal = self.base.signal;
        let mut messages = vec![Message::text(
            Role::System,
            system_prompt(ctx, signal, &single_answer(signal)),
        )];
        let mut out: Vec<Result<f64>> = Vec::with_capacity(points.len());
        for (i, p) in points.iter().enumerate() {
            let mut parts = fitted_point_parts(p, ctx, signal, &self.base.options, 0);
            parts.push(Part::Text {
                text: format!(
                    "What is {} here? Answer in <answer></answer> tags.",
                    value_symbol(signal)
                ),
            });
            messages.push(Message {
                role: Role::User,
                parts: merge_text(parts),
            });
            let parsed = self
                .base
                .ask_parsed(messages.clone(), self.base.sampling.clone(), extract_number)
                .await;
            match parsed {
                Ok((v, text)) => {
                    messages.push(Message::text(Role::Assistant, text));
                    out.push(Ok(v));
                }
                Err(e) => {
                    out.push(Err(e));
                    for _ in i + 1..points.len() {
                        out.push(Err(CoreError::Method(
                            "an earlier turn of this conversation failed".into(),
                        )));
                    }
                    break;
                }
            }
        }
        out
    }
}

impl ReportsUsage for Direct {
    fn usage(&self) -> serde_json::Value {
        self.base.usage.snapshot()
    }
}

#[async_trait]
impl DenseSignalMethod for Direct {
    fn name(&self) -> String {
        let s = self.base.signal.to_string().to_lowercase();
        match self.mode {
            DirectMode::Single => format!("direct-single-{s}"),
            DirectMode::Multi(n) => format!("direct-{n}-{s}"),
            DirectMode::Batched(_) => format!("direct-batched-{s}"),
            DirectMode::Sequential(_) => format!("direct-sequential-{s}"),
        }
    }

    fn signal(&self) -> Signal {
        self.base.signal
    }

    async fn evaluate(&self, point: &EvaluationPoint, ctx: &MethodContext) -> Result<f64> {
        match self.mode {
            DirectMode::Single => self.single(point, ctx, None).await,
            DirectMode::Multi(n) => {
                let results = futures::future::join_all((0..n as u64).map(|s| self.single(point, ctx, Some(s)))).await;
                let ok: Vec<f64> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
                if ok.is_empty() {
                    let first = results
                        .into_iter()
                        .find_map(|r| r.err())
                        .map(|e| e.to_string())
                        .unwrap_or_default();
                    return Err(CoreError::Method(format!("all {n} passes failed; first: {first}")));
                }
                Ok(ok.iter().sum::<f64>() / ok.len() as f64)
            }
            DirectMode::Batched(_) | DirectMode::Sequential(_) => self
                .evaluate_batch(std::slice::from_ref(point), ctx)
                .await
                .pop()
                .expect("one result"),
        }
    }

    async fn evaluate_batch(&self, points: &[EvaluationPoint], ctx: &MethodContext) -> Vec<Result<f64>> {
        match self.mode {
            DirectMode::Single | DirectMode::Multi(_) => {
                futures::future::join_all(points.iter().map(|p| self.evaluate(p, ctx))).await
            }
            DirectMode::Batched(k) => {
                let groups = futures::future::join_all(points.chunks(k).map(|c| self.batched(c, ctx))).await;
                groups.into_iter().flatten().collect()
            }
            DirectMode::Sequential(k) => {
                let groups = futures::future::join_all(points.chunks(k).map(|c| self.sequential(c, ctx))).await;
                groups.into_iter().flatten().collect()
            }
        }
    }
}

/// GVL as published: the other transitions of the point's trajectory as context, state and
/// action only, in an order shuffled per point with a deterministic seed and without step
/// markers; the target transition last.
#[derive(Clone)]
pub struct Gvl {
    base: Base,
    trajectories: Arc<HashMap<usize, Trajectory>>,
    seed: u64,
}

impl Gvl {
    /// GVL over `backend`, with the trajectories the points come from.
    pub fn new(
        backend: Arc<dyn Backend>,
        signal: Signal,
        trajectories: &[Trajectory],
        seed: u64,
        options: PromptOptions,
    ) -> Self {
        Gvl {
            base: Base::new(backend, signal, options),
            trajectories: Arc::new(trajectories.iter().map(|t| (t.index, t.clone())).collect()),
            seed,
        }
    }

    /// The messages for a point (for previews).
    pub fn messages(&self, point: &EvaluationPoint, ctx: &MethodContext) -> Result<Vec<Message>> {
        let t = self.trajectories.get(&point.trajectory_index).ok_or_else(|| {
            CoreError::Method(format!(
                "gvl: trajectory {} of point `{}` was not given",
                point.trajectory_index, point.id
            ))
        })?;
        let mut others: Vec<_> = t.transitions.iter().filter(|x| x.step != point.step_index).collect();
        // Per point, as published: each point of a trajectory sees its own order.
        others.shuffle(&mut rng_for(
            self.seed,
            &[point.trajectory_index as u64, point.step_index as u64],
        ));
        let signal = self.base.signal;
        let system = system_prompt(
            ctx,
            signal,
            &format!(
                "You will receive a shuffled set of surrounding transitions from the same trajectory, followed by one \
                 final target datapoint. The surrounding transitions are intentionally out of chronological order and \
                 are provided only as contextual evidence. Estimate only the final target datapoint. Only the target \
                 datapoint includes its resulting next state. Surrounding context transitions include only state and \
                 action.\n\n{}",
                single_answer(signal)
            ),
        );
        // Context steps show state and action only: their rewards and resulting states would
        // let a model rebuild the order the shuffle hides.
        let mut context = String::from(
            "## Shuffled Trajectory Context\nThe surrounding transitions below come from the same trajectory as the \
             target datapoint, but are intentionally shuffled and not chronological.",
        );
        for (i, x) in others.iter().enumerate() {
            context.push_str(&format!(
                "\n\n### Context Transition {}\n#### State\n{}\n#### Action\n{}",
                i + 1,
                x.observation.text,
                x.action_text
            ));
        }
        let mut no_history = ctx.clone();
        no_history.history_limit = 0;
        let mut parts = vec![
            Part::Text { text: context },
            Part::Text {
                text: "## Target Transition".into(),
            },
        ];
        parts.extend(fitted_point_parts(
            point,
            &no_history,
            signal,
            &self.base.options,
            system.len(),
        ));
        parts.push(Part::Text {
            text: format!(
                "What is {} for this step? Answer in <answer></answer> tags.",
                value_symbol(signal)
            ),
        });
        Ok(vec![
            Message::text(Role::System, system),
            Message {
                role: Role::User,
                parts: merge_text(parts),
            },
        ])
    }
}

impl ReportsUsage for Gvl {
    fn usage(&self) -> serde_json::Value {
        self.base.usage.snapshot()
    }
}

#[async_trait]
impl DenseSignalMethod for Gvl {
    fn name(&self) -> String {
        format!("gvl-{}", self.base.signal.to_string().to_lowercase())
    }
    fn signal(&self) -> Signal {
        self.base.signal
    }
    async fn evaluate(&self, point: &EvaluationPoint, ctx: &MethodContext) -> Result<f64> {
        let messages = self.messages(point, ctx)?;
        Ok(self
            .base
            .ask_parsed(messages, self.base.sampling.clone(), extract_number)
            .await?
            .0)
    }
}

/// The verifier: a grade on a 20-letter scale (A best .. T worst), scored as the
/// probability-weighted bin value (19 - i) / 19 over the letters among the top-20
/// log-probabilities of the token after `<score>`. Needs a backend with log-probabilities.
///
/// As published, a point may be graded in several passes, each optionally under one
/// criterion of the published registry ([`VerifierCriterion`]); the point's value is the
/// mean of the passes that decoded.
///
/// | parameter | default |
/// |---|---|
/// | passes ([`Verifier::with_passes`], published `num_verifications`) | 1 |
/// | criteria ([`Verifier::with_criteria`]) | none |
///
/// There are `passes x max(1, criteria)` passes per point (as published); pass `p` shows
/// criterion `criteria[p % len]` as `### Evaluation Criterion: {name}\n{description}` before
/// the point. With more than one pass, pass `p` is sent with seed `s + p` (`s` the
/// sampling's seed, else 0), so that no two passes are the same request (a cache would
/// answer them once); a single pass is sent exactly as it always was.
#[derive(Clone)]
pub struct Verifier {
    base: Base,
    passes: usize,
    criteria: Vec<&'static VerifierCriterion>,
}

/// The 20 letters of the verifier's scale, best first.
pub const LETTERS: &str = "ABCDEFGHIJKLMNOPQRST";

impl Verifier {
    /// A verifier over `backend`: one pass, no criterion.
    pub fn new(backend: Arc<dyn Backend>, signal: Signal, options: PromptOptions) -> Self {
        Verifier {
            base: Base::new(backend, signal, options),
            passes: 1,
            criteria: Vec::new(),
        }
    }

    /// Passes per criterion (the published `num_verifications`). Default 1.
    ///
    /// # Panics
    /// If `passes` is 0.
    pub fn with_passes(mut self, passes: usize) -> Self {
        assert!(passes > 0, "at least one pass");
        self.passes = passes;
        self
    }

    /// The criteria, by registry id, cycled over the passes. Default none.
    ///
    /// # Errors
    /// An id not in the registry (the message suggests the nearest), or a signal other than
    /// V and Q (the published criteria describe only those).
    pub fn with_criteria<S: AsRef<str>>(mut self, ids: &[S]) -> Result<Self> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let id = id.as_ref();
            let c = VerifierCriterion::by_id(id).ok_or_else(|| CoreError::InvalidParameter {
                name: "criteria",
                value: id.to_string(),
                reason: format!(
                    "not a published criterion; expected one of: {}",
                    VerifierCriterion::ids().join(", ")
                ),
            })?;
            if c.description_for(self.base.signal).is_none() {
                return Err(CoreError::InvalidParameter {
                    name: "criteria",
                    value: id.to_string(),
                    reason: format!("criteria describe only V and Q, not {}", self.base.signal),
                });
            }
            out.push(c);
        }
        self.criteria = out;
        Ok(self)
    }

    /// Passes per point: `passes x max(1, criteria)`.
    pub fn total_passes(&self) -> usize {
        self.passes * self.criteria.len().max(1)
    }

    /// The criterion of pass `pass`, if any.
    pub fn criterion(&self, pass: usize) -> Option<&'static VerifierCriterion> {
        (!self.criteria.is_empty()).then(|| self.criteria[pass % self.criteria.len()])
    }

    /// The messages for a point (first pass).
    pub fn messages(&self, point: &EvaluationPoint, ctx: &MethodContext) -> Vec<Message> {
        self.pass_messages(point, ctx, 0)
    }

    /// The messages for a point in pass `pass`.
    pub fn pass_messages(&self, point: &EvaluationPoint, ctx: &MethodContext, pass: usize) -> Vec<Message> {
        let signal = self.base.signal;
        let format = format!(
            "Grade the step on a 20-letter scale from A (the highest possible {}) to T (the lowest), in even steps. \
             Answer with one letter inside score tags, for example <score>C</score>, and nothing else.",
            value_symbol(signal)
        );
        let system = system_prompt(ctx, signal, &format);
        let criterion = self.criterion(pass).and_then(|c| c.block(signal));
        let reserved = system.len() + criterion.as_ref().map_or(0, String::len);
        let mut parts: Vec<Part> = criterion.map(|text| Part::Text { text }).into_iter().collect();
        parts.extend(fitted_point_parts(point, ctx, signal, &self.base.options, reserved));
        parts.push(Part::Text {
            text: "Your grade, in <score></score> tags:".into(),
        });
        vec![
            Message::text(Role::System, system),
            Message {
                role: Role::User,
                parts: merge_text(parts),
            },
        ]
    }

    async fn pass(&self, point: &EvaluationPoint, ctx: &MethodContext, pass: usize) -> Result<f64> {
        let seed = if self.total_passes() == 1 {
            self.base.sampling.seed
        } else {
            Some(self.base.sampling.seed.unwrap_or(0).wrapping_add(pass as u64))
        };
        let sampling = Sampling {
            top_logprobs: Some(20),
            seed,
            ..self.base.sampling.clone()
        };
        let req = crate::llm::ChatRequest {
            messages: self.pass_messages(point, ctx, pass),
            sampling,
        };
        let resp = self
            .base
            .backend
            .chat(&req)
            .await
            .map_err(|e| CoreError::Method(format!("LLM request failed: {e}")))?;
        let tokens = resp
            .logprobs
            .ok_or_else(|| CoreError::Method("the response carries no log-probabilities".into()))?;
        verifier_score(&tokens).map_err(CoreError::Method)
    }
}

/// The mean of the passes that gave a value (as published: NaN only when none did, with
/// the first failure as the reason).
fn mean_of_passes(results: Vec<Result<f64>>) -> Result<f64> {
    let n = results.len();
    let ok: Vec<f64> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    if ok.is_empty() {
        let first = results
            .into_iter()
            .find_map(|r| r.err())
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(CoreError::Method(if n == 1 {
            first
        } else {
            format!("all {n} passes failed; first: {first}")
        }));
    }
    Ok(ok.iter().sum::<f64>() / ok.len() as f64)
}

impl ReportsUsage for Verifier {
    fn usage(&self) -> serde_json::Value {
        self.base.usage.snapshot()
    }
}

/// The verifier's score from the generated tokens: the top alternatives of the token after
/// the opening `<score>` tag.
pub fn verifier_score(tokens: &[crate::llm::TokenLogprob]) -> std::result::Result<f64, String> {
    let mut text = String::new();
    let mut after = None;
    for (i, t) in tokens.iter().enumerate() {
        text.push_str(&t.token);
        if text.trim_end().ends_with("<score>") {
            after = Some(i + 1);
            break;
        }
    }
    let i = after.ok_or("no <score> tag among the generated tokens")?;
    let tok = tokens.get(i).ok_or("nothing generated after <score>")?;
    let (mut weight, mut total) = (0.0, 0.0);
    for (tok, lp) in &tok.top {
        let t = tok.trim();
        if t.len() == 1
            && let Some(k) = LETTERS.find(t)
        {
            let p = lp.exp();
            weight += p * (19 - k) as f64 / 19.0;
            total += p;
        }
    }
    if total == 0.0 {
        return Err("no letter A..T among the top log-probabilities after <score>".into());
    }
    Ok(weight / total)
}

#[async_trait]
impl DenseSignalMethod for Verifier {
    fn name(&self) -> String {
        format!("verifier-{}", self.base.signal.to_string().to_lowercase())
    }
    fn signal(&self) -> Signal {
        self.base.signal
    }
    async fn evaluate(&self, point: &EvaluationPoint, ctx: &MethodContext) -> Result<f64> {
        if !self.base.backend.capabilities().logprobs {
            return Err(CoreError::Method(format!(
                "verifier: backend `{}` gives no log-probabilities",
                self.base.backend.name()
            )));
        }
        let n = self.total_passes();
        let results = futures::future::join_all((0..n).map(|p| self.pass(point, ctx, p))).await;
        mean_of_passes(results)
    }
}
