//! The command's environment: empty but for what a container needs, plus
//! `-e` and `--env-file` (ch2 onwards).
//!
//! The caller's variables (tokens, `SSH_AUTH_SOCK`, proxy settings) mean
//! nothing inside an image, and may be secrets: from chapter 2 on the command
//! starts from an empty environment, as Docker's does, with only
//!
//! * `PATH` (Docker's default search path), `HOSTNAME` and `HOME=/root`,
//! * `TERM=xterm` when it has a terminal (as `docker run -t` sets it),
//! * and what the learner asks for: `--env-file FILE` first, then each
//!   `-e NAME=VALUE`, or `-e NAME` for the caller's own value (left out,
//!   as Docker leaves it, when the caller has none). A later one wins.
//!
//! Chapter 1 runs the host's own programs and keeps the caller's environment.

use std::io::Read;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};

use crate::error::{printable, quote, Error, Result};
use crate::narrate;

/// The search path a container's command gets, whatever the host's (Docker's default).
pub const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The largest `--env-file` read: an environment is a few kilobytes.
const MAX_ENV_FILE: u64 = 1 << 20;

/// The variables a container's command starts with, in order, names unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: Vec<(String, String)>,
    /// Whether HOME was given (by the image or `-e`), not our default.
    home_given: bool,
}

impl Environment {
    /// What every container's command gets: PATH, HOSTNAME and HOME, then
    /// `extra` (the learner's `-e` and `--env-file`), which may replace them.
    pub fn container(hostname: &str, extra: &[(String, String)]) -> Environment {
        let mut env = Environment::default();
        env.set("PATH", CONTAINER_PATH);
        env.set("HOSTNAME", hostname);
        env.set("HOME", "/root");
        env.home_given = false;
        for (name, value) in extra {
            env.set(name, value);
        }
        env
    }

    /// As [`Environment::container`], with the image's `Env` between our
    /// defaults and `extra` (ch3 onwards, where images bring a config).
    pub fn for_image(
        hostname: &str,
        image: &crate::image::Config,
        extra: &[(String, String)],
    ) -> Environment {
        Environment::container(hostname, &[image.env_pairs(), extra.to_vec()].concat())
    }

    /// HOME is the user's home (from the image's /etc/passwd) unless the
    /// image or `-e` set it.
    pub fn default_home(&mut self, home: &str) {
        if !self.home_given {
            self.set("HOME", home);
            self.home_given = false;
        }
    }

    /// Set `name`, replacing an earlier value in its place.
    pub fn set(&mut self, name: &str, value: &str) {
        self.home_given |= name == "HOME";
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some(var) => var.1 = value.to_string(),
            None => self.vars.push((name.to_string(), value.to_string())),
        }
    }

    /// With a terminal, `TERM=xterm` unless the learner set TERM (as Docker does).
    pub fn with_terminal(mut self, terminal: bool) -> Environment {
        if terminal && !self.vars.iter().any(|(n, _)| n == "TERM") {
            self.set("TERM", "xterm");
        }
        self
    }

    /// The variables, in order.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    /// In the child, just before exec: drop every inherited variable and set
    /// these. Values are not narrated: they may be secrets.
    pub fn apply(&self) {
        let names: Vec<&str> = self.vars.iter().map(|(n, _)| n.as_str()).collect();
        narrate!(
            2,
            "clearenv(); setenv() × {}: {}   /* nothing else of the caller's environment */",
            names.len(),
            printable(&names.join(" "))
        );
        for (name, _) in std::env::vars_os() {
            std::env::remove_var(name);
        }
        for (name, value) in &self.vars {
            std::env::set_var(name, value);
        }
    }
}

/// The learner's variables from `--env-file` (each file in order) and then
/// `-e` (in order), checked before anything is created. `-e NAME` and a
/// bare `NAME` line take the caller's value now, or are left out.
pub fn parse(env: &[String], files: &[PathBuf]) -> Result<Vec<(String, String)>> {
    let mut vars = Vec::new();
    for file in files {
        let text = read_env_file(file)?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let place = format!("--env-file {}, line {}", quote(file), number + 1);
            vars.extend(one(line, &place)?);
        }
    }
    for spec in env {
        vars.extend(one(spec, "-e")?);
    }
    Ok(vars)
}

/// One `NAME=VALUE` or `NAME`, from `place` (for the error).
fn one(spec: &str, place: &str) -> Result<Option<(String, String)>> {
    let (name, value) = match spec.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (spec, None),
    };
    let refuse = |why: &str| {
        Error::Invalid(format!(
            "{place}: {} is not a variable: {why}; write NAME=VALUE, or NAME to pass on yours",
            quote(spec)
        ))
    };
    if name.is_empty() {
        return Err(refuse("its name is empty"));
    }
    if name.chars().any(char::is_whitespace) {
        return Err(refuse("its name holds whitespace"));
    }
    if spec.contains('\0') {
        return Err(refuse("it holds a NUL byte"));
    }
    Ok(match value {
        Some(value) => Some((name.to_string(), value.to_string())),
        // As Docker: the caller's value, or nothing if the caller has none.
        None => std::env::var(name)
            .ok()
            .map(|value| (name.to_string(), value)),
    })
}

