//! Tasks in Harbor's layout (the format Terminal-Bench 2 and TBLite publish):
//!
//! | item | role |
//! |---|---|
//! | `task.toml` | `[metadata]` (`difficulty`, `category`, `tags`, others kept aside), `[verifier] timeout_sec` (600), `[agent] timeout_sec`, `[environment]` `build_timeout_sec` (600), `cpus` (1), `memory_mb` (2048; or the older `memory = "2G"`), `storage_mb` (10240; or `storage`), `allow_internet` (true: the task may ask; qval's user decides) |
//! | `instruction.md` | what the agent is asked to do |
//! | `environment/Dockerfile` | the task's image; `environment/` is the build context |
//! | `tests/test.sh` | the verifier, uploaded to `/tests` only after the episode; the reward is the number it writes to `/logs/verifier/reward.txt` (or the `reward` of `/logs/verifier/reward.json`) |
//! | `solution/solve.sh` | the oracle solution |
//!
//! In bubblewrap (no container engine) a Harbor task runs when its Dockerfile only sets
//! the base (`FROM`, `ARG`), `WORKDIR /app` and copies files into `/app`; any other
//! instruction needs a container ([`StartingFiles::NeedsContainer`] says which line).

use crate::EnvsError;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A Harbor task as read (the task loader adds its id and folder).
#[derive(Clone, Debug, PartialEq)]
pub struct HarborTask {
    /// `instruction.md`, trimmed.
    pub instruction: String,
    /// `[metadata] difficulty`.
    pub difficulty: Option<String>,
    /// `[metadata] category`.
    pub category: Option<String>,
    /// `[metadata] tags`.
    pub tags: Vec<String>,
    /// `[agent] timeout_sec`.
    pub agent_timeout: Option<Duration>,
    /// `[verifier] timeout_sec` (600 s).
    pub test_timeout: Duration,
    /// `solution/solve.sh`.
    pub solution: String,
    /// `tests/test.sh`.
    pub run_tests: PathBuf,
    /// `tests/`.
    pub tests_dir: PathBuf,
    /// `[environment]` and the Dockerfile.
    pub environment: TaskEnvironment,
}

/// The `[environment]` of a Harbor task (and its Dockerfile).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskEnvironment {
    /// `environment/Dockerfile`.
    pub dockerfile: PathBuf,
    /// The build context, `environment/`.
    pub context: PathBuf,
    /// `build_timeout_sec` (600 s).
    pub build_timeout: Duration,
    /// `cpus` (1).
    pub cpus: f64,
    /// `memory_mb` (2048).
    pub memory_mb: u64,
    /// `storage_mb` (10240).
    pub storage_mb: u64,
    /// `allow_internet` (true): whether the task asks for the network.
    pub allow_internet: bool,
    /// How bubblewrap can give the starting files.
    pub starting: StartingFiles,
}

/// What the Dockerfile means where no container runs.
#[derive(Clone, Debug, PartialEq)]
pub enum StartingFiles {
    /// Files of the build context copied into `/app`: (source in the context, destination
    /// under `/app`, `""` for `/app` itself).
    Copies(Vec<(String, String)>),
    /// The Dockerfile does more than copy files: the line that needs a container.
    NeedsContainer(String),
}

fn err(id: &str, message: String) -> EnvsError {
    EnvsError::Task {
        task: id.to_string(),
        message,
    }
}

fn secs(id: &str, file: &Path, table: Option<&toml::Table>, key: &str, default: f64) -> Result<Duration, EnvsError> {
    match table.and_then(|t| t.get(key)) {
        None => Ok(Duration::from_secs_f64(default)),
        Some(v) => match v.as_float().or_else(|| v.as_integer().map(|i| i as f64)) {
            Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
            _ => Err(err(
                id,
                format!("{}: `{key}`: expected seconds in (0, 86400], found {v}", file.display()),
            )),
        },
    }
}

