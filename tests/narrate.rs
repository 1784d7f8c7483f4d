//! `--narrate=new` (docs: issue 9, "a chapter reads as one idea"): each
//! narration line knows the chapter that introduced it, the running
//! chapter's lines print in full and each run of earlier chapters' lines
//! folds into one `… N steps from chapters 1–2 …` line. The counts are never
//! hard-coded here: each is checked against a full (`--narrate=all`) run.

mod support;

use std::fs::File;
use std::io::Read;
use std::process::Stdio;

use support::{Sandbox, Who};

const CH2: &str = env!("CARGO_BIN_EXE_ch2-rootfs");
const CH3: &str = env!("CARGO_BIN_EXE_ch3-overlay");
const CH4: &str = env!("CARGO_BIN_EXE_ch4-volumes");
const CH5: &str = env!("CARGO_BIN_EXE_ch5-commit");

/// A sandbox with busybox, its image already unpacked by one quiet run, so
/// that the runs compared below print the same steps.
fn warm_sandbox(who: Who, bin: &str, args: &[&str]) -> Sandbox {
    let sandbox = Sandbox::new(who);
    sandbox.with_busybox();
    let mut quiet = vec!["-q"];
    quiet.extend_from_slice(args);
    sandbox.run(bin, &quiet);
    sandbox
}

/// The narration in `stderr` with what honestly varies between two runs
/// (pids, container ids, scratch directory numbers) replaced.
fn normalise(line: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 12 {
            out.push_str("<id>");
        } else if !run.is_empty() && run.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str("<n>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in line.chars() {
        if c.is_ascii_hexdigit() && !c.is_ascii_uppercase() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The narration lines of one side (`[parent]` or `[child ]`), in order.
fn side<'a>(stderr: &'a str, tag: &str) -> Vec<&'a str> {
    stderr.lines().filter(|l| l.starts_with(tag)).collect()
}

/// `[child ] … 17 steps from chapters 1–2 …` → 17.
fn fold_count(line: &str) -> Option<usize> {
    let rest = line.get(9..)?.strip_prefix("… ")?;
    let (n, rest) = rest.split_once(' ')?;
    if !(rest.starts_with("step") && rest.ends_with(" …")) {
        return None;
    }
    n.parse().ok()
}

/// Check, side by side, that a `--narrate=new` output is the full one with
/// each fold standing for exactly as many consecutive full lines as it says,
/// and that no line of `new_chapter_marker` was folded. Returns the folds'
/// counts, or what did not line up.
fn line_up(full: &str, new: &str) -> Result<Vec<usize>, String> {
    let mut folds = Vec::new();
    for tag in ["[parent]", "[child ]"] {
        let full = side(full, tag);
        let new = side(new, tag);
        let mut at = 0;
        for line in &new {
            match fold_count(line) {
                Some(n) => {
                    if at + n > full.len() {
                        return Err(format!("{line}: only {} lines left", full.len() - at));
                    }
                    folds.push(n);
                    at += n;
                }
                None => {
                    let expected = full.get(at).map(|l| normalise(l));
                    if expected.as_deref() != Some(&normalise(line)) {
                        return Err(format!(
                            "printed in full: {line}\nbut the full run has: {expected:?}"
                        ));
                    }
                    at += 1;
                }
            }
        }
        if at != full.len() {
            return Err(format!(
                "{tag}: the folds and full lines stand for {at} lines, the full run printed {}",
                full.len()
            ));
        }
    }
    Ok(folds)
}

/// Run `args` in full and with `--narrate=new`, and line the outputs up.
fn both_modes(sandbox: &Sandbox, bin: &str, args: &[&str]) -> (String, String) {
    let full = sandbox.run(bin, args);
    let mut new_args = vec!["--narrate=new"];
    new_args.extend_from_slice(args);
    let new = sandbox.run(bin, &new_args);
    assert_eq!(full.code, new.code, "{full:#?}\n{new:#?}");
    (full.stderr, new.stderr)
}

