//! Chapter 5's lifecycle claims (docs/ch5-commit.md#claims--tests), each a
//! function of the chapter binary that proves it: ch5 runs them against its
//! own binary, and each later chapter against its own, since it must keep
//! everything ch5 does. Each claim runs the real binary against a busybox
//! image and checks the host afterwards.
//!
//! A test file generates its tests from these with `chapter_tests!`
//! (tests/support/mod.rs), one line per claim: see tests/ch5_commit.rs.
//! A chapter whose file leaves a claim out gets a dead-code warning for it
//! (an error under clippy -D warnings), so none is dropped unseen.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{
    self, assert_mount_table_unchanged, busybox_image, chown_to_sandbox_user, eventually, list_dir,
    mount_table, process_state, quiet, wait_until_dead, Chapter, Outcome, Sandbox, Who,
};

/// A sandbox holding the busybox image, whose runs are `who`'s.
fn sandbox(who: Who) -> Sandbox {
    let sandbox = Sandbox::new(who);
    sandbox.with_busybox();
    sandbox
}

/// The `ps -a` row of container `name`, split into columns.
fn ps_row(ch: Chapter, sandbox: &Sandbox, name: &str) -> Option<String> {
    let out = quiet(ch, sandbox, &["ps", "-a"]);
    out.assert_ok();
    out.stdout
        .lines()
        .find(|line| line.split_whitespace().nth(1) == Some(name))
        .map(str::to_string)
}

/// The pids recorded in a container's state.json (init, monitor).
fn recorded_pids(sandbox: &Sandbox, name: &str) -> Vec<i32> {
    let path = sandbox
        .data_root()
        .join("containers")
        .join(name)
        .join("state.json");
    let state: serde_json::Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    ["pid", "monitor_pid"]
        .iter()
        .filter_map(|key| state[key].as_i64().map(|p| p as i32))
        .collect()
}

/// The entries of a gzip tarball: (path, link target if a symlink).
fn tar_entries(path: &Path) -> Vec<(String, Option<String>)> {
    tar_headers(path)
        .into_iter()
        .map(|entry| (entry.name, entry.link))
        .collect()
}

/// One member of a tarball, as its header has it.
#[derive(Debug)]
pub struct Member {
    pub name: String,
    pub link: Option<String>,
    pub kind: tar::EntryType,
    pub owner: (u64, u64),
}

/// The first four bytes of a zstd frame (RFC 8878).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The members of the tarball at `path`, plain, gzip or zstd.
pub fn tar_headers(path: &Path) -> Vec<Member> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let reader: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(&bytes[..]))
    } else if bytes.starts_with(&ZSTD_MAGIC) {
        Box::new(zstd::stream::read::Decoder::new(&bytes[..]).unwrap())
    } else {
        Box::new(&bytes[..])
    };
    let mut archive = tar::Archive::new(reader);
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let header = entry.header();
            Member {
                name: entry.path().unwrap().display().to_string(),
                link: entry.link_name().unwrap().map(|l| l.display().to_string()),
                kind: header.entry_type(),
                owner: (header.uid().unwrap(), header.gid().unwrap()),
            }
        })
        .collect()
}

/// The manifest of the stored image `reference` (NAME:TAG), read from the
/// store's files: images/index.json, then blobs/sha256/.
pub fn stored_manifest(sandbox: &Sandbox, reference: &str) -> serde_json::Value {
    let root = sandbox.data_root();
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("images/index.json")).unwrap()).unwrap();
    let digest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .unwrap_or_else(|| panic!("no image {reference} in {index}"))["digest"]
        .as_str()
        .unwrap()
        .to_string();
    blob_json(sandbox, &digest)
}

/// A JSON blob of the store.
pub fn blob_json(sandbox: &Sandbox, digest: &str) -> serde_json::Value {
    serde_json::from_slice(&fs::read(blob_path(sandbox, digest)).unwrap()).unwrap()
}

/// The file of the store's blob `sha256:…`.
pub fn blob_path(sandbox: &Sandbox, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    sandbox.data_root().join("blobs/sha256").join(hex)
}

/// The blob files of the layers of the stored image `reference`, bottom first.
pub fn stored_layers(sandbox: &Sandbox, reference: &str) -> Vec<PathBuf> {
    stored_manifest(sandbox, reference)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob_path(sandbox, l["digest"].as_str().unwrap()))
        .collect()
}

