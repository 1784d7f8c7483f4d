//! Processes: clone a child into new namespaces, release it, exec, wait (ch1 onwards).
//!
//! The parent and the child talk over two pipes:
//!
//! * the *go* pipe: the child blocks on it until the parent has written its
//!   user-namespace id maps (until then its uid and gid are unmapped, so it
//!   can create no file and the kernel cannot tell who owns what it does);
//! * the *error* pipe, close-on-exec: if anything fails before the command is
//!   exec'd, the child writes the error text there and exits; if the exec
//!   succeeds, the kernel closes the pipe and the parent reads end-of-file.
//!
//! So the parent always knows whether the command started, and the learner
//! never sees a silent exit.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{execvp, pipe2, Pid};

use crate::environment::Environment;
use crate::error::{
    quote, Error, Result, SysContext, EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, EXIT_SETUP_FAILED,
};
use crate::{detail, namespace, narrate};

/// How much stack the cloned child runs on before it execs.
const CHILD_STACK_SIZE: usize = 1024 * 1024;

/// clone3(2)'s flag to start the child in a cgroup (Linux 5.7; libc's
/// constant is an int it overflows).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The signals the parent passes on to the child instead of dying of them.
const FORWARDED: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// The child the forwarding handler sends signals to (0: none yet).
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

/// A child running in its own namespaces.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    /// Made by clone3(2) with CLONE_INTO_CGROUP: born in its cgroup.
    in_cgroup: bool,
}

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It called exit with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(Signal),
}

impl Exit {
    /// The shell's convention: the code itself, or 128 + N for signal N.
    pub fn code(self) -> u8 {
        match self {
            Exit::Code(code) => code as u8,
            Exit::Signal(sig) => 128u8.wrapping_add(sig as i32 as u8),
        }
    }
}

impl Child {
    /// The child's pid as the parent sees it.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// True if clone3 started it inside the cgroup [`spawn_with`] was given
    /// (so nothing need move it there).
    pub fn born_in_cgroup(&self) -> bool {
        self.in_cgroup
    }

    /// Wait for the child to end, passing on SIGINT, SIGTERM and SIGHUP.
    pub fn wait(self) -> Result<Exit> {
        loop {
            match waitpid(self.pid, None) {
                Ok(WaitStatus::Exited(_, code)) => {
                    detail!(1, "waitpid({}): exited with {code}", self.pid);
                    return Ok(Exit::Code(code));
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    detail!(1, "waitpid({}): killed by {sig}", self.pid);
                    return Ok(Exit::Signal(sig));
                }
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(errno) => return Err(Error::sys(format!("waitpid({})", self.pid), errno)),
            }
        }
    }
}

/// Clone a child into the namespaces `flags` and run `child_main` in it.
///
/// Returns once `child_main` has exec'd its command. If the child fails
/// before that, its error is returned here, as `Error::Child`.
pub fn spawn<F>(flags: CloneFlags, child_main: F) -> Result<Child>
where
    F: FnMut() -> Result<Infallible>,
{
    spawn_with(flags, None, |_| Ok(()), child_main)
}

