//! The doctor: can this machine run the chapters? (`--doctor`, every chapter.)
//!
//! One line per check, `ok`, `warn` or `FAIL`, each naming what it found and,
//! where something is wrong, the fix:
//!
//! ```text
//! ok    kernel: Linux 6.18.0 (5.12 or later: close_range, overlayfs in user namespaces, mount_setattr)
//! FAIL  user namespaces: kernel.apparmor_restrict_unprivileged_userns is 1: ... → fix: sudo sysctl -w ...
//! ```
//!
//! Each verdict is a pure function of what was read or probed, so the tests
//! beside it cover every verdict and its reason. The files come from bases
//! a test may point elsewhere to fake a machine: `STEPBOX_DOCTOR_PROC` (for
//! `/proc`), `STEPBOX_DOCTOR_ETC` (`/etc`) and `STEPBOX_DOCTOR_SYS` (`/sys`).
//! The probes are real system calls, each made in a forked child inside
//! throwaway namespaces, on a tmpfs of its own: when the child exits the
//! kernel removes its mounts, and no directory was ever made on the host.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Gid, Uid};

use crate::error::{quote, Error, Result, SysContext};
use crate::namespace;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Works, with a limit worth knowing.
    Warn,
    /// A chapter will fail here until it is fixed.
    Fail,
}

/// One line of the doctor's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub verdict: Verdict,
    pub what: &'static str,
    pub reason: String,
    pub fix: Option<String>,
}

impl Check {
    fn ok(what: &'static str, reason: impl Into<String>) -> Check {
        Check {
            verdict: Verdict::Ok,
            what,
            reason: reason.into(),
            fix: None,
        }
    }

    fn new(
        verdict: Verdict,
        what: &'static str,
        reason: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            verdict,
            what,
            reason: reason.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        };
        write!(f, "{verdict:<4}  {}: {}", self.what, self.reason)?;
        if let Some(fix) = &self.fix {
            write!(f, " → fix: {fix}")?;
        }
        Ok(())
    }
}

/// Run every check, print one line each on stdout, and exit 1 if one FAILed.
pub fn main(name: &str) -> ExitCode {
    let checks = run_checks();
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    let mut out = String::new();
    for check in &checks {
        out.push_str(&format!("{check}\n"));
    }
    out.push_str(&format!(
        "{name} --doctor: {} ok, {} warn, {} FAIL\n",
        count(Verdict::Ok),
        count(Verdict::Warn),
        count(Verdict::Fail)
    ));
    // A closed stdout (`--doctor | head -1`) leaves nobody to tell.
    let _ = std::io::stdout().write_all(out.as_bytes());
    if count(Verdict::Fail) > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Where the doctor reads `/proc`, `/etc` and `/sys` from.
struct Bases {
    proc: PathBuf,
    etc: PathBuf,
    sys: PathBuf,
}

impl Bases {
    fn from_env() -> Bases {
        let base = |var: &str, default: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        Bases {
            proc: base("STEPBOX_DOCTOR_PROC", "/proc"),
            etc: base("STEPBOX_DOCTOR_ETC", "/etc"),
            sys: base("STEPBOX_DOCTOR_SYS", "/sys"),
        }
    }
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path).ok()
}

fn read_number(path: impl AsRef<Path>) -> Option<u64> {
    read(path)?.trim().parse().ok()
}

/// Gather the inputs (files, probes) and judge each.
fn run_checks() -> Vec<Check> {
    let bases = Bases::from_env();
    let root = Uid::effective().is_root();
    let sysctls = Sysctls {
        max_user_namespaces: read_number(bases.proc.join("sys/user/max_user_namespaces")),
        unprivileged_userns_clone: read_number(
            bases.proc.join("sys/kernel/unprivileged_userns_clone"),
        ),
        apparmor_restrict: read_number(
            bases
                .proc
                .join("sys/kernel/apparmor_restrict_unprivileged_userns"),
        ),
    };
    let in_user_ns = probe(true);
    let mut checks = vec![
        kernel(read(bases.proc.join("sys/kernel/osrelease")).as_deref()),
        user_namespaces(root, &sysctls, &in_user_ns),
        propagation(read(bases.proc.join("self/mountinfo")).as_deref()),
        overlay_listed(read(bases.proc.join("filesystems")).as_deref()),
    ];
    if root {
        checks.push(overlay_as_root(&probe(false)));
    }
    checks.push(overlay_in_user_ns(root, &in_user_ns));

    let uid = Uid::effective().as_raw();
    let user = read(bases.etc.join("passwd")).and_then(|text| user_name(&text, uid));
    let subuid = read(bases.etc.join("subuid"));
    let subgid = read(bases.etc.join("subgid"));
    let who = Who {
        root,
        uid,
        name: user.as_deref(),
    };
    checks.push(subordinate_ids(&who, subuid.as_deref(), subgid.as_deref()));
    // The chapters run the helpers from their fixed paths, never from PATH.
    let helper =
        |path: &'static str| namespace::is_program(Path::new(path)).then(|| Path::new(path));
    let (newuidmap, newgidmap) = (helper(namespace::NEWUIDMAP), helper(namespace::NEWGIDMAP));
    checks.push(uidmap_tools(root, newuidmap, newgidmap));
    let passwd = read(bases.etc.join("passwd"));
    let map = namespace::choose_map(&namespace::MapInputs {
        uid,
        gid: Gid::effective().as_raw(),
        passwd: passwd.as_deref(),
        subuid: subuid.as_deref(),
        subgid: subgid.as_deref(),
        newuidmap: newuidmap.is_some(),
        newgidmap: newgidmap.is_some(),
    });
    checks.push(id_map(root, &map));
    // f_type is an i64 on 64-bit Linux, narrower elsewhere.
    #[allow(clippy::unnecessary_cast)]
    let fs_type = |path: PathBuf| {
        nix::sys::statfs::statfs(&path)
            .ok()
            .map(|s| s.filesystem_type().0 as i64)
    };
    checks.push(cgroups(
        fs_type(bases.sys.join("fs/cgroup")),
        fs_type(bases.sys.join("fs/cgroup/unified")),
        crate::privilege::rootless(),
    ));
    checks.push(busybox(
        crate::image::provision::host_static_busybox().as_deref(),
        on_path("apt-get").as_deref(),
        on_path("dpkg-deb").as_deref(),
    ));
    checks
}

