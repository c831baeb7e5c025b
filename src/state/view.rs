//! What `pacer status` shows (crm_mon's view), built from the spec, the agents'
//! reports and the decisions; pure. Its JSON form is a stable interface, documented
//! in the README.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::records::{AlertCursor, FAIL_COUNT_INFINITY, FenceRequestRecord, FenceResultRecord, NodeActivity, RequestRecord, ResourceStatus, SelfFencing};
use crate::api::resource::Role;
use crate::api::{Object, Spec};
use crate::scheduler::plan::{Plan, ResourceKind};
use crate::scheduler::snapshot::{NodeLiveness, Observed};

/// The whole picture.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusView {
    pub nodes: Vec<NodeView>,
    /// One entry per resource instance and node it runs on; an instance that runs
    /// nowhere has one entry with `node` null and role `Stopped`.
    pub resources: Vec<ResourceView>,
    /// Every failure the agents reported that is still counted.
    pub failures: Vec<FailureView>,
    /// The scheduler leader, if one holds the election.
    pub leader: Option<String>,
    /// The latest decisions, newest first.
    pub decisions: Vec<DecisionView>,
    /// Fencing in progress and the last outcome per node.
    pub fencing: Vec<FencingView>,
    /// crm_mon's "Fencing History", newest first: pending attempts, each node's newest
    /// failures and its last success of each action (`fence_history::status_history_view`;
    /// `pacer history fencing` lists every attempt kept).
    pub fencing_history: Vec<crate::state::fence_history::FenceAttemptView>,
    /// The constraints `pacer move` and `pacer ban` made, and what the cluster does
    /// with each.
    pub constraints: Vec<ConstraintView>,
    /// Cleanups and refreshes asked of node agents and not yet applied (`requests_view`).
    pub requests: Vec<RequestView>,
    /// Alerts whose last delivery failed (`alerts_view`).
    pub alerts: Vec<AlertView>,
}

/// An alert whose last delivery failed: its cursor's last failure, kept until a later
/// delivery succeeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertView {
    pub name: String,
    /// Deliveries given up on since the alert was made.
    pub failures: u64,
    /// Deliveries that succeeded since the alert was made.
    pub delivered: u64,
    /// The sequence of the event last given up on (`pacer events`).
    pub sequence: u64,
    pub reason: String,
    /// When it was given up on, seconds since the epoch.
    pub time: i64,
}

/// The alerts of the spec whose last delivery failed, by name. A cursor of an alert
/// deleted since (no such alert, or another uid) is not shown.
pub fn alerts_view(objects: &[Object], cursors: &BTreeMap<String, AlertCursor>) -> Vec<AlertView> {
    objects
        .iter()
        // A disabled alert's old failure is not news (it gets nothing now).
        .filter(|object| matches!(&object.spec, Spec::Alert(alert) if alert.enabled))
        .filter_map(|object| {
            let cursor = cursors.get(object.name().as_str())?;
            if object.metadata.uid.as_deref() != Some(cursor.alert_uid.as_str()) {
                return None;
            }
            let failure = cursor.last_failure.as_ref()?;
            Some(AlertView {
                name: object.name().to_string(),
                failures: cursor.failed,
                delivered: cursor.succeeded,
                sequence: failure.sequence,
                reason: failure.reason.clone(),
                time: failure.time_usec.div_euclid(1_000_000),
            })
        })
        .collect()
}

/// A cleanup or refresh a node's agent has not applied yet (its key still exists).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestView {
    pub node: String,
    pub id: String,
    /// `cleanup` or `refresh`.
    pub kind: &'static str,
    pub resources: Vec<String>,
    pub by: String,
    /// Seconds since the epoch.
    pub requested: i64,
}

/// The requests still waiting for their node's agent, oldest first.
pub fn requests_view(requests: &BTreeMap<(String, String), RequestRecord>) -> Vec<RequestView> {
    let mut views: Vec<RequestView> = requests
        .iter()
        .map(|((node, id), request)| RequestView {
            node: node.clone(),
            id: id.clone(),
            kind: request.kind.as_str(),
            resources: request.resources.clone(),
            by: request.by.clone(),
            requested: request.requested,
        })
        .collect();
    views.sort_by(|a, b| (a.requested, &a.node).cmp(&(b.requested, &b.node)));
    views
}