/// `memory_mb = 2048` or the older `memory = "2G"` (G x 1024, M, K / 1024).
fn megabytes(id: &str, file: &Path, env: Option<&toml::Table>, key: &str, default: u64) -> Result<u64, EnvsError> {
    let bad = |v: &dyn std::fmt::Display| {
        err(
            id,
            format!(
                "{}: `{key}_mb`: expected a whole number of megabytes from 1 to 1048576, found {v}",
                file.display()
            ),
        )
    };
    let Some(env) = env else { return Ok(default) };
    if let Some(v) = env.get(&format!("{key}_mb")) {
        return match v.as_integer() {
            Some(n) if (1..=1 << 20).contains(&n) => Ok(n as u64),
            _ => Err(bad(v)),
        };
    }
    match env.get(key) {
        None => Ok(default),
        Some(toml::Value::String(s)) => {
            let s = s.trim();
            let (num, unit) = s.split_at(s.len().saturating_sub(1));
            let n: f64 = num.parse().map_err(|_| bad(&s))?;
            let mb = match unit {
                "G" | "g" => n * 1024.0,
                "M" | "m" => n,
                "K" | "k" => n / 1024.0,
                _ => return Err(bad(&s)),
            };
            if mb >= 1.0 && mb <= (1u64 << 20) as f64 {
                Ok(mb as u64)
            } else {
                Err(bad(&s))
            }
        }
        Some(v) => Err(bad(v)),
    }
}

fn read(id: &str, path: &Path) -> Result<String, EnvsError> {
    std::fs::read_to_string(path).map_err(|e| err(id, format!("cannot read {}: {e}", path.display())))
}

