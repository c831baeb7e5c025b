//! An alert's cursor moved along the log (pure): where a worker starts, what it does
//! with events trimmed before it got to them, and how a window's outcomes change the
//! cursor and which failures become `Delivery` events.

use crate::api::records::{AlertCursor, DeliveryFailure, EventKind, EventRecord};

/// Where a worker starts: the stored cursor if it belongs to this alert (same uid),
/// else a new one at `last_sequence`, the end of the log (an alert seen for the first
/// time is not sent the backlog). The bool says whether the cursor is new and must be
/// written before anything is delivered (so a leader taking over later resumes from
/// the same place).
pub fn starting_cursor(stored: Option<AlertCursor>, uid: &str, last_sequence: u64) -> (AlertCursor, bool) {
    match stored {
        Some(cursor) if cursor.alert_uid == uid => (cursor, false),
        _ => (AlertCursor { alert_uid: uid.to_string(), delivered: last_sequence, ..AlertCursor::default() }, true),
    }
}

/// Events the log no longer holds (trimmed by its cap, `ClusterPolicy.eventLimit`)
/// although the cursor had not reached them: given up on and recorded as one failure.
/// Returns the failure, with the cursor moved to just before `first_kept`.
pub fn skip_trimmed(cursor: &mut AlertCursor, first_kept: Option<u64>, now_usec: i64) -> Option<DeliveryFailure> {
    let first = first_kept?;
    if first <= cursor.delivered.saturating_add(1) {
        return None;
    }
    let missed_from = cursor.delivered + 1;
    let missed_to = first - 1;
    let count = missed_to - missed_from + 1;
    let failure = DeliveryFailure {
        sequence: missed_from,
        time_usec: now_usec,
        reason: format!("{count} event(s) {missed_from} to {missed_to} were trimmed from the log before they could be delivered"),
    };
    cursor.delivered = missed_to;
    cursor.failed = cursor.failed.saturating_add(1);
    cursor.last_failure = Some(failure.clone());
    Some(failure)
}

/// How one event's delivery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Given up on (after the receiver's retries): why, in one line.
    Failed(String),
}

/// Applies a window's outcomes (`(sequence, outcome)`, any order) to the cursor: every
/// event up to `window_end` is done; counters; the last failure set by a failure and
/// cleared by a later success, in sequence order. Returns the failures, in order.
pub fn record_window(cursor: &mut AlertCursor, window_end: u64, mut outcomes: Vec<(u64, Outcome)>, now_usec: i64) -> Vec<DeliveryFailure> {
    outcomes.sort_by_key(|(sequence, _)| *sequence);
    let mut failures = Vec::new();
    for (sequence, outcome) in outcomes {
        match outcome {
            Outcome::Delivered => {
                cursor.succeeded = cursor.succeeded.saturating_add(1);
                cursor.last_success_usec = Some(now_usec);
                cursor.last_failure = None;
            }
            Outcome::Failed(reason) => {
                let failure = DeliveryFailure { sequence, time_usec: now_usec, reason };
                cursor.failed = cursor.failed.saturating_add(1);
                cursor.last_failure = Some(failure.clone());
                failures.push(failure);
            }
        }
    }
    cursor.delivered = cursor.delivered.max(window_end);
    failures
}

/// The `Delivery` event recording that `alert` gave up on an event: `detail` names the
/// alert and the event's sequence; the node and resource of the event are kept so
/// `pacer events --for` finds it.
pub fn failure_event(alert: &str, failure: &DeliveryFailure, about: Option<&EventRecord>) -> EventRecord {
    let desc = format!("alert {alert} could not deliver event {}: {}", failure.sequence, failure.reason);
    let mut event = EventRecord::new(EventKind::Delivery, "scheduler", failure.time_usec, desc);
    event.detail = Some(format!("alert={alert} sequence={}", failure.sequence));
    if let Some(about) = about {
        event.node = about.node.clone();
        event.resource = about.resource.clone();
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_alert_starts_at_the_end_and_a_known_one_resumes() {
        let (cursor, new) = starting_cursor(None, "u1", 40);
        assert_eq!((cursor.delivered, new), (40, true));
        let stored = AlertCursor { alert_uid: "u1".into(), delivered: 12, ..AlertCursor::default() };
        let (cursor, new) = starting_cursor(Some(stored.clone()), "u1", 40);
        assert_eq!((cursor.delivered, new), (12, false));
        // Deleted and made again under the same name: afresh.
        let (cursor, new) = starting_cursor(Some(stored), "u2", 40);
        assert_eq!((cursor.delivered, cursor.alert_uid.as_str(), new), (40, "u2", true));
    }

    #[test]
    fn trimmed_events_are_one_failure_and_the_cursor_moves_past_them() {
        let mut cursor = AlertCursor { alert_uid: "u".into(), delivered: 10, ..AlertCursor::default() };
        assert_eq!(skip_trimmed(&mut cursor, Some(11), 5), None);
        assert_eq!(skip_trimmed(&mut cursor, None, 5), None);
        let failure = skip_trimmed(&mut cursor, Some(20), 5).expect("missed");
        assert_eq!(failure.sequence, 11);
        assert_eq!(failure.reason, "9 event(s) 11 to 19 were trimmed from the log before they could be delivered");
        assert_eq!((cursor.delivered, cursor.failed), (19, 1));
    }

    #[test]
    fn a_later_success_clears_the_last_failure_an_earlier_one_does_not() {
        let mut cursor = AlertCursor { alert_uid: "u".into(), delivered: 0, ..AlertCursor::default() };
        let failures = record_window(&mut cursor, 9, vec![(5, Outcome::Delivered), (3, Outcome::Failed("timed out after 1s".into()))], 7);
        assert_eq!(failures.len(), 1);
        assert_eq!((cursor.delivered, cursor.succeeded, cursor.failed), (9, 1, 1));
        assert_eq!(cursor.last_failure, None, "event 5 was delivered after 3 failed");
        record_window(&mut cursor, 12, vec![(10, Outcome::Delivered), (11, Outcome::Failed("exited with 1".into()))], 8);
        assert_eq!(cursor.last_failure.as_ref().map(|failure| failure.sequence), Some(11));
        let event = failure_event("mail", cursor.last_failure.as_ref().expect("failure"), None);
        assert_eq!(event.detail.as_deref(), Some("alert=mail sequence=11"));
        assert_eq!(event.desc, "alert mail could not deliver event 11: exited with 1");
    }
}
