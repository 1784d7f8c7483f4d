//! What a container's root may do: no_new_privs, capabilities, masked and
//! read-only paths, device nodes, seccomp (ch6, and every chapter after).
//! One file per idea; this one holds the `run` flags and the order.
//! See docs/ch6-security.md.
//!
//! Chapters 1 to 5 limit what a container *sees*; its root could still do
//! everything root can: load a kernel module, open the host's disk through
//! a device node it made, write /proc/sys, open any host file by handle.
//! Each step here takes one of those away, as runc and Docker do, and
//! `--privileged` skips them all, as Docker's does.

pub mod bpf;
pub mod caps;
pub mod lab;
pub mod masks;
pub mod seccomp;
pub mod syscalls;

use std::borrow::Cow;
use std::path::Path;

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::error::{quote, Error, Result};
use crate::volume::Volume;
use crate::{detail, narrate};
pub use caps::CapSet;
pub use seccomp::Profile;

/// Chapter 6's `run` flags, in Docker's words. A record without them (a
/// chapter 5 container, `{}`) reads as the defaults: `exec` restricts it too.
#[derive(Args, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct SecurityFlags {
    /// Add a capability to Docker's default 14 (repeatable; ALL for all)
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability from them (repeatable; ALL for all)
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Turn every restriction of chapter 6 off, as Docker's --privileged does
    #[arg(long)]
    pub privileged: bool,
    /// seccomp=unconfined (no filter), or seccomp=FILE (a profile in Docker's JSON format)
    #[arg(long = "security-opt", value_name = "seccomp=unconfined|FILE", value_parser = security_opt)]
    pub security_opt: Vec<SecurityOpt>,
}

/// One `--security-opt`. A profile file is read when the command line is
/// parsed, on the host, and kept in the container's state: `exec` applies
/// the same profile even if the file changed or went away since.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum SecurityOpt {
    SeccompUnconfined,
    SeccompProfile {
        path: String,
        text: String,
    },
    /// Refused by [`check`], so that the error is stepbox's (exit 125), not clap's.
    Unreadable {
        path: String,
        why: String,
    },
    Unknown(String),
}

fn security_opt(value: &str) -> std::result::Result<SecurityOpt, String> {
    Ok(match value.split_once(['=', ':']) {
        Some(("seccomp", "unconfined")) => SecurityOpt::SeccompUnconfined,
        Some(("seccomp", path)) => match read_profile(path) {
            Ok(text) => SecurityOpt::SeccompProfile {
                path: path.to_string(),
                text,
            },
            Err(e) => SecurityOpt::Unreadable {
                path: path.to_string(),
                why: e.to_string(),
            },
        },
        _ => SecurityOpt::Unknown(value.to_string()),
    })
}

/// A seccomp profile file: a regular file (not a FIFO that blocks, nor
/// /dev/zero that never ends), of at most 1 MiB (Docker's is 20 kB).
fn read_profile(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    file.take((1 << 20) + 1).read_to_string(&mut text)?;
    if text.len() > 1 << 20 {
        return Err(std::io::Error::other("larger than 1 MiB"));
    }
    Ok(text)
}

/// Refuse flags that cannot work, before anything is created.
pub fn check(flags: &SecurityFlags) -> Result<()> {
    if flags.privileged
        && (!flags.cap_add.is_empty()
            || !flags.cap_drop.is_empty()
            || !flags.security_opt.is_empty())
    {
        return Err(Error::Invalid(
            "--privileged turns every restriction off: drop --cap-add, --cap-drop and --security-opt, or --privileged".into(),
        ));
    }
    let restrictions = Restrictions::new(flags)?;
    // Compiled here, on the host, once: the container finds it done.
    if let Some((profile, origin)) = &restrictions.seccomp {
        profile.compiled(restrictions.caps, origin)?;
    }
    Ok(())
}

