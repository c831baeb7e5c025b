//! The leader's event log (`<prefix>.events/log/`): one task, the only writer of the
//! cluster-wide sequence while this scheduler leads. It gives each event its number:
//! the pending events agents wrote with their facts (`pending/<node>/<id>`, followed
//! by a watch, moved into the log in the order etcd received them, each deletion in
//! the same transaction as its log entry, so none is sequenced twice or lost), the
//! leader's own (fencing requests, decisions, failed alert deliveries: sent through
//! `EventTask::events`), and the nodes joining or lost, found by comparing each
//! decision's view of the nodes with what was last announced (`AnnouncedNodes`,
//! written with the events that change it, so a new leader announces only what
//! changed since). It trims the log to `ClusterPolicy.eventLimit` and publishes the
//! last sequence written (`EventTask::sequenced`) for alert delivery.
//!
//! Every write is guarded by the leader's lease: a deposed leader's task fails with
//! `Conflict` and stops. The sequence is read from etcd when the task starts (after
//! the election, so no earlier leader's write can land after it) and again after a
//! write whose outcome is unknown.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use crate::api::records::{AnnouncedNodes, EventKind, EventRecord};
use crate::runtime::Informer;
use crate::scheduler::snapshot::NodeLiveness;
use crate::store::watch::WatchEvent;
use crate::store::{LeaderGuard, Store, StoreError};

/// Who the leader's own events are reported by.
pub const REPORTER: &str = "scheduler";

/// Events per transaction: each takes a put and, for a pending one, a delete and a
/// condition, under etcd's 128 operations.
const EVENTS_PER_TXN: usize = 60;

/// What a decision saw that the event task needs: the nodes' liveness and the cap.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TurnView {
    pub nodes: BTreeMap<String, NodeLiveness>,
    /// `ClusterPolicy.eventLimit`.
    pub limit: u32,
}

/// The running task, and how the rest of the leader talks to it.
pub struct EventTask {
    /// The leader's own events (and failed deliveries), sequenced in the order sent.
    pub events: mpsc::UnboundedSender<EventRecord>,
    /// The nodes as each decision saw them.
    pub turns: watch::Sender<TurnView>,
    /// The last sequence written (0: none yet).
    pub sequenced: watch::Receiver<u64>,
    pub handle: tokio::task::JoinHandle<Result<(), StoreError>>,
}

/// Starts the event task for this term.
pub fn spawn(store: Store, guard: LeaderGuard) -> EventTask {
    let (events, received) = mpsc::unbounded_channel();
    let (turns, turn_view) = watch::channel(TurnView::default());
    let (published, sequenced) = watch::channel(0);
    let handle = tokio::spawn(async move {
        let result = run(store, guard, received, turn_view, published).await;
        match &result {
            Err(StoreError::Conflict { .. }) => tracing::debug!("event log: no longer the leader"),
            Err(error) => tracing::warn!(%error, "event log stopped"),
            Ok(()) => {}
        }
        result
    });
    EventTask { events, turns, sequenced, handle }
}

/// Microseconds since the epoch, by this host's clock.
pub fn now_usec() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
}

/// A pending event as the watch showed it.
struct Pending {
    revision: i64,
    event: EventRecord,
}

struct Log {
    store: Store,
    guard: LeaderGuard,
    /// The next sequence to give; `None` after a write whose outcome is unknown.
    next: Option<u64>,
    /// The lowest sequence that may still be stored (trimming starts from it).
    first: u64,
    announced: AnnouncedNodes,
    /// `announced` changed since it was last written.
    announced_changed: bool,
    limit: u32,
}

