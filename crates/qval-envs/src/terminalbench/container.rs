//! TerminalBench in real containers: each task's image is built once from its Dockerfile
//! (cached by the content of its build context), and a state is the task's image plus a
//! content-addressed snapshot of a container's writable layer (changed files, removals),
//! so a step is pure as in bubblewrap: a fresh container from the image, the state's layer
//! written in through the engine's mount, the command, then the new layer read back.
//!
//! The tests folder is copied in only for the verifier's run, in a container of its own.

use super::harbor::TaskEnvironment;
use super::store::{Entry, EntryKind, Store, io_err};
use crate::EnvsError;
use qval_sandbox::container::{BuildRequest, Container, ContainerSpec, Engine};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// The local base image qval's tasks build `FROM` (made by `scripts/base_image.sh`); a
/// task's Dockerfile reads it as the build argument `QVAL_BASE_IMAGE`.
pub const DEFAULT_BASE_IMAGE: &str = "localhost/qval-base:bookworm";

/// Paths of a container's writable layer that are not part of a state: qval's control
/// folder, the engine's own files and the tests' logs.
pub const LAYER_EXCLUDE: [&str; 7] = [
    ".qval",
    "run/.containerenv",
    "etc/mtab",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
    "logs",
];

/// The container side of a TerminalBench environment.
#[derive(Debug)]
pub struct ContainerRuntime {
    engine: Engine,
    base_image: String,
    allow_internet: bool,
    log_dir: PathBuf,
    shell: Shell,
    restore: Restore,
}

/// How a container step restores its state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Restore {
    /// The task's image plus the state's snapshot of the writable layer: one command per
    /// step, and nothing but files carries over (background processes end with the step).
    #[default]
    Snapshot,
    /// The state's commands run again in one container before the step's (and before the
    /// verifier), so processes they started, a server or a daemon, still run: for tasks
    /// whose state lives outside the files. A step costs its whole history.
    Replay,
}

/// How a container step's command reaches bash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Shell {
    /// bash reads the command from a file, its output a pipe (as in bubblewrap: the same
    /// screens, so labels agree across runtimes).
    #[default]
    Exec,
    /// The command is run in a tmux session 200 columns wide, as Harbor's agents and the
    /// published testbed type it (programs see a terminal), and the screen is the pane.
    /// Needs tmux in the image (qval's base image has it).
    Tmux,
}

/// Which runtime runs a TerminalBench's commands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RuntimeChoice {
    /// Containers when an engine answers, else bubblewrap.
    #[default]
    Auto,
    /// bubblewrap over the host's `/usr`.
    Bubblewrap,
    /// Containers (podman or docker).
    Container,
}

/// One image build's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Built {
    /// The image tag (content-addressed).
    pub tag: String,
    /// Whether it was built now (false: found in the engine's cache).
    pub fresh: bool,
    /// Wall time of the build or of the cache check.
    pub seconds: f64,
}

impl ContainerRuntime {
    /// The runtime on `engine`, with `base_image` for `FROM` and build logs in `log_dir`.
    pub fn new(engine: Engine, base_image: String, allow_internet: bool, log_dir: PathBuf, shell: Shell) -> Self {
        ContainerRuntime {
            engine,
            base_image,
            allow_internet,
            log_dir,
            shell,
            restore: Restore::Snapshot,
        }
    }

    /// The runtime restoring states by `restore`.
    pub fn with_restore(mut self, restore: Restore) -> Self {
        self.restore = restore;
        self
    }

    /// How states are restored.
    pub fn restore(&self) -> Restore {
        self.restore
    }

    /// How commands reach bash.
    pub fn shell(&self) -> Shell {
        self.shell
    }

    /// The base image.
    pub fn base_image(&self) -> &str {
        &self.base_image
    }