// Claim 1: the whole flow. Two containers with volumes; exec writes into a
// volume and into the root; commit; stop; rm; the new image has the change
// and none of the volume's content; the host volume data is intact.
pub fn claim_end_to_end(ch: Chapter, who: Who) {
    let sandbox = sandbox(who);
    let before = mount_table();
    let (from1, from2) = (sandbox.path().join("from1"), sandbox.path().join("from2"));
    let v1 = format!("{}:/to1", from1.display());
    let v2 = format!("{}:/to2", from2.display());
    quiet(
        ch,
        &sandbox,
        &[
            "run", "-d", "--name", "c1", "-v", &v1, "busybox", "sleep", "1000",
        ],
    )
    .assert_ok();
    let out = quiet(
        ch,
        &sandbox,
        &[
            "run", "-d", "--name", "c2", "-v", &v2, "busybox", "sleep", "1000",
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "c2\n");

    let out = quiet(
        ch,
        &sandbox,
        &[
            "exec",
            "c2",
            "sh",
            "-c",
            "echo hello > /to2/test2.txt; echo mine > /root/changed",
        ],
    );
    out.assert_ok();
    let out = quiet(ch, &sandbox, &["commit", "c2", "image2"]);
    out.assert_ok();
    // Docker's answer: the new image's ID, its config's digest.
    let config = stored_manifest(&sandbox, "image2:latest")["config"]["digest"].clone();
    assert_eq!(out.stdout.trim(), config.as_str().unwrap());
    // The new image is busybox's layer and one more, of the changes.
    let layers = stored_layers(&sandbox, "image2:latest");
    assert_eq!(layers.len(), 2, "{layers:?}");
    let tarball = layers[1].clone();

    let pids: Vec<i32> = ["c1", "c2"]
        .iter()
        .flat_map(|c| recorded_pids(&sandbox, c))
        .collect();
    quiet(ch, &sandbox, &["stop", "c2"]).assert_ok();
    quiet(ch, &sandbox, &["rm", "c2"]).assert_ok();
    let out = quiet(
        ch,
        &sandbox,
        &["run", "--rm", "image2", "cat", "/root/changed"],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "mine\n");

    assert_eq!(
        fs::read_to_string(from2.join("test2.txt")).unwrap(),
        "hello\n"
    );
    let entries = tar_entries(&tarball);
    assert!(
        entries.iter().any(|(p, _)| p == "root/changed"),
        "the change is not committed"
    );
    assert!(
        !entries.iter().any(|(p, _)| p == "bin/busybox"),
        "the layer holds files the container did not change"
    );
    // Owned by root in the image, also when an ordinary user committed it.
    let owner = tar_headers(&tarball)
        .into_iter()
        .find(|m| m.name == "root/changed")
        .map(|m| m.owner);
    assert_eq!(
        owner,
        Some((0, 0)),
        "root/changed is not root's in the image"
    );
    assert!(
        !entries.iter().any(|(p, _)| p.contains("test2.txt")),
        "volume data was committed"
    );

    quiet(ch, &sandbox, &["rm", "-f", "c1"]).assert_ok();
    // Claim 8: after rm of every container, nothing is left.
    assert_eq!(
        list_dir(&sandbox.data_root().join("containers")),
        Vec::<String>::new()
    );
    for pid in pids {
        assert!(
            wait_until_dead(pid, Duration::from_secs(5)),
            "process {pid} is still running"
        );
    }
    assert_mount_table_unchanged(&before);
    assert!(
        from1.is_dir(),
        "the volume directory went with the container"
    );
}

// Claim 2: ps shows each container's status, `exited (N)` with the right N,
// and logs show a detached container's output.
pub fn claim_ps_and_logs(ch: Chapter, who: Who) {
    let sandbox = sandbox(who);
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "up", "busybox", "sleep", "1000"],
    )
    .assert_ok();
    // Narrated (no -q): the narration must not end up in the container's log.
    let script = "echo to-out; echo to-err >&2; exit 3";
    let out = sandbox.run(
        ch.bin,
        &["run", "-d", "--name", "done", "busybox", "sh", "-c", script],
    );
    out.assert_ok();
    assert!(
        out.stderr.contains("dup2(log, 1)"),
        "control: this run was not narrated: {}",
        out.stderr
    );
    assert!(
        eventually(Duration::from_secs(10), || ps_row(ch, &sandbox, "done")
            .is_some_and(|r| r.contains("exited (3)"))),
        "{:?}",
        ps_row(ch, &sandbox, "done")
    );
    let running = quiet(ch, &sandbox, &["ps"]).stdout;
    assert!(
        running
            .lines()
            .any(|l| l.contains(" up ") && l.contains("running")),
        "{running}"
    );
    assert!(
        !running.contains(" done "),
        "ps without -a lists an exited container: {running}"
    );

    let out = quiet(ch, &sandbox, &["logs", "done"]);
    out.assert_ok();
    assert_eq!(out.stdout, "to-out\nto-err\n");
    quiet(ch, &sandbox, &["rm", "-f", "up", "done"]).assert_ok();
}

// Claim 3: stop on a PID 1 that ignores SIGTERM ends with SIGKILL after the
// timeout. A PID 1 without a handler ignores it too: the kernel delivers it
// only the signals it handles (pid_namespaces(7)).
pub fn stop_kills_a_pid_1_that_ignores_sigterm(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "plain", "busybox", "sleep", "1000"],
    )
    .assert_ok();
    quiet(ch, &sandbox, &["stop", "-t", "1", "plain"]).assert_ok();
    let row = ps_row(ch, &sandbox, "plain").unwrap();
    assert!(row.contains("exited (137)"), "{row}");

    let script = "trap '' TERM; echo trapped; while true; do sleep 1; done";
    quiet(
        ch,
        &sandbox,
        &[
            "run", "-d", "--name", "stubborn", "busybox", "sh", "-c", script,
        ],
    )
    .assert_ok();
    assert!(eventually(Duration::from_secs(10), || quiet(
        ch,
        &sandbox,
        &["logs", "stubborn"]
    )
    .stdout
        == "trapped\n"));
    let started = Instant::now();
    let out = sandbox.run(ch.bin, &["stop", "-t", "1", "stubborn"]);
    out.assert_ok();
    let took = started.elapsed();
    assert!(
        out.stderr.contains("SIGTERM") && out.stderr.contains("SIGKILL"),
        "{}",
        out.stderr
    );
    assert!(
        took >= Duration::from_secs(1),
        "SIGKILL came before the timeout: {took:?}"
    );
    assert!(ps_row(ch, &sandbox, "stubborn")
        .unwrap()
        .contains("exited (137)"));
    quiet(ch, &sandbox, &["rm", "stubborn", "plain"]).assert_ok();
}