/// A constraint a command made (a Location with the `pacer.io/owner` annotation).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConstraintView {
    pub name: String,
    /// The verb that made it: `move` or `ban`.
    pub owner: String,
    pub resource: String,
    pub node: String,
    /// `Promoted` when it is about the promoted role only.
    pub role: Option<String>,
    /// `INFINITY` (prefer the node) or `-INFINITY` (never the node).
    pub score: String,
    /// Who ran the command (`user@host`).
    pub created_by: Option<String>,
    /// When it was made (RFC 3339).
    pub created: Option<String>,
    /// When it stops counting (RFC 3339), if ever.
    pub expires: Option<String>,
    /// `move --keep`: stays once the resource has moved.
    pub keep: bool,
    /// `in_force`, `expired` or `done` (both about to be deleted by the leader), or
    /// `kept` (a move done that the cluster keeps: `note` says why).
    pub state: &'static str,
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FencingView {
    pub node: String,
    /// `reboot`, `off`, or `on` (unfencing).
    pub action: String,
    /// `pending` (requested, no answer yet), `succeeded` or `failed`.
    pub state: &'static str,
    /// The node running (or that ran) the fence agents, or who confirmed.
    pub by: String,
    /// Seconds since the epoch: when requested (pending) or finished.
    pub time: i64,
    pub attempts: Vec<String>,
}

