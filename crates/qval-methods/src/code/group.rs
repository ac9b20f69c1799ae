//! Samples at once: a [`SampleGroup`] holds the members of one codegen method (linked by
//! [`super::group`]) so that a caller scoring them one after another (the runner predicts
//! one method at a time) still runs them together, [`parallelism`] at a time.

use async_trait::async_trait;
use futures::StreamExt as _;
use std::collections::HashMap;
use std::sync::{Mutex, Weak};

use super::sandbox::CallResult;
use qval_core::EvaluationPoint;

/// A member of a group: runs its code on points, a result per point in their order.
#[async_trait]
pub(crate) trait Member: Send + Sync {
    /// Runs on `points`.
    async fn run(&self, points: &[EvaluationPoint]) -> Vec<CallResult>;
}

/// How many samples run at once by default: the machine's cores (at least 1).
pub fn parallelism() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The members of a group and the results run ahead for them, by member and point id.
pub(crate) struct SampleGroup {
    members: Vec<Weak<dyn Member>>,
    results: Mutex<HashMap<(usize, String), CallResult>>,
    concurrency: usize,
}

impl SampleGroup {
    /// A group of `members` (in order), running `concurrency` at a time.
    pub(crate) fn new(members: Vec<Weak<dyn Member>>, concurrency: usize) -> Self {
        SampleGroup {
            members,
            results: Mutex::new(HashMap::new()),
            concurrency,
        }
    }

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
            let todo = &todo;
            futures::stream::iter(me..self.members.len())
                .map(|j| async move {
                    let Some(m) = self.members[j].upgrade() else {
                        return;
                    };
                    let pending = todo(j);
                    let got = m.run(&pending).await;
                    let mut results = self.results.lock().expect("results lock");
                    for (p, r) in pending.iter().zip(got) {
                        results.insert((j, p.id.clone()), r);
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
