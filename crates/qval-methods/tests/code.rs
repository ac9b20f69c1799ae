//! The code family in its sandbox: hostile samples are contained, good ones are measured.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{require_bubblewrap, sample};
use qval_core::{EvaluationPoint, MethodContext, Prediction, Signal, StageOptions, predict};
use qval_methods::code::{
    CodeSample, CodegenAvg, GeneratedSample, Isolation, SandboxConfig, generate_samples, group, parallelism,
};
use qval_methods::llm::{OpenAiBackend, OpenAiConfig};
use qval_metrics::group_summary;
use qval_testkit::{ServerConfig, TestServer, quickstart_data, rho};

/// A good sample: the distance heuristic that ships as an example.
const GOOD: &str = qval_methods::code::EXAMPLE_SAMPLE;

/// The escape every Python jail fears: the real builtins through an object's subclasses.
const ESCAPE: &str = r#"
def _builtins():
    for c in ().__class__.__base__.__subclasses__():
        g = getattr(c.__init__, '__globals__', None)
        if g and '__builtins__' in g:
            b = g['__builtins__']
            return b if isinstance(b, dict) else b.__dict__
    raise RuntimeError('no escape hatch')

def _os():
    return _builtins()['__import__']('os').__dict__
"#;

/// The model writing code: the loopback `server`, asked directly (no retries, no cache).
fn coder(server: &TestServer) -> Arc<dyn qval_methods::llm::Backend> {
    Arc::new(OpenAiBackend::new(OpenAiConfig::new(server.base_url(), "coder")).unwrap())
}

fn config(call_ms: u64) -> SandboxConfig {
    SandboxConfig::builder()
        .call_limit(Duration::from_millis(call_ms))
        .build()
        .unwrap()
}

async fn run(code: &str, points: &[EvaluationPoint], ctx: &MethodContext, call_ms: u64) -> Vec<Prediction> {
    let m = CodeSample::new(sample(code), Signal::Q, config(call_ms), "test");
    let p = predict(&m, points, ctx, &StageOptions::default()).await.unwrap();
    m.close().await;
    p
}

