//! The image store of chapter 5 (issue 12, items 3, 6 and 8;
//! docs/ch5-commit.md): `load` of what skopeo and umoci write, `save` read
//! back by them, multi-image archives, `commit` as one layer over its
//! image's layers (whiteouts translated), `commit --flatten` and `export`,
//! `tag` and `rmi`, and bad input refused with nothing half-made. Each claim
//! is checked from both sides: what the command printed, and the store's
//! files (images/index.json, blobs/sha256/, the unpacked layers).

mod support;
// Only the store helpers (tar_headers, stored_manifest, …): its claims are
// tests/ch5_commit.rs's.
#[allow(dead_code)]
mod lifecycle;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use lifecycle::{blob_json, blob_path, stored_layers, stored_manifest, tar_headers, ZSTD_MAGIC};
use support::oci::{chown_tree, sha256};
use support::{list_dir, tool, Outcome, Sandbox, Who};

const CH5: &str = env!("CARGO_BIN_EXE_ch5-commit");

fn sandbox(who: Who) -> Sandbox {
    let sandbox = Sandbox::new(who);
    sandbox.with_busybox();
    sandbox
}

fn quiet(sandbox: &Sandbox, args: &[&str]) -> Outcome {
    let mut all = vec!["-q"];
    all.extend_from_slice(args);
    sandbox.run(CH5, &all)
}

