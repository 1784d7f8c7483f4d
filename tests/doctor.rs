//! `--doctor` (issue 9, section 4): every chapter checks the machine and says
//! what to fix. It passes on the machine the suite runs on, as root and as an
//! ordinary user, leaves nothing behind, and explains the two failures
//! learners meet most: blocked user namespaces and a shared `/`.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{assert_mount_table_unchanged, list_dir, mount_table, Outcome, Sandbox, Who};

const CHAPTERS: [&str; 5] = [
    env!("CARGO_BIN_EXE_ch1-mount-ns"),
    env!("CARGO_BIN_EXE_ch2-rootfs"),
    env!("CARGO_BIN_EXE_ch3-overlay"),
    env!("CARGO_BIN_EXE_ch4-volumes"),
    env!("CARGO_BIN_EXE_ch5-commit"),
];
const CH2: &str = CHAPTERS[1];

/// The report line of check `what`, e.g. `user namespaces`.
fn line<'a>(out: &'a Outcome, what: &str) -> &'a str {
    out.stdout
        .lines()
        .find(|l| {
            l.split_once("  ")
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(&format!("{what}: ")))
        })
        .unwrap_or_else(|| panic!("no {what:?} line in:\n{}", out.stdout))
}

/// Run `bin --doctor` in `sandbox` with `env` set (and TMPDIR in the sandbox,
/// so that we can see the probes leave nothing there).
fn doctor(sandbox: &Sandbox, bin: &str, env: &[(&str, &Path)]) -> Outcome {
    let tmp = sandbox.path().join("tmpdir");
    if !tmp.exists() {
        fs::create_dir(&tmp).unwrap();
        support::chown_to_sandbox_user(sandbox, &tmp);
    }
    let mut command = sandbox.command(bin, &["--doctor"]);
    command.env("TMPDIR", &tmp);
    for (name, value) in env {
        command.env(name, value);
    }
    support::run(command)
}

fn claim_doctor_passes_on_this_machine(who: Who) {
    let sandbox = Sandbox::new(who);
    let before = mount_table();
    for bin in CHAPTERS {
        let out = doctor(&sandbox, bin, &[]);
        assert_eq!(out.code, Some(0), "{bin}: {out:#?}");
        assert_eq!(out.stderr, "", "{bin}");
        let lines: Vec<&str> = out.stdout.lines().collect();
        let (summary, checks) = lines.split_last().unwrap();
        for check in checks {
            assert!(
                ["ok    ", "warn  "].iter().any(|v| check.starts_with(v)),
                "{bin}: {check}"
            );
        }
        let name = Path::new(bin).file_name().unwrap().to_string_lossy();
        assert!(
            summary.starts_with(&format!("{name} --doctor: ")) && summary.ends_with(" 0 FAIL"),
            "{summary}"
        );
        for what in [
            "kernel",
            "user namespaces",
            "propagation of /",
            "overlayfs",
            "overlayfs in a user namespace",
            "subordinate ids",
            "newuidmap/newgidmap",
            "cgroups",
            "busybox",
        ] {
            line(&out, what);
        }
        assert!(line(&out, "kernel").starts_with("ok"), "{}", out.stdout);
        assert!(
            line(&out, "overlayfs in a user namespace").starts_with("ok"),
            "{}",
            out.stdout
        );
        if !sandbox.rootless() {
            assert!(line(&out, "overlayfs as root").starts_with("ok"));
        }
        // This machine is hybrid; whatever it is, the mode is named.
        let cgroups = line(&out, "cgroups");
        assert!(
            ["hybrid", "unified", "v1 only"]
                .iter()
                .any(|m| cgroups.contains(&format!("cgroups: {m}"))),
            "{cgroups}"
        );
    }
    // The probes mounted nothing here and made no directory in TMPDIR.
    assert_mount_table_unchanged(&before);
    assert_eq!(
        list_dir(&sandbox.path().join("tmpdir")),
        Vec::<String>::new()
    );
}
root_and_rootless!(claim_doctor_passes_on_this_machine:
    every_chapters_doctor_passes_on_this_machine,
    rootless_every_chapters_doctor_passes_on_this_machine);

/// A stand-in for /proc: this machine's files, with `overrides` written over them.
fn fake_proc(sandbox: &Sandbox, overrides: &[(&str, &str)]) -> PathBuf {
    let base = sandbox.path().join("fake-proc");
    for file in [
        "sys/kernel/osrelease",
        "sys/user/max_user_namespaces",
        "filesystems",
        "self/mountinfo",
    ] {
        let to = base.join(file);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::write(&to, fs::read(Path::new("/proc").join(file)).unwrap()).unwrap();
    }
    for (file, text) in overrides {
        let to = base.join(file);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::write(&to, text).unwrap();
    }
    base
}

