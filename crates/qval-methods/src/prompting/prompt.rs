//! The published prompts (QVal's `prompts.py` and `prompt_presets.py`), built from their
//! parts: a system prompt of role, signal definition, the [`Preset`]'s guidance, the method's
//! instructions, the environment (`## Task Description`, `## Episode Configuration`,
//! `## Reward Functions`) and the closing; a user prompt of a header, the point's sections
//! (`### State-Action History`, `### Current State`, `### Current Action`, `### Next State`)
//! and the answer request. [`preview`] shows the exact messages a method would send, without
//! calling a model.

use qval_core::{EvaluationPoint, MethodContext, Observation, Signal};
use serde::{Deserialize, Serialize};

use qval_llm::{Message, Part, Role};

/// Which renderings of states a prompt shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Text observations (default).
    #[default]
    Text,
    /// Images (as data URLs) in place of the text of states.
    Image,
    /// Both.
    TextAndImage,
}

/// A size limit for prompts. To meet it, fields longer than their published minimum
/// ([`MinChars`]) are first cut in the middle (history observations from the earliest, then
/// the next state, then the current state), then the oldest history turns are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// At most this many characters of text.
    Chars(usize),
    /// At most this many tokens, counted by [`PromptOptions::counter`] (the model's
    /// `tokenizer.json`, or the published estimate of 3.5 characters per token; images are
    /// not counted).
    Tokens(usize),
}

/// Counts the tokens of prompt text, for [`Budget::Tokens`].
///
/// # Example
/// ```
/// use qval_methods::llm::prompt::{CharEstimate, TokenCounter};
/// // The published estimate: max(1, round(characters / 3.5)).
/// assert_eq!(CharEstimate.count("seven characters!"), 5);
/// assert_eq!(CharEstimate.count(""), 1);
/// ```
pub trait TokenCounter: Send + Sync {
    /// What counts (for records).
    fn name(&self) -> String;
    /// The tokens of `text`.
    fn count(&self, text: &str) -> usize;
}

/// The published estimate when no tokenizer is given: max(1, round(characters / 3.5)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CharEstimate;

impl TokenCounter for CharEstimate {
    fn name(&self) -> String {
        "3.5 characters per token".into()
    }
    fn count(&self, text: &str) -> usize {
        ((text.chars().count() as f64 / 3.5).round() as usize).max(1)
    }
}

/// A model's own tokenizer, from its `tokenizer.json` (the tokenizers crate; no special
/// tokens added, as the published budget counts).
#[cfg(feature = "tokenizer")]
pub struct TokenizerFile {
    path: std::path::PathBuf,
    tokenizer: tokenizers::Tokenizer,
}

#[cfg(feature = "tokenizer")]
impl TokenizerFile {
    /// Loads `path`.
    ///
    /// # Errors
    /// [`qval_core::CoreError::Method`] naming the file if it is not a tokenizer.
    pub fn load(path: impl Into<std::path::PathBuf>) -> qval_core::Result<Self> {
        let path = path.into();
        let mut tokenizer = tokenizers::Tokenizer::from_file(&path).map_err(|e| {
            qval_core::CoreError::Method(format!("{}: not a tokenizer.json: {e}", path.display()).into())
        })?;
        // Count the text as it is: no padding to a length, no truncation.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| qval_core::CoreError::Method(format!("{}: {e}", path.display()).into()))?;
        Ok(TokenizerFile { path, tokenizer })
    }
}

#[cfg(feature = "tokenizer")]
impl TokenCounter for TokenizerFile {
    fn name(&self) -> String {
        self.path.display().to_string()
    }
    fn count(&self, text: &str) -> usize {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.len())
            .unwrap_or_else(|_| CharEstimate.count(text))
    }
}

/// The token counter of a method's prompts (default: [`CharEstimate`]).
#[derive(Clone, Default)]
pub struct Counter(pub Option<std::sync::Arc<dyn TokenCounter>>);

impl Counter {
    fn count(&self, text: &str) -> usize {
        match &self.0 {
            Some(c) => c.count(text),
            None => CharEstimate.count(text),
        }
    }
    fn name(&self) -> String {
        self.0.as_ref().map(|c| c.name()).unwrap_or_else(|| CharEstimate.name())
    }
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counter({})", self.name())
    }
}

