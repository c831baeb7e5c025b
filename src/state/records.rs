//! The records the scheduler and the node agents exchange through etcd. Each is JSON
//! under one key (see `store::keys`); each has exactly one writer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::agent::AgentRef;
use crate::api::constraint::OrderAction;
use crate::api::resource::Role;
use crate::scheduler::plan::NodeState;
use crate::scheduler::snapshot::OperationRecord;

/// A fail count that bans at once (Pacemaker's INFINITY).
pub const FAIL_COUNT_INFINITY: u32 = 1_000_000;

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

fn is_zero(value: &u32) -> bool {
    *value == 0
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
    #[serde(default, skip_serializing_if = "is_zero")]
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
}

/// How to run a resource's agent: everything an operation needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Definition {
    pub agent: AgentRef,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// `OCF_RESKEY_CRM_meta_<key>` values: the clone's options and the instance number.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<OperationDef>,
}

/// One configured operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// What a node's agent knows of a resource's state there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ObservedRole {
    /// Not probed yet: may be running. Never taken for stopped.
    Unknown,
    Stopped,
    Started,
    Unpromoted,
    Promoted,
    /// `migrate_to` is done here: the resource is on its way to (or already running
    /// on) the migration target. Counts as possibly active until stopped here.
    Migrating,
    /// An operation failed; it may still be partly active and must be stopped before
    /// anything else is done with it.
    Failed,
}

impl ObservedRole {
    /// Running in some role.
    pub fn is_active(self) -> bool {
        matches!(self, ObservedRole::Started | ObservedRole::Unpromoted | ObservedRole::Promoted)
    }

    /// Anything but a proven stop: counts as a copy when only one may run.
    pub fn may_be_active(self) -> bool {
        self != ObservedRole::Stopped
    }

    pub fn from_role(role: Role) -> ObservedRole {
        match role {
            Role::Stopped => ObservedRole::Stopped,
            Role::Started => ObservedRole::Started,
            Role::Unpromoted => ObservedRole::Unpromoted,
            Role::Promoted => ObservedRole::Promoted,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ObservedRole::Unknown => "Unknown",
            ObservedRole::Stopped => "Stopped",
            ObservedRole::Started => "Started",
            ObservedRole::Unpromoted => "Unpromoted",
            ObservedRole::Promoted => "Promoted",
            ObservedRole::Migrating => "Migrating",
            ObservedRole::Failed => "Failed",
        }
    }
}

/// `status/<node>/<id>`: one resource on one node, as that node's agent saw it. Only
/// that agent writes it, in a transaction that requires its lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<String>,
    pub node: String,
    pub role: ObservedRole,
    /// How it was last run, so it can be stopped even once it is gone from the plan
    /// and the configuration.
    pub definition: Definition,
    /// As Pacemaker keeps it: the last one-shot operation, the last failure, and the
    /// last result of each recurring monitor; in call order.
    pub history: Vec<OperationRecord>,
    /// Every failure ever recorded here (kept across agent restarts); a decision
    /// echoes the number it has seen in `AssignedResource::failures_seen`.
    #[serde(default)]
    pub failures: u32,
    /// The primitives this one was started after (its start gates' members). When
    /// both stop on this node, this one stops first: stops run in the reverse order
    /// of starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub started_after: Vec<String>,
    /// Failures per operation (`monitor_10000`, `start_0`); `FAIL_COUNT_INFINITY` bans.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fail_counts: BTreeMap<String, u32>,
    /// When the last failure happened, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<i64>,
    /// The last failure's exit reason, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// An operation that may leave the resource running (start, promote,
    /// migrate_from), recorded before it runs: if the node is lost meanwhile, the
    /// resource counts as possibly running there (Pacemaker's record-pending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// For an instance of a clone with `notify`: the action it is about to take or has
    /// just taken, so the other instances run their pre and post notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<Notice>,
    /// Pre notifications this instance has run for others' notices: `node/id` of the
    /// announcing instance → the notice's incarnation and sequence number.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub acks: BTreeMap<String, (i64, u64)>,
}

/// An action of a notifying clone instance, announced (Pacemaker's clone
/// notifications, run by every node for its own instances).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    /// The announcing agent's session (a number fresh for each): a notice is told
    /// apart from one of an earlier life of the same instance, whose number may have
    /// been reset.
    #[serde(default)]
    pub incarnation: i64,
    /// Grows with every action the instance announces.
    pub seq: u64,
    /// `start`, `stop`, `promote` or `demote`.
    pub operation: String,
    /// `pre`: about to happen (the other instances acknowledge in `acks`); `post`: done.
    pub phase: NoticePhase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticePhase {
    Pre,
    Post,
}

impl NoticePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticePhase::Pre => "pre",
            NoticePhase::Post => "post",
        }
    }
}

impl ResourceStatus {
    /// Anything but a proven stop, including an operation recorded as under way.
    pub fn may_be_active(&self) -> bool {
        self.role.may_be_active() || self.pending.is_some()
    }

    /// Promoted, a promotion recorded as under way, or failed after its last one-shot
    /// operation promoted it (or failed to demote it), or with a monitor that answered
    /// "failed while promoted" (OCF 9): nothing proves it demoted.
    pub fn may_be_promoted(&self) -> bool {
        if self.role == ObservedRole::Promoted || self.pending.as_deref() == Some("promote") {
            return true;
        }
        if self.role != ObservedRole::Failed {
            return false;
        }
        let last_one_shot = self.history.iter().filter(|record| record.interval_ms == 0).max_by_key(|record| record.call_id);
        let promoted_last = last_one_shot.is_some_and(|record| record.operation == "promote" || (record.operation == "demote" && record.rc != 0));
        promoted_last || self.history.iter().any(|record| record.rc == 9)
    }
}

/// `nodes/<node>/lease`: present while the node's agent holds its lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeHeartbeat {
    pub node: String,
    /// The agent's process id and host, for people.
    pub pid: u32,
    pub host: String,
    /// When this agent started, seconds since the epoch.
    pub started: i64,
    pub lease_ttl_ms: u64,
    /// The agent has probed every configured resource: its statuses are complete.
    pub probed: bool,
    /// The agent is shutting down: resources should move away.
    #[serde(default)]
    pub shutdown: bool,
}

/// `attributes/<node>/<name>`: a node attribute an agent set at run time (promotion
/// scores `master-<resource>` among them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAttributeRecord {
    pub value: String,
    /// `reboot` values are bound to the node's lease and vanish with it; `forever`
    /// ones stay.
    pub forever: bool,
}
