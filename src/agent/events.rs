//! The events a node's agent records (pure): what a result, an attribute change or a
//! fencing run it saw is worth telling, in Pacemaker's alert fields and words, and the
//! ids its pending events are written under. The agent writes each event in the same
//! guarded transaction as the fact itself (`agent::Session::flush`), so an event
//! exists exactly when its fact was recorded; the leader sequences them later
//! (`daemon::events`).
//!
//! What is news follows Pacemaker's alerts, and keeps an idle or probing cluster
//! quiet: every start, stop, promote, demote and migration; a recurring monitor only
//! when its answer changes (it failed, degraded, or recovered), never one answering as
//! before; a probe only when it finds something other than "not running" (a thousand
//! resources probed on every node must not make a million events); never a
//! notification (Pacemaker does not alert on `notify`).
//!
//! Attribute events are the attributes the agent writes (`attributes/<node>/<name>`:
//! what agents set through `crm_attribute`, `crm_master`, `attrd_updater`), when a
//! value changes. Pacemaker also alerts on its fail-count and last-failure attributes
//! and on `#node-unfenced`; here fail counts live in the statuses (the failed
//! operation's event tells of them) and `#node-unfenced` is derived from a successful
//! `on` fencing result (whose fencing event tells of it), so neither makes an
//! attribute event of its own.

use std::time::Duration;

use crate::api::ocf;
use crate::api::records::{EventKind, EventRecord, ExecStatus, FenceResultRecord};

use super::reconcile::Action;

/// Events a resource may hold unwritten (etcd unreachable for a while): the newest are
/// kept. A status and its events are one transaction, which must stay under etcd's
/// 128 operations.
pub const EVENTS_KEPT_PER_RESOURCE: usize = 32;

/// An event waiting to be written with its fact, under `pending/<node>/<id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingEvent {
    pub id: String,
    pub event: EventRecord,
}

/// Ids for one writer's pending events: unique to it and sorting in the order written
/// (the time in microseconds, then a counter), with the writer's incarnation so that
/// an agent restarted within the same microsecond never reuses a key.
#[derive(Clone, Debug, Default)]
pub struct EventIds {
    next: u64,
}

impl EventIds {
    /// The id of an event written at `time_usec` by the session `incarnation`.
    pub fn next(&mut self, time_usec: i64, incarnation: i64) -> String {
        let counter = self.next;
        self.next = self.next.wrapping_add(1);
        // Hex of a negative number is its two's complement: every id has the same
        // length, and a clock before 1970 sorts first.
        format!("{:016x}-{counter:08x}-{incarnation:016x}", time_usec.max(0))
    }
}

/// An operation's result as the agent recorded it.
#[derive(Clone, Copy, Debug)]
pub struct OperationOutcome<'a> {
    pub node: &'a str,
    /// The status id (`name` or `name:N`).
    pub resource: &'a str,
    pub action: Action,
    pub rc: i32,
    pub expected_rc: i32,
    pub status: ExecStatus,
    pub exec_time: Duration,
    /// For a recurring monitor, its previous answer since the resource last started (or
    /// was last probed, promoted…): `None` when this is its first.
    pub previous: Option<(i32, ExecStatus)>,
    pub time_usec: i64,
}

/// The event an operation's result makes, if it is news.
pub fn operation_event(outcome: &OperationOutcome) -> Option<EventRecord> {
    let news = match outcome.action {
        Action::Start | Action::Stop | Action::Promote | Action::Demote | Action::MigrateTo | Action::MigrateFrom => true,
        // "Not running", or an agent missing here (certainly not running here): what
        // every node answers for almost everything.
        Action::Probe => !(outcome.status == ExecStatus::NotInstalled || (outcome.status == ExecStatus::Done && outcome.rc == ocf::NOT_RUNNING)),
        // A first answer is news only when it is not the expected one.
        Action::Monitor(_) => outcome.previous.unwrap_or((outcome.expected_rc, ExecStatus::Done)) != (outcome.rc, outcome.status),
        Action::Notify | Action::Announce | Action::Intend => false,
    };
    if !news {
        return None;
    }
    let mut event = EventRecord::new(EventKind::Resource, outcome.node, outcome.time_usec, outcome.status.describe_result(outcome.rc));
    event.node = Some(outcome.node.to_string());
    event.resource = Some(outcome.resource.to_string());
    event.task = Some(outcome.action.verb().to_string());
    event.interval_ms = outcome.action.interval_ms();
    event.rc = Some(outcome.rc);
    event.target_rc = Some(outcome.expected_rc);
    event.status = Some(outcome.status);
    event.exec_time_ms = Some(u64::try_from(outcome.exec_time.as_millis()).unwrap_or(u64::MAX));
    Some(event)
}

