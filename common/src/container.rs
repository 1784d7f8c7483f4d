//! Named containers: ids, names, state records, locking and listing (ch5).
//!
//! A container is a directory, `containers/<name>/`, claimed by one atomic
//! `mkdir` so that two `run --name x` at once cannot both get it. It holds:
//!
//! ```text
//! state.json      what the container is: image, command, volumes, status,
//!                 the pid of its init *and that process's start time*
//! container.log   stdout and stderr of a detached (-d) container
//! upper/ work/ merged/   its write layer (chapter 3)
//! ```
//!
//! The directory itself is flock(2)ed by every command that changes the
//! container. state.json is written to a temporary file and renamed, so a reader sees
//! the old record or the new one, never half. A pid is only believed
//! together with its start time: once a process exits its pid is free for
//! reuse, and signalling "the container's pid" could then hit a stranger.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::dataroot::{self, check_name, DataRoot};
use crate::error::{Error, Result};
use crate::overlay::Layout;
use crate::{namespace, narrate, process};

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Its directory is claimed; its process has not started (or failed to).
    Created,
    /// Its init process was started (believe it only with the start time).
    Running,
    /// It ended; `exit_code` says how.
    Exited,
}

/// The record in `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub name: String,
    pub image: String,
    /// The manifest digest of the stored image it runs (`sha256:…`): an
    /// image in use is not deleted by `rmi`; `commit` builds on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// The image's layer directories, bottom first.
    pub layers: Vec<PathBuf>,
    pub command: Vec<String>,
    pub volumes: Vec<String>,
    /// The image's variables, then those asked for with `-e` and
    /// `--env-file` (`exec` gets them too).
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Who its command runs as, and where (`-u`, `-w`, or the image's):
    /// `exec` runs as the same user in the same directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Whether stepbox is the container's PID 1 (`--init`).
    #[serde(default)]
    pub init: bool,
    /// The chapter's own `run` flags (chapter 7's limits), as it wrote them;
    /// nothing for a chapter that has none.
    #[serde(default, skip_serializing_if = "nothing")]
    pub chapter: serde_json::Value,
    /// Seconds since the epoch.
    pub created: u64,
    pub status: Status,
    /// The container's init, as the host sees it, and when it started.
    pub pid: Option<i32>,
    pub pid_start_time: Option<u64>,
    /// The monitor that waits for it and records how it ended.
    pub monitor_pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub finished: Option<u64>,
    /// The kernel's OOM killer ended it (chapter 7, from its cgroup's
    /// memory events), as Docker's State.OOMKilled.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
    /// Whether it runs in a user namespace of its own (started without root).
    pub rootless: bool,
    /// The number of the chapter whose binary made it (`Chapter::NUMBER`):
    /// an earlier chapter's binary does not know what a later one added
    /// (ch6's restrictions, ch7's cgroup), so it may not `exec` or `rm` it.
    /// A state from before this was recorded reads as chapter 5's.
    #[serde(default = "chapter_5")]
    pub made_by: u8,
    /// Who is creating it while it is `created`: its `run`, then its
    /// monitor (`-d`). Once that process is gone, a container still
    /// `created` was abandoned mid-start, and plain `rm` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<Owner>,
    /// `run --rm`: the process whose run removes it when it ends. Should
    /// that process be killed (SIGKILL leaves it no time to clean up), the
    /// next command that finds the container ended removes it (see [`list`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_on_exit: Option<Owner>,
}

fn chapter_5() -> u8 {
    5
}

