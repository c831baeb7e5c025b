//! `requests/<node>/<id>`: what an operator asked a node's agent to do to its own
//! statuses (`pacer cleanup`, `pacer refresh`). A node's statuses have one writer, its
//! agent; the command writes a request, the agent applies it to its statuses and
//! deletes it once the statuses it changed are written.

use serde::{Deserialize, Serialize};

use super::status::{ObservedRole, ResourceStatus};

/// What is asked (Pacemaker's `crm_resource --cleanup` and `--refresh`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestKind {
    /// Forget the failures (fail counts, failed results, the last failure) of the
    /// resources that have some, and probe them again.
    Cleanup,
    /// Forget everything recorded of the resources (history, fail counts) and probe
    /// them again.
    Refresh,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Cleanup => "cleanup",
            RequestKind::Refresh => "refresh",
        }
    }
}

/// `requests/<node>/<id>`: written by `pacer cleanup` / `pacer refresh` (only if the
/// key is absent), applied and deleted by that node's agent (lease-guarded).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    pub kind: RequestKind,
    /// The status ids on the node to act on (`status/<node>/<id>`): a primitive, or a
    /// clone instance.
    pub resources: Vec<String>,
    /// Cleanup of one operation's failures only (`monitor`, `start`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// With `operation`: only at this interval (milliseconds; 0 for one-shot ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// Seconds since the epoch.
    pub requested: i64,
    /// Who asked (`user@host`), for people.
    pub by: String,
}

impl RequestRecord {
    /// Whether a failure of `operation` at `interval_ms` is one this request clears.
    pub fn covers(&self, operation: &str, interval_ms: u64) -> bool {
        self.operation.as_deref().is_none_or(|wanted| wanted == operation) && self.interval_ms.is_none_or(|wanted| wanted == interval_ms)
    }

    /// Whether `status` has a failure this request would clear: a fail count or a
    /// failed result of a covered operation, or (for a whole resource) a failed role.
    pub fn finds_failures(&self, status: &ResourceStatus) -> bool {
        (self.operation.is_none() && status.role == ObservedRole::Failed)
            || status.fail_counts.keys().any(|key| split_fail_count_key(key).is_some_and(|(operation, interval)| self.covers(operation, interval)))
            || status.history.iter().any(|record| record.is_failure() && self.covers(&record.operation, record.interval_ms))
    }
}

/// A fail count's key (`monitor_10000`, `migrate_to_0`) as its operation and interval.
pub fn split_fail_count_key(key: &str) -> Option<(&str, u64)> {
    let (operation, interval) = key.rsplit_once('_')?;
    Some((operation, interval.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_count_keys_split_at_the_last_underscore() {
        assert_eq!(split_fail_count_key("monitor_10000"), Some(("monitor", 10_000)));
        assert_eq!(split_fail_count_key("migrate_to_0"), Some(("migrate_to", 0)));
        assert_eq!(split_fail_count_key("start"), None);
    }

    #[test]
    fn a_request_covers_its_operation_at_its_interval() {
        let mut request = RequestRecord { kind: RequestKind::Cleanup, resources: vec![], operation: None, interval_ms: None, requested: 0, by: String::new() };
        assert!(request.covers("start", 0));
        request.operation = Some("monitor".into());
        assert!(request.covers("monitor", 10_000) && !request.covers("start", 0));
        request.interval_ms = Some(5_000);
        assert!(request.covers("monitor", 5_000) && !request.covers("monitor", 10_000));
    }
}
