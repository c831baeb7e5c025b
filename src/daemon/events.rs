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

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::api::records::{AnnouncedNodes, EventKind, EventRecord, FenceAnswerRecord, FenceRequestRecord, FenceResultRecord};
use crate::runtime::Informer;
use crate::scheduler::snapshot::NodeLiveness;
use crate::store::events::pending_order;
use crate::store::watch::WatchEvent;
use crate::store::{Keys, LeaderGuard, Store, StoreError};

pub use crate::runtime::now_usec;

/// Whether a pending event speaks only of what the node of its key may: reported by
/// that node (or by a command, `pacer`, about that node), and about that node unless
/// it is a fencing result (about its target, reported by the executor — which
/// `fencing_event_vouched` then checks against the request). A node writes under its
/// own prefix only; this keeps it from speaking for another.
fn pending_event_agrees(keys: &Keys, key: &str, event: &EventRecord) -> Result<(), String> {
    let Some((node, _)) = Keys::node_and_name(&keys.pending_events_prefix(), key) else {
        return Err("not a pending event's key".to_string());
    };
    if !crate::api::Name::is_valid(node) {
        return Err(format!("its key names an invalid node {node:?}"));
    }
    let about = event.node.as_deref();
    let by_command = event.reporter == "pacer" && about == Some(node);
    if event.reporter != node && !by_command {
        return Err(format!("its reporter {:?} is not its key's node {node:?}", event.reporter));
    }
    if event.kind != EventKind::Fencing && about.is_some_and(|about| about != node) {
        return Err(format!("it is about node {:?}, not its key's node {node:?}", about.unwrap_or_default()));
    }
    if !matches!(event.kind, EventKind::Resource | EventKind::Attribute | EventKind::Fencing) {
        return Err(format!("a {:?} event is the leader's alone", event.kind));
    }
    Ok(())
}

/// Whether a Fencing event node `node` wrote about another node (`event.node`) is one
/// it may write: `node` ran that fencing as the executor its request named. Its
/// result, `fence-results/<node>/<target>` (`result`, written in the same transaction
/// as the event), must be for the event's action and answer, by id, the target's
/// current request naming `node` as executor (`request`) or the answer the leader
/// accepted from `node` (`answer`, once the request is gone). Anything else — a node
/// telling of a fencing it was not asked to run, or a Resource, Attribute or Node
/// event about another node, refused before (`pending_event_agrees`) — is dropped, so
/// it never reaches the log or an alert.
fn fencing_event_vouched(
    node: &str,
    event: &EventRecord,
    result: Option<&FenceResultRecord>,
    request: Option<&FenceRequestRecord>,
    answer: Option<&FenceAnswerRecord>,
    now: i64,
) -> Result<(), String> {
    let target = event.node.as_deref().unwrap_or_default();
    let Some(result) = result.filter(|result| result.by == node && result.target == target) else {
        return Err(format!("{node} has no fencing result for {target}"));
    };
    if event.task.as_deref() != Some(result.action.as_str()) {
        return Err(format!("its action {:?} is not that of {node}'s result for {target} ({:?})", event.task, result.action));
    }
    let asked = request.is_some_and(|request| request.target == target && request.executor == node && request.id == result.request);
    // Once the request is gone, only for a while after the leader accepted the answer:
    // an old result does not vouch for an event written long after.
    let accepted = answer.is_some_and(|answer| {
        answer.result.target == target && answer.result.by == node && answer.result.request == result.request && now - answer.accepted <= ANSWER_VOUCHES_SECS
    });
    if asked || accepted { Ok(()) } else { Err(format!("{node} was not the executor of a request to fence {target}")) }
}

/// How long after the leader accepted an executor's answer that executor's Fencing
/// event about it is still taken (the event may be sequenced after the request is gone).
const ANSWER_VOUCHES_SECS: i64 = 600;

/// Who the leader's own events are reported by.
pub const REPORTER: &str = "scheduler";

/// How long the keys of sequenced pending events are remembered: an agent that
/// retries a write whose first attempt landed (etcd answered too late) puts the same
/// key again, and it is dropped rather than sequenced twice.
const REMEMBERED: Duration = Duration::from_secs(600);

/// An event the leader saw, and the etcd revision of what it saw it in: it is
/// sequenced after the pending events written up to that revision (a decision comes
/// after the failure it reacts to) and before those written later.
#[derive(Clone, Debug)]
pub struct LeaderEvent {
    pub event: EventRecord,
    pub after_revision: i64,
}

