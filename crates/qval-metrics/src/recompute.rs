//! Recomputing a stored summary (the published testbed's or qval's) from its own values,
//! and listing the figures that differ.

use serde::Serialize;
use serde_json::Value;
use std::path::Path;

use crate::MetricsError;
use crate::report::{EvaluateConfig, point_entry, sample_group};
use crate::summary::{Granularity, MethodEntry, MethodEstimation, Summary, SummaryExtras};

/// A figure where qval and a stored summary disagree.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Difference {
    /// `estimations.<label set>.methods.<method>.correlations.<figure>.<field>`.
    pub what: String,
    /// The stored value.
    pub stored: Value,
    /// qval's value.
    pub recomputed: Value,
}

/// Tolerances when comparing a stored figure with qval's: coefficients and statistics 1e-9
/// absolute, p-values 1e-6 relative, counts exactly.
fn close(field: &str, a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) if field == "p_value" => {
            (a - b).abs() <= 1e-6 * a.abs().max(b.abs()) || (a - b).abs() < 1e-300
        }
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9,
        _ => false,
    }
}

fn diff_figures(at: &str, stored: &MethodEstimation, ours: &MethodEstimation, diffs: &mut Vec<Difference>) {
    for (name, s) in stored.correlations.figures() {
        let o = ours.correlations.get(name);
        for (field, a, b) in [
            ("correlation", s.correlation, o.and_then(|o| o.correlation)),
            ("p_value", s.p_value, o.and_then(|o| o.p_value)),
        ] {
            if !close(field, a, b) {
                diffs.push(Difference {
                    what: format!("{at}.correlations.{name}.{field}"),
                    stored: a.map(Value::from).unwrap_or(Value::Null),
                    recomputed: b.map(Value::from).unwrap_or(Value::Null),
                });
            }
        }
        let on = o.map(|o| o.num_points);
        if on != Some(s.num_points) {
            diffs.push(Difference {
                what: format!("{at}.correlations.{name}.num_points"),
                stored: Value::from(s.num_points),
                recomputed: on.map(Value::from).unwrap_or(Value::Null),
            });
        }
    }
    if let (Some(a), Some(b)) = (stored.num_dropped_zero, ours.num_dropped_zero)
        && a != b
    {
        diffs.push(Difference {
            what: format!("{at}.num_dropped_zero"),
            stored: Value::from(a),
            recomputed: Value::from(b),
        });
    }
}

/// What [`recompute_published`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct Recomputed {
    /// The summary with every figure recomputed (same layout, qval's additions added).
    pub summary: Summary,
    /// Stored figures that differ from the recomputed ones.
    pub differences: Vec<Difference>,
    /// Figures compared.
    pub compared: usize,
    /// Entries that could not be recomputed from the summary alone, each with the reason
    /// (ranking entries keep no values in the published layout; potentials of shaped rewards
    /// need the dataset's trajectories).
    pub not_recomputable: Vec<NotRecomputed>,
}

/// An entry of a stored summary that could not be recomputed from it, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NotRecomputed {
    /// `estimations.<label set>`.
    pub what: String,
    /// Why.
    pub why: String,
}

