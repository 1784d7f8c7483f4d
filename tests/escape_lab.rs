//! The escape lab (docs/ch6-security.md#the-escape-lab): every known way out
//! that chapter 5 leaves open, tried from inside a container by a small C
//! program (tests/support/escapes.c, built here with `gcc -static`), against
//! ch5 (where the holes are open), ch6 as root and rootless (where each must
//! be closed) and ch6 `--privileged` (open again). Nothing destructive: see
//! the program's header.
//!
//! A row the machine cannot run (a kernel without /proc/sysrq-trigger, a
//! disk the host itself may not open) says NOT-RUN and is never counted as
//! contained: its test says it is skipped.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::{assert_mount_table_unchanged, mount_table, Sandbox, Who};

const CH5: &str = env!("CARGO_BIN_EXE_ch5-commit");
const CH6: &str = env!("CARGO_BIN_EXE_ch6-security");

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

/// A sandbox with busybox and the lab: `lab/secret`, a host file outside
/// the volume `lab/vol`, which holds the program.
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

    /// Run the lab in a container of `bin` (with `flags` before the image).
    fn run(&self, bin: &str, flags: &[&str]) -> Table {
        let volume = format!("{}:/lab:ro", self.vol.display());
        let pid = std::process::id().to_string();
        let mut args = vec!["-q", "run", "--rm", "-v", &volume];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "/lab/escapes", "/lab"]);
        args.extend_from_slice(&[&self.handle.0, &self.handle.1, &self.block_device, &pid]);
        let out = self.sandbox.run(bin, &args);
        out.assert_ok();
        parse(&out.stdout)
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

/// Assert that each of `names` ESCAPED (or cannot run here: skipped).
fn assert_escaped(table: &Table, names: &[&str]) {
    for name in names {
        let row = row(table, name);
        match row.verdict.as_str() {
            "ESCAPED" => {}
            "NOT-RUN" => eprintln!("skipped: {name} cannot run on this machine: {}", row.proof),
            _ => panic!("{name} did not escape: {}\n{table:#?}", row.proof),
        }
    }
}

/// The holes chapter 6 closes, which are open in chapter 5 as root.
const CLOSED_BY_CH6: [&str; 10] = [
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
];

/// ch6 as `who`: the lab's rows `names` are contained, and the host's
/// mount table is as it was.
fn ch6_contains(who: Who, names: &[&str]) {
    let lab = Lab::new(who);
    let before = mount_table();
    let table = lab.run(CH6, &[]);
    assert_contained(&table, names);
    assert_mount_table_unchanged(&before);
}

fn skip_unless_root() -> bool {
    if !support::suite_is_root() {
        eprintln!("skipped: needs root (the holes are open to root only)");
        return true;
    }
    false
}

#[test]
fn ch5_leaves_every_hole_open_as_root() {
    if skip_unless_root() {
        return;
    }
    let table = Lab::new(Who::Caller).run(CH5, &[]);
    assert_escaped(&table, &CLOSED_BY_CH6);
    assert_escaped(&table, &["remount-ro-volume"]);
    assert!(
        row(&table, "open_by_handle_at")
            .proof
            .contains("stepbox-host-secret"),
        "{table:#?}"
    );
}

#[test]
fn rootless_ch5_still_lets_a_ro_volume_be_remounted_read_write() {
    let table = Lab::new(Who::Unprivileged).run(CH5, &[]);
    assert_escaped(&table, &["remount-ro-volume"]);
}

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
    ch6_contains(who, &["mount-sysfs", "mount-cgroup2", "mount-proc"]);
}
root_and_rootless!(mounts: sysfs_cgroup2_and_a_new_proc_cannot_be_mounted,
    rootless_sysfs_cgroup2_and_a_new_proc_cannot_be_mounted);

fn capabilities(who: Who) {
    ch6_contains(who, &["host-capabilities"]);
}
root_and_rootless!(capabilities: no_capability_to_load_modules_set_the_clock_or_administer_the_network,
    rootless_no_capability_to_load_modules_set_the_clock_or_administer_the_network);

fn ro_volume(who: Who) {
    ch6_contains(who, &["remount-ro-volume"]);
}
root_and_rootless!(ro_volume: a_ro_volume_cannot_be_remounted_read_write,
    rootless_a_ro_volume_cannot_be_remounted_read_write);

#[test]
fn no_terminal_to_inject_into_and_no_process_outside_to_trace() {
    // Closed since chapters 1 and 2 (setsid, a pid namespace): in ch5 too.
    let lab = Lab::new(Who::Caller);
    for bin in [CH5, CH6] {
        let table = lab.run(bin, &[]);
        assert_contained(&table, &["tiocsti", "ptrace-outside"]);
    }
}

#[test]
fn privileged_opens_every_hole_again() {
    if skip_unless_root() {
        return;
    }
    let table = Lab::new(Who::Caller).run(CH6, &["--privileged"]);
    assert_escaped(&table, &CLOSED_BY_CH6);
    assert_escaped(&table, &["remount-ro-volume"]);
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
    assert_contained(&table, &CLOSED_BY_CH6);
    assert_contained(&table, &["remount-ro-volume"]);
    sandbox.run(CH6, &["-q", "rm", "-f", "lab"]).assert_ok();
}

/// What `escapes --syscalls` printed: call → "ok" or the errno's name.
fn syscalls(bin: &str, flags: &[&str], who: Who) -> BTreeMap<String, String> {
    let lab = Lab::new(who);
    let volume = format!("{}:/lab:ro", lab.vol.display());
    let mut args = vec!["-q", "run", "--rm", "-v", &volume];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "/lab/escapes", "--syscalls"]);
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
