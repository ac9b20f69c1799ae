//! Stages end to end: determinism across concurrency, resumption, formats, sampling.

mod common;

use async_trait::async_trait;
use common::runtime;
use qval::envs::frozenlake::{EpsilonGreedy, FrozenLake, OptimalPolicy};
use qval::io::{self, Kind, Metadata};
use qval::methods::FrozenLakeDistance;
use qval::stage::layout;
use qval::{
    CollectConfig, EvaluationPoint, Label, Labeler, MethodContext, MvmcConfig, MvmcLabeler, Prediction, SampleConfig,
    Signal, StageOptions, Strategy, Trajectory, collect, label, predict, sample_points,
};
use qval_core::Environment;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn slippery_env() -> Arc<FrozenLake> {
    Arc::new(
        FrozenLake::builder()
            .random_maps(4, 8, 42)
            .slippery(true)
            .build()
            .unwrap(),
    )
}

async fn make_points(env: &FrozenLake, concurrency: usize) -> (Vec<Trajectory>, Vec<EvaluationPoint>) {
    let collector = EpsilonGreedy::new(env, 0.2).unwrap();
    let cfg = CollectConfig::new(30, 3, concurrency).unwrap();
    let trajectories = collect(env, &collector, &env.tasks(), &cfg, &StageOptions::default())
        .await
        .unwrap();
    let points = sample_points(&trajectories, &SampleConfig::builder().seed(3).build().unwrap());
    (trajectories, points)
}

fn labeler(env: &Arc<FrozenLake>, concurrency: usize) -> MvmcLabeler<FrozenLake, OptimalPolicy> {
    MvmcLabeler::new(
        env.clone(),
        Arc::new(OptimalPolicy::for_env(env)),
        MvmcConfig::builder()
            .rollouts(8)
            .seed(11)
            .concurrency(concurrency)
            .build()
            .unwrap(),
    )
}

#[test]
fn same_seed_gives_identical_bytes_whatever_the_concurrency() {
    let env = slippery_env();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (threads, concurrency, every) in [(1, 1, 1), (2, 64, 64), (2, 7, 13)] {
        let rt = runtime(threads);
        let run = dir.path().join(format!("run-{threads}-{concurrency}"));
        rt.block_on(async {
            let (trajectories, points) = make_points(&env, concurrency).await;
            io::write_jsonl(
                &layout::trajectories(&run),
                &Metadata::new(Kind::Trajectories, "t"),
                &trajectories,
            )
            .unwrap();
            let opts = StageOptions {
                out: Some(layout::labels(&run, "mvmc-q")),
                checkpoint_every: every,
                progress: false,
                dataset: None,
                bar: None,
                redo_failed: false,
            };
            label(
                &labeler(&env, concurrency),
                &points,
                &qval_core::LabelConfig::default(),
                &opts,
            )
            .await
            .unwrap();
        });
        files.push((
            std::fs::read(layout::trajectories(&run)).unwrap(),
            std::fs::read(layout::labels(&run, "mvmc-q")).unwrap(),
        ));
    }
    assert!(files[0].1.len() > 10_000);
    for f in &files[1..] {
        assert!(f.0 == files[0].0, "trajectory files differ");
        assert!(f.1 == files[0].1, "label files differ");
    }
    // Slippery ice and eight rollouts: max and min returns differ for some point, so the
    // labels really depend on the per-rollout seeds.
    let (_, labels) =
        io::read_jsonl::<Label>(&layout::labels(&dir.path().join("run-1-1"), "mvmc-q"), Kind::Labels).unwrap();
    assert!(labels.iter().any(|l| l.returns.iter().any(|r| *r != l.value)));
}

/// Counts the points it labels and panics on the batch numbered `fail_on` (to simulate a
/// crash mid-run).
struct Flaky<L> {
    inner: L,
    batches: AtomicUsize,
    points: AtomicUsize,
    fail_on: usize,
}

#[async_trait]
impl<L: Labeler> Labeler for Flaky<L> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn signal(&self) -> Signal {
        self.inner.signal()
    }
    fn params(&self) -> serde_json::Value {
        self.inner.params()
    }
    fn seed(&self) -> Option<u64> {
        self.inner.seed()
    }
    async fn label(&self, p: &EvaluationPoint) -> Label {
        self.inner.label(p).await
    }
    async fn label_batch(&self, points: &[EvaluationPoint]) -> Vec<Label> {
        if self.batches.fetch_add(1, Ordering::SeqCst) == self.fail_on {
            panic!("simulated crash");
        }
        self.points.fetch_add(points.len(), Ordering::SeqCst);
        self.inner.label_batch(points).await
    }
}

