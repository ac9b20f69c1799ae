//! The cross-run report: table, Markdown, CSV, heat map, HTML page, and the page in a
//! headless browser.

use qval_metrics::{
    Correlations, CrossRunTable, Estimation, Figure, MethodEntry, MethodEstimation, MethodExtras, MetricsError,
    Summary, cross_run_html, write_cross_run_report,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EPS: f64 = 1e-12;

/// A method with a Spearman figure, and predictions that are a monotone function of the
/// reference values when `rho > 0` (enough for the scatter plot to have points).
fn method(rho: Option<f64>, ci: Option<[f64; 2]>, n: usize, p: f64) -> MethodEstimation {
    let fig = |c: Option<f64>| {
        Some(Figure {
            correlation: c,
            p_value: c.map(|_| p),
            num_points: n,
        })
    };
    let mut extras = MethodExtras::default();
    if let Some([a, b]) = ci {
        extras.intervals.insert("spearman".into(), [Some(a), Some(b)]);
    }
    if rho.is_none() {
        extras
            .notes
            .insert("spearman".into(), "fewer than 50 usable pairs".into());
    }
    MethodEstimation {
        correlations: Correlations {
            pearson: fig(rho),
            spearman: fig(rho),
            kendall_tau: fig(rho),
            ..Default::default()
        },
        predicted_values: Some((0..8).map(|i| Some(i as f64 * rho.unwrap_or(0.0))).collect()),
        predicted_trajectory_sums: None,
        num_dropped_zero: Some(0),
        per_point_correlations: None,
        qval: Some(extras),
    }
}

fn summary(refs: Vec<(&str, Vec<(&str, MethodEstimation)>)>) -> Summary {
    Summary {
        estimations: refs
            .into_iter()
            .map(|(r, ms)| {
                (
                    r.to_string(),
                    Estimation {
                        assumption: "q_value".into(),
                        ground_truth_values: Some((0..8).map(|i| Some(0.95f64.powi(8 - i))).collect()),
                        methods: ms
                            .into_iter()
                            .map(|(m, e)| (m.to_string(), MethodEntry::Method(e)))
                            .collect(),
                        ..Default::default()
                    },
                )
            })
            .collect(),
        ..Default::default()
    }
}

/// Two runs, two references. run-a: distance-q best (0.9); run-b: random-q best (0.95);
/// llm-q only in run-b, with an undefined rho; exact-q / distance-q only in run-a.
fn two_runs() -> Vec<(String, Summary)> {
    let a = summary(vec![
        (
            "mvmc-q",
            vec![
                ("distance-q", method(Some(0.9), Some([0.85, 0.95]), 238, 1e-80)),
                ("random-q", method(Some(0.05), Some([-0.07, 0.18]), 238, 0.44)),
            ],
        ),
        ("exact-q", vec![("distance-q", method(Some(0.8), None, 100, 1e-9))]),
    ]);
    let b = summary(vec![(
        "mvmc-q",
        vec![
            ("distance-q", method(Some(0.7), Some([0.61, 0.78]), 120, 2e-5)),
            ("random-q", method(Some(0.95), Some([0.9, 0.97]), 119, 1e-40)),
            ("llm-q", method(None, None, 12, 0.0)),
        ],
    )]);
    vec![("run-a".to_string(), a), ("run-b".to_string(), b)]
}

#[test]
fn the_table_has_every_method_and_marks_the_best_rho_per_run() {
    let t = CrossRunTable::new(&two_runs()).unwrap();
    assert_eq!(t.runs, ["run-a", "run-b"]);
    let labels: Vec<&str> = t.rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "exact-q / distance-q",
            "mvmc-q / distance-q",
            "mvmc-q / llm-q",
            "mvmc-q / random-q"
        ]
    );
    let row = |l: &str| t.rows.iter().find(|r| r.label == l).unwrap();
    let d = row("mvmc-q / distance-q");
    assert_eq!((d.reference.as_str(), d.method.as_str()), ("mvmc-q", "distance-q"));
    let a = d.cells[0].as_ref().unwrap();
    assert!((a.rho.unwrap() - 0.9).abs() < EPS);
    assert!((a.ci_low.unwrap() - 0.85).abs() < EPS && (a.ci_high.unwrap() - 0.95).abs() < EPS);
    assert_eq!(a.n, 238);
    assert!(a.best, "0.9 is the best of run-a");
    assert!(!d.cells[1].as_ref().unwrap().best, "0.7 is not the best of run-b");
    assert!(row("mvmc-q / random-q").cells[1].as_ref().unwrap().best);
    assert!(!row("mvmc-q / random-q").cells[0].as_ref().unwrap().best);
    assert!(!row("exact-q / distance-q").cells[0].as_ref().unwrap().best);
    assert_eq!(row("exact-q / distance-q").cells[1], None, "run-b has no exact-q");
    assert_eq!(row("mvmc-q / llm-q").cells[0], None);
    let llm = row("mvmc-q / llm-q").cells[1].as_ref().unwrap();
    assert_eq!((llm.rho, llm.n, llm.best), (None, 12, false));
    let best_per_run: Vec<usize> = (0..2)
        .map(|j| {
            t.rows
                .iter()
                .filter(|r| r.cells[j].as_ref().is_some_and(|c| c.best))
                .count()
        })
        .collect();
    assert_eq!(best_per_run, [1, 1]);

    let md = t.markdown();
    assert!(md.contains("| method | run-a | run-b |\n|---|---|---|\n"), "{md}");
    assert!(
        md.contains("| mvmc-q / distance-q | **0.900 [0.850, 0.950]**, n=238 | 0.700 [0.610, 0.780], n=120 |"),
        "{md}"
    );
    assert!(
        md.contains("| mvmc-q / random-q | 0.050 [-0.070, 0.180], n=238 | **0.950 [0.900, 0.970]**, n=119 |"),
        "{md}"
    );
    assert!(md.contains("| exact-q / distance-q | 0.800, n=100 | - |"), "{md}");
    assert!(md.contains("| mvmc-q / llm-q | - | NaN, n=12 |"), "{md}");
    assert_eq!(
        md.matches("**").count(),
        2 * 2 + 2,
        "two bold cells plus the legend: {md}"
    );
}

