//! Prompts written for qval: what Q (or V) means, how the future is discounted, the task, the
//! rewards, the history, the state, the action and its result. Answers go in `<answer>`
//! tags. [`preview`] shows the exact messages a method would send, without calling a model.

use qval_core::{EvaluationPoint, MethodContext, Observation, Signal};
use serde::{Deserialize, Serialize};

use crate::llm::{Message, Part, Role};

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
        let mut tokenizer = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| qval_core::CoreError::Method(format!("{}: not a tokenizer.json: {e}", path.display())))?;
        // Count the text as it is: no padding to a length, no truncation.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| qval_core::CoreError::Method(format!("{}: {e}", path.display())))?;
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

/// The shortest a field may be cut to (characters), as the published environment contexts
/// set them (TerminalBench: history observations 2048, current and next state 4096;
/// FrozenLake none: never cut). `None`: the field is never cut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinChars {
    /// Observations of earlier turns.
    pub history: Option<usize>,
    /// The current state.
    pub current: Option<usize>,
    /// The resulting state.
    pub next: Option<usize>,
}

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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptOptions {
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

fn value_definition(signal: Signal) -> &'static str {
    match signal {
        Signal::Q => {
            "Q(s, a) is the expected discounted cumulative reward the agent obtains by taking action a in state s \
             and then acting optimally until the episode ends."
        }
        Signal::V => {
            "V(s) is the expected discounted cumulative reward the agent obtains from state s when it acts \
             optimally until the episode ends."
        }
        Signal::Advantage => {
            "The advantage of a step is V(s') - V(s): how much the step changed the expected discounted \
             cumulative reward of acting optimally afterwards."
        }
    }
}

fn symbol(signal: Signal) -> &'static str {
    match signal {
        Signal::Q => "Q(s, a)",
        Signal::V => "V(s)",
        Signal::Advantage => "V(s') - V(s)",
    }
}

/// The system prompt: the role, what the value means, the discount (stated, or an
/// efficiency hint when it is not disclosed), the rewards, the environment and the answer
/// format.
pub fn system_prompt(ctx: &MethodContext, signal: Signal, answer_format: &str) -> String {
    let discount = if ctx.disclose_gamma {
        format!(
            "Future rewards are discounted: a reward received k steps after the current one is multiplied by \
             gamma^k, with gamma = {}.",
            ctx.gamma
        )
    } else {
        "Rewards obtained sooner are worth more than the same rewards obtained later, so efficient behaviour that \
         reaches the goal in fewer steps has a higher value."
            .to_string()
    };
    format!(
        "You are an expert evaluator of agents acting in a multi-turn environment. You estimate the value of the \
         agent's decisions.\n\n\
         Definition: {}\n{discount}\n\n\
         Rewards: {}\n\
         Environment: {}\n\
         An episode lasts at most {} steps; when the budget runs out no further reward can be earned.\n\n\
         {answer_format}",
        value_definition(signal),
        ctx.reward_description,
        ctx.notes,
        ctx.max_steps,
    )
}

/// The answer format of single-value prompts.
pub fn single_answer(signal: Signal) -> String {
    format!(
        "Think as much as you need, then give your estimate of {} as a single number inside answer tags, for \
         example <answer>0.42</answer>.",
        symbol(signal)
    )
}

fn observation_parts(obs: &Observation, modality: Modality, heading: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    match modality {
        Modality::Text => parts.push(Part::Text {
            text: format!("{heading}\n{}", obs.text),
        }),
        Modality::Image | Modality::TextAndImage => {
            let mut head = heading.to_string();
            if modality == Modality::TextAndImage || obs.images.is_empty() {
                head = format!("{heading}\n{}", obs.text);
            }
            parts.push(Part::Text { text: head });
            parts.extend(obs.images.iter().map(|i| Part::Image { url: i.data_url() }));
        }
    }
    parts
}

/// The history lines of a point, the most recent `limit` turns, labelled "Turn i/max".
fn history_text(point: &EvaluationPoint, ctx: &MethodContext, skip_oldest: usize) -> String {
    let limit = ctx.history_limit;
    let all = &point.history;
    let start = all.len().saturating_sub(limit) + skip_oldest;
    if start >= all.len() {
        return if all.is_empty() {
            "History: none (this is the first turn).".into()
        } else {
            format!("History: {} earlier turns, not shown.", all.len())
        };
    }
    let mut out = format!("History ({} of {} earlier turns shown):", all.len() - start, all.len());
    for t in &all[start..] {
        out.push_str(&format!(
            "\nTurn {}/{}\nObservation:\n{}\nAction: {}\nReward: {}",
            t.step + 1,
            ctx.max_steps,
            t.observation,
            t.action,
            t.reward
        ));
    }
    out
}

/// The description of one point: task, history, current state, action and (for Q, if the
/// context says so) the resulting state. `skip_oldest` drops that many more history turns.
pub fn point_parts(
    point: &EvaluationPoint,
    ctx: &MethodContext,
    signal: Signal,
    opts: &PromptOptions,
    skip_oldest: usize,
) -> Vec<Part> {
    let mut parts = vec![Part::Text {
        text: format!(
            "Task: {}\n\n{}\n",
            point.task.instruction,
            history_text(point, ctx, skip_oldest)
        ),
    }];
    parts.extend(observation_parts(
        &point.observation,
        opts.modality,
        &format!("Current state (turn {}/{}):", point.step_index + 1, ctx.max_steps),
    ));
    if signal != Signal::V {
        parts.push(Part::Text {
            text: format!("Action taken: {}", point.action_text),
        });
        if ctx.include_next_state {
            let ended = if point.terminated {
                " The episode ended with this step."
            } else {
                ""
            };
            parts.push(Part::Text {
                text: format!("Reward received: {}.{ended}", point.reward),
            });
            parts.extend(observation_parts(
                &point.next_observation,
                opts.modality,
                "Resulting state:",
            ));
        }
    }
    parts
}

fn text_len(parts: &[Part]) -> usize {
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

/// The messages of a direct (single-point) prompt.
pub fn direct_messages(
    point: &EvaluationPoint,
    ctx: &MethodContext,
    signal: Signal,
    opts: &PromptOptions,
) -> Vec<Message> {
    let system = system_prompt(ctx, signal, &single_answer(signal));
    let question = format!("What is {} here? Answer in <answer></answer> tags.", symbol(signal));
    let mut parts = fitted_point_parts(point, ctx, signal, opts, system.len() + question.len());
    parts.push(Part::Text { text: question });
    vec![
        Message::text(Role::System, system),
        Message {
            role: Role::User,
            parts: merge_text(parts),
        },
    ]
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

/// The value symbol of a signal in prompts.
pub fn value_symbol(signal: Signal) -> &'static str {
    symbol(signal)
}
