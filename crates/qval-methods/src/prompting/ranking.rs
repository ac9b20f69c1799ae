//! Ranking: the model orders the candidate actions of a state, best first; evaluated per
//! state (see `qval_metrics::per_state_ranking`).

use async_trait::async_trait;
use rand::seq::SliceRandom as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

use super::base::{Base, ReportsUsage};
use crate::llm::prompt::{
    Layout, Slot, adapt_closing, fitted_layout_parts, ranking_instructions, system_and_user, system_head, system_tail,
    text_len,
};
use crate::llm::{Backend, Message, Part, PromptOptions, extract_permutation};
use qval_core::seed::{rng_for, stable_hash};
use qval_core::{CoreError, DenseSignalMethod, Environment, EvaluationPoint, MethodContext, Result, Signal};

/// The separator between a state's id and a candidate number in candidate point ids.
pub(crate) const SEP: char = '~';

/// For each point, one candidate point per legal action of its state (for FrozenLake: the
/// four moves), with the action's own result; with `k`, at most `k` of them when a state has
/// more: as published, the state's own action and `k - 1` others drawn at random (with a
/// generator derived from `seed` and the point's id), kept in the legal actions' order. Ids
/// are `<point>~<j>`, `j` the action's place among the legal actions; each candidate's
/// [`EvaluationPoint::candidate_of`] names its point. The step of a candidate draws from a
/// generator derived from `seed` and the candidate's id, so slippery results are
/// reproducible.
///
/// # Errors
/// An environment without a closed action set, or a state that cannot be restored.
pub fn expand_candidates<E: Environment>(
    env: &E,
    points: &[EvaluationPoint],
    seed: u64,
    k: Option<usize>,
) -> Result<Vec<EvaluationPoint>> {
    let mut out = Vec::new();
    for p in points {
        let state: E::State = p.state_as()?;
        let actions = env.legal_actions(&state).ok_or_else(|| CoreError::Environment {
            env: env.spec().name.clone(),
            message: "ranking needs a closed action set (legal_actions)".into(),
        })?;
        let own: Option<E::Action> = p.action_as().ok();
        for j in kept(&actions, own.as_ref(), &p.id, seed, k) {
            out.push(stepped_candidate(
                env,
                &state,
                p,
                &actions[j],
                format!("{}{SEP}{j}", p.id),
                seed,
            )?);
        }
    }
    Ok(out)
}

/// The places of the legal actions kept as candidates: all, or with `k` below their number,
/// the point's own action and `k - 1` others drawn at random, in the legal actions' order.
fn kept<A: PartialEq>(actions: &[A], own: Option<&A>, id: &str, seed: u64, k: Option<usize>) -> Vec<usize> {
    let all = 0..actions.len();
    let Some(k) = k.filter(|&k| k < actions.len()) else {
        return all.collect();
    };
    let own = own.and_then(|a| actions.iter().position(|b| b == a));
    let mut others: Vec<usize> = all.filter(|&j| Some(j) != own).collect();
    others.shuffle(&mut rng_for(seed, &[stable_hash(id), stable_hash("candidates")]));
    let mut keep: Vec<usize> = own.into_iter().chain(others).take(k).collect();
    keep.sort_unstable();
    keep
}

/// The candidate point `id` of `p`'s state: `action` stepped from `state` with a generator
/// derived from `seed` and the id (so slippery results are reproducible), its result as the
/// next state, `candidate_of` naming `p`.
pub(crate) fn stepped_candidate<E: Environment>(
    env: &E,
    state: &E::State,
    p: &EvaluationPoint,
    action: &E::Action,
    id: String,
    seed: u64,
) -> Result<EvaluationPoint> {
    let mut rng = rng_for(seed, &[stable_hash(&id)]);
    let o = env.step(state, action, &mut rng)?;
    let ser = |v: serde_json::Result<serde_json::Value>| {
        v.map_err(|e| CoreError::Method(format!("cannot serialise a candidate: {e}").into()))
    };
    Ok(EvaluationPoint {
        id,
        action: ser(serde_json::to_value(action))?,
        action_text: env.render_action(action),
        reward: o.reward,
        next_observation: env.observe(&o.state),
        next_state: ser(serde_json::to_value(&o.state))?,
        terminated: o.terminated,
        candidate_of: Some(p.id.clone()),
        ..p.clone()
    })
}

/// A state's scores, computed once: one per candidate, or why the request failed.
type Answer = OnceCell<Result<Vec<f64>>>;

