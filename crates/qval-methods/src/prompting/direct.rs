//! Direct prompting, GVL and the verifier.

use async_trait::async_trait;
use rand::seq::SliceRandom as _;
use std::collections::HashMap;
use std::sync::Arc;

use super::base::{Base, ReportsUsage};
use crate::llm::prompt::{
    Layout, Slot, adapt_closing, direct_messages, fitted_layout_parts, fitted_point_parts, signal_header, signal_name,
    system_and_user, system_prompt, user_message,
};
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

    /// The messages of a packed batch (direct-batched), as published: one `## Datapoint i`
    /// section per point, answered as a comma-separated list.
    pub fn batched_messages(&self, points: &[EvaluationPoint], ctx: &MethodContext) -> Vec<Message> {
        let k = points.len();
        let signal = self.base.signal;
        let opts = &self.base.options;
        let name = signal_name(signal);
        let closing = if opts.preset.uses_answer_tags() {
            format!(
                "After any reasoning, provide your numeric {name} estimates as a comma-separated list inside <answer> \
                 tags, in datapoint order."
            )
        } else {
            format!(
                "After any reasoning, respond with ONLY a comma-separated list of numeric {name} estimates, in \
                 datapoint order. Do not include any explanation after the list."
            )
        };
        let system = system_prompt(
            ctx,
            opts.preset,
            Slot::Direct,
            signal,
            &[],
            &[
                "You may receive multiple datapoints in one request. Evaluate each datapoint independently and return \
                 one estimate per datapoint in the same order they appear."
                    .into(),
                adapt_closing(&closing, opts.thinking),
            ],
        );
        let header = signal_header(signal, ctx.include_next_state).trim_end_matches(" for the following:");
        let mut parts = vec![Part::Text {
            text: format!("{header} for each datapoint below. Return one estimate per datapoint in the same order."),
        }];
        for (i, p) in points.iter().enumerate() {
            parts.push(Part::Text {
                text: format!("## Datapoint {}", i + 1),
            });
            parts.extend(fitted_point_parts(p, ctx, signal, opts, system.len() / k));
        }
        parts.push(Part::Text {
            text: if opts.preset.uses_answer_tags() {
                format!(
                    "Now, provide your {name} estimates as a comma-separated list inside <answer> tags, in datapoint \
                     order, e.g. <answer>VALUE_1, VALUE_2, VALUE_3</answer>."
                )
            } else {
                format!(
                    "Now, provide your {name} estimates as a comma-separated list in datapoint order. Do not explain \
                     — output ONLY the comma-separated list."
                )
            },
        });
        system_and_user(system, parts)
    }

    async fn batched(&self, points: &[EvaluationPoint], ctx: &MethodContext) -> Vec<Result<f64>> {
        let k = points.len();
        // A group of one is asked as a single point (as published).
        if k == 1 {
            return vec![self.single(&points[0], ctx, None).await];
        }
        let msgs = self.batched_messages(points, ctx);
        match self
            .base
            .ask_parsed(msgs, self.base.sampling.clone(), |t| extract_list(t, k))
            .await
        {
            Ok((values, _)) => values.into_iter().map(Ok).collect(),
            Err(e) => (0..k).map(|_| Err(e.for_each_point())).collect(),
        }
    }

    /// The user turn of point `i` of `n` in a sequential batch, as published.
    fn sequential_turn(&self, point: &EvaluationPoint, ctx: &MethodContext, i: usize, n: usize) -> Message {
        let signal = self.base.signal;
        let opts = &self.base.options;
        let mut parts = vec![Part::Text {
            text: format!("## Datapoint {} of {n}", i + 1),
        }];
        if i > 0 {
            parts.push(Part::Text {
                text: "Keep your earlier answers fixed and answer only for the datapoint below.".into(),
            });
        }
        parts.push(Part::Text {
            text: signal_header(signal, ctx.include_next_state).into(),
        });
        parts.extend(fitted_point_parts(point, ctx, signal, opts, 0));
        parts.push(Part::Text {
            text: opts.preset.user_closing(signal),
        });
        user_message(parts)
    }

    async fn sequential(&self, points: &[EvaluationPoint], ctx: &MethodContext) -> Vec<Result<f64>> {
        let signal = self.base.signal;
        let opts = &self.base.options;
        let n = points.len();
        if n == 1 {
            return vec![self.single(&points[0], ctx, None).await];
        }
        let mut extra = Vec::new();
        if n > 1 {
            extra.push(
                "You may receive multiple datapoints across successive user turns in this conversation. For each \
                 turn, evaluate only the datapoint shown in that turn, keep your earlier estimates fixed and mutually \
                 consistent, and return exactly one estimate for the current datapoint only."
                    .to_string(),
            );
        }
        extra.push(adapt_closing(&opts.preset.closing_direct(signal), opts.thinking));
        let mut messages = vec![Message::text(
            Role::System,
            system_prompt(ctx, opts.preset, Slot::Direct, signal, &[], &extra),
        )];
        let mut out: Vec<Result<f64>> = Vec::with_capacity(n);
        for (i, p) in points.iter().enumerate() {
            messages.push(self.sequential_turn(p, ctx, i, n));
            let parsed = self
                .base
                .ask_parsed(messages.clone(), self.base.sampling.clone(), extract_number)
                .await;
            match parsed {
                Ok((v, _)) => {
                    // As published, the conversation keeps a canonical answer, not the reply.
                    let v_text = python_float(v);
                    let canonical = if opts.preset.uses_answer_tags() {
                        format!("[thinking not shown]\n<answer>{v_text}</answer>")
                    } else {
                        v_text
                    };
                    messages.push(Message::text(Role::Assistant, canonical));
                    out.push(Ok(v));
                }
                Err(e) => {
                    // The later turns were never asked: transient if the failure was.
                    let why = format!("an earlier turn of this conversation failed: {e}");
                    let later = if matches!(e, CoreError::Transient(_)) {
                        CoreError::Transient(why)
                    } else {
                        CoreError::Method(why.into())
                    };
                    out.push(Err(e));
                    for _ in i + 1..n {
                        out.push(Err(later.for_each_point()));
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
                mean_of_passes(results)
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

/// A number as Python's `str(float)` writes it (`1.0`, `0.25`).
fn python_float(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        format!("{v}")
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
            CoreError::Method(
                format!(
                    "gvl: trajectory {} of point `{}` was not given",
                    point.trajectory_index, point.id
                )
                .into(),
            )
        })?;
        let mut others: Vec<_> = t.transitions.iter().filter(|x| x.step != point.step_index).collect();
        // Per point, as published: each point of a trajectory sees its own order.
        others.shuffle(&mut rng_for(
            self.seed,
            &[point.trajectory_index as u64, point.step_index as u64],
        ));
        let signal = self.base.signal;
        let opts = &self.base.options;
        // As published: the evaluation instructions without the history, the GVL framing, the
        // preset's closing.
        let mut no_history = ctx.clone();
        no_history.history_limit = 0;
        let mut extra = vec![
            "You will receive a shuffled set of surrounding transitions from the same trajectory, followed by one final \
             target datapoint. The surrounding transitions are intentionally out of chronological order and are \
             provided only as contextual evidence. Estimate only the final target datapoint."
                .to_string(),
        ];
        if ctx.include_next_state {
            extra.push(
                "Only the target datapoint includes its resulting next state. Surrounding context transitions include \
                 only state and action."
                    .into(),
            );
        }
        extra.push(adapt_closing(&opts.preset.closing_direct(signal), opts.thinking));
        let system = system_prompt(&no_history, opts.preset, Slot::Direct, signal, &[], &extra);
        let mut parts = vec![Part::Text {
            text: signal_header(signal, ctx.include_next_state).into(),
        }];
        parts.extend(crate::llm::prompt::task_part(point, ctx));
        // Context steps show state and action only: their rewards and resulting states would
        // let a model rebuild the order the shuffle hides.
        if !others.is_empty() {
            parts.push(Part::Text {
                text:
                    "## Shuffled Trajectory Context\nThe surrounding transitions below come from the same trajectory \
                       as the target datapoint, but are intentionally shuffled and not chronological."
                        .into(),
            });
        }
        for (i, x) in others.iter().enumerate() {
            parts.push(Part::Text {
                text: format!("### Context Transition {}\n#### State\n{}", i + 1, x.observation.text),
            });
            parts.push(Part::Text {
                text: format!("#### Action\n{}", x.action_text),
            });
        }
        parts.push(Part::Text {
            text: if !signal.has_action() {
                "## Target Datapoint"
            } else {
                "## Target Transition"
            }
            .into(),
        });
        let closing = opts.preset.user_closing(signal);
        parts.extend(fitted_layout_parts(
            point,
            &no_history,
            signal,
            opts,
            system.len() + closing.len(),
            Layout::GvlTarget,
        ));
        parts.push(Part::Text { text: closing });
        Ok(system_and_user(system, parts))
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

/// The mean of the passes that gave a value (as published: NaN only when none did, with
/// the first failure as the reason).
pub(super) fn mean_of_passes(results: Vec<Result<f64>>) -> Result<f64> {
    let n = results.len();
    let ok: Vec<f64> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    if ok.is_empty() {
        // Not final when a pass failed in transport: a rerun asks the point again.
        let transient = results.iter().any(|r| matches!(r, Err(CoreError::Transient(_))));
        let first = results
            .into_iter()
            .find_map(|r| r.err())
            .map(|e| e.to_string())
            .unwrap_or_default();
        let message = if n == 1 {
            first
        } else {
            format!("all {n} passes failed; first: {first}")
        };
        return Err(if transient {
            CoreError::Transient(message)
        } else {
            CoreError::Method(message.into())
        });
    }
    Ok(ok.iter().sum::<f64>() / ok.len() as f64)
}
