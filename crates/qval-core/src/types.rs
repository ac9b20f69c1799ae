//! The data that flows between stages: observations, trajectories, evaluation points, labels
//! and predictions. All of it is serde-serialisable and stored as JSON Lines (see [`crate::io`]).

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// An image shown to an agent or a method, e.g. a PNG rendering of the environment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Image {
    /// The media type, e.g. `image/png`.
    pub media_type: String,
    /// The encoded bytes (base64 in JSON).
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

impl Image {
    /// A PNG image from its encoded bytes.
    pub fn png(data: Vec<u8>) -> Self {
        Image {
            media_type: "image/png".into(),
            data,
        }
    }

    /// The image as a `data:` URL, the form OpenAI-compatible chat APIs accept.
    pub fn data_url(&self) -> String {
        format!(
            "data:{};base64,{}",
            self.media_type,
            base64::engine::general_purpose::STANDARD.encode(&self.data)
        )
    }
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// What an agent (or a method) sees of a state: text, and optionally images.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The text rendering.
    pub text: String,
    /// Image renderings, if the environment was asked for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
}

impl Observation {
    /// A text-only observation.
    pub fn text(text: impl Into<String>) -> Self {
        Observation {
            text: text.into(),
            images: Vec::new(),
        }
    }
}

/// One task of an environment: what the agent is asked to do, plus the environment-specific
/// parameters that [`crate::Environment::reset`] needs (a FrozenLake map, a TerminalBench task folder).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// A stable identifier, e.g. `frozenlake-8x8-map3`.
    pub id: String,
    /// The instruction given to the agent.
    pub instruction: String,
    /// Environment-specific parameters.
    #[serde(default)]
    pub params: Value,
}

/// One earlier turn of an episode, as shown to methods in the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// The 0-based step index of the turn.
    pub step: usize,
    /// The observation text before the action.
    pub observation: String,
    /// The action, as text.
    pub action: String,
    /// The reward received.
    pub reward: f64,
    /// The acting agent's stated reasoning for the action, if it gave any (an LLM agent's
    /// `<thought>`); not written when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<String>,
}

/// One decision point of a trajectory: state, action, result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// The 0-based step index (the step counter before the action).
    pub step: usize,
    /// The environment's state before the action, serialised.
    pub state: Value,
    /// What the agent saw before acting.
    pub observation: Observation,
    /// The action taken, serialised in the environment's action type.
    pub action: Value,
    /// The action as text.
    pub action_text: String,
    /// The reward received for the action.
    pub reward: f64,
    /// The state after the action, serialised.
    pub next_state: Value,
    /// What the agent saw after acting.
    pub next_observation: Observation,
    /// The MDP ended with this step (goal, hole, submitted).
    pub terminated: bool,
    /// The episode was cut by the step budget after this step.
    pub truncated: bool,
    /// The acting agent's stated reasoning for the action, if it gave any; not written when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<String>,
}

/// An episode: a task and the transitions an agent produced on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    /// The index of the trajectory in its collection.
    pub index: usize,
    /// The task it was run on.
    pub task: Task,
    /// The seed its randomness came from.
    pub seed: u64,
    /// The policy that produced it.
    pub policy: String,
    /// The transitions, in order.
    pub transitions: Vec<Transition>,
}

impl Trajectory {
    /// The id of the label of the trajectory at `index` (its return, for shaped rewards):
    /// `t<index>`.
    pub fn label_id(index: usize) -> String {
        format!("t{index}")
    }

    /// The return Σ γ^t r_t over every transition from the first (the published trajectory
    /// return, a step penalty included as the rewards include it); 0.0 for none.
    pub fn discounted_return(&self, gamma: f64) -> f64 {
        let (mut total, mut discount) = (0.0, 1.0);
        for t in &self.transitions {
            total += discount * t.reward;
            discount *= gamma;
        }
        total
    }

    /// The undiscounted sum of rewards.
    pub fn total_reward(&self) -> f64 {
        self.transitions.iter().map(|t| t.reward).sum()
    }

    /// Whether the episode ended by termination with a positive final reward.
    pub fn succeeded(&self) -> bool {
        self.transitions.last().is_some_and(|t| t.terminated && t.reward > 0.0)
    }

    /// The number of steps taken.
    pub fn len(&self) -> usize {
        self.transitions.len()
    }

    /// Whether no step was taken.
    pub fn is_empty(&self) -> bool {
        self.transitions.is_empty()
    }
}

