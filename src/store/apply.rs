//! All-or-nothing writes of desired objects, of any size.
//!
//! etcd caps one transaction at 128 operations (and ~1.5 MiB) by default, yet an
//! apply of 10,000 objects must land entirely or not at all, and no reader may ever
//! see half of it. Two paths, one guard:
//!
//! - **Small** (fits in one txn): one transaction that compares the revision of
//!   `spec/version` with the listing's, writes the objects and bumps it.
//! - **Large**: the operations are staged as chunks under `intents/<id>/` (invisible
//!   to readers), then one transaction, guarded like the small path, puts
//!   `intents/<id>/commit`: the point of no return. The operations are then rolled
//!   forward in batches, each guarded by "the commit key still exists", and a final
//!   txn deletes the intent and bumps the spec version again. If the writer dies after
//!   committing, whoever lists next (`Store::list_objects`) finishes the roll-forward;
//!   readers never build on a listing while a committed intent is pending.
//!
//! Optimistic concurrency: every write compares the spec version, so a concurrent
//! change anywhere in the spec makes the write fail. The apply then re-reads: if any
//! object it writes changed, it stops with `Conflict` (re-applying blindly would
//! lose the other write); otherwise it validates and plans again on the new state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use super::{LeaderGuard, Listing, MAX_SPEC_BYTES, Store, StoreError, Undecodable};
use crate::api::manifest::{Diagnostic, Loaded, Manifest, check_change};
use crate::api::path::FieldPath;
use crate::api::validate::cascade;
use crate::api::{Object, ObjectKey};

/// The label that ties objects to the apply set they were applied from (`--applyset`);
/// `--prune` deletes members of the set that the manifests no longer contain.
pub const APPLYSET_LABEL: &str = "applyset.pacer.io/part-of";

/// Uncommitted intents older than this were abandoned by a crashed writer.
const ABANDONED_INTENT_MILLIS: u128 = 60 * 60 * 1000;

/// How many times an apply re-plans after losing a race with an unrelated change.
const MAX_ATTEMPTS: usize = 10;

/// What happens to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Created,
    Configured,
    Unchanged,
    Deleted,
    Pruned,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Configured => "configured",
            Change::Unchanged => "unchanged",
            Change::Deleted => "deleted",
            Change::Pruned => "pruned",
        }
    }

    pub fn writes(self) -> bool {
        self != Change::Unchanged
    }
}

/// One object's fate, with its stored form before and after.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedObject {
    pub key: ObjectKey,
    pub change: Change,
    pub before: Option<Object>,
    pub after: Option<Object>,
    /// The mod revision the object had when read (0 if absent).
    pub read_revision: i64,
}

/// What an apply asks for.
#[derive(Debug, Default)]
pub struct ApplyRequest {
    /// Objects to create or update, as read from manifests.
    pub loaded: Loaded,
    /// Objects to delete (`pacer delete`).
    pub delete: Vec<ObjectKey>,
    /// Label applied objects with this apply set.
    pub applyset: Option<String>,
    /// Delete members of the apply set that `loaded` does not contain.
    pub prune: bool,
    /// Delete dependents of deleted objects instead of refusing.
    pub cascade: bool,
    /// Validate against the store and plan, but write nothing.
    pub dry_run: bool,
    /// Objects that must still have this mod revision (0: must be absent) for the
    /// change to go ahead, else `Conflict`: what a verb or the leader decided on what
    /// it read (a deletion included) never lands on an object changed since.
    pub expect_revisions: BTreeMap<ObjectKey, i64>,
    /// A change the scheduler leader makes (deleting constraints that expired or did
    /// their work): its transaction also requires the election key still to be held by
    /// this guard's lease, so a deposed leader's change fails with `Conflict`.
    pub leader: Option<LeaderGuard>,
}

/// The result of an apply.
#[derive(Debug)]
pub enum ApplyOutcome {
    /// The change was refused; nothing was written.
    Invalid(Vec<Diagnostic>),
    /// The plan, written unless it was a dry run.
    Planned(ApplyReport),
}

