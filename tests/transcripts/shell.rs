//! A shell session that a doc's commands are typed into, one at a time, as
//! a reader would type them: the shell reads them from a pipe, so a command
//! that starts another shell (a container's `sh`, `unshare ... sh`) gets the
//! lines that follow, until its `exit`.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// How long one command may take before the doc is stopped.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(90);

/// Printed after every command, by whichever shell reads it: the status of
/// the command and the pid of the shell that ran it. It then sets `$?` back,
/// so that a doc's `echo $?` on the next line shows the command's status.
const SENTINEL: &str = r#"stepbox_status=$?; printf '\n\001SB %s %s\n' "$stepbox_status" "$$"; (exit "$stepbox_status")"#;

pub struct Shell {
    child: Child,
    stdin: ChildStdin,
    output: Receiver<Vec<u8>>,
    pending: Vec<u8>,
    /// The pid the outermost shell reports; another means a nested shell.
    base_pid: String,
    nested: bool,
}

/// What one command printed (stdout and stderr as one stream, in order),
/// and its exit status.
pub struct Answer {
    pub output: Vec<u8>,
    pub status: i32,
}

impl Shell {
    /// Start `bash` with `command`'s environment, user and directory.
    pub fn start(mut command: Command) -> Result<Shell, String> {
        let (reader, writer) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        let writer2 = writer.try_clone().map_err(|e| format!("dup: {e}"))?;
        let reader = std::fs::File::from(reader);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(writer2));
        let mut child = command.spawn().map_err(|e| format!("start bash: {e}"))?;
        drop(command); // our copies of the pipe's write end
        let stdin = child.stdin.take().unwrap();
        let (send, output) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = reader;
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || send.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut shell = Shell {
            child,
            stdin,
            output,
            pending: Vec::new(),
            base_pid: String::new(),
            nested: false,
        };
        let (_, pid) = shell.finish()?;
        shell.base_pid = pid;
        Ok(shell)
    }

    /// True while a shell the last command started is still reading input.
    pub fn nested(&self) -> bool {
        self.nested
    }

    /// Type `text` and wait for what it prints.
    pub fn run(&mut self, text: &str) -> Result<Answer, String> {
        self.type_line(text)?;
        let (mut answer, pid) = self.finish()?;
        self.nested = pid != self.base_pid;
        // The sentinel starts with a newline of its own.
        if answer.output.last() == Some(&b'\n') {
            answer.output.pop();
        }
        Ok(answer)
    }

    fn type_line(&mut self, text: &str) -> Result<(), String> {
        self.stdin
            .write_all(format!("{text}\n").as_bytes())
            .map_err(|e| format!("type into the shell: {e}"))?;
        // Wait until a shell has read it all, so that the sentinel is read by
        // whichever shell runs next (a shell that reads ahead, like dash and
        // busybox sh, would otherwise swallow it along with an `exit`).
        let deadline = Instant::now() + COMMAND_LIMIT;
        loop {
            let mut unread: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int: the bytes waiting in the pipe.
            unsafe { libc::ioctl(self.stdin.as_raw_fd(), libc::FIONREAD, &mut unread) };
            if unread == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("nothing read the input within {COMMAND_LIMIT:?}"));
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Send the sentinel and collect output until it comes back.
    fn finish(&mut self) -> Result<(Answer, String), String> {
        self.type_line(SENTINEL)?;
        let deadline = Instant::now() + COMMAND_LIMIT;
        loop {
            if let Some(at) = find(&self.pending, b"\n\x01SB ") {
                if let Some(end) = self.pending[at + 1..].iter().position(|b| *b == b'\n') {
                    let line =
                        String::from_utf8_lossy(&self.pending[at + 5..at + 1 + end]).to_string();
                    let mut output: Vec<u8> = self.pending.drain(..at + 2 + end).collect();
                    output.truncate(at + 1);
                    let (status, pid) = line.split_once(' ').unwrap_or((&line, ""));
                    let status = status.parse().unwrap_or(-1);
                    return Ok((Answer { output, status }, pid.to_string()));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.pending.extend(bytes),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no answer within {COMMAND_LIMIT:?}; it had printed: {}",
                        String::from_utf8_lossy(&self.pending)
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "the shell exited; it had printed: {}",
                        String::from_utf8_lossy(&self.pending)
                    ))
                }
            }
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
