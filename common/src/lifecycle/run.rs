//! `run`: claim a name, record the container, and start it in the
//! foreground or under a monitor (`-d`) (ch5 onwards).

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::process::ExitCode;

use clap::Args;
use nix::fcntl::Flock;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

use super::Chapter;
use crate::cli::StartArgs;
use crate::container::{self, Container, State, Status};
use crate::dataroot::{self, DataRoot};
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::overlay::{self, Layout};
use crate::process::{self, Ready};
use crate::terminal::{self, Console};
use crate::volume::{self, Volume};
use crate::{image, namespace, narrate};

/// `run`'s arguments: Docker's, plus the chapter's own flags `F`.
#[derive(Args, Debug)]
pub struct RunArgs<F: Args> {
    /// Accepted for Docker's `-i`: without -d, the container's stdin is this one's
    #[arg(short)]
    pub interactive: bool,
    /// Accepted for Docker's `-t`: without -d, a pty is made whenever stdin is a terminal
    #[arg(short)]
    pub tty: bool,
    /// Run in the background under a monitor; output goes to `logs`
    #[arg(short, long)]
    pub detach: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Container name [default: a generated one]
    #[arg(long)]
    pub name: Option<String>,
    /// Bind-mount a host path into the container (repeatable)
    #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:ro|:rw]")]
    pub volumes: Vec<String>,
    #[command(flatten)]
    pub start: StartArgs,
    /// Working directory in the container [default: the image's WorkingDir, else /]
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// Run as: uid, uid:gid, name or name:group [default: the image's User, else root]
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// Run PROGRAM instead of the image's Entrypoint ('' for none)
    #[arg(long, value_name = "PROGRAM")]
    pub entrypoint: Option<String>,
    /// Instead of a command, try each known container escape from inside,
    /// with every restriction of the chapter, and print a verdict table
    #[arg(long)]
    pub try_escapes: bool,
    #[command(flatten)]
    pub chapter: F,
    /// Image name, or path to a rootfs tarball or directory
    pub image: String,
    /// Command and arguments [default: /bin/sh]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Everything a container's process needs, prepared on the host side, and
/// the chapter's own flags.
#[derive(Debug)]
pub struct Spec<F> {
    pub name: String,
    pub layout: Layout,
    pub overlay_options: String,
    pub volumes: Vec<Volume>,
    pub argv: Vec<String>,
    pub vars: Vec<(String, String)>,
    /// The image's config: its Env comes before `vars`.
    pub config: image::Config,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub init: bool,
    pub clone_flags: CloneFlags,
    /// `--try-escapes`: the escape lab instead of the command.
    pub try_escapes: bool,
    pub chapter: F,
}

impl<F> Spec<F> {
    /// What the container's child finally runs (TERM set with a terminal).
    pub fn command(&self, terminal: bool) -> process::Command {
        process::Command {
            argv: self.argv.clone(),
            env: Environment::for_image(&self.name, &self.config, &self.vars)
                .with_terminal(terminal),
            init: self.init,
            user: self.user.clone(),
            workdir: self.workdir.clone(),
        }
    }
}

/// Where the container's stdin, stdout and stderr go.
#[derive(Clone, Copy)]
pub enum Stdio<'a> {
    /// `run`: this terminal through a pty of its own (if stdin is one), or
    /// whatever the caller gave.
    Foreground(Option<&'a Console>),
    /// `run -d`: stdin from /dev/null, stdout and stderr to the log; never a terminal.
    Detached(&'a OwnedFd, &'a OwnedFd),
}

/// In the container, after the switch: connect its stdin, stdout and
/// stderr as `stdio` says. Detached, from here on our stderr is the
/// container's log: nothing more is narrated.
pub fn connect(stdio: Stdio) -> Result<()> {
    match stdio {
        Stdio::Detached(stdin, out) => {
            narrate!(5, "dup2(log, 1); dup2(log, 2); dup2(/dev/null, 0)");
            // Whatever is still folded goes to the caller's stderr, not the log.
            crate::narration::flush();
            process::redirect_stdio(stdin, out)?;
            log::set_max_level(log::LevelFilter::Off);
            Ok(())
        }
        Stdio::Foreground(Some(console)) => terminal::attach(console),
        Stdio::Foreground(None) => Ok(()),
    }
}

pub fn run<C: Chapter>(
    root: &DataRoot,
    args: &RunArgs<C::RunFlags>,
    vars: Vec<(String, String)>,
) -> Result<ExitCode> {
    let volumes = volume::parse_all(&args.volumes)?;
    if args.try_escapes && !args.command.is_empty() {
        return Err(Error::Invalid(
            "--try-escapes runs the escape lab instead of a command: drop the command".into(),
        ));
    }
    // 1. The image's read-only layers, as in chapter 3.
    let image = image::find(root, &args.image)?;
    // `held` keeps the layers from `rmi` while the container runs (the
    // monitor keeps it).
    let image::Layers {
        dirs: layers,
        config,
        held,
    } = image::layers(root, &image)?;
    // 2. Claim the name with one atomic mkdir and record the container
    //    (docs/ch5-commit.md#container-state).
    let id = overlay::new_id()?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => container::generate_name(root, &id),
    };
    let container = Container::claim(root, &name)?;
    // The image's config, as Docker combines it with the command line.
    let argv = config.argv(args.entrypoint.as_deref(), &args.command);
    let user = args.user.clone().or_else(|| config.user());
    let workdir = args.workdir.clone().or_else(|| config.working_dir());
    let state = State {
        id,
        name: name.clone(),
        image: args.image.clone(),
        manifest: image.stored_digest(),
        layers: layers.clone(),
        command: argv.clone(),
        volumes: args.volumes.clone(),
        env: [config.env_pairs(), vars.clone()].concat(),
        user: user.clone(),
        workdir: workdir.clone(),
        init: args.start.init,
        chapter: serde_json::to_value(&args.chapter).unwrap_or_default(),
        created: container::now(),
        status: Status::Created,
        pid: None,
        pid_start_time: None,
        monitor_pid: None,
        exit_code: None,
        finished: None,
        oom_killed: false,
        rootless: namespace::rootless(),
        made_by: C::NUMBER,
        // Should this run be killed before it starts the container, `rm`
        // sees that no one is creating it any more.
        creator: Some(container::Owner::me()),
        // Should this run be killed, the next command removes what it leaves.
        remove_on_exit: args.rm.then(container::Owner::me),
    };
    let prepared = container
        .save(&state)
        .and_then(|()| {
            let layout = container.layout();
            overlay::create_parts(&layout)?;
            Ok(Spec {
                name: name.clone(),
                overlay_options: overlay::options(&layers, &layout, args.rm)?,
                layout,
                volumes,
                argv,
                vars,
                config: config.clone(),
                user,
                workdir,
                init: args.start.init,
                clone_flags: namespace::with_user_if_rootless(namespace::CONTAINER),
                try_escapes: args.try_escapes,
                chapter: args.chapter.clone(),
            })
        })
        // 3. Missing volume directories are created, as in chapter 4.
        .and_then(|spec| Ok((volume::create_missing_host_dirs(&spec.volumes)?, spec)));
    let (created, spec) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => return Err(error.with_cleanup(remove::<C>(&container))),
    };
    // 4. Start it: in the background under a monitor (-d), or right here.
    let started = if args.detach {
        let keep: Vec<RawFd> = held.iter().map(|f| f.as_raw_fd()).collect();
        process::detach(&keep, |ready| {
            monitor::<C>(&container, &spec, args.rm, ready)
        })
        .map(|_| None)
    } else {
        foreground::<C>(&container, &spec, args.rm).map(Some)
    };
    match started {
        Ok(None) => {
            println!("{name}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Some((code, ended))) => {
            if args.rm {
                // Under the lock record_exit took: no command comes between.
                let (state, _lock) = Ended::parts(ended);
                remove_as::<C>(&container, state)?;
            }
            Ok(ExitCode::from(code))
        }
        Err(error) => {
            // It never started: nothing of it stays (docs/ch5-commit.md#run).
            volume::remove_created(&created);
            Err(error.with_cleanup(remove::<C>(&container)))
        }
    }
}

