//! The container verbs every chapter from 5 on shares: `run` (and its
//! monitor), `ps`, `logs`, `exec`, `stop`, `rm`, `commit`, `export`, and the
//! image verbs `images`, `load`, `save`, `tag`, `rmi`
//! (ch5 onwards). One file per verb, as youki splits its container.
//!
//! A chapter brings what is its own through [`Chapter`]: the container's
//! story (the child's steps, from its first to `exec`), the story of
//! `exec`, its extra `run` flags (recorded in the container's state), and
//! host-side hooks: before clone (chapter 7 makes the container's cgroup
//! there, for the child to be born in), between clone and release (where
//! it was not born there, chapter 7 moves it in), before `exec` joins the container (chapter 7
//! puts the new process into the same cgroup), once the container has
//! exited (chapter 7 reads its OOM count and removes its cgroup), after
//! `rm`, and the chapter's own verb `stats`. Chapter 5 has no flags and no
//! hooks; chapter 6 adds restrictions to both stories; chapter 7 adds flags
//! and the hooks.

use std::convert::Infallible;
use std::fmt::Debug;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cli::{self, LogArgs};
use crate::container::{Container, State};
use crate::dataroot::{check_name, DataRoot};
use crate::process;
use crate::terminal::Console;
use crate::{overlay, volume, Result};

pub mod commit;
pub mod exec;
pub mod images;
pub mod list;
pub mod run;
pub mod stop;

pub use exec::ExecArgs;
pub use run::{RunArgs, Spec, Stdio};

/// What a chapter adds to the shared lifecycle.
pub trait Chapter: 'static {
    /// The chapter's own `run` flags (chapter 7: `--memory`, `--cpus`),
    /// flattened into `run`'s and recorded in the container's state.
    type RunFlags: Args + Serialize + DeserializeOwned + Clone + Debug + Default;
    /// The chapter's number: its own steps are narrated in full.
    const NUMBER: u8;
    /// One line for `--help`.
    const ABOUT: &'static str;

    /// Check the chapter's flags, before anything is created.
    fn check(_flags: &Self::RunFlags) -> Result<()> {
        Ok(())
    }

    /// The container's story: in the cloned child, once released, from its
    /// first step to `command.exec()`.
    fn container_main(
        spec: &Spec<Self::RunFlags>,
        stdio: Stdio,
        command: &process::Command,
    ) -> Result<Infallible>;

    /// `exec`'s story: in the forked child, inside the container's
    /// namespaces, up to `command.exec()`.
    fn exec_main(
        state: &State,
        console: Option<&Console>,
        command: &process::Command,
    ) -> Result<Infallible>;

    /// On the host, before the child is cloned: what it is to be born
    /// into. Chapter 7 makes the container's cgroup here, and on cgroup v2
    /// returns its directory, so that clone3 starts the child inside it.
    fn before_clone(
        _container: &Container,
        _spec: &Spec<Self::RunFlags>,
    ) -> Result<Option<OwnedFd>> {
        Ok(None)
    }

    /// On the host, between clone (and the id maps) and the child's
    /// release: chapter 7 moves a child that was not born in its cgroup.
    fn before_release(
        _container: &Container,
        _spec: &Spec<Self::RunFlags>,
        _child: &process::Child,
    ) -> Result<()> {
        Ok(())
    }

    /// On the host, in `exec`, before it joins the container's namespaces:
    /// what it forks from then on is the container's.
    fn before_exec(_state: &State) -> Result<()> {
        Ok(())
    }

    /// On the host, once the container's init has exited and its exit code
    /// is in `state` (saved after this), before a `--rm` removal: by the
    /// foreground `run` or by the monitor.
    fn after_exit(_container: &Container, _state: &mut State) -> Result<()> {
        Ok(())
    }

    /// On the host, after the container's directory was removed (by `rm`,
    /// or when a `run --rm` ends); `state` is what it held, if it was readable.
    fn after_remove(_container: &Container, _state: Option<&State>) -> Result<()> {
        Ok(())
    }

    /// On the host, once `rm` is done with every container it was given.
    fn after_rm() -> Result<()> {
        Ok(())
    }

    /// `stats NAME`: what the container uses. `None`: this chapter has no
    /// way to tell (no cgroups before chapter 7).
    fn stats(_root: &DataRoot, _container: &Container) -> Option<Result<ExitCode>> {
        None
    }
}

