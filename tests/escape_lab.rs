//! The escape lab (docs/ch6-security.md#the-escape-lab): every known way out
//! that chapter 5 leaves open, tried from inside a container by the product
//! itself, `run --try-escapes` (common/src/security/lab.rs), against ch5
//! (where the holes are open), ch6 as root and rootless (where each must be
//! closed) and ch6 `--privileged` (open again); every row of its table is
//! asserted. Nothing destructive: see the module's header.
//!
//! A row the machine cannot run (a kernel without /proc/sysrq-trigger, a
//! disk the host itself may not open, no terminal) says NOT-RUN and is never
//! counted as contained: its test prints that it is skipped.
//!
//! `exec` has no `--try-escapes`: a small C program with the same attempts
//! (tests/support/escapes.c, built here with `gcc -static`) is run by `exec`
//! into a ch6 container, and tries the system calls whose arguments
//! Docker's profile filters (`escapes --syscalls`).

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use support::{assert_mount_table_unchanged, mount_table, open_pty, Sandbox, Who};

const CH5: &str = env!("CARGO_BIN_EXE_ch5-commit");
const CH6: &str = env!("CARGO_BIN_EXE_ch6-security");
const CH7: &str = env!("CARGO_BIN_EXE_ch7-cgroups");

/// The lab program, built once per test run.
fn escapes_program() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/escapes.c");
            let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("escapes-{}", std::process::id()));
            let status = Command::new("gcc")
                .args(["-static", "-O1", "-o"])
                .arg(&out)
                .arg(&source)
                .status()
                .expect("gcc is needed for the escape lab: apt-get install gcc libc6-dev");
            assert!(status.success(), "gcc could not build {}", source.display());
            out
        })
        .clone()
}

/// One escape's verdict and its proof.
#[derive(Debug, Clone)]
struct Row {
    verdict: String,
    proof: String,
}

type Table = BTreeMap<String, Row>;

/// For `exec`, which has no `--try-escapes`: a sandbox with busybox and
/// the C lab: `lab/secret`, a host file outside the volume `lab/vol`, which
/// holds the program.
struct Lab {
    sandbox: Sandbox,
    vol: PathBuf,
    handle: (String, String),
    block_device: String,
}

impl Lab {
    fn new(who: Who) -> Lab {
        let sandbox = Sandbox::new(who);
        sandbox.with_busybox();
        let lab = sandbox.path().join("lab");
        let vol = lab.join("vol");
        fs::create_dir_all(&vol).unwrap();
        fs::write(lab.join("secret"), "stepbox-host-secret\n").unwrap();
        fs::copy(escapes_program(), vol.join("escapes")).unwrap();
        let out = Command::new(vol.join("escapes"))
            .arg("--handle")
            .arg(lab.join("secret"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "name_to_handle_at on the host: {out:?}"
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (kind, hex) = text.trim().split_once(' ').unwrap();
        let handle = (kind.to_string(), hex.to_string());
        Lab {
            block_device: host_block_device(&vol),
            sandbox,
            vol,
            handle,
        }
    }
}

fn parse(stdout: &str) -> Table {
    stdout
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '\t');
            let (name, verdict, proof) = (parts.next()?, parts.next()?, parts.next()?);
            Some((
                name.to_string(),
                Row {
                    verdict: verdict.to_string(),
                    proof: proof.to_string(),
                },
            ))
        })
        .collect()
}

/// MAJOR:MINOR of the disk holding `path`, if the host itself can read it
/// (else "-": the row cannot show anything on this machine).
fn host_block_device(path: &Path) -> String {
    let dev = fs::metadata(path).unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    if major == 0 {
        return "-".into();
    }
    let uevent =
        fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent")).unwrap_or_default();
    let readable = uevent
        .lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .is_some_and(|name| fs::File::open(Path::new("/dev").join(name)).is_ok());
    if readable {
        format!("{major}:{minor}")
    } else {
        "-".into()
    }
}

fn row<'t>(table: &'t Table, name: &str) -> &'t Row {
    table
        .get(name)
        .unwrap_or_else(|| panic!("the lab printed no row {name}: {table:#?}"))
}

