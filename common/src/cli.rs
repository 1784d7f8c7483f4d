//! Command-line arguments every chapter shares, flattened into each chapter's
//! own, and the `main` every chapter shares (every chapter).

use std::process::ExitCode;

use clap::{Args, Parser};

use crate::narration::Narrate;
use crate::Result;

/// `-q`, `-v` and `--narrate`: how much of the story to tell; `--doctor`:
/// check this machine instead.
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Do not narrate system calls (errors are still printed)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Narrate extra detail
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Narrate every step (all), or this chapter's in full and earlier chapters' folded (new)
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "all",
        value_name = "WHICH"
    )]
    pub narrate: Narrate,
    /// Check that this machine can run the chapters (kernel, user namespaces,
    /// propagation, overlayfs, subordinate ids, cgroups, busybox), then exit
    #[arg(long)]
    pub doctor: bool,
}

impl LogArgs {
    /// Set up logging as these flags ask, for the binary of `chapter`.
    pub fn init(&self, chapter: u8) {
        crate::narration::init(self.quiet, self.verbose, self.narrate, chapter);
    }
}

/// The `main` of every chapter: answer `--doctor`, or set up narration and
/// call `run`; print its error once, prefixed with the binary's `name`, and
/// return the exit code (the command's, or the error's: 125, 126, 127).
pub fn main(
    name: &str,
    chapter: u8,
    log: &LogArgs,
    run: impl FnOnce() -> Result<ExitCode>,
) -> ExitCode {
    if log.doctor {
        return crate::doctor::main(name);
    }
    log.init(chapter);
    let result = run();
    // The last folded steps belong before the error, not after it.
    crate::narration::flush();
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("{name}: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// The command to run in the container, with its arguments.
#[derive(Args, Debug, Clone)]
pub struct CommandArgs {
    /// Command to run, with its arguments [default: /bin/sh]
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

impl CommandArgs {
    /// The command line, defaulting to an interactive `/bin/sh`.
    pub fn argv(&self) -> Vec<String> {
        if self.command.is_empty() {
            vec!["/bin/sh".to_string()]
        } else {
            self.command.clone()
        }
    }
}

/// How the container's command starts: its variables, and whether stepbox
/// stays PID 1 (ch2 onwards).
#[derive(Args, Debug, Clone)]
pub struct StartArgs {
    /// Run stepbox itself as PID 1: it passes signals on to COMMAND and reaps orphans (Docker's --init)
    #[arg(long)]
    pub init: bool,
    #[command(flatten)]
    pub env: EnvArgs,
}

/// `-e` and `--env-file`: the variables the command gets besides PATH,
/// HOSTNAME, HOME (and TERM with a terminal) (ch2 onwards).
#[derive(Args, Debug, Clone)]
pub struct EnvArgs {
    /// Set a variable in the container; NAME alone passes on yours (repeatable)
    #[arg(short = 'e', long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// Read variables from FILE, one NAME=VALUE (or NAME) per line, before -e (repeatable)
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<std::path::PathBuf>,
}

impl EnvArgs {
    /// The variables asked for, checked (before anything is created).
    pub fn parse(&self) -> Result<Vec<(String, String)>> {
        crate::environment::parse(&self.env, &self.env_files)
    }
}

/// Which image, where the data lives, and the container's hostname (ch2 onwards).
#[derive(Args, Debug, Clone)]
pub struct ImageArgs {
    /// Image name in the data root, or a path to a rootfs tarball (.tar, .tar.gz) or directory
    #[arg(long, default_value = crate::image::DEFAULT_IMAGE, value_name = "NAME|PATH")]
    pub image: String,
    /// Data root [default: /var/lib/stepbox as root, else ~/.local/share/stepbox; env STEPBOX_ROOT]
    #[arg(long, value_name = "DIR")]
    pub root: Option<std::path::PathBuf>,
    /// Hostname inside the container
    #[arg(long, default_value = "stepbox")]
    pub hostname: String,
}

/// Parse a chapter's arguments with `-v` left free for `--volume` (chapter 4
/// on, as in Docker): the narration's extra detail is then `--verbose` only.
pub fn parse_with_volume_flag<T: Parser>() -> T {
    let matches = with_volume_flag(T::command()).get_matches();
    T::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
}

/// `command` with `-v` taken off `--verbose`, free for `--volume`.
pub fn with_volume_flag(command: clap::Command) -> clap::Command {
    command.mut_arg("verbose", |arg| arg.short(None))
}
