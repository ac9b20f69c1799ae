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
pub use api::{
    BuildInput, DynMethodType, MethodInfo, MethodType, Modality, NoParams, ParamDoc, PointSet, ResolvedMethod,
    parse_params, simple,
};

/// A seed parameter: the experiment's seed unless the entry gives one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedParams {
    #[serde(default)]
    seed: Option<u64>,
}

impl SeedParams {
    fn seed(&self, input: &BuildInput<'_>) -> u64 {
        self.seed.unwrap_or(input.seed)
    }
}

struct Random;

#[async_trait]
impl MethodType for Random {
    type Params = SeedParams;
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "baseline",
            summary: "seeded uniform scores: the floor every method must beat",
            signals: Signal::ALL.to_vec(),
            needs_backend: false,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![ParamDoc::new("seed", "the experiment's seed", "the generator's seed")],
        }
    }
    fn params(&self, m: &ResolvedMethod) -> std::result::Result<SeedParams, SpecProblem> {
        parse_params(m)
    }
    async fn build(&self, p: &SeedParams, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        Ok(vec![Arc::new(qval_methods::RandomBaseline::new(
            p.seed(&input),
            input.method.signal,
        ))])
    }
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
    type Params = HeuristicParams;
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "baseline",
            summary: "the environment's hand-written heuristic (FrozenLake: distance to the goal, or `variant = \"manhattan\"` ignoring holes; TerminalBench: shell outcome)",
            signals: vec![Signal::Q, Signal::V, Signal::Potential, Signal::ShapedReward],
            needs_backend: false,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![ParamDoc::new(
                "variant",
                "the environment's own",
                "another heuristic of the environment (FrozenLake: manhattan)",
            )],
        }
    }
    fn params(&self, m: &ResolvedMethod) -> std::result::Result<HeuristicParams, SpecProblem> {
        parse_params(m)
    }
    fn check_plan(
        &self,
        p: &HeuristicParams,
        _: &ResolvedMethod,
        env: &dyn EnvPlugin,
        _: &dyn RunServices,
    ) -> std::result::Result<(), SpecProblem> {
        match &p.variant {
            Some(v) if !env.heuristic_variants().contains(v) => {
                let known = env.heuristic_variants();
                Err(SpecProblem::at(
                    crate::spec::at!["variant"],
                    spec::unknown(
                        "heuristic variant",
                        v,
                        &known.iter().map(String::as_str).collect::<Vec<_>>(),
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
    async fn build(&self, p: &HeuristicParams, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
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

/// The published default `n` of each mode with one.
const MULTI_N: usize = 16;
const BATCHED_N: usize = 4;
const SEQUENTIAL_N: usize = 8;

struct Direct;

#[async_trait]
impl MethodType for Direct {
    type Params = qval_methods::prompting::DirectMode;
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "direct",
            summary: "the model is told what the value means and answers a number",
            signals: Signal::ALL.to_vec(),
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![
                ParamDoc::new(
                    "mode",
                    single(),
                    "single | multi (N passes, mean) | batched (K per prompt) | sequential (K turns)",
                ),
                ParamDoc::new(
                    "n",
                    format!("{MULTI_N} / {BATCHED_N} / {SEQUENTIAL_N}"),
                    "passes (multi) or points per prompt (batched, sequential)",
                ),
            ],
        }
    }
    fn params(&self, m: &ResolvedMethod) -> std::result::Result<Self::Params, SpecProblem> {
        use qval_methods::prompting::DirectMode;
        let p: DirectParams = parse_params(m)?;
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
            "multi" => DirectMode::Multi(n(MULTI_N)?),
            "batched" => DirectMode::Batched(n(BATCHED_N)?),
            "sequential" => DirectMode::Sequential(n(SEQUENTIAL_N)?),
            other => {
                return Err(SpecProblem::at(
                    crate::spec::at!["mode"],
                    spec::unknown("mode", other, &["single", "multi", "batched", "sequential"]),
                ));
            }
        })
    }
    async fn build(&self, mode: &Self::Params, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        Ok(vec![Arc::new(qval_methods::prompting::Direct::new(
            backend_of(&input)?,
            input.method.signal,
            *mode,
            input.prompt_options()?,
        ))])
    }
}

struct Gvl;

#[async_trait]
impl MethodType for Gvl {
    type Params = SeedParams;
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "direct",
            summary: "the other steps of the trajectory, shuffled, as context; the target step last",
            signals: vec![Signal::Q, Signal::V],
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![ParamDoc::new("seed", "the experiment's seed", "the shuffle's seed")],
        }
    }
    fn params(&self, m: &ResolvedMethod) -> std::result::Result<SeedParams, SpecProblem> {
        parse_params(m)
    }
    async fn build(&self, p: &SeedParams, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        Ok(vec![Arc::new(qval_methods::prompting::Gvl::new(
            backend_of(&input)?,
            input.method.signal,
            input.trajectories,
            p.seed(&input),
            input.prompt_options()?,
        ))])
    }
}

struct Verifier;

/// One pass per criterion unless the entry says more (published).
const VERIFICATIONS: usize = 1;

fn verifications() -> usize {
    VERIFICATIONS
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifierParams {
    #[serde(default = "verifications")]
    num_verifications: usize,
    #[serde(default)]
    criteria: Vec<String>,
    #[serde(default = "one")]
    prompt_batch_size: usize,
    #[serde(default)]
    prompt_grouping: Option<String>,
    #[serde(skip)]
    grouping: qval_methods::prompting::Grouping,
}

fn one() -> usize {
    1
}

#[async_trait]
impl MethodType for Verifier {
    type Params = VerifierParams;
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
                ParamDoc::new(
                    "num_verifications",
                    VERIFICATIONS,
                    "passes per criterion (the published name); the mean of the passes that decode",
                ),
                ParamDoc::new(
                    "criteria",
                    "[]",
                    "published criteria ids (frozen_lake_correctness, terminal_bench_efficiency, ...), cycled over the passes",
                ),
                ParamDoc::new(
                    "prompt_batch_size",
                    1,
                    "points per prompt (published), each `## Datapoint i` scored through its `<score_i>` tag",
                ),
                ParamDoc::new(
                    "prompt_grouping",
                    "random",
                    "random | contiguous | trajectory: which points share a prompt (published)",
                ),
            ],
        }
    }
    fn params(&self, m: &ResolvedMethod) -> std::result::Result<VerifierParams, SpecProblem> {
        let mut p: VerifierParams = parse_params(m)?;
        if p.prompt_batch_size == 0 {
            return Err(SpecProblem::at(
                crate::spec::at!["prompt_batch_size"],
                "0: give at least 1",
            ));
        }
        crate::limits::at_most(
            crate::spec::at!["prompt_batch_size"],
            p.prompt_batch_size,
            64,
            "each point of a prompt shares its context window",
        )?;
        use qval_methods::prompting::Grouping;
        if let Some(g) = &p.prompt_grouping {
            p.grouping = Grouping::from_key(g).ok_or_else(|| {
                SpecProblem::at(
                    crate::spec::at!["prompt_grouping"],
                    spec::unknown("prompt grouping", g, &Grouping::KEYS),
                )
            })?;
        }
        if p.num_verifications == 0 {
            return Err(SpecProblem::at(
                crate::spec::at!["num_verifications"],
                "`num_verifications` must be at least 1",
            ));
        }
        crate::limits::at_most(
            crate::spec::at!["num_verifications"],
            p.num_verifications,
            100,
            "each verification is one more request per point",
        )?;
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
    async fn build(&self, p: &VerifierParams, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let m =
            qval_methods::prompting::Verifier::new(backend_of(&input)?, input.method.signal, input.prompt_options()?)
                .with_passes(p.num_verifications)
                .with_batch(p.prompt_batch_size, p.grouping)
                .with_criteria(&p.criteria)
                .map_err(|e| RunnerError::Usage(e.to_string()))?;
        Ok(vec![Arc::new(m)])
    }
}

