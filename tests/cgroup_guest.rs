//! The cgroup manager of chapter 7 against real kernels: cgroup v2 in a
//! guest booted for it (tests/support/guest.rs), cgroup v1 on this host
//! when it is hybrid or legacy. In each, through `common::cgroup` only:
//! a memory hog in a 32 MiB cgroup is OOM-killed and counted; a process
//! in a cgroup of 16 pids cannot fork a 16th; `--cpus 0.5` throttles a
//! busy loop; a stale cgroup is swept; the cgroups are then gone. In v2
//! also: clone3's CLONE_INTO_CGROUP starts a child inside, a cgroup
//! namespace is rooted at the container's cgroup only if made with
//! clone3 or after joining, and a rootless user limits a delegated cgroup.
//!
//! The guest boots once for the whole suite: `cgroup_v2_limits_hold_in_a_v2_guest`
//! re-runs this test binary there with only itself, which in the guest
//! makes every guest-side check (`in_guest`).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::cgroup::{Cgroup, Hierarchy, Limits, Mode, Pids, CGROUP_ROOT};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use support::guest;

/// What `in_guest` prints for each check that held, for the host to find.
const HELD: &str = "held:";

/// Every check `in_guest` makes, by the word it prints after [`HELD`].
const GUEST_CHECKS: [&str; 16] = [
    "cgroup2-alone",
    "controllers",
    "overlayfs",
    "user-namespaces",
    "oom-killed",
    "pids-limit",
    "cpu-throttled",
    "stale-removed",
    "clone-into-cgroup",
    "rootless-refused",
    "rootless-limits",
    "ch7-limits",
    "ch7-rootless-refused",
    "ch7-rootless-delegated",
    "ch7-without-clone3",
    "removed",
];

/// The chapter 7 binary, run in the guest by the claims of tests/support/ch7.rs.
const CH7: support::Chapter = support::Chapter {
    bin: env!("CARGO_BIN_EXE_ch7-cgroups"),
    name: "ch7-cgroups",
};

/// The delegated cgroup `in_guest` makes for `rootless_in_guest`, as
/// systemd's Delegate=yes would: the directory and its three files chowned
/// to the user.
const DELEGATED: &str = "/sys/fs/cgroup/stepbox-test-delegated";

/// nobody, the user the rootless checks run as.
const NOBODY: u32 = 65534;

/// The test that boots the guest. It has three parts, one per process:
/// on the host it boots the guest and runs this very test there; in the
/// guest, as root, it makes every check ([`in_guest`]); and, started again
/// by that as nobody (STEPBOX_ROOTLESS_IN), the rootless half
/// ([`rootless_in_guest`]). One test, so the suite counts it once.
#[test]
fn cgroup_v2_limits_hold_in_a_v2_guest() {
    if let Some(delegated) = std::env::var_os("STEPBOX_ROOTLESS_IN") {
        return rootless_in_guest(Path::new(&delegated));
    }
    if guest::in_guest() {
        return in_guest();
    }
    let _alone = one_at_a_time();
    let started = Instant::now();
    // The guest has no network: busybox is provisioned here, before it boots.
    support::busybox_image();
    let run = match guest::run(&guest::test_binary_in_guest(
        "cgroup_v2_limits_hold_in_a_v2_guest",
    )) {
        Ok(run) => run,
        Err(why) => {
            support::skip(&format!("no cgroup-v2 guest: {why}"));
            return;
        }
    };
    eprintln!("{}", run.timing);
    eprintln!("the guest's output:\n{}", run.output);
    assert_eq!(run.code, Some(0), "the guest-side checks failed (above)");
    assert!(
        run.output.contains("test result: ok. 1 passed"),
        "the test binary did not run in the guest: {}",
        run.output
    );
    for check in GUEST_CHECKS {
        assert!(
            run.output.contains(&format!("{HELD} {check}")),
            "the guest did not report {check}"
        );
    }
    eprintln!("the whole guest run took {:.1?}", started.elapsed());
}

