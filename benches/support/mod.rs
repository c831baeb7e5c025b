//! Shared by the benchmarks that run a whole cluster (`decision`, `load`, `cluster`):
//! `pacer up` started and stopped by PID, the `pacer` CLI with a time limit, and what
//! reading their figures takes (percentiles, log lines' `key=value` fields).

// Each benchmark includes this module and uses a different part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const PREFIX: &str = "/pacer";

/// A child process, ended by PID when dropped (SIGTERM, then SIGKILL after `grace`).
pub struct Proc {
    child: Child,
    grace: Duration,
}

impl Proc {
    pub fn new(child: Child) -> Proc {
        Proc { child, grace: Duration::from_secs(60) }
    }

    pub fn with_grace(child: Child, grace: Duration) -> Proc {
        Proc { child, grace }
    }

    /// Ends the process now (nothing happens on a second call).
    pub fn stop(&mut self) {
        pacer::local::child::terminate(&mut self.child, self.grace);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A cluster from `pacer up --nodes 3` in a temporary state dir (logs in
/// `<state-dir>/logs/<component>.log`, PIDs in `<state-dir>/pids/<component>`).
pub struct Up {
    pub process: Proc,
    pub dir: tempfile::TempDir,
    pub state_dir: PathBuf,
    pub endpoint: String,
}

/// The components `pacer up --nodes 3` starts besides etcd.
pub const COMPONENTS: [&str; 4] = ["scheduler", "n1", "n2", "n3"];

/// Starts `pacer up --nodes 3 --lease-ttl <ttl>` and waits (30 s at most) until every
/// component has written its PID. `grace`: how long `pacer up` may take to stop
/// everything on SIGTERM before it is killed.
pub fn up(ttl: u64, grace: Duration) -> Result<Up, String> {
    up_with(&["--nodes", "3", "--lease-ttl", &ttl.to_string()], &COMPONENTS, grace)
}

/// Starts `pacer up` with `args` and waits (30 s at most) until each of `components`
/// has written its PID.
pub fn up_with(args: &[&str], components: &[&str], grace: Duration) -> Result<Up, String> {
    let dir = tempfile::tempdir().map_err(|error| format!("tempdir: {error}"))?;
    let state_dir = dir.path().join("up");
    let log = std::fs::File::create(dir.path().join("up.log")).map_err(|error| format!("up.log: {error}"))?;
    let stderr = log.try_clone().map_err(|error| format!("up.log: {error}"))?;
    let child = Command::new(env!("CARGO_BIN_EXE_pacer"))
        .arg("up")
        .args(args)
        .arg("--state-dir")
        .arg(&state_dir)
        .arg("--agents-dir")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("agents"))
        .env("PACER_PREFIX", PREFIX)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .spawn()
        .map_err(|error| format!("pacer up: {error}"))?;
    let mut up = Up { process: Proc::with_grace(child, grace), dir, state_dir, endpoint: String::new() };
    let begun = Instant::now();
    while !components.iter().all(|name| up.state_dir.join("pids").join(name).exists()) {
        if begun.elapsed() > Duration::from_secs(30) {
            return Err(format!("pacer up did not start within 30 s: {}", std::fs::read_to_string(up.dir.path().join("up.log")).unwrap_or_default()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    up.endpoint = std::fs::read_to_string(up.state_dir.join("endpoint")).map_err(|error| format!("endpoint: {error}"))?.trim().to_string();
    Ok(up)
}

impl Up {
    /// The PID `pacer up` wrote for a component (`scheduler`, `n1`, ..., `etcd`).
    pub fn pid(&self, component: &str) -> Option<i32> {
        std::fs::read_to_string(self.state_dir.join("pids").join(component)).ok()?.trim().parse().ok()
    }

    pub fn log(&self, component: &str) -> PathBuf {
        self.state_dir.join("logs").join(format!("{component}.log"))
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        // The components were told to go by `pacer up` (or by their parent-death
        // signal if it had to be killed); one that is still there after 10 s is killed
        // by PID before its state dir goes.
        self.process.stop();
        let strays: Vec<i32> = ["n1", "n2", "n3", "scheduler", "hollow", "etcd"].iter().filter_map(|name| self.pid(name)).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while strays.iter().any(|pid| ours(*pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        for pid in strays.into_iter().filter(|pid| ours(*pid)) {
            // SAFETY: SIGKILL to a component of the cluster this benchmark started
            // (its command line names pacer or etcd).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Whether `pid` still runs a `pacer` or `etcd` command (rather than a reused PID).
fn ours(pid: i32) -> bool {
    let Ok(command) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let command = String::from_utf8_lossy(&command);
    (command.contains("pacer") || command.contains("etcd")) && process_state(pid).is_some_and(|state| state != 'Z')
}

fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.get(stat.rfind(')')? + 1..)?.split_whitespace().next()?.chars().next()
}

/// What a `pacer` command printed, or that it did not end in time.
pub struct Outcome {
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|status| status.success())
    }

    /// Why it failed, in a line.
    pub fn failure(&self) -> String {
        match self.status {
            None => "did not end in time (killed)".to_string(),
            Some(status) => format!("{status}: {}", String::from_utf8_lossy(&self.stderr).trim()),
        }
    }
}

/// Runs the `pacer` binary against `endpoint`, feeding `stdin`; killed after `limit`.
pub fn pacer(endpoint: &str, args: &[&str], stdin: Option<&str>, limit: Duration) -> Outcome {
    let mut child = match Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(args)
        .env("PACER_ETCD", endpoint)
        .env("PACER_PREFIX", PREFIX)
        .env_remove("PACER_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => return Outcome { status: None, stdout: Vec::new(), stderr: error.to_string().into_bytes() },
    };
    // Stdin written and both outputs read on threads of their own, so a large input
    // or output cannot block the wait below.
    let input = child.stdin.take().map(|mut pipe| {
        let text = stdin.unwrap_or_default().to_string();
        std::thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        })
    });
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = reader(child.stdout.take().map(|pipe| Box::new(pipe) as Box<dyn Read + Send>));
    let stderr = reader(child.stderr.take().map(|pipe| Box::new(pipe) as Box<dyn Read + Send>));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    if let Some(input) = input {
        let _ = input.join();
    }
    Outcome { status, stdout: stdout.join().unwrap_or_default(), stderr: stderr.join().unwrap_or_default() }
}

/// `pacer status -o json` (`Null` when it fails or takes longer than `limit`).
pub fn status(endpoint: &str, limit: Duration) -> Value {
    let output = pacer(endpoint, &["status", "-o", "json"], None, limit);
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

/// `count` Dummy resources `r0`.. monitored every `monitor`, as one stream of manifests.
pub fn dummies(count: usize, monitor: &str) -> String {
    let mut manifests = String::new();
    for index in 0..count {
        manifests.push_str(&format!(
            "---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: r{index}}}\nspec:\n  agent: ocf:heartbeat:Dummy\n  operations: [{{name: monitor, interval: {monitor}}}]\n"
        ));
    }
    manifests
}

/// The value at `fraction` (0.0–1.0) of sorted samples; NaN when there are none.
pub fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The `key=value` fields of a log line.
pub fn fields(line: &str) -> BTreeMap<String, String> {
    pacer::local::logs::strip_ansi(line)
        .split_whitespace()
        .filter_map(|field| field.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// A log's lines from byte `offset` on, escape sequences stripped (empty when it
/// cannot be read).
pub fn log_lines(log: &Path, offset: usize) -> Vec<String> {
    let bytes = std::fs::read(log).unwrap_or_default();
    String::from_utf8_lossy(bytes.get(offset..).unwrap_or_default()).lines().map(pacer::local::logs::strip_ansi).collect()
}

/// The fields of a log's lines containing `marker`, from byte `offset` on.
pub fn marked_fields(log: &Path, offset: usize, marker: &str) -> Vec<BTreeMap<String, String>> {
    log_lines(log, offset).iter().filter(|line| line.contains(marker)).map(|line| fields(line)).collect()
}