/// The first executable file called `name` in a directory on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

// ------------------------------------------------------------------ kernel

/// `6.18.0-1-amd64` → (6, 18).
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// What stepbox needs from the kernel, and since when.
const KERNEL_FEATURES: [((u32, u32), &str); 3] = [
    ((5, 11), "close_range's CLOSE_RANGE_CLOEXEC (5.11)"),
    ((5, 11), "overlayfs in user namespaces (5.11)"),
    ((5, 12), "mount_setattr for read-only volumes (5.12)"),
];

/// Linux 5.12 or later: close_range, overlayfs in user namespaces, mount_setattr.
pub fn kernel(release: Option<&str>) -> Check {
    const WHAT: &str = "kernel";
    let Some(release) = release.map(str::trim) else {
        return Check::new(
            Verdict::Warn,
            WHAT,
            "cannot read the kernel release (/proc/sys/kernel/osrelease)",
            "run on Linux with /proc mounted",
        );
    };
    let Some(version) = parse_release(release) else {
        return Check::new(
            Verdict::Warn,
            WHAT,
            format!("cannot tell the version of kernel release {release:?}"),
            "check that it is Linux 5.12 or later (uname -r)",
        );
    };
    let missing: Vec<&str> = KERNEL_FEATURES
        .iter()
        .filter(|(since, _)| version < *since)
        .map(|(_, what)| *what)
        .collect();
    if missing.is_empty() {
        Check::ok(
            WHAT,
            format!(
                "Linux {release} (5.12 or later: close_range, overlayfs in user namespaces, mount_setattr)"
            ),
        )
    } else {
        Check::new(
            Verdict::Fail,
            WHAT,
            format!(
                "Linux {release} is older than 5.12, which stepbox needs: it lacks {}",
                missing.join(", ")
            ),
            "upgrade to Linux 5.12 or later (Debian 12, Ubuntu 22.04 and newer have it)",
        )
    }
}

// ------------------------------------------------------------------ user namespaces

/// The sysctls that allow or forbid unprivileged user namespaces (None: not on this kernel).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sysctls {
    /// `user.max_user_namespaces`: 0 forbids them to everyone.
    pub max_user_namespaces: Option<u64>,
    /// `kernel.unprivileged_userns_clone` (Debian's older kernels): 0 forbids them to users.
    pub unprivileged_userns_clone: Option<u64>,
    /// `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu 23.10 on): 1 takes
    /// every capability from a user's new namespace.
    pub apparmor_restrict: Option<u64>,
}

/// A step of a probe, in the order the probe makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Could not even start the probe (pipe, fork).
    Start,
    /// unshare(2) of the namespaces.
    Unshare,
    /// The user namespace's setgroups, uid_map and gid_map.
    IdMaps,
    /// mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL).
    Private,
    /// The probe's own tmpfs, and its directories in it.
    Tmpfs,
    /// The overlay mount itself.
    Overlay,
}

/// What a probe found: all its steps worked, or the first that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Worked,
    Failed {
        step: Step,
        errno: Option<Errno>,
        /// The failed call and the kernel's word for it.
        error: String,
    },
}

/// Who the doctor runs as.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub root: bool,
    pub uid: u32,
    pub name: Option<&'a str>,
}

impl Who<'_> {
    fn shown(&self) -> String {
        match self.name {
            Some(name) => format!("{name} (uid {})", self.uid),
            None => format!("uid {}", self.uid),
        }
    }
}

/// Unprivileged user namespaces: what the sysctls say, then what the probe found.
/// As root stepbox needs none, so a block is only a warning there: it stops
/// the rootless runs of every other user.
pub fn user_namespaces(root: bool, sysctls: &Sysctls, probe: &Probe) -> Check {
    const WHAT: &str = "user namespaces";
    let blocked = if root { Verdict::Warn } else { Verdict::Fail };
    let for_whom = if root {
        " (root needs none: this stops rootless runs, as an ordinary user)"
    } else {
        ""
    };
    if sysctls.max_user_namespaces == Some(0) {
        return Check::new(
            blocked,
            WHAT,
            format!("user.max_user_namespaces is 0: nobody may create a user namespace{for_whom}"),
            "sudo sysctl -w user.max_user_namespaces=15000",
        );
    }
    if sysctls.unprivileged_userns_clone == Some(0) {
        return Check::new(
            blocked,
            WHAT,
            format!(
                "kernel.unprivileged_userns_clone is 0: ordinary users may not create user namespaces{for_whom}"
            ),
            "sudo sysctl -w kernel.unprivileged_userns_clone=1 (or run the chapters with sudo)",
        );
    }
    if sysctls.apparmor_restrict == Some(1) {
        return Check::new(
            blocked,
            WHAT,
            format!(
                "kernel.apparmor_restrict_unprivileged_userns is 1 (Ubuntu 23.10 and later): AppArmor takes \
                 every capability from an ordinary user's new user namespace, so a rootless run fails at its \
                 first mount with EPERM or EACCES{for_whom}"
            ),
            "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (or run the chapters with sudo)",
        );
    }
    match probe {
        Probe::Failed {
            step: Step::Start,
            error,
            ..
        } => Check::new(
            Verdict::Warn,
            WHAT,
            format!("the probe could not start: {error}"),
            "run the doctor again",
        ),
        Probe::Failed {
            step: step @ (Step::Unshare | Step::IdMaps | Step::Private | Step::Tmpfs),
            errno,
            error,
        } => {
            let done = match step {
                Step::Unshare => "create a user namespace",
                Step::IdMaps => "map its ids into a new user namespace",
                _ => "mount in its own user namespace",
            };
            let fix = match errno {
                Some(errno) => namespace::clone_hint(*errno, CloneFlags::CLONE_NEWUSER),
                None => "run the chapters with sudo".to_string(),
            };
            Check::new(
                blocked,
                WHAT,
                format!("this user could not {done}: {error}{for_whom}"),
                fix,
            )
        }
        Probe::Worked | Probe::Failed { .. } => {
            let limit = sysctls.max_user_namespaces.map_or(String::new(), |n| {
                format!(" (user.max_user_namespaces = {n})")
            });
            Check::ok(
                WHAT,
                format!("this user created one, mapped its ids and mounted a tmpfs in it{limit}"),
            )
        }
    }
}

