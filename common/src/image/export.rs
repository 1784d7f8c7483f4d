//! Commit: a container's filesystem written as a rootfs tarball (ch5).
//!
//! The tree is walked with directory file descriptors: every entry is looked
//! at with `fstatat(AT_SYMLINK_NOFOLLOW)` and opened with `openat(O_NOFOLLOW)`
//! relative to its parent's fd, so a symlink is stored as a symlink and never
//! followed, and no path is ever re-resolved from the top (a container that
//! swaps a directory for a symlink mid-walk cannot redirect us to the host).
//!
//! Each entry keeps its metadata: numeric owners, mode, mtime, and the
//! extended attributes unpack keeps (`user.*`, `security.capability`), read
//! from the fd we hold and written as PAX `SCHILY.xattr.*` records, as GNU
//! tar `--xattrs` and bsdtar write them.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use std::os::unix::fs::MetadataExt;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, Mode, SFlag};

use crate::detail;
use crate::error::{Error, Result};

/// What the walk wrote.
#[derive(Debug, Default)]
pub struct Exported {
    pub entries: u64,
    pub bytes: u64,
    /// Device nodes and sockets, which a rootfs tarball does not carry.
    pub skipped: Vec<PathBuf>,
}

/// Write the tree below `dir` into `out` as a tar stream (paths relative to
/// `dir`, as `docker export` writes them).
pub fn write_tree(dir: &Path, out: impl Write) -> Result<Exported> {
    write(dir, out, None)
}

/// Write the overlay upper directory `upper` into `out` as an image layer:
/// what the container changed. overlayfs records a deletion as a character
/// device 0/0 and a directory that hides everything below it with the
/// xattr `overlay.opaque`; a layer says the same with an empty file
/// `.wh.NAME` and an entry `.wh..wh..opq` in the directory (the OCI
/// image spec's whiteouts, which unpack turns back into overlay's).
///
/// `userxattr`: the overlay keeps its xattrs in `user.overlay.*` (in a user
/// namespace), else in `trusted.overlay.*`; only that one is read, since a
/// container can set the other itself.
pub fn write_layer(upper: &Path, out: impl Write, userxattr: bool) -> Result<Exported> {
    let prefix = if userxattr {
        "user.overlay."
    } else {
        "trusted.overlay."
    };
    write(upper, out, Some(prefix))
}

fn write(dir: &Path, out: impl Write, layer: Option<&'static str>) -> Result<Exported> {
    let root = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("opening", dir, e.into()))?;
    let mut walk = Walk {
        tar: tar::Builder::new(Output {
            inner: out,
            failed: false,
        }),
        links: HashMap::new(),
        done: Exported::default(),
        layer,
    };
    walk.tar.follow_symlinks(false);
    if let Err(error) = walk.directory(root, Path::new(""), 0) {
        // A full disk fails the write of the image, not the file being added.
        return Err(match error {
            Error::Io { path, source, .. } if walk.tar.get_ref().failed => Error::Io {
                what: "writing the new image, while adding",
                path: Path::new("/").join(path),
                source,
            },
            other => other,
        });
    }
    walk.tar
        .into_inner()
        .and_then(|mut out| out.flush())
        .map_err(|e| Error::io("writing", "the new image", e))?;
    Ok(walk.done)
}

/// Directories deeper than this are not kept open while their subtrees are
/// walked: they are reopened through `..` (checked to be the same directory),
/// so any depth needs a bounded number of fds.
const HELD_OPEN: usize = 32;

/// The image being written, remembering whether writing it failed: then the
/// error is the image's (a full disk), not the file being read.
struct Output<W> {
    inner: W,
    failed: bool,
}

impl<W: Write> Write for Output<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = self.inner.write(buf);
        self.failed |= result.is_err();
        result
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let result = self.inner.flush();
        self.failed |= result.is_err();
        result
    }
}

struct Walk<W: Write> {
    tar: tar::Builder<Output<W>>,
    /// (dev, ino) of files with several links → the path first written.
    links: HashMap<(u64, u64), PathBuf>,
    done: Exported,
    /// An overlay upper directory, written as a layer (whiteouts
    /// translated): the prefix of the overlay's own xattrs.
    layer: Option<&'static str>,
}

