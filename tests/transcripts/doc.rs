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
    /// Why the tests cannot run this block as it is written, if they cannot.
    pub problem: Option<String>,
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
        let fence = lines[i].trim_start();
        if !fence.starts_with("```") {
            i += 1;
            continue;
        }
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim_start().starts_with("```"))
            .unwrap_or(lines.len());
        let info = fence.trim_end();
        let shows_prompts = lines[i + 1..end].iter().any(|l| prompt(l).is_some());
        if info == "```console" {
            let marker = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| l.trim().strip_prefix(LEFT_OUT))
                .map(|reason| reason.trim().trim_end_matches('*').trim().to_string());
            let problem = if lines[i].starts_with(' ') {
                Some("an indented console block, which the tests do not run: start its fence at the margin".to_string())
            } else if marker.as_deref() == Some("") {
                Some(format!("`{LEFT_OUT}*` gives no reason a reader can see"))
            } else {
                None
            };
            blocks.push(Block {
                commands: commands(&lines, i + 1..end),
                left_out: marker,
                problem,
            });
        } else if shows_prompts && ["```sh", "```bash", "```shell", "```"].contains(&info) {
            blocks.push(Block {
                commands: commands(&lines, i + 1..end),
                left_out: None,
                problem: Some(format!(
                    "a `{}` block shows prompted commands, which only console blocks have run: make it ```console",
                    &info[3..]
                )),
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
    // `<<EOF`, `<<-EOF`, `<<'EOF'`, `<<"EOF"`; not a here-string (`<<<`).
    let heredoc = HEREDOC.get_or_init(|| {
        Regex::new(r#"(?:^|[^<])<<-?\s*(?:'(\w+)'|"(\w+)"|([A-Za-z_]\w*))"#).unwrap()
    });
    let caps = heredoc.captures(line)?;
    (1..=3)
        .find_map(|i| caps.get(i))
        .map(|m| m.as_str().to_string())
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

/// The uid of the suite's ordinary user (`learner`), redacted where it shows:
/// a reader's own uid is theirs, often 1000.
static LEARNER: OnceLock<String> = OnceLock::new();

/// Tell the normaliser which uid the learner has.
pub fn set_learner(uid: u32) {
    let _ = LEARNER.set(uid.to_string());
}

/// What honestly differs from run to run, and nothing else: dates and
/// times, digests and container ids, mount ids, file sizes, ages, and the
/// learner's uid. Pids and dev:ino pairs are numbered apart (see `number`).
fn redactions() -> &'static Redactions {
    static REDACTIONS: OnceLock<Redactions> = OnceLock::new();
    REDACTIONS.get_or_init(|| {
        let rules: &[(&'static str, &str)] = &[
            ("[DIGEST]", r"(?<redacted>\b[0-9a-f]{64}\b)"),
            ("[ID]", r"(?<redacted>\b[0-9a-f]{12}\b)"),
            ("[DATE]", r"(?<redacted>\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z| ?[+-]\d\d:?\d\d)?)"),
            ("[DATE]", r"(?<redacted>\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d+ +(\d\d:\d\d|\d{4})\b)"),
            ("[TIME]", r"(?<redacted>\b\d+m\d+\.\d+s\b)"),
            ("[TIME]", r"(?<redacted>\b\d+\.\d+ ?(ms|s)\b)"),
            ("[AGE]", r"(?<redacted>\b(\d+|an?) (second|minute|hour|day)s? ago\b)"),
            ("[TICKS]", r#""pid_start_time": (?<redacted>\d+)"#),
            // mountinfo: mount id, parent id, device.
            ("[MOUNT]", r"(?m)^(?<redacted>\d+ \d+ \d+:\d+) "),
            ("[INO]", r"(?i)\b(ino|inode)[ :=]+(?<redacted>\d+)(?:[^:\d]|$)"),
            // ls -l's size (link count, owner, group and a device's numbers
            // stay compared).
            ("[SIZE]", r"(?m)^[-dlcbps][-rwxsStT]{9}[.+]? +\S+ +\S+ +\S+ +(?<redacted>\d+) "),
            ("[SIZE]", r"(?m)^total (?<redacted>\d+)$"),
            ("[SIZE]", r"(?<redacted>\b\d+(\.\d+)? ?(B|KiB|MiB|GiB|kB|MB|GB)\b)"),
        ];
        let mut redactions = Redactions::new();
        for (placeholder, pattern) in rules {
            redactions
                .insert(placeholder, Regex::new(pattern).unwrap())
                .unwrap();
        }
        if let Some(uid) = LEARNER.get() {
            let uid = Regex::new(&format!(r"(?<redacted>\b{uid}\b)")).unwrap();
            redactions.insert("[UID]", uid).unwrap();
        }
        redactions
    })
}

/// Pids and dev:ino pairs vary, but which of them are the same is the lesson
/// (the container's `/` against the host's, a child's pid in the parent's
/// narration): each distinct value becomes `[PID1]`, `[PID2]`, ... in the
/// order it first appears, so equal stays equal and different stays
/// different. Pid 1 is never redacted.
fn number(text: &str) -> String {
    static RULES: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            ("PID", r"\b(?:clone|clone3|fork)\([^)]*\) = (\d+)"),
            ("PID", r"/proc/(\d+)\b"),
            ("PID", r#""(?:pid|monitor_pid)": (\d+)"#),
            ("PID", r"\bkill\((-?\d+), "),
            // ps: the numeric columns (pid, ppid, sid) before a tty or a state.
            (
                "PID",
                r"(?m)^ *(\d+)(?: +(\d+))?(?: +(\d+))? +(?:\?|pts/\d+|[RSDZTI][a-zA-Z+<]*) ",
            ),
            ("DEVINO", r"\b(\d+:\d+:\d+)\b"),
        ]
        .into_iter()
        .map(|(kind, pattern)| (kind, Regex::new(pattern).unwrap()))
        .collect()
    });
    let mut seen: Vec<(&str, String)> = Vec::new();
    let mut text = text.to_string();
    for (kind, rule) in rules {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        let values: Vec<regex::Match> = rule
            .captures_iter(&text)
            .flat_map(|caps| caps.iter().skip(1).flatten().collect::<Vec<_>>())
            .collect();
        for value in values {
            if *kind == "PID" && value.as_str() == "1" {
                continue;
            }
            let mut same_kind = seen.iter().filter(|(k, _)| k == kind);
            let n = match same_kind.position(|(_, v)| v == value.as_str()) {
                Some(i) => i + 1,
                None => {
                    seen.push((kind, value.as_str().to_string()));
                    seen.iter().filter(|(k, _)| k == kind).count()
                }
            };
            out.push_str(&text[last..value.start()]);
            out.push_str(&format!("[{kind}{n}]"));
            last = value.end();
        }
        out.push_str(&text[last..]);
        text = out;
    }
    text
}

/// `text` with what honestly varies replaced by placeholders, runs of
/// spaces folded (column widths follow the widest value) and trailing
/// spaces dropped.
pub fn normalise(text: &str) -> String {
    static SPACES: OnceLock<Regex> = OnceLock::new();
    let spaces = SPACES.get_or_init(|| Regex::new(r" {2,}").unwrap());
    let redacted = number(&redactions().redact(text));
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

/// The blessed output for a command: the real output, except that a line the
/// doc wrote with a `[..]` wildcard is kept where it still matches its real
/// line. Every other line comes from the run, so that an output never mixes
/// two runs' pids.
pub fn merge(shown: &str, actual: &str) -> String {
    let shown: Vec<&str> = shown.lines().collect();
    let actual: Vec<&str> = actual.lines().collect();
    let keep = |e: &str, a: &str| {
        e.contains("[..]") && mismatch(&format!("{e}\n"), &format!("{a}\n")).is_none()
    };
    // Longest common subsequence of kept lines.
    let (n, m) = (shown.len(), actual.len());
    let mut best = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            best[i][j] = if keep(shown[i], actual[j]) {
                best[i + 1][j + 1] + 1
            } else {
                best[i + 1][j].max(best[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while j < m {
        if i < n && keep(shown[i], actual[j]) && best[i][j] == best[i + 1][j + 1] + 1 {
            out.push_str(shown[i]);
            i += 1;
            j += 1;
        } else if i < n && best[i + 1][j] >= best[i][j + 1] {
            i += 1;
            continue;
        } else {
            out.push_str(actual[j]);
            j += 1;
        }
        out.push('\n');
    }
    // A kept line carries the pids of the run the doc was blessed from, and
    // pids are numbered across the whole output: if they no longer agree
    // with this run's, this run's output is blessed whole.
    let whole: String = actual.iter().map(|l| format!("{l}\n")).collect();
    if mismatch(&out, &whole).is_some() {
        return whole;
    }
    out
}

/// A line of real output that a doc cannot hold under a command: it would
/// read as a command (`# `, `$ `) or close the block (a fence).
pub fn unshowable(output: &str) -> Option<&str> {
    output
        .lines()
        .find(|l| prompt(l).is_some() || l.trim_start().starts_with("```"))
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
