//! TerminalBench in real containers (podman and docker): Harbor tasks built from their
//! Dockerfiles, states as snapshots of the writable layer, hidden tests, containment from
//! inside, and the same rewards and labels as bubblewrap where both run.
//! Needs root, podman, runc, a running dockerd and qval's base image in both:
//! `bash scripts/test.sh` installs and starts them (`apt-get install podman runc debootstrap
//! dpkg-dev docker.io && bash scripts/base_image.sh && bash scripts/docker_local.sh`).

use qval_core::{Environment, EvaluationPoint, Labeler, MvmcConfig, MvmcLabeler, QRng, Task};
use qval_envs::terminalbench::{
    EngineKind, OracleSolution, Restore, RuntimeChoice, ShellAction, ShellState, TerminalBench,
};
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const NEEDS: &str = "these tests need root, podman, runc and qval's base image: \
                     apt-get install podman runc debootstrap dpkg-dev && bash scripts/base_image.sh \
                     (scripts/test.sh does both)";

const NEEDS_DOCKER: &str = "these tests need root, a running dockerd and qval's base image in it: \
                            apt-get install docker.io && bash scripts/base_image.sh && bash scripts/docker_local.sh \
                            (scripts/test.sh does all three)";

fn harbor_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks").join("harbor")
}

fn store(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn build(tasks: &Path, runtime: RuntimeChoice, only: &[&str], store_name: &str) -> TerminalBench {
    build_on(None, tasks, runtime, only, store_name)
}

/// [`build`] on `engine` (default: the first that answers, podman here).
fn build_on(
    engine: Option<EngineKind>,
    tasks: &Path,
    runtime: RuntimeChoice,
    only: &[&str],
    store_name: &str,
) -> TerminalBench {
    let mut b = TerminalBench::builder()
        .tasks_dir(tasks)
        .runtime(runtime)
        .command_timeout(Duration::from_secs(5))
        .store_dir(store(store_name));
    if !only.is_empty() {
        b = b.only(only.iter().copied());
    }
    if let Some(e) = engine {
        b = b.engine(e);
    }
    let needs = if engine == Some(EngineKind::Docker) {
        NEEDS_DOCKER
    } else {
        NEEDS
    };
    b.build().unwrap_or_else(|e| panic!("{e}\n{needs}"))
}

/// The Harbor tasks, all in containers.
fn harbor() -> &'static TerminalBench {
    static ENV: OnceLock<TerminalBench> = OnceLock::new();
    ENV.get_or_init(|| build(&harbor_dir(), RuntimeChoice::Container, &[], "harbor-store"))
}

/// The Harbor tasks, all in docker containers.
fn docker_harbor() -> &'static TerminalBench {
    static ENV: OnceLock<TerminalBench> = OnceLock::new();
    ENV.get_or_init(|| {
        build_on(
            Some(EngineKind::Docker),
            &harbor_dir(),
            RuntimeChoice::Container,
            &[],
            "docker-harbor-store",
        )
    })
}

fn rng() -> QRng {
    QRng::seed_from_u64(0)
}

fn task(env: &TerminalBench, id: &str) -> Task {
    env.tasks().into_iter().find(|t| t.id == id).unwrap()
}

fn run(env: &TerminalBench, state: &ShellState, cmd: &str) -> ShellState {
    let out = env.step(state, &env.parse_action(cmd), &mut rng()).unwrap();
    assert!(!out.terminated);
    out.state
}

fn submit(env: &TerminalBench, state: &ShellState) -> f64 {
    let out = env.step(state, &ShellAction::Submit, &mut rng()).unwrap();
    assert!(out.terminated);
    out.reward
}

fn screen(s: &ShellState) -> &str {
    &s.last.as_ref().unwrap().screen
}

fn solved(env: &TerminalBench, id: &str) -> ShellState {
    let mut s = env.reset(&task(env, id), &mut rng()).unwrap();
    for cmd in env.solution_steps(id).unwrap().to_vec() {
        s = run(env, &s, &cmd);
    }
    s
}