impl<W: Write> Walk<W> {
    /// Write the directory `dir` (at `rel`, `depth` levels down) and return
    /// its fd, which may have been closed and reopened meanwhile.
    fn directory(&mut self, mut dir: OwnedFd, rel: &Path, depth: usize) -> Result<OwnedFd> {
        let listing = Dir::openat(
            &dir,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("listing", rel, e.into()))?;
        let mut names: Vec<std::ffi::OsString> = Vec::new();
        for entry in listing.into_iter() {
            let entry = entry.map_err(|e| Error::io("listing", rel, e.into()))?;
            let name = std::ffi::OsStr::from_bytes(entry.file_name().to_bytes());
            if name != "." && name != ".." {
                names.push(name.to_os_string());
            }
        }
        names.sort();
        for name in names {
            let rel = rel.join(&name);
            let Some(sub) = self.entry(&dir, &rel, Path::new(&name))? else {
                continue;
            };
            if depth < HELD_OPEN {
                self.directory(sub, &rel, depth + 1)?;
                continue;
            }
            let id = fstat(&dir).map_err(|e| Error::io("stat", &rel, e.into()))?;
            drop(dir);
            let sub = self.directory(sub, &rel, depth + 1)?;
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
            dir = nix::fcntl::openat(&sub, "..", flags, Mode::empty())
                .map_err(|e| Error::io("opening", &rel, e.into()))?;
            let again = fstat(&dir).map_err(|e| Error::io("stat", &rel, e.into()))?;
            if (again.st_dev, again.st_ino) != (id.st_dev, id.st_ino) {
                return Err(Error::Conflict(format!(
                    "{} was moved while it was being committed: commit again",
                    rel.display()
                )));
            }
        }
        Ok(dir)
    }