/// Loads the Harbor task in `dir` (which holds `task.toml`).
///
/// # Errors
/// [`EnvsError::Task`] naming the task and the file, line or key at fault.
pub fn load(dir: &Path, id: &str) -> Result<HarborTask, EnvsError> {
    let file = dir.join("task.toml");
    let text = read(id, &file)?;
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                format!(
                    ":{}:{}",
                    before.lines().count().max(1),
                    before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1
                )
            })
            .unwrap_or_default();
        err(id, format!("{}{at}: not valid TOML: {}", file.display(), e.message()))
    })?;
    let table = |name: &str| -> Result<Option<&toml::Table>, EnvsError> {
        match doc.get(name) {
            None => Ok(None),
            Some(toml::Value::Table(t)) => Ok(Some(t)),
            Some(v) => Err(err(
                id,
                format!("{}: `{name}`: expected a table, found {v}", file.display()),
            )),
        }
    };
    let (meta, verifier, agent, env) = (
        table("metadata")?,
        table("verifier")?,
        table("agent")?,
        table("environment")?,
    );
    let meta_str = |key: &str| {
        meta.and_then(|m| m.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let tags = meta
        .and_then(|m| m.get("tags"))
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let instruction = read(id, &dir.join("instruction.md"))?;
    if instruction.trim().is_empty() {
        return Err(err(id, format!("{}: empty", dir.join("instruction.md").display())));
    }
    let test_sh = dir.join("tests").join("test.sh");
    if !test_sh.is_file() {
        return Err(err(
            id,
            format!("{}: missing: the task has no verifier", test_sh.display()),
        ));
    }
    let solution = read(id, &dir.join("solution").join("solve.sh"))?;
    let context = dir.join("environment");
    let dockerfile = context.join("Dockerfile");
    if !dockerfile.is_file() {
        return Err(err(
            id,
            format!(
                "{}: missing (a docker-compose environment is not read)",
                dockerfile.display()
            ),
        ));
    }
    let allow_internet = match env.and_then(|e| e.get("allow_internet")) {
        None => true,
        Some(v) => v.as_bool().ok_or_else(|| {
            err(
                id,
                format!(
                    "{}: `allow_internet`: expected true or false, found {v}",
                    file.display()
                ),
            )
        })?,
    };
    let cpus = match env.and_then(|e| e.get("cpus")) {
        None => 1.0,
        Some(v) => match v.as_float().or_else(|| v.as_integer().map(|i| i as f64)) {
            Some(c) if c > 0.0 && c <= 256.0 => c,
            _ => {
                return Err(err(
                    id,
                    format!("{}: `cpus`: expected 1 to 256, found {v}", file.display()),
                ));
            }
        },
    };
    let starting = starting_files(&read(id, &dockerfile)?);
    Ok(HarborTask {
        instruction: instruction.trim().to_string(),
        difficulty: meta_str("difficulty"),
        category: meta_str("category"),
        tags,
        agent_timeout: match agent.and_then(|a| a.get("timeout_sec")) {
            None => None,
            Some(_) => Some(secs(id, &file, agent, "timeout_sec", 600.0)?),
        },
        test_timeout: secs(id, &file, verifier, "timeout_sec", 600.0)?,
        solution,
        run_tests: test_sh,
        tests_dir: dir.join("tests"),
        environment: TaskEnvironment {
            build_timeout: secs(id, &file, env, "build_timeout_sec", 600.0)?,
            cpus,
            memory_mb: megabytes(id, &file, env, "memory", 2048)?,
            storage_mb: megabytes(id, &file, env, "storage", 10240)?,
            allow_internet,
            starting,
            dockerfile,
            context,
        },
    })
}

/// What a Dockerfile gives where no container runs: copies into `/app`, or the first line
/// that needs a container.
pub fn starting_files(dockerfile: &str) -> StartingFiles {
    let mut copies = Vec::new();
    let mut logical = String::new();
    for (n, raw) in dockerfile.lines().enumerate() {
        let line = raw.trim();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let words: Vec<&str> = logical.split_whitespace().collect();
        let needs = || StartingFiles::NeedsContainer(format!("Dockerfile line {}: {}", n + 1, logical.trim()));
        match words.first().map(|w| w.to_ascii_uppercase()).as_deref() {
            // Only the base qval's tasks build from (or plain Debian) is the host's /usr.
            Some("FROM")
                if words.get(1).is_some_and(|b| {
                    b.contains("QVAL_BASE_IMAGE") || b.starts_with("debian:") || b.starts_with("localhost/qval-base")
                }) => {}
            Some("ARG" | "LABEL" | "CMD" | "ENTRYPOINT") => {}
            Some("WORKDIR") if words.get(1) == Some(&"/app") => {}
            // ADD extracts archives and fetches URLs: a container's job.
            Some("COPY") if words.len() == 3 && !words[1].starts_with("--") && !words[1].starts_with('/') => {
                let dest = words[2].trim_end_matches('/');
                let rel = if dest == "/app" || dest == "." {
                    ""
                } else if let Some(r) = dest.strip_prefix("/app/") {
                    r
                } else {
                    return needs();
                };
                if words[1].contains("..") || rel.contains("..") {
                    return needs();
                }
                copies.push((words[1].trim_end_matches('/').to_string(), rel.to_string()));
            }
            _ => return needs(),
        }
        logical.clear();
    }
    StartingFiles::Copies(copies)
}

/// Copies what `copies` names from `context` into the empty folder `app`, as `COPY` does
/// (a folder's contents into the destination folder, a file to the destination).
///
/// # Errors
/// A source missing from the context, or a write failure.
pub fn materialize(id: &str, context: &Path, copies: &[(String, String)], app: &Path) -> Result<(), EnvsError> {
    let base = context
        .canonicalize()
        .map_err(|e| err(id, format!("{}: {e}", context.display())))?;
    for (src, dest) in copies {
        let from = context.join(src);
        // Inside the build context, links resolved: a copy never reaches the host's files.
        let real = from.canonicalize().map_err(|e| err(id, format!("COPY {src}: {e}")))?;
        if !real.starts_with(&base) {
            return Err(err(id, format!("COPY {src}: leaves the build context")));
        }
        let to = if dest.is_empty() {
            app.to_path_buf()
        } else {
            app.join(dest)
        };
        copy_tree(&from, &to).map_err(|e| err(id, format!("COPY {src}: {e}")))?;
    }
    Ok(())
}

/// Copies a file, link or folder (recursively, modes kept) from `from` to `to`.
pub(super) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        let mut names: Vec<_> = std::fs::read_dir(from)?.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            copy_tree(&from.join(&name), &to.join(&name))?;
        }
    } else if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)?;
    } else {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, to)?;
    }
    Ok(())
}

