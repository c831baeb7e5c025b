//! The events beside the prefix (`<prefix>.events/`, see `keys`): reading the
//! cluster-wide log, the pending events agents wrote, the alerts' delivery cursors and
//! what the leader last announced of each node; trimming the log. The leader writes
//! through `write_as_leader`, guarded like every leader write; agents write their
//! pending events with their facts through `guarded_writes`.

use std::collections::BTreeMap;

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, SortOrder, SortTarget, Txn, TxnOp};

use super::node::{decode, timeout};
use super::watch::Entry;
use super::{LeaderGuard, Store, StoreError, Undecodable};
use crate::api::records::{AlertCursor, AnnouncedNodes, EventRecord};

/// The log as read at one revision.
#[derive(Debug, Default)]
pub struct EventListing {
    /// The revision of the read (to watch the log from the next).
    pub revision: i64,
    /// Sequenced events in order.
    pub events: Vec<EventRecord>,
    /// Events written but not yet sequenced (no leader, or one just elected), in the
    /// order they were written.
    pub pending: Vec<EventRecord>,
    /// Keys whose value does not decode.
    pub undecodable: Vec<Undecodable>,
}

impl Store {
    /// The highest sequence in the log, 0 when it is empty.
    pub async fn last_event_sequence(&self) -> Result<u64, StoreError> {
        let options = GetOptions::new().with_prefix().with_sort(SortTarget::Key, SortOrder::Descend).with_limit(1).with_keys_only();
        let mut client = self.kv();
        let response = self.metrics.read(timeout("read the last event", client.get(self.keys().event_log_prefix(), Some(options)))).await?;
        Ok(response.kvs().first().and_then(|kv| self.keys().sequence_of_event(&String::from_utf8_lossy(kv.key()))).unwrap_or(0))
    }

    /// The lowest sequence still in the log, `None` when it is empty.
    pub async fn first_event_sequence(&self) -> Result<Option<u64>, StoreError> {
        let options = GetOptions::new().with_prefix().with_sort(SortTarget::Key, SortOrder::Ascend).with_limit(1).with_keys_only();
        let mut client = self.kv();
        let response = self.metrics.read(timeout("read the first event", client.get(self.keys().event_log_prefix(), Some(options)))).await?;
        Ok(response.kvs().first().and_then(|kv| self.keys().sequence_of_event(&String::from_utf8_lossy(kv.key()))))
    }

    /// At most `limit` events after sequence `after`, in order. A value that does not
    /// decode is skipped with a warning (it cannot be delivered either).
    pub async fn read_events(&self, after: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let keys = self.keys();
        let start = keys.event(after.saturating_add(1));
        let end = super::prefix_end(keys.event_log_prefix().as_bytes());
        let options = GetOptions::new().with_range(end).with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        let mut client = self.kv();
        let response = self.metrics.read(timeout("read events", client.get(start, Some(options)))).await?;
        let mut events = Vec::with_capacity(response.kvs().len());
        for kv in response.kvs() {
            let entry = Entry::from_kv(kv);
            match self.decode_event(&entry) {
                Ok(event) => events.push(event),
                Err(error) => tracing::warn!(%error, "skipping an event that does not decode"),
            }
        }
        Ok(events)
    }

    /// The whole log and the pending events, each read at one revision (the log's is
    /// returned), in pages.
    pub async fn list_events(&self) -> Result<EventListing, StoreError> {
        let (revision, entries) = self.list_prefix(&self.keys().event_log_prefix(), None).await?;
        let mut listing = EventListing { revision, ..EventListing::default() };
        for entry in &entries {
            match self.decode_event(entry) {
                Ok(event) => listing.events.push(event),
                Err(error) => listing.undecodable.push(Undecodable { key: entry.key.clone(), reason: error.reason() }),
            }
        }
        let (_, pending) = self.list_prefix(&self.keys().pending_events_prefix(), Some(revision)).await?;
        let mut pending: Vec<(i64, &Entry, EventRecord)> = pending
            .iter()
            .filter_map(|entry| match decode::<EventRecord>(&entry.key, &entry.value) {
                Ok(event) => Some((entry.mod_revision, entry, event)),
                Err(error) => {
                    listing.undecodable.push(Undecodable { key: entry.key.clone(), reason: error.reason() });
                    None
                }
            })
            .collect();
        pending.sort_by(|(a_revision, a, _), (b_revision, b, _)| pending_order((*a_revision, &a.key), (*b_revision, &b.key)));
        listing.pending = pending.into_iter().map(|(_, _, event)| event).collect();
        Ok(listing)
    }

    /// A sequenced event from its log entry: its sequence is its key's.
    pub fn decode_event(&self, entry: &Entry) -> Result<EventRecord, StoreError> {
        let sequence = self
            .keys()
            .sequence_of_event(&entry.key)
            .ok_or_else(|| StoreError::Corrupt { key: entry.key.clone(), reason: "not an event's key".to_string() })?;
        let mut event: EventRecord = decode(&entry.key, &entry.value)?;
        event.sequence = sequence;
        Ok(event)
    }

    /// Deletes every event below sequence `below`, while `guard` holds (the cap on
    /// the log). A failed guard is `Conflict`: deposed.
    pub async fn trim_events(&self, below: u64, guard: &LeaderGuard) -> Result<(), StoreError> {
        let keys = self.keys();
        let options = DeleteOptions::new().with_range(keys.event(below));
        let txn = Txn::new().when([guard.compare()]).and_then([TxnOp::delete(keys.event_log_prefix(), Some(options))]);
        let mut client = self.client();
        let response = self.metrics.write(timeout("trim the events", client.txn(txn))).await?;
        if !response.succeeded() {
            return Err(StoreError::Conflict { objects: vec!["the scheduler's election key".into()] });
        }
        Ok(())
    }

