//! The embedding family as a method type: its parameters, encoders and the four scores.

use async_trait::async_trait;
use serde::Deserialize;
use std::sync::Arc;

use crate::Result;
use crate::envs::{EnvPlugin, RunServices};
use crate::spec::{self, SpecProblem};
use qval_core::DenseSignalMethod;

use super::api::Q_AND_V;
use super::{BuildInput, MethodInfo, MethodType, Modality, ParamDoc, PointSet, ResolvedMethod, parse_params};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmbeddingParams {
    #[serde(default, deserialize_with = "encoder")]
    encoder: Encoder,
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

/// Reads `encoder`, naming an unknown one as such ("unknown encoder `htp` (did you mean ...").
fn encoder<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Encoder, D::Error> {
    let name = String::deserialize(d)?;
    match name.as_str() {
        "minilm" => Ok(Encoder::Minilm),
        "http" => Ok(Encoder::Http),
        other => Err(serde::de::Error::custom(spec::unknown(
            "encoder",
            other,
            &["minilm", "http"],
        ))),
    }
}

/// Where the vectors come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Encoder {
    /// all-MiniLM-L6-v2 on candle (text).
    #[default]
    Minilm,
    /// An OpenAI-compatible `/embeddings` server.
    Http,
}

/// VLM-RM's projection weight (published).
const ALPHA: f64 = 0.5;
/// SOR's softmax temperature (published).
const TEMPERATURE: f64 = 0.07;
/// SOR threshold's probability (published).
const THRESHOLD: f64 = 0.5;
/// Texts per request to an embeddings server.
const BATCH_SIZE: usize = 32;

/// Which of the embedding family's four scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EmbeddingKind {
    /// Cosine with the goal text.
    GoalCosine,
    /// VLM-RM's projection.
    VlmRm,
    /// SOR's softmax over outcomes.
    Sor,
    /// SOR's goal probability over a threshold.
    SorThreshold,
}

impl EmbeddingKind {
    /// The method type's name.
    fn key(self) -> &'static str {
        match self {
            EmbeddingKind::GoalCosine => "goal-cosine",
            EmbeddingKind::VlmRm => "vlm-rm",
            EmbeddingKind::Sor => "sor",
            EmbeddingKind::SorThreshold => "sor-threshold",
        }
    }

    /// The keys of its own it takes besides the encoder's.
    fn own_keys(self) -> &'static [&'static str] {
        match self {
            EmbeddingKind::GoalCosine => &[],
            EmbeddingKind::VlmRm => &["alpha"],
            EmbeddingKind::Sor => &["temperature"],
            EmbeddingKind::SorThreshold => &["temperature", "threshold"],
        }
    }
}

/// The embedding family's four scores.
pub(crate) struct Embedding {
    pub(crate) kind: EmbeddingKind,
}

