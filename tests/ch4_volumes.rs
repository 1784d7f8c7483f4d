//! Chapter 4's claims (docs/ch4-volumes.md#claims--tests), each proved by
//! running the real binary and looking at the host afterwards.

mod support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use support::tarballs::{docker_save, snapshot, tarball, Entry};
use support::{
    assert_mount_table_unchanged, chown_to_sandbox_user, list_dir, mount_table, wait_until_dead,
    Sandbox, Who,
};

const CH4: &str = env!("CARGO_BIN_EXE_ch4-volumes");

fn sandbox(who: Who) -> Sandbox {
    let sandbox = Sandbox::new(who);
    sandbox.with_busybox();
    sandbox
}

/// A directory in the sandbox owned by the user the chapter runs as.
fn host_dir(sandbox: &Sandbox, name: &str) -> std::path::PathBuf {
    let dir = sandbox.path().join(name);
    fs::create_dir_all(&dir).unwrap();
    chown_to_sandbox_user(sandbox, &dir);
    dir
}

fn arg(path: &Path, target: &str) -> String {
    format!("{}:{target}", path.display())
}

// Claim 1: what is written to a volume is on the host after the container
// is gone; what is written elsewhere goes with the write layer. A missing
// host directory is created.
fn claim_volume_outlives_container(who: Who) {
    let sandbox = sandbox(who);
    let vol = sandbox.path().join("created-by-run");
    let out = sandbox.run(
        CH4,
        &[
            "-v",
            &arg(&vol, "/data"),
            "--",
            "sh",
            "-c",
            "echo kept > /data/note; echo gone > /root/gone",
        ],
    );
    out.assert_ok();
    assert!(
        out.stderr.contains("a missing volume directory is created"),
        "{}",
        out.stderr
    );
    assert_eq!(fs::read_to_string(vol.join("note")).unwrap(), "kept\n");
    let out = sandbox.run(
        CH4,
        &[
            "-q",
            "--",
            "sh",
            "-c",
            "test -e /root/gone || echo gone-with-the-layer",
        ],
    );
    assert_eq!(out.stdout, "gone-with-the-layer\n");
}

root_and_rootless!(claim_volume_outlives_container: volume_data_outlives_the_container, rootless_volume_data_outlives_the_container);

