//! `-v HOST:CONTAINER[:ro|:rw]` parsing (common::volume::parse and
//! parse_all, ch4): every refused spec is refused for its own reason, named
//! in the message, and every accepted one gives the volume it says.
//!
//! The binaries' test (tests/ch4_volumes.rs, claim 4) checks the same 17 bad
//! specs only by the message's start; here each one's whole message is
//! asserted, so one wrong reason cannot hide behind another.

use std::path::PathBuf;

use common::volume::{parse, parse_all, Volume};

/// The fix every refusal ends with.
const USAGE: &str = "use -v HOST:CONTAINER[:ro|:rw] with two absolute paths";

/// The host path tests/ch4_volumes.rs uses (a directory that does not exist).
const M: &str = "/tmp/stepbox-test/missing";

/// The whole message `spec` is refused with.
fn refusal(spec: &str) -> String {
    match parse(spec) {
        Ok(volume) => panic!("{spec:?} was accepted as {volume:?}"),
        Err(error) => error.to_string(),
    }
}

/// The message a refusal of `spec` for `why` must be, as the learner reads it.
fn message(spec: &str, why: &str) -> String {
    format!("invalid volume {spec:?}: {why}: {USAGE}")
}

fn assert_refused(spec: &str, why: &str) {
    assert_eq!(refusal(spec), message(spec, why), "spec {spec:?}");
}

fn volume(host: &str, target: &str, read_only: bool) -> Volume {
    Volume {
        host: PathBuf::from(host),
        target: PathBuf::from(target),
        read_only,
    }
}

fn accepted(spec: &str) -> Volume {
    parse(spec).unwrap_or_else(|e| panic!("{spec:?} was refused: {e}"))
}

fn specs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

// ------------------------------------------------------------- accepted specs

#[test]
fn host_and_container_path_give_a_read_write_volume() {
    assert_eq!(
        accepted("/srv/data:/data"),
        volume("/srv/data", "/data", false)
    );
}

#[test]
fn the_mode_ro_makes_a_read_only_volume() {
    assert_eq!(
        accepted("/srv/data:/data:ro"),
        volume("/srv/data", "/data", true)
    );
}

#[test]
fn the_mode_rw_is_the_default_said_aloud() {
    assert_eq!(
        accepted("/srv/data:/data:rw"),
        volume("/srv/data", "/data", false)
    );
}

#[test]
fn the_container_path_is_normalised_to_one_clean_absolute_path() {
    assert_eq!(accepted("/h:/a//b/./c/").target, PathBuf::from("/a/b/c"));
    assert_eq!(accepted("/h://a").target, PathBuf::from("/a"));
    assert_eq!(accepted("/h:/./a/.").target, PathBuf::from("/a"));
}

#[test]
fn the_host_path_is_kept_as_given() {
    // Only the container path is normalised: the host path is the caller's own.
    assert_eq!(accepted("/a/../b/:/c").host, PathBuf::from("/a/../b/"));
    assert_eq!(accepted("/:/mnt").host, PathBuf::from("/"));
}

#[test]
fn names_that_only_begin_like_a_reserved_directory_are_allowed() {
    // The reserved check is per path component: /proc2 is not under /proc.
    for target in ["/proc2", "/device", "/system", "/x/proc", "/x/dev"] {
        assert_eq!(
            accepted(&format!("/h:{target}")).target,
            PathBuf::from(target)
        );
    }
}

#[test]
fn a_comma_is_refused_only_in_the_host_path() {
    assert_eq!(accepted("/h:/a,b").target, PathBuf::from("/a,b"));
}

// ---------------------------------- the 17 bad specs of tests/ch4_volumes.rs

#[test]
fn an_empty_spec_is_refused_as_empty() {
    assert_eq!(
        refusal(""),
        "invalid volume \"\": it is empty: use -v HOST:CONTAINER[:ro|:rw] with two absolute paths"
    );
}

#[test]
fn a_lone_colon_is_refused_for_its_empty_host_path() {
    assert_refused(":", "the host path is empty");
}

#[test]
fn a_trailing_colon_without_a_container_path_is_refused_for_the_empty_container_path() {
    assert_refused(&format!("{M}:"), "the container path is empty");
}

#[test]
fn a_missing_host_path_is_refused_as_empty() {
    assert_refused(":/b", "the host path is empty");
}

#[test]
fn a_relative_host_path_is_refused_as_not_absolute() {
    assert_refused("relative:/b", "the host path \"relative\" is not absolute");
}

