//! The container's terminal: a pseudo-terminal of its own, relayed to the
//! caller's, as `docker run -t` gives one (ch2 onwards).
//!
//! Until chapter 1 the command may use the caller's terminal: it runs the
//! host's own programs. From chapter 2 it runs an image's, and a program
//! holding the caller's terminal can push keystrokes into it with
//! `ioctl(TIOCSTI)`, which the caller's shell then runs after the container
//! ends. So an interactive run (stdin is a terminal) gets a fresh pty instead
//! (pty(7)):
//!
//! * the child opens it from the container's own devpts (`/dev/ptmx`, see
//!   [`crate::mount::minimal_dev`]), so that it is `/dev/pts/0` inside, sends
//!   the master to the parent over a socket (SCM_RIGHTS, unix(7)), starts a
//!   session of its own and makes the slave its controlling terminal and its
//!   stdin, stdout and stderr ([`attach`]);
//! * the parent puts the caller's terminal in raw mode, copies bytes both
//!   ways until the child has exited and the master is drained, passes on
//!   window size changes (SIGWINCH), and puts the caller's terminal back as
//!   it was on every way out ([`wait`]).
//!
//! The container never holds a descriptor of the caller's terminal after
//! [`attach`]: whatever it pushes lands in its own pty.
//! See docs/ch2-rootfs.md#the-terminal.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{self, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use nix::sys::stat::Mode;
use nix::sys::termios::{self, SetArg, Termios};

use crate::error::{Error, Result, SysContext};
use crate::process::{Child, Exit};
use crate::{detail, narrate};

/// The channel an interactive child sends its pty's master back on.
#[derive(Debug)]
pub struct Console {
    parent: OwnedFd,
    child: OwnedFd,
}

impl Console {
    /// For an interactive run (stdin is a terminal): a socket pair the child
    /// will send its pty's master on. `None` when stdin is not a terminal:
    /// the child then has a session of its own and no terminal at all.
    pub fn if_interactive() -> Result<Option<Console>> {
        if !nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
            return Ok(None);
        }
        narrate!(
            2,
            "socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0)   /* stdin is a terminal: the child sends its pty back on this */"
        );
        let (parent, child) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .call(|| "socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0)".into())?;
        Ok(Some(Console { parent, child }))
    }
}

