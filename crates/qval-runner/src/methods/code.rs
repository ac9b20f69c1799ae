//! The code family as method types: codegen, codegen-avg and eureka, their parameters and
//! the generated samples they share.

use async_trait::async_trait;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

use crate::spec::{self, SpecProblem};
use crate::{Result, RunnerError};
use qval_core::{DenseSignalMethod, EvaluationPoint, MethodContext, Signal};

use super::api::backend_of;
use super::{BuildInput, MethodInfo, MethodType, PointSet, ResolvedMethod};

/// Parameters of the code family.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodeParams {
    #[serde(default = "sixteen")]
    pub(crate) samples: usize,
    /// Seconds one call may take.
    #[serde(default = "one_f")]
    pub(crate) call_limit: f64,
    /// Seconds all calls of one sample may take.
    #[serde(default = "six_hundred")]
    pub(crate) total_limit: f64,
}

pub(crate) fn sixteen() -> usize {
    16
}
pub(crate) fn one_f() -> f64 {
    1.0
}
pub(crate) fn six_hundred() -> f64 {
    600.0
}

impl CodeParams {
    pub(crate) fn read(params: &toml::Table) -> std::result::Result<Self, SpecProblem> {
        let p: CodeParams = spec::params(params, &[])?;
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
        Ok(p)
    }

    pub(crate) fn sandbox(&self) -> Result<qval_methods::code::SandboxConfig> {
        qval_methods::code::SandboxConfig::builder()
            .call_limit(Duration::from_secs_f64(self.call_limit))
            .total_limit(Duration::from_secs_f64(self.total_limit))
            .build()
            .map_err(|e| RunnerError::Usage(format!("sandbox settings: {e}")))
    }
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

pub(crate) async fn code_samples(
    input: &BuildInput<'_>,
    p: &CodeParams,
) -> Result<Vec<Arc<qval_methods::code::CodeSample>>> {
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
    let config = p.sandbox()?;
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

pub(crate) struct Codegen;

#[async_trait]
impl MethodType for Codegen {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "code",
            summary: "N generated Python signal functions, each run on every point in a sandbox; reported as mean +- std [min, max]",
            signals: vec![Signal::Q, Signal::V],
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: code_params(),
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        CodeParams::read(&m.params).map(|_| ())
    }
    fn outputs(&self, m: &ResolvedMethod) -> Vec<String> {
        let n = CodeParams::read(&m.params).map(|p| p.samples).unwrap_or(0);
        (0..n).map(|i| format!("{}-s{i:02}", m.name)).collect()
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let p = CodeParams::read(&input.method.params).map_err(SpecProblem::into_error)?;
        let samples = code_samples(&input, &p).await?;
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

pub(crate) fn code_params() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("samples", "16", "generated functions"),
        ("call_limit", "1", "seconds one call may take"),
        ("total_limit", "600", "seconds all calls of one sample may take"),
    ]
}

pub(crate) struct CodegenAvg;

#[async_trait]
impl MethodType for CodegenAvg {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "code",
            summary: "per point, the NaN-skipping mean of the N generated functions (the same samples as codegen)",
            signals: vec![Signal::Q, Signal::V],
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: code_params(),
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        CodeParams::read(&m.params).map(|_| ())
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let p = CodeParams::read(&input.method.params).map_err(SpecProblem::into_error)?;
        let samples = code_samples(&input, &p).await?;
        Ok(vec![Arc::new(qval_methods::code::CodegenAvg::new(
            samples,
            input.method.signal,
        ))])
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EurekaParams {
    #[serde(default = "sixteen")]
    pub(crate) iterations: usize,
    #[serde(default = "eight")]
    pub(crate) candidates: usize,
    #[serde(default = "one_f")]
    pub(crate) call_limit: f64,
    #[serde(default = "six_hundred")]
    pub(crate) total_limit: f64,
}

pub(crate) fn eight() -> usize {
    8
}

impl EurekaParams {
    pub(crate) fn read(params: &toml::Table) -> std::result::Result<Self, SpecProblem> {
        let p: EurekaParams = spec::params(params, &[])?;
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
        CodeParams {
            samples: 1,
            call_limit: p.call_limit,
            total_limit: p.total_limit,
        }
        .sandbox()
        .map_err(|e| SpecProblem::at(crate::spec::at!["call_limit"], e.to_string()))?;
        Ok(p)
    }
}

pub(crate) struct Eureka;

#[async_trait]
impl MethodType for Eureka {
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
                ("iterations", "16", "rounds"),
                ("candidates", "8", "candidates per round"),
                ("call_limit", "1", "seconds one call may take"),
                ("total_limit", "600", "seconds all calls of one candidate may take"),
            ],
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        EurekaParams::read(&m.params).map(|_| ())
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        use qval_methods::code::{CodeSample, EurekaConfig, run_eureka};
        let p = EurekaParams::read(&input.method.params).map_err(SpecProblem::into_error)?;
        let sandbox = CodeParams {
            samples: 1,
            call_limit: p.call_limit,
            total_limit: p.total_limit,
        }
        .sandbox()?;
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
