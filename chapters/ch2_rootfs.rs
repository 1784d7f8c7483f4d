//! Chapter 2: a root filesystem of its own, entered by chroot or by pivot_root.
//!
//! Chapter 1's child saw the host's files. Here it gets a busybox root
//! filesystem, in new pid, uts and ipc namespaces too, and you can compare
//! the two ways in: `chroot`, which a root process can climb out of, and
//! `pivot_root`, which container runtimes use; `--compare` runs both and shows
//! them side by side. Read along in `docs/ch2-rootfs.md`.

use std::convert::Infallible;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use common::cli::{CommandArgs, ImageArgs, LogArgs, StartArgs};
use common::dataroot::DataRoot;
use common::environment::Environment;
use common::process::Exit;
use common::rootfs::{self, compare, Method};
use common::terminal::{self, Console};
use common::{image, mount, namespace, narrate, process, Result};
use nix::mount::MsFlags;

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
    /// Run the container twice, by chroot then by pivot_root (COMMAND, default `true`, in
    /// each), and print the two side by side: / against the host's, the escape, its proof
    #[arg(long, conflicts_with_all = ["method", "try_escape"])]
    compare: bool,
    #[command(flatten)]
    start: StartArgs,
    #[command(flatten)]
    command: CommandArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::cli::main(env!("CARGO_BIN_NAME"), 2, &args.log, || run(&args))
}

fn run(args: &Args) -> Result<ExitCode> {
    namespace::check_hostname(&args.image.hostname)?;
    // 0. `-e` and `--env-file`, checked before anything is created
    //    (docs/ch2-rootfs.md#the-environment).
    let vars = args.start.env.parse()?;
    // 1. Find the image (provisioning busybox on first use) and unpack it
    //    once into rootfs/<name>/ (docs/ch2-rootfs.md#the-image).
    let root = DataRoot::open(args.image.root.as_deref())?;
    let image = image::find(&root, &args.image.image)?;
    let new_root = image::unpack_rootfs(&root, &image)?;
    // 2. With --compare, one run per method and the table
    //    (docs/ch2-rootfs.md#the-comparison).
    if args.compare {
        return compare(args, &vars, &image.name, &new_root);
    }
    // 3. Otherwise one run, entered the way --method says.
    let exit = container(args, &vars, args.method, &new_root, None)?;
    Ok(ExitCode::from(exit.code()))
}

/// One run of the container, entered by `method`; with `report`, its child
/// sends what it measured there.
fn container(
    args: &Args,
    vars: &[(String, String)],
    method: Method,
    new_root: &Path,
    report: Option<&compare::Sender>,
) -> Result<Exit> {
    // 1. New mount, pid, uts and ipc namespaces (and user, when not root).
    let flags = namespace::with_user_if_rootless(namespace::CONTAINER);
    // 2. Interactive (stdin is a terminal): the child will make a pty of its
    //    own and send it back here (docs/ch2-rootfs.md#the-terminal).
    let console = Console::if_interactive()?;
    // 3. What it will run: the command, in an environment of its own, alone
    //    or under stepbox as PID 1 (docs/ch2-rootfs.md#pid-1).
    let argv = if args.compare && args.command.command.is_empty() {
        vec!["true".to_string()]
    } else {
        args.command.argv()
    };
    let env = Environment::container(&args.image.hostname, vars).with_terminal(console.is_some());
    let command = process::Command::new(argv, env, args.start.init);
    let child = process::spawn(flags, || {
        child(args, method, new_root, &command, report, console.as_ref())
    })?;
    // 4. Wait for it, passing on Ctrl-C and friends, and relaying its pty.
    terminal::wait(child, console)
}

/// `--compare`: the same container, same image, entered by chroot and then by
/// pivot_root, each run measured from inside; then the two side by side.
/// Exits with the first command's code that is not 0.
fn compare(
    args: &Args,
    vars: &[(String, String)],
    image: &str,
    new_root: &Path,
) -> Result<ExitCode> {
    let mut rows = Vec::new();
    let mut code = 0;
    for (n, method) in [Method::Chroot, Method::PivotRoot].into_iter().enumerate() {
        narrate!(
            2,
            "--compare: run {} of 2, --method {}",
            n + 1,
            method.flag()
        );
        let (report, measured) = compare::channel()?;
        let exit = container(args, vars, method, new_root, Some(&report));
        // Our copy of the child's end: the pipe ends once the child's is closed too.
        drop(report);
        let exit = exit.map_err(|error| compare::in_run(method, error))?;
        rows.push(measured.receive(method)?);
        if code == 0 {
            code = exit.code();
        }
    }
    let table = compare::table(image, namespace::rootless(), &rows);
    match std::io::stdout().write_all(table.as_bytes()) {
        Ok(()) => Ok(ExitCode::from(code)),
        // The reader went away (`| head`): end as if killed by SIGPIPE, quietly.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::from(128 + 13)),
        Err(e) => Err(common::Error::io("writing the table to", "stdout", e)),
    }
}

/// The child's story: PID 1 of its own pid namespace.
fn child(
    args: &Args,
    method: Method,
    new_root: &Path,
    command: &process::Command,
    report: Option<&compare::Sender>,
    console: Option<&Console>,
) -> Result<Infallible> {
    // 1. As in chapter 1: cut our mount table off from the host's.
    mount::make_private("/")?;
    // 2. Our own hostname, in our own UTS namespace.
    namespace::set_hostname(&args.image.hostname)?;
    // 3. For --try-escape and --compare only: remember what the host's /
    //    and mounts look like.
    let host = (args.try_escape || report.is_some())
        .then(rootfs::record_host_view)
        .transpose()?;
    // 4. pivot_root wants the new root to be a mount point of its own.
    if method == Method::PivotRoot {
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
    match method {
        Method::PivotRoot => rootfs::pivot_root(new_root)?,
        Method::Chroot => rootfs::chroot(new_root)?,
    }
    // 7. The comparison, on request: can we get back out? --try-escape prints
    //    the verdict; --compare sends all it measured to the parent's table.
    if let Some(host) = &host {
        if args.try_escape {
            rootfs::try_escape(host)?;
        }
        if let Some(report) = report {
            report.send(&compare::measure(method, host)?)?;
        }
    }
    // 8. Interactive: a pty of our own devpts becomes our terminal, so that
    //    nothing in the container holds the caller's
    //    (docs/ch2-rootfs.md#the-terminal).
    if let Some(console) = console {
        terminal::attach(console)?;
    }
    // 9. A clean environment, only stdin, stdout and stderr; then become the
    //    command, or with --init stay PID 1 and run it as our child.
    command.exec()
}
