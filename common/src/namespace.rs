//! Namespaces: which ones a child gets, and the user-namespace id maps (ch1 onwards).
//!
//! A namespace gives a process its own copy of one kind of global resource:
//! its mount table (`CLONE_NEWNS`), its pid numbers (`CLONE_NEWPID`), its
//! hostname (`CLONE_NEWUTS`), its System V IPC (`CLONE_NEWIPC`). Only root may
//! create those, so when stepbox runs as an ordinary user it also creates a
//! user namespace (`CLONE_NEWUSER`), in which the caller is mapped to uid 0
//! and holds every capability, over the namespaces it owns and nothing else.
//! See namespaces(7) and user_namespaces(7).
//!
//! Which ids that user namespace maps ([`id_map`]): with a subordinate range
//! for the caller in /etc/subuid and /etc/subgid and Debian's `uidmap`
//! helpers, 0 is the caller and 1..=65535 the range, as podman maps them,
//! so an image's owners, `chown` and `su` work inside; otherwise 0 alone,
//! and the narration of the `uid_map` write says why. The doctor reaches
//! the same verdict from the same function ([`choose_map`]).

use std::fs;
use std::path::Path;

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

/// Why clone(2) or fork(2) says EAGAIN: no process may be made here.
pub const PROCESS_LIMIT: &str = "no more processes may be made: the container is at its \
     --pids-limit (exec adds one more), or the host's process limit is reached \
     (ulimit -u, /proc/sys/kernel/pid_max, /proc/sys/kernel/threads-max)";

/// fork(2)'s error as `call`, with the likely cause when it is EAGAIN.
pub fn fork_error(call: &str, errno: Errno) -> crate::Error {
    let error = crate::Error::sys(call, errno);
    match errno {
        Errno::EAGAIN => error.hint(PROCESS_LIMIT),
        _ => error,
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
        Errno::EAGAIN => PROCESS_LIMIT.to_string(),
        _ => "creating the namespaces failed".to_string(),
    }
}

/// Where Debian's `uidmap` package puts the setuid helpers that write a
/// subordinate range into a child's id maps (newuidmap(1), newgidmap(1)).
/// A fixed path, never PATH: these are the only programs stepbox runs for
/// the maps, and the caller's PATH must not choose which.
pub const NEWUIDMAP: &str = "/usr/bin/newuidmap";
pub const NEWGIDMAP: &str = "/usr/bin/newgidmap";

/// The most ids a range gives the container besides 0, as podman maps them.
pub const RANGE_IDS: u64 = 65535;

/// How a rootless child's ids are mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdMap {
    /// 0 inside is the caller; nothing else is mapped. `why` says why no
    /// range (for the narration and the doctor).
    Single { uid: u32, gid: u32, why: String },
    /// 0 inside is the caller, 1..=count the caller's subordinate range
    /// (`start` on the host is 1 inside), written by newuidmap/newgidmap.
    Range {
        uid: u32,
        gid: u32,
        uids: (u64, u64),
        gids: (u64, u64),
    },
}

impl IdMap {
    /// The `uid_map` text: `0 UID 1` and, with a range, `1 START COUNT`.
    pub fn uid_map(&self) -> String {
        match self {
            IdMap::Single { uid, .. } => format!("0 {uid} 1"),
            IdMap::Range { uid, uids, .. } => format!("0 {uid} 1\n1 {} {}", uids.0, uids.1),
        }
    }

    /// The `gid_map` text, likewise.
    pub fn gid_map(&self) -> String {
        match self {
            IdMap::Single { gid, .. } => format!("0 {gid} 1"),
            IdMap::Range { gid, gids, .. } => format!("0 {gid} 1\n1 {} {}", gids.0, gids.1),
        }
    }

    /// A name for this map that differs whenever the ids it maps differ
    /// (`1000.200000.65535-1000.200000.65535`), or None for the single map,
    /// whose layers are the same as root's in all but their owners.
    pub fn key(&self) -> Option<String> {
        match self {
            IdMap::Single { .. } => None,
            IdMap::Range {
                uid,
                gid,
                uids,
                gids,
            } => Some(format!(
                "{uid}.{}.{}-{gid}.{}.{}",
                uids.0, uids.1, gids.0, gids.1
            )),
        }
    }
}

/// What the map decision reads: the caller, /etc/passwd, /etc/subuid,
/// /etc/subgid, and whether the two helpers exist. A pure input, so the
/// doctor (with its faked /etc) and the tests reach the chapters' verdict.
#[derive(Debug, Clone, Copy)]
pub struct MapInputs<'a> {
    pub uid: u32,
    pub gid: u32,
    pub passwd: Option<&'a str>,
    pub subuid: Option<&'a str>,
    pub subgid: Option<&'a str>,
    pub newuidmap: bool,
    pub newgidmap: bool,
}

