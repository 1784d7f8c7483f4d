//! `ch2-rootfs --compare`: the same container entered by chroot and by
//! pivot_root, measured from inside, side by side (ch2).
//!
//! Each run's child, right after its root switch, notes where it stands
//! ([`look`]), tries the escape ([`escape`]), and sends the [`Row`] to the
//! parent over a pipe before it execs its command. Once both runs are over
//! the parent prints the [`table`]. See docs/ch2-rootfs.md#the-comparison.

use std::fs::File;
use std::io::{Read, Write};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::pipe2;
use serde::{Deserialize, Serialize};

use super::{escape, look, DevIno, Escape, HostView, Method, View, PROOF_FILES};
use crate::error::{quote, Error, Result, SysContext};

/// What one run measured from inside its container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub method: Method,
    /// The host's `/`, recorded before the switch.
    pub host_root: DevIno,
    /// How many mounts the host had.
    pub host_mounts: usize,
    /// Where the container stood right after the switch.
    pub inside: View,
    /// What the escape attempt found.
    pub escape: Escape,
}

/// In the child, after the switch by `method`: where it stands, then the escape.
pub fn measure(method: Method, host: &HostView) -> Result<Row> {
    Ok(Row {
        method,
        host_root: host.root(),
        host_mounts: host.mounts(),
        inside: look(host)?,
        escape: escape(host)?,
    })
}

/// The child's end of the pipe one run's [`Row`] travels on (close-on-exec,
/// so the command never holds it).
pub struct Sender(File);

/// The parent's end.
pub struct Receiver(File);

/// A pipe for one run's measurements. The parent drops its [`Sender`] once the
/// child has started, so that [`Receiver::receive`] sees the end of the pipe.
/// A [`Row`] is far smaller than a pipe's buffer (64 KiB): the child never
/// blocks on it, so the parent may read it after the run is over.
pub fn channel() -> Result<(Sender, Receiver)> {
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).call(|| "pipe2(compare)".into())?;
    Ok((
        Sender(File::from(write_end)),
        Receiver(File::from(read_end)),
    ))
}

impl Sender {
    /// Send this run's measurements to the parent.
    pub fn send(&self, row: &Row) -> Result<()> {
        let bytes = serde_json::to_vec(row)
            .map_err(|e| Error::Invalid(format!("encoding the measurements: {e}")))?;
        (&self.0).write_all(&bytes).map_err(|e| {
            let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
            Error::sys("write(compare pipe)", errno)
        })
    }
}

impl Receiver {
    /// The measurements of the run by `method`, once its child has sent them
    /// (or ended without).
    pub fn receive(self, method: Method) -> Result<Row> {
        let mut text = String::new();
        (&self.0).read_to_string(&mut text).map_err(|e| {
            let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
            Error::sys("read(compare pipe)", errno)
        })?;
        if text.is_empty() {
            return Err(Error::Internal(format!(
                "the {} run sent no measurements: it ended before its root switch",
                method.call()
            )));
        }
        let row: Row = serde_json::from_str(&text).map_err(|e| {
            Error::Internal(format!(
                "the {} run's measurements are unreadable: {e}",
                method.call()
            ))
        })?;
        if row.method != method {
            return Err(Error::Internal(format!(
                "the {} run sent the measurements of a {} run",
                method.call(),
                row.method.call()
            )));
        }
        Ok(row)
    }
}

/// Say which run an error comes from (the parent's and child's own errors).
pub fn in_run(method: Method, error: Error) -> Error {
    let run = format!("--compare, the {} run", method.call());
    match error {
        Error::Child { message, code } => Error::Child {
            message: format!("{run}: {message}"),
            code,
        },
        Error::Invalid(text) => Error::Invalid(format!("{run}: {text}")),
        Error::Conflict(text) => Error::Conflict(format!("{run}: {text}")),
        Error::Internal(text) => Error::Internal(format!("{run}: {text}")),
        other => other,
    }
}

