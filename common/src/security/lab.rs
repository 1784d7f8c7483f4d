//! The escape lab: `run --try-escapes` (ch5 and ch6, through the shared
//! `run`). See docs/ch6-security.md#the-escape-lab.
//!
//! The container is set up exactly as for a command, with every restriction
//! its chapter applies; then, where `execve` would start the command,
//! stepbox itself (the same process, already inside and restricted) tries
//! each known way out of a container and prints one verdict table. The
//! attempts are those of tests/support/escapes.c, in Rust.
//!
//! Nothing is destructive: files are only opened for writing, never written;
//! device nodes and the files reached are only read; what is mounted is
//! unmounted again, a volume remounted read-write is remounted read-only at
//! once; capabilities are looked at (capget, prctl), never used; no byte is
//! pushed into any terminal, and a traced process is let go by the exit of
//! the tracer. Each row says ESCAPED, CONTAINED, or NOT-RUN (this container
//! or host cannot try it: that proves nothing either way), with its proof:
//! the call in C form, its result or errno, and what it read, escaped.

use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, openat, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fstat, makedev, mknod, Mode, SFlag};
use nix::sys::statvfs::{statvfs, FsFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use crate::error::{printable, quote, Result};
use crate::volume::Volume;
use crate::{detail, narrate};

/// What the host side knows that the container cannot see, recorded by the
/// container's parent just before it clones the child.
#[derive(Debug, Clone)]
pub struct Lab {
    /// The volumes' targets in the container, and whether each is `:ro`.
    volumes: Vec<(String, bool)>,
    /// A process outside the container: its parent, by host pid and start time.
    outside: (i32, Option<u64>),
    /// The caller's terminal, if any of its fds 0-2 is one: (st_dev, st_ino).
    caller_terminal: Vec<(u64, u64)>,
}

impl Lab {
    /// In the container's parent, on the host, before the clone.
    pub fn on_host(volumes: &[Volume]) -> Lab {
        let me = std::process::id() as i32;
        let caller_terminal = (0..3)
            .filter(|fd| {
                // SAFETY: isatty only looks at one of our own fds.
                unsafe { libc::isatty(*fd) == 1 }
            })
            .filter_map(|fd| fs::metadata(format!("/proc/self/fd/{fd}")).ok())
            .map(|m| (m.dev(), m.ino()))
            .collect();
        Lab {
            volumes: volumes
                .iter()
                .map(|v| (v.target.display().to_string(), v.read_only))
                .collect(),
            outside: (me, crate::process::start_time(me)),
            caller_terminal,
        }
    }
}

/// One row's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Escaped,
    Contained,
    NotRun,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Escaped => "ESCAPED",
            Verdict::Contained => "CONTAINED",
            Verdict::NotRun => "NOT-RUN",
        }
    }
}

/// One escape: what it tried, how it ended, the proof, where it comes from.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: &'static str,
    pub tried: &'static str,
    pub verdict: Verdict,
    pub proof: String,
    pub from: &'static str,
}

/// A row's fixed parts; the result makes the row from a verdict and its proof.
fn row(
    id: &'static str,
    tried: &'static str,
    from: &'static str,
) -> impl Fn(Verdict, String) -> Row {
    move |verdict, proof| Row {
        id,
        tried,
        verdict,
        proof,
        from,
    }
}

/// `= -1 EPERM (Operation not permitted)`, as strace shows a failed call.
fn failed(errno: Errno) -> String {
    format!("= -1 {errno:?} ({})", errno.desc())
}

/// Contained if the kernel (or the filter) said no for lack of a right.
fn refused(errno: Errno) -> Verdict {
    match errno {
        Errno::EPERM | Errno::EACCES | Errno::EROFS => Verdict::Contained,
        _ => Verdict::NotRun,
    }
}

/// Run every attempt, print the table on stdout, and end this process with
/// 0 (the table is the result; an error before it is exit 125 as usual).
pub fn run(lab: &Lab) -> Result<std::convert::Infallible> {
    narrate!(
        6,
        "/* --try-escapes: instead of execve, stepbox tries each escape from here, restricted as the command would be */"
    );
    crate::narration::flush();
    let rows = try_all(lab);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(table(&rows).as_bytes());
    let _ = out.flush();
    crate::narration::flush();
    std::process::exit(0)
}

