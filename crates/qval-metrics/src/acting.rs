//! What acting shows: per strategy and `k`, the success rate with a Wilson 95% interval and
//! the other figures of the published summary; paired comparisons between strategies on the
//! same episodes; and whether the methods that rank best are the ones that help most (each
//! guided method's alignment against its acting gain, and the rank correlation across
//! methods with a bootstrap interval).

use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::correlation::{CorrelationConfig, LengthPolicy, spearman};
use crate::special::binomial_cdf;
use qval_core::acting::Episode;

/// The strategy every one is compared with: one candidate per step.
pub const BASELINE: &str = "baseline";

/// Bootstrap resamples of the intervals of gains and of the alignment-gain correlation.
pub const RESAMPLES: usize = 2_000;

/// The Wilson score interval of `successes` of `n` at 95% (`[0, 1]` for `n = 0`).
pub fn wilson(successes: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let (n, p) = (n as f64, successes as f64 / n as f64);
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// One strategy at one `k`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActingRow {
    /// The strategy (`baseline`, `random`, `vote`, or a method's name).
    pub strategy: String,
    /// Candidates per step.
    pub k: usize,
    /// Episodes.
    pub episodes: usize,
    /// Episodes whose return reached the threshold.
    pub successes: usize,
    /// `successes / episodes`.
    pub success_rate: f64,
    /// Its Wilson 95% interval.
    pub interval: (f64, f64),
    /// Mean undiscounted return.
    pub mean_return: f64,
    /// Mean steps.
    pub mean_steps: f64,
    /// Mean candidates per step (failed samples left out).
    pub mean_candidates: f64,
    /// Steps whose choice the scores decided.
    pub scorer_steps: usize,
    /// Steps that fell back to a draw, by reason.
    pub fallback_steps: BTreeMap<String, usize>,
    /// Episodes that stopped early, with the first reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<(usize, String)>,
    /// Per task: episodes and successes.
    pub per_task: BTreeMap<String, (usize, usize)>,
}

impl ActingRow {
    /// The row of these episodes (all of one strategy and `k`).
    pub fn of(strategy: &str, k: usize, episodes: &[&Episode]) -> Self {
        let n = episodes.len();
        let successes = episodes.iter().filter(|e| e.success).count();
        let steps: usize = episodes.iter().map(|e| e.steps.len()).sum();
        let candidates: usize = episodes.iter().flat_map(|e| &e.steps).map(|s| s.candidates.len()).sum();
        let mut fallback_steps = BTreeMap::new();
        for s in episodes.iter().flat_map(|e| &e.steps) {
            if let Some(f) = &s.fallback {
                *fallback_steps.entry(f.clone()).or_insert(0) += 1;
            }
        }
        let mut per_task: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for e in episodes {
            let t = per_task.entry(e.task.clone()).or_default();
            t.0 += 1;
            t.1 += usize::from(e.success);
        }
        let failures: Vec<&String> = episodes.iter().filter_map(|e| e.failure.as_ref()).collect();
        let mean = |x: f64| if n == 0 { f64::NAN } else { x / n as f64 };
        ActingRow {
            strategy: strategy.to_string(),
            k,
            episodes: n,
            successes,
            success_rate: mean(successes as f64),
            interval: wilson(successes, n),
            mean_return: mean(episodes.iter().map(|e| e.total).sum()),
            mean_steps: mean(steps as f64),
            mean_candidates: if steps == 0 {
                f64::NAN
            } else {
                candidates as f64 / steps as f64
            },
            scorer_steps: episodes.iter().flat_map(|e| &e.steps).filter(|s| s.scored).count(),
            fallback_steps,
            failed: failures.first().map(|f| (failures.len(), (*f).clone())),
            per_task,
        }
    }
}

/// Two strategies on the same episodes (the same tasks, samples and first candidates).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedActing {
    /// The strategy compared (at `k`).
    pub a: String,
    /// Its `k`.
    pub k: usize,
    /// What it is compared with.
    pub b: String,
    /// The other's `k`.
    pub b_k: usize,
    /// Episodes paired.
    pub n: usize,
    /// Success rate of `a` minus that of `b`.
    pub difference: f64,
    /// Its 95% interval: percentile bootstrap over tasks (each task brings all its episodes).
    pub interval: (f64, f64),
    /// Episodes only `a` succeeded in.
    pub a_only: usize,
    /// Episodes only `b` succeeded in.
    pub b_only: usize,
    /// Two-sided exact McNemar test (binomial on the discordant pairs).
    pub p_value: f64,
}

