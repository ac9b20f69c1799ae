//! A fixed root for a sandbox: a folder holding only the mount points a sandbox needs, every
//! entry dated the same, bound read-only at `/` instead of bubblewrap's fresh tmpfs. What a
//! command sees of `/` (`ls -la /app` lists `..`) is then the same on every run, not the
//! moment the sandbox started.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The mount points every sandbox has (`/usr` and its merged-/usr links, `/proc`, `/dev`,
/// `/tmp`); the caller's own binds add theirs.
const SYSTEM_DIRS: [&str; 4] = ["usr", "proc", "dev", "tmp"];

/// The merged-/usr links of [`crate::SYSTEM_MOUNTS`], as (link, target).
const SYSTEM_LINKS: [(&str, &str); 3] = [("lib", "usr/lib"), ("lib64", "usr/lib64"), ("bin", "usr/bin")];

/// Sets the access and modification times of `path` to `time`, not following a symbolic
/// link (a link's own time is set).
///
/// # Errors
/// The path cannot be named to the system, or the call fails.
pub fn set_times(path: &Path, time: SystemTime) -> std::io::Result<()> {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let stamp = libc::timespec {
        tv_sec: since.as_secs() as libc::time_t,
        tv_nsec: since.subsec_nanos() as libc::c_long,
    };
    let times = [stamp, stamp];
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path and `times` holds two timespecs, as
    // utimensat requires; AT_FDCWD resolves a relative path from the working folder.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Makes `dir` (which must not exist) a fixed root: the system's mount points, the caller's
/// `mount_points` (relative, folders; `etc/alternatives` makes `etc` too), and every entry,
/// `dir` last, dated `time`. Bind it with [`crate::Bwrap::on_root`].
///
/// # Errors
/// A folder or link that cannot be made or dated.
pub fn fixed_root(dir: &Path, mount_points: &[&str], time: SystemTime) -> std::io::Result<()> {
    std::fs::create_dir(dir)?;
    let mut made = Vec::new();
    for m in SYSTEM_DIRS.iter().chain(mount_points) {
        let mut at = dir.to_path_buf();
        for part in Path::new(m).components() {
            at.push(part);
            if !at.exists() {
                std::fs::create_dir(&at)?;
                made.push(at.clone());
            }
        }
    }
    for (link, target) in SYSTEM_LINKS {
        let at = dir.join(link);
        std::os::unix::fs::symlink(target, &at)?;
        made.push(at);
    }
    // Deepest first, so that dating an entry does not change its folder's time afterwards.
    made.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in made.iter().chain(std::iter::once(&dir.to_path_buf())) {
        set_times(p, time)?;
    }
    Ok(())
}
