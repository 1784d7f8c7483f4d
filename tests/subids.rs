//! Rootless with subordinate ids (issue 12, item 7): when /etc/subuid and
//! /etc/subgid give the caller a range and newuidmap/newgidmap exist, the
//! container maps 0 to the caller and 1..65535 to the range, so owners in
//! an image are kept and `chown` works inside; otherwise one uid, and the
//! narration says why and how to get a range. Root runs are unchanged.
//!
//! The suite runs as root; the rootless runs are the test uid
//! (`support::unprivileged_id()`), which has no /etc/passwd entry and no
//! range on this machine. newuidmap looks the caller up in /etc/passwd and
//! its range in /etc/subuid, and the host's /etc is never touched: so a
//! range run happens in a private mount namespace, made by the root harness
//! just before it becomes the test uid, with /etc/passwd, /etc/subuid and
//! /etc/subgid bind-mounted from files that give the test uid a name and
//! the range 200000:65536. The namespace goes away with the run.

mod support;

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{Outcome, Sandbox, Who};

const CH1: &str = env!("CARGO_BIN_EXE_ch1-mount-ns");
const CH3: &str = env!("CARGO_BIN_EXE_ch3-overlay");
const CH5: &str = env!("CARGO_BIN_EXE_ch5-commit");

/// The range the private /etc gives the test uid.
const START: u32 = 200000;
const NAME: &str = "stepbox-subids";
const REASON: &str = "/* one uid only: no range for you in /etc/subuid or /etc/subgid";

/// The range tests need root (to build the private /etc) and the uidmap
/// package: without it they fail, naming the install line.
fn range_tests_can_run() -> bool {
    if !support::suite_is_root() {
        support::skip("a private /etc for the test uid needs root");
        return false;
    }
    for helper in ["/usr/bin/newuidmap", "/usr/bin/newgidmap"] {
        assert!(
            Path::new(helper).is_file(),
            "{helper} is missing: install it with `sudo apt-get install uidmap` \
             (scripts/test.sh does)"
        );
    }
    true
}

/// Files in the sandbox to bind over /etc: the host's passwd plus the test
/// uid as `stepbox-subids`, and its range in subuid and subgid.
fn ranged_etc(sandbox: &Sandbox, id: u32) -> Vec<(PathBuf, &'static str)> {
    ranged_etc_of(sandbox, id, 65536)
}

/// The same, with a range of `count` ids.
fn ranged_etc_of(sandbox: &Sandbox, id: u32, count: u32) -> Vec<(PathBuf, &'static str)> {
    let dir = sandbox.path().join("etc");
    fs::create_dir_all(&dir).unwrap();
    let mut passwd = fs::read_to_string("/etc/passwd").unwrap();
    passwd.push_str(&format!("{NAME}:x:{id}:{id}::/nonexistent:/bin/sh\n"));
    let range = format!("{NAME}:{START}:{count}\n");
    let mut binds = Vec::new();
    for (file, text) in [
        ("passwd", passwd),
        ("subuid", range.clone()),
        ("subgid", range),
    ] {
        let path = dir.join(file);
        fs::write(&path, text).unwrap();
        binds.push((path, leak(format!("/etc/{file}"))));
    }
    binds
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// A file to bind over a helper to hide it: a regular file, not executable.
fn hidden_helper(sandbox: &Sandbox) -> PathBuf {
    let path = sandbox.path().join("not-newuidmap");
    fs::write(&path, "").unwrap();
    path
}

/// Chapter `bin` with `args`, as the test uid, in a private mount namespace
/// where each `(file, target)` of `binds` is bind-mounted over `target`.
fn command_with_binds(
    sandbox: &Sandbox,
    bin: &str,
    args: &[&str],
    binds: &[(PathBuf, &str)],
) -> Command {
    let id = support::unprivileged_id();
    // The sandbox's own command (its copy of the binary, its environment),
    // rebuilt without its uid switch: std switches uid before pre_exec
    // hooks run, and the mounts need root.
    let template = sandbox.command(bin, args);
    let mut command = Command::new(template.get_program());
    command.args(template.get_args());
    for (name, value) in template.get_envs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command
        .current_dir(template.get_current_dir().unwrap())
        .stdin(Stdio::null())
        .process_group(0);
    let c = |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let binds: Vec<(CString, CString)> = binds
        .iter()
        .map(|(from, to)| (c(from), c(Path::new(to))))
        .collect();
    let root = c(Path::new("/"));
    // SAFETY: between fork and exec only raw system calls are made, on
    // strings prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            let check = |rc: libc::c_int| {
                if rc == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            for (from, to) in &binds {
                check(libc::mount(
                    from.as_ptr(),
                    to.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ))?;
            }
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setgid(id))?;
            check(libc::setuid(id))
        });
    }
    command
}

