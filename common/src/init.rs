//! `--init`: stepbox itself as PID 1, forwarding signals and reaping
//! orphans, as `docker run --init` (tini) does (ch2 onwards).
//!
//! The first process of a pid namespace is that namespace's init, and the
//! kernel protects it as it protects the host's: a signal for which PID 1
//! has no handler is dropped (only SIGKILL and SIGSTOP from an ancestor
//! namespace get through). `sleep` or a shell as PID 1 installs none, so
//! Ctrl-C and `kill` do nothing to it. And every process orphaned in the
//! namespace is re-parented to PID 1, which must wait for it, or it stays
//! a zombie.
//!
//! With `--init` the child does not exec the command itself:
//!
//! 1. it blocks every signal and forks: the command becomes PID 2;
//! 2. the command, when it has a terminal, takes a process group of its
//!    own and makes it the terminal's foreground group (Ctrl-C goes to the
//!    foreground group), unblocks the signals and execs;
//! 3. PID 1 waits for signals (sigwaitinfo(2)): it sends each one on to
//!    the command, reaps every child that ends, and when the command has
//!    ended exits with its status (128 + N if signal N killed it). The
//!    kernel then kills whatever is left in the namespace.

use std::convert::Infallible;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use crate::error::{Result, SysContext};
use crate::{detail, narrate, process};

/// Stay PID 1 and run `argv` as our child (see the module's steps). Returns
/// only in the child, with the error if its exec failed; PID 1 itself ends
/// with the command's status.
pub fn exec_as_child(argv: &[String]) -> Result<Infallible> {
    let mut unblocked = SigSet::empty();
    nix::sys::signal::sigprocmask(
        SigmaskHow::SIG_BLOCK,
        Some(&SigSet::all()),
        Some(&mut unblocked),
    )
    .call(|| "sigprocmask(SIG_BLOCK, all)".into())?;
    narrate!(
        2,
        "fork()   /* --init: we stay PID 1, pass every signal on to the command and reap orphans */"
    );
    // Nothing folded may be printed twice, once by each process.
    crate::narration::flush();
    // SAFETY: the child is single-threaded; after fork each process goes its own way.
    match unsafe { nix::unistd::fork() }
        .map_err(|errno| crate::namespace::fork_error("fork()", errno))?
    {
        ForkResult::Child => {
            foreground()?;
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&unblocked), None)
                .call(|| "sigprocmask(SIG_SETMASK, the old mask)".into())?;
            process::exec(argv)
        }
        ForkResult::Parent { child } => {
            // The error pipe (and every other fd above 2) is the command's
            // to close by its exec: our copies would keep the parent waiting.
            // SAFETY: closes this process's own fds; PID 1 uses none of them.
            unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
            let code = supervise(child);
            crate::narration::flush();
            // SAFETY: PID 1 ends here, without unwinding into the clone's caller.
            unsafe { libc::_exit(code) }
        }
    }
}

/// With a terminal: our own process group, made its foreground group, so
/// that the keys the learner types (Ctrl-C, Ctrl-Z) signal the command.
/// Our signals are still blocked, so tcsetpgrp's SIGTTOU cannot stop us.
fn foreground() -> Result<()> {
    if !nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        return Ok(());
    }
    narrate!(
        2,
        "setpgid(0, 0); tcsetpgrp(0, getpid())   /* the terminal's keys signal the command's group, not PID 1 */"
    );
    nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)).call(|| "setpgid(0, 0)".into())?;
    match nix::unistd::tcsetpgrp(std::io::stdin(), nix::unistd::getpid()) {
        // Not our controlling terminal: there are no keys to route.
        Ok(()) | Err(Errno::ENOTTY) => Ok(()),
        Err(errno) => Err(crate::Error::sys("tcsetpgrp(0, getpid())", errno)),
    }
}

/// PID 1's loop: pass every signal but SIGCHLD on to `command`; on SIGCHLD,
/// reap. Returns the command's status once it has ended.
fn supervise(command: Pid) -> i32 {
    let all = SigSet::all();
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: sigwait reads the set and writes one int; every signal is blocked.
        if unsafe { libc::sigwait(all.as_ref(), &mut sig) } != 0 {
            continue;
        }
        if sig == libc::SIGCHLD {
            if let Some(code) = reap(command) {
                detail!(
                    2,
                    "PID 1: the command ended ({code}); exiting with its status"
                );
                return code;
            }
        } else {
            detail!(
                2,
                "kill({command}, {})   /* PID 1 passes the signal on */",
                signal_name(sig)
            );
            // SAFETY: kill(2) on our own child; it may have ended already (ESRCH).
            unsafe { libc::kill(command.as_raw(), sig) };
        }
    }
}

/// Reap every child that has ended; the command's status once it is among them.
fn reap(command: Pid) -> Option<i32> {
    let mut status = None;
    loop {
        let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, code),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return status,
            Err(Errno::EINTR) | Ok(_) => continue,
            Err(_) => return status,
        };
        if pid == command {
            status = Some(code);
        } else {
            detail!(
                2,
                "waitpid(-1) = {pid}   /* PID 1 reaped an orphan ({code}) */"
            );
        }
    }
}

fn signal_name(sig: libc::c_int) -> String {
    Signal::try_from(sig).map_or_else(|_| format!("signal {sig}"), |s| s.to_string())
}
