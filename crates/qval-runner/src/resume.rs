//! What a finished predict stage left on disk, and whether it is final: a file cut short, or
//! holding points that failed in transport, is not, and the stage runs again on what is
//! missing (the finished points are kept).

use std::path::Path;

use qval_core::io::{Kind, read_jsonl};
use qval_core::{CoreError, Prediction};

use crate::error::Result;

/// A prediction file as found.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    /// No file.
    Missing,
    /// Fewer records than its first line promises: cut short.
    Cut {
        /// Records found.
        found: usize,
        /// Records promised.
        expected: usize,
    },
    /// A complete file.
    Complete {
        /// Points whose prediction is NaN.
        nan: usize,
        /// Of those, the ones that failed in transport.
        transient: usize,
    },
}

impl Stored {
    /// Reads `path` (a predictions file).
    ///
    /// # Errors
    /// A file that cannot be read or is malformed (not merely cut short).
    pub fn of(path: &Path) -> Result<Stored> {
        if !path.exists() {
            return Ok(Stored::Missing);
        }
        match read_jsonl::<Prediction>(path, Kind::Predictions) {
            Ok((_, p)) => Ok(Stored::Complete {
                nan: p.iter().filter(|p| p.value.is_nan()).count(),
                transient: p.iter().filter(|p| p.transient).count(),
            }),
            Err(CoreError::Truncated { found, expected, .. }) => Ok(Stored::Cut { found, expected }),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether nothing is left to compute (with `redo_failed`, NaN predictions are not final).
    pub fn is_final(&self, redo_failed: bool) -> bool {
        match self {
            Stored::Complete { nan, transient } => *transient == 0 && (!redo_failed || *nan == 0),
            _ => false,
        }
    }
}

/// The line the runner prints when a finished predict stage runs again, saying why.
pub fn why_again(method: &str, stored: &[Stored], redo_failed: bool) -> String {
    let mut why = Vec::new();
    for s in stored {
        match s {
            Stored::Missing => why.push("an output file is missing".to_string()),
            Stored::Cut { found, expected } => why.push(format!(
                "an output file holds {found} of {expected} predictions (cut short)"
            )),
            Stored::Complete { transient, .. } if *transient > 0 => why.push(format!(
                "{transient} points failed in transport (connection, time-out, server error): asking them again"
            )),
            Stored::Complete { nan, .. } if redo_failed && *nan > 0 => {
                why.push(format!("{nan} NaN points asked again (--reask-unparsed)"))
            }
            Stored::Complete { .. } => {}
        }
    }
    format!("4. predict   {method}: resuming; {}", why.join("; "))
}

/// One line per prediction set that failed on every point (with the first reason and the
/// count), or that holds points failed in transport; empty when all is well.
pub fn failing(sets: &[qval_metrics::PredictionSet]) -> Vec<String> {
    let mut lines = Vec::new();
    for set in sets {
        let (name, preds) = (&set.name, &set.predictions);
        let nan: Vec<&Prediction> = preds.iter().filter(|p| p.value.is_nan()).collect();
        let transient = nan.iter().filter(|p| p.transient).count();
        if !preds.is_empty() && transient == preds.len() {
            lines.push(format!(
                "`{name}` failed in transport on all {} points; run the same command again to ask them",
                preds.len()
            ));
        } else if !preds.is_empty() && nan.len() == preds.len() {
            let reason = nan[0].error.as_deref().unwrap_or("no reason given");
            let reason: String = reason.split_whitespace().collect::<Vec<_>>().join(" ");
            let reason: String = reason.chars().take(200).collect();
            lines.push(format!(
                "`{name}` failed on all {} points: {reason} (first of {})",
                nan.len(),
                nan.len()
            ));
        } else if transient > 0 {
            lines.push(format!(
                "`{name}`: {transient} points failed in transport; run the same command again to ask them"
            ));
        }
    }
    lines
}
