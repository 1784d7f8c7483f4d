//! A real cgroup-v2 kernel for the tests of chapter 7: scripts/guest.sh boots
//! Debian's kernel in a QEMU guest that sees this machine's files, with
//! cgroup2 as its only hierarchy, and runs one command there as root.
//!
//! Booting takes tens of seconds under software emulation, so the suite
//! boots once: one host-side test gathers every guest-side check into one
//! run of its own test binary there ([`test_binary_in_guest`]), and the
//! guest-side tests run only where [`in_guest`] says so.
//!
//! Where no guest can be had (no QEMU, no kernel package, not x86_64...),
//! [`run`] returns the one-line reason, for the test to say it is skipped.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::run_within;

/// How long one guest run (boot and command) may take.
pub const GUEST_LIMIT: Duration = Duration::from_secs(300);

/// The exit status scripts/guest.sh gives when no guest can be had.
const UNAVAILABLE: i32 = 3;

/// What a command in the guest did.
#[derive(Debug)]
pub struct GuestRun {
    /// Its stdout and stderr, interleaved as printed.
    pub output: String,
    /// Its exit status (None: killed at [`GUEST_LIMIT`]).
    pub code: Option<i32>,
    /// scripts/guest.sh's timing line: `guest: booted in ... s, the command took ... s`.
    pub timing: String,
}

/// True in the guest, where scripts/guest.sh sets STEPBOX_IN_GUEST=1.
pub fn in_guest() -> bool {
    std::env::var_os("STEPBOX_IN_GUEST").is_some_and(|v| v == "1")
}

/// The repository, as the guest sees it too (the host's files, read-only).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Boot the guest and run `command` (a shell line) there as root, in the
/// repository; or the reason no guest could be had.
pub fn run(command: &str) -> Result<GuestRun, String> {
    let mut script = Command::new(repo().join("scripts/guest.sh"));
    script.arg("run").arg(command).process_group(0);
    let Some(outcome) = run_within(script, GUEST_LIMIT) else {
        return Err(format!(
            "the guest did not finish within {}s",
            GUEST_LIMIT.as_secs()
        ));
    };
    let said = |prefix: &str| {
        outcome
            .stderr
            .lines()
            .chain(outcome.stdout.lines())
            .find(|line| line.starts_with(prefix))
            .map(str::to_string)
    };
    if outcome.code == Some(UNAVAILABLE) {
        if let Some(line) = said("guest: unavailable:") {
            return Err(line);
        }
    }
    let timing = said("guest: booted").unwrap_or_default();
    Ok(GuestRun {
        output: outcome.stdout,
        code: outcome.code,
        timing,
    })
}

/// The shell line that runs test `name` of this very test binary in the
/// guest, alone and with its output shown.
pub fn test_binary_in_guest(name: &str) -> String {
    let exe = std::env::current_exe().expect("the test binary's path");
    format!(
        "'{}' --exact {name} --nocapture --test-threads=1 2>&1",
        exe.display()
    )
}
