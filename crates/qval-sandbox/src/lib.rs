//! # qval-sandbox
//!
//! The containment shared by qval's sandboxes (generated Python in `qval-methods`, shell
//! commands in `qval-envs`' TerminalBench), so there is one audited copy of it:
//!
//! - [`Bwrap`]: a bubblewrap (`bwrap`, Debian package `bubblewrap`) command line with new
//!   user, PID, network, IPC and UTS namespaces (no network at all), only `/usr` of the
//!   host mounted and read-only, a fresh `/proc`, a read-only `/dev` with a size-limited
//!   `/dev/shm`, a size-limited `/tmp`, the caller's binds and size-limited tmpfs
//!   ([`Bwrap::tmpfs`]), the root remounted read-only, a cleared environment, and the
//!   whole tree killed with its parent;
//! - [`Limits`] and [`limits_hook`]: setrlimit (address space, processes, CPU, file size, no
//!   core dumps), a new session, and when the caller is root a drop to the unprivileged
//!   uid/gid [`SANDBOX_UID`] (the kernel exempts uid 0 from `RLIMIT_NPROC`);
//! - [`run_captured`]: one command with a wall-clock limit (the process group is killed on
//!   expiry) and its merged stdout/stderr captured as a [`Screen`] that keeps the head and
//!   the tail of long output, so memory stays bounded however much is printed;
//!   [`run_captured_watched`] also kills it when host folders bound writable grow past a
//!   [`TreeLimit`].
//!
//! [`bubblewrap_works`] checks that bubblewrap can create its namespaces here; callers refuse
//! to start without it rather than running anything unconfined.
//!
//! ```no_run
//! use qval_sandbox::{Bwrap, Limits, run_captured};
//! use std::time::Duration;
//!
//! qval_sandbox::bubblewrap_works()?;
//! let mut cmd = Bwrap::new().chdir("/").command(["/usr/bin/echo", "hello"]);
//! let out = run_captured(&mut cmd, &Limits::default(), Duration::from_secs(5), 4096)?;
//! assert_eq!(out.screen.text(), "hello\n");
//! # Ok::<(), qval_sandbox::SandboxError>(())
//! ```
#![deny(missing_docs)]

pub mod container;
mod overlay;
mod pids;
mod root;
pub use pids::PidsGroup;
pub use root::{fixed_root, set_times};

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The uid and gid sandboxed processes run as when qval itself runs as root (`nobody`).
pub const SANDBOX_UID: u32 = 65534;

/// Why a sandbox could not run at all.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SandboxError {
    /// Bad limits or paths.
    #[error("sandbox configuration: {0}")]
    Config(String),
    /// bubblewrap (or the program to run) is missing or cannot start.
    #[error("{0}")]
    Unavailable(String),
    /// An I/O error around the sandboxed process (pipes, waiting).
    #[error("sandbox I/O: {0}")]
    Io(String),
    /// A container image could not be built.
    #[error("{0}")]
    Build(String),
}

/// Size of the sandbox's `/dev/shm` (a tmpfs; the rest of `/dev` is read-only).
pub const SHM_BYTES: u64 = 16 << 20;

/// Size of the sandbox's `/tmp` (a tmpfs).
pub const TMP_BYTES: u64 = 64 << 20;

/// The read-only system inside the sandbox: `/usr`, with the merged-/usr links.
pub const SYSTEM_MOUNTS: [&str; 12] = [
    "--ro-bind",
    "/usr",
    "/usr",
    "--symlink",
    "usr/lib",
    "/lib",
    "--symlink",
    "usr/lib64",
    "/lib64",
    "--symlink",
    "usr/bin",
    "/bin",
];