/// Gives `path` and everything under it the modes git keeps (links aside: 0755 for folders
/// and for files their owner may run, 0644 for the other files) and the fixed time
/// [`super::store::RESTORED_MTIME`] (links too): a build's `COPY` keeps both, so an image's
/// files list the same whenever and wherever it was built.
pub(super) fn git_modes(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_symlink() {
        let mode = super::store::git_mode(meta.is_dir(), meta.permissions().mode());
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    if meta.is_dir() {
        for e in std::fs::read_dir(path)? {
            git_modes(&e?.path())?;
        }
    }
    // After the folder's own entries: writing them would have dated it again.
    qval_sandbox::set_times(path, super::store::restored_time())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfiles_that_only_copy_run_without_a_container() {
        let f = "ARG QVAL_BASE_IMAGE=localhost/qval-base:bookworm\nFROM ${QVAL_BASE_IMAGE}\nWORKDIR /app\nCOPY files/ /app/\nCOPY notes.txt /app/docs/notes.txt\n";
        assert_eq!(
            starting_files(f),
            StartingFiles::Copies(vec![
                ("files".into(), "".into()),
                ("notes.txt".into(), "docs/notes.txt".into())
            ])
        );
        let f = "FROM debian:12\nRUN apt-get install -y \\\n  tree\nWORKDIR /app\n";
        assert_eq!(
            starting_files(f),
            StartingFiles::NeedsContainer("Dockerfile line 3: RUN apt-get install -y  tree".into())
        );
        for needs in [
            "FROM debian:12\nCOPY a /etc/a\n",
            "FROM node:20\nCOPY a /app/a\n",
            "FROM debian:12\nADD a.tar.gz /app/\n",
            "FROM debian:12\nCOPY /etc/shadow /app/x\n",
        ] {
            assert!(
                matches!(starting_files(needs), StartingFiles::NeedsContainer(_)),
                "{needs}"
            );
        }
    }

    #[test]
    fn a_copy_cannot_leave_the_build_context_through_a_link() {
        let root = tempfile::tempdir().unwrap();
        let context = root.path().join("environment");
        std::fs::create_dir_all(&context).unwrap();
        std::os::unix::fs::symlink("/etc", context.join("files")).unwrap();
        let app = root.path().join("app");
        std::fs::create_dir(&app).unwrap();
        let e = materialize("t", &context, &[("files/hostname".into(), "x".into())], &app).unwrap_err();
        assert!(e.to_string().contains("leaves the build context"), "{e}");
        assert!(!app.join("x").exists());
    }

    #[test]
    fn harbor_task_files_are_checked_with_their_key() {
        let root = tempfile::tempdir().unwrap();
        let t = root.path();
        for (p, body) in [
            ("instruction.md", "Do it.\n"),
            ("tests/test.sh", "echo 1 > /logs/verifier/reward.txt\n"),
            ("solution/solve.sh", "true\n"),
            ("environment/Dockerfile", "FROM x\nWORKDIR /app\n"),
        ] {
            std::fs::create_dir_all(t.join(p).parent().unwrap()).unwrap();
            std::fs::write(t.join(p), body).unwrap();
        }
        let cases = [
            ("[environment]\ncpus = 0\n", "`cpus`"),
            ("[environment]\nmemory = \"lots\"\n", "`memory_mb`"),
            ("[verifier]\ntimeout_sec = -1\n", "`timeout_sec`"),
            ("[agent\n", "task.toml:1:"),
            ("metadata = 3\n", "`metadata`: expected a table"),
        ];
        for (toml_text, want) in cases {
            std::fs::write(t.join("task.toml"), toml_text).unwrap();
            let e = load(t, "x").unwrap_err().to_string();
            assert!(e.contains(want), "{toml_text:?}: {e}");
        }
        std::fs::write(
            t.join("task.toml"),
            "version = \"1.0\"\n[metadata]\ndifficulty = \"easy\"\ntags = [\"a\"]\n[verifier]\ntimeout_sec = 30.0\n[environment]\nmemory = \"1G\"\nstorage_mb = 500\nallow_internet = false\n",
        )
        .unwrap();
        let task = load(t, "x").unwrap();
        let env = task.environment;
        assert_eq!(
            (env.memory_mb, env.storage_mb, env.cpus, env.allow_internet),
            (1024, 500, 1.0, false)
        );
        assert_eq!(task.test_timeout, Duration::from_secs(30));
        assert_eq!(task.tags, vec!["a".to_string()]);
        assert_eq!(task.instruction, "Do it.");
    }
}