// Claim 4: a recorded pid that now belongs to another process is not the
// container: ps shows it exited, and stop signals nothing.
pub fn a_reused_pid_is_never_signalled(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "old", "busybox", "true"],
    )
    .assert_ok();
    let state_path = sandbox.data_root().join("containers/old/state.json");
    assert!(eventually(Duration::from_secs(10), || ps_row(
        ch, &sandbox, "old"
    )
    .is_some_and(|r| r.contains("exited (0)"))));

    // A stranger now holds the pid the record names (its start time differs).
    let mut stranger = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let mut state: serde_json::Value =
        serde_json::from_slice(&fs::read(&state_path).unwrap()).unwrap();
    state["status"] = "running".into();
    state["pid"] = (stranger.id() as i64).into();
    fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();

    let row = ps_row(ch, &sandbox, "old").unwrap();
    assert!(row.contains("exited") && !row.contains("running"), "{row}");
    assert!(!quiet(ch, &sandbox, &["ps"]).stdout.contains(" old "));
    quiet(ch, &sandbox, &["stop", "-t", "1", "old"]).assert_ok();
    assert!(
        matches!(process_state(stranger.id() as i32), Some('S' | 'R')),
        "the stranger was signalled"
    );
    stranger.kill().unwrap();
    stranger.wait().unwrap();
    quiet(ch, &sandbox, &["rm", "old"]).assert_ok();
}

// Claim 5: bad names are refused before anything is created.
pub fn claim_bad_names(ch: Chapter, who: Who) {
    let sandbox = Sandbox::new(who);
    let long = "a".repeat(65);
    for name in [
        "../x",
        "a/b",
        ".",
        "..",
        "",
        long.as_str(),
        "a\nb",
        "-x",
        "a b",
    ] {
        let flag = format!("--name={name}");
        let out = quiet(ch, &sandbox, &["run", &flag, "busybox", "true"]);
        assert_eq!(out.code, Some(125), "{name:?}: {out:#?}");
        let errors = out.error_lines();
        assert_eq!(errors.len(), 1, "{name:?}: {errors:?}");
        assert!(
            errors[0].starts_with(&ch.error_line("invalid container name")),
            "{name:?}: {errors:?}"
        );
    }
    assert!(
        !sandbox.data_root().exists(),
        "a refused name created the data root"
    );
    assert_eq!(
        list_dir(sandbox.path())
            .iter()
            .filter(|n| *n != "bin")
            .count(),
        0
    );
}

// Claim 5: twenty parallel runs with one name give one container and
// nineteen clear errors.
pub fn twenty_parallel_runs_with_one_name_make_one_container(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    quiet(ch, &sandbox, &["run", "--rm", "busybox", "true"]).assert_ok(); // layers unpacked once
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..20)
            .map(|_| {
                scope.spawn(|| {
                    quiet(
                        ch,
                        &sandbox,
                        &["run", "-d", "--name", "same", "busybox", "sleep", "1000"],
                    )
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let won = outcomes.iter().filter(|o| o.code == Some(0)).count();
    assert_eq!(won, 1, "{outcomes:#?}");
    for lost in outcomes.iter().filter(|o| o.code != Some(0)) {
        assert_eq!(lost.code, Some(125));
        assert_eq!(
            lost.error_lines(),
            [ch.error_line("the name \"same\" is already in use by a container: choose another --name, or remove it with rm")]
        );
    }
    assert_eq!(list_dir(&sandbox.data_root().join("containers")), ["same"]);
    quiet(ch, &sandbox, &["rm", "-f", "same"]).assert_ok();
}

// Claim 6: commit stores the container's symlinks as symlinks and follows
// none of them: no host data gets into the image.
pub fn commit_stores_symlinks_and_never_follows_them(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "links", "busybox", "sleep", "1000"],
    )
    .assert_ok();
    quiet(
        ch,
        &sandbox,
        &[
            "exec",
            "links",
            "sh",
            "-c",
            "ln -s /etc/shadow /x && ln -s / /r",
        ],
    )
    .assert_ok();
    let out_file = sandbox.path().join("links.tar.gz");
    let out = quiet(
        ch,
        &sandbox,
        &["export", "links", "--output", out_file.to_str().unwrap()],
    );
    out.assert_ok();
    // The same as a layer: the two links and nothing they point at.
    quiet(ch, &sandbox, &["commit", "links", "links-image"]).assert_ok();
    let layer = tar_entries(&stored_layers(&sandbox, "links-image:latest")[1]);
    assert_eq!(
        layer,
        [
            ("r".to_string(), Some("/".to_string())),
            ("x".to_string(), Some("/etc/shadow".to_string()))
        ]
    );
    let entries = tar_entries(&out_file);
    assert!(
        entries.contains(&("x".to_string(), Some("/etc/shadow".to_string()))),
        "no x symlink"
    );
    assert!(
        entries.contains(&("r".to_string(), Some("/".to_string()))),
        "no r symlink"
    );
    assert!(
        !entries
            .iter()
            .any(|(p, _)| p.starts_with("r/") || p == "etc/shadow"),
        "a symlink was followed"
    );
    // The image holds the busybox image and the two links: nothing more.
    let image_entries = {
        let mut archive = tar::Archive::new(fs::File::open(busybox_image()).unwrap());
        archive.entries().unwrap().count()
    };
    assert!(
        entries.len() <= image_entries + 8,
        "{} entries for a {image_entries}-entry image",
        entries.len()
    );
    let mut gz = Vec::new();
    fs::File::open(&out_file)
        .unwrap()
        .read_to_end(&mut gz)
        .unwrap();
    assert!(gz.starts_with(&[0x1f, 0x8b]));
    quiet(ch, &sandbox, &["rm", "-f", "links"]).assert_ok();
}

// Claim 7: exec into a stopped or unknown container fails clearly; exec's
// exit code is the command's.
pub fn claim_exec(ch: Chapter, who: Who) {
    let sandbox = sandbox(who);
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "live", "busybox", "sleep", "1000"],
    )
    .assert_ok();
    // In its pid namespace, PID 1 is the container's `sleep`, not the host's init.
    let script = "echo $(hostname) $(tr '\\0' ' ' < /proc/1/cmdline); exit 42";
    let out = quiet(ch, &sandbox, &["exec", "live", "sh", "-c", script]);
    assert_eq!(out.code, Some(42), "{out:#?}");
    assert_eq!(out.stdout, "live sleep 1000\n");

    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "gone", "busybox", "true"],
    )
    .assert_ok();
    // "exited (0)", not a moment's "exited (unknown)": the init is gone
    // before its monitor has recorded how it ended.
    assert!(eventually(Duration::from_secs(10), || ps_row(
        ch, &sandbox, "gone"
    )
    .is_some_and(|r| r.contains("exited (0)"))));
    let out = quiet(ch, &sandbox, &["exec", "gone", "true"]);
    assert_eq!(out.code, Some(125));
    assert_eq!(
        out.error_lines(),
        [
            ch.error_line(
                "container \"gone\" is not running (exited (0)): start a new one with run"
            )
        ]
    );
    let out = quiet(ch, &sandbox, &["exec", "nosuch", "true"]);
    assert_eq!(out.code, Some(125));
    assert_eq!(
        out.error_lines(),
        [ch.error_line("no such container \"nosuch\": see `ps -a` for the containers there are")]
    );
    quiet(ch, &sandbox, &["rm", "-f", "live", "gone"]).assert_ok();
}

