//! Chapter 1: a child with its own mount table and a private /tmp.
//!
//! The whole container idea starts here: a process whose view of the
//! filesystem can change without the host's changing. We clone a child into a
//! new mount namespace, cut its mounts off from the host's, give it a fresh
//! tmpfs on /tmp and exec a command there. Read along in
//! `docs/ch1-mount-namespace.md`.

use std::convert::Infallible;
use std::process::ExitCode;

use clap::Parser;
use common::cli::{CommandArgs, LogArgs};
use common::{mount, namespace, process, Result};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;

/// Run a command in a new mount namespace with a private /tmp.
#[derive(Parser, Debug)]
#[command(name = "ch1-mount-ns", version)]
struct Args {
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    command: CommandArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::cli::main(env!("CARGO_BIN_NAME"), 1, &args.log, || run(&args))
}

fn run(args: &Args) -> Result<ExitCode> {
    let argv = args.command.argv();
    // 1. A new mount namespace; as an ordinary user, also a user namespace in
    //    which we are root (docs/ch1-mount-namespace.md#rootless).
    let flags = namespace::with_user_if_rootless(CloneFlags::CLONE_NEWNS);
    // 2. Clone the child; it runs `child` once its id maps are written.
    let child = process::spawn(flags, || child(&argv))?;
    // 3. Wait for it, passing on Ctrl-C and friends; exit with its code.
    let exit = child.wait()?;
    Ok(ExitCode::from(exit.code()))
}

/// The child's story, in its own mount namespace.
fn child(argv: &[String]) -> Result<Infallible> {
    // 1. Cut our copy of the mount table off from the host's before mounting
    //    anything (docs/ch1-mount-namespace.md#why-private-first).
    mount::make_private("/")?;
    // 2. A fresh, empty /tmp that only this child sees.
    mount::tmpfs("/tmp", MsFlags::empty(), None)?;
    // 3. Only stdin, stdout and stderr may reach the command.
    process::close_extra_fds()?;
    // 4. Become the command.
    process::exec(argv)
}