#[derive(Debug)]
pub struct ApplyReport {
    pub objects: Vec<PlannedObject>,
    /// The etcd revision the change landed at; `None` for a dry run or no change.
    pub revision: Option<i64>,
    pub attempts: usize,
}

impl ApplyReport {
    pub fn changed(&self) -> bool {
        self.objects.iter().any(|planned| planned.change.writes())
    }
}

fn rfc3339_now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// The value of `spec/version` written with a spec change: which write it was
/// (`direct`, or a large apply's `commit`/`finish`) and when, in seconds since the epoch
/// by the writer's clock — the configuration's last change (Pacemaker's CIB
/// `cib-last-written`, exported as `ha_cluster_pacemaker_config_last_change`). Readers
/// compare the key's revision, never this value.
fn spec_version_value(change: &str) -> String {
    let time = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
    serde_json::json!({ "change": change, "time": time }).to_string()
}

/// Whether a value of `spec/version` is a large apply's commit: its objects are
/// being rolled forward, and the spec is whole again at its `finish`. A value that
/// does not say (written by hand) is taken as whole.
pub fn spec_version_is_commit(value: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(value)
        .ok()
        .and_then(|value| value.get("change")?.as_str().map(|change| change.starts_with("commit ")))
        .unwrap_or(false)
}

/// When the spec last changed, from the value of `spec/version` (`None` for a
/// value written before it said, or by hand).
pub fn spec_changed_at(value: &[u8]) -> Option<i64> {
    serde_json::from_slice::<serde_json::Value>(value).ok()?.get("time")?.as_i64()
}

fn millis_now() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_millis()).unwrap_or(0)
}

/// Objects an apply may create at once without two getting one sequence.
const SEQUENCE_POSITIONS: i64 = 1 << 24;

/// The definition order of an object created by an apply planned on a listing at
/// `revision`, at `position` among its objects. An apply that lands was planned on a
/// listing no other landed apply was planned on (every spec write compares the spec
/// version, so of two applies planned at one revision only the first lands and the
/// second plans again at a later one): sequences grow from apply to apply.
fn creation_sequence(revision: i64, position: usize) -> i64 {
    let position = i64::try_from(position).unwrap_or(i64::MAX).min(SEQUENCE_POSITIONS - 1);
    revision.saturating_mul(SEQUENCE_POSITIONS).saturating_add(position)
}

/// Plans every object's change. Pure: `now` and `new_uid` stand for the clock and
/// randomness.
///
/// Unchanged objects (same spec, labels and annotations) are not rewritten; a
/// changed spec bumps `generation`, changed labels or annotations alone do not.
pub fn plan_changes(
    listing: &Listing,
    desired: &[Object],
    deleted: &BTreeMap<ObjectKey, Change>,
    applyset: Option<&str>,
    now: &str,
    new_uid: &mut dyn FnMut() -> String,
) -> Vec<PlannedObject> {
    let mut planned = Vec::new();
    for (position, incoming) in desired.iter().enumerate() {
        let key = incoming.key();
        let stored = listing.objects.get(&key);
        let mut after = incoming.clone();
        if let Some(applyset) = applyset {
            after.metadata.labels.insert(APPLYSET_LABEL.to_string(), applyset.to_string());
        }
        after.metadata.resource_version = None;
        let (change, before) = match stored {
            None => {
                after.metadata.generation = Some(1);
                after.metadata.uid = Some(new_uid());
                after.metadata.creation_timestamp = Some(now.to_string());
                after.metadata.creation_sequence = Some(creation_sequence(listing.revision, position));
                (Change::Created, None)
            }
            Some(stored) => {
                let before: &Object = &stored.object;
                after.metadata.uid = before.metadata.uid.clone();
                after.metadata.creation_timestamp = before.metadata.creation_timestamp.clone();
                after.metadata.creation_sequence = before.metadata.creation_sequence;
                let generation = before.metadata.generation.unwrap_or(1);
                let spec_changed = before.spec.to_value() != after.spec.to_value();
                after.metadata.generation = Some(if spec_changed { generation + 1 } else { generation });
                let meta_changed = before.metadata.labels != after.metadata.labels || before.metadata.annotations != after.metadata.annotations;
                let change = if spec_changed || meta_changed { Change::Configured } else { Change::Unchanged };
                (change, Some(before.clone()))
            }
        };
        if change == Change::Unchanged {
            after = before.clone().unwrap_or(after);
        }
        let read_revision = stored.map(|stored| stored.mod_revision).unwrap_or(0);
        planned.push(PlannedObject { key, change, before, after: Some(after), read_revision });
    }
    for (key, change) in deleted {
        if let Some(stored) = listing.objects.get(key) {
            planned.push(PlannedObject {
                key: key.clone(),
                change: *change,
                before: Some((*stored.object).clone()),
                after: None,
                read_revision: stored.mod_revision,
            });
        }
    }
    planned
}

