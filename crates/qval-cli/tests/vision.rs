//! The embedding family on pictures through `qval run`: an HTTP encoder against the loopback
//! server's deterministic embeddings, and the checks made before any work.

mod common;

use common::{qval_run, refused_experiment, succeeded, summary, write_experiment};
use std::collections::HashSet;

use qval_testkit::{ServerConfig, TestServer};

const HEAD: &str = r#"name = "vision"
seed = 7

[environment]
type = "frozenlake"
maps = 4
observation = "image"
image_size = 64

[dataset]
trajectories = 24

[[labels]]
rollouts = 1

[[labels]]
signal = "v"
rollouts = 1

[evaluate]
bootstrap = 0
"#;

#[test]
fn the_vision_family_runs_from_an_experiment_file_and_asks_once_per_picture() {
    let server = TestServer::start(ServerConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!(
        "{HEAD}\n[backends.clip]\nbase_url = \"{url}\"\nmodel = \"qval-clip\"\nmax_attempts = 2\n",
        url = server.base_url()
    );
    for kind in ["goal-cosine", "vlm-rm", "sor", "sor-threshold"] {
        text.push_str(&format!(
            "\n[[methods]]\ntype = \"{kind}\"\nencoder = \"http\"\nserver = \"clip\"\nmodality = \"image\"\nsignal = [\"q\", \"v\"]\n"
        ));
    }
    // The same server on the text observations, given by URL and model.
    text.push_str(&format!(
        "\n[[methods]]\ntype = \"goal-cosine\"\nname = \"cos-text\"\nencoder = \"http\"\nbase_url = \"{}\"\nmodel = \"qval-clip\"\n",
        server.base_url()
    ));
    let file = write_experiment(dir.path(), "vision.toml", &text);
    let run = dir.path().join("run");
    succeeded(qval_run(&file, &run).arg("-q"));
    let s = summary(&run);
    for kind in ["goal-cosine", "vlm-rm", "sor", "sor-threshold"] {
        for (reference, signal) in [("mvmc-q", "q"), ("mvmc-v", "v")] {
            let name = format!("{kind}-{signal}-image");
            let m = &s["estimations"][reference]["methods"][&name];
            let rho = m["correlations"]["spearman"]["correlation"]
                .as_f64()
                .unwrap_or(f64::NAN);
            // The server's construction: pictures nearer the goal score higher.
            // The server's construction: pictures nearer the goal score higher (0.99 here for
            // the continuous scores, 0.8 for the threshold's 0/1).
            let margin = if kind == "sor-threshold" { 0.6 } else { 0.9 };
            assert!(rho > margin, "{name}: {m}");
            assert_eq!(m["qval"]["failed"], 0, "{name}: no point failed");
        }
    }
    let text_rho =
        s["estimations"]["mvmc-q"]["methods"]["cos-text-q"]["correlations"]["spearman"]["correlation"].as_f64();
    assert!(text_rho.is_some_and(f64::is_finite), "{s}");
    // Eight methods on pictures, each picture embedded once: the run's on-disk cache serves
    // the methods after the first.
    let sent = server.embedded_images();
    assert!(!sent.is_empty());
    assert_eq!(
        sent.iter().collect::<HashSet<_>>().len(),
        sent.len(),
        "a picture was embedded twice"
    );
    assert!(run.join("embedding-cache").is_dir());
}

#[test]
fn bad_vision_entries_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let backends = "\n[backends.clip]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n";
    let cases = [
        (
            format!(
                "{}{backends}[[methods]]\ntype = \"sor\"\nencoder = \"http\"\nserver = \"clip\"\nmodality = \"image\"\n",
                HEAD.replace("observation = \"image\"\n", "")
            ),
            vec!["modality", "gives no pictures", "observation = \"image\""],
        ),
        (
            format!("{HEAD}[[methods]]\ntype = \"sor\"\nmodality = \"image\"\n"),
            vec!["modality", "encodes text only", "encoder = \"http\""],
        ),
        (
            format!(
                "{HEAD}{backends}[[methods]]\ntype = \"sor\"\nencoder = \"http\"\nserver = \"clpi\"\nmodality = \"image\"\n"
            ),
            vec!["server", "clpi", "did you mean `clip`"],
        ),
        (
            format!("{HEAD}[[methods]]\ntype = \"sor\"\nencoder = \"htp\"\n"),
            vec!["encoder", "unknown encoder `htp`", "did you mean `http`"],
        ),
        (
            format!("{HEAD}[[methods]]\ntype = \"sor\"\nencoder = \"http\"\nmodality = \"image\"\n"),
            vec!["needs `server = \"NAME\"`"],
        ),
        (
            format!("{HEAD}[[methods]]\ntype = \"sor\"\nencoder = \"http\"\nbase_url = \"http://h/v1\"\n"),
            vec!["base_url", "needs `model`"],
        ),
        (
            format!(
                "{HEAD}{backends}[[methods]]\ntype = \"sor\"\nencoder = \"http\"\nserver = \"clip\"\nbase_url = \"http://h/v1\"\nmodel = \"m\"\n"
            ),
            vec!["not both"],
        ),
        (
            format!("{HEAD}[[methods]]\ntype = \"sor\"\nserver = \"clip\"\n"),
            vec!["server", "takes no `server`"],
        ),
    ];
    for (text, wanted) in cases {
        let (e, _) = refused_experiment(d, "vision.toml", &text);
        assert!(e.contains("vision.toml:"), "{e}");
        for w in wanted {
            assert!(e.contains(w), "`{w}` not in: {e}");
        }
    }
}

#[test]
fn an_embeddings_server_that_is_down_stops_the_method_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens.
    let text = format!(
        "{HEAD}\n[backends.clip]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n\n[[methods]]\ntype = \"sor\"\n\
         encoder = \"http\"\nserver = \"clip\"\nmodality = \"image\"\n"
    );
    let path = write_experiment(dir.path(), "vision.toml", &text);
    let out = qval_run(&path, dir.path().join("run")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("embeddings server `clip` at http://127.0.0.1:9/v1 is unreachable"),
        "{err}"
    );
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
    assert!(
        !dir.path().join("run/predictions/sor-q.jsonl").exists(),
        "no point was scored"
    );
}
