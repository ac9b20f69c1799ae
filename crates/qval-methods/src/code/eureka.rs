//! Eureka: iterative improvement of generated signal functions. Each iteration asks for
//! several candidates (the first from the plain code prompt, later ones shown the previous
//! winner and the judge's feedback), runs every candidate on the points, summarises each
//! run (finite and NaN counts, min, max, mean, std, collapsed), and lets an LLM judge pick a
//! winner with feedback for the next round. Labels are never shown to anyone.
//!
//! The judge sees what the published judge sees (bethgelab/qval `llm_eureka.py`): per
//! candidate the statistics of its outputs over all points (finite and NaN counts, min, max,
//! mean, population std, collapsed), the rejected candidates with their reasons, and a
//! seeded sample of 8 points with each candidate's prediction on them, under candidate
//! labels shuffled per round with a seed ([`judge_labels`], [`sample_point_indices`],
//! [`judge_messages`]). From the second round on the previous winner (the incumbent) is
//! judged with the new candidates; a round with no usable new candidate, or a judge answer
//! without a usable `<winner>`, keeps it and ends the search (as published).

use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::{CodeSample, GeneratedSample, SandboxConfig, codegen_messages};
use crate::llm::prompt::{judge_point_parts, signal_fragment, signal_name, system_tail};
use crate::llm::{Backend, ChatRequest, Message, Part, PromptOptions, Role, Sampling, last_tag};
use qval_core::seed::{rng_for, stable_hash};
use qval_core::{CoreError, EvaluationPoint, MethodContext, Result, Signal, StageOptions, predict};

/// Parameters of [`run_eureka`].
///
/// | parameter | default |
/// |---|---|
/// | `iterations` | 16 |
/// | `candidates` | 8 per iteration |
/// | `concurrency` | [`parallelism`](super::parallelism) (the machine's cores) candidates run at once, each in its own worker |
/// | `judge_points` | 8 sampled points shown to the judge (the published `judge_num_points`) |
/// | `seed` | 0: the seed of the judge's candidate labels and sampled points |
///
/// # Worst-case time
///
/// One sample costs at most its sandbox's `total_limit` plus one call and one worker start
/// past it ([`SandboxConfig`]): with the defaults (1 s per call, 600 s per sample) about
/// 600 + 1.5 + 11 + 11 (the first load) = 624 s, however hostile the code. A round runs
/// its candidates `concurrency` at a time, so a run costs at most
/// `iterations x ceil(candidates / concurrency) x 624 s` plus the LLM calls (concurrency
/// defaults to the machine's cores: with the published 16 x 8 on 2 cores, 64 x 624 s, about
/// 11 hours, on code built to use up its budget without ever timing out). Code that keeps
/// timing out is abandoned after three calls in a row and rejected, so it costs seconds.
/// Lower `sandbox.total_limit` for a tighter budget: a well-behaved sample needs
/// milliseconds per point.
///
/// Code that never returns costs far less: its calls time out, and after
/// `sandbox.abandon_after` (3) in a row the candidate is abandoned (about 3 x 1 s with the
/// defaults) and rejected like one that does not load, with the reason. A round of only
/// rejected candidates is not judged, so a search on such code ends after two rounds.
#[derive(Clone, Debug, PartialEq)]
pub struct EurekaConfig {
    /// Rounds.
    pub iterations: usize,
    /// Candidates per round.
    pub candidates: usize,
    /// Candidates run at once (at least 1). They share the sandbox user's process limit.
    pub concurrency: usize,
    /// The sandbox of every candidate.
    pub sandbox: SandboxConfig,
    /// Sampling of the code requests (seeds are set per candidate). The judge is asked with
    /// the same, at temperature 0 and top-p 1, as published.
    pub sampling: Sampling,
    /// Points shown to the judge with each candidate's prediction (at most all points).
    pub judge_points: usize,
    /// The seed of the judge's candidate labels and sampled points.
    pub seed: u64,
    /// The prompt preset and thinking of the code requests (default: the published v2).
    pub prompt: PromptOptions,
}

impl EurekaConfig {
    /// The published sizes (16 iterations x 8 candidates).
    pub fn new(sandbox: SandboxConfig) -> Self {
        EurekaConfig {
            iterations: 16,
            candidates: 8,
            concurrency: super::parallelism(),
            sandbox,
            sampling: Sampling::default(),
            judge_points: 8,
            seed: 0,
            prompt: PromptOptions::default(),
        }
    }
}

