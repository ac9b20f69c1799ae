//! Pairing labels with predictions by point id.

use std::collections::HashMap;

use qval_core::{Label, Prediction};

/// Labels and predictions aligned point by point.
#[derive(Clone, Debug, PartialEq)]
pub struct Aligned {
    /// The point ids, in label order.
    pub ids: Vec<String>,
    /// Reference values (NaN where aborted).
    pub labels: Vec<f64>,
    /// Predicted values (NaN where the method failed or gave no prediction).
    pub predictions: Vec<f64>,
    /// Labelled points the method gave no prediction for.
    pub missing: usize,
}

/// Aligns predictions to labels by point id, in label order. A label without a prediction
/// gets NaN (and counts in `missing`); predictions without a label are ignored.
pub fn align(labels: &[Label], predictions: &[Prediction]) -> Aligned {
    let by_id: HashMap<&str, f64> = predictions.iter().map(|p| (p.point_id.as_str(), p.value)).collect();
    let mut missing = 0;
    let preds = labels
        .iter()
        .map(|l| {
            by_id.get(l.point_id.as_str()).copied().unwrap_or_else(|| {
                missing += 1;
                f64::NAN
            })
        })
        .collect();
    Aligned {
        ids: labels.iter().map(|l| l.point_id.clone()).collect(),
        labels: labels.iter().map(|l| l.value).collect(),
        predictions: preds,
        missing,
    }
}