/// Assert that each of `names` is CONTAINED (a NOT-RUN row is reported as
/// skipped, never as contained).
fn assert_contained(table: &Table, names: &[&str]) {
    for name in names {
        let row = row(table, name);
        match row.verdict.as_str() {
            "CONTAINED" => {}
            "NOT-RUN" => eprintln!("skipped: {name} cannot run on this machine: {}", row.proof),
            _ => panic!("{name} escaped: {}\n{table:#?}", row.proof),
        }
    }
}

/// Every row `--try-escapes` prints, in its order.
const ROWS: [&str; 16] = [
    "open_by_handle_at",
    "mknod-block-device",
    "mknod-dev-kmsg",
    "core_pattern",
    "sysrq-trigger",
    "drop_caches",
    "mount-sysfs",
    "mount-cgroup2",
    "release-agent-v1",
    "mount-proc",
    "cap-sys-module",
    "cap-sys-time",
    "cap-net-admin",
    "tiocsti",
    "ptrace-outside",
    "remount-ro-volume",
];

/// The rows of tests/support/escapes.c (for `exec`).
const C_ROWS: [&str; 11] = [
    "open_by_handle_at",
    "mknod-block-device",
    "mknod-dev-kmsg",
    "core_pattern",
    "sysrq-trigger",
    "drop_caches",
    "mount-sysfs",
    "mount-cgroup2",
    "mount-proc",
    "host-capabilities",
    "remount-ro-volume",
];

/// The holes chapter 6 closes, which are open in chapter 5 as root.
const CLOSED_BY_CH6: [&str; 14] = [
    "open_by_handle_at",
    "mknod-block-device",
    "mknod-dev-kmsg",
    "core_pattern",
    "sysrq-trigger",
    "drop_caches",
    "mount-sysfs",
    "mount-cgroup2",
    "release-agent-v1",
    "mount-proc",
    "cap-sys-module",
    "cap-sys-time",
    "cap-net-admin",
    "remount-ro-volume",
];

/// A sandbox with busybox and `lab/vol`, the directory given as a `:ro`
/// volume (on the host's disk, beside `lab/secret`).
fn lab_sandbox(who: Who) -> (Sandbox, String) {
    let sandbox = Sandbox::new(who);
    sandbox.with_busybox();
    let vol = sandbox.path().join("lab/vol");
    fs::create_dir_all(&vol).unwrap();
    fs::write(sandbox.path().join("lab/secret"), "stepbox-host-secret\n").unwrap();
    let volume = format!("{}:/lab:ro", vol.display());
    (sandbox, volume)
}

/// `bin run --rm --try-escapes -v lab/vol:/lab:ro FLAGS busybox`, as `who`:
/// its table, checked to hold every row once, and the host's mount table
/// checked unchanged.
fn try_escapes(bin: &str, who: Who, flags: &[&str]) -> Table {
    let (sandbox, volume) = lab_sandbox(who);
    let before = mount_table();
    let mut args = vec!["-q", "run", "--rm", "--try-escapes", "-v", &volume];
    args.extend_from_slice(flags);
    args.push("busybox");
    let out = sandbox.run(bin, &args);
    out.assert_ok();
    assert_mount_table_unchanged(&before);
    lab_table(&out.stdout)
}

/// The rows of a `--try-escapes` table: `ID VERDICT TRIED FROM`, the proof
/// on the next line, indented. Every row is there, in order.
fn lab_table(stdout: &str) -> Table {
    let lines: Vec<&str> = stdout.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut table = Table::new();
    let mut order = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let mut words = line.split_whitespace();
        let (Some(id), Some(verdict)) = (words.next(), words.next()) else {
            continue;
        };
        if line.starts_with(' ') || !["ESCAPED", "CONTAINED", "NOT-RUN"].contains(&verdict) {
            continue;
        }
        let proof = lines.get(i + 1).map_or("", |l| l.trim()).to_string();
        order.push(id.to_string());
        table.insert(
            id.to_string(),
            Row {
                verdict: verdict.to_string(),
                proof,
            },
        );
    }
    assert_eq!(order, ROWS, "the lab's rows, in order:\n{stdout}");
    table
}

