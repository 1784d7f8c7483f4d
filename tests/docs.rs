//! The docs cannot drift from the code: every code snippet a chapter doc
//! quotes "From [file](../file)" must be contiguous lines of that file (a
//! skip marked `// …`, each piece in order), and every test a
//! doc's "Claims → tests" table names must exist. The transcripts themselves
//! are run by tests/transcripts/; the parsing and matching it relies on are
//! tested here.

// Shared with tests/transcripts/, which uses the parts these tests do not.
#[allow(dead_code)]
#[path = "transcripts/doc.rs"]
mod transcript;

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

/// A line that marks an elision: the snippet skips lines of its file there.
fn elision(line: &str) -> bool {
    let t = line.trim();
    t == "..." || t == "…" || t.starts_with("// ...") || t.starts_with("// …")
}

/// The pieces of a snippet between its elisions, each as folded, non-blank
/// lines.
fn pieces(snippet: &[&str]) -> Vec<Vec<String>> {
    let mut pieces = vec![Vec::new()];
    for line in snippet {
        if elision(line) {
            pieces.push(Vec::new());
        } else if !line.trim().is_empty() {
            pieces.last_mut().unwrap().push(fold(line));
        }
    }
    pieces.retain(|p| !p.is_empty());
    pieces
}

/// Where each piece stands in `code` (folded, non-blank lines): every piece
/// must be contiguous lines of the file, each after the one before it.
/// `Err` names the first piece that is not.
fn find_pieces(code: &[String], pieces: &[Vec<String>]) -> Result<(), String> {
    let mut from = 0;
    for piece in pieces {
        let at = (from..=code.len().saturating_sub(piece.len()))
            .find(|&i| code[i..].starts_with(piece))
            .ok_or_else(|| {
                let missing = piece
                    .iter()
                    .find(|l| !code.contains(l))
                    .map(|l| format!("`{l}` is not in the file"))
                    .unwrap_or_else(|| format!("the lines from `{}` are not contiguous there (mark a skip with `// …`)", piece[0]));
                missing
            })?;
        from = at + piece.len();
    }
    Ok(())
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
            if source.is_none() {
                drifted.push(format!(
                    "{}:{}: a rust block that names no file (`From [path](../path)` in the 3 lines above)",
                    doc.display(),
                    i + 1
                ));
            }
            if let Some(source) = source {
                let code = fs::read_to_string(repo().join(&source)).unwrap_or_else(|_| {
                    panic!("{}: quotes {source}, which does not exist", doc.display())
                });
                let code: Vec<String> = code
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(fold)
                    .collect();
                if let Err(why) = find_pieces(&code, &pieces(&lines[i + 1..end])) {
                    drifted.push(format!("{}:{}: from {source}: {why}", doc.display(), i + 1));
                }
                checked += 1;
            }
            i = end + 1;
        }
    }
    assert!(
        drifted.is_empty(),
        "quoted code that is not contiguous lines of its file:\n{}",
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
    // Chapter 5's lifecycle tests, which every later chapter's file makes
    // with one `lifecycle_claims!(CHn)`, are declared in that macro.
    let support = fs::read_to_string(repo().join("tests/support/mod.rs")).unwrap();
    let start = support
        .find("macro_rules! lifecycle_claims")
        .expect("tests/support/mod.rs declares lifecycle_claims!");
    let body = &support[start..];
    tests.push_str(&body[..body.find("\n}\n").expect("the macro's end")]);
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
                    // A test is a function, or one of a root/rootless pair
                    // that `root_and_rootless!(claim: name, rootless_name)` makes.
                    let paired = tests
                        .split("root_and_rootless!(")
                        .skip(1)
                        .filter_map(|rest| rest.split_once(')'))
                        .any(|(args, _)| args.split([':', ',']).any(|a| a.trim() == name));
                    assert!(
                        tests.contains(&format!("fn {name}(")) || paired,
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

// The transcript runner's parsing and matching.

const TRANSCRIPT_DOC: &str = "\
Text.

```console
# echo one
one
$ cat > f <<'EOF'
a
EOF
$ long \\
  line
out
```

*Not run by the tests: needs Docker.*

```console
# docker run x
```
";

#[test]
fn commands_their_users_and_outputs_are_found() {
    let blocks = transcript::blocks(TRANSCRIPT_DOC);
    assert_eq!(blocks.len(), 2);
    let c = &blocks[0].commands;
    assert_eq!(c.len(), 3);
    assert_eq!(
        (c[0].line, c[0].who, c[0].text.as_str()),
        (4, transcript::Who::Root, "echo one")
    );
    assert_eq!(c[0].output, 4..5);
    assert_eq!(c[1].text, "cat > f <<'EOF'\na\nEOF");
    assert_eq!(c[1].output, 8..8);
    assert_eq!(c[2].text, "long \\\n  line");
    assert_eq!(c[2].output, 10..11);
    assert_eq!(blocks[0].left_out, None);
    assert_eq!(blocks[1].left_out.as_deref(), Some("needs Docker."));
}

#[test]
fn varying_values_are_normalised_and_nothing_else() {
    let n = transcript::normalise;
    assert_eq!(
        n("[parent] clone(CLONE_NEWNS) = 1077\n[parent] write(\"/proc/1077/uid_map\")\n"),
        "[parent] clone(CLONE_NEWNS) = [PID1]\n[parent] write(\"/proc/[PID1]/uid_map\")\n"
    );
    assert_eq!(
        n("63 43 0:39 / /tmp rw - tmpfs tmpfs rw\n"),
        "[MOUNT] / /tmp rw - tmpfs tmpfs rw\n"
    );
    assert_eq!(
        n("-rw-r--r-- 1 root root 7 Nov 23 17:02 inside.txt\n"),
        "-rw-r--r-- 1 root root [SIZE] [DATE] inside.txt\n"
    );
    assert_eq!(
        n("dev:ino 0:45:10 ino 77\n"),
        "dev:ino [DEVINO1] ino [INO]\n"
    );
    assert_eq!(
        n("[child ] kill(12, SIGTERM)\n"),
        "[child ] kill([PID1], SIGTERM)\n"
    );
    assert_eq!(
        n("-rw-r--r-- 0/0 5 2026-12-01 09:13 etc/x\n"),
        "-rw-r--r-- 0/0 5 [DATE] etc/x\n"
    );
    assert_eq!(n("CONTAINED\n"), "CONTAINED\n");
    assert_eq!(n("81\n"), "81\n");
}

/// What the review found hidden by broader rules stays compared.
#[test]
fn what_a_chapter_teaches_is_not_normalised_away() {
    let differ = |a: &str, b: &str| {
        assert_ne!(
            transcript::normalise(a),
            transcript::normalise(b),
            "{a:?} and {b:?} should differ"
        )
    };
    // Owners, link counts and a device's numbers.
    differ(
        "-rw-r--r-- 1 root root 7 Nov 23 17:02 f\n",
        "-rw-r--r-- 1 nobody nogroup 7 Nov 23 17:02 f\n",
    );
    differ(
        "-rw-r--r-- 1 root root 7 Nov 23 17:02 f\n",
        "-rw-r--r-- 3 root root 7 Nov 23 17:02 f\n",
    );
    differ(
        "c--------- 1 root root 0, 0 Nov 23 17:02 f\n",
        "c--------- 1 root root 1, 3 Nov 23 17:02 f\n",
    );
    // Return values other than a new process's pid, and pid 1.
    differ(
        "[child ] unshare(CLONE_NEWNS) = 0\n",
        "[child ] unshare(CLONE_NEWNS) = 1\n",
    );
    differ("pid: 1\n", "pid: 31\n");
    differ("/proc/1/root\n", "/proc/4242/root\n");
    differ("box, pid 2\n", "box, pid 4242\n");
    // Which values are the same: the container's / against the host's.
    differ(
        "root 0:45:10, host 0:45:10\n",
        "root 0:45:10, host 254:0:2\n",
    );
    differ(
        "[parent] clone(0) = 7\n/proc/7/x\n",
        "[parent] clone(0) = 7\n/proc/8/x\n",
    );
    // Numbers that only look like a uid, a time or a size.
    differ("count: 61234\n", "count: 60001\n");
    differ("took 0s\n", "took 999s\n");
    differ("size=64K\n", "size=64G\n");
}

#[test]
fn a_here_string_or_a_numbered_end_word_is_read_as_bash_does() {
    let doc = "```console\n# cat <<< hello\nhello\n# cat <<EOF2\nx\nEOF2\nx\n```\n";
    let blocks = transcript::blocks(doc);
    let c = &blocks[0].commands;
    assert_eq!(c.len(), 2, "{c:#?}");
    assert_eq!(c[0].text, "cat <<< hello");
    assert_eq!(c[1].text, "cat <<EOF2\nx\nEOF2");
}

#[test]
fn blocks_the_tests_cannot_run_are_problems_not_silent() {
    let doc = "1. x\n   ```console\n   # true\n   ```\n\n*Not run by the tests:*\n\n```console\n# true\n```\n\n```sh\n$ docker run x\n```\n";
    let problems: Vec<Option<String>> = transcript::blocks(doc)
        .into_iter()
        .map(|b| b.problem)
        .collect();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems.iter().all(Option::is_some), "{problems:#?}");
}

#[test]
fn blessing_keeps_the_wildcard_lines_that_still_match() {
    let shown = "c1 [..] running\n[parent] clone(0) = 6\nold line\n";
    let actual = "c1 19 running\n[parent] clone(0) = 9\nnew line\n";
    assert_eq!(
        transcript::merge(shown, actual),
        "c1 [..] running\n[parent] clone(0) = 9\nnew line\n"
    );
    assert_eq!(
        transcript::unshowable("ok\n# a comment\n"),
        Some("# a comment")
    );
    assert_eq!(transcript::unshowable("ok\n```\n"), Some("```"));
    assert_eq!(transcript::unshowable("ok\n"), None);
}

#[test]
fn a_changed_word_is_a_mismatch() {
    assert!(transcript::mismatch("verdict: CONTAINED\n", "verdict: CONTAINED\n").is_none());
    assert!(transcript::mismatch("verdict: CONTAINED\n", "verdict: ESCAPED\n").is_some());
    assert!(transcript::mismatch("a [..] c\n...\n", "a b c\nx\ny\n").is_none());
}

#[test]
fn control_bytes_are_shown_in_caret_form() {
    assert_eq!(transcript::printable(b"a\x1b[1mb\x7f\n"), "a^[[1mb^?\n");
}

#[test]
fn blessing_replaces_only_the_output() {
    let blessed = transcript::bless(TRANSCRIPT_DOC, &[(4..5, "two\nthree\n".to_string())]);
    assert!(blessed.contains("# echo one\ntwo\nthree\n$ cat"));
    assert!(blessed.ends_with("# docker run x\n```\n"));
}

#[test]
fn a_snippet_that_drops_lines_from_its_middle_is_refused() {
    let code: Vec<String> = ["fn f() {", "a();", "b();", "c();", "}"]
        .map(String::from)
        .to_vec();
    let whole = pieces(&["fn f() {", "a();", "b();"]);
    assert_eq!(find_pieces(&code, &whole), Ok(()));
    let dropped = pieces(&["a();", "c();"]);
    assert!(find_pieces(&code, &dropped)
        .unwrap_err()
        .contains("not contiguous"));
    let marked = pieces(&["a();", "// …", "c();"]);
    assert_eq!(find_pieces(&code, &marked), Ok(()));
    let reordered = pieces(&["c();", "// …", "a();"]);
    assert!(find_pieces(&code, &reordered).is_err());
    let gone = pieces(&["d();"]);
    assert!(find_pieces(&code, &gone)
        .unwrap_err()
        .contains("is not in the file"));
}

/// The doc's prose: every line outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut inside = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                inside = !inside;
                return false;
            }
            !inside
        })
        .collect()
}

