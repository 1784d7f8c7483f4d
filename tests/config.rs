//! An image's config (issue 12, item 2; docs/ch3-overlay.md#the-images-config):
//! from chapter 3 on, an image's Env, Entrypoint with Cmd, WorkingDir and
//! User are honoured as Docker honours them; ch5 adds `-w`, `-u`,
//! `--entrypoint` and `inspect`, and `exec` runs as the container's user in
//! its directory. A flat root filesystem has none: `/bin/sh` as root in `/`.

mod support;

use std::fs;

use support::oci::{chown_tree, Layer, Layout, LAYER_GZIP, LAYER_TAR};
use support::tarballs::{tarball, Entry};
use support::{Outcome, Sandbox, Who};

const CH3: &str = env!("CARGO_BIN_EXE_ch3-overlay");
const CH4: &str = env!("CARGO_BIN_EXE_ch4-volumes");
const CH5: &str = env!("CARGO_BIN_EXE_ch5-commit");

fn sandbox(who: Who) -> Sandbox {
    let sandbox = Sandbox::new(who);
    sandbox.with_busybox();
    sandbox
}

fn quiet(sandbox: &Sandbox, bin: &str, args: &[&str]) -> Outcome {
    let mut all = vec!["-q"];
    all.extend_from_slice(args);
    sandbox.run(bin, &all)
}

/// The busybox image with an `app` user (1001:1002, in group wheel too),
/// as an OCI layout whose config is `config`.
fn image(sandbox: &Sandbox, name: &str, config: serde_json::Value) -> String {
    let busybox = fs::read(support::busybox_image()).unwrap();
    let users = tarball(&[
        Entry::Dir("etc"),
        Entry::File(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\napp:x:1001:1002:App:/home/app:/bin/sh\n",
        ),
        Entry::File("etc/group", "root:x:0:\napp:x:1002:\nwheel:x:10:app\n"),
    ]);
    let layout = Layout::new(&sandbox.path().join(name));
    let layers = [
        Layer {
            bytes: busybox,
            media_type: LAYER_TAR.into(),
        },
        Layer {
            bytes: support::oci::gzip(&users),
            media_type: LAYER_GZIP.into(),
        },
    ];
    let manifest = layout.manifest_with(&layers, "latest", &config);
    layout.index(&[manifest]);
    chown_tree(sandbox, &layout.dir);
    layout.dir.to_str().unwrap().to_string()
}

fn web_config() -> serde_json::Value {
    serde_json::json!({
        "Env": ["PATH=/usr/bin:/bin", "GREETING=from the image", "MODE=image"],
        "Entrypoint": ["/bin/echo", "entry:"],
        "Cmd": ["the", "image's", "cmd"],
        "WorkingDir": "/srv/web",
    })
}

// Claim 1: the command is the image's Entrypoint followed by the command
// line's arguments, or by its Cmd when there are none; in chapters 3, 4
// and 5. ch5's --entrypoint replaces the entrypoint and drops Cmd
// ('' for none).
fn claim_entrypoint_and_cmd_combine_as_in_docker(who: Who) {
    let sandbox = sandbox(who);
    let web = image(&sandbox, "web", web_config());
    for bin in [CH3, CH4] {
        let out = quiet(&sandbox, bin, &["--image", &web]);
        assert_eq!(out.stdout, "entry: the image's cmd\n", "{out:#?}");
        let out = quiet(&sandbox, bin, &["--image", &web, "--", "mine"]);
        assert_eq!(out.stdout, "entry: mine\n", "{out:#?}");
    }
    for (args, shown) in [
        (vec!["run", "--rm", &web], "entry: the image's cmd\n"),
        (vec!["run", "--rm", &web, "mine"], "entry: mine\n"),
        (vec!["run", "--rm", "--entrypoint", "/bin/echo", &web], "\n"),
        (
            vec!["run", "--rm", "--entrypoint", "", &web, "echo", "plain"],
            "plain\n",
        ),
    ] {
        let out = quiet(&sandbox, CH5, &args);
        assert_eq!(out.code, Some(0), "{args:?}: {out:#?}");
        assert_eq!(out.stdout, shown, "{args:?}");
    }
}
root_and_rootless!(claim_entrypoint_and_cmd_combine_as_in_docker: entrypoint_and_cmd_combine_as_in_docker, rootless_entrypoint_and_cmd_combine_as_in_docker);

