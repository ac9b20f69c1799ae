//! Method types as experiment files name them: each turns a `[[methods]]` entry into the
//! [`DenseSignalMethod`]s whose predictions the runner stores.
//!
//! A user's own method plugs in with [`MethodType`] (or the closure form
//! [`simple`]) and [`crate::Registry::method`].

use async_trait::async_trait;
use serde::Deserialize;
use std::sync::Arc;

use crate::envs::{EnvPlugin, RunServices};
use crate::spec::{self, SpecProblem};
use crate::{Result, RunnerError};
use qval_core::{DenseSignalMethod, Signal};

mod api;
use api::backend_of;
pub use api::{BuildInput, MethodInfo, MethodType, PointSet, ResolvedMethod, simple};

struct Random;

#[async_trait]
impl MethodType for Random {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "baseline",
            summary: "seeded uniform scores: the floor every method must beat",
            signals: vec![Signal::Q, Signal::V, Signal::Advantage],
            needs_backend: false,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![("seed", "the experiment's seed", "the generator's seed")],
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        spec::params::<SeedParams>(&m.params, &[]).map(|_| ())
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let p: SeedParams = spec::params(&input.method.params, &[]).map_err(SpecProblem::into_error)?;
        Ok(vec![Arc::new(qval_methods::RandomBaseline::new(
            p.seed.unwrap_or(input.seed),
            input.method.signal,
        ))])
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedParams {
    #[serde(default)]
    seed: Option<u64>,
}

struct Heuristic;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeuristicParams {
    /// One of the environment's other heuristics (FrozenLake: `manhattan`); default its own.
    #[serde(default)]
    variant: Option<String>,
}

#[async_trait]
impl MethodType for Heuristic {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "baseline",
            summary: "the environment's hand-written heuristic (FrozenLake: distance to the goal, or `variant = \"manhattan\"` ignoring holes; TerminalBench: shell outcome)",
            signals: vec![Signal::Q, Signal::V],
            needs_backend: false,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![(
                "variant",
                "the environment's own",
                "another heuristic of the environment (FrozenLake: manhattan)",
            )],
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        spec::params::<HeuristicParams>(&m.params, &[]).map(|_| ())
    }
    fn check_plan(
        &self,
        m: &ResolvedMethod,
        env: &dyn EnvPlugin,
        _: &dyn RunServices,
    ) -> std::result::Result<(), SpecProblem> {
        let p = spec::params::<HeuristicParams>(&m.params, &[])?;
        match p.variant {
            Some(v) if !env.heuristic_variants().contains(&v) => {
                let known = env.heuristic_variants();
                Err(SpecProblem::at(
                    crate::spec::at!["variant"],
                    spec::unknown(
                        "heuristic variant",
                        &v,
                        &known.iter().map(String::as_str).collect::<Vec<_>>(),
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let p =
            spec::params::<HeuristicParams>(&input.method.params, &[]).map_err(|e| RunnerError::Usage(e.message))?;
        let signal = input.method.signal;
        let h = match &p.variant {
            Some(v) => input.env.heuristic_variant(v, signal),
            None => input.env.heuristic(signal),
        };
        let h = h.ok_or_else(|| {
            RunnerError::Usage(format!(
                "environment `{}` has no heuristic{} for signal {signal}",
                input.env.spec().name,
                p.variant.as_deref().map(|v| format!(" `{v}`")).unwrap_or_default()
            ))
        })?;
        Ok(vec![h])
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectParams {
    #[serde(default = "single")]
    mode: String,
    #[serde(default)]
    n: Option<usize>,
}

fn single() -> String {
    "single".into()
}

struct Direct;

impl Direct {
    fn mode(p: &DirectParams) -> std::result::Result<qval_methods::prompting::DirectMode, SpecProblem> {
        use qval_methods::prompting::DirectMode;
        let n = |default: usize| -> std::result::Result<usize, SpecProblem> {
            match p.n {
                Some(0) => Err(SpecProblem::at(crate::spec::at!["n"], "0: give at least 1")),
                Some(n) => crate::limits::at_most(
                    crate::spec::at!["n"],
                    n,
                    1_000,
                    "each is one more request or prompt section per point",
                )
                .map(|_| n),
                None => Ok(default),
            }
        };
        Ok(match p.mode.as_str() {
            "single" => {
                if p.n.is_some() {
                    return Err(SpecProblem::at(crate::spec::at!["n"], "mode `single` takes no `n`"));
                }
                DirectMode::Single
            }
            "multi" => DirectMode::Multi(n(16)?),
            "batched" => DirectMode::Batched(n(4)?),
            "sequential" => DirectMode::Sequential(n(8)?),
            other => {
                return Err(SpecProblem::at(
                    crate::spec::at!["mode"],
                    spec::unknown("mode", other, &["single", "multi", "batched", "sequential"]),
                ));
            }
        })
    }
}

#[async_trait]
impl MethodType for Direct {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "direct",
            summary: "the model is told what the value means and answers a number",
            signals: vec![Signal::Q, Signal::V, Signal::Advantage],
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![
                (
                    "mode",
                    "single",
                    "single | multi (N passes, mean) | batched (K per prompt) | sequential (K turns)",
                ),
                (
                    "n",
                    "16 / 4 / 8",
                    "passes (multi) or points per prompt (batched, sequential)",
                ),
            ],
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        Self::mode(&spec::params(&m.params, &[])?).map(|_| ())
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let mode = Self::mode(&spec::params(&input.method.params, &[]).map_err(SpecProblem::into_error)?)
            .map_err(SpecProblem::into_error)?;
        Ok(vec![Arc::new(qval_methods::prompting::Direct::new(
            backend_of(&input)?,
            input.method.signal,
            mode,
            input.prompt_options()?,
        ))])
    }
}

struct Gvl;

#[async_trait]
impl MethodType for Gvl {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "direct",
            summary: "the other steps of the trajectory, shuffled, as context; the target step last",
            signals: vec![Signal::Q, Signal::V],
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![("seed", "the experiment's seed", "the shuffle's seed")],
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        spec::params::<SeedParams>(&m.params, &[]).map(|_| ())
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let p: SeedParams = spec::params(&input.method.params, &[]).map_err(SpecProblem::into_error)?;
        Ok(vec![Arc::new(qval_methods::prompting::Gvl::new(
            backend_of(&input)?,
            input.method.signal,
            input.trajectories,
            p.seed.unwrap_or(input.seed),
            input.prompt_options()?,
        ))])
    }
}

struct Verifier;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifierParams {
    #[serde(default)]
    num_verifications: Option<usize>,
    #[serde(default)]
    criteria: Vec<String>,
}

impl VerifierParams {
    fn read(table: &toml::Table) -> std::result::Result<Self, SpecProblem> {
        let p: VerifierParams = spec::params(table, &[])?;
        if p.num_verifications == Some(0) {
            return Err(SpecProblem::at(
                crate::spec::at!["num_verifications"],
                "`num_verifications` must be at least 1",
            ));
        }
        if let Some(n) = p.num_verifications {
            crate::limits::at_most(
                crate::spec::at!["num_verifications"],
                n,
                100,
                "each verification is one more request per point",
            )?;
        }
        let ids = qval_methods::prompting::VerifierCriterion::ids();
        for (i, c) in p.criteria.iter().enumerate() {
            if qval_methods::prompting::VerifierCriterion::by_id(c).is_none() {
                return Err(SpecProblem::at(
                    crate::spec::at!["criteria", i],
                    spec::unknown("verifier criterion", c, &ids),
                ));
            }
        }
        Ok(p)
    }
}

#[async_trait]
impl MethodType for Verifier {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "intrinsic",
            summary: "a letter grade A..T read from the top-20 log-probabilities (needs `logprobs = true` on the backend)",
            signals: vec![Signal::Q],
            needs_backend: true,
            needs_logprobs: true,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![
                (
                    "num_verifications",
                    "1",
                    "passes per criterion (the published name); the mean of the passes that decode",
                ),
                (
                    "criteria",
                    "[]",
                    "published criteria ids (frozen_lake_correctness, terminal_bench_efficiency, ...), cycled over the passes",
                ),
            ],
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        VerifierParams::read(&m.params).map(|_| ())
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let p = VerifierParams::read(&input.method.params).map_err(SpecProblem::into_error)?;
        let m =
            qval_methods::prompting::Verifier::new(backend_of(&input)?, input.method.signal, input.prompt_options()?)
                .with_passes(p.num_verifications.unwrap_or(1))
                .with_criteria(&p.criteria)
                .map_err(|e| RunnerError::Usage(e.to_string()))?;
        Ok(vec![Arc::new(m)])
    }
}

struct Ranking;

#[async_trait]
impl MethodType for Ranking {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "ranking",
            summary: "the model orders every legal action of a state, best first; evaluated per state",
            signals: vec![Signal::Q],
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Candidates,
            params: vec![],
        }
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let ranking = qval_methods::prompting::Ranking::new(backend_of(&input)?, input.points, input.prompt_options()?)
            .shuffle(Some(input.seed));
        // The order each state's candidates are shown in, for the record (a rerun shows the
        // same: it derives from the seed and the state).
        let path = input.dir.join("shown_order.json");
        let text = serde_json::to_string_pretty(&ranking.shown_orders()).expect("orders serialise");
        qval_core::io::write_atomic(&path, text.as_bytes())?;
        Ok(vec![Arc::new(ranking)])
    }
}

/// sdpo, sdpo-gt and delta-belief: log-probabilities of given continuations.
struct Scoring {
    kind: qval_methods::prompting::ScoringKind,
}

#[async_trait]
impl MethodType for Scoring {
    fn info(&self) -> MethodInfo {
        use qval_methods::prompting::ScoringKind;
        MethodInfo {
            family: match self.kind {
                ScoringKind::DeltaBelief => "intrinsic",
                _ => "self-distillation",
            },
            summary: match self.kind {
                ScoringKind::Sdpo => {
                    "mean per-token log-prob of the action, teacher (state and its response) minus student (state); \
                     ranked per state; needs `scoring = true` (vLLM)"
                }
                ScoringKind::SdpoGt => {
                    "sdpo whose teacher also sees the expert rollout from the resulting state (an oracle-teacher \
                     ablation); ranked per state; needs `scoring = true` (vLLM)"
                }
                ScoringKind::DeltaBelief => {
                    "change of log p(Yes) to a success question once the candidate's outcome is shown; ranked per \
                     state; needs `scoring = true` (vLLM)"
                }
            },
            signals: vec![Signal::Q],
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: true,
            on: PointSet::Candidates,
            params: vec![],
        }
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let m =
            qval_methods::prompting::ContinuationScoring::new(self.kind, backend_of(&input)?, input.prompt_options()?)?;
        let m = match self.kind {
            qval_methods::prompting::ScoringKind::SdpoGt => m.with_expert(input.expert.clone()),
            _ => m,
        };
        Ok(vec![Arc::new(m)])
    }
}

mod code;
use code::{Codegen, CodegenAvg, Eureka};
mod embedding;
use embedding::Embedding;

/// The built-in method types, by name.
pub fn builtin() -> Vec<(&'static str, Arc<dyn MethodType>)> {
    vec![
        ("random", Arc::new(Random)),
        ("heuristic", Arc::new(Heuristic)),
        ("direct", Arc::new(Direct)),
        ("gvl", Arc::new(Gvl)),
        ("verifier", Arc::new(Verifier)),
        ("ranking", Arc::new(Ranking)),
        (
            "sdpo",
            Arc::new(Scoring {
                kind: qval_methods::prompting::ScoringKind::Sdpo,
            }),
        ),
        (
            "sdpo-gt",
            Arc::new(Scoring {
                kind: qval_methods::prompting::ScoringKind::SdpoGt,
            }),
        ),
        (
            "delta-belief",
            Arc::new(Scoring {
                kind: qval_methods::prompting::ScoringKind::DeltaBelief,
            }),
        ),
        ("codegen", Arc::new(Codegen)),
        ("codegen-avg", Arc::new(CodegenAvg)),
        ("eureka", Arc::new(Eureka)),
        ("goal-cosine", Arc::new(Embedding { kind: "goal-cosine" })),
        ("vlm-rm", Arc::new(Embedding { kind: "vlm-rm" })),
        ("sor", Arc::new(Embedding { kind: "sor" })),
        ("sor-threshold", Arc::new(Embedding { kind: "sor-threshold" })),
    ]
}
