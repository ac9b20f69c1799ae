//! Eureka: iterative improvement of generated signal functions. Each iteration asks for
//! several candidates (the first from the plain code prompt, later ones shown the previous
//! winner and the judge's feedback), runs every candidate on the points, summarises each
//! run (finite and NaN counts, min, max, mean, std, collapsed), and lets an LLM judge pick a
//! winner with feedback for the next round. Labels are never shown to anyone.

use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::{CodeSample, GeneratedSample, SandboxConfig, codegen_messages};
use crate::llm::{Backend, ChatRequest, Message, Role, Sampling, extract_number, last_tag};
use qval_core::{CoreError, EvaluationPoint, MethodContext, Result, Signal, StageOptions, predict};

/// Parameters of [`run_eureka`].
///
/// | parameter | default |
/// |---|---|
/// | `iterations` | 16 |
/// | `candidates` | 8 per iteration |
/// | `concurrency` | 4 candidates run at once (each in its own worker) |
///
/// # Worst-case time
///
/// One sample costs at most its sandbox's `total_limit` plus one call and one worker start
/// past it ([`SandboxConfig`]): with the defaults (1 s per call, 600 s per sample) about
/// 600 + 1.5 + 11 + 11 (the first load) = 624 s, however hostile the code. A round runs
/// its candidates `concurrency` at a time, so a run costs at most
/// `iterations x ceil(candidates / concurrency) x 624 s` plus the LLM calls: with the
/// published 16 x 8 and concurrency 4, 32 x 624 s = about 5.5 hours on entirely hostile
/// code (one at a time it would be 22 hours). Lower `sandbox.total_limit` for a tighter
/// budget: a well-behaved sample needs milliseconds per point.
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
    /// Sampling of the code requests (seeds are set per candidate).
    pub sampling: Sampling,
}

impl EurekaConfig {
    /// The published sizes (16 iterations x 8 candidates).
    pub fn new(sandbox: SandboxConfig) -> Self {
        EurekaConfig {
            iterations: 16,
            candidates: 8,
            concurrency: 4,
            sandbox,
            sampling: Sampling::default(),
        }
    }
}

/// What a candidate's outputs look like.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateStats {
    /// Points with a number.
    pub finite: usize,
    /// Points without one.
    pub nan: usize,
    /// Smallest output.
    pub min: f64,
    /// Largest output.
    pub max: f64,
    /// Mean output.
    pub mean: f64,
    /// Standard deviation of the outputs.
    pub std: f64,
    /// All finite outputs are equal (the candidate ranks nothing).
    pub collapsed: bool,
    /// The first failure reason, if any.
    pub first_error: Option<String>,
}

impl CandidateStats {
    fn of(values: &[f64], first_error: Option<String>) -> Self {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let n = finite.len();
        let mean = if n > 0 {
            finite.iter().sum::<f64>() / n as f64
        } else {
            f64::NAN
        };
        let std = if n > 0 {
            (finite.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64).sqrt()
        } else {
            f64::NAN
        };
        CandidateStats {
            finite: n,
            nan: values.len() - n,
            min: finite.iter().copied().fold(f64::INFINITY, f64::min),
            max: finite.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            mean,
            std,
            collapsed: n == 0 || finite.iter().all(|v| *v == finite[0]),
            first_error,
        }
    }

    fn line(&self, k: usize) -> String {
        format!(
            "Candidate {k}: finite={} nan={} min={:.4} max={:.4} mean={:.4} std={:.4} collapsed={}{}",
            self.finite,
            self.nan,
            self.min,
            self.max,
            self.mean,
            self.std,
            self.collapsed,
            self.first_error
                .as_ref()
                .map(|e| format!(" first_error={e:?}"))
                .unwrap_or_default()
        )
    }

    /// Fallback ranking when the judge cannot be read: fewest failures, not collapsed, most
    /// spread.
    fn fallback_key(&self) -> (bool, usize, f64) {
        (
            !self.collapsed,
            self.finite,
            if self.std.is_finite() { self.std } else { 0.0 },
        )
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
    /// Whether the judge chose (false: the fallback rule did).
    pub judged: bool,
    /// The judge's feedback for the next round.
    pub feedback: String,
}

/// The result: every round, and the final winner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EurekaResult {
    /// The rounds, in order.
    pub rounds: Vec<EurekaRound>,
    /// The last round's winner.
    pub best: GeneratedSample,
}