/// Objects whose stored `resourceVersion` is not the one the manifest names.
fn precondition_failures(listing: &Listing, desired: &[Object]) -> Vec<String> {
    desired
        .iter()
        .filter_map(|object| {
            let wanted = object.metadata.resource_version.as_deref()?;
            let actual = listing.objects.get(&object.key()).map(|stored| stored.mod_revision.to_string());
            (actual.as_deref() != Some(wanted))
                .then(|| format!("{} (resourceVersion {wanted} given, {} stored)", object.key(), actual.as_deref().unwrap_or("none")))
        })
        .collect()
}

/// Objects not at the mod revision `expected` names for them (0: absent).
fn expected_revision_failures(listing: &Listing, expected: &BTreeMap<ObjectKey, i64>) -> Vec<String> {
    expected
        .iter()
        .filter_map(|(key, wanted)| {
            let actual = listing.objects.get(key).map_or(0, |stored| stored.mod_revision);
            (actual != *wanted).then(|| format!("{key} (revision {wanted} read, {actual} stored)"))
        })
        .collect()
}

/// The spec's size after `planned`, if that is more than `limit` and more than
/// before: a diagnostic on the incoming object that grows it most (at its manifest's
/// position), or on the change itself when no incoming object grows. Pure. A change
/// that does not grow the spec is never refused, so one that is over the limit
/// already (stored by an older version) can still be shrunk.
pub fn check_spec_size(listing: &Listing, planned: &[PlannedObject], manifests: &[Manifest], limit: usize) -> Option<Diagnostic> {
    let encoded = |object: &Object| Store::encode_object(object).len();
    // What etcd holds now, as it holds it: not encoded again (20 ms of each apply on
    // 10,000 objects).
    let stored = |key: &ObjectKey| listing.stored_bytes.get(key).copied().unwrap_or(0);
    let touched: BTreeSet<&ObjectKey> = planned.iter().map(|p| &p.key).collect();
    let untouched: usize = listing.objects.keys().filter(|key| !touched.contains(key)).map(stored).sum();
    let mut before = untouched;
    let mut after = untouched;
    let mut growth: BTreeMap<&ObjectKey, usize> = BTreeMap::new();
    for p in planned {
        let was = stored(&p.key);
        let will = if p.change.writes() { p.after.as_ref().map_or(0, encoded) } else { was };
        before += was;
        after += will;
        growth.insert(&p.key, will.saturating_sub(was));
    }
    if after <= limit || after <= before {
        return None;
    }
    let message = format!("the spec would be {after} bytes after this change, more than the limit of {limit}");
    let culprit = manifests
        .iter()
        .filter_map(|manifest| {
            let key = manifest.object.key();
            growth.get(&key).filter(|grown| **grown > 0).map(|grown| (*grown, key, manifest))
        })
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(&a.1)));
    Some(match culprit {
        Some((grown, key, manifest)) => {
            manifest.origin.diagnostic(Some(key.to_string()), FieldPath::root(), format!("{message}; this object adds {grown} bytes"))
        }
        None => Diagnostic::stored(None, None, message),
    })
}

/// Validates, plans and writes a change, all or nothing.
pub async fn apply(store: &Store, request: &ApplyRequest) -> Result<ApplyOutcome, StoreError> {
    Ok(apply_listed(store, request).await?.0)
}