#[test]
fn with_one_reference_rows_are_bare_method_names() {
    let runs = vec![(
        "only".to_string(),
        summary(vec![(
            "mvmc-q",
            vec![
                ("b", method(Some(0.5), None, 60, 0.1)),
                ("a", method(Some(0.5), None, 60, 0.1)),
            ],
        )]),
    )];
    let t = CrossRunTable::new(&runs).unwrap();
    let labels: Vec<&str> = t.rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["a", "b"]);
    assert!(
        t.rows.iter().all(|r| r.cells[0].as_ref().unwrap().best),
        "a tie for the best is marked on every tied row"
    );
}

#[test]
fn a_lone_method_is_not_best_and_p_underflow_ranking_states_and_samples_are_shown() {
    use qval_metrics::{Granularity, RankingFigure, SampleGroup};
    // One method only: there is no best to mark, even when it is the random baseline.
    let lone = vec![(
        "lone".to_string(),
        summary(vec![("mvmc-q", vec![("random-q", method(Some(0.1), None, 60, 0.0))])]),
    )];
    let t = CrossRunTable::new(&lone).unwrap();
    assert!(!t.rows[0].cells[0].as_ref().unwrap().best);
    assert!(t.markdown().contains("| random-q | 0.100, n=60 |"), "{}", t.markdown());
    // A p-value that underflowed to 0 reads as the run's own table prints it.
    let html = cross_run_html(&lone).unwrap();
    assert!(html.contains("p=&lt;1e-300") && !html.contains("0.0e0"), "{html}");

    // A ranking row counts states; codegen's samples are rows of their own.
    let mut s = summary(vec![
        ("ranking-mvmc-q", vec![]),
        ("mvmc-q", vec![("distance-q", method(Some(0.8), None, 60, 1e-9))]),
    ]);
    let ranking = s.estimations.get_mut("ranking-mvmc-q").unwrap();
    ranking.granularity = Granularity::Ranking;
    let mut ranked = method(None, None, 0, 0.0);
    ranked.correlations.ranking_spearman = Some(RankingFigure {
        mean: Some(0.4),
        std: Some(0.1),
        num_valid: 17,
        num_skipped: 3,
        num_points: 20,
    });
    ranking.methods.insert("ranking-q".into(), MethodEntry::Method(ranked));
    let member = |name: &str, rho: f64| {
        let mut m = method(Some(rho), None, 60, 1e-3);
        m.qval.as_mut().unwrap().name = Some(name.into());
        m
    };
    s.estimations["mvmc-q"].methods.insert(
        "codegen-q".into(),
        MethodEntry::Group(SampleGroup {
            num_samples: 2,
            aggregate_correlations: Default::default(),
            per_sample: vec![member("codegen-q-s0", 0.3), member("codegen-q-s1", 0.6)],
        }),
    );
    let runs = vec![("r".to_string(), s)];
    let t = CrossRunTable::new(&runs).unwrap();
    let labels: Vec<&str> = t.rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "mvmc-q / codegen-q-s0",
            "mvmc-q / codegen-q-s1",
            "mvmc-q / distance-q",
            "ranking-mvmc-q / ranking-q"
        ]
    );
    let md = t.markdown();
    assert!(
        md.contains("| ranking-mvmc-q / ranking-q | 0.400, n=17 states |"),
        "{md}"
    );
    assert!(md.contains("| mvmc-q / codegen-q-s1 | 0.600, n=60 |"), "{md}");
    assert!(
        md.contains("(on per-state ranking rows: the mean of the per-state rho, n states)"),
        "{md}"
    );
    assert!(cross_run_html(&runs).unwrap().contains("<small>n=17 states</small>"));
}

