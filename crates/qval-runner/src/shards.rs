//! Past one machine: a run split into shards (`qval run FILE --shard I/N`), their merge
//! (`qval merge RUN`), their status (`qval status RUN`) and SLURM job arrays (`qval slurm`).
//!
//! A sharded run has two rounds. First every shard collects its trajectories (trajectory `i`
//! is shard `i mod N`'s) into `shards/I-of-N/`, and the merge writes the run's
//! `trajectories.jsonl`, samples the points and expands the ranking candidates, as one process
//! would. Then every shard labels its points and runs the methods on them (point `j` is shard
//! `j mod N`'s; a ranking candidate goes with its state), and the merge writes the run's label
//! and prediction files and evaluates. Each item keeps its own seed, so the merged files are
//! byte for byte those of the same experiment run in one process. Shards never write the same
//! file; each can be rerun or resumed on its own.

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::runner::{Manifest, Plan, Registry, RunOptions, Stage, StageRecord, run, shard_dir};
use crate::spec::{Experiment, Source};
use crate::{Result, RunnerError};
use qval_core::io::{Kind, Metadata, read_jsonl, write_jsonl};
use qval_core::stage::{fingerprint, layout};
use qval_core::{EvaluationPoint, Label, Prediction, Share, Trajectory};

/// The shards found in a run folder, with their manifests.
struct Shards {
    count: usize,
    manifests: Vec<(Share, Manifest)>,
}

fn find_shards(run_dir: &Path) -> Result<Shards> {
    let dir = run_dir.join("shards");
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        RunnerError::Usage(format!(
            "{}: no shards ({e}); run `qval run FILE --out {} --shard I/N` first",
            dir.display(),
            run_dir.display()
        ))
    })?;
    let mut found: Vec<Share> = Vec::new();
    for e in entries {
        let e = e.map_err(|err| RunnerError::io("listing", &dir, err))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let parsed = name
            .split_once("-of-")
            .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)));
        let Some((i, n)) = parsed else {
            return Err(RunnerError::Usage(format!(
                "{}: not a shard folder (I-of-N)",
                e.path().display()
            )));
        };
        found.push(Share::new(i, n)?);
    }
    let count = found
        .first()
        .map(|s| s.count())
        .ok_or_else(|| RunnerError::Usage(format!("{}: no shards", dir.display())))?;
    if let Some(other) = found.iter().find(|s| s.count() != count) {
        return Err(RunnerError::Usage(format!(
            "{}: shards of {count} and of {} parts are mixed",
            dir.display(),
            other.count()
        )));
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !found.iter().any(|s| s.index() == *i))
        .map(|i| format!("{i}-of-{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(RunnerError::Usage(format!(
            "{}: shard(s) {} missing; run them with --shard I/{count}",
            dir.display(),
            missing.join(", ")
        )));
    }
    found.sort_by_key(|s| s.index());
    let mut manifests = Vec::new();
    for s in found {
        let d = shard_dir(run_dir, s);
        let m = Manifest::read(&d)?
            .ok_or_else(|| RunnerError::Usage(format!("{}: the shard has not started (no run.json)", d.display())))?;
        manifests.push((s, m));
    }
    Ok(Shards { count, manifests })
}

/// The plan of a run made from a shard's manifest (the experiment every shard ran).
fn plan_of(run_dir: &Path, manifest: &Manifest, registry: &Registry, options: RunOptions) -> Result<Plan> {
    let experiment: Experiment = serde_json::from_value(manifest.experiment["resolved"].clone())
        .map_err(|e| RunnerError::Usage(format!("{}: run.json: {e}", run_dir.display())))?;
    let source = Source {
        file: run_dir.join("run.json"),
        text: String::new(),
    };
    Plan::new(
        experiment,
        &source,
        registry,
        RunOptions {
            out: Some(run_dir.to_path_buf()),
            spec_dir: manifest.spec_dir(),
            ..options
        },
    )
}

