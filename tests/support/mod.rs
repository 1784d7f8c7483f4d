//! Helpers every chapter's tests share: run a chapter binary (as the caller
//! or as an unprivileged uid) in a sandbox directory, with a time limit, and
//! compare the host's mount table before and after.
//!
//! Nothing a test starts outlives it: a run that overstays its limit, and a
//! background run whose guard is dropped (also when a test panics), is killed
//! with its whole process group, and the sandbox directory is removed.

#![allow(dead_code)] // each test file uses a different part of this module

pub mod ch7;
pub mod guest;
pub mod oci;
pub mod tarballs;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long one chapter run may take before the test kills it and fails.
pub const RUN_LIMIT: Duration = Duration::from_secs(120);

/// One test per user, from one claim function: as the caller (root in CI)
/// and as an unprivileged uid, as ripgrep's `rgtest!` runs each test twice:
/// `root_and_rootless!(claim_x: x_holds, rootless_x_holds);`
/// A claim that takes arguments before its `Who` (the chapter binary it
/// proves the claim of, say) names them in parentheses:
/// `root_and_rootless!(lifecycle::claim_x(CH5): x_holds, rootless_x_holds);`
#[macro_export]
macro_rules! root_and_rootless {
    ($claim:ident: $root:ident, $rootless:ident) => {
        $crate::root_and_rootless!($claim(): $root, $rootless);
    };
    ($($claim:ident)::+ ($($arg:expr),*): $root:ident, $rootless:ident) => {
        #[test]
        fn $root() {
            $($claim)::+($($arg,)* $crate::support::Who::Caller);
        }
        #[test]
        fn $rootless() {
            $($claim)::+($($arg,)* $crate::support::Who::Unprivileged);
        }
    };
}

/// A chapter's whole set of tests, from the claim functions of `module`,
/// each given `chapter` (so that a later chapter re-proves an earlier one's
/// claims against its own binary). Each line makes the tests of one claim:
/// `fn name();` one test, as the caller, of claim `module::name(chapter)`;
/// `claim: fn name(), fn rootless_name();` a root/rootless pair, from
/// `root_and_rootless!`, of `module::claim(chapter, who)`. The test names are
/// written out as `fn name(` so that tests/docs.rs finds those the docs'
/// claims tables cite.
/// ```ignore
/// chapter_tests! {
///     lifecycle for CH5;
///     claim_exec: fn exec_errors_are_clear(), fn rootless_exec_errors_are_clear();
///     fn stop_kills_a_pid_1_that_ignores_sigterm();
/// }
/// ```
#[macro_export]
macro_rules! chapter_tests {
    ($module:ident for $chapter:expr; $($line:tt)*) => {
        $crate::chapter_tests!(@lines $module, $chapter; $($line)*);
    };
    (@lines $module:ident, $chapter:expr;) => {};
    (@lines $module:ident, $chapter:expr; fn $test:ident(); $($rest:tt)*) => {
        #[test]
        fn $test() {
            $module::$test($chapter);
        }
        $crate::chapter_tests!(@lines $module, $chapter; $($rest)*);
    };
    (@lines $module:ident, $chapter:expr;
        $claim:ident: fn $root:ident(), fn $rootless:ident(); $($rest:tt)*) => {
        $crate::root_and_rootless!($module::$claim($chapter): $root, $rootless);
        $crate::chapter_tests!(@lines $module, $chapter; $($rest)*);
    };
}