impl PartialEq for Counter {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

pub use super::wording::{actor_reasoning_guidance, policy_noun, policy_phrase, step_penalty_sentence};
/// The shortest a field may be cut to (characters): the environment's own, from its profile
/// ([`qval_core::EnvProfile::min_chars`]; TerminalBench: history observations 2048, current
/// and next state 4096; FrozenLake none: never cut).
pub use qval_core::profile::MinChars;

/// Cuts `text` to `max` characters in the middle, as published: the first and last halves
/// kept around `[... N characters omitted ...]` (the marker not counted).
pub fn middle_truncate(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_string();
    }
    let half = max / 2;
    let head: String = text.chars().take(half).collect();
    let tail: String = text.chars().skip(n - half).collect();
    format!("{head}\n\n[... {} characters omitted ...]\n\n{tail}", n - max)
}

/// Options shared by the prompting methods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptOptions {
    /// The published prompt preset (default v2, as the published benchmark ran).
    #[serde(default)]
    pub preset: Preset,
    /// Whether the backend thinks before answering (default true, as published); when false
    /// the closings drop their "After any reasoning, " (as published).
    #[serde(default = "yes")]
    pub thinking: bool,
    /// Text, images or both.
    pub modality: Modality,
    /// An optional size limit.
    pub budget: Option<Budget>,
    /// How [`Budget::Tokens`] counts.
    #[serde(skip)]
    pub counter: Counter,
    /// How short fields may be cut to meet the budget.
    #[serde(default)]
    pub min_chars: MinChars,
}

fn yes() -> bool {
    true
}

impl Default for PromptOptions {
    fn default() -> Self {
        PromptOptions {
            preset: Preset::default(),
            thinking: true,
            modality: Modality::default(),
            budget: None,
            counter: Counter::default(),
            min_chars: MinChars::default(),
        }
    }
}

impl PromptOptions {
    /// Whether `parts` and `reserved` more characters (counted by the estimate) fit.
    fn fits(&self, parts: &[Part], reserved: usize) -> bool {
        match self.budget {
            None => true,
            Some(Budget::Chars(c)) => text_len(parts) + reserved <= c,
            Some(Budget::Tokens(t)) => {
                let text: Vec<&str> = parts
                    .iter()
                    .filter_map(|p| match p {
                        Part::Text { text } => Some(text.as_str()),
                        Part::Image { .. } => None,
                    })
                    .collect();
                self.counter.count(&text.join("\n\n")) + (reserved as f64 / 3.5).round() as usize <= t
            }
        }
    }
}

/// The published prompt presets (QVal's `prompt_presets.py`): which guidance blocks the
/// system prompt carries and how the answer is asked for. The published benchmark ran every
/// LLM method with `v2`, the default.
///
/// | preset | approximation and efficiency guidance, codegen constraints | answers in `<answer>` tags |
/// |---|---|---|
/// | `v0` (the original prompts) | no | no |
/// | `v1` | yes | no |
/// | `v2` (published) | yes | yes |
///
/// The efficiency guidance appears only where it is needed: when gamma < 1 is not disclosed.
///
/// # Example
/// ```
/// use qval_methods::llm::prompt::Preset;
/// assert_eq!(Preset::default(), Preset::V2);
/// assert_eq!("v0".parse::<Preset>().unwrap(), Preset::V0);
/// assert!(Preset::V2.uses_answer_tags() && !Preset::V1.uses_answer_tags());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The original prompts: no guidance blocks, bare answers.
    V0,
    /// v0 with the approximation and efficiency guidance and the codegen constraints.
    V1,
    /// v1 with answers inside `<answer>` tags (published).
    #[default]
    V2,
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "v0" => Ok(Preset::V0),
            "v1" => Ok(Preset::V1),
            "v2" => Ok(Preset::V2),
            _ => Err(format!("`{s}` is not a prompt preset; expected v0, v1 or v2")),
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Preset::V0 => "v0",
            Preset::V1 => "v1",
            Preset::V2 => "v2",
        })
    }
}

/// `approximation_guidance_v1`, verbatim.
const APPROXIMATION_GUIDANCE: &str = "Your goal is to produce an informed approximation — not to compute the exact \
value. Enumerating all possible future trajectories is intractable. Instead, leverage your understanding of the \
environment dynamics, the reward structure, and the state's features to reason about how favorable the situation is. \
A well-reasoned estimate grounded in domain knowledge is more valuable than an attempt at exact computation.";