// ------------------------------------------------------------------ propagation

/// The propagation type of a mount, from the optional fields of its mountinfo line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Propagation {
    /// `shared:N`: mounts made under it are copied to its peers (e.g. the host's).
    Shared(String),
    /// `master:N` (with or without `shared:M`): receives its master's mounts.
    Slave,
    /// No optional field: private.
    Private,
    /// `unbindable`.
    Unbindable,
}

/// The propagation of one mountinfo line (see proc(5), /proc/pid/mountinfo).
pub fn line_propagation(line: &str) -> Option<Propagation> {
    let (left, _) = line.split_once(" - ")?;
    let optional: Vec<&str> = left.split(' ').skip(6).collect();
    let shared = optional.iter().find_map(|f| f.strip_prefix("shared:"));
    Some(if optional.iter().any(|f| f.starts_with("master:")) {
        Propagation::Slave
    } else if let Some(group) = shared {
        Propagation::Shared(group.to_string())
    } else if optional.contains(&"unbindable") {
        Propagation::Unbindable
    } else {
        Propagation::Private
    })
}

/// The propagation of `/`: its last (topmost) line in a mountinfo text.
pub fn root_propagation(mountinfo: &str) -> Option<Propagation> {
    mountinfo
        .lines()
        .rfind(|line| line.split(' ').nth(4) == Some("/"))
        .and_then(line_propagation)
}

const SKIPPED_STEP: &str =
    "a chapter that skips `mount(NULL, \"/\", NULL, MS_REC|MS_PRIVATE, NULL)` gets EINVAL \
     (Invalid argument) from pivot_root, which refuses a new root whose parent mount is shared";

/// The propagation of `/`. Shared is normal (systemd makes it so) and fine:
/// every chapter's child makes `/` private before its first mount.
pub fn propagation(mountinfo: Option<&str>) -> Check {
    const WHAT: &str = "propagation of /";
    let Some(found) = mountinfo.and_then(root_propagation) else {
        return Check::new(
            Verdict::Warn,
            WHAT,
            "no mount at / in /proc/self/mountinfo",
            "run on Linux with /proc mounted",
        );
    };
    let reason = match found {
        Propagation::Shared(group) => format!(
            "/ is shared (peer group {group}), as systemd makes it: fine, each chapter's child makes / \
             private first; {SKIPPED_STEP}"
        ),
        Propagation::Slave => format!(
            "/ is a slave (it receives its master's mounts, as in many containers): fine, each chapter's \
             child makes / private first; on a host whose / is shared, {SKIPPED_STEP}"
        ),
        Propagation::Private => format!(
            "/ is private: fine; a systemd host's / is shared, and there {SKIPPED_STEP}"
        ),
        Propagation::Unbindable => format!(
            "/ is unbindable: fine, each chapter's child makes / private first; on a host whose / is \
             shared, {SKIPPED_STEP}"
        ),
    };
    Check::ok(WHAT, reason)
}

// ------------------------------------------------------------------ overlayfs

/// Is `overlay` in /proc/filesystems? (It may also load on first mount.)
pub fn overlay_listed(filesystems: Option<&str>) -> Check {
    const WHAT: &str = "overlayfs";
    let listed = filesystems.map(|text| {
        text.lines()
            .any(|line| line.split_whitespace().last() == Some("overlay"))
    });
    match listed {
        Some(true) => Check::ok(WHAT, "overlay is in /proc/filesystems"),
        Some(false) => Check::new(
            Verdict::Warn,
            WHAT,
            "overlay is not in /proc/filesystems (its module may still load on the first mount: see the probes)",
            "sudo modprobe overlay",
        ),
        None => Check::new(
            Verdict::Warn,
            WHAT,
            "cannot read /proc/filesystems",
            "run on Linux with /proc mounted",
        ),
    }
}

fn overlay_fix(errno: Option<Errno>, in_user_ns: bool) -> String {
    match errno {
        Some(Errno::ENODEV) => "this kernel has no overlayfs: sudo modprobe overlay, or a kernel built with CONFIG_OVERLAY_FS".into(),
        Some(Errno::EPERM | Errno::EACCES) if in_user_ns => {
            "overlayfs in a user namespace needs Linux 5.11 or later and no security module forbidding it: \
             run the chapters with sudo"
                .into()
        }
        Some(Errno::EPERM | Errno::EACCES) => {
            "mounting needs CAP_SYS_ADMIN: inside a container, give it --privileged".into()
        }
        Some(errno) => namespace::clone_hint(errno, CloneFlags::CLONE_NEWNS),
        None => "run the doctor again".into(),
    }
}

/// The overlay probe run as root, in a throwaway mount namespace.
pub fn overlay_as_root(probe: &Probe) -> Check {
    const WHAT: &str = "overlayfs as root";
    match probe {
        Probe::Worked => Check::ok(
            WHAT,
            "a probe overlay mounted in a throwaway mount namespace (what root runs do)",
        ),
        Probe::Failed { errno, error, .. } => Check::new(
            Verdict::Fail,
            WHAT,
            format!("the probe failed: {error}"),
            overlay_fix(*errno, false),
        ),
    }
}

/// The overlay probe in a throwaway user and mount namespace (what rootless runs do).
pub fn overlay_in_user_ns(root: bool, probe: &Probe) -> Check {
    const WHAT: &str = "overlayfs in a user namespace";
    let failed = if root { Verdict::Warn } else { Verdict::Fail };
    match probe {
        Probe::Worked => Check::ok(
            WHAT,
            "a probe overlay mounted in a throwaway user namespace (what rootless runs do)",
        ),
        Probe::Failed {
            step: Step::Overlay,
            errno,
            error,
        } => Check::new(
            failed,
            WHAT,
            format!("the probe failed: {error}"),
            overlay_fix(*errno, true),
        ),
        Probe::Failed { .. } => Check::new(
            failed,
            WHAT,
            "not tried: the user namespace probe failed (see user namespaces)",
            "fix the user namespaces line",
        ),
    }
}

