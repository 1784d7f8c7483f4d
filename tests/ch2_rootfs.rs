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
    sandbox.with_busybox();
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

root_and_rootless!(claim_root_is_the_image: root_is_the_busybox_image, rootless_root_is_the_busybox_image);

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

root_and_rootless!(claim_pid_and_uts_isolation: command_is_pid_1_and_hostname_is_isolated, rootless_command_is_pid_1_and_hostname_is_isolated);

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

root_and_rootless!(claim_escape: chroot_can_be_escaped_pivot_root_cannot, rootless_chroot_can_be_escaped_pivot_root_cannot);

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

root_and_rootless!(claim_pivot_root_mount_table: pivot_root_shows_only_the_containers_mounts, rootless_pivot_root_shows_only_the_containers_mounts);

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
    assert_eq!(list_dir(&root), ["images", "index", "rootfs", "tmp"]);
    assert_eq!(list_dir(&root.join("index")), ["rootfs-busybox.json"]);
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
    let tar = fs::read(support::busybox_image()).unwrap();
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

// Claim 10: `--image` is a path when it holds a `/` or ends in `.tar`,
// `.tar.gz` or `.tgz`, and a name otherwise, looked up in the data root's
// images/ only (never in the current directory); a tarball is known by its
// first bytes, not by its name.
#[test]
fn image_is_a_path_with_a_slash_or_tar_suffix_else_a_name() {
    let sandbox = sandbox(Who::Caller);
    let tar = fs::read(support::busybox_image()).unwrap();
    // In the current directory (the sandbox): a tarball named like a name,
    // one named .tar, and a gzip one named plain .tar.
    fs::write(sandbox.path().join("cwdimage"), &tar).unwrap();
    fs::write(sandbox.path().join("here.tar"), &tar).unwrap();
    gzip(&tar, &sandbox.path().join("zipped.tar"));
    let cat =
        |image: &str| sandbox.run(CH2, &["-q", "--image", image, "--", "cat", "/etc/hostname"]);

    // A bare word is a name: the file in the current directory is not used.
    let out = cat("cwdimage");
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(
        out.error_lines()[0].contains("no image \"cwdimage\" in "),
        "{out:#?}"
    );
    // With a slash it is that file; with a .tar suffix too, relative to the
    // current directory; a gzip tarball works whatever its suffix says.
    for path in ["./cwdimage", "here.tar", "zipped.tar"] {
        let out = cat(path);
        out.assert_ok();
        assert_eq!(out.stdout, "stepbox\n", "{path}");
    }
    assert_eq!(
        list_dir(&sandbox.data_root().join("rootfs")),
        ["cwdimage", "here", "zipped"]
    );
    // A name is found as images/NAME.tar.gz as well as images/NAME.tar.
    gzip(&tar, &sandbox.data_root().join("images/named.tar.gz"));
    cat("named").assert_ok();
}

