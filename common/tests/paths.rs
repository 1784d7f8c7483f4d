//! Cleaning and checking paths: an image entry's path made relative to the
//! unpack destination (common::image::unpack::clean_path, ch2), the paths
//! overlay mount options can carry (common::overlay::options and
//! check_data_root, ch3), and what counts as a root filesystem
//! (common::rootfs::looks_like_a_root and prepare_mount_points, ch2).
//!
//! The container path of a volume is normalised too: see volume_specs.rs.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::dataroot::DataRoot;
use common::image::unpack::clean_path;
use common::namespace;
use common::overlay::{self, Layout};
use common::rootfs::{looks_like_a_root, prepare_mount_points};

fn cleaned(path: &str) -> Option<PathBuf> {
    clean_path(Path::new(path)).unwrap_or_else(|why| panic!("{path:?} was refused: {why}"))
}

fn refused(path: &str) -> String {
    match clean_path(Path::new(path)) {
        Ok(clean) => panic!("{path:?} was accepted as {clean:?}"),
        Err(why) => why,
    }
}

// ------------------------------------------------- an image entry's path

#[test]
fn an_entry_path_is_kept_relative_and_clean() {
    assert_eq!(cleaned("etc/passwd"), Some(PathBuf::from("etc/passwd")));
    assert_eq!(cleaned("./etc/passwd"), Some(PathBuf::from("etc/passwd")));
    assert_eq!(cleaned("etc/./passwd"), Some(PathBuf::from("etc/passwd")));
    assert_eq!(cleaned("etc//passwd"), Some(PathBuf::from("etc/passwd")));
    assert_eq!(cleaned("etc/"), Some(PathBuf::from("etc")));
}

#[test]
fn the_archives_own_root_entry_is_no_path() {
    for root in ["./", ".", "", "./.", ".//./"] {
        assert_eq!(cleaned(root), None, "{root:?}");
    }
}

#[test]
fn an_entry_path_with_dot_dot_is_refused_for_the_dot_dot() {
    for path in ["../etc/cron.d/x", "a/../b", "a/..", "./.."] {
        assert_eq!(refused(path), "its path contains '..'", "{path:?}");
    }
}

#[test]
fn an_absolute_entry_path_is_refused_as_absolute() {
    for path in ["/etc/passwd", "/", "//x"] {
        assert_eq!(refused(path), "its path is absolute", "{path:?}");
    }
}

#[test]
fn dots_inside_a_name_are_only_a_name() {
    assert_eq!(cleaned("a/..b"), Some(PathBuf::from("a/..b")));
    assert_eq!(cleaned("...").as_deref(), Some(Path::new("...")));
    assert_eq!(cleaned(".wh..wh..opq"), Some(PathBuf::from(".wh..wh..opq")));
}

// ---------------------------------------------------- overlay mount options

fn layout(dir: &str) -> Layout {
    let dir = PathBuf::from(dir);
    Layout {
        upper: dir.join("upper"),
        work: dir.join("work"),
        merged: dir.join("merged"),
        dir,
    }
}

fn userxattr() -> &'static str {
    if namespace::rootless() {
        ",userxattr"
    } else {
        ""
    }
}

#[test]
fn overlay_options_list_the_lower_layers_topmost_first() {
    let lowers = [
        PathBuf::from("/l/bottom"),
        "/l/middle".into(),
        "/l/top".into(),
    ];
    let options = overlay::options(&lowers, &layout("/c/x"), false).unwrap();
    assert_eq!(
        options,
        format!(
            "lowerdir=/l/top:/l/middle:/l/bottom,upperdir=/c/x/upper,workdir=/c/x/work{}",
            userxattr()
        )
    );
    // A layer thrown away at exit: `volatile` last, where mount_overlay
    // takes it off for a kernel that lacks it.
    let thrown = overlay::options(&lowers, &layout("/c/x"), true).unwrap();
    assert_eq!(thrown, format!("{options},volatile"));
}

#[test]
fn overlay_options_refuse_a_layer_path_with_a_colon_comma_or_newline() {
    for bad in ["/l/a:b", "/l/a,b", "/l/a\nb"] {
        let error = overlay::options(&[PathBuf::from(bad)], &layout("/c/x"), true).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "path {bad:?} holds ',', ':' or a newline, which overlay mount options cannot carry: \
                 use a data root (--root) and image path without them"
            )
        );
    }
}

