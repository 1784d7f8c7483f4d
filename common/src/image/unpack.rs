//! Safe unpack of an image tarball into a directory (ch2 onwards).
//!
//! A tarball is untrusted input: an entry named `../../etc/cron.d/x`, an
//! absolute `/etc/passwd`, a symlink `evil -> /` followed by `evil/etc/x`, or a
//! hard link to `/etc/shadow` would each write or expose a host file if
//! unpacked naively. Every entry here is created relative to a directory fd
//! opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so no path
//! can leave the destination or pass through a symlink, whatever the archive
//! holds. Device nodes (and sockets) are skipped, never made: an image needs
//! none (the container gets a minimal /dev of its own) and they could give
//! access to host devices; distro tarballs (debootstrap, mmdebstrap) hold a
//! few in /dev, so one notice per unpack counts them instead of refusing.
//!
//! What a file carries besides its bytes is kept: its mtime (set last, a
//! directory's once its children are made, never through a symlink) and
//! the extended attributes of two namespaces, from the archive's PAX
//! `SCHILY.xattr.*` records: `user.*` and `security.capability` (file
//! capabilities, which `ping` uses instead of setuid). Never `trusted.*` or
//! any other: those steer the kernel (overlayfs reads `trusted.overlay.*`),
//! and `user.overlay.*` too, which a rootless overlay reads the same way.
//!
//! Layer tarballs (`docker save`) mark deletions with whiteout files: an
//! entry `.wh.NAME` means "NAME is deleted in this layer", and
//! `.wh..wh..opq` in a directory means "hide everything the lower layers
//! have in this directory". We store them the way overlayfs reads them (ch3):
//! a whiteout is a character device 0/0 (the one "device" we make: it is no
//! device at all, and Linux ≥ 5.8 lets any user create it), an opaque
//! directory carries the xattr `trusted.overlay.opaque=y` (root) or
//! `user.overlay.opaque=y` (overlay mounted with `userxattr`, rootless).

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{
    fchmod, fstatat, futimens, mkdirat, mknodat, utimensat, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::error::{notice, Error, Result};

/// How a refused or failed entry is reported: the entry and why, one line.
fn refuse(entry: &str, why: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("image entry {entry:?} refused: {why}"))
}

/// How an entry that is allowed but could not be made is reported: the
/// step and the errno (a full disk is not a refusal).
fn failed(entry: &str, step: &str, why: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("unpacking image entry {entry:?}: {step}: {why}"))
}

/// What an unpack made.
#[derive(Debug, Clone, Copy)]
pub struct Unpacked {
    pub entries: u64,
    /// The mode the archive gives its root directory (`./`), 0755 if none.
    /// Apply it once the directory is in place: a read-only directory
    /// cannot be renamed into a new parent.
    pub root_mode: u32,
    /// What the archive held that was left out (told in one notice).
    pub skipped: Skipped,
}

/// What an unpack left out, counted for its one notice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Block and character devices (but the 0/0 whiteout, which is made).
    pub devices: u64,
    pub sockets: u64,
    /// Extended attributes of namespaces never set: `trusted.*` and the rest.
    pub xattrs_not_kept: u64,
    /// `user.*` or `security.capability` attributes the kernel would not set
    /// for us (EPERM, EACCES, ENOTSUP, EINVAL): file capabilities without
    /// root, say, or a filesystem without user xattrs.
    pub xattrs_refused: u64,
}

