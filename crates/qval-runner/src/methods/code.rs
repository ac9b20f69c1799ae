//! The code family as method types: codegen, codegen-avg and eureka, their parameters and
//! the generated samples they share.

use async_trait::async_trait;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

use crate::spec::SpecProblem;
use crate::{Result, RunnerError};
use qval_core::{DenseSignalMethod, EvaluationPoint, MethodContext, Signal};

use super::api::backend_of;
use super::{BuildInput, MethodInfo, MethodType, ParamDoc, PointSet, ResolvedMethod, parse_params};

/// Parameters of the code family.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeParams {
    #[serde(default = "sixteen")]
    samples: usize,
    /// Seconds one call may take.
    #[serde(default = "one_f")]
    call_limit: f64,
    /// Seconds all calls of one sample may take.
    #[serde(default = "six_hundred")]
    total_limit: f64,
}

/// Generated functions, and Eureka's rounds (published).
const SIXTEEN: usize = 16;
/// Seconds one call may take.
const CALL_LIMIT: f64 = 1.0;
/// Seconds all calls of one sample may take.
const TOTAL_LIMIT: f64 = 600.0;
/// Eureka's candidates per round (published).
const CANDIDATES: usize = 8;

fn sixteen() -> usize {
    SIXTEEN
}
fn one_f() -> f64 {
    CALL_LIMIT
}
fn six_hundred() -> f64 {
    TOTAL_LIMIT
}

impl CodeParams {
    fn read(m: &ResolvedMethod) -> std::result::Result<Checked, SpecProblem> {
        let p: CodeParams = parse_params(m)?;
        if p.samples == 0 {
            return Err(SpecProblem::at(crate::spec::at!["samples"], "0: give at least 1"));
        }
        crate::limits::at_most(
            crate::spec::at!["samples"],
            p.samples,
            1_000,
            "each sample is a generated program run on every point",
        )?;
        for (key, v) in [("call_limit", p.call_limit), ("total_limit", p.total_limit)] {
            if !(v > 0.0 && v <= 86_400.0) {
                return Err(SpecProblem::at(
                    crate::spec::at![key],
                    format!("{v}: give seconds in (0, 86400]"),
                ));
            }
        }
        let sandbox = sandbox(p.call_limit, p.total_limit)?;
        Ok(Checked {
            samples: p.samples,
            sandbox,
        })
    }
}

/// The code family's parameters once checked: the sample count and the sandbox's limits.
pub(crate) struct Checked {
    samples: usize,
    sandbox: qval_methods::code::SandboxConfig,
}

/// The sandbox of generated code with these limits.
fn sandbox(call_limit: f64, total_limit: f64) -> std::result::Result<qval_methods::code::SandboxConfig, SpecProblem> {
    qval_methods::code::SandboxConfig::builder()
        .call_limit(Duration::from_secs_f64(call_limit))
        .total_limit(Duration::from_secs_f64(total_limit))
        .build()
        .map_err(|e| SpecProblem::at(crate::spec::at!["call_limit"], format!("sandbox settings: {e}")))
}

/// A code sample renamed into its group, recording `sample_group` and `sample_index`.
pub(crate) struct Member {
    pub(crate) inner: Arc<qval_methods::code::CodeSample>,
    pub(crate) name: String,
    pub(crate) group: String,
    pub(crate) index: usize,
}

#[async_trait]
impl DenseSignalMethod for Member {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn signal(&self) -> Signal {
        self.inner.signal()
    }
    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "sample_group": self.group, "sample_index": self.index })
    }
    async fn evaluate(&self, p: &EvaluationPoint, ctx: &MethodContext) -> qval_core::Result<f64> {
        self.inner.evaluate(p, ctx).await
    }
    async fn evaluate_batch(&self, p: &[EvaluationPoint], ctx: &MethodContext) -> Vec<qval_core::Result<f64>> {
        self.inner.evaluate_batch(p, ctx).await
    }
}

async fn code_samples(input: &BuildInput<'_>, p: &Checked) -> Result<Vec<Arc<qval_methods::code::CodeSample>>> {
    use qval_methods::code::{CodeSample, generate_samples};
    let backend = backend_of(input)?;
    if input.points.is_empty() {
        return Err(RunnerError::Usage(format!(
            "method `{}` has no points to score",
            input.method.name
        )));
    }
    let samples = generate_samples(
        &*backend,
        input.ctx,
        input.method.signal,
        &input.prompt_options()?,
        p.samples,
        &Default::default(),
    )
    .await;
    std::fs::create_dir_all(&input.dir).map_err(|e| RunnerError::io("creating", &input.dir, e))?;
    let config = p.sandbox.clone();
    let mut out = Vec::new();
    for s in samples {
        let file = input.dir.join(format!("sample-{:02}.py", s.index));
        let body = match (&s.source, &s.error) {
            (Some(src), _) => src.clone(),
            (None, Some(e)) => format!("# no code: {e}\n"),
            (None, None) => "# no code\n".into(),
        };
        qval_core::io::write_atomic(&file, body.as_bytes())?;
        let m = CodeSample::new(s, input.method.signal, config.clone(), "codegen")
            .with_next_state(input.ctx.include_next_state);
        // A sample that does not load scores NaN everywhere; a sandbox that cannot start at
        // all (bubblewrap missing) is an error.
        let _ = m
            .check()
            .await
            .map_err(|e| RunnerError::plugin("the code sandbox cannot start", e))?;
        out.push(m);
    }
    // Grouped, the runner's scoring of one sample after another runs them all at once.
    Ok(qval_methods::code::group(out))
}

