//! The fencing history (Pacemaker's fencer history, `stonith_admin --history`): which
//! attempts the leader keeps (`history_to_trim`, the cap) and how `pacer status` and
//! `pacer history fencing` show them. The records (`FenceHistoryRecord`, one per
//! request, `fence-history/<target>/<id>`) are in `api::records`; the leader writes
//! them with its requests and the answers it accepts. Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::api::records::{FenceAttemptState, FenceHistoryRecord};

/// The attempts kept cluster-wide: Pacemaker's fencer keeps the newest 500
/// (`MAX_STONITH_HISTORY`), which is years of fencing for a healthy cluster and a few
/// hundred kilobytes in etcd for one that keeps failing (a failed attempt is retried
/// every few seconds, so a cap per node would not bound a storm any better). Pending
/// attempts and each node's last success of each action are kept beyond it.
pub const FENCE_HISTORY_LIMIT: usize = 500;

/// Failed attempts `pacer status` shows per node, newest first (`pacer history
/// fencing` shows them all).
pub const STATUS_FAILURES_PER_NODE: usize = 5;

/// What the cap keeps beyond `limit`: the attempts whose request is still open, and the
/// configured nodes (whose last successes stay).
pub struct Kept<'a> {
    /// (target, request id) of every fencing request still stored.
    pub open: BTreeSet<(&'a str, i64)>,
    /// The nodes configured (`Node` objects).
    pub nodes: BTreeSet<&'a str>,
}

/// The attempts to delete so that at most `limit` are kept, oldest first (by request
/// id: the etcd revision the request was decided at, which only grows). Never a
/// pending attempt whose request is still open, and never a configured node's last
/// success of an action (`reboot`/`off`/`on`): a node's last fencing stays visible
/// however many failures come after it. A removed node's, and an attempt left pending
/// by a request deleted otherwise (by hand, by another build's leader), go in turn.
pub fn history_to_trim(history: &BTreeMap<(String, i64), FenceHistoryRecord>, limit: usize, kept: &Kept<'_>) -> Vec<(String, i64)> {
    if history.len() <= limit {
        return Vec::new();
    }
    let mut last_success: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for ((target, id), record) in history {
        if record.state == FenceAttemptState::Succeeded && kept.nodes.contains(target.as_str()) {
            let newest = last_success.entry((target.as_str(), record.action.as_str())).or_insert(*id);
            *newest = (*newest).max(*id);
        }
    }
    let protected: BTreeSet<(&str, i64)> = last_success.iter().map(|((target, _), id)| (*target, *id)).collect();
    let mut oldest_first: Vec<(&String, i64)> = history.keys().map(|(target, id)| (target, *id)).collect();
    oldest_first.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0)));
    let mut excess = history.len() - limit;
    let mut trimmed = Vec::new();
    for (target, id) in oldest_first {
        if excess == 0 {
            break;
        }
        let pending =
            kept.open.contains(&(target.as_str(), id)) && history.get(&(target.clone(), id)).is_some_and(|record| record.state == FenceAttemptState::Pending);
        if pending || protected.contains(&(target.as_str(), id)) {
            continue;
        }
        trimmed.push((target.clone(), id));
        excess -= 1;
    }
    trimmed
}

/// One fencing attempt as `pacer status` and `pacer history fencing` show it (a
/// stable JSON shape, see the README).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FenceAttemptView {
    /// The request's id (an etcd revision).
    pub id: i64,
    /// The target.
    pub node: String,
    /// `reboot`, `off`, or `on` (unfencing).
    pub action: String,
    /// `pending`, `succeeded`, `failed` or `cancelled`.
    pub state: &'static str,
    /// The node asked to run the fence agents.
    pub executor: String,
    /// Who answered: the executor, or `confirmed by <user>`; absent while pending.
    pub by: Option<String>,
    /// The devices the executor was allowed (empty: every level).
    pub devices: Vec<String>,
    pub requester: String,
    pub reason: String,
    /// Seconds since the epoch.
    pub requested: i64,
    pub finished: Option<i64>,
    /// One line per device attempt: level, device, outcome.
    pub attempts: Vec<String>,
    pub error: Option<String>,
}

impl FenceAttemptView {
    pub fn of(record: &FenceHistoryRecord) -> FenceAttemptView {
        FenceAttemptView {
            id: record.id,
            node: record.target.clone(),
            action: record.action.clone(),
            state: record.state.as_str(),
            executor: record.executor.clone(),
            by: record.by.clone(),
            devices: record.devices.clone(),
            requester: record.requester.clone(),
            reason: record.reason.clone(),
            requested: record.requested,
            finished: record.finished,
            attempts: record.attempts.clone(),
            error: record.error.clone(),
        }
    }
}

/// Every attempt kept, newest first, of `node` only when given (`pacer history
/// fencing [--node N]`).
pub fn history_view<'a>(history: impl IntoIterator<Item = &'a FenceHistoryRecord>, node: Option<&str>) -> Vec<FenceAttemptView> {
    let mut views: Vec<FenceAttemptView> =
        history.into_iter().filter(|record| node.is_none_or(|node| record.target == node)).map(FenceAttemptView::of).collect();
    views.sort_by(|a, b| b.id.cmp(&a.id).then_with(|| a.node.cmp(&b.node)));
    views
}

