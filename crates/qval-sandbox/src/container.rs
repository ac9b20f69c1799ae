//! Containers through a Docker-compatible engine (podman or docker): images built once per
//! build context and cached by content, and one short-lived container per step whose
//! writable layer the caller reads and writes through a mount of the container's file
//! system (`podman mount`; for docker, qval's own mount of its overlay2 layers).
//!
//! Every container is created with no network (unless asked), all capabilities dropped but
//! the few a root shell needs to manage its own files, `no-new-privileges`, a pid, memory
//! and CPU limit from the cgroup, `nofile`/`nproc` limits at or below the host's hard
//! limits, a 16 MiB `/dev/shm`, nothing of the host mounted, and the label
//! `qval.owner=<pid>`. A [`Container`] is removed (killed first) when dropped; a reaper
//! process removes what a killed qval left behind within a second of its end
//! ([`Engine::start_reaper`]).
//!
//! ```no_run
//! use qval_sandbox::container::{ContainerSpec, Engine};
//! use std::time::Duration;
//!
//! let engine = Engine::detect(None)?;
//! let spec = ContainerSpec::new("localhost/qval-base:bookworm", ["echo", "hi"]);
//! let c = engine.create(&spec)?;
//! let out = c.run(Duration::from_secs(10), 4096, None)?;
//! assert_eq!(out.screen.text(), "hi\n");
//! # Ok::<(), qval_sandbox::SandboxError>(())
//! ```

use crate::{Captured, SandboxError, TreeLimit};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Which engine runs the containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    /// podman (daemonless; Debian package `podman`).
    Podman,
    /// docker (a running `dockerd` with the `overlay2` storage driver; Debian package
    /// `docker.io`).
    Docker,
}

impl EngineKind {
    /// The program's name.
    pub fn program(self) -> &'static str {
        match self {
            EngineKind::Podman => "podman",
            EngineKind::Docker => "docker",
        }
    }
}

/// A container engine that answers.
#[derive(Clone, Debug)]
pub struct Engine {
    kind: EngineKind,
    global: Vec<String>,
}

/// Resource limits and settings of one container.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    image: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    workdir: Option<String>,
    /// Whether the container may reach the network.
    pub network: bool,
    /// CPUs (fractional allowed).
    pub cpus: f64,
    /// Memory in bytes (swap included).
    pub memory: u64,
    /// Processes and threads in the container (cgroup pids limit).
    pub pids: u64,
}

impl ContainerSpec {
    /// A container of `image` running `argv`, with the defaults: no network, 1 CPU, 1 GiB,
    /// 256 processes.
    pub fn new<I, S>(image: impl Into<String>, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ContainerSpec {
            image: image.into(),
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            workdir: None,
            network: false,
            cpus: 1.0,
            memory: 1 << 30,
            pids: 256,
        }
    }

    /// Sets a variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The folder the command starts in (default: the image's `WORKDIR`).
    pub fn workdir(mut self, dir: impl Into<String>) -> Self {
        self.workdir = Some(dir.into());
        self
    }
}

/// The label every qval container carries: the pid of the qval process that made it.
pub const OWNER_LABEL: &str = "qval.owner";

fn engine_err(what: &str, out: &std::process::Output) -> SandboxError {
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    SandboxError::Unavailable(format!("{what}: {last}"))
}

/// The host's hard limit of a resource, capped at `cap`.
fn host_hard(resource: libc::__rlimit_resource_t, cap: u64) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid pointer to a local.
    if unsafe { libc::getrlimit(resource, &mut r) } != 0 {
        return cap;
    }
    // The field's type differs between targets.
    #[allow(clippy::unnecessary_cast)]
    let max = r.rlim_max as u64;
    max.min(cap)
}