#[test]
fn an_interrupted_label_run_resumes_without_redoing_work() {
    let env = slippery_env();
    let rt = runtime(2);
    let dir = tempfile::tempdir().unwrap();
    let (_, points) = rt.block_on(make_points(&env, 4));
    let points = Arc::new(points);
    let n = points.len();
    assert!(n > 60);
    let out = dir.path().join("labels.jsonl");
    let opts = StageOptions {
        out: Some(out.clone()),
        checkpoint_every: 10,
        progress: false,
        dataset: None,
        bar: None,
        redo_failed: false,
    };

    // First run: crashes on its 31st point (labels are checkpointed one by one as they
    // finish, so at least the first 30 are kept).
    let flaky = Arc::new(Flaky {
        inner: labeler(&env, 8),
        batches: AtomicUsize::new(0),
        points: AtomicUsize::new(0),
        fail_on: 30,
    });
    let (f, p, o) = (flaky.clone(), points.clone(), opts.clone());
    let crashed = rt.block_on(rt.spawn(async move { label(&*f, &p, &qval_core::LabelConfig::default(), &o).await }));
    assert!(crashed.is_err(), "the run crashed");
    assert!(!out.exists());
    let partial = io::partial_path(&out);
    let kept = std::fs::read_to_string(&partial).unwrap().lines().count() - 1;
    assert!((30..n).contains(&kept), "{kept} labels kept of {n}");
    // A torn last line, as a kill during a write leaves it.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&partial)
        .map(|mut f| {
            use std::io::Write;
            f.write_all(b"{\"point_id\": \"t9-s").unwrap();
        })
        .unwrap();

    // Second run: resumes, labelling only the rest.
    let resumed = Flaky {
        inner: labeler(&env, 8),
        batches: AtomicUsize::new(0),
        points: AtomicUsize::new(0),
        fail_on: usize::MAX,
    };
    let labels = rt
        .block_on(label(&resumed, &points, &qval_core::LabelConfig::default(), &opts))
        .unwrap();
    assert_eq!(resumed.points.load(Ordering::SeqCst), n - kept);
    assert_eq!(labels.len(), n);
    assert!(!partial.exists(), "the checkpoint is removed when the file is complete");

    // Identical to an uninterrupted run.
    let clean = dir.path().join("clean.jsonl");
    let clean_opts = StageOptions {
        out: Some(clean.clone()),
        checkpoint_every: 0,
        progress: false,
        dataset: None,
        bar: None,
        redo_failed: false,
    };
    rt.block_on(label(
        &labeler(&env, 8),
        &points,
        &qval_core::LabelConfig::default(),
        &clean_opts,
    ))
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&clean).unwrap());

    // Third run: everything is on disk, nothing is labelled.
    let idle = Flaky {
        inner: labeler(&env, 8),
        batches: AtomicUsize::new(0),
        points: AtomicUsize::new(0),
        fail_on: usize::MAX,
    };
    rt.block_on(label(&idle, &points, &qval_core::LabelConfig::default(), &opts))
        .unwrap();
    assert_eq!(idle.points.load(Ordering::SeqCst), 0);

    // Other settings must not silently reuse the file.
    let other = MvmcLabeler::new(
        env.clone(),
        Arc::new(OptimalPolicy::for_env(&env)),
        MvmcConfig::builder().rollouts(3).seed(11).build().unwrap(),
    );
    let err = rt
        .block_on(label(&other, &points, &qval_core::LabelConfig::default(), &opts))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("other metadata") || err.contains("other settings"),
        "{err}"
    );
}