/// `efficiency_guidance_v1`, verbatim.
const EFFICIENCY_GUIDANCE: &str = "All else being equal, reaching the goal in fewer steps is preferable — states and \
actions that lead to shorter successful trajectories should generally be valued higher, reflecting the importance of \
efficiency.";

/// `codegen_constraints_v1`, verbatim.
const CODEGEN_CONSTRAINTS: &str = "Important constraints:\n- Do NOT use recursive search, tree expansion, lookahead, \
or any form of simulation/rollout — these will time out.\n- Base the estimate on direct analysis of the state \
representation, using your understanding of what features predict good outcomes.";

impl Preset {
    /// Whether answers are asked for inside `<answer>` tags (v2).
    pub fn uses_answer_tags(self) -> bool {
        self == Preset::V2
    }

    fn guidance(self) -> bool {
        self != Preset::V0
    }

    /// The approximation guidance block, if the preset has it.
    pub fn approximation_guidance(self) -> Option<&'static str> {
        self.guidance().then_some(APPROXIMATION_GUIDANCE)
    }

    /// The efficiency guidance block, if the preset has it (shown only when gamma < 1 or a
    /// positive step penalty is not disclosed).
    pub fn efficiency_guidance(self) -> Option<&'static str> {
        self.guidance().then_some(EFFICIENCY_GUIDANCE)
    }

    /// The codegen constraints block, if the preset has it.
    pub fn codegen_constraints(self) -> Option<&'static str> {
        self.guidance().then_some(CODEGEN_CONSTRAINTS)
    }

    /// The closing of single-value system prompts (direct, GVL).
    pub fn closing_direct(self, signal: Signal) -> String {
        let name = signal_name(signal);
        if self.uses_answer_tags() {
            format!(
                "After any reasoning, provide your numeric {name} estimate as a single number inside <answer> tags, \
                 e.g. <answer>NUMBER</answer>."
            )
        } else {
            format!(
                "After any reasoning, respond with ONLY a single numeric {name} estimate. Do not include any \
                 explanation after your final number."
            )
        }
    }

    /// The closing of ranking system prompts.
    pub fn closing_ranking(self) -> &'static str {
        if self.uses_answer_tags() {
            "After any reasoning, output a comma-separated list of action numbers from best to worst inside <answer> \
             tags, e.g. <answer>#, #, #, ...</answer>."
        } else {
            "After any reasoning, output ONLY a comma-separated list of action numbers from best to worst. For \
             example: 2, 1, 3, 4"
        }
    }

    /// The last block of a single-value user prompt.
    pub fn user_closing(self, signal: Signal) -> String {
        let what = match signal {
            Signal::Potential => "potential value estimate for the current state".to_string(),
            Signal::ShapedReward => "shaped reward estimate for this transition".to_string(),
            _ => format!("{} estimate", signal_name(signal)),
        };
        if self.uses_answer_tags() {
            format!("Now, provide your {what} as a single number inside <answer> tags, e.g. <answer>NUMBER</answer>.")
        } else {
            format!("Now, provide your {what} as a single number. Do not explain — output ONLY the number.")
        }
    }
}

/// Which role a system prompt opens with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Direct prompting and GVL.
    Direct,
    /// Code generation.
    Codegen,
    /// Ranking (and the continuation-scoring methods).
    Ranking,
    /// The verifier.
    Verifier,
}

/// The published name of a signal in prompts: `Q-value`, `state-value`, `advantage`,
/// `potential`, `shaped-reward`.
pub fn signal_name(signal: Signal) -> &'static str {
    match signal {
        Signal::Q => "Q-value",
        Signal::V => "state-value",
        Signal::Advantage => "advantage",
        Signal::Potential => "potential",
        Signal::ShapedReward => "shaped-reward",
    }
}

fn role_opener(slot: Slot, signal: Signal) -> String {
    let name = signal_name(signal);
    match slot {
        Slot::Direct => {
            format!("You are an expert at estimating {name} functions for reinforcement learning environments.")
        }
        Slot::Codegen => {
            format!("You are an expert at writing {name} functions for reinforcement learning environments.")
        }
        Slot::Ranking => format!(
            "You are an expert at comparing and ranking actions by their {name} in reinforcement learning environments."
        ),
        Slot::Verifier => format!(
            "You are an expert verifier for reinforcement learning environments. Estimate {name} using an ordered \
             discrete score scale."
        ),
    }
}

