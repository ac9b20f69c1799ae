//! TerminalBench: an agent types shell commands to solve a task; the task's tests decide.
//!
//! Tasks come in the Terminal-Bench layout ([`task`]) or in Harbor's ([`harbor`]: `task.toml`,
//! `instruction.md`, `environment/Dockerfile`, `tests/test.sh`, `solution/solve.sh`);
//! [`TerminalBench::shipped_tasks_dir`] holds the 17 tasks written for qval, in Harbor's layout
//! (bash, coreutils and python3 only; their Dockerfiles only copy files into `/app`, so they
//! run in bubblewrap or a container), `tasks/harbor` four more, three of which install a
//! package the host lacks and so run only in a container.
//!
//! **Runtimes** ([`RuntimeChoice`]): bubblewrap over the host's `/usr` (below), or real
//! containers ([`container`]: podman; each task's image built once from its Dockerfile and
//! cached by content; a state's files are a snapshot of the container's writable layer,
//! removals included). `auto` runs in bubblewrap what needs nothing beyond the host and the
//! rest in containers; a task that cannot run is left out and listed
//! ([`TerminalBench::unrunnable`]) up to a threshold.
//!
//! **Pure steps.** A [`ShellState`] is the task, the command history, the shell's working
//! folder and exported variables, and the hash of a content-addressed snapshot of `/app`
//! ([`store`]). [`Environment::step`](qval_core::Environment::step) restores that snapshot into a fresh sandbox, runs
//! the command in bash with a time limit, captures the screen (head and tail of long
//! output), snapshots `/app` again and returns the new state; nothing else carries over
//! (not `/tmp`, not background processes), so any stored state can be branched from any
//! number of times, which MVMC labelling needs. Restored files get a fixed modification
//! time, so a command gives the same bytes whichever branch runs it.
//!
//! **Episodes.** The action `SUBMIT` ends the episode and runs the task's tests in a
//! sandbox: reward 1.0 if they pass, 0.0 otherwise. The last allowed step (40 by default)
//! runs its command and then the tests.
//!
//! **The sandbox** ([`qval_sandbox`]): bubblewrap with no network, only `/usr` (and
//! `/etc/alternatives`) of the host mounted, read-only, the root read-only, `/app` (the task folder) the only
//! persistent writable place, a 64 MiB `/tmp`, a 16 MiB `/dev/shm` and the rest of `/dev`
//! read-only, an unprivileged user, process, memory, CPU and file-size limits, a
//! wall-clock limit per command (10 s by default) and output capped at 4 KiB on screen.
//! `/app` is a folder of the host (the work folder; bubblewrap cannot size a bind): files
//! are limited to 16 MiB each, a watchdog ([`qval_sandbox::TreeLimit`], polled every
//! 20 ms) kills the command when `/app` and `/.qval` hold more than twice
//! `max_tree_bytes` plus 16 MiB or 100,000 entries, and the snapshot holds the tree to
//! `max_tree_bytes`. [`TerminalBench::builder`]`.build()` fails when bubblewrap
//! cannot run: commands are never run unconfined.
//!
//! ```no_run
//! use qval_core::{Environment, QRng, seed::derive_seed};
//! use qval_envs::terminalbench::{ShellAction, TerminalBench};
//! use rand::SeedableRng;
//!
//! let env = TerminalBench::builder().only(["hello-file"]).build()?;
//! let task = &env.tasks()[0];
//! let mut rng = QRng::seed_from_u64(0);
//! let s0 = env.reset(task, &mut rng)?;
//! let s1 = env.step(&s0, &env.parse_action("echo 'Hello, world!' > hello.txt"), &mut rng)?.state;
//! let end = env.step(&s1, &ShellAction::Submit, &mut rng)?;
//! assert!(end.terminated);
//! println!("reward {}", end.reward);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
pub mod container;
mod container_steps;
pub mod harbor;
pub mod heuristic;
pub mod policy;
mod profile;
pub mod store;
pub mod task;
pub use builder::TerminalBenchBuilder;
pub use container::{Restore, RuntimeChoice, Shell};
pub use heuristic::ShellHeuristic;
pub use policy::{NoisyScripted, OracleSolution};
pub use profile::{min_chars, scoring_wording};
pub use qval_sandbox::container::EngineKind;
pub use store::{Store, TreeStats};
pub use task::{ShellTask, split_commands};
mod env;
pub use env::*;