/// Whether bubblewrap can create its namespaces here.
///
/// # Errors
/// [`SandboxError::Unavailable`] naming `apt-get install bubblewrap` when it is missing, or
/// quoting bubblewrap when it cannot create namespaces (containers without user namespaces).
pub fn bubblewrap_works() -> Result<(), SandboxError> {
    let out = Command::new("bwrap")
        .args(SYSTEM_MOUNTS)
        .args(["--unshare-all", "--die-with-parent", "/usr/bin/true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| {
            SandboxError::Unavailable(format!("bubblewrap is not installed ({e}): apt-get install bubblewrap"))
        })?;
    if !out.status.success() {
        return Err(SandboxError::Unavailable(format!(
            "bubblewrap cannot create namespaces here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Pauses before each new try of a spawn the kernel refused for now (`EAGAIN`: too many
/// processes of the sandbox user, or of a pid cgroup, at this moment): 10 ms doubling to
/// 1.28 s, about 2.5 s in all, after which the refusal stands.
pub const SPAWN_BACKOFF: [Duration; 8] = {
    let mut d = [Duration::ZERO; 8];
    let mut i = 0;
    while i < 8 {
        d[i] = Duration::from_millis(10 << i);
        i += 1;
    }
    d
};

/// Whether a failed spawn may succeed when tried again (the kernel's `EAGAIN`: a process
/// limit reached for now, often while other sandboxes wind down).
pub fn spawn_is_transient(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EAGAIN)
}

/// The one-line reason a sandboxed `program` did not start: a missing program names the
/// package to install; a process limit names the limit.
pub fn spawn_failure(program: &std::ffi::OsStr, e: &std::io::Error, install: &str) -> String {
    if spawn_is_transient(e) {
        let who = if running_as_root() {
            format!("uid {SANDBOX_UID}, the sandbox user")
        } else {
            "this user".to_string()
        };
        format!(
            "cannot start {program:?}: too many processes ({e}) for {who} or this cgroup, still after {:.1} s of retries",
            SPAWN_BACKOFF.iter().sum::<Duration>().as_secs_f64()
        )
    } else if e.kind() == std::io::ErrorKind::NotFound {
        format!("cannot start {program:?} ({e}); {install}")
    } else {
        format!("cannot start {program:?} ({e})")
    }
}

/// Whether this process runs as root (sandboxed processes then drop to [`SANDBOX_UID`]).
pub fn running_as_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

/// Bytes available to this process on the file system holding `path`, if it can be asked.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a NUL-terminated path and a pointer to writable storage of the right type.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs succeeded, so it filled the struct.
    let st = unsafe { st.assume_init() };
    // The field types differ between targets (u32 on some 32-bit ones).
    #[allow(clippy::unnecessary_cast)]
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Hands `path` to the sandbox user when running as root, so the dropped process can
/// write there; does nothing otherwise (the user namespace maps the caller's own uid).
///
/// # Errors
/// The chown failure.
pub fn give_to_sandbox_user(path: &Path) -> std::io::Result<()> {
    if running_as_root() {
        std::os::unix::fs::lchown(path, Some(SANDBOX_UID), Some(SANDBOX_UID))?;
    }
    Ok(())
}

/// A bubblewrap command line. The system ([`SYSTEM_MOUNTS`], or a fixed root with `/usr`:
/// [`Bwrap::on_root`]), `/proc`, `/dev` and a `/tmp` tmpfs come first, then the caller's
/// binds in order, then the root is remounted read-only,
/// so a sandboxed process can write only into writable binds and `/tmp`.
#[derive(Clone, Debug)]
pub struct Bwrap {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    chdir: OsString,
}

impl Default for Bwrap {
    fn default() -> Self {
        Self::new()
    }
}

impl Bwrap {
    /// The base line: system read-only, `/proc`, a read-only `/dev` (its device nodes still
    /// work) with a [`SHM_BYTES`] `/dev/shm`, a [`TMP_BYTES`] `/tmp`, `PATH=/usr/bin:/bin`.
    /// Every writable place a caller adds should be size-limited too: [`Bwrap::tmpfs`].
    pub fn new() -> Self {
        Self::with_system(SYSTEM_MOUNTS.iter().map(OsString::from).collect())
    }

    /// As [`Bwrap::new`], on the fixed root `dir` ([`fixed_root`], bound read-only at `/`)
    /// instead of a fresh tmpfs: what a command sees of `/` is dated the same on every run.
    /// Every place bound later must be one of the root's mount points.
    pub fn on_root(dir: impl AsRef<OsStr>) -> Self {
        let system: Vec<OsString> = vec![
            "--ro-bind".into(),
            dir.as_ref().into(),
            "/".into(),
            "--ro-bind".into(),
            "/usr".into(),
            "/usr".into(),
        ];
        Self::with_system(system)
    }

    fn with_system(mut args: Vec<OsString>) -> Self {
        let (shm, tmp) = (SHM_BYTES.to_string(), TMP_BYTES.to_string());
        for a in [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            &shm,
            "--tmpfs",
            "/dev/shm",
            "--remount-ro",
            "/dev",
            "--size",
            &tmp,
            "--tmpfs",
            "/tmp",
        ] {
            args.push(a.into());
        }
        Bwrap {
            args,
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            chdir: "/".into(),
        }
    }

    /// Mounts a fresh, empty, writable tmpfs of at most `bytes` at `dest` (memory, gone with
    /// the sandbox; writing past the size fails with "No space left on device").
    pub fn tmpfs(mut self, dest: impl AsRef<OsStr>, bytes: u64) -> Self {
        self.args.push("--size".into());
        self.args.push(bytes.to_string().into());
        self.args.push("--tmpfs".into());
        self.args.push(dest.as_ref().into());
        self
    }

    fn push3(mut self, op: &str, a: impl AsRef<OsStr>, b: impl AsRef<OsStr>) -> Self {
        self.args.push(op.into());
        self.args.push(a.as_ref().into());
        self.args.push(b.as_ref().into());
        self
    }

    /// Binds host `src` at `dest`, writable.
    pub fn bind(self, src: impl AsRef<OsStr>, dest: impl AsRef<OsStr>) -> Self {
        self.push3("--bind", src, dest)
    }

    /// Binds host `src` at `dest`, read-only.
    pub fn ro_bind(self, src: impl AsRef<OsStr>, dest: impl AsRef<OsStr>) -> Self {
        self.push3("--ro-bind", src, dest)
    }

    /// Binds host `src` at `dest`, read-only, when `src` exists (skipped otherwise).
    pub fn ro_bind_try(self, src: impl AsRef<OsStr>, dest: impl AsRef<OsStr>) -> Self {
        self.push3("--ro-bind-try", src, dest)
    }

    /// Sets an environment variable (the environment starts empty but for `PATH`).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        let key = key.as_ref().to_os_string();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.as_ref().into()));
        self
    }

    /// Removes an environment variable.
    pub fn unset(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.retain(|(k, _)| k.as_os_str() != key.as_ref());
        self
    }

    /// The working folder inside the sandbox (default `/`).
    pub fn chdir(mut self, dir: impl AsRef<OsStr>) -> Self {
        self.chdir = dir.as_ref().into();
        self
    }

    /// The full `bwrap` command running `program` with `args` (the first item is the
    /// program, an absolute path inside the sandbox).
    pub fn command<I, S>(&self, argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("bwrap");
        cmd.args(&self.args)
            .args(["--remount-ro", "/", "--chdir"])
            .arg(&self.chdir)
            .args(["--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]);
        for (k, v) in &self.env {
            cmd.arg("--setenv").arg(k).arg(v);
        }
        cmd.arg("--").args(argv);
        cmd.env_clear();
        cmd
    }
}

/// Resource limits of a sandboxed process (each applies per process; `processes` counts the
/// run's own processes where qval, as root, gives it a pids cgroup ([`PidsGroup`]), else all
/// processes of the sandbox user).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Address space in bytes (default 1 GiB).
    pub memory: u64,
    /// Processes of the run (its pids cgroup), else of the sandbox user (default 256).
    pub processes: u64,
    /// CPU seconds (default 60).
    pub cpu_seconds: u64,
    /// Largest file a process may write, in bytes (default 16 MiB).
    pub file_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 1 << 30,
            processes: 256,
            cpu_seconds: 60,
            file_size: 16 << 20,
        }
    }
}

/// The function to run between fork and exec: the limits, a new session, and the drop to
/// [`SANDBOX_UID`] when running as root. Install it with `pre_exec` (std or tokio):
/// `unsafe { cmd.pre_exec(limits_hook(limits)) }`; it only makes async-signal-safe calls
/// (setrlimit, setsid, setgroups, setgid, setuid).
pub fn limits_hook(limits: Limits) -> impl FnMut() -> std::io::Result<()> + Send + Sync + 'static {
    limits_hook_in(limits, None)
}

/// [`limits_hook`] that first moves the process into `group` (a pids cgroup of its own:
/// then `limits.processes` is the group's limit, and `RLIMIT_NPROC`, shared by every
/// sandbox of the same user, is left alone); without a group, or if joining it fails,
/// `RLIMIT_NPROC` is set as [`limits_hook`] does.
pub fn limits_hook_in(
    limits: Limits,
    group: Option<&PidsGroup>,
) -> impl FnMut() -> std::io::Result<()> + Send + Sync + 'static {
    let procs = group.map(|g| g.procs().clone());
    move || {
        let lim = |res, v: u64| {
            let r = libc::rlimit {
                rlim_cur: v as libc::rlim_t,
                rlim_max: v as libc::rlim_t,
            };
            // SAFETY: setrlimit with a valid pointer to a local.
            if unsafe { libc::setrlimit(res, &r) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        };
        let grouped = procs.as_ref().is_some_and(pids::join);
        lim(libc::RLIMIT_AS, limits.memory)?;
        if !grouped {
            lim(libc::RLIMIT_NPROC, limits.processes)?;
        }
        lim(libc::RLIMIT_CPU, limits.cpu_seconds)?;
        lim(libc::RLIMIT_FSIZE, limits.file_size)?;
        lim(libc::RLIMIT_CORE, 0)?;
        // SAFETY: async-signal-safe calls without pointers but a null list of no groups.
        unsafe {
            libc::setsid();
            if libc::getuid() == 0
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(SANDBOX_UID) != 0
                    || libc::setuid(SANDBOX_UID) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Reads `reader` into a capped screen (the output of [`capture`]).
fn read_screen(reader: &mut impl std::io::Read, cap: usize) -> (Screen, std::io::Result<()>) {
    let mut screen = Screen::new(cap);
    let mut buf = [0u8; 16384];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return (screen, Ok(())),
            Ok(n) => screen.push(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (screen, Err(e)),
        }
    }
}

/// Captured terminal output: the first and last `cap / 2` bytes of a long stream, with the
/// count of bytes left out between them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Screen {
    cap: usize,
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    /// Bytes left out between head and tail.
    pub omitted: u64,
}

impl Screen {
    /// An empty screen keeping at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Screen {
            cap,
            ..Screen::default()
        }
    }

    /// Appends output.
    pub fn push(&mut self, mut bytes: &[u8]) {
        let half = self.cap / 2;
        if self.head.len() < self.cap - half {
            let n = bytes.len().min(self.cap - half - self.head.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        for &b in bytes {
            if self.tail.len() == half {
                self.tail.pop_front();
                self.omitted += 1;
            }
            self.tail.push_back(b);
        }
    }

    /// The text shown: head, a marker naming the omitted byte count, tail (lossy UTF-8).
    pub fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.head).into_owned();
        if self.omitted > 0 {
            s.push_str(&format!("\n[... {} bytes of output omitted ...]\n", self.omitted));
        }
        let (a, b) = self.tail.as_slices();
        let mut t = a.to_vec();
        t.extend_from_slice(b);
        s.push_str(&String::from_utf8_lossy(&t));
        s
    }
}

