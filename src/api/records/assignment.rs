//! `plans/<node>`: the scheduler's assignment for one node — the node's state, the
//! resources to run in their roles with everything needed to run them, and the gates
//! a start or promotion waits for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::agent::AgentRef;
use crate::api::constraint::OrderAction;
use crate::api::resource::Role;

/// A node's state in a decision (the scheduler's verdict, sent to the node's agent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Online,
    Standby,
    Maintenance,
    Pending,
    Offline,
    Unclean,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Online => "online",
            NodeState::Standby => "standby",
            NodeState::Maintenance => "maintenance",
            NodeState::Pending => "pending",
            NodeState::Offline => "offline",
            NodeState::Unclean => "unclean",
        }
    }
}

/// `plans/<node>`: what the leading scheduler wants one node to run. Written by the
/// scheduler only; read by that node's agent. A resource the node runs that is not
/// listed here is to be stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAssignment {
    pub node: String,
    /// The etcd revision of the inputs the decision was made from (informational: an
    /// assignment whose content did not change is not rewritten for a new revision).
    pub input_revision: i64,
    /// The scheduler's election term; informational (the write itself is guarded).
    #[serde(default)]
    pub term: i64,
    /// The revision the leader's watch had delivered when it decided
    /// (`ClusterCache::watched_revision`; not `input_revision`, which the leader's own
    /// writes advance): statuses written before it were seen. An agent does not act on
    /// the withdrawal of a resource whose role it wrote after this
    /// (`Reconciler::stale_withdrawal`): Pacemaker's DC too waits for the actions in
    /// flight before deciding again. 0: not known (a leader that records none, an
    /// assignment written by hand): no such hold.
    #[serde(default, skip_serializing_if = "super::is_zero")]
    pub seen_revision: i64,
    /// The node's state in the decision. In `maintenance` the agent runs monitors only.
    pub state: NodeState,
    /// Whether a failed start bans the resource from the node at once (the fail count
    /// is set to INFINITY), `ClusterPolicy.startFailureIsFatal`.
    #[serde(default = "default_true")]
    pub start_failure_is_fatal: bool,
    /// The node must be unfenced (a fence device's `on`) before it starts anything:
    /// the agent waits for a successful unfencing result for itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unfence_first: bool,
    /// The node's configured attributes (`Node.spec.attributes`), answered to agents
    /// that ask through the shims.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    pub resources: Vec<AssignedResource>,
    /// Resources running here that live-migrate to another node (`allowMigrate`): the
    /// agent runs `migrate_to` instead of `stop`, then stops what is left once the
    /// target reports the resource started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<Migration>,
    /// Stop gates across nodes, for the primitives running here: primitive name → the
    /// primitives (by name) whose copies started after it, on any node, must be seen
    /// stopped before it stops (the `then`s of its mandatory symmetric orders).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stop_after: BTreeMap<String, Vec<String>>,
    /// On a joining node (state `pending`): the primitives whose start elsewhere waits
    /// for their probe here, at most `PROBE_FIRST_MAX`. The agent probes them before
    /// the rest and reports those it finds not running in its heartbeat
    /// (`NodeHeartbeat::probed_ahead`), so that they need not wait for every probe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probe_first: Vec<String>,
}

/// The most resources a joining node is told to probe first, and reports probed
/// ahead: plenty for the recovery of a lost node's resources. Where it holds up more
/// (a large apply while it joins), the rest wait for its full probe, and its
/// assignment and heartbeat stay small.
pub const PROBE_FIRST_MAX: usize = 1000;