/// The event a node attribute's change makes, `None` when its value stays the same
/// (`None` values: absent). The description is the one Pacemaker's sample alert agent
/// (`alert_file.sh.sample`) writes; Pacemaker itself gives attribute alerts none.
pub fn attribute_event(node: &str, name: &str, before: Option<&str>, after: Option<&str>, time_usec: i64) -> Option<EventRecord> {
    if before == after {
        return None;
    }
    let desc = match after {
        Some(value) => format!("Attribute '{name}' on node '{node}' was updated to '{value}'"),
        None => format!("Attribute '{name}' on node '{node}' was removed"),
    };
    let mut event = EventRecord::new(EventKind::Attribute, node, time_usec, desc);
    event.node = Some(node.to_string());
    event.attribute_name = Some(name.to_string());
    event.attribute_value = after.map(str::to_string);
    Some(event)
}

/// The event a fencing result makes, reported by `reporter`: Pacemaker's description
/// (`Operation reboot of n2 by n1 for pacer@scheduler: OK`, or `Error (why)` with the
/// last attempt's outcome), `executioner` who fenced and `client` who asked.
pub fn fencing_event(result: &FenceResultRecord, reporter: &str, executioner: &str, client: &str, time_usec: i64) -> EventRecord {
    let outcome = if result.succeeded {
        "OK".to_string()
    } else {
        match result.attempts.last() {
            Some(attempt) => format!("Error ({attempt})"),
            None => "Error".to_string(),
        }
    };
    let desc = format!("Operation {} of {} by {executioner} for {client}: {outcome}", result.action, result.target);
    let mut event = EventRecord::new(EventKind::Fencing, reporter, time_usec, desc);
    event.node = Some(result.target.clone());
    event.task = Some(result.action.clone());
    event.rc = Some(if result.succeeded { 0 } else { 1 });
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIME: i64 = 1_700_000_000_123_456;

    fn outcome(action: Action, rc: i32, status: ExecStatus) -> OperationOutcome<'static> {
        let expected_rc = if action == Action::Probe { ocf::NOT_RUNNING } else { ocf::OK };
        OperationOutcome { node: "n1", resource: "web", action, rc, expected_rc, status, exec_time: Duration::from_millis(42), previous: None, time_usec: TIME }
    }

    /// One line per event: what `pacer events` and an alert agent would get.
    fn render(event: Option<EventRecord>) -> String {
        match event {
            None => "-".to_string(),
            Some(event) => format!(
                "{} {} node={} rsc={} task={} interval={} rc={:?} target={:?} status={:?} exec_ms={:?} desc={:?}",
                event.kind.as_str(),
                event.reporter,
                event.node.unwrap_or_default(),
                event.resource.unwrap_or_default(),
                event.task.unwrap_or_default(),
                event.interval_ms,
                event.rc,
                event.target_rc,
                event.status,
                event.exec_time_ms,
                event.desc
            ),
        }
    }

    #[test]
    fn every_one_shot_operation_is_news() {
        let mut lines = Vec::new();
        for action in [Action::Start, Action::Stop, Action::Promote, Action::Demote, Action::MigrateTo, Action::MigrateFrom] {
            lines.push(render(operation_event(&outcome(action, ocf::OK, ExecStatus::Done))));
        }
        lines.push(render(operation_event(&outcome(Action::Start, ocf::ERR_GENERIC, ExecStatus::Done))));
        lines.push(render(operation_event(&outcome(Action::Start, ocf::ERR_GENERIC, ExecStatus::Timeout))));
        lines.push(render(operation_event(&outcome(Action::Stop, ocf::ERR_GENERIC, ExecStatus::Cancelled))));
        lines.push(render(operation_event(&outcome(Action::Notify, ocf::OK, ExecStatus::Done))));
        expect_test::expect![[r#"
            resource n1 node=n1 rsc=web task=start interval=0 rc=Some(0) target=Some(0) status=Some(Done) exec_ms=Some(42) desc="ok"
            resource n1 node=n1 rsc=web task=stop interval=0 rc=Some(0) target=Some(0) status=Some(Done) exec_ms=Some(42) desc="ok"
            resource n1 node=n1 rsc=web task=promote interval=0 rc=Some(0) target=Some(0) status=Some(Done) exec_ms=Some(42) desc="ok"
            resource n1 node=n1 rsc=web task=demote interval=0 rc=Some(0) target=Some(0) status=Some(Done) exec_ms=Some(42) desc="ok"
            resource n1 node=n1 rsc=web task=migrate_to interval=0 rc=Some(0) target=Some(0) status=Some(Done) exec_ms=Some(42) desc="ok"
            resource n1 node=n1 rsc=web task=migrate_from interval=0 rc=Some(0) target=Some(0) status=Some(Done) exec_ms=Some(42) desc="ok"
            resource n1 node=n1 rsc=web task=start interval=0 rc=Some(1) target=Some(0) status=Some(Done) exec_ms=Some(42) desc="error"
            resource n1 node=n1 rsc=web task=start interval=0 rc=Some(1) target=Some(0) status=Some(Timeout) exec_ms=Some(42) desc="Timed Out"
            resource n1 node=n1 rsc=web task=stop interval=0 rc=Some(1) target=Some(0) status=Some(Cancelled) exec_ms=Some(42) desc="Cancelled"
            -"#]]
        .assert_eq(&lines.join("\n"));
    }

    #[test]
    fn probes_are_news_only_when_they_find_something() {
        let lines: Vec<String> = [
            (ocf::NOT_RUNNING, ExecStatus::Done),
            (ocf::NOT_INSTALLED, ExecStatus::NotInstalled),
            (ocf::OK, ExecStatus::Done),
            (ocf::RUNNING_PROMOTED, ExecStatus::Done),
            (ocf::ERR_GENERIC, ExecStatus::Done),
            (ocf::ERR_GENERIC, ExecStatus::Timeout),
        ]
        .into_iter()
        .map(|(rc, status)| render(operation_event(&outcome(Action::Probe, rc, status))))
        .collect();
        expect_test::expect![[r#"
            -
            -
            resource n1 node=n1 rsc=web task=monitor interval=0 rc=Some(0) target=Some(7) status=Some(Done) exec_ms=Some(42) desc="ok"
            resource n1 node=n1 rsc=web task=monitor interval=0 rc=Some(8) target=Some(7) status=Some(Done) exec_ms=Some(42) desc="promoted"
            resource n1 node=n1 rsc=web task=monitor interval=0 rc=Some(1) target=Some(7) status=Some(Done) exec_ms=Some(42) desc="error"
            resource n1 node=n1 rsc=web task=monitor interval=0 rc=Some(1) target=Some(7) status=Some(Timeout) exec_ms=Some(42) desc="Timed Out""#]]
        .assert_eq(&lines.join("\n"));
    }

    #[test]
    fn a_recurring_monitor_is_news_only_when_its_answer_changes() {
        let monitor = |rc, status, previous| operation_event(&OperationOutcome { previous, ..outcome(Action::Monitor(10_000), rc, status) });
        // The first answer, as expected: the start already said it runs.
        assert_eq!(monitor(ocf::OK, ExecStatus::Done, None), None);
        // Answering as before: never.
        assert_eq!(monitor(ocf::OK, ExecStatus::Done, Some((ocf::OK, ExecStatus::Done))), None);
        assert_eq!(monitor(ocf::DEGRADED, ExecStatus::Done, Some((ocf::DEGRADED, ExecStatus::Done))), None);
        let lines = [
            // Failed (first answer, or after answering well).
            monitor(ocf::NOT_RUNNING, ExecStatus::Done, None),
            monitor(ocf::NOT_RUNNING, ExecStatus::Done, Some((ocf::OK, ExecStatus::Done))),
            monitor(ocf::ERR_GENERIC, ExecStatus::Timeout, Some((ocf::OK, ExecStatus::Done))),
            // Degraded, and recovered from it.
            monitor(ocf::DEGRADED, ExecStatus::Done, Some((ocf::OK, ExecStatus::Done))),
            monitor(ocf::OK, ExecStatus::Done, Some((ocf::DEGRADED, ExecStatus::Done))),
        ]
        .map(render);
        expect_test::expect![[r#"
            resource n1 node=n1 rsc=web task=monitor interval=10000 rc=Some(7) target=Some(0) status=Some(Done) exec_ms=Some(42) desc="not running"
            resource n1 node=n1 rsc=web task=monitor interval=10000 rc=Some(7) target=Some(0) status=Some(Done) exec_ms=Some(42) desc="not running"
            resource n1 node=n1 rsc=web task=monitor interval=10000 rc=Some(1) target=Some(0) status=Some(Timeout) exec_ms=Some(42) desc="Timed Out"
            resource n1 node=n1 rsc=web task=monitor interval=10000 rc=Some(190) target=Some(0) status=Some(Done) exec_ms=Some(42) desc="degraded"
            resource n1 node=n1 rsc=web task=monitor interval=10000 rc=Some(0) target=Some(0) status=Some(Done) exec_ms=Some(42) desc="ok""#]]
        .assert_eq(&lines.join("\n"));
    }

    #[test]
    fn an_attribute_event_needs_a_change() {
        assert_eq!(attribute_event("n1", "master-db", Some("10"), Some("10"), TIME), None);
        assert_eq!(attribute_event("n1", "master-db", None, None, TIME), None);
        let lines = [
            attribute_event("n1", "master-db", None, Some("10"), TIME),
            attribute_event("n1", "master-db", Some("10"), Some("100"), TIME),
            attribute_event("n1", "master-db", Some("100"), None, TIME),
        ]
        .map(|event| {
            event.map(|event| format!("{} {:?} {:?} {}", event.kind.as_str(), event.attribute_name, event.attribute_value, event.desc)).unwrap_or_default()
        });
        expect_test::expect![[r#"
            attribute Some("master-db") Some("10") Attribute 'master-db' on node 'n1' was updated to '10'
            attribute Some("master-db") Some("100") Attribute 'master-db' on node 'n1' was updated to '100'
            attribute Some("master-db") None Attribute 'master-db' on node 'n1' was removed"#]]
        .assert_eq(&lines.join("\n"));
    }

    #[test]
    fn fencing_is_described_as_pacemaker_does() {
        let mut result = FenceResultRecord {
            request: 7,
            target: "n2".into(),
            action: "reboot".into(),
            succeeded: true,
            by: "n1".into(),
            finished: 1_700_000_000,
            attempts: vec!["level 1 device ipmi attempt 1: ok".into()],
        };
        let ok = fencing_event(&result, "n1", "n1", "pacer@scheduler", TIME);
        result.succeeded = false;
        result.attempts = vec!["level 1 device ipmi attempt 1: failed (Timeout, rc 1) timed out".into()];
        let failed = fencing_event(&result, "n1", "n1", "pacer@scheduler", TIME);
        let lines = [ok, failed]
            .map(|event| format!("{} {} node={:?} task={:?} rc={:?}: {}", event.kind.as_str(), event.reporter, event.node, event.task, event.rc, event.desc));
        expect_test::expect![[r#"
            fencing n1 node=Some("n2") task=Some("reboot") rc=Some(0): Operation reboot of n2 by n1 for pacer@scheduler: OK
            fencing n1 node=Some("n2") task=Some("reboot") rc=Some(1): Operation reboot of n2 by n1 for pacer@scheduler: Error (level 1 device ipmi attempt 1: failed (Timeout, rc 1) timed out)"#]].assert_eq(&lines.join("\n"));
    }

    #[test]
    fn event_ids_sort_in_the_order_written_and_differ_between_incarnations() {
        let mut ids = EventIds::default();
        let first = ids.next(TIME, 5);
        let second = ids.next(TIME, 5);
        let later = ids.next(TIME + 1, 5);
        assert!(first < second && second < later, "{first} {second} {later}");
        // A restarted agent in the same microsecond, its counter at 0 again.
        let restarted = EventIds::default().next(TIME, 6);
        assert_ne!(restarted, first);
        assert_eq!(first, "00060a2418202240-00000000-0000000000000005");
    }
}