fn ok(sandbox: &Sandbox, args: &[&str]) -> String {
    let out = quiet(sandbox, args);
    assert_eq!(out.code, Some(0), "{args:?}: {out:#?}");
    out.stdout
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The number of blobs in the store.
fn blob_count(sandbox: &Sandbox) -> usize {
    list_dir(&sandbox.data_root().join("blobs/sha256")).len()
}

/// images/index.json as it is now ("" when there is none).
fn index_text(sandbox: &Sandbox) -> String {
    fs::read_to_string(sandbox.data_root().join("images/index.json")).unwrap_or_default()
}

/// `images`' rows as (REPOSITORY, TAG, IMAGE ID), the header left out.
fn image_rows(sandbox: &Sandbox) -> Vec<(String, String, String)> {
    let out = ok(sandbox, &["images"]);
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("REPOSITORY"), "{out}");
    lines
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

/// The stored image's ID (its config's hex digest).
fn image_id(sandbox: &Sandbox, reference: &str) -> String {
    let manifest = stored_manifest(sandbox, reference);
    manifest["config"]["digest"].as_str().unwrap()[7..].to_string()
}

/// The digest (`sha256:…`) of the stored image `reference`'s manifest, as
/// images/index.json names it.
fn manifest_digest(sandbox: &Sandbox, reference: &str) -> String {
    let index: serde_json::Value = serde_json::from_str(&index_text(sandbox)).unwrap();
    let named =
        |m: &&serde_json::Value| m["annotations"]["org.opencontainers.image.ref.name"] == reference;
    let entry = index["manifests"].as_array().unwrap().iter().find(named);
    entry.unwrap()["digest"].as_str().unwrap().to_string()
}

/// The config of the stored image `reference`.
fn stored_config(sandbox: &Sandbox, reference: &str) -> serde_json::Value {
    let manifest = stored_manifest(sandbox, reference);
    blob_json(sandbox, manifest["config"]["digest"].as_str().unwrap())
}

/// The layer digests (`sha256:…`) of the stored image `reference`.
fn layer_digests(sandbox: &Sandbox, reference: &str) -> Vec<String> {
    stored_manifest(sandbox, reference)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// The member names of a layer tarball (directories without their '/').
fn member_names(layer: &Path) -> BTreeSet<String> {
    tar_headers(layer)
        .into_iter()
        .map(|m| m.name.trim_end_matches('/').to_string())
        .collect()
}

/// The unpacked layer directories of the data root (`layers/`, `layers-*/`).
fn unpacked_layers(sandbox: &Sandbox) -> BTreeSet<String> {
    let root = sandbox.data_root();
    list_dir(&root)
        .into_iter()
        .filter(|d| d == "layers" || d.starts_with("layers-"))
        .flat_map(|d| list_dir(&root.join(d)))
        .collect()
}

const SHOW: &str = "cat /etc/motd; test -e /linuxrc && echo linuxrc || echo 'linuxrc: gone'";
const SHOWN: &str = "from the top layer\nlinuxrc: gone\n";

/// The busybox image made by the real tools: an OCI layout by umoci of two
/// layers (busybox, then /etc/motd added and /linuxrc removed), copied by
/// skopeo to a named OCI layout, an oci-archive and a docker-archive:
/// (path, the name each gives its image).
fn made_by_the_tools(sandbox: &Sandbox) -> Vec<(PathBuf, &'static str)> {
    let dir = sandbox.path().join("tools");
    fs::create_dir(&dir).unwrap();
    let at = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (layout, bundle) = (at("umoci"), at("bundle"));
    let image = format!("{layout}:latest");
    tool("umoci", &["init", "--layout", &layout], "umoci");
    tool("umoci", &["new", "--image", &image], "umoci");
    let unpack = ["unpack", "--rootless", "--image", &image, &bundle];
    tool("umoci", &unpack, "umoci");
    let rootfs = dir.join("bundle/rootfs");
    let mut archive = tar::Archive::new(fs::File::open(support::busybox_image()).unwrap());
    archive.set_preserve_permissions(true);
    archive.unpack(&rootfs).unwrap();
    // --refresh-bundle: the next repack is the diff from here, a second layer.
    let repack = ["repack", "--refresh-bundle", "--image", &image, &bundle];
    tool("umoci", &repack, "umoci");
    fs::write(rootfs.join("etc/motd"), "from the top layer\n").unwrap();
    fs::remove_file(rootfs.join("linuxrc")).unwrap();
    tool("umoci", &["repack", "--image", &image, &bundle], "umoci");
    let source = format!("oci:{image}");
    let made = [
        (at("layout"), "oci", "stepbox/layout:v1"),
        (at("oci.tar"), "oci-archive", "stepbox/oci:v1"),
        (at("docker.tar"), "docker-archive", "stepbox/docker:v1"),
    ];
    for (path, transport, name) in &made {
        let dest = format!("{transport}:{path}:{name}");
        tool("skopeo", &["copy", "-q", &source, &dest], "skopeo");
    }
    chown_tree(sandbox, &dir);
    made.into_iter()
        .map(|(path, _, name)| (PathBuf::from(path), name))
        .collect()
}

// Claim 1: `load` of a docker-archive, an oci-archive and an OCI layout
// directory made by skopeo and umoci names each image as its archive does;
// `images` lists it with its ID; it runs with its top layer; a second load
// of the same archive stores no new blob.
fn claim_load_takes_what_skopeo_and_umoci_write(who: Who) {
    let sandbox = sandbox(who);
    let mut made = made_by_the_tools(&sandbox);
    if who == Who::Unprivileged {
        // One format is enough rootless: the one least like stepbox's own.
        made.retain(|(_, name)| *name == "stepbox/oci:v1");
    }
    for (path, name) in made {
        let out = quiet(&sandbox, &["load", "-i", text(&path)]);
        assert_eq!(out.code, Some(0), "{path:?}: {out:#?}");
        assert_eq!(out.stdout, format!("Loaded image: {name}\n"), "{path:?}");
        let reference = name.to_string();
        let id = image_id(&sandbox, &reference);
        assert_eq!(stored_layers(&sandbox, &reference).len(), 2, "{name}");
        for layer in stored_layers(&sandbox, &reference) {
            let hex = layer.file_name().unwrap().to_str().unwrap().to_string();
            assert_eq!(sha256(&fs::read(&layer).unwrap()), hex, "{layer:?}");
        }
        let (repository, tag) = name.split_once(':').unwrap();
        let row = (repository.into(), tag.into(), id[..12].to_string());
        assert!(
            image_rows(&sandbox).contains(&row),
            "{name} is not listed as {row:?}: {:?}",
            image_rows(&sandbox)
        );
        let shown = ok(&sandbox, &["run", "--rm", name, "sh", "-c", SHOW]);
        assert_eq!(shown, SHOWN, "{name}");
        let (blobs, index) = (blob_count(&sandbox), index_text(&sandbox));
        let again = ok(&sandbox, &["load", "-i", text(&path)]);
        assert_eq!(again, format!("Loaded image: {name}\n"));
        assert_eq!(blob_count(&sandbox), blobs, "a second load stored blobs");
        assert_eq!(
            index_text(&sandbox),
            index,
            "a second load changed the index"
        );
    }
}
root_and_rootless!(claim_load_takes_what_skopeo_and_umoci_write: load_takes_what_skopeo_and_umoci_write, rootless_load_takes_what_skopeo_and_umoci_write);

/// Commit a busybox container that wrote `/which` as image `reference`.
fn commit_one(sandbox: &Sandbox, container: &str, reference: &str, which: &str) {
    let write = format!("echo {which} > /which");
    ok(
        sandbox,
        &["run", "--name", container, "busybox", "sh", "-c", &write],
    );
    ok(sandbox, &["commit", container, reference]);
    ok(sandbox, &["rm", container]);
}

// Claim 2: an archive of several images (stepbox's save of two) is refused
// when run without a tag, in one line listing both; PATH:TAG runs the one of
// that tag; `load` stores both with their names.
#[test]
fn a_multi_image_archive_runs_by_tag_and_loads_whole() {
    let sandbox = sandbox(Who::Caller);
    commit_one(&sandbox, "c1", "a:one", "one");
    commit_one(&sandbox, "c2", "b:two", "two");
    let multi = sandbox.path().join("multi.tar");
    ok(&sandbox, &["save", "a:one", "b:two", "-o", text(&multi)]);
    let out = quiet(&sandbox, &["run", "--rm", text(&multi), "true"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{out:#?}");
    assert!(
        errors[0].contains("holds 2 images (a:one, b:two)"),
        "{out:#?}"
    );
    assert_eq!(list_dir(&sandbox.data_root().join("containers")).len(), 0);
    for which in ["one", "two"] {
        let image = format!("{}:{which}", multi.display());
        let shown = ok(&sandbox, &["run", "--rm", &image, "cat", "/which"]);
        assert_eq!(shown, format!("{which}\n"), "{image}");
    }
    let other = self::sandbox(Who::Caller);
    let out = ok(&other, &["load", "-i", text(&multi)]);
    assert_eq!(out, "Loaded image: a:one\nLoaded image: b:two\n");
    for reference in ["a:one", "b:two"] {
        assert_eq!(
            stored_manifest(&other, reference),
            stored_manifest(&sandbox, reference),
            "{reference} was not loaded as it was saved"
        );
        assert_eq!(image_id(&other, reference), image_id(&sandbox, reference));
    }
    let which = ok(&other, &["run", "--rm", "b:two", "cat", "/which"]);
    assert_eq!(which, "two\n");
}

/// base:v1: busybox and a layer with /etc/x/a and /etc/x/b. Then app:v1,
/// committed from a container of base:v1 (`-e GREETING=hi -w /tmp`, command
/// `sleep 1000`) that wrote /root/new, deleted /bin/vi and replaced /etc/x
/// by a directory holding only `only`. The container stays, running.
fn commit_a_layer(sandbox: &Sandbox) -> String {
    let make = "mkdir /etc/x; echo a > /etc/x/a; echo b > /etc/x/b";
    ok(
        sandbox,
        &["run", "--name", "first", "busybox", "sh", "-c", make],
    );
    ok(sandbox, &["commit", "first", "base:v1"]);
    ok(sandbox, &["rm", "first"]);
    let run = [
        "run",
        "-d",
        "--name",
        "second",
        "-e",
        "GREETING=hi",
        "-w",
        "/tmp",
        "base:v1",
        "sleep",
        "1000",
    ];
    assert_eq!(ok(sandbox, &run), "second\n");
    let change = "echo new > /root/new; rm /bin/vi; rm -rf /etc/x; mkdir /etc/x; touch /etc/x/only";
    ok(sandbox, &["exec", "second", "sh", "-c", change]);
    ok(sandbox, &["commit", "second", "app:v1"])
}

const SEE_CHANGES: &str =
    "cat /root/new; ls /etc/x; test -e /bin/vi && echo vi || echo 'vi: gone'; echo $GREETING; pwd";
const CHANGES_SEEN: &str = "new\nonly\nvi: gone\nhi\n/tmp\n";

// Claim 4: commit makes one new layer of exactly the container's changes
// (whiteouts as `.wh.NAME`, a replaced directory as opaque) over its image's
// layers, unchanged; the config is the base's with the container's command,
// variables, working directory and one more line of history; running the
// new image unpacks only that layer, and shows the changes.
fn claim_commit_adds_one_layer_of_the_changes(who: Who) {
    let sandbox = sandbox(who);
    let printed = commit_a_layer(&sandbox);
    let id = image_id(&sandbox, "app:v1");
    assert_eq!(printed, format!("sha256:{id}\n"));
    let base = stored_manifest(&sandbox, "base:v1");
    let app = stored_manifest(&sandbox, "app:v1");
    let (base_layers, app_layers) = (
        base["layers"].as_array().unwrap(),
        app["layers"].as_array().unwrap(),
    );
    assert_eq!(app_layers.len(), base_layers.len() + 1, "{app}");
    assert_eq!(&app_layers[..base_layers.len()], &base_layers[..]);
    let new = app_layers.last().unwrap();
    assert_eq!(new["mediaType"], "application/vnd.oci.image.layer.v1.tar");
    let layer = blob_path(&sandbox, new["digest"].as_str().unwrap());
    let expected: BTreeSet<String> = [
        "bin",
        "bin/.wh.vi",
        "etc",
        "etc/x",
        "etc/x/.wh..wh..opq",
        "etc/x/only",
        "root",
        "root/new",
    ]
    .map(String::from)
    .into();
    assert_eq!(member_names(&layer), expected, "the new layer");
    let config = stored_config(&sandbox, "app:v1");
    let base_config = stored_config(&sandbox, "base:v1");
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["sleep", "1000"])
    );
    let env = config["config"]["Env"].as_array().unwrap();
    assert!(env.contains(&serde_json::json!("GREETING=hi")), "{config}");
    assert_eq!(config["config"]["WorkingDir"], "/tmp");
    let history = |c: &serde_json::Value| c["history"].as_array().map_or(0, Vec::len);
    assert_eq!(history(&config), history(&base_config) + 1, "{config}");
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), app_layers.len(), "{config}");
    assert_eq!(diff_ids.last().unwrap(), &new["digest"]);
    ok(&sandbox, &["rm", "-f", "second"]);

    let before = unpacked_layers(&sandbox);
    let hex = &new["digest"].as_str().unwrap()[7..];
    let run = [
        "run",
        "--rm",
        "-e",
        "GREETING=hi",
        "app:v1",
        "sh",
        "-c",
        SEE_CHANGES,
    ];
    let out = sandbox.run(CH5, &run);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(out.stdout, CHANGES_SEEN);
    let unpacked: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("into layer"))
        .collect();
    assert_eq!(unpacked.len(), 1, "the base was not reused: {out:#?}");
    assert!(unpacked[0].ends_with(hex), "{unpacked:?} is not {hex}");
    let after = unpacked_layers(&sandbox);
    assert_eq!(
        after.difference(&before).collect::<Vec<_>>(),
        [hex],
        "layers unpacked besides the new one"
    );
}
root_and_rootless!(claim_commit_adds_one_layer_of_the_changes: commit_adds_one_layer_of_the_changes, rootless_commit_adds_one_layer_of_the_changes);