    /// The image a task runs in: its Dockerfile's build (tag = hash of the build context,
    /// the Dockerfile and the base image), or the base image for a task without one.
    ///
    /// # Errors
    /// The build failed (naming the step) or the base image is missing.
    pub fn image(&self, id: &str, env: Option<&TaskEnvironment>) -> Result<Built, EnvsError> {
        let t = std::time::Instant::now();
        let Some(env) = env else {
            if !self.engine.image_exists(&self.base_image) {
                return Err(missing_base(&self.base_image));
            }
            return Ok(Built {
                tag: self.base_image.clone(),
                fresh: false,
                seconds: t.elapsed().as_secs_f64(),
            });
        };
        // The base image's content, not only its name: a remade base rebuilds the tasks.
        let base = self
            .engine
            .image_id(&self.base_image)
            .unwrap_or_else(|| self.base_image.clone());
        let hash = context_hash(&env.context, &base).map_err(|e| EnvsError::Task {
            task: id.into(),
            message: format!("the build context: {e}"),
        })?;
        let tag = format!("localhost/qval-task-{}:{}", sanitize(id), &hash[..16]);
        let log = self.log_dir.join(format!("{}-{}.log", sanitize(id), &hash[..16]));
        let args = vec![("QVAL_BASE_IMAGE".to_string(), self.base_image.clone())];
        if self.engine.image_exists(&tag) {
            return Ok(Built {
                tag,
                fresh: false,
                seconds: t.elapsed().as_secs_f64(),
            });
        }
        // A build reads a copy of the context with the modes git keeps: the image is the same
        // whatever umask the checkout was made with.
        let staged = tempfile::tempdir().map_err(|e| EnvsError::Store(format!("a temporary folder: {e}")))?;
        let context = staged.path().join("context");
        super::harbor::copy_tree(&env.context, &context)
            .and_then(|()| super::harbor::git_modes(&context))
            .map_err(|e| EnvsError::Task {
                task: id.into(),
                message: format!("copying the build context: {e}"),
            })?;
        let dockerfile = match env.dockerfile.strip_prefix(&env.context) {
            Ok(rel) => context.join(rel),
            Err(_) => env.dockerfile.clone(),
        };
        let fresh = self
            .engine
            .build(&BuildRequest {
                tag: &tag,
                context: &context,
                dockerfile: &dockerfile,
                args: &args,
                log: &log,
                network: env.allow_internet && self.allow_internet,
                timeout: env.build_timeout,
            })
            .map_err(|e| {
                let mut message = e.to_string();
                if message.contains(&self.base_image) && !self.engine.image_exists(&self.base_image) {
                    message = missing_base(&self.base_image).to_string();
                }
                EnvsError::Task {
                    task: id.into(),
                    message,
                }
            })?;
        Ok(Built {
            tag,
            fresh,
            seconds: t.elapsed().as_secs_f64(),
        })
    }

    /// A container of `image` that will run `argv` with `env`, the task's limits applied.
    ///
    /// # Errors
    /// The engine refuses.
    pub fn container(
        &self,
        image: &str,
        argv: &[&str],
        env: &[(String, String)],
        task: Option<&TaskEnvironment>,
        memory_cap: u64,
    ) -> Result<Container, EnvsError> {
        let mut spec = ContainerSpec::new(image, argv.iter().copied()).workdir("/");
        for (k, v) in env {
            spec = spec.env(k, v);
        }
        if let Some(t) = task {
            spec.cpus = t.cpus;
            spec.memory = (t.memory_mb << 20).min(memory_cap);
            spec.network = t.allow_internet && self.allow_internet;
        } else {
            spec.memory = memory_cap;
        }
        self.engine.create(&spec).map_err(|e| EnvsError::Sandbox(e.to_string()))
    }
}

fn missing_base(base: &str) -> EnvsError {
    EnvsError::Sandbox(format!(
        "the base image {base} is not in the container engine: make it with `bash scripts/base_image.sh` (debootstrap, offline after the Debian packages), or name a base you have (QVAL_BASE_IMAGE)"
    ))
}

fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// SHA-256 over the build context's paths, modes and bytes, and the base image's name.
pub fn context_hash(context: &Path, base: &str) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(base.as_bytes());
    // How a context is staged (git's modes, fixed times): images staged otherwise rebuild.
    h.update(b"\0staged: git modes, fixed times; no layer cache\0");
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = context.join(&rel);
        let mut names: Vec<_> = fs::read_dir(&dir)?.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for name in names.into_iter().rev() {
            let r = rel.join(&name);
            let p = context.join(&r);
            let m = fs::symlink_metadata(&p)?;
            h.update(r.to_string_lossy().as_bytes());
            // Whether its owner may run it: the build sees only that of the mode (git_modes).
            h.update([u8::from(m.permissions().mode() & 0o100 != 0)]);
            if m.is_dir() {
                stack.push(r);
            } else if m.file_type().is_symlink() {
                h.update(fs::read_link(&p)?.to_string_lossy().as_bytes());
            } else {
                h.update(fs::read(&p)?);
            }
            h.update([0]);
        }
    }
    Ok(super::store::hash_bytes(&h.finalize()))
}

/// `path` under `root`, refusing any component that is a link (the root is a host path:
/// a link planted inside the container must not lead qval outside it).
pub fn inside(root: &Path, rel: &str) -> Result<PathBuf, EnvsError> {
    let mut p = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    for (i, c) in parts.iter().enumerate() {
        if Path::new(c).components().any(|k| !matches!(k, Component::Normal(_))) {
            return Err(EnvsError::Store(format!("`{rel}` leaves the container")));
        }
        p.push(c);
        if i + 1 < parts.len()
            && let Ok(m) = fs::symlink_metadata(&p)
            && m.file_type().is_symlink()
        {
            return Err(EnvsError::Store(format!(
                "`{rel}` passes through a link inside the container"
            )));
        }
    }
    Ok(p)
}

/// Reads a small regular file inside the container (not through a link), at most `max`
/// bytes; `None` when it is missing, not a file, or larger.
pub fn read_inside(root: &Path, rel: &str, max: u64) -> Option<Vec<u8>> {
    let p = inside(root, rel).ok()?;
    let m = fs::symlink_metadata(&p).ok()?;
    (m.is_file() && m.len() <= max).then(|| fs::read(&p).ok()).flatten()
}

/// Removes a file, link or folder (recursively, not following links); nothing there is fine.
pub(super) fn remove_any(p: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes the layer `tree` over a container's root (its mount): files, folders and links,
/// removals and replaced folders, with the fixed modification time.
///
/// # Errors
/// An unknown tree, an entry through a link, or a write failure.
pub fn apply_layer(store: &Store, tree: &str, root: &Path) -> Result<(), EnvsError> {
    let entries: Vec<Entry> = store.tree(tree)?;
    let time = super::store::restored_time();
    let mut dirs = Vec::new();
    for e in &entries {
        let p = inside(root, &e.path)?;
        let io = |op: &str, er| io_err(op, &p, er);
        match &e.kind {
            EntryKind::Removed => remove_any(&p).map_err(|er| io("remove", er))?,
            EntryKind::Replaced => {
                remove_any(&p).map_err(|er| io("remove", er))?;
                fs::create_dir(&p).map_err(|er| io("create", er))?;
                dirs.push((p, e.mode));
            }
            EntryKind::Dir => {
                if !fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                    remove_any(&p).map_err(|er| io("remove", er))?;
                    fs::create_dir(&p).map_err(|er| io("create", er))?;
                }
                dirs.push((p, e.mode));
            }
            EntryKind::Symlink { target } => {
                remove_any(&p).map_err(|er| io("remove", er))?;
                std::os::unix::fs::symlink(target, &p).map_err(|er| io("link", er))?;
                qval_sandbox::set_times(&p, time).map_err(|er| io("date", er))?;
            }
            EntryKind::File { hash, .. } => {
                remove_any(&p).map_err(|er| io("remove", er))?;
                fs::write(&p, &*store.get(hash)?).map_err(|er| io("write", er))?;
                fs::set_permissions(&p, fs::Permissions::from_mode(e.mode)).map_err(|er| io("write", er))?;
                qval_sandbox::set_times(&p, time).map_err(|er| io("date", er))?;
            }
        }
    }
    for (p, mode) in dirs.iter().rev() {
        fs::set_permissions(p, fs::Permissions::from_mode(*mode)).map_err(|er| io_err("write", p, er))?;
        qval_sandbox::set_times(p, time).map_err(|er| io_err("date", p, er))?;
    }
    Ok(())
}

