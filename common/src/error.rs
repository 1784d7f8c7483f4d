//! Errors that name the step, the path and the errno (every chapter).
//!
//! A learner who sees an error should know which call failed, on which path,
//! why the kernel said no, and what to do about it. So every failure carries
//! the call in the same C form the narration prints, the errno, and where we
//! can tell, a hint in plain words:
//!
//! ```text
//! pivot_root(".", "."): Invalid argument (new_root is not a mount point)
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// Exit code for a failure of stepbox itself, before the command ran
/// (Docker uses the same number for the same case).
pub const EXIT_SETUP_FAILED: u8 = 125;
/// Exit code when the command exists but cannot be executed.
pub const EXIT_CANNOT_EXECUTE: u8 = 126;
/// Exit code when the command was not found.
pub const EXIT_NOT_FOUND: u8 = 127;

/// Everything that can go wrong in a chapter, with enough context to act on.
#[derive(Debug)]
pub enum Error {
    /// A system call failed. `call` is the call in C form with its arguments.
    Sys {
        call: String,
        errno: Errno,
        hint: Option<String>,
    },
    /// A file operation failed on a path.
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Input was refused before anything was touched: what was wrong and the fix.
    Invalid(String),
    /// The request is fine but the state on disk is in the way (a name in
    /// use, a container running, an image that exists): what and the fix.
    Conflict(String),
    /// Something that should not happen did (a process we depend on died):
    /// not the learner's input, and not a system call's refusal.
    Internal(String),
    /// `error` happened, and the clean-up after it failed too: both are told.
    Cleanup {
        error: Box<Error>,
        cleanup: Box<Error>,
    },
    /// The child failed before it could exec the command and sent us why.
    Child { message: String, code: u8 },
}

/// The result of every fallible step in stepbox.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A failed system call, with the errno and no hint.
    pub fn sys(call: impl Into<String>, errno: Errno) -> Self {
        Error::Sys {
            call: call.into(),
            errno,
            hint: None,
        }
    }

    /// A failed file operation on `path`.
    pub fn io(what: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io {
            what,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// Attach a plain-words hint (replacing any earlier one) to a `Sys` error.
    pub fn hint(self, text: impl Into<String>) -> Self {
        match self {
            Error::Sys { call, errno, .. } => Error::Sys {
                call,
                errno,
                hint: Some(text.into()),
            },
            other => other,
        }
    }

    /// The errno of a failed system call, if this is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Sys { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
            _ => None,
        }
    }

    /// The process exit code this error should end the program with:
    /// 127 for a command not found, 126 for one that cannot run, else 125.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Child { code, .. } => *code,
            Error::Cleanup { error, .. } => error.exit_code(),
            _ => EXIT_SETUP_FAILED,
        }
    }

    /// This error, with the result of the clean-up that followed it: a
    /// failed clean-up is reported beside it, never dropped.
    pub fn with_cleanup(self, cleanup: Result<()>) -> Error {
        match cleanup {
            Ok(()) => self,
            Err(cleanup) => Error::Cleanup {
                error: Box::new(self),
                cleanup: Box::new(cleanup),
            },
        }
    }
}

impl fmt::Display for Error {
    /// One printable line: control bytes (which may come from an image, an
    /// archive or a file name) escaped, and a very long message shortened in
    /// the middle, so that its start (the step) and end (the hint) stay.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        fmt::write(&mut text, format_args!("{}", Raw(self)))?;
        f.write_str(&shorten(&printable(&text), MAX_MESSAGE))
    }
}

/// The longest error message printed whole, in characters.
pub const MAX_MESSAGE: usize = 500;

/// `text` with every control character (C0, DEL, C1: terminal escapes,
/// newlines, bells) written as a visible escape such as `\x1b`.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{0}'..='\u{1f}' | '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            '\u{80}'..='\u{9f}' => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `text` if it has at most `max` characters, else its start and its end
/// around a note of how much was left out.
pub fn shorten(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let keep = max / 2;
    let head: String = text.chars().take(keep).collect();
    let tail: String = text.chars().skip(count - keep).collect();
    format!("{head}[... {} characters ...]{tail}", count - 2 * keep)
}

/// Tell the learner something on stderr that even `-q` must not hide
/// (e.g. a directory created on their behalf), as `PROGRAM: text`.
pub fn notice(text: impl fmt::Display) {
    crate::narration::flush();
    let program = std::env::args_os()
        .next()
        .map(|arg0| {
            Path::new(&arg0)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_else(|| "stepbox".into());
    eprintln!("{program}: {}", printable(&text.to_string()));
}

/// The message as built, before it is made printable.
struct Raw<'a>(&'a Error);

impl fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Error::Sys { call, errno, hint } => {
                write!(f, "{call}: {}", errno.desc())?;
                if let Some(hint) = hint {
                    write!(f, " ({hint})")?;
                }
                Ok(())
            }
            Error::Io { what, path, source } => {
                write!(f, "{what} {}: {source}", path.display())
            }
            Error::Invalid(text) | Error::Conflict(text) | Error::Internal(text) => {
                f.write_str(text)
            }
            Error::Child { message, .. } => f.write_str(message),
            Error::Cleanup { error, cleanup } => {
                write!(
                    f,
                    "{}; and cleaning up after it failed: {}",
                    Raw(error),
                    Raw(cleanup)
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Quote a string the way C prints a string literal, for the narration.
pub fn quote(s: impl AsRef<std::ffi::OsStr>) -> String {
    format!("{:?}", s.as_ref().to_string_lossy())
}

/// Turn a `nix` result into ours, naming the call that produced it.
pub trait SysContext<T> {
    /// On error, record `call` (built lazily) as the failed call.
    fn call(self, call: impl FnOnce() -> String) -> Result<T>;
}

impl<T> SysContext<T> for nix::Result<T> {
    fn call(self, call: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|errno| Error::sys(call(), errno))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_clean_up_is_told_beside_the_error_and_keeps_its_exit_code() {
        let error = Error::Child {
            message: "execvp(\"x\"): No such file or directory".into(),
            code: 127,
        };
        let both = error.with_cleanup(Err(Error::Conflict("rmdir c: busy".into())));
        assert_eq!(
            both.to_string(),
            "execvp(\"x\"): No such file or directory; and cleaning up after it failed: rmdir c: busy"
        );
        assert_eq!(both.exit_code(), 127);
        let alone = Error::Internal("gone".into()).with_cleanup(Ok(()));
        assert_eq!(alone.to_string(), "gone");
    }

    #[test]
    fn terminal_escapes_and_newlines_are_shown_not_sent() {
        let text = printable("a\u{1b}[2Jb\u{7}c\nd\u{9b}e");
        assert_eq!(text, "a\\x1b[2Jb\\x07c\\x0ad\\u{9b}e");
    }

    #[test]
    fn printable_text_is_kept_as_it_is() {
        assert_eq!(printable("étape: ok / 100 %"), "étape: ok / 100 %");
    }

    #[test]
    fn a_long_message_keeps_its_start_and_its_end() {
        let long = format!("start {} end", "x".repeat(1000));
        let short = shorten(&long, 100);
        assert!(short.starts_with("start "), "{short}");
        assert!(short.ends_with(" end"), "{short}");
        assert!(short.contains("characters ..."), "{short}");
        assert!(short.chars().count() < 130, "{short}");
    }

    #[test]
    fn an_error_displays_as_one_safe_line() {
        let error = Error::Invalid("name \u{1b}]0;owned\u{7}\nnext".into());
        assert_eq!(error.to_string(), "name \\x1b]0;owned\\x07\\x0anext");
    }
}