/// As [`spawn`], with `before_release` run here on the host side between
/// `clone` and the go byte, while the child still waits: what must be true
/// before its first step (ch7 puts it into its cgroup, unless it was born
/// there). Writing the user namespace's id maps is the first such step. If
/// one fails, the child is killed and the error returned.
///
/// With `into_cgroup` (a cgroup v2 directory, ch7) the child is made by
/// clone3(2) with CLONE_INTO_CGROUP, inside that cgroup from its first
/// instruction; where the kernel has no clone3 or no CLONE_INTO_CGROUP
/// (before Linux 5.7, or a seccomp profile that answers ENOSYS), by clone(2)
/// as without it, and [`Child::born_in_cgroup`] says so.
pub fn spawn_with<F, H>(
    flags: CloneFlags,
    into_cgroup: Option<BorrowedFd<'_>>,
    before_release: H,
    mut child_main: F,
) -> Result<Child>
where
    F: FnMut() -> Result<Infallible>,
    H: FnOnce(&Child) -> Result<()>,
{
    let (go_read, go_write) = pipe2(OFlag::O_CLOEXEC).call(|| "pipe2(go)".into())?;
    let (err_read, err_write) = pipe2(OFlag::O_CLOEXEC).call(|| "pipe2(error)".into())?;
    let [go_read_raw, go_write_raw, err_read_raw, err_write_raw] =
        [&go_read, &go_write, &err_read, &err_write].map(|fd| fd.as_raw_fd());

    let mut body = || {
        crate::narration::enter_child();
        // SAFETY: clone copied the parent's four pipe fds into this child, which owns
        // its copies from here on. The parent's ends are closed, so that end-of-file
        // on the go pipe means the parent died.
        let (go_read, err_write) = unsafe {
            libc::close(go_write_raw);
            libc::close(err_read_raw);
            (
                OwnedFd::from_raw_fd(go_read_raw),
                File::from_raw_fd(err_write_raw),
            )
        };
        // What the host holds for the container (its layers' locks) is
        // never the container's: a directory fd it kept could take it out
        // of its root through /proc/self/fd/N (runc's CVE-2024-21626).
        close_host_only_fds();
        let result = wait_for_parent(&go_read)
            .map(|()| GO_PIPE.store(go_read_raw, Ordering::Relaxed))
            .and_then(|()| harden_until_exec())
            .and_then(|()| child_main());
        let error = match result {
            Ok(never) => match never {},
            Err(error) => error,
        };
        // The steps still folded are printed before the parent prints the error.
        crate::narration::flush();
        let _ = (&err_write).write_all(format!("{}\n{error}", error.exit_code()).as_bytes());
        error.exit_code() as isize
    };
    let (pid, in_cgroup) =
        match into_cgroup.and_then(|cgroup| clone3_into(flags, cgroup, &mut body)) {
            Some(cloned) => (cloned?, true),
            None => (clone(flags, &mut body)?, false),
        };
    detail!(
        1,
        "the child waits on the go pipe; its error pipe is close-on-exec"
    );
    drop((go_read, err_write));
    forward_signals_to(pid)?;
    let child = Child { pid, in_cgroup };

    let id_maps = |pid| match flags.contains(CloneFlags::CLONE_NEWUSER) {
        true => namespace::write_id_maps(pid),
        false => Ok(()),
    };
    if let Err(error) = id_maps(pid).and_then(|()| before_release(&child)) {
        kill_and_reap(&child);
        return Err(error);
    }
    // Our folded steps are printed before the child's lines.
    crate::narration::flush();
    // Release the child. If it already died, the write fails and its error
    // text (read below) says why. Our end stays open until the child has
    // exec'd: until then, end-of-file on the go pipe tells it we died.
    let go_write = File::from(go_write);
    write_ignoring_sigpipe(&go_write, b"g");

    detail!(
        1,
        "released the child; reading its error pipe until exec closes it"
    );
    let mut report = String::new();
    let _ = File::from(err_read).read_to_string(&mut report);
    if report.is_empty() {
        detail!(
            1,
            "error pipe closed with nothing in it: the command is running"
        );
        return Ok(child);
    }
    let _ = child.wait();
    Err(parse_report(&report))
}

/// clone(2) a child into the namespaces `flags`, on a stack of its own,
/// running `body`.
fn clone(flags: CloneFlags, body: &mut dyn FnMut() -> isize) -> Result<Pid> {
    let mut stack = vec![0u8; CHILD_STACK_SIZE];
    // SAFETY: the child gets a copy of our address space (no CLONE_VM) and its own
    // stack; we are single-threaded, so no lock is held by another thread at clone.
    let cloned =
        unsafe { nix::sched::clone(Box::new(body), &mut stack, flags, Some(libc::SIGCHLD)) };
    let pid = cloned.map_err(|errno| {
        Error::sys(format!("clone({})", namespace::flag_names(flags)), errno)
            .hint(namespace::clone_hint(errno, flags))
    })?;
    narrate!(
        namespace::introduced_in(flags),
        "clone({}) = {pid}",
        namespace::flag_names(flags)
    );
    Ok(pid)
}

