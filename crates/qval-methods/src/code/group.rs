//! Samples at once: [`run_samples`] runs several samples on the same points, each in its own
//! worker, up to a number at a time; [`group`] links the samples of one codegen method so
//! that a caller scoring them one after another (the runner predicts one method at a time)
//! still runs them together.

use futures::StreamExt as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::{CallResult, CodeSample};
use qval_core::EvaluationPoint;

/// How many samples run at once by default: the machine's cores (at least 1).
pub fn parallelism() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Runs every sample on `points`, `concurrency` samples at a time (at least 1); the
/// results of sample `i` are at `i`, in the order of `points`.
pub async fn run_samples(
    samples: &[Arc<CodeSample>],
    points: &[EvaluationPoint],
    concurrency: usize,
) -> Vec<Vec<CallResult>> {
    let owned: Vec<Arc<CodeSample>> = samples.to_vec();
    futures::stream::iter(owned)
        .map(|s| async move { s.run(points).await })
        .buffered(concurrency.max(1))
        .collect()
        .await
}

/// Links `samples` into one group and returns them in order: when a member is asked about
/// points it has no result for, it runs itself and every later member on them at once
/// ([`parallelism`] at a time) and keeps the later members' results until they are asked.
/// A caller going through the members in order (as the runner does) thus runs them all
/// concurrently. Members asked about other points, or alone, simply run them.
pub fn group(samples: Vec<CodeSample>) -> Vec<Arc<CodeSample>> {
    let members: Vec<Arc<CodeSample>> = samples.into_iter().map(Arc::new).collect();
    let shared = Arc::new(SampleGroup {
        members: members.iter().map(Arc::downgrade).collect(),
        results: Mutex::new(HashMap::new()),
        concurrency: parallelism(),
    });
    for (i, m) in members.iter().enumerate() {
        // A sample is linked once: a second `group` of the same sample cannot happen, as
        // `group` takes the samples by value.
        let _ = m.group.set((shared.clone(), i));
    }
    members
}

/// The members of a [`group`] and the results run ahead for them, by member and point id.
pub(crate) struct SampleGroup {
    members: Vec<Weak<CodeSample>>,
    results: Mutex<HashMap<(usize, String), CallResult>>,
    concurrency: usize,
}

impl SampleGroup {
    /// The results of member `me` on `points`: those run ahead, and the rest run now with
    /// every later member.
    pub(crate) async fn evaluate(&self, me: usize, points: &[EvaluationPoint]) -> Vec<CallResult> {
        let todo = |j: usize| -> Vec<EvaluationPoint> {
            let results = self.results.lock().expect("results lock");
            points
                .iter()
                .filter(|p| !results.contains_key(&(j, p.id.clone())))
                .cloned()
                .collect()
        };
        if !todo(me).is_empty() {
            let later: Vec<(usize, Arc<CodeSample>)> = (me..self.members.len())
                .filter_map(|j| self.members[j].upgrade().map(|m| (j, m)))
                .collect();
            futures::stream::iter(later)
                .map(|(j, m)| {
                    let pending = todo(j);
                    async move {
                        let got = m.run(&pending).await;
                        let mut results = self.results.lock().expect("results lock");
                        for (p, r) in pending.iter().zip(got) {
                            results.insert((j, p.id.clone()), r);
                        }
                    }
                })
                .buffer_unordered(self.concurrency.max(1))
                .collect::<()>()
                .await;
        }
        let mut results = self.results.lock().expect("results lock");
        let out: Vec<CallResult> = points
            .iter()
            .map(|p| {
                results
                    .get(&(me, p.id.clone()))
                    .cloned()
                    .unwrap_or_else(|| Err("internal: no result was run for this point".into()))
            })
            .collect();
        for p in points {
            results.remove(&(me, p.id.clone()));
        }
        out
    }
}
