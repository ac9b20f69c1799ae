//! Reference labels against the exact optimal Q on deterministic FrozenLake: MCTS and MVMC at
//! equal numbers of simulation returns; rollouts shared between label sets and read back
//! from a store; pass@k from the label stage's rollouts against fresh episodes.

use std::sync::Arc;

use qval_core::rollout::{RolloutStore, Rollouts};
use qval_core::{
    Aggregation, CollectConfig, Environment, EvaluationPoint, Labeler, MctsConfig, MctsLabeler, MvmcConfig,
    MvmcLabeler, SampleConfig, Signal, StageOptions, collect, sample_points,
};
use qval_envs::frozenlake::{EpsilonGreedy, ExactLabeler, FrozenLake};
use qval_metrics::passk::{Attempt, compute};

/// A deterministic 8x8 lake, points sampled from epsilon-greedy trajectories.
async fn lake_and_points(n: usize) -> (Arc<FrozenLake>, Vec<EvaluationPoint>) {
    let env = Arc::new(
        FrozenLake::builder()
            .random_maps(6, 8, 3)
            .slippery(false)
            .build()
            .unwrap(),
    );
    let tasks = env.tasks();
    let policy = EpsilonGreedy::new(&env, 0.3).unwrap();
    let trajectories = collect(
        &*env,
        &policy,
        &tasks,
        &CollectConfig::new(n, 7, 4).unwrap(),
        &StageOptions::default(),
    )
    .await
    .unwrap();
    let points = sample_points(
        &trajectories,
        &SampleConfig::builder().per_trajectory(3).seed(2).build().unwrap(),
    );
    (env, points)
}

