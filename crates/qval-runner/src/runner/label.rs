//! Stage 3, labels: every label set, sharing one rollout store (label sets that differ only
//! in aggregation, k, discount or step penalty run each rollout once; a second run on the
//! same points reads them back), with what each set cost; then pass@k of the reference
//! policy when the experiment asks for it.

use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::plan::ResolvedLabels;
use super::points::{Candidates, share_of_method};
use super::stage::Stage;
use super::stages::{Labelled, Run, label_set, timing};
use crate::envs::RolloutLabels;
use crate::label_check::mcts_config;
use crate::passk_spec::{PasskSource, ResolvedPassk};
use crate::spec::{LabelMethod, LabelSpec};
use crate::{Result, RunnerError};
use qval_core::io::{Kind, Metadata, read_jsonl, write_jsonl};
use qval_core::rollout::{Rollout, RolloutStore, Rollouts};
use qval_core::stage::layout;
use qval_core::{EvaluationPoint, Label, LabelConfig, Labeler, MvmcConfig, Signal, Trajectory};
use qval_metrics::LabelSet;
use qval_metrics::passk::{Attempt, PassAtK};

impl Run<'_> {
    /// The run's rollouts, in its store.
    pub(crate) fn rollouts(&self) -> Arc<Rollouts> {
        Arc::new(Rollouts::stored(RolloutStore::new(&self.plan.rollout_store)))
    }

    /// Stage 3, label every label set (a shard its share of the points).
    pub(crate) async fn label(
        &mut self,
        points: &[EvaluationPoint],
        trajectories: &[Trajectory],
        dataset: &str,
        candidates: Option<&Candidates>,
    ) -> Result<Labelled> {
        let mut out = Labelled {
            sets: Vec::new(),
            expert: HashMap::new(),
            labelers: HashMap::new(),
        };
        let rollouts = self.rollouts();
        for l in &self.plan.labels {
            if l.spec.signal == Signal::ShapedReward {
                self.returns_set(l, trajectories, dataset, &mut out)?;
                continue;
            }
            self.label_set(l, points, dataset, candidates, &rollouts, &mut out)
                .await?;
        }
        Ok(out)
    }

    async fn label_set(
        &mut self,
        l: &ResolvedLabels,
        points: &[EvaluationPoint],
        dataset: &str,
        candidates: Option<&Candidates>,
        rollouts: &Arc<Rollouts>,
        out: &mut Labelled,
    ) -> Result<()> {
        let plan = self.plan;
        let (share, work) = (plan.options.shard, &plan.work_dir);
        let stage = Stage::Label(l.name.clone());
        let t = Instant::now();
        let fresh = self.start(&stage)?;
        let (counts0, usage0) = (rollouts.counts(), plan.services.total_usage());
        let labeler = self.labeler(l, rollouts.clone())?;
        let config = LabelConfig::new(l.spec.max_aborted_share)?;
        let mine = match share {
            Some(sh) => sh.of(points),
            None => points.to_vec(),
        };
        let path = layout::labels(work, &l.name);
        let opts = self.opts(path.clone()).with_dataset(dataset);
        let labels = qval_core::label(&*labeler, &mine, &config, &opts).await?;
        let aborted = labels.iter().filter(|l| l.value.is_nan()).count();
        let count = labels.len();
        out.sets.push(label_set(&l.name, l.spec.signal, labels, dataset, path));
        let mut ranking = String::new();
        if let Some(c) = candidates
            && l.spec.signal == Signal::Q
        {
            let name = format!("ranking-{}", l.name);
            let path = layout::labels(work, &name);
            let mine_c = match share {
                Some(sh) => share_of_method(sh, &c.points, points),
                None => c.points.clone(),
            };
            let opts = self.opts(path.clone()).with_dataset(&c.dataset);
            let cl = qval_core::label(&*labeler, &mine_c, &config, &opts).await?;
            if out.expert.is_empty() {
                out.expert = cl
                    .iter()
                    .filter_map(|l| Some((l.point_id.clone(), l.expert.clone()?)))
                    .collect();
            }
            ranking = format!(" + {} ranking candidates ({name})", cl.len());
            out.sets.push(label_set(&name, l.spec.signal, cl, &c.dataset, path));
        }
        let usage = plan.services.total_usage();
        let spent = (usage.0 - usage0.0, usage.1 - usage0.1);
        let counts = rollouts.counts() - counts0;
        let rolled = l.spec.method != LabelMethod::Exact;
        if fresh {
            self.done_with(&stage, t, spent, rolled.then_some(counts))?;
        }
        let cost_text = if rolled && fresh {
            format!(
                "; {} rollouts run, {} reused, {} steps{}",
                counts.run,
                counts.reused,
                counts.steps,
                if spent.0 > 0 {
                    format!(", {} requests, {} tokens", spent.0, spent.1)
                } else {
                    String::new()
                }
            )
        } else {
            String::new()
        };
        self.say(&format!(
            "3. label     {}: {count} labels{ranking} ({}), {aborted} aborted{cost_text}{}",
            l.name,
            describe(&l.spec),
            timing(fresh, t)
        ));
        out.labelers.insert(l.name.clone(), labeler);
        Ok(())
    }

    /// A shaped-reward label set: each trajectory's discounted return (the set's `gamma`, else
    /// the environment's), one label per trajectory. Made whole in every process that is not
    /// a shard (it costs no rollout), and written when missing or different; a shard leaves it
    /// to the merge.
    fn returns_set(
        &mut self,
        l: &ResolvedLabels,
        trajectories: &[Trajectory],
        dataset: &str,
        out: &mut Labelled,
    ) -> Result<()> {
        let plan = self.plan;
        let stage = Stage::Label(l.name.clone());
        let t = Instant::now();
        let fresh = self.start(&stage)?;
        let path = layout::labels(&plan.work_dir, &l.name);
        if plan.options.shard.is_some() {
            if fresh {
                self.done_with(&stage, t, (0, 0), None)?;
            }
            return Ok(());
        }
        let gamma = l.spec.gamma.unwrap_or(plan.env.spec().gamma);
        let labels: Vec<Label> = trajectories
            .iter()
            .map(|tr| {
                Label::exact(
                    Trajectory::label_id(tr.index),
                    Signal::ShapedReward,
                    tr.discounted_return(gamma),
                )
            })
            .collect();
        let meta = Metadata::new(Kind::Labels, "trajectory-returns").with_params(json!({
            "labeler": {"method": "returns", "signal": Signal::ShapedReward.key(), "gamma": gamma},
            "dataset": dataset,
        }));
        let same = read_jsonl::<Label>(&path, Kind::Labels).is_ok_and(|(m, old)| m == meta && old == labels);
        if !same {
            write_jsonl(&path, &meta, &labels)?;
        }
        if fresh {
            self.done_with(&stage, t, (0, 0), None)?;
        }
        self.say(&format!(
            "3. label     {}: {} trajectory returns (gamma {gamma}){}",
            l.name,
            labels.len(),
            timing(fresh, t)
        ));
        out.sets
            .push(label_set(&l.name, Signal::ShapedReward, labels, dataset, path));
        Ok(())
    }

    /// The labeler of a set.
    fn labeler(&self, l: &ResolvedLabels, rollouts: Arc<Rollouts>) -> Result<Arc<dyn Labeler>> {
        let plan = self.plan;
        let seed = plan.experiment.seed;
        let reference = l.spec.reference.clone().expect("resolved by the plan");
        let config = match l.spec.method {
            LabelMethod::Exact => {
                return Ok(plan
                    .env
                    .exact_labeler(l.spec.signal, l.spec.gamma)
                    .expect("checked by the plan"));
            }
            LabelMethod::Mcts => {
                RolloutLabels::Mcts(mcts_config(&l.spec, seed).map_err(|p| RunnerError::Usage(p.message))?)
            }
            LabelMethod::Mvmc => {
                let mut b = MvmcConfig::builder()
                    .rollouts(l.spec.rollouts)
                    .aggregation(l.spec.aggregation)
                    .signal(l.spec.signal)
                    .step_penalty(l.spec.step_penalty)
                    .seed(seed)
                    .concurrency(l.spec.concurrency);
                if let Some(g) = l.spec.gamma {
                    b = b.gamma(g);
                }
                RolloutLabels::Mvmc(b.build()?)
            }
        };
        plan.env.labeler(&reference, &*plan.services, config, rollouts)
    }

    /// pass@k of the reference policy, as `[passk]` asks: `passk.json` and a line of the
    /// summary (returned, for `summary.md`).
    pub(crate) async fn passk(
        &mut self,
        p: &ResolvedPassk,
        points: &[EvaluationPoint],
        trajectories: &[Trajectory],
        labelled: &Labelled,
    ) -> Result<String> {
        let t = Instant::now();
        let spec = &p.spec;
        let threshold = spec.threshold;
        let rollouts = self.rollouts();
        let counts0 = rollouts.counts();
        let attempt = |key: &str, name: &str, r: Option<&Rollout>| Attempt {
            task_key: key.to_string(),
            task_name: name.to_string(),
            success: r.map(|r| r.undiscounted() >= threshold),
            total_reward: r.map_or(0.0, Rollout::undiscounted),
            num_steps: r.map_or(0, |r| r.rewards.len()),
        };
        let mut by_point: Option<PassAtK> = None;
        let (what, attempts) = match spec.source {
            PasskSource::Trajectories => {
                let a: Vec<Attempt> = trajectories
                    .iter()
                    .map(|tr| {
                        let r = Rollout {
                            rewards: tr.transitions.iter().map(|x| x.reward).collect(),
                            next_action: None,
                        };
                        attempt(&tr.task.id, &tr.task.id, Some(&r))
                    })
                    .collect();
                ("the collected trajectories".to_string(), a)
            }
            PasskSource::Labels => {
                let name = p.label_set.as_deref().expect("resolved by the plan");
                let labeler = &labelled.labelers[name];
                let mut per_task = Vec::new();
                let mut per_point = Vec::new();
                for point in points {
                    let got = labeler.rollouts_of(point).await;
                    let rs = match &got {
                        Ok(Some(rs)) => rs.iter().map(Some).collect(),
                        _ => vec![None],
                    };
                    for r in rs {
                        per_task.push(attempt(&point.task.id, &point.task.id, r));
                        per_point.push(attempt(&point.id, &point.task.id, r));
                    }
                }
                by_point = Some(qval_metrics::passk::compute(&per_point, &spec.k));
                (format!("the rollouts of label set `{name}`"), per_task)
            }
            PasskSource::Fresh => {
                let policy = p.policy.clone().expect("resolved by the plan");
                let config = MvmcConfig::builder()
                    .rollouts(spec.samples_per_task)
                    .signal(Signal::V)
                    .seed(self.plan.experiment.seed)
                    .build()?;
                let labeler = self.plan.env.labeler(
                    &policy,
                    &*self.plan.services,
                    RolloutLabels::Mvmc(config),
                    rollouts.clone(),
                )?;
                let mut a = Vec::new();
                for point in self.plan.env.initial_points(self.plan.experiment.seed)? {
                    let got = labeler.rollouts_of(&point).await;
                    match &got {
                        Ok(Some(rs)) => a.extend(rs.iter().map(|r| attempt(&point.task.id, &point.task.id, Some(r)))),
                        _ => {
                            a.extend((0..spec.samples_per_task).map(|_| attempt(&point.task.id, &point.task.id, None)))
                        }
                    }
                }
                (format!("{} fresh episodes per task", spec.samples_per_task), a)
            }
        };
        let result = qval_metrics::passk::compute(&attempts, &spec.k);
        let counts = rollouts.counts() - counts0;
        let mut doc = json!({
            "metadata": {
                "source": spec.source,
                "from": what,
                "label_set": p.label_set,
                "policy": p.policy,
                "k_values": spec.k,
                "success_threshold": threshold,
                "seed": self.plan.experiment.seed,
                "rollouts_run": counts.run,
                "rollouts_reused": counts.reused,
            },
            "aggregate": result.aggregate,
            "per_task": result.per_task,
        });
        if let Some(bp) = &by_point {
            doc["by_point"] = json!({ "aggregate": bp.aggregate, "per_task": bp.per_task });
        }
        let path = self.plan.run_dir.join("passk.json");
        let text = serde_json::to_string_pretty(&doc).map_err(|e| RunnerError::plugin("passk.json", e))?;
        qval_core::io::write_atomic(&path, (text + "\n").as_bytes())?;
        let line = passk_line(&result, spec.warn_below, &what);
        self.say(&format!(
            "   pass@k    {line} ({} rollouts run, {} reused, {:.2}s)",
            counts.run,
            counts.reused,
            t.elapsed().as_secs_f64()
        ));
        Ok(line)
    }
}

