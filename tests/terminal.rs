//! The caller's terminal (issue 10, section 1; docs/ch2-rootfs.md#the-terminal):
//! from chapter 2 on an interactive run gets a pseudo-terminal of its own,
//! relayed to the caller's, so nothing in the container can push keystrokes
//! into the caller's shell; the caller's terminal is always put back.
//!
//! Each test opens a real pty and runs the chapter with its slave as stdin,
//! stdout, stderr and controlling terminal, as a shell would; the test plays
//! the terminal emulator (the master) and the caller's shell (what is left to
//! read on the slave afterwards).

mod support;

use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::{chown_to_sandbox_user, kill_group, mount_table, open_pty, Sandbox, Who};

const CH1: &str = env!("CARGO_BIN_EXE_ch1-mount-ns");
const CH2: &str = env!("CARGO_BIN_EXE_ch2-rootfs");
const CH5: &str = env!("CARGO_BIN_EXE_ch5-commit");

/// What a program in the container pushes into its terminal with TIOCSTI.
const INJECTED: &str = "echo INJECTED\n";

const HELPER_SOURCE: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
/* tiocsti TEXT: push TEXT into the input of the terminal on fd 0, as if typed. */
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    for (const char *c = argv[1]; *c; c++) {
        if (ioctl(0, TIOCSTI, c) < 0) {
            printf("TIOCSTI: %s\n", strerror(errno));
            return 1;
        }
    }
    printf("pushed\n");
    return 0;
}
"#;

/// A static `tiocsti` binary, compiled once per test run with the host's cc.
fn helper() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
            let binary = dir.join("tiocsti");
            let partial = dir.join(format!("tiocsti.{}", std::process::id()));
            let source = dir.join(format!("tiocsti.{}.c", std::process::id()));
            fs::write(&source, HELPER_SOURCE).unwrap();
            let built = Command::new("cc")
                .args(["-static", "-O1", "-o"])
                .arg(&partial)
                .arg(&source)
                .status()
                .unwrap_or_else(|e| {
                    panic!("cc (to build the TIOCSTI helper): {e}: apt-get install gcc libc6-dev")
                });
            assert!(
                built.success(),
                "cc -static failed: apt-get install gcc libc6-dev"
            );
            fs::remove_file(&source).unwrap();
            fs::rename(&partial, &binary).unwrap();
            binary
        })
        .clone()
}

/// The busybox image plus /bin/tiocsti, as a tarball in the sandbox.
fn image_with_helper(sandbox: &Sandbox) -> PathBuf {
    let busybox = support::busybox_image();
    let path = sandbox.path().join("tiocsti.tar");
    let mut builder = tar::Builder::new(fs::File::create(&path).unwrap());
    let mut archive = tar::Archive::new(fs::File::open(busybox).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        builder.append(&header, &mut entry).unwrap();
    }
    let bytes = fs::read(helper()).unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    builder
        .append_data(&mut header, "bin/tiocsti", bytes.as_slice())
        .unwrap();
    builder.finish().unwrap();
    chown_to_sandbox_user(sandbox, &path);
    path
}

fn termios_of(fd: &OwnedFd) -> libc::termios {
    // SAFETY: an all-zero termios is a valid value for tcgetattr to overwrite.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr writes one struct termios through the pointer.
    let rc = unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) };
    assert_eq!(rc, 0, "tcgetattr: {}", std::io::Error::last_os_error());
    t
}

/// The fields of a termios that say how the terminal behaves.
fn modes(t: &libc::termios) -> (u32, u32, u32, u32, Vec<u8>) {
    (t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag, t.c_cc.to_vec())
}