impl Engine {
    /// The engine `prefer` names, or else podman, then docker, whichever answers (docker:
    /// whose daemon answers).
    ///
    /// # Errors
    /// [`SandboxError::Unavailable`] saying what to install, or quoting the engine that
    /// does not answer; also when qval does not run as root (it mounts containers' file
    /// systems: `podman mount` of a rootless container would need `podman unshare`).
    pub fn detect(prefer: Option<EngineKind>) -> Result<Engine, SandboxError> {
        let order: Vec<EngineKind> = match prefer {
            Some(k) => vec![k],
            None => vec![EngineKind::Podman, EngineKind::Docker],
        };
        let mut tried = Vec::new();
        for kind in order {
            let global: Vec<String> = match kind {
                // crun refuses hybrid cgroups on these machines; runc with cgroupfs works.
                EngineKind::Podman if which("runc") => ["--runtime", "runc", "--cgroup-manager", "cgroupfs"]
                    .map(String::from)
                    .to_vec(),
                EngineKind::Podman => ["--cgroup-manager", "cgroupfs"].map(String::from).to_vec(),
                EngineKind::Docker => Vec::new(),
            };
            let engine = Engine { kind, global };
            // docker's client answers without its daemon: ask the daemon's version.
            let version = match kind {
                EngineKind::Podman => "{{.Client.Version}}",
                EngineKind::Docker => "{{.Server.Version}}",
            };
            match engine.cmd().args(["version", "--format", version]).output() {
                Err(e) => tried.push(format!("{} ({e})", kind.program())),
                Ok(out) if !out.status.success() => {
                    tried.push(engine_err(kind.program(), &out).to_string());
                }
                Ok(_) if !crate::running_as_root() => {
                    return Err(SandboxError::Unavailable(format!(
                        "qval's container runtime needs root with {} (run qval as root) for now: it mounts each container's file system",
                        kind.program()
                    )));
                }
                Ok(_) if kind == EngineKind::Docker => return engine.docker_overlay2().map(|()| engine),
                Ok(_) => return Ok(engine),
            }
        }
        Err(SandboxError::Unavailable(format!(
            "no container engine answers ({}): {}",
            tried.join("; "),
            match prefer {
                Some(EngineKind::Docker) =>
                    "apt-get install docker.io, and start dockerd (bash scripts/docker_local.sh)",
                _ => "apt-get install podman runc (or docker.io, with dockerd running)",
            }
        )))
    }

    /// docker: the daemon keeps its layers with the `overlay2` driver in a folder of this
    /// machine (qval mounts them itself).
    fn docker_overlay2(&self) -> Result<(), SandboxError> {
        let info = self.output(
            "ask docker's storage",
            &["info", "--format", "{{.Driver}} {{.DockerRootDir}}"],
        )?;
        match info.split_once(' ') {
            Some(("overlay2", root)) if Path::new(root).is_dir() => Ok(()),
            Some(("overlay2", root)) => Err(SandboxError::Unavailable(format!(
                "docker keeps its layers in {root}, which is not on this machine: qval mounts a container's layers itself, so it needs a local dockerd"
            ))),
            _ => Err(SandboxError::Unavailable(format!(
                "docker's storage is `{info}`: qval reads a container's writable layer from the overlay2 storage driver (dockerd --storage-driver overlay2)"
            ))),
        }
    }

