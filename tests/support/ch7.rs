//! Chapter 7's claims (docs/ch7-cgroups.md#claims--tests), as functions of
//! the chapter binary: tests/ch7_cgroups.rs runs them on this host (cgroup
//! v1 where it is hybrid), and tests/cgroup_guest.rs runs the same ones in
//! its cgroup-v2 guest. Each reads the cgroup files on the host side too,
//! and checks that the container's cgroup is gone when it should be.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::cgroup::{Mode, CGROUP_ROOT};

use super::{list_dir, Chapter, Outcome, Sandbox, Who};

/// This host's cgroup mode, or why the claims cannot run here (the test
/// then calls `support::skip` with it).
pub fn usable_mode() -> Result<Mode, String> {
    let mode = Mode::detect(Path::new(CGROUP_ROOT)).map_err(|e| e.to_string())?;
    if !super::suite_is_root() {
        return Err("limits need root here (the suite does not run as root)".into());
    }
    Ok(mode)
}

/// A sandbox with busybox whose runs are `who`'s.
pub fn sandbox(who: Who) -> Sandbox {
    let sandbox = Sandbox::new(who);
    sandbox.with_busybox();
    sandbox
}

pub use super::{eventually, quiet};

/// The id of container `name` (its cgroup's name).
pub fn container_id(ch: Chapter, sandbox: &Sandbox, name: &str) -> String {
    let out = quiet(ch, sandbox, &["inspect", name]);
    out.assert_ok();
    let state: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    state["id"].as_str().unwrap().to_string()
}

/// The container id in a run's narration: the name of the cgroup it made.
pub fn narrated_id(stderr: &str) -> String {
    stderr
        .split("/stepbox/")
        .skip(1)
        .find_map(|rest| {
            let id: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
            (id.len() == 12).then_some(id)
        })
        .unwrap_or_else(|| panic!("no cgroup made in the narration: {stderr}"))
}

/// The directories of cgroup `id` that exist now, under any tree (v1) or
/// the one tree (v2), for root's containers.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let base = Path::new(CGROUP_ROOT);
    let mut candidates = vec![base.join("stepbox").join(id)];
    for tree in list_dir(base) {
        candidates.push(base.join(tree).join("stepbox").join(id));
    }
    candidates.into_iter().filter(|dir| dir.is_dir()).collect()
}

/// The v1 hierarchies mounted under /sys/fs/cgroup (not cgroup2), by
/// directory name, sorted.
pub fn v1_tree_names() -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut names: Vec<String> = mounts
        .lines()
        .filter(|l| {
            l.split(" - ")
                .nth(1)
                .is_some_and(|r| r.starts_with("cgroup "))
        })
        .filter_map(|l| {
            l.split(' ')
                .nth(4)?
                .strip_prefix("/sys/fs/cgroup/")
                .map(String::from)
        })
        .filter(|name| !name.contains('/'))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The host pids of detached container `name`'s init and its monitor, from
/// its state.json.
pub fn init_and_monitor(sandbox: &Sandbox, name: &str) -> (i32, i32) {
    let path = sandbox
        .data_root()
        .join(format!("containers/{name}/state.json"));
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let pid = |key: &str| state[key].as_i64().unwrap() as i32;
    (pid("pid"), pid("monitor_pid"))
}

