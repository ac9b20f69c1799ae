//! A run's labels and predictions as the published testbed's prediction files.
//!
//! Point label sets and the methods that score points become point files, in the order of
//! the first point label set (published files pair by position). Ranking label sets (labels
//! of ranking candidates) become `ranking_q_values` files with `config.candidate_counts`, the
//! candidates of each state together, states in the order of their first candidate; methods
//! that score ranking candidates become `ranking_scores` files over the leading states they
//! scored whole, in the order of the first ranking label set, as the published reader pairs
//! them. Whatever cannot be written in the layout is listed with the reason, never dropped
//! silently.

use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::MetricsError;
use crate::qvalfiles::write_prediction_file;
use crate::report::{LabelSet, PredictionSet};
use qval_core::Label;

/// What [`export_run`] wrote and what it left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exported {
    /// The files written (`gt/` and `eval/`).
    pub written: Vec<PathBuf>,
    /// What was left out, each `name: reason`.
    pub left_out: Vec<String>,
}

/// The labels of a ranking label set grouped by state (states in the order of their first
/// candidate, candidates in file order), and the number of candidates of each state.
fn by_state(labels: &[Label]) -> (Vec<&Label>, Vec<usize>) {
    let mut states: Vec<(&str, Vec<&Label>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for l in labels {
        let key = l.candidate_of.as_deref().unwrap_or(&l.point_id);
        let i = *index.entry(key).or_insert_with(|| {
            states.push((key, Vec::new()));
            states.len() - 1
        });
        states[i].1.push(l);
    }
    let counts = states.iter().map(|(_, c)| c.len()).collect();
    (states.into_iter().flat_map(|(_, c)| c).collect(), counts)
}

/// `values` by id in `order` (NaN where absent) and how many were absent.
fn aligned(order: &[&Label], values: &HashMap<&str, f64>) -> (Vec<f64>, Vec<bool>) {
    let present: Vec<bool> = order.iter().map(|l| values.contains_key(l.point_id.as_str())).collect();
    let v = order
        .iter()
        .map(|l| values.get(l.point_id.as_str()).copied().unwrap_or(f64::NAN))
        .collect();
    (v, present)
}

fn ids_of(order: &[&Label]) -> Value {
    Value::from(order.iter().map(|l| l.point_id.clone()).collect::<Vec<_>>())
}

fn counts_value(counts: &[usize]) -> Value {
    Value::from(counts.to_vec())
}

/// Writes `labels` and `predictions` (a run's, see [`crate::read_run`]) into `dir/gt/` and
/// `dir/eval/` as the published testbed's prediction files named `<name>_<timestamp>.json`.
///
/// # Errors
/// A file that cannot be written.
pub fn export_run(
    labels: &[LabelSet],
    predictions: &[PredictionSet],
    dir: &Path,
    timestamp: &str,
) -> Result<Exported, MetricsError> {
    let mut done = Exported::default();
    let is_ranking = |l: &LabelSet| l.labels.iter().any(|x| x.candidate_of.is_some());
    let point_sets: Vec<&LabelSet> = labels.iter().filter(|l| !is_ranking(l)).collect();
    let ranking_sets: Vec<&LabelSet> = labels.iter().filter(|l| is_ranking(l)).collect();
    let point_order: Vec<&Label> = point_sets
        .first()
        .map(|l| l.labels.iter().collect())
        .unwrap_or_default();
    let ranking_order = ranking_sets.first().map(|l| by_state(&l.labels));
    for l in &point_sets {
        let values: HashMap<&str, f64> = l.labels.iter().map(|x| (x.point_id.as_str(), x.value)).collect();
        let (v, present) = aligned(&point_order, &values);
        if !present.iter().any(|p| *p) {
            done.left_out.push(format!(
                "{}: labels other points than {} (the published layout pairs by position)",
                l.name, point_sets[0].name
            ));
            continue;
        }
        let config = Map::from_iter([("method".to_string(), Value::from("mc"))]);
        let meta = Map::from_iter([("point_ids".to_string(), ids_of(&point_order))]);
        done.written.push(write_prediction_file(
            dir, &l.name, true, l.signal, &v, config, meta, timestamp,
        )?);
    }
    for l in &ranking_sets {
        let (order, counts) = by_state(&l.labels);
        let v: Vec<f64> = order.iter().map(|x| x.value).collect();
        let config = Map::from_iter([
            ("method".to_string(), Value::from("mc")),
            ("prediction_format".to_string(), Value::from("ranking_q_values")),
            ("candidate_counts".to_string(), counts_value(&counts)),
        ]);
        let meta = Map::from_iter([("point_ids".to_string(), ids_of(&order))]);
        done.written.push(write_prediction_file(
            dir, &l.name, true, l.signal, &v, config, meta, timestamp,
        )?);
    }
    // Candidates that are not their state's own point: a method scoring any of them ranks.
    let candidate_ids: HashSet<&str> = ranking_sets
        .iter()
        .flat_map(|l| l.labels.iter())
        .filter(|x| x.candidate_of.as_deref().is_some_and(|c| c != x.point_id))
        .map(|x| x.point_id.as_str())
        .collect();
    for m in predictions {
        let values: HashMap<&str, f64> = m.predictions.iter().map(|p| (p.point_id.as_str(), p.value)).collect();
        let ranks = m
            .predictions
            .iter()
            .any(|p| candidate_ids.contains(p.point_id.as_str()));
        if ranks && let Some((order, counts)) = &ranking_order {
            export_ranking_method(m, &values, order, counts, dir, timestamp, &mut done)?;
            continue;
        }
        let (v, present) = aligned(&point_order, &values);
        if !present.iter().any(|p| *p) {
            done.left_out.push(format!("{}: scores no labelled point", m.name));
            continue;
        }
        let mut config = Map::new();
        if let Some(g) = &m.group {
            config.insert("sample_group".into(), g.clone().into());
        }
        done.written.push(write_prediction_file(
            dir,
            &m.name,
            false,
            m.signal,
            &v,
            config,
            Map::new(),
            timestamp,
        )?);
    }
    Ok(done)
}

/// A ranking method as `ranking_scores` over the leading states it scored whole.
fn export_ranking_method(
    m: &PredictionSet,
    values: &HashMap<&str, f64>,
    order: &[&Label],
    counts: &[usize],
    dir: &Path,
    timestamp: &str,
    done: &mut Exported,
) -> Result<(), MetricsError> {
    let (v, present) = aligned(order, values);
    let (mut states, mut n) = (0, 0);
    for c in counts {
        if !present[n..n + c].iter().all(|p| *p) {
            break;
        }
        states += 1;
        n += c;
    }
    if states == 0 {
        done.left_out.push(format!(
            "{}: does not score every candidate of the ranking labels' first state (the published layout keeps a \
             prefix of the states)",
            m.name
        ));
        return Ok(());
    }
    let later = present[n..].iter().filter(|p| **p).count();
    if later > 0 {
        done.left_out.push(format!(
            "{}: {later} scores after its first {states} whole states (the published layout keeps a prefix of the \
             states)",
            m.name
        ));
    }
    let config = Map::from_iter([
        ("prediction_format".to_string(), Value::from("ranking_scores")),
        ("candidate_counts".to_string(), counts_value(&counts[..states])),
    ]);
    let meta = Map::from_iter([("point_ids".to_string(), ids_of(&order[..n]))]);
    done.written.push(write_prediction_file(
        dir,
        &m.name,
        false,
        m.signal,
        &v[..n],
        config,
        meta,
        timestamp,
    )?);
    Ok(())
}
