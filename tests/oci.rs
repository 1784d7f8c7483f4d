//! Images from the real ecosystem (issue 12, item 1; docs/ch3-overlay.md):
//! an OCI image layout directory, an oci-archive, and Docker ≥ 25's save
//! layout run from chapter 3 on; every blob is checked against its
//! descriptor (size and sha256) before it is used; layers may be tar,
//! tar+gzip or tar+zstd, anything else is refused naming it; xz and bzip2
//! tarballs are refused naming their compression. The layouts are made here
//! byte by byte, and by the real tools (umoci, skopeo) from the busybox image.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::oci::{archive, chown_tree, gzip, sha256, zstd, Layer, Layout};
use support::oci::{LAYER_GZIP, LAYER_TAR, LAYER_ZSTD};
use support::tarballs::{tarball, Entry};
use support::{chown_to_sandbox_user, tool, Outcome, Sandbox, Who};

const CH2: &str = env!("CARGO_BIN_EXE_ch2-rootfs");
const CH3: &str = env!("CARGO_BIN_EXE_ch3-overlay");
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

/// The busybox root filesystem as the bottom layer, and a second layer that
/// adds /etc/motd and deletes /linuxrc with a whiteout.
fn two_layers(bottom_type: &str, top_type: &str) -> Vec<Layer> {
    let busybox = fs::read(support::busybox_image()).unwrap();
    let top = tarball(&[
        Entry::Dir("etc"),
        Entry::File("etc/motd", "from the top layer\n"),
        Entry::File(".wh.linuxrc", ""),
    ]);
    let stored = |bytes: Vec<u8>, kind: &str| Layer {
        bytes: match kind {
            LAYER_GZIP => gzip(&bytes),
            LAYER_ZSTD => zstd(&bytes),
            _ => bytes,
        },
        media_type: kind.to_string(),
    };
    vec![stored(busybox, bottom_type), stored(top, top_type)]
}

