//! The data root refuses a tree someone else could steer (common::dataroot,
//! ch2 onwards): a root others may write to, a top-level directory that is
//! a symlink, or one that is not a directory.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

use common::dataroot::DataRoot;

#[test]
fn a_new_data_root_is_created_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root");
    let root = DataRoot::open(Some(&path)).unwrap();
    assert_eq!(root.path(), path);
    for sub in ["", "images", "tmp"] {
        let mode = fs::metadata(path.join(sub)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{sub:?}");
    }
}

#[test]
fn a_data_root_its_group_may_write_to_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root");
    fs::create_dir(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o775)).unwrap();
    let shown = path.display();
    assert_eq!(
        DataRoot::open(Some(&path)).unwrap_err().to_string(),
        format!(
            "data root {shown} is writable by its group or others (mode 0775): \
             chmod go-w {shown}, or use another --root"
        )
    );
}

#[test]
fn a_top_level_directory_that_is_a_symlink_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root");
    fs::create_dir(&path).unwrap();
    fs::create_dir(dir.path().join("elsewhere")).unwrap();
    symlink(dir.path().join("elsewhere"), path.join("containers")).unwrap();
    assert_eq!(
        DataRoot::open(Some(&path)).unwrap_err().to_string(),
        format!(
            "{} is a symlink: the top-level directories of a data root must be real \
             directories (remove it, or use another --root)",
            path.join("containers").display()
        )
    );
}

#[test]
fn a_top_level_entry_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root");
    fs::create_dir(&path).unwrap();
    fs::write(path.join("layers"), b"").unwrap();
    assert_eq!(
        DataRoot::open(Some(&path)).unwrap_err().to_string(),
        format!(
            "{} is not a directory: remove it, or use another --root",
            path.join("layers").display()
        )
    );
}
