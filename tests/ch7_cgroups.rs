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
