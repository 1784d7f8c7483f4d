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

use std::sync::atomic::{AtomicBool, Ordering};

use log::LevelFilter;
use simplelog::{ConfigBuilder, WriteLogger};

static IN_CHILD: AtomicBool = AtomicBool::new(false);

/// Set up logging to stderr: `quiet` shows only warnings, `verbose` adds detail.
pub fn init(quiet: bool, verbose: bool) {
    let level = match (quiet, verbose) {
        (true, _) => LevelFilter::Warn,
        (false, true) => LevelFilter::Debug,
        (false, false) => LevelFilter::Info,
    };
    let config = ConfigBuilder::new()
        .set_time_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        .set_max_level(LevelFilter::Off)
        .build();
    // Only fails if a logger is already set, which leaves that one in place.
    let _ = WriteLogger::init(level, config, std::io::stderr());
}

/// Mark this process as the child: its narration is tagged `[child ]`.
pub fn enter_child() {
    IN_CHILD.store(true, Ordering::Relaxed);
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

/// Print one taught system call (or step) in C form, at info level.
#[macro_export]
macro_rules! narrate {
    ($($arg:tt)*) => {
        ::log::info!("{} {}", $crate::log::tag(), format_args!($($arg)*))
    };
}

/// Print a detail that only `-v` shows.
#[macro_export]
macro_rules! detail {
    ($($arg:tt)*) => {
        ::log::debug!("{} {}", $crate::log::tag(), format_args!($($arg)*))
    };
}