/// clone3(2) with CLONE_INTO_CGROUP: a child in the namespaces `flags` that
/// starts inside the cgroup v2 directory `cgroup`, running `body`. `None`
/// where this kernel (or a seccomp filter around us) has no such clone3:
/// the caller clones as before and moves the child itself.
fn clone3_into(
    flags: CloneFlags,
    cgroup: BorrowedFd<'_>,
    body: &mut dyn FnMut() -> isize,
) -> Option<Result<Pid>> {
    // SAFETY: clone_args is plain integers; zero is "not used" for each field.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = flags.bits() as u64 | CLONE_INTO_CGROUP;
    args.exit_signal = libc::SIGCHLD as u64;
    args.cgroup = cgroup.as_raw_fd() as u64;
    // SAFETY: without CLONE_VM and without a stack, clone3 is fork(2): the
    // child runs on its own copy of this stack, and we are single-threaded,
    // so no lock is held by another thread. The child never returns from
    // here: it runs `body` and _exits.
    let cloned = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    if cloned == 0 {
        // The cgroup's directory is the host's: the child keeps no fd of it.
        // SAFETY: our own copy of the fd; nothing in the child uses it.
        unsafe { libc::close(cgroup.as_raw_fd()) };
        let code = body();
        // SAFETY: the end of the child; _exit runs no destructor of the parent's.
        unsafe { libc::_exit(code as i32) };
    }
    let shown = format!("{}|CLONE_INTO_CGROUP", namespace::flag_names(flags));
    if cloned < 0 {
        let errno = Errno::last();
        if matches!(errno, Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL) {
            detail!(
                7,
                "clone3({{flags = {shown}}}) = -1 {errno}: no CLONE_INTO_CGROUP here; clone, then move the child"
            );
            return None;
        }
        return Some(Err(Error::sys(
            format!("clone3({{flags = {shown}}})"),
            errno,
        )
        .hint(namespace::clone_hint(errno, flags))));
    }
    let pid = Pid::from_raw(cloned as i32);
    narrate!(
        7,
        "clone3({{flags = {shown}, cgroup = {}}}) = {pid}   /* born in its cgroup */",
        cgroup.as_raw_fd()
    );
    Some(Ok(pid))
}

/// The fds the host keeps while a container runs that no process of the
/// container may hold (see [`keep_from_containers`]).
static HOST_ONLY: std::sync::Mutex<Vec<RawFd>> = std::sync::Mutex::new(Vec::new());

/// Say that `fd` (say, a lock on an image layer, held by `run` and its
/// monitor) must be closed in every container child, first thing.
pub fn keep_from_containers(fd: RawFd) {
    HOST_ONLY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(fd);
}

/// In a cloned child: close the fds [`keep_from_containers`] named.
fn close_host_only_fds() {
    let fds = HOST_ONLY.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for fd in fds {
        // SAFETY: this child's copy of an fd the host keeps; nothing here uses it.
        unsafe { libc::close(fd) };
    }
}

