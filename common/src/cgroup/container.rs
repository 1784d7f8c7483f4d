//! A container's cgroup through its life (ch7): made before the child is
//! cloned, joined before any step of the container's set-up (born in it on
//! v2, moving itself in on v1), seen from inside through a cgroup namespace
//! and a read-only /sys/fs/cgroup, read by `stats`, and removed when the
//! container exits, by `rm`, or (left by a killed monitor) by the next
//! `run` or `rm` that finds it.
//!
//! A container's cgroup is named by its id, as Docker's are: two data roots
//! (yours and root's, or two tests') may each hold a container `web`, but
//! never two containers with one id. The host's mode is detected once per
//! command ([`host`]); a forked monitor and the cloned child inherit it.

use std::os::fd::AsRawFd;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

use super::{Cgroup, Hierarchy, LimitFlags, Limits, Mode, Stats, CGROUP_ROOT};
use crate::container::State;
use crate::error::{quote, Error, Result};
use crate::process::{self, Child};
use crate::{detail, mount, narrate};

/// A cgroup this young with no process in it may be one that a `run` has
/// just made, whose child is about to join it: never swept as stale.
const STARTING: Duration = Duration::from_secs(5);

/// What this host gives this caller.
#[derive(Debug)]
pub struct Host {
    /// The layout of /sys/fs/cgroup (`None`: no cgroup filesystem).
    pub mode: Option<Mode>,
    /// Where containers' cgroups go, or why there is none for this caller.
    pub hierarchy: std::result::Result<Hierarchy, String>,
}

static HOST: OnceLock<Host> = OnceLock::new();

/// The host's cgroups, detected (and narrated) once per command.
pub fn host() -> &'static Host {
    HOST.get_or_init(|| match Mode::detect(Path::new(CGROUP_ROOT)) {
        Ok(mode) => Host {
            mode: Some(mode),
            hierarchy: Hierarchy::for_mode(mode).map_err(|e| e.to_string()),
        },
        Err(error) => Host {
            mode: None,
            hierarchy: Err(error.to_string()),
        },
    })
}

/// `run`'s check, before anything is made: the limits parse, and if any is
/// asked for, this host and caller can set it. A limit is never dropped in
/// silence: a rootless caller without a delegated cgroup is refused here.
pub fn check(flags: &LimitFlags) -> Result<Limits> {
    let limits = flags.limits_here()?;
    match (&host().hierarchy, limits.is_empty()) {
        (Err(why), false) => Err(Error::Invalid(why.clone())),
        (Err(why), true) => {
            detail!(7, "no cgroup for this container ({why}): it runs unlimited");
            Ok(limits)
        }
        (Ok(_), _) => Ok(limits),
    }
}

/// On the host, before the child is cloned: sweep stale cgroups, and make
/// container `id`'s with its limits. On cgroup v2 the answer is its
/// directory, for clone3's CLONE_INTO_CGROUP: the child is born inside.
/// Nothing is left if a step fails.
pub fn create(id: &str, limits: &Limits) -> Result<Option<OwnedFd>> {
    let Ok(hierarchy) = &host().hierarchy else {
        return Ok(None);
    };
    sweep(hierarchy)?;
    let cgroup = hierarchy.create(id, limits)?;
    let locked = match cgroup.lock() {
        Ok(locked) => locked,
        Err(error) => return Err(error.with_cleanup(cgroup.remove())),
    };
    // Held until this process ends (the foreground run, or the monitor,
    // after it has read the OOM count and removed the cgroup); never by
    // the container, which closes it first thing.
    process::keep_from_containers(locked.as_raw_fd());
    let for_clone3 = match cgroup.mode {
        Mode::V2 => locked.try_clone().ok(),
        Mode::V1 { .. } => None,
    };
    *made() = Made::Here(cgroup);
    *OWNED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(locked);
    Ok(for_clone3)
}

/// The cgroup of the container this process runs, locked (flock, shared)
/// while it runs: a sweep by any other command leaves a locked cgroup be,
/// even once it is empty, so the OOM count is still there to read.
static OWNED: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// The cgroup [`create`] made in this process (`run`, or the monitor it
/// forks): the child, cloned with a copy of this memory, moves into it on
/// v1 ([`enter`]), and [`after_exit`] removes it without looking for it.
static MADE: Mutex<Made> = Mutex::new(Made::Nothing);

enum Made {
    Nothing,
    Here(Cgroup),
    /// Removed by [`after_exit`]: [`remove`] has nothing to look for.
    Removed(String),
}

fn made() -> std::sync::MutexGuard<'static, Made> {
    MADE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// On the host, while the child waits on the go pipe, if it was not born