/// Make a throwaway namespace (a user namespace too when `in_user_ns`) in a
/// forked child and mount an overlay there, on a tmpfs of its own.
fn probe(in_user_ns: bool) -> Probe {
    match probe_in_child(in_user_ns) {
        Ok(probe) => probe,
        Err(error) => Probe::Failed {
            step: Step::Start,
            errno: error.errno(),
            error: error.to_string(),
        },
    }
}

fn probe_in_child(in_user_ns: bool) -> Result<Probe> {
    let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC).call(|| "pipe2()".into())?;
    // SAFETY: the doctor is single-threaded; the child only makes system
    // calls, writes its report and leaves with _exit.
    match unsafe { nix::unistd::fork() }.call(|| "fork()".into())? {
        ForkResult::Child => {
            drop(read_end);
            let report = match probe_steps(in_user_ns) {
                Ok(()) => "ok".to_string(),
                Err((step, error)) => format!(
                    "{}\n{}\n{error}",
                    step as u8,
                    error.errno().map_or(0, |e| e as i32)
                ),
            };
            let _ = std::fs::File::from(write_end).write_all(report.as_bytes());
            // SAFETY: leave the forked child without running the parent's exit path.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut report = String::new();
            let read = std::fs::File::from(read_end).read_to_string(&mut report);
            while let Err(Errno::EINTR) | Ok(WaitStatus::StillAlive) = waitpid(child, None) {}
            read.map_err(|e| Error::io("reading", "the probe's pipe", e))?;
            Ok(parse_report(&report))
        }
    }
}

const STEPS: [Step; 6] = [
    Step::Start,
    Step::Unshare,
    Step::IdMaps,
    Step::Private,
    Step::Tmpfs,
    Step::Overlay,
];

fn parse_report(report: &str) -> Probe {
    if report == "ok" {
        return Probe::Worked;
    }
    let mut parts = report.splitn(3, '\n');
    let step = parts
        .next()
        .and_then(|s| s.parse::<usize>().ok())
        .and_then(|i| STEPS.get(i).copied())
        .unwrap_or(Step::Start);
    let errno = parts
        .next()
        .and_then(|s| s.parse::<i32>().ok())
        .filter(|&e| e != 0)
        .map(Errno::from_raw);
    let error = parts
        .next()
        .unwrap_or("the probe ended without a report")
        .to_string();
    Probe::Failed { step, errno, error }
}

/// The probe's steps, in the forked child. Mounts are made only after `/`
/// is private, so none can reach the host; all of them go when the child exits.
fn probe_steps(in_user_ns: bool) -> std::result::Result<(), (Step, Error)> {
    let (uid, gid) = (Uid::effective(), Gid::effective());
    let flags = if in_user_ns {
        CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS
    } else {
        CloneFlags::CLONE_NEWNS
    };
    nix::sched::unshare(flags)
        .call(|| format!("unshare({})", namespace::flag_names(flags)))
        .map_err(|e| (Step::Unshare, e))?;
    if in_user_ns {
        for (file, text) in [
            ("setgroups", "deny".to_string()),
            ("uid_map", format!("0 {uid} 1")),
            ("gid_map", format!("0 {gid} 1")),
        ] {
            let path = format!("/proc/self/{file}");
            fs::write(&path, &text).map_err(|e| {
                let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
                (
                    Step::IdMaps,
                    Error::sys(format!("write({}, {})", quote(&path), quote(&text)), errno),
                )
            })?;
        }
    }
    let mount = |step: Step,
                 source: Option<&str>,
                 target: &Path,
                 fstype: Option<&str>,
                 flags: MsFlags,
                 data: Option<&str>| {
        nix::mount::mount(source, target, fstype, flags, data)
            .call(|| {
                let c = |value: Option<&str>| value.map_or_else(|| "NULL".to_string(), quote);
                format!(
                    "mount({}, {}, {}, {}, {})",
                    c(source),
                    quote(target),
                    c(fstype),
                    crate::mount::flag_names(flags),
                    c(data)
                )
            })
            .map_err(|e| (step, e))
    };
    mount(
        Step::Private,
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    let scratch = [
        std::env::temp_dir(),
        "/tmp".into(),
        "/mnt".into(),
        "/dev".into(),
    ]
    .into_iter()
    .find(|dir| dir.is_dir())
    .unwrap_or_else(|| PathBuf::from("/dev"));
    mount(
        Step::Tmpfs,
        Some("tmpfs"),
        &scratch,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m"),
    )?;
    for part in ["lower", "upper", "work", "merged"] {
        let dir = scratch.join(part);
        fs::create_dir(&dir).map_err(|e| (Step::Tmpfs, Error::io("creating", &dir, e)))?;
    }
    let mut options = format!(
        "lowerdir={},upperdir={},workdir={}",
        scratch.join("lower").display(),
        scratch.join("upper").display(),
        scratch.join("work").display()
    );
    if in_user_ns {
        options.push_str(",userxattr");
    }
    mount(
        Step::Overlay,
        Some("overlay"),
        &scratch.join("merged"),
        Some("overlay"),
        MsFlags::empty(),
        Some(&options),
    )
}

// ------------------------------------------------------------------ subordinate ids

pub use crate::namespace::{subid_range, user_name};

/// Subordinate id ranges: only a warning when missing, since stepbox maps
/// one id (root in the container) without them.
pub fn subordinate_ids(who: &Who, subuid: Option<&str>, subgid: Option<&str>) -> Check {
    const WHAT: &str = "subordinate ids";
    if who.root {
        return Check::ok(WHAT, "not needed as root (no user namespace is made)");
    }
    let uids = subuid.and_then(|t| subid_range(t, who.name, who.uid));
    let gids = subgid.and_then(|t| subid_range(t, who.name, who.uid));
    match (uids, gids) {
        (Some((us, uc)), Some((gs, gc))) => Check::ok(
            WHAT,
            format!(
                "{} has {uc} uids from {us} in /etc/subuid and {gc} gids from {gs} in /etc/subgid \
                 (rootless runs map up to 65535 of them: see the id map line)",
                who.shown()
            ),
        ),
        _ => {
            let missing: Vec<&str> = [("/etc/subuid", uids), ("/etc/subgid", gids)]
                .iter()
                .filter(|(_, r)| r.is_none())
                .map(|(file, _)| *file)
                .collect();
            Check::new(
                Verdict::Warn,
                WHAT,
                format!(
                    "no range for {} in {}: stepbox maps one uid and one gid (root in the container), \
                     enough for every chapter; a command that changes user inside would need more",
                    who.shown(),
                    missing.join(" or ")
                ),
                match who.name {
                    Some(user) => format!(
                        "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}"
                    ),
                    None => format!(
                        "add the line {}:100000:65536 to /etc/subuid and /etc/subgid",
                        who.uid
                    ),
                },
            )
        }
    }
}

/// newuidmap and newgidmap (the `uidmap` package): a warning when missing.
pub fn uidmap_tools(root: bool, newuidmap: Option<&Path>, newgidmap: Option<&Path>) -> Check {
    const WHAT: &str = "newuidmap/newgidmap";
    match (newuidmap, newgidmap) {
        (Some(u), Some(g)) => Check::ok(WHAT, format!("{} and {}", u.display(), g.display())),
        _ if root => Check::ok(WHAT, "not found, and not needed as root"),
        _ => Check::new(
            Verdict::Warn,
            WHAT,
            format!(
                "no {} and {}: stepbox maps one id without them, which every chapter can work with",
                namespace::NEWUIDMAP,
                namespace::NEWGIDMAP
            ),
            "sudo apt-get install uidmap",
        ),
    }
}

/// Which map a rootless run of this user gets: the same decision the
/// chapters make ([`namespace::choose_map`]), from the same files.
pub fn id_map(root: bool, map: &namespace::IdMap) -> Check {
    const WHAT: &str = "id map";
    if root {
        return Check::ok(
            WHAT,
            "root runs make no user namespace: every owner in an image is kept as it is",
        );
    }
    match map {
        namespace::IdMap::Range {
            uid,
            gid,
            uids,
            gids,
        } => Check::ok(
            WHAT,
            format!(
                "rootless runs map 0 to uid {uid} and 1-{} to {}-{} (gid {gid}, and {}-{}), through \
                 newuidmap and newgidmap: owners in images are kept, chown and su work inside",
                uids.1,
                uids.0,
                uids.0 + uids.1 - 1,
                gids.0,
                gids.0 + gids.1 - 1
            ),
        ),
        namespace::IdMap::Single { uid, why, .. } => Check::ok(
            WHAT,
            format!(
                "rootless runs map one uid, 0 to uid {uid}: {why}; every owner in an image \
                 becomes 0, and chown to another id fails inside"
            ),
        ),
    }
}

// ------------------------------------------------------------------ cgroups

/// statfs(2) f_type of cgroup2 and of tmpfs (see statfs(2)).
pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
pub const TMPFS_MAGIC: i64 = 0x0102_1994;

/// How the cgroup hierarchy is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// cgroup2 on /sys/fs/cgroup.
    Unified,
    /// v1 controllers on a tmpfs at /sys/fs/cgroup, cgroup2 on its unified/.
    Hybrid,
    /// v1 controllers only.
    Legacy,
    /// Nothing we know on /sys/fs/cgroup (the f_type, if any).
    Unknown(Option<i64>),
}