/// Every escape, in the lab's order (the remount last: it changes a mount).
pub fn try_all(lab: &Lab) -> Vec<Row> {
    let mounts = Mount::all();
    let rows = vec![
        shocker(lab, &mounts),
        block_device(lab, &mounts),
        kmsg(),
        open_for_writing(
            "core_pattern",
            "open /proc/sys/kernel/core_pattern for writing",
            "/proc/sys/kernel/core_pattern",
            "core(5): a |handler runs as the host's root",
        ),
        open_for_writing(
            "sysrq-trigger",
            "open /proc/sysrq-trigger for writing",
            "/proc/sysrq-trigger",
            "Docker's read-only paths ('b' reboots)",
        ),
        open_for_writing(
            "drop_caches",
            "open /proc/sys/vm/drop_caches for writing",
            "/proc/sys/vm/drop_caches",
            "Docker's read-only /proc/sys",
        ),
        try_mount(
            "mount-sysfs",
            "mount sysfs",
            "sysfs",
            "Docker mounts /sys read-only",
        ),
        try_mount(
            "mount-cgroup2",
            "mount cgroup2, the host's cgroup tree",
            "cgroup2",
            "CVE-2022-0492 (release_agent)",
        ),
        release_agent(),
        try_mount(
            "mount-proc",
            "mount a new proc, without the masks",
            "proc",
            "Docker's masked paths",
        ),
        capability(
            "cap-sys-module",
            "hold CAP_SYS_MODULE: load a kernel module",
            (16, "CAP_SYS_MODULE"),
            "init_module(2) loads a module into the host's kernel",
        ),
        capability(
            "cap-sys-time",
            "hold CAP_SYS_TIME: set the host's clock",
            (25, "CAP_SYS_TIME"),
            "clock_settime(2) sets the host's clock",
        ),
        capability(
            "cap-net-admin",
            "hold CAP_NET_ADMIN over the host's network",
            (12, "CAP_NET_ADMIN"),
            "it may change the host's interfaces, routes and firewall",
        ),
        tiocsti(lab),
        ptrace_outside(lab),
        remount_read_write(lab),
    ];
    for row in &rows {
        detail!(
            6,
            "escape lab: {} {}: {}",
            row.id,
            row.verdict.word(),
            row.proof
        );
    }
    rows
}

/// The table `--try-escapes` prints: one line per row (id, verdict, what it
/// tried, where it comes from), its proof indented below it, then a count.
pub fn table(rows: &[Row]) -> String {
    let program = std::env::args()
        .next()
        .and_then(|p| {
            Path::new(&p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "stepbox".into());
    let namespace = match fs::read_to_string("/proc/self/uid_map") {
        Ok(map) if is_host_user_namespace(&map) => "the host's user namespace",
        _ => "a user namespace of its own (rootless)",
    };
    let uid = nix::unistd::getuid();
    let mut out = format!("escape lab: {program}, as uid {uid}, in {namespace}\n\n");
    let width = |f: &dyn Fn(&Row) -> usize| rows.iter().map(f).max().unwrap_or(0);
    let (id_w, tried_w) = (width(&|r| r.id.len()).max(6), width(&|r| r.tried.len()));
    out.push_str(&format!(
        "{:<id_w$}  {:<9}  {:<tried_w$}  FROM\n",
        "ESCAPE", "VERDICT", "TRIED"
    ));
    for r in rows {
        out.push_str(&format!(
            "{:<id_w$}  {:<9}  {:<tried_w$}  {}\n",
            r.id,
            r.verdict.word(),
            r.tried,
            r.from
        ));
        out.push_str(&format!("    {}\n", printable(&r.proof)));
    }
    let count = |v: Verdict| rows.iter().filter(|r| r.verdict == v).count();
    out.push_str(&format!(
        "\nESCAPED {}, CONTAINED {}, NOT-RUN {} (a NOT-RUN row proves nothing either way)\n",
        count(Verdict::Escaped),
        count(Verdict::Contained),
        count(Verdict::NotRun)
    ));
    out
}

/// One line of /proc/self/mountinfo, as the lab needs it.
#[derive(Debug, Clone)]
struct Mount {
    dev: (u64, u64),
    root: String,
    point: String,
    fstype: String,
    source: String,
}

impl Mount {
    fn all() -> Vec<Mount> {
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        text.lines().filter_map(Mount::parse).collect()
    }

    fn parse(line: &str) -> Option<Mount> {
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split(' ').collect();
        let (major, minor) = fields.get(2)?.split_once(':')?;
        let mut after = after.split(' ');
        Some(Mount {
            dev: (major.parse().ok()?, minor.parse().ok()?),
            root: unescape(fields.get(3)?),
            point: unescape(fields.get(4)?),
            fstype: after.next()?.to_string(),
            source: unescape(after.next()?),
        })
    }

    /// The mount at `point` (the last one: it hides those below).
    fn at<'m>(mounts: &'m [Mount], point: &str) -> Option<&'m Mount> {
        mounts.iter().rev().find(|m| m.point == point)
    }
}