/// The summary's line on pass@k, with a warning when pass@1 is below `warn_below`.
fn passk_line(p: &PassAtK, warn_below: f64, what: &str) -> String {
    let ks: Vec<String> = p
        .aggregate
        .pass_at_k
        .iter()
        .filter_map(|(k, a)| Some((k.parse::<usize>().ok()?, a.mean?)))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .map(|(k, m)| format!("pass@{k} {m:.3}"))
        .collect();
    let tasks = p.per_task.len();
    let mut line = format!("{} over {tasks} tasks, from {what}", ks.join(", "));
    if let Some(p1) = p.mean(1)
        && p1 < warn_below
    {
        line.push_str(&format!(
            ". Warning: these labels come from a policy that succeeds on {:.0}% of tasks (pass@1 below {warn_below})",
            100.0 * p1
        ));
    }
    line
}

/// How a set's labels are made, for the report.
fn describe(l: &LabelSpec) -> String {
    if l.signal == Signal::ShapedReward {
        return "trajectory returns".into();
    }
    match l.method {
        LabelMethod::Exact => "exact".into(),
        LabelMethod::Mvmc => format!("k = {}, {:?}", l.rollouts, l.aggregation),
        LabelMethod::Mcts => match mcts_config(l, 0) {
            Ok(c) => format!(
                "MCTS, {} returns, width {}, c = {}, {:?}",
                c.iterations(),
                c.width(),
                c.exploration(),
                l.aggregation
            ),
            Err(p) => p.message,
        },
    }
}