/// The outcome of [`run_captured`].
#[derive(Clone, Debug)]
pub struct Captured {
    /// The exit status (a killed process has none of its own: see `timed_out`).
    pub status: ExitStatus,
    /// Merged stdout and stderr.
    pub screen: Screen,
    /// Whether the wall-clock limit killed it.
    pub timed_out: bool,
    /// Why a [`TreeLimit`] killed it, if one did.
    pub over_size: Option<String>,
    /// Wall-clock time.
    pub elapsed: Duration,
}

/// A limit on what host folders bound writable into a sandbox may hold while a command
/// runs (bubblewrap cannot size a bind): [`run_captured_watched`] measures them every
/// [`TreeLimit::POLL`] and kills the command's process group when they hold more than
/// `max_bytes` (disk blocks used) or `max_entries` entries. A watchdog, not a quota: a fast
/// writer may overshoot by what it writes in one poll interval before it is killed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeLimit {
    /// The folders measured together.
    pub roots: Vec<std::path::PathBuf>,
    /// Most bytes (allocated blocks) under them.
    pub max_bytes: u64,
    /// Most files, folders and links under them.
    pub max_entries: u64,
}

impl TreeLimit {
    /// How often the folders are measured.
    pub const POLL: Duration = Duration::from_millis(20);

