//! What differs per agent class: the LSB action names and exit codes (mapped to OCF
//! as Pacemaker's `services__lsb2ocf` does), the metadata Pacemaker synthesizes for
//! LSB scripts and systemd units, and systemd unit names.

use super::rc;

/// The script action an OCF-style action runs, or `None` when LSB has no such action
/// (answered with OCF_ERR_UNIMPLEMENTED without running anything).
pub(crate) fn lsb_action(action: &str) -> Option<&'static str> {
    Some(match action {
        "start" => "start",
        "stop" => "stop",
        "monitor" | "status" => "status",
        "restart" => "restart",
        "reload" | "reload-agent" => "reload",
        "force-reload" => "force-reload",
        _ => return None,
    })
}

/// LSB status codes Pacemaker adds for `status` (150-199 are reserved for it).
const LSB_STATUS_NOT_INSTALLED: i32 = 150;
const LSB_STATUS_INSUFFICIENT_PRIV: i32 = 151;

/// Maps an LSB exit code to OCF. `status`: 0 running → 0; 1 (dead, pid file left),
/// 2 (dead, lock file left), 3 (not running) → 7; 4 (unknown) → 1; 150 → 5; 151 → 4;
/// anything else → 1. Other actions: LSB and OCF share 0-7; above → 1. A `stop` that
/// answers 7 ("not running") succeeded: LSB requires stopping a stopped service to
/// succeed, and some scripts say so with 7.
pub(crate) fn lsb_to_ocf(script_action: &str, code: i32) -> i32 {
    if script_action == "status" {
        return match code {
            0 => rc::OK,
            1..=3 => rc::NOT_RUNNING,
            LSB_STATUS_NOT_INSTALLED => rc::NOT_INSTALLED,
            LSB_STATUS_INSUFFICIENT_PRIV => rc::INSUFFICIENT_PRIV,
            _ => rc::ERR_GENERIC,
        };
    }
    match code {
        rc::NOT_RUNNING if script_action == "stop" => rc::OK,
        0..=7 => code,
        _ => rc::ERR_GENERIC,
    }
}

/// The systemd unit of `systemd:<name>`: `.service` is added when the name has no
/// unit suffix, as Pacemaker does.
pub(crate) fn systemd_unit(name: &str) -> String {
    const SUFFIXES: &[&str] = &[".service", ".socket", ".mount", ".timer", ".target", ".path", ".slice", ".scope", ".swap", ".device", ".automount"];
    if SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) { name.to_string() } else { format!("{name}.service") }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Pacemaker-style metadata for a script or unit that has none of its own.
pub(crate) fn synthesized_metadata(name: &str, shortdesc: &str, longdesc: &str, monitor: bool) -> String {
    let mut actions = String::new();
    for (action, timeout) in [("meta-data", "5s"), ("start", "100s"), ("stop", "100s"), ("status", "100s")] {
        actions.push_str(&format!("    <action name=\"{action}\" timeout=\"{timeout}\"/>\n"));
    }
    if monitor {
        actions.push_str("    <action name=\"monitor\" timeout=\"100s\" interval=\"60s\"/>\n");
    }
    format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">\n<resource-agent name=\"{name}\" version=\"0.1\">\n  <version>1.1</version>\n  <longdesc lang=\"en\">{long}</longdesc>\n  <shortdesc lang=\"en\">{short}</shortdesc>\n  <parameters/>\n  <actions>\n{actions}  </actions>\n</resource-agent>\n",
        name = xml_escape(name),
        long = xml_escape(longdesc),
        short = xml_escape(shortdesc),
    )
}

/// Metadata from an LSB script's `### BEGIN INIT INFO` block.
pub(crate) fn lsb_metadata(name: &str, script: &str) -> String {
    let mut short = String::new();
    let mut long = String::new();
    let mut in_block = false;
    for line in script.lines() {
        let line = line.trim_end();
        if line.starts_with("### BEGIN INIT INFO") {
            in_block = true;
        } else if line.starts_with("### END INIT INFO") {
            break;
        } else if in_block {
            if let Some(text) = line.strip_prefix("# Short-Description:") {
                short = text.trim().to_string();
            } else if let Some(text) = line.strip_prefix("# Description:") {
                long = text.trim().to_string();
            } else if let Some(text) = line.strip_prefix("#  ").or_else(|| line.strip_prefix("#\t")) {
                if !long.is_empty() {
                    long.push(' ');
                    long.push_str(text.trim());
                }
            }
        }
    }
    if short.is_empty() {
        short = format!("{name} (LSB init script)");
    }
    if long.is_empty() {
        long = short.clone();
    }
    synthesized_metadata(name, &short, &long, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsb_status_codes_map_as_pacemaker_maps_them() {
        let cases = [(0, 0), (1, 7), (2, 7), (3, 7), (4, 1), (150, 5), (151, 4), (9, 1)];
        for (lsb, ocf) in cases {
            assert_eq!(lsb_to_ocf("status", lsb), ocf, "status {lsb}");
        }
        assert_eq!(lsb_to_ocf("start", 0), 0);
        assert_eq!(lsb_to_ocf("start", 5), 5);
        assert_eq!(lsb_to_ocf("start", 42), 1);
        assert_eq!(lsb_to_ocf("stop", 7), 0);
        assert_eq!(lsb_action("monitor"), Some("status"));
        assert_eq!(lsb_action("promote"), None);
    }

    #[test]
    fn lsb_metadata_reads_the_init_info_block() {
        let script = "#!/bin/sh\n### BEGIN INIT INFO\n# Provides: w\n# Short-Description: a <witness>\n# Description: logs\n#  everything\n### END INIT INFO\n";
        let xml = lsb_metadata("w", script);
        assert!(xml.contains("<shortdesc lang=\"en\">a &lt;witness&gt;</shortdesc>"), "{xml}");
        assert!(xml.contains("<longdesc lang=\"en\">logs everything</longdesc>"), "{xml}");
    }

    #[test]
    fn systemd_units_get_a_service_suffix_when_they_have_none() {
        assert_eq!(systemd_unit("httpd"), "httpd.service");
        assert_eq!(systemd_unit("getty@tty1.service"), "getty@tty1.service");
        assert_eq!(systemd_unit("data.mount"), "data.mount");
    }
}