/// The fix for a missing range, as a learner would type it.
pub const RANGE_FIX: &str =
    "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER";

/// Which map a rootless run gets: the caller's subordinate range when
/// /etc/subuid and /etc/subgid give one (by name or uid) and both helpers
/// exist, else the single uid, with the reason.
pub fn choose_map(inputs: &MapInputs) -> IdMap {
    let (uid, gid) = (inputs.uid, inputs.gid);
    let name = inputs.passwd.and_then(|text| user_name(text, uid));
    let range = |text: Option<&str>| {
        text.and_then(|t| subid_range(t, name.as_deref(), uid))
            .filter(|(_, count)| *count > 0)
    };
    let (uids, gids) = (range(inputs.subuid), range(inputs.subgid));
    let single = |why: String| IdMap::Single { uid, gid, why };
    let missing: Vec<&str> = [("/etc/subuid", uids), ("/etc/subgid", gids)]
        .iter()
        .filter(|(_, r)| r.is_none())
        .map(|(file, _)| *file)
        .collect();
    let tools: Vec<&str> = [(NEWUIDMAP, inputs.newuidmap), (NEWGIDMAP, inputs.newgidmap)]
        .iter()
        .filter(|(_, present)| !present)
        .map(|(tool, _)| *tool)
        .collect();
    if !missing.is_empty() {
        // The same words whether or not the helpers are there yet, so that
        // the docs' transcripts read the same on every machine.
        return single(format!(
            "no range for you in {} ({RANGE_FIX}; sudo apt-get install uidmap)",
            missing.join(" or ")
        ));
    }
    if name.is_none() {
        return single(format!(
            "uid {uid} has no name in /etc/passwd, which newuidmap needs (add the account)"
        ));
    }
    if !tools.is_empty() {
        return single(format!(
            "no {} (sudo apt-get install uidmap)",
            tools.join(" or ")
        ));
    }
    let clamp = |(start, count): (u64, u64)| (start, count.min(RANGE_IDS));
    IdMap::Range {
        uid,
        gid,
        uids: clamp(uids.expect("checked above")),
        gids: clamp(gids.expect("checked above")),
    }
}

/// The map rootless runs of this process use, decided once from the
/// machine's /etc and helpers (so a container and its layers always agree).
pub fn id_map() -> &'static IdMap {
    static MAP: std::sync::OnceLock<IdMap> = std::sync::OnceLock::new();
    MAP.get_or_init(|| {
        let read = |path: &str| fs::read_to_string(path).ok();
        let (passwd, subuid, subgid) = (
            read("/etc/passwd"),
            read("/etc/subuid"),
            read("/etc/subgid"),
        );
        choose_map(&MapInputs {
            uid: Uid::effective().as_raw(),
            gid: Gid::effective().as_raw(),
            passwd: passwd.as_deref(),
            subuid: subuid.as_deref(),
            subgid: subgid.as_deref(),
            newuidmap: is_program(Path::new(NEWUIDMAP)),
            newgidmap: is_program(Path::new(NEWGIDMAP)),
        })
    })
}

/// A regular file with an execute bit: something exec could run.
pub fn is_program(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The name of `uid` in an /etc/passwd text.
pub fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2) == Some(&uid.to_string().as_str())).then(|| fields[0].to_string())
    })
}

/// The first `start:count` range for this user (a line `NAME:START:COUNT`
/// or `UID:START:COUNT`) in an /etc/subuid or /etc/subgid text.
pub fn subid_range(text: &str, name: Option<&str>, uid: u32) -> Option<(u64, u64)> {
    let uid = uid.to_string();
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .find_map(|line| {
            let mut fields = line.trim().split(':');
            let owner = fields.next()?;
            if owner != uid && Some(owner) != name {
                return None;
            }
            let start = fields.next()?.parse().ok()?;
            let count = fields.next()?.parse().ok()?;
            Some((start, count))
        })
}

/// Map the child's user namespace: uid/gid 0 inside is the caller outside,
/// and with a subordinate range ([`id_map`]) 1..=65535 are the range.
///
/// The single map is three writes. `setgroups` must be set to `deny` before
/// an unprivileged process may write `gid_map` (since Linux 3.19): otherwise
/// the child could drop a group that denies it access to a file. See
/// user_namespaces(7), "Interaction with system calls that change process
/// UIDs or GIDs". A range is written by the setuid helpers, which check it
/// against /etc/subuid and /etc/subgid; `setgroups` then stays allowed (as
/// podman leaves it), so `su` and apt's `_apt` can change groups inside.
pub fn write_id_maps(child: Pid) -> Result<()> {
    map_ids(&child.to_string(), child, id_map())
}

