//! LLM access, re-exported from the `qval-llm` crate (the old paths keep working), and the
//! prompt builders of the LLM methods ([`prompt`]).

pub use qval_llm::*;

pub use crate::prompting::prompt;
pub use crate::prompting::prompt::{
    Budget, CharEstimate, Counter, MinChars, Modality, Preset, PromptOptions, TokenCounter, middle_truncate, preview,
};

/// A failed LLM call as a method's error for its point: a transport failure (connection,
/// time-out, 429 or a server error, after the client's retries) is
/// [`qval_core::CoreError::Transient`], so a rerun asks the point again; anything else is
/// final ([`qval_core::CoreError::Method`]). `what` opens the message.
pub fn failed(what: &str, e: LlmError) -> qval_core::CoreError {
    if e.is_transient() {
        qval_core::CoreError::Transient(format!("{what}: {e}"))
    } else {
        qval_core::CoreError::Method(format!("{what}: {e}").into())
    }
}
