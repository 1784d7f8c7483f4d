//! Chapter 2: a root filesystem of its own, entered by chroot or by pivot_root.
//!
//! Chapter 1's child saw the host's files. Here it gets a busybox root
//! filesystem, in new pid, uts and ipc namespaces too, and you can compare
//! the two ways in: `chroot`, which a root process can climb out of, and
//! `pivot_root`, which container runtimes use. Read along in `docs/ch2-rootfs.md`.

use std::convert::Infallible;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use common::cli::{CommandArgs, ImageArgs, LogArgs};
use common::dataroot::DataRoot;
use common::rootfs::{self, Method};
use common::{image, mount, namespace, process, Result};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;

/// Run a command in a busybox root filesystem, entered by pivot_root or chroot.
#[derive(Parser, Debug)]
#[command(name = "ch2-rootfs", version)]
struct Args {
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    image: ImageArgs,
    /// How to enter the new root
    #[arg(long, value_enum, default_value = "pivot-root")]
    method: Method,
    /// Before running COMMAND, try the classic chroot escape and print the verdict
    #[arg(long)]
    try_escape: bool,
    #[command(flatten)]
    command: CommandArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::cli::main("ch2-rootfs", 2, &args.log, || run(&args))
}

fn run(args: &Args) -> Result<ExitCode> {
    namespace::check_hostname(&args.image.hostname)?;
    // 1. Find the image (provisioning busybox on first use) and unpack it
    //    once into rootfs/<name>/ (docs/ch2-rootfs.md#the-image).
    let root = DataRoot::open(args.image.root.as_deref())?;
    let image = image::find(&root, &args.image.image)?;
    let new_root = image::unpack_rootfs(&root, &image)?;
    // 2. New mount, pid, uts and ipc namespaces (and user, when not root).
    let flags = namespace::with_user_if_rootless(
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC,
    );
    let argv = args.command.argv();
    let child = process::spawn(flags, || child(args, &new_root, &argv))?;
    // 3. Wait for it, passing on Ctrl-C and friends; exit with its code.
    let exit = child.wait()?;
    Ok(ExitCode::from(exit.code()))
}

/// The child's story: PID 1 of its own pid namespace.
fn child(args: &Args, new_root: &Path, argv: &[String]) -> Result<Infallible> {
    // 1. As in chapter 1: cut our mount table off from the host's.
    mount::make_private("/")?;
    // 2. Our own hostname, in our own UTS namespace.
    namespace::set_hostname(&args.image.hostname)?;
    // 3. For --try-escape: remember what the host's / and mounts look like.
    let host = rootfs::record_host_view()?;
    // 4. pivot_root wants the new root to be a mount point of its own.
    if args.method == Method::PivotRoot {
        rootfs::bind_onto_itself(new_root)?;
    }
    // 5. /proc for our pid namespace, a minimal /dev, mounted while the
    //    host's /dev is still reachable (docs/ch2-rootfs.md#proc-and-dev),
    //    and chapter 1's private /tmp.
    rootfs::prepare_mount_points(new_root)?;
    mount::proc(new_root.join("proc"))?;
    mount::minimal_dev(new_root.join("dev"))?;
    mount::tmpfs(
        new_root.join("tmp"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None,
    )?;
    // 6. Switch to the new root (docs/ch2-rootfs.md#chroot-or-pivot_root).
    match args.method {
        Method::PivotRoot => rootfs::pivot_root(new_root)?,
        Method::Chroot => rootfs::chroot(new_root)?,
    }
    // 7. The comparison, on request: can we get back out?
    if args.try_escape {
        rootfs::try_escape(&host)?;
    }
    // 8. Only stdin, stdout and stderr reach the command; then become it.
    process::set_container_env(&args.image.hostname);
    process::close_extra_fds()?;
    process::exec(argv)
}