/// Merges the shards of `run_dir`: after the collection round, the trajectories (then the
/// points are sampled and the candidates expanded); after the labelling round, the labels and
/// predictions (then the run is evaluated). Refuses, naming the shard, when one is missing,
/// unfinished, or made from another experiment.
///
/// # Errors
/// As above, and any stage's own error.
pub async fn merge(run_dir: &Path, registry: &Registry, quiet: bool) -> Result<String> {
    let shards = find_shards(run_dir)?;
    let (_, first) = &shards.manifests[0];
    for (s, m) in &shards.manifests[1..] {
        if m.experiment != first.experiment {
            return Err(RunnerError::Usage(format!(
                "{}: made from another experiment than shard 0-of-{} (its run.json differs); rerun it \
                 from the same file",
                shard_dir(run_dir, *s).display(),
                shards.count
            )));
        }
    }
    let plan = plan_of(run_dir, first, registry, RunOptions::default())?;
    let lock = qval_core::io::RunLock::acquire(run_dir)?;
    let round = Round {
        run_dir,
        registry,
        quiet,
        shards: &shards,
    };
    if layout::trajectories(run_dir).exists() {
        round.labels_and_predictions(&plan, lock).await
    } else {
        round.collection(lock).await
    }
}

/// One round of a merge: the shards of a run folder.
struct Round<'a> {
    run_dir: &'a Path,
    registry: &'a Registry,
    quiet: bool,
    shards: &'a Shards,
}

impl Round<'_> {
    /// Round 1: the trajectories; then the points are sampled and the candidates expanded.
    async fn collection(&self, lock: qval_core::io::RunLock) -> Result<String> {
        let (run_dir, registry, quiet, shards) = (self.run_dir, self.registry, self.quiet, self.shards);
        let (_, first) = &shards.manifests[0];
        let merged_trajectories = layout::trajectories(run_dir);
        for (s, m) in &shards.manifests {
            if !m.finished("collect") {
                return Err(RunnerError::Usage(format!(
                    "{}: has not finished collecting; rerun it with --shard {}/{}",
                    shard_dir(run_dir, *s).display(),
                    s.index(),
                    s.count()
                )));
            }
        }
        let mut meta: Option<Metadata> = None;
        let mut all: Vec<Trajectory> = Vec::new();
        for (s, _) in &shards.manifests {
            let (m, t) = read_jsonl::<Trajectory>(&layout::trajectories(&shard_dir(run_dir, *s)), Kind::Trajectories)?;
            check_same(&mut meta, m, *s, run_dir)?;
            all.extend(t);
        }
        all.sort_by_key(|t| t.index);
        let meta = meta.expect("at least one shard");
        write_jsonl(&merged_trajectories, &meta, &all)?;
        drop(lock);
        let mut manifest = first.clone();
        manifest.stages.retain(|k, _| k == "collect");
        manifest.write(run_dir)?;
        // Sample and expand the candidates in the run folder, as one process does.
        let prepare = plan_of(
            run_dir,
            first,
            registry,
            RunOptions {
                prepare_only: true,
                quiet,
                ..Default::default()
            },
        )?;
        run(&prepare).await?;
        Ok(format!(
            "merged the collection of {} shards ({} trajectories) and sampled the points; now run the shards \
             again for the labels and predictions, then `qval merge {}`",
            shards.count,
            all.len(),
            run_dir.display()
        ))
    }

    /// Round 2: the labels and predictions; then the run is evaluated.
    async fn labels_and_predictions(&self, plan: &Plan, lock: qval_core::io::RunLock) -> Result<String> {
        let (run_dir, registry, quiet, shards) = (self.run_dir, self.registry, self.quiet, self.shards);
        let (_, first) = &shards.manifests[0];
        let settings = plan.stage_settings();
        let wanted: Vec<&Stage> = settings
            .keys()
            .filter(|k| matches!(k, Stage::Label(_) | Stage::Predict(_)))
            .collect();
        for (s, m) in &shards.manifests {
            if let Some(stage) = wanted.iter().find(|k| !m.finished(&k.to_string())) {
                return Err(RunnerError::Usage(format!(
                    "{}: stage `{stage}` has not finished; rerun it with --shard {}/{}",
                    shard_dir(run_dir, *s).display(),
                    s.index(),
                    s.count()
                )));
            }
        }
        let (_, points) = read_jsonl::<EvaluationPoint>(&layout::points(run_dir), Kind::Points)?;
        let candidates: Vec<EvaluationPoint> = if run_dir.join("candidates.jsonl").exists() {
            read_jsonl(&run_dir.join("candidates.jsonl"), Kind::Points)?.1
        } else {
            Vec::new()
        };
        let shard0 = shard_dir(run_dir, shards.manifests[0].0);
        for name in jsonl_names(&shard0.join("labels"))? {
            let full: &[EvaluationPoint] = if name.starts_with("ranking-") {
                &candidates
            } else {
                &points
            };
            merge_records::<Label>(run_dir, shards, &format!("labels/{name}"), Kind::Labels, full, |l| {
                &l.point_id
            })?;
        }
        for name in jsonl_names(&shard0.join("predictions"))? {
            let method = plan.methods.iter().find(|m| {
                crate::runner::outputs_of(plan, m)
                    .iter()
                    .any(|o| format!("{o}.jsonl") == name)
            });
            let Some(m) = method else { continue };
            let full = crate::runner::points_of(plan, m, &points, &candidates);
            merge_records::<Prediction>(
                run_dir,
                shards,
                &format!("predictions/{name}"),
                Kind::Predictions,
                &full,
                |p| &p.point_id,
            )?;
        }
        if let Some(acting) = &plan.acting {
            let episodes = acting.tasks.len() * acting.config(1).samples_per_task();
            for name in jsonl_names(&shard0.join("acting"))? {
                merge_episodes(run_dir, shards, &format!("acting/{name}"), episodes)?;
            }
        }
        // Generated code and Eureka rounds of shard 0 (every shard made the same), and the
        // shards' LLM caches, so that a later rerun is served from them.
        copy_tree(&shard0.join("methods"), &run_dir.join("methods"))?;
        for (s, _) in &shards.manifests {
            copy_tree(&shard_dir(run_dir, *s).join("llm-cache"), &run_dir.join("llm-cache"))?;
        }
        let mut manifest = Manifest::read(run_dir)?.unwrap_or_else(|| first.clone());
        for stage in wanted {
            let mut record = StageRecord {
                settings: settings[stage].clone(),
                finished: true,
                ..Default::default()
            };
            let key = stage.to_string();
            for (_, m) in &shards.manifests {
                let r = &m.stages[&key];
                record.seconds = record.seconds.max(r.seconds);
                record.requests += r.requests;
                record.tokens += r.tokens;
            }
            manifest.stages.insert(key, record);
        }
        manifest.write(run_dir)?;
        drop(lock);
        let evaluate = plan_of(
            run_dir,
            first,
            registry,
            RunOptions {
                quiet,
                ..Default::default()
            },
        )?;
        run(&evaluate).await?;
        Ok(format!(
            "merged the labels and predictions of {} shards and evaluated: {}",
            shards.count,
            run_dir.join("summary.json").display()
        ))
    }
}