/// Two defences, in force until the command is exec'd:
///
/// * not dumpable (prctl(2) PR_SET_DUMPABLE): until exec the child runs the
///   host's stepbox binary inside the container's namespaces, and nothing
///   there may open it through /proc/PID/exe (as CVE-2019-5736 did to runc);
///   exec makes the process dumpable again.
/// * a session of its own (setsid(2)) unless stdin is a terminal the learner
///   types into: a process with no controlling terminal cannot push
///   keystrokes into the caller's shell with ioctl(TIOCSTI). With a
///   terminal, chapter 1 keeps the caller's (it runs the host's own
///   programs); from chapter 2 [`crate::terminal::attach`] starts the
///   session and gives the child a pty of its own instead.
fn harden_until_exec() -> Result<()> {
    nix::sys::prctl::set_dumpable(false).call(|| "prctl(PR_SET_DUMPABLE, 0)".into())?;
    if !nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        narrate!(
            1,
            "setsid()   /* no controlling terminal: nothing to inject keystrokes into */"
        );
        // Fails only for a process group leader, which a fresh child is not.
        let _ = nix::unistd::setsid();
    }
    Ok(())
}

/// Write to one of our own pipes whose reader may be gone (a child that died,
/// or one a racing `rm` killed): that is an error to read elsewhere, never a
/// SIGPIPE that ends stepbox without a word.
fn write_ignoring_sigpipe(mut pipe: &File, bytes: &[u8]) {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: we are single-threaded here; the previous action is put back
    // right after the write.
    let previous = unsafe { signal::sigaction(Signal::SIGPIPE, &ignore) };
    let _ = pipe.write_all(bytes);
    if let Ok(previous) = previous {
        // SAFETY: as above: restores what was there before.
        let _ = unsafe { signal::sigaction(Signal::SIGPIPE, &previous) };
    }
}

/// Block until the parent writes the go byte; end-of-file means it died.
fn wait_for_parent(go: &OwnedFd) -> Result<()> {
    // The parent may be killed at any moment; if so, we die with it.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).call(|| "prctl(PR_SET_PDEATHSIG)".into())?;
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(go, &mut byte) {
            Ok(1) => return Ok(()),
            Ok(_) => {
                return Err(Error::Internal(
                    "the parent died before releasing the child".into(),
                ))
            }
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::sys("read(go pipe)", errno)),
        }
    }
}

/// The child's end of the go pipe once the go byte is read (-1: none).
/// The parent keeps its end open until the child execs, so from then on
/// end-of-file (POLLHUP) on it means the parent died.
static GO_PIPE: AtomicI32 = AtomicI32::new(-1);

/// True if the parent that released this child is gone: its end of the
/// go pipe is closed. (runc compares getppid() with the parent's pid
/// instead; in a new pid namespace getppid() is 0 before and after the
/// parent dies, so here the pipe tells.)
fn parent_died(parent: Pid) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    if nix::unistd::getppid() != parent {
        return true;
    }
    let fd = GO_PIPE.load(Ordering::Relaxed);
    if fd < 0 {
        return false;
    }
    // SAFETY: the child's own copy of the go pipe's read end, open until exec.
    let go = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut fds = [PollFd::new(go, PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1..))
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP))
}

/// After the user switch (`-u`): the kernel clears the death signal
/// whenever the uid or gid changes, so it is set again, as runc does. A
/// parent that died between the switch and now sent no signal: then the
/// child must not go on, orphaned, and ends here.
fn rearm_death_signal(parent: Pid) -> Result<()> {
    narrate!(
        3,
        "prctl(PR_SET_PDEATHSIG, SIGKILL)   /* again: the uid change cleared it */"
    );
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .call(|| "prctl(PR_SET_PDEATHSIG, SIGKILL)".into())?;
    if parent_died(parent) {
        return Err(Error::Internal(
            "the parent died while the child switched user: nothing would stop the container, so it ends here".into(),
        ));
    }
    Ok(())
}

fn parse_report(report: &str) -> Error {
    let (code, message) = report.split_once('\n').unwrap_or(("", report));
    Error::Child {
        message: message.to_string(),
        code: code.parse().unwrap_or(EXIT_SETUP_FAILED),
    }
}

fn kill_and_reap(child: &Child) {
    let _ = signal::kill(child.pid, Signal::SIGKILL);
    let _ = waitpid(child.pid, None);
}

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe; pid is our own child.
        unsafe { libc::kill(pid, sig) };
    }
}

