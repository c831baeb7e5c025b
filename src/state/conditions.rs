//! The live `status` of an object as `pacer get` shows it: where a resource runs, in
//! which role, with what failures, and Kubernetes-style conditions; whether a node is
//! up. Computed from the one snapshot's view and the decision made from it, never
//! stored (a second copy would drift). Pure.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::api::names::split_instance;
use crate::api::records::ResourceStatus;
use crate::api::{Object, Spec};
use crate::scheduler::plan::{Action, Plan};

use super::view::{FailureView, ResourceView, StatusView};

/// One condition, as Kubernetes writes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// One CamelCase word for programs.
    pub reason: String,
    /// A sentence for people.
    pub message: String,
    /// When the observed state this condition reads last changed (RFC 3339), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The generation of the object this condition was computed against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    fn new(kind: &'static str, status: &'static str, reason: &str, message: String, time: Option<String>, generation: Option<i64>) -> Condition {
        Condition { kind, status, reason: reason.to_string(), message, last_transition_time: time, observed_generation: generation }
    }
}

/// The live state of a Resource, Group or FenceDevice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceLive {
    /// Nodes it runs on (any role but Stopped), sorted.
    pub nodes: Vec<String>,
    /// `Started`, `Promoted`, `Unpromoted`, `Stopped`, or several joined by `/` (a
    /// clone whose instances differ).
    pub role: String,
    /// Failures still counted, summed over its instances and nodes.
    pub failures: u32,
    pub conditions: Vec<Condition>,
}

/// The live state of a Node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLive {
    /// `online`, `standby`, `maintenance`, `offline` or `unclean` (as `pacer status`).
    pub state: String,
    /// Resource instances running there.
    pub resources: usize,
    pub conditions: Vec<Condition>,
}

fn rfc3339(seconds: i64) -> Option<String> {
    let seconds = u64::try_from(seconds).ok()?;
    Some(humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds)).to_string())
}

/// The Resource, Group or FenceDevice named `name` (the objects a resource name
/// means to every verb), with its primitives.
pub fn resource_named<'a>(objects: &'a [Object], name: &str) -> Option<(&'a Object, Vec<String>)> {
    let object =
        objects.iter().find(|object| object.name().as_str() == name && matches!(object.spec, Spec::Resource(_) | Spec::Group(_) | Spec::FenceDevice(_)))?;
    Some((object, primitives(object)))
}

/// The primitives an object stands for: itself, or a group's members.
pub fn primitives(object: &Object) -> Vec<String> {
    match &object.spec {
        Spec::Group(group) => group.members.iter().map(ToString::to_string).collect(),
        _ => vec![object.name().to_string()],
    }
}

/// The view, the plan's actions and the statuses by primitive, built once so that the
/// live state of every object is linear in their sizes, not their product.
pub struct ByPrimitive<'a> {
    entries: HashMap<&'a str, Vec<&'a ResourceView>>,
    failures: HashMap<&'a str, Vec<&'a FailureView>>,
    statuses: HashMap<&'a str, Vec<&'a ResourceStatus>>,
    actions: HashMap<&'a str, Vec<&'a Action>>,
}

