//! The `[acting]` section: lets the experiment's methods choose an agent's actions (stage 6,
//! after evaluation), and relates each method's alignment to its acting gain.
//!
//! ```toml
//! [acting]
//! actor = { type = "noisy", epsilon = 0.5 }  # any policy type of the environment
//! k = [1, 2, 4, 8]                          # candidates per step; 1 (the baseline) always runs
//! guided = ["distance", "oracle"]           # method entries, by name (each of their methods)
//! vote = true                               # self-consistency by majority
//! random = true                             # a uniform draw among the k (the control)
//! usc = { backend = "selector" }            # universal self-consistency (published prompt)
//! samples_per_task = 1
//! success_threshold = 1.0                   # on the undiscounted return
//! ```
//!
//! | key | default | range |
//! |---|---|---|
//! | `actor` | the dataset's collector | a policy type of the environment |
//! | `k` | `[1, 2, 4, 8]` | 1 to 256 each, at most 16 values |
//! | `guided` | none | names of method entries (ranking types rank each step's candidates) |
//! | `vote`, `random` | false, true | |
//! | `usc` | none | `{ backend = "NAME", max_candidate_chars = 4000 }` |
//! | `tasks` | all the environment's | task ids |
//! | `samples_per_task` | 1 | 1 to 10,000 |
//! | `success_threshold` | 1.0 | finite |
//! | `seed` | the experiment's | |
//! | `concurrency` | 16 | 1 to 1,024 episodes at once |

pub use crate::acting_spec::{ActingSpec, UscSpec};
use crate::envs::{EnvPlugin, RunServices};
use crate::methods::ResolvedMethod;
use crate::spec::{SpecProblem, Typed, at};
use qval_core::Task;

/// How a strategy chooses.
#[derive(Clone, Debug, PartialEq)]
pub enum StrategyKind {
    /// One candidate per step (`k = 1`).
    Baseline,
    /// A uniform draw.
    Random,
    /// Majority vote.
    Vote,
    /// Universal self-consistency by the backend named, reading this many characters of each
    /// candidate.
    Usc(String, usize),
    /// A method's scores: the index of the planned method.
    Guided(usize),
}

/// One strategy of the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Strategy {
    /// Its name: `baseline`, `random`, `vote`, or the method's.
    pub name: String,
    /// How it chooses.
    pub kind: StrategyKind,
}

/// The `[acting]` section once checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedActing {
    /// The actor.
    pub actor: Typed,
    /// The `k` values above 1, ascending.
    pub ks: Vec<usize>,
    /// The strategies run at every `k` above 1 (the baseline runs at `k = 1` alone).
    pub strategies: Vec<Strategy>,
    /// The tasks.
    pub tasks: Vec<Task>,
    /// Episodes per task, threshold, seed and concurrency, checked.
    pub configs: Vec<qval_core::acting::ActingConfig>,
}

impl ResolvedActing {
    /// The config at `k`.
    pub fn config(&self, k: usize) -> &qval_core::acting::ActingConfig {
        self.configs.iter().find(|c| c.k() == k).expect("a config per k")
    }
}