fn check_same(meta: &mut Option<Metadata>, found: Metadata, s: Share, run_dir: &Path) -> Result<()> {
    match meta {
        None => *meta = Some(found),
        Some(m) if *m == found => {}
        Some(m) => {
            return Err(RunnerError::Usage(format!(
                "{}: made with other settings than shard 0: {}",
                shard_dir(run_dir, s).display(),
                qval_core::io::describe_difference(&found, m)
            )));
        }
    }
    Ok(())
}

fn jsonl_names(dir: &Path) -> Result<Vec<String>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| RunnerError::io("listing", dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    out.sort();
    Ok(out)
}

/// Merges one file of every shard into the run's: the records in the order of `full`, the
/// metadata of the whole (the shards' with the fingerprint of all points).
fn merge_records<T: serde::Serialize + serde::de::DeserializeOwned + Clone>(
    run_dir: &Path,
    shards: &Shards,
    rel: &str,
    kind: Kind,
    full: &[EvaluationPoint],
    id: fn(&T) -> &String,
) -> Result<()> {
    let mut meta: Option<Metadata> = None;
    let mut by_id: HashMap<String, T> = HashMap::new();
    for (s, _) in &shards.manifests {
        let path = shard_dir(run_dir, *s).join(rel);
        let (mut m, records) = read_jsonl::<T>(&path, kind)?;
        m.params["points"] = Value::Null;
        check_same(&mut meta, m, *s, run_dir)?;
        for r in records {
            by_id.insert(id(&r).clone(), r);
        }
    }
    let mut meta = meta.expect("at least one shard");
    meta.params["points"] = json!(fingerprint(full));
    let records: Vec<T> = full
        .iter()
        .map(|p| {
            by_id
                .remove(&p.id)
                .ok_or_else(|| RunnerError::Usage(format!("{rel}: no shard has a record for point `{}`", p.id)))
        })
        .collect::<Result<_>>()?;
    write_jsonl(&run_dir.join(rel), &meta, &records)?;
    Ok(())
}