/// Every guest-side check, in one test so that the guest boots once.
fn in_guest() {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let cgroup_mounts: Vec<&str> = mounts.lines().filter(|l| l.contains(" - cgroup")).collect();
    assert_eq!(cgroup_mounts.len(), 1, "{cgroup_mounts:?}");
    assert!(
        cgroup_mounts[0].contains(" /sys/fs/cgroup "),
        "{cgroup_mounts:?}"
    );
    assert!(
        cgroup_mounts[0].contains(" - cgroup2 "),
        "{cgroup_mounts:?}"
    );
    assert_eq!(Mode::detect(Path::new(CGROUP_ROOT)).unwrap(), Mode::V2);
    println!("{HELD} cgroup2-alone");

    let controllers = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap();
    for wanted in ["memory", "cpu", "pids"] {
        assert!(
            controllers.split_whitespace().any(|c| c == wanted),
            "{controllers}"
        );
    }
    println!("{HELD} controllers ({})", controllers.trim());

    overlayfs_works();
    println!("{HELD} overlayfs");
    user_namespaces_work();
    println!("{HELD} user-namespaces");

    narrate();
    let hierarchy = Hierarchy::detect().unwrap();
    assert_eq!(hierarchy, Hierarchy::new(Mode::V2, CGROUP_ROOT, ""));
    limits_hold(&hierarchy, "v2");
    clone_into_cgroup_starts_the_child_inside(&hierarchy);
    println!("{HELD} clone-into-cgroup");
    ch7_claims_hold();
    without_clone3_the_pid_is_written_instead();
    println!("{HELD} ch7-without-clone3");
    rootless_limits_hold_in_a_delegated_cgroup();
    // Nothing else runs in the guest: no stepbox cgroup at all may be left.
    assert_no_stepbox_cgroup_left("");
    println!("{HELD} removed");
}

/// Chapter 7's claims, as tests/ch7_cgroups.rs makes them on the host, with
/// the ch7 binary, as root in the guest (v2), each timed.
fn ch7_claims_hold() {
    use support::ch7;
    let timed = |check: &str, claim: &dyn Fn() -> String| {
        let started = Instant::now();
        let shown = claim();
        println!("{HELD} {check} ({:.1?}): {shown}", started.elapsed());
    };
    // Booted under software emulation, each run takes seconds: the claims
    // are made in two runs here (tests/ch7_cgroups.rs makes each apart).
    timed("ch7-limits", &|| ch7::v2_limits_hold_in_one_run(CH7));
}