/// Compares the episodes of `a` with those of `b`, paired by episode index.
pub fn paired(a: (&str, usize, &[&Episode]), b: (&str, usize, &[&Episode]), seed: u64) -> Option<PairedActing> {
    let by_index: BTreeMap<usize, &Episode> = b.2.iter().map(|e| (e.index, *e)).collect();
    let pairs: Vec<(&Episode, &Episode)> =
        a.2.iter()
            .filter_map(|e| Some((*e, *by_index.get(&e.index)?)))
            .collect();
    if pairs.is_empty() {
        return None;
    }
    let a_only = pairs.iter().filter(|(x, y)| x.success && !y.success).count();
    let b_only = pairs.iter().filter(|(x, y)| !x.success && y.success).count();
    let discordant = (a_only + b_only) as u64;
    let p_value = if discordant == 0 {
        1.0
    } else {
        (2.0 * binomial_cdf(a_only.min(b_only) as u64, discordant, 0.5)).min(1.0)
    };
    let diffs: Vec<(String, f64)> = pairs
        .iter()
        .map(|(x, y)| {
            (
                x.task.clone(),
                f64::from(u8::from(x.success)) - f64::from(u8::from(y.success)),
            )
        })
        .collect();
    Some(PairedActing {
        a: a.0.to_string(),
        k: a.1,
        b: b.0.to_string(),
        b_k: b.1,
        n: pairs.len(),
        difference: (a_only as f64 - b_only as f64) / pairs.len() as f64,
        interval: task_bootstrap(&diffs, seed),
        a_only,
        b_only,
        p_value,
    })
}

/// The percentile 95% interval of the mean of `values` (each tagged with its task), over
/// [`RESAMPLES`] resamples of the tasks.
fn task_bootstrap(values: &[(String, f64)], seed: u64) -> (f64, f64) {
    let mut by_task: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (t, v) in values {
        by_task.entry(t).or_default().push(*v);
    }
    let groups: Vec<&Vec<f64>> = by_task.values().collect();
    let mut rng = qval_core::QRng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let (mut sum, mut n) = (0.0, 0usize);
            for _ in 0..groups.len() {
                let g = groups[rng.random_range(0..groups.len())];
                sum += g.iter().sum::<f64>();
                n += g.len();
            }
            sum / n.max(1) as f64
        })
        .collect();
    percentiles(&mut means)
}

/// The 2.5th and 97.5th percentiles (NaN-free input).
fn percentiles(x: &mut [f64]) -> (f64, f64) {
    x.sort_by(f64::total_cmp);
    let at = |q: f64| x[((q * (x.len() - 1) as f64).round() as usize).min(x.len() - 1)];
    (at(0.025), at(0.975))
}

/// A guided method's alignment (stage 5) beside its acting gain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlignmentGain {
    /// The method (its strategy's name).
    pub method: String,
    /// Spearman's rho against the label set, with its interval (stage 5's).
    pub rho: f64,
    /// The interval of `rho`.
    pub rho_interval: Option<(f64, f64)>,
    /// Success rate at the largest `k` minus at `k = 1`.
    pub gain: f64,
    /// Its paired interval over tasks.
    pub gain_interval: (f64, f64),
}

impl AlignmentGain {
    /// Its rho and gain as table cells: `0.892 [0.776, 0.986]`, `+0.875 [+0.688, +1.000]`.
    fn cells(&self) -> (String, String) {
        let rho = match self.rho_interval {
            Some(i) => interval_text(self.rho, i),
            None => format!("{:.3}", self.rho),
        };
        let (lo, hi) = self.gain_interval;
        (rho, format!("{:+.3} [{lo:+.3}, {hi:+.3}]", self.gain))
    }
}

/// Whether alignment predicted the gain: Spearman's rho across methods between their
/// alignment and their gain, with a bootstrap interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RhoPredictsGain {
    /// Methods compared.
    pub methods: usize,
    /// Spearman's rho across methods (NaN with fewer than 3 or no spread).
    pub rho: f64,
    /// Its 95% percentile interval: each resample draws the tasks (for the gains) and the
    /// points (for the alignments) again, together.
    pub interval: Option<(f64, f64)>,
}

/// What one method brings to the alignment-gain correlation: its points' labels and
/// predictions (aligned), and its episodes at the largest `k` and at `k = 1` (paired, with
/// their tasks).
pub struct MethodEvidence {
    /// Labels and predictions of the points it was evaluated on.
    pub pairs: Vec<(f64, f64)>,
    /// Per paired episode: its task, and its success at the largest `k` minus at `k = 1`.
    pub gains: Vec<(String, f64)>,
}

