//! On-disk formats: JSON Lines with a first metadata record, atomic writes, and checkpoints
//! that let an interrupted stage resume.
//!
//! Every file qval writes is one JSON object per line. The first line is
//! `{"qval_metadata": {...}}`: what kind of records follow, what produced them, the seed and
//! parameters, and the qval version. Files are written to a temporary sibling and renamed,
//! so a reader never sees half a file. A reader reports the file and the line of anything
//! malformed.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::{CoreError, Result};

/// The version of the record layout written by this crate.
pub const FORMAT_VERSION: u32 = 1;

/// What kind of records a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// [`crate::Trajectory`] records.
    Trajectories,
    /// [`crate::EvaluationPoint`] records.
    Points,
    /// [`crate::Label`] records.
    Labels,
    /// [`crate::Prediction`] records.
    Predictions,
    /// [`crate::acting::Episode`] records.
    Episodes,
}

/// The first record of every file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// What the records are.
    pub kind: Kind,
    /// The record layout version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// What produced the records: a labeler, method or policy name.
    pub producer: String,
    /// The qval version that wrote the file.
    pub qval_version: String,
    /// The root seed, where randomness was involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The parameters that determine the records (a resumed run must match them).
    #[serde(default)]
    pub params: Value,
    /// How many records follow, written by [`write_jsonl`] when the file is complete:
    /// [`read_jsonl`] refuses a file holding fewer or more ([`CoreError::Truncated`]), so a
    /// file cut short is never taken as complete. Files written before this field read as
    /// they always did. Readers get it back as `None`, so metadata compares by what produced
    /// the records only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<usize>,
}

impl Metadata {
    /// Metadata for `kind` records produced by `producer`, with no seed and no parameters.
    pub fn new(kind: Kind, producer: impl Into<String>) -> Self {
        Metadata {
            kind,
            format_version: FORMAT_VERSION,
            producer: producer.into(),
            qval_version: env!("CARGO_PKG_VERSION").to_string(),
            seed: None,
            params: Value::Null,
            records: None,
        }
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets the parameters.
    pub fn with_params(mut self, params: Value) -> Self {
        self.params = params;
        self
    }
}

#[derive(Serialize, Deserialize)]
struct MetaLine<M> {
    qval_metadata: M,
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| CoreError::io("creating folder", dir, e))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary sibling, synced, then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    create_parent(path)?;
    let tmp = tmp_path(path);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(CoreError::io("writing", &tmp, e));
    }
    fs::rename(&tmp, path).map_err(|e| CoreError::io("renaming into", path, e))
}

fn to_line<T: Serialize>(value: &T, path: &Path) -> Result<String> {
    serde_json::to_string(value).map_err(|e| CoreError::Malformed {
        path: path.to_path_buf(),
        line: 0,
        message: format!("cannot serialise a record: {e}"),
    })
}

/// Serialises a metadata line (with the record count) and records into JSON Lines text.
fn encode<T: Serialize>(path: &Path, meta: &Metadata, records: &[T]) -> Result<Vec<u8>> {
    let mut out = String::new();
    let meta = Metadata {
        records: Some(records.len()),
        ..meta.clone()
    };
    out.push_str(&to_line(&MetaLine { qval_metadata: &meta }, path)?);
    out.push('\n');
    for r in records {
        out.push_str(&to_line(r, path)?);
        out.push('\n');
    }
    Ok(out.into_bytes())
}

/// Writes `records` to `path` as JSON Lines after a metadata line, atomically.
pub fn write_jsonl<T: Serialize>(path: &Path, meta: &Metadata, records: &[T]) -> Result<()> {
    write_atomic(path, &encode(path, meta, records)?)
}

fn parse_meta(path: &Path, line: &str, expected: Kind) -> Result<Metadata> {
    let meta: MetaLine<Metadata> = serde_json::from_str(line).map_err(|e| CoreError::Malformed {
        path: path.to_path_buf(),
        line: 1,
        message: format!("expected a `qval_metadata` record: {e}"),
    })?;
    let meta = meta.qval_metadata;
    if meta.kind != expected {
        return Err(CoreError::Malformed {
            path: path.to_path_buf(),
            line: 1,
            message: format!("this file holds {:?}, expected {:?}", meta.kind, expected),
        });
    }
    if meta.format_version > FORMAT_VERSION {
        return Err(CoreError::Malformed {
            path: path.to_path_buf(),
            line: 1,
            message: format!(
                "format version {} is newer than this qval understands ({FORMAT_VERSION}); upgrade qval",
                meta.format_version
            ),
        });
    }
    Ok(meta)
}

fn parse_record<T: DeserializeOwned>(path: &Path, lineno: usize, line: &str) -> Result<T> {
    serde_json::from_str(line).map_err(|e| CoreError::Malformed {
        path: path.to_path_buf(),
        line: lineno,
        message: e.to_string(),
    })
}

