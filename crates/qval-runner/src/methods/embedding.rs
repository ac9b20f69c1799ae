//! The embedding family as a method type: its parameters, encoders and the four scores.

use async_trait::async_trait;
use serde::Deserialize;
use std::sync::Arc;

use crate::Result;
use crate::envs::{EnvPlugin, RunServices};
use crate::spec::{self, SpecProblem};
use qval_core::DenseSignalMethod;

use super::api::Q_AND_V;
use super::{BuildInput, MethodInfo, MethodType, PointSet, ResolvedMethod};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmbeddingParams {
    #[serde(default = "minilm")]
    pub(crate) encoder: String,
    #[serde(default)]
    pub(crate) alpha: Option<f64>,
    #[serde(default)]
    pub(crate) temperature: Option<f64>,
    #[serde(default)]
    pub(crate) threshold: Option<f64>,
    /// `encoder = "http"`: a named backend serving an embeddings model...
    #[serde(default)]
    pub(crate) server: Option<String>,
    /// ... or its URL and model.
    #[serde(default)]
    pub(crate) base_url: Option<String>,
    #[serde(default)]
    pub(crate) model: Option<String>,
    #[serde(default)]
    pub(crate) api_key_env: Option<String>,
    #[serde(default)]
    pub(crate) batch_size: Option<usize>,
}

pub(crate) fn minilm() -> String {
    "minilm".into()
}

/// The embedding family's four scores.
pub(crate) struct Embedding {
    pub(crate) kind: &'static str,
}

impl Embedding {
    pub(crate) fn read(&self, m: &ResolvedMethod) -> std::result::Result<EmbeddingParams, SpecProblem> {
        let p: EmbeddingParams = spec::params(&m.params, &[])?;
        let http_keys = [
            ("server", p.server.is_some()),
            ("base_url", p.base_url.is_some()),
            ("model", p.model.is_some()),
            ("api_key_env", p.api_key_env.is_some()),
            ("batch_size", p.batch_size.is_some()),
        ];
        match p.encoder.as_str() {
            "minilm" => {
                if let Some((key, _)) = http_keys.iter().find(|(_, given)| *given) {
                    return Err(SpecProblem::at(
                        crate::spec::at![*key],
                        format!("`encoder = \"minilm\"` takes no `{key}` (it belongs to `encoder = \"http\"`)"),
                    ));
                }
                if m.modality == "image" {
                    return Err(SpecProblem::at(
                        crate::spec::at!["modality"],
                        "`image`: all-MiniLM-L6-v2 encodes text only; pictures need `encoder = \"http\"` \
                         (a CLIP or SigLIP server)",
                    ));
                }
                crate::encoders::available(&p.encoder)
                    .map_err(|e| SpecProblem::at(crate::spec::at!["type"], e.to_string()))?;
            }
            "http" => {
                match (&p.server, &p.base_url, &p.model) {
                    (Some(_), None, None) => {
                        if p.api_key_env.is_some() {
                            return Err(SpecProblem::at(
                                crate::spec::at!["api_key_env"],
                                "with `server`, the key variable is the backend's own `api_key_env`",
                            ));
                        }
                    }
                    (Some(_), _, _) => {
                        return Err(SpecProblem::at(
                            crate::spec::at!["server"],
                            "give `server` or `base_url` and `model`, not both",
                        ));
                    }
                    (None, Some(url), Some(model)) => {
                        if !(url.starts_with("http://") || url.starts_with("https://")) {
                            return Err(SpecProblem::at(
                                crate::spec::at!["base_url"],
                                format!("{url:?}: give an http:// or https:// URL"),
                            ));
                        }
                        if model.trim().is_empty() {
                            return Err(SpecProblem::at(
                                crate::spec::at!["model"],
                                "empty: name the embeddings model",
                            ));
                        }
                    }
                    (None, Some(_), None) => {
                        return Err(SpecProblem::at(
                            crate::spec::at!["base_url"],
                            "`base_url` needs `model`: the embeddings model it serves",
                        ));
                    }
                    (None, None, Some(_)) => {
                        return Err(SpecProblem::at(
                            crate::spec::at!["model"],
                            "`model` needs `base_url`: where it is served",
                        ));
                    }
                    (None, None, None) => {
                        return Err(SpecProblem::at(
                            crate::spec::at!["encoder"],
                            "`encoder = \"http\"` needs `server = \"NAME\"` (a backend serving an embeddings \
                             model) or `base_url` and `model`",
                        ));
                    }
                }
                if let Some(n) = p.batch_size {
                    crate::limits::at_most(
                        crate::spec::at!["batch_size"],
                        n,
                        4_096,
                        "a request's texts and their vectors are held in memory",
                    )?;
                }
                if p.batch_size == Some(0) {
                    return Err(SpecProblem::at(crate::spec::at!["batch_size"], "0: give at least 1"));
                }
            }
            other => {
                return Err(SpecProblem::at(
                    crate::spec::at!["encoder"],
                    spec::unknown("encoder", other, &["minilm", "http"]),
                ));
            }
        }
        let allowed: &[&str] = match self.kind {
            "goal-cosine" => &[],
            "vlm-rm" => &["alpha"],
            "sor" => &["temperature"],
            _ => &["temperature", "threshold"],
        };
        for (key, v) in [
            ("alpha", p.alpha),
            ("temperature", p.temperature),
            ("threshold", p.threshold),
        ] {
            if v.is_some() && !allowed.contains(&key) {
                return Err(SpecProblem::at(
                    crate::spec::at![key],
                    format!("`{}` takes no `{key}`", self.kind),
                ));
            }
        }
        if let Some(a) = p.alpha
            && !(0.0..=1.0).contains(&a)
        {
            return Err(SpecProblem::at(
                crate::spec::at!["alpha"],
                format!("{a}: give a value in [0, 1]"),
            ));
        }
        if let Some(t) = p.temperature
            && !(t > 0.0 && t.is_finite())
        {
            return Err(SpecProblem::at(
                crate::spec::at!["temperature"],
                format!("{t}: give a positive value"),
            ));
        }
        Ok(p)
    }