/// "discounted cumulative reward", with the factor when it is disclosed.
fn return_phrase(ctx: &MethodContext) -> String {
    if ctx.gamma == 1.0 {
        "undiscounted cumulative reward".into()
    } else if ctx.disclose_gamma {
        format!("discounted cumulative reward (discount factor γ={})", ctx.gamma)
    } else {
        "discounted cumulative reward".into()
    }
}

/// What the value means (the published signal fragment, with the policy assumption;
/// potentials and shaped rewards ignore it, as published).
pub fn signal_fragment(ctx: &MethodContext, signal: Signal) -> String {
    let ret = return_phrase(ctx);
    let (pol, noun) = (policy_phrase(ctx), policy_noun(ctx));
    match signal {
        Signal::V => format!(
            "The state-value V(s) represents the expected {ret} starting from state s, {pol}. It depends only on \
             the current state, not on any specific action."
        ),
        Signal::Q => format!(
            "The Q-value Q(s,a) represents the expected {ret} when taking action a in state s and then following \
             {noun} thereafter. In other words, Q(s,a) is the expected return given that action a is taken in state \
             s, {pol}. It depends on both the state and the specific action taken."
        ),
        Signal::Advantage => format!(
            "The advantage A(s,a) = Q(s,a) - V(s) measures how much better or worse action a is compared to the \
             average action in state s under {noun}. Positive values mean the action is better than average; \
             negative values mean worse. A value of 0.0 means no advantage over the average."
        ),
        Signal::Potential => format!(
            "The potential Φ(s) represents the long-term desirability of state s for reward shaping. The \
             theoretically optimal potential equals V*(s), the optimal state-value function — the expected {ret} \
             under optimal play. It depends only on the current state, not on any specific action."
        ),
        Signal::ShapedReward => "The shaped reward F(s, a, s') provides a dense per-transition reward signal \
             supplementing the sparse environment reward. A positive value indicates the transition moved toward the \
             goal; negative indicates regression. It may depend on the current state, the action taken, and the \
             resulting next state."
            .into(),
    }
}

const HISTORY_SUFFIX: &str = " The history provides context about how the agent reached the current state.";

/// What the model receives and estimates (the published evaluation instructions); `history`
/// false drops the mention of the history (GVL, or a history limit of 0).
pub fn eval_instructions(ctx: &MethodContext, signal: Signal, history: bool) -> String {
    let ret = return_phrase(ctx);
    let pol = policy_phrase(ctx);
    let suffix = if history { HISTORY_SUFFIX } else { "" };
    let data = if ctx.include_next_state {
        "the current state, the action taken, and the resulting next state"
    } else {
        "the current state and the action taken"
    };
    let hist = |conj: &str| {
        if history {
            format!("the episode's state-action history (if any){conj}")
        } else {
            String::new()
        }
    };
    match signal {
        Signal::V => format!(
            "You will receive {}the current state. Estimate V(s) for the **Current State** — the expected {ret} from \
             that state, {pol}.{suffix}",
            hist(" and ")
        ),
        Signal::Q => format!(
            "You will receive {}{data}. Estimate Q(s,a) for the **Current Action** in the **Current State** — the \
             expected {ret} when taking this action in this state, {pol}.{suffix}",
            hist(", ")
        ),
        Signal::Advantage => format!(
            "You will receive {}{data}. Estimate A(s,a) for the **Current Action** in the **Current State** — how \
             much better or worse this action is compared to the average action, {pol}.{suffix}",
            hist(", ")
        ),
        Signal::Potential => format!(
            "You will receive {}the current state. Estimate Φ(s) for the **Current State** — the potential value \
             representing how desirable this state is for eventual success.{suffix}",
            hist(" and ")
        ),
        Signal::ShapedReward => format!(
            "You will receive {}{data}. Estimate F(s, a, s') for this transition — a dense reward signal indicating \
             whether this transition moved toward or away from the goal. Positive means progress, negative means \
             regression.{suffix}",
            hist(", ")
        ),
    }
}