/// Chapter 5's lifecycle claims (tests/lifecycle/), as tests of the
/// chapter binary `$chapter`: what every chapter from 5 on re-proves.
/// A claim added to chapter 5 is re-run by every later chapter.
#[macro_export]
macro_rules! lifecycle_claims {
    ($chapter:expr) => {
        $crate::chapter_tests! {
            lifecycle for $chapter;
            claim_end_to_end: fn run_exec_commit_stop_rm_and_run_the_new_image(),
                fn rootless_run_exec_commit_stop_rm_and_run_the_new_image();
            claim_ps_and_logs: fn ps_shows_status_and_exit_codes_and_logs_show_output(),
                fn rootless_ps_shows_status_and_exit_codes_and_logs_show_output();
            fn stop_kills_a_pid_1_that_ignores_sigterm();
            fn a_reused_pid_is_never_signalled();
            claim_bad_names: fn bad_names_are_refused_and_nothing_is_created(),
                fn rootless_bad_names_are_refused_and_nothing_is_created();
            fn twenty_parallel_runs_with_one_name_make_one_container();
            fn commit_stores_symlinks_and_never_follows_them();
            claim_exec: fn exec_errors_are_clear_and_its_exit_code_propagates(),
                fn rootless_exec_errors_are_clear_and_its_exit_code_propagates();
            fn rm_refuses_running_and_cleans_half_created();
            fn a_killed_monitor_takes_its_container_down();
            fn a_killed_monitor_takes_down_a_container_run_as_another_user();
            fn a_detached_container_holds_only_dev_null_and_its_log();
            fn the_monitor_locks_the_log_while_its_container_runs();
            fn a_container_that_cannot_start_leaves_nothing_behind();
            fn run_d_rm_removes_the_container_when_it_ends();
            fn without_a_name_run_generates_one();
            fn exec_runs_inside_the_containers_pid_namespace();
            fn without_a_terminal_dash_i_t_make_no_pty();
            fn commit_keeps_hard_links_skips_devices_and_deleted_files();
            fn rm_waits_for_the_containers_lock();
            fn a_foreground_run_keeps_its_record_until_rm();
            fn stop_ends_top_at_once_with_143();
            fn ps_columns_fit_their_widest_value();
            fn a_forged_id_in_state_json_is_refused();
            fn rm_removes_a_created_container_whose_creator_is_gone();
        }
    };
}

/// A chapter binary under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chapter {
    /// Its path: `env!("CARGO_BIN_EXE_ch5-commit")`.
    pub bin: &'static str,
    /// Its name, which starts each error it prints (`ch5-commit: ...`).
    pub name: &'static str,
}

impl Chapter {
    /// The line the chapter prints for an error: its name, then `message`.
    pub fn error_line(&self, message: &str) -> String {
        format!("{}: {message}", self.name)
    }
}

/// Who runs the chapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Whoever runs the test suite (root in CI).
    Caller,
    /// An ordinary user: when the suite runs as root, a uid with no
    /// privileges chosen here; otherwise the caller, who is one already.
    Unprivileged,
}

/// The uid (and gid) the rootless tests run as when the suite runs as root:
/// the first id from 61000 up that no account on this machine uses.
pub fn unprivileged_id() -> u32 {
    let used = |id: u32| {
        ["/etc/passwd", "/etc/group"].iter().any(|file| {
            fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .any(|line| line.split(':').nth(2) == Some(&id.to_string()))
        })
    };
    (61000..65000)
        .find(|id| !used(*id))
        .expect("no free uid in 61000..65000")
}

/// Say that the running test cannot run here, and why. It is printed and
/// recorded (in STEPBOX_SKIP_LOG, which scripts/test.sh sets), and the
/// suite's closing line counts the test as skipped, not passed. The
/// caller returns right after.
pub fn skip(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed test)")
        .to_string();
    eprintln!("skipped: {test}: {why}");
    if let Some(log) = std::env::var_os("STEPBOX_SKIP_LOG") {
        use std::io::Write;
        let recorded = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log)
            .and_then(|mut file| writeln!(file, "{test}\t{why}"));
        if let Err(e) = recorded {
            panic!("recording the skip of {test} in {log:?}: {e}");
        }
    }
}