/// A sandbox of the test uid with busybox.
fn rootless_sandbox() -> Sandbox {
    let sandbox = Sandbox::new(Who::Unprivileged);
    sandbox.with_busybox();
    sandbox
}

fn with_range(sandbox: &Sandbox, bin: &str, args: &[&str]) -> Outcome {
    let binds = ranged_etc(sandbox, support::unprivileged_id());
    support::run(command_with_binds(sandbox, bin, args, &binds))
}

/// busybox plus `/owned`, a file of uid 1000 and gid 1000, and `/owned-dir`,
/// a directory of 1000:1000 with a file of 1001:1002 in it.
fn image_with_owners(sandbox: &Sandbox) -> PathBuf {
    let mut out = tar::Builder::new(Vec::new());
    let bytes = fs::read(support::busybox_image()).unwrap();
    let mut reader = tar::Archive::new(&bytes[..]);
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        out.append(&header, &data[..]).unwrap();
    }
    for (name, kind, uid, gid) in [
        ("owned", tar::EntryType::Regular, 1000, 1000),
        ("owned-dir", tar::EntryType::Directory, 1000, 1000),
        ("owned-dir/inner", tar::EntryType::Regular, 1001, 1002),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(if kind.is_dir() { 0o755 } else { 0o640 });
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(1_700_000_000);
        header.set_size(0);
        out.append_data(&mut header, name, &[][..]).unwrap();
    }
    let path = sandbox.path().join("owners.tar");
    fs::write(&path, out.into_inner().unwrap()).unwrap();
    support::chown_to_sandbox_user(sandbox, &path);
    path
}

const SHOW_OWNERS: &str = "stat -c '%u:%g %n' /owned /owned-dir /owned-dir/inner";
const OWNERS: &str = "1000:1000 /owned\n1000:1000 /owned-dir\n1001:1002 /owned-dir/inner\n";

#[test]
fn with_a_range_the_container_maps_0_to_the_caller_and_65535_ids_to_the_range() {
    if !range_tests_can_run() {
        return;
    }
    let sandbox = rootless_sandbox();
    let id = support::unprivileged_id();
    let out = with_range(
        &sandbox,
        CH1,
        &[
            "--",
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map",
        ],
    );
    out.assert_ok();
    let lines: Vec<Vec<String>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    let expected: Vec<Vec<String>> = [
        format!("0 {id} 1"),
        format!("1 {START} 65535"),
        format!("0 {id} 1"),
        format!("1 {START} 65535"),
    ]
    .iter()
    .map(|l| l.split(' ').map(str::to_string).collect())
    .collect();
    assert_eq!(lines, expected, "{out:#?}");
    // The helpers are narrated as the parent's steps; no reason line, and
    // setgroups is left allowed.
    assert!(
        out.stderr
            .contains("[parent] execve(\"/usr/bin/newuidmap\", [\"newuidmap\""),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("one uid only"), "{}", out.stderr);
    assert!(!out.stderr.contains("setgroups"), "{}", out.stderr);
}

#[test]
fn with_a_range_setgroups_stays_allowed_inside() {
    if !range_tests_can_run() {
        return;
    }
    let sandbox = rootless_sandbox();
    let out = with_range(&sandbox, CH1, &["-q", "--", "cat", "/proc/self/setgroups"]);
    out.assert_ok();
    assert_eq!(out.stdout, "allow\n", "{out:#?}");
}

