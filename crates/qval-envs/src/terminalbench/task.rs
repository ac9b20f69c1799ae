//! Tasks in the Terminal-Bench layout.
//!
//! A task is a folder:
//!
//! | item | role |
//! |---|---|
//! | `task.yaml` | `instruction` (required; or Terminal-Bench's older `descriptions` list with a `base` entry), `difficulty` (`easy`, `medium`, `hard`), `category`, `tags`, `max_agent_timeout_sec`, `max_test_timeout_sec`; other fields are ignored |
//! | `solution.sh` | a bash script solving the task from its starting files, run from `/app` |
//! | `run-tests.sh` | optional: the test script, run as `bash` in `/app` with `TEST_DIR=/tests` |
//! | `tests/` | optional (one of the two is required): test files, mounted read-only at `/tests`; without `run-tests.sh`, every `test_*` function of `tests/test_*.py` runs (a pytest-style runner that needs python3 only) |
//! | everything else | the files the task starts from, placed in `/app` |
//!
//! `Dockerfile`, `docker-compose.yaml`/`.yml` and `solution.yaml` are ignored, so tasks
//! written for Terminal-Bench load unchanged (their `solution.sh`, tests and files). Tests
//! run in the same sandbox as commands, without network: a `run-tests.sh` that installs
//! pytest with pip or uv fails here; leave it out and the built-in runner takes `tests/`.

use serde_yaml_ng::Value as Yaml;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::EnvsError;

