//! The FrozenLake oracle: reads the grid, turn and action from a prompt and answers with the
//! true value.

use rand::Rng as _;
use regex::Regex;
use serde_json::{Value, json};
use std::sync::OnceLock;

use qval_core::seed::stable_hash;
use qval_envs::frozenlake::{Grid, MOVES, solver};

/// The oracle's settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Oracle {
    /// Standard deviation of Gaussian noise added to every value (0: exact).
    pub noise: f64,
    /// Seed of the noise (combined with a hash of the prompt, so answers are reproducible).
    pub seed: u64,
}

impl Oracle {
    /// The oracle a model name asks for: `oracle-noise-X` answers with noise `X` (so one
    /// server offers a graded series of methods); any other name, this one.
    pub fn for_model(&self, model: &str) -> Oracle {
        match model.strip_prefix("oracle-noise-").and_then(|x| x.parse::<f64>().ok()) {
            Some(noise) if noise.is_finite() && noise >= 0.0 => Oracle { noise, seed: self.seed },
            _ => self.clone(),
        }
    }
}

/// The first of the most frequent `Response N: text` lines, named as the published selector
/// is asked to.
fn usc_answer(prompt: &str) -> String {
    let texts: Vec<&str> = prompt
        .lines()
        .filter_map(|l| {
            l.strip_prefix("Response ")
                .and_then(|r| r.split_once(": "))
                .map(|(_, t)| t)
        })
        .collect();
    let best = (0..texts.len())
        .max_by_key(|&i| (texts.iter().filter(|t| **t == texts[i]).count(), std::cmp::Reverse(i)))
        .unwrap_or(0);
    format!(
        "Most candidates agree. The most consistent response is Response {}",
        best + 1
    )
}

struct Situation {
    grid: Grid,
    pos: usize,
    /// Steps left, the current one included.
    remaining: usize,
}

/// The current state's turn label of the published layout (`### Current State\n[Turn 3/30]`).
fn header_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\[Turn (\d+)/(\d+)\]\n").expect("a valid regex"))
}

/// Headings of a state shown without a turn label (GVL's target, the scoring methods).
fn unlabelled_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?:### Target State|\*\*Current State:\*\*)\n").expect("a valid regex"))
}

/// The episode's step limit, as the system prompt states it.
fn step_limit(all: &str) -> Option<usize> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"The episode step limit is (\d+)").expect("a valid regex"));
    re.captures(all)?[1].parse().ok()
}

/// Reads the grid that starts at the beginning of `text` (skipping an error line).
fn read_grid(text: &str) -> Option<(Grid, usize)> {
    let mut rows: Vec<String> = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with("Error:") && rows.is_empty() {
            continue;
        }
        let tiles: Vec<&str> = l.split(' ').collect();
        if !l.is_empty() && tiles.iter().all(|t| matches!(*t, "S" | "F" | "H" | "G" | "@")) {
            rows.push(tiles.concat());
        } else if rows.is_empty() && l.is_empty() {
            continue;
        } else {
            break;
        }
    }
    let cols = rows.first()?.len();
    let flat: String = rows.concat();
    let pos = flat.find('@')?;
    let has_start = flat.contains('S');
    let fixed: Vec<String> = rows
        .iter()
        .map(|r| r.replace('@', if has_start { "F" } else { "S" }))
        .collect();
    let grid = Grid::parse(&fixed).ok()?;
    (grid.cols() == cols).then_some((grid, pos))
}

/// The state a block shows: after its turn label, or (without one) after an unlabelled
/// heading, with the whole step budget (`all` states the limit) left.
fn situation(block: &str, all: &str) -> Option<(Situation, usize)> {
    let (turn, max, end) = match header_re().captures_iter(block).last() {
        Some(m) => (m[1].parse().ok()?, m[2].parse().ok()?, m.get(0)?.end()),
        None => {
            let m = unlabelled_re().find_iter(block).last()?;
            (1, step_limit(all).unwrap_or(30), m.end())
        }
    };
    let (grid, pos) = read_grid(&block[end..])?;
    Some((
        Situation {
            grid,
            pos,
            remaining: (max + 1).saturating_sub(turn),
        },
        end,
    ))
}

fn action_index(text: &str) -> Option<usize> {
    let t = text
        .trim()
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_ascii_lowercase();
    MOVES.iter().position(|m| *m == t)
}