impl Skipped {
    /// The one line that tells what was skipped, or None if nothing was.
    pub fn notice(&self) -> Option<String> {
        let count = |n: u64, one: &str, many: &str| match n {
            0 => None,
            1 => Some(format!("1 {one}")),
            n => Some(format!("{n} {many}")),
        };
        let parts: Vec<String> = [
            count(self.devices, "device node", "device nodes"),
            count(self.sockets, "socket", "sockets"),
            count(
                self.xattrs_not_kept,
                "extended attribute of a namespace never set (trusted.* or other)",
                "extended attributes of namespaces never set (trusted.* or other)",
            ),
            count(
                self.xattrs_refused,
                "extended attribute this user or filesystem cannot set",
                "extended attributes this user or filesystem cannot set",
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        let (last, rest) = parts.split_last()?;
        let list = if rest.is_empty() {
            last.clone()
        } else {
            format!("{} and {last}", rest.join(", "))
        };
        let why = if self.devices + self.sockets > 0 {
            ": a container gets its own /dev"
        } else {
            ""
        };
        Some(format!("skipped {list} in the image{why}"))
    }
}

impl Unpacked {
    /// Give the unpacked tree at `dir` its root directory's mode.
    pub fn apply_root_mode(&self, dir: &Path) -> Result<()> {
        std::fs::set_permissions(
            dir,
            std::os::unix::fs::PermissionsExt::from_mode(self.root_mode),
        )
        .map_err(|e| Error::io("chmod", dir, e))
    }
}

/// Unpack the tar stream `reader` into the empty directory `dest`.
///
/// Fails on the first entry that is unsafe or cannot be created, naming it;
/// the caller then throws the whole directory away. What was skipped
/// (device nodes, sockets, extended attributes) is told in one notice.
pub fn unpack(reader: impl Read, dest: &Path) -> Result<Unpacked> {
    let dest_fd = open_dir(dest)?;
    std::thread::scope(|scope| {
        let mut writer = Writer::start(scope)?;
        let made = make_entries(reader, &dest_fd, &mut writer);
        // The writer's error first: it is of an earlier entry than any the
        // reading side met since.
        let refused = writer.finish()?;
        let (count, root_mode, mut skipped, dirs) = made?;
        skipped.xattrs_refused += refused;
        set_directories(&dest_fd, dirs, &mut skipped)?;
        if let Some(line) = skipped.notice() {
            notice(line);
        }
        Ok(Unpacked {
            entries: count,
            root_mode,
            skipped,
        })
    })
}

/// Make every entry of the archive in order, giving each regular file to
/// `writer` once it exists; the directories to finish are returned.
fn make_entries(
    reader: impl Read,
    dest_fd: &OwnedFd,
    writer: &mut Writer,
) -> Result<(u64, u32, Skipped, Vec<LaterDir>)> {
    let keep_owners = super::mapped::may_chown();
    let mut archive = tar::Archive::new(reader);
    // Directories get their modes, xattrs and mtimes at the end, each with
    // the (dev, ino) it had when it was made: a later entry may have taken
    // its name since.
    let mut dirs: Vec<LaterDir> = Vec::new();
    let mut root_mode = 0o755;
    let mut last_parent: Option<(PathBuf, OwnedFd)> = None;
    let mut count = 0;
    let mut skipped = Skipped::default();
    // Where skipped device nodes were: a hard link to one is skipped too.
    let mut devices: HashSet<PathBuf> = HashSet::new();
    let entries = archive.entries().map_err(not_a_tar)?;
    for entry in entries {
        let mut entry = entry.map_err(not_a_tar)?;
        // A global PAX header's name is no file's (GNU tar writes
        // /tmp/GlobalHead.N): it makes nothing, so its name is not checked.
        if is_meta(entry.header().entry_type()) {
            continue;
        }
        let raw_path = entry.path().map_err(not_a_tar)?.into_owned();
        let shown = raw_path.display().to_string();
        let Some(rel) = clean_path(&raw_path).map_err(|why| refuse(&shown, why))? else {
            // The archive's own "./": its mode is the root directory's.
            root_mode = entry.header().mode().unwrap_or(0o755) & 0o7777;
            continue;
        };
        let (mut xattrs, pax_mtime) = pax_metadata(&mut entry, &mut skipped).map_err(not_a_tar)?;
        let header = entry.header();
        let kind = header.entry_type();
        let full_mode = header.mode().unwrap_or(0o644);
        let mode = full_mode & 0o7777;
        let owner = (header.uid().ok(), header.gid().ok());
        let mtime = pax_mtime.or_else(|| {
            let seconds = header.mtime().ok()?;
            Some(TimeSpec::new(i64::try_from(seconds).ok()?, 0))
        });
        // ustar has no type for a socket, but some writers put S_IFSOCK
        // in the mode field: such an entry is skipped, as devices are.
        if full_mode & SFlag::S_IFMT.bits() == SFlag::S_IFSOCK.bits() {
            skipped.sockets += 1;
            continue;
        }
        // A later entry of the same name replaces a skipped device node.
        if !devices.is_empty() {
            devices.remove(&rel);
        }
        let (parent, name) = split(&rel);
        // Consecutive entries mostly share a directory: reuse its fd. (No
        // entry can turn an existing directory into a symlink: see
        // remove_existing, which never removes a directory.)
        let parent_fd = match last_parent.take() {
            Some((path, fd)) if path == parent => fd,
            _ => open_parent(dest_fd, &parent).map_err(|why| refuse(&shown, why))?,
        };
        let parent_fd = &last_parent.insert((parent.clone(), parent_fd)).1;

        if let Some(hidden) = name.to_str().and_then(|n| n.strip_prefix(WHITEOUT_PREFIX)) {
            if hidden == OPAQUE_MARKER {
                mark_opaque(dest_fd, &parent).map_err(|why| refuse(&shown, why))?;
            } else {
                whiteout(parent_fd, Path::new(hidden)).map_err(|why| refuse(&shown, why))?;
            }
            count += 1;
            continue;
        }

        match kind {
            tar::EntryType::Directory => {
                match mkdirat(parent_fd, &name, Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(errno) => return Err(failed(&shown, "mkdir", errno.desc())),
                }
                let made = fstatat(parent_fd, &name, AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(|e| failed(&shown, "stat", e.desc()))?;
                if made.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFDIR.bits() {
                    return Err(refuse(
                        &shown,
                        "a directory over an earlier entry that is not one",
                    ));
                }
                // Its own mode is applied at the end, once nothing more goes inside.
                dirs.push(LaterDir {
                    rel: rel.clone(),
                    mode,
                    made: (made.st_dev, made.st_ino),
                    xattrs: std::mem::take(&mut xattrs),
                    mtime,
                });
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                // Made here, in the archive's order; its data and metadata
                // are the writer's, on the other thread (but for a file with
                // extended attributes: see Writer::file).
                let fd = replacing(parent_fd, &name, || create_file(parent_fd, &name))
                    .map_err(|e| failed(&shown, "creating", e.desc()))?;
                let file = File::from(fd);
                let owner = match keep_owners {
                    true => Some(owner),
                    false => None,
                };
                let finish = Finish {
                    owner,
                    xattrs: std::mem::take(&mut xattrs),
                    mode,
                    mtime,
                };
                writer.file(file, &mut entry, &shown, finish)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(not_a_tar)?
                    .ok_or_else(|| refuse(&shown, "symlink without a target"))?
                    .into_owned();
                // A symlink may point anywhere, even at /: it is resolved inside the
                // container's root when used there, and never followed here.
                replacing(parent_fd, &name, || symlinkat(&target, parent_fd, &name))
                    .map_err(|e| refuse(&shown, e.desc()))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(not_a_tar)?
                    .ok_or_else(|| refuse(&shown, "hard link without a target"))?
                    .into_owned();
                let target_rel = clean_path(&target)
                    .map_err(|why| refuse(&shown, format!("hard link target: {why}")))?
                    .ok_or_else(|| refuse(&shown, "hard link to the root directory"))?;
                if devices.contains(&target_rel) {
                    skipped.devices += 1;
                    devices.insert(rel);
                    continue;
                }
                let (target_parent, target_name) = split(&target_rel);
                let target_fd = open_beneath(dest_fd, &target_parent)
                    .map_err(|why| refuse(&shown, format!("hard link target: {why}")))?;
                replacing(parent_fd, &name, || {
                    linkat(&target_fd, &target_name, parent_fd, &name, AtFlags::empty())
                })
                .map_err(|e| {
                    refuse(
                        &shown,
                        format!("hard link to {}: {}", target.display(), e.desc()),
                    )
                })?;
            }
            tar::EntryType::Fifo => {
                let fifo = Mode::from_bits_truncate(mode);
                replacing(parent_fd, &name, || {
                    mknodat(parent_fd, &name, SFlag::S_IFIFO, fifo, 0)
                })
                .map_err(|e| refuse(&shown, e.desc()))?;
            }
            tar::EntryType::Char
                if header.device_major().ok().flatten() == Some(0)
                    && header.device_minor().ok().flatten() == Some(0) =>
            {
                // An overlay whiteout, as a layer may store one: no device at all.
                whiteout(parent_fd, &name).map_err(|why| refuse(&shown, why))?;
                count += 1;
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                skipped.devices += 1;
                devices.insert(rel);
                continue;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            tar::EntryType::GNULongName | tar::EntryType::GNULongLink => continue,
            other => return Err(refuse(&shown, format!("unsupported entry type {other:?}"))),
        }
        let owned_above = matches!(
            kind,
            tar::EntryType::Link | tar::EntryType::Regular | tar::EntryType::Continuous
        );
        if keep_owners && !owned_above {
            let (uid, gid) = owner;
            fchownat(
                parent_fd,
                &name,
                uid.map(|u| Uid::from_raw(u as u32)),
                gid.map(|g| Gid::from_raw(g as u32)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| refuse(&shown, format!("chown: {}", e.desc())))?;
        }
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Fifo) {
            // Only regular files and directories can carry user.* and
            // security.capability attributes.
            skipped.xattrs_refused += xattrs.len() as u64;
            if let Some(mtime) = mtime {
                // The link itself, never what it points to.
                utimensat(
                    parent_fd,
                    &name,
                    &TimeSpec::UTIME_OMIT,
                    &mtime,
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(|e| failed(&shown, "setting its mtime", e.desc()))?;
            }
        }
        count += 1;
    }
    Ok((count, root_mode, skipped, dirs))
}

/// Give each directory made its xattrs, mode and mtime, once every entry
/// is in place.
fn set_directories(
    dest_fd: &OwnedFd,
    mut dirs: Vec<LaterDir>,
    skipped: &mut Skipped,
) -> Result<()> {
    // Deepest first, so a read-only parent never blocks a child's chmod, and
    // a directory's mtime is set after everything inside it is made (making
    // a child changes its parent's mtime).
    dirs.sort_by_key(|dir| std::cmp::Reverse(dir.rel.components().count()));
    for LaterDir {
        rel,
        mode,
        made,
        xattrs,
        mtime,
    } in dirs
    {
        let shown = rel.display().to_string();
        // By fd, and only if it is still the directory we made: a whiteout
        // and a hard link may have given its name to another file since.
        let Some(dir) =
            open_beneath_dir(dest_fd, &rel).map_err(|e| failed(&shown, "opening", e.desc()))?
        else {
            continue; // gone, or no longer a directory: its mode is moot
        };
        let st = nix::sys::stat::fstat(&dir).map_err(|e| failed(&shown, "stat", e.desc()))?;
        if (st.st_dev, st.st_ino) != made {
            continue;
        }
        set_xattrs(&dir, &xattrs, skipped)
            .map_err(|e| failed(&shown, "setting extended attributes", e.desc()))?;
        fchmod(&dir, Mode::from_bits_truncate(mode))
            .map_err(|e| failed(&shown, "chmod", e.desc()))?;
        if let Some(mtime) = mtime {
            futimens(&dir, &TimeSpec::UTIME_OMIT, &mtime)
                .map_err(|e| failed(&shown, "setting its mtime", e.desc()))?;
        }
    }
    Ok(())
}

/// What is set on a regular file once its data is written.
struct Finish {
    /// Its owner from the archive, when owners are kept.
    owner: Option<(Option<u64>, Option<u64>)>,
    xattrs: Xattrs,
    mode: u32,
    mtime: Option<TimeSpec>,
}

/// What the reading side tells the writer, in the archive's order.
enum Job {
    /// The file just made, which the data that follows is written to.
    Begin { file: File, shown: String },
    /// The next bytes of its data: this many from the batch's data.
    Data(usize),
    /// The end of its data.
    End(Finish),
}

/// Jobs and the data they write, sent together: the writer is woken once
/// for a batch's work.
struct Batch {
    jobs: Vec<Job>,
    /// [`BATCH_BYTES`] long, filled from the start: `filled` bytes of it.
    data: Vec<u8>,
    filled: usize,
    files: usize,
    /// Its first job goes on with a file the batch before began.
    goes_on: bool,
}

impl Batch {
    /// Written: empty again, to be filled from the start (its jobs were
    /// drained by the writing).
    fn clear(&mut self) {
        (self.filled, self.files) = (0, 0);
    }
}

/// Bytes of file data in one batch, and at most how many files.
const BATCH_BYTES: usize = 120 << 10;
const BATCH_FILES: usize = 8;

/// Batches on their way to the writer at most: the reading waits beyond
/// that. So about a MiB of data is in flight at most, and files open are
/// at most those of the batches queued, the one the writer writes, the one
/// being sent and the one being made: (8 + 3) × 8, and the writer's file
/// that goes on into the next batch.
const BATCHES: usize = 8;

/// The writing half of an unpack, on a thread of its own: each regular
/// file's data, owner, extended attributes, mode and mtime. The reading
/// side parses the archive and makes every entry, in order; the writer's
/// system calls are on open files only, so whatever name a later entry
/// gives or takes, each file gets what the archive says. On two cores the
/// two halves overlap, as the hashing of the layer does; when the writer
/// is behind, the reading side writes some batches itself (see `flush`).
struct Writer<'scope> {
    batches: Option<std::sync::mpsc::SyncSender<Batch>>,
    batch: Batch,
    /// Batches the writer is done with, to be filled again, and the one
    /// this thread wrote last.
    spent: std::sync::mpsc::Receiver<Batch>,
    spare: Vec<Batch>,
    /// Files of the batches sent and not yet back: open, or being written.
    queued_files: usize,
    /// At most this many files open at once (a part of the process's limit).
    max_open: usize,
    /// What this thread could not set on the files it wrote.
    skipped: Skipped,
    /// The buffer for the files written here at once.
    here: Option<Vec<u8>>,
    worker: Option<std::thread::ScopedJoinHandle<'scope, Result<u64>>>,
}

impl<'scope> Writer<'scope> {
    fn start<'env>(scope: &'scope std::thread::Scope<'scope, 'env>) -> Result<Writer<'scope>> {
        let (batches, received) = std::sync::mpsc::sync_channel(BATCHES);
        let (done, spent) = std::sync::mpsc::channel();
        let worker = std::thread::Builder::new()
            .spawn_scoped(scope, move || write_files(received, done))
            .map_err(|e| {
                Error::Invalid(format!(
                    "starting the unpack's writer thread: {e}: raise the process limit \
                     (ulimit -u) or the container's pids limit"
                ))
            })?;
        Ok(Writer {
            batches: Some(batches),
            batch: Self::new_batch(),
            spent,
            spare: Vec::new(),
            queued_files: 0,
            max_open: max_open(),
            skipped: Skipped::default(),
            here: None,
            worker: Some(worker),
        })
    }

    fn new_batch() -> Batch {
        Batch {
            jobs: Vec::with_capacity(3 * BATCH_FILES),
            data: vec![0; BATCH_BYTES],
            filled: 0,
            files: 0,
            goes_on: false,
        }
    }

    /// Give the writer `file`, `entry`'s data and what to set on it.
    /// Fails if the writer has stopped (the error is its own: see `finish`).
    /// A file with extended attributes is written here and now instead:
    /// they are few, and however many an archive gives a file, only one
    /// file's are ever held.
    fn file(
        &mut self,
        mut file: File,
        entry: &mut impl Read,
        shown: &str,
        finish: Finish,
    ) -> Result<()> {
        if !finish.xattrs.is_empty() {
            let here = self.here.get_or_insert_with(|| vec![0; 1 << 16]);
            loop {
                let n = read_entry(entry, here)?;
                if n == 0 {
                    break;
                }
                write_data(&mut file, &here[..n], shown)?;
            }
            return finish_file(&file, finish, shown, &mut self.skipped);
        }
        if self.batch.files == BATCH_FILES {
            self.flush()?;
        }
        if self.queued_files + self.batch.files >= self.max_open {
            self.settle()?;
        }
        self.batch.files += 1;
        self.batch.jobs.push(Job::Begin {
            file,
            shown: shown.to_string(),
        });
        loop {
            if self.batch.filled == BATCH_BYTES {
                self.flush()?;
            }
            let batch = &mut self.batch;
            let n = read_entry(entry, &mut batch.data[batch.filled..])?;
            if n == 0 {
                break;
            }
            batch.filled += n;
            // One job for bytes read one after the other.
            match batch.jobs.last_mut() {
                Some(Job::Data(bytes)) => *bytes += n,
                _ => batch.jobs.push(Job::Data(n)),
            }
        }
        self.batch.jobs.push(Job::End(finish));
        Ok(())
    }

    /// Send the batch made so far, and start another.
    ///
    /// When the writer has more than enough to do, a batch whose files all
    /// begin and end in it is written here instead: the two threads share
    /// the writing, and a file's data and metadata still come in order.
    fn flush(&mut self) -> Result<()> {
        let back = self.spent.try_recv().ok().map(|batch| self.reclaim(batch));
        let mut next = match self.spare.pop().or(back) {
            Some(batch) => batch,
            None => Self::new_batch(),
        };
        let open = !matches!(self.batch.jobs.last(), Some(Job::End(_)) | None);
        next.goes_on = open;
        let mut batch = std::mem::replace(&mut self.batch, next);
        let whole = !open && !batch.goes_on;
        let files = batch.files;
        let batches = self.batches.as_ref().ok_or_else(stopped)?;
        match batches.try_send(batch) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(full)) if whole => {
                batch = full;
                write_batch(&mut batch, &mut None, &mut self.skipped)?;
                batch.clear();
                self.spare.push(batch);
                return Ok(());
            }
            Err(std::sync::mpsc::TrySendError::Full(full)) => {
                batches.send(full).map_err(|_| stopped())?;
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(stopped()),
        }
        self.queued_files += files;
        Ok(())
    }

    /// A batch back from the writer, its files closed, ready to be filled.
    fn reclaim(&mut self, mut batch: Batch) -> Batch {
        self.queued_files -= batch.files;
        batch.clear();
        batch
    }

    /// Send what is made and wait until the writer has written every file
    /// sent: then none of them is open. Under a low limit of open files
    /// (ulimit -n), the unpack goes on a few files at a time.
    fn settle(&mut self) -> Result<()> {
        self.flush()?;
        while self.queued_files > 0 {
            let batch = self.spent.recv().map_err(|_| stopped())?;
            let batch = self.reclaim(batch);
            self.spare.push(batch);
        }
        Ok(())
    }

    /// Wait for the writer to write everything given: its first error, or
    /// how many extended attributes it could not set.
    fn finish(&mut self) -> Result<u64> {
        // Whether it went or the writer had stopped, the join tells.
        let _ = self.flush();
        drop(self.batches.take());
        match self.worker.take().map(|worker| worker.join()) {
            Some(Ok(result)) => Ok(result? + self.skipped.xattrs_refused),
            _ => Err(Error::Internal("the unpack's writer ended early".into())),
        }
    }
}

/// One read of an entry's data, again if a signal interrupted it. A
/// failure to read is the archive's fault.
fn read_entry(entry: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    super::store::read_retrying(entry, buf).map_err(not_a_tar)
}

/// The error for a writer that stopped: its own error is told (see
/// [`Writer::finish`]).
fn stopped() -> Error {
    Error::Internal("the unpack's writer stopped".into())
}

/// How many files an unpack may have open at once: a quarter of the
/// process's limit (the rest is the caller's), and never more than the
/// batches in flight hold.
fn max_open() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, which lives here.
    let soft = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
        0 => usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX),
        _ => 1024,
    };
    (soft / 4).clamp(1, (BATCHES + 3) * BATCH_FILES)
}