#[test]
fn too_many_aborted_points_fail_the_run_but_keep_the_labels() {
    let env = slippery_env();
    let rt = runtime(2);
    let (_, mut points) = rt.block_on(make_points(&env, 4));
    for p in points.iter_mut().take(40) {
        p.step_index = 30; // no budget left: aborted
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("l.jsonl");
    let opts = StageOptions {
        out: Some(out.clone()),
        checkpoint_every: 0,
        progress: false,
        dataset: None,
        bar: None,
        redo_failed: false,
    };
    let err = rt
        .block_on(label(
            &labeler(&env, 4),
            &points,
            &qval_core::LabelConfig::new(0.2).unwrap(),
            &opts,
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("40 of") && err.contains("no steps left"), "{err}");
    let (_, kept) = io::read_jsonl::<Label>(&out, Kind::Labels).unwrap();
    assert_eq!(kept.len(), points.len());
    assert!(kept[0].value.is_nan() && kept[0].aborted.is_some());
    // Within the allowed share it passes.
    let share = 40.0 / points.len() as f64;
    assert!(
        rt.block_on(label(
            &labeler(&env, 4),
            &points,
            &qval_core::LabelConfig::new(share + 1e-9).unwrap(),
            &opts
        ))
        .is_ok()
    );
}

#[test]
fn formats_round_trip_and_malformed_lines_name_file_and_line() {
    let env = slippery_env();
    let rt = runtime(2);
    let dir = tempfile::tempdir().unwrap();
    let (trajectories, points) = rt.block_on(make_points(&env, 4));
    let labels = rt.block_on(labeler(&env, 4).label_batch(&points[..10]));
    let mut preds = rt
        .block_on(predict(
            &FrozenLakeDistance::new(Signal::Q),
            &points,
            &MethodContext::from_spec(env.spec()),
            &StageOptions::default(),
        ))
        .unwrap();
    preds[0] = Prediction {
        point_id: preds[0].point_id.clone(),
        value: f64::NAN,
        error: Some("timed out".into()),
        transient: true,
    };

    fn check<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
        path: &Path,
        kind: Kind,
        records: &[T],
    ) {
        let meta = Metadata::new(kind, "test")
            .with_seed(9)
            .with_params(serde_json::json!({"k": 1}));
        io::write_jsonl(path, &meta, records).unwrap();
        let (m, back) = io::read_jsonl::<T>(path, kind).unwrap();
        assert_eq!(m, meta);
        assert_eq!(back.len(), records.len());
        assert!(
            back.iter()
                .zip(records)
                .all(|(a, b)| format!("{a:?}") == format!("{b:?}")),
            "round trip of {kind:?}"
        );
    }
    check(&dir.path().join("t.jsonl"), Kind::Trajectories, &trajectories);
    check(&dir.path().join("p.jsonl"), Kind::Points, &points);
    check(&dir.path().join("l.jsonl"), Kind::Labels, &labels);
    check(&dir.path().join("r.jsonl"), Kind::Predictions, &preds);
    let text = std::fs::read_to_string(dir.path().join("r.jsonl")).unwrap();
    assert!(
        text.lines().nth(1).unwrap().contains("\"value\":null"),
        "NaN is written as null"
    );

    // A malformed record: the error names the file and the line.
    let bad = dir.path().join("bad.jsonl");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[3] = "{\"point_id\": \"x\", \"value\": \"high\"}".into();
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let err = io::read_jsonl::<Prediction>(&bad, Kind::Predictions)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("{}:4:", bad.display())), "{err}");
    // Wrong kind, missing metadata, empty file.
    let err = io::read_jsonl::<Label>(&dir.path().join("r.jsonl"), Kind::Labels)
        .unwrap_err()
        .to_string();
    assert!(err.contains(":1:") && err.contains("Predictions"), "{err}");
    std::fs::write(&bad, "{\"point_id\": \"x\", \"value\": 1}\n").unwrap();
    assert!(
        io::read_jsonl::<Prediction>(&bad, Kind::Predictions)
            .unwrap_err()
            .to_string()
            .contains("qval_metadata")
    );
    std::fs::write(&bad, "").unwrap();
    assert!(
        io::read_jsonl::<Prediction>(&bad, Kind::Predictions)
            .unwrap_err()
            .to_string()
            .contains("empty")
    );
    assert!(
        io::read_jsonl::<Prediction>(&dir.path().join("missing.jsonl"), Kind::Predictions)
            .unwrap_err()
            .to_string()
            .contains("missing.jsonl")
    );
}

fn fake_trajectory(index: usize, n: usize) -> Trajectory {
    let env = FrozenLake::builder().preset_8x8().max_steps(100).build().unwrap();
    let rt = runtime(1);
    // A policy that bumps into the top wall forever gives as many steps as we like.
    struct Up;
    #[async_trait]
    impl qval::Policy<FrozenLake> for Up {
        fn name(&self) -> String {
            "up".into()
        }
        async fn act(
            &self,
            _: &FrozenLake,
            _: qval::PolicyInput<'_, qval::envs::frozenlake::FrozenLakeState>,
            _: &mut qval::QRng,
        ) -> qval::Result<qval::envs::frozenlake::FrozenLakeAction> {
            Ok(qval::envs::frozenlake::FrozenLakeAction::Up)
        }
    }
    let mut t = rt
        .block_on(qval::stage::run_episode(&env, &Up, &env.tasks()[0], index, 0))
        .unwrap();
    t.transitions.truncate(n);
    t
}