/// A layer holding the Terminal-Bench layout's starting files under `app/` (its image is
/// the base, which has no `/app`).
///
/// # Errors
/// The folder cannot be read or the store written.
pub fn starting_layer(store: &Store, task_dir: &Path, reserved: &[&str], max_bytes: u64) -> Result<String, EnvsError> {
    let tmp = tempfile::tempdir().map_err(|e| EnvsError::Store(format!("a temporary folder: {e}")))?;
    let app = tmp.path().join("app");
    fs::create_dir(&app).map_err(|e| io_err("create", &app, e))?;
    let (files, _) = store.snapshot_checkout(task_dir, reserved, max_bytes)?;
    store.restore(&files, &app)?;
    fs::set_permissions(&app, fs::Permissions::from_mode(0o755)).map_err(|e| io_err("write", &app, e))?;
    Ok(store.snapshot_layer(tmp.path(), &[], &[], max_bytes)?.0)
}

/// The most bytes of a verifier's reward file qval reads.
const REWARD_BYTES: u64 = 4096;

/// The reward a Harbor verifier wrote (`reward.txt`: one number; `reward.json`: its
/// `reward`), noting in `output` why there is none.
pub fn verifier_reward(root: &Path, output: &mut String) -> Option<f64> {
    let txt = read_inside(root, "logs/verifier/reward.txt", REWARD_BYTES);
    let json = read_inside(root, "logs/verifier/reward.json", REWARD_BYTES);
    let r = match (txt, json) {
        (Some(t), _) => String::from_utf8_lossy(&t).trim().parse::<f64>().ok(),
        (None, Some(j)) => serde_json::from_slice::<serde_json::Value>(&j)
            .ok()
            .and_then(|v| v.get("reward")?.as_f64()),
        (None, None) => None,
    };
    match r {
        Some(r) if r.is_finite() => Some(r),
        _ => {
            output.push_str("\n[the verifier wrote no readable reward to /logs/verifier/reward.txt or reward.json: 0]");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_a_container_never_pass_through_its_links() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::os::unix::fs::symlink("/etc", r.join("app")).unwrap();
        std::fs::create_dir(r.join("srv")).unwrap();
        std::fs::write(r.join("srv/ok"), "fine").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", r.join("srv/link")).unwrap();
        assert!(inside(r, "app/passwd").is_err(), "through a link");
        assert!(inside(r, "../etc/passwd").is_err() && inside(r, "srv/../../x").is_err());
        assert_eq!(inside(r, "srv/ok").unwrap(), r.join("srv/ok"));
        assert_eq!(read_inside(r, "srv/ok", 16).as_deref(), Some(&b"fine"[..]));
        assert_eq!(read_inside(r, "srv/link", 4096), None, "a link is not read");
        assert_eq!(read_inside(r, "srv/ok", 2), None, "too large");
        // A layer whose entry would pass through the link is refused, and nothing is written.
        let store = Store::temporary().unwrap();
        let (hash, _) = store.put(b"owned").unwrap();
        let entries = vec![Entry {
            path: "app/passwd".into(),
            mode: 0o644,
            kind: EntryKind::File { hash, size: 5 },
        }];
        let (tree, _) = store.put(&serde_json::to_vec(&entries).unwrap()).unwrap();
        let e = apply_layer(&store, &tree, r).unwrap_err();
        assert!(e.to_string().contains("passes through a link"), "{e}");
        // A layer that makes the path a folder replaces the link, inside the root.
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("app")).unwrap();
        std::fs::write(src.path().join("app/passwd"), "owned").unwrap();
        let (tree, _) = store.snapshot_layer(src.path(), &[], &[], 1 << 20).unwrap();
        apply_layer(&store, &tree, r).unwrap();
        assert_eq!(std::fs::read_to_string(r.join("app/passwd")).unwrap(), "owned");
        assert!(
            !std::fs::symlink_metadata(r.join("app"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_ne!(std::fs::read_to_string("/etc/passwd").unwrap_or_default(), "owned");
    }

    /// Folders an engine copied up for its own files are not part of a state; folders
    /// the command made or changed are.
    #[test]
    fn a_folder_copied_up_unchanged_and_left_empty_is_not_a_change() {
        let lower = tempfile::tempdir().unwrap();
        let upper = tempfile::tempdir().unwrap();
        let mode = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
        for d in ["etc", "srv", "usr/lib"] {
            fs::create_dir_all(lower.path().join(d)).unwrap();
            fs::create_dir_all(upper.path().join(d)).unwrap();
        }
        mode(&lower.path().join("srv"), 0o755);
        mode(&upper.path().join("srv"), 0o700);
        fs::create_dir(upper.path().join("new")).unwrap();
        fs::write(upper.path().join("usr/lib/x"), "x").unwrap();
        let store = Store::temporary().unwrap();
        let lowers = [PathBuf::from("/nonexistent-qval"), lower.path().to_path_buf()];
        let (tree, _) = store.snapshot_layer(upper.path(), &lowers, &[], 1 << 20).unwrap();
        let paths: Vec<String> = store.tree(&tree).unwrap().into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["new", "srv", "usr", "usr/lib", "usr/lib/x"]);
        let (all, _) = store.snapshot_layer(upper.path(), &[], &[], 1 << 20).unwrap();
        assert_eq!(
            store.tree(&all).unwrap().len(),
            6,
            "without the lower layers, every folder"
        );
    }

    /// The image's folders are looked up as overlay does: a file or a link in a higher layer
    /// hides a lower layer's folder of that name, and nothing under a folder that replaced
    /// the image's (opaque) is a copy of the image's.
    #[test]
    fn a_new_folder_at_a_name_the_image_hides_or_under_a_replaced_folder_is_a_change() {
        let (top, bottom, upper) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        for d in ["a/b", "l/b", "etc/apt/sources.list.d"] {
            fs::create_dir_all(bottom.path().join(d)).unwrap();
            fs::create_dir_all(upper.path().join(d)).unwrap();
        }
        fs::write(top.path().join("a"), "a file over the folder").unwrap();
        std::os::unix::fs::symlink(bottom.path().join("l"), top.path().join("l")).unwrap();
        // `rm -rf /etc/apt && mkdir -p /etc/apt/sources.list.d`: etc/apt replaced the image's.
        let apt = upper.path().join("etc/apt");
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import os, sys; os.setxattr(sys.argv[1], 'trusted.overlay.opaque', b'y')",
            ])
            .arg(&apt)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "setting an overlay attribute needs root (as qval's container runtime does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let store = Store::temporary().unwrap();
        let lowers = [top.path().to_path_buf(), bottom.path().to_path_buf()];
        let (tree, _) = store.snapshot_layer(upper.path(), &lowers, &[], 1 << 20).unwrap();
        let paths: Vec<String> = store.tree(&tree).unwrap().into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            ["a", "a/b", "etc", "etc/apt", "etc/apt/sources.list.d", "l", "l/b"],
            "each folder is new to the image as overlay shows it"
        );
    }
}