#[test]
fn a_relative_container_path_is_refused_as_not_absolute() {
    assert_refused(
        &format!("{M}:relative"),
        "the container path \"relative\" is not absolute",
    );
}

#[test]
fn a_mode_other_than_ro_or_rw_is_refused_as_unknown() {
    assert_refused(
        &format!("{M}:/b:bogus"),
        "unknown mode \"bogus\" (use ro or rw)",
    );
}

#[test]
fn a_volume_on_the_containers_root_is_refused() {
    assert_refused(
        &format!("{M}:/"),
        "a volume may not cover the container's root /",
    );
}

#[test]
fn a_volume_target_of_proc_is_refused_as_the_containers_proc() {
    assert_refused(
        &format!("{M}:/proc"),
        "/proc is the container's own /proc, which a volume may not cover",
    );
}

#[test]
fn a_volume_target_under_proc_is_refused_as_the_containers_proc() {
    assert_refused(
        &format!("{M}:/proc/sys"),
        "/proc/sys is the container's own /proc, which a volume may not cover",
    );
}

#[test]
fn a_volume_target_of_sys_is_refused_as_the_containers_sys() {
    assert_refused(
        &format!("{M}:/sys"),
        "/sys is the container's own /sys, which a volume may not cover",
    );
}

#[test]
fn a_volume_target_of_dev_is_refused_as_the_containers_dev() {
    assert_refused(
        &format!("{M}:/dev"),
        "/dev is the container's own /dev, which a volume may not cover",
    );
}

#[test]
fn a_volume_target_under_dev_is_refused_as_the_containers_dev() {
    assert_refused(
        &format!("{M}:/dev/shm"),
        "/dev/shm is the container's own /dev, which a volume may not cover",
    );
}

#[test]
fn a_container_path_climbing_with_dot_dot_is_refused_for_the_dot_dot() {
    // Refused for the '..' itself, before it could be resolved to /proc.
    assert_refused(
        &format!("{M}:/b/../proc"),
        "the container path may not contain '..'",
    );
}

#[test]
fn two_volumes_on_one_target_are_refused_naming_the_second() {
    let second = format!("{M}/y:/b/");
    let error = parse_all(&[format!("{M}/x:/b"), second.clone()])
        .expect_err("two volumes on /b were accepted");
    assert_eq!(
        error.to_string(),
        message(&second, "another volume already uses /b")
    );
}

#[test]
fn a_comma_in_the_host_path_is_refused_as_unsayable_in_mount_syntax() {
    assert_refused(
        &format!("{M},x:/b"),
        "the host path contains ',', which Docker's mount syntax cannot carry either (rename it)",
    );
}

#[test]
fn a_newline_in_the_spec_is_refused_and_shown_escaped() {
    let spec = format!("{M}\nx:/b");
    let shown = refusal(&spec);
    assert_eq!(shown, message(&spec, "it contains a newline or NUL byte"));
    assert!(!shown.contains('\n'), "{shown:?}");
    assert!(shown.contains(r"missing\nx:/b"), "{shown:?}");
}

// ------------------------------------------- more edge cases, from the code

#[test]
fn a_nul_byte_in_the_spec_is_refused_and_shown_escaped() {
    assert_eq!(
        refusal("/h:/b\0c"),
        "invalid volume \"/h:/b\\0c\": it contains a newline or NUL byte: \
         use -v HOST:CONTAINER[:ro|:rw] with two absolute paths"
    );
}

#[test]
fn a_spec_without_a_colon_is_refused_as_not_host_colon_container() {
    assert_refused(
        "/srv/data",
        "expected HOST:CONTAINER or HOST:CONTAINER:MODE",
    );
}

#[test]
fn a_spec_with_four_parts_is_refused_as_not_host_colon_container() {
    assert_refused(
        "/h:/b:ro:extra",
        "expected HOST:CONTAINER or HOST:CONTAINER:MODE",
    );
    // A host path with a colon in it cannot be said at all.
    assert_refused(
        "/a:b:/c:ro",
        "expected HOST:CONTAINER or HOST:CONTAINER:MODE",
    );
}

#[test]
fn a_trailing_colon_after_the_container_path_is_an_empty_unknown_mode() {
    assert_refused("/h:/b:", "unknown mode \"\" (use ro or rw)");
}

#[test]
fn a_double_colon_is_refused_for_its_empty_mode_first() {
    // The mode is checked before the paths: `::` names the empty mode.
    assert_refused("::", "unknown mode \"\" (use ro or rw)");
    assert_refused("/h::ro", "the container path is empty");
    assert_refused(":/b:ro", "the host path is empty");
}