/// A hand-made layout of `layers` in the sandbox, owned by its user.
fn layout(sandbox: &Sandbox, name: &str, layers: &[Layer]) -> Layout {
    let layout = Layout::new(&sandbox.path().join(name));
    let manifest = layout.manifest(layers, "latest");
    layout.index(&[manifest]);
    chown_tree(sandbox, &layout.dir);
    layout
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

const SHOW: &str = "cat /etc/motd; test -e /linuxrc && echo linuxrc || echo 'linuxrc: gone'";
const SHOWN: &str = "from the top layer\nlinuxrc: gone\n";

// Claim 1: an OCI image layout, as a directory or as an oci-archive, runs
// in chapter 3 and in chapter 5 with its layers in order (the top layer's
// file and whiteout), whether they are stored as tar, tar+gzip or tar+zstd.
fn claim_an_oci_layout_runs_with_its_layers_in_order(who: Who) {
    let sandbox = sandbox(who);
    for (n, (bottom, top)) in [
        (LAYER_GZIP, LAYER_ZSTD),
        (LAYER_TAR, LAYER_GZIP),
        (LAYER_ZSTD, LAYER_TAR),
    ]
    .into_iter()
    .enumerate()
    {
        let layout = layout(&sandbox, &format!("image{n}"), &two_layers(bottom, top));
        let archive = archive(&sandbox, &layout.dir);
        for image in [&layout.dir, &archive] {
            let out = quiet(
                &sandbox,
                CH3,
                &["--image", text(image), "--", "sh", "-c", SHOW],
            );
            assert_eq!(out.code, Some(0), "{bottom} + {top}, {image:?}: {out:#?}");
            assert_eq!(out.stdout, SHOWN, "{bottom} + {top}");
            let out = quiet(
                &sandbox,
                CH5,
                &["run", "--rm", text(image), "sh", "-c", SHOW],
            );
            assert_eq!(out.code, Some(0), "{out:#?}");
            assert_eq!(out.stdout, SHOWN);
        }
    }
}
root_and_rootless!(claim_an_oci_layout_runs_with_its_layers_in_order: an_oci_layout_runs_with_its_layers_in_order, rootless_an_oci_layout_runs_with_its_layers_in_order);

// Claim 2: a layer blob whose bytes do not match its descriptor's sha256,
// or whose size differs, is refused in one line naming the layer and the
// two digests (or sizes); no layer of that content is registered, and no
// scratch directory is left.
fn claim_a_blob_that_does_not_match_its_descriptor_is_refused(who: Who) {
    let sandbox = sandbox(who);
    // A changed byte inside the gzip stream, and one at the very end.
    for (n, at_end) in [(0, false), (1, true)] {
        let layout = layout(
            &sandbox,
            &format!("bad{n}"),
            &two_layers(LAYER_TAR, LAYER_GZIP),
        );
        let blob = layout.layer_blob(1);
        let mut bytes = fs::read(&blob).unwrap();
        let at = if at_end { bytes.len() - 1 } else { 40 };
        bytes[at] ^= 0x01;
        fs::write(&blob, &bytes).unwrap();
        let actual = sha256(&bytes);
        for image in [layout.dir.clone(), archive(&sandbox, &layout.dir)] {
            let out = quiet(&sandbox, CH3, &["--image", text(&image), "--", "true"]);
            assert_eq!(out.code, Some(125), "{out:#?}");
            let errors = out.error_lines();
            assert_eq!(errors.len(), 1, "{out:#?}");
            assert!(
                errors[0].contains("layer 2 of 2 of image")
                    && errors[0]
                        .contains(&format!("has the digest sha256:{actual}, not the sha256:"))
                    && errors[0]
                        .ends_with("its descriptor says: the image is damaged or was altered"),
                "{out:#?}"
            );
            let layers = support::list_dir(&sandbox.data_root().join("layers"));
            assert!(
                !layers.contains(&actual),
                "the damaged layer was registered"
            );
            assert_eq!(
                support::list_dir(&sandbox.data_root().join("tmp")),
                Vec::<String>::new()
            );
        }
    }
    // A size that is not the blob's.
    let layout = Layout::new(&sandbox.path().join("badsize"));
    let mut manifest = layout.manifest(&two_layers(LAYER_TAR, LAYER_TAR), "latest");
    let manifest_path = layout
        .dir
        .join("blobs/sha256")
        .join(&manifest["digest"].as_str().unwrap()[7..]);
    let mut body: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
    let size = body["layers"][1]["size"].as_u64().unwrap();
    body["layers"][1]["size"] = serde_json::json!(size + 512);
    let bytes = serde_json::to_vec(&body).unwrap();
    manifest["digest"] = serde_json::json!(format!("sha256:{}", layout.blob(&bytes)));
    manifest["size"] = serde_json::json!(bytes.len());
    layout.index(&[manifest]);
    chown_tree(&sandbox, &layout.dir);
    let out = quiet(&sandbox, CH3, &["--image", text(&layout.dir), "--", "true"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(
        out.stderr.contains(&format!(
            "holds {size} bytes, not the {} its descriptor says",
            size + 512
        )),
        "{out:#?}"
    );
}
root_and_rootless!(claim_a_blob_that_does_not_match_its_descriptor_is_refused: a_blob_that_does_not_match_its_descriptor_is_refused, rootless_a_blob_that_does_not_match_its_descriptor_is_refused);

// Claim 3: what stepbox cannot or will not read is refused in one line that
// names it: a layer media type it does not unpack, a manifest digest that is
// not sha256 hex (a path such as ../../), an index of several images (their
// names listed), an index.json that is not one; xz and bzip2 tarballs by
// their compression (no raw byte of them printed). A zstd tarball runs.
fn claim_what_cannot_be_read_is_refused_naming_it(who: Who) {
    let sandbox = sandbox(who);
    let mut layers = two_layers(LAYER_TAR, LAYER_TAR);
    layers[1].media_type = "application/vnd.oci.image.layer.v1.tar+lz4".into();
    let odd = layout(&sandbox, "odd", &layers);
    let several = Layout::new(&sandbox.path().join("several"));
    let a = several.manifest(&two_layers(LAYER_TAR, LAYER_TAR), "a");
    let b = several.manifest(&two_layers(LAYER_TAR, LAYER_GZIP), "b");
    several.index(&[a, b]);
    let sneaky = Layout::new(&sandbox.path().join("sneaky"));
    let mut manifest = sneaky.manifest(&two_layers(LAYER_TAR, LAYER_TAR), "latest");
    manifest["digest"] = serde_json::json!("sha256:../../../../etc/passwd");
    sneaky.index(&[manifest]);
    let broken = Layout::new(&sandbox.path().join("broken"));
    fs::write(broken.dir.join("index.json"), "{\"manifests\": 3").unwrap();
    for dir in [&several.dir, &sneaky.dir, &broken.dir] {
        chown_tree(&sandbox, dir);
    }
    let busybox = fs::read(support::busybox_image()).unwrap();
    let compressed = |tool: &str, ext: &str| {
        let path = sandbox.path().join(format!("busybox.tar.{ext}"));
        let out = Command::new(tool)
            .arg("-c")
            .arg(support::busybox_image())
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}: apt-get install xz-utils bzip2"));
        assert!(out.status.success(), "{tool} failed");
        fs::write(&path, out.stdout).unwrap();
        chown_to_sandbox_user(&sandbox, &path);
        path
    };
    let xz = compressed("xz", "xz");
    let bzip2 = compressed("bzip2", "bz2");
    let cases: [(&Path, String); 6] = [
        (&odd.dir, "has the media type application/vnd.oci.image.layer.v1.tar+lz4: stepbox unpacks tar, tar+gzip and tar+zstd layers".into()),
        (&several.dir, "holds 2 images (a, b): say which, as ".into()),
        (&sneaky.dir, "index.json is not an OCI image index".into()),
        (&broken.dir, "index.json is not an OCI image index".into()),
        (&xz, "the image is xz-compressed, which stepbox does not read: decompress it first (unxz FILE), or give a plain, gzip or zstd tarball".into()),
        (&bzip2, "the image is bzip2-compressed, which stepbox does not read: decompress it first (bunzip2 FILE), or give a plain, gzip or zstd tarball".into()),
    ];
    for (image, expected) in &cases {
        let out = quiet(&sandbox, CH3, &["--image", text(image), "--", "true"]);
        assert_eq!(out.code, Some(125), "{image:?}: {out:#?}");
        assert_eq!(out.error_lines().len(), 1, "{out:#?}");
        assert!(
            out.stderr.contains(expected.as_str()),
            "{image:?}: {out:#?}"
        );
        assert!(
            out.stderr.chars().all(|c| c == '\n' || !c.is_control()),
            "a raw control byte reached the terminal: {out:#?}"
        );
    }
    assert!(!sandbox.path().join("etc").exists());
    let zst = sandbox.path().join("busybox.tar.zst");
    fs::write(&zst, zstd(&busybox)).unwrap();
    chown_to_sandbox_user(&sandbox, &zst);
    let out = quiet(
        &sandbox,
        CH3,
        &["--image", text(&zst), "--", "echo", "zstd"],
    );
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(out.stdout, "zstd\n");
}
root_and_rootless!(claim_what_cannot_be_read_is_refused_naming_it: what_cannot_be_read_is_refused_naming_it, rootless_what_cannot_be_read_is_refused_naming_it);

// Claim 4: chapter 2, which runs a root filesystem directly, refuses an OCI
// layout and an oci-archive saying what they are and which chapter runs them.
fn claim_ch2_says_an_oci_image_is_for_chapter_3(who: Who) {
    let sandbox = sandbox(who);
    let layout = layout(&sandbox, "image", &two_layers(LAYER_TAR, LAYER_TAR));
    let archive = archive(&sandbox, &layout.dir);
    for (image, expected) in [
        (&layout.dir, "is an OCI image layout (layers and a manifest), not a root filesystem: chapter 3 on run such images"),
        (&archive, "is a saved image (layers and a manifest: docker save, or an OCI archive), not a root filesystem: chapter 3 on run such images"),
    ] {
        let out = quiet(&sandbox, CH2, &["--image", text(image), "--", "true"]);
        assert_eq!(out.code, Some(125), "{out:#?}");
        assert!(out.stderr.contains(expected), "{out:#?}");
    }
}
root_and_rootless!(claim_ch2_says_an_oci_image_is_for_chapter_3: ch2_says_an_oci_image_is_for_chapter_3, rootless_ch2_says_an_oci_image_is_for_chapter_3);

/// The busybox image made by the real tools: an OCI layout by umoci (two
/// layers: busybox, then a second with /etc/motd and /linuxrc removed),
/// copied by skopeo to an oci-archive, a docker-archive, and a layout with
/// zstd layers.
fn made_by_the_tools(sandbox: &Sandbox) -> Vec<PathBuf> {
    let dir = sandbox.path().join("tools");
    fs::create_dir(&dir).unwrap();
    let at = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let layout = at("umoci");
    let bundle = at("bundle");
    tool("umoci", &["init", "--layout", &layout], "umoci");
    tool(
        "umoci",
        &["new", "--image", &format!("{layout}:latest")],
        "umoci",
    );
    tool(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{layout}:latest"),
            &bundle,
        ],
        "umoci",
    );
    let rootfs = dir.join("bundle/rootfs");
    let mut archive = tar::Archive::new(fs::File::open(support::busybox_image()).unwrap());
    archive.set_preserve_permissions(true);
    archive.unpack(&rootfs).unwrap();
    // --refresh-bundle: the bundle's record of the tree is updated, so the
    // next repack makes a layer of the changes only (two layers in all).
    tool(
        "umoci",
        &[
            "repack",
            "--refresh-bundle",
            "--image",
            &format!("{layout}:latest"),
            &bundle,
        ],
        "umoci",
    );
    fs::write(rootfs.join("etc/motd"), "from the top layer\n").unwrap();
    fs::remove_file(rootfs.join("linuxrc")).unwrap();
    tool(
        "umoci",
        &["repack", "--image", &format!("{layout}:latest"), &bundle],
        "umoci",
    );
    // Two layers: busybox, then the change.
    let blob = |digest: &str| {
        let path = Path::new(&layout).join("blobs/sha256").join(&digest[7..]);
        serde_json::from_slice::<serde_json::Value>(&fs::read(path).unwrap()).unwrap()
    };
    let index = serde_json::from_slice::<serde_json::Value>(
        &fs::read(Path::new(&layout).join("index.json")).unwrap(),
    )
    .unwrap();
    let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        2,
        "{manifest}"
    );
    let source = format!("oci:{layout}:latest");
    let targets = [
        ("oci-archive", at("skopeo-oci.tar"), vec![]),
        ("docker-archive", at("skopeo-docker.tar"), vec![]),
        (
            "oci",
            at("skopeo-zstd"),
            vec!["--dest-compress-format", "zstd"],
        ),
    ];
    let mut images = vec![PathBuf::from(&layout)];
    for (transport, path, extra) in targets {
        let mut args = vec!["copy", "-q"];
        args.extend(extra);
        let dest = match transport {
            "docker-archive" => format!("{transport}:{path}:stepbox/test:latest"),
            "oci" => format!("{transport}:{path}:latest"),
            _ => format!("{transport}:{path}"),
        };
        args.extend([source.as_str(), dest.as_str()]);
        tool("skopeo", &args, "skopeo");
        images.push(PathBuf::from(path));
    }
    chown_tree(sandbox, &dir);
    images
}