/// Names in a task folder that are not starting files.
pub const RESERVED: [&str; 8] = [
    "task.yaml",
    "solution.sh",
    "solution.yaml",
    "run-tests.sh",
    "tests",
    "Dockerfile",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// A loaded task.
#[derive(Clone, Debug, PartialEq)]
pub struct ShellTask {
    /// The folder name.
    pub id: String,
    /// The task folder.
    pub dir: PathBuf,
    /// What the agent is asked to do.
    pub instruction: String,
    /// `easy`, `medium` or `hard`, when given.
    pub difficulty: Option<String>,
    /// The category, when given.
    pub category: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// `max_agent_timeout_sec`, when given.
    pub agent_timeout: Option<Duration>,
    /// `max_test_timeout_sec` (default 60 s).
    pub test_timeout: Duration,
    /// The body of `solution.sh`.
    pub solution: String,
    /// `run-tests.sh`, when present.
    pub run_tests: Option<PathBuf>,
    /// `tests/`, when present.
    pub tests_dir: Option<PathBuf>,
    /// A Harbor task's `[environment]` and Dockerfile (`None` in the Terminal-Bench layout,
    /// whose tasks start from their folder's files on the base image).
    pub environment: Option<super::harbor::TaskEnvironment>,
}

fn field_err(id: &str, file: &Path, field: &str, message: impl std::fmt::Display) -> EnvsError {
    EnvsError::Task {
        task: id.to_string(),
        message: format!("{}: field `{field}`: {message}", file.display()),
    }
}

fn seconds(id: &str, file: &Path, y: &Yaml, field: &str) -> Result<Option<Duration>, EnvsError> {
    match y.get(field) {
        None | Some(Yaml::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
            _ => Err(field_err(
                id,
                file,
                field,
                format!("expected a positive number of seconds, found {v:?}"),
            )),
        },
    }
}

fn opt_string(id: &str, file: &Path, y: &Yaml, field: &str) -> Result<Option<String>, EnvsError> {
    match y.get(field) {
        None | Some(Yaml::Null) => Ok(None),
        Some(Yaml::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(field_err(id, file, field, format!("expected a string, found {v:?}"))),
    }
}

impl ShellTask {
    /// Loads the task in `dir`: Harbor's layout when it holds `task.toml`
    /// ([`super::harbor`]), else Terminal-Bench's (`task.yaml`).
    ///
    /// # Errors
    /// [`EnvsError::Task`] naming the task and, for `task.yaml`, the line or the field at fault;
    /// a missing `solution.sh`, or neither `run-tests.sh` nor `tests/`.
    pub fn load(dir: &Path) -> Result<ShellTask, EnvsError> {
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        if dir.join("task.toml").is_file() {
            let h = super::harbor::load(dir, &id)?;
            return Ok(ShellTask {
                id,
                dir: dir.to_path_buf(),
                instruction: h.instruction,
                difficulty: h.difficulty,
                category: h.category,
                tags: h.tags,
                agent_timeout: h.agent_timeout,
                test_timeout: h.test_timeout,
                solution: h.solution,
                run_tests: Some(h.run_tests),
                tests_dir: Some(h.tests_dir),
                environment: Some(h.environment),
            });
        }
        let err = |message: String| EnvsError::Task {
            task: id.clone(),
            message,
        };
        let file = dir.join("task.yaml");
        let text = std::fs::read_to_string(&file).map_err(|e| err(format!("cannot read {}: {e}", file.display())))?;
        let y: Yaml = serde_yaml_ng::from_str(&text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            err(format!("{}{at}: not valid YAML: {e}", file.display()))
        })?;
        if !y.is_mapping() {
            return Err(err(format!(
                "{}: expected a mapping of fields at the top",
                file.display()
            )));
        }
        let instruction = match y.get("instruction") {
            Some(Yaml::String(s)) => s.clone(),
            Some(v) => {
                return Err(field_err(
                    &id,
                    &file,
                    "instruction",
                    format!("expected a string, found {v:?}"),
                ));
            }
            None => {
                // Terminal-Bench's older layout: descriptions: [{key: base, description: ...}].
                let base = y.get("descriptions").and_then(|d| d.as_sequence()).and_then(|list| {
                    list.iter()
                        .find(|d| d.get("key").and_then(|k| k.as_str()) == Some("base"))
                        .and_then(|d| d.get("description"))
                        .and_then(|d| d.as_str())
                        .map(str::to_string)
                });
                base.ok_or_else(|| field_err(&id, &file, "instruction", "missing"))?
            }
        };
        if instruction.trim().is_empty() {
            return Err(field_err(&id, &file, "instruction", "empty"));
        }
        let difficulty = opt_string(&id, &file, &y, "difficulty")?;
        if let Some(d) = &difficulty
            && !["easy", "medium", "hard"].contains(&d.as_str())
        {
            return Err(field_err(
                &id,
                &file,
                "difficulty",
                format!("`{d}`: expected easy, medium or hard"),
            ));
        }
        let tags = match y.get("tags") {
            None | Some(Yaml::Null) => Vec::new(),
            Some(Yaml::Sequence(items)) => items
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| field_err(&id, &file, "tags", format!("expected strings, found {t:?}")))
                })
                .collect::<Result<_, _>>()?,
            Some(v) => return Err(field_err(&id, &file, "tags", format!("expected a list, found {v:?}"))),
        };
        let solution_path = dir.join("solution.sh");
        let solution = std::fs::read_to_string(&solution_path)
            .map_err(|e| err(format!("cannot read {}: {e}", solution_path.display())))?;
        let run_tests = Some(dir.join("run-tests.sh")).filter(|p| p.is_file());
        let tests_dir = Some(dir.join("tests")).filter(|p| p.is_dir());
        if run_tests.is_none() && tests_dir.is_none() {
            return Err(err(format!(
                "{}: neither run-tests.sh nor a tests/ folder: the task has no way to be checked",
                dir.display()
            )));
        }
        Ok(ShellTask {
            instruction: instruction.trim().to_string(),
            difficulty,
            category: opt_string(&id, &file, &y, "category")?,
            tags,
            agent_timeout: seconds(&id, &file, &y, "max_agent_timeout_sec")?,
            test_timeout: seconds(&id, &file, &y, "max_test_timeout_sec")?.unwrap_or(Duration::from_secs(60)),
            solution,
            run_tests,
            tests_dir,
            environment: None,
            dir: dir.to_path_buf(),
            id,
        })
    }

    /// Loads every task folder (a sub-folder holding `task.toml` or `task.yaml`) of `dir`,
    /// sorted by name.
    ///
    /// # Errors
    /// The first task that does not load, or a folder without tasks.
    pub fn load_all(dir: &Path) -> Result<Vec<ShellTask>, EnvsError> {
        let list = std::fs::read_dir(dir).map_err(|e| EnvsError::Task {
            task: dir.display().to_string(),
            message: format!("cannot read the tasks folder: {e}"),
        })?;
        let mut dirs: Vec<PathBuf> = list
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("task.yaml").is_file() || p.join("task.toml").is_file())
            .collect();
        dirs.sort();
        if dirs.is_empty() {
            return Err(EnvsError::Task {
                task: dir.display().to_string(),
                message: "no task folders (sub-folders with a task.toml or a task.yaml) here".into(),
            });
        }
        dirs.iter().map(|d| ShellTask::load(d)).collect()
    }
}