fn all_nan_with(preds: &[Prediction], needle: &str) {
    for p in preds {
        assert!(p.value.is_nan(), "expected NaN, got {p:?}");
        let e = p.error.as_deref().unwrap_or_default();
        assert!(e.contains(needle), "expected a reason containing {needle:?}, got {e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_sample_reaches_the_expected_correlation() {
    require_bubblewrap();
    let d = quickstart_data().await;
    let preds = run(GOOD, &d.points, &d.ctx, 1000).await;
    assert!(
        preds.iter().all(|p| p.value.is_finite()),
        "{:?}",
        preds.iter().find(|p| p.value.is_nan())
    );
    let r = rho(&d.labels, &preds);
    assert!(r >= 0.95, "rho {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_samples_are_contained_with_a_reason() {
    require_bubblewrap();
    let d = quickstart_data().await;
    let few = &d.points[..3];
    let ctx = &d.ctx;
    // Forbidden imports, at load time and at call time.
    for m in ["os", "subprocess", "socket"] {
        all_nan_with(
            &run(
                &format!("import {m}\ndef signal_function(state, action, next_state):\n    return 1.0"),
                few,
                ctx,
                500,
            )
            .await,
            "is not allowed",
        );
        all_nan_with(
            &run(
                &format!("def signal_function(state, action, next_state):\n    import {m}\n    return 1.0"),
                few,
                ctx,
                500,
            )
            .await,
            "is not allowed",
        );
    }
    // Dangerous builtins are gone.
    all_nan_with(
        &run(
            "def signal_function(state, action, next_state):\n    return len(open('/etc/hostname').read())",
            few,
            ctx,
            500,
        )
        .await,
        "NameError",
    );
    // An infinite loop, pure Python (the alarm stops it) and stuck in C (the host kills it).
    all_nan_with(
        &run(
            "def signal_function(state, action, next_state):\n    while True:\n        pass",
            few,
            ctx,
            200,
        )
        .await,
        "time limit",
    );
    let deaf = format!(
        "{ESCAPE}\ndef signal_function(state, action, next_state):\n    s = _builtins()['__import__']('signal')\n    s.signal(s.SIGALRM, s.SIG_IGN)\n    while True:\n        pass"
    );
    all_nan_with(&run(&deaf, &few[..1], ctx, 200).await, "timed out");
    // 10 GB.
    all_nan_with(
        &run(
            "def signal_function(state, action, next_state):\n    x = bytearray(10 ** 10)\n    return 1.0",
            few,
            ctx,
            2000,
        )
        .await,
        "MemoryError",
    );
    // Megabytes of output: printed or written to the real stdout, past the cap it is NaN.
    all_nan_with(
        &run(
            "def signal_function(state, action, next_state):\n    print('x' * 5_000_000)",
            few,
            ctx,
            2000,
        )
        .await,
        "output cap",
    );
    let flood = format!(
        "{ESCAPE}\ndef signal_function(state, action, next_state):\n    _os()['write'](1, b'x' * 5_000_000)\n    return 1.0"
    );
    all_nan_with(&run(&flood, few, ctx, 2000).await, "output cap");
    // Bad return values.
    all_nan_with(
        &run(
            "def signal_function(state, action, next_state):\n    return float('nan')",
            few,
            ctx,
            500,
        )
        .await,
        "non-finite",
    );
    all_nan_with(
        &run(
            "def signal_function(state, action, next_state):\n    return 'high'",
            few,
            ctx,
            500,
        )
        .await,
        "returned str",
    );
    // Wrong signature, no function, syntax error.
    all_nan_with(
        &run("def signal_function(state):\n    return 1.0", few, ctx, 500).await,
        "expected (state, action, next_state)",
    );
    all_nan_with(&run("x = 1", few, ctx, 500).await, "defines no function");
    all_nan_with(&run("def signal_function(:", few, ctx, 500).await, "SyntaxError");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escapes_cannot_touch_the_host() {
    require_bubblewrap();
    let d = quickstart_data().await;
    let few = &d.points[..2];
    let host = tempfile::tempdir().unwrap();
    let secret = host.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    let target = host.path().join("written.txt");
    // Reading a host file outside the working folder.
    let read = format!(
        "{ESCAPE}\ndef signal_function(state, action, next_state):\n    b = _builtins()\n    return float(len(b['open']({:?}).read()))",
        secret.display().to_string()
    );
    all_nan_with(&run(&read, few, &d.ctx, 1000).await, "No such file");
    // Writing outside the working folder.
    let write = format!(
        "{ESCAPE}\ndef signal_function(state, action, next_state):\n    b = _builtins()\n    b['open']({:?}, 'w').write('pwned')\n    return 1.0",
        target.display().to_string()
    );
    all_nan_with(&run(&write, few, &d.ctx, 1000).await, "Error");
    assert!(!target.exists(), "the host file was not created");
    // Reaching the network: a listener on the host's loopback hears nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let net = format!(
        "{ESCAPE}\ndef signal_function(state, action, next_state):\n    b = _builtins()\n    s = b['__import__']('socket').create_connection(('127.0.0.1', {port}), timeout=0.5)\n    s.sendall(b'hello')\n    return 1.0"
    );
    all_nan_with(&run(&net, few, &d.ctx, 2000).await, "Error");
    assert!(listener.accept().is_err(), "no connection reached the host");
    // A crash (the worker exits) on some points: restarted, the others still get values.
    let crash = format!(
        "{ESCAPE}\ndef signal_function(state, action, next_state):\n    if 'H @' in next_state:\n        _os()['_exit'](3)\n    return 1.0"
    );
    let m = CodeSample::new(sample(&crash), Signal::Q, config(1000), "test");
    let preds = predict(&m, &d.points[..40], &d.ctx, &StageOptions::default())
        .await
        .unwrap();
    let crashed = preds.iter().filter(|p| p.value.is_nan()).count();
    assert!(crashed > 0 && crashed < 40, "{crashed}");
    assert!(
        preds
            .iter()
            .filter(|p| p.value.is_nan())
            .all(|p| p.error.as_deref().unwrap().contains("crashed"))
    );
    assert_eq!(m.restarts().await, crashed);
    m.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codegen_samples_come_from_the_backend_and_average() {
    require_bubblewrap();
    let d = quickstart_data().await;
    let bad_import = "import os\ndef signal_function(state, action, next_state):\n    return 0.0".to_string();
    let constant_nan = "def signal_function(state, action, next_state):\n    return float('nan')".to_string();
    let server = TestServer::start(ServerConfig {
        code_samples: vec![GOOD.to_string(), bad_import, constant_nan],
        ..Default::default()
    });
    let backend = OpenAiBackend::new(OpenAiConfig::new(server.base_url(), "coder")).unwrap();
    let samples = generate_samples(&backend, &d.ctx, Signal::Q, &Default::default(), 6, &Default::default()).await;
    assert_eq!(server.requests(), 6);
    assert!(samples.iter().all(|s| s.source.is_some()));
    assert!(server.prompts()[0].contains("The function signature must be:\n```python\ndef signal_function(state: str, action: str, next_state: str) -> float:"));
    let methods: Vec<Arc<CodeSample>> = samples
        .into_iter()
        .map(|s| Arc::new(CodeSample::new(s, Signal::Q, config(1000), "codegen")))
        .collect();
    let mut rhos = Vec::new();
    for m in &methods {
        let preds = predict(&**m, &d.points, &d.ctx, &StageOptions::default())
            .await
            .unwrap();
        rhos.push(rho(&d.labels, &preds));
    }
    let g = group_summary(&rhos);
    assert_eq!((g.n, g.nan), (2, 4), "two good samples; the others give no figure");
    assert!(g.min >= 0.95);
    let avg = CodegenAvg::new(methods.clone(), Signal::Q);
    let preds = predict(&avg, &d.points, &d.ctx, &StageOptions::default())
        .await
        .unwrap();
    assert!(rho(&d.labels, &preds) >= 0.95);
    for m in &methods {
        m.close().await;
    }
}

#[test]
fn configurations_are_validated() {
    assert!(SandboxConfig::builder().call_limit(Duration::ZERO).build().is_err());
    assert!(SandboxConfig::builder().memory(1 << 20).build().is_err());
    assert!(SandboxConfig::builder().abandon_after(0).build().is_err());
    let e = SandboxConfig::builder()
        .python("/root/.pyenv/bin/python3")
        .build()
        .unwrap_err()
        .to_string();
    assert!(e.contains("only /usr is mounted"), "{e}");
    assert!(
        SandboxConfig::builder()
            .python("/root/py")
            .isolation(Isolation::LimitsOnly)
            .build()
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eureka_rounds_keep_the_judges_winner() {
    use qval_methods::code::{EurekaConfig, run_eureka};
    require_bubblewrap();
    let d = quickstart_data().await;
    let constant = "def signal_function(state, action, next_state):\n    return 1.0".to_string();
    let broken = "def signal_function(state, action, next_state):\n    return 1 / 0".to_string();
    let server = TestServer::start(ServerConfig {
        code_samples: vec![constant, broken, GOOD.to_string()],
        ..Default::default()
    });
    let backend = coder(&server);
    let mut cfg = EurekaConfig::new(config(1000));
    (cfg.iterations, cfg.candidates, cfg.concurrency) = (2, 3, 2);
    let r = run_eureka(backend, &d.ctx, Signal::Q, &d.points[..60], &cfg)
        .await
        .unwrap();
    assert_eq!(r.rounds.len(), 2);
    assert_eq!(server.requests(), 2 * 3 + 2, "candidates plus one judge call per round");
    let first = &r.rounds[0];
    assert!(first.judged && first.candidates[0].1.collapsed && first.candidates[1].1.nan == 60);
    assert!(
        first.candidates[1]
            .1
            .first_error
            .as_deref()
            .unwrap()
            .contains("ZeroDivisionError")
    );
    assert_eq!(
        first.candidates[first.winner].0.source.as_deref().map(str::trim),
        Some(GOOD.trim()),
        "the judge picks the working one"
    );
    assert!(
        server
            .prompts()
            .iter()
            .any(|p| p.contains("## Search Iteration\nIteration 2 of 2.")
                && p.contains(
                    "## Current Best Code\nThis is the current best candidate from the previous iteration. Use it as \
                     a starting point and improve it.\n\n```python\n"
                )
                && p.contains("## Judge Feedback\n### Judge Rationale\nCandidate")
                && p.contains("### Improvement Feedback\nKeep candidate")
                && p.contains("### Winner Diagnostics\n- Finite predictions:")),
        "round 2 sees the winner"
    );
    let best = CodeSample::new(r.best, Signal::Q, config(1000), "eureka");
    let preds = predict(&best, &d.points, &d.ctx, &StageOptions::default())
        .await
        .unwrap();
    assert!(rho(&d.labels, &preds) >= 0.95);
    best.close().await;
}

/// A judge answer without a usable `<winner>` keeps the previous winner (as published), even
/// when a new candidate would win the fallback rule (a larger spread); the judge sees the
/// incumbent under a label of its own and is asked at temperature 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eureka_keeps_the_incumbent_when_the_judge_answer_is_malformed() {
    use qval_methods::code::{EurekaConfig, run_eureka};
    use qval_testkit::{Fault, Rule, Selector};
    require_bubblewrap();
    let d = quickstart_data().await;
    let wide = format!(
        "{GOOD}\n_inner = signal_function\n\ndef signal_function(state, action, next_state):\n    return 10.0 * _inner(state, action, next_state)\n"
    );
    let server = TestServer::start(ServerConfig {
        code_samples: vec![GOOD.to_string(), wide],
        // Only the second round's judge sees two candidates.
        rules: vec![Rule::new(Selector::Contains("### Candidate 2\n".into()), Fault::Prose)],
        ..Default::default()
    });
    let backend = coder(&server);
    let mut cfg = EurekaConfig::new(config(1000));
    cfg.iterations = 3;
    cfg.candidates = 1;
    let r = run_eureka(backend, &d.ctx, Signal::Q, &d.points[..20], &cfg)
        .await
        .unwrap();
    assert_eq!(
        r.rounds.len(),
        2,
        "the search stops after an unusable judge answer, as published"
    );
    let (first, second) = (&r.rounds[0], &r.rounds[1]);
    assert!(first.judged && first.winner == 0 && first.incumbent.is_none());
    assert_eq!(second.incumbent, Some(1), "the previous winner is judged again, last");
    assert_eq!(second.labels.len(), 2);
    assert!(
        second.candidates[0].1.std > second.candidates[1].1.std,
        "the new one spreads more"
    );
    assert!(!second.judged);
    assert_eq!(second.winner, 1, "the incumbent is kept");
    assert_eq!(r.best.source.as_deref().map(str::trim), Some(GOOD.trim()));
    assert_eq!(second.sampled.len(), 8);
    let judges: Vec<String> = server
        .prompts()
        .into_iter()
        .filter(|p| p.contains("## Candidate Summaries"))
        .collect();
    assert_eq!(judges.len(), 2);
}

/// A sample with the real `os` module writes forged replies (a bare number, a value, a load
/// answer) to every descriptor it can reach: each point still gets exactly its own value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_any_descriptor_cannot_shift_answers_between_points() {
    require_bubblewrap();
    let d = quickstart_data().await;
    let pts = &d.points[..12];
    let body = "    return float(state.find('@') * 1000 + next_state.find('@'))";
    let clean = run(
        &format!("def signal_function(state, action, next_state):\n{body}"),
        pts,
        &d.ctx,
        1000,
    )
    .await;
    let forge = format!(
        "{ESCAPE}\ndef signal_function(state, action, next_state):\n    w = _os()['write']\n    for fd in range(0, 16):\n        try:\n            w(fd, b'42\\n{{\"value\": 42.0}}\\n{{\"ok\": true}}\\n')\n        except OSError:\n            pass\n{body}"
    );
    let forged = run(&forge, pts, &d.ctx, 1000).await;
    for (c, f) in clean.iter().zip(&forged) {
        assert!(c.value.is_finite(), "{c:?}");
        assert_eq!(f.value, c.value, "point {}: {f:?}", f.point_id);
    }
}

/// 50 MiB printed, or written to descriptor 1, and then a number: NaN with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_past_the_cap_makes_the_point_nan() {
    require_bubblewrap();
    let d = quickstart_data().await;
    let few = &d.points[..3];
    let printed = "def signal_function(state, action, next_state):\n    print('x' * (50 << 20))\n    return 1.0";
    all_nan_with(&run(printed, few, &d.ctx, 5000).await, "more than the output cap");
    let written = format!(
        "{ESCAPE}\ndef signal_function(state, action, next_state):\n    _os()['write'](1, b'x' * (50 << 20))\n    return 1.0"
    );
    all_nan_with(&run(&written, few, &d.ctx, 5000).await, "more than the output cap");
    let at_load = "print('x' * (1 << 20))\ndef signal_function(state, action, next_state):\n    return 1.0";
    all_nan_with(&run(at_load, few, &d.ctx, 5000).await, "more than the output cap");
    // A little output is fine.
    let chatty = "def signal_function(state, action, next_state):\n    print('thinking')\n    return 1.0";
    assert!(run(chatty, few, &d.ctx, 1000).await.iter().all(|p| p.value == 1.0));
}

/// Eureka's choice (the judge's, like its fallback) never lands on a sample whose points
/// drowned in output, even when its numbers are as good as the best candidate's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eureka_does_not_pick_a_sample_that_floods_its_output() {
    use qval_methods::code::{EurekaConfig, run_eureka};
    require_bubblewrap();
    let d = quickstart_data().await;
    let flood = format!(
        "{GOOD}\n_inner = signal_function\n\ndef signal_function(state, action, next_state):\n    print('x' * (50 << 20))\n    return _inner(state, action, next_state)\n"
    );
    let server = TestServer::start(ServerConfig {
        code_samples: vec![flood, GOOD.to_string()],
        ..Default::default()
    });
    let backend = coder(&server);
    let mut cfg = EurekaConfig::new(config(5000));
    (cfg.iterations, cfg.candidates, cfg.concurrency) = (1, 2, 2);
    let r = run_eureka(backend, &d.ctx, Signal::Q, &d.points[..20], &cfg)
        .await
        .unwrap();
    let round = &r.rounds[0];
    assert_eq!(round.candidates[0].1.nan, 20, "{:?}", round.candidates[0].1);
    assert!(
        round.candidates[0]
            .1
            .first_error
            .as_deref()
            .unwrap()
            .contains("output cap"),
        "{:?}",
        round.candidates[0].1
    );
    assert_eq!(round.winner, 1);
    assert_eq!(r.best.source.as_deref().map(str::trim), Some(GOOD.trim()));
}

/// A sample with the real `os` module fills every writable place it can find (8 MiB files,
/// under the per-file limit): the working folder, `/tmp` and `/dev/shm` stop at their sizes,
/// `/dev` refuses, and the host's free memory does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_cannot_fill_memory_or_disk_through_writable_folders() {
    use qval_methods::code::sandbox::WORK_BYTES;
    require_bubblewrap();
    let d = quickstart_data().await;
    let fill = format!(
        "{ESCAPE}\ndef signal_function(state, action, next_state):\n    os = _os()\n    chunk = b'x' * (8 << 20)\n    landed = {{}}\n    for d in ['/work', '/tmp', '/dev/shm', '/dev']:\n        n = 0\n        for i in range(40):\n            try:\n                fd = os['open'](d + '/fill' + str(i), os['O_WRONLY'] | os['O_CREAT'], 0o600)\n            except OSError:\n                break\n            try:\n                n += os['write'](fd, chunk)\n            except OSError:\n                break\n            finally:\n                os['close'](fd)\n        landed[d] = n\n    raise RuntimeError('landed ' + repr(sorted(landed.items())))\n"
    );
    let available = || -> u64 {
        let m = std::fs::read_to_string("/proc/meminfo").unwrap();
        let line = m.lines().find(|l| l.starts_with("MemAvailable:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    };
    let before = available();
    let m = CodeSample::new(sample(&fill), Signal::Q, config(30_000), "test");
    let preds = predict(&m, &d.points[..1], &d.ctx, &StageOptions::default())
        .await
        .unwrap();
    let during = available();
    m.close().await;
    let e = preds[0].error.as_deref().unwrap_or_default();
    let landed = |dir: &str| -> u64 {
        let at = e.find(&format!("('{dir}', ")).unwrap_or_else(|| panic!("{dir} in {e}"));
        let rest = &e[at + dir.len() + 5..];
        rest[..rest.find(')').unwrap()].parse().unwrap()
    };
    assert!(landed("/work") <= WORK_BYTES, "{e}");
    assert!(landed("/tmp") <= qval_sandbox::TMP_BYTES, "{e}");
    assert!(landed("/dev/shm") <= qval_sandbox::SHM_BYTES, "{e}");
    assert_eq!(landed("/dev"), 0, "{e}");
    assert!(
        before.saturating_sub(during) < 400 << 20,
        "host memory dropped by {} MiB",
        (before - during) >> 20
    );
}

/// Eureka runs a round's candidates at once: four candidates that each sleep 0.5 s on each
/// of 4 points take about 2 s with concurrency 4, not 8 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eureka_runs_candidates_concurrently() {
    use qval_methods::code::{EurekaConfig, run_eureka};
    require_bubblewrap();
    let d = quickstart_data().await;
    let slow = format!(
        "{ESCAPE}\ndef signal_function(state, action, next_state):\n    _builtins()['__import__']('time').sleep(0.5)\n    return float(len(next_state))"
    );
    let server = TestServer::start(ServerConfig {
        code_samples: vec![slow],
        ..Default::default()
    });
    let backend = coder(&server);
    let mut cfg = EurekaConfig::new(config(2000));
    cfg.iterations = 1;
    cfg.candidates = 4;
    assert_eq!(
        cfg.concurrency,
        parallelism(),
        "the documented default: the machine's cores"
    );
    cfg.concurrency = 4;
    let t = std::time::Instant::now();
    let r = run_eureka(backend, &d.ctx, Signal::Q, &d.points[..4], &cfg)
        .await
        .unwrap();
    let took = t.elapsed();
    assert!(
        r.rounds[0].candidates.iter().all(|(_, s)| s.finite == 4),
        "{:?}",
        r.rounds[0]
    );
    assert!(
        took < Duration::from_secs(5),
        "{took:?}: the candidates ran one at a time"
    );
}

/// A sample that loads slowly and crashes on every point is held to its total time limit:
/// restarts count, so the documented worst case per sample holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_count_against_the_total_time_limit() {
    require_bubblewrap();
    let d = quickstart_data().await;
    let crash = format!(
        "{ESCAPE}\n_builtins()['__import__']('time').sleep(0.4)\ndef signal_function(state, action, next_state):\n    _os()['_exit'](3)"
    );
    let cfg = SandboxConfig::builder()
        .call_limit(Duration::from_millis(1000))
        .total_limit(Duration::from_secs(2))
        .build()
        .unwrap();
    let m = CodeSample::new(sample(&crash), Signal::Q, cfg, "test");
    let t = std::time::Instant::now();
    let preds = predict(&m, &d.points[..30], &d.ctx, &StageOptions::default())
        .await
        .unwrap();
    let took = t.elapsed();
    m.close().await;
    assert!(preds.iter().all(|p| p.value.is_nan()));
    assert!(
        preds
            .iter()
            .any(|p| p.error.as_deref().unwrap().contains("total time limit")),
        "{:?}",
        preds.last()
    );
    assert!(took < Duration::from_secs(6), "{took:?} for a 2 s budget");
}

/// Code that never returns costs a few call limits, not one per point: a sample whose calls
/// time out three times in a row (the worker's alarm, or the host's limit for code deaf to
/// it) is abandoned, its remaining points NaN with the reason and not run; two timeouts in a
/// row are not enough; the other samples of its group keep their values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_timing_out_three_times_in_a_row_is_abandoned_and_the_others_keep_their_values() {
    require_bubblewrap();
    let d = quickstart_data().await;
    let points = &d.points[..12];
    // Call k (from 1) returns k, but calls 4, 5 and 7, 8, 9 hang.
    let flaky = "_n = [0]\ndef signal_function(state, action, next_state):\n    _n[0] += 1\n    if _n[0] in (4, 5, 7, 8, 9):\n        while True:\n            pass\n    return float(_n[0])";
    let deaf = format!(
        "{ESCAPE}\ndef signal_function(state, action, next_state):\n    s = _builtins()['__import__']('signal')\n    s.signal(s.SIGALRM, s.SIG_IGN)\n    while True:\n        pass"
    );
    let members = group(
        [GOOD, flaky, deaf.as_str(), GOOD]
            .iter()
            .enumerate()
            .map(|(i, code)| {
                let mut s = sample(code);
                s.index = i;
                CodeSample::new(s, Signal::Q, config(300), "codegen")
            })
            .collect(),
    );
    let t = std::time::Instant::now();
    let mut preds = Vec::new();
    for m in &members {
        preds.push(predict(&**m, points, &d.ctx, &StageOptions::default()).await.unwrap());
    }
    let took = t.elapsed();
    let reason = |p: &Prediction| p.error.clone().unwrap_or_default();
    let abandoned = "abandoned after 3 calls in a row timed out";
    // The good samples are untouched.
    for k in [0, 3] {
        assert!(preds[k].iter().all(|p| p.value.is_finite()), "{:?}", preds[k]);
    }
    assert_eq!(
        preds[0].iter().map(|p| p.value).collect::<Vec<_>>(),
        preds[3].iter().map(|p| p.value).collect::<Vec<_>>()
    );
    // Two timeouts in a row, then a value: the sample goes on; three: it is abandoned.
    let flaky_values: Vec<f64> = preds[1].iter().map(|p| p.value).collect();
    for (i, want) in [(0, 1.0), (1, 2.0), (2, 3.0), (5, 6.0)] {
        assert_eq!(flaky_values[i], want, "{:?}", preds[1]);
    }
    for i in [3, 4, 6, 7, 8] {
        assert!(reason(&preds[1][i]).contains("time limit"), "{:?}", preds[1][i]);
    }
    for p in &preds[1][9..] {
        assert!(p.value.is_nan() && reason(p).contains(abandoned), "{p:?}");
    }
    // Deaf to the alarm: killed by the host each time, restarted twice, then abandoned.
    for p in &preds[2][..3] {
        assert!(p.value.is_nan() && reason(p).contains("timed out"), "{p:?}");
    }
    for p in &preds[2][3..] {
        assert!(p.value.is_nan() && reason(p).contains(abandoned), "{p:?}");
    }
    assert_eq!(members[2].restarts().await, 2);
    assert!(members[2].abandoned().await.is_some() && members[0].abandoned().await.is_none());
    // Without abandoning, the deaf sample alone would take 12 x 0.8 s plus 11 restarts.
    assert!(took < Duration::from_secs(8), "{took:?}");
    for m in &members {
        m.close().await;
    }
}

/// Samples linked in a group run at once, up to the machine's cores, even when scored one
/// after another as the runner does: two samples sleeping 0.5 s on each of 4 points take
/// about 2 s on two cores, not 4 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_samples_scored_one_after_another_run_at_once() {
    require_bubblewrap();
    let d = quickstart_data().await;
    let slow = format!(
        "{ESCAPE}\ndef signal_function(state, action, next_state):\n    _builtins()['__import__']('time').sleep(0.5)\n    return float(len(next_state))"
    );
    let members = group(
        (0..2)
            .map(|_| CodeSample::new(sample(&slow), Signal::Q, config(2000), "codegen"))
            .collect(),
    );
    let t = std::time::Instant::now();
    for m in &members {
        let preds = predict(&**m, &d.points[..4], &d.ctx, &StageOptions::default())
            .await
            .unwrap();
        assert!(preds.iter().all(|p| p.value.is_finite()), "{preds:?}");
    }
    let took = t.elapsed();
    let at_once = parallelism().min(2) as f64;
    assert!(
        took.as_secs_f64() < 4.0 / at_once + 1.5,
        "{took:?} with {at_once} at once: the samples ran one after another"
    );
    for m in &members {
        m.close().await;
    }
}