/// The ranking method's evaluation instructions.
pub fn ranking_instructions(ctx: &MethodContext) -> String {
    let hist = if ctx.history_limit > 0 {
        "the episode's state-action history (if any), "
    } else {
        ""
    };
    let data = if ctx.include_next_state {
        "the current state, a list of candidate actions, and the resulting next state for each action"
    } else {
        "the current state, and a list of candidate actions"
    };
    format!(
        "You will receive {hist}{data}. Rank the actions by their expected Q-value Q(s,a) — the expected {} when \
         taking each action. Output the action numbers from best to worst.",
        return_phrase(ctx)
    )
}

/// The opening parts of every system prompt: the role, what the value means, and the
/// preset's guidance (the efficiency hint only when gamma < 1 or a positive step penalty is
/// not disclosed, as published).
pub fn system_head(ctx: &MethodContext, preset: Preset, slot: Slot, signal: Signal) -> Vec<String> {
    let mut parts = vec![role_opener(slot, signal), signal_fragment(ctx, signal)];
    parts.extend(preset.approximation_guidance().map(String::from));
    let hidden_penalty = ctx.step_penalty > 0.0 && !ctx.disclose_step_penalty;
    if (ctx.gamma < 1.0 && !ctx.disclose_gamma) || hidden_penalty {
        parts.extend(preset.efficiency_guidance().map(String::from));
    }
    parts
}

/// The environment's parts of every system prompt: `## Task Description` (the environment's
/// notes), `## Episode Configuration` (the step limit), `## Reward Functions` (with the
/// published sentence on the step penalty when it is disclosed) and `## Example
/// Trajectories` when the method has them.
pub fn system_tail(ctx: &MethodContext) -> Vec<String> {
    let mut parts = Vec::new();
    if !ctx.notes.trim().is_empty() {
        parts.push(format!("## Task Description\n{}", ctx.notes.trim_end()));
    }
    parts.push(format!(
        "## Episode Configuration\nThe episode step limit is {}.",
        ctx.max_steps
    ));
    if !ctx.reward_description.trim().is_empty() {
        let mut rewards = ctx.reward_description.clone();
        if ctx.disclose_step_penalty && ctx.step_penalty > 0.0 {
            rewards.push_str(&step_penalty_sentence(ctx.step_penalty));
        }
        parts.push(format!("## Reward Functions\n{}", rewards.trim_end()));
    }
    if !ctx.example_trajectories.is_empty() {
        parts.push(ctx.example_trajectories.clone());
    }
    parts
}

/// A closing as published for a backend with thinking on; with thinking off the leading
/// "After any reasoning, " is dropped (as published).
pub fn adapt_closing(text: &str, thinking: bool) -> String {
    const PRE: &str = "After any reasoning, ";
    if thinking {
        return text.to_string();
    }
    let cap = |rest: &str| {
        let mut c = rest.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    };
    if let Some(rest) = text.strip_prefix(PRE) {
        return cap(rest);
    }
    if let Some(i) = text.find(&format!(". {PRE}")) {
        return format!("{}{}", &text[..i + 2], cap(&text[i + 2 + PRE.len()..]));
    }
    text.to_string()
}

/// The system prompt of the evaluators (direct, GVL, the verifier), as published: head,
/// evaluation instructions, the `method`'s own blocks, the environment, then the `closing`
/// blocks; joined by blank lines.
pub fn system_prompt(
    ctx: &MethodContext,
    preset: Preset,
    slot: Slot,
    signal: Signal,
    method: &[String],
    closing: &[String],
) -> String {
    let mut parts = system_head(ctx, preset, slot, signal);
    parts.extend(actor_reasoning_guidance(ctx).map(String::from));
    parts.push(eval_instructions(ctx, signal, ctx.history_limit > 0));
    parts.extend(method.iter().cloned());
    parts.extend(system_tail(ctx));
    parts.extend(closing.iter().cloned());
    parts.join("\n\n")
}