/// From now on, SIGINT, SIGTERM and SIGHUP sent to us go to `pid` instead.
fn forward_signals_to(pid: Pid) -> Result<()> {
    FORWARD_TO.store(pid.as_raw(), Ordering::Relaxed);
    let action = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in FORWARDED {
        // SAFETY: the handler only loads an atomic and calls kill(2).
        unsafe { signal::sigaction(sig, &action) }.call(|| format!("sigaction({sig})"))?;
    }
    Ok(())
}

/// Make sure only fds 0, 1 and 2 reach the command: every other fd is
/// marked close-on-exec, so the exec itself closes them.
pub fn close_extra_fds() -> Result<()> {
    narrate!(1, "close_range(3, ~0U, CLOSE_RANGE_CLOEXEC)");
    // SAFETY: close_range only changes flags on our own fds.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    Err(
        Error::sys("close_range(3, ~0U, CLOSE_RANGE_CLOEXEC)", Errno::last())
            .hint("close_range needs Linux 5.11 or later"),
    )
}

/// Replace this process with `argv`, searched on PATH, keeping our environment
/// (chapter 1 runs the host's programs with the caller's; from chapter 2,
/// [`Command::exec`] sets the container's first).
pub fn exec(argv: &[String]) -> Result<Infallible> {
    // Rust programs ignore SIGPIPE, and an ignored signal stays ignored across
    // exec: give the command the default, so that `yes | head` ends as usual.
    // SAFETY: resetting a signal disposition to its default.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let shown: Vec<String> = argv.iter().map(quote).collect();
    narrate!(1, "execvp({}, [{}])", quote(&argv[0]), shown.join(", "));
    // exec replaces this process, and whatever it had not yet printed.
    crate::narration::flush();
    let c_argv = argv
        .iter()
        .map(|arg| CString::new(arg.as_bytes()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::Invalid(format!("command {argv:?} contains a NUL byte: remove it")))?;
    let errno = match execvp(&c_argv[0], &c_argv) {
        Ok(never) => match never {},
        Err(errno) => errno,
    };
    let (code, hint) = match errno {
        // In a container: perhaps there is nothing at all to find.
        Errno::ENOENT if !crate::rootfs::looks_like_a_root(std::path::Path::new("/")) => {
            (EXIT_NOT_FOUND, crate::rootfs::NOT_A_ROOT)
        }
        Errno::ENOENT => (
            EXIT_NOT_FOUND,
            "no such command: check its spelling, or give its full path",
        ),
        Errno::EACCES => (
            EXIT_CANNOT_EXECUTE,
            "the file is not executable, or a directory on PATH cannot be searched",
        ),
        Errno::ENOEXEC => (EXIT_CANNOT_EXECUTE, "not a program this kernel can run"),
        _ => (EXIT_CANNOT_EXECUTE, "the command could not be started"),
    };
    Err(Error::Child {
        message: Error::sys(format!("execvp({})", quote(&argv[0])), errno)
            .hint(hint)
            .to_string(),
        code,
    })
}

/// `run --try-escapes` (ch5 onwards): set by the container's parent before
/// the clone, so the child has it in its copy of our memory. Every chapter's
/// story then runs as written, up to [`Command::exec`], which tries the
/// escapes instead of exec'ing ([`crate::security::lab`]).
static ESCAPE_LAB: OnceLock<crate::security::lab::Lab> = OnceLock::new();

/// From now on, a container's child runs the escape lab instead of its command.
pub fn try_escapes_instead_of_exec(lab: crate::security::lab::Lab) {
    let _ = ESCAPE_LAB.set(lab);
}

/// What a container's child finally becomes: the command, in its own clean
/// environment, in its working directory, as its user, alone or under
/// stepbox as PID 1 (`--init`) (ch2 onwards; user and working directory
/// from ch3, where images bring a config).
#[derive(Debug, Clone)]
pub struct Command {
    pub argv: Vec<String>,
    pub env: Environment,
    /// Stay PID 1 and run the command as our child ([`crate::init`]).
    pub init: bool,
    /// `uid[:gid]` or `name[:group]`, resolved in the container ([`crate::user`]).
    pub user: Option<String>,
    /// The working directory inside the container, made if missing.
    pub workdir: Option<String>,
}

impl Command {
    /// The command `argv` in `env`, as root in `/`.
    pub fn new(argv: Vec<String>, env: Environment, init: bool) -> Command {
        Command {
            argv,
            env,
            init,
            user: None,
            workdir: None,
        }
    }

    /// The last steps of every container's child, after the switch into its
    /// root: its working directory, its user looked up in the image, its
    /// environment, only fds 0, 1 and 2, the user switch, then exec (or
    /// fork and exec, under `--init`).
    pub fn exec(&self) -> Result<Infallible> {
        if let Some(dir) = &self.workdir {
            enter_workdir(dir)?;
        }
        let user = self.user.as_deref().map(crate::user::resolve).transpose()?;
        let mut env = self.env.clone();
        if let Some(user) = &user {
            env.default_home(&user.home);
        }
        env.apply();
        close_extra_fds()?;
        if let Some(user) = &user {
            let parent = nix::unistd::getppid();
            user.switch()?;
            rearm_death_signal(parent)?;
        }
        // --try-escapes: here, restricted as the command would be, and as it.
        if let Some(lab) = ESCAPE_LAB.get() {
            return crate::security::lab::run(lab);
        }
        if self.init {
            crate::init::exec_as_child(&self.argv)
        } else {
            exec(&self.argv)
        }
    }
}

/// chdir into `dir` inside the container, making it (and its parents) if
/// missing, as Docker does for an image's WorkingDir or `-w`.
fn enter_workdir(dir: &str) -> Result<()> {
    use nix::fcntl::{OpenHow, ResolveFlag};
    narrate!(3, "chdir({})", quote(dir));
    // Resolved inside the container's root and through no magic link
    // (/proc/self/fd/N, /proc/1/cwd): an image's WorkingDir or `-w` never
    // leads out of the root (runc's CVE-2024-21626).
    let how = || {
        OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
    };
    let refused = |errno: Errno| {
        let why = match errno {
            Errno::ELOOP | Errno::EXDEV => " (it leads out of the container's root)",
            _ => "",
        };
        Error::sys(format!("chdir({})", quote(dir)), errno).hint(format!(
            "the working directory must be a directory inside the container{why}: give another -w"
        ))
    };
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|errno| Error::sys("open(\"/\")", errno))?;
    // The deepest part of it that exists, then the rest made, one name at a time.
    let parts: Vec<&str> = dir
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let mut found = None;
    for depth in (0..=parts.len()).rev() {
        let prefix = format!("/{}", parts[..depth].join("/"));
        match crate::dataroot::openat2(&root, prefix.as_str(), how()) {
            Ok(fd) => {
                found = Some((fd, depth));
                break;
            }
            Err(Errno::ENOENT) if depth > 0 => continue,
            Err(errno) => return Err(refused(errno)),
        }
    }
    let (mut here, depth) = found.ok_or_else(|| refused(Errno::ENOENT))?;
    if depth < parts.len() {
        narrate!(
            3,
            "mkdir -p {}   /* the working directory is not in the image */",
            quote(dir)
        );
    }
    for part in &parts[depth..] {
        if *part == ".." {
            return Err(refused(Errno::ENOENT));
        }
        match nix::sys::stat::mkdirat(
            &here,
            *part,
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        ) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(errno) => return Err(refused(errno)),
        }
        here = crate::dataroot::openat2(&here, *part, how()).map_err(refused)?;
    }
    nix::unistd::fchdir(&here).map_err(refused)?;
    Ok(())
}

