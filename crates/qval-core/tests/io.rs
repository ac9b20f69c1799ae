//! Run-folder locks across processes.

use qval_core::CoreError;
use qval_core::io::RunLock;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

/// Set in the child process of [`a_run_folder_is_locked_against_another_process`].
const CHILD_DIR: &str = "QVAL_TEST_LOCK_CHILD_DIR";

/// Two processes: the child takes the lock and says so; the parent is refused with an error
/// naming the folder and the child's pid; once the child exits the parent gets it.
#[test]
fn a_run_folder_is_locked_against_another_process() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        // The child: hold the lock until the parent closes our stdin.
        let lock = RunLock::acquire(std::path::Path::new(&dir)).expect("the child takes the lock");
        println!("locked {}", std::process::id());
        std::io::stdout().flush().unwrap();
        let mut rest = String::new();
        let _ = std::io::stdin().read_line(&mut rest);
        drop(lock);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_run_folder_is_locked_against_another_process",
            "--nocapture",
        ])
        .env(CHILD_DIR, &run)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let pid = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "the child exited before locking");
        if let Some(pid) = line.trim().strip_prefix("locked ") {
            break pid.to_string();
        }
    };
    let e = RunLock::acquire(&run).unwrap_err();
    assert!(matches!(e, CoreError::RunLocked { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&run.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("pid {pid}")), "{msg}");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let lock = RunLock::acquire(&run).expect("free once the child is gone");
    assert_eq!(lock.path(), run.join(".qval.lock"));
}

#[test]
fn a_run_lock_is_released_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let lock = RunLock::acquire(dir.path()).unwrap();
    assert!(matches!(RunLock::acquire(dir.path()), Err(CoreError::RunLocked { .. })));
    drop(lock);
    RunLock::acquire(dir.path()).unwrap();
}