    /// Why the folders are over the limit, if they are (the walk stops at the limit).
    pub fn exceeded(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let (mut bytes, mut entries) = (0u64, 0u64);
        let mut stack: Vec<std::path::PathBuf> = self.roots.clone();
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                entries += 1;
                if let Ok(m) = e.path().symlink_metadata() {
                    bytes += m.blocks() * 512;
                    if m.is_dir() {
                        stack.push(e.path());
                    }
                }
                if bytes > self.max_bytes {
                    return Some(format!("the writable folders grew past {} bytes", self.max_bytes));
                }
                if entries > self.max_entries {
                    return Some(format!("the writable folders grew past {} entries", self.max_entries));
                }
            }
        }
        None
    }
}

/// Runs `cmd` with `limits`, stdin from `/dev/null`, stdout and stderr merged into one
/// capped [`Screen`], killing its process group after `timeout`.
///
/// # Errors
/// [`SandboxError::Unavailable`] when the program cannot start, [`SandboxError::Io`] on a
/// pipe failure.
pub fn run_captured(
    cmd: &mut Command,
    limits: &Limits,
    timeout: Duration,
    cap: usize,
) -> Result<Captured, SandboxError> {
    run_captured_watched(cmd, limits, timeout, cap, None)
}

/// [`run_captured`], also killing the process group when the folders of `watch` grow past
/// its limit ([`Captured::over_size`] says so).
///
/// # Errors
/// As [`run_captured`].
pub fn run_captured_watched(
    cmd: &mut Command,
    limits: &Limits,
    timeout: Duration,
    cap: usize,
    watch: Option<TreeLimit>,
) -> Result<Captured, SandboxError> {
    let install = "install bubblewrap (apt-get install bubblewrap)";
    capture(cmd, Some(limits), timeout, cap, watch, || {}, install)
}