/// Remove the container's directory, then the chapter's own remains.
pub fn remove<C: Chapter>(container: &Container) -> Result<()> {
    remove_as::<C>(container, container.state().ok())
}

/// [`remove`], given what its state.json holds (or `None`: unreadable).
fn remove_as<C: Chapter>(container: &Container, state: Option<State>) -> Result<()> {
    container.remove()?;
    C::after_remove(container, state.as_ref())
}

/// Clone the container's child, with the chapter's host-side hook before
/// its release.
fn spawn<C: Chapter>(
    container: &Container,
    spec: &Spec<C::RunFlags>,
    stdio: Stdio,
    command: &process::Command,
) -> Result<process::Child> {
    if spec.try_escapes {
        // Here, in the container's parent: the lab's host pid is ours.
        process::try_escapes_instead_of_exec(crate::security::lab::Lab::on_host(&spec.volumes));
    }
    let into_cgroup = C::before_clone(container, spec)?;
    process::spawn_with(
        spec.clone_flags,
        into_cgroup.as_ref().map(AsFd::as_fd),
        |child| C::before_release(container, spec, child),
        || C::container_main(spec, stdio, command),
    )
}

/// `run` without -d: this process is the container's parent, and relays
/// its pty when stdin is a terminal (as in chapter 2). Its exit code, and
/// (for `--rm`) how it ended.
fn foreground<C: Chapter>(
    container: &Container,
    spec: &Spec<C::RunFlags>,
    remove_it: bool,
) -> Result<(u8, Option<Ended>)> {
    let console = Console::if_interactive()?;
    let command = spec.command(console.is_some());
    let child = spawn::<C>(
        container,
        spec,
        Stdio::Foreground(console.as_ref()),
        &command,
    )?;
    record_started(container, child.pid(), None)?;
    let exit = terminal::wait(child, console)?;
    let ended = record_exit::<C>(container, exit.code(), remove_it)?;
    Ok((exit.code(), ended))
}