#[test]
fn every_harbor_task_scores_its_full_reward_with_its_oracle_and_not_without() {
    harbor_tasks_score(harbor());
}

#[test]
fn on_docker_every_harbor_task_scores_its_full_reward_with_its_oracle_and_not_without() {
    harbor_tasks_score(docker_harbor());
}

fn harbor_tasks_score(env: &TerminalBench) {
    let ids: Vec<String> = env.tasks().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["score-stats", "sort-names", "tree-listing", "unix-endings"]);
    assert!(env.unrunnable().is_empty(), "{:?}", env.unrunnable());
    for id in &ids {
        assert!(env.image(id).unwrap().starts_with("localhost/qval-task-"), "{id}");
        let s0 = env.reset(&task(env, id), &mut rng()).unwrap();
        assert_eq!(submit(env, &s0), 0.0, "{id}: submitting at once");
        assert_eq!(submit(env, &solved(env, id)), 1.0, "{id}: its oracle solution");
    }
    // Rewards need not be binary: one of the two numbers right is half the reward.
    let s0 = env.reset(&task(env, "score-stats"), &mut rng()).unwrap();
    let s1 = run(env, &s0, "datamash --header-in sum 2 < scores.tsv > sum.txt");
    assert_eq!(submit(env, &s1), 0.5);
    // The package the Dockerfile installed is there, and not on the host.
    let t0 = env.reset(&task(env, "tree-listing"), &mut rng()).unwrap();
    assert!(screen(&run(env, &t0, "tree --version")).starts_with("tree v"));
    assert!(
        !Path::new("/usr/bin/tree").exists(),
        "the host has tree: pick another package"
    );
}

/// qval's 17 own tasks, Harbor folders whose Dockerfiles copy their files onto the base
/// image: built and run in containers, each oracle passes and submitting at once fails.
#[test]
fn every_shipped_task_scores_its_full_reward_in_a_container_with_its_oracle_and_not_without() {
    let env = build(
        &TerminalBench::shipped_tasks_dir(),
        RuntimeChoice::Container,
        &[],
        "shipped-podman",
    );
    let ids: Vec<String> = env.tasks().into_iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), 17, "{ids:?}");
    assert!(env.unrunnable().is_empty(), "{:?}", env.unrunnable());
    for id in &ids {
        assert!(env.image(id).unwrap().starts_with("localhost/qval-task-"), "{id}");
        let s0 = env.reset(&task(&env, id), &mut rng()).unwrap();
        assert_eq!(submit(&env, &s0), 0.0, "{id}: submitting at once");
        let whole = env.task(id).unwrap().solution.trim_end().to_string();
        assert_eq!(submit(&env, &run(&env, &s0, &whole)), 1.0, "{id}: its oracle solution");
    }
}

#[test]
fn a_restored_state_continues_as_the_live_container_does() {
    restored_continues(harbor());
}

/// docker's containers give the same states as podman's: the same screens, the same
/// snapshots of the writable layer (tree hashes), folders and variables.
#[test]
fn on_docker_a_restored_state_continues_as_the_live_container_does_and_as_on_podman() {
    assert_eq!(restored_continues(docker_harbor()), restored_continues(harbor()));
}