/// Run `bin`'s lab with its stdout and stderr on a pty of the test's, and
/// its stdin on that pty too (`interactive`) or /dev/null: the table, read
/// from the pty.
fn try_escapes_on_a_terminal(bin: &str, who: Who, interactive: bool) -> Table {
    let (sandbox, volume) = lab_sandbox(who);
    let (master, slave) = open_pty(24, 200);
    let mut command = sandbox.command(
        bin,
        &[
            "-q",
            "run",
            "--rm",
            "--try-escapes",
            "-v",
            &volume,
            "busybox",
        ],
    );
    let stdin = if interactive {
        Stdio::from(slave.try_clone().unwrap())
    } else {
        Stdio::null()
    };
    command
        .stdin(stdin)
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    let mut child = command.spawn().unwrap();
    drop(command);
    drop(slave);
    let mut screen = Vec::new();
    let mut master = fs::File::from(master);
    let mut buffer = [0u8; 4096];
    // EIO once the last holder of the slave has closed it.
    while let Ok(n) = master.read(&mut buffer) {
        if n == 0 {
            break;
        }
        screen.extend_from_slice(&buffer[..n]);
    }
    let status = child.wait().unwrap();
    let screen = String::from_utf8_lossy(&screen).into_owned();
    assert!(status.success(), "{status}: {screen}");
    lab_table(&screen)
}

/// Each row of `names` has `verdict`. A NOT-RUN row is printed as skipped,
/// never counted either way; if every one of `names` is NOT-RUN, the test
/// is recorded as skipped (support::skip).
fn assert_rows(table: &Table, names: &[&str], verdict: &str) {
    let mut not_run = Vec::new();
    for name in names {
        let row = row(table, name);
        match row.verdict.as_str() {
            v if v == verdict => {}
            "NOT-RUN" => {
                eprintln!(
                    "skipped row: {name} cannot run on this machine: {}",
                    row.proof
                );
                not_run.push(*name);
            }
            other => panic!("{name}: {other}, not {verdict}: {}\n{table:#?}", row.proof),
        }
    }
    if not_run.len() == names.len() {
        support::skip(&format!(
            "every row it asserts is NOT-RUN here: {}",
            not_run.join(", ")
        ));
    }
}

fn skip_unless_root() -> bool {
    if !support::suite_is_root() {
        support::skip("needs root (the holes are open to root only)");
        return true;
    }
    false
}

#[test]
fn ch5_leaves_every_hole_open_as_root() {
    if skip_unless_root() {
        return;
    }
    let table = try_escapes(CH5, Who::Caller, &[]);
    assert_rows(&table, &CLOSED_BY_CH6, "ESCAPED");
    assert_rows(&table, &["ptrace-outside"], "CONTAINED");
    let shocker = &row(&table, "open_by_handle_at").proof;
    assert!(
        shocker.contains("outside the volume") && shocker.contains("etc/passwd"),
        "{shocker}"
    );
    let remount = &row(&table, "remount-ro-volume").proof;
    assert!(remount.ends_with("remounted read-only again"), "{remount}");
}

#[test]
fn rootless_ch5_still_lets_a_ro_volume_be_remounted_read_write() {
    // Rootless, the user namespace closes most holes; not these two.
    let table = try_escapes(CH5, Who::Unprivileged, &[]);
    let open = ["remount-ro-volume", "mount-proc"];
    assert_rows(&table, &open, "ESCAPED");
    let closed: Vec<&str> = ROWS.iter().copied().filter(|r| !open.contains(r)).collect();
    assert_rows(&table, &closed, "CONTAINED");
}

/// ch6 as `who`: the lab's rows `names` are contained.
fn ch6_contains(who: Who, names: &[&str]) {
    let table = try_escapes(CH6, who, &[]);
    assert_rows(&table, names, "CONTAINED");
}

fn every_escape(who: Who) {
    ch6_contains(who, &ROWS);
}
root_and_rootless!(every_escape: ch6_contains_every_escape_of_the_lab,
    rootless_ch6_contains_every_escape_of_the_lab);

fn open_by_handle_at(who: Who) {
    ch6_contains(who, &["open_by_handle_at"]);
}
root_and_rootless!(open_by_handle_at: open_by_handle_at_through_a_volume_is_contained,
    rootless_open_by_handle_at_through_a_volume_is_contained);

fn devices(who: Who) {
    ch6_contains(who, &["mknod-block-device", "mknod-dev-kmsg"]);
}
root_and_rootless!(devices: device_nodes_made_inside_cannot_be_opened,
    rootless_device_nodes_made_inside_cannot_be_opened);