// Claim 2: a `:ro` volume refuses writes inside (EROFS); the host file is unchanged.
fn claim_read_only(who: Who) {
    let sandbox = sandbox(who);
    let vol = host_dir(&sandbox, "ro-vol");
    fs::write(vol.join("f"), "original").unwrap();
    chown_to_sandbox_user(&sandbox, &vol.join("f"));
    let script = "echo changed > /ro/f; touch /ro/new; cat /ro/f";
    let out = sandbox.run(
        CH4,
        &[
            "-q",
            "-v",
            &format!("{}:ro", arg(&vol, "/ro")),
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(out.stdout, "original");
    assert_eq!(
        out.stderr.matches("Read-only file system").count(),
        2,
        "{}",
        out.stderr
    );
    assert_eq!(fs::read_to_string(vol.join("f")).unwrap(), "original");
    assert_eq!(list_dir(&vol), ["f"]);

    // The control: the same volume read-write takes the write.
    let out = sandbox.run(
        CH4,
        &[
            "-q",
            "-v",
            &format!("{}:rw", arg(&vol, "/ro")),
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    out.assert_ok();
    assert_eq!(fs::read_to_string(vol.join("f")).unwrap(), "changed\n");
}

root_and_rootless!(claim_read_only: read_only_volumes_refuse_writes, rootless_read_only_volumes_refuse_writes);

// Claim 3: several volumes at once, nested ones, and a file bound onto a file.
#[test]
fn several_volumes_nested_volumes_and_a_file_bind() {
    let sandbox = sandbox(Who::Caller);
    let (a, b) = (host_dir(&sandbox, "a"), host_dir(&sandbox, "b"));
    fs::write(a.join("in-a"), "A").unwrap();
    fs::write(b.join("in-b"), "B").unwrap();
    let file = sandbox.path().join("hostname-file");
    fs::write(&file, "from-the-host\n").unwrap();
    let out = sandbox.run(
        CH4,
        &[
            "-q",
            "-v",
            &arg(&b, "/srv/a/b"),
            "-v",
            &arg(&a, "/srv/a"),
            "-v",
            &arg(&file, "/etc/hostname"),
            "-v",
            &arg(&file, "/new.conf:ro"),
            "--",
            "sh",
            "-c",
            "cat /srv/a/in-a /srv/a/b/in-b; echo; cat /etc/hostname /new.conf",
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "AB\nfrom-the-host\nfrom-the-host\n");
}

// Claim 4: every malformed or forbidden spec is refused with one clear line,
// before anything is created: no host directory, no data root at all.
fn claim_bad_specs_refused(who: Who) {
    let sandbox = Sandbox::new(who);
    let missing = sandbox.path().join("missing");
    let m = missing.to_str().unwrap();
    let specs: Vec<Vec<String>> = [
        vec!["".to_string()],
        vec![":".into()],
        vec![format!("{m}:")],
        vec![":/b".into()],
        vec!["relative:/b".into()],
        vec![format!("{m}:relative")],
        vec![format!("{m}:/b:bogus")],
        vec![format!("{m}:/")],
        vec![format!("{m}:/proc")],
        vec![format!("{m}:/proc/sys")],
        vec![format!("{m}:/sys")],
        vec![format!("{m}:/dev")],
        vec![format!("{m}:/dev/shm")],
        vec![format!("{m}:/b/../proc")],
        vec![format!("{m}/x:/b"), format!("{m}/y:/b/")],
        vec![format!("{m},x:/b")],
        vec![format!("{m}\nx:/b")],
    ]
    .into();
    for spec in specs {
        let mut args: Vec<&str> = vec!["-q"];
        for s in &spec {
            args.extend(["-v", s]);
        }
        args.extend(["--", "true"]);
        let out = sandbox.run(CH4, &args);
        assert_eq!(out.code, Some(125), "{spec:?}: {out:#?}");
        let errors = out.error_lines();
        assert_eq!(errors.len(), 1, "{spec:?}: {errors:?}");
        assert!(
            errors[0].starts_with("ch4-volumes: invalid volume "),
            "{spec:?}: {errors:?}"
        );
        assert!(
            errors[0].contains("use -v HOST:CONTAINER"),
            "{spec:?}: {errors:?}"
        );
    }
    assert!(
        !missing.exists(),
        "a refused spec created its host directory"
    );
    assert!(
        !sandbox.data_root().exists(),
        "a refused spec created the data root"
    );
}

root_and_rootless!(claim_bad_specs_refused: bad_volume_specs_are_refused_and_create_nothing, rootless_bad_volume_specs_are_refused_and_create_nothing);

// Claim 5: a symlink in the image at or above the target is resolved inside
// the container's root: the bind never lands on the host, and nothing is
// created there. A target that resolves to the container's root is refused.
fn claim_symlinked_targets_stay_inside(who: Who) {
    let sandbox = sandbox(who);
    let unique = format!(
        "stepbox-escape-{}-{}",
        std::process::id(),
        sandbox.rootless()
    );
    let climb = "../".repeat(20);
    let to_outside = format!("{climb}{unique}");
    let layer = tarball(&[
        Entry::Symlink("data", "/"),
        Entry::Symlink("p", "/proc"),
        Entry::Symlink("d", "../dev/shm"),
        Entry::Symlink("up", "../../.."),
        Entry::Symlink("away", &to_outside),
        Entry::Symlink("abs", Box::leak(format!("/{unique}-abs").into_boxed_str())),
    ]);
    let busybox = fs::read(support::busybox_image()).unwrap();
    let image = sandbox.path().join("symlinks.tar");
    fs::write(&image, docker_save(&[busybox, layer])).unwrap();
    chown_to_sandbox_user(&sandbox, &image);
    let vol = host_dir(&sandbox, "vol");
    let image_arg = image.to_str().unwrap();
    let before = list_dir(sandbox.path());

    let refused = [
        ("/data", "resolves to the container's root"),
        ("/up", "resolves to the container's root"),
        (
            "/p",
            "resolves to /proc (through a symlink in the image), the container's own /proc",
        ),
        (
            "/d/x",
            "resolves to /dev/shm/x (through a symlink in the image), the container's own /dev",
        ),
    ];
    for (target, why) in refused {
        let out = sandbox.run(
            CH4,
            &[
                "-q",
                "--image",
                image_arg,
                "-v",
                &arg(&vol, target),
                "--",
                "true",
            ],
        );
        assert_eq!(out.code, Some(125), "{out:#?}");
        assert!(out.error_lines()[0].contains(why), "{target}: {out:#?}");
    }
    let out = sandbox.run(
        CH4,
        &[
            "-q",
            "--image",
            image_arg,
            "-v",
            &arg(&vol, "/away"),
            "-v",
            &arg(&vol, "/abs/deeper"),
            "-v",
            &arg(&vol, "/data/sub"),
            "--",
            "sh",
            "-c",
            "echo in > /away/f && ls -d /sub /away/f && readlink /away",
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, format!("/away/f\n/sub\n{to_outside}\n"));
    assert_eq!(fs::read_to_string(vol.join("f")).unwrap(), "in\n");
    for host_path in [
        format!("/{unique}"),
        format!("/{unique}-abs"),
        "/sub".to_string(),
    ] {
        assert!(
            !Path::new(&host_path).exists(),
            "{host_path} appeared on the host"
        );
    }
    assert_eq!(
        list_dir(sandbox.path()),
        before,
        "something appeared beside the data root"
    );
}

root_and_rootless!(claim_symlinked_targets_stay_inside: symlinked_targets_resolve_inside_the_root, rootless_symlinked_targets_resolve_inside_the_root);

// Claim 6: removing the container never touches volume data, after a normal
// exit and after a SIGKILL of the parent mid-run; nothing stays mounted.
#[test]
fn volume_data_survives_exit_kill_and_cleanup() {
    let sandbox = sandbox(Who::Caller);
    let vol = host_dir(&sandbox, "precious");
    fs::create_dir(vol.join("nested")).unwrap();
    fs::write(vol.join("nested/data"), vec![7u8; 100_000]).unwrap();
    let before = mount_table();
    let v = arg(&vol, "/data");

    let out = sandbox.run(
        CH4,
        &["-q", "-v", &v, "--", "sh", "-c", "echo more > /data/more"],
    );
    out.assert_ok();
    let after_run = snapshot(&vol);
    assert_eq!(
        fs::read(vol.join("nested/data")).unwrap(),
        vec![7u8; 100_000]
    );

    let mut run = sandbox.spawn(
        CH4,
        &["-q", "-v", &v, "--", "sh", "-c", "echo ready; sleep 1000"],
    );
    assert_eq!(run.read_line(), "ready");
    let init = run.children();
    // SAFETY: kill(2) on the chapter process this test started.
    unsafe { libc::kill(run.pid() as i32, libc::SIGKILL) };
    run.wait();
    assert!(wait_until_dead(init[0], Duration::from_secs(5)));
    assert_eq!(list_dir(&sandbox.data_root().join("containers")).len(), 1);

    // The next run sweeps the killed run's directories (its merged/ included).
    sandbox.run(CH4, &["-q", "--", "true"]).assert_ok();
    assert_eq!(
        list_dir(&sandbox.data_root().join("containers")),
        Vec::<String>::new()
    );
    assert_eq!(snapshot(&vol), after_run, "volume data changed");
    assert_mount_table_unchanged(&before);
}

// Claim 2: `:ro` reaches every mount inside the volume too.
#[test]
fn read_only_volumes_are_read_only_all_the_way_down() {
    let sandbox = sandbox(Who::Caller);
    let vol = host_dir(&sandbox, "ro-vol");
    fs::create_dir(vol.join("sub")).unwrap();
    // A mount inside the volume's host directory, in a namespace of the test's own.
    let script = format!(
        "mount -t tmpfs inner {vol}/sub && {CH4} -q -v {vol}:/data:ro -- sh -c 'touch /data/sub/x; touch /data/top' ; ls {vol}/sub",
        vol = vol.display()
    );
    let mut command = std::process::Command::new("unshare");
    command.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    command.env("STEPBOX_ROOT", sandbox.data_root());
    let out = support::run(command);
    assert_eq!(
        out.stdout, "",
        "a file was written through the read-only volume: {out:#?}"
    );
    assert_eq!(
        out.stderr.matches("Read-only file system").count(),
        2,
        "{out:#?}"
    );
}

// Claim 7: a start that fails after the parent created a missing host
// directory removes it again; binding a directory onto a file of the image
// is refused, saying so.
fn claim_failed_start_removes_created_dirs(who: Who) {
    let sandbox = sandbox(who);
    let new = sandbox.path().join("new");
    let out = sandbox.run(
        CH4,
        &[
            "-q",
            "-v",
            &arg(&new.join("sub"), "/etc/passwd"),
            "--",
            "true",
        ],
    );
    assert_eq!(out.code, Some(125), "{out:#?}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(
            "volume target /etc/passwd is a file in the image, but the host path is a directory"
        ),
        "{errors:?}"
    );
    assert!(
        !new.exists(),
        "the failed start left {} behind",
        new.display()
    );
}

root_and_rootless!(claim_failed_start_removes_created_dirs: a_failed_start_removes_the_host_directories_it_created, rootless_a_failed_start_removes_the_host_directories_it_created);

// Claim 8: while the container runs, its volume is in the container's mount
// table and not in the host's, and the run's merged/ is empty on the host.
#[test]
fn a_volume_is_mounted_in_the_container_only_never_on_the_host() {
    let sandbox = sandbox(Who::Caller);
    let vol = host_dir(&sandbox, "only-inside");
    let mut run = sandbox.spawn(
        CH4,
        &[
            "-q",
            "-v",
            &arg(&vol, "/data"),
            "--",
            "sh",
            "-c",
            "echo ready; exec sleep 1000",
        ],
    );
    assert_eq!(run.read_line(), "ready");
    let init = run.children()[0];
    // The tail of the host path, as mountinfo's fourth field holds it.
    let sandbox_name = sandbox.path().file_name().unwrap().to_string_lossy();
    let tail = format!("{sandbox_name}/only-inside");
    let inside = fs::read_to_string(format!("/proc/{init}/mountinfo")).unwrap();
    let line = inside
        .lines()
        .find(|l| l.contains(&tail))
        .unwrap_or_else(|| panic!("no volume in the container's mount table:\n{inside}"));
    assert_eq!(line.split(' ').nth(4), Some("/data"), "{line}");
    assert!(
        !mount_table().contains(&tail),
        "the volume is in the host's mount table"
    );
    let containers = sandbox.data_root().join("containers");
    let runs = list_dir(&containers);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        list_dir(&containers.join(&runs[0]).join("merged")),
        Vec::<String>::new(),
        "merged/ is not empty on the host"
    );
}

// Claim 9: the narration shows where each target was found (a
// /proc/self/fd/N link, resolved to its real path under merged/) and the bind
// made onto that very link; `:ro` adds one recursive mount_setattr; with
// --narrate=new the earlier chapters' steps are folded.
#[test]
fn the_narration_shows_the_in_root_lookup_and_the_bind_through_its_fd() {
    let sandbox = sandbox(Who::Caller);
    let (vol, ro) = (host_dir(&sandbox, "vol"), host_dir(&sandbox, "ro"));
    let out = sandbox.run(
        CH4,
        &[
            "--narrate=new",
            "-v",
            &arg(&vol, "/data"),
            "-v",
            &format!("{}:ro", arg(&ro, "/ro")),
            "--",
            "true",
        ],
    );
    out.assert_ok();
    let lines: Vec<&str> = out.stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| {
            l.starts_with(r#"[child ] /* "/data" resolved inside the root: /proc/self/fd/"#)
        })
        .unwrap_or_else(|| panic!("no lookup narrated: {}", out.stderr));
    assert!(lines[at].ends_with(r#"/merged/data" */"#), "{}", lines[at]);
    let fd = lines[at]
        .split("/proc/self/fd/")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap();
    assert_eq!(
        lines[at + 1],
        format!(
            r#"[child ] mount("{}", "/proc/self/fd/{fd}", NULL, MS_BIND|MS_REC, NULL)"#,
            vol.display()
        )
    );
    let setattr: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("mount_setattr("))
        .collect();
    assert_eq!(setattr.len(), 1, "{}", out.stderr);
    assert!(
        setattr[0]
            .ends_with(r#", "", AT_EMPTY_PATH|AT_RECURSIVE, { .attr_set = MOUNT_ATTR_RDONLY })"#),
        "{}",
        setattr[0]
    );
    assert!(out.stderr.contains("steps from chapters"), "{}", out.stderr);
    assert!(!out.stderr.contains("pivot_root("), "{}", out.stderr);
}

// Claim 10: from this chapter on `-v` is --volume and wants a value (a usage
// error, exit code 2); extra narration is --verbose.
#[test]
fn dash_v_means_volume_and_wants_a_value() {
    let sandbox = sandbox(Who::Caller);
    let out = sandbox.run(CH4, &["-v", "--", "true"]);
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(
        out.stderr
            .contains("a value is required for '--volume <HOST:CONTAINER[:ro|:rw]>'"),
        "{}",
        out.stderr
    );
    sandbox.run(CH4, &["--verbose", "--", "true"]).assert_ok();
}

// Claim 4 (the rest of the table): four fields are refused like the others;
// the reserved paths are whole components, so /procs and /devices are
// ordinary targets.
#[test]
fn specs_with_four_fields_are_refused() {
    let sandbox = Sandbox::new(Who::Caller);
    let m = sandbox.path().join("missing");
    let spec = format!("{}:/b:ro:x", m.to_str().unwrap());
    let out = sandbox.run(CH4, &["-q", "-v", &spec, "--", "true"]);
    assert_eq!(out.code, Some(125), "{spec}: {out:#?}");
    assert!(
        out.error_lines()[0].contains("expected HOST:CONTAINER or HOST:CONTAINER:MODE"),
        "{spec}: {out:#?}"
    );
    assert!(!sandbox.data_root().exists());
}

#[test]
fn reserved_paths_are_whole_components_procs_is_an_ordinary_target() {
    let sandbox = sandbox(Who::Caller);
    let vol = host_dir(&sandbox, "vol");
    fs::write(vol.join("f"), "here\n").unwrap();
    let out = sandbox.run(
        CH4,
        &[
            "-q",
            "-v",
            &arg(&vol, "/procs"),
            "-v",
            &arg(&vol, "/devices"),
            "--",
            "cat",
            "/procs/f",
            "/devices/f",
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "here\nhere\n");
}

// Claim 11: a rootless volume gives no access the user lacks on the host:
// writing into a directory the user may only read fails; binding a directory
// the user may not read works but reading it inside fails; a path below it
// cannot be looked up, so it is refused and nothing is created; a missing
// directory where the user may not create one is refused.
#[test]
fn rootless_volumes_cannot_get_around_host_permissions() {
    if !support::suite_is_root() {
        support::skip("only root can make directories the test user may not use");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let sandbox = sandbox(Who::Unprivileged);
    // Made by this (root) test process: owned by root.
    let readable = sandbox.path().join("roots");
    let private = sandbox.path().join("private");
    for (dir, mode) in [(&readable, 0o755), (&private, 0o700)] {
        fs::create_dir(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(mode)).unwrap();
    }
    let out = sandbox.run(
        CH4,
        &["-q", "-v", &arg(&readable, "/r"), "--", "touch", "/r/x"],
    );
    assert!(out.stderr.contains("Permission denied"), "{out:#?}");
    assert_eq!(list_dir(&readable), Vec::<String>::new());

    let out = sandbox.run(CH4, &["-q", "-v", &arg(&private, "/p"), "--", "ls", "/p"]);
    assert_ne!(out.code, Some(0), "{out:#?}");
    assert!(out.stderr.contains("Permission denied"), "{out:#?}");
    assert!(out.error_lines()[0].starts_with("ls: "), "{out:#?}");

    let below = private.join("sub");
    let out = sandbox.run(CH4, &["-q", "-v", &arg(&below, "/p"), "--", "true"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert_eq!(
        out.error_lines(),
        [format!(
            "ch4-volumes: volume {}: Permission denied (os error 13)",
            below.display()
        )]
    );
    assert!(!below.exists());

    let new = readable.join("new");
    let out = sandbox.run(CH4, &["-q", "-v", &arg(&new, "/n"), "--", "true"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(
        out.error_lines()[0].starts_with("ch4-volumes: creating volume directory "),
        "{out:#?}"
    );
    assert!(!new.exists());
}
