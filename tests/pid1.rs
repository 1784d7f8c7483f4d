//! PID 1 (issue 10, section 2; docs/ch2-rootfs.md#pid-1): from chapter 2 on
//! the command is the first process of its pid namespace, which the kernel
//! shields from every signal it has no handler for. With `--init`, stepbox
//! stays PID 1: it passes signals on, reaps orphans and exits with the
//! command's status, as `docker run --init` does. The Ctrl-C claim, which
//! needs a real terminal, is in tests/terminal.rs.

mod support;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::thread;
use std::time::{Duration, Instant};

use support::{Sandbox, Who};

const CH2: &str = env!("CARGO_BIN_EXE_ch2-rootfs");
const CH5: &str = env!("CARGO_BIN_EXE_ch5-commit");

fn sandbox(who: Who) -> Sandbox {
    let sandbox = Sandbox::new(who);
    sandbox.with_busybox();
    sandbox
}

/// Every process below `pid` on the host, `pid` itself left out, with its state letter.
fn descendants(pid: i32) -> Vec<(i32, char)> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(parent) = queue.pop() {
        let children = fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        for child in children.split_whitespace().map(|p| p.parse().unwrap()) {
            if let Some(state) = support::process_state(child) {
                found.push((child, state));
            }
            queue.push(child);
        }
    }
    found
}

/// How the run ended, as a shell shows it: the code, or 128 + the signal.
fn ended(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or(status.signal().map(|sig| 128 + sig))
        .unwrap()
}

// Claim 1: a command that is PID 1 cannot be signalled from inside its
// namespace unless it installed a handler: `kill -TERM 1` does nothing to
// `sh -c` (which handles SIGINT, but not SIGTERM). Under --init, the shell
// is PID 2 and dies of it.
fn claim_pid_1_ignores_signals_it_has_no_handler_for(who: Who) {
    let sandbox = sandbox(who);
    let script = "kill -TERM 1; echo still here";
    let alone = sandbox.run(CH2, &["-q", "--", "sh", "-c", script]);
    alone.assert_ok();
    assert_eq!(alone.stdout, "still here\n");
    let under_init = sandbox.run(
        CH2,
        &[
            "-q",
            "--init",
            "--",
            "sh",
            "-c",
            "kill -TERM $$; echo not reached",
        ],
    );
    assert_eq!(
        under_init.code,
        Some(128 + libc::SIGTERM),
        "{under_init:#?}"
    );
    assert_eq!(under_init.stdout, "");
}
root_and_rootless!(claim_pid_1_ignores_signals_it_has_no_handler_for: pid_1_ignores_signals_it_has_no_handler_for, rootless_pid_1_ignores_signals_it_has_no_handler_for);

// Claim 2: SIGTERM to the stepbox parent is passed on to PID 1. A `sleep` as
// PID 1 ignores it and keeps running; under --init, stepbox (PID 1) passes
// it on to `sleep`, which ends at once with 143.
fn claim_sigterm_stops_the_command_only_under_init(who: Who) {
    let sandbox = sandbox(who);
    for init in [false, true] {
        let mut args = vec!["-q"];
        if init {
            args.push("--init");
        }
        args.extend(["--", "sh", "-c", "echo READY; exec sleep 300"]);
        let mut running = sandbox.spawn(CH2, &args);
        assert_eq!(running.read_line(), "READY");
        // The exec to sleep follows the echo: let it happen first.
        thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        // SAFETY: kill(2) on the chapter's parent process, which we started.
        unsafe { libc::kill(running.pid() as i32, libc::SIGTERM) };
        if init {
            let status = running.wait();
            assert_eq!(ended(status), 128 + libc::SIGTERM);
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );
        } else {
            thread::sleep(Duration::from_secs(1));
            let sleeping = running.children();
            assert_eq!(sleeping.len(), 1, "PID 1 did not survive SIGTERM");
            assert!(support::process_state(sleeping[0]).is_some_and(|s| s != 'Z'));
            // `running` is dropped: its process group is killed.
        }
    }
}
root_and_rootless!(claim_sigterm_stops_the_command_only_under_init: sigterm_stops_the_command_only_under_init, rootless_sigterm_stops_the_command_only_under_init);