fn proc_writes(who: Who) {
    ch6_contains(who, &["core_pattern", "sysrq-trigger", "drop_caches"]);
}
root_and_rootless!(proc_writes: proc_sys_and_sysrq_trigger_cannot_be_opened_for_writing,
    rootless_proc_sys_and_sysrq_trigger_cannot_be_opened_for_writing);

fn mounts(who: Who) {
    ch6_contains(
        who,
        &[
            "mount-sysfs",
            "mount-cgroup2",
            "release-agent-v1",
            "mount-proc",
        ],
    );
}
root_and_rootless!(mounts: sysfs_cgroup2_and_a_new_proc_cannot_be_mounted,
    rootless_sysfs_cgroup2_and_a_new_proc_cannot_be_mounted);

fn capabilities(who: Who) {
    ch6_contains(who, &["cap-sys-module", "cap-sys-time", "cap-net-admin"]);
}
root_and_rootless!(capabilities: no_capability_to_load_modules_set_the_clock_or_administer_the_network,
    rootless_no_capability_to_load_modules_set_the_clock_or_administer_the_network);

fn ro_volume(who: Who) {
    ch6_contains(who, &["remount-ro-volume"]);
}
root_and_rootless!(ro_volume: a_ro_volume_cannot_be_remounted_read_write,
    rootless_a_ro_volume_cannot_be_remounted_read_write);

/// CVE-2022-0492's route on a cgroup v1 host, for a container given
/// CAP_SYS_ADMIN: in chapter 6 (no cgroup namespace) a v1 tree mounted
/// inside is the host's, and its release_agent opens for writing; chapter 7
/// puts the container in a cgroup of its own in every tree, under a cgroup
/// namespace, so each tree mounts, but at the container's own cgroup, with
/// no release_agent. (It failed while ch7 joined only memory, cpu, cpuacct
/// and pids: freezer's and systemd's roots were the host's.)
#[test]
fn with_sys_admin_no_v1_tree_in_chapter_7_shows_a_release_agent() {
    if skip_unless_root() {
        return;
    }
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    if !own.lines().any(|l| !l.starts_with("0::")) {
        support::skip("no cgroup v1 tree on this host: the route is v1's");
        return;
    }
    let ch6 = try_escapes(CH6, Who::Caller, &["--cap-add", "SYS_ADMIN"]);
    assert_rows(&ch6, &["release-agent-v1"], "ESCAPED");
    let ch7 = try_escapes(CH7, Who::Caller, &["--cap-add", "SYS_ADMIN"]);
    assert_rows(&ch7, &["release-agent-v1"], "CONTAINED");
    let proof = &row(&ch7, "release-agent-v1").proof;
    assert!(
        proof.starts_with("mounted "),
        "the trees did mount: {proof}"
    );
}

#[test]
fn privileged_opens_every_hole_again() {
    if skip_unless_root() {
        return;
    }
    let ch5 = try_escapes(CH5, Who::Caller, &[]);
    let privileged = try_escapes(CH6, Who::Caller, &["--privileged"]);
    assert_rows(&privileged, &CLOSED_BY_CH6, "ESCAPED");
    for name in ROWS {
        assert_eq!(
            row(&privileged, name).verdict,
            row(&ch5, name).verdict,
            "{name}: ch6 --privileged and ch5 differ\n{privileged:#?}\n{ch5:#?}"
        );
    }
}

fn ptrace(who: Who) {
    // Closed since chapter 2: the pid namespace gives the host's processes no pid.
    for bin in [CH5, CH6] {
        let table = try_escapes(bin, who, &[]);
        assert_rows(&table, &["ptrace-outside"], "CONTAINED");
        let proof = &row(&table, "ptrace-outside").proof;
        assert!(proof.contains("ESRCH"), "{proof}");
    }
}
root_and_rootless!(ptrace: no_process_outside_to_trace_in_ch5_already,
    rootless_no_process_outside_to_trace_in_ch5_already);

#[test]
fn without_a_terminal_the_tiocsti_row_is_not_run() {
    let table = try_escapes(CH6, Who::Caller, &[]);
    assert_eq!(row(&table, "tiocsti").verdict, "NOT-RUN", "{table:#?}");
}

