//! TerminalBench's hand-written signal (the environment's `heuristic` method): what a shell-savvy reviewer would guess from one
//! step, without running anything.

use async_trait::async_trait;
use regex::Regex;
use std::sync::LazyLock;

use super::{ShellAction, ShellState};
use qval_core::{DenseSignalMethod, EvaluationPoint, MethodContext, Result, Signal};

static DESTRUCTIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(^|[;&|(\s])(rm|shred|truncate|unlink)\s|(^|[;&|]\s*):\s*>|>\s*/dev/sd|mkfs").expect("a valid regex")
});

/// Scores a step (s, a, s') of TerminalBench for Q, from the command and what it did:
///
/// | step | score |
/// |---|---|
/// | a destructive command (`rm`, `shred`, `truncate`, `unlink`, `: > file`) | 0.0 |
/// | killed by the time limit | 0.1 |
/// | non-zero exit status | 0.25 |
/// | `SUBMIT` | 0.5 |
/// | success, files unchanged (looking around) | 0.75 |
/// | success, files changed | 1.0 |
///
/// It never looks at the tests' verdict, which is the reward itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShellHeuristic;

impl ShellHeuristic {
    /// The score of taking `action` in `state`, leading to `next`.
    pub fn score(state: &ShellState, action: &ShellAction, next: &ShellState) -> f64 {
        let ShellAction::Run(command) = action else {
            return 0.5;
        };
        if DESTRUCTIVE.is_match(command) {
            return 0.0;
        }
        match &next.last {
            Some(l) if l.timed_out => 0.1,
            Some(l) if l.exit_code != Some(0) => 0.25,
            _ if next.tree != state.tree => 1.0,
            _ => 0.75,
        }
    }
}

#[async_trait]
impl DenseSignalMethod for ShellHeuristic {
    fn name(&self) -> String {
        "shell-heuristic-q".into()
    }

    fn signal(&self) -> Signal {
        Signal::Q
    }

    async fn evaluate(&self, point: &EvaluationPoint, _ctx: &MethodContext) -> Result<f64> {
        Ok(Self::score(
            &point.state_as()?,
            &point.action_as()?,
            &point.next_state_as()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destructive_commands_are_recognised() {
        for c in [
            "rm -f a",
            "cd /app && rm -rf x",
            ": > log.txt",
            "ls; truncate -s0 f",
            "unlink x",
        ] {
            assert!(DESTRUCTIVE.is_match(c), "{c}");
        }
        for c in [
            "ls -la",
            "grep -c ERROR a > b",
            "echo rm",
            "format x",
            "python3 -c 'print(1)'",
        ] {
            assert!(!DESTRUCTIVE.is_match(c), "{c}");
        }
    }
}
