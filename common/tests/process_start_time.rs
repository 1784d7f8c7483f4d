//! When a process started (common::process::start_time, ch5): a pid is only
//! believed together with its start time, field 22 of /proc/PID/stat. The
//! command name before it (field 2) is the process's own to choose, spaces
//! and parentheses included; a zombie has exited; a gone pid has no start.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::start_time;

fn me() -> i32 {
    std::process::id() as i32
}

/// The state letter of `pid` (field 3 of /proc/PID/stat), read from the end.
fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

#[test]
fn a_running_process_has_a_start_time_that_does_not_change() {
    let first = start_time(me()).expect("this test process has a start time");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(start_time(me()), Some(first));
}

#[test]
fn a_process_started_later_has_a_later_start_time() {
    let mut child = Command::new("sleep").arg("10").spawn().unwrap();
    let theirs = start_time(child.id() as i32);
    child.kill().unwrap();
    child.wait().unwrap();
    let theirs = theirs.expect("a sleeping child has a start time");
    assert!(theirs >= start_time(me()).unwrap());
}

#[test]
fn a_pid_that_does_not_exist_has_no_start_time() {
    let pid_max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(start_time(pid_max + 1), None);
    assert_eq!(start_time(0), None);
    assert_eq!(start_time(-1), None);
}

#[test]
fn a_zombie_has_no_start_time() {
    let mut child = Command::new("true").stdout(Stdio::null()).spawn().unwrap();
    let pid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(pid) != Some('Z') {
        assert!(Instant::now() < deadline, "the child never became a zombie");
        std::thread::sleep(Duration::from_millis(5));
    }
    let zombie = start_time(pid);
    child.wait().unwrap();
    assert_eq!(
        zombie, None,
        "a zombie (exited, not yet reaped) was believed"
    );
}

#[test]
fn a_command_name_with_parentheses_and_spaces_does_not_shift_the_fields() {
    // A thread's name is its comm (field 2), and any process may set its
    // own: one that looks like the end of the name and a zombie's state.
    let thread = std::thread::spawn(|| {
        let tid = nix::unistd::gettid().as_raw();
        let before = start_time(tid).expect("this thread has a start time");
        nix::sys::prctl::set_name(c"x) Z 1 2 3 4").unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).unwrap();
        assert!(stat.contains("(x) Z 1 2 3 4) "), "{stat}");
        (before, start_time(tid))
    });
    let (before, after) = thread.join().unwrap();
    assert_eq!(after, Some(before));
}

#[test]
fn a_command_name_ending_in_a_parenthesis_does_not_shift_the_fields() {
    let thread = std::thread::spawn(|| {
        let tid = nix::unistd::gettid().as_raw();
        let before = start_time(tid).expect("this thread has a start time");
        nix::sys::prctl::set_name(c") ) )").unwrap();
        (before, start_time(tid))
    });
    let (before, after) = thread.join().unwrap();
    assert_eq!(after, Some(before));
}
