//! Without bubblewrap TerminalBench refuses to start (it never runs commands unconfined).
//! Its own test binary: it empties PATH for the whole process.

use qval_envs::terminalbench::TerminalBench;

#[test]
fn the_environment_refuses_to_start_without_bubblewrap() {
    let empty = tempfile::tempdir().unwrap();
    // SAFETY: the only test of this binary; nothing else reads the environment meanwhile.
    unsafe { std::env::set_var("PATH", empty.path()) };
    let err = TerminalBench::builder()
        .build()
        .err()
        .expect("built without bubblewrap")
        .to_string();
    assert!(
        err.contains("only inside bubblewrap") && err.contains("apt-get install bubblewrap"),
        "{err}"
    );
}