/// What a candidate's outputs look like, over all points, as the published judge sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateStats {
    /// Points with a number.
    pub finite: usize,
    /// Points without one.
    pub nan: usize,
    /// Smallest output (NaN if none is finite).
    pub min: f64,
    /// Largest output (NaN if none is finite).
    pub max: f64,
    /// Mean output (NaN if none is finite).
    pub mean: f64,
    /// Population standard deviation of the outputs (divided by n; 0 for one output, NaN
    /// for none).
    pub std: f64,
    /// `max - min < 1e-9` with more than one finite output (as published: never for one
    /// or none).
    pub collapsed: bool,
    /// The first failure reason, if any.
    pub first_error: Option<String>,
    /// Why the candidate could not be used at all (no code, does not load): it is not run
    /// and the judge sees it under "Rejected Candidates".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
}

impl CandidateStats {
    /// The statistics of `values` (NaN and infinite values count as NaN).
    pub fn of(values: &[f64], first_error: Option<String>) -> Self {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let n = finite.len();
        let (min, max, mean, std) = if n == 0 {
            (f64::NAN, f64::NAN, f64::NAN, f64::NAN)
        } else {
            let mean = finite.iter().sum::<f64>() / n as f64;
            let var = finite.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
            (
                finite.iter().copied().fold(f64::INFINITY, f64::min),
                finite.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                mean,
                var.sqrt(),
            )
        };
        CandidateStats {
            finite: n,
            nan: values.len() - n,
            min,
            max,
            mean,
            std,
            collapsed: n > 1 && (max - min) < 1e-9,
            first_error,
            invalid: None,
        }
    }

    /// The summary block the judge sees under label `label`.
    pub fn summary(&self, label: usize) -> String {
        format!(
            "### Candidate {label}\n- Finite predictions: {}\n- NaN predictions: {}\n- Min: {}\n- Max: {}\n- Mean: \
             {}\n- Std: {}\n- Collapsed: {}",
            self.finite,
            self.nan,
            stat(self.min),
            stat(self.max),
            stat(self.mean),
            stat(self.std),
            if self.collapsed { "yes" } else { "no" }
        )
    }

    /// Fallback ranking when the judge cannot be read and there is no incumbent: spread
    /// (not collapsed, more than one number), most numbers, largest std.
    fn fallback_key(&self) -> (bool, usize, f64) {
        (
            self.finite > 1 && !self.collapsed,
            self.finite,
            if self.std.is_finite() { self.std } else { 0.0 },
        )
    }
}

/// A statistic as the published judge prints it: `n/a` when there is none.
fn stat(v: f64) -> String {
    if v.is_nan() { "n/a".into() } else { format_g6(v) }
}

