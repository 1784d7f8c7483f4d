//! `stop` and `rm`: end a container, then remove it (ch5 onwards).

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::fcntl::Flock;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::Chapter;
use crate::container::{self, Container, State, Status};
use crate::dataroot::DataRoot;
use crate::error::{Error, Result};
use crate::{narrate, process};

/// Signal the container's init (only if it is still the process we started).
fn signal(state: &State, sig: Signal) -> Result<()> {
    if let (true, Some(pid)) = (state.is_running(), state.pid) {
        narrate!(5, "kill({pid}, {sig})");
        nix::sys::signal::kill(Pid::from_raw(pid), sig)
            .map_err(|errno| Error::sys(format!("kill({pid}, {sig})"), errno))?;
    }
    Ok(())
}

/// Wait up to `limit` for the container's init to be gone: woken by the
/// kernel when it exits (its pidfd polls readable then), not by looking
/// again every few milliseconds. The pidfd is opened before `is_running`
/// checks the start time, so it names the process that check saw.
fn wait_gone(state: &State, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let pidfd = state.pid.and_then(|pid| process::pidfd_open(pid).ok());
    while state.is_running() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let nap = left.min(Duration::from_millis(20));
        match &pidfd {
            Some(pidfd) => {
                let mut ready = [libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }];
                // SAFETY: poll(2) on one pollfd of ours.
                let exited =
                    unsafe { libc::poll(ready.as_mut_ptr(), 1, nap.as_millis() as i32) } > 0;
                // Exited: a zombie until its monitor reaps it, which
                // is_running counts as gone; should it still say running,
                // a short nap keeps the loop from spinning.
                if exited && state.is_running() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            None => std::thread::sleep(nap),
        }
    }
    true
}

pub fn stop(root: &DataRoot, names: &[String], seconds: u64) -> Result<ExitCode> {
    let timeout = Duration::from_secs(seconds);
    for name in names {
        let container = Container::existing(root, name)?;
        let state = container.state()?;
        // 1. Ask politely. A PID 1 only gets signals it has a handler for
        //    (docs/ch5-commit.md#stop-and-pid-1).
        signal(&state, Signal::SIGTERM)?;
        // 2. Then insist: SIGKILL cannot be ignored, even by PID 1.
        if !wait_gone(&state, timeout) {
            signal(&state, Signal::SIGKILL)?;
            wait_gone(&state, Duration::from_secs(10));
        }
        // 3. Give the monitor a moment to record the exit code.
        let deadline = Instant::now() + Duration::from_secs(2);
        while container.state().is_ok_and(|s| s.status == Status::Running)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn rm<C: Chapter>(root: &DataRoot, names: &[String], force: bool) -> Result<ExitCode> {
    // rm -f of several: every one that runs gets its SIGKILL first, so that
    // they end side by side, not one after another (each end waits on the
    // kernel's tearing down of its namespaces and mounts). One that cannot
    // be signalled now is left to its own turn below, which says why.
    let mut killed = HashSet::new();
    if force && names.len() > 1 {
        for name in names {
            let Ok(container) = Container::existing(root, name) else {
                continue;
            };
            let Ok(_lock) = container.lock() else {
                continue;
            };
            if let Ok(state) = container.state() {
                if state.is_running()
                    && super::check_maker::<C>(&state, "rm").is_ok()
                    && signal(&state, Signal::SIGKILL).is_ok()
                {
                    killed.insert(name.as_str());
                }
            }
        }
    }
    // Each name on its own, as Docker does: one that fails is reported and
    // the rest are still removed (exit status 1). The removals themselves
    // (a freed block may be discarded on the disk there and then) run a
    // few at a time.
    let mut seen: HashSet<String> = HashSet::new();
    let removed = container::for_each_name(names, REMOVALS_AT_ONCE, |name| {
        // A name given again is gone by then, as one after another would
        // find it.
        if !seen.insert(name.to_string()) {
            return Err(container::no_such(name));
        }
        // One killed above may since have been removed by its own run
        // (--rm): that is what was asked.
        let gone = |error: Error| {
            if killed.contains(name) && !Container::at(root, name).is_ok_and(|c| c.exists()) {
                Ok(None)
            } else {
                Err(error)
            }
        };
        let container = match Container::existing(root, name) {
            Ok(container) => container,
            Err(error) => return gone(error).map(removal::<C>),
        };
        // Found, then gone by the time we hold its lock (a `run --rm`
        // removes its own under that lock): with -f, that is what was asked.
        let vanished = |error: Error| match force {
            true => Ok(removal::<C>(None)),
            false => Err(error),
        };
        let lock = match container.lock() {
            Ok(lock) => lock,
            Err(error) if !container.exists() => return vanished(error),
            Err(error) => return Err(error),
        };
        if !container.exists() {
            return vanished(container::no_such(name));
        }
        let state = container.state();
        if let Ok(state) = &state {
            super::check_maker::<C>(state, "rm")?;
        }
        match state {
            Ok(state) if state.is_running() => {
                if !force {
                    return Err(Error::Conflict(format!(
                        "container {name:?} is running: stop it first, or use rm -f"
                    )));
                }
                if !killed.contains(name) {
                    signal(&state, Signal::SIGKILL)?;
                }
                wait_gone(&state, Duration::from_secs(10));
            }
            // Its run (or monitor) still at it; once that is gone, it was
            // abandoned mid-start, and goes as an exited one does.
            Ok(state) if state.status == Status::Created && !force && state.creator_alive() => {
                return Err(Error::Conflict(format!(
                    "container {name:?} is still being created: wait for it, or use rm -f"
                )));
            }
            Ok(_) => {}
            Err(error) if !force => {
                return Err(Error::Conflict(format!(
                    "container {name:?} is half-created ({error}): remove it with rm -f"
                )));
            }
            Err(_) => {}
        }
        // Volumes are not on the host's merged/: this cannot reach them.
        // The lock is held until the container is gone.
        Ok(removal::<C>(Some((container, lock))))
    });
    C::after_rm()?;
    Ok(removed)
}

/// The work left for one name of `rm`: remove the container (holding its
/// lock until it is gone), or nothing.
fn removal<C: Chapter>(
    target: Option<(Container, Flock<File>)>,
) -> impl FnOnce() -> Result<()> + Send {
    move || match target {
        Some((container, _lock)) => super::run::remove::<C>(&container),
        None => Ok(()),
    }
}

/// How many containers `rm` removes at once.
const REMOVALS_AT_ONCE: usize = 4;