/// The writer's loop: see [`Writer`]. It stops at its first error, which
/// names the entry.
fn write_files(
    batches: std::sync::mpsc::Receiver<Batch>,
    spent: std::sync::mpsc::Sender<Batch>,
) -> Result<u64> {
    let mut skipped = Skipped::default();
    // A file whose data goes on in the next batch.
    let mut current: Option<(File, String)> = None;
    for mut batch in batches {
        write_batch(&mut batch, &mut current, &mut skipped)?;
        // Gone only when the reading side is.
        let _ = spent.send(batch);
    }
    Ok(skipped.xattrs_refused)
}

/// Do a batch's jobs, in order, going on with the file `current` if its
/// first job goes on with one.
fn write_batch(
    batch: &mut Batch,
    current: &mut Option<(File, String)>,
    skipped: &mut Skipped,
) -> Result<()> {
    let mut at = 0;
    for job in batch.jobs.drain(..) {
        match job {
            Job::Begin { file, shown } => *current = Some((file, shown)),
            Job::Data(bytes) => {
                let (file, shown) = current.as_mut().expect("data follows its file");
                write_data(file, &batch.data[at..at + bytes], shown)?;
                at += bytes;
            }
            Job::End(finish) => {
                let (file, shown) = current.take().expect("a file ends once");
                finish_file(&file, finish, &shown, skipped)?;
            }
        }
    }
    Ok(())
}