/// `v` as Python's `f"{v:.6g}"` prints it: 6 significant digits, trailing zeros dropped,
/// scientific notation below 1e-4 and from 1e6 (`1.5e-05`, `1.23457e+06`), `nan`, `inf`.
///
/// ```
/// use qval_methods::code::eureka::format_g6;
/// assert_eq!(format_g6(0.1234567), "0.123457");
/// assert_eq!(format_g6(2.0), "2");
/// assert_eq!(format_g6(1234567.0), "1.23457e+06");
/// assert_eq!(format_g6(0.000015), "1.5e-05");
/// assert_eq!(format_g6(f64::NAN), "nan");
/// ```
pub fn format_g6(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{v:.5e}");
    let (mantissa, exp) = sci.split_once('e').expect("an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if (-4..6).contains(&exp) {
        trim(&format!("{v:.*}", (5 - exp) as usize))
    } else {
        format!("{}e{}{:02}", trim(mantissa), if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

/// One round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EurekaRound {
    /// The round number.
    pub iteration: usize,
    /// The candidates with their statistics.
    pub candidates: Vec<(GeneratedSample, CandidateStats)>,
    /// The winner's position in `candidates`.
    pub winner: usize,
    /// The previous winner's position in `candidates` (it is judged again, last in the list),
    /// from the second round on.
    #[serde(default)]
    pub incumbent: Option<usize>,
    /// The judge's labels: `(label, position in candidates)`, in label order.
    #[serde(default)]
    pub labels: Vec<(usize, usize)>,
    /// The points shown to the judge (indices into the points, ascending).
    #[serde(default)]
    pub sampled: Vec<usize>,
    /// Whether the judge chose (false: the incumbent was kept, or in the first round the
    /// fallback rule chose).
    pub judged: bool,
    /// The judge's feedback for the next round.
    pub feedback: String,
    /// The judge's rationale for its choice.
    #[serde(default)]
    pub rationale: String,
}

/// The result: every round, and the final winner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EurekaResult {
    /// The rounds, in order.
    pub rounds: Vec<EurekaRound>,
    /// The last round's winner.
    pub best: GeneratedSample,
}

/// The key of a point set that the judge's seeds derive from (as published, the points'
/// trajectory and step).
fn points_key(points: &[EvaluationPoint]) -> u64 {
    stable_hash(
        &points
            .iter()
            .map(|p| format!("{}:{}", p.trajectory_index, p.step_index))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// The points the judge sees in round `iteration`: `min(k, points.len())` indices drawn
/// without replacement with a seed derived from `seed`, the points and the round, ascending
/// (as published: a sorted sample).
pub fn sample_point_indices(seed: u64, points: &[EvaluationPoint], iteration: usize, k: usize) -> Vec<usize> {
    let n = points.len();
    let mut rng = rng_for(
        seed,
        &[
            stable_hash("eureka:points"),
            points_key(points),
            iteration as u64,
            n as u64,
        ],
    );
    let mut out = rand::seq::index::sample(&mut rng, n, k.min(n)).into_vec();
    out.sort_unstable();
    out
}

/// The judge's labels in round `iteration` for `n` candidates: `order[j]` is the candidate
/// (its position in the judged list) shown as `Candidate {j + 1}`; a seeded shuffle, as
/// published.
pub fn judge_labels(seed: u64, points: &[EvaluationPoint], iteration: usize, n: usize) -> Vec<usize> {
    use rand::seq::SliceRandom as _;
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng_for(
        seed,
        &[
            stable_hash("eureka:candidates"),
            points_key(points),
            iteration as u64,
            n as u64,
        ],
    ));
    order
}

/// One candidate as the judge sees it: its label and its predictions on all points.
#[derive(Clone, Copy, Debug)]
pub struct JudgeCandidate<'a> {
    /// The label it is shown under.
    pub label: usize,
    /// Its prediction on every point (NaN where it gave none).
    pub values: &'a [f64],
}

/// The judge's messages, in the published layout: `## Selection Rule`, `## Candidate
/// Summaries` (statistics over all points), `## Rejected Candidates` (when there are any),
/// `## Sampled Datapoints` (each `### Datapoint j` as a direct prompt shows the point, then
/// `### Candidate Predictions`), `## Output Format` (`<winner>`, `<rationale>`, `<feedback>`).
/// `candidates` are listed in the order given; `sampled` are indices into `points`.
pub fn judge_messages(
    ctx: &MethodContext,
    signal: Signal,
    points: &[EvaluationPoint],
    candidates: &[JudgeCandidate<'_>],
    rejected: &[&str],
    sampled: &[usize],
) -> Vec<Message> {
    let mut system = vec![
        "You are selecting the most useful dense-signal candidate for a reinforcement learning environment."
            .to_string(),
        signal_fragment(ctx, signal),
        "Judge candidate behavior from predicted values and diagnostics. Do not infer quality from code style because \
         candidate code is not shown."
            .to_string(),
    ];
    system.extend(system_tail(ctx));
    let system = system.join("\n\n");
    let mut parts = vec![
        format!(
            "## Selection Rule\nChoose the candidate whose predictions are the most appropriate and useful {} \
             estimates. Prefer candidates that provide discriminative, stable, non-collapsed values and that match \
             the intended semantics of the signal on the sampled datapoints.",
            signal_name(signal)
        ),
        "## Candidate Summaries".to_string(),
    ];
    for c in candidates {
        parts.push(CandidateStats::of(c.values, None).summary(c.label));
    }
    if !rejected.is_empty() {
        let mut block = vec!["## Rejected Candidates".to_string()];
        for (i, reason) in rejected.iter().enumerate() {
            block.push(format!(
                "### Rejected Candidate {}\n- Status: invalid\n- Reason: {reason}",
                i + 1
            ));
        }
        parts.push(block.join("\n\n"));
    }
    parts.push("## Sampled Datapoints".into());
    let text_only = PromptOptions::default();
    for (j, &i) in sampled.iter().enumerate() {
        let mut sections: Vec<String> = judge_point_parts(&points[i], ctx, signal, &text_only)
            .into_iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(text),
                Part::Image { .. } => None,
            })
            .collect();
        let mut preds = vec!["### Candidate Predictions".to_string()];
        for c in candidates {
            preds.push(format!(
                "Candidate {}: {}",
                c.label,
                format_g6(c.values.get(i).copied().unwrap_or(f64::NAN))
            ));
        }
        sections.push(preds.join("\n"));
        parts.push(format!("### Datapoint {}\n\n{}", j + 1, sections.join("\n\n")));
    }
    parts.push(
        "## Output Format\nRespond with:\n<winner>INTEGER</winner>\n<rationale>Short explanation of why the winner is \
         best.</rationale>\n<feedback>Concrete guidance for improving the next iteration.</feedback>"
            .into(),
    );
    vec![
        Message::text(Role::System, system),
        Message::text(Role::User, parts.join("\n\n")),
    ]
}