/// Runs `cmd` (with `limits` and the drop to [`SANDBOX_UID`] when given) and captures its
/// merged output; on time-out or a [`TreeLimit`] breach kills its process group and calls
/// `kill_extra` (a container engine's own kill). `install` says how to get a missing program.
pub(crate) fn capture(
    cmd: &mut Command,
    limits: Option<&Limits>,
    timeout: Duration,
    cap: usize,
    watch: Option<TreeLimit>,
    kill_extra: impl Fn() + Send + 'static,
    install: &str,
) -> Result<Captured, SandboxError> {
    use std::os::unix::process::CommandExt;
    let (mut reader, writer) = std::io::pipe().map_err(|e| SandboxError::Io(format!("a pipe: {e}")))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| SandboxError::Io(format!("a pipe: {e}")))?;
    cmd.stdin(Stdio::null()).stdout(writer).stderr(writer2);
    // Each run's processes in a pids group of their own, where the machine allows one.
    let group = limits.and_then(|l| PidsGroup::new(l.processes));
    match limits {
        // SAFETY: the hook only makes async-signal-safe calls.
        Some(limits) => unsafe {
            cmd.pre_exec(limits_hook_in(*limits, group.as_ref()));
        },
        // SAFETY: setsid is async-signal-safe.
        None => unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        },
    }
    let mut pauses = SPAWN_BACKOFF.iter();
    let mut child = loop {
        match cmd.spawn() {
            Ok(c) => break c,
            Err(e) if spawn_is_transient(&e) => match pauses.next() {
                Some(p) => std::thread::sleep(*p),
                None => {
                    let why = spawn_failure(cmd.get_program(), &e, "");
                    return Err(SandboxError::Unavailable(why));
                }
            },
            Err(e) => {
                return Err(SandboxError::Unavailable(spawn_failure(cmd.get_program(), &e, install)));
            }
        }
    };
    // The time limit counts from the start, not from the pauses before it.
    let start = Instant::now();
    // Our copies of the write end go with `cmd`'s stdio: drop them so EOF can arrive.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let pid = child.id() as libc::pid_t;
    let (done_tx, done_rx) = mpsc::channel::<()>();
    // The watchdog: (timed out, over size).
    let watchdog = std::thread::spawn(move || {
        let kill = || {
            kill_extra();
            // SAFETY: kill on the group the child leads (setsid in the hook) and the child.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
        };
        let deadline = start + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = match &watch {
                Some(_) => left.min(TreeLimit::POLL),
                None => left,
            };
            match done_rx.recv_timeout(wait) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => return (false, None),
            }
            if Instant::now() >= deadline {
                kill();
                return (true, None);
            }
            if let Some(why) = watch.as_ref().and_then(TreeLimit::exceeded) {
                kill();
                return (false, Some(why));
            }
        }
    });
    let (screen, read_result) = read_screen(&mut reader, cap);
    let status = child.wait();
    let _ = done_tx.send(());
    let (timed_out, over_size) = watchdog.join().unwrap_or((false, None));
    read_result.map_err(|e| SandboxError::Io(format!("reading the output: {e}")))?;
    let status = status.map_err(|e| SandboxError::Io(format!("waiting for the process: {e}")))?;
    Ok(Captured {
        status,
        screen,
        timed_out,
        over_size,
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_bytes_answers_for_a_real_folder_only() {
        assert!(free_bytes(Path::new("/")).is_some_and(|b| b > 0));
        assert_eq!(free_bytes(Path::new("/no/such/folder")), None);
    }

    #[test]
    fn spawn_failures_say_what_happened() {
        let busy = std::io::Error::from_raw_os_error(libc::EAGAIN);
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let denied = std::io::Error::from_raw_os_error(libc::EACCES);
        let install = "install bubblewrap (apt-get install bubblewrap)";
        let prog = std::ffi::OsStr::new("bwrap");
        assert!(spawn_is_transient(&busy) && !spawn_is_transient(&missing));
        let m = spawn_failure(prog, &busy, install);
        assert!(
            m.contains("too many processes") && m.contains("2.5 s") && !m.contains("install"),
            "{m}"
        );
        assert!(spawn_failure(prog, &missing, install).ends_with(install));
        assert!(!spawn_failure(prog, &denied, install).contains("install"));
        assert_eq!(SPAWN_BACKOFF[0], Duration::from_millis(10));
        assert_eq!(SPAWN_BACKOFF[7], Duration::from_millis(1280));
    }

    #[test]
    fn screen_keeps_head_and_tail() {
        let mut s = Screen::new(10);
        s.push(b"0123456789abcdefghij");
        assert_eq!(s.omitted, 10);
        assert_eq!(s.text(), "01234\n[... 10 bytes of output omitted ...]\nfghij");
        let mut s = Screen::new(10);
        s.push(b"012");
        s.push(b"34567");
        assert_eq!((s.text(), s.omitted), ("01234567".to_string(), 0));
        let mut s = Screen::new(10);
        for b in b"0123456789abcdefghij" {
            s.push(&[*b]);
        }
        assert_eq!(s.text(), "01234\n[... 10 bytes of output omitted ...]\nfghij");
    }

    /// Tries to write 320 MiB (in 8 MiB files) into each writable place of the base line and
    /// reports how much landed: `/dev` refuses, `/dev/shm` and `/tmp` stop at their sizes.
    #[test]
    fn every_writable_place_of_the_sandbox_is_size_limited() {
        if let Err(e) = bubblewrap_works() {
            panic!("this test runs bubblewrap: {e}. Install it with `apt-get install bubblewrap`.");
        }
        let script = r#"for d in /dev/shm /dev /tmp /; do
  n=0; i=0
  while [ $i -lt 40 ]; do
    head -c 8388608 /dev/zero > $d/fill$i 2>/dev/null; r=$?
    [ -f $d/fill$i ] && n=$((n + $(stat -c %s $d/fill$i)))
    [ $r -ne 0 ] && break
    i=$((i+1))
  done
  echo "$d $n"
done
echo ok > /dev/null && echo devnull-works"#;
        let mut cmd = Bwrap::new().command(["/bin/sh", "-c", script]);
        let out = run_captured(&mut cmd, &Limits::default(), Duration::from_secs(60), 4096).unwrap();
        let text = out.screen.text();
        let landed = |dir: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{dir} ")))
                .unwrap_or_else(|| panic!("no line for {dir}: {text}"))
                .trim()
                .parse()
                .unwrap()
        };
        assert_eq!(landed("/dev"), 0, "{text}");
        assert_eq!(landed("/"), 0, "{text}");
        assert!(landed("/dev/shm") <= SHM_BYTES, "{text}");
        assert!(landed("/tmp") <= TMP_BYTES, "{text}");
        assert!(text.contains("devnull-works"), "{text}");
        // A caller's tmpfs is limited the same way.
        let mut cmd = Bwrap::new().tmpfs("/work", 4 << 20).command([
            "/bin/sh",
            "-c",
            "head -c 8388608 /dev/zero > /work/x; stat -c %s /work/x",
        ]);
        let out = run_captured(&mut cmd, &Limits::default(), Duration::from_secs(60), 4096).unwrap();
        let text = out.screen.text();
        assert!(text.contains("No space left"), "{text}");
        assert!(text.trim_end().ends_with(&(4u64 << 20).to_string()), "{text}");
    }

    #[test]
    fn a_tree_limit_counts_bytes_and_entries_and_kills() {
        let dir = tempfile::tempdir().unwrap();
        let limit = |bytes, entries| TreeLimit {
            roots: vec![dir.path().to_path_buf()],
            max_bytes: bytes,
            max_entries: entries,
        };
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), vec![1u8; 1 << 20]).unwrap();
        assert_eq!(limit(4 << 20, 10).exceeded(), None);
        assert!(limit(512 << 10, 10).exceeded().unwrap().contains("bytes"));
        assert!(limit(4 << 20, 1).exceeded().unwrap().contains("entries"));
        // A writer into a watched folder is killed long before its time limit.
        give_to_sandbox_user(dir.path()).unwrap();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(format!(
            "i=0; while :; do head -c 1048576 /dev/zero > {}/f$i; i=$((i+1)); done",
            dir.path().display()
        ));
        let out = run_captured_watched(
            &mut cmd,
            &Limits::default(),
            Duration::from_secs(20),
            100,
            Some(limit(32 << 20, 100_000)),
        )
        .unwrap();
        assert!(!out.timed_out && out.elapsed < Duration::from_secs(10), "{out:?}");
        assert!(out.over_size.unwrap().contains("bytes"));
    }

    #[test]
    fn time_limit_kills_and_output_is_capped() {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "yes | head -c 1000000; echo end; sleep 30"]);
        let out = run_captured(&mut cmd, &Limits::default(), Duration::from_millis(300), 100).unwrap();
        assert!(out.timed_out);
        assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);
        assert_eq!(out.screen.omitted, 1_000_004 - 100);
        assert!(out.screen.text().ends_with("y\nend\n"), "{}", out.screen.text());
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = run_captured(&mut cmd, &Limits::default(), Duration::from_secs(10), 100).unwrap();
        assert!(!out.timed_out);
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.screen.text(), "out\nerr\n");
    }
}