/// `apply`, also returning the stored keys it skipped because they do not decode
/// (`Listing::undecodable` of the listing the change was planned on), for a caller
/// that shows them.
pub async fn apply_listed(store: &Store, request: &ApplyRequest) -> Result<(ApplyOutcome, Vec<Undecodable>), StoreError> {
    let mut first_read: BTreeMap<ObjectKey, i64> = BTreeMap::new();
    for attempt in 1..=MAX_ATTEMPTS {
        let listing = store.list_objects().await?;
        // On a retry, an object this change writes that moved since the first read
        // was changed by someone else: stop rather than overwrite it.
        if attempt > 1 {
            let moved: Vec<String> = first_read
                .iter()
                .filter(|(key, revision)| listing.objects.get(*key).map(|stored| stored.mod_revision).unwrap_or(0) != **revision)
                .map(|(key, _)| key.to_string())
                .collect();
            if !moved.is_empty() {
                return Err(StoreError::Conflict { objects: moved });
            }
        }
        let mut failures = precondition_failures(&listing, &request.loaded.manifests.iter().map(|m| m.object.clone()).collect::<Vec<_>>());
        failures.extend(expected_revision_failures(&listing, &request.expect_revisions));
        if !failures.is_empty() {
            return Err(StoreError::Conflict { objects: failures });
        }
        let (cascade_updates, deleted, mut diagnostics) = resolve_deletions(&listing, request);
        let deleted_keys: BTreeSet<ObjectKey> = deleted.keys().cloned().collect();
        let checked = check_change(&listing.object_set(), &request.loaded.manifests, &cascade_updates, &deleted_keys, &request.loaded.broken);
        diagnostics.extend(request.loaded.diagnostics.iter().cloned());
        diagnostics.extend(checked.diagnostics);
        if !diagnostics.is_empty() {
            diagnostics.sort();
            diagnostics.dedup();
            return Ok((ApplyOutcome::Invalid(diagnostics), listing.undecodable));
        }
        let mut all_desired: Vec<Object> = request.loaded.manifests.iter().map(|m| m.object.clone()).collect();
        all_desired.extend(cascade_updates);
        let mut new_uid = || uuid::Uuid::new_v4().to_string();
        let planned = plan_changes(&listing, &all_desired, &deleted, request.applyset.as_deref(), &rfc3339_now(), &mut new_uid);
        if let Some(diagnostic) = check_spec_size(&listing, &planned, &request.loaded.manifests, MAX_SPEC_BYTES) {
            return Ok((ApplyOutcome::Invalid(vec![diagnostic]), listing.undecodable));
        }
        if attempt == 1 {
            first_read = planned.iter().filter(|p| p.change.writes()).map(|p| (p.key.clone(), p.read_revision)).collect();
        }
        let writes: Vec<WriteOp> = planned
            .iter()
            .filter(|p| p.change.writes())
            .map(|p| match &p.after {
                Some(object) => WriteOp { key: store.keys.object(&p.key), value: Some(Store::encode_object(object)) },
                None => WriteOp { key: store.keys.object(&p.key), value: None },
            })
            .collect();
        if request.dry_run || writes.is_empty() {
            return Ok((ApplyOutcome::Planned(ApplyReport { objects: planned, revision: None, attempts: attempt }), listing.undecodable));
        }
        match write(store, listing.spec_version, writes, request.leader.as_ref()).await? {
            Some(revision) => {
                let report = ApplyReport { objects: planned, revision: Some(revision), attempts: attempt };
                return Ok((ApplyOutcome::Planned(report), listing.undecodable));
            }
            None => {
                if let Some(guard) = &request.leader
                    && store.leader_term().await? != Some(guard.term())
                {
                    return Err(StoreError::Conflict { objects: vec!["the scheduler's election key".into()] });
                }
                tracing::debug!(attempt, "spec changed while applying; re-reading");
            }
        }
    }
    Err(StoreError::Contended { attempts: MAX_ATTEMPTS })
}