// rm refuses a running container without -f, names unknown ones clearly,
// and rm -f cleans a half-created one. A name it refuses makes it exit 1,
// as Docker's rm does (the other names are still removed).
pub fn rm_refuses_running_and_cleans_half_created(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "busy", "busybox", "sleep", "1000"],
    )
    .assert_ok();
    let out = quiet(ch, &sandbox, &["rm", "busy"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.error_lines(),
        [ch.error_line("container \"busy\" is running: stop it first, or use rm -f")]
    );
    assert!(ps_row(ch, &sandbox, "busy").unwrap().contains("running"));

    let out = quiet(ch, &sandbox, &["rm", "nosuch"]);
    assert_eq!(out.code, Some(1));
    assert!(out.error_lines()[0].contains("no such container \"nosuch\""));

    // A container still being created (its record says so) is not removed without -f.
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "young", "busybox", "sleep", "1000"],
    )
    .assert_ok();
    quiet(ch, &sandbox, &["stop", "-t", "0", "young"]).assert_ok();
    let state_path = sandbox.data_root().join("containers/young/state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&fs::read(&state_path).unwrap()).unwrap();
    state["status"] = "created".into();
    fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    let out = quiet(ch, &sandbox, &["rm", "young"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.error_lines()[0].contains("still being created"),
        "{out:#?}"
    );
    quiet(ch, &sandbox, &["rm", "-f", "young"]).assert_ok();

    // A container with no state: one an older stepbox began (it made a
    // `lock` file) and whose run was killed before its state was written.
    let half = sandbox.data_root().join("containers/half");
    fs::create_dir_all(half.join("upper")).unwrap();
    fs::write(half.join("lock"), "").unwrap();
    chown_to_sandbox_user(&sandbox, &half);
    let out = quiet(ch, &sandbox, &["rm", "half"]);
    assert_eq!(out.code, Some(1));
    assert!(out.error_lines()[0].contains("half-created"), "{out:#?}");
    quiet(ch, &sandbox, &["rm", "-f", "half", "busy"]).assert_ok();
    assert_eq!(
        list_dir(&sandbox.data_root().join("containers")),
        Vec::<String>::new()
    );
}

// The monitor holds its container: killed, it takes the container with it
// (PR_SET_PDEATHSIG), and `ps -a` then shows an exit nobody recorded.
pub fn a_killed_monitor_takes_its_container_down(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "doomed", "busybox", "sleep", "1000"],
    )
    .assert_ok();
    let pids = recorded_pids(&sandbox, "doomed");
    let (init, monitor) = (pids[0], pids[1]);
    assert!(
        matches!(process_state(init), Some('S' | 'R')),
        "control: the container is not running"
    );
    // SAFETY: kill(2) on the monitor this test started.
    assert_eq!(unsafe { libc::kill(monitor, libc::SIGKILL) }, 0);
    assert!(
        wait_until_dead(init, Duration::from_secs(5)),
        "the container outlived its monitor"
    );
    assert!(
        eventually(Duration::from_secs(5), || ps_row(ch, &sandbox, "doomed")
            .is_some_and(|r| r.contains("exited (unknown)"))),
        "{:?}",
        ps_row(ch, &sandbox, "doomed")
    );
    quiet(ch, &sandbox, &["rm", "doomed"]).assert_ok();
}

