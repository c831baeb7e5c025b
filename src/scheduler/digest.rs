//! Pacemaker's parameter digest of a one-shot operation: whether an operation in the
//! history ran with the parameters configured now (Pacemaker 2.1's
//! `rsc_action_digest_cmp` for a non-recurring operation, `calculate_operation_digest`).
//!
//! The digest is the MD5 (hex) of the parameters written as one XML element,
//! `<parameters name="value" .../>`, names in byte order, values XML-escaped, after a
//! space and before a newline (Pacemaker's "v1" digest). Pacemaker leaves out every
//! `CRM_meta_*` value of a one-shot operation, so a start's digest is that of the
//! resource's parameters alone: checked against 1,784 recorded start digests of the
//! conformance scenarios. Pacer's own agents record no digest, so this only ever
//! compares histories imported from Pacemaker.

use std::collections::BTreeMap;

use md5::{Digest, Md5};

use crate::api::Param;
use crate::api::cluster::FenceDeviceSpec;

/// The digest of `params` as Pacemaker computes it for a one-shot operation.
pub(super) fn operation_digest(params: &BTreeMap<String, String>) -> String {
    let mut text = String::from(" <parameters");
    for (name, value) in params {
        text.push(' ');
        text.push_str(name);
        text.push_str("=\"");
        escape_into(&mut text, value);
        text.push('"');
    }
    text.push_str("/>\n");
    // Lower-case hex, two digits a byte (one digest per configured resource: no
    // formatting machinery per byte).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(32);
    for byte in Md5::digest(text.as_bytes()) {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

/// XML attribute escaping as Pacemaker writes attribute values.
fn escape_into(text: &mut String, value: &str) {
    for character in value.chars() {
        match character {
            '&' => text.push_str("&amp;"),
            '<' => text.push_str("&lt;"),
            '>' => text.push_str("&gt;"),
            '"' => text.push_str("&quot;"),
            other => text.push(other),
        }
    }
}

/// A resource's configured parameters, when Pacer knows them all: a parameter kept
/// in a secret file has a value only the node reads.
fn plain_params(params: &BTreeMap<String, Param>) -> Option<BTreeMap<String, String>> {
    let mut plain = BTreeMap::new();
    for (name, param) in params {
        plain.insert(name.clone(), param.plain()?.to_string());
    }
    Some(plain)
}

/// Pacemaker's restart digest (`calculate_restart_digest`): the digest of the
/// configured parameters the agent cannot reload, those the history names
/// (`op-force-restart`; all of them when it names none). It matching the recorded
/// one while the whole digest does not means only reloadable parameters changed: the
/// agent reloads.
pub(super) fn restart_digest(configured: &BTreeMap<String, String>, non_reloadable: Option<&[String]>) -> String {
    let Some(non_reloadable) = non_reloadable else { return operation_digest(configured) };
    let kept: BTreeMap<String, String> =
        configured.iter().filter(|(name, _)| non_reloadable.iter().any(|other| other == *name)).map(|(name, value)| (name.clone(), value.clone())).collect();
    operation_digest(&kept)
}

/// What a configured definition is compared with: its parameters' digest, and the
/// parameters themselves (for a restart digest), when Pacer knows them all.
#[derive(Clone)]
pub(super) struct Configured {
    pub digest: String,
    pub params: BTreeMap<String, String>,
}

impl Configured {
    pub(super) fn of(params: &BTreeMap<String, Param>) -> Option<Configured> {
        plain_params(params).map(|params| Configured { digest: operation_digest(&params), params })
    }
}

/// The digest of a fence device's parameters, when they are all agent parameters: the
/// fencer's own (`pcmk_host_list`, `pcmk_delay_max`, ...) are fields of a
/// `FenceDevice`, and how Pacemaker spelled them is not kept, so with any of them set
/// the digest is unknown.
pub(super) fn fence_device_configured(device: &FenceDeviceSpec) -> Option<Configured> {
    let fencer_options = !device.host_list.is_empty()
        || !device.host_map.is_empty()
        || device.host_check.is_some()
        || device.host_argument.is_some()
        || device.delay.is_some()
        || device.delay_max.is_some()
        || device.timeout.is_some()
        || device.retries.is_some();
    if fencer_options { None } else { Configured::of(&device.params) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_what_pacemaker_recorded() {
        // As recorded in the conformance scenarios (1-a-then-bm-move-b, a Dummy without
        // parameters; bug-5014-A-stop-B-started, an address).
        assert_eq!(operation_digest(&BTreeMap::new()), "f2317cad3d54cec5d7d7aa7d0bf35cf8");
        let params: BTreeMap<String, String> =
            [("ip", "192.168.122.101"), ("cidr_netmask", "32")].into_iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        assert_eq!(operation_digest(&params), "aa23ce1258f88c74b84a630cb3427eea");
        let params: BTreeMap<String, String> = [("text".to_string(), "a<b & \"c\"".to_string())].into_iter().collect();
        assert_ne!(operation_digest(&params), operation_digest(&[("text".to_string(), "a<b & c".to_string())].into_iter().collect()));
    }
}

#[cfg(test)]
mod scheduling_tests {
    use crate::scheduler::fixture::snapshot;
    use crate::scheduler::schedule;

    /// `fencing` (a fence_scsi device that unfences) started on n1 with the given
    /// agent and digest; both nodes already unfenced.
    fn fencing_on_n1(agent: &str, digest: &str) -> String {
        format!(
            "nodes:\n  n1: {{liveness: Online, attributes: {{\"#node-unfenced\": \"1\"}}}}\n  n2: {{liveness: Online, attributes: {{\"#node-unfenced\": \"1\"}}}}\n\
             history:\n  - {{resource: fencing, node: n1, agent: \"{agent}\", operations: [{{operation: start, callId: 3, rc: 0, expectedRc: 0, status: Done, digest: {digest}}}]}}\n"
        )
    }

    fn unfenced(observed: &str) -> Vec<String> {
        let device = ("FenceDevice", "fencing", r#"{agent: fence_scsi, unfencing: true}"#);
        let plan = schedule(&snapshot(&["n1", "n2"], &[device], observed));
        plan.fencing.iter().filter(|fencing| fencing.action == "on").map(|fencing| fencing.node.clone()).collect()
    }

    #[test]
    fn a_fence_device_running_with_other_parameters_or_agent_unfences_its_node_again() {
        // " <parameters/>\n": the digest of no parameters, as configured.
        let same = "f2317cad3d54cec5d7d7aa7d0bf35cf8";
        assert_eq!(unfenced(&fencing_on_n1("stonith:fence_scsi", same)), Vec::<String>::new());
        assert_eq!(unfenced(&fencing_on_n1("stonith:fence_scsi", "0123456789abcdef0123456789abcdef")), vec!["n1".to_string()]);
        assert_eq!(unfenced(&fencing_on_n1("stonith:fence_virt", same)), vec!["n1".to_string()]);
    }

    #[test]
    fn a_resource_running_with_other_parameters_is_restarted_where_it_runs() {
        let policy = ("ClusterPolicy", "cluster", "{stonithEnabled: false}");
        let web = ("Resource", "web", r#"{agent: "ocf:heartbeat:Dummy", params: {port: "80"}}"#);
        let running = |digest: &str| {
            format!(
                "history:\n  - {{resource: web, node: n1, operations: [{{operation: start, callId: 3, rc: 0, expectedRc: 0, status: Done, digest: {digest}}}]}}\n"
            )
        };
        let actions = |observed: &str| {
            let plan = schedule(&snapshot(&["n1"], &[policy, web], observed));
            plan.actions.iter().map(|action| format!("{} {} {}", action.verb, action.resource, action.detail)).collect::<Vec<_>>()
        };
        let configured = super::operation_digest(&[("port".to_string(), "80".to_string())].into_iter().collect());
        assert_eq!(actions(&running(&configured)), Vec::<String>::new());
        assert_eq!(actions(&running("0123456789abcdef0123456789abcdef")), vec!["Restart web n1".to_string()]);
    }

    #[test]
    fn a_change_of_reloadable_parameters_only_is_a_reload() {
        // Pacemaker's params-4: the history's restart digest covers the parameters the
        // agent cannot reload (`op-force-restart`); it still matching means a reload.
        let policy = ("ClusterPolicy", "cluster", "{stonithEnabled: false}");
        let web = ("Resource", "web", r#"{agent: "ocf:heartbeat:Dummy", params: {port: "80", motd: "new"}}"#);
        let running = |restart_digest: &str, params: &str| {
            format!(
                "history:\n  - {{resource: web, node: n1, operations: [{{operation: start, callId: 3, rc: 0, expectedRc: 0, status: Done, \
                 digest: 0123456789abcdef0123456789abcdef, restartDigest: {{digest: {restart_digest}{params}}}}}]}}\n"
            )
        };
        let actions = |observed: &str| {
            let plan = schedule(&snapshot(&["n1"], &[policy, web], observed));
            plan.actions.iter().map(|action| format!("{} {} {}", action.verb, action.resource, action.detail)).collect::<Vec<_>>()
        };
        let port_only = super::operation_digest(&[("port".to_string(), "80".to_string())].into_iter().collect());
        assert_eq!(actions(&running(&port_only, ", params: [port]")), vec!["Reload web n1".to_string()]);
        // The port changed too: a restart.
        assert_eq!(actions(&running("fedcba9876543210fedcba9876543210", ", params: [port]")), vec!["Restart web n1".to_string()]);
        // No list of non-reloadable parameters: the restart digest covers them all.
        let all = super::operation_digest(&[("port".to_string(), "80".to_string()), ("motd".to_string(), "new".to_string())].into_iter().collect());
        assert_eq!(actions(&running(&port_only, "")), vec!["Restart web n1".to_string()]);
        assert_eq!(actions(&running(&all, "")), vec!["Reload web n1".to_string()]);
        // Ordered after a clone that starts an instance: the reload becomes a restart
        // (Pacemaker's reload-becomes-restart).
        let base = ("Resource", "base", r#"{agent: "ocf:heartbeat:Dummy", clone: {}}"#);
        let order = ("Order", "base-then-web", "{first: base, then: web, kind: Mandatory}");
        let plan = schedule(&snapshot(&["n1"], &[policy, web, base, order], &running(&port_only, ", params: [port]")));
        let web_actions: Vec<String> =
            plan.actions.iter().filter(|action| action.resource == "web").map(|action| format!("{} {}", action.verb, action.detail)).collect();
        assert_eq!(web_actions, vec!["Restart n1".to_string()]);
    }

    /// Where Pacemaker schedules no reload although only reloadable parameters
    /// changed: an unmanaged resource (nothing), one to demote (a demotion cancels the
    /// reload); and a fence device that reloads is unfenced again, as one restarted.
    #[test]
    fn a_reload_is_left_out_where_pacemaker_leaves_it_out() {
        let policy = ("ClusterPolicy", "cluster", "{stonithEnabled: false}");
        let port_only = super::operation_digest(&[("port".to_string(), "80".to_string())].into_iter().collect());
        let running = |extra: &str| {
            format!(
                "history:\n  - {{resource: web, node: n1, operations: [{{operation: start, callId: 3, rc: 0, expectedRc: 0, status: Done, \
                 digest: 0123456789abcdef0123456789abcdef, restartDigest: {{digest: {port_only}, params: [port]}}}}{extra}]}}\n"
            )
        };
        let actions = |plan: &crate::scheduler::Plan| {
            plan.actions.iter().map(|action| format!("{} {} {}", action.verb, action.resource, action.detail)).collect::<Vec<_>>()
        };
        let managed = ("Resource", "web", r#"{agent: "ocf:heartbeat:Dummy", params: {port: "80", motd: "new"}}"#);
        assert_eq!(actions(&schedule(&snapshot(&["n1"], &[policy, managed], &running("")))), vec!["Reload web n1".to_string()]);
        let unmanaged = ("Resource", "web", r#"{agent: "ocf:heartbeat:Dummy", params: {port: "80", motd: "new"}, meta: {isManaged: false}}"#);
        assert_eq!(actions(&schedule(&snapshot(&["n1"], &[policy, unmanaged], &running("")))), Vec::<String>::new());
        let promotable = ("Resource", "web", r#"{agent: "ocf:pacemaker:Stateful", params: {port: "80", motd: "new"}, clone: {promotable: {}}}"#);
        let promoted = running(", {operation: promote, callId: 4, rc: 0, expectedRc: 0, status: Done}");
        let demoted = actions(&schedule(&snapshot(&["n1"], &[policy, promotable], &promoted)));
        assert!(demoted.iter().any(|action| action.starts_with("Demote")), "{demoted:?}");
        assert!(!demoted.iter().any(|action| action.starts_with("Reload")), "{demoted:?}");
        let empty = super::operation_digest(&std::collections::BTreeMap::new());
        let observed = format!(
            "nodes:\n  n1: {{liveness: Online, attributes: {{\"#node-unfenced\": \"1\"}}}}\n  n2: {{liveness: Online, attributes: {{\"#node-unfenced\": \"1\"}}}}\n\
             history:\n  - {{resource: fencing, node: n1, agent: \"stonith:fence_scsi\", operations: [{{operation: start, callId: 3, rc: 0, expectedRc: 0, status: Done, \
             digest: 0123456789abcdef0123456789abcdef, restartDigest: {{digest: {empty}, params: []}}}}]}}\n"
        );
        let device = ("FenceDevice", "fencing", r#"{agent: fence_scsi, unfencing: true}"#);
        let plan = schedule(&snapshot(&["n1", "n2"], &[device], &observed));
        let fencing: Vec<String> = plan.fencing.iter().map(|fencing| format!("{} {}", fencing.action, fencing.node)).collect();
        assert_eq!(fencing, vec!["on n1".to_string()]);
    }

    #[test]
    fn a_failed_start_with_other_parameters_bans_nothing() {
        let policy = ("ClusterPolicy", "cluster", "{stonithEnabled: false}");
        let web = ("Resource", "web", r#"{agent: "ocf:heartbeat:Dummy", params: {port: "80"}}"#);
        let failed_start = |digest: &str| {
            format!(
                "nodes:\n  n1: {{liveness: Online, attributes: {{\"fail-count-web#start_0\": INFINITY}}}}\n\
                 history:\n  - {{resource: web, node: n1, operations: [{{operation: start, callId: 3, rc: 1, expectedRc: 0, status: Done, digest: {digest}}}, \
                 {{operation: stop, callId: 4, rc: 0, expectedRc: 0, status: Done}}]}}\n"
            )
        };
        let placed = |observed: &str| {
            let plan = schedule(&snapshot(&["n1"], &[policy, web], observed));
            plan.resources.iter().find(|resource| resource.id == "web").map(|resource| resource.next.len())
        };
        let configured = super::operation_digest(&[("port".to_string(), "80".to_string())].into_iter().collect());
        // Failed with the parameters configured now: banned from the only node.
        assert_eq!(placed(&failed_start(&configured)), Some(0));
        // Failed with other parameters: its fail count is cleared, it starts again.
        assert_eq!(placed(&failed_start("0123456789abcdef0123456789abcdef")), Some(1));
    }

    /// A recurring monitor's recorded digest covers its own timeout too, so it never
    /// equals the resource's: its failure still counts, and only a cleared operation's
    /// fail count is skipped, not the resource's others on the node.
    #[test]
    fn a_failed_recurring_monitor_keeps_its_fail_count() {
        let policy = ("ClusterPolicy", "cluster", "{stonithEnabled: false}");
        let web = ("Resource", "web", r#"{agent: "ocf:heartbeat:Dummy", meta: {migrationThreshold: 1}}"#);
        let prefer = ("Location", "prefer", "{resource: web, node: n1, score: 100}");
        let observed = "nodes:\n  n1: {liveness: Online, attributes: {\"fail-count-web#monitor_10000\": \"1\"}}\n  n2: {liveness: Online}\n\
             history:\n  - {resource: web, node: n1, operations: [{operation: start, callId: 3, rc: 0, expectedRc: 0, status: Done}, \
             {operation: monitor, intervalMs: 10000, callId: 4, rc: 1, expectedRc: 0, status: Done, digest: 0123456789abcdef0123456789abcdef}]}\n";
        let plan = schedule(&snapshot(&["n1", "n2"], &[policy, web, prefer], observed));
        let next = plan
            .resources
            .iter()
            .find(|resource| resource.id == "web")
            .map(|resource| resource.next.iter().map(|placed| placed.node.clone()).collect::<Vec<_>>());
        assert_eq!(next, Some(vec!["n2".to_string()]), "migration-threshold 1 moves it off n1");
    }
}
