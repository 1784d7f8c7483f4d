//! Chapter 6: a container root that cannot hurt the host.
//!
//! Chapters 1 to 5 limit what a container *sees*. Its root could still do
//! what root does: open the host's disk through a device node it made, open
//! any host file by handle, write /proc/sys, remount a `:ro` volume
//! read-write, load a module. This chapter is chapter 5's container with
//! five more steps, each taking one of those away as Docker does:
//! no_new_privs, 14 capabilities, masked and read-only paths, no usable
//! device nodes, and Docker's seccomp profile. `--privileged` skips them
//! all. Read along in `docs/ch6-security.md`.

use std::convert::Infallible;
use std::process::ExitCode;

use common::container::State;
use common::error::Error;
use common::lifecycle::{self, Chapter, Spec, Stdio};
use common::security::{self, Restrictions, SecurityFlags};
use common::terminal::{self, Console};
use common::{mount, namespace, narrate, overlay, process, rootfs, volume, Result};

/// Chapter 6's containers: chapter 5's, restricted.
struct Ch6;

impl Chapter for Ch6 {
    type RunFlags = SecurityFlags;
    const NUMBER: u8 = 6;
    const ABOUT: &'static str =
        "Run containers whose root cannot hurt the host: capabilities, masked paths, seccomp";

    /// Refuse bad --cap-add, --cap-drop and --security-opt before anything is made.
    fn check(flags: &SecurityFlags) -> Result<()> {
        security::check(flags)
    }

    /// The container's story: chapter 5's, then the restrictions.
    fn container_main(
        spec: &Spec<SecurityFlags>,
        stdio: Stdio,
        command: &process::Command,
    ) -> Result<Infallible> {
        let restrictions = Restrictions::new(&spec.chapter)?;
        // 1-6. As in chapter 5: a private mount table, the hostname, the
        //      overlay, /proc /dev /tmp, the volumes, pivot_root.
        mount::make_private("/")?;
        namespace::set_hostname(&spec.name)?;
        overlay::mount_overlay(&spec.overlay_options, &spec.layout)?;
        let new_root = &spec.layout.merged;
        rootfs::mount_proc_dev_tmp(new_root)?;
        for volume in &spec.volumes {
            volume::mount_in(new_root, volume)?;
        }
        rootfs::pivot_root(new_root)?;
        // 7. Masked and read-only paths, and nodev: after pivot_root, so an
        //    image's symlink resolves inside the root; before the
        //    capabilities go, because mounting needs CAP_SYS_ADMIN
        //    (docs/ch6-security.md#masked-and-read-only-paths).
        restrictions.mounts(&spec.volumes)?;
        // 8. As in chapter 5: stdin, stdout and stderr.
        lifecycle::run::connect(stdio)?;
        // 9-12. no_new_privs, the capabilities, seccomp, then exec.
        restrictions.exec(command)
    }

    /// `exec`'s story: chapter 5's, with the same restrictions as `run`'s
    /// command (the mounts are the container's already).
    fn exec_main(
        state: &State,
        console: Option<&Console>,
        command: &process::Command,
    ) -> Result<Infallible> {
        let restrictions = Restrictions::from_state(&state.chapter)?;
        narrate!(5, "chdir(\"/\")");
        nix::unistd::chdir("/").map_err(|errno| Error::sys("chdir(\"/\")", errno))?;
        if let Some(console) = console {
            terminal::attach(console)?;
        }
        restrictions.exec(command)
    }
}

fn main() -> ExitCode {
    lifecycle::main::<Ch6>(env!("CARGO_BIN_NAME"))
}