// The same with `-u`: the kernel clears the death signal when the uid
// changes, so the child sets it again after the switch. Without that, a
// container run as another user outlived its killed monitor, orphaned.
pub fn a_killed_monitor_takes_down_a_container_run_as_another_user(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    if sandbox.rootless() {
        // One uid is mapped: there is no other user to switch to.
        return support::skip("needs root: -u 1000 in a user namespace that maps one uid");
    }
    quiet(
        ch,
        &sandbox,
        &[
            "run", "-d", "--name", "other", "-u", "1000", "busybox", "sleep", "1000",
        ],
    )
    .assert_ok();
    let pids = recorded_pids(&sandbox, "other");
    let (init, monitor) = (pids[0], pids[1]);
    assert!(
        matches!(process_state(init), Some('S' | 'R')),
        "control: the container is not running"
    );
    let uid = fs::read_to_string(format!("/proc/{init}/status"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|v| v.split_whitespace().next().unwrap().to_string())
        })
        .unwrap();
    assert_eq!(uid, "1000", "control: the container runs as uid 1000");
    // SAFETY: kill(2) on the monitor this test started.
    assert_eq!(unsafe { libc::kill(monitor, libc::SIGKILL) }, 0);
    assert!(
        wait_until_dead(init, Duration::from_secs(5)),
        "the container (uid 1000) outlived its monitor: no death signal after the user switch"
    );
    quiet(ch, &sandbox, &["rm", "-f", "other"]).assert_ok();
}

/// Field `n` (1-based) of /proc/PID/stat.
fn stat_field(pid: i32, n: usize) -> String {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(") ").unwrap().1;
    after_name.split(' ').nth(n - 3).unwrap().to_string()
}

// The monitor leads a session of its own, and the detached container holds
// exactly three files: /dev/null as stdin, its log as stdout and stderr.
pub fn a_detached_container_holds_only_dev_null_and_its_log(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "quiet", "busybox", "sleep", "1000"],
    )
    .assert_ok();
    let pids = recorded_pids(&sandbox, "quiet");
    let (init, monitor) = (pids[0], pids[1]);
    assert_eq!(
        stat_field(monitor, 6),
        monitor.to_string(),
        "the monitor is not a session leader"
    );
    assert_eq!(
        stat_field(init, 4),
        monitor.to_string(),
        "the monitor is not the container's parent"
    );
    assert_eq!(
        stat_field(init, 6),
        init.to_string(),
        "the container's init is not a session leader"
    );
    let log = sandbox.data_root().join("containers/quiet/container.log");
    let fds: Vec<(String, String)> = list_dir(Path::new(&format!("/proc/{init}/fd")))
        .into_iter()
        .map(|fd| {
            let target = fs::read_link(format!("/proc/{init}/fd/{fd}")).unwrap();
            (fd, target.display().to_string())
        })
        .collect();
    let log = log.display().to_string();
    assert_eq!(
        fds,
        [
            ("0".to_string(), "/dev/null".to_string()),
            ("1".to_string(), log.clone()),
            ("2".to_string(), log)
        ]
    );
    quiet(ch, &sandbox, &["rm", "-f", "quiet"]).assert_ok();
}

/// The flock(2) locks /proc/locks lists on the file `path`: (kind, pid).
fn locks_on(path: &Path) -> Vec<(String, i32)> {
    use std::os::unix::fs::MetadataExt;
    let ino = format!(":{}", fs::metadata(path).unwrap().ino());
    fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .filter_map(|line| {
            // "1: FLOCK  ADVISORY  READ  1234 fe:00:56789 0 EOF"
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(1) != Some(&"FLOCK") || !fields.get(5)?.ends_with(&ino) {
                return None;
            }
            Some((fields[3].to_string(), fields[4].parse().ok()?))
        })
        .collect()
}

// The monitor holds a shared lock on its container's log while the
// container runs, and lets it go once the container has ended: rm -f looks
// through every process for a monitor its state.json does not name only
// while that lock is held.
pub fn the_monitor_locks_the_log_while_its_container_runs(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "held", "busybox", "sleep", "1000"],
    )
    .assert_ok();
    let monitor = recorded_pids(&sandbox, "held")[1];
    let log = sandbox.data_root().join("containers/held/container.log");
    assert_eq!(locks_on(&log), [("READ".to_string(), monitor)]);
    quiet(ch, &sandbox, &["stop", "-t", "0", "held"]).assert_ok();
    assert!(
        eventually(Duration::from_secs(10), || locks_on(&log).is_empty()),
        "the log is still locked after stop: {:?}",
        locks_on(&log)
    );
    quiet(ch, &sandbox, &["rm", "held"]).assert_ok();
}

// A container whose command cannot start is removed, with the volume
// directories its run created.
pub fn a_container_that_cannot_start_leaves_nothing_behind(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    let new = sandbox.path().join("new");
    let volume = format!("{}:/data", new.join("deep").display());
    let out = quiet(
        ch,
        &sandbox,
        &[
            "run",
            "-d",
            "--name",
            "broken",
            "-v",
            &volume,
            "busybox",
            "nosuchcmd",
        ],
    );
    assert_eq!(out.code, Some(127), "{out:#?}");
    assert!(
        out.error_lines()[0]
            .starts_with(&ch.error_line("execvp(\"nosuchcmd\"): No such file or directory")),
        "{out:#?}"
    );
    assert!(
        !sandbox.data_root().join("containers/broken").exists(),
        "the container stayed"
    );
    assert!(!new.exists(), "the volume directory run made stayed");
}

