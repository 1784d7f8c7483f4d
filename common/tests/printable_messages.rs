//! What reaches the learner's terminal (common::error, every chapter): an
//! error is one printable line, shortened in the middle when very long, and
//! narrated strings are quoted as C prints a string literal.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use common::error::{printable, quote, shorten, Error, MAX_MESSAGE};

#[test]
fn every_c0_control_and_del_is_written_as_a_hex_escape() {
    assert_eq!(printable("\0\t\r\x1b\x7f"), "\\x00\\x09\\x0d\\x1b\\x7f");
}

#[test]
fn c1_controls_are_written_as_unicode_escapes() {
    assert_eq!(printable("\u{80}\u{9b}\u{9f}"), "\\u{80}\\u{9b}\\u{9f}");
}

#[test]
fn letters_beyond_ascii_and_the_first_after_c1_are_kept() {
    assert_eq!(printable("\u{a0}é→日本"), "\u{a0}é→日本");
}

#[test]
fn text_of_at_most_max_characters_is_kept_whole() {
    assert_eq!(shorten("abcdefghij", 10), "abcdefghij");
    assert_eq!(shorten("", 0), "");
}

#[test]
fn longer_text_keeps_half_at_each_end_and_counts_the_rest() {
    assert_eq!(shorten("abcdefghij", 4), "ab[... 6 characters ...]ij");
    // An odd max keeps max / 2 at each end.
    assert_eq!(shorten("abcdefg", 3), "a[... 5 characters ...]g");
}

#[test]
fn shortening_counts_characters_not_bytes() {
    assert_eq!(shorten("ééééé", 5), "ééééé");
    assert_eq!(shorten("ééééé", 2), "é[... 3 characters ...]é");
}

#[test]
fn an_error_of_max_message_characters_is_shown_whole_and_one_more_is_shortened() {
    let whole = "x".repeat(MAX_MESSAGE);
    assert_eq!(Error::Invalid(whole.clone()).to_string(), whole);
    let long = format!("{whole}y");
    assert_eq!(
        Error::Invalid(long.clone()).to_string(),
        shorten(&long, MAX_MESSAGE)
    );
}

#[test]
fn escapes_are_made_before_shortening_so_the_cut_cannot_split_one() {
    // 300 ESCs become 1200 characters of `\x1b`: shortened, never raw.
    let shown = Error::Invalid("\x1b".repeat(300)).to_string();
    assert!(!shown.contains('\x1b'), "{shown:?}");
    assert!(shown.contains("[... 700 characters ...]"), "{shown:?}");
}

#[test]
fn a_narrated_string_is_quoted_as_a_c_literal() {
    assert_eq!(quote("/tmp"), "\"/tmp\"");
    assert_eq!(quote("a \"b\"\n"), "\"a \\\"b\\\"\\n\"");
}

#[test]
fn a_path_that_is_not_utf8_is_quoted_with_replacement_characters() {
    assert_eq!(quote(OsStr::from_bytes(b"a\xffb")), "\"a\u{fffd}b\"");
}