/// The `run` flags of a chapter that adds none (chapter 5).
#[derive(Args, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NoFlags {}

/// The command line of a lifecycle chapter.
#[derive(Parser, Debug)]
#[command(version)]
pub struct Cli<F: Args> {
    #[command(flatten)]
    pub log: LogArgs,
    /// Data root [default: /var/lib/stepbox as root, else ~/.local/share/stepbox; env STEPBOX_ROOT]
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// What to do (none with --doctor)
    #[command(subcommand)]
    pub command: Option<Verb<F>>,
}

/// The verbs, in Docker's words.
#[derive(Subcommand, Debug)]
pub enum Verb<F: Args> {
    /// Create and start a container
    Run(RunArgs<F>),
    /// List containers
    Ps {
        /// Show all containers, not only running ones
        #[arg(short, long)]
        all: bool,
    },
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Print what a detached container wrote
    Logs { name: String },
    /// Stop containers: SIGTERM, then SIGKILL after the timeout
    Stop {
        /// Seconds to wait after SIGTERM before SIGKILL
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove containers
    Rm {
        /// Kill a running container first
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Make a new image of a container's changes: its image's layers and one more
    Commit {
        name: String,
        /// The new image's name, NAME[:TAG]
        image: String,
        /// One layer of the whole tree instead of a layer of the changes
        #[arg(long)]
        flatten: bool,
    },
    /// Write a container's whole tree as a root filesystem tarball
    Export {
        name: String,
        /// The tarball to write (gzip if it ends in .gz or .tgz)
        #[arg(short, long, value_name = "FILE", required = true)]
        output: PathBuf,
    },
    /// List images
    Images,
    /// Load the images of an archive (docker save, oci-archive) or an OCI layout
    Load {
        /// The archive, or the OCI layout directory
        #[arg(short, long, value_name = "FILE", required = true)]
        input: PathBuf,
    },
    /// Save images into one archive (docker save and OCI layout at once)
    Save {
        #[arg(required = true)]
        images: Vec<String>,
        /// The archive to write
        #[arg(short, long, value_name = "FILE", required = true)]
        output: PathBuf,
    },
    /// Give an image another name
    Tag { source: String, target: String },
    /// Remove image names; an image left without one is deleted
    Rmi {
        /// Untag even an image a container uses (the image stays for it)
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Print a container's state, or an image's config, as JSON
    Inspect {
        /// A container name, or an image name or path
        name: String,
    },
    /// Print what a container uses: memory, CPU time, processes (chapter 7 on)
    Stats { name: String },
}

/// The `main` of a lifecycle chapter `C`, the binary `name`.
pub fn main<C: Chapter>(name: &'static str) -> ExitCode {
    // `ps | head` closes the pipe early: end quietly, as other tools do.
    // SAFETY: resetting a signal disposition to its default.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // `-v` means --volume, as in Docker; detail is --verbose.
    let mut command = cli::with_volume_flag(Cli::<C::RunFlags>::command())
        .name(name)
        .bin_name(name)
        .about(C::ABOUT);
    // Kept (not consumed, nor cloned) for the errors `dispatch` reports.
    let matches = command.get_matches_mut();
    let parsed = Cli::<C::RunFlags>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    cli::main(name, C::NUMBER, &parsed.log, || {
        dispatch::<C>(&parsed, command)
    })
}

fn dispatch<C: Chapter>(cli: &Cli<C::RunFlags>, mut command: clap::Command) -> Result<ExitCode> {
    let Some(verb) = &cli.command else {
        command
            .error(
                clap::error::ErrorKind::MissingSubcommand,
                "a command is required (or --doctor): see --help",
            )
            .exit()
    };
    // Refuse a bad name, volume, variable or flag before even the data root is created.
    let vars = match verb {
        Verb::Run(args) => {
            if let Some(name) = &args.name {
                check_name("container", name)?;
            }
            volume::parse_all(&args.volumes)?;
            check_workdir(args.workdir.as_deref())?;
            C::check(&args.chapter)?;
            args.start.env.parse()?
        }
        Verb::Exec(args) => {
            check_workdir(args.workdir.as_deref())?;
            args.env.parse()?
        }
        _ => Vec::new(),
    };
    let root = DataRoot::open(cli.root.as_deref())?;
    // overlayfs options are comma-separated: a data root path must not hold one.
    overlay::check_data_root(&root)?;
    match verb {
        Verb::Run(args) => run::run::<C>(&root, args, vars),
        Verb::Ps { all } => list::ps(&root, *all),
        Verb::Exec(args) => exec::exec::<C>(&root, args, &vars),
        Verb::Logs { name } => list::logs(&root, name),
        Verb::Stop { time, names } => stop::stop(&root, names, *time),
        Verb::Rm { force, names } => stop::rm::<C>(&root, names, *force),
        Verb::Commit {
            name,
            image,
            flatten,
        } => commit::commit(&root, name, image, *flatten),
        Verb::Export { name, output } => commit::export(&root, name, output),
        Verb::Images => images::images(&root),
        Verb::Load { input } => images::load(&root, input),
        Verb::Save { images, output } => images::save(&root, images, output),
        Verb::Tag { source, target } => images::tag(&root, source, target),
        Verb::Rmi { force, images } => images::rmi(&root, images, *force),
        Verb::Inspect { name } => list::inspect(&root, name),
        Verb::Stats { name } => {
            let container = Container::existing(&root, name)?;
            C::stats(&root, &container).unwrap_or_else(|| {
                Err(crate::Error::Invalid(format!(
                    "chapter {} has no cgroups, so nothing counts what a container uses: use ch7-cgroups",
                    C::NUMBER
                )))
            })
        }
    }
}

/// Each chapter's binary, and what it gives a container that an earlier
/// chapter's binary knows nothing of.
const MAKERS: [(u8, &str, &str); 3] = [
    (5, "ch5-commit", ""),
    (
        6,
        "ch6-security",
        "its restrictions (capabilities, seccomp, masked paths)",
    ),
    (7, "ch7-cgroups", "a cgroup"),
];

/// The binary of chapter `number`.
fn binary(number: u8) -> String {
    MAKERS.iter().find(|(n, _, _)| *n == number).map_or_else(
        || format!("chapter {number}'s binary"),
        |(_, name, _)| name.to_string(),
    )
}

/// `exec` and `rm` of a container are the business of the chapter that
/// made it, or a later one: an earlier chapter's binary would drop what
/// the later one added (exec outside ch7's cgroup, or without ch6's
/// restrictions; rm leaving the cgroup behind). `verb` is what is refused.
pub fn check_maker<C: Chapter>(state: &State, verb: &str) -> Result<()> {
    if state.made_by <= C::NUMBER {
        return Ok(());
    }
    let maker = binary(state.made_by);
    let gave = MAKERS
        .iter()
        .find(|(n, _, _)| *n == state.made_by)
        .map_or("what it adds", |(_, _, gave)| gave);
    Err(crate::Error::Invalid(format!(
        "container {:?} was made by {maker}, which gave it {gave} {} knows nothing of: {verb} it with {maker}",
        state.name,
        binary(C::NUMBER)
    )))
}

/// `-w` must be absolute, as in Docker.
fn check_workdir(dir: Option<&str>) -> Result<()> {
    match dir {
        Some(dir) if !dir.starts_with('/') => Err(crate::Error::Invalid(format!(
            "-w {}: the working directory must be an absolute path, e.g. -w /data",
            crate::error::quote(dir)
        ))),
        _ => Ok(()),
    }
}