/// The text of an `--env-file`: a regular file, at most 1 MiB of UTF-8.
/// A FIFO or a device is refused at once instead of blocking or never ending.
fn read_env_file(path: &Path) -> Result<String> {
    let shown = quote(path);
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(|errno| {
        Error::Invalid(format!(
            "--env-file {shown}: {}: give a file of NAME=VALUE lines",
            errno.desc()
        ))
    })?;
    let stat =
        nix::sys::stat::fstat(&fd).map_err(|errno| Error::sys(format!("fstat({shown})"), errno))?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(Error::Invalid(format!(
            "--env-file {shown} is not a regular file: give a file of NAME=VALUE lines"
        )));
    }
    if stat.st_size as u64 > MAX_ENV_FILE {
        return Err(Error::Invalid(format!(
            "--env-file {shown} is larger than 1 MiB: an environment file holds a few NAME=VALUE lines"
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_ENV_FILE)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading", path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        Error::Invalid(format!(
            "--env-file {shown}, line {line}: not UTF-8 text: save it as UTF-8"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_container_starts_with_path_hostname_and_home_only() {
        let env = Environment::container("web", &[]);
        assert_eq!(
            env.vars(),
            vars(&[
                ("PATH", CONTAINER_PATH),
                ("HOSTNAME", "web"),
                ("HOME", "/root")
            ])
        );
    }

    #[test]
    fn the_learners_variables_come_after_and_replace_in_place() {
        let env = Environment::container("web", &vars(&[("FOO", "1"), ("HOME", "/data")]));
        assert_eq!(
            env.vars(),
            vars(&[
                ("PATH", CONTAINER_PATH),
                ("HOSTNAME", "web"),
                ("HOME", "/data"),
                ("FOO", "1")
            ])
        );
    }

    #[test]
    fn term_is_added_with_a_terminal_unless_set() {
        let env = Environment::container("web", &[]);
        assert!(!env
            .clone()
            .with_terminal(false)
            .vars()
            .iter()
            .any(|(n, _)| n == "TERM"));
        assert!(env
            .with_terminal(true)
            .vars()
            .contains(&("TERM".into(), "xterm".into())));
        let own = Environment::container("web", &vars(&[("TERM", "vt100")])).with_terminal(true);
        assert_eq!(own.vars().iter().filter(|(n, _)| n == "TERM").count(), 1);
        assert!(own.vars().contains(&("TERM".into(), "vt100".into())));
    }

    #[test]
    fn e_takes_name_value_and_keeps_equals_signs_in_the_value() {
        let parsed = parse(&["A=1".into(), "B=x=y".into(), "C=".into()], &[]).unwrap();
        assert_eq!(parsed, vars(&[("A", "1"), ("B", "x=y"), ("C", "")]));
    }

    #[test]
    fn e_name_alone_takes_the_callers_value_or_nothing() {
        // PATH is set in every test process; this name never is.
        let parsed = parse(
            &["PATH".into(), "STEPBOX_TEST_NEVER_SET_ANYWHERE".into()],
            &[],
        )
        .unwrap();
        assert_eq!(parsed, vars(&[("PATH", &std::env::var("PATH").unwrap())]));
    }

    #[test]
    fn bad_variables_are_refused_each_for_its_own_reason() {
        for (spec, why) in [
            ("", "its name is empty"),
            ("=x", "its name is empty"),
            ("A B=1", "its name holds whitespace"),
            ("A\tB", "its name holds whitespace"),
            ("A=\0", "it holds a NUL byte"),
        ] {
            let error = parse(&[spec.into()], &[]).unwrap_err().to_string();
            assert!(error.starts_with("-e: "), "{spec:?}: {error}");
            assert!(error.contains(why), "{spec:?}: {error}");
            assert!(
                error.ends_with("write NAME=VALUE, or NAME to pass on yours"),
                "{error}"
            );
        }
    }

    #[test]
    fn an_env_file_skips_blanks_and_comments_and_comes_before_e() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vars");
        std::fs::write(&file, "# settings\n\n  A=from file\nB=2\n").unwrap();
        let parsed = parse(&["A=from -e".into()], &[file]).unwrap();
        assert_eq!(
            parsed,
            vars(&[("A", "from file"), ("B", "2"), ("A", "from -e")])
        );
        let env = Environment::container("h", &parsed);
        assert!(env.vars().contains(&("A".into(), "from -e".into())));
    }

    #[test]
    fn an_env_file_error_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vars");
        std::fs::write(&file, "A=1\nnot a name=2\n").unwrap();
        let error = parse(&[], std::slice::from_ref(&file))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!("--env-file {}, line 2: ", quote(&file))),
            "{error}"
        );
        std::fs::write(&file, b"A=1\nB=\xff\n").unwrap();
        let error = parse(&[], &[file]).unwrap_err().to_string();
        assert!(error.contains("line 2: not UTF-8 text"), "{error}");
    }

    #[test]
    fn an_env_file_that_is_not_a_regular_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        for path in [fifo, dir.path().to_path_buf(), "/dev/zero".into()] {
            let error = parse(&[], std::slice::from_ref(&path))
                .unwrap_err()
                .to_string();
            assert!(error.contains("is not a regular file"), "{path:?}: {error}");
        }
        let error = parse(&[], &[dir.path().join("missing")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("No such file or directory"), "{error}");
    }
}