/// in its cgroup (v2 without clone3): its pid written to `cgroup.procs`.
/// It is in before it runs a single instruction of its own, so the command
/// never races its limits. On v1 the child moves itself ([`enter`]).
pub fn join(id: &str, child: &Child) -> Result<()> {
    if child.born_in_cgroup() || matches!(host().mode, Some(Mode::V1 { .. })) {
        return Ok(());
    }
    match open(id) {
        Some(cgroup) => cgroup.join(child.pid()),
        None => Ok(()),
    }
}

/// True while cgroup `id` is a live container's: whoever runs it holds its
/// lock, processes are in it, or it was made a moment ago (its `run` has
/// not locked it yet).
fn in_use(hierarchy: &Hierarchy, id: &str) -> bool {
    let Some(cgroup) = hierarchy.open(id) else {
        return false;
    };
    let young = std::fs::metadata(cgroup.path())
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|made| made.elapsed().ok())
        .is_none_or(|age| age < STARTING);
    if young {
        detail!(7, "/* {id}'s cgroup is left: made under 5 s ago */");
        return true;
    }
    if cgroup.is_locked() {
        detail!(7, "/* {id}'s cgroup is left: its runner holds its lock */");
        return true;
    }
    let populated = cgroup.is_populated().unwrap_or(true);
    if populated {
        // Processes and no runner: not ours to kill, but never in silence.
        crate::error::notice(format_args!(
            "the cgroup {} holds processes but no stepbox runs its container: \
             stop them, or remove the container with rm -f",
            quote(cgroup.path())
        ));
    }
    populated
}

/// Remove the cgroups whose containers are gone (a killed monitor or
/// `run` never removed its own): empty, and not just made.
pub fn sweep(hierarchy: &Hierarchy) -> Result<()> {
    hierarchy.remove_stale(|id| in_use(hierarchy, id))?;
    Ok(())
}

/// Container `id`'s cgroup, if this host and caller have one for it.
fn open(id: &str) -> Option<Cgroup> {
    host().hierarchy.as_ref().ok()?.open(id)
}

/// Once the container's init has exited: was it the OOM killer (its
/// cgroup's memory events say so)? Then its cgroup is removed.
pub fn after_exit(state: &mut State) -> Result<()> {
    let here = match std::mem::replace(&mut *made(), Made::Nothing) {
        Made::Here(cgroup) if cgroup.name == state.id => Some(cgroup),
        _ => None,
    };
    let Some(cgroup) = here.or_else(|| open(&state.id)) else {
        return Ok(());
    };
    if state.exit_code == Some(137) {
        if let Ok(kills @ 1..) = cgroup.oom_kills() {
            let events = match cgroup.mode {
                Mode::V2 => "memory.events",
                Mode::V1 { .. } => "memory.oom_control",
            };
            narrate!(
                7,
                "/* exit 137 and {events} says oom_kill {kills}: the kernel's OOM killer ended it */"
            );
            state.oom_killed = true;
        }
    }
    cgroup.remove()?;
    *made() = Made::Removed(cgroup.name);
    Ok(())
}

/// `rm`, or the end of a `run --rm`: the container's cgroup (if any: it
/// may be gone with its container). Stale ones are [`sweep_stale`]'s.
pub fn remove(state: Option<&State>) -> Result<()> {
    let Ok(hierarchy) = &host().hierarchy else {
        return Ok(());
    };
    let Some(state) = state else {
        return Ok(());
    };
    if matches!(&*made(), Made::Removed(id) if *id == state.id) {
        return Ok(());
    }
    match hierarchy.open(&state.id) {
        Some(cgroup) => cgroup.remove(),
        None => Ok(()),
    }
}

/// `rm`, once it removed every container it was given (not before: a
/// container it killed, whose monitor has ended, would look stale): the
/// cgroups of containers whose monitor was killed.
pub fn sweep_stale() -> Result<()> {
    match &host().hierarchy {
        Ok(hierarchy) => sweep(hierarchy),
        Err(_) => Ok(()),
    }
}

/// `exec`, before it joins the container's namespaces: this process moves
/// into the container's cgroup (`0` is the writer), so the command it forks
/// is born there and counts against the container's limits. On v1 only
/// this thread moves, as the container's child does ([`enter`]): the
/// command is forked by it, so it is born inside all the same.
pub fn join_self(state: &State) -> Result<()> {
    if !state.is_running() {
        return Ok(());
    }
    match open(&state.id) {
        Some(cgroup) if cgroup.mode == Mode::V2 => cgroup.join(Pid::from_raw(0)),
        Some(cgroup) => cgroup.join_this_thread(),
        None => Ok(()),
    }
}

