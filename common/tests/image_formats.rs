//! Telling image formats apart (common::image, ch2 to ch5): a plain tar, a
//! gzip-compressed tar (found by its magic bytes, not its name), a `docker
//! save` archive (a manifest.json listing layer members), and a directory.
//! `images` (ch5) shows each one's layer count with image::layer_count.

use std::fs;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use common::dataroot::DataRoot;
use common::image::{self, Source};

// --------------------------------------------------------------- archives

/// A tar archive holding `files` (path, contents), plus a `bin/` directory.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    builder.append_data(&mut dir, "bin/", &[][..]).unwrap();
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        builder.append_data(&mut header, path, *bytes).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A `docker save` archive: one `N/layer.tar` member per layer and a
/// manifest.json listing them, bottom first.
fn docker_save(layers: &[Vec<u8>]) -> Vec<u8> {
    let members: Vec<String> = (0..layers.len())
        .map(|i| format!("{i}/layer.tar"))
        .collect();
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": ["test:latest"],
        "Layers": members,
    }])
    .to_string();
    let mut files: Vec<(&str, &[u8])> = members
        .iter()
        .zip(layers)
        .map(|(m, l)| (m.as_str(), l.as_slice()))
        .collect();
    files.push(("config.json", b"{}"));
    files.push(("manifest.json", manifest.as_bytes()));
    tar_of(&files)
}

fn rootfs_tar() -> Vec<u8> {
    tar_of(&[("bin/sh", b"#!shell"), ("etc/hostname", b"box\n")])
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

fn read_all(mut reader: impl Read) -> Vec<u8> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).unwrap();
    bytes
}

fn data_root() -> (tempfile::TempDir, DataRoot) {
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::open(Some(&dir.path().join("root"))).unwrap();
    (dir, root)
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

const NOT_A_TAR_START: &str = "the image is not a readable tar archive (";
const NOT_A_TAR_END: &str = "): check the file, or re-export it";

// ------------------------------------------------------- layer_count (images)

#[test]
fn a_plain_rootfs_tar_is_one_layer() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "flat.tar", &rootfs_tar());
    assert_eq!(image::layer_count(&path).unwrap(), 1);
}

#[test]
fn a_gzip_rootfs_tar_is_one_layer() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "flat.tar.gz", &gzip(&rootfs_tar()));
    assert_eq!(image::layer_count(&path).unwrap(), 1);
}

#[test]
fn a_docker_save_archive_has_as_many_layers_as_its_manifest_lists() {
    let dir = tempfile::tempdir().unwrap();
    let saved = docker_save(&[rootfs_tar(), tar_of(&[("etc/motd", b"hi")])]);
    let path = write(dir.path(), "saved.tar", &saved);
    assert_eq!(image::layer_count(&path).unwrap(), 2);
}

#[test]
fn a_gzip_docker_save_archive_is_found_by_its_manifest_too() {
    let dir = tempfile::tempdir().unwrap();
    let layers = [rootfs_tar(), tar_of(&[]), tar_of(&[("a", b"a")])];
    let path = write(dir.path(), "saved.tgz", &gzip(&docker_save(&layers)));
    assert_eq!(image::layer_count(&path).unwrap(), 3);
}

#[test]
fn gzip_is_found_by_its_magic_bytes_not_by_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let layers = [rootfs_tar(), rootfs_tar()];
    let gzip_named_tar = write(dir.path(), "saved.tar", &gzip(&docker_save(&layers)));
    let tar_named_gz = write(dir.path(), "saved.tar.gz", &docker_save(&layers));
    assert_eq!(image::layer_count(&gzip_named_tar).unwrap(), 2);
    assert_eq!(image::layer_count(&tar_named_gz).unwrap(), 2);
}

#[test]
fn a_rootfs_with_a_manifest_json_of_its_own_is_still_one_layer() {
    let dir = tempfile::tempdir().unwrap();
    for manifest in [&br#"{"name": "my-app"}"#[..], b"[]", b"not json", b""] {
        let tar = tar_of(&[("bin/sh", b"#!shell"), ("manifest.json", manifest)]);
        let path = write(dir.path(), "flat.tar", &tar);
        assert_eq!(
            image::layer_count(&path).unwrap(),
            1,
            "manifest.json {:?}",
            String::from_utf8_lossy(manifest)
        );
    }
}