/// As root in the guest: delegate a cgroup to nobody, and run
/// `rootless_in_guest` (this binary again) to use it.
fn rootless_limits_hold_in_a_delegated_cgroup() {
    let delegated = Path::new(DELEGATED);
    std::fs::create_dir(delegated).unwrap();
    for file in [
        "",
        "cgroup.procs",
        "cgroup.subtree_control",
        "cgroup.threads",
    ] {
        std::os::unix::fs::chown(delegated.join(file), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "cgroup_v2_limits_hold_in_a_v2_guest",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("STEPBOX_ROOTLESS_IN", DELEGATED)
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    // Its processes are gone: what is left is the leaf it moved itself to.
    let leaf = delegated.join(common::cgroup::v2::SUPERVISOR_LEAF);
    if leaf.exists() {
        std::fs::remove_dir(&leaf).unwrap();
    }
    std::fs::remove_dir(delegated).unwrap();
    assert!(output.status.success(), "rootless_in_guest failed");
}

/// The rootless half, started by `in_guest` as root with STEPBOX_ROOTLESS_IN.
fn rootless_in_guest(delegated: &Path) {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    narrate();
    let (root, nobody) = (Uid::from_raw(0), Uid::from_raw(NOBODY));
    let (root_group, nogroup) = (Gid::from_raw(0), Gid::from_raw(NOBODY));
    setgroups(&[]).unwrap();
    // Nobody, but able to come back (the saved ids stay root's) ...
    setresgid(nogroup, nogroup, root_group).unwrap();
    setresuid(nobody, nobody, root).unwrap();
    // ... in the root cgroup, which is not nobody's: refused, naming the fix.
    let refused = Hierarchy::detect().unwrap_err().to_string();
    assert!(
        refused.contains("systemd-run --user --scope -p Delegate=yes"),
        "{refused}"
    );
    println!("{HELD} rootless-refused: {refused}");
    // The chapter refuses a limit flag the same way, in one line.
    let sandbox = support::ch7::sandbox(support::Who::Caller);
    let out = sandbox.run(
        CH7.bin,
        &["-q", "run", "--rm", "-m", "32m", "busybox", "true"],
    );
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert_eq!(out.error_lines().len(), 1, "{out:#?}");
    assert!(
        out.stderr
            .contains("systemd-run --user --scope -p Delegate=yes"),
        "{out:#?}"
    );
    println!("{HELD} ch7-rootless-refused: {}", out.error_lines()[0]);
    // Root again, for a moment, to move into the delegated cgroup (moving
    // needs write access to the common ancestor's cgroup.procs: the root's).
    setresuid(root, root, root).unwrap();
    setresgid(root_group, root_group, root_group).unwrap();
    std::fs::write(Path::new(&delegated).join("cgroup.procs"), "0").unwrap();
    setresgid(nogroup, nogroup, nogroup).unwrap();
    setresuid(nobody, nobody, nobody).unwrap();
    let hierarchy = Hierarchy::detect().unwrap();
    assert_eq!(
        hierarchy.base.join(&hierarchy.parent),
        Path::new(&delegated)
    );
    limits_hold(&hierarchy, "v2 rootless");
    println!("{HELD} rootless-limits");
    // In the delegated cgroup, the chapter's limits hold for nobody too:
    // the container's cgroup is made under it, and seen as / inside.
    let script = "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; cat /proc/self/cgroup";
    let out = sandbox.run(
        CH7.bin,
        &[
            "run",
            "--rm",
            "-m",
            "32m",
            "--pids-limit",
            "16",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "33554432\n16\n0::/\n", "{out:#?}");
    let made = format!("{}/stepbox/", delegated.display());
    assert!(out.stderr.contains(&made), "not under {made}: {out:#?}");
    println!(
        "{HELD} ch7-rootless-delegated: {}",
        out.stderr
            .lines()
            .find(|l| l.contains("memory.max"))
            .unwrap_or_default()
    );
}

/// The host's v1 test and the guest's boot take turns: the guest's QEMU,
/// under software emulation, takes both CPUs, and the v1 test's busy loop
/// must get more than its 0.5 CPU quota to be seen throttled.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn cgroup_v1_limits_hold_on_a_hybrid_host() {
    if guest::in_guest() {
        return;
    }
    let _alone = one_at_a_time();
    let mode = Mode::detect(Path::new(CGROUP_ROOT));
    match mode {
        Ok(Mode::V1 { .. }) => {}
        other => {
            support::skip(&format!(
                "this host is not cgroup v1 ({other:?}): the guest test covers v2"
            ));
            return;
        }
    }
    if !support::suite_is_root() {
        support::skip("cgroup v1 limits need root");
        return;
    }
    narrate();
    let hierarchy = Hierarchy::detect().unwrap();
    limits_hold(&hierarchy, "v1");
    // Others' containers may run on this host: only this test's own
    // cgroups (named with its pid) must be gone.
    assert_no_stepbox_cgroup_left(&format!("-{}", std::process::id()));
}

/// Print the module's narration (each write in C form), as a chapter does.
fn narrate() {
    common::narration::init(false, false, common::narration::Narrate::All, 7);
}

/// Removes the cgroup when dropped, so a failed assertion leaves none behind.
struct Removed(Option<Cgroup>);

impl Drop for Removed {
    fn drop(&mut self) {
        if let Some(cgroup) = self.0.take() {
            if let Err(error) = cgroup.remove() {
                eprintln!("clean-up: {error}");
            }
        }
    }
}

impl Removed {
    fn get(&self) -> &Cgroup {
        self.0.as_ref().unwrap()
    }

    fn remove(mut self) {
        let cgroup = self.0.take().unwrap();
        cgroup.remove().unwrap();
        for dir in &cgroup.dirs {
            assert!(!dir.exists(), "{} is still there", dir.display());
        }
    }
}

/// The two limits a learner sees first, through the module only.
fn limits_hold(hierarchy: &Hierarchy, version: &str) {
    let pid = std::process::id();

    // A memory hog in 32 MiB is killed by the kernel's OOM killer, and counted.
    let limits = Limits {
        memory: Some(32 << 20),
        ..Limits::default()
    };
    let name = format!("stepbox-test-oom-{pid}");
    let cgroup = Removed(Some(hierarchy.create(&name, &limits).unwrap()));
    let memory_file = match version.starts_with("v2") {
        true => "memory.max",
        false => "memory.limit_in_bytes",
    };
    let limit_dir = cgroup
        .get()
        .dirs
        .iter()
        .find(|d| d.join(memory_file).exists())
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(limit_dir.join(memory_file))
            .unwrap()
            .trim(),
        "33554432"
    );
    let child = Waiting::fork(|| touch_memory(256 << 20));
    cgroup.get().join(child.pid).unwrap();
    assert_eq!(cgroup.get().pids().unwrap(), [child.pid.as_raw()]);
    let status = child.release_and_wait();
    assert_eq!(
        status,
        WaitStatus::Signaled(child_pid(&status), Signal::SIGKILL, false),
        "the hog was not killed"
    );
    let kills = cgroup.get().oom_kills().unwrap();
    assert!(kills >= 1, "oom_kill = {kills}");
    let stats = cgroup.get().stats().unwrap();
    println!("{version}: OOM-killed (oom_kill {kills}); stats after: {stats:?}");
    cgroup.remove();
    println!("{HELD} oom-killed");

    // Forks stop at pids.max: 16 processes in all, the first one included.
    let limits = Limits {
        pids: Some(Pids::Limit(16)),
        ..Limits::default()
    };
    let name = format!("stepbox-test-pids-{pid}");
    let cgroup = Removed(Some(hierarchy.create(&name, &limits).unwrap()));
    let (report_read, report_write) = nix::unistd::pipe().unwrap();
    let report_fd = std::os::fd::AsRawFd::as_raw_fd(&report_write);
    let child = Waiting::fork(move || fork_until_refused(report_fd));
    drop(report_write);
    cgroup.get().join(child.pid).unwrap();
    let status = child.release_and_wait();
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "the forker ended {status:?}"
    );
    let mut report = [0u8; 8];
    let read = nix::unistd::read(&report_read, &mut report).unwrap();
    assert_eq!(read, 8);
    let forks = i32::from_ne_bytes(report[..4].try_into().unwrap());
    let errno = i32::from_ne_bytes(report[4..].try_into().unwrap());
    assert_eq!(errno, libc::EAGAIN, "fork failed with errno {errno}");
    assert_eq!(forks, 15, "forks before EAGAIN");
    let stats = cgroup.get().stats().unwrap();
    assert_eq!(stats.pids_limit, Some(16));
    assert_eq!(stats.pids, Some(15), "the forked children are still in it");
    println!("{version}: fork() = -1 EAGAIN after {forks} forks; stats: {stats:?}");
    cgroup.remove();
    println!("{HELD} pids-limit");

    // --cpus 0.5: a busy loop is held back by the CFS quota, 50 ms in each 100 ms.
    let limits = Limits {
        cpus: Some(common::cgroup::limits::parse_cpus("0.5", 2).unwrap()),
        ..Limits::default()
    };
    let name = format!("stepbox-test-cpu-{pid}");
    let cgroup = Removed(Some(hierarchy.create(&name, &limits).unwrap()));
    let child = Waiting::fork(|| spin(Duration::from_millis(800)));
    cgroup.get().join(child.pid).unwrap();
    let status = child.release_and_wait();
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    let stats = cgroup.get().stats().unwrap();
    let throttled = stats.throttled_usec.unwrap_or(0);
    assert!(throttled > 0, "never throttled: {stats:?}");
    println!(
        "{version}: a busy loop of 800 ms wall time used {} ms of CPU and was throttled {} ms",
        stats.cpu_usec.unwrap_or(0) / 1000,
        throttled / 1000
    );
    cgroup.remove();
    println!("{HELD} cpu-throttled");

    // A cgroup whose container is gone (its monitor was killed) is found and removed.
    let name = format!("stepbox-test-stale-{pid}");
    let stale = hierarchy.create(&name, &Limits::default()).unwrap();
    assert!(hierarchy.names().contains(&name));
    let removed = hierarchy.remove_stale(|other| other != name).unwrap();
    assert_eq!(removed, std::slice::from_ref(&name));
    for dir in &stale.dirs {
        assert!(!dir.exists(), "{} is still there", dir.display());
    }
    println!("{HELD} stale-removed");

    // One that still holds a process, old and with nobody holding its lock,
    // is named by the next run's sweep, and left as it is; the run goes on.
    let name = format!("stepbox-test-held-{pid}");
    let held = Removed(Some(hierarchy.create(&name, &Limits::default()).unwrap()));
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    held.get().join(Pid::from_raw(sleeper.id() as i32)).unwrap();
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::open(held.get().path())
        .and_then(|dir| dir.set_modified(hour_ago))
        .unwrap();
    let sandbox = support::ch7::sandbox(support::Who::Caller);
    let out = support::ch7::quiet(CH7, &sandbox, &["run", "--rm", "busybox", "true"]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    out.assert_ok();
    let named = format!(
        "the cgroup \"{}\" holds processes but no stepbox runs its container",
        held.get().path().display()
    );
    assert!(out.stderr.contains(&named), "{out:#?}");
    assert!(
        held.get().path().is_dir(),
        "a sweep took a cgroup with a process in it"
    );
}

/// Where clone3 answers ENOSYS (a kernel before 5.3, or a seccomp filter
/// around stepbox, as Docker's is), chapter 7 on v2 clones as on v1 and
/// writes the child's pid to cgroup.procs before its release; the limit
/// holds inside.
fn without_clone3_the_pid_is_written_instead() {
    let sandbox = support::ch7::sandbox(support::Who::Caller);
    let mut command = sandbox.command(
        CH7.bin,
        &[
            "run",
            "--rm",
            "-m",
            "32m",
            "busybox",
            "cat",
            "/sys/fs/cgroup/memory.max",
        ],
    );
    // A filter that answers ENOSYS to clone3 and allows the rest.
    let filter = [
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_clone3 as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    let program_at = &program as *const libc::sock_fprog as usize;
    // SAFETY: between fork and exec only two system calls, on memory that
    // outlives the spawn (the filter is copied in by the kernel).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    program_at,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = support::run(command);
    out.assert_ok();
    assert_eq!(out.stdout, "33554432\n", "{out:#?}");
    assert!(out.stderr.contains("/cgroup.procs\", \""), "{}", out.stderr);
    assert!(
        !out.stderr.contains("CLONE_INTO_CGROUP, cgroup ="),
        "{}",
        out.stderr
    );
}

/// Keep a CPU busy for `wall` of wall-clock time.
fn spin(wall: Duration) -> i32 {
    let now = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec on our stack.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    };
    let start = now();
    while now() - start < wall {
        std::hint::spin_loop();
    }
    0
}

/// clone3(2) with CLONE_INTO_CGROUP: the child is in the cgroup from its
/// first instruction, before it could run anything (v2 only).
fn clone_into_cgroup_starts_the_child_inside(hierarchy: &Hierarchy) {
    let name = format!("stepbox-test-clone3-{}", std::process::id());
    let cgroup = Removed(Some(hierarchy.create(&name, &Limits::default()).unwrap()));
    let dir = cgroup.get().open_dir().unwrap();
    for (flags, shown) in [(0, "0"), (libc::CLONE_NEWCGROUP as u64, "CLONE_NEWCGROUP")] {
        let (report_read, report_write) = nix::unistd::pipe().unwrap();
        let child = Waiting::clone3_into(&dir, flags, &report_write);
        drop(report_write);
        assert_eq!(cgroup.get().pids().unwrap(), [child.pid.as_raw()]);
        let mut seen = [0u8; 512];
        let n = nix::unistd::read(&report_read, &mut seen).unwrap();
        let seen = String::from_utf8_lossy(&seen[..n]).trim().to_string();
        println!("clone3(CLONE_INTO_CGROUP|{shown}): the child's /proc/self/cgroup says {seen:?}");
        // A cgroup namespace made with the child is rooted at its cgroup.
        let expected = match flags {
            0 => format!("0::/stepbox/{name}"),
            _ => "0::/".to_string(),
        };
        assert_eq!(seen, expected);
        let status = child.release_and_wait();
        assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    }
    drop(dir);

    // Without clone3, the pid goes to cgroup.procs while the child waits:
    // a cgroup namespace made before that is rooted at the parent's cgroup,
    // so the child must unshare(CLONE_NEWCGROUP) only once it is in.
    for before in [true, false] {
        let (report_read, report_write) = nix::unistd::pipe().unwrap();
        let report = std::os::fd::AsRawFd::as_raw_fd(&report_write);
        let child = Waiting::fork_then(before, move || {
            let mut buffer = [0u8; 512];
            // SAFETY: plain system calls into a buffer on the stack.
            unsafe {
                if !before && libc::unshare(libc::CLONE_NEWCGROUP) != 0 {
                    return 12;
                }
                let fd = libc::open(c"/proc/self/cgroup".as_ptr(), libc::O_RDONLY);
                let n = libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len());
                libc::write(report, buffer.as_ptr().cast(), n.max(0) as usize);
            }
            0
        });
        drop(report_write);
        cgroup.get().join(child.pid).unwrap();
        let status = child.release_and_wait();
        assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
        let mut seen = [0u8; 512];
        let n = nix::unistd::read(&report_read, &mut seen).unwrap();
        let seen = String::from_utf8_lossy(&seen[..n]).trim().to_string();
        let when = if before { "before" } else { "after" };
        println!("unshare(CLONE_NEWCGROUP) {when} joining through cgroup.procs: the child's /proc/self/cgroup says {seen:?}");
        let expected = match before {
            true => format!("0::/stepbox/{name}"),
            false => "0::/".to_string(),
        };
        assert_eq!(seen, expected);
    }
    cgroup.remove();
}

