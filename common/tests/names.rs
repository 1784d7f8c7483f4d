//! Container and image names (common::dataroot::check_name, ch2 and ch5): a
//! name is `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`, refused before any file is
//! touched, so that a name can never be a path. Also the names stepbox makes
//! up itself (container::generate_name) and the places that check names
//! (Container::at, image::find, container::list).
//!
//! The binaries' test (tests/ch5_commit.rs, claim 5) checks its 9 bad names
//! by the message's start only; here each one's whole message is asserted.

use std::collections::HashSet;
use std::fs;

use common::container::{self, Container};
use common::dataroot::{check_name, DataRoot};
use common::image;

/// The message a refused name gets.
fn message(kind: &str, name: &str) -> String {
    format!(
        "invalid {kind} name {name:?}: use 1 to 64 letters, digits, '_', '.' or '-', \
         starting with a letter or digit"
    )
}

fn assert_refused(kind: &str, name: &str) {
    match check_name(kind, name) {
        Ok(()) => panic!("the {kind} name {name:?} was accepted"),
        Err(error) => assert_eq!(error.to_string(), message(kind, name), "name {name:?}"),
    }
}

fn assert_accepted(name: &str) {
    if let Err(error) = check_name("container", name) {
        panic!("{name:?} was refused: {error}");
    }
}

/// A data root of its own in a temporary directory.
fn data_root() -> (tempfile::TempDir, DataRoot) {
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::open(Some(&dir.path().join("root"))).unwrap();
    (dir, root)
}

// ------------------------------------ the 9 bad names of tests/ch5_commit.rs

#[test]
fn a_name_that_climbs_out_is_refused() {
    assert_refused("container", "../x");
}

#[test]
fn a_name_with_a_slash_is_refused() {
    assert_refused("container", "a/b");
}

#[test]
fn dot_is_refused_as_a_name() {
    assert_refused("container", ".");
}

#[test]
fn dot_dot_is_refused_as_a_name() {
    assert_refused("container", "..");
}

#[test]
fn an_empty_name_is_refused() {
    assert_refused("container", "");
}

#[test]
fn a_name_of_65_characters_is_refused() {
    assert_refused("container", &"a".repeat(65));
}

#[test]
fn a_name_with_a_newline_is_refused_and_shown_escaped() {
    let error = check_name("container", "a\nb").unwrap_err().to_string();
    assert_eq!(error, message("container", "a\nb"));
    assert!(
        error.starts_with(r#"invalid container name "a\nb": "#),
        "{error}"
    );
}

#[test]
fn a_name_starting_with_a_dash_is_refused() {
    // It would read as an option to the commands a learner types next.
    assert_refused("container", "-x");
}

#[test]
fn a_name_with_a_space_is_refused() {
    assert_refused("container", "a b");
}

// -------------------------------------------------------- more, from the code

#[test]
fn a_name_starting_with_an_underscore_or_a_dot_is_refused() {
    assert_refused("container", "_x");
    assert_refused("container", ".hidden");
}

#[test]
fn a_name_with_a_nul_byte_is_refused() {
    assert_refused("container", "a\0b");
}

#[test]
fn non_ascii_letters_are_refused_even_where_they_are_letters() {
    assert_refused("container", "é");
    assert_refused("container", "caf\u{e9}");
    // 64 characters but more than 64 bytes: refused for the letter anyway.
    assert_refused("container", &format!("{}é", "a".repeat(63)));
}

#[test]
fn punctuation_other_than_underscore_dot_and_dash_is_refused() {
    for name in ["a:b", "a,b", "a*", "a\\b", "a@b", "a+b", "a~", "a\tb"] {
        assert_refused("container", name);
    }
}

#[test]
fn the_kind_is_named_in_the_refusal() {
    assert_refused("image", "/tmp/evil");
    assert_refused("container", "/tmp/evil");
}

#[test]
fn one_letter_or_digit_is_a_name() {
    for name in ["a", "Z", "0"] {
        assert_accepted(name);
    }
}

#[test]
fn a_name_of_64_characters_is_accepted() {
    assert_accepted(&"a".repeat(64));
}

#[test]
fn letters_digits_underscore_dot_and_dash_after_the_first_are_accepted() {
    for name in ["a.b-c_d", "busybox", "1.36", "My_Box-2", "a..", "a-", "a_"] {
        assert_accepted(name);
    }
}

// ---------------------------------------------------- where names are checked

#[test]
fn a_container_is_named_only_by_a_valid_name() {
    let (_dir, root) = data_root();
    let error = Container::at(&root, "../x").unwrap_err();
    assert_eq!(error.to_string(), message("container", "../x"));
    let container = Container::at(&root, "web").unwrap();
    assert_eq!(container.dir, root.path().join("containers/web"));
}

#[test]
fn an_image_name_without_a_slash_is_checked_as_a_reference() {
    let (_dir, root) = data_root();
    let error = image::find(&root, "a b").unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid image reference \"a b\": a name is lowercase letters and digits, joined by \
         '.', '_' or '-', in parts separated by '/' (e.g. busybox, localhost/app:v1)"
    );
}

#[test]
fn an_image_file_whose_name_is_no_name_is_refused_with_a_rename_hint() {
    let dir = tempfile::tempdir().unwrap();
    let (_root_dir, root) = data_root();
    let path = dir.path().join("my image.tar");
    fs::write(&path, b"").unwrap();
    let error = image::find(&root, path.to_str().unwrap()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "image file name \"my image.tar\" does not give a usable image name: \
         rename it to e.g. alpine.tar"
    );
}

#[test]
fn listing_skips_container_directories_whose_names_are_not_names() {
    let (_dir, root) = data_root();
    let containers = root.dir("containers").unwrap();
    for name in ["good", "bad name", "-dash", "also.good"] {
        fs::create_dir(containers.join(name)).unwrap();
        fs::write(containers.join(name).join("lock"), b"").unwrap();
    }
    let names: Vec<String> = container::list(&root)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["also.good", "good"]);
}

// ------------------------------------------------------------ generated names

#[test]
fn a_generated_name_is_a_valid_adjective_scientist_name() {
    let (_dir, root) = data_root();
    for id in ["0123456789ab", "ffffffffffff", "", "zz", "deadbeef"] {
        let name = container::generate_name(&root, id);
        assert!(check_name("container", &name).is_ok(), "{id:?}: {name:?}");
        let (adjective, scientist) = name.split_once('_').expect("adjective_scientist");
        assert!(!adjective.is_empty() && !scientist.is_empty(), "{name:?}");
    }
}

#[test]
fn a_generated_name_depends_on_the_id_only() {
    let (_dir, root) = data_root();
    assert_eq!(
        container::generate_name(&root, "0123456789ab"),
        container::generate_name(&root, "0123456789ab")
    );
}

#[test]
fn a_generated_name_avoids_every_name_taken_and_there_are_256() {
    let (_dir, root) = data_root();
    let containers = root.dir("containers").unwrap();
    let id = "0123456789ab";
    let mut taken = HashSet::new();
    for _ in 0..256 {
        let name = container::generate_name(&root, id);
        assert!(taken.insert(name.clone()), "{name:?} was given twice");
        fs::create_dir(containers.join(&name)).unwrap();
    }
    // All 16 × 16 are taken: the id itself makes the name.
    assert_eq!(container::generate_name(&root, id), format!("stepbox_{id}"));
}
