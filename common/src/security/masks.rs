//! Masked and read-only paths, and device nodes that cannot be opened (ch6).
//! See docs/ch6-security.md#masked-and-read-only-paths.
//!
//! /proc and /sys are the kernel's own, not the image's: a container root
//! could read the kernel's memory (/proc/kcore), its keys, its timers, or
//! write to /proc/sys (`kernel/core_pattern` runs a program as the host's
//! root) and /proc/sysrq-trigger. Docker's lists (moby's
//! `oci/defaults.go`): masked paths are covered, a file by /dev/null and a
//! directory by an empty read-only tmpfs; read-only paths are bound onto
//! themselves and made read-only.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;

use crate::error::{quote, Error, Result};
use crate::volume::Volume;
use crate::{detail, mount, narrate};

/// Docker's masked paths.
pub const MASKED: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Docker's read-only paths (and /sys as a whole, when a container has it).
pub const READ_ONLY: [&str; 6] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/sys",
];

/// Cover each of Docker's masked paths under `root` (`/`, after
/// pivot_root): a file by the container's /dev/null, a directory by an
/// empty read-only tmpfs. A path this kernel does not have is skipped.
pub fn mask_paths(root: &Path) -> Result<()> {
    let null = root.join("dev/null");
    for path in MASKED {
        let target = root.join(&path[1..]);
        match std::fs::metadata(&target) {
            Ok(meta) if meta.is_dir() => mount::mount(
                6,
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0"),
            )?,
            Ok(_) => mount::mount(
                6,
                Some(&null.to_string_lossy()),
                &target,
                None,
                MsFlags::MS_BIND,
                None,
            )?,
            Err(_) => detail!(6, "{path}: not on this machine, nothing to mask"),
        }
    }
    Ok(())
}

/// Make each of Docker's read-only paths under `root` read-only: bind it
/// onto itself (a mount of its own), then set MOUNT_ATTR_RDONLY on it and
/// everything below with mount_setattr(2), which changes only that flag
/// (a remount would reset nosuid, nodev and noexec too).
pub fn read_only_paths(root: &Path) -> Result<()> {
    for path in READ_ONLY {
        let target = root.join(&path[1..]);
        if std::fs::symlink_metadata(&target).is_err() {
            detail!(
                6,
                "{path}: not in this container, nothing to make read-only"
            );
            continue;
        }
        // /sys, when a chapter mounts it (none does before chapter 8), is
        // a mount already; the image's empty directory is nothing to protect.
        if path == "/sys" {
            if !is_mount_point(&target) {
                detail!(
                    6,
                    "/sys: not mounted in this container, nothing to make read-only"
                );
                continue;
            }
        } else {
            let shown = target.to_string_lossy();
            mount::mount(
                6,
                Some(&shown),
                &target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
        }
        set_attributes(&target, MOUNT_ATTR_RDONLY, true)?;
    }
    Ok(())
}

/// True if `path` is on another filesystem than its parent directory.
fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parent = path.parent().unwrap_or(Path::new("/"));
    match (std::fs::metadata(path), std::fs::metadata(parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

/// Device nodes: a container that may mknod (CAP_MKNOD is one of Docker's
/// 14) must still not open what it makes, or a block device is the host's
/// disk and `c 1 11` the host's kernel log. Docker's devices cgroup says
/// no at open(2); without cgroups (chapter 7), `nodev` on every mount the
/// container can write to says the same: the root, /dev (its tmpfs: the
/// devices bound in are mounts of their own, and stay usable) and every
/// volume, recursively. /tmp, /dev/shm and /dev/mqueue are nodev already.
pub fn no_devices(root: &Path, volumes: &[Volume]) -> Result<()> {
    set_attributes(root, MOUNT_ATTR_NODEV, false)?;
    set_attributes(&root.join("dev"), MOUNT_ATTR_NODEV, false)?;
    for volume in volumes {
        let target = root.join(volume.target.strip_prefix("/").unwrap_or(&volume.target));
        set_attributes(&target, MOUNT_ATTR_NODEV, true)?;
    }
    Ok(())
}

use crate::volume::{mount_setattr, MOUNT_ATTR_NODEV, MOUNT_ATTR_RDONLY};

/// Set the mount attributes `set` on the mount at `path`, and with
/// `recursive` on every mount below it. Called after pivot_root, so a
/// symlink in the image (a volume's target may be one) resolves inside the
/// container's root, where the mount was made.
fn set_attributes(path: &Path, set: u64, recursive: bool) -> Result<()> {
    let fd: OwnedFd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|errno| Error::sys(format!("open({}, O_PATH)", quote(path)), errno))?;
    let name = if set == MOUNT_ATTR_RDONLY {
        "MOUNT_ATTR_RDONLY"
    } else {
        "MOUNT_ATTR_NODEV"
    };
    let flags = if recursive {
        "AT_EMPTY_PATH|AT_RECURSIVE"
    } else {
        "AT_EMPTY_PATH"
    };
    let call = format!(
        "mount_setattr(open({}), \"\", {flags}, {{ .attr_set = {name} }})",
        quote(path)
    );
    narrate!(6, "{call}");
    mount_setattr(&fd, set, recursive, call)
}
