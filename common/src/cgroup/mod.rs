//! Control groups: limit what a container may use (ch7). Namespaces decide
//! what a process can *see*; a cgroup decides how much it can *use*.
//!
//! A cgroup is a directory in a special filesystem; its files are the knobs.
//! Making one is `mkdir`, limiting it is `write` to a file, putting a
//! process in is writing its pid to `cgroup.procs` (on v1, a thread may
//! move itself through `tasks`), and removing it is `rmdir` once it is
//! empty. Every such write is narrated in C form:
//!
//! ```text
//! [parent] write("/sys/fs/cgroup/stepbox/web/memory.max", "33554432")
//! ```
//!
//! Two layouts exist ([`Mode`]): cgroup v2, one tree at /sys/fs/cgroup
//! whose every directory holds every controller's files (real distros
//! today, [`v2`]); and cgroup v1, one tree per controller
//! (/sys/fs/cgroup/memory/…, /sys/fs/cgroup/pids/…), still found on
//! "hybrid" hosts ([`v1`]). The container's cgroup is
//! `<parent>/stepbox/<name>`, where the parent is the root of the tree for
//! root, and the caller's own delegated cgroup when rootless (v2 only).

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode as Perm;
use nix::unistd::{access, AccessFlags, Pid};

use crate::doctor::{cgroup_mode, CgroupMode};
use crate::error::{quote, Error, Result};
use crate::{detail, narrate};

pub mod container;
pub mod limits;
pub mod v1;
pub mod v2;

pub use limits::{CpuQuota, LimitFlags, Limits, Pids};

/// Where the kernel's cgroup filesystems are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The directory under the parent that holds every stepbox container's cgroup.
pub const STEPBOX_DIR: &str = "stepbox";

/// How long `remove` waits for the last processes to die and the kernel to
/// let go of the directory (rmdir says EBUSY until then).
const REMOVE_PATIENCE: Duration = Duration::from_secs(2);

/// The fix for a rootless caller whose cgroup is not delegated to them.
pub const DELEGATE_FIX: &str =
    "run it in a delegated scope: systemd-run --user --scope -p Delegate=yes ch7-cgroups run ...";

/// Which cgroup layout the host has, and so which files stepbox writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// cgroup v2: one tree, at /sys/fs/cgroup.
    V2,
    /// cgroup v1: one tree per controller (a hybrid or legacy host).
    V1 { hybrid: bool },
}

impl Mode {
    /// The mode from the statfs(2) f_type of /sys/fs/cgroup and of
    /// /sys/fs/cgroup/unified (`None`: could not be statfs'd).
    pub fn from_statfs(top: Option<i64>, unified: Option<i64>) -> Result<Mode> {
        match cgroup_mode(top, unified) {
            CgroupMode::Unified => Ok(Mode::V2),
            CgroupMode::Hybrid => Ok(Mode::V1 { hybrid: true }),
            CgroupMode::Legacy => Ok(Mode::V1 { hybrid: false }),
            CgroupMode::Unknown(None) => Err(Error::Invalid(
                "no cgroup filesystem at /sys/fs/cgroup, so no limit can be set: \
                 mount -t cgroup2 none /sys/fs/cgroup (or boot with systemd)"
                    .into(),
            )),
            CgroupMode::Unknown(Some(magic)) => Err(Error::Invalid(format!(
                "/sys/fs/cgroup is neither cgroup2 nor a tmpfs of v1 controllers (f_type {magic:#x}), \
                 so no limit can be set: mount -t cgroup2 none /sys/fs/cgroup"
            ))),
        }
    }

    /// Detect the mode of the cgroup filesystems under `base` (normally
    /// [`CGROUP_ROOT`]) with statfs(2), narrated.
    pub fn detect(base: &Path) -> Result<Mode> {
        // f_type is an i64 on 64-bit Linux, narrower elsewhere.
        #[allow(clippy::unnecessary_cast)]
        let fs_type = |path: &Path| {
            nix::sys::statfs::statfs(path)
                .ok()
                .map(|s| s.filesystem_type().0 as i64)
        };
        let top = fs_type(base);
        let unified = fs_type(&base.join("unified"));
        let mode = Mode::from_statfs(top, unified)?;
        let shown = match mode {
            Mode::V2 => "CGROUP2_SUPER_MAGIC: cgroup v2, one tree",
            Mode::V1 { hybrid: true } => {
                "TMPFS_MAGIC, and cgroup2 on unified/: hybrid, the controllers are v1"
            }
            Mode::V1 { hybrid: false } => "TMPFS_MAGIC: cgroup v1, one tree per controller",
        };
        narrate!(7, "statfs({}) = {{f_type = {shown}}}", quote(base));
        Ok(mode)
    }
}

