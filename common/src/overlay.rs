//! A copy-on-write root: overlayfs over read-only image layers (ch3).
//!
//! overlayfs shows several directories as one ("merged"): the read-only
//! *lower* layers, topmost first, and one writable *upper* directory on top.
//! Reading finds the topmost copy of a file. Writing to a lower file first
//! copies it up into upper ("copy-up"); deleting one leaves a *whiteout* in
//! upper that hides it. The *work* directory is overlayfs's scratch space and
//! must be on the same filesystem as upper. See the kernel's
//! Documentation/filesystems/overlayfs.rst.
//!
//! Each run gets `containers/<id>/{upper,work,merged}`; the image layers are
//! shared and never written. The overlay itself is mounted inside the
//! container's mount namespace, so it vanishes with the container.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use serde::{Deserialize, Serialize};

use crate::dataroot::{self, DataRoot};
use crate::error::{Error, Result};
use crate::{detail, mount, namespace, narrate, process};

/// The directories of one container's write layer.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
}

impl Layout {
    /// The layout of `containers/<name>/` (whether or not it exists yet).
    pub fn of(root: &DataRoot, name: &str) -> Layout {
        Layout::in_dir(root.path().join("containers").join(name))
    }

    /// `dir`'s upper/, work/ and merged/.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Layout {
        let dir = dir.into();
        Layout {
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("merged"),
            dir,
        }
    }
}

/// Which run owns a per-run directory: when that process is gone, the
/// directory is stale (its run was killed) and the next run removes it.
#[derive(Serialize, Deserialize)]
struct Owner {
    pid: i32,
    start_time: u64,
}

const OWNER_FILE: &str = "run.json";

/// A fresh 12-hex-digit id, like Docker's short container ids.
pub fn new_id() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 6];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("reading", "/dev/urandom", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Create `containers/<id>/{upper,work,merged}` for a run of this process,
/// first removing directories that killed runs left behind.
pub fn create_for_run(root: &DataRoot, id: &str) -> Result<Layout> {
    remove_stale_runs(root)?;
    // Built in a scratch directory and renamed into place with its owner
    // record, so a run killed at any moment leaves nothing unaccounted for.
    let scratch = root.scratch("run")?;
    let staged = Layout::in_dir(scratch.path());
    create_parts(&staged)?;
    let me = std::process::id() as i32;
    let owner = Owner {
        pid: me,
        start_time: process::start_time(me).unwrap_or(0),
    };
    let json = serde_json::to_vec(&owner).expect("owner record serialises");
    // A plain write: the directory is not visible until the rename below,
    // which makes the record appear whole or not at all.
    let owner_file = staged.dir.join(OWNER_FILE);
    fs::write(&owner_file, &json).map_err(|e| Error::io("writing", &owner_file, e))?;
    let layout = Layout::of(root, id);
    root.dir("containers")?;
    if !scratch.persist(&layout.dir)? {
        return Err(Error::Conflict(format!(
            "container id {id} is taken: run again"
        )));
    }
    narrate!(3, "mkdir {}/{{upper,work,merged}}", layout.dir.display());
    Ok(layout)
}

/// Create upper/, work/ and merged/ in an existing container directory.
pub fn create_parts(layout: &Layout) -> Result<()> {
    detail!(3, "mkdir {}/{{upper,work,merged}}", layout.dir.display());
    for part in [&layout.upper, &layout.work, &layout.merged] {
        if let Err(e) = DirBuilder::new().mode(0o755).create(part) {
            let _ = remove(layout);
            return Err(Error::io("creating", part, e));
        }
    }
    Ok(())
}

/// Keep a run's directories for the learner to inspect: they are no longer
/// a run's, so no later run will clean them up as stale.
pub fn keep(layout: &Layout) -> Result<()> {
    let owner = layout.dir.join(OWNER_FILE);
    fs::remove_file(&owner).map_err(|e| Error::io("removing", &owner, e))
}

/// The end of a foreground run (ch3, ch4): its directories kept if asked
/// (and said so on stderr, as `program: kept ...`), else removed; a failed
/// removal is reported beside the run's own error, never instead of it.
pub fn finish_run<T>(layout: &Layout, keep_it: bool, result: Result<T>) -> Result<T> {
    let cleanup = if keep_it {
        keep(layout).map(|()| {
            crate::error::notice(format!(
                "kept this run's layers in {}",
                layout.dir.display()
            ))
        })
    } else {
        remove(layout)
    };
    match (result, cleanup) {
        (Ok(value), Ok(())) => Ok(value),
        (Ok(_), Err(error)) => Err(error),
        (Err(error), cleanup) => Err(error.with_cleanup(cleanup)),
    }
}

/// Remove a container's directories. Nothing is mounted on them in the
/// host's namespace (the overlay lived in the container's), so this only
/// ever deletes the container's own files.
pub fn remove(layout: &Layout) -> Result<()> {
    detail!(3, "removing {}", layout.dir.display());
    crate::image::mapped::remove_tree(&layout.dir)
        .map_err(|e| Error::io("removing", &layout.dir, e))
}

/// Remove per-run directories whose owning process is gone. Only real
/// directories are looked at (a symlink is never followed), and one that
/// cannot be removed is reported, never allowed to fail this run.
fn remove_stale_runs(root: &DataRoot) -> Result<()> {
    let containers = root.dir("containers")?;
    let Ok(entries) = fs::read_dir(&containers) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if !fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let Ok(text) = dataroot::read_small(&entry.path().join(OWNER_FILE), 4096) else {
            continue; // not a per-run directory
        };
        let alive = serde_json::from_slice::<Owner>(&text)
            .is_ok_and(|o| process::start_time(o.pid) == Some(o.start_time));
        if !alive {
            narrate!(
                3,
                "removing {} (its run was killed)",
                entry.path().display()
            );
            if let Err(e) = dataroot::remove_tree(&entry.path()) {
                crate::error::notice(format_args!(
                    "cannot remove {} (left by a killed run): {e}: remove it by hand",
                    entry.path().display()
                ));
            }
        }
    }
    Ok(())
}

