//! A docker container's file system mounted by qval: docker has no `podman mount`, so the
//! overlay its `overlay2` driver would mount when the container starts is mounted here from
//! the layers `docker inspect` names (lower layers read-only, the writable layer as the
//! upper folder), `nosuid` and `nodev`, under `/run/qval-mounts-<pid>`, a folder of this
//! process's own that only root can enter. It is unmounted while the container runs (docker
//! mounts its own then) and mounted again only once docker's own mount of the same layers
//! is gone; a reaper unmounts what a killed qval left.

use crate::SandboxError;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The layers of one container's overlay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layers {
    lower: String,
    upper: PathBuf,
    work: PathBuf,
}

impl Layers {
    /// The layers from the engine's `inspect` of `GraphDriver.Data` printed as three lines
    /// (`LowerDir`, `UpperDir`, `WorkDir`).
    pub(crate) fn parse(text: &str) -> Result<Layers, SandboxError> {
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let ok = |s: &&str| !s.is_empty() && !s.contains("no value") && s.starts_with('/');
        match lines.as_slice() {
            [lower, upper, work] if ok(lower) && ok(upper) && ok(work) => Ok(Layers {
                lower: lower.to_string(),
                upper: PathBuf::from(upper),
                work: PathBuf::from(work),
            }),
            _ => Err(SandboxError::Unavailable(format!(
                "the container engine does not use the overlay storage driver (the container's layers: {:?}); qval reads a container's writable layer from overlay's upper folder",
                text.trim()
            ))),
        }
    }

    /// The writable layer (overlay's upper folder).
    pub(crate) fn upper(&self) -> &Path {
        &self.upper
    }

    /// The image's layers, the top one first.
    pub(crate) fn lower(&self) -> Vec<PathBuf> {
        self.lower.split(':').map(PathBuf::from).collect()
    }

    /// The mount options: `index=off` where the kernel has the index feature (as docker
    /// mounts it, so either mount may follow the other on the same folders).
    fn options(&self) -> String {
        let index = Path::new("/sys/module/overlay/parameters/index").exists();
        format!(
            "{}lowerdir={},upperdir={},workdir={}",
            if index { "index=off," } else { "" },
            self.lower,
            self.upper.display(),
            self.work.display()
        )
    }
}

/// The folder under which process `pid` mounts its docker containers.
pub(crate) fn mounts_dir(pid: u32) -> PathBuf {
    PathBuf::from(format!("/run/qval-mounts-{pid}"))
}

/// Makes `dir` (whose parent exists) a folder only root can enter, or checks that it is one:
/// never a link, never a folder someone else made.
fn private_dir(dir: &Path) -> Result<(), SandboxError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(SandboxError::Io(format!("{}: {e}", dir.display()))),
    }
    let m = std::fs::symlink_metadata(dir).map_err(|e| SandboxError::Io(format!("{}: {e}", dir.display())))?;
    if !m.is_dir() || m.uid() != 0 || m.mode() & 0o077 != 0 {
        return Err(SandboxError::Io(format!(
            "{}: not a folder of root's that only root can enter; qval mounts containers there",
            dir.display()
        )));
    }
    Ok(())
}

/// Whether an overlay mount with `upper` as its upper folder is in place anywhere.
fn upper_in_use(upper: &Path) -> bool {
    let needle = format!("upperdir={}", upper.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|t| t.lines().any(|l| l.split([',', ' ']).any(|opt| opt == needle)))
}

fn c_path(p: &Path) -> Result<CString, SandboxError> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| SandboxError::Io(format!("{}: a NUL in the path", p.display())))
}

/// Mounts `layers` at `at` (made if missing, in a folder only root can enter), once no other
/// mount uses the same writable layer (docker's own, while it takes a container that has
/// just ended down): two overlays on one upper folder are undefined behaviour, and with
/// `index=off` the kernel would mount the second anyway.
pub(crate) fn mount(layers: &Layers, at: &Path) -> Result<(), SandboxError> {
    if let Some(parent) = at.parent() {
        private_dir(parent)?;
    }
    private_dir(at)?;
    let start = std::time::Instant::now();
    while upper_in_use(&layers.upper) {
        if start.elapsed() > Duration::from_secs(10) {
            return Err(SandboxError::Unavailable(format!(
                "the container's writable layer {} is still mounted by the engine after 10 s",
                layers.upper.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let options = layers.options();
    // The kernel takes at most a page of options.
    if options.len() >= 4096 {
        return Err(SandboxError::Unavailable(format!(
            "the image has too many layers to mount ({} bytes of overlay options; at most 4095)",
            options.len()
        )));
    }
    let target = c_path(at)?;
    let data = CString::new(options).map_err(|_| SandboxError::Io("a NUL in the overlay options".into()))?;
    // SAFETY: NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            target.as_ptr(),
            c"overlay".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Err(SandboxError::Unavailable(format!(
            "mounting the container's layers at {}: {err} (the kernel's log, `dmesg | tail`, says why)",
            at.display()
        )));
    }
    Ok(())
}

/// Unmounts `at` (lazily, so a reader of a file there never blocks it; never through a link).
pub(crate) fn unmount(at: &Path) -> Result<(), SandboxError> {
    let target = c_path(at)?;
    // SAFETY: a NUL-terminated path.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(SandboxError::Io(format!("unmounting {}: {err}", at.display())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_read_from_inspect_and_an_other_driver_is_refused() {
        let l = Layers::parse("/d/l1/diff:/d/l0/diff\n/d/c/diff\n/d/c/work\n").unwrap();
        assert_eq!(l.upper(), Path::new("/d/c/diff"));
        assert_eq!(l.lower(), [Path::new("/d/l1/diff"), Path::new("/d/l0/diff")]);
        assert!(
            l.options()
                .ends_with("lowerdir=/d/l1/diff:/d/l0/diff,upperdir=/d/c/diff,workdir=/d/c/work")
        );
        for bad in ["<no value>\n<no value>\n<no value>", "/d/c/diff\n/d/c/work", ""] {
            let e = Layers::parse(bad).unwrap_err().to_string();
            assert!(e.contains("overlay storage driver"), "{e}");
        }
    }
}
