//! Volumes: host directories bind-mounted into the container (ch4).
//!
//! The write layer dies with the container; a volume is how data outlives
//! it. `-v HOST:CONTAINER[:ro|:rw]` bind-mounts the host path onto a path in
//! the container's root, in the container's own mount namespace, before
//! pivot_root (while the host path can still be named).
//!
//! The target is resolved *inside* the container's root with
//! `openat2(RESOLVE_IN_ROOT)`: a symlink in the image (`/data -> /`, or
//! `-> ../../..`) is followed as if the container's root were `/`, so it can
//! never make the bind land on the host, or create anything there. The mount
//! is then made onto the resolved directory itself, through its
//! `/proc/self/fd/N` link, so nothing can swap the path in between.

use std::collections::HashSet;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{fstat, mkdirat, Mode};

use crate::error::{quote, Error, Result};
use crate::{mount, narrate};

/// One `-v HOST:CONTAINER[:ro|:rw]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub host: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

const USAGE: &str = "use -v HOST:CONTAINER[:ro|:rw] with two absolute paths";

fn invalid(spec: &str, why: &str) -> Error {
    Error::Invalid(format!("invalid volume {spec:?}: {why}: {USAGE}"))
}

/// Parse one `-v` spec, refusing anything unclear before a file is touched.
pub fn parse(spec: &str) -> Result<Volume> {
    if spec.is_empty() {
        return Err(invalid(spec, "it is empty"));
    }
    if spec.contains('\n') || spec.contains('\0') {
        return Err(invalid(spec, "it contains a newline or NUL byte"));
    }
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, target, mode) = match parts[..] {
        [host, target] => (host, target, None),
        [host, target, mode] => (host, target, Some(mode)),
        _ => {
            return Err(invalid(
                spec,
                "expected HOST:CONTAINER or HOST:CONTAINER:MODE",
            ))
        }
    };
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(other) => {
            return Err(invalid(
                spec,
                &format!("unknown mode {other:?} (use ro or rw)"),
            ))
        }
    };
    if host.is_empty() {
        return Err(invalid(spec, "the host path is empty"));
    }
    if target.is_empty() {
        return Err(invalid(spec, "the container path is empty"));
    }
    if !host.starts_with('/') {
        return Err(invalid(
            spec,
            &format!("the host path {host:?} is not absolute"),
        ));
    }
    if !target.starts_with('/') {
        return Err(invalid(
            spec,
            &format!("the container path {target:?} is not absolute"),
        ));
    }
    if host.contains(',') {
        return Err(invalid(
            spec,
            "the host path contains ',', which Docker's mount syntax cannot carry either (rename it)",
        ));
    }
    let target = normalise_target(spec, target)?;
    if let Some(reserved) = reserved(&target) {
        return Err(invalid(
            spec,
            &format!(
                "{} is the container's own {reserved}, which a volume may not cover",
                target.display()
            ),
        ));
    }
    Ok(Volume {
        host: PathBuf::from(host),
        target,
        read_only,
    })
}

/// The container's own mounts, which a volume may not cover: the one
/// `target` is at or under, if any.
fn reserved(target: &Path) -> Option<&'static str> {
    ["/proc", "/sys", "/dev"]
        .into_iter()
        .find(|reserved| target.starts_with(reserved))
}

/// `/a//b/./c` → `/a/b/c`; `..` and `/` itself are refused.
fn normalise_target(spec: &str, target: &str) -> Result<PathBuf> {
    let mut clean = PathBuf::from("/");
    for component in Path::new(target).components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(invalid(spec, "the container path may not contain '..'"));
            }
        }
    }
    if clean == Path::new("/") {
        return Err(invalid(
            spec,
            "a volume may not cover the container's root /",
        ));
    }
    Ok(clean)
}

/// Parse every `-v`, refusing two volumes on the same target. The result is
/// in mount order: a parent directory's volume before volumes inside it.
pub fn parse_all(specs: &[String]) -> Result<Vec<Volume>> {
    let mut volumes = specs.iter().map(|s| parse(s)).collect::<Result<Vec<_>>>()?;
    let mut seen = HashSet::new();
    for (volume, spec) in volumes.iter().zip(specs) {
        if !seen.insert(volume.target.clone()) {
            return Err(invalid(
                spec,
                &format!("another volume already uses {}", volume.target.display()),
            ));
        }
    }
    volumes.sort_by_key(|v| v.target.components().count());
    Ok(volumes)
}

/// Create the host directories that do not exist yet, as `docker run -v`
/// does. Returns the ones created, so a failed start can remove them again.
pub fn create_missing_host_dirs(volumes: &[Volume]) -> Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    for volume in volumes {
        match fs::symlink_metadata(&volume.host) {
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                remove_created(&created);
                return Err(Error::io("volume", &volume.host, e));
            }
        }
        // The topmost missing ancestor: everything below it is ours to remove.
        let mut top = volume.host.clone();
        while let Some(parent) = top.parent() {
            if fs::symlink_metadata(parent).is_ok() {
                break;
            }
            top = parent.to_path_buf();
        }
        narrate!(
            4,
            "mkdir -p {}   /* a missing volume directory is created, as docker run -v does */",
            quote(&volume.host)
        );
        if let Err(e) = fs::create_dir_all(&volume.host) {
            remove_created(&created);
            remove_created(&[top]);
            return Err(Error::io("creating volume directory", &volume.host, e));
        }
        announce_at_exit(&volume.host);
        created.push(top);
    }
    Ok(created)
}