/// The published user-prompt header of a single-value prompt (a shaped reward's names the
/// next state only when the prompt shows it).
pub fn signal_header(signal: Signal, include_next_state: bool) -> &'static str {
    match signal {
        Signal::V => "Estimate the state-value of the **Current State** for the following:",
        Signal::Q => "Estimate the Q-value for the **Current Action** in the **Current State** for the following:",
        Signal::Advantage => {
            "Estimate the advantage of the **Current Action** in the **Current State** for the following:"
        }
        Signal::Potential => "Estimate the potential of the **Current State** for the following:",
        Signal::ShapedReward if include_next_state => {
            "Estimate the shaped reward for the transition from **Current State** via **Current Action** to **Next \
             State** for the following:"
        }
        Signal::ShapedReward => {
            "Estimate the shaped reward for the **Current Action** in the **Current State** for the following:"
        }
    }
}

/// How a point's sections are headed: the evaluators' layout (direct, verifier, eureka's
/// judge), ranking's, GVL's target, or the continuation-scoring methods'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    Evaluator,
    Judge,
    Ranking,
    GvlTarget,
    Scoring,
}

impl Layout {
    fn current(self, point: &EvaluationPoint, ctx: &MethodContext) -> String {
        let label = format!("[Turn {}/{}]", point.step_index + 1, ctx.max_steps);
        match self {
            Layout::Evaluator | Layout::Judge => format!("### Current State\n{label}"),
            Layout::Ranking => format!("## Current State\n{label}"),
            Layout::GvlTarget => "### Target State".into(),
            Layout::Scoring => "**Current State:**".into(),
        }
    }
    fn action(self) -> &'static str {
        match self {
            Layout::GvlTarget => "### Target Action",
            _ => "### Current Action",
        }
    }
    fn next(self) -> &'static str {
        match self {
            Layout::GvlTarget => "### Target Next State",
            _ => "### Next State",
        }
    }
}

/// An observation under its heading: the text, or (images only) the heading and the images.
fn observation_parts(obs: &Observation, modality: Modality, heading: &str) -> Vec<Part> {
    let text_too = modality != Modality::Image || obs.images.is_empty();
    let mut parts = vec![Part::Text {
        text: if text_too {
            format!("{heading}\n{}", obs.text)
        } else {
            heading.to_string()
        },
    }];
    if modality != Modality::Text {
        parts.extend(obs.images.iter().map(|i| Part::Image { url: i.data_url() }));
    }
    parts
}

/// The history blocks of a point: the most recent `history_limit` turns (minus `skip_oldest`),
/// each as a state block and an action block labelled `[Turn t/max - State]`.
fn history_parts(point: &EvaluationPoint, ctx: &MethodContext, layout: Layout, skip_oldest: usize) -> Vec<Part> {
    let all = &point.history;
    let start = (all.len().saturating_sub(ctx.history_limit) + skip_oldest).min(all.len());
    let shown = &all[start..];
    // No history block for a first turn or a history limit of 0 (as published); turns the
    // budget dropped are stated.
    if all.is_empty() || ctx.history_limit == 0 {
        return Vec::new();
    }
    let note = if shown.len() < all.len() {
        format!(
            "\n[Note: Only the last {} of {} turns are shown.]",
            shown.len(),
            all.len()
        )
    } else {
        String::new()
    };
    if layout == Layout::Scoring {
        // As published for the scoring methods: turns numbered from 1 among those shown.
        let mut lines = vec!["**State-Action History:**".to_string()];
        if shown.len() < all.len() {
            lines.push(format!(
                "[Note: Only the last {} of {} turns are shown.]",
                shown.len(),
                all.len()
            ));
        }
        lines.extend(shown.iter().enumerate().map(|(i, t)| {
            format!(
                "[Turn {n} - State]\n{}\n[Turn {n} - Action]\n{}",
                t.observation,
                t.action,
                n = i + 1
            )
        }));
        return vec![Part::Text {
            text: lines.join("\n\n"),
        }];
    }
    if layout == Layout::Judge {
        // Eureka's judge (published `_build_direct_prompt_sections`): one block, a turn's
        // state and action on consecutive lines.
        let mut lines = vec!["### State-Action History".to_string()];
        if shown.len() < all.len() {
            lines.push(format!(
                "[Note: Only the last {} of {} turns are shown.]",
                shown.len(),
                all.len()
            ));
        }
        lines.extend(shown.iter().map(|t| {
            let label = format!("[Turn {}/{}", t.step + 1, ctx.max_steps);
            format!("{label} - State]\n{}\n{label} - Action]\n{}", t.observation, t.action)
        }));
        return vec![Part::Text {
            text: lines.join("\n\n"),
        }];
    }
    let mut parts = vec![Part::Text {
        text: format!("### State-Action History{note}"),
    }];
    for t in shown {
        let label = format!("[Turn {}/{}", t.step + 1, ctx.max_steps);
        // The turn's reasoning on the lines after its state, as published.
        let thought = match &t.thought {
            Some(th) if ctx.include_history_thoughts => format!("\n{label} - Reasoning]\n{th}"),
            _ => String::new(),
        };
        parts.push(Part::Text {
            text: format!("{label} - State]\n{}{thought}", t.observation),
        });
        parts.push(Part::Text {
            text: format!("{label} - Action]\n{}", t.action),
        });
    }
    parts
}