fn map_ids(pid: &str, target: Pid, map: &IdMap) -> Result<()> {
    match map {
        IdMap::Single { why, .. } => {
            write_proc(pid, "setgroups", "deny", "")?;
            write_proc(
                pid,
                "uid_map",
                &map.uid_map(),
                &format!("   /* one uid only: {why} */"),
            )?;
            write_proc(pid, "gid_map", &map.gid_map(), "")?;
            Ok(())
        }
        IdMap::Range { .. } => {
            run_helper(NEWUIDMAP, target, &map.uid_map())?;
            run_helper(NEWGIDMAP, target, &map.gid_map())
        }
    }
}

/// `newuidmap PID 0 UID 1 1 START COUNT` (or newgidmap): the setuid helper
/// writes `/proc/PID/uid_map` for us once it has checked the range is ours.
fn run_helper(helper: &str, target: Pid, map: &str) -> Result<()> {
    narrate!(1, "{}", helper_call(helper, target, map).0);
    exec_helper(helper, target, map)
}

/// The helper's call in C form, with why it is run, and its arguments.
fn helper_call(helper: &str, target: Pid, map: &str) -> (String, Vec<String>) {
    let mut args = vec![target.to_string()];
    args.extend(map.split_whitespace().map(str::to_string));
    let name = helper.rsplit('/').next().unwrap_or(helper).to_string();
    let shown: Vec<String> = std::iter::once(&name).chain(&args).map(quote).collect();
    let file = if helper == NEWUIDMAP {
        "uid_map"
    } else {
        "gid_map"
    };
    let call = format!(
        "execve({}, [{}])   /* setuid root: writes /proc/{target}/{file} from your range */",
        quote(helper),
        shown.join(", ")
    );
    (call, args)
}

fn exec_helper(helper: &str, target: Pid, map: &str) -> Result<()> {
    let (_, args) = helper_call(helper, target, map);
    let out = std::process::Command::new(helper)
        .args(&args)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::io("running", helper, e))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    Err(Error::Invalid(format!(
        "{helper} {} failed ({}): {}: check your lines in /etc/subuid and /etc/subgid",
        args.join(" "),
        out.status,
        crate::error::printable(said.trim())
    )))
}

/// Enter a new user namespace (with `flags`' other namespaces) mapped with
/// the caller's range. The helpers cannot be run from inside it (setuid
/// means nothing in a namespace where the host's root is not mapped), so a
/// helper process is forked first, still outside, and maps us once we
/// have unshared.
fn unshare_with_range(flags: CloneFlags, map: &IdMap) -> Result<()> {
    use nix::unistd::{fork, pipe2, ForkResult};
    use std::io::{Read, Write};
    let me = Pid::this();
    let (go_read, go_write) =
        pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| Error::sys("pipe2(go)", errno))?;
    let (err_read, err_write) =
        pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| Error::sys("pipe2(error)", errno))?;
    let call = format!("unshare({})", flag_names(flags));
    narrate!(5, "{call}");
    for helper in [NEWUIDMAP, NEWGIDMAP] {
        let text = if helper == NEWUIDMAP {
            map.uid_map()
        } else {
            map.gid_map()
        };
        narrate!(1, "{}", helper_call(helper, me, &text).0);
    }
    crate::narration::flush();
    // SAFETY: stepbox is single-threaded here; the child only waits, runs
    // the two helpers and leaves with _exit.
    match unsafe { fork() }.map_err(|errno| Error::sys("fork()", errno))? {
        ForkResult::Child => {
            drop((go_write, err_read));
            let mut byte = [0u8; 1];
            let released = File::from(go_read).read(&mut byte).is_ok_and(|n| n == 1);
            let result = if released {
                exec_helper(NEWUIDMAP, me, &map.uid_map())
                    .and_then(|()| exec_helper(NEWGIDMAP, me, &map.gid_map()))
            } else {
                Ok(())
            };
            let code = match result {
                Ok(()) => 0,
                Err(error) => {
                    let _ = File::from(err_write).write_all(error.to_string().as_bytes());
                    1
                }
            };
            // SAFETY: leave the forked helper without running our exit path.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop((go_read, err_write));
            let unshared = nix::sched::unshare(flags)
                .map_err(|errno| Error::sys(call, errno).hint(clone_hint(errno, flags)));
            if unshared.is_ok() {
                let _ = File::from(go_write).write_all(b"g");
            } else {
                drop(go_write);
            }
            let mut report = String::new();
            let _ = File::from(err_read).read_to_string(&mut report);
            let status = nix::sys::wait::waitpid(child, None);
            unshared?;
            match status {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                _ if !report.is_empty() => Err(Error::Invalid(report)),
                other => Err(Error::Internal(format!(
                    "the process running newuidmap/newgidmap for us ended without a word: {other:?}"
                ))),
            }
        }
    }
}

