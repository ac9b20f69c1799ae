//! A conformance checker any [`Environment`] can be run through (in the spirit of
//! gymnasium's `env_checker`): purity of `step`, seeded `reset`, state round trips through
//! JSON, and action text round trips.

use rand::Rng as _;
use serde_json::Value;

use crate::env::Environment;
use crate::seed::rng_for;
use crate::{CoreError, Result};

fn fail(env: &str, message: String) -> CoreError {
    CoreError::Environment {
        env: env.to_string(),
        message: format!("conformance: {message}"),
    }
}

/// Runs `walks` random walks of up to the step budget on every task, checking that:
/// - the spec is sane (a name, a positive budget, gamma in (0, 1]) and there is a task;
/// - `reset` with the same seed gives the same state;
/// - `step` is pure: the same state, action and generator seed give the same next state,
///   reward and termination, also after the state went through JSON and back;
/// - `parse_action(render_action(a)) == a` for every legal action.
///
/// Environments with an open action set are walked with the actions their `parse_action`
/// makes of a few fixed texts.
///
/// # Errors
/// [`CoreError::Environment`] describing the first violation.
pub fn check_environment<E: Environment>(env: &E, walks: usize, seed: u64) -> Result<()> {
    check_environment_on(env, usize::MAX, walks, usize::MAX, seed)
}

/// [`check_environment`] on a handful of states: the first `tasks` tasks, `walks` walks each,
/// of at most `steps` steps (and the step budget). What the runner does before any work on
/// every environment it builds, for environments whose steps cost time.
///
/// # Errors
/// [`CoreError::Environment`] describing the first violation.
pub fn check_environment_on<E: Environment>(
    env: &E,
    tasks: usize,
    walks: usize,
    steps: usize,
    seed: u64,
) -> Result<()> {
    let spec = env.spec();
    let name = spec.name.as_str();
    if name.is_empty() {
        return Err(fail(name, "the spec has no name".into()));
    }
    if spec.max_steps == 0 {
        return Err(fail(name, "the step budget is 0".into()));
    }
    if !(spec.gamma > 0.0 && spec.gamma <= 1.0) {
        return Err(fail(name, format!("gamma {} is not in (0, 1]", spec.gamma)));
    }
    let all = env.tasks();
    if all.is_empty() {
        return Err(fail(name, "no tasks".into()));
    }
    for (t, task) in all.iter().take(tasks).enumerate() {
        let s1 = env.reset(task, &mut rng_for(seed, &[t as u64]))?;
        let s2 = env.reset(task, &mut rng_for(seed, &[t as u64]))?;
        if to_json(&s1) != to_json(&s2) {
            return Err(fail(
                name,
                format!("reset of task `{}` differs for the same seed", task.id),
            ));
        }
        for w in 0..walks {
            let mut walk_rng = rng_for(seed, &[t as u64, w as u64, 1]);
            let mut state = s1.clone();
            for step in 0..spec.max_steps.min(steps) {
                let actions = env
                    .legal_actions(&state)
                    .unwrap_or_else(|| ["0", "noop", "left"].iter().map(|t| env.parse_action(t)).collect());
                if actions.is_empty() {
                    return Err(fail(
                        name,
                        format!("no legal action at step {step} of task `{}`", task.id),
                    ));
                }
                for a in &actions {
                    let text = env.render_action(a);
                    if env.legal_actions(&state).is_some() && &env.parse_action(&text) != a {
                        return Err(fail(name, format!("parse_action({text:?}) does not give back {a:?}")));
                    }
                }
                let action = &actions[walk_rng.random_range(0..actions.len())];
                let step_seed = walk_rng.random::<u64>();
                let a = env.step(&state, action, &mut rng_for(step_seed, &[]))?;
                let b = env.step(&state, action, &mut rng_for(step_seed, &[]))?;
                let restored: E::State = serde_json::from_value(to_json(&state))
                    .map_err(|e| fail(name, format!("a state does not deserialise from its JSON: {e}")))?;
                let c = env.step(&restored, action, &mut rng_for(step_seed, &[]))?;
                for (other, what) in [(&b, "a second call"), (&c, "the state restored from JSON")] {
                    if to_json(&a.state) != to_json(&other.state)
                        || a.reward.to_bits() != other.reward.to_bits()
                        || a.terminated != other.terminated
                    {
                        return Err(fail(
                            name,
                            format!(
                                "step is not pure: {what} gave another outcome for action {action:?} at step {step} of task `{}`{}",
                                task.id,
                                first_difference(&to_json(&a.state), &to_json(&other.state))
                            ),
                        ));
                    }
                }
                if a.terminated {
                    break;
                }
                state = a.state;
            }
        }
    }
    Ok(())
}

/// Serialises to JSON (`Null` if serialisation fails, which the comparisons then expose).
fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Where two outcomes' states first differ (a path of keys and both values, shortened), for
/// the message of an impure step; empty when only the reward or the end differs.
fn first_difference(a: &serde_json::Value, b: &serde_json::Value) -> String {
    use serde_json::Value;
    fn walk(a: &Value, b: &Value, path: &mut Vec<String>) -> Option<String> {
        if a == b {
            return None;
        }
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    path.push(k.clone());
                    let (v, w) = (x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null));
                    if let Some(d) = walk(v, w, path) {
                        return Some(d);
                    }
                    path.pop();
                }
                None
            }
            _ => {
                let short = |v: &Value| v.to_string().chars().take(300).collect::<String>();
                Some(format!(": `{}` was {} then {}", path.join("."), short(a), short(b)))
            }
        }
    }
    walk(a, b, &mut Vec::new()).unwrap_or_default()
}
