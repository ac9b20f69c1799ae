//! Run-folder locks across processes, and what the readers say about bad files.

use qval_core::CoreError;
use qval_core::io::{Checkpoint, Kind, Metadata, RunLock, read_jsonl, write_jsonl};
use serde_json::{Value, json};
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

#[test]
fn a_binary_file_is_named_with_its_line_and_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("points.jsonl");
    let meta = Metadata::new(Kind::Points, "test");
    write_jsonl::<Value>(&path, &meta, &[json!({"a": 1})]).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let offset = bytes.len() + 3;
    bytes.extend_from_slice(b"{\"b\xff\xfe\x00\x01\": 2}\n");
    std::fs::write(&path, &bytes).unwrap();
    let msg = read_jsonl::<Value>(&path, Kind::Points).unwrap_err().to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("byte {offset}")), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
    // A checkpoint with such bytes says the same.
    let partial = dir.path().join("labels.jsonl.partial");
    std::fs::write(&partial, b"\x89PNG\r\n\x1a\n\x00\x00").unwrap();
    let msg = Checkpoint::open::<Value>(&dir.path().join("labels.jsonl"), &Metadata::new(Kind::Labels, "t"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("labels.jsonl.partial") && msg.contains("byte 0") && msg.contains("line 1"),
        "{msg}"
    );
}

#[test]
fn a_checkpoint_with_other_settings_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labels.jsonl");
    let params = |rollouts: u64| json!({"labeler": {"rollouts": rollouts, "gamma": 0.95}, "env": "frozenlake"});
    let then = Metadata::new(Kind::Labels, "mvmc").with_seed(7).with_params(params(4));
    let (mut ck, _) = Checkpoint::open::<Value>(&path, &then).unwrap();
    ck.append(&[json!({"point_id": "p0"})]).unwrap();
    drop(ck);
    let now = Metadata::new(Kind::Labels, "mvmc").with_seed(7).with_params(params(8));
    let msg = Checkpoint::open::<Value>(&path, &now).err().unwrap().to_string();
    assert!(
        msg.contains("`params.labeler.rollouts` is 4 in the file, 8 now"),
        "{msg}"
    );
    assert!(!msg.contains("gamma"), "only what differs: {msg}");
    let now = Metadata::new(Kind::Labels, "mvmc").with_seed(8).with_params(params(4));
    let msg = Checkpoint::open::<Value>(&path, &now).err().unwrap().to_string();
    assert!(msg.contains("seed 7 in the file, 8 now"), "{msg}");
}