fn write_proc(child: &str, file: &str, text: &str, why: &str) -> Result<()> {
    let path = format!("/proc/{child}/{file}");
    narrate!(1, "write({}, {}){why}", quote(&path), quote(text));
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
    let flags = with_user_if_rootless(CloneFlags::CLONE_NEWNS);
    let with_user = flags.contains(CloneFlags::CLONE_NEWUSER);
    match id_map() {
        map @ IdMap::Range { .. } if with_user => unshare_with_range(flags, map)?,
        map => {
            let call = format!("unshare({})", flag_names(flags));
            narrate!(5, "{call}");
            nix::sched::unshare(flags)
                .map_err(|errno| Error::sys(call, errno).hint(clone_hint(errno, flags)))?;
            if with_user {
                map_ids("self", Pid::this(), map)?;
            }
        }
    }
    crate::mount::make_private("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eagain_from_clone_or_fork_names_the_process_limits() {
        for flags in [CloneFlags::empty(), CONTAINER] {
            let hint = clone_hint(Errno::EAGAIN, flags);
            assert!(hint.contains("--pids-limit"), "{hint}");
            assert!(hint.contains("ulimit -u"), "{hint}");
        }
        let error = fork_error("fork()", Errno::EAGAIN).to_string();
        assert!(error.starts_with("fork(): "), "{error}");
        assert!(error.contains("at its --pids-limit"), "{error}");
        assert!(!fork_error("fork()", Errno::ENOMEM)
            .to_string()
            .contains("--pids-limit"));
    }

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const RANGE: &str = "alice:100000:65536\n";

    fn inputs<'a>(subuid: Option<&'a str>, subgid: Option<&'a str>) -> MapInputs<'a> {
        MapInputs {
            uid: 1000,
            gid: 1000,
            passwd: Some(PASSWD),
            subuid,
            subgid,
            newuidmap: true,
            newgidmap: true,
        }
    }

    #[test]
    fn a_range_and_both_helpers_give_the_range_map() {
        let map = choose_map(&inputs(Some(RANGE), Some(RANGE)));
        assert_eq!(map.uid_map(), "0 1000 1\n1 100000 65535");
        assert_eq!(map.gid_map(), "0 1000 1\n1 100000 65535");
        assert_eq!(
            map.key().as_deref(),
            Some("1000.100000.65535-1000.100000.65535")
        );
    }

    #[test]
    fn a_range_by_uid_counts_and_a_small_range_maps_what_it_holds() {
        let map = choose_map(&inputs(Some("1000:300000:10\n"), Some(RANGE)));
        assert_eq!(map.uid_map(), "0 1000 1\n1 300000 10");
    }

    #[test]
    fn no_range_gives_one_uid_and_the_usermod_line() {
        let map = choose_map(&inputs(None, Some(RANGE)));
        let IdMap::Single { why, .. } = &map else {
            panic!("{map:?}")
        };
        assert!(why.contains("no range for you in /etc/subuid ("), "{why}");
        assert!(why.contains(RANGE_FIX), "{why}");
        assert_eq!(map.uid_map(), "0 1000 1");
        assert_eq!(map.key(), None);
    }

    #[test]
    fn no_range_and_no_helpers_names_both_fixes() {
        let mut both_missing = inputs(None, None);
        both_missing.newuidmap = false;
        let IdMap::Single { why, .. } = choose_map(&both_missing) else {
            panic!()
        };
        assert!(why.contains("/etc/subuid or /etc/subgid"), "{why}");
        assert!(why.ends_with("; sudo apt-get install uidmap)"), "{why}");
    }

    #[test]
    fn a_missing_helper_gives_one_uid_naming_it() {
        let mut no_gid_helper = inputs(Some(RANGE), Some(RANGE));
        no_gid_helper.newgidmap = false;
        let IdMap::Single { why, .. } = choose_map(&no_gid_helper) else {
            panic!()
        };
        assert_eq!(why, format!("no {NEWGIDMAP} (sudo apt-get install uidmap)"));
    }

    #[test]
    fn a_caller_without_a_name_gets_one_uid_as_newuidmap_would_refuse() {
        let mut nameless = inputs(Some("1000:100000:65536\n"), Some("1000:100000:65536\n"));
        nameless.passwd = Some("root:x:0:0::/root:/bin/sh\n");
        let IdMap::Single { why, .. } = choose_map(&nameless) else {
            panic!()
        };
        assert!(why.contains("no name in /etc/passwd"), "{why}");
    }

    #[test]
    fn an_empty_range_is_no_range() {
        let map = choose_map(&inputs(Some("alice:100000:0\n"), Some(RANGE)));
        assert!(matches!(map, IdMap::Single { .. }), "{map:?}");
    }
}
