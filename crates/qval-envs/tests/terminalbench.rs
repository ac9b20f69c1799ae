//! TerminalBench: the shipped tasks, pure steps, containment, episode ends and labels.
//! Needs bubblewrap (`apt-get install bubblewrap`; `.ci/run` installs it).

use qval_core::{Environment, EvaluationPoint, Labeler, MvmcConfig, MvmcLabeler, QRng, Signal, Task};
use qval_envs::terminalbench::{NoisyScripted, OracleSolution, ShellAction, ShellState, TerminalBench};
use rand::SeedableRng;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn env() -> &'static TerminalBench {
    static ENV: OnceLock<TerminalBench> = OnceLock::new();
    ENV.get_or_init(|| {
        // A static is never dropped: keep its store under the target folder, not in a
        // temporary folder that every run would leave behind.
        let store = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("terminalbench-store");
        TerminalBench::builder()
            .command_timeout(Duration::from_secs(5))
            .store_dir(store)
            .build()
            .unwrap_or_else(|e| panic!("{e}\nTerminalBench needs bubblewrap: apt-get install bubblewrap"))
    })
}

fn rng() -> QRng {
    QRng::seed_from_u64(0)
}

fn task(id: &str) -> Task {
    env().tasks().into_iter().find(|t| t.id == id).unwrap()
}

fn run(state: &ShellState, cmd: &str) -> ShellState {
    let out = env().step(state, &env().parse_action(cmd), &mut rng()).unwrap();
    assert!(!out.terminated);
    out.state
}

fn submit(state: &ShellState) -> (f64, ShellState) {
    let out = env().step(state, &ShellAction::Submit, &mut rng()).unwrap();
    assert!(out.terminated);
    (out.reward, out.state)
}

#[test]
fn at_least_twelve_tasks_each_failing_before_and_passing_after_its_solution() {
    let env = env();
    let tasks = env.tasks();
    assert!(tasks.len() >= 12, "{} tasks", tasks.len());
    for t in &tasks {
        let s0 = env.reset(t, &mut rng()).unwrap();
        let (before, end) = submit(&s0);
        assert_eq!(
            before, 0.0,
            "{}: the tests pass before the solution:\n{:?}",
            t.id, end.tests
        );
        let steps = env.solution_steps(&t.id).unwrap().to_vec();
        assert!(!steps.is_empty(), "{}", t.id);
        // The solution whole (the oracle's command).
        let s1 = run(&s0, env.task(&t.id).unwrap().solution.trim_end());
        let (after, end) = submit(&s1);
        assert_eq!(
            after, 1.0,
            "{}: the tests fail after the solution:\n{:?}\n{:?}",
            t.id, s1.last, end.tests
        );
        // Command by command (the noisy collector at epsilon 0), and after each prefix the
        // whole solution again still passes (solutions are idempotent: a correct step keeps Q high).
        let mut s = s0.clone();
        for (k, c) in steps.iter().enumerate() {
            s = run(&s, c);
            assert_eq!(
                s.last.as_ref().unwrap().exit_code,
                Some(0),
                "{} step {k} `{c}`: {:?}",
                t.id,
                s.last
            );
            let again = run(&s, env.task(&t.id).unwrap().solution.trim_end());
            assert_eq!(submit(&again).0, 1.0, "{}: solution after {} steps fails", t.id, k + 1);
        }
        assert_eq!(submit(&s).0, 1.0, "{}: the split solution fails", t.id);
    }
}

#[test]
fn the_shell_keeps_folder_and_exports_but_not_tmp() {
    let s0 = env().reset(&task("hello-file"), &mut rng()).unwrap();
    let s = run(
        &s0,
        "mkdir -p work/deep && cd work/deep && export GREETING='hi there' && echo kept > /tmp/x",
    );
    assert_eq!(s.cwd, "/app/work/deep");
    assert_eq!(s.env.get("GREETING").map(String::as_str), Some("hi there"));
    let s = run(
        &s,
        "pwd; echo \"$GREETING\" | awk '{print $2}'; cat /tmp/x 2>&1 || true",
    );
    let screen = &s.last.as_ref().unwrap().screen;
    assert!(
        screen.starts_with("/app/work/deep\nthere\ncat: /tmp/x: No such file"),
        "{screen}"
    );
    let s = run(&s, "unset GREETING; cd /app; exit 3");
    assert_eq!((s.cwd.as_str(), s.env.get("GREETING")), ("/app", None));
    assert_eq!(s.last.as_ref().unwrap().exit_code, Some(3));
    let obs = env().observe(&s).text;
    assert!(
        obs.contains("$ unset GREETING; cd /app; exit 3\n[exit status 3]\nagent@sandbox:/app$ "),
        "{obs}"
    );
}