/// What a container may do, as its flags say: computed on the host by
/// [`check`], and again in the container (and in each `exec`) from the
/// flags recorded in its state.
#[derive(Debug, Clone)]
pub struct Restrictions {
    pub privileged: bool,
    pub caps: CapSet,
    /// None: unconfined.
    pub seccomp: Option<(Cow<'static, Profile>, String)>,
}

impl Restrictions {
    pub fn new(flags: &SecurityFlags) -> Result<Restrictions> {
        let caps = if flags.privileged {
            CapSet::all()
        } else {
            caps::resolve(&flags.cap_add, &flags.cap_drop)?
        };
        let mut seccomp = Some((
            Cow::Borrowed(Profile::docker_default()),
            "Docker's default profile".to_string(),
        ));
        for opt in &flags.security_opt {
            match opt {
                SecurityOpt::SeccompUnconfined => seccomp = None,
                SecurityOpt::SeccompProfile { path, text } => {
                    seccomp = Some((Cow::Owned(Profile::parse(text, &quote(path))?), quote(path)))
                }
                SecurityOpt::Unreadable { path, why } => {
                    return Err(Error::Invalid(format!(
                        "--security-opt seccomp={path}: cannot read the profile ({why}): give a readable file in Docker's JSON format, or seccomp=unconfined"
                    )))
                }
                SecurityOpt::Unknown(value) => {
                    return Err(Error::Invalid(format!(
                        "--security-opt {}: not supported: use seccomp=unconfined or seccomp=FILE",
                        quote(value)
                    )))
                }
            }
        }
        if flags.privileged {
            seccomp = None;
        }
        Ok(Restrictions {
            privileged: flags.privileged,
            caps,
            seccomp,
        })
    }

    /// The restrictions recorded in a container's state (for `exec`).
    pub fn from_state(chapter: &serde_json::Value) -> Result<Restrictions> {
        let flags: SecurityFlags = serde_json::from_value(chapter.clone()).map_err(|e| {
            Error::Invalid(format!(
                "the container's recorded security flags cannot be read ({e}): remove it and run it again"
            ))
        })?;
        Restrictions::new(&flags)
    }

    /// Mounts, after pivot_root (so that every path resolves inside the
    /// container's root), while we still hold CAP_SYS_ADMIN: Docker's masked
    /// and read-only paths, and `nodev` on every mount the container can
    /// write to.
    pub fn mounts(&self, volumes: &[Volume]) -> Result<()> {
        if self.privileged {
            narrate!(
                6,
                "/* --privileged: no masked or read-only paths, device nodes work */"
            );
            return Ok(());
        }
        let root = Path::new("/");
        masks::mask_paths(root)?;
        masks::read_only_paths(root)?;
        masks::no_devices(root, volumes)
    }

    /// prctl(PR_SET_NO_NEW_PRIVS): from here on no exec can gain a
    /// privilege, not through a setuid bit and not through file
    /// capabilities. Also what lets an unprivileged process install a
    /// seccomp filter.
    pub fn no_new_privs(&self) -> Result<()> {
        if self.privileged {
            return Ok(());
        }
        narrate!(6, "prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)");
        nix::sys::prctl::set_no_new_privs()
            .map_err(|errno| Error::sys("prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)", errno))
    }

    /// Keep only the container's capabilities (see [`caps::limit_to`]).
    pub fn capabilities(&self, switching_user: bool) -> Result<()> {
        if self.privileged {
            narrate!(6, "/* --privileged: every capability */");
            return Ok(());
        }
        caps::limit_to(self.caps, switching_user)
    }

    /// The last steps of every process that enters a chapter 6 or 7
    /// container (`run`'s command and `exec`'s), each where it must come.
    pub fn exec(&self, command: &crate::process::Command) -> Result<std::convert::Infallible> {
        // no_new_privs before seccomp: without it, installing a filter
        // needs CAP_SYS_ADMIN (docs/ch6-security.md#no_new_privs).
        self.no_new_privs()?;
        // Capabilities after the mounts that need them
        // (docs/ch6-security.md#capabilities).
        self.capabilities(command.user.is_some())?;
        // seccomp last, right before exec, or it filters our own set-up;
        // what is left (chdir, the -u switch, close_range, execve) Docker's
        // profile allows (docs/ch6-security.md#seccomp).
        self.seccomp()?;
        // As in chapter 2: a clean environment (with -e), fds 0-2, exec.
        command.exec()
    }

    /// Install the seccomp filter. Everything this process does after it
    /// is filtered: the working directory, the user switch, close_range and
    /// execve, which Docker's profile all allows.
    pub fn seccomp(&self) -> Result<()> {
        let Some((profile, origin)) = &self.seccomp else {
            narrate!(6, "/* seccomp: unconfined */");
            return Ok(());
        };
        let programs = profile.compiled(self.caps, origin)?;
        detail!(6, "seccomp: {origin}, {} filter(s)", programs.len());
        seccomp::install(&programs, origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_without_security_flags_reads_as_the_defaults() {
        let restrictions = Restrictions::from_state(&serde_json::json!({})).unwrap();
        assert!(!restrictions.privileged);
        assert_eq!(restrictions.caps, CapSet::docker_default());
        assert!(restrictions.seccomp.is_some());
    }
}