/// Set what the archive says of a regular file, its data written.
fn finish_file(file: &File, finish: Finish, shown: &str, skipped: &mut Skipped) -> Result<()> {
    // chown before chmod: chown clears the setuid and setgid bits.
    if let Some((uid, gid)) = finish.owner {
        fchown(
            file,
            uid.map(|u| Uid::from_raw(u as u32)),
            gid.map(|g| Gid::from_raw(g as u32)),
        )
        .map_err(|e| refuse(shown, format!("chown: {}", e.desc())))?;
    }
    // xattrs after chown, which clears security.capability, and before
    // chmod, which may take away the write permission a user needs to set
    // user.* attributes.
    set_xattrs(file, &finish.xattrs, skipped)
        .map_err(|e| failed(shown, "setting extended attributes", e.desc()))?;
    fchmod(file, Mode::from_bits_truncate(finish.mode))
        .map_err(|e| failed(shown, "chmod", e.desc()))?;
    if let Some(mtime) = finish.mtime {
        futimens(file, &TimeSpec::UTIME_OMIT, &mtime)
            .map_err(|e| failed(shown, "setting its mtime", e.desc()))?;
    }
    Ok(())
}

/// Whether an entry only says something of others (PAX headers, GNU long
/// names), and is no file itself.
pub fn is_meta(kind: tar::EntryType) -> bool {
    matches!(
        kind,
        tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink
    )
}

