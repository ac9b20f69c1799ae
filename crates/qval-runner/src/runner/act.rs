//! Stage 6, acting: every strategy of `[acting]` at every `k`, checkpointed per episode in
//! `acting/<strategy>-k<k>.jsonl`, then `acting.json` and a section of `summary.md`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::points::method_points;
use super::stages::{Inputs, Run};
use crate::acting::{ResolvedActing, StrategyKind};
use crate::envs::RunServices as _;
use crate::methods::{BuildInput, PointSet, ResolvedMethod};
use crate::{Result, RunnerError};
use qval_core::MethodContext;
use qval_core::acting::{Chooser, Episode, Guided, Uniform, Vote};
use qval_metrics::Summary;
use qval_metrics::acting::{
    ActingRow, ActingSummary, AlignmentGain, BASELINE, MethodEvidence, PAIRED_TEST, paired, rho_predicts_gain,
};

/// A strategy ready to run: its chooser, the context it is told, and its backend (for usage).
struct Ready {
    name: String,
    chooser: Arc<dyn Chooser>,
    ctx: MethodContext,
    backend: Option<String>,
}

impl Run<'_> {
    /// Stage 6: runs `[acting]` (when planned) and writes its results; `summary` is stage 5's,
    /// for each guided method's alignment. A shard runs its share of the episodes alone
    /// (`summary` is `None` then): `qval merge` merges them and writes the results.
    pub(crate) async fn act(&mut self, inputs: &Inputs<'_>, summary: Option<&Summary>) -> Result<()> {
        let plan = self.plan;
        let Some(acting) = &plan.acting else {
            return Ok(());
        };
        let share = plan.options.shard.unwrap_or(qval_core::Share::ALL);
        let ready = self.strategies(acting, inputs).await?;
        let dir = plan.work_dir.join("acting");
        std::fs::create_dir_all(&dir).map_err(|e| RunnerError::io("creating", &dir, e))?;
        let mut episodes: BTreeMap<(String, usize), Vec<Episode>> = BTreeMap::new();
        let mut usage: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let baseline = Ready {
            name: BASELINE.into(),
            chooser: Arc::new(Named(BASELINE, Uniform)),
            ctx: inputs.ctx.clone(),
            backend: None,
        };
        let mut runs: Vec<(&Ready, usize)> = vec![(&baseline, 1)];
        for &k in &acting.ks {
            for r in &ready {
                runs.push((r, k));
            }
        }
        for (r, k) in runs {
            let path = dir.join(format!("{}-k{k}.jsonl", r.name));
            let actor_backend = acting
                .actor
                .params
                .get("backend")
                .and_then(|b| b.as_str())
                .map(str::to_string);
            let before = self.usage(&[&actor_backend, &r.backend]);
            let t = std::time::Instant::now();
            let got = plan
                .env
                .act(
                    &acting.actor,
                    &*plan.services,
                    &*r.chooser,
                    &r.ctx,
                    &acting.tasks,
                    acting.config(k),
                    share,
                    &self.opts(path),
                )
                .await?;
            let after = self.usage(&[&actor_backend, &r.backend]);
            let u = usage.entry(r.name.clone()).or_default();
            u.0 += after.0 - before.0;
            u.1 += after.1 - before.1;
            let ok = got.iter().filter(|e| e.success).count();
            let llm = if actor_backend.is_some() || r.backend.is_some() {
                format!(", {} requests, {} tokens", after.0 - before.0, after.1 - before.1)
            } else {
                String::new()
            };
            self.say(&format!(
                "6. act       {} k={k}: {ok} of {} episodes succeeded{llm}, {:.2}s",
                r.name,
                got.len(),
                t.elapsed().as_secs_f64()
            ));
            episodes.insert((r.name.clone(), k), got);
        }
        let Some(summary) = summary else {
            return Ok(());
        };
        let result = summarize(acting, &ready, &episodes, summary, usage);
        let text = serde_json::to_string_pretty(&result).map_err(|e| RunnerError::plugin("acting.json", e))?;
        qval_core::io::write_atomic(&plan.run_dir.join("acting.json"), text.as_bytes())?;
        if !result.alignment.is_empty() {
            let svg = qval_metrics::plots::alignment_gain_svg("Alignment against acting gain", &result.alignment)
                .map_err(|e| RunnerError::plugin("the alignment-gain plot", e))?;
            let plots = plan.run_dir.join("summary_plots");
            qval_core::io::write_atomic(&plots.join("acting_alignment.svg"), svg.as_bytes())?;
            qval_metrics::plots::svg_to_png(&svg, &plots.join("acting_alignment.png"))?;
        }
        let section = result.markdown();
        self.append_summary(&section)?;
        self.say(section.trim_end());
        self.report.acting = Some(result);
        Ok(())
    }

    /// Requests and tokens so far of these backends.
    fn usage(&self, backends: &[&Option<String>]) -> (u64, u64) {
        let mut seen: Vec<&str> = Vec::new();
        let mut total = (0, 0);
        for b in backends.iter().filter_map(|b| b.as_deref()) {
            if !seen.contains(&b) {
                seen.push(b);
                let u = self.plan.services.usage(b);
                total = (total.0 + u.0, total.1 + u.1);
            }
        }
        total
    }

    /// The strategies run at every `k` above 1, their guided methods built.
    async fn strategies(&self, acting: &ResolvedActing, inputs: &Inputs<'_>) -> Result<Vec<Ready>> {
        let plan = self.plan;
        let mut out = Vec::new();
        for s in &acting.strategies {
            let chooser: Arc<dyn Chooser> = match s.kind {
                StrategyKind::Baseline | StrategyKind::Random => Arc::new(Uniform),
                StrategyKind::Vote => Arc::new(Vote),
                StrategyKind::Usc(ref backend, chars) => {
                    plan.services.check_reachable(backend)?;
                    let b = plan.services.backend(backend)?;
                    out.push(Ready {
                        name: s.name.clone(),
                        chooser: Arc::new(qval_methods::prompting::Usc::new(b, chars)),
                        ctx: inputs.ctx.clone(),
                        backend: Some(backend.clone()),
                    });
                    continue;
                }
                StrategyKind::Guided(i)
                    if plan.method_type(&plan.methods[i]).point_set(&plan.methods[i]) == PointSet::Candidates =>
                {
                    let m = &plan.methods[i];
                    let backend = match &m.backend {
                        Some(b) => {
                            plan.services.check_reachable(b)?;
                            Some(plan.services.backend(b)?)
                        }
                        None => None,
                    };
                    let dir = plan.work_dir.join("methods").join(&m.name).join("acting");
                    std::fs::create_dir_all(&dir).map_err(|e| RunnerError::io("creating", &dir, e))?;
                    out.push(Ready {
                        name: s.name.clone(),
                        chooser: Arc::new(PerState {
                            kind: plan.method_type(m),
                            method: m.clone(),
                            env: plan.env.clone(),
                            services: plan.services.clone(),
                            backend,
                            seed: plan.experiment.seed,
                            dir,
                        }),
                        ctx: m.context(inputs.ctx),
                        backend: m.backend.clone(),
                    });
                    continue;
                }
                StrategyKind::Guided(i) => {
                    let m = &plan.methods[i];
                    let (on, _) = method_points(plan, m, inputs.points, inputs.dataset, inputs.candidates);
                    let ctx = m.context(inputs.ctx);
                    let mut built = self.build_method(m, inputs, &on, &ctx).await?;
                    if built.len() != 1 {
                        return Err(RunnerError::Usage(format!(
                            "`{}` builds {} methods; acting is guided by one (codegen-avg averages codegen's samples)",
                            m.name,
                            built.len()
                        )));
                    }
                    let method = built.remove(0);
                    out.push(Ready {
                        name: s.name.clone(),
                        chooser: Arc::new(Guided::new(s.name.clone(), method)),
                        ctx,
                        backend: m.backend.clone(),
                    });
                    continue;
                }
            };
            out.push(Ready {
                name: s.name.clone(),
                chooser,
                ctx: inputs.ctx.clone(),
                backend: None,
            });
        }
        Ok(out)
    }
}