#[test]
fn only_a_top_level_manifest_json_makes_a_saved_image() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = br#"[{"Layers": ["a/layer.tar", "b/layer.tar"]}]"#;
    let nested = tar_of(&[("etc/manifest.json", manifest)]);
    let top = tar_of(&[("manifest.json", manifest)]);
    assert_eq!(
        image::layer_count(&write(dir.path(), "n.tar", &nested)).unwrap(),
        1
    );
    assert_eq!(
        image::layer_count(&write(dir.path(), "t.tar", &top)).unwrap(),
        2
    );
}

#[test]
fn an_empty_file_counts_as_one_layer() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "empty.tar", b"");
    assert_eq!(image::layer_count(&path).unwrap(), 1);
}

#[test]
fn garbage_is_refused_as_not_a_readable_tar() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "junk.tar", &[b'j'; 1024]);
    let error = image::layer_count(&path).unwrap_err().to_string();
    assert!(error.starts_with(NOT_A_TAR_START), "{error}");
    assert!(error.ends_with(NOT_A_TAR_END), "{error}");
}

#[test]
fn a_corrupt_gzip_stream_is_refused_as_not_a_readable_tar() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = gzip(&rootfs_tar());
    let middle = bytes.len() / 2;
    bytes.truncate(middle);
    bytes.extend([0xff; 64]);
    let path = write(dir.path(), "broken.tar.gz", &bytes);
    let error = image::layer_count(&path).unwrap_err().to_string();
    assert!(error.starts_with(NOT_A_TAR_START), "{error}");
    assert!(error.ends_with(NOT_A_TAR_END), "{error}");
}

#[test]
fn a_missing_image_file_is_named_with_its_errno() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.tar");
    assert_eq!(
        image::layer_count(&path).unwrap_err().to_string(),
        format!(
            "opening image {}: No such file or directory (os error 2)",
            path.display()
        )
    );
}

// ------------------------------------------------------------- open_tarball

#[test]
fn a_plain_and_a_gzip_tarball_open_to_the_same_tar_stream() {
    let dir = tempfile::tempdir().unwrap();
    let tar = rootfs_tar();
    let plain = write(dir.path(), "a.tar", &tar);
    let gz = write(dir.path(), "a.tar.gz", &gzip(&tar));
    assert_eq!(read_all(image::open_tarball(&plain).unwrap()), tar);
    assert_eq!(read_all(image::open_tarball(&gz).unwrap()), tar);
}

#[test]
fn concatenated_gzip_members_are_read_as_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let tar = rootfs_tar();
    let (head, tail) = tar.split_at(700);
    let mut bytes = gzip(head);
    bytes.extend(gzip(tail));
    let path = write(dir.path(), "two-members.tar.gz", &bytes);
    assert_eq!(read_all(image::open_tarball(&path).unwrap()), tar);
}

#[test]
fn no_more_than_the_size_at_opening_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let tar = rootfs_tar();
    let path = write(dir.path(), "growing.tar", &tar);
    let reader = image::open_tarball(&path).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[b'x'; 4096])
        .unwrap();
    assert_eq!(read_all(reader).len(), tar.len());
}

#[test]
fn a_fifo_is_refused_at_once_instead_of_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipe.tar");
    mkfifo(&path);
    let error = image::open_tarball(&path).err().expect("a FIFO was opened");
    assert_eq!(
        error.to_string(),
        format!(
            "image {} is not a regular file (a FIFO): give a rootfs tarball or directory",
            path.display()
        )
    );
    let error = image::layer_count(&path).unwrap_err();
    assert!(error.to_string().contains("(a FIFO)"), "{error}");
}

#[test]
fn a_device_is_refused_as_a_character_device() {
    let error = image::open_tarball(Path::new("/dev/zero"))
        .err()
        .expect("/dev/zero was opened");
    assert_eq!(
        error.to_string(),
        "image /dev/zero is not a regular file (a character device): give a rootfs tarball or directory"
    );
}

// --------------------------------------------------------------- decompress

#[test]
fn bytes_without_the_gzip_magic_pass_through_untouched() {
    for bytes in [&b""[..], b"\x1f", b"\x1f\x8c rest", b"plain"] {
        let out = read_all(image::decompress(BufReader::new(bytes)).unwrap());
        assert_eq!(out, bytes);
    }
}