/// In the child, after pivot_root and before exec: open a pty in the
/// container's devpts, send its master to the parent, and make the slave
/// this process's controlling terminal, stdin, stdout and stderr.
pub fn attach(console: &Console) -> Result<()> {
    narrate!(
        2,
        "posix_openpt(O_RDWR|O_NOCTTY)   /* open(\"/dev/ptmx\"): a pty of the container's own devpts */"
    );
    let master = fcntl::open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| {
        Error::sys("open(\"/dev/ptmx\", O_RDWR|O_NOCTTY)", errno)
            .hint("the container's /dev has no devpts: see mount::minimal_dev")
    })?;
    // The container may have replaced its /dev/ptmx: it must still be a pty
    // multiplexer, or the parent would relay the caller's keys to something else.
    let on_devpts = nix::sys::statfs::fstatfs(&master)
        .call(|| "fstatfs(\"/dev/ptmx\")".into())?
        .filesystem_type()
        == nix::sys::statfs::DEVPTS_SUPER_MAGIC;
    if !on_devpts {
        return Err(Error::Invalid(
            "the container's /dev/ptmx is not on a devpts filesystem: it cannot give a terminal"
                .into(),
        ));
    }
    narrate!(2, "unlockpt(master)   /* ioctl(master, TIOCSPTLCK, &0) */");
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer, which lives across the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(Error::sys("ioctl(master, TIOCSPTLCK)", Errno::last()));
    }
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut number) } < 0 {
        return Err(Error::sys("ioctl(master, TIOCGPTN)", Errno::last()));
    }
    narrate!(
        2,
        "ioctl(master, TIOCGPTPEER, O_RDWR|O_NOCTTY) = slave   /* /dev/pts/{number}, opened through the master, not by name */"
    );
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd, which we own.
    let slave = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if slave < 0 {
        return Err(Error::sys("ioctl(master, TIOCGPTPEER)", Errno::last())
            .hint("needs Linux 4.13 or later"));
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    // The caller's window size, while fd 0 is still the caller's terminal,
    // so that the command's first look at it is right.
    if let Some(size) = window_size(std::io::stdin().as_fd()) {
        narrate!(
            2,
            "ioctl(slave, TIOCSWINSZ, {{ .ws_row = {}, .ws_col = {} }})   /* the caller's window size */",
            size.ws_row,
            size.ws_col
        );
        set_window_size(slave.as_fd(), &size).call(|| "ioctl(slave, TIOCSWINSZ)".into())?;
    }
    narrate!(
        2,
        "sendmsg(console, SCM_RIGHTS [master])   /* the parent relays the caller's terminal to it */"
    );
    let fds = [master.as_raw_fd()];
    let byte = [b't'];
    loop {
        match sendmsg::<()>(
            console.child.as_raw_fd(),
            &[IoSlice::new(&byte)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::sys("sendmsg(console, SCM_RIGHTS)", errno)),
            Ok(_) => break,
        }
    }
    drop(master);
    narrate!(
        2,
        "setsid()   /* a session of our own: the caller's terminal is no longer ours */"
    );
    nix::unistd::setsid().call(|| "setsid()".into())?;
    narrate!(
        2,
        "ioctl(slave, TIOCSCTTY, 0)   /* the pty becomes our controlling terminal, /dev/tty */"
    );
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal it from another session).
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(Error::sys("ioctl(slave, TIOCSCTTY, 0)", Errno::last()));
    }
    narrate!(2, "dup2(slave, 0); dup2(slave, 1); dup2(slave, 2)");
    // What is still folded belongs on the caller's stderr, before the switch.
    crate::narration::flush();
    crate::process::redirect_stdio(&slave, &slave)
}

/// In the parent: wait for `child` to end, passing on SIGINT, SIGTERM and
/// SIGHUP; with a console, relay the child's pty to the caller's terminal
/// meanwhile (raw, and restored whatever happens).
pub fn wait(child: Child, console: Option<Console>) -> Result<Exit> {
    let Some(Console {
        parent,
        child: child_end,
    }) = console
    else {
        return child.wait();
    };
    // Our copy of the child's end: without it, end-of-file means the child
    // exec'd without sending a pty.
    drop(child_end);
    let relayed = receive_master(&parent).and_then(|master| relay(&child, &master));
    match relayed {
        Ok(()) => child.wait(),
        Err(error) => {
            // Never leave a container behind a relay that is gone.
            let _ = signal::kill(child.pid(), Signal::SIGKILL);
            let _ = child.wait();
            Err(error)
        }
    }
}

fn receive_master(socket: &OwnedFd) -> Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(RawFd);
    let fds: Vec<RawFd> = loop {
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::sys("recvmsg(console)", errno)),
            Ok(message) => {
                let cmsgs = message
                    .cmsgs()
                    .map_err(|errno| Error::sys("recvmsg(console): its control data", errno))?;
                break cmsgs
                    .filter_map(|cmsg| match cmsg {
                        ControlMessageOwned::ScmRights(fds) => Some(fds),
                        _ => None,
                    })
                    .flatten()
                    .collect();
            }
        }
    };
    // SAFETY: SCM_RIGHTS installed these fds in our table just now; we own them.
    let mut owned = fds
        .into_iter()
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    let master = owned.next().ok_or_else(|| {
        Error::Internal("the container started without sending its terminal".into())
    })?;
    // Anything more than one fd is not ours to keep: dropped (closed) here.
    owned.for_each(drop);
    detail!(2, "recvmsg(console, SCM_RIGHTS) = master");
    Ok(master)
}

/// The caller's terminal in raw mode, put back by [`RawMode::restore`], or
/// when dropped (an error, a panic) if that was not reached, or by the
/// handler of a [`FATAL`] signal.
struct RawMode {
    saved: Option<Termios>,
    old_actions: Vec<(Signal, SigAction)>,
}