fn claim_image_owners_are_kept_inside(bin: &str, run: &[&str]) {
    if !range_tests_can_run() {
        return;
    }
    let sandbox = rootless_sandbox();
    let image = image_with_owners(&sandbox);
    let image = image.to_str().unwrap();
    let mut args: Vec<&str> = vec!["-q"];
    args.extend(run.iter().map(|a| if *a == "IMAGE" { image } else { a }));
    args.extend(["sh", "-c", SHOW_OWNERS]);
    let out = with_range(&sandbox, bin, &args);
    out.assert_ok();
    assert_eq!(out.stdout, OWNERS, "{out:#?}");
    // On the host the layer's file belongs to the range: 1000 is START+999.
    let layers = support::list_dir(&sandbox.data_root());
    let ranged: Vec<&String> = layers.iter().filter(|d| d.starts_with("layers-")).collect();
    assert_eq!(ranged.len(), 1, "{layers:?}");
    let dir = sandbox.data_root().join(ranged[0]);
    let layer = dir.join(&support::list_dir(&dir)[0]);
    let meta = fs::metadata(layer.join("owned")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (START + 999, START + 999));
    let meta = fs::metadata(layer.join("owned-dir/inner")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (START + 1000, START + 1001));
}

#[test]
fn with_a_range_image_owners_are_kept_inside_ch3() {
    claim_image_owners_are_kept_inside(CH3, &["--image", "IMAGE", "--"]);
}

#[test]
fn with_a_range_image_owners_are_kept_inside_ch5() {
    claim_image_owners_are_kept_inside(CH5, &["run", "IMAGE"]);
}

#[test]
fn with_a_range_chown_works_inside_and_lands_in_the_range_on_the_host() {
    if !range_tests_can_run() {
        return;
    }
    let sandbox = rootless_sandbox();
    let out = with_range(
        &sandbox,
        CH5,
        &[
            "-q",
            "run",
            "-d",
            "--name",
            "owners",
            "busybox",
            "sh",
            "-c",
            "echo x > /x && chown 1234:1235 /x && touch /ready && exec sleep 1000",
        ],
    );
    out.assert_ok();
    let upper = sandbox.data_root().join("containers/owners/upper");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !upper.join("ready").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the container never got ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let meta = fs::metadata(upper.join("x")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (START + 1233, START + 1234));
    let out = with_range(
        &sandbox,
        CH5,
        &["-q", "exec", "owners", "stat", "-c", "%u:%g", "/x"],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "1234:1235\n", "{out:#?}");
    with_range(&sandbox, CH5, &["-q", "rm", "-f", "owners"]).assert_ok();
}

#[test]
fn layers_unpacked_under_a_range_are_kept_apart_from_single_uid_layers() {
    if !range_tests_can_run() {
        return;
    }
    let sandbox = rootless_sandbox();
    let image = image_with_owners(&sandbox);
    let args = [
        "-q",
        "--image",
        image.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        SHOW_OWNERS,
    ];
    with_range(&sandbox, CH3, &args).assert_ok();
    // The same data root, without the range: one uid, every owner 0, from
    // layers of its own (not the range's, whose owners it cannot map).
    let out = sandbox.run(CH3, &args);
    out.assert_ok();
    assert_eq!(
        out.stdout, "0:0 /owned\n0:0 /owned-dir\n0:0 /owned-dir/inner\n",
        "{out:#?}"
    );
    let dirs = support::list_dir(&sandbox.data_root());
    assert!(dirs.contains(&"layers".to_string()), "{dirs:?}");
    assert_eq!(dirs.iter().filter(|d| d.starts_with("layers-")).count(), 1);
    // And the range's layers are still there, and used again.
    let out = with_range(&sandbox, CH3, &args);
    assert_eq!(out.stdout, OWNERS, "{out:#?}");
}

#[test]
fn without_a_range_the_single_map_is_used_and_the_reason_narrated() {
    let sandbox = rootless_sandbox();
    if !sandbox.rootless() {
        return;
    }
    let out = sandbox.run(CH1, &["--", "cat", "/proc/self/uid_map"]);
    out.assert_ok();
    let id = support::sandbox_uid(&sandbox).unwrap_or_else(|| nix::unistd::geteuid().as_raw());
    let map: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(map, ["0", &id.to_string(), "1"], "{out:#?}");
    let reason: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("one uid only"))
        .collect();
    assert_eq!(reason.len(), 1, "{}", out.stderr);
    assert!(
        reason[0].starts_with("[parent] write(\"/proc/"),
        "{}",
        reason[0]
    );
    assert!(reason[0].contains(REASON), "{}", reason[0]);
    assert!(
        reason[0]
            .contains("sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER"),
        "{}",
        reason[0]
    );
    assert!(out.stderr.contains("write(\"/proc/"), "{}", out.stderr);
    // -q silences it with the rest of the narration.
    let out = sandbox.run(CH1, &["-q", "--", "true"]);
    out.assert_ok();
    assert_eq!(out.stderr, "", "{out:#?}");
}