#[test]
fn bytes_with_the_gzip_magic_are_gunzipped() {
    let compressed = gzip(b"hello");
    assert_eq!(
        read_all(image::decompress(BufReader::new(&compressed[..])).unwrap()),
        b"hello"
    );
}

/// A reader that gives one byte per read, as a pipe or a decoder may.
struct OneByteAtATime<'a>(&'a [u8]);

impl Read for OneByteAtATime<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some((first, rest)) = self.0.split_first() else {
            return Ok(0);
        };
        match buf.first_mut() {
            Some(slot) => *slot = *first,
            None => return Ok(0),
        }
        self.0 = rest;
        Ok(1)
    }
}

#[test]
fn gzip_is_found_even_when_the_first_read_gives_one_byte() {
    let compressed = gzip(b"hello");
    let reader = BufReader::new(OneByteAtATime(&compressed));
    assert_eq!(read_all(image::decompress(reader).unwrap()), b"hello");
}

// ------------------------------------------------------------ image::find

#[test]
fn a_directory_given_by_path_is_a_directory_image_named_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_root_dir, root) = data_root();
    let rootfs = dir.path().join("alpine");
    fs::create_dir(&rootfs).unwrap();
    let found = image::find(&root, rootfs.to_str().unwrap()).unwrap();
    assert_eq!(found.name, "alpine");
    assert!(matches!(found.source, Source::Directory(ref p) if *p == rootfs));
}

#[test]
fn a_tarball_given_by_path_is_named_without_its_extension() {
    let dir = tempfile::tempdir().unwrap();
    let (_root_dir, root) = data_root();
    for (file, name) in [
        ("alpine.tar", "alpine"),
        ("alpine.tar.gz", "alpine"),
        ("alpine.tgz", "alpine"),
        ("alpine-3.19.tar", "alpine-3.19"),
        ("rootfs.img", "rootfs.img"),
    ] {
        let path = write(dir.path(), file, b"");
        let found = image::find(&root, path.to_str().unwrap()).unwrap();
        assert_eq!(found.name, name, "{file}");
        assert!(
            matches!(found.source, Source::Tarball(ref p) if *p == path),
            "{file}: {:?}",
            found.source
        );
    }
}

#[test]
fn an_image_name_is_looked_up_in_the_data_roots_images_plain_tar_first() {
    let (_dir, root) = data_root();
    let images = root.dir("images").unwrap();
    fs::write(images.join("both.tar"), b"").unwrap();
    fs::write(images.join("both.tar.gz"), b"").unwrap();
    fs::write(images.join("zipped.tar.gz"), b"").unwrap();
    let both = image::find(&root, "both").unwrap();
    assert!(matches!(both.source, Source::Tarball(ref p) if *p == images.join("both.tar")));
    let zipped = image::find(&root, "zipped").unwrap();
    assert!(matches!(zipped.source, Source::Tarball(ref p) if *p == images.join("zipped.tar.gz")));
}

#[test]
fn an_unknown_image_name_is_refused_with_where_it_was_looked_for() {
    let (_dir, root) = data_root();
    assert_eq!(
        image::find(&root, "nosuch").unwrap_err().to_string(),
        format!(
            "no image \"nosuch\" in the store or in {}: load it (ch5-commit load -i FILE), \
             give the path of an image file or directory (./nosuch), or use busybox",
            root.path().join("images").display()
        )
    );
}

#[test]
fn a_missing_image_path_is_refused_with_its_errno() {
    let (_dir, root) = data_root();
    assert_eq!(
        image::find(&root, "/nonexistent/stepbox/alpine.tar")
            .unwrap_err()
            .to_string(),
        "image /nonexistent/stepbox/alpine.tar: No such file or directory (os error 2): \
         give an existing rootfs tarball or directory"
    );
}

#[test]
fn a_fifo_given_as_an_image_is_refused_as_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let (_root_dir, root) = data_root();
    let path = dir.path().join("pipe.tar");
    mkfifo(&path);
    assert_eq!(
        image::find(&root, path.to_str().unwrap())
            .unwrap_err()
            .to_string(),
        format!(
            "image {} is not a regular file (a FIFO): give a rootfs tarball or directory",
            path.display()
        )
    );
}

// ----------------------------------------- unpack_rootfs: ch2 takes flat roots