/// When process `pid` started (clock ticks since boot, /proc/PID/stat field 22),
/// or None if there is no such process (or it has exited and is a zombie). A pid alone names a process only
/// until it exits and the number is reused; pid + start time names it for good.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = stat_fields(pid)?;
    // A zombie (Z) or dead (X) process has exited: it is waiting to be reaped.
    if stat.starts_with(['Z', 'X']) {
        return None;
    }
    stat.split(' ').nth(19)?.parse().ok()
}

/// /proc/PID/stat from field 3 (the state) on. The command name (field 2)
/// is the process's to set, to any bytes (prctl PR_SET_NAME, a write to
/// /proc/self/comm): not UTF-8, spaces, `)`. So the file is read as bytes,
/// and the fields taken after the last `) `: numbers and a state letter.
pub fn stat_fields(pid: i32) -> Option<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    // A few hundred bytes, in one read (and one that says the end): a
    // /proc file says its size is 0, so std's read_to_end would probe for
    // one first, and fstat and lseek it.
    let mut stat = [0u8; 1024];
    let mut length = 0;
    while length < stat.len() {
        match file.read(&mut stat[length..]) {
            Ok(0) => break,
            Ok(n) => length += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let stat = &stat[..length];
    let name_end = stat.windows(2).rposition(|pair| pair == b") ")?;
    String::from_utf8(stat[name_end + 2..].to_vec()).ok()
}

/// Point the command's stdin at `stdin` and its stdout and stderr at `out`
/// (a detached container's log), just before exec.
pub fn redirect_stdio(stdin: &OwnedFd, out: &OwnedFd) -> Result<()> {
    for (fd, target) in [(stdin, 0), (out, 1), (out, 2)] {
        // SAFETY: dup2 onto one of the standard fds of this process.
        if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
            return Err(Error::sys(
                format!("dup2({}, {target})", fd.as_raw_fd()),
                Errno::last(),
            ));
        }
    }
    Ok(())
}