#[test]
fn branching_from_a_stored_state_twice_gives_identical_results() {
    let s0 = env().reset(&task("make-archive"), &mut rng()).unwrap();
    let stored: ShellState = serde_json::from_str(&serde_json::to_string(&run(&s0, "cd /app")).unwrap()).unwrap();
    // (Not the new file's mtime: the sandbox's clock is the real one.)
    let cmd = "tar -czf logs.tar.gz logs && ls -ld --time-style=+%s logs && sha256sum logs.tar.gz";
    let a = run(&stored, cmd);
    let b = run(&stored, cmd);
    assert_eq!(a, b);
    assert_ne!(a.tree, stored.tree);
    assert!(a.last.as_ref().unwrap().screen.contains("946684800"), "{:?}", a.last);
}

#[test]
fn listing_the_task_folder_and_the_root_shows_the_same_bytes_at_any_time() {
    let s0 = env().reset(&task("make-archive"), &mut rng()).unwrap();
    // `.` is the restored /app, `..` the sandbox's root, `.qval` its control folder: none
    // may show when the step ran.
    let cmd = "ls -la --time-style=+%s /app / | grep -v -e ' dev$' -e ' proc$' -e ' tmp$' -e ' usr$'";
    let a = run(&s0, cmd);
    std::thread::sleep(Duration::from_millis(1100));
    let b = run(&s0, cmd);
    let screen = &a.last.as_ref().unwrap().screen;
    assert_eq!(a, b, "the listing changed between runs:\n{screen}\n---\n{:?}", b.last);
    for name in [" .\n", " ..\n", " .qval\n", " app\n"] {
        let line = screen
            .lines()
            .find(|l| format!(" {}\n", l.rsplit(' ').next().unwrap_or_default()) == name)
            .unwrap_or_else(|| panic!("no `{}` in:\n{screen}", name.trim()));
        assert!(line.contains(" 946684800 "), "{line}\n{screen}");
    }
}

#[test]
fn identical_files_are_stored_once() {
    let e = TerminalBench::builder().only(["hello-file"]).build().unwrap();
    let s0 = e.reset(&e.tasks()[0], &mut rng()).unwrap();
    let (n0, _) = e.store().disk_usage();
    let big = "head -c 200000 /dev/zero | tr '\\0' a > big.txt";
    let s1 = e.step(&s0, &e.parse_action(big), &mut rng()).unwrap().state;
    let (n1, b1) = e.store().disk_usage();
    // The new body and the new tree.
    assert_eq!(n1, n0 + 2);
    let s2 = e
        .step(
            &s1,
            &e.parse_action("cp big.txt copy.txt && cp big.txt copy2.txt"),
            &mut rng(),
        )
        .unwrap()
        .state;
    let (n2, b2) = e.store().disk_usage();
    assert_eq!(n2, n1 + 1, "only a new tree");
    assert!(b2 - b1 < 1000, "{b1} -> {b2}");
    assert_eq!(e.store().tree(&s2.tree).unwrap().len(), 4);
}

#[test]
fn time_limit_and_output_cap() {
    let e = TerminalBench::builder()
        .only(["hello-file"])
        .command_timeout(Duration::from_millis(700))
        .screen_cap(1000)
        .build()
        .unwrap();
    let s0 = e.reset(&e.tasks()[0], &mut rng()).unwrap();
    let t = Instant::now();
    let s = e
        .step(&s0, &e.parse_action("echo start; sleep 30"), &mut rng())
        .unwrap()
        .state;
    assert!(t.elapsed() < Duration::from_secs(5));
    let last = s.last.unwrap();
    assert!(last.timed_out && last.exit_code.is_none());
    assert!(
        last.screen.starts_with("start\n") && last.screen.contains("killed after 1 s"),
        "{}",
        last.screen
    );
    let s = e.step(&s0, &e.parse_action("seq 1 100000"), &mut rng()).unwrap().state;
    let screen = s.last.unwrap().screen;
    assert!(
        screen.starts_with("1\n2\n3\n") && screen.ends_with("99999\n100000\n"),
        "{screen}"
    );
    assert!(
        screen.contains("bytes of output omitted") && screen.len() < 1100,
        "{}",
        screen.len()
    );
}