/// The monitor (`run -d`): in its own session, it starts the container with
/// its output going to container.log, tells `run` it is up, then waits for
/// it and records how it ended, so nothing depends on the CLI staying alive
/// (docs/ch5-commit.md#the-monitor).
fn monitor<C: Chapter>(
    container: &Container,
    spec: &Spec<C::RunFlags>,
    remove_it: bool,
    ready: &mut Ready,
) -> Result<()> {
    // From here on the monitor creates it: `run` may be gone.
    container.update(|state| state.creator = Some(container::Owner::me()))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(container.log_path())
        .map_err(|e| Error::io("opening", container.log_path(), e))?;
    // Held until the container has ended: rm looks for a monitor whose
    // state.json does not name it only while this is held. If it cannot be
    // taken, the container does not start.
    let alive = dataroot::lock_file(&container.log_path(), true)?;
    let null = File::open("/dev/null").map_err(|e| Error::io("opening", "/dev/null", e))?;
    let (stdin, out) = (OwnedFd::from(null), OwnedFd::from(log));
    let command = spec.command(false);
    let child = spawn::<C>(container, spec, Stdio::Detached(&stdin, &out), &command)?;
    record_started(container, child.pid(), Some(std::process::id() as i32))?;
    ready.ok(&spec.name);
    process::shed_inherited_pages();
    let exit = child.wait()?;
    drop(alive);
    let ended = record_exit::<C>(container, exit.code(), remove_it)?;
    if remove_it {
        let (state, lock) = Ended::parts(ended);
        let _lock = lock.or_else(|| container.lock().ok());
        remove_as::<C>(container, state)?;
    }
    Ok(())
}

/// A `--rm` container as it ended: its state, and its lock (if it could
/// be taken), held until it is removed, so that no other command (an
/// `rm -f`, then a `run` of a new container by the same name) comes
/// between its exit and its removal.
struct Ended {
    /// `None`: state.json could not be read.
    state: Option<State>,
    lock: Option<Flock<File>>,
}

impl Ended {
    fn parts(ended: Option<Ended>) -> (Option<State>, Option<Flock<File>>) {
        ended.map_or((None, None), |ended| (ended.state, ended.lock))
    }
}

fn record_started(container: &Container, pid: Pid, monitor: Option<i32>) -> Result<()> {
    let start_time = process::start_time(pid.as_raw());
    container
        .update(|state| {
            state.status = Status::Running;
            state.pid = Some(pid.as_raw());
            state.pid_start_time = start_time;
            state.monitor_pid = monitor;
            state.creator = None;
        })
        .map(drop)
}

/// How the container ended, and the chapter's hook once it has (chapter 7:
/// was it OOMKilled, then its cgroup removed), in one write of state.json.
/// A container removed next (`run --rm`) is not written at all: a run
/// killed before the removal is swept by the next command
/// (its state's remove_on_exit); its state as it ended is returned, for
/// the removal, with the container's lock still held. Best effort: after
/// `rm -f` the container's directory may be gone already, and `rm` did
/// the chapter's clean-up (after_remove).
fn record_exit<C: Chapter>(
    container: &Container,
    code: u8,
    removed_next: bool,
) -> Result<Option<Ended>> {
    let ended = |state: &mut State| {
        state.status = Status::Exited;
        state.exit_code = Some(code.into());
        state.finished = Some(container::now());
        C::after_exit(container, state)
    };
    if removed_next {
        let lock = container.lock().ok();
        let mut state = container.state().ok();
        if let Some(state) = &mut state {
            ended(state)?;
        }
        return Ok(Some(Ended { state, lock }));
    }
    let mut hooked = Ok(());
    let _ = container.update(|state| hooked = ended(state));
    hooked.map(|()| None)
}
