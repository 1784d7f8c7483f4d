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

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{chdir, fork, ForkResult};

use crate::error::{quote, Error, Result, SysContext};
use crate::{mount, narrate};

/// How the child enters its new root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// pivot_root(2): swap the namespace's root mount (what runtimes do)
    PivotRoot,
    /// chroot(2): change this process's root directory only
    Chroot,
}

/// Where the old root is parked during pivot_root, relative to the new root.
const PUT_OLD: &str = ".old_root";

/// pivot_root needs `new_root` to be a mount point: bind it onto itself.
pub fn bind_onto_itself(new_root: &Path) -> Result<()> {
    mount::bind(new_root, new_root, true)
}

/// Enter `new_root` the runtime way: pivot_root, then drop the old root.
pub fn pivot_root(new_root: &Path) -> Result<()> {
    change_dir(new_root)?;
    narrate!(2, "mkdir({}, 0700)", quote(PUT_OLD));
    match nix::unistd::mkdir(PUT_OLD, Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(errno) => return Err(Error::sys(format!("mkdir({})", quote(PUT_OLD)), errno)),
    }
    let call = format!("pivot_root(\".\", {})", quote(PUT_OLD));
    narrate!(2, "{call}");
    nix::unistd::pivot_root(".", PUT_OLD).map_err(|errno| {
        let error = Error::sys(call, errno);
        match errno {
            Errno::EINVAL => error.hint(
                "new_root is not a mount point, put_old is not under it, or a parent mount is \
                 shared: bind new_root onto itself and make / private first",
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
    change_dir(Path::new("/"))?;
    let old_root = format!("/{PUT_OLD}");
    mount::unmount_detach(2, &old_root)?;
    narrate!(2, "rmdir({})", quote(&old_root));
    fs::remove_dir(&old_root).map_err(|e| Error::io("removing", &old_root, e))
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

/// What the host looked like from inside the child before the root switch:
/// the identity of its `/` and the ids of its mounts (copied into our namespace).
#[derive(Debug, Clone)]
pub struct HostView {
    root: (u64, u64),
    mount_ids: HashSet<String>,
}

/// Record the host's `/` and mounts, before the switch hides them.
pub fn record_host_view() -> Result<HostView> {
    let meta = fs::metadata("/").map_err(|e| Error::io("stat", "/", e))?;
    Ok(HostView {
        root: (meta.dev(), meta.ino()),
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

/// The classic chroot escape, tried in a forked child so the container
/// itself is not affected: chroot into a subdirectory while the working
/// directory stays outside it, climb `..`, chroot to where we end up. Prints
/// `ESCAPED` if that reached the host's `/`, `CONTAINED` otherwise, and how
/// many of the host's mounts it can see.
pub fn try_escape(host: &HostView) -> Result<()> {
    let dir = "/.stepbox-escape";
    // SAFETY: the child is single-threaded at this point; the forked process
    // only makes system calls, prints and exits.
    match unsafe { fork() }.call(|| "fork()".into())? {
        ForkResult::Child => {
            let code = match escape_attempt(dir, host) {
                Ok(()) => 0,
                Err(error) => {
                    eprintln!("escape attempt: {error}");
                    1
                }
            };
            // SAFETY: leave the forked process without running the parent's cleanup.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let status = loop {
                match waitpid(child, None) {
                    Err(Errno::EINTR) | Ok(WaitStatus::StillAlive) => continue,
                    other => break other,
                }
            };
            let _ = fs::remove_dir(dir);
            match status {
                Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                _ => Err(Error::Invalid(
                    "the escape attempt failed (its error is above)".into(),
                )),
            }
        }
    }
}

fn escape_attempt(dir: &str, host: &HostView) -> Result<()> {
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

    let meta = fs::metadata("/").map_err(|e| Error::io("stat", "/", e))?;
    let now = (meta.dev(), meta.ino());
    let visible = mount_ids()?.intersection(&host.mount_ids).count();
    let (dev, ino) = now;
    let (host_dev, host_ino) = host.root;
    if now == host.root {
        println!(
            "ESCAPED: reached the host's / (dev:ino {dev}:{ino}); host mounts visible: {visible}"
        );
    } else {
        println!(
            "CONTAINED: / is still the container's root (dev:ino {dev}:{ino}, the host's is \
             {host_dev}:{host_ino}); host mounts visible: {visible}"
        );
    }
    Ok(())
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
