//! Image references, `NAME[:TAG]`, in Docker's grammar (ch5 onwards).
//!
//! A name is one or more lowercase components separated by `/`
//! (`busybox`, `localhost/interop`, `library/debian`), optionally after a
//! registry host with a port (`localhost:5000/app`); each component is
//! letters and digits joined by single `.` or `_`, `__`, or runs of `-`.
//! The tag is up to 128 letters, digits, `_`, `.` and `-`, not starting with
//! `.` or `-`, and `latest` when none is given. stepbox never contacts a
//! registry: the host part is only part of the name.

use std::fmt;

use crate::error::{printable, Error, Result};

/// The tag of a reference that names none.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed `NAME:TAG`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    pub name: String,
    pub tag: String,
}

impl Reference {
    /// Parse `text` as `NAME[:TAG]`; a digest (`@sha256:…`) is not a
    /// reference stepbox stores.
    pub fn parse(text: &str) -> Result<Reference> {
        let invalid = |why: &str| {
            Error::Invalid(format!(
                "invalid image reference {}: {why}",
                printable(&format!("{text:?}"))
            ))
        };
        if text.contains('@') {
            return Err(invalid(
                "stepbox names images by NAME:TAG, not by digest: use the image's name, or its ID",
            ));
        }
        // The tag follows the last ':' unless a '/' comes after it (then
        // the ':' was a registry port: `localhost:5000/app`).
        let (name, tag) = match text.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, tag),
            _ => (text, DEFAULT_TAG),
        };
        if !is_tag(tag) {
            return Err(invalid(
                "a tag is 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
            ));
        }
        if name.len() > 255 || !is_name(name) {
            return Err(invalid(
                "a name is lowercase letters and digits, joined by '.', '_' or '-', \
                 in parts separated by '/' (e.g. busybox, localhost/app:v1)",
            ));
        }
        Ok(Reference {
            name: name.to_string(),
            tag: tag.to_string(),
        })
    }

    /// Whether `text` could be a reference (for telling them from paths).
    pub fn is_valid(text: &str) -> bool {
        Reference::parse(text).is_ok()
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

fn is_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && tag.len() <= 128
}

fn is_name(name: &str) -> bool {
    let mut parts: Vec<&str> = name.split('/').collect();
    // A first part with a '.' or a ':' (or `localhost`) is a registry host.
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        if !is_host(host) {
            return false;
        }
    }
    parts.iter().all(|part| is_component(part))
}

/// `host[:port]`: DNS labels separated by dots, a numeric port.
fn is_host(host: &str) -> bool {
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let label = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    name.split('.').all(label)
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__', or a run of '-'.
        let start = i;
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= bytes.len() || !alnum(bytes[i]) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (String, String) {
        let r = Reference::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (r.name, r.tag)
    }

    #[test]
    fn a_name_alone_means_latest() {
        assert_eq!(parsed("busybox"), ("busybox".into(), "latest".into()));
    }

    #[test]
    fn names_and_tags_are_split_at_the_last_colon() {
        assert_eq!(parsed("debian:12.5"), ("debian".into(), "12.5".into()));
        assert_eq!(
            parsed("localhost/interop:multi"),
            ("localhost/interop".into(), "multi".into())
        );
    }

    #[test]
    fn a_registry_port_is_not_a_tag() {
        assert_eq!(
            parsed("localhost:5000/app"),
            ("localhost:5000/app".into(), "latest".into())
        );
        assert_eq!(
            parsed("localhost:5000/app:v1"),
            ("localhost:5000/app".into(), "v1".into())
        );
    }

    #[test]
    fn separators_join_components() {
        for ok in ["a.b", "a_b", "a__b", "a-b", "a---b", "x/y/z", "my-app2"] {
            assert!(Reference::is_valid(ok), "{ok}");
        }
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "",
            "Busybox",
            "a..b",
            "a___b",
            "-a",
            "a-",
            ".a",
            "a/",
            "/a",
            "a//b",
            "a:",
            "a:-x",
            "a:.x",
            "a b",
            "a@sha256:00",
            "../x",
            "a:b/c:",
            "é",
        ] {
            assert!(!Reference::is_valid(bad), "{bad:?} should be refused");
        }
        assert!(!Reference::is_valid(&format!("a:{}", "t".repeat(129))));
    }

    #[test]
    fn a_reference_prints_as_name_colon_tag() {
        assert_eq!(
            Reference::parse("busybox").unwrap().to_string(),
            "busybox:latest"
        );
    }
}
