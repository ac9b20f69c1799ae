//! A content-addressed store of file trees: every file body is stored once under the
//! SHA-256 of its bytes, and a tree (a sorted list of paths, modes and file hashes) is
//! stored the same way, so a whole task folder is named by one hash.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{self, FileTimes};
use std::io::ErrorKind;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use crate::EnvsError;

/// Files restored from a snapshot get this modification time (2000-01-01T00:00:00Z), so
/// that commands whose output depends on mtimes (tar, ls -l, make) give the same bytes
/// whenever a state is restored.
pub const RESTORED_MTIME: u64 = 946_684_800;

/// [`RESTORED_MTIME`] as a time.
pub(super) fn restored_time() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(RESTORED_MTIME)
}

/// Bodies up to this size are also kept in memory.
const MEMORY_LIMIT: usize = 1 << 20;

/// One item of a tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The path relative to the tree's root, `/`-separated.
    pub path: String,
    /// Permission bits (`0o7777` mask).
    pub mode: u32,
    /// What the path is.
    #[serde(flatten)]
    pub kind: EntryKind,
}

/// The kind of a tree item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file: the hash of its body and its size in bytes.
    File {
        /// Hex SHA-256 of the body.
        hash: String,
        /// Bytes.
        size: u64,
    },
    /// A folder (listed so that empty folders survive).
    Dir,
    /// A symbolic link and its target, as written.
    Symlink {
        /// The link's target.
        target: String,
    },
    /// A container layer's removal of what the image has at the path (overlay whiteout).
    Removed,
    /// A container layer's folder that replaces the image's folder and its contents.
    Replaced,
}

/// What restoring or taking a snapshot did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Files, folders and links.
    pub entries: usize,
    /// Bytes of file bodies.
    pub bytes: u64,
    /// Bodies written to the store because they were new (snapshots only).
    pub new_blobs: usize,
}

/// A content-addressed store on disk (`objects/ab/cdef...`) with an in-memory cache of
/// small bodies. Safe to share between threads; writes are atomic (temporary file, then
/// rename), so concurrent writers of the same body agree.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    memory: Mutex<HashMap<String, Arc<[u8]>>>,
}

/// What one snapshot walk keeps and how.
/// The mode git keeps for a path whose mode is `mode`: 0755 for folders and for files their
/// owner may run, else 0644.
pub(super) fn git_mode(is_dir: bool, mode: u32) -> u32 {
    if is_dir || mode & 0o100 != 0 { 0o755 } else { 0o644 }
}

/// What a walk stores.
#[derive(Clone, Copy, PartialEq)]
enum Source {
    /// A sandbox's files, modes as they are.
    Live,
    /// A container's writable layer: whiteouts and opaque folders too.
    Layer,
    /// A task's files from a checkout: modes as git keeps them.
    Checkout,
}

struct Walk<'a> {
    exclude: &'a [&'a str],
    /// A writable layer's image layers, the top one first.
    lower: &'a [PathBuf],
    /// Whether the walk is inside a folder that replaced the image's (nothing under it is
    /// a copy of the image's).
    replaced: bool,
    max_bytes: u64,
    source: Source,
    entries: &'a mut Vec<Entry>,
    stats: &'a mut TreeStats,
}

/// The mode of the folder `rel` in the image's `lower` layers (the top one first), looked up
/// as overlay does, a name at a time and never through a link: a whiteout or a file hides
/// what the layers below have at that name, an opaque folder hides their folder. None when
/// the image has no folder there.
fn lower_dir_mode(lower: &[PathBuf], rel: &str) -> Option<u32> {
    let mut layers: Vec<&PathBuf> = lower.iter().collect();
    let mut prefix = PathBuf::new();
    let mut mode = None;
    for name in rel.split('/') {
        prefix.push(name);
        let mut below = Vec::new();
        mode = None;
        for l in layers {
            let path = l.join(&prefix);
            let Ok(m) = fs::symlink_metadata(&path) else {
                continue;
            };
            if !m.is_dir() {
                // A file, a link or a whiteout: the top one decides, and hides the rest.
                break;
            }
            mode.get_or_insert(m.permissions().mode() & 0o7777);
            below.push(l);
            if qval_sandbox::container::is_opaque(&path) {
                break;
            }
        }
        if below.is_empty() {
            return None;
        }
        layers = below;
    }
    mode
}

