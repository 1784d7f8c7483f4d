//! Chapter 5: many named containers, and commit to a new image.
//!
//! Chapters 1 to 4 ran one container in the foreground and forgot it. Here
//! containers have names and a state on disk, run in the background under a
//! small monitor process, and can be listed, entered, stopped, removed, and
//! committed into a new image that runs like any other. The commands follow
//! Docker's words. Read along in `docs/ch5-commit.md`.

use std::convert::Infallible;
use std::fs::{self, File, OpenOptions};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use common::cli::{self, EnvArgs, LogArgs, StartArgs};
use common::container::{self, Container, State, Status};
use common::dataroot::{check_name, DataRoot};
use common::environment::Environment;
use common::error::Error;
use common::overlay::{self, Layout};
use common::process::{self, Ready};
use common::terminal::{self, Console};
use common::volume::{self, Volume};
use common::{image, mount, namespace, narrate, rootfs, Result};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Run named containers in the background, and commit them to images.
#[derive(Parser, Debug)]
#[command(name = "ch5-commit", version)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    /// Data root [default: /var/lib/stepbox as root, else ~/.local/share/stepbox; env STEPBOX_ROOT]
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// What to do (none with --doctor)
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create and start a container
    Run(RunArgs),
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
    /// Write a container's files as a new image (images/IMAGE.tar.gz)
    Commit {
        name: String,
        image: String,
        /// Write the tarball to FILE instead of the image store
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// List images
    Images,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Accepted for Docker's `-i`: without -d, the container's stdin is this one's
    #[arg(short)]
    interactive: bool,
    /// Accepted for Docker's `-t`: without -d, a pty is made whenever stdin is a terminal
    #[arg(short)]
    tty: bool,
    /// Run in the background under a monitor; output goes to `logs`
    #[arg(short, long)]
    detach: bool,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Container name [default: a generated one]
    #[arg(long)]
    name: Option<String>,
    /// Bind-mount a host path into the container (repeatable)
    #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:ro|:rw]")]
    volumes: Vec<String>,
    #[command(flatten)]
    start: StartArgs,
    /// Image name, or path to a rootfs tarball or directory
    image: String,
    /// Command and arguments [default: /bin/sh]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
struct ExecArgs {
    /// Accepted for Docker's `-i`: the command's stdin is this one's
    #[arg(short)]
    interactive: bool,
    /// Accepted for Docker's `-t`: a pty is made whenever stdin is a terminal
    #[arg(short)]
    tty: bool,
    /// Also: the variables the container was started with
    #[command(flatten)]
    env: EnvArgs,
    name: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    // `ps | head` closes the pipe early: end quietly, as other tools do.
    // SAFETY: resetting a signal disposition to its default.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // `-v` means --volume, as in Docker; detail is --verbose.
    let cli: Cli = cli::parse_with_volume_flag();
    cli::main("ch5-commit", 5, &cli.log, || dispatch(&cli))
}

fn dispatch(cli: &Cli) -> Result<ExitCode> {
    let Some(command) = &cli.command else {
        use clap::CommandFactory;
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingSubcommand,
                "a command is required (or --doctor): see --help",
            )
            .exit()
    };
    // Refuse a bad name, volume or variable before even the data root is created.
    let vars = match command {
        Command::Run(args) => {
            if let Some(name) = &args.name {
                check_name("container", name)?;
            }
            volume::parse_all(&args.volumes)?;
            args.start.env.parse()?
        }
        Command::Exec(args) => args.env.parse()?,
        _ => Vec::new(),
    };
    let root = DataRoot::open(cli.root.as_deref())?;
    // overlayfs options are comma-separated: a data root path must not hold one.
    overlay::check_data_root(&root)?;
    match command {
        Command::Run(args) => run(&root, args, vars),
        Command::Ps { all } => ps(&root, *all),
        Command::Exec(args) => exec(&root, args, &vars),
        Command::Logs { name } => logs(&root, name),
        Command::Stop { time, names } => stop(&root, names, Duration::from_secs(*time)),
        Command::Rm { force, names } => rm(&root, names, *force),
        Command::Commit {
            name,
            image,
            output,
        } => commit(&root, name, image, output.as_deref()),
        Command::Images => images(&root),
    }
}

// ---------------------------------------------------------------- run