/// The mode, from the statfs types of /sys/fs/cgroup and /sys/fs/cgroup/unified.
pub fn cgroup_mode(top: Option<i64>, unified: Option<i64>) -> CgroupMode {
    match (top, unified) {
        (Some(CGROUP2_SUPER_MAGIC), _) => CgroupMode::Unified,
        (Some(TMPFS_MAGIC), Some(CGROUP2_SUPER_MAGIC)) => CgroupMode::Hybrid,
        (Some(TMPFS_MAGIC), _) => CgroupMode::Legacy,
        (other, _) => CgroupMode::Unknown(other),
    }
}

/// The cgroup mode. Chapters 1 to 5 use no cgroup, so this never FAILs.
/// For an ordinary user on v1 it warns: chapter 7 refuses their limits.
pub fn cgroups(top: Option<i64>, unified: Option<i64>, rootless: bool) -> Check {
    const WHAT: &str = "cgroups";
    let found = cgroups_found(top, unified);
    match cgroup_mode(top, unified) {
        CgroupMode::Hybrid | CgroupMode::Legacy if rootless => Check::new(
            Verdict::Warn,
            WHAT,
            format!(
                "{}; v1 cannot be delegated to an ordinary user: chapter 7 refuses your \
                 limit flags (runs without limits work)",
                found.reason
            ),
            "run as root, or boot with systemd.unified_cgroup_hierarchy=1 for cgroup v2",
        ),
        _ => found,
    }
}

/// The cgroup mode, as found.
fn cgroups_found(top: Option<i64>, unified: Option<i64>) -> Check {
    const WHAT: &str = "cgroups";
    match cgroup_mode(top, unified) {
        CgroupMode::Unified => Check::ok(
            WHAT,
            "unified (cgroup v2 on /sys/fs/cgroup): chapter 7 uses v2",
        ),
        CgroupMode::Hybrid => Check::ok(
            WHAT,
            "hybrid (v1 controllers on /sys/fs/cgroup, v2 on /sys/fs/cgroup/unified): chapter 7 uses v1 here",
        ),
        CgroupMode::Legacy => Check::ok(
            WHAT,
            "v1 only (controllers on /sys/fs/cgroup): chapter 7 uses v1",
        ),
        CgroupMode::Unknown(None) => Check::new(
            Verdict::Warn,
            WHAT,
            "no cgroup filesystem at /sys/fs/cgroup: chapters 1 to 5 need none, chapter 7 does",
            "mount -t cgroup2 none /sys/fs/cgroup (or boot with systemd)",
        ),
        CgroupMode::Unknown(Some(magic)) => Check::new(
            Verdict::Warn,
            WHAT,
            format!(
                "/sys/fs/cgroup is neither cgroup2 nor tmpfs (f_type {magic:#x}): chapters 1 to 5 need none, \
                 chapter 7 may not work"
            ),
            "mount -t cgroup2 none /sys/fs/cgroup",
        ),
    }
}