/// The label in the judge's first `<winner>N</winner>` tag (any case, spaces allowed).
pub fn parse_winner(text: &str) -> Option<usize> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r"(?is)<winner>\s*(\d+)\s*</winner>").expect("a valid regex"));
    re.captures(text)?.get(1)?.as_str().parse().ok()
}

/// Runs Eureka on `points` and returns every round and the winner. The candidates of a
/// round run `cfg.concurrency` at a time; see [`EurekaConfig`] for the worst-case time.
///
/// # Errors
/// The sandbox cannot run at all (bubblewrap missing), or a point cannot be scored for a
/// reason outside the candidate.
pub async fn run_eureka(
    backend: Arc<dyn Backend>,
    ctx: &MethodContext,
    signal: Signal,
    points: &[EvaluationPoint],
    cfg: &EurekaConfig,
) -> Result<EurekaResult> {
    if points.is_empty() {
        return Err(CoreError::Empty("eureka needs points".into()));
    }
    let mut rounds: Vec<EurekaRound> = Vec::new();
    // The previous winner with its predictions: judged again in the next round.
    let mut incumbent: Option<(GeneratedSample, CandidateStats, Vec<f64>)> = None;
    let judge_sampling = Sampling {
        temperature: Some(0.0),
        top_p: Some(1.0),
        ..cfg.sampling.clone()
    };
    for it in 0..cfg.iterations {
        let prev = rounds.last();
        let messages = generation_messages(
            ctx,
            signal,
            &cfg.prompt,
            it + 1,
            cfg.iterations,
            prev.map(|r| r.candidates[r.winner].0.source.clone().unwrap_or_default()),
            prev.map(reflection),
        );
        let reqs: Vec<ChatRequest> = (0..cfg.candidates)
            .map(|j| ChatRequest {
                messages: messages.clone(),
                sampling: Sampling {
                    seed: Some((it * cfg.candidates + j) as u64),
                    ..cfg.sampling.clone()
                },
            })
            .collect();
        let replies = backend.chat_batch(&reqs).await;
        let samples: Vec<GeneratedSample> = replies
            .into_iter()
            .enumerate()
            .map(|(j, r)| GeneratedSample::from_reply(it * cfg.candidates + j, r))
            .collect();
        let mut evaluated: Vec<(GeneratedSample, CandidateStats, Vec<f64>)> = futures::stream::iter(samples)
            .map(|sample| run_candidate(sample, signal, points, ctx, &cfg.sandbox))
            .buffered(cfg.concurrency.max(1))
            .try_collect()
            .await?;
        let any_new = evaluated.iter().any(|e| e.1.invalid.is_none());
        let incumbent_at = incumbent.take().map(|inc| {
            evaluated.push(inc);
            evaluated.len() - 1
        });
        // The judge sees the valid candidates (the incumbent last) under shuffled labels.
        let valid: Vec<usize> = (0..evaluated.len())
            .filter(|&k| evaluated[k].1.invalid.is_none())
            .collect();
        let rejected: Vec<&str> = evaluated.iter().filter_map(|e| e.1.invalid.as_deref()).collect();
        let order = judge_labels(cfg.seed, points, it, valid.len());
        let labels: Vec<(usize, usize)> = order.iter().enumerate().map(|(j, &v)| (j + 1, valid[v])).collect();
        let sampled = sample_point_indices(cfg.seed, points, it, cfg.judge_points);
        let shown: Vec<JudgeCandidate<'_>> = labels
            .iter()
            .map(|&(label, k)| JudgeCandidate {
                label,
                values: &evaluated[k].2,
            })
            .collect();
        // As published, a later round without a usable new candidate is not judged.
        let judge = if labels.is_empty() || (!any_new && incumbent_at.is_some()) {
            None
        } else {
            Some(
                backend
                    .chat(&ChatRequest {
                        messages: judge_messages(ctx, signal, points, &shown, &rejected, &sampled),
                        sampling: judge_sampling.clone(),
                    })
                    .await,
            )
        };
        let chosen = |text: &str| -> Option<usize> {
            let w = parse_winner(text)?;
            labels.iter().find(|(l, _)| *l == w).map(|&(_, k)| k)
        };
        let keep = |evaluated: &[(GeneratedSample, CandidateStats, Vec<f64>)]| {
            incumbent_at.unwrap_or_else(|| fallback(evaluated))
        };
        let (winner, judged, feedback, rationale) = match judge {
            Some(Ok(resp)) => {
                let feedback = last_tag(&resp.text, "feedback").unwrap_or_default();
                let rationale = last_tag(&resp.text, "rationale").unwrap_or_default();
                match chosen(&resp.text) {
                    Some(k) => (k, true, feedback, rationale),
                    None => (keep(&evaluated), false, feedback, rationale),
                }
            }
            _ => (keep(&evaluated), false, String::new(), String::new()),
        };
        incumbent = Some(evaluated[winner].clone());
        rounds.push(EurekaRound {
            iteration: it,
            candidates: evaluated.into_iter().map(|(g, s, _)| (g, s)).collect(),
            winner,
            incumbent: incumbent_at,
            labels,
            sampled,
            judged,
            feedback,
            rationale,
        });
        // As published, the search stops when a later round brings no judged winner (no
        // usable new candidate, or a judge answer without a known winner): the incumbent stays.
        if !judged && incumbent_at.is_some() {
            break;
        }
    }
    let last = rounds
        .last()
        .ok_or_else(|| CoreError::Empty("eureka needs at least one iteration".into()))?;
    let best = last.candidates[last.winner].0.clone();
    Ok(EurekaResult { rounds, best })
}