/// mountinfo writes a space as `\040`, a tab `\011`, a newline `\012`, `\` as `\134`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_host_user_namespace(uid_map: &str) -> bool {
    let fields: Vec<&str> = uid_map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// The first line of `path` under `dir` (at most 80 bytes), if it can be read.
fn first_line(dir: &OwnedFd, path: &str) -> Option<String> {
    let fd = openat(dir, path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).ok()?;
    let mut buf = [0u8; 80];
    let n = nix::unistd::read(&fd, &mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    Some(text.lines().next().unwrap_or("").to_string())
}

// -------------------------------------------------------------------------
// The escapes
// -------------------------------------------------------------------------

/// The 2014 "shocker": `open_by_handle_at` opens any file of a filesystem
/// given its handle, through any directory of it (here a volume), whatever
/// the process's root. The handle of ext2/3/4's root directory is always
/// { FILEID_INO32_GEN, inode 2, generation 0 }: shocker started there.
fn shocker(lab: &Lab, mounts: &[Mount]) -> Row {
    let row = row(
        "open_by_handle_at",
        "open_by_handle_at through a volume: its filesystem's root",
        "shocker (2014, Docker 0.11)",
    );
    if lab.volumes.is_empty() {
        return row(
            Verdict::NotRun,
            "no volume: give one on the host's disk, e.g. -v /:/host:ro".into(),
        );
    }
    let on_ext = lab.volumes.iter().find_map(|(target, _)| {
        Mount::at(mounts, target)
            .filter(|m| matches!(m.fstype.as_str(), "ext2" | "ext3" | "ext4"))
            .map(|m| (target, m))
    });
    let Some((target, mount)) = on_ext else {
        let seen: Vec<String> = lab
            .volumes
            .iter()
            .map(|(t, _)| {
                let fstype = Mount::at(mounts, t).map_or("?", |m| m.fstype.as_str());
                format!("{t} is {fstype}")
            })
            .collect();
        return row(
            Verdict::NotRun,
            format!(
                "no volume on ext2/3/4 ({}): shocker's handle {{ inode 2, generation 0 }} is their root directory's",
                seen.join(", ")
            ),
        );
    };
    let call = format!(
        "open_by_handle_at(open({}), {{ .handle_type = 1, .f_handle = {{ inode 2, generation 0 }} }}, O_RDONLY)",
        quote(target)
    );
    let volume = match open(
        target.as_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(errno) => {
            return row(
                Verdict::NotRun,
                format!("open({}) {}", quote(target), failed(errno)),
            )
        }
    };
    #[repr(C)]
    struct Handle {
        handle_bytes: u32,
        handle_type: i32,
        f_handle: [u8; 8],
    }
    let handle = Handle {
        handle_bytes: 8,
        handle_type: 1,
        f_handle: [2, 0, 0, 0, 0, 0, 0, 0],
    };
    // SAFETY: the handle is a valid struct file_handle of 8 bytes; the
    // result, if any, is a new fd that we own at once.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            volume.as_raw_fd(),
            &handle as *const Handle,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let errno = Errno::last();
        return row(refused(errno), format!("{call} {}", failed(errno)));
    }
    // SAFETY: open_by_handle_at returned a new fd, owned by nobody else.
    let reached: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as i32) };
    let (inside, found) = (fstat(&volume), fstat(&reached));
    let whose = match (inside, found) {
        (Ok(v), Ok(r)) if v.st_ino == r.st_ino => {
            "the volume's own root (a volume of / hands over the whole filesystem already)"
                .to_string()
        }
        _ => format!("outside the volume (its {} there)", quote(&mount.root)),
    };
    let mut names: Vec<String> = reached
        .try_clone()
        .ok()
        .and_then(|fd| nix::dir::Dir::from_fd(fd).ok())
        .map(|mut dir| {
            dir.iter()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "." && n != "..")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let listing = if names.len() > 6 {
        format!("{}, ... ({} entries)", names[..6].join(", "), names.len())
    } else {
        names.join(", ")
    };
    // shocker read etc/shadow; etc/passwd makes the same point, and is public.
    let passwd = match first_line(&reached, "etc/passwd") {
        Some(line) => format!("; openat(fd, \"etc/passwd\") reads \"{line}\""),
        None => String::new(),
    };
    row(
        Verdict::Escaped,
        format!(
            "{call} = {fd}: the root directory of {} ({}), {whose}; it holds {listing}{passwd}",
            mount.source, mount.fstype
        ),
    )
}