/// Spearman's rho across methods between alignment and gain, with the joint bootstrap.
pub fn rho_predicts_gain(rows: &[AlignmentGain], evidence: &[MethodEvidence], seed: u64) -> RhoPredictsGain {
    let cfg = CorrelationConfig {
        min_pairs: 3,
        lengths: LengthPolicy::Error,
    };
    let across = |rho: &[f64], gain: &[f64]| spearman(rho, gain, &cfg).map(|c| c.value).unwrap_or(f64::NAN);
    let rho: Vec<f64> = rows.iter().map(|r| r.rho).collect();
    let gain: Vec<f64> = rows.iter().map(|r| r.gain).collect();
    let point = across(&rho, &gain);
    let interval = (point.is_finite() && evidence.len() == rows.len()).then(|| {
        let mut rng = qval_core::QRng::seed_from_u64(seed);
        let tasks: Vec<String> = {
            let mut t: Vec<String> = evidence
                .iter()
                .flat_map(|m| m.gains.iter().map(|g| g.0.clone()))
                .collect();
            t.sort();
            t.dedup();
            t
        };
        let n_points = evidence.iter().map(|m| m.pairs.len()).min().unwrap_or(0);
        let mut draws: Vec<f64> = (0..RESAMPLES)
            .filter_map(|_| {
                let picked_tasks: Vec<&String> = (0..tasks.len())
                    .map(|_| &tasks[rng.random_range(0..tasks.len())])
                    .collect();
                let picked_points: Vec<usize> = (0..n_points).map(|_| rng.random_range(0..n_points)).collect();
                let mut rhos = Vec::new();
                let mut gains = Vec::new();
                for m in evidence {
                    let (x, y): (Vec<f64>, Vec<f64>) = picked_points.iter().map(|&i| m.pairs[i]).unzip();
                    rhos.push(spearman(&x, &y, &cfg).map(|c| c.value).unwrap_or(f64::NAN));
                    let (mut s, mut n) = (0.0, 0usize);
                    for t in &picked_tasks {
                        for g in m.gains.iter().filter(|g| &&g.0 == t) {
                            s += g.1;
                            n += 1;
                        }
                    }
                    gains.push(s / n.max(1) as f64);
                }
                let r = across(&rhos, &gains);
                r.is_finite().then_some(r)
            })
            .collect();
        if draws.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            percentiles(&mut draws)
        }
    });
    RhoPredictsGain {
        methods: rows.len(),
        rho: point,
        interval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_the_textbook_values() {
        // 8 of 10: the Wilson 95% interval is [0.490, 0.943].
        let (lo, hi) = wilson(8, 10);
        assert!((lo - 0.4901).abs() < 1e-4 && (hi - 0.9433).abs() < 1e-4, "{lo} {hi}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
        let (lo, hi) = wilson(0, 20);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.1611).abs() < 1e-4, "{hi}");
    }
}

/// What `acting.json` holds: the setting, a row per strategy and `k`, the paired
/// comparisons, and alignment against gain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActingSummary {
    /// The actor's name.
    pub actor: String,
    /// Tasks acted on.
    pub tasks: usize,
    /// Episodes per task.
    pub samples_per_task: usize,
    /// The undiscounted return that counts as a success.
    pub success_threshold: f64,
    /// Per strategy and `k`.
    pub rows: Vec<ActingRow>,
    /// Strategies compared on the same episodes.
    pub paired: Vec<PairedActing>,
    /// The test and interval of [`ActingSummary::paired`], in words.
    pub paired_test: String,
    /// Each guided method's alignment and gain.
    pub alignment: Vec<AlignmentGain>,
    /// Whether alignment predicted the gain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rho_predicts_gain: Option<RhoPredictsGain>,
    /// Requests and tokens of each strategy's runs (actor and scorer) in this invocation,
    /// where an LLM served: not written to `acting.json` (a resumed run asks only what was
    /// left), shown as each run goes.
    #[serde(skip)]
    pub usage: BTreeMap<String, (u64, u64)>,
}

/// What [`ActingSummary::paired_test`] says.
pub const PAIRED_TEST: &str = "exact McNemar test (two-sided binomial on the episodes where exactly one succeeded); \
                               interval: percentile bootstrap over tasks";

fn interval_text(x: f64, (lo, hi): (f64, f64)) -> String {
    format!("{x:.3} [{lo:.3}, {hi:.3}]")
}