async fn run(
    store: Store,
    guard: LeaderGuard,
    mut received: mpsc::UnboundedReceiver<EventRecord>,
    mut turns: watch::Receiver<TurnView>,
    published: watch::Sender<u64>,
) -> Result<(), StoreError> {
    let mut log = Log {
        next: None,
        first: 0,
        announced: retry("read the announced nodes", || store.read_announced_nodes()).await?,
        announced_changed: false,
        limit: 10_000,
        store: store.clone(),
        guard,
    };
    log.first = retry("read the first event", || store.first_event_sequence()).await?.unwrap_or(0);
    let mut informer = Informer::start(&store, vec![store.keys().pending_events_prefix()]);
    let mut pending: BTreeMap<String, Pending> = BTreeMap::new();
    let mut synced = false;
    let mut own: Vec<EventRecord> = Vec::new();
    let mut failures: u32 = 0;
    loop {
        // `changed()` marks the value seen; remember that it came.
        let mut turned = false;
        // Events left over from a flush that failed keep their place.
        let left_over = own.len();
        let waiting = !own.is_empty() || (synced && !pending.is_empty());
        if !waiting {
            tokio::select! {
                event = informer.events.recv() => {
                    let Some(event) = event else { return Ok(()) };
                    take_watch_event(&store, &mut pending, &mut synced, event);
                }
                event = received.recv() => {
                    let Some(event) = event else { return Ok(()) };
                    own.push(event);
                }
                changed = turns.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    turned = true;
                }
            }
        }
        // Take in everything queued, so one flush writes a burst in few transactions.
        while let Ok(event) = informer.events.try_recv() {
            take_watch_event(&store, &mut pending, &mut synced, event);
        }
        while let Ok(event) = received.try_recv() {
            own.push(event);
        }
        if turned || turns.has_changed().unwrap_or(false) {
            let turn = turns.borrow_and_update().clone();
            log.limit = turn.limit;
            let changes = node_changes(&mut log.announced, &turn.nodes, now_usec());
            log.announced_changed |= !changes.is_empty();
            // Before the events that came with this turn: the leader sends the turn's
            // view first, and a node is lost before it is fenced.
            own.splice(left_over..left_over, changes);
        }
        if own.is_empty() && (pending.is_empty() || !synced) {
            // A new limit may call for trimming with nothing to write.
            log.trim().await?;
            continue;
        }
        let mut unsynced = BTreeMap::new();
        match log.flush(&mut own, if synced { &mut pending } else { &mut unsynced }).await {
            Ok(Flushed::All) => failures = 0,
            Ok(Flushed::PendingGone) => {
                // A pending event was gone when its turn came (deleted by hand): list
                // them again rather than guess which.
                tracing::warn!("a pending event vanished before it was sequenced; listing them again");
                informer = Informer::start(&store, vec![store.keys().pending_events_prefix()]);
                pending.clear();
                synced = false;
            }
            Err(error @ StoreError::Conflict { .. }) => return Err(error),
            Err(error) => {
                failures = failures.saturating_add(1);
                tracing::warn!(%error, "cannot record events; retrying");
                tokio::time::sleep(Duration::from_millis(100u64.saturating_mul(1 << failures.min(5)))).await;
            }
        }
        if let Some(next) = log.next {
            published.send_if_modified(|last| {
                let changed = *last != next - 1;
                *last = next - 1;
                changed
            });
        }
        log.trim().await?;
    }
}

fn take_watch_event(store: &Store, pending: &mut BTreeMap<String, Pending>, synced: &mut bool, event: Result<WatchEvent, StoreError>) {
    match event {
        Ok(WatchEvent::Restarted { entries, .. }) => {
            *synced = true;
            pending.clear();
            for entry in entries {
                insert_pending(pending, &entry);
            }
        }
        Ok(WatchEvent::Put(entry)) => insert_pending(pending, &entry),
        Ok(WatchEvent::Deleted { key, .. }) => {
            pending.remove(&key);
        }
        Err(error) => tracing::debug!(%error, prefix = %store.keys().pending_events_prefix(), "watch interrupted; resuming"),
    }
}

fn insert_pending(pending: &mut BTreeMap<String, Pending>, entry: &crate::store::watch::Entry) {
    match serde_json::from_slice::<EventRecord>(&entry.value) {
        Ok(event) => {
            pending.insert(entry.key.clone(), Pending { revision: entry.mod_revision, event });
        }
        Err(error) => tracing::warn!(key = %entry.key, %error, "skipping a pending event that does not decode"),
    }
}