/// No flags recorded: none at all, or an empty set.
fn nothing(value: &serde_json::Value) -> bool {
    value.is_null() || value.as_object().is_some_and(|o| o.is_empty())
}

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl State {
    /// True only if the recorded pid is alive *and* is the process we
    /// started (same start time): a reused pid is someone else.
    pub fn is_running(&self) -> bool {
        match (self.status, self.pid, self.pid_start_time) {
            (Status::Running, Some(pid), Some(start)) => process::start_time(pid) == Some(start),
            _ => false,
        }
    }

    /// True while the process that is creating it still runs (or the state
    /// is too old to say who that was).
    pub fn creator_alive(&self) -> bool {
        self.creator.as_ref().is_none_or(Owner::alive)
    }

    /// `running`, `exited (N)`, `created`, as `ps` shows it.
    pub fn status_text(&self) -> String {
        if self.is_running() {
            return "running".into();
        }
        match (self.status, self.exit_code) {
            (Status::Created, _) => "created".into(),
            (_, Some(code)) if self.oom_killed => format!("exited ({code}) OOMKilled"),
            (_, Some(code)) => format!("exited ({code})"),
            (_, None) => "exited (unknown)".into(),
        }
    }
}

/// A container's directory and files.
#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub dir: PathBuf,
}

impl Container {
    /// The container `name` (which may not exist).
    pub fn at(root: &DataRoot, name: &str) -> Result<Container> {
        check_name("container", name)?;
        Ok(Container {
            name: name.to_string(),
            dir: root.path().join("containers").join(name),
        })
    }

    /// The existing container `name`, or a clear error.
    pub fn existing(root: &DataRoot, name: &str) -> Result<Container> {
        let container = Container::at(root, name)?;
        if !container.dir.is_dir() || container.remove_if_abandoned() {
            return Err(no_such(name));
        }
        Ok(container)
    }