fn settings(all: &str) -> (f64, bool) {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"γ=([0-9.]+)").expect("a valid regex"));
    let gamma = re
        .captures(all)
        .and_then(|c| c[1].trim_end_matches('.').parse().ok())
        .unwrap_or(0.95);
    (gamma, all.contains("slippery"))
}

fn value(s: &Situation, action: Option<usize>, gamma: f64, slippery: bool) -> f64 {
    let v = solver::optimal_values(&s.grid, slippery, gamma, Some(s.remaining));
    match action {
        Some(a) => v.q[s.pos][a],
        None => v.v[s.pos],
    }
}

/// The value a block of prompt text describes: Q if it names an action, else V.
fn block_value(block: &str, all: &str, gamma: f64, slippery: bool) -> Option<f64> {
    let (s, after) = situation(block, all)?;
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"### (?:Current|Target) Action\n(.+)").expect("a valid regex"));
    let action = re.captures(&block[after..]).and_then(|c| action_index(&c[1]));
    Some(value(&s, action, gamma, slippery))
}

fn noisy(o: &Oracle, v: f64, salt: &str) -> f64 {
    if o.noise == 0.0 {
        return v;
    }
    let mut rng = qval_core::seed::rng_for(o.seed, &[stable_hash(salt)]);
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
    v + o.noise * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The oracle's reply (text, and token log-probabilities when asked) to a conversation of
/// `(role, text)` messages.
pub fn oracle_answer(o: &Oracle, messages: &[(String, String)], logprobs: bool) -> (String, Option<Value>) {
    let all: String = messages.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join("\n");
    let (gamma, slippery) = settings(&all);
    let Some((_, last)) = messages.iter().rev().find(|(r, _)| r == "user") else {
        return ("No question.".into(), None);
    };
    // Universal self-consistency: the first of the most frequent candidates.
    if last.contains("Select the response that is most consistent with the others") {
        return (usc_answer(last), None);
    }
    // Ranking: numbered candidate actions.
    if last.contains("[**Candidate Action 1**]") {
        static RE: OnceLock<Regex> = OnceLock::new();
        let re = RE.get_or_init(|| Regex::new(r"\[\*\*Candidate Action (\d+)\*\*\]\n(\S+)").expect("a valid regex"));
        let Some((s, _)) = situation(last, &all) else {
            return ("I cannot read the state.".into(), None);
        };
        let mut scored: Vec<(usize, f64)> = re
            .captures_iter(last)
            .filter_map(|c| {
                Some((
                    c[1].parse::<usize>().ok()?,
                    noisy(o, value(&s, action_index(&c[2]), gamma, slippery), &c[0]),
                ))
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let order: Vec<String> = scored.iter().map(|(i, _)| i.to_string()).collect();
        return (format!("Best first: <answer>{}</answer>", order.join(", ")), None);
    }
    let verifier = all.contains("<score_1>");
    // Batched: several datapoints.
    if last.contains("## Datapoint 2") && !verifier {
        let values: Vec<String> = last
            .split("## Datapoint ")
            .skip(1)
            .map(|b| {
                block_value(b, &all, gamma, slippery)
                    .map(|v| format!("{:.6}", noisy(o, v, b)))
                    .unwrap_or_else(|| "0".into())
            })
            .collect();
        return (format!("<answer>{}</answer>", values.join(", ")), None);
    }
    // Verifier: a letter on the A..T scale per datapoint, with log-probabilities around it.
    if verifier {
        let blocks: Vec<&str> = if last.contains("## Datapoint 2") {
            last.split("## Datapoint ").skip(1).collect()
        } else {
            vec![last]
        };
        let mut values = Vec::with_capacity(blocks.len());
        for b in blocks {
            let Some(v) = block_value(b, &all, gamma, slippery) else {
                return ("I cannot read the state.".into(), None);
            };
            values.push(noisy(o, v, b));
        }
        return verifier_reply(&values, logprobs);
    }
    let Some(v) = block_value(last, &all, gamma, slippery) else {
        return ("I cannot read the state.".into(), None);
    };
    let v = noisy(o, v, last);
    (
        format!("Considering the map, the value is <answer>{v:.6}</answer>"),
        None,
    )
}

/// The verifier's reply to datapoints of `values`: `<score_i>X</score_i>` per datapoint on
/// its own line, X the letter of the value on the A (1) .. T (0) scale, with log-probabilities
/// (0.8 on the letter, 0.1 on each neighbour) when asked.
fn verifier_reply(values: &[f64], logprobs: bool) -> (String, Option<Value>) {
    let letter = |k: usize| ((b'A' + k as u8) as char).to_string();
    let mut text = Vec::new();
    let mut tokens = Vec::new();
    for (n, v) in values.iter().enumerate() {
        let i = ((1.0 - v.clamp(0.0, 1.0)) * 19.0).round() as usize;
        let (open, close) = (format!("<score_{}>", n + 1), format!("</score_{}>", n + 1));
        text.push(format!("{open}{}{close}", letter(i)));
        let mut top = vec![json!({"token": letter(i), "logprob": 0.8f64.ln()})];
        for k in [i.wrapping_sub(1), i + 1] {
            if k < 20 {
                top.push(json!({"token": letter(k), "logprob": 0.1f64.ln()}));
            }
        }
        top.push(json!({"token": " ", "logprob": 0.001f64.ln()}));
        if n > 0 {
            tokens.push(json!({"token": "\n", "logprob": 0.0, "top_logprobs": [{"token": "\n", "logprob": 0.0}]}));
        }
        tokens.push(json!({"token": open, "logprob": 0.0, "top_logprobs": [{"token": open, "logprob": 0.0}]}));
        tokens.push(json!({"token": letter(i), "logprob": 0.8f64.ln(), "top_logprobs": top}));
        tokens.push(json!({"token": close, "logprob": 0.0, "top_logprobs": [{"token": close, "logprob": 0.0}]}));
    }
    (text.join("\n"), logprobs.then_some(Value::Array(tokens)))
}

/// The log-probability per token the oracle gives `continuation` after `prompt` (a rendered
/// conversation, ending with the start of the reply), so that the scoring methods rank as
/// the true values do:
/// - `Yes` / `No` (Δbelief): log p and log (1 - p), with p the value (clamped to
///   [0.02, 0.98]) of the candidate action the prompt shows, or of the state if it shows none;
/// - an action after a teacher prompt (one showing the response to the candidate,
///   "Response After The Candidate"): log(0.02 + 0.96 Q(s, a));
/// - an action after a student prompt: log 0.25, whatever the action;
/// - anything it cannot read: -5.
pub fn oracle_logprob(o: &Oracle, prompt: &str, continuation: &str) -> f64 {
    let (gamma, slippery) = settings(prompt);
    let user = prompt.rsplit("<|user|>").next().unwrap_or(prompt);
    let Some((s, after)) = situation(user, prompt) else {
        return -5.0;
    };
    let c = continuation.trim();
    if c == "Yes" || c == "No" {
        static RE: OnceLock<Regex> = OnceLock::new();
        let re = RE.get_or_init(|| Regex::new(r"(?i)candidate action:\**\s*(.+)").expect("a valid regex"));
        let action = re.captures(&user[after..]).and_then(|m| action_index(&m[1]));
        let p = noisy(o, value(&s, action, gamma, slippery), user).clamp(0.02, 0.98);
        return if c == "Yes" { p.ln() } else { (1.0 - p).ln() };
    }
    let Some(a) = action_index(c) else {
        return -5.0;
    };
    if user.contains("Response After The Candidate") {
        let q = noisy(o, value(&s, Some(a), gamma, slippery), &format!("{user}{c}"));
        (0.02 + 0.96 * q.clamp(0.0, 1.0)).ln()
    } else {
        0.25f64.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oracle_reads_grids_and_actions() {
        let prompt = "Estimate the Q-value for the **Current Action** in the **Current State** for the following:\n\n\
                      ### Current State\n[Turn 1/30]\n@ F F F\nF H F H\nF F F H\nH F F G\n\n### Current Action\nright\n\n\
                      ### Next State\nS @ F F\nF H F H\nF F F H\nH F F G";
        let (text, _) = oracle_answer(
            &Oracle::default(),
            &[
                (
                    "system".into(),
                    "discounted cumulative reward (discount factor γ=0.9)".into(),
                ),
                ("user".into(), prompt.into()),
            ],
            false,
        );
        // From the start, right: 6 steps to the goal -> 0.9^5.
        assert!(text.contains(&format!("{:.6}", 0.9f64.powi(5))), "{text}");
        let (text, _) = oracle_answer(
            &Oracle::default(),
            &[("user".into(), prompt.replace("Turn 1/30", "Turn 27/30"))],
            false,
        );
        assert!(text.contains("<answer>0.000000</answer>"), "only 4 steps left: {text}");
    }
}