// The fold's number is the count of lines the full run prints from the
// earlier chapters: in chapter 3, the child's three lines before the overlay
// mount (setsid, mount --make-rprivate, sethostname) and all of its lines
// after it (/proc, /dev, /tmp, pivot_root, close_range, execvp).
fn claim_folds_count_the_earlier_chapters_lines(who: Who) {
    let sandbox = warm_sandbox(who, CH3, &["--", "true"]);
    let (full, new) = both_modes(&sandbox, CH3, &["--", "true"]);
    line_up(&full, &new).unwrap_or_else(|e| panic!("{e}\nfull:\n{full}\nnew:\n{new}"));

    let child = side(&full, "[child ]");
    let overlay = child
        .iter()
        .position(|l| l.contains("mount(\"overlay\""))
        .expect("the full run mounts the overlay");
    let expected = format!(
        "[child ] … {} steps from chapters 1–2 …\n",
        overlay // lines before the overlay, all from chapters 1 and 2
    );
    let child_new = side(&new, "[child ]");
    assert_eq!(child_new.len(), 3, "{new}");
    assert_eq!(format!("{}\n", child_new[0]), expected, "{new}");
    assert!(child_new[1].contains("mount(\"overlay\""), "{new}");
    assert_eq!(
        child_new[2],
        format!(
            "[child ] … {} steps from chapters 1–2 …",
            child.len() - overlay - 1
        ),
        "{new}"
    );
    // The parent's own new line (the run's directories) is in full too.
    assert!(
        side(&new, "[parent]")
            .iter()
            .any(|l| l.contains("{upper,work,merged}")),
        "{new}"
    );
    for folded in ["pivot_root(", "execvp(", "sethostname(", "close_range("] {
        assert!(!new.contains(folded), "{folded} printed in full:\n{new}");
    }
}
root_and_rootless!(claim_folds_count_the_earlier_chapters_lines:
    folds_count_the_earlier_chapters_lines,
    rootless_folds_count_the_earlier_chapters_lines);

#[test]
fn chapters_2_4_and_5_fold_exactly_the_earlier_chapters_lines() {
    let volume = tempfile::tempdir().unwrap();
    let spec = format!("{}:/mnt", volume.path().display());
    let runs: [(&str, Vec<&str>, &str); 3] = [
        (CH2, vec!["--", "true"], "pivot_root("),
        (CH4, vec!["-v", &spec, "--", "true"], "MS_BIND|MS_REC"),
        (
            CH5,
            vec!["run", "--rm", "--name", "fold", "busybox", "true"],
            "claims the name",
        ),
    ];
    for (bin, args, new_line) in runs {
        let sandbox = warm_sandbox(Who::Caller, bin, &args);
        let (full, new) = both_modes(&sandbox, bin, &args);
        let folds = line_up(&full, &new)
            .unwrap_or_else(|e| panic!("{bin}: {e}\nfull:\n{full}\nnew:\n{new}"));
        assert!(!folds.is_empty(), "{bin}: nothing folded:\n{new}");
        assert!(
            new.contains(new_line),
            "{bin}: its own line is folded:\n{new}"
        );
    }
}

// The checker above must be able to fail: one step more or less in a fold
// is caught.
#[test]
fn a_wrong_fold_count_is_caught() {
    let sandbox = warm_sandbox(Who::Caller, CH3, &["--", "true"]);
    let (full, new) = both_modes(&sandbox, CH3, &["--", "true"]);
    let n = *line_up(&full, &new).unwrap().iter().max().unwrap();
    for wrong in [n - 1, n + 1] {
        let tampered = new.replacen(&format!("… {n} step"), &format!("… {wrong} step"), 1);
        assert_ne!(tampered, new);
        assert!(
            line_up(&full, &tampered).is_err(),
            "a fold of {wrong} instead of {n} was not caught"
        );
    }
}

#[test]
fn the_default_is_all_and_unchanged() {
    let sandbox = warm_sandbox(Who::Caller, CH3, &["--", "true"]);
    let default = sandbox.run(CH3, &["--", "true"]);
    let all = sandbox.run(CH3, &["--narrate=all", "--", "true"]);
    let lines = |text: &str| text.lines().map(normalise).collect::<Vec<_>>();
    assert_eq!(lines(&default.stderr), lines(&all.stderr));
    assert!(
        default.stderr.lines().all(|l| fold_count(l).is_none()),
        "{}",
        default.stderr
    );
    // Every step of every chapter is there, as the chapter tests expect.
    for step in [
        "MS_REC|MS_PRIVATE",
        "sethostname(",
        "mount(\"overlay\"",
        "execvp(",
    ] {
        assert!(default.stderr.contains(step), "{step}: {}", default.stderr);
    }
}