/// Make a device node where the container can write, and open it; unlinked
/// at once. Each place tried, and why it failed, goes into the proof.
fn made_device(
    name: &str,
    kind: SFlag,
    dev: (u64, u64),
    flags: OFlag,
) -> (Option<OwnedFd>, String) {
    let mut tried = Vec::new();
    let (major, minor) = dev;
    for dir in ["/dev", "", "/tmp"] {
        let path = format!("{dir}/.escape-{name}");
        let _ = nix::unistd::unlink(path.as_str());
        let call = format!(
            "mknod({}, {}|0600, makedev({major}, {minor}))",
            quote(&path),
            if kind == SFlag::S_IFBLK {
                "S_IFBLK"
            } else {
                "S_IFCHR"
            }
        );
        if let Err(errno) = mknod(
            path.as_str(),
            kind,
            Mode::from_bits_truncate(0o600),
            makedev(major, minor),
        ) {
            tried.push(format!("{call} {}", failed(errno)));
            continue;
        }
        let opened = open(path.as_str(), flags | OFlag::O_CLOEXEC, Mode::empty());
        let _ = nix::unistd::unlink(path.as_str());
        match opened {
            Ok(fd) => {
                tried.push(format!("{call} = 0, open = {}", fd.as_raw_fd()));
                return (Some(fd), tried.join("; "));
            }
            Err(errno) => tried.push(format!("{call} = 0, open {}", failed(errno))),
        }
    }
    (None, tried.join("; "))
}

/// The host's disk: the device of a volume (its mountinfo line), else the
/// first disk /proc/partitions lists (Docker does not mask it).
fn host_disk(lab: &Lab, mounts: &[Mount]) -> Option<((u64, u64), String)> {
    let of_volume = lab.volumes.iter().find_map(|(target, _)| {
        Mount::at(mounts, target)
            .filter(|m| m.dev.0 != 0)
            .map(|m| (m.dev, format!("{}, the volume {target}'s device", m.source)))
    });
    of_volume.or_else(|| {
        let text = fs::read_to_string("/proc/partitions").ok()?;
        text.lines().skip(2).find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let name = *f.get(3)?;
            let virtual_disk = ["loop", "ram", "zram", "sr", "nbd"]
                .iter()
                .any(|p| name.starts_with(p));
            (!virtual_disk).then(|| {
                Some((
                    (f[0].parse().ok()?, f[1].parse().ok()?),
                    format!("{name}, the first disk in /proc/partitions"),
                ))
            })?
        })
    })
}

fn block_device(lab: &Lab, mounts: &[Mount]) -> Row {
    let row = row(
        "mknod-block-device",
        "mknod the host's disk and read its superblock",
        "why Docker has a devices cgroup",
    );
    let Some((dev, what)) = host_disk(lab, mounts) else {
        return row(
            Verdict::NotRun,
            "no block device in sight: no volume on a disk, nothing in /proc/partitions".into(),
        );
    };
    let (fd, tried) = made_device("disk", SFlag::S_IFBLK, dev, OFlag::O_RDONLY);
    let Some(fd) = fd else {
        // nodev says EACCES; EPERM after a mknod that worked comes from
        // around stepbox (a devices cgroup, an LSM), which refuses the host too.
        if tried.contains("= 0, open = -1 EPERM") {
            return row(
                Verdict::NotRun,
                format!("{what}: {tried}: EPERM is not nodev's EACCES: something around stepbox (a devices cgroup) refuses this disk, to the host too"),
            );
        }
        return row(Verdict::Contained, format!("{what}: {tried}"));
    };
    let mut magic = [0u8; 2];
    match nix::sys::uio::pread(&fd, &mut magic, 1080) {
        Ok(2) => {
            let ext = if magic == [0x53, 0xef] {
                ": ext2/3/4's superblock magic"
            } else {
                ""
            };
            row(
                Verdict::Escaped,
                format!(
                    "{what}: {tried}; pread(fd, 2, 1080) = {:02x} {:02x}{ext}",
                    magic[0], magic[1]
                ),
            )
        }
        Ok(n) => row(
            Verdict::Escaped,
            format!("{what}: {tried}; pread(fd, 2, 1080) = {n}: opened the host's disk"),
        ),
        Err(errno) => row(
            Verdict::Escaped,
            format!(
                "{what}: {tried}; pread(fd, 2, 1080) {}: opened the host's disk",
                failed(errno)
            ),
        ),
    }
}

