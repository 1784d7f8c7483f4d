//! Switching to a new root filesystem: chroot and pivot_root, side by side (ch2).
//!
//! `chroot(2)` changes one process's idea of `/`. The old root is still
//! mounted and reachable: a process with CAP_SYS_CHROOT can chroot into a
//! subdirectory while its working directory stays outside, climb `..` past
//! the new root and chroot back to the real `/` (see [`try_escape`]).
//!
//! `pivot_root(2)` changes the *mount namespace's* root: the new root
//! becomes `/`, the old one is moved to a directory under it, and once that
//! is unmounted there is nothing left to climb to. Container runtimes use it.
//!
//! [`compare`] runs both and prints them side by side (`ch2-rootfs --compare`).

pub mod compare;

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{chdir, fork, pipe2, ForkResult};
use serde::{Deserialize, Serialize};

use crate::error::{quote, Error, Result, SysContext};
use crate::{mount, narrate};

/// How the child enters its new root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum Method {
    /// pivot_root(2): swap the namespace's root mount (what runtimes do)
    PivotRoot,
    /// chroot(2): change this process's root directory only
    Chroot,
}

impl Method {
    /// The system call, as the man page spells it: `pivot_root`, `chroot`.
    pub fn call(self) -> &'static str {
        match self {
            Method::PivotRoot => "pivot_root",
            Method::Chroot => "chroot",
        }
    }

    /// The value `--method` takes for it: `pivot-root`, `chroot`.
    pub fn flag(self) -> &'static str {
        match self {
            Method::PivotRoot => "pivot-root",
            Method::Chroot => "chroot",
        }
    }
}

/// pivot_root needs `new_root` to be a mount point: bind it onto itself.
pub fn bind_onto_itself(new_root: &Path) -> Result<()> {
    mount::bind(new_root, new_root, true)
}

/// Enter `new_root` the runtime way: pivot_root, then drop the old root.
///
/// `put_old` is `new_root` itself, as runc and crun do: the old root is
/// stacked on top of the new one, at `/`, and `umount2(".")` takes it off
/// again. No directory is made in the image to park it in.
pub fn pivot_root(new_root: &Path) -> Result<()> {
    change_dir(new_root)?;
    let call = "pivot_root(\".\", \".\")";
    narrate!(2, "{call}   /* the old root is now on top of the new */");
    nix::unistd::pivot_root(".", ".").map_err(|errno| {
        let error = Error::sys(call, errno);
        match errno {
            Errno::EINVAL => error.hint(
                "new_root is not a mount point, or a parent mount is shared: bind new_root onto \
                 itself and make / private first",
            ),
            Errno::EBUSY => error.hint(
                "new_root is on the same mount as the current root: bind-mount it onto itself first",
            ),
            Errno::EPERM => {
                error.hint("pivot_root needs CAP_SYS_ADMIN in the mount namespace's owner")
            }
            _ => error,
        }
    })?;
    mount::unmount_detach(2, ".")?;
    change_dir(Path::new("/"))
}

/// Enter `new_root` the old way: chroot, then cd into it.
pub fn chroot(new_root: &Path) -> Result<()> {
    narrate!(2, "chroot({})", quote(new_root));
    nix::unistd::chroot(new_root).map_err(|errno| {
        let error = Error::sys(format!("chroot({})", quote(new_root)), errno);
        match errno {
            Errno::EPERM => error.hint("chroot needs CAP_SYS_CHROOT"),
            _ => error,
        }
    })?;
    change_dir(Path::new("/"))
}

fn change_dir(dir: &Path) -> Result<()> {
    narrate!(2, "chdir({})", quote(dir));
    chdir(dir).call(|| format!("chdir({})", quote(dir)))
}

/// A directory's identity on this machine: its device and inode numbers.
/// Shown `major:minor:inode` (`254:0:2`), as `stat -c %Hd:%Ld:%i` prints it;
/// `major:minor` is the device field of /proc/self/mountinfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevIno {
    pub dev: u64,
    pub ino: u64,
}

impl fmt::Display for DevIno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor) = (
            nix::sys::stat::major(self.dev),
            nix::sys::stat::minor(self.dev),
        );
        write!(f, "{major}:{minor}:{}", self.ino)
    }
}