#[test]
fn no_escape_codes_when_stderr_is_not_a_terminal() {
    let sandbox = warm_sandbox(Who::Caller, CH3, &["--", "true"]);
    let out = sandbox.run(CH3, &["--narrate=new", "--", "true"]);
    out.assert_ok();
    assert!(!out.stderr.contains('\x1b'), "{:?}", out.stderr);
}

#[test]
fn new_lines_are_bold_on_a_terminal() {
    let sandbox = warm_sandbox(Who::Caller, CH3, &["--", "true"]);
    let (master, slave) = support::open_pty(24, 80);
    let mut command = sandbox.command(CH3, &["--narrate=new", "--", "true"]);
    command
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave));
    let mut child = command.spawn().expect("start ch3");
    drop(command); // closes our copy of the slave: EOF (EIO) once the run ends
    let mut text = Vec::new();
    let _ = File::from(master).read_to_end(&mut text); // ends in EIO when the slave closes
    assert!(child.wait().unwrap().success());
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("\x1b[1m[child ] mount(\"overlay\""),
        "not bold: {text:?}"
    );
    assert!(
        text.contains("\x1b[2m[child ] … "),
        "fold not dimmed: {text:?}"
    );
}

// A child that fails before exec prints its folded steps before the parent
// prints its error: nothing folded is lost, and the order is the full run's.
#[test]
fn a_failing_child_prints_its_fold_before_the_error() {
    let sandbox = warm_sandbox(Who::Caller, CH3, &["--", "true"]);
    let (full, new) = both_modes(&sandbox, CH3, &["--", "/no/such/command"]);
    line_up(&full, &new).unwrap_or_else(|e| panic!("{e}\nfull:\n{full}\nnew:\n{new}"));
    let lines: Vec<&str> = new.lines().collect();
    let error = lines
        .iter()
        .position(|l| l.starts_with("ch3-overlay: execvp"))
        .unwrap_or_else(|| panic!("no error in {new}"));
    let last_fold = lines
        .iter()
        .rposition(|l| l.starts_with("[child ] … "))
        .unwrap_or_else(|| panic!("no child fold in {new}"));
    assert!(last_fold < error, "the fold came after the error:\n{new}");
    assert_eq!(error, lines.len() - 1, "{new}");
}

#[test]
fn quiet_wins_over_narrate_new() {
    let sandbox = warm_sandbox(Who::Caller, CH3, &["--", "true"]);
    let out = sandbox.run(CH3, &["-q", "--narrate=new", "--", "true"]);
    out.assert_ok();
    assert_eq!(out.stderr, "");
}

// With -v, details of earlier chapters fold too (counted apart), and the
// lines in full still line up with a full -v run.
#[test]
fn verbose_details_fold_with_their_chapter() {
    let sandbox = warm_sandbox(Who::Caller, CH3, &["--", "true"]);
    let (full, new) = both_modes(&sandbox, CH3, &["-v", "--", "true"]);
    let mut folds = 0;
    for tag in ["[parent]", "[child ]"] {
        let (full, new) = (side(&full, tag), side(&new, tag));
        let mut at = 0;
        for line in &new {
            if let Some(rest) = line.get(9..).and_then(|l| l.strip_prefix("… ")) {
                let words: Vec<&str> = rest.split(' ').collect();
                let mut n: usize = words[0].parse().unwrap();
                if words.get(2) == Some(&"and") {
                    n += words[3].parse::<usize>().unwrap();
                }
                folds += 1;
                at += n;
            } else {
                assert_eq!(normalise(full[at]), normalise(line), "\n{new:#?}");
                at += 1;
            }
        }
        assert_eq!(at, full.len(), "{tag}:\nfull:\n{full:#?}\nnew:\n{new:#?}");
    }
    assert!(folds > 0);
    assert!(new.contains("detail"), "{new}");
}
