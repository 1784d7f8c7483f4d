//! Chapter 2's claims (docs/ch2-rootfs.md#claims--tests), each proved by
//! running the real binary against a busybox image in a temporary data root.

mod support;

use std::fs;
use std::io::Write;
use std::path::Path;

use support::{assert_mount_table_unchanged, list_dir, mount_table, mounts_in, Sandbox, Who};

const CH2: &str = env!("CARGO_BIN_EXE_ch2-rootfs");
const METHODS: [&str; 2] = ["pivot-root", "chroot"];

/// A sandbox whose data root already holds the busybox image.
fn sandbox(who: Who) -> Sandbox {
    let sandbox = Sandbox::new(who);
    sandbox.with_busybox(CH2);
    sandbox
}

// Claim 1: inside, `/` is the busybox image, for both methods.
fn claim_root_is_the_image(who: Who) {
    let sandbox = sandbox(who);
    // Host files outside /tmp (inside, /tmp is a fresh tmpfs whatever the root).
    let host_only = [CH2, "/etc/os-release"];
    for path in host_only {
        assert!(Path::new(path).exists(), "{path} is not on the host");
    }
    let before = mount_table();
    for method in METHODS {
        let script = format!(
            "test -x /bin/busybox && echo busybox; test -e {} || test -e {} || echo no-host-file; readlink /bin/sh",
            host_only[0], host_only[1]
        );
        let out = sandbox.run(CH2, &["--method", method, "--", "sh", "-c", &script]);
        out.assert_ok();
        assert_eq!(
            out.stdout, "busybox\nno-host-file\n/bin/busybox\n",
            "{method}"
        );
    }
    assert_mount_table_unchanged(&before);
}

#[test]
fn root_is_the_busybox_image() {
    claim_root_is_the_image(Who::Caller);
}

#[test]
fn rootless_root_is_the_busybox_image() {
    claim_root_is_the_image(Who::Unprivileged);
}

// Claim 2: PID 1 is the command, `ps` lists only the container's processes,
// and the hostname is the container's own.
fn claim_pid_and_uts_isolation(who: Who) {
    let sandbox = sandbox(who);
    let host_name = nix::unistd::gethostname().unwrap();
    for method in METHODS {
        let out = sandbox.run(
            CH2,
            &[
                "-q",
                "--method",
                method,
                "--hostname",
                "box1",
                "--",
                "sh",
                "-c",
                "echo $$; ps -o pid > /tmp/ps; echo $(tail -n +2 /tmp/ps); hostname",
            ],
        );
        out.assert_ok();
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines[0], "1", "{method}: the command is not PID 1");
        // The shell (1) and ps (2): nothing of the host's.
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["1", "2"],
            "{method}"
        );
        assert_eq!(lines[2], "box1");
    }
    assert_eq!(
        nix::unistd::gethostname().unwrap(),
        host_name,
        "the host's hostname changed"
    );
}

#[test]
fn command_is_pid_1_and_hostname_is_isolated() {
    claim_pid_and_uts_isolation(Who::Caller);
}

#[test]
fn rootless_command_is_pid_1_and_hostname_is_isolated() {
    claim_pid_and_uts_isolation(Who::Unprivileged);
}

/// The verdict line `--try-escape` prints, and the number of host mounts it saw.
fn escape_verdict(sandbox: &Sandbox, method: &str) -> (String, usize) {
    let out = sandbox.run(
        CH2,
        &["-q", "--method", method, "--try-escape", "--", "true"],
    );
    out.assert_ok();
    let line = out.stdout.lines().next().unwrap_or_default().to_string();
    let visible = line
        .rsplit_once("host mounts visible: ")
        .map(|(_, n)| n.parse().unwrap())
        .unwrap_or_else(|| panic!("no verdict in {out:#?}"));
    (line, visible)
}

// Claims 3 and 4: chroot can be escaped and still has the host's mounts;
// pivot_root cannot be escaped and shows none of them.
fn claim_escape(who: Who) {
    let sandbox = sandbox(who);
    let (verdict, visible) = escape_verdict(&sandbox, "chroot");
    assert!(
        verdict.starts_with("ESCAPED: reached the host's /"),
        "{verdict}"
    );
    assert!(
        visible > 0,
        "chroot: no host mount visible after the escape: {verdict}"
    );

    let (verdict, visible) = escape_verdict(&sandbox, "pivot-root");
    assert!(
        verdict.starts_with("CONTAINED: / is still the container's root"),
        "{verdict}"
    );
    assert_eq!(
        visible, 0,
        "pivot_root: host mounts still visible: {verdict}"
    );
}

#[test]
fn chroot_can_be_escaped_pivot_root_cannot() {
    claim_escape(Who::Caller);
}

#[test]
fn rootless_chroot_can_be_escaped_pivot_root_cannot() {
    claim_escape(Who::Unprivileged);
}