/// A directory whose mode, xattrs and mtime wait for the end of the unpack.
struct LaterDir {
    rel: PathBuf,
    mode: u32,
    /// Its (dev, ino) when made.
    made: (u64, u64),
    xattrs: Xattrs,
    mtime: Option<TimeSpec>,
}

/// Extended attributes to set: names and values.
type Xattrs = Vec<(CString, Vec<u8>)>;

/// The PAX records of the entry that we use: the extended attributes to
/// keep (counting the others in `skipped`) and a precise mtime.
fn pax_metadata(
    entry: &mut tar::Entry<impl Read>,
    skipped: &mut Skipped,
) -> io::Result<(Xattrs, Option<TimeSpec>)> {
    let mut xattrs = Vec::new();
    let mut mtime = None;
    let Some(records) = entry.pax_extensions()? else {
        return Ok((xattrs, mtime));
    };
    for record in records {
        let record = record?;
        let key = record.key_bytes();
        if key == b"mtime" {
            mtime = pax_time(record.value_bytes());
        } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
            match CString::new(name) {
                // More than the kernel takes (XATTR_SIZE_MAX): not held.
                Ok(name) if kept_xattr(name.as_bytes()) && record.value_bytes().len() > 1 << 16 => {
                    skipped.xattrs_refused += 1
                }
                Ok(name) if kept_xattr(name.as_bytes()) => {
                    xattrs.push((name, record.value_bytes().to_vec()));
                }
                _ => skipped.xattrs_not_kept += 1,
            }
        }
    }
    Ok((xattrs, mtime))
}