// run -d --rm: the monitor removes the container when it ends.
pub fn run_d_rm_removes_the_container_when_it_ends(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--rm", "--name", "brief", "busybox", "true"],
    )
    .assert_ok();
    let dir = sandbox.data_root().join("containers/brief");
    assert!(
        eventually(Duration::from_secs(10), || !dir.exists()),
        "the container is still there"
    );
}

// Without --name, a Docker-style name (adjective_scientist) is made.
pub fn without_a_name_run_generates_one(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    let out = quiet(ch, &sandbox, &["run", "-d", "busybox", "sleep", "1000"]);
    out.assert_ok();
    let name = out.stdout.trim().to_string();
    let parts: Vec<&str> = name.split('_').collect();
    assert!(
        parts.len() == 2
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase())),
        "{name:?}"
    );
    assert!(ps_row(ch, &sandbox, &name).is_some_and(|r| r.contains("running")));
    quiet(ch, &sandbox, &["rm", "-f", &name]).assert_ok();
}

// exec's command is the first new process in the container's pid namespace.
pub fn exec_runs_inside_the_containers_pid_namespace(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "ns", "busybox", "sleep", "1000"],
    )
    .assert_ok();
    let out = quiet(
        ch,
        &sandbox,
        &[
            "exec",
            "ns",
            "sh",
            "-c",
            "echo $$; ls /proc | grep -c '^[0-9]'",
        ],
    );
    out.assert_ok();
    // pid 2; and /proc lists sleep, sh, ls, and grep unless ls read /proc
    // before the shell had started it: nothing of the host.
    assert!(
        out.stdout == "2\n4\n" || out.stdout == "2\n3\n",
        "{:?}",
        out.stdout
    );
    quiet(ch, &sandbox, &["rm", "-f", "ns"]).assert_ok();
}

// -i and -t are accepted and change nothing: no pty, the caller's stdin as it is.
pub fn without_a_terminal_dash_i_t_make_no_pty(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "term", "busybox", "sleep", "1000"],
    )
    .assert_ok();
    let input = sandbox.path().join("input");
    fs::write(&input, "typed\n").unwrap();
    let mut command = sandbox.command(
        ch.bin,
        &["-q", "exec", "-it", "term", "sh", "-c", "cat; tty"],
    );
    command.stdin(fs::File::open(&input).unwrap());
    let out = support::run(command);
    assert_eq!(out.code, Some(1), "{out:#?}"); // tty's exit code: not a terminal
    assert_eq!(out.stdout, "typed\nnot a tty\n");
    quiet(ch, &sandbox, &["rm", "-f", "term"]).assert_ok();
}

// Commit keeps hard links, skips device nodes with a message, leaves out
// what the container deleted, and never replaces an image or takes a path
// for a name.
pub fn commit_keeps_hard_links_skips_devices_and_deleted_files(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "box", "busybox", "sleep", "1000"],
    )
    .assert_ok();
    let script = "echo one > /root/a; ln /root/a /root/b; mknod /root/null2 c 1 3; rm /etc/group";
    quiet(ch, &sandbox, &["exec", "box", "sh", "-c", script]).assert_ok();
    let out = quiet(ch, &sandbox, &["commit", "box", "boxed"]);
    out.assert_ok();
    assert_eq!(
        out.error_lines(),
        [ch.error_line("not committed (a device node or socket): /root/null2")]
    );
    let layer = tar_headers(&stored_layers(&sandbox, "boxed:latest")[1]);
    let b = layer
        .iter()
        .find(|m| m.name == "root/b")
        .map(|m| (m.kind, m.link.clone()));
    assert_eq!(b, Some((tar::EntryType::Link, Some("root/a".to_string()))));
    let names: Vec<&str> = layer.iter().map(|m| m.name.as_str()).collect();
    assert!(names.contains(&"root/a"));
    assert!(
        !names.contains(&"root/null2"),
        "a device node was committed"
    );
    // What the container deleted is a whiteout in its layer.
    assert!(names.contains(&"etc/.wh.group"), "{names:?}");
    assert!(
        !names.contains(&"etc/group") && !names.contains(&"etc/passwd"),
        "the layer holds what was deleted or never changed: {names:?}"
    );
    let out = quiet(ch, &sandbox, &["run", "--rm", "boxed", "cat", "/etc/group"]);
    assert_eq!(out.code, Some(1), "{out:#?}");

    // Committing again under the same name moves the name, as Docker does:
    // the first image stays, nameless.
    let first = stored_manifest(&sandbox, "boxed:latest");
    quiet(ch, &sandbox, &["exec", "box", "touch", "/root/c"]).assert_ok();
    quiet(ch, &sandbox, &["commit", "box", "boxed"]).assert_ok();
    assert_ne!(stored_manifest(&sandbox, "boxed:latest"), first);
    let images = quiet(ch, &sandbox, &["images"]);
    assert_eq!(
        images
            .stdout
            .lines()
            .filter(|l| l.starts_with("<none>"))
            .count(),
        1,
        "{images:#?}"
    );
    let out = quiet(ch, &sandbox, &["commit", "box", "/tmp/evil"]);
    assert_eq!(out.code, Some(125));
    assert!(
        out.error_lines()[0].starts_with(&ch.error_line("invalid image reference \"/tmp/evil\"")),
        "{out:#?}"
    );
    assert!(!Path::new("/tmp/evil").exists() && !Path::new("/tmp/evil.tar.gz").exists());
    // An exited container commits too.
    quiet(ch, &sandbox, &["stop", "-t", "0", "box"]).assert_ok();
    assert!(ps_row(ch, &sandbox, "box").unwrap().contains("exited"));
    quiet(ch, &sandbox, &["commit", "box", "boxed-after"]).assert_ok();
    assert_eq!(stored_layers(&sandbox, "boxed-after:latest").len(), 2);
    quiet(ch, &sandbox, &["rm", "box"]).assert_ok();
}