/// A state-action pair sampled from a trajectory: what methods score and labelers label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvaluationPoint {
    /// A stable id, `t{trajectory}-s{step}`.
    pub id: String,
    /// The trajectory it comes from.
    pub trajectory_index: usize,
    /// The step index within the trajectory (the environment's step counter at `state`).
    pub step_index: usize,
    /// The task.
    pub task: Task,
    /// Earlier turns of the trajectory, oldest first.
    pub history: Vec<Turn>,
    /// The state, serialised.
    pub state: Value,
    /// The observation of the state.
    pub observation: Observation,
    /// The action taken, serialised.
    pub action: Value,
    /// The action as text.
    pub action_text: String,
    /// The reward of the transition.
    pub reward: f64,
    /// The state after the action, serialised.
    pub next_state: Value,
    /// The observation after the action.
    pub next_observation: Observation,
    /// Whether the action ended the episode.
    pub terminated: bool,
    /// For a ranking candidate: the id of the point whose state it shares (candidates of
    /// one state are ranked against each other). `None` for an ordinary point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_of: Option<String>,
    /// The acting agent's stated reasoning for the action, if it gave any (shown by prompts
    /// that ask for it, `include_current_thoughts`); not written when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<String>,
}

// `EvaluationPoint::from_step` (a point made by stepping an Environment) is in stage.rs, so
// that the data types do not import the Environment trait or the stages.
impl EvaluationPoint {
    /// The id of the point at `step` of trajectory `trajectory`.
    pub fn make_id(trajectory: usize, step: usize) -> String {
        format!("t{trajectory}-s{step}")
    }

    /// Builds the point for transition `step` of `trajectory`.
    ///
    /// # Panics
    /// If `step` is out of range.
    pub fn from_trajectory(trajectory: &Trajectory, step: usize) -> Self {
        let t = &trajectory.transitions[step];
        let history = trajectory.transitions[..step]
            .iter()
            .map(|h| Turn {
                step: h.step,
                observation: h.observation.text.clone(),
                action: h.action_text.clone(),
                reward: h.reward,
                thought: h.thought.clone(),
            })
            .collect();
        EvaluationPoint {
            id: Self::make_id(trajectory.index, t.step),
            trajectory_index: trajectory.index,
            step_index: t.step,
            task: trajectory.task.clone(),
            history,
            state: t.state.clone(),
            observation: t.observation.clone(),
            action: t.action.clone(),
            action_text: t.action_text.clone(),
            reward: t.reward,
            next_state: t.next_state.clone(),
            next_observation: t.next_observation.clone(),
            terminated: t.terminated,
            candidate_of: None,
            thought: t.thought.clone(),
        }
    }

    /// Deserialises the state into the environment's type.
    pub fn state_as<S: serde::de::DeserializeOwned>(&self) -> crate::Result<S> {
        self.restore(&self.state, "state")
    }

    /// Deserialises the next state into the environment's type.
    pub fn next_state_as<S: serde::de::DeserializeOwned>(&self) -> crate::Result<S> {
        self.restore(&self.next_state, "next state")
    }

    /// Deserialises the action into the environment's type.
    pub fn action_as<A: serde::de::DeserializeOwned>(&self) -> crate::Result<A> {
        self.restore(&self.action, "action")
    }

    fn restore<T: serde::de::DeserializeOwned>(&self, value: &Value, what: &'static str) -> crate::Result<T> {
        T::deserialize(value).map_err(|e| crate::CoreError::Restore {
            what,
            point: self.id.clone(),
            message: e.to_string(),
        })
    }
}

/// Which value a label or a method estimates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// Q(s, a): the value of taking the action in the state, then acting optimally.
    Q,
    /// V(s): the value of the state.
    V,
    /// V(s') - V(s).
    Advantage,
    /// Φ(s): a potential for reward shaping. A method predicts it directly (compared with V
    /// labels, the optimal potential being V*), or a shaped-reward method's F values become
    /// potentials by their running sum within each trajectory.
    Potential,
    /// F(s, a, s'): a shaped reward for one transition. Labels are the trajectories' returns,
    /// compared with the method's values summed over each trajectory's points.
    #[serde(rename = "shaped-reward")]
    ShapedReward,
}

impl Signal {
    /// Every signal, in the order above.
    pub const ALL: [Signal; 5] = [
        Signal::Q,
        Signal::V,
        Signal::Advantage,
        Signal::Potential,
        Signal::ShapedReward,
    ];

