//! The [`Environment`] trait: a multi-turn environment with a pure step function.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;

use crate::Result;
use crate::profile::EnvProfile;
use crate::seed::QRng;
use crate::types::{EvaluationPoint, Observation, Task, Trajectory};

/// Static facts about an environment that stages and methods need.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct EnvSpec {
    /// The environment's name, e.g. `frozenlake-8x8`.
    pub name: String,
    /// The step budget of an episode: after this many steps the episode is truncated.
    pub max_steps: usize,
    /// The default discount factor for labels.
    pub gamma: f64,
    /// How rewards are given, in words (shown to LLM methods).
    pub reward_description: String,
    /// Anything else a method should know (the action set, the observation format).
    pub notes: String,
}

/// The result of one step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutcome<S> {
    /// The next state.
    pub state: S,
    /// The reward for the step.
    pub reward: f64,
    /// Whether the MDP ended (goal reached, fell in a hole, submitted).
    pub terminated: bool,
}

/// A multi-turn environment whose `step` is a pure function of its inputs.
///
/// Purity is the contract that makes Monte-Carlo labels possible: any stored state can be
/// branched from any number of times. The step budget is *not* part of the state: stages count
/// steps and truncate at [`EnvSpec::max_steps`] (gymnasium's `terminated` vs `truncated`).
///
/// Required: [`spec`](Self::spec), [`tasks`](Self::tasks), [`reset`](Self::reset),
/// [`step`](Self::step), [`observe`](Self::observe), [`parse_action`](Self::parse_action),
/// [`render_action`](Self::render_action). [`legal_actions`](Self::legal_actions) defaults to
/// `None` (an open action set, such as shell commands); [`profile`](Self::profile), what the
/// environment tells methods about itself, to the generic profile.
///
/// # Example
/// A one-dimensional walk to the right end of a line:
/// ```
/// use qval_core::{Environment, EnvSpec, Observation, QRng, Result, StepOutcome, Task};
///
/// struct Line { spec: EnvSpec }
///
/// impl Environment for Line {
///     type State = u32;      // the position
///     type Action = i32;     // -1 or +1
///     fn spec(&self) -> &EnvSpec { &self.spec }
///     fn tasks(&self) -> Vec<Task> {
///         vec![Task { id: "line".into(), instruction: "reach 3".into(), params: Default::default() }]
///     }
///     fn reset(&self, _task: &Task, _rng: &mut QRng) -> Result<u32> { Ok(0) }
///     fn step(&self, s: &u32, a: &i32, _rng: &mut QRng) -> Result<StepOutcome<u32>> {
///         let next = (*s as i32 + a).clamp(0, 3) as u32;
///         Ok(StepOutcome { state: next, reward: f64::from(next == 3), terminated: next == 3 })
///     }
///     fn observe(&self, s: &u32) -> Observation { Observation::text(format!("at {s}")) }
///     fn legal_actions(&self, _s: &u32) -> Option<Vec<i32>> { Some(vec![-1, 1]) }
///     fn parse_action(&self, text: &str) -> i32 { if text.trim() == "left" { -1 } else { 1 } }
///     fn render_action(&self, a: &i32) -> String { if *a < 0 { "left".into() } else { "right".into() } }
/// }
///
/// let env = Line { spec: EnvSpec { name: "line".into(), max_steps: 10, gamma: 0.9,
///     reward_description: "1 at the end".into(), notes: String::new() } };
/// let mut rng = qval_core::seed::rng_for(0, &[]);
/// let out = env.step(&2, &1, &mut rng).unwrap();
/// assert!(out.terminated && out.reward == 1.0);
/// // Pure: the same inputs give the same output.
/// assert_eq!(env.step(&2, &1, &mut rng).unwrap(), out);
/// ```
pub trait Environment: Send + Sync {
    /// Everything the next step depends on. Serialisable so that points can be stored and
    /// restored.
    type State: Clone + Debug + Send + Sync + Serialize + DeserializeOwned + 'static;
    /// An action. Environments whose agents answer in free text represent an unparseable
    /// answer as an action too (it wastes the turn), so parsing never fails.
    type Action: Clone + Debug + PartialEq + Send + Sync + Serialize + DeserializeOwned + 'static;

    /// Static facts: name, step budget, default discount, reward description.
    fn spec(&self) -> &EnvSpec;

    /// The tasks this environment offers, in a fixed order.
    fn tasks(&self) -> Vec<Task>;

    /// The initial state for `task`.
    fn reset(&self, task: &Task, rng: &mut QRng) -> Result<Self::State>;

    /// The pure transition: the same `state`, `action` and generator state give the same
    /// outcome. Randomness (slippery ice) is drawn from `rng` only.
    fn step(&self, state: &Self::State, action: &Self::Action, rng: &mut QRng) -> Result<StepOutcome<Self::State>>;

    /// What an agent sees of `state`.
    fn observe(&self, state: &Self::State) -> Observation;

    /// The actions available in `state`, where the action set is closed.
    fn legal_actions(&self, _state: &Self::State) -> Option<Vec<Self::Action>> {
        None
    }

    /// Reads an action from an agent's text. Never fails: an unparseable text becomes the
    /// environment's "invalid" action, which wastes the turn.
    fn parse_action(&self, text: &str) -> Self::Action;

    /// The text form of an action, as an agent would write it.
    fn render_action(&self, action: &Self::Action) -> String;