/// No cgroup whose path holds "stepbox" and `ending` (a test's pid: its own
/// cgroups; "": any) is left anywhere under /sys/fs/cgroup.
fn assert_no_stepbox_cgroup_left(ending: &str) {
    let mut left = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(CGROUP_ROOT)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) && !path.is_symlink() {
                let shown = path.to_string_lossy();
                if shown.contains("stepbox") && shown.ends_with(ending) {
                    left.push(path.clone());
                }
                dirs.push(path);
            }
        }
    }
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

fn child_pid(status: &WaitStatus) -> Pid {
    status.pid().unwrap()
}

/// A child that waits on a pipe before it runs its body, as chapter 7's
/// containers wait on the go pipe: so it joins its cgroup before it runs.
/// The body runs in a forked copy of a threaded test process: it may only
/// make plain system calls (no allocation, no locks).
struct Waiting {
    pid: Pid,
    go: std::os::fd::OwnedFd,
}

impl Waiting {
    fn fork(body: impl FnOnce() -> i32) -> Waiting {
        Waiting::fork_then(false, body)
    }

    /// As [`Waiting::fork`]; with `new_cgroup_namespace`, the child makes
    /// its cgroup namespace first, before it waits (and so before it joins).
    fn fork_then(new_cgroup_namespace: bool, body: impl FnOnce() -> i32) -> Waiting {
        let (go_read, go_write) = nix::unistd::pipe().unwrap();
        // SAFETY: the child only reads a pipe, runs `body` (plain system
        // calls) and _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                drop(go_write);
                // SAFETY: a plain system call.
                if new_cgroup_namespace && unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
                    // SAFETY: ends the forked child.
                    unsafe { libc::_exit(101) };
                }
                let mut byte = 0u8;
                // SAFETY: a read into a byte on the stack, then _exit.
                unsafe {
                    if libc::read(
                        std::os::fd::AsRawFd::as_raw_fd(&go_read),
                        (&mut byte as *mut u8).cast(),
                        1,
                    ) != 1
                    {
                        libc::_exit(100);
                    }
                    libc::_exit(body())
                }
            }
            nix::unistd::ForkResult::Parent { child } => Waiting {
                pid: child,
                go: go_write,
            },
        }
    }

    /// A child made by clone3(2) straight into the cgroup `dir`, that waits
    /// for the go byte and exits 0.
    fn clone3_into(
        dir: &std::os::fd::OwnedFd,
        flags: u64,
        report: &std::os::fd::OwnedFd,
    ) -> Waiting {
        #[repr(C)]
        #[derive(Default)]
        struct CloneArgs {
            flags: u64,
            pidfd: u64,
            child_tid: u64,
            parent_tid: u64,
            exit_signal: u64,
            stack: u64,
            stack_size: u64,
            tls: u64,
            set_tid: u64,
            set_tid_size: u64,
            cgroup: u64,
        }
        const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
        let (go_read, go_write) = nix::unistd::pipe().unwrap();
        let args = CloneArgs {
            flags: CLONE_INTO_CGROUP | flags,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: std::os::fd::AsRawFd::as_raw_fd(dir) as u64,
            ..CloneArgs::default()
        };
        let report = std::os::fd::AsRawFd::as_raw_fd(report);
        // SAFETY: clone3 without CLONE_VM and without a stack is fork(2); the
        // child only reads its /proc/self/cgroup into a buffer on its stack,
        // writes it to the report pipe, reads the go pipe and _exits.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        assert!(pid >= 0, "clone3: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let mut buffer = [0u8; 512];
            // SAFETY: as above.
            unsafe {
                let fd = libc::open(c"/proc/self/cgroup".as_ptr(), libc::O_RDONLY);
                let n = libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len());
                libc::write(report, buffer.as_ptr().cast(), n.max(0) as usize);
                libc::close(report);
                libc::read(
                    std::os::fd::AsRawFd::as_raw_fd(&go_read),
                    buffer.as_mut_ptr().cast(),
                    1,
                );
                libc::_exit(0);
            }
        }
        Waiting {
            pid: Pid::from_raw(pid as i32),
            go: go_write,
        }
    }

    fn release_and_wait(self) -> WaitStatus {
        nix::unistd::write(&self.go, b"g").unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match waitpid(self.pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)).unwrap() {
                WaitStatus::StillAlive if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                WaitStatus::StillAlive => {
                    let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
                    panic!("the child did not end within a minute");
                }
                status => return status,
            }
        }
    }
}

