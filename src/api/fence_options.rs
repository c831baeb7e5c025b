//! Fence agent options Pacer refuses: those that make the agent, run as root on every
//! node, execute a program or script the definition names. Checked at apply
//! (`validate`) and again by the executor before it runs a fence agent
//! (`exec::fence`), so a definition that reached etcd another way is still refused.
//!
//! The rule, from the options the installed agents declare (`fence_* -o metadata`,
//! fence-agents 4.12, and cluster-glue 1.0.12's `external/*` plugins):
//! - fence-agents read stdin names with `-` and `_` alike (`fencing.py`,
//!   `_parse_input_stdin`), so names are compared trimmed, lower case, `-` as `_`;
//! - `*_path` names a binary the agent runs (`ssh_path`, `ipmitool_path`,
//!   `sudo_path`, `telnet_path`, `snmpget_path`, `openstack-path`…) or a directory
//!   it writes (`store_path`); the one exception is `api_path`, the path part of a
//!   URL (fence_rhevm, fence_vmware_rest);
//! - `*_script` is a command whose output is the password (`passwd_script`,
//!   `password_script`, `snmp_priv_passwd_script`), run through a shell;
//! - `exec` is fence_vmware's command to execute;
//! - `debug` / `debug_file` (every agent's `--debug-file`, fencing.py) and
//!   fence_scsi's `logfile` name a file root would write: refused with a path (a
//!   value with `/`, or one not known: a secret file's) — fence_virt's `debug=1`, a
//!   level, is not;
//! - `fence_legacy` is never named directly: it is run for `external/<plugin>`
//!   agents, and its `stonith=` names the program it runs, `plugin=` the plugin (set
//!   by Pacer from the agent name), `agent` is fenced's. Every other option becomes
//!   an environment variable of `stonith` and the plugin, so only lower-case names
//!   (`[a-z][a-z0-9_-]*`: the variables that change what a program runs or loads are
//!   upper-case, and Pacemaker's own CIBs carry `stonith-timeout`) are passed — no
//!   `PATH`, `LD_PRELOAD`, `PERL5OPT` —, plus
//!   the upper-case names external/vcenter declares; the plugins' own binary options
//!   (external/ipmi's `ipmitool`, external/nut's `upsc` and `upscmd`) are refused.
//!
//! Agents then run the binaries their package put in place. Not covered: options an
//! agent hands to another program whole (`ssh_options` reaches ssh's command line).

use super::agent::FenceAgentRef;

/// The program that runs cluster-glue plugins (`external/<plugin>`).
pub const LEGACY_RUNNER: &str = "fence_legacy";

/// Upper-case option names of the shipped legacy plugins (external/vcenter's).
const LEGACY_UPPER_CASE: &[&str] = &["VI_SERVER", "VI_PORTNUMBER", "VI_PROTOCOL", "VI_SERVICEPATH", "VI_CREDSTORE", "HOSTLIST", "RESETPOWERON"];

/// Options of legacy plugins naming a program they run, or fence_legacy's own.
const LEGACY_RESERVED: &[&str] = &["stonith", "plugin", "agent", "ipmitool", "upsc", "upscmd"];

/// Whether `agent` may be configured as a fence device's agent at all.
pub fn check_agent(agent: &FenceAgentRef) -> Result<(), String> {
    if agent.as_str() == LEGACY_RUNNER {
        return Err(format!("{LEGACY_RUNNER} runs whatever its stonith option names; name the plugin instead (external/<plugin>)"));
    }
    Ok(())
}

/// Whether the option `name`, with `value` (None: not known here — a secret file's
/// content, or a name the fencer fills in), may be passed to `agent`; the reason when
/// not.
pub fn check_option(agent: &FenceAgentRef, name: &str, value: Option<&str>) -> Result<(), String> {
    let normalized = name.trim().to_ascii_lowercase().replace('-', "_");
    if normalized != "api_path" && normalized.ends_with("_path") {
        return Err("names a program or directory the agent would use as root; the agent's default is used".into());
    }
    if normalized.ends_with("_script") {
        return Err("names a command the agent would run as root; put the password in the device's parameters".into());
    }
    if normalized == "exec" {
        return Err("names a command the agent would run as root".into());
    }
    // fencing.py's `debug` (its --debug-file) and fence_scsi's `logfile` name a file
    // root would write, anywhere; a value without `/` (fence_virt's debug level `1`,
    // `true`) is at most a file in the operation's private directory.
    if matches!(normalized.as_str(), "debug" | "debug_file" | "logfile") && value.is_none_or(|value| value.contains('/')) {
        return Err("names a file the agent would write as root; the agent's log goes to the node agent's log".into());
    }
    if agent.as_str().starts_with("external/") {
        if LEGACY_RESERVED.contains(&normalized.as_str()) {
            return Err(format!("{LEGACY_RUNNER} and its plugins would run a program this names, or Pacer sets it itself"));
        }
        let lower_case = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !lower_case && !LEGACY_UPPER_CASE.contains(&name) {
            return Err(format!("{LEGACY_RUNNER} puts options into the plugin's environment: only lower-case names ([a-z][a-z0-9_-]*) are passed"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str) -> FenceAgentRef {
        name.parse().expect("agent")
    }

    #[test]
    fn options_naming_programs_are_refused_in_every_spelling() {
        let ipmi = agent("fence_ipmilan");
        for name in ["ipmitool_path", "ssh_path", "sudo_path", "ssh-path", " SSH_PATH", "openstack-path", "passwd_script", "password-script", "exec"] {
            assert!(check_option(&ipmi, name, Some("x")).is_err(), "{name} accepted");
        }
        for name in ["ip", "username", "password", "api_path", "lanplus", "ssh_options", "identity_file"] {
            assert_eq!(check_option(&ipmi, name, Some("x")), Ok(()), "{name} refused");
        }
    }

    #[test]
    fn legacy_plugins_get_only_plain_environment_names() {
        let ssh = agent("external/ssh");
        assert_eq!(check_option(&ssh, "hostlist", Some("x")), Ok(()));
        // Pacemaker's own CIBs (bug-lf-2508) give plugins a `stonith-timeout`.
        assert_eq!(check_option(&ssh, "stonith-timeout", Some("x")), Ok(()));
        assert!(check_option(&agent("fence_ipmilan"), "debug_file", Some("/etc/passwd")).is_err());
        assert!(check_option(&agent("fence_scsi"), "logfile", None).is_err());
        assert_eq!(check_option(&agent("fence_virt"), "debug", Some("1")), Ok(()));
        assert_eq!(check_option(&agent("external/vcenter"), "VI_SERVER", Some("x")), Ok(()));
        for name in ["stonith", "plugin", "PATH", "LD_PRELOAD", "ipmitool", "upscmd", "Hostlist", "-a"] {
            assert!(check_option(&ssh, name, Some("x")).is_err(), "{name} accepted");
        }
        assert!(check_agent(&agent("fence_legacy")).is_err());
        assert_eq!(check_agent(&ssh), Ok(()));
    }
}
