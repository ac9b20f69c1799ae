//! `qval run` on Harbor tasks in containers: a run killed (SIGKILL) in the middle leaves no
//! container, mount or process behind, and the next run resumes from what was finished.
//! Needs root, podman, runc, a running dockerd and qval's base image: `bash scripts/test.sh`
//! installs and starts them (`apt-get install podman runc debootstrap dpkg-dev docker.io &&
//! bash scripts/base_image.sh && bash scripts/docker_local.sh`).

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Ids of the containers (running or not) a qval process `pid` made.
fn containers_of(pid: u32) -> Vec<String> {
    containers_in(&["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"], pid)
}

/// [`containers_of`] in the engine `engine` runs.
fn containers_in(engine: &[&str], pid: u32) -> Vec<String> {
    let out = Command::new(engine[0])
        .args(&engine[1..])
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=qval.owner={pid}"))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; apt-get install podman runc debootstrap dpkg-dev docker.io && bash scripts/base_image.sh && bash scripts/docker_local.sh",
                engine[0]
            )
        });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Processes whose command line names `needle`.
fn processes_naming(needle: &str) -> usize {
    let out = Command::new("pgrep")
        .args(["-f", needle])
        .output()
        .expect("pgrep (apt-get install procps)");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn a_killed_container_run_leaves_no_container_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let file = repo().join("experiments/terminalbench-harbor.toml");
    let mut child = qval_run(&file, &run)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_for(&mut child, Duration::from_secs(300), "a container of the run", || {
        !containers_of(pid).is_empty()
    });
    signal(&child, libc::SIGKILL);
    let _ = child.wait();
    let t = std::time::Instant::now();
    while !containers_of(pid).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "containers left: {:?}",
            containers_of(pid)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // No container's processes either (conmon names the container id; qval's step wrapper).
    assert_eq!(processes_naming("/.qval/wrapper.sh"), 0);
    // The rerun finishes what was left.
    let out = succeeded(qval_run(&file, &run));
    assert!(out.contains("| shell-heuristic-q | 8 |"), "{out}");
    assert!(containers_of(std::process::id()).is_empty());
}

/// On docker, qval mounts each container's layers itself: a run killed while it holds such
/// mounts leaves none of them, no folder for them and no container.
#[test]
fn a_killed_docker_run_leaves_no_container_and_no_mount() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker.toml");
    let text = std::fs::read_to_string(repo().join("experiments/terminalbench-harbor.toml")).unwrap();
    let tasks = repo().join("crates/qval-envs/tasks/harbor");
    let text = text
        .replace(
            "\"../crates/qval-envs/tasks/harbor\"",
            &format!("{:?}", tasks.display().to_string()),
        )
        .replace(
            "runtime = \"container\"",
            "runtime = \"container\"\nengine = \"docker\"",
        );
    assert!(text.contains("engine = \"docker\""));
    std::fs::write(&file, text).unwrap();
    let mut child = qval_run(&file, dir.path().join("run"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mounts = std::path::PathBuf::from(format!("/run/qval-mounts-{pid}"));
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&format!("qval-mounts-{pid}/")))
            .count()
    };
    let docker = ["docker"];
    wait_for(
        &mut child,
        Duration::from_secs(300),
        "a mounted docker container",
        || mounted() > 0,
    );
    assert!(!containers_in(&docker, pid).is_empty());
    // The mounts are in a folder only root can enter, nosuid and nodev.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::symlink_metadata(&mounts).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o700, "{}", mounts.display());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    if let Some(line) = info.lines().find(|l| l.contains(&format!("qval-mounts-{pid}/"))) {
        assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
    }
    signal(&child, libc::SIGKILL);
    let _ = child.wait();
    let t = std::time::Instant::now();
    while !containers_in(&docker, pid).is_empty() || mounted() > 0 || mounts.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "left: containers {:?}, {} mounts, folder {}",
            containers_in(&docker, pid),
            mounted(),
            mounts.exists()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