// Claim 2: the image's Env comes after stepbox's defaults (its PATH
// replaces Docker's) and before -e, which wins; WorkingDir is the
// command's directory, made if the image lacks it; -w replaces it.
fn claim_env_and_workdir_come_from_the_image(who: Who) {
    let sandbox = sandbox(who);
    let web = image(&sandbox, "web", web_config());
    let script = "pwd; echo \"$PATH|$GREETING|$MODE|$HOME\"";
    let expected = "/srv/web\n/usr/bin:/bin|from the image|flag|/root\n";
    for bin in [CH3, CH4] {
        let out = quiet(
            &sandbox,
            bin,
            &["--image", &web, "-e", "MODE=flag", "--", "sh", "-c", script],
        );
        assert_eq!(out.code, Some(0), "{out:#?}");
        // ch3 and ch4 take no --entrypoint: the image's echo prints the script.
        assert!(out.stdout.starts_with("entry: sh -c"), "{out:#?}");
    }
    let out = quiet(
        &sandbox,
        CH5,
        &[
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            "-e",
            "MODE=flag",
            &web,
            "-c",
            script,
        ],
    );
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(out.stdout, expected);
    let out = quiet(
        &sandbox,
        CH5,
        &[
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            "-w",
            "/tmp",
            &web,
            "-c",
            "pwd",
        ],
    );
    assert_eq!(out.stdout, "/tmp\n", "{out:#?}");
    let out = quiet(&sandbox, CH5, &["run", "--rm", "-w", "tmp", &web]);
    assert_eq!(out.code, Some(125));
    assert_eq!(
        out.error_lines(),
        ["ch5-commit: -w \"tmp\": the working directory must be an absolute path, e.g. -w /data"]
    );
}
root_and_rootless!(claim_env_and_workdir_come_from_the_image: env_and_workdir_come_from_the_image, rootless_env_and_workdir_come_from_the_image);

