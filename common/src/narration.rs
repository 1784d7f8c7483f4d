//! Narration: every system call a chapter teaches is printed in C form (every chapter).
//!
//! At the default level each taught call is printed on stderr with its real
//! arguments, so a learner can line it up with the man page:
//!
//! ```text
//! [child ] mount("tmpfs", "/tmp", "tmpfs", 0, NULL)
//! ```
//!
//! The tag says which side of `clone` made the call. `-q` silences the
//! narration (errors are still printed, by `main`); `-v` adds detail.
//!
//! Each line also knows the chapter that introduced its step, given at the
//! call site: `narrate!(2, "pivot_root(...)")`. With `--narrate=new` the
//! running chapter's own lines are printed in full (bold on a terminal) and
//! each run of consecutive lines from earlier chapters is folded into one:
//!
//! ```text
//! [child ] … 3 steps from chapters 1–2 …
//! [child ] mount("overlay", ...)
//! ```
//!
//! Every process folds its own lines (the parent and the child each have a
//! copy of this state after `clone`). A pending fold is printed when a line of
//! the running chapter comes, when the tag changes, and by [`flush`], which
//! stepbox calls before it releases a child, before `execvp`, before a child
//! reports an error, and at exit; so no folded step is ever lost.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use log::LevelFilter;
use simplelog::{ConfigBuilder, WriteLogger};

static IN_CHILD: AtomicBool = AtomicBool::new(false);

/// Which narration lines `--narrate` prints in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Narrate {
    /// Every line, from every chapter (the default)
    #[default]
    All,
    /// This chapter's lines in full; each run of earlier chapters' lines folded into one
    New,
}

/// A narration line is a taught step (printed by default) or a detail (`-v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A taught call or step, at info level.
    Step,
    /// Extra detail, printed only with `-v`.
    Detail,
}

/// Set up logging to stderr: `quiet` shows only warnings, `verbose` adds
/// detail; `chapter` is the running binary's chapter, whose lines
/// `--narrate=new` prints in full.
pub fn init(quiet: bool, verbose: bool, mode: Narrate, chapter: u8) {
    let level = match (quiet, verbose) {
        (true, _) => LevelFilter::Warn,
        (false, true) => LevelFilter::Debug,
        (false, false) => LevelFilter::Info,
    };
    // Narration is written by `line` below; this logger prints whatever else
    // is logged (by a dependency), as before.
    let config = ConfigBuilder::new()
        .set_time_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        .set_max_level(LevelFilter::Off)
        .build();
    // Only fails if a logger is already set, which leaves that one in place.
    let _ = WriteLogger::init(level, config, std::io::stderr());
    let highlight = mode == Narrate::New && stderr_is_terminal() && !no_color();
    *narrator() = Some(Narrator {
        folder: Folder::new(mode, chapter, highlight),
        pid: std::process::id(),
    });
    // SAFETY: registers a plain function, which only takes our lock and writes to fd 2.
    unsafe { libc::atexit(flush_at_exit) };
}

fn stderr_is_terminal() -> bool {
    nix::unistd::isatty(std::io::stderr()).unwrap_or(false)
}

/// The convention of <https://no-color.org>: any non-empty NO_COLOR turns colours off.
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Mark this process as the child: its narration is tagged `[child ]`.
/// The fold it inherited through `clone` is the parent's to print, not ours.
pub fn enter_child() {
    IN_CHILD.store(true, Ordering::Relaxed);
    if let Some(narrator) = narrator().as_mut() {
        narrator.folder.discard();
        narrator.pid = std::process::id();
    }
}

/// The tag that starts each narration line.
pub fn tag() -> &'static str {
    if IN_CHILD.load(Ordering::Relaxed) {
        "[child ]"
    } else {
        "[parent]"
    }
}

/// `A|B|C`: the names of the flags that `has` says are set, as C would
/// spell the flag word, or `0` for none.
pub fn flag_names<F: Copy>(table: &[(F, &str)], has: impl Fn(F) -> bool) -> String {
    let names: Vec<&str> = table
        .iter()
        .filter(|(flag, _)| has(*flag))
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        "0".to_string()
    } else {
        names.join("|")
    }
}

/// One process's narration state.
struct Narrator {
    folder: Folder,
    /// The process this fold belongs to: a forked process inherits a copy of
    /// its parent's pending fold, which only the parent may print.
    pid: u32,
}

impl Narrator {
    fn here(&mut self) -> &mut Folder {
        let me = std::process::id();
        if self.pid != me {
            self.folder.discard();
            self.pid = me;
        }
        &mut self.folder
    }
}

