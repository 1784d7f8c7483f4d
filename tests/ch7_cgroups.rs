//! Chapter 7's claims (docs/ch7-cgroups.md#claims--tests): chapter 5's
//! lifecycle and chapter 6's restrictions, re-proved against the ch7
//! binary, and what chapter 7 adds, on this host (cgroup v1 where it is
//! hybrid). The same ch7 claims (tests/support/ch7.rs) run in a cgroup-v2
//! guest from tests/cgroup_guest.rs.

mod lifecycle;
mod support;

use support::ch7;
use support::{Chapter, Who};

const CH7: Chapter = Chapter {
    bin: env!("CARGO_BIN_EXE_ch7-cgroups"),
    name: "ch7-cgroups",
};

lifecycle_claims!(CH7);

// ------------------------------------------------ chapter 6's key claims

const STATUS: &str = "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status";

/// The value of `field` in /proc/self/status as printed by `grep`.
fn status_field(stdout: &str, field: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {stdout}"))
        .trim()
        .to_string()
}

/// Chapter 6's restrictions hold in a chapter 7 container (with limits
/// set, where this caller may set them): Docker's 14 capabilities,
/// no_new_privs, seccomp, masked paths.
fn restricted(who: Who) {
    let sandbox = ch7::sandbox(who);
    let script = format!("{STATUS}; wc -c < /proc/interrupts");
    let limits: &[&str] = match (who, usable_quietly()) {
        (Who::Caller, true) => &["-m", "32m", "--pids-limit", "64"],
        _ => &[],
    };
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(limits);
    args.extend_from_slice(&["busybox", "sh", "-c", &script]);
    let out = ch7::quiet(CH7, &sandbox, &args);
    out.assert_ok();
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(
            status_field(&out.stdout, set),
            "00000000a80425fb",
            "{out:#?}"
        );
    }
    assert_eq!(status_field(&out.stdout, "NoNewPrivs"), "1");
    assert_eq!(status_field(&out.stdout, "Seccomp"), "2");
    assert!(out.stdout.trim_end().ends_with("\n0"), "masked: {out:#?}");
}
root_and_rootless!(restricted: chapter_6s_restrictions_hold_in_a_chapter_7_container,
    rootless_chapter_6s_restrictions_hold_in_a_chapter_7_container);

