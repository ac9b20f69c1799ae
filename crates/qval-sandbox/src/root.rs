//! A fixed root for a sandbox: a folder holding only the mount points a sandbox needs, every
//! entry dated the same, bound read-only at `/` instead of bubblewrap's fresh tmpfs. What a
//! command sees of `/` (`ls -la /app` lists `..`) is then the same on every run, not the
//! moment the sandbox started.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The mount points every sandbox has (`/usr`, `/proc`, `/dev`, `/tmp`); the caller's own
/// binds add theirs.
const SYSTEM_DIRS: [&str; 4] = ["usr", "proc", "dev", "tmp"];

/// The merged-/usr links of [`crate::SYSTEM_MOUNTS`], as (link, target).
const SYSTEM_LINKS: [(&str, &str); 3] = [("lib", "usr/lib"), ("lib64", "usr/lib64"), ("bin", "usr/bin")];

/// Sets the access and modification times of `path` to `time` (a time before 1970 sets
/// 1970), not following a symbolic link (a link's own time is set).
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
/// `mount_points` (relative folders; `etc/alternatives` makes `etc` too), every folder
/// `rwxr-xr-x` whatever the umask, and every entry, `dir` last, dated `time`. Bind it with
/// [`crate::Bwrap::on_root`].
///
/// # Errors
/// A mount point that is not a plain relative path; a folder or link that cannot be made,
/// opened to all or dated.
pub fn fixed_root(dir: &Path, mount_points: &[&str], time: SystemTime) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let open = |p: &Path| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
    std::fs::create_dir(dir)?;
    open(dir)?;
    let mut made = Vec::new();
    for m in SYSTEM_DIRS.iter().chain(mount_points) {
        let mut at = dir.to_path_buf();
        for part in Path::new(m).components() {
            let std::path::Component::Normal(part) = part else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("mount point `{m}`: give a relative path without `..`"),
                ));
            };
            at.push(part);
            if !at.exists() {
                std::fs::create_dir(&at)?;
                open(&at)?;
                made.push(at.clone());
            }
        }
    }
    for (link, target) in SYSTEM_LINKS {
        let at = dir.join(link);
        std::os::unix::fs::symlink(target, &at)?;
        made.push(at);
    }
    // Every entry is made before any is dated: making one changes its folder's time.
    for p in made.iter().chain(std::iter::once(&dir.to_path_buf())) {
        set_times(p, time)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn every_entry_is_dated_and_folders_are_open_to_all_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        // SAFETY: umask only sets this process's file mode mask.
        let old = unsafe { libc::umask(0o077) };
        let made = fixed_root(
            &root,
            &["app", "etc/alternatives"],
            UNIX_EPOCH + std::time::Duration::from_secs(946_684_800),
        );
        unsafe { libc::umask(old) };
        made.unwrap();
        for p in [
            "",
            "usr",
            "proc",
            "dev",
            "tmp",
            "app",
            "etc",
            "etc/alternatives",
            "lib",
            "bin",
            "lib64",
        ] {
            let m = std::fs::symlink_metadata(root.join(p)).unwrap();
            assert_eq!(m.mtime(), 946_684_800, "{p}");
            if m.is_dir() {
                assert_eq!(m.mode() & 0o777, 0o755, "{p}");
            }
        }
        assert!(fixed_root(&tmp.path().join("other"), &["../escape"], SystemTime::now()).is_err());
        assert!(!tmp.path().join("escape").exists());
    }
}
