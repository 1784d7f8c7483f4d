//! Chapter 6's claims (docs/ch6-security.md#claims--tests): chapter 5's
//! lifecycle, re-proved against the ch6 binary, and what chapter 6 adds:
//! what a container's root still holds, and what it no longer may do. The
//! escapes themselves, against ch5 and ch6, are in tests/escape_lab.rs.

mod lifecycle;
mod support;

use support::Chapter;

const CH6: Chapter = Chapter {
    bin: env!("CARGO_BIN_EXE_ch6-security"),
    name: "ch6-security",
};

lifecycle_claims!(CH6);

use support::{assert_mount_table_unchanged, list_dir, mount_table, Outcome, Sandbox, Who};

/// A sandbox with busybox whose runs are `who`'s.
fn sandbox(who: Who) -> Sandbox {
    let sandbox = Sandbox::new(who);
    sandbox.with_busybox();
    sandbox
}

/// `ch6-security -q run --rm FLAGS busybox sh -c SCRIPT`.
fn run_sh(sandbox: &Sandbox, flags: &[&str], script: &str) -> Outcome {
    let mut args = vec!["-q", "run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    sandbox.run(CH6.bin, &args)
}

/// The value of `field` in /proc/self/status as printed by `grep`.
fn status_field(stdout: &str, field: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {stdout}"))
        .trim()
        .to_string()
}

/// Docker's 14: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
/// NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
const DOCKER_CAPS: &str = "00000000a80425fb";

const STATUS: &str = "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status";

fn dockers_fourteen(who: Who) {
    let sandbox = sandbox(who);
    let before = mount_table();
    let out = run_sh(&sandbox, &[], STATUS);
    out.assert_ok();
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(
            status_field(&out.stdout, set),
            DOCKER_CAPS,
            "{set}: {out:#?}"
        );
    }
    assert_eq!(status_field(&out.stdout, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(&out.stdout, "NoNewPrivs"), "1");
    assert_eq!(status_field(&out.stdout, "Seccomp"), "2", "filter mode");
    assert_mount_table_unchanged(&before);
}
root_and_rootless!(dockers_fourteen: the_container_keeps_dockers_fourteen_capabilities_and_no_new_privs,
    rootless_the_container_keeps_dockers_fourteen_capabilities_and_no_new_privs);

fn exec_restricted(who: Who) {
    let sandbox = sandbox(who);
    sandbox
        .run(
            CH6.bin,
            &[
                "-q",
                "run",
                "-d",
                "--name",
                "x",
                "--cap-drop",
                "CHOWN",
                "busybox",
                "sleep",
                "60",
            ],
        )
        .assert_ok();
    let out = sandbox.run(CH6.bin, &["-q", "exec", "x", "sh", "-c", STATUS]);
    out.assert_ok();
    // Docker's 14 less CHOWN (bit 0), as the container was started.
    assert_eq!(
        status_field(&out.stdout, "CapEff"),
        "00000000a80425fa",
        "{out:#?}"
    );
    assert_eq!(status_field(&out.stdout, "CapBnd"), "00000000a80425fa");
    assert_eq!(status_field(&out.stdout, "NoNewPrivs"), "1");
    assert_eq!(status_field(&out.stdout, "Seccomp"), "2");
    sandbox.run(CH6.bin, &["-q", "rm", "-f", "x"]).assert_ok();
}
root_and_rootless!(exec_restricted: exec_gets_the_same_restrictions_as_the_containers_command,
    rootless_exec_gets_the_same_restrictions_as_the_containers_command);

#[test]
fn cap_add_and_cap_drop_change_the_set_as_dockers_do() {
    let sandbox = sandbox(Who::Caller);
    let eff = |flags: &[&str]| {
        let out = run_sh(&sandbox, flags, STATUS);
        out.assert_ok();
        status_field(&out.stdout, "CapEff")
    };
    assert_eq!(eff(&["--cap-drop", "ALL"]), "0000000000000000");
    // CAP_SYS_TIME is bit 25.
    assert_eq!(
        eff(&["--cap-drop", "ALL", "--cap-add", "sys_time"]),
        "0000000002000000"
    );
    assert_eq!(eff(&["--cap-add", "CAP_SYS_TIME"]), "00000000aa0425fb");
    // Dropping CHOWN is felt: chown fails.
    let out = run_sh(&sandbox, &["--cap-drop", "CHOWN"], "touch /f && chown 1 /f");
    assert_ne!(out.code, Some(0), "{out:#?}");
    assert!(out.stderr.contains("Operation not permitted"), "{out:#?}");
}

// --cap-add ALL is every capability the caller holds (its bounding set),
// as containerd's: the container's CapEff is the caller's CapBnd. A
// capability the caller lacks is refused naming it, before anything runs
// (it was a 900-character capset error).
#[test]
fn cap_add_all_is_what_the_caller_holds_and_more_is_refused_clearly() {
    let sandbox = sandbox(Who::Caller);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = u64::from_str_radix(&status_field(&status, "CapBnd"), 16).unwrap();
    let out = run_sh(&sandbox, &["--cap-add", "ALL"], STATUS);
    out.assert_ok();
    let eff = u64::from_str_radix(&status_field(&out.stdout, "CapEff"), 16).unwrap();
    // (Capabilities newer than stepbox's table are never given.)
    let known = (1u64 << common::security::caps::NAMES.len()) - 1;
    assert_eq!(eff, bounding & known, "{out:#?}");
    let lacking = (0..common::security::caps::NAMES.len()).find(|cap| bounding & (1 << cap) == 0);
    let Some(cap) = lacking else {
        support::skip("the caller holds every capability: none to be refused");
        return;
    };
    let name = common::security::caps::NAMES[cap];
    let out = run_sh(&sandbox, &["--cap-add", name], "true");
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert_eq!(
        out.error_lines(),
        [format!(
            "ch6-security: --cap-add \"{name}\": you do not hold it yourself (it is not in your \
             bounding set), so no container of yours can: leave it out"
        )]
    );
}

#[test]
fn a_user_switch_works_with_every_capability_dropped() {
    let sandbox = sandbox(Who::Caller);
    let out = run_sh(
        &sandbox,
        &["--cap-drop", "ALL", "-u", "1000:1000"],
        &format!("id -u; {STATUS}"),
    );
    out.assert_ok();
    assert!(out.stdout.starts_with("1000\n"), "{out:#?}");
    assert_eq!(status_field(&out.stdout, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&out.stdout, "CapPrm"), "0000000000000000");
}

fn masked(who: Who) {
    let sandbox = sandbox(who);
    let script = "wc -c < /proc/interrupts; ls /proc/acpi | wc -l; \
                  grep -cE ' /proc/(sys|bus|fs|irq) ro,' /proc/self/mountinfo; \
                  awk '($5 == \"/\" || $5 == \"/dev\") && $6 ~ /nodev/' /proc/self/mountinfo | wc -l";
    let out = run_sh(&sandbox, &[], script);
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0].trim(),
        "0",
        "/proc/interrupts is /dev/null: {out:#?}"
    );
    assert_eq!(
        lines[1].trim(),
        "0",
        "/proc/acpi is an empty tmpfs: {out:#?}"
    );
    assert_eq!(
        lines[2].trim(),
        "4",
        "/proc/sys, bus, fs and irq are read-only: {out:#?}"
    );
    assert_eq!(lines[3].trim(), "2", "/ and /dev are nodev: {out:#?}");
}
root_and_rootless!(masked: dockers_masked_paths_are_empty_and_its_read_only_paths_read_only,
    rootless_dockers_masked_paths_are_empty_and_its_read_only_paths_read_only);