/// Signals that would end this process with their default action and that
/// nothing forwards (SIGINT, SIGTERM and SIGHUP go to the child, see
/// [`crate::process`]): while the caller's terminal is raw, their handler
/// puts it back first, then lets the default action happen. SIGABRT is
/// also a panic in a release build (panic = "abort"). SIGKILL cannot be
/// caught: after `kill -9`, `stty sane` puts the terminal back.
const FATAL: [Signal; 7] = [
    Signal::SIGQUIT,
    Signal::SIGABRT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGSEGV,
    Signal::SIGBUS,
];

/// The caller's saved modes, for the [`FATAL`] signals' handler (null: none).
static SAVED_MODES: AtomicPtr<libc::termios> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn restore_then_die(sig: libc::c_int) {
    let saved = SAVED_MODES.load(Ordering::Relaxed);
    if !saved.is_null() {
        // SAFETY: tcsetattr is async-signal-safe; `saved` points at the copy
        // RawMode keeps alive until it has put our handlers back.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, saved) };
    }
    // SAFETY: SA_RESETHAND made the default action current again; the signal
    // is blocked in its handler, so it is delivered, and ends us, on return.
    unsafe { libc::raise(sig) };
}

impl RawMode {
    fn enter() -> Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).call(|| "tcgetattr(0)".into())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        narrate!(
            2,
            "tcsetattr(0, TCSANOW, &raw)   /* cfmakeraw(): every key goes to the container's terminal as typed */"
        );
        // Printed before the switch: a raw terminal would show "\n" as a bare line feed.
        crate::narration::flush();
        let mut mode = RawMode {
            saved: None,
            old_actions: Vec::new(),
        };
        let copy = Box::into_raw(Box::new(libc::termios::from(saved.clone())));
        SAVED_MODES.store(copy, Ordering::Relaxed);
        let action = SigAction::new(
            SigHandler::Handler(restore_then_die),
            SaFlags::SA_RESETHAND,
            SigSet::empty(),
        );
        for sig in FATAL {
            // SAFETY: the handler only calls tcsetattr(3) and raise(3), both
            // async-signal-safe, on a copy that outlives the handler.
            let old =
                unsafe { signal::sigaction(sig, &action) }.call(|| format!("sigaction({sig})"))?;
            mode.old_actions.push((sig, old));
        }
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)
            .call(|| "tcsetattr(0, TCSANOW, &raw)".into())?;
        mode.saved = Some(saved);
        Ok(mode)
    }

    fn restore(mut self) -> Result<()> {
        self.leave()
    }

    /// Put the caller's terminal back (once), and our handlers.
    fn leave(&mut self) -> Result<()> {
        for (sig, old) in self.old_actions.drain(..) {
            // SAFETY: putting back the disposition sigaction gave us. Should
            // it fail, the handler stays, and it only restores the terminal.
            let _ = unsafe { signal::sigaction(sig, &old) };
        }
        let copy = SAVED_MODES.swap(std::ptr::null_mut(), Ordering::Relaxed);
        if !copy.is_null() {
            // SAFETY: made by Box::into_raw in `enter`; no handler can see it any more.
            drop(unsafe { Box::from_raw(copy) });
        }
        match self.saved.take() {
            Some(saved) => put_back(&saved),
            None => Ok(()),
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Err(error) = self.leave() {
            // The way out is an error already: this one is printed beside it.
            eprintln!("stepbox: {error} (type `stty sane`)");
        }
    }
}

fn put_back(saved: &Termios) -> Result<()> {
    termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved)
        .call(|| "tcsetattr(0, TCSANOW, &saved)".into())?;
    narrate!(
        2,
        "tcsetattr(0, TCSANOW, &saved)   /* the caller's terminal as it was */"
    );
    Ok(())
}

fn window_size(fd: BorrowedFd) -> Option<libc::winsize> {
    let mut size: libc::winsize = empty_window_size();
    // SAFETY: TIOCGWINSZ writes one struct winsize through the pointer.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    (rc == 0).then_some(size)
}