/// The point's task, when the environment's description (the system prompt's
/// `## Task Description`) does not already hold it (TerminalBench's tasks differ per point).
pub(crate) fn task_part(point: &EvaluationPoint, ctx: &MethodContext) -> Option<Part> {
    let task = point.task.instruction.trim();
    (!task.is_empty() && !ctx.notes.contains(task)).then(|| Part::Text {
        text: format!("### Task\n{task}"),
    })
}

/// The description of one point in the published layout: the task (where the system prompt
/// lacks it), the history, `### Current State` with its turn label, and for Q and advantage
/// `### Current Action` and (if the context says so) `### Next State`. `skip_oldest` drops
/// that many more history turns.
pub fn point_parts(
    point: &EvaluationPoint,
    ctx: &MethodContext,
    signal: Signal,
    opts: &PromptOptions,
    skip_oldest: usize,
) -> Vec<Part> {
    layout_parts(point, ctx, signal, opts, skip_oldest, Layout::Evaluator)
}

/// A point as Eureka's judge sees it (published `_build_direct_prompt_sections`).
pub fn judge_point_parts(
    point: &EvaluationPoint,
    ctx: &MethodContext,
    signal: Signal,
    opts: &PromptOptions,
) -> Vec<Part> {
    layout_parts(point, ctx, signal, opts, 0, Layout::Judge)
}

fn layout_parts(
    point: &EvaluationPoint,
    ctx: &MethodContext,
    signal: Signal,
    opts: &PromptOptions,
    skip_oldest: usize,
    layout: Layout,
) -> Vec<Part> {
    // GVL shows the task once, before its context (as published).
    let mut parts: Vec<Part> = task_part(point, ctx)
        .filter(|_| layout != Layout::GvlTarget)
        .into_iter()
        .collect();
    if layout != Layout::GvlTarget {
        parts.extend(history_parts(point, ctx, layout, skip_oldest));
    }
    parts.extend(observation_parts(
        &point.observation,
        opts.modality,
        &layout.current(point, ctx),
    ));
    if layout == Layout::Evaluator
        && ctx.include_current_thoughts
        && let Some(th) = &point.thought
    {
        parts.push(Part::Text {
            text: format!("## Actor's Reasoning\n{th}"),
        });
    }
    if signal.has_action() {
        parts.push(Part::Text {
            text: format!("{}\n{}", layout.action(), point.action_text),
        });
        if ctx.include_next_state {
            parts.extend(observation_parts(&point.next_observation, opts.modality, layout.next()));
        }
    }
    parts
}

pub(crate) fn text_len(parts: &[Part]) -> usize {
    parts
        .iter()
        .map(|p| match p {
            Part::Text { text } => text.len(),
            Part::Image { .. } => 0,
        })
        .sum()
}

/// [`point_parts`] within the budget: fields cut in the middle down to their minimums
/// ([`MinChars`]; history observations from the earliest, then the next state, then the current
/// state), then the oldest history turns dropped, until the text fits (or nothing is left to
/// cut).
pub fn fitted_point_parts(
    point: &EvaluationPoint,
    ctx: &MethodContext,
    signal: Signal,
    opts: &PromptOptions,
    reserved: usize,
) -> Vec<Part> {
    fitted_layout_parts(point, ctx, signal, opts, reserved, Layout::Evaluator)
}

