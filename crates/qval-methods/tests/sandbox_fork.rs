//! A fork bomb, alone in its test binary so that no other sandbox runs meanwhile and the
//! sandbox user's processes can be counted.

mod common;

use std::time::Duration;

use common::{require_bubblewrap, sample};
use qval_core::DenseSignalMethod;
use qval_core::{EvaluationPoint, MethodContext, Observation, Signal, Task};
use qval_methods::code::{CodeSample, SandboxConfig};

fn sandbox_processes() -> usize {
    let out = std::process::Command::new("pgrep")
        .args(["-u", "65534", "-c"])
        .output()
        .expect("pgrep (procps) is installed");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_is_contained_and_leaves_nothing_behind() {
    require_bubblewrap();
    let before = sandbox_processes();
    let bomb = r#"
def signal_function(state, action, next_state):
    for c in ().__class__.__base__.__subclasses__():
        g = getattr(c.__init__, '__globals__', None)
        if g and '__builtins__' in g:
            b = g['__builtins__']
            b = b if isinstance(b, dict) else b.__dict__
            break
    os = b['__import__']('os')
    while True:
        os.fork()
"#;
    let cfg = SandboxConfig::builder()
        .call_limit(Duration::from_millis(1500))
        .processes(64)
        .build()
        .unwrap();
    let m = CodeSample::new(sample(bomb), Signal::Q, cfg, "bomb");
    let point = EvaluationPoint {
        id: "p".into(),
        trajectory_index: 0,
        step_index: 0,
        task: Task {
            id: "t".into(),
            instruction: String::new(),
            params: Default::default(),
        },
        history: vec![],
        state: Default::default(),
        observation: Observation::text("S @"),
        action: Default::default(),
        action_text: "right".into(),
        reward: 0.0,
        next_state: Default::default(),
        next_observation: Observation::text("S @"),
        terminated: false,
        candidate_of: None,
        thought: None,
    };
    let ctx = MethodContext {
        env_name: "x".into(),
        reward_description: String::new(),
        notes: String::new(),
        gamma: 0.9,
        disclose_gamma: true,
        include_next_state: true,
        history_limit: 40,
        max_steps: 10,
        policy: Default::default(),
        step_penalty: 0.0,
        disclose_step_penalty: false,
        include_current_thoughts: false,
        include_history_thoughts: false,
        example_trajectories: String::new(),
        profile: Default::default(),
    };
    let t = std::time::Instant::now();
    let r = m.evaluate(&point, &ctx).await;
    let reason = r.unwrap_err().to_string();
    eprintln!("fork bomb: {reason}");
    assert!(
        reason.contains("BlockingIOError") || reason.contains("timed out") || reason.contains("crashed"),
        "{reason}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "contained quickly: {:?}",
        t.elapsed()
    );
    // The process limit held while the bomb ran.
    m.close().await;
    let mut left = sandbox_processes();
    for _ in 0..40 {
        if left <= before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = sandbox_processes();
    }
    assert!(left <= before, "{left} sandbox processes survived (before: {before})");
}
