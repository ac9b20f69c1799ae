//! The committed published FrozenLake maps against the published ground truth (issue 15).
//!
//! The code of the published environment package that draws its 8 maps (map seed 42) is not
//! public, so `data/published_frozenlake_maps.json` holds the maps of an inferred rule (see
//! `scripts/gen_published_maps.py`). This test checks that rule against what was published:
//! the ranking ground truth of the published FrozenLake dataset
//! (`fixtures/published_frozenlake_ranking_gt.json`: the four actions' Q values of each of
//! its 239 states, in the published candidate order) and the task each trajectory played
//! (`collected_task_indices` of the published summary, copied into the fixture; task t plays
//! map t % 8).
//!
//! qval's exact Q labels of the four actions, computed on the committed maps, must give each
//! published state's four values, bit for bit (as a multiset: the published candidates are
//! shuffled), on a cell of the map of its trajectory's task. The states are in collection
//! order, at most 5 per trajectory (the published sampling); which trajectory each came from
//! is not in the published file, so the test looks for a split that fits. The published Q labels of the
//! actions taken (the summary's `qv_mc_max`, also in the fixture) must be among their state's
//! four values.
//!
//! The check can fail: giving the trajectories the maps of their neighbours' tasks (t + 1)
//! places far fewer states, which the test also asserts.

use qval_core::{Environment, EvaluationPoint, Labeler, Signal};
use qval_envs::frozenlake::{ExactLabeler, FrozenLake, FrozenLakeAction, published_task_order};
use serde_json::Value;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

fn fixture(path: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

/// The four actions' Q values of a state, as sorted bit patterns.
type Signature = Vec<u64>;

fn signature(mut values: Vec<f64>) -> Signature {
    values.sort_by(f64::total_cmp);
    values.into_iter().map(f64::to_bits).collect()
}

/// For each map, the signatures of every cell an agent can stand on (not a hole or the goal),
/// from qval's exact Q labels with a step budget that does not bind (step 1 of 30).
async fn map_signatures(env: &Arc<FrozenLake>) -> Vec<HashSet<Signature>> {
    let labeler = ExactLabeler::new(env.clone(), Signal::Q, None);
    let mut out = Vec::new();
    for map in env.maps() {
        let mut sigs = HashSet::new();
        for pos in 0..map.len() {
            let state = env.state_at(map, pos);
            if state.tile().is_terminal() {
                continue;
            }
            let mut values = Vec::new();
            for dir in 0..4 {
                let action = FrozenLakeAction::from_index(dir);
                let mut rng = qval_core::seed::rng_for(0, &[]);
                let point =
                    EvaluationPoint::from_step(&**env, &env.tasks()[0], 0, 1, &state, &action, &mut rng).unwrap();
                let label = labeler.label(&point).await;
                assert!(label.aborted.is_none(), "{label:?}");
                values.push(label.value);
            }
            sigs.insert(signature(values));
        }
        out.push(sigs);
    }
    out
}

/// The most published states that can be placed, in order, on the trajectories' maps: each
/// trajectory (in collection order) takes the next 0 to 5 states, each of which must be a cell
/// of its map; a state that fits nowhere is skipped (and not counted).
fn placed(states: &[Signature], maps: &[HashSet<Signature>], map_of: &[usize]) -> usize {
    let (n, m) = (states.len(), map_of.len());
    // best[i][t]: states placed from state i on, trajectory t next.
    let mut best = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for t in (0..m).rev() {
            let mut b = best[i][t + 1].max(best[i + 1][t]);
            let mut j = i;
            while j < n && j - i < 5 && maps[map_of[t]].contains(&states[j]) {
                j += 1;
                b = b.max((j - i) + best[j][t + 1]);
            }
            best[i][t] = b;
        }
    }
    best[0][0]
}

