//! Chapter 7: limits on what a container may use, with cgroups.
//!
//! Namespaces (chapters 1 to 5) decide what a container *sees*, chapter 6
//! what its root may *do*; nothing yet stops it from eating the host's
//! memory, CPU or process table. This chapter is chapter 6's container put
//! into a cgroup of its own before its command runs: Docker's `-m`,
//! `--cpus`, `--pids-limit`, `--cpuset-cpus` and `--cpu-shares`, each one
//! write to a cgroup file, on cgroup v2 hosts and on v1 (hybrid) ones. The
//! container gets a cgroup namespace, so it sees its cgroup as `/`, and
//! `stats NAME` shows what it uses. Read along in `docs/ch7-cgroups.md`.

use std::convert::Infallible;
use std::os::fd::OwnedFd;
use std::process::ExitCode;

use clap::Args;
use common::cgroup::{self, LimitFlags};
use common::container::{Container, State};
use common::dataroot::DataRoot;
use common::error::Error;
use common::lifecycle::{self, Chapter, Spec, Stdio};
use common::process::Child;
use common::security::{self, Restrictions, SecurityFlags};
use common::terminal::{self, Console};
use common::{mount, namespace, narrate, overlay, process, rootfs, volume, Result};
use serde::{Deserialize, Serialize};

/// Chapter 7's `run` flags: chapter 6's, and the limits.
#[derive(Args, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
struct Ch7Flags {
    #[command(flatten)]
    #[serde(flatten)]
    security: SecurityFlags,
    #[command(flatten)]
    #[serde(flatten)]
    limits: LimitFlags,
}

/// Chapter 7's containers: chapter 6's, limited.
struct Ch7;

impl Chapter for Ch7 {
    type RunFlags = Ch7Flags;
    const NUMBER: u8 = 7;
    const ABOUT: &'static str =
        "Run containers with memory, CPU and process limits: cgroups (v2, and v1 on hybrid hosts)";

    /// Refuse bad limits, and limits this host or caller cannot set, and
    /// chapter 6's bad flags, before anything is created.
    fn check(flags: &Ch7Flags) -> Result<()> {
        cgroup::container::check(&flags.limits)?;
        security::check(&flags.security)
    }

    /// On the host, before the clone: the container's cgroup, made with its
    /// limits before any of its processes exists
    /// (docs/ch7-cgroups.md#into-the-cgroup-before-the-command). On v2 its
    /// directory goes to clone3, and the child is born inside.
    fn before_clone(container: &Container, spec: &Spec<Ch7Flags>) -> Result<Option<OwnedFd>> {
        let limits = spec.chapter.limits.limits_here()?;
        cgroup::container::create(&container.state()?.id, &limits)
    }

    /// While the child waits on the go pipe: where it was not born in its
    /// cgroup (v2 without clone3), its pid written to `cgroup.procs`, so the
    /// command never runs a moment unlimited. (On v1 the child moves
    /// itself, first thing.)
    fn before_release(container: &Container, _spec: &Spec<Ch7Flags>, child: &Child) -> Result<()> {
        cgroup::container::join(&container.state()?.id, child)
    }

    /// The container's story: chapter 6's, in a cgroup namespace, with
    /// /sys/fs/cgroup.
    fn container_main(
        spec: &Spec<Ch7Flags>,
        stdio: Stdio,
        command: &process::Command,
    ) -> Result<Infallible> {
        // 0. On v1, into our cgroup before anything else: this thread (the
        //    process's only one) moves itself, which waits for no RCU grace
        //    period (docs/ch7-cgroups.md#into-the-cgroup-before-the-command).
        cgroup::container::enter()?;
        let restrictions = Restrictions::new(&spec.chapter.security)?;
        // 1. Our own cgroup namespace: it is rooted where we are when it is
        //    made, and we are in our cgroup now (born there on v2, moved
        //    just now on v1) (docs/ch7-cgroups.md#inside-the-container).
        cgroup::container::unshare_namespace()?;
        // 2-6. As in chapter 5: a private mount table, the hostname, the
        //      overlay, /proc /dev /tmp.
        mount::make_private("/")?;
        namespace::set_hostname(&spec.name)?;
        overlay::mount_overlay(&spec.overlay_options, &spec.layout)?;
        let new_root = &spec.layout.merged;
        rootfs::mount_proc_dev_tmp(new_root)?;
        // 7. /sys: a read-only tmpfs, with our cgroup read-only at
        //    /sys/fs/cgroup on v2, and each of our v1 trees below it on v1
        //    (docs/ch7-cgroups.md#inside-the-container).
        cgroup::container::mount_sys(new_root)?;
        // 8-9. As in chapter 4, the volumes; then into the new root.
        for volume in &spec.volumes {
            volume::mount_in(new_root, volume)?;
        }
        rootfs::pivot_root(new_root)?;
        // 10. As in chapter 6: masked and read-only paths (/sys among them), nodev.
        restrictions.mounts(&spec.volumes)?;
        // 11. As in chapter 5: stdin, stdout and stderr.
        lifecycle::run::connect(stdio)?;
        // 12-15. As in chapter 6: no_new_privs, the capabilities, seccomp, exec.
        restrictions.exec(command)
    }

    /// Before `exec` joins the container: into its cgroup, so the command is
    /// limited as the container's own are.
    fn before_exec(state: &State) -> Result<()> {
        cgroup::container::join_self(state)
    }

    /// `exec`'s story: chapter 6's, in the container's cgroup namespace
    /// (its cgroup was joined on the host, in before_exec).
    fn exec_main(
        state: &State,
        console: Option<&Console>,
        command: &process::Command,
    ) -> Result<Infallible> {
        let restrictions = Restrictions::from_state(&state.chapter)?;
        cgroup::container::join_namespace()?;
        narrate!(5, "chdir(\"/\")");
        nix::unistd::chdir("/").map_err(|errno| Error::sys("chdir(\"/\")", errno))?;
        if let Some(console) = console {
            terminal::attach(console)?;
        }
        restrictions.exec(command)
    }

    /// Once it exited: OOMKilled or not, from its cgroup; then the cgroup goes.
    fn after_exit(_container: &Container, state: &mut State) -> Result<()> {
        cgroup::container::after_exit(state)
    }

    /// `rm` (or the end of `run --rm`): its cgroup.
    fn after_remove(_container: &Container, state: Option<&State>) -> Result<()> {
        cgroup::container::remove(state)
    }

    /// Once `rm` removed what it was given: any cgroup a killed monitor left.
    fn after_rm() -> Result<()> {
        cgroup::container::sweep_stale()
    }

    /// `stats NAME`: memory, CPU time and processes, from its cgroup.
    fn stats(_root: &DataRoot, container: &Container) -> Option<Result<ExitCode>> {
        Some(
            container
                .state()
                .and_then(|state| cgroup::container::print_stats(&state)),
        )
    }
}

fn main() -> ExitCode {
    lifecycle::main::<Ch7>(env!("CARGO_BIN_NAME"))
}