    /// Whether `trajectory` reached the task's goal (the runner's "succeeded" count).
    ///
    /// Default: [`Trajectory::succeeded`], the last step terminated the episode with a
    /// positive reward (FrozenLake's goal). Override it where that is wrong, for example
    /// where every step costs -1 and the goal ends the episode without a positive reward
    /// (CliffWalking), or where the environment keeps its own success flag.
    fn succeeded(&self, trajectory: &Trajectory) -> bool {
        trajectory.succeeded()
    }

    /// What the environment tells methods about itself: the wording of the scoring
    /// family's prompts, the embedding family's goal texts, how short prompt fields may be
    /// cut, whether observations carry pictures. Methods read it from
    /// [`MethodContext::profile`](crate::MethodContext::profile) and never from the
    /// environment's name.
    ///
    /// Default: [`EnvProfile::default`], the generic wording and nothing else.
    ///
    /// # Example
    /// A walk to the end of a line, with texts for the embedding family:
    /// ```
    /// use qval_core::{EnvProfile, EnvSpec, Environment, GoalTexts, MethodContext, Observation, QRng,
    ///     Result, StepOutcome, Task};
    ///
    /// struct Line { spec: EnvSpec }
    ///
    /// impl Environment for Line {
    ///     type State = u32;
    ///     type Action = i32;
    ///     fn spec(&self) -> &EnvSpec { &self.spec }
    ///     fn tasks(&self) -> Vec<Task> {
    ///         vec![Task { id: "line".into(), instruction: "reach 3".into(), params: Default::default() }]
    ///     }
    ///     fn reset(&self, _: &Task, _: &mut QRng) -> Result<u32> { Ok(0) }
    ///     fn step(&self, s: &u32, a: &i32, _: &mut QRng) -> Result<StepOutcome<u32>> {
    ///         let next = (*s as i32 + a).clamp(0, 3) as u32;
    ///         Ok(StepOutcome { state: next, reward: f64::from(next == 3), terminated: next == 3 })
    ///     }
    ///     fn observe(&self, s: &u32) -> Observation { Observation::text(format!("at {s}")) }
    ///     fn parse_action(&self, text: &str) -> i32 { if text.trim() == "left" { -1 } else { 1 } }
    ///     fn render_action(&self, a: &i32) -> String { if *a < 0 { "left".into() } else { "right".into() } }
    ///     fn profile(&self) -> EnvProfile {
    ///         EnvProfile::default().with_goal_texts(GoalTexts {
    ///             goal: Some("at 3".into()),
    ///             baseline: "a line of four cells".into(),
    ///             negatives: vec!["at 0".into()],
    ///         })
    ///     }
    /// }
    ///
    /// let env = Line { spec: EnvSpec { name: "line".into(), max_steps: 10, gamma: 0.9,
    ///     reward_description: "1 at the end".into(), notes: String::new() } };
    /// // The context methods are given carries the profile.
    /// let ctx = MethodContext::for_env(&env);
    /// assert_eq!(ctx.profile.goal_texts().unwrap().goal.as_deref(), Some("at 3"));
    /// ```
    fn profile(&self) -> EnvProfile {
        EnvProfile::default()
    }
}

macro_rules! forward_env {
    ($($ty:ty),*) => {$(
        impl<E: Environment + ?Sized> Environment for $ty {
            type State = E::State;
            type Action = E::Action;
            fn spec(&self) -> &EnvSpec { (**self).spec() }
            fn tasks(&self) -> Vec<Task> { (**self).tasks() }
            fn reset(&self, task: &Task, rng: &mut QRng) -> Result<Self::State> { (**self).reset(task, rng) }
            fn step(&self, state: &Self::State, action: &Self::Action, rng: &mut QRng) -> Result<StepOutcome<Self::State>> {
                (**self).step(state, action, rng)
            }
            fn observe(&self, state: &Self::State) -> Observation { (**self).observe(state) }
            fn legal_actions(&self, state: &Self::State) -> Option<Vec<Self::Action>> { (**self).legal_actions(state) }
            fn parse_action(&self, text: &str) -> Self::Action { (**self).parse_action(text) }
            fn render_action(&self, action: &Self::Action) -> String { (**self).render_action(action) }
            fn succeeded(&self, trajectory: &Trajectory) -> bool { (**self).succeeded(trajectory) }
            fn profile(&self) -> EnvProfile { (**self).profile() }
        }
    )*};
}
forward_env!(&E, Box<E>, Arc<E>);

/// Points made from an environment's states.
impl EvaluationPoint {
    /// A point at `task`'s start, `state`, with id `task:<task id>` and no action: where a
    /// rollout from the state (V) begins, such as a fresh episode for pass@k.
    ///
    /// # Errors
    /// A state that does not serialise.
    pub fn at_start<E: Environment + ?Sized>(env: &E, task: Task, state: &E::State) -> crate::Result<Self> {
        let state_json = serde_json::to_value(state)
            .map_err(|e| crate::CoreError::Empty(format!("a state of task `{}` does not serialise: {e}", task.id)))?;
        let observation = env.observe(state);
        Ok(EvaluationPoint {
            id: format!("task:{}", task.id),
            trajectory_index: 0,
            step_index: 0,
            task,
            history: Vec::new(),
            state: state_json.clone(),
            observation: observation.clone(),
            action: serde_json::Value::Null,
            action_text: String::new(),
            reward: 0.0,
            next_state: state_json,
            next_observation: observation,
            terminated: false,
            candidate_of: None,
            thought: None,
        })
    }
}
