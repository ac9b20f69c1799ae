//! Universal self-consistency (as published): a selector model reads the candidates and names
//! the most consistent one. It scores 1 for the named candidate and 0 for the others; NaN for
//! all when the reply names none (the choice then falls back to a seeded draw). Candidates
//! whose texts are all equal need no request: the first is taken.

use async_trait::async_trait;
use regex::Regex;
use std::sync::{Arc, OnceLock};

use crate::llm::{Backend, ChatRequest, Message, Role, Sampling};
use qval_core::acting::Chooser;
use qval_core::{EvaluationPoint, MethodContext};

/// The published default of how much of each candidate the selector reads.
pub const MAX_CANDIDATE_CHARS: usize = 4_000;

/// Universal self-consistency over a selector backend.
pub struct Usc {
    backend: Arc<dyn Backend>,
    max_candidate_chars: usize,
    sampling: Sampling,
}

impl Usc {
    /// A selector on `backend`, reading at most `max_candidate_chars` characters of each
    /// candidate (at least 1).
    pub fn new(backend: Arc<dyn Backend>, max_candidate_chars: usize) -> Self {
        Usc {
            backend,
            max_candidate_chars: max_candidate_chars.max(1),
            sampling: Sampling::default(),
        }
    }

    /// The published prompt: one user message listing the candidates.
    pub fn prompt(&self, texts: &[String]) -> String {
        let listing: Vec<String> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let shown = if t.chars().count() > self.max_candidate_chars {
                    let cut: String = t.chars().take(self.max_candidate_chars).collect();
                    format!("{cut} …[truncated]")
                } else {
                    t.clone()
                };
                format!("Response {}: {shown}", i + 1)
            })
            .collect();
        format!(
            "I have generated the following candidate next actions for the current situation:\n\n{}\n\n\
             Select the response that is most consistent with the others \u{2014} the single action that best \
             represents the consensus among these candidates. You must choose exactly one. If there is no clear \
             majority, choose the response that is most representative of the candidates overall. Reason briefly \
             first if it helps (at most two or three sentences), then end your response with \"The most \
             consistent response is Response X\", replacing X with that response's number.",
            listing.join("\n")
        )
    }
}

/// The 0-based candidate a reply names among `n`: the last in-range "most consistent
/// response is Response N", else the last in-range "Response N" (as published).
pub fn parse_usc(reply: &str, n: usize) -> Option<usize> {
    static ANCHORED: OnceLock<Regex> = OnceLock::new();
    static BARE: OnceLock<Regex> = OnceLock::new();
    let anchored = ANCHORED
        .get_or_init(|| Regex::new(r"(?i)most consistent response is\s+response\s*#?\s*(\d+)").expect("a valid regex"));
    let bare = BARE.get_or_init(|| Regex::new(r"(?i)\bresponse\s*#?\s*(\d+)").expect("a valid regex"));
    let cleaned = qval_llm::extract::strip_thinking(reply);
    for re in [anchored, bare] {
        let found: Vec<usize> = re.captures_iter(&cleaned).filter_map(|c| c[1].parse().ok()).collect();
        if let Some(i) = found.into_iter().rev().find(|i| (1..=n).contains(i)) {
            return Some(i - 1);
        }
    }
    None
}

#[async_trait]
impl Chooser for Usc {
    fn name(&self) -> String {
        "usc".into()
    }

    async fn score(&self, candidates: &[EvaluationPoint], _: &MethodContext) -> Vec<f64> {
        let n = candidates.len();
        let texts: Vec<String> = candidates.iter().map(|c| c.action_text.trim().to_string()).collect();
        let one_hot = |i: usize| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect();
        if n <= 1 || texts.iter().all(|t| *t == texts[0]) {
            return one_hot(0);
        }
        let req = ChatRequest {
            messages: vec![Message::text(Role::User, self.prompt(&texts))],
            sampling: self.sampling.clone(),
        };
        match self.backend.chat(&req).await {
            Ok(reply) => match parse_usc(&reply.text, n) {
                Some(i) => one_hot(i),
                None => vec![f64::NAN; n],
            },
            Err(_) => vec![f64::NAN; n],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_in_range_anchored_answer_wins_then_the_last_bare_one() {
        assert_eq!(parse_usc("... The most consistent response is Response 2", 3), Some(1));
        assert_eq!(
            parse_usc("Response 1 looks odd. The most consistent response is Response 3.", 3),
            Some(2)
        );
        assert_eq!(
            parse_usc("the most consistent response is response #9; Response 2", 3),
            Some(1)
        );
        assert_eq!(parse_usc("<think>Response 1</think> I pick response 3", 3), Some(2));
        assert_eq!(parse_usc("no idea", 3), None);
    }
}