/// Where this host's containers' cgroups live: the mode, the mount point
/// and the parent cgroup (relative to the mount point) under which
/// `stepbox/<name>` is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mode: Mode,
    /// /sys/fs/cgroup (a test may point elsewhere).
    pub base: PathBuf,
    /// Relative to `base` (v2) or to each controller's tree (v1); empty: the root.
    pub parent: PathBuf,
    /// v1: the trees under `base`, found once.
    trees: OnceLock<Vec<v1::Tree>>,
}

impl Hierarchy {
    /// The host's hierarchy, for this caller: as root, the root of the tree;
    /// rootless, the caller's own cgroup if it is delegated (v2 only), else
    /// an error naming the fix.
    pub fn detect() -> Result<Hierarchy> {
        Hierarchy::for_mode(Mode::detect(Path::new(CGROUP_ROOT))?)
    }

    /// As [`Hierarchy::detect`], for a mode detected already.
    pub fn for_mode(mode: Mode) -> Result<Hierarchy> {
        let base = PathBuf::from(CGROUP_ROOT);
        if !crate::privilege::rootless() {
            return Ok(Hierarchy::new(mode, base, ""));
        }
        if let Mode::V1 { .. } = mode {
            return Err(Error::Invalid(
                "limits need root on this host: its controllers are cgroup v1, which cannot be \
                 delegated to an ordinary user: run as root, or boot with \
                 systemd.unified_cgroup_hierarchy=1 for cgroup v2"
                    .into(),
            ));
        }
        let text = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| Error::io("reading", "/proc/self/cgroup", e))?;
        let own = own_v2_cgroup(&text).ok_or_else(|| {
            Error::Invalid(format!(
                "/proc/self/cgroup names no cgroup v2 path for this process: {DELEGATE_FIX}"
            ))
        })?;
        let own = delegated_parent(own);
        check_delegated(&base, &own)?;
        narrate!(
            7,
            "/* rootless: the containers' cgroups go under our own delegated cgroup {} */",
            quote(base.join(&own))
        );
        Ok(Hierarchy::new(mode, base, own))
    }

    /// A hierarchy at `base` with `parent`, as given (tests, or a caller that knows).
    pub fn new(mode: Mode, base: impl Into<PathBuf>, parent: impl Into<PathBuf>) -> Hierarchy {
        Hierarchy {
            mode,
            base: base.into(),
            parent: parent.into(),
            trees: OnceLock::new(),
        }
    }

    /// v1: every tree this host mounts.
    pub fn trees(&self) -> &[v1::Tree] {
        // On the real /sys/fs/cgroup a tree is a cgroup mount, never a
        // stray directory (a test's fake base has only directories).
        let mounted_only = self.base == Path::new(CGROUP_ROOT);
        self.trees
            .get_or_init(|| v1::trees(&self.base, mounted_only))
    }

    /// The directory holding every container's cgroup, in `tree` (v1: a
    /// controller's mount point; v2: `base`).
    fn stepbox_dir_in(&self, tree: &Path) -> PathBuf {
        tree.join(&self.parent).join(STEPBOX_DIR)
    }

    /// The directories of container `name`'s cgroup: one on v2; on v1 one
    /// per v1 tree that this host mounts.
    pub fn paths(&self, name: &str) -> Vec<PathBuf> {
        match self.mode {
            Mode::V2 => vec![self.stepbox_dir_in(&self.base).join(name)],
            Mode::V1 { .. } => self
                .trees()
                .iter()
                .map(|tree| self.stepbox_dir_in(&tree.dir).join(name))
                .collect(),
        }
    }

    /// Make container `name`'s cgroup and set `limits` in it, before any of
    /// its processes exist (so that no process ever runs unlimited). A
    /// stale cgroup of the same name (its monitor was killed) is removed
    /// first; one that still holds processes is refused.
    pub fn create(&self, name: &str, limits: &Limits) -> Result<Cgroup> {
        crate::dataroot::check_name("container", name)?;
        if let Some(stale) = self.open(name) {
            if stale.is_populated()? {
                return Err(Error::Conflict(format!(
                    "the cgroup {} still holds processes of an earlier container named {name}: \
                     stop or rm it first",
                    quote(&stale.dirs[0])
                )));
            }
            detail!(7, "a stale cgroup is in the way: removing it");
            stale.remove()?;
        }
        let cgroup = match self.mode {
            Mode::V2 => v2::create(self, name, limits)?,
            Mode::V1 { .. } => v1::create(self, name, limits)?,
        };
        if let Err(error) = cgroup.apply(limits) {
            return Err(error.with_cleanup(cgroup.remove()));
        }
        Ok(cgroup)
    }

    /// Container `name`'s cgroup, if it exists (to read it, or remove it).
    pub fn open(&self, name: &str) -> Option<Cgroup> {
        let dirs: Vec<PathBuf> = self
            .paths(name)
            .into_iter()
            .filter(|dir| dir.is_dir())
            .collect();
        (!dirs.is_empty()).then(|| Cgroup {
            mode: self.mode,
            name: name.to_string(),
            dirs,
            stepbox_dirs: self.stepbox_dirs(),
        })
    }

    /// Every stepbox/ directory (one on v2; one per controller tree on v1).
    fn stepbox_dirs(&self) -> Vec<PathBuf> {
        match self.mode {
            Mode::V2 => vec![self.stepbox_dir_in(&self.base)],
            Mode::V1 { .. } => self
                .trees()
                .iter()
                .map(|tree| self.stepbox_dir_in(&tree.dir))
                .collect(),
        }
    }

    /// The names of the containers that have a cgroup here, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .stepbox_dirs()
            .iter()
            .filter_map(|dir| fs::read_dir(dir).ok())
            .flatten()
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| crate::dataroot::check_name("container", name).is_ok())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Remove the cgroup of every container that `is_running` says is not
    /// (a monitor was killed before it could remove its own): the names removed.
    pub fn remove_stale(&self, is_running: impl Fn(&str) -> bool) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for name in self.names() {
            if is_running(&name) {
                continue;
            }
            if let Some(cgroup) = self.open(&name) {
                narrate!(
                    7,
                    "/* {name}'s cgroup outlived its container: removing it */"
                );
                // One that cannot go is said, and left: it never stops
                // the command that found it.
                match cgroup.remove() {
                    Ok(()) => removed.push(name),
                    Err(error) => crate::error::notice(format_args!(
                        "a stale cgroup stays: {error}; remove it by hand (rmdir, deepest first)"
                    )),
                }
            }
        }
        Ok(removed)
    }
}

