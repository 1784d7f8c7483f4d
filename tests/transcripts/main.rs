//! Docs that are executed: every console transcript in README.md and
//! docs/*.md is typed into a shell, in doc order, one sandbox per doc (see
//! sandbox.rs), and what each command prints is compared with what the doc
//! shows under it, after normalising what honestly varies (doc.rs).
//!
//! `cargo test --test transcripts [-- NAME...]` checks the docs whose path
//! contains a NAME (all by default); `scripts/bless-docs.sh [NAME...]`
//! (`SNAPSHOTS=overwrite`) rewrites each output that differs from the real
//! run, so no transcript is ever typed by hand (lines the doc wrote with a
//! `[..]` wildcard are kept where they still match), then checks the result.
//! Exit statuses are compared as well, against tests/transcripts/status/,
//! which blessing writes. A block the tests cannot run has a marker a reader
//! sees right above it: `*Not run by the tests: why.*`
//!
//! After all docs, the course: every doc's commands again, README to
//! chapter 5, in one sandbox, as a new user would type them in one sitting;
//! each must end as it does in its own doc. Last, the runner's self-test: a
//! copy of a doc with one shown line changed must fail at exactly that line.
//!
//! No test harness: the sandbox forks, which a threaded harness forbids.

mod doc;
mod sandbox;
mod shell;
#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, then docs/*.md in order.
fn docs() -> Vec<String> {
    let mut docs: Vec<String> = fs::read_dir(repo().join("docs"))
        .expect("read docs/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    docs.insert(0, "README.md".to_string());
    docs
}

/// What checking one doc found.
#[derive(Default)]
struct Report {
    commands: usize,
    ran: usize,
    matched: usize,
    left_out: BTreeMap<String, usize>,
    failures: Vec<String>,
    /// Output lines to replace, and with what, when blessing.
    updates: Vec<(Range<usize>, String)>,
    /// Each command that ran, where it stands and how it ended.
    statuses: Vec<(String, i32)>,
    /// Every command's output as this run printed it (wildcard lines kept).
    refresh: Vec<(Range<usize>, String)>,
    /// The status record blessing writes: each command's status and text.
    record: Vec<(i32, String)>,
}

impl Report {
    fn summary(&self, name: &str) -> String {
        let mut line = format!(
            "{name}: {} commands: {} ran, {} matched, {} left out",
            self.commands,
            self.ran,
            self.matched,
            self.left_out.values().sum::<usize>()
        );
        if !self.left_out.is_empty() {
            let reasons: Vec<String> = self
                .left_out
                .iter()
                .map(|(why, n)| format!("{n}: {why}"))
                .collect();
            line.push_str(&format!(" ({})", reasons.join("; ")));
        }
        line
    }
}

/// Run the transcripts of `text` (the doc called `name`) and compare.
fn check(name: &str, text: &str, learner: u32) -> Report {
    let lines: Vec<&str> = text.lines().collect();
    let mut report = Report::default();
    let mut to_run = Vec::new();
    for block in doc::blocks(text) {
        report.commands += block.commands.len();
        if let Some(problem) = &block.problem {
            let line = block.commands.first().map_or(0, |c| c.line);
            report.failures.push(format!("{name}:{line}: {problem}"));
            continue;
        }
        match block.left_out {
            Some(why) => *report.left_out.entry(why).or_default() += block.commands.len(),
            None => to_run.extend(block.commands),
        }
    }
    if to_run.is_empty() {
        return report;
    }
    let typed: Vec<(doc::Who, String)> = to_run.iter().map(|c| (c.who, c.text.clone())).collect();
    let ran = match sandbox::run(&typed, learner) {
        Ok(ran) => ran,
        Err(e) => {
            report
                .failures
                .push(format!("{name}: the sandbox failed: {e}"));
            return report;
        }
    };
    report.ran = ran.len();
    let record = read_record(name);
    let mut stale = false;
    for (k, (command, ran)) in to_run.iter().zip(&ran).enumerate() {
        let place = format!("{name}:{}: `{}`", command.line, first_line(&command.text));
        report.statuses.push((place.clone(), ran.status));
        report
            .record
            .push((ran.status, first_line(&command.text).to_string()));
        if let Some(error) = &ran.error {
            report.failures.push(format!("{place}: {error}"));
            continue;
        }
        // Exit statuses are compared too, against the record the last
        // blessing kept beside the doc (a reader sees a status only where
        // the doc prints `$?`, so it is not written into the doc itself).
        match record.get(k) {
            Some((status, text)) if text == first_line(&command.text) && *status != ran.status => {
                report.failures.push(format!(
                    "{place}: exits {}, where the blessed run exited {status}",
                    ran.status
                ));
                continue;
            }
            Some((_, text)) if text == first_line(&command.text) => {}
            _ if !stale => {
                stale = true;
                report.failures.push(format!(
                    "{name}: {} does not list this doc's commands as they are now, from `{}` on: run scripts/bless-docs.sh",
                    record_path(name).display(),
                    first_line(&command.text)
                ));
            }
            _ => {}
        }
        let shown = doc::shown(&lines, command);
        match doc::mismatch(&shown, &ran.output) {
            None => report.matched += 1,
            Some(diff) => {
                report.failures.push(format!(
                    "{place}: the output differs from the doc's (exit status {}):\n{diff}",
                    ran.status
                ));
                if let Some(line) = doc::unshowable(&ran.output) {
                    report.failures.push(format!(
                        "{place}: cannot bless: the output line `{line}` would read as a command or end the block; \
                         change the command (e.g. `| sed 's/^/  /'`)"
                    ));
                }
            }
        }
        if doc::unshowable(&ran.output).is_none() {
            report
                .refresh
                .push((command.output.clone(), doc::merge(&shown, &ran.output)));
        }
    }
    // A doc is blessed from one run: when any output differs, every output
    // is refreshed, so that pids and names agree from one command to the next.
    if report
        .failures
        .iter()
        .any(|f| f.contains("the output differs"))
    {
        report.updates = std::mem::take(&mut report.refresh);
    }
    if let Some(next) = to_run.get(ran.len()) {
        report.failures.push(format!(
            "{name}:{}: not run: the doc stopped at the command before it",
            next.line
        ));
    }
    report
}

/// Where the exit statuses of a doc's commands are recorded.
fn record_path(name: &str) -> PathBuf {
    let file = name.replace('/', "-");
    repo()
        .join("tests/transcripts/status")
        .join(format!("{file}.txt"))
}

/// The recorded statuses: one line per command, `STATUS<TAB>FIRST LINE`.
fn read_record(name: &str) -> Vec<(i32, String)> {
    fs::read_to_string(record_path(name))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter_map(|(status, text)| Some((status.parse().ok()?, text.to_string())))
        .collect()
}

fn write_record(name: &str, record: &[(i32, String)]) {
    let text: String = record.iter().map(|(s, t)| format!("{s}\t{t}\n")).collect();
    let path = record_path(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// The runner must be able to fail: change one shown output line in a copy
/// of a doc (a `CONTAINED` verdict to `ESCAPED` where a doc shows one, else
/// the first output line a doc shows), run the copy up to that block, and
/// expect exactly that command to be reported, naming the doc and line.
fn runner_reports_a_changed_output_line(learner: u32) -> Result<String, String> {
    let mut first = None;
    let mut verdict = None;
    for name in docs() {
        let text = fs::read_to_string(repo().join(&name)).unwrap();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        for block in doc::blocks(&text)
            .into_iter()
            .filter(|b| b.left_out.is_none())
        {
            for command in block.commands {
                let shown = command
                    .output
                    .clone()
                    .find(|&i| !lines[i].trim().is_empty());
                if let Some(at) = command
                    .output
                    .clone()
                    .find(|&i| lines[i].contains("CONTAINED"))
                {
                    verdict.get_or_insert((name.clone(), lines.clone(), command.clone(), at));
                } else if let Some(at) = shown {
                    first.get_or_insert((name.clone(), lines.clone(), command.clone(), at));
                }
            }
        }
    }
    let (name, lines, command, at) = verdict
        .or(first)
        .ok_or("no doc shows any output to change")?;
    let (changed, marker) = if lines[at].contains("CONTAINED") {
        (lines[at].replace("CONTAINED", "ESCAPED"), "ESCAPED")
    } else {
        (format!("{} (changed)", lines[at]), "(changed)")
    };
    let mut copy: Vec<&str> = lines[..command.output.end]
        .iter()
        .map(String::as_str)
        .collect();
    copy.push("```");
    // The control: the copy as it is passes.
    let control = check(&name, &(copy.join("\n") + "\n"), learner);
    if !control.failures.is_empty() {
        return Err(format!(
            "the unchanged copy of {name} failed: {:#?}",
            control.failures
        ));
    }
    copy.pop();
    copy[at] = &changed;
    copy.push("```");
    let report = check(&name, &(copy.join("\n") + "\n"), learner);
    let expected = format!("{name}:{}:", command.line);
    // The diff must show the changed line as what the doc expected.
    let removed = format!("- {}", doc::normalise(&changed).trim_end());
    let _ = marker;
    match report.failures.as_slice() {
        [only] if only.starts_with(&expected) && only.contains(&removed) => Ok(format!(
            "the runner reported {name}:{} when line {} was changed to `{changed}`",
            command.line,
            at + 1
        )),
        other => Err(format!(
            "line {} of {name} was changed to `{changed}`; the runner reported {other:#?}",
            at + 1
        )),
    }
}

/// A new user goes through README → chapter 5 in one sitting, on one
/// machine: every command of every doc, in order, in one sandbox. What each
/// prints may differ from its doc's own run (the busybox image is fetched
/// once, not per doc), but every command must end as it does there: one that
/// succeeds alone must not fail after the docs before it.
fn course(names: &[String], alone: &[(String, i32)], learner: u32) -> Vec<String> {
    let mut typed = Vec::new();
    for name in names {
        let text = fs::read_to_string(repo().join(name)).unwrap();
        for block in doc::blocks(&text)
            .into_iter()
            .filter(|b| b.left_out.is_none())
        {
            typed.extend(block.commands.into_iter().map(|c| (c.who, c.text)));
        }
    }
    let ran = match sandbox::run(&typed, learner) {
        Ok(ran) => ran,
        Err(e) => return vec![format!("the course's sandbox failed: {e}")],
    };
    let mut failures = Vec::new();
    for ((place, status), ran) in alone.iter().zip(&ran) {
        if let Some(error) = &ran.error {
            failures.push(format!("in the course, {place}: {error}"));
        } else if ran.status != *status && (ran.status == 0 || *status == 0) {
            failures.push(format!(
                "in the course (README → chapter 5 in one session), {place} exited {} where its doc alone gives {status}:\n{}",
                ran.status, ran.output
            ));
        }
    }
    if ran.len() < alone.len() {
        failures.push(format!(
            "the course stopped after {} of {} commands",
            ran.len(),
            alone.len()
        ));
    }
    failures
}

fn main() -> ExitCode {
    let started = Instant::now();
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let bless = std::env::var("SNAPSHOTS").is_ok_and(|v| v == "overwrite");
    let selected: Vec<String> = docs()
        .into_iter()
        .filter(|d| filters.is_empty() || filters.iter().any(|f| d.contains(f.as_str())))
        .collect();
    if !support::suite_is_root() {
        let commands: usize = selected
            .iter()
            .map(|d| {
                let text = fs::read_to_string(repo().join(d)).unwrap();
                doc::blocks(&text)
                    .iter()
                    .map(|b| b.commands.len())
                    .sum::<usize>()
            })
            .sum();
        println!(
            "transcripts: skipped: {commands} commands in {} docs: the docs' sandbox (private /tmp, /home, \
             /var/lib/stepbox, and a root shell beside the learner's) needs root: build as yourself with \
             `cargo test --no-run --test transcripts`, then run the test binary it names with sudo",
            selected.len()
        );
        if std::env::var_os("CI").is_some() {
            println!("FAILED transcripts: CI must run them: run the suite as root");
            println!("test result: FAILED. 0 passed; 1 failed; {commands} ignored; 0 measured; 0 filtered out");
            return ExitCode::FAILURE;
        }
        println!(
            "test result: ok. 0 passed; 0 failed; {commands} ignored; 0 measured; 0 filtered out"
        );
        return ExitCode::SUCCESS;
    }
    let learner = support::unprivileged_id();
    doc::set_learner(learner);
    let (mut passed, mut failed, mut ignored) = (0, 0, 0);
    let mut statuses = Vec::new();
    let mut whole = true;
    let mut blessed = 0;
    for name in &selected {
        let text = fs::read_to_string(repo().join(name)).unwrap();
        let report = check(name, &text, learner);
        println!("{}", report.summary(name));
        for failure in &report.failures {
            println!("FAILED {failure}");
        }
        passed += report.matched;
        failed += report.failures.len();
        whole &= report.failures.is_empty()
            && report.ran == report.commands - report.left_out.values().sum::<usize>();
        statuses.extend(report.statuses.iter().cloned());
        ignored += report.left_out.values().sum::<usize>();
        let complete = report.ran + report.left_out.values().sum::<usize>() == report.commands;
        if bless && complete && !report.record.is_empty() && report.record != read_record(name) {
            write_record(name, &report.record);
            let stale = report
                .failures
                .iter()
                .filter(|f| f.contains("blessed run exited") || f.contains("does not list"))
                .count();
            blessed += stale;
            println!(
                "{name}: recorded the exit status of {} commands",
                report.record.len()
            );
        }
        if bless && !report.updates.is_empty() {
            blessed += report
                .failures
                .iter()
                .filter(|f| f.contains("the output differs"))
                .count();
            fs::write(repo().join(name), doc::bless(&text, &report.updates)).unwrap();
            println!(
                "{name}: blessed {} outputs from this run",
                report.updates.len()
            );
        }
    }
    if filters.is_empty() {
        if !whole {
            println!("course: not run: a doc failed on its own (above)");
        } else {
            let failures = course(&selected, &statuses, learner);
            if failures.is_empty() {
                println!("course: ok: all {} commands, README → chapter 5 in one session, ended as in their own docs", statuses.len());
                passed += 1;
            }
            for failure in &failures {
                println!("FAILED {failure}");
            }
            failed += failures.len();
        }
    }
    if filters.is_empty() || filters.iter().any(|f| f == "runner") {
        match runner_reports_a_changed_output_line(learner) {
            Ok(what) => {
                println!("runner self-test: ok: {what}");
                passed += 1;
            }
            Err(why) => {
                println!("FAILED runner self-test: {why}");
                failed += 1;
            }
        }
    }
    let status = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "test result: {status}. {passed} passed; {failed} failed; {ignored} ignored; 0 measured; 0 filtered out; \
         finished in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    // Blessing fixes only differing outputs: anything else still fails, and
    // scripts/bless-docs.sh checks the blessed docs once more.
    if failed == 0 || (bless && failed == blessed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
