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
//! A data root that is not the caller's, that its group or others may write
//! to, or whose top-level directories are symlinks, is refused: root acting
//! in a tree a user controls would delete wherever the user points it.
//! Sweeps of what killed runs left never follow a symlink.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fchmod, fchmodat, fstat, fstatat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

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
        // Root must never act on a tree someone else can change: a user's
        // `containers -> /elsewhere` would make our sweeps delete there.
        let meta = stat_or_create(&path, |p| fs::metadata(p))?;
        check_private(&path, &meta)?;
        let root = DataRoot { path };
        for sub in TOP_LEVEL {
            let path = root.path.join(sub);
            if let Ok(meta) = fs::symlink_metadata(&path) {
                check_private(&path, &meta)?;
                let mut checked = checked();
                if !checked.contains(&path) {
                    checked.push(path);
                }
            }
        }
        for sub in ["images", "tmp"] {
            root.dir(sub)?;
        }
        root.remove_stale_scratch();
        root.remove_stale_partials();
        Ok(root)
    }

    /// The data root directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<root>/<sub>`, created (mode 0700) if missing, and checked once per
    /// process: only its owner (this user) could change it afterwards.
    pub fn dir(&self, sub: &str) -> Result<PathBuf> {
        let path = self.path.join(sub);
        let mut checked = checked();
        if checked.contains(&path) {
            return Ok(path);
        }
        let meta = stat_or_create(&path, |p| fs::symlink_metadata(p))?;
        check_private(&path, &meta)?;
        checked.push(path.clone());
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
    /// Only what is really a directory here is removed: a symlink is not
    /// followed, only unlinked.
    fn remove_stale_scratch(&self) {
        let Ok(entries) = fs::read_dir(self.path.join("tmp")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').nth(1).and_then(|p| p.parse::<i32>().ok());
            if pid.is_some_and(|pid| !pid_exists(pid)) {
                detail!(2, "removing {} (its run is gone)", entry.path().display());
                if let Err(e) = remove_tree(&entry.path()) {
                    crate::error::notice(format_args!(
                        "cannot remove {} (left by a killed run): {e}",
                        entry.path().display()
                    ));
                }
            }
        }
    }

    /// `images/.NAME.partial.PID` files of commits that were killed.
    fn remove_stale_partials(&self) {
        let Ok(entries) = fs::read_dir(self.path.join("images")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = partial_owner(&name) else {
                continue;
            };
            let is_file = fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_file());
            if is_file && !pid_exists(pid) {
                detail!(
                    2,
                    "removing {} (its commit is gone)",
                    entry.path().display()
                );
                if let Err(e) = fs::remove_file(entry.path()) {
                    crate::error::notice(format_args!(
                        "cannot remove {} (left by a killed commit): {e}",
                        entry.path().display()
                    ));
                }
            }
        }
    }
}

/// The top-level directories of a data root: none may be a symlink, nor
/// anyone else's.
const TOP_LEVEL: [&str; 7] = [
    "images",
    "tmp",
    "containers",
    "layers",
    "rootfs",
    "index",
    "blobs",
];