impl NodeAssignment {
    /// Whether `other` tells the node the same thing: equal in everything but
    /// `input_revision`, `term` and `seen_revision`. An assignment is only rewritten
    /// when this is false, so a new input revision alone writes nothing; but see
    /// `seen_revision` (the leader writes an unchanged one again for a withdrawal its
    /// node holds, `daemon::withdrawal_unseen`).
    pub fn same_decision(&self, other: &NodeAssignment) -> bool {
        // Destructured so that a new field has to be placed on one side or the other.
        let NodeAssignment {
            node,
            input_revision: _,
            term: _,
            seen_revision: _,
            state,
            start_failure_is_fatal,
            unfence_first,
            attributes,
            resources,
            migrations,
            stop_after,
            probe_first,
        } = self;
        *node == other.node
            && *state == other.state
            && *start_failure_is_fatal == other.start_failure_is_fatal
            && *unfence_first == other.unfence_first
            && *attributes == other.attributes
            && *resources == other.resources
            && *migrations == other.migrations
            && *stop_after == other.stop_after
            && *probe_first == other.probe_first
    }
}

/// A resource leaving this node by live migration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Migration {
    pub id: String,
    pub target: String,
}

fn default_true() -> bool {
    true
}

/// One resource instance a node is to run, in a role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedResource {
    /// The id the node keeps it under (its `status/<node>/<id>` key and the agent's
    /// `OCF_RESOURCE_INSTANCE`): the primitive's name, or `name:N` for an instance of a
    /// globally unique clone. Anonymous clone instances are interchangeable and go by
    /// the primitive's name, so a renumbering between decisions restarts nothing.
    pub id: String,
    /// The instance in the plan (`name:N` for any clone instance).
    pub instance: String,
    /// The configured primitive.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<String>,
    /// The role to reach: `Started`, `Unpromoted` or `Promoted`.
    pub role: Role,
    /// `false`: left alone (unmanaged, blocked, maintenance): monitors only.
    pub managed: bool,
    /// Only one copy in the cluster (a primitive that is not cloned, or an instance of
    /// a globally unique clone): it starts only when no other node reports it active.
    pub exclusive: bool,
    pub definition: Definition,
    /// How many of this resource's failures on the node (`ResourceStatus::failures`)
    /// the decision took into account. A resource that failed more often than that is
    /// left alone until a decision that has seen the failure arrives: the agent never
    /// recovers on its own.
    #[serde(default, skip_serializing_if = "super::is_zero")]
    pub failures_seen: u32,
    /// Arriving by live migration from this node: once that node reports it
    /// `Migrating` (its `migrate_to` is done), the agent runs `migrate_from` instead of
    /// `start`. If that node reports it stopped, a plain start does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate_from: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_after: Vec<LocalGate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promote_after: Vec<LocalGate>,
    /// It runs here and stays, but is restarted: the call id of the start that made the
    /// copy now running (`records::start_call` of its history). While the copy running
    /// is that one, the agent stops it (its stop gates allowing); it then starts again
    /// once its start gates open. A later start has another call id, so the restart is
    /// done once however often the decision is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<i64>,
}

/// How to run a resource's agent: everything an operation needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Definition {
    pub agent: AgentRef,
    /// The parameters written in the configuration, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Parameters whose values are secrets kept in files on the node: name to the
    /// file's absolute path. Only the path travels (plans, statuses, decision inputs);
    /// the executor reads the file just before each run. No name is in both maps.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_files: BTreeMap<String, String>,
    /// `OCF_RESKEY_CRM_meta_<key>` values: the clone's options and the instance number.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<OperationDef>,
}

/// One configured operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationDef {
    pub name: String,
    #[serde(default)]
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// A monitor for one role only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// Pacemaker's default operation timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 20_000;

impl Definition {
    /// The timeout of a one-shot action (`start`, `stop`, `promote`, a probe).
    pub fn timeout_ms(&self, action: &str) -> u64 {
        self.operations
            .iter()
            .find(|operation| operation.name == action && operation.interval_ms == 0)
            .map_or(DEFAULT_TIMEOUT_MS, |operation| operation.timeout_ms)
    }

    /// The recurring monitors that apply in `role`: those for that role, and those for
    /// no role in particular.
    pub fn monitors_for(&self, role: Role) -> impl Iterator<Item = &OperationDef> {
        self.operations
            .iter()
            .filter(move |operation| operation.name == "monitor" && operation.interval_ms > 0 && operation.role.is_none_or(|wanted| wanted == role))
    }
}

