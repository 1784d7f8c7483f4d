//! Layers unpacked under the container's id map, rootless with subordinate ids (ch3 onwards).
//!
//! As root, the unpack gives every file the owner its archive names. As an
//! ordinary user with one uid mapped, every file is the caller's, which is
//! uid 0 in the container: owners are lost, and nothing can be done about it.
//! With a subordinate range (see [`crate::namespace::id_map`]) the container
//! has 65536 ids, and a file the archive gives to uid 1000 must be the
//! host's `START+999`, which only a process in a user namespace mapped the
//! same way may `fchown` to. So the unpack runs in a child:
//!
//! ```text
//! parent (the caller)                      child (forked)
//!   fork ───────────────────────────────▶ unshare(CLONE_NEWUSER), "ready"
//!   newuidmap/newgidmap CHILD 0 UID 1 1 START 65535
//!   "go" ───────────────────────────────▶ uid 0 here, holding CAP_CHOWN over the range
//!   read, hash, gunzip the tarball ─tar─▶ unpack into the scratch dir, fchown as the archive says
//!   ◀──────────────────────────────────── the result (or the error) as one JSON line
//! ```
//!
//! The parent keeps reading the file and hashing it, so the layer's digest is
//! computed exactly as before, by the side that does not run the archive's
//! entries; the child only ever sees a tar stream on a pipe.
//!
//! **The cache key.** A layer unpacked with one uid has every owner 0; the
//! same layer unpacked under a range keeps them. Both are right for their own
//! map only, so they never share a directory: root's runs and single-uid
//! rootless runs keep `layers/<digest>/` (their owners differ, but each data
//! root has one owner, who always gets the same one), and a range has its own
//! `layers-<UID.START.COUNT-GID.START.COUNT>/<digest>/`. The index
//! (`index/`) keeps naming digests, which do not depend on the map: a
//! change of range (a new line in /etc/subuid) only unpacks the image again,
//! into the new range's directory. Files there are owned by the range, so the
//! caller can remove them only from inside such a namespace (`podman unshare`
//! does the same for podman's).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe2, ForkResult, Uid};
use serde::{de::DeserializeOwned, Serialize};

use super::unpack::{self, Unpacked};
use crate::dataroot::DataRoot;
use crate::error::{Error, Result};
use crate::namespace::{self, IdMap};
use crate::{detail, narrate};

/// The range this process's rootless runs map, or None (root, or one uid).
fn range() -> Option<&'static IdMap> {
    if !namespace::rootless() {
        return None;
    }
    match namespace::id_map() {
        map @ IdMap::Range { .. } => Some(map),
        IdMap::Single { .. } => None,
    }
}

/// The directory of unpacked layers for this process's id map: `layers/`,
/// or `layers-<map>/` with a subordinate range (see the module's comment).
pub fn layers_dir(root: &DataRoot) -> Result<PathBuf> {
    match range().and_then(IdMap::key) {
        Some(key) => root.dir(&format!("layers-{key}")),
        None => root.dir("layers"),
    }
}

/// Every directory of unpacked layers in the data root: `layers/`, and one
/// `layers-<map>/` per subordinate range that unpacked any.
pub fn all_layer_dirs(root: &DataRoot) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root.path()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            (name == "layers" || name.starts_with("layers-"))
                && e.file_type().is_ok_and(|t| t.is_dir())
        })
        .map(|e| e.path())
        .collect()
}

/// [`unpack::unpack`], in a user namespace mapped like the container's when
/// there is a subordinate range; directly otherwise. A failed unpack under
/// a range is emptied by the child, the one that can remove what it made.
pub fn unpack(reader: impl Read, dest: &Path) -> Result<Unpacked> {
    if range().is_none() {
        return unpack::unpack(reader, dest);
    }
    detail!(
        3,
        "unpacking in a child mapped like the container, so that owners are kept"
    );
    let why = "unpacks in a user namespace mapped like the container's";
    let made = in_mapped_userns(why, reader, |tar| {
        let unpacked = unpack::unpack(tar, dest);
        if unpacked.is_err() {
            empty(dest);
        }
        unpacked
            .map(|u| {
                let s = u.skipped;
                (
                    u.entries,
                    u.root_mode,
                    [s.devices, s.sockets, s.xattrs_not_kept, s.xattrs_refused],
                )
            })
            .map_err(|error| match error {
                // An owner the map has no id for.
                Error::Invalid(text) if text.ends_with("chown: Invalid argument") => {
                    Error::Invalid(format!(
                "{text} (its owner is beyond the ids your range maps: give yourself 65536 ids \
                 in /etc/subuid and /etc/subgid)"
            ))
                }
                other => other,
            })
    })?;
    let [devices, sockets, xattrs_not_kept, xattrs_refused] = made.2;
    Ok(Unpacked {
        entries: made.0,
        root_mode: made.1,
        skipped: unpack::Skipped {
            devices,
            sockets,
            xattrs_not_kept,
            xattrs_refused,
        },
    })
}

