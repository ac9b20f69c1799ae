//! `type = "python"`: a method written in Python (a subclass of
//! `qval_bridge.methods.Method`), run in a pool of worker processes.

use async_trait::async_trait;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::envs::{EnvPlugin, RunServices};
use crate::spec::{SpecProblem, at};
use crate::{Result, RunnerError};
use qval_core::{DenseSignalMethod, Signal};
use qval_methods::python::{MAX_BATCH, MAX_WORKERS, PythonMethod};

use super::{BuildInput, MethodInfo, MethodType, ParamDoc, PointSet, ResolvedMethod, parse_params};

/// Points per request unless the entry says otherwise.
const BATCH: usize = 64;
/// Seconds a worker has for one request.
const TIMEOUT: f64 = 60.0;

fn batch() -> usize {
    BATCH
}
fn one() -> usize {
    1
}
fn timeout() -> f64 {
    TIMEOUT
}

/// The entry's parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PythonParams {
    module: String,
    #[serde(default)]
    params: toml::Table,
    #[serde(default = "one")]
    workers: usize,
    #[serde(default = "batch")]
    batch_size: usize,
    #[serde(default = "timeout")]
    timeout_seconds: f64,
    #[serde(default)]
    ranking: bool,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    python: Option<PathBuf>,
}

impl PythonParams {
    /// `module` with a `path.py` part relative to the experiment file's folder.
    fn spec(&self, dir: &Path) -> String {
        match self.module.rsplit_once(':') {
            Some((file, class)) if file.ends_with(".py") && Path::new(file).is_relative() => {
                format!("{}:{class}", dir.join(file).display())
            }
            _ => self.module.clone(),
        }
    }
}

pub(crate) struct Python;

#[async_trait]
impl MethodType for Python {
    type Params = PythonParams;
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "python",
            summary: "a subclass of qval_bridge.methods.Method (module = \"pkg.mod:Class\" or \"file.py:Class\"), run in worker processes",
            signals: Signal::ALL.to_vec(),
            needs_backend: false,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![
                ParamDoc::new(
                    "module",
                    "",
                    "the class: `package.module:Class` or `path/to/file.py:Class` (relative to the experiment file)",
                ),
                ParamDoc::new("params", "{}", "keyword arguments of the class's constructor"),
                ParamDoc::new("workers", 1, "worker processes"),
                ParamDoc::new("batch_size", BATCH, "points per request"),
                ParamDoc::new(
                    "timeout_seconds",
                    TIMEOUT,
                    "seconds a worker has for one request before it is killed",
                ),
                ParamDoc::new(
                    "ranking",
                    false,
                    "score each state's legal actions together (the class sets `ranks = True`)",
                ),
                ParamDoc::new(
                    "seed",
                    "the experiment's seed",
                    "passed to the class; each point's seed derives from it",
                ),
                ParamDoc::new("python", "$QVAL_PYTHON or python3", "the interpreter"),
            ],
        }
    }
    fn params(&self, m: &ResolvedMethod) -> std::result::Result<PythonParams, SpecProblem> {
        let p: PythonParams = parse_params(m)?;
        match p.module.rsplit_once(':') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() => {}
            _ => {
                return Err(SpecProblem::at(
                    at!["module"],
                    format!("`{}`: give `package.module:Class` or `path/to/file.py:Class`", p.module),
                ));
            }
        }
        if p.params.contains_key("seed") {
            return Err(SpecProblem::at(
                at!["params", "seed"],
                "give `seed` beside `params`, not in it",
            ));
        }
        if !(1..=MAX_WORKERS).contains(&p.workers) {
            return Err(SpecProblem::at(
                at!["workers"],
                format!("{}: give 1 to {MAX_WORKERS}", p.workers),
            ));
        }
        if !(1..=MAX_BATCH).contains(&p.batch_size) {
            return Err(SpecProblem::at(
                at!["batch_size"],
                format!("{}: give 1 to {MAX_BATCH}", p.batch_size),
            ));
        }
        if !(p.timeout_seconds > 0.0 && p.timeout_seconds <= 86_400.0) {
            return Err(SpecProblem::at(
                at!["timeout_seconds"],
                format!("{}: give seconds in (0, 86400]", p.timeout_seconds),
            ));
        }
        Ok(p)
    }
    fn check_plan(
        &self,
        p: &PythonParams,
        _: &ResolvedMethod,
        _: &dyn EnvPlugin,
        services: &dyn RunServices,
    ) -> std::result::Result<(), SpecProblem> {
        let spec = p.spec(&services.spec_dir());
        let (file, _) = spec.rsplit_once(':').expect("checked in params");
        if file.ends_with(".py") && !Path::new(file).is_file() {
            return Err(SpecProblem::at(at!["module"], format!("no such file `{file}`")));
        }
        let python = p.python.clone().unwrap_or_else(qval_python::default_python);
        let bridge = qval_python::default_bridge_dir();
        qval_methods::python::check_importable(&spec, &python, &bridge, &[services.spec_dir()])
            .map_err(|why| SpecProblem::at(at!["module"], why))
    }
    fn point_set(&self, p: &PythonParams) -> PointSet {
        if p.ranking {
            PointSet::Candidates
        } else {
            PointSet::Points
        }
    }
    async fn build(&self, p: &PythonParams, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let dir = input.services.spec_dir();
        let params = serde_json::to_value(&p.params).map_err(|e| RunnerError::Usage(format!("params: {e}")))?;
        let mut b = PythonMethod::builder(p.spec(&dir), input.method.signal)
            .name(input.method.name.clone())
            .params(params)
            .seed(p.seed.unwrap_or(input.seed))
            .path(dir)
            .workers(p.workers)
            .batch_size(p.batch_size)
            .timeout(Duration::from_secs_f64(p.timeout_seconds))
            .ranking(p.ranking);
        if let Some(py) = &p.python {
            b = b.python(py);
        }
        if p.ranking {
            b = b.candidates(input.points);
        }
        let m = tokio::task::spawn_blocking(move || b.build())
            .await
            .map_err(|e| RunnerError::Usage(format!("starting the Python workers: {e}")))?
            .map_err(|e| RunnerError::plugin(format!("the Python method `{}` cannot start", input.method.name), e))?;
        Ok(vec![Arc::new(m)])
    }
}