/// The ranking method. Score of a candidate: k - (its position in the model's order), so the
/// best-ranked of k candidates scores k. One request per state, shared by its candidates
/// however the points are batched.
///
/// As published, the candidates are shown in a random order per state, so a model's
/// position bias is not rewarded: the order derives from a seed and the state's id alone
/// ([`Ranking::shown_order`]), so a rerun shows the same order, and the answer is mapped back
/// to the candidates.
pub struct Ranking {
    base: Base,
    groups: Arc<HashMap<String, Vec<EvaluationPoint>>>,
    answers: Mutex<HashMap<String, Arc<Answer>>>,
    shuffle: Option<u64>,
}

impl Ranking {
    /// A ranking method over `backend`, given every candidate point it will score
    /// (from [`expand_candidates`]).
    pub fn new(backend: Arc<dyn Backend>, candidates: &[EvaluationPoint], options: PromptOptions) -> Self {
        let mut groups: HashMap<String, Vec<EvaluationPoint>> = HashMap::new();
        for c in candidates {
            let group = c.candidate_of.clone().unwrap_or_else(|| c.id.clone());
            groups.entry(group).or_default().push(c.clone());
        }
        Ranking {
            base: Base::new(backend, Signal::Q, options),
            groups: Arc::new(groups),
            answers: Mutex::new(HashMap::new()),
            shuffle: Some(0),
        }
    }

    /// The seed of the candidates' order (default `Some(0)`); `None` shows them in the order
    /// given (an ablation: position bias then counts).
    pub fn shuffle(mut self, seed: Option<u64>) -> Self {
        self.shuffle = seed;
        self
    }

    /// The order state `state`'s `k` candidates are shown in: entry i is the index (in the
    /// order given) of the candidate shown as option i + 1.
    pub fn shown_order(&self, state: &str, k: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..k).collect();
        if let Some(seed) = self.shuffle {
            use rand::seq::SliceRandom as _;
            order.shuffle(&mut rng_for(seed, &[stable_hash("ranking-order"), stable_hash(state)]));
        }
        order
    }

    /// Every state's shown order, as candidate ids (for the run's record).
    pub fn shown_orders(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        self.groups
            .iter()
            .map(|(state, c)| {
                let ids = self
                    .shown_order(state, c.len())
                    .into_iter()
                    .map(|i| c[i].id.clone())
                    .collect();
                (state.clone(), ids)
            })
            .collect()
    }

    /// The messages for a state's candidates, shown in the order given, as published: the
    /// state, then each candidate as `[**Candidate Action i**]` with its
    /// `[**Resulting State i**]`, answered as a list of numbers best first.
    pub fn messages(&self, candidates: &[EvaluationPoint], ctx: &MethodContext) -> Vec<Message> {
        let k = candidates.len();
        let opts = &self.base.options;
        let mut system = system_head(ctx, opts.preset, Slot::Ranking, Signal::Q);
        system.extend(crate::llm::prompt::actor_reasoning_guidance(ctx).map(String::from));
        system.push(ranking_instructions(ctx));
        system.extend(system_tail(ctx));
        system.push(adapt_closing(opts.preset.closing_ranking(), opts.thinking));
        let system = system.join("\n\n");
        let closing = if opts.preset.uses_answer_tags() {
            format!(
                "Rank all listed actions ({k} total here) from best (highest Q-value) to worst. Output a \
                 comma-separated list of action numbers inside <answer> tags, e.g. <answer>#, #, #, ...</answer>."
            )
        } else {
            format!(
                "Rank all listed actions ({k} total here) from best (highest Q-value) to worst. Output ONLY a \
                 comma-separated list of action numbers. For example: {}",
                (1..=k).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
            )
        };
        let mut candidate_parts = vec![
            Part::Text {
                text: "The following candidate actions are being evaluated in the current state:".into(),
            },
            Part::Text {
                text: "## Actions to rank".into(),
            },
        ];
        for (j, c) in candidates.iter().enumerate() {
            candidate_parts.push(Part::Text {
                text: format!("[**Candidate Action {}**]\n{}", j + 1, c.action_text),
            });
            if ctx.include_next_state {
                candidate_parts.push(Part::Text {
                    text: format!("[**Resulting State {}**]\n{}", j + 1, c.next_observation.text),
                });
                if opts.modality != crate::llm::Modality::Text {
                    candidate_parts.extend(
                        c.next_observation
                            .images
                            .iter()
                            .map(|i| Part::Image { url: i.data_url() }),
                    );
                }
            }
        }
        let header = "Rank the following actions by Q-value (best to worst) for the Current State:";
        let reserved = system.len() + header.len() + closing.len() + text_len(&candidate_parts);
        let mut state_only = ctx.clone();
        state_only.include_next_state = false;
        let mut parts = vec![Part::Text { text: header.into() }];
        parts.extend(fitted_layout_parts(
            &candidates[0],
            &state_only,
            Signal::V,
            opts,
            reserved,
            Layout::Ranking,
        ));
        parts.extend(candidate_parts);
        parts.push(Part::Text { text: closing });
        system_and_user(system, parts)
    }

    async fn scores_of(&self, parent: &str, ctx: &MethodContext) -> Result<Vec<f64>> {
        let cell = self
            .answers
            .lock()
            .expect("lock")
            .entry(parent.to_string())
            .or_default()
            .clone();
        let answer = cell
            .get_or_init(|| async {
                let candidates = self.groups.get(parent).ok_or_else(|| {
                    CoreError::Method(format!("no candidates were given for state `{parent}`").into())
                })?;
                let k = candidates.len();
                let shown_order = self.shown_order(parent, k);
                let shown: Vec<EvaluationPoint> = shown_order.iter().map(|&i| candidates[i].clone()).collect();
                let (answer, _) = self
                    .base
                    .ask_parsed(self.messages(&shown, ctx), self.base.sampling.clone(), |t| {
                        extract_permutation(t, k)
                    })
                    .await?;
                Ok(scores_from_answer(&answer, &shown_order))
            })
            .await;
        match answer {
            Ok(scores) => Ok(scores.clone()),
            Err(e) => Err(e.for_each_point()),
        }
    }
}

