//! The verifier: a letter grade on the published 20-bin scale, read from log-probabilities,
//! with the published grouping of points into prompts (`prompt_grouping`,
//! `prompt_batch_size`).

use async_trait::async_trait;
use rand::seq::SliceRandom as _;
use std::sync::Arc;

use super::base::{Base, ReportsUsage};
use super::criteria::VerifierCriterion;
use super::direct::mean_of_passes;
use crate::llm::prompt::{Budget, Slot, fitted_point_parts, signal_header, system_and_user, system_prompt};
use crate::llm::{Backend, Message, Part, PromptOptions, Sampling};
use qval_core::{CoreError, DenseSignalMethod, EvaluationPoint, MethodContext, Result, Signal};

/// How the verifier puts points into prompts of [`Verifier::with_batch`]'s size (published
/// `prompt_grouping`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grouping {
    /// Shuffled with a seed of the points' positions, then cut in order (default, as published).
    #[default]
    Random,
    /// In the order given.
    Contiguous,
    /// By trajectory (first seen first), each by step: a prompt holds one trajectory's points.
    Trajectory,
}

impl Grouping {
    /// The names experiment files use.
    pub const KEYS: [&'static str; 3] = ["random", "contiguous", "trajectory"];

    /// The grouping named `key`, if any.
    pub fn from_key(key: &str) -> Option<Self> {
        [Grouping::Random, Grouping::Contiguous, Grouping::Trajectory]
            .into_iter()
            .zip(Self::KEYS)
            .find_map(|(g, k)| (k == key).then_some(g))
    }

    /// The prompts' points: indices into `points`, `size` at most per prompt (published
    /// `plan_prompt_groups`). The random order is seeded, as published, by the first 16 hex
    /// digits of the SHA-256 of `random:` and the positions, but drawn by qval's generator,
    /// not Python's: the same kind of mix, not the same order as the published code's.
    pub fn plan(self, points: &[EvaluationPoint], size: usize) -> Vec<Vec<usize>> {
        let size = size.max(1);
        let chunks = |order: Vec<usize>| order.chunks(size).map(<[usize]>::to_vec).collect::<Vec<_>>();
        match self {
            Grouping::Contiguous => chunks((0..points.len()).collect()),
            Grouping::Random => {
                use rand::SeedableRng as _;
                use sha2::Digest as _;
                let key: Vec<String> = (0..points.len()).map(|i| i.to_string()).collect();
                let digest = sha2::Sha256::digest(format!("random:{}", key.join(",")).as_bytes());
                let seed = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
                let mut order: Vec<usize> = (0..points.len()).collect();
                order.shuffle(&mut qval_core::QRng::seed_from_u64(seed));
                chunks(order)
            }
            Grouping::Trajectory => {
                let mut seen: Vec<usize> = Vec::new();
                let mut by: std::collections::HashMap<usize, Vec<usize>> = Default::default();
                for (i, p) in points.iter().enumerate() {
                    by.entry(p.trajectory_index)
                        .or_insert_with(|| {
                            seen.push(p.trajectory_index);
                            Vec::new()
                        })
                        .push(i);
                }
                seen.into_iter()
                    .flat_map(|t| {
                        let mut g = by.remove(&t).expect("a group");
                        g.sort_by_key(|&i| (points[i].step_index, i));
                        chunks(g)
                    })
                    .collect()
            }
        }
    }
}

/// The verifier: a grade on a 20-letter scale (A best .. T worst), scored as the
/// probability-weighted bin value (19 - i) / 19 over the letters among the top-20
/// log-probabilities of the token after `<score_1>`. Needs a backend with log-probabilities.
///
/// As published, a point may be graded in several passes, each optionally under one
/// criterion of the published registry ([`VerifierCriterion`]); the point's value is the
/// mean of the passes that decoded.
///
/// | parameter | default |
/// |---|---|
/// | passes ([`Verifier::with_passes`], published `num_verifications`) | 1 |
/// | criteria ([`Verifier::with_criteria`]) | none |
/// | points per prompt and their grouping ([`Verifier::with_batch`], published `prompt_batch_size`, `prompt_grouping`) | 1, random |
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
    batch: usize,
    grouping: Grouping,
}

/// The 20 letters of the verifier's scale, best first.
pub const LETTERS: &str = "ABCDEFGHIJKLMNOPQRST";

/// The published description of the scale, verbatim.
const SCALE: &str = "Use an ordered 20-point score scale with the single-letter bins A through T, where A is best \
and T is worst. Choose exactly one score bin per datapoint.
A = clearly and completely favorable with strong evidence of success (best)
B-D = strongly favorable with only minor remaining concerns
E-G = above average, mostly favorable with some issues
H-J = uncertain, leans favorable
K-M = uncertain, leans unfavorable
N-P = below average, significant issues remain
Q-S = poor, with only limited signs of progress
T = clearly and completely unfavorable or failed (worst)";