/// Everything a container's process needs, prepared on the host side.
struct Spec {
    name: String,
    layout: Layout,
    overlay_options: String,
    volumes: Vec<Volume>,
    argv: Vec<String>,
    vars: Vec<(String, String)>,
    init: bool,
    flags: CloneFlags,
}

impl Spec {
    /// What the container's child finally runs (TERM set with a terminal).
    fn command(&self, terminal: bool) -> process::Command {
        process::Command {
            argv: self.argv.clone(),
            env: Environment::container(&self.name, &self.vars).with_terminal(terminal),
            init: self.init,
        }
    }
}

fn run(root: &DataRoot, args: &RunArgs, vars: Vec<(String, String)>) -> Result<ExitCode> {
    let volumes = volume::parse_all(&args.volumes)?;
    // 1. The image's read-only layers, as in chapter 3.
    let image = image::find(root, &args.image)?;
    let layers = image::layers(root, &image)?;
    // 2. Claim the name with one atomic mkdir and record the container
    //    (docs/ch5-commit.md#container-state).
    let id = overlay::new_id()?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => container::generate_name(root, &id),
    };
    let container = Container::claim(root, &name)?;
    if args.rm {
        // Should this run be killed, the next command removes what it leaves.
        container.remove_on_exit()?;
    }
    let argv = if args.command.is_empty() {
        vec!["/bin/sh".to_string()]
    } else {
        args.command.clone()
    };
    let state = State {
        id,
        name: name.clone(),
        image: args.image.clone(),
        layers: layers.clone(),
        command: argv.clone(),
        volumes: args.volumes.clone(),
        env: vars.clone(),
        init: args.start.init,
        created: container::now(),
        status: Status::Created,
        pid: None,
        pid_start_time: None,
        monitor_pid: None,
        exit_code: None,
        finished: None,
        rootless: namespace::rootless(),
    };
    let prepared = container.save(&state).and_then(|()| {
        let layout = container.layout();
        overlay::create_parts(&layout)?;
        Ok(Spec {
            name: name.clone(),
            overlay_options: overlay::options(&layers, &layout)?,
            layout,
            volumes,
            argv,
            vars,
            init: args.start.init,
            flags: namespace::with_user_if_rootless(
                CloneFlags::CLONE_NEWNS
                    | CloneFlags::CLONE_NEWPID
                    | CloneFlags::CLONE_NEWUTS
                    | CloneFlags::CLONE_NEWIPC,
            ),
        })
    });
    let spec = match prepared {
        Ok(spec) => spec,
        Err(error) => {
            let _ = container.remove();
            return Err(error);
        }
    };
    // 3. Missing volume directories are created, as in chapter 4.
    let created = match volume::create_missing_host_dirs(&spec.volumes) {
        Ok(created) => created,
        Err(error) => {
            let _ = container.remove();
            return Err(error);
        }
    };
    // 4. Start it: in the background under a monitor (-d), or right here.
    let started = if args.detach {
        process::detach(|ready| monitor(&container, &spec, args.rm, ready)).map(|_| None)
    } else {
        foreground(&container, &spec).map(Some)
    };
    match started {
        Ok(None) => {
            println!("{name}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Some(code)) => {
            if args.rm {
                container.remove()?;
            }
            Ok(ExitCode::from(code))
        }
        Err(error) => {
            // It never started: nothing of it stays (docs/ch5-commit.md#run).
            volume::remove_created(&created);
            let _ = container.remove();
            Err(error)
        }
    }
}

/// `run` without -d: this process is the container's parent, and relays
/// its pty when stdin is a terminal (as in chapter 2).
fn foreground(container: &Container, spec: &Spec) -> Result<u8> {
    let console = Console::if_interactive()?;
    let command = spec.command(console.is_some());
    let child = process::spawn(spec.flags, || {
        container_main(spec, &command, Stdio::Foreground(console.as_ref()))
    })?;
    record_started(container, child.pid(), None)?;
    let exit = terminal::wait(child, console)?;
    record_exit(container, exit.code());
    Ok(exit.code())
}