// Claim 3: an orphan re-parented to PID 1 is reaped under --init. The
// control: `sleep` as PID 1 never waits, so the same orphan stays a zombie.
fn claim_init_reaps_orphans(who: Who) {
    let sandbox = sandbox(who);
    // The subshell starts `sleep 0.1` in the background and exits at once:
    // the sleep is orphaned to PID 1, then ends.
    let script = "(sleep 0.1 &); echo READY; exec sleep 300";
    for init in [false, true] {
        let mut args = vec!["-q"];
        if init {
            args.push("--init");
        }
        args.extend(["--", "sh", "-c", script]);
        let mut running = sandbox.spawn(CH2, &args);
        assert_eq!(running.read_line(), "READY");
        // Below the chapter's parent, once the orphan has ended: under
        // --init, PID 1 (stepbox) and `sleep 300`, both alive (the orphan
        // reaped); without, `sleep 300` as PID 1 and the orphan, a zombie.
        // A moment's zombie before PID 1 reaps it is allowed: wait for the
        // settled picture, for 20 s at most on a busy machine.
        let expected = if init { (2, 0) } else { (1, 1) };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen;
        loop {
            let below = descendants(running.pid() as i32);
            let zombies = below.iter().filter(|(_, state)| *state == 'Z').count();
            seen = (below.len() - zombies, zombies);
            if seen == expected || Instant::now() > deadline {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        // And it stays so (a zombie stays; a reaped orphan does not come back).
        thread::sleep(Duration::from_millis(300));
        let below = descendants(running.pid() as i32);
        let zombies = below.iter().filter(|(_, state)| *state == 'Z').count();
        assert_eq!(
            seen, expected,
            "init: {init}: (alive, zombies) below the chapter"
        );
        assert_eq!(
            (below.len() - zombies, zombies),
            expected,
            "init: {init}: it did not last"
        );
    }
}
root_and_rootless!(claim_init_reaps_orphans: init_reaps_orphans, rootless_init_reaps_orphans);

// Claim 4: under --init the command's status is the run's: its exit code,
// 128 + N when signal N killed it, 127 with the reason when it is not found;
// and PID 1 is stepbox itself, the command PID 2.
fn claim_init_passes_the_status_through(who: Who) {
    let sandbox = sandbox(who);
    for (script, code) in [
        ("exit 3", 3),
        ("kill -KILL $$", 128 + libc::SIGKILL),
        ("true", 0),
    ] {
        let outcome = sandbox.run(CH2, &["-q", "--init", "--", "sh", "-c", script]);
        assert_eq!(outcome.code, Some(code), "{script}: {outcome:#?}");
    }
    let missing = sandbox.run(CH2, &["-q", "--init", "--", "no-such-command"]);
    assert_eq!(missing.code, Some(127), "{missing:#?}");
    assert_eq!(
        missing.error_lines(),
        ["ch2-rootfs: execvp(\"no-such-command\"): No such file or directory (no such command: check its spelling, or give its full path)"]
    );
    let who_is_who = sandbox.run(
        CH2,
        &[
            "-q",
            "--init",
            "--",
            "sh",
            "-c",
            "cat /proc/1/comm; echo $$",
        ],
    );
    who_is_who.assert_ok();
    assert_eq!(who_is_who.stdout, "ch2-rootfs\n2\n");
}
root_and_rootless!(claim_init_passes_the_status_through: init_passes_the_status_through, rootless_init_passes_the_status_through);

// Claim 5: ch5's `stop` sends SIGTERM to the container's PID 1. Under
// --init it ends the command at once (143); without, PID 1 ignores it and
// stop has to wait out its timeout and SIGKILL (137).
fn claim_stop_is_prompt_under_init(who: Who) {
    let sandbox = sandbox(who);
    for (init, name) in [(true, "with-init"), (false, "without")] {
        let mut args = vec!["-q", "run", "-d", "--name", name];
        if init {
            args.push("--init");
        }
        args.extend(["busybox", "sleep", "300"]);
        sandbox.run(CH5, &args).assert_ok();
        let started = Instant::now();
        sandbox
            .run(CH5, &["-q", "stop", "-t", "3", name])
            .assert_ok();
        let took = started.elapsed();
        let ps = sandbox.run(CH5, &["-q", "ps", "-a"]);
        let line = ps
            .stdout
            .lines()
            .find(|line| line.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed: {ps:#?}"))
            .to_string();
        if init {
            assert!(took < Duration::from_secs(2), "stop took {took:?}");
            assert!(line.contains("exited (143)"), "{line}");
        } else {
            assert!(took >= Duration::from_secs(3), "stop took {took:?}");
            assert!(line.contains("exited (137)"), "{line}");
        }
        sandbox.run(CH5, &["-q", "rm", name]).assert_ok();
    }
}
root_and_rootless!(claim_stop_is_prompt_under_init: stop_is_prompt_under_init, rootless_stop_is_prompt_under_init);
