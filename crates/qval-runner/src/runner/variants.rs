//! The prompt variants of a method entry: the lists of its prompt keys (modality, preset,
//! policy assumption and the switches) expanded into one method each, and what a key names
//! (the example trajectories' file) read, all checked before any work.

use std::path::Path;
use std::sync::Arc;

use crate::methods::{MethodInfo, Modality};
use crate::spec::{self, MethodSpec, OneOrMany, Seg, SpecProblem};
use qval_core::PolicyAssumption;
use qval_methods::llm::Preset;

/// One prompt variant of a method entry, and what its name gets appended.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Variant {
    pub modality: Modality,
    pub preset: Option<Preset>,
    pub policy: Option<PolicyAssumption>,
    pub disclose_step_penalty: Option<bool>,
    pub current_thoughts: Option<bool>,
    pub history_thoughts: Option<bool>,
    /// `-image`, `-v1`, `-self`, `-penalty-disclosed`, ... for the keys that list several.
    pub suffix: String,
}

/// A key's values: `[None]` when it is absent.
fn listed<T: Clone>(v: &Option<OneOrMany<T>>) -> Vec<Option<T>> {
    match v {
        None => vec![None],
        Some(v) => v.values().into_iter().map(Some).collect(),
    }
}

/// Each combination of the values the entry's prompt keys list (an entry listing none has
/// one), checked: a method that sends no prompts takes none of them.
pub(super) fn prompt_variants(
    m: &MethodSpec,
    info: &MethodInfo,
    field: &dyn Fn(&str) -> Vec<Seg>,
) -> Result<Vec<Variant>, SpecProblem> {
    for (key, given) in [
        ("prompt_preset", m.prompt_preset.is_some()),
        ("disclose_discount_factor", m.disclose_discount_factor.is_some()),
        ("include_next_state", m.include_next_state.is_some()),
        ("max_history_turns", m.max_history_turns.is_some()),
        ("policy_assumption", m.policy_assumption.is_some()),
        ("disclose_step_penalty", m.disclose_step_penalty.is_some()),
        ("example_trajectories", m.example_trajectories.is_some()),
        ("include_current_thoughts", m.include_current_thoughts.is_some()),
        ("include_history_thoughts", m.include_history_thoughts.is_some()),
    ] {
        if given && !info.needs_backend {
            return Err(SpecProblem::at(field(key), format!("`{}` sends no prompts", m.kind)));
        }
    }
    let modalities: Vec<Modality> = match &m.modality {
        None => vec![Modality::Text],
        Some(given) => given
            .values()
            .iter()
            .map(|md| {
                Modality::from_key(md)
                    .ok_or_else(|| SpecProblem::at(field("modality"), spec::unknown("modality", md, &Modality::KEYS)))
            })
            .collect::<Result<_, _>>()?,
    };
    let presets: Vec<Option<Preset>> = listed(&m.prompt_preset)
        .into_iter()
        .map(|v| v.map(|v| v.parse()).transpose())
        .collect::<Result<_, String>>()
        .map_err(|e| SpecProblem::at(field("prompt_preset"), e))?;
    let policies: Vec<Option<PolicyAssumption>> = listed(&m.policy_assumption)
        .into_iter()
        .map(|v| match v {
            None => Ok(None),
            Some(v) => PolicyAssumption::from_key(&v).map(Some).ok_or_else(|| {
                SpecProblem::at(
                    field("policy_assumption"),
                    spec::unknown("policy assumption", &v, &["optimal", "self"]),
                )
            }),
        })
        .collect::<Result<_, _>>()?;
    let penalty = listed(&m.disclose_step_penalty);
    let current = listed(&m.include_current_thoughts);
    let history = listed(&m.include_history_thoughts);
    let named = |n: usize, text: String| if n > 1 { text } else { String::new() };
    let switch = |v: Option<bool>, yes: &str, no: &str| match v {
        Some(true) => yes.to_string(),
        _ => no.to_string(),
    };
    let mut out = Vec::new();
    for &modality in &modalities {
        for &preset in &presets {
            for &policy in &policies {
                for &p in &penalty {
                    for &c in &current {
                        for &h in &history {
                            let suffix = [
                                if modality == Modality::Image {
                                    "-image".to_string()
                                } else {
                                    String::new()
                                },
                                named(presets.len(), preset.map(|p| format!("-{p}")).unwrap_or_default()),
                                named(
                                    policies.len(),
                                    policy.map(|p| format!("-{}", p.key())).unwrap_or_default(),
                                ),
                                named(penalty.len(), switch(p, "-penalty-disclosed", "-penalty-hidden")),
                                named(current.len(), switch(c, "-thoughts", "-no-thoughts")),
                                named(history.len(), switch(h, "-history-thoughts", "-no-history-thoughts")),
                            ]
                            .concat();
                            out.push(Variant {
                                modality,
                                preset,
                                policy,
                                disclose_step_penalty: p,
                                current_thoughts: c,
                                history_thoughts: h,
                                suffix,
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The `## Example Trajectories` section of the file `example_trajectories` names (relative
/// to the experiment file's folder), read and checked now.
pub(super) fn examples_section(
    m: &MethodSpec,
    spec_dir: &Path,
    field: &dyn Fn(&str) -> Vec<Seg>,
) -> Result<Option<Arc<str>>, SpecProblem> {
    let Some(file) = &m.example_trajectories else {
        return Ok(None);
    };
    let path = spec_dir.join(file);
    let problem = |e: String| SpecProblem::at(field("example_trajectories"), format!("{}: {e}", path.display()));
    let text = std::fs::read_to_string(&path).map_err(|e| problem(e.to_string()))?;
    let section = qval_methods::prompting::examples::example_trajectories_section(&text).map_err(problem)?;
    Ok(Some(section.into()))
}
