//! Namespaces: which ones a child gets, and the user-namespace id maps (ch1 onwards).
//!
//! A namespace gives a process its own copy of one kind of global resource:
//! its mount table (`CLONE_NEWNS`), its pid numbers (`CLONE_NEWPID`), its
//! hostname (`CLONE_NEWUTS`), its System V IPC (`CLONE_NEWIPC`). Only root may
//! create those, so when stepbox runs as an ordinary user it also creates a
//! user namespace (`CLONE_NEWUSER`), in which the caller is mapped to uid 0
//! and holds every capability, over the namespaces it owns and nothing else.
//! See namespaces(7) and user_namespaces(7).

use std::fs;

use nix::errno::Errno;
use std::fs::File;

use nix::sched::CloneFlags;
use nix::unistd::{Gid, Pid, Uid};

use crate::error::{quote, Error, Result};
use crate::narrate;

pub use crate::privilege::rootless;

/// A container's namespaces from chapter 2 on: its own mount table, pids,
/// hostname and System V IPC.
pub const CONTAINER: CloneFlags = CloneFlags::CLONE_NEWNS
    .union(CloneFlags::CLONE_NEWPID)
    .union(CloneFlags::CLONE_NEWUTS)
    .union(CloneFlags::CLONE_NEWIPC);

/// The namespaces a chapter asks for, plus `CLONE_NEWUSER` when not root.
pub fn with_user_if_rootless(flags: CloneFlags) -> CloneFlags {
    if rootless() {
        flags | CloneFlags::CLONE_NEWUSER
    } else {
        flags
    }
}

/// `CLONE_NEWNS|CLONE_NEWUSER`: the flags as C would spell them.
pub fn flag_names(flags: CloneFlags) -> String {
    const NAMES: &[(CloneFlags, &str)] = &[
        (CloneFlags::CLONE_NEWNS, "CLONE_NEWNS"),
        (CloneFlags::CLONE_NEWPID, "CLONE_NEWPID"),
        (CloneFlags::CLONE_NEWUTS, "CLONE_NEWUTS"),
        (CloneFlags::CLONE_NEWIPC, "CLONE_NEWIPC"),
        (CloneFlags::CLONE_NEWUSER, "CLONE_NEWUSER"),
        (CloneFlags::CLONE_NEWNET, "CLONE_NEWNET"),
        (CloneFlags::CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
    ];
    crate::narration::flag_names(NAMES, |flag| flags.contains(flag))
}

/// The chapter that introduced a `clone` with these namespaces, for the
/// narration: chapter 1's mount (and user) namespace, chapter 2's pid, uts
/// and ipc.
pub fn introduced_in(flags: CloneFlags) -> u8 {
    let chapter2 = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    if flags.intersects(chapter2) {
        2
    } else {
        1
    }
}

/// Explain in plain words why creating namespaces failed, and the fix.
pub fn clone_hint(errno: Errno, flags: CloneFlags) -> String {
    let with_user = flags.contains(CloneFlags::CLONE_NEWUSER);
    match errno {
        Errno::EPERM | Errno::EACCES if with_user => "unprivileged user namespaces are disabled on this machine \
             (kernel.unprivileged_userns_clone=0, or Ubuntu's kernel.apparmor_restrict_unprivileged_userns=1): \
             run with sudo, or allow them with sysctl"
            .to_string(),
        Errno::EPERM => "the kernel refused new namespaces even to root: if this runs inside a container, \
             give that container CAP_SYS_ADMIN (e.g. docker run --privileged)"
            .to_string(),
        Errno::ENOSPC if with_user => "the limit on user namespaces is reached: \
             check /proc/sys/user/max_user_namespaces (0 disables them)"
            .to_string(),
        Errno::ENOSPC => "the limit on namespaces is reached: see /proc/sys/user/max_*_namespaces".to_string(),
        Errno::EINVAL => "this kernel does not support one of these namespaces".to_string(),
        _ => "creating the namespaces failed".to_string(),
    }
}

/// Map uid/gid 0 inside the child's user namespace to the caller outside.
///
/// `setgroups` must be set to `deny` before an unprivileged process may write
/// `gid_map` (since Linux 3.19): otherwise the child could drop a group that
/// denies it access to a file. See user_namespaces(7), "Interaction with
/// system calls that change process UIDs or GIDs".
pub fn write_id_maps(child: Pid) -> Result<()> {
    map_ids(&child.to_string(), Uid::effective(), Gid::effective())
}

fn map_ids(pid: &str, uid: Uid, gid: Gid) -> Result<()> {
    write_proc(pid, "setgroups", "deny")?;
    write_proc(pid, "uid_map", &format!("0 {uid} 1"))?;
    write_proc(pid, "gid_map", &format!("0 {gid} 1"))?;
    Ok(())
}

fn write_proc(child: &str, file: &str, text: &str) -> Result<()> {
    let path = format!("/proc/{child}/{file}");
    narrate!(1, "write({}, {})", quote(&path), quote(text));
    fs::write(&path, text).map_err(|e| {
        let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
        Error::sys(format!("write({}, {})", quote(&path), quote(text)), errno).hint(
            "the kernel refused the user namespace's id map: if user namespaces are restricted \
             (Ubuntu's kernel.apparmor_restrict_unprivileged_userns=1), run with sudo or allow them with sysctl",
        )
    })
}

/// Give the child's UTS namespace its own hostname.
pub fn set_hostname(name: &str) -> Result<()> {
    narrate!(2, "sethostname({}, {})", quote(name), name.len());
    nix::unistd::sethostname(name)
        .map_err(|errno| Error::sys(format!("sethostname({})", quote(name)), errno))
}

/// Check a hostname before anything is created: 1 to 63 letters, digits, '-' or '.'.
pub fn check_hostname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "invalid hostname {name:?}: use 1 to 63 letters, digits, '-' or '.'"
    )))
}