/// Every entry below `rootfs`, as the container script below prints it:
/// `d PATH`, `l PATH -> TARGET`, `f PATH SHA256`.
fn tree_of(rootfs: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut stack = vec![rootfs.to_path_buf()];
    while let Some(path) = stack.pop() {
        let shown = format!("/{}", path.strip_prefix(rootfs).unwrap().display());
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).unwrap();
            lines.push(format!("l {shown} -> {}", target.display()));
        } else if meta.is_dir() {
            lines.push(format!("d {shown}"));
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if meta.is_file() {
            lines.push(format!("f {shown} {}", sha256(&fs::read(&path).unwrap())));
        } else {
            lines.push(format!("o {shown}"));
        }
    }
    lines.sort();
    lines
}

const TREE: &str = r#"find / -xdev | while read -r p; do
  if [ -L "$p" ]; then echo "l $p -> $(readlink "$p")"
  elif [ -d "$p" ]; then echo "d $p"
  elif [ -f "$p" ]; then echo "f $p $(sha256sum < "$p" | cut -d' ' -f1)"
  else echo "o $p"; fi
done"#;

// Claim 3: `save`'s archive is read by the real tools: skopeo inspects it as
// an oci-archive and as a docker-archive, listing the store's layers; copied
// by skopeo to an OCI layout and unpacked by umoci, it gives the tree the
// container shows (the committed change, the deletion, the replaced dir).
fn claim_save_is_read_by_skopeo_and_umoci(who: Who) {
    let sandbox = sandbox(who);
    commit_a_layer(&sandbox);
    ok(&sandbox, &["rm", "-f", "second"]);
    let saved = sandbox.path().join("app.tar");
    ok(&sandbox, &["save", "app:v1", "-o", text(&saved)]);
    // The same image saves to the same bytes.
    let again = sandbox.path().join("again.tar");
    ok(&sandbox, &["save", "app:v1", "-o", text(&again)]);
    assert!(
        fs::read(&saved).unwrap() == fs::read(&again).unwrap(),
        "two saves differ"
    );
    let layers = layer_digests(&sandbox, "app:v1");
    for transport in ["oci-archive", "docker-archive"] {
        let image = format!("{transport}:{}", saved.display());
        let inspected = tool("skopeo", &["inspect", &image], "skopeo");
        let inspected: serde_json::Value = serde_json::from_str(&inspected).unwrap();
        assert_eq!(
            inspected["Layers"],
            serde_json::json!(layers),
            "{transport}"
        );
    }
    let layout = sandbox.path().join("copied");
    let dest = format!("oci:{}:x", layout.display());
    let source = format!("oci-archive:{}", saved.display());
    tool("skopeo", &["copy", "-q", &source, &dest], "skopeo");
    let bundle = sandbox.path().join("bundle");
    let image = format!("{}:x", layout.display());
    let mut unpack = vec!["unpack"];
    if !support::suite_is_root() {
        unpack.push("--rootless");
    }
    unpack.extend(["--image", &image, text(&bundle)]);
    tool("umoci", &unpack, "umoci");
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs::read_to_string(rootfs.join("root/new")).unwrap(),
        "new\n"
    );
    assert!(fs::symlink_metadata(rootfs.join("bin/vi")).is_err());
    assert_eq!(list_dir(&rootfs.join("etc/x")), ["only"]);
    let shown = ok(&sandbox, &["run", "--rm", "app:v1", "sh", "-c", TREE]);
    let mut shown: Vec<String> = shown.lines().map(String::from).collect();
    shown.sort();
    let unpacked = tree_of(&rootfs);
    assert!(unpacked.len() > 100, "{unpacked:?}");
    assert_eq!(
        shown, unpacked,
        "the container's tree is not the one umoci unpacked"
    );
}
root_and_rootless!(claim_save_is_read_by_skopeo_and_umoci: save_is_read_by_skopeo_and_umoci, rootless_save_is_read_by_skopeo_and_umoci);