fn kmsg() -> Row {
    let row = row(
        "mknod-dev-kmsg",
        "mknod /dev/kmsg (c 1 11) and read the kernel log",
        "dmesg_restrict; Docker's devices cgroup",
    );
    let (fd, tried) = made_device(
        "kmsg",
        SFlag::S_IFCHR,
        (1, 11),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK,
    );
    let Some(fd) = fd else {
        return row(Verdict::Contained, tried);
    };
    let mut record = [0u8; 256];
    match nix::unistd::read(&fd, &mut record) {
        Ok(n) => {
            let text = String::from_utf8_lossy(&record[..n]);
            let text: String = text.trim_end().chars().take(60).collect();
            row(
                Verdict::Escaped,
                format!("{tried}; read = {n}: the host's kernel log: \"{text}\""),
            )
        }
        Err(errno) => row(refused(errno), format!("{tried}; read {}", failed(errno))),
    }
}

fn open_for_writing(id: &'static str, tried: &'static str, path: &str, from: &'static str) -> Row {
    let row = row(id, tried, from);
    let call = format!("open({}, O_WRONLY)", quote(path));
    match open(path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(fd) => row(
            Verdict::Escaped,
            format!("{call} = {} (nothing written)", fd.as_raw_fd()),
        ),
        Err(Errno::ENOENT) => row(
            Verdict::NotRun,
            format!(
                "{call} {}: this kernel has no such file",
                failed(Errno::ENOENT)
            ),
        ),
        Err(errno) => row(refused(errno), format!("{call} {}", failed(errno))),
    }
}

/// Mount `fstype` on a directory of /tmp, look, unmount.
fn try_mount(id: &'static str, tried: &'static str, fstype: &str, from: &'static str) -> Row {
    let row = row(id, tried, from);
    let dir = format!("/tmp/.escape-{fstype}");
    let call = format!(
        "mount({}, {}, {}, 0, NULL)",
        quote(fstype),
        quote(&dir),
        quote(fstype)
    );
    match nix::unistd::mkdir(dir.as_str(), Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(errno) => {
            return row(
                Verdict::NotRun,
                format!("mkdir({}) {}", quote(&dir), failed(errno)),
            )
        }
    }
    let mounted = mount(
        Some(fstype),
        dir.as_str(),
        Some(fstype),
        MsFlags::empty(),
        None::<&str>,
    );
    if let Err(errno) = mounted {
        let _ = fs::remove_dir(&dir);
        return row(refused(errno), format!("{call} {}", failed(errno)));
    }
    let seen = match fstype {
        "sysfs" => {
            let mut names: Vec<String> = fs::read_dir(&dir)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            format!("it holds {}", names.join(", "))
        }
        "cgroup2" => {
            let controllers =
                fs::read_to_string(format!("{dir}/cgroup.controllers")).unwrap_or_default();
            format!("the host's cgroup.controllers: \"{}\"", controllers.trim())
        }
        _ => {
            let path = format!("{dir}/sys/kernel/core_pattern");
            match open(
                path.as_str(),
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                Ok(_) => "its sys/kernel/core_pattern opens for writing (nothing written)".into(),
                Err(errno) => format!(
                    "its sys/kernel/core_pattern: open O_WRONLY {}",
                    failed(errno)
                ),
            }
        }
    };
    let unmounted = match umount2(dir.as_str(), MntFlags::MNT_DETACH) {
        Ok(()) => "unmounted again".to_string(),
        Err(errno) => format!("umount2 {}", failed(errno)),
    };
    let _ = fs::remove_dir(&dir);
    row(
        Verdict::Escaped,
        format!("{call} = 0 ({unmounted}): {seen}"),
    )
}

