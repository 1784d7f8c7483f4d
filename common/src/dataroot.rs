//! The data root: where images, layers and containers live on the host (ch2 onwards).
//!
//! ```text
//! /var/lib/stepbox/            root; ~/.local/share/stepbox for other users
//!   images/<name>.tar[.gz]     image tarballs
//!   rootfs/<image>/            ch2's plain unpacked roots
//!   layers/<digest>/           ch3's read-only layers
//!   containers/<name>/         ch3-5's per-container directories
//!   tmp/                       work in progress, renamed into place when whole
//! ```
//!
//! `--root DIR` or `STEPBOX_ROOT` picks another place. Everything is created
//! mode 0700: image contents and container state are the owner's business.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::detail;
use crate::error::{Error, Result};
use crate::namespace;

/// The data root of this run.
#[derive(Debug, Clone)]
pub struct DataRoot {
    path: PathBuf,
}

impl DataRoot {
    /// Open (creating if needed) the data root: `flag`, else `$STEPBOX_ROOT`,
    /// else the default for root or for an ordinary user.
    pub fn open(flag: Option<&Path>) -> Result<DataRoot> {
        let chosen = match flag {
            Some(path) => path.to_path_buf(),
            None => match std::env::var_os("STEPBOX_ROOT").filter(|v| !v.is_empty()) {
                Some(path) => PathBuf::from(path),
                None => default_root()?,
            },
        };
        let path = std::path::absolute(&chosen).map_err(|e| Error::io("resolving", &chosen, e))?;
        create_private_dir(&path)?;
        let root = DataRoot { path };
        for sub in ["images", "tmp"] {
            create_private_dir(&root.path.join(sub))?;
        }
        root.remove_stale_scratch();
        Ok(root)
    }

    /// The data root directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<root>/<sub>`, created (mode 0700) if missing.
    pub fn dir(&self, sub: &str) -> Result<PathBuf> {
        let path = self.path.join(sub);
        create_private_dir(&path)?;
        Ok(path)
    }

    /// A new empty scratch directory under `<root>/tmp`, removed when dropped
    /// unless it is renamed into place with [`Scratch::persist`].
    pub fn scratch(&self, what: &str) -> Result<Scratch> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self
            .path
            .join("tmp")
            .join(format!("{what}-{}-{n}", std::process::id()));
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| Error::io("creating", &path, e))?;
        Ok(Scratch { path: Some(path) })
    }

    /// Scratch directories of runs that were killed (their pid is gone).
    fn remove_stale_scratch(&self) {
        let Ok(entries) = fs::read_dir(self.path.join("tmp")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').nth(1).and_then(|p| p.parse::<i32>().ok());
            if let Some(pid) = pid {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    detail!(2, "removing {} (its run is gone)", entry.path().display());
                    let _ = remove_tree(&entry.path());
                }
            }
        }
    }
}

/// Where the data root is when nobody says: `/var/lib/stepbox` for root,
/// `$XDG_DATA_HOME/stepbox` (default `~/.local/share/stepbox`) otherwise.
fn default_root() -> Result<PathBuf> {
    if !namespace::rootless() {
        return Ok(PathBuf::from("/var/lib/stepbox"));
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(data).join("stepbox"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/stepbox")),
        None => Err(Error::Invalid(
            "no data root: HOME is not set; set HOME, STEPBOX_ROOT or pass --root DIR".into(),
        )),
    }
}

/// Create `path` (and missing parents) with mode 0700 for what we create.
fn create_private_dir(path: &Path) -> Result<()> {
    match DirBuilder::new().recursive(true).mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::io("creating directory", path, e)),
    }
}

/// A directory being built; removed on drop unless persisted.
#[derive(Debug)]
pub struct Scratch {
    path: Option<PathBuf>,
}

impl Scratch {
    /// The scratch directory.
    pub fn path(&self) -> &Path {
        self.path
            .as_deref()
            .expect("scratch directory already persisted")
    }

    /// Rename the scratch directory to `dest` in one step, so that nobody ever
    /// sees it half-made. Returns false (and removes the scratch) if `dest`
    /// appeared meanwhile, made by a concurrent run.
    pub fn persist(mut self, dest: &Path) -> Result<bool> {
        let path = self
            .path
            .take()
            .expect("scratch directory already persisted");
        match fs::rename(&path, dest) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY)) => {
                let _ = remove_tree(&path);
                Ok(false)
            }
            Err(e) => {
                let _ = remove_tree(&path);
                Err(Error::io("renaming into place", dest, e))
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = remove_tree(&path);
        }
    }
}

/// Remove a directory tree that we made, even where it holds directories
/// without write permission (images have them) or the mode-000 `work/work`
/// directory overlayfs leaves behind. Never follows symlinks.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            open_up(path);
            fs::remove_dir_all(path)
        }
    }
}

fn open_up(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        let mode = meta.permissions().mode() | 0o700;
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
        if let Ok(entries) = fs::read_dir(path) {
            for entry in entries.flatten() {
                open_up(&entry.path());
            }
        }
    }
}

/// Check a container or image name: `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`.
/// Refused before any file is touched, so a name can never be a path.
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && name.len() <= 64 {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "invalid {kind} name {name:?}: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
    )))
}

/// Write `bytes` to `path` so that a reader sees the old file or the new one,
/// never half of either: write a temporary file beside it, then rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let temp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = fs::File::create(&temp)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .and_then(|()| fs::rename(&temp, path));
    result.map_err(|e| {
        let _ = fs::remove_file(&temp);
        Error::io("writing", path, e)
    })
}
