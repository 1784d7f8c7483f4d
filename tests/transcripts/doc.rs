//! A doc's transcripts: the console blocks it shows, the commands in them
//! with who types them, the output shown under each, and how a real run's
//! output is normalised before the two are compared.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;
use snapbox::{Data, Redactions};

/// Who types a command: `#` is a root shell, `$` an ordinary user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Root,
    User,
}

/// One command a console block shows, and the output shown under it.
#[derive(Debug, Clone)]
pub struct Command {
    /// The doc line (1-based) the command starts on.
    pub line: usize,
    pub who: Who,
    /// What is typed, continuation and here-document lines included.
    pub text: String,
    /// The output shown under it, as doc lines (0-based, end exclusive).
    pub output: Range<usize>,
}

/// One console block: its commands, or why a reader is told it is not run.
#[derive(Debug, Clone)]
pub struct Block {
    pub commands: Vec<Command>,
    pub left_out: Option<String>,
}

/// The marker a doc puts right above a block the tests do not run, in text a
/// reader sees: `*Not run by the tests: needs Docker.*`
pub const LEFT_OUT: &str = "*Not run by the tests:";

/// The console blocks of a doc, in order.
pub fn blocks(doc: &str) -> Vec<Block> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i];
        if !fence.starts_with("```") {
            i += 1;
            continue;
        }
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].starts_with("```"))
            .unwrap_or(lines.len());
        if fence.trim_end() == "```console" {
            let left_out = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| l.trim().strip_prefix(LEFT_OUT))
                .map(|reason| reason.trim().trim_end_matches('*').trim().to_string());
            blocks.push(Block {
                commands: commands(&lines, i + 1..end),
                left_out,
            });
        }
        i = end + 1;
    }
    blocks
}

/// `# cmd` or `$ cmd`: who types it and what.
fn prompt(line: &str) -> Option<(Who, &str)> {
    if let Some(rest) = line.strip_prefix("# ") {
        Some((Who::Root, rest))
    } else if let Some(rest) = line.strip_prefix("$ ") {
        Some((Who::User, rest))
    } else {
        None
    }
}

/// The word a here-document ends with, if `line` opens one (`<<'EOF'`, `<<EOF`).
fn heredoc_end(line: &str) -> Option<String> {
    static HEREDOC: OnceLock<Regex> = OnceLock::new();
    let heredoc = HEREDOC.get_or_init(|| Regex::new(r#"<<-?\s*['"]?([A-Za-z_]+)['"]?"#).unwrap());
    heredoc.captures(line).map(|c| c[1].to_string())
}

fn commands(lines: &[&str], body: Range<usize>) -> Vec<Command> {
    let mut commands: Vec<Command> = Vec::new();
    let mut i = body.start;
    while i < body.end {
        let Some((who, first)) = prompt(lines[i]) else {
            // Output: it belongs to the command above (or to none, at the top).
            if let Some(last) = commands.last_mut() {
                last.output.end = i + 1;
            }
            i += 1;
            continue;
        };
        let line = i + 1;
        let mut text = first.to_string();
        i += 1;
        while text.ends_with('\\') && i < body.end {
            text.push('\n');
            text.push_str(lines[i]);
            i += 1;
        }
        if let Some(word) = heredoc_end(&text) {
            while i < body.end {
                text.push('\n');
                text.push_str(lines[i]);
                i += 1;
                if lines[i - 1].trim() == word {
                    break;
                }
            }
        }
        commands.push(Command {
            line,
            who,
            text,
            output: i..i,
        });
    }
    commands
}

/// The output a doc shows under `command`, one string.
pub fn shown(doc_lines: &[&str], command: &Command) -> String {
    doc_lines[command.output.clone()]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect()
}

/// What a terminal would show of `bytes`, written so a doc can hold it:
/// control characters in caret form (`^[`), as `cat -v` writes them.
pub fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            '\x7f' => out.push_str("^?"),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(c as u8 + 64));
            }
            c => out.push(c),
        }
    }
    out
}