/// codegen (each sample its own prediction set) and codegen-avg (their per-point mean): the
/// same samples, reported two ways.
pub(crate) struct Codegen {
    /// Whether the samples are averaged into one set (codegen-avg).
    pub(crate) averaged: bool,
}

#[async_trait]
impl MethodType for Codegen {
    type Params = Checked;
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "code",
            summary: if self.averaged {
                "per point, the NaN-skipping mean of the N generated functions (the same samples as codegen)"
            } else {
                "N generated Python signal functions, each run on every point in a sandbox; reported as mean +- std [min, max]"
            },
            signals: vec![Signal::Q, Signal::V],
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![
                ParamDoc::new("samples", SIXTEEN, "generated functions"),
                ParamDoc::new("call_limit", CALL_LIMIT, "seconds one call may take"),
                ParamDoc::new("total_limit", TOTAL_LIMIT, "seconds all calls of one sample may take"),
            ],
        }
    }
    fn params(&self, m: &ResolvedMethod) -> std::result::Result<Checked, SpecProblem> {
        CodeParams::read(m)
    }
    fn outputs(&self, p: &Checked, m: &ResolvedMethod) -> Vec<String> {
        if self.averaged {
            return vec![m.name.clone()];
        }
        (0..p.samples).map(|i| format!("{}-s{i:02}", m.name)).collect()
    }
    async fn build(&self, p: &Checked, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let samples = code_samples(&input, p).await?;
        if self.averaged {
            return Ok(vec![Arc::new(qval_methods::code::CodegenAvg::new(
                samples,
                input.method.signal,
            ))]);
        }
        Ok(samples
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                Arc::new(Member {
                    inner: s,
                    name: format!("{}-s{i:02}", input.method.name),
                    group: input.method.name.clone(),
                    index: i,
                }) as Arc<dyn DenseSignalMethod>
            })
            .collect())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EurekaParams {
    #[serde(default = "sixteen")]
    iterations: usize,
    #[serde(default = "eight")]
    candidates: usize,
    #[serde(default = "one_f")]
    pub(crate) call_limit: f64,
    #[serde(default = "six_hundred")]
    pub(crate) total_limit: f64,
}

fn eight() -> usize {
    CANDIDATES
}

/// Eureka's parameters once checked.
pub(crate) struct EurekaChecked {
    iterations: usize,
    candidates: usize,
    sandbox: qval_methods::code::SandboxConfig,
}

impl EurekaParams {
    fn read(m: &ResolvedMethod) -> std::result::Result<EurekaChecked, SpecProblem> {
        let p: EurekaParams = parse_params(m)?;
        for (key, v) in [("iterations", p.iterations), ("candidates", p.candidates)] {
            if v == 0 {
                return Err(SpecProblem::at(crate::spec::at![key], "0: give at least 1"));
            }
            crate::limits::at_most(
                crate::spec::at![key],
                v,
                1_000,
                "every candidate of every round is a generated program, judged and run on the points",
            )?;
        }
        Ok(EurekaChecked {
            iterations: p.iterations,
            candidates: p.candidates,
            sandbox: sandbox(p.call_limit, p.total_limit)?,
        })
    }
}

pub(crate) struct Eureka;

#[async_trait]
impl MethodType for Eureka {
    type Params = EurekaChecked;
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "code",
            summary: "iterative improvement of generated functions with an LLM judge; the last winner is scored",
            signals: vec![Signal::Q, Signal::V],
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![
                ParamDoc::new("iterations", SIXTEEN, "rounds"),
                ParamDoc::new("candidates", CANDIDATES, "candidates per round"),
                ParamDoc::new("call_limit", CALL_LIMIT, "seconds one call may take"),
                ParamDoc::new(
                    "total_limit",
                    TOTAL_LIMIT,
                    "seconds all calls of one candidate may take",
                ),
            ],
        }
    }
    fn params(&self, m: &ResolvedMethod) -> std::result::Result<EurekaChecked, SpecProblem> {
        EurekaParams::read(m)
    }
    async fn build(&self, p: &EurekaChecked, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        use qval_methods::code::{CodeSample, EurekaConfig, run_eureka};
        let sandbox = p.sandbox.clone();
        let mut cfg = EurekaConfig::new(sandbox.clone());
        cfg.iterations = p.iterations;
        cfg.candidates = p.candidates;
        cfg.seed = input.seed;
        cfg.prompt = input.prompt_options()?;
        let result = run_eureka(backend_of(&input)?, input.ctx, input.method.signal, input.points, &cfg).await?;
        let rounds = serde_json::to_string_pretty(&result).unwrap_or_default();
        qval_core::io::write_atomic(&input.dir.join("eureka.json"), rounds.as_bytes())?;
        let best = CodeSample::new(result.best, input.method.signal, sandbox, "eureka")
            .with_next_state(input.ctx.include_next_state);
        Ok(vec![Arc::new(best)])
    }
}