/// The states a restore test goes through.
fn restored_continues(env: &TerminalBench) -> Vec<ShellState> {
    let s0 = env.reset(&task(env, "sort-names"), &mut rng()).unwrap();
    let c1 = "echo kept > /root/note && rm /app/names.txt && mkdir -p /srv/x && ln -s /srv/x /app/link";
    let c2 = "cat /root/note; ls /app; ls -l /app/link | cut -c1; cat /app/names.txt";
    let s1 = run(env, &s0, c1);
    let a = run(env, &s1, c2);
    let b = run(env, &s1, c2);
    assert_eq!(a, b, "the same step from the same stored state");
    assert_eq!(
        screen(&a),
        "kept\nlink\nl\ncat: /app/names.txt: No such file or directory\n"
    );
    // Listings show the same bytes at any time (not of `/` itself: the engine mounts /dev,
    // /proc, /sys and /run when the container starts, and /proc counts the host's processes).
    let listing = "ls -la /app /root /srv";
    let first = run(env, &s1, listing);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(screen(&first), screen(&run(env, &s1, listing)));
    assert!(
        !screen(&first).contains("2026"),
        "a wall-clock time in {}",
        screen(&first)
    );
    // One container running both commands leaves the same files as a restore between them.
    let live = run(env, &s0, &format!("{c1}\n{c2}"));
    assert_eq!(live.tree, a.tree);
    // A removal of an image file is part of the state (a whiteout), not lost on restore.
    let entries = env.store().tree(&s1.tree).unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.path == "app/names.txt" && e.kind == qval_envs::terminalbench::store::EntryKind::Removed)
    );
    // The image's files and its start folder list no build time either.
    let fresh = run(env, &s0, "ls -la /app");
    assert!(!screen(&fresh).contains("2026"), "a build time in {}", screen(&fresh));
    vec![s1, a, first, live, fresh]
}

#[test]
fn the_tests_folder_is_not_visible_to_the_agent() {
    let env = harbor();
    let s0 = env.reset(&task(env, "sort-names"), &mut rng()).unwrap();
    let s1 = run(
        env,
        &s0,
        "ls /tests /logs/verifier; find / -name test.sh -not -path '/proc/*' 2>/dev/null | wc -l",
    );
    assert!(
        screen(&s1).contains("ls: cannot access '/tests': No such file or directory"),
        "{}",
        screen(&s1)
    );
    assert!(screen(&s1).ends_with("0\n"), "{}", screen(&s1));
}

#[test]
fn escapes_from_inside_leave_the_host_untouched_and_end_the_step_with_a_reason() {
    escapes(harbor());
}

#[test]
fn on_docker_escapes_from_inside_leave_the_host_untouched_and_end_the_step_with_a_reason() {
    escapes(docker_harbor());
}

fn escapes(env: &TerminalBench) {
    let marker = std::env::temp_dir().join(format!("qval-host-marker-{}", std::process::id()));
    std::fs::write(&marker, "host secret").unwrap();
    let s0 = env.reset(&task(env, "sort-names"), &mut rng()).unwrap();
    // Host files are not there; writes land in the container's layer only.
    let m = marker.display();
    let s = run(
        env,
        &s0,
        &format!("cat {m}; echo owned > {m}; echo owned > /qval-escape-probe; echo $?"),
    );
    assert!(screen(&s).contains("No such file or directory"), "{}", screen(&s));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "host secret");
    assert!(!Path::new("/qval-escape-probe").exists());
    // No network.
    let s = run(
        env,
        &s0,
        "python3 -c \"import socket; socket.create_connection(('10.0.2.2', 80), 2)\" 2>&1 | tail -1",
    );
    assert!(
        screen(&s).contains("Network is unreachable") || screen(&s).contains("OSError"),
        "{}",
        screen(&s)
    );
    // A fork bomb costs its time limit, then the step ends with the reason.
    let s = run(env, &s0, "bomb() { bomb | bomb & }; bomb; sleep 30");
    let last = s.last.as_ref().unwrap();
    assert!(last.timed_out && last.screen.contains("killed after 5 s"), "{last:?}");
    // Filling the disk is stopped at the storage limit.
    // (killed by the watchdog, or the layer refused as a state: either way with the reason).
    let fill = env.parse_action("dd if=/dev/zero of=/app/big bs=1M count=4000 status=none; echo done");
    match env.step(&s0, &fill, &mut rng()) {
        Ok(o) => assert!(screen(&o.state).contains("grew past"), "{}", screen(&o.state)),
        Err(e) => assert!(e.to_string().contains("more than 67108864 bytes"), "{e}"),
    }
    // Memory beyond the task's 512 MB is refused.
    let s = run(env, &s0, "python3 -c \"b = bytearray(1536 << 20)\"; echo status $?");
    assert!(!screen(&s).contains("status 0"), "{}", screen(&s));
    std::fs::remove_file(&marker).unwrap();
}