/// A ranking-type method (ranking, sdpo, sdpo-gt, delta-belief) guiding: built anew on each
/// step's candidates, which it sees as the candidates of one state (ranking: the candidate
/// at rank p of n scores n - p, as published; the others: their own scores). sdpo-gt finds
/// no expert rollout from an acting state, and says so in its prompt, as published.
struct PerState {
    kind: Arc<dyn crate::methods::DynMethodType>,
    method: ResolvedMethod,
    env: Arc<dyn crate::envs::EnvPlugin>,
    services: Arc<super::Services>,
    backend: Option<Arc<dyn qval_llm::Backend>>,
    seed: u64,
    dir: std::path::PathBuf,
}

#[async_trait::async_trait]
impl Chooser for PerState {
    fn name(&self) -> String {
        self.method.name.clone()
    }
    async fn score(&self, candidates: &[qval_core::EvaluationPoint], ctx: &MethodContext) -> Vec<f64> {
        let state = candidates
            .first()
            .map(|c| {
                c.id.rsplit_once('-')
                    .map(|(s, _)| s.to_string())
                    .unwrap_or_else(|| c.id.clone())
            })
            .unwrap_or_default();
        let points: Vec<qval_core::EvaluationPoint> = candidates
            .iter()
            .map(|c| qval_core::EvaluationPoint {
                candidate_of: Some(state.clone()),
                ..c.clone()
            })
            .collect();
        let expert = std::collections::HashMap::new();
        let built = self
            .kind
            .build(BuildInput {
                method: &self.method,
                env: &*self.env,
                ctx,
                trajectories: &[],
                points: &points,
                backend: self.backend.clone(),
                expert: &expert,
                services: &*self.services,
                seed: self.seed,
                dir: self.dir.clone(),
            })
            .await;
        match built {
            Ok(methods) if methods.len() == 1 => methods[0]
                .evaluate_batch(&points, ctx)
                .await
                .into_iter()
                .map(|r| r.unwrap_or(f64::NAN))
                .collect(),
            _ => vec![f64::NAN; candidates.len()],
        }
    }
}

