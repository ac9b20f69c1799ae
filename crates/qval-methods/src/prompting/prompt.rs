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

/// A size limit for prompts; the oldest history turns are dropped first to meet it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// At most this many characters of text.
    Chars(usize),
    /// At most about this many tokens, estimated as characters / 4 (a conservative count for
    /// English and grids; images are not counted).
    Tokens(usize),
}

impl Budget {
    fn chars(self) -> usize {
        match self {
            Budget::Chars(c) => c,
            Budget::Tokens(t) => t.saturating_mul(4),
        }
    }
}

/// Options shared by the prompting methods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptOptions {
    /// Text, images or both.
    pub modality: Modality,
    /// An optional size limit.
    pub budget: Option<Budget>,
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

/// [`point_parts`] within the budget: drops the oldest history turns until the text fits
/// (or no history is left).
pub fn fitted_point_parts(
    point: &EvaluationPoint,
    ctx: &MethodContext,
    signal: Signal,
    opts: &PromptOptions,
    reserved: usize,
) -> Vec<Part> {
    let mut skip = 0;
    loop {
        let parts = point_parts(point, ctx, signal, opts, skip);
        let fits = match opts.budget {
            Some(b) => text_len(&parts) + reserved <= b.chars(),
            None => true,
        };
        if fits || skip >= point.history.len().min(ctx.history_limit) {
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