fn point(env: &TerminalBench, state: &ShellState, action: &str, index: usize) -> EvaluationPoint {
    let action = env.parse_action(action);
    EvaluationPoint::from_step(env, &task(env, &state.task), 0, index, state, &action, &mut rng()).unwrap()
}

/// Shipped tasks in both runtimes (bubblewrap from their copied files, podman and docker
/// from their Dockerfiles): their rewards and their MVMC labels (oracle reference) agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mvmc_labels_in_containers_equal_those_in_bubblewrap() {
    let shipped = TerminalBench::shipped_tasks_dir();
    let ids = ["csv-sum", "permissions", "symlink-release"];
    let mut all = Vec::new();
    for (runtime, engine, name) in [
        (RuntimeChoice::Bubblewrap, None, "tb-bwrap"),
        (RuntimeChoice::Container, Some(EngineKind::Podman), "tb-podman"),
        (RuntimeChoice::Container, Some(EngineKind::Docker), "tb-docker"),
    ] {
        let env = Arc::new(build_on(engine, &shipped, runtime.clone(), &ids, name));
        let mut points = Vec::new();
        for id in ids {
            let s0 = env.reset(&task(&env, id), &mut rng()).unwrap();
            let first = env.solution_steps(id).unwrap()[0].clone();
            for (i, a) in [first.as_str(), "ls -la", "rm -rf /app/*", "SUBMIT"]
                .into_iter()
                .enumerate()
            {
                points.push(point(&env, &s0, a, i));
            }
            assert_eq!(submit(&env, &solved(&env, id)), 1.0, "{id} in {runtime:?}");
        }
        let labeler = MvmcLabeler::new(
            env.clone(),
            Arc::new(OracleSolution),
            MvmcConfig::builder().rollouts(1).concurrency(2).build().unwrap(),
        );
        let values: Vec<f64> = labeler.label_batch(&points).await.iter().map(|l| l.value).collect();
        assert!(values.iter().any(|v| *v > 0.0) && values.contains(&0.0), "{values:?}");
        all.push(values);
    }
    assert_eq!(all[0], all[1], "bubblewrap against podman");
    assert_eq!(all[0], all[2], "bubblewrap against docker");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

#[test]
fn a_task_whose_image_does_not_build_is_listed_and_left_out_up_to_the_threshold() {
    let root = tempfile::tempdir().unwrap();
    copy_dir(&harbor_dir().join("sort-names"), &root.path().join("good"));
    copy_dir(&harbor_dir().join("sort-names"), &root.path().join("broken"));
    let dockerfile = root.path().join("broken/environment/Dockerfile");
    let mut text = std::fs::read_to_string(&dockerfile).unwrap();
    text.push_str("RUN apt-get install -y -qq no-such-package-qval\n");
    std::fs::write(&dockerfile, text).unwrap();
    let env = build(root.path(), RuntimeChoice::Container, &[], "threshold-store");
    let ids: Vec<String> = env.tasks().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["good"]);
    let (id, why) = &env.unrunnable()[0];
    assert_eq!(id, "broken");
    assert!(
        why.contains("the build failed at STEP") && why.contains("RUN apt-get install -y -qq no-such-package-qval"),
        "{why}"
    );
    assert!(why.contains(".log)"), "the log is named: {why}");
    let err = TerminalBench::builder()
        .tasks_dir(root.path())
        .runtime(RuntimeChoice::Container)
        .max_unrunnable(0.0)
        .store_dir(store("threshold-store"))
        .build()
        .err()
        .expect("over the threshold");
    assert!(
        err.to_string()
            .contains("1 of 2 tasks cannot run here, more than max_unrunnable = 0: broken: "),
        "{err}"
    );
}

