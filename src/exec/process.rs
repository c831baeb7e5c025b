//! One agent process: spawned in its own process group with a clean environment,
//! stdout and stderr read concurrently into bounded buffers, ended by its exit, a
//! timeout or a cancellation. On timeout or cancellation the whole group is signalled
//! (SIGTERM, then SIGKILL after a grace period) and the agent is reaped.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// How long the pipes are still read after the agent exited. A daemon started by the
/// agent may keep them open forever; what it writes after this is not waited for.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(300);
/// How long a group killed with SIGKILL may take to be reaped before we give up
/// waiting (a process in uninterruptible sleep); tokio reaps it later.
const REAP_AFTER_KILL: Duration = Duration::from_secs(5);
/// Longest `ocf-exit-reason:` text kept, in bytes.
const EXIT_REASON_MAX: usize = 256;
/// The prefix Pacemaker's agents write an exit reason with (ocf-shellfuncs'
/// `OCF_EXIT_REASON_PREFIX`).
pub(crate) const EXIT_REASON_PREFIX: &str = "ocf-exit-reason:";

/// What to run.
pub(crate) struct Spawn<'a> {
    pub program: &'a Path,
    pub args: Vec<String>,
    /// The complete environment; nothing of ours is inherited.
    pub env: Vec<(String, String)>,
    /// Written to the agent's stdin, which is then closed (fence agents); `None`
    /// gives the agent /dev/null.
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
    pub kill_grace: Duration,
    pub output_limit: usize,
}

/// How the run ended.
#[derive(Debug)]
pub(crate) enum Ending {
    Exited(ExitStatus),
    TimedOut,
    Cancelled,
    /// The program could not be started at all.
    SpawnFailed(io::Error),
}

#[derive(Debug)]
pub(crate) struct Finished {
    pub ending: Ending,
    pub stdout: String,
    pub stderr: String,
    /// The last `ocf-exit-reason:` line of stderr, without the prefix.
    pub exit_reason: Option<String>,
    pub duration: Duration,
}

/// Runs the program to its end, its timeout, or `cancel`, whichever comes first.
pub(crate) async fn run(spawn: Spawn<'_>, cancel: impl Future<Output = ()>) -> Finished {
    let started = Instant::now();
    let mut command = Command::new(spawn.program);
    command
        .args(&spawn.args)
        .env_clear()
        .envs(spawn.env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(if spawn.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group (setpgid(0, 0) in the child, done by std without any
        // unsafe code of ours), so a timeout can end the agent and everything it forked.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            return Finished {
                ending: Ending::SpawnFailed(error),
                stdout: String::new(),
                stderr: String::new(),
                exit_reason: None,
                duration: started.elapsed(),
            };
        }
    };
    let pgid = child.id().map(|pid| pid as i32);
    // If this future is dropped (the caller gave up), the guard kills the group; tokio
    // reaps the agent itself (kill_on_drop).
    let mut guard = GroupGuard { pgid, armed: true };

    let stdout_capture = Arc::new(Mutex::new(Capture::new(spawn.output_limit, false)));
    let stderr_capture = Arc::new(Mutex::new(Capture::new(spawn.output_limit, true)));
    let stdout_task = child.stdout.take().map(|pipe| tokio::spawn(read_into(pipe, Arc::clone(&stdout_capture))));
    let stderr_task = child.stderr.take().map(|pipe| tokio::spawn(read_into(pipe, Arc::clone(&stderr_capture))));
    if let (Some(input), Some(mut pipe)) = (spawn.stdin, child.stdin.take()) {
        // A fence agent's arguments are a few lines; an agent that does not read them
        // must not block us, so the write is its own task and errors are ignored.
        tokio::spawn(async move {
            let _ = pipe.write_all(&input).await;
            let _ = pipe.shutdown().await;
        });
    }

    let ending = tokio::select! {
        status = child.wait() => match status {
            Ok(status) => Ending::Exited(status),
            Err(error) => Ending::SpawnFailed(error),
        },
        _ = tokio::time::sleep(spawn.timeout) => Ending::TimedOut,
        _ = cancel => Ending::Cancelled,
    };
    if matches!(ending, Ending::TimedOut | Ending::Cancelled) {
        if let Some(pgid) = pgid {
            signal_group(pgid, libc::SIGTERM);
            if tokio::time::timeout(spawn.kill_grace, child.wait()).await.is_err() {
                tracing::debug!(pgid, "agent ignored SIGTERM; sending SIGKILL");
            }
            // Always: members of the group may outlive its leader.
            signal_group(pgid, libc::SIGKILL);
            if tokio::time::timeout(REAP_AFTER_KILL, child.wait()).await.is_err() {
                tracing::warn!(pgid, "agent not reaped after SIGKILL");
            }
        }
    }
    guard.armed = false;

    for task in [stdout_task, stderr_task].into_iter().flatten() {
        let mut task = task;
        if tokio::time::timeout(DRAIN_AFTER_EXIT, &mut task).await.is_err() {
            task.abort();
        }
    }
    let (stdout, _) = stdout_capture.lock().expect("capture lock").finish();
    let (stderr, exit_reason) = stderr_capture.lock().expect("capture lock").finish();
    Finished { ending, stdout, stderr, exit_reason, duration: started.elapsed() }
}

