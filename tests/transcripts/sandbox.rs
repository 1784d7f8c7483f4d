//! Where a doc's commands run: a private mount and pid namespace per doc, in
//! which the paths a reader's machine has are fresh and empty (`/tmp`,
//! `/var/tmp`, `/root`, `/home`, root's data root `/var/lib/stepbox`), an
//! ordinary user `learner` exists with the home `/home/learner`, and the
//! repository checkout `~/stepbox` holds the chapter binaries just built in
//! `target/debug`. Root's `#` commands and the learner's `$` commands share
//! that world. When the doc ends, the namespace's first process exits and
//! the kernel kills whatever the doc left running; its mounts go with it.

use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use serde_json::json;

use crate::doc::Who;
use crate::shell::Shell;

/// The reader's checkout, as the doc's shells see it.
pub const CHECKOUT: &str = "/home/learner/stepbox";
/// Root's data root: a mount point, made if the host has none.
pub const ROOT_DATA: &str = "/var/lib/stepbox";

/// What one command printed and how it ended, or why it could not run.
pub struct Ran {
    pub output: String,
    pub status: i32,
    pub error: Option<String>,
}

/// Run `commands` in a fresh sandbox; one `Ran` per command that ran (the
/// run stops at the first command the sandbox could not get an answer to).
pub fn run(commands: &[(Who, String)], learner: u32) -> Result<Vec<Ran>, String> {
    // The mount point for root's data root. It is left in place (empty, as
    // the chapters would make it): removing it while another doc's sandbox
    // has a tmpfs on it would detach that mount from under its run.
    if !Path::new(ROOT_DATA).exists() {
        fs::create_dir_all(ROOT_DATA).map_err(|e| format!("mkdir {ROOT_DATA}: {e}"))?;
        fs::set_permissions(ROOT_DATA, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("chmod {ROOT_DATA}: {e}"))?;
    }
    run_forked(commands, learner)
}

fn run_forked(commands: &[(Who, String)], learner: u32) -> Result<Vec<Ran>, String> {
    let (reader, writer) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the test binary has started no thread (its harness is off),
    // so the child may run ordinary Rust code after the fork.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(reader);
            let code = match enter(commands, learner, writer) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("transcripts: sandbox: {e}");
                    125
                }
            };
            // SAFETY: leave without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(writer);
            let text = fs::read_to_string(format!("/proc/self/fd/{}", reader.as_raw_fd()))
                .map_err(|e| format!("read the sandbox's results: {e}"))?;
            let status = waitpid(child, None).map_err(|e| format!("wait: {e}"))?;
            let ran: Vec<Ran> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .map(|v| Ran {
                    output: v["output"].as_str().unwrap_or_default().to_string(),
                    status: v["status"].as_i64().unwrap_or(-1) as i32,
                    error: v["error"].as_str().map(str::to_string),
                })
                .collect();
            match status {
                WaitStatus::Exited(_, 0) => Ok(ran),
                other => Err(format!("the sandbox ended with {other:?}")),
            }
        }
    }
}

/// In the forked child: new namespaces, then the pid namespace's first
/// process, which sets the world up and reaps until the doc is done.
fn enter(commands: &[(Who, String)], learner: u32, results: OwnedFd) -> Result<i32, String> {
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID)
        .map_err(|e| format!("unshare(CLONE_NEWNS|CLONE_NEWPID): {e}"))?;
    // SAFETY: still single-threaded.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            prepare(learner)?;
            // SAFETY: single-threaded; the grandchild runs the doc.
            match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
                ForkResult::Child => {
                    let code = match type_commands(commands, learner, results) {
                        Ok(()) => 0,
                        Err(e) => {
                            eprintln!("transcripts: {e}");
                            1
                        }
                    };
                    std::process::exit(code);
                }
                ForkResult::Parent { child } => {
                    drop(results);
                    Ok(reap_until(child))
                }
            }
        }
        ForkResult::Parent { child } => {
            drop(results);
            Ok(reap_until(child))
        }
    }
}

/// Reap every child (orphans come to a pid namespace's first process) until
/// `main` ends; its exit code.
fn reap_until(main: Pid) -> i32 {
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == main => return code,
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == main => return 128 + signal as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 125,
        }
    }
}

fn mount_tmpfs(path: &str, mode: &str) -> Result<(), String> {
    mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(mode),
    )
    .map_err(|e| format!("mount tmpfs on {path}: {e}"))
}

fn bind(source: &Path, target: &str, read_only: bool) -> Result<(), String> {
    let flags = MsFlags::MS_BIND;
    mount(Some(source), target, None::<&str>, flags, None::<&str>)
        .map_err(|e| format!("bind {} on {target}: {e}", source.display()))?;
    if read_only {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| format!("remount {target} read-only: {e}"))?;
    }
    Ok(())
}