#[test]
fn sampling_strategies_follow_the_published_rules() {
    let first = SampleConfig::builder().strategy(Strategy::First).build().unwrap();
    let uniform = SampleConfig::builder().strategy(Strategy::Uniform).build().unwrap();
    let random = SampleConfig::builder()
        .strategy(Strategy::Random)
        .seed(5)
        .build()
        .unwrap();
    // 20 steps, discard the first and last: eligible 1..=18.
    assert_eq!(first.select(20, 0), vec![1, 2, 3, 4, 5]);
    // round(i * 17 / 4) for i = 0..5 = 0, 4.25, 8.5, 12.75, 17 -> 0, 4, 8 (half to even), 13, 17.
    assert_eq!(uniform.select(20, 0), vec![1, 5, 9, 14, 18]);
    let r = random.select(20, 3);
    assert_eq!(r.len(), 5);
    assert!(r.windows(2).all(|w| w[0] < w[1]) && r.iter().all(|i| (1..=18).contains(i)));
    assert_eq!(r, random.select(20, 3), "seeded by the trajectory index");
    assert_ne!(r, random.select(20, 4));
    // Few steps: everything eligible is taken; nothing left after discarding: all steps.
    assert_eq!(first.select(4, 0), vec![1, 2]);
    assert_eq!(first.select(2, 0), vec![0, 1]);
    assert_eq!(first.select(1, 0), vec![0]);
    assert!(first.select(0, 0).is_empty());
    assert!(SampleConfig::builder().per_trajectory(0).build().is_err());
    // Points carry the history of earlier turns and ids that name their place.
    let t = fake_trajectory(7, 12);
    let points = sample_points(std::slice::from_ref(&t), &first);
    assert_eq!(
        points.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["t7-s1", "t7-s2", "t7-s3", "t7-s4", "t7-s5"]
    );
    assert_eq!(points[2].history.len(), 3);
    assert_eq!(points[2].history[0].action, "up");
    assert_eq!(points[2].state, t.transitions[3].state);
}

#[test]
fn predictions_record_failures_as_nan_with_the_reason() {
    struct Picky;
    #[async_trait]
    impl qval::DenseSignalMethod for Picky {
        fn name(&self) -> String {
            "picky".into()
        }
        fn signal(&self) -> Signal {
            Signal::Q
        }
        async fn evaluate(&self, p: &EvaluationPoint, _: &MethodContext) -> qval::Result<f64> {
            match p.step_index % 3 {
                0 => Err(qval::CoreError::Method("backend said no".into())),
                1 => Ok(f64::INFINITY),
                _ => Ok(p.step_index as f64),
            }
        }
    }
    let t = fake_trajectory(0, 9);
    let points = sample_points(
        &[t],
        &SampleConfig::builder()
            .per_trajectory(9)
            .discard_first(0)
            .discard_last(0)
            .build()
            .unwrap(),
    );
    let env = FrozenLake::builder().preset_8x8().build().unwrap();
    let preds = runtime(1)
        .block_on(predict(
            &Picky,
            &points,
            &MethodContext::from_spec(env.spec()),
            &StageOptions::default(),
        ))
        .unwrap();
    assert_eq!(preds.len(), 9);
    assert!(preds[0].value.is_nan() && preds[0].error.as_deref() == Some("backend said no"));
    assert!(preds[1].value.is_nan() && preds[1].error.as_deref().unwrap().contains("non-finite"));
    assert_eq!((preds[2].value, preds[2].error.as_deref()), (2.0, None));
}

/// Labels finish in any order (they are labelled concurrently and checkpointed as they
/// finish); the stage returns them in the points' order, in memory as on disk.
#[test]
fn labels_come_back_in_the_points_order_in_memory_and_on_disk() {
    let env = slippery_env();
    let rt = runtime(2);
    let dir = tempfile::tempdir().unwrap();
    let (_, points) = rt.block_on(make_points(&env, 4));
    let l = labeler(&env, 16);
    let config = qval_core::LabelConfig::default();
    let memory = StageOptions {
        progress: false,
        ..Default::default()
    };
    let file = StageOptions {
        out: Some(dir.path().join("labels.jsonl")),
        progress: false,
        ..Default::default()
    };
    let in_memory = rt.block_on(label(&l, &points, &config, &memory)).unwrap();
    let on_disk = rt.block_on(label(&l, &points, &config, &file)).unwrap();
    let ids: Vec<&str> = points.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(in_memory.iter().map(|l| l.point_id.as_str()).collect::<Vec<_>>(), ids);
    assert_eq!(in_memory, on_disk);
}