/// The error for bytes that are not UTF-8: the file, the line, and the byte offset.
fn not_utf8(path: &Path, line: usize, offset: usize) -> CoreError {
    CoreError::Malformed {
        path: path.to_path_buf(),
        line,
        message: format!(
            "not UTF-8 text at byte {offset} (line {line}): a JSON Lines file written by qval is UTF-8; \
             is this a binary file?"
        ),
    }
}

/// Checks that `bytes` (the start of a file) are UTF-8, naming the line and byte offset of
/// the first bad byte.
fn utf8<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        not_utf8(path, line, at)
    })
}

/// Reads a JSON Lines file written by [`write_jsonl`], checking that it holds `expected`
/// records. Blank lines are skipped; anything malformed is reported with file and line (and
/// byte offset, for bytes that are not UTF-8).
pub fn read_jsonl<T: DeserializeOwned>(path: &Path, expected: Kind) -> Result<(Metadata, Vec<T>)> {
    let file = File::open(path).map_err(|e| CoreError::io("opening", path, e))?;
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut offset = 0usize;
    let mut lineno = 0usize;
    let mut meta = None;
    let mut records = Vec::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| CoreError::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        lineno += 1;
        let line = std::str::from_utf8(&buf).map_err(|e| not_utf8(path, lineno, offset + e.valid_up_to()))?;
        offset += n;
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if meta.is_none() {
            meta = Some(parse_meta(path, line, expected)?);
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        records.push(parse_record(path, lineno, line)?);
    }
    match meta {
        Some(Metadata {
            records: Some(expected),
            ..
        }) if expected != records.len() => Err(CoreError::Truncated {
            path: path.to_path_buf(),
            found: records.len(),
            expected,
        }),
        Some(meta) => Ok((Metadata { records: None, ..meta }, records)),
        None => Err(CoreError::Malformed {
            path: path.to_path_buf(),
            line: 1,
            message: "the file is empty (expected a `qval_metadata` record)".into(),
        }),
    }
}

/// The path of the checkpoint kept beside `path` while a stage runs.
pub fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{name}.partial"))
}

/// An append-only checkpoint (`<file>.partial`) of a stage's finished records.
///
/// Each [`append`](Self::append) writes whole lines and syncs them, so an interruption loses
/// at most the records in flight. On reopening, a torn last line (no newline) is dropped.
/// [`finish`](Self::finish) writes the complete file atomically and removes the checkpoint.
pub struct Checkpoint {
    path: PathBuf,
    file: File,
}

impl Checkpoint {
    /// Opens (or creates) the checkpoint for `final_path`, returning it with the records an
    /// earlier run finished. Fails if the checkpoint was written with other metadata.
    pub fn open<T: DeserializeOwned>(final_path: &Path, meta: &Metadata) -> Result<(Self, Vec<T>)> {
        let path = partial_path(final_path);
        create_parent(&path)?;
        let mut done = Vec::new();
        if path.exists() {
            let bytes = fs::read(&path).map_err(|e| CoreError::io("reading", &path, e))?;
            let text = utf8(&path, &bytes)?;
            // Keep only complete lines: a line without its newline was being written when
            // the run stopped.
            let complete = match text.rfind('\n') {
                Some(i) => &text[..=i],
                None => "",
            };
            let mut lines = complete.lines();
            match lines.next() {
                Some(first) => {
                    let found = Metadata {
                        records: None,
                        ..parse_meta(&path, first, meta.kind)?
                    };
                    if &found != meta {
                        return Err(CoreError::CheckpointMismatch {
                            path,
                            what: describe_difference(&found, meta),
                        });
                    }
                    for (i, line) in lines.enumerate() {
                        if !line.trim().is_empty() {
                            done.push(parse_record(&path, i + 2, line)?);
                        }
                    }
                    if complete.len() != text.len() {
                        let f = OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .map_err(|e| CoreError::io("opening", &path, e))?;
                        f.set_len(complete.len() as u64)
                            .map_err(|e| CoreError::io("truncating", &path, e))?;
                    }
                }
                None => {
                    // Not even the metadata line survived: start afresh.
                    fs::remove_file(&path).map_err(|e| CoreError::io("removing", &path, e))?;
                }
            }
        }
        let fresh = !path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| CoreError::io("opening", &path, e))?;
        if fresh {
            let line = to_line(&MetaLine { qval_metadata: meta }, &path)? + "\n";
            file.write_all(line.as_bytes())
                .map_err(|e| CoreError::io("writing", &path, e))?;
            file.sync_data().map_err(|e| CoreError::io("syncing", &path, e))?;
        }
        Ok((Checkpoint { path, file }, done))
    }

    /// Appends finished records and syncs them to disk.
    pub fn append<T: Serialize>(&mut self, records: &[T]) -> Result<()> {
        self.write(records)?;
        self.sync()
    }

    /// Appends finished records without syncing: they survive the process being killed
    /// (they are in the system's cache), and [`sync`](Self::sync) makes them survive a
    /// crash of the machine. One write call per record, whole lines only.
    pub fn write<T: Serialize>(&mut self, records: &[T]) -> Result<()> {
        for r in records {
            let line = to_line(r, &self.path)? + "\n";
            self.file
                .write_all(line.as_bytes())
                .map_err(|e| CoreError::io("writing", &self.path, e))?;
        }
        Ok(())
    }

    /// Syncs what was written to disk.
    pub fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| CoreError::io("syncing", &self.path, e))
    }

    /// Writes the complete file atomically, then removes the checkpoint.
    pub fn finish<T: Serialize>(self, final_path: &Path, meta: &Metadata, records: &[T]) -> Result<()> {
        write_jsonl(final_path, meta, records)?;
        drop(self.file);
        fs::remove_file(&self.path).map_err(|e| CoreError::io("removing", &self.path, e))
    }
}

