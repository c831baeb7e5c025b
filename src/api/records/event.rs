//! Events: what happened in the cluster — a node joining or lost, fencing asked for and
//! its result, a resource operation's result, a node attribute changed, a decision, an
//! alert that could not be delivered. Each is recorded once, by whoever saw it: an
//! agent writes its node's operations, attributes and fencing results as pending
//! events (`<events>/pending/<node>/<id>`) in the same transaction as the fact, and
//! the leading scheduler gives every event its place in one cluster-wide sequence
//! (`<events>/log/<sequence>`), writing its own (nodes, fencing requests, decisions,
//! failed deliveries) there directly. Alerts are delivered from the log, each
//! `Alert`'s progress kept in an `AlertCursor`. See `store::keys` for the layout and
//! `daemon::events` for the sequencing.

use serde::{Deserialize, Serialize};

use super::ExecStatus;
use crate::api::cluster::AlertEvent;

/// One event. The fields are Pacemaker's alert fields (`CRM_alert_*`), so an alert
/// agent gets what it would get from Pacemaker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    /// Its place in the cluster-wide sequence, from 1; 0 while pending (written by an
    /// agent, not yet sequenced by the leader).
    #[serde(default)]
    pub sequence: u64,
    /// When it happened, microseconds since the epoch, by the clock of whoever saw it.
    pub time_usec: i64,
    pub kind: EventKind,
    /// Who saw it: a node's agent (the node's name), `scheduler` (the leader) or
    /// `pacer` (a command, such as `pacer fence confirm`).
    pub reporter: String,
    /// The node it is about: the node that joined or was lost, the fencing target,
    /// the node the operation ran on or whose attribute changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The resource (instance id: `name` or `name:N`) of a resource event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The operation (`start`, `stop`, `monitor`, …) or the fencing action (`reboot`,
    /// `off`, `on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "super::is_zero")]
    pub interval_ms: u64,
    /// The agent's exit code (resource events), 0 or not (fencing results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rc: Option<i32>,
    /// The exit code the operation was expected to return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rc: Option<i32>,
    /// Whether the operation ran to its end (Pacemaker's op-status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ExecStatus>,
    /// How long the operation ran, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_time_ms: Option<u64>,
    /// What happened, in Pacemaker's words where it has them (`member`, `lost`, `ok`,
    /// `not running`, `Operation reboot of node2 by node1: OK`).
    pub desc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_name: Option<String>,
    /// The new value of an attribute event (`None`: the attribute was removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_value: Option<String>,
    /// For a decision: its input revision (`pacer history show`); for a failed
    /// delivery: the `Alert` and the sequence of the event it failed to deliver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl EventRecord {
    /// An event of `kind` seen by `reporter` at `time_usec`, the other fields empty.
    pub fn new(kind: EventKind, reporter: impl Into<String>, time_usec: i64, desc: impl Into<String>) -> EventRecord {
        EventRecord {
            sequence: 0,
            time_usec,
            kind,
            reporter: reporter.into(),
            node: None,
            resource: None,
            task: None,
            interval_ms: 0,
            rc: None,
            target_rc: None,
            status: None,
            exec_time_ms: None,
            desc: desc.into(),
            attribute_name: None,
            attribute_value: None,
            detail: None,
        }
    }

    /// Whether the event is about `resource`: its instance id, or the primitive or
    /// clone an instance id `name:N` belongs to.
    pub fn is_about_resource(&self, resource: &str) -> bool {
        self.resource.as_deref().is_some_and(|id| id == resource || id.split_once(':').is_some_and(|(name, _)| name == resource))
    }
}

/// What an event is about. The first four are Pacemaker's alert kinds
/// (`CRM_alert_kind`); decisions and failed deliveries are Pacer's own and are never
/// sent to alert receivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    Node,
    Fencing,
    Resource,
    Attribute,
    /// The scheduler decided something new (its history record).
    Decision,
    /// An alert could not be delivered.
    Delivery,
}

impl EventKind {
    /// The `Alert.spec.events` kind this event is delivered as, `None` for events that
    /// are never delivered.
    pub fn alert_kind(self) -> Option<AlertEvent> {
        match self {
            EventKind::Node => Some(AlertEvent::Node),
            EventKind::Fencing => Some(AlertEvent::Fencing),
            EventKind::Resource => Some(AlertEvent::Resource),
            EventKind::Attribute => Some(AlertEvent::Attribute),
            EventKind::Decision | EventKind::Delivery => None,
        }
    }

    /// Pacemaker's `CRM_alert_kind` word (lower case), or Pacer's for its own kinds.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Node => "node",
            EventKind::Fencing => "fencing",
            EventKind::Resource => "resource",
            EventKind::Attribute => "attribute",
            EventKind::Decision => "decision",
            EventKind::Delivery => "delivery",
        }
    }
}

/// How far an `Alert` has been delivered (`<events>/cursors/<alert>`), written by the
/// leader only: a new leader resumes from it, so it neither loses nor repeats more
/// than the deliveries in flight when the old one stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertCursor {
    /// The `Alert` object's uid: an alert deleted and made again under the same name
    /// starts afresh, from the events after it was made.
    pub alert_uid: String,
    /// Every event up to this sequence has been delivered, or given up on (and the
    /// failure recorded).
    pub delivered: u64,
    /// Deliveries that succeeded, and that failed, since the alert was made.
    #[serde(default)]
    pub succeeded: u64,
    #[serde(default)]
    pub failed: u64,
    /// When a delivery last succeeded, microseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_usec: Option<i64>,
    /// The last failure, kept until a later delivery succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<DeliveryFailure>,
}

/// A delivery given up on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryFailure {
    /// The event that was not delivered.
    pub sequence: u64,
    pub time_usec: i64,
    /// Why, in one line (`exited with 1: …`, `timed out after 30s`, `HTTP 503`).
    pub reason: String,
}

/// What the leader last said of each node (`<events>/nodes`): a new leader announces
/// only the changes since, not every node again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnnouncedNodes {
    /// Node name → the `desc` of its last node event (`member`, `lost`).
    pub nodes: std::collections::BTreeMap<String, String>,
}