/// One container's cgroup: its directory (v2) or directories (v1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub mode: Mode,
    pub name: String,
    /// v2: the one directory; v1: one per controller tree.
    pub dirs: Vec<PathBuf>,
    /// The stepbox/ directories above, removed once the last container's is.
    stepbox_dirs: Vec<PathBuf>,
}

/// What a container's cgroup has used so far (`stats NAME`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Memory charged to it now, in bytes.
    pub memory_bytes: Option<u64>,
    /// Its memory limit, in bytes (`None`: unlimited or unknown).
    pub memory_limit: Option<u64>,
    /// CPU time used, in µs.
    pub cpu_usec: Option<u64>,
    /// How long the CFS quota held it back, in µs.
    pub throttled_usec: Option<u64>,
    /// Processes (and threads) in it now.
    pub pids: Option<u64>,
    /// Its pids limit (`None`: unlimited or unknown).
    pub pids_limit: Option<u64>,
}

impl Cgroup {
    /// The v2 directory, or on v1 the first one (for messages).
    pub fn path(&self) -> &Path {
        &self.dirs[0]
    }

    /// The directory of controller `controller` (v1), or the one directory (v2).
    fn dir_for(&self, controller: &str) -> Option<&Path> {
        match self.mode {
            Mode::V2 => Some(&self.dirs[0]),
            Mode::V1 { .. } => v1::dir_for(&self.dirs, controller),
        }
    }

