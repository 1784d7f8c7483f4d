//! The environment (issue 10, section 3; docs/ch2-rootfs.md#the-environment):
//! from chapter 2 on the command starts from an empty environment plus
//! PATH, HOSTNAME and HOME, as Docker's does; `-e` and `--env-file` add to
//! it. Nothing else of the caller's reaches an image's programs. Chapter 1
//! keeps the caller's environment (the control). TERM with a terminal is
//! claimed in tests/terminal.rs.

mod support;

use std::fs;
use std::time::{Duration, Instant};

use support::{Sandbox, Who};

const CH1: &str = env!("CARGO_BIN_EXE_ch1-mount-ns");
const CH2: &str = env!("CARGO_BIN_EXE_ch2-rootfs");
const CH3: &str = env!("CARGO_BIN_EXE_ch3-overlay");
const CH4: &str = env!("CARGO_BIN_EXE_ch4-volumes");
const CH5: &str = env!("CARGO_BIN_EXE_ch5-commit");

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn sandbox(who: Who) -> Sandbox {
    let sandbox = Sandbox::new(who);
    sandbox.with_busybox();
    sandbox
}

/// The command line that runs `argv` in a busybox container with chapter
/// `bin`, with chapter options `options` (ch5: `run --rm`).
fn container_args<'a>(bin: &str, options: &[&'a str], argv: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["-q"];
    if bin == CH5 {
        args.extend(["run", "--rm"]);
        args.extend(options);
        args.push("busybox");
    } else {
        args.extend(options);
        args.push("--");
    }
    args.extend(argv);
    args
}

/// `env`'s lines, sorted.
fn sorted(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    lines
}

// Claim 1: a caller's variable does not reach the container: the command's
// whole environment is PATH, HOSTNAME and HOME, in every chapter from 2 on,
// and in ch5's exec. The control: chapter 1 passes it on.
fn claim_the_callers_variables_stay_outside(who: Who) {
    let sandbox = sandbox(who);
    for bin in [CH2, CH3, CH4, CH5] {
        let mut command = sandbox.command(bin, &container_args(bin, &[], &["env"]));
        command.env("STEPBOX_TEST_SECRET", "leaked");
        let outcome = support::run(command);
        outcome.assert_ok();
        let hostname = if bin == CH5 {
            None
        } else {
            Some("HOSTNAME=stepbox")
        };
        let mut expected = vec!["HOME=/root".to_string(), PATH.to_string()];
        expected.extend(hostname.map(String::from));
        let mut got = sorted(&outcome.stdout);
        if bin == CH5 {
            // ch5's hostname is the container's generated name.
            let at = got.iter().position(|l| l.starts_with("HOSTNAME=")).unwrap();
            got.remove(at);
        }
        expected.sort();
        assert_eq!(got, expected, "{bin}");
    }
    // ch5 exec: the same, with the container's name as HOSTNAME.
    sandbox
        .run(
            CH5,
            &[
                "-q", "run", "-d", "--name", "quiet", "busybox", "sleep", "300",
            ],
        )
        .assert_ok();
    let mut command = sandbox.command(CH5, &["-q", "exec", "quiet", "env"]);
    command.env("STEPBOX_TEST_SECRET", "leaked");
    let exec = support::run(command);
    exec.assert_ok();
    assert_eq!(sorted(&exec.stdout), ["HOME=/root", "HOSTNAME=quiet", PATH]);
    sandbox.run(CH5, &["-q", "rm", "-f", "quiet"]).assert_ok();
    // The control.
    let mut command = sandbox.command(CH1, &["-q", "--", "sh", "-c", "echo $STEPBOX_TEST_SECRET"]);
    command.env("STEPBOX_TEST_SECRET", "leaked");
    let ch1 = support::run(command);
    ch1.assert_ok();
    assert_eq!(ch1.stdout, "leaked\n");
}
root_and_rootless!(claim_the_callers_variables_stay_outside: the_callers_variables_stay_outside, rootless_the_callers_variables_stay_outside);