/// What honestly differs from run to run, and nothing else: pids, mount ids
/// and device numbers, dates and times, digests and container ids, sizes
/// and link counts, the test account's uid (61000-64999), and column
/// layout.
fn redactions() -> &'static Redactions {
    static REDACTIONS: OnceLock<Redactions> = OnceLock::new();
    REDACTIONS.get_or_init(|| {
        let rules: &[(&'static str, &str)] = &[
            ("[DIGEST]", r"(?<redacted>\b[0-9a-f]{64}\b)"),
            ("[ID]", r"(?<redacted>\b[0-9a-f]{12}\b)"),
            ("[DATE]", r"(?<redacted>\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z| ?[+-]\d\d:?\d\d)?)"),
            ("[DATE]", r"(?<redacted>\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d+ +(\d\d:\d\d|\d{4})\b)"),
            ("[TIME]", r"(?<redacted>\b\d+m\d+\.\d+s\b)"),
            ("[TIME]", r"(?<redacted>\b\d+(\.\d+)? ?(ms|s)\b)"),
            // The narration's `clone(...) = PID`, and pids the usual tools print.
            ("[PID]", r"\) = (?<redacted>\d+)"),
            ("[PID]", r"/proc/(?<redacted>\d+)\b"),
            ("[PID]", r"\bkill\((?<redacted>-?\d+), "),
            ("[PID]", r"(?i)\bpid[ :=]+(?<redacted>\d+)"),
            ("[PID]", r#""(pid|monitor_pid|pid_start_time)": (?<redacted>\d+)"#),
            ("[PID]", r"(?m)^ *(?<redacted>\d+)( +\d+)* +(\?|pts/\d+|[RSDZTI][a-zA-Z+<]*) "),
            // mountinfo: mount id, parent id, device.
            ("[MOUNT]", r"(?m)^(?<redacted>\d+ \d+ \d+:\d+) "),
            ("[DEVINO]", r"(?<redacted>\b\d+:\d+:\d+\b)"),
            ("[INO]", r"(?i)\b(ino|inode)[ :=]+(?<redacted>\d+)(?:[^:\d]|$)"),
            // ls -l: link count and size (owner and group stay compared).
            ("[N]", r"(?m)^[-dlcbps][-rwxsStT]{9}[.+]? +(?<redacted>\d+) "),
            ("[SIZE]", r"(?m)^[-dlcbps][-rwxsStT]{9}[.+]? +\S+ +\S+ +\S+ +(?<redacted>\d+(, +\d+)?) "),
            ("[SIZE]", r"(?m)^total (?<redacted>\d+)$"),
            ("[SIZE]", r"(?<redacted>\b\d+(\.\d+)? ?(B|KiB|MiB|GiB|kB|MB|GB|K|M|G)\b)"),
            // The test account's uid (a reader's is theirs, often 1000).
            ("[UID]", r"(?<redacted>\b6[0-4]\d{3}\b)"),
        ];
        let mut redactions = Redactions::new();
        for (placeholder, pattern) in rules {
            redactions
                .insert(placeholder, Regex::new(pattern).unwrap())
                .unwrap();
        }
        redactions
    })
}

/// `text` with what honestly varies replaced by placeholders, runs of
/// spaces folded (column widths follow the widest value) and trailing
/// spaces dropped.
pub fn normalise(text: &str) -> String {
    static SPACES: OnceLock<Regex> = OnceLock::new();
    let spaces = SPACES.get_or_init(|| Regex::new(r" {2,}").unwrap());
    let redacted = redactions().redact(text);
    redacted
        .lines()
        .map(|l| format!("{}\n", spaces.replace_all(l.trim_end(), " ")))
        .collect()
}

/// `None` if `actual` matches what the doc shows (after normalising both;
/// the doc may also use snapbox's `[..]` and `...` wildcards), else the diff.
pub fn mismatch(shown: &str, actual: &str) -> Option<String> {
    let expected = normalise(shown);
    let actual = normalise(actual);
    let assert = snapbox::Assert::new()
        .action(snapbox::assert::Action::Verify)
        .normalize_paths(false);
    assert
        .try_eq(None, Data::text(actual), Data::text(expected))
        .err()
        .map(|e| e.to_string())
}

/// `doc` with the output under each of `updates`' commands replaced.
pub fn bless(doc: &str, updates: &[(Range<usize>, String)]) -> String {
    let mut lines: Vec<String> = doc.lines().map(str::to_string).collect();
    let mut updates = updates.to_vec();
    updates.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    for (range, output) in updates {
        let new: Vec<String> = output.lines().map(str::to_string).collect();
        lines.splice(range, new);
    }
    let mut text = lines.join("\n");
    if doc.ends_with('\n') {
        text.push('\n');
    }
    text
}