#[test]
fn bad_run_lists_are_refused_with_the_offending_name() {
    let runs = two_runs();
    let e = CrossRunTable::new(&[]).unwrap_err();
    assert!(matches!(e, MetricsError::InvalidParameter { name: "runs", .. }), "{e}");
    let dup = vec![runs[0].clone(), ("run-a".to_string(), runs[1].1.clone())];
    let e = CrossRunTable::new(&dup).unwrap_err();
    assert!(
        e.to_string().contains("\"run-a\"") && e.to_string().contains("share"),
        "{e}"
    );
    let blank = vec![(" ".to_string(), runs[0].1.clone())];
    assert!(CrossRunTable::new(&blank).is_err());
}

/// A small RFC 4180 reader: quoted fields may hold commas, quotes ("") and line ends.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => {
                assert!(field.is_empty(), "a quote inside an unquoted field");
                quoted = true;
            }
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(!quoted, "unterminated quote");
    assert!(field.is_empty() && row.is_empty(), "no final line end");
    rows
}

#[test]
fn the_csv_parses_back_to_the_same_numbers() {
    let mut runs = two_runs();
    runs[1].0 = "run \"b\", v2".to_string();
    runs[0].1.estimations.get_mut("mvmc-q").unwrap().methods.insert(
        "odd,name".into(),
        MethodEntry::Method(method(Some(-0.123456789012345), Some([-0.2, -0.01]), 77, 3.5e-7)),
    );
    let t = CrossRunTable::new(&runs).unwrap();
    let rows = parse_csv(&t.csv());
    assert_eq!(rows.len(), 1 + 5);
    let head = &rows[0];
    assert_eq!(head.len(), 3 + 2 * 6);
    assert_eq!(&head[..4], ["method", "reference", "name", "run-a rho"]);
    assert_eq!(head[9], "run \"b\", v2 rho");
    assert_eq!(head[14], "run \"b\", v2 best");
    let find = |label: &str| {
        rows.iter()
            .find(|r| r[0] == label)
            .unwrap_or_else(|| panic!("no row {label}"))
    };
    let num = |s: &str| s.parse::<f64>().unwrap();

    let d = find("mvmc-q / distance-q");
    assert_eq!(d.len(), head.len());
    assert_eq!((d[1].as_str(), d[2].as_str()), ("mvmc-q", "distance-q"));
    assert_eq!(num(&d[3]), 0.9);
    assert_eq!((num(&d[4]), num(&d[5])), (0.85, 0.95));
    assert_eq!(d[6], "238");
    assert_eq!(num(&d[7]), 1e-80);
    assert_eq!(d[8], "true");
    assert_eq!(num(&d[9]), 0.7);
    assert_eq!(num(&d[13]), 2e-5);
    assert_eq!(d[14], "false");

    let odd = find("mvmc-q / odd,name");
    assert_eq!(odd[2], "odd,name");
    assert_eq!(num(&odd[3]), -0.123456789012345, "full precision");
    assert_eq!(num(&odd[7]), 3.5e-7);
    assert!(odd[9..].iter().all(String::is_empty), "run b lacks the method: {odd:?}");

    let e = find("exact-q / distance-q");
    assert_eq!((e[3].as_str(), e[4].as_str(), e[5].as_str()), ("0.8", "", ""));
    let llm = find("mvmc-q / llm-q");
    assert_eq!(
        (llm[9].as_str(), llm[12].as_str(), llm[13].as_str(), llm[14].as_str()),
        ("", "12", "", "false")
    );
    assert_eq!(find("mvmc-q / random-q")[14], "true");
}