    /// Which engine this is.
    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    /// A command line of the engine with its global options.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(self.kind.program());
        // Not the user's folder: conmon writes an `oom` file into its working folder when a
        // container runs out of memory.
        c.args(&self.global)
            .stdin(Stdio::null())
            .current_dir(std::env::temp_dir());
        c
    }

    /// The engine's id of image `tag` (its content), if present.
    pub fn image_id(&self, tag: &str) -> Option<String> {
        self.output("inspect an image", &["image", "inspect", "--format", "{{.Id}}", tag])
            .ok()
    }

    fn output(&self, what: &str, args: &[&str]) -> Result<String, SandboxError> {
        let out =
            self.cmd().args(args).output().map_err(|e| {
                SandboxError::Unavailable(format!("{what}: cannot start {} ({e})", self.kind.program()))
            })?;
        if !out.status.success() {
            return Err(engine_err(what, &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Whether the image `tag` is present locally.
    pub fn image_exists(&self, tag: &str) -> bool {
        self.image_id(tag).is_some()
    }

    /// Builds `tag` from `dockerfile` in `context` with `args` (build arguments) unless it
    /// exists; the build's output goes to `log`. podman never pulls; docker's classic builder
    /// pulls a `FROM` image it does not have. No network for the build's steps unless `network`.
    /// Returns whether it built (false: cached).
    ///
    /// # Errors
    /// [`SandboxError::Build`] with the step that failed and the engine's last error line.
    pub fn build(&self, req: &BuildRequest<'_>) -> Result<bool, SandboxError> {
        if self.image_exists(req.tag) {
            return Ok(false);
        }
        if let Some(dir) = req.log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| SandboxError::Io(format!("{}: {e}", dir.display())))?;
        }
        let log =
            std::fs::File::create(req.log).map_err(|e| SandboxError::Io(format!("{}: {e}", req.log.display())))?;
        let log2 = log.try_clone().map_err(|e| SandboxError::Io(e.to_string()))?;
        let mut c = self.cmd();
        c.arg("build");
        match self.kind {
            EngineKind::Podman => {
                c.arg("--pull=never");
            }
            // docker's `--pull` only says whether to pull newer images; it never pulls one
            // that is present. BuildKit would need the buildx plugin: the classic builder.
            EngineKind::Docker => {
                c.env("DOCKER_BUILDKIT", "0");
            }
        }
        // No layer cache: the engines key a COPY by the files' contents, not their times, and
        // qval's own cache is the tag (the context's content).
        c.args(["--no-cache", "--force-rm", "-t", req.tag, "-f"])
            .arg(req.dockerfile)
            // The engine's own network when the task may reach the internet (never the host's).
            .args(if req.network {
                &[][..]
            } else {
                &["--network", "none"][..]
            });
        for (k, v) in req.args {
            c.arg("--build-arg").arg(format!("{k}={v}"));
        }
        c.arg(req.context).stdout(log).stderr(log2);
        let mut child = c
            .spawn()
            .map_err(|e| SandboxError::Unavailable(format!("cannot start {} ({e})", self.kind.program())))?;
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().map_err(|e| SandboxError::Io(e.to_string()))? {
                break Some(s);
            }
            if start.elapsed() > req.timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let text = std::fs::read_to_string(req.log).unwrap_or_default();
        match status {
            Some(s) if s.success() => Ok(true),
            Some(_) => Err(SandboxError::Build(build_failure(&text, req.log))),
            None => Err(SandboxError::Build(format!(
                "the build took longer than {:.0} s (log: {})",
                req.timeout.as_secs_f64(),
                req.log.display()
            ))),
        }
    }

    /// Creates (does not start) a container of `spec`.
    ///
    /// # Errors
    /// The engine refuses (an unknown image, a bad limit).
    pub fn create(&self, spec: &ContainerSpec) -> Result<Container, SandboxError> {
        self.start_reaper();
        let nofile = host_hard(libc::RLIMIT_NOFILE, 1024);
        let nproc = host_hard(libc::RLIMIT_NPROC, 4096);
        let owner = format!("{OWNER_LABEL}={}", std::process::id());
        let mut args: Vec<String> = [
            "create",
            "--label",
            &owner,
            "--pull=never",
            "--network",
            if spec.network { "bridge" } else { "none" },
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            "--shm-size=16m",
            "--hostname=qval",
        ]
        .map(String::from)
        .to_vec();
        // One option per capability: docker does not split a list.
        for cap in ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID"] {
            args.push(format!("--cap-add={cap}"));
        }
        args.push(format!("--pids-limit={}", spec.pids));
        args.push(format!("--memory={}", spec.memory));
        args.push(format!("--memory-swap={}", spec.memory));
        args.push(format!("--cpus={}", spec.cpus));
        args.push(format!("--ulimit=nofile={nofile}:{nofile}"));
        args.push(format!("--ulimit=nproc={nproc}:{nproc}"));
        if let Some(w) = &spec.workdir {
            args.push(format!("--workdir={w}"));
        }
        for (k, v) in &spec.env {
            args.push(format!("--env={k}={v}"));
        }
        args.push(spec.image.clone());
        args.extend(spec.argv.iter().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let id = self.output("create a container", &refs)?;
        Ok(Container {
            engine: self.clone(),
            id,
            mounted: OnceLock::new(),
            layers: OnceLock::new(),
            live: Mutex::new(false),
        })
    }

    /// Removes every container a qval process that has ended left behind.
    pub fn sweep(&self) {
        let owner = match self.kind {
            EngineKind::Podman => format!("{{{{.ID}}}} {{{{index .Labels \"{OWNER_LABEL}\"}}}}"),
            EngineKind::Docker => format!("{{{{.ID}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}"),
        };
        let filter = format!("label={OWNER_LABEL}");
        let Ok(list) = self.output(
            "list containers",
            &["ps", "-a", "--no-trunc", "--filter", &filter, "--format", &owner],
        ) else {
            return;
        };
        for line in list.lines() {
            let Some((id, pid)) = line.split_once(' ') else {
                continue;
            };
            let pid = pid.trim().parse::<i32>().ok();
            // SAFETY: kill with signal 0 only checks that the process exists.
            if pid.is_some_and(|p| unsafe { libc::kill(p, 0) } != 0) {
                if let Some(p) = pid {
                    let dir = crate::overlay::mounts_dir(p as u32);
                    let _ = crate::overlay::unmount(&dir.join(id));
                    let _ = std::fs::remove_dir(dir.join(id));
                    let _ = std::fs::remove_dir(&dir);
                }
                let _ = self.output("remove a container", &["rm", "-f", id]);
            }
        }
    }

    /// Starts, once per process and engine, a detached watcher that removes this process's
    /// containers of the engine when it ends, however it ends (SIGKILL included), and for
    /// docker first the mounts qval made of their layers.
    pub fn start_reaper(&self) {
        static STARTED: [OnceLock<()>; 2] = [OnceLock::new(), OnceLock::new()];
        STARTED[self.kind as usize].get_or_init(|| {
            self.sweep();
            let me = std::process::id();
            let engine = format!("{} {}", self.kind.program(), self.global.join(" "));
            // The mounts of docker containers (qval's own, in a folder only root can enter) go
            // first, then the containers.
            let mounts = crate::overlay::mounts_dir(me);
            let script = format!(
                "while kill -0 {me} 2>/dev/null; do sleep 0.2; done; \
                 if [ -d \"$1\" ] && [ ! -L \"$1\" ]; then \
                   for m in \"$1\"/*; do [ -d \"$m\" ] && [ ! -L \"$m\" ] && umount -l -- \"$m\" 2>/dev/null; rmdir -- \"$m\" 2>/dev/null; done; \
                   rmdir -- \"$1\" 2>/dev/null; \
                 fi; \
                 ids=$({engine} ps -aq --no-trunc --filter label={OWNER_LABEL}={me}); \
                 [ -z \"$ids\" ] || {engine} rm -f $ids >/dev/null 2>&1"
            );
            let mut c = Command::new("sh");
            c.args(["-c", &script, "qval-reaper"])
                .arg(&mounts)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            use std::os::unix::process::CommandExt;
            // SAFETY: setsid is async-signal-safe; the reaper outlives our process group.
            unsafe {
                c.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
            if let Ok(mut child) = c.spawn() {
                // Reap it when it ends if we are still here (no zombie); it ends after us.
                std::thread::spawn(move || child.wait());
            }
        });
    }
}

/// What [`Engine::build`] builds.
#[derive(Clone, Debug)]
pub struct BuildRequest<'a> {
    /// The image's tag.
    pub tag: &'a str,
    /// The build context.
    pub context: &'a Path,
    /// The Dockerfile.
    pub dockerfile: &'a Path,
    /// Build arguments.
    pub args: &'a [(String, String)],
    /// Where the build's output goes.
    pub log: &'a Path,
    /// Whether the build may reach the network.
    pub network: bool,
    /// The longest the build may take.
    pub timeout: Duration,
}

/// The failing step and the last error line of a build's output (podman's `STEP 2/3:` or
/// docker's `Step 2/3 :`), with terminal colour codes taken out.
fn build_failure(text: &str, log: &Path) -> String {
    let text = strip_colours(text);
    let step = text
        .lines()
        .rev()
        .find(|l| l.starts_with("STEP ") || l.starts_with("Step "))
        .map_or("its start".to_string(), |l| l.trim().to_string());
    let error = text
        .lines()
        .rev()
        .find(|l| l.starts_with("Error") || l.contains("error") || l.contains("returned a non-zero code"))
        .unwrap_or("")
        .trim();
    format!("the build failed at {step}: {error} (log: {})", log.display())
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
fn strip_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// A created container, removed with everything in it when dropped.
#[derive(Debug)]
pub struct Container {
    engine: Engine,
    id: String,
    /// Where its file system is seen from the host.
    mounted: OnceLock<PathBuf>,
    /// The overlay's layers, read once.
    layers: OnceLock<crate::overlay::Layers>,
    /// docker: whether qval's mount is in place now (not while the container runs).
    live: Mutex<bool>,
}

impl Container {
    /// The engine's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The container's file system as seen from the host (the image's layers under its
    /// writable layer): writes here land in the writable layer, removals leave whiteouts.
    /// docker: qval's own mount, taken away while [`Container::run`] runs and put back when
    /// it returns (or at the next call of this, should that fail), at the same path.
    ///
    /// # Errors
    /// The engine cannot mount it.
    pub fn root(&self) -> Result<&Path, SandboxError> {
        if self.engine.kind == EngineKind::Docker {
            let at = self
                .mounted
                .get_or_init(|| crate::overlay::mounts_dir(std::process::id()).join(&self.id));
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            if !*live {
                crate::overlay::mount(self.layers()?, at)?;
                *live = true;
            }
            return Ok(at);
        }
        if let Some(p) = self.mounted.get() {
            return Ok(p);
        }
        let p = PathBuf::from(self.engine.output("mount the container", &["mount", &self.id])?);
        Ok(self.mounted.get_or_init(|| p))
    }

    /// The container's overlay layers.
    fn layers(&self) -> Result<&crate::overlay::Layers, SandboxError> {
        if let Some(l) = self.layers.get() {
            return Ok(l);
        }
        let format = "{{.GraphDriver.Data.LowerDir}}\n{{.GraphDriver.Data.UpperDir}}\n{{.GraphDriver.Data.WorkDir}}";
        let text = self
            .engine
            .output("inspect the container", &["inspect", "--format", format, &self.id])?;
        let l = crate::overlay::Layers::parse(&text)?;
        Ok(self.layers.get_or_init(|| l))
    }

    /// docker: takes qval's mount away while the container runs (docker mounts the same
    /// layers itself); returns whether it was there.
    fn unmount_for_run(&self) -> Result<bool, SandboxError> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        match (self.engine.kind, self.mounted.get()) {
            (EngineKind::Docker, Some(at)) if *live => {
                crate::overlay::unmount(at)?;
                *live = false;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The writable layer itself (overlay's upper folder: changed files, and whiteouts for
    /// removed ones). Mounts the container first.
    ///
    /// # Errors
    /// The engine cannot mount it or does not use overlay.
    pub fn upper(&self) -> Result<PathBuf, SandboxError> {
        self.root()?;
        Ok(self.layers()?.upper().to_path_buf())
    }

    /// The image's layers under the writable one (overlay's lower folders), the top one
    /// first: where a path of the writable layer was before the container changed it.
    ///
    /// # Errors
    /// The engine does not use overlay.
    pub fn lower(&self) -> Result<Vec<PathBuf>, SandboxError> {
        Ok(self.layers()?.lower())
    }

    /// Starts the container and waits for its command: merged output kept as a capped
    /// [`Screen`], killed after `timeout` or when `watch` grows past its limit.
    ///
    /// # Errors
    /// The engine cannot start it.
    pub fn run(&self, timeout: Duration, cap: usize, watch: Option<TreeLimit>) -> Result<Captured, SandboxError> {
        let remount = self.unmount_for_run()?;
        let mut c = self.engine.cmd();
        c.args(["start", "--attach", &self.id]);
        let kill = {
            let engine = self.engine.clone();
            let id = self.id.clone();
            move || {
                let _ = engine
                    .cmd()
                    .args(["kill", &id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        };
        let install = match self.engine.kind {
            EngineKind::Podman => "apt-get install podman runc",
            EngineKind::Docker => "apt-get install docker.io, and start dockerd",
        };
        let out = crate::capture(&mut c, None, timeout, cap, watch, kill, install)?;
        if out.timed_out || out.over_size.is_some() {
            // Killed, not ended: stopped for sure before anyone reads its files (a container
            // whose command ended has stopped when `start --attach` returns).
            let _ = self
                .engine
                .cmd()
                .args(["stop", "-t", "0", &self.id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if remount {
            // The files as the command left them, at the same place as before; should this
            // fail, the output is still returned and the next `root()` tries again.
            let _ = self.root();
        }
        Ok(out)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let rm: &[&str] = match (self.engine.kind, self.mounted.get()) {
            (EngineKind::Podman, Some(_)) => {
                let _ = self
                    .engine
                    .cmd()
                    .args(["unmount", &self.id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                &["rm", "-f", "-t", "0"]
            }
            (EngineKind::Podman, None) => &["rm", "-f", "-t", "0"],
            (EngineKind::Docker, at) => {
                if let Some(at) = at {
                    if *self.live.get_mut().unwrap_or_else(|e| e.into_inner()) {
                        let _ = crate::overlay::unmount(at);
                    }
                    let _ = std::fs::remove_dir(at);
                }
                &["rm", "-f"]
            }
        };
        let _ = self
            .engine
            .cmd()
            .args(rm)
            .arg(&self.id)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether `meta` is an overlay whiteout (a character device 0/0: a removed file).
pub fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether the folder `path` is overlay-opaque (it replaced the lower folder's contents).
pub fn is_opaque(path: &Path) -> bool {
    xattr(path, c"trusted.overlay.opaque").as_deref() == Some(b"y")
}

/// Whether `path` carries overlay's metacopy or redirect attribute (its data or its name
/// live in a lower layer), which a snapshot of the writable layer alone cannot hold.
pub fn is_indirect(path: &Path) -> bool {
    xattr(path, c"trusted.overlay.metacopy").is_some() || xattr(path, c"trusted.overlay.redirect").is_some()
}

/// The value of the extended attribute `name` of `path` (not following links), up to 256 bytes.
fn xattr(path: &Path, name: &std::ffi::CStr) -> Option<Vec<u8>> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut buf = [0u8; 256];
    // SAFETY: NUL-terminated strings and a buffer of the given length.
    let n = unsafe { libc::lgetxattr(c.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_build_names_its_step_and_error_in_either_engine() {
        let log = Path::new("/l.log");
        let podman = "STEP 1/2: FROM base\nSTEP 2/2: RUN apt-get install -y nope\nE: Unable to locate package nope\n\
                      Error: building at STEP \"RUN apt-get install -y nope\": while running runtime: exit status 100\n";
        assert_eq!(
            build_failure(podman, log),
            "the build failed at STEP 2/2: RUN apt-get install -y nope: Error: building at STEP \"RUN apt-get install -y nope\": while running runtime: exit status 100 (log: /l.log)"
        );
        let docker = "Step 1/2 : FROM base\n ---> a0a05daaa453\nStep 2/2 : RUN apt-get install -y nope\n\
                      \u{1b}[91mE: Unable to locate package nope\n\u{1b}[0mThe command '/bin/sh -c apt-get install -y nope' returned a non-zero code: 100\n";
        assert_eq!(
            build_failure(docker, log),
            "the build failed at Step 2/2 : RUN apt-get install -y nope: The command '/bin/sh -c apt-get install -y nope' returned a non-zero code: 100 (log: /l.log)"
        );
    }
}