    /// Write `limits` into the cgroup's files (once, before any process).
    pub fn apply(&self, limits: &Limits) -> Result<()> {
        match self.mode {
            Mode::V2 => v2::apply(&self.dirs[0], limits),
            Mode::V1 { .. } => v1::apply(self, limits),
        }
    }

    /// Move process `pid` (and, from then on, its children) into the
    /// cgroup: its pid written to `cgroup.procs`, in every tree on v1. ch7
    /// does it on v2 without clone3, while the child still waits on the
    /// go pipe, so the command never runs a moment outside its limits (on
    /// v1 the child moves itself: [`Cgroup::join_this_thread`]).
    pub fn join(&self, pid: Pid) -> Result<()> {
        for dir in &self.dirs {
            write_file(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// v1, from inside the process that moves: `0` written to each tree's
    /// `tasks` moves the thread that writes it, and with it a process that
    /// has no other thread (the container's child, just cloned). Moving a
    /// whole process through `cgroup.procs` takes a lock every fork takes,
    /// and the kernel first waits for an RCU grace period to take it (4 to
    /// 14 ms on a small VM); a thread moving itself needs no such lock: it
    /// cannot exit or exec while it writes (Linux 5.5 on; before, the move
    /// is as slow, and as correct).
    pub fn join_this_thread(&self) -> Result<()> {
        for dir in &self.dirs {
            write_file(&dir.join("tasks"), "0")?;
        }
        Ok(())
    }

    /// An fd of the cgroup's directory, for clone3(2)'s CLONE_INTO_CGROUP
    /// (cgroup v2 only, Linux 5.7+): the child is born in the cgroup.
    pub fn open_dir(&self) -> Result<OwnedFd> {
        if self.mode != Mode::V2 {
            return Err(Error::Invalid(
                "CLONE_INTO_CGROUP needs cgroup v2: on v1 the child moves itself".into(),
            ));
        }
        let dir = &self.dirs[0];
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(dir, flags, Perm::empty()).map_err(|errno| {
            Error::sys(
                format!("open({}, O_RDONLY|O_DIRECTORY|O_CLOEXEC)", quote(dir)),
                errno,
            )
        })?;
        narrate!(
            7,
            "open({}, O_RDONLY|O_DIRECTORY|O_CLOEXEC) = {}   /* for clone3's CLONE_INTO_CGROUP */",
            quote(dir),
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        );
        Ok(fd)
    }

    /// Lock the cgroup for the process that runs its container (its first
    /// directory, flock shared), see [`Cgroup::is_locked`]. The fd (v2)
    /// also serves clone3's CLONE_INTO_CGROUP.
    pub fn lock(&self) -> Result<OwnedFd> {
        let dir = &self.dirs[0];
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let call = || format!("open({}, O_RDONLY|O_DIRECTORY|O_CLOEXEC)", quote(dir));
        let fd = nix::fcntl::open(dir, flags, Perm::empty())
            .map_err(|errno| Error::sys(call(), errno))?;
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(raw, libc::LOCK_SH) } != 0 {
            return Err(Error::sys(format!("flock({raw}, LOCK_SH)"), Errno::last()));
        }
        narrate!(
            7,
            "{} = {raw}; flock({raw}, LOCK_SH)   /* ours while it runs: no sweep takes it */",
            call()
        );
        Ok(fd)
    }

    /// True while the process running its container holds its lock.
    pub fn is_locked(&self) -> bool {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let Ok(fd) = nix::fcntl::open(&self.dirs[0], flags, Perm::empty()) else {
            return false;
        };
        // SAFETY: flock on an fd we own; it is released when fd is dropped.
        let free = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        } == 0;
        !free
    }

    /// The pids in the cgroup and the cgroups below it (a container with
    /// CAP_SYS_ADMIN may make some) now, every tree on v1, sorted.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut pids = Vec::new();
        for dir in self.dirs.iter().flat_map(|dir| subtree(dir)) {
            pids.extend(read_pids(&dir.join("cgroup.procs"))?);
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// True while any process is in it.
    pub fn is_populated(&self) -> Result<bool> {
        match self.mode {
            Mode::V2 => v2::populated(&self.dirs[0]),
            Mode::V1 { .. } => Ok(!self.pids()?.is_empty()),
        }
    }

    /// How many times the kernel's OOM killer killed a process in it: a
    /// container whose command died of SIGKILL with this above 0 was OOMKilled.
    pub fn oom_kills(&self) -> Result<u64> {
        let dir = self.dir_for("memory").ok_or_else(no_memory_controller)?;
        match self.mode {
            Mode::V2 => v2::oom_kills(dir),
            Mode::V1 { .. } => v1::oom_kills(dir),
        }
    }

    /// Memory, CPU and pids use.
    pub fn stats(&self) -> Result<Stats> {
        match self.mode {
            Mode::V2 => v2::stats(&self.dirs[0]),
            Mode::V1 { .. } => v1::stats(self),
        }
    }

    /// Kill every process left in it (v2: `cgroup.kill`; else SIGKILL to
    /// each pid in `cgroup.procs` until none is left).
    pub fn kill(&self) -> Result<()> {
        if self.mode == Mode::V2 && v2::kill(&self.dirs[0])? {
            return Ok(());
        }
        // A frozen process (v1 freezer, which a container with SYS_ADMIN
        // can use on itself) takes no signal until thawed: thaw first, as
        // runc does.
        let freezer = match self.mode {
            Mode::V1 { .. } => self.dir_for("freezer"),
            Mode::V2 => None,
        };
        for dir in freezer.into_iter().flat_map(subtree) {
            let state = dir.join("freezer.state");
            if read_optional(&state)?.is_some_and(|s| s.trim() != "THAWED") {
                write_file(&state, "THAWED")?;
            }
        }
        let deadline = Instant::now() + REMOVE_PATIENCE;
        loop {
            let pids = self.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            narrate!(
                7,
                "kill(PID, SIGKILL) for each of the {} processes left in {}",
                pids.len(),
                quote(self.path())
            );
            for pid in &pids {
                detail!(7, "kill({pid}, SIGKILL)");
                match kill(Pid::from_raw(*pid), Signal::SIGKILL) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(errno) => return Err(Error::sys(format!("kill({pid}, SIGKILL)"), errno)),
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Conflict(format!(
                    "processes {pids:?} are still in the cgroup {} after SIGKILL: \
                     try again, or kill them by hand",
                    quote(self.path())
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// rmdir the cgroup (every tree on v1), and the stepbox/ directory above
    /// it if it was the last container's. Usually nothing is left in it
    /// (its init ended, and with it its pid namespace), so the rmdirs come
    /// first; only if one says EBUSY is what is left killed, and the rest
    /// retried while the kernel still counts a dying process.
    pub fn remove(&self) -> Result<()> {
        // The cgroups the container made inside its own first, deepest
        // first: rmdir refuses a cgroup that has any (EBUSY).
        let each = || {
            self.dirs
                .iter()
                .flat_map(|dir| subtree(dir).into_iter().rev())
        };
        let mut busy = false;
        for dir in each() {
            match rmdir(&dir) {
                Ok(()) => narrate!(7, "rmdir({})", quote(&dir)),
                Err(Errno::ENOENT) => {}
                Err(Errno::EBUSY) => {
                    busy = true;
                    break;
                }
                Err(errno) => return Err(rmdir_error(&dir, errno)),
            }
        }
        if busy {
            self.kill()?;
            for dir in each() {
                rmdir_patiently(&dir)?;
            }
        }
        for dir in &self.stepbox_dirs {
            // Another container's cgroup keeps it (ENOTEMPTY, EBUSY): fine.
            if rmdir(dir).is_ok() {
                detail!(
                    7,
                    "rmdir({})   /* it held the last container's cgroup */",
                    quote(dir)
                );
            }
        }
        Ok(())
    }
}

fn no_memory_controller() -> Error {
    Error::Invalid(
        "this host mounts no memory controller, so there is no OOM count to read: \
         boot with cgroup_enable=memory"
            .into(),
    )
}

/// The cgroup v2 path of this process (relative, without the leading `/`),
/// from the text of /proc/self/cgroup: its `0::/path` line.
pub fn own_v2_cgroup(proc_self_cgroup: &str) -> Option<PathBuf> {
    proc_self_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| PathBuf::from(path.trim_start_matches('/')))
}

/// The delegated cgroup that `own` stands for: a process that an earlier
/// run moved into the delegated cgroup's leaf (`stepbox-supervisor/`, see
/// [`v2::SUPERVISOR_LEAF`]) makes its containers' cgroups beside that leaf,
/// not inside it.
pub fn delegated_parent(own: PathBuf) -> PathBuf {
    match own.file_name() {
        Some(leaf) if leaf == v2::SUPERVISOR_LEAF => {
            own.parent().map(Path::to_path_buf).unwrap_or(own)
        }
        _ => own,
    }
}

/// A rootless caller may make cgroups under `own` only if it was delegated
/// to them: its directory, `cgroup.procs` and `cgroup.subtree_control`
/// writable by them.
fn check_delegated(base: &Path, own: &Path) -> Result<()> {
    let dir = match own.as_os_str().is_empty() {
        true => base.to_path_buf(),
        false => base.join(own),
    };
    for path in [
        dir.clone(),
        dir.join("cgroup.procs"),
        dir.join("cgroup.subtree_control"),
    ] {
        if access(&path, AccessFlags::W_OK).is_err() {
            return Err(Error::Invalid(format!(
                "limits need a cgroup delegated to you, and {} is not writable by you: {DELEGATE_FIX}",
                quote(&path)
            )));
        }
    }
    Ok(())
}

// ------------------------------------------------------------- file helpers

/// Write `value` to the cgroup file `path` in one write(2), narrated; a
/// refusal names the file and, where we can tell, why.
pub fn write_file(path: &Path, value: &str) -> Result<()> {
    write_file_as(path, value, true)
}

/// As [`write_file`]; unless `shown`, narrated as a detail (`-v`): a step
/// that depends on what other containers did before (stepbox/ above).
pub fn write_file_as(path: &Path, value: &str, shown: bool) -> Result<()> {
    match shown {
        true => narrate!(7, "write({}, {})", quote(path), quote(value)),
        false => detail!(7, "write({}, {})", quote(path), quote(value)),
    }
    // Never O_CREAT: a cgroup's files are the kernel's, and one that is
    // not there is an error, not a file to make.
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut file| io::Write::write_all(&mut file, value.as_bytes()))
        .map_err(|e| write_error(path, value, e))
}

fn write_error(path: &Path, value: &str, error: io::Error) -> Error {
    let errno = Errno::from_raw(error.raw_os_error().unwrap_or(0));
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    let hint = match (errno, file) {
        (Errno::EACCES | Errno::EPERM, _) => {
            "not yours to write: run as root, or in a cgroup delegated to you".to_string()
        }
        (Errno::EBUSY, "cgroup.subtree_control") => {
            "cgroup v2 hands controllers down only from a cgroup without processes of its own, \
             and this one has some"
                .to_string()
        }
        (Errno::ENOENT, "cgroup.subtree_control") => "no such controller in this kernel".into(),
        (Errno::EINVAL | Errno::ERANGE, "cpuset.cpus") => {
            "no such CPU on this machine, or not in the parent's set: see nproc".into()
        }
        (Errno::EINVAL | Errno::ENOSPC, "cgroup.procs" | "tasks") => {
            "the process cannot join: on v1 a cpuset cgroup needs cpuset.cpus and cpuset.mems set first".into()
        }
        (Errno::ENOENT, "tasks") => {
            "the container's cgroup was removed before it could join (by an rm -f?)".into()
        }
        (Errno::ESRCH, "cgroup.procs") => "no such process (it already exited)".into(),
        (Errno::ENOENT, _) => "this kernel has no such file: the controller is not enabled here".into(),
        (Errno::EINVAL, _) => "the kernel refused the value".into(),
        _ => String::new(),
    };
    let error = Error::sys(format!("write({}, {})", quote(path), quote(value)), errno);
    if hint.is_empty() {
        error
    } else {
        error.hint(hint)
    }
}

/// A cgroup file's text.
pub fn read_file(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))
}

/// A cgroup file's text, or `None` if the kernel has no such file here.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", path, e)),
    }
}

/// A file holding one number (`memory.current`) or `max`.
fn read_number(path: &Path) -> Result<Option<u64>> {
    Ok(read_optional(path)?.and_then(|text| text.trim().parse().ok()))
}

/// The value of `key` in a flat-keyed file (`memory.events`, `cpu.stat`,
/// `memory.oom_control`): lines of `key value`.
pub fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn read_pids(path: &Path) -> Result<Vec<i32>> {
    Ok(read_optional(path)?
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect())
}

/// `dir` and every cgroup below it, parents before their children. A
/// cgroup's subdirectories are all cgroups (a cgroup filesystem has no
/// other kind), and none is a symlink.
fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    let mut next = 0;
    while next < all.len() {
        // A cgroup directory's link count is 2 plus its subdirectories
        // (kernfs counts them): a leaf, the usual cgroup, is not listed.
        if fs::symlink_metadata(&all[next]).is_ok_and(|meta| meta.nlink() <= 2) {
            next += 1;
            continue;
        }
        let children: Vec<PathBuf> = fs::read_dir(&all[next])
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .map(|entry| entry.path())
            .collect();
        all.extend(children);
        next += 1;
    }
    all
}

