//! How long ago (common::container::age: `ps` and `images`, ch5) and how
//! large a record may be (common::dataroot::read_small, whose refusal names
//! the limit in bytes or MiB).
//!
//! (`images`' SIZE column, ch5's human_size, lives in chapters/ch5_commit.rs
//! and is private there: it cannot be tested from the common crate.)

use std::fs;
use std::os::unix::fs::symlink;

use common::container::{age, now};
use common::dataroot::read_small;

/// `age(now - seconds)`, taken within one second of the clock, so that a
/// tick between `now()` here and `now()` inside `age` cannot change it.
fn age_of(seconds: u64) -> String {
    loop {
        let before = now();
        let text = age(before - seconds);
        if now() == before {
            return text;
        }
    }
}

// ------------------------------------------------------------------- ages

#[test]
fn under_a_minute_is_said_in_seconds() {
    assert_eq!(age_of(0), "0 seconds ago");
    assert_eq!(age_of(1), "1 second ago");
    assert_eq!(age_of(2), "2 seconds ago");
    assert_eq!(age_of(59), "59 seconds ago");
}

#[test]
fn under_an_hour_is_said_in_whole_minutes() {
    assert_eq!(age_of(60), "1 minute ago");
    assert_eq!(age_of(119), "1 minute ago");
    assert_eq!(age_of(120), "2 minutes ago");
    assert_eq!(age_of(3599), "59 minutes ago");
}

#[test]
fn under_a_day_is_said_in_whole_hours() {
    assert_eq!(age_of(3600), "1 hour ago");
    assert_eq!(age_of(7199), "1 hour ago");
    assert_eq!(age_of(7200), "2 hours ago");
    assert_eq!(age_of(86399), "23 hours ago");
}

#[test]
fn a_day_or_more_is_said_in_whole_days() {
    assert_eq!(age_of(86400), "1 day ago");
    assert_eq!(age_of(2 * 86400 - 1), "1 day ago");
    assert_eq!(age_of(2 * 86400), "2 days ago");
    assert_eq!(age_of(400 * 86400), "400 days ago");
}

#[test]
fn a_time_in_the_future_is_said_as_zero_seconds_ago() {
    // A clock set back, or a record from another machine: never negative.
    assert_eq!(age(now() + 3600), "0 seconds ago");
}

// ------------------------------------------------------------ record sizes

#[test]
fn a_record_at_its_limit_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    fs::write(&path, b"0123456789").unwrap();
    assert_eq!(read_small(&path, 10).unwrap(), b"0123456789");
}

#[test]
fn a_record_over_a_limit_in_bytes_is_refused_naming_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    fs::write(&path, b"01234567890").unwrap();
    assert_eq!(
        read_small(&path, 10).unwrap_err().to_string(),
        "larger than 10 bytes"
    );
}

#[test]
fn a_record_over_a_whole_mebibyte_limit_is_refused_naming_mib() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    fs::write(&path, vec![b'x'; (1 << 20) + 1]).unwrap();
    assert_eq!(
        read_small(&path, 1 << 20).unwrap_err().to_string(),
        "larger than 1 MiB"
    );
    assert_eq!(read_small(&path, 2 << 20).unwrap().len(), (1 << 20) + 1);
}

#[test]
fn a_limit_that_is_not_whole_mebibytes_is_named_in_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    fs::write(&path, vec![b'x'; (3 << 19) + 1]).unwrap();
    assert_eq!(
        read_small(&path, 3 << 19).unwrap_err().to_string(),
        "larger than 1572864 bytes"
    );
}

#[test]
fn a_record_is_never_read_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("real"), b"{}").unwrap();
    symlink("real", dir.path().join("state.json")).unwrap();
    let error = read_small(&dir.path().join("state.json"), 10).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::ELOOP), "{error}");
}

#[test]
fn a_record_that_is_a_fifo_or_a_directory_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert_eq!(
        read_small(&fifo, 10).unwrap_err().to_string(),
        "not a regular file"
    );
    assert_eq!(
        read_small(dir.path(), 10).unwrap_err().to_string(),
        "not a regular file"
    );
}