/// Whether an extended attribute of this name is set on unpack (and
/// written by commit): `user.*` but overlayfs's own, and file capabilities.
pub fn kept_xattr(name: &[u8]) -> bool {
    (name.starts_with(b"user.") && !name.starts_with(b"user.overlay."))
        || name == b"security.capability"
}

/// A PAX time, `SECONDS[.FRACTION]`; None for one before 1970 or malformed.
fn pax_time(value: &[u8]) -> Option<TimeSpec> {
    let text = std::str::from_utf8(value).ok()?;
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    let seconds: i64 = seconds.parse().ok()?;
    if seconds < 0 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(9)
        .collect();
    Some(TimeSpec::new(seconds, digits.parse().ok()?))
}

/// Set `xattrs` on the open file or directory `fd`. What the kernel will
/// not set for this user or on this filesystem is counted, not fatal.
fn set_xattrs(fd: &impl AsRawFd, xattrs: &Xattrs, skipped: &mut Skipped) -> nix::Result<()> {
    for (name, value) in xattrs {
        // SAFETY: fd is open; name is NUL-terminated and value is valid for its length.
        let rc = unsafe {
            libc::fsetxattr(
                fd.as_raw_fd(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if rc != 0 {
            match Errno::last() {
                // ERANGE, E2BIG: a name or value longer than the kernel takes.
                Errno::EPERM
                | Errno::EACCES
                | Errno::ENOTSUP
                | Errno::EINVAL
                | Errno::ERANGE
                | Errno::E2BIG => skipped.xattrs_refused += 1,
                other => return Err(other),
            }
        }
    }
    Ok(())
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..opq";

/// Record that `name` is deleted in this layer: overlayfs's whiteout, a
/// character device with number 0/0.
fn whiteout(parent: &OwnedFd, name: &Path) -> std::result::Result<(), String> {
    let bad = |n: &str| n.contains('/') || n == "." || n == "..";
    if name.as_os_str().is_empty() || name.to_str().is_some_and(bad) {
        return Err("not a valid whiteout name".into());
    }
    remove_existing(parent, name);
    let _ = unlinkat(parent, name, UnlinkatFlags::RemoveDir);
    mknodat(parent, name, SFlag::S_IFCHR, Mode::empty(), 0).map_err(|e| match e {
        Errno::EPERM => format!(
            "creating the whiteout: {} (overlay whiteouts need Linux 5.8 or later)",
            e.desc()
        ),
        other => format!("creating the whiteout: {}", other.desc()),
    })
}

/// Mark the directory `rel` opaque: overlayfs shows none of the lower layers' entries in it.
fn mark_opaque(root: &OwnedFd, rel: &Path) -> std::result::Result<(), String> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let dir = crate::dataroot::openat2(root, rel, how)
        .map_err(|e| format!("{}: {}", rel.display(), e.desc()))?;
    let mut names = vec![c"user.overlay.opaque"];
    if super::mapped::real_root() {
        names.push(c"trusted.overlay.opaque");
    }
    for xattr in names {
        // SAFETY: dir is an open directory fd; name and value are valid for the call.
        let rc =
            unsafe { libc::fsetxattr(dir.as_raw_fd(), xattr.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
        if rc != 0 {
            return Err(format!("setting {xattr:?}: {}", Errno::last().desc()));
        }
    }
    Ok(())
}

/// The error for an archive that cannot be read as tar (or gzip).
pub fn not_a_tar(e: io::Error) -> Error {
    Error::Invalid(format!(
        "the image is not a readable tar archive ({e}): check the file, or re-export it"
    ))
}

/// The entry's path relative to the destination, or why it is refused.
/// `Ok(None)` is the archive's root directory entry (`./`).
pub fn clean_path(path: &Path) -> std::result::Result<Option<PathBuf>, String> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("its path contains '..'".into()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("its path is absolute".into());
            }
        }
    }
    Ok((!clean.as_os_str().is_empty()).then_some(clean))
}

/// Split `a/b/c` into (`a/b`, `c`).
fn split(rel: &Path) -> (PathBuf, PathBuf) {
    let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = PathBuf::from(
        rel.file_name()
            .expect("a cleaned path has a last component"),
    );
    (parent, name)
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("opening", dir, e.into()))
}

/// Open the directory `rel` below `root`, refusing any path that would leave
/// it or pass through a symlink (see openat2(2), RESOLVE_BENEATH).
pub fn open_beneath(root: &impl AsFd, rel: &Path) -> std::result::Result<OwnedFd, String> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    crate::dataroot::openat2(root, rel, how).map_err(|errno| match errno {
        Errno::ELOOP => format!("{} passes through a symlink", rel.display()),
        Errno::EXDEV => format!("{} is outside the image", rel.display()),
        Errno::ENOTDIR => format!("{} is not a directory", rel.display()),
        Errno::ENOENT => format!(
            "its directory {} is not in the archive before it",
            rel.display()
        ),
        other => format!("{}: {}", rel.display(), other.desc()),
    })
}