#[test]
fn without_newuidmap_the_single_map_is_used_and_the_reason_names_uidmap() {
    if !range_tests_can_run() {
        return;
    }
    let sandbox = rootless_sandbox();
    let mut binds = ranged_etc(&sandbox, support::unprivileged_id());
    binds.push((hidden_helper(&sandbox), "/usr/bin/newuidmap"));
    let out = support::run(command_with_binds(
        &sandbox,
        CH1,
        &["--", "cat", "/proc/self/uid_map"],
        &binds,
    ));
    out.assert_ok();
    assert_eq!(out.stdout.lines().count(), 1, "{out:#?}");
    let reason: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("one uid only"))
        .collect();
    assert_eq!(reason.len(), 1, "{}", out.stderr);
    assert!(
        reason[0].contains("no /usr/bin/newuidmap (sudo apt-get install uidmap)"),
        "{}",
        reason[0]
    );
}

#[test]
fn root_runs_are_unchanged() {
    let sandbox = Sandbox::new(Who::Caller);
    sandbox.with_busybox();
    if sandbox.rootless() {
        return;
    }
    let out = sandbox.run(CH1, &["--", "cat", "/proc/self/uid_map"]);
    out.assert_ok();
    let map: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(map, ["0", "0", "4294967295"]);
    for absent in ["write(\"/proc/", "newuidmap", "one uid only"] {
        assert!(!out.stderr.contains(absent), "{absent}: {}", out.stderr);
    }
    // Root keeps an image's owners as it always did, in layers/.
    let image = image_with_owners(&sandbox);
    let out = sandbox.run(
        CH3,
        &[
            "-q",
            "--image",
            image.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            SHOW_OWNERS,
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, OWNERS, "{out:#?}");
    let dirs = support::list_dir(&sandbox.data_root());
    assert!(!dirs.iter().any(|d| d.starts_with("layers-")), "{dirs:?}");
}

/// The doctor's `id map` line.
fn id_map_line(out: &Outcome) -> String {
    out.stdout
        .lines()
        .find(|l| l.contains("  id map: "))
        .unwrap_or_else(|| panic!("no id map line in:\n{}", out.stdout))
        .to_string()
}

#[test]
fn the_doctor_says_which_map_a_run_will_use() {
    if !range_tests_can_run() {
        return;
    }
    let sandbox = rootless_sandbox();
    let id = support::unprivileged_id();
    let out = with_range(&sandbox, CH3, &["--doctor"]);
    assert_eq!(out.code, Some(0), "{out:#?}");
    let line = id_map_line(&out);
    assert!(
        line.contains(&format!(
            "map 0 to uid {id} and 1-65535 to {START}-{}",
            START + 65534
        )),
        "{line}"
    );
    let subids = out
        .stdout
        .lines()
        .find(|l| l.contains("subordinate ids: "))
        .unwrap();
    assert!(subids.starts_with("ok"), "{subids}");
    // Without a range: one uid, and the same reason the chapters narrate.
    let out = sandbox.run(CH3, &["--doctor"]);
    let line = id_map_line(&out);
    assert!(
        line.contains(&format!("map one uid, 0 to uid {id}")),
        "{line}"
    );
    assert!(
        line.contains("no range for you in /etc/subuid or /etc/subgid"),
        "{line}"
    );
    // And faked through STEPBOX_DOCTOR_ETC, as the doctor's other checks are.
    let etc = sandbox.path().join("fake-etc");
    fs::create_dir_all(&etc).unwrap();
    let passwd = format!("{NAME}:x:{id}:{id}::/:/bin/sh\n");
    fs::write(etc.join("passwd"), passwd).unwrap();
    fs::write(etc.join("subuid"), format!("{id}:300000:70000\n")).unwrap();
    fs::write(etc.join("subgid"), format!("{NAME}:400000:65536\n")).unwrap();
    let mut command = sandbox.command(CH3, &["--doctor"]);
    command.env("STEPBOX_DOCTOR_ETC", &etc);
    let line = id_map_line(&support::run(command));
    assert!(
        line.contains("1-65535 to 300000-365534 (gid") && line.contains("400000-465534"),
        "{line}"
    );
}

const GIVE_AWAY: &str = "mkdir -p /given/away && echo x > /given/away/f && chmod 700 /given/away \
                         && chown -R 1234:1234 /given";

fn claim_a_run_leaves_nothing_behind_even_files_it_gave_away(bin: &str, run: &[&str]) {
    if !range_tests_can_run() {
        return;
    }
    let sandbox = rootless_sandbox();
    let mut args = vec!["-q"];
    args.extend_from_slice(run);
    args.extend(["sh", "-c", GIVE_AWAY]);
    with_range(&sandbox, bin, &args).assert_ok();
    assert_eq!(
        support::list_dir(&sandbox.data_root().join("containers")),
        Vec::<String>::new()
    );
}

#[test]
fn with_a_range_a_run_leaves_nothing_behind_even_files_it_gave_away_ch3() {
    claim_a_run_leaves_nothing_behind_even_files_it_gave_away(CH3, &["--"]);
}

/// Start ch5 container `gives` under a range, its files given to other ids
/// of the range, and wait until it is ready (/ready in its upper dir).
fn start_giving_container(sandbox: &Sandbox) {
    let script = format!("{GIVE_AWAY} && touch /ready && exec sleep 1000");
    let args = [
        "-q", "run", "-d", "--name", "gives", "busybox", "sh", "-c", &script,
    ];
    with_range(sandbox, CH5, &args).assert_ok();
    let upper = sandbox.data_root().join("containers/gives/upper");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !upper.join("ready").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the container never got ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn with_a_range_rm_removes_files_the_container_gave_away_ch5() {
    if !range_tests_can_run() {
        return;
    }
    let sandbox = rootless_sandbox();
    start_giving_container(&sandbox);
    with_range(&sandbox, CH5, &["-q", "rm", "-f", "gives"]).assert_ok();
    assert_eq!(
        support::list_dir(&sandbox.data_root().join("containers")),
        Vec::<String>::new()
    );
}

#[test]
fn with_a_range_commit_keeps_the_owners_the_container_gave() {
    if !range_tests_can_run() {
        return;
    }
    let sandbox = rootless_sandbox();
    start_giving_container(&sandbox);
    with_range(&sandbox, CH5, &["-q", "commit", "gives", "given"]).assert_ok();
    with_range(&sandbox, CH5, &["-q", "rm", "-f", "gives"]).assert_ok();
    let out = with_range(
        &sandbox,
        CH5,
        &[
            "-q",
            "run",
            "given",
            "stat",
            "-c",
            "%u:%g %a %n",
            "/given/away",
            "/given/away/f",
        ],
    );
    out.assert_ok();
    assert_eq!(
        out.stdout, "1234:1234 700 /given/away\n1234:1234 644 /given/away/f\n",
        "{out:#?}"
    );
}

#[test]
fn with_a_small_range_the_map_holds_what_it_has_and_an_owner_beyond_it_is_refused() {
    if !range_tests_can_run() {
        return;
    }
    let sandbox = rootless_sandbox();
    let binds = ranged_etc_of(&sandbox, support::unprivileged_id(), 500);
    let run = |args: &[&str]| support::run(command_with_binds(&sandbox, CH3, args, &binds));
    let out = run(&["-q", "--", "cat", "/proc/self/uid_map"]);
    out.assert_ok();
    let last: Vec<&str> = out
        .stdout
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(last, ["1", &START.to_string(), "500"], "{out:#?}");
    let image = image_with_owners(&sandbox);
    let out = run(&["-q", "--image", image.to_str().unwrap(), "--", "true"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(out.stderr.contains("chown: Invalid argument"), "{out:#?}");
    assert!(
        out.stderr.contains("beyond the ids your range maps"),
        "{out:#?}"
    );
    // Nothing half-unpacked is left in the data root's scratch space.
    assert_eq!(
        support::list_dir(&sandbox.data_root().join("tmp")),
        Vec::<String>::new()
    );
}