/// Merges one acting file of every shard into the run's: episodes `0..episodes` in order,
/// under the metadata every shard wrote (the whole run's).
fn merge_episodes(run_dir: &Path, shards: &Shards, rel: &str, episodes: usize) -> Result<()> {
    use qval_core::acting::Episode;
    let mut meta: Option<Metadata> = None;
    let mut by_index: HashMap<usize, Episode> = HashMap::new();
    for (s, _) in &shards.manifests {
        let (m, records) = read_jsonl::<Episode>(&shard_dir(run_dir, *s).join(rel), Kind::Episodes)?;
        check_same(&mut meta, m, *s, run_dir)?;
        for e in records {
            by_index.insert(e.index, e);
        }
    }
    let records: Vec<Episode> = (0..episodes)
        .map(|i| {
            by_index
                .remove(&i)
                .ok_or_else(|| RunnerError::Usage(format!("{rel}: no shard has episode {i}")))
        })
        .collect::<Result<_>>()?;
    write_jsonl(&run_dir.join(rel), &meta.expect("at least one shard"), &records)?;
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    if !from.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(to).map_err(|e| RunnerError::io("creating", to, e))?;
    for e in std::fs::read_dir(from).map_err(|e| RunnerError::io("listing", from, e))? {
        let e = e.map_err(|err| RunnerError::io("listing", from, err))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst)?;
        } else if !dst.exists() {
            std::fs::copy(&src, &dst).map_err(|err| RunnerError::io("copying", &src, err))?;
        }
    }
    Ok(())
}

/// What a sharded run has done and what it waits for, as lines of text.
///
/// # Errors
/// A run folder without shards (unless evaluated), or unreadable manifests.
pub fn status(run_dir: &Path, registry: &Registry) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let merged_collection = layout::trajectories(run_dir).exists();
    let evaluated = run_dir.join("summary.json").exists();
    let shards = match find_shards(run_dir) {
        Ok(s) => s,
        Err(e) if evaluated => {
            out.push(format!("{}: evaluated, not sharded ({e})", run_dir.display()));
            return Ok(out);
        }
        Err(e) => return Err(e),
    };
    let plan = plan_of(run_dir, &shards.manifests[0].1, registry, RunOptions::default())?;
    let wanted: Vec<String> = if merged_collection {
        plan.stage_settings()
            .into_keys()
            .filter(|k| matches!(k, Stage::Label(_) | Stage::Predict(_)))
            .map(|k| k.to_string())
            .collect()
    } else {
        vec!["collect".to_string()]
    };
    let mut waiting: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (s, m) in &shards.manifests {
        let open: Vec<&String> = wanted.iter().filter(|k| !m.finished(k)).collect();
        out.push(format!(
            "shard {}-of-{}: {} of {} stage(s) of this round finished{}",
            s.index(),
            s.count(),
            wanted.len() - open.len(),
            wanted.len(),
            if open.is_empty() {
                String::new()
            } else {
                format!(
                    "; waiting: {}",
                    open.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
                )
            }
        ));
        for k in open {
            waiting
                .entry(k.clone())
                .or_default()
                .push(format!("{}-of-{}", s.index(), s.count()));
        }
    }
    let round = if merged_collection {
        "labels and predictions"
    } else {
        "collection"
    };
    out.push(if evaluated && waiting.is_empty() {
        "merged and evaluated".to_string()
    } else if waiting.is_empty() {
        format!(
            "{round}: every shard has finished; run `qval merge {}`",
            run_dir.display()
        )
    } else {
        let w: Vec<String> = waiting
            .iter()
            .map(|(k, v)| format!("{k} (shard {})", v.join(", ")))
            .collect();
        format!("{round}: the merge waits for {}", w.join("; "))
    });
    Ok(out)
}