struct Ranking;

#[async_trait]
impl MethodType for Ranking {
    type Params = NoParams;
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
    fn params(&self, m: &ResolvedMethod) -> std::result::Result<NoParams, SpecProblem> {
        parse_params(m)
    }
    async fn build(&self, _: &NoParams, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
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
    type Params = NoParams;
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
    fn params(&self, m: &ResolvedMethod) -> std::result::Result<NoParams, SpecProblem> {
        parse_params(m)
    }
    async fn build(&self, _: &NoParams, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
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
use code::{Codegen, Eureka};
mod embedding;
use embedding::{Embedding, EmbeddingKind};
mod python;

/// The built-in method types, by name.
pub fn builtin() -> Vec<(&'static str, Arc<dyn DynMethodType>)> {
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
        ("codegen", Arc::new(Codegen { averaged: false })),
        ("codegen-avg", Arc::new(Codegen { averaged: true })),
        ("eureka", Arc::new(Eureka)),
        ("python", Arc::new(python::Python)),
        (
            "goal-cosine",
            Arc::new(Embedding {
                kind: EmbeddingKind::GoalCosine,
            }),
        ),
        (
            "vlm-rm",
            Arc::new(Embedding {
                kind: EmbeddingKind::VlmRm,
            }),
        ),
        (
            "sor",
            Arc::new(Embedding {
                kind: EmbeddingKind::Sor,
            }),
        ),
        (
            "sor-threshold",
            Arc::new(Embedding {
                kind: EmbeddingKind::SorThreshold,
            }),
        ),
    ]
}