/// A chooser under another name (the baseline is a uniform draw among one).
struct Named<C>(&'static str, C);

#[async_trait::async_trait]
impl<C: Chooser> Chooser for Named<C> {
    fn name(&self) -> String {
        self.0.to_string()
    }
    async fn score(&self, candidates: &[qval_core::EvaluationPoint], ctx: &MethodContext) -> Vec<f64> {
        self.1.score(candidates, ctx).await
    }
}

/// Rows, paired comparisons and alignment against gain.
fn summarize(
    acting: &ResolvedActing,
    ready: &[Ready],
    episodes: &BTreeMap<(String, usize), Vec<Episode>>,
    summary: &Summary,
    usage: BTreeMap<String, (u64, u64)>,
) -> ActingSummary {
    let refs = |name: &str, k: usize| -> Vec<&Episode> {
        episodes
            .get(&(name.to_string(), k))
            .map(|v| v.iter().collect())
            .unwrap_or_default()
    };
    let seed = acting.config(1).seed();
    let mut rows = vec![ActingRow::of(BASELINE, 1, &refs(BASELINE, 1))];
    let mut compared = Vec::new();
    for &k in &acting.ks {
        for r in ready {
            rows.push(ActingRow::of(&r.name, k, &refs(&r.name, k)));
            let mine = refs(&r.name, k);
            if let Some(p) = paired((&r.name, k, &mine), (BASELINE, 1, &refs(BASELINE, 1)), seed) {
                compared.push(p);
            }
            if r.name != "random"
                && ready.iter().any(|o| o.name == "random")
                && let Some(p) = paired((&r.name, k, &mine), ("random", k, &refs("random", k)), seed)
            {
                compared.push(p);
            }
        }
    }
    let top = acting.ks.last().copied();
    let mut alignment = Vec::new();
    let mut evidence = Vec::new();
    for r in ready
        .iter()
        .filter(|r| !["random", "vote", "usc"].contains(&r.name.as_str()))
    {
        let (Some(k), Some((rho, interval, pairs))) = (top, alignment_of(summary, &r.name)) else {
            continue;
        };
        let Some(p) = paired((&r.name, k, &refs(&r.name, k)), (BASELINE, 1, &refs(BASELINE, 1)), seed) else {
            continue;
        };
        let base: BTreeMap<usize, bool> = refs(BASELINE, 1).iter().map(|e| (e.index, e.success)).collect();
        let gains = refs(&r.name, k)
            .iter()
            .filter_map(|e| {
                Some((
                    e.task.clone(),
                    f64::from(u8::from(e.success)) - f64::from(u8::from(*base.get(&e.index)?)),
                ))
            })
            .collect();
        alignment.push(AlignmentGain {
            method: r.name.clone(),
            rho,
            rho_interval: interval,
            gain: p.difference,
            gain_interval: p.interval,
        });
        evidence.push(MethodEvidence { pairs, gains });
    }
    let rho_predicts_gain = (!alignment.is_empty()).then(|| rho_predicts_gain(&alignment, &evidence, seed));
    ActingSummary {
        actor: acting.actor.kind.clone(),
        tasks: acting.tasks.len(),
        samples_per_task: acting.config(1).samples_per_task(),
        success_threshold: acting.config(1).success_threshold(),
        rows,
        paired: compared,
        paired_test: PAIRED_TEST.into(),
        alignment,
        rho_predicts_gain,
        usage,
    }
}

/// A method's Spearman rho against the first label set that evaluated it point by point,
/// its interval, and the (label, prediction) pairs behind it.
type Alignment = (f64, Option<(f64, f64)>, Vec<(f64, f64)>);

fn alignment_of(summary: &Summary, method: &str) -> Option<Alignment> {
    for est in summary.estimations.values() {
        let Some(qval_metrics::MethodEntry::Method(e)) = est.methods.get(method) else {
            continue;
        };
        let rho = e.correlations.spearman.as_ref()?.correlation?;
        let interval = e.interval("spearman").and_then(|[lo, hi]| Some((lo?, hi?)));
        let pairs: Vec<(f64, f64)> = est
            .labels()
            .into_iter()
            .zip(e.values())
            .filter(|(l, p)| l.is_finite() && p.is_finite())
            .collect();
        return Some((rho, interval, pairs));
    }
    None
}