/// The pid in a partial image's name, `.NAME.partial.PID`.
fn partial_owner(file: &str) -> Option<i32> {
    let (rest, pid) = file.strip_prefix('.')?.rsplit_once(".partial.")?;
    (!rest.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        .then(|| pid.parse().ok())
        .flatten()
}

/// Whether any process has `pid` now.
pub fn pid_exists(pid: i32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// The data root directories this process has checked (see
/// [`DataRoot::dir`]).
fn checked() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    static CHECKED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    CHECKED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `path`'s metadata (by `stat`), the directory made first (mode 0700)
/// if it cannot be stat'd: one system call when it is there, as it nearly
/// always is.
fn stat_or_create(
    path: &Path,
    stat: fn(&Path) -> io::Result<fs::Metadata>,
) -> Result<fs::Metadata> {
    match stat(path) {
        Ok(meta) => Ok(meta),
        // Missing, or not to be looked at: making it says which, in the
        // words it always did ("creating directory ...").
        Err(_) => {
            create_private_dir(path)?;
            stat(path)
        }
    }
    .map_err(|e| Error::io("stat", path, e))
}

/// Refuse a data root directory that is a symlink, that is not ours, or
/// that others may write to: anything in it would then be theirs to steer.
fn check_private(path: &Path, meta: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display();
    if meta.file_type().is_symlink() {
        return Err(Error::Invalid(format!(
            "{shown} is a symlink: the top-level directories of a data root must be real \
             directories (remove it, or use another --root)"
        )));
    }
    if !meta.is_dir() {
        return Err(Error::Invalid(format!(
            "{shown} is not a directory: remove it, or use another --root"
        )));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(Error::Invalid(format!(
            "data root {shown} is not owned by you (its owner is uid {}, you are uid {me}): \
             use a directory of your own (--root DIR)",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Error::Invalid(format!(
            "data root {shown} is writable by its group or others (mode {:04o}): \
             chmod go-w {shown}, or use another --root",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
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
pub(crate) fn create_private_dir(path: &Path) -> Result<()> {
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
/// directory overlayfs leaves behind. Never follows symlinks (a symlink at
/// `path` is itself unlinked), and holds at most three directory fds at any
/// depth: it descends one directory at a time and climbs back through
/// `..`, checking that `..` is the directory it came from (as fts(3) does for
/// GNU rm), so a 2,000-level tree goes at `ulimit -n 256`.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    // The parent is a path of ours (in the data root): it may pass through
    // symlinks the owner made; nothing below it is followed.
    let top = nix::fcntl::open(
        parent,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    remove_below(&top, Path::new(name))
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Open the directory `name` in `parent` (never a symlink), giving ourselves
/// the rwx on it that removing its entries needs.
fn open_removable(parent: &OwnedFd, name: &Path) -> io::Result<(OwnedFd, (u64, u64))> {
    let fd = match nix::fcntl::openat(parent, name, DIR_FLAGS, Mode::empty()) {
        Err(Errno::EACCES) => {
            fchmodat(
                parent,
                name,
                Mode::from_bits_truncate(0o700),
                FchmodatFlags::NoFollowSymlink,
            )?;
            nix::fcntl::openat(parent, name, DIR_FLAGS, Mode::empty())?
        }
        other => other?,
    };
    let st = fstat(&fd)?;
    if st.st_mode & 0o700 != 0o700 {
        fchmod(&fd, Mode::from_bits_truncate((st.st_mode | 0o700) & 0o7777))?;
    }
    Ok((fd, (st.st_dev, st.st_ino)))
}

/// Remove the directory `name` in `top` and everything below it.
fn remove_below(top: &OwnedFd, name: &Path) -> io::Result<()> {
    let (first, id) = match open_removable(top, name) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        other => other?,
    };
    // The way down: each directory's name and (dev, ino), the deepest last.
    let mut path: Vec<(std::ffi::OsString, (u64, u64))> = vec![(name.as_os_str().into(), id)];
    let mut current = first;
    loop {
        match first_subdirectory(&current)? {
            Some(sub) => {
                let (fd, id) = match open_removable(&current, Path::new(&sub)) {
                    // Gone meanwhile: list this directory again, from its start.
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                        nix::unistd::lseek(&current, 0, nix::unistd::Whence::SeekSet)?;
                        continue;
                    }
                    other => other?,
                };
                path.push((sub, id));
                current = fd;
            }
            None => {
                let (done, _) = path.pop().expect("the path holds the current directory");
                let Some((_, parent_id)) = path.last() else {
                    return ignore_gone(unlinkat(top, Path::new(&done), UnlinkatFlags::RemoveDir));
                };
                let parent = nix::fcntl::openat(&current, "..", DIR_FLAGS, Mode::empty())?;
                let st = fstat(&parent)?;
                if (st.st_dev, st.st_ino) != *parent_id {
                    return Err(io::Error::other(
                        "a directory was moved while it was being removed",
                    ));
                }
                current = parent;
                ignore_gone(unlinkat(
                    &current,
                    Path::new(&done),
                    UnlinkatFlags::RemoveDir,
                ))?;
            }
        }
    }
}

fn ignore_gone(result: nix::Result<()>) -> io::Result<()> {
    match result {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Unlink every entry of `dir` that is not a directory; return the name of
/// a subdirectory if there is one (it is descended into next).
fn first_subdirectory(dir: &OwnedFd) -> io::Result<Option<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let mut listing = Listing::new(dir);
    while let Some((name, kind)) = listing.next_entry()? {
        let name = std::ffi::OsStr::from_bytes(name);
        if name == "." || name == ".." {
            continue;
        }
        let is_dir = match kind {
            libc::DT_DIR => true,
            libc::DT_UNKNOWN => match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits(),
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(e.into()),
            },
            _ => false,
        };
        if is_dir {
            return Ok(Some(name.to_os_string()));
        }
        ignore_gone(unlinkat(dir, name, UnlinkatFlags::NoRemoveDir))?;
    }
    Ok(None)
}

/// The entries of an open directory, from where its fd is (its start, for
/// one just opened), read with getdents64(2) on that very fd: a `DIR`
/// stream (opendir(3)) would open the directory again, and fstat and
/// fcntl it, each time a removal lists it.
struct Listing<'a> {
    dir: &'a OwnedFd,
    /// Whole `linux_dirent64` records, as the kernel wrote them.
    buffer: Vec<u8>,
    /// Where the next record starts in `buffer`.
    next: usize,
}

impl<'a> Listing<'a> {
    fn new(dir: &'a OwnedFd) -> Self {
        Listing {
            dir,
            buffer: Vec::with_capacity(32 * 1024),
            next: 0,
        }
    }

    /// The next entry's name and type (`DT_*`), or None at the end.
    fn next_entry(&mut self) -> io::Result<Option<(&[u8], u8)>> {
        // struct linux_dirent64: d_ino (8 bytes), d_off (8), d_reclen (2),
        // d_type (1), then d_name, NUL-terminated, padded to d_reclen.
        const NAME: usize = 19;
        if self.next >= self.buffer.len() {
            self.buffer.clear();
            self.next = 0;
            // SAFETY: the kernel writes at most `capacity` bytes into the
            // buffer, and says how many it wrote; only those are kept.
            let written = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    self.dir.as_raw_fd(),
                    self.buffer.as_mut_ptr(),
                    self.buffer.capacity(),
                )
            };
            if written < 0 {
                return Err(io::Error::last_os_error());
            }
            let written = (written as usize).min(self.buffer.capacity());
            // SAFETY: the first `written` bytes were written by the kernel.
            unsafe { self.buffer.set_len(written) };
            if written == 0 {
                return Ok(None);
            }
        }
        let record = &self.buffer[self.next..];
        let length = match record.get(16..18) {
            Some(&[low, high]) => usize::from(u16::from_ne_bytes([low, high])),
            _ => 0,
        };
        if length <= NAME || length > record.len() {
            return Err(io::Error::other(
                "getdents64 gave a record that does not fit",
            ));
        }
        let kind = record[18];
        let name = &record[NAME..length];
        let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
        self.next += length;
        Ok(Some((name, kind)))
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

/// Read the small file `path` (a state or index record): never through a
/// symlink, never a FIFO or device, and refused if larger than `limit` bytes,
/// so a damaged or hostile record cannot hang us or fill our memory.
pub fn read_small(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if meta.len() > limit {
        return Err(io::Error::other(format!(
            "larger than {}",
            human_limit(limit)
        )));
    }
    // Room for what fstat says, and the one byte more that tells a file
    // grown since: two reads, not a doubling buffer's six.
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::other(format!(
            "larger than {}",
            human_limit(limit)
        )));
    }
    Ok(bytes)
}

fn human_limit(limit: u64) -> String {
    if limit >= 1 << 20 && limit.is_multiple_of(1 << 20) {
        format!("{} MiB", limit >> 20)
    } else {
        format!("{limit} bytes")
    }
}

/// openat2(2), tried again on EAGAIN: with RESOLVE_IN_ROOT or
/// RESOLVE_BENEATH the kernel answers EAGAIN when a rename or a mount
/// anywhere on the machine raced the walk through `..` (it cannot vouch
/// for the result), and asks the caller to retry.
pub fn openat2<P: ?Sized + nix::NixPath, Fd: std::os::fd::AsFd>(
    dirfd: Fd,
    path: &P,
    how: nix::fcntl::OpenHow,
) -> nix::Result<std::os::fd::OwnedFd> {
    let mut tries = 0;
    loop {
        match nix::fcntl::openat2(&dirfd, path, how) {
            Err(nix::errno::Errno::EAGAIN) if tries < 100 => tries += 1,
            other => return other,
        }
    }
}

/// Hold a flock(2) on the file `path` (made if missing) until the guard is
/// dropped: exclusive, or `shared`.
pub fn lock_file(path: &Path, shared: bool) -> Result<nix::fcntl::Flock<fs::File>> {
    use nix::fcntl::{Flock, FlockArg};
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("opening", path, e))?;
    let (arg, shown) = match shared {
        true => (FlockArg::LockShared, "LOCK_SH"),
        false => (FlockArg::LockExclusive, "LOCK_EX"),
    };
    Flock::lock(file, arg)
        .map_err(|(_, errno)| Error::sys(format!("flock({path:?}, {shown})"), errno))
}

/// Write `bytes` to `path` so that a reader sees the old file or the new one,
/// never half of either: write a temporary file beside it, then rename. A
/// container's state is written so (five times a run), as runc writes its
/// state.json: no fsync, so a crash of the whole machine may lose the last
/// write, and after a reboot every container has stopped anyway.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_via_rename(path, bytes, false)
}

/// As [`write_atomically`], and on disk before the rename (fsync): for the
/// image store's records, which outlive a reboot.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    write_via_rename(path, bytes, true)
}

fn write_via_rename(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    use std::io::Write;
    let temp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = fs::File::create(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            match durable {
                true => file.sync_all(),
                false => Ok(()),
            }
        })
        .and_then(|()| fs::rename(&temp, path));
    result.map_err(|e| {
        let _ = fs::remove_file(&temp);
        Error::io("writing", path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_partial_image_names_its_owner() {
        assert_eq!(partial_owner(".img.partial.1234"), Some(1234));
        assert_eq!(partial_owner(".my.img.partial.7"), Some(7));
    }

    #[test]
    fn other_files_are_not_partial_images() {
        assert_eq!(partial_owner("img.partial.1234"), None, "no leading dot");
        assert_eq!(partial_owner(".img.partial.12x"), None, "not a pid");
        assert_eq!(partial_owner("..partial.12"), None, "no image name");
        assert_eq!(partial_owner(".img.tar"), None);
    }

    #[test]
    fn a_tree_listed_in_several_reads_is_removed_and_its_symlinks_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("top");
        let outside = dir.path().join("outside");
        fs::create_dir_all(top.join("files")).unwrap();
        fs::create_dir_all(top.join("deep/er/est")).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("kept"), b"kept").unwrap();
        // 2,000 names of 60 bytes: about 160 KB of getdents64 records,
        // five of the listing's 32 KB reads.
        for n in 0..2000 {
            fs::write(top.join("files").join(format!("{n:060}")), b"x").unwrap();
        }
        fs::write(top.join("deep/er/est/file"), b"y").unwrap();
        std::os::unix::fs::symlink(&outside, top.join("deep/link")).unwrap();
        // A directory without permissions, as overlayfs leaves work/work.
        fs::create_dir(top.join("deep/er/locked")).unwrap();
        fs::set_permissions(
            top.join("deep/er/locked"),
            fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        remove_tree(&top).unwrap();
        assert!(!top.exists(), "the whole tree is gone");
        assert_eq!(fs::read(outside.join("kept")).unwrap(), b"kept");
    }
}