/// Run the real tool `program` (from the Debian package `package`) and
/// return what it printed; a missing tool fails with the install line.
pub fn tool(program: &str, args: &[&str], package: &str) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}: apt-get install {package}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// True when the suite itself runs as root.
pub fn suite_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A temporary directory owned by whoever runs the chapter, holding its data
/// root, its HOME and (for an unprivileged uid) its own copy of the binary.
pub struct Sandbox {
    dir: tempfile::TempDir,
    /// The uid to switch to, when the suite is root and the test wants a user.
    switch_to: Option<u32>,
}

impl Sandbox {
    pub fn new(who: Who) -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("stepbox-test-")
            .tempdir()
            .expect("create sandbox dir");
        let switch_to = (who == Who::Unprivileged && suite_is_root()).then(unprivileged_id);
        if let Some(id) = switch_to {
            chown(dir.path(), Some(id), Some(id)).expect("chown sandbox to the test uid");
            // Where the chapter binaries are copied: the build directory may
            // sit under a home the test uid cannot enter.
            fs::create_dir(dir.path().join("bin")).unwrap();
        }
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        Sandbox { dir, switch_to }
    }

    /// The sandbox directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The data root the chapter is told to use (`STEPBOX_ROOT`).
    pub fn data_root(&self) -> PathBuf {
        self.path().join("data")
    }

    /// Give this sandbox's data root the busybox image, provisioned once per
    /// test binary (so the tests do not each download it).
    pub fn with_busybox(&self) -> &Self {
        let images = self.data_root().join("images");
        fs::create_dir_all(&images).unwrap();
        fs::copy(busybox_image(), images.join("busybox.tar")).unwrap();
        if let Some(id) = self.switch_to {
            for path in [self.data_root(), images.clone(), images.join("busybox.tar")] {
                chown(&path, Some(id), Some(id)).unwrap();
            }
        }
        self
    }

    /// True when runs from this sandbox happen without real root.
    pub fn rootless(&self) -> bool {
        self.switch_to.is_some() || !suite_is_root()
    }

    /// A command running chapter binary `bin` with `args` as this sandbox's
    /// user, in its own process group, with the data root and HOME inside.
    pub fn command(&self, bin: &str, args: &[&str]) -> Command {
        let mut program = PathBuf::from(bin);
        if let Some(id) = self.switch_to {
            let bin = self.path().join("bin");
            let copy = bin.join(program.file_name().unwrap());
            if !copy.exists() {
                let _ = fs::create_dir(&bin);
                fs::copy(&program, &copy).expect("copy the chapter binary into the sandbox");
                chown(&copy, Some(id), Some(id)).unwrap();
            }
            program = copy;
        }
        let mut command = Command::new(program);
        command
            .args(args)
            .env("STEPBOX_ROOT", self.data_root())
            .env("HOME", self.path())
            .env_remove("XDG_DATA_HOME")
            .current_dir(self.path())
            .stdin(Stdio::null())
            .process_group(0);
        if let Some(id) = self.switch_to {
            // std also drops the supplementary groups when it switches uid as root.
            command.uid(id).gid(id);
        }
        command
    }

    /// Run chapter `bin` to completion and collect what it printed.
    pub fn run(&self, bin: &str, args: &[&str]) -> Outcome {
        run(self.command(bin, args))
    }

    /// Start chapter `bin` in the background; it is killed when the guard drops.
    pub fn spawn(&self, bin: &str, args: &[&str]) -> Running {
        Running::start(self.command(bin, args))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Detached containers and their monitors outlive a failed test's
        // runs: kill whatever still runs with this sandbox's data root.
        kill_processes_with_env(&format!("STEPBOX_ROOT={}", self.data_root().display()));
        // A rootless overlay's work/ dir is left by the kernel with mode 000:
        // open every directory up so that the removal can see inside.
        make_removable(self.path());
    }
}

