//! `ps` and `logs`: what containers there are, and what one wrote (ch5 onwards).

use std::fs;
use std::io::Write;
use std::process::ExitCode;

use crate::container::{self, Container};
use crate::dataroot::{check_name, DataRoot};
use crate::error::{Error, Result};
use crate::image;

pub fn ps(root: &DataRoot, all: bool) -> Result<ExitCode> {
    let mut rows = vec![["ID", "NAME", "PID", "STATUS", "COMMAND", "CREATED"].map(String::from)];
    for container in container::list(root)? {
        let state = match container.state() {
            Ok(state) => state,
            Err(_) if all => {
                // A state that cannot be read (or believed) is named as such.
                let what = match container.dir.join("state.json").exists() {
                    true => "damaged",
                    false => "half-created",
                };
                rows.push(["-", &container.name, "-", what, "", ""].map(String::from));
                continue;
            }
            Err(_) => continue,
        };
        // A pid counts only with its start time (docs/ch5-commit.md#pids-and-start-times).
        let running = state.is_running();
        if !all && !running {
            continue;
        }
        let pid = match (running, state.pid) {
            (true, Some(pid)) => pid.to_string(),
            _ => "-".to_string(),
        };
        // An image's Entrypoint and Cmd are the image's bytes: shown escaped.
        let mut command = crate::error::printable(&state.command.join(" "));
        if command.chars().count() > 24 {
            command = command.chars().take(21).collect::<String>() + "...";
        }
        rows.push([
            state.id.clone(),
            state.name.clone(),
            pid,
            state.status_text(),
            command,
            container::age(state.created),
        ]);
    }
    print!("{}", table(&rows));
    Ok(ExitCode::SUCCESS)
}

/// `rows` as columns, as `docker ps` prints them: each column as wide as
/// its widest cell, two spaces between, PID (the third) right-aligned, and
/// no spaces after the last cell.
fn table(rows: &[[String; 6]]) -> String {
    let width = |column: usize| {
        rows.iter()
            .map(|row| row[column].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..6).map(width).collect();
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(column, (cell, &width))| match column {
                2 => format!("{cell:>width$}"),
                _ => format!("{cell:<width$}"),
            })
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

pub fn logs(root: &DataRoot, name: &str) -> Result<ExitCode> {
    let container = Container::existing(root, name)?;
    let path = container.log_path();
    match fs::read(&path) {
        Ok(bytes) => {
            std::io::stdout()
                .write_all(&bytes)
                .map_err(|e| Error::io("writing", "stdout", e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("reading", &path, e)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `inspect`: a container's state.json, or an image's config, as JSON.
pub fn inspect(root: &DataRoot, name: &str) -> Result<ExitCode> {
    let json = match check_name("container", name).and_then(|()| Container::existing(root, name)) {
        Ok(container) => serde_json::to_value(container.state()?),
        Err(_) => {
            let found = image::find(root, name)?;
            serde_json::to_value(image::layers(root, &found)?.config)
        }
    }
    .expect("state and config serialise");
    let text = serde_json::to_string_pretty(&json).expect("JSON values serialise");
    std::io::stdout()
        .write_all(format!("{text}\n").as_bytes())
        .map_err(|e| Error::io("writing", "stdout", e))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: [&str; 6]) -> [String; 6] {
        cells.map(String::from)
    }

    #[test]
    fn each_column_is_as_wide_as_its_widest_cell() {
        let rows = [
            row(["ID", "NAME", "PID", "STATUS", "COMMAND", "CREATED"]),
            row([
                "aaaaaaaaaaaa",
                "a",
                "7",
                "running",
                "sleep 1000",
                "1 second ago",
            ]),
            row([
                "bbbbbbbbbbbb",
                "bb",
                "-",
                "exited (137) OOMKilled",
                "sh",
                "2 days ago",
            ]),
        ];
        assert_eq!(
            table(&rows),
            "ID            NAME  PID  STATUS                  COMMAND     CREATED\n\
             aaaaaaaaaaaa  a       7  running                 sleep 1000  1 second ago\n\
             bbbbbbbbbbbb  bb      -  exited (137) OOMKilled  sh          2 days ago\n"
        );
    }
}