/// The side-by-side table of `rows` (one column per run), run with `image`,
/// `rootless` or as root.
pub fn table(image: &str, rootless: bool, rows: &[Row]) -> String {
    let who = if rootless {
        "rootless (in a user namespace)"
    } else {
        "as root"
    };
    let cells = |f: &dyn Fn(&Row) -> String| rows.iter().map(f).collect::<Vec<String>>();
    let lines: Vec<(&str, Vec<String>)> = vec![
        ("", cells(&|r| r.method.call().to_string())),
        ("/ inside (dev:ino)", cells(&|r| r.inside.root.to_string())),
        ("host's / (dev:ino)", cells(&|r| r.host_root.to_string())),
        (
            "host mounts seen inside",
            cells(&|r| format!("{} of {}", r.inside.host_mounts, r.host_mounts)),
        ),
        ("old root detached", cells(&old_root)),
        (
            "escape attempt",
            cells(&|r| {
                if r.escape.escaped {
                    "ESCAPED"
                } else {
                    "CONTAINED"
                }
                .to_string()
            }),
        ),
        ("/ after the attempt", cells(&after)),
        (
            "host mounts seen after",
            cells(&|r| format!("{} of {}", r.escape.view.host_mounts, r.host_mounts)),
        ),
        ("proof: a host file", cells(&proof)),
    ];
    let mut widths = vec![lines
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0)];
    for column in 0..rows.len() {
        let width = lines
            .iter()
            .map(|(_, cells)| cells[column].chars().count())
            .max()
            .unwrap_or(0);
        widths.push(width);
    }
    let mut out = format!("chroot vs pivot_root, image {image}, {who}:\n\n");
    for (label, cells) in &lines {
        let mut line = format!("{label:<width$}", width = widths[0]);
        for (cell, width) in cells.iter().zip(&widths[1..]) {
            line.push_str(&format!("   {cell:<width$}"));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn old_root(row: &Row) -> String {
    match row.method {
        // chroot moved nothing: the host's root is still the namespace's root mount.
        Method::Chroot => "n/a: still the root mount".to_string(),
        // rootfs::pivot_root returns only once umount2 has detached it.
        Method::PivotRoot => "yes: umount2(MNT_DETACH)".to_string(),
    }
}

fn after(row: &Row) -> String {
    let root = row.escape.view.root;
    let whose = if row.escape.escaped {
        "the host's"
    } else if root == row.inside.root {
        "its own"
    } else {
        "neither"
    };
    format!("{root}, {whose}")
}

fn proof(row: &Row) -> String {
    match (&row.escape.proof, row.escape.escaped) {
        (Some((file, Ok(line))), _) => format!("{file}: {}", quote(line)),
        (Some((file, Err(why))), _) => format!("{file}: {why}"),
        (None, true) => format!("none found: no {}", PROOF_FILES.join(" or ")),
        (None, false) => "none: the climb stayed in the image".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: Method, escaped: bool) -> Row {
        let host_root = DevIno { dev: 65024, ino: 2 };
        let inside = View {
            root: DevIno {
                dev: 65024,
                ino: 77,
            },
            host_mounts: 0,
        };
        Row {
            method,
            host_root,
            host_mounts: 20,
            inside,
            escape: Escape {
                view: if escaped {
                    View {
                        root: host_root,
                        host_mounts: 20,
                    }
                } else {
                    inside
                },
                escaped,
                proof: escaped.then(|| ("/etc/hostname".to_string(), Ok("vm\u{1b}".to_string()))),
            },
        }
    }

    #[test]
    fn the_table_has_one_aligned_column_per_run() {
        let text = table(
            "busybox",
            false,
            &[row(Method::Chroot, true), row(Method::PivotRoot, false)],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "chroot vs pivot_root, image busybox, as root:");
        let column = lines[2].find("chroot").unwrap();
        let second = lines[2].find("pivot_root").unwrap();
        for line in &lines[3..] {
            assert_eq!(&line[column - 3..column], "   ", "{line}");
            assert_eq!(&line[second - 3..second], "   ", "{line}");
        }
        assert!(lines.iter().any(|l| l.starts_with("escape attempt")
            && l[column..].starts_with("ESCAPED")
            && l[second..].starts_with("CONTAINED")));
    }

    #[test]
    fn a_proof_is_quoted_so_no_control_byte_reaches_the_terminal() {
        let text = table("busybox", true, &[row(Method::Chroot, true)]);
        assert!(text.contains(r#"/etc/hostname: "vm\u{1b}""#), "{text}");
        assert!(text.contains("254:0:2, the host's"), "{text}");
        assert!(!text.contains('\u{1b}'));
    }
}
