//! A pids cgroup per sandboxed process tree, so one sandbox's processes (a fork bomb, or
//! many sandboxes at once) never count against another's limit: all sandboxes run as the
//! same unprivileged user, whose `RLIMIT_NPROC` they would otherwise share.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A pids cgroup of its own (root, cgroup v1 `pids`), removed with its processes when
/// dropped. Under cgroup v2 qval makes none (a group outside qval's own cgroup would take
/// sandboxes out of the limits a service manager or a SLURM job puts on qval).
#[derive(Debug)]
pub struct PidsGroup {
    dir: PathBuf,
    procs: CString,
}

/// The folder qval's groups go under, if this machine gives one.
fn parent() -> Option<PathBuf> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return None;
    }
    let v1 = Path::new("/sys/fs/cgroup/pids");
    if v1.join("cgroup.procs").is_file() {
        return Some(v1.join("qval-sandbox"));
    }
    let v2 = Path::new("/sys/fs/cgroup");
    let controllers = std::fs::read_to_string(v2.join("cgroup.subtree_control")).ok()?;
    controllers
        .split_whitespace()
        .any(|c| c == "pids")
        .then(|| v2.join("qval-sandbox"))
}

impl PidsGroup {
    /// A new group allowing `max` processes and threads, or `None` where qval cannot make
    /// one (not root, no pids controller): the caller then falls back to `RLIMIT_NPROC`.
    pub fn new(max: u64) -> Option<PidsGroup> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let parent = parent()?;
        if !parent.is_dir() {
            std::fs::create_dir(&parent)
                .ok()
                .or_else(|| parent.is_dir().then_some(()))?;
            // cgroup v2: the controller must be on for the children.
            let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+pids");
        }
        let dir = parent.join(format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).ok()?;
        let group = PidsGroup {
            procs: CString::new(dir.join("cgroup.procs").into_os_string().into_encoded_bytes()).ok()?,
            dir,
        };
        std::fs::write(group.dir.join("pids.max"), max.to_string()).ok()?;
        Some(group)
    }

    /// The `cgroup.procs` path, for the child to join between fork and exec.
    pub(crate) fn procs(&self) -> &CString {
        &self.procs
    }
}

/// Joins the group `procs` names (between fork and exec: open, write and close only).
pub(crate) fn join(procs: &CString) -> bool {
    // SAFETY: a NUL-terminated path, a two-byte buffer, and the descriptor we opened.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let ok = libc::write(fd, b"0\n".as_ptr().cast(), 2) == 2;
        libc::close(fd);
        ok
    }
}

impl Drop for PidsGroup {
    fn drop(&mut self) {
        // Whatever is left is killed, then the empty group removed (it empties as the
        // kernel reaps; a few tries).
        for _ in 0..50 {
            let pids = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
            for pid in pids.lines().filter_map(|p| p.trim().parse::<libc::pid_t>().ok()) {
                // SAFETY: kill with a pid read from our own group.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