/// Eureka on a model whose code never returns: every candidate is abandoned and rejected
/// with the reason, no judge is asked, and the search ends after two rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eureka_rejects_candidates_that_never_return_and_stops() {
    use qval_methods::code::{EurekaConfig, run_eureka};
    use qval_testkit::{Fault, Rule, Selector};
    require_bubblewrap();
    let d = quickstart_data().await;
    let server = TestServer::start(ServerConfig {
        rules: vec![Rule::new(
            Selector::Contains("signal_function".into()),
            Fault::NeverReturningCode,
        )],
        ..Default::default()
    });
    let backend = coder(&server);
    let mut cfg = EurekaConfig::new(config(200));
    cfg.candidates = 4;
    let t = std::time::Instant::now();
    let r = run_eureka(backend, &d.ctx, Signal::Q, &d.points[..20], &cfg)
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(
        r.rounds.len(),
        2,
        "rounds; the first: {:?}",
        r.rounds[0].candidates[0].1
    );
    for round in &r.rounds {
        assert!(!round.judged);
        for (_, stats) in &round.candidates {
            let why = stats.invalid.as_deref().unwrap_or_default();
            assert!(why.contains("abandoned after 3 calls in a row timed out"), "{stats:?}");
            assert_eq!((stats.finite, stats.nan), (0, 20));
        }
    }
    assert_eq!(server.requests(), 2 * 4, "code requests only, no judge");
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codegen_prompts_are_the_published_ones_for_each_preset() {
    use qval_methods::code::{ALLOWED_MODULES, codegen_messages};
    use qval_methods::llm::{Preset, PromptOptions};
    let d = quickstart_data().await;
    let text = |preset, signal| {
        let opts = PromptOptions {
            preset,
            ..Default::default()
        };
        codegen_messages(&d.ctx, signal, &opts)
            .iter()
            .map(|m| m.joined_text())
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    let v2 = text(Preset::V2, Signal::V);
    assert!(
        v2.starts_with("You are an expert at writing state-value functions for reinforcement learning environments.")
    );
    assert!(v2.contains("```python\ndef signal_function(state: str) -> float:\n```"));
    assert!(
        v2.contains("Do NOT use recursive search") && v2.contains("Your goal is to produce an informed approximation")
    );
    let v0 = text(Preset::V0, Signal::Q);
    assert!(!v0.contains("Do NOT use recursive search") && !v0.contains("informed approximation"));
    // The closing names exactly the modules the sandbox lets code import.
    let listed = ALLOWED_MODULES.map(|m| format!("`{m}`"));
    assert!(listed.iter().all(|m| v0.contains(m.as_str())), "{v0}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_may_return_its_value_with_named_components_as_published() {
    require_bubblewrap();
    let d = quickstart_data().await;
    let points = &d.points[..3];
    let with = "def signal_function(state, action, next_state):\n    a = 0.4\n    b = -0.1\n    return a + b, {\"a\": a, \"b\": b}\n";
    let p = run(with, points, &d.ctx, 1000).await;
    assert!(p.iter().all(|p| (p.value - 0.3).abs() < 1e-12), "{p:?}");
    let bad = "def signal_function(state, action, next_state):\n    return 0.5, 3\n";
    let p = run(bad, points, &d.ctx, 1000).await;
    assert!(
        p.iter()
            .all(|p| p.value.is_nan() && p.error.as_deref().unwrap().contains("tuple return must be")),
        "{p:?}"
    );
    // The introspection builtins the published prompt says are missing are missing.
    let introspects = "def signal_function(state, action, next_state):\n    return len(locals()) + len(dir())\n";
    let p = run(introspects, points, &d.ctx, 1000).await;
    assert!(
        p.iter().all(|p| p.error.as_deref().unwrap_or("").contains("NameError")),
        "{p:?}"
    );
}

/// A sample whose request failed in transport gives transient NaN (a rerun asks for it
/// again); one whose reply had no code gives a final NaN.
#[tokio::test]
async fn a_sample_lost_in_transport_is_not_final_and_one_without_code_is() {
    use qval_core::DenseSignalMethod as _;
    use qval_methods::llm::LlmError;
    let d = quickstart_data().await;
    let lost = GeneratedSample::from_reply(0, Err(LlmError::Timeout(std::time::Duration::from_secs(1))));
    let final_ = GeneratedSample::from_reply(
        1,
        Err(LlmError::Status {
            status: 400,
            body: "bad".into(),
            retry_after: None,
        }),
    );
    assert!(lost.transient && !final_.transient);
    let point = d.points[0].clone();
    let ctx = d.ctx.clone();
    let config = SandboxConfig::builder().build().unwrap();
    let lost = CodeSample::new(lost, Signal::Q, config.clone(), "lost");
    let final_ = CodeSample::new(final_, Signal::Q, config, "final");
    let e = lost.evaluate(&point, &ctx).await.unwrap_err();
    assert!(matches!(e, qval_core::CoreError::Transient(_)), "{e}");
    let e = final_.evaluate(&point, &ctx).await.unwrap_err();
    assert!(matches!(e, qval_core::CoreError::Method(_)), "{e}");
    assert!(!qval_core::stage::to_prediction("p", Err(e)).transient);
}