    /// The signal as it is written in files and names: `q`, `v`, `advantage`, `potential`
    /// or `shaped-reward` (its serde name).
    pub fn key(self) -> &'static str {
        match self {
            Signal::Q => "q",
            Signal::V => "v",
            Signal::Advantage => "advantage",
            Signal::Potential => "potential",
            Signal::ShapedReward => "shaped-reward",
        }
    }

    /// Whether the value depends on the action (and the next state): Q, advantage and
    /// shaped reward; V and potential are of the state alone.
    pub fn has_action(self) -> bool {
        !matches!(self, Signal::V | Signal::Potential)
    }

    /// Whether labels of this signal are values of the state from rollouts started there
    /// (V, and potential, whose labels are V's).
    pub fn is_state_value(self) -> bool {
        matches!(self, Signal::V | Signal::Potential)
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Q => "Q",
            Signal::V => "V",
            Signal::Advantage => "A",
            Signal::Potential => "Phi",
            Signal::ShapedReward => "F",
        })
    }
}

/// How the returns of several rollouts become one label.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// The maximum return (Max-Value Monte Carlo), the published default.
    #[default]
    Max,
    /// The mean return.
    Mean,
}

impl Aggregation {
    /// Aggregates `returns`; NaN for an empty slice.
    pub fn apply(self, returns: &[f64]) -> f64 {
        if returns.is_empty() {
            return f64::NAN;
        }
        match self {
            Aggregation::Max => returns.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Aggregation::Mean => returns.iter().sum::<f64>() / returns.len() as f64,
        }
    }
}

/// A reference value for one evaluation point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// The point's id.
    pub point_id: String,
    /// What the value estimates.
    pub signal: Signal,
    /// The aggregated value; NaN when aborted (null in JSON).
    #[serde(with = "nan_as_null")]
    pub value: f64,
    /// How `returns` were aggregated.
    pub aggregation: Aggregation,
    /// Each rollout's discounted return (for [`Signal::Advantage`]: those of V(s')).
    pub returns: Vec<f64>,
    /// For [`Signal::Advantage`]: the rollout returns of V(s).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baseline_returns: Vec<f64>,
    /// Why the point could not be labelled, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<String>,
    /// For a ranking candidate: the point whose state it shares (copied from
    /// [`EvaluationPoint::candidate_of`] by the label stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_of: Option<String>,
    /// For a Q label from rollouts: what the best rollout did after the forced action (the
    /// privileged evidence an oracle teacher such as sdpo-gt is shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expert: Option<ExpertRollout>,
    /// For a label made from rollouts: the environment steps of the rollouts behind it
    /// (whether run for it or read back), what the label costs to make from scratch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
}

/// A summary of one reference-policy rollout that starts with a forced action: its
/// transitions are numbered from 0, the forced step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExpertRollout {
    /// The reference policy's first action after the forced one (none if the forced step
    /// ended the episode or the step budget).
    pub next_action: Option<String>,
    /// Transitions made, the forced one included.
    pub steps: usize,
    /// The first transition with a positive reward, if any (0: the forced step itself).
    pub success_step: Option<usize>,
    /// The reward of the last transition.
    pub final_reward: f64,
}

impl Label {
    /// An exact label: a value computed, not estimated from rollouts (no returns; the
    /// aggregation is the expectation, `Mean`).
    pub fn exact(point_id: impl Into<String>, signal: Signal, value: f64) -> Self {
        Label {
            point_id: point_id.into(),
            signal,
            value,
            aggregation: Aggregation::Mean,
            returns: Vec::new(),
            baseline_returns: Vec::new(),
            aborted: None,
            candidate_of: None,
            expert: None,
            steps: None,
        }
    }

    /// An aborted label: NaN with its reason.
    pub fn aborted(
        point_id: impl Into<String>,
        signal: Signal,
        aggregation: Aggregation,
        reason: impl Into<String>,
    ) -> Self {
        Label {
            aborted: Some(reason.into()),
            ..Label::unlabelled(point_id, signal, aggregation)
        }
    }

    /// A label not yet given a value: NaN, no returns, not aborted.
    pub fn unlabelled(point_id: impl Into<String>, signal: Signal, aggregation: Aggregation) -> Self {
        Label {
            point_id: point_id.into(),
            signal,
            value: f64::NAN,
            aggregation,
            returns: Vec::new(),
            baseline_returns: Vec::new(),
            aborted: None,
            candidate_of: None,
            expert: None,
            steps: None,
        }
    }
}

/// A method's score for one evaluation point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The point's id.
    pub point_id: String,
    /// The score; NaN when the method failed (null in JSON).
    #[serde(with = "nan_as_null")]
    pub value: f64,
    /// Why the score is NaN, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The NaN came from a transport failure ([`crate::CoreError::Transient`]): not final,
    /// a rerun of the stage asks this point again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transient: bool,
}

/// Serde for `f64` that writes NaN (and infinities) as `null` and reads `null` back as NaN,
/// the convention of the published testbed's files.
pub mod nan_as_null {
    use super::*;

    /// Writes a finite number as itself and anything else as `null`.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    /// Reads a number, or `null` as NaN.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}
