//! Commit: a container's filesystem written as a rootfs tarball (ch5).
//!
//! The tree is walked with directory file descriptors: every entry is looked
//! at with `fstatat(AT_SYMLINK_NOFOLLOW)` and opened with `openat(O_NOFOLLOW)`
//! relative to its parent's fd, so a symlink is stored as a symlink and never
//! followed, and no path is ever re-resolved from the top (a container that
//! swaps a directory for a symlink mid-walk cannot redirect us to the host).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use std::os::unix::fs::MetadataExt;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};

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
    let root = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("opening", dir, e.into()))?;
    let mut walk = Walk {
        tar: tar::Builder::new(out),
        links: HashMap::new(),
        done: Exported::default(),
    };
    walk.tar.follow_symlinks(false);
    walk.directory(&root, Path::new(""))?;
    walk.tar
        .into_inner()
        .and_then(|mut out| out.flush())
        .map_err(|e| Error::io("writing", "the image", e))?;
    Ok(walk.done)
}

struct Walk<W: Write> {
    tar: tar::Builder<W>,
    /// (dev, ino) of files with several links → the path first written.
    links: HashMap<(u64, u64), PathBuf>,
    done: Exported,
}

impl<W: Write> Walk<W> {
    fn directory(&mut self, dir: &OwnedFd, rel: &Path) -> Result<()> {
        let listing = Dir::openat(
            dir,
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
            self.entry(dir, &rel.join(&name), Path::new(&name))?;
        }
        Ok(())
    }

    fn entry(&mut self, dir: &OwnedFd, rel: &Path, name: &Path) -> Result<()> {
        // A running container may delete files while we walk: what is gone is skipped.
        let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(Error::io("stat", rel, e.into())),
        };
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
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
                self.tar
                    .append_data(&mut header, rel, std::io::empty())
                    .map_err(io)?;
                let flags =
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let sub = match nix::fcntl::openat(dir, name, flags, Mode::empty()) {
                    Ok(sub) => sub,
                    Err(Errno::ENOENT) => return Ok(()),
                    Err(e) => return Err(Error::io("opening", rel, e.into())),
                };
                self.done.entries += 1;
                return self.directory(&sub, rel);
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(dir, name)
                    .map_err(|e| Error::io("readlink", rel, e.into()))?;
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
                        return Ok(());
                    }
                    self.links.insert(key, rel.to_path_buf());
                }
                // O_NONBLOCK: if the container swapped a FIFO in, opening
                // it must not hang; then the fd must be the file we stat'ed.
                let flags =
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
                let fd = match nix::fcntl::openat(dir, name, flags, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(Errno::ENOENT) => return Ok(()),
                    Err(e) => return Err(Error::io("opening", rel, e.into())),
                };
                let file = File::from(fd);
                let opened = file.metadata().map_err(|e| Error::io("stat", rel, e))?;
                if !opened.is_file() || (opened.dev(), opened.ino()) != (st.st_dev, st.st_ino) {
                    return Err(Error::Invalid(format!(
                        "{} changed while it was being committed: commit again",
                        rel.display()
                    )));
                }
                let size = opened.len();
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
            _ => {
                detail!(5, "not exported (device or socket): {}", rel.display());
                self.done.skipped.push(rel.to_path_buf());
                return Ok(());
            }
        }
        self.done.entries += 1;
        Ok(())
    }
}
