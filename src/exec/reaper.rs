//! Adopting what agents leave behind. An agent that starts a daemon (`nohup cmd &`,
//! as heartbeat:anything does) exits and leaves the daemon to be re-parented. Made a
//! child subreaper, the node agent inherits those daemons instead of PID 1 — so they
//! stay its descendants — and must then reap them when they die: a dead daemon left
//! a zombie still answers `kill -0`, and agents would report it running. (In a
//! container whose PID 1 does not reap, that is not hypothetical.)
//!
//! Only zombies that are not process-group leaders are reaped: every process the
//! executor starts leads its own group and is waited for by tokio, which must not
//! lose its exit status to us. A daemon that made itself a group leader (`setsid`)
//! is therefore left to the system's reaper.

use std::time::Duration;

/// Makes this process a child subreaper and reaps adopted orphans as they die, from
/// a background task, until the runtime ends. Returns whether the kernel accepted
/// the subreaper role.
pub fn adopt_orphans() -> bool {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes an integer flag and touches no memory.
    let accepted = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } == 0;
    if !accepted {
        tracing::warn!("cannot become a child subreaper; daemons started by agents are re-parented to PID 1");
        return false;
    }
    tokio::spawn(async {
        let mut child_exits = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
        loop {
            reap_orphans();
            match child_exits.as_mut() {
                Some(signal) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), signal.recv()).await;
                }
                None => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    true
}

/// Reaps every zombie child of this process that does not lead its own process group.
fn reap_orphans() {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (Some(state), Some(ppid), Some(pgrp)) = (fields.first(), fields.get(1), fields.get(2)) else { continue };
        if *state != "Z" || *ppid != me || pgrp.parse::<i32>().ok() == Some(pid) {
            continue;
        }
        let mut status = 0;
        // SAFETY: waitpid on a specific zombie child of ours, without blocking.
        unsafe {
            libc::waitpid(pid, &mut status, libc::WNOHANG);
        }
    }
}