pub(super) fn io_err(op: &str, path: &Path, e: std::io::Error) -> EnvsError {
    EnvsError::Store(format!("{op} {}: {e}", path.display()))
}

/// Hex SHA-256 of `bytes`.
pub fn hash_bytes(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn check_hash(hash: &str) -> Result<(), EnvsError> {
    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(EnvsError::Store(format!("`{hash}` is not a hex SHA-256")))
    }
}

impl Store {
    /// A store in `dir` (created if missing); bodies already there are reused.
    ///
    /// # Errors
    /// The folder cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Store, EnvsError> {
        let dir = dir.into();
        fs::create_dir_all(dir.join("objects")).map_err(|e| io_err("create", &dir, e))?;
        fs::create_dir_all(dir.join("tmp")).map_err(|e| io_err("create", &dir, e))?;
        Ok(Store {
            dir,
            _temp: None,
            memory: Mutex::new(HashMap::new()),
        })
    }

    /// A store in a temporary folder, deleted with the store.
    ///
    /// # Errors
    /// The folder cannot be created.
    pub fn temporary() -> Result<Store, EnvsError> {
        let t = tempfile::Builder::new()
            .prefix("qval-store-")
            .tempdir()
            .map_err(|e| EnvsError::Store(format!("a temporary store: {e}")))?;
        let mut s = Store::open(t.path())?;
        s._temp = Some(t);
        Ok(s)
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn object_path(&self, hash: &str) -> PathBuf {
        self.dir.join("objects").join(&hash[..2]).join(&hash[2..])
    }

    /// Stores `bytes` (once) and returns their hash.
    ///
    /// # Errors
    /// The store cannot be written.
    pub fn put(&self, bytes: &[u8]) -> Result<(String, bool), EnvsError> {
        let hash = hash_bytes(bytes);
        if self.memory.lock().expect("store lock").contains_key(&hash) {
            return Ok((hash, false));
        }
        let path = self.object_path(&hash);
        let new = if path.exists() {
            false
        } else {
            let parent = path.parent().expect("objects/xx");
            fs::create_dir_all(parent).map_err(|e| io_err("create", parent, e))?;
            let mut tmp =
                tempfile::NamedTempFile::new_in(self.dir.join("tmp")).map_err(|e| io_err("write", &path, e))?;
            std::io::Write::write_all(&mut tmp, bytes).map_err(|e| io_err("write", &path, e))?;
            tmp.persist(&path).map_err(|e| io_err("write", &path, e.error))?;
            true
        };
        if bytes.len() <= MEMORY_LIMIT {
            self.memory
                .lock()
                .expect("store lock")
                .insert(hash.clone(), Arc::from(bytes));
        }
        Ok((hash, new))
    }

    /// The body stored under `hash`.
    ///
    /// # Errors
    /// An unknown hash (the store folder is not the one the state was made with) or a
    /// body whose bytes no longer match their hash.
    pub fn get(&self, hash: &str) -> Result<Arc<[u8]>, EnvsError> {
        check_hash(hash)?;
        if let Some(b) = self.memory.lock().expect("store lock").get(hash) {
            return Ok(b.clone());
        }
        let path = self.object_path(hash);
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                EnvsError::Store(format!(
                    "object {hash} is not in the store {} (was the state made with another store folder?)",
                    self.dir.display()
                ))
            } else {
                io_err("read", &path, e)
            }
        })?;
        if hash_bytes(&bytes) != hash {
            return Err(EnvsError::Store(format!(
                "{} is corrupt: its bytes do not match its name",
                path.display()
            )));
        }
        let bytes: Arc<[u8]> = Arc::from(bytes);
        if bytes.len() <= MEMORY_LIMIT {
            self.memory
                .lock()
                .expect("store lock")
                .insert(hash.to_string(), bytes.clone());
        }
        Ok(bytes)
    }

    /// The entries of the tree stored under `hash`.
    ///
    /// # Errors
    /// As [`Store::get`], or a body that is not a tree.
    pub fn tree(&self, hash: &str) -> Result<Vec<Entry>, EnvsError> {
        let bytes = self.get(hash)?;
        serde_json::from_slice(&bytes).map_err(|e| EnvsError::Store(format!("object {hash} is not a tree: {e}")))
    }

    /// Stores the tree under `root` (not following links; sockets and pipes are skipped)
    /// and returns its hash. Top-level names in `exclude` are left out. Fails when the
    /// bodies add up to more than `max_bytes`.
    ///
    /// # Errors
    /// Unreadable files, the size limit, or a store that cannot be written.
    pub fn snapshot(&self, root: &Path, exclude: &[&str], max_bytes: u64) -> Result<(String, TreeStats), EnvsError> {
        self.snapshot_walk(root, &[], exclude, max_bytes, Source::Live)
    }

    /// A task's starting files, as [`Store::snapshot`] with the modes git keeps (0755 for
    /// folders and for files their owner may run, else 0644): the same tree whatever umask
    /// the checkout was made with.
    ///
    /// # Errors
    /// As [`Store::snapshot`].
    pub fn snapshot_checkout(
        &self,
        root: &Path,
        exclude: &[&str],
        max_bytes: u64,
    ) -> Result<(String, TreeStats), EnvsError> {
        self.snapshot_walk(root, &[], exclude, max_bytes, Source::Checkout)
    }

    /// Stores a container's writable layer (overlay's upper folder): as
    /// [`Store::snapshot`], with whiteouts as [`EntryKind::Removed`] and opaque folders as
    /// [`EntryKind::Replaced`]; `exclude` names paths (relative to the root) left out.
    /// A folder that is there only because something under it was written (copied up from
    /// `lower`, the image's layers, with its mode unchanged, and nothing left under it) is
    /// not a change: it is left out, so engines that put their own files in different
    /// layers give the same tree. (A tree keeps no owners, so a folder whose only change is
    /// its owner is left out too.)
    ///
    /// # Errors
    /// As [`Store::snapshot`].
    pub fn snapshot_layer(
        &self,
        upper: &Path,
        lower: &[PathBuf],
        exclude: &[&str],
        max_bytes: u64,
    ) -> Result<(String, TreeStats), EnvsError> {
        self.snapshot_walk(upper, lower, exclude, max_bytes, Source::Layer)
    }

    fn snapshot_walk(
        &self,
        root: &Path,
        lower: &[PathBuf],
        exclude: &[&str],
        max_bytes: u64,
        source: Source,
    ) -> Result<(String, TreeStats), EnvsError> {
        let mut entries = Vec::new();
        let mut stats = TreeStats::default();
        let mut walk = Walk {
            exclude,
            lower,
            replaced: false,
            max_bytes,
            source,
            entries: &mut entries,
            stats: &mut stats,
        };
        self.walk(root, "", &mut walk)?;
        stats.entries = entries.len();
        let bytes = serde_json::to_vec(&entries).expect("entries serialize");
        let (hash, new) = self.put(&bytes)?;
        stats.new_blobs += usize::from(new);
        Ok((hash, stats))
    }

    fn walk(&self, dir: &Path, prefix: &str, w: &mut Walk<'_>) -> Result<(), EnvsError> {
        let root = qval_sandbox::running_as_root();
        let list = match fs::read_dir(dir) {
            Err(e) if e.kind() == ErrorKind::PermissionDenied && !root => {
                // Our own sandboxed files (the user namespace maps to us): make them readable.
                let m = fs::symlink_metadata(dir).map_err(|e| io_err("read", dir, e))?;
                fs::set_permissions(dir, fs::Permissions::from_mode(m.permissions().mode() | 0o700))
                    .map_err(|e| io_err("read", dir, e))?;
                fs::read_dir(dir)
            }
            r => r,
        }
        .map_err(|e| io_err("read", dir, e))?;
        let mut names: Vec<_> = list
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| io_err("read", dir, e))?;
        names.sort();
        for name in names {
            let name_s = name.to_string_lossy().into_owned();
            let path = dir.join(&name);
            let rel = if prefix.is_empty() {
                name_s
            } else {
                format!("{prefix}/{name_s}")
            };
            if w.exclude.contains(&rel.as_str()) {
                continue;
            }
            let (entries, stats, max_bytes) = (&mut *w.entries, &mut *w.stats, w.max_bytes);
            let meta = fs::symlink_metadata(&path).map_err(|e| io_err("read", &path, e))?;
            let mode = meta.permissions().mode() & 0o7777;
            let ft = meta.file_type();
            let layer = w.source == Source::Layer;
            if layer && qval_sandbox::container::is_indirect(&path) {
                return Err(EnvsError::Store(format!(
                    "{rel}: the overlay file system keeps part of it in a lower layer (metacopy or redirect_dir is on); turn both off for qval's container runtime"
                )));
            }
            if layer && qval_sandbox::container::is_whiteout(&meta) {
                entries.push(Entry {
                    path: rel,
                    mode: 0,
                    kind: EntryKind::Removed,
                });
            } else if ft.is_dir() {
                let replaced = layer && qval_sandbox::container::is_opaque(&path);
                entries.push(Entry {
                    path: rel.clone(),
                    mode: if w.source == Source::Checkout {
                        git_mode(true, mode)
                    } else {
                        mode
                    },
                    kind: if replaced { EntryKind::Replaced } else { EntryKind::Dir },
                });
                if !root && mode & 0o500 != 0o500 {
                    fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o700))
                        .map_err(|e| io_err("read", &path, e))?;
                }
                let (at, outer) = (w.entries.len(), w.replaced);
                w.replaced |= replaced;
                self.walk(&path, &rel, w)?;
                w.replaced = outer;
                if layer && !replaced && !outer && w.entries.len() == at && lower_dir_mode(w.lower, &rel) == Some(mode)
                {
                    w.entries.pop();
                }
            } else if ft.is_symlink() {
                let target = fs::read_link(&path).map_err(|e| io_err("read", &path, e))?;
                entries.push(Entry {
                    path: rel,
                    mode: 0o777,
                    kind: EntryKind::Symlink {
                        target: target.to_string_lossy().into_owned(),
                    },
                });
            } else if ft.is_file() {
                stats.bytes += meta.len();
                if stats.bytes > max_bytes {
                    return Err(EnvsError::Store(format!(
                        "the task folder holds more than {max_bytes} bytes (at {rel})"
                    )));
                }
                let body = match fs::read(&path) {
                    Err(e) if e.kind() == ErrorKind::PermissionDenied && !root => {
                        fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o400))
                            .map_err(|e| io_err("read", &path, e))?;
                        fs::read(&path)
                    }
                    r => r,
                }
                .map_err(|e| io_err("read", &path, e))?;
                let (hash, new) = self.put(&body)?;
                stats.new_blobs += usize::from(new);
                entries.push(Entry {
                    path: rel,
                    mode: if w.source == Source::Checkout {
                        git_mode(false, mode)
                    } else {
                        mode
                    },
                    kind: EntryKind::File {
                        hash,
                        size: body.len() as u64,
                    },
                });
            }
        }
        Ok(())
    }

    /// Writes the tree stored under `hash` into the empty folder `dest`: bodies, modes,
    /// links, and the fixed [`RESTORED_MTIME`]; when running as root everything is handed
    /// to the sandbox user.
    ///
    /// # Errors
    /// An unknown or corrupt object, an entry escaping `dest`, or a write failure.
    pub fn restore(&self, hash: &str, dest: &Path) -> Result<TreeStats, EnvsError> {
        let entries = self.tree(hash)?;
        let mut stats = TreeStats {
            entries: entries.len(),
            ..TreeStats::default()
        };
        let time = restored_time();
        let times = FileTimes::new().set_modified(time).set_accessed(time);
        let mut dirs = Vec::new();
        qval_sandbox::give_to_sandbox_user(dest).map_err(|e| io_err("chown", dest, e))?;
        for e in &entries {
            if e.path.is_empty()
                || e.path.starts_with('/')
                || e.path.split('/').any(|c| c.is_empty() || c == "." || c == "..")
            {
                return Err(EnvsError::Store(format!(
                    "tree {hash}: entry `{}` escapes its root",
                    e.path
                )));
            }
            let path = dest.join(&e.path);
            match &e.kind {
                EntryKind::Dir | EntryKind::Replaced => {
                    fs::create_dir(&path).map_err(|er| io_err("create", &path, er))?;
                    dirs.push((path.clone(), e.mode));
                }
                EntryKind::Removed => continue,
                EntryKind::Symlink { target } => {
                    symlink(target, &path).map_err(|er| io_err("link", &path, er))?;
                }
                EntryKind::File { hash: h, .. } => {
                    let body = self.get(h)?;
                    stats.bytes += body.len() as u64;
                    fs::write(&path, &body).map_err(|er| io_err("write", &path, er))?;
                    let f = fs::File::options()
                        .write(true)
                        .open(&path)
                        .map_err(|er| io_err("write", &path, er))?;
                    f.set_times(times).map_err(|er| io_err("write", &path, er))?;
                    // Owner first: chown clears the set-user-ID and set-group-ID bits.
                    qval_sandbox::give_to_sandbox_user(&path).map_err(|er| io_err("chown", &path, er))?;
                    fs::set_permissions(&path, fs::Permissions::from_mode(e.mode))
                        .map_err(|er| io_err("write", &path, er))?;
                    continue;
                }
            }
            qval_sandbox::give_to_sandbox_user(&path).map_err(|er| io_err("chown", &path, er))?;
        }
        // Folders last and deepest first: a read-only folder must be filled before.
        for (path, mode) in dirs.iter().rev() {
            if let Ok(f) = fs::File::open(path) {
                let _ = f.set_times(times);
            }
            fs::set_permissions(path, fs::Permissions::from_mode(*mode)).map_err(|er| io_err("write", path, er))?;
        }
        // The root too: `ls -la` lists it as `.`.
        qval_sandbox::set_times(dest, time).map_err(|er| io_err("date", dest, er))?;
        Ok(stats)
    }

    /// Objects on disk and their total size in bytes.
    pub fn disk_usage(&self) -> (usize, u64) {
        let mut n = 0;
        let mut bytes = 0;
        if let Ok(dirs) = fs::read_dir(self.dir.join("objects")) {
            for d in dirs.flatten() {
                if let Ok(files) = fs::read_dir(d.path()) {
                    for f in files.flatten() {
                        n += 1;
                        bytes += f.metadata().map(|m| m.len()).unwrap_or(0);
                    }
                }
            }
        }
        (n, bytes)
    }
}

