//! `exec`: a new process inside a running container (ch5 onwards).

use std::process::ExitCode;

use clap::Args;
use nix::sched::CloneFlags;

use super::Chapter;
use crate::cli::EnvArgs;
use crate::container::Container;
use crate::dataroot::DataRoot;
use crate::environment::Environment;
use crate::error::Result;
use crate::process;
use crate::terminal::{self, Console};

/// `exec`'s arguments.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Accepted for Docker's `-i`: the command's stdin is this one's
    #[arg(short)]
    pub interactive: bool,
    /// Accepted for Docker's `-t`: a pty is made whenever stdin is a terminal
    #[arg(short)]
    pub tty: bool,
    /// Also: the variables the container was started with
    #[command(flatten)]
    pub env: EnvArgs,
    /// Working directory [default: the container's]
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// Run as: uid, uid:gid, name or name:group [default: the container's user]
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,
    pub name: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn exec<C: Chapter>(
    root: &DataRoot,
    args: &ExecArgs,
    vars: &[(String, String)],
) -> Result<ExitCode> {
    let container = Container::existing(root, &args.name)?;
    let state = container.state()?;
    super::check_maker::<C>(&state, "exec")?;
    // 0. The chapter's host side first (chapter 7: its cgroup), while the
    //    host's files can still be named.
    C::before_exec(&state)?;
    // 1. Join its namespaces: user first when rootless, then mount, pid,
    //    uts and ipc (docs/ch5-commit.md#exec-setns-and-fork).
    container.join(&state)?;
    // 2. Fork: a joined pid namespace applies only to children made after.
    //    With a terminal, it makes a pty in the container's devpts, as `run` does.
    //    Its variables: the container's (run's -e), then exec's own -e.
    let console = Console::if_interactive()?;
    let command = process::Command {
        argv: args.command.clone(),
        env: Environment::container(&state.name, &[state.env.as_slice(), vars].concat())
            .with_terminal(console.is_some()),
        init: false,
        user: args.user.clone().or_else(|| state.user.clone()),
        workdir: args.workdir.clone().or_else(|| state.workdir.clone()),
    };
    let child = process::spawn(CloneFlags::empty(), || {
        C::exec_main(&state, console.as_ref(), &command)
    })
    .map_err(|error| container.explain(&state, error))?;
    // 3. Its exit code is ours; meanwhile its pty is relayed.
    let exit = terminal::wait(child, console)?;
    Ok(ExitCode::from(exit.code()))
}