/// Host directories created for volumes and kept: as Docker does, but a
/// typo would silently make an empty directory, so each is named on stderr
/// when the run ends, even with -q (which silences the narration of the
/// mkdir). A failed start removes them again (remove_created): then nothing
/// is said.
static CREATED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// The process that created them (a forked monitor or child must not say it too).
static CREATOR: AtomicU32 = AtomicU32::new(0);

fn announce_at_exit(dir: &Path) {
    if log::max_level() >= log::LevelFilter::Info {
        return; // the narration's mkdir -p line said it
    }
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        CREATOR.store(std::process::id(), Ordering::Relaxed);
        // SAFETY: registers a plain function, which only takes our lock and writes to fd 2.
        unsafe { libc::atexit(announce_created) };
    });
    if let Ok(mut pending) = CREATED.lock() {
        pending.push(dir.to_path_buf());
    }
}

extern "C" fn announce_created() {
    if CREATOR.load(Ordering::Relaxed) != std::process::id() {
        return;
    }
    let Ok(pending) = CREATED.lock() else {
        return;
    };
    for dir in pending.iter() {
        crate::error::notice(format_args!(
            "created the missing volume directory {}",
            dir.display()
        ));
    }
}

/// Remove host directories [`create_missing_host_dirs`] made, if still empty.
pub fn remove_created(dirs: &[PathBuf]) {
    if let Ok(mut pending) = CREATED.lock() {
        pending.retain(|made| !dirs.iter().any(|dir| made.starts_with(dir)));
    }
    for dir in dirs {
        let mut stack = vec![dir.clone()];
        // Depth first: only empty directories go (remove_dir refuses the rest).
        let mut all = Vec::new();
        while let Some(d) = stack.pop() {
            if let Ok(entries) = fs::read_dir(&d) {
                stack.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
            all.push(d);
        }
        for d in all.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

/// Bind `volume` into the container root `root` (run in the child, before pivot_root).
pub fn mount_in(root: &Path, volume: &Volume) -> Result<()> {
    let host_is_dir = fs::metadata(&volume.host)
        .map_err(|e| Error::io("volume", &volume.host, e))?
        .is_dir();
    let root_fd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("opening", root, e.into()))?;
    let target = resolve_in_root(&root_fd, &volume.target, host_is_dir)?;
    let same = |a: &OwnedFd, b: &OwnedFd| matches!((fstat(a), fstat(b)), (Ok(x), Ok(y)) if x.st_dev == y.st_dev && x.st_ino == y.st_ino);
    if same(&target, &root_fd) {
        return Err(Error::Invalid(format!(
            "volume target {} resolves to the container's root (through a symlink in the image): choose another path",
            volume.target.display()
        )));
    }
    // Where the target really is, now that the image's symlinks are followed:
    // it may not be the container's /proc, /sys or /dev either.
    let via = fd_path(&target);
    let real = fs::read_link(&via).map_err(|e| Error::io("readlink", &via, e))?;
    // Compare real paths: the root as given may itself hold a symlink or `..`.
    let root_real = fs::read_link(fd_path(&root_fd)).map_err(|e| Error::io("readlink", root, e))?;
    let Ok(below) = real.strip_prefix(&root_real) else {
        return Err(Error::Invalid(format!(
            "volume target {} resolved outside the container's root: choose another path",
            volume.target.display()
        )));
    };
    let inside = Path::new("/").join(below);
    if let Some(reserved) = reserved(&inside) {
        return Err(Error::Invalid(format!(
            "volume target {} resolves to {} (through a symlink in the image), the container's own {reserved}: choose another path",
            volume.target.display(),
            inside.display()
        )));
    }
    let shown = real.display().to_string();
    narrate!(
        4,
        "/* {} resolved inside the root: {} is {} */",
        quote(&volume.target),
        via,
        quote(&shown)
    );
    mount::mount(
        4,
        Some(&volume.host.to_string_lossy()),
        Path::new(&via),
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    if volume.read_only {
        // A bind copies the source's flags. MS_RDONLY would need a remount,
        // and that affects only the top mount: mount_setattr(2) with
        // AT_RECURSIVE makes every mount below the target read-only too.
        let mounted = resolve_in_root(&root_fd, &volume.target, host_is_dir)?;
        make_read_only_recursively(&mounted)?;
    }
    Ok(())
}

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Make the mount at `fd` and every mount below it read-only (Linux 5.12).
fn make_read_only_recursively(fd: &OwnedFd) -> Result<()> {
    let call = format!(
        "mount_setattr({}, \"\", AT_EMPTY_PATH|AT_RECURSIVE, {{ .attr_set = MOUNT_ATTR_RDONLY }})",
        fd.as_raw_fd()
    );
    narrate!(4, "{call}");
    mount_setattr(fd, MOUNT_ATTR_RDONLY, true, call)
}

/// mount_setattr(2)'s flag for a read-only mount.
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// mount_setattr(2)'s flag for a mount whose device nodes cannot be opened.
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x4;

/// Set the attributes `set` on the mount at `fd` (and, `recursive`, every
/// mount below it): `call` is the call as narrated, for the error. Chapter
/// 6's masked paths and `nodev` use it too.
pub(crate) fn mount_setattr(fd: &OwnedFd, set: u64, recursive: bool, call: String) -> Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let at_flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: fd is open; the path is an empty C string; attr lives across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            at_flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let errno = Errno::last();
    let error = Error::sys(call, errno);
    Err(match errno {
        Errno::ENOSYS => error.hint("mount_setattr needs Linux 5.12 or later"),
        _ => error,
    })
}

/// Open `target` inside the root `root_fd`, creating what is missing (a
/// directory, or an empty file for a file bind), each step resolved with
/// RESOLVE_IN_ROOT: symlinks are followed as if `root_fd` were `/`. A
/// symlink to a path that does not exist yet is followed too, and that path
/// created inside the root (as runc does).
pub fn resolve_in_root(root_fd: &OwnedFd, target: &Path, want_dir: bool) -> Result<OwnedFd> {
    let fd = resolve_creating(root_fd, target, want_dir, 0)?;
    let is_dir = fstat(&fd).is_ok_and(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR);
    if is_dir != want_dir {
        let (have, want) = if want_dir {
            ("a file", "a directory")
        } else {
            ("a directory", "a file")
        };
        return Err(Error::Invalid(format!(
            "volume target {} is {have} in the image, but the host path is {want}: bind a directory onto a directory, a file onto a file",
            target.display()
        )));
    }
    Ok(fd)
}

/// How many dangling symlinks one target may pass through (like ELOOP).
const MAX_LINKS: usize = 40;

fn resolve_creating(
    root_fd: &OwnedFd,
    target: &Path,
    want_dir: bool,
    links: usize,
) -> Result<OwnedFd> {
    let open = |path: &Path| {
        let path = if path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            path
        };
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        crate::dataroot::openat2(root_fd, path, how)
            .map_err(|e| Error::sys(format!("openat2({}, RESOLVE_IN_ROOT)", quote(path)), e))
    };
    let rel = target.strip_prefix("/").unwrap_or(target);
    let parts: Vec<&std::ffi::OsStr> = rel.iter().collect();
    let mut done = PathBuf::new();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let path = done.join(part);
        match open(&path) {
            Ok(_) => {}
            Err(error) if error.errno() == Some(Errno::ENOENT) => {
                let parent = open(&done)?;
                if let Some(link) = dangling_symlink(&parent, part) {
                    if links >= MAX_LINKS {
                        return Err(Error::Invalid(format!(
                            "volume target {}: too many levels of symlinks in the image",
                            target.display()
                        )));
                    }
                    // Follow it by hand: the rest of the target, under where it points.
                    let mut next = if link.is_absolute() {
                        link
                    } else {
                        done.join(link)
                    };
                    next.extend(&parts[i + 1..]);
                    return resolve_creating(
                        root_fd,
                        &Path::new("/").join(next),
                        want_dir,
                        links + 1,
                    );
                }
                create_at(&parent, part, !last || want_dir, target)?;
            }
            Err(error) => return Err(error),
        }
        done = path;
    }
    open(&done)
}

