//! Chapter 1's claims (docs/ch1-mount-namespace.md#claims--tests), each proved
//! by running the real binary and looking from both sides.

mod support;

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
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

root_and_rootless!(claim_tmp_is_a_fresh_empty_tmpfs: tmp_is_a_fresh_empty_tmpfs, rootless_tmp_is_a_fresh_empty_tmpfs);

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

root_and_rootless!(claim_tmp_writes_stay_inside: tmp_writes_stay_inside_and_host_mounts_are_unchanged, rootless_tmp_writes_stay_inside_and_host_mounts_are_unchanged);

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

root_and_rootless!(claim_exit_codes: exit_codes_are_the_commands, rootless_exit_codes_are_the_commands);

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

/// The uid (and gid) an unprivileged sandbox runs the chapter as.
fn rootless_id() -> (u32, u32) {
    if support::suite_is_root() {
        let id = support::unprivileged_id();
        (id, id)
    } else {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    }
}

// With no command, the child runs /bin/sh, which reads the lines that follow.
#[test]
fn no_command_runs_a_shell() {
    let sandbox = Sandbox::new(Who::Caller);
    let script = sandbox.path().join("typed");
    fs::write(&script, "echo typed into the shell\nexit 3\n").unwrap();
    let mut command = sandbox.command(CH1, &[]);
    command.stdin(fs::File::open(&script).unwrap());
    let out = run(command);
    assert_eq!(out.code, Some(3), "{out:#?}");
    assert_eq!(out.stdout, "typed into the shell\n");
    assert!(
        out.stderr.contains(r#"execvp("/bin/sh", ["/bin/sh"])"#),
        "{}",
        out.stderr
    );
}

// The narration is on stderr only (stdout is the command's alone), every
// line tagged by the side of clone that made it; -q silences it.
#[test]
fn the_narration_is_on_stderr_and_q_silences_it() {
    let sandbox = Sandbox::new(Who::Caller);
    let out = sandbox.run(CH1, &["--", "echo", "hello"]);
    out.assert_ok();
    assert_eq!(out.stdout, "hello\n");
    assert!(
        out.stderr.starts_with("[parent] clone(CLONE_NEWNS) = "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .lines()
            .all(|l| l.starts_with("[parent] ") || l.starts_with("[child ] ")),
        "{}",
        out.stderr
    );
    let quiet = sandbox.run(CH1, &["-q", "--", "echo", "hello"]);
    quiet.assert_ok();
    assert_eq!(quiet.stdout, "hello\n");
    assert_eq!(quiet.stderr, "", "-q left narration");
}

// A mount namespace copies no files: a write outside /tmp reaches the host.
#[test]
fn writes_outside_tmp_reach_the_host() {
    let sandbox = Sandbox::new(Who::Caller);
    // Not under /tmp, which the child's tmpfs hides.
    let dir = tempfile::Builder::new()
        .prefix("stepbox-ch1-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let file = dir.path().join("from-inside.txt");
    let out = sandbox.run(
        CH1,
        &[
            "-q",
            "--",
            "sh",
            "-c",
            &format!("echo 'written inside' > {}", file.display()),
        ],
    );
    out.assert_ok();
    assert_eq!(fs::read_to_string(&file).unwrap(), "written inside\n");
}

// Every mount in the child's table is private, even when the parent's are
// shared: step 1 reached all of them. The parent is a namespace of the
// test's own whose mounts are made shared, as systemd makes a host's, and
// the control checks that they are.
fn claim_every_mount_inside_is_private(who: Who) {
    let sandbox = Sandbox::new(who);
    let binary = sandbox.command(CH1, &[]).get_program().to_owned();
    let binary = std::path::Path::new(&binary).display().to_string();
    let run_chapter = match (support::suite_is_root(), sandbox.rootless()) {
        (true, true) => {
            let (uid, gid) = rootless_id();
            format!("setpriv --reuid={uid} --regid={gid} --clear-groups {binary}")
        }
        _ => binary,
    };
    let script = format!(
        "set -e
         mount --make-rshared /
         grep -c shared: /proc/self/mountinfo
         {run_chapter} -q -- cat /proc/self/mountinfo"
    );
    let mut command = Command::new("unshare");
    if !support::suite_is_root() {
        command.arg("-Ur");
    }
    command
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .current_dir(sandbox.path());
    let out = run(command);
    assert_eq!(out.code, Some(0), "{out:#?}");
    let (shared, inside) = out.stdout.split_once('\n').unwrap();
    assert!(
        shared.parse::<u32>().unwrap() > 0,
        "control: no shared mount outside"
    );
    let mut mounts = 0;
    for line in inside.lines() {
        let (left, _) = line.split_once(" - ").unwrap();
        let optional: Vec<&str> = left.split(' ').skip(6).collect();
        assert!(
            !optional
                .iter()
                .any(|f| f.starts_with("shared:") || f.starts_with("master:")),
            "not private inside: {line}"
        );
        mounts += 1;
    }
    assert!(mounts > 1, "{out:#?}");
}

root_and_rootless!(claim_every_mount_inside_is_private: every_mount_inside_is_private, rootless_every_mount_inside_is_private);

// Rootless, the caller is uid and gid 0 inside, mapped to itself outside
// (`0 UID 1`), and setgroups is denied.
#[test]
fn rootless_you_are_uid_0_inside_mapped_to_yourself() {
    let sandbox = Sandbox::new(Who::Unprivileged);
    let out = sandbox.run(
        CH1,
        &[
            "-q",
            "--",
            "sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups",
        ],
    );
    out.assert_ok();
    let (uid, gid) = rootless_id();
    let lines: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let (uid, gid) = (uid.to_string(), gid.to_string());
    assert_eq!(
        lines,
        [
            vec!["0"],
            vec!["0"],
            vec!["0", uid.as_str(), "1"],
            vec!["0", gid.as_str(), "1"],
            vec!["deny"],
        ],
        "{out:#?}"
    );
}

// Rootless, the parent writes setgroups, uid_map and gid_map, in that order,
// before the child narrates any step of its own.
#[test]
fn rootless_the_parent_writes_the_maps_before_the_child_runs_a_step() {
    let sandbox = Sandbox::new(Who::Unprivileged);
    let out = sandbox.run(CH1, &["--", "true"]);
    out.assert_ok();
    let lines: Vec<&str> = out.stderr.lines().collect();
    let writes: Vec<usize> = ["setgroups", "uid_map", "gid_map"]
        .iter()
        .map(|file| {
            lines
                .iter()
                .position(|l| l.starts_with("[parent] write(") && l.contains(&format!("/{file}\"")))
                .unwrap_or_else(|| panic!("no write to {file}: {}", out.stderr))
        })
        .collect();
    assert!(
        writes.windows(2).all(|w| w[0] < w[1]),
        "maps out of order: {}",
        out.stderr
    );
    let first_child = lines
        .iter()
        .position(|l| l.starts_with("[child ]"))
        .expect("the child narrated nothing");
    assert!(
        writes[2] < first_child,
        "the child ran before its maps: {}",
        out.stderr
    );
}

// Rootless, root inside has no power over the host's files: root's files
// show up as 65534, a file only root may read cannot be read, and a
// directory only root may write cannot be written.
#[test]
fn rootless_root_inside_has_no_power_over_the_hosts_files() {
    let sandbox = Sandbox::new(Who::Unprivileged);
    // Not under /tmp, which the child's tmpfs hides.
    let fixture = tempfile::Builder::new()
        .prefix("stepbox-ch1-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let (file, dir) = if support::suite_is_root() {
        let dir = fixture.path().to_path_buf();
        fs::write(dir.join("secret"), "root only\n").unwrap();
        fs::set_permissions(dir.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        (dir.join("secret"), dir)
    } else {
        // Run as an ordinary user: the host's own root-owned files.
        (
            std::path::PathBuf::from("/etc/shadow"),
            std::path::PathBuf::from("/etc"),
        )
    };
    let script = format!(
        "stat -c %u {f}; cat {f} || echo cannot read; touch {d}/new || echo cannot write",
        f = file.display(),
        d = dir.display()
    );
    let out = sandbox.run(CH1, &["-q", "--", "sh", "-c", &script]);
    assert_eq!(out.stdout, "65534\ncannot read\ncannot write\n", "{out:#?}");
    assert!(out.stderr.contains("Permission denied"), "{out:#?}");
    assert!(!dir.join("new").exists());
}

// A file that exists but cannot be executed gives 126, with a one-line error.
fn claim_not_executable_exits_126(who: Who) {
    let sandbox = Sandbox::new(who);
    let out = sandbox.run(CH1, &["-q", "--", "/etc/passwd"]);
    assert_eq!(out.code, Some(126), "{out:#?}");
    assert_eq!(
        out.error_lines(),
        [concat!(
            "ch1-mount-ns: execvp(\"/etc/passwd\"): Permission denied ",
            "(the file is not executable, or a directory on PATH cannot be searched)"
        )]
    );
}

root_and_rootless!(claim_not_executable_exits_126: a_file_that_cannot_be_executed_exits_126, rootless_a_file_that_cannot_be_executed_exits_126);

// SIGTERM sent to the parent alone is passed on to the command, and the
// parent exits with the command's status, 128 + 15.
#[test]
fn sigterm_to_the_parent_is_passed_to_the_command() {
    let sandbox = Sandbox::new(Who::Caller);
    let mut parent = sandbox.spawn(CH1, &["-q", "--", "sh", "-c", "echo $$; exec sleep 1000"]);
    let child: i32 = parent.read_line().parse().expect("the child's pid");
    // SAFETY: kill(2) on the parent process we started.
    unsafe { libc::kill(parent.pid() as i32, libc::SIGTERM) };
    let status = parent.wait();
    assert_eq!(status.code(), Some(143), "{status:?}");
    assert!(
        wait_until_dead(child, Duration::from_secs(5)),
        "the command outlived the parent"
    );
}

// When the kernel refuses the user namespace (here because the caller is in
// a chroot, which clone(2) refuses CLONE_NEWUSER to, with the same EPERM a
// sysctl gives), stepbox prints one line naming the call, the errno and the
// hint, narrates nothing, and exits 125. Needs root to chroot.
#[test]
fn rootless_a_refused_user_namespace_is_one_line_and_125() {
    if !support::suite_is_root() {
        support::skip("chroot needs the suite to run as root");
        return;
    }
    let sandbox = Sandbox::new(Who::Unprivileged);
    let binary = sandbox.command(CH1, &[]).get_program().to_owned();
    let (uid, gid) = rootless_id();
    let same_root = sandbox.path().join("same-root");
    fs::create_dir(&same_root).unwrap();
    let script = format!(
        "mount --rbind / {root} && exec chroot --userspec={uid}:{gid} {root} {bin} -- true",
        root = same_root.display(),
        bin = std::path::Path::new(&binary).display()
    );
    let mut command = Command::new("unshare");
    command.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    let out = run(command);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert_eq!(
        out.stderr.lines().collect::<Vec<_>>(),
        [concat!(
            "ch1-mount-ns: clone(CLONE_NEWNS|CLONE_NEWUSER): Operation not permitted ",
            "(unprivileged user namespaces are disabled on this machine ",
            "(kernel.unprivileged_userns_clone=0, or Ubuntu's kernel.apparmor_restrict_unprivileged_userns=1): ",
            "run with sudo, or allow them with sysctl)"
        )],
        "{out:#?}"
    );
}

// The number the narration prints after `clone(...) =` is the child's pid:
// the command, exec'd in the child, has it.
#[test]
fn the_narrated_clone_result_is_the_childs_pid() {
    let sandbox = Sandbox::new(Who::Caller);
    let out = sandbox.run(CH1, &["--", "sh", "-c", "echo $$"]);
    out.assert_ok();
    let narrated = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("[parent] clone(CLONE_NEWNS) = "))
        .unwrap_or_else(|| panic!("no clone line: {}", out.stderr));
    assert_eq!(narrated, out.stdout.trim());
}