/// [`fitted_point_parts`] in another layout.
pub(crate) fn fitted_layout_parts(
    point: &EvaluationPoint,
    ctx: &MethodContext,
    signal: Signal,
    opts: &PromptOptions,
    reserved: usize,
    layout: Layout,
) -> Vec<Part> {
    let point_parts =
        |p: &EvaluationPoint, ctx: &MethodContext, signal, opts, skip| layout_parts(p, ctx, signal, opts, skip, layout);
    let parts = point_parts(point, ctx, signal, opts, 0);
    if opts.fits(&parts, reserved) {
        return parts;
    }
    let mut cut = point.clone();
    let m = opts.min_chars;
    // The fields to cut (with their minimum), in the published order.
    enum Field {
        History(usize),
        Next,
        Current,
    }
    let shown_from = cut.history.len().saturating_sub(ctx.history_limit);
    let mut steps: Vec<(Field, usize)> = Vec::new();
    if let Some(min) = m.history {
        steps.extend((shown_from..cut.history.len()).map(|i| (Field::History(i), min)));
    }
    if let Some(min) = m.next {
        steps.push((Field::Next, min));
    }
    if let Some(min) = m.current {
        steps.push((Field::Current, min));
    }
    for (field, min) in steps {
        let text = match field {
            Field::History(i) => &mut cut.history[i].observation,
            Field::Next => &mut cut.next_observation.text,
            Field::Current => &mut cut.observation.text,
        };
        *text = middle_truncate(text, min);
        let parts = point_parts(&cut, ctx, signal, opts, 0);
        if opts.fits(&parts, reserved) {
            return parts;
        }
    }
    let mut skip = 1;
    loop {
        let parts = point_parts(&cut, ctx, signal, opts, skip);
        if opts.fits(&parts, reserved) || skip >= cut.history.len().min(ctx.history_limit) {
            return parts;
        }
        skip += 1;
    }
}

/// A user message of `parts`, consecutive texts joined ([`merge_text`]).
pub fn user_message(parts: Vec<Part>) -> Message {
    Message {
        role: Role::User,
        parts: merge_text(parts),
    }
}

/// The system prompt then one user message of `parts`: the shape of every single-turn prompt.
pub fn system_and_user(system: impl Into<String>, parts: Vec<Part>) -> Vec<Message> {
    vec![Message::text(Role::System, system.into()), user_message(parts)]
}

/// Joins consecutive text parts so that messages stay readable.
pub fn merge_text(parts: Vec<Part>) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::new();
    for p in parts {
        match (out.last_mut(), p) {
            (Some(Part::Text { text: a }), Part::Text { text: b }) => {
                a.push_str("\n\n");
                a.push_str(&b);
            }
            (_, p) => out.push(p),
        }
    }
    out
}

/// The messages of a direct (single-point) prompt, as published: the system prompt ends with
/// the preset's closing, the user prompt is the header, the point and the answer request.
pub fn direct_messages(
    point: &EvaluationPoint,
    ctx: &MethodContext,
    signal: Signal,
    opts: &PromptOptions,
) -> Vec<Message> {
    let closing = adapt_closing(&opts.preset.closing_direct(signal), opts.thinking);
    let system = system_prompt(ctx, opts.preset, Slot::Direct, signal, &[], &[closing]);
    let header = signal_header(signal, ctx.include_next_state).to_string();
    let question = opts.preset.user_closing(signal);
    let mut parts = vec![Part::Text { text: header.clone() }];
    parts.extend(fitted_point_parts(
        point,
        ctx,
        signal,
        opts,
        system.len() + header.len() + question.len(),
    ));
    parts.push(Part::Text { text: question });
    system_and_user(system, parts)
}

/// The exact messages a direct prompt would send for `point`: for reading what the model
/// sees, without calling one.
pub fn preview(point: &EvaluationPoint, ctx: &MethodContext, signal: Signal, opts: &PromptOptions) -> String {
    render(&direct_messages(point, ctx, signal, opts))
}

/// Messages as readable text (images as placeholders).
pub fn render(messages: &[Message]) -> String {
    messages
        .iter()
        .map(|m| {
            let body: Vec<String> = m
                .parts
                .iter()
                .map(|p| match p {
                    Part::Text { text } => text.clone(),
                    Part::Image { url } => format!("[image, {} bytes as a data URL]", url.len()),
                })
                .collect();
            format!("=== {:?} ===\n{}", m.role, body.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}