/// Map and touch `bytes` of memory, a page at a time: a hog.
fn touch_memory(bytes: usize) -> i32 {
    // SAFETY: an anonymous private mapping of our own, written a byte per page.
    unsafe {
        let memory = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if memory == libc::MAP_FAILED {
            return 2;
        }
        let memory = memory.cast::<u8>();
        for offset in (0..bytes).step_by(4096) {
            std::ptr::write_volatile(memory.add(offset), 1);
        }
    }
    0
}

/// Fork children that only wait, until fork fails; report how many were
/// made and the errno as two native i32s on `report`.
fn fork_until_refused(report: i32) -> i32 {
    let mut forks: i32 = 0;
    // SAFETY: fork, pause and write are plain system calls; each forked
    // child only pauses until it is killed.
    unsafe {
        loop {
            match libc::fork() {
                0 => {
                    libc::pause();
                    libc::_exit(0);
                }
                -1 => {
                    let errno = *libc::__errno_location();
                    let mut bytes = [0u8; 8];
                    bytes[..4].copy_from_slice(&forks.to_ne_bytes());
                    bytes[4..].copy_from_slice(&errno.to_ne_bytes());
                    libc::write(report, bytes.as_ptr().cast(), 8);
                    return 0;
                }
                _ => forks += 1,
            }
            if forks > 1000 {
                return 3;
            }
        }
    }
}