    /// The texts the scores compare with: the environment's ([`EnvPlugin::profile`]), for its
    /// text or its pictures.
    pub(crate) fn texts(
        &self,
        m: &ResolvedMethod,
        env: &dyn EnvPlugin,
    ) -> std::result::Result<qval_methods::embedding::GoalTexts, SpecProblem> {
        let name = env.spec().name;
        let profile = env.profile();
        if m.modality != "image" {
            return profile.goal_texts().cloned().ok_or_else(|| {
                SpecProblem::at(
                    crate::spec::at!["type"],
                    format!("environment `{name}` defines no goal texts for the embedding family"),
                )
            });
        }
        if !profile.gives_images() {
            return Err(SpecProblem::at(
                crate::spec::at!["modality"],
                format!(
                    "`image`: environment `{name}` gives no pictures as configured (FrozenLake gives them with \
                     `observation = \"image\"` in [environment])"
                ),
            ));
        }
        profile.image_goal_texts().cloned().ok_or_else(|| {
            SpecProblem::at(
                crate::spec::at!["modality"],
                format!("`image`: environment `{name}` defines no texts to compare its pictures with"),
            )
        })
    }
}

#[async_trait]
impl MethodType for Embedding {
    fn info(&self) -> MethodInfo {
        let (summary, params): (&'static str, Vec<(&'static str, &'static str, &'static str)>) = match self.kind {
            "goal-cosine" => ("cosine of the state's embedding and the goal text's", vec![]),
            "vlm-rm" => (
                "VLM-RM: the state projected on the baseline-to-goal direction",
                vec![("alpha", "0.5", "projection weight")],
            ),
            "sor" => (
                "SOR: softmax of cosines over the goal and negative outcomes",
                vec![("temperature", "0.07", "softmax temperature")],
            ),
            _ => (
                "SOR threshold: 1 when SOR's goal probability exceeds the threshold",
                vec![
                    ("temperature", "0.07", "softmax temperature"),
                    ("threshold", "0.5", "probability"),
                ],
            ),
        };
        let mut all = vec![
            (
                "encoder",
                "minilm",
                "minilm (all-MiniLM-L6-v2, text) | http (an OpenAI-compatible /embeddings server, e.g. vLLM serving \
                 CLIP or SigLIP; text, or pictures with modality = \"image\")",
            ),
            (
                "server",
                "",
                "http: a named backend ([backends] / backends_file) whose model is an embeddings model (--base-url and --model readdress it like every named backend)",
            ),
            ("base_url", "", "http: the server's URL, instead of `server`"),
            ("model", "", "http: the embeddings model, with `base_url`"),
            (
                "api_key_env",
                "",
                "http: the variable holding the API key, with `base_url`",
            ),
            ("batch_size", "32", "http: texts per request"),
        ];
        all.extend(params);
        MethodInfo {
            family: "embedding",
            summary,
            signals: Q_AND_V.to_vec(),
            needs_backend: false,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: all,
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        self.read(m).map(|_| ())
    }
    fn check_plan(
        &self,
        m: &ResolvedMethod,
        env: &dyn EnvPlugin,
        services: &dyn RunServices,
    ) -> std::result::Result<(), SpecProblem> {
        let p = self.read(m)?;
        self.texts(m, env)?;
        if let Some(server) = &p.server {
            let entries = services.backend_entries();
            if !entries.contains_key(server) {
                let names: Vec<&str> = entries.keys().map(String::as_str).collect();
                return Err(SpecProblem::at(
                    crate::spec::at!["server"],
                    spec::unknown("backend", server, &names),
                ));
            }
        }
        Ok(())
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        use qval_methods::embedding::EmbeddingMethod;
        let m = input.method;
        let p = self.read(m).map_err(SpecProblem::into_error)?;
        let texts = self.texts(m, input.env).map_err(SpecProblem::into_error)?;
        let s = m.signal;
        let t = p.temperature.unwrap_or(0.07);
        macro_rules! scored {
            ($encoder:expr) => {{
                let e = $encoder;
                match self.kind {
                    "goal-cosine" => EmbeddingMethod::goal_cosine(e, texts, s),
                    "vlm-rm" => EmbeddingMethod::vlm_rm(e, texts, s, p.alpha.unwrap_or(0.5)),
                    "sor" => EmbeddingMethod::sor(e, texts, s, t),
                    _ => EmbeddingMethod::threshold(e, texts, s, t, p.threshold.unwrap_or(0.5)),
                }
            }};
        }
        if p.encoder == "minilm" {
            return Ok(vec![Arc::new(scored!(crate::encoders::text_encoder(&p.encoder)?))]);
        }
        let http = crate::encoders::HttpSettings {
            server: p.server.clone(),
            base_url: p.base_url.clone(),
            model: p.model.clone(),
            api_key_env: p.api_key_env.clone(),
            batch_size: p.batch_size,
        };
        let encoder = crate::encoders::http_encoder(&http, input.services)?;
        let method = scored!(encoder);
        Ok(vec![if m.modality == "image" {
            Arc::new(method.on_images())
        } else {
            Arc::new(method)
        }])
    }
}