#[test]
fn commands_cannot_touch_the_host() {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let marker = format!("qval-escape-{}", std::process::id());
    let outside = std::env::temp_dir().join(&marker);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let s0 = env().reset(&task("hello-file"), &mut rng()).unwrap();
    // (command, whether it must fail inside the sandbox): writing to the sandbox's own
    // /tmp or starting a background job succeeds there, but must leave nothing on the host.
    let attempts = [
        (format!("echo x > /etc/{marker}"), true),
        (format!("echo x > ~/../{marker}"), true),
        (format!("echo x > {home}/{marker}"), true),
        (format!("echo x > /app/../{marker}"), true),
        (format!("mkdir -p /usr/{marker}"), true),
        (format!("mkdir -p /opt/{marker}"), true),
        (format!("echo x > {}", outside.display()), false),
        (format!("echo hi > /dev/tcp/127.0.0.1/{port}"), true),
        (
            format!("python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 1)\""),
            true,
        ),
        (
            "python3 -c \"import urllib.request; urllib.request.urlopen('http://example.com', timeout=1)\"".to_string(),
            true,
        ),
        (
            format!(
                "(exec -a {marker} sleep 300) & disown; nohup bash -c 'exec -a {marker} sleep 301' >/dev/null 2>&1 &"
            ),
            false,
        ),
    ];
    for (cmd, must_fail) in &attempts {
        let s = run(&s0, cmd);
        let last = s.last.unwrap();
        if *must_fail {
            assert_ne!(last.exit_code, Some(0), "`{cmd}` succeeded:\n{}", last.screen);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    for p in [
        format!("/etc/{marker}"),
        format!("{home}/{marker}"),
        format!("/{marker}"),
        format!("/tmp/{marker}"),
        format!("/usr/{marker}"),
        format!("/opt/{marker}"),
        outside.display().to_string(),
    ] {
        assert!(!std::path::Path::new(&p).exists(), "{p} was written on the host");
    }
    assert!(listener.accept().is_err(), "a connection reached the host");
    // No process named after the marker is left anywhere.
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            assert!(
                !String::from_utf8_lossy(&cmdline).contains(&marker),
                "a background process survived: pid {:?}",
                entry.file_name()
            );
        }
    }
}

#[test]
fn the_last_allowed_step_runs_the_tests() {
    let e = TerminalBench::builder()
        .only(["hello-file"])
        .max_steps(3)
        .build()
        .unwrap();
    let s0 = e.reset(&e.tasks()[0], &mut rng()).unwrap();
    let s1 = e.step(&s0, &e.parse_action("ls"), &mut rng()).unwrap();
    let s2 = e.step(&s1.state, &e.parse_action("cd /app"), &mut rng()).unwrap();
    assert!(!s2.terminated);
    let s3 = e
        .step(
            &s2.state,
            &e.parse_action("echo 'Hello, world!' > hello.txt"),
            &mut rng(),
        )
        .unwrap();
    assert!(s3.terminated);
    assert_eq!(s3.reward, 1.0);
    assert!(e.observe(&s3.state).text.ends_with("[submitted: the tests passed]\n"));
    let err = e
        .step(&s3.state, &e.parse_action("ls"), &mut rng())
        .unwrap_err()
        .to_string();
    assert!(err.contains("the episode has ended"), "{err}");
}