impl From<EventRecord> for LeaderEvent {
    /// An event seen now, after everything written so far (a failed delivery).
    fn from(event: EventRecord) -> LeaderEvent {
        LeaderEvent { event, after_revision: i64::MAX }
    }
}

/// What a decision saw that the event task needs: the nodes' liveness (an agent's
/// heartbeat present or not), the cap, and the revision it was taken at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TurnView {
    pub nodes: BTreeMap<String, NodeLiveness>,
    /// `ClusterPolicy.eventLimit`.
    pub limit: u32,
    pub revision: i64,
    /// When the decision began: the time of the node changes it found.
    pub time_usec: i64,
}

/// The running task, and how the rest of the leader talks to it.
pub struct EventTask {
    /// The leader's own events (and failed deliveries).
    pub events: mpsc::UnboundedSender<LeaderEvent>,
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

/// A pending event as the watch showed it.
struct Pending {
    revision: i64,
    event: EventRecord,
}

/// One of the leader's events waiting for its sequence.
struct Own {
    /// Unique in this task: what a flush's outcome refers to.
    id: u64,
    /// Node changes come before the other events of the same revision: they are what
    /// a decision reacted to.
    node_change: bool,
    event: LeaderEvent,
}

/// Where an event of a flush came from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    Own(u64),
    Pending(String),
}

/// A flush whose last transaction's outcome is unknown (etcd did not answer in
/// time): its events from `base` on may or may not be in the log.
struct InDoubt {
    base: u64,
    sources: Vec<Source>,
}

struct Log {
    store: Store,
    guard: LeaderGuard,
    /// The next sequence to give; `None` until read, and after a refusal.
    next: Option<u64>,
    in_doubt: Option<InDoubt>,
    /// The lowest sequence that may still be stored (trimming starts from it).
    first: u64,
    announced: AnnouncedNodes,
    /// `announced` changed since it was last written.
    announced_changed: bool,
    /// `ClusterPolicy.eventLimit`, once a decision has said it (nothing is trimmed
    /// before: a guess could delete what a larger limit keeps).
    limit: Option<u32>,
    /// Pending keys sequenced lately, and when.
    sequenced_keys: HashMap<String, Instant>,
    /// The fencings (executor, target, request id) a node's Fencing event was taken
    /// for: a second event for the same one is a replay, and dropped.
    vouched: std::collections::HashSet<(String, String, i64)>,
    own: Vec<Own>,
    next_id: u64,
}