impl<'a> ByPrimitive<'a> {
    /// `statuses` are the agents' reports the view was built from (for the times of
    /// the last changes); `plan` the decision made from the same snapshot.
    pub fn new(view: &'a StatusView, plan: &'a Plan, statuses: &'a [ResourceStatus]) -> ByPrimitive<'a> {
        let mut index = ByPrimitive { entries: HashMap::new(), failures: HashMap::new(), statuses: HashMap::new(), actions: HashMap::new() };
        for entry in &view.resources {
            index.entries.entry(split_instance(&entry.name).0).or_default().push(entry);
        }
        for failure in &view.failures {
            index.failures.entry(split_instance(&failure.resource).0).or_default().push(failure);
        }
        for status in statuses {
            index.statuses.entry(status.name.as_str()).or_default().push(status);
        }
        for action in plan.live_actions() {
            index.actions.entry(split_instance(&action.resource).0).or_default().push(action);
        }
        index
    }

    fn of<T: Copy>(map: &HashMap<&'a str, Vec<T>>, members: &[String]) -> Vec<T> {
        members.iter().flat_map(|member| map.get(member.as_str()).into_iter().flatten().copied()).collect()
    }
}

/// The live state of a Resource or Group; `None` for other kinds.
pub fn resource_live(object: &Object, index: &ByPrimitive<'_>) -> Option<ResourceLive> {
    // A fence device runs on demand (its state is the fencing in `pacer status`).
    if !matches!(object.spec, Spec::Resource(_) | Spec::Group(_)) {
        return None;
    }
    let generation = object.metadata.generation;
    let members = primitives(object);
    let entries: Vec<&ResourceView> = ByPrimitive::of(&index.entries, &members);
    let failures: Vec<&FailureView> = ByPrimitive::of(&index.failures, &members);
    let own_statuses: Vec<&ResourceStatus> = ByPrimitive::of(&index.statuses, &members);

    let mut nodes: Vec<String> = entries.iter().filter_map(|entry| entry.node.clone()).collect();
    nodes.sort();
    nodes.dedup();
    let mut roles: Vec<&str> = entries.iter().filter(|entry| entry.node.is_some()).map(|entry| entry.role).collect();
    roles.sort();
    roles.dedup();
    let role = if roles.is_empty() { "Stopped".to_string() } else { roles.join("/") };
    let failure_count: u32 = own_statuses.iter().flat_map(|status| status.fail_counts.values()).fold(0u32, |sum, count| sum.saturating_add(*count));

    // The last one-shot operation's result change: when it last started or stopped.
    let last_change = own_statuses
        .iter()
        .flat_map(|status| status.history.iter())
        .filter(|record| record.interval_ms == 0)
        .filter_map(|record| record.last_rc_change)
        .max()
        .and_then(rfc3339);
    let condition = |kind, status, reason: &str, message, time| Condition::new(kind, status, reason, message, time, generation);

    let mut conditions = Vec::new();
    let stopped_reason = entries.iter().find_map(|entry| entry.reason.clone());
    conditions.push(if nodes.is_empty() {
        condition("Available", "False", "Stopped", stopped_reason.unwrap_or_else(|| "not running".to_string()), last_change.clone())
    } else {
        let placements: Vec<String> =
            entries.iter().filter_map(|entry| entry.node.as_ref().map(|node| format!("{} {} on {node}", entry.name, entry.role))).collect();
        condition("Available", "True", "Running", placements.join(", "), last_change.clone())
    });
    let last_failure = failures.iter().filter_map(|failure| failure.last_failure).max().and_then(rfc3339);
    conditions.push(if failures.is_empty() {
        condition("Failed", "False", "NoFailures", "no failures counted".to_string(), None)
    } else {
        let described: Vec<String> = failures
            .iter()
            .map(|failure| {
                let counts: Vec<String> = failure.counts.iter().map(|(operation, count)| format!("{operation} {count}")).collect();
                let reason = failure.reason.as_deref().map(|reason| format!(": {reason}")).unwrap_or_default();
                format!("{} on {} ({}){reason}", failure.resource, failure.node, counts.join(", "))
            })
            .collect();
        condition("Failed", "True", "FailCount", described.join("; "), last_failure)
    });
    let unmanaged = entries.iter().any(|entry| entry.unmanaged);
    conditions.push(if unmanaged {
        condition("Managed", "False", "LeftAlone", "unmanaged, blocked by a failure, or on a maintenance node: the cluster does not touch it".to_string(), None)
    } else {
        condition("Managed", "True", "Managed", "the cluster starts, stops and recovers it".to_string(), None)
    });
    let pending: Vec<String> = ByPrimitive::of(&index.actions, &members)
        .into_iter()
        .map(|action| format!("{} {} {}", action.verb, action.resource, action.detail).trim().to_string())
        .collect();
    conditions.push(if pending.is_empty() {
        condition("Settled", "True", "AsDecided", "runs as the scheduler decides".to_string(), None)
    } else {
        condition("Settled", "False", "ActionsPending", pending.join("; "), None)
    });
    Some(ResourceLive { nodes, role, failures: failure_count, conditions })
}

/// The live state of a Node object (or of a node only seen, by name); `None` when the
/// view does not know the node.
pub fn node_live(name: &str, generation: Option<i64>, view: &StatusView, started: &BTreeMap<String, i64>) -> Option<NodeLive> {
    let node = view.nodes.iter().find(|node| node.name == name)?;
    let resources = view.resources.iter().filter(|entry| entry.node.as_deref() == Some(name)).count();
    let since = started.get(name).copied().and_then(rfc3339);
    let condition = |kind, status, reason: &str, message, time| Condition::new(kind, status, reason, message, time, generation);
    let up = matches!(node.state, "online" | "standby" | "maintenance");
    let mut conditions = vec![match node.state {
        "unclean" => condition("Ready", "False", "Unclean", "lost while it may run resources: it is fenced before they are recovered".to_string(), None),
        "offline" => condition("Ready", "False", "Offline", "no agent holds its lease".to_string(), None),
        _ => condition("Ready", "True", "AgentOnline", "its agent holds its lease and has probed every resource".to_string(), since.clone()),
    }];
    conditions.push(match node.state {
        "standby" => condition("Schedulable", "False", "Standby", "in standby: runs no resources".to_string(), None),
        _ if !up => condition("Schedulable", "False", "NotReady", "not online".to_string(), None),
        _ => condition("Schedulable", "True", "Schedulable", "may run resources".to_string(), None),
    });
    if node.state == "maintenance" {
        conditions.push(condition("Maintenance", "True", "Maintenance", "its resources are left alone".to_string(), None));
    }
    if let Some(fencing) = view.fencing.iter().find(|fencing| fencing.node == name) {
        let status = if fencing.state == "pending" { "True" } else { "False" };
        let reason = match fencing.state {
            "pending" => "FencingPending",
            "succeeded" => "FencingSucceeded",
            _ => "FencingFailed",
        };
        let message = format!("{} by {} ({})", fencing.action, fencing.by, fencing.state);
        conditions.push(condition("Fencing", status, reason, message, rfc3339(fencing.time)));
    }
    Some(NodeLive { state: node.state.to_string(), resources, conditions })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::manifest::{Source, load};
    use crate::state::view::{FencingView, NodeView};

    fn object(text: &str) -> Object {
        let loaded = load(&[Source { name: "test.yaml".into(), text: text.into() }]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        loaded.manifests.into_iter().next().map(|manifest| manifest.object).expect("one object")
    }

    fn entry(name: &str, node: Option<&str>, role: &'static str) -> ResourceView {
        ResourceView {
            name: name.into(),
            kind: "primitive",
            group: None,
            node: node.map(Into::into),
            role,
            failed: false,
            unmanaged: false,
            reason: (node.is_none()).then(|| "no node can run it".to_string()),
        }
    }

    fn view(resources: Vec<ResourceView>, failures: Vec<FailureView>) -> StatusView {
        StatusView {
            nodes: vec![
                NodeView { name: "n1".into(), state: "online", standby: false, maintenance: false, operations: None, self_fencings: vec![] },
                NodeView { name: "n2".into(), state: "standby", standby: true, maintenance: false, operations: None, self_fencings: vec![] },
                NodeView { name: "n3".into(), state: "unclean", standby: false, maintenance: false, operations: None, self_fencings: vec![] },
            ],
            resources,
            failures,
            leader: None,
            decisions: vec![],
            fencing: vec![FencingView { node: "n3".into(), action: "reboot".into(), state: "pending", by: "n1".into(), time: 0, attempts: vec![] }],
            fencing_history: vec![],
            constraints: vec![],
            requests: vec![],
            alerts: vec![],
        }
    }

    fn empty_plan() -> Plan {
        Plan { nodes: vec![], resources: vec![], fencing: vec![], actions: vec![] }
    }

    const DUMMY: &str = "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: web}\nspec: {agent: 'ocf:pacemaker:Dummy'}\n";

    fn find<'a>(conditions: &'a [Condition], kind: &str) -> &'a Condition {
        conditions.iter().find(|condition| condition.kind == kind).expect("condition present")
    }