    /// Write one entry; a directory's fd is returned, to be walked next.
    fn entry(&mut self, dir: &OwnedFd, rel: &Path, name: &Path) -> Result<Option<OwnedFd>> {
        // A running container may delete files while we walk: what is gone is skipped.
        let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(Error::io("stat", rel, e.into())),
        };
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        // An image layer reads such a name as a deletion (the OCI image
        // spec's whiteouts): committed, it would delete files, not be one.
        if name.as_os_str().as_bytes().starts_with(b".wh.") {
            return Err(Error::Invalid(format!(
                "/{} is named .wh.*, which an image layer reads as a deletion: rename or \
                 remove it in the container, then commit again",
                crate::error::printable(&rel.display().to_string())
            )));
        }
        let mut header = tar::Header::new_gnu();
        header.set_mode(st.st_mode & 0o7777);
        header.set_uid(st.st_uid as u64);
        header.set_gid(st.st_gid as u64);
        header.set_mtime(st.st_mtime.max(0) as u64);
        header.set_size(0);
        let io = |e: std::io::Error| Error::io("writing", rel, e);
        match kind {
            SFlag::S_IFDIR => {
                header.set_entry_type(tar::EntryType::Directory);
                let flags =
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let sub = match nix::fcntl::openat(dir, name, flags, Mode::empty()) {
                    Ok(sub) => sub,
                    Err(Errno::ENOENT) => return Ok(None),
                    Err(e) => return Err(Error::io("opening", rel, e.into())),
                };
                let xattrs = kept_xattrs(&sub, rel)?;
                append_pax(&mut self.tar, rel, &xattrs).map_err(io)?;
                self.tar
                    .append_data(&mut header, rel, std::io::empty())
                    .map_err(io)?;
                self.done.entries += 1;
                if let Some(prefix) = self.layer {
                    refuse_redirect(&sub, rel, prefix, "redirect")?;
                    if overlay_xattr(&sub, prefix, "opaque").as_deref() == Some(b"y") {
                        self.whiteout(&rel.join(".wh..opq"))?;
                    }
                }
                return Ok(Some(sub));
            }
            SFlag::S_IFLNK => {
                let target = match nix::fcntl::readlinkat(dir, name) {
                    Ok(target) => target,
                    // Deleted, or replaced by another kind, meanwhile: skipped as gone.
                    Err(Errno::ENOENT | Errno::EINVAL) => return Ok(None),
                    Err(e) => {
                        return Err(Error::io("readlink", Path::new("/").join(rel), e.into()))
                    }
                };
                header.set_entry_type(tar::EntryType::Symlink);
                let bytes = target.as_bytes();
                if bytes.len() < 100 {
                    // Byte for byte: the tar crate's path setter would rewrite "/" as "//".
                    header.set_link_name_literal(bytes).map_err(io)?;
                    self.tar
                        .append_data(&mut header, rel, std::io::empty())
                        .map_err(io)?;
                } else {
                    self.tar
                        .append_link(&mut header, rel, Path::new(&target))
                        .map_err(io)?;
                }
            }
            SFlag::S_IFREG => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some(first) = self.links.get(&key) {
                        header.set_entry_type(tar::EntryType::Link);
                        let first = first.clone();
                        self.tar.append_link(&mut header, rel, &first).map_err(io)?;
                        self.done.entries += 1;
                        return Ok(None);
                    }
                    self.links.insert(key, rel.to_path_buf());
                }
                // O_NONBLOCK: if the container swapped a FIFO in, opening
                // it must not hang; then the fd must be the file we stat'ed.
                let flags =
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
                let fd = match nix::fcntl::openat(dir, name, flags, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(Errno::ENOENT) => return Ok(None),
                    Err(e) => return Err(Error::io("opening", rel, e.into())),
                };
                let file = File::from(fd);
                let opened = file.metadata().map_err(|e| Error::io("stat", rel, e))?;
                if !opened.is_file() || (opened.dev(), opened.ino()) != (st.st_dev, st.st_ino) {
                    return Err(Error::Conflict(format!(
                        "{} changed while it was being committed: commit again",
                        rel.display()
                    )));
                }
                let size = opened.len();
                if let Some(prefix) = self.layer {
                    refuse_redirect(&file, rel, prefix, "metacopy")?;
                }
                let xattrs = kept_xattrs(&file, rel)?;
                append_pax(&mut self.tar, rel, &xattrs).map_err(io)?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(size);
                // Exactly `size` bytes even if the file changes meanwhile:
                // cut if it grew, zero-padded if it shrank.
                use std::io::Read;
                let body = file.take(size).chain(std::io::repeat(0)).take(size);
                self.tar.append_data(&mut header, rel, body).map_err(io)?;
                self.done.bytes += size;
            }
            SFlag::S_IFIFO => {
                header.set_entry_type(tar::EntryType::Fifo);
                self.tar
                    .append_data(&mut header, rel, std::io::empty())
                    .map_err(io)?;
            }
            SFlag::S_IFCHR if self.layer.is_some() && st.st_rdev == 0 => {
                // overlayfs's record of a deletion.
                self.whiteout(rel)?;
                return Ok(None);
            }
            _ => {
                // The container names its files: shown escaped.
                let shown = crate::error::printable(&rel.to_string_lossy());
                detail!(5, "not exported (device or socket): {shown}");
                self.done.skipped.push(rel.to_path_buf());
                return Ok(None);
            }
        }
        self.done.entries += 1;
        Ok(None)
    }
}

impl<W: Write> Walk<W> {
    /// The layer's record that `rel` is deleted: an empty file `.wh.NAME`
    /// beside it (`.wh..wh..opq` for an opaque directory's own marker).
    fn whiteout(&mut self, rel: &Path) -> Result<()> {
        let name = rel.file_name().unwrap_or_default().as_bytes();
        let marker = rel.with_file_name(std::ffi::OsStr::from_bytes(&[b".wh.", name].concat()));
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o600);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(0);
        self.tar
            .append_data(&mut header, &marker, std::io::empty())
            .map_err(|e| Error::io("writing", rel, e))?;
        self.done.entries += 1;
        Ok(())
    }
}

/// The overlay xattr `prefix` + `name` of `fd`, if set.
fn overlay_xattr(fd: &impl AsRawFd, prefix: &str, name: &str) -> Option<Vec<u8>> {
    let c_name = std::ffi::CString::new(format!("{prefix}{name}")).ok()?;
    xattr(fd, &c_name).ok()
}

