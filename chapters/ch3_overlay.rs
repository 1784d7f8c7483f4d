//! Chapter 3: a read-only image layer and a per-container overlayfs write layer.
//!
//! Chapter 2 ran straight in the unpacked image, so every run changed it
//! for the next. Here the image is unpacked once into read-only layers, and
//! each run gets its own empty upper directory, union-mounted over them with
//! overlayfs, the way Docker's overlay2 driver does it. Read along in
//! `docs/ch3-overlay.md`.

use std::convert::Infallible;
use std::process::ExitCode;

use clap::Parser;
use common::cli::{CommandArgs, ImageArgs, LogArgs, StartArgs};
use common::dataroot::DataRoot;
use common::environment::Environment;
use common::overlay::{self, Layout};
use common::terminal::{self, Console};
use common::{image, mount, namespace, process, rootfs, Result};

/// Run a command in its own copy-on-write layer over a read-only image.
#[derive(Parser, Debug)]
#[command(name = "ch3-overlay", version)]
struct Args {
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    image: ImageArgs,
    /// Keep the run's upper/work/merged directories afterwards, to inspect them
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    start: StartArgs,
    #[command(flatten)]
    command: CommandArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::cli::main(env!("CARGO_BIN_NAME"), 3, &args.log, || run(&args))
}

fn run(args: &Args) -> Result<ExitCode> {
    namespace::check_hostname(&args.image.hostname)?;
    // 0. `-e` and `--env-file`, checked before anything is created.
    let vars = args.start.env.parse()?;
    // 1. Find the image and unpack each of its layers once, read-only,
    //    into layers/<digest>/ (docs/ch3-overlay.md#layers).
    let root = DataRoot::open(args.image.root.as_deref())?;
    // overlayfs options are comma-separated: a data root path must not hold one.
    overlay::check_data_root(&root)?;
    let image = image::find(&root, &args.image.image)?;
    let layers = image::layers(&root, &image)?;
    // 2. This run's own write layer: containers/<id>/{upper,work,merged}.
    let layout = overlay::create_for_run(&root, &overlay::new_id()?)?;
    let result = run_in(args, &vars, &layers, &layout);
    // 3. Throw the write layer away, unless asked to keep it.
    overlay::finish_run(&layout, args.keep, result)
}

fn run_in(
    args: &Args,
    vars: &[(String, String)],
    layers: &image::Layers,
    layout: &Layout,
) -> Result<ExitCode> {
    let options = overlay::options(&layers.dirs, layout, !args.keep)?;
    let flags = namespace::with_user_if_rootless(namespace::CONTAINER);
    // Interactive: a pty of the container's own; the command in its own
    // environment, under --init if asked: as in chapter 2.
    let console = Console::if_interactive()?;
    // The image's config says how to run it: its Entrypoint and Cmd, Env,
    // WorkingDir and User (docs/ch3-overlay.md#the-images-config).
    let config = &layers.config;
    let command = process::Command {
        argv: config.argv(None, &args.command.command),
        env: Environment::for_image(&args.image.hostname, config, vars)
            .with_terminal(console.is_some()),
        init: args.start.init,
        user: config.user(),
        workdir: config.working_dir(),
    };
    let child = process::spawn(flags, || {
        child(args, &options, layout, &command, console.as_ref())
    })?;
    let exit = terminal::wait(child, console)?;
    Ok(ExitCode::from(exit.code()))
}

/// The child's story: chapter 2's, with an overlay as the new root.
fn child(
    args: &Args,
    options: &str,
    layout: &Layout,
    command: &process::Command,
    console: Option<&Console>,
) -> Result<Infallible> {
    // 1. As in chapter 1: cut our mount table off from the host's.
    mount::make_private("/")?;
    // 2. Our own hostname.
    namespace::set_hostname(&args.image.hostname)?;
    // 3. The new idea: lower layers + our upper, seen as one tree on merged.
    //    Mounted here, in our namespace, so a crash cannot leak it
    //    (docs/ch3-overlay.md#where-the-overlay-is-mounted).
    overlay::mount_overlay(options, layout)?;
    let new_root = &layout.merged;
    // 4. As in chapter 2: /proc, /dev and /tmp, then pivot_root. The overlay
    //    is already a mount point, so it needs no bind onto itself.
    rootfs::mount_proc_dev_tmp(new_root)?;
    rootfs::pivot_root(new_root)?;
    // 5. Become the command (as in chapter 2: on a pty of our own when
    //    interactive, in a clean environment, under --init if asked).
    if let Some(console) = console {
        terminal::attach(console)?;
    }
    command.exec()
}
