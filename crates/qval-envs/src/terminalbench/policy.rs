//! TerminalBench policies: the oracle reference and the scripted noisy collector. (The
//! LLM agent lives with the backends, in `qval_methods::llm::agent`.)

use async_trait::async_trait;
use rand::Rng as _;

use super::{ShellAction, ShellState, TerminalBench};
use qval_core::{CoreError, Policy, PolicyInput, QRng, Result};

/// The reference policy: runs the task's whole solution script (`solution/solve.sh`, or `solution.sh`) (from the current state, as one
/// command), then submits. Deterministic, so one MVMC rollout per point is exact; the
/// shipped solutions are idempotent, so a state on the way to the solution keeps Q high and
/// a state that lost its inputs drops to 0.
#[derive(Clone, Copy, Debug, Default)]
pub struct OracleSolution;

#[async_trait]
impl Policy<TerminalBench> for OracleSolution {
    fn name(&self) -> String {
        "terminal-bench-oracle".into()
    }

    async fn act(
        &self,
        env: &TerminalBench,
        input: PolicyInput<'_, ShellState>,
        _rng: &mut QRng,
    ) -> Result<ShellAction> {
        let task = env.task(&input.state.task).ok_or_else(|| CoreError::Policy {
            policy: self.name(),
            message: format!("task `{}` is not loaded", input.state.task),
        })?;
        let solution = task.solution.trim_end();
        if input.state.commands.last().map(String::as_str) == Some(solution) {
            Ok(ShellAction::Submit)
        } else {
            Ok(ShellAction::Run(solution.to_string()))
        }
    }
}

/// The scripted noisy collector: the task's solution split into commands, played in order;
/// at each step, with probability `epsilon`, a plausible mistake instead (seeded): a
/// harmless look around (`ls -la`, `cat` a starting file), a wrong folder (`cd /tmp`), a
/// destructive command (delete or truncate a starting file), or an early `SUBMIT`. Progress
/// is read from the state's history (the longest prefix of the solution found in order), so
/// the policy itself holds no state. Gives trajectories with both successes and failures
/// offline.
#[derive(Clone, Copy, Debug)]
pub struct NoisyScripted {
    epsilon: f64,
}

impl NoisyScripted {
    /// A collector making a mistake with probability `epsilon` per step.
    ///
    /// # Errors
    /// `epsilon` outside [0, 1].
    pub fn new(epsilon: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&epsilon) {
            return Err(CoreError::invalid("epsilon", epsilon, "a probability in [0, 1]"));
        }
        Ok(NoisyScripted { epsilon })
    }

    /// A mistake for this state.
    pub fn mistake(env: &TerminalBench, state: &ShellState, rng: &mut QRng) -> ShellAction {
        let files = env.starting_files(&state.task).unwrap_or(&[]);
        let file = if files.is_empty() {
            "notes.txt".to_string()
        } else {
            files[rng.random_range(0..files.len())].clone()
        };
        let quoted = format!("'/app/{}'", file.replace('\'', "'\\''"));
        match rng.random_range(0..6) {
            0 => ShellAction::Run("ls -la".into()),
            1 => ShellAction::Run(format!("cat {quoted}")),
            2 => ShellAction::Run("cd /tmp".into()),
            3 => ShellAction::Run(format!("rm -f {quoted}")),
            4 => ShellAction::Run(format!(": > {quoted}")),
            _ => ShellAction::Submit,
        }
    }
}

/// How many solution commands the history has played, in order.
pub fn progress(steps: &[String], history: &[String]) -> usize {
    let mut done = 0;
    for c in history {
        if done < steps.len() && *c == steps[done] {
            done += 1;
        }
    }
    done
}

#[async_trait]
impl Policy<TerminalBench> for NoisyScripted {
    fn name(&self) -> String {
        format!("terminal-bench-noisy(epsilon={})", self.epsilon)
    }

    async fn act(
        &self,
        env: &TerminalBench,
        input: PolicyInput<'_, ShellState>,
        rng: &mut QRng,
    ) -> Result<ShellAction> {
        let state = input.state;
        let steps = env.solution_steps(&state.task).ok_or_else(|| CoreError::Policy {
            policy: self.name(),
            message: format!("task `{}` is not loaded", state.task),
        })?;
        // Draw both numbers every step, so one decision does not shift the others.
        let slip = rng.random::<f64>() < self.epsilon;
        let mistake = Self::mistake(env, state, rng);
        if slip {
            return Ok(mistake);
        }
        let done = progress(steps, &state.commands);
        Ok(match steps.get(done) {
            Some(c) => ShellAction::Run(c.clone()),
            None => ShellAction::Submit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_follows_the_solution_in_order() {
        let steps: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(progress(&steps, &h(&[])), 0);
        assert_eq!(progress(&steps, &h(&["a", "ls", "b"])), 2);
        assert_eq!(progress(&steps, &h(&["b", "a"])), 1);
        assert_eq!(progress(&steps, &h(&["a", "b", "c", "a"])), 3);
        assert!(NoisyScripted::new(1.5).is_err());
    }
}