// Claim 5: `commit --flatten` makes an image of one zstd layer of the whole
// tree; `export` writes the whole tree as a plain tarball and never
// replaces an existing file.
#[test]
fn flatten_and_export_write_the_whole_tree() {
    let sandbox = sandbox(Who::Caller);
    let run = ["run", "-d", "--name", "c", "busybox", "sleep", "1000"];
    ok(&sandbox, &run);
    ok(
        &sandbox,
        &["exec", "c", "sh", "-c", "echo f > /root/f; rm /bin/vi"],
    );
    let printed = ok(&sandbox, &["commit", "--flatten", "c", "flat:v1"]);
    assert_eq!(
        printed,
        format!("sha256:{}\n", image_id(&sandbox, "flat:v1"))
    );
    let manifest = stored_manifest(&sandbox, "flat:v1");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let layer = blob_path(&sandbox, layers[0]["digest"].as_str().unwrap());
    assert!(fs::read(&layer).unwrap().starts_with(&ZSTD_MAGIC));
    let whole = |names: &BTreeSet<String>, what: &str| {
        for present in ["bin/busybox", "bin/sh", "etc/passwd", "root/f"] {
            assert!(names.contains(present), "{what} lacks {present}");
        }
        assert!(!names.contains("bin/vi"), "{what} holds the deleted bin/vi");
        assert!(
            !names.iter().any(|n| n.contains(".wh.")),
            "{what} holds whiteouts"
        );
    };
    whole(&member_names(&layer), "the flattened layer");
    let config = stored_config(&sandbox, "flat:v1");
    let plain = zstd::decode_all(&fs::read(&layer).unwrap()[..]).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([format!("sha256:{}", sha256(&plain))]),
        "the config's diff_id is not the digest of the layer decompressed"
    );
    let shown = ok(&sandbox, &["run", "--rm", "flat:v1", "cat", "/root/f"]);
    assert_eq!(shown, "f\n");

    let exported = sandbox.path().join("F.tar");
    let printed = ok(&sandbox, &["export", "c", "-o", text(&exported)]);
    assert_eq!(printed, format!("{}\n", exported.display()));
    let bytes = fs::read(&exported).unwrap();
    assert!(!bytes.starts_with(&[0x1f, 0x8b]), "export is not plain tar");
    whole(&member_names(&exported), "the export");
    let taken = sandbox.path().join("taken.tar");
    fs::write(&taken, "keep me").unwrap();
    for existing in [&exported, &taken] {
        let before = fs::read(existing).unwrap();
        let out = quiet(&sandbox, &["export", "c", "-o", text(existing)]);
        assert_eq!(out.code, Some(125), "{out:#?}");
        assert!(out.stderr.contains("already exists"), "{out:#?}");
        assert_eq!(fs::read(existing).unwrap(), before, "{existing:?} changed");
    }
    ok(&sandbox, &["rm", "-f", "c"]);
}