    #[test]
    fn a_running_resource_is_available_and_its_failures_are_named() {
        let failure = FailureView {
            resource: "web".into(),
            node: "n2".into(),
            counts: [("monitor_10000".to_string(), "3".to_string())].into(),
            last_failure: Some(60),
            reason: Some("not running".into()),
        };
        let view = view(vec![entry("web", Some("n1"), "Started"), entry("db", Some("n2"), "Started")], vec![failure]);
        let plan = empty_plan();
        let live = resource_live(&object(DUMMY), &ByPrimitive::new(&view, &plan, &[])).expect("a resource has a live state");
        assert_eq!(live.nodes, vec!["n1".to_string()]);
        assert_eq!(live.role, "Started");
        assert_eq!(find(&live.conditions, "Available").status, "True");
        let failed = find(&live.conditions, "Failed");
        assert_eq!((failed.status, failed.reason.as_str()), ("True", "FailCount"));
        assert!(failed.message.contains("web on n2 (monitor_10000 3): not running"), "{}", failed.message);
        assert_eq!(failed.last_transition_time.as_deref(), Some("1970-01-01T00:01:00Z"));
    }

    #[test]
    fn a_stopped_resource_says_why_and_a_pending_action_unsettles_it() {
        let mut plan = empty_plan();
        plan.actions.push(crate::scheduler::plan::Action { verb: "Start".into(), resource: "web".into(), detail: "n1".into() });
        let view = view(vec![entry("web", None, "Stopped")], vec![]);
        let live = resource_live(&object(DUMMY), &ByPrimitive::new(&view, &plan, &[])).expect("live");
        assert!(live.nodes.is_empty());
        let available = find(&live.conditions, "Available");
        assert_eq!((available.status, available.message.as_str()), ("False", "no node can run it"));
        let settled = find(&live.conditions, "Settled");
        assert_eq!((settled.status, settled.message.as_str()), ("False", "Start web n1"));
    }

