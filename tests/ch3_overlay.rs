//! Chapter 3's claims (docs/ch3-overlay.md#claims--tests), each proved by
//! running the real binary and looking at the data root from the host.

mod support;

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::tarballs::{docker_save, snapshot, tarball, Entry};
use support::{assert_mount_table_unchanged, list_dir, mount_table, wait_until_dead, Sandbox, Who};

const CH3: &str = env!("CARGO_BIN_EXE_ch3-overlay");

fn sandbox(who: Who) -> Sandbox {
    let sandbox = Sandbox::new(who);
    sandbox.with_busybox();
    sandbox
}

/// The only layer directory of a single-layer data root.
fn only_layer(sandbox: &Sandbox) -> PathBuf {
    let layers = list_dir(&sandbox.data_root().join("layers"));
    assert_eq!(layers.len(), 1, "{layers:?}");
    sandbox.data_root().join("layers").join(&layers[0])
}

/// The directory `--keep` says it kept.
fn kept_dir(stderr: &str) -> PathBuf {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("ch3-overlay: kept this run's layers in "))
        .unwrap_or_else(|| panic!("no kept directory in {stderr}"));
    PathBuf::from(line)
}

// Claim 1: a file written inside lands in the run's upper directory; a file
// deleted inside becomes a whiteout there; the image layer is unchanged.
fn claim_copy_on_write(who: Who) {
    let sandbox = sandbox(who);
    sandbox.run(CH3, &["-q", "--", "true"]).assert_ok();
    let layer = only_layer(&sandbox);
    let layer_before = snapshot(&layer);

    let out = sandbox.run(
        CH3,
        &[
            "-q",
            "--keep",
            "--",
            "sh",
            "-c",
            "echo hi > /hello && rm /etc/group && echo x >> /etc/passwd",
        ],
    );
    out.assert_ok();
    let upper = kept_dir(&out.stderr).join("upper");
    assert_eq!(fs::read_to_string(upper.join("hello")).unwrap(), "hi\n");
    let whiteout = fs::symlink_metadata(upper.join("etc/group")).unwrap();
    assert!(
        whiteout.file_type().is_char_device() && whiteout.rdev() == 0,
        "no 0/0 whiteout"
    );
    assert!(
        fs::read_to_string(upper.join("etc/passwd"))
            .unwrap()
            .ends_with("x\n"),
        "no copy-up"
    );

    assert!(
        layer.join("etc/group").is_file(),
        "the lower lost the deleted file"
    );
    assert_eq!(snapshot(&layer), layer_before, "the image layer changed");
    // And a new run starts from the image again.
    let out = sandbox.run(
        CH3,
        &[
            "-q",
            "--",
            "sh",
            "-c",
            "test -e /hello || test ! -e /etc/group || echo clean",
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "clean\n");
    assert!(upper.is_dir(), "a later run swept the kept directory");
}

root_and_rootless!(claim_copy_on_write: writes_land_in_upper_and_the_layer_is_unchanged, rootless_writes_land_in_upper_and_the_layer_is_unchanged);

// Claim 2: two runs at once each have their own write layer.
#[test]
fn concurrent_runs_do_not_see_each_others_writes() {
    let sandbox = sandbox(Who::Caller);
    sandbox.run(CH3, &["-q", "--", "true"]).assert_ok(); // unpack the layer first
    let script = |me: &str| format!("echo {me} > /{me}-was-here; sleep 1; ls / | grep was-here");
    let (a, b) = (script("a"), script("b"));
    let mut run_a = sandbox.spawn(CH3, &["-q", "--", "sh", "-c", &a]);
    let mut run_b = sandbox.spawn(CH3, &["-q", "--", "sh", "-c", &b]);
    assert_eq!(run_a.read_to_end(), "a-was-here\n");
    assert_eq!(run_b.read_to_end(), "b-was-here\n");
    assert!(run_a.wait().success() && run_b.wait().success());
}

// Claim 3: after a run its directories are gone, the layer is intact and
// the host's mount table is unchanged.
fn claim_run_leaves_nothing(who: Who) {
    let sandbox = sandbox(who);
    sandbox.run(CH3, &["-q", "--", "true"]).assert_ok();
    let layer = only_layer(&sandbox);
    let layer_before = snapshot(&layer);
    let before = mount_table();
    let out = sandbox.run(
        CH3,
        &[
            "-q",
            "--",
            "sh",
            "-c",
            "mkdir -p /a/b && echo x > /a/b/c && rm -rf /usr",
        ],
    );
    out.assert_ok();
    assert_eq!(
        list_dir(&sandbox.data_root().join("containers")),
        Vec::<String>::new()
    );
    assert_eq!(
        list_dir(&sandbox.data_root().join("tmp")),
        Vec::<String>::new()
    );
    assert_eq!(snapshot(&layer), layer_before);
    assert_mount_table_unchanged(&before);
}

root_and_rootless!(claim_run_leaves_nothing: run_leaves_no_directories_and_no_mounts, rootless_run_leaves_no_directories_and_no_mounts);

// Claim 4: a `docker save` image runs with each layer as its own lower
// directory; a later layer's whiteout deletes a file and its opaque marker
// hides a lower directory's contents. A layer two images share is stored once.
fn claim_saved_image_view(who: Who) {
    let sandbox = sandbox(who);
    sandbox.run(CH3, &["-q", "--", "true"]).assert_ok(); // the flat busybox image
    let busybox = fs::read(support::busybox_image()).unwrap();
    let middle = tarball(&[
        Entry::Dir("opt/"),
        Entry::Dir("opt/data/"),
        Entry::File("opt/data/a.txt", "a"),
        Entry::File("opt/data/b.txt", "b"),
        Entry::File("etc/motd", "hello"),
    ]);
    let top = tarball(&[
        Entry::File("etc/.wh.motd", ""),
        Entry::File("opt/data/.wh..wh..opq", ""),
        Entry::File("opt/data/c.txt", "c"),
    ]);
    let image = sandbox.path().join("saved.tar");
    fs::write(&image, docker_save(&[busybox, middle, top])).unwrap();
    support::chown_to_sandbox_user(&sandbox, &image);

    let out = sandbox.run(
        CH3,
        &[
            "-q",
            "--image",
            image.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "ls /opt/data; test -e /etc/motd || echo no-motd",
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "c.txt\nno-motd\n");
    // busybox (shared with the flat image), middle, top.
    assert_eq!(list_dir(&sandbox.data_root().join("layers")).len(), 3);
}

root_and_rootless!(claim_saved_image_view: docker_save_layers_and_whiteouts_give_the_right_view, rootless_docker_save_layers_and_whiteouts_give_the_right_view);

/// Each hostile archive, with the entry its error must name.
fn hostile_images(outside: &Path) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let outside = outside.to_str().unwrap();
    let leak = Box::leak(format!("{outside}/abs-escape").into_boxed_str());
    let leak_target = Box::leak(outside.to_string().into_boxed_str());
    vec![
        (
            "dotdot",
            tarball(&[Entry::Dir("bin/"), Entry::File("../../../escape", "x")]),
            "../../../escape",
        ),
        (
            "absolute",
            tarball(&[Entry::Dir("bin/"), Entry::File(leak, "x")]),
            "abs-escape",
        ),
        (
            "through-symlink",
            tarball(&[
                Entry::Symlink("link", leak_target),
                Entry::File("link/pwned", "x"),
            ]),
            "link/pwned",
        ),
        (
            "hardlink-abs",
            tarball(&[Entry::HardLink("shadow", "/etc/shadow")]),
            "shadow",
        ),
        (
            "hardlink-dotdot",
            tarball(&[Entry::HardLink("passwd", "../../../../../../etc/passwd")]),
            "passwd",
        ),
    ]
    // A device node is no longer refused but skipped with one notice:
    // tests/metadata.rs, device_nodes_in_an_image_are_skipped_with_one_notice.
}

// Claim 5: hostile archives each fail with a clear error naming the entry;
// nothing is written outside the data root and no layer is registered.
fn claim_hostile_archives_refused(who: Who) {
    let sandbox = sandbox(who);
    let outside = sandbox.path().join("outside");
    fs::create_dir(&outside).unwrap();
    support::chown_to_sandbox_user(&sandbox, &outside);
    let before_tree = list_dir(sandbox.path());
    for (name, bytes, entry) in hostile_images(&outside) {
        let image = sandbox.path().join(format!("{name}.tar"));
        fs::write(&image, bytes).unwrap();
        let out = sandbox.run(
            CH3,
            &["-q", "--image", image.to_str().unwrap(), "--", "true"],
        );
        assert_eq!(out.code, Some(125), "{name}: {out:#?}");
        let errors = out.error_lines();
        assert_eq!(errors.len(), 1, "{name}: {errors:?}");
        assert!(
            errors[0].starts_with("ch3-overlay: image entry"),
            "{name}: {errors:?}"
        );
        assert!(
            errors[0].contains(entry) && errors[0].contains("refused"),
            "{name}: {errors:?}"
        );
        fs::remove_file(&image).unwrap();
    }
    assert_eq!(
        list_dir(&outside),
        Vec::<String>::new(),
        "something was written outside"
    );
    assert_eq!(
        list_dir(sandbox.path()),
        before_tree,
        "something appeared beside the data root"
    );
    let root = sandbox.data_root();
    assert!(!root.parent().unwrap().join("escape").exists());
    for sub in ["layers", "index", "tmp", "containers", "rootfs"] {
        assert_eq!(
            list_dir(&root.join(sub)),
            Vec::<String>::new(),
            "{sub} is not empty"
        );
    }
}

root_and_rootless!(claim_hostile_archives_refused: hostile_tarballs_are_refused_and_nothing_is_written, rootless_hostile_tarballs_are_refused_and_nothing_is_written);

// Claim 6: if the parent is killed mid-run, the container dies, nothing
// stays mounted, and the next run removes the stale directory.
#[test]
fn killed_run_dies_and_the_next_run_removes_its_directory() {
    let sandbox = sandbox(Who::Caller);
    sandbox.run(CH3, &["-q", "--", "true"]).assert_ok();
    let before = mount_table();
    let mut run = sandbox.spawn(CH3, &["-q", "--", "sh", "-c", "echo ready; sleep 1000"]);
    assert_eq!(run.read_line(), "ready");
    let container_init = run.children();
    assert_eq!(container_init.len(), 1, "{container_init:?}");
    // SAFETY: kill(2) on the chapter process this test started.
    unsafe { libc::kill(run.pid() as i32, libc::SIGKILL) };
    run.wait();
    assert!(
        wait_until_dead(container_init[0], Duration::from_secs(5)),
        "the container outlived its parent"
    );
    assert_mount_table_unchanged(&before);
    let containers = sandbox.data_root().join("containers");
    assert_eq!(
        list_dir(&containers).len(),
        1,
        "the killed run left no directory to clean"
    );

    let out = sandbox.run(CH3, &["--", "true"]);
    out.assert_ok();
    assert!(
        out.stderr.contains("(its run was killed)"),
        "{}",
        out.stderr
    );
    assert_eq!(list_dir(&containers), Vec::<String>::new());
}

// An image without /proc, /dev or /tmp still runs (they are made in the
// run's upper); one whose /proc is a symlink is refused, since the proc
// mount would follow it.
#[test]
fn missing_mount_points_are_made_and_symlinked_ones_refused() {
    let sandbox = sandbox(Who::Caller);
    let busybox = fs::read(support::busybox_image()).unwrap();
    let without = tarball(&[
        Entry::File(".wh.proc", ""),
        Entry::File(".wh.dev", ""),
        Entry::File(".wh.tmp", ""),
    ]);
    let image = sandbox.path().join("bare.tar");
    fs::write(&image, docker_save(&[busybox.clone(), without])).unwrap();
    let out = sandbox.run(
        CH3,
        &[
            "-q",
            "--image",
            image.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "stat -c %a / && ls /proc/self/fd >/dev/null && echo ok",
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "755\nok\n");

    let symlinked = tarball(&[Entry::File(".wh.proc", ""), Entry::Symlink("proc", "/")]);
    let image = sandbox.path().join("symlinked.tar");
    fs::write(&image, docker_save(&[busybox, symlinked])).unwrap();
    let before = mount_table();
    let out = sandbox.run(
        CH3,
        &["-q", "--image", image.to_str().unwrap(), "--", "true"],
    );
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert_eq!(
        out.error_lines(),
        ["ch3-overlay: the image's /proc is a symlink: a container's /proc must be a directory (fix or rebuild the image)"]
    );
    assert_mount_table_unchanged(&before);
    assert_eq!(
        list_dir(&sandbox.data_root().join("containers")),
        Vec::<String>::new()
    );
}

// Claim 4: setuid and setgid bits survive the unpack (chown clears them,
// so ownership is set before the mode).
#[test]
fn setuid_and_setgid_bits_survive_the_unpack() {
    let sandbox = sandbox(Who::Caller);
    let mut builder = tar::Builder::new(Vec::new());
    for (path, mode) in [("bin/suidtool", 0o4755), ("bin/sgidtool", 0o2755)] {
        let mut header = tar::Header::new_gnu();
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(1);
        builder.append_data(&mut header, path, &b"x"[..]).unwrap();
    }
    let layer = builder.into_inner().unwrap();
    let busybox = fs::read(support::busybox_image()).unwrap();
    let image = sandbox.path().join("suid.tar");
    fs::write(&image, docker_save(&[busybox, layer])).unwrap();
    let out = sandbox.run(
        CH3,
        &[
            "-q",
            "--image",
            image.to_str().unwrap(),
            "--",
            "stat",
            "-c",
            "%a",
            "/bin/suidtool",
            "/bin/sgidtool",
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "4755\n2755\n");
}

// Claim 4: a saved image may list one layer twice, and older `docker save`
// stores a repeated layer once with a symlink to it: both give the right view.
#[test]
fn repeated_and_symlinked_saved_layers_are_resolved() {
    let sandbox = sandbox(Who::Caller);
    let busybox = fs::read(support::busybox_image()).unwrap();
    let one = tarball(&[Entry::File("f", "1")]);
    let two = tarball(&[Entry::File("f", "2")]);
    let manifest = r#"[{"Config":"c.json","Layers":["a/layer.tar","b/layer.tar","c/layer.tar","d/layer.tar","c/layer.tar"]}]"#;
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in [
        ("a/layer.tar", &busybox),
        ("b/layer.tar", &one),
        ("c/layer.tar", &two),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        builder.append_data(&mut header, name, &bytes[..]).unwrap();
    }
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    builder
        .append_link(&mut link, "d/layer.tar", "../b/layer.tar")
        .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(manifest.len() as u64);
    builder
        .append_data(&mut header, "manifest.json", manifest.as_bytes())
        .unwrap();
    let image = sandbox.path().join("repeated.tar");
    fs::write(&image, builder.into_inner().unwrap()).unwrap();
    // Layers, bottom first: busybox, f=1, f=2, f=1 (via the symlink), f=2;
    // a repeated layer is kept at its last place only: busybox, f=1, f=2.
    let out = sandbox.run(
        CH3,
        &["-q", "--image", image.to_str().unwrap(), "--", "cat", "/f"],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "2");
    let out = sandbox.run(CH3, &["--image", image.to_str().unwrap(), "--", "true"]);
    out.assert_ok();
    let overlay = out
        .stderr
        .lines()
        .find(|l| l.contains("mount(\"overlay\""))
        .unwrap()
        .to_string();
    let lowers = overlay
        .split("lowerdir=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .split(':')
        .count();
    assert_eq!(lowers, 3, "{overlay}");
}

/// The sha256 of `file`, in hex (by sha256sum, as the doc computes it).
fn sha256_of(file: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(file)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

// Claim 5: a layer's directory is named by the sha256 of the bytes stepbox
// read; a second run of the same file reads nothing, a copy under another
// name is read again and found already present (stored once), and so is a
// file whose modification time changed.
#[test]
fn a_layer_is_named_by_the_sha256_of_its_bytes_and_stored_once() {
    let sandbox = sandbox(Who::Caller);
    let images = sandbox.data_root().join("images");
    let out = sandbox.run(CH3, &["--", "true"]);
    out.assert_ok();
    let digest = sha256_of(&images.join("busybox.tar"));
    assert_eq!(
        list_dir(&sandbox.data_root().join("layers")),
        [digest.as_str()]
    );
    assert!(
        out.stderr.contains(&format!(
            "into layer {}",
            sandbox.data_root().join("layers").join(&digest).display()
        )),
        "{}",
        out.stderr
    );

    let out = sandbox.run(CH3, &["-v", "--", "true"]);
    out.assert_ok();
    assert!(
        out.stderr.contains("image busybox: layers cached"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("unpacked") && !out.stderr.contains("already present"),
        "{}",
        out.stderr
    );

    fs::copy(images.join("busybox.tar"), images.join("mine.tar")).unwrap();
    let present = format!("layer {digest} already present");
    let out = sandbox.run(CH3, &["-v", "--image", "mine", "--", "true"]);
    out.assert_ok();
    assert!(out.stderr.contains(&present), "{}", out.stderr);
    assert!(!out.stderr.contains("unpacked"), "{}", out.stderr);
    let out = sandbox.run(CH3, &["-v", "--image", "mine", "--", "true"]);
    assert!(
        out.stderr.contains("image mine: layers cached"),
        "{}",
        out.stderr
    );

    // A changed modification time (as `touch` makes) is read again.
    let file = fs::File::options()
        .write(true)
        .open(images.join("mine.tar"))
        .unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(file);
    let out = sandbox.run(CH3, &["-v", "--image", "mine", "--", "true"]);
    out.assert_ok();
    assert!(out.stderr.contains(&present), "{}", out.stderr);
    assert_eq!(list_dir(&sandbox.data_root().join("layers")), [digest]);
}

/// The value of xattr `name` on `path`, if it has one.
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: both strings are NUL-terminated and buf is as long as we say.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

// Claim 6: a layer stores a `.wh.NAME` as a 0/0 character device named NAME
// and a `.wh..wh..opq` as the opaque xattr on its directory (user.overlay.*,
// and trusted.overlay.* too as root), never the marker files themselves; the
// overlay is mounted with userxattr exactly when the run is rootless.
fn claim_markers_stored(who: Who) {
    let sandbox = sandbox(who);
    let busybox = fs::read(support::busybox_image()).unwrap();
    let top = tarball(&[
        Entry::File("etc/.wh.motd", ""),
        Entry::File("opt/data/.wh..wh..opq", ""),
        Entry::File("opt/data/c.txt", "c"),
    ]);
    let image = sandbox.path().join("saved.tar");
    fs::write(&image, docker_save(&[busybox, top])).unwrap();
    support::chown_to_sandbox_user(&sandbox, &image);
    let out = sandbox.run(
        CH3,
        &[
            "--image",
            image.to_str().unwrap(),
            "--",
            "head",
            "-n",
            "1",
            "/proc/self/mountinfo",
        ],
    );
    out.assert_ok();
    assert!(out.stdout.contains(" - overlay "), "{}", out.stdout);
    assert_eq!(
        out.stdout.contains("userxattr"),
        sandbox.rootless(),
        "{}",
        out.stdout
    );

    let layers = sandbox.data_root().join("layers");
    let top = list_dir(&layers)
        .into_iter()
        .map(|d| layers.join(d))
        .find(|d| d.join("opt/data/c.txt").exists())
        .expect("no top layer");
    let motd = fs::symlink_metadata(top.join("etc/motd")).unwrap();
    assert!(
        motd.file_type().is_char_device() && motd.rdev() == 0,
        "no 0/0 whiteout"
    );
    assert_eq!(list_dir(&top.join("etc")), ["motd"]);
    assert_eq!(list_dir(&top.join("opt/data")), ["c.txt"]);
    let data = top.join("opt/data");
    assert_eq!(
        xattr(&data, "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    if !sandbox.rootless() {
        assert_eq!(
            xattr(&data, "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
    }
}

root_and_rootless!(claim_markers_stored: whiteouts_and_opaque_markers_are_stored_as_overlayfs_reads_them, rootless_whiteouts_and_opaque_markers_are_stored_as_overlayfs_reads_them);

// Claim 7: while a container runs, its overlay is in its own mount table
// (as its /) and in no mount table of the host's, and merged is empty there.
#[test]
fn the_overlay_is_only_in_the_containers_mount_table() {
    let sandbox = sandbox(Who::Caller);
    let containers = sandbox.data_root().join("containers");
    let mut run = sandbox.spawn(
        CH3,
        &["-q", "--", "sh", "-c", "echo ready; exec sleep 1000"],
    );
    assert_eq!(run.read_line(), "ready");
    let init = run.children();
    assert_eq!(init.len(), 1, "{init:?}");
    let path = containers.display().to_string();
    let host = mount_table();
    assert!(
        !host.contains(&path),
        "the host's mount table has it:\n{host}"
    );
    let inside = fs::read_to_string(format!("/proc/{}/mountinfo", init[0])).unwrap();
    let overlays: Vec<&str> = inside.lines().filter(|l| l.contains(&path)).collect();
    assert_eq!(overlays.len(), 1, "{inside}");
    let fields: Vec<&str> = overlays[0].split(' ').collect();
    assert_eq!(fields[4], "/", "{}", overlays[0]);
    assert!(overlays[0].contains(" - overlay "), "{}", overlays[0]);
    let runs = list_dir(&containers);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        list_dir(&containers.join(&runs[0]).join("merged")),
        Vec::<String>::new()
    );
    assert!(containers.join(&runs[0]).join("run.json").is_file());
}

// Claim 1: --keep removes the owner record, so the kept directory is nobody's
// run and no later run sweeps it.
#[test]
fn keep_removes_the_owner_record() {
    let sandbox = sandbox(Who::Caller);
    let out = sandbox.run(CH3, &["-q", "--keep", "--", "true"]);
    out.assert_ok();
    let kept = kept_dir(&out.stderr);
    assert_eq!(list_dir(&kept), ["merged", "upper", "work"]);
    sandbox.run(CH3, &["-q", "--", "true"]).assert_ok();
    assert_eq!(list_dir(&kept), ["merged", "upper", "work"]);
}

// Claim 11: a path the overlay options cannot carry (',' or ':') is refused
// before anything is unpacked or mounted, with an error naming it, and the
// run leaves nothing.
#[test]
fn a_data_root_with_a_comma_or_colon_is_refused() {
    for name in ["da,ta", "da:ta"] {
        let sandbox = Sandbox::new(Who::Caller);
        let root = sandbox.path().join(name);
        fs::create_dir_all(root.join("images")).unwrap();
        fs::copy(support::busybox_image(), root.join("images/busybox.tar")).unwrap();
        let before = mount_table();
        let out = sandbox.run(CH3, &["-q", "--root", root.to_str().unwrap(), "--", "true"]);
        assert_eq!(out.code, Some(125), "{out:#?}");
        let errors = out.error_lines();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains(&root.display().to_string())
                && errors[0].contains("overlay mount options cannot carry"),
            "{errors:?}"
        );
        assert_eq!(list_dir(&root.join("containers")), Vec::<String>::new());
        assert_eq!(list_dir(&root.join("tmp")), Vec::<String>::new());
        assert_mount_table_unchanged(&before);
    }
}

// Claim 12: a directory given with --image is the only lower layer, used as
// it is: the container may change and delete its files, the directory keeps
// them.
#[test]
fn a_directory_image_is_used_as_it_is_and_never_written() {
    let sandbox = sandbox(Who::Caller);
    sandbox.run(CH3, &["-q", "--", "true"]).assert_ok();
    let dir = sandbox.path().join("myroot");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(only_layer(&sandbox))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(copied.success());
    fs::write(dir.join("etc/marker"), "from the directory\n").unwrap();
    let before = snapshot(&dir);
    let out = sandbox.run(
        CH3,
        &[
            "-q",
            "--image",
            dir.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "cat /etc/marker; rm /etc/marker /bin/ls; echo x > /new; test -e /etc/marker || echo gone",
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "from the directory\ngone\n");
    assert_eq!(snapshot(&dir), before, "the directory image changed");
    assert_eq!(list_dir(&sandbox.data_root().join("layers")).len(), 1);
}

// Claim 13: /tmp inside is chapter 1's tmpfs, mounted over the overlay, so
// what the container writes there never reaches upper.
#[test]
fn tmp_writes_go_to_the_tmpfs_not_to_upper() {
    let sandbox = sandbox(Who::Caller);
    let out = sandbox.run(
        CH3,
        &[
            "-q",
            "--keep",
            "--",
            "sh",
            "-c",
            "echo x > /tmp/t && echo y > /y",
        ],
    );
    out.assert_ok();
    let upper = kept_dir(&out.stderr).join("upper");
    assert_eq!(list_dir(&upper), ["y"]);
}

// Claim 5: two first runs at once each unpack the layer in a scratch
// directory of their own; both run, and one layer directory is kept.
#[test]
fn two_first_runs_at_once_share_one_layer() {
    let sandbox = sandbox(Who::Caller);
    let mut a = sandbox.spawn(CH3, &["-q", "--", "echo", "a"]);
    let mut b = sandbox.spawn(CH3, &["-q", "--", "echo", "b"]);
    assert_eq!(a.read_to_end(), "a\n");
    assert_eq!(b.read_to_end(), "b\n");
    assert!(a.wait().success() && b.wait().success());
    assert_eq!(list_dir(&sandbox.data_root().join("layers")).len(), 1);
    assert_eq!(
        list_dir(&sandbox.data_root().join("tmp")),
        Vec::<String>::new()
    );
}

/// The mount options of the container's `/`, as its own mountinfo shows them.
fn root_mount_options(sandbox: &Sandbox, bin: &str, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["grep", " / / ", "/proc/self/mountinfo"]);
    let out = sandbox.run(bin, &all);
    out.assert_ok();
    out.stdout
}

// A write layer thrown away at exit is mounted volatile (no sync of the
// upper's filesystem at unmount); a kept one (--keep, a named container)
// is not.
fn claim_volatile_when_thrown_away(who: Who) {
    let sandbox = sandbox(who);
    let thrown = root_mount_options(&sandbox, CH3, &["-q", "--"]);
    assert!(thrown.contains("volatile"), "{thrown}");
    let kept = root_mount_options(&sandbox, CH3, &["-q", "--keep", "--"]);
    assert!(!kept.contains("volatile"), "{kept}");
    const CH5: &str = env!("CARGO_BIN_EXE_ch5-commit");
    let removed = root_mount_options(&sandbox, CH5, &["-q", "run", "--rm", "busybox"]);
    assert!(removed.contains("volatile"), "{removed}");
    let named = root_mount_options(&sandbox, CH5, &["-q", "run", "--name", "kept", "busybox"]);
    assert!(!named.contains("volatile"), "{named}");
    sandbox.run(CH5, &["-q", "rm", "kept"]).assert_ok();
}

root_and_rootless!(claim_volatile_when_thrown_away: a_thrown_away_write_layer_is_volatile_and_a_kept_one_is_not, rootless_a_thrown_away_write_layer_is_volatile_and_a_kept_one_is_not);
