//! What the leading scheduler writes besides assignments: the election key's value,
//! `history/<revision>`, one record per decision that changed what some node is told,
//! and the input of that decision in the archive beside the prefix (`DecisionInput`
//! and the content-addressed blobs it names; see `store::keys`).

use serde::{Deserialize, Serialize};

/// The election key's value (`election/scheduler`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Leader {
    pub identity: String,
    pub since: i64,
}

/// One record of `history/`: a decision that changed what some node is told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRecord {
    pub input_revision: i64,
    pub term: i64,
    /// Seconds since the epoch.
    pub time: i64,
    /// `Verb resource detail`, as the transition summary says them.
    pub actions: Vec<String>,
    /// Resources that cannot run, with the reason: the first
    /// `state::history::NOT_RUNNING_NAMED` in the plan's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_running: Vec<String>,
    /// How many more cannot run than `not_running` names.
    #[serde(default, skip_serializing_if = "super::is_zero")]
    pub not_running_more: usize,
    /// Nodes to fence, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fencing: Vec<String>,
    /// The decision's digest (`state::history::decision_digest`: every instance's
    /// next placements and reason code, fencing, actions), which `pacer history
    /// replay` compares a new run of the scheduler on the stored input with. Absent
    /// from records written before inputs were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The digest of the stored input record's bytes (`<archive>/inputs/<revision>`):
    /// its blobs are checked against their names, and this checks the rest (the time,
    /// quorum, which blobs). Absent when the input could not be stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_digest: Option<String>,
}

/// The input of one decision (`<archive>/inputs/<revision>`): the scheduler's
/// `Snapshot` as references to content-addressed blobs — the spec once per distinct
/// spec, each node's observed state once per distinct state — so that a decision that
/// changes one node's state stores one small blob. See `state::history`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionInput {
    /// The decision time (`Snapshot::now`).
    pub now: i64,
    pub quorum: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dc: Option<String>,
    /// The desired objects in definition order.
    pub spec: BlobRef,
    /// One per node, in name order: its liveness, attributes and histories.
    pub nodes: Vec<BlobRef>,
    /// Every history in its original order, only when that order is not by node
    /// (the node blobs then hold none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<BlobRef>,
}

/// A blob: the digest of its uncompressed content and how many keys
/// (`<archive>/blobs/<digest>/<n>`) its compressed bytes are cut into.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobRef(pub String, pub u32);

impl DecisionInput {
    /// Every blob it names, the spec first.
    pub fn blobs(&self) -> impl Iterator<Item = &BlobRef> {
        std::iter::once(&self.spec).chain(self.nodes.iter()).chain(self.history.iter())
    }
}