    /// Every `Alert`'s delivery cursor, by alert name. A cursor that does not decode
    /// is left out (delivery starts that alert afresh).
    pub async fn read_alert_cursors(&self) -> Result<BTreeMap<String, AlertCursor>, StoreError> {
        let prefix = self.keys().alert_cursors_prefix();
        let (_, records) = self.read_records::<AlertCursor>(&prefix).await?;
        Ok(records.into_iter().filter_map(|(key, cursor, _)| key.strip_prefix(&prefix).map(|name| (name.to_string(), cursor))).collect())
    }

    /// One `Alert`'s delivery cursor; `None` when there is none, or it does not decode
    /// (delivery starts that alert afresh, with a warning).
    pub async fn read_alert_cursor(&self, alert: &str) -> Result<Option<AlertCursor>, StoreError> {
        let key = self.keys().alert_cursor(alert);
        let Some(value) = self.get_one(&key).await? else { return Ok(None) };
        match decode::<AlertCursor>(&key, value.as_slice()) {
            Ok(cursor) => Ok(Some(cursor)),
            Err(error) => {
                tracing::warn!(%error, alert, "an alert's cursor does not decode; starting the alert afresh");
                Ok(None)
            }
        }
    }

    /// What the leader last announced of each node: empty when nothing was, or when
    /// the stored value does not decode (said once in the log: the leader then
    /// announces every node afresh, rather than stopping the event log).
    pub async fn read_announced_nodes(&self) -> Result<AnnouncedNodes, StoreError> {
        let key = self.keys().announced_nodes();
        let Some(value) = self.get_one(&key).await? else { return Ok(AnnouncedNodes::default()) };
        Ok(decode(&key, value.as_slice()).unwrap_or_else(|error| {
            tracing::warn!(%error, "the announced nodes do not decode; announcing every node afresh");
            AnnouncedNodes::default()
        }))
    }

    /// Events a transaction of `append_events` can hold under the store's operation
    /// limit: each takes a put and a condition, a pending one a delete and a
    /// condition more; one operation is kept for `extra`, one condition for the guard.
    pub fn events_per_txn(&self) -> usize {
        (self.max_txn_ops.saturating_sub(2) / 2).max(1)
    }

    /// Appends `events` to the log, each under its `sequence`: a put conditional on
    /// the log key being absent (a stale sequence never overwrites), its pending key
    /// (if any) deleted in the same transaction and required to exist (so an event is
    /// never sequenced twice), `extra` put with the last batch, all while `guard`
    /// holds; `events_per_txn` events a transaction, in order. Stops at the first
    /// transaction that fails. Returns what was written for sure, and the error (the
    /// outcome of the transaction that failed with it is unknown: it may have landed).
    pub async fn append_events(
        &self,
        events: &[(EventRecord, Option<String>)],
        extra: Vec<(String, String)>,
        guard: &LeaderGuard,
    ) -> (Appended, Result<(), StoreError>) {
        let mut appended = Appended::default();
        let result = self.append_batches(events, extra, guard, &mut appended).await;
        (appended, result)
    }

    async fn append_batches(
        &self,
        events: &[(EventRecord, Option<String>)],
        extra: Vec<(String, String)>,
        guard: &LeaderGuard,
        appended: &mut Appended,
    ) -> Result<(), StoreError> {
        let keys = self.keys();
        let batches: Vec<&[(EventRecord, Option<String>)]> = if events.is_empty() { vec![&[]] } else { events.chunks(self.events_per_txn()).collect() };
        let last = batches.len() - 1;
        let mut extra = Some(extra);
        for (index, batch) in batches.into_iter().enumerate() {
            let mut conditions = vec![guard.compare()];
            let mut operations = Vec::new();
            for (event, pending) in batch {
                let key = keys.event(event.sequence);
                conditions.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
                operations.push(TxnOp::put(key.clone(), super::node::encode(&key, event)?, None));
                if let Some(pending) = pending {
                    conditions.push(Compare::version(pending.clone(), CompareOp::Greater, 0));
                    operations.push(TxnOp::delete(pending.clone(), None));
                }
            }
            let with_extra = index == last && extra.as_ref().is_some_and(|extra| !extra.is_empty());
            if with_extra {
                for (key, value) in extra.take().unwrap_or_default() {
                    operations.push(TxnOp::put(key, value, None));
                }
            }
            if operations.is_empty() {
                return Ok(());
            }
            let txn = Txn::new().when(conditions).and_then(operations);
            let mut client = self.client();
            let response = self.metrics.write(timeout("record events", client.txn(txn))).await?;
            if !response.succeeded() {
                // Which condition failed: the guard (deposed), or a pending key gone
                // or a log key taken.
                let check = Txn::new().when([guard.compare()]);
                let mut client = self.client();
                if !self.metrics.write(timeout("check leadership", client.txn(check))).await?.succeeded() {
                    return Err(StoreError::Conflict { objects: vec!["the scheduler's election key".into()] });
                }
                appended.refused = true;
                return Ok(());
            }
            appended.written += batch.len();
            appended.extra |= with_extra;
        }
        Ok(())
    }
}

/// What `append_events` wrote for sure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Appended {
    /// Events written, the first ones of those given.
    pub written: usize,
    /// Whether `extra` was written.
    pub extra: bool,
    /// A transaction was refused: a pending key was gone, or a log key was taken.
    pub refused: bool,
}

/// The order pending events were written in: by etcd revision, then key (an agent's
/// ids sort in the order it wrote them, several in one transaction sharing a
/// revision). The one order `list_events` shows and the leader sequences.
pub fn pending_order(a: (i64, &str), b: (i64, &str)) -> std::cmp::Ordering {
    a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1))
}