static NARRATOR: Mutex<Option<Narrator>> = Mutex::new(None);

fn narrator() -> std::sync::MutexGuard<'static, Option<Narrator>> {
    // A panic while printing leaves nothing half-done that matters here.
    NARRATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Print one narration line from `chapter` (what [`narrate!`] and [`detail!`] call).
pub fn line(chapter: u8, kind: Kind, args: fmt::Arguments) {
    let level = match kind {
        Kind::Step => LevelFilter::Info,
        Kind::Detail => LevelFilter::Debug,
    };
    if log::max_level() < level {
        return;
    }
    let text = args.to_string();
    let mut guard = narrator();
    let out = match guard.as_mut() {
        Some(narrator) => narrator.here().line(tag(), chapter, kind, &text),
        // Not set up by `init` (a library user): print as the default does.
        None => vec![format!("{} {text}", tag())],
    };
    write_lines(&out);
}

/// Print the pending fold, if any: before exec, before an error, at exit.
pub fn flush() {
    let mut guard = narrator();
    if let Some(fold) = guard.as_mut().and_then(|n| n.here().flush()) {
        write_lines(&[fold]);
    }
}

extern "C" fn flush_at_exit() {
    flush();
}

/// Write `lines` to stderr in one write, so that the parent's and the
/// child's lines never interleave mid-line.
fn write_lines(lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    // Narration is best effort: if stderr is gone there is nowhere to report it.
    let _ = std::io::stderr().write_all(text.as_bytes());
}

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// The folding of `--narrate=new`, for one process: given each line, it says
/// what to print now. Pure, so that its tests need no process.
#[derive(Debug)]
pub struct Folder {
    mode: Narrate,
    chapter: u8,
    highlight: bool,
    pending: Option<Fold>,
}

/// Consecutive lines from earlier chapters, made by one side, not yet printed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fold {
    tag: &'static str,
    steps: usize,
    details: usize,
    /// Bit N set: a line from chapter N is in the fold.
    chapters: u64,
}

impl Folder {
    /// Fold for the running `chapter`; `highlight` makes its lines bold.
    pub fn new(mode: Narrate, chapter: u8, highlight: bool) -> Folder {
        Folder {
            mode,
            chapter,
            highlight,
            pending: None,
        }
    }

    /// The lines to print now for one narration line `text` from `chapter`,
    /// made by the side `tag`.
    pub fn line(&mut self, tag: &'static str, chapter: u8, kind: Kind, text: &str) -> Vec<String> {
        let line = format!("{tag} {text}");
        if self.mode == Narrate::All {
            return vec![line];
        }
        if chapter >= self.chapter {
            let mut out: Vec<String> = self.flush().into_iter().collect();
            out.push(if self.highlight {
                format!("{BOLD}{line}{RESET}")
            } else {
                line
            });
            return out;
        }
        let mut out = Vec::new();
        if self.pending.as_ref().is_some_and(|fold| fold.tag != tag) {
            out.extend(self.flush());
        }
        let fold = self.pending.get_or_insert(Fold {
            tag,
            steps: 0,
            details: 0,
            chapters: 0,
        });
        match kind {
            Kind::Step => fold.steps += 1,
            Kind::Detail => fold.details += 1,
        }
        fold.chapters |= 1u64 << chapter.min(63);
        out
    }

    /// The pending fold's line, if there is one; the fold is then closed.
    pub fn flush(&mut self) -> Option<String> {
        let fold = self.pending.take()?;
        let line = format!(
            "{} … {} from {} …",
            fold.tag,
            counts(fold.steps, fold.details),
            chapter_list(fold.chapters)
        );
        Some(if self.highlight {
            format!("{DIM}{line}{RESET}")
        } else {
            line
        })
    }

    /// Forget the pending fold (another process prints it).
    pub fn discard(&mut self) {
        self.pending = None;
    }
}

/// `9 steps`, `1 step and 2 details`, `3 details`.
fn counts(steps: usize, details: usize) -> String {
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("1 {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    match (steps, details) {
        (_, 0) => plural(steps, "step"),
        (0, _) => plural(details, "detail"),
        _ => format!(
            "{} and {}",
            plural(steps, "step"),
            plural(details, "detail")
        ),
    }
}

