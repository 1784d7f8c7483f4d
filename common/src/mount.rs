//! Mounts: propagation, tmpfs, bind, /proc, /dev and unmount, each call narrated
//! (ch1 onwards).
//!
//! Every function here is one mount(2) or umount2(2) call, or a short fixed
//! sequence of them, printed in C form before it is made.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use crate::error::{quote, Error, Result};
use crate::narrate;
use crate::privilege;

/// `MS_REC|MS_PRIVATE`: the flags as C would spell them.
pub fn flag_names(flags: MsFlags) -> String {
    const NAMES: &[(MsFlags, &str)] = &[
        (MsFlags::MS_RDONLY, "MS_RDONLY"),
        (MsFlags::MS_NOSUID, "MS_NOSUID"),
        (MsFlags::MS_NODEV, "MS_NODEV"),
        (MsFlags::MS_NOEXEC, "MS_NOEXEC"),
        (MsFlags::MS_REMOUNT, "MS_REMOUNT"),
        (MsFlags::MS_BIND, "MS_BIND"),
        (MsFlags::MS_REC, "MS_REC"),
        (MsFlags::MS_PRIVATE, "MS_PRIVATE"),
        (MsFlags::MS_SLAVE, "MS_SLAVE"),
        (MsFlags::MS_SHARED, "MS_SHARED"),
        (MsFlags::MS_NOATIME, "MS_NOATIME"),
        (MsFlags::MS_NODIRATIME, "MS_NODIRATIME"),
        (MsFlags::MS_RELATIME, "MS_RELATIME"),
        (MsFlags::MS_STRICTATIME, "MS_STRICTATIME"),
    ];
    crate::narration::flag_names(NAMES, |flag| flags.contains(flag))
}

fn c_str(value: Option<&str>) -> String {
    value.map_or_else(|| "NULL".to_string(), quote)
}

/// One narrated mount(2) call, taught in `chapter` (see [`crate::narration`]).
/// The helpers below are the ones chapters use.
pub fn mount(
    chapter: u8,
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    let call = format!(
        "mount({}, {}, {}, {}, {})",
        c_str(source),
        quote(target),
        c_str(fstype),
        flag_names(flags),
        c_str(data)
    );
    narrate!(chapter, "{call}");
    nix::mount::mount(source, target, fstype, flags, data).map_err(|errno| {
        let error = Error::sys(call, errno);
        match mount_hint(errno) {
            Some(hint) => error.hint(hint),
            None => error,
        }
    })
}

fn mount_hint(errno: Errno) -> Option<&'static str> {
    match errno {
        Errno::ENOENT => Some("the mount point does not exist"),
        Errno::EPERM if privilege::rootless() => Some(
            "not allowed in this user namespace: only some filesystems may be mounted without \
             real root (e.g. Ubuntu's apparmor_restrict_unprivileged_userns forbids it): try sudo",
        ),
        Errno::EACCES if privilege::rootless() => Some(
            "denied by a security module: Ubuntu's AppArmor restricts unprivileged user namespaces \
             (kernel.apparmor_restrict_unprivileged_userns=1): run with sudo or allow them with sysctl",
        ),
        Errno::EPERM => Some("not allowed: mounting needs CAP_SYS_ADMIN"),
        Errno::ENODEV => Some("this kernel does not have that filesystem type"),
        _ => None,
    }
}