    /// Claim the name: one atomic mkdir. Fails clearly if it is taken.
    pub fn claim(root: &DataRoot, name: &str) -> Result<Container> {
        let container = Container::at(root, name)?;
        root.dir("containers")?;
        // A killed `run --rm` may still hold the name.
        container.remove_if_abandoned();
        narrate!(
            5,
            "mkdir({:?}, 0700)   /* claims the name, or fails: EEXIST */",
            container.dir
        );
        match DirBuilder::new().mode(0o700).create(&container.dir) {
            Ok(()) => Ok(container),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Conflict(format!(
                "the name {name:?} is already in use by a container: choose another --name, or remove it with rm"
            ))),
            Err(e) => Err(Error::io("creating", &container.dir, e)),
        }
    }

    /// The write layer's directories.
    pub fn layout(&self) -> Layout {
        Layout::in_dir(&self.dir)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("container.log")
    }

    /// Whether a monitor (or a process it forked) may still hold the shared
    /// flock(2) every monitor takes on its log for as long as its container
    /// runs: true unless an exclusive lock can be taken now (and is let go).
    fn log_locked(&self) -> bool {
        let Ok(file) = File::open(self.log_path()) else {
            return true;
        };
        Flock::lock(file, FlockArg::LockExclusiveNonblock).is_err()
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Read state.json (a container without one is half-created). A record
    /// larger than [`STATE_LIMIT`] is refused: nothing we write is near it.
    pub fn state(&self) -> Result<State> {
        let path = self.state_path();
        let bytes =
            dataroot::read_small(&path, STATE_LIMIT).map_err(|e| match e.raw_os_error() {
                // Removed by a racing `rm` since we found it.
                Some(libc::ENOENT) if !self.dir.exists() => Error::Invalid(format!(
                    "no such container {:?}: see `ps -a` for the containers there are",
                    self.name
                )),
                // ...or being removed (its files go first), or being created.
                Some(libc::ENOENT) => Error::Conflict(format!(
                    "container {:?} is not running: it has no state yet or any more (being created or removed); see `ps -a`",
                    self.name
                )),
                Some(_) => Error::io("reading", &path, e),
                None => Error::Conflict(format!(
                    "{} is damaged ({e}): remove the container with rm -f",
                    path.display()
                )),
            })?;
        let state: State = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Conflict(format!(
                "{} is damaged ({e}): remove the container with rm -f",
                path.display()
            ))
        })?;
        // The id names the container's cgroup (and may name more): a
        // forged `../x` must never become a path.
        check_id(&state.id).map_err(|why| {
            Error::Conflict(format!(
                "{} is damaged (its id {} {why}): remove the container with rm -f",
                path.display(),
                crate::error::quote(&state.id)
            ))
        })?;
        Ok(state)
    }

    /// Write state.json atomically (temporary file + rename).
    pub fn save(&self, state: &State) -> Result<()> {
        let json = serde_json::to_vec_pretty(state).expect("state serialises");
        dataroot::write_atomically(&self.state_path(), &json)
    }

    /// Hold the container's lock until the guard is dropped: commands that
    /// change one container take turns. The lock is flock(2) on the
    /// container's directory itself: taking it creates nothing, so it
    /// cannot put a file into a directory another command is removing.
    pub fn lock(&self) -> Result<Flock<File>> {
        Flock::lock(self.open_dir()?, FlockArg::LockExclusive)
            .map_err(|(_, errno)| Error::sys(format!("flock({:?}, LOCK_EX)", self.dir), errno))
    }

    fn open_dir(&self) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(&self.dir)
            .map_err(|e| Error::io("opening", &self.dir, e))
    }

    /// Whether its directory is still there (another command may have
    /// removed it since it was found).
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// Update state.json under the lock.
    pub fn update(&self, change: impl FnOnce(&mut State)) -> Result<State> {
        let _lock = self.lock()?;
        let mut state = self.state()?;
        change(&mut state);
        self.save(&state)?;
        Ok(state)
    }

    /// Remove the container's directories. Its volumes are bind mounts in
    /// its own mount namespace, never on the host, so on the host `merged/`
    /// is an empty directory: removing it cannot reach volume data.
    ///
    /// A detached container whose init still runs (state.json may be too
    /// damaged to say so) is killed first: see [`Container::stop_leftovers`].
    pub fn remove(&self) -> Result<()> {
        self.stop_leftovers();
        crate::image::mapped::remove_tree(&self.dir)
            .map_err(|e| Error::io("removing", &self.dir, e))
    }

    /// Kill the init of this container if one still runs, found from
    /// something neither the container nor a damaged state.json can forge:
    /// its monitor is a stepbox process (the same program file as ours) that
    /// holds this container's log open (same inode), and the init is that
    /// monitor's child. A pid is signalled through a pidfd taken while it is
    /// still the monitor's child, so a reused pid is never hit.
    ///
    /// The monitor its state.json names is looked at first: if it is one
    /// (checked as above), it is the only one, as a container has one
    /// monitor in its life. Only otherwise is every process looked at, and
    /// only while something holds the log's lock (see
    /// [`Container::log_locked`]): a monitor that has exited, as after every
    /// `stop`, would otherwise cost each container of an `rm -f` of many a
    /// walk of every other monitor's open files.
    pub fn stop_leftovers(&self) {
        let Ok(log) = fs::symlink_metadata(self.log_path()) else {
            return; // never detached: no monitor
        };
        if !log.is_file() {
            return;
        }
        let log_id = (log.dev(), log.ino());
        let Some(our_exe) = file_id(Path::new("/proc/self/exe")) else {
            return;
        };
        let me = std::process::id() as i32;
        let is_monitor = |pid: &i32| {
            *pid != me
                && file_id(Path::new(&format!("/proc/{pid}/exe"))) == Some(our_exe)
                && holds_open(*pid, log_id)
        };
        // The named one must not be the child of a monitor itself (an
        // `--init` init is our program too, and holds the log).
        let named = self.state().ok().and_then(|state| state.monitor_pid);
        let monitors = match named
            .filter(is_monitor)
            .filter(|pid| !parent_of(*pid).is_some_and(|parent| is_monitor(&parent)))
        {
            Some(monitor) => vec![monitor],
            None if self.log_locked() => all_pids().into_iter().filter(is_monitor).collect(),
            None => Vec::new(),
        };
        let mut killed = Vec::new();
        for monitor in monitors {
            for init in children(monitor) {
                if let Some(pidfd) = PidFd::of_child(init, monitor) {
                    // Exited already (a zombie its monitor has yet to reap:
                    // `rm -f` is woken by the exit itself): nothing to stop.
                    if process::start_time(init).is_none() {
                        continue;
                    }
                    narrate!(
                        5,
                        "pidfd_send_signal(pidfd_open({init}), SIGKILL)   /* the init of {}, child of its monitor {monitor} */",
                        self.name
                    );
                    if pidfd.kill() {
                        killed.push(init);
                    }
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while killed.iter().any(|pid| process::start_time(*pid).is_some())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Join the namespaces of this container's init, for `exec`. If the
    /// container is not running, or ends while we join it (a racing `rm` or
    /// `stop`: its /proc/PID/ns files vanish), say that plainly instead of
    /// the errno of a file the learner never named.
    pub fn join(&self, state: &State) -> Result<()> {
        let Some(pid) = state.pid.filter(|_| state.is_running()) else {
            return Err(self.not_running(state.status_text()));
        };
        // namespace::join opens every namespace file before it joins any,
        // so when it fails to open one we are still on the host, where the
        // start time can be checked again.
        namespace::join(pid, state.rootless).map_err(|error| self.explain(state, error))
    }

    /// An error of `exec` (joining, then forking into the container) as
    /// the learner should read it when the container ended meanwhile: an
    /// exiting process loses its namespace files (ENOENT) while its start
    /// time still reads as running, and a fork into a pid namespace whose
    /// init is gone fails with ENOMEM (the init is then no longer running).
    /// Once joined, /proc is the container's, where the init's host pid
    /// names nothing: whether it is still there is asked of kill(2), which
    /// still takes host pids (its start time was checked before the join).
    /// That check alone cannot tell: an init that has exited but is not yet
    /// reaped still answers kill(2), so ENOMEM is taken as the kernel's
    /// word (alloc_pid says it once the namespace has no init).
    pub fn explain(&self, state: &State, error: Error) -> Error {
        let gone = matches!(
            error.errno(),
            Some(Errno::ENOENT | Errno::ESRCH | Errno::ENOMEM)
        );
        let alive = state.pid.is_some_and(|pid| match process::start_time(pid) {
            Some(start) => Some(start) == state.pid_start_time,
            // Not in this /proc as a live process: a zombie (then gone), or
            // the container's /proc, once joined (then kill(2) can tell).
            None => {
                !Path::new(&format!("/proc/{pid}")).exists()
                    && matches!(
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
                        Ok(()) | Err(Errno::EPERM)
                    )
            }
        });
        if gone || !alive {
            self.not_running("it ended while exec joined it".into())
        } else {
            error
        }
    }

    fn not_running(&self, status: String) -> Error {
        Error::Conflict(format!(
            "container {:?} is not running ({status}): start a new one with run",
            self.name
        ))
    }

    /// A `run --rm` container whose run was killed: its runner is gone and
    /// nothing of it runs any more.
    fn abandoned(&self) -> bool {
        let Ok(state) = self.state() else {
            return false;
        };
        let Some(runner) = &state.remove_on_exit else {
            return false;
        };
        // A `run -d --rm` whose run was killed while its monitor (now the
        // creator) still starts the container is not abandoned.
        !runner.alive()
            && !state.creator.as_ref().is_some_and(Owner::alive)
            && !state.is_running()
            && !state.monitor_pid.is_some_and(dataroot::pid_exists)
    }

    /// Remove this container if it is [abandoned](Container::abandoned),
    /// unless a command holds its lock. True if it was removed.
    fn remove_if_abandoned(&self) -> bool {
        if !self.abandoned() {
            return false;
        }
        let Ok(dir) = self.open_dir() else {
            return false;
        };
        let Ok(_lock) = Flock::lock(dir, FlockArg::LockExclusiveNonblock) else {
            return false;
        };
        if !self.abandoned() {
            return false;
        }
        narrate!(
            5,
            "removing {} (its run --rm was killed)",
            self.dir.display()
        );
        match self.remove() {
            Ok(()) => true,
            Err(error) => {
                crate::error::notice(format_args!("{error}"));
                false
            }
        }
    }
}

/// The largest state.json we read.
pub const STATE_LIMIT: u64 = 1 << 20;

/// The error for a name no container has.
pub fn no_such(name: &str) -> Error {
    Error::Invalid(format!(
        "no such container {name:?}: see `ps -a` for the containers there are"
    ))
}

/// A process, by its pid and start time: the one creating a container,
/// or running a `run --rm` one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: i32,
    pub start_time: u64,
}

impl Owner {
    /// This process (its start time read from /proc once, until it forks).
    pub fn me() -> Owner {
        static PID: AtomicI32 = AtomicI32::new(0);
        static START_TIME: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id() as i32;
        if PID.load(Ordering::Acquire) == pid {
            return Owner {
                pid,
                start_time: START_TIME.load(Ordering::Relaxed),
            };
        }
        let start_time = process::start_time(pid);
        if let Some(start_time) = start_time {
            START_TIME.store(start_time, Ordering::Relaxed);
            PID.store(pid, Ordering::Release);
        }
        Owner {
            pid,
            start_time: start_time.unwrap_or(0),
        }
    }

    /// Whether it still runs (the same process: same start time).
    pub fn alive(&self) -> bool {
        process::start_time(self.pid) == Some(self.start_time)
    }
}

/// A container id, as [`crate::overlay::new_id`] makes them: 12 lowercase
/// hex digits. Anything else read back from a state is refused.
pub fn check_id(id: &str) -> std::result::Result<(), &'static str> {
    if id.len() == 12 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err("is not 12 lowercase hex digits")
    }
}