/// `stats NAME`: what the running container's cgroup has used, one row.
pub fn print_stats(state: &State) -> Result<ExitCode> {
    if !state.is_running() {
        return Err(Error::Conflict(format!(
            "container {:?} is not running: stats reads a running container's cgroup; see `ps -a`",
            state.name
        )));
    }
    let cgroup = match &host().hierarchy {
        Ok(hierarchy) => hierarchy.open(&state.id),
        Err(why) => {
            return Err(Error::Invalid(format!(
                "container {:?} has no cgroup, so nothing counts its use: {why}",
                state.name
            )))
        }
    };
    let cgroup = cgroup.ok_or_else(|| {
        Error::Invalid(format!(
            "container {:?} has no cgroup (it was started without one): nothing counts its use",
            state.name
        ))
    })?;
    let stats = cgroup.stats()?;
    println!("{}", stats_header());
    println!("{}", stats_row(&state.name, &stats));
    Ok(ExitCode::SUCCESS)
}

fn stats_header() -> String {
    format!(
        "{:<20}  {:<22}  {:>9}  {:>9}  PIDS / LIMIT",
        "NAME", "MEM USAGE / LIMIT", "CPU TIME", "THROTTLED"
    )
}

/// One `stats` row: sizes in Docker's units, times in seconds.
pub fn stats_row(name: &str, stats: &Stats) -> String {
    let limit = |value: Option<u64>, show: fn(u64) -> String| {
        value.map_or_else(|| "unlimited".to_string(), show)
    };
    let seconds = |usec: Option<u64>| {
        usec.map_or_else(
            || "-".to_string(),
            |usec| format!("{:.2}s", usec as f64 / 1e6),
        )
    };
    format!(
        "{:<20}  {:<22}  {:>9}  {:>9}  {} / {}",
        name,
        format!(
            "{} / {}",
            stats.memory_bytes.map_or_else(|| "-".into(), size),
            limit(stats.memory_limit, size)
        ),
        seconds(stats.cpu_usec),
        seconds(stats.throttled_usec),
        stats.pids.map_or_else(|| "-".into(), |n| n.to_string()),
        limit(stats.pids_limit, |n| n.to_string()),
    )
}

/// Bytes in Docker's units: 1.5MiB.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes}B"),
        _ => format!("{value:.1}{}", UNITS[unit]),
    }
}

// --------------------------------------------------------- in the container

/// On v1, the child's very first step once released, before any of the
/// container's set-up: into the cgroup [`create`] made, in every tree, by
/// `0` written to `tasks` ([`Cgroup::join_this_thread`]: no grace period
/// waited for). The child has one thread, so the whole process moves; the
/// command, exec'd later, starts inside its limits.
pub fn enter() -> Result<()> {
    match &*made() {
        Made::Here(cgroup) if cgroup.mode != Mode::V2 => cgroup.join_this_thread(),
        _ => Ok(()),
    }
}

/// The child's next step: a cgroup namespace of its own. It is rooted at
/// the cgroup the process is in when it is made, so it must come after
/// the move into the container's ([`enter`] on v1): made at clone time it
/// would be rooted at the parent's cgroup
/// (docs/ch7-cgroups.md#inside-the-container).
pub fn unshare_namespace() -> Result<()> {
    narrate!(7, "unshare(CLONE_NEWCGROUP)   /* our cgroup is now / */");
    nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
        .map_err(|errno| Error::sys("unshare(CLONE_NEWCGROUP)", errno))
}

/// `exec`, inside the container (its pid namespace, its /proc): into the
/// cgroup namespace of its init, so that the command too sees its cgroup
/// as `/`. Here, and not on the host: when rootless, only inside the
/// container's user namespace may we join a namespace it owns.
pub fn join_namespace() -> Result<()> {
    let path = "/proc/1/ns/cgroup";
    let file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    // A container made by an earlier chapter has no cgroup namespace: its
    // init's is ours, and joining it is nothing to do (and, rootless, not
    // allowed: it belongs to the host's user namespace).
    let same =
        |a: std::fs::Metadata, b: std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
    if let (Ok(theirs), Ok(ours)) = (file.metadata(), std::fs::metadata("/proc/self/ns/cgroup")) {
        if same(theirs, ours) {
            detail!(
                7,
                "the container has no cgroup namespace of its own: ours is its"
            );
            return Ok(());
        }
    }
    let call = format!("setns(open({}), CLONE_NEWCGROUP)", quote(path));
    narrate!(7, "{call}");
    nix::sched::setns(&file, CloneFlags::CLONE_NEWCGROUP).map_err(|errno| Error::sys(call, errno))
}