// Claim 5: images made by the real tools run: an OCI layout by umoci (two
// layers), and skopeo's copies of it as an oci-archive, a docker-archive
// and a layout with zstd layers, each in chapter 3 and chapter 5.
fn claim_images_made_by_umoci_and_skopeo_run(who: Who) {
    let sandbox = sandbox(who);
    for image in made_by_the_tools(&sandbox) {
        let out = quiet(
            &sandbox,
            CH3,
            &["--image", text(&image), "--", "sh", "-c", SHOW],
        );
        assert_eq!(out.code, Some(0), "{image:?}: {out:#?}");
        assert_eq!(out.stdout, SHOWN, "{image:?}");
        let out = quiet(
            &sandbox,
            CH5,
            &["run", "--rm", text(&image), "sh", "-c", SHOW],
        );
        assert_eq!(out.code, Some(0), "{image:?}: {out:#?}");
        assert_eq!(out.stdout, SHOWN, "{image:?}");
    }
}
root_and_rootless!(claim_images_made_by_umoci_and_skopeo_run: images_made_by_umoci_and_skopeo_run, rootless_images_made_by_umoci_and_skopeo_run);

// Claim 6: a layout's blob that is a symlink (to a host file, say
// /etc/shadow) is refused as one, never followed: neither its bytes nor
// its size reach the learner.
fn claim_a_symlinked_blob_is_refused_not_followed(who: Who) {
    let sandbox = sandbox(who);
    let layout = layout(&sandbox, "linked", &two_layers(LAYER_TAR, LAYER_TAR));
    let blob = layout.layer_blob(1);
    fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", &blob).unwrap();
    let out = quiet(&sandbox, CH3, &["--image", text(&layout.dir), "--", "true"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{out:#?}");
    assert!(
        errors[0].ends_with(
            "is a symlink, or lies behind one: an image layout's files must be regular files in it"
        ),
        "{out:#?}"
    );
    assert!(!errors[0].contains("bytes"), "{out:#?}");
}
root_and_rootless!(claim_a_symlinked_blob_is_refused_not_followed: a_symlinked_blob_is_refused_not_followed, rootless_a_symlinked_blob_is_refused_not_followed);
