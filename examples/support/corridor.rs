//! The corridor: a user's environment type (`corridor`, with its `walker` policy) and method
//! type (`steps-left`), registered next to the built-in ones. Shared by the examples
//! `custom_environment` (the `qval` command with them) and `run_experiment` (the library API).

use std::sync::Arc;

use qval::runner::envs::TypedEnv;
use qval::runner::methods::simple;
use qval::runner::spec::{SpecProblem, params};
use qval::{
    DenseSignalMethod, EnvSpec, Environment, EvaluationPoint, MethodContext, Observation, Policy, PolicyInput, QRng,
    Result, Signal, StepOutcome, Task, async_trait,
};
use rand::Rng as _;

/// A corridor of `length` cells; the agent starts at 0 and is rewarded 1 at the far end.
/// With probability `slip` a move goes the other way.
struct Corridor {
    length: u32,
    slip: f64,
    spec: EnvSpec,
}

impl Environment for Corridor {
    type State = u32;
    type Action = i32;
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }
    fn tasks(&self) -> Vec<Task> {
        vec![Task {
            id: format!("corridor-{}", self.length),
            instruction: format!("Walk to cell {} at the far end.", self.length),
            params: Default::default(),
        }]
    }
    fn reset(&self, _: &Task, _: &mut QRng) -> Result<u32> {
        Ok(0)
    }
    fn step(&self, s: &u32, a: &i32, rng: &mut QRng) -> Result<StepOutcome<u32>> {
        let dir = if rng.random::<f64>() < self.slip { -a } else { *a };
        let next = (*s as i32 + dir).clamp(0, self.length as i32) as u32;
        Ok(StepOutcome {
            state: next,
            reward: f64::from(next == self.length),
            terminated: next == self.length,
        })
    }
    fn observe(&self, s: &u32) -> Observation {
        let cells: String = (0..=self.length).map(|i| if i == *s { '@' } else { '.' }).collect();
        Observation::text(cells)
    }
    fn legal_actions(&self, _: &u32) -> Option<Vec<i32>> {
        Some(vec![-1, 1])
    }
    fn parse_action(&self, text: &str) -> i32 {
        if text.trim() == "left" { -1 } else { 1 }
    }
    fn render_action(&self, a: &i32) -> String {
        if *a < 0 { "left".into() } else { "right".into() }
    }
}

/// Always right (the reference), or right with probability `1 - epsilon` (the collector).
struct Walker {
    epsilon: f64,
}

#[async_trait]
impl Policy<Corridor> for Walker {
    fn name(&self) -> String {
        format!("walker(epsilon={})", self.epsilon)
    }
    async fn act(&self, _: &Corridor, _: PolicyInput<'_, u32>, rng: &mut QRng) -> Result<i32> {
        Ok(if rng.random::<f64>() < self.epsilon { -1 } else { 1 })
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CorridorParams {
    #[serde(default = "ten")]
    length: u32,
    #[serde(default)]
    slip: f64,
}

fn ten() -> u32 {
    10
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WalkerParams {
    #[serde(default)]
    epsilon: f64,
}

/// Minus the cells left to walk after the step (s' for Q, s for V).
struct StepsLeft(Signal);

#[async_trait]
impl DenseSignalMethod for StepsLeft {
    fn name(&self) -> String {
        "steps-left".into()
    }
    fn signal(&self) -> Signal {
        self.0
    }
    async fn evaluate(&self, p: &EvaluationPoint, _: &MethodContext) -> Result<f64> {
        let text = if self.0 == Signal::V {
            &p.observation.text
        } else {
            &p.next_observation.text
        };
        let at = text.find('@').unwrap_or(0);
        Ok(-((text.len() - 1 - at) as f64))
    }
}

/// The built-in registry plus `corridor` and `steps-left`.
pub fn registry() -> qval::runner::Registry {
    qval::runner::Registry::builtin()
        .environment("corridor", |table, _services| {
            let p: CorridorParams = params(table, &[])?;
            if !(0.0..0.5).contains(&p.slip) {
                return Err(SpecProblem::at(
                    vec!["slip".into()],
                    format!("{}: give a value in [0, 0.5)", p.slip),
                ));
            }
            let env = Arc::new(Corridor {
                length: p.length,
                slip: p.slip,
                spec: EnvSpec {
                    name: "corridor".into(),
                    max_steps: 4 * p.length as usize,
                    gamma: 0.95,
                    reward_description: "1 on reaching the far end, 0 otherwise".into(),
                    notes: "Actions: left, right.".into(),
                },
            });
            let walker = |table: &toml::Table, _: &dyn qval::runner::envs::RunServices| {
                let p: WalkerParams = params(table, &[])?;
                Ok(Arc::new(Walker { epsilon: p.epsilon }) as Arc<dyn Policy<Corridor>>)
            };
            Ok(Arc::new(
                TypedEnv::new(env).policy("walker", walker).defaults("walker", "walker"),
            ))
        })
        .method("steps-left", simple("heuristic", |signal| Arc::new(StepsLeft(signal))))
}
