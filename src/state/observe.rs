//! From what the agents report to the scheduler's `Observed`: node liveness from
//! heartbeats, operation histories and fail counts from statuses, run-time attributes.
//! Pure; the scheduler daemon reads the records and calls it.

use std::collections::BTreeMap;

use crate::scheduler::snapshot::{NodeLiveness, Observed, ObservedNode, ResourceHistory};

use crate::api::records::{ExecStatus, FAIL_COUNT_INFINITY, ObservedRole, OperationRecord, Reports, ResourceStatus};

/// The observed state a decision starts from:
/// - a node with a heartbeat is `Online` once it has probed everything, `Pending`
///   before (nothing is started on a node that has not said what already runs there);
///   what it probed ahead and found not running (its heartbeat's `probed_ahead`) reads
///   as those probes' histories, so a start elsewhere need not wait for the rest;
/// - a node without one (its lease expired or was given up) is `Offline` if it
///   reported nothing possibly running, `Unclean` otherwise: it must be fenced before
///   its resources run elsewhere; a node fenced since (and not back) is `Offline`;
/// - statuses become operation histories; fail counts become Pacemaker's
///   `fail-count-<id>#<op>_<interval>` and `last-failure-…` attributes.
pub fn observe(reports: &Reports, quorum: bool) -> Observed {
    let mut nodes: BTreeMap<String, ObservedNode> = BTreeMap::new();
    for (name, heartbeat) in &reports.heartbeats {
        let liveness = if heartbeat.probed { NodeLiveness::Online } else { NodeLiveness::Pending };
        nodes.insert(name.clone(), ObservedNode { liveness, shutdown: heartbeat.shutdown, attributes: BTreeMap::new() });
    }
    for status in &reports.statuses {
        let possibly_running = status.may_be_active();
        let node =
            nodes.entry(status.node.clone()).or_insert_with(|| ObservedNode { liveness: NodeLiveness::Offline, shutdown: false, attributes: BTreeMap::new() });
        if possibly_running && node.liveness == NodeLiveness::Offline {
            node.liveness = NodeLiveness::Unclean;
        }
    }
    // A node fenced since its agent last ran is known to run nothing.
    for name in &reports.fenced {
        nodes.entry(name.clone()).or_insert_with(|| ObservedNode { liveness: NodeLiveness::Offline, shutdown: false, attributes: BTreeMap::new() });
    }
    // Names starting with `#` are the cluster's (`#uname`, `#node-unfenced`…), not an
    // agent's to set, except the `#health…` ones health agents set.
    for (name, attributes) in &reports.attributes {
        if let Some(node) = nodes.get_mut(name) {
            let settable = attributes.iter().filter(|(key, _)| !key.starts_with('#') || key.starts_with("#health"));
            node.attributes.extend(settable.map(|(key, record)| (key.clone(), record.value.clone())));
        }
    }
    // A node seen before that reports nothing now is down and runs nothing it has not
    // reported (an agent writes a pending start before running it): not a node
    // never heard of, which startup fencing would fence. A new leader used to fence
    // such nodes, whose reports a fencing had cleared, as "never seen".
    for name in &reports.seen {
        nodes.entry(name.clone()).or_insert_with(|| ObservedNode { liveness: NodeLiveness::Offline, shutdown: false, attributes: BTreeMap::new() });
    }
    // Unfenced since its last fencing: the scheduler lets it run resources that
    // require unfencing.
    for name in &reports.unfenced {
        if let Some(node) = nodes.get_mut(name) {
            node.attributes.insert("#node-unfenced".into(), "1".into());
        }
    }
    // A migration's source, once the target runs the resource, holds only what its
    // cleanup stop removes: it is not a second active copy.
    let handed_over = |status: &ResourceStatus| {
        status.role == ObservedRole::Migrating
            && reports.statuses.iter().any(|other| other.id == status.id && other.node != status.node && other.role.is_active())
    };
    let mut history = Vec::new();
    for status in &reports.statuses {
        if let Some(node) = nodes.get_mut(&status.node) {
            for (operation, count) in &status.fail_counts {
                let value = if *count >= FAIL_COUNT_INFINITY { "INFINITY".to_string() } else { count.to_string() };
                node.attributes.insert(format!("fail-count-{}#{operation}", status.id), value);
                if let Some(when) = status.last_failure {
                    node.attributes.insert(format!("last-failure-{}#{operation}", status.id), when.to_string());
                }
            }
        }
        if status.history.is_empty() || handed_over(status) {
            continue;
        }
        history.push(ResourceHistory {
            resource: status.id.clone(),
            node: status.node.clone(),
            agent: Some(status.definition.agent.to_string()),
            operations: status.history.clone(),
        });
    }
    // What a joining node probed ahead and found not running (its heartbeat says;
    // no status was written): the probe's result, as a status would have given it.
    let ahead: Vec<(&String, &String)> = reports
        .heartbeats
        .iter()
        .filter(|(_, heartbeat)| !heartbeat.probed)
        .flat_map(|(name, heartbeat)| heartbeat.probed_ahead.iter().map(move |resource| (name, resource)))
        .collect();
    if !ahead.is_empty() {
        let reported: std::collections::HashSet<(&str, &str)> = history.iter().map(|entry| (entry.node.as_str(), entry.resource.as_str())).collect();
        let fresh: Vec<ResourceHistory> = ahead
            .into_iter()
            .filter(|(node, resource)| !reported.contains(&(node.as_str(), resource.as_str())))
            .map(|(node, resource)| ResourceHistory { resource: resource.clone(), node: node.clone(), agent: None, operations: vec![not_running_probe()] })
            .collect();
        history.extend(fresh);
    }
    Observed { quorum, nodes, history, dc: None }
}

