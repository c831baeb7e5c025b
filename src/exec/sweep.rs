//! After a successful stop, what is left of the resource is killed. Every process an
//! agent starts inherits its environment, which carries the resource's marker
//! (`PACER_RESOURCE=<node>/<instance>` and `PACER_EXECUTOR=<work dir>`, set by
//! `environment::common`); a process that left the agent's process group (`setsid`,
//! a double fork) and was re-parented keeps it. After the stop, `/proc/*/environ` is
//! scanned for both (as Jenkins' ProcessTreeKiller finds escaped build processes):
//! each match gets SIGTERM, a grace, then SIGKILL, and is logged as a warning — a
//! clean agent leaves none. Both variables must match, so another resource's
//! processes, or another agent's on the same machine, are never touched; nor is this
//! process. A process that rewrites its own environment escapes; a cgroup per
//! resource would not, and is future work.

use std::time::{Duration, Instant};

/// The environment variable naming the resource (`<node>/<instance>`).
pub(crate) const RESOURCE_VARIABLE: &str = "PACER_RESOURCE";
/// The environment variable naming the executor (its work dir), so two agents on one
/// machine with the same node and resource names do not meet.
pub(crate) const EXECUTOR_VARIABLE: &str = "PACER_EXECUTOR";

/// One process left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Leftover {
    pub pid: i32,
    pub command: String,
}

/// The live processes (zombies excluded) whose environment holds both markers.
pub(crate) fn find(resource: &str, executor: &str) -> Vec<Leftover> {
    let me = std::process::id() as i32;
    let resource_entry = format!("{RESOURCE_VARIABLE}={resource}");
    let executor_entry = format!("{EXECUTOR_VARIABLE}={executor}");
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        if pid == me || !is_alive(pid) {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        let mut has_resource = false;
        let mut has_executor = false;
        for variable in environ.split(|byte| *byte == 0) {
            has_resource |= variable == resource_entry.as_bytes();
            has_executor |= variable == executor_entry.as_bytes();
        }
        if has_resource && has_executor {
            found.push(Leftover { pid, command: command_of(pid) });
        }
    }
    found
}

/// Kills what `find` returns: SIGTERM, up to `grace` for them to go, then SIGKILL.
/// Returns what was found (each one logged).
pub(crate) async fn kill_leftovers(resource: &str, executor: &str, grace: Duration) -> Vec<Leftover> {
    let leftovers = find(resource, executor);
    if leftovers.is_empty() {
        return leftovers;
    }
    for leftover in &leftovers {
        tracing::warn!(resource, pid = leftover.pid, command = %leftover.command, "process of a stopped resource still runs; killing it");
        signal(leftover.pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && leftovers.iter().any(|leftover| is_alive(leftover.pid)) {
        reap(&leftovers);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Only those still carrying the markers: a pid that went away during the grace
    // may have been given to another process since.
    let still = find(resource, executor);
    for leftover in leftovers.iter().filter(|leftover| still.iter().any(|again| again.pid == leftover.pid)) {
        tracing::warn!(resource, pid = leftover.pid, "process ignored SIGTERM; sending SIGKILL");
        signal(leftover.pid, libc::SIGKILL);
    }
    // SIGKILL is delivered before kill(2) returns for a process not in the kernel;
    // give the kernel a moment, then reap what we adopted.
    for _ in 0..50 {
        reap(&leftovers);
        if !leftovers.iter().any(|leftover| is_alive(leftover.pid)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    leftovers
}

fn signal(pid: i32, signal: libc::c_int) {
    if pid <= 1 {
        return;
    }
    // SAFETY: kill(2) on one positive pid; it touches no memory of ours.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Reaps the leftovers this process adopted as a child subreaper (`reaper`). Only
/// session leaders (what `setsid` made) are reaped here: the agents the executor
/// itself spawns lead a process group but never a session, and their exit status
/// belongs to tokio.
fn reap(leftovers: &[Leftover]) {
    let me = std::process::id().to_string();
    for leftover in leftovers {
        let Some(fields) = stat_fields(leftover.pid) else { continue };
        let (Some(ppid), Some(session)) = (fields.get(1), fields.get(3)) else { continue };
        if *ppid == me && session.parse::<i32>().ok() == Some(leftover.pid) {
            let mut status = 0;
            // SAFETY: waitpid on one specific child of ours, without blocking.
            unsafe {
                libc::waitpid(leftover.pid, &mut status, libc::WNOHANG);
            }
        }
    }
}

/// The fields of `/proc/<pid>/stat` after the command: state, ppid, pgrp, session…
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Whether `pid` exists and is not a zombie.
fn is_alive(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|fields| fields.first().is_some_and(|state| state != "Z" && state != "X"))
}

fn command_of(pid: i32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let text = cmdline.split(|byte| *byte == 0).filter(|arg| !arg.is_empty()).map(String::from_utf8_lossy).collect::<Vec<_>>().join(" ");
    text.chars().take(200).collect()
}