enum Flushed {
    All,
    /// A pending key was gone: what came before it is written.
    PendingGone,
}

impl Log {
    /// Writes the leader's events, then the pending ones in the order etcd received
    /// them; what is written leaves `own` and `pending`.
    async fn flush(&mut self, own: &mut Vec<EventRecord>, pending: &mut BTreeMap<String, Pending>) -> Result<Flushed, StoreError> {
        let next = match self.next {
            Some(next) => next,
            None => {
                let next = self.store.last_event_sequence().await? + 1;
                self.next = Some(next);
                next
            }
        };
        let mut order: Vec<(&String, &Pending)> = pending.iter().collect();
        order.sort_by(|(a_key, a), (b_key, b)| a.revision.cmp(&b.revision).then_with(|| a_key.cmp(b_key)));
        let mut batch: Vec<(EventRecord, Option<String>)> = Vec::with_capacity(own.len() + order.len());
        batch.extend(own.iter().cloned().map(|event| (event, None)));
        batch.extend(order.into_iter().map(|(key, entry)| (entry.event.clone(), Some(key.clone()))));
        for (offset, (event, _)) in batch.iter_mut().enumerate() {
            event.sequence = next + offset as u64;
        }
        let announced = self.store.keys().announced_nodes();
        let extra = match serde_json::to_string(&self.announced) {
            Ok(value) if self.announced_changed => vec![(announced, value)],
            Ok(_) => Vec::new(),
            Err(error) => return Err(StoreError::Corrupt { key: announced, reason: format!("encode: {error}") }),
        };
        // The write's outcome is unknown until it answers.
        self.next = None;
        let written = self.store.append_events(&batch, extra, EVENTS_PER_TXN, &self.guard).await?;
        self.next = Some(next + written as u64);
        self.announced_changed = false;
        let own_written = written.min(own.len());
        own.drain(..own_written);
        for (_, key) in batch.iter().take(written) {
            if let Some(key) = key {
                pending.remove(key);
            }
        }
        if let Some((last, _)) = batch.get(written.wrapping_sub(1)).filter(|_| written > 0) {
            tracing::debug!(events = written, last = last.sequence, "events recorded");
        }
        Ok(if written == batch.len() { Flushed::All } else { Flushed::PendingGone })
    }

    /// Deletes the oldest events beyond the limit, in steps of a hundredth of it (one
    /// range deletion, not one per event).
    async fn trim(&mut self) -> Result<(), StoreError> {
        let Some(next) = self.next else { return Ok(()) };
        let keep_from = next.saturating_sub(u64::from(self.limit.max(1)));
        let step = u64::from(self.limit / 100).max(1);
        if keep_from < self.first.saturating_add(step) {
            return Ok(());
        }
        match self.store.trim_events(keep_from, &self.guard).await {
            Ok(()) => {
                self.first = keep_from;
                Ok(())
            }
            Err(error @ StoreError::Conflict { .. }) => Err(error),
            Err(error) => {
                tracing::warn!(%error, "cannot trim the events; trying again later");
                Ok(())
            }
        }
    }
}

/// The node events a decision's view implies: `member` for a node with an agent
/// (joining or online), `lost` for one that was a member and is now offline or
/// unclean. Updates what is announced (written with the events).
pub fn node_changes(announced: &mut AnnouncedNodes, nodes: &BTreeMap<String, NodeLiveness>, now: i64) -> Vec<EventRecord> {
    let mut events = Vec::new();
    for (node, liveness) in nodes {
        let said = announced.nodes.get(node).map(String::as_str);
        let state = match liveness {
            NodeLiveness::Online | NodeLiveness::Pending => "member",
            NodeLiveness::Offline | NodeLiveness::Unclean if said == Some("member") => "lost",
            _ => continue,
        };
        if said == Some(state) {
            continue;
        }
        let mut event = EventRecord::new(EventKind::Node, REPORTER, now, state);
        event.node = Some(node.clone());
        events.push(event);
        announced.nodes.insert(node.clone(), state.to_string());
    }
    // Nodes no longer configured are forgotten (a node configured again later is
    // announced afresh).
    announced.nodes.retain(|node, _| nodes.contains_key(node));
    events
}