/// [`crate::dataroot::remove_tree`], and if that is refused and there is a
/// range, again from a child mapped like the container: a container may
/// have given its files to other ids of the range (`chown 1234`), and only
/// such a namespace may remove what they keep in their own directories.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let refused = match crate::dataroot::remove_tree(path) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => e,
        done => return done,
    };
    if range().is_none() {
        return Err(refused);
    }
    let why = "removes files the container gave to the ids of your range";
    // One at a time: `rm` removes on several threads, and this forks.
    static FORKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _alone = FORKING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let removed = in_mapped_userns(why, io::empty(), |_| {
        Ok(crate::dataroot::remove_tree(path).map_err(|e| (e.raw_os_error(), e.to_string())))
    });
    match removed {
        Ok(Ok(())) => Ok(()),
        Ok(Err((Some(errno), _))) => Err(io::Error::from_raw_os_error(errno)),
        Ok(Err((None, text))) => Err(io::Error::other(text)),
        Err(error) => Err(io::Error::other(error.to_string())),
    }
}

/// Remove everything inside `dir` (best effort: the caller reports the
/// unpack's error, which matters more).
fn empty(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let _ = match entry.file_type() {
            Ok(kind) if kind.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
    }
}

/// Run `f` in a forked child inside a new user namespace mapped with this
/// process's id map (newuidmap/newgidmap, run from here), feeding it
/// `input` through a pipe, and return what it returned.
pub fn in_mapped_userns<T: Serialize + DeserializeOwned>(
    why: &str,
    mut input: impl Read,
    f: impl FnOnce(&mut dyn Read) -> Result<T>,
) -> Result<T> {
    let pipe = || pipe2(OFlag::O_CLOEXEC).map_err(|errno| Error::sys("pipe2()", errno));
    let (ready_read, ready_write) = pipe()?;
    let (go_read, go_write) = pipe()?;
    let (data_read, data_write) = pipe()?;
    let (report_read, report_write) = pipe()?;
    // SAFETY: the child runs `f` and leaves with _exit, never returning into
    // the caller's code. Other threads (`rm`'s removals) may run: the child
    // takes none of their locks (glibc's malloc is safe across fork).
    match unsafe { fork() }.map_err(|errno| Error::sys("fork()", errno))? {
        ForkResult::Child => {
            drop((ready_read, go_write, data_write, report_read));
            let mut report = File::from(report_write);
            let result = child(File::from(ready_write), File::from(go_read), || {
                let mut data = File::from(data_read);
                f(&mut data).map(|value| serde_json::to_string(&value).unwrap_or_default())
            });
            let line = match result {
                Ok(json) => format!("ok\n{json}"),
                Err(error) => format!("{}\n{error}", error.exit_code()),
            };
            let _ = report.write_all(line.as_bytes());
            // SAFETY: end the forked child without running the parent's exit path.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop((ready_write, go_read, data_read, report_write));
            let mut byte = [0u8; 1];
            let unshared = File::from(ready_read).read(&mut byte).is_ok_and(|n| n == 1);
            let mapped = if unshared {
                narrate!(3, "fork() = {child}   /* {why} */");
                namespace::write_id_maps(child)
            } else {
                Ok(())
            };
            if let Err(error) = mapped {
                let _ = kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                return Err(error);
            }
            let _ = File::from(go_write).write_all(b"g");
            let mut data = File::from(data_write);
            let fed = feed(&mut input, &mut data);
            drop(data);
            let mut report = String::new();
            let _ = File::from(report_read).read_to_string(&mut report);
            let status = waitpid(child, None);
            let result = parse(&report, status)?;
            // The child's own error comes first: a pipe it closed early is
            // only its consequence.
            fed?;
            Ok(result)
        }
    }
}