// Commands that change a container take its lock first: rm waits while
// another holder has it.
pub fn rm_waits_for_the_containers_lock(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "held", "busybox", "true"],
    )
    .assert_ok();
    let dir = sandbox.data_root().join("containers/held");
    assert!(eventually(Duration::from_secs(10), || ps_row(
        ch, &sandbox, "held"
    )
    .is_some_and(|r| r.contains("exited"))));
    // The lock is flock(2) on the container's directory.
    let lock = fs::File::open(&dir).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) on a file this test opened.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let mut rm = sandbox.spawn(ch.bin, &["-q", "rm", "held"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(dir.exists(), "rm went ahead while the lock was held");
    drop(lock);
    assert!(rm.wait().success());
    assert!(!dir.exists());
}

// A foreground run keeps its record until rm.
pub fn a_foreground_run_keeps_its_record_until_rm(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    let out = quiet(
        ch,
        &sandbox,
        &["run", "--name", "fg", "busybox", "sh", "-c", "exit 5"],
    );
    assert_eq!(out.code, Some(5), "{out:#?}");
    assert!(ps_row(ch, &sandbox, "fg").is_some_and(|r| r.contains("exited (5)")));
    quiet(ch, &sandbox, &["rm", "fg"]).assert_ok();
    assert_eq!(
        list_dir(&sandbox.data_root().join("containers")),
        Vec::<String>::new()
    );
}

// stop: a program with a SIGTERM handler (busybox top) ends at once, 128 + 15.
pub fn stop_ends_top_at_once_with_143(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "topper", "busybox", "top"],
    )
    .assert_ok();
    // Let top install its handlers before the signal comes.
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let out = sandbox.run(ch.bin, &["stop", "topper"]);
    out.assert_ok();
    let took = started.elapsed();
    assert!(!out.stderr.contains("SIGKILL"), "{}", out.stderr);
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    let row = ps_row(ch, &sandbox, "topper").unwrap();
    assert!(row.contains("exited (143)"), "{row}");
    quiet(ch, &sandbox, &["rm", "topper"]).assert_ok();
}

/// Assert that `ps` printed its columns as `docker ps` does: each as wide
/// as its widest cell (the header's included), two spaces between, PID
/// right-aligned. Returns the rows, split into their cells.
pub fn assert_ps_columns_fit(stdout: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = stdout.lines().collect();
    let header = lines[0];
    let at = |word: &str| {
        header
            .find(word)
            .unwrap_or_else(|| panic!("no {word} in {header:?}"))
    };
    // Where each left-aligned column starts (NAME and PID share the span
    // from NAME's start to PID's end, PID being right-aligned).
    let (name, pid_end) = (at("NAME"), at("PID") + 3);
    let starts = [0, name, at("STATUS"), at("COMMAND"), at("CREATED")];
    assert_eq!(starts[2], pid_end + 2, "{stdout}");
    let mut rows = Vec::new();
    for line in &lines {
        let span = |from: usize, to: Option<usize>| -> &str {
            line.get(from..to.map_or(line.len(), |t| t.min(line.len())))
                .unwrap_or_else(|| panic!("a short line: {line:?} in\n{stdout}"))
        };
        for start in &starts[1..] {
            assert_eq!(
                line.get(start - 2..*start),
                Some("  "),
                "a column does not start where its header does:\n{stdout}"
            );
        }
        let name_and_pid: Vec<&str> = span(name, Some(pid_end)).split_whitespace().collect();
        assert_eq!(name_and_pid.len(), 2, "NAME then PID: {line:?}");
        assert!(
            !span(name, None).starts_with(' ') && !span(name, Some(pid_end)).ends_with(' '),
            "NAME starts its column, PID ends its one: {line:?}"
        );
        let mut cells = vec![span(0, Some(name - 2)).trim().to_string()];
        cells.extend(name_and_pid.iter().map(|c| c.to_string()));
        for (i, start) in starts[2..].iter().enumerate() {
            let end = starts.get(i + 3).map(|next| next - 2);
            let cell = span(*start, end);
            assert!(!cell.starts_with(' '), "left-aligned: {line:?}");
            cells.push(cell.trim().to_string());
        }
        rows.push(cells);
    }
    // As wide as the widest cell, no wider.
    let widest = |column: usize| {
        rows.iter()
            .map(|r: &Vec<String>| r[column].chars().count())
            .max()
            .unwrap()
    };
    assert_eq!(name - 2, widest(0), "ID:\n{stdout}");
    assert_eq!(
        pid_end - name,
        widest(1) + 2 + widest(2),
        "NAME, PID:\n{stdout}"
    );
    for column in 3..5 {
        assert_eq!(
            starts[column] - 2 - starts[column - 1],
            widest(column),
            "column {column}:\n{stdout}"
        );
    }
    rows
}