/// Splits a bash script into its top-level commands, in order: blank lines, comments, the
/// shebang and `set -e`-style option lines are dropped; a command spans lines until bash
/// itself (`bash -n`, which parses without running) accepts it as complete, so here-documents,
/// loops, functions and continued lines stay whole.
///
/// # Errors
/// bash cannot be started, or the script does not parse.
pub fn split_commands(script: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut acc = String::new();
    for line in script.lines() {
        let t = line.trim();
        if acc.is_empty() && (t.is_empty() || t.starts_with('#') || t.starts_with("set -") || t.starts_with("set +")) {
            continue;
        }
        acc.push_str(line);
        acc.push('\n');
        // A trailing backslash continues the line (bash -n accepts it at the end of input).
        let continued = line.len() - line.trim_end_matches('\\').len();
        if continued % 2 == 0 && complete(&acc)? {
            out.push(acc.trim_end().to_string());
            acc.clear();
        }
    }
    if !acc.trim().is_empty() {
        return Err(format!("the script ends inside a command: {}", acc.trim()));
    }
    Ok(out)
}

fn complete(text: &str) -> Result<bool, String> {
    let out = std::process::Command::new("bash")
        .args(["-n", "-c", text])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot start bash to split a script ({e}): apt-get install bash"))?;
    Ok(out.status.success() && out.stderr.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_into_whole_commands() {
        let script = "#!/bin/bash\nset -euo pipefail\n# a comment\ncd /app\n\nfor f in *.txt; do\n  echo \"$f\"\ndone\ncat > a.py <<'EOF'\nprint(1)\n\nEOF\necho a \\\n  b\nif true; then echo x; fi\n";
        let parts = split_commands(script).unwrap();
        assert_eq!(
            parts,
            vec![
                "cd /app",
                "for f in *.txt; do\n  echo \"$f\"\ndone",
                "cat > a.py <<'EOF'\nprint(1)\n\nEOF",
                "echo a \\\n  b",
                "if true; then echo x; fi",
            ]
        );
        assert!(split_commands("for x in 1; do\n").is_err());
    }

    fn write(dir: &Path, name: &str, body: &str) {
        std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
        std::fs::write(dir.join(name), body).unwrap();
    }

    #[test]
    fn malformed_tasks_name_the_task_and_the_field() {
        let root = tempfile::tempdir().unwrap();
        let t = root.path().join("my-task");
        write(&t, "solution.sh", "true\n");
        write(&t, "run-tests.sh", "true\n");
        let cases = [
            ("instruction: [unclosed\n", "not valid YAML", "task.yaml:2:1"),
            ("difficulty: easy\n", "field `instruction`: missing", ""),
            ("instruction: 3\n", "field `instruction`: expected a string", ""),
            (
                "instruction: do it\ndifficulty: trivial\n",
                "field `difficulty`: `trivial`",
                "",
            ),
            (
                "instruction: do it\nmax_test_timeout_sec: -5\n",
                "field `max_test_timeout_sec`",
                "",
            ),
            ("instruction: do it\ntags: x\n", "field `tags`", ""),
            ("- a list\n", "expected a mapping", ""),
        ];
        for (yaml, want, want2) in cases {
            write(&t, "task.yaml", yaml);
            let e = ShellTask::load(&t).unwrap_err().to_string();
            assert!(
                e.contains("task `my-task`") && e.contains(want) && e.contains(want2),
                "{yaml:?}: {e}"
            );
        }
        write(
            &t,
            "task.yaml",
            "descriptions:\n  - key: base\n    description: old layout\nmax_agent_timeout_sec: 180\n",
        );
        let ok = ShellTask::load(&t).unwrap();
        assert_eq!(ok.instruction, "old layout");
        assert_eq!(ok.agent_timeout, Some(Duration::from_secs(180)));
        assert_eq!(ok.test_timeout, Duration::from_secs(60));
        std::fs::remove_file(t.join("run-tests.sh")).unwrap();
        let e = ShellTask::load(&t).unwrap_err().to_string();
        assert!(e.contains("neither run-tests.sh nor a tests/ folder"), "{e}");
        std::fs::remove_file(t.join("solution.sh")).unwrap();
        write(&t, "run-tests.sh", "true\n");
        let e = ShellTask::load(&t).unwrap_err().to_string();
        assert!(e.contains("solution.sh"), "{e}");
    }
}