// Claim 5: a corrupt tarball, a missing path and a missing command each give
// one clear error line and a non-zero exit, leaving nothing half-made.
#[test]
fn bad_images_and_commands_fail_cleanly() {
    let sandbox = sandbox(Who::Caller);
    let root = sandbox.data_root();
    let before = mount_table();

    let mut tar = fs::read(support::busybox_image()).unwrap();
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

// Claim 14 (the rest): pivot_root parks the old root on top of the new one,
// not in a directory of the image: an image with a file where the older way
// (mkdir(".old_root"), then pivot_root(".", ".old_root")) would park it runs,
// and keeps its file. Fails on the older way: pivot_root gives ENOTDIR.
#[test]
fn an_image_with_a_file_named_old_root_runs() {
    let sandbox = sandbox(Who::Caller);
    // A first run unpacks the image into rootfs/busybox.
    sandbox.run(CH2, &["-q", "--", "true"]).assert_ok();
    let image = sandbox.data_root().join("rootfs/busybox");
    fs::write(image.join(".old_root"), "the image's own\n").unwrap();
    let out = sandbox.run(
        CH2,
        &["-q", "--method", "pivot-root", "--", "cat", "/.old_root"],
    );
    assert_eq!(out.assert_ok().stdout, "the image's own\n");
    assert_eq!(
        fs::read_to_string(image.join(".old_root")).unwrap(),
        "the image's own\n"
    );
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
    let mut archive = tar::Archive::new(fs::File::open(support::busybox_image()).unwrap());
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
    let tar = fs::read(support::busybox_image()).unwrap();
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

/// The table `--compare` printed: each row's label and its chroot and
/// pivot_root cells, cut where the header puts each column.
fn compare_table(stdout: &str) -> Vec<(String, String, String)> {
    let lines: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("chroot vs pivot_root"))
        .collect();
    assert!(lines.len() > 3, "no --compare table in {stdout:?}");
    let header = lines[2];
    let chars = |s: &str| s.chars().collect::<Vec<char>>();
    let find = |word: &str| {
        header
            .find(word)
            .map(|byte| header[..byte].chars().count())
            .unwrap_or_else(|| panic!("no {word} column in {header:?}"))
    };
    let (first, second) = (find("chroot"), find("pivot_root"));
    assert!(first < second, "the chroot column is not first: {header:?}");
    lines[3..]
        .iter()
        .map(|line| {
            let c = chars(line);
            let cell = |from: usize, to: usize| -> String {
                c.get(from..to.min(c.len()))
                    .unwrap_or_default()
                    .iter()
                    .collect::<String>()
                    .trim()
                    .to_string()
            };
            (cell(0, first), cell(first, second), cell(second, c.len()))
        })
        .collect()
}

/// The cells of the row labelled `label`: (chroot, pivot_root).
fn compare_row(table: &[(String, String, String)], label: &str) -> (String, String) {
    table
        .iter()
        .find(|(l, _, _)| l == label)
        .map(|(_, a, b)| (a.clone(), b.clone()))
        .unwrap_or_else(|| panic!("no row {label:?} in {table:#?}"))
}

/// `dev:ino` of `path` as the table shows it, `major:minor:inode`
/// (`stat -c %Hd:%Ld:%i`).
fn dev_ino(path: &Path) -> String {
    let meta = fs::metadata(path).unwrap();
    let dev = std::os::unix::fs::MetadataExt::dev(&meta);
    format!(
        "{}:{}:{}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev),
        std::os::unix::fs::MetadataExt::ino(&meta)
    )
}

/// What the escape should read on this host: the first of /etc/hostname and
/// /etc/os-release, and its first line, quoted as the table quotes it.
fn host_proof() -> String {
    for file in ["/etc/hostname", "/etc/os-release"] {
        if let Ok(text) = fs::read_to_string(file) {
            let first = text.lines().next().unwrap_or_default().to_string();
            return format!("{file}: {first:?}");
        }
    }
    panic!("this host has neither /etc/hostname nor /etc/os-release to prove an escape with");
}

// Claim 10: `--compare` runs the container by chroot and by pivot_root and
// prints one table: the same image as `/` for both, the host's `/`, the
// chroot column ESCAPED with the host file's first line as proof, the
// pivot_root column CONTAINED with none; and the host is as it was.
fn claim_compare(who: Who) {
    let sandbox = sandbox(who);
    let before = mount_table();
    let out = sandbox.run(CH2, &["-q", "--compare"]);
    out.assert_ok();
    assert_eq!(out.stderr, "", "-q still narrated");
    let title = if sandbox.rootless() {
        "chroot vs pivot_root, image busybox, rootless (in a user namespace):"
    } else {
        "chroot vs pivot_root, image busybox, as root:"
    };
    assert_eq!(out.stdout.lines().next(), Some(title), "{}", out.stdout);
    let table = compare_table(&out.stdout);
    let row = |label| compare_row(&table, label);

    // Before the escape, both are in the image and see none of the host's mounts.
    let image = dev_ino(&sandbox.data_root().join("rootfs/busybox"));
    let host = dev_ino(Path::new("/"));
    assert_eq!(row("/ inside (dev:ino)"), (image.clone(), image.clone()));
    assert_eq!(row("host's / (dev:ino)"), (host.clone(), host.clone()));
    let (chroot_inside, pivot_inside) = row("host mounts seen inside");
    assert!(chroot_inside.starts_with("0 of "), "{chroot_inside}");
    assert!(pivot_inside.starts_with("0 of "), "{pivot_inside}");
    let total: usize = chroot_inside[5..].parse().unwrap();
    assert!(total > 0);

    // Only pivot_root has an old root to detach.
    assert_eq!(
        row("old root detached"),
        (
            "n/a: still the root mount".to_string(),
            "yes: umount2(MNT_DETACH)".to_string()
        )
    );

    // The escape: chroot reaches the host's / and all its mounts, and reads
    // a host file; pivot_root stays in the image.
    assert_eq!(
        row("escape attempt"),
        ("ESCAPED".to_string(), "CONTAINED".to_string())
    );
    assert_eq!(
        row("/ after the attempt"),
        (format!("{host}, the host's"), format!("{image}, its own"))
    );
    assert_eq!(
        row("host mounts seen after"),
        (format!("{total} of {total}"), format!("0 of {total}"))
    );
    let (proof, none) = row("proof: a host file");
    assert_eq!(proof, host_proof());
    assert_eq!(none, "none: the climb stayed in the image");

    // Nothing left: no mount, no put_old or escape directory in the image.
    assert_mount_table_unchanged(&before);
    let names = list_dir(&sandbox.data_root().join("rootfs/busybox"));
    assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");
}

root_and_rootless!(claim_compare: compare_shows_chroot_escaped_and_pivot_root_contained, rootless_compare_shows_chroot_escaped_and_pivot_root_contained);

// Claim 10: the table agrees with `--try-escape` run by each method on its
// own, so a verdict swapped in either place fails here.
#[test]
fn compare_agrees_with_try_escape_for_each_method() {
    let sandbox = sandbox(Who::Caller);
    let out = sandbox.run(CH2, &["-q", "--compare"]);
    out.assert_ok();
    let (chroot, pivot) = compare_row(&compare_table(&out.stdout), "escape attempt");
    for (method, cell) in [("chroot", chroot), ("pivot-root", pivot)] {
        let (verdict, _) = escape_verdict(&sandbox, method);
        assert!(
            verdict.starts_with(&format!("{cell}: ")),
            "{method}: --compare says {cell}, --try-escape says {verdict}"
        );
    }
}

// Claim 10: each run is a real run of the container: the command runs once
// per method, as PID 1 with the container's hostname, each run narrated (chroot
// first), and the exit code is the first non-zero one.
#[test]
fn compare_runs_the_command_once_per_method_and_narrates_each_run() {
    let sandbox = sandbox(Who::Caller);
    let out = sandbox.run(
        CH2,
        &[
            "--compare",
            "--hostname",
            "box2",
            "--",
            "sh",
            "-c",
            "echo $(hostname) pid $$; exit 3",
        ],
    );
    assert_eq!(out.code, Some(3), "{out:#?}");
    let (ran, table) = out.stdout.split_at(out.stdout.find("chroot vs").unwrap());
    assert_eq!(ran, "box2 pid 1\nbox2 pid 1\n");
    assert_eq!(
        compare_row(&compare_table(table), "escape attempt"),
        ("ESCAPED".to_string(), "CONTAINED".to_string())
    );
    let at = |needle: &str| {
        out.stderr
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in {}", out.stderr))
    };
    let first = at("[parent] --compare: run 1 of 2, --method chroot\n");
    let second = at("[parent] --compare: run 2 of 2, --method pivot-root\n");
    let chroot = at("[child ] chroot(\"");
    let pivot = at("[child ] pivot_root(\".\", \".\")");
    assert!(first < chroot && chroot < second && second < pivot);
}

// Claim 10: a run that fails is named, with the usual exit code, and leaves
// nothing behind.
#[test]
fn compare_names_the_run_that_failed_and_leaves_nothing() {
    let sandbox = sandbox(Who::Caller);
    let before = mount_table();
    let out = sandbox.run(CH2, &["-q", "--compare", "--", "nosuchcmd"]);
    assert_eq!(out.code, Some(127), "{out:#?}");
    assert_eq!(out.stdout, "", "a table was printed for a failed run");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{out:#?}");
    assert!(
        errors[0].starts_with("ch2-rootfs: --compare, the chroot run: execvp(\"nosuchcmd\")"),
        "{errors:?}"
    );
    assert_mount_table_unchanged(&before);
    let names = list_dir(&sandbox.data_root().join("rootfs/busybox"));
    assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");
    let out = sandbox.run(CH2, &["-q", "--compare", "--method", "chroot"]);
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
}

// Claim 8: a reader that goes away (`--compare | head`) ends the run as
// SIGPIPE would (exit code 141), with no panic and no error printed.
#[test]
fn compare_into_a_closed_pipe_ends_quietly() {
    let sandbox = sandbox(Who::Caller);
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    let mut command = sandbox.command(CH2, &["-q", "--compare"]);
    command
        .stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::piped());
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert_eq!(stderr, "");
}
