//! The stages of a run as types: what `run.json` keys them by and `--redo` names.

use std::fmt;
use std::str::FromStr;

/// A stage of a run. `run.json` keys it by its text (`collect`, `sample`, `label:NAME`,
/// `predict:METHOD`, `evaluate`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// 1. Trajectories.
    Collect,
    /// 2. Evaluation points (and the ranking candidates).
    Sample,
    /// 3. One label set, by name.
    Label(String),
    /// 4. One method entry's predictions, by the entry's name.
    Predict(String),
    /// 5. The summary.
    Evaluate,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Collect => f.write_str("collect"),
            Stage::Sample => f.write_str("sample"),
            Stage::Label(name) => write!(f, "label:{name}"),
            Stage::Predict(name) => write!(f, "predict:{name}"),
            Stage::Evaluate => f.write_str("evaluate"),
        }
    }
}

impl serde::Serialize for Stage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl FromStr for Stage {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            None if text == "collect" => Ok(Stage::Collect),
            None if text == "sample" => Ok(Stage::Sample),
            None if text == "evaluate" => Ok(Stage::Evaluate),
            Some(("label", name)) if !name.is_empty() => Ok(Stage::Label(name.into())),
            Some(("predict", name)) if !name.is_empty() => Ok(Stage::Predict(name.into())),
            _ => Err(format!(
                "`{text}` is not a stage: collect, sample, label:NAME, predict:METHOD or evaluate"
            )),
        }
    }
}

/// What `--redo` clears: one stage, or every label set, or every method (and, for a stage,
/// what depends on it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redo {
    /// One stage (`collect` and `sample` clear everything after them too).
    Stage(Stage),
    /// Every label set (`label`).
    Labels,
    /// Every method (`predict`).
    Predictions,
}

impl Redo {
    /// Whether redoing this clears `stage`.
    pub fn clears(&self, stage: &Stage) -> bool {
        match self {
            Redo::Stage(Stage::Collect) => true,
            Redo::Stage(Stage::Sample) => *stage != Stage::Collect,
            Redo::Stage(s) => s == stage,
            Redo::Labels => matches!(stage, Stage::Label(_)),
            Redo::Predictions => matches!(stage, Stage::Predict(_)),
        }
    }
}

impl fmt::Display for Redo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Redo::Stage(s) => s.fmt(f),
            Redo::Labels => f.write_str("label"),
            Redo::Predictions => f.write_str("predict"),
        }
    }
}

impl FromStr for Redo {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "label" => Ok(Redo::Labels),
            "predict" => Ok(Redo::Predictions),
            "evaluate" => Err("`evaluate` is redone on every run; name a stage before it".into()),
            other => other.parse().map(Redo::Stage).map_err(|_| {
                format!("`{other}` is not a stage: collect, sample, label, label:NAME, predict or predict:METHOD")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_read_back_what_they_print_and_redo_clears_what_depends_on_it() {
        for s in [
            Stage::Collect,
            Stage::Sample,
            Stage::Label("mvmc-q".into()),
            Stage::Predict("a:b".into()),
            Stage::Evaluate,
        ] {
            assert_eq!(s.to_string().parse::<Stage>().unwrap(), s);
        }
        assert!("label:".parse::<Stage>().is_err() && "colect".parse::<Stage>().is_err());
        let label = Stage::Label("x".into());
        let predict = Stage::Predict("m".into());
        let sample: Redo = "sample".parse().unwrap();
        assert!(!sample.clears(&Stage::Collect) && sample.clears(&label) && sample.clears(&predict));
        assert!("collect".parse::<Redo>().unwrap().clears(&Stage::Collect));
        assert!(Redo::Labels.clears(&label) && !Redo::Labels.clears(&predict));
        assert!(Redo::Predictions.clears(&predict) && !Redo::Predictions.clears(&Stage::Sample));
        let one: Redo = "predict:m".parse().unwrap();
        assert!(one.clears(&predict) && !one.clears(&Stage::Predict("n".into())));
        assert!("evaluate".parse::<Redo>().is_err());
    }
}