// Claim 2: `-e NAME=VALUE` sets a variable, `-e NAME` passes on the caller's
// (and nothing when the caller has none), `--env-file` lines come first and
// a later -e wins; they may replace HOME. In every chapter from 2 on.
fn claim_e_and_env_file_set_variables(who: Who) {
    let sandbox = sandbox(who);
    let file = sandbox.path().join("vars.env");
    fs::write(
        &file,
        "# the web app's settings\n\nMODE=from-file\nKEEP=file\n",
    )
    .unwrap();
    support::chown_to_sandbox_user(&sandbox, &file);
    let file = file.to_str().unwrap().to_string();
    let options = [
        "--env-file",
        &file,
        "-e",
        "MODE=from-e",
        "-e",
        "GREETING=hello world",
        "-e",
        "STEPBOX_TEST_PASSED",
        "-e",
        "STEPBOX_TEST_UNSET",
        "-e",
        "HOME=/data",
    ];
    for bin in [CH2, CH3, CH4, CH5] {
        let mut command = sandbox.command(bin, &container_args(bin, &options, &["env"]));
        command
            .env("STEPBOX_TEST_PASSED", "passed on")
            .env_remove("STEPBOX_TEST_UNSET");
        let outcome = support::run(command);
        outcome.assert_ok();
        let got: Vec<String> = sorted(&outcome.stdout)
            .into_iter()
            .filter(|l| !l.starts_with("HOSTNAME=") && !l.starts_with("PATH="))
            .collect();
        assert_eq!(
            got,
            [
                "GREETING=hello world",
                "HOME=/data",
                "KEEP=file",
                "MODE=from-e",
                "STEPBOX_TEST_PASSED=passed on"
            ],
            "{bin}"
        );
    }
}
root_and_rootless!(claim_e_and_env_file_set_variables: e_and_env_file_set_variables, rootless_e_and_env_file_set_variables);

// Claim 3: ch5's exec gets the variables the container was run with, then
// its own -e, which wins.
fn claim_exec_gets_the_containers_variables(who: Who) {
    let sandbox = sandbox(who);
    sandbox
        .run(
            CH5,
            &[
                "-q", "run", "-d", "--name", "app", "-e", "A=run", "-e", "B=run", "busybox",
                "sleep", "300",
            ],
        )
        .assert_ok();
    let exec = sandbox.run(
        CH5,
        &[
            "-q",
            "exec",
            "-e",
            "B=exec",
            "app",
            "sh",
            "-c",
            "echo $A $B",
        ],
    );
    sandbox.run(CH5, &["-q", "rm", "-f", "app"]).assert_ok();
    exec.assert_ok();
    assert_eq!(exec.stdout, "run exec\n");
}
root_and_rootless!(claim_exec_gets_the_containers_variables: exec_gets_the_containers_variables, rootless_exec_gets_the_containers_variables);

// Claim 4: a bad variable or env file is refused with one line naming it
// and the fix, exit 125, before anything is created (not even the data
// root); a FIFO is refused at once instead of blocking.
fn claim_bad_variables_are_refused_before_anything_is_made(who: Who) {
    let sandbox = Sandbox::new(who);
    let fifo = sandbox.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let bad = sandbox.path().join("bad.env");
    fs::write(&bad, "OK=1\nNOT OK=2\n").unwrap();
    support::chown_to_sandbox_user(&sandbox, &bad);
    let (fifo, bad) = (fifo.to_str().unwrap(), bad.to_str().unwrap());
    let cases: [(&[&str], String); 5] = [
        (&["-e", "=x"], "-e: \"=x\" is not a variable: its name is empty; write NAME=VALUE, or NAME to pass on yours".into()),
        (&["-e", "A B=1"], "-e: \"A B=1\" is not a variable: its name holds whitespace; write NAME=VALUE, or NAME to pass on yours".into()),
        (&["--env-file", bad], format!("--env-file \"{bad}\", line 2: \"NOT OK=2\" is not a variable: its name holds whitespace; write NAME=VALUE, or NAME to pass on yours")),
        (&["--env-file", fifo], format!("--env-file \"{fifo}\" is not a regular file: give a file of NAME=VALUE lines")),
        (&["--env-file", "/no/such.env"], "--env-file \"/no/such.env\": No such file or directory: give a file of NAME=VALUE lines".into()),
    ];
    for bin in [CH2, CH3, CH4, CH5] {
        let name = std::path::Path::new(bin)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        for (options, message) in &cases {
            let started = Instant::now();
            let outcome = sandbox.run(bin, &container_args(bin, options, &["true"]));
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{bin} {options:?} hung"
            );
            assert_eq!(outcome.code, Some(125), "{bin} {options:?}: {outcome:#?}");
            assert_eq!(
                outcome.error_lines(),
                [format!("{name}: {message}")],
                "{bin}"
            );
            assert!(
                !sandbox.data_root().exists(),
                "{bin} {options:?} created the data root"
            );
        }
    }
}
root_and_rootless!(claim_bad_variables_are_refused_before_anything_is_made: bad_variables_are_refused_before_anything_is_made, rootless_bad_variables_are_refused_before_anything_is_made);