fn stat_root() -> Result<DevIno> {
    let meta = fs::metadata("/").map_err(|e| Error::io("stat", "/", e))?;
    Ok(DevIno {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// What the host looked like from inside the child before the root switch:
/// the identity of its `/` and the ids of its mounts (copied into our namespace).
#[derive(Debug, Clone)]
pub struct HostView {
    root: DevIno,
    mount_ids: HashSet<String>,
}

impl HostView {
    /// The host's `/`.
    pub fn root(&self) -> DevIno {
        self.root
    }

    /// How many mounts the host had.
    pub fn mounts(&self) -> usize {
        self.mount_ids.len()
    }
}

/// Record the host's `/` and mounts, before the switch hides them.
pub fn record_host_view() -> Result<HostView> {
    Ok(HostView {
        root: stat_root()?,
        mount_ids: mount_ids()?,
    })
}

fn mount_ids() -> Result<HashSet<String>> {
    let text = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("reading", "/proc/self/mountinfo", e))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split(' ').next().map(str::to_string))
        .collect())
}

/// Where a process stands: its `/`, and how many of the host's mounts its
/// `/proc/self/mountinfo` shows (a process sees the mounts under its root).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub root: DevIno,
    pub host_mounts: usize,
}

/// Where this process stands now, against what `host` recorded.
pub fn look(host: &HostView) -> Result<View> {
    Ok(View {
        root: stat_root()?,
        host_mounts: mount_ids()?.intersection(&host.mount_ids).count(),
    })
}

/// The host files whose first line proves an escape: the first one found is read.
pub const PROOF_FILES: [&str; 2] = ["/etc/hostname", "/etc/os-release"];

/// What the escape attempt found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escape {
    /// Where the attempt ended up.
    pub view: View,
    /// True if that is the host's `/`.
    pub escaped: bool,
    /// When it escaped: the first of [`PROOF_FILES`] found there, and its first line
    /// (or why it could not be read).
    pub proof: Option<(String, std::result::Result<String, String>)>,
}

impl Escape {
    /// The line `--try-escape` prints.
    pub fn verdict(&self, host: &HostView) -> String {
        let View { root, host_mounts } = self.view;
        if self.escaped {
            format!("ESCAPED: reached the host's / (dev:ino {root}); host mounts visible: {host_mounts}")
        } else {
            format!(
                "CONTAINED: / is still the container's root (dev:ino {root}, the host's is {}); \
                 host mounts visible: {host_mounts}",
                host.root
            )
        }
    }
}

/// `--try-escape`: try the classic chroot escape ([`escape`]) and print the verdict.
pub fn try_escape(host: &HostView) -> Result<()> {
    println!("{}", escape(host)?.verdict(host));
    Ok(())
}

/// The directory the escape chroots into, inside the container's root; removed after.
const ESCAPE_DIR: &str = "/.stepbox-escape";

/// The classic chroot escape, tried in a forked process so the container
/// itself is not affected: chroot into a subdirectory while the working
/// directory stays outside it, climb `..`, chroot to where we end up. Says
/// whether that reached the host's `/`, how many of the host's mounts can be
/// seen from there, and, if it escaped, the first line of a host file.
pub fn escape(host: &HostView) -> Result<Escape> {
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).call(|| "pipe2(escape)".into())?;
    // Our pending narration belongs before the attempt's lines.
    crate::narration::flush();
    // SAFETY: the child is single-threaded at this point; the forked process
    // only makes system calls, writes its findings to the pipe and exits.
    match unsafe { fork() }.call(|| "fork()".into())? {
        ForkResult::Child => {
            drop(read_end);
            let found = escape_attempt(ESCAPE_DIR, host).map_err(|error| error.to_string());
            let sent = serde_json::to_vec(&found)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    File::from(write_end)
                        .write_all(&bytes)
                        .map_err(|e| e.to_string())
                });
            crate::narration::flush();
            if let Err(error) = &sent {
                eprintln!("escape attempt: cannot report its findings: {error}");
            }
            // SAFETY: leave the forked process without running the parent's cleanup.
            unsafe { libc::_exit(i32::from(sent.is_err())) }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut report = String::new();
            let read = File::from(read_end).read_to_string(&mut report);
            let status = loop {
                match waitpid(child, None) {
                    Err(Errno::EINTR) | Ok(WaitStatus::StillAlive) => continue,
                    other => break other,
                }
            };
            let found: std::result::Result<Escape, String> = match (read, status) {
                (Ok(_), Ok(WaitStatus::Exited(_, 0))) => serde_json::from_str(&report)
                    .unwrap_or_else(|e| Err(format!("its report is unreadable: {e}"))),
                (Err(e), _) => Err(format!("reading its report: {e}")),
                (_, status) => Err(format!("it ended without a report ({status:?})")),
            };
            let removed = match fs::remove_dir(ESCAPE_DIR) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Some(Error::io("removing", ESCAPE_DIR, e))
                }
                _ => None,
            };
            match (found, removed) {
                (Ok(escape), None) => Ok(escape),
                (Ok(_), Some(error)) => Err(error),
                (Err(why), None) => {
                    Err(Error::Invalid(format!("the escape attempt failed: {why}")))
                }
                (Err(why), Some(error)) => Err(Error::Invalid(format!(
                    "the escape attempt failed: {why}; and cleaning up after it: {error}"
                ))),
            }
        }
    }
}