#[tokio::test]
async fn the_committed_maps_reproduce_the_published_ranking_ground_truth() {
    let gt = fixture("tests/fixtures/published_frozenlake_ranking_gt.json");
    let values = floats(&gt["values"]);
    assert_eq!(
        values.len(),
        239 * 4,
        "the published ranking ground truth has 239 states of 4 actions"
    );
    let states: Vec<Signature> = values.chunks(4).map(|c| signature(c.to_vec())).collect();

    // From the published summary of the same dataset.
    assert_eq!(gt["make_kwargs"]["num_maps"], 8);
    assert_eq!(gt["make_kwargs"]["map_seed"], 42);
    let tasks: Vec<usize> = gt["collected_task_indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(tasks.len(), 50);
    assert_eq!(
        published_task_order().unwrap(),
        tasks,
        "the committed task order is the published one"
    );

    // The action taken is one of the state's four candidates.
    let taken = floats(&gt["qv_mc_max"]);
    assert_eq!(taken.len(), 239);
    for (i, (q, state)) in taken.iter().zip(&states).enumerate() {
        assert!(
            state.contains(&q.to_bits()),
            "state {i}: published Q {q} is not among its candidates' values"
        );
    }

    // The published tasks: trajectory t of a 50-trajectory collection plays task t, whose map
    // is the one its published trajectory played.
    let env = Arc::new(
        FrozenLake::builder()
            .published_tasks()
            .gamma(0.95)
            .max_steps(30)
            .build()
            .unwrap(),
    );
    assert_eq!(env.maps().len(), 8);
    let maps = map_signatures(&env).await;
    let own: Vec<usize> = env
        .tasks()
        .iter()
        .map(|task| {
            let rows = &task.params["map"];
            env.maps()
                .iter()
                .position(|m| serde_json::json!(m.rows_text()) == *rows)
                .unwrap()
        })
        .collect();
    assert_eq!(own, tasks.iter().map(|t| t % 8).collect::<Vec<_>>());
    assert_eq!(env.tasks()[0].id, "frozenlake-8x8-task25-map1");

    // Methods are told the published task and reward descriptions (with pictures, the
    // published vision wording); on other maps, or slippery ice, qval's own.
    use qval_envs::frozenlake::{ObservationMode, PUBLISHED_REWARD, PUBLISHED_TASK, PUBLISHED_TASK_VISION};
    assert_eq!(env.spec().notes, PUBLISHED_TASK);
    assert_eq!(env.spec().reward_description, PUBLISHED_REWARD);
    let vision = FrozenLake::builder()
        .published_maps()
        .observation(ObservationMode::TextAndImage)
        .build()
        .unwrap();
    assert_eq!(vision.spec().notes, PUBLISHED_TASK_VISION);
    // The published tasks play the published maps only.
    for bad in [
        FrozenLake::builder().preset_4x4().published_tasks().build(),
        FrozenLake::builder().published_tasks().preset_4x4().build(),
    ] {
        let e = bad.unwrap_err().to_string();
        assert!(e.contains("published_tasks plays the published maps only"), "{e}");
    }
    for other in [
        FrozenLake::builder().published_maps().slippery(true).build().unwrap(),
        FrozenLake::builder().preset_8x8().published_maps().build().unwrap(),
        FrozenLake::builder().published_maps().preset_4x4().build().unwrap(),
    ] {
        assert_ne!(other.spec().notes, PUBLISHED_TASK);
        assert_ne!(other.spec().reward_description, PUBLISHED_REWARD);
    }

    let n = placed(&states, &maps, &own);
    assert_eq!(
        n,
        states.len(),
        "only {n} of {} published states fit the committed maps",
        states.len()
    );

    // The check can fail: with each trajectory on the map of the next task, most states
    // still fit somewhere near the goal, but far from all.
    let shifted: Vec<usize> = tasks.iter().map(|t| (t + 1) % 8).collect();
    let wrong = placed(&states, &maps, &shifted);
    assert!(
        wrong < states.len() - 20,
        "{wrong} of {} states fit the wrong maps",
        states.len()
    );
    eprintln!("published states placed: {n} on the tasks' maps, {wrong} with the maps shifted by one");
}
