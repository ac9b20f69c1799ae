//! What the Eureka judge sees, as published: statistics over all points, rejected
//! candidates, seeded sampled datapoints with every candidate's prediction, and the output
//! format; and how its answer is read.

mod common;

use common::user_text;
use qval_core::Signal;
use qval_methods::code::eureka::format_g6;
use qval_methods::code::{
    CandidateStats, JudgeCandidate, judge_labels, judge_messages, parse_winner, sample_point_indices,
};
use qval_testkit::quickstart_data;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_judge_prompt_has_the_published_sections_and_statistics() {
    let d = quickstart_data().await;
    let points = &d.points[..10];
    let ramp: Vec<f64> = (0..10).map(f64::from).collect();
    let constant = vec![0.5; 10];
    let mut one = vec![f64::NAN; 10];
    one[1] = 1.0;
    let none = vec![f64::NAN; 10];
    let shown = [
        JudgeCandidate {
            label: 1,
            values: &ramp,
        },
        JudgeCandidate {
            label: 2,
            values: &constant,
        },
        JudgeCandidate { label: 3, values: &one },
        JudgeCandidate {
            label: 4,
            values: &none,
        },
    ];
    let sampled = sample_point_indices(7, points, 0, 8);
    assert_eq!(sampled.len(), 8);
    let reason = "the reply has no ```python code block";
    let msgs = judge_messages(&d.ctx, Signal::Q, points, &shown, &[reason], &sampled);
    let text = user_text(&msgs);
    // The sections, in the published order.
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("no `{s}` in:\n{text}"));
    let order = [
        "## Selection Rule\nChoose the candidate whose predictions are the most appropriate and useful Q-value estimates.",
        "## Candidate Summaries",
        "## Rejected Candidates",
        "## Sampled Datapoints",
        "## Output Format\nRespond with:\n<winner>INTEGER</winner>\n<rationale>",
    ];
    for w in order.windows(2) {
        assert!(at(w[0]) < at(w[1]), "`{}` before `{}`", w[0], w[1]);
    }
    // Population std of 0..9 is sqrt(8.25) = 2.87228 (the sample std would be 3.02765).
    assert!(text.contains(
        "### Candidate 1\n- Finite predictions: 10\n- NaN predictions: 0\n- Min: 0\n- Max: 9\n- Mean: 4.5\n- Std: \
         2.87228\n- Collapsed: no"
    ));
    assert!(text.contains("### Candidate 2\n- Finite predictions: 10\n- NaN predictions: 0\n- Min: 0.5\n- Max: 0.5\n- Mean: 0.5\n- Std: 0\n- Collapsed: yes"));
    // One number is not "collapsed" (as published), and its std is 0.
    assert!(text.contains("### Candidate 3\n- Finite predictions: 1\n- NaN predictions: 9\n- Min: 1\n- Max: 1\n- Mean: 1\n- Std: 0\n- Collapsed: no"));
    assert!(text.contains("### Candidate 4\n- Finite predictions: 0\n- NaN predictions: 10\n- Min: n/a\n- Max: n/a\n- Mean: n/a\n- Std: n/a\n- Collapsed: no"));
    assert!(text.contains(&format!(
        "## Rejected Candidates\n\n### Rejected Candidate 1\n- Status: invalid\n- Reason: {reason}"
    )));
    // Eight datapoints, each with every candidate's prediction on that point.
    assert!(text.contains("### Datapoint 8\n\n") && !text.contains("### Datapoint 9"));
    for (j, &i) in sampled.iter().enumerate() {
        let block = text.split(&format!("### Datapoint {}\n\n", j + 1)).nth(1).unwrap();
        let preds = block.split("### Candidate Predictions\n").nth(1).unwrap();
        let want = format!(
            "Candidate 1: {i}\nCandidate 2: 0.5\nCandidate 3: {}\nCandidate 4: nan",
            if i == 1 { "1" } else { "nan" }
        );
        assert!(preds.starts_with(&want), "datapoint {}: {preds}", j + 1);
        assert!(
            block.contains(&points[i].observation.text),
            "datapoint {} shows point {i}",
            j + 1
        );
    }
    assert!(!text.contains("correlation") && !text.contains("label"));
    let stats = CandidateStats::of(&ramp, None);
    assert!((stats.std - 8.25f64.sqrt()).abs() < 1e-12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_points_and_labels_follow_the_seed() {
    let d = quickstart_data().await;
    let points = &d.points[..60];
    let a = sample_point_indices(1, points, 0, 8);
    assert_eq!(
        a,
        sample_point_indices(1, points, 0, 8),
        "the same seed, the same points"
    );
    assert!(a.windows(2).all(|w| w[0] < w[1]) && a.len() == 8 && a[7] < 60);
    assert_ne!(a, sample_point_indices(2, points, 0, 8), "another seed, other points");
    assert_ne!(a, sample_point_indices(1, points, 1, 8), "another round, other points");
    assert_eq!(
        sample_point_indices(1, &points[..5], 0, 8),
        vec![0, 1, 2, 3, 4],
        "min(8, n)"
    );
    let l = judge_labels(1, points, 0, 9);
    assert_eq!(l, judge_labels(1, points, 0, 9));
    let mut sorted = l.clone();
    sorted.sort();
    assert_eq!(sorted, (0..9).collect::<Vec<_>>(), "a permutation");
    assert!(
        (2..6).any(|s| judge_labels(s, points, 0, 9) != l),
        "the labels move with the seed"
    );
}

#[test]
fn winners_and_numbers_are_read_as_published() {
    assert_eq!(parse_winner("<WINNER> 3 </Winner><rationale>x</rationale>"), Some(3));
    assert_eq!(parse_winner("I pick <winner>\n12\n</winner>"), Some(12));
    assert_eq!(parse_winner("<winner>two</winner>"), None);
    assert_eq!(parse_winner("<answer>2</answer>"), None);
    for (v, want) in [
        (2.0, "2"),
        (0.1234567, "0.123457"),
        (123456.7, "123457"),
        (999999.5, "1e+06"),
        (1234567.0, "1.23457e+06"),
        (0.0001, "0.0001"),
        (0.00012345678, "0.000123457"),
        (0.000015, "1.5e-05"),
        (-2.5e-7, "-2.5e-07"),
        (1e100, "1e+100"),
        (f64::INFINITY, "inf"),
        (f64::NAN, "nan"),
    ] {
        assert_eq!(format_g6(v), want, "{v}");
    }
}