// Claim 3: User runs the command as that user, a name looked up in the
// image's /etc/passwd and /etc/group (groups and HOME too); -u replaces
// it; exec runs as the container's user in its directory, or as -u.
// Rootless with one mapped uid, no other user exists: the run fails with
// the reason and the fix.
fn claim_the_command_runs_as_the_images_user(who: Who) {
    let sandbox = sandbox(who);
    let app = image(
        &sandbox,
        "app",
        serde_json::json!({"User": "app", "WorkingDir": "/home/app", "Cmd": ["sh", "-c", "id; pwd; echo $HOME"]}),
    );
    let out = quiet(&sandbox, CH3, &["--image", &app]);
    if sandbox.rootless() && !subordinate_range(&sandbox) {
        assert_eq!(out.code, Some(125), "{out:#?}");
        let errors = out.error_lines();
        assert_eq!(errors.len(), 1, "{out:#?}");
        assert!(
            errors[0].starts_with("ch3-overlay: setgid(1002): Invalid argument (this user namespace maps only uid and gid 0 (you)"),
            "{out:#?}"
        );
        let out = quiet(&sandbox, CH5, &["run", "--rm", "-u", "0", &app]);
        assert_eq!(out.code, Some(0), "{out:#?}");
        assert!(out.stdout.starts_with("uid=0(root)"), "{out:#?}");
        return;
    }
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(
        out.stdout,
        "uid=1001(app) gid=1002(app) groups=10(wheel),1002(app)\n/home/app\n/home/app\n"
    );
    let out = quiet(&sandbox, CH5, &["run", "--rm", "-u", "0:10", &app]);
    assert_eq!(
        out.stdout, "uid=0(root) gid=10(wheel) groups=10(wheel)\n/home/app\n/root\n",
        "{out:#?}"
    );
    let out = quiet(&sandbox, CH5, &["run", "--rm", "-u", "nosuchuser", &app]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert_eq!(
        out.error_lines(),
        ["ch5-commit: user \"nosuchuser\": no such user in the image's /etc/passwd; give uid, uid:gid, name or name:group"]
    );
    quiet(
        &sandbox,
        CH5,
        &["run", "-d", "--name", "svc", &app, "sleep", "300"],
    )
    .assert_ok();
    let exec = quiet(&sandbox, CH5, &["exec", "svc", "sh", "-c", "id -u; pwd"]);
    let as_root = quiet(
        &sandbox,
        CH5,
        &[
            "exec",
            "-u",
            "0",
            "-w",
            "/",
            "svc",
            "sh",
            "-c",
            "id -u; pwd",
        ],
    );
    quiet(&sandbox, CH5, &["rm", "-f", "svc"]).assert_ok();
    assert_eq!(exec.stdout, "1001\n/home/app\n", "{exec:#?}");
    assert_eq!(as_root.stdout, "0\n/\n", "{as_root:#?}");
}
root_and_rootless!(claim_the_command_runs_as_the_images_user: the_command_runs_as_the_images_user, rootless_the_command_runs_as_the_images_user);

/// Whether the user the sandbox runs chapters as has a subordinate id range
/// in /etc/subuid (by uid or name): then other uids exist in its containers.
fn subordinate_range(sandbox: &Sandbox) -> bool {
    let uid = support::sandbox_uid(sandbox).unwrap_or_else(|| nix::unistd::getuid().as_raw());
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|user| user.name);
    fs::read_to_string("/etc/subuid")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(':').next())
        .any(|owner| owner == uid.to_string() || Some(owner) == name.as_deref())
}

// Claim 4: `inspect IMAGE` prints the image's config, `inspect CONTAINER`
// the container's state, as JSON; a flat root filesystem has no config and
// runs /bin/sh as root in /.
fn claim_inspect_prints_the_config(who: Who) {
    let sandbox = sandbox(who);
    let web = image(&sandbox, "web", web_config());
    let out = quiet(&sandbox, CH5, &["inspect", &web]);
    assert_eq!(out.code, Some(0), "{out:#?}");
    let config: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(config, web_config());
    let flat = quiet(&sandbox, CH5, &["inspect", "busybox"]);
    assert_eq!(flat.stdout, "{}\n", "{flat:#?}");
    quiet(
        &sandbox,
        CH5,
        &["run", "-d", "--name", "shown", &web, "sleep", "300"],
    )
    .assert_ok();
    let out = quiet(&sandbox, CH5, &["inspect", "shown"]);
    quiet(&sandbox, CH5, &["rm", "-f", "shown"]).assert_ok();
    let state: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(state["name"], "shown");
    assert_eq!(
        state["command"],
        serde_json::json!(["/bin/echo", "entry:", "sleep", "300"])
    );
    assert_eq!(state["workdir"], "/srv/web");
    let out = quiet(&sandbox, CH3, &["--", "sh", "-c", "id -u; pwd"]);
    assert_eq!(out.stdout, "0\n/\n", "{out:#?}");
}
root_and_rootless!(claim_inspect_prints_the_config: inspect_prints_the_config, rootless_inspect_prints_the_config);