/// Checks `[acting]` against the environment and the planned methods (`outputs`: how many
/// prediction sets each makes), before any work.
///
/// # Errors
/// The first problem, at its key under `acting`.
pub fn resolve(
    spec: &ActingSpec,
    seed: u64,
    collector: &Typed,
    methods: &[ResolvedMethod],
    outputs: impl Fn(&ResolvedMethod) -> usize,
    env: &dyn EnvPlugin,
    services: &dyn RunServices,
) -> Result<ResolvedActing, SpecProblem> {
    let actor = spec.actor.clone().unwrap_or_else(|| collector.clone());
    env.check_policy(&actor, services).map_err(|p| {
        let mut path = at!["acting", "actor"];
        path.extend(p.path.clone());
        SpecProblem::at(path, p.message)
    })?;
    if spec.k.is_empty() || spec.k.len() > 16 {
        return Err(SpecProblem::at(at!["acting", "k"], "give 1 to 16 values of k"));
    }
    let seed = spec.seed.unwrap_or(seed);
    // One check of every value (ActingConfig::new), a k reported at its own place in the list.
    let config = |k: usize, at_k: Vec<crate::spec::Seg>| {
        qval_core::acting::ActingConfig::new(k, spec.samples_per_task, spec.success_threshold, seed, spec.concurrency)
            .map_err(|e| {
                let path = match &e {
                    qval_core::CoreError::InvalidParameter { name, .. } if *name != "k" => at!["acting", *name],
                    _ => at_k,
                };
                SpecProblem::at(path, e.to_string())
            })
    };
    let mut configs = vec![config(1, at!["acting", "k"])?];
    for (i, &k) in spec.k.iter().enumerate() {
        let c = config(k, at!["acting", "k", i])?;
        if !configs.iter().any(|o| o.k() == k) {
            configs.push(c);
        }
    }
    configs[1..].sort_by_key(|c| c.k());
    let ks: Vec<usize> = configs[1..].iter().map(|c| c.k()).collect();
    let mut strategies = strategies(spec, methods, &outputs)?;
    if let Some(u) = &spec.usc {
        let entries = services.backend_entries();
        if !entries.contains_key(&u.backend) {
            let names: Vec<&str> = entries.keys().map(String::as_str).collect();
            return Err(SpecProblem::at(
                at!["acting", "usc", "backend"],
                crate::spec::unknown("backend", &u.backend, &names),
            ));
        }
        if !(1..=1_000_000).contains(&u.max_candidate_chars) {
            return Err(SpecProblem::at(
                at!["acting", "usc", "max_candidate_chars"],
                format!("{}: give 1 to 1000000 characters", u.max_candidate_chars),
            ));
        }
        strategies.push(Strategy {
            name: "usc".into(),
            kind: StrategyKind::Usc(u.backend.clone(), u.max_candidate_chars),
        });
    }
    let all = env.tasks();
    let tasks = match &spec.tasks {
        None => all,
        Some(ids) => ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                all.iter().find(|t| &t.id == id).cloned().ok_or_else(|| {
                    let names: Vec<&str> = all.iter().map(|t| t.id.as_str()).collect();
                    SpecProblem::at(at!["acting", "tasks", i], crate::spec::unknown("task", id, &names))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    if tasks.is_empty() {
        return Err(SpecProblem::at(at!["acting", "tasks"], "no task to act on"));
    }
    Ok(ResolvedActing {
        actor,
        ks,
        strategies,
        tasks,
        configs,
    })
}

/// The strategies `spec` asks for, each guided one a planned method scoring points.
fn strategies(
    spec: &ActingSpec,
    methods: &[ResolvedMethod],
    outputs: &impl Fn(&ResolvedMethod) -> usize,
) -> Result<Vec<Strategy>, SpecProblem> {
    let mut out = Vec::new();
    if spec.random {
        out.push(Strategy {
            name: "random".into(),
            kind: StrategyKind::Random,
        });
    }
    if spec.vote {
        out.push(Strategy {
            name: "vote".into(),
            kind: StrategyKind::Vote,
        });
    }
    for (i, name) in spec.guided.iter().enumerate() {
        let chosen: Vec<(usize, &ResolvedMethod)> =
            methods.iter().enumerate().filter(|(_, m)| m.answers_to(name)).collect();
        if chosen.is_empty() {
            let names: Vec<&str> = methods.iter().map(|m| m.entry.as_str()).collect();
            return Err(SpecProblem::at(
                at!["acting", "guided", i],
                crate::spec::unknown("method entry", name, &names),
            ));
        }
        for (j, m) in chosen {
            if outputs(m) != 1 {
                return Err(SpecProblem::at(
                    at!["acting", "guided", i],
                    format!(
                        "`{}` makes {} prediction sets; acting is guided by one method (codegen-avg averages \
                         codegen's samples)",
                        m.name,
                        outputs(m)
                    ),
                ));
            }
            if ["baseline", "random", "vote", "usc"].contains(&m.name.as_str()) {
                return Err(SpecProblem::at(
                    at!["acting", "guided", i],
                    format!("a method named `{}` would shadow a strategy: rename it", m.name),
                ));
            }
            if !out.iter().any(|s: &Strategy| s.name == m.name) {
                out.push(Strategy {
                    name: m.name.clone(),
                    kind: StrategyKind::Guided(j),
                });
            }
        }
    }
    Ok(out)
}
