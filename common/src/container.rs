//! Named containers: ids, names, state records, locking and listing (ch5).
//!
//! A container is a directory, `containers/<name>/`, claimed by one atomic
//! `mkdir` so that two `run --name x` at once cannot both get it. It holds:
//!
//! ```text
//! state.json      what the container is: image, command, volumes, status,
//!                 the pid of its init *and that process's start time*
//! container.log   stdout and stderr of a detached (-d) container
//! lock            flock(2)ed by every command that changes the container
//! upper/ work/ merged/   its write layer (chapter 3)
//! ```
//!
//! state.json is written to a temporary file and renamed, so a reader sees
//! the old record or the new one, never half. A pid is only believed
//! together with its start time: once a process exits its pid is free for
//! reuse, and signalling "the container's pid" could then hit a stranger.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::dataroot::{self, check_name, DataRoot};
use crate::error::{Error, Result};
use crate::overlay::Layout;
use crate::{narrate, process};

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
    /// The image's layer directories, bottom first.
    pub layers: Vec<PathBuf>,
    pub command: Vec<String>,
    pub volumes: Vec<String>,
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
    /// Whether it runs in a user namespace of its own (started without root).
    pub rootless: bool,
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

    /// `running`, `exited (N)`, `created`, as `ps` shows it.
    pub fn status_text(&self) -> String {
        if self.is_running() {
            return "running".into();
        }
        match (self.status, self.exit_code) {
            (Status::Created, _) => "created".into(),
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
        if !container.dir.is_dir() {
            return Err(Error::Invalid(format!(
                "no such container {name:?}: see `ps -a` for the containers there are"
            )));
        }
        Ok(container)
    }

    /// Claim the name: one atomic mkdir. Fails clearly if it is taken.
    pub fn claim(root: &DataRoot, name: &str) -> Result<Container> {
        let container = Container::at(root, name)?;
        root.dir("containers")?;
        narrate!(
            5,
            "mkdir({:?}, 0700)   /* claims the name, or fails: EEXIST */",
            container.dir
        );
        match DirBuilder::new().mode(0o700).create(&container.dir) {
            Ok(()) => Ok(container),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Invalid(format!(
                "the name {name:?} is already in use by a container: choose another --name, or remove it with rm"
            ))),
            Err(e) => Err(Error::io("creating", &container.dir, e)),
        }
    }

    /// The write layer's directories.
    pub fn layout(&self) -> Layout {
        Layout {
            dir: self.dir.clone(),
            upper: self.dir.join("upper"),
            work: self.dir.join("work"),
            merged: self.dir.join("merged"),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("container.log")
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Read state.json (a container without one is half-created).
    pub fn state(&self) -> Result<State> {
        let path = self.state_path();
        let bytes = fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::Invalid(format!(
                "{} is damaged ({e}): remove the container with rm -f",
                path.display()
            ))
        })
    }

    /// Write state.json atomically (temporary file + rename).
    pub fn save(&self, state: &State) -> Result<()> {
        let json = serde_json::to_vec_pretty(state).expect("state serialises");
        dataroot::write_atomically(&self.state_path(), &json)
    }

    /// Hold the container's lock until the guard is dropped: commands that
    /// change one container take turns.
    pub fn lock(&self) -> Result<Flock<File>> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("opening", &path, e))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| Error::sys(format!("flock({:?}, LOCK_EX)", path), errno))
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
    pub fn remove(&self) -> Result<()> {
        dataroot::remove_tree(&self.dir).map_err(|e| Error::io("removing", &self.dir, e))
    }
}

/// Every container in the data root, by name.
pub fn list(root: &DataRoot) -> Result<Vec<Container>> {
    let dir = root.dir("containers")?;
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map_err(|e| Error::io("listing", &dir, e))?
        .flatten()
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
        .collect())
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