/// CVE-2022-0492's route on cgroup v1: mount each v1 hierarchy this
/// process is in (from /proc/self/cgroup; where it is in none, a new named
/// one) and open the release_agent at the mount's root for writing. The
/// kernel runs that program as the host's root when a cgroup of the tree
/// empties. Only a hierarchy's root has one: inside a cgroup namespace
/// rooted at the container's own cgroup in every tree (chapter 7), no
/// mount's root is a hierarchy's, and there is none to open.
fn release_agent() -> Row {
    let row = row(
        "release-agent-v1",
        "mount each cgroup v1 tree, open its release_agent",
        "CVE-2022-0492 (release_agent)",
    );
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut trees: Vec<String> = own
        .lines()
        .filter_map(|line| line.split(':').nth(1))
        .filter(|controllers| !controllers.is_empty())
        .map(|controllers| match controllers.starts_with("name=") {
            true => format!("none,{controllers}"),
            false => controllers.to_string(),
        })
        .collect();
    if trees.is_empty() {
        trees.push("none,name=stepbox-lab".into());
    }
    let dir = "/tmp/.escape-cgroup1";
    match nix::unistd::mkdir(dir, Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(errno) => {
            return row(
                Verdict::NotRun,
                format!("mkdir({}) {}", quote(dir), failed(errno)),
            )
        }
    }
    let mut mounted = Vec::new();
    let mut last_refusal = None;
    for options in &trees {
        let call = format!(
            "mount(\"cgroup\", {}, \"cgroup\", 0, {})",
            quote(dir),
            quote(options)
        );
        let done = mount(
            Some("cgroup"),
            dir,
            Some("cgroup"),
            MsFlags::empty(),
            Some(options.as_str()),
        );
        if let Err(errno) = done {
            last_refusal = Some((refused(errno), format!("{call} {}", failed(errno))));
            continue;
        }
        let agent = format!("{dir}/release_agent");
        let opened = open(
            agent.as_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        let _ = umount2(dir, MntFlags::MNT_DETACH);
        match opened {
            Ok(_) => {
                let _ = fs::remove_dir(dir);
                return row(
                    Verdict::Escaped,
                    format!("{call} = 0 (unmounted again): its root's release_agent opens for writing (nothing written)"),
                );
            }
            Err(Errno::ENOENT) => mounted.push(options.as_str()),
            Err(errno) => {
                last_refusal = Some((
                    refused(errno),
                    format!("{agent}: open O_WRONLY {}", failed(errno)),
                ))
            }
        }
    }
    let _ = fs::remove_dir(dir);
    match (mounted.is_empty(), last_refusal) {
        (false, _) => row(
            Verdict::Contained,
            format!(
                "mounted {} (unmounted again): no release_agent at any root, each is this container's own cgroup",
                mounted.join(" ")
            ),
        ),
        (true, Some((verdict, proof))) => row(verdict, proof),
        (true, None) => row(Verdict::NotRun, "no cgroup v1 tree to try".into()),
    }
}

/// A capability's bit in this process's effective set (capget(2)), and in
/// its bounding set (prctl(PR_CAPBSET_READ)). Held in the host's user
/// namespace, it is the host's; in one of the container's own, the kernel
/// checks it against the host's resources and finds it counts for nothing.
fn capability(id: &'static str, tried: &'static str, (cap, name): (u32, &str), would: &str) -> Row {
    let row = row(id, tried, "capabilities(7)");
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget fills two Data structs for version 3; both are ours.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return row(Verdict::NotRun, format!("capget {}", failed(Errno::last())));
    }
    let effective = data[(cap / 32) as usize].effective & (1 << (cap % 32)) != 0;
    // SAFETY: PR_CAPBSET_READ only reads this process's bounding set.
    let bounding =
        unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) } == 1;
    let uid_map = fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let map = uid_map.split_whitespace().collect::<Vec<_>>().join(" ");
    let sets = format!(
        "capget: {name} {} the effective set; prctl(PR_CAPBSET_READ, {name}) = {}",
        if effective { "in" } else { "not in" },
        u8::from(bounding)
    );
    if !effective {
        return row(Verdict::Contained, sets);
    }
    if is_host_user_namespace(&uid_map) {
        row(
            Verdict::Escaped,
            format!(
                "{sets}; uid_map \"{map}\": the host's user namespace, where {would} (not tried)"
            ),
        )
    } else {
        row(
            Verdict::Contained,
            format!("{sets}; but uid_map \"{map}\": a user namespace of its own, which owns nothing of the host's"),
        )
    }
}