async fn run(
    store: Store,
    guard: LeaderGuard,
    mut received: mpsc::UnboundedReceiver<LeaderEvent>,
    mut turns: watch::Receiver<TurnView>,
    published: watch::Sender<u64>,
) -> Result<(), StoreError> {
    let mut log = Log {
        next: None,
        in_doubt: None,
        first: retry("read the first event", || store.first_event_sequence()).await.unwrap_or(0),
        announced: retry("read the announced nodes", || store.read_announced_nodes()).await,
        announced_changed: false,
        limit: None,
        sequenced_keys: HashMap::new(),
        vouched: std::collections::HashSet::new(),
        own: Vec::new(),
        next_id: 0,
        store: store.clone(),
        guard,
    };
    let mut informer = Informer::start(&store, vec![store.keys().pending_events_prefix()]);
    let mut pending = PendingView::default();
    let mut failures: u32 = 0;
    loop {
        // `changed()` marks the value seen; remember that it came.
        let mut turned = false;
        // Nothing is written before the pending events are listed: the leader's own
        // take their place among them.
        let waiting = pending.synced && (!log.own.is_empty() || !pending.events.is_empty() || log.in_doubt.is_some());
        if !waiting {
            tokio::select! {
                event = informer.events.recv() => {
                    let Some(event) = event else { return Ok(()) };
                    pending.take(&store, event);
                }
                event = received.recv() => {
                    let Some(event) = event else { return Ok(()) };
                    log.push(event, false);
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
            pending.take(&store, event);
        }
        while let Ok(event) = received.try_recv() {
            log.push(event, false);
        }
        if turned || turns.has_changed().unwrap_or(false) {
            let turn = turns.borrow_and_update().clone();
            log.limit = Some(turn.limit);
            let changes = node_changes(&mut log.announced, &turn.nodes, turn.time_usec);
            log.announced_changed |= !changes.is_empty();
            for event in changes {
                log.push(LeaderEvent { event, after_revision: turn.revision }, true);
            }
        }
        let outcome = if !pending.synced || (log.own.is_empty() && pending.events.is_empty() && log.in_doubt.is_none()) {
            Ok(Flushed::All)
        } else {
            log.flush(&mut pending).await
        };
        match outcome {
            Ok(Flushed::All) => failures = 0,
            Ok(Flushed::Refused) => {
                // A pending event was gone when its turn came (deleted by hand), or a
                // log key was taken: list them again, and read the sequence again,
                // rather than guess.
                tracing::warn!("recording events was refused (a pending event gone, or a sequence taken); listing them again");
                informer = Informer::start(&store, vec![store.keys().pending_events_prefix()]);
                pending = PendingView::default();
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

/// The pending events as the task's watch shows them.
#[derive(Default)]
struct PendingView {
    events: BTreeMap<String, Pending>,
    /// Listed: the watch has shown everything up to `revision`.
    synced: bool,
    /// The latest revision the watch is known to have shown (a lower bound: an
    /// idle prefix shows none of the revisions written elsewhere).
    revision: i64,
}

impl PendingView {
    fn take(&mut self, store: &Store, event: Result<WatchEvent, StoreError>) {
        match event {
            Ok(WatchEvent::Restarted { entries, revision, .. }) => {
                self.synced = true;
                self.events.clear();
                self.revision = self.revision.max(revision);
                for entry in entries {
                    self.insert(store.keys(), &entry);
                }
            }
            Ok(WatchEvent::Put(entry)) => {
                self.revision = self.revision.max(entry.mod_revision);
                self.insert(store.keys(), &entry);
            }
            Ok(WatchEvent::Deleted { key, revision }) => {
                self.revision = self.revision.max(revision);
                self.events.remove(&key);
            }
            Err(error) => tracing::debug!(%error, prefix = %store.keys().pending_events_prefix(), "watch interrupted; resuming"),
        }
    }

    fn insert(&mut self, keys: &Keys, entry: &crate::store::watch::Entry) {
        match serde_json::from_slice::<EventRecord>(&entry.value) {
            Ok(event) => match pending_event_agrees(keys, &entry.key, &event) {
                Ok(()) => {
                    self.events.insert(entry.key.clone(), Pending { revision: entry.mod_revision, event });
                }
                Err(reason) => tracing::warn!(key = %entry.key, %reason, "skipping a pending event that disagrees with its key"),
            },
            Err(error) => tracing::warn!(key = %entry.key, %error, "skipping a pending event that does not decode"),
        }
    }

    /// Makes sure every pending event written up to `revision` is known: the
    /// leader's events seen at `revision` must come after them, and this watch may
    /// lag behind the decision loop's. Reads the prefix when the watch has not shown
    /// that revision yet (rare: the leader's own events are few).
    async fn catch_up(&mut self, store: &Store, revision: i64) -> Result<(), StoreError> {
        if revision <= self.revision {
            return Ok(());
        }
        let (read_at, entries) = store.list_prefix(&store.keys().pending_events_prefix(), None).await?;
        for entry in &entries {
            // A key the watch has not shown yet; one it has keeps its entry.
            if !self.events.contains_key(&entry.key) {
                self.insert(store.keys(), entry);
            }
        }
        self.revision = self.revision.max(read_at);
        Ok(())
    }
}

enum Flushed {
    All,
    /// A transaction was refused (what came before it is written).
    Refused,
}

/// Of a flush's events, the order they are sequenced in: by the revision they were
/// seen at (a pending event's own; a leader's event after everything up to the
/// revision it saw), pending events before the leader's at the same revision, node
/// changes before the leader's other events, then the pending events' write order
/// and the order the leader's were sent in.
fn merge(own: &[Own], pending: &BTreeMap<String, Pending>) -> Vec<(EventRecord, Source)> {
    let mut pending: Vec<(&String, &Pending)> = pending.iter().collect();
    pending.sort_by(|(a_key, a), (b_key, b)| pending_order((a.revision, a_key), (b.revision, b_key)));
    let mut own: Vec<&Own> = own.iter().collect();
    own.sort_by_key(|own| (own.event.after_revision, !own.node_change, own.id));
    let (mut pending, mut own) = (pending.into_iter().peekable(), own.into_iter().peekable());
    let mut merged = Vec::new();
    loop {
        let take_pending = match (pending.peek(), own.peek()) {
            (Some((_, entry)), Some(next)) => entry.revision <= next.event.after_revision,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return merged,
        };
        if take_pending {
            if let Some((key, entry)) = pending.next() {
                merged.push((entry.event.clone(), Source::Pending(key.clone())));
            }
        } else if let Some(next) = own.next() {
            merged.push((next.event.event.clone(), Source::Own(next.id)));
        }
    }
}

impl Log {
    fn push(&mut self, event: LeaderEvent, node_change: bool) {
        self.own.push(Own { id: self.next_id, node_change, event });
        self.next_id += 1;
    }

    /// Takes the events of a flush out of what waits: written, they are done.
    fn written(&mut self, sources: &[Source], pending: &mut PendingView) {
        let now = Instant::now();
        for source in sources {
            match source {
                Source::Own(id) => self.own.retain(|own| own.id != *id),
                Source::Pending(key) => {
                    pending.events.remove(key);
                    self.sequenced_keys.insert(key.clone(), now);
                }
            }
        }
    }

    /// Drops (deletes, with a warning naming the node) every pending Fencing event a
    /// node wrote about another that `fencing_event_vouched` does not vouch for, reading
    /// the fencing records it checks against (such events are few: one per fencing).
    async fn drop_unvouched_fencing(&mut self, pending: &mut PendingView) -> Result<(), StoreError> {
        let keys = self.store.keys().clone();
        let mut dropped = Vec::new();
        for (key, entry) in &pending.events {
            let Some((node, _)) = Keys::node_and_name(&keys.pending_events_prefix(), key) else { continue };
            let event = &entry.event;
            if event.kind != EventKind::Fencing {
                continue;
            }
            // A node's Fencing event names the node fenced.
            let Some(target) = event.node.as_deref() else {
                tracing::warn!(%node, %key, desc = %event.desc, "dropping a Fencing event that names no node");
                dropped.push((key.clone(), None));
                continue;
            };
            if target == node || event.reporter != node {
                continue;
            }
            let result = self.read_one::<FenceResultRecord>(&keys.fence_result(node, target)).await?;
            let request = self.read_one::<FenceRequestRecord>(&keys.fence_request(target)).await?;
            let answer = self.read_one::<FenceAnswerRecord>(&keys.fence_answer(target)).await?;
            let vouched = fencing_event_vouched(node, event, result.as_ref(), request.as_ref(), answer.as_ref(), crate::ops::now_secs()).and_then(|()| {
                let fencing = (node.to_string(), target.to_string(), result.as_ref().map_or(0, |result| result.request));
                if self.vouched.insert(fencing) { Ok(()) } else { Err(format!("{node} told of this fencing of {target} already")) }
            });
            if let Err(reason) = vouched {
                tracing::warn!(%node, %key, %reason, desc = %event.desc, "dropping a Fencing event a node wrote about another node");
                dropped.push((key.clone(), None));
            }
        }
        if !dropped.is_empty() {
            self.store.write_as_leader("drop unvouched fencing events", dropped.clone(), &self.guard).await?;
            for (key, _) in &dropped {
                pending.events.remove(key);
            }
        }
        Ok(())
    }

    /// The record stored under exactly `key`, if any that decodes.
    async fn read_one<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let (_, records) = self.store.read_records::<T>(key).await?;
        Ok(records.into_iter().find(|(found, _, _)| found == key).map(|(_, record, _)| record))
    }

    /// Writes what waits in one sequence: the events the leader saw, and the pending
    /// ones, merged (`merge`).
    async fn flush(&mut self, pending: &mut PendingView) -> Result<Flushed, StoreError> {
        // A flush whose outcome was unknown: what of it is in the log is counted from
        // the last sequence (this task is the log's only writer, and its
        // transactions land whole and in order).
        if let Some(doubt) = self.in_doubt.take() {
            let last = match self.store.last_event_sequence().await {
                Ok(last) => last,
                Err(error) => {
                    self.in_doubt = Some(doubt);
                    return Err(error);
                }
            };
            let landed = usize::try_from((last + 1).saturating_sub(doubt.base)).unwrap_or(usize::MAX).min(doubt.sources.len());
            self.written(&doubt.sources[..landed], pending);
            self.next = Some(last + 1);
        }
        // Pending events put again after they were sequenced (an agent retrying a
        // write that had landed) are dropped, not sequenced twice.
        let now = Instant::now();
        self.sequenced_keys.retain(|_, at| now.duration_since(*at) < REMEMBERED);
        if let Some(seen_at) = self.own.iter().map(|own| own.event.after_revision).filter(|revision| *revision != i64::MAX).max() {
            pending.catch_up(&self.store, seen_at).await?;
        }
        let repeated: Vec<(String, Option<String>)> =
            pending.events.keys().filter(|key| self.sequenced_keys.contains_key(*key)).map(|key| (key.clone(), None)).collect();
        if !repeated.is_empty() {
            tracing::debug!(events = repeated.len(), "dropping pending events already sequenced");
            self.store.write_as_leader("drop repeated events", repeated.clone(), &self.guard).await?;
            for (key, _) in &repeated {
                pending.events.remove(key);
            }
        }
        self.drop_unvouched_fencing(pending).await?;
        let next = match self.next {
            Some(next) => next,
            None => {
                let next = self.store.last_event_sequence().await? + 1;
                self.next = Some(next);
                next
            }
        };
        let mut batch = merge(&self.own, &pending.events);
        for (offset, (event, _)) in batch.iter_mut().enumerate() {
            event.sequence = next + offset as u64;
        }
        let key = self.store.keys().announced_nodes();
        let extra = match serde_json::to_string(&self.announced) {
            Ok(value) if self.announced_changed => vec![(key, value)],
            Ok(_) => Vec::new(),
            Err(error) => return Err(StoreError::Corrupt { key, reason: format!("encode: {error}") }),
        };
        let (events, sources): (Vec<(EventRecord, Option<String>)>, Vec<Source>) = batch
            .into_iter()
            .map(|(event, source)| {
                let key = match &source {
                    Source::Pending(key) => Some(key.clone()),
                    Source::Own(_) => None,
                };
                ((event, key), source)
            })
            .unzip();
        let (appended, result) = self.store.append_events(&events, extra, &self.guard).await;
        self.written(&sources[..appended.written], pending);
        if appended.extra {
            self.announced_changed = false;
        }
        if let Some((last, _)) = events.get(appended.written.wrapping_sub(1)).filter(|_| appended.written > 0) {
            tracing::debug!(events = appended.written, last = last.sequence, "events recorded");
        }
        let next = next + appended.written as u64;
        match result {
            Ok(()) if appended.refused => {
                self.next = None;
                Ok(Flushed::Refused)
            }
            Ok(()) => {
                self.next = Some(next);
                Ok(Flushed::All)
            }
            Err(error @ StoreError::Conflict { .. }) => Err(error),
            Err(error) => {
                self.next = None;
                self.in_doubt = Some(InDoubt { base: next, sources: sources[appended.written..].to_vec() });
                Err(error)
            }
        }
    }

    /// Deletes the oldest events beyond the limit, in steps of a hundredth of it (one
    /// range deletion, not one per event).
    async fn trim(&mut self) -> Result<(), StoreError> {
        let (Some(next), Some(limit)) = (self.next, self.limit) else { return Ok(()) };
        let keep_from = next.saturating_sub(u64::from(limit.max(1)));
        let step = u64::from(limit / 100).max(1);
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

/// Retries a read the task cannot start without until it works: the task is aborted
/// when its leader stops leading, so waiting out etcd is all it can do.
async fn retry<T, F, Fut>(action: &str, mut read: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut failures = 0u32;
    loop {
        match read().await {
            Ok(value) => return value,
            Err(error) => {
                failures = failures.saturating_add(1);
                tracing::warn!(%error, "{action}; retrying");
                tokio::time::sleep(Duration::from_millis(200u64.saturating_mul(u64::from(failures.min(10))))).await;
            }
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
    fn a_pending_event_speaks_only_for_the_node_of_its_key() {
        let keys = Keys::new("/pacer");
        let key = |node: &str| keys.pending_event(node, "0001");
        let resource = |reporter: &str, node: &str| {
            let mut event = EventRecord::new(EventKind::Resource, reporter, 0, "ok");
            event.node = Some(node.to_string());
            event
        };
        assert!(pending_event_agrees(&keys, &key("n1"), &resource("n1", "n1")).is_ok());
        // n2 writes, under its own prefix, an event of n1's; or under n1's.
        assert!(pending_event_agrees(&keys, &key("n2"), &resource("n1", "n1")).is_err());
        assert!(pending_event_agrees(&keys, &key("n2"), &resource("n2", "n1")).is_err());
        // A fencing result is about its target, reported by its executor.
        let mut fencing = EventRecord::new(EventKind::Fencing, "n2", 0, "Operation reboot of n1 by n2: OK");
        fencing.node = Some("n1".into());
        assert!(pending_event_agrees(&keys, &key("n2"), &fencing).is_ok());
        // `pacer fence confirm`'s event, under the target's key.
        fencing.reporter = "pacer".into();
        assert!(pending_event_agrees(&keys, &key("n1"), &fencing).is_ok());
        assert!(pending_event_agrees(&keys, &key("n2"), &fencing).is_err());
        // The leader's kinds are never a node's.
        let mut lost = EventRecord::new(EventKind::Node, "n2", 0, "lost");
        lost.node = Some("n2".into());
        assert!(pending_event_agrees(&keys, &key("n2"), &lost).is_err());
        assert!(pending_event_agrees(&keys, &keys.pending_event("-x", "1"), &resource("-x", "-x")).is_err());
    }

    #[test]
    fn a_fencing_event_about_another_node_needs_its_writer_to_be_the_executor() {
        let mut event = EventRecord::new(EventKind::Fencing, "n2", 0, "Operation reboot of n1 by n2: OK");
        event.node = Some("n1".into());
        event.task = Some("reboot".into());
        let result = |by: &str, request: i64| FenceResultRecord {
            request,
            target: "n1".into(),
            action: "reboot".into(),
            succeeded: true,
            by: by.into(),
            finished: 0,
            attempts: Vec::new(),
        };
        let request = |executor: &str| FenceRequestRecord {
            id: 7,
            target: "n1".into(),
            action: "reboot".into(),
            reason: "lost".into(),
            executor: executor.into(),
            requested: 0,
            lease: None,
            devices: Vec::new(),
        };
        let answer = |by: &str| FenceAnswerRecord { result: result(by, 7), accepted: 1, lease: None, fenced_revision: None };
        // The executor the request named, with its result for that request.
        assert!(fencing_event_vouched("n2", &event, Some(&result("n2", 7)), Some(&request("n2")), None, 100).is_ok());
        // Once the request is gone, the answer the leader accepted from it.
        assert!(fencing_event_vouched("n2", &event, Some(&result("n2", 7)), None, Some(&answer("n2")), 100).is_ok());
        // A node that was not asked, with or without a result of its own.
        assert!(fencing_event_vouched("n2", &event, Some(&result("n2", 7)), Some(&request("n3")), Some(&answer("n3")), 100).is_err());
        assert!(fencing_event_vouched("n2", &event, None, Some(&request("n2")), None, 100).is_err());
        // A result for another request, or nothing asked at all.
        assert!(fencing_event_vouched("n2", &event, Some(&result("n2", 6)), Some(&request("n2")), None, 100).is_err());
        assert!(fencing_event_vouched("n2", &event, Some(&result("n2", 7)), None, None, 100).is_err());
        // An answer accepted long ago vouches for no new event.
        assert!(fencing_event_vouched("n2", &event, Some(&result("n2", 7)), None, Some(&answer("n2")), 1 + 601).is_err());
        // Another action than its result's.
        event.task = Some("off".into());
        assert!(fencing_event_vouched("n2", &event, Some(&result("n2", 7)), Some(&request("n2")), None, 100).is_err());
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
    fn the_leaders_events_follow_the_pending_events_they_saw() {
        let event = |desc: &str| EventRecord::new(EventKind::Resource, "n1", 0, desc);
        let pending: BTreeMap<String, Pending> =
            [("p/n1/02", 10, "failed at 10"), ("p/n2/01", 12, "started at 12"), ("p/n1/01", 10, "earlier key at 10"), ("p/n1/03", 20, "at 20")]
                .into_iter()
                .map(|(key, revision, desc)| (key.to_string(), Pending { revision, event: event(desc) }))
                .collect();
        let own =
            |id: u64, after_revision: i64, node_change: bool, desc: &str| Own { id, node_change, event: LeaderEvent { event: event(desc), after_revision } };
        let own = vec![
            own(0, 12, false, "fencing asked at 12"),
            own(1, i64::MAX, false, "delivery failed"),
            own(2, 12, true, "node lost at 12"),
            own(3, 10, false, "decided at 10"),
        ];
        let order: Vec<String> = merge(&own, &pending).into_iter().map(|(event, _)| event.desc).collect();
        assert_eq!(
            order,
            ["earlier key at 10", "failed at 10", "decided at 10", "started at 12", "node lost at 12", "fencing asked at 12", "at 20", "delivery failed"]
        );
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