/// The code request of round `iteration` (from 1) of `total`, as published: the codegen
/// system prompt with `## Iterative Search`; a user prompt of `## Search Iteration`,
/// `## Function Contract` (a float, or a float with named components), `## Return Example`,
/// from the second round `## Current Best Code` and `## Judge Feedback`, the preset's
/// `## Constraints` and the codegen closing.
pub fn generation_messages(
    ctx: &MethodContext,
    signal: Signal,
    opts: &PromptOptions,
    iteration: usize,
    total: usize,
    best_code: Option<String>,
    reflection: Option<String>,
) -> Vec<Message> {
    let mut system = codegen_messages(ctx, signal, opts)
        .into_iter()
        .next()
        .map(|m| m.joined_text())
        .unwrap_or_default();
    system.push_str(
        "\n\n## Iterative Search\nYou are participating in an iterative code-search loop. Each proposed candidate will \
         be executed on benchmark datapoints, judged from its predicted values, and the winning code plus feedback may \
         be shown back to you in the next iteration. Improve usefulness of the signal based on behavior, not code \
         aesthetics.",
    );
    let params: Vec<String> = super::params_for(signal, ctx.include_next_state)
        .iter()
        .map(|p| format!("{p}: str"))
        .collect();
    let definition = format!("def signal_function({}):", params.join(", "));
    let mut parts = vec![
        format!(
            "## Search Iteration\nIteration {iteration} of {total}. Write one candidate Python function for estimating \
             the {}.",
            crate::llm::prompt::signal_name(signal)
        ),
        format!(
            "## Function Contract\nThe function definition must start with:\n```python\n{definition}\n```\n\nThe \
             function may return either:\n1. a single float, which is the actual signal value\n2. a tuple \
             ``(float, dict[str, float])`` where the first float is the actual signal value and the dictionary \
             contains named additive components used only for search-time feedback.\n\nIf you return a dictionary, \
             use short stable snake_case keys and make the scalar total equal to the sum of the component values. \
             Build the components dictionary with explicit literal keys — do NOT use `locals()`, `globals()`, or \
             `vars()` (they are unavailable in the sandbox and raise NameError)."
        ),
        format!(
            "## Return Example\n```python\n{definition}\n    progress_reward = 0.4\n    safety_penalty = -0.1\n    \
             total = progress_reward + safety_penalty\n    return total, {{\n        \"progress_reward\": \
             progress_reward,\n        \"safety_penalty\": safety_penalty,\n    }}\n```"
        ),
    ];
    if let Some(code) = best_code {
        parts.push(format!(
            "## Current Best Code\nThis is the current best candidate from the previous iteration. Use it as a \
             starting point and improve it.\n\n```python\n{code}\n```"
        ));
    }
    if let Some(r) = reflection.filter(|r| !r.is_empty()) {
        parts.push(format!("## Judge Feedback\n{r}"));
    }
    if let Some(c) = opts.preset.codegen_constraints() {
        parts.push(format!("## Constraints\n{c}"));
    }
    // (Published: thinking off drops only a leading "After any reasoning, ", which this
    // closing does not start with.)
    parts.push(super::CODEGEN_CLOSING.to_string());
    vec![
        Message::text(Role::System, system),
        Message::text(Role::User, parts.join("\n\n")),
    ]
}