#[test]
fn chapter_two_refuses_a_docker_save_archive_as_not_a_root_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let (_root_dir, root) = data_root();
    let path = write(dir.path(), "saved.tar", &docker_save(&[rootfs_tar()]));
    let found = image::find(&root, path.to_str().unwrap()).unwrap();
    assert_eq!(
        image::unpack_rootfs(&root, &found).unwrap_err().to_string(),
        format!(
            "image {} is a saved image (layers and a manifest: docker save, or an OCI \
             archive), not a root filesystem: chapter 3 on run such images; here, give a \
             flat rootfs tarball \
             (docker export)",
            path.display()
        )
    );
    assert!(!root.path().join("rootfs/saved").exists());
}

#[test]
fn chapter_two_unpacks_a_flat_gzip_tarball() {
    let dir = tempfile::tempdir().unwrap();
    let (_root_dir, root) = data_root();
    let path = write(dir.path(), "flat.tar.gz", &gzip(&rootfs_tar()));
    let found = image::find(&root, path.to_str().unwrap()).unwrap();
    let unpacked = image::unpack_rootfs(&root, &found).unwrap();
    assert_eq!(unpacked, root.path().join("rootfs/flat"));
    assert_eq!(fs::read(unpacked.join("etc/hostname")).unwrap(), b"box\n");
    for needed in ["proc", "dev", "sys", "tmp"] {
        assert!(unpacked.join(needed).is_dir(), "{needed}");
    }
}

#[test]
fn a_directory_image_without_program_directories_is_refused_as_not_a_root() {
    let dir = tempfile::tempdir().unwrap();
    let (_root_dir, root) = data_root();
    let rootfs = dir.path().join("empty");
    fs::create_dir(&rootfs).unwrap();
    let found = image::find(&root, rootfs.to_str().unwrap()).unwrap();
    assert_eq!(
        image::unpack_rootfs(&root, &found).unwrap_err().to_string(),
        format!(
            "image directory {}: {}",
            rootfs.display(),
            common::rootfs::NOT_A_ROOT
        )
    );
}

#[test]
fn a_directory_image_without_a_mount_point_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_root_dir, root) = data_root();
    let rootfs = dir.path().join("almost");
    for sub in ["bin", "proc", "tmp"] {
        fs::create_dir_all(rootfs.join(sub)).unwrap();
    }
    let found = image::find(&root, rootfs.to_str().unwrap()).unwrap();
    assert_eq!(
        image::unpack_rootfs(&root, &found).unwrap_err().to_string(),
        format!(
            "image directory {} has no /dev to mount on: create it (mkdir {})",
            rootfs.display(),
            rootfs.join("dev").display()
        )
    );
    fs::create_dir(rootfs.join("dev")).unwrap();
    assert_eq!(image::unpack_rootfs(&root, &found).unwrap(), rootfs);
}

// ----------------------------------------- image::layers: a saved image's layers

/// A member of a hand-made `docker save` archive.
enum Member<'a> {
    File(&'a str, Vec<u8>),
    Symlink(&'a str, &'a str),
}

/// A `docker save` archive of `members` whose manifest lists `listed`.
fn saved_with(members: &[Member], listed: &[&str]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for member in members {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        match member {
            Member::File(path, bytes) => {
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, path, &bytes[..]).unwrap();
            }
            Member::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                header.set_link_name_literal(target).unwrap();
                builder.append_data(&mut header, path, &[][..]).unwrap();
            }
        }
    }
    let manifest = serde_json::json!([{ "Layers": listed }]).to_string();
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(manifest.len() as u64);
    builder
        .append_data(&mut header, "manifest.json", manifest.as_bytes())
        .unwrap();
    builder.into_inner().unwrap()
}

fn layers_of(root: &DataRoot, path: &Path) -> common::Result<Vec<PathBuf>> {
    let found = image::find(root, path.to_str().unwrap())?;
    image::layers(root, &found).map(|layers| layers.dirs)
}

#[test]
fn a_saved_image_gives_one_layer_directory_per_layer_bottom_first() {
    let dir = tempfile::tempdir().unwrap();
    let (_root_dir, root) = data_root();
    let saved = docker_save(&[rootfs_tar(), tar_of(&[("etc/motd", b"hi")])]);
    let path = write(dir.path(), "saved.tar", &saved);
    let layers = layers_of(&root, &path).unwrap();
    assert_eq!(layers.len(), 2, "{layers:?}");
    assert!(layers[0].join("bin/sh").is_file() && !layers[0].join("etc/motd").exists());
    assert_eq!(fs::read(layers[1].join("etc/motd")).unwrap(), b"hi");
}

