//! Chapter 4: bind-mounted volumes that outlive the container.
//!
//! Chapter 3's write layer is thrown away with the container. A volume is a
//! host directory (or file) bind-mounted into the container: what is written
//! there stays on the host. Read along in `docs/ch4-volumes.md`.

use std::convert::Infallible;
use std::process::ExitCode;

use clap::Parser;
use common::cli::{self, CommandArgs, ImageArgs, LogArgs, StartArgs};
use common::dataroot::DataRoot;
use common::environment::Environment;
use common::overlay::{self, Layout};
use common::terminal::{self, Console};
use common::volume::{self, Volume};
use common::{image, mount, namespace, process, rootfs, Result};

/// Run a command over a read-only image, with host directories bind-mounted in.
#[derive(Parser, Debug)]
#[command(name = "ch4-volumes", version)]
struct Args {
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    image: ImageArgs,
    /// Keep the run's upper/work/merged directories afterwards, to inspect them
    #[arg(long)]
    keep: bool,
    /// Bind-mount a host path into the container (repeatable)
    #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:ro|:rw]")]
    volumes: Vec<String>,
    #[command(flatten)]
    start: StartArgs,
    #[command(flatten)]
    command: CommandArgs,
}

fn main() -> ExitCode {
    // From this chapter on `-v` means --volume, as in Docker; detail is --verbose.
    let args: Args = cli::parse_with_volume_flag();
    cli::main(env!("CARGO_BIN_NAME"), 4, &args.log, || run(&args))
}

fn run(args: &Args) -> Result<ExitCode> {
    namespace::check_hostname(&args.image.hostname)?;
    // 0. The new idea's input, checked before anything is created
    //    (docs/ch4-volumes.md#the-v-syntax).
    let volumes = volume::parse_all(&args.volumes)?;
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
    let result = run_in(args, &vars, &layers, &layout, &volumes);
    // 3. Throw the write layer away, unless asked to keep it.
    overlay::finish_run(&layout, args.keep, result)
}

fn run_in(
    args: &Args,
    vars: &[(String, String)],
    layers: &image::Layers,
    layout: &Layout,
    volumes: &[Volume],
) -> Result<ExitCode> {
    let options = overlay::options(&layers.dirs, layout, !args.keep)?;
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
    // 2b. Missing host directories are created, as `docker run -v` does; if
    //     the container then fails to start, they are removed again.
    let created = volume::create_missing_host_dirs(volumes)?;
    let flags = namespace::with_user_if_rootless(namespace::CONTAINER);
    let spawned = process::spawn(flags, || {
        child(args, &options, layout, volumes, &command, console.as_ref())
    });
    let child = match spawned {
        Ok(child) => child,
        Err(error) => {
            volume::remove_created(&created);
            return Err(error);
        }
    };
    let exit = terminal::wait(child, console)?;
    Ok(ExitCode::from(exit.code()))
}

/// The child's story: chapter 3's, with volumes bound in before pivot_root.
fn child(
    args: &Args,
    options: &str,
    layout: &Layout,
    volumes: &[Volume],
    command: &process::Command,
    console: Option<&Console>,
) -> Result<Infallible> {
    // 1. As in chapter 1: cut our mount table off from the host's.
    mount::make_private("/")?;
    // 2. Our own hostname.
    namespace::set_hostname(&args.image.hostname)?;
    // 3. As in chapter 3: lower layers + our upper, seen as one tree on merged.
    overlay::mount_overlay(options, layout)?;
    let new_root = &layout.merged;
    // 4. As in chapter 2: /proc, /dev and /tmp.
    rootfs::mount_proc_dev_tmp(new_root)?;
    // 5. The new idea: each volume bound onto its target, resolved inside the
    //    new root, while the host path can still be named
    //    (docs/ch4-volumes.md#why-before-pivot_root).
    for volume in volumes {
        volume::mount_in(new_root, volume)?;
    }
    // 6. Into the new root.
    rootfs::pivot_root(new_root)?;
    // 7. Become the command, as in chapter 2.
    if let Some(console) = console {
        terminal::attach(console)?;
    }
    command.exec()
}