/// The child's half: its own user namespace, then wait for its maps.
fn child(mut ready: File, mut go: File, body: impl FnOnce() -> Result<String>) -> Result<String> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|errno| Error::sys("prctl(PR_SET_PDEATHSIG)", errno))?;
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER).map_err(|errno| {
        Error::sys("unshare(CLONE_NEWUSER)", errno)
            .hint(namespace::clone_hint(errno, CloneFlags::CLONE_NEWUSER))
    })?;
    ready
        .write_all(b"r")
        .map_err(|e| Error::Internal(format!("telling the parent we are ready: {e}")))?;
    drop(ready);
    let mut byte = [0u8; 1];
    if go.read(&mut byte).ok() != Some(1) {
        return Err(Error::Internal(
            "the parent did not map our ids and let go".into(),
        ));
    }
    body()
}

/// Copy `input` to the child's pipe. A child that stopped reading (the tar
/// reader stops at the archive's end marker, or the unpack failed) closes
/// it: that ends the copy without an error of its own. (Rust programs
/// ignore SIGPIPE, so the write fails with EPIPE instead of killing us.)
fn feed(input: &mut impl Read, pipe: &mut File) -> Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(unpack::not_a_tar(e)),
        };
        match pipe.write_all(&buf[..n]) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(Errno::EPIPE as i32) => return Ok(()),
            Err(e) => return Err(Error::Internal(format!("feeding the unpack: {e}"))),
        }
    }
}

/// The child's report: `ok` and its result as JSON, or its exit code and error.
fn parse<T: DeserializeOwned>(report: &str, status: nix::Result<WaitStatus>) -> Result<T> {
    match report.split_once('\n') {
        Some(("ok", json)) => serde_json::from_str(json)
            .map_err(|e| Error::Internal(format!("the unpacking child's report: {e}"))),
        Some((code, message)) => Err(Error::Child {
            message: message.to_string(),
            code: code.parse().unwrap_or(crate::error::EXIT_SETUP_FAILED),
        }),
        None => Err(Error::Internal(format!(
            "the unpacking child ended without a report: {status:?}"
        ))),
    }
}

/// Whether this process may give files the owners an archive names: root
/// with more than its own id mapped (the host's root, or uid 0 in a
/// namespace mapped with a range). Root with one uid mapped may not: chown
/// to any other id fails with EINVAL.
pub fn may_chown() -> bool {
    Uid::effective().is_root() && mapped_uids() > 1
}

/// Whether this process is root in the host's own user namespace (the one
/// that maps every id to itself), the only one that may set `trusted.*`
/// xattrs.
pub fn real_root() -> bool {
    Uid::effective().is_root()
        && std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|map| map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
}

/// How many uids this process's user namespace maps.
fn mapped_uids() -> u64 {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|map| {
            map.lines()
                .filter_map(|line| line.split_whitespace().nth(2)?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_childs_result_comes_back_as_json() {
        let value: (u64, u32) = parse("ok\n[3,493]", Ok(WaitStatus::StillAlive)).unwrap();
        assert_eq!(value, (3, 0o755));
    }

    #[test]
    fn a_childs_error_keeps_its_message_and_code() {
        let error = parse::<(u64, u32)>(
            "125\nimage entry \"x\" refused: chown: Invalid argument",
            Ok(WaitStatus::StillAlive),
        )
        .unwrap_err();
        assert_eq!(error.exit_code(), 125);
        assert!(error.to_string().contains("chown"), "{error}");
    }

    #[test]
    fn a_silent_child_is_an_internal_error() {
        let error = parse::<(u64, u32)>("", Ok(WaitStatus::StillAlive)).unwrap_err();
        assert!(error.to_string().contains("without a report"), "{error}");
    }

    #[test]
    fn root_in_the_hosts_namespace_may_chown() {
        if Uid::effective().is_root() && real_root() {
            assert!(may_chown());
        }
    }
}