/// The value of the extended attribute `name` of the open file `fd`.
fn xattr(fd: &impl AsRawFd, name: &std::ffi::CStr) -> std::result::Result<Vec<u8>, Errno> {
    let mut value = vec![0u8; 256];
    loop {
        // SAFETY: fd is open; name is NUL-terminated; the buffer is valid for its length.
        let n = unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if n >= 0 {
            value.truncate(n as usize);
            return Ok(value);
        }
        match Errno::last() {
            Errno::ERANGE => value.resize(value.len() * 4, 0),
            other => return Err(other),
        }
    }
}

/// A renamed directory (`redirect_dir`) or a copied-up inode whose data
/// stayed below (`metacopy`) is not whole in the upper directory: such a
/// container cannot be committed as a layer.
fn refuse_redirect(fd: &impl AsRawFd, rel: &Path, prefix: &str, feature: &str) -> Result<()> {
    match overlay_xattr(fd, prefix, feature) {
        Some(_) => Err(Error::Invalid(format!(
            "/{} is an overlayfs {feature} entry, whose contents are not in the container's \
             own directory: commit --flatten instead",
            crate::error::printable(&rel.display().to_string())
        ))),
        None => Ok(()),
    }
}

/// The extended attributes of the open file `fd` that an image keeps
/// (see unpack::kept_xattr), names and values.
fn kept_xattrs(fd: &impl AsRawFd, rel: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let failed = |e: Errno| Error::io("reading the extended attributes of", rel, e.into());
    let mut names = vec![0u8; 1024];
    loop {
        // SAFETY: fd is open; the buffer is valid for its length.
        let n = unsafe { libc::flistxattr(fd.as_raw_fd(), names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            names.truncate(n as usize);
            break;
        }
        match Errno::last() {
            Errno::ERANGE => names.resize(names.len() * 4, 0),
            Errno::ENOTSUP => return Ok(Vec::new()),
            other => return Err(failed(other)),
        }
    }
    let mut kept = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if !super::unpack::kept_xattr(name) {
            continue;
        }
        let c_name = std::ffi::CString::new(name).map_err(|_| failed(Errno::EINVAL))?;
        match xattr(fd, &c_name) {
            // A PAX record splits at its first '=': such a name would come
            // back as another attribute. Not committed.
            Ok(_) if name.contains(&b'=') => {
                let shown = crate::error::printable(&String::from_utf8_lossy(name));
                crate::error::notice(format!(
                    "not committed: the extended attribute {shown} of /{} (its name holds '=')",
                    crate::error::printable(&rel.display().to_string())
                ));
            }
            Ok(value) => kept.push((name.to_vec(), value)),
            // Removed meanwhile (a running container), or a namespaced
            // file capability whose owner this namespace cannot name.
            Err(Errno::ENODATA | Errno::EOVERFLOW) => {
                let shown = crate::error::printable(&String::from_utf8_lossy(name));
                detail!(
                    5,
                    "extended attribute {shown} of {} not read",
                    rel.display()
                );
            }
            Err(other) => return Err(failed(other)),
        }
    }
    Ok(kept)
}

/// Write a PAX extended header carrying `xattrs` for the entry `rel` that
/// follows (nothing if there are none).
fn append_pax<W: Write>(
    tar: &mut tar::Builder<W>,
    rel: &Path,
    xattrs: &[(Vec<u8>, Vec<u8>)],
) -> std::io::Result<()> {
    if xattrs.is_empty() {
        return Ok(());
    }
    let mut data = Vec::new();
    for (name, value) in xattrs {
        // "LEN SCHILY.xattr.NAME=VALUE\n", LEN counting the whole record, itself included.
        let rest = [b" SCHILY.xattr.", &name[..], b"=", &value[..], b"\n"].concat();
        let mut len = rest.len() + 1;
        while len.to_string().len() + rest.len() > len {
            len += 1;
        }
        data.extend_from_slice(len.to_string().as_bytes());
        data.extend_from_slice(&rest);
    }
    let mut header = tar::Header::new_ustar();
    // Named as GNU tar names them; a reader that knows no PAX sees a file.
    let base = rel.file_name().map(|n| n.as_bytes()).unwrap_or(b"");
    let pax_name = [b"PaxHeaders/", &base[..base.len().min(80)]].concat();
    header.as_old_mut().name[..pax_name.len()].copy_from_slice(&pax_name);
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    tar.append(&header, &data[..])
}