#[test]
fn ch5_root_can_type_into_the_callers_terminal_when_its_output_goes_there() {
    if skip_unless_root() {
        return;
    }
    // stdin /dev/null, stdout the caller's terminal: no pty of its own, no
    // controlling terminal (setsid), but CAP_SYS_ADMIN lets TIOCSTI
    // through to any terminal it holds.
    let table = try_escapes_on_a_terminal(CH5, Who::Caller, false);
    assert_rows(&table, &["tiocsti"], "ESCAPED");
    assert!(
        row(&table, "tiocsti").proof.contains("EFAULT"),
        "{table:#?}"
    );
}

#[test]
fn rootless_ch5_cannot_type_into_the_callers_terminal() {
    // Its CAP_SYS_ADMIN is its user namespace's, not the host's: TIOCSTI
    // into a terminal that is not its own needs the host's.
    let table = try_escapes_on_a_terminal(CH5, Who::Unprivileged, false);
    assert_rows(&table, &["tiocsti"], "CONTAINED");
    assert!(row(&table, "tiocsti").proof.contains("EPERM"), "{table:#?}");
}

fn tiocsti(who: Who) {
    let table = try_escapes_on_a_terminal(CH6, who, false);
    assert_rows(&table, &["tiocsti"], "CONTAINED");
    assert!(row(&table, "tiocsti").proof.contains("EPERM"), "{table:#?}");
    // Interactive, every chapter gives the container a pty of its own.
    for bin in [CH5, CH6] {
        let table = try_escapes_on_a_terminal(bin, who, true);
        assert_rows(&table, &["tiocsti"], "CONTAINED");
        let proof = &row(&table, "tiocsti").proof;
        assert!(proof.contains("the container's own devpts"), "{proof}");
    }
}
root_and_rootless!(tiocsti: ch6_cannot_type_into_the_callers_terminal,
    rootless_ch6_cannot_type_into_the_callers_terminal);

#[test]
fn try_escapes_with_a_command_is_refused() {
    let (sandbox, _) = lab_sandbox(Who::Caller);
    let out = sandbox.run(
        CH6,
        &["-q", "run", "--rm", "--try-escapes", "busybox", "true"],
    );
    assert_eq!(out.code, Some(125), "{out:?}");
    assert!(
        out.stderr
            .contains("--try-escapes runs the escape lab instead of a command"),
        "{out:?}"
    );
    assert!(
        !sandbox.data_root().join("containers").exists()
            || support::list_dir(&sandbox.data_root().join("containers")).is_empty()
    );
}

#[test]
fn exec_into_a_ch6_container_is_contained_too() {
    let lab = Lab::new(Who::Caller);
    let volume = format!("{}:/lab:ro", lab.vol.display());
    let sandbox = &lab.sandbox;
    sandbox
        .run(
            CH6,
            &[
                "-q", "run", "-d", "--name", "lab", "-v", &volume, "busybox", "sleep", "60",
            ],
        )
        .assert_ok();
    let pid = std::process::id().to_string();
    let out = sandbox.run(
        CH6,
        &[
            "-q",
            "exec",
            "lab",
            "/lab/escapes",
            "/lab",
            &lab.handle.0,
            &lab.handle.1,
            &lab.block_device,
            &pid,
        ],
    );
    out.assert_ok();
    let table = parse(&out.stdout);
    assert_contained(&table, &C_ROWS);
    sandbox.run(CH6, &["-q", "rm", "-f", "lab"]).assert_ok();
}

/// What `escapes --syscalls` printed: call → "ok" or the errno's name.
fn syscalls(bin: &str, flags: &[&str], who: Who) -> BTreeMap<String, String> {
    lab_calls(bin, flags, who, "--syscalls")
}