/// Works out what to delete (explicit, pruned, cascaded) and which objects cascading
/// rewrites. Returns the rewritten objects, the deletions and problems found.
fn resolve_deletions(listing: &Listing, request: &ApplyRequest) -> (Vec<Object>, BTreeMap<ObjectKey, Change>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut deleted: BTreeMap<ObjectKey, Change> = BTreeMap::new();
    for key in &request.delete {
        if listing.objects.contains_key(key) {
            deleted.insert(key.clone(), Change::Deleted);
        } else {
            diagnostics.push(Diagnostic::stored(Some(key.to_string()), None, "not found"));
        }
    }
    if request.prune
        && let Some(applyset) = &request.applyset
    {
        let incoming: BTreeSet<ObjectKey> = request.loaded.manifests.iter().map(|m| m.object.key()).collect();
        for (key, stored) in &listing.objects {
            let member = stored.object.metadata.labels.get(APPLYSET_LABEL) == Some(applyset);
            if member && !incoming.contains(key) {
                deleted.insert(key.clone(), Change::Pruned);
            }
        }
    }
    let mut updated = Vec::new();
    if request.cascade && !deleted.is_empty() {
        let requested: BTreeSet<ObjectKey> = deleted.keys().cloned().collect();
        let result = cascade(&listing.object_set(), &requested);
        for key in result.deleted {
            deleted.entry(key).or_insert(Change::Deleted);
        }
        updated = result.updated;
    }
    (updated, deleted, diagnostics)
}

/// One put (with a value) or delete (without).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WriteOp {
    pub key: String,
    pub value: Option<String>,
}

impl WriteOp {
    fn bytes(&self) -> usize {
        // Key, value and protobuf framing.
        self.key.len() + self.value.as_ref().map_or(0, String::len) + 16
    }

    fn to_txn_op(&self) -> TxnOp {
        match &self.value {
            Some(value) => TxnOp::put(self.key.as_str(), value.as_str(), None),
            None => TxnOp::delete(self.key.as_str(), None),
        }
    }
}

/// Splits operations into batches of at most `max_ops` operations and `max_bytes`.
pub fn batches(ops: &[WriteOp], max_ops: usize, max_bytes: usize) -> Vec<&[WriteOp]> {
    let mut result = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (index, op) in ops.iter().enumerate() {
        let full = index - start >= max_ops || (index > start && bytes + op.bytes() > max_bytes);
        if full {
            result.push(&ops[start..index]);
            start = index;
            bytes = 0;
        }
        bytes += op.bytes();
    }
    if start < ops.len() {
        result.push(&ops[start..]);
    }
    result
}