impl ActingSummary {
    /// The Markdown section of `summary.md`.
    pub fn markdown(&self) -> String {
        let mut out = String::from("\n## Acting: the signal chooses among k candidates\n\n");
        out.push_str(&format!(
            "Actor `{}`, {} tasks x {} episodes; success: undiscounted return >= {}.\n\n",
            self.actor, self.tasks, self.samples_per_task, self.success_threshold
        ));
        out.push_str("| strategy | k | episodes | success [95% CI] | mean return | mean steps | candidates/step | steps the scores decided | fallback steps |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let fallbacks: usize = r.fallback_steps.values().sum();
            out.push_str(&format!(
                "| {} | {} | {} | {} | {:.3} | {:.1} | {:.2} | {} | {} |\n",
                r.strategy,
                r.k,
                r.episodes,
                interval_text(r.success_rate, r.interval),
                r.mean_return,
                r.mean_steps,
                r.mean_candidates,
                r.scorer_steps,
                fallbacks
            ));
        }
        for r in self.rows.iter().filter(|r| r.failed.is_some()) {
            let (n, why) = r.failed.as_ref().expect("filtered");
            out.push_str(&format!(
                "\n{} at k = {}: {n} episodes stopped early: {why} (first of {n})\n",
                r.strategy, r.k
            ));
        }
        if !self.paired.is_empty() {
            out.push_str(&format!("\n### Paired comparisons\n\n{}.\n\n", self.paired_test));
            out.push_str("| strategy | against | episodes | difference [95% CI] | only it | only the other | p |\n|---|---|---|---|---|---|---|\n");
            for p in &self.paired {
                out.push_str(&format!(
                    "| {} (k={}) | {} (k={}) | {} | {:+.3} [{:+.3}, {:+.3}] | {} | {} | {} |\n",
                    p.a,
                    p.k,
                    p.b,
                    p.b_k,
                    p.n,
                    p.difference,
                    p.interval.0,
                    p.interval.1,
                    p.a_only,
                    p.b_only,
                    if p.p_value < 0.001 {
                        "<0.001".to_string()
                    } else {
                        format!("{:.3}", p.p_value)
                    }
                ));
            }
        }
        out.push_str(&self.alignment_markdown());
        out
    }

    fn alignment_markdown(&self) -> String {
        if self.alignment.is_empty() {
            return String::new();
        }
        let mut out = String::from("\n### Does alignment predict the gain?\n\n");
        out.push_str(
            "| method | rho [95% CI] | gain: success at the largest k minus k = 1 [95% CI] |\n|---|---|---|\n",
        );
        for a in &self.alignment {
            let (rho, gain) = a.cells();
            out.push_str(&format!("| {} | {rho} | {gain} |\n", a.method));
        }
        if let Some(r) = &self.rho_predicts_gain {
            let verdict = match r.interval {
                _ if !r.rho.is_finite() => "too few methods, or no spread, to tell".to_string(),
                Some((lo, _)) if lo > 0.0 => "the methods that rank best helped most".to_string(),
                Some((_, hi)) if hi < 0.0 => "alignment predicted the gain the wrong way round".to_string(),
                _ => "alignment did not clearly predict the gain here".to_string(),
            };
            let ci = r
                .interval
                .map(|(lo, hi)| format!(" [{lo:.3}, {hi:.3}]"))
                .unwrap_or_default();
            out.push_str(&format!(
                "\nSpearman's rho across {} methods between alignment and gain: {:.3}{ci} (bootstrap resampling tasks and points together): {verdict}.\n",
                r.methods, r.rho
            ));
        }
        out
    }
}

/// The cross-run section of `qval report`: every run's guided methods, their alignment and
/// gain, each run's rank correlation across its methods, and the one across all of them.
pub fn cross_run_markdown(runs: &[(String, ActingSummary)]) -> String {
    let mut out = String::from("\n## Alignment against acting gain\n\n");
    out.push_str("| run | method | rho [95% CI] | gain [95% CI] |\n|---|---|---|---|\n");
    let (mut rho, mut gain) = (Vec::new(), Vec::new());
    for (name, a) in runs {
        for g in &a.alignment {
            let (r, g_text) = g.cells();
            out.push_str(&format!("| {name} | {} | {r} | {g_text} |\n", g.method));
            rho.push(g.rho);
            gain.push(g.gain);
        }
    }
    out.push('\n');
    for (name, a) in runs {
        if let Some(r) = &a.rho_predicts_gain {
            let ci = r
                .interval
                .map(|(lo, hi)| format!(" [{lo:.3}, {hi:.3}]"))
                .unwrap_or_default();
            out.push_str(&format!(
                "- {name}: rho across {} methods {:.3}{ci}\n",
                r.methods, r.rho
            ));
        }
    }
    let cfg = CorrelationConfig {
        min_pairs: 3,
        lengths: LengthPolicy::Error,
    };
    let all = spearman(&rho, &gain, &cfg).map(|c| c.value).unwrap_or(f64::NAN);
    out.push_str(&format!(
        "- all runs together: rho across {} (run, method) pairs {:.3} (no interval: runs differ in tasks)\n",
        rho.len(),
        all
    ));
    out
}