// ps's columns fit their widest cells: a long name, a running and an
// exited container (statuses of different widths) line up under their
// headers, and nothing is cut.
pub fn ps_columns_fit_their_widest_value(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    let long = "a-container-with-a-rather-long-name";
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", long, "busybox", "sleep", "1000"],
    )
    .assert_ok();
    quiet(
        ch,
        &sandbox,
        &["run", "--name", "x", "busybox", "sh", "-c", "exit 3"],
    );
    let out = quiet(ch, &sandbox, &["ps", "-a"]);
    out.assert_ok();
    let rows = assert_ps_columns_fit(&out.stdout);
    assert_eq!(rows.len(), 3, "{}", out.stdout);
    assert_eq!(rows[1][1], long);
    assert_eq!(rows[1][3], "running");
    assert_eq!(rows[2][1], "x");
    assert_eq!(rows[2][3], "exited (3)");
    assert_eq!(rows[2][4], "sh -c exit 3");
    quiet(ch, &sandbox, &["rm", "-f", long, "x"]).assert_ok();
}

// A state.json is read back only if its id is one stepbox makes (12
// lowercase hex digits): a forged `../victim`, which would name a path
// outside (a cgroup's, among others), makes rm, exec and inspect refuse
// with one line naming the file, ps -a show the container as damaged, and
// rm -f remove the container's own directory and nothing else.
pub fn a_forged_id_in_state_json_is_refused(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    let victim = sandbox.data_root().join("victim");
    fs::create_dir_all(&victim).unwrap();
    fs::write(victim.join("keep"), "keep").unwrap();
    quiet(
        ch,
        &sandbox,
        &["run", "-d", "--name", "forged", "busybox", "sleep", "1000"],
    )
    .assert_ok();
    let init = recorded_pids(&sandbox, "forged")[0];
    let state_path = sandbox.data_root().join("containers/forged/state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&fs::read(&state_path).unwrap()).unwrap();
    state["id"] = "../victim".into();
    fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    let damaged = format!(
        "{} is damaged (its id \"../victim\" is not 12 lowercase hex digits): remove the container with rm -f",
        state_path.display()
    );
    for (verb, code) in [
        (&["exec", "forged", "true"][..], 125),
        (&["inspect", "forged"][..], 125),
        (&["rm", "forged"][..], 1),
    ] {
        let out = quiet(ch, &sandbox, verb);
        assert_eq!(out.code, Some(code), "{verb:?}: {out:#?}");
        let errors = out.error_lines();
        assert_eq!(errors.len(), 1, "{verb:?}: one line: {out:#?}");
        assert!(errors[0].contains(&damaged), "{verb:?}: {errors:?}");
    }
    let row = ps_row(ch, &sandbox, "forged").unwrap();
    assert!(row.contains("damaged"), "{row}");
    quiet(ch, &sandbox, &["rm", "-f", "forged"]).assert_ok();
    // Its state unreadable, the container was found from its monitor (which
    // holds the log and its lock) and killed, not left running.
    assert!(
        wait_until_dead(init, Duration::from_secs(10)),
        "rm -f left the init {init} of a container with a damaged state.json running"
    );
    assert!(list_dir(&sandbox.data_root().join("containers")).is_empty());
    assert_eq!(fs::read_to_string(victim.join("keep")).unwrap(), "keep");
    assert_eq!(list_dir(&victim), ["keep"]);
}

/// A process that has been killed, as a state's record of it: its pid and
/// the start time it had.
fn a_killed_process() -> serde_json::Value {
    let mut child = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let start: u64 = stat_field(pid, 22).parse().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    serde_json::json!({ "pid": pid, "start_time": start })
}

// A `run` killed while it creates a container leaves it `created`: plain
// rm refuses it while its creator (the run, then its monitor) lives, and
// removes it once that process is gone.
pub fn rm_removes_a_created_container_whose_creator_is_gone(ch: Chapter) {
    let sandbox = sandbox(Who::Caller);
    quiet(ch, &sandbox, &["run", "--name", "stuck", "busybox", "true"]).assert_ok();
    let state_path = sandbox.data_root().join("containers/stuck/state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&fs::read(&state_path).unwrap()).unwrap();
    state["status"] = "created".into();
    for key in ["pid", "pid_start_time", "exit_code", "finished"] {
        state[key] = serde_json::Value::Null;
    }
    // Its creator alive: this test's own process, as a run would be.
    let me = std::process::id() as i32;
    state["creator"] = serde_json::json!({
        "pid": me,
        "start_time": stat_field(me, 22).parse::<u64>().unwrap(),
    });
    fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    let out = quiet(ch, &sandbox, &["rm", "stuck"]);
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert_eq!(
        out.error_lines(),
        [ch.error_line("container \"stuck\" is still being created: wait for it, or use rm -f")]
    );
    // Its creator killed (kill -9 of the run: it never got to start it).
    state["creator"] = a_killed_process();
    fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    let out = quiet(ch, &sandbox, &["rm", "stuck"]);
    out.assert_ok();
    assert_eq!(out.stdout, "stuck\n");
    assert!(list_dir(&sandbox.data_root().join("containers")).is_empty());
}