#[test]
fn modes_are_case_sensitive_and_single() {
    assert_refused("/h:/b:RO", "unknown mode \"RO\" (use ro or rw)");
    assert_refused("/h:/b:ro,z", "unknown mode \"ro,z\" (use ro or rw)");
    assert_refused("/h:/b: ro", "unknown mode \" ro\" (use ro or rw)");
}

#[test]
fn a_dot_relative_or_tilde_host_path_is_refused_as_not_absolute() {
    assert_refused("./h:/b", "the host path \"./h\" is not absolute");
    assert_refused("~/h:/b", "the host path \"~/h\" is not absolute");
}

#[test]
fn the_host_path_is_judged_before_the_container_path() {
    assert_refused("rel:rel", "the host path \"rel\" is not absolute");
    assert_refused(":rel", "the host path is empty");
}

#[test]
fn a_container_path_that_normalises_to_the_root_is_refused_as_the_root() {
    for target in ["//", "/.", "/./", "/./."] {
        assert_refused(
            &format!("/h:{target}"),
            "a volume may not cover the container's root /",
        );
    }
}

#[test]
fn a_trailing_dot_dot_is_refused_for_the_dot_dot() {
    assert_refused("/h:/b/..", "the container path may not contain '..'");
    assert_refused("/h:/..", "the container path may not contain '..'");
}

#[test]
fn old_root_is_an_ordinary_target_as_pivot_root_parks_nothing_there() {
    assert_eq!(
        accepted("/h:/.old_root").target,
        PathBuf::from("/.old_root")
    );
}

#[test]
fn a_reserved_target_is_refused_after_normalising_and_named_as_normalised() {
    assert_refused(
        "/h://proc/",
        "/proc is the container's own /proc, which a volume may not cover",
    );
    assert_refused(
        "/h:/./sys/./fs",
        "/sys/fs is the container's own /sys, which a volume may not cover",
    );
}

#[test]
fn a_very_long_refused_spec_keeps_its_start_and_its_reason() {
    let spec = format!("/{}:rel", "x".repeat(600));
    let shown = refusal(&spec);
    assert!(shown.starts_with("invalid volume \"/xxx"), "{shown}");
    assert!(
        shown.ends_with(&format!(
            "xxx:rel\": the container path \"rel\" is not absolute: {USAGE}"
        )),
        "{shown}"
    );
    assert!(shown.contains("characters ...]"), "{shown}");
}

// ------------------------------------------------------------------ parse_all

#[test]
fn no_volumes_parse_to_none() {
    assert_eq!(parse_all(&[]).unwrap(), Vec::<Volume>::new());
}

#[test]
fn volumes_come_back_in_mount_order_parents_first() {
    let volumes = parse_all(&specs(&["/c:/a/b/c", "/a:/a", "/b:/a/b:ro"])).unwrap();
    assert_eq!(
        volumes,
        [
            volume("/a", "/a", false),
            volume("/b", "/a/b", true),
            volume("/c", "/a/b/c", false),
        ]
    );
}

#[test]
fn volumes_at_one_depth_keep_the_order_they_were_given() {
    let volumes = parse_all(&specs(&["/z:/z", "/a:/a", "/m:/m"])).unwrap();
    let targets: Vec<_> = volumes.iter().map(|v| v.target.clone()).collect();
    assert_eq!(targets, [PathBuf::from("/z"), "/a".into(), "/m".into()]);
}

#[test]
fn a_duplicate_target_is_found_after_normalising_and_whatever_the_modes() {
    let error = parse_all(&specs(&["/x:/data:ro", "/y://data/.:rw"])).unwrap_err();
    assert_eq!(
        error.to_string(),
        message("/y://data/.:rw", "another volume already uses /data")
    );
}

#[test]
fn the_same_spec_twice_is_a_duplicate() {
    let error = parse_all(&specs(&["/x:/data", "/x:/data"])).unwrap_err();
    assert_eq!(
        error.to_string(),
        message("/x:/data", "another volume already uses /data")
    );
}

#[test]
fn a_bad_spec_is_reported_before_any_duplicate() {
    let error = parse_all(&specs(&["/x:/b", "/y:/b", "rel:/c"])).unwrap_err();
    assert_eq!(
        error.to_string(),
        message("rel:/c", "the host path \"rel\" is not absolute")
    );
}

#[test]
fn nested_targets_are_not_duplicates() {
    assert_eq!(parse_all(&specs(&["/x:/a", "/y:/a/b"])).unwrap().len(), 2);
}