#[test]
fn auto_runs_copy_only_harbor_tasks_in_bubblewrap_and_the_others_in_containers() {
    let env = build(&harbor_dir(), RuntimeChoice::Auto, &[], "harbor-auto-store");
    assert_eq!(
        env.image("sort-names"),
        None,
        "a Dockerfile that only copies runs in bubblewrap"
    );
    for id in ["score-stats", "tree-listing", "unix-endings"] {
        assert!(env.image(id).is_some(), "{id} installs a package: a container");
    }
    // The Harbor verifier runs in bubblewrap too: its reward file is read.
    assert_eq!(env.starting_files("sort-names").unwrap(), ["names.txt"]);
    let s0 = env.reset(&task(&env, "sort-names"), &mut rng()).unwrap();
    assert_eq!(submit(&env, &s0), 0.0);
    assert_eq!(submit(&env, &solved(&env, "sort-names")), 1.0);
    let out = env
        .step(&solved(&env, "sort-names"), &ShellAction::Submit, &mut rng())
        .unwrap();
    assert_eq!(out.state.tests.unwrap().reward, Some(1.0));
}

#[test]
fn with_the_tmux_shell_commands_see_a_terminal_and_the_oracles_still_pass() {
    let env = TerminalBench::builder()
        .tasks_dir(harbor_dir())
        .runtime(RuntimeChoice::Container)
        .shell(qval_envs::terminalbench::Shell::Tmux)
        .only(["sort-names", "score-stats"])
        .command_timeout(Duration::from_secs(5))
        .store_dir(store("harbor-tmux-store"))
        .build()
        .unwrap_or_else(|e| panic!("{e}\n{NEEDS}"));
    let s0 = env.reset(&task(&env, "sort-names"), &mut rng()).unwrap();
    let s1 = run(
        &env,
        &s0,
        "[ -t 1 ] && echo terminal || echo pipe; cd /tmp; export SEEN=1; false",
    );
    assert_eq!(screen(&s1), "terminal\n");
    let last = s1.last.as_ref().unwrap();
    assert_eq!(last.exit_code, Some(1));
    assert_eq!(
        (s1.cwd.as_str(), s1.env.get("SEEN").map(String::as_str)),
        ("/tmp", Some("1"))
    );
    assert!(
        !s1.env.contains_key("TMUX") && s1.env.get("TERM") == s0.env.get("TERM"),
        "{:?}",
        s1.env
    );
    // The exec shell of the same image writes to a pipe.
    assert_eq!(
        screen(&run(harbor(), &s0, "[ -t 1 ] && echo terminal || echo pipe")),
        "pipe\n"
    );
    for id in ["sort-names", "score-stats"] {
        assert_eq!(submit(&env, &solved(&env, id)), 1.0, "{id} under tmux");
    }
}

#[test]
fn links_planted_for_the_verifier_do_not_reach_the_host_or_fake_a_pass() {
    let env = harbor();
    let s0 = env.reset(&task(env, "sort-names"), &mut rng()).unwrap();
    let probe = std::env::temp_dir().join(format!("qval-tests-probe-{}", std::process::id()));
    std::fs::create_dir_all(&probe).unwrap();
    // /tests as a link to a host-looking folder, then a fake passing verifier inside /tests.
    let s1 = run(env, &s0, &format!("ln -s {} /tests", probe.display()));
    assert_eq!(submit(env, &s1), 0.0);
    assert_eq!(
        std::fs::read_dir(&probe).unwrap().count(),
        0,
        "nothing written through the link"
    );
    let s2 = run(
        env,
        &s0,
        "mkdir -p /tests && printf 'echo 1 > /logs/verifier/reward.txt\\n' > /tests/test.sh",
    );
    assert_eq!(submit(env, &s2), 0.0, "the task's own verifier runs");
    // A link at the reward file is not read.
    let s3 = run(
        env,
        &s0,
        "mkdir -p /logs/verifier && ln -s /etc/hostname /logs/verifier/reward.txt",
    );
    assert_eq!(submit(env, &s3), 0.0);
    std::fs::remove_dir_all(&probe).unwrap();
}

