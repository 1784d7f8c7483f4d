//! The docs cannot drift from the code: every code snippet a chapter doc
//! quotes "From [file](../file)" must still be in that file, and every test a
//! doc's "Claims → tests" table names must exist.

use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chapter_docs() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = fs::read_dir(repo().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("ch"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 5, "chapter docs missing: {docs:?}");
    docs
}

/// Whitespace folded, so formatting may differ but not the code.
fn fold(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lines of a snippet that must appear in the source (elisions skipped).
fn significant(line: &str) -> bool {
    let t = line.trim();
    !(t.is_empty() || t == "..." || t == "…" || t.starts_with("// ...") || t.starts_with("// …"))
}

/// `From [common/src/x.rs](../common/src/x.rs)` → `common/src/x.rs`.
fn quoted_file(line: &str) -> Option<String> {
    let rest = line.trim().strip_prefix("From [")?;
    let (_, link) = rest.split_once("](")?;
    let (path, _) = link.split_once(')')?;
    Some(path.trim_start_matches("../").to_string())
}

#[test]
fn every_quoted_snippet_is_still_in_its_file() {
    let mut checked = 0;
    let mut drifted = Vec::new();
    for doc in chapter_docs() {
        let text = fs::read_to_string(&doc).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            if lines[i].trim() != "```rust" {
                i += 1;
                continue;
            }
            let source = (i.saturating_sub(3)..i)
                .rev()
                .find_map(|j| quoted_file(lines[j]));
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].trim() == "```")
                .unwrap();
            if let Some(source) = source {
                let code = fs::read_to_string(repo().join(&source)).unwrap_or_else(|_| {
                    panic!("{}: quotes {source}, which does not exist", doc.display())
                });
                let code: Vec<String> = code.lines().map(fold).collect();
                for (n, line) in lines[i + 1..end].iter().enumerate() {
                    if significant(line) && !code.contains(&fold(line)) {
                        drifted.push(format!(
                            "{}:{}: from {source}: {line}",
                            doc.display(),
                            i + 2 + n
                        ));
                    }
                }
                checked += 1;
            }
            i = end + 1;
        }
    }
    assert!(
        drifted.is_empty(),
        "quoted code no longer in its file:\n{}",
        drifted.join("\n")
    );
    assert!(
        checked > 20,
        "only {checked} snippets found: has the quoting form changed?"
    );
}

#[test]
fn every_test_a_claims_table_names_exists() {
    let mut tests = String::new();
    for entry in fs::read_dir(repo().join("tests")).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "rs") {
            tests.push_str(&fs::read_to_string(entry.path()).unwrap());
        }
    }
    let mut named = 0;
    for doc in chapter_docs() {
        let text = fs::read_to_string(&doc).unwrap();
        let claims = text
            .split_once("## Claims → tests")
            .unwrap_or_else(|| panic!("{} has no Claims → tests section", doc.display()))
            .1;
        let claims = claims.split("\n## ").next().unwrap();
        for row in claims.lines().filter(|l| l.starts_with('|')) {
            // The last column names the tests.
            let cell = row
                .trim_end()
                .trim_end_matches('|')
                .rsplit('|')
                .next()
                .unwrap_or("");
            for name in cell.split('`').skip(1).step_by(2) {
                let is_test_name = name.len() > 8
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && name.contains('_');
                if is_test_name {
                    assert!(
                        tests.contains(&format!("fn {name}(")),
                        "{} names test {name}, which does not exist",
                        doc.display()
                    );
                    named += 1;
                }
            }
        }
    }
    assert!(named > 30, "only {named} tests named in the claims tables");
}

#[test]
fn every_doc_the_readmes_link_exists() {
    for index in ["README.md", "docs/README.md"] {
        let text = fs::read_to_string(repo().join(index)).unwrap();
        let base = Path::new(index).parent().unwrap();
        for link in text
            .split("](")
            .skip(1)
            .filter_map(|rest| rest.split_once(')'))
            .map(|(l, _)| l)
        {
            if link.starts_with("http") || link.starts_with('#') {
                continue;
            }
            let path = repo().join(base).join(link.split('#').next().unwrap());
            assert!(path.exists(), "{index} links {link}, which does not exist");
        }
    }
}