/// The summary's section on the reference labels: for each set, what its labels rest on
/// (rollouts, those shared with an earlier set, environment steps), read from the labels
/// themselves so the section is the same bytes however the run was split, resumed or served
/// from a store (what this run paid is in `run.json`); then pass@k.
pub(crate) fn labels_section(plan: &[ResolvedLabels], sets: &[LabelSet], passk: Option<&str>) -> String {
    let mut md = String::from(
        "\n## Reference labels\n\n| label set | how | labels | rollouts | shared with an earlier set | env steps |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    // The most rollouts an earlier MVMC set of the same reference kept from each start.
    let mut kept: HashMap<(String, u8), usize> = HashMap::new();
    for l in plan {
        let Some(set) = sets.iter().find(|s| s.name == l.name) else {
            continue;
        };
        let labels = &set.labels;
        if l.spec.method == LabelMethod::Exact || l.spec.signal == Signal::ShapedReward {
            let how = describe(&l.spec);
            md.push_str(&format!("| {} | {how} | {} | - | - | - |\n", l.name, labels.len()));
            continue;
        }
        let reference = serde_json::to_string(&l.spec.reference).unwrap_or_default();
        // Q rollouts start forced, V from the state, advantage from the next state and the state.
        let (first, second) = match l.spec.signal {
            Signal::Q => (0, None),
            Signal::V | Signal::Potential | Signal::ShapedReward => (1, None),
            Signal::Advantage => (2, Some(1)),
        };
        let prior = |start: u8| kept.get(&(reference.clone(), start)).copied().unwrap_or(0);
        let mvmc = l.spec.method == LabelMethod::Mvmc;
        let (mut rollouts, mut shared, mut steps) = (0usize, 0usize, 0u64);
        for label in labels {
            rollouts += label.returns.len() + label.baseline_returns.len();
            steps += label.steps.unwrap_or(0);
            if mvmc {
                shared += label.returns.len().min(prior(first));
                if let Some(s) = second {
                    shared += label.baseline_returns.len().min(prior(s));
                }
            }
        }
        if mvmc {
            for start in std::iter::once(first).chain(second) {
                let k = kept.entry((reference.clone(), start)).or_default();
                *k = (*k).max(l.spec.rollouts);
            }
        }
        md.push_str(&format!(
            "| {} | {} | {} | {rollouts} | {shared} | {steps} |\n",
            l.name,
            describe(&l.spec),
            labels.len()
        ));
    }
    md.push_str("\nWhat this run paid for them (rollouts run and read back, requests, tokens) is in `run.json`.\n");
    if let Some(line) = passk {
        md.push_str(&format!("\nReference policy: {line}.\n"));
    }
    md
}