/// The namespaces `exec` joins, in the order it must join them: the user
/// namespace first (it grants the capabilities to join the others), then
/// mount, pid, uts and ipc. See setns(2).
const JOIN_ORDER: [(&str, CloneFlags); 5] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("mnt", CloneFlags::CLONE_NEWNS),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("ipc", CloneFlags::CLONE_NEWIPC),
];

/// Join the namespaces of process `pid` (its user namespace too when
/// `with_user`). Joining a pid namespace only applies to children made
/// afterwards: the caller must fork for the command to be inside it.
pub fn join(pid: i32, with_user: bool) -> Result<()> {
    // Open them all first: once in the container's mount namespace, the
    // host's /proc/<pid> is out of reach.
    let mut opened = Vec::new();
    for (name, flag) in JOIN_ORDER {
        if flag == CloneFlags::CLONE_NEWUSER && !with_user {
            continue;
        }
        let path = format!("/proc/{pid}/ns/{name}");
        let file = File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
        opened.push((path, flag, file));
    }
    for (path, flag, file) in opened {
        let call = format!("setns(open({}), {})", quote(&path), flag_names(flag));
        narrate!(5, "{call}");
        nix::sched::setns(&file, flag).map_err(|errno| Error::sys(call, errno))?;
    }
    Ok(())
}

/// Give this process a mount namespace of its own (and, when not root, a
/// user namespace in which it is root), with `/` private: mounts it makes
/// are seen by nobody else and vanish when it exits.
pub fn enter_private_mount_ns() -> Result<()> {
    let (uid, gid) = (Uid::effective(), Gid::effective());
    let flags = with_user_if_rootless(CloneFlags::CLONE_NEWNS);
    let call = format!("unshare({})", flag_names(flags));
    narrate!(5, "{call}");
    nix::sched::unshare(flags)
        .map_err(|errno| Error::sys(call, errno).hint(clone_hint(errno, flags)))?;
    if flags.contains(CloneFlags::CLONE_NEWUSER) {
        map_ids("self", uid, gid)?;
    }
    crate::mount::make_private("/")
}