/// mkdir(2) one cgroup directory, narrated; one that exists is fine.
fn mkdir(dir: &Path) -> Result<()> {
    mkdir_as(dir, true)
}

/// As [`mkdir`]; unless `shown`, narrated as a detail (`-v`).
fn mkdir_as(dir: &Path, shown: bool) -> Result<()> {
    match nix::unistd::mkdir(dir, Perm::from_bits_truncate(0o755)) {
        Ok(()) => {
            match shown {
                true => narrate!(7, "mkdir({}, 0755)", quote(dir)),
                false => detail!(
                    7,
                    "mkdir({}, 0755)   /* the first container's */",
                    quote(dir)
                ),
            }
            Ok(())
        }
        Err(Errno::EEXIST) => Ok(()),
        Err(errno) => {
            let error = Error::sys(format!("mkdir({}, 0755)", quote(dir)), errno);
            Err(match errno {
                Errno::EACCES | Errno::EPERM => error.hint(format!(
                    "the cgroup above is not yours to write: run as root, or {DELEGATE_FIX}"
                )),
                Errno::ENOENT => error.hint("the parent cgroup is gone"),
                _ => error,
            })
        }
    }
}

/// rmdir(2), through std (nix has no wrapper), its errno kept.
fn rmdir(dir: &Path) -> std::result::Result<(), Errno> {
    fs::remove_dir(dir).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// rmdir(2) a cgroup directory, narrated, retrying while EBUSY: the kernel
/// keeps a cgroup busy until its last (killed) process is fully gone.
fn rmdir_patiently(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + REMOVE_PATIENCE;
    loop {
        match rmdir(dir) {
            Ok(()) => {
                narrate!(7, "rmdir({})", quote(dir));
                return Ok(());
            }
            Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(errno) => return Err(rmdir_error(dir, errno)),
        }
    }
}

fn rmdir_error(dir: &Path, errno: Errno) -> Error {
    let error = Error::sys(format!("rmdir({})", quote(dir)), errno);
    match errno {
        Errno::EBUSY => error.hint("processes or cgroups are still in it"),
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::{CGROUP2_SUPER_MAGIC, TMPFS_MAGIC};

    #[test]
    fn the_mode_comes_from_statfs() {
        assert_eq!(
            Mode::from_statfs(Some(CGROUP2_SUPER_MAGIC), None).unwrap(),
            Mode::V2
        );
        assert_eq!(
            Mode::from_statfs(Some(TMPFS_MAGIC), Some(CGROUP2_SUPER_MAGIC)).unwrap(),
            Mode::V1 { hybrid: true }
        );
        assert_eq!(
            Mode::from_statfs(Some(TMPFS_MAGIC), None).unwrap(),
            Mode::V1 { hybrid: false }
        );
    }

    #[test]
    fn no_cgroup_filesystem_is_refused_with_the_mount_to_make() {
        let none = Mode::from_statfs(None, None).unwrap_err().to_string();
        assert!(none.contains("no cgroup filesystem"), "{none}");
        assert!(none.contains("mount -t cgroup2"), "{none}");
        let ext4 = Mode::from_statfs(Some(0xEF53), None)
            .unwrap_err()
            .to_string();
        assert!(ext4.contains("f_type 0xef53"), "{ext4}");
    }

    #[test]
    fn v2_puts_a_container_under_parent_stepbox_name() {
        let root = Hierarchy::new(Mode::V2, "/sys/fs/cgroup", "");
        assert_eq!(
            root.paths("web"),
            [PathBuf::from("/sys/fs/cgroup/stepbox/web")]
        );
        let user = Hierarchy::new(
            Mode::V2,
            "/sys/fs/cgroup",
            "user.slice/user-1000.slice/user@1000.service/app.slice/run-1.scope",
        );
        assert_eq!(
            user.paths("web"),
            [PathBuf::from(
                "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/run-1.scope/stepbox/web"
            )]
        );
    }

    #[test]
    fn v1_puts_a_container_in_each_controller_tree() {
        let base = tempfile::tempdir().unwrap();
        for tree in ["memory", "cpu", "cpuacct", "pids", "cpuset", "devices"] {
            fs::create_dir(base.path().join(tree)).unwrap();
        }
        let hierarchy = Hierarchy::new(Mode::V1 { hybrid: true }, base.path(), "");
        let names = |paths: Vec<PathBuf>| -> Vec<String> {
            paths
                .iter()
                .map(|p| {
                    p.strip_prefix(base.path())
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
        };
        assert_eq!(
            names(hierarchy.paths("web")),
            [
                "cpu/stepbox/web",
                "cpuacct/stepbox/web",
                "cpuset/stepbox/web",
                "devices/stepbox/web",
                "memory/stepbox/web",
                "pids/stepbox/web"
            ]
        );
    }

    #[test]
    fn v1_trees_mounted_together_are_used_once() {
        // Most v1 distros mount cpu and cpuacct together, with two symlinks.
        let base = tempfile::tempdir().unwrap();
        fs::create_dir(base.path().join("cpu,cpuacct")).unwrap();
        fs::create_dir(base.path().join("memory")).unwrap();
        std::os::unix::fs::symlink("cpu,cpuacct", base.path().join("cpu")).unwrap();
        std::os::unix::fs::symlink("cpu,cpuacct", base.path().join("cpuacct")).unwrap();
        let hierarchy = Hierarchy::new(Mode::V1 { hybrid: false }, base.path(), "");
        assert_eq!(hierarchy.paths("db").len(), 2);
    }

    #[test]
    fn the_own_v2_cgroup_is_the_0_line_of_proc_self_cgroup() {
        let hybrid = "9:name=systemd:/\n4:memory:/x\n0::/user.slice/a.scope\n";
        assert_eq!(
            own_v2_cgroup(hybrid),
            Some(PathBuf::from("user.slice/a.scope"))
        );
        assert_eq!(own_v2_cgroup("0::/\n"), Some(PathBuf::from("")));
        assert_eq!(own_v2_cgroup("4:memory:/x\n"), None);
    }

    #[test]
    fn a_process_in_the_supervisor_leaf_uses_the_delegated_cgroup_above_it() {
        let scope = PathBuf::from("user.slice/run-1.scope");
        assert_eq!(delegated_parent(scope.join(v2::SUPERVISOR_LEAF)), scope);
        assert_eq!(delegated_parent(scope.clone()), scope);
    }

    #[test]
    fn flat_keyed_files_are_read_by_key() {
        let events = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed_value(events, "oom_kill"), Some(1));
        assert_eq!(keyed_value(events, "oom"), Some(1));
        assert_eq!(keyed_value(events, "missing"), None);
        let oom_control = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_value(oom_control, "oom_kill"), Some(3));
    }

    #[test]
    fn a_bad_name_is_refused_before_any_directory_is_made() {
        let hierarchy = Hierarchy::new(Mode::V2, "/nonexistent", "");
        let error = hierarchy
            .create("../escape", &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("container"), "{error}");
    }

    #[test]
    fn a_refused_write_names_the_file_the_value_and_why() {
        let error = write_error(
            Path::new("/sys/fs/cgroup/stepbox/web/cgroup.subtree_control"),
            "+memory",
            io::Error::from_raw_os_error(libc::EBUSY),
        )
        .to_string();
        assert!(
            error.starts_with(
                "write(\"/sys/fs/cgroup/stepbox/web/cgroup.subtree_control\", \"+memory\"): "
            ),
            "{error}"
        );
        assert!(error.contains("without processes of its own"), "{error}");
    }
}
