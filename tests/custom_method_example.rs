//! The `custom_method` example's reading of a run folder: a missing run is explained, any
//! other error is reported as it is.

#[allow(dead_code)]
#[path = "../examples/custom_method.rs"]
mod custom_method;

use custom_method::read_run_file;
use qval::EvaluationPoint;
use qval::io::{Kind, Metadata, write_jsonl};

#[test]
fn a_malformed_file_is_reported_as_such_not_as_a_missing_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = qval::stage::layout::points(dir.path());
    write_jsonl::<EvaluationPoint>(&path, &Metadata::new(Kind::Points, "test"), &[]).unwrap();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"not\": \"a point\"\n");
    std::fs::write(&path, text).unwrap();
    let msg = format!(
        "{:#}",
        read_run_file::<EvaluationPoint>(&path, Kind::Points).unwrap_err()
    );
    assert!(msg.contains(&format!("{}:2", path.display())), "{msg}");
    assert!(
        !msg.contains("quickstart"),
        "a malformed file is not a missing run: {msg}"
    );
}

#[test]
fn a_missing_run_says_to_run_the_quickstart() {
    let dir = tempfile::tempdir().unwrap();
    let path = qval::stage::layout::points(&dir.path().join("nothing-here"));
    let msg = format!(
        "{:#}",
        read_run_file::<EvaluationPoint>(&path, Kind::Points).unwrap_err()
    );
    assert!(
        msg.contains("does not exist") && msg.contains("experiments/quickstart.toml"),
        "{msg}"
    );
}