// Claim 4, seen from inside without escaping: after pivot_root the mount
// table holds only the container's own mounts.
fn claim_pivot_root_mount_table(who: Who) {
    let sandbox = sandbox(who);
    let out = sandbox.run(CH2, &["-q", "--", "cat", "/proc/self/mountinfo"]);
    out.assert_ok();
    let mounts = mounts_in(&out.stdout);
    let own = |p: &str| ["/", "/proc", "/dev", "/tmp"].contains(&p) || p.starts_with("/dev/");
    assert!(
        mounts.iter().all(|(p, _)| own(p)),
        "host mounts inside: {mounts:?}"
    );
    for (point, fstype) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/null", "devtmpfs"),
        ("/tmp", "tmpfs"),
    ] {
        assert!(
            mounts.contains(&(point.into(), fstype.into())),
            "no {fstype} on {point}: {mounts:?}"
        );
    }
}

#[test]
fn pivot_root_shows_only_the_containers_mounts() {
    claim_pivot_root_mount_table(Who::Caller);
}

#[test]
fn rootless_pivot_root_shows_only_the_containers_mounts() {
    claim_pivot_root_mount_table(Who::Unprivileged);
}

// Claim 5: the default image is provisioned from nothing, with one line
// saying where it came from, and nothing else is left in the data root.
#[test]
fn default_image_is_provisioned_from_an_empty_data_root() {
    let sandbox = Sandbox::new(Who::Caller);
    let out = sandbox.run(CH2, &["--", "true"]);
    out.assert_ok();
    assert!(
        out.stderr.contains("provisioned image busybox ("),
        "{}",
        out.stderr
    );
    let root = sandbox.data_root();
    assert_eq!(list_dir(&root.join("images")), ["busybox.tar"]);
    assert_eq!(list_dir(&root.join("rootfs")), ["busybox"]);
    assert_eq!(list_dir(&root.join("tmp")), Vec::<String>::new());
    let mode =
        fs::metadata(&root).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    assert_eq!(mode.unwrap() & 0o777, 0o700);
}