// Claim 6: tag gives an image a second name; rmi of one of two names only
// untags; rmi of an image a (stopped) container uses is refused naming the
// fix, and -f untags it, leaving it as <none>; rmi of its last name once
// no container uses it deletes it, its blobs and its unpacked layer.
#[test]
fn tag_and_rmi_untag_then_delete_what_only_the_image_used() {
    let sandbox = sandbox(Who::Caller);
    commit_one(&sandbox, "c1", "app:v1", "one");
    let id = image_id(&sandbox, "app:v1");
    let manifest = stored_manifest(&sandbox, "app:v1");
    let manifest_digest = manifest_digest(&sandbox, "app:v1");
    let new_layer = layer_digests(&sandbox, "app:v1").pop().unwrap();
    ok(&sandbox, &["tag", "app:v1", "app:v2"]);
    let rows = image_rows(&sandbox);
    for tag in ["v1", "v2"] {
        let row = ("app".to_string(), tag.to_string(), id[..12].to_string());
        assert!(rows.contains(&row), "{row:?} not in {rows:?}");
    }
    let blobs = blob_count(&sandbox);
    assert_eq!(ok(&sandbox, &["rmi", "app:v1"]), "Untagged: app:v1\n");
    assert!(!index_text(&sandbox).contains("app:v1"));
    assert_eq!(blob_count(&sandbox), blobs, "untagging removed blobs");

    ok(&sandbox, &["run", "--name", "user", "app:v2", "true"]);
    assert!(unpacked_layers(&sandbox).contains(&new_layer[7..]));
    let (index, blobs) = (index_text(&sandbox), blob_count(&sandbox));
    let out = quiet(&sandbox, &["rmi", "app:v2"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains("used by a container") && out.stderr.contains("rmi -f"),
        "{out:#?}"
    );
    assert_eq!(
        index_text(&sandbox),
        index,
        "a refused rmi changed the index"
    );
    assert_eq!(blob_count(&sandbox), blobs);

    assert_eq!(ok(&sandbox, &["rmi", "-f", "app:v2"]), "Untagged: app:v2\n");
    let none = (
        "<none>".to_string(),
        "<none>".to_string(),
        id[..12].to_string(),
    );
    assert!(
        image_rows(&sandbox).contains(&none),
        "{:?}",
        image_rows(&sandbox)
    );
    let ran = ok(&sandbox, &["ps", "-a"]);
    assert!(ran.contains("user"), "{ran}");
    ok(&sandbox, &["rm", "user"]);

    ok(&sandbox, &["tag", &id[..12], "app:v3"]);
    let out = ok(&sandbox, &["rmi", "app:v3"]);
    assert_eq!(out, format!("Untagged: app:v3\nDeleted: sha256:{id}\n"));
    assert!(!image_rows(&sandbox).iter().any(|r| r.2 == id[..12]));
    let digests = [
        &manifest_digest,
        manifest["config"]["digest"].as_str().unwrap(),
        &new_layer,
    ];
    for digest in digests {
        assert!(!blob_path(&sandbox, digest).exists(), "{digest} stayed");
    }
    assert!(
        !unpacked_layers(&sandbox).contains(&new_layer[7..]),
        "the image's unpacked layer stayed"
    );
    let shown = ok(&sandbox, &["run", "--rm", "busybox", "echo", "still"]);
    assert_eq!(shown, "still\n");
}

// Claim 7: bad input is refused in one line, and nothing is half-made: a
// root filesystem tarball given to `load`, a reference that is not one, an
// image that does not exist given to `save` (no file made).
#[test]
fn bad_input_is_refused_and_nothing_is_half_made() {
    let sandbox = sandbox(Who::Caller);
    let flat = sandbox.path().join("rootfs.tar");
    fs::copy(support::busybox_image(), &flat).unwrap();
    let (index, blobs) = (index_text(&sandbox), blob_count(&sandbox));
    let cases: [(&[&str], &str); 3] = [
        (&["load", "-i", text(&flat)], "is a root filesystem"),
        (&["tag", "busybox", "Bad:Name"], "invalid image reference"),
        (&["save", "nosuch", "-o", "f"], "no such image"),
    ];
    for (args, expected) in cases {
        let out = quiet(&sandbox, args);
        assert_eq!(out.code, Some(125), "{args:?}: {out:#?}");
        assert_eq!(out.stdout, "", "{args:?}");
        let errors = out.error_lines();
        assert_eq!(errors.len(), 1, "{out:#?}");
        assert!(errors[0].contains(expected), "{args:?}: {out:#?}");
    }
    assert!(!sandbox.path().join("f").exists(), "save made a file");
    assert_eq!(index_text(&sandbox), index, "images/index.json changed");
    assert_eq!(blob_count(&sandbox), blobs, "blobs were stored");
    let rows = image_rows(&sandbox);
    assert!(
        rows.iter().all(|r| r.0 == "busybox"),
        "the refused commands stored images: {rows:?}"
    );
}

// Claim 6 (the rest): rmi deletes only what no other image needs: the
// unpacked layer of the busybox tarball, which `run busybox` still uses,
// stays, and busybox is not unpacked again.
#[test]
fn rmi_keeps_the_layer_the_busybox_tarball_still_uses() {
    let sandbox = sandbox(Who::Caller);
    commit_one(&sandbox, "c1", "app:v1", "one");
    let busybox = sha256(&fs::read(support::busybox_image()).unwrap());
    assert!(unpacked_layers(&sandbox).contains(&busybox));
    let out = ok(&sandbox, &["rmi", "app:v1"]);
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert!(
        unpacked_layers(&sandbox).contains(&busybox),
        "rmi removed the layer busybox runs on"
    );
    let out = sandbox.run(CH5, &["run", "--rm", "busybox", "true"]);
    out.assert_ok();
    assert!(
        !out.stderr.contains("into layer"),
        "busybox was unpacked again: {out:#?}"
    );
    // Nothing the store no longer names is left in blobs/.
    let blobs = sandbox.data_root().join("blobs/sha256");
    let left: Vec<_> = fs::read_dir(&blobs).map_or(Vec::new(), |d| d.flatten().collect());
    assert!(left.is_empty(), "{left:?}");
}

/// Where a byte of bin/busybox's data lies in a docker-archive: inside its
/// largest layer member (an uncompressed tar), so that changing it keeps
/// both tars valid.
fn busybox_byte(archive: &[u8]) -> usize {
    let mut outer = tar::Archive::new(archive);
    let mut best = (0, 0);
    for entry in outer.entries().unwrap() {
        let entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        if name.ends_with(".tar") && entry.size() > best.1 {
            best = (entry.raw_file_position() as usize, entry.size());
        }
    }
    let layer = &archive[best.0..best.0 + best.1 as usize];
    let mut inner = tar::Archive::new(layer);
    for entry in inner.entries().unwrap() {
        let entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("bin/busybox") {
            return best.0 + entry.raw_file_position() as usize + entry.size() as usize / 2;
        }
    }
    panic!("no bin/busybox in the archive's largest layer");
}

// Claim 7 (the rest): a docker-archive whose layer bytes were altered (the
// tar still valid) is refused naming the digest mismatch, by load and by
// run; the store's index gains nothing.
#[test]
fn a_docker_archive_with_altered_layer_bytes_is_refused() {
    let sandbox = sandbox(Who::Caller);
    let saved = sandbox.path().join("saved.tar");
    ok(&sandbox, &["save", "busybox", "-o", text(&saved)]);
    let docker = sandbox.path().join("docker.tar");
    let source = format!("oci-archive:{}", saved.display());
    let dest = format!("docker-archive:{}:bad/image:v1", docker.display());
    tool("skopeo", &["copy", "-q", &source, &dest], "skopeo");
    let mut bytes = fs::read(&docker).unwrap();
    let at = busybox_byte(&bytes);
    bytes[at] ^= 0x01;
    let altered = sandbox.path().join("altered.tar");
    fs::write(&altered, &bytes).unwrap();
    let (index, rows) = (index_text(&sandbox), image_rows(&sandbox));
    let out = quiet(&sandbox, &["load", "-i", text(&altered)]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{out:#?}");
    assert!(errors[0].contains("digest"), "{out:#?}");
    assert_eq!(index_text(&sandbox), index, "images/index.json changed");
    assert_eq!(image_rows(&sandbox), rows);
    let out = quiet(&sandbox, &["run", "--rm", text(&altered), "echo", "ran"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(out.error_lines()[0].contains("diff_ids"), "{out:#?}");
    // The archive as skopeo wrote it loads and runs.
    let out = ok(&sandbox, &["load", "-i", text(&docker)]);
    assert!(out.contains("Loaded image: bad/image:v1"), "{out}");
}

// An archive of two images that share a tag: PATH:TAG is ambiguous, and is
// refused listing both, not run as the first (issue 12: "a multi-image
// archive silently runs its first image"); PATH:NAME:TAG picks one.
#[test]
fn a_tag_two_images_of_an_archive_share_is_refused_as_ambiguous() {
    let sandbox = sandbox(Who::Caller);
    commit_one(&sandbox, "c1", "a:v1", "one");
    commit_one(&sandbox, "c2", "b:v1", "two");
    let multi = sandbox.path().join("multi.tar");
    ok(&sandbox, &["save", "a:v1", "b:v1", "-o", text(&multi)]);
    let image = format!("{}:v1", multi.display());
    let out = quiet(&sandbox, &["run", "--rm", &image, "cat", "/which"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("a:v1") && out.stderr.contains("b:v1"),
        "{out:#?}"
    );
    let image = format!("{}:b:v1", multi.display());
    let out = quiet(&sandbox, &["run", "--rm", &image, "cat", "/which"]);
    out.assert_ok();
    assert_eq!(out.stdout, "two\n");
}

// Claim 3 (podman): podman loads stepbox's save of a commit, gives it the
// same image ID (the config's digest) and the same tree: the change there,
// the deleted file gone, the replaced directory holding only its new file.
// The same for a flattened commit, whose one layer is zstd.
// podman keeps its images in a storage of the test's own (--root), never in
// the machine's.
#[test]
fn podman_loads_a_saved_commit_with_its_id_and_tree() {
    if !support::suite_is_root() {
        support::skip("podman's rootful storage, in a directory of the test's");
        return;
    }
    let sandbox = sandbox(Who::Caller);
    commit_a_layer(&sandbox);
    ok(&sandbox, &["commit", "--flatten", "second", "flat:v1"]);
    ok(&sandbox, &["rm", "-f", "second"]);
    let saved = sandbox.path().join("app.tar");
    ok(&sandbox, &["save", "app:v1", "flat:v1", "-o", text(&saved)]);
    let storage = sandbox.path().join("podman");
    let (root, run) = (storage.join("root"), storage.join("run"));
    let podman = |args: &[&str]| {
        let mut all = vec![
            "--root",
            text(&root),
            "--runroot",
            text(&run),
            "--storage-driver",
            "vfs",
        ];
        all.extend_from_slice(args);
        tool("podman", &all, "podman")
    };
    let loaded = podman(&["load", "-i", text(&saved)]);
    for image in ["app:v1", "flat:v1"] {
        let name = format!("localhost/{image}");
        assert!(
            loaded.contains(&format!("Loaded image: {name}")),
            "{loaded}"
        );
        let id = podman(&["images", "--format", "{{.ID}}", &name]);
        assert_eq!(id.trim(), &image_id(&sandbox, image)[..12], "{image}");
        let mounted = podman(&["image", "mount", &name]);
        let rootfs = PathBuf::from(mounted.trim());
        assert_eq!(
            fs::read_to_string(rootfs.join("root/new")).unwrap(),
            "new\n",
            "{image}"
        );
        assert!(
            fs::symlink_metadata(rootfs.join("bin/vi")).is_err(),
            "{image}"
        );
        assert_eq!(list_dir(&rootfs.join("etc/x")), ["only"], "{image}");
        podman(&["image", "unmount", &name]);
    }
    podman(&["rmi", "-a", "-f"]);
}

// What a hostile review found (each fails on the code before its fix).

/// A run of chapter 3 of the stored image `app:v1`, in the background: it
/// waits, then reads a file of its image.
fn ch3_reading_later(sandbox: &Sandbox) -> std::process::Child {
    const CH3: &str = env!("CARGO_BIN_EXE_ch3-overlay");
    let mut command = sandbox.command(
        CH3,
        &[
            "-q",
            "--image",
            "app:v1",
            "--",
            "sh",
            "-c",
            "sleep 2; cat /which",
        ],
    );
    command.stdout(std::process::Stdio::piped());
    command.spawn().unwrap()
}

// rmi leaves the layers of a running container of any chapter (chapter 3
// writes no record): the run holds a lock on each; once it ends, the next
// rmi sweeps what no image needs.
#[test]
fn rmi_keeps_the_layers_a_running_container_uses() {
    let sandbox = sandbox(Who::Caller);
    commit_one(&sandbox, "c1", "app:v1", "one");
    let top = layer_digests(&sandbox, "app:v1")[1].clone();
    let top = top.strip_prefix("sha256:").unwrap().to_string();
    let child = ch3_reading_later(&sandbox);
    std::thread::sleep(std::time::Duration::from_millis(800));
    ok(&sandbox, &["rmi", "app:v1"]);
    assert!(
        unpacked_layers(&sandbox).contains(&top),
        "rmi removed a layer in use"
    );
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\n");
    // The run is over: the next rmi takes the layer no image needs.
    commit_one(&sandbox, "c2", "other:v1", "two");
    ok(&sandbox, &["rmi", "other:v1"]);
    assert!(
        !unpacked_layers(&sandbox).contains(&top),
        "the orphan layer stayed"
    );
}

/// A layout holding busybox's layer, with `config` as its config blob
/// (whatever it holds) and `extra` as more layers, as an oci-archive.
fn layout_with_config(
    sandbox: &Sandbox,
    name: &str,
    config: &serde_json::Value,
    extra: &[Vec<u8>],
) -> PathBuf {
    let layout = support::oci::Layout::new(&sandbox.path().join(name));
    let busybox = fs::read(support::busybox_image()).unwrap();
    let layers: Vec<support::oci::Layer> = std::iter::once(busybox)
        .chain(extra.iter().cloned())
        .map(|bytes| support::oci::Layer {
            bytes,
            media_type: support::oci::LAYER_TAR.into(),
        })
        .collect();
    let config = serde_json::to_vec(config).unwrap();
    let image = layout.image(&config, &layers, &format!("hostile/{name}:v1"));
    layout.index(&[image]);
    chown_tree(sandbox, &layout.dir);
    support::oci::archive(sandbox, &layout.dir)
}

// A config that is no OCI image config (no os, no architecture), or one
// whose diff_ids do not name the image's layers (one layer listed, two in
// the manifest: an image passing itself off as another's ID), is refused
// by load, which stores nothing, and by run.
#[test]
fn an_image_whose_config_does_not_name_its_layers_is_refused() {
    let sandbox = sandbox(Who::Caller);
    let busybox = fs::read(support::busybox_image()).unwrap();
    let diff = format!("sha256:{}", sha256(&busybox));
    let no_os = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [diff]}});
    let evil = support::tarballs::tarball(&[support::tarballs::Entry::File("evil", "x\n")]);
    let spoof = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff]},
    });
    for (archive, why) in [
        (
            layout_with_config(&sandbox, "noos", &no_os, &[]),
            "is not an OCI image config",
        ),
        (
            layout_with_config(&sandbox, "spoof", &spoof, &[evil]),
            "its config lists 1 layers (diff_ids), its manifest 2",
        ),
    ] {
        let before = (index_text(&sandbox), blob_count(&sandbox));
        let out = quiet(&sandbox, &["load", "-i", text(&archive)]);
        assert_eq!(out.code, Some(125), "{out:#?}");
        assert!(out.error_lines()[0].contains(why), "{out:#?}");
        assert_eq!(
            (index_text(&sandbox), blob_count(&sandbox)),
            before,
            "load left something"
        );
    }
    // Run by path, the spoof is refused too (and before it runs anything).
    let spoofed = sandbox.path().join("spoof.tar");
    let out = quiet(&sandbox, &["run", "--rm", text(&spoofed), "cat", "/evil"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(out.error_lines()[0].contains("diff_ids"), "{out:#?}");
}

// A file the container names .wh.NAME would be read as a deletion by
// every tool that unpacks the layer: commit refuses it, naming it.
#[test]
fn a_file_named_like_a_whiteout_is_not_committed() {
    let sandbox = sandbox(Who::Caller);
    ok(
        &sandbox,
        &[
            "run",
            "--name",
            "w",
            "busybox",
            "sh",
            "-c",
            "echo s > /etc/.wh.passwd",
        ],
    );
    let out = quiet(&sandbox, &["commit", "w", "wh:v1"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(
        out.error_lines()[0].contains("/etc/.wh.passwd is named .wh.*"),
        "{out:#?}"
    );
    assert!(!index_text(&sandbox).contains("wh:v1"));
    ok(&sandbox, &["rm", "w"]);
}

// save reads each blob as run does: a blob replaced by a symlink (to a
// host file of the same size) is refused, not copied into the archive.
#[test]
fn save_refuses_a_blob_that_is_a_symlink() {
    let sandbox = sandbox(Who::Caller);
    commit_one(&sandbox, "c1", "app:v1", "one");
    let top = blob_path(&sandbox, &layer_digests(&sandbox, "app:v1")[1]);
    let size = fs::metadata(&top).unwrap().len() as usize;
    let secret = sandbox.path().join("secret");
    fs::write(&secret, vec![b's'; size]).unwrap();
    fs::remove_file(&top).unwrap();
    std::os::unix::fs::symlink(&secret, &top).unwrap();
    let saved = sandbox.path().join("saved.tar");
    let out = quiet(&sandbox, &["save", "app:v1", "-o", text(&saved)]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(out.error_lines()[0].contains("symlink"), "{out:#?}");
    assert!(!saved.exists());
}

// By ID, rmi removes the image with all its names, as Docker does: with
// several names only under -f.
#[test]
fn rmi_by_id_of_an_image_with_two_names_needs_f() {
    let sandbox = sandbox(Who::Caller);
    commit_one(&sandbox, "c1", "app:v1", "one");
    ok(&sandbox, &["tag", "app:v1", "app:v2"]);
    let id = image_id(&sandbox, "app:v1");
    let out = quiet(&sandbox, &["rmi", &id[..12]]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(out.error_lines()[0].contains("app:v1, app:v2"), "{out:#?}");
    let out = ok(&sandbox, &["rmi", "-f", &id[..12]]);
    assert!(
        out.contains("Untagged: app:v1") && out.contains("Untagged: app:v2"),
        "{out}"
    );
    assert!(out.contains(&format!("Deleted: sha256:{id}")), "{out}");
}

// A docker save archive repacked with `tar -C dir -cf x.tar .` names its
// members ./NAME: it loads as any other.
#[test]
fn a_docker_save_archive_of_dot_slash_names_loads() {
    let sandbox = sandbox(Who::Caller);
    let saved = sandbox.path().join("saved.tar");
    ok(&sandbox, &["save", "busybox", "-o", text(&saved)]);
    let docker = sandbox.path().join("docker.tar");
    let source = format!("oci-archive:{}", saved.display());
    let dest = format!("docker-archive:{}:dot/image:v1", docker.display());
    tool("skopeo", &["copy", "-q", &source, &dest], "skopeo");
    let dir = sandbox.path().join("unpacked");
    fs::create_dir(&dir).unwrap();
    tar::Archive::new(fs::File::open(&docker).unwrap())
        .unpack(&dir)
        .unwrap();
    let repacked = sandbox.path().join("dot.tar");
    tool(
        "tar",
        &["-C", text(&dir), "-cf", text(&repacked), "."],
        "tar",
    );
    let names = tool("tar", &["-tf", text(&repacked)], "tar");
    assert!(names.lines().any(|l| l == "./manifest.json"), "{names}");
    let out = ok(&sandbox, &["load", "-i", text(&repacked)]);
    assert!(out.contains("Loaded image: dot/image:v1"), "{out}");
    ok(&sandbox, &["run", "--rm", "dot/image:v1", "true"]);
}