/// overlayfs (a module in Debian's kernel, loaded by scripts/guest.sh)
/// mounts, and a write lands in the upper layer.
fn overlayfs_works() {
    use nix::mount::{mount, umount, MsFlags};
    let dir = tempfile::tempdir().unwrap();
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| {
        let path = dir.path().join(d);
        std::fs::create_dir(&path).unwrap();
        path
    });
    std::fs::write(lower.join("a"), "from the image").unwrap();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .expect("mount overlay in the guest");
    let read = std::fs::read_to_string(merged.join("a"));
    let wrote = std::fs::write(merged.join("b"), "written");
    umount(&merged).unwrap();
    assert_eq!(read.unwrap(), "from the image");
    wrote.unwrap();
    assert!(upper.join("b").exists());
}

/// An ordinary user can make a user namespace (what rootless runs need).
fn user_namespaces_work() {
    // SAFETY: the child only drops to nobody and calls unshare, then _exits.
    let child = Waiting::fork(|| unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(65534) != 0
            || libc::setuid(65534) != 0
        {
            return 10;
        }
        if libc::unshare(libc::CLONE_NEWUSER) != 0 {
            return 11;
        }
        0
    });
    let status = child.release_and_wait();
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "unshare(CLONE_NEWUSER) as nobody: {status:?}"
    );
}