// ------------------------------------------------------------------ busybox

/// Can the default image be provisioned: a static busybox on PATH, or apt-get and dpkg-deb?
pub fn busybox(
    static_busybox: Option<&Path>,
    apt_get: Option<&Path>,
    dpkg_deb: Option<&Path>,
) -> Check {
    const WHAT: &str = "busybox";
    if let Some(path) = static_busybox {
        return Check::ok(
            WHAT,
            format!(
                "the static {} becomes the default image on first use",
                path.display()
            ),
        );
    }
    match (apt_get, dpkg_deb) {
        (Some(_), Some(_)) => Check::ok(
            WHAT,
            "no static busybox on PATH: apt-get and dpkg-deb will fetch Debian's busybox-static on first use \
             (once, over the network)",
        ),
        _ => {
            let missing: Vec<&str> = [("apt-get", apt_get), ("dpkg-deb", dpkg_deb)]
                .iter()
                .filter(|(_, p)| p.is_none())
                .map(|(name, _)| *name)
                .collect();
            Check::new(
                Verdict::Fail,
                WHAT,
                format!(
                    "no static busybox on PATH and no {} to fetch one: chapters 2 to 5 cannot make their \
                     default image (unless images/busybox.tar is already in the data root)",
                    missing.join(" or ")
                ),
                "install a static busybox (e.g. the busybox-static package), or give --image a rootfs tarball",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(step: Step, errno: Errno) -> Probe {
        Probe::Failed {
            step,
            errno: Some(errno),
            error: format!("call: {}", errno.desc()),
        }
    }

    // kernel

    #[test]
    fn kernel_release_is_parsed() {
        assert_eq!(parse_release("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_release("5.12.19"), Some((5, 12)));
        assert_eq!(parse_release("6.1+deb12"), Some((6, 1)));
        assert_eq!(parse_release("garbage"), None);
    }

    #[test]
    fn kernel_5_12_and_later_is_ok() {
        assert_eq!(kernel(Some("5.12.0\n")).verdict, Verdict::Ok);
        let check = kernel(Some("6.18.0"));
        assert_eq!(check.verdict, Verdict::Ok);
        assert!(check.reason.contains("Linux 6.18.0"), "{check}");
    }

    #[test]
    fn kernel_older_than_5_12_fails_naming_what_it_lacks() {
        let check = kernel(Some("5.11.0"));
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check.reason.contains("mount_setattr"), "{check}");
        assert!(!check.reason.contains("overlayfs in user"), "{check}");
        let check = kernel(Some("5.10.0"));
        assert!(
            check.reason.contains("overlayfs in user namespaces"),
            "{check}"
        );
        assert!(check.reason.contains("CLOSE_RANGE_CLOEXEC"), "{check}");
        assert!(check.fix.as_deref().unwrap().contains("5.12"));
    }

    #[test]
    fn kernel_unreadable_or_unparseable_warns() {
        assert_eq!(kernel(None).verdict, Verdict::Warn);
        let check = kernel(Some("linux-next"));
        assert_eq!(check.verdict, Verdict::Warn);
        assert!(check.reason.contains("cannot tell"), "{check}");
    }

    // user namespaces

    const OPEN: Sysctls = Sysctls {
        max_user_namespaces: Some(63379),
        unprivileged_userns_clone: None,
        apparmor_restrict: None,
    };

    #[test]
    fn userns_allowed_and_probed_is_ok() {
        let check = user_namespaces(false, &OPEN, &Probe::Worked);
        assert_eq!(check.verdict, Verdict::Ok, "{check}");
        assert!(check.reason.contains("63379"), "{check}");
    }

    #[test]
    fn userns_max_zero_fails_naming_the_sysctl() {
        let sysctls = Sysctls {
            max_user_namespaces: Some(0),
            ..OPEN
        };
        let check = user_namespaces(false, &sysctls, &Probe::Worked);
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(
            check.reason.contains("user.max_user_namespaces is 0"),
            "{check}"
        );
        assert!(check
            .fix
            .as_deref()
            .unwrap()
            .contains("sysctl -w user.max_user_namespaces="));
    }

    #[test]
    fn userns_debian_switch_off_fails_naming_the_sysctl() {
        let sysctls = Sysctls {
            unprivileged_userns_clone: Some(0),
            ..OPEN
        };
        let check = user_namespaces(false, &sysctls, &Probe::Worked);
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check
            .fix
            .as_deref()
            .unwrap()
            .contains("kernel.unprivileged_userns_clone=1"),);
        let on = Sysctls {
            unprivileged_userns_clone: Some(1),
            ..OPEN
        };
        assert_eq!(
            user_namespaces(false, &on, &Probe::Worked).verdict,
            Verdict::Ok
        );
    }

    #[test]
    fn userns_apparmor_restriction_fails_naming_the_sysctl() {
        let sysctls = Sysctls {
            apparmor_restrict: Some(1),
            ..OPEN
        };
        let check = user_namespaces(false, &sysctls, &Probe::Worked);
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check.reason.contains("AppArmor"), "{check}");
        assert!(check
            .fix
            .as_deref()
            .unwrap()
            .contains("kernel.apparmor_restrict_unprivileged_userns=0"));
        let off = Sysctls {
            apparmor_restrict: Some(0),
            ..OPEN
        };
        assert_eq!(
            user_namespaces(false, &off, &Probe::Worked).verdict,
            Verdict::Ok
        );
    }

    #[test]
    fn userns_blocked_is_only_a_warning_for_root() {
        let sysctls = Sysctls {
            apparmor_restrict: Some(1),
            ..OPEN
        };
        let check = user_namespaces(true, &sysctls, &Probe::Worked);
        assert_eq!(check.verdict, Verdict::Warn);
        assert!(check.reason.contains("root needs none"), "{check}");
    }

    #[test]
    fn userns_probe_failure_fails_with_the_call_and_a_fix() {
        let check = user_namespaces(false, &OPEN, &failed(Step::Unshare, Errno::EPERM));
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(
            check.reason.contains("could not create a user namespace"),
            "{check}"
        );
        assert!(check.fix.as_deref().unwrap().contains("sysctl"));
        let check = user_namespaces(false, &OPEN, &failed(Step::Tmpfs, Errno::EACCES));
        assert!(
            check.reason.contains("mount in its own user namespace"),
            "{check}"
        );
        let check = user_namespaces(false, &OPEN, &failed(Step::IdMaps, Errno::EPERM));
        assert!(check.reason.contains("map its ids"), "{check}");
    }

    #[test]
    fn userns_probe_that_could_not_start_warns() {
        let check = user_namespaces(false, &OPEN, &failed(Step::Start, Errno::EAGAIN));
        assert_eq!(check.verdict, Verdict::Warn);
    }

    #[test]
    fn userns_overlay_failure_is_not_a_userns_failure() {
        let check = user_namespaces(false, &OPEN, &failed(Step::Overlay, Errno::EINVAL));
        assert_eq!(check.verdict, Verdict::Ok);
    }

    // propagation

    const SHARED: &str = "25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                          26 25 0:22 / /proc rw shared:5 - proc proc rw\n";
    const SLAVE: &str = "600 500 0:50 / / rw master:12 - overlay overlay rw\n";
    const PRIVATE: &str = "600 500 0:50 / / rw - overlay overlay rw\n";
    const UNBINDABLE: &str = "600 500 0:50 / / rw unbindable - overlay overlay rw\n";

    #[test]
    fn mountinfo_propagation_is_classified() {
        assert_eq!(
            root_propagation(SHARED),
            Some(Propagation::Shared("1".into()))
        );
        assert_eq!(root_propagation(SLAVE), Some(Propagation::Slave));
        assert_eq!(root_propagation(PRIVATE), Some(Propagation::Private));
        assert_eq!(root_propagation(UNBINDABLE), Some(Propagation::Unbindable));
        let both = "1 0 0:1 / / rw shared:3 master:1 - ext4 x rw";
        assert_eq!(line_propagation(both), Some(Propagation::Slave));
        // The topmost mount on / is the one that counts.
        let stacked = format!("{SHARED}700 25 0:60 / / rw - tmpfs t rw\n");
        assert_eq!(root_propagation(&stacked), Some(Propagation::Private));
        assert_eq!(root_propagation("26 25 0:22 / /proc rw - proc p rw"), None);
    }

    #[test]
    fn shared_root_is_fine_and_explains_the_pivot_root_einval() {
        let check = propagation(Some(SHARED));
        assert_eq!(check.verdict, Verdict::Ok);
        assert!(
            check.reason.starts_with("/ is shared (peer group 1)"),
            "{check}"
        );
        assert!(check.reason.contains("pivot_root"), "{check}");
        assert!(check.reason.contains("EINVAL"), "{check}");
        assert!(check.reason.contains("MS_REC|MS_PRIVATE"), "{check}");
    }

    #[test]
    fn slave_private_and_unbindable_roots_are_fine() {
        for (text, word) in [
            (SLAVE, "slave"),
            (PRIVATE, "private"),
            (UNBINDABLE, "unbindable"),
        ] {
            let check = propagation(Some(text));
            assert_eq!(check.verdict, Verdict::Ok);
            assert!(
                check.reason.starts_with(&format!("/ is {word}"))
                    || check.reason.starts_with(&format!("/ is a {word}")),
                "{check}"
            );
            assert!(check.reason.contains("EINVAL"), "{check}");
        }
    }

    #[test]
    fn no_root_mount_warns() {
        assert_eq!(propagation(None).verdict, Verdict::Warn);
        assert_eq!(propagation(Some("")).verdict, Verdict::Warn);
    }

    // overlayfs

    #[test]
    fn overlay_in_proc_filesystems() {
        let listed = "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n";
        assert_eq!(overlay_listed(Some(listed)).verdict, Verdict::Ok);
        let check = overlay_listed(Some("nodev\tsysfs\n\text4\n"));
        assert_eq!(check.verdict, Verdict::Warn);
        assert!(check.fix.as_deref().unwrap().contains("modprobe overlay"));
        assert_eq!(overlay_listed(None).verdict, Verdict::Warn);
    }

    #[test]
    fn overlay_probe_as_root() {
        assert_eq!(overlay_as_root(&Probe::Worked).verdict, Verdict::Ok);
        let check = overlay_as_root(&failed(Step::Overlay, Errno::ENODEV));
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check.fix.as_deref().unwrap().contains("modprobe overlay"));
        let check = overlay_as_root(&failed(Step::Unshare, Errno::EPERM));
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(
            check.fix.as_deref().unwrap().contains("CAP_SYS_ADMIN"),
            "{check:?}"
        );
    }

    #[test]
    fn overlay_probe_in_a_user_namespace() {
        assert_eq!(
            overlay_in_user_ns(false, &Probe::Worked).verdict,
            Verdict::Ok
        );
        let check = overlay_in_user_ns(false, &failed(Step::Overlay, Errno::EPERM));
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check.fix.as_deref().unwrap().contains("5.11"));
        assert_eq!(
            overlay_in_user_ns(true, &failed(Step::Overlay, Errno::EPERM)).verdict,
            Verdict::Warn
        );
        let check = overlay_in_user_ns(false, &failed(Step::Unshare, Errno::EPERM));
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check.reason.starts_with("not tried"), "{check}");
    }

    #[test]
    fn probe_reports_are_parsed() {
        assert_eq!(parse_report("ok"), Probe::Worked);
        assert_eq!(
            parse_report("5\n1\nmount(...): Operation not permitted"),
            Probe::Failed {
                step: Step::Overlay,
                errno: Some(Errno::EPERM),
                error: "mount(...): Operation not permitted".into()
            }
        );
        assert!(matches!(
            parse_report(""),
            Probe::Failed {
                step: Step::Start,
                errno: None,
                ..
            }
        ));
    }

    // subordinate ids

    const ALICE: Who = Who {
        root: false,
        uid: 1000,
        name: Some("alice"),
    };

    #[test]
    fn subordinate_ranges_by_name_or_uid() {
        let text = "# comment\nbob:100000:65536\nalice:165536:65536\n";
        assert_eq!(
            subid_range(text, Some("alice"), 1000),
            Some((165536, 65536))
        );
        assert_eq!(
            subid_range("1000:200000:10\n", Some("alice"), 1000),
            Some((200000, 10))
        );
        assert_eq!(subid_range(text, Some("carol"), 1002), None);
        assert_eq!(subid_range("alice:x:1\n", Some("alice"), 1000), None);
        assert_eq!(
            user_name(
                "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
                1000
            ),
            Some("alice".into())
        );
    }

    #[test]
    fn subordinate_ids_present_are_ok() {
        let check = subordinate_ids(
            &ALICE,
            Some("alice:100000:65536\n"),
            Some("alice:100000:65536\n"),
        );
        assert_eq!(check.verdict, Verdict::Ok, "{check}");
        assert!(check.reason.contains("65536 uids from 100000"), "{check}");
    }

    #[test]
    fn subordinate_ids_missing_only_warn() {
        let check = subordinate_ids(&ALICE, Some("alice:100000:65536\n"), None);
        assert_eq!(check.verdict, Verdict::Warn);
        assert!(check.reason.contains("/etc/subgid"), "{check}");
        assert!(!check.reason.contains("/etc/subuid"), "{check}");
        assert!(check.fix.as_deref().unwrap().ends_with(" alice"));
        let nobody = Who {
            name: None,
            uid: 61000,
            ..ALICE
        };
        let check = subordinate_ids(&nobody, None, None);
        assert!(check.reason.contains("uid 61000"), "{check}");
    }

    #[test]
    fn subordinate_ids_are_not_needed_as_root() {
        let root = Who {
            root: true,
            uid: 0,
            name: Some("root"),
        };
        assert_eq!(subordinate_ids(&root, None, None).verdict, Verdict::Ok);
    }

    #[test]
    fn uidmap_tools_missing_only_warn() {
        let (u, g) = (
            Path::new("/usr/bin/newuidmap"),
            Path::new("/usr/bin/newgidmap"),
        );
        assert_eq!(uidmap_tools(false, Some(u), Some(g)).verdict, Verdict::Ok);
        let check = uidmap_tools(false, None, Some(g));
        assert_eq!(check.verdict, Verdict::Warn);
        assert!(check.fix.as_deref().unwrap().contains("uidmap"));
        assert_eq!(uidmap_tools(true, None, None).verdict, Verdict::Ok);
    }

    #[test]
    fn the_id_map_line_names_the_map_a_rootless_run_uses() {
        let range = namespace::IdMap::Range {
            uid: 1000,
            gid: 1001,
            uids: (100000, 65535),
            gids: (200000, 65535),
        };
        let check = id_map(false, &range);
        assert_eq!(check.verdict, Verdict::Ok);
        assert!(
            check.reason.contains(
                "map 0 to uid 1000 and 1-65535 to 100000-165534 (gid 1001, and 200000-265534)"
            ),
            "{check}"
        );
        let single = namespace::IdMap::Single {
            uid: 1000,
            gid: 1000,
            why: "no range for you in /etc/subuid".into(),
        };
        let check = id_map(false, &single);
        assert!(
            check
                .reason
                .contains("map one uid, 0 to uid 1000: no range"),
            "{check}"
        );
        assert!(id_map(true, &single).reason.starts_with("root runs"));
    }

    // cgroups

    #[test]
    fn cgroup_modes_from_statfs() {
        assert_eq!(
            cgroup_mode(Some(CGROUP2_SUPER_MAGIC), None),
            CgroupMode::Unified
        );
        assert_eq!(
            cgroup_mode(Some(TMPFS_MAGIC), Some(CGROUP2_SUPER_MAGIC)),
            CgroupMode::Hybrid
        );
        assert_eq!(cgroup_mode(Some(TMPFS_MAGIC), None), CgroupMode::Legacy);
        assert_eq!(cgroup_mode(None, None), CgroupMode::Unknown(None));
        assert_eq!(
            cgroup_mode(Some(0xEF53), None),
            CgroupMode::Unknown(Some(0xEF53))
        );
    }

    #[test]
    fn cgroup_checks_never_fail() {
        assert!(cgroups(Some(TMPFS_MAGIC), Some(CGROUP2_SUPER_MAGIC), false)
            .reason
            .starts_with("hybrid"));
        assert!(cgroups(Some(CGROUP2_SUPER_MAGIC), None, false)
            .reason
            .starts_with("unified"));
        assert!(cgroups(Some(TMPFS_MAGIC), None, false)
            .reason
            .starts_with("v1 only"));
        assert_eq!(cgroups(None, None, false).verdict, Verdict::Warn);
        assert_eq!(cgroups(Some(0xEF53), None, false).verdict, Verdict::Warn);
        // An ordinary user on v1 is warned; on v2 the mode is all it says.
        let rootless = cgroups(Some(TMPFS_MAGIC), Some(CGROUP2_SUPER_MAGIC), true);
        assert_eq!(rootless.verdict, Verdict::Warn);
        assert!(rootless.reason.contains("refuses your limit flags"));
        assert_eq!(
            cgroups(Some(CGROUP2_SUPER_MAGIC), None, true).verdict,
            Verdict::Ok
        );
    }

    // busybox

    #[test]
    fn busybox_from_path_or_apt() {
        let bin = Path::new("/bin/busybox");
        let apt = Path::new("/usr/bin/apt-get");
        let dpkg = Path::new("/usr/bin/dpkg-deb");
        assert!(busybox(Some(bin), None, None)
            .reason
            .contains("/bin/busybox"));
        let check = busybox(None, Some(apt), Some(dpkg));
        assert_eq!(check.verdict, Verdict::Ok);
        assert!(check.reason.contains("apt-get"), "{check}");
    }

    #[test]
    fn busybox_without_a_way_to_get_it_fails() {
        let check = busybox(None, Some(Path::new("/usr/bin/apt-get")), None);
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check.reason.contains("no dpkg-deb"), "{check}");
        assert!(check.fix.as_deref().unwrap().contains("--image"));
    }

    // the report line

    #[test]
    fn a_line_shows_the_verdict_and_the_fix() {
        let check = Check::new(Verdict::Fail, "kernel", "too old", "upgrade");
        assert_eq!(check.to_string(), "FAIL  kernel: too old → fix: upgrade");
        assert_eq!(Check::ok("x", "fine").to_string(), "ok    x: fine");
    }
}