impl Verifier {
    /// A verifier over `backend`: one pass, no criterion.
    pub fn new(backend: Arc<dyn Backend>, signal: Signal, options: PromptOptions) -> Self {
        Verifier {
            base: Base::new(backend, signal, options),
            passes: 1,
            criteria: Vec::new(),
            batch: 1,
            grouping: Grouping::Random,
        }
    }

    /// Points per prompt (published `prompt_batch_size`, default 1) and how they are grouped
    /// (published `prompt_grouping`, default random), within each batch of points the method
    /// is given. Each point of a prompt is `## Datapoint i` and is scored through its
    /// `<score_i>` tag.
    ///
    /// # Panics
    /// If `size` is 0.
    pub fn with_batch(mut self, size: usize, grouping: Grouping) -> Self {
        assert!(size > 0, "at least one point per prompt");
        self.batch = size;
        self.grouping = grouping;
        self
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
        self.pass_messages(&[point], ctx, 0)
    }

    /// The messages for the points of one prompt in pass `pass`.
    pub fn pass_messages(&self, points: &[&EvaluationPoint], ctx: &MethodContext, pass: usize) -> Vec<Message> {
        let signal = self.base.signal;
        let opts = &self.base.options;
        let n = points.len();
        // As published: the verifier's opener, the scale and its reading, one score tag per
        // datapoint.
        let last = if n > 1 {
            "You may receive multiple datapoints in one request. Return one score tag per datapoint in the same \
             order they appear."
        } else {
            "Return exactly one score tag for the single datapoint."
        };
        let system = system_prompt(
            ctx,
            opts.preset,
            Slot::Verifier,
            signal,
            &[
                SCALE.into(),
                "Interpret the score bins as an ordered scale that will be converted into a scalar value after \
                 decoding. Use higher bins for stronger evidence that the state or chosen action is favorable."
                    .into(),
            ],
            &[last.into()],
        );
        let header = match signal.has_action() {
            false => "Estimate a verifier score for the **Current State** of each datapoint below.".to_string(),
            true => format!(
                "Estimate a verifier score for each datapoint below. {}. Judge the chosen action and resulting next \
                 state using the ordered score bins.",
                signal_header(signal, ctx.include_next_state).trim_end_matches(" for the following:")
            ),
        };
        let tags: Vec<String> = (1..=n).map(|i| format!("<score_{i}>LETTER</score_{i}>")).collect();
        let closing = format!(
            "Now provide your final scores using one uppercase letter from A through T per datapoint.\n\
             Output exactly one tag per datapoint in prompt order:\n{}",
            tags.join("\n")
        );
        let criterion = self.criterion(pass).and_then(|c| c.block(signal));
        let reserved = system.len() + header.len() + closing.len() + criterion.as_ref().map_or(0, String::len);
        // Each point gets its share of the budget left after the fixed text (as published).
        let share = PromptOptions {
            budget: opts.budget.map(|b| match b {
                Budget::Chars(c) => Budget::Chars(c / n),
                Budget::Tokens(t) => Budget::Tokens(t / n),
            }),
            ..opts.clone()
        };
        let mut parts = vec![Part::Text { text: header }];
        parts.extend(criterion.map(|text| Part::Text { text }));
        for (i, point) in points.iter().enumerate() {
            parts.push(Part::Text {
                text: format!("## Datapoint {}", i + 1),
            });
            parts.extend(fitted_point_parts(point, ctx, signal, &share, reserved / n));
        }
        parts.push(Part::Text { text: closing });
        system_and_user(system, parts)
    }

    /// One pass over the points of one prompt: a score per point, in order.
    async fn pass(&self, points: &[&EvaluationPoint], ctx: &MethodContext, pass: usize) -> Vec<Result<f64>> {
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
            messages: self.pass_messages(points, ctx, pass),
            sampling,
        };
        let resp = match self.base.backend.chat(&req).await {
            Ok(r) => r,
            Err(e) => {
                let e = crate::llm::failed("LLM request failed", e);
                return points.iter().map(|_| Err(e.for_each_point())).collect();
            }
        };
        // The log-probabilities first; the reply's text when they give no letter (as published).
        (1..=points.len())
            .map(|i| {
                let from_logprobs = match &resp.logprobs {
                    Some(tokens) => verifier_score_at(tokens, i),
                    None => Err("the response carries no log-probabilities".into()),
                };
                from_logprobs
                    .or_else(|e| verifier_text_score_at(&resp.text, i).map_err(|t| format!("{e}; {t}")))
                    .map_err(|e| CoreError::Method(e.into()))
            })
            .collect()
    }
}

impl ReportsUsage for Verifier {
    fn usage(&self) -> serde_json::Value {
        self.base.usage.snapshot()
    }
}