/// TIOCSTI pushes a byte into a terminal's input, as if typed. The lab
/// looks for the caller's terminal among fds 0-2 (same st_dev and st_ino as
/// the caller's, recorded on the host) and probes it with a NULL byte
/// pointer, which the kernel refuses (EFAULT) only after its checks passed:
/// nothing is ever typed. It also says whose the controlling terminal is.
fn tiocsti(lab: &Lab) -> Row {
    let row = row(
        "tiocsti",
        "TIOCSTI into the caller's terminal",
        "CVE-2017-5226 (bubblewrap)",
    );
    let controlling = controlling_terminal();
    if lab.caller_terminal.is_empty() {
        return row(
            Verdict::NotRun,
            format!(
                "the caller has no terminal to inject into (run it from one); here {controlling}"
            ),
        );
    }
    for fd in 0..3 {
        let Ok(st) = fs::metadata(format!("/proc/self/fd/{fd}")) else {
            continue;
        };
        if !lab.caller_terminal.contains(&(st.dev(), st.ino())) {
            continue;
        }
        // The probe: a NULL byte pointer. The kernel checks the right first
        // (our controlling terminal, or CAP_SYS_ADMIN), then reads the byte:
        // EFAULT means the checks passed, and nothing was typed.
        // SAFETY: TIOCSTI with NULL reads nothing and writes nothing.
        let rc = unsafe { libc::ioctl(fd, libc::TIOCSTI, std::ptr::null::<u8>()) };
        let errno = if rc == 0 {
            Errno::UnknownErrno
        } else {
            Errno::last()
        };
        let call = format!("ioctl({fd}, TIOCSTI, NULL) {}", failed(errno));
        return if errno == Errno::EFAULT {
            row(
                Verdict::Escaped,
                format!("fd {fd} is the caller's terminal; {call}: the kernel let it through, only the NULL byte stopped it (with a byte, it is typed into the caller's shell)"),
            )
        } else {
            row(
                Verdict::Contained,
                format!("fd {fd} is the caller's terminal, but {call}: it is not our controlling terminal ({controlling}) and TIOCSTI into another needs CAP_SYS_ADMIN"),
            )
        };
    }
    if controlling.contains("not one of the container's") {
        return row(Verdict::Escaped, controlling);
    }
    row(
        Verdict::Contained,
        format!("{controlling}; no fd 0-2 is the caller's terminal (same st_dev and st_ino)"),
    )
}

/// This process's controlling terminal (/proc/self/stat's tty_nr), named by
/// the pty of the container's own devpts that has its number, if one has.
fn controlling_terminal() -> String {
    let tty_nr: u64 = fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let after = stat.rsplit_once(") ")?.1.to_string();
            after.split(' ').nth(4)?.parse().ok()
        })
        .unwrap_or(0);
    if tty_nr == 0 {
        return "no controlling terminal (tty_nr 0: setsid, chapter 1)".into();
    }
    let (major, minor) = (
        (tty_nr >> 8) & 0xfff,
        (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00),
    );
    let own = fs::read_dir("/dev/pts").ok().and_then(|dir| {
        dir.filter_map(|e| e.ok()).find_map(|e| {
            let rdev = e.metadata().ok()?.rdev();
            (libc::major(rdev) as u64 == major && libc::minor(rdev) as u64 == minor)
                .then(|| e.path().display().to_string())
        })
    });
    match own {
        Some(name) => format!(
            "the controlling terminal ({major}:{minor}) is {name}, a pty of the container's own devpts (chapter 2)"
        ),
        None => format!(
            "the controlling terminal ({major}:{minor}) is not one of the container's own ptys"
        ),
    }
}

/// ptrace of the container's parent, a host process, by its host pid. A
/// pid namespace gives the host's processes no pid inside: the number names
/// nothing, or one of the container's own processes (then left alone). The
/// attempt runs in a forked helper: its exit detaches whatever it traced.
fn ptrace_outside(lab: &Lab) -> Row {
    let row = row(
        "ptrace-outside",
        "ptrace a process outside: the container's parent",
        "pid_namespaces(7); ptrace(2)",
    );
    let (pid, start) = lab.outside;
    let ppid = fs::read_to_string("/proc/1/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PPid:").map(|p| p.trim().to_string()))
        })
        .unwrap_or_else(|| "?".into());
    let here = crate::process::start_time(pid);
    if here.is_some() && here != start {
        return row(
            Verdict::Contained,
            format!("host pid {pid} names another process here, one of the container's own (other start time): not touched; /proc/1's PPid is {ppid}"),
        );
    }
    let call = format!("ptrace(PTRACE_SEIZE, {pid}, 0, 0)");
    // SAFETY: the forked helper makes one system call and _exits.
    let result = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            // SAFETY: PTRACE_SEIZE attaches without stopping the tracee;
            // our _exit detaches it again.
            let rc = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) };
            let code = if rc == 0 { 0 } else { Errno::last() as i32 };
            // SAFETY: leave the helper without the parent's clean-up.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => break Ok(code),
                Err(Errno::EINTR) => continue,
                Ok(other) => break Err(format!("the helper ended: {other:?}")),
                Err(errno) => break Err(format!("waitpid {}", failed(errno))),
            }
        },
        Err(errno) => Err(format!("fork {}", failed(errno))),
    };
    match result {
        Ok(0) => row(
            Verdict::Escaped,
            format!(
                "{call} = 0: the host's process {pid} is traceable from inside (let go at once)"
            ),
        ),
        Ok(code) => {
            let errno = Errno::from_raw(code);
            let why = if errno == Errno::ESRCH {
                "the host's processes have no pid in this pid namespace"
            } else {
                "refused"
            };
            row(
                Verdict::Contained,
                format!(
                    "{call} {}: {why} (/proc/1's PPid is {ppid}: its parent is outside)",
                    failed(errno)
                ),
            )
        }
        Err(why) => row(Verdict::NotRun, why),
    }
}