/// Open the entry's parent directory `rel` below `root`, creating missing
/// directories (mode 0755) one component at a time, as tar does: archives,
/// and layers especially, need not list every parent before its children.
fn open_parent(root: &OwnedFd, rel: &Path) -> std::result::Result<OwnedFd, String> {
    match open_beneath(root, rel) {
        Err(why) if why.contains("is not in the archive") => {}
        other => return other,
    }
    let mut dir = open_beneath(root, Path::new("."))?;
    for part in rel.components() {
        let part = Path::new(part.as_os_str());
        match mkdirat(&dir, part, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(errno) => return Err(format!("creating {}: {}", part.display(), errno.desc())),
        }
        dir = open_beneath(&dir, part)
            .map_err(|_| format!("{} passes through a symlink", rel.display()))?;
    }
    Ok(dir)
}

/// Bytes written by unpacks in this process, to check the free space every
/// [`SPACE_CHECK`] of them.
static WRITTEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How often (in bytes written) the data root's free space is checked.
const SPACE_CHECK: u64 = 1 << 20;

/// Write a piece of an entry's data into the file made for it. A failure
/// to write (a full disk) is not a refusal. An unpack never takes the data
/// root's filesystem below a reserve (5 % of it, at most 1 GiB): a small
/// compressed layer may expand to gigabytes (a decompression bomb), and
/// the host needs its disk.
fn write_data(file: &mut File, bytes: &[u8], shown: &str) -> Result<()> {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    let n = bytes.len() as u64;
    let before = WRITTEN.fetch_add(n, Ordering::Relaxed);
    if before / SPACE_CHECK != (before + n) / SPACE_CHECK {
        check_space(file, shown)?;
    }
    file.write_all(bytes)
        .map_err(|e| failed(shown, "writing", e))
}

/// Fail if the filesystem holding `file` has less than its reserve free.
fn check_space(file: &File, shown: &str) -> Result<()> {
    let Ok(stat) = nix::sys::statvfs::fstatvfs(file) else {
        return Ok(());
    };
    let block = stat.fragment_size();
    let total = stat.blocks() * block;
    let free = stat.blocks_available() * block;
    let reserve = (total / 20).min(1 << 30);
    if free >= reserve {
        return Ok(());
    }
    Err(failed(
        shown,
        "writing",
        format!(
            "the data root's filesystem would be left with less than {} MiB free: the image \
             is larger than the space there, or expands to far more than it stores; free \
             some space, or use another --root",
            reserve >> 20
        ),
    ))
}

/// The directory `rel` below `root`, opened for fchmod (never through a
/// symlink), or None if it is not there or is no directory now.
fn open_beneath_dir(root: &OwnedFd, rel: &Path) -> nix::Result<Option<OwnedFd>> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    match crate::dataroot::openat2(root, rel, how) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Create a new file (never through a symlink: O_NOFOLLOW|O_EXCL).
fn create_file(parent: &OwnedFd, name: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::openat(
        parent,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
}

/// Create `name` with `create`. If an earlier entry holds the name, remove it
/// (never a directory: that fails) and create once more: in a tar archive, a
/// later entry replaces an earlier one. Trying first costs nothing in the
/// common case, where the name is new.
fn replacing<T>(
    parent: &OwnedFd,
    name: &Path,
    mut create: impl FnMut() -> nix::Result<T>,
) -> nix::Result<T> {
    match create() {
        Err(Errno::EEXIST) => {
            unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)?;
            create()
        }
        other => other,
    }
}