/// The verifier's score from the generated tokens, decoded as published: after the token
/// that completes `<score_1>`, the first token whose sampled text or top alternatives name
/// letters A..T gives the distribution (per letter the highest probability among its
/// variants, renormalised over the letters present); the score is the expected bin value
/// (19 - i) / 19. Scanning stops at `</score_`.
pub fn verifier_score(tokens: &[crate::llm::TokenLogprob]) -> std::result::Result<f64, String> {
    verifier_score_at(tokens, 1)
}

/// [`verifier_score`] of the `index`-th datapoint (its `<score_index>` tag).
pub fn verifier_score_at(tokens: &[crate::llm::TokenLogprob], index: usize) -> std::result::Result<f64, String> {
    let tag = format!("<score_{index}>");
    let mut text = String::new();
    let mut after = None;
    for (i, t) in tokens.iter().enumerate() {
        text.push_str(&t.token);
        if text.trim_end().ends_with(&tag) {
            after = Some(i + 1);
            break;
        }
    }
    let start = after.ok_or_else(|| format!("no {tag} tag among the generated tokens"))?;
    let letter = |tok: &str| {
        let t = tok.trim().to_ascii_uppercase();
        (t.len() == 1).then(|| LETTERS.find(&t)).flatten()
    };
    for tok in &tokens[start..] {
        let mut p = [0.0f64; 20];
        let mut any = false;
        for (t, lp) in std::iter::once((&tok.token, &tok.logprob)).chain(tok.top.iter().map(|(t, lp)| (t, lp))) {
            if let Some(k) = letter(t) {
                p[k] = p[k].max(lp.exp());
                any = true;
            }
        }
        if any {
            let total: f64 = p.iter().sum();
            if total == 0.0 {
                break;
            }
            let weight: f64 = p.iter().enumerate().map(|(k, q)| q * (19 - k) as f64 / 19.0).sum();
            return Ok(weight / total);
        }
        if tok.token.trim().starts_with("</score_") {
            break;
        }
    }
    Err(format!("no letter A..T among the tokens after {tag}"))
}

/// The verifier's score from the reply text, as published when log-probabilities give none:
/// `<score_1>X</score_1>`, else `<score_1>X` followed by a word boundary, else a reply that
/// is one letter; the bin value (19 - i) / 19.
pub fn verifier_text_score(text: &str) -> std::result::Result<f64, String> {
    verifier_text_score_at(text, 1)
}

/// [`verifier_text_score`] of the `index`-th datapoint (its `<score_index>` tag).
pub fn verifier_text_score_at(text: &str, index: usize) -> std::result::Result<f64, String> {
    let res = [
        format!(r"(?i)<score_{index}>\s*([A-T])\s*</score_{index}>"),
        format!(r"(?i)<score_{index}>\s*([A-T])\b"),
        r"^\s*([A-Ta-t])\s*$".to_string(),
    ];
    let body = crate::llm::strip_thinking(text);
    res.iter()
        .map(|r| regex::Regex::new(r).expect("a valid regex"))
        .find_map(|re| re.captures(&body).map(|c| c[1].to_ascii_uppercase()))
        .and_then(|l| LETTERS.find(&l))
        .map(|k| (19 - k) as f64 / 19.0)
        .ok_or_else(|| format!("no <score_{index}> letter A..T in the reply"))
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
        let mut r = self.evaluate_batch(std::slice::from_ref(point), ctx).await;
        r.pop().unwrap_or_else(|| Err(CoreError::Method("no result".into())))
    }
    async fn evaluate_batch(&self, points: &[EvaluationPoint], ctx: &MethodContext) -> Vec<Result<f64>> {
        if !self.base.backend.capabilities().logprobs {
            let why = format!(
                "verifier: backend `{}` gives no log-probabilities",
                self.base.backend.name()
            );
            return points
                .iter()
                .map(|_| Err(CoreError::Method(why.clone().into())))
                .collect();
        }
        let groups = self.grouping.plan(points, self.batch);
        let n = self.total_passes();
        // Every prompt of every pass at once; then per point the mean of its passes.
        let runs = groups.iter().flat_map(|g| {
            let members: Vec<&EvaluationPoint> = g.iter().map(|&i| &points[i]).collect();
            (0..n).map(move |p| {
                let members = members.clone();
                async move { self.pass(&members, ctx, p).await }
            })
        });
        let results: Vec<Vec<Result<f64>>> = futures::future::join_all(runs).await;
        let mut per_point: Vec<Vec<Result<f64>>> = (0..points.len()).map(|_| Vec::with_capacity(n)).collect();
        for (g, passes) in groups.iter().zip(results.chunks(n)) {
            for scores in passes {
                for (&i, r) in g.iter().zip(scores) {
                    per_point[i].push(r.as_ref().copied().map_err(CoreError::for_each_point));
                }
            }
        }
        per_point.into_iter().map(mean_of_passes).collect()
    }
}