/// `restore = replay`, for state outside the files: a server started by one command still
/// answers the next command and the verifier, which a snapshot restore cannot give; the
/// shell's folder and variables carry over as in a snapshot step; a replayed step is as
/// repeatable as a snapshot one; the step's own command keeps its time limit.
#[test]
fn replaying_the_history_keeps_a_server_running_for_the_next_command_and_the_verifier() {
    let err = TerminalBench::builder().restore(Restore::Replay).build().err().unwrap();
    assert!(err.to_string().contains("runtime = \"container\""), "{err}");
    let root = tempfile::tempdir().unwrap();
    copy_dir(&harbor_dir().join("sort-names"), &root.path().join("service"));
    let fetch = "python3 -c 'import urllib.request as u; print(u.urlopen(\"http://127.0.0.1:8123/names.txt\").read().decode())'";
    std::fs::write(
        root.path().join("service/tests/test.sh"),
        format!(
            "mkdir -p /logs/verifier\necho 0 > /logs/verifier/reward.txt\n\
             for i in $(seq 50); do {fetch} && echo 1 > /logs/verifier/reward.txt && break; sleep 0.1; done\n"
        ),
    )
    .unwrap();
    let env_with = |restore: Restore, name: &str| {
        TerminalBench::builder()
            .tasks_dir(root.path())
            .runtime(RuntimeChoice::Container)
            .restore(restore)
            .command_timeout(Duration::from_secs(5))
            .store_dir(store(name))
            .build()
            .unwrap_or_else(|e| panic!("{e}\n{NEEDS}"))
    };
    let (replay, snapshot) = (
        env_with(Restore::Replay, "replay"),
        env_with(Restore::Snapshot, "no-replay"),
    );
    let start = "mkdir -p /srv && cd /srv && export GREETING=hi && \
                 (python3 -m http.server 8123 --bind 127.0.0.1 --directory /app >/dev/null 2>&1 &)";
    let ask = format!("for i in $(seq 15); do {fetch} 2>/dev/null && break; sleep 0.1; done; echo \"$GREETING $PWD\"");
    let mut screens = Vec::new();
    for env in [&replay, &snapshot] {
        let s0 = env.reset(&task(env, "service"), &mut rng()).unwrap();
        let s1 = run(env, &s0, start);
        let (a, b) = (run(env, &s1, &ask), run(env, &s1, &ask));
        assert_eq!(a, b, "the same step twice");
        screens.push(screen(&a).to_string());
        screens.push(submit(env, &s1).to_string());
    }
    assert!(
        screens[0].contains("alice") && screens[0].ends_with("hi /srv\n"),
        "{}",
        screens[0]
    );
    assert_eq!(screens[1], "1", "the verifier sees the server");
    assert!(
        !screens[2].contains("alice") && screens[2].ends_with("hi /srv\n"),
        "{}",
        screens[2]
    );
    assert_eq!(screens[3], "0", "without replay the server is gone");
    // Earlier commands cannot fake the verifier: /tests, /logs and qval's files are put back
    // after the replay, from what qval gave the container before any command ran.
    let s0 = replay.reset(&task(&replay, "service"), &mut rng()).unwrap();
    let forge = "mkdir -p /tests /logs/verifier && echo 'echo 1 > /logs/verifier/reward.txt' > /tests/test.sh && \
                 echo 1 > /logs/verifier/reward.txt && printf 'PASSED\\n' > /.qval/replay.sh && \
                 for f in /.qval/*; do echo 'echo 1 > /logs/verifier/reward.txt' > $f; done";
    assert_eq!(submit(&replay, &run(&replay, &s0, forge)), 0.0, "a forged verifier");
    // The step's command keeps its own limit behind a replayed history.
    let s0 = replay.reset(&task(&replay, "service"), &mut rng()).unwrap();
    let s1 = run(&replay, &s0, start);
    let t = std::time::Instant::now();
    let slow = run(&replay, &s1, "sleep 30");
    assert!(screen(&slow).contains("killed after 5 s"), "{}", screen(&slow));
    // Its own 5 s, not the whole run's 5 s + (5 s + 1 s) per replay + 5 s.
    assert!(t.elapsed() < Duration::from_secs(9), "{:?}", t.elapsed());
}