/// A condition a start or promotion waits for, resolved to primitives: every one of
/// `members` has done `action` (on one node, for one copy), and `at_least` copies have.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalGate {
    /// The configured resource the order names (for logs and status).
    pub resource: String,
    /// Its primitives: one for a primitive or cloned primitive, the members of a group.
    pub members: Vec<String>,
    /// `Start` (running in any role) or `Promote` (promoted).
    pub action: OrderAction,
    /// Only copies on this node count.
    #[serde(default)]
    pub same_node: bool,
    /// For a resource that is not cloned: the node(s) the decision places it on. Only a
    /// copy there counts — the copy a move is leaving does not open the gate. `None`:
    /// anywhere (clones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_nodes: Option<Vec<String>>,
    pub at_least: u32,
    /// Gates sharing a number are alternatives: one of them suffices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any_of: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment() -> NodeAssignment {
        let definition = Definition {
            agent: "ocf:heartbeat:Dummy".parse().expect("agent name"),
            params: BTreeMap::new(),
            secret_files: BTreeMap::new(),
            meta: BTreeMap::new(),
            operations: vec![OperationDef { name: "monitor".into(), interval_ms: 10_000, timeout_ms: 20_000, role: None }],
        };
        NodeAssignment {
            node: "n1".into(),
            input_revision: 10,
            term: 3,
            seen_revision: 9,
            state: NodeState::Online,
            start_failure_is_fatal: true,
            unfence_first: false,
            attributes: BTreeMap::new(),
            resources: vec![AssignedResource {
                id: "a".into(),
                instance: "a".into(),
                name: "a".into(),
                group: None,
                clone: None,
                role: Role::Started,
                managed: true,
                exclusive: true,
                definition,
                failures_seen: 0,
                migrate_from: None,
                start_after: Vec::new(),
                promote_after: Vec::new(),
                restart: None,
            }],
            migrations: Vec::new(),
            stop_after: BTreeMap::new(),
            probe_first: Vec::new(),
        }
    }

    #[test]
    fn the_same_decision_ignores_only_the_revisions_and_the_term() {
        let base = assignment();
        let later = NodeAssignment { input_revision: 42, term: 4, seen_revision: 41, ..base.clone() };
        assert!(base.same_decision(&later), "a new input revision or term alone is not a new decision");
        assert!(later.same_decision(&base));

        let mut changes: Vec<(&str, NodeAssignment)> = vec![
            ("node", NodeAssignment { node: "n2".into(), ..base.clone() }),
            ("state", NodeAssignment { state: NodeState::Standby, ..base.clone() }),
            ("startFailureIsFatal", NodeAssignment { start_failure_is_fatal: false, ..base.clone() }),
            ("unfenceFirst", NodeAssignment { unfence_first: true, ..base.clone() }),
            ("attributes", NodeAssignment { attributes: BTreeMap::from([("rack".into(), "1".into())]), ..base.clone() }),
            ("resources", NodeAssignment { resources: Vec::new(), ..base.clone() }),
            ("migrations", NodeAssignment { migrations: vec![Migration { id: "a".into(), target: "n2".into() }], ..base.clone() }),
            ("stopAfter", NodeAssignment { stop_after: BTreeMap::from([("a".into(), vec!["b".into()])]), ..base.clone() }),
            ("probeFirst", NodeAssignment { probe_first: vec!["a".into()], ..base.clone() }),
        ];
        let mut failures_seen = base.clone();
        failures_seen.resources[0].failures_seen = 1;
        changes.push(("resources[0].failuresSeen", failures_seen));
        let mut restart = base.clone();
        restart.resources[0].restart = Some(7);
        changes.push(("resources[0].restart", restart));
        for (field, changed) in changes {
            assert!(!base.same_decision(&changed), "{field} differs: a new decision");
            assert!(!changed.same_decision(&base), "{field} differs: a new decision");
        }
    }
}