// Failure 1: unprivileged user namespaces blocked (Ubuntu's AppArmor
// restriction, or the limit set to 0): FAIL, and the fix names the sysctl.
// As root the same machine only warns: root runs need no user namespace.
fn claim_blocked_user_namespaces_are_explained(who: Who) {
    let sandbox = Sandbox::new(who);
    for (file, value, sysctl) in [
        (
            "sys/kernel/apparmor_restrict_unprivileged_userns",
            "1\n",
            "kernel.apparmor_restrict_unprivileged_userns",
        ),
        (
            "sys/user/max_user_namespaces",
            "0\n",
            "user.max_user_namespaces",
        ),
        (
            "sys/kernel/unprivileged_userns_clone",
            "0\n",
            "kernel.unprivileged_userns_clone",
        ),
    ] {
        let proc = fake_proc(&sandbox, &[(file, value)]);
        let out = doctor(&sandbox, CH2, &[("STEPBOX_DOCTOR_PROC", &proc)]);
        let userns = line(&out, "user namespaces");
        let (verdict, code) = if sandbox.rootless() {
            ("FAIL", 1)
        } else {
            ("warn", 0)
        };
        assert!(userns.starts_with(verdict), "{sysctl}: {userns}");
        assert_eq!(out.code, Some(code), "{sysctl}: {out:#?}");
        assert!(userns.contains(&format!("{sysctl} is ")), "{userns}");
        let fix = userns.split_once(" → fix: ").map(|(_, fix)| fix);
        assert!(
            fix.is_some_and(|f| f.contains(&format!("sudo sysctl -w {sysctl}="))),
            "{userns}"
        );
        fs::remove_dir_all(proc).unwrap();
    }
}
root_and_rootless!(claim_blocked_user_namespaces_are_explained:
    blocked_user_namespaces_are_explained,
    rootless_blocked_user_namespaces_fail_naming_the_sysctl);

// Failure 2: a shared `/` (systemd's default). Fine for stepbox, which makes
// `/` private first, and the doctor says what skipping that step does:
// pivot_root fails with EINVAL.
fn assert_explains_pivot_root_einval(out: &Outcome) {
    let propagation = line(out, "propagation of /");
    assert!(
        propagation.starts_with("ok    propagation of /: / is shared (peer group "),
        "{propagation}"
    );
    for needed in ["MS_REC|MS_PRIVATE", "pivot_root", "EINVAL"] {
        assert!(propagation.contains(needed), "{needed}: {propagation}");
    }
}

fn claim_a_shared_root_is_explained(who: Who) {
    let sandbox = Sandbox::new(who);
    let shared = "25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                  26 25 0:22 / /proc rw,nosuid shared:5 - proc proc rw\n";
    let proc = fake_proc(&sandbox, &[("self/mountinfo", shared)]);
    let out = doctor(&sandbox, CH2, &[("STEPBOX_DOCTOR_PROC", &proc)]);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_explains_pivot_root_einval(&out);
}
root_and_rootless!(claim_a_shared_root_is_explained:
    a_faked_shared_root_explains_pivot_root_einval,
    rootless_a_faked_shared_root_explains_pivot_root_einval);

// The same, for real: a mount namespace whose `/` is shared, read from the
// real /proc/self/mountinfo. Needs root for unshare -m.
#[test]
fn a_real_shared_root_explains_pivot_root_einval() {
    if !support::suite_is_root() {
        support::skip("unshare -m needs root");
        return;
    }
    let sandbox = Sandbox::new(Who::Caller);
    let mut command = Command::new("unshare");
    command
        .args(["-m", "--propagation", "shared", CH2, "--doctor"])
        .current_dir(sandbox.path());
    let out = support::run(command);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_explains_pivot_root_einval(&out);
}

#[test]
fn ch5_needs_no_command_for_the_doctor_but_does_otherwise() {
    let sandbox = Sandbox::new(Who::Caller);
    let out = doctor(&sandbox, CHAPTERS[4], &[]);
    assert_eq!(out.code, Some(0), "{out:#?}");
    let out = sandbox.run(CHAPTERS[4], &[]);
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(out.stderr.contains("a command is required"), "{out:#?}");
}