/// What `mount -o remount,bind,rw` does: the same per-mount flags, without
/// MS_RDONLY. If it works, the volume is remounted read-only at once and
/// nothing is written.
fn remount_read_write(lab: &Lab) -> Row {
    let row = row(
        "remount-ro-volume",
        "remount a :ro volume read-write",
        "issue 13; mount_namespaces(7)",
    );
    let Some((target, _)) = lab.volumes.iter().find(|(_, ro)| *ro) else {
        return row(
            Verdict::NotRun,
            "no :ro volume: give one, e.g. -v /:/host:ro".into(),
        );
    };
    let before = match statvfs(target.as_str()) {
        Ok(s) => s.flags(),
        Err(errno) => {
            return row(
                Verdict::NotRun,
                format!("statvfs({}) {}", quote(target), failed(errno)),
            )
        }
    };
    if !before.contains(FsFlags::ST_RDONLY) {
        return row(
            Verdict::NotRun,
            format!("{target} is not mounted read-only"),
        );
    }
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    for (st, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if before.contains(st) {
            flags |= ms;
        }
    }
    let call = format!(
        "mount(NULL, {}, NULL, {}, NULL)",
        quote(target),
        ms_names(flags)
    );
    if let Err(errno) = mount(
        None::<&str>,
        target.as_str(),
        None::<&str>,
        flags,
        None::<&str>,
    ) {
        return row(refused(errno), format!("{call} {}", failed(errno)));
    }
    let now_rw = statvfs(target.as_str()).is_ok_and(|s| !s.flags().contains(FsFlags::ST_RDONLY));
    let back = match mount(
        None::<&str>,
        target.as_str(),
        None::<&str>,
        flags | MsFlags::MS_RDONLY,
        None::<&str>,
    ) {
        Ok(()) => "remounted read-only again".to_string(),
        Err(errno) => format!(
            "remounting it read-only again {} (it stays so until the container ends)",
            failed(errno)
        ),
    };
    if now_rw {
        row(
            Verdict::Escaped,
            format!("{call} = 0: read-write now (nothing written); {back}"),
        )
    } else {
        row(
            Verdict::Contained,
            format!("{call} = 0, but still read-only; {back}"),
        )
    }
}

fn ms_names(flags: MsFlags) -> String {
    let names = [
        (MsFlags::MS_REMOUNT, "MS_REMOUNT"),
        (MsFlags::MS_BIND, "MS_BIND"),
        (MsFlags::MS_RDONLY, "MS_RDONLY"),
        (MsFlags::MS_NOSUID, "MS_NOSUID"),
        (MsFlags::MS_NODEV, "MS_NODEV"),
        (MsFlags::MS_NOEXEC, "MS_NOEXEC"),
        (MsFlags::MS_NOATIME, "MS_NOATIME"),
        (MsFlags::MS_NODIRATIME, "MS_NODIRATIME"),
        (MsFlags::MS_RELATIME, "MS_RELATIME"),
    ];
    names
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mountinfo_line_gives_device_root_point_and_type() {
        let line = "612 580 254:0 /srv/my\\040data /host\\040dir ro,relatime - ext4 /dev/vda rw";
        let m = Mount::parse(line).unwrap();
        assert_eq!(m.dev, (254, 0));
        assert_eq!(m.root, "/srv/my data");
        assert_eq!(m.point, "/host dir");
        assert_eq!((m.fstype.as_str(), m.source.as_str()), ("ext4", "/dev/vda"));
    }

    #[test]
    fn only_the_identity_map_of_every_uid_is_the_hosts_user_namespace() {
        assert!(is_host_user_namespace("         0          0 4294967295\n"));
        assert!(!is_host_user_namespace(
            "         0       1000          1\n"
        ));
        assert!(!is_host_user_namespace("0 0 4294967295\n1 1 1\n"));
    }

    #[test]
    fn a_not_run_row_is_counted_apart_and_proofs_are_escaped() {
        let rows = vec![
            Row {
                id: "a",
                tried: "x",
                verdict: Verdict::NotRun,
                proof: "bell \u{7}".into(),
                from: "-",
            },
            Row {
                id: "b",
                tried: "y",
                verdict: Verdict::Contained,
                proof: "p".into(),
                from: "-",
            },
        ];
        let text = table(&rows);
        assert!(text.contains("bell \\x07"), "{text}");
        assert!(text.contains("ESCAPED 0, CONTAINED 1, NOT-RUN 1"), "{text}");
    }
}
