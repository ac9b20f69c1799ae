//! The published testbed's prediction files, and predictions from anywhere.
//!
//! A prediction file (`src/qval/prediction_store.py` of the published testbed) is one JSON
//! object `{method_name, method_type ("gt" | "eval"), values (null = NaN), config,
//! metadata}`, named `<name>_<YYYYmmdd_HHMMSS>.json` in a `gt/` or `eval/` folder. Of files
//! differing only in the timestamp, the newest by the name's timestamp wins (a file without
//! one loses to any with one). Ranking files flatten the candidates of each state
//! (`config.candidate_counts`); ranking labels have `prediction_format = "ranking_q_values"`,
//! ranking methods `ranking_predicted` (a rank per candidate, 1 = best) or `ranking_scores`.
//!
//! - [`read_prediction_folder`] reads a folder holding `gt/` and `eval/` into label and
//!   prediction sets that [`crate::evaluate`] pairs as the published evaluator does (by
//!   signal, point files by position on the common prefix, ranking files by state);
//! - [`read_user_predictions`] reads `(point id, value)` pairs from a CSV or JSON Lines file
//!   written by anyone's code; [`unmatched_ids`] lists ids that match no label;
//! - [`write_prediction_file`] exports qval's labels and predictions as published files.

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::MetricsError;
use crate::report::{LabelSet, PredictionSet, parse_signal};
use crate::summary::{Granularity, to_json_indented};
use qval_core::{Label, Prediction, Signal};

fn format_err(path: &Path, message: impl Into<String>) -> MetricsError {
    MetricsError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// One published prediction file.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictionFile {
    /// `method_name`.
    pub method_name: String,
    /// `gt` or `eval`.
    pub method_type: String,
    /// The values (NaN for null).
    pub values: Vec<f64>,
    /// `config`.
    pub config: Value,
    /// `metadata`.
    pub metadata: Value,
    /// Where it was read from.
    pub path: PathBuf,
}