/// SIGKILL every process whose environment holds `entry` (e.g. a data root).
pub fn kill_processes_with_env(entry: &str) {
    let me = std::process::id().to_string();
    let Ok(procs) = fs::read_dir("/proc") else {
        return;
    };
    for proc_dir in procs.flatten() {
        let pid = proc_dir.file_name().to_string_lossy().into_owned();
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(environ) = fs::read(proc_dir.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == entry.as_bytes())
        {
            // SAFETY: kill(2) on a process started with this sandbox's data root.
            unsafe { libc::kill(pid.parse().unwrap(), libc::SIGKILL) };
        }
    }
}

/// Give the owner rwx on every directory below `path`, so it can be removed.
pub fn make_removable(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(
        path,
        fs::Permissions::from_mode(meta.permissions().mode() | 0o700),
    );
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            make_removable(&entry.path());
        }
    }
}

/// The chapter that provisions busybox for every test, whichever chapter
/// the test is about: the one that introduces the default image. Every
/// chapter from ch2 on provisions it with the same code
/// (common/src/image/provision.rs), into the same entries, modes, owners and
/// contents (only the one time stamped on every entry may differ from one
/// provisioning to the next), so no chapter needs a way of its own.
const PROVISIONER: &str = env!("CARGO_BIN_EXE_ch2-rootfs");

/// The busybox image tarball, provisioned by running `PROVISIONER` once as
/// the caller, into a cache shared by the tests of one test binary (and
/// kept in the target directory for the next ones).
pub fn busybox_image() -> PathBuf {
    static CACHE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CACHE
        .get_or_init(|| {
            let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("busybox.tar");
            if !cache.is_file() {
                let sandbox = Sandbox::new(Who::Caller);
                sandbox.run(PROVISIONER, &["-q", "--", "true"]).assert_ok();
                let made = sandbox.data_root().join("images/busybox.tar");
                let partial = cache.with_extension(format!("tar.{}", std::process::id()));
                fs::copy(made, &partial).unwrap();
                fs::rename(&partial, &cache).unwrap();
            }
            cache
        })
        .clone()
}

/// The entries directly inside `dir` (empty if it does not exist).
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// What a finished run printed, and how it ended.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Panic (showing everything printed) unless the run exited 0.
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "the run failed: {self:#?}");
        self
    }

    /// The lines of stderr that are not narration: the errors.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|line| !line.starts_with("[parent]") && !line.starts_with("[child ]"))
            .collect()
    }
}

