//! Reference-policy rollouts as data: what one rollout earned, the content address of a
//! point's rollouts, and the [`Rollouts`] cache that label sets share (in memory, and on disk
//! across runs through a [`RolloutStore`]).
//!
//! A rollout is kept as its raw rewards, so label sets that differ in discount, step penalty,
//! aggregation or k share it: the first k rollouts of a point are the same whatever k a set
//! asks for, because rollout `r` draws from a generator of its own (root seed, point id,
//! start, `r`).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::types::{EvaluationPoint, ExpertRollout};
use crate::{CoreError, Result};

/// Where a rollout starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// From the point's state, forcing its action (Q).
    Forced,
    /// From the point's state (V(s)).
    State,
    /// From the point's next state (V(s')).
    Next,
}

impl Start {
    /// The number mixed into each rollout's seed path.
    pub(crate) fn seed_key(self) -> u64 {
        match self {
            Start::Forced => 0,
            Start::State => 1,
            Start::Next => 2,
        }
    }
}

/// One finished rollout: the raw reward of each transition (the forced one first, if any).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// The reward of each transition, before any step penalty.
    pub rewards: Vec<f64>,
    /// The reference policy's first action after a forced one, rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_action: Option<String>,
}

impl Rollout {
    /// The discounted return sum_t gamma^t (r_t - step_penalty).
    pub fn discounted(&self, gamma: f64, step_penalty: f64) -> f64 {
        let mut ret = 0.0;
        let mut discount = 1.0;
        for r in &self.rewards {
            ret += discount * (r - step_penalty);
            discount *= gamma;
        }
        ret
    }

    /// The undiscounted return (what pass@k compares with its threshold).
    pub fn undiscounted(&self) -> f64 {
        self.rewards.iter().sum()
    }

    /// What the rollout did, as a label's [`ExpertRollout`].
    pub fn expert(&self) -> ExpertRollout {
        ExpertRollout {
            next_action: self.next_action.clone(),
            steps: self.rewards.len(),
            success_step: self.rewards.iter().position(|r| *r > 0.0),
            final_reward: self.rewards.last().copied().unwrap_or(0.0),
        }
    }
}

/// The content address of a point's rollouts: a SHA-256 over what determines them (the
/// environment's spec, the policy's fingerprint, the root seed, the start and the point
/// itself), so a moved or copied run folder finds them again. The discount and the step
/// penalty are not part of it: rollouts keep raw rewards.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RolloutKey(String);

impl RolloutKey {
    /// The key of `point`'s rollouts from `start`.
    pub fn new(env: &Value, policy: &str, seed: u64, start: Start, point: &EvaluationPoint) -> Self {
        use sha2::{Digest, Sha256};
        let what = json!({
            "qval_rollouts": 1,
            "env": env,
            "policy": policy,
            "seed": seed,
            "start": start,
            "point": point,
        });
        let digest = Sha256::digest(what.to_string().as_bytes());
        RolloutKey(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The key in hexadecimal.
    pub fn hex(&self) -> &str {
        &self.0
    }
}

/// Rollout counts, for a label set's cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutCounts {
    /// Rollouts run.
    pub run: u64,
    /// Rollouts read back instead of run (from memory or the store).
    pub reused: u64,
    /// Environment steps of the rollouts run.
    pub steps: u64,
}

impl std::ops::Sub for RolloutCounts {
    type Output = RolloutCounts;
    fn sub(self, o: RolloutCounts) -> RolloutCounts {
        RolloutCounts {
            run: self.run - o.run,
            reused: self.reused - o.reused,
            steps: self.steps - o.steps,
        }
    }
}

/// What produced a stored entry, kept beside its rollouts for `qval rollouts list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Produced {
    /// The environment's name.
    pub env: String,
    /// The policy's fingerprint.
    pub policy: String,
}

/// One file of a [`RolloutStore`].
#[derive(Serialize, Deserialize)]
struct Entry {
    qval_rollouts: u32,
    key: String,
    #[serde(flatten)]
    produced: Produced,
    rollouts: Vec<Rollout>,
}

