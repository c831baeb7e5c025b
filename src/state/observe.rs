//! From what the agents report to the scheduler's `Observed`: node liveness from
//! heartbeats, operation histories and fail counts from statuses, run-time attributes.
//! Pure; the scheduler daemon reads the records and calls it.

use std::collections::{BTreeMap, BTreeSet};

use crate::scheduler::snapshot::{NodeLiveness, Observed, ObservedNode, ResourceHistory};

use super::records::{FAIL_COUNT_INFINITY, NodeAttributeRecord, NodeHeartbeat, ObservedRole, ResourceStatus};

/// What the agents have written, as read from etcd.
#[derive(Clone, Debug, Default)]
pub struct Reports {
    /// Live nodes (their lease key exists), by name.
    pub heartbeats: BTreeMap<String, NodeHeartbeat>,
    pub statuses: Vec<ResourceStatus>,
    /// Run-time attributes, by node then name.
    pub attributes: BTreeMap<String, BTreeMap<String, NodeAttributeRecord>>,
    /// Nodes whose last fencing succeeded (or was confirmed by a person).
    pub fenced: BTreeSet<String>,
}

/// The observed state a decision starts from:
/// - a node with a heartbeat is `Online` once it has probed everything, `Pending`
///   before (nothing is started on a node that has not said what already runs there);
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
        let possibly_running = status.role.may_be_active();
        let node = nodes.entry(status.node.clone()).or_insert_with(|| ObservedNode { liveness: NodeLiveness::Offline, shutdown: false, attributes: BTreeMap::new() });
        if possibly_running && node.liveness == NodeLiveness::Offline {
            node.liveness = NodeLiveness::Unclean;
        }
    }
    // A node fenced since its agent last ran is known to run nothing.
    for name in &reports.fenced {
        nodes.entry(name.clone()).or_insert_with(|| ObservedNode { liveness: NodeLiveness::Offline, shutdown: false, attributes: BTreeMap::new() });
    }
    for (name, attributes) in &reports.attributes {
        if let Some(node) = nodes.get_mut(name) {
            node.attributes.extend(attributes.iter().map(|(key, record)| (key.clone(), record.value.clone())));
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
    Observed { quorum, nodes, history, dc: None }
}

/// The failure counters a decision made from `reports` has seen, for
/// `node_assignments`.
pub fn failures_seen(reports: &Reports) -> super::FailuresSeen {
    reports.statuses.iter().filter(|status| status.failures > 0).map(|status| ((status.node.clone(), status.id.clone()), status.failures)).collect()
}