/// The fencing part of the view: per node, the request without an answer if there is
/// one, else the last result.
pub fn fencing_view(requests: &[FenceRequestRecord], results: &[FenceResultRecord]) -> Vec<FencingView> {
    let mut views = Vec::new();
    for request in requests {
        let answered = results.iter().find(|result| result.target == request.target && result.by == request.executor && result.request == request.id);
        if answered.is_none() {
            views.push(FencingView {
                node: request.target.clone(),
                action: request.action.clone(),
                state: "pending",
                by: request.executor.clone(),
                time: request.requested,
                attempts: Vec::new(),
            });
        }
    }
    for result in results {
        if views.iter().any(|view| view.node == result.target) {
            continue;
        }
        views.push(FencingView {
            node: result.target.clone(),
            action: result.action.clone(),
            state: if result.succeeded { "succeeded" } else { "failed" },
            by: result.by.clone(),
            time: result.finished,
            attempts: result.attempts.clone(),
        });
    }
    views.sort_by(|a, b| a.node.cmp(&b.node));
    views
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeView {
    pub name: String,
    /// `online`, `standby`, `maintenance`, `offline` or `unclean`.
    pub state: &'static str,
    /// `Node.spec.standby`, whatever the node's state (a node down may be in standby).
    pub standby: bool,
    /// `Node.spec.maintenance`, whatever the node's state.
    pub maintenance: bool,
    /// Operations its agent runs now, has waiting, and allows at once (as it last
    /// reported; absent before its first report and while the node is down).
    pub operations: Option<OperationsView>,
    /// The latest times its agent stopped everything for want of a lease renewal,
    /// oldest first.
    pub self_fencings: Vec<SelfFencing>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OperationsView {
    pub running: u32,
    pub queued: u32,
    pub limit: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResourceView {
    /// The instance: the primitive's name, `name:N` for a clone instance.
    pub name: String,
    /// `primitive`, `clone` or `promotable` (a group member is a primitive with its
    /// group set).
    pub kind: &'static str,
    pub group: Option<String>,
    pub node: Option<String>,
    /// `Started`, `Promoted`, `Unpromoted` or `Stopped`.
    pub role: &'static str,
    pub failed: bool,
    /// Left alone: unmanaged, blocked by a failure, or on a maintenance node.
    pub unmanaged: bool,
    /// Why it does not run, when it does not.
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailureView {
    pub resource: String,
    pub node: String,
    /// Failures per operation (`monitor_10000`), `INFINITY` for a ban.
    pub counts: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub last_failure: Option<i64>,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DecisionView {
    pub time: i64,
    pub input_revision: i64,
    pub actions: Vec<String>,
}

/// What the view shows besides the snapshot and the plan.
pub struct Surroundings<'a> {
    /// The scheduler leader, if one holds the election.
    pub leader: Option<String>,
    /// The latest decisions, newest first.
    pub decisions: Vec<DecisionView>,
    pub fencing: Vec<FencingView>,
    /// Each node agent's activity record, by node.
    pub activities: &'a BTreeMap<String, NodeActivity>,
    /// The constraints commands made (`ops::constraints::review` of the same snapshot).
    pub constraints: Vec<ConstraintView>,
}

/// Builds the view. `plan` is a decision made from the same snapshot (for the list
/// of instances and where each is believed to run).
pub fn status_view(objects: &[Object], observed: &Observed, statuses: &[ResourceStatus], plan: &Plan, around: Surroundings<'_>) -> StatusView {
    let Surroundings { leader, decisions, fencing, activities, constraints } = around;
    let mut standby = BTreeMap::new();
    for object in objects {
        if let Spec::Node(node) = &object.spec {
            standby.insert(object.name().as_str().to_string(), (node.standby, node.maintenance));
        }
    }
    let mut names: Vec<String> = standby.keys().cloned().collect();
    for name in observed.nodes.keys() {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names.sort();
    let nodes = names
        .into_iter()
        .map(|name| {
            let (is_standby, maintenance) = standby.get(&name).copied().unwrap_or_default();
            let state = match observed.nodes.get(&name).map(|node| node.liveness) {
                Some(NodeLiveness::Online) if maintenance => "maintenance",
                Some(NodeLiveness::Online) if is_standby => "standby",
                Some(NodeLiveness::Online) => "online",
                Some(NodeLiveness::Unclean) => "unclean",
                _ => "offline",
            };
            let activity = activities.get(&name);
            // The record outlives the agent (it keeps the self-fencings): the counts
            // say something only while the agent runs.
            let running = matches!(observed.nodes.get(&name).map(|node| node.liveness), Some(NodeLiveness::Online | NodeLiveness::Pending));
            let operations =
                activity.filter(|_| running).map(|activity| OperationsView { running: activity.running, queued: activity.queued, limit: activity.limit });
            let self_fencings = activity.map(|activity| activity.self_fencings.clone()).unwrap_or_default();
            NodeView { name, state, standby: is_standby, maintenance, operations, self_fencings }
        })
        .collect();
    let mut resources = Vec::new();
    for resource in &plan.resources {
        let kind = match resource.kind {
            ResourceKind::Primitive => "primitive",
            ResourceKind::Clone => "clone",
            ResourceKind::Promotable => "promotable",
            ResourceKind::FenceDevice => continue,
        };
        let entry = |node: Option<String>, role: Role| ResourceView {
            name: resource.id.clone(),
            kind,
            group: resource.group.clone(),
            node,
            role: role.as_str(),
            failed: resource.failed,
            unmanaged: resource.frozen,
            reason: resource.reason.as_ref().map(|reason| reason.text.clone()),
        };
        let running: Vec<_> = resource.current.iter().filter(|placement| placement.role != Role::Stopped).collect();
        if running.is_empty() {
            resources.push(entry(None, Role::Stopped));
        }
        for placement in running {
            resources.push(entry(Some(placement.node.clone()), placement.role));
        }
    }
    let failures = statuses
        .iter()
        .filter(|status| !status.fail_counts.is_empty())
        .map(|status| FailureView {
            resource: status.id.clone(),
            node: status.node.clone(),
            counts: status
                .fail_counts
                .iter()
                .map(|(operation, count)| (operation.clone(), if *count >= FAIL_COUNT_INFINITY { "INFINITY".to_string() } else { count.to_string() }))
                .collect(),
            last_failure: status.last_failure,
            reason: status.failure_reason.clone(),
        })
        .collect();
    StatusView { nodes, resources, failures, leader, decisions, fencing, fencing_history: Vec::new(), constraints, requests: Vec::new(), alerts: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::records::DeliveryFailure;

    #[test]
    fn alerts_show_only_a_last_failure_of_the_alert_as_it_is_now() {
        let yaml = "apiVersion: pacer.io/v1alpha1\nkind: Alert\nmetadata: {name: mail}\nspec:\n  receiver:\n    exec: {path: /bin/true}\n---\napiVersion: pacer.io/v1alpha1\nkind: Alert\nmetadata: {name: hook}\nspec:\n  receiver:\n    webhook: {url: 'https://example.com'}\n";
        let objects: Vec<Object> = crate::alerts::select::tests::parse_objects_for_tests(yaml);
        let failure = DeliveryFailure { sequence: 9, time_usec: 5_000_000, reason: "exited with 1".into() };
        let cursor = |uid: &str, last_failure: Option<DeliveryFailure>| AlertCursor {
            alert_uid: uid.into(),
            delivered: 9,
            succeeded: 4,
            failed: 2,
            last_success_usec: None,
            last_failure,
        };
        let cursors: BTreeMap<String, AlertCursor> = [
            ("mail".to_string(), cursor("uid-mail", Some(failure.clone()))),
            // Of an alert deleted and made again: not this one's.
            ("hook".to_string(), cursor("old", Some(failure.clone()))),
            ("gone".to_string(), cursor("uid-gone", Some(failure))),
        ]
        .into();
        let views = alerts_view(&objects, &cursors);
        assert_eq!(views, vec![AlertView { name: "mail".into(), failures: 2, delivered: 4, sequence: 9, reason: "exited with 1".into(), time: 5 }]);
        let healthy: BTreeMap<String, AlertCursor> = [("mail".to_string(), cursor("uid-mail", None))].into();
        assert!(alerts_view(&objects, &healthy).is_empty());
    }
}