fn empty_window_size() -> libc::winsize {
    libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

fn set_window_size(fd: BorrowedFd, size: &libc::winsize) -> nix::Result<()> {
    // SAFETY: TIOCSWINSZ reads one struct winsize from the pointer.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, size) };
    Errno::result(rc).map(drop)
}

/// The write end of the pipe the SIGWINCH handler wakes the relay with.
static WINCH_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_winch(_: libc::c_int) {
    let fd = WINCH_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the pipe is non-blocking, and a
        // full pipe already holds a wake-up, so a failed write loses nothing.
        unsafe { libc::write(fd, b"w".as_ptr().cast(), 1) };
    }
}

/// While the relay runs: SIGWINCH wakes it through a pipe, and SIGPIPE is
/// ignored (a closed stdout must end the relay, not kill us with the
/// caller's terminal still raw). Put back as they were when dropped.
struct Signals {
    wake: OwnedFd,
    _write: OwnedFd,
    old_winch: SigAction,
    old_pipe: SigAction,
}

impl Signals {
    fn install() -> Result<Signals> {
        let (wake, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .call(|| "pipe2(winch)".into())?;
        WINCH_PIPE.store(write.as_raw_fd(), Ordering::Relaxed);
        let winch = SigAction::new(
            SigHandler::Handler(on_winch),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: the handler only loads an atomic and calls write(2).
        let old_winch = unsafe { signal::sigaction(Signal::SIGWINCH, &winch) }
            .call(|| "sigaction(SIGWINCH)".into())?;
        // SAFETY: ignoring a signal runs no code of ours.
        let old_pipe = unsafe { signal::sigaction(Signal::SIGPIPE, &ignore) }
            .call(|| "sigaction(SIGPIPE, SIG_IGN)".into())?;
        Ok(Signals {
            wake,
            _write: write,
            old_winch,
            old_pipe,
        })
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        // SAFETY: putting back the dispositions sigaction gave us.
        unsafe {
            let _ = signal::sigaction(Signal::SIGWINCH, &self.old_winch);
            let _ = signal::sigaction(Signal::SIGPIPE, &self.old_pipe);
        }
        WINCH_PIPE.store(-1, Ordering::Relaxed);
    }
}

/// How long the relay keeps draining the master once the child has exited
/// (a process it left behind may still hold the slave): quiet this long ends it...
const DRAIN_QUIET: u16 = 100;
/// ...and in any case this long after the exit.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Copy the caller's keys to the master and the master's output to stdout
/// until the child has exited and the master is drained; the caller's
/// terminal raw meanwhile. Sleeps in poll(2) on all four fds: no busy loop.
fn relay(child: &Child, master: &OwnedFd) -> Result<()> {
    let pidfd = crate::process::pidfd_open(child.pid().as_raw()).map_err(|errno| {
        Error::sys(format!("pidfd_open({})", child.pid()), errno).hint("needs Linux 5.3 or later")
    })?;
    let flags = fcntl::fcntl(master, FcntlArg::F_GETFL).call(|| "fcntl(master, F_GETFL)".into())?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl::fcntl(master, FcntlArg::F_SETFL(flags))
        .call(|| "fcntl(master, F_SETFL, O_NONBLOCK)".into())?;

    let signals = Signals::install()?;
    let raw = RawMode::enter()?;
    // A resize between the child's copy and our handler is not lost.
    copy_window_size(master);
    let result = copy_both_ways(master, &pidfd, &signals.wake);
    let restored = raw.restore();
    drop(signals);
    match (result, restored) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(error), Ok(())) | (Ok(()), Err(error)) => Err(error),
        // Both are reported: the second is the one the learner sees on screen.
        (Err(relay), Err(restore)) => Err(Error::Invalid(format!(
            "{relay}; and putting the caller's terminal back: {restore} (type `stty sane`)"
        ))),
    }
}