/// Kills the process group when a run is abandoned half-way.
struct GroupGuard {
    pgid: Option<i32>,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let (true, Some(pgid)) = (self.armed, self.pgid) {
            signal_group(pgid, libc::SIGKILL);
        }
    }
}

/// Sends `signal` to every process of the group `pgid`. A group that is already gone
/// (ESRCH) is not an error.
fn signal_group(pgid: i32, signal: libc::c_int) {
    if pgid <= 1 {
        // kill(0 or -1, ...) would hit our own group or every process: never.
        return;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a negative
    // pid addresses the process group the agent leads (created by process_group(0)).
    let result = unsafe { libc::kill(-pgid, signal) };
    if result != 0 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pgid, signal, %error, "signal agent process group");
        }
    }
}

async fn read_into(mut pipe: impl AsyncRead + Unpin, capture: Arc<Mutex<Capture>>) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => capture.lock().expect("capture lock").push(&buffer[..n]),
        }
    }
}

/// A bounded copy of one output stream. Everything is read (so the agent never
/// blocks on a full pipe) but only the first `limit` bytes are kept.
#[derive(Debug)]
pub(crate) struct Capture {
    limit: usize,
    kept: Vec<u8>,
    total: u64,
    /// For stderr: the current line, to find `ocf-exit-reason:` lines beyond the limit.
    scan_reasons: bool,
    /// The start of the current line (an over-long line is cut, not kept whole).
    line: Vec<u8>,
    exit_reason: Option<String>,
}

impl Capture {
    pub(crate) fn new(limit: usize, scan_reasons: bool) -> Capture {
        Capture { limit, kept: Vec::new(), total: 0, scan_reasons, line: Vec::new(), exit_reason: None }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.limit.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&bytes[..room.min(bytes.len())]);
        if self.scan_reasons {
            for &byte in bytes {
                if byte == b'\n' {
                    self.end_line();
                } else if self.line.len() < EXIT_REASON_PREFIX.len() + EXIT_REASON_MAX {
                    self.line.push(byte);
                }
            }
        }
    }

    fn end_line(&mut self) {
        if let Some(reason) = self.line.strip_prefix(EXIT_REASON_PREFIX.as_bytes()) {
            let text = String::from_utf8_lossy(reason).trim().to_string();
            if !text.is_empty() {
                self.exit_reason = Some(text);
            }
        }
        self.line.clear();
    }

    /// The kept text (with a marker when some was dropped) and the exit reason.
    pub(crate) fn finish(&mut self) -> (String, Option<String>) {
        if self.scan_reasons && !self.line.is_empty() {
            self.end_line();
        }
        let mut text = String::from_utf8_lossy(&self.kept).into_owned();
        if self.total > self.kept.len() as u64 {
            text.push_str(&format!("\n[pacer: output truncated: {} of {} bytes kept]", self.kept.len(), self.total));
        }
        (text, self.exit_reason.clone())
    }
}

/// Finds `program` in the directories of a PATH-like list.
pub(crate) fn find_in_path(program: &str, path: &str) -> Option<PathBuf> {
    path.split(':').filter(|dir| !dir.is_empty()).map(|dir| Path::new(dir).join(program)).find(|candidate| is_executable(candidate))
}

/// A regular file with an execute bit.
pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_the_first_bytes_and_says_how_many_were_dropped() {
        let mut capture = Capture::new(4, false);
        capture.push(b"abcdef");
        capture.push(b"gh");
        let (text, reason) = capture.finish();
        assert_eq!(text, "abcd\n[pacer: output truncated: 4 of 8 bytes kept]");
        assert_eq!(reason, None);
    }

    #[test]
    fn the_last_exit_reason_wins_even_beyond_the_limit() {
        let mut capture = Capture::new(8, true);
        capture.push(b"ocf-exit-reason:first\nnoise noise noise\nocf-exit-re");
        capture.push(b"ason:  disk on fire \nmore");
        let (text, reason) = capture.finish();
        assert!(text.starts_with("ocf-exit"));
        assert_eq!(reason.as_deref(), Some("disk on fire"));
    }

    #[test]
    fn an_unterminated_last_line_is_read() {
        let mut capture = Capture::new(100, true);
        capture.push(b"ocf-exit-reason:no newline");
        assert_eq!(capture.finish().1.as_deref(), Some("no newline"));
    }
}