// Claim 5: a config that is not what it should be is refused in one line
// naming the image and the field.
fn claim_a_bad_config_is_refused_naming_the_field(who: Who) {
    let sandbox = sandbox(who);
    let bad = image(&sandbox, "bad", serde_json::json!({"Env": ["NOEQUALS"]}));
    let out = quiet(&sandbox, CH3, &["--image", &bad, "--", "true"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{out:#?}");
    assert!(
        errors[0].ends_with("'s config: Env holds NOEQUALS, which is not NAME=VALUE"),
        "{out:#?}"
    );
}
root_and_rootless!(claim_a_bad_config_is_refused_naming_the_field: a_bad_config_is_refused_naming_the_field, rootless_a_bad_config_is_refused_naming_the_field);

// Claim 6: the user is looked up in the container's own /etc/passwd, which
// the container may have replaced: a FIFO there (or anything else that is
// not a regular file) is refused at once, never waited on.
fn claim_a_passwd_that_is_not_a_file_is_refused_at_once(who: Who) {
    let sandbox = sandbox(who);
    quiet(
        &sandbox,
        CH5,
        &["run", "-d", "--name", "tricky", "busybox", "sleep", "300"],
    )
    .assert_ok();
    quiet(
        &sandbox,
        CH5,
        &[
            "exec",
            "tricky",
            "sh",
            "-c",
            "rm /etc/passwd && mkfifo /etc/passwd",
        ],
    )
    .assert_ok();
    let mut command = sandbox.command(CH5, &["-q", "exec", "-u", "nobody", "tricky", "id"]);
    command.stdin(std::process::Stdio::null());
    let out = support::run_within(command, std::time::Duration::from_secs(20));
    quiet(&sandbox, CH5, &["rm", "-f", "tricky"]).assert_ok();
    let out = out.expect("exec -u hung on a FIFO /etc/passwd");
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert_eq!(
        out.error_lines(),
        ["ch5-commit: the image's /etc/passwd is not a regular file: fix or rebuild the image"]
    );
}
root_and_rootless!(claim_a_passwd_that_is_not_a_file_is_refused_at_once: a_passwd_that_is_not_a_file_is_refused_at_once, rootless_a_passwd_that_is_not_a_file_is_refused_at_once);

// Claim 7: `ps` shows the container's command escaped: an image's
// Entrypoint is the image's bytes, and a terminal escape in it (an OSC
// title here) must not reach the terminal raw.
fn claim_ps_shows_an_images_command_escaped(who: Who) {
    let sandbox = sandbox(who);
    let sly = image(
        &sandbox,
        "sly",
        serde_json::json!({"Entrypoint": ["/bin/echo", "\u{1b}]0;OWNED\u{7}"]}),
    );
    quiet(&sandbox, CH5, &["run", "-d", "--name", "sly", &sly]).assert_ok();
    let ps = quiet(&sandbox, CH5, &["ps", "-a"]);
    quiet(&sandbox, CH5, &["rm", "-f", "sly"]).assert_ok();
    assert!(!ps.stdout.contains('\u{1b}'), "{ps:#?}");
    assert!(ps.stdout.contains("/bin/echo \\x1b]0;OWNE..."), "{ps:#?}");
}
root_and_rootless!(claim_ps_shows_an_images_command_escaped: ps_shows_an_images_command_escaped, rootless_ps_shows_an_images_command_escaped);

// Claim 8: an /etc/passwd over 1 MiB is refused saying so, never read in
// part (a user listed past the first MiB would seem not to exist).
fn claim_a_huge_passwd_is_refused_saying_so(who: Who) {
    let sandbox = sandbox(who);
    quiet(
        &sandbox,
        CH5,
        &["run", "-d", "--name", "big", "busybox", "sleep", "300"],
    )
    .assert_ok();
    quiet(
        &sandbox,
        CH5,
        &["exec", "big", "sh", "-c", "head -c 1200000 /dev/zero | tr '\\0' x > /etc/passwd; echo 'app:x:5:5::/h:/bin/sh' >> /etc/passwd"],
    )
    .assert_ok();
    let out = quiet(&sandbox, CH5, &["exec", "-u", "app", "big", "id"]);
    quiet(&sandbox, CH5, &["rm", "-f", "big"]).assert_ok();
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert_eq!(
        out.error_lines(),
        ["ch5-commit: the image's /etc/passwd is larger than 1 MiB: fix or rebuild the image"]
    );
}
root_and_rootless!(claim_a_huge_passwd_is_refused_saying_so: a_huge_passwd_is_refused_saying_so, rootless_a_huge_passwd_is_refused_saying_so);