/// A later entry replaces an earlier one of the same name (tar semantics).
fn remove_existing(parent: &OwnedFd, name: &Path) {
    let _ = unlinkat(parent, name, UnlinkatFlags::NoRemoveDir);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file's bytes in the test below: its number, over and over.
    fn test_data(n: usize) -> Vec<u8> {
        let size = match n % 50 {
            0 => 130_000,
            _ => [0, 1, 511, 4096, 9000][n % 5],
        } + n;
        n.to_string().bytes().cycle().take(size).collect()
    }

    // Thousands of files, some of which span batches, unpacked with the
    // writer thread (and, when it is behind, the reading side) writing them:
    // each has its own data, mode and mtime, whichever thread wrote it.
    #[test]
    fn every_file_gets_its_own_data_mode_and_mtime() {
        let mut builder = tar::Builder::new(Vec::new());
        let count = 3000;
        for n in 0..count {
            let mut header = tar::Header::new_gnu();
            let data = test_data(n);
            header.set_size(data.len() as u64);
            header.set_mode([0o644, 0o600, 0o755, 0o444][n % 4]);
            header.set_mtime(1_000_000 + n as u64);
            builder
                .append_data(&mut header, format!("d{}/f{n}", n % 7), &data[..])
                .unwrap();
        }
        let archive = builder.into_inner().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let unpacked = unpack(&archive[..], dest.path()).unwrap();
        assert_eq!(unpacked.entries, count as u64);
        for n in 0..count {
            let path = dest.path().join(format!("d{}/f{n}", n % 7));
            let meta = std::fs::symlink_metadata(&path).unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!(
                meta.mode() & 0o7777,
                [0o644, 0o600, 0o755, 0o444][n % 4],
                "{path:?}"
            );
            assert_eq!(meta.mtime(), 1_000_000 + n as i64, "{path:?}");
            assert!(
                std::fs::read(&path).unwrap() == test_data(n),
                "{path:?}'s data"
            );
        }
    }

    // The writer held (its first file a pipe nobody reads yet, given more
    // than a pipe holds), so that the reading side writes batches itself:
    // a batch it wrote was reused without being emptied, and the next one
    // wrote the stale bytes at its start into the following files (the
    // test above failed now and then in CI, under load).
    #[test]
    fn a_batch_the_reading_side_wrote_is_reused_empty() {
        let dest = tempfile::tempdir().unwrap();
        let finish = || Finish {
            owner: None,
            xattrs: Xattrs::new(),
            mode: 0o644,
            mtime: None,
        };
        let (pipe_out, pipe_in) = nix::unistd::pipe().unwrap();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| {
            let drain = scope.spawn(move || {
                wait.recv().unwrap();
                let mut read = Vec::new();
                File::from(pipe_out).read_to_end(&mut read).unwrap();
                read.len()
            });
            let mut writer = Writer::start(scope).unwrap();
            let big = vec![7u8; 256 << 10];
            writer
                .file(File::from(pipe_in), &mut &big[..], "pipe", finish())
                .unwrap();
            for n in 0..200 {
                let path = dest.path().join(format!("f{n}"));
                let file = File::create(&path).unwrap();
                let data = n.to_string().repeat(1 + n % 700);
                writer
                    .file(file, &mut data.as_bytes(), "f", finish())
                    .unwrap();
            }
            assert!(writer.spare.len() + writer.queued_files > 0);
            go.send(()).unwrap();
            writer.finish().unwrap();
            assert_eq!(drain.join().unwrap(), big.len());
        });
        for n in 0..200 {
            let path = dest.path().join(format!("f{n}"));
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                n.to_string().repeat(1 + n % 700),
                "{path:?}"
            );
        }
    }

    #[test]
    fn the_notice_counts_each_kind_once_in_one_line() {
        let skipped = Skipped {
            devices: 23,
            sockets: 1,
            ..Skipped::default()
        };
        assert_eq!(
            skipped.notice().as_deref(),
            Some(
                "skipped 23 device nodes and 1 socket in the image: a container gets its own /dev"
            )
        );
        assert_eq!(Skipped::default().notice(), None);
        let xattrs = Skipped {
            xattrs_not_kept: 2,
            xattrs_refused: 1,
            ..Skipped::default()
        };
        assert_eq!(
            xattrs.notice().as_deref(),
            Some(
                "skipped 2 extended attributes of namespaces never set (trusted.* or other) and \
                 1 extended attribute this user or filesystem cannot set in the image"
            )
        );
    }

    #[test]
    fn only_user_and_capability_xattrs_are_kept() {
        assert!(kept_xattr(b"user.note"));
        assert!(kept_xattr(b"security.capability"));
        assert!(!kept_xattr(b"trusted.overlay.opaque"), "overlayfs reads it");
        assert!(
            !kept_xattr(b"user.overlay.redirect"),
            "a rootless overlay reads it"
        );
        assert!(
            !kept_xattr(b"security.selinux"),
            "another security module's"
        );
        assert!(
            !kept_xattr(b"system.posix_acl_access"),
            "not a namespace we keep"
        );
    }

    #[test]
    fn pax_times_keep_their_fraction_and_refuse_the_rest() {
        assert_eq!(pax_time(b"981158400"), Some(TimeSpec::new(981_158_400, 0)));
        assert_eq!(pax_time(b"1.5"), Some(TimeSpec::new(1, 500_000_000)));
        assert_eq!(
            pax_time(b"1.1234567899"),
            Some(TimeSpec::new(1, 123_456_789))
        );
        assert_eq!(
            pax_time(b"-1.5"),
            None,
            "before 1970: the ustar field is used"
        );
        assert_eq!(pax_time(b"12x"), None);
        assert_eq!(pax_time(b"1.2e3"), None);
    }
}