/// Settings of the SLURM scripts.
#[derive(Clone, Debug, Default)]
pub struct SlurmOptions {
    /// Shards (array tasks).
    pub shards: usize,
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time`.
    pub time: Option<String>,
    /// `--cpus-per-task`.
    pub cpus: Option<usize>,
    /// `--mem`.
    pub mem: Option<String>,
}

fn sbatch_header(name: &str, array: Option<usize>, o: &SlurmOptions, run_dir: &Path) -> String {
    let mut h = format!(
        "#!/bin/bash\n#SBATCH --job-name={name}\n#SBATCH --output={}/slurm/%x-%A_%a.out\n",
        run_dir.display()
    );
    // Directives must come before the first command, or sbatch ignores them.
    if let Some(n) = array {
        h.push_str(&format!("#SBATCH --array=0-{}\n", n - 1));
    }
    if let Some(p) = &o.partition {
        h.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    if let Some(t) = &o.time {
        h.push_str(&format!("#SBATCH --time={t}\n"));
    }
    if let Some(c) = o.cpus {
        h.push_str(&format!("#SBATCH --cpus-per-task={c}\n"));
    }
    if let Some(m) = &o.mem {
        h.push_str(&format!("#SBATCH --mem={m}\n"));
    }
    h.push_str("set -euo pipefail\n");
    h
}

/// Writes the SLURM scripts of a sharded run into `run_dir/slurm/`: `shard.sbatch` (a job
/// array, one task per shard), `merge.sbatch`, and `submit.sh`, which submits the two rounds
/// (array, merge after it, array again, merge after it) with `afterok` dependencies. Returns
/// the script paths. `qval` is the binary the scripts call.
///
/// # Errors
/// A folder that cannot be written.
pub fn write_slurm(file: &Path, run_dir: &Path, qval: &Path, o: &SlurmOptions) -> Result<Vec<PathBuf>> {
    let dir = run_dir.join("slurm");
    std::fs::create_dir_all(&dir).map_err(|e| RunnerError::io("creating", &dir, e))?;
    let n = o.shards;
    let shard = format!(
        "{}# One shard of the run: its trajectories in the first round, its labels and\n# predictions in the second. Rerunnable and resumable alone.\n\"{}\" run \"{}\" --out \"{}\" --shard \"$SLURM_ARRAY_TASK_ID/{n}\" --quiet\n",
        sbatch_header("qval-shard", Some(n), o, run_dir),
        qval.display(),
        file.display(),
        run_dir.display()
    );
    let merge = format!(
        "{}# Merges the shards: after the first round the collection (then samples the points),\n# after the second the labels and predictions (then evaluates).\n\"{}\" merge \"{}\" --quiet\n",
        sbatch_header("qval-merge", None, o, run_dir),
        qval.display(),
        run_dir.display()
    );
    let submit = format!(
        "#!/bin/bash\n# Submits a sharded qval run: two rounds of {n} array tasks, each followed by a merge.\nset -euo pipefail\ncd \"{d}\"\na1=$(sbatch --parsable shard.sbatch)\nm1=$(sbatch --parsable --dependency=afterok:$a1 merge.sbatch)\na2=$(sbatch --parsable --dependency=afterok:$m1 shard.sbatch)\nm2=$(sbatch --parsable --dependency=afterok:$a2 merge.sbatch)\necho \"$a1 $m1 $a2 $m2\"\n",
        d = dir.display()
    );
    let mut written = Vec::new();
    for (name, text) in [("shard.sbatch", shard), ("merge.sbatch", merge), ("submit.sh", submit)] {
        let p = dir.join(name);
        qval_core::io::write_atomic(&p, text.as_bytes())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| RunnerError::io("making executable", &p, e))?;
        }
        written.push(p);
    }
    Ok(written)
}