/// A probe that found the resource not running.
fn not_running_probe() -> OperationRecord {
    OperationRecord {
        operation: "monitor".into(),
        interval_ms: 0,
        call_id: 0,
        rc: crate::api::ocf::NOT_RUNNING,
        expected_rc: crate::api::ocf::NOT_RUNNING,
        status: ExecStatus::Done,
        last_rc_change: None,
        migrate_source: None,
        migrate_target: None,
        digest: None,
        restart_digest: None,
    }
}

/// The failure counters a decision made from `reports` has seen, for
/// `node_assignments`.
pub fn failures_seen(reports: &Reports) -> super::FailuresSeen {
    reports.statuses.iter().filter(|status| status.failures > 0).map(|status| ((status.node.clone(), status.id.clone()), status.failures)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::records::{Definition, NodeAttributeRecord, NodeHeartbeat};

    fn heartbeat(node: &str, probed: bool) -> NodeHeartbeat {
        NodeHeartbeat { node: node.into(), pid: 1, host: "h".into(), started: 0, lease_ttl_ms: 2000, probed, shutdown: false, ..NodeHeartbeat::default() }
    }

    fn status(id: &str, node: &str, role: ObservedRole) -> ResourceStatus {
        ResourceStatus {
            id: id.into(),
            name: id.into(),
            group: None,
            clone: None,
            node: node.into(),
            role,
            definition: std::sync::Arc::new(Definition {
                agent: "ocf:heartbeat:Dummy".parse().expect("agent"),
                params: BTreeMap::new(),
                secret_files: BTreeMap::new(),
                meta: BTreeMap::new(),
                operations: vec![],
            }),
            history: vec![crate::api::records::OperationRecord {
                operation: "start".into(),
                interval_ms: 0,
                call_id: 1,
                rc: 0,
                expected_rc: 0,
                status: crate::api::records::ExecStatus::Done,
                last_rc_change: None,
                migrate_source: None,
                migrate_target: None,
                digest: None,
                restart_digest: None,
            }],
            failures: 0,
            started_after: vec![],
            fail_counts: BTreeMap::new(),
            last_failure: None,
            failure_reason: None,
            pending: None,
            notice: None,
            acks: BTreeMap::new(),
        }
    }

    fn liveness(observed: &Observed, node: &str) -> Option<NodeLiveness> {
        observed.nodes.get(node).map(|node| node.liveness)
    }

    #[test]
    fn an_agent_cannot_set_the_clusters_own_attributes() {
        let mut reports = Reports::default();
        reports.heartbeats.insert("n1".into(), heartbeat("n1", true));
        let set = |name: &str| (name.to_string(), NodeAttributeRecord { value: "1".into(), forever: false });
        reports.attributes.insert("n1".into(), [set("#node-unfenced"), set("#uname"), set("#health-cpu"), set("master-db")].into_iter().collect());
        let observed = observe(&reports, true);
        let names: Vec<&str> = observed.nodes["n1"].attributes.keys().map(String::as_str).collect();
        assert_eq!(names, ["#health-cpu", "master-db"]);
    }

    #[test]
    fn what_a_joining_node_probed_ahead_is_read_as_probes_that_found_nothing() {
        let mut reports = Reports::default();
        let ahead = |node: &str, probed: bool| NodeHeartbeat { probed_ahead: vec!["web".into(), "db".into()], ..heartbeat(node, probed) };
        reports.heartbeats.insert("joining".into(), ahead("joining", false));
        // Once probed, the list means nothing (an agent clears it then anyway).
        reports.heartbeats.insert("up".into(), ahead("up", true));
        // A status of db there says more than the heartbeat.
        reports.statuses.push(status("db", "joining", ObservedRole::Started));
        let observed = observe(&reports, true);
        let entries: Vec<String> = observed
            .history
            .iter()
            .map(|entry| {
                let operations: Vec<String> = entry.operations.iter().map(|record| format!("{} rc {}", record.operation, record.rc)).collect();
                format!("{} on {}: {}", entry.resource, entry.node, operations.join(", "))
            })
            .collect();
        assert_eq!(entries, ["db on joining: start rc 0", "web on joining: monitor rc 7"]);
    }

    #[test]
    fn liveness_follows_heartbeats_statuses_and_fencing() {
        let mut reports = Reports::default();
        reports.heartbeats.insert("up".into(), heartbeat("up", true));
        reports.heartbeats.insert("joining".into(), heartbeat("joining", false));
        // Left cleanly: everything it reported is stopped.
        reports.statuses.push(status("a", "left", ObservedRole::Stopped));
        // Lost while running something: must be fenced.
        reports.statuses.push(status("b", "lost", ObservedRole::Started));
        reports.statuses.push(status("c", "lost", ObservedRole::Stopped));
        // Lost with something it had not probed yet: may run it.
        reports.statuses.push(status("d", "unsure", ObservedRole::Unknown));
        reports.fenced.insert("fenced".into());
        // Lost in the middle of a start it had recorded as pending.
        let mut starting = status("e", "starting", ObservedRole::Stopped);
        starting.pending = Some("start".into());
        reports.statuses.push(starting);
        let observed = observe(&reports, true);
        assert_eq!(liveness(&observed, "up"), Some(NodeLiveness::Online));
        assert_eq!(liveness(&observed, "joining"), Some(NodeLiveness::Pending));
        assert_eq!(liveness(&observed, "left"), Some(NodeLiveness::Offline));
        assert_eq!(liveness(&observed, "lost"), Some(NodeLiveness::Unclean));
        assert_eq!(liveness(&observed, "unsure"), Some(NodeLiveness::Unclean));
        assert_eq!(liveness(&observed, "fenced"), Some(NodeLiveness::Offline));
        assert_eq!(liveness(&observed, "starting"), Some(NodeLiveness::Unclean));
        assert_eq!(liveness(&observed, "never"), None, "a node nobody reported is left to the scheduler (unseen)");
    }

    #[test]
    fn a_node_seen_before_is_never_unseen() {
        let mut reports = Reports::default();
        // Claimed once, fenced since (its reports cleared): down, not "never seen".
        reports.seen.insert("cleared".into());
        // Seen, and lost while running something: still unclean.
        reports.seen.insert("lost".into());
        reports.statuses.push(status("b", "lost", ObservedRole::Started));
        // Seen and back.
        reports.seen.insert("up".into());
        reports.heartbeats.insert("up".into(), heartbeat("up", true));
        let observed = observe(&reports, true);
        assert_eq!(liveness(&observed, "cleared"), Some(NodeLiveness::Offline));
        assert_eq!(liveness(&observed, "lost"), Some(NodeLiveness::Unclean));
        assert_eq!(liveness(&observed, "up"), Some(NodeLiveness::Online));
    }

    #[test]
    fn fail_counts_become_pacemaker_attributes_and_histories_carry_over() {
        let mut reports = Reports::default();
        reports.heartbeats.insert("n1".into(), heartbeat("n1", true));
        let mut web = status("web", "n1", ObservedRole::Failed);
        web.fail_counts.insert("monitor_10000".into(), 2);
        web.fail_counts.insert("start_0".into(), FAIL_COUNT_INFINITY);
        web.last_failure = Some(1_700_000_000);
        reports.statuses.push(web);
        let observed = observe(&reports, true);
        let attributes = &observed.nodes["n1"].attributes;
        assert_eq!(attributes.get("fail-count-web#monitor_10000").map(String::as_str), Some("2"));
        assert_eq!(attributes.get("fail-count-web#start_0").map(String::as_str), Some("INFINITY"));
        assert_eq!(attributes.get("last-failure-web#start_0").map(String::as_str), Some("1700000000"));
        assert_eq!(observed.history.len(), 1);
        assert_eq!(observed.history[0].agent.as_deref(), Some("ocf:heartbeat:Dummy"));
    }

    #[test]
    fn a_migration_source_that_handed_over_is_not_a_second_copy() {
        let mut reports = Reports::default();
        reports.heartbeats.insert("n1".into(), heartbeat("n1", true));
        reports.heartbeats.insert("n2".into(), heartbeat("n2", true));
        reports.statuses.push(status("vm", "n1", ObservedRole::Migrating));
        reports.statuses.push(status("vm", "n2", ObservedRole::Started));
        let observed = observe(&reports, true);
        let nodes: Vec<&str> = observed.history.iter().map(|history| history.node.as_str()).collect();
        assert_eq!(nodes, ["n2"]);
        // Before the target runs it, the source still counts.
        reports.statuses[1].role = ObservedRole::Stopped;
        let observed = observe(&reports, true);
        assert_eq!(observed.history.len(), 2);
    }
}