/// Makes everything under `dir` removable by its owner (sandboxed commands may leave
/// folders without write permission), then removes it.
pub(crate) fn remove_tree(dir: &Path) {
    if fs::remove_dir_all(dir).is_ok() {
        return;
    }
    fn open_up(p: &Path) {
        if let Ok(m) = fs::symlink_metadata(p)
            && m.is_dir()
        {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
            if let Ok(list) = fs::read_dir(p) {
                for e in list.flatten() {
                    open_up(&e.path());
                }
            }
        }
    }
    open_up(dir);
    let _ = fs::remove_dir_all(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_restore_round_trip_and_dedup() {
        let store = Store::temporary().unwrap();
        let src = tempfile::tempdir().unwrap();
        let p = src.path();
        fs::create_dir_all(p.join("a/b")).unwrap();
        fs::create_dir(p.join("empty")).unwrap();
        fs::write(p.join("a/x.txt"), "same").unwrap();
        fs::write(p.join("a/b/y.txt"), "same").unwrap();
        fs::write(p.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(p.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink("a/x.txt", p.join("link")).unwrap();
        fs::write(p.join("skip.me"), "excluded").unwrap();
        let (h1, s1) = store.snapshot(p, &["skip.me"], 1 << 20).unwrap();
        // 2 bodies ("same" once, run.sh) + the tree.
        assert_eq!(s1.new_blobs, 3);
        assert_eq!(s1.entries, 7);
        let (h2, s2) = store.snapshot(p, &["skip.me"], 1 << 20).unwrap();
        assert_eq!((h1.clone(), s2.new_blobs), (h2, 0));
        assert_eq!(store.disk_usage().0, 3);

        let dst = tempfile::tempdir().unwrap();
        let out = dst.path().join("r");
        fs::create_dir(&out).unwrap();
        store.restore(&h1, &out).unwrap();
        assert_eq!(fs::read_to_string(out.join("a/b/y.txt")).unwrap(), "same");
        assert_eq!(fs::read_link(out.join("link")).unwrap(), Path::new("a/x.txt"));
        assert!(out.join("empty").is_dir());
        assert!(!out.join("skip.me").exists());
        let m = fs::metadata(out.join("run.sh")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o755);
        assert_eq!(m.modified().unwrap(), UNIX_EPOCH + Duration::from_secs(RESTORED_MTIME));
        let (h3, _) = store.snapshot(&out, &[], 1 << 20).unwrap();
        assert_eq!(h3, h1, "a restored tree snapshots to the same hash");

        // A second store over the same folder finds the objects on disk.
        let again = Store::open(store.dir()).unwrap();
        assert_eq!(again.tree(&h1).unwrap().len(), 7);
        assert!(
            again
                .get(&hash_bytes(b"never stored"))
                .unwrap_err()
                .to_string()
                .contains("not in the store")
        );
        let big = store.snapshot(p, &[], 10).unwrap_err().to_string();
        assert!(big.contains("more than 10 bytes"), "{big}");
    }
}