#[test]
fn a_flat_tarball_is_one_layer_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (_root_dir, root) = data_root();
    let path = write(dir.path(), "flat.tar.gz", &gzip(&rootfs_tar()));
    let layers = layers_of(&root, &path).unwrap();
    assert_eq!(layers.len(), 1);
    assert!(layers[0].join("bin/sh").is_file());
}

#[test]
fn a_directory_image_is_its_own_single_layer() {
    let dir = tempfile::tempdir().unwrap();
    let (_root_dir, root) = data_root();
    let rootfs = dir.path().join("alpine");
    fs::create_dir(&rootfs).unwrap();
    let layers = layers_of(&root, &rootfs).unwrap();
    assert_eq!(layers, [rootfs]);
}

#[test]
fn a_layer_member_linked_to_an_earlier_one_is_one_layer_directory() {
    // Older docker save stores a repeated layer once and links to it; overlayfs
    // refuses one directory twice, so the layer is kept once, at its last place.
    let dir = tempfile::tempdir().unwrap();
    let (_root_dir, root) = data_root();
    let saved = saved_with(
        &[
            Member::File("0/layer.tar", rootfs_tar()),
            Member::File("1/layer.tar", tar_of(&[("etc/motd", b"hi")])),
            Member::Symlink("2/layer.tar", "../0/layer.tar"),
        ],
        &["0/layer.tar", "1/layer.tar", "2/layer.tar"],
    );
    let path = write(dir.path(), "linked.tar", &saved);
    assert_eq!(image::layer_count(&path).unwrap(), 3);
    let layers = layers_of(&root, &path).unwrap();
    assert_eq!(layers.len(), 2, "{layers:?}");
    assert!(layers[0].join("etc/motd").is_file(), "{layers:?}");
    assert!(layers[1].join("bin/sh").is_file(), "{layers:?}");
}

#[test]
fn a_manifest_listing_a_layer_the_archive_lacks_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_root_dir, root) = data_root();
    let saved = saved_with(
        &[Member::File("0/layer.tar", rootfs_tar())],
        &["0/layer.tar", "9/layer.tar"],
    );
    let path = write(dir.path(), "short.tar", &saved);
    assert_eq!(
        layers_of(&root, &path).unwrap_err().to_string(),
        format!(
            "image {}: manifest.json lists layer \"9/layer.tar\", which the archive does not hold",
            path.display()
        )
    );
}

#[test]
fn a_layer_link_climbing_above_the_archive_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let (_root_dir, root) = data_root();
    let saved = saved_with(
        &[
            Member::File("0/layer.tar", rootfs_tar()),
            Member::Symlink("1/layer.tar", "../../0/layer.tar"),
        ],
        &["0/layer.tar", "1/layer.tar"],
    );
    let path = write(dir.path(), "climbing.tar", &saved);
    assert_eq!(
        layers_of(&root, &path).unwrap_err().to_string(),
        format!(
            "image {}: manifest.json lists layer \"1/layer.tar\", which the archive does not hold",
            path.display()
        )
    );
}

#[test]
fn a_manifest_listing_no_layers_is_refused_and_counted_as_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (_root_dir, root) = data_root();
    let path = write(dir.path(), "nolayers.tar", &saved_with(&[], &[]));
    assert_eq!(image::layer_count(&path).unwrap(), 0);
    assert_eq!(
        layers_of(&root, &path).unwrap_err().to_string(),
        format!(
            "image {}: manifest.json lists no layers: re-save the image",
            path.display()
        )
    );
}

#[test]
fn a_flat_tarball_with_no_entries_is_refused_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (_root_dir, root) = data_root();
    let empty = tar::Builder::new(Vec::new()).into_inner().unwrap();
    let path = write(dir.path(), "empty.tar", &empty);
    assert_eq!(image::layer_count(&path).unwrap(), 1);
    assert_eq!(
        layers_of(&root, &path).unwrap_err().to_string(),
        format!(
            "image {} holds no files (an empty archive): give a root filesystem tarball \
             (e.g. made by docker export) or directory",
            path.display()
        )
    );
}