#[test]
fn the_html_page_holds_the_table_and_inline_svgs_and_escapes_names() {
    let mut runs = two_runs();
    runs[0].1.estimations.get_mut("mvmc-q").unwrap().methods.insert(
        "<x&y>".into(),
        MethodEntry::Method(method(Some(0.3), Some([0.1, 0.5]), 90, 0.004)),
    );
    runs[1].0 = "b&'run'".into();
    let html = cross_run_html(&runs).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<table id=\"rho-table\">"));
    assert_eq!(html.matches("<tr data-row=").count(), 5);
    assert!(html.contains(
        "<td class=\"best\" data-value=\"0.9\">0.900 [0.850, 0.950]<br><small>n=238, p=1.0e-80</small></td>"
    ));
    assert!(html.contains("<td class=\"best\" data-value=\"0.95\">"));
    assert_eq!(html.matches("class=\"best\"").count(), 2);
    // The method name `<x&y>` never appears raw: table, headings, SVG titles are escaped.
    assert!(!html.contains("<x&y>"));
    assert!(html.contains("mvmc-q / &lt;x&amp;y&gt;"));
    assert!(
        html.contains("<th data-key=\"b&amp;&#39;run&#39;\" data-type=\"num\" scope=\"col\">b&amp;&#39;run&#39;</th>")
    );
    // Inline SVG: the heat map, then per method one interval chart and one scatter per run
    // holding it (5 methods, 7 method-run cells).
    assert_eq!(html.matches("<svg ").count(), 1 + 5 + 7);
    assert_eq!(html.matches("</svg>").count(), 1 + 5 + 7);
    assert!(html.contains("Spearman rho per method and run"));
    // Self-contained: nothing is loaded.
    let no_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for bad in ["http:", "https:", "src=", "<link", "url(", "@import"] {
        assert!(!no_ns.contains(bad), "the page refers to `{bad}`");
    }
    assert!(html.contains("<script>") && html.contains("</script>"));
}

#[test]
fn the_report_files_are_written_the_same_every_time() {
    let runs = two_runs();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w1 = write_cross_run_report(&runs, &d1.path().join("report")).unwrap();
    let w2 = write_cross_run_report(&runs, d2.path()).unwrap();
    let names: Vec<String> = w1
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["report.md", "report.csv", "heatmap.svg", "heatmap.png", "report.html"]
    );
    for (a, b) in w1.iter().zip(&w2) {
        assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap(), "{}", a.display());
    }
    let svg = std::fs::read_to_string(&w1[2]).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("0.95") && svg.contains("NaN"),
        "{svg}"
    );
    // The PNG decodes and shows the colour scale: many distinct colours.
    let png = resvg::tiny_skia::Pixmap::load_png(&w1[3]).unwrap();
    assert!(png.width() >= 300 && png.height() >= 150);
    let colours: std::collections::HashSet<[u8; 4]> = png
        .pixels()
        .iter()
        .map(|p| [p.red(), p.green(), p.blue(), p.alpha()])
        .collect();
    assert!(colours.len() > 20, "only {} colours", colours.len());
}

// ---- the page in a browser ----

fn chromium() -> PathBuf {
    let p = PathBuf::from("/usr/bin/chromium");
    assert!(
        p.exists(),
        "headless Chromium is needed for this test and /usr/bin/chromium is missing: \
         apt-get install chromium (Debian; .ci/run installs it)"
    );
    p
}