/// Refuse a data root whose path overlay mount options cannot carry (`,`,
/// `:` or a newline), before anything (busybox's provisioning) is put in it.
/// Chapters that mount an overlay call it right after opening the data root.
pub fn check_data_root(root: &DataRoot) -> Result<()> {
    let text = root.path().to_string_lossy();
    if text.contains([',', ':', '\n']) {
        return Err(Error::Invalid(format!(
            "data root {text:?} holds ',', ':' or a newline, which overlay mount options \
             cannot carry: use a --root without them"
        )));
    }
    Ok(())
}

/// The option that makes an overlay skip its syncs (Linux 5.10).
const VOLATILE: &str = ",volatile";

/// The overlay mount options: `lowerdir=TOP:...:BOTTOM,upperdir=...,workdir=...`.
/// Rootless overlays use `userxattr`: overlayfs then keeps its own metadata in
/// `user.overlay.*` xattrs, which an unprivileged user may write.
/// A write layer thrown away when the run ends is `volatile`: overlayfs then
/// skips the sync of the upper directory's filesystem (for `/var/lib`, the
/// host's root) that its unmount would make, as Podman mounts `--rm`
/// containers; after a crash of the host such an upper may be incomplete,
/// which for one thrown away does not matter.
pub fn options(
    lowers_bottom_first: &[PathBuf],
    layout: &Layout,
    thrown_away: bool,
) -> Result<String> {
    check_option_paths(&[layout.upper.as_path(), layout.work.as_path()])?;
    let mut options = format!(
        "{},upperdir={},workdir={}",
        lowerdir(lowers_bottom_first)?,
        layout.upper.display(),
        layout.work.display()
    );
    if namespace::rootless() {
        options.push_str(",userxattr");
    }
    if thrown_away {
        options.push_str(VOLATILE);
    }
    Ok(options)
}

/// `lowerdir=TOP:...:BOTTOM`: overlayfs lists the layers topmost first.
fn lowerdir(lowers_bottom_first: &[PathBuf]) -> Result<String> {
    let paths: Vec<&Path> = lowers_bottom_first.iter().map(PathBuf::as_path).collect();
    check_option_paths(&paths)?;
    let lower: Vec<String> = paths
        .iter()
        .rev()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    Ok(format!("lowerdir={}", lower.join(":")))
}

/// Paths in overlay options cannot hold the options' own separators.
fn check_option_paths(paths: &[&Path]) -> Result<()> {
    for path in paths {
        let text = path.to_string_lossy();
        if text.contains([',', ':', '\n']) {
            return Err(Error::Invalid(format!(
                "path {text:?} holds ',', ':' or a newline, which overlay mount options cannot carry: \
                 use a data root (--root) and image path without them"
            )));
        }
    }
    Ok(())
}

/// Mount the overlay on `merged` (in the child's own mount namespace).
/// Linux before 5.10 has no `volatile` (EINVAL): then it is mounted without.
pub fn mount_overlay(options: &str, layout: &Layout) -> Result<()> {
    match (mount_once(options, layout), options.strip_suffix(VOLATILE)) {
        (Err(error), Some(durable)) if error.errno() == Some(Errno::EINVAL) => {
            mount_once(durable, layout)
        }
        (mounted, _) => mounted,
    }
}

fn mount_once(options: &str, layout: &Layout) -> Result<()> {
    mount::mount(
        3,
        Some("overlay"),
        &layout.merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(options),
    )
    .map_err(|error| match error.errno() {
        Some(Errno::EPERM | Errno::EINVAL) if namespace::rootless() => error.hint(
            "overlayfs in a user namespace needs Linux 5.11 or later, and the layers on a \
                 filesystem that supports user xattrs: try sudo, or a --root on ext4/xfs/btrfs",
        ),
        Some(Errno::EINVAL) => error.hint(
            "overlayfs refused these directories: is upper or work on a filesystem overlay \
                 cannot write to (e.g. another overlay, NFS)? try another --root",
        ),
        _ => error,
    })
}

/// Mount a read-only overlay of `upper` over the image's layers on `target`:
/// the container's files as they are now, without anything mounted inside
/// the container (volumes, /proc, /dev). With no upperdir, overlayfs is
/// read-only, and `upper` is read as one more lower layer, whiteouts included.
/// Call it only in a private mount namespace (see namespace::enter_private_mount_ns);
/// `userxattr` as for the container's own overlay (when it runs rootless).
pub fn mount_readonly_view(
    lowers_bottom_first: &[PathBuf],
    upper: &Path,
    target: &Path,
    userxattr: bool,
) -> Result<()> {
    let mut all: Vec<PathBuf> = lowers_bottom_first.to_vec();
    all.push(upper.to_path_buf());
    let mut options = lowerdir(&all)?;
    if userxattr {
        options.push_str(",userxattr");
    }
    mount::mount(
        5,
        Some("overlay"),
        target,
        Some("overlay"),
        // Read-only, and nothing in it may act as a device, setuid or program here.
        MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(&options),
    )
}
