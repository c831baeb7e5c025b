//! The scheduler's input: desired objects, observed state and the time of the decision.
//!
//! Desired (`objects`), observed (`observed`) and planned state (`Plan`) are distinct
//! types. Nothing here is derived: the scheduler's first phase (`unpack`) turns the
//! operation history into current roles, failures and node verdicts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::Object;
use crate::api::records::OperationRecord;

/// Everything one decision depends on. `schedule` is a pure function of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Desired objects in definition order (the order Pacemaker would see them in the
    /// CIB). Order breaks ties: of two otherwise equal resources the earlier one is
    /// assigned first.
    pub objects: Vec<Object>,
    pub observed: Observed,
    /// The time of the decision, seconds since the Unix epoch. Failure timeouts and
    /// fail-count expiry use it; the scheduler never reads the clock.
    pub now: i64,
}

/// What the cluster reports about itself: node liveness, node attributes set at run
/// time (promotion scores among them) and every resource's operation history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observed {
    /// Whether the partition the decision is made in has quorum.
    #[serde(default = "default_true")]
    pub quorum: bool,
    /// Nodes by name. A node with a `Node` object but no entry here has never been
    /// seen (see `NodeLiveness::Unseen`).
    #[serde(default)]
    pub nodes: BTreeMap<String, ObservedNode>,
    /// Operation histories, one per (resource instance, node).
    #[serde(default)]
    pub history: Vec<ResourceHistory>,
    /// The node coordinating decisions (Pacemaker's DC; in Pacer the node the leading
    /// scheduler runs on, when it runs on one). Rules may test `#is_dc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dc: Option<String>,
}

fn default_true() -> bool {
    true
}

/// One node as the cluster sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedNode {
    pub liveness: NodeLiveness,
    /// The node asked to leave the cluster: it runs nothing new and its resources move.
    #[serde(default)]
    pub shutdown: bool,
    /// Attributes set at run time (Pacemaker's transient attributes): promotion scores
    /// as `master-<resource>`, fail counts as `fail-count-<resource>#<op>_<interval>`,
    /// last failures as `last-failure-<resource>#<op>_<interval>`, anything an agent sets.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// Whether a node can run resources, as its membership tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NodeLiveness {
    /// A member that runs resources.
    Online,
    /// Known to run nothing: left cleanly, or was fenced.
    Offline,
    /// Joining: alive but not yet allowed to run resources.
    Pending,
    /// Lost without a clean shutdown: may still run resources. Must be fenced before
    /// its resources run elsewhere.
    Unclean,
    /// Never seen since the cluster started: treated as unclean (startup fencing).
    Unseen,
}

/// The operations one resource instance ran on one node, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceHistory {
    /// The resource as the node knows it: a primitive name, or `name:N` for a clone
    /// instance when the node recorded one.
    pub resource: String,
    pub node: String,
    /// The agent the operations ran (`ocf:heartbeat:Dummy`), when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub operations: Vec<OperationRecord>,
}
