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
    sandbox.with_busybox(CH4);
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

#[test]
fn volume_data_outlives_the_container() {
    claim_volume_outlives_container(Who::Caller);
}

#[test]
fn rootless_volume_data_outlives_the_container() {
    claim_volume_outlives_container(Who::Unprivileged);
}

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

#[test]
fn read_only_volumes_refuse_writes() {
    claim_read_only(Who::Caller);
}

#[test]
fn rootless_read_only_volumes_refuse_writes() {
    claim_read_only(Who::Unprivileged);
}

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

#[test]
fn bad_volume_specs_are_refused_and_create_nothing() {
    claim_bad_specs_refused(Who::Caller);
}

#[test]
fn rootless_bad_volume_specs_are_refused_and_create_nothing() {
    claim_bad_specs_refused(Who::Unprivileged);
}

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
    let busybox = fs::read(support::busybox_image(CH4)).unwrap();
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

#[test]
fn symlinked_targets_resolve_inside_the_root() {
    claim_symlinked_targets_stay_inside(Who::Caller);
}

#[test]
fn rootless_symlinked_targets_resolve_inside_the_root() {
    claim_symlinked_targets_stay_inside(Who::Unprivileged);
}

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