/// (dev, ino) of the file at `path` (following the /proc magic links).
fn file_id(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn all_pids() -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Whether process `pid` has the file `id` open.
fn holds_open(pid: i32, id: (u64, u64)) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| file_id(&fd.path()) == Some(id))
}

/// The children of every thread of `pid`.
fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// The parent of process `pid`.
fn parent_of(pid: i32) -> Option<i32> {
    process::stat_fields(pid)?.split(' ').nth(1)?.parse().ok()
}

/// A process file descriptor (pidfd_open(2)): it names one process, never a
/// later one that reuses its pid.
struct PidFd(std::os::fd::OwnedFd);

impl PidFd {
    /// A pidfd for `pid`, if it is (still, once the pidfd is open) a child of `parent`.
    fn of_child(pid: i32, parent: i32) -> Option<PidFd> {
        let pidfd = PidFd(process::pidfd_open(pid).ok()?);
        (parent_of(pid) == Some(parent)).then_some(pidfd)
    }

    /// SIGKILL the process; false if it could not be signalled (it is gone).
    fn kill(&self) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_send_signal on our own pidfd, with no siginfo.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        rc == 0
    }
}

/// Every container in the data root, by name.
pub fn list(root: &DataRoot) -> Result<Vec<Container>> {
    let dir = root.dir("containers")?;
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map_err(|e| Error::io("listing", &dir, e))?
        .flatten()
        .filter(|e| fs::symlink_metadata(e.path()).is_ok_and(|m| m.is_dir()))
        // A `lock` file marks a container an older stepbox began (it locked
        // a file; the directory itself is locked now).
        .filter(|e| e.path().join("state.json").is_file() || e.path().join("lock").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| check_name("container", name).is_ok())
        .collect();
    names.sort();
    Ok(names
        .into_iter()
        .map(|name| Container {
            dir: dir.join(&name),
            name,
        })
        .filter(|container| !container.remove_if_abandoned())
        .collect())
}

