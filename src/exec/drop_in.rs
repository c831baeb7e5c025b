//! The runtime drop-in that orders a systemd-class resource's unit before the agent's
//! own unit, as Pacemaker's `50-pacemaker.conf` orders it before `pacemaker.service`:
//! at shutdown systemd stops units in the reverse of their start order, so without
//! it a resource's unit and the agent would be stopped at once, and the agent would
//! see its resource fail (or stop it twice) instead of stopping it in its order.
//!
//! Written under the runtime unit directory (`/run/systemd/system`, volatile: gone at
//! reboot, when nothing runs) before a start; removed after a successful stop. The
//! caller runs `systemctl daemon-reload` after either. `Restart=no` for services, as
//! Pacemaker sets it: the cluster, not systemd, restarts what fails.

use std::io;
use std::path::{Path, PathBuf};

/// The drop-in's file name: after a package's own drop-ins (`10-…`), before an
/// administrator's late ones (`90-…`).
const FILE_NAME: &str = "50-pacer.conf";

/// Where `unit`'s drop-in lives under `run_dir`.
pub(crate) fn path(run_dir: &Path, unit: &str) -> PathBuf {
    run_dir.join(format!("{unit}.d")).join(FILE_NAME)
}

/// The drop-in's text: `unit` ordered before `agent_unit`.
pub(crate) fn render(unit: &str, agent_unit: &str) -> String {
    let mut text = format!(
        "# Written by pacer agent while the cluster runs {unit}; removed when it stops.\n\
         # Ordered before the agent, so that at shutdown the agent stops it first.\n\
         [Unit]\nDescription=Cluster controlled {unit}\nBefore={agent_unit}\n"
    );
    if unit.ends_with(".service") {
        text.push_str("\n[Service]\nRestart=no\n");
    }
    text
}

/// Writes `unit`'s drop-in (whole or not at all: a temporary file renamed into place).
/// Unchanged when it already says the same.
pub(crate) fn write(run_dir: &Path, unit: &str, agent_unit: &str) -> io::Result<bool> {
    let file = path(run_dir, unit);
    let text = render(unit, agent_unit);
    if std::fs::read_to_string(&file).is_ok_and(|existing| existing == text) {
        return Ok(false);
    }
    let dir = file.parent().unwrap_or(run_dir);
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(".{FILE_NAME}.{}", std::process::id()));
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, &file)?;
    Ok(true)
}

/// Removes `unit`'s drop-in, and its directory when nothing else is in it. `false`
/// when there was none (no reload needed).
pub(crate) fn remove(run_dir: &Path, unit: &str) -> io::Result<bool> {
    let file = path(run_dir, unit);
    match std::fs::remove_file(&file) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    }
    if let Some(dir) = file.parent() {
        // Another drop-in (the administrator's) keeps the directory.
        let _ = std::fs::remove_dir(dir);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_ordered_before_the_agent_and_not_restarted_by_systemd() {
        let text = render("web.service", "pacer-agent.service");
        assert!(text.contains("[Unit]\nDescription=Cluster controlled web.service\nBefore=pacer-agent.service\n"), "{text}");
        assert!(text.ends_with("\n[Service]\nRestart=no\n"), "{text}");
        // Other unit types have no [Service] section (systemd would warn about it).
        let mount = render("data.mount", "pacer-agent.service");
        assert!(mount.contains("Before=pacer-agent.service") && !mount.contains("[Service]"), "{mount}");
    }

    #[test]
    fn written_then_removed_leaving_other_drop_ins() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "web.service", "pacer-agent.service").expect("write");
        let file = dir.path().join("web.service.d/50-pacer.conf");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), render("web.service", "pacer-agent.service"));
        write(dir.path(), "web.service", "pacer-agent.service").expect("write again");
        assert_eq!(std::fs::read_dir(file.parent().expect("dir")).expect("list").count(), 1, "no temporary file left");
        assert!(remove(dir.path(), "web.service").expect("remove"));
        assert!(!dir.path().join("web.service.d").exists(), "the empty directory goes");
        assert!(!remove(dir.path(), "web.service").expect("remove again"), "nothing to remove");

        write(dir.path(), "db.service", "pacer-agent.service").expect("write");
        std::fs::write(dir.path().join("db.service.d/90-admin.conf"), "[Service]\nNice=5\n").expect("admin's drop-in");
        assert!(remove(dir.path(), "db.service").expect("remove"));
        assert!(dir.path().join("db.service.d/90-admin.conf").exists(), "the administrator's drop-in stays");
    }
}