#[test]
fn privileged_turns_every_restriction_off() {
    let sandbox = sandbox(Who::Caller);
    let out = run_sh(
        &sandbox,
        &["--privileged"],
        &format!("{STATUS}; grep -c ' /proc/kcore ' /proc/self/mountinfo"),
    );
    assert_eq!(status_field(&out.stdout, "NoNewPrivs"), "0", "{out:#?}");
    assert_eq!(status_field(&out.stdout, "Seccomp"), "0");
    assert_ne!(status_field(&out.stdout, "CapEff"), DOCKER_CAPS);
    assert!(
        out.stdout.trim_end().ends_with("\n0"),
        "no mask on /proc/interrupts: {out:#?}"
    );
}

#[test]
fn seccomp_unconfined_and_a_profile_file_in_dockers_format_are_applied() {
    let sandbox = sandbox(Who::Caller);
    let out = run_sh(&sandbox, &["--security-opt", "seccomp=unconfined"], STATUS);
    out.assert_ok();
    assert_eq!(status_field(&out.stdout, "Seccomp"), "0");
    assert_eq!(
        status_field(&out.stdout, "CapEff"),
        DOCKER_CAPS,
        "caps stay: {out:#?}"
    );
    let profile = sandbox.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = run_sh(&sandbox, &["--security-opt", &opt], "mkdir /tmp/d");
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(
        out.stderr.contains("Permission denied"),
        "EACCES from the profile: {out:#?}"
    );
}

