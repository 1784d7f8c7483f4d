//! Provisioning the default `busybox` image, so the first run needs no manual step (ch2).
//!
//! busybox is one static program that acts as ~400 commands, chosen by the
//! name it is called by (`argv[0]`). An image is then: the program, one
//! symlink per command, `/etc/passwd` and `/etc/group`, and the empty
//! directories a root filesystem is expected to have. We take the program
//! from the host if it has a static one on PATH, else from Debian's
//! `busybox-static` package, fetched with `apt-get download` (no root needed).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::dataroot::DataRoot;
use crate::error::{Error, Result};
use crate::narrate;

/// The fix we name when no busybox can be had.
const FIX: &str = "install it (sudo apt install busybox-static), or give the path of a rootfs tarball or directory as the image";

/// Write `images/busybox.tar` in the data root.
pub fn busybox(root: &DataRoot, dest: &Path) -> Result<()> {
    let scratch = root.scratch("provision")?;
    let (binary, from) = match host_static_busybox() {
        Some(path) => (
            path.clone(),
            format!("the host's static {}", path.display()),
        ),
        None => (
            download_busybox(scratch.path())?,
            "Debian's busybox-static package (apt-get download)".to_string(),
        ),
    };
    let applets = list_applets(&binary)?;
    let tarball = scratch.path().join("busybox.tar");
    write_rootfs_tar(&binary, &applets, &tarball)?;
    fs::rename(&tarball, dest).map_err(|e| Error::io("renaming into place", dest, e))?;
    narrate!(
        2,
        "provisioned image busybox ({} commands) from {from}: {}",
        applets.len(),
        dest.display()
    );
    Ok(())
}

/// A `busybox` on PATH that is statically linked (so it runs in any root).
pub(crate) fn host_static_busybox() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("busybox"))
        .find(|candidate| is_executable(candidate) && is_static_elf(candidate))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// True for a 64-bit ELF program without a `PT_INTERP` header, i.e. one that
/// needs no dynamic loader and so runs inside a root that has no libc.
fn is_static_elf(path: &Path) -> bool {
    let Ok(bytes) = fs::read(path) else {
        return false;
    };
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    // "\x7fELF", 64-bit, little-endian.
    if !bytes.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..phnum as usize).all(|i| {
        let at = phoff as usize + i * phentsize as usize;
        u32_at(at).is_some_and(|kind| kind != PT_INTERP)
    })
}

/// `apt-get download busybox-static` into `dir`, then take `bin/busybox` out
/// of the package's data (`dpkg-deb --fsys-tarfile` gives it as a tar stream).
fn download_busybox(dir: &Path) -> Result<PathBuf> {
    narrate!(
        2,
        "no static busybox on PATH: fetching Debian's busybox-static with apt-get download"
    );
    let mut apt = Command::new("apt-get");
    apt.args(["download", "-q", "busybox-static"])
        .current_dir(dir);
    if !crate::namespace::rootless() {
        // apt drops to its _apt user for downloads; our 0700 dir is not its to write.
        apt.args(["-o", "APT::Sandbox::User=root"]);
    }
    let output = apt.stdin(Stdio::null()).output().map_err(|e| {
        Error::Invalid(format!(
            "no busybox: apt-get could not be started ({e}): {FIX}"
        ))
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        return Err(Error::Invalid(format!(
            "no busybox: apt-get download busybox-static failed ({last}): run sudo apt-get update, or {FIX}"
        )));
    }
    let deb = fs::read_dir(dir)
        .map_err(|e| Error::io("listing", dir, e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| {
            Error::Invalid(format!("no busybox: apt-get download left no .deb: {FIX}"))
        })?;

    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&deb)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            Error::Invalid(format!(
                "no busybox: dpkg-deb could not be started ({e}): {FIX}"
            ))
        })?;
    let binary = dir.join("busybox");
    let found = extract_member(dpkg.stdout.take().unwrap(), "bin/busybox", &binary);
    let _ = dpkg.wait();
    if !found? {
        return Err(Error::Invalid(format!(
            "no busybox: {} holds no bin/busybox: {FIX}",
            deb.display()
        )));
    }
    Ok(binary)
}

/// Copy the regular file whose path ends in `suffix` out of a tar stream.
fn extract_member(reader: impl Read, suffix: &str, dest: &Path) -> Result<bool> {
    let bad = |e: std::io::Error| {
        Error::Invalid(format!(
            "no busybox: the package is unreadable ({e}): {FIX}"
        ))
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let is_it = entry.header().entry_type().is_file()
            && entry
                .path()
                .map_err(bad)?
                .to_string_lossy()
                .ends_with(suffix);
        if is_it {
            let mut file = File::create(dest).map_err(|e| Error::io("creating", dest, e))?;
            std::io::copy(&mut entry, &mut file).map_err(|e| Error::io("writing", dest, e))?;
            fs::set_permissions(dest, fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io("chmod", dest, e))?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// The commands this busybox provides, as paths (`bin/ls`, `usr/bin/awk`, ...).
fn list_applets(binary: &Path) -> Result<Vec<String>> {
    let output = Command::new(binary)
        .arg("--list-full")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running", binary, e))?;
    let applets: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty() && !l.contains("..") && l != "bin/busybox")
        .collect();
    if !output.status.success() || applets.is_empty() {
        return Err(Error::Invalid(format!(
            "no busybox: {} --list-full listed no commands: {FIX}",
            binary.display()
        )));
    }
    Ok(applets)
}

/// Write the image as a docker-export style tarball: paths relative to `/`.
fn write_rootfs_tar(binary: &Path, applets: &[String], dest: &Path) -> Result<()> {
    let file = File::create(dest).map_err(|e| Error::io("creating", dest, e))?;
    let mut tar = tar::Builder::new(file);
    let io_err = |e| Error::io("writing", dest, e);
    // One fixed time for every entry, so the same busybox gives the same tarball.
    let mtime = fs::metadata(binary)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h
    };
    let dirs = [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc", 0o755),
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("home", 0o755),
        ("var", 0o755),
    ];
    for (dir, mode) in dirs {
        tar.append_data(
            &mut header(tar::EntryType::Directory, mode, 0),
            format!("{dir}/"),
            std::io::empty(),
        )
        .map_err(io_err)?;
    }
    let program = fs::read(binary).map_err(|e| Error::io("reading", binary, e))?;
    tar.append_data(
        &mut header(tar::EntryType::Regular, 0o755, program.len() as u64),
        "bin/busybox",
        &program[..],
    )
    .map_err(io_err)?;
    for applet in applets {
        tar.append_link(
            &mut header(tar::EntryType::Symlink, 0o777, 0),
            applet,
            "/bin/busybox",
        )
        .map_err(io_err)?;
    }
    let etc: [(&str, &str); 3] = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnobody:x:65534:\n"),
        ("etc/hostname", "stepbox\n"),
    ];
    for (path, text) in etc {
        tar.append_data(
            &mut header(tar::EntryType::Regular, 0o644, text.len() as u64),
            path,
            text.as_bytes(),
        )
        .map_err(io_err)?;
    }
    tar.into_inner().and_then(|mut f| f.flush()).map_err(io_err)
}
