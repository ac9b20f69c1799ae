//! The [`DenseSignalMethod`] trait: the methods under test.

use async_trait::async_trait;
use std::sync::Arc;

use crate::Result;
use crate::env::{EnvSpec, Environment};
use crate::profile::EnvProfile;
use crate::types::{EvaluationPoint, Signal};

/// Whose future play the value a method estimates assumes (published `policy_assumption`):
/// prompts say "assuming optimal play thereafter" or "assuming you are the agent making all
/// future decisions". Potentials and shaped rewards ignore it (as published).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyAssumption {
    /// The optimal policy (default, as published).
    #[default]
    Optimal,
    /// The model's own policy: it is the agent making all future decisions.
    #[serde(rename = "self")]
    Own,
}

impl PolicyAssumption {
    /// The name experiment files use: `optimal` or `self`.
    pub fn key(self) -> &'static str {
        match self {
            PolicyAssumption::Optimal => "optimal",
            PolicyAssumption::Own => "self",
        }
    }

    /// The assumption named `key`, if any.
    pub fn from_key(key: &str) -> Option<Self> {
        [PolicyAssumption::Optimal, PolicyAssumption::Own]
            .into_iter()
            .find(|p| p.key() == key)
    }

    fn is_optimal(&self) -> bool {
        *self == PolicyAssumption::Optimal
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// What a method knows about the setting beyond the point itself.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MethodContext {
    /// The environment's name.
    pub env_name: String,
    /// How rewards are given, in words.
    pub reward_description: String,
    /// Environment notes (action set, observation format).
    pub notes: String,
    /// The discount factor of the labels.
    pub gamma: f64,
    /// Whether prompts state `gamma`; when false, an efficiency hint is given instead.
    pub disclose_gamma: bool,
    /// Whether Q methods are shown the next state.
    pub include_next_state: bool,
    /// How many earlier turns a prompt may show (the published default is 40).
    pub history_limit: usize,
    /// The episode's step budget.
    pub max_steps: usize,
    /// Whose future play the values assume (default optimal; not written when optimal).
    #[serde(default, skip_serializing_if = "PolicyAssumption::is_optimal")]
    pub policy: PolicyAssumption,
    /// The penalty the labels subtract at every step (0: none; not written when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub step_penalty: f64,
    /// Whether prompts state the step penalty; when false and it is positive, the efficiency
    /// hint is given instead (published `disclose_step_penalty`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub disclose_step_penalty: bool,
    /// Whether prompts show the acting agent's reasoning for the current action (`## Actor's
    /// Reasoning`, published `include_current_thoughts`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub include_current_thoughts: bool,
    /// Whether prompts show the agent's reasoning in the history (`[Turn t/M - Reasoning]`,
    /// published `include_history_thoughts`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub include_history_thoughts: bool,
    /// Few-shot example trajectories, rendered as the prompts' `## Example Trajectories`
    /// section (empty: none; published `example_trajectories_file`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub example_trajectories: String,
    /// What the environment tells methods about itself ([`Environment::profile`]): the
    /// wording of its prompts, its goal texts. Not serialised (a run's `run.json` records the
    /// context without it); [`EnvProfile::default`] when read back.
    #[serde(skip)]
    pub profile: Arc<EnvProfile>,
}

impl MethodContext {
    /// The context for an environment, with the published defaults: gamma from the spec and
    /// not disclosed (prompts say "discounted" and add the efficiency guidance), next state
    /// included, history limit 40.
    pub fn from_spec(spec: &EnvSpec) -> Self {
        MethodContext {
            env_name: spec.name.clone(),
            reward_description: spec.reward_description.clone(),
            notes: spec.notes.clone(),
            gamma: spec.gamma,
            disclose_gamma: false,
            include_next_state: true,
            history_limit: 40,
            max_steps: spec.max_steps,
            policy: PolicyAssumption::Optimal,
            step_penalty: 0.0,
            disclose_step_penalty: false,
            include_current_thoughts: false,
            include_history_thoughts: false,
            example_trajectories: String::new(),
            profile: Arc::default(),
        }
    }

    /// [`MethodContext::from_spec`] of `env`'s spec, with the profile `env` offers
    /// ([`Environment::profile`]).
    pub fn for_env<E: Environment + ?Sized>(env: &E) -> Self {
        MethodContext::from_spec(env.spec()).with_profile(env.profile())
    }

    /// The same context with `profile` (the profile of the environment the points are from).
    pub fn with_profile(mut self, profile: impl Into<Arc<EnvProfile>>) -> Self {
        self.profile = profile.into();
        self
    }
}

/// A dense supervision method: gives each evaluation point a score k(s, a).
///
/// Only the order of the scores matters (they are compared by rank correlation), so any
/// scale will do. Return an error, or NaN, when the method cannot score a point; the predict
/// stage records it as NaN with the reason and the evaluation drops that point.
///
/// Required: [`name`](Self::name), [`signal`](Self::signal) and [`evaluate`](Self::evaluate).
/// [`evaluate_batch`](Self::evaluate_batch) defaults to running `evaluate` on every point
/// concurrently on the current task; override it where a batch is cheaper (one prompt for
/// several points, one forward pass for many texts).
///
/// # Example
/// ```
/// use qval_core::{DenseSignalMethod, EvaluationPoint, MethodContext, Result, Signal};
///
/// /// Prefers short observations (a toy heuristic).
/// struct Brevity;
///
/// #[async_trait::async_trait]
/// impl DenseSignalMethod for Brevity {
///     fn name(&self) -> String { "brevity".into() }
///     fn signal(&self) -> Signal { Signal::Q }
///     async fn evaluate(&self, point: &EvaluationPoint, _ctx: &MethodContext) -> Result<f64> {
///         Ok(-(point.next_observation.text.len() as f64))
///     }
/// }
/// ```
#[async_trait]
pub trait DenseSignalMethod: Send + Sync {
    /// The name under which predictions are stored and reported.
    fn name(&self) -> String;

    /// The value the scores estimate; they are compared with labels of the same signal.
    fn signal(&self) -> Signal;

    /// Parameters worth recording in the prediction file's metadata (for example a code
    /// sample's `sample_group` and `sample_index`). Default: none.
    fn params(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Scores one point.
    async fn evaluate(&self, point: &EvaluationPoint, ctx: &MethodContext) -> Result<f64>;

    /// Scores several points; one result per point, in order.
    async fn evaluate_batch(&self, points: &[EvaluationPoint], ctx: &MethodContext) -> Vec<Result<f64>> {
        futures::future::join_all(points.iter().map(|p| self.evaluate(p, ctx))).await
    }
}

macro_rules! forward_method {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<M: DenseSignalMethod + ?Sized> DenseSignalMethod for $ty {
            fn name(&self) -> String { (**self).name() }
            fn signal(&self) -> Signal { (**self).signal() }
            fn params(&self) -> serde_json::Value { (**self).params() }
            async fn evaluate(&self, point: &EvaluationPoint, ctx: &MethodContext) -> Result<f64> {
                (**self).evaluate(point, ctx).await
            }
            async fn evaluate_batch(&self, points: &[EvaluationPoint], ctx: &MethodContext) -> Vec<Result<f64>> {
                (**self).evaluate_batch(points, ctx).await
            }
        }
    )*};
}
forward_method!(&M, Box<M>, Arc<M>);