/// The monitor (`run -d`): in its own session, it starts the container with
/// its output going to container.log, tells `run` it is up, then waits for
/// it and records how it ended, so nothing depends on the CLI staying alive
/// (docs/ch5-commit.md#the-monitor).
fn monitor(container: &Container, spec: &Spec, remove: bool, ready: &mut Ready) -> Result<()> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(container.log_path())
        .map_err(|e| Error::io("opening", container.log_path(), e))?;
    let null = File::open("/dev/null").map_err(|e| Error::io("opening", "/dev/null", e))?;
    let (stdin, out) = (OwnedFd::from(null), OwnedFd::from(log));
    let command = spec.command(false);
    let child = process::spawn(spec.flags, || {
        container_main(spec, &command, Stdio::Detached(&stdin, &out))
    })?;
    record_started(container, child.pid(), Some(std::process::id() as i32))?;
    ready.ok(&spec.name);
    let exit = child.wait()?;
    record_exit(container, exit.code());
    if remove {
        let _lock = container.lock();
        container.remove()?;
    }
    Ok(())
}

fn record_started(container: &Container, pid: Pid, monitor: Option<i32>) -> Result<()> {
    let start_time = process::start_time(pid.as_raw());
    container
        .update(|state| {
            state.status = Status::Running;
            state.pid = Some(pid.as_raw());
            state.pid_start_time = start_time;
            state.monitor_pid = monitor;
        })
        .map(drop)
}

/// Best effort: after `rm -f` the container's directory may be gone already.
fn record_exit(container: &Container, code: u8) {
    let _ = container.update(|state| {
        state.status = Status::Exited;
        state.exit_code = Some(code.into());
        state.finished = Some(container::now());
    });
}

/// Where the container's stdin, stdout and stderr go.
enum Stdio<'a> {
    /// `run`: this terminal through a pty of its own (if stdin is one), or
    /// whatever the caller gave.
    Foreground(Option<&'a Console>),
    /// `run -d`: stdin from /dev/null, stdout and stderr to the log; never a terminal.
    Detached(&'a OwnedFd, &'a OwnedFd),
}

