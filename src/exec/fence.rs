//! fence-agents' stdin protocol: one `key=value` line per argument — `action=`,
//! `port=` (the plug), `nodename=` (the target), then the device's parameters — and
//! the meaning of the exit code per action.

use super::FenceRequest;

/// Renders the stdin of a fence agent. Pacemaker-only parameters (`pcmk_*`) are not
/// passed, as Pacemaker does not pass them. `plugin` names a cluster-glue plugin for
/// `fence_legacy`. Fails on a parameter a line cannot carry.
pub(crate) fn render_stdin(request: &FenceRequest, plugin: Option<&str>) -> Result<String, String> {
    let mut text = String::new();
    let mut line = |key: &str, value: &str| -> Result<(), String> {
        if key.is_empty() || key.contains(['=', '\n', '\0']) || value.contains(['\n', '\0']) {
            return Err(format!("fence parameter {key:?} cannot be passed on one stdin line"));
        }
        text.push_str(key);
        text.push('=');
        text.push_str(value);
        text.push('\n');
        Ok(())
    };
    if let Some(plugin) = plugin {
        line("plugin", plugin)?;
    }
    line("action", &request.action)?;
    // Pacemaker's default host argument is `port` (fence-agents read `plug` too, as
    // the same option); a device that sets either itself keeps its own.
    let has_plug = request.params.contains_key("port") || request.params.contains_key("plug");
    if let (Some(plug), false) = (request.plug.as_deref().or(request.target.as_deref()), has_plug) {
        line("port", plug)?;
    }
    if let Some(target) = &request.target {
        line("nodename", target)?;
    }
    for (key, value) in &request.params {
        if key.starts_with("pcmk_") || key == "action" {
            continue;
        }
        line(key, value)?;
    }
    Ok(text)
}

/// Whether `rc` is a success of `action`: 0 for every action, and for `status` also 2
/// (fence-agents' "the target is off").
pub(crate) fn is_success(action: &str, rc: i32) -> bool {
    rc == 0 || (action == "status" && rc == 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    #[test]
    fn stdin_carries_action_plug_target_and_parameters() {
        let request = FenceRequest {
            device: "fd".into(),
            agent: "fence_dummy".parse().expect("agent"),
            action: "off".into(),
            target: Some("node-b".into()),
            plug: Some("vm-b".into()),
            params: BTreeMap::from([("type".to_string(), "file".to_string()), ("pcmk_host_list".to_string(), "node-b".to_string())]),
            secret_files: BTreeMap::new(),
            timeout: Duration::from_secs(5),
        };
        assert_eq!(render_stdin(&request, None).expect("stdin"), "action=off\nport=vm-b\nnodename=node-b\ntype=file\n");
        assert_eq!(render_stdin(&request, Some("external/ssh")).expect("stdin").lines().next(), Some("plugin=external/ssh"));
        let mut bad = request.clone();
        bad.params.insert("x".into(), "a\nb".into());
        assert!(render_stdin(&bad, None).is_err());
    }

    #[test]
    fn status_off_is_an_answer_not_a_failure() {
        assert!(is_success("status", 2));
        assert!(!is_success("off", 2));
        assert!(is_success("monitor", 0));
    }
}