fn point(state: &ShellState, action: &str, index: usize, n: usize) -> EvaluationPoint {
    let e = env();
    let action = e.parse_action(action);
    EvaluationPoint::from_step(e, &task(&state.task), n, index, state, &action, &mut rng()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_labels_keep_correct_commands_high_and_destructive_ones_at_zero() {
    let e = env();
    let s0 = e.reset(&task("count-errors"), &mut rng()).unwrap();
    let s1 = run(&s0, "cd /app");
    let points = vec![
        point(&s1, "grep -c ERROR logs/app.log > error_count.txt", 1, 0),
        point(&s1, "ls -la", 1, 1),
        point(&s1, "rm -f logs/app.log", 1, 2),
        point(&s1, ": > logs/app.log", 1, 3),
        point(&s1, "SUBMIT", 1, 4),
    ];
    let labeler = MvmcLabeler::new(
        Arc::new(
            TerminalBench::builder()
                .only(["count-errors"])
                .store_dir(e.store().dir())
                .build()
                .unwrap(),
        ),
        Arc::new(OracleSolution),
        MvmcConfig::builder().rollouts(2).build().unwrap(),
    );
    assert_eq!(labeler.signal(), Signal::Q);
    let labels = labeler.label_batch(&points).await;
    let values: Vec<f64> = labels.iter().map(|l| l.value).collect();
    let g = 0.95f64;
    // Correct or harmless: the oracle then runs the solution and submits: gamma^2.
    assert_eq!(values, vec![g * g, g * g, 0.0, 0.0, 0.0], "{labels:?}");
    let again = labeler.label_batch(&points).await;
    assert_eq!(
        serde_json::to_string(&labels).unwrap(),
        serde_json::to_string(&again).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_noisy_collector_is_seeded_and_mixes_successes_and_failures() {
    let e = env();
    let policy = NoisyScripted::new(0.3).unwrap();
    let config = qval_core::CollectConfig::new(2 * e.tasks().len(), 7, 16).unwrap();
    let opts = qval_core::StageOptions::default();
    let a = qval_core::collect(e, &policy, &e.tasks(), &config, &opts)
        .await
        .unwrap();
    let b = qval_core::collect(e, &policy, &e.tasks(), &config, &opts)
        .await
        .unwrap();
    assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
    let wins = a.iter().filter(|t| e.succeeded(t)).count();
    assert!(wins > a.len() / 5 && wins < a.len(), "{wins} of {}", a.len());
    // Success is the tests' verdict, which pays 1.0: the default rule agrees.
    for t in &a {
        assert_eq!(e.succeeded(t), t.succeeded(), "trajectory {}", t.index);
    }
}

#[test]
fn odd_trees_survive_a_snapshot_and_restore() {
    let s0 = env().reset(&task("hello-file"), &mut rng()).unwrap();
    let make =
        "mkdir -p locked/inner && echo secret > locked/inner/f && chmod 000 locked/inner/f && chmod 500 locked/inner \
                && chmod 000 locked && mkfifo pipe && ln -s loop loop && ln -s /etc/passwd abs && touch 'new
line' && printf 'x' > 'sp ace' && chmod 4755 'sp ace'";
    let s1 = run(&s0, make);
    assert_eq!(s1.last.as_ref().unwrap().exit_code, Some(0), "{:?}", s1.last);
    let s2 = run(
        &s1,
        "chmod 700 locked locked/inner && stat -c '%a %n' locked locked/inner locked/inner/f 'sp ace' && chmod 600 locked/inner/f \
         && cat locked/inner/f && readlink loop abs && ls -b && test ! -e pipe && echo no-fifo",
    );
    let last = s2.last.unwrap();
    assert_eq!(last.exit_code, Some(0), "{}", last.screen);
    assert_eq!(
        last.screen,
        "700 locked\n700 locked/inner\n0 locked/inner/f\n4755 sp ace\nsecret\nloop\n/etc/passwd\nREADME.txt\nabs\nlocked\nloop\nnew\\nline\nsp\\ ace\nno-fifo\n"
    );
}

/// A command filling `/dev/shm`, `/dev` and `/tmp` with 8 MiB files stops at the sandbox's
/// sizes (16 MiB, read-only, 64 MiB): the host's shared memory does not grow with it.
#[test]
fn commands_cannot_fill_shared_memory_dev_or_tmp() {
    let s0 = env().reset(&task("hello-file"), &mut rng()).unwrap();
    let fill = r#"for d in /dev/shm /dev /tmp; do i=0; while [ $i -lt 12 ]; do head -c 8388608 /dev/zero > $d/f$i 2>/dev/null || break; i=$((i+1)); done; echo "$d $i"; done"#;
    let s = run(&s0, fill);
    let screen = &s.last.as_ref().unwrap().screen;
    let files = |dir: &str| -> usize {
        screen
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{dir} ")))
            .unwrap_or_else(|| panic!("no line for {dir}: {screen}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(files("/dev/shm") <= 2, "{screen}");
    assert_eq!(files("/dev"), 0, "{screen}");
    assert!(files("/tmp") <= 8, "{screen}");
}

/// A command filling `/app` (a host folder, which bubblewrap cannot size) with 8 MiB files
/// is killed by the watchdog long before its time limit, and the host's free space on the
/// work folder's file system never drops by much more than the limit.
#[test]
fn a_command_filling_app_is_stopped_and_the_host_keeps_its_space() {
    let s0 = env().reset(&task("hello-file"), &mut rng()).unwrap();
    fn free() -> Vec<u64> {
        [std::path::PathBuf::from("/dev/shm"), std::env::temp_dir()]
            .iter()
            .map(|r| qval_sandbox::free_bytes(r).unwrap_or(0))
            .collect()
    }
    let roots = ["/dev/shm".to_string(), std::env::temp_dir().display().to_string()];
    let before = free();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut least = free();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (l, f) in least.iter_mut().zip(free()) {
                    *l = (*l).min(f);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            least
        })
    };
    let t = Instant::now();
    let fill = "i=0; while [ $i -lt 400 ]; do head -c 8388608 /dev/zero > /app/f$i || break; i=$((i+1)); done";
    let out = env().step(&s0, &env().parse_action(fill), &mut rng());
    let took = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let least = sampler.join().unwrap();
    match &out {
        Ok(o) => {
            let screen = &o.state.last.as_ref().unwrap().screen;
            assert!(screen.contains("grew past"), "{screen}");
        }
        Err(e) => assert!(e.to_string().contains("more than"), "{e}"),
    }
    assert!(
        took < Duration::from_secs(4),
        "{took:?}: not stopped before its 5 s limit"
    );
    for ((b, l), r) in before.iter().zip(&least).zip(&roots) {
        let drop = b.saturating_sub(*l);
        assert!(drop < 600 << 20, "{}: free space dropped by {} MiB", r, drop >> 20);
    }
}

/// The older Terminal-Bench layout is still read: three tasks kept in it
/// (`tests/fixtures/terminal-bench-layout`: a `run-tests.sh`, and `tests/` run by qval's
/// runner) behave as their shipped Harbor rewrites do, screen for screen and reward for reward.
#[test]
fn the_terminal_bench_layout_and_its_harbor_rewrite_agree() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terminal-bench-layout");
    let old = TerminalBench::builder()
        .tasks_dir(&fixtures)
        .command_timeout(Duration::from_secs(5))
        .store_dir(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("terminal-bench-layout-store"))
        .build()
        .unwrap();
    let ids: Vec<String> = old.tasks().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["csv-sum", "greet-script", "hello-file"]);
    for id in &ids {
        let (a, b) = (old.task(id).unwrap(), env().task(id).unwrap());
        assert!(a.environment.is_none() && b.environment.is_some(), "{id}: the layouts");
        assert_eq!((&a.instruction, &a.solution), (&b.instruction, &b.solution), "{id}");
        let t = old.tasks().into_iter().find(|t| &t.id == id).unwrap();
        let s_old = old.reset(&t, &mut rng()).unwrap();
        let s_new = env().reset(&task(id), &mut rng()).unwrap();
        assert_eq!(s_old.tree, s_new.tree, "{id}: the starting files");
        let step = |e: &TerminalBench, s: &ShellState, a: &ShellAction| e.step(s, a, &mut rng()).unwrap();
        for cmds in [vec!["ls -la"], vec!["ls -la", a.solution.trim_end()]] {
            let (mut x, mut y) = (s_old.clone(), s_new.clone());
            for c in &cmds {
                x = step(&old, &x, &old.parse_action(c)).state;
                y = step(env(), &y, &env().parse_action(c)).state;
                assert_eq!(x.last, y.last, "{id}: `{c}`");
            }
            let (ex, ey) = (
                step(&old, &x, &ShellAction::Submit),
                step(env(), &y, &ShellAction::Submit),
            );
            assert_eq!(ex.reward, ey.reward, "{id} after {cmds:?}");
            assert_eq!(
                ex.reward,
                if cmds.len() == 2 { 1.0 } else { 0.0 },
                "{id} after {cmds:?}"
            );
            // The Harbor verifier wrote its reward; the old layout's came from the exit status.
            assert_eq!(ey.state.tests.as_ref().unwrap().reward, Some(ex.reward), "{id}");
            assert_eq!(ex.state.tests.as_ref().unwrap().reward, None, "{id}");
        }
    }
}

/// A task's starting files are the same tree whatever umask its checkout was made with
/// (git keeps only whether a file is executable): copies made group-writable, as a
/// checkout under umask 002 is, in either layout, start from the shipped task's tree.
#[test]
fn starting_files_do_not_depend_on_the_checkouts_umask() {
    let root = tempfile::tempdir().unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terminal-bench-layout");
    for (from, folder) in [(TerminalBench::shipped_tasks_dir(), "harbor"), (fixtures, "old")] {
        let to = root.path().join(folder);
        std::fs::create_dir(&to).unwrap();
        let copy = std::process::Command::new("cp")
            .arg("-a")
            .arg(from.join("greet-script"))
            .arg(&to)
            .status()
            .unwrap();
        let chmod = std::process::Command::new("chmod")
            .args(["-R", "g+w"])
            .arg(&to)
            .status()
            .unwrap();
        assert!(copy.success() && chmod.success());
        let copied = TerminalBench::builder()
            .tasks_dir(&to)
            .store_dir(root.path().join(format!("{folder}-store")))
            .build()
            .unwrap();
        let t = copied.tasks().into_iter().next().unwrap();
        let s = copied.reset(&t, &mut rng()).unwrap();
        let shipped = env().reset(&task("greet-script"), &mut rng()).unwrap();
        assert_eq!(s.tree, shipped.tree, "{folder}");
    }
}