/// A folder of rollouts by [`RolloutKey`], shared by runs: `<dir>/<2 hex>/<key>.json`, one
/// file per point and start holding its first n rollouts.
///
/// Safe under concurrent writers (two shards, two runs): a file is written under a name of
/// its own and renamed into place, so a reader sees a whole file or none, and whichever
/// writer renames last leaves a valid prefix (the rollouts are the same). A file that does
/// not parse (a torn write after a crash) is taken as absent and rewritten.
#[derive(Clone, Debug)]
pub struct RolloutStore {
    dir: PathBuf,
}

/// Disambiguates temporary files of one process.
static TMP: AtomicU64 = AtomicU64::new(0);

impl RolloutStore {
    /// A store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RolloutStore { dir: dir.into() }
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &RolloutKey) -> PathBuf {
        self.dir.join(&key.0[..2]).join(format!("{}.json", key.0))
    }

    /// The stored rollouts of `key` (none if absent or unreadable).
    pub fn get(&self, key: &RolloutKey) -> Option<Vec<Rollout>> {
        let text = std::fs::read(self.path(key)).ok()?;
        let entry: Entry = serde_json::from_slice(&text).ok()?;
        (entry.qval_rollouts == 1 && entry.key == key.0).then_some(entry.rollouts)
    }

    /// Stores `rollouts` under `key`.
    ///
    /// # Errors
    /// A folder or file that cannot be written.
    pub fn put(&self, key: &RolloutKey, produced: &Produced, rollouts: &[Rollout]) -> Result<()> {
        let path = self.path(key);
        let dir = path.parent().expect("a file in a folder");
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io("creating folder", dir, e))?;
        let entry = Entry {
            qval_rollouts: 1,
            key: key.0.clone(),
            produced: produced.clone(),
            rollouts: rollouts.to_vec(),
        };
        let bytes = serde_json::to_vec(&entry).map_err(|e| CoreError::Empty(format!("a rollout entry: {e}")))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}-{}",
            key.0,
            std::process::id(),
            TMP.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&tmp, bytes).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            CoreError::io("writing", &tmp, e)
        })?;
        std::fs::rename(&tmp, &path).map_err(|e| CoreError::io("renaming into", &path, e))
    }

    /// Every entry: its file, what produced it, its rollout count, its size and age. Files
    /// that do not parse are listed with `None`.
    ///
    /// # Errors
    /// A folder that cannot be read.
    pub fn list(&self) -> Result<Vec<StoredEntry>> {
        let mut out = Vec::new();
        if !self.dir.exists() {
            return Ok(out);
        }
        let read = |d: &Path| std::fs::read_dir(d).map_err(|e| CoreError::io("reading folder", d, e));
        for sub in read(&self.dir)? {
            let sub = sub.map_err(|e| CoreError::io("reading folder", &self.dir, e))?.path();
            if !sub.is_dir() {
                continue;
            }
            for f in read(&sub)? {
                let path = f.map_err(|e| CoreError::io("reading folder", &sub, e))?.path();
                if path.extension().is_none_or(|x| x != "json") {
                    continue;
                }
                let meta = std::fs::metadata(&path).map_err(|e| CoreError::io("reading", &path, e))?;
                let entry: Option<Entry> = std::fs::read(&path).ok().and_then(|t| serde_json::from_slice(&t).ok());
                out.push(StoredEntry {
                    bytes: meta.len(),
                    modified: meta.modified().ok(),
                    produced: entry.as_ref().map(|e| e.produced.clone()),
                    rollouts: entry.as_ref().map_or(0, |e| e.rollouts.len()),
                    path,
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

/// One file of a store, as [`RolloutStore::list`] sees it.
#[derive(Clone, Debug)]
pub struct StoredEntry {
    /// The file.
    pub path: PathBuf,
    /// What produced it (`None`: the file does not parse).
    pub produced: Option<Produced>,
    /// Rollouts it holds.
    pub rollouts: usize,
    /// Its size.
    pub bytes: u64,
    /// When it was last written.
    pub modified: Option<std::time::SystemTime>,
}

/// The rollouts of one labelling run, shared by its label sets: kept in memory, or in a
/// [`RolloutStore`] when one is given (then nothing is held in memory). Counts what it ran
/// and what it reused.
#[derive(Default)]
pub struct Rollouts {
    store: Option<RolloutStore>,
    memory: Mutex<HashMap<RolloutKey, Arc<Vec<Rollout>>>>,
    run: AtomicU64,
    reused: AtomicU64,
    steps: AtomicU64,
}

impl Rollouts {
    /// Rollouts kept in memory for the life of this value.
    pub fn in_memory() -> Self {
        Rollouts::default()
    }

    /// Rollouts kept in `store`.
    pub fn stored(store: RolloutStore) -> Self {
        Rollouts {
            store: Some(store),
            ..Rollouts::default()
        }
    }

    /// The store, if any.
    pub fn store(&self) -> Option<&RolloutStore> {
        self.store.as_ref()
    }

    /// What was run and reused so far.
    pub fn counts(&self) -> RolloutCounts {
        RolloutCounts {
            run: self.run.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
            steps: self.steps.load(Ordering::Relaxed),
        }
    }

    /// The rollouts known under `key` (possibly fewer than wanted).
    pub fn known(&self, key: &RolloutKey) -> Vec<Rollout> {
        match &self.store {
            Some(s) => s.get(key).unwrap_or_default(),
            None => self
                .memory
                .lock()
                .expect("rollout lock")
                .get(key)
                .map(|v| v.to_vec())
                .unwrap_or_default(),
        }
    }

    /// Records `rollouts` run elsewhere (a tree search's simulations) and their `steps`.
    pub fn note_run(&self, rollouts: u64, steps: u64) {
        self.run.fetch_add(rollouts, Ordering::Relaxed);
        self.steps.fetch_add(steps, Ordering::Relaxed);
    }

    /// Records that `reused` known rollouts were used.
    pub fn note_reused(&self, reused: usize) {
        self.reused.fetch_add(reused as u64, Ordering::Relaxed);
    }

    /// Records `all` as the rollouts under `key`, of which `fresh` were run now.
    ///
    /// # Errors
    /// A store that cannot be written.
    pub fn keep(&self, key: &RolloutKey, produced: &Produced, all: Vec<Rollout>, fresh: &[Rollout]) -> Result<()> {
        self.run.fetch_add(fresh.len() as u64, Ordering::Relaxed);
        let steps: usize = fresh.iter().map(|r| r.rewards.len()).sum();
        self.steps.fetch_add(steps as u64, Ordering::Relaxed);
        if fresh.is_empty() {
            return Ok(());
        }
        match &self.store {
            Some(s) => s.put(key, produced, &all),
            None => {
                self.memory
                    .lock()
                    .expect("rollout lock")
                    .insert(key.clone(), Arc::new(all));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(rewards: &[f64]) -> Rollout {
        Rollout {
            rewards: rewards.to_vec(),
            next_action: None,
        }
    }

    #[test]
    fn returns_discount_each_transition_and_subtract_the_penalty() {
        let r = rollout(&[0.0, 0.0, 1.0]);
        assert_eq!(r.discounted(0.5, 0.0), 0.25);
        assert_eq!(r.discounted(1.0, 0.1), 1.0 - 0.3);
        assert_eq!(r.undiscounted(), 1.0);
        let e = r.expert();
        assert_eq!((e.steps, e.success_step, e.final_reward), (3, Some(2), 1.0));
    }

    #[test]
    fn a_store_keeps_rollouts_by_content_and_ignores_a_torn_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = RolloutStore::new(dir.path());
        let key = RolloutKey("ab".repeat(32));
        let produced = Produced {
            env: "e".into(),
            policy: "p".into(),
        };
        assert_eq!(store.get(&key), None);
        store
            .put(&key, &produced, &[rollout(&[1.0]), rollout(&[0.5, 0.25])])
            .unwrap();
        assert_eq!(store.get(&key).unwrap()[1].rewards, vec![0.5, 0.25]);
        let listed = store.list().unwrap();
        assert_eq!((listed.len(), listed[0].rollouts), (1, 2));
        let path = listed[0].path.clone();
        let text = std::fs::read(&path).unwrap();
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        assert_eq!(store.get(&key), None, "a torn file is never taken as complete");
        assert!(store.list().unwrap()[0].produced.is_none());
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