/// Loads `url` in headless Chromium and returns the DOM after the page's scripts ran.
fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting chromium: {e} (apt-get install chromium)"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 120 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = out.join().unwrap().unwrap();
    let log = err.join().unwrap();
    assert!(status.success(), "chromium failed ({status}) on {url}:\n{log}");
    assert!(dom.contains("</html>"), "no DOM from chromium on {url}:\n{log}");
    dom
}

/// The row labels in the order of the DOM's table body.
fn row_order(dom: &str) -> Vec<String> {
    let start = dom.find("<tbody>").expect("a table body");
    let end = dom[start..].find("</tbody>").expect("the body's end") + start;
    dom[start..end]
        .split("<tr data-row=\"")
        .skip(1)
        .map(|tr| {
            let a = tr.find("<a href=").expect("a method link");
            let from = tr[a..].find('>').unwrap() + a + 1;
            let to = tr[from..].find("</a>").unwrap() + from;
            tr[from..to].to_string()
        })
        .collect()
}

fn sorted_by(dom: &str) -> Option<String> {
    let i = dom.find("<table id=\"rho-table\"")?;
    let tag = &dom[i..i + dom[i..].find('>')?];
    let j = tag.find("data-sorted=\"")? + "data-sorted=\"".len();
    Some(tag[j..j + tag[j..].find('"')?].to_string())
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.canonicalize().unwrap().display())
}

#[test]
fn the_page_in_headless_chromium_shows_the_table_and_plots_and_sorts_from_the_url() {
    let mut runs = two_runs();
    runs[0].1.estimations.get_mut("mvmc-q").unwrap().methods.insert(
        "<x&y>".into(),
        MethodEntry::Method(method(Some(0.3), Some([0.1, 0.5]), 90, 0.004)),
    );
    let dir = tempfile::tempdir().unwrap();
    write_cross_run_report(&runs, dir.path()).unwrap();
    let url = file_url(&dir.path().join("report.html"));

    let dom = dump_dom(&url);
    let unsorted = [
        "exact-q / distance-q",
        "mvmc-q / &lt;x&amp;y&gt;",
        "mvmc-q / distance-q",
        "mvmc-q / llm-q",
        "mvmc-q / random-q",
    ];
    assert_eq!(row_order(&dom), unsorted);
    assert_eq!(sorted_by(&dom), None, "nothing sorts without a #sort= fragment");
    assert_eq!(
        dom.matches("<svg ").count(),
        1 + 5 + 7,
        "the inline SVGs are in the DOM"
    );
    assert!(dom.contains("<td class=\"best\""));

    // `#sort=run-b` clicks the run-b header: rho descending, rows without a figure last.
    let dom = dump_dom(&format!("{url}#sort=run-b"));
    assert_eq!(sorted_by(&dom).as_deref(), Some("run-b desc"));
    assert_eq!(
        row_order(&dom),
        [
            "mvmc-q / random-q",        // 0.95
            "mvmc-q / distance-q",      // 0.7
            "exact-q / distance-q",     // not in run-b
            "mvmc-q / &lt;x&amp;y&gt;", // not in run-b
            "mvmc-q / llm-q",           // NaN
        ]
    );
    assert!(dom.contains("aria-sort=\"descending\""));

    // A second click reverses: ascending, the rows without a figure still last.
    let dom = dump_dom(&format!("{url}#sort=run-a&dir=asc"));
    assert_eq!(sorted_by(&dom).as_deref(), Some("run-a asc"));
    assert_eq!(
        row_order(&dom),
        [
            "mvmc-q / random-q",        // 0.05
            "mvmc-q / &lt;x&amp;y&gt;", // 0.3
            "exact-q / distance-q",     // 0.8
            "mvmc-q / distance-q",      // 0.9
            "mvmc-q / llm-q",           // not in run-a
        ]
    );

    // The text column, descending.
    let dom = dump_dom(&format!("{url}#sort=method&dir=desc"));
    let mut expected = unsorted.to_vec();
    expected.reverse();
    assert_eq!(sorted_by(&dom).as_deref(), Some("method desc"));
    assert_eq!(row_order(&dom), expected);
}