/// `chapter 1`, `chapters 1–2`, `chapters 1, 3`, `chapters 1–3, 5`.
fn chapter_list(bits: u64) -> String {
    let chapters: Vec<u8> = (0..64).filter(|n| bits & (1u64 << n) != 0).collect();
    let mut ranges: Vec<(u8, u8)> = Vec::new();
    for n in chapters {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => ranges.push((n, n)),
        }
    }
    let shown: Vec<String> = ranges
        .iter()
        .map(|&(start, end)| match end - start {
            0 => start.to_string(),
            _ => format!("{start}–{end}"),
        })
        .collect();
    match ranges.as_slice() {
        [(start, end)] if start == end => format!("chapter {start}"),
        _ => format!("chapters {}", shown.join(", ")),
    }
}

/// Print one taught system call (or step) in C form, at info level.
/// The first argument is the chapter that introduced the step.
#[macro_export]
macro_rules! narrate {
    ($chapter:expr, $($arg:tt)+) => {
        $crate::narration::line($chapter, $crate::narration::Kind::Step, format_args!($($arg)+))
    };
}

/// Print a detail that only `-v` shows. The first argument is the chapter
/// that introduced it.
#[macro_export]
macro_rules! detail {
    ($chapter:expr, $($arg:tt)+) => {
        $crate::narration::line($chapter, $crate::narration::Kind::Detail, format_args!($($arg)+))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "[parent]";
    const C: &str = "[child ]";

    fn new_mode(chapter: u8) -> Folder {
        Folder::new(Narrate::New, chapter, false)
    }

    #[test]
    fn all_prints_every_line_as_it_always_did() {
        let mut folder = Folder::new(Narrate::All, 3, false);
        assert_eq!(folder.line(C, 1, Kind::Step, "a"), ["[child ] a"]);
        assert_eq!(folder.line(C, 3, Kind::Detail, "b"), ["[child ] b"]);
        assert_eq!(folder.flush(), None);
    }

    #[test]
    fn earlier_chapters_fold_into_one_line_until_a_new_line_comes() {
        let mut folder = new_mode(3);
        assert!(folder.line(C, 1, Kind::Step, "a").is_empty());
        assert!(folder.line(C, 2, Kind::Step, "b").is_empty());
        assert!(folder.line(C, 1, Kind::Step, "c").is_empty());
        assert_eq!(
            folder.line(C, 3, Kind::Step, "overlay"),
            ["[child ] … 3 steps from chapters 1–2 …", "[child ] overlay"]
        );
        assert_eq!(folder.flush(), None);
    }

    #[test]
    fn a_fold_ends_when_the_side_changes() {
        let mut folder = new_mode(3);
        assert!(folder.line(P, 1, Kind::Step, "a").is_empty());
        assert_eq!(
            folder.line(C, 1, Kind::Step, "b"),
            ["[parent] … 1 step from chapter 1 …"]
        );
        assert_eq!(
            folder.flush().as_deref(),
            Some("[child ] … 1 step from chapter 1 …")
        );
    }

    #[test]
    fn details_are_counted_apart_from_steps() {
        let mut folder = new_mode(2);
        folder.line(P, 1, Kind::Detail, "d");
        assert_eq!(
            folder.flush().as_deref(),
            Some("[parent] … 1 detail from chapter 1 …")
        );
        folder.line(P, 1, Kind::Step, "s");
        folder.line(P, 1, Kind::Detail, "d");
        folder.line(P, 1, Kind::Detail, "d");
        assert_eq!(
            folder.flush().as_deref(),
            Some("[parent] … 1 step and 2 details from chapter 1 …")
        );
    }

    #[test]
    fn chapters_that_are_not_contiguous_are_listed() {
        assert_eq!(chapter_list(0b1010), "chapters 1, 3");
        assert_eq!(chapter_list(0b101110), "chapters 1–3, 5");
        assert_eq!(chapter_list(0b100), "chapter 2");
    }

    #[test]
    fn a_later_chapter_line_is_printed_in_full_too() {
        let mut folder = new_mode(2);
        assert_eq!(folder.line(P, 5, Kind::Step, "x"), ["[parent] x"]);
    }

    #[test]
    fn highlighting_makes_new_lines_bold_and_folds_dim() {
        let mut folder = Folder::new(Narrate::New, 3, true);
        folder.line(C, 1, Kind::Step, "a");
        assert_eq!(
            folder.line(C, 3, Kind::Step, "b"),
            [
                "\x1b[2m[child ] … 1 step from chapter 1 …\x1b[0m",
                "\x1b[1m[child ] b\x1b[0m"
            ]
        );
    }

    #[test]
    fn a_discarded_fold_is_not_printed() {
        let mut folder = new_mode(3);
        folder.line(P, 1, Kind::Step, "a");
        folder.discard();
        assert_eq!(folder.flush(), None);
    }
}