/// Make every mount at and below `path` private: from now on, mounts made
/// in this namespace do not propagate to the host's, and the host's do not
/// reach us. Must come before any other mount. See mount_namespaces(7).
pub fn make_private(path: &str) -> Result<()> {
    mount(
        1,
        None,
        Path::new(path),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
}

/// Mount a fresh, empty tmpfs on `target`, hiding whatever was there.
pub fn tmpfs(target: impl AsRef<Path>, flags: MsFlags, data: Option<&str>) -> Result<()> {
    mount(
        1,
        Some("tmpfs"),
        target.as_ref(),
        Some("tmpfs"),
        flags,
        data,
    )
}

/// Bind-mount `source` onto `target`: the same files, seen at a second place.
pub fn bind(source: impl AsRef<Path>, target: impl AsRef<Path>, recursive: bool) -> Result<()> {
    let source = source.as_ref().to_string_lossy().into_owned();
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(2, Some(&source), target.as_ref(), None, flags, None)
}

/// Detach-unmount `target`: it disappears from the tree now, and is freed
/// once nothing uses it any more. See umount2(2), MNT_DETACH. `chapter`
/// teaches it (2: the old root; 5: commit's view).
pub fn unmount_detach(chapter: u8, target: impl AsRef<Path>) -> Result<()> {
    let call = format!("umount2({}, MNT_DETACH)", quote(target.as_ref()));
    narrate!(chapter, "{call}");
    nix::mount::umount2(target.as_ref(), MntFlags::MNT_DETACH)
        .map_err(|errno| Error::sys(call, errno))
}

/// Mount a new procfs on `target`: it shows the processes of the pid
/// namespace we are in, so inside a container `ps` sees only the container.
pub fn proc(target: impl AsRef<Path>) -> Result<()> {
    mount(
        2,
        Some("proc"),
        target.as_ref(),
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )
}

/// The device nodes a container gets, bound from the host's /dev.
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// A minimal /dev at `target`: a small tmpfs holding bind mounts of the
/// host's harmless devices (bind, not mknod, so that it works without real
/// root too), the usual symlinks into /proc/self/fd, and what programs
/// expect to find there: [`devpts`], `/dev/shm` and `/dev/mqueue`.
pub fn minimal_dev(target: impl AsRef<Path>) -> Result<()> {
    let target = target.as_ref();
    mount(
        2,
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for device in DEVICES {
        let node = target.join(device);
        std::fs::File::create(&node).map_err(|e| Error::io("creating", &node, e))?;
        bind(Path::new("/dev").join(device), &node, false)?;
    }
    let links = [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    for (name, to) in links {
        let link = target.join(name);
        std::os::unix::fs::symlink(to, &link)
            .map_err(|e| Error::io("creating symlink", &link, e))?;
    }
    devpts(target)?;
    // POSIX shared memory (shm_open) lives in a tmpfs at /dev/shm: one of the
    // container's own, as Docker's 64 MiB one.
    let shm = make_dir(target, "shm")?;
    mount(
        2,
        Some("shm"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )?;
    // POSIX message queues (mq_open(3)) of our IPC namespace. The kernel lets
    // a user namespace mount it because our IPC namespace was made with it.
    let mqueue = make_dir(target, "mqueue")?;
    mount(
        2,
        Some("mqueue"),
        &mqueue,
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )
}

/// The container's own pseudo-terminals: a new devpts instance on
/// `<dev>/pts`, and `<dev>/ptmx` pointing at its multiplexer, so that a pty
/// opened in the container (by stepbox for an interactive run, or by a
/// program) is one of its own, `/dev/pts/0` upwards, and the host's ptys are
/// not even listed. See pts(4) and docs/ch2-rootfs.md#the-terminal.
///
/// No `gid=5` (the tty group) as Docker passes: in a user namespace a gid
/// that is not mapped is refused, and the slave gets the opener's group.
fn devpts(dev: &Path) -> Result<()> {
    let pts = make_dir(dev, "pts")?;
    mount(
        2,
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    let ptmx = dev.join("ptmx");
    std::os::unix::fs::symlink("pts/ptmx", &ptmx)
        .map_err(|e| Error::io("creating symlink", &ptmx, e))
}

/// `dir/name`, created (mode 0755) in a /dev we just mounted.
fn make_dir(dir: &Path, name: &str) -> Result<std::path::PathBuf> {
    let path = dir.join(name);
    std::fs::create_dir(&path).map_err(|e| Error::io("creating", &path, e))?;
    Ok(path)
}