/// Run `verb` on each of `names`, as Docker's `rm` does: a name that fails
/// (no such container, still running) is reported on stderr and the next one
/// is tried; the exit status is 1 if any failed. `verb` checks a name and
/// returns the work left to do (for `rm`, removing it), which may wait on
/// the disk and the kernel: that work runs on threads of its own, at most
/// `at_once` at a time, so that the waits of several names overlap. Each
/// name is printed once its work is done, or its error told, in the order
/// given.
pub fn for_each_name<W>(
    names: &[String],
    at_once: usize,
    mut verb: impl FnMut(&str) -> Result<W>,
) -> ExitCode
where
    W: FnOnce() -> Result<()> + Send,
{
    let mut failed = false;
    let mut report = |name: &str, outcome: Result<()>| match outcome {
        Ok(()) => println!("{name}"),
        Err(error) => {
            crate::error::notice(&error);
            failed = true;
        }
    };
    std::thread::scope(|scope| {
        type Turn<'s, 'n> = (
            &'n String,
            Result<std::thread::ScopedJoinHandle<'s, Result<()>>>,
        );
        let mut turns: std::collections::VecDeque<Turn> = std::collections::VecDeque::new();
        for name in names {
            while turns.len() >= at_once.max(1) {
                let (name, work) = turns.pop_front().expect("a turn is waiting");
                report(name, work.and_then(|work| work.join().expect("no panic")));
            }
            let work = verb(name).map(|work| scope.spawn(work));
            turns.push_back((name, work));
        }
        for (name, work) in turns {
            report(name, work.and_then(|work| work.join().expect("no panic")));
        }
    });
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A Docker-style name, `adjective_scientist`, not yet taken in `containers`.
pub fn generate_name(root: &DataRoot, id: &str) -> String {
    const ADJECTIVES: [&str; 16] = [
        "brave", "calm", "eager", "fond", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nimble", "proud", "quiet", "sharp", "tender", "witty",
    ];
    const NAMES: [&str; 16] = [
        "babbage", "curie", "dijkstra", "euler", "franklin", "goldberg", "hopper", "knuth",
        "lamport", "lovelace", "noether", "ritchie", "shannon", "thompson", "turing", "wing",
    ];
    let seed = u64::from_str_radix(&id[..8.min(id.len())], 16).unwrap_or(0);
    for attempt in 0..256u64 {
        let n = seed.wrapping_add(attempt.wrapping_mul(2654435761));
        let name = format!(
            "{}_{}",
            ADJECTIVES[(n % 16) as usize],
            NAMES[((n / 16) % 16) as usize]
        );
        if !root.path().join("containers").join(&name).exists() {
            return name;
        }
    }
    format!("stepbox_{id}")
}

/// "5 seconds ago", "3 minutes ago", ...: how long ago `then` was.
pub fn age(then: u64) -> String {
    let secs = now().saturating_sub(then);
    let (n, unit) = match secs {
        0..=59 => (secs, "second"),
        60..=3599 => (secs / 60, "minute"),
        3600..=86399 => (secs / 3600, "hour"),
        _ => (secs / 86400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_twelve_lowercase_hex_digits() {
        assert_eq!(check_id("0123456789ab"), Ok(()));
        for bad in [
            "",
            "../victim",
            "0123456789AB",
            "0123456789a",
            "0123456789abc",
            "0123456789a/",
            "0123456789ag",
        ] {
            assert_eq!(
                check_id(bad),
                Err("is not 12 lowercase hex digits"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_state_from_before_made_by_and_creator_reads_as_chapter_5s() {
        let old = r#"{"id":"0123456789ab","name":"old","image":"busybox","layers":[],
            "command":["sh"],"volumes":[],"created":1,"status":"created","pid":null,
            "pid_start_time":null,"monitor_pid":null,"exit_code":null,"finished":null,
            "rootless":false}"#;
        let state: State = serde_json::from_str(old).unwrap();
        assert_eq!(state.made_by, 5);
        assert_eq!(state.creator, None);
        assert!(
            state.creator_alive(),
            "an unknown creator is not assumed gone"
        );
    }
}
