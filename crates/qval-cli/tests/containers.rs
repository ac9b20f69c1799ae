//! `qval run` on Harbor tasks in containers: a run killed (SIGKILL) in the middle leaves no
//! container and no process behind, and the next run resumes from what was finished.
//! Needs root, podman, runc and qval's base image: `bash scripts/test.sh` installs them
//! (`apt-get install podman runc debootstrap dpkg-dev && bash scripts/base_image.sh`).

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Ids of the containers (running or not) a qval process `pid` made.
fn containers_of(pid: u32) -> Vec<String> {
    let out = Command::new("podman")
        .args([
            "--runtime",
            "runc",
            "--cgroup-manager",
            "cgroupfs",
            "ps",
            "-aq",
            "--filter",
        ])
        .arg(format!("label=qval.owner={pid}"))
        .output()
        .unwrap_or_else(|e| {
            panic!("podman: {e}; apt-get install podman runc debootstrap dpkg-dev && bash scripts/base_image.sh")
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