/// Retries a read that the task cannot start without, until it works (a leader that
/// cannot reach etcd is deposed soon anyway, and the task with it).
async fn retry<T, F, Fut>(action: &str, mut read: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut failures = 0u32;
    loop {
        match read().await {
            Ok(value) => return Ok(value),
            Err(error) if failures < 50 => {
                failures += 1;
                tracing::warn!(%error, "{action}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// A decision's event: what it changed, in a line.
pub fn decision_event(actions: &[String], input_revision: i64, time_usec: i64) -> EventRecord {
    const SHOWN: usize = 5;
    let mut desc = match actions.len() {
        0 => "no actions".to_string(),
        1 => "1 action: ".to_string(),
        count => format!("{count} actions: "),
    };
    desc.push_str(&actions.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("; "));
    if actions.len() > SHOWN {
        desc.push_str("; …");
    }
    let mut event = EventRecord::new(EventKind::Decision, REPORTER, time_usec, desc);
    event.detail = Some(format!("input revision {input_revision}"));
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(states: &[(&str, NodeLiveness)]) -> BTreeMap<String, NodeLiveness> {
        states.iter().map(|(node, liveness)| (node.to_string(), *liveness)).collect()
    }

    fn said(events: &[EventRecord]) -> Vec<String> {
        events.iter().map(|event| format!("{} {}", event.node.as_deref().unwrap_or("?"), event.desc)).collect()
    }

    #[test]
    fn announces_members_once_and_only_members_as_lost() {
        use NodeLiveness::*;
        let mut announced = AnnouncedNodes::default();
        // A node never seen, or offline without having been a member, is not news.
        let first = node_changes(&mut announced, &nodes(&[("n1", Online), ("n2", Pending), ("n3", Unseen), ("n4", Offline)]), 1);
        assert_eq!(said(&first), ["n1 member", "n2 member"]);
        assert!(first.iter().all(|event| event.kind == EventKind::Node && event.reporter == REPORTER && event.time_usec == 1));
        // Pending to online is the same membership.
        assert!(node_changes(&mut announced, &nodes(&[("n1", Online), ("n2", Online), ("n3", Unseen), ("n4", Offline)]), 2).is_empty());
        let lost = node_changes(&mut announced, &nodes(&[("n1", Unclean), ("n2", Offline), ("n3", Unclean), ("n4", Offline)]), 3);
        assert_eq!(said(&lost), ["n1 lost", "n2 lost"]);
        assert!(node_changes(&mut announced, &nodes(&[("n1", Offline), ("n2", Offline), ("n3", Unclean), ("n4", Offline)]), 4).is_empty());
        let back = node_changes(&mut announced, &nodes(&[("n1", Online), ("n2", Offline)]), 5);
        assert_eq!(said(&back), ["n1 member"]);
        // A node no longer configured is forgotten.
        assert_eq!(announced.nodes.keys().collect::<Vec<_>>(), ["n1", "n2"]);
    }

    #[test]
    fn decision_events_name_the_first_actions() {
        let actions: Vec<String> = (1..=7).map(|n| format!("Start r{n} on n1")).collect();
        let event = decision_event(&actions, 42, 1);
        assert_eq!(event.desc, "7 actions: Start r1 on n1; Start r2 on n1; Start r3 on n1; Start r4 on n1; Start r5 on n1; …");
        assert_eq!(event.detail.as_deref(), Some("input revision 42"));
        assert_eq!(decision_event(&actions[..1], 1, 1).desc, "1 action: Start r1 on n1");
    }
}