/// `/sys` in `new_root`, before the switch: a small read-only tmpfs (not
/// the host's sysfs, which would show the host's devices and, without a
/// network namespace, cannot be mounted rootless), holding the container's
/// own cgroup, read-only: on v2 at /sys/fs/cgroup, on v1 each tree at
/// /sys/fs/cgroup/<tree>. Without a cgroup (rootless on v1) it stays empty.
pub fn mount_sys(new_root: &Path) -> Result<()> {
    let sys = new_root.join("sys");
    match std::fs::symlink_metadata(&sys) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::Invalid(
                "the image's /sys is not a directory: a container's /sys must be one (fix or rebuild the image)"
                    .into(),
            ))
        }
        Err(_) => {
            narrate!(7, "mkdir({}, 0755)   /* the image has no /sys */", quote(&sys));
            std::fs::create_dir(&sys).map_err(|e| Error::io("creating", &sys, e))?;
        }
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount::mount(
        7,
        Some("tmpfs"),
        &sys,
        Some("tmpfs"),
        flags,
        Some("size=64k,mode=755"),
    )?;
    let cgroup_dir = sys.join("fs/cgroup");
    std::fs::create_dir_all(&cgroup_dir).map_err(|e| Error::io("creating", &cgroup_dir, e))?;
    match &host().hierarchy {
        Ok(hierarchy) if hierarchy.mode == Mode::V2 => mount::mount(
            7,
            Some("cgroup2"),
            &cgroup_dir,
            Some("cgroup2"),
            flags | MsFlags::MS_RDONLY,
            None,
        )?,
        Ok(hierarchy) => mount_v1_trees(hierarchy, &cgroup_dir, flags | MsFlags::MS_RDONLY)?,
        Err(why) => detail!(
            7,
            "no cgroup of its own ({why}): /sys/fs/cgroup stays empty"
        ),
    }
    mount::mount(
        7,
        None,
        &sys,
        None,
        flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        Some("size=64k,mode=755"),
    )
}

/// cgroup v1: each tree mounted again, read-only, at
/// /sys/fs/cgroup/<name>, as runc does (with the host's `cpu` ->
/// `cpu,cpuacct` symlinks). Inside our cgroup namespace each mount's root
/// is the container's own cgroup in that tree: its limits can be read
/// there, and nothing above it is seen.
fn mount_v1_trees(hierarchy: &Hierarchy, cgroup_dir: &Path, flags: MsFlags) -> Result<()> {
    for tree in hierarchy.trees() {
        let Some(options) = &tree.options else {
            detail!(
                7,
                "{}: no mount options known, not mounted inside",
                tree.name
            );
            continue;
        };
        let target = cgroup_dir.join(&tree.name);
        std::fs::create_dir(&target).map_err(|e| Error::io("creating", &target, e))?;
        mount::mount(
            7,
            Some("cgroup"),
            &target,
            Some("cgroup"),
            flags,
            Some(options),
        )?;
    }
    let names: Vec<&str> = hierarchy.trees().iter().map(|t| t.name.as_str()).collect();
    for entry in std::fs::read_dir(&hierarchy.base)
        .into_iter()
        .flatten()
        .flatten()
    {
        // The listing's own type (d_type): only a symlink is read.
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        let Some(target) = is_link
            .then(|| std::fs::read_link(entry.path()).ok())
            .flatten()
        else {
            continue;
        };
        if target.to_str().is_some_and(|t| names.contains(&t)) {
            let link = cgroup_dir.join(entry.file_name());
            std::os::unix::fs::symlink(&target, &link)
                .map_err(|e| Error::io("creating", &link, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_shown_in_dockers_units() {
        assert_eq!(size(512), "512B");
        assert_eq!(size(33_554_432), "32.0MiB");
        assert_eq!(size(1_572_864), "1.5MiB");
    }

    #[test]
    fn a_stats_row_shows_use_against_each_limit() {
        let stats = Stats {
            memory_bytes: Some(1_572_864),
            memory_limit: Some(33_554_432),
            cpu_usec: Some(1_250_000),
            throttled_usec: Some(500_000),
            pids: Some(3),
            pids_limit: None,
        };
        let row = stats_row("web", &stats);
        assert!(row.starts_with("web "), "{row}");
        assert!(row.contains("1.5MiB / 32.0MiB"), "{row}");
        assert!(row.contains("1.25s"), "{row}");
        assert!(row.contains("0.50s"), "{row}");
        assert!(row.ends_with("3 / unlimited"), "{row}");
    }
}