/// What `pacer status` shows of the history, as crm_mon's "Fencing History": every
/// pending attempt, each node's newest failures (`STATUS_FAILURES_PER_NODE`), and
/// each node's last success of each action; newest first.
pub fn status_history_view<'a>(history: impl IntoIterator<Item = &'a FenceHistoryRecord>) -> Vec<FenceAttemptView> {
    let all = history_view(history, None);
    let mut failures: BTreeMap<&str, usize> = BTreeMap::new();
    let mut successes: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut shown = Vec::new();
    for view in &all {
        let show = match view.state {
            "pending" => true,
            "failed" => {
                let count = failures.entry(view.node.as_str()).or_default();
                *count += 1;
                *count <= STATUS_FAILURES_PER_NODE
            }
            "succeeded" => successes.insert((view.node.as_str(), view.action.as_str())),
            _ => false,
        };
        if show {
            shown.push(view.clone());
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(target: &str, id: i64, action: &str, state: FenceAttemptState) -> FenceHistoryRecord {
        FenceHistoryRecord {
            id,
            target: target.to_string(),
            action: action.to_string(),
            executor: "n9".to_string(),
            devices: Vec::new(),
            requester: "s1".to_string(),
            reason: "lost".to_string(),
            requested: id,
            state,
            finished: (state != FenceAttemptState::Pending).then_some(id + 1),
            by: None,
            attempts: Vec::new(),
            error: None,
        }
    }

    fn history(records: Vec<FenceHistoryRecord>) -> BTreeMap<(String, i64), FenceHistoryRecord> {
        records.into_iter().map(|record| ((record.target.clone(), record.id), record)).collect()
    }

    #[test]
    fn keeps_the_newest_attempts_up_to_the_limit() {
        let records = (1..=12).map(|id| attempt(if id % 2 == 0 { "n1" } else { "n2" }, id, "reboot", FenceAttemptState::Failed)).collect();
        let history = history(records);
        let kept = Kept { open: BTreeSet::new(), nodes: BTreeSet::from(["n1", "n2", "n3"]) };
        assert_eq!(history_to_trim(&history, 12, &kept), Vec::<(String, i64)>::new());
        let trimmed = history_to_trim(&history, 10, &kept);
        assert_eq!(trimmed, vec![("n2".to_string(), 1), ("n1".to_string(), 2)]);
    }

    #[test]
    fn never_trims_a_nodes_last_success_nor_a_pending_attempt() {
        // n1's last reboot succeeded long ago and was followed by a storm of failures
        // of n2; n3's first attempt is still pending.
        let mut records = vec![
            attempt("n1", 1, "on", FenceAttemptState::Succeeded),
            attempt("n1", 2, "reboot", FenceAttemptState::Succeeded),
            attempt("n1", 3, "reboot", FenceAttemptState::Succeeded),
            attempt("n3", 4, "off", FenceAttemptState::Pending),
        ];
        records.extend((10..20).map(|id| attempt("n2", id, "reboot", FenceAttemptState::Failed)));
        let history = history(records);
        let kept = Kept { open: BTreeSet::from([("n3", 4)]), nodes: BTreeSet::from(["n1", "n2", "n3"]) };
        let trimmed = history_to_trim(&history, 5, &kept);
        assert_eq!(trimmed.len(), history.len() - 5);
        // n1's older reboot goes; its last one, its unfencing and n3's pending stay.
        assert!(trimmed.contains(&("n1".to_string(), 2)));
        for kept in [("n1", 1), ("n1", 3), ("n3", 4)] {
            assert!(!trimmed.contains(&(kept.0.to_string(), kept.1)), "{kept:?} was trimmed: {trimmed:?}");
        }
        // The rest are n2's oldest failures.
        assert!(trimmed.iter().filter(|(target, _)| target == "n2").all(|(_, id)| *id < 18));
        // When only protected attempts are left, fewer are trimmed than asked.
        assert_eq!(history_to_trim(&history, 0, &kept).len(), history.len() - 3);
        // A node no longer configured keeps no last success, and a pending attempt
        // whose request is gone is no longer protected.
        let gone = Kept { open: BTreeSet::new(), nodes: BTreeSet::from(["n2", "n3"]) };
        assert_eq!(history_to_trim(&history, 0, &gone).len(), history.len());
    }

    #[test]
    fn status_shows_pending_failures_and_the_last_success() {
        let mut records = vec![attempt("n1", 1, "reboot", FenceAttemptState::Succeeded), attempt("n1", 2, "reboot", FenceAttemptState::Succeeded)];
        records.extend((3..10).map(|id| attempt("n1", id, "reboot", FenceAttemptState::Failed)));
        records.push(attempt("n1", 10, "reboot", FenceAttemptState::Cancelled));
        records.push(attempt("n2", 11, "off", FenceAttemptState::Pending));
        let shown = status_history_view(&records);
        let ids: Vec<(&str, i64, &str)> = shown.iter().map(|view| (view.node.as_str(), view.id, view.state)).collect();
        assert_eq!(
            ids,
            [
                ("n2", 11, "pending"),
                ("n1", 9, "failed"),
                ("n1", 8, "failed"),
                ("n1", 7, "failed"),
                ("n1", 6, "failed"),
                ("n1", 5, "failed"),
                ("n1", 2, "succeeded")
            ]
        );
        assert_eq!(history_view(&records, Some("n2")).len(), 1);
    }
}
