//! LLM access, re-exported from the `qval-llm` crate (the old paths keep working), and the
//! prompt builders of the LLM methods ([`prompt`]).

pub use qval_llm::*;

pub use crate::prompting::prompt;
pub use crate::prompting::prompt::{
    Budget, CharEstimate, Counter, MinChars, Modality, Preset, PromptOptions, TokenCounter, middle_truncate, preview,
};