#[test]
fn chapter_6s_flags_and_the_limits_flatten_into_one_run() {
    let Ok(_) = usable() else { return };
    let sandbox = ch7::sandbox(Who::Caller);
    let out = ch7::quiet(
        CH7,
        &sandbox,
        &[
            "run",
            "-d",
            "--name",
            "both",
            "--cap-drop",
            "CHOWN",
            "-m",
            "32m",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    out.assert_ok();
    // exec reads both back from the state: chapter 6's restriction ...
    let exec = ch7::quiet(CH7, &sandbox, &["exec", "both", "sh", "-c", STATUS]);
    exec.assert_ok();
    assert_eq!(status_field(&exec.stdout, "CapEff"), "00000000a80425fa");
    // ... and chapter 7's limit.
    let row = ch7::stats(CH7, &sandbox, "both");
    assert_eq!(row.memory_limit, "32.0MiB");
    ch7::quiet(CH7, &sandbox, &["rm", "-f", "both"]).assert_ok();
}

// ------------------------------------------------------ chapter 7's claims

/// True if this host and the suite's caller can set limits (no skip
/// recorded: for a test that runs either way).
fn usable_quietly() -> bool {
    ch7::usable_mode().is_ok()
}

/// This host's mode, or the test is skipped (and says why).
fn usable() -> Result<common::cgroup::Mode, ()> {
    ch7::usable_mode().map_err(|why| support::skip(&why))
}

#[test]
fn a_memory_hog_is_oom_killed_and_ps_says_oomkilled_137() {
    let Ok(_) = usable() else { return };
    eprintln!("{}", ch7::a_memory_hog_is_oom_killed_and_ps_says_so(CH7));
}

#[test]
fn a_fork_bomb_stops_at_the_pids_limit_and_the_host_forks_on() {
    let Ok(_) = usable() else { return };
    eprintln!(
        "{}",
        ch7::a_fork_bomb_stops_at_the_pids_limit_and_the_host_forks_on(CH7)
    );
}

#[test]
fn cpus_half_halves_a_busy_loop_shown_by_its_throttled_time() {
    let Ok(_) = usable() else { return };
    eprintln!(
        "{}",
        ch7::cpus_half_halves_a_busy_loop_shown_by_its_throttled_time(CH7)
    );
}

#[test]
fn stats_prints_memory_cpu_and_pids_use() {
    let Ok(_) = usable() else { return };
    eprintln!("{}", ch7::stats_prints_memory_cpu_and_pids_use(CH7));
}

#[test]
fn each_limit_is_narrated_as_the_write_to_its_file() {
    let Ok(mode) = usable() else { return };
    eprintln!(
        "{}",
        ch7::each_limit_is_narrated_as_the_write_to_its_file(CH7, mode)
    );
}

#[test]
fn the_container_sees_its_cgroup_as_root_and_sys_read_only() {
    let Ok(mode) = usable() else { return };
    eprintln!(
        "{}",
        ch7::the_container_sees_its_cgroup_as_root_and_sys_read_only(CH7, mode)
    );
}

#[test]
fn the_cgroup_is_removed_on_exit_by_rm_and_when_stale() {
    let Ok(_) = usable() else { return };
    ch7::the_cgroup_is_removed_on_exit_by_rm_and_when_stale(CH7);
}

#[test]
fn with_sys_admin_a_container_may_raise_its_limit_and_its_cgroups_go_with_it() {
    let Ok(mode) = usable() else { return };
    ch7::with_sys_admin_a_container_may_raise_its_limit_and_its_cgroups_go_with_it(CH7, mode);
}

#[test]
fn rm_f_thaws_a_process_the_container_froze() {
    let Ok(mode) = usable() else { return };
    if mode == common::cgroup::Mode::V2 {
        // v2's cgroup.kill kills frozen processes too.
        support::skip("the v1 freezer's case; v2 kills through cgroup.kill");
        return;
    }
    ch7::rm_f_thaws_a_process_the_container_froze(CH7);
}

#[test]
fn a_sweep_leaves_the_cgroup_whose_monitor_still_runs() {
    let Ok(_) = usable() else { return };
    ch7::a_sweep_leaves_the_cgroup_whose_monitor_still_runs(CH7);
}

#[test]
fn bad_limits_are_refused_with_125_and_nothing_is_created() {
    ch7::bad_limits_are_refused_with_125_and_nothing_is_created(CH7);
}

#[test]
fn a_container_that_cannot_start_leaves_no_cgroup() {
    let Ok(_) = usable() else { return };
    ch7::a_container_that_cannot_start_leaves_no_cgroup(CH7);
}

#[test]
fn rootless_a_limit_is_refused_with_the_fix() {
    let Ok(mode) = usable() else { return };
    eprintln!(
        "{}",
        ch7::rootless_a_limit_is_refused_with_the_fix(CH7, mode)
    );
}

#[test]
fn stats_in_chapters_without_cgroups_names_ch7() {
    let sandbox = ch7::sandbox(Who::Caller);
    let ch6 = env!("CARGO_BIN_EXE_ch6-security");
    sandbox
        .run(
            ch6,
            &[
                "-q", "run", "-d", "--name", "old", "busybox", "sleep", "1000",
            ],
        )
        .assert_ok();
    let out = sandbox.run(ch6, &["-q", "stats", "old"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert_eq!(
        out.error_lines(),
        ["ch6-security: chapter 6 has no cgroups, so nothing counts what a container uses: use ch7-cgroups"]
    );
    sandbox.run(ch6, &["-q", "rm", "-f", "old"]).assert_ok();
}

// ------------------------------------ which chapter's binary handles what

/// ch6's binary knows nothing of a ch7 container's cgroup: its exec would
/// run outside it (past its --pids-limit), its rm leave the cgroup behind.
/// Both refused in one line naming ch7-cgroups; nothing is changed.
#[test]
fn chapter_6_may_not_exec_or_rm_a_chapter_7_container() {
    let Ok(_) = usable() else { return };
    let sandbox = ch7::sandbox(Who::Caller);
    let ch6 = Chapter {
        bin: env!("CARGO_BIN_EXE_ch6-security"),
        name: "ch6-security",
    };
    ch7::quiet(
        CH7,
        &sandbox,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--pids-limit",
            "64",
            "busybox",
            "sleep",
            "1000",
        ],
    )
    .assert_ok();
    let id = ch7::container_id(CH7, &sandbox, "web");
    let refused = |verb: &str| {
        ch6.error_line(&format!(
            "container \"web\" was made by ch7-cgroups, which gave it a cgroup ch6-security knows nothing of: {verb} it with ch7-cgroups"
        ))
    };
    let out = ch7::quiet(ch6, &sandbox, &["exec", "web", "cat", "/proc/self/cgroup"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert_eq!(out.error_lines(), [refused("exec")]);
    for rm in [&["rm", "web"][..], &["rm", "-f", "web"]] {
        let out = ch7::quiet(ch6, &sandbox, rm);
        assert_eq!(out.code, Some(1), "{rm:?}: {out:#?}");
        assert_eq!(out.error_lines(), [refused("rm")], "{rm:?}");
    }
    assert!(ch7::ps_row(CH7, &sandbox, "web").contains("running"));
    assert!(!ch7::cgroup_dirs(&id).is_empty(), "its cgroup went");
    ch7::quiet(CH7, &sandbox, &["rm", "-f", "web"]).assert_ok();
    assert!(
        ch7::cgroup_dirs(&id).is_empty(),
        "left: {:?}",
        ch7::cgroup_dirs(&id)
    );
}

// ------------------------------------------------------- ps's columns

/// `exited (137) OOMKilled`, the widest status, widens its column: the
/// columns after it still line up under their headers.
#[test]
fn ps_columns_fit_an_oomkilled_status() {
    let Ok(_) = usable() else { return };
    let sandbox = ch7::sandbox(Who::Caller);
    ch7::run_a_hog(CH7, &sandbox);
    ch7::quiet(
        CH7,
        &sandbox,
        &["run", "-d", "--name", "up", "busybox", "sleep", "1000"],
    )
    .assert_ok();
    let out = ch7::quiet(CH7, &sandbox, &["ps", "-a"]);
    out.assert_ok();
    let rows = lifecycle::assert_ps_columns_fit(&out.stdout);
    let statuses: Vec<&str> = rows[1..].iter().map(|r| r[3].as_str()).collect();
    assert_eq!(
        statuses,
        ["exited (137) OOMKilled", "running"],
        "{}",
        out.stdout
    );
    ch7::quiet(CH7, &sandbox, &["rm", "-f", "hog", "up"]).assert_ok();
}

// ---------------------------------------------- at the pids limit, a hint

/// EAGAIN from fork or clone at a container's `--pids-limit` says so: under
/// `--init` PID 1's fork of the command, and `exec` into a full container.
#[test]
fn at_the_pids_limit_fork_and_exec_name_it() {
    let Ok(_) = usable() else { return };
    let sandbox = ch7::sandbox(Who::Caller);
    let hint = "no more processes may be made: the container is at its --pids-limit";
    let out = ch7::quiet(
        CH7,
        &sandbox,
        &[
            "run",
            "--rm",
            "--pids-limit",
            "1",
            "--init",
            "busybox",
            "true",
        ],
    );
    assert_eq!(out.code, Some(125), "{out:#?}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "one line: {out:#?}");
    assert!(
        errors[0].starts_with(&CH7.error_line("fork(): ")),
        "{errors:?}"
    );
    assert!(errors[0].contains(hint), "{errors:?}");
    ch7::quiet(
        CH7,
        &sandbox,
        &[
            "run",
            "-d",
            "--name",
            "full",
            "--pids-limit",
            "1",
            "busybox",
            "sleep",
            "1000",
        ],
    )
    .assert_ok();
    let out = ch7::quiet(CH7, &sandbox, &["exec", "full", "true"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "one line: {out:#?}");
    assert!(errors[0].contains("clone("), "{errors:?}");
    assert!(errors[0].contains(hint), "{errors:?}");
    ch7::quiet(CH7, &sandbox, &["rm", "-f", "full"]).assert_ok();
    assert!(support::list_dir(&sandbox.data_root().join("containers")).is_empty());
}

// ---------------------------------------------- limit values at the edges

/// Negative values and CPUs this host lacks are refused by the limit's own
/// parser, before anything is made: 125, one line naming the flag, no
/// container and no cgroup.
#[test]
fn negative_limits_and_offline_cpus_are_refused_naming_the_flag() {
    let sandbox = ch7::sandbox(Who::Caller);
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let cases: [(&[&str], String); 4] = [
        (&["-m", "-1"], "--memory \"-1\": not a size".into()),
        (
            &["--cpus", "-1"],
            "--cpus \"-1\": not a number of CPUs".into(),
        ),
        (
            &["--cpu-shares", "-5"],
            "--cpu-shares \"-5\": not a whole number".into(),
        ),
        (
            &["--cpuset-cpus", "99"],
            format!(
                "--cpuset-cpus \"99\": this machine has no CPU 99 online: give CPUs from {}",
                online.trim()
            ),
        ),
    ];
    for (flags, message) in cases {
        let mut args = vec!["run", "--rm", "--name", "edge"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        let out = sandbox.run(CH7.bin, &args);
        assert_eq!(out.code, Some(125), "{flags:?}: {out:#?}");
        let errors = out.error_lines();
        assert_eq!(errors.len(), 1, "{flags:?}: one line: {out:#?}");
        assert!(
            errors[0].starts_with(&CH7.error_line(&message)),
            "{flags:?}: {errors:?}"
        );
        assert!(
            !out.stderr.contains("/sys/fs/cgroup"),
            "{flags:?}: a cgroup was touched: {out:#?}"
        );
        assert!(support::list_dir(&sandbox.data_root().join("containers")).is_empty());
    }
}

/// `-m 0` and `--pids-limit -1` or `0` are Docker's "no limit": no limit
/// at all, so an ordinary user (who cannot set limits on a v1 host) runs.
#[test]
fn rootless_no_limit_values_ask_for_no_limit() {
    let sandbox = ch7::sandbox(Who::Unprivileged);
    for flags in [
        &["-m", "0"][..],
        &["--pids-limit", "-1"],
        &["--pids-limit", "0"],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        ch7::quiet(CH7, &sandbox, &args).assert_ok();
    }
    assert!(support::list_dir(&sandbox.data_root().join("containers")).is_empty());
}

/// In a mount namespace of the test's own (nothing changes on the host):
/// /sys/fs/cgroup made again on a new tmpfs, every v1 tree mounted again
/// under it but pids, which is mounted elsewhere. First nothing leads to
/// it, then a symlink /sys/fs/cgroup/pids does.
const PIDS_ELSEWHERE: &str = r#"set -eu
trees=$(awk '{ split($0, halves, " - "); split(halves[2], f, " ");
               if (f[1] == "cgroup" && $5 ~ "^/sys/fs/cgroup/[^/]+$") {
                 n = split($5, p, "/"); sub(/^r[ow],/, "", f[3]); print p[n], f[3] } }' /proc/self/mountinfo)
mount -t tmpfs -o mode=755 stepbox-test /sys/fs/cgroup
mkdir /sys/fs/cgroup/unified
mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
echo "$trees" | while read -r name options; do
  case $name in
    pids) mkdir "$SB/elsewhere"; mount -t cgroup -o "$options" cgroup "$SB/elsewhere" ;;
    *) mkdir "/sys/fs/cgroup/$name"; mount -t cgroup -o "$options" cgroup "/sys/fs/cgroup/$name" ;;
  esac
done
if "$CH7" -q run --rm busybox true 2>"$SB/err"; then echo "ran with pids elsewhere"; exit 1; fi
echo "refused: $(cat "$SB/err")"
ln -s "$SB/elsewhere" /sys/fs/cgroup/pids
trap '"$CH7" -q rm -f far >/dev/null 2>&1 || true' EXIT
"$CH7" -q run -d --name far --pids-limit 10 busybox sleep 100 >/dev/null
pid=$(tr -d ' \n' < "$STEPBOX_ROOT/containers/far/state.json" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
cgroup=$(grep ':pids:' "/proc/$pid/cgroup" | cut -d: -f3)
echo "pids: $cgroup"
echo "limit: $(cat "$SB/elsewhere$cgroup/pids.max")"
"$CH7" -q rm -f far >/dev/null
if [ -e "$SB/elsewhere$cgroup" ]; then echo "left: $cgroup"; else echo "removed"; fi
"#;

// From a hostile review: a container must leave the root cgroup of every
// v1 hierarchy it is in, or with SYS_ADMIN it could mount that hierarchy
// and reach its release_agent. A hierarchy mounted outside /sys/fs/cgroup
// left it at the root (run went on); through a symlink in /sys/fs/cgroup
// it is a tree like the others.
#[test]
fn a_v1_hierarchy_mounted_elsewhere_is_refused_or_used_through_its_symlink() {
    let Ok(mode) = usable() else { return };
    if mode == common::cgroup::Mode::V2 {
        support::skip("cgroup v1 hierarchies: this host is v2");
        return;
    }
    let sandbox = ch7::sandbox(Who::Caller);
    let mut command = std::process::Command::new("unshare");
    command
        .args(["-m", "--propagation", "private", "sh", "-c", PIDS_ELSEWHERE])
        .env("CH7", CH7.bin)
        .env("SB", sandbox.path())
        .env("STEPBOX_ROOT", sandbox.data_root())
        .env("HOME", sandbox.path())
        .stdin(std::process::Stdio::null());
    let out = support::run(command);
    out.assert_ok();
    let fix = format!(
        "refused: {}: this process is in the cgroup v1 hierarchy pids (/proc/self/cgroup) that is not \
         mounted under /sys/fs/cgroup, so a container could not be moved out of its root there: \
         mount it there (mount -t cgroup -o pids cgroup /sys/fs/cgroup/pids)\n",
        CH7.name
    );
    assert!(out.stdout.starts_with(&fix), "{out:#?}");
    let id = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("pids: /stepbox/"))
        .unwrap_or_else(|| panic!("the container is not in a pids cgroup of its own: {out:#?}"));
    assert_eq!(id.len(), 12, "{out:#?}");
    assert!(out.stdout.contains("\nlimit: 10\n"), "{out:#?}");
    assert!(out.stdout.ends_with("\nremoved\n"), "{out:#?}");
}