/// Candidate scores (in the order given) from a model's answer: `answer` lists shown
/// options (0-based) best first, `shown_order[j]` is the candidate shown as option j + 1.
pub fn scores_from_answer(answer: &[usize], shown_order: &[usize]) -> Vec<f64> {
    let k = shown_order.len();
    let mut scores = vec![0.0; k];
    for (pos, &option) in answer.iter().enumerate() {
        scores[shown_order[option]] = (k - pos) as f64;
    }
    scores
}

impl ReportsUsage for Ranking {
    fn usage(&self) -> serde_json::Value {
        self.base.usage.snapshot()
    }
}

#[async_trait]
impl DenseSignalMethod for Ranking {
    fn name(&self) -> String {
        "ranking-q".into()
    }
    fn signal(&self) -> Signal {
        Signal::Q
    }
    async fn evaluate(&self, point: &EvaluationPoint, ctx: &MethodContext) -> Result<f64> {
        let parent = point.candidate_of.as_deref().ok_or_else(|| {
            CoreError::Method(
                format!(
                    "`{}` is not a ranking candidate (no `candidate_of`; see expand_candidates)",
                    point.id
                )
                .into(),
            )
        })?;
        let scores = self.scores_of(parent, ctx).await?;
        let idx = self
            .groups
            .get(parent)
            .and_then(|g| g.iter().position(|c| c.id == point.id))
            .ok_or_else(|| CoreError::Method(format!("`{}` is not one of the candidates given", point.id).into()))?;
        Ok(scores[idx])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_k_legal_actions_the_states_own_among_them_drawn_reproducibly() {
        let actions: Vec<u32> = (0..10).collect();
        assert_eq!(
            kept(&actions, Some(&3), "p", 1, None),
            actions.iter().map(|&a| a as usize).collect::<Vec<_>>()
        );
        assert_eq!(kept(&actions, Some(&3), "p", 1, Some(10)).len(), 10);
        let mut draws = std::collections::HashSet::new();
        for id in ["a", "b", "c", "d", "e", "f"] {
            let k = kept(&actions, Some(&3), id, 1, Some(4));
            assert_eq!(k.len(), 4);
            assert!(k.contains(&3), "{k:?}");
            assert!(k.windows(2).all(|w| w[0] < w[1]), "in the legal order, distinct: {k:?}");
            assert_eq!(k, kept(&actions, Some(&3), id, 1, Some(4)), "reproducible");
            draws.insert(k);
        }
        assert!(draws.len() > 1, "the others are drawn per state");
        // An own action that is not legal: k legal ones.
        assert_eq!(kept(&actions, Some(&99), "p", 1, Some(4)).len(), 4);
    }

    /// All orders of 0..n.
    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for i in 0..=p.len() {
                let mut q = p.clone();
                q.insert(i, n - 1);
                out.push(q);
            }
        }
        out
    }

    #[test]
    fn answers_map_back_to_the_candidates_for_every_order_of_four() {
        // Candidates (in the order given) have true preference 2 > 0 > 3 > 1.
        let best_first = [2usize, 0, 3, 1];
        let want = [3.0, 1.0, 4.0, 2.0];
        let all = permutations(4);
        assert_eq!(all.len(), 24);
        for shown in all {
            // A faithful model answers with the options showing the candidates best first.
            let answer: Vec<usize> = best_first
                .iter()
                .map(|c| shown.iter().position(|s| s == c).unwrap())
                .collect();
            assert_eq!(scores_from_answer(&answer, &shown), want, "shown order {shown:?}");
        }
    }
}