/// Reads a summary in the published layout (the published testbed's or qval's),
/// recomputes every figure from its stored values under its own settings
/// (`min_usable_correlation_points`, `exclude_zero_points`, `correlation_methods`, the
/// prefix capped at `num_evaluation_points`) and lists where the stored figures differ.
/// `cfg` gives the bootstrap for qval's additions.
///
/// # Errors
/// The file cannot be read or is not in the layout (the message names line, column and
/// the JSON path).
pub fn recompute_published(path: &Path, cfg: &EvaluateConfig) -> Result<Recomputed, MetricsError> {
    let stored = Summary::read(path)?;
    let info = &stored.experiment_info;
    let mut cfg = cfg.clone();
    cfg.correlation.min_pairs = if info.min_usable_correlation_points > 0 {
        info.min_usable_correlation_points
    } else {
        50
    };
    cfg.exclude_zero_points = info.exclude_zero_points;
    if !info.correlation_methods.is_empty() {
        cfg.correlation_methods = info.correlation_methods.clone();
    }
    cfg.validate().map_err(|e| MetricsError::Format {
        path: path.to_path_buf(),
        message: format!("experiment_info.correlation_methods: {e}"),
    })?;
    let cap = (info.num_evaluation_points > 0).then_some(info.num_evaluation_points);
    let mut out = stored.clone();
    let mut differences = Vec::new();
    let mut compared = 0;
    let mut not_recomputable = Vec::new();
    // Trajectory entries pair every trajectory; point entries the prefix of the dataset.
    let recompute = |gt: &[f64], m: &MethodEstimation, g: Granularity| -> Result<MethodEstimation, MetricsError> {
        let preds = m.values();
        let mut n = gt.len().min(preds.len());
        if let Some(c) = cap
            && g == Granularity::Point
        {
            n = n.min(c);
        }
        let mut e = point_entry(&gt[..n], &preds[..n], &cfg)?;
        e.predicted_values = m.predicted_values.clone();
        e.predicted_trajectory_sums = m.predicted_trajectory_sums.clone();
        if m.num_dropped_zero.is_none() {
            e.num_dropped_zero = None;
        }
        if let (Some(x), Some(old)) = (e.qval.as_mut(), m.qval.as_ref()) {
            x.name = old.name.clone();
            x.signal = old.signal;
        }
        Ok(e)
    };
    for (section, ests, new) in [
        ("estimations", &stored.estimations, &mut out.estimations),
        (
            "gt_vs_gt_estimations",
            &stored.gt_vs_gt_estimations,
            &mut out.gt_vs_gt_estimations,
        ),
    ] {
        for (gname, est) in ests {
            let at_gt = format!("{section}.{gname}");
            if est.granularity == Granularity::Ranking {
                not_recomputable.push(NotRecomputed {
                    what: at_gt,
                    why: "the published layout keeps no ranking values".into(),
                });
                continue;
            }
            if est.assumption == "potential" && info.signal_type == "shaped_reward" {
                not_recomputable.push(NotRecomputed {
                    what: at_gt,
                    why: "potentials of shaped rewards are running sums over each trajectory's points, \
                          which the summary does not record: it keeps the raw values"
                        .into(),
                });
                continue;
            }
            let granularity = est.granularity;
            let gt = est.labels();
            let target = new.get_mut(gname).expect("cloned");
            for (mname, entry) in &est.methods {
                let at = format!("{at_gt}.methods.{mname}");
                match entry {
                    MethodEntry::Method(m) => {
                        let e = recompute(&gt, m, granularity)?;
                        compared += 3 * m.correlations.figures().len();
                        diff_figures(&at, m, &e, &mut differences);
                        target.methods.insert(mname.clone(), MethodEntry::Method(e));
                    }
                    MethodEntry::Group(g) => {
                        let mut members = Vec::new();
                        for (i, m) in g.per_sample.iter().enumerate() {
                            let e = recompute(&gt, m, granularity)?;
                            compared += 3 * m.correlations.figures().len();
                            diff_figures(&format!("{at}.per_sample[{i}]"), m, &e, &mut differences);
                            members.push(e);
                        }
                        let ours = sample_group(members, Some(g.num_samples));
                        for (name, a) in &g.aggregate_correlations {
                            let o = ours.aggregate_correlations.get(name);
                            for (field, x, y) in [
                                ("mean", a.mean, o.and_then(|o| o.mean)),
                                ("std", a.std, o.and_then(|o| o.std)),
                                ("min", a.min, o.and_then(|o| o.min)),
                                ("max", a.max, o.and_then(|o| o.max)),
                                ("median", a.median, o.and_then(|o| o.median)),
                                (
                                    "num_samples",
                                    Some(a.num_samples as f64),
                                    o.map(|o| o.num_samples as f64),
                                ),
                                ("num_nan", Some(a.num_nan as f64), o.map(|o| o.num_nan as f64)),
                            ] {
                                compared += 1;
                                if !close(field, x, y) {
                                    differences.push(Difference {
                                        what: format!("{at}.aggregate_correlations.{name}.{field}"),
                                        stored: x.map(Value::from).unwrap_or(Value::Null),
                                        recomputed: y.map(Value::from).unwrap_or(Value::Null),
                                    });
                                }
                            }
                        }
                        target.methods.insert(mname.clone(), MethodEntry::Group(ours));
                    }
                }
            }
        }
    }
    let mut extras = SummaryExtras {
        version: env!("CARGO_PKG_VERSION").to_string(),
        config: serde_json::to_value(&cfg).unwrap_or(Value::Null),
        other: Default::default(),
    };
    extras
        .other
        .insert("recomputed_from".into(), Value::from(path.display().to_string()));
    extras.other.insert(
        "differences".into(),
        serde_json::to_value(&differences).unwrap_or(Value::Null),
    );
    out.qval = Some(extras);
    Ok(Recomputed {
        summary: out,
        differences,
        compared,
        not_recomputable,
    })
}
