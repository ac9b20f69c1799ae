//! The published verifier criteria (bethgelab/qval `src/qval/verifier_criteria.py`) for the
//! environments qval ships: FrozenLake and TerminalBench. Each criterion has a name and a
//! description for V and for Q, shown verbatim in the verifier's prompt as
//! `### Evaluation Criterion: {name}\n{description}`.

use qval_core::Signal;

/// One verifier criterion, as published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifierCriterion {
    /// The registry id (`frozen_lake_correctness`).
    pub id: &'static str,
    /// The name shown in the prompt (`Correctness`).
    pub name: &'static str,
    /// The description for state values.
    pub state_value_description: &'static str,
    /// The description for action values.
    pub q_value_description: &'static str,
}

impl VerifierCriterion {
    /// The description for `signal`: V and Q only, as published.
    pub fn description_for(&self, signal: Signal) -> Option<&'static str> {
        match signal {
            Signal::V => Some(self.state_value_description),
            Signal::Q => Some(self.q_value_description),
            _ => None,
        }
    }

    /// The block the prompt shows.
    pub fn block(&self, signal: Signal) -> Option<String> {
        self.description_for(signal)
            .map(|d| format!("### Evaluation Criterion: {}\n{d}", self.name))
    }

    /// The criterion with registry id `id`.
    pub fn by_id(id: &str) -> Option<&'static VerifierCriterion> {
        VERIFIER_CRITERIA.iter().find(|c| c.id == id)
    }

    /// Every registry id, in registry order.
    pub fn ids() -> Vec<&'static str> {
        VERIFIER_CRITERIA.iter().map(|c| c.id).collect()
    }
}

/// The published registry's criteria for TerminalBench and FrozenLake, texts verbatim.
pub const VERIFIER_CRITERIA: &[VerifierCriterion] = &[
    VerifierCriterion {
        id: "terminal_bench_correctness",
        name: "Correctness",
        state_value_description: "Judge how likely the current state of the trajectory is to lead to a correct final \
            solution that satisfies the task requirements. Reward states that already show strong evidence of correct \
            setup, correct intermediate results, or a clear path to a valid final output.",
        q_value_description: "Judge how much the chosen action and resulting next state improve the chances of \
            reaching a correct final solution that satisfies the task requirements. Reward actions that move the \
            agent toward the right files, commands, outputs, or validation steps.",
    },
    VerifierCriterion {
        id: "terminal_bench_error_detection",
        name: "Error Detection",
        state_value_description: "Judge whether the current state reveals unresolved failure signals or remains free \
            of them. Penalize states that already contain clear errors, contradictions, or evidence that the \
            trajectory is heading toward a broken solution.",
        q_value_description: "Judge whether the chosen action helps detect, avoid, or resolve errors rather than \
            introducing or ignoring them. Penalize actions that are likely to produce unresolved failures, misleading \
            output, or brittle workarounds.",
    },
    VerifierCriterion {
        id: "terminal_bench_efficiency",
        name: "Efficiency",
        state_value_description: "Judge how much useful progress the current state represents toward solving the task \
            with minimal wasted steps. Reward states that are close to a validated solution and penalize states that \
            suggest the agent is stalled, repeating work, or exploring unproductive paths.",
        q_value_description: "Judge how much the chosen action and resulting next state advance the solution \
            efficiently. Reward actions that make concrete forward progress and penalize actions that are redundant, \
            low-yield, or likely to waste turns.",
    },
    VerifierCriterion {
        id: "terminal_bench_resource_usage",
        name: "Resource Usage",
        state_value_description: "Judge whether the current state reflects disciplined resource use. Penalize states \
            that suggest the trajectory is relying on excessively expensive commands, noisy output, or other wasteful \
            behavior that makes successful completion less reliable.",
        q_value_description: "Judge whether the chosen action uses compute, memory, runtime, and terminal output \
            responsibly. Reward actions that are targeted and economical, and penalize actions that are likely to be \
            expensive, spammy, or unnecessary.",
    },
    VerifierCriterion {
        id: "frozen_lake_correctness",
        name: "Correctness",
        state_value_description: "Judge how likely the current position is to lead to the goal (G) within the \
            remaining step budget while staying on safe ice. Reward positions that still have a clear, unobstructed \
            route to the goal; penalize positions that are off-path, cornered, or already terminal without having \
            reached the goal.",
        q_value_description: "Judge how much the chosen action and resulting next position improve the chances of \
            reaching the goal (G). Reward actions that step along a valid path from the current position toward the \
            goal; penalize actions that step away from the goal or trap the agent in a dead-end region of the grid.",
    },
    VerifierCriterion {
        id: "frozen_lake_hazard_avoidance",
        name: "Hazard Avoidance",
        state_value_description: "Judge whether the current position is safely on ice rather than adjacent to or \
            surrounded by holes (H). Penalize positions whose neighboring cells make an accidental fall likely and \
            heavily penalize terminal positions that were reached by falling into a hole; reward positions with a \
            safety margin around them.",
        q_value_description: "Judge whether the chosen action avoids stepping into a hole (H) or maneuvering into a \
            cell tightly surrounded by holes. Reward actions that keep the agent on ice and move it toward hole-free \
            regions; heavily penalize actions whose resulting cell is a hole.",
    },
    VerifierCriterion {
        id: "frozen_lake_path_optimality",
        name: "Path Optimality",
        state_value_description: "Judge how close the current position is to the goal (G) along an optimal path, \
            relative to the remaining steps. Reward positions that are few moves from the goal with ample step budget \
            left; penalize positions that are far from the goal, have already consumed many steps, or sit on a detour \
            relative to the shortest path.",
        q_value_description: "Judge whether the chosen action shortens the remaining distance to the goal along a \
            valid path rather than backtracking, detouring, or oscillating. Reward actions that make monotonic \
            progress toward the goal; penalize actions that move away, bounce off the grid edge, or return to a \
            previously visited cell.",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_single_spaced_and_ids_unique() {
        let mut ids = VerifierCriterion::ids();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), VERIFIER_CRITERIA.len());
        for c in VERIFIER_CRITERIA {
            for d in [c.state_value_description, c.q_value_description] {
                assert!(!d.contains("  ") && d.ends_with('.'), "{}: {d}", c.id);
            }
        }
        let c = VerifierCriterion::by_id("frozen_lake_hazard_avoidance").unwrap();
        assert_eq!(
            c.block(Signal::Q).unwrap(),
            "### Evaluation Criterion: Hazard Avoidance\nJudge whether the chosen action avoids stepping into a hole \
             (H) or maneuvering into a cell tightly surrounded by holes. Reward actions that keep the agent on ice and \
             move it toward hole-free regions; heavily penalize actions whose resulting cell is a hole."
        );
        assert!(c.block(Signal::Advantage).is_none());
    }
}