#[test]
fn overlay_options_refuse_an_upper_directory_with_a_comma() {
    let error = overlay::options(&[PathBuf::from("/l")], &layout("/c/a,b"), true).unwrap_err();
    assert_eq!(
        error.to_string(),
        "path \"/c/a,b/upper\" holds ',', ':' or a newline, which overlay mount options \
         cannot carry: use a data root (--root) and image path without them"
    );
}

#[test]
fn a_data_root_overlay_options_cannot_carry_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let good = DataRoot::open(Some(&dir.path().join("root"))).unwrap();
    overlay::check_data_root(&good).unwrap();
    let path = dir.path().join("a:b");
    let bad = DataRoot::open(Some(&path)).unwrap();
    assert_eq!(
        overlay::check_data_root(&bad).unwrap_err().to_string(),
        format!(
            "data root {:?} holds ',', ':' or a newline, which overlay mount options \
             cannot carry: use a --root without them",
            path.display().to_string()
        )
    );
}

// --------------------------------------------------- what a root looks like

#[test]
fn a_directory_with_bin_or_sbin_or_usr_bin_looks_like_a_root() {
    for sub in ["bin", "sbin", "usr/bin", "usr/sbin"] {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(sub)).unwrap();
        assert!(looks_like_a_root(dir.path()), "{sub}");
    }
}

#[test]
fn a_bin_symlink_counts_even_when_it_dangles() {
    let dir = tempfile::tempdir().unwrap();
    symlink("usr/bin", dir.path().join("bin")).unwrap();
    assert!(looks_like_a_root(dir.path()));
}

#[test]
fn a_directory_without_program_directories_is_not_a_root() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("etc")).unwrap();
    fs::create_dir(dir.path().join("usr")).unwrap();
    fs::write(dir.path().join("bin"), b"a file, not a directory").unwrap();
    assert!(!looks_like_a_root(dir.path()));
    assert!(!looks_like_a_root(&dir.path().join("missing")));
}

#[test]
fn missing_mount_points_are_created() {
    let dir = tempfile::tempdir().unwrap();
    prepare_mount_points(dir.path()).unwrap();
    for name in ["proc", "dev", "tmp"] {
        assert!(dir.path().join(name).is_dir(), "{name}");
    }
}

#[test]
fn a_mount_point_that_is_a_symlink_is_refused_as_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    symlink("/", dir.path().join("dev")).unwrap();
    assert_eq!(
        prepare_mount_points(dir.path()).unwrap_err().to_string(),
        "the image's /dev is a symlink: a container's /dev must be a directory (fix or rebuild the image)"
    );
}

#[test]
fn a_mount_point_that_is_a_file_is_refused_as_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("tmp"), b"").unwrap();
    assert_eq!(
        prepare_mount_points(dir.path()).unwrap_err().to_string(),
        "the image's /tmp is not a directory: a container's /tmp must be a directory (fix or rebuild the image)"
    );
}

// ------------------------------ the same cleaning, as an unpack applies it

/// A one-entry tar whose path is written raw into the header, as a hostile
/// archive would (tar::Builder itself refuses to write `..`).
fn tar_with_raw_path(path: &str) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    header.set_mode(0o644);
    header.set_size(4);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    let mut data = b"evil".to_vec();
    data.resize(512, 0);
    bytes.extend(data);
    bytes.extend([0; 1024]);
    bytes
}

#[test]
fn an_archive_entry_climbing_out_is_refused_and_nothing_is_written_outside() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let archive = tar_with_raw_path("../escaped");
    let error = common::image::unpack::unpack(&archive[..], &dest).unwrap_err();
    assert_eq!(
        error.to_string(),
        "image entry \"../escaped\" refused: its path contains '..'"
    );
    assert!(!dir.path().join("escaped").exists());
}

#[test]
fn an_absolute_archive_entry_is_refused_as_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("{}/absolute", dir.path().display());
    let error =
        common::image::unpack::unpack(&tar_with_raw_path(&name)[..], dir.path()).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("image entry {name:?} refused: its path is absolute")
    );
    assert!(!Path::new(&name).exists());
}