/// Write `bytes` to `path` gzip-compressed.
fn gzip(bytes: &[u8], path: &std::path::Path) {
    let mut encoder =
        flate2::write::GzEncoder::new(fs::File::create(path).unwrap(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap();
}

// Claim 5: --image takes a plain tarball, a gzip tarball, or a directory.
#[test]
fn image_may_be_a_tarball_gzip_tarball_or_directory() {
    let sandbox = Sandbox::new(Who::Caller);
    let tar = fs::read(support::busybox_image(CH2)).unwrap();
    let plain = sandbox.path().join("mini.tar");
    fs::write(&plain, &tar).unwrap();
    let gz = sandbox.path().join("minigz.tar.gz");
    gzip(&tar, &gz);
    for image in [&plain, &gz] {
        let out = sandbox.run(
            CH2,
            &[
                "-q",
                "--image",
                image.to_str().unwrap(),
                "--",
                "cat",
                "/etc/hostname",
            ],
        );
        out.assert_ok();
        assert_eq!(out.stdout, "stepbox\n");
    }
    assert_eq!(
        list_dir(&sandbox.data_root().join("rootfs")),
        ["mini", "minigz"]
    );

    let dir = sandbox.data_root().join("rootfs/mini");
    fs::write(dir.join("marker"), "from the directory").unwrap();
    let out = sandbox.run(
        CH2,
        &[
            "-q",
            "--image",
            dir.to_str().unwrap(),
            "--",
            "cat",
            "/marker",
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "from the directory");
}

// Claim 5: a corrupt tarball, a missing path and a missing command each give
// one clear error line and a non-zero exit, leaving nothing half-made.
#[test]
fn bad_images_and_commands_fail_cleanly() {
    let sandbox = sandbox(Who::Caller);
    let root = sandbox.data_root();
    let before = mount_table();

    let mut tar = fs::read(support::busybox_image(CH2)).unwrap();
    tar.truncate(tar.len() / 2);
    let truncated = sandbox.path().join("truncated.tar");
    fs::write(&truncated, &tar).unwrap();
    let corrupt_gz = sandbox.path().join("corrupt.tar.gz");
    fs::write(&corrupt_gz, b"\x1f\x8b\x08\x00 this is not gzip data").unwrap();

    for bad in [&truncated, &corrupt_gz] {
        let out = sandbox.run(CH2, &["-q", "--image", bad.to_str().unwrap(), "--", "true"]);
        assert_eq!(out.code, Some(125), "{out:#?}");
        let errors = out.error_lines();
        assert_eq!(errors.len(), 1, "{out:#?}");
        assert!(errors[0].starts_with("ch2-rootfs: "), "{errors:?}");
        assert!(
            errors[0].contains("not a readable tar archive"),
            "{errors:?}"
        );
    }

    let out = sandbox.run(
        CH2,
        &["-q", "--image", "/nonexistent/alpine.tar", "--", "true"],
    );
    assert_eq!(out.code, Some(125));
    assert_eq!(
        out.error_lines(),
        ["ch2-rootfs: image /nonexistent/alpine.tar: No such file or directory (os error 2): give an existing rootfs tarball or directory"]
    );

    let out = sandbox.run(CH2, &["-q", "--image", "nosuchimage", "--", "true"]);
    assert_eq!(out.code, Some(125));
    assert!(
        out.error_lines()[0].contains("no image \"nosuchimage\""),
        "{out:#?}"
    );

    let out = sandbox.run(CH2, &["-q", "--", "nosuchcmd"]);
    assert_eq!(out.code, Some(127), "{out:#?}");
    assert_eq!(out.error_lines().len(), 1);
    assert!(out.error_lines()[0]
        .starts_with("ch2-rootfs: execvp(\"nosuchcmd\"): No such file or directory"));

    // Only the good image was unpacked; no scratch directory was left behind.
    assert_eq!(list_dir(&root.join("rootfs")), ["busybox"]);
    assert_eq!(list_dir(&root.join("images")), ["busybox.tar"]);
    assert_eq!(list_dir(&root.join("tmp")), Vec::<String>::new());
    assert_mount_table_unchanged(&before);
}

// Claim 6 (the problem chapter 3 solves): writes go straight into the
// unpacked image, so the next run sees them.
#[test]
fn writes_persist_into_the_next_run() {
    let sandbox = sandbox(Who::Caller);
    sandbox
        .run(
            CH2,
            &["-q", "--", "sh", "-c", "echo left-behind > /root/note"],
        )
        .assert_ok();
    let out = sandbox.run(
        CH2,
        &["-q", "--method", "chroot", "--", "cat", "/root/note"],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "left-behind\n");
    let on_host = sandbox.data_root().join("rootfs/busybox/root/note");
    assert_eq!(fs::read_to_string(on_host).unwrap(), "left-behind\n");
}

// After a run, nothing of the container stays in the image: no put_old or
// escape directory; and nothing stays mounted.
#[test]
fn runs_leave_no_trace_in_the_image() {
    let sandbox = sandbox(Who::Caller);
    let before = mount_table();
    for method in METHODS {
        let out = sandbox.run(
            CH2,
            &["-q", "--method", method, "--try-escape", "--", "true"],
        );
        out.assert_ok();
    }
    let names = list_dir(&sandbox.data_root().join("rootfs/busybox"));
    assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");
    assert_mount_table_unchanged(&before);
}

// Claim 5: a static busybox on PATH is used when there is one; a dynamically
// linked one is passed over (it could not run in a root without libc).
#[test]
fn a_static_busybox_on_path_is_used_and_a_dynamic_one_skipped() {
    let sandbox = Sandbox::new(Who::Caller);
    let (dynamic, static_dir) = (sandbox.path().join("dyn"), sandbox.path().join("static"));
    fs::create_dir_all(&dynamic).unwrap();
    fs::create_dir_all(&static_dir).unwrap();
    fs::copy("/bin/true", dynamic.join("busybox")).unwrap();
    let mut archive = tar::Archive::new(fs::File::open(support::busybox_image(CH2)).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().as_os_str() == "bin/busybox" {
            entry.unpack(static_dir.join("busybox")).unwrap();
        }
    }
    let path = format!(
        "{}:{}:/usr/bin:/bin",
        dynamic.display(),
        static_dir.display()
    );
    let mut command = sandbox.command(CH2, &["--", "busybox", "true"]);
    command.env("PATH", &path);
    let out = support::run(command);
    out.assert_ok();
    let expected = format!(
        "from the host's static {}",
        static_dir.join("busybox").display()
    );
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
    assert!(sandbox.data_root().join("images/busybox.tar").is_file());
}

// Claim 6's other side: an unpacked root is reused only for the very file it
// came from. Another tarball of the same name is refused, not silently run
// (and the root, which may hold the learner's changes, is kept).
#[test]
fn another_tarball_of_the_same_name_is_refused() {
    let sandbox = sandbox(Who::Caller);
    let tar = fs::read(support::busybox_image(CH2)).unwrap();
    let (a, b) = (sandbox.path().join("a"), sandbox.path().join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("img.tar"), &tar).unwrap();
    gzip(&tar, &b.join("img.tar.gz"));
    let first = a.join("img.tar");
    sandbox
        .run(
            CH2,
            &[
                "-q",
                "--image",
                first.to_str().unwrap(),
                "--",
                "sh",
                "-c",
                "echo mine > /root/note",
            ],
        )
        .assert_ok();
    let second = b.join("img.tar.gz");
    let out = sandbox.run(
        CH2,
        &["-q", "--image", second.to_str().unwrap(), "--", "true"],
    );
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(
        out.error_lines()[0].contains("was unpacked from another file"),
        "{out:#?}"
    );
    let note = sandbox.data_root().join("rootfs/img/root/note");
    assert_eq!(fs::read_to_string(note).unwrap(), "mine\n");
    // The same file again is fine.
    sandbox
        .run(
            CH2,
            &["-q", "--image", first.to_str().unwrap(), "--", "true"],
        )
        .assert_ok();
}