/// The directory cargo built the chapter binaries in.
pub fn binaries() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_ch1-mount-ns"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The world of the doc, in the new mount namespace.
fn prepare(learner: u32) -> Result<(), String> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("make / private: {e}"))?;
    // Hold the build directory open first: the checkout may itself sit under
    // /tmp or /home, which the tmpfs mounts below hide.
    let built =
        fs::File::open(binaries()).map_err(|e| format!("open {}: {e}", binaries().display()))?;
    // One /proc, this pid namespace's, as a reader's machine has one.
    nix::mount::umount2("/proc", nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| format!("umount /proc: {e}"))?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("mount proc: {e}"))?;
    for (path, mode) in [
        ("/tmp", "mode=1777"),
        ("/var/tmp", "mode=1777"),
        ("/root", "mode=0700"),
        ("/home", "mode=0755"),
        (ROOT_DATA, "mode=0700"),
    ] {
        mount_tmpfs(path, mode)?;
    }
    let home = Path::new("/home/learner");
    let debug = Path::new(CHECKOUT).join("target/debug");
    fs::create_dir_all(&debug).map_err(|e| format!("mkdir {}: {e}", debug.display()))?;
    for dir in [
        home,
        Path::new(CHECKOUT),
        &Path::new(CHECKOUT).join("target"),
    ] {
        chown(dir, Some(learner), Some(learner))
            .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    let built = PathBuf::from(format!("/proc/self/fd/{}", built.as_raw_fd()));
    bind(&built, debug.to_str().unwrap(), true)?;
    // The learner gets a name, as a reader's account has one.
    let etc = Path::new("/home/.etc");
    fs::create_dir(etc).map_err(|e| format!("mkdir {}: {e}", etc.display()))?;
    for (file, entry) in [
        (
            "passwd",
            format!("learner:x:{learner}:{learner}:learner:/home/learner:/bin/bash\n"),
        ),
        ("group", format!("learner:x:{learner}:\n")),
    ] {
        let host = format!("/etc/{file}");
        let mut text = fs::read_to_string(&host).map_err(|e| format!("read {host}: {e}"))?;
        text.push_str(&entry);
        let copy = etc.join(file);
        fs::write(&copy, text).map_err(|e| format!("write {}: {e}", copy.display()))?;
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o644)).map_err(|e| e.to_string())?;
        bind(&copy, &host, true)?;
    }
    Ok(())
}

/// A login-like shell for `who`, in the checkout.
fn shell(who: Who, learner: u32) -> Result<Shell, String> {
    let mut command = std::process::Command::new("/bin/bash");
    let (user, home) = match who {
        Who::Root => ("root", "/root"),
        Who::User => ("learner", "/home/learner"),
    };
    command
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", home)
        .env("USER", user)
        .env("LOGNAME", user)
        .env("LANG", "C.UTF-8")
        .env("SHELL", "/bin/bash")
        .current_dir(CHECKOUT)
        .process_group(0);
    if who == Who::User {
        command.uid(learner).gid(learner);
    }
    Shell::start(command)
}

/// Type each command into its shell, writing one result line per command.
fn type_commands(commands: &[(Who, String)], learner: u32, results: OwnedFd) -> Result<(), String> {
    let mut results = fs::File::from(results);
    let mut root: Option<Shell> = None;
    let mut user: Option<Shell> = None;
    for (who, text) in commands {
        // A command typed while a nested shell (a container's, `unshare sh`)
        // is open goes to that shell, whatever its prompt.
        // A `$` line while root's nested shell is open is a doc mistake (the
        // reader would type it as root); a `#` line in the learner's nested
        // shell is not: inside its user namespace the learner is root.
        if *who == Who::User && root.as_ref().is_some_and(Shell::nested) {
            let error = "a `$` command while the root shell a command above started is still open: `exit` it first";
            writeln!(
                results,
                "{}",
                json!({ "output": "", "status": -1, "error": error })
            )
            .map_err(|e| format!("write results: {e}"))?;
            break;
        }
        let who = if root.as_ref().is_some_and(Shell::nested) {
            Who::Root
        } else if user.as_ref().is_some_and(Shell::nested) {
            Who::User
        } else {
            *who
        };
        let slot = match who {
            Who::Root => &mut root,
            Who::User => &mut user,
        };
        if slot.is_none() {
            *slot = Some(shell(who, learner)?);
        }
        let answer = slot.as_mut().unwrap().run(text);
        let line = match &answer {
            Ok(a) => json!({ "output": crate::doc::printable(&a.output), "status": a.status }),
            Err(e) => json!({ "output": "", "status": -1, "error": e }),
        };
        writeln!(results, "{line}").map_err(|e| format!("write results: {e}"))?;
        if answer.is_err() {
            break;
        }
    }
    Ok(())
}