impl Embedding {
    fn read(&self, m: &ResolvedMethod) -> std::result::Result<EmbeddingParams, SpecProblem> {
        let p: EmbeddingParams = parse_params(m)?;
        let http_keys = [
            ("server", p.server.is_some()),
            ("base_url", p.base_url.is_some()),
            ("model", p.model.is_some()),
            ("api_key_env", p.api_key_env.is_some()),
            ("batch_size", p.batch_size.is_some()),
        ];
        match p.encoder {
            Encoder::Minilm => {
                if let Some((key, _)) = http_keys.iter().find(|(_, given)| *given) {
                    return Err(SpecProblem::at(
                        crate::spec::at![*key],
                        format!("`encoder = \"minilm\"` takes no `{key}` (it belongs to `encoder = \"http\"`)"),
                    ));
                }
                if m.modality == Modality::Image {
                    return Err(SpecProblem::at(
                        crate::spec::at!["modality"],
                        "`image`: all-MiniLM-L6-v2 encodes text only; pictures need `encoder = \"http\"` \
                         (a CLIP or SigLIP server)",
                    ));
                }
                crate::encoders::available().map_err(|e| SpecProblem::at(crate::spec::at!["type"], e.to_string()))?;
            }
            Encoder::Http => {
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
        }
        let allowed = self.kind.own_keys();
        for (key, v) in [
            ("alpha", p.alpha),
            ("temperature", p.temperature),
            ("threshold", p.threshold),
        ] {
            if v.is_some() && !allowed.contains(&key) {
                return Err(SpecProblem::at(
                    crate::spec::at![key],
                    format!("`{}` takes no `{key}`", self.kind.key()),
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
        if m.modality != Modality::Image {
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
    type Params = EmbeddingParams;
    fn info(&self) -> MethodInfo {
        let (summary, params) = match self.kind {
            EmbeddingKind::GoalCosine => ("cosine of the state's embedding and the goal text's", vec![]),
            EmbeddingKind::VlmRm => (
                "VLM-RM: the state projected on the baseline-to-goal direction",
                vec![ParamDoc::new("alpha", ALPHA, "projection weight")],
            ),
            EmbeddingKind::Sor => (
                "SOR: softmax of cosines over the goal and negative outcomes",
                vec![ParamDoc::new("temperature", TEMPERATURE, "softmax temperature")],
            ),
            EmbeddingKind::SorThreshold => (
                "SOR threshold: 1 when SOR's goal probability exceeds the threshold",
                vec![
                    ParamDoc::new("temperature", TEMPERATURE, "softmax temperature"),
                    ParamDoc::new("threshold", THRESHOLD, "probability"),
                ],
            ),
        };
        let mut all = vec![
            ParamDoc::new(
                "encoder",
                "minilm",
                "minilm (all-MiniLM-L6-v2, text) | http (an OpenAI-compatible /embeddings server, e.g. vLLM serving \
                 CLIP or SigLIP; text, or pictures with modality = \"image\")",
            ),
            ParamDoc::new(
                "server",
                "",
                "http: a named backend ([backends] / backends_file) whose model is an embeddings model (--base-url and --model readdress it like every named backend)",
            ),
            ParamDoc::new("base_url", "", "http: the server's URL, instead of `server`"),
            ParamDoc::new("model", "", "http: the embeddings model, with `base_url`"),
            ParamDoc::new(
                "api_key_env",
                "",
                "http: the variable holding the API key, with `base_url`",
            ),
            ParamDoc::new("batch_size", BATCH_SIZE, "http: texts per request"),
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
    fn params(&self, m: &ResolvedMethod) -> std::result::Result<EmbeddingParams, SpecProblem> {
        self.read(m)
    }
    fn check_plan(
        &self,
        p: &EmbeddingParams,
        m: &ResolvedMethod,
        env: &dyn EnvPlugin,
        services: &dyn RunServices,
    ) -> std::result::Result<(), SpecProblem> {
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
    async fn build(&self, p: &EmbeddingParams, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        use qval_methods::embedding::EmbeddingMethod;
        let m = input.method;
        let texts = self.texts(m, input.env).map_err(SpecProblem::into_error)?;
        let s = m.signal;
        let t = p.temperature.unwrap_or(TEMPERATURE);
        macro_rules! scored {
            ($encoder:expr) => {{
                let e = $encoder;
                match self.kind {
                    EmbeddingKind::GoalCosine => EmbeddingMethod::goal_cosine(e, texts, s),
                    EmbeddingKind::VlmRm => EmbeddingMethod::vlm_rm(e, texts, s, p.alpha.unwrap_or(ALPHA)),
                    EmbeddingKind::Sor => EmbeddingMethod::sor(e, texts, s, t),
                    EmbeddingKind::SorThreshold => {
                        EmbeddingMethod::threshold(e, texts, s, t, p.threshold.unwrap_or(THRESHOLD))
                    }
                }
            }};
        }
        if p.encoder == Encoder::Minilm {
            return Ok(vec![Arc::new(scored!(crate::encoders::text_encoder()?))]);
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
        Ok(vec![if m.modality == Modality::Image {
            Arc::new(method.on_images())
        } else {
            Arc::new(method)
        }])
    }
}