/// The container's story: chapter 4's child, named, with its output sent to
/// the log when detached.
fn container_main(spec: &Spec, command: &process::Command, stdio: Stdio) -> Result<Infallible> {
    // 1. As in chapter 1: cut our mount table off from the host's.
    mount::make_private("/")?;
    // 2. The container's name is its hostname.
    namespace::set_hostname(&spec.name)?;
    // 3. As in chapter 3: the image's layers + our upper, on merged.
    overlay::mount_overlay(&spec.overlay_options, &spec.layout)?;
    let new_root = &spec.layout.merged;
    // 4. As in chapter 2: /proc, /dev and /tmp.
    rootfs::prepare_mount_points(new_root)?;
    mount::proc(new_root.join("proc"))?;
    mount::minimal_dev(new_root.join("dev"))?;
    mount::tmpfs(
        new_root.join("tmp"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None,
    )?;
    // 5. As in chapter 4: volumes, resolved inside the root.
    for volume in &spec.volumes {
        volume::mount_in(new_root, volume)?;
    }
    // 6. Into the new root.
    rootfs::pivot_root(new_root)?;
    // 7. Detached: stdin from /dev/null, stdout and stderr to container.log.
    //    From here on our stderr is the container's log: narrate no more.
    //    In the foreground, a pty of our own when interactive, as in chapter 2.
    match stdio {
        Stdio::Detached(stdin, out) => {
            narrate!(5, "dup2(log, 1); dup2(log, 2); dup2(/dev/null, 0)");
            // Whatever is still folded goes to the caller's stderr, not the log.
            common::narration::flush();
            process::redirect_stdio(stdin, out)?;
            log::set_max_level(log::LevelFilter::Off);
        }
        Stdio::Foreground(Some(console)) => terminal::attach(console)?,
        Stdio::Foreground(None) => {}
    }
    // 8. As in chapter 2: a clean environment (with -e), fds 0-2, exec.
    command.exec()
}

// ---------------------------------------------------------------- ps, logs

fn ps(root: &DataRoot, all: bool) -> Result<ExitCode> {
    println!(
        "{:<12}  {:<20}  {:>7}  {:<16}  {:<24}  CREATED",
        "ID", "NAME", "PID", "STATUS", "COMMAND"
    );
    for container in container::list(root)? {
        let Ok(state) = container.state() else {
            if all {
                println!(
                    "{:<12}  {:<20}  {:>7}  {:<16}",
                    "-", container.name, "-", "half-created"
                );
            }
            continue;
        };
        // A pid counts only with its start time (docs/ch5-commit.md#pids-and-start-times).
        let running = state.is_running();
        if !all && !running {
            continue;
        }
        let pid = match (running, state.pid) {
            (true, Some(pid)) => pid.to_string(),
            _ => "-".to_string(),
        };
        let mut command = state.command.join(" ");
        if command.chars().count() > 24 {
            command = command.chars().take(21).collect::<String>() + "...";
        }
        println!(
            "{:<12}  {:<20}  {:>7}  {:<16}  {:<24}  {}",
            state.id,
            state.name,
            pid,
            state.status_text(),
            command,
            container::age(state.created)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn logs(root: &DataRoot, name: &str) -> Result<ExitCode> {
    let container = Container::existing(root, name)?;
    let path = container.log_path();
    match fs::read(&path) {
        Ok(bytes) => {
            use std::io::Write;
            std::io::stdout()
                .write_all(&bytes)
                .map_err(|e| Error::io("writing", "stdout", e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("reading", &path, e)),
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- exec

fn exec(root: &DataRoot, args: &ExecArgs, vars: &[(String, String)]) -> Result<ExitCode> {
    let container = Container::existing(root, &args.name)?;
    let state = container.state()?;
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
    };
    let child = process::spawn(CloneFlags::empty(), || {
        exec_main(&command, console.as_ref())
    })
    .map_err(|error| container.explain(&state, error))?;
    // 3. Its exit code is ours; meanwhile its pty is relayed.
    let exit = terminal::wait(child, console)?;
    Ok(ExitCode::from(exit.code()))
}

fn exec_main(command: &process::Command, console: Option<&Console>) -> Result<Infallible> {
    narrate!(5, "chdir(\"/\")");
    nix::unistd::chdir("/").map_err(|errno| Error::sys("chdir(\"/\")", errno))?;
    if let Some(console) = console {
        terminal::attach(console)?;
    }
    command.exec()
}

// ---------------------------------------------------------------- stop, rm

/// Signal the container's init (only if it is still the process we started).
fn signal(state: &State, sig: Signal) -> Result<()> {
    if let (true, Some(pid)) = (state.is_running(), state.pid) {
        narrate!(5, "kill({pid}, {sig})");
        nix::sys::signal::kill(Pid::from_raw(pid), sig)
            .map_err(|errno| Error::sys(format!("kill({pid}, {sig})"), errno))?;
    }
    Ok(())
}

/// Wait up to `limit` for the container's init to be gone.
fn wait_gone(state: &State, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while state.is_running() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn stop(root: &DataRoot, names: &[String], timeout: Duration) -> Result<ExitCode> {
    for name in names {
        let container = Container::existing(root, name)?;
        let state = container.state()?;
        // 1. Ask politely. A PID 1 only gets signals it has a handler for
        //    (docs/ch5-commit.md#stop-and-pid-1).
        signal(&state, Signal::SIGTERM)?;
        // 2. Then insist: SIGKILL cannot be ignored, even by PID 1.
        if !wait_gone(&state, timeout) {
            signal(&state, Signal::SIGKILL)?;
            wait_gone(&state, Duration::from_secs(10));
        }
        // 3. Give the monitor a moment to record the exit code.
        let deadline = Instant::now() + Duration::from_secs(2);
        while container.state().is_ok_and(|s| s.status == Status::Running)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}

fn rm(root: &DataRoot, names: &[String], force: bool) -> Result<ExitCode> {
    // Each name on its own, as Docker does: one that fails is reported and
    // the rest are still removed (exit status 1).
    Ok(container::for_each_name(names, |name| {
        let container = Container::existing(root, name)?;
        let _lock = container.lock()?;
        match container.state() {
            Ok(state) if state.is_running() => {
                if !force {
                    return Err(Error::Conflict(format!(
                        "container {name:?} is running: stop it first, or use rm -f"
                    )));
                }
                signal(&state, Signal::SIGKILL)?;
                wait_gone(&state, Duration::from_secs(10));
            }
            Ok(state) if state.status == Status::Created && !force => {
                return Err(Error::Conflict(format!(
                    "container {name:?} is still being created: wait for it, or use rm -f"
                )));
            }
            Ok(_) => {}
            Err(error) if !force => {
                return Err(Error::Conflict(format!(
                    "container {name:?} is half-created ({error}): remove it with rm -f"
                )));
            }
            Err(_) => {}
        }
        // Volumes are not on the host's merged/: this cannot reach them.
        container.remove()?;
        println!("{name}");
        Ok(())
    }))
}

// ---------------------------------------------------------------- commit, images

fn commit(
    root: &DataRoot,
    name: &str,
    image_name: &str,
    output: Option<&Path>,
) -> Result<ExitCode> {
    let container = Container::existing(root, name)?;
    check_name("image", image_name)?;
    let images = root.dir("images")?;
    let dest = match output {
        Some(path) => path.to_path_buf(),
        None => images.join(format!("{image_name}.tar.gz")),
    };
    let taken = [format!("{image_name}.tar"), format!("{image_name}.tar.gz")]
        .iter()
        .any(|file| images.join(file).exists());
    if (output.is_none() && taken) || dest.exists() {
        return Err(Error::Conflict(format!(
            "image {image_name:?} already exists ({}): choose another name, or remove it",
            dest.display()
        )));
    }
    let _lock = container.lock()?;
    let state = container.state()?;
    let scratch = root.scratch("commit")?;
    let view = scratch.path().join("view");
    fs::create_dir(&view).map_err(|e| Error::io("creating", &view, e))?;
    let rootless = state.rootless;
    // 1. A mount namespace of our own: the view below is seen by nobody else.
    namespace::enter_private_mount_ns()?;
    // 2. The container's files as they are now: a read-only overlay of its
    //    upper over the image's layers. Its volumes, /proc and /dev are
    //    mounts in *its* namespace, so they are not in this view
    //    (docs/ch5-commit.md#commit).
    overlay::mount_readonly_view(&state.layers, &container.layout().upper, &view, rootless)?;
    // 3. Walk the view without following a symlink, into a gzip tarball
    //    written beside its destination...
    let partial = dest.with_file_name(format!(".{image_name}.partial.{}", std::process::id()));
    let written = write_image(&view, &partial);
    let unmounted = mount::unmount_detach(5, &view);
    // 4. ...and linked into place in one step, never over an existing image.
    //    Whatever failed, the partial file goes.
    let linked = written.and_then(|written| {
        unmounted?;
        fs::hard_link(&partial, &dest).map_err(|e| Error::io("writing image", &dest, e))?;
        Ok(written)
    });
    let _ = fs::remove_file(&partial);
    let written = linked?;
    narrate!(
        5,
        "committed {name}: {} entries, {} bytes of file data, into {}",
        written.entries,
        written.bytes,
        dest.display()
    );
    for skipped in &written.skipped {
        eprintln!(
            "ch5-commit: not committed (a device node or socket): /{}",
            common::error::printable(&skipped.display().to_string())
        );
    }
    println!("{}", dest.display());
    Ok(ExitCode::SUCCESS)
}

/// The tree at `view` as a gzip tarball in `path` (created, never overwritten).
fn write_image(view: &Path, path: &Path) -> Result<image::export::Exported> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io("creating", path, e))?;
    let mut gzip = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let written = image::export::write_tree(view, &mut gzip)?;
    gzip.finish()
        .and_then(|file| file.sync_all())
        .map_err(|e| Error::io("writing", path, e))?;
    Ok(written)
}

fn images(root: &DataRoot) -> Result<ExitCode> {
    let dir = root.dir("images")?;
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(|e| Error::io("listing", &dir, e))?
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    println!("{:<24}  {:>10}  {:>6}  CREATED", "NAME", "SIZE", "LAYERS");
    for path in files {
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let Some(name) = file
            .strip_suffix(".tar.gz")
            .or_else(|| file.strip_suffix(".tar"))
        else {
            continue;
        };
        let meta = fs::metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
        let created = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let layers = image::layer_count(&path).map_or("?".to_string(), |n| n.to_string());
        println!(
            "{:<24}  {:>10}  {:>6}  {}",
            name,
            human_size(meta.len()),
            layers,
            container::age(created)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn human_size(bytes: u64) -> String {
    match bytes {
        0..=1023 => format!("{bytes} B"),
        1024..=1_048_575 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}