/// The caller's terminal, as the test plays it: a pty whose master the test
/// reads (the screen) and writes (the keyboard), and whose slave the chapter
/// runs on as a shell's child would.
struct Terminal {
    master: Arc<OwnedFd>,
    slave: OwnedFd,
    screen: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Terminal {
    fn new(rows: u16, cols: u16) -> Terminal {
        let (master, slave) = open_pty(rows, cols);
        let master = Arc::new(master);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (master, screen, stop) = (master.clone(), screen.clone(), stop.clone());
            // Reads the screen all along: a full pty would block the chapter.
            thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let mut fds = [libc::pollfd {
                        fd: master.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    }];
                    // SAFETY: poll reads and writes the one pollfd we pass.
                    if unsafe { libc::poll(fds.as_mut_ptr(), 1, 50) } <= 0 {
                        continue;
                    }
                    // SAFETY: read into our buffer, at most its length.
                    let n = unsafe {
                        libc::read(master.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len())
                    };
                    if n > 0 {
                        screen
                            .lock()
                            .unwrap()
                            .extend_from_slice(&buffer[..n as usize]);
                    } else {
                        thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        };
        Terminal {
            master,
            slave,
            screen,
            stop,
            reader: Some(reader),
        }
    }

    /// Chapter `bin` with `args`, run by the sandbox's user on this terminal:
    /// its stdin, stdout, stderr and controlling terminal, in a session of its own.
    fn command(&self, sandbox: &Sandbox, bin: &str, args: &[&str]) -> Command {
        // The sandbox's command (its binary, environment, user), rebuilt
        // without the process group it puts the chapter in: a session leader
        // cannot be one, and only a session leader takes a terminal.
        let template = sandbox.command(bin, args);
        let mut command = Command::new(template.get_program());
        command.args(template.get_args());
        for (key, value) in template.get_envs() {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        if let Some(dir) = template.get_current_dir() {
            command.current_dir(dir);
        }
        if sandbox.rootless() && support::suite_is_root() {
            let id = support::unprivileged_id();
            command.uid(id).gid(id);
        }
        for (fd, stdio) in [0, 1, 2].map(|fd| (fd, self.slave.try_clone().unwrap())) {
            let stdio = Stdio::from(stdio);
            match fd {
                0 => command.stdin(stdio),
                1 => command.stdout(stdio),
                _ => command.stderr(stdio),
            };
        }
        // SAFETY: setsid and ioctl are async-signal-safe; nothing is allocated.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
    }

    /// Everything shown on the screen so far, with the pty's CRs taken out.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).replace('\r', "")
    }

    /// Wait until the screen shows `text` (within 60 s).
    fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.screen().contains(text) {
            assert!(
                Instant::now() < deadline,
                "{text:?} never shown; the screen:\n{}",
                self.screen()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait until the screen has stopped changing (the reader thread may
    /// still hold the last bytes the run wrote), for 2 s at most.
    fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = self.screen().len();
        let mut quiet = 0;
        while quiet < 3 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(30));
            let now = self.screen().len();
            quiet = if now == last { quiet + 1 } else { 0 };
            last = now;
        }
    }

    /// Type `keys` on the keyboard.
    fn type_keys(&self, keys: &str) {
        let mut master = fs::File::from(self.master.try_clone().unwrap());
        master.write_all(keys.as_bytes()).unwrap();
    }

    /// What the caller's shell would read next from its terminal (waits a
    /// little for a complete line): what reached the caller's input queue.
    fn caller_input(&self) -> String {
        let mut fds = [libc::pollfd {
            fd: self.slave.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: poll reads and writes the one pollfd we pass.
        if unsafe { libc::poll(fds.as_mut_ptr(), 1, 500) } <= 0 {
            return String::new();
        }
        let mut buffer = [0u8; 4096];
        // SAFETY: read into our buffer, at most its length.
        let n = unsafe {
            libc::read(
                self.slave.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
            )
        };
        String::from_utf8_lossy(&buffer[..n.max(0) as usize]).into_owned()
    }

    fn modes(&self) -> (u32, u32, u32, u32, Vec<u8>) {
        modes(&termios_of(&self.slave))
    }

    /// Run `command` to its end (within 120 s): its exit status.
    fn run(&self, mut command: Command) -> std::process::ExitStatus {
        // A binary another test thread just copied may still be open for
        // writing in a process it forks (until that execs): ETXTBSY, retry.
        let mut child = (0..200)
            .find_map(|_| match command.spawn() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    thread::sleep(Duration::from_millis(10));
                    None
                }
                result => Some(result.expect("start the chapter on the pty")),
            })
            .expect("the chapter binary stayed busy (ETXTBSY)");
        drop(command);
        let deadline = Instant::now() + support::RUN_LIMIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.settle();
                return status;
            }
            if Instant::now() > deadline {
                kill_group(child.id());
                let _ = child.wait();
                panic!("the run took too long; the screen:\n{}", self.screen());
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn sandbox(who: Who) -> Sandbox {
    let sandbox = Sandbox::new(who);
    sandbox.with_busybox();
    sandbox
}

fn str_of(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `legacy_tiocsti` is 1, or absent (a kernel before 6.2): TIOCSTI works for
/// a process on its controlling terminal without CAP_SYS_ADMIN.
fn tiocsti_allowed() -> bool {
    fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti").map_or(true, |v| v.trim() == "1")
}

// Claim 1: a program in the container that pushes a command into its
// terminal with TIOCSTI reaches only the container's own pty: the caller's
// shell finds nothing to read after the run. The control, chapter 1 (which
// keeps the caller's terminal on purpose), shows the same push does reach it.
fn claim_tiocsti_cannot_reach_the_callers_shell(who: Who) {
    let sandbox = sandbox(who);
    let image = image_with_helper(&sandbox);
    let terminal = Terminal::new(24, 80);
    let command = terminal.command(
        &sandbox,
        CH2,
        &[
            "-q",
            "--image",
            str_of(&image),
            "--",
            "sh",
            "-c",
            &format!("tiocsti '{INJECTED}'; tty"),
        ],
    );
    let status = terminal.run(command);
    assert_eq!(
        terminal.caller_input(),
        "",
        "the injection reached the caller: {}",
        terminal.screen()
    );
    assert_eq!(status.code(), Some(0), "{}", terminal.screen());
    // It did push: into its own pty, /dev/pts/0 of its own devpts.
    assert!(
        terminal.screen().contains("pushed\n/dev/pts/0\n"),
        "{}",
        terminal.screen()
    );
}
root_and_rootless!(claim_tiocsti_cannot_reach_the_callers_shell: tiocsti_cannot_reach_the_callers_shell, rootless_tiocsti_cannot_reach_the_callers_shell);

fn claim_without_a_pty_tiocsti_reaches_the_callers_shell(who: Who) {
    if !tiocsti_allowed() && who == Who::Unprivileged {
        eprintln!("legacy_tiocsti is 0: TIOCSTI needs CAP_SYS_ADMIN, no rootless control here");
        return;
    }
    let sandbox = Sandbox::new(who);
    // Outside /tmp, which chapter 1 hides behind a tmpfs of its own (the
    // build directory, and so the helper, may well be under /tmp).
    let outside = tempfile::Builder::new()
        .prefix("stepbox-test-")
        .tempdir_in("/var/tmp")
        .expect("a scratch directory in /var/tmp");
    fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let helper = outside.path().join("tiocsti");
    // A hard link, not a copy: a copy's open fd could reach a child another
    // test thread forks, and the exec would then fail with ETXTBSY.
    if fs::hard_link(self::helper(), &helper).is_err() {
        fs::copy(self::helper(), &helper).unwrap();
        thread::sleep(Duration::from_millis(200));
    }
    let terminal = Terminal::new(24, 80);
    let command = terminal.command(&sandbox, CH1, &["-q", "--", str_of(&helper), INJECTED]);
    let status = terminal.run(command);
    assert_eq!(status.code(), Some(0), "{}", terminal.screen());
    assert_eq!(terminal.caller_input(), INJECTED, "{}", terminal.screen());
}
root_and_rootless!(claim_without_a_pty_tiocsti_reaches_the_callers_shell: without_a_pty_tiocsti_reaches_the_callers_shell, rootless_without_a_pty_tiocsti_reaches_the_callers_shell);

// Claim 2: the container's terminal has the caller's window size.
fn claim_the_window_size_is_the_callers(who: Who) {
    let sandbox = sandbox(who);
    let terminal = Terminal::new(37, 101);
    let command = terminal.command(&sandbox, CH2, &["-q", "--", "stty", "size"]);
    let status = terminal.run(command);
    assert_eq!(status.code(), Some(0), "{}", terminal.screen());
    assert_eq!(terminal.screen(), "37 101\n");
}
root_and_rootless!(claim_the_window_size_is_the_callers: the_window_size_is_the_callers, rootless_the_window_size_is_the_callers);

// ...and follows it when the caller's window is resized (SIGWINCH).
fn claim_a_resize_reaches_the_container(who: Who) {
    let sandbox = sandbox(who);
    let terminal = Terminal::new(24, 80);
    let script = "stty size; echo READY; read line; stty size";
    let command = terminal.command(&sandbox, CH2, &["-q", "--", "sh", "-c", script]);
    let mut child = command_spawn(command);
    terminal.wait_for("READY\n");
    let size = libc::winsize {
        ws_row: 50,
        ws_col: 132,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one struct winsize; the kernel then sends
    // SIGWINCH to the terminal's foreground process group, the chapter's.
    let rc = unsafe { libc::ioctl(terminal.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    thread::sleep(Duration::from_millis(300));
    terminal.type_keys("\r");
    let status = wait(&mut child, &terminal);
    assert_eq!(status.code(), Some(0), "{}", terminal.screen());
    assert!(
        terminal.screen().ends_with("50 132\n"),
        "{}",
        terminal.screen()
    );
    assert!(
        terminal.screen().starts_with("24 80\n"),
        "{}",
        terminal.screen()
    );
}
root_and_rootless!(claim_a_resize_reaches_the_container: a_resize_reaches_the_container, rootless_a_resize_reaches_the_container);

// Claim 3: the caller's terminal is raw while the container runs (keys go
// through as typed) and is put back exactly as it was: after a normal exit,
// after the command fails, after SIGTERM to the stepbox parent, after a
// deadly signal it does not forward (SIGUSR1), and when the
// command cannot even start.
fn claim_the_callers_terminal_is_restored(who: Who) {
    let sandbox = sandbox(who);
    let cases: [(&str, &str, i32); 4] = [
        ("normal", "echo READY; read line; echo \"got $line\"", 0),
        ("failing", "echo READY; read line; exit 3", 3),
        (
            "sigterm",
            "trap 'echo TERMINATED; exit 7' TERM; echo READY; sleep 100 & wait",
            7,
        ),
        // Not forwarded, deadly by default: stepbox dies of it (its child
        // with it, PR_SET_PDEATHSIG), the caller's terminal put back first.
        ("sigusr1", "echo READY; sleep 100", 128 + libc::SIGUSR1),
    ];
    for (case, script, code) in cases {
        let terminal = Terminal::new(24, 80);
        let before = terminal.modes();
        let command = terminal.command(&sandbox, CH2, &["-q", "--", "sh", "-c", script]);
        let mut child = command_spawn(command);
        terminal.wait_for("READY\n");
        let during = termios_of(&terminal.slave);
        assert_eq!(
            during.c_lflag & (libc::ICANON | libc::ECHO | libc::ISIG),
            0,
            "{case}: the caller's terminal is not raw during the run"
        );
        let signal = match case {
            "sigterm" => Some(libc::SIGTERM),
            "sigusr1" => Some(libc::SIGUSR1),
            _ => None,
        };
        match signal {
            // SAFETY: kill(2) on the chapter's parent process, which we started.
            Some(sig) => unsafe {
                libc::kill(child.id() as i32, sig);
            },
            None => terminal.type_keys("hello\r"),
        }
        let status = wait(&mut child, &terminal);
        let ended = status.code().or(status.signal().map(|sig| 128 + sig));
        assert_eq!(ended, Some(code), "{case}: {}", terminal.screen());
        if case == "normal" {
            assert!(
                terminal.screen().contains("got hello\n"),
                "{}",
                terminal.screen()
            );
        }
        assert_eq!(
            terminal.modes(),
            before,
            "{case}: the terminal was not restored"
        );
    }
    let terminal = Terminal::new(24, 80);
    let before = terminal.modes();
    let command = terminal.command(&sandbox, CH2, &["-q", "--", "/no/such/command"]);
    assert_eq!(
        terminal.run(command).code(),
        Some(127),
        "{}",
        terminal.screen()
    );
    assert_eq!(
        terminal.modes(),
        before,
        "not found: the terminal was not restored"
    );
}
root_and_rootless!(claim_the_callers_terminal_is_restored: the_callers_terminal_is_restored, rootless_the_callers_terminal_is_restored);

/// Start the chapter on the pty (retried while its copy in the sandbox is
/// busy, as every test's start is: see support::spawn).
fn command_spawn(mut command: Command) -> std::process::Child {
    support::spawn(&mut command)
}

fn wait(child: &mut std::process::Child, terminal: &Terminal) -> std::process::ExitStatus {
    let deadline = Instant::now() + support::RUN_LIMIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            // The reader thread may not have taken the last bytes off the screen yet.
            terminal.settle();
            return status;
        }
        if Instant::now() > deadline {
            kill_group(child.id());
            let _ = child.wait();
            panic!("the run took too long; the screen:\n{}", terminal.screen());
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The script that shows the container's terminal and /dev, and its output's shape.
const SHOW_TERMINAL: &str = "ls -l /proc/self/fd/0; tty; ls -1 /dev/pts; \
     ls -1d /dev/shm /dev/mqueue; \
     awk 'index($5, \"/dev/\") == 1 { i = 7; while ($i != \"-\") i++; print $5, $(i + 1) }' /proc/self/mountinfo";

fn assert_own_terminal(screen: &str) {
    assert!(
        screen.contains("/proc/self/fd/0 -> /dev/pts/0\n/dev/pts/0\n0\nptmx\n"),
        "not the container's own /dev/pts/0:\n{screen}"
    );
    assert!(screen.contains("/dev/mqueue\n/dev/shm\n"), "{screen}");
    for mount in ["/dev/pts devpts", "/dev/shm tmpfs", "/dev/mqueue mqueue"] {
        assert!(screen.lines().any(|l| l == mount), "no {mount}:\n{screen}");
    }
}

// Claim 4: stdin is /dev/pts/0 of the container's own devpts (which lists
// no pty of the host's), `tty` says so, and /dev has shm and mqueue.
fn claim_stdin_is_the_containers_own_pty(who: Who) {
    let sandbox = sandbox(who);
    let terminal = Terminal::new(24, 80);
    let command = terminal.command(&sandbox, CH2, &["-q", "--", "sh", "-c", SHOW_TERMINAL]);
    let status = terminal.run(command);
    assert_eq!(status.code(), Some(0), "{}", terminal.screen());
    assert_own_terminal(&terminal.screen());
}
root_and_rootless!(claim_stdin_is_the_containers_own_pty: stdin_is_the_containers_own_pty, rootless_stdin_is_the_containers_own_pty);

// Claim 5: chapter 5's `run -it` and `exec -it` get the same: a pty of the
// container's devpts, and a TIOCSTI that stays in it; `run -d` gets none.
fn claim_ch5_run_and_exec_get_their_own_pty(who: Who) {
    let sandbox = sandbox(who);
    let image = image_with_helper(&sandbox);
    let script = format!("{SHOW_TERMINAL}; tiocsti '{INJECTED}'");

    let terminal = Terminal::new(24, 80);
    let command = terminal.command(
        &sandbox,
        CH5,
        &[
            "-q",
            "run",
            "-it",
            "--rm",
            str_of(&image),
            "sh",
            "-c",
            &script,
        ],
    );
    let status = terminal.run(command);
    assert_eq!(
        terminal.caller_input(),
        "",
        "run -it: the injection reached the caller: {}",
        terminal.screen()
    );
    assert_eq!(status.code(), Some(0), "run -it: {}", terminal.screen());
    assert_own_terminal(&terminal.screen());
    assert!(
        terminal.screen().contains("pushed\n"),
        "{}",
        terminal.screen()
    );

    let started = sandbox.run(
        CH5,
        &[
            "-q",
            "run",
            "-d",
            "--name",
            "box",
            str_of(&image),
            "sleep",
            "1000",
        ],
    );
    started.assert_ok();
    let terminal = Terminal::new(24, 80);
    let command = terminal.command(
        &sandbox,
        CH5,
        &["-q", "exec", "-it", "box", "sh", "-c", &script],
    );
    let status = terminal.run(command);
    assert_eq!(
        terminal.caller_input(),
        "",
        "exec -it: the injection reached the caller: {}",
        terminal.screen()
    );
    assert_eq!(status.code(), Some(0), "exec -it: {}", terminal.screen());
    assert_own_terminal(&terminal.screen());
    assert!(
        terminal.screen().contains("pushed\n"),
        "{}",
        terminal.screen()
    );
    sandbox.run(CH5, &["-q", "rm", "-f", "box"]).assert_ok();

    // run -d from a terminal: the container never has one, and the
    // caller's terminal is left as it was.
    let terminal = Terminal::new(24, 80);
    let before = terminal.modes();
    let command = terminal.command(
        &sandbox,
        CH5,
        &[
            "-q",
            "run",
            "-d",
            "--name",
            "bg",
            str_of(&image),
            "sh",
            "-c",
            "tty",
        ],
    );
    assert_eq!(
        terminal.run(command).code(),
        Some(0),
        "{}",
        terminal.screen()
    );
    assert_eq!(
        terminal.modes(),
        before,
        "run -d changed the caller's terminal"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let logs = loop {
        let logs = sandbox.run(CH5, &["-q", "logs", "bg"]);
        if !logs.stdout.is_empty() || Instant::now() > deadline {
            break logs.stdout;
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(logs, "not a tty\n");
    sandbox.run(CH5, &["-q", "rm", "-f", "bg"]).assert_ok();
}
root_and_rootless!(claim_ch5_run_and_exec_get_their_own_pty: ch5_run_and_exec_get_their_own_pty, rootless_ch5_run_and_exec_get_their_own_pty);

// Claim 6: without a terminal on stdin nothing changes: the command leads a
// session of its own, with no controlling terminal, and the narration says so.
fn claim_non_interactive_runs_have_no_terminal(who: Who) {
    let sandbox = sandbox(who);
    let out = sandbox.run(
        CH2,
        &["--", "sh", "-c", "tty; cut -d' ' -f1,6,7 /proc/$$/stat"],
    );
    out.assert_ok();
    // pid 1, session 1 (its own), tty_nr 0 (none).
    assert_eq!(out.stdout, "not a tty\n1 1 0\n");
    assert!(out.stderr.contains(
        "[child ] setsid()   /* no controlling terminal: nothing to inject keystrokes into */\n"
    ));
    assert!(!out.stderr.contains("TIOCSCTTY"), "{}", out.stderr);
    assert!(!out.stderr.contains("tcsetattr"), "{}", out.stderr);
}
root_and_rootless!(claim_non_interactive_runs_have_no_terminal: non_interactive_runs_have_no_terminal, rootless_non_interactive_runs_have_no_terminal);

// The narration teaches the pty's calls in C form, as chapter 2's.
#[test]
fn the_pty_calls_are_narrated() {
    let sandbox = sandbox(Who::Caller);
    let terminal = Terminal::new(24, 80);
    let command = terminal.command(&sandbox, CH2, &["--", "true"]);
    let status = terminal.run(command);
    assert_eq!(status.code(), Some(0), "{}", terminal.screen());
    let screen = terminal.screen();
    let mut at = 0;
    for line in [
        "[parent] socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0)",
        "mount(\"devpts\", ",
        "\"devpts\", MS_NOSUID|MS_NOEXEC, \"newinstance,ptmxmode=0666,mode=0620\")",
        "mount(\"shm\", ",
        "mount(\"mqueue\", ",
        "pivot_root(",
        "[child ] posix_openpt(O_RDWR|O_NOCTTY)",
        "[child ] unlockpt(master)",
        "[child ] ioctl(master, TIOCGPTPEER, O_RDWR|O_NOCTTY) = slave   /* /dev/pts/0,",
        "[child ] ioctl(slave, TIOCSWINSZ, { .ws_row = 24, .ws_col = 80 })",
        "[child ] sendmsg(console, SCM_RIGHTS [master])",
        "[child ] setsid()   /* a session of our own",
        "[child ] ioctl(slave, TIOCSCTTY, 0)",
        "[child ] dup2(slave, 0); dup2(slave, 1); dup2(slave, 2)",
        "[parent] tcsetattr(0, TCSANOW, &raw)",
        "[parent] tcsetattr(0, TCSANOW, &saved)",
    ] {
        let found = screen[at..]
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} missing or out of order in:\n{screen}"));
        at += found + line.len();
    }
    assert!(!screen.contains("no controlling terminal"), "{screen}");
}

// No test leaves a mount behind on the host.
#[test]
fn interactive_runs_leave_no_mount_on_the_host() {
    let before = mount_table();
    let sandbox = sandbox(Who::Caller);
    let terminal = Terminal::new(24, 80);
    let command = terminal.command(&sandbox, CH2, &["-q", "--", "true"]);
    assert_eq!(terminal.run(command).code(), Some(0));
    support::assert_mount_table_unchanged(&before);
}

// Claim 6 (PID 1, docs/ch2-rootfs.md#pid-1): Ctrl-C on the terminal does
// not stop `sleep` as PID 1 (the kernel drops a signal PID 1 has no handler
// for); under --init it ends the run at once with 130, because the command
// runs in the terminal's foreground process group and stepbox is PID 1.
fn claim_ctrl_c_ends_the_command_only_under_init(who: Who) {
    let sandbox = sandbox(who);
    for init in [false, true] {
        let terminal = Terminal::new(24, 80);
        let mut args = vec!["-q"];
        if init {
            args.push("--init");
        }
        args.extend(["--", "sh", "-c", "echo READY; exec sleep 300"]);
        let mut child = command_spawn(terminal.command(&sandbox, CH2, &args));
        terminal.wait_for("READY\n");
        thread::sleep(Duration::from_millis(200));
        let pressed = Instant::now();
        terminal.type_keys("\x03");
        if init {
            let status = wait(&mut child, &terminal);
            assert_eq!(status.code(), Some(130), "{}", terminal.screen());
            assert!(
                pressed.elapsed() < Duration::from_secs(5),
                "{:?}",
                pressed.elapsed()
            );
        } else {
            thread::sleep(Duration::from_secs(1));
            assert!(
                child.try_wait().unwrap().is_none(),
                "Ctrl-C stopped sleep as PID 1: {}",
                terminal.screen()
            );
            kill_group(child.id());
            let _ = child.wait();
        }
    }
}
root_and_rootless!(claim_ctrl_c_ends_the_command_only_under_init: ctrl_c_ends_the_command_only_under_init, rootless_ctrl_c_ends_the_command_only_under_init);

// Claim 7 (docs/ch2-rootfs.md#the-environment): with a terminal the command
// gets TERM=xterm, as `docker run -t` gives it, whatever the caller's TERM;
// `-e TERM=...` wins. Without a terminal there is no TERM.
fn claim_a_terminal_brings_term_xterm(who: Who) {
    let sandbox = sandbox(who);
    for (options, expected) in [
        (&[][..], "[xterm]\n"),
        (&["-e", "TERM=vt100"][..], "[vt100]\n"),
    ] {
        let terminal = Terminal::new(24, 80);
        let mut args = vec!["-q"];
        args.extend(options);
        args.extend(["--", "sh", "-c", "echo \"[$TERM]\""]);
        let mut command = terminal.command(&sandbox, CH2, &args);
        command.env("TERM", "caller-terminal");
        assert_eq!(
            terminal.run(command).code(),
            Some(0),
            "{}",
            terminal.screen()
        );
        assert_eq!(terminal.screen(), expected);
    }
    let mut command = sandbox.command(CH2, &["-q", "--", "sh", "-c", "echo \"[$TERM]\""]);
    command.env("TERM", "caller-terminal");
    let outcome = support::run(command);
    outcome.assert_ok();
    assert_eq!(outcome.stdout, "[]\n");
}
root_and_rootless!(claim_a_terminal_brings_term_xterm: a_terminal_brings_term_xterm, rootless_a_terminal_brings_term_xterm);