/// What a detached process tells the one that started it.
pub struct Ready {
    pipe: Option<File>,
}

impl Ready {
    /// Report success with a message (e.g. the container's name) and let the
    /// starter go. From here on this process no longer writes to its stderr.
    pub fn ok(&mut self, message: &str) {
        crate::narration::flush();
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.write_all(format!("ok\n{message}").as_bytes());
        }
        silence_stdio();
    }

    /// Report failure (the starter prints the error and exits with its code).
    pub fn fail(&mut self, error: &Error) {
        crate::narration::flush();
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.write_all(format!("{}\n{error}", error.exit_code()).as_bytes());
        }
        silence_stdio();
    }
}

/// Point fds 0, 1 and 2 at /dev/null and stop logging.
fn silence_stdio() {
    log::set_max_level(log::LevelFilter::Off);
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        let null = OwnedFd::from(null);
        let _ = redirect_stdio(&null, &null);
    }
}

/// A process file descriptor for `pid` (pidfd_open(2), Linux 5.3): it names
/// that process, never a later one that reuses its pid, and polls readable
/// once the process has exited.
pub fn pidfd_open(pid: i32) -> std::result::Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = Errno::result(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: just returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Let go of what the process that forked us touched and we will not use
/// again (for the monitor, once its container runs): free heap goes back to
/// the kernel (malloc_trim(3)), and the program's code pages (ours and
/// libc's, mapped read-and-execute, never written) are unmapped from this
/// process with MADV_DONTNEED. They stay in the page cache and come back on
/// first use, so the monitor's resident size is what it still runs: a
/// wait, and the exit record.
pub fn shed_inherited_pages() {
    // SAFETY: malloc_trim only returns free memory of this process's heap.
    unsafe { libc::malloc_trim(0) };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let mut shed = 0usize;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms), _, _, Some(inode), Some(_path)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue; // anonymous
        };
        // Only code from a file: a page it maps is always the file's own.
        if perms != "r-xp" || inode == "0" {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // SAFETY: a private, read-only file mapping: dropping its pages
        // loses nothing, the next access reads them from the file again.
        if unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) }
            == 0
        {
            shed += end - start;
        }
    }
    detail!(
        5,
        "madvise(MADV_DONTNEED) over {} KiB of code the monitor inherited",
        shed / 1024
    );
}