fn mae(labels: &[qval_core::Label], exact: &[qval_core::Label]) -> f64 {
    let pairs: Vec<f64> = labels
        .iter()
        .zip(exact)
        .map(|(a, b)| {
            assert!(a.value.is_finite() && b.value.is_finite(), "{a:?} {b:?}");
            (a.value - b.value).abs()
        })
        .collect();
    pairs.iter().sum::<f64>() / pairs.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcts_and_mvmc_max_labels_approach_the_exact_optimal_q_from_below_as_the_budget_grows() {
    let (env, points) = lake_and_points(40).await;
    assert!(points.len() >= 60, "{} points", points.len());
    let noisy = Arc::new(EpsilonGreedy::new(&env, 0.5).unwrap());
    let exact = ExactLabeler::new(env.clone(), Signal::Q, None)
        .label_batch(&points)
        .await;
    let mut table = String::from("| returns | MVMC-max MAE | MCTS-max MAE |\n|---:|---:|---:|\n");
    let mut errors = Vec::new();
    for budget in [8, 32, 128] {
        let mvmc = MvmcLabeler::new(
            env.clone(),
            noisy.clone(),
            MvmcConfig::builder().rollouts(budget).seed(11).build().unwrap(),
        );
        let mcts = MctsLabeler::new(
            env.clone(),
            noisy.clone(),
            MctsConfig::builder().iterations(budget).seed(11).build().unwrap(),
        );
        let (mvmc, mcts) = (mvmc.label_batch(&points).await, mcts.label_batch(&points).await);
        // Deterministic steps: every return is one the policy can earn, so no max exceeds Q*.
        for (l, e) in mvmc.iter().chain(&mcts).zip(exact.iter().cycle()) {
            assert!(l.value <= e.value + 1e-12, "{l:?} above the optimum {e:?}");
        }
        let (m, t) = (mae(&mvmc, &exact), mae(&mcts, &exact));
        table.push_str(&format!("| {budget} | {m:.4} | {t:.4} |\n"));
        errors.push((m, t));
    }
    eprintln!("{} points, reference epsilon-greedy 0.5:\n{table}", points.len());
    // Both estimators converge: the error falls at every budget, for each.
    for w in errors.windows(2) {
        assert!(w[1].0 < w[0].0 && w[1].1 < w[0].1, "{table}");
    }
    // The figures, whatever they show, are in the closing note of issue 26: on this lake MCTS
    // is ahead at 32 returns and behind at 128 (its returns concentrate on the branches it
    // exploits). What held at every noise level tried: MCTS at the largest budget beats MVMC
    // at the smallest by far.
    assert!(errors[2].1 < errors[0].0 / 4.0, "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_sets_share_rollouts_and_a_store_gives_them_back_byte_for_byte() {
    let (env, points) = lake_and_points(10).await;
    let noisy = Arc::new(EpsilonGreedy::new(&env, 0.5).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let labeler = |agg: Aggregation, k: usize, rollouts: Arc<Rollouts>| {
        MvmcLabeler::new(
            env.clone(),
            noisy.clone(),
            MvmcConfig::builder()
                .rollouts(k)
                .aggregation(agg)
                .seed(3)
                .build()
                .unwrap(),
        )
        .with_rollouts(rollouts)
    };
    // Max with k = 16, then mean with k = 8: the mean runs nothing.
    let shared = Arc::new(Rollouts::stored(RolloutStore::new(dir.path())));
    let max = labeler(Aggregation::Max, 16, shared.clone()).label_batch(&points).await;
    let after_max = shared.counts();
    assert_eq!(after_max.run, 16 * points.len() as u64);
    let mean = labeler(Aggregation::Mean, 8, shared.clone()).label_batch(&points).await;
    let after_mean = shared.counts() - after_max;
    assert_eq!((after_mean.run, after_mean.reused), (0, 8 * points.len() as u64));
    // Without sharing, the same labels, computed afresh.
    let alone = labeler(Aggregation::Mean, 8, Arc::new(Rollouts::in_memory()))
        .label_batch(&points)
        .await;
    let bytes = |l: &[qval_core::Label]| serde_json::to_string(l).unwrap();
    assert_eq!(bytes(&mean), bytes(&alone));
    // A second run on the store (a copy of it elsewhere): zero rollouts, the same bytes.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    let again = Arc::new(Rollouts::stored(RolloutStore::new(copy.path())));
    let max2 = labeler(Aggregation::Max, 16, again.clone()).label_batch(&points).await;
    assert_eq!(again.counts().run, 0);
    assert_eq!(bytes(&max), bytes(&max2));
    // A larger k runs only what is missing.
    labeler(Aggregation::Max, 20, again.clone()).label_batch(&points).await;
    assert_eq!(again.counts().run, 4 * points.len() as u64);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passk_from_the_label_rollouts_equals_passk_from_fresh_episodes_of_the_same_seeds() {
    let env = Arc::new(FrozenLake::builder().preset_4x4().slippery(true).build().unwrap());
    let noisy = Arc::new(EpsilonGreedy::new(&env, 0.3).unwrap());
    let starts: Vec<EvaluationPoint> = env
        .tasks()
        .into_iter()
        .map(|t| {
            let s = env.reset(&t, &mut qval_core::seed::rng_for(1, &[0])).unwrap();
            EvaluationPoint::at_start(&*env, t, &s).unwrap()
        })
        .collect();
    let n = 20;
    let v = |rollouts: Arc<Rollouts>| {
        MvmcLabeler::new(
            env.clone(),
            noisy.clone(),
            MvmcConfig::builder()
                .rollouts(n)
                .signal(Signal::V)
                .seed(9)
                .build()
                .unwrap(),
        )
        .with_rollouts(rollouts)
    };
    let attempts = |l: &MvmcLabeler<FrozenLake, EpsilonGreedy>| {
        let l = l.clone();
        let starts = starts.clone();
        async move {
            let mut out = Vec::new();
            for p in &starts {
                for r in l.rollouts_of(p).await.unwrap().unwrap() {
                    out.push(Attempt {
                        task_key: p.task.id.clone(),
                        task_name: p.task.id.clone(),
                        success: Some(r.undiscounted() >= 1.0),
                        total_reward: r.undiscounted(),
                        num_steps: r.rewards.len(),
                    });
                }
            }
            out
        }
    };
    // The label stage first, then its rollouts (read back: nothing run again).
    let labelling = v(Arc::new(Rollouts::in_memory()));
    let labels = labelling.label_batch(&starts).await;
    assert!(labels.iter().all(|l| l.returns.len() == n));
    let ran = labelling.rollouts().counts().run;
    let from_labels = compute(&attempts(&labelling).await, &[1, 5, 10, 20]);
    assert_eq!(
        labelling.rollouts().counts().run,
        ran,
        "pass@k from the labels costs nothing"
    );
    // Fresh episodes of the same seeds, rolled out anew.
    let fresh = v(Arc::new(Rollouts::in_memory()));
    let from_fresh = compute(&attempts(&fresh).await, &[1, 5, 10, 20]);
    assert_eq!(fresh.rollouts().counts().run, ran);
    assert_eq!(from_labels, from_fresh);
    let p1 = from_labels.mean(1).unwrap();
    assert!(p1 > 0.0 && p1 < 1.0, "a noisy policy on a slippery lake: pass@1 = {p1}");
    // pass@1 is the mean success rate over tasks.
    let rates: Vec<f64> = from_labels.per_task.iter().map(|t| t.success_rate.unwrap()).collect();
    assert!((p1 - rates.iter().sum::<f64>() / rates.len() as f64).abs() < 1e-12);
}