impl PredictionFile {
    /// `metadata.dataset_fingerprint`, if recorded.
    pub fn dataset(&self) -> Option<String> {
        self.metadata
            .get("dataset_fingerprint")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

/// Reads one published prediction file.
///
/// # Errors
/// Unreadable, not JSON (line and column named), or missing `method_name` / `values`.
pub fn read_prediction_file(path: &Path) -> Result<PredictionFile, MetricsError> {
    let text = std::fs::read_to_string(path).map_err(|e| MetricsError::Io {
        op: "reading",
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| format_err(path, format!("line {} column {}: {e}", e.line(), e.column())))?;
    let name = v
        .get("method_name")
        .and_then(Value::as_str)
        .ok_or_else(|| format_err(path, "no `method_name` string"))?;
    let arr = v
        .get("values")
        .and_then(Value::as_array)
        .ok_or_else(|| format_err(path, "no `values` array"))?;
    let values = arr
        .iter()
        .enumerate()
        .map(|(i, x)| match x {
            Value::Null => Ok(f64::NAN),
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| format_err(path, format!("`values[{i}]` is not a number"))),
            other => Err(format_err(
                path,
                format!("`values[{i}]` is {other}, expected a number or null"),
            )),
        })
        .collect::<Result<Vec<f64>, _>>()?;
    Ok(PredictionFile {
        method_name: name.to_string(),
        method_type: v
            .get("method_type")
            .and_then(Value::as_str)
            .unwrap_or("eval")
            .to_string(),
        values,
        config: v.get("config").cloned().unwrap_or(Value::Null),
        metadata: v.get("metadata").cloned().unwrap_or(Value::Null),
        path: path.to_path_buf(),
    })
}

/// The `_YYYYmmdd_HHMMSS` timestamp at the end of a file stem, if valid.
fn timestamp_of(stem: &str) -> Option<&str> {
    let (base, ts) = stem.len().checked_sub(16).map(|i| stem.split_at(i))?;
    let ts = ts.strip_prefix('_')?;
    let b = ts.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let num = |r: std::ops::Range<usize>| ts[r].parse::<u32>().unwrap_or(99);
    (!base.is_empty()
        && b.len() == 15
        && b[8] == b'_'
        && digits(0..8)
        && digits(9..15)
        && (1..=12).contains(&num(4..6))
        && (1..=31).contains(&num(6..8))
        && num(9..11) < 24
        && num(11..13) < 60
        && num(13..15) < 61)
        .then_some(ts)
}

/// The newest file of each family (`<name>_<timestamp>.json` siblings) in `dir`, in name
/// order: by the timestamp in the name, never the modification time; a file without a
/// timestamp loses to any with one.
///
/// # Errors
/// The folder cannot be listed.
pub fn newest_files(dir: &Path) -> Result<Vec<PathBuf>, MetricsError> {
    let mut families: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| MetricsError::Io {
        op: "listing",
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (family, key) = match timestamp_of(&stem) {
            Some(ts) => (stem[..stem.len() - 16].to_string(), format!("1{ts}{stem}")),
            None => (stem.clone(), format!("0{stem}")),
        };
        let slot = families
            .entry(family)
            .or_insert_with(|| (String::new(), PathBuf::new()));
        if key > slot.0 {
            *slot = (key, p);
        }
    }
    Ok(families.into_values().map(|(_, p)| p).collect())
}

fn counts_of(f: &PredictionFile) -> Result<Option<Vec<usize>>, MetricsError> {
    let Some(c) = f.config.get("candidate_counts").filter(|c| !c.is_null()) else {
        return Ok(None);
    };
    let counts: Vec<usize> = c
        .as_array()
        .ok_or_else(|| format_err(&f.path, "`config.candidate_counts` is not a list"))?
        .iter()
        .map(|x| x.as_u64().map(|x| x as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| format_err(&f.path, "`config.candidate_counts` holds a non-integer"))?;
    if counts.iter().sum::<usize>() != f.values.len() {
        return Err(format_err(
            &f.path,
            format!(
                "`config.candidate_counts` sums to {} but `values` has {}",
                counts.iter().sum::<usize>(),
                f.values.len()
            ),
        ));
    }
    Ok(Some(counts))
}

fn signal_in(f: &PredictionFile, key: &str, default: Signal) -> Result<Signal, MetricsError> {
    match f.config.get(key).and_then(Value::as_str) {
        Some(s) => {
            parse_signal(s).ok_or_else(|| format_err(&f.path, format!("`config.{key}` is `{s}`, not a known signal")))
        }
        None => Ok(default),
    }
}

/// Reads a folder of published prediction files (`gt/` and `eval/`, the newest of each
/// family) into label and prediction sets for [`crate::evaluate`].
///
/// # Errors
/// No `gt/` folder, a malformed file, or a ranking method whose states are not a prefix of
/// its labels' states.
pub fn read_prediction_folder(dir: &Path) -> Result<(Vec<LabelSet>, Vec<PredictionSet>), MetricsError> {
    let (gt_dir, eval_dir) = (dir.join("gt"), dir.join("eval"));
    if !gt_dir.is_dir() {
        return Err(format_err(
            dir,
            "no `gt/` folder (the published layout is `gt/` and `eval/`)",
        ));
    }
    let mut labels = Vec::new();
    let mut ranking_counts: Vec<Vec<usize>> = Vec::new();
    for path in newest_files(&gt_dir)? {
        let f = read_prediction_file(&path)?;
        let ranking = f.config.get("prediction_format").and_then(Value::as_str) == Some("ranking_q_values");
        let signal = signal_in(&f, "assumption", if ranking { Signal::Q } else { Signal::V })?;
        let mut state_of = Vec::new();
        if ranking {
            let counts = counts_of(&f)?.unwrap_or_else(|| vec![f.values.len()]);
            for (s, c) in counts.iter().enumerate() {
                state_of.extend(std::iter::repeat_n(Some(format!("state-{s}")), *c));
            }
            ranking_counts.push(counts);
        } else {
            state_of.resize(f.values.len(), None);
        }
        labels.push(LabelSet {
            name: f.method_name.clone(),
            signal,
            labels: f
                .values
                .iter()
                .zip(state_of)
                .map(|(v, candidate_of)| Label {
                    point_id: String::new(),
                    signal,
                    value: *v,
                    aggregation: Default::default(),
                    returns: Vec::new(),
                    baseline_returns: Vec::new(),
                    aborted: None,
                    candidate_of,
                    expert: None,
                    steps: None,
                })
                .collect(),
            dataset: f.dataset(),
            source: Some(path.clone()),
        });
    }
    let mut predictions = Vec::new();
    if eval_dir.is_dir() {
        for path in newest_files(&eval_dir)? {
            let f = read_prediction_file(&path)?;
            let format = f.config.get("prediction_format").and_then(Value::as_str).unwrap_or("");
            let ranking = matches!(format, "ranking_predicted" | "ranking_scores");
            let mut values = f.values.clone();
            if ranking {
                if let Some(counts) = counts_of(&f)?
                    && let Some(gt) = ranking_counts.first()
                    && gt.get(..counts.len()) != Some(&counts[..])
                {
                    return Err(format_err(
                        &path,
                        "its states are not a prefix of the ranking labels' states (`config.candidate_counts` \
                         differ); regenerate it on the labels' states",
                    ));
                }
                if format == "ranking_predicted" {
                    // A rank (1 = best) becomes a score (higher = better).
                    values.iter_mut().for_each(|v| *v = -*v);
                }
            }
            predictions.push(PredictionSet {
                name: f.method_name.clone(),
                signal: signal_in(&f, "signal_type", Signal::V)?,
                predictions: values
                    .into_iter()
                    .map(|value| Prediction {
                        point_id: String::new(),
                        value,
                        error: None,
                        transient: false,
                    })
                    .collect(),
                dataset: f.dataset(),
                group: f.config.get("sample_group").and_then(Value::as_str).map(str::to_string),
                granularity: Some(if ranking {
                    Granularity::Ranking
                } else {
                    Granularity::Point
                }),
                source: Some(path.clone()),
            });
        }
    }
    Ok((labels, predictions))
}

/// The `(point id, value, line)` rows of a CSV file with a header naming `point_id` and
/// `value` (any order, other columns ignored).
fn read_csv_pairs(
    text: &str,
    at: &dyn Fn(usize, String) -> MetricsError,
    parse_value: &dyn Fn(&str, usize) -> Result<f64, MetricsError>,
) -> Result<Vec<(String, f64, usize)>, MetricsError> {
    let line_of = |e: &csv::Error| e.position().map_or(1, |p| p.line() as usize);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| at(line_of(&e), e.to_string()))?.clone();
    if header.is_empty() {
        return Err(at(1, "empty file".into()));
    }
    let find = |n: &str| header.iter().position(|c| c == n);
    let (Some(ci), Some(cv)) = (find("point_id"), find("value")) else {
        let named: Vec<&str> = header.iter().collect();
        return Err(at(
            1,
            format!(
                "the header `{}` must name `point_id` and `value` columns",
                named.join(",")
            ),
        ));
    };
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| at(line_of(&e), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.iter().all(str::is_empty) {
            continue;
        }
        let (Some(id), Some(v)) = (record.get(ci), record.get(cv)) else {
            return Err(at(
                line,
                format!("expected {} columns, found {}", header.len(), record.len()),
            ));
        };
        out.push((id.to_string(), parse_value(v, line)?, line));
    }
    Ok(out)
}

/// Reads `(point id, value)` pairs written by anyone's code: CSV with a header naming
/// `point_id` and `value` columns (RFC 4180 quoting, so `"0,75"` is one field; a UTF-8 byte
/// order mark, as Excel's "CSV UTF-8" writes, is skipped; an empty value, `nan` or `null` is
/// NaN), or JSON Lines of `{"point_id": ..., "value": ...}` (null is NaN), such as a qval
/// predictions file (its `qval_metadata` first line is skipped).
///
/// # Errors
/// Unreadable file, a malformed line or a value that is not a number (file and line named),
/// a repeated id.
pub fn read_user_predictions(path: &Path, name: &str, signal: Signal) -> Result<PredictionSet, MetricsError> {
    let text = std::fs::read_to_string(path).map_err(|e| MetricsError::Io {
        op: "reading",
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let at = |line: usize, m: String| format_err(path, format!("line {line}: {m}"));
    let parse_value = |s: &str, line: usize| -> Result<f64, MetricsError> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("nan") || s == "null" {
            return Ok(f64::NAN);
        }
        s.parse::<f64>().map_err(|_| {
            let hint = if s.contains(',') {
                " (write decimals with a point: 0.75)"
            } else {
                ""
            };
            at(line, format!("`{s}` is not a number{hint}"))
        })
    };
    let jsonl = path.extension().is_some_and(|e| e == "jsonl" || e == "json");
    let out = if jsonl {
        let mut out = Vec::new();
        for (i, l) in text.lines().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(l).map_err(|e| at(i + 1, e.to_string()))?;
            // A qval predictions file as it is: its metadata line is not a prediction.
            if i == 0 && v.get("qval_metadata").is_some() {
                continue;
            }
            let id = v
                .get("point_id")
                .and_then(Value::as_str)
                .ok_or_else(|| at(i + 1, "no `point_id` string".into()))?;
            let value = match v.get("value") {
                Some(Value::Null) => f64::NAN,
                Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
                Some(Value::String(s)) => parse_value(s, i + 1)?,
                _ => return Err(at(i + 1, "no numeric `value` (null for NaN)".into())),
            };
            out.push((id.to_string(), value, i + 1));
        }
        out
    } else {
        read_csv_pairs(text, &at, &parse_value)?
    };
    let mut seen = HashSet::new();
    for (id, _, line) in &out {
        if !seen.insert(id.clone()) {
            return Err(at(*line, format!("point `{id}` appears twice")));
        }
    }
    Ok(PredictionSet {
        name: name.to_string(),
        signal,
        predictions: out
            .into_iter()
            .map(|(point_id, value, _)| Prediction {
                point_id,
                value,
                error: None,
                transient: false,
            })
            .collect(),
        dataset: None,
        group: None,
        granularity: None,
        source: Some(path.to_path_buf()),
    })
}

/// Ids of `predictions` that match no label of any of `labels`, in file order.
pub fn unmatched_ids(labels: &[LabelSet], predictions: &PredictionSet) -> Vec<String> {
    let known: HashSet<&str> = labels
        .iter()
        .flat_map(|r| r.labels.iter().map(|l| l.point_id.as_str()))
        .collect();
    predictions
        .predictions
        .iter()
        .filter(|p| !known.contains(p.point_id.as_str()))
        .map(|p| p.point_id.clone())
        .collect()
}

/// `YYYYmmdd_HHMMSS` (UTC) of a Unix time.
pub fn file_timestamp(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let secs = unix_seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}_{:02}{:02}{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Writes one published prediction file `<dir>/<gt|eval>/<name>_<timestamp>.json` (indent 2,
/// null for NaN) and returns its path. `config` gets the signal under the key the published
/// reader looks for (`assumption` for labels, `signal_type` for methods).
///
/// # Errors
/// The file cannot be written.
#[allow(clippy::too_many_arguments)]
pub fn write_prediction_file(
    dir: &Path,
    name: &str,
    is_label: bool,
    signal: Signal,
    values: &[f64],
    mut config: serde_json::Map<String, Value>,
    metadata: serde_json::Map<String, Value>,
    timestamp: &str,
) -> Result<PathBuf, MetricsError> {
    let assumption = crate::summary::assumption_of(signal);
    config.insert(
        (if is_label { "assumption" } else { "signal_type" }).to_string(),
        Value::from(assumption),
    );
    let mut metadata = metadata;
    metadata.entry("generated_code_present").or_insert(Value::Bool(false));
    let values: Vec<Value> = values
        .iter()
        .map(|v| if v.is_finite() { Value::from(*v) } else { Value::Null })
        .collect();
    let file = json!({
        "method_name": name,
        "method_type": if is_label { "gt" } else { "eval" },
        "values": values,
        "config": config,
        "metadata": metadata,
    });
    let sub = dir.join(if is_label { "gt" } else { "eval" });
    std::fs::create_dir_all(&sub).map_err(|e| MetricsError::Io {
        op: "creating",
        path: sub.clone(),
        message: e.to_string(),
    })?;
    let text = to_json_indented(&file, b"  ").map_err(|e| format_err(&sub, e.to_string()))?;
    let path = sub.join(format!("{name}_{timestamp}.json"));
    qval_core::io::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_read_from_names_and_formatted_in_utc() {
        assert_eq!(timestamp_of("direct_qv_20260506_004804"), Some("20260506_004804"));
        assert_eq!(timestamp_of("direct_qv_20261306_004804"), None, "month 13");
        assert_eq!(timestamp_of("direct_qv"), None);
        assert_eq!(timestamp_of("_20260506_004804"), None, "no name");
        assert_eq!(file_timestamp(0), "19700101_000000");
        assert_eq!(file_timestamp(1_780_012_084), "20260528_234804");
        assert_eq!(file_timestamp(951_782_400), "20000229_000000", "a leap day");
    }
}