/// Fork a detached process (its own session, stdin and stdout on
/// /dev/null) that runs `body`, and wait only until `body` reports through
/// [`Ready`]. Of the caller's other fds it keeps only `keep` (the image
/// layers' locks, held for the container's life). Returns the reported
/// message, or the reported error.
pub fn detach(
    keep: &[std::os::fd::RawFd],
    body: impl FnOnce(&mut Ready) -> Result<()>,
) -> Result<String> {
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).call(|| "pipe2(ready)".into())?;
    // SAFETY: single-threaded; the forked process runs `body` and exits.
    match unsafe { nix::unistd::fork() }.map_err(|errno| namespace::fork_error("fork()", errno))? {
        nix::unistd::ForkResult::Child => {
            drop(read_end);
            let _ = nix::unistd::setsid();
            // The starter may be read through a pipe until end-of-file: let go of its stdout now.
            if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
                // SAFETY: dup2 onto this process's own stdin and stdout.
                unsafe {
                    libc::dup2(null.as_raw_fd(), 0);
                    libc::dup2(null.as_raw_fd(), 1);
                }
            }
            // Nothing the caller leaked may be held open for the container's
            // lifetime: every fd from 3 up goes, but the pipe and `keep`.
            let mut kept: Vec<u32> = keep.iter().map(|&fd| fd as u32).collect();
            kept.push(write_end.as_raw_fd() as u32);
            kept.sort_unstable();
            let mut from = 3u32;
            for fd in kept.into_iter().filter(|&fd| fd >= 3) {
                if fd > from {
                    // SAFETY: close_range only closes this process's own fds.
                    unsafe { libc::syscall(libc::SYS_close_range, from, fd - 1, 0u32) };
                }
                from = from.max(fd + 1);
            }
            // SAFETY: as above.
            unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0u32) };
            let mut ready = Ready {
                pipe: Some(File::from(write_end)),
            };
            let code = match body(&mut ready) {
                Ok(()) => 0,
                Err(error) => {
                    ready.fail(&error);
                    error.exit_code() as i32
                }
            };
            // SAFETY: end the forked process without running the starter's exit path.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(write_end);
            narrate!(5, "fork() = {child}   /* the monitor: starts the container, waits for it, records its exit */");
            let mut report = String::new();
            let _ = File::from(read_end).read_to_string(&mut report);
            match report.split_once('\n') {
                Some(("ok", message)) => Ok(message.to_string()),
                Some(_) => Err(parse_report(&report)),
                None => Err(Error::Internal(
                    "the monitor process died before the container started".into(),
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_childs_report_is_its_exit_code_then_its_message() {
        let error = parse_report("127\nexecvp(\"x\"): No such file or directory");
        assert_eq!(error.exit_code(), 127);
        assert_eq!(
            error.to_string(),
            "execvp(\"x\"): No such file or directory"
        );
    }

    #[test]
    fn a_report_without_a_code_is_a_setup_failure_with_all_its_text() {
        for report in ["garbled", "x\nmount failed"] {
            let error = parse_report(report);
            assert_eq!(error.exit_code(), EXIT_SETUP_FAILED, "{report:?}");
        }
        assert_eq!(parse_report("garbled").to_string(), "garbled");
    }

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(Exit::Code(3).code(), 3);
        assert_eq!(Exit::Signal(Signal::SIGKILL).code(), 137);
        assert_eq!(Exit::Signal(Signal::SIGTERM).code(), 143);
    }
}