    #[test]
    fn clone_instances_and_group_members_belong_to_their_object() {
        let group = object("apiVersion: pacer.io/v1alpha1\nkind: Group\nmetadata: {name: g}\nspec: {members: [a, b]}\n");
        let entries = vec![entry("a", Some("n1"), "Started"), entry("b:1", Some("n2"), "Promoted"), entry("c", Some("n3"), "Started")];
        let (view, plan) = (view(entries, vec![]), empty_plan());
        let live = resource_live(&group, &ByPrimitive::new(&view, &plan, &[])).expect("live");
        assert_eq!(live.nodes, vec!["n1".to_string(), "n2".to_string()]);
        assert_eq!(live.role, "Promoted/Started");
    }

    #[test]
    fn node_conditions_follow_its_state() {
        let view = view(vec![entry("web", Some("n1"), "Started")], vec![]);
        let started = [("n1".to_string(), 120)].into();
        let n1 = node_live("n1", Some(1), &view, &started).expect("known");
        assert_eq!((n1.state.as_str(), n1.resources), ("online", 1));
        assert_eq!(find(&n1.conditions, "Ready").last_transition_time.as_deref(), Some("1970-01-01T00:02:00Z"));
        let n2 = node_live("n2", None, &view, &started).expect("known");
        assert_eq!(find(&n2.conditions, "Schedulable").reason, "Standby");
        let n3 = node_live("n3", None, &view, &started).expect("known");
        assert_eq!(find(&n3.conditions, "Ready").reason, "Unclean");
        assert_eq!(find(&n3.conditions, "Fencing").status, "True");
        assert!(node_live("n9", None, &view, &started).is_none());
    }
}