/// What `escapes MODE` printed, as [`syscalls`].
fn lab_calls(bin: &str, flags: &[&str], who: Who, mode: &str) -> BTreeMap<String, String> {
    let lab = Lab::new(who);
    let volume = format!("{}:/lab:ro", lab.vol.display());
    let mut args = vec!["-q", "run", "--rm", "-v", &volume];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "/lab/escapes", mode]);
    let out = lab.sandbox.run(bin, &args);
    out.assert_ok();
    out.stdout
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn seccomp_arguments(who: Who) {
    let calls = syscalls(CH6, &[], who);
    let expect = [
        ("personality(0xffffffff)", "ok"),
        ("personality(ADDR_NO_RANDOMIZE)", "EPERM"),
        ("socket(AF_UNIX)", "ok"),
        ("socket(AF_VSOCK)", "EPERM"),
        ("socket(2^32 + AF_VSOCK)", "EPERM"),
        ("clone(CLONE_NEWNS|CLONE_NEWUSER|CLONE_THREAD)", "EPERM"),
        ("clone3(NULL, 0)", "ENOSYS"),
        ("unshare(CLONE_NEWUSER)", "EPERM"),
        ("keyctl(KEYCTL_GET_KEYRING_ID)", "EPERM"),
    ];
    for (call, result) in expect {
        assert_eq!(
            calls.get(call).map(String::as_str),
            Some(result),
            "{call}: {calls:#?}"
        );
    }
    // Unconfined, the same calls reach the kernel, which answers otherwise.
    let calls = syscalls(CH6, &["--security-opt", "seccomp=unconfined"], who);
    assert_eq!(calls["personality(ADDR_NO_RANDOMIZE)"], "ok", "{calls:#?}");
    assert_eq!(calls["clone3(NULL, 0)"], "EINVAL", "{calls:#?}");
}
root_and_rootless!(seccomp_arguments: seccomp_filters_arguments_as_dockers_profile_does,
    rootless_seccomp_filters_arguments_as_dockers_profile_does);

/// Docker's default profile with `change` made to its JSON, in a file.
fn profile_file(dir: &Path, name: &str, change: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let text = include_str!("../common/src/security/seccomp-default.json");
    let mut profile: serde_json::Value = serde_json::from_str(text).unwrap();
    change(&mut profile);
    let path = dir.join(name);
    fs::write(&path, profile.to_string()).unwrap();
    path
}

// A profile's rule answers its own action, whatever the default: a LOG
// rule under an ERRNO default lets the call through (it was denied, the
// allowlist's default winning); clone3's ENOSYS under a KILL default is
// ENOSYS (it was killed). And a deny-list profile cannot be passed by x32
// numbers (bit 30 set; a filter checks the architecture, not that bit): refused
// with EPERM, where the kernel would have been asked.
#[test]
fn a_profiles_rules_keep_their_actions_and_x32_numbers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log_mkdir = profile_file(dir.path(), "log.json", |p| {
        for rule in p["syscalls"].as_array_mut().unwrap() {
            if let Some(names) = rule["names"].as_array_mut() {
                names.retain(|n| n != "mkdir" && n != "mkdirat");
            }
        }
        p["syscalls"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!(
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"}
            ));
    });
    let kill_default = profile_file(dir.path(), "kill.json", |p| {
        p["defaultAction"] = "SCMP_ACT_KILL_PROCESS".into();
    });
    let deny_list = dir.path().join("deny.json");
    fs::write(
        &deny_list,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    )
    .unwrap();
    let mut perms = fs::metadata(dir.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    fs::set_permissions(dir.path(), perms).unwrap();
    let opt = |path: &Path| format!("seccomp={}", path.display());
    let calls = syscalls(CH6, &["--security-opt", &opt(&log_mkdir)], Who::Caller);
    assert_eq!(calls["mkdir(/tmp/made)"], "ok", "{calls:#?}");
    let calls = lab_calls(
        CH6,
        &["--security-opt", &opt(&kill_default)],
        Who::Caller,
        "--clone3",
    );
    assert_eq!(calls["clone3(NULL, 0)"], "ENOSYS", "{calls:#?}");
    let calls = syscalls(CH6, &["--security-opt", &opt(&deny_list)], Who::Caller);
    assert_eq!(calls["mkdir(/tmp/made)"], "EACCES", "{calls:#?}");
    assert_eq!(calls["x32 mkdir(/tmp/made32)"], "EPERM", "{calls:#?}");
    // A profile file is a regular file of at most 1 MiB: /dev/zero (which
    // never ends) and a FIFO (which blocks) are refused at once.
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let sandbox = Sandbox::new(Who::Caller);
    for bad in [Path::new("/dev/zero"), fifo.as_path()] {
        let out = sandbox.run(
            CH6,
            &[
                "-q",
                "run",
                "--rm",
                "--security-opt",
                &opt(bad),
                "busybox",
                "true",
            ],
        );
        assert_eq!(out.code, Some(125), "{out:#?}");
        assert!(
            out.error_lines()[0].contains("not a regular file"),
            "{out:#?}"
        );
    }
}
