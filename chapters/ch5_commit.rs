//! Chapter 5: many named containers, and commit to a new image.
//!
//! Chapters 1 to 4 ran one container in the foreground and forgot it. Here
//! containers have names and a state on disk, run in the background under a
//! small monitor process, and can be listed, entered, stopped, removed, and
//! committed into a new image that runs like any other. The commands follow
//! Docker's words, and live in `common::lifecycle`, which chapters 6 and 7
//! share; this file is what chapter 5's containers do. Read along in
//! `docs/ch5-commit.md`.

use std::convert::Infallible;
use std::process::ExitCode;

use common::container::State;
use common::error::Error;
use common::lifecycle::{self, Chapter, NoFlags, Spec, Stdio};
use common::terminal::{self, Console};
use common::{mount, namespace, narrate, overlay, process, rootfs, volume, Result};

/// Chapter 5's containers: chapter 4's, named, run by the shared lifecycle.
struct Ch5;

impl Chapter for Ch5 {
    type RunFlags = NoFlags;
    const NUMBER: u8 = 5;
    const ABOUT: &'static str = "Run named containers in the background, and commit them to images";

    /// The container's story: chapter 4's child, named, with its output sent
    /// to the log when detached.
    fn container_main(
        spec: &Spec<NoFlags>,
        stdio: Stdio,
        command: &process::Command,
    ) -> Result<Infallible> {
        // 1. As in chapter 1: cut our mount table off from the host's.
        mount::make_private("/")?;
        // 2. The container's name is its hostname.
        namespace::set_hostname(&spec.name)?;
        // 3. As in chapter 3: the image's layers + our upper, on merged.
        overlay::mount_overlay(&spec.overlay_options, &spec.layout)?;
        let new_root = &spec.layout.merged;
        // 4. As in chapter 2: /proc, /dev and /tmp.
        rootfs::mount_proc_dev_tmp(new_root)?;
        // 5. As in chapter 4: volumes, resolved inside the root.
        for volume in &spec.volumes {
            volume::mount_in(new_root, volume)?;
        }
        // 6. Into the new root.
        rootfs::pivot_root(new_root)?;
        // 7. Detached: stdin from /dev/null, stdout and stderr to
        //    container.log. In the foreground, a pty of our own when
        //    interactive, as in chapter 2.
        lifecycle::run::connect(stdio)?;
        // 8. As in chapter 2: a clean environment (with -e), fds 0-2, exec.
        command.exec()
    }

    /// `exec`'s story, once it has joined the container's namespaces.
    fn exec_main(
        _state: &State,
        console: Option<&Console>,
        command: &process::Command,
    ) -> Result<Infallible> {
        narrate!(5, "chdir(\"/\")");
        nix::unistd::chdir("/").map_err(|errno| Error::sys("chdir(\"/\")", errno))?;
        if let Some(console) = console {
            terminal::attach(console)?;
        }
        command.exec()
    }
}

fn main() -> ExitCode {
    lifecycle::main::<Ch5>(env!("CARGO_BIN_NAME"))
}