/// Writes `ops` if the spec version is still `spec_version` (and, for a leader's
/// change, the election key still `leader`'s). `Ok(None)` when it was not (someone
/// else wrote first).
async fn write(store: &Store, spec_version: i64, ops: Vec<WriteOp>, leader: Option<&LeaderGuard>) -> Result<Option<i64>, StoreError> {
    let total_bytes: usize = ops.iter().map(WriteOp::bytes).sum();
    let version_key = store.keys.spec_version();
    let mut guard = vec![Compare::mod_revision(version_key.as_str(), CompareOp::Equal, spec_version)];
    guard.extend(leader.map(LeaderGuard::compare));
    let mut client = store.client();
    // One op of the budget goes to bumping the spec version.
    if ops.len() < store.max_txn_ops && total_bytes <= store.max_txn_bytes {
        let mut txn_ops: Vec<TxnOp> = ops.iter().map(WriteOp::to_txn_op).collect();
        txn_ops.push(TxnOp::put(version_key.as_str(), spec_version_value("direct"), None));
        let response = client.txn(Txn::new().when(guard).and_then(txn_ops)).await.map_err(StoreError::etcd("write objects"))?;
        let revision = response.header().map(|header| header.revision());
        return Ok(if response.succeeded() { revision } else { None });
    }
    collect_abandoned_intents(store).await?;
    let id = format!("{:013}-{}", millis_now(), uuid::Uuid::new_v4().simple());
    let chunks = batches(&ops, usize::MAX, store.max_txn_bytes);
    for (index, chunk) in chunks.iter().enumerate() {
        let encoded =
            serde_json::to_string(chunk).map_err(|error| StoreError::Corrupt { key: store.keys.intent_chunk(&id, index), reason: error.to_string() })?;
        if let Err(error) = client.put(store.keys.intent_chunk(&id, index), encoded, None).await {
            discard_intent(store, &id).await;
            return Err(StoreError::Etcd { action: "stage apply".into(), source: error });
        }
    }
    let commit = IntentCommit { chunks: chunks.len(), operations: ops.len() };
    let commit_value = serde_json::to_string(&commit).unwrap_or_default();
    let response = client
        .txn(Txn::new().when(guard).and_then([
            TxnOp::put(store.keys.intent_commit(&id), commit_value, None),
            TxnOp::put(version_key.as_str(), spec_version_value(&format!("commit {id}")), None),
        ]))
        .await;
    match response {
        Ok(response) if response.succeeded() => {}
        Ok(_) => {
            discard_intent(store, &id).await;
            return Ok(None);
        }
        // The commit may or may not have landed; roll_forward finds out and finishes
        // it if it did.
        Err(error) => {
            tracing::warn!(intent = %id, %error, "commit of a large apply failed; checking whether it landed");
            return match roll_forward(store, &id).await? {
                Some(revision) => Ok(Some(revision)),
                None => Err(StoreError::Etcd { action: "commit apply".into(), source: error }),
            };
        }
    }
    match roll_forward(store, &id).await? {
        Some(revision) => Ok(Some(revision)),
        // Finished by someone else in between: it landed all the same.
        None => Ok(Some(store.list_objects().await?.revision)),
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct IntentCommit {
    chunks: usize,
    operations: usize,
}

async fn discard_intent(store: &Store, id: &str) {
    let mut client = store.client();
    if let Err(error) = client.delete(store.keys.intent_prefix(id), Some(DeleteOptions::new().with_prefix())).await {
        tracing::warn!(intent = %id, %error, "discard staged apply; it stays until collected");
    }
}

/// Deletes staged intents that never committed and are older than an hour.
async fn collect_abandoned_intents(store: &Store) -> Result<(), StoreError> {
    let mut client = store.client();
    let response = client
        .get(store.keys.intents_prefix(), Some(GetOptions::new().with_prefix().with_keys_only()))
        .await
        .map_err(StoreError::etcd("list staged applies"))?;
    let mut ids: BTreeMap<String, bool> = BTreeMap::new();
    for kv in response.kvs() {
        let key = String::from_utf8_lossy(kv.key()).to_string();
        if let Some(id) = store.keys.intent_id(&key) {
            let committed = store.keys.committed_intent_id(&key).is_some();
            *ids.entry(id).or_insert(false) |= committed;
        }
    }
    let now = millis_now();
    for (id, committed) in ids {
        let created: u128 = id.split('-').next().and_then(|millis| millis.parse().ok()).unwrap_or(now);
        if !committed && now.saturating_sub(created) > ABANDONED_INTENT_MILLIS {
            tracing::info!(intent = %id, "collecting an abandoned staged apply");
            discard_intent(store, &id).await;
        }
    }
    Ok(())
}

/// Applies a committed intent's operations and removes it. Idempotent and safe to run
/// from several processes at once: every batch is guarded by the commit key, which
/// only the finishing transaction deletes. Returns the revision of the finishing
/// transaction, or `None` if the intent was already finished (or never committed).
pub(crate) async fn roll_forward(store: &Store, id: &str) -> Result<Option<i64>, StoreError> {
    let mut client = store.client();
    let commit_key = store.keys.intent_commit(id);
    let response = client.get(commit_key.as_str(), None).await.map_err(StoreError::etcd("read apply commit"))?;
    let Some(commit_kv) = response.kvs().first() else { return Ok(None) };
    let commit: IntentCommit =
        serde_json::from_slice(commit_kv.value()).map_err(|error| StoreError::Corrupt { key: commit_key.clone(), reason: error.to_string() })?;
    let committed = || Compare::version(commit_key.as_str(), CompareOp::Greater, 0);
    for index in 0..commit.chunks {
        let chunk_key = store.keys.intent_chunk(id, index);
        let response = client.get(chunk_key.as_str(), None).await.map_err(StoreError::etcd("read staged apply"))?;
        let Some(kv) = response.kvs().first() else {
            // Only the finishing txn deletes chunks, and it deletes the commit key too.
            return Ok(None);
        };
        let ops: Vec<WriteOp> =
            serde_json::from_slice(kv.value()).map_err(|error| StoreError::Corrupt { key: chunk_key.clone(), reason: error.to_string() })?;
        for batch in batches(&ops, store.max_txn_ops, store.max_txn_bytes) {
            let txn = Txn::new().when([committed()]).and_then(batch.iter().map(WriteOp::to_txn_op).collect::<Vec<_>>());
            let response = client.txn(txn).await.map_err(StoreError::etcd("roll apply forward"))?;
            if !response.succeeded() {
                return Ok(None);
            }
        }
    }
    let finish = Txn::new().when([committed()]).and_then([
        TxnOp::delete(store.keys.intent_prefix(id), Some(DeleteOptions::new().with_prefix())),
        TxnOp::put(store.keys.spec_version(), spec_version_value(&format!("finish {id}")), None),
    ]);
    let response = client.txn(finish).await.map_err(StoreError::etcd("finish apply"))?;
    tracing::debug!(intent = %id, operations = commit.operations, "large apply rolled forward");
    Ok(if response.succeeded() { response.header().map(|header| header.revision()) } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Kind, Name};
    use crate::store::StoredObject;
    use serde_json::json;

    fn object(value: serde_json::Value) -> Object {
        let mut value = value;
        value["apiVersion"] = json!(crate::api::API_VERSION);
        Object::from_value(value).expect("test object decodes")
    }

    fn listing(objects: &[(Object, i64)]) -> Listing {
        Listing {
            revision: 10,
            spec_version: 9,
            objects: objects
                .iter()
                .map(|(object, revision)| (object.key(), StoredObject { object: std::sync::Arc::new(object.clone()), mod_revision: *revision }))
                .collect(),
            stored_bytes: objects.iter().map(|(object, _)| (object.key(), Store::encode_object(object).len())).collect(),
            undecodable: Vec::new(),
        }
    }

    fn plan(listing: &Listing, desired: &[Object]) -> Vec<(String, Change, Option<i64>)> {
        let mut counter = 0;
        let mut uid = || {
            counter += 1;
            format!("uid-{counter}")
        };
        plan_changes(listing, desired, &BTreeMap::new(), Some("demo"), "2026-01-01T00:00:00Z", &mut uid)
            .into_iter()
            .map(|p| (p.key.to_string(), p.change, p.after.and_then(|after| after.metadata.generation)))
            .collect()
    }

    #[test]
    fn generation_bumps_only_on_spec_change() {
        let node = |standby: bool| object(json!({"kind": "Node", "metadata": {"name": "n1"}, "spec": {"standby": standby}}));
        let mut stored = node(false);
        stored.metadata.generation = Some(3);
        stored.metadata.labels.insert(APPLYSET_LABEL.into(), "demo".into());
        let current = listing(&[(stored.clone(), 5)]);
        assert_eq!(plan(&current, &[node(false)]), [("Node/n1".to_string(), Change::Unchanged, Some(3))]);
        assert_eq!(plan(&current, &[node(true)]), [("Node/n1".to_string(), Change::Configured, Some(4))]);
        let mut relabelled = node(false);
        relabelled.metadata.labels.insert("tier".into(), "db".into());
        assert_eq!(plan(&current, &[relabelled]), [("Node/n1".to_string(), Change::Configured, Some(3))]);
        assert_eq!(plan(&listing(&[]), &[node(false)]), [("Node/n1".to_string(), Change::Created, Some(1))]);
    }

    #[test]
    fn created_objects_get_uid_and_timestamp_and_keep_them() {
        let node = object(json!({"kind": "Node", "metadata": {"name": "n1"}}));
        let mut uid = || "fresh".to_string();
        let created = plan_changes(&listing(&[]), std::slice::from_ref(&node), &BTreeMap::new(), None, "T0", &mut uid);
        let stored = created[0].after.clone().expect("created");
        assert_eq!((stored.metadata.uid.as_deref(), stored.metadata.creation_timestamp.as_deref()), (Some("fresh"), Some("T0")));
        let mut other_uid = || "other".to_string();
        let again = plan_changes(&listing(&[(stored, 4)]), &[node], &BTreeMap::new(), None, "T1", &mut other_uid);
        let kept = again[0].after.clone().expect("kept");
        assert_eq!((kept.metadata.uid.as_deref(), kept.metadata.creation_timestamp.as_deref()), (Some("fresh"), Some("T0")));
        assert_eq!(again[0].change, Change::Unchanged);
    }

    #[test]
    fn batches_respect_op_and_byte_limits() {
        let ops: Vec<WriteOp> = (0..300).map(|index| WriteOp { key: format!("k{index:03}"), value: Some("x".repeat(100)) }).collect();
        let by_count = batches(&ops, 128, usize::MAX);
        assert_eq!(by_count.iter().map(|batch| batch.len()).collect::<Vec<_>>(), [128, 128, 44]);
        let by_bytes = batches(&ops, 128, 1200);
        assert!(by_bytes.iter().all(|batch| batch.iter().map(WriteOp::bytes).sum::<usize>() <= 1200));
        assert_eq!(by_bytes.iter().map(|batch| batch.len()).sum::<usize>(), 300);
        assert!(batches(&[], 128, 1000).is_empty());
    }

    #[test]
    fn a_change_that_grows_the_spec_past_the_limit_is_refused_at_its_largest_object() {
        let stored = object(json!({"kind": "Node", "metadata": {"name": "n1"}}));
        let current = listing(&[(stored.clone(), 4)]);
        let text = "apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {name: small}\n---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: big}\nspec:\n  agent: ocf:heartbeat:Dummy\n  params: {blob: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx}\n";
        let loaded = crate::api::manifest::load(&[crate::api::manifest::Source { name: "big.yaml".into(), text: text.into() }]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let desired: Vec<Object> = loaded.manifests.iter().map(|manifest| manifest.object.clone()).collect();
        let mut uid = || "u".to_string();
        let planned = plan_changes(&current, &desired, &BTreeMap::new(), None, "T", &mut uid);
        let size = |object: &Object| Store::encode_object(object).len();
        let total = size(&stored) + planned.iter().filter_map(|p| p.after.as_ref()).map(size).sum::<usize>();
        assert_eq!(check_spec_size(&current, &planned, &loaded.manifests, total), None, "exactly at the limit is allowed");
        let refused = check_spec_size(&current, &planned, &loaded.manifests, total - 1).expect("one byte over is refused");
        let big = planned[1].after.as_ref().map(size).unwrap_or_default();
        assert_eq!(
            refused.to_string(),
            format!(
                "big.yaml:5:1: Resource/big: the spec would be {total} bytes after this change, more than the limit of {}; this object adds {big} bytes",
                total - 1
            )
        );
        // Without a manifest to blame, the change itself is.
        let unblamed = check_spec_size(&current, &planned, &[], total - 1).expect("refused");
        assert_eq!((unblamed.file.as_str(), unblamed.object.as_deref()), ("etcd", None));
        // Over the limit already (stored by another version): shrinking is allowed,
        // growing is not.
        let over = listing(&[(stored.clone(), 4), (desired[1].clone(), 5)]);
        let deleted = BTreeMap::from([(desired[1].key(), Change::Deleted)]);
        let shrink = plan_changes(&over, &[], &deleted, None, "T", &mut uid);
        assert_eq!(check_spec_size(&over, &shrink, &[], 1), None);
        let grow = plan_changes(&over, &desired[..1], &BTreeMap::new(), None, "T", &mut uid);
        assert!(check_spec_size(&over, &grow, &loaded.manifests, 1).is_some());
    }

    #[test]
    fn resource_version_preconditions_are_checked() {
        let mut wanted = object(json!({"kind": "Node", "metadata": {"name": "n1"}}));
        wanted.metadata.resource_version = Some("7".into());
        let stored = object(json!({"kind": "Node", "metadata": {"name": "n1"}}));
        assert!(precondition_failures(&listing(&[(stored.clone(), 7)]), std::slice::from_ref(&wanted)).is_empty());
        assert_eq!(precondition_failures(&listing(&[(stored, 8)]), &[wanted]), ["Node/n1 (resourceVersion 7 given, 8 stored)"]);
        let _ = Kind::Node;
        let _ = Name::from("n1");
    }
}