fn escape_attempt(dir: &str, host: &HostView) -> Result<Escape> {
    narrate!(2, "mkdir({}, 0700)", quote(dir));
    match nix::unistd::mkdir(dir, Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(errno) => return Err(Error::sys(format!("mkdir({})", quote(dir)), errno)),
    }
    narrate!(
        2,
        "chroot({})   /* the cwd stays outside the new root */",
        quote(dir)
    );
    nix::unistd::chroot(dir).call(|| format!("chroot({})", quote(dir)))?;
    narrate!(2, "chdir(\"..\")   /* x64 */");
    for _ in 0..64 {
        chdir("..").call(|| "chdir(\"..\")".into())?;
    }
    narrate!(2, "chroot(\".\")");
    nix::unistd::chroot(".").call(|| "chroot(\".\")".into())?;

    let view = look(host)?;
    let escaped = view.root == host.root;
    let proof = if escaped { read_proof() } else { None };
    Ok(Escape {
        view,
        escaped,
        proof,
    })
}

/// The first line of the first of [`PROOF_FILES`] that exists here.
fn read_proof() -> Option<(String, std::result::Result<String, String>)> {
    for file in PROOF_FILES {
        narrate!(2, "open({}, O_RDONLY)   /* a host file? */", quote(file));
        let first_line = match File::open(file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => Err(e.to_string()),
            Ok(opened) => {
                let mut bytes = Vec::new();
                match opened.take(4096).read_to_end(&mut bytes) {
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&bytes);
                        Ok(text.lines().next().unwrap_or_default().to_string())
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        return Some((file.to_string(), first_line));
    }
    None
}

/// Whether `dir` looks like a root filesystem: it has at least one of the
/// directories programs live in (a symlink counts: `bin -> usr/bin`).
pub fn looks_like_a_root(dir: &Path) -> bool {
    ["bin", "sbin", "usr/bin", "usr/sbin"]
        .iter()
        .any(|sub| fs::symlink_metadata(dir.join(sub)).is_ok_and(|m| m.is_dir() || m.is_symlink()))
}

/// What to say of an image that is not a root filesystem.
pub const NOT_A_ROOT: &str = "the image has no bin, sbin, usr/bin or usr/sbin: it is not a root filesystem; give an image that holds one (bin/sh and the rest)";

/// Chapter 2's mounts in `new_root`, before the switch: `/proc` for the new
/// pid namespace, a minimal `/dev` (bound from the host's while it can still
/// be named) and chapter 1's private `/tmp` (ch3 onwards; ch2 shows each).
pub fn mount_proc_dev_tmp(new_root: &Path) -> Result<()> {
    prepare_mount_points(new_root)?;
    mount::proc(new_root.join("proc"))?;
    mount::minimal_dev(new_root.join("dev"))?;
    mount::tmpfs(
        new_root.join("tmp"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None,
    )
}

/// Make sure `/proc`, `/dev` and `/tmp` in `new_root` are plain directories
/// to mount on: created if missing, refused if the image made one a symlink
/// (mount(2) would follow it, and our mount would land wherever it points)
/// or something else than a directory.
pub fn prepare_mount_points(new_root: &Path) -> Result<()> {
    for name in ["proc", "dev", "tmp"] {
        let path = new_root.join(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) => {
                let what = if meta.file_type().is_symlink() {
                    "a symlink"
                } else {
                    "not a directory"
                };
                return Err(Error::Invalid(format!(
                    "the image's /{name} is {what}: a container's /{name} must be a directory (fix or rebuild the image)"
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                narrate!(
                    2,
                    "mkdir({}, 0755)   /* the image has no /{name} */",
                    quote(&path)
                );
                fs::create_dir(&path).map_err(|e| Error::io("creating", &path, e))?;
            }
            Err(e) => return Err(Error::io("stat", &path, e)),
        }
    }
    Ok(())
}