#[test]
fn every_chapter_doc_reads_in_25_minutes() {
    for doc in chapter_docs() {
        let text = fs::read_to_string(&doc).unwrap();
        let words: usize = prose(&text)
            .iter()
            .map(|l| l.split_whitespace().count())
            .sum();
        assert!(
            words <= 5000,
            "{} has {words} words of prose; a chapter reads in 25 minutes at most (5,000 words): \
             move supporting topics into short labelled sections or cut them",
            doc.display()
        );
    }
}

#[test]
fn every_chapter_doc_has_a_diagram() {
    for doc in chapter_docs() {
        let text = fs::read_to_string(&doc).unwrap();
        assert!(
            text.lines().any(|l| l.trim() == "```mermaid"),
            "{} has no diagram (a ```mermaid block)",
            doc.display()
        );
    }
}

#[test]
fn every_chapter_doc_shows_its_idea_on_the_first_screen() {
    for doc in chapter_docs() {
        let text = fs::read_to_string(&doc).unwrap();
        // The first block that the tests run (one a reader can type).
        let first = transcript::blocks(&text)
            .iter()
            .find(|b| b.left_out.is_none() && b.problem.is_none() && !b.commands.is_empty())
            .map(|b| b.commands[0].line - 2);
        assert!(
            first.is_some_and(|line| line < 40),
            "{}: the first command a reader can run starts at line {first:?}; it belongs on the first screen (40 lines)",
            doc.display()
        );
    }
}