#[test]
fn bad_security_flags_are_refused_with_125_and_nothing_is_created() {
    let sandbox = sandbox(Who::Caller);
    let not_json = sandbox.path().join("not.json");
    std::fs::write(&not_json, "{}").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--cap-add", "SYS_WIZARD"],
            "--cap-add \"SYS_WIZARD\": no such capability",
        ),
        (
            &["--security-opt", "seccomp=/no/such.json"],
            "--security-opt seccomp=/no/such.json: cannot read the profile",
        ),
        (
            &["--security-opt", &format!("seccomp={}", not_json.display())],
            "not a seccomp profile in Docker's JSON format",
        ),
        (
            &["--security-opt", "apparmor=docker-default"],
            "not supported: use seccomp=unconfined or seccomp=FILE",
        ),
        (
            &["--privileged", "--cap-drop", "ALL"],
            "--privileged turns every restriction off",
        ),
    ];
    for (flags, message) in cases {
        let out = run_sh(&sandbox, flags, "true");
        assert_eq!(out.code, Some(125), "{flags:?}: {out:#?}");
        let errors = out.error_lines();
        assert_eq!(errors.len(), 1, "one line: {out:#?}");
        assert!(errors[0].starts_with(&CH6.error_line("")), "{out:#?}");
        assert!(errors[0].contains(message), "{flags:?}: {errors:?}");
    }
    assert!(list_dir(&sandbox.data_root().join("containers")).is_empty());
}

// A container is exec'd and removed by the binary of the chapter that made
// it, or a later one's: ch5's would exec without ch6's restrictions (and
// rm without knowing them). Refused in one line naming the binary to use;
// ch7's binary, which has everything ch6's has, still may.
#[test]
fn an_earlier_chapter_may_not_exec_or_rm_a_later_chapters_container() {
    let sandbox = sandbox(Who::Caller);
    let ch5 = Chapter {
        bin: env!("CARGO_BIN_EXE_ch5-commit"),
        name: "ch5-commit",
    };
    let ch7 = env!("CARGO_BIN_EXE_ch7-cgroups");
    sandbox
        .run(
            CH6.bin,
            &[
                "-q", "run", "-d", "--name", "web", "busybox", "sleep", "1000",
            ],
        )
        .assert_ok();
    let refused = |verb: &str| {
        ch5.error_line(&format!(
            "container \"web\" was made by ch6-security, which gave it its restrictions \
             (capabilities, seccomp, masked paths) ch5-commit knows nothing of: {verb} it with ch6-security"
        ))
    };
    let out = sandbox.run(ch5.bin, &["-q", "exec", "web", "true"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert_eq!(out.error_lines(), [refused("exec")]);
    for rm in [&["-q", "rm", "web"][..], &["-q", "rm", "-f", "web"]] {
        let out = sandbox.run(ch5.bin, rm);
        assert_eq!(out.code, Some(1), "{rm:?}: {out:#?}");
        assert_eq!(out.error_lines(), [refused("rm")], "{rm:?}");
    }
    assert!(
        sandbox.data_root().join("containers/web").is_dir(),
        "refused, yet removed"
    );
    // A later chapter's binary may: ch7's exec has ch6's restrictions.
    let out = sandbox.run(ch7, &["-q", "exec", "web", "sh", "-c", STATUS]);
    out.assert_ok();
    assert_eq!(status_field(&out.stdout, "CapEff"), DOCKER_CAPS);
    sandbox.run(CH6.bin, &["-q", "rm", "-f", "web"]).assert_ok();
    assert!(list_dir(&sandbox.data_root().join("containers")).is_empty());
}