/// Run `command` to completion within `RUN_LIMIT`, killing its process group
/// if it overstays.
pub fn run(mut command: Command) -> Outcome {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn(&mut command);
    let stdout = read_in_background(child.stdout.take().unwrap());
    let stderr = read_in_background(child.stderr.take().unwrap());
    let status = wait_with_limit(&mut child, RUN_LIMIT);
    Outcome {
        code: status.code(),
        signal: status.signal(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Run chapter `ch` quietly (`-q`) with `args`.
pub fn quiet(ch: Chapter, sandbox: &Sandbox, args: &[&str]) -> Outcome {
    let mut all = vec!["-q"];
    all.extend_from_slice(args);
    sandbox.run(ch.bin, &all)
}

/// Poll `check` until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// Start `command`. A binary copied into a sandbox a moment ago may still be
/// open for writing in a process another test thread is forking (until that
/// process execs): the kernel then says ETXTBSY, and we try again.
pub fn spawn(command: &mut Command) -> Child {
    for _ in 0..200 {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                thread::sleep(Duration::from_millis(10))
            }
            result => return result.expect("start the chapter binary"),
        }
    }
    panic!("the chapter binary stayed busy (ETXTBSY)");
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn wait_with_limit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the chapter") {
            return status;
        }
        if Instant::now() > deadline {
            kill_group(child.id());
            let _ = child.wait();
            panic!("the run took longer than {limit:?} and was killed");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// SIGKILL every process in the group led by `pid`.
pub fn kill_group(pid: u32) {
    // SAFETY: kill(2) with a negative pid signals a process group we created.
    unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
}

/// A chapter running in the background. Dropping it kills its process group.
pub struct Running {
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
}

impl Running {
    pub fn start(mut command: Command) -> Running {
        command.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = spawn(&mut command);
        let stdout = child.stdout.take().map(BufReader::new);
        Running { child, stdout }
    }

    /// The pid of the chapter's parent process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line the container prints on stdout (without the newline).
    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .as_mut()
            .unwrap()
            .read_line(&mut line)
            .expect("read from the chapter");
        line.trim_end().to_string()
    }

    /// Everything the container prints on stdout until it closes it.
    pub fn read_to_end(&mut self) -> String {
        let mut text = String::new();
        self.stdout
            .as_mut()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    /// The pids of the chapter parent's children (the container's init).
    pub fn children(&self) -> Vec<i32> {
        let pid = self.child.id();
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect()
    }

    /// Wait for the chapter to end (within `RUN_LIMIT`).
    pub fn wait(&mut self) -> std::process::ExitStatus {
        wait_with_limit(&mut self.child, RUN_LIMIT)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            kill_group(self.child.id());
            let _ = self.child.wait();
        }
    }
}

/// The host's mount table, as this test process sees it.
pub fn mount_table() -> String {
    fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo")
}

/// Panic, listing the differences, unless the mount table equals `before`.
pub fn assert_mount_table_unchanged(before: &str) {
    let after = mount_table();
    if after != before {
        let added: Vec<&str> = after.lines().filter(|l| !before.contains(l)).collect();
        let gone: Vec<&str> = before.lines().filter(|l| !after.contains(l)).collect();
        panic!("the host mount table changed:\nadded: {added:#?}\nremoved: {gone:#?}");
    }
}

/// The state letter of process `pid` (R, S, Z, ...) or None once it is gone.
pub fn process_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// Wait up to `limit` for process `pid` to be gone (or a zombie: dead, just
/// not yet reaped by whoever inherited it).
pub fn wait_until_dead(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match process_state(pid) {
            None | Some('Z') | Some('X') => return true,
            _ => thread::sleep(Duration::from_millis(10)),
        }
    }
    false
}

/// The mount point and filesystem type of each line of a mountinfo text.
pub fn mounts_in(mountinfo: &str) -> Vec<(String, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = left.split(' ').nth(4)?.to_string();
            let fstype = right.split(' ').next()?.to_string();
            Some((point, fstype))
        })
        .collect()
}

/// Make `path` belong to the user the sandbox runs chapters as.
pub fn chown_to_sandbox_user(sandbox: &Sandbox, path: &Path) {
    if let Some(id) = sandbox.switch_to {
        chown(path, Some(id), Some(id)).unwrap();
    }
}

/// Run `command` for at most `limit`: its outcome, or None (and its process
/// group killed) if it was still running then. For claims that a run ends
/// at once, where a hang must fail the test quickly.
pub fn run_within(mut command: Command, limit: Duration) -> Option<Outcome> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn(&mut command);
    let stdout = read_in_background(child.stdout.take().unwrap());
    let stderr = read_in_background(child.stderr.take().unwrap());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the chapter") {
            break Some(status);
        }
        if Instant::now() > deadline {
            kill_group(child.id());
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    status.map(|status| Outcome {
        code: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
    })
}

/// Limit the number of open files of `command` (`ulimit -n`).
pub fn limit_open_files(command: &mut Command, limit: u64) {
    // SAFETY: setrlimit is async-signal-safe; it runs in the forked child before exec.
    unsafe {
        command.pre_exec(move || {
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The uid the sandbox runs chapters as (None: the caller's own).
pub fn sandbox_uid(sandbox: &Sandbox) -> Option<u32> {
    sandbox.switch_to
}

/// A new pty: (master, slave), the slave with `rows` x `cols`.
pub fn open_pty(rows: u16, cols: u16) -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two fds into the integers we pass and reads the
    // window size; no name or termios is asked for.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just opened by openpty and are owned by nobody else.
    unsafe {
        use std::os::fd::{FromRawFd, OwnedFd};
        (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave))
    }
}