/// The target of `name` in `parent` if it is a symlink.
fn dangling_symlink(parent: &OwnedFd, name: &std::ffi::OsStr) -> Option<PathBuf> {
    nix::fcntl::readlinkat(parent, name).ok().map(PathBuf::from)
}

/// Create the missing `name` in the directory `parent` (a directory, or an
/// empty file to bind a file onto). Never follows a symlink at `name`.
fn create_at(parent: &OwnedFd, name: &std::ffi::OsStr, dir: bool, target: &Path) -> Result<()> {
    // O_PATH fds cannot be written through: reopen the parent as a real directory.
    let parent = crate::dataroot::openat2(
        parent,
        ".",
        OpenHow::new().flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC),
    )
    .map_err(|e| Error::sys("openat2(\".\")", e))?;
    let result = if dir {
        mkdirat(&parent, name, Mode::from_bits_truncate(0o755))
    } else {
        nix::fcntl::openat(
            &parent,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map(drop)
    };
    match result {
        Ok(()) => Ok(()),
        Err(Errno::EEXIST) => Err(Error::Conflict(format!(
            "volume target {}: {} appeared while it was being created: try again",
            target.display(),
            quote(name)
        ))),
        Err(errno) => Err(Error::sys(
            format!("creating {} for volume {}", quote(name), target.display()),
            errno,
        )),
    }
}