fn judge_messages(ctx: &MethodContext, signal: Signal, round: &[(GeneratedSample, CandidateStats)]) -> Vec<Message> {
    let system = format!(
        "You judge candidate Python signal functions that should rank agent steps by their value ({signal} in \
         {}). You see statistics of each candidate's outputs on the evaluation points (no true values). Prefer \
         candidates that give a number everywhere, do not collapse to a constant, and spread their outputs \
         meaningfully. Answer with the chosen candidate number in <answer></answer> tags and advice for the next \
         round in <feedback></feedback> tags.",
        ctx.env_name
    );
    let mut user = String::from("Candidate statistics:\n");
    for (k, (_, s)) in round.iter().enumerate() {
        user.push_str(&s.line(k + 1));
        user.push('\n');
    }
    vec![Message::text(Role::System, system), Message::text(Role::User, user)]
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
    let example = points
        .first()
        .ok_or_else(|| CoreError::Empty("eureka needs points".into()))?;
    let mut rounds: Vec<EurekaRound> = Vec::new();
    for it in 0..cfg.iterations {
        let mut messages = codegen_messages(ctx, signal, example);
        if let Some(prev) = rounds.last() {
            let best = &prev.candidates[prev.winner].0;
            messages.push(Message::text(
                Role::User,
                format!(
                    "The best function so far:\n```python\n{}\n```\nFeedback: {}\nWrite an improved version.",
                    best.source.clone().unwrap_or_default(),
                    prev.feedback
                ),
            ));
        }
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
        let round: Vec<(GeneratedSample, CandidateStats)> = futures::stream::iter(samples)
            .map(|sample| run_candidate(sample, signal, points, ctx, &cfg.sandbox))
            .buffered(cfg.concurrency.max(1))
            .try_collect()
            .await?;
        let judge = backend
            .chat(&ChatRequest {
                messages: judge_messages(ctx, signal, &round),
                sampling: cfg.sampling.clone(),
            })
            .await;
        let (winner, judged, feedback) = match judge {
            Ok(resp) => {
                let k = extract_number(last_tag(&resp.text, "answer").as_deref().unwrap_or(&resp.text)).ok();
                let feedback = last_tag(&resp.text, "feedback").unwrap_or_default();
                match k.map(|k| k as usize) {
                    Some(k) if (1..=round.len()).contains(&k) => (k - 1, true, feedback),
                    _ => (fallback(&round), false, feedback),
                }
            }
            Err(_) => (fallback(&round), false, String::new()),
        };
        rounds.push(EurekaRound {
            iteration: it,
            candidates: round,
            winner,
            judged,
            feedback,
        });
    }
    let last = rounds
        .last()
        .ok_or_else(|| CoreError::Empty("eureka needs at least one iteration".into()))?;
    let best = last.candidates[last.winner].0.clone();
    Ok(EurekaResult { rounds, best })
}

/// Runs one candidate on every point and summarises its outputs.
async fn run_candidate(
    sample: GeneratedSample,
    signal: Signal,
    points: &[EvaluationPoint],
    ctx: &MethodContext,
    sandbox: &SandboxConfig,
) -> Result<(GeneratedSample, CandidateStats)> {
    let m = CodeSample::new(sample.clone(), signal, sandbox.clone(), "eureka");
    if let Err(e) = m.check().await {
        return Err(CoreError::Method(e.to_string()));
    }
    let preds = predict(&m, points, ctx, &StageOptions::default()).await;
    m.close().await;
    let preds = preds?;
    let values: Vec<f64> = preds.iter().map(|p| p.value).collect();
    let first_error = preds.iter().find_map(|p| p.error.clone());
    Ok((sample, CandidateStats::of(&values, first_error)))
}

fn fallback(round: &[(GeneratedSample, CandidateStats)]) -> usize {
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
