//! What node agents write about their node: `status/<node>/<id>` (one resource there),
//! `nodes/<node>/lease` (the heartbeat) and `attributes/<node>/<name>` (run-time
//! attributes), and `Reports`, all of them as read at one revision.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::resource::Role;

use super::assignment::Definition;
use super::operation::OperationRecord;

/// A fail count that bans at once (Pacemaker's INFINITY).
pub const FAIL_COUNT_INFINITY: u32 = 1_000_000;

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
    /// and the configuration. Shared: a node knows every configured resource, and
    /// nearly all of them are stopped or run as configured — one copy with the
    /// node's probe target, not one each (issue 18; an anonymous clone's instance,
    /// started with its number, has its own).
    pub definition: Arc<Definition>,
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// The agent's `--attribute`s (shown only: the agent writes them as run-time
    /// attributes, never copied into a `Node`) and `--capacity` (what the leader puts
    /// into the `Node` object it creates for a node that has none). An existing `Node`
    /// is the administrator's and is never changed from here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, u64>,
    /// Where the agent's peer endpoint listens (`host:port`), when it has one: the
    /// other agents ask it, while etcd cannot be reached, whether it can
    /// (`agent::failsafe`). Written while etcd is up, so every agent knows its peers'
    /// addresses as of its last store access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// While not `probed`: the resources of the assignment's `probe_first` (those whose
    /// start elsewhere waits for this joining node's probe) already probed and found
    /// not running, at most `PROBE_FIRST_MAX`. Such a probe writes no status; the
    /// scheduler reads these as the probes' results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probed_ahead: Vec<String>,
}

/// `nodes/<node>/activity`: how busy a node's agent is and when it last had to
/// self-fence. Written by that agent (guarded by its lease) when it changes, at most
/// every few seconds; not bound to the lease, so a node's self-fencings stay visible
/// while it is down.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeActivity {
    pub node: String,
    /// Operations running now.
    pub running: u32,
    /// Operations decided but waiting for a place under the node's limit.
    pub queued: u32,
    /// Operations allowed at once now (the action limit after the load throttle).
    pub limit: u32,
    /// The latest self-fencings, oldest first (at most `SELF_FENCINGS_KEPT`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub self_fencings: Vec<SelfFencing>,
}

/// How many self-fencings a node's activity record keeps.
pub const SELF_FENCINGS_KEPT: usize = 10;

/// One time an agent stopped everything because it could not prove it held its lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelfFencing {
    /// Seconds since the epoch.
    pub time: i64,
    pub cause: String,
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
    /// Nodes whose last fencing action was a successful unfencing (`on`).
    pub unfenced: BTreeSet<String>,
    /// Nodes an agent has claimed at some time (their activity record exists): the
    /// cluster has seen them, so they are never taken for nodes never heard of.
    pub seen: BTreeSet<String>,
}