/// The `ps -a` row of container `name`.
pub fn ps_row(ch: Chapter, sandbox: &Sandbox, name: &str) -> String {
    let out = quiet(ch, sandbox, &["ps", "-a"]);
    out.assert_ok();
    out.stdout
        .lines()
        .find(|line| line.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no {name} in {out:#?}"))
        .to_string()
}

/// `stats NAME`'s row, split into its columns: memory use, its limit, CPU
/// time (s), throttled (s), pids, pids limit.
pub struct StatsRow {
    pub memory: String,
    pub memory_limit: String,
    pub cpu_seconds: f64,
    pub throttled_seconds: f64,
    pub pids: String,
    pub pids_limit: String,
}

pub fn stats(ch: Chapter, sandbox: &Sandbox, name: &str) -> StatsRow {
    let out = quiet(ch, sandbox, &["stats", name]);
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("MEM USAGE / LIMIT"),
        "{out:#?}"
    );
    let fields: Vec<&str> = lines[1].split_whitespace().collect();
    // NAME MEM / LIMIT CPU THROTTLED PIDS / LIMIT
    assert_eq!(fields.len(), 9, "{out:#?}");
    let seconds = |text: &str| text.trim_end_matches('s').parse::<f64>().unwrap();
    StatsRow {
        memory: fields[1].to_string(),
        memory_limit: fields[3].to_string(),
        cpu_seconds: seconds(fields[4]),
        throttled_seconds: seconds(fields[5]),
        pids: fields[6].to_string(),
        pids_limit: fields[8].to_string(),
    }
}

/// Run container `hog`, a memory hog in `-m 32m`, to its end: exit 137.
pub fn run_a_hog(ch: Chapter, sandbox: &Sandbox) -> Outcome {
    // busybox tail keeps the last lines of /dev/zero: one endless line.
    let args = [
        "run",
        "--name",
        "hog",
        "-m",
        "32m",
        "busybox",
        "tail",
        "/dev/zero",
    ];
    let out = quiet(ch, sandbox, &args);
    assert_eq!(out.code, Some(137), "{out:#?}");
    out
}

/// A memory hog in `-m 32m` is killed by the kernel's OOM killer: exit 137,
/// and `ps -a` says OOMKilled (read from the cgroup's memory events); the
/// cgroup is gone after the exit.
pub fn a_memory_hog_is_oom_killed_and_ps_says_so(ch: Chapter) -> String {
    let sandbox = sandbox(Who::Caller);
    run_a_hog(ch, &sandbox);
    let row = ps_row(ch, &sandbox, "hog");
    assert!(row.contains("exited (137) OOMKilled"), "{row}");
    let id = container_id(ch, &sandbox, "hog");
    let inspect = quiet(ch, &sandbox, &["inspect", "hog"]);
    assert!(
        inspect.stdout.contains("\"oom_killed\": true"),
        "{inspect:#?}"
    );
    assert!(cgroup_dirs(&id).is_empty(), "left: {:?}", cgroup_dirs(&id));
    // A command that exits 137 on its own is not OOMKilled.
    let out = quiet(
        ch,
        &sandbox,
        &[
            "run", "--name", "self", "-m", "32m", "busybox", "sh", "-c", "exit 137",
        ],
    );
    assert_eq!(out.code, Some(137), "{out:#?}");
    let own = ps_row(ch, &sandbox, "self");
    assert!(!own.contains("OOMKilled"), "{own}");
    quiet(ch, &sandbox, &["rm", "hog", "self"]).assert_ok();
    row
}

/// A process that forks without end stops at `--pids-limit`: its cgroup
/// holds exactly the limit, and the host forks as before.
pub fn a_fork_bomb_stops_at_the_pids_limit_and_the_host_forks_on(ch: Chapter) -> String {
    let sandbox = sandbox(Who::Caller);
    quiet(
        ch,
        &sandbox,
        &[
            "run",
            "-d",
            "--name",
            "bomb",
            "--pids-limit",
            "16",
            "busybox",
            "sh",
            "-c",
            // The forker in the background: a shell whose fork fails exits,
            // and PID 1 (sleep) keeps the container up.
            "(while :; do sleep 1000 & done) & exec sleep 1000",
        ],
    )
    .assert_ok();
    let mut seen = None;
    let full = eventually(Duration::from_secs(20), || {
        let row = stats(ch, &sandbox, "bomb");
        let full = row.pids == "16" && row.pids_limit == "16";
        seen = Some(format!("{} / {}", row.pids, row.pids_limit));
        full
    });
    assert!(full, "the cgroup never filled up: {seen:?}");
    // The kernel said no to the 17th (EAGAIN), it stays at the limit, and
    // the host still forks.
    assert!(
        eventually(Duration::from_secs(5), || quiet(
            ch,
            &sandbox,
            &["logs", "bomb"]
        )
        .stdout
        .contains("can't fork: Resource temporarily unavailable")),
        "no fork was refused"
    );
    std::thread::sleep(Duration::from_millis(300));
    let row = stats(ch, &sandbox, "bomb");
    assert_eq!(row.pids, "16");
    let host = std::process::Command::new("true").status().unwrap();
    assert!(host.success(), "the host cannot fork");
    let id = container_id(ch, &sandbox, "bomb");
    quiet(ch, &sandbox, &["rm", "-f", "bomb"]).assert_ok();
    assert!(cgroup_dirs(&id).is_empty(), "left: {:?}", cgroup_dirs(&id));
    format!("pids {} / {}", row.pids, row.pids_limit)
}

/// `--cpus 0.5`: a busy loop gets at most half a CPU, and the CFS
/// throttled time says why.
pub fn cpus_half_halves_a_busy_loop_shown_by_its_throttled_time(ch: Chapter) -> String {
    let sandbox = sandbox(Who::Caller);
    let started = Instant::now();
    quiet(
        ch,
        &sandbox,
        &[
            "run",
            "-d",
            "--name",
            "spin",
            "--cpus",
            "0.5",
            "busybox",
            "sh",
            "-c",
            "while :; do :; done",
        ],
    )
    .assert_ok();
    std::thread::sleep(Duration::from_millis(2000));
    let row = stats(ch, &sandbox, "spin");
    let wall = started.elapsed().as_secs_f64();
    quiet(ch, &sandbox, &["rm", "-f", "spin"]).assert_ok();
    let shown = format!(
        "{:.2}s of CPU in {wall:.2}s, throttled {:.2}s",
        row.cpu_seconds, row.throttled_seconds
    );
    // Half a CPU at most (plus one period of slack), and held back for it.
    assert!(row.cpu_seconds <= 0.5 * wall + 0.1, "{shown}");
    assert!(row.throttled_seconds > 0.2, "{shown}");
    shown
}

/// `stats NAME` prints memory use against `-m`, CPU time, and pids
/// against `--pids-limit`; a stopped container has no stats.
pub fn stats_prints_memory_cpu_and_pids_use(ch: Chapter) -> String {
    let sandbox = sandbox(Who::Caller);
    quiet(
        ch,
        &sandbox,
        &[
            "run",
            "-d",
            "--name",
            "st",
            "-m",
            "64m",
            "--pids-limit",
            "32",
            "busybox",
            "sleep",
            "1000",
        ],
    )
    .assert_ok();
    let row = stats(ch, &sandbox, "st");
    assert_eq!(row.memory_limit, "64.0MiB");
    assert!(row.memory.ends_with('B'), "{}", row.memory);
    assert_eq!((row.pids.as_str(), row.pids_limit.as_str()), ("1", "32"));
    assert!(row.cpu_seconds >= 0.0);
    quiet(ch, &sandbox, &["stop", "-t", "0", "st"]).assert_ok();
    let out = quiet(ch, &sandbox, &["stats", "st"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(out.stderr.contains("is not running"), "{out:#?}");
    quiet(ch, &sandbox, &["rm", "st"]).assert_ok();
    format!(
        "{} / {}, pids {} / {}",
        row.memory, row.memory_limit, row.pids, row.pids_limit
    )
}

/// The files each limit is written to, in this mode.
fn limit_files(mode: Mode) -> [&'static str; 5] {
    match mode {
        Mode::V2 => [
            "memory.max\", \"33554432\"",
            "cpu.max\", \"50000 100000\"",
            "pids.max\", \"64\"",
            "cpuset.cpus\", \"0\"",
            "cpu.weight\", \"20\"",
        ],
        Mode::V1 { .. } => [
            "memory.limit_in_bytes\", \"33554432\"",
            "cpu.cfs_quota_us\", \"50000\"",
            "pids.max\", \"64\"",
            "cpuset.cpus\", \"0\"",
            "cpu.shares\", \"512\"",
        ],
    }
}

/// Each limit is narrated as the write to its cgroup file, after the mode
/// (statfs), and the child is in its cgroup before it takes its first step
/// (unshare(CLONE_NEWCGROUP)): on v1 it moves itself, `0` written to each
/// tree's `tasks` by the child (no pid written to cgroup.procs by the
/// parent); on v2 its pid is written to cgroup.procs before that step.
pub fn each_limit_is_narrated_as_the_write_to_its_file(ch: Chapter, mode: Mode) -> String {
    let sandbox = sandbox(Who::Caller);
    let out = sandbox.run(
        ch.bin,
        &[
            "run",
            "--rm",
            "-m",
            "32m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "64",
            "--cpuset-cpus",
            "0",
            "--cpu-shares",
            "512",
            "busybox",
            "true",
        ],
    );
    out.assert_ok();
    let position = |needle: &str| {
        out.stderr
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in {}", out.stderr))
    };
    let statfs = position("statfs(\"/sys/fs/cgroup\")");
    let mut last = statfs;
    for file in limit_files(mode) {
        let at = position(&format!("/{file})"));
        assert!(at > statfs, "{file} before the mode was known");
        last = last.max(at);
    }
    let joined = match mode {
        Mode::V1 { .. } => {
            assert!(
                !out.stderr.contains("cgroup.procs\", \""),
                "on v1 the parent writes no pid: the child moves itself: {}",
                out.stderr
            );
            let moves = out
                .stderr
                .lines()
                .filter(|l| l.starts_with("[child ] write(") && l.ends_with("/tasks\", \"0\")"))
                .count();
            // As many trees entered as the container got a directory in.
            let id = narrated_id(&out.stderr);
            let made = out
                .stderr
                .lines()
                .filter(|l| l.starts_with("[parent] mkdir(") && l.contains(&format!("/{id}\", ")))
                .count();
            assert!(
                made >= 3,
                "a directory in the memory, cpu and pids trees at least: {}",
                out.stderr
            );
            assert_eq!(moves, made, "each tree's cgroup entered: {}", out.stderr);
            position("/tasks\", \"0\")")
        }
        Mode::V2 => position("cgroup.procs\", \""),
    };
    let first_step = position("[child ] unshare(CLONE_NEWCGROUP)");
    assert!(
        last < joined && joined < first_step,
        "limits, then the move into the cgroup, then the child's first step: {}",
        out.stderr
    );
    let id = narrated_id(&out.stderr);
    assert!(cgroup_dirs(&id).is_empty(), "left: {:?}", cgroup_dirs(&id));
    out.stderr
        .lines()
        .filter(|l| l.contains("write(") || l.contains("statfs("))
        .collect::<Vec<_>>()
        .join("\n")
}

/// In its cgroup namespace the container sees its cgroup as `/` (exec's
/// command too); /sys is a read-only tmpfs, holding on v2 the container's
/// cgroup, read-only, with its limit in memory.max.
pub fn the_container_sees_its_cgroup_as_root_and_sys_read_only(ch: Chapter, mode: Mode) -> String {
    let sandbox = sandbox(Who::Caller);
    let script = "cat /proc/self/cgroup; echo ---; \
                  awk '$5 ~ /^\\/sys/ {print $5, $6, $(NF-2)}' /proc/self/mountinfo; echo ---; \
                  cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null; \
                  touch /sys/fs/cgroup/x /sys/x 2>&1";
    let out = quiet(
        ch,
        &sandbox,
        &["run", "--rm", "-m", "32m", "busybox", "sh", "-c", script],
    );
    let parts: Vec<&str> = out.stdout.split("---\n").collect();
    assert_eq!(parts.len(), 3, "{out:#?}");
    for line in parts[0].lines() {
        assert!(
            line.ends_with(":/"),
            "not rooted at its cgroup: {line}: {out:#?}"
        );
    }
    let sys: Vec<&str> = parts[1].lines().collect();
    assert!(
        sys[0].starts_with("/sys ro,") && sys[0].ends_with(" tmpfs"),
        "{sys:?}"
    );
    match mode {
        Mode::V2 => {
            assert_eq!(sys.len(), 2, "{sys:?}");
            assert!(
                sys[1].starts_with("/sys/fs/cgroup ro,") && sys[1].ends_with(" cgroup2"),
                "{sys:?}"
            );
            assert!(parts[2].starts_with("33554432\n"), "{out:#?}");
        }
        Mode::V1 { .. } => {
            // Each of the host's v1 trees, read-only, rooted at the
            // container's cgroup: its memory limit is at the tree's top.
            let trees = v1_tree_names();
            assert_eq!(sys.len(), 1 + trees.len(), "{sys:?}");
            for tree in &trees {
                let line = format!("/sys/fs/cgroup/{tree} ro,");
                assert!(
                    sys.iter()
                        .any(|l| l.starts_with(&line) && l.ends_with(" cgroup")),
                    "{tree}: {sys:?}"
                );
            }
            assert!(parts[2].starts_with("33554432\n"), "{out:#?}");
        }
    }
    assert_eq!(
        parts[2].matches("Read-only file system").count(),
        2,
        "{out:#?}"
    );
    // exec's command is in the container's cgroup, and its namespace.
    quiet(
        ch,
        &sandbox,
        &[
            "run", "-d", "--name", "x", "-m", "32m", "busybox", "sleep", "1000",
        ],
    )
    .assert_ok();
    let exec = sandbox.run(ch.bin, &["exec", "x", "cat", "/proc/self/cgroup"]);
    exec.assert_ok();
    for line in exec.stdout.lines() {
        assert!(line.ends_with(":/"), "exec outside: {line}: {exec:#?}");
    }
    // On v1 it got there as the container's child does: its thread moved
    // itself (`tasks`), and no pid went to cgroup.procs.
    if let Mode::V1 { .. } = mode {
        assert!(
            exec.stderr.contains("/tasks\", \"0\")") && !exec.stderr.contains("cgroup.procs\", \""),
            "{}",
            exec.stderr
        );
    }
    // Seen from the host, its `/` is its own cgroup in every v1 tree (in a
    // tree where it stayed in ours, its namespace would show that tree's
    // root, with the release_agent any root may point at a program).
    if let Mode::V1 { .. } = mode {
        let id = container_id(ch, &sandbox, "x");
        let (pid, _) = init_and_monitor(&sandbox, "x");
        let seen = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let v1: Vec<&str> = seen.lines().filter(|l| !l.starts_with("0::")).collect();
        assert_eq!(v1.len(), v1_tree_names().len(), "{seen}");
        for line in v1 {
            assert!(line.ends_with(&format!(":/stepbox/{id}")), "{line}: {seen}");
        }
    }
    quiet(ch, &sandbox, &["rm", "-f", "x"]).assert_ok();
    parts[0].lines().next().unwrap_or_default().to_string()
}

/// The cgroup goes when the container exits (foreground, and -d through its
/// monitor), with `rm -f`, and, left by a killed monitor, with the next run.
pub fn the_cgroup_is_removed_on_exit_by_rm_and_when_stale(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    // Foreground: gone when run returns.
    let out = sandbox.run(ch.bin, &["run", "--rm", "-m", "32m", "busybox", "true"]);
    out.assert_ok();
    let id = narrated_id(&out.stderr);
    assert!(
        cgroup_dirs(&id).is_empty(),
        "foreground: {:?}",
        cgroup_dirs(&id)
    );
    // Detached: there while it runs, gone once it exits.
    let detached = |name: &str| {
        quiet(
            ch,
            &sandbox,
            &[
                "run", "-d", "--name", name, "-m", "32m", "busybox", "sleep", "1000",
            ],
        )
        .assert_ok();
        let id = container_id(ch, &sandbox, name);
        assert!(!cgroup_dirs(&id).is_empty(), "{name} has no cgroup");
        id
    };
    let stopped = detached("stopped");
    quiet(ch, &sandbox, &["stop", "-t", "0", "stopped"]).assert_ok();
    assert!(
        eventually(Duration::from_secs(5), || cgroup_dirs(&stopped).is_empty()),
        "after stop: {:?}",
        cgroup_dirs(&stopped)
    );
    let removed = detached("removed");
    quiet(ch, &sandbox, &["rm", "-f", "removed"]).assert_ok();
    assert!(cgroup_dirs(&removed).is_empty(), "after rm -f");
    // A killed monitor leaves its container's cgroup: the next run removes it.
    let stale = detached("stale");
    let (init, monitor) = init_and_monitor(&sandbox, "stale");
    // SAFETY: kill(2) on the monitor this test started.
    assert_eq!(unsafe { libc::kill(monitor, libc::SIGKILL) }, 0);
    assert!(super::wait_until_dead(init, Duration::from_secs(5)));
    assert!(!cgroup_dirs(&stale).is_empty(), "control: no stale cgroup");
    // A cgroup made within the last 5 s may be a starting run's: never swept.
    std::thread::sleep(Duration::from_secs(5));
    // (Another test's run, or another session's, may be the one that
    // sweeps it: the claim is that it is gone once a run has come by.)
    let out = sandbox.run(ch.bin, &["run", "--rm", "busybox", "true"]);
    out.assert_ok();
    assert!(
        cgroup_dirs(&stale).is_empty(),
        "stale: {:?}: {out:#?}",
        cgroup_dirs(&stale)
    );
    quiet(ch, &sandbox, &["rm", "stopped", "stale"]).assert_ok();
}

/// A container given CAP_SYS_ADMIN may mount its cgroup read-write and, on
/// v1, raise its own memory limit (as in Docker: the limits hold only
/// against a root without it), and may make a cgroup inside its own: that one is
/// removed with it, children first, and the next run is not stopped by it.
pub fn with_sys_admin_a_container_may_raise_its_limit_and_its_cgroups_go_with_it(
    ch: Chapter,
    mode: Mode,
) {
    let sandbox = sandbox(Who::Caller);
    // v1: memory + swap first, which may never be below memory. (On v2 a
    // cgroup2 mounted with nsdelegate, as systemd mounts it, refuses writes
    // to the namespace root's files: not tried there.)
    let (mount, raise, expected) = match mode {
        Mode::V2 => ("mount -t cgroup2 none /tmp/m", "", "made\n"),
        Mode::V1 { .. } => (
            "mount -t cgroup -o memory cgroup /tmp/m",
            "cd /tmp/m && for f in memory.memsw.limit_in_bytes memory.limit_in_bytes; do \
             [ ! -e $f ] || echo 67108864 > $f; done && cat memory.limit_in_bytes && cd / &&",
            "67108864\nmade\n",
        ),
    };
    let script = format!(
        "mkdir /tmp/m && {mount} && {raise} \
         mkdir /tmp/m/sub && \
         sh -c 'echo $$ > /tmp/m/sub/cgroup.procs; exec sleep 1000' & sleep 0.5; echo made"
    );
    let script = script.as_str();
    let out = sandbox.run(
        ch.bin,
        &[
            "run",
            "--rm",
            "-m",
            "32m",
            "--cap-add",
            "SYS_ADMIN",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, expected, "{out:#?}");
    let id = narrated_id(&out.stderr);
    assert!(cgroup_dirs(&id).is_empty(), "left: {:?}", cgroup_dirs(&id));
    quiet(ch, &sandbox, &["run", "--rm", "busybox", "true"]).assert_ok();
}

/// A process the container froze (v1 freezer, with SYS_ADMIN) takes no
/// SIGKILL until thawed: `rm -f` thaws it first, and nothing is left.
pub fn rm_f_thaws_a_process_the_container_froze(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    let script = "mount -o remount,bind,rw /sys/fs/cgroup/freezer && mkdir /sys/fs/cgroup/freezer/ice && \
                  (sleep 1000 & echo $! > /sys/fs/cgroup/freezer/ice/cgroup.procs; \
                   echo FROZEN > /sys/fs/cgroup/freezer/ice/freezer.state; echo frozen) && exec sleep 1000";
    quiet(
        ch,
        &sandbox,
        &[
            "run",
            "-d",
            "--name",
            "ice",
            "--cap-add",
            "SYS_ADMIN",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    )
    .assert_ok();
    let id = container_id(ch, &sandbox, "ice");
    assert!(
        eventually(Duration::from_secs(5), || {
            quiet(ch, &sandbox, &["logs", "ice"])
                .stdout
                .contains("frozen")
        }),
        "it did not freeze: {:?}",
        quiet(ch, &sandbox, &["logs", "ice"])
    );
    quiet(ch, &sandbox, &["rm", "-f", "ice"]).assert_ok();
    assert!(
        eventually(Duration::from_secs(5), || cgroup_dirs(&id).is_empty()),
        "left: {:?}",
        cgroup_dirs(&id)
    );
}

/// A detached container that has exited, whose monitor has not yet read
/// its cgroup (stopped here with SIGSTOP), keeps its cgroup through other
/// runs' sweeps, however old: the monitor holds its lock. Once it goes on,
/// it records the exit and removes the cgroup itself.
pub fn a_sweep_leaves_the_cgroup_whose_monitor_still_runs(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    quiet(
        ch,
        &sandbox,
        &[
            "run", "-d", "--name", "held", "-m", "32m", "busybox", "sleep", "1000",
        ],
    )
    .assert_ok();
    let id = container_id(ch, &sandbox, "held");
    let (init, monitor) = init_and_monitor(&sandbox, "held");
    // SAFETY: kill(2) on the monitor and the container this test started.
    unsafe {
        assert_eq!(libc::kill(monitor, libc::SIGSTOP), 0);
        assert_eq!(libc::kill(init, libc::SIGKILL), 0);
    }
    // Its cgroup is empty now, and older than a starting run's 5 s.
    std::thread::sleep(STARTING_AND_THEN_SOME);
    quiet(ch, &sandbox, &["run", "--rm", "busybox", "true"]).assert_ok();
    let kept = !cgroup_dirs(&id).is_empty();
    // SAFETY: as above.
    unsafe { libc::kill(monitor, libc::SIGCONT) };
    assert!(
        kept,
        "a sweep took the cgroup of a container whose monitor runs"
    );
    assert!(
        eventually(Duration::from_secs(5), || cgroup_dirs(&id).is_empty()),
        "the monitor did not remove it: {:?}",
        cgroup_dirs(&id)
    );
    // The cgroup goes in the same update of state.json that records the
    // exit, before that update is written: the record may come a moment later.
    assert!(
        eventually(Duration::from_secs(5), || ps_row(ch, &sandbox, "held")
            .contains("exited (137)")),
        "{}",
        ps_row(ch, &sandbox, "held")
    );
    quiet(ch, &sandbox, &["rm", "held"]).assert_ok();
}

/// Longer than the 5 s during which a new, empty cgroup is never swept.
const STARTING_AND_THEN_SOME: Duration = Duration::from_millis(5500);

/// Bad limits are refused with one line and 125, before anything is made.
pub fn bad_limits_are_refused_with_125_and_nothing_is_created(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    let cases: [(&[&str], &str); 5] = [
        (
            &["-m", "1k"],
            "--memory \"1k\": the smallest memory limit is 6m",
        ),
        (&["-m", "lots"], "--memory \"lots\": not a size"),
        (&["--cpus", "0"], "--cpus \"0\": the smallest is 0.01"),
        (&["--cpus", "9999"], "this machine has only"),
        (&["--pids-limit", "x"], "--pids-limit \"x\""),
    ];
    for (flags, message) in cases {
        let mut args = vec!["-q", "run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        let out = sandbox.run(ch.bin, &args);
        assert_eq!(out.code, Some(125), "{flags:?}: {out:#?}");
        let errors = out.error_lines();
        assert_eq!(errors.len(), 1, "one line: {out:#?}");
        assert!(errors[0].starts_with(&ch.error_line("")), "{out:#?}");
        assert!(errors[0].contains(message), "{flags:?}: {errors:?}");
    }
    assert!(list_dir(&sandbox.data_root().join("containers")).is_empty());
}

/// A command that cannot start (127) leaves no cgroup, as it leaves no container.
pub fn a_container_that_cannot_start_leaves_no_cgroup(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    let out = sandbox.run(
        ch.bin,
        &[
            "run",
            "--rm",
            "-m",
            "32m",
            "--pids-limit",
            "8",
            "busybox",
            "/no/such",
        ],
    );
    assert_eq!(out.code, Some(127), "{out:#?}");
    let id = narrated_id(&out.stderr);
    assert!(cgroup_dirs(&id).is_empty(), "left: {:?}", cgroup_dirs(&id));
    assert!(list_dir(&sandbox.data_root().join("containers")).is_empty());
}

/// Rootless without a delegated cgroup, a limit is refused with one line
/// naming the fix (never ignored); without a limit the container runs.
pub fn rootless_a_limit_is_refused_with_the_fix(ch: Chapter, mode: Mode) -> String {
    let sandbox = sandbox(Who::Unprivileged);
    let out = sandbox.run(
        ch.bin,
        &["-q", "run", "--rm", "-m", "32m", "busybox", "true"],
    );
    assert_eq!(out.code, Some(125), "{out:#?}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "one line: {out:#?}");
    let fix = match mode {
        Mode::V2 => "systemd-run --user --scope -p Delegate=yes",
        Mode::V1 { .. } => "run as root, or boot with systemd.unified_cgroup_hierarchy=1",
    };
    assert!(errors[0].contains(fix), "{errors:?}");
    assert!(list_dir(&sandbox.data_root().join("containers")).is_empty());
    quiet(ch, &sandbox, &["run", "--rm", "busybox", "true"]).assert_ok();
    errors[0].to_string()
}

/// For a slow guest, chapter 7's claims in few runs, read from inside
/// the container through its /sys/fs/cgroup (cgroup v2 only): in one run
/// with `-m 32m --cpus 0.5 --pids-limit 16`, the narrated writes in
/// order, then clone3 into the cgroup; `/` in /proc/self/cgroup; the limits in the container's own
/// read-only cgroup2; forks refused at 16; a busy loop throttled; then the
/// command becomes a hog, is OOM-killed, and `ps -a` says OOMKilled (read
/// from memory.events); no cgroup is left.
pub fn v2_limits_hold_in_one_run(ch: Chapter) -> String {
    let sandbox = sandbox(Who::Caller);
    let script = "cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max /sys/fs/cgroup/pids.max; \
        cut -d' ' -f5,6,9 /proc/self/mountinfo | grep ^/sys; \
        touch /sys/fs/cgroup/x 2>&1; \
        (while :; do sleep 1000 & done) 2>/dev/null; \
        read n < /sys/fs/cgroup/pids.current; echo pids $n; \
        kill -9 -1; \
        timeout 1 sh -c 'while :; do :; done'; \
        grep -E '^(usage|throttled)_usec' /sys/fs/cgroup/cpu.stat; \
        exec tail /dev/zero";
    let out = sandbox.run(
        ch.bin,
        &[
            "run",
            "--name",
            "all",
            "--init",
            "-m",
            "32m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "16",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(out.code, Some(137), "{out:#?}");
    let position = |needle: &str| {
        out.stderr
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in {}", out.stderr))
    };
    let statfs = position("statfs(\"/sys/fs/cgroup\") = {f_type = CGROUP2_SUPER_MAGIC");
    let writes = [
        "memory.max\", \"33554432\")",
        "memory.swap.max\", \"0\")",
        "cpu.max\", \"50000 100000\")",
        "pids.max\", \"16\")",
    ]
    .map(|file| position(&format!("/{file}")));
    // Born in its cgroup by clone3, after the limits are written: no pid
    // is ever written to cgroup.procs.
    let born = position("|CLONE_INTO_CGROUP, cgroup = ");
    let first_step = position("[child ] unshare(CLONE_NEWCGROUP)");
    assert!(writes.iter().all(|&at| statfs < at && at < born) && born < first_step);
    assert!(!out.stderr.contains("cgroup.procs\", \""), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let expected_start = [
        "0::/",
        "33554432",
        "50000 100000",
        "16",
        "/sys ro,nosuid,nodev,noexec,relatime tmpfs",
        "/sys/fs/cgroup ro,nosuid,nodev,noexec,relatime cgroup2",
        "touch: /sys/fs/cgroup/x: Read-only file system",
    ];
    assert_eq!(lines[..7], expected_start, "{out:#?}");
    // The forker died of its refused fork: the limit, or one under it.
    let pids: u64 = lines[7].strip_prefix("pids ").unwrap().parse().unwrap();
    assert!((15..=16).contains(&pids), "{out:#?}");
    let value = |key: &str| -> u64 {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {out:#?}"))
            .trim()
            .parse()
            .unwrap()
    };
    let (usage, throttled) = (value("usage_usec"), value("throttled_usec"));
    assert!(throttled > 100_000, "not throttled: {out:#?}");
    // The hog it became was OOM-killed: ps says so, from memory.events.
    let row = ps_row(ch, &sandbox, "all");
    assert!(row.contains("exited (137) OOMKilled"), "{row}");
    let id = narrated_id(&out.stderr);
    assert!(cgroup_dirs(&id).is_empty(), "left: {:?}", cgroup_dirs(&id));
    quiet(ch, &sandbox, &["rm", "all"]).assert_ok();
    format!(
        "pids {pids} / 16; CPU {}ms, throttled {}ms; {}",
        usage / 1000,
        throttled / 1000,
        row.split_whitespace()
            .skip(3)
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}
