//! `ps` and `logs`: what containers there are, and what one wrote (ch5 onwards).

use std::fs;
use std::io::Write;
use std::process::ExitCode;

use crate::container::{self, Container};
use crate::dataroot::{check_name, DataRoot};
use crate::error::{Error, Result};
use crate::image;

pub fn ps(root: &DataRoot, all: bool) -> Result<ExitCode> {
    println!(
        "{:<12}  {:<20}  {:>7}  {:<16}  {:<24}  CREATED",
        "ID", "NAME", "PID", "STATUS", "COMMAND"
    );
    for container in container::list(root)? {
        let Ok(state) = container.state() else {
            if all {
                println!(
                    "{:<12}  {:<20}  {:>7}  {:<16}",
                    "-", container.name, "-", "half-created"
                );
            }
            continue;
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
        println!(
            "{:<12}  {:<20}  {:>7}  {:<16}  {:<24}  {}",
            state.id,
            state.name,
            pid,
            state.status_text(),
            command,
            container::age(state.created)
        );
    }
    Ok(ExitCode::SUCCESS)
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
