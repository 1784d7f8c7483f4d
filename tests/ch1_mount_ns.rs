//! Chapter 1's claims (docs/ch1-mount-namespace.md#claims--tests), each proved
//! by running the real binary and looking from both sides.

mod support;

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use support::{
    assert_mount_table_unchanged, mount_table, mounts_in, run, wait_until_dead, Sandbox, Who,
};

const CH1: &str = env!("CARGO_BIN_EXE_ch1-mount-ns");

/// A name no other test (or earlier run) uses.
fn unique(what: &str) -> String {
    format!(
        "stepbox-ch1-{what}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    )
    .replace(['(', ')'], "")
}

// Claim 1: inside, /tmp is a tmpfs, and empty even when the host's is not.
fn claim_tmp_is_a_fresh_empty_tmpfs(who: Who) {
    let sandbox = Sandbox::new(who);
    let host_file = std::env::temp_dir().join(unique("host-file"));
    fs::write(&host_file, "on the host").unwrap();
    let out = sandbox.run(
        CH1,
        &[
            "--",
            "sh",
            "-c",
            "cat /proc/self/mountinfo; echo ---; ls -A /tmp",
        ],
    );
    fs::remove_file(&host_file).unwrap();
    out.assert_ok();
    let (mountinfo, listing) = out.stdout.split_once("---\n").unwrap();
    let tmp = mounts_in(mountinfo)
        .into_iter()
        .rfind(|(point, _)| point == "/tmp");
    assert_eq!(tmp.map(|(_, fstype)| fstype).as_deref(), Some("tmpfs"));
    assert_eq!(listing, "", "the container's /tmp is not empty");
    if sandbox.rootless() {
        assert!(out.stderr.contains("CLONE_NEWUSER"), "{}", out.stderr);
    }
}

#[test]
fn tmp_is_a_fresh_empty_tmpfs() {
    claim_tmp_is_a_fresh_empty_tmpfs(Who::Caller);
}

#[test]
fn rootless_tmp_is_a_fresh_empty_tmpfs() {
    claim_tmp_is_a_fresh_empty_tmpfs(Who::Unprivileged);
}

// Claim 2: a file written to /tmp inside never reaches the host, and the
// host's mount table is byte-for-byte the same before and after.
fn claim_tmp_writes_stay_inside(who: Who) {
    let sandbox = Sandbox::new(who);
    let name = unique("written-inside");
    let before = mount_table();
    let out = sandbox.run(
        CH1,
        &[
            "--",
            "sh",
            "-c",
            &format!("echo secret > /tmp/{name} && cat /tmp/{name}"),
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "secret\n");
    assert!(
        !std::env::temp_dir().join(&name).exists(),
        "the file leaked to the host's /tmp"
    );
    assert_mount_table_unchanged(&before);
}

#[test]
fn tmp_writes_stay_inside_and_host_mounts_are_unchanged() {
    claim_tmp_writes_stay_inside(Who::Caller);
}

#[test]
fn rootless_tmp_writes_stay_inside_and_host_mounts_are_unchanged() {
    claim_tmp_writes_stay_inside(Who::Unprivileged);
}

// Claim 3: even when the parent's mounts are shared (as systemd makes the
// host's `/`), the child's tmpfs does not propagate back. The test makes its
// own namespace with a shared `/`, and first shows, as a control, that a
// child namespace which does *not* make `/` private does leak its mount.
#[test]
fn tmpfs_does_not_propagate_to_a_shared_parent_mount() {
    let sandbox = Sandbox::new(Who::Caller);
    let count_tmp = "grep -c '^[^ ]* [^ ]* [^ ]* [^ ]* /tmp ' /proc/self/mountinfo";
    let script = format!(
        "set -e
         mount --make-rprivate / && mount --make-rshared /
         before=$({count_tmp} || true)
         {CH1} -q -- true
         after_chapter=$({count_tmp} || true)
         unshare -m --propagation unchanged mount -t tmpfs control /tmp
         after_control=$({count_tmp} || true)
         echo $before $after_chapter $after_control"
    );
    // A namespace of the test's own (as a user namespace when not root), so
    // that nothing can reach the host's real mount table.
    let mut command = Command::new("unshare");
    if !support::suite_is_root() {
        command.arg("-Ur");
    }
    command
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .current_dir(sandbox.path());
    let out = run(command);
    assert_eq!(out.code, Some(0), "{out:#?}");
    let counts: Vec<u32> = out
        .stdout
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let [before, after_chapter, after_control] = counts[..] else {
        panic!("unexpected output {out:#?}")
    };
    assert_eq!(
        after_chapter, before,
        "the chapter's tmpfs propagated to its parent"
    );
    assert_eq!(
        after_control,
        after_chapter + 1,
        "control: a shared mount did not propagate"
    );
}

// Claim 4: the exit code is the command's, 128+N for signal N, and 127 with
// a one-line error for a command that does not exist.
fn claim_exit_codes(who: Who) {
    let sandbox = Sandbox::new(who);
    let out = sandbox.run(CH1, &["-q", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.code, Some(7), "{out:#?}");

    let out = sandbox.run(CH1, &["-q", "--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.code, Some(137), "{out:#?}");

    let out = sandbox.run(CH1, &["-q", "--", "/nonexistent/nosuchcmd"]);
    assert_eq!(out.code, Some(127), "{out:#?}");
    assert_eq!(
        out.error_lines(),
        [concat!(
            "ch1-mount-ns: execvp(\"/nonexistent/nosuchcmd\"): No such file or directory ",
            "(no such command: check its spelling, or give its full path)"
        )]
    );
}

#[test]
fn exit_codes_are_the_commands() {
    claim_exit_codes(Who::Caller);
}

#[test]
fn rootless_exit_codes_are_the_commands() {
    claim_exit_codes(Who::Unprivileged);
}

// Claim 5: only fds 0, 1 and 2 reach the command, even when the caller
// leaks more. The control shows the leaked fd does reach a plain child.
#[test]
fn only_stdin_stdout_stderr_reach_the_command() {
    let sandbox = Sandbox::new(Who::Caller);
    let leaked = fs::File::open("/proc/self/mountinfo").unwrap();
    let leaked_fd = leaked.as_raw_fd();
    let with_leak = |mut command: Command| {
        // SAFETY: dup2 is async-signal-safe; it gives the child fd 7, inheritable.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(leaked_fd, 7) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        run(command)
    };
    // The shell lists its own fds with a glob: no pipe or child of its own.
    // The glob itself holds the directory open, as the lowest free fd: 3.
    let list_fds = "cd /proc/$$/fd && echo *";
    let mut control = Command::new("sh");
    control.args(["-c", list_fds]);
    let control = with_leak(control).stdout;
    assert!(
        control.split_whitespace().any(|fd| fd == "7"),
        "control: fd 7 not inherited: {control}"
    );

    let out = with_leak(sandbox.command(CH1, &["-q", "--", "sh", "-c", list_fds]));
    assert_eq!(out.stdout, "0 1 2 3\n", "{out:#?}");
}

// Claim 6: if the parent is killed, the child dies with it; nothing stays
// mounted or running.
#[test]
fn killing_the_parent_kills_the_child() {
    let sandbox = Sandbox::new(Who::Caller);
    let before = mount_table();
    let mut parent = sandbox.spawn(CH1, &["-q", "--", "sh", "-c", "echo $$; exec sleep 1000"]);
    let child: i32 = parent.read_line().parse().expect("the child's pid");
    assert!(
        support::process_state(child).is_some(),
        "the child is not running"
    );

    // SAFETY: kill(2) on the parent process we started.
    unsafe { libc::kill(parent.pid() as i32, libc::SIGKILL) };
    parent.wait();
    assert!(
        wait_until_dead(child, Duration::from_secs(5)),
        "the child outlived its parent"
    );
    assert_mount_table_unchanged(&before);
}

// Claim 7: when stdin is not a terminal, the command leads a session of its
// own: it has no controlling terminal to push keystrokes into (TIOCSTI).
#[test]
fn a_non_interactive_command_gets_its_own_session() {
    let sandbox = Sandbox::new(Who::Caller);
    // Field 6 of /proc/PID/stat is the session id.
    let out = sandbox.run(
        CH1,
        &[
            "-q",
            "--",
            "sh",
            "-c",
            "echo $$ $(cut -d' ' -f6 /proc/$$/stat)",
        ],
    );
    out.assert_ok();
    let ids: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(ids[0], ids[1], "the command does not lead its own session");
}

/// Whether SIGPIPE is in a /proc/PID/status text's SigIgn mask.
fn ignores_sigpipe(status: &str) -> bool {
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .unwrap()
        .trim();
    let mask = u64::from_str_radix(mask, 16).unwrap();
    mask & (1 << (libc::SIGPIPE - 1)) != 0
}

// The command gets SIGPIPE's default action, although stepbox itself (a
// Rust program, like this test) ignores it and ignored signals survive exec.
#[test]
fn the_command_does_not_inherit_an_ignored_sigpipe() {
    let here = fs::read_to_string("/proc/self/status").unwrap();
    assert!(
        ignores_sigpipe(&here),
        "control: this test process should ignore SIGPIPE"
    );
    let sandbox = Sandbox::new(Who::Caller);
    let out = sandbox.run(CH1, &["-q", "--", "cat", "/proc/self/status"]);
    out.assert_ok();
    assert!(!ignores_sigpipe(&out.stdout), "the command ignores SIGPIPE");
}
