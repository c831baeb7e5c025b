//! What the leading scheduler writes besides assignments: the election key's value and
//! `history/<revision>`, one record per decision that changed what some node is told.

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
    /// Resources that cannot run, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_running: Vec<String>,
    /// Nodes to fence, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fencing: Vec<String>,
}