/// What differs between the metadata `found` in a file and the metadata `wanted` now, in
/// words: the producer, the seed, each differing parameter by its path
/// (`` `params.labeler.rollouts` is 4 in the file, 8 now ``), or the versions.
pub fn describe_difference(found: &Metadata, wanted: &Metadata) -> String {
    let mut diffs = Vec::new();
    if found.kind != wanted.kind {
        diffs.push(format!(
            "the records are {:?} in the file, {:?} now",
            found.kind, wanted.kind
        ));
    }
    if found.producer != wanted.producer {
        diffs.push(format!(
            "producer `{}` in the file, `{}` now",
            found.producer, wanted.producer
        ));
    }
    if found.seed != wanted.seed {
        let show = |s: Option<u64>| s.map_or("none".to_string(), |s| s.to_string());
        diffs.push(format!(
            "seed {} in the file, {} now",
            show(found.seed),
            show(wanted.seed)
        ));
    }
    param_diffs("params", &found.params, &wanted.params, &mut diffs);
    if diffs.is_empty() && found != wanted {
        diffs.push(format!(
            "qval {} format {} in the file, qval {} format {} now",
            found.qval_version, found.format_version, wanted.qval_version, wanted.format_version
        ));
    }
    diffs.join("; ")
}

/// Appends a line per differing leaf of two parameter trees, objects compared key by key.
fn param_diffs(at: &str, found: &Value, wanted: &Value, out: &mut Vec<String>) {
    match (found, wanted) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let here = format!("{at}.{k}");
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => param_diffs(&here, x, y, out),
                    (Some(x), None) => out.push(format!("`{here}` is {x} in the file, absent now")),
                    (None, Some(y)) => out.push(format!("`{here}` is absent in the file, {y} now")),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a != b => out.push(format!("`{at}` is {a} in the file, {b} now")),
        _ => {}
    }
}

/// An exclusive advisory lock on a run folder, so that two processes never write the same
/// run at once: [`RunLock::acquire`] locks `dir/.qval.lock` (creating the folder and the
/// file), and dropping the value releases it. The operating system releases it too when
/// the process dies, so a crash leaves no stale lock. Advisory: it keeps out other qval
/// processes that ask for it, not programs that do not.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// The name of the lock file inside a run folder.
    pub const FILE_NAME: &'static str = ".qval.lock";

    /// Takes the lock of the run folder `dir` without waiting, and records this process's
    /// id in the lock file.
    ///
    /// # Errors
    /// [`CoreError::RunLocked`] naming the folder (and the holder's process id) when another
    /// process holds the lock; [`CoreError::Io`] when the folder or the file cannot be made.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        fs::create_dir_all(dir).map_err(|e| CoreError::io("creating folder", dir, e))?;
        let path = dir.join(Self::FILE_NAME);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| CoreError::io("opening", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(CoreError::RunLocked {
                    dir: dir.to_path_buf(),
                    holder: if pid.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {pid})")
                    },
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(CoreError::io("locking", &path, e)),
        }
        let pid = std::process::id().to_string();
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(pid.as_bytes()))
            .map_err(|e| CoreError::io("writing", &path, e))?;
        Ok(RunLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod record_count_tests {
    use super::*;

    #[test]
    fn a_file_cut_at_a_line_break_is_refused_and_an_older_file_without_a_count_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        let meta = Metadata::new(Kind::Predictions, "m");
        write_jsonl(&path, &meta, &[1, 2, 3]).unwrap();
        let (found, records) = read_jsonl::<i32>(&path, Kind::Predictions).unwrap();
        assert_eq!(
            (found, records),
            (meta.clone(), vec![1, 2, 3]),
            "the count is not part of what compares"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().next().unwrap().contains("\"records\":3"), "{text}");
        let cut: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, cut).unwrap();
        let e = read_jsonl::<i32>(&path, Kind::Predictions).unwrap_err();
        assert!(
            matches!(
                e,
                CoreError::Truncated {
                    found: 2,
                    expected: 3,
                    ..
                }
            ),
            "{e}"
        );
        // A file written before the count existed reads as before.
        let old = "{\"qval_metadata\":{\"kind\":\"predictions\",\"format_version\":1,\"producer\":\"m\",\"qval_version\":\"0.1.0\"}}\n1\n";
        std::fs::write(&path, old).unwrap();
        assert_eq!(read_jsonl::<i32>(&path, Kind::Predictions).unwrap().1, vec![1]);
    }
}