/// Each exercise under "## Try it yourself" (a list item) is followed by a
/// collapsed answer before the next one.
#[test]
fn every_exercise_has_an_answer() {
    let mut exercises = 0;
    for doc in chapter_docs() {
        let text = fs::read_to_string(&doc).unwrap();
        let Some((_, section)) = text.split_once("## Try it yourself") else {
            panic!("{} has no Try it yourself section", doc.display());
        };
        let section = section.split("\n## ").next().unwrap();
        let items: Vec<&str> = section
            .split('\n')
            .filter(|l| {
                l.starts_with("- ")
                    || l.split_once(". ")
                        .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
            })
            .collect();
        assert!(
            !items.is_empty(),
            "{}: Try it yourself lists no exercise",
            doc.display()
        );
        let mut rest = section;
        for item in &items {
            let (_, after) = rest.split_once(item).unwrap();
            let next = items
                .iter()
                .filter_map(|i| after.find(i))
                .min()
                .unwrap_or(after.len());
            assert!(
                after[..next].contains("<details>"),
                "{}: the exercise `{item}` has no answer (a <details> block after it)",
                doc.display()
            );
            rest = after;
            exercises += 1;
        }
    }
    assert!(exercises >= 5);
}

#[test]
fn readme_and_chapter_1_say_how_to_run_as_root_and_as_yourself() {
    for index in ["README.md", "docs/ch1-mount-namespace.md"] {
        let text = fs::read_to_string(repo().join(index)).unwrap();
        let first_screen: String = text.lines().take(60).collect::<Vec<_>>().join("\n");
        assert!(
            first_screen.contains("sudo target/debug/") && first_screen.contains("cargo build"),
            "{index}: its first screen must say how to run a chapter as root (`cargo build`, then `sudo target/debug/...`)"
        );
    }
}

#[test]
fn the_book_lists_every_chapter_doc() {
    let summary = fs::read_to_string(repo().join("docs/SUMMARY.md")).unwrap();
    for doc in chapter_docs() {
        let name = doc.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            summary.contains(&format!("]({name})")),
            "docs/SUMMARY.md does not list {name}: the book would leave it out"
        );
    }
}