/// The judge's feedback on the previous round's winner, as published (`_build_reflection`):
/// `### Judge Rationale`, `### Improvement Feedback`, `### Winner Diagnostics` and, when the
/// winner failed on a point, `### Runtime Error` with the exception.
pub fn reflection(prev: &EurekaRound) -> String {
    let (_, stats) = &prev.candidates[prev.winner];
    let mut parts = Vec::new();
    if !prev.rationale.is_empty() {
        parts.push(format!("### Judge Rationale\n{}", prev.rationale));
    }
    if !prev.feedback.is_empty() {
        parts.push(format!("### Improvement Feedback\n{}", prev.feedback));
    }
    let summary = stats.summary(0);
    let diagnostics: Vec<&str> = summary.lines().skip(1).collect();
    parts.push(format!("### Winner Diagnostics\n{}", diagnostics.join("\n")));
    if let Some(e) = &stats.first_error {
        parts.push(format!(
            "### Runtime Error\nThe selected candidate raised the following exception while evaluating at least one \
             datapoint. Fix the cause in the next iteration:\n```\n{e}\n```"
        ));
    }
    parts.join("\n\n")
}

/// Runs one candidate on every point and summarises its outputs; an abandoned candidate
/// ([`SandboxConfig::abandon_after`]) is rejected with the reason.
async fn run_candidate(
    sample: GeneratedSample,
    signal: Signal,
    points: &[EvaluationPoint],
    ctx: &MethodContext,
    sandbox: &SandboxConfig,
) -> Result<(GeneratedSample, CandidateStats, Vec<f64>)> {
    let m = CodeSample::new(sample.clone(), signal, sandbox.clone(), "eureka").with_next_state(ctx.include_next_state);
    match m.check().await {
        Err(e) => return Err(CoreError::Method(qval_core::error::MethodError::from_error(e))),
        Ok(Err(reason)) => {
            m.close().await;
            let values = vec![f64::NAN; points.len()];
            let mut stats = CandidateStats::of(&values, Some(reason.clone()));
            stats.invalid = Some(reason);
            return Ok((sample, stats, values));
        }
        Ok(Ok(())) => {}
    }
    let preds = predict(&m, points, ctx, &StageOptions::default()).await;
    let abandoned = m.abandoned().await;
    m.close().await;
    let preds = preds?;
    let values: Vec<f64> = preds.iter().map(|p| p.value).collect();
    let first_error = preds.iter().find_map(|p| p.error.clone());
    let mut stats = CandidateStats::of(&values, first_error);
    // A candidate whose calls kept timing out was stopped before most points: it is no
    // more usable than one that does not load, and the judge is told why.
    stats.invalid = abandoned;
    Ok((sample, stats, values))
}

fn fallback(round: &[(GeneratedSample, CandidateStats, Vec<f64>)]) -> usize {
    (0..round.len())
        .max_by(|&a, &b| {
            let (ka, kb) = (round[a].1.fallback_key(), round[b].1.fallback_key());
            ka.0.cmp(&kb.0)
                .then(ka.1.cmp(&kb.1))
                .then(ka.2.total_cmp(&kb.2))
                .then(b.cmp(&a))
        })
        .unwrap_or(0)
}
