//! Potential and shaped-reward signals end to end on FrozenLake (one deterministic map, every
//! step sampled, gamma 0.5 so that every value and every difference is exact in binary): a
//! shaped-reward method built from exact V differences, F = V(s') - V(s), turns into
//! potentials (running sums within each trajectory) that rank as the exact V labels do, rho 1;
//! the same values shuffled do not. Its sums per trajectory against the trajectories'
//! returns, the reward itself as F: rho 1 at trajectory granularity. `qval evaluate RUN`'s
//! path (the run folder read back) gives the same figures.

mod common;

use std::sync::Arc;

use qval_core::{DenseSignalMethod, EvaluationPoint, MethodContext, Result, Signal, async_trait};
use qval_envs::frozenlake::FrozenLakeState;
use qval_metrics::summary::{Granularity, Summary};
use qval_runner::methods::simple;
use qval_runner::{Plan, Registry, RunOptions, spec};

/// V of a deterministic FrozenLake state with `h` steps left: gamma^(d-1) when the goal is
/// d <= h steps away, else 0 (terminal states 0).
fn v(state: &FrozenLakeState, h: usize, gamma: f64) -> f64 {
    if h == 0 || state.tile().is_terminal() {
        return 0.0;
    }
    match state.map.distances_to_goal()[state.pos] {
        Some(d) if d >= 1 && d <= h => gamma.powi(d as i32 - 1),
        _ => 0.0,
    }
}

/// F = V(s') - V(s) (exact), or the transition's reward, or those values rotated by one
/// within each batch (a shuffle).
#[derive(Clone, Copy)]
enum Kind {
    VDifference,
    Reward,
    Shuffled,
}

struct Shaping(Kind);

impl Shaping {
    fn f(&self, p: &EvaluationPoint, ctx: &MethodContext) -> Result<f64> {
        if let Kind::Reward = self.0 {
            return Ok(p.reward);
        }
        let h = ctx.max_steps - p.step_index;
        let s: FrozenLakeState = p.state_as()?;
        let next = if p.terminated {
            0.0
        } else {
            v(&p.next_state_as()?, h - 1, ctx.gamma)
        };
        Ok(next - v(&s, h, ctx.gamma))
    }
}

#[async_trait]
impl DenseSignalMethod for Shaping {
    fn name(&self) -> String {
        "shaping".into()
    }
    fn signal(&self) -> Signal {
        Signal::ShapedReward
    }
    async fn evaluate(&self, p: &EvaluationPoint, ctx: &MethodContext) -> Result<f64> {
        self.f(p, ctx)
    }
    async fn evaluate_batch(&self, points: &[EvaluationPoint], ctx: &MethodContext) -> Vec<Result<f64>> {
        let mut out: Vec<Result<f64>> = points.iter().map(|p| self.f(p, ctx)).collect();
        if let Kind::Shuffled = self.0 {
            out.rotate_left(1);
        }
        out
    }
}

const EXPERIMENT: &str = r#"name = "signals"
seed = 3

[environment]
type = "frozenlake"
maps = 1
size = 6
slippery = false
max_steps = 20
gamma = 0.5

[dataset]
trajectories = 40
collector = { type = "epsilon-greedy", epsilon = 0.5 }
sampling = { per_trajectory = 20, strategy = "first", discard_first = 0, discard_last = 0 }

[[labels]]
name = "potential"
signal = "potential"
method = "exact"

[[labels]]
signal = "shaped-reward"
gamma = 1.0

[[methods]]
type = "v-difference"
name = "exact-shaping"
signal = "shaped-reward"

[[methods]]
type = "shuffled"
name = "shuffled-shaping"
signal = "shaped-reward"

[[methods]]
type = "reward"
name = "reward-shaping"
signal = "shaped-reward"

[[methods]]
type = "heuristic"
name = "distance"
signal = "potential"

[evaluate]
min_points = 3
bootstrap = 100
"#;

fn rho(s: &Summary, labels: &str, method: &str) -> (f64, usize) {
    let e = &s.estimations[labels];
    let m = e
        .flat_methods()
        .into_iter()
        .find(|(n, _)| n == method)
        .unwrap_or_else(|| panic!("{labels}: no {method}\n{}", s.markdown()))
        .1;
    let f = m.correlations.spearman.as_ref().unwrap();
    (f.correlation.unwrap_or(f64::NAN), f.num_points)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn potentials_of_exact_v_differences_rank_as_v_and_sums_per_trajectory_as_returns() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signals.toml");
    std::fs::write(&file, EXPERIMENT).unwrap();
    let registry = Registry::builtin()
        .method("v-difference", simple("test", |_| Arc::new(Shaping(Kind::VDifference))))
        .method("shuffled", simple("test", |_| Arc::new(Shaping(Kind::Shuffled))))
        .method("reward", simple("test", |_| Arc::new(Shaping(Kind::Reward))));
    let (experiment, source) = spec::load(&file).unwrap();
    let run_dir = dir.path().join("run");
    let options = RunOptions {
        out: Some(run_dir.clone()),
        quiet: true,
        ..RunOptions::default()
    };
    let plan = Plan::new(experiment, &source, &registry, options).unwrap();
    let summary = qval_runner::run(&plan).await.unwrap().summary.unwrap();

    let (exact, n) = rho(&summary, "potential", "exact-shaping-shaped-reward");
    assert!(n >= 200, "every step of 40 trajectories: {n}");
    assert!(
        (exact - 1.0).abs() < 1e-12,
        "potentials of exact V differences: rho {exact}"
    );
    let (shuffled, _) = rho(&summary, "potential", "shuffled-shaping-shaped-reward");
    assert!(shuffled < 0.9, "shuffled: rho {shuffled}");
    // A method of the potential itself is compared as it is: the distance heuristic.
    let (distance, _) = rho(&summary, "potential", "distance-potential");
    assert!(distance > 0.5, "distance: rho {distance}");

    let returns = &summary.estimations["trajectory-returns"];
    assert_eq!(returns.granularity, Granularity::Trajectory);
    assert_eq!(returns.assumption, "shaped_reward");
    let (sums, n) = rho(&summary, "trajectory-returns", "reward-shaping-shaped-reward");
    assert_eq!(n, 40, "one pair per trajectory");
    assert!((sums - 1.0).abs() < 1e-12, "summed rewards against returns: rho {sums}");
    // The exact differences telescope: their sum over a whole trajectory is -V(s0), the same
    // for every trajectory (one map, one start), so it ranks nothing.
    assert!(
        rho(&summary, "trajectory-returns", "exact-shaping-shaped-reward")
            .0
            .is_nan()
    );
    // A potential method is not summed per trajectory.
    assert!(
        summary.estimations["trajectory-returns"]
            .flat_methods()
            .iter()
            .all(|(n, _)| n != "distance-potential")
    );

    // Re-evaluating the run folder (what `qval evaluate RUN` does) gives the same figures.
    let (labels, methods) = qval_metrics::read_run(&run_dir).unwrap();
    let meta = qval_runner::runner::read_run_metadata(&run_dir).unwrap();
    let again = qval_metrics::evaluate_in(
        &labels,
        &methods,
        &plan.experiment.evaluate.config().unwrap(),
        meta.as_ref(),
    )
    .unwrap();
    for (set, method) in [
        ("potential", "exact-shaping-shaped-reward"),
        ("potential", "shuffled-shaping-shaped-reward"),
        ("trajectory-returns", "reward-shaping-shaped-reward"),
    ] {
        assert_eq!(rho(&again, set, method), rho(&summary, set, method), "{set} / {method}");
    }
}