fn copy_window_size(master: &OwnedFd) {
    if let Some(size) = window_size(std::io::stdin().as_fd()) {
        // The container's size just stays as it was if this fails.
        let _ = set_window_size(master.as_fd(), &size);
    }
}

fn copy_both_ways(master: &OwnedFd, pidfd: &OwnedFd, wake: &OwnedFd) -> Result<()> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut buffer = [0u8; 16 * 1024];
    // Keys read but not yet taken by the master (its input queue is full).
    let mut pending: Vec<u8> = Vec::new();
    let (mut input_open, mut master_open, mut output_open) = (true, true, true);
    let mut exited_at: Option<Instant> = None;
    loop {
        if !master_open || exited_at.is_some_and(|at| at.elapsed() > DRAIN_LIMIT) {
            return Ok(());
        }
        // Once the child is gone, the caller's typed-ahead keys are the caller's shell's.
        let read_keys = input_open && exited_at.is_none() && pending.is_empty();
        let mut master_events = PollFlags::POLLIN;
        if !pending.is_empty() {
            master_events |= PollFlags::POLLOUT;
        }
        let mut fds = vec![
            PollFd::new(master.as_fd(), master_events),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(wake.as_fd(), PollFlags::POLLIN),
        ];
        if read_keys {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        let timeout = match exited_at {
            Some(_) => PollTimeout::from(DRAIN_QUIET),
            None => PollTimeout::NONE,
        };
        match poll(&mut fds, timeout) {
            // A forwarded SIGTERM, or SIGWINCH: go round.
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::sys("poll(stdin, master, pidfd, winch)", errno)),
            // Exited, and nothing more came for a while: drained.
            Ok(0) => return Ok(()),
            Ok(_) => {}
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(PollFd::revents)
                .unwrap_or(PollFlags::empty())
        };
        let (master_ready, exit_ready, wake_ready, keys_ready) =
            (ready(0), ready(1), ready(2), ready(3));
        drop(fds);

        if !exit_ready.is_empty() && exited_at.is_none() {
            exited_at = Some(Instant::now());
        }
        if !wake_ready.is_empty() {
            let mut drain = [0u8; 64];
            while matches!(nix::unistd::read(wake, &mut drain), Ok(n) if n > 0) {}
            copy_window_size(master);
            detail!(
                2,
                "SIGWINCH: ioctl(master, TIOCSWINSZ, the caller's new size)"
            );
        }
        if !keys_ready.is_empty() {
            match nix::unistd::read(stdin.as_fd(), &mut buffer) {
                Ok(0) => input_open = false,
                Ok(n) => pending.extend_from_slice(&buffer[..n]),
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                // The caller's terminal hung up: nothing more to read from it.
                Err(_) => input_open = false,
            }
        }
        if !pending.is_empty() {
            match nix::unistd::write(master, &pending) {
                Ok(n) => {
                    pending.drain(..n);
                }
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                // No slave open any more: nobody to type to.
                Err(_) => {
                    pending.clear();
                    input_open = false;
                }
            }
        }
        if master_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match nix::unistd::read(master, &mut buffer) {
                Ok(0) => master_open = false,
                Ok(n) if output_open => {
                    if write_all(stdout.as_fd(), &buffer[..n]).is_err() {
                        // stdout is gone (a closed pipe, a hung-up terminal):
                        // keep draining, so that the container is never blocked.
                        output_open = false;
                    }
                }
                Ok(_) => {}
                Err(Errno::EINTR) => {}
                // EAGAIN with a hang-up: nothing will come any more.
                Err(Errno::EAGAIN) if !master_ready.contains(PollFlags::POLLHUP) => {}
                // EIO: every slave is closed, all it wrote has been read.
                Err(_) => master_open = false,
            }
        }
    }
}

/// Write all of `bytes` to `fd` (the caller's stdout, left blocking as the
/// caller's shell set it up; poll(2) waits if it happens to be non-blocking).
fn write_all(fd: BorrowedFd, mut bytes: &[u8]) -> nix::Result<()> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(errno) => return Err(errno),
                }
            }
            Err(errno) => return Err(errno),
        }
    }
    Ok(())
}
