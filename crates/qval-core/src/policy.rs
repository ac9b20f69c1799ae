//! The [`Policy`] trait: what picks actions during collection and reference rollouts.

use async_trait::async_trait;
use std::sync::Arc;

use crate::Result;
use crate::env::Environment;
use crate::seed::QRng;
use crate::types::{Task, Turn};

/// What a policy is given to choose an action.
#[derive(Debug)]
pub struct PolicyInput<'a, S> {
    /// The task of the episode.
    pub task: &'a Task,
    /// The current state.
    pub state: &'a S,
    /// The 0-based step counter at `state`.
    pub step: usize,
    /// The episode's step budget.
    pub max_steps: usize,
    /// Earlier turns, oldest first. Empty unless [`Policy::uses_history`] is true, so that
    /// cheap policies do not pay for rendering observations.
    pub history: &'a [Turn],
}

/// A policy: picks an action in a state. Async so that an LLM can be one.
///
/// Required: [`name`](Self::name) and [`act`](Self::act). A policy that reads the episode's
/// earlier turns (an LLM agent) overrides [`uses_history`](Self::uses_history) to return true.
///
/// # Example
/// ```
/// use qval_core::{Environment, Policy, PolicyInput, QRng, Result};
/// use rand::Rng as _;
///
/// /// Picks uniformly among the legal actions.
/// struct Uniform;
///
/// #[async_trait::async_trait]
/// impl<E: Environment> Policy<E> for Uniform {
///     fn name(&self) -> String { "uniform".into() }
///     async fn act(&self, env: &E, input: PolicyInput<'_, E::State>, rng: &mut QRng) -> Result<E::Action> {
///         let actions = env.legal_actions(input.state).expect("a closed action set");
///         Ok(actions[rng.random_range(0..actions.len())].clone())
///     }
/// }
/// ```
#[async_trait]
pub trait Policy<E: Environment + ?Sized>: Send + Sync {
    /// A short name, recorded in trajectories and label metadata.
    fn name(&self) -> String;

    /// Picks an action. Errors abort the episode or rollout (the point becomes NaN).
    async fn act(&self, env: &E, input: PolicyInput<'_, E::State>, rng: &mut QRng) -> Result<E::Action>;

    /// Picks an action and says why, if the policy states its reasoning (an LLM agent's
    /// `<thought>`); the collector keeps it with the step. Default: [`act`](Self::act), no
    /// reasoning.
    async fn act_explained(
        &self,
        env: &E,
        input: PolicyInput<'_, E::State>,
        rng: &mut QRng,
    ) -> Result<(E::Action, Option<String>)> {
        Ok((self.act(env, input, rng).await?, None))
    }

    /// Whether [`PolicyInput::history`] must be filled. Default: false.
    fn uses_history(&self) -> bool {
        false
    }

    /// Everything that decides its actions besides the input and the generator (for an LLM
    /// agent: the model, where it is served, its sampling and its prompt), part of the
    /// content address of stored rollouts ([`crate::rollout::RolloutKey`]). Default: the name.
    fn fingerprint(&self) -> String {
        self.name()
    }
}

macro_rules! forward_policy {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<E: Environment + ?Sized, P: Policy<E> + ?Sized> Policy<E> for $ty {
            fn name(&self) -> String { (**self).name() }
            async fn act(&self, env: &E, input: PolicyInput<'_, E::State>, rng: &mut QRng) -> Result<E::Action> {
                (**self).act(env, input, rng).await
            }
            async fn act_explained(
                &self,
                env: &E,
                input: PolicyInput<'_, E::State>,
                rng: &mut QRng,
            ) -> Result<(E::Action, Option<String>)> {
                (**self).act_explained(env, input, rng).await
            }
            fn uses_history(&self) -> bool { (**self).uses_history() }
            fn fingerprint(&self) -> String { (**self).fingerprint() }
        }
    )*};
}
forward_policy!(&P, Box<P>, Arc<P>);
